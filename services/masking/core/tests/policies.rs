//! Masking policies (R-SEC-10, R-DATA-1, issue 5 §2): validation of policy documents with precise
//! violations, the built-in policy against the record schemas' `x-personal` fields, and policy
//! application to the contract examples of every category (`contracts/examples/records`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use etx_crypto::MasterKey;
use etx_domain::{Category, ViolationCode};
use etx_masking_core::{
    Audience, BUILTIN_POLICY, Detector, FindingKind, Masker, MaskingPolicy, OperatorKind, TokenKeys,
    looks_masked,
};
use serde_json::{Value, json};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

fn detector() -> Detector {
    Detector::new(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap())
}

fn masker() -> Masker {
    Masker::new(TokenKeys::new(MasterKey::generate("mk-masking-test")), detector())
}

fn builtin() -> MaskingPolicy {
    MaskingPolicy::parse(BUILTIN_POLICY).unwrap()
}

/// Every example record of a category: (file name, category, payload).
fn examples(category: &str) -> Vec<(String, Category, Value)> {
    let dir = repo().join("contracts/examples/records").join(category);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}", dir.display());
    files
        .into_iter()
        .map(|p| {
            let record: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            let cat = Category::parse(record["category"].as_str().unwrap()).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, cat, record["payload"].clone())
        })
        .collect()
}

/// The violations of a policy document as `(path, code)`.
fn violations(doc: Value) -> Vec<(String, ViolationCode)> {
    let err = MaskingPolicy::from_value(&doc).expect_err("the policy should be refused");
    let mut found: Vec<(String, ViolationCode)> =
        err.violations.into_iter().map(|v| (v.path, v.code)).collect();
    // By path only (stable), so the order does not depend on the JSON map's member order.
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn one_field(audiences: Value) -> Value {
    json!({"version": 2, "fields": [
        {"category": "workforce", "field": "/expert/citizen_id", "kind": "citizen_id", "audiences": audiences}
    ]})
}

#[test]
fn the_builtin_policy_is_valid_version_1() {
    let p = builtin();
    assert_eq!(p.version(), 1);
    assert_eq!(p.small_cell_k(), 5);
    assert!(p.description().is_some());
    assert_eq!(p.rules_for(Category::Policy).count(), 0);
}

#[test]
fn every_personal_field_of_the_record_schemas_has_a_rule_in_the_builtin_policy() {
    fn personal(schema: &Value, ptr: String, out: &mut Vec<String>) {
        if schema.get("x-personal") == Some(&Value::Bool(true)) {
            out.push(ptr.clone());
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                personal(v, format!("{ptr}/{k}"), out);
            }
        }
        if let Some(items) = schema.get("items") {
            personal(items, format!("{ptr}/*"), out);
        }
    }
    let policy = builtin();
    let mut total = 0;
    for category in Category::ALL {
        let path = repo().join(format!("contracts/schemas/{category}/v1.schema.json"));
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut fields = Vec::new();
        personal(&schema, String::new(), &mut fields);
        total += fields.len();
        for field in fields {
            assert!(
                policy
                    .rules_for(category)
                    .any(|r| r.field.as_str() == field && r.personal),
                "{category}{field} has no rule"
            );
        }
    }
    assert_eq!(total, 10, "the schemas changed: review the built-in policy");
}

#[test]
fn a_policy_document_is_validated_with_precise_violations() {
    use ViolationCode::*;
    assert_eq!(violations(json!([])), vec![("".to_owned(), Type)]);
    assert_eq!(
        violations(json!({"fields": [], "extra": 1})),
        vec![
            ("/extra".to_owned(), UnknownField),
            ("/version".to_owned(), Required)
        ]
    );
    assert_eq!(
        violations(json!({"version": 0})),
        vec![("/version".to_owned(), TooSmall)]
    );
    assert_eq!(
        violations(json!({"version": 1.5})),
        vec![("/version".to_owned(), Type)]
    );
    assert_eq!(
        violations(json!({"version": 1, "small_cell_k": 1})),
        vec![("/small_cell_k".to_owned(), TooSmall)]
    );
    assert_eq!(
        violations(json!({"version": 1, "fields": [
            {"category": "weather", "field": "expert", "audiences": {"default": {"op": "redact"}}},
            {"category": "workforce", "field": "/a~2", "audiences": {"default": {"op": "redact"}}},
            {"category": "workforce", "field": "/x", "kind": "name", "audiences": {"default": {"op": "redact"}}},
            {"category": "workforce", "field": "/y", "colour": "red", "audiences": {"default": {"op": "redact"}}},
            {"category": "workforce", "field": "/z"}
        ]})),
        vec![
            ("/fields/0/category".to_owned(), UnknownCategory),
            ("/fields/0/field".to_owned(), Format),
            ("/fields/1/field".to_owned(), Format),
            ("/fields/2/kind".to_owned(), Enum),
            ("/fields/3/colour".to_owned(), UnknownField),
            ("/fields/4/audiences".to_owned(), Required),
        ]
    );
}

