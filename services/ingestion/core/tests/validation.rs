//! Validation of submitted items before acceptance (R-ING-4) against the category schemas
//! (R-DATA-1), with the security fields of the envelope (R-DATA-2, R-SRC-2).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use etx_domain::{
    Category, Classification, FieldViolation, Form, Period, Priority, SchemaVersion, ViolationCode,
};
use etx_ingestion_core::schema::{JsonType, SchemaRegistry, parse_item};
use serde_json::{Value, json};

fn registry() -> SchemaRegistry {
    SchemaRegistry::load().unwrap()
}

fn stats_payload() -> Value {
    json!({
        "indicator": "failed_transactions",
        "transaction_kind": "e_payment",
        "value": 15,
        "unit": "count",
        "failure_reasons": [
            { "reason_code": "timeout", "count": 10 },
            { "reason_code": "insufficient_funds", "count": 5 }
        ]
    })
}

fn item(category: &str, payload: Value) -> Value {
    json!({
        "category": category,
        "schema_version": 1,
        "period": "2026-10",
        "classification": "internal",
        "payload": payload
    })
}

fn codes(v: &[FieldViolation]) -> Vec<(&str, ViolationCode)> {
    v.iter().map(|f| (f.path.as_str(), f.code)).collect()
}

#[test]
fn a_valid_item_gives_its_envelope_with_defaults() {
    let reg = registry();
    let (env, payload) = parse_item(&reg, &item("statistics", stats_payload())).unwrap();
    assert_eq!(env.category, Category::Statistics);
    assert_eq!(env.schema_version, SchemaVersion::V1);
    assert_eq!(env.period, Period::parse("2026-10").unwrap());
    assert_eq!(env.classification, Classification::Internal);
    assert_eq!(env.priority, Priority::Normal);
    assert_eq!(env.form, Form::Raw);
    assert_eq!(env.idempotency_key, None);
    assert_eq!(payload, stats_payload());
}

#[test]
fn schema_version_may_be_an_integer_or_a_string() {
    let reg = registry();
    for v in [json!(1), json!("1"), json!("v1"), json!("V1")] {
        let mut it = item("statistics", stats_payload());
        it["schema_version"] = v.clone();
        assert!(parse_item(&reg, &it).is_ok(), "{v}");
    }
    for v in [json!(0), json!(-1), json!(1.5), json!("one"), json!("")] {
        let mut it = item("statistics", stats_payload());
        it["schema_version"] = v.clone();
        let err = parse_item(&reg, &it).unwrap_err();
        assert_eq!(
            codes(&err),
            vec![("/schema_version", ViolationCode::UnknownSchemaVersion)],
            "{v}"
        );
    }
    let mut it = item("statistics", stats_payload());
    it["schema_version"] = json!(true);
    assert_eq!(
        codes(&parse_item(&reg, &it).unwrap_err()),
        vec![("/schema_version", ViolationCode::Type)]
    );
}

#[test]
fn explicit_security_fields_are_kept() {
    let reg = registry();
    let mut it = item("statistics", stats_payload());
    it["priority"] = json!("high");
    it["form"] = json!("masked");
    it["classification"] = json!("secret");
    it["idempotency_key"] = json!("stat-2026-10-0001");
    let (env, _) = parse_item(&reg, &it).unwrap();
    assert_eq!(env.priority, Priority::High);
    assert_eq!(env.form, Form::Masked);
    assert_eq!(env.classification, Classification::Secret);
    assert_eq!(
        env.idempotency_key.map(|k| k.to_string()).as_deref(),
        Some("stat-2026-10-0001")
    );
}

#[test]
fn a_payload_with_three_errors_reports_all_three_with_paths() {
    let reg = registry();
    let mut p = stats_payload();
    p["value"] = json!("many");
    p["unit"] = json!("kg");
    p["dimensions"] = json!({ "province_code": "7" });
    let err = parse_item(&reg, &item("statistics", p)).unwrap_err();
    assert_eq!(
        codes(&err),
        vec![
            ("/payload/dimensions/province_code", ViolationCode::Format),
            ("/payload/unit", ViolationCode::Enum),
            ("/payload/value", ViolationCode::Type),
        ]
    );
}

#[test]
fn array_item_violations_carry_the_index() {
    let reg = registry();
    let mut p = stats_payload();
    p["failure_reasons"][0]["count"] = json!(-3);
    p["failure_reasons"][1]["count"] = json!("five");
    let err = parse_item(&reg, &item("statistics", p)).unwrap_err();
    assert_eq!(
        codes(&err),
        vec![
            ("/payload/failure_reasons/0/count", ViolationCode::TooSmall),
            ("/payload/failure_reasons/1/count", ViolationCode::Type),
        ]
    );
    assert_eq!(err[0].detail.as_deref(), Some("minimum 0"));
    assert_eq!(err[1].detail.as_deref(), Some("expected type: integer"));
}

