//! Automatic configuration (R-ADM, issue 4 §9): an administrator onboards a data source through
//! the API and gets its credentials with a connection bundle of the real configuration (the
//! key works at once); nobody onboards outside their subtree and systems never do; a system's
//! bundle without secrets; configuration-change declarations (Art. 10.4) recorded, listed and
//! notified on `events.config`.

use crate::both_backends;
use crate::helpers::*;
use crate::users::{Session, call, enrolled};
use etx_domain::{OrgCode, OrgKind, OrgName, SystemName};
use etx_queue::Queue;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

async fn problem(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "expected {code}");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    p
}

async fn onboard_as(app: &TestApp, admin: &Session, body: Value) -> Response {
    call(app, Method::POST, "/api/v1/onboarding", admin, Some(body), true).await
}

fn department(code: &str, parent: &str) -> Value {
    json!({
        "org_code": code,
        "org_name": "Sở Thông tin và Truyền thông TP. Hồ Chí Minh",
        "org_kind": "provincial_department",
        "parent_code": parent,
        "system_name": "Cổng dữ liệu giao dịch điện tử",
    })
}

/// The bundle tells the configuration's real values.
fn assert_bundle_tells_the_configuration(app: &TestApp, b: &Value) {
    let base = &app.base;
    let e = &b["endpoints"];
    assert_eq!(e["base_url"], json!(base));
    assert_eq!(e["rest"], json!(format!("{base}/api/v1")));
    assert_eq!(e["records"], json!(format!("{base}/api/v1/records")));
    assert_eq!(e["batches"], json!(format!("{base}/api/v1/batches")));
    assert_eq!(e["soap"], json!(format!("{base}/soap/v1/ingestion")));
    assert_eq!(e["wsdl"], json!(format!("{base}/soap/v1/ingestion?wsdl")));
    assert_eq!(e["openapi"], json!(format!("{base}/api/v1/openapi.json")));
    assert_eq!(e["schemas"], json!(format!("{base}/api/v1/schemas")));
    let categories: Vec<&str> = b["schemas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["category"].as_str().unwrap())
        .collect();
    assert_eq!(categories, ["policy", "statistics", "workforce", "enforcement"]);
    for s in b["schemas"].as_array().unwrap() {
        assert!(s["versions"].as_array().unwrap().contains(&s["latest"]), "{s}");
    }
    let l = &b["limits"];
    let cfg = &app.cfg;
    assert_eq!(l["rate_per_key"]["burst"], json!(cfg.rate_limits.per_key.burst));
    assert_eq!(l["rate_per_key"]["rate"], json!(cfg.rate_limits.per_key.rate));
    assert_eq!(
        l["rate_per_address"]["burst"],
        json!(cfg.rate_limits.per_ip.burst)
    );
    assert_eq!(l["max_body_bytes"], json!(cfg.limits.max_body_bytes));
    assert_eq!(l["max_records_per_submission"], json!(cfg.limits.max_records));
    assert_eq!(l["max_batch_bytes"], json!(cfg.limits.max_batch_bytes));
}

both_backends!(
    an_administrator_onboards_a_source_whose_key_works_at_once,
    |app: TestApp| async move {
        let (_, admin, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "quan.tri.a", "system_admin").await;
        let mut body = department("hcm-stttt", "SO-KHCN-HCM");
        body["scopes"] = json!(["records:write", "schemas:read"]);
        body["allowed_networks"] = json!(["127.0.0.0/8", "::1"]);
        body["ttl_days"] = json!(30);
        let r = onboard_as(&app, &admin, body).await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["org_created"], true);
        assert_eq!(b["organisation"]["code"], "HCM-STTTT");
        assert_eq!(b["organisation"]["kind"], "provincial_department");
        assert_eq!(b["organisation"]["id"], b["org_id"]);
        assert_eq!(b["system"]["id"], b["system_id"]);
        assert_eq!(b["system"]["name"], "Cổng dữ liệu giao dịch điện tử");
        let keys = b["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["id"], b["key_id"]);
        assert_eq!(keys[0]["scopes"], json!(["records:write", "schemas:read"]));
        assert_eq!(keys[0]["allowed_networks"], json!(["127.0.0.0/8", "::1/128"]));
        assert!(keys[0]["expires_at"].is_string());
        assert_bundle_tells_the_configuration(&app, &b);
        let key = b["api_key"].as_str().unwrap().to_owned();
        assert!(key.starts_with("etx_"));

        // The key works at once, within its scopes.
        let me: Value = app
            .get("/api/v1/organisations/me", &key)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["code"], "HCM-STTTT");
        let resp = app
            .client
            .post(app.url("/api/v1/records"))
            .header("x-api-key", &key)
            .json(&stats_record(5.0, None))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        assert_eq!(app.get("/api/v1/schemas", &key).await.status(), 200);
        problem(app.get("/api/v1/keys", &key).await, 403, "insufficient_scope").await;

        // Onboarding an existing organisation of the subtree adds a system to it.
        let r = onboard_as(&app, &admin, department("HCM-STTTT", "SO-KHCN-HCM")).await;
        assert_eq!(r.status(), 201);
        let again: Value = r.json().await.unwrap();
        assert_eq!(again["org_created"], false);
        assert_eq!(again["org_id"], b["org_id"]);
        assert_ne!(again["system_id"], b["system_id"]);
        assert_eq!(
            again["keys"][0]["scopes"].as_array().unwrap().len(),
            4,
            "every scope by default"
        );
    }
);

