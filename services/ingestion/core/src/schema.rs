//! Payload schemas of the four data categories and validation of submitted records
//! (R-DATA-1, R-ING-4; the XML wire format feeding it is in [`crate::xml`], R-ING-3, R-SEC-3).
//!
//! The JSON Schemas (draft 2020-12) are the published contract in `contracts/schemas/`: one file
//! per category and version, embedded here at build time and compiled once at start-up by
//! [`SchemaRegistry::load`]. A new schema version is a new file; older versions stay accepted.
//!
//! [`parse_item`] is what the HTTP and SOAP layers call on each submitted item: it checks the
//! envelope with the shared-kernel parsers (category, schema version, period, classification,
//! priority, form, idempotency key) and the payload with the category's schema, and returns
//! *every* violation found, each with a JSON-Pointer path (`/payload/expert/citizen_id`), a
//! stable [`ViolationCode`] and an English detail that names the rule but never echoes the
//! submitted value (submitted values may be personal data, R-SEC-10).
//!
//! Schema fields holding personal data carry `"x-personal": true` and an `"x-mask"` hint
//! (`partial`, `token`, `redact`) for the masking service; see [`SchemaRegistry::personal_fields`].

use etx_domain::{
    Category, Classification, Envelope, FieldViolation, Form, IdempotencyKey, Period, Priority,
    SchemaVersion, ViolationCode,
};
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::fmt;

/// One embedded schema file.
struct Embedded {
    category: Category,
    version: u16,
    file: &'static str,
    text: &'static str,
}

/// Every published payload schema. Adding a version = adding a file and a line here.
const EMBEDDED: &[Embedded] = &[
    Embedded {
        category: Category::Policy,
        version: 1,
        file: "contracts/schemas/policy/v1.schema.json",
        text: include_str!("../../../../contracts/schemas/policy/v1.schema.json"),
    },
    Embedded {
        category: Category::Statistics,
        version: 1,
        file: "contracts/schemas/statistics/v1.schema.json",
        text: include_str!("../../../../contracts/schemas/statistics/v1.schema.json"),
    },
    Embedded {
        category: Category::Workforce,
        version: 1,
        file: "contracts/schemas/workforce/v1.schema.json",
        text: include_str!("../../../../contracts/schemas/workforce/v1.schema.json"),
    },
    Embedded {
        category: Category::Enforcement,
        version: 1,
        file: "contracts/schemas/enforcement/v1.schema.json",
        text: include_str!("../../../../contracts/schemas/enforcement/v1.schema.json"),
    },
];

const ENVELOPE_FILE: &str = "contracts/schemas/envelope.v1.schema.json";
const ENVELOPE_TEXT: &str = include_str!("../../../../contracts/schemas/envelope.v1.schema.json");

/// The fields an envelope may carry; anything else is [`ViolationCode::UnknownField`].
pub const ENVELOPE_FIELDS: [&str; 8] = [
    "category",
    "schema_version",
    "period",
    "classification",
    "priority",
    "form",
    "idempotency_key",
    "payload",
];

/// `$ref` chains longer than this are not followed (our schemas use one hop).
const MAX_REF_HOPS: usize = 8;

/// Why the embedded schemas could not be loaded. Only a broken build can cause this; the
/// registry test in this crate loads them on every `cargo test`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A schema file is not valid JSON.
    #[error("{file}: not valid JSON: {reason}")]
    Json {
        /// The file, relative to the workspace root.
        file: &'static str,
        /// The parser's message.
        reason: String,
    },
    /// A schema file is not a valid JSON Schema.
    #[error("{file}: not a valid JSON Schema: {reason}")]
    Compile {
        /// The file, relative to the workspace root.
        file: &'static str,
        /// The compiler's message.
        reason: String,
    },
    /// A schema file does not match its place in the registry (`$id`, category without schema).
    #[error("{file}: {reason}")]
    Inconsistent {
        /// The file, relative to the workspace root.
        file: &'static str,
        /// What does not match.
        reason: String,
    },
}

/// The JSON type a schema expects at some place (used by the XML converter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JsonType {
    /// A string.
    String,
    /// A whole number.
    Integer,
    /// Any number.
    Number,
    /// `true` / `false`.
    Boolean,
    /// An object.
    Object,
    /// An array.
    Array,
}

