//! Masking one received record (R-SEC-10, R-ING-2): the policy for analysts, the match tokens of
//! identifiers that arrived in clear, and the checks that decide whether a record is held
//! instead of passed on. Pure: no I/O.
//!
//! * **Raw** records are masked with [`Masker::apply`] for [`Audience::Analyst`]; each citizen
//!   id, old id card, tax code or phone that arrived in clear gets a match token (see
//!   [`match_tokens`]).
//! * **Masked** records are checked with
//!   [`Detector::check_declared_masked_with`](etx_masking_core::Detector::check_declared_masked_with):
//!   any finding holds the record. Otherwise the policy still runs over it, and it gets no match
//!   token (a masked value is never a match key).
//! * Whatever the form, a value that already looks masked ([`looks_masked`]) is kept as it
//!   arrived: a field rule would otherwise tokenise `********0123` into a token of `0123`, which
//!   would falsely link unrelated people.
//! * Whatever the form, the masked payload is scanned again (string values and object keys):
//!   a detector finding left after masking (a policy that keeps an identifier for analysts, an
//!   identifier used as an object key) holds the record, so nothing detectable in clear is ever
//!   stored.

use std::collections::BTreeMap;

use etx_domain::{Category, Form};
use etx_masking_core::{
    Applied, Audience, Detector, FindingKind, MaskError, Masker, MaskingPolicy, PhoneNumber, Purpose,
    TokenKeys, looks_masked,
};
use serde_json::Value;

use crate::model::HeldFinding;

/// The token purpose of match tokens: one key for every kind, so the same citizen id gives the
/// same token in every record, whatever field holds it (R-REC matches on it).
pub const MATCH_PURPOSE: &str = "match";

/// The identifier kinds that get a match token.
pub const MATCHED_KINDS: [FindingKind; 4] = [
    FindingKind::CitizenId,
    FindingKind::OldIdCard,
    FindingKind::TaxCode,
    FindingKind::Phone,
];

/// What one record becomes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Masking {
    /// Stored masked and announced.
    Masked {
        /// The payload masked for analysts.
        payload: Value,
        /// JSON pointer → match token.
        match_tokens: BTreeMap<String, String>,
    },
    /// Held, with what was found where.
    Held {
        /// Sorted, without duplicates.
        findings: Vec<HeldFinding>,
    },
}

/// Masks records with one masker, policy, detector and match purpose.
#[derive(Debug)]
pub(crate) struct RecordMasker<'a> {
    pub masker: &'a Masker,
    pub policy: &'a MaskingPolicy,
    pub detector: Detector,
    pub purpose: &'a Purpose,
}

impl RecordMasker<'_> {
    /// What a record of `category` that arrived in `form` with `payload` becomes.
    ///
    /// # Errors
    /// [`MaskError`] when the policy cannot be applied (a value too long for a reversible
    /// token): the record can never be masked under this policy.
    pub fn mask(&self, category: Category, form: Form, payload: &Value) -> Result<Masking, MaskError> {
        if form == Form::Masked {
            let mut findings: Vec<HeldFinding> = self
                .detector
                .check_declared_masked_with(self.policy, category, payload)
                .into_iter()
                .map(|f| HeldFinding {
                    pointer: safe_pointer(&self.detector, &f.pointer),
                    kind: f.kind,
                })
                .collect();
            findings.extend(key_findings(&self.detector, payload));
            if !findings.is_empty() {
                return Ok(held(findings));
            }
        }
        let masked = self
            .masker
            .apply(self.policy, Audience::Analyst, category, payload)?;
        let mut value = masked.value;
        keep_masked_values(payload, &mut value, &masked.applied);
        let leftovers = leftovers(&self.detector, &value);
        if !leftovers.is_empty() {
            return Ok(held(leftovers));
        }
        let match_tokens = match form {
            Form::Raw => match_tokens(
                self.masker.keys(),
                self.purpose,
                &self.detector,
                self.policy,
                category,
                payload,
            ),
            Form::Masked => BTreeMap::new(),
        };
        Ok(Masking::Masked {
            payload: value,
            match_tokens,
        })
    }
}

fn held(mut findings: Vec<HeldFinding>) -> Masking {
    findings.sort();
    findings.dedup();
    Masking::Held { findings }
}

/// Puts back every value a field rule changed that had arrived already masked.
fn keep_masked_values(original: &Value, masked: &mut Value, applied: &[Applied]) {
    for a in applied.iter().filter(|a| a.detected.is_none()) {
        if let Some(Value::String(orig)) = original.pointer(&a.pointer)
            && looks_masked(orig)
            && let Some(slot) = masked.pointer_mut(&a.pointer)
        {
            *slot = Value::String(orig.clone());
        }
    }
}

/// Detector findings in the string values and the object keys of a masked payload.
fn leftovers(detector: &Detector, masked: &Value) -> Vec<HeldFinding> {
    let mut out: Vec<HeldFinding> = detector
        .scan_value(masked)
        .into_iter()
        .map(|f| HeldFinding {
            pointer: safe_pointer(detector, &f.pointer),
            kind: f.kind,
        })
        .collect();
    out.extend(key_findings(detector, masked));
    out
}

