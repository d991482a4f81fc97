//! Batch ingestion (R-ING-1 batch, R-ING-3 file formats, R-REC control totals): the values a
//! batch upload is described by, and the streaming row readers of the four file formats.
//!
//! A batch is a file of rows. Every row becomes one record item (an envelope object with a
//! `payload`, exactly what `POST /api/v1/records` takes for one record); envelope fields a row
//! does not carry are filled from the batch's [`BatchDefaults`] (query parameters or the
//! multipart manifest). The readers in [`parse`] turn a byte stream into [`RowItem`]s one at a
//! time, so memory stays bounded whatever the file size.

pub mod parse;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The file formats a batch may come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchFormat {
    /// A JSON array of record items.
    Json,
    /// One JSON record item per line.
    Ndjson,
    /// UTF-8 CSV with a header row; columns map to envelope and payload fields.
    Csv,
    /// An XML document of `<record>` elements (the real-time XML wire format).
    Xml,
}

impl BatchFormat {
    /// The wire name (`json`, `ndjson`, `csv`, `xml`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Ndjson => "ndjson",
            Self::Csv => "csv",
            Self::Xml => "xml",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Some(Self::Json),
            "ndjson" | "jsonl" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            "xml" => Some(Self::Xml),
            _ => None,
        }
    }

    /// The format of a media type (`application/json`, `application/x-ndjson`,
    /// `application/jsonl`, `text/csv`, `application/xml`, `text/xml`), parameters ignored.
    pub fn from_media_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        match base.as_str() {
            "application/json" => Some(Self::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines" => Some(Self::Ndjson),
            "text/csv" | "application/csv" => Some(Self::Csv),
            "application/xml" | "text/xml" => Some(Self::Xml),
            _ => None,
        }
    }
}

/// Envelope fields that apply to every row that does not carry its own (query parameters
/// `category`, `schema_version`, `period`, `classification`, `priority`, `form` of the upload).
/// Values are kept as the submitter wrote them; they are checked per row by the same parser
/// as real-time submissions, so a bad default shows up as a violation of every row.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchDefaults {
    /// `category`.
    pub category: Option<String>,
    /// `schema_version`.
    pub schema_version: Option<String>,
    /// `period`.
    pub period: Option<String>,
    /// `classification`.
    pub classification: Option<String>,
    /// `priority`.
    pub priority: Option<String>,
    /// `form`.
    pub form: Option<String>,
}

/// One row of a batch file, turned into a record item.
#[derive(Debug, Clone, PartialEq)]
pub struct RowItem {
    /// 1-based position of the row among the file's rows (header excluded).
    pub row: u64,
    /// 1-based line of the file where the row starts.
    pub line: u64,
    /// The record item (envelope + payload, defaults applied), or why the row could not even
    /// be read as one (bad JSON on an NDJSON line, a CSV cell of the wrong type…).
    pub item: Result<serde_json::Value, Vec<etx_domain::FieldViolation>>,
}

/// Why a batch file cannot be read at all (rather than one row being bad).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The file's structure is broken at `line` (unterminated JSON array, malformed XML, a
    /// CSV without a usable header…).
    #[error("malformed {format} file at line {line}: {reason}")]
    Malformed {
        /// The format being read.
        format: &'static str,
        /// 1-based line.
        line: u64,
        /// What is wrong, in English, never echoing submitted values.
        reason: String,
    },
    /// XML with a DTD, entity declaration or processing instruction (R-SEC-3).
    #[error("XML DTDs and entities are not accepted")]
    DtdForbidden,
    /// Not UTF-8.
    #[error("the file is not UTF-8 (line {line})")]
    NotUtf8 {
        /// 1-based line.
        line: u64,
    },
    /// Reading the underlying stream failed.
    #[error("reading the file failed: {0}")]
    Io(String),
}

/// Life-cycle of a batch (issue 3 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// The file is durably stored; processing has not started.
    Received,
    /// Every row is being read and validated; nothing stored yet.
    Validating,
    /// Valid rows are being stored.
    Storing,
    /// Done: every valid row stored (or, for a dry run, validated).
    Completed,
    /// Refused as a whole (control totals, unreadable file); no row kept.
    Rejected,
    /// Stopped by an internal error after retries; rows stored so far stay stored.
    Failed,
}

impl BatchState {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Validating => "validating",
            Self::Storing => "storing",
            Self::Completed => "completed",
            Self::Rejected => "rejected",
            Self::Failed => "failed",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "received" => Self::Received,
            "validating" => Self::Validating,
            "storing" => Self::Storing,
            "completed" => Self::Completed,
            "rejected" => Self::Rejected,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Whether processing is over.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Rejected | Self::Failed)
    }
}

/// Row counts of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BatchCounts {
    /// Rows in the file.
    pub total: u64,
    /// Rows stored now (dry run: rows that would be).
    pub accepted: u64,
    /// Rows refused.
    pub rejected: u64,
    /// Rows already stored earlier (or earlier in the same file): not stored again.
    pub duplicate: u64,
}

/// Control totals a batch may declare (R-REC): a mismatch rejects the whole batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ControlTotals {
    /// `X-Batch-Row-Count`.
    pub row_count: Option<u64>,
    /// `X-Batch-SHA256`, lower-case hex.
    pub sha256: Option<String>,
}

/// Why a batch was rejected as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum RejectReason {
    /// Declared row count differs from the file's.
    RowCountMismatch {
        /// Declared.
        declared: u64,
        /// Found.
        actual: u64,
    },
    /// Declared SHA-256 differs from the file's.
    Sha256Mismatch {
        /// Declared.
        declared: String,
        /// Computed.
        actual: String,
    },
    /// The file cannot be read.
    Unreadable {
        /// Why (English; see [`FileError`]).
        detail: String,
    },
}

/// What a batch looks like to its source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchView {
    /// Batch id.
    pub id: uuid::Uuid,
    /// State.
    pub state: BatchState,
    /// Format.
    pub format: BatchFormat,
    /// Validate only.
    pub dry_run: bool,
    /// Counts so far.
    pub counts: BatchCounts,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Declared control totals.
    pub declared: ControlTotals,
    /// Why it was rejected, when it was.
    pub reject_reason: Option<RejectReason>,
    /// The receipt covering the stored rows (none for a dry run).
    pub receipt_id: Option<uuid::Uuid>,
    /// Received (file durably stored).
    pub received_at: DateTime<Utc>,
    /// Processing started.
    pub started_at: Option<DateTime<Utc>>,
    /// Processing finished.
    pub finished_at: Option<DateTime<Utc>>,
}