#[test]
fn rule_codes_map_from_the_schema_keywords() {
    let reg = registry();
    let p = json!({
        "activity_type": "training_course",
        "title": "x".repeat(501),
        "organiser": "",
        "start_date": "05/09/2026",
        "participants_count": 10.5,
        "topics": [],
        "expert": { "full_name": "Phạm Văn An", "specialisation": "Chữ ký số", "citizen_id": "07919000012X", "nickname": "An" },
        "location": "79"
    });
    let err = parse_item(&reg, &item("workforce", p)).unwrap_err();
    assert_eq!(
        codes(&err),
        vec![
            ("/payload/expert/citizen_id", ViolationCode::Format),
            ("/payload/expert/nickname", ViolationCode::UnknownField),
            ("/payload/location", ViolationCode::UnknownField),
            ("/payload/organiser", ViolationCode::TooSmall),
            ("/payload/participants_count", ViolationCode::Type),
            ("/payload/start_date", ViolationCode::Format),
            ("/payload/title", ViolationCode::TooLarge),
        ]
    );
    let detail = |path: &str| err.iter().find(|v| v.path == path).and_then(|v| v.detail.clone());
    assert_eq!(
        detail("/payload/title").as_deref(),
        Some("maximum 500 characters")
    );
    assert_eq!(
        detail("/payload/organiser").as_deref(),
        Some("minimum 1 character")
    );
    assert_eq!(
        detail("/payload/start_date").as_deref(),
        Some("expected format: a date YYYY-MM-DD")
    );
    assert_eq!(
        detail("/payload/expert/citizen_id").as_deref(),
        Some("expected format: 12 digits")
    );
}

#[test]
fn missing_required_fields_are_reported_at_their_own_path() {
    let reg = registry();
    let err = parse_item(
        &reg,
        &item(
            "enforcement",
            json!({ "case_type": "complaint", "complainant": {} }),
        ),
    )
    .unwrap_err();
    assert_eq!(
        codes(&err),
        vec![
            ("/payload/case_number", ViolationCode::Required),
            ("/payload/complainant/full_name", ViolationCode::Required),
            ("/payload/description", ViolationCode::Required),
            ("/payload/opened_on", ViolationCode::Required),
            ("/payload/status", ViolationCode::Required),
        ]
    );
}

#[test]
fn state_secret_classification_is_refused_with_its_own_code() {
    let reg = registry();
    for label in ["state_secret", "Mật", "tối mật", "TUYỆT MẬT", "top-secret"] {
        let mut it = item("statistics", stats_payload());
        it["classification"] = json!(label);
        let err = parse_item(&reg, &it).unwrap_err();
        assert_eq!(
            codes(&err),
            vec![("/classification", ViolationCode::StateSecret)],
            "{label}"
        );
    }
    let mut it = item("statistics", stats_payload());
    it["classification"] = json!("restricted");
    assert_eq!(
        codes(&parse_item(&reg, &it).unwrap_err()),
        vec![("/classification", ViolationCode::Enum)]
    );
}

#[test]
fn unknown_category_skips_payload_validation() {
    let reg = registry();
    let err = parse_item(
        &reg,
        &item("weather", json!({ "anything": ["goes"], "value": "x" })),
    )
    .unwrap_err();
    assert_eq!(codes(&err), vec![("/category", ViolationCode::UnknownCategory)]);
    let mut it = item("statistics", json!({ "junk": 1 }));
    it["category"] = json!(7);
    assert_eq!(
        codes(&parse_item(&reg, &it).unwrap_err()),
        vec![("/category", ViolationCode::Type)]
    );
}

#[test]
fn unknown_version_skips_payload_validation() {
    let reg = registry();
    let mut it = item("policy", json!({ "junk": 1 }));
    it["schema_version"] = json!("v7");
    let err = parse_item(&reg, &it).unwrap_err();
    assert_eq!(
        codes(&err),
        vec![("/schema_version", ViolationCode::UnknownSchemaVersion)]
    );
    assert_eq!(err[0].detail.as_deref(), Some("known versions for policy: 1"));
    let v7 = SchemaVersion::parse("7").unwrap();
    let direct = reg.validate(Category::Policy, v7, &json!({})).unwrap_err();
    assert_eq!(
        codes(&direct),
        vec![("/schema_version", ViolationCode::UnknownSchemaVersion)]
    );
}

