//! Masking policies (R-SEC-10, issue 5 §2): which operator masks which field of which data
//! category (R-DATA-1) for which audience, and how identifiers the detectors find in free text
//! are masked. A policy is a versioned JSON document; [`MaskingPolicy::parse`] validates it and
//! reports every broken rule with its JSON pointer, in the style of the ingestion violations.
//!
//! ```json
//! {
//!   "version": 3,
//!   "small_cell_k": 5,
//!   "fields": [
//!     { "category": "workforce", "field": "/expert/citizen_id", "kind": "citizen_id",
//!       "audiences": { "analyst": { "op": "token", "purpose": "citizen_id", "normalise": "digits" },
//!                      "default": { "op": "redact" } } }
//!   ],
//!   "detected": { "phone": { "analyst": { "op": "partial", "keep_last": 3 },
//!                            "default": { "op": "redact", "marker": "[SĐT]" } } }
//! }
//! ```
//!
//! Rules checked (each violation names the path and a [`ViolationCode`]):
//! * top level: `version` (required, integer ≥ 1), `description` (optional string ≤ 500),
//!   `small_cell_k` (optional integer 2–1000, default 5), `fields` (optional array), `detected`
//!   (optional object); any other member is `unknown_field`;
//! * a field rule: `category` is one of the four categories (`unknown_category`); `field` is a
//!   JSON pointer naming a member, `*` for any element (`format`); a category/field pair appears
//!   once (`invalid`); `kind` is a finding kind (`enum`, default `personal_field`); `personal`
//!   (default true); `audiences` maps `analyst`, `data_consumer`, `public`, `alert_text` and
//!   `default` to operators, and every audience must resolve to one (`required`);
//! * an operator: `op` is a known name (`enum`), only that operator's parameters appear
//!   (`unknown_field`), parameters have their types (`format`/`type`); `partial` keeps at most
//!   64 characters and masks with a non-alphanumeric, non-space character; a `redact` marker is
//!   1–64 characters and itself looks masked (`[…]` or three mask characters, see
//!   [`crate::looks_masked`]); `suppress_small_count`'s `k` is 2–1000;
//! * personal fields and detected identifiers are never kept or reversibly tokenised for a
//!   shared audience (`data_consumer`, `public`, `alert_text`): shared data is masked
//!   irreversibly (DESIGN §4) — `invalid`;
//! * `detected` maps finding kinds (`enum`) to audiences as above; only `keep`, `redact`,
//!   `partial`, `token` and `reversible_token` mask a finding (`invalid` otherwise).

use std::collections::BTreeMap;
use std::fmt;

use etx_domain::{Category, FieldViolation, ViolationCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::detect::FindingKind;
use crate::operators::{DEFAULT_K, Operator};
use crate::pointer::{self, FieldPattern};

/// Who will read the masked data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// A ministry analyst inside the hub (least masking; may link records through tokens).
    Analyst,
    /// Another state system reading shared data (R-SHR).
    DataConsumer,
    /// Published data.
    Public,
    /// The text of an alert sent by e-mail, SMS or webhook (R-MON).
    AlertText,
}

impl Audience {
    /// Every audience.
    pub const ALL: [Audience; 4] = [Self::Analyst, Self::DataConsumer, Self::Public, Self::AlertText];

    /// The snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analyst => "analyst",
            Self::DataConsumer => "data_consumer",
            Self::Public => "public",
            Self::AlertText => "alert_text",
        }
    }

    /// Parses a snake_case code.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether data for this audience leaves the hub's analysts (must be masked irreversibly).
    pub fn is_shared(self) -> bool {
        self != Self::Analyst
    }

    fn index(self) -> usize {
        match self {
            Self::Analyst => 0,
            Self::DataConsumer => 1,
            Self::Public => 2,
            Self::AlertText => 3,
        }
    }
}

impl fmt::Display for Audience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One operator per audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudienceOperators([Operator; 4]);

