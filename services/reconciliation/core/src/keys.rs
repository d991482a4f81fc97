//! Match keys (R-REC): the **source key** (exact-key deduplication of one organisation's
//! statements), the **fact key** (the same fact reported by different organisations) and the
//! **blocking keys** (which canonical records are worth a fuzzy comparison).
//!
//! Keys are SHA-256 digests of canonical JSON of the key parts, so they are fixed-length,
//! index well and hold nothing readable: a key built from a keyed-hash token of a citizen id
//! is as opaque as the token. Which parts each category uses, and why, is documented in
//! [`crate::categories`]:
//!
//! | category | source key (with the organisation) | fact key (without it) | blocking |
//! |---|---|---|---|
//! | statistics | indicator, transaction kind, unit, period, dimensions | the same, when the fact has a subject (province or system) | — |
//! | policy | document type and number, period | the same | (only when fuzzy matching is configured) |
//! | workforce | activity, start date, title, period — or the expert's token | the expert's token, for expert registrations | province + start date; province + distinctive title word |
//! | enforcement | case type, case number, opening date, period | the same | opening date; case number; subject's tax-code token; distinctive words of the subject's name |

use std::fmt;

use etx_domain::{Category, ContentHash, OrgId, Period};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use etx_domain::canonical_json;

/// Named key parts, in a fixed order: `(name, value)`.
pub(crate) type Parts = Vec<(String, String)>;

macro_rules! key_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 32]);

        impl $name {
            /// Wraps a digest read back from storage.
            pub const fn from_bytes(b: [u8; 32]) -> Self {
                Self(b)
            }
            /// The digest.
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            /// Parses the 64 lower-case hex digits [`Display`](fmt::Display) writes.
            pub fn parse(s: &str) -> Result<Self, KeyParseError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| KeyParseError(s.chars().take(80).collect()))?;
                Ok(Self(out))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &hex::encode(self.0)[..12])
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

key_type!(
    /// One organisation's statement of one natural key for one period (R-REC exact-key
    /// deduplication): records with the same source key are the same statement, re-sent
    /// (duplicate) or corrected (revision).
    SourceKey
);
key_type!(
    /// One fact, whoever reports it (R-REC cross-source matching): a ministry's and a
    /// province's statistics of the same indicator for the same province and month share it;
    /// it never includes the reporting organisation.
    FactKey
);
key_type!(
    /// A block of records worth comparing by fuzzy similarity (R-REC): records that share no
    /// blocking key are never compared.
    BlockingKey
);

/// A key that is not 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a key (64 hex digits)")]
pub struct KeyParseError(String);

/// The keys of one record (R-REC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    /// Its source key.
    pub source: SourceKey,
    /// Its fact key, when the fact can be told apart from the reporter (see
    /// [`crate::categories`]); `None` means it is only ever matched with its own source's records
    /// (and by fuzzy matching, where configured).
    pub fact: Option<FactKey>,
    /// Its blocking keys, sorted, without repeats; empty when the category is not fuzzily
    /// matched.
    pub blocking: Vec<BlockingKey>,
}

fn digest(tag: &str, category: Category, period: Period, org: Option<OrgId>, parts: &Parts) -> [u8; 32] {
    let parts: Vec<Value> = parts
        .iter()
        .map(|(n, v)| Value::Array(vec![Value::String(n.clone()), Value::String(v.clone())]))
        .collect();
    let doc = serde_json::json!({
        "tag": tag,
        "category": category.as_str(),
        "period": period.to_string(),
        "org": org.map(|o| o.to_string()),
        "parts": parts,
    });
    Sha256::digest(canonical_json::to_vec(&doc)).into()
}

/// The source key of `org`'s statement with natural key `parts`.
pub(crate) fn source_key(category: Category, period: Period, org: OrgId, parts: &Parts) -> SourceKey {
    SourceKey(digest(
        "etx/reconciliation/source/v1",
        category,
        period,
        Some(org),
        parts,
    ))
}

/// The source key of a record whose natural key cannot be read (a key field arrived masked):
/// only an exact re-send of the same content by the same organisation shares it.
pub(crate) fn content_source_key(
    category: Category,
    period: Period,
    org: OrgId,
    content: &ContentHash,
) -> SourceKey {
    let parts = vec![("content".to_owned(), content.to_string())];
    SourceKey(digest(
        "etx/reconciliation/source-by-content/v1",
        category,
        period,
        Some(org),
        &parts,
    ))
}

/// The fact key of `parts`.
pub(crate) fn fact_key(category: Category, period: Period, parts: &Parts) -> FactKey {
    FactKey(digest(
        "etx/reconciliation/fact/v1",
        category,
        period,
        None,
        parts,
    ))
}

/// The blocking key of `parts`.
pub(crate) fn blocking_key(category: Category, period: Period, parts: &Parts) -> BlockingKey {
    BlockingKey(digest(
        "etx/reconciliation/block/v1",
        category,
        period,
        None,
        parts,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(kv: &[(&str, &str)]) -> Parts {
        kv.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn keys_depend_on_every_input_and_on_nothing_else() {
        let p = Period::parse("2026-10").unwrap();
        let q = Period::parse("2026-11").unwrap();
        let org = OrgId::new();
        let a = parts(&[("indicator", "transaction_count")]);
        let b = parts(&[("indicator", "failed_transactions")]);
        let k = source_key(Category::Statistics, p, org, &a);
        assert_eq!(k, source_key(Category::Statistics, p, org, &a));
        assert_ne!(k, source_key(Category::Statistics, q, org, &a));
        assert_ne!(k, source_key(Category::Statistics, p, OrgId::new(), &a));
        assert_ne!(k, source_key(Category::Statistics, p, org, &b));
        assert_ne!(k, source_key(Category::Workforce, p, org, &a));
        assert_ne!(k.0, fact_key(Category::Statistics, p, &a).0);
        assert_ne!(
            fact_key(Category::Statistics, p, &a).0,
            blocking_key(Category::Statistics, p, &a).0
        );
    }

    #[test]
    fn parts_cannot_be_confused_by_their_separators() {
        let p = Period::parse("2026").unwrap();
        let one = parts(&[("a", "x,y")]);
        let two = parts(&[("a", "x"), ("y", "")]);
        assert_ne!(
            fact_key(Category::Policy, p, &one),
            fact_key(Category::Policy, p, &two)
        );
    }

    #[test]
    fn keys_print_as_hex_and_parse_back() {
        let k = fact_key(
            Category::Policy,
            Period::parse("2026").unwrap(),
            &parts(&[("n", "1")]),
        );
        let s = k.to_string();
        assert_eq!(s.len(), 64);
        assert_eq!(FactKey::parse(&s), Ok(k));
        assert!(FactKey::parse("zz").is_err());
        let json = serde_json::to_string(&k).unwrap();
        assert_eq!(serde_json::from_str::<FactKey>(&json).unwrap(), k);
        assert!(format!("{k:?}").starts_with("FactKey("));
    }
}
