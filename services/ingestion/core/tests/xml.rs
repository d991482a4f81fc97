//! The XML wire format (R-ING-3) and its defences against XML attacks (R-SEC-3): DTDs, entity
//! expansion, external entities, deep nesting and foreign encodings are refused before any
//! conversion; conversion is schema-directed so XML and JSON bodies validate the same (R-ING-4).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use etx_domain::{Category, ViolationCode};
use etx_ingestion_core::schema::{SchemaRegistry, parse_item};
use etx_ingestion_core::xml::{XmlError, XmlLimits, parse_records, parse_records_with};
use serde_json::json;

fn registry() -> SchemaRegistry {
    SchemaRegistry::load().unwrap()
}

fn refused(xml: &str) -> XmlError {
    match parse_records(&registry(), xml.as_bytes()) {
        Ok(items) => panic!("accepted: {items:?}"),
        Err(e) => e,
    }
}

fn is_malformed(e: &XmlError) -> bool {
    matches!(e, XmlError::Malformed { .. })
}

const STATS_RECORD: &str = r#"<record>
    <category>statistics</category><schema_version>1</schema_version><period>2026-10</period>
    <classification>internal</classification><priority>high</priority><form>raw</form>
    <idempotency_key>k-1</idempotency_key>
    <payload>
      <indicator>failed_transactions</indicator><transaction_kind>e_payment</transaction_kind>
      <value>1250</value><unit>count</unit>
      <dimensions><province_code>79</province_code></dimensions>
      <failure_reasons><item><reason_code>timeout</reason_code><count>3</count></item></failure_reasons>
    </payload>
  </record>"#;

#[test]
fn the_wire_format_converts_with_schema_directed_types() {
    let reg = registry();
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<records xmlns="urn:etxhub:ingestion:v1">
  {STATS_RECORD}
</records>"#
    );
    let doc = parse_records(&reg, xml.as_bytes()).unwrap();
    assert!(!doc.single);
    assert_eq!(
        doc.items,
        vec![json!({
            "category": "statistics", "schema_version": "1", "period": "2026-10",
            "classification": "internal", "priority": "high", "form": "raw", "idempotency_key": "k-1",
            "payload": {
                "indicator": "failed_transactions", "transaction_kind": "e_payment",
                "value": 1250, "unit": "count",
                "dimensions": { "province_code": "79" },
                "failure_reasons": [{ "reason_code": "timeout", "count": 3 }]
            }
        })]
    );
    let (env, _) = parse_item(&reg, &doc.items[0]).unwrap();
    assert_eq!(env.category, Category::Statistics);
}

