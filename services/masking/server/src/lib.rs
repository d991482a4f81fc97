//! The masking stage of the pipeline (issue 5 §1–3; R-ING-2 raw and masked forms, R-SEC-10
//! protection of personal data, R-DATA-3 provenance): it consumes `records.received` (consumer
//! group [`GROUP`]), reads each record's payload through the [`RecordSource`] port, masks it for
//! analysts with the current version of the masking policy, stores the masked copy in
//! `masked_records` and announces it on `records.masked` through the outbox, in one transaction
//! per batch. The policy's versions are stored, immutable and published through the API
//! (issue 5 §2, [`policies`]); reversible tokens are turned back into values only through an
//! authorised, logged re-identification ([`reid`]).
//!
//! No clear personal data is written to masking's tables, logs, outbox or queue: the stored
//! payload is the analyst-masked one, identifiers that arrived in clear are kept only as keyed
//! match tokens, and a record that still carries an identifier in clear where it must not (a
//! record declared `masked` that is not, or a payload the detectors still flag after masking)
//! is *held*: stored without its payload, with the places and kinds of the findings, announced
//! on `events.masking` and never on `records.masked`.
//!
//! * [`AppMasking`] — the module `etxhub` mounts: [`AppMasking::build`] runs the migrations,
//!   [`AppMasking::spawn_consumer`] starts the consumer, [`AppMasking::masked`] and
//!   [`AppMasking::held`] read the store, [`AppMasking::policies`] the policy's versions,
//!   [`AppMasking::reidentify`] re-identifies a reversible token.
//! * [`handler`] — the [`MaskingHandler`] the consumer runs.
//! * [`policies`] — [`PolicyStore`]: `masking_policies`, publication, the current version.
//! * [`reid`] — re-identification and its log, `masking_reidentifications`.
//! * [`http`] — the pipeline's operations API and the masking policy API.
//! * [`model`] — [`MaskedRecord`], [`MaskStatus`], [`HeldFinding`], [`ReadError`].
//! * [`store`] — masking's tables and their migrations (`masking_migrations`).
//! * `mask` — masking one record, match tokens ([`MATCH_PURPOSE`]); `messages` — the
//!   message bodies read and written.

pub mod handler;
pub mod http;
mod mask;
mod messages;
pub mod model;
pub mod policies;
pub mod reid;
pub mod store;

use std::sync::Arc;

use anyhow::Context as _;
use etx_domain::{OrgId, RecordId};
use etx_masking_core::{Masker, PayloadVault, Purpose, RecordSource};
use etx_queue::{Consumer, ConsumerConfig, ConsumerHandle, Queue};
use etx_storage::RelayHandle;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;

pub use handler::MaskingHandler;
pub use mask::{MATCH_PURPOSE, MATCHED_KINDS};
pub use model::{HeldFinding, MaskStatus, MaskedRecord, ReadError};
pub use policies::{Author, PolicyStore, PolicyStoreError, PolicyVersion, PublishError, StoredPolicy};
pub use reid::{Refusal, ReidError, ReidLog, ReidOutcome, ReidRequest, Reidentification};
pub use store::{MAX_HELD_PAGE, MaskedStore};

/// Masking's replica of the organisation hierarchy over `db` (kept by a consumer of
/// `events.orgs`; see [`etx_storage::org_tree`]).
pub fn org_replica(db: &DatabaseConnection) -> etx_storage::OrgReplica {
    etx_storage::OrgReplica::new(db.clone(), store::migrations::ORG_TREE_TABLE)
}

/// Masking's part of the OpenAPI document (the pipeline's operations, the masking policy and
/// re-identification).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <http::PipelineDoc as utoipa::OpenApi>::openapi();
    doc.merge(<http::policies::PolicyDoc as utoipa::OpenApi>::openapi());
    doc
}

/// The stream ingestion announces stored records on (metadata only; R-ING-2).
pub const RECORDS_RECEIVED: &str = "records.received";
/// The stream masked records are announced on, for reconciliation (metadata only; R-SEC-10).
pub const RECORDS_MASKED: &str = "records.masked";
/// The stream of masking's events (`record_held`), for alerting and operators.
pub const MASKING_EVENTS: &str = "events.masking";
/// The consumer group of the masking stage on [`RECORDS_RECEIVED`].
pub const GROUP: &str = "masking";

/// The masking module as mounted by `etxhub`.
#[derive(Debug, Clone)]
pub struct AppMasking {
    store: MaskedStore,
    handler: Arc<MaskingHandler>,
    policies: PolicyStore,
    reids: ReidLog,
    masker: Masker,
}

