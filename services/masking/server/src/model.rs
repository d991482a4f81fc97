//! What the masking stage stores and hands to readers (the HTTP API and reconciliation, later):
//! the [`MaskedRecord`] view, its [`MaskStatus`] and the [`HeldFinding`]s of a held record. None
//! of them carries a clear personal value (R-SEC-10).

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use etx_domain::{
    Category, Classification, Form, OrgId, Period, Priority, ReceiptId, RecordId, SchemaVersion, SystemId,
};
use etx_masking_core::FindingKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What became of a received record (R-ING-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskStatus {
    /// Masked for analysts, stored and announced on `records.masked`.
    Masked,
    /// Not passed on: a record declared `masked` that still carries an identifier in clear, or
    /// a payload in which the detectors still find one after masking. Only the places and kinds
    /// of the findings are kept, not the payload.
    Held,
}

impl MaskStatus {
    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Masked => "masked",
            Self::Held => "held",
        }
    }

    /// Parses a stored code.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "masked" => Some(Self::Masked),
            "held" => Some(Self::Held),
            _ => None,
        }
    }
}

impl fmt::Display for MaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a held record carries an identifier in clear, and what kind: never the value
/// (R-SEC-10). A pointer segment (object key) that itself holds an identifier is written `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HeldFinding {
    /// The JSON pointer (RFC 6901) of the value in the payload as received.
    pub pointer: String,
    /// What was found there.
    pub kind: FindingKind,
}

/// A stored masked copy (R-ING-2, R-DATA-3): every column of `masked_records`, with the JSON
/// columns parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaskedRecord {
    /// Ingestion's record id.
    pub record_id: RecordId,
    /// The submitting organisation.
    pub org_id: OrgId,
    /// The submitting system.
    pub system_id: SystemId,
    /// The receipt the record was acknowledged with.
    pub receipt_id: ReceiptId,
    /// Its data category (R-DATA-1).
    pub category: Category,
    /// The schema version of its payload.
    pub schema_version: SchemaVersion,
    /// Its reporting period.
    pub period: Period,
    /// Its classification.
    pub classification: Classification,
    /// Its handling priority (R-DATA-2).
    pub priority: Priority,
    /// The form it arrived in (R-ING-2).
    pub form: Form,
    /// Masked or held.
    pub status: MaskStatus,
    /// The version of the masking policy applied (R-DATA-3).
    pub policy_version: u32,
    /// The payload masked for analysts; `None` when held.
    pub payload: Option<Value>,
    /// JSON pointer → `tok_…` keyed token of each identifier that arrived in clear (citizen id,
    /// old id card, tax code, phone), for matching without the value. Empty for records that
    /// arrived masked and for held records.
    pub match_tokens: BTreeMap<String, String>,
    /// For held records, what was found where (no values); empty otherwise.
    pub findings: Vec<HeldFinding>,
    /// When ingestion durably received it.
    pub received_at: DateTime<Utc>,
    /// When it was masked (or held).
    pub masked_at: DateTime<Utc>,
}

/// Why masked records could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The database failed or cannot be reached.
    #[error("masking store unavailable: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A stored row does not parse back (a column was edited by hand or written by a newer
    /// version).
    #[error("stored masked record {record_id} is corrupt: {what}")]
    Corrupt {
        /// The row's record id.
        record_id: RecordId,
        /// Which column, and why.
        what: String,
    },
}
