//! Safe XML → JSON conversion of the XML wire format (R-ING-3), hardened against XML attacks
//! (R-SEC-3): no DTD, no entity declarations, no custom entities, no processing instructions,
//! bounded depth and element count, UTF-8 only. The converted items go through the same
//! [`crate::schema::parse_item`] as JSON bodies, so validation (R-ING-4) and the categories' schemas
//! (R-DATA-1) are identical for both formats.
//!
//! Wire format (the namespace `urn:etxhub:ingestion:v1` is optional; prefixes are ignored):
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <records xmlns="urn:etxhub:ingestion:v1">
//!   <record>
//!     <category>statistics</category><schema_version>1</schema_version><period>2026-10</period>
//!     <classification>internal</classification><priority>high</priority><form>raw</form>
//!     <idempotency_key>k-1</idempotency_key>
//!     <payload>
//!       <indicator>transaction_count</indicator><value>1250</value>
//!       <failure_reasons><item><reason_code>timeout</reason_code><count>3</count></item></failure_reasons>
//!     </payload>
//!   </record>
//! </records>
//! ```
//!
//! A single `<record>` root is also accepted. Typing is schema-directed: envelope fields are
//! strings; inside `<payload>`, a leaf's JSON type comes from [`SchemaRegistry::type_at`]
//! (numbers and booleans are parsed; a leaf that does not parse stays a string so validation
//! reports a `type` violation at its path); array-typed elements collect their `<item>` children;
//! repeated elements become an array (so validation reports them); unknown paths stay strings.
//! Attributes carry no data in this format and are ignored (but must be well-formed).
//!
//! The parser is quick-xml's low-level pull [`Reader`]: it never reads a DTD, never expands an
//! entity and never fetches anything; every general entity reference is resolved here, and only
//! the five predefined entities and numeric character references are accepted.

use crate::schema::{JsonType, SchemaRegistry};
use etx_domain::{Category, SchemaVersion};
use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;
use serde_json::{Map, Number, Value};

/// Maximum element depth (the root is depth 1).
pub const MAX_DEPTH: usize = 32;
/// Maximum number of elements in one document.
pub const MAX_ELEMENTS: usize = 1_000_000;

/// The optional namespace of the wire format.
pub const NAMESPACE: &str = "urn:etxhub:ingestion:v1";

/// Why an XML document was refused. Messages are in English and never quote the document,
/// beyond a line number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The document carries a DTD (`<!DOCTYPE`) or markup declarations (`<!ENTITY`…), which
    /// are never accepted (XXE, entity expansion; R-SEC-3).
    #[error("XML must not contain a DTD or entity declarations")]
    DtdForbidden,
    /// The document is not well-formed, or uses something the wire format does not accept
    /// (another encoding, a processing instruction, an undefined entity…).
    #[error("XML is not well-formed{}: {reason}", line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Malformed {
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// What is wrong, in English.
        reason: String,
    },
    /// Elements are nested deeper than allowed.
    #[error("XML elements are nested too deeply (maximum depth {MAX_DEPTH})")]
    TooDeep,
    /// The document has more elements than allowed.
    #[error("XML document has too many elements (maximum {MAX_ELEMENTS})")]
    TooLarge,
}

/// Limits applied while parsing; [`XmlLimits::default`] gives [`MAX_DEPTH`] and [`MAX_ELEMENTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Maximum element depth (root = 1).
    pub max_depth: usize,
    /// Maximum number of elements.
    pub max_elements: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_depth: MAX_DEPTH,
            max_elements: MAX_ELEMENTS,
        }
    }
}

/// The records of one XML document, converted to the JSON item shape of
/// [`crate::schema::parse_item`].
#[derive(Debug, Clone, PartialEq)]
pub struct XmlItems {
    /// `true` when the root was a single `<record>`, `false` for `<records>`.
    pub single: bool,
    /// One JSON item per `<record>`, in document order.
    pub items: Vec<Value>,
}

