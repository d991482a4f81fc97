//! Keys: master-key and data-key rotation without re-encrypting data (R-SEC-5, `etxhub keys
//! rotate`); API keys' scopes, expiry, address allow-lists and rotation with overlap (issue 4
//! §5, R-SEC-1).

use crate::both_backends;
use crate::helpers::*;
use crate::users::{call, enrolled};
use etxhub::config::PreviousKey;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stay_readable_after_the_master_key_is_rotated_and_the_old_one_retired() {
    let old = etx_crypto::MasterKey::generate("mk-old").to_base64();
    let new = etx_crypto::MasterKey::generate("mk-new").to_base64();
    let (old2, new2) = (old.clone(), new.clone());

    // 1. Running on the old master key.
    let app = TestApp::spawn_with("sqlite", move |c| {
        c.security.master_key = old2.into();
        c.security.master_key_id = "mk-old".into();
    })
    .await;
    let receipt: Value = app
        .submit_json(&stats_record(3.0, None))
        .await
        .json()
        .await
        .unwrap();
    let id = receipt["record_ids"][0].as_str().unwrap().to_owned();

    // 2. The operator makes the new key active, keeps the old one as previous, and rotates.
    let mut cfg = app.cfg.clone();
    cfg.security.master_key = new2.clone().into();
    cfg.security.master_key_id = "mk-new".into();
    cfg.security.previous_master_keys = vec![PreviousKey {
        id: "mk-old".into(),
        key: old.into(),
    }];
    let r = etxhub::rotate_keys(&cfg).await.unwrap();
    assert_eq!(r.master_key_id, "mk-new");
    assert!(r.rewrapped >= 1);

    // 3. A process that knows only the new master key reads the old record.
    let mut only_new = app.cfg.clone();
    only_new.security.master_key = new2.into();
    only_new.security.master_key_id = "mk-new".into();
    only_new.security.previous_master_keys = vec![];
    let base = serve_all(&only_new).await;
    let got = app
        .client
        .get(format!("{base}/api/v1/records/{id}"))
        .header("x-api-key", &app.key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let body: Value = got.json().await.unwrap();
    assert_eq!(body["payload"]["value"], serde_json::json!(3.0));
    // And it writes new records under a fresh data key.
    let resp = app
        .client
        .post(format!("{base}/api/v1/records"))
        .header("x-api-key", &app.key_a)
        .header("content-type", "application/json")
        .body(stats_record(4.0, None).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_master_key_records_cannot_be_read() {
    let app = TestApp::spawn("sqlite").await;
    let receipt: Value = app
        .submit_json(&stats_record(3.0, None))
        .await
        .json()
        .await
        .unwrap();
    let id = receipt["record_ids"][0].as_str().unwrap().to_owned();
    let mut stranger = app.cfg.clone();
    stranger.security.master_key = etx_crypto::MasterKey::generate("mk-x").to_base64().into();
    stranger.security.master_key_id = "mk-x".into();
    let base = serve_all(&stranger).await;
    let got = app
        .client
        .get(format!("{base}/api/v1/records/{id}"))
        .header("x-api-key", &app.key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.status(),
        500,
        "an unreadable record is an operator problem, reported without detail"
    );
    let p: Value = got.json().await.unwrap();
    assert_eq!(p["code"], "internal");
    assert!(p.get("detail").is_none());
}

// ---------------------------------------------------------------------------------------------
// API keys (issue 4 §5, R-SEC-1): scopes enforced at the gateway, expiry and address allow-lists
// checked on every request — also when the gateway answers from its authentication cache —
// and rotation with overlap.

/// Runs a test on both backends with a gateway cache that outlives the test (60 s), so that
/// every request after the first is answered from the cache: what holds then holds with
/// every cache lifetime.
macro_rules! both_backends_cached {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = TestApp::spawn_with("sqlite", |c| c.security.auth_cache_ms = 60_000).await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = TestApp::spawn_with("postgres", |c| c.security.auth_cache_ms = 60_000).await;
                let db = app.db.clone();
                ($body)(app).await;
                let _ = db.cleanup().await;
            }
        }
    };
}

/// The first system of the key's organisation.
async fn system_of(app: &TestApp, key: &str) -> String {
    let systems: Value = app.get("/api/v1/systems", key).await.json().await.unwrap();
    systems[0]["id"].as_str().unwrap().to_owned()
}

