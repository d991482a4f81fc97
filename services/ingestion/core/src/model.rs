//! Ingestion's values: a validated submission, its receipt, a stored record.

use chrono::{DateTime, Utc};
use etx_domain::{
    ApiKeyId, ContentHash, Envelope, IdempotencyKey, Method, OrgId, ReceiptId, RecordId, SystemId,
};
use serde::Serialize;

/// One validated record ready to store.
#[derive(Debug, Clone)]
pub struct NewRecord {
    /// Its id, assigned at validation.
    pub id: RecordId,
    /// The validated envelope.
    pub envelope: Envelope,
    /// The validated payload (stored only encrypted).
    pub payload: serde_json::Value,
    /// Keyed hash of the record's canonical content, for deduplication.
    pub content_mac: [u8; 32],
    /// Keyed hash of the record's own idempotency key: what is stored and matched, never the
    /// key itself (R-SEC-5: anything matched is matched through keyed hashes).
    pub idempotency_mac: Option<[u8; 32]>,
}

/// A validated submission of one or more records (R-ING-1 real-time).
#[derive(Debug, Clone)]
pub struct Submission {
    /// The receipt id this submission gets if it is new.
    pub receipt_id: ReceiptId,
    /// Submitting organisation.
    pub org_id: OrgId,
    /// Submitting system.
    pub system_id: SystemId,
    /// The key used.
    pub key_id: Option<ApiKeyId>,
    /// Submission-level idempotency key (header, or the envelope key of a single record).
    pub idempotency_key: Option<IdempotencyKey>,
    /// Keyed hash of `idempotency_key`, the only form stored.
    pub idempotency_mac: Option<[u8; 32]>,
    /// SHA-256 of the canonical submission, shown in the receipt.
    pub content_hash: ContentHash,
    /// Keyed hash of the canonical submission, to compare replays.
    pub request_mac: [u8; 32],
    /// Real-time or batch.
    pub method: Method,
    /// The records, in submission order.
    pub records: Vec<NewRecord>,
    /// Time of receipt.
    pub received_at: DateTime<Utc>,
}

/// The acknowledgement of a durably stored submission.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    /// Receipt id.
    pub id: ReceiptId,
    /// Submitting organisation.
    pub org_id: OrgId,
    /// Submitting system.
    pub system_id: SystemId,
    /// The records of the submission, in order (ids of earlier copies for duplicates).
    pub record_ids: Vec<RecordId>,
    /// When it was stored.
    pub received_at: DateTime<Utc>,
    /// SHA-256 of the canonical submission.
    pub content_hash: ContentHash,
    /// Idempotency key, when known: the submitter's own, echoed back; never stored in clear,
    /// so a receipt read back later does not show it.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// Whether a submission was stored now or recognised as a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// Stored now.
    Created(Receipt),
    /// Same idempotency key and body as an earlier submission: its receipt, nothing stored.
    Replayed(Receipt),
}

impl SubmitOutcome {
    /// The receipt either way.
    pub fn receipt(&self) -> &Receipt {
        match self {
            Self::Created(r) | Self::Replayed(r) => r,
        }
    }
}

/// Life-cycle status of a record (GLOSSARY.md "Statuses").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    /// Đã tiếp nhận: stored, waiting for the pipeline.
    Received,
}

impl RecordStatus {
    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
        }
    }
}

/// A stored record read back by its source (decrypted).
#[derive(Debug, Clone)]
pub struct StoredRecord {
    /// Record id.
    pub id: RecordId,
    /// Envelope.
    pub envelope: Envelope,
    /// Decrypted payload.
    pub payload: serde_json::Value,
    /// Provenance (R-DATA-3).
    pub provenance: etx_domain::Provenance,
    /// Status.
    pub status: RecordStatus,
}