/// Parses the document with the default limits and converts each `<record>`.
pub fn parse_records(reg: &SchemaRegistry, xml: &[u8]) -> Result<XmlItems, XmlError> {
    parse_records_with(reg, xml, XmlLimits::default())
}

/// [`parse_records`] with explicit limits.
pub fn parse_records_with(reg: &SchemaRegistry, xml: &[u8], limits: XmlLimits) -> Result<XmlItems, XmlError> {
    let text = decode(xml)?;
    let bytes = text.as_bytes();
    let root = parse_tree(text, limits)?;
    let line = |el: &Element| Some(line_at(bytes, el.offset));
    match root.name.as_str() {
        "records" => {
            let mut items = Vec::with_capacity(root.children.len());
            for child in &root.children {
                if child.name != "record" {
                    return Err(malformed(
                        line(child),
                        "expected only <record> elements inside <records>",
                    ));
                }
                items.push(record_to_json(reg, child));
            }
            if !root.text.trim().is_empty() {
                return Err(malformed(line(&root), "unexpected text inside <records>"));
            }
            Ok(XmlItems { single: false, items })
        }
        "record" => Ok(XmlItems {
            single: true,
            items: vec![record_to_json(reg, &root)],
        }),
        _ => Err(malformed(
            line(&root),
            "the root element must be <records> or <record>",
        )),
    }
}

fn malformed(line: Option<usize>, reason: impl Into<String>) -> XmlError {
    XmlError::Malformed {
        line,
        reason: reason.into(),
    }
}

/// One element of the parsed document (local name, children, concatenated text).
#[derive(Debug, Default)]
pub(crate) struct Element {
    pub(crate) name: String,
    pub(crate) children: Vec<Element>,
    pub(crate) text: String,
    /// Byte offset of the start tag (lines are computed only for errors).
    pub(crate) offset: u64,
}

/// 1-based line of a byte offset.
fn line_at(bytes: &[u8], offset: u64) -> usize {
    let end = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
    bytes[..end].iter().filter(|b| **b == b'\n').count() + 1
}

/// Whether a character may appear in an XML 1.0 document.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// Decodes the input: UTF-8 only (an optional UTF-8 BOM is skipped).
fn decode(xml: &[u8]) -> Result<&str, XmlError> {
    if xml.starts_with(&[0xFE, 0xFF]) || xml.starts_with(&[0xFF, 0xFE]) || xml.starts_with(&[0, 0]) {
        return Err(malformed(Some(1), "unsupported encoding: only UTF-8 is accepted"));
    }
    let body = xml.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(xml);
    let text = std::str::from_utf8(body).map_err(|e| {
        malformed(
            Some(line_at(body, e.valid_up_to() as u64)),
            "the document is not valid UTF-8",
        )
    })?;
    if let Some(pos) = text
        .char_indices()
        .find(|(_, c)| !is_xml_char(*c))
        .map(|(i, _)| i)
    {
        return Err(malformed(
            Some(line_at(body, pos as u64)),
            "the document contains a character not allowed in XML",
        ));
    }
    Ok(text)
}

/// Markup declarations that only appear in a DTD.
pub(crate) fn is_dtd_markup(rest: &[u8]) -> bool {
    const DECLS: [&[u8]; 5] = [
        b"<!DOCTYPE",
        b"<!ENTITY",
        b"<!ELEMENT",
        b"<!ATTLIST",
        b"<!NOTATION",
    ];
    DECLS
        .iter()
        .any(|d| rest.len() >= d.len() && rest[..d.len()].eq_ignore_ascii_case(d))
}

/// Maps a quick-xml error to ours, without quoting the document.
fn reader_error(err: &quick_xml::Error, bytes: &[u8], pos: u64) -> XmlError {
    let at = usize::try_from(pos).unwrap_or(usize::MAX).min(bytes.len());
    if is_dtd_markup(&bytes[at..]) {
        return XmlError::DtdForbidden;
    }
    match error_reason(err) {
        Some(reason) => malformed(Some(line_at(bytes, pos)), reason),
        None => XmlError::DtdForbidden,
    }
}

