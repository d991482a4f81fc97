//! The reconciliation stage of the pipeline (issue 5 §4–5; R-REC data synchronisation, R-DATA-3
//! provenance, R-AVAIL nothing lost): it consumes `records.masked` (consumer group [`GROUP`]),
//! reads each masked record through the [`MaskedSource`] port, reconciles it with
//! [`ReconciliationService`] — exact-key deduplication, cross-source matching within tolerance,
//! fuzzy matching, conflicts for an operator, held records of approved periods — and stores the
//! decision with its `records.accepted` / `records.conflicts` announcement through the outbox,
//! a batch of records per transaction (group commit; record by record when a batch cannot be).
//!
//! * [`AppReconciliation`] — the module `etxhub` mounts: [`AppReconciliation::build`] runs the
//!   migrations, [`AppReconciliation::spawn_consumer`] starts the consumer, and the read and
//!   operator functions (canonical records with provenance, the conflict queue, period approval,
//!   completeness) serve the HTTP API.
//! * [`http`] — that API (`/api/v1/conflicts`, `/canonical-records`, `/periods`,
//!   `/completeness`), within the caller's organisation subtree ([`org_replica`]).
//! * [`handler`] — the [`ReconciliationHandler`] the consumer runs.
//! * [`store`] — [`SqlStore`], every port of the core on SQLite/PostgreSQL, and its migrations
//!   (`reconciliation_migrations`).
//! * `messages` — the message bodies read and written.
//!
//! Nothing here depends on another service's adapters: what reconciliation reads of masking,
//! ingestion and identity comes through [`MaskedSource`], built by the composition root.

pub mod handler;
pub mod http;
mod messages;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use etx_domain::{OrgId, Period, Priority, RecordId, UserId};
use etx_masking_core::PayloadVault;
use etx_queue::{Consumer, ConsumerConfig, ConsumerHandle, Queue};
use etx_reconciliation_core::{
    CanonicalId, CanonicalRecord, Conflict, ConflictFilter, ConflictId, DecisionKind, DecisionSummary,
    ExpectedSubmission, MaskedSource, OrgPeriodCompleteness, PeriodApproval, PeriodChangeError, PeriodKey,
    Reason, ReconcileConfig, ReconcileError, Reconciler, ReconciliationService, ReconciliationStore,
    ResolutionChoice, ResolveConflictError, Resolved, StoreError,
};
use etx_storage::RelayHandle;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;

pub use handler::ReconciliationHandler;
pub use store::{MAX_BLOCK_CANDIDATES, MAX_CONFLICT_PAGE, SqlStore};

/// Reconciliation's replica of the organisation hierarchy over `db` (kept by a consumer of
/// `events.orgs`; see [`etx_storage::org_tree`]): the HTTP API reads by organisation subtree.
pub fn org_replica(db: &DatabaseConnection) -> etx_storage::OrgReplica {
    etx_storage::OrgReplica::new(db.clone(), store::migrations::ORG_TREE_TABLE)
}

/// Reconciliation's part of the OpenAPI document ([`http`]).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <http::ReconciliationDoc as utoipa::OpenApi>::openapi()
}

/// The stream masked records are announced on by the masking stage (metadata only; R-SEC-10).
pub const RECORDS_MASKED: &str = "records.masked";
/// The stream every reconciled record is announced on, once (R-REC, R-DATA-3): its canonical
/// record, the decision and rule, and the canonical ids a merge retired.
pub const RECORDS_ACCEPTED: &str = "records.accepted";
/// The stream of conflicts opened and resolved, for operators and alerting (R-REC).
pub const RECORDS_CONFLICTS: &str = "records.conflicts";
/// The consumer group of the reconciliation stage on [`RECORDS_MASKED`].
pub const GROUP: &str = "reconciliation";

/// The service over the store, one per message priority so that each decision is announced
/// with the priority its record came with (R-DATA-2).
pub(crate) struct Services {
    store: SqlStore,
    high: ReconciliationService<SqlStore>,
    normal: ReconciliationService<SqlStore>,
    low: ReconciliationService<SqlStore>,
}

impl Services {
    fn new(store: SqlStore, engine: &Reconciler) -> Self {
        let of = |p| ReconciliationService::new(store.with_priority(p), engine.clone());
        Self {
            high: of(Priority::High),
            normal: of(Priority::Normal),
            low: of(Priority::Low),
            store,
        }
    }

    pub(crate) fn for_priority(&self, p: Priority) -> &ReconciliationService<SqlStore> {
        match p {
            Priority::High => &self.high,
            Priority::Normal => &self.normal,
            Priority::Low => &self.low,
        }
    }
}

