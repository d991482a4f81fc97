//! Role × organisation *subtree* (issue 4 §3, DESIGN.md §5 "a province sees its own subtree"):
//! a person reads the records, receipts and exports of their home organisation and of every
//! organisation below it — never above or beside it — while a connected system reads back only
//! its own organisation's. Identity announces the hierarchy on `events.orgs`; ingestion keeps a
//! replica of it (`etx_storage::org_tree`).

use crate::both_backends;
use crate::helpers::*;
use crate::users::{Session, call, enrolled};
use etx_domain::authz::roles;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

async fn read(app: &TestApp, who: &Session, path: &str) -> (u16, Value) {
    let r = call(app, Method::GET, path, who, None, false).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits (up to 15 s) until `who` reads `path` with 200: the replica follows identity's events.
async fn eventually_readable(app: &TestApp, who: &Session, path: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = read(app, who, path).await;
        if status == 200 {
            return body;
        }
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            std::time::Instant::now() < deadline,
            "{path} never became readable within the subtree"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn exported_ids(body: &Value) -> Vec<String> {
    body.as_array()
        .unwrap_or_else(|| panic!("a JSON array: {body}"))
        .iter()
        .map(|r| r["record_id"].as_str().or(r["id"].as_str()).unwrap().to_owned())
        .collect()
}

both_backends!(
    people_read_their_subtree_and_systems_their_own_organisation,
    |app: TestApp| async move {
        // SO-KHCN-HCM gets a department below it, with its own connected system.
        let (_, admin, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "quan.tri.cay", roles::SYSTEM_ADMIN).await;
        let body = json!({
            "org_code": "HCM-STTTT",
            "org_name": "Sở Thông tin và Truyền thông TP. Hồ Chí Minh",
            "org_kind": "provincial_department",
            "parent_code": "SO-KHCN-HCM",
            "system_name": "Cổng dữ liệu giao dịch điện tử",
        });
        let r = call(&app, Method::POST, "/api/v1/onboarding", &admin, Some(body), true).await;
        assert_eq!(r.status(), 201);
        let onboarded: Value = r.json().await.unwrap();
        let child_key = onboarded["api_key"].as_str().unwrap().to_owned();

        // The department submits one record; SO-KHCN-HCM's own system another.
        let r = app
            .client
            .post(app.url("/api/v1/records"))
            .header("x-api-key", &child_key)
            .json(&stats_record(7.0, Some("cay-con")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let receipt: Value = r.json().await.unwrap();
        let child_record = receipt["record_ids"][0].as_str().unwrap().to_owned();
        let child_receipt = receipt["receipt_id"].as_str().unwrap().to_owned();
        let receipt: Value = app
            .submit_json(&stats_record(8.0, Some("cay-cha")))
            .await
            .json()
            .await
            .unwrap();
        let parent_record = receipt["record_ids"][0].as_str().unwrap().to_owned();

        let (_, operator, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "van.hanh.hcm", roles::OPERATOR).await;
        let (_, child_operator, _, _, _) =
            enrolled(&app, "HCM-STTTT", "van.hanh.stttt", roles::OPERATOR).await;
        let (_, other, _, _, _) = enrolled(&app, "SO-KHCN-HN", "van.hanh.hn", roles::OPERATOR).await;

        // A person of the parent reads the department's record and receipt…
        let rec = eventually_readable(&app, &operator, &format!("/api/v1/records/{child_record}")).await;
        assert_eq!(
            rec["id"].as_str().or(rec["record_id"].as_str()),
            Some(child_record.as_str())
        );
        assert_eq!(rec["provenance"]["org_id"], onboarded["org_id"], "{rec}");
        let (status, _) = read(&app, &operator, &format!("/api/v1/receipts/{child_receipt}")).await;
        assert_eq!(status, 200);
        // …and exports both organisations' records.
        let (status, exported) = read(&app, &operator, "/api/v1/exports/records?format=json").await;
        assert_eq!(status, 200);
        let ids = exported_ids(&exported);
        assert!(
            ids.contains(&child_record) && ids.contains(&parent_record),
            "{ids:?}"
        );

        // The department's person reads their own, never the parent's (the subtree goes down).
        let (status, _) = read(&app, &child_operator, &format!("/api/v1/records/{child_record}")).await;
        assert_eq!(status, 200);
        let (status, problem) =
            read(&app, &child_operator, &format!("/api/v1/records/{parent_record}")).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (404, Some("not_found")),
            "{problem}"
        );
        let (_, exported) = read(&app, &child_operator, "/api/v1/exports/records?format=json").await;
        assert_eq!(exported_ids(&exported), std::slice::from_ref(&child_record));

        // Another province's person: neither exists.
        for path in [
            format!("/api/v1/records/{child_record}"),
            format!("/api/v1/records/{parent_record}"),
            format!("/api/v1/receipts/{child_receipt}"),
        ] {
            let (status, problem) = read(&app, &other, &path).await;
            assert_eq!(
                (status, problem["code"].as_str()),
                (404, Some("not_found")),
                "{path}: {problem}"
            );
        }
        let (_, exported) = read(&app, &other, "/api/v1/exports/records?format=json").await;
        assert_eq!(exported_ids(&exported), Vec::<String>::new());

        // A connected system reads back only its own organisation's: the parent's system does
        // not see the department's record, the department's system does.
        assert_eq!(
            app.get(&format!("/api/v1/records/{child_record}"), &app.key_a)
                .await
                .status(),
            404
        );
        assert_eq!(
            app.get(&format!("/api/v1/records/{child_record}"), &child_key)
                .await
                .status(),
            200
        );
        assert_eq!(
            app.get(&format!("/api/v1/records/{parent_record}"), &child_key)
                .await
                .status(),
            404
        );
    }
);