#[test]
fn operators_are_validated_with_their_parameters() {
    use ViolationCode::*;
    let v = |audiences: Value| violations(one_field(audiences));
    let at = |aud: &str, rest: &str, code| (format!("/fields/0/audiences/{aud}{rest}"), code);
    assert_eq!(
        v(json!({"default": {"op": "scramble"}})),
        vec![at("default", "/op", Enum)]
    );
    assert_eq!(
        v(json!({"default": {"marker": "[X]"}})),
        vec![at("default", "/op", Required)]
    );
    assert_eq!(
        v(json!({"default": {"op": "redact", "keep_last": 2}})),
        vec![at("default", "/keep_last", UnknownField)]
    );
    assert_eq!(
        v(json!({"default": {"op": "partial", "keep_last": "four"}})),
        vec![at("default", "", Type)]
    );
    assert_eq!(
        v(json!({"default": {"op": "partial", "keep_first": 40, "keep_last": 40}})),
        vec![at("default", "/keep_last", TooLarge)]
    );
    assert_eq!(
        v(json!({"default": {"op": "partial", "mask_char": "a"}})),
        vec![at("default", "/mask_char", Format)]
    );
    assert_eq!(
        v(json!({"default": {"op": "redact", "marker": "hidden"}})),
        vec![at("default", "/marker", Format)]
    );
    assert_eq!(
        v(json!({"default": {"op": "token", "purpose": "Citizen ID"}})),
        vec![at("default", "", Format)]
    );
    assert_eq!(
        v(json!({"default": {"op": "generalise", "to": "district"}})),
        vec![at("default", "", Format)]
    );
    assert_eq!(
        v(json!({"default": {"op": "suppress_small_count", "k": 1}})),
        vec![at("default", "/k", Format)]
    );
    assert_eq!(
        v(json!({"analyst": {"op": "keep"}, "everyone": {"op": "redact"}})),
        vec![
            at("alert_text", "", Required),
            at("data_consumer", "", Required),
            at("everyone", "", UnknownField),
            at("public", "", Required),
        ]
    );
}

#[test]
fn shared_audiences_never_get_clear_or_reversible_personal_data() {
    use ViolationCode::*;
    let v = |audiences: Value| violations(one_field(audiences));
    let at = |aud: &str| (format!("/fields/0/audiences/{aud}"), Invalid);
    assert_eq!(
        v(json!({"default": {"op": "keep"}})),
        vec![at("default"), at("default"), at("default")]
    );
    assert_eq!(
        v(
            json!({"analyst": {"op": "reversible_token", "purpose": "citizen_id"},
                 "public": {"op": "reversible_token", "purpose": "citizen_id"},
                 "default": {"op": "redact"}})
        ),
        vec![at("public")]
    );
    // The analyst may keep or reversibly tokenise.
    assert!(
        MaskingPolicy::from_value(&one_field(json!({
            "analyst": {"op": "reversible_token", "purpose": "citizen_id"}, "default": {"op": "redact"}
        })))
        .is_ok()
    );
    // A field that is not personal (a count to suppress) may be kept for anyone.
    let counts = json!({"version": 1, "fields": [{"category": "statistics", "field": "/value", "personal": false,
        "audiences": {"public": {"op": "suppress_small_count"}, "default": {"op": "keep"}}}]});
    assert!(MaskingPolicy::from_value(&counts).is_ok());
    // Detected identifiers follow the same rule, and only identifier operators apply to them.
    assert_eq!(
        violations(json!({"version": 1, "detected": {
            "phone": {"analyst": {"op": "generalise", "to": "year"}, "default": {"op": "keep"}},
            "passport": {"default": {"op": "redact"}}
        }})),
        vec![
            ("/detected/passport".to_owned(), Enum),
            ("/detected/phone/analyst".to_owned(), Invalid),
            ("/detected/phone/default".to_owned(), Invalid),
            ("/detected/phone/default".to_owned(), Invalid),
            ("/detected/phone/default".to_owned(), Invalid),
        ]
    );
}