both_backends!(
    nobody_onboards_outside_their_subtree_and_systems_never,
    |app: TestApp| async move {
        let (_, admin, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "quan.tri.a", "system_admin").await;
        // Under another organisation, under an unknown one, or an existing organisation
        // outside the subtree: not found alike.
        for body in [
            department("HN-STTTT", "SO-KHCN-HN"),
            department("HN-STTTT", "NOPE-99"),
            json!({"org_code": "SO-KHCN-HN", "org_name": "Hà Nội", "org_kind": "province",
                   "parent_code": "SO-KHCN-HCM", "system_name": "Hệ thống khác"}),
        ] {
            problem(onboard_as(&app, &admin, body).await, 404, "not_found").await;
        }
        // A connected system never onboards, whatever its scopes; nor an operator.
        let r = app
            .client
            .post(app.url("/api/v1/onboarding"))
            .header("x-api-key", &app.key_a)
            .json(&department("HCM-X", "SO-KHCN-HCM"))
            .send()
            .await
            .unwrap();
        problem(r, 403, "forbidden").await;
        let (_, operator, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "van.hanh.a", "operator").await;
        problem(
            onboard_as(&app, &operator, department("HCM-X", "SO-KHCN-HCM")).await,
            403,
            "forbidden",
        )
        .await;

        // Bad input: 422 with a violation per field.
        let mut bad = department("-x", "SO-KHCN-HCM");
        bad["org_name"] = json!("   ");
        bad["allowed_networks"] = json!(["203.0.113.0/24", "300.0.0.0/8"]);
        bad["ttl_days"] = json!(0);
        let p = problem(onboard_as(&app, &admin, bad).await, 422, "validation_failed").await;
        let mut paths: Vec<&str> = p["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["path"].as_str().unwrap())
            .collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            ["/allowed_networks/1", "/org_code", "/org_name", "/ttl_days"],
            "{p}"
        );
        let mut unknown_kind = department("HCM-X", "SO-KHCN-HCM");
        unknown_kind["org_kind"] = json!("village");
        problem(
            onboard_as(&app, &admin, unknown_kind).await,
            422,
            "validation_failed",
        )
        .await;
        let mut misplaced = department("HCM-X", "SO-KHCN-HCM");
        misplaced["org_kind"] = json!("ministry");
        problem(
            onboard_as(&app, &admin, misplaced).await,
            422,
            "validation_failed",
        )
        .await;
        let mut extra = department("HCM-X", "SO-KHCN-HCM");
        extra["password"] = json!("x");
        problem(onboard_as(&app, &admin, extra).await, 422, "validation_failed").await;
        // Nothing was created.
        let r = onboard_as(&app, &admin, department("HCM-X", "SO-KHCN-HCM")).await;
        assert_eq!(r.json::<Value>().await.unwrap()["org_created"], true);
    }
);

both_backends!(
    a_systems_bundle_without_secrets_tells_its_organisations_own_rate,
    |app: TestApp| async move {
        let me: Value = app
            .get("/api/v1/organisations/me", &app.key_a)
            .await
            .json()
            .await
            .unwrap();
        let systems: Value = app.get("/api/v1/systems", &app.key_a).await.json().await.unwrap();
        let system = systems[0]["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/systems/{system}/connection");
        let r = app.get(&path, &app.key_a).await;
        assert_eq!(r.status(), 200);
        let b: Value = r.json().await.unwrap();
        assert!(b.get("api_key").is_none(), "no secret: {b}");
        assert!(!b.to_string().contains(&app.key_a));
        assert_eq!(b["organisation"]["code"], "SO-KHCN-HCM");
        assert_eq!(b["keys"].as_array().unwrap().len(), 1);
        assert_bundle_tells_the_configuration(&app, &b);
        assert_eq!(
            b["limits"]["rate_per_organisation"]["burst"],
            json!(app.cfg.rate_limits.per_org.burst)
        );
        // Another gateway on the same database, with an own rate for this organisation.
        let mut cfg = app.cfg.clone();
        cfg.rate_limits.orgs.insert(
            me["id"].as_str().unwrap().to_owned(),
            etxhub::config::RateCfg { rate: 7.0, burst: 14 },
        );
        let other = serve_all(&cfg).await;
        let b: Value = app
            .client
            .get(format!("{other}{path}"))
            .header("x-api-key", &app.key_a)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            b["limits"]["rate_per_organisation"],
            json!({"rate": 7.0, "burst": 14})
        );
        assert_eq!(b["endpoints"]["base_url"], json!(other));
        // Another organisation's system is not found.
        problem(app.get(&path, &app.key_b).await, 404, "not_found").await;
    }
);