impl AudienceOperators {
    /// The operator for `audience`.
    pub fn get(&self, audience: Audience) -> &Operator {
        &self.0[audience.index()]
    }
}

/// How one field of one category is masked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRule {
    /// The category whose payloads hold the field.
    pub category: Category,
    /// The field, a JSON pointer into the payload (`*` for any element).
    pub field: FieldPattern,
    /// What the field holds, reported by [`crate::check_declared_masked_with`].
    pub kind: FindingKind,
    /// Whether the field holds personal data (false for, e.g., counts to suppress).
    pub personal: bool,
    /// The operator per audience.
    pub operators: AudienceOperators,
}

/// A validated, versioned masking policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaskingPolicy {
    version: u32,
    description: Option<String>,
    small_cell_k: u32,
    fields: Vec<FieldRule>,
    detected: BTreeMap<FindingKind, AudienceOperators>,
}

/// A policy document that breaks rules: every violation, with its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the masking policy is not valid ({} violation(s))", .violations.len())]
pub struct PolicyError {
    /// What is wrong, where.
    pub violations: Vec<FieldViolation>,
}

/// The built-in policy (version 1), from the `x-mask` hints of the record schemas.
pub const BUILTIN_POLICY: &str = include_str!("../policies/default.v1.json");

impl MaskingPolicy {
    /// Parses and validates a policy document.
    ///
    /// # Errors
    /// [`PolicyError`] with every violation found (a JSON syntax error is one `format`
    /// violation at the root, with the line and column).
    pub fn parse(json: &str) -> Result<Self, PolicyError> {
        match serde_json::from_str::<Value>(json) {
            Ok(v) => Self::from_value(&v),
            Err(e) => Err(PolicyError {
                violations: vec![
                    FieldViolation::new("", ViolationCode::Format).with_detail(format!(
                        "not JSON: line {}, column {}",
                        e.line(),
                        e.column()
                    )),
                ],
            }),
        }
    }

    /// Validates a policy document already parsed as JSON.
    ///
    /// # Errors
    /// [`PolicyError`] with every violation found.
    pub fn from_value(doc: &Value) -> Result<Self, PolicyError> {
        let mut v = Validator::default();
        let policy = v.policy(doc);
        match policy {
            Some(p) if v.violations.is_empty() => Ok(p),
            _ => Err(PolicyError {
                violations: v.violations,
            }),
        }
    }

    /// The policy's version, recorded with every masked payload.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The author's description.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The default `k` of small-cell suppression.
    pub fn small_cell_k(&self) -> u32 {
        self.small_cell_k
    }

    /// The field rules of `category`, in document order.
    pub fn rules_for(&self, category: Category) -> impl Iterator<Item = &FieldRule> {
        self.fields.iter().filter(move |r| r.category == category)
    }

    /// How a detected identifier of `kind` is masked for `audience` (redacted with the default
    /// marker when the policy does not say).
    pub fn detected_operator(&self, kind: FindingKind, audience: Audience) -> Operator {
        self.detected
            .get(&kind)
            .map_or_else(Operator::redact, |ops| ops.get(audience).clone())
    }
}

#[derive(Default)]
struct Validator {
    violations: Vec<FieldViolation>,
}

impl Validator {
    fn report(&mut self, path: impl Into<String>, code: ViolationCode, detail: impl Into<String>) {
        self.violations
            .push(FieldViolation::new(path, code).with_detail(detail));
    }