impl AppMasking {
    /// Runs masking's migrations (under [`etx_storage::with_migration_lock`]; they include the
    /// outbox table, so the relay may start afterwards), stores the built-in policy as version 1
    /// when no version is stored yet, and prepares the handler.
    ///
    /// * `source` reads the received records' payloads (ingestion's store);
    /// * `masker` holds the masking token keys (its key derivation is the masking master key's,
    ///   kept apart from the storage master key) and the detector;
    /// * `vault` seals the masked payloads at rest (the hub's data keys);
    /// * `relay`, when given, is woken after each committed batch.
    ///
    /// Records are masked for [`etx_masking_core::Audience::Analyst`] with the current policy
    /// version (see [`policies`]), which is stored with every record (R-DATA-3).
    ///
    /// # Errors
    /// When the migrations fail, or the stored current policy version cannot be read.
    pub async fn build(
        db: DatabaseConnection,
        source: Arc<dyn RecordSource>,
        masker: Masker,
        vault: Arc<dyn PayloadVault>,
        relay: Option<RelayHandle>,
    ) -> anyhow::Result<Self> {
        migrate(&db).await?;
        let purpose = Purpose::parse(MATCH_PURPOSE)
            .map_err(|e| anyhow::anyhow!("the match-token purpose `{MATCH_PURPOSE}` is invalid: {e}"))?;
        let policies = PolicyStore::open(db.clone())
            .await
            .context("cannot load the current masking policy")?;
        let reids = ReidLog::new(db.clone());
        let store = MaskedStore::new(db, vault);
        let handler = Arc::new(MaskingHandler::new(
            store.clone(),
            source,
            masker.clone(),
            policies.clone(),
            purpose,
            relay,
        ));
        Ok(Self {
            store,
            handler,
            policies,
            reids,
            masker,
        })
    }

    /// Compares the policy in use with the stored current version at most every `every`
    /// (default [`policies::DEFAULT_REFRESH`]): the longest a process masks with a version
    /// another process has replaced.
    #[must_use]
    pub fn with_policy_refresh(self, every: std::time::Duration) -> Self {
        self.policies.set_refresh(every);
        self
    }

    /// The masking policy's versions.
    pub fn policies(&self) -> &PolicyStore {
        &self.policies
    }

    /// The re-identification log.
    pub fn reidentifications(&self) -> &ReidLog {
        &self.reids
    }

    /// Turns a reversible token back into its value for `req` and logs the attempt, granted or
    /// refused, before returning (see [`reid`]). The caller checks the permission first.
    ///
    /// # Errors
    /// [`ReidError`] when the request breaks the authorisation's rules or the log cannot be
    /// written (no value is returned then).
    pub async fn reidentify(&self, req: ReidRequest<'_>) -> Result<ReidOutcome, ReidError> {
        reid::reidentify(&self.reids, &self.masker, &self.policies.cached(), req).await
    }

    /// The consumer configuration of this stage: [`RECORDS_RECEIVED`] read by group [`GROUP`]
    /// with the consumer loop's defaults (tune it with the `with_*` setters).
    pub fn consumer_config() -> ConsumerConfig {
        ConsumerConfig::new(RECORDS_RECEIVED, GROUP)
    }

    /// Starts the consumer of `cfg` (normally [`AppMasking::consumer_config`]) on `queue` with
    /// this module's handler. Stop it with the handle and await the task on shutdown, before
    /// stopping the relay.
    ///
    /// # Panics
    /// Outside a Tokio runtime (like [`tokio::spawn`]).
    pub fn spawn_consumer(
        &self,
        queue: Arc<dyn Queue>,
        cfg: ConsumerConfig,
    ) -> (ConsumerHandle, tokio::task::JoinHandle<()>) {
        if cfg.stream() != RECORDS_RECEIVED || cfg.group() != GROUP {
            tracing::warn!(
                stream = cfg.stream(),
                group = cfg.group(),
                "the masking consumer normally reads {RECORDS_RECEIVED} as group {GROUP}"
            );
        }
        Consumer::spawn(queue, self.handler.clone(), cfg)
    }

    /// The handler, for a caller that runs its own consumer loop.
    pub fn handler(&self) -> Arc<MaskingHandler> {
        self.handler.clone()
    }

    /// The stored copy of `record_id` (masked or held), or `None` when it has not been masked
    /// (yet).
    ///
    /// # Errors
    /// [`ReadError`] when the database fails or the row is corrupt.
    pub async fn masked(&self, record_id: RecordId) -> Result<Option<MaskedRecord>, ReadError> {
        self.store.masked(record_id).await
    }

    /// Held records of `org_ids` (every organisation when `None`), oldest first, at most
    /// `limit` (capped at [`MAX_HELD_PAGE`]).
    ///
    /// # Errors
    /// [`ReadError`] when the database fails or a row is corrupt.
    pub async fn held(&self, org_ids: Option<&[OrgId]>, limit: u64) -> Result<Vec<MaskedRecord>, ReadError> {
        self.store.held(org_ids, limit).await
    }
}

/// Runs masking's migrations (including the outbox) under the cross-process migration lock.
///
/// # Errors
/// When a migration fails.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    etx_storage::with_migration_lock(db, async {
        store::migrations::Migrator::up(db, None)
            .await
            .context("masking migrations")?;
        Ok(())
    })
    .await
}