#[test]
fn a_field_appears_once_per_category() {
    let rule = json!({"category": "workforce", "field": "/expert/email", "audiences": {"default": {"op": "redact"}}});
    let doc = json!({"version": 1, "fields": [rule.clone(), rule]});
    assert_eq!(
        violations(doc),
        vec![("/fields/1/field".to_owned(), ViolationCode::Invalid)]
    );
}

#[test]
fn json_syntax_errors_are_one_violation_at_the_root() {
    let err = MaskingPolicy::parse("{\"version\": 1,").unwrap_err();
    assert_eq!(err.violations.len(), 1);
    assert_eq!(err.violations[0].path, "");
    assert_eq!(err.violations[0].code, ViolationCode::Format);
    assert!(err.to_string().contains("1 violation"));
}

#[test]
fn every_example_record_is_masked_for_every_audience_and_no_identifier_is_left() {
    let policy = builtin();
    let masker = masker();
    for category in ["policy", "statistics", "workforce", "enforcement"] {
        for (name, cat, payload) in examples(category) {
            for audience in Audience::ALL {
                let masked = masker.apply(&policy, audience, cat, &payload).unwrap();
                assert_eq!(masked.version, 1);
                let left = detector().check_declared_masked_with(&policy, cat, &masked.value);
                assert!(left.is_empty(), "{name} for {audience}: {left:?}");
            }
        }
    }
}

#[test]
fn records_without_personal_data_are_unchanged() {
    let policy = builtin();
    let masker = masker();
    for category in ["policy", "statistics"] {
        for (name, cat, payload) in examples(category) {
            for audience in Audience::ALL {
                let masked = masker.apply(&policy, audience, cat, &payload).unwrap();
                assert_eq!(masked.value, payload, "{name} for {audience}");
                assert!(masked.applied.is_empty(), "{name}");
            }
        }
    }
}

#[test]
fn a_complaint_is_masked_per_audience() {
    let (_, cat, payload) = examples("enforcement")
        .into_iter()
        .find(|(n, _, _)| n.starts_with("02-"))
        .unwrap();
    let policy = builtin();
    let masker = masker();
    let analyst = masker
        .apply(&policy, Audience::Analyst, cat, &payload)
        .unwrap()
        .value;
    let c = &analyst["complainant"];
    assert_eq!(c["full_name"], "T************");
    assert!(c["citizen_id"].as_str().unwrap().starts_with("tok_"));
    assert_eq!(c["phone"], "*********456");
    assert_eq!(c["email"], "t********@example.vn");
    assert_eq!(c["address"], "Phường Ba Đình, Thành phố Hà Nội");
    assert!(analyst["subject_tax_code"].as_str().unwrap().starts_with("tok_"));
    // Not personal: untouched.
    assert_eq!(analyst["description"], payload["description"]);
    assert_eq!(analyst["case_number"], payload["case_number"]);

    let consumer = masker
        .apply(&policy, Audience::DataConsumer, cat, &payload)
        .unwrap()
        .value;
    assert_ne!(
        consumer["complainant"]["citizen_id"], c["citizen_id"],
        "another purpose"
    );
    assert_eq!(consumer["complainant"]["address"], "Thành phố Hà Nội");
    assert_eq!(consumer["complainant"]["phone"], "[SĐT]");

    let public = masker.apply(&policy, Audience::Public, cat, &payload).unwrap();
    let p = &public.value["complainant"];
    assert_eq!(p["full_name"], "[REDACTED]");
    assert_eq!(p["citizen_id"], "[CCCD]");
    assert_eq!(p["address"], "[REDACTED]");
    assert_eq!(public.value["subject_tax_code"], "*******543");
    let applied: Vec<(&str, OperatorKind)> = public
        .applied
        .iter()
        .map(|a| (a.pointer.as_str(), a.operator))
        .collect();
    assert_eq!(
        applied,
        vec![
            ("/subject_tax_code", OperatorKind::Partial),
            ("/complainant/full_name", OperatorKind::Redact),
            ("/complainant/citizen_id", OperatorKind::Redact),
            ("/complainant/phone", OperatorKind::Redact),
            ("/complainant/email", OperatorKind::Redact),
            ("/complainant/address", OperatorKind::Redact),
        ]
    );
    // Every masked personal value is recognisable as masked (never a match key).
    for field in ["full_name", "citizen_id", "phone", "email", "address"] {
        assert!(looks_masked(p[field].as_str().unwrap()), "{field}");
    }
}

