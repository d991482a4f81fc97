//! Broken object-level authorisation (issue 4 §3, R-SEC-1): a key or a person of organisation
//! B gets `404` — never the object, never a different answer that would reveal it exists — for
//! every object of organisation A, over every endpoint of the published OpenAPI document that
//! takes an id. The table below must name every such endpoint: a new one fails this test until
//! it is added, with a fixture object and the foreign caller to try.

use crate::both_backends;
use crate::helpers::*;
use crate::users::{Session, add_user, enrolled};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// Who of organisation B tries.
#[derive(Clone, Copy, Debug)]
enum Foreign {
    /// B's connected system, by API key.
    Key,
    /// B's administrator, by session.
    Admin,
    /// B's operator, by session (a `system_admin` is one of the hub's own operators for
    /// reconciliation's API and reads every organisation's conflicts and canonical records).
    Operator,
}

both_backends!(
    no_object_of_one_organisation_is_reachable_by_another,
    |app: TestApp| async move {
        // Objects of organisation A.
        let receipt: Value = app
            .submit_json(&stats_record(7.0, Some("bola-1")))
            .await
            .json()
            .await
            .unwrap();
        let receipt_id = receipt["receipt_id"].as_str().unwrap().to_owned();
        let record_id = receipt["record_ids"][0].as_str().unwrap().to_owned();
        let line = stats_record(8.0, Some("bola-2")).to_string();
        let batch: Value = app
            .client
            .post(app.url("/api/v1/batches"))
            .header("x-api-key", &app.key_a)
            .header("content-type", "application/x-ndjson")
            .body(format!("{line}\n"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let batch_id = batch["batch_id"].as_str().expect("batch accepted").to_owned();
        let keys: Value = app.get("/api/v1/keys", &app.key_a).await.json().await.unwrap();
        let key_id = keys[0]["id"].as_str().unwrap().to_owned();
        let systems: Value = app.get("/api/v1/systems", &app.key_a).await.json().await.unwrap();
        let system_id = systems[0]["id"].as_str().unwrap().to_owned();
        let (user_id, _) = add_user(&app, "SO-KHCN-HCM", "nguoi.dung.a", "operator").await;
        let client: Value = app
            .client
            .post(app.url("/api/v1/oauth/clients"))
            .header("x-api-key", &app.key_a)
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let client_id = client["client_id"]
            .as_str()
            .expect("client registered")
            .to_owned();
        // A conflict and a canonical record that are not organisation B's: a ministry reports
        // A's fact with another value.
        let key_m = onboard_ministry(&app).await;
        let r = app
            .client
            .post(app.url("/api/v1/records"))
            .header("x-api-key", &key_m)
            .json(&stats_record(1000.0, Some("bola-bo")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let conflict_id = first_row(&app, "SELECT id FROM rec_conflicts").await;
        let canonical_id = first_row(
            &app,
            "SELECT id FROM rec_canonical_records WHERE merged_into IS NULL",
        )
        .await;
        // Callers of organisation B.
        let (_, admin_b, _, _, _) = enrolled(&app, "SO-KHCN-HN", "quan.tri.b", "system_admin").await;
        let (_, operator_b, _, _, _) = enrolled(&app, "SO-KHCN-HN", "van.hanh.b", "operator").await;

        // The table: templated path → (A's object, B's caller, request body for writes).
        // `None`: not an organisation's object, with the reason.
        let table = |path: &str| -> Option<(String, Foreign, Option<Value>)> {
            match path {
                "/api/v1/records/{id}" => Some((record_id.clone(), Foreign::Key, None)),
                "/api/v1/receipts/{id}" => Some((receipt_id.clone(), Foreign::Key, None)),
                "/api/v1/batches/{id}" | "/api/v1/batches/{id}/errors" => {
                    Some((batch_id.clone(), Foreign::Key, None))
                }
                "/api/v1/keys/{id}" => Some((key_id.clone(), Foreign::Key, None)),
                "/api/v1/keys/{id}/rotate" => {
                    Some((key_id.clone(), Foreign::Key, Some(json!({"overlap_secs": 60}))))
                }
                "/api/v1/systems/{id}/connection" => Some((system_id.clone(), Foreign::Key, None)),
                "/api/v1/systems/{id}/changes" => Some((
                    system_id.clone(),
                    Foreign::Key,
                    Some(json!({
                        "kind": "endpoint",
                        "description": "Không được ghi",
                        "effective_at": "2027-01-01T00:00:00Z"
                    })),
                )),
                "/api/v1/oauth/clients/{id}" => Some((client_id.clone(), Foreign::Key, None)),
                "/api/v1/users/{id}" => Some((
                    user_id.clone(),
                    Foreign::Admin,
                    Some(json!({"display_name": "Không được đổi"})),
                )),
                "/api/v1/users/{id}/password-reset" => {
                    Some((user_id.clone(), Foreign::Admin, Some(json!({}))))
                }
                // Reconciliation (issue 5 §4): a conflict belongs to the organisation whose record
                // opened it, a canonical record to its contributors.
                "/api/v1/conflicts/{id}" => Some((conflict_id.clone(), Foreign::Operator, None)),
                "/api/v1/conflicts/{id}/resolve" => Some((
                    conflict_id.clone(),
                    Foreign::Operator,
                    Some(json!({"action": "reject", "note": "Không được giải quyết"})),
                )),
                "/api/v1/canonical-records/{id}" => Some((canonical_id.clone(), Foreign::Operator, None)),
                // The schema catalogue is public and the vulnerability register is the hub's
                // own (read by auditors, written by administrators): no organisation owns them.
                "/api/v1/schemas/{category}/{version}" | "/api/v1/vulnerabilities/{id}" => None,
                // Dead letters are the hub's pipeline, not an organisation's: only system
                // administrators and the root organisation's operators reach them (tests/api/pipeline.rs).
                "/api/v1/pipeline/dead-letters/{id}/replay" => None,
                // The masking policy is the hub's, one for every organisation: its versions are
                // read by every organisation's readers and published hub-wide only
                // (tests/api/masking_policy.rs).
                "/api/v1/masking/policies/{version}" => None,
                other => panic!("{other} takes an id: add it to the BOLA table in tests/api/bola.rs"),
            }
        };

        let doc = app.openapi().await;
        let mut tried = BTreeSet::new();
        for (template, item) in doc["paths"].as_object().unwrap() {
            if !template.contains('{') {
                continue;
            }
            let Some((id, foreign, body)) = table(template) else {
                continue;
            };
            let path = template.replace("{id}", &id);
            for method in item.as_object().unwrap().keys() {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                let caller = match foreign {
                    Foreign::Operator => &operator_b,
                    _ => &admin_b,
                };
                let resp = send(&app, caller, foreign, method.clone(), &path, body.clone()).await;
                let status = resp.status().as_u16();
                let problem: Value = resp.json().await.unwrap_or(Value::Null);
                assert_eq!(
                    (status, problem["code"].as_str()),
                    (404, Some("not_found")),
                    "{method} {template} by organisation B's {foreign:?}: {problem}"
                );
                tried.insert(format!("{method} {template}"));
            }
        }
        assert!(tried.len() >= 8, "{tried:?}");

        // Nothing of it changed: the conflict is still open.
        use sea_orm::ConnectionTrait;
        let db = app.app_db().await;
        let open: i64 = db
            .query_one_raw(sea_orm::Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM rec_conflicts WHERE status = 'open' AND id = $1",
                [uuid::Uuid::parse_str(&conflict_id).unwrap().into()],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
        assert_eq!(open, 1, "B could not resolve the conflict");

        // Nothing of A changed: its key still works and its record is still its own.
        assert_eq!(
            app.get(&format!("/api/v1/records/{record_id}"), &app.key_a)
                .await
                .status(),
            200
        );
        let clients: Value = app
            .get("/api/v1/oauth/clients", &app.key_a)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            clients[0]["status"], "active",
            "B could not delete A's OAuth client"
        );
    }
);

async fn send(
    app: &TestApp,
    person_b: &Session,
    foreign: Foreign,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut r = app.client.request(method.clone(), app.url(path));
    r = match foreign {
        Foreign::Key => r.header("x-api-key", &app.key_b),
        Foreign::Admin | Foreign::Operator => r
            .header("cookie", &person_b.cookie)
            .header("x-csrf-token", &person_b.csrf),
    };
    if method != Method::GET
        && let Some(b) = body
    {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

/// Onboards a ministry (a source of another kind than A and B) and returns its API key.
async fn onboard_ministry(app: &TestApp) -> String {
    let req = etx_identity_core::NewSource {
        org_code: etx_domain::OrgCode::parse("BO-TC").unwrap(),
        org_name: etx_domain::OrgName::parse("Bộ Tài chính").unwrap(),
        org_kind: etx_domain::OrgKind::Ministry,
        parent: None,
        valid_from: None,
        system_name: etx_domain::SystemName::parse("Hệ thống báo cáo thống kê").unwrap(),
    };
    etxhub::onboard(&app.cfg, req).await.unwrap().api_key
}

/// The id in the first row `sql` selects, once there is one (the pipeline is asynchronous):
/// waits up to 30 s.
async fn first_row(app: &TestApp, sql: &str) -> String {
    use sea_orm::ConnectionTrait;
    let db = app.app_db().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap();
        if let Some(row) = row {
            let id: uuid::Uuid = row.try_get("", "id").unwrap();
            return id.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "nothing for {sql}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
