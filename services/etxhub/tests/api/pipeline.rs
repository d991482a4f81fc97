//! The masking stage of the pipeline, through the whole application (issue 5 §1–3, R-ING-2,
//! R-SEC-10): accepted records are masked without anyone touching them; a record declared
//! masked that still carries a clear identifier is held; and the **PII canary** — synthetic
//! citizen ids, tax codes and phone numbers seeded into submissions appear in clear nowhere:
//! no database column (other than the encrypted payload, which is ciphertext), no queue
//! message (embedded queue tables, Redis streams), no error body.

use crate::both_backends;
use crate::helpers::*;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::time::Duration;

/// The synthetic identifiers seeded into submissions.
const CANARIES: [&str; 5] = [
    "079190000123", // CCCD (Hồ Chí Minh, female born 1990)
    "0100233488",   // MST with a valid check digit
    "0314409058",   // MST of a branch (…-002 below)
    "0912345678",   // mobile phone
    "Nguyễn Thị Minh Thư",
];

/// A statistics record whose free-text note carries two tax codes and a phone number.
fn noted_statistics(key: &str) -> Value {
    let mut r = stats_record(11.0, Some(key));
    r["payload"]["note"] =
        json!("Doanh nghiệp MST 0100233488 và chi nhánh 0314409058-002, liên hệ 0912 345 678.");
    r
}

/// The masking stage's row of `record` — its status and whether it keeps a (sealed) payload:
/// waits (up to 20 s) for it.
async fn masked_row(app: &TestApp, record: &str) -> (String, bool) {
    let db = app.app_db().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let id = uuid::Uuid::parse_str(record).unwrap();
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT status, CASE WHEN payload IS NULL THEN 0 ELSE 1 END AS sealed FROM masked_records WHERE record_id = $1",
                [id.into()],
            ))
            .await
            .unwrap();
        if let Some(row) = row {
            return (
                row.try_get("", "status").unwrap(),
                row.try_get::<i32>("", "sealed").unwrap() == 1,
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "record {record} was never masked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_no_canary(what: &str, text: &str) {
    for c in CANARIES {
        assert!(!text.contains(c), "{what} holds the clear value {c}: {text}");
    }
}

/// Every text-like value of every table, except `records.payload` (AES-256-GCM ciphertext).
async fn database_text(app: &TestApp) -> Vec<(String, String)> {
    let db = app.app_db().await;
    let backend = db.get_database_backend();
    let tables_sql = if backend == sea_orm::DbBackend::Postgres {
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'"
    } else {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    };
    let tables: Vec<String> = db
        .query_all_raw(Statement::from_string(backend, tables_sql))
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String>("", "name").unwrap())
        .collect();
    assert!(tables.iter().any(|t| t == "masked_records"), "{tables:?}");
    let mut out = Vec::new();
    for t in tables {
        let sql = if backend == sea_orm::DbBackend::Postgres {
            format!("SELECT row_to_json(x)::text AS j FROM \"{t}\" x")
        } else {
            // Every column as text (BLOBs as text too: a clear value inside one would show).
            let cols: Vec<String> = db
                .query_all_raw(Statement::from_string(
                    backend,
                    format!("PRAGMA table_info(\"{t}\")"),
                ))
                .await
                .unwrap()
                .iter()
                .map(|r| r.try_get::<String>("", "name").unwrap())
                .filter(|c| !(t == "records" && c == "payload"))
                .map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), '')"))
                .collect();
            format!("SELECT {} AS j FROM \"{t}\"", cols.join(" || '|' || "))
        };
        for r in db
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap()
        {
            let mut j: String = r.try_get("", "j").unwrap_or_default();
            if t == "records" && backend == sea_orm::DbBackend::Postgres {
                // The encrypted payload column, as hex in row_to_json: drop it.
                if let Ok(mut v) = serde_json::from_str::<Value>(&j) {
                    v["payload"] = Value::Null;
                    j = v.to_string();
                }
            }
            out.push((t.clone(), j));
        }
    }
    out
}

/// Every entry of every stream under the test's Redis prefix, as text.
async fn redis_text(app: &TestApp) -> Vec<String> {
    let client = redis::Client::open(app.cfg.queue.redis_url.expose()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let pattern = format!("{}*", app.cfg.queue.key_prefix);
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "no Redis key under {pattern}");
    let mut out = Vec::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE").arg(&k).query_async(&mut con).await.unwrap();
        let v: redis::Value = match kind.as_str() {
            "stream" => redis::cmd("XRANGE")
                .arg(&k)
                .arg("-")
                .arg("+")
                .query_async(&mut con)
                .await
                .unwrap(),
            "hash" => redis::cmd("HGETALL").arg(&k).query_async(&mut con).await.unwrap(),
            "string" => redis::cmd("GET").arg(&k).query_async(&mut con).await.unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query_async(&mut con)
                .await
                .unwrap(),
            "set" => redis::cmd("SMEMBERS")
                .arg(&k)
                .query_async(&mut con)
                .await
                .unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query_async(&mut con)
                .await
                .unwrap(),
            _ => redis::Value::Nil,
        };
        out.push(format!("{k}: {}", redis_value_text(&v)));
    }
    out
}