/// What a quick-xml error means, in English and without quoting the document; `None` when
/// the error comes from a DTD (an unclosed or nameless `<!DOCTYPE`).
pub(crate) fn error_reason(err: &quick_xml::Error) -> Option<&'static str> {
    use quick_xml::errors::{IllFormedError, SyntaxError};
    Some(match err {
        quick_xml::Error::Syntax(s) => match s {
            SyntaxError::InvalidBangMarkup => "unknown markup starting with <!",
            SyntaxError::UnclosedPI => "unclosed processing instruction",
            SyntaxError::UnclosedXmlDecl => "unclosed XML declaration",
            SyntaxError::UnclosedComment => "unclosed comment",
            SyntaxError::UnclosedDoctype => return None,
            SyntaxError::UnclosedCData => "unclosed CDATA section",
            SyntaxError::UnclosedTag => "unclosed tag",
            _ => "syntax error",
        },
        quick_xml::Error::IllFormed(e) => match e {
            IllFormedError::MissingDeclVersion(_) | IllFormedError::UnknownVersion => {
                "the XML declaration must give version 1.0 or 1.1"
            }
            IllFormedError::MissingDoctypeName => return None,
            IllFormedError::MissingEndTag(_) => "an element is not closed",
            IllFormedError::UnmatchedEndTag(_) => "an end tag has no start tag",
            IllFormedError::MismatchedEndTag { .. } => "an end tag does not match its start tag",
            IllFormedError::DoubleHyphenInComment => "a comment contains --",
            IllFormedError::UnclosedReference => "an entity or character reference is not closed",
        },
        quick_xml::Error::InvalidAttr(_) => "malformed attribute",
        quick_xml::Error::Encoding(_) => "the document is not valid UTF-8",
        quick_xml::Error::Escape(_) => "invalid entity or character reference",
        quick_xml::Error::Namespace(_) => "invalid namespace",
        _ => "cannot read the document",
    })
}

/// Strips a namespace prefix.
pub(crate) fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

/// Resolves a general entity reference: the five predefined ones and character references.
pub(crate) fn resolve_ref(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix('x') {
                Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    u32::from_str_radix(hex, 16).ok()?
                }
                None if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) => num.parse().ok()?,
                _ => return None,
            };
            char::from_u32(code).filter(|c| is_xml_char(*c))
        }
    }
}

