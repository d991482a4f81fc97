//! What reconciliation reads from each category's payload (R-REC, R-DATA-1): its natural key,
//! its fact key, its blocking keys, the measures two sources must agree on, and the fields
//! fuzzy matching compares. One module per category documents its choices:
//! [`statistics`], [`policy`], [`workforce`], [`enforcement`].
//!
//! Common rules:
//! * Only schema version 1 is understood; any other gives [`ViewError::UnsupportedSchema`].
//! * Identifier fields are read **only** from the match tokens, never from the payload.
//! * A string that looks masked ([`etx_masking_core::looks_masked`]) is never used: in a key
//!   field it makes the record *unkeyable* — its source key is then built from its content
//!   digest, so only an exact re-send is recognised; as a measure or fuzzy field it counts as
//!   absent.
//! * Codes (enumerations, province codes) are compared trimmed and lower-cased; official
//!   numbers with [`fold_number`](crate::normalise::fold_number); names with
//!   [`fold_name`](crate::normalise::fold_name).

pub mod enforcement;
pub mod policy;
pub mod statistics;
pub mod workforce;

use std::collections::BTreeMap;

use chrono::NaiveDate;
use etx_domain::{Category, SchemaVersion};
use serde::Serialize;
use serde_json::Value;

use crate::keys::Parts;
use crate::normalise::fold;
use crate::record::{MatchToken, MatchTokens, ProvinceCode};

/// Why a payload cannot be reconciled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ViewError {
    /// The payload is not a JSON object.
    #[error("the payload is not a JSON object")]
    NotAnObject,
    /// The category's schema version is not one reconciliation understands.
    #[error("{category} schema version {version} is not supported")]
    UnsupportedSchema {
        /// The category.
        category: Category,
        /// The version given.
        version: SchemaVersion,
    },
    /// A required field is absent (or `null`).
    #[error("`{pointer}` is missing")]
    Missing {
        /// The field.
        pointer: String,
    },
    /// A field has the wrong JSON type.
    #[error("`{pointer}` must be {expected}")]
    WrongType {
        /// The field.
        pointer: String,
        /// What it must be.
        expected: &'static str,
    },
    /// A field has the right type but an impossible value (a date that does not exist).
    #[error("`{pointer}` is invalid: {detail}")]
    InvalidValue {
        /// The field.
        pointer: String,
        /// What is wrong.
        detail: String,
    },
}

/// A value two sources must agree on (R-REC tolerance matching).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum MeasureValue {
    /// A quantity, compared within the tolerance.
    Number(f64),
    /// A code, date or status, compared folded ([`fold`]); the text as given.
    Text(String),
    /// A keyed-hash token, compared for equality.
    Token(MatchToken),
}

impl MeasureValue {
    /// The value as JSON, for showing differences.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Number(n) => serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number),
            Self::Text(s) => Value::String(s.clone()),
            Self::Token(t) => Value::String(t.as_str().to_owned()),
        }
    }
}

/// One measure of a record: its value and where it sits in the payload (used to write a mean
/// back, see [`crate::config::MergeRule::Mean`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measure {
    /// The JSON pointer of the value in this record's payload (empty for a token).
    pub pointer: String,
    /// The value.
    pub value: MeasureValue,
}

/// How a fuzzy field is compared (see [`crate::similarity`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// [`similarity::name`](crate::similarity::name): names of organisations and activities.
    Name,
    /// [`similarity::token_set`](crate::similarity::token_set): free text.
    Text,
    /// Folded equality: codes and official numbers.
    Code,
    /// [`similarity::date`](crate::similarity::date) within the configured window.
    Date,
    /// Token equality; may be configured *decisive* (equal → same entity, different → distinct).
    Token,
}

/// The value of one fuzzy field of a record.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum FuzzyValue {
    /// A name.
    Name(String),
    /// A free text.
    Text(String),
    /// A code or official number, already folded.
    Code(String),
    /// A date.
    Date(NaiveDate),
    /// A keyed-hash token.
    Token(MatchToken),
}

impl FuzzyValue {
    /// The comparator this value is compared with.
    pub fn comparator(&self) -> Comparator {
        match self {
            Self::Name(_) => Comparator::Name,
            Self::Text(_) => Comparator::Text,
            Self::Code(_) => Comparator::Code,
            Self::Date(_) => Comparator::Date,
            Self::Token(_) => Comparator::Token,
        }
    }
}