fn redis_value_text(v: &redis::Value) -> String {
    match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        redis::Value::SimpleString(s) => s.clone(),
        redis::Value::Array(a) | redis::Value::Set(a) => {
            a.iter().map(redis_value_text).collect::<Vec<_>>().join(" ")
        }
        redis::Value::Map(m) => m
            .iter()
            .map(|(k, v)| format!("{}={}", redis_value_text(k), redis_value_text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => format!("{other:?}"),
    }
}

both_backends!(
    accepted_records_are_masked_and_no_clear_identifier_is_left_anywhere,
    |app: TestApp| async move {
        let expert_id = submit_record(
            &app,
            &expert_record("079190000123", "0912345678", "raw", "canary-expert"),
        )
        .await;
        let stats_id = submit_record(&app, &noted_statistics("canary-note")).await;
        // A submission refused for its shape: the error body names paths, never the values.
        let mut bad = expert_record("079190000123", "0912345678", "raw", "canary-bad");
        bad["payload"]["expert"]["date_of_birth"] = json!("1990-01-01");
        bad["payload"]["note"] = json!("MST 0100233488");
        let r = app.submit_json(&bad).await;
        assert_eq!(r.status(), 422);
        assert_no_canary("an error body", &r.text().await.unwrap());

        for id in [&expert_id, &stats_id] {
            let (status, sealed) = masked_row(&app, id).await;
            assert_eq!((status.as_str(), sealed), ("masked", true));
        }
        // The source still reads its own record back in clear (it sent it).
        let own: Value = app
            .get(&format!("/api/v1/records/{expert_id}"), &app.key_a)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(own["payload"]["expert"]["citizen_id"], "079190000123");

        // The canary: no table, no queue message holds a seeded value in clear.
        for (table, text) in database_text(&app).await {
            assert_no_canary(&format!("table {table}"), &text);
        }
        if app.cfg.queue.kind == "redis" {
            for text in redis_text(&app).await {
                assert_no_canary("a Redis key", &text);
            }
        }
    }
);

both_backends!(
    a_record_declared_masked_that_still_carries_a_citizen_id_is_held,
    |app: TestApp| async move {
        let leaky = submit_record(
            &app,
            &expert_record("079190000123", "090****123", "masked", "held-1"),
        )
        .await;
        let mut masked = expert_record("********0123", "090****123", "masked", "held-2");
        masked["payload"]["expert"]["full_name"] = json!("[REDACTED]");
        masked["payload"]["expert"]["email"] = json!("t***@example.vn");
        let clean = submit_record(&app, &masked).await;
        let (status, sealed) = masked_row(&app, &leaky).await;
        assert_eq!(
            (status.as_str(), sealed),
            ("held", false),
            "a held record is not passed on"
        );
        let (status, sealed) = masked_row(&app, &clean).await;
        assert_eq!((status.as_str(), sealed), ("masked", true));
        for (table, text) in database_text(&app).await {
            assert_no_canary(&format!("table {table}"), &text);
        }
    }
);

both_backends!(
    held_records_are_listed_for_operators_of_the_subtree_without_values,
    |app: TestApp| async move {
        use etx_domain::authz::roles;
        let leaky = submit_record(
            &app,
            &expert_record("079190000123", "090****123", "masked", "held-list"),
        )
        .await;
        let (status, _) = masked_row(&app, &leaky).await;
        assert_eq!(status, "held");
        let (_, operator, _, _, _) =
            crate::users::enrolled(&app, "SO-KHCN-HCM", "van.hanh.giu", roles::OPERATOR).await;
        let (_, other, _, _, _) =
            crate::users::enrolled(&app, "SO-KHCN-HN", "van.hanh.khac", roles::OPERATOR).await;
        let (status, body) = get_as(&app, &operator, "/api/v1/masking/held").await;
        assert_eq!(status, 200, "{body}");
        let records = body["records"].as_array().unwrap();
        assert_eq!(records.len(), 1, "{body}");
        assert_eq!(records[0]["record_id"], leaky.as_str());
        assert_eq!(records[0]["form"], "masked");
        let kinds: Vec<&str> = records[0]["findings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["kind"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"citizen_id"), "{body}");
        assert_no_canary("the held list", &body.to_string());
        // Another province's operator: nothing of it.
        let (status, body) = get_as(&app, &other, "/api/v1/masking/held").await;
        assert_eq!(
            (status, body["records"].as_array().map(Vec::len)),
            (200, Some(0)),
            "{body}"
        );
        let (status, body) = get_as(&app, &operator, "/api/v1/masking/held?limit=0").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_parameter")),
            "{body}"
        );
        // Connected systems never operate the pipeline.
        let r = app.get("/api/v1/masking/held", &app.key_a).await;
        assert_eq!(r.status(), 403);
    }
);

both_backends!(
    administrators_watch_the_pipeline_and_replay_dead_letters,
    |app: TestApp| async move {
        use etx_domain::authz::roles;
        let (_, admin, _, _, _) =
            crate::users::enrolled(&app, "SO-KHCN-HN", "quan.tri.ong", roles::SYSTEM_ADMIN).await;
        let (_, operator, _, _, _) =
            crate::users::enrolled(&app, "SO-KHCN-HCM", "van.hanh.ong", roles::OPERATOR).await;
        // A poison message on records.received: the masking stage dead-letters it at once.
        let db = app.app_db().await;
        let queue = etxhub::app::open_queue(&app.cfg, &db).await.unwrap();
        queue
            .publish(
                "records.received",
                &[etx_queue::OutMessage {
                    key: "poison-1".into(),
                    priority: etx_queue::Priority::Normal,
                    headers: Default::default(),
                    body: b"not json".to_vec(),
                }],
            )
            .await
            .unwrap();
        let list = "/api/v1/pipeline/dead-letters?stream=records.received";
        let first = wait_for_dead_letter(&app, &admin, list, None).await;
        assert_eq!(first["key"], "poison-1");
        assert_eq!(first["body"], Value::Null, "not JSON: shown as null");
        assert!(!first["reason"].as_str().unwrap().is_empty());
        assert!(first["attempts"].as_u64().unwrap() >= 1);

        let (status, body) = get_as(&app, &admin, "/api/v1/pipeline").await;
        assert_eq!(status, 200, "{body}");
        let streams = body["streams"].as_array().unwrap();
        assert_eq!(streams[0]["stream"], "records.received");
        assert_eq!(streams[0]["group"], "masking");
        assert_eq!(streams[0]["dead_letters"], 1);
        assert!(streams[0]["lag"].is_u64(), "{body}");
        assert_eq!(streams[1]["stream"], "events.orgs");

        // Replayed: it leaves the dead letters, fails again and comes back under a new id.
        let id = first["id"].as_str().unwrap();
        let r = crate::users::call(
            &app,
            reqwest::Method::POST,
            &format!("/api/v1/pipeline/dead-letters/{id}/replay?stream=records.received"),
            &admin,
            None,
            true,
        )
        .await;
        assert_eq!(r.status(), 204);
        let again = wait_for_dead_letter(&app, &admin, list, Some(id)).await;
        assert_eq!(again["key"], "poison-1");
        // Unknown id, unknown stream.
        let r = crate::users::call(
            &app,
            reqwest::Method::POST,
            "/api/v1/pipeline/dead-letters/0-0/replay?stream=records.received",
            &admin,
            None,
            true,
        )
        .await;
        assert_eq!(r.status(), 404);
        let (status, body) = get_as(&app, &admin, "/api/v1/pipeline/dead-letters?stream=secrets").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("invalid_parameter")),
            "{body}"
        );

        // The pipeline is the hub's: an operator of a province (not the root organisation) and a
        // connected system are refused.
        let (status, body) = get_as(&app, &operator, "/api/v1/pipeline").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("forbidden")),
            "{body}"
        );
        assert_eq!(app.get("/api/v1/pipeline", &app.key_a).await.status(), 403);
    }
);