/// Parses the whole document into a tree of elements, enforcing every safety rule.
fn parse_tree(text: &str, limits: XmlLimits) -> Result<Element, XmlError> {
    let bytes = text.as_bytes();
    let mut reader = Reader::from_str(text);
    {
        let cfg = reader.config_mut();
        cfg.check_end_names = true;
        cfg.check_comments = true;
        cfg.expand_empty_elements = false;
        cfg.allow_dangling_amp = false;
        cfg.allow_unmatched_ends = false;
        cfg.trim_text(false);
    }
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut elements = 0usize;
    let mut first = true;

    let open = |e: &BytesStart<'_>,
                stack: &mut Vec<Element>,
                root: &Option<Element>,
                elements: &mut usize,
                pos: u64|
     -> Result<Element, XmlError> {
        if root.is_some() {
            return Err(malformed(Some(line_at(bytes, pos)), "more than one root element"));
        }
        *elements += 1;
        if *elements > limits.max_elements {
            return Err(XmlError::TooLarge);
        }
        if stack.len() + 1 > limits.max_depth {
            return Err(XmlError::TooDeep);
        }
        for attr in e.attributes() {
            if attr.is_err() {
                return Err(malformed(Some(line_at(bytes, pos)), "malformed attribute"));
            }
        }
        Ok(Element {
            name: local(e.name().into_inner()).to_owned(),
            children: Vec::new(),
            text: String::new(),
            offset: pos,
        })
    };

    loop {
        let pos = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(ev) => ev,
            Err(err) => return Err(reader_error(&err, bytes, reader.error_position())),
        };
        let was_first = first;
        first = false;
        match event {
            Event::Decl(decl) => {
                if !was_first {
                    return Err(malformed(
                        Some(line_at(bytes, pos)),
                        "the XML declaration must come first",
                    ));
                }
                match decl.encoding() {
                    None => {}
                    Some(Ok(enc))
                        if enc.eq_ignore_ascii_case("utf-8") || enc.eq_ignore_ascii_case("utf8") => {}
                    Some(_) => {
                        return Err(malformed(
                            Some(line_at(bytes, pos)),
                            "unsupported encoding: only UTF-8 is accepted",
                        ));
                    }
                }
            }
            Event::DocType(_) => return Err(XmlError::DtdForbidden),
            Event::PI(_) => {
                return Err(malformed(
                    Some(line_at(bytes, pos)),
                    "processing instructions are not accepted",
                ));
            }
            Event::Comment(_) => {}
            Event::Start(e) => {
                let el = open(&e, &mut stack, &root, &mut elements, pos)?;
                stack.push(el);
            }
            Event::Empty(e) => {
                let el = open(&e, &mut stack, &root, &mut elements, pos)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                let Some(el) = stack.pop() else {
                    return Err(malformed(
                        Some(line_at(bytes, pos)),
                        "an end tag has no start tag",
                    ));
                };
                if !el.children.is_empty() && !el.text.trim().is_empty() {
                    return Err(malformed(
                        Some(line_at(bytes, el.offset)),
                        "an element mixes text and child elements",
                    ));
                }
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                append_text(&mut stack, &content, bytes, pos)?;
            }
            Event::CData(c) => {
                let content = c.xml10_content();
                if stack.is_empty() {
                    return Err(malformed(
                        Some(line_at(bytes, pos)),
                        "text outside the root element",
                    ));
                }
                append_text(&mut stack, &content, bytes, pos)?;
            }
            Event::GeneralRef(r) => {
                let Some(ch) = resolve_ref(&r) else {
                    return Err(malformed(
                        Some(line_at(bytes, pos)),
                        "undefined entity or invalid character reference (only &lt; &gt; &amp; &apos; &quot; and &#N; are accepted)",
                    ));
                };
                let mut buf = [0u8; 4];
                append_text(&mut stack, ch.encode_utf8(&mut buf), bytes, pos)?;
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed(
            Some(line_at(bytes, bytes.len() as u64)),
            "an element is not closed",
        ));
    }
    root.ok_or_else(|| malformed(None, "the document has no root element"))
}

fn append_text(stack: &mut [Element], content: &str, bytes: &[u8], pos: u64) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(el) => {
            el.text.push_str(content);
            Ok(())
        }
        None if content.trim().is_empty() => Ok(()),
        None => Err(malformed(
            Some(line_at(bytes, pos)),
            "text outside the root element",
        )),
    }
}

/// Converts one `<record>` into the JSON item shape of `parse_item`.
pub(crate) fn record_to_json(reg: &SchemaRegistry, record: &Element) -> Value {
    let text_of = |name: &str| {
        record
            .children
            .iter()
            .find(|c| c.name == name && c.children.is_empty())
            .map(|c| c.text.as_str())
    };
    let target = match (
        text_of("category").and_then(|s| Category::parse(s).ok()),
        text_of("schema_version").and_then(|s| SchemaVersion::parse(s).ok()),
    ) {
        (Some(c), Some(v)) if reg.has(c, v) => Some((c, v)),
        _ => None,
    };
    let mut obj = Map::new();
    for (name, group) in group_children(record) {
        let converted: Vec<Value> = group
            .iter()
            .map(|el| {
                if name == "payload" {
                    payload_value(reg, target, el, &mut Vec::new())
                } else {
                    untyped(el)
                }
            })
            .collect();
        obj.insert(name.to_owned(), collapse(converted));
    }
    Value::Object(obj)
}

