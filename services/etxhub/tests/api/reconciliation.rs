//! Reconciliation's HTTP API through the whole application (issue 5 §4–5, R-REC, R-DATA-3):
//! a ministry and a province report the same fact with values beyond tolerance, the conflict
//! reaches the province's operators' queue with both versions and their provenance, is resolved
//! once (a rejected pair is never merged again); canonical records show where every value came
//! from; an approved period is read-only until reopened with a reason; completeness counts every
//! organisation. Everything is read within the caller's organisation subtree.

use crate::both_backends;
use crate::helpers::*;
use crate::users::{Session, enrolled};
use etx_domain::authz::roles;
use etx_domain::{OrgCode, OrgKind, OrgName, SystemName};
use etx_identity_core::NewSource;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

/// Onboards a source of `kind` and returns its API key.
async fn onboard_kind(app: &TestApp, code: &str, name: &str, kind: OrgKind) -> String {
    let req = NewSource {
        org_code: OrgCode::parse(code).unwrap(),
        org_name: OrgName::parse(name).unwrap(),
        org_kind: kind,
        parent: None,
        valid_from: None,
        system_name: SystemName::parse("Hệ thống báo cáo thống kê").unwrap(),
    };
    etxhub::onboard(&app.cfg, req).await.unwrap().api_key
}

/// An e-transaction count for Thành phố Hồ Chí Minh (province code 79), October 2026.
fn count(kind: &str, value: f64, key: &str) -> Value {
    let mut r = stats_record(value, Some(key));
    r["payload"]["transaction_kind"] = json!(kind);
    r
}

/// Submits `body` with `key`; returns (record id, receipt id).
async fn submit(app: &TestApp, key: &str, body: &Value) -> (String, String) {
    let r = app
        .client
        .post(app.url("/api/v1/records"))
        .header("x-api-key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let receipt: Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{receipt}");
    (
        receipt["record_ids"][0].as_str().unwrap().to_owned(),
        receipt["receipt_id"].as_str().unwrap().to_owned(),
    )
}

/// The reconciliation stage's decision on `record` and its canonical record: waits (up to 30 s).
async fn outcome(app: &TestApp, record: &str) -> (String, Option<String>) {
    let (kind, canonical) = reconciliation_outcome(app, record).await;
    (kind, canonical.map(|c| c.to_string()))
}

/// Calls the API as a signed-in person, in `lang` when given; returns the status, the
/// `Content-Type` and the JSON body.
async fn call_as(
    app: &TestApp,
    who: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
    lang: Option<&str>,
) -> (u16, String, Value) {
    let mut r = app
        .client
        .request(method.clone(), app.url(path))
        .header("cookie", &who.cookie);
    if method != Method::GET {
        r = r.header("x-csrf-token", &who.csrf);
    }
    if let Some(l) = lang {
        r = r.header("accept-language", l);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, resp.json().await.unwrap_or(Value::Null))
}

async fn post(app: &TestApp, who: &Session, path: &str, body: Value) -> (u16, Value) {
    send_as(app, who, Method::POST, path, Some(body)).await
}

