//! XSD 1.0 documents of the XML wire format ([`crate::xml`], R-ING-3), one per category schema
//! version, generated deterministically from the JSON Schemas of the [`SchemaRegistry`]
//! (R-DATA-1), so that XML clients can validate and bind records before sending them. They are
//! served at `GET /api/v1/schemas/{category}/{version}?format=xsd` and committed as
//! `contracts/schemas/{category}/v{n}.xsd` ([`contract_path`]).
//!
//! Each XSD has the target namespace [`NAMESPACE`] (elements qualified) and two global
//! elements: `records` (1 to 1,000 `record`) and `record`. A `record` holds the envelope, from
//! `contracts/schemas/envelope.v1.schema.json` with `category` fixed to the XSD's category and
//! `schema_version` to its version, and `payload`, typed from the category's JSON Schema:
//!
//! | JSON Schema | XSD |
//! |---|---|
//! | object | complex type with `xs:all` (children in any order, as the parser reads them); `required` → `minOccurs="1"`, other fields `minOccurs="0"` |
//! | array | an element holding `<item>` children; `minItems`/`maxItems` → their `minOccurs`/`maxOccurs` |
//! | string | `xs:string` (`xs:token` for the envelope codes the hub trims); `enum`/`const` → `xs:enumeration`; `minLength`, `maxLength`; `pattern` → `xs:pattern` when XSD can say it ([`xsd_pattern`]) |
//! | date, date-time (`format`, or the date and date-time patterns of the contract) | `xs:date`, `xs:dateTime`, the pattern kept |
//! | integer | `xs:integer`, bounds as inclusive bounds, within what the parser reads (`i64::MIN` to `u64::MAX`) |
//! | number | `xs:decimal` with `minInclusive` … `maxExclusive` |
//! | boolean | `xs:boolean` |
//! | `$ref` to `#/$defs/x` | the named type `XType` (inlined when the referring schema adds constraints of its own) |
//! | `x-title-vi`, `x-description-vi` / `title`, `description` | `xs:annotation/xs:documentation` with `xml:lang` `vi` / `en` |
//!
//! The JSON Schema stays authoritative: the hub validates every record against it, whatever its
//! format. Where XSD 1.0 cannot say the same thing, the XSD is approximate and says so in its
//! annotations:
//! - the namespace is required here (the hub also reads unqualified documents); attributes are
//!   not declared (the hub ignores them);
//! - envelope codes are lower-case here (the hub ignores their case);
//! - numbers are `xs:decimal`: the exponent notation the hub also reads (`1e3`) is refused;
//! - `xs:date`/`xs:dateTime` refuse impossible dates (`2026-02-30`) that the contract's pattern
//!   lets through, and tolerate surrounding whitespace, which the hub refuses;
//! - `period` is checked by pattern only (the hub also checks the year, 1945-2200, and the day);
//! - one XSD describes one category and version: a document mixing categories, which the hub
//!   accepts, validates against none; a batch file may hold more than 1,000 records and leave out
//!   the envelope fields given as upload defaults;
//! - patterns XSD regular expressions cannot express (look-around, back-references, `\b`…),
//!   `multipleOf`, `uniqueItems`, open objects and untyped values are noted on their element and
//!   left to the hub.

use crate::schema::{ENVELOPE_FIELDS, SchemaRegistry, escape_pointer};
use crate::service::Limits;
use crate::xml::{NAMESPACE, is_xml_char};
use etx_domain::{Category, SchemaVersion};
use serde_json::{Number, Value};
use std::collections::BTreeMap;

const XS_NAMESPACE: &str = "http://www.w3.org/2001/XMLSchema";
/// Any string, as an XSD regular expression.
const ANY_STRING: &str = r"[\s\S]*";
/// The characters of ECMA-262 `\s` that may appear in XML, as the inside of an XSD character
/// class (`\s` there is only space, tab, CR and LF; vertical tab and form feed cannot occur).
const ECMA_SPACE: &str = "\\s\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}\u{feff}";
/// The contract's date pattern (`contracts/schemas/README.md`: dates are checked by pattern).
const DATE_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";
/// The contract's RFC 3339 date-time pattern.
const DATE_TIME_PATTERN: &str = "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$";
/// `$ref` chains longer than this are not followed (as in [`crate::schema`]).
const MAX_REF_HOPS: usize = 8;
/// Deeper than this, a schema is described as any content (the parser stops at 32 anyway).
const MAX_NESTING: usize = 32;
/// Keywords that only document; a `$ref` with only these beside it uses the named type.
const ANNOTATION_KEYS: [&str; 14] = [
    "$ref",
    "$comment",
    "title",
    "description",
    "x-title-vi",
    "x-description-vi",
    "x-format-hint",
    "x-personal",
    "x-mask",
    "examples",
    "default",
    "deprecated",
    "readOnly",
    "writeOnly",
];
/// Type names the generator itself uses.
const RECORD_TYPE: &str = "RecordType";
const PAYLOAD_TYPE: &str = "PayloadType";

/// Where the XSD of a category version is committed, relative to the workspace root.
pub fn contract_path(category: Category, version: SchemaVersion) -> String {
    format!("contracts/schemas/{category}/v{version}.xsd")
}

/// The XSD of the XML wire format for `category` / `version`, or `None` when the registry has
/// no such schema. The same registry always gives the same bytes.
pub fn generate(reg: &SchemaRegistry, category: Category, version: SchemaVersion) -> Option<String> {
    let schema = reg.json_schema(category, version)?;
    Some(render(schema, reg.envelope_schema(), category, version))
}

