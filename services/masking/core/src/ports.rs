//! What the masking service needs from elsewhere (hexagonal ports; the composition root
//! `etxhub` supplies the adapters).

use etx_domain::{Envelope, OrgId, Provenance, RecordId};
use serde_json::Value;

/// A record as received, decrypted for masking. It exists only in memory (R-SEC-10: clear
/// personal data never travels through the queue nor lands in masking's tables).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// The record's id (ingestion's).
    pub id: RecordId,
    /// Its envelope (category, period, classification, priority, form, …).
    pub envelope: Envelope,
    /// Where it came from (R-DATA-3).
    pub provenance: Provenance,
    /// The payload as submitted.
    pub payload: Value,
}

/// Why records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The store cannot be reached now (retry later).
    #[error("record store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a payload that cannot be decrypted, corrupt rows).
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Reads received records by id: ingestion's store, in process (all-in-one) or on the shared
/// database (distributed).
#[async_trait::async_trait]
pub trait RecordSource: Send + Sync + 'static {
    /// The records among `ids` that exist, in any order. An id that does not exist is simply
    /// absent from the answer (the caller decides what that means).
    async fn fetch(&self, ids: &[RecordId]) -> Result<Vec<SourceRecord>, SourceError>;
}

/// Keeps masked payloads encrypted at rest like the records they come from (AES-256-GCM under
/// the hub's data keys, R-SEC-5): a masked copy may still hold free text that no rule names as
/// personal, so nothing of a payload is stored in clear. The composition root supplies it.
#[async_trait::async_trait]
pub trait PayloadVault: Send + Sync + 'static {
    /// The ciphertext of `plain`, bound to the masked copy of `record` of `org` (a ciphertext
    /// moved to another record, or between a record and its masked copy, does not open).
    async fn seal(&self, org: OrgId, record: RecordId, plain: &[u8]) -> Result<Vec<u8>, SourceError>;

    /// The plaintext [`PayloadVault::seal`] gave `sealed` for the same `org` and `record`.
    async fn open(&self, org: OrgId, record: RecordId, sealed: &[u8]) -> Result<Vec<u8>, SourceError>;
}
