//! The audit service: the append-only, hash-chained audit and connection log (R-SEC-9,
//! Art. 8.3) — its writer, verifier, retention purge and query/export API — and the
//! vulnerability register with its overdue events (R-SEC-8), over sea-orm (SQLite or
//! PostgreSQL).
//!
//! * [`writer::AuditWriter`] — the process's [`AuditSink`]: hand it to the gateway and services.
//! * [`verify::verify`] — checks the whole chain (`etxhub audit verify`).
//! * [`purge::purge`] / [`purge::spawn_purge`] — retention (≥ 366 days).
//! * [`jobs::spawn_overdue_scan`] — overdue findings → `events.security` through the outbox.
//! * [`http::routes`] — `GET /audit/entries`, `/vulnerabilities…` under `/api/v1`.

pub mod events;
pub mod http;
pub mod jobs;
pub mod purge;
pub mod query;
pub mod store;
pub mod verify;
pub mod writer;

use etx_audit_core::summary::RefusalTally;
use etx_audit_core::{
    AuditSink, ChainKey, MIN_RETENTION_DAYS, NewAuditEntry, SecurityEvents, Vulnerabilities,
};
use etx_domain::OrgId;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use events::{OutboxSecurityEvents, SECURITY_STREAM};
pub use jobs::{BackgroundJob, spawn_overdue_scan};
pub use purge::{PurgeError, PurgeOutcome, purge, spawn_purge};
pub use store::{SeaFindingStore, head};
pub use verify::verify;
pub use writer::{AuditWriter, WriterConfig, WriterStats};

/// Settings of the module.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The root organisation (the hub's operator): its auditors see every audit entry;
    /// auditors of other organisations only their own organisation's. `None`: no auditor is
    /// root (only `system_admin` sees everything).
    pub root_org: Option<OrgId>,
    /// Days the audit log is kept; at least [`MIN_RETENTION_DAYS`] (366).
    pub retention_days: u32,
    /// How often the purge runs (daily).
    pub purge_every: Duration,
    /// How often the overdue scan runs (hourly).
    pub overdue_every: Duration,
    /// The writer's channel and batching.
    pub writer: WriterConfig,
    /// Rate-limited refusals (`429`) of one caller and route within this window become one
    /// summary entry after the first ([`etx_audit_core::summary`]).
    pub refusal_window: Duration,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            root_org: None,
            retention_days: MIN_RETENTION_DAYS,
            purge_every: Duration::from_secs(24 * 3600),
            overdue_every: Duration::from_secs(3600),
            writer: WriterConfig::default(),
            refusal_window: Duration::from_secs(10),
        }
    }
}

/// At most this many callers' refusals are tallied at once; beyond it they are logged singly.
const MAX_TALLIED_CALLERS: usize = 10_000;

/// The sink the gateway and the modules log to: the writer, with rate-limited refusals
/// summarised ([`RefusalTally`]).
#[derive(Debug)]
pub struct SummarisingSink {
    inner: Arc<dyn AuditSink>,
    tally: Mutex<RefusalTally>,
}

impl SummarisingSink {
    /// Wraps `inner`, summarising per `window`.
    pub fn new(inner: Arc<dyn AuditSink>, window: Duration) -> Self {
        Self {
            inner,
            tally: Mutex::new(RefusalTally::new(window, MAX_TALLIED_CALLERS)),
        }
    }

    /// Logs the summaries of the windows that have passed (or of all, when `all`).
    pub fn flush(&self, all: bool) {
        let now = chrono::Utc::now();
        let out = match self.tally.lock() {
            Ok(mut t) if all => t.drain(now),
            Ok(mut t) => t.due(now),
            Err(_) => return,
        };
        for e in out {
            self.inner.record(e);
        }
    }
}

impl AuditSink for SummarisingSink {
    fn record(&self, entry: NewAuditEntry) {
        if entry.status != Some(429) {
            return self.inner.record(entry);
        }
        let now = match self.tally.lock() {
            Ok(mut t) => t.offer(entry),
            Err(poisoned) => poisoned.into_inner().offer(entry),
        };
        if let Some(e) = now {
            self.inner.record(e);
        }
    }
}

/// The audit module as mounted by `etxhub`.
#[derive(Debug)]
pub struct AppAudit {
    /// The database.
    pub db: DatabaseConnection,
    /// The chain key.
    pub key: ChainKey,
    /// The writer (call [`AuditWriter::shutdown`] on shutdown).
    pub writer: AuditWriter,
    /// The writer as a sink, for the gateway and the other modules of this process
    /// (rate-limited refusals summarised, see [`SummarisingSink`]).
    pub sink: Arc<dyn AuditSink>,
    summaries: Arc<SummarisingSink>,
    /// The vulnerability register.
    pub vulnerabilities: Arc<Vulnerabilities<SeaFindingStore>>,
    /// Settings.
    pub settings: AuditSettings,
}

impl AppAudit {
    /// Checks the settings, runs the migrations and starts the writer.
    pub async fn build(
        db: DatabaseConnection,
        key: ChainKey,
        settings: AuditSettings,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(
            settings.retention_days >= MIN_RETENTION_DAYS,
            "audit retention must be at least {MIN_RETENTION_DAYS} days (R-SEC-9), not {}",
            settings.retention_days
        );
        migrate(&db).await?;
        let writer = AuditWriter::start(db.clone(), key.clone(), settings.writer);
        let summaries = Arc::new(SummarisingSink::new(writer.sink(), settings.refusal_window));
        let sink: Arc<dyn AuditSink> = summaries.clone();
        let vulnerabilities = Arc::new(Vulnerabilities::new(
            SeaFindingStore::new(db.clone()),
            sink.clone(),
        ));
        Ok(Self {
            db,
            key,
            writer,
            sink,
            summaries,
            vulnerabilities,
            settings,
        })
    }

    /// Starts the purge (daily) and the overdue scan (hourly), the latter emitting to
    /// `events` (an [`OutboxSecurityEvents`] in production). Stop them with
    /// [`BackgroundJob::stop`] before [`Self::shutdown`].
    pub fn spawn_jobs(&self, events: Arc<dyn SecurityEvents>) -> anyhow::Result<Vec<BackgroundJob>> {
        let purge = spawn_purge(
            self.db.clone(),
            self.key.clone(),
            self.sink.clone(),
            self.settings.purge_every,
            self.settings.retention_days,
        )?;
        let overdue = spawn_overdue_scan(self.db.clone(), events, self.settings.overdue_every);
        let summaries = self.summaries.clone();
        let tick = (self.settings.refusal_window / 10).max(Duration::from_millis(100));
        let refusals = BackgroundJob::every("audit-refusal-summaries", tick, move || {
            summaries.flush(false);
            std::future::ready(())
        });
        Ok(vec![purge, overdue, refusals])
    }

    /// Logs the open refusal summaries, stores every queued audit entry and stops the writer.
    pub async fn shutdown(&self) {
        self.summaries.flush(true);
        self.writer.shutdown().await;
    }
}

/// Runs the audit service's migrations (including the outbox).
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    etx_storage::with_migration_lock(db, async {
        store::migrations::Migrator::up(db, None).await?;
        Ok(())
    })
    .await
}

/// The audit service's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <http::AuditDoc as utoipa::OpenApi>::openapi()
}