#[test]
fn a_single_record_root_is_accepted_and_prefixes_are_ignored() {
    let reg = registry();
    let xml = STATS_RECORD
        .replace("<record>", r#"<e:record xmlns:e="urn:etxhub:ingestion:v1">"#)
        .replace("</record>", "</e:record>")
        .replace("<payload>", "<e:payload>")
        .replace("</payload>", "</e:payload>");
    let doc = parse_records(&reg, xml.as_bytes()).unwrap();
    assert!(doc.single);
    assert_eq!(doc.items.len(), 1);
    assert!(parse_item(&reg, &doc.items[0]).is_ok());
}

#[test]
fn empty_elements_arrays_and_repeated_elements() {
    let reg = registry();
    let xml = r#"<record><category>policy</category><schema_version>v1</schema_version>
      <period>2026</period><classification>public</classification>
      <payload>
        <document_type>plan</document_type><document_number>1/KH-UBND</document_number>
        <title>Kế hoạch</title><issuing_body>UBND</issuing_body><issued_on>2026-01-02</issued_on>
        <status>in_force</status><summary/><topics/><replaces><item>2/KH-UBND</item></replaces>
      </payload></record>"#;
    let doc = parse_records(&reg, xml.as_bytes()).unwrap();
    let p = &doc.items[0]["payload"];
    assert_eq!(p["summary"], json!(""));
    assert_eq!(p["topics"], json!([]));
    assert_eq!(p["replaces"], json!(["2/KH-UBND"]));
    assert!(parse_item(&reg, &doc.items[0]).is_ok());

    let repeated = xml.replace("<title>Kế hoạch</title>", "<title>A</title><title>B</title>");
    let doc = parse_records(&reg, repeated.as_bytes()).unwrap();
    assert_eq!(doc.items[0]["payload"]["title"], json!(["A", "B"]));
    let err = parse_item(&reg, &doc.items[0]).unwrap_err();
    assert_eq!(err[0].path, "/payload/title");
    assert_eq!(err[0].code, ViolationCode::Type);
}

#[test]
fn a_leaf_that_does_not_parse_stays_a_string_and_fails_validation_at_its_path() {
    let reg = registry();
    let xml = STATS_RECORD
        .replace("<value>1250</value>", "<value>CANARY-91ab</value>")
        .replace("<count>3</count>", "<count>3.5</count>")
        .replace("<unit>count</unit>", "<unit>count</unit><colour>red</colour>");
    let doc = parse_records(&reg, xml.as_bytes()).unwrap();
    assert_eq!(doc.items[0]["payload"]["value"], json!("CANARY-91ab"));
    let err = parse_item(&reg, &doc.items[0]).unwrap_err();
    let got: Vec<(&str, ViolationCode)> = err.iter().map(|v| (v.path.as_str(), v.code)).collect();
    assert_eq!(
        got,
        vec![
            ("/payload/colour", ViolationCode::UnknownField),
            ("/payload/failure_reasons/0/count", ViolationCode::Type),
            ("/payload/value", ViolationCode::Type),
        ]
    );
    assert!(
        err.iter()
            .all(|v| !v.detail.as_deref().unwrap_or_default().contains("CANARY"))
    );
}

#[test]
fn vietnamese_diacritics_round_trip_including_character_references_and_cdata() {
    let reg = registry();
    let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<record><category>workforce</category><schema_version>1</schema_version><period>2026-09</period>
<classification>public</classification><payload>
<activity_type>training_course</activity_type>
<title>Bồi dưỡng kiến thức về chữ ký số &#8211; Vi&#7879;t Nam &amp; &#x1EA0;</title>
<organiser><![CDATA[Sở Khoa học và Công nghệ <Thành phố Hồ Chí Minh> & đối tác]]></organiser>
<start_date>2026-09-08</start_date><participants_count> 120 </participants_count>
</payload></record>"#;
    let doc = parse_records(&reg, xml.as_bytes()).unwrap();
    let (_, payload) = parse_item(&reg, &doc.items[0]).unwrap();
    assert_eq!(
        payload["title"],
        json!("Bồi dưỡng kiến thức về chữ ký số – Việt Nam & Ạ")
    );
    assert_eq!(
        payload["organiser"],
        json!("Sở Khoa học và Công nghệ <Thành phố Hồ Chí Minh> & đối tác")
    );
    assert_eq!(payload["participants_count"], json!(120));
}

#[test]
fn xxe_with_an_internal_dtd_is_refused() {
    let e = refused(
        r#"<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<records><record><category>&x;</category></record></records>"#,
    );
    assert_eq!(e, XmlError::DtdForbidden);
}

#[test]
fn billion_laughs_is_refused() {
    let e = refused(
        r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<records>&lol4;</records>"#,
    );
    assert_eq!(e, XmlError::DtdForbidden);
}

#[test]
fn an_external_dtd_reference_is_refused() {
    assert_eq!(
        refused(r#"<!DOCTYPE records SYSTEM "http://attacker.example/evil.dtd"><records/>"#),
        XmlError::DtdForbidden
    );
    assert_eq!(
        refused(r#"<?xml version="1.0"?><!doctype records PUBLIC "-//X//Y" "http://x/y.dtd"><records/>"#),
        XmlError::DtdForbidden
    );
}

#[test]
fn entity_declarations_outside_a_dtd_are_refused() {
    assert_eq!(
        refused(r#"<records><!ENTITY x "y"><record/></records>"#),
        XmlError::DtdForbidden
    );
}

#[test]
fn a_custom_entity_reference_without_dtd_is_refused() {
    let e = refused(&STATS_RECORD.replace("<value>1250</value>", "<value>&xxe;</value>"));
    assert!(is_malformed(&e), "{e:?}");
    let e = refused(&STATS_RECORD.replace("<value>1250</value>", "<value>&nbsp;</value>"));
    assert!(is_malformed(&e), "{e:?}");
    let e = refused(&STATS_RECORD.replace("<value>1250</value>", "<value>a & b</value>"));
    assert!(is_malformed(&e), "{e:?}");
    let e = refused(&STATS_RECORD.replace("<value>1250</value>", "<value>&#0;</value>"));
    assert!(is_malformed(&e), "{e:?}");
}

#[test]
fn deep_nesting_is_refused() {
    // records / record / payload + 37 = depth 40.
    let depth = 37;
    let mut xml = String::from("<records><record><payload>");
    for _ in 0..depth {
        xml.push_str("<a>");
    }
    for _ in 0..depth {
        xml.push_str("</a>");
    }
    xml.push_str("</payload></record></records>");
    assert_eq!(refused(&xml), XmlError::TooDeep);

    // 32 levels are fine.
    let mut ok = String::from("<records><record><payload>");
    ok.push_str(&"<a>".repeat(29));
    ok.push_str(&"</a>".repeat(29));
    ok.push_str("</payload></record></records>");
    assert!(parse_records(&registry(), ok.as_bytes()).is_ok());
}

#[test]
fn too_many_elements_are_refused() {
    let reg = registry();
    let limits = XmlLimits {
        max_depth: 32,
        max_elements: 100,
    };
    let small = format!("<records>{}</records>", "<record/>".repeat(99));
    assert_eq!(
        parse_records_with(&reg, small.as_bytes(), limits).map(|d| d.items.len()),
        Ok(99)
    );
    let big = format!("<records>{}</records>", "<record/>".repeat(100));
    assert_eq!(
        parse_records_with(&reg, big.as_bytes(), limits),
        Err(XmlError::TooLarge)
    );
}

#[test]
fn the_default_element_limit_is_one_million() {
    let big = format!("<records>{}</records>", "<a/>".repeat(1_000_000));
    assert_eq!(refused(&big), XmlError::TooLarge);
}

#[test]
fn non_utf8_encodings_are_refused() {
    let e = refused(r#"<?xml version="1.0" encoding="ISO-8859-1"?><records/>"#);
    assert!(
        matches!(&e, XmlError::Malformed { reason, .. } if reason.contains("UTF-8")),
        "{e:?}"
    );
    let e = refused(r#"<?xml version="1.0" encoding="UTF-16"?><records/>"#);
    assert!(is_malformed(&e), "{e:?}");
    let reg = registry();
    let latin1: &[u8] = b"<records><record><category>Vi\xeat</category></record></records>";
    assert!(matches!(
        parse_records(&reg, latin1),
        Err(XmlError::Malformed { .. })
    ));
    let utf16: &[u8] = &[0xFF, 0xFE, b'<', 0, b'r', 0, b'/', 0, b'>', 0];
    assert!(matches!(
        parse_records(&reg, utf16),
        Err(XmlError::Malformed { .. })
    ));
    // A UTF-8 byte order mark is fine.
    let bom = [&[0xEF, 0xBB, 0xBF][..], b"<records/>"].concat();
    assert_eq!(parse_records(&reg, &bom).map(|d| d.items.len()), Ok(0));
}

#[test]
fn processing_instructions_other_than_the_declaration_are_refused() {
    assert!(is_malformed(&refused(
        r#"<?xml version="1.0"?><?xml-stylesheet href="x.xsl"?><records/>"#
    )));
    assert!(is_malformed(&refused(r#"<records><?php echo 1; ?></records>"#)));
    assert!(is_malformed(&refused(r#"<records/><?xml version="1.0"?>"#)));
}

#[test]
fn malformed_documents_are_refused_with_a_line_and_without_echo() {
    let e = refused("<records>\n<record>\n<CANARYTAG></wrong>\n</record></records>");
    match &e {
        XmlError::Malformed { line, .. } => assert_eq!(*line, Some(3)),
        other => panic!("{other:?}"),
    }
    assert!(!e.to_string().contains("CANARY"), "{e}");
    for bad in [
        "",
        "not xml",
        "<records>",
        "<records></records><records/>",
        "<other/>",
        "<records><other/></records>",
        "<records>text</records>",
        "<records><record><category>a<b/></category></record></records>",
        "<records a='1' a='2'/>",
    ] {
        let e = refused(bad);
        assert!(is_malformed(&e), "{bad}: {e:?}");
    }
}

#[test]
fn error_messages_are_english_and_fixed() {
    assert_eq!(
        XmlError::DtdForbidden.to_string(),
        "XML must not contain a DTD or entity declarations"
    );
    assert_eq!(
        XmlError::Malformed {
            line: Some(4),
            reason: "an element is not closed".into()
        }
        .to_string(),
        "XML is not well-formed (line 4): an element is not closed"
    );
    assert!(XmlError::TooDeep.to_string().contains("32"));
    assert!(XmlError::TooLarge.to_string().contains("1000000"));
}