/// What reconciliation reads from one record's payload.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordView {
    /// Natural-key parts (without the organisation); `None` when a key field is unusable.
    pub(crate) natural: Option<Parts>,
    /// Fact-key parts; `None` when the fact cannot be told apart from its reporter.
    pub(crate) fact: Option<Parts>,
    /// Blocking-key parts.
    pub(crate) blocking: Vec<Parts>,
    /// Measure name → measure.
    pub(crate) measures: BTreeMap<String, Measure>,
    /// Fuzzy field name → value.
    pub(crate) fuzzy: BTreeMap<String, FuzzyValue>,
    /// The statistics indicator, for per-indicator tolerances.
    pub(crate) indicator: Option<String>,
}

impl RecordView {
    /// Reads `payload` of `category`/`version`, with the record's match tokens and the
    /// reporter's province (statistics only, see [`statistics`]).
    pub fn read(
        category: Category,
        version: SchemaVersion,
        payload: &Value,
        tokens: &MatchTokens,
        reporter_territory: Option<ProvinceCode>,
    ) -> Result<Self, ViewError> {
        if version != SchemaVersion::V1 {
            return Err(ViewError::UnsupportedSchema { category, version });
        }
        if !payload.is_object() {
            return Err(ViewError::NotAnObject);
        }
        match category {
            Category::Statistics => statistics::view(payload, reporter_territory),
            Category::Policy => policy::view(payload),
            Category::Workforce => workforce::view(payload, tokens),
            Category::Enforcement => enforcement::view(payload, tokens),
        }
    }

    /// Whether the natural key could be read (no key field arrived masked).
    pub fn is_keyable(&self) -> bool {
        self.natural.is_some()
    }

    /// The measures, by name (`value`, `failure_reasons/timeout/count`, `status`, …).
    pub fn measures(&self) -> &BTreeMap<String, Measure> {
        &self.measures
    }

    /// The fuzzy fields, by name.
    pub fn fuzzy_fields(&self) -> &BTreeMap<String, FuzzyValue> {
        &self.fuzzy
    }

    /// The statistics indicator, if any.
    pub fn indicator(&self) -> Option<&str> {
        self.indicator.as_deref()
    }
}

/// The fuzzy fields a category offers, with their comparators (for validating configuration).
pub fn fuzzy_fields(category: Category) -> &'static [(&'static str, Comparator)] {
    match category {
        Category::Statistics => &[],
        Category::Policy => policy::FUZZY_FIELDS,
        Category::Workforce => workforce::FUZZY_FIELDS,
        Category::Enforcement => enforcement::FUZZY_FIELDS,
    }
}

// --- reading helpers -------------------------------------------------------------------------

/// The value at `ptr`, `None` when absent or `null`.
fn at<'a>(payload: &'a Value, ptr: &str) -> Option<&'a Value> {
    payload.pointer(ptr).filter(|v| !v.is_null())
}

/// `s` unless it is blank or looks masked.
fn usable(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty() && !etx_masking_core::looks_masked(t)).then_some(t)
}

fn opt_str<'a>(payload: &'a Value, ptr: &str) -> Result<Option<&'a str>, ViewError> {
    match at(payload, ptr) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ViewError::WrongType {
            pointer: ptr.to_owned(),
            expected: "a string",
        }),
    }
}

fn req_str<'a>(payload: &'a Value, ptr: &str) -> Result<&'a str, ViewError> {
    opt_str(payload, ptr)?.ok_or_else(|| ViewError::Missing {
        pointer: ptr.to_owned(),
    })
}

/// A usable string at `ptr` (absent, blank and masked values are `None`).
fn usable_str<'a>(payload: &'a Value, ptr: &str) -> Result<Option<&'a str>, ViewError> {
    Ok(opt_str(payload, ptr)?.and_then(usable))
}

/// A number at `ptr`; a masked string there counts as absent.
fn opt_num(payload: &Value, ptr: &str) -> Result<Option<f64>, ViewError> {
    match at(payload, ptr) {
        None => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64().filter(|x| x.is_finite())),
        Some(Value::String(s)) if usable(s).is_none() => Ok(None),
        Some(_) => Err(ViewError::WrongType {
            pointer: ptr.to_owned(),
            expected: "a number",
        }),
    }
}