/// Children grouped by name, in first-appearance order.
fn group_children(el: &Element) -> Vec<(&str, Vec<&Element>)> {
    let mut groups: Vec<(&str, Vec<&Element>)> = Vec::new();
    for c in &el.children {
        match groups.iter_mut().find(|(n, _)| *n == c.name) {
            Some((_, list)) => list.push(c),
            None => groups.push((c.name.as_str(), vec![c])),
        }
    }
    groups
}

/// One value, or an array when an element was repeated.
fn collapse(mut values: Vec<Value>) -> Value {
    if values.len() == 1 {
        values.pop().unwrap_or(Value::Null)
    } else {
        Value::Array(values)
    }
}

/// Schema-less conversion: leaves are strings, containers are objects.
fn untyped(el: &Element) -> Value {
    if el.children.is_empty() {
        return Value::String(el.text.clone());
    }
    let mut obj = Map::new();
    for (name, group) in group_children(el) {
        obj.insert(
            name.to_owned(),
            collapse(group.into_iter().map(untyped).collect()),
        );
    }
    Value::Object(obj)
}

/// Schema-directed conversion of an element at `path` inside the payload.
fn payload_value(
    reg: &SchemaRegistry,
    target: Option<(Category, SchemaVersion)>,
    el: &Element,
    path: &mut Vec<String>,
) -> Value {
    let ty = match target {
        Some((c, v)) => {
            let segs: Vec<&str> = path.iter().map(String::as_str).collect();
            reg.type_at(c, v, &segs)
        }
        None => None,
    };
    let blank = el.text.trim().is_empty();
    match ty {
        Some(JsonType::Array) if el.children.is_empty() && blank => Value::Array(Vec::new()),
        Some(JsonType::Array) if !el.children.is_empty() && el.children.iter().all(|c| c.name == "item") => {
            let mut out = Vec::with_capacity(el.children.len());
            for (i, item) in el.children.iter().enumerate() {
                path.push(i.to_string());
                out.push(payload_value(reg, target, item, path));
                path.pop();
            }
            Value::Array(out)
        }
        Some(JsonType::Object) if el.children.is_empty() && blank => Value::Object(Map::new()),
        _ if !el.children.is_empty() => {
            let mut obj = Map::new();
            for (name, group) in group_children(el) {
                path.push(name.to_owned());
                let values: Vec<Value> = group
                    .into_iter()
                    .map(|c| payload_value(reg, target, c, path))
                    .collect();
                path.pop();
                obj.insert(name.to_owned(), collapse(values));
            }
            Value::Object(obj)
        }
        Some(JsonType::Integer) => {
            parse_integer(el.text.trim()).unwrap_or_else(|| Value::String(el.text.clone()))
        }
        Some(JsonType::Number) => {
            parse_number(el.text.trim()).unwrap_or_else(|| Value::String(el.text.clone()))
        }
        Some(JsonType::Boolean) => match el.text.trim() {
            "true" | "1" => Value::Bool(true),
            "false" | "0" => Value::Bool(false),
            _ => Value::String(el.text.clone()),
        },
        _ => Value::String(el.text.clone()),
    }
}

/// An XML Schema-style integer: optional sign, digits (a `.0`-less decimal).
pub(crate) fn parse_integer(s: &str) -> Option<Value> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let s = s.strip_prefix('+').unwrap_or(s);
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::Number(Number::from(i)));
    }
    s.parse::<u64>().ok().map(|u| Value::Number(Number::from(u)))
}

