//! The input of reconciliation (R-REC, R-DATA-3): a *masked* record as the masking service hands
//! it on — envelope metadata, the masked payload and the keyed-hash match tokens of identifier
//! fields that arrived raw.
//!
//! Identifier values are compared only through their [`MatchToken`]s, never through the
//! payload: a value that arrived already masked (`********2345`) has no token and never keys a
//! match.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use etx_domain::{
    Category, ContentHash, Form, OrgId, OrgKind, Period, ReceiptId, RecordId, SchemaVersion, SystemId,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use etx_domain::canonical_json;

/// Why a part of an incoming record is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// A match-token field is not a JSON pointer (RFC 6901: empty, or starting with `/`, with
    /// `~` only as `~0` or `~1`).
    #[error("`{0}` is not a JSON pointer")]
    InvalidPointer(String),
    /// A match token is empty, longer than 256 characters, not visible ASCII, or looks like a
    /// masked value rather than a keyed hash.
    #[error("the match token at `{pointer}` is not a keyed-hash token")]
    InvalidToken {
        /// Where the token was given.
        pointer: String,
    },
    /// A province code is not two ASCII digits.
    #[error("`{0}` is not a 2-digit province code")]
    InvalidProvinceCode(String),
}

/// A keyed-hash token of an identifier value (issue 5 §2: HMAC-SHA256 with a per-purpose key),
/// computed by the masking service for an identifier field that arrived **raw**. Tokens are
/// opaque: they are only ever compared for equality (R-REC, R-SEC-10).
///
/// 1–256 visible ASCII characters; a value that looks masked (`********2345`, `[CCCD]`,
/// [`etx_masking_core::looks_masked`]) is refused unless it is one of the masking service's own
/// `tok_`/`rtk_` tokens, so a masked value can never be passed off as a match key.
///
/// ```
/// use etx_reconciliation_core::record::MatchToken;
/// assert!(MatchToken::parse("tok_abcdefghijklmnopqrstuvwa").is_ok());
/// assert!(MatchToken::parse("9f86d081884c7d659a2feaa0c55ad015").is_ok());
/// assert!(MatchToken::parse("********2345").is_err());
/// assert!(MatchToken::parse("[CCCD]").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MatchToken(String);

impl MatchToken {
    /// Parses a token.
    pub fn parse(s: &str) -> Result<Self, RecordError> {
        let ok = !s.is_empty()
            && s.len() <= 256
            && s.bytes().all(|b| b.is_ascii_graphic())
            && (etx_masking_core::is_token(s) || !etx_masking_core::looks_masked(s));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(RecordError::InvalidToken {
                pointer: String::new(),
            })
        }
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MatchToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MatchToken {
    type Error = RecordError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<MatchToken> for String {
    fn from(t: MatchToken) -> String {
        t.0
    }
}

/// The match tokens of one record: JSON pointer of the identifier field in the payload →
/// its [`MatchToken`]. A field whose value arrived masked has no entry.
///
/// ```
/// use etx_reconciliation_core::record::MatchTokens;
/// let tokens = MatchTokens::from_pairs([("/subject_tax_code", "tok_abcdefghijklmnopqrstuvwa")]).unwrap();
/// assert!(tokens.get("/subject_tax_code").is_some());
/// assert!(MatchTokens::from_pairs([("subject_tax_code", "tok_x")]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BTreeMap<String, String>", into = "BTreeMap<String, String>")]
pub struct MatchTokens(BTreeMap<String, MatchToken>);

impl MatchTokens {
    /// No tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the map from `(pointer, token)` pairs, checking both.
    pub fn from_pairs<P: AsRef<str>, T: AsRef<str>>(
        pairs: impl IntoIterator<Item = (P, T)>,
    ) -> Result<Self, RecordError> {
        let mut map = BTreeMap::new();
        for (p, t) in pairs {
            let p = p.as_ref();
            if !is_pointer(p) {
                return Err(RecordError::InvalidPointer(p.to_owned()));
            }
            let token = MatchToken::parse(t.as_ref()).map_err(|_| RecordError::InvalidToken {
                pointer: p.to_owned(),
            })?;
            map.insert(p.to_owned(), token);
        }
        Ok(Self(map))
    }

    /// The token of the field at `pointer`.
    pub fn get(&self, pointer: &str) -> Option<&MatchToken> {
        self.0.get(pointer)
    }

    /// Every `(pointer, token)`, ordered by pointer.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MatchToken)> {
        self.0.iter().map(|(p, t)| (p.as_str(), t))
    }

    /// Whether there is no token.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<BTreeMap<String, String>> for MatchTokens {
    type Error = RecordError;
    fn try_from(m: BTreeMap<String, String>) -> Result<Self, Self::Error> {
        Self::from_pairs(m)
    }
}

impl From<MatchTokens> for BTreeMap<String, String> {
    fn from(t: MatchTokens) -> Self {
        t.0.into_iter().map(|(p, v)| (p, v.0)).collect()
    }
}

/// Whether `s` is a JSON pointer (RFC 6901).
pub(crate) fn is_pointer(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    if !s.starts_with('/') {
        return false;
    }
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return false;
        }
    }
    true
}

/// A provincial-level unit's code (Decision 19/2025/QĐ-TTg): two ASCII digits, as the record
/// schemas write it (`79` = Thành phố Hồ Chí Minh).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ProvinceCode([u8; 2]);

impl ProvinceCode {
    /// Parses `01` … `99`.
    pub fn parse(s: &str) -> Result<Self, RecordError> {
        match s.trim().as_bytes() {
            [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => Ok(Self([*a, *b])),
            _ => Err(RecordError::InvalidProvinceCode(s.to_owned())),
        }
    }

    /// The two digits.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII digits, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or("00")
    }
}