/// The XSD of a payload schema and the envelope schema.
fn render(schema: &Value, envelope: &Value, category: Category, version: SchemaVersion) -> String {
    let id = schema.get("$id").and_then(Value::as_str).unwrap_or_default();
    let source = format!("contracts/schemas/{category}/v{version}.schema.json");
    let max_records = Limits::default().max_records;
    let cx = Cx {
        root: schema,
        named: named_defs(schema),
    };

    let mut out = Out::default();
    out.raw("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.raw(&format!(
        "<!-- Generated from {source} by etx-ingestion-core (src/xsd.rs). Do not edit: run `ETX_UPDATE_CONTRACTS=1 cargo nextest run -p etxhub xsd`. -->\n"
    ));
    let version_text = version.to_string();
    out.open(
        "xs:schema",
        &[
            ("xmlns:xs", XS_NAMESPACE),
            ("xmlns:etx", NAMESPACE),
            ("targetNamespace", NAMESPACE),
            ("elementFormDefault", "qualified"),
            ("version", &version_text),
        ],
    );
    annotation(
        &mut out,
        &Docs {
            vi: Some(format!(
                "Lược đồ XSD của định dạng XML dùng để gửi bản ghi loại {category}, phiên bản {version} (R-ING-3), sinh tự động từ lược đồ JSON {id}. Hệ thống kiểm tra mọi bản ghi theo lược đồ JSON; lược đồ XSD chỉ gần đúng ở những điểm XSD 1.0 không diễn đạt được (xem ghi chú tiếng Anh ở từng phần tử)."
            )),
            en: Some(format!(
                "XML wire format (R-ING-3) of ETX Hub records of category {category}, schema version {version}: the body of POST /api/v1/records as application/xml, a <records> document or a single <record>. Generated from the JSON Schema {id} ({source}), which stays authoritative: the hub validates every record against it. Where XSD 1.0 cannot say the same thing this schema is approximate: it requires the namespace and declares no attributes (the hub also reads unqualified documents and ignores attributes); envelope codes must be lower-case (the hub ignores their case); numbers are decimal, without exponent; xs:date and xs:dateTime refuse impossible dates such as 2026-02-30 and tolerate surrounding whitespace, which the hub refuses; other rules XSD cannot express are noted on their element."
            )),
        },
    );

    let max = max_records.to_string();
    let records_docs = Docs {
        vi: Some(format!(
            "Từ 1 đến {} bản ghi loại {category}, phiên bản {version}.",
            thousands(max_records, '.')
        )),
        en: Some(format!(
            "1 to {} records of category {category}, schema version {version}. A batch file has the same shape but may hold more records, whose envelope fields may be left out when the upload gives them as defaults.",
            thousands(max_records, ',')
        )),
    };
    out.open("xs:element", &[("name", "records")]);
    annotation(&mut out, &records_docs);
    out.open("xs:complexType", &[]);
    out.open("xs:sequence", &[]);
    out.empty("xs:element", &[("ref", "etx:record"), ("maxOccurs", &max)]);
    out.close("xs:sequence");
    out.close("xs:complexType");
    out.close("xs:element");

    let record_type = format!("etx:{RECORD_TYPE}");
    out.open("xs:element", &[("name", "record"), ("type", &record_type)]);
    annotation(
        &mut out,
        &Docs {
            vi: Some(
                "Một bản ghi: phong bì và nội dung dữ liệu; cũng có thể là phần tử gốc của tài liệu.".into(),
            ),
            en: Some(
                "One record: the envelope and the payload; also accepted as the root of a document.".into(),
            ),
        },
    );
    out.close("xs:element");

    record(&mut out, envelope, category, version);

    let payload_docs = docs(schema, schema, true, &object_notes(schema, schema));
    complex_type(
        &cx,
        &mut out,
        schema,
        Kind::Object,
        Some(PAYLOAD_TYPE),
        &payload_docs,
        0,
    );

    for (pointer, name) in &cx.named {
        if let Some(def) = pointer.strip_prefix('#').and_then(|p| schema.pointer(p)) {
            named_type(&cx, &mut out, def, name);
        }
    }
    out.close("xs:schema");
    out.buf
}

/// `1000` → `1,000` (English) or `1.000` (Vietnamese).
fn thousands(n: usize, sep: char) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

// --- The envelope --------------------------------------------------------------------------

/// `RecordType`: the envelope fields and the payload, in any order.
fn record(out: &mut Out, envelope: &Value, category: Category, version: SchemaVersion) {
    let ecx = Cx {
        root: envelope,
        named: BTreeMap::new(),
    };
    let required: Vec<&str> = envelope
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    out.open("xs:complexType", &[("name", RECORD_TYPE)]);
    annotation(
        out,
        &docs(
            envelope,
            envelope,
            true,
            &["The elements may come in any order.".to_owned()],
        ),
    );
    out.open("xs:all", &[]);
    for field in ENVELOPE_FIELDS {
        let node = envelope
            .get("properties")
            .and_then(|p| p.get(field))
            .unwrap_or(&Value::Null);
        let occurs = Occurs {
            min: u64::from(required.contains(&field)),
            max: Some(1),
        };
        match field {
            "category" => {
                let s = Simple {
                    base: "xs:token",
                    facets: vec![("enumeration", category.to_string())],
                    notes: vec![format!("Always {category} in this schema.")],
                };
                simple_element(out, field, occurs, &docs(envelope, node, true, &s.notes), &s);
            }
            "schema_version" => {
                let s = Simple {
                    base: "xs:token",
                    facets: vec![("pattern", format!("[vV]?{version}"))],
                    notes: vec![format!("Always {version} or v{version} in this schema.")],
                };
                simple_element(out, field, occurs, &docs(envelope, node, true, &s.notes), &s);
            }
            "payload" => {
                let ty = format!("etx:{PAYLOAD_TYPE}");
                let attrs = element_attrs(field, occurs, Some(&ty));
                if begin_element(out, &attrs, &docs(envelope, node, true, &[]), false) {
                    out.close("xs:element");
                }
            }
            "period" => {
                let mut s = simple(envelope, node, Kind::String, "xs:token");
                s.notes
                    .push("The hub also checks the year (1945 to 2200) and that the day exists.".into());
                simple_element(out, field, occurs, &docs(envelope, node, true, &s.notes), &s);
            }
            // The key is taken as written; the other codes are trimmed by their parsers.
            "idempotency_key" => element(&ecx, out, field, node, occurs, "xs:string", 1),
            _ => element(&ecx, out, field, node, occurs, "xs:token", 1),
        }
    }
    out.close("xs:all");
    out.close("xs:complexType");
}

// --- Schema nodes ----------------------------------------------------------------------------

/// A schema document and the named types made of its `$defs`.
struct Cx<'a> {
    root: &'a Value,
    /// `#/$defs/x` → `XType`.
    named: BTreeMap<String, String>,
}

/// What a schema node describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Number,
    Boolean,
    Object,
    Array,
    /// No single type: any content.
    Any,
}

/// How often an element may occur; `max: None` is unbounded.
#[derive(Debug, Clone, Copy)]
struct Occurs {
    min: u64,
    max: Option<u64>,
}

/// The target of a local `$ref` (`#/…`).
fn ref_target<'a>(root: &'a Value, node: &'a Value) -> Option<&'a Value> {
    node.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|ptr| root.pointer(ptr))
}