impl JsonType {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "string" => Some(Self::String),
            "integer" => Some(Self::Integer),
            "number" => Some(Self::Number),
            "boolean" => Some(Self::Boolean),
            "object" => Some(Self::Object),
            "array" => Some(Self::Array),
            _ => None,
        }
    }
}

/// A field holding personal data, as marked in a schema (R-SEC-10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalField {
    /// JSON Pointer inside the payload, e.g. `/expert/citizen_id`; `*` stands for any array index.
    pub pointer: String,
    /// The `x-mask` hint: `partial`, `token` or `redact` (`redact` when the schema gives none).
    pub mask: String,
}

/// One compiled schema.
struct Entry {
    category: Category,
    version: SchemaVersion,
    document: Value,
    validator: jsonschema::Validator,
}

/// All payload schemas, compiled once (R-DATA-1, R-ING-4). Cheap to share behind an `Arc`.
pub struct SchemaRegistry {
    entries: Vec<Entry>,
    envelope: Value,
}

impl fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for e in &self.entries {
            list.entry(&format_args!("{}:v{}", e.category, e.version));
        }
        list.finish()
    }
}

fn compile(file: &'static str, doc: &Value) -> Result<jsonschema::Validator, SchemaError> {
    jsonschema::draft202012::options()
        .should_validate_formats(false)
        .build(doc)
        .map_err(|e| SchemaError::Compile {
            file,
            reason: e.to_string(),
        })
}

fn parse_json(file: &'static str, text: &str) -> Result<Value, SchemaError> {
    serde_json::from_str(text).map_err(|e| SchemaError::Json {
        file,
        reason: e.to_string(),
    })
}

impl SchemaRegistry {
    /// Parses and compiles every embedded schema. Call once at start-up.
    pub fn load() -> Result<Self, SchemaError> {
        let mut entries = Vec::with_capacity(EMBEDDED.len());
        for emb in EMBEDDED {
            let version =
                SchemaVersion::parse(&emb.version.to_string()).map_err(|_| SchemaError::Inconsistent {
                    file: emb.file,
                    reason: "version must be a positive integer".into(),
                })?;
            let document = parse_json(emb.file, emb.text)?;
            let expected_id = schema_id(emb.category, version);
            if document.get("$id").and_then(Value::as_str) != Some(expected_id.as_str()) {
                return Err(SchemaError::Inconsistent {
                    file: emb.file,
                    reason: format!("$id must be {expected_id}"),
                });
            }
            if entries
                .iter()
                .any(|e: &Entry| e.category == emb.category && e.version == version)
            {
                return Err(SchemaError::Inconsistent {
                    file: emb.file,
                    reason: "duplicate category and version".into(),
                });
            }
            let validator = compile(emb.file, &document)?;
            entries.push(Entry {
                category: emb.category,
                version,
                document,
                validator,
            });
        }
        for category in Category::ALL {
            if !entries.iter().any(|e| e.category == category) {
                return Err(SchemaError::Inconsistent {
                    file: ENVELOPE_FILE,
                    reason: format!("no schema for category {category}"),
                });
            }
        }
        entries.sort_by_key(|e| (e.category, e.version));
        let envelope = parse_json(ENVELOPE_FILE, ENVELOPE_TEXT)?;
        compile(ENVELOPE_FILE, &envelope)?;
        Ok(Self { entries, envelope })
    }

