//! The record envelope and its provenance (R-DATA-2, R-DATA-3, R-ING-5).

use crate::{
    Category, Classification, Form, OrgId, ParseError, Period, Priority, ReceiptId, SchemaVersion, SystemId,
    ViolationCode,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A client-chosen key that makes a submission idempotent (R-ING-5):
/// 1–128 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Parses a key.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.is_empty() || s.len() > 128 {
            return Err(ParseError::new(
                ViolationCode::Format,
                "idempotency key must be 1-128 characters",
            ));
        }
        if !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::new(
                ViolationCode::Format,
                "idempotency key must be visible ASCII",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for IdempotencyKey {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<IdempotencyKey> for String {
    fn from(k: IdempotencyKey) -> String {
        k.0
    }
}

/// A SHA-256 digest of a canonical body, shown in receipts as `sha256:<hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// Wraps a digest.
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        Self(b)
    }

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses `sha256:<64 hex>` or bare hex.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if hex.len() != 64 {
            return Err(ParseError::new(
                ViolationCode::Format,
                "content hash must be 64 hex digits",
            ));
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let pair =
                std::str::from_utf8(chunk).map_err(|_| ParseError::new(ViolationCode::Format, "not hex"))?;
            out[i] = u8::from_str_radix(pair, 16)
                .map_err(|_| ParseError::new(ViolationCode::Format, "not hex"))?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for ContentHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ContentHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How a record reached us (R-ING-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Tiếp nhận tức thời.
    Realtime,
    /// Tiếp nhận theo đợt.
    Batch,
}

impl Method {
    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Realtime => "realtime",
            Self::Batch => "batch",
        }
    }
}

/// The declared, validated envelope of one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Data category.
    pub category: Category,
    /// Schema version of the payload.
    pub schema_version: SchemaVersion,
    /// Reporting period.
    pub period: Period,
    /// Classification (never a state secret).
    pub classification: Classification,
    /// Handling priority.
    pub priority: Priority,
    /// Raw or partially masked.
    pub form: Form,
    /// Optional idempotency key.
    pub idempotency_key: Option<IdempotencyKey>,
}

/// Where a record came from, kept for its whole life (R-DATA-3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The submitting organisation.
    pub org_id: OrgId,
    /// The submitting system.
    pub system_id: SystemId,
    /// The receipt it was acknowledged with.
    pub receipt_id: ReceiptId,
    /// When it was durably received.
    pub received_at: DateTime<Utc>,
    /// Real-time or batch.
    pub method: Method,
    /// The form it arrived in.
    pub original_form: Form,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert!(IdempotencyKey::parse("order-2026-10-0001").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("a b").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129)).is_err());
        assert!(IdempotencyKey::parse("khóa").is_err());
    }

    #[test]
    fn content_hash_round_trips() {
        let h = ContentHash::from_bytes([0xab; 32]);
        let s = h.to_string();
        assert!(s.starts_with("sha256:abab"));
        assert_eq!(ContentHash::parse(&s).ok(), Some(h));
        assert!(ContentHash::parse("sha256:zz").is_err());
    }
}