fn parse_date(s: &str, ptr: &str) -> Result<NaiveDate, ViewError> {
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").map_err(|_| ViewError::InvalidValue {
        pointer: ptr.to_owned(),
        detail: "not a date YYYY-MM-DD".to_owned(),
    })
}

/// A date at `ptr`; a masked string counts as absent.
fn opt_date(payload: &Value, ptr: &str) -> Result<Option<NaiveDate>, ViewError> {
    match usable_str(payload, ptr)? {
        None => Ok(None),
        Some(s) => parse_date(s, ptr).map(Some),
    }
}

/// A code: trimmed and lower-cased.
fn code(s: &str) -> String {
    s.trim().to_lowercase()
}

fn part(name: &str, value: impl Into<String>) -> (String, String) {
    (name.to_owned(), value.into())
}

/// Adds a numeric measure read at `ptr` under `name`.
fn number_measure(
    measures: &mut BTreeMap<String, Measure>,
    payload: &Value,
    name: &str,
    ptr: &str,
) -> Result<(), ViewError> {
    if let Some(n) = opt_num(payload, ptr)? {
        measures.insert(
            name.to_owned(),
            Measure {
                pointer: ptr.to_owned(),
                value: MeasureValue::Number(n),
            },
        );
    }
    Ok(())
}

/// Adds a text measure read at `ptr` under `name`.
fn text_measure(
    measures: &mut BTreeMap<String, Measure>,
    payload: &Value,
    name: &str,
    ptr: &str,
) -> Result<(), ViewError> {
    if let Some(s) = usable_str(payload, ptr)? {
        measures.insert(
            name.to_owned(),
            Measure {
                pointer: ptr.to_owned(),
                value: MeasureValue::Text(s.to_owned()),
            },
        );
    }
    Ok(())
}

/// Adds a token measure for the field at `ptr` under `name`.
fn token_measure(measures: &mut BTreeMap<String, Measure>, tokens: &MatchTokens, name: &str, ptr: &str) {
    if let Some(t) = tokens.get(ptr) {
        measures.insert(
            name.to_owned(),
            Measure {
                pointer: String::new(),
                value: MeasureValue::Token(t.clone()),
            },
        );
    }
}

/// Whether two text measures agree: equal once folded.
pub(crate) fn same_text(a: &str, b: &str) -> bool {
    fold(a) == fold(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_version_1_objects_are_read() {
        let tokens = MatchTokens::new();
        let v2 = SchemaVersion::parse("2").unwrap();
        assert_eq!(
            RecordView::read(Category::Policy, v2, &json!({}), &tokens, None),
            Err(ViewError::UnsupportedSchema {
                category: Category::Policy,
                version: v2
            })
        );
        assert_eq!(
            RecordView::read(Category::Policy, SchemaVersion::V1, &json!([1]), &tokens, None),
            Err(ViewError::NotAnObject)
        );
    }

    #[test]
    fn masked_strings_count_as_absent() {
        let p = json!({"a": "********2345", "b": "[REDACTED]", "c": " ", "d": "79", "n": "***", "m": 5});
        assert_eq!(usable_str(&p, "/a"), Ok(None));
        assert_eq!(usable_str(&p, "/b"), Ok(None));
        assert_eq!(usable_str(&p, "/c"), Ok(None));
        assert_eq!(usable_str(&p, "/d"), Ok(Some("79")));
        assert_eq!(opt_num(&p, "/n"), Ok(None));
        assert_eq!(opt_num(&p, "/m"), Ok(Some(5.0)));
        assert!(matches!(opt_num(&p, "/d"), Err(ViewError::WrongType { .. })));
        assert!(matches!(opt_str(&p, "/m"), Err(ViewError::WrongType { .. })));
        assert_eq!(
            req_str(&p, "/zz"),
            Err(ViewError::Missing {
                pointer: "/zz".to_owned()
            })
        );
    }

    #[test]
    fn dates_must_exist() {
        let p = json!({"d": "2026-02-30", "e": "2026-02-28"});
        assert!(matches!(opt_date(&p, "/d"), Err(ViewError::InvalidValue { .. })));
        assert_eq!(opt_date(&p, "/e"), Ok(NaiveDate::from_ymd_opt(2026, 2, 28)));
    }
}