fn ids(list: &Value, field: &str) -> BTreeSet<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("an array: {list}"))
        .iter()
        .map(|x| x[field].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts a problem in Vietnamese (default) and English: status, code, the translated
/// title, and the violation at `path` (when given) with its code.
#[allow(clippy::too_many_arguments)]
async fn assert_problem(
    app: &TestApp,
    who: &Session,
    method: Method,
    path: &str,
    body: Option<Value>,
    (status, code): (u16, &str),
    (title_vi, title_en): (&str, &str),
    violation: Option<(&str, &str)>,
) {
    for (lang, title) in [(None, title_vi), (Some("en"), title_en)] {
        let (s, content_type, problem) = call_as(app, who, method.clone(), path, body.clone(), lang).await;
        assert_eq!(
            (s, problem["code"].as_str()),
            (status, Some(code)),
            "{method} {path} ({lang:?}): {problem}"
        );
        assert_eq!(content_type, "application/problem+json", "{path}");
        assert_eq!(problem["title"], title, "{path} {lang:?}: {problem}");
        if let Some((pointer, vcode)) = violation {
            let v = problem["violations"]
                .as_array()
                .unwrap_or_else(|| panic!("violations: {problem}"))
                .iter()
                .find(|v| v["path"] == pointer)
                .unwrap_or_else(|| panic!("no violation at {pointer}: {problem}"));
            assert_eq!(v["code"], vcode, "{problem}");
            assert!(!v["message"].as_str().unwrap().is_empty());
        }
    }
}

/// Asserts that GETting `path` is refused as `400 invalid_parameter`, in both languages, with
/// the `violation` when given.
async fn assert_bad_parameter(app: &TestApp, who: &Session, path: &str, violation: Option<(&str, &str)>) {
    assert_problem(
        app,
        who,
        Method::GET,
        path,
        None,
        (400, "invalid_parameter"),
        ("Tham số không hợp lệ", "A parameter is not valid"),
        violation,
    )
    .await;
}

/// Asserts that POSTing `body` to `path` is refused as `422 validation_failed`, in both
/// languages, with `violation`.
async fn assert_invalid_body(app: &TestApp, who: &Session, path: &str, body: Value, violation: (&str, &str)) {
    assert_problem(
        app,
        who,
        Method::POST,
        path,
        Some(body),
        (422, "validation_failed"),
        ("Dữ liệu không hợp lệ", "The data is not valid"),
        Some(violation),
    )
    .await;
}

both_backends!(
    conflicts_are_queued_inspected_and_resolved_once_with_their_provenance,
    |app: TestApp| async move {
        let key_m = onboard_kind(&app, "BO-TC", "Bộ Tài chính", OrgKind::Ministry).await;
        let (_, op_a, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "van.hanh.hcm", roles::OPERATOR).await;
        let (_, analyst_a, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "phan.tich.hcm", roles::ANALYST).await;
        let (_, op_b, _, _, _) = enrolled(&app, "SO-KHCN-HN", "van.hanh.hn", roles::OPERATOR).await;

        // The Ministry reports e-invoices for province 79; then the city itself, twice as many.
        let (rec_m, receipt_m) = submit(&app, &key_m, &count("e_invoice", 1000.0, "m-1")).await;
        let (kind, canonical) = outcome(&app, &rec_m).await;
        assert_eq!(kind, "new_canonical");
        let c1 = canonical.unwrap();
        assert_eq!(c1, rec_m, "a canonical record is named after its oldest record");
        let (rec_a, receipt_a) = submit(&app, &app.key_a, &count("e_invoice", 2000.0, "a-1")).await;
        assert_eq!(outcome(&app, &rec_a).await.0, "conflict");

        // The queue of the city's operators holds it; another province's does not.
        let (status, page) = get_as(&app, &op_a, "/api/v1/conflicts?status=open").await;
        assert_eq!(status, 200, "{page}");
        let listed = page["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == rec_a.as_str())
            .unwrap_or_else(|| panic!("conflict {rec_a} not queued: {page}"))
            .clone();
        assert_eq!(listed["reason"], "values_disagree");
        assert_eq!(listed["status"], "open");
        assert_eq!(listed["canonical_id"], c1.as_str());
        assert_eq!(
            (listed["category"].as_str(), listed["period"].as_str()),
            (Some("statistics"), Some("2026-10"))
        );
        let (status, page) = get_as(&app, &op_b, "/api/v1/conflicts").await;
        assert_eq!(status, 200);
        assert!(
            !ids(&page["conflicts"], "id").contains(&rec_a),
            "another province sees the city's conflict: {page}"
        );
        let conflict_path = format!("/api/v1/conflicts/{rec_a}");
        let resolve_path = format!("{conflict_path}/resolve");
        assert_eq!(get_as(&app, &op_b, &conflict_path).await.0, 404);
        let (status, problem) = post(&app, &op_b, &resolve_path, json!({"action": "reject"})).await;
        assert_code(status, &problem, (404, "not_found"));

        // Inspect: both versions, each with its provenance.
        let (status, c) = get_as(&app, &op_a, &conflict_path).await;
        assert_eq!(status, 200, "{c}");
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("open"), Some("values_disagree"))
        );
        let incoming = &c["incoming"];
        assert_eq!(incoming["record_id"], rec_a.as_str());
        assert_eq!(incoming["receipt_id"], receipt_a.as_str());
        assert_eq!(incoming["org_kind"], "province");
        assert_eq!(incoming["payload"]["value"].as_f64(), Some(2000.0));
        assert!(incoming["masking_policy_version"].as_u64().unwrap() >= 1, "{c}");
        assert!(
            incoming["rule"].is_string() && incoming["system_id"].is_string(),
            "{c}"
        );
        let existing = &c["existing"];
        assert_eq!(existing["id"], c1.as_str());
        assert_eq!(existing["value"]["value"].as_f64(), Some(1000.0));
        assert_eq!(existing["value_origin"]["origin"], "rule");
        let mine = &existing["contributions"][0];
        assert_eq!(
            (mine["record_id"].as_str(), mine["receipt_id"].as_str()),
            (Some(rec_m.as_str()), Some(receipt_m.as_str()))
        );
        assert_eq!(
            (mine["org_kind"].as_str(), mine["rule"].as_str()),
            (Some("ministry"), Some("new"))
        );
        assert_eq!(c["differences"][0]["field"], "value", "{c}");
        assert_eq!(c["differences"][0]["against_record_id"], rec_m.as_str());
        assert!(c["differences"][0]["tolerance"]["relative"].as_f64().unwrap() > 0.0);
        let org_a = incoming["org_id"].as_str().unwrap().to_owned();
        assert_eq!(listed["org_id"], org_a.as_str());

        // An analyst reads but does not resolve.
        assert_eq!(get_as(&app, &analyst_a, &conflict_path).await.0, 200);
        let (status, problem) = post(&app, &analyst_a, &resolve_path, json!({"action": "reject"})).await;
        assert_code(status, &problem, (403, "forbidden"));

        // Bad input, in Vietnamese and in English.
        for (path, violation) in [
            ("/api/v1/conflicts/not-a-uuid", None),
            ("/api/v1/canonical-records/12345", None),
            ("/api/v1/conflicts?colour=red", Some(("colour", "unknown_field"))),
            ("/api/v1/conflicts?limit=0", Some(("query:limit", "too_small"))),
            (
                "/api/v1/conflicts?category=weather",
                Some(("query:category", "unknown_category")),
            ),
        ] {
            assert_bad_parameter(&app, &op_a, path, violation).await;
        }
        for (body, violation) in [
            (json!({"action": "keep_existing"}), ("/action", "enum")),
            (
                json!({"action": "reject", "note": "x".repeat(2001)}),
                ("/note", "too_large"),
            ),
            (
                json!({"action": "choose", "record_id": uuid::Uuid::now_v7()}),
                ("/record_id", "invalid"),
            ),
            (
                json!({"action": "merge", "values": {"/no_such_field": 1}}),
                ("/values", "unknown_field"),
            ),
        ] {
            assert_invalid_body(&app, &op_a, &resolve_path, body, violation).await;
        }
        let (status, problem) = post(
            &app,
            &op_a,
            &resolve_path,
            json!({"action": "reject", "extra": 1}),
        )
        .await;
        assert_code(status, &problem, (422, "validation_failed"));
        // Nothing of it echoes what was sent.
        assert!(!problem.to_string().contains("extra\":1"));

        // Resolved by choosing the Ministry's version, with a note; the decision stands.
        let (status, resolved) = post(
            &app,
            &op_a,
            &resolve_path,
            json!({
                "action": "choose", "record_id": rec_m, "note": "Theo số liệu đối chiếu của Bộ Tài chính"
            }),
        )
        .await;
        assert_eq!(status, 200, "{resolved}");
        assert_eq!(resolved["status"], "resolved");
        assert_eq!(
            (
                resolved["resolution"]["action"].as_str(),
                resolved["resolution"]["record_id"].as_str()
            ),
            (Some("choose"), Some(rec_m.as_str()))
        );
        assert_eq!(resolved["canonical"]["id"], c1.as_str());
        assert_eq!(resolved["canonical"]["value"]["value"].as_f64(), Some(1000.0));
        assert_eq!(resolved["canonical"]["value_origin"]["origin"], "operator");
        assert_eq!(
            resolved["canonical"]["value_origin"]["conflict_id"],
            rec_a.as_str()
        );
        let (status, problem) = post(&app, &op_a, &resolve_path, json!({"action": "reject"})).await;
        assert_code(status, &problem, (409, "already_exists"));
        assert!(
            problem["detail"].as_str().unwrap().contains("already resolved"),
            "{problem}"
        );
        let (_, c) = get_as(&app, &op_a, &conflict_path).await;
        assert_eq!(c["status"], "resolved");
        assert_eq!(c["resolution"]["note"], "Theo số liệu đối chiếu của Bộ Tài chính");
        let (_, open) = get_as(&app, &op_a, "/api/v1/conflicts?status=open").await;
        assert!(!ids(&open["conflicts"], "id").contains(&rec_a));
        let (_, done) = get_as(
            &app,
            &op_a,
            "/api/v1/conflicts?status=resolved&category=statistics&period=2026-10&order=newest",
        )
        .await;
        assert!(ids(&done["conflicts"], "id").contains(&rec_a), "{done}");

        // The canonical record with its full provenance.
        let canonical_path = format!("/api/v1/canonical-records/{c1}");
        let (status, record) = get_as(&app, &op_a, &canonical_path).await;
        assert_eq!(status, 200, "{record}");
        assert_eq!(record["merged_into"], Value::Null);
        assert_eq!(
            ids(&record["contributions"], "record_id"),
            BTreeSet::from([rec_m.clone(), rec_a.clone()])
        );
        assert_eq!(
            ids(&record["contributions"], "receipt_id"),
            BTreeSet::from([receipt_m.clone(), receipt_a.clone()])
        );
        assert_eq!(
            ids(&record["contributions"], "rule"),
            BTreeSet::from(["new".to_owned(), "operator_choose".to_owned()])
        );
        for x in record["contributions"].as_array().unwrap() {
            assert!(x["masking_policy_version"].as_u64().unwrap() >= 1, "{x}");
            assert_eq!(x["form"], "raw");
            assert!(x["content_hash"].as_str().unwrap().starts_with("sha256:"), "{x}");
        }
        assert_eq!(record["sources"].as_array().unwrap().len(), 2);
        assert_eq!(get_as(&app, &op_b, &canonical_path).await.0, 404);
        let (_, page) = get_as(
            &app,
            &op_a,
            "/api/v1/canonical-records?category=statistics&period=2026-10",
        )
        .await;
        assert!(ids(&page["records"], "id").contains(&c1), "{page}");
        let (_, page) = get_as(&app, &op_b, "/api/v1/canonical-records").await;
        assert!(!ids(&page["records"], "id").contains(&c1), "{page}");

        // A rejected pair is never merged again.
        let (rec_m2, _) = submit(&app, &key_m, &count("e_contract", 500.0, "m-2")).await;
        let c2 = outcome(&app, &rec_m2).await.1.unwrap();
        let (rec_a2, _) = submit(&app, &app.key_a, &count("e_contract", 900.0, "a-2")).await;
        assert_eq!(outcome(&app, &rec_a2).await.0, "conflict");
        let (status, rejected) = post(
            &app,
            &op_a,
            &format!("/api/v1/conflicts/{rec_a2}/resolve"),
            json!({"action": "reject"}),
        )
        .await;
        assert_eq!(status, 200, "{rejected}");
        let own = rejected["canonical"]["id"].as_str().unwrap().to_owned();
        assert_ne!(own, c2, "the rejected record founds its own canonical record");
        // The city corrects its figure to the Ministry's: still not merged into the Ministry's.
        let (rec_a3, _) = submit(&app, &app.key_a, &count("e_contract", 500.0, "a-3")).await;
        let (kind, canonical) = outcome(&app, &rec_a3).await;
        assert_eq!(
            (kind.as_str(), canonical.as_deref()),
            ("revision", Some(own.as_str()))
        );
        // The city is no contributor of the Ministry's record (404); the hub sees it unchanged.
        let ministry_path = format!("/api/v1/canonical-records/{c2}");
        assert_eq!(get_as(&app, &op_a, &ministry_path).await.0, 404);
        let (_, admin, _, _, _) = enrolled(&app, "SO-KHCN-HN", "quan.tri.hn", roles::SYSTEM_ADMIN).await;
        let (_, ministry) = get_as(&app, &admin, &ministry_path).await;
        assert_eq!(
            ids(&ministry["contributions"], "record_id"),
            BTreeSet::from([rec_m2]),
            "{ministry}"
        );
        let (_, own_record) = get_as(&app, &op_a, &format!("/api/v1/canonical-records/{own}")).await;
        assert_eq!(
            ids(&own_record["contributions"], "record_id"),
            BTreeSet::from([rec_a2.clone(), rec_a3])
        );
        // Pages follow each other without overlap, in every order.
        for order in ["priority", "newest", "oldest"] {
            let (status, first) =
                get_as(&app, &op_a, &format!("/api/v1/conflicts?order={order}&limit=1")).await;
            assert_eq!(status, 200, "{first}");
            let cursor = first["next_cursor"].as_str().expect("two conflicts").to_owned();
            let (status, second) = get_as(
                &app,
                &op_a,
                &format!("/api/v1/conflicts?order={order}&limit=1&cursor={cursor}"),
            )
            .await;
            assert_eq!(status, 200, "{second}");
            assert_ne!(
                first["conflicts"][0]["id"], second["conflicts"][0]["id"],
                "{order}"
            );
            assert_eq!(second["next_cursor"], Value::Null, "{order}: {second}");
        }
        let (_, newest) = get_as(&app, &op_a, "/api/v1/conflicts?order=newest&limit=1").await;
        assert_eq!(newest["conflicts"][0]["id"], rec_a2.as_str());
        let (_, first) = get_as(&app, &op_a, "/api/v1/canonical-records?limit=1").await;
        let cursor = first["next_cursor"].as_str().expect("more than one").to_owned();
        let (_, second) = get_as(
            &app,
            &op_a,
            &format!("/api/v1/canonical-records?limit=1&cursor={cursor}"),
        )
        .await;
        assert_ne!(first["records"][0]["id"], second["records"][0]["id"]);
        // Connected systems never reach reconciliation's API.
        assert_eq!(app.get("/api/v1/conflicts", &app.key_a).await.status(), 403);
    }
);