/// Issues a key as `key` with `body`.
async fn issue(app: &TestApp, key: &str, body: Value) -> Response {
    app.client
        .post(app.url("/api/v1/keys"))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn problem(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "expected {code}");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    p
}

/// A client whose connections come from `local` (another loopback address).
fn client_from(app: &TestApp, local: &str) -> reqwest::Client {
    let pem = std::fs::read(app.cfg.data_dir.join("tls/cert.pem")).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .local_address(Some(local.parse().unwrap()))
        .build()
        .unwrap()
}

async fn get_from(client: &reqwest::Client, app: &TestApp, path: &str, key: &str) -> Response {
    client
        .get(app.url(path))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

both_backends!(
    api_key_scopes_are_enforced_at_the_gateway_and_never_escalated,
    |app: TestApp| async move {
        let (_, admin, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "quan.tri.a", "system_admin").await;
        let system = system_of(&app, &app.key_a).await;
        // An administrator issues a write-only key for the system.
        let r = call(
            &app,
            Method::POST,
            "/api/v1/keys",
            &admin,
            Some(json!({"system_id": system, "scopes": ["records:write"]})),
            true,
        )
        .await;
        assert_eq!(r.status(), 201);
        let issued: Value = r.json().await.unwrap();
        assert_eq!(issued["scopes"], json!(["records:write"]));
        assert_eq!(issued["status"], "active");
        assert_eq!(issued["expires_at"], Value::Null);
        let write_only = issued["api_key"].as_str().unwrap().to_owned();

        // It submits …
        let resp = app
            .client
            .post(app.url("/api/v1/records"))
            .header("x-api-key", &write_only)
            .json(&stats_record(1.0, None))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let receipt: Value = resp.json().await.unwrap();
        let record = receipt["record_ids"][0].as_str().unwrap();
        // … but reads nothing back and manages no key: 403 naming the scope it lacks.
        let p = problem(
            app.get(&format!("/api/v1/records/{record}"), &write_only).await,
            403,
            "insufficient_scope",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("records:read"), "{p}");
        let p = problem(
            app.get("/api/v1/keys", &write_only).await,
            403,
            "insufficient_scope",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("keys:manage"), "{p}");
        // The listing shows every key's scopes.
        let keys: Value = app.get("/api/v1/keys", &app.key_a).await.json().await.unwrap();
        let listed = keys
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == issued["id"])
            .unwrap();
        assert_eq!(listed["scopes"], json!(["records:write"]));

        // A system with records:write and keys:manage cannot mint a key with more.
        let r = issue(
            &app,
            &app.key_a,
            json!({"scopes": ["records:write", "keys:manage"]}),
        )
        .await;
        assert_eq!(r.status(), 201);
        let manager = r.json::<Value>().await.unwrap()["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        let p = problem(
            issue(
                &app,
                &manager,
                json!({"scopes": ["records:write", "records:read"]}),
            )
            .await,
            403,
            "insufficient_scope",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("records:read"), "{p}");
        // Without asked scopes it gets exactly its own.
        let r = issue(&app, &manager, json!({})).await;
        assert_eq!(r.status(), 201);
        assert_eq!(
            r.json::<Value>().await.unwrap()["scopes"],
            json!(["records:write", "keys:manage"])
        );
        // Unknown scopes are refused.
        let r = issue(&app, &app.key_a, json!({"scopes": ["records:delete"]})).await;
        assert_eq!(r.status(), 422);
    }
);