    fn entry(&self, category: Category, version: SchemaVersion) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.category == category && e.version == version)
    }

    /// Whether `version` exists for `category`.
    pub fn has(&self, category: Category, version: SchemaVersion) -> bool {
        self.entry(category, version).is_some()
    }

    /// Every version of a category, oldest first.
    pub fn versions(&self, category: Category) -> Vec<SchemaVersion> {
        self.entries
            .iter()
            .filter(|e| e.category == category)
            .map(|e| e.version)
            .collect()
    }

    /// The newest version of a category.
    pub fn latest(&self, category: Category) -> SchemaVersion {
        // `load` guarantees every category has at least one version.
        self.versions(category)
            .into_iter()
            .max()
            .unwrap_or(SchemaVersion::V1)
    }

    /// The raw schema document, as published (for `GET /schemas`).
    pub fn json_schema(&self, category: Category, version: SchemaVersion) -> Option<&Value> {
        self.entry(category, version).map(|e| &e.document)
    }

    /// The envelope schema document (`contracts/schemas/envelope.v1.schema.json`), for documentation.
    pub fn envelope_schema(&self) -> &Value {
        &self.envelope
    }

    /// Validates a payload against the schema of `category` / `version`.
    ///
    /// Returns `Err` with a single [`ViolationCode::UnknownSchemaVersion`] at `/schema_version`
    /// if the version does not exist for the category; otherwise every violation, with paths
    /// under `/payload`, sorted by path.
    pub fn validate(
        &self,
        category: Category,
        version: SchemaVersion,
        payload: &Value,
    ) -> Result<(), Vec<FieldViolation>> {
        let Some(entry) = self.entry(category, version) else {
            return Err(vec![unknown_version(self, category)]);
        };
        let mut out = Vec::new();
        for err in entry.validator.iter_errors(payload) {
            let parent = err.instance_path().as_str().to_owned();
            match err.kind() {
                ValidationErrorKind::Required { property } => {
                    let name = property.as_str().unwrap_or_default();
                    out.push(
                        FieldViolation::new(
                            format!("/payload{parent}/{}", escape_pointer(name)),
                            ViolationCode::Required,
                        )
                        .with_detail("this field is required"),
                    );
                }
                ValidationErrorKind::AdditionalProperties { unexpected } => {
                    for name in unexpected {
                        out.push(
                            FieldViolation::new(
                                format!("/payload{parent}/{}", escape_pointer(name)),
                                ViolationCode::UnknownField,
                            )
                            .with_detail("this field is not in the schema"),
                        );
                    }
                }
                kind => {
                    let node = entry.node_at_pointer(&parent);
                    let (code, detail) = describe(kind, node, &entry.document);
                    out.push(FieldViolation::new(format!("/payload{parent}"), code).with_detail(detail));
                }
            }
        }
        if out.is_empty() {
            Ok(())
        } else {
            sort_violations(&mut out);
            Err(out)
        }
    }

    /// The JSON type the schema expects at `pointer` inside the payload (segments of a JSON
    /// Pointer, unescaped; array elements are addressed by index). Follows `properties`,
    /// `items` and local `$ref`s. `None` for an unknown category/version or path, and `Some(Object)`
    /// for the empty pointer (the payload itself).
    pub fn type_at(&self, category: Category, version: SchemaVersion, pointer: &[&str]) -> Option<JsonType> {
        let entry = self.entry(category, version)?;
        let node = entry.node_at(pointer)?;
        let ty = keyword(&entry.document, node, "type")?;
        match ty {
            Value::String(s) => JsonType::from_name(s),
            Value::Array(list) => list
                .iter()
                .filter_map(Value::as_str)
                .find(|s| *s != "null")
                .and_then(JsonType::from_name),
            _ => None,
        }
    }

    /// The fields marked `"x-personal": true` in a schema, with their masking hint (R-SEC-10).
    pub fn personal_fields(&self, category: Category, version: SchemaVersion) -> Vec<PersonalField> {
        let mut out = Vec::new();
        if let Some(entry) = self.entry(category, version) {
            collect_personal(&entry.document, &entry.document, "", 0, &mut out);
        }
        out
    }
}

impl Entry {
    /// The schema node describing the instance at `pointer` (unescaped segments).
    fn node_at(&self, pointer: &[&str]) -> Option<&Value> {
        let mut node = &self.document;
        for seg in pointer {
            node = child(&self.document, node, seg)?;
        }
        Some(node)
    }

    /// The schema node describing the instance at a JSON Pointer string (`/a/0/b`).
    fn node_at_pointer(&self, pointer: &str) -> Option<&Value> {
        let segs: Vec<String> = pointer
            .split('/')
            .skip(1)
            .map(|s| s.replace("~1", "/").replace("~0", "~"))
            .collect();
        let refs: Vec<&str> = segs.iter().map(String::as_str).collect();
        self.node_at(&refs)
    }
}

