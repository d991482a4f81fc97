//! What the masking service needs from elsewhere (hexagonal ports; the composition root
//! `etxhub` supplies the adapters).

use etx_domain::{Envelope, Provenance, RecordId};
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
