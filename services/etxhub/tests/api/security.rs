//! Bad input and bad credentials (R-SEC-1, R-SEC-3, R-SRC-2, R-ING-4, R-I18N): each case
//! answers a precise problem+json and stores nothing.

use crate::both_backends;
use crate::helpers::*;
use serde_json::{Value, json};

async fn problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status);
    let ct = resp
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    assert_eq!(p["status"], status);
    assert!(p["title"].as_str().is_some_and(|t| !t.is_empty()));
    p
}

both_backends!(
    malformed_json_is_400_and_stores_nothing,
    |app: TestApp| async move {
        let p = problem(
            app.submit_raw("application/json", "{\"category\": \"statistics\",")
                .await,
            400,
            "malformed_json",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("line"));
        assert_eq!(app.count("records").await, 0);
    }
);

both_backends!(malformed_xml_is_400, |app: TestApp| async move {
    problem(
        app.submit_raw("application/xml", "<records><record><category>stat</records>")
            .await,
        400,
        "malformed_xml",
    )
    .await;
    assert_eq!(app.count("records").await, 0);
});

both_backends!(xml_with_a_dtd_or_entities_is_refused, |app: TestApp| async move {
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><records><record><category>&x;</category></record></records>"#;
    problem(
        app.submit_raw("application/xml", xxe).await,
        400,
        "xml_dtd_forbidden",
    )
    .await;
    let laughs = r#"<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><records>&lol2;</records>"#;
    problem(
        app.submit_raw("application/xml", laughs).await,
        400,
        "xml_dtd_forbidden",
    )
    .await;
    assert_eq!(app.count("records").await, 0);
});

both_backends!(a_wrong_content_type_is_415, |app: TestApp| async move {
    problem(
        app.submit_raw("text/plain", "hello").await,
        415,
        "unsupported_media_type",
    )
    .await;
    problem(
        app.submit_raw("application/x-www-form-urlencoded", "a=b").await,
        415,
        "unsupported_media_type",
    )
    .await;
});

both_backends!(an_oversized_body_is_413, |app: TestApp| async move {
    let big = vec![b' '; app.cfg.limits.max_body_bytes + 1];
    problem(
        app.submit_raw("application/json", big).await,
        413,
        "payload_too_large",
    )
    .await;
    assert_eq!(app.count("records").await, 0);
});

both_backends!(
    an_unknown_category_is_422_with_its_path,
    |app: TestApp| async move {
        let mut rec = stats_record(1.0, None);
        rec["category"] = json!("weather");
        let p = problem(app.submit_json(&rec).await, 422, "validation_failed").await;
        assert_eq!(p["violations"][0]["path"], "/category");
        assert_eq!(p["violations"][0]["code"], "unknown_category");
    }
);

both_backends!(an_unknown_schema_version_is_422, |app: TestApp| async move {
    let mut rec = stats_record(1.0, None);
    rec["schema_version"] = json!("99");
    let p = problem(app.submit_json(&rec).await, 422, "validation_failed").await;
    assert_eq!(p["violations"][0]["code"], "unknown_schema_version");
});

both_backends!(
    every_schema_violation_is_reported_per_item_and_field,
    |app: TestApp| async move {
        let good = stats_record(1.0, None);
        let mut bad = stats_record(1.0, None);
        bad["payload"]["value"] = json!("many");
        bad["payload"]["unit"] = json!("bananas");
        bad["period"] = json!("2026-13");
        let resp = app
            .client
            .post(app.url("/api/v1/records"))
            .header("x-api-key", &app.key_a)
            .header("content-type", "application/json")
            .header("accept-language", "en")
            .body(json!([good, bad]).to_string())
            .send()
            .await
            .unwrap();
        let p = problem(resp, 422, "validation_failed").await;
        let v = p["violations"].as_array().unwrap();
        let paths: Vec<(u64, &str)> = v
            .iter()
            .map(|x| (x["item"].as_u64().unwrap(), x["path"].as_str().unwrap()))
            .collect();
        assert!(paths.contains(&(1, "/payload/value")), "{paths:?}");
        assert!(paths.contains(&(1, "/payload/unit")), "{paths:?}");
        assert!(paths.contains(&(1, "/period")), "{paths:?}");
        assert!(v.iter().all(|x| x["item"] == 1));
        assert!(
            v.iter()
                .all(|x| x["message"].as_str().is_some_and(|m| !m.is_empty()))
        );
        assert_eq!(p["title"], "The data is not valid");
        assert_eq!(
            app.count("records").await,
            0,
            "a refused array stores none of its records"
        );
    }
);

both_backends!(a_state_secret_is_always_refused, |app: TestApp| async move {
    for label in ["state_secret", "Tối mật", "mat"] {
        let mut rec = stats_record(1.0, None);
        rec["classification"] = json!(label);
        let p = problem(app.submit_json(&rec).await, 422, "state_secret_refused").await;
        assert_eq!(p["violations"][0]["path"], "/classification");
    }
    assert_eq!(app.count("records").await, 0);
});