both_backends!(
    an_approved_period_is_read_only_until_reopened_and_completeness_counts_every_organisation,
    |app: TestApp| async move {
        let key_m = onboard_kind(&app, "BO-TC", "Bộ Tài chính", OrgKind::Ministry).await;
        let (_, op_a, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "van.hanh.hcm", roles::OPERATOR).await;
        let (_, op_b, _, _, _) = enrolled(&app, "SO-KHCN-HN", "van.hanh.hn", roles::OPERATOR).await;
        let (_, admin, _, _, _) = enrolled(&app, "SO-KHCN-HN", "quan.tri.hn", roles::SYSTEM_ADMIN).await;
        let org_a = org_id_of(&app, &app.key_a).await;
        let org_b = org_id_of(&app, &app.key_b).await;
        let org_m = org_id_of(&app, &key_m).await;

        // A canonical record, and an open conflict of the city, in statistics 2026-10.
        let (rec_m, _) = submit(&app, &key_m, &count("e_invoice", 1000.0, "m-1")).await;
        let c1 = outcome(&app, &rec_m).await.1.unwrap();
        let (rec_m2, _) = submit(&app, &key_m, &count("digital_signature", 100.0, "m-2")).await;
        outcome(&app, &rec_m2).await;
        let (rec_a, _) = submit(&app, &app.key_a, &count("digital_signature", 300.0, "a-1")).await;
        assert_eq!(outcome(&app, &rec_a).await.0, "conflict");
        // The Ministry's canonical record: the hub reads it, the city (no contributor) does not.
        let (_, before) = get_as(&app, &admin, &format!("/api/v1/canonical-records/{c1}")).await;
        assert_eq!(before["id"], c1.as_str(), "{before}");
        assert_eq!(
            get_as(&app, &op_a, &format!("/api/v1/canonical-records/{c1}"))
                .await
                .0,
            404
        );

        // The city's operator approves the city's October statistics.
        let period = json!({"category": "statistics", "period": "2026-10"});
        let (status, approved) = post(&app, &op_a, "/api/v1/periods/approve", period.clone()).await;
        assert_eq!(status, 200, "{approved}");
        assert_eq!(
            (
                approved["state"].as_str(),
                approved["read_only"].as_bool(),
                approved["scope"].as_str()
            ),
            (Some("approved"), Some(true), Some("org"))
        );
        assert_eq!(approved["org_id"], org_a.as_str());
        let (status, problem) = post(&app, &op_a, "/api/v1/periods/approve", period.clone()).await;
        assert_code(status, &problem, (409, "already_exists"));
        let (_, listed) = get_as(&app, &op_a, "/api/v1/periods?category=statistics&period=2026-10").await;
        assert_eq!(listed["periods"].as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed["periods"][0]["state"], "approved");
        let (_, other) = get_as(&app, &op_b, "/api/v1/periods?category=statistics").await;
        assert_eq!(other["periods"], json!([]), "another province does not see it");
        // Everyone's period is the hub's operators' to approve; another province is not there.
        let (status, problem) = post(
            &app,
            &op_a,
            "/api/v1/periods/approve",
            json!({"category": "statistics", "period": "2026-10", "scope": "all"}),
        )
        .await;
        assert_code(status, &problem, (403, "forbidden"));
        let (status, _) = post(
            &app,
            &op_a,
            "/api/v1/periods/approve",
            json!({"category": "statistics", "period": "2026-10", "org_id": org_b}),
        )
        .await;
        assert_eq!(status, 404);
        assert_invalid_body(
            &app,
            &op_a,
            "/api/v1/periods/approve",
            json!({"category": "statistics", "period": "2026-13"}),
            ("/period", "format"),
        )
        .await;

        // Read-only: a new figure of the city is held and changes nothing; its conflict waits.
        let (rec_a2, _) = submit(&app, &app.key_a, &count("e_invoice", 2500.0, "a-2")).await;
        assert_eq!(outcome(&app, &rec_a2).await.0, "held");
        let (_, after) = get_as(&app, &admin, &format!("/api/v1/canonical-records/{c1}")).await;
        assert_eq!(
            after, before,
            "an approved period's canonical record does not change"
        );
        let resolve_path = format!("/api/v1/conflicts/{rec_a}/resolve");
        let (status, problem) = post(
            &app,
            &op_a,
            &resolve_path,
            json!({"action": "choose", "record_id": rec_m2}),
        )
        .await;
        assert_code(status, &problem, (409, "already_exists"));
        assert!(
            problem["detail"].as_str().unwrap().contains("approved"),
            "{problem}"
        );

        // Reopened with a reason: the held figure is reconciled and the conflict resolvable.
        let mut reopen = period.clone();
        reopen["reason"] = json!("ngắn");
        assert_invalid_body(
            &app,
            &op_a,
            "/api/v1/periods/reopen",
            reopen.clone(),
            ("/reason", "too_small"),
        )
        .await;
        reopen["reason"] = json!("Sở Khoa học và Công nghệ gửi bổ sung số liệu theo công văn 12/SKHCN");
        let (status, reopened) = post(&app, &op_a, "/api/v1/periods/reopen", reopen.clone()).await;
        assert_eq!(status, 200, "{reopened}");
        assert_eq!(
            (
                reopened["period"]["state"].as_str(),
                reopened["period"]["read_only"].as_bool()
            ),
            (Some("reopened"), Some(false))
        );
        assert!(
            reopened["period"]["reason"]
                .as_str()
                .unwrap()
                .contains("12/SKHCN")
        );
        assert_eq!(reopened["period"]["history"].as_array().unwrap().len(), 2);
        let mut again: BTreeSet<String> = ids(&reopened["held"]["reconciled"], "record_id");
        again.extend(
            reopened["held"]["pending"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_owned()),
        );
        assert_eq!(again, BTreeSet::from([rec_a2.clone()]), "{reopened}");
        assert_ne!(outcome(&app, &rec_a2).await.0, "held");
        let (status, problem) = post(&app, &op_a, "/api/v1/periods/reopen", reopen).await;
        assert_code(status, &problem, (409, "already_exists"));
        let (status, body) = post(
            &app,
            &op_a,
            &resolve_path,
            json!({"action": "choose", "record_id": rec_m2}),
        )
        .await;
        assert_eq!(status, 200, "{body}");

        // Completeness: the hub sees every organisation once the replica has them all.
        let path = "/api/v1/completeness?category=statistics&period=2026-10&due=2026-10-01T00:00:00Z";
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let report = loop {
            let (status, report) = get_as(&app, &admin, path).await;
            assert_eq!(status, 200, "{report}");
            let orgs = ids(&report["organisations"], "org_id");
            if [&org_a, &org_b, &org_m].iter().all(|o| orgs.contains(*o)) {
                break report;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "organisations missing: {report}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let of = |org: &str| {
            report["organisations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["org_id"] == org)
                .unwrap()
                .clone()
        };
        let a = of(&org_a);
        assert_eq!(
            (
                a["expected"].as_u64(),
                a["received"].as_u64(),
                a["late"].as_u64(),
                a["missing"].as_u64()
            ),
            (Some(1), Some(1), Some(1), Some(0)),
            "{a}"
        );
        assert_eq!(a["items"][0]["status"], "late");
        assert!(a["items"][0]["first_record_id"].is_string());
        let b = of(&org_b);
        assert_eq!(
            (
                b["expected"].as_u64(),
                b["received"].as_u64(),
                b["missing"].as_u64()
            ),
            (Some(1), Some(0), Some(1)),
            "{b}"
        );
        assert_eq!(b["items"][0]["status"], "missing");
        assert_eq!(of(&org_m)["received"], 1);
        assert!(report["totals"]["missing"].as_u64().unwrap() >= 1);
        assert_eq!(report["due"], "2026-10-01T00:00:00Z");
        // A province's operator: its own organisation only; the default deadline.
        let (status, mine) = get_as(&app, &op_a, "/api/v1/completeness?period=2026-10").await;
        assert_eq!(status, 200, "{mine}");
        assert_eq!(
            ids(&mine["organisations"], "org_id"),
            BTreeSet::from([org_a.clone()])
        );
        assert_eq!(
            mine["organisations"][0]["expected"], 4,
            "every category by default"
        );
        assert_eq!(mine["organisations"][0]["received"], 1);
        assert_eq!(mine["due"], "2026-11-15T17:00:00Z");
        let (_, theirs) = get_as(
            &app,
            &op_b,
            "/api/v1/completeness?category=statistics&period=2026-10",
        )
        .await;
        assert_eq!(ids(&theirs["organisations"], "org_id"), BTreeSet::from([org_b]));
        let (status, problem) = get_as(&app, &op_a, "/api/v1/completeness").await;
        assert_code(status, &problem, (400, "invalid_parameter"));
    }
);