/// A keyword of `node`, looked up on the node first, then along its `$ref` chain (as
/// `SchemaRegistry::type_at` reads it).
fn kw<'a>(root: &'a Value, node: &'a Value, name: &str) -> Option<&'a Value> {
    let mut node = node;
    for _ in 0..=MAX_REF_HOPS {
        if let Some(v) = node.get(name) {
            return Some(v);
        }
        node = ref_target(root, node)?;
    }
    None
}

fn kw_str<'a>(root: &'a Value, node: &'a Value, name: &str) -> Option<&'a str> {
    kw(root, node, name).and_then(Value::as_str)
}

fn kw_u64(root: &Value, node: &Value, name: &str) -> Option<u64> {
    kw(root, node, name).and_then(Value::as_u64)
}

fn kind_of(root: &Value, node: &Value) -> Kind {
    let from_name = |s: &str| match s {
        "string" => Kind::String,
        "integer" => Kind::Integer,
        "number" => Kind::Number,
        "boolean" => Kind::Boolean,
        "object" => Kind::Object,
        "array" => Kind::Array,
        _ => Kind::Any,
    };
    match kw(root, node, "type") {
        Some(Value::String(s)) => from_name(s),
        Some(Value::Array(list)) => {
            let names: Vec<&str> = list
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| *s != "null")
                .collect();
            match names.as_slice() {
                [one] => from_name(one),
                ["integer", "number"] | ["number", "integer"] => Kind::Number,
                _ => Kind::Any,
            }
        }
        Some(_) => Kind::Any,
        None => {
            let values = kw(root, node, "enum")
                .and_then(Value::as_array)
                .cloned()
                .or_else(|| kw(root, node, "const").map(|c| vec![c.clone()]));
            if values.is_some_and(|v| !v.is_empty() && v.iter().all(Value::is_string)) {
                Kind::String
            } else if kw(root, node, "properties").is_some() {
                Kind::Object
            } else if kw(root, node, "items").is_some() {
                Kind::Array
            } else {
                Kind::Any
            }
        }
    }
}

/// A named type for every typed entry of `$defs` (and `definitions`), keyed by its `$ref`.
fn named_defs(root: &Value) -> BTreeMap<String, String> {
    let mut named = BTreeMap::new();
    let mut taken: Vec<String> = vec![RECORD_TYPE.into(), PAYLOAD_TYPE.into()];
    for container in ["$defs", "definitions"] {
        let Some(defs) = root.get(container).and_then(Value::as_object) else {
            continue;
        };
        let mut names: Vec<&String> = defs.keys().collect();
        names.sort();
        for name in names {
            if kind_of(root, &defs[name.as_str()]) == Kind::Any {
                continue;
            }
            let base = format!("{}Type", type_stem(name));
            let mut candidate = base.clone();
            let mut n = 2;
            while taken.contains(&candidate) {
                candidate = format!("{base}{n}");
                n += 1;
            }
            taken.push(candidate.clone());
            named.insert(format!("#/{container}/{}", escape_pointer(name)), candidate);
        }
    }
    named
}

/// `dateTime` → `DateTime`, `citizen-id` → `CitizenId`: an NCName start for a type name.
fn type_stem(def: &str) -> String {
    let mut out = String::new();
    for part in def.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.push(first.to_ascii_uppercase());
            out.extend(chars);
        }
    }
    match out.chars().next() {
        None => "Def".into(),
        Some(c) if c.is_ascii_digit() => format!("T{out}"),
        Some(_) => out,
    }
}

/// The named type of `node` when it is a bare `$ref` (only documentation beside it).
fn named_ref<'a>(cx: &'a Cx<'_>, node: &Value) -> Option<&'a str> {
    let target = node.get("$ref")?.as_str()?;
    let name = cx.named.get(target)?;
    let bare = node
        .as_object()?
        .keys()
        .all(|k| ANNOTATION_KEYS.contains(&k.as_str()));
    bare.then_some(name.as_str())
}

/// Whether a JSON member name can be an XML element name.
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

// --- Documentation ---------------------------------------------------------------------------

/// The Vietnamese and English documentation of one component.
#[derive(Debug, Default)]
struct Docs {
    vi: Option<String>,
    en: Option<String>,
}

/// Ends a sentence with a full stop when it has none.
fn sentence(s: &str) -> String {
    if s.ends_with(['.', '!', '?']) {
        s.to_owned()
    } else {
        format!("{s}.")
    }
}