both_backends_cached!(
    an_expired_key_is_refused_from_its_expiry_on_even_from_the_cache,
    |app: TestApp| async move {
        let expires = chrono::Utc::now() + chrono::TimeDelta::milliseconds(2500);
        let r = issue(&app, &app.key_a, json!({"expires_at": expires.to_rfc3339()})).await;
        assert_eq!(r.status(), 201);
        let k: Value = r.json().await.unwrap();
        let key = k["api_key"].as_str().unwrap().to_owned();
        assert!(k["expires_at"].is_string());
        // Authenticated by identity, then cached for a minute.
        assert_eq!(app.get("/api/v1/organisations/me", &key).await.status(), 200);
        assert_eq!(app.get("/api/v1/organisations/me", &key).await.status(), 200);
        let wait = (expires - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300);
        tokio::time::sleep(wait).await;
        let p = problem(
            app.get("/api/v1/organisations/me", &key).await,
            401,
            "invalid_credentials",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
        let keys: Value = app.get("/api/v1/keys", &app.key_a).await.json().await.unwrap();
        let listed = keys
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == k["id"])
            .unwrap();
        assert_eq!(listed["status"], "expired");

        // Expiries in the past, too far ahead, or given twice are refused, each by its field.
        for (body, path) in [
            (json!({"expires_at": "2020-01-01T00:00:00Z"}), "/expires_at"),
            (json!({"ttl_days": 731}), "/ttl_days"),
            (
                json!({"ttl_days": 1, "expires_at": expires.to_rfc3339()}),
                "/ttl_days",
            ),
        ] {
            let p = problem(issue(&app, &app.key_a, body).await, 422, "validation_failed").await;
            assert_eq!(p["violations"][0]["path"], path, "{p}");
        }
        let r = issue(&app, &app.key_a, json!({"ttl_days": 30})).await;
        let k: Value = r.json().await.unwrap();
        let at = chrono::DateTime::parse_from_rfc3339(k["expires_at"].as_str().unwrap()).unwrap();
        assert!(
            (at.to_utc() - chrono::Utc::now() - chrono::TimeDelta::days(30))
                .num_seconds()
                .abs()
                < 60
        );
    }
);

