//! Early warning over HTTPS (R-SEC-7): attacks replayed against the whole application raise
//! their security event, which goes through the outbox to the `events.security` stream the
//! alerting service reads — with severity and evidence, and never a password, a code or a key.

use crate::both_backends;
use crate::helpers::*;
use crate::users::{enrolled, login, now};
use etx_queue::{Delivery, Queue};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const STREAM: &str = "events.security";

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

/// The events of `kind` on `events.security`: waits (up to 15 s) for `expected` of them, then
/// a little longer for any extra one the relay might still publish.
async fn security_events(app: &TestApp, kind: &str, expected: usize) -> Vec<(Delivery, Value)> {
    let queue = queue_of(app, app.db_conn().await);
    let group = format!("early-warning-{}", uuid::Uuid::now_v7().simple());
    queue.ensure_group(STREAM, &group).await.unwrap();
    let mut got = Vec::new();
    let mut quiet_rounds = 0;
    for _ in 0..150 {
        let batch = queue
            .consume(STREAM, &group, "t", 100, Duration::from_millis(100))
            .await
            .unwrap();
        for d in batch {
            let event: Value = serde_json::from_slice(&d.body).unwrap();
            if event["kind"] == kind {
                got.push((d, event));
            }
        }
        if got.len() >= expected {
            // The relay polls every 200 ms: give a duplicate the time to show.
            quiet_rounds += 1;
            if quiet_rounds > 6 {
                break;
            }
        }
    }
    got
}

both_backends!(
    a_brute_force_over_https_reaches_events_security_with_evidence_and_no_secret,
    |app: TestApp| async move {
        let (id, _, password, totp, _) = enrolled(&app, "SO-KHCN-HCM", "an.admin", "system_admin").await;
        let wrong = "Mật khẩu đoán mò 2027!";
        let code = totp.generate(now()).to_string();
        // Seven wrong passwords with a right code: five refused, then the account is locked.
        for i in 0..7 {
            let r = login(
                &app,
                json!({"username": "an.admin", "password": wrong, "totp_code": code}),
            )
            .await;
            if i < 5 {
                assert_eq!(r.status(), 401, "attempt {i}");
            } else {
                assert_eq!(r.status(), 423, "attempt {i}");
            }
        }
        let events = security_events(&app, "auth.brute_force", 1).await;
        assert_eq!(events.len(), 1, "exactly one event: {events:#?}");
        let (d, e) = &events[0];
        assert_eq!(d.stream, STREAM);
        assert_eq!(
            d.headers.get("kind").map(String::as_str),
            Some("auth.brute_force")
        );
        assert_eq!(d.headers.get("severity").map(String::as_str), Some("high"));
        assert_eq!(d.priority, etx_domain::Priority::High);
        assert_eq!(e["severity"], "high");
        assert_eq!(d.key, e["key"].as_str().unwrap());
        assert!(d.key.starts_with("auth.brute_force:an.admin:"), "{}", d.key);
        let ev = &e["evidence"];
        assert_eq!(ev["username"], "an.admin");
        assert_eq!(ev["user_id"], json!(id));
        assert_eq!(ev["failures"], 5);
        assert_eq!(ev["outcomes"], json!({"bad_password": 5}));
        assert_eq!(ev["distinct_ips"], 1);
        assert_eq!(ev["ips"], json!(["127.0.0.1"]));
        assert!(ev["first_at"].is_string() && ev["last_at"].is_string());
        let body = String::from_utf8(d.body.clone()).unwrap();
        for secret in [wrong, password.as_str(), code.as_str()] {
            assert!(
                !body.contains(secret),
                "the event carries no password or code: {body}"
            );
        }
    }
);

both_backends!(
    a_revoked_key_hammered_over_https_raises_one_event_with_the_clients_address,
    |app: TestApp| async move {
        let keys: Value = app.get("/api/v1/keys", &app.key_a).await.json().await.unwrap();
        let key = keys[0].clone();
        let del = app
            .client
            .delete(app.url(&format!("/api/v1/keys/{}", key["id"].as_str().unwrap())))
            .header("x-api-key", &app.key_a)
            .send()
            .await
            .unwrap();
        assert_eq!(del.status(), 204);
        for _ in 0..50 {
            let r = app.get("/api/v1/organisations/me", &app.key_a).await;
            assert_eq!(r.status(), 401);
        }
        let events = security_events(&app, "auth.revoked_key_used", 1).await;
        assert_eq!(events.len(), 1, "one event for 50 uses: {events:#?}");
        let (d, e) = &events[0];
        assert_eq!(d.headers.get("severity").map(String::as_str), Some("medium"));
        assert_eq!(e["severity"], "medium");
        let ev = &e["evidence"];
        assert_eq!(ev["key_id"], key["id"]);
        assert_eq!(ev["system_id"], key["system_id"]);
        assert!(ev["org_id"].is_string());
        assert_eq!(ev["ip"], "127.0.0.1", "the gateway passes the client's address");
        assert!(ev["revoked_at"].is_string());
        let body = String::from_utf8(d.body.clone()).unwrap();
        assert!(!body.contains(&app.key_a), "the key itself never travels");
    }
);