/// Whether the concrete `pointer` (`/trainers/0/phone`) is named by `pattern`, where `*`
/// stands for any array index (as [`PersonalField::pointer`] writes it).
fn pointer_matches(pattern: &str, pointer: &str) -> bool {
    let (mut a, mut b) = (pattern.split('/'), pointer.split('/'));
    loop {
        match (a.next(), b.next()) {
            (None, None) => return true,
            (Some("*"), Some(seg)) if !seg.is_empty() && seg.bytes().all(|x| x.is_ascii_digit()) => {}
            (Some(x), Some(y)) if x == y => {}
            _ => return false,
        }
    }
}

/// The canonical `$id` of a payload schema.
pub fn schema_id(category: Category, version: SchemaVersion) -> String {
    format!("urn:etxhub:schema:{category}:v{version}")
}

/// Follows local `$ref`s (`#/$defs/...`) from `node`.
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut node = node;
    for _ in 0..MAX_REF_HOPS {
        let target = node
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|ptr| root.pointer(ptr));
        match target {
            Some(t) => node = t,
            None => break,
        }
    }
    node
}

/// A keyword of `node`, looked up on the node itself first, then along its `$ref` chain.
fn keyword<'a>(root: &'a Value, node: &'a Value, name: &str) -> Option<&'a Value> {
    let mut node = node;
    for _ in 0..=MAX_REF_HOPS {
        if let Some(v) = node.get(name) {
            return Some(v);
        }
        node = node
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|ptr| root.pointer(ptr))?;
    }
    None
}

/// The schema of the member `seg` (property name or array index) of instances of `node`.
fn child<'a>(root: &'a Value, node: &'a Value, seg: &str) -> Option<&'a Value> {
    let node = resolve(root, node);
    if let Some(p) = node.get("properties").and_then(|p| p.get(seg)) {
        return Some(p);
    }
    if !seg.is_empty()
        && seg.bytes().all(|b| b.is_ascii_digit())
        && let Some(items) = node.get("items").filter(|i| i.is_object())
    {
        return Some(items);
    }
    None
}

fn collect_personal(root: &Value, node: &Value, pointer: &str, depth: usize, out: &mut Vec<PersonalField>) {
    if depth > 32 {
        return;
    }
    if node.get("x-personal").and_then(Value::as_bool) == Some(true) {
        let mask = keyword(root, node, "x-mask")
            .and_then(Value::as_str)
            .unwrap_or("redact")
            .to_owned();
        out.push(PersonalField {
            pointer: pointer.to_owned(),
            mask,
        });
    }
    let node = resolve(root, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, sub) in props {
            let p = format!("{pointer}/{}", escape_pointer(name));
            collect_personal(root, sub, &p, depth + 1, out);
        }
    }
    if let Some(items) = node.get("items").filter(|i| i.is_object()) {
        collect_personal(root, items, &format!("{pointer}/*"), depth + 1, out);
    }
}

/// Escapes one JSON Pointer segment (RFC 6901).
pub fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Compares two JSON Pointers segment by segment, array indices numerically
/// (`/a/2` before `/a/10`).
fn cmp_pointer(a: &str, b: &str) -> Ordering {
    let mut sa = a.split('/');
    let mut sb = b.split('/');
    loop {
        match (sa.next(), sb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(i), Ok(j)) => i.cmp(&j).then_with(|| x.cmp(y)),
                    _ => x.cmp(y),
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
        }
    }
}

/// Sorts violations by path (array indices numerically), then code, and drops exact duplicates.
pub fn sort_violations(v: &mut Vec<FieldViolation>) {
    v.sort_by(|a, b| cmp_pointer(&a.path, &b.path).then_with(|| a.code.as_str().cmp(b.code.as_str())));
    v.dedup();
}

