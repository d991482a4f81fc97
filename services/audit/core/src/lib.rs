//! Audit and security records of ETX Hub, pure part: the audit and connection log with its
//! keyed hash chain, verifier and retention rule (R-SEC-9, Decree Art. 8.3), and the
//! vulnerability register with its overdue rule (R-SEC-8). No I/O here: the server crate
//! (`etx-audit`) stores and serves them.
//!
//! * [`model`] — what an audit entry is ([`NewAuditEntry`], [`AuditBody`], [`AuditRecord`]).
//! * [`chain`] — the hash chain: [`ChainKey`], [`canonical_bytes`], [`ChainVerifier`].
//! * [`retention`] — [`MIN_RETENTION_DAYS`] and the contiguous-prefix purge rule.
//! * [`vuln`] — findings, their transitions and the overdue rule.
//! * [`ports`] — [`AuditSink`] (how every service logs), [`FindingStore`], [`SecurityEvents`].
//! * [`service`] — the vulnerability register's use cases.

pub mod chain;
pub mod model;
pub mod ports;
pub mod retention;
pub mod service;
pub mod summary;
pub mod vuln;

pub use chain::{
    Anchor, BreakReason, ChainBreak, ChainHash, ChainKey, ChainVerifier, Checkpoint, GENESIS, Head,
    VerifyReport, canonical_bytes,
};
pub use model::{Actor, AuditBody, AuditKind, AuditRecord, NewAuditEntry, payload_hash, sanitize_route};
pub use ports::{
    AuditSink, EventError, FindingStore, MemorySink, NoopSink, SecurityEvent, SecurityEvents, StoreError,
};
pub use retention::{MIN_RETENTION_DAYS, RetentionError, cutoff, purgeable_prefix};
pub use service::{VulnError, Vulnerabilities};
pub use vuln::{
    Finding, FindingChanges, FindingDraft, FindingFilter, FindingId, FindingPatchDraft, FindingStatus,
    NewFinding, OverdueNotice, Severity,
};
