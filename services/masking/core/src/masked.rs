//! Values and records that are already masked (R-ING-2, R-SEC-10): recognising a masked value so
//! that it is never used as a match key, and checking that a record declared `masked` carries no
//! identifier in clear (the server holds such a record instead of accepting it).

use serde_json::Value;

use crate::detect::{Detector, ValueFinding};
use crate::operators::{Generalisation, generalise};
use crate::policy::MaskingPolicy;
use crate::tokens::is_token;
use etx_domain::Category;

/// Characters that mask: `*`, `•`, `●`, `#`, `x`, `X`, `×`.
const MASK_CHARS: [char; 7] = ['*', '•', '●', '#', 'x', 'X', '×'];

/// Whether `value` looks masked, so that it must never serve as a match key (reconciliation) or
/// be treated as an identifier:
/// * a token of this crate (`tok_` + 26 base32 characters, `rtk_` + base32);
/// * a marker: the whole value in square brackets, 1–64 characters inside, none of them a
///   bracket (`[REDACTED]`, `[CCCD]`);
/// * a value holding a run of at least three equal mask characters (`*`, `•`, `●`, `#`, `x`,
///   `X`, `×`: `********2345`, `090xxxx456`, `t***@example.vn`) **and** in which the
///   detectors find nothing (`*** 001099012345` is not masked).
///
/// Empty and blank values are not masked values (nor identifiers).
pub fn looks_masked(value: &str) -> bool {
    let v = value.trim();
    if v.is_empty() {
        return false;
    }
    if is_token(v) {
        return true;
    }
    if let Some(inner) = v.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let n = inner.chars().count();
        return (1..=64).contains(&n) && !inner.contains(['[', ']']);
    }
    let mut run = 0;
    let mut prev = None;
    let mut has_run = false;
    for c in v.chars() {
        if MASK_CHARS.contains(&c) && prev == Some(c) {
            run += 1;
        } else {
            run = usize::from(MASK_CHARS.contains(&c));
        }
        prev = Some(c);
        if run >= 3 {
            has_run = true;
            break;
        }
    }
    has_run && Detector::for_today().scan(v).is_empty()
}

/// Whether `value` is already a generalisation: a 4-digit year, or an address that is exactly
/// its own province or commune generalisation (`Thành phố Hà Nội`).
fn looks_generalised(value: &str) -> bool {
    let v = value.trim();
    (v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit()))
        || generalise(v, Generalisation::Province).as_deref() == Some(v)
        || generalise(v, Generalisation::Commune).as_deref() == Some(v)
}

impl Detector {
    /// The identifiers a record declared `masked` still carries in clear: every detector
    /// finding in its strings (see [`Detector::scan_value`]). A non-empty result means the
    /// record is not masked and must be held.
    pub fn check_declared_masked(&self, payload: &Value) -> Vec<ValueFinding> {
        self.scan_value(payload)
    }

    /// [`Detector::check_declared_masked`], plus every personal field of `policy` for
    /// `category` whose value (a string or number) is neither empty, nor looks masked
    /// ([`looks_masked`]), nor is a generalisation (a year, a bare province or commune): such a
    /// value is reported as one finding over the whole value, of the rule's kind
    /// (`personal_field` for names and addresses), unless a detector finding already covers
    /// that value.
    pub fn check_declared_masked_with(
        &self,
        policy: &MaskingPolicy,
        category: Category,
        payload: &Value,
    ) -> Vec<ValueFinding> {
        let mut findings = self.scan_value(payload);
        for rule in policy.rules_for(category).filter(|r| r.personal) {
            for ptr in rule.field.matches(payload) {
                let text = match payload.pointer(&ptr) {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => continue,
                };
                if text.trim().is_empty()
                    || looks_masked(&text)
                    || looks_generalised(&text)
                    || findings.iter().any(|f| f.pointer == ptr)
                {
                    continue;
                }
                findings.push(ValueFinding {
                    pointer: ptr,
                    kind: rule.kind,
                    start: 0,
                    end: text.len(),
                });
            }
        }
        findings
    }
}

/// [`Detector::check_declared_masked`] as of today in Vietnam.
pub fn check_declared_masked(payload: &Value) -> Vec<ValueFinding> {
    Detector::for_today().check_declared_masked(payload)
}

/// [`Detector::check_declared_masked_with`] as of today in Vietnam.
pub fn check_declared_masked_with(
    policy: &MaskingPolicy,
    category: Category,
    payload: &Value,
) -> Vec<ValueFinding> {
    Detector::for_today().check_declared_masked_with(policy, category, payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_values_are_recognised() {
        for v in [
            "********2345",
            "*********456",
            "t********@example.vn",
            "090xxxx456",
            "••••2345",
            "[REDACTED]",
            "[CCCD]",
            "[SĐT]",
            "tok_abcdefghijklmnopqrstuvwxya",
            "T************",
        ] {
            assert!(looks_masked(v), "{v}");
        }
    }

    #[test]
    fn clear_or_half_masked_values_are_not() {
        for v in [
            "",
            "   ",
            "001099012345",
            "0912345678",
            "Trần Văn Hùng",
            "**",
            "*x*",
            "[]",
            "[a]b]",
            "[unterminated",
            "*** 001099012345",
            "***@example.vn 0912345678",
            "tok_short",
            "tok_ABCDEFGHIJKLMNOPQRSTUVWXYZ",
            "Thành phố Hà Nội",
        ] {
            assert!(!looks_masked(v), "{v}");
        }
    }
}
