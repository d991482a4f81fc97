//! Real-time ingestion: receipts, read-back, idempotency, validation (R-ING-1..5).

use crate::both_backends;
use crate::helpers::*;
use serde_json::{Value, json};

both_backends!(
    a_json_record_is_received_durably_and_read_back,
    |app: TestApp| async move {
        let rec = stats_record(1250.0, None);
        let resp = app.submit_json(&rec).await;
        assert_eq!(resp.status(), 202);
        let location = resp
            .headers()
            .get("location")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let receipt: Value = resp.json().await.unwrap();
        assert_eq!(receipt["record_count"], 1);
        assert!(receipt["content_hash"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(
            location,
            format!("/api/v1/receipts/{}", receipt["receipt_id"].as_str().unwrap())
        );
        let id = receipt["record_ids"][0].as_str().unwrap();

        let got: Value = app
            .get(&format!("/api/v1/records/{id}"), &app.key_a)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(got["payload"], rec["payload"]);
        assert_eq!(got["category"], "statistics");
        assert_eq!(got["period"], "2026-10");
        assert_eq!(got["status"], "received");
        assert_eq!(got["provenance"]["receipt_id"], receipt["receipt_id"]);
        assert_eq!(got["provenance"]["method"], "realtime");

        let r2: Value = app.get(&location, &app.key_a).await.json().await.unwrap();
        assert_eq!(r2["receipt_id"], receipt["receipt_id"]);
        assert_eq!(r2["record_ids"], receipt["record_ids"]);
        assert_eq!(r2["content_hash"], receipt["content_hash"]);
        assert_eq!(app.count("records").await, 1);
    }
);

both_backends!(
    an_array_gets_one_receipt_listing_every_record,
    |app: TestApp| async move {
        let body = json!([
            stats_record(1.0, None),
            stats_record(2.0, None),
            stats_record(3.0, None)
        ]);
        let resp = app.submit_json(&body).await;
        assert_eq!(resp.status(), 202);
        let receipt: Value = resp.json().await.unwrap();
        assert_eq!(receipt["record_ids"].as_array().unwrap().len(), 3);
        assert_eq!(app.count("records").await, 3);
        assert_eq!(app.count("receipts").await, 1);
    }
);

both_backends!(
    an_xml_record_is_received_and_reads_back_like_json,
    |app: TestApp| async move {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<records xmlns="urn:etxhub:ingestion:v1">
  <record>
    <category>statistics</category><schema_version>1</schema_version><period>2026-10</period>
    <classification>internal</classification><priority>high</priority><form>raw</form>
    <payload>
      <indicator>transaction_count</indicator><transaction_kind>e_contract</transaction_kind>
      <value>42</value><unit>count</unit>
      <dimensions><province_code>01</province_code></dimensions>
      <note>Hợp đồng điện tử — Hà Nội</note>
    </payload>
  </record>
</records>"#;
        let resp = app.submit_raw("application/xml", xml).await;
        assert_eq!(resp.status(), 202);
        assert!(
            resp.headers()
                .get("content-type")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("xml")
        );
        let text = resp.text().await.unwrap();
        let start = text.find("<record_id>").unwrap() + "<record_id>".len();
        let id = &text[start..start + 36];
        let got: Value = app
            .get(&format!("/api/v1/records/{id}"), &app.key_a)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(got["payload"]["value"], json!(42));
        assert_eq!(got["payload"]["note"], "Hợp đồng điện tử — Hà Nội");
        assert_eq!(got["priority"], "high");
    }
);

both_backends!(
    the_same_idempotency_key_and_body_returns_the_original_receipt,
    |app: TestApp| async move {
        let rec = stats_record(7.0, None);
        let send = || {
            app.client
                .post(app.url("/api/v1/records"))
                .header("x-api-key", &app.key_a)
                .header("content-type", "application/json")
                .header("idempotency-key", "hcm-2026-10-einvoice")
                .body(rec.to_string())
                .send()
        };
        let first: Value = send().await.unwrap().json().await.unwrap();
        let again = send().await.unwrap();
        assert_eq!(again.status(), 202);
        assert_eq!(again.headers().get("idempotent-replayed").unwrap(), "true");
        let second: Value = again.json().await.unwrap();
        assert_eq!(first["receipt_id"], second["receipt_id"]);
        assert_eq!(first["record_ids"], second["record_ids"]);
        assert_eq!(app.count("records").await, 1);
        assert_eq!(app.count("receipts").await, 1);
    }
);

both_backends!(
    the_same_idempotency_key_with_another_body_is_a_conflict,
    |app: TestApp| async move {
        let r1 = stats_record(7.0, Some("k-1"));
        assert_eq!(app.submit_json(&r1).await.status(), 202);
        let r2 = stats_record(8.0, Some("k-1"));
        let resp = app.submit_json(&r2).await;
        assert_eq!(resp.status(), 409);
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["code"], "idempotency_conflict");
        assert_eq!(app.count("records").await, 1);
    }
);

both_backends!(
    concurrent_retries_with_one_key_store_one_record,
    |app: TestApp| async move {
        let rec = stats_record(9.0, Some("retry-storm"));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let c = app.client.clone();
            let url = app.url("/api/v1/records");
            let key = app.key_a.clone();
            let body = rec.to_string();
            tasks.push(tokio::spawn(async move {
                let r = c
                    .post(url)
                    .header("x-api-key", key)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                r.json::<Value>().await.unwrap()["record_ids"][0]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }));
        }
        let mut ids = std::collections::HashSet::new();
        for t in tasks {
            ids.insert(t.await.unwrap());
        }
        assert_eq!(ids.len(), 1, "every retry must point at the same record");
        assert_eq!(app.count("records").await, 1);
    }
);