both_backends!(too_many_or_no_records_is_400, |app: TestApp| async move {
    let many: Vec<Value> = (0..1001).map(|i| stats_record(f64::from(i), None)).collect();
    problem(app.submit_json(&json!(many)).await, 400, "batch_size").await;
    problem(app.submit_json(&json!([])).await, 400, "batch_size").await;
    assert_eq!(app.count("records").await, 0);
});

both_backends!(
    missing_invalid_and_revoked_keys_are_401,
    |app: TestApp| async move {
        let url = app.url("/api/v1/records");
        let body = stats_record(1.0, None).to_string();
        let none = app
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let p = problem(none, 401, "missing_credentials").await;
        assert!(
            p["title"].as_str().unwrap().contains("khóa API"),
            "Vietnamese by default: {p}"
        );
        let bad = app
            .client
            .post(&url)
            .header("x-api-key", "etx_nope")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        problem(bad, 401, "invalid_credentials").await;
        // A well-formed key with one character changed.
        let mut forged = app.key_a.clone();
        let last = forged.pop().unwrap();
        forged.push(if last == 'A' { 'B' } else { 'A' });
        let r = app
            .client
            .post(&url)
            .header("x-api-key", forged)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        problem(r, 401, "invalid_credentials").await;

        // Revoke key A through the API; it stops working at once.
        let keys: Value = app.get("/api/v1/keys", &app.key_a).await.json().await.unwrap();
        let id = keys[0]["id"].as_str().unwrap().to_owned();
        let del = app
            .client
            .delete(app.url(&format!("/api/v1/keys/{id}")))
            .header("x-api-key", &app.key_a)
            .send()
            .await
            .unwrap();
        assert_eq!(del.status(), 204);
        let after = app
            .client
            .post(&url)
            .header("x-api-key", &app.key_a)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        problem(after, 401, "revoked_credentials").await;
        assert_eq!(app.count("records").await, 0);
    }
);

both_backends!(a_forged_principal_header_is_ignored, |app: TestApp| async move {
    let r = app
        .client
        .post(app.url("/api/v1/records"))
        .header("x-etx-principal", "v1.eyJvcmdfaWQiOiIwMCJ9.AAAA")
        .header("content-type", "application/json")
        .body(stats_record(1.0, None).to_string())
        .send()
        .await
        .unwrap();
    problem(r, 401, "missing_credentials").await;
});

both_backends!(
    a_key_cannot_revoke_another_organisations_key,
    |app: TestApp| async move {
        let keys: Value = app.get("/api/v1/keys", &app.key_b).await.json().await.unwrap();
        let id_b = keys[0]["id"].as_str().unwrap().to_owned();
        let del = app
            .client
            .delete(app.url(&format!("/api/v1/keys/{id_b}")))
            .header("x-api-key", &app.key_a)
            .send()
            .await
            .unwrap();
        problem(del, 404, "not_found").await;
        let still = app.get("/api/v1/keys", &app.key_b).await;
        assert_eq!(still.status(), 200);
    }
);

both_backends!(
    issued_keys_work_and_the_old_one_keeps_working_until_revoked,
    |app: TestApp| async move {
        let issued = app
            .client
            .post(app.url("/api/v1/keys"))
            .header("x-api-key", &app.key_a)
            .send()
            .await
            .unwrap();
        assert_eq!(issued.status(), 201);
        let k: Value = issued.json().await.unwrap();
        let new_key = k["api_key"].as_str().unwrap();
        for key in [new_key, app.key_a.as_str()] {
            let r = app.get("/api/v1/systems", key).await;
            assert_eq!(r.status(), 200);
        }
        let list: Value = app.get("/api/v1/keys", new_key).await.json().await.unwrap();
        assert_eq!(list.as_array().unwrap().len(), 2);
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .all(|k| k.get("hash").is_none() && k.get("api_key").is_none())
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_clears_the_gateways_authentication_cache_at_once() {
    let app = TestApp::spawn_with("sqlite", |c| c.security.auth_cache_ms = 60_000).await;
    assert_eq!(
        app.get("/api/v1/systems", &app.key_a).await.status(),
        200,
        "the key is now cached"
    );
    let keys: Value = app.get("/api/v1/keys", &app.key_a).await.json().await.unwrap();
    let id = keys[0]["id"].as_str().unwrap().to_owned();
    let del = app
        .client
        .delete(app.url(&format!("/api/v1/keys/{id}")))
        .header("x-api-key", &app.key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    problem(
        app.get("/api/v1/systems", &app.key_a).await,
        401,
        "revoked_credentials",
    )
    .await;
    assert_eq!(app.get("/api/v1/systems", &app.key_b).await.status(), 200);
}