/// `1 character`, `255 characters`.
fn counted(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Renders a schema value for a detail message (schema values only, never instance values).
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn one_of(options: &Value) -> String {
    match options {
        Value::Array(list) => {
            let names: Vec<String> = list.iter().map(show).collect();
            format!("expected one of: {}", names.join(", "))
        }
        other => format!("expected one of: {}", show(other)),
    }
}

/// Maps a jsonschema error kind to a violation code and an English detail built only from the
/// schema (the rule), never from the instance.
fn describe(kind: &ValidationErrorKind, node: Option<&Value>, root: &Value) -> (ViolationCode, String) {
    use ValidationErrorKind as K;
    let hint = node
        .and_then(|n| keyword(root, n, "x-format-hint"))
        .and_then(Value::as_str);
    match kind {
        K::Type { kind } => {
            let expected = node
                .and_then(|n| keyword(root, n, "type"))
                .map(|t| match t {
                    Value::Array(list) => list.iter().map(show).collect::<Vec<_>>().join(" or "),
                    other => show(other),
                })
                .unwrap_or_else(|| match kind {
                    TypeKind::Single(t) => t.to_string(),
                    TypeKind::Multiple(_) => "another type".to_owned(),
                });
            (ViolationCode::Type, format!("expected type: {expected}"))
        }
        K::Enum { options } => (ViolationCode::Enum, one_of(options)),
        K::Constant { expected_value } => (
            ViolationCode::Enum,
            format!("expected the value: {}", show(expected_value)),
        ),
        K::Pattern { pattern } => (
            ViolationCode::Format,
            match hint {
                Some(h) => format!("expected format: {h}"),
                None => format!("must match the pattern {pattern}"),
            },
        ),
        K::Format { format } => (
            ViolationCode::Format,
            format!("expected format: {}", hint.unwrap_or(format)),
        ),
        K::MinLength { limit } => (
            ViolationCode::TooSmall,
            format!("minimum {}", counted(*limit, "character")),
        ),
        K::MaxLength { limit } => (
            ViolationCode::TooLarge,
            format!("maximum {}", counted(*limit, "character")),
        ),
        K::MinItems { limit } => (
            ViolationCode::TooSmall,
            format!("minimum {}", counted(*limit, "item")),
        ),
        K::MaxItems { limit } => (
            ViolationCode::TooLarge,
            format!("maximum {}", counted(*limit, "item")),
        ),
        K::MinProperties { limit } => (
            ViolationCode::TooSmall,
            format!("minimum {}", counted(*limit, "field")),
        ),
        K::MaxProperties { limit } => (
            ViolationCode::TooLarge,
            format!("maximum {}", counted(*limit, "field")),
        ),
        K::Minimum { limit } => (ViolationCode::TooSmall, format!("minimum {}", show(limit))),
        K::ExclusiveMinimum { limit } => (
            ViolationCode::TooSmall,
            format!("must be greater than {}", show(limit)),
        ),
        K::Maximum { limit } => (ViolationCode::TooLarge, format!("maximum {}", show(limit))),
        K::ExclusiveMaximum { limit } => (
            ViolationCode::TooLarge,
            format!("must be less than {}", show(limit)),
        ),
        K::UniqueItems => (ViolationCode::Invalid, "items must be unique".to_owned()),
        other => (
            ViolationCode::Invalid,
            format!("breaks the rule `{}`", other.keyword()),
        ),
    }
}

fn unknown_version(reg: &SchemaRegistry, category: Category) -> FieldViolation {
    let known: Vec<String> = reg.versions(category).iter().map(ToString::to_string).collect();
    FieldViolation::new("/schema_version", ViolationCode::UnknownSchemaVersion)
        .with_detail(format!("known versions for {category}: {}", known.join(", ")))
}

/// Reads an optional string member of the envelope; a non-string is a Type violation.
fn string_field<'a>(
    obj: &'a Map<String, Value>,
    name: &str,
    required: bool,
    out: &mut Vec<FieldViolation>,
) -> Option<&'a str> {
    match obj.get(name) {
        None => {
            if required {
                out.push(
                    FieldViolation::new(format!("/{name}"), ViolationCode::Required)
                        .with_detail("this field is required"),
                );
            }
            None
        }
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            out.push(
                FieldViolation::new(format!("/{name}"), ViolationCode::Type)
                    .with_detail("expected type: string"),
            );
            None
        }
    }
}

/// Parses one envelope field with a shared-kernel parser, replacing the parser's message (which
/// may quote the value) with a fixed detail.
fn parse_field<T, E>(
    value: Option<&str>,
    name: &str,
    parse: impl Fn(&str) -> Result<T, etx_domain::ParseError>,
    detail: impl Fn(ViolationCode) -> E,
    out: &mut Vec<FieldViolation>,
) -> Option<T>
where
    E: Into<String>,
{
    let s = value?;
    match parse(s) {
        Ok(v) => Some(v),
        Err(e) => {
            out.push(FieldViolation::new(format!("/{name}"), e.code).with_detail(detail(e.code)));
            None
        }
    }
}

