//! The record-store port ingestion needs. The adapter encrypts payloads, commits records,
//! receipt and outbox rows in one transaction, and only then answers.

use crate::model::{Receipt, StoredRecord, Submission, SubmitOutcome};
use etx_domain::authz::OrgScope;
use etx_domain::{ReceiptId, RecordId};

/// Why a submission could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The idempotency key (of the submission or of one of its records) was used before with
    /// different content.
    #[error("idempotency key reused with different content")]
    IdempotencyConflict,
    /// The store cannot take writes now (database down, shutting down). Nothing was stored.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Anything else. Nothing was stored.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Read failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Anything.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Durable storage of submissions.
#[async_trait::async_trait]
pub trait RecordStore: Send + Sync + std::fmt::Debug {
    /// Stores a submission durably, encrypted, with its outbox messages, atomically.
    ///
    /// - MUST return `Replayed(original receipt)` and store nothing when the organisation already
    ///   has a receipt with the same submission idempotency key and the same `request_mac`;
    /// - MUST return `IdempotencyConflict` and store nothing when that key exists with another
    ///   `request_mac`, or when a record's own idempotency key exists with other content;
    /// - a record whose own idempotency key exists with the same content is not stored again:
    ///   the receipt lists the earlier record's id;
    /// - MUST NOT return `Ok` before the transaction is durably committed.
    async fn submit(&self, submission: Submission) -> Result<SubmitOutcome, SubmitError>;

    /// A record of an organisation within `scope`, decrypted. `Ok(None)` when unknown or
    /// outside the scope (issue 4 §3: a person reads their organisation's subtree).
    async fn record(&self, scope: OrgScope, id: RecordId) -> Result<Option<StoredRecord>, StoreError>;

    /// A receipt of an organisation within `scope`. `Ok(None)` when unknown or outside it.
    async fn receipt(&self, scope: OrgScope, id: ReceiptId) -> Result<Option<Receipt>, StoreError>;
}