/// Object keys that hold an identifier (the masker never rewrites keys).
fn key_findings(detector: &Detector, value: &Value) -> Vec<HeldFinding> {
    fn walk(detector: &Detector, value: &Value, ptr: &mut String, out: &mut Vec<HeldFinding>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&escape(k));
                    if let Some(f) = detector.scan(k).first() {
                        out.push(HeldFinding {
                            pointer: safe_pointer(detector, ptr),
                            kind: f.kind,
                        });
                    }
                    walk(detector, v, ptr, out);
                    ptr.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&i.to_string());
                    walk(detector, v, ptr, out);
                    ptr.truncate(len);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_) => {}
        }
    }
    let mut out = Vec::new();
    walk(detector, value, &mut String::new(), &mut out);
    out
}

/// A JSON pointer segment (RFC 6901 escaping).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `pointer` with every segment in which the detectors find an identifier replaced by `*`, so
/// a pointer never carries a value into a table, a log or a message.
pub(crate) fn safe_pointer(detector: &Detector, pointer: &str) -> String {
    if detector.scan(pointer).is_empty() {
        return pointer.to_owned();
    }
    pointer
        .split('/')
        .enumerate()
        .map(|(i, seg)| {
            if i > 0 && !detector.scan(seg).is_empty() {
                "*"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The match tokens of a raw payload: JSON pointer → `TokenKeys::token(purpose, normalised)`,
/// for
/// 1. every value of a policy field rule of `category` whose kind is in [`MATCHED_KINDS`], and
/// 2. every other string that is, as a whole (surrounding spaces aside), one identifier of those
///    kinds the detectors find (an identifier inside free text gets no token: its place is not a
///    stable key).
///
/// A value is tokenised only when it normalises to the identifier's shape ([`normalise`]); a
/// value that looks masked never is. Pointers through an object key holding an identifier are
/// left out.
pub(crate) fn match_tokens(
    keys: &TokenKeys,
    purpose: &Purpose,
    detector: &Detector,
    policy: &MaskingPolicy,
    category: Category,
    payload: &Value,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for rule in policy
        .rules_for(category)
        .filter(|r| MATCHED_KINDS.contains(&r.kind))
    {
        for ptr in rule.field.matches(payload) {
            let text = match payload.pointer(&ptr) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            if let Some(norm) = normalise(rule.kind, &text)
                && safe_pointer(detector, &ptr) == ptr
            {
                out.insert(ptr, keys.token(purpose, &norm));
            }
        }
    }
    for f in detector.scan_value(payload) {
        if !MATCHED_KINDS.contains(&f.kind) || out.contains_key(&f.pointer) {
            continue;
        }
        let Some(Value::String(s)) = payload.pointer(&f.pointer) else {
            continue;
        };
        let whole = s.get(..f.start).is_some_and(|b| b.trim().is_empty())
            && s.get(f.end..).is_some_and(|a| a.trim().is_empty());
        if !whole || safe_pointer(detector, &f.pointer) != f.pointer {
            continue;
        }
        if let Some(norm) = s.get(f.start..f.end).and_then(|v| normalise(f.kind, v)) {
            out.insert(f.pointer, keys.token(purpose, &norm));
        }
    }
    out
}

/// The one spelling of an identifier that is tokenised, or `None` when `text` is not one:
/// citizen id 12 digits, old id card 9, tax code 10 or 13 (`0314409058-002` →
/// `0314409058002`), written with digits and optional spaces, dots or dashes; a phone in E.164
/// (`0912 345 678` → `+84912345678`). Empty values and values that look masked are not.
pub(crate) fn normalise(kind: FindingKind, text: &str) -> Option<String> {
    let t = text.trim();
    if t.is_empty() || looks_masked(t) {
        return None;
    }
    match kind {
        FindingKind::CitizenId | FindingKind::OldIdCard | FindingKind::TaxCode => {
            if !t
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '.'))
            {
                return None;
            }
            let digits: String = t.chars().filter(char::is_ascii_digit).collect();
            let ok = match kind {
                FindingKind::CitizenId => digits.len() == 12,
                FindingKind::OldIdCard => digits.len() == 9,
                _ => digits.len() == 10 || digits.len() == 13,
            };
            ok.then_some(digits)
        }
        FindingKind::Phone => PhoneNumber::parse(t).ok().map(|p| p.e164()),
        FindingKind::BankAccount | FindingKind::Email | FindingKind::PersonalField => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use etx_crypto::MasterKey;
    use etx_masking_core::BUILTIN_POLICY;
    use serde_json::json;

    fn fixture() -> (Masker, MaskingPolicy, Purpose) {
        let masker = Masker::new(
            TokenKeys::new(MasterKey::generate("mk-test")),
            Detector::for_today(),
        );
        let policy = MaskingPolicy::parse(BUILTIN_POLICY).unwrap();
        (masker, policy, Purpose::parse(MATCH_PURPOSE).unwrap())
    }

    fn run(form: Form, category: Category, payload: &Value) -> (Masking, Masker, Purpose) {
        let (masker, policy, purpose) = fixture();
        let out = RecordMasker {
            masker: &masker,
            policy: &policy,
            detector: Detector::for_today(),
            purpose: &purpose,
        }
        .mask(category, form, payload)
        .unwrap();
        (out, masker, purpose)
    }

    #[test]
    fn identifiers_normalise_to_one_spelling_and_masked_values_to_none() {
        use FindingKind::*;
        assert_eq!(
            normalise(CitizenId, " 079 190 000 123 ").as_deref(),
            Some("079190000123")
        );
        assert_eq!(
            normalise(TaxCode, "0314409058-002").as_deref(),
            Some("0314409058002")
        );
        assert_eq!(normalise(TaxCode, "0100233488").as_deref(), Some("0100233488"));
        assert_eq!(normalise(OldIdCard, "123456789").as_deref(), Some("123456789"));
        assert_eq!(normalise(Phone, "0912 345 678").as_deref(), Some("+84912345678"));
        assert_eq!(normalise(Phone, "+84912345678").as_deref(), Some("+84912345678"));
        for (kind, v) in [
            (CitizenId, "********0123"),
            (CitizenId, "[CCCD]"),
            (CitizenId, "07919000012"),
            (CitizenId, "CCCD 079190000123"),
            (TaxCode, "01002334"),
            (Phone, "*******678"),
            (Phone, ""),
            (Email, "a@b.vn"),
        ] {
            assert_eq!(normalise(kind, v), None, "{kind:?} {v}");
        }
    }

    #[test]
    fn raw_records_are_masked_and_tokenised_where_identifiers_arrived_in_clear() {
        let payload = json!({
            "expert": { "full_name": "Nguyễn Thị Minh Thư", "citizen_id": "079190000123",
                        "phone": "0912 345 678" },
            "employer_tax_code": "0100233488",
            "note": "MST 0314409058-002, gọi 0912345678",
            "old_id": "********0123"
        });
        let (out, masker, purpose) = run(Form::Raw, Category::Workforce, &payload);
        let Masking::Masked {
            payload: masked,
            match_tokens,
        } = out
        else {
            panic!("held: {out:?}");
        };
        let text = masked.to_string();
        for clear in [
            "079190000123",
            "0100233488",
            "0314409058",
            "912345678",
            "Minh Thư",
        ] {
            assert!(!text.contains(clear), "{clear} in {text}");
        }
        assert_eq!(masked["old_id"], "********0123");
        let keys: Vec<&str> = match_tokens.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["/employer_tax_code", "/expert/citizen_id", "/expert/phone"]
        );
        let k = masker.keys();
        assert_eq!(
            match_tokens["/expert/citizen_id"],
            k.token(&purpose, "079190000123")
        );
        assert_eq!(match_tokens["/expert/phone"], k.token(&purpose, "+84912345678"));
        assert_eq!(
            match_tokens["/employer_tax_code"],
            k.token(&purpose, "0100233488")
        );
    }

    #[test]
    fn values_that_arrived_masked_are_kept_not_tokenised() {
        let payload = json!({ "expert": { "full_name": "[REDACTED]", "citizen_id": "********0123",
                                          "phone": "*******678" } });
        for form in [Form::Masked, Form::Raw] {
            let (out, _, _) = run(form, Category::Workforce, &payload);
            assert_eq!(
                out,
                Masking::Masked {
                    payload: payload.clone(),
                    match_tokens: BTreeMap::new()
                },
                "{form:?}"
            );
        }
    }

    #[test]
    fn a_record_declared_masked_with_identifiers_in_clear_is_held_with_places_not_values() {
        let payload = json!({ "expert": { "full_name": "N*****", "citizen_id": "079190000123" },
                              "note": "gọi 0912345678" });
        let (out, _, _) = run(Form::Masked, Category::Workforce, &payload);
        assert_eq!(
            out,
            Masking::Held {
                findings: vec![
                    HeldFinding {
                        pointer: "/expert/citizen_id".into(),
                        kind: FindingKind::CitizenId
                    },
                    HeldFinding {
                        pointer: "/note".into(),
                        kind: FindingKind::Phone
                    },
                ]
            }
        );
    }

    #[test]
    fn an_identifier_used_as_an_object_key_holds_the_record_and_never_reaches_a_pointer() {
        let payload = json!({ "by_person": { "079190000123": { "count": 1 } } });
        let (out, _, _) = run(Form::Raw, Category::Statistics, &payload);
        assert_eq!(
            out,
            Masking::Held {
                findings: vec![HeldFinding {
                    pointer: "/by_person/*".into(),
                    kind: FindingKind::CitizenId
                }]
            }
        );
        let d = Detector::for_today();
        assert_eq!(safe_pointer(&d, "/a/0912345678/b"), "/a/*/b");
        assert_eq!(safe_pointer(&d, "/expert/citizen_id"), "/expert/citizen_id");
    }
}