fn parse_version(obj: &Map<String, Value>, out: &mut Vec<FieldViolation>) -> Option<SchemaVersion> {
    const DETAIL: &str = "expected a positive integer, e.g. 1 or \"v1\"";
    let bad = |out: &mut Vec<FieldViolation>| {
        out.push(
            FieldViolation::new("/schema_version", ViolationCode::UnknownSchemaVersion).with_detail(DETAIL),
        );
    };
    match obj.get("schema_version") {
        None => {
            out.push(
                FieldViolation::new("/schema_version", ViolationCode::Required)
                    .with_detail("this field is required"),
            );
            None
        }
        Some(Value::String(s)) => match SchemaVersion::parse(s) {
            Ok(v) => Some(v),
            Err(_) => {
                bad(out);
                None
            }
        },
        Some(Value::Number(n)) => match n.as_u64().map(|n| SchemaVersion::parse(&n.to_string())) {
            Some(Ok(v)) => Some(v),
            _ => {
                bad(out);
                None
            }
        },
        Some(_) => {
            out.push(
                FieldViolation::new("/schema_version", ViolationCode::Type)
                    .with_detail("expected type: integer or string"),
            );
            None
        }
    }
}

/// One submitted item (already parsed to JSON) → validated envelope + payload, or every
/// violation found (R-ING-4).
///
/// Envelope violations have paths `/category`, `/period`…; unknown envelope members are
/// [`ViolationCode::UnknownField`]; a state-secret classification is
/// [`ViolationCode::StateSecret`] at `/classification` (R-SRC-2). When the category or the
/// version is invalid, the payload is not validated. Payload violations have paths under
/// `/payload`. The result is sorted by path. `priority` defaults to `normal`, `form` to `raw`.
pub fn parse_item(reg: &SchemaRegistry, item: &Value) -> Result<(Envelope, Value), Vec<FieldViolation>> {
    let Some(obj) = item.as_object() else {
        return Err(vec![
            FieldViolation::new("", ViolationCode::Type).with_detail("expected type: object"),
        ]);
    };
    let mut out = Vec::new();
    for key in obj.keys() {
        if !ENVELOPE_FIELDS.contains(&key.as_str()) {
            out.push(
                FieldViolation::new(format!("/{}", escape_pointer(key)), ViolationCode::UnknownField)
                    .with_detail("this field is not in the envelope"),
            );
        }
    }

    let category = parse_field(
        string_field(obj, "category", true, &mut out),
        "category",
        Category::parse,
        |_| "expected one of: policy, statistics, workforce, enforcement",
        &mut out,
    );
    let mut version = parse_version(obj, &mut out);
    if let (Some(c), Some(v)) = (category, version)
        && !reg.has(c, v)
    {
        out.push(unknown_version(reg, c));
        version = None;
    }
    let period = parse_field(
        string_field(obj, "period", true, &mut out),
        "period",
        Period::parse,
        |_| "expected a period YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD (years 1945-2200)",
        &mut out,
    );
    let classification = parse_field(
        string_field(obj, "classification", true, &mut out),
        "classification",
        Classification::parse,
        |code| {
            if code == ViolationCode::StateSecret {
                "state-secret data is not accepted (R-SRC-2)"
            } else {
                "expected one of: public, internal, confidential, secret"
            }
        },
        &mut out,
    );
    let priority_raw = string_field(obj, "priority", false, &mut out);
    let priority = match priority_raw {
        None if obj.contains_key("priority") => None,
        None => Some(Priority::default()),
        some => parse_field(
            some,
            "priority",
            Priority::parse,
            |_| "expected one of: high, normal, low",
            &mut out,
        ),
    };
    let form_raw = string_field(obj, "form", false, &mut out);
    let form = match form_raw {
        None if obj.contains_key("form") => None,
        None => Some(Form::default()),
        some => parse_field(
            some,
            "form",
            Form::parse,
            |_| "expected one of: raw, masked",
            &mut out,
        ),
    };
    let idempotency_key = parse_field(
        string_field(obj, "idempotency_key", false, &mut out),
        "idempotency_key",
        IdempotencyKey::parse,
        |_| "expected 1-128 visible ASCII characters",
        &mut out,
    );

    let payload = match obj.get("payload") {
        None => {
            out.push(
                FieldViolation::new("/payload", ViolationCode::Required)
                    .with_detail("this field is required"),
            );
            None
        }
        Some(p @ Value::Object(_)) => Some(p),
        Some(_) => {
            out.push(
                FieldViolation::new("/payload", ViolationCode::Type).with_detail("expected type: object"),
            );
            None
        }
    };
    if let (Some(c), Some(v), Some(p)) = (category, version, payload)
        && let Err(mut violations) = reg.validate(c, v, p)
    {
        if form == Some(Form::Masked) {
            // A record declared masked carries its personal fields masked (`********0123`, a
            // token): their format is not the clear value's. The masking stage checks that no
            // clear identifier is left and holds the record otherwise (issue 5 §3).
            let personal = reg.personal_fields(c, v);
            violations.retain(|f| {
                !(f.code == ViolationCode::Format
                    && p.pointer(f.path.trim_start_matches("/payload"))
                        .is_some_and(Value::is_string)
                    && personal
                        .iter()
                        .any(|pf| pointer_matches(&pf.pointer, f.path.trim_start_matches("/payload"))))
            });
        }
        out.append(&mut violations);
    }

    if !out.is_empty() {
        sort_violations(&mut out);
        return Err(out);
    }
    match (category, version, period, classification, priority, form, payload) {
        (
            Some(category),
            Some(schema_version),
            Some(period),
            Some(classification),
            Some(priority),
            Some(form),
            Some(payload),
        ) => Ok((
            Envelope {
                category,
                schema_version,
                period,
                classification,
                priority,
                form,
                idempotency_key,
            },
            payload.clone(),
        )),
        // Unreachable in practice: every missing part above pushed a violation.
        _ => Err(vec![
            FieldViolation::new("", ViolationCode::Invalid).with_detail("invalid record"),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reg() -> SchemaRegistry {
        SchemaRegistry::load().unwrap()
    }

    #[test]
    fn every_embedded_schema_loads_and_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SchemaRegistry>();
        let r = reg();
        for c in Category::ALL {
            assert_eq!(r.versions(c), vec![SchemaVersion::V1]);
            assert_eq!(r.latest(c), SchemaVersion::V1);
            let doc = r.json_schema(c, SchemaVersion::V1).unwrap();
            assert_eq!(doc["$id"], json!(format!("urn:etxhub:schema:{c}:v1")));
            assert_eq!(doc["additionalProperties"], json!(false));
            assert!(doc["x-title-vi"].is_string());
        }
        assert_eq!(r.envelope_schema()["$id"], json!("urn:etxhub:schema:envelope:v1"));
        assert!(format!("{r:?}").contains("policy:v1"));
    }

    #[test]
    fn a_record_declared_masked_may_carry_masked_personal_fields_and_nothing_else_relaxed() {
        let r = reg();
        let item = |form: &str, citizen: Value, email: &str| {
            json!({
                "category": "workforce", "schema_version": 1, "period": "2026-10",
                "classification": "confidential", "form": form,
                "payload": {
                    "activity_type": "expert_registry", "title": "Đăng ký chuyên gia",
                    "organiser": "Cục Chuyển đổi số quốc gia", "start_date": "2026-10-05",
                    "expert": {
                        "full_name": "[REDACTED]", "citizen_id": citizen, "email": email,
                        "phone": "090****123", "specialisation": "Chữ ký số"
                    }
                }
            })
        };
        // Masked values in personal fields: accepted when declared masked (issue 5 §3)…
        assert!(parse_item(&r, &item("masked", json!("********0123"), "t***@example.vn")).is_ok());
        // …refused as the clear format when raw.
        let raw = parse_item(&r, &item("raw", json!("********0123"), "t***@example.vn")).unwrap_err();
        let paths: Vec<&str> = raw.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/payload/expert/citizen_id",
                "/payload/expert/email",
                "/payload/expert/phone"
            ]
        );
        // The relaxation is for the format of personal strings only: a wrong type stays wrong.
        let typed = parse_item(&r, &item("masked", json!(79190000123_u64), "t***@example.vn")).unwrap_err();
        assert_eq!(typed.len(), 1);
        assert_eq!(typed[0].path, "/payload/expert/citizen_id");
        assert_eq!(typed[0].code, ViolationCode::Type);
    }

    #[test]
    fn pointers_match_personal_field_patterns() {
        assert!(pointer_matches("/expert/phone", "/expert/phone"));
        assert!(pointer_matches("/trainers/*/phone", "/trainers/12/phone"));
        assert!(!pointer_matches("/trainers/*/phone", "/trainers/x/phone"));
        assert!(!pointer_matches("/expert/phone", "/expert/phone/0"));
        assert!(!pointer_matches("/expert", "/expert/phone"));
    }

    #[test]
    fn type_at_follows_properties_items_and_refs() {
        let r = reg();
        let v = SchemaVersion::V1;
        assert_eq!(r.type_at(Category::Statistics, v, &[]), Some(JsonType::Object));
        assert_eq!(
            r.type_at(Category::Statistics, v, &["value"]),
            Some(JsonType::Number)
        );
        assert_eq!(
            r.type_at(Category::Statistics, v, &["failure_reasons"]),
            Some(JsonType::Array)
        );
        assert_eq!(
            r.type_at(Category::Statistics, v, &["failure_reasons", "3", "count"]),
            Some(JsonType::Integer)
        );
        assert_eq!(
            r.type_at(Category::Statistics, v, &["failure_reasons", "0", "reason_code"]),
            Some(JsonType::String)
        );
        assert_eq!(
            r.type_at(Category::Policy, v, &["issued_on"]),
            Some(JsonType::String)
        );
        assert_eq!(
            r.type_at(Category::Policy, v, &["topics", "0"]),
            Some(JsonType::String)
        );
        assert_eq!(
            r.type_at(Category::Workforce, v, &["expert", "citizen_id"]),
            Some(JsonType::String)
        );
        assert_eq!(
            r.type_at(Category::Enforcement, v, &["penalty_amount_vnd"]),
            Some(JsonType::Integer)
        );
        assert_eq!(r.type_at(Category::Policy, v, &["nope"]), None);
        assert_eq!(r.type_at(Category::Policy, v, &["topics", "x"]), None);
        let v9 = SchemaVersion::parse("9").unwrap();
        assert_eq!(r.type_at(Category::Policy, v9, &["title"]), None);
    }

    #[test]
    fn personal_fields_are_listed_with_their_mask() {
        let r = reg();
        let wf = r.personal_fields(Category::Workforce, SchemaVersion::V1);
        let ptrs: Vec<(&str, &str)> = wf.iter().map(|p| (p.pointer.as_str(), p.mask.as_str())).collect();
        assert!(ptrs.contains(&("/expert/citizen_id", "token")));
        assert!(ptrs.contains(&("/expert/full_name", "partial")));
        assert!(ptrs.contains(&("/expert/email", "partial")));
        assert!(ptrs.contains(&("/expert/phone", "partial")));
        assert_eq!(wf.len(), 4);
        let en = r.personal_fields(Category::Enforcement, SchemaVersion::V1);
        assert_eq!(en.len(), 6);
        assert!(
            r.personal_fields(Category::Statistics, SchemaVersion::V1)
                .is_empty()
        );
        assert!(r.personal_fields(Category::Policy, SchemaVersion::V1).is_empty());
    }

    #[test]
    fn validate_refuses_an_unknown_version() {
        let r = reg();
        let v2 = SchemaVersion::parse("2").unwrap();
        let err = r.validate(Category::Policy, v2, &json!({})).unwrap_err();
        assert_eq!(err.len(), 1);
        assert_eq!(err[0].code, ViolationCode::UnknownSchemaVersion);
    }

    #[test]
    fn paths_sort_with_numeric_indices() {
        let mut v: Vec<FieldViolation> = ["/payload/a/10/x", "/payload/a/2/x", "/category", "/payload/a"]
            .iter()
            .map(|p| FieldViolation::new(*p, ViolationCode::Invalid))
            .collect();
        sort_violations(&mut v);
        let paths: Vec<&str> = v.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/category", "/payload/a", "/payload/a/2/x", "/payload/a/10/x"]
        );
    }

    #[test]
    fn pointer_segments_are_escaped() {
        assert_eq!(escape_pointer("a/b~c"), "a~1b~0c");
    }
}
