//! The connection and audit log through the whole application (R-SEC-9, Decree Art. 8.3):
//! every request through the gateway is logged with who, organisation, system, address,
//! route, status, bytes, duration and body hash; administrative actions and raw reads are
//! marked; the chain verifies, and tampering is found at the exact entry.

use crate::both_backends;
use crate::helpers::*;
use etx_audit::store::entities::audit_log;
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, Statement};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Waits until the log holds at least `n` entries (the writer batches every ~50 ms).
async fn wait_entries(app: &TestApp, n: i64) {
    for _ in 0..200 {
        if app.count("audit_log").await >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the audit log never reached {n} entries");
}

async fn rows(app: &TestApp) -> Vec<audit_log::Model> {
    audit_log::Entity::find()
        .order_by_asc(audit_log::Column::Seq)
        .all(&app.db_conn().await)
        .await
        .unwrap()
}

both_backends!(
    every_request_is_logged_with_who_what_and_a_body_hash,
    |app: TestApp| async move {
        let record = stats_record(12.0, Some("audit-1"));
        let body = record.to_string();
        let resp = app.submit_json(&record).await;
        assert_eq!(resp.status(), 202);
        let receipt: Value = resp.json().await.unwrap();
        let record_id = receipt["record_ids"][0].as_str().unwrap().to_owned();
        // A refused credential, a raw read, and an administrative action.
        assert_eq!(app.get("/api/v1/systems", "etx_nope_nope").await.status(), 401);
        assert_eq!(
            app.get(&format!("/api/v1/records/{record_id}?fields=all"), &app.key_a)
                .await
                .status(),
            200
        );
        let issued = app
            .client
            .post(app.url("/api/v1/keys"))
            .header("x-api-key", &app.key_a)
            .send()
            .await
            .unwrap();
        assert_eq!(issued.status(), 201);
        wait_entries(&app, 4).await;

        let rows = rows(&app).await;
        assert_eq!(rows.len(), 4, "one entry per request");
        let submit = &rows[0];
        assert_eq!(submit.kind, "request");
        assert!(submit.subject.starts_with("system:"));
        assert!(submit.org_id.is_some() && submit.system_id.is_some() && submit.key_id.is_some());
        assert_eq!(submit.method.as_deref(), Some("POST"));
        assert_eq!(submit.route.as_deref(), Some("/api/v1/records"));
        assert_eq!(submit.status, Some(202));
        assert_eq!(submit.bytes_in, body.len() as i64);
        assert!(submit.bytes_out > 0);
        assert_eq!(
            submit.payload_hash.as_deref(),
            Some(Sha256::digest(body.as_bytes()).as_slice())
        );
        assert_eq!(submit.ip.as_deref(), Some("127.0.0.1"));

        let refused = &rows[1];
        assert_eq!(refused.subject, "anonymous");
        assert_eq!(refused.status, Some(401));

        let read = &rows[2];
        assert_eq!(read.kind, "raw_read");
        assert_eq!(read.action.as_deref(), Some("record.read"));
        assert_eq!(
            read.route.as_deref(),
            Some(format!("/api/v1/records/{record_id}?fields").as_str()),
            "query values are never logged"
        );
        let admin = &rows[3];
        assert_eq!(admin.kind, "admin_action");
        assert_eq!(admin.action.as_deref(), Some("api_key.issue"));

        match etxhub::verify_audit(&app.cfg).await.unwrap() {
            etx_audit_core::VerifyReport::Ok { checked, .. } => assert!(checked >= 4),
            broken => panic!("{broken:?}"),
        }
    }
);

both_backends!(
    tampering_with_one_entry_is_found_at_that_entry,
    |app: TestApp| async move {
        for i in 0..5 {
            assert_eq!(
                app.submit_json(&stats_record(f64::from(i), None)).await.status(),
                202
            );
        }
        wait_entries(&app, 5).await;
        let db = app.db_conn().await;
        // Someone with database access turns a refusal into a success on entry 3.
        db.execute_raw(Statement::from_string(
            db.get_database_backend(),
            "UPDATE audit_log SET status = 200 WHERE seq = 3",
        ))
        .await
        .unwrap();
        match etxhub::verify_audit(&app.cfg).await.unwrap() {
            etx_audit_core::VerifyReport::Broken { checked, at } => {
                assert_eq!(at.seq, 3, "{at}");
                assert_eq!(checked, 2);
            }
            ok => panic!("tampering not detected: {ok:?}"),
        }
    }
);

async fn with_tight_limits(backend: &'static str) -> (TestApp, ()) {
    let app = TestApp::spawn_with(backend, |c| {
        c.rate_limits.per_key = etxhub::config::RateCfg { rate: 1.0, burst: 1 };
        c.audit.refusal_summary_secs = 1;
    })
    .await;
    (app, ())
}

both_backends!(
    a_flood_of_refusals_is_the_first_entry_and_one_summary,
    with = with_tight_limits,
    |app: TestApp, ()| async move {
        // R-SEC-9 with R-SEC-2 (issue 4 §6): 40 requests of one key within a second, one
        // accepted, 39 refused with 429 — not 40 rows.
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(
                app.get("/api/v1/organisations/me", &app.key_a)
                    .await
                    .status()
                    .as_u16(),
            );
        }
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 39);
        wait_entries(&app, 3).await;
        // The summary is written once the 1 s window has passed.
        for _ in 0..100 {
            if rows(&app)
                .await
                .iter()
                .any(|r| r.action.as_deref() == Some("rate_limited.summary"))
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let rows = rows(&app).await;
        let refused: Vec<_> = rows.iter().filter(|r| r.status == Some(429)).collect();
        assert_eq!(refused.len(), 2, "the first refusal and one summary: {refused:?}");
        assert_eq!(refused[0].action, None);
        let summary = refused[1];
        assert_eq!(summary.action.as_deref(), Some("rate_limited.summary"));
        let detail: Value = serde_json::from_str(&summary.detail).unwrap();
        assert_eq!(detail["count"], 38, "{detail}");
        assert!(detail["first_at"].is_string() && detail["last_at"].is_string());
        assert_eq!(summary.key_id, refused[0].key_id);
        assert_eq!(summary.route.as_deref(), Some("/api/v1/organisations/me"));
        match etxhub::verify_audit(&app.cfg).await.unwrap() {
            etx_audit_core::VerifyReport::Ok { .. } => {}
            broken => panic!("{broken:?}"),
        }
    }
);