both_backends_cached!(
    an_allow_list_admits_only_its_networks_even_from_the_cache,
    |app: TestApp| async move {
        let r = issue(
            &app,
            &app.key_a,
            json!({"allowed_networks": ["127.0.0.1", "2001:DB8::/32", "2001:db8::/32"]}),
        )
        .await;
        assert_eq!(r.status(), 201);
        let k: Value = r.json().await.unwrap();
        assert_eq!(
            k["allowed_networks"],
            json!(["127.0.0.1/32", "2001:db8::/32"]),
            "canonical, once"
        );
        let key = k["api_key"].as_str().unwrap().to_owned();
        // From the allowed address: authenticated, then cached.
        assert_eq!(app.get("/api/v1/organisations/me", &key).await.status(), 200);
        // From another address the cached key is refused.
        let elsewhere = client_from(&app, "127.0.0.2");
        let p = problem(
            get_from(&elsewhere, &app, "/api/v1/organisations/me", &key).await,
            403,
            "address_not_allowed",
        )
        .await;
        assert!(p["detail"].is_string());
        assert_eq!(
            app.get("/api/v1/organisations/me", &key).await.status(),
            200,
            "still fine from home"
        );
        // An unrestricted key works from anywhere.
        assert_eq!(
            get_from(&elsewhere, &app, "/api/v1/organisations/me", &app.key_a)
                .await
                .status(),
            200
        );
        // A key for another network is refused from its very first use.
        let r = issue(&app, &app.key_a, json!({"allowed_networks": ["10.0.0.0/8"]})).await;
        let other = r.json::<Value>().await.unwrap()["api_key"]
            .as_str()
            .unwrap()
            .to_owned();
        problem(
            app.get("/api/v1/organisations/me", &other).await,
            403,
            "address_not_allowed",
        )
        .await;
        // Malformed networks are named by position.
        let p = problem(
            issue(
                &app,
                &app.key_a,
                json!({"allowed_networks": ["203.0.113.0/24", "10.0.0.5/8", "2001:db8::/129"]}),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        let paths: Vec<&str> = p["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["/allowed_networks/1", "/allowed_networks/2"]);
        let many: Vec<String> = (0..33).map(|i| format!("10.{i}.0.0/16")).collect();
        problem(
            issue(&app, &app.key_a, json!({"allowed_networks": many})).await,
            422,
            "validation_failed",
        )
        .await;
    }
);

both_backends_cached!(
    rotation_overlaps_then_only_the_successor_works,
    |app: TestApp| async move {
        let keys: Value = app.get("/api/v1/keys", &app.key_a).await.json().await.unwrap();
        let old_id = keys[0]["id"].as_str().unwrap().to_owned();
        assert_eq!(
            app.get("/api/v1/organisations/me", &app.key_a).await.status(),
            200,
            "cached"
        );
        let rotate = |id: String, key: String, body: Value| {
            let app = &app;
            async move {
                app.client
                    .post(app.url(&format!("/api/v1/keys/{id}/rotate")))
                    .header("x-api-key", key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
            }
        };
        problem(
            rotate(
                old_id.clone(),
                app.key_a.clone(),
                json!({"overlap_secs": 2_592_001}),
            )
            .await,
            422,
            "validation_failed",
        )
        .await;
        let r = rotate(old_id.clone(), app.key_a.clone(), json!({"overlap_secs": 2})).await;
        assert_eq!(r.status(), 201);
        let rotated: Value = r.json().await.unwrap();
        let new_key = rotated["api_key"].as_str().unwrap().to_owned();
        assert_eq!(rotated["rotated_from"], json!(old_id));
        assert_eq!(rotated["previous"]["id"], json!(old_id));
        assert_eq!(rotated["previous"]["replaced_by"], rotated["id"]);
        assert_eq!(rotated["scopes"], rotated["previous"]["scopes"]);
        let until = chrono::DateTime::parse_from_rfc3339(rotated["previous"]["expires_at"].as_str().unwrap())
            .unwrap()
            .to_utc();
        // During the overlap both work.
        assert_eq!(
            app.get("/api/v1/organisations/me", &app.key_a).await.status(),
            200
        );
        assert_eq!(app.get("/api/v1/organisations/me", &new_key).await.status(), 200);
        // A key is rotated once.
        problem(
            rotate(old_id.clone(), new_key.clone(), json!({})).await,
            422,
            "validation_failed",
        )
        .await;
        // After the overlap only the successor.
        let wait = (until - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(300);
        tokio::time::sleep(wait).await;
        let p = problem(
            app.get("/api/v1/organisations/me", &app.key_a).await,
            401,
            "invalid_credentials",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
        assert_eq!(app.get("/api/v1/organisations/me", &new_key).await.status(), 200);
        // The successor rotates in turn (no body: a day's overlap).
        let new_id = rotated["id"].as_str().unwrap().to_owned();
        let r = app
            .client
            .post(app.url(&format!("/api/v1/keys/{new_id}/rotate")))
            .header("x-api-key", &new_key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let again: Value = r.json().await.unwrap();
        let until =
            chrono::DateTime::parse_from_rfc3339(again["previous"]["expires_at"].as_str().unwrap()).unwrap();
        assert!(
            (until.to_utc() - chrono::Utc::now() - chrono::TimeDelta::days(1))
                .num_seconds()
                .abs()
                < 60
        );
    }
);

both_backends!(
    keys_issued_before_policies_keep_every_scope_and_rotate,
    |app: TestApp| async move {
        use sea_orm::{ConnectionTrait, Statement};
        // A key from before the policies table: no row.
        let db = app.db_conn().await;
        db.execute_raw(Statement::from_string(
            db.get_database_backend(),
            "DELETE FROM api_key_policies".to_owned(),
        ))
        .await
        .unwrap();
        let keys: Value = app.get("/api/v1/keys", &app.key_b).await.json().await.unwrap();
        assert_eq!(keys[0]["scopes"].as_array().unwrap().len(), 4);
        assert_eq!(keys[0]["expires_at"], Value::Null);
        let id = keys[0]["id"].as_str().unwrap();
        let r = app
            .client
            .post(app.url(&format!("/api/v1/keys/{id}/rotate")))
            .header("x-api-key", &app.key_b)
            .json(&json!({"overlap_secs": 600}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let rotated: Value = r.json().await.unwrap();
        assert_eq!(rotated["previous"]["replaced_by"], rotated["id"]);
        assert!(rotated["previous"]["expires_at"].is_string());
        assert_eq!(rotated["scopes"].as_array().unwrap().len(), 4);
        assert_eq!(
            app.get("/api/v1/organisations/me", &app.key_b).await.status(),
            200,
            "overlap"
        );
        let again = app
            .client
            .post(app.url(&format!("/api/v1/keys/{id}/rotate")))
            .header("x-api-key", &app.key_b)
            .send()
            .await
            .unwrap();
        problem(again, 422, "validation_failed").await;
    }
);