/// `etxhub sources add --output json` prints the same bundle as the API (with the top-level
/// ids the scripts read), under the configured public URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_the_same_bundle_under_the_public_url() {
    let app = TestApp::spawn("sqlite").await;
    let mut cfg = app.cfg.clone();
    cfg.public_url = "https://etxhub.example.gov.vn/".into();
    let out = etxhub::onboard_with(
        &cfg,
        etx_identity_core::NewSource {
            org_code: OrgCode::parse("CT-DN").unwrap(),
            org_name: OrgName::parse("Công ty Cổ phần Hóa đơn điện tử").unwrap(),
            org_kind: OrgKind::EtxProvider,
            parent: None,
            valid_from: None,
            system_name: SystemName::parse("Hệ thống hóa đơn").unwrap(),
        },
        etx_identity_core::KeyOptions {
            scopes: Some(vec![etx_domain::authz::Scope::RecordsWrite]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let v = serde_json::to_value(etx_identity::http::sources::OnboardedOut::from(out)).unwrap();
    for k in ["org_id", "system_id", "key_id", "api_key"] {
        assert!(v[k].is_string(), "{k} in {v}");
    }
    assert_eq!(v["endpoints"]["rest"], "https://etxhub.example.gov.vn/api/v1");
    assert_eq!(
        v["limits"]["max_records_per_submission"],
        json!(cfg.limits.max_records)
    );
    assert_eq!(v["keys"][0]["scopes"], json!(["records:write"]));
    let key = v["api_key"].as_str().unwrap();
    assert_eq!(app.get("/api/v1/organisations/me", key).await.status(), 200);
}

const CONFIG_STREAM: &str = "events.config";

fn queue_of(app: &TestApp, conn: sea_orm::DatabaseConnection) -> Arc<dyn Queue> {
    if app.cfg.queue.kind == "redis" {
        Arc::new(
            etx_queue::RedisQueue::connect(app.cfg.queue.redis_url.expose(), &app.cfg.queue.key_prefix)
                .unwrap(),
        )
    } else {
        Arc::new(etx_queue::EmbeddedQueue::new(conn))
    }
}

/// The events on `events.config`: waits (up to 15 s) for `expected` of them.
async fn config_events(app: &TestApp, expected: usize) -> Vec<(etx_queue::Delivery, Value)> {
    let queue = queue_of(app, app.db_conn().await);
    let group = format!("config-{}", uuid::Uuid::now_v7().simple());
    queue.ensure_group(CONFIG_STREAM, &group).await.unwrap();
    let mut got = Vec::new();
    for _ in 0..150 {
        for d in queue
            .consume(CONFIG_STREAM, &group, "t", 100, Duration::from_millis(100))
            .await
            .unwrap()
        {
            let event: Value = serde_json::from_slice(&d.body).unwrap();
            got.push((d, event));
        }
        if got.len() >= expected {
            break;
        }
    }
    got
}

async fn first_org(app: &TestApp) -> Value {
    let me: Value = app
        .get("/api/v1/organisations/me", &app.key_a)
        .await
        .json()
        .await
        .unwrap();
    me["id"].clone()
}

both_backends!(
    configuration_changes_are_recorded_listed_and_notified,
    |app: TestApp| async move {
        let systems: Value = app.get("/api/v1/systems", &app.key_a).await.json().await.unwrap();
        let system = systems[0]["id"].as_str().unwrap().to_owned();
        let path = format!("/api/v1/systems/{system}/changes");
        let declare = |key: String, body: Value| {
            let app = &app;
            let path = path.clone();
            async move {
                app.client
                    .post(app.url(&path))
                    .header("x-api-key", key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
            }
        };
        // The system declares its new software version.
        let r = declare(
            app.key_a.clone(),
            json!({
                "kind": "software_version",
                "description": "Nâng cấp phần mềm cổng dữ liệu lên 2.4.\nKhông đổi điểm cuối.",
                "effective_at": "2027-03-01T00:00:00+07:00",
                "details": {"from": "2.3.9", "to": "2.4.0", "downtime_minutes": 0, "rollback": true}
            }),
        )
        .await;
        assert_eq!(r.status(), 201);
        let first: Value = r.json().await.unwrap();
        assert_eq!(first["declared_by"], json!(format!("system:{system}")));
        assert_eq!(first["kind"], "software_version");
        assert_eq!(first["effective_at"], "2027-02-28T17:00:00Z");
        assert_eq!(first["details"]["to"], "2.4.0");
        // Its administrator declares a new endpoint.
        let (admin_id, admin, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "quan.tri.a", "system_admin").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let r = call(
            &app,
            Method::POST,
            &path,
            &admin,
            Some(json!({"kind": "endpoint", "description": "Máy chủ mới", "effective_at": "2027-04-01T00:00:00Z"})),
            true,
        )
        .await;
        assert_eq!(r.status(), 201);
        let second: Value = r.json().await.unwrap();
        assert_eq!(second["declared_by"], json!(format!("user:{admin_id}")));

        // Listed newest first, by the system and by the administrator.
        let listed: Value = app.get(&path, &app.key_a).await.json().await.unwrap();
        let ids: Vec<&Value> = listed.as_array().unwrap().iter().map(|c| &c["id"]).collect();
        assert_eq!(ids, [&second["id"], &first["id"]]);
        let listed: Value = call(&app, Method::GET, &format!("{path}?limit=1"), &admin, None, false)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 1);
        let before = second["declared_at"].as_str().unwrap();
        let listed: Value = app
            .client
            .get(app.url(&path))
            .query(&[("before", before)])
            .header("x-api-key", &app.key_a)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(listed[0]["id"], first["id"]);
        problem(
            app.get(&format!("{path}?limit=0"), &app.key_a).await,
            400,
            "invalid_parameter",
        )
        .await;

        // Each declaration is notified on events.config, once.
        let events = config_events(&app, 2).await;
        assert_eq!(events.len(), 2, "{events:?}");
        let e = events
            .iter()
            .find(|(_, e)| e["change_id"] == first["id"])
            .unwrap();
        assert_eq!(e.1["kind"], "system.config_changed");
        assert_eq!(e.1["change_kind"], "software_version");
        assert_eq!(e.1["system_id"], json!(system));
        assert_eq!(e.1["org_id"], first_org(&app).await);
        assert_eq!(e.1["description"], first["description"]);
        assert_eq!(e.1["details"], first["details"]);
        assert_eq!(e.1["declared_by"], first["declared_by"]);
        assert_eq!(e.0.key, first["id"].as_str().unwrap());
        assert_eq!(
            e.0.headers.get("change_kind").map(String::as_str),
            Some("software_version")
        );
        assert!(
            events
                .iter()
                .any(|(_, e)| e["change_id"] == second["id"] && e["change_kind"] == "endpoint")
        );

        // Another organisation's system is not found; another system of the organisation may
        // not declare for this one.
        let r = declare(
            app.key_b.clone(),
            json!({"kind": "other", "description": "x", "effective_at": "2027-01-01T00:00:00Z"}),
        )
        .await;
        problem(r, 404, "not_found").await;
        problem(app.get(&path, &app.key_b).await, 404, "not_found").await;
        let sibling = onboard(
            &app.cfg,
            "SO-KHCN-HCM",
            "Sở Khoa học và Công nghệ TP. Hồ Chí Minh",
        )
        .await;
        let r = declare(
            sibling,
            json!({"kind": "other", "description": "x", "effective_at": "2027-01-01T00:00:00Z"}),
        )
        .await;
        problem(r, 403, "forbidden").await;

        // Bad declarations: 422 naming the field.
        for (body, field) in [
            (
                json!({"kind": "other", "description": "  ", "effective_at": "2027-01-01T00:00:00Z"}),
                "/description",
            ),
            (
                json!({"kind": "other", "description": "x".repeat(2001), "effective_at": "2027-01-01T00:00:00Z"}),
                "/description",
            ),
            (
                json!({"kind": "other", "description": "x", "effective_at": "1999-12-31T00:00:00Z"}),
                "/effective_at",
            ),
            (
                json!({"kind": "other", "description": "x", "effective_at": "2027-01-01T00:00:00Z", "details": {"a": {"b": 1}}}),
                "/details/0",
            ),
        ] {
            let p = problem(declare(app.key_a.clone(), body).await, 422, "validation_failed").await;
            assert_eq!(p["violations"][0]["path"], field, "{p}");
        }
        problem(
            declare(
                app.key_a.clone(),
                json!({"kind": "firmware", "description": "x", "effective_at": "2027-01-01T00:00:00Z"}),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        let listed: Value = app.get(&path, &app.key_a).await.json().await.unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 2, "nothing else was recorded");
    }
);
