//! The ports of the audit service: how every other service writes to the audit log
//! ([`AuditSink`], R-SEC-9), where findings are kept ([`FindingStore`], R-SEC-8), and where
//! security events go ([`SecurityEvents`], stream `events.security`).

use crate::model::NewAuditEntry;
use crate::vuln::{Finding, FindingFilter, FindingId, OverdueNotice, Severity};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Where audit entries go (R-SEC-9). The gateway calls it for every request, and services for
/// every administrative action and raw read.
///
/// `record` MUST return at once: it never blocks, never waits for I/O and never panics, so
/// that logging can never slow or fail a request. An implementation that cannot take the
/// entry (overload) MUST count it as lost and make the loss itself visible in the log as
/// soon as it can (a `security` entry with the number lost).
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Hands an entry to the log.
    fn record(&self, entry: NewAuditEntry);
}

impl<T: AuditSink + ?Sized> AuditSink for Arc<T> {
    fn record(&self, entry: NewAuditEntry) {
        (**self).record(entry);
    }
}

/// A sink that drops everything (tests, tools that must not log).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopSink;

impl AuditSink for NoopSink {
    fn record(&self, _entry: NewAuditEntry) {}
}

/// A sink that keeps entries in memory, for tests of callers.
#[derive(Debug, Default)]
pub struct MemorySink {
    entries: Mutex<Vec<NewAuditEntry>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries recorded so far.
    pub fn entries(&self) -> Vec<NewAuditEntry> {
        self.entries.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl AuditSink for MemorySink {
    fn record(&self, entry: NewAuditEntry) {
        if let Ok(mut e) = self.entries.lock() {
            e.push(entry);
        }
    }
}

/// Storage failures of the register.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Persistence of the vulnerability register (R-SEC-8).
#[async_trait::async_trait]
pub trait FindingStore: Send + Sync + std::fmt::Debug {
    /// Stores a new finding.
    async fn insert(&self, f: &Finding) -> Result<(), StoreError>;
    /// The finding with this id. MUST return `Ok(None)` when there is none.
    async fn get(&self, id: FindingId) -> Result<Option<Finding>, StoreError>;
    /// The findings matching `filter.status` and `filter.severity`, oldest first. It MAY
    /// ignore `filter.overdue` (the service applies the overdue rule itself).
    async fn list(&self, filter: &FindingFilter) -> Result<Vec<Finding>, StoreError>;
    /// Replaces the finding `f.id` with `f` if its stored version is still `expected_version`.
    /// MUST return `Ok(false)` (and change nothing) when the finding does not exist or another
    /// change came first.
    async fn update(&self, f: &Finding, expected_version: i64) -> Result<bool, StoreError>;
    /// Findings waiting for remediation (`open`, `in_progress`) whose deadline is before
    /// `date` — the candidates of the overdue scan.
    async fn past_deadline(&self, date: chrono::NaiveDate) -> Result<Vec<Finding>, StoreError>;
    /// Records that an overdue event was emitted (does not change the version).
    async fn mark_overdue_notice(&self, id: FindingId, notice: OverdueNotice) -> Result<(), StoreError>;
}

/// A security event for the alerting service (stream `events.security`, R-SEC-7, R-SEC-8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecurityEvent {
    /// Event id (UUIDv7).
    pub id: Uuid,
    /// What happened, e.g. `vulnerability.overdue`.
    pub kind: String,
    /// How serious.
    pub severity: Severity,
    /// When it was detected.
    pub at: DateTime<Utc>,
    /// Deduplication key: consumers treat two events with one key as one (delivery is
    /// at-least-once).
    pub key: String,
    /// The facts behind it (ids, counts, dates, names of responsible staff — never secrets
    /// or data about citizens).
    pub evidence: serde_json::Value,
}

impl SecurityEvent {
    /// A new event detected now.
    pub fn new(kind: &str, severity: Severity, key: String, evidence: serde_json::Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: kind.to_owned(),
            severity,
            at: Utc::now(),
            key,
            evidence,
        }
    }
}

/// Why an event could not be emitted.
#[derive(Debug, thiserror::Error)]
#[error("security event not stored: {0}")]
pub struct EventError(#[from] pub anyhow::Error);

/// Where security events go.
#[async_trait::async_trait]
pub trait SecurityEvents: Send + Sync + std::fmt::Debug {
    /// Emits an event. MUST return `Ok` only once the event is durably stored (it will reach
    /// the stream even if the queue is down now), and an error otherwise.
    async fn emit(&self, event: SecurityEvent) -> Result<(), EventError>;
}

#[async_trait::async_trait]
impl<T: SecurityEvents + ?Sized> SecurityEvents for Arc<T> {
    async fn emit(&self, event: SecurityEvent) -> Result<(), EventError> {
        (**self).emit(event).await
    }
}
