//! The XSDs of the XML wire format (R-ING-3), generated from the category JSON Schemas
//! (R-DATA-1): one per category version, deterministic, with the envelope fixed to the category
//! and version, every payload field an element typed and documented after its JSON Schema.
//! (That real XSD processors accept them and the examples validate is checked with lxml in
//! `e2e-tests/tests/e2e/xsd_lxml.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use etx_domain::{Category, SchemaVersion};
use etx_ingestion_core::schema::SchemaRegistry;
use etx_ingestion_core::xml::{XmlNode, parse_document};
use etx_ingestion_core::xsd::{self, xsd_pattern};
use serde_json::Value;

const XS: &str = "http://www.w3.org/2001/XMLSchema";
const XML: &str = "http://www.w3.org/XML/1998/namespace";

fn registry() -> SchemaRegistry {
    SchemaRegistry::load().unwrap()
}

fn xsd_of(reg: &SchemaRegistry, category: Category) -> XmlNode {
    let text = xsd::generate(reg, category, SchemaVersion::V1).unwrap();
    parse_document(text.as_bytes()).unwrap_or_else(|e| panic!("{category}: {e}"))
}

fn attr<'a>(node: &'a XmlNode, name: &str) -> Option<&'a str> {
    node.attribute(None, name)
}

fn xs_children<'a>(node: &'a XmlNode, name: &str) -> impl Iterator<Item = &'a XmlNode> {
    let name = name.to_owned();
    node.children.iter().filter(move |c| c.is(XS, &name))
}

/// The top-level `xs:{kind}` named `name`.
fn global<'a>(schema: &'a XmlNode, kind: &str, name: &str) -> &'a XmlNode {
    xs_children(schema, kind)
        .find(|c| attr(c, "name") == Some(name))
        .unwrap_or_else(|| panic!("no global {kind} {name}"))
}

/// The model group (`xs:all` or `xs:sequence`) of a complex type.
fn group(complex: &XmlNode) -> &XmlNode {
    complex
        .children
        .iter()
        .find(|c| c.is(XS, "all") || c.is(XS, "sequence"))
        .unwrap_or_else(|| panic!("no model group in {complex:?}"))
}

/// The elements of a complex type's model group, by name.
fn elements(complex: &XmlNode) -> Vec<&XmlNode> {
    xs_children(group(complex), "element").collect()
}

fn element<'a>(complex: &'a XmlNode, name: &str) -> &'a XmlNode {
    elements(complex)
        .into_iter()
        .find(|e| attr(e, "name") == Some(name))
        .unwrap_or_else(|| panic!("no element {name}"))
}

/// The anonymous complex type of an element.
fn complex(el: &XmlNode) -> &XmlNode {
    xs_children(el, "complexType").next().unwrap()
}

/// The element at a path of names below the complex type `ty`.
fn at<'a>(ty: &'a XmlNode, path: &[&str]) -> &'a XmlNode {
    let mut el = element(ty, path[0]);
    for name in &path[1..] {
        el = element(complex(el), name);
    }
    el
}

/// The restriction of an element's anonymous simple type, or of a named one.
fn restriction<'a>(schema: &'a XmlNode, el: &'a XmlNode) -> &'a XmlNode {
    let simple = match attr(el, "type").and_then(|t| t.strip_prefix("etx:")) {
        Some(name) => global(schema, "simpleType", name),
        None => xs_children(el, "simpleType").next().unwrap(),
    };
    xs_children(simple, "restriction").next().unwrap()
}

fn facets<'a>(restriction: &'a XmlNode, facet: &str) -> Vec<&'a str> {
    xs_children(restriction, facet)
        .filter_map(|f| attr(f, "value"))
        .collect()
}