/// A decimal or scientific number; integers stay integers so XML and JSON twins are equal.
pub(crate) fn parse_number(s: &str) -> Option<Value> {
    if let Some(v) = parse_integer(s) {
        return Some(v);
    }
    let ok_chars = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && s.bytes().any(|b| b.is_ascii_digit());
    if !ok_chars {
        return None;
    }
    s.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

// --- Namespace-aware documents (SOAP envelopes, R-ING-3) -------------------------------------

/// An attribute of an [`XmlNode`]. Namespace declarations (`xmlns`, `xmlns:p`) are not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlAttribute {
    /// Namespace URI (an attribute without a prefix has none).
    pub namespace: Option<String>,
    /// Local name.
    pub name: String,
    /// Value, normalised, with the predefined entities and character references resolved.
    pub value: String,
}

/// An element of a document read by [`parse_document`]: the same tree [`parse_records`]
/// builds, plus each element's namespace, attributes and line, for envelopes that carry
/// records (SOAP).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XmlNode {
    /// Namespace URI of the element, when it is in one.
    pub namespace: Option<String>,
    /// Local name (prefix removed).
    pub name: String,
    /// Attributes, in document order.
    pub attributes: Vec<XmlAttribute>,
    /// Child elements, in document order.
    pub children: Vec<XmlNode>,
    /// The element's own text (character data and CDATA, references resolved).
    pub text: String,
    /// 1-based line of the start tag.
    pub line: usize,
}

impl XmlNode {
    /// Whether the element is `{namespace}name`.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.name == name && self.namespace.as_deref() == Some(namespace)
    }

    /// The first child element with this local name (any namespace).
    pub fn child(&self, name: &str) -> Option<&XmlNode> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The value of attribute `{namespace}name` (`None` namespace: an unprefixed attribute).
    pub fn attribute(&self, namespace: Option<&str>, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name && a.namespace.as_deref() == namespace)
            .map(|a| a.value.as_str())
    }
}

/// Parses a whole document with the default limits, keeping namespaces and attributes.
/// Every safety rule of [`parse_records`] applies (no DTD, no entity declarations, no custom
/// entities, no processing instructions, UTF-8 only, bounded depth and size).
pub fn parse_document(xml: &[u8]) -> Result<XmlNode, XmlError> {
    parse_document_with(xml, XmlLimits::default())
}

/// [`parse_document`] with explicit limits.
pub fn parse_document_with(xml: &[u8], limits: XmlLimits) -> Result<XmlNode, XmlError> {
    let text = decode(xml)?;
    // The hardened reader decides what is accepted; the second pass only adds the namespace
    // facts of the (by then known to be safe) document, element by element in document order.
    let root = parse_tree(text, limits)?;
    let mut facts = namespace_facts(text)?.into_iter();
    let node = attach(root, &mut facts)?;
    if facts.next().is_some() {
        return Err(malformed(None, "cannot read the document"));
    }
    Ok(node)
}

/// Converts a `<records>` element (or a single `<record>`) of a [`parse_document`] tree into
/// items exactly as [`parse_records`] converts a document root: `single` is `true` only for a
/// `<record>`.
pub fn records_in(reg: &SchemaRegistry, node: &XmlNode) -> Result<XmlItems, XmlError> {
    match node.name.as_str() {
        "records" => {
            let mut items = Vec::with_capacity(node.children.len());
            for child in &node.children {
                if child.name != "record" {
                    return Err(malformed(
                        Some(child.line),
                        "expected only <record> elements inside <records>",
                    ));
                }
                items.push(record_to_json(reg, &to_element(child)));
            }
            if !node.text.trim().is_empty() {
                return Err(malformed(Some(node.line), "unexpected text inside <records>"));
            }
            Ok(XmlItems { single: false, items })
        }
        "record" => Ok(XmlItems {
            single: true,
            items: vec![record_to_json(reg, &to_element(node))],
        }),
        _ => Err(malformed(Some(node.line), "expected <records> or <record>")),
    }
}

fn to_element(node: &XmlNode) -> Element {
    Element {
        name: node.name.clone(),
        children: node.children.iter().map(to_element).collect(),
        text: node.text.clone(),
        ..Element::default()
    }
}