both_backends!(
    another_organisation_gets_404_for_records_and_receipts,
    |app: TestApp| async move {
        let receipt: Value = app
            .submit_json(&stats_record(1.0, None))
            .await
            .json()
            .await
            .unwrap();
        let rec_id = receipt["record_ids"][0].as_str().unwrap();
        let rcpt_id = receipt["receipt_id"].as_str().unwrap();
        for path in [
            format!("/api/v1/records/{rec_id}"),
            format!("/api/v1/receipts/{rcpt_id}"),
        ] {
            let r = app.get(&path, &app.key_b).await;
            assert_eq!(r.status(), 404, "{path}");
            let p: Value = r.json().await.unwrap();
            assert_eq!(p["code"], "not_found");
            let own = app.get(&path, &app.key_a).await;
            assert_eq!(own.status(), 200, "{path}");
        }
    }
);

both_backends!(schemas_are_published, |app: TestApp| async move {
    let list: Value = app.get("/api/v1/schemas", &app.key_a).await.json().await.unwrap();
    assert_eq!(list["categories"].as_array().unwrap().len(), 4);
    let s = app.get("/api/v1/schemas/statistics/1", &app.key_a).await;
    assert_eq!(s.status(), 200);
    let schema: Value = s.json().await.unwrap();
    assert!(schema["properties"].is_object());
    let missing = app.get("/api/v1/schemas/statistics/99", &app.key_a).await;
    assert_eq!(missing.status(), 404);
});

both_backends!(payloads_are_stored_encrypted, |app: TestApp| async move {
    let mut rec = stats_record(5.0, None);
    rec["payload"]["note"] = json!("CANARY-7f3e2d1c-ghi-chu");
    assert_eq!(app.submit_json(&rec).await.status(), 202);
    let db = app.db_conn().await;
    let backend = db.get_database_backend();
    use sea_orm::ConnectionTrait;
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            backend,
            "SELECT payload FROM records".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    let blob: Vec<u8> = row.try_get("", "payload").unwrap();
    assert!(!String::from_utf8_lossy(&blob).contains("CANARY-7f3e2d1c"));
    assert_eq!(&blob[..3], b"ETX");
});

both_backends!(
    accepted_records_are_announced_on_records_received_without_payload,
    |app: TestApp| async move {
        use etx_queue::Queue;
        let mut rec = stats_record(11.0, None);
        rec["payload"]["note"] = json!("PAYLOAD-MUST-NOT-TRAVEL");
        let receipt: Value = app.submit_json(&rec).await.json().await.unwrap();
        let id = receipt["record_ids"][0].as_str().unwrap().to_owned();
        let queue: std::sync::Arc<dyn Queue> = if app.cfg.queue.kind == "redis" {
            std::sync::Arc::new(
                etx_queue::RedisQueue::connect(app.cfg.queue.redis_url.expose(), &app.cfg.queue.key_prefix)
                    .unwrap(),
            )
        } else {
            std::sync::Arc::new(etx_queue::EmbeddedQueue::new(app.db_conn().await))
        };
        queue.ensure_group("records.received", "test").await.unwrap();
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(
                queue
                    .consume(
                        "records.received",
                        "test",
                        "t",
                        10,
                        std::time::Duration::from_millis(100),
                    )
                    .await
                    .unwrap(),
            );
            if !got.is_empty() {
                break;
            }
        }
        assert_eq!(got.len(), 1, "the outbox relay publishes the record");
        assert_eq!(got[0].key, id);
        let body: Value = serde_json::from_slice(&got[0].body).unwrap();
        assert_eq!(body["records"][0]["record_id"], json!(id));
        assert_eq!(body["records"][0]["category"], "statistics");
        assert_eq!(body["receipt_id"], receipt["receipt_id"]);
        assert!(!String::from_utf8_lossy(&got[0].body).contains("PAYLOAD-MUST-NOT-TRAVEL"));
        // Published, so removed (other modules' start-up announcements may still be queued).
        assert_eq!(app.count("outbox WHERE stream = 'records.received'").await, 0);
    }
);