    fn policy(&mut self, doc: &Value) -> Option<MaskingPolicy> {
        let Some(obj) = doc.as_object() else {
            self.report("", ViolationCode::Type, "a policy is a JSON object");
            return None;
        };
        for key in obj.keys() {
            if !["version", "description", "small_cell_k", "fields", "detected"].contains(&key.as_str()) {
                self.report(
                    pointer::child("", key),
                    ViolationCode::UnknownField,
                    "not a policy member",
                );
            }
        }
        let version = match obj.get("version") {
            None => {
                self.report("/version", ViolationCode::Required, "a policy has a version");
                None
            }
            Some(v) => self.integer(v, "/version", 1, u32::MAX),
        };
        let description = match obj.get("description") {
            None => None,
            Some(Value::String(s)) if s.chars().count() <= 500 => Some(s.clone()),
            Some(Value::String(_)) => {
                self.report("/description", ViolationCode::TooLarge, "at most 500 characters");
                None
            }
            Some(_) => {
                self.report("/description", ViolationCode::Type, "a string");
                None
            }
        };
        let small_cell_k = match obj.get("small_cell_k") {
            None => Some(DEFAULT_K),
            Some(v) => self.integer(v, "/small_cell_k", 2, 1000),
        };
        let fields = match obj.get("fields") {
            None => Vec::new(),
            Some(Value::Array(items)) => self.fields(items),
            Some(_) => {
                self.report("/fields", ViolationCode::Type, "an array of field rules");
                Vec::new()
            }
        };
        let detected = match obj.get("detected") {
            None => BTreeMap::new(),
            Some(Value::Object(map)) => self.detected(map),
            Some(_) => {
                self.report(
                    "/detected",
                    ViolationCode::Type,
                    "an object keyed by finding kind",
                );
                BTreeMap::new()
            }
        };
        Some(MaskingPolicy {
            version: version?,
            description,
            small_cell_k: small_cell_k?,
            fields,
            detected,
        })
    }

    fn integer(&mut self, v: &Value, path: &str, min: u32, max: u32) -> Option<u32> {
        let Some(n) = v.as_u64().or_else(|| v.as_i64().map(|_| 0)) else {
            self.report(path, ViolationCode::Type, "an integer");
            return None;
        };
        if n < u64::from(min) {
            self.report(path, ViolationCode::TooSmall, format!("at least {min}"));
            return None;
        }
        match u32::try_from(n) {
            Ok(n) if n <= max => Some(n),
            _ => {
                self.report(path, ViolationCode::TooLarge, format!("at most {max}"));
                None
            }
        }
    }