/// What the namespace-aware pass learns about one element.
struct NodeFacts {
    name: String,
    namespace: Option<String>,
    attributes: Vec<XmlAttribute>,
    line: usize,
}

fn bound(r: quick_xml::name::ResolveResult<'_>) -> Option<String> {
    match r {
        quick_xml::name::ResolveResult::Bound(ns) => Some(AsRef::<str>::as_ref(&ns).to_owned()),
        _ => None,
    }
}

/// Namespace, attributes and line of every element, in document order (start tags).
fn namespace_facts(text: &str) -> Result<Vec<NodeFacts>, XmlError> {
    let bytes = text.as_bytes();
    let mut reader = quick_xml::reader::NsReader::from_str(text);
    let mut out = Vec::new();
    let (mut line, mut counted) = (1usize, 0usize);
    loop {
        let pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = match reader.read_event() {
            Ok(ev) => ev,
            Err(err) => return Err(reader_error(&err, bytes, reader.error_position())),
        };
        let (Event::Start(e) | Event::Empty(e)) = event else {
            if matches!(event, Event::Eof) {
                break;
            }
            continue;
        };
        let at = pos.min(bytes.len()).max(counted);
        line += bytes[counted..at].iter().filter(|b| **b == b'\n').count();
        counted = at;
        let (ns, local_name) = reader.resolver().resolve_element(e.name());
        let mut attributes = Vec::new();
        for attr in e.attributes() {
            let attr = attr.map_err(|_| malformed(Some(line), "malformed attribute"))?;
            if attr.key.as_namespace_binding().is_some() {
                continue;
            }
            let (ans, alocal) = reader.resolver().resolve_attribute(attr.key);
            let value = attr
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|_| {
                    malformed(
                        Some(line),
                        "invalid entity or character reference in an attribute",
                    )
                })?;
            attributes.push(XmlAttribute {
                namespace: bound(ans),
                name: AsRef::<str>::as_ref(&alocal).to_owned(),
                value: value.into_owned(),
            });
        }
        out.push(NodeFacts {
            name: AsRef::<str>::as_ref(&local_name).to_owned(),
            namespace: bound(ns),
            attributes,
            line,
        });
    }
    Ok(out)
}

/// Joins the hardened tree with the namespace facts (both in document order).
fn attach(el: Element, facts: &mut impl Iterator<Item = NodeFacts>) -> Result<XmlNode, XmlError> {
    let f = facts
        .next()
        .filter(|f| f.name == el.name)
        .ok_or_else(|| malformed(None, "cannot read the document"))?;
    let mut children = Vec::with_capacity(el.children.len());
    for c in el.children {
        children.push(attach(c, facts)?);
    }
    Ok(XmlNode {
        namespace: f.namespace,
        name: el.name,
        attributes: f.attributes,
        children,
        text: el.text,
        line: f.line,
    })
}

#[cfg(test)]
mod document_tests {
    use super::*;

    const SOAP11: &str = "http://schemas.xmlsoap.org/soap/envelope/";