#[test]
fn an_expert_is_tokenised_consistently_across_records_for_analysts() {
    let (_, cat, payload) = examples("workforce")
        .into_iter()
        .find(|(n, _, _)| n.starts_with("02-"))
        .unwrap();
    let policy = builtin();
    let masker = masker();
    let a = masker
        .apply(&policy, Audience::Analyst, cat, &payload)
        .unwrap()
        .value;
    let b = masker
        .apply(&policy, Audience::Analyst, cat, &payload)
        .unwrap()
        .value;
    assert_eq!(a, b, "deterministic");
    // The same person's id found in an enforcement note gets the same token.
    let note =
        json!({"case_type": "complaint", "description": "Chuyên gia CCCD 079190000123 được mời làm chứng."});
    let e = masker
        .apply(&policy, Audience::Analyst, Category::Enforcement, &note)
        .unwrap();
    let token = a["expert"]["citizen_id"].as_str().unwrap();
    assert_eq!(
        e.value["description"],
        format!("Chuyên gia CCCD {token} được mời làm chứng.")
    );
    assert_eq!(e.applied[0].detected, Some(FindingKind::CitizenId));
    assert_eq!(e.applied[0].pointer, "/description");
}

#[test]
fn free_text_is_masked_by_detection_everywhere_the_policy_says_nothing() {
    let policy = builtin();
    let masker = masker();
    let payload = json!({
        "indicator": "failed_transactions",
        "value": 3,
        "failure_reasons": [
            {"reason_code": "timeout", "count": 3, "description": "Khách hàng 0912345678 phản ánh"},
            {"reason_code": "other", "count": 40}
        ],
        "note": "Liên hệ a.b@example.vn, STK 0011004012345, MST 0100233488."
    });
    let public = masker
        .apply(&policy, Audience::Public, Category::Statistics, &payload)
        .unwrap();
    assert_eq!(
        public.value["failure_reasons"][0]["description"],
        "Khách hàng [SĐT] phản ánh"
    );
    assert_eq!(public.value["note"], "Liên hệ [EMAIL], STK [STK], MST [MST].");
    // Small counts are suppressed for the public only, by the wildcard rule.
    assert_eq!(public.value["failure_reasons"][0]["count"], Value::Null);
    assert_eq!(public.value["failure_reasons"][1]["count"], 40);
    assert_eq!(public.value["value"], 3, "no rule for /value");
    let analyst = masker
        .apply(&policy, Audience::Analyst, Category::Statistics, &payload)
        .unwrap();
    assert_eq!(analyst.value["failure_reasons"][0]["count"], 3);
    assert_eq!(
        analyst.value["failure_reasons"][0]["description"],
        "Khách hàng *******678 phản ánh"
    );
    let kinds: Vec<Option<FindingKind>> = public.applied.iter().map(|a| a.detected).collect();
    assert_eq!(
        kinds,
        vec![
            None,
            Some(FindingKind::Phone),
            Some(FindingKind::Email),
            Some(FindingKind::BankAccount),
            Some(FindingKind::TaxCode)
        ]
    );
}

#[test]
fn alert_texts_are_masked_with_the_alert_audience() {
    let policy = builtin();
    let (text, findings) = masker()
        .mask_text(
            &policy,
            Audience::AlertText,
            "Đăng nhập lạ từ tài khoản của 0912345678 (a@b.vn)",
        )
        .unwrap();
    assert_eq!(text, "Đăng nhập lạ từ tài khoản của [SĐT] ([EMAIL])");
    assert_eq!(findings.len(), 2);
}

