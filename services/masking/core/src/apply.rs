//! Applying a policy to a payload (R-SEC-10, R-SHR): field rules first, then detector-driven
//! masking of every other string (DESIGN §4: "by field schema first, detection second").

use serde::Serialize;
use serde_json::Value;

use etx_domain::Category;

use crate::detect::{Detector, Finding, FindingKind};
use crate::operators::{Operator, OperatorKind, REDACTED, generalise, partial_mask};
use crate::pointer;
use crate::policy::{Audience, MaskingPolicy};
use crate::tokens::{TokenError, TokenKeys};

/// A payload masked for one audience.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MaskedPayload {
    /// The masked payload.
    pub value: Value,
    /// The version of the policy that masked it (kept with the masked copy).
    pub version: u32,
    /// What was done where, in order.
    pub applied: Vec<Applied>,
}

/// One operator applied at one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The JSON pointer of the value (relative to the payload).
    pub pointer: String,
    /// The operator.
    pub operator: OperatorKind,
    /// For detector-driven masking, what was found (one entry per finding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detected: Option<FindingKind>,
}

/// Why a payload could not be masked. Nothing is returned half-masked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaskError {
    /// A reversible token could not be made (a value longer than the limit).
    #[error("a value could not be tokenised: {0}")]
    Token(#[from] TokenError),
}

/// Applies policies with one set of token keys and one detector.
#[derive(Debug, Clone)]
pub struct Masker {
    keys: TokenKeys,
    detector: Detector,
}

impl Masker {
    /// A masker using `keys` for tokens and `detector` for free text.
    pub fn new(keys: TokenKeys, detector: Detector) -> Self {
        Self { keys, detector }
    }

    /// The token keys (for re-identification by the server).
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// Masks `payload` of `category` for `audience`:
    /// 1. each field rule of the category, in document order, applies its operator for the
    ///    audience to every value its pointer names (a value inside one already masked is
    ///    skipped; `null` is left alone and not reported);
    /// 2. every other string is scanned and each finding is masked with the policy's operator
    ///    for its kind ([`MaskingPolicy::detected_operator`]).
    ///
    /// How an operator treats a value that is not a string: `keep` keeps it; a number is
    /// masked as its decimal text, except that `suppress_small_count` turns a number from 1 to
    /// `k − 1` into `null`; `detect` masks the strings inside objects and arrays; anything else
    /// (booleans, objects, arrays) is replaced by the redaction marker.
    ///
    /// # Errors
    /// [`MaskError`] when a value cannot be tokenised.
    pub fn apply(
        &self,
        policy: &MaskingPolicy,
        audience: Audience,
        category: Category,
        payload: &Value,
    ) -> Result<MaskedPayload, MaskError> {
        let mut value = payload.clone();
        let mut applied = Vec::new();
        let mut covered: Vec<String> = Vec::new();
        for rule in policy.rules_for(category) {
            let op = rule.operators.get(audience);
            for ptr in rule.field.matches(&value) {
                if covered.iter().any(|c| pointer::is_within(&ptr, c)) {
                    continue;
                }
                covered.push(ptr.clone());
                let Some(target) = value.pointer_mut(&ptr) else {
                    continue;
                };
                if let Operator::Detect = op {
                    self.detect_all(policy, audience, target, &mut ptr.clone(), &[], &mut applied)?;
                } else if self.mask_value(policy, op, target)? {
                    applied.push(Applied {
                        pointer: ptr,
                        operator: op.kind(),
                        detected: None,
                    });
                }
            }
        }
        self.detect_all(
            policy,
            audience,
            &mut value,
            &mut String::new(),
            &covered,
            &mut applied,
        )?;
        Ok(MaskedPayload {
            value,
            version: policy.version(),
            applied,
        })
    }

    /// Masks the identifiers the detectors find in a free text (alert texts, notes) for
    /// `audience`, with the findings that were masked.
    ///
    /// # Errors
    /// [`MaskError`] when a value cannot be tokenised.
    pub fn mask_text(
        &self,
        policy: &MaskingPolicy,
        audience: Audience,
        text: &str,
    ) -> Result<(String, Vec<Finding>), MaskError> {
        let findings = self.detector.scan(text);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in &findings {
            out.push_str(&text[at..f.start]);
            let op = policy.detected_operator(f.kind, audience);
            out.push_str(&self.mask_str(&op, &text[f.start..f.end])?);
            at = f.end;
        }
        out.push_str(&text[at..]);
        Ok((out, findings))
    }