    fn fields(&mut self, items: &[Value]) -> Vec<FieldRule> {
        let mut rules: Vec<(usize, FieldRule)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("/fields/{i}");
            let Some(rule) = self.field(item, &path) else {
                continue;
            };
            if let Some((j, _)) = rules
                .iter()
                .find(|(_, r)| r.category == rule.category && r.field == rule.field)
            {
                self.report(
                    format!("{path}/field"),
                    ViolationCode::Invalid,
                    format!("the same category and field as /fields/{j}"),
                );
                continue;
            }
            rules.push((i, rule));
        }
        rules.into_iter().map(|(_, r)| r).collect()
    }

    fn field(&mut self, item: &Value, path: &str) -> Option<FieldRule> {
        let Some(obj) = item.as_object() else {
            self.report(path, ViolationCode::Type, "a field rule is an object");
            return None;
        };
        for key in obj.keys() {
            if !["category", "field", "kind", "personal", "audiences"].contains(&key.as_str()) {
                self.report(
                    pointer::child(path, key),
                    ViolationCode::UnknownField,
                    "not a field-rule member",
                );
            }
        }
        let category = match obj.get("category") {
            None => {
                self.report(
                    format!("{path}/category"),
                    ViolationCode::Required,
                    "a field rule names a category",
                );
                None
            }
            Some(Value::String(s)) => match Category::parse(s) {
                Ok(c) => Some(c),
                Err(_) => {
                    self.report(
                        format!("{path}/category"),
                        ViolationCode::UnknownCategory,
                        "one of policy, statistics, workforce, enforcement",
                    );
                    None
                }
            },
            Some(_) => {
                self.report(format!("{path}/category"), ViolationCode::Type, "a string");
                None
            }
        };
        let field = match obj.get("field") {
            None => {
                self.report(
                    format!("{path}/field"),
                    ViolationCode::Required,
                    "a field rule names a field",
                );
                None
            }
            Some(Value::String(s)) => match FieldPattern::parse(s) {
                Ok(f) => Some(f),
                Err(why) => {
                    self.report(format!("{path}/field"), ViolationCode::Format, why);
                    None
                }
            },
            Some(_) => {
                self.report(
                    format!("{path}/field"),
                    ViolationCode::Type,
                    "a JSON pointer string",
                );
                None
            }
        };
        let kind = match obj.get("kind") {
            None => Some(FindingKind::PersonalField),
            Some(v) => self.kind(v, &format!("{path}/kind")),
        };
        let personal = match obj.get("personal") {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                self.report(format!("{path}/personal"), ViolationCode::Type, "true or false");
                true
            }
        };
        let operators = match obj.get("audiences") {
            None => {
                self.report(
                    format!("{path}/audiences"),
                    ViolationCode::Required,
                    "a field rule maps audiences to operators",
                );
                None
            }
            Some(v) => self.audiences(v, &format!("{path}/audiences"), personal, false),
        };
        Some(FieldRule {
            category: category?,
            field: field?,
            kind: kind?,
            personal,
            operators: operators?,
        })
    }

    fn kind(&mut self, v: &Value, path: &str) -> Option<FindingKind> {
        match v.as_str().map(FindingKind::parse) {
            Some(Some(k)) => Some(k),
            _ => {
                self.report(
                    path,
                    ViolationCode::Enum,
                    "one of citizen_id, old_id_card, tax_code, phone, bank_account, email, personal_field",
                );
                None
            }
        }
    }

    fn detected(&mut self, map: &Map<String, Value>) -> BTreeMap<FindingKind, AudienceOperators> {
        let mut out = BTreeMap::new();
        for (key, v) in map {
            let path = pointer::child("/detected", key);
            let kind = FindingKind::parse(key).filter(|k| *k != FindingKind::PersonalField);
            let Some(kind) = kind else {
                self.report(
                    path,
                    ViolationCode::Enum,
                    "one of citizen_id, old_id_card, tax_code, phone, bank_account, email",
                );
                continue;
            };
            if let Some(ops) = self.audiences(v, &path, true, true) {
                out.insert(kind, ops);
            }
        }
        out
    }

    /// The operators of `v` (`{"analyst": op, …, "default": op}`), every audience resolved.
    fn audiences(
        &mut self,
        v: &Value,
        path: &str,
        personal: bool,
        detected: bool,
    ) -> Option<AudienceOperators> {
        let Some(map) = v.as_object() else {
            self.report(path, ViolationCode::Type, "an object keyed by audience");
            return None;
        };
        let mut explicit: [Option<(Operator, String)>; 4] = [None, None, None, None];
        let mut default: Option<(Operator, String)> = None;
        let mut ok = true;
        for (key, op) in map {
            let op_path = pointer::child(path, key);
            let slot = match (key.as_str(), Audience::parse(key)) {
                ("default", _) => &mut default,
                (_, Some(a)) => &mut explicit[a.index()],
                _ => {
                    self.report(
                        op_path,
                        ViolationCode::UnknownField,
                        "one of analyst, data_consumer, public, alert_text, default",
                    );
                    ok = false;
                    continue;
                }
            };
            match self.operator(op, &op_path) {
                Some(op) => *slot = Some((op, op_path)),
                None => ok = false,
            }
        }
        let mut resolved = Vec::with_capacity(4);
        for audience in Audience::ALL {
            let chosen = explicit[audience.index()].clone().or_else(|| default.clone());
            let Some((op, op_path)) = chosen else {
                // An audience whose own or default operator was reported already is not missing.
                if !map.contains_key(audience.as_str()) && !map.contains_key("default") {
                    self.report(
                        pointer::child(path, audience.as_str()),
                        ViolationCode::Required,
                        "no operator for this audience and no default",
                    );
                }
                ok = false;
                continue;
            };
            ok &= self.allowed(&op, &op_path, audience, personal, detected);
            resolved.push(op);
        }
        let ops: [Operator; 4] = resolved.try_into().ok()?;
        ok.then_some(AudienceOperators(ops))
    }

    /// Whether `op` may mask this kind of value for `audience`; reports why not.
    fn allowed(
        &mut self,
        op: &Operator,
        path: &str,
        audience: Audience,
        personal: bool,
        detected: bool,
    ) -> bool {
        let shared = audience.is_shared() && personal;
        let why = match op {
            Operator::Keep if shared => Some(format!(
                "personal data is never kept in clear for the {audience} audience (R-SEC-10)"
            )),
            Operator::ReversibleToken { .. } if shared => Some(format!(
                "shared data is masked irreversibly: no reversible token for the {audience} audience"
            )),
            Operator::Detect | Operator::Generalise { .. } | Operator::SuppressSmallCount { .. }
                if detected =>
            {
                Some(
                    "a detected identifier is masked by keep, redact, partial, token or reversible_token"
                        .to_owned(),
                )
            }
            _ => None,
        };
        match why {
            Some(why) => {
                self.report(path, ViolationCode::Invalid, why);
                false
            }
            None => true,
        }
    }

    fn operator(&mut self, v: &Value, path: &str) -> Option<Operator> {
        let Some(obj) = v.as_object() else {
            self.report(
                path,
                ViolationCode::Type,
                "an operator is an object with an \"op\"",
            );
            return None;
        };
        let op_path = format!("{path}/op");
        let name = match obj.get("op") {
            None => {
                self.report(op_path, ViolationCode::Required, "an operator names its op");
                return None;
            }
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                self.report(op_path, ViolationCode::Type, "a string");
                return None;
            }
        };
        let Some(allowed) = Operator::allowed_keys(name) else {
            self.report(
                op_path,
                ViolationCode::Enum,
                "one of keep, redact, partial, token, reversible_token, generalise, detect, suppress_small_count",
            );
            return None;
        };
        let mut ok = true;
        for key in obj.keys() {
            if key != "op" && !allowed.contains(&key.as_str()) {
                self.report(
                    pointer::child(path, key),
                    ViolationCode::UnknownField,
                    format!("{name} takes: {}", allowed.join(", ")),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        let op = match serde_json::from_value::<Operator>(v.clone()) {
            Ok(op) => op,
            Err(e) => {
                let code = if e.to_string().starts_with("invalid type") {
                    ViolationCode::Type
                } else {
                    ViolationCode::Format
                };
                self.report(path, code, e.to_string());
                return None;
            }
        };
        self.parameters(&op, path).then_some(op)
    }

    fn parameters(&mut self, op: &Operator, path: &str) -> bool {
        let before = self.violations.len();
        match op {
            Operator::Partial {
                keep_first,
                keep_last,
                mask_char,
                ..
            } => {
                if u32::from(*keep_first) + u32::from(*keep_last) > 64 {
                    self.report(
                        format!("{path}/keep_last"),
                        ViolationCode::TooLarge,
                        "keep_first + keep_last is at most 64",
                    );
                }
                if mask_char.is_alphanumeric() || mask_char.is_whitespace() || mask_char.is_control() {
                    self.report(
                        format!("{path}/mask_char"),
                        ViolationCode::Format,
                        "a mask character is a symbol such as * or #",
                    );
                }
            }
            Operator::Redact { marker } => {
                let n = marker.chars().count();
                if n == 0 || n > 64 {
                    self.report(
                        format!("{path}/marker"),
                        ViolationCode::Format,
                        "a marker is 1-64 characters",
                    );
                } else if !crate::masked::looks_masked(marker) {
                    self.report(
                        format!("{path}/marker"),
                        ViolationCode::Format,
                        "a marker must itself look masked: wrap it in [ ] or use three mask characters",
                    );
                }
            }
            Operator::SuppressSmallCount { k: Some(k) } if !(2..=1000).contains(k) => {
                self.report(format!("{path}/k"), ViolationCode::Format, "k is 2-1000");
            }
            _ => {}
        }
        self.violations.len() == before
    }
}
