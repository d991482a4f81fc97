//! The input port of reconciliation (R-REC, R-DATA-3): where the server reads the masked
//! records that `records.masked` announces. The message carries metadata only (R-SEC-10); the
//! composition root joins what an [`IncomingRecord`] needs — the masked copy and its match tokens
//! (masking's store), the keyed content hash (ingestion's store) and the organisation's kind
//! and province (the organisation hierarchy) — and hands it over through [`MaskedSource`], so
//! the reconciliation server never depends on another service's adapters.

use etx_domain::RecordId;

use crate::record::IncomingRecord;

/// Why masked records could not be read. Either way the server retries the delivery later.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The source cannot be reached now (database down, timeout, pool exhausted).
    #[error("masked records unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a stored row that does not parse back, a payload that does not open).
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// The masked records reconciliation works on (R-REC).
#[async_trait::async_trait]
pub trait MaskedSource: Send + Sync {
    /// The records among `ids` that are available, as [`IncomingRecord`]s, in any order.
    ///
    /// * A record that is not (yet) available — not masked yet, held by masking, or unknown —
    ///   MUST simply be absent from the result: the server retries the delivery until it
    ///   appears (and dead-letters it after the consumer's attempts).
    /// * Each returned record MUST carry the id asked for, its envelope as ingestion stored it
    ///   (organisation, system, receipt, category, schema version, period, form, `received_at`),
    ///   the organisation's kind, the masking policy version and the payload *masked for
    ///   analysts* with its match tokens — never a clear identifier (R-SEC-10).
    /// * MUST return [`InputError::Unavailable`] when the backing store cannot be reached, and
    ///   [`InputError::Unknown`] for anything else; never a partial result in those cases.
    async fn fetch(&self, ids: &[RecordId]) -> Result<Vec<IncomingRecord>, InputError>;
}