    /// Detector-driven masking of every string under `value` that is not within `skip`.
    fn detect_all(
        &self,
        policy: &MaskingPolicy,
        audience: Audience,
        value: &mut Value,
        ptr: &mut String,
        skip: &[String],
        applied: &mut Vec<Applied>,
    ) -> Result<(), MaskError> {
        if skip.iter().any(|c| pointer::is_within(ptr, c)) {
            return Ok(());
        }
        match value {
            Value::String(s) => {
                let (masked, findings) = self.mask_text(policy, audience, s)?;
                for f in &findings {
                    applied.push(Applied {
                        pointer: ptr.clone(),
                        operator: policy.detected_operator(f.kind, audience).kind(),
                        detected: Some(f.kind),
                    });
                }
                if !findings.is_empty() {
                    *s = masked;
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&i.to_string());
                    self.detect_all(policy, audience, item, ptr, skip, applied)?;
                    ptr.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&pointer::escape(k));
                    self.detect_all(policy, audience, item, ptr, skip, applied)?;
                    ptr.truncate(len);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        Ok(())
    }

    /// Applies a field operator (never `detect`) to one value; whether it was masked.
    fn mask_value(
        &self,
        policy: &MaskingPolicy,
        op: &Operator,
        value: &mut Value,
    ) -> Result<bool, MaskError> {
        let marker = || match op {
            Operator::Redact { marker } => marker.clone(),
            _ => REDACTED.to_owned(),
        };
        let new = match (&*value, op) {
            (Value::Null, _) | (_, Operator::Keep) => return Ok(false),
            (Value::Number(n), Operator::SuppressSmallCount { k }) => {
                let k = f64::from(k.unwrap_or(policy.small_cell_k()));
                match n.as_f64() {
                    Some(x) if x > 0.0 && x < k => Value::Null,
                    _ => return Ok(false),
                }
            }
            (Value::String(s), Operator::SuppressSmallCount { k }) => {
                let k = u64::from(k.unwrap_or(policy.small_cell_k()));
                match s.trim().parse::<u64>() {
                    Ok(n) if n > 0 && n < k => Value::Null,
                    Ok(_) => return Ok(false),
                    Err(_) => Value::String(marker()),
                }
            }
            (Value::String(s), _) => Value::String(self.mask_str(op, s)?),
            (Value::Number(n), _) => Value::String(self.mask_str(op, &n.to_string())?),
            (Value::Bool(_) | Value::Array(_) | Value::Object(_), _) => Value::String(marker()),
        };
        *value = new;
        Ok(true)
    }

    /// Applies a string operator (`detect` and `suppress_small_count` redact here).
    fn mask_str(&self, op: &Operator, s: &str) -> Result<String, MaskError> {
        Ok(match op {
            Operator::Keep => s.to_owned(),
            Operator::Redact { marker } => marker.clone(),
            Operator::Partial {
                keep_first,
                keep_last,
                mask_char,
                keep_email_domain,
            } => partial_mask(
                s,
                usize::from(*keep_first),
                usize::from(*keep_last),
                *mask_char,
                *keep_email_domain,
            ),
            Operator::Token { purpose, normalise } => self.keys.token(purpose, &normalise.apply(s)),
            Operator::ReversibleToken { purpose, normalise } => {
                self.keys.reversible_token(purpose, &normalise.apply(s))?
            }
            Operator::Generalise { to } => generalise(s, *to).unwrap_or_else(|| REDACTED.to_owned()),
            Operator::Detect | Operator::SuppressSmallCount { .. } => REDACTED.to_owned(),
        })
    }
}

/// [`Masker::apply`] with a detector for today in Vietnam.
///
/// # Errors
/// [`MaskError`] when a value cannot be tokenised.
pub fn apply(
    policy: &MaskingPolicy,
    audience: Audience,
    category: Category,
    payload: &Value,
    keys: &TokenKeys,
) -> Result<MaskedPayload, MaskError> {
    Masker::new(keys.clone(), Detector::for_today()).apply(policy, audience, category, payload)
}