#[test]
fn values_of_odd_types_under_a_rule_are_masked_fail_safe() {
    let policy = builtin();
    let masker = masker();
    let payload = json!({"expert": {
        "full_name": {"first": "Thư", "last": "Nguyễn"},
        "citizen_id": 79190000123u64,
        "phone": null,
        "email": true
    }});
    let public = masker
        .apply(&policy, Audience::Public, Category::Workforce, &payload)
        .unwrap();
    let e = &public.value["expert"];
    assert_eq!(e["full_name"], "[REDACTED]");
    assert_eq!(e["citizen_id"], "[CCCD]");
    assert_eq!(e["phone"], Value::Null);
    assert_eq!(e["email"], "[EMAIL]");
    assert_eq!(public.applied.len(), 3, "null is not reported");
    let analyst = masker
        .apply(&policy, Audience::Analyst, Category::Workforce, &payload)
        .unwrap();
    assert!(
        analyst.value["expert"]["citizen_id"]
            .as_str()
            .unwrap()
            .starts_with("tok_")
    );
}

#[test]
fn a_record_declared_masked_that_still_carries_identifiers_is_flagged() {
    let policy = builtin();
    let (_, cat, raw) = examples("enforcement")
        .into_iter()
        .find(|(n, _, _)| n.starts_with("02-"))
        .unwrap();
    let mut found: Vec<(String, FindingKind)> = detector()
        .check_declared_masked_with(&policy, cat, &raw)
        .into_iter()
        .map(|f| (f.pointer, f.kind))
        .collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            // The address is already at commune level ("Phường Ba Đình, Thành phố Hà Nội"),
            // the analysts' generalisation, so it is not flagged.
            ("/complainant/citizen_id".to_owned(), FindingKind::CitizenId),
            ("/complainant/email".to_owned(), FindingKind::Email),
            ("/complainant/full_name".to_owned(), FindingKind::PersonalField),
            ("/complainant/phone".to_owned(), FindingKind::Phone),
            // The example's tax code fails its check digit, so no detector finds it; the
            // field rule does.
            ("/subject_tax_code".to_owned(), FindingKind::TaxCode),
        ]
    );
    // Without a policy only the detectors speak.
    let plain = detector().check_declared_masked(&raw);
    assert_eq!(plain.len(), 3, "{plain:?}");

    // Properly masked by a source: nothing to flag.
    let masked = json!({
        "case_type": "complaint",
        "subject_tax_code": "*******543",
        "complainant": {"full_name": "T************", "citizen_id": "********0456", "phone": "+84*****0456",
                        "email": "t***@example.vn", "address": "Thành phố Hà Nội"},
        "description": "Khiếu nại hợp đồng điện tử."
    });
    assert_eq!(
        detector().check_declared_masked_with(&policy, cat, &masked),
        vec![]
    );
    // One identifier left in the description is enough to hold the record.
    let mut leaky = masked.clone();
    leaky["description"] = json!("Người khiếu nại: 001085000456");
    let f = detector().check_declared_masked_with(&policy, cat, &leaky);
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].pointer.as_str(), f[0].kind),
        ("/description", FindingKind::CitizenId)
    );
    assert_eq!(etx_masking_core::check_declared_masked(&leaky).len(), 1);
    // A street address or a name in clear is flagged through the policy's field rules.
    let mut street = masked.clone();
    street["complainant"]["address"] = json!("12 Lê Lợi, Phường Ba Đình, Thành phố Hà Nội");
    street["complainant"]["full_name"] = json!("Trần Văn Hùng");
    let mut f: Vec<(String, FindingKind)> = detector()
        .check_declared_masked_with(&policy, cat, &street)
        .into_iter()
        .map(|f| (f.pointer, f.kind))
        .collect();
    f.sort();
    assert_eq!(
        f,
        vec![
            ("/complainant/address".to_owned(), FindingKind::PersonalField),
            ("/complainant/full_name".to_owned(), FindingKind::PersonalField),
        ]
    );
}