impl fmt::Display for ProvinceCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for ProvinceCode {
    type Error = RecordError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<ProvinceCode> for String {
    fn from(p: ProvinceCode) -> String {
        p.to_string()
    }
}

/// Who sent a record (R-DATA-3): organisation (with its kind, which ranks its authority when
/// values are merged), system and the receipt it was acknowledged with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SourceRef {
    /// The submitting organisation.
    pub org_id: OrgId,
    /// Its kind (ministry, province, …).
    pub org_kind: OrgKind,
    /// The submitting system.
    pub system_id: SystemId,
    /// The receipt the submission was acknowledged with.
    pub receipt_id: ReceiptId,
}

/// A masked record, ready to reconcile (R-REC). The server builds it from the
/// `records.masked` message and the stored masked copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncomingRecord {
    /// The record's id (assigned at ingestion, UUIDv7).
    pub record_id: RecordId,
    /// Who sent it.
    pub source: SourceRef,
    /// Its data category.
    pub category: Category,
    /// The schema version of its payload.
    pub schema_version: SchemaVersion,
    /// Its reporting period.
    pub period: Period,
    /// When ingestion durably received it.
    pub received_at: DateTime<Utc>,
    /// The version of the masking policy that masked the payload.
    pub masking_policy_version: u32,
    /// The form it arrived in (raw or partially masked, R-ING-2).
    pub form: Form,
    /// The masked payload.
    pub payload: Value,
    /// Keyed-hash tokens of the identifier fields that arrived raw.
    pub match_tokens: MatchTokens,
    /// A digest of the record's content: two records of one source with the same digest are
    /// duplicates. [`IncomingRecord::content_of`] computes one from the masked payload and the
    /// tokens; a digest of the *raw* content (ingestion's keyed content hash) is better, as it
    /// does not change when the masking policy does.
    pub content: ContentHash,
    /// The province of the reporting organisation, when it is a provincial-level unit or one of
    /// its departments (the server reads it from the organisation hierarchy). A province's
    /// statistics without a `province_code` dimension are about that province, so they meet a
    /// ministry's statistics for it (see [`crate::keys`]).
    pub reporter_territory: Option<ProvinceCode>,
}

impl IncomingRecord {
    /// The SHA-256 of the canonical JSON (sorted keys, no whitespace) of
    /// `{"match_tokens": …, "payload": …}`.
    pub fn content_of(payload: &Value, tokens: &MatchTokens) -> ContentHash {
        let tokens: serde_json::Map<String, Value> = tokens
            .iter()
            .map(|(p, t)| (p.to_owned(), Value::String(t.as_str().to_owned())))
            .collect();
        let mut doc = serde_json::Map::new();
        doc.insert("match_tokens".to_owned(), Value::Object(tokens));
        doc.insert("payload".to_owned(), payload.clone());
        let bytes = canonical_json::to_vec(&Value::Object(doc));
        ContentHash::from_bytes(Sha256::digest(&bytes).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masked_values_are_never_tokens() {
        for masked in [
            "********2345",
            "090xxxx456",
            "[REDACTED]",
            "t***@example.vn",
            "",
            "a b",
            "khóa",
        ] {
            assert!(MatchToken::parse(masked).is_err(), "{masked}");
        }
        assert!(MatchToken::parse(&"a".repeat(257)).is_err());
        // The masking service's own tokens may contain runs such as `xxx` in base32.
        assert!(MatchToken::parse(&format!("tok_xxx{}", "a".repeat(23))).is_ok());
    }

    #[test]
    fn token_maps_check_pointers_and_tokens_and_round_trip() {
        assert_eq!(
            MatchTokens::from_pairs([("/a~2", "tok")]),
            Err(RecordError::InvalidPointer("/a~2".to_owned()))
        );
        assert_eq!(
            MatchTokens::from_pairs([("/expert/citizen_id", "************")]),
            Err(RecordError::InvalidToken {
                pointer: "/expert/citizen_id".to_owned()
            })
        );
        let t = MatchTokens::from_pairs([("/expert/citizen_id", "h1"), ("/expert/phone", "h2")]).unwrap();
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(json, json!({"/expert/citizen_id": "h1", "/expert/phone": "h2"}));
        assert_eq!(serde_json::from_value::<MatchTokens>(json).unwrap(), t);
        assert!(serde_json::from_value::<MatchTokens>(json!({"/x": "[MST]"})).is_err());
    }

    #[test]
    fn province_codes_are_two_digits() {
        assert_eq!(
            ProvinceCode::parse("79").map(|p| p.to_string()).ok().as_deref(),
            Some("79")
        );
        for bad in ["7", "790", "7a", "", "٧٩"] {
            assert!(ProvinceCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn content_digest_ignores_key_order_but_not_values_or_tokens() {
        let a = json!({"indicator": "transaction_count", "value": 1, "dimensions": {"a": "1", "b": "2"}});
        let b = json!({"dimensions": {"b": "2", "a": "1"}, "value": 1, "indicator": "transaction_count"});
        let none = MatchTokens::new();
        assert_eq!(
            IncomingRecord::content_of(&a, &none),
            IncomingRecord::content_of(&b, &none)
        );
        let c = json!({"indicator": "transaction_count", "value": 2, "dimensions": {"a": "1", "b": "2"}});
        assert_ne!(
            IncomingRecord::content_of(&a, &none),
            IncomingRecord::content_of(&c, &none)
        );
        let some = MatchTokens::from_pairs([("/x", "h")]).unwrap();
        assert_ne!(
            IncomingRecord::content_of(&a, &none),
            IncomingRecord::content_of(&a, &some)
        );
    }
}
