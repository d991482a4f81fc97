//! The shared kernel of ETX Hub: identifiers, the organisation hierarchy, data categories,
//! security labels, reporting periods, the record envelope and the error catalogue.
//!
//! Everything here is pure (no I/O, no framework) and every newtype can only be built valid
//! ("parse, don't validate"): once a caller holds a [`Period`] or an [`OrgCode`], it is valid.

pub mod authz;
pub mod canonical_json;
pub mod category;
pub mod error;
pub mod ids;
pub mod lang;
pub mod net;
pub mod org;
pub mod period;
pub mod record;
pub mod security;
pub mod vi_text;

pub use category::{Category, SchemaVersion};
pub use error::{ErrorCode, FieldViolation, ViolationCode};
pub use ids::{ApiKeyId, OrgId, ReceiptId, RecordId, SystemId, UserId};
pub use lang::Lang;
pub use net::IpNetwork;
pub use org::{OrgCode, OrgKind, OrgName, OrgTree, Organisation, SystemName};
pub use period::Period;
pub use record::{ContentHash, Envelope, IdempotencyKey, Method, Provenance};
pub use security::{Classification, Form, Priority};

/// A value that failed to parse into a domain type: which field rule was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ParseError {
    /// The violation kind, stable across releases.
    pub code: ViolationCode,
    /// A short English description for logs (user-facing text comes from the catalogue).
    pub detail: String,
}

impl ParseError {
    pub(crate) fn new(code: ViolationCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}