#[test]
fn envelope_errors_and_unknown_fields_are_all_reported() {
    let reg = registry();
    let it = json!({
        "category": "statistics",
        "schema_version": 1,
        "period": "2026-Q5",
        "classification": 3,
        "priority": "urgent",
        "form": "partial",
        "idempotency_key": "",
        "org": "x",
        "payload": stats_payload()
    });
    let err = parse_item(&reg, &it).unwrap_err();
    assert_eq!(
        codes(&err),
        vec![
            ("/classification", ViolationCode::Type),
            ("/form", ViolationCode::Enum),
            ("/idempotency_key", ViolationCode::Format),
            ("/org", ViolationCode::UnknownField),
            ("/period", ViolationCode::Format),
            ("/priority", ViolationCode::Enum),
        ]
    );
    let missing = parse_item(&reg, &json!({})).unwrap_err();
    assert_eq!(
        codes(&missing),
        vec![
            ("/category", ViolationCode::Required),
            ("/classification", ViolationCode::Required),
            ("/payload", ViolationCode::Required),
            ("/period", ViolationCode::Required),
            ("/schema_version", ViolationCode::Required),
        ]
    );
    assert_eq!(
        codes(&parse_item(&reg, &json!([1])).unwrap_err()),
        vec![("", ViolationCode::Type)]
    );
    let mut it = item("statistics", json!("not an object"));
    it["priority"] = Value::Null;
    assert_eq!(
        codes(&parse_item(&reg, &it).unwrap_err()),
        vec![
            ("/payload", ViolationCode::Type),
            ("/priority", ViolationCode::Type)
        ]
    );
}

#[test]
fn unknown_field_names_are_escaped_as_json_pointer_segments() {
    let reg = registry();
    let mut p = stats_payload();
    p["a/b~c"] = json!(1);
    let err = parse_item(&reg, &item("statistics", p)).unwrap_err();
    assert_eq!(
        codes(&err),
        vec![("/payload/a~1b~0c", ViolationCode::UnknownField)]
    );
}

#[test]
fn details_never_echo_the_submitted_value() {
    const CANARY: &str = "CANARY-7f3a";
    let reg = registry();
    let payload = json!({
        "indicator": CANARY,
        "transaction_kind": "e_payment",
        "value": CANARY,
        "unit": "count",
        "dimensions": { "province_code": CANARY, "sector": CANARY },
        "failure_reasons": [{ "reason_code": CANARY, "count": CANARY }],
        "measured_at": CANARY,
        "note": CANARY.repeat(300)
    });
    let it = json!({
        "category": "statistics",
        "schema_version": 1,
        "period": CANARY,
        "classification": CANARY,
        "priority": CANARY,
        "form": CANARY,
        "idempotency_key": format!("{CANARY} x"),
        "payload": payload
    });
    let err = parse_item(&reg, &it).unwrap_err();
    assert!(err.len() >= 12, "{err:#?}");
    for v in &err {
        let detail = v.detail.as_deref().unwrap_or_default();
        assert!(!detail.is_empty(), "{}", v.path);
        assert!(!detail.contains("CANARY"), "{}: {detail}", v.path);
    }
    let bad_category = json!({ "category": CANARY, "schema_version": CANARY, "period": "2026",
        "classification": "public", "payload": {} });
    for v in parse_item(&reg, &bad_category).unwrap_err() {
        assert!(!v.detail.unwrap_or_default().contains("CANARY"), "{}", v.path);
    }
}

#[test]
fn type_at_reports_types_for_the_xml_converter() {
    let reg = registry();
    let v1 = SchemaVersion::V1;
    assert_eq!(
        reg.type_at(Category::Statistics, v1, &["value"]),
        Some(JsonType::Number)
    );
    assert_eq!(
        reg.type_at(Category::Statistics, v1, &["failure_reasons", "0", "count"]),
        Some(JsonType::Integer)
    );
    assert_eq!(
        reg.type_at(Category::Enforcement, v1, &["incident"]),
        Some(JsonType::Object)
    );
    assert_eq!(
        reg.type_at(Category::Enforcement, v1, &["incident", "detected_at"]),
        Some(JsonType::String)
    );
    assert_eq!(
        reg.type_at(Category::Enforcement, v1, &["legal_basis"]),
        Some(JsonType::Array)
    );
    assert_eq!(reg.type_at(Category::Workforce, v1, &["unknown"]), None);
}

#[test]
fn schemas_are_published_for_every_category() {
    let reg = registry();
    for c in Category::ALL {
        let latest = reg.latest(c);
        assert!(reg.versions(c).contains(&latest));
        let doc = reg.json_schema(c, latest).unwrap();
        assert_eq!(
            doc["$schema"],
            json!("https://json-schema.org/draft/2020-12/schema")
        );
        assert!(doc["title"].is_string() && doc["description"].is_string());
    }
}