/// What reconciling a period's held records again gave (R-REC).
#[derive(Debug, Clone, PartialEq)]
pub struct HeldRun {
    /// The records decided now (or found decided), in the order they were held.
    pub reconciled: Vec<DecisionSummary>,
    /// The records still waiting: not available from the source, held again, or failing now
    /// (see the logs). [`AppReconciliation::reconcile_held`] tries them again.
    pub pending: Vec<RecordId>,
}

/// A reopened period and what became of the records it held (R-REC).
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodReopened {
    /// The period, now reopened (writable).
    pub approval: PeriodApproval,
    /// The records it held, reconciled again.
    pub held: HeldRun,
}

/// The reconciliation module as mounted by `etxhub`.
#[derive(Clone)]
pub struct AppReconciliation {
    services: Arc<Services>,
    source: Arc<dyn MaskedSource>,
    handler: Arc<ReconciliationHandler>,
}

impl std::fmt::Debug for AppReconciliation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppReconciliation").finish_non_exhaustive()
    }
}

impl AppReconciliation {
    /// Runs reconciliation's migrations (under [`etx_storage::with_migration_lock`]; they include
    /// the outbox table, so the relay may start afterwards) and prepares the handler.
    ///
    /// * `source` gives the masked records `records.masked` announces (see [`MaskedSource`]);
    /// * `vault` seals stored payloads at rest (the hub's data keys, as for masked copies);
    /// * `config` holds the tolerances, merge rules and fuzzy settings (R-REC); its `version` is
    ///   recorded in every provenance link (R-DATA-3);
    /// * `relay`, when given, is woken after each batch that decided something.
    ///
    /// # Errors
    /// When `config` is invalid or the migrations fail.
    pub async fn build(
        db: DatabaseConnection,
        source: Arc<dyn MaskedSource>,
        vault: Arc<dyn PayloadVault>,
        config: ReconcileConfig,
        relay: Option<RelayHandle>,
    ) -> anyhow::Result<Self> {
        let engine = Reconciler::new(config).context("invalid reconciliation settings")?;
        migrate(&db).await?;
        let services = Arc::new(Services::new(SqlStore::new(db, vault), &engine));
        let handler = Arc::new(ReconciliationHandler::new(
            services.clone(),
            source.clone(),
            relay,
        ));
        Ok(Self {
            services,
            source,
            handler,
        })
    }

    /// The consumer configuration of this stage: [`RECORDS_MASKED`] read by group [`GROUP`]
    /// with the consumer loop's defaults (tune it with the `with_*` setters).
    pub fn consumer_config() -> ConsumerConfig {
        ConsumerConfig::new(RECORDS_MASKED, GROUP)
    }

    /// Starts the consumer of `cfg` (normally [`AppReconciliation::consumer_config`]) on `queue`
    /// with this module's handler. Stop it with the handle and await the task on shutdown,
    /// before stopping the relay.
    ///
    /// # Panics
    /// Outside a Tokio runtime (like [`tokio::spawn`]).
    pub fn spawn_consumer(
        &self,
        queue: Arc<dyn Queue>,
        cfg: ConsumerConfig,
    ) -> (ConsumerHandle, tokio::task::JoinHandle<()>) {
        if cfg.stream() != RECORDS_MASKED || cfg.group() != GROUP {
            tracing::warn!(
                stream = cfg.stream(),
                group = cfg.group(),
                "the reconciliation consumer normally reads {RECORDS_MASKED} as group {GROUP}"
            );
        }
        Consumer::spawn(queue, self.handler.clone(), cfg)
    }

    /// The handler, for a caller that runs its own consumer loop.
    pub fn handler(&self) -> Arc<ReconciliationHandler> {
        self.handler.clone()
    }

    /// The store (every port), for adapters and tests.
    pub fn store(&self) -> &SqlStore {
        &self.services.store
    }

    /// The canonical record `id` answers to, with its contributions (provenance, R-DATA-3):
    /// itself, or the record it was merged into (following `merged_into`). `None` for an
    /// unknown id.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a row does not read back.
    pub async fn canonical(&self, id: CanonicalId) -> Result<Option<CanonicalRecord>, StoreError> {
        self.services.store.canonical(id).await
    }