    #[test]
    fn namespaces_attributes_and_lines_are_kept() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/">
  <s:Header><h:Trace xmlns:h="urn:x" s:mustUnderstand="1" a="x &amp; y"/></s:Header>
  <s:Body>
    <GetReceipt xmlns="urn:etxhub:soap:ingestion:v1"><receipt_id>abc</receipt_id></GetReceipt>
  </s:Body>
</s:Envelope>"#;
        let root = parse_document(doc).unwrap_or_default();
        assert!(root.is(SOAP11, "Envelope"));
        assert_eq!(root.line, 2);
        let header = root.child("Header").cloned().unwrap_or_default();
        let block = &header.children[0];
        assert!(block.is("urn:x", "Trace"));
        assert_eq!(block.attribute(Some(SOAP11), "mustUnderstand"), Some("1"));
        assert_eq!(block.attribute(None, "a"), Some("x & y"));
        assert_eq!(block.attributes.len(), 2, "xmlns declarations are not attributes");
        let body = root.child("Body").cloned().unwrap_or_default();
        let op = &body.children[0];
        assert!(op.is("urn:etxhub:soap:ingestion:v1", "GetReceipt"));
        assert_eq!(op.line, 5);
        assert!(op.children[0].is("urn:etxhub:soap:ingestion:v1", "receipt_id"));
        assert_eq!(op.children[0].text, "abc");
    }

    #[test]
    fn records_inside_an_envelope_convert_like_a_document_of_their_own() {
        let reg = SchemaRegistry::load().unwrap_or_else(|e| panic!("{e}"));
        let example = include_str!(
            "../../../../contracts/examples/records/statistics/02-failed-public-services-hanoi.xml"
        );
        let records = example
            .split_once("<records")
            .map(|(_, r)| format!("<records{r}"))
            .unwrap_or_default();
        let envelope = format!(
            "<s:Envelope xmlns:s=\"{SOAP11}\"><s:Body><SubmitRecords xmlns=\"urn:etxhub:soap:ingestion:v1\">{records}</SubmitRecords></s:Body></s:Envelope>"
        );
        let root = parse_document(envelope.as_bytes()).unwrap_or_default();
        let node = root.children[0].children[0]
            .child("records")
            .cloned()
            .unwrap_or_default();
        let inner = records_in(&reg, &node).unwrap_or_else(|e| panic!("{e}"));
        let alone = parse_records(&reg, example.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(inner, alone);
        assert!(!inner.items.is_empty());
        let single = records_in(&reg, &node.children[0]).unwrap_or_else(|e| panic!("{e}"));
        assert!(single.single);
        assert_eq!(single.items[0], alone.items[0]);
        assert!(matches!(
            records_in(&reg, &root),
            Err(XmlError::Malformed { line: Some(1), .. })
        ));
    }

    #[test]
    fn the_same_safety_rules_apply() {
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert_eq!(parse_document(xxe), Err(XmlError::DtdForbidden));
        assert!(matches!(
            parse_document(b"<r>&x;</r>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(
            parse_document(b"<r a=\"&x;\"/>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(
            parse_document(b"<r><a></r>"),
            Err(XmlError::Malformed { .. })
        ));
        assert!(matches!(
            parse_document(b"<?pi x?><r/>"),
            Err(XmlError::Malformed { .. })
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_and_numeric_references_resolve_and_others_do_not() {
        assert_eq!(resolve_ref("amp"), Some('&'));
        assert_eq!(resolve_ref("#7879"), Some('ệ'));
        assert_eq!(resolve_ref("#x1EC7"), Some('ệ'));
        assert_eq!(resolve_ref("#0"), None);
        assert_eq!(resolve_ref("#1"), None);
        assert_eq!(resolve_ref("#x"), None);
        assert_eq!(resolve_ref("#-1"), None);
        assert_eq!(resolve_ref("nbsp"), None);
        assert_eq!(resolve_ref("xxe"), None);
    }

    #[test]
    fn numbers_parse_like_json() {
        assert_eq!(parse_integer("42"), Some(Value::from(42)));
        assert_eq!(parse_integer("+42"), Some(Value::from(42)));
        assert_eq!(parse_integer("-3"), Some(Value::from(-3)));
        assert_eq!(parse_integer("4.0"), None);
        assert_eq!(parse_integer("4x"), None);
        assert_eq!(parse_number("1250"), Some(Value::from(1250)));
        assert_eq!(parse_number("97.5"), Some(Value::from(97.5)));
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_number("inf"), None);
        assert_eq!(parse_number("1e999"), None);
    }

    #[test]
    fn prefixes_are_ignored() {
        assert_eq!(local("etx:record"), "record");
        assert_eq!(local("record"), "record");
    }
}