/// The documentation of `node`: its own keywords, or (`chain`) also those along its `$ref`s.
fn docs(root: &Value, node: &Value, chain: bool, notes: &[String]) -> Docs {
    let get = |key: &str| {
        let value = if chain { kw(root, node, key) } else { node.get(key) };
        value
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let vi = match (get("x-title-vi"), get("x-description-vi")) {
        (Some(t), Some(d)) => Some(format!("{} {d}", sentence(t))),
        (one, other) => one.or(other).map(str::to_owned),
    };
    let mut en: Vec<String> = [get("title"), get("description")]
        .into_iter()
        .flatten()
        .map(sentence)
        .collect();
    if let Some(hint) = get("x-format-hint") {
        en.push(format!("Format: {hint}."));
    }
    let personal = if chain {
        kw(root, node, "x-personal")
    } else {
        node.get("x-personal")
    };
    if personal.and_then(Value::as_bool) == Some(true) {
        en.push(format!(
            "Personal data (R-SEC-10), masked as: {}.",
            get("x-mask").unwrap_or("redact")
        ));
    }
    match node.get("default") {
        Some(Value::String(d)) => en.push(format!("Default: {d}.")),
        Some(d @ (Value::Number(_) | Value::Bool(_))) => en.push(format!("Default: {d}.")),
        _ => {}
    }
    en.extend(notes.iter().cloned());
    Docs {
        vi,
        en: (!en.is_empty()).then(|| en.join(" ")),
    }
}

fn annotation(out: &mut Out, docs: &Docs) {
    if docs.vi.is_none() && docs.en.is_none() {
        return;
    }
    out.open("xs:annotation", &[]);
    if let Some(vi) = &docs.vi {
        out.text("xs:documentation", &[("xml:lang", "vi")], vi);
    }
    if let Some(en) = &docs.en {
        out.text("xs:documentation", &[("xml:lang", "en")], en);
    }
    out.close("xs:annotation");
}

// --- Simple types ----------------------------------------------------------------------------

/// A restriction of a built-in type.
#[derive(Debug)]
struct Simple {
    base: &'static str,
    facets: Vec<(&'static str, String)>,
    /// What the facets could not say, for the documentation.
    notes: Vec<String>,
}

/// An `xs:decimal` literal of a JSON number (Rust prints floats without exponent).
fn decimal(n: &Number) -> Option<String> {
    if n.is_i64() || n.is_u64() {
        return Some(n.to_string());
    }
    n.as_f64().filter(|f| f.is_finite()).map(|f| format!("{f}"))
}

/// The largest integer ≤ `n` (or the smallest ≥ `n` when `up`), saturating.
fn integral(n: &Number, up: bool) -> i128 {
    if let Some(i) = n.as_i64() {
        return i128::from(i);
    }
    if let Some(u) = n.as_u64() {
        return i128::from(u);
    }
    let f = n.as_f64().unwrap_or_default();
    (if up { f.ceil() } else { f.floor() }) as i128
}

/// Of an inclusive and an exclusive bound, the tighter one (XSD allows only one per side).
fn tighter<'a>(
    inclusive: Option<&'a Number>,
    exclusive: Option<&'a Number>,
    lower: bool,
) -> (Option<&'a Number>, Option<&'a Number>) {
    let (Some(i), Some(e)) = (inclusive, exclusive) else {
        return (inclusive, exclusive);
    };
    let (fi, fe) = (i.as_f64().unwrap_or_default(), e.as_f64().unwrap_or_default());
    let exclusive_wins = if lower { fe >= fi } else { fe <= fi };
    if exclusive_wins {
        (None, Some(e))
    } else {
        (Some(i), None)
    }
}

fn simple(root: &Value, node: &Value, kind: Kind, string_base: &'static str) -> Simple {
    let mut s = Simple {
        base: string_base,
        facets: Vec::new(),
        notes: Vec::new(),
    };
    let values: Vec<Value> = match (kw(root, node, "enum"), kw(root, node, "const")) {
        (Some(Value::Array(list)), _) => list.clone(),
        (_, Some(c)) => vec![c.clone()],
        _ => Vec::new(),
    };
    let number = |key: &str| kw(root, node, key).and_then(Value::as_number);
    match kind {
        Kind::String => {
            let pattern = kw_str(root, node, "pattern");
            let format = kw_str(root, node, "format");
            if format == Some("date") || pattern == Some(DATE_PATTERN) {
                s.base = "xs:date";
            } else if format == Some("date-time") || pattern == Some(DATE_TIME_PATTERN) {
                s.base = "xs:dateTime";
            } else {
                // Length facets do not apply to dates (their pattern fixes the length).
                if let Some(n) = kw_u64(root, node, "minLength").filter(|n| *n > 0) {
                    s.facets.push(("minLength", n.to_string()));
                }
                if let Some(n) = kw_u64(root, node, "maxLength") {
                    s.facets.push(("maxLength", n.to_string()));
                }
            }
            if let Some(p) = pattern {
                match xsd_pattern(p) {
                    Some(x) if x == ANY_STRING => {}
                    Some(x) => s.facets.push(("pattern", x)),
                    None => s.notes.push(format!(
                        "The hub also checks the pattern {p}, which XSD regular expressions cannot express."
                    )),
                }
            }
            for v in values.iter().filter_map(Value::as_str) {
                s.facets.push(("enumeration", v.to_owned()));
            }
        }
        Kind::Integer => {
            s.base = "xs:integer";
            // The parser reads integers as i64, or u64 beyond.
            let mut lo = i128::from(i64::MIN);
            let mut hi = i128::from(u64::MAX);
            if let Some(n) = number("minimum") {
                lo = lo.max(integral(n, true));
            }
            if let Some(n) = number("exclusiveMinimum") {
                lo = lo.max(integral(n, false).saturating_add(1));
            }
            if let Some(n) = number("maximum") {
                hi = hi.min(integral(n, false));
            }
            if let Some(n) = number("exclusiveMaximum") {
                hi = hi.min(integral(n, true).saturating_sub(1));
            }
            for v in &values {
                match v.as_number().filter(|n| n.is_i64() || n.is_u64()) {
                    Some(n) => s.facets.push(("enumeration", n.to_string())),
                    None => {
                        if let Some(f) = v.as_f64().filter(|f| f.fract() == 0.0) {
                            s.facets.push(("enumeration", format!("{f}")));
                        }
                    }
                }
            }
            if lo <= hi {
                s.facets.push(("minInclusive", lo.to_string()));
                s.facets.push(("maxInclusive", hi.to_string()));
            } else {
                s.notes
                    .push("No integer satisfies the bounds of the JSON Schema.".into());
            }
        }
        Kind::Number => {
            s.base = "xs:decimal";
            for v in values.iter().filter_map(Value::as_number).filter_map(decimal) {
                s.facets.push(("enumeration", v));
            }
            let (min, min_ex) = tighter(number("minimum"), number("exclusiveMinimum"), true);
            let (max, max_ex) = tighter(number("maximum"), number("exclusiveMaximum"), false);
            for (facet, n) in [
                ("minInclusive", min),
                ("minExclusive", min_ex),
                ("maxInclusive", max),
                ("maxExclusive", max_ex),
            ] {
                if let Some(v) = n.and_then(decimal) {
                    s.facets.push((facet, v));
                }
            }
        }
        Kind::Boolean => {
            s.base = "xs:boolean";
            for v in values.iter().filter_map(Value::as_bool) {
                s.facets.push(("enumeration", v.to_string()));
            }
        }
        Kind::Object | Kind::Array | Kind::Any => {}
    }
    if let Some(m) = kw(root, node, "multipleOf") {
        s.notes.push(format!(
            "The hub also checks that the value is a multiple of {m}."
        ));
    }
    s
}

fn restriction(out: &mut Out, s: &Simple) {
    if s.facets.is_empty() {
        out.empty("xs:restriction", &[("base", s.base)]);
        return;
    }
    out.open("xs:restriction", &[("base", s.base)]);
    for (facet, value) in &s.facets {
        out.empty(&format!("xs:{facet}"), &[("value", value)]);
    }
    out.close("xs:restriction");
}

// --- Elements and complex types --------------------------------------------------------------

fn element_attrs(name: &str, occurs: Occurs, ty: Option<&str>) -> Vec<(&'static str, String)> {
    let mut attrs = vec![("name", name.to_owned())];
    if let Some(ty) = ty {
        attrs.push(("type", ty.to_owned()));
    }
    if occurs.min != 1 {
        attrs.push(("minOccurs", occurs.min.to_string()));
    }
    match occurs.max {
        Some(1) => {}
        Some(n) => attrs.push(("maxOccurs", n.to_string())),
        None => attrs.push(("maxOccurs", "unbounded".into())),
    }
    attrs
}

/// Writes the start of an element (and its annotation); returns whether it must be closed.
fn begin_element(out: &mut Out, attrs: &[(&'static str, String)], docs: &Docs, has_body: bool) -> bool {
    let attrs: Vec<(&str, &str)> = attrs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    if !has_body && docs.vi.is_none() && docs.en.is_none() {
        out.empty("xs:element", &attrs);
        return false;
    }
    out.open("xs:element", &attrs);
    annotation(out, docs);
    true
}

fn simple_element(out: &mut Out, name: &str, occurs: Occurs, docs: &Docs, s: &Simple) {
    if s.facets.is_empty() {
        let attrs = element_attrs(name, occurs, Some(s.base));
        if begin_element(out, &attrs, docs, false) {
            out.close("xs:element");
        }
        return;
    }
    let attrs = element_attrs(name, occurs, None);
    begin_element(out, &attrs, docs, true);
    out.open("xs:simpleType", &[]);
    restriction(out, s);
    out.close("xs:simpleType");
    out.close("xs:element");
}

/// The element `name` described by the schema `node`.
fn element(
    cx: &Cx<'_>,
    out: &mut Out,
    name: &str,
    node: &Value,
    occurs: Occurs,
    string_base: &'static str,
    depth: usize,
) {
    if let Some(ty) = named_ref(cx, node) {
        let ty = format!("etx:{ty}");
        let attrs = element_attrs(name, occurs, Some(&ty));
        if begin_element(out, &attrs, &docs(cx.root, node, false, &[]), false) {
            out.close("xs:element");
        }
        return;
    }
    let kind = if depth > MAX_NESTING {
        Kind::Any
    } else {
        kind_of(cx.root, node)
    };
    match kind {
        Kind::String | Kind::Integer | Kind::Number | Kind::Boolean => {
            let s = simple(cx.root, node, kind, string_base);
            simple_element(out, name, occurs, &docs(cx.root, node, true, &s.notes), &s);
        }
        Kind::Object | Kind::Array => {
            let notes = if kind == Kind::Object {
                object_notes(cx.root, node)
            } else {
                array_notes(cx.root, node)
            };
            let attrs = element_attrs(name, occurs, None);
            begin_element(out, &attrs, &docs(cx.root, node, true, &notes), true);
            complex_type(cx, out, node, kind, None, &Docs::default(), depth);
            out.close("xs:element");
        }
        Kind::Any => {
            let note = "Any content: the JSON Schema gives this field no single type; the hub checks it.";
            let attrs = element_attrs(name, occurs, None);
            if begin_element(out, &attrs, &docs(cx.root, node, true, &[note.to_owned()]), false) {
                out.close("xs:element");
            }
        }
    }
}

/// Whether an object schema refuses members it does not list.
fn is_closed(root: &Value, node: &Value) -> bool {
    kw(root, node, "additionalProperties") == Some(&Value::Bool(false))
        && kw(root, node, "patternProperties").is_none()
}

fn properties<'a>(root: &'a Value, node: &'a Value) -> Vec<(&'a str, &'a Value)> {
    let mut props: Vec<(&str, &Value)> = kw(root, node, "properties")
        .and_then(Value::as_object)
        .map(|p| p.iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default();
    props.sort_by_key(|(k, _)| *k);
    props
}

fn object_notes(root: &Value, node: &Value) -> Vec<String> {
    if !is_closed(root, node) {
        return vec!["Open object: any child elements are accepted here; the hub checks them.".into()];
    }
    let odd: Vec<&str> = properties(root, node)
        .into_iter()
        .map(|(k, _)| k)
        .filter(|k| !is_ncname(k))
        .collect();
    if odd.is_empty() {
        Vec::new()
    } else {
        vec![format!(
            "Fields whose names are not XML names cannot be sent in XML: {}.",
            odd.join(", ")
        )]
    }
}

fn array_notes(root: &Value, node: &Value) -> Vec<String> {
    let mut notes = vec!["One <item> child per array element.".to_owned()];
    if kw(root, node, "uniqueItems") == Some(&Value::Bool(true)) {
        notes.push("The hub also checks that the items are unique.".into());
    }
    for key in ["contains", "prefixItems"] {
        if kw(root, node, key).is_some() {
            notes.push(format!("The hub also checks the {key} rule of the JSON Schema."));
        }
    }
    notes
}

/// A complex type for an object or array schema: named (a top-level definition, with its
/// documentation) or anonymous (inside an element that carries the documentation).
fn complex_type(
    cx: &Cx<'_>,
    out: &mut Out,
    node: &Value,
    kind: Kind,
    name: Option<&str>,
    docs: &Docs,
    depth: usize,
) {
    let attrs: Vec<(&str, &str)> = name.map(|n| ("name", n)).into_iter().collect();
    let props = properties(cx.root, node);
    let closed = is_closed(cx.root, node);
    if kind == Kind::Object && closed && props.is_empty() && docs.vi.is_none() && docs.en.is_none() {
        out.empty("xs:complexType", &attrs);
        return;
    }
    out.open("xs:complexType", &attrs);
    annotation(out, docs);
    if kind == Kind::Array {
        let items = kw(cx.root, node, "items")
            .filter(|i| i.is_object())
            .unwrap_or(&Value::Bool(true));
        let occurs = Occurs {
            min: kw_u64(cx.root, node, "minItems").unwrap_or(0),
            max: kw_u64(cx.root, node, "maxItems"),
        };
        out.open("xs:sequence", &[]);
        element(cx, out, "item", items, occurs, "xs:string", depth + 1);
        out.close("xs:sequence");
    } else if !closed {
        out.open("xs:sequence", &[]);
        out.empty(
            "xs:any",
            &[
                ("namespace", "##any"),
                ("processContents", "skip"),
                ("minOccurs", "0"),
                ("maxOccurs", "unbounded"),
            ],
        );
        out.close("xs:sequence");
    } else if !props.is_empty() {
        let required: Vec<&str> = kw(cx.root, node, "required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.open("xs:all", &[]);
        for (field, sub) in props.into_iter().filter(|(k, _)| is_ncname(k)) {
            let occurs = Occurs {
                min: u64::from(required.contains(&field)),
                max: Some(1),
            };
            element(cx, out, field, sub, occurs, "xs:string", depth + 1);
        }
        out.close("xs:all");
    }
    out.close("xs:complexType");
}

/// The named type of a `$defs` entry.
fn named_type(cx: &Cx<'_>, out: &mut Out, def: &Value, name: &str) {
    let kind = kind_of(cx.root, def);
    match kind {
        Kind::String | Kind::Integer | Kind::Number | Kind::Boolean => {
            let s = simple(cx.root, def, kind, "xs:string");
            out.open("xs:simpleType", &[("name", name)]);
            annotation(out, &docs(cx.root, def, true, &s.notes));
            restriction(out, &s);
            out.close("xs:simpleType");
        }
        Kind::Object | Kind::Array => {
            let notes = if kind == Kind::Object {
                object_notes(cx.root, def)
            } else {
                array_notes(cx.root, def)
            };
            complex_type(
                cx,
                out,
                def,
                kind,
                Some(name),
                &docs(cx.root, def, true, &notes),
                1,
            );
        }
        Kind::Any => {}
    }
}

// --- Regular expressions ---------------------------------------------------------------------

/// Translates a JSON Schema `pattern` (an ECMA-262 regular expression that matches anywhere in
/// the string, with the semantics the hub's validator gives it: `\d` is `[0-9]`, `\w` is
/// `[A-Za-z0-9_]`, `\s` is ECMA-262 white space, `.` is anything but a line terminator) into an
/// XSD 1.0 regular expression, which always matches the whole value. `^` and `$` are dropped
/// at the ends of top-level alternatives and `[\s\S]*` added where one is missing.
///
/// Returns `None` when XSD cannot say the same thing: look-around, back-references, word
/// boundaries, anchors inside groups, Unicode property escapes, control-character escapes, or
/// characters that cannot appear in XML.
pub fn xsd_pattern(ecma: &str) -> Option<String> {
    let chars: Vec<char> = ecma.chars().collect();
    let mut alternatives: Vec<String> = Vec::new();
    let (mut body, mut anchored_start, mut anchored_end) = (String::new(), false, false);
    let mut depth = 0usize;
    // Whether the last thing written is an atom a quantifier may follow.
    let mut atom = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '^' if depth == 0 && body.is_empty() && !anchored_start => anchored_start = true,
            '$' if depth == 0 && chars.get(i).is_none_or(|n| *n == '|') => {
                anchored_end = true;
                atom = false;
            }
            '^' | '$' => return None,
            '|' if depth == 0 => {
                alternatives.push(whole(&body, anchored_start, anchored_end));
                (body, anchored_start, anchored_end, atom) = (String::new(), false, false, false);
            }
            '|' => {
                body.push('|');
                atom = false;
            }
            '(' => {
                if chars.get(i) == Some(&'?') {
                    match (chars.get(i + 1), chars.get(i + 2)) {
                        (Some(':'), _) => i += 2,
                        // A named group; its name is not needed.
                        (Some('<'), Some(n)) if *n != '=' && *n != '!' => {
                            let close = chars[i..].iter().position(|c| *c == '>')?;
                            i += close + 1;
                        }
                        _ => return None,
                    }
                }
                depth += 1;
                body.push('(');
                atom = false;
            }
            ')' => {
                depth = depth.checked_sub(1)?;
                body.push(')');
                atom = true;
            }
            '[' => {
                let (class, next) = class(&chars, i)?;
                body.push_str(&class);
                i = next;
                atom = true;
            }
            '.' => {
                body.push_str("[^\\n\\r\u{2028}\u{2029}]");
                atom = true;
            }
            '*' | '+' | '?' => {
                if !atom || anchored_end {
                    return None;
                }
                body.push(c);
                i += usize::from(chars.get(i) == Some(&'?'));
                atom = false;
            }
            '{' => match quantifier(&chars, i)? {
                Some((text, next)) => {
                    if !atom || anchored_end {
                        return None;
                    }
                    body.push_str(&text);
                    i = next + usize::from(chars.get(next) == Some(&'?'));
                    atom = false;
                }
                None => {
                    body.push_str("\\{");
                    atom = true;
                }
            },
            '\\' => {
                let (text, next) = escape(&chars, i)?;
                body.push_str(&text);
                i = next;
                atom = true;
            }
            _ => {
                if anchored_end {
                    return None;
                }
                body.push_str(&literal(c)?);
                atom = true;
            }
        }
    }
    if depth != 0 {
        return None;
    }
    alternatives.push(whole(&body, anchored_start, anchored_end));
    Some(alternatives.join("|"))
}

/// One top-level alternative made to match the whole value.
fn whole(body: &str, anchored_start: bool, anchored_end: bool) -> String {
    let start = if anchored_start { "" } else { ANY_STRING };
    let end = if anchored_end { "" } else { ANY_STRING };
    if body.is_empty() && !anchored_start && !anchored_end {
        return ANY_STRING.to_owned();
    }
    format!("{start}{body}{end}")
}

/// A literal character outside a class, escaped for XSD.
fn literal(c: char) -> Option<String> {
    if !is_xml_char(c) {
        return None;
    }
    Some(match c {
        '\\' | '|' | '.' | '?' | '*' | '+' | '(' | ')' | '{' | '}' | '[' | ']' => format!("\\{c}"),
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        _ => c.to_string(),
    })
}

/// A literal character inside a class, escaped for XSD.
fn class_literal(c: char) -> String {
    match c {
        '\\' | '[' | ']' | '-' | '^' => format!("\\{c}"),
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        _ => c.to_string(),
    }
}

/// `{n}`, `{n,}` or `{n,m}` starting after the `{` at `i`: `Some(None)` when the brace is a
/// literal (ECMA-262 Annex B), `None` when it is an invalid quantifier (`{3,1}`), else the
/// text and the index after `}`.
fn quantifier(chars: &[char], i: usize) -> Option<Option<(String, usize)>> {
    let Some(close) = chars[i..].iter().position(|c| *c == '}').map(|p| i + p) else {
        return Some(None);
    };
    let inner: String = chars[i..close].iter().collect();
    let (lo, hi) = match inner.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (inner.as_str(), None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(lo) || hi.is_some_and(|h| !h.is_empty() && !digits(h)) {
        return Some(None);
    }
    let lo: u64 = lo.parse().ok()?;
    if let Some(hi) = hi.filter(|h| !h.is_empty())
        && hi.parse::<u64>().ok()? < lo
    {
        return None;
    }
    Some(Some((format!("{{{inner}}}"), close + 1)))
}

/// A `\xHH` or `\uHHHH` code (after the letter at `i`): the character and the index after it.
fn hex_escape(chars: &[char], i: usize, len: usize) -> Option<(u32, usize)> {
    let digits: String = chars.get(i..i + len)?.iter().collect();
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(&digits, 16).ok().map(|n| (n, i + len))
}

/// The character of a `\x`/`\u` escape whose letter is at `i - 1`, with surrogate pairs joined.
fn code_escape(chars: &[char], letter: char, i: usize) -> Option<(char, usize)> {
    let (code, next) = hex_escape(chars, i, if letter == 'x' { 2 } else { 4 })?;
    if (0xD800..0xDC00).contains(&code) {
        // A high surrogate must be followed by `\u` and a low one.
        if chars.get(next) != Some(&'\\') || chars.get(next + 1) != Some(&'u') {
            return None;
        }
        let (low, after) = hex_escape(chars, next + 2, 4)?;
        if !(0xDC00..0xE000).contains(&low) {
            return None;
        }
        let c = char::from_u32(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00))?;
        return Some((c, after));
    }
    char::from_u32(code).map(|c| (c, next))
}

/// An escape outside a class, after the `\` at `i - 1`: the XSD text and the next index.
fn escape(chars: &[char], i: usize) -> Option<(String, usize)> {
    let c = *chars.get(i)?;
    let next = i + 1;
    let text = match c {
        'd' => "[0-9]".to_owned(),
        'D' => "[^0-9]".to_owned(),
        'w' => "[A-Za-z0-9_]".to_owned(),
        'W' => "[^A-Za-z0-9_]".to_owned(),
        's' => format!("[{ECMA_SPACE}]"),
        'S' => format!("[^{ECMA_SPACE}]"),
        'n' => "\\n".to_owned(),
        'r' => "\\r".to_owned(),
        't' => "\\t".to_owned(),
        'x' | 'u' => {
            let (ch, after) = code_escape(chars, c, next)?;
            return literal(ch).map(|t| (t, after));
        }
        c if c.is_ascii_alphanumeric() => return None,
        c => literal(c)?,
    };
    Some((text, next))
}

/// One member of an ECMA-262 character class.
enum ClassAtom {
    Char(char),
    /// A class escape (`\d`, `\w`, `\s`), as the inside of an XSD class.
    Set(String),
}

fn class_atom(chars: &[char], i: usize) -> Option<(ClassAtom, usize)> {
    let c = *chars.get(i)?;
    if c != '\\' {
        return Some((ClassAtom::Char(c), i + 1));
    }
    let e = *chars.get(i + 1)?;
    let next = i + 2;
    let atom = match e {
        'd' => ClassAtom::Set("0-9".into()),
        'w' => ClassAtom::Set("A-Za-z0-9_".into()),
        's' => ClassAtom::Set(ECMA_SPACE.into()),
        'n' => ClassAtom::Char('\n'),
        'r' => ClassAtom::Char('\r'),
        't' => ClassAtom::Char('\t'),
        'b' => ClassAtom::Char('\u{8}'),
        'f' => ClassAtom::Char('\u{c}'),
        'v' => ClassAtom::Char('\u{b}'),
        'x' | 'u' => {
            let (ch, after) = code_escape(chars, e, next)?;
            return Some((ClassAtom::Char(ch), after));
        }
        e if e.is_ascii_alphanumeric() => return None,
        e => ClassAtom::Char(e),
    };
    Some((atom, next))
}

/// The nearest XML character at or after (`up`) or at or before `c`.
fn xml_bound(c: char, up: bool) -> Option<char> {
    let mut n = u32::from(c);
    loop {
        if let Some(ch) = char::from_u32(n).filter(|ch| is_xml_char(*ch)) {
            return Some(ch);
        }
        n = if up {
            n.checked_add(1).filter(|n| *n <= 0x10FFFF)?
        } else {
            n.checked_sub(1)?
        };
    }
}

/// A character class starting after the `[` at `i - 1`: its XSD text and the index after `]`.
fn class(chars: &[char], i: usize) -> Option<(String, usize)> {
    let mut i = i;
    let negated = chars.get(i) == Some(&'^');
    i += usize::from(negated);
    let mut parts: Vec<String> = Vec::new();
    loop {
        match chars.get(i)? {
            ']' => break,
            _ => {
                let (first, after) = class_atom(chars, i)?;
                i = after;
                let range = chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']');
                if !range {
                    parts.push(render_atom(&first));
                    continue;
                }
                let (second, after) = class_atom(chars, i + 1)?;
                i = after;
                match (first, second) {
                    (ClassAtom::Char(a), ClassAtom::Char(b)) => {
                        if a > b {
                            return None;
                        }
                        // Characters XML cannot hold never match; keep the rest of the range.
                        if let (Some(a), Some(b)) = (xml_bound(a, true), xml_bound(b, false))
                            && a <= b
                        {
                            parts.push(format!("{}-{}", class_literal(a), class_literal(b)));
                        }
                    }
                    // Next to a class escape, `-` is a literal (ECMA-262 Annex B).
                    (first, second) => {
                        parts.push(render_atom(&first));
                        parts.push(class_literal('-'));
                        parts.push(render_atom(&second));
                    }
                }
            }
        }
    }
    let inside: String = parts.concat();
    let text = match (inside.is_empty(), negated) {
        (true, true) => "[\\s\\S]".to_owned(),
        (true, false) => return None,
        (false, true) => format!("[^{inside}]"),
        (false, false) => format!("[{inside}]"),
    };
    Some((text, i + 1))
}

fn render_atom(atom: &ClassAtom) -> String {
    match atom {
        ClassAtom::Char(c) if is_xml_char(*c) => class_literal(*c),
        ClassAtom::Char(_) => String::new(),
        ClassAtom::Set(s) => s.clone(),
    }
}

// --- Output ----------------------------------------------------------------------------------

/// An indented XML writer (two spaces per level, one element per line).
#[derive(Debug, Default)]
struct Out {
    buf: String,
    depth: usize,
}

impl Out {
    fn raw(&mut self, s: &str) {
        self.buf.push_str(s);
    }

    fn start(&mut self, tag: &str, attrs: &[(&str, &str)]) {
        for _ in 0..self.depth {
            self.buf.push_str("  ");
        }
        self.buf.push('<');
        self.buf.push_str(tag);
        for (k, v) in attrs {
            self.buf.push(' ');
            self.buf.push_str(k);
            self.buf.push_str("=\"");
            escape_into(&mut self.buf, v);
            self.buf.push('"');
        }
    }

    fn open(&mut self, tag: &str, attrs: &[(&str, &str)]) {
        self.start(tag, attrs);
        self.buf.push_str(">\n");
        self.depth += 1;
    }

    fn empty(&mut self, tag: &str, attrs: &[(&str, &str)]) {
        self.start(tag, attrs);
        self.buf.push_str("/>\n");
    }

    fn text(&mut self, tag: &str, attrs: &[(&str, &str)], text: &str) {
        self.start(tag, attrs);
        self.buf.push('>');
        escape_into(&mut self.buf, text);
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push_str(">\n");
    }

    fn close(&mut self, tag: &str) {
        self.depth = self.depth.saturating_sub(1);
        for _ in 0..self.depth {
            self.buf.push_str("  ");
        }
        self.buf.push_str("</");
        self.buf.push_str(tag);
        self.buf.push_str(">\n");
    }
}

/// Escapes text or an attribute value; invisible and white-space characters other than a plain
/// space become character references, so that attribute normalisation cannot change them and a
/// reader can see them.
fn escape_into(buf: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => buf.push_str("&amp;"),
            '<' => buf.push_str("&lt;"),
            '>' => buf.push_str("&gt;"),
            '"' => buf.push_str("&quot;"),
            ' ' => buf.push(' '),
            c if c.is_control() || c.is_whitespace() || c == '\u{feff}' => {
                buf.push_str(&format!("&#x{:X};", u32::from(c)));
            }
            c => buf.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render_payload(payload: &Value) -> String {
        let envelope = json!({"properties": {}, "required": []});
        render(payload, &envelope, Category::Policy, SchemaVersion::V1)
    }

    #[test]
    fn what_xsd_cannot_say_is_approximated_and_documented() {
        let schema = json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["node"],
            "properties": {
                "node": {"$ref": "#/$defs/node"},
                "open": {"type": "object"},
                "anything": {"description": "Untyped."},
                "word": {"type": "string", "pattern": "\\bx\\b"},
                "ratio": {"type": "number", "minimum": 0, "exclusiveMinimum": 0, "maximum": 1, "multipleOf": 0.01},
                "small": {"type": "integer", "exclusiveMinimum": 0.5, "exclusiveMaximum": 10},
                "flag": {"type": ["boolean", "null"]},
                "tags": {"type": "array", "uniqueItems": true},
                "limited": {"$ref": "#/$defs/label", "maxLength": 3},
                "label": {"$ref": "#/$defs/label", "x-title-vi": "Nhãn"}
            },
            "$defs": {
                "node": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"child": {"$ref": "#/$defs/node"}}
                },
                "label": {"type": "string", "minLength": 1, "maxLength": 10}
            }
        });
        let xsd = render_payload(&schema);
        // A recursive object definition is a named complex type that refers to itself.
        assert!(
            xsd.contains("<xs:element name=\"node\" type=\"etx:NodeType\"/>"),
            "{xsd}"
        );
        assert!(xsd.contains("<xs:complexType name=\"NodeType\">"));
        assert!(xsd.contains("<xs:element name=\"child\" type=\"etx:NodeType\" minOccurs=\"0\"/>"));
        // An open object takes any content; an untyped field is xs:anyType.
        assert!(xsd.contains("Open object: any child elements are accepted here"));
        assert!(xsd.contains(
            "<xs:any namespace=\"##any\" processContents=\"skip\" minOccurs=\"0\" maxOccurs=\"unbounded\"/>"
        ));
        assert!(xsd.contains("Untyped. Any content"));
        // Untranslatable patterns and multipleOf are left to the hub, and said so.
        assert!(xsd.contains("The hub also checks the pattern \\bx\\b"));
        assert!(xsd.contains("The hub also checks that the value is a multiple of 0.01."));
        assert!(xsd.contains("The hub also checks that the items are unique."));
        // The tighter of two bounds; integer bounds made inclusive.
        assert!(xsd.contains("<xs:minExclusive value=\"0\"/>"));
        assert!(!xsd.contains("<xs:minInclusive value=\"0\"/>"));
        assert!(xsd.contains("<xs:minInclusive value=\"1\"/>\n"));
        assert!(xsd.contains("<xs:maxInclusive value=\"9\"/>"));
        assert!(xsd.contains("<xs:element name=\"flag\" type=\"xs:boolean\" minOccurs=\"0\"/>"));
        // A $ref with constraints of its own is inlined; a bare one uses the named type.
        assert!(xsd.contains("<xs:element name=\"label\" type=\"etx:LabelType\" minOccurs=\"0\">"));
        let limited = &xsd[xsd.find("name=\"limited\"").unwrap_or_default()..];
        assert!(limited.contains("<xs:maxLength value=\"3\"/>"));
        // An array without an item schema holds items of any content.
        let tags = &xsd[xsd.find("name=\"tags\"").unwrap_or_default()..];
        assert!(tags.contains("<xs:element name=\"item\" minOccurs=\"0\" maxOccurs=\"unbounded\">"));
    }

    #[test]
    fn attribute_values_keep_invisible_characters_as_references() {
        let mut buf = String::new();
        escape_into(&mut buf, "a<b>&\"\n\u{a0} \u{feff}ệ");
        assert_eq!(buf, "a&lt;b&gt;&amp;&quot;&#xA;&#xA0; &#xFEFF;ệ");
    }

    #[test]
    fn type_names_are_ncnames_and_unique() {
        assert_eq!(type_stem("dateTime"), "DateTime");
        assert_eq!(type_stem("citizen-id"), "CitizenId");
        assert_eq!(type_stem("2fa"), "T2fa");
        assert_eq!(type_stem("--"), "Def");
        let named = named_defs(&json!({"$defs": {
            "record": {"type": "string"},
            "Record": {"type": "string"},
            "untyped": {}
        }}));
        let names: Vec<&str> = named.values().map(String::as_str).collect();
        assert_eq!(names, ["RecordType2", "RecordType3"]);
        assert!(is_ncname("province_code") && is_ncname("mã_tỉnh") && !is_ncname("a b") && !is_ncname("1a"));
        assert_eq!(thousands(1_000, ','), "1,000");
        assert_eq!(thousands(1_048_575, '.'), "1.048.575");
        assert_eq!(thousands(12, '.'), "12");
    }
}