fn documentation(node: &XmlNode, lang: &str) -> String {
    xs_children(node, "annotation")
        .flat_map(|a| xs_children(a, "documentation"))
        .filter(|d| d.attribute(Some(XML), "lang") == Some(lang))
        .map(|d| d.text.clone())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_category_version_has_a_deterministic_xsd_in_the_wire_namespace() {
    let reg = registry();
    for c in Category::ALL {
        for v in reg.versions(c) {
            let first = xsd::generate(&reg, c, v).unwrap();
            assert_eq!(first, xsd::generate(&reg, c, v).unwrap(), "{c} v{v}");
            assert_eq!(first, xsd::generate(&registry(), c, v).unwrap());
            assert!(first.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
            let schema = parse_document(first.as_bytes()).unwrap();
            assert!(schema.is(XS, "schema"));
            assert_eq!(attr(&schema, "targetNamespace"), Some("urn:etxhub:ingestion:v1"));
            assert_eq!(attr(&schema, "elementFormDefault"), Some("qualified"));
            assert!(documentation(&schema, "vi").contains("lược đồ JSON"));
            assert!(documentation(&schema, "en").contains(&format!("urn:etxhub:schema:{c}:v{v}")));
        }
    }
    assert_eq!(
        xsd::contract_path(Category::Workforce, SchemaVersion::V1),
        "contracts/schemas/workforce/v1.xsd"
    );
}

#[test]
fn unknown_versions_have_no_xsd() {
    let v9 = SchemaVersion::parse("9").unwrap();
    assert_eq!(xsd::generate(&registry(), Category::Policy, v9), None);
}

#[test]
fn records_hold_1_to_1000_records_and_a_record_may_be_the_root() {
    let schema = xsd_of(&registry(), Category::Statistics);
    let globals: Vec<&str> = xs_children(&schema, "element")
        .filter_map(|e| attr(e, "name"))
        .collect();
    assert_eq!(globals, ["records", "record"]);
    let records = global(&schema, "element", "records");
    let record = xs_children(group(complex(records)), "element").next().unwrap();
    assert_eq!(attr(record, "ref"), Some("etx:record"));
    assert_eq!(attr(record, "minOccurs"), None, "at least one record");
    assert_eq!(attr(record, "maxOccurs"), Some("1000"));
    assert_eq!(
        attr(global(&schema, "element", "record"), "type"),
        Some("etx:RecordType")
    );
}

#[test]
fn the_envelope_is_fixed_to_the_category_and_version_and_refuses_state_secrets() {
    let reg = registry();
    for c in Category::ALL {
        let schema = xsd_of(&reg, c);
        let record = global(&schema, "complexType", "RecordType");
        assert!(group(record).is(XS, "all"), "envelope elements come in any order");
        let names: Vec<&str> = elements(record).iter().filter_map(|e| attr(e, "name")).collect();
        assert_eq!(
            names,
            etx_ingestion_core::schema::ENVELOPE_FIELDS,
            "{c}: exactly the envelope fields"
        );
        for el in elements(record) {
            let name = attr(el, "name").unwrap();
            let optional = matches!(name, "priority" | "form" | "idempotency_key");
            assert_eq!(attr(el, "minOccurs") == Some("0"), optional, "{c}: {name}");
        }
        let category = restriction(&schema, element(record, "category"));
        assert_eq!(facets(category, "enumeration"), [c.as_str()]);
        let version = restriction(&schema, element(record, "schema_version"));
        assert_eq!(facets(version, "pattern"), ["[vV]?1"]);
        let classification = restriction(&schema, element(record, "classification"));
        assert_eq!(
            facets(classification, "enumeration"),
            ["public", "internal", "confidential", "secret"]
        );
        let period = restriction(&schema, element(record, "period"));
        assert_eq!(
            facets(period, "pattern"),
            ["[0-9]{4}(-[Qq][1-4]|-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?"]
        );
        // The hub trims envelope codes, but takes the idempotency key as written.
        assert_eq!(attr(period, "base"), Some("xs:token"));
        let key = restriction(&schema, element(record, "idempotency_key"));
        assert_eq!(attr(key, "base"), Some("xs:string"));
        assert_eq!(facets(key, "pattern"), ["[!-~]{1,128}"]);
        assert_eq!(attr(element(record, "payload"), "type"), Some("etx:PayloadType"));
        assert_eq!(documentation(element(record, "classification"), "vi"), "Độ mật");
    }
}

/// Checks that the complex type `ty` has one element per property of the JSON object schema
/// `node`, required ones with `minOccurs="1"`, and recurses into objects and array items.
fn same_fields(doc: &Value, ty: &XmlNode, node: &Value, path: &str) {
    let node = match node.get("$ref").and_then(Value::as_str) {
        Some(r) => doc.pointer(r.trim_start_matches('#')).unwrap(),
        None => node,
    };
    let props = node["properties"].as_object().unwrap();
    let required: Vec<&str> = node["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut expected: Vec<&str> = props.keys().map(String::as_str).collect();
    expected.sort_unstable();
    let got: Vec<&str> = elements(ty).iter().filter_map(|e| attr(e, "name")).collect();
    assert_eq!(got, expected, "{path}");
    assert!(group(ty).is(XS, "all"), "{path}: fields come in any order");
    for (name, sub) in props {
        let el = element(ty, name);
        let min = if required.contains(&name.as_str()) {
            None
        } else {
            Some("0")
        };
        assert_eq!(attr(el, "minOccurs"), min, "{path}/{name}");
        assert!(
            !documentation(el, "vi").is_empty() && !documentation(el, "en").is_empty(),
            "{path}/{name} is documented in both languages"
        );
        match sub["type"].as_str() {
            Some("object") => same_fields(doc, complex(el), sub, &format!("{path}/{name}")),
            Some("array") => {
                let item = element(complex(el), "item");
                let min = sub["minItems"].as_u64().unwrap_or(0);
                assert_eq!(
                    attr(item, "minOccurs").unwrap_or("1"),
                    min.to_string(),
                    "{path}/{name}"
                );
                let max = sub["maxItems"]
                    .as_u64()
                    .map_or("unbounded".to_owned(), |m| m.to_string());
                assert_eq!(attr(item, "maxOccurs"), Some(max.as_str()), "{path}/{name}");
                if sub["items"]["type"] == "object" {
                    same_fields(doc, complex(item), &sub["items"], &format!("{path}/{name}/*"));
                }
            }
            _ => {}
        }
    }
}

#[test]
fn every_payload_field_is_an_element_required_as_in_the_json_schema() {
    let reg = registry();
    for c in Category::ALL {
        let schema = xsd_of(&reg, c);
        let doc = reg.json_schema(c, SchemaVersion::V1).unwrap();
        let payload = global(&schema, "complexType", "PayloadType");
        same_fields(doc, payload, doc, c.as_str());
        assert_eq!(
            documentation(payload, "vi"),
            format!(
                "{}. {}",
                doc["x-title-vi"].as_str().unwrap(),
                doc["x-description-vi"].as_str().unwrap()
            )
        );
    }
}

#[test]
fn leaves_are_typed_after_the_json_schema() {
    let reg = registry();
    let stats = xsd_of(&reg, Category::Statistics);
    let payload = global(&stats, "complexType", "PayloadType");

    let value = restriction(&stats, at(payload, &["value"]));
    assert_eq!(attr(value, "base"), Some("xs:decimal"));
    assert_eq!(facets(value, "minInclusive"), ["0"]);
    assert_eq!(facets(value, "maxInclusive"), ["1000000000000000000"]);

    let count = restriction(&stats, at(payload, &["failure_reasons", "item", "count"]));
    assert_eq!(attr(count, "base"), Some("xs:integer"));
    assert_eq!(facets(count, "minInclusive"), ["0"]);
    assert_eq!(
        facets(count, "maxInclusive"),
        [u64::MAX.to_string()],
        "what the parser reads"
    );

    let unit = restriction(&stats, at(payload, &["unit"]));
    assert_eq!(facets(unit, "enumeration"), ["count", "vnd", "ms", "percent"]);

    let measured = restriction(&stats, at(payload, &["measured_at"]));
    assert_eq!(attr(measured, "base"), Some("xs:dateTime"));

    let province = restriction(&stats, at(payload, &["dimensions", "province_code"]));
    assert_eq!(facets(province, "pattern"), ["[0-9]{2}"]);

    // A bare $ref is a named type.
    let sector = at(payload, &["dimensions", "sector"]);
    assert_eq!(attr(sector, "type"), Some("etx:CodeType"));
    let code = restriction(&stats, sector);
    assert_eq!(facets(code, "pattern"), ["[a-z][a-z0-9_]*"]);
    assert_eq!(facets(code, "minLength"), ["1"]);
    assert_eq!(facets(code, "maxLength"), ["64"]);
    assert_eq!(documentation(sector, "vi"), "Lĩnh vực");

    let policy = xsd_of(&reg, Category::Policy);
    let payload = global(&policy, "complexType", "PayloadType");
    let issued = at(payload, &["issued_on"]);
    assert_eq!(attr(issued, "type"), Some("etx:DateType"));
    assert_eq!(attr(restriction(&policy, issued), "base"), Some("xs:date"));
    let topic = restriction(&policy, at(payload, &["topics", "item"]));
    assert_eq!(facets(topic, "minLength"), ["1"]);
    assert_eq!(facets(topic, "maxLength"), ["100"]);
    assert_eq!(
        attr(at(payload, &["replaces", "item"]), "type"),
        Some("etx:DocumentNumberType")
    );
    let url = restriction(&policy, at(payload, &["url"]));
    assert_eq!(
        facets(url, "pattern"),
        [format!(
            "https://[^{s}/?#]+[^{s}]*",
            s = "\\s\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}\u{feff}"
        )
        .as_str()]
    );

    let enforcement = xsd_of(&reg, Category::Enforcement);
    let payload = global(&enforcement, "complexType", "PayloadType");
    let basis = at(payload, &["legal_basis", "item"]);
    assert_eq!(attr(basis, "minOccurs"), None, "minItems 1");
    assert_eq!(attr(basis, "maxOccurs"), Some("50"));
    let tax = restriction(&enforcement, at(payload, &["subject_tax_code"]));
    assert_eq!(facets(tax, "pattern"), ["[0-9]{10}(-[0-9]{3})?"]);
    let detected = at(payload, &["incident", "detected_at"]);
    assert_eq!(attr(detected, "type"), Some("etx:DateTimeType"));
    assert_eq!(
        attr(restriction(&enforcement, detected), "base"),
        Some("xs:dateTime")
    );

    let workforce = xsd_of(&reg, Category::Workforce);
    let payload = global(&workforce, "complexType", "PayloadType");
    let years = restriction(&workforce, at(payload, &["expert", "years_of_experience"]));
    assert_eq!(facets(years, "minInclusive"), ["0"]);
    assert_eq!(facets(years, "maxInclusive"), ["70"]);
    let phone = restriction(&workforce, at(payload, &["expert", "phone"]));
    assert_eq!(facets(phone, "pattern"), ["(\\+84|84|0)[0-9]{9}"]);
}

#[test]
fn personal_fields_and_format_hints_are_documented() {
    let reg = registry();
    let schema = xsd_of(&reg, Category::Workforce);
    let payload = global(&schema, "complexType", "PayloadType");
    let id = at(payload, &["expert", "citizen_id"]);
    assert_eq!(documentation(id, "vi"), "Số định danh cá nhân");
    assert_eq!(
        documentation(id, "en"),
        "Personal identification number (CCCD), 12 digits. Personal data (R-SEC-10), masked as: token."
    );
    assert_eq!(
        documentation(global(&schema, "simpleType", "CitizenIdType"), "en"),
        "Format: 12 digits."
    );
}

#[test]
fn patterns_translate_to_whole_value_xsd_expressions() {
    let ws = "\\s\u{a0}\u{1680}\u{2000}-\u{200a}\u{2028}\u{2029}\u{202f}\u{205f}\u{3000}\u{feff}";
    let cases: [(&str, String); 16] = [
        ("^[0-9]{2}$", "[0-9]{2}".into()),
        ("^(?:a|b)+$", "(a|b)+".into()),
        ("^(?<year>[0-9]{4})$", "([0-9]{4})".into()),
        ("^a*?b{2,}?c{1,3}$", "a*b{2,}c{1,3}".into()),
        ("abc", "[\\s\\S]*abc[\\s\\S]*".into()),
        ("^abc", "abc[\\s\\S]*".into()),
        ("^a|b$", "a[\\s\\S]*|[\\s\\S]*b".into()),
        ("^\\d\\w$", "[0-9][A-Za-z0-9_]".into()),
        ("^[\\w.-]+$", "[A-Za-z0-9_.\\-]+".into()),
        ("^\\S+$", format!("[^{ws}]+")),
        ("^.$", "[^\\n\\r\u{2028}\u{2029}]".into()),
        ("^\\$\\.\\/\\^-$", "$\\./^-".into()),
        ("^[\\^a\\]\\[]$", "[\\^a\\]\\[]".into()),
        ("^\\u00C0\\x41\\uD83D\\uDE00$", "ÀA😀".into()),
        ("^{x}$", "\\{x\\}".into()),
        ("^[^]$", "[\\s\\S]".into()),
    ];
    for (ecma, expected) in cases {
        assert_eq!(xsd_pattern(ecma).as_deref(), Some(expected.as_str()), "{ecma}");
    }
    assert_eq!(xsd_pattern("").as_deref(), Some("[\\s\\S]*"));
}

#[test]
fn patterns_xsd_cannot_express_are_not_translated() {
    for ecma in [
        "^(?=a)b$",
        "^(?!a)b$",
        "^(?<=a)b$",
        "^(a)\\1$",
        "\\bword\\b",
        "^a^b$",
        "^(^a)$",
        "^a$b",
        "^\\p{L}+$",
        "^[\\D]$",
        "^\\cA$",
        "^\\x00$",
        "^(a$",
        "^a)$",
        "^*$",
        "^[z-a]$",
        "^a{3,1}$",
        "^[]$",
    ] {
        assert_eq!(xsd_pattern(ecma), None, "{ecma}");
    }
}