    /// What reconciliation decided for `record` (its status), or `None` when not yet.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn outcome(&self, record: RecordId) -> Result<Option<DecisionSummary>, StoreError> {
        self.services.store.outcome(record).await
    }

    /// The conflict queue (R-REC): conflicts matching `filter`, oldest first, at most
    /// `filter.limit` (capped at [`MAX_CONFLICT_PAGE`]).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a row does not read back.
    pub async fn conflicts(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, StoreError> {
        use etx_reconciliation_core::ConflictStore as _;
        self.services.store.conflicts(filter).await
    }

    /// Conflict `id` with every version and its provenance, or `None`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or the row does not read back.
    pub async fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>, StoreError> {
        use etx_reconciliation_core::ConflictStore as _;
        self.services.store.conflict(id).await
    }

    /// Resolves conflict `id` by `choice` of operator `by` (R-REC): choose a version, merge field
    /// values, or reject (remembered: the pair is never merged again). The record is then
    /// announced on `records.accepted` and the resolution on `records.conflicts`.
    ///
    /// # Errors
    /// [`ResolveConflictError`]: unknown conflict, refused resolution (already resolved,
    /// approved period, unknown version or field …), busy, or a store failure.
    pub async fn resolve(
        &self,
        id: ConflictId,
        choice: ResolutionChoice,
        by: UserId,
        note: Option<String>,
    ) -> Result<Resolved, ResolveConflictError> {
        let resolved = self
            .services
            .normal
            .resolve(id, choice, by, note, Utc::now())
            .await?;
        self.handler.notify_relay();
        Ok(resolved)
    }

    /// Approves period `key` (R-REC): from now on its records are held and its conflicts cannot
    /// be resolved, until it is reopened.
    ///
    /// # Errors
    /// [`PeriodChangeError`]: already approved, changed concurrently, or a store failure.
    pub async fn approve_period(
        &self,
        key: PeriodKey,
        by: UserId,
    ) -> Result<PeriodApproval, PeriodChangeError> {
        self.services.normal.approve_period(key, by, Utc::now()).await
    }

    /// Reopens the approved period `key` for `reason` (R-REC) and reconciles the records it
    /// held.
    ///
    /// # Errors
    /// [`PeriodChangeError`]: not approved, changed concurrently, or a store failure. Records
    /// that cannot be reconciled now are reported in [`HeldRun::pending`], not as an error.
    pub async fn reopen_period(
        &self,
        key: PeriodKey,
        by: UserId,
        reason: Reason,
    ) -> Result<PeriodReopened, PeriodChangeError> {
        let reopened = self
            .services
            .normal
            .reopen_period(key, by, reason, Utc::now())
            .await?;
        let held = self.reconcile_ids(&reopened.held).await;
        Ok(PeriodReopened {
            approval: reopened.approval,
            held,
        })
    }

    /// Reconciles again the records held under `key` (R-REC), e.g. those still pending after
    /// [`AppReconciliation::reopen_period`]. Records of a period still approved stay held.
    ///
    /// # Errors
    /// [`StoreError`] when the held records cannot be listed.
    pub async fn reconcile_held(&self, key: &PeriodKey) -> Result<HeldRun, StoreError> {
        let ids = self.services.store.held(key).await?;
        Ok(self.reconcile_ids(&ids).await)
    }

    async fn reconcile_ids(&self, ids: &[RecordId]) -> HeldRun {
        let mut run = HeldRun {
            reconciled: Vec::new(),
            pending: Vec::new(),
        };
        if ids.is_empty() {
            return run;
        }
        let fetched = match self.source.fetch(ids).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, records = ids.len(), "held records cannot be read now");
                run.pending = ids.to_vec();
                return run;
            }
        };
        let mut by_id: std::collections::HashMap<RecordId, _> =
            fetched.into_iter().map(|r| (r.record_id, r)).collect();
        for id in ids {
            let Some(record) = by_id.remove(id) else {
                run.pending.push(*id);
                continue;
            };
            match self.services.normal.reconcile(record, Utc::now()).await {
                Ok(r) if r.summary().kind != DecisionKind::Held => run.reconciled.push(r.summary()),
                // Held again: the period was approved once more meanwhile.
                Ok(_) => run.pending.push(*id),
                Err(e) => {
                    let permanent = matches!(e, ReconcileError::Decide(_));
                    tracing::warn!(record_id = %id, error = %e, permanent, "a held record cannot be reconciled now");
                    run.pending.push(*id);
                }
            }
        }
        self.handler.notify_relay();
        run
    }

    /// Completeness per organisation and period as of `as_of` (R-REC, for reports): which of
    /// the `expected` submissions arrived on time, late, or not at all, counting every record
    /// reconciliation received (duplicates once, held and conflicting ones included).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn completeness(
        &self,
        expected: &[ExpectedSubmission],
        as_of: DateTime<Utc>,
    ) -> Result<Vec<OrgPeriodCompleteness>, StoreError> {
        let mut orgs: Vec<OrgId> = expected.iter().map(|e| e.org_id).collect();
        orgs.sort();
        orgs.dedup();
        let mut periods: Vec<Period> = expected.iter().map(|e| e.period).collect();
        periods.sort();
        periods.dedup();
        let received = self.services.store.received(&orgs, &periods).await?;
        Ok(etx_reconciliation_core::completeness(expected, &received, as_of))
    }
}

/// Runs reconciliation's migrations (including the outbox) under the cross-process migration
/// lock.
///
/// # Errors
/// When a migration fails.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    etx_storage::with_migration_lock(db, async {
        store::migrations::Migrator::up(db, None)
            .await
            .context("reconciliation migrations")?;
        Ok(())
    })
    .await
}