/// Waits (up to 20 s) for a dead letter on `list` whose id is not `not`; returns it.
async fn wait_for_dead_letter(
    app: &TestApp,
    who: &crate::users::Session,
    list: &str,
    not: Option<&str>,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get_as(app, who, list).await;
        assert_eq!(status, 200, "{body}");
        let letters = body["dead_letters"].as_array().unwrap();
        if let Some(d) = letters.iter().find(|d| Some(d["id"].as_str().unwrap()) != not) {
            assert!(
                letters.iter().all(|d| Some(d["id"].as_str().unwrap()) != not),
                "the replayed letter is still listed: {body}"
            );
            return d.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no dead letter appeared: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_backends!(
    records_flow_through_reconciliation_and_a_resent_fact_makes_one_canonical_record,
    |app: TestApp| async move {
        // The same figure sent twice under two idempotency keys (a re-send), and another one.
        let first = submit_record(&app, &stats_record(41.0, Some("rec-1"))).await;
        let again = submit_record(&app, &stats_record(41.0, Some("rec-2"))).await;
        let mut other = stats_record(42.0, Some("rec-3"));
        other["payload"]["indicator"] = json!("failed_transactions");
        let other = submit_record(&app, &other).await;
        let (kind_first, canonical_first) = reconciliation_outcome(&app, &first).await;
        let (kind_again, canonical_again) = reconciliation_outcome(&app, &again).await;
        let (kind_other, canonical_other) = reconciliation_outcome(&app, &other).await;
        assert_eq!(kind_first, "new_canonical");
        assert_eq!(kind_again, "duplicate", "a re-send of the same fact");
        assert_eq!(canonical_first, canonical_again);
        assert_eq!(kind_other, "new_canonical");
        assert_ne!(canonical_other, canonical_first);
        // Provenance: the canonical record lists both contributions.
        let db = app.app_db().await;
        let n: i64 = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM rec_contributions WHERE canonical_id = $1",
                [canonical_first.unwrap().into()],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get("", "n")
            .unwrap();
        assert_eq!(n, 2);
        for (table, text) in database_text(&app).await {
            assert_no_canary(&format!("table {table}"), &text);
        }
    }
);
