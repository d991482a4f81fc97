//! The masking policy API and re-identification through the whole application (issue 5 §2;
//! R-SEC-10, R-SEC-9, R-DATA-3, R-I18N): version 1 is the built-in policy; a new version,
//! published only as current + 1 by a hub-wide administrator or security officer, masks the
//! records received from then on while records stored before keep their version; a document
//! that breaks rules is answered with every violation and its pointer in Vietnamese or
//! English; every change is in the audit log. A reversible token of a masked copy is turned
//! back into its value only for a security officer with a reason, every attempt is logged, and
//! keyed or garbled tokens are refused with a clear error.

use crate::both_backends;
use crate::helpers::*;
use crate::users::{Session, call, enrolled};
use etx_audit::store::entities::audit_log;
use etx_domain::authz::roles;
use reqwest::Method;
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

const CCCD: &str = "079190000123";

/// An expert registration in clear, carrying [`CCCD`].
fn expert(key: &str) -> Value {
    expert_record(CCCD, "0912345678", "raw", key)
}

/// The masking stage's copy of `record`, its payload opened with the hub's data keys: waits
/// (up to 20 s) for it.
async fn masked_copy(app: &TestApp, record: &str) -> etx_masking::MaskedRecord {
    let db = app.app_db().await;
    let secrets = etxhub::secrets::Secrets::load(&app.cfg).unwrap();
    let ring = Arc::new(etx_crypto::KeyRing::new(
        secrets.master.clone(),
        secrets.previous.clone(),
    ));
    let vault = Arc::new(etxhub::pipeline::DataKeyVault::new(
        etx_ingestion::KeyManager::new(db.clone(), ring),
        etxhub::pipeline::MASKED_COPY_TWEAK,
    ));
    let store = etx_masking::MaskedStore::new(db, vault);
    let id: etx_domain::RecordId = record.parse().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(m) = store.masked(id).await.unwrap() {
            return m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "record {record} was never masked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The built-in policy document as `version`, with `edit` applied to the rule of the
/// workforce field `field`.
fn edited(version: u32, field: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut doc: Value = serde_json::from_str(etx_masking_core::BUILTIN_POLICY).unwrap();
    doc["version"] = json!(version);
    doc["description"] = json!(format!("Phiên bản {version}"));
    let rule = doc["fields"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["category"] == "workforce" && r["field"] == field)
        .unwrap();
    edit(rule);
    doc
}

/// Analysts see the last 2 digits of an expert's phone.
fn phone_keeps_2(version: u32) -> Value {
    edited(version, "/expert/phone", |r| {
        r["audiences"]["analyst"] = json!({ "op": "partial", "keep_last": 2 });
    })
}

/// Audit entries of `kind` and `action` (waits up to 10 s for at least one).
async fn audited(app: &TestApp, kind: &str, action: &str) -> Vec<audit_log::Model> {
    for _ in 0..200 {
        let rows: Vec<audit_log::Model> = audit_log::Entity::find()
            .order_by_asc(audit_log::Column::Seq)
            .all(&app.db_conn().await)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.kind == kind && r.action.as_deref() == Some(action))
            .collect();
        if !rows.is_empty() {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {kind} entry {action} in the audit log");
}

/// Asserts that the audit log holds an entry of `kind` and `action` with `status` by `subject`.
async fn assert_audited(app: &TestApp, (kind, action): (&str, &str), status: i32, subject: &str) {
    let entries = audited(app, kind, action).await;
    assert!(
        entries
            .iter()
            .any(|e| e.status == Some(status) && e.subject == subject),
        "{entries:?}"
    );
}

/// POSTs `body` as is (declared JSON) to publish a policy as a signed-in person; returns the
/// status.
async fn publish_raw(app: &TestApp, who: &Session, body: String) -> u16 {
    app.client
        .post(app.url("/api/v1/masking/policies"))
        .header("cookie", &who.cookie)
        .header("x-csrf-token", &who.csrf)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

both_backends!(
    a_published_version_masks_later_records_and_earlier_ones_keep_theirs,
    |app: TestApp| async move {
        let (admin_id, admin, _, _, _) =
            enrolled(&app, "SO-KHCN-HN", "quan.tri.mat.na", roles::SYSTEM_ADMIN).await;
        let (_, operator, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "van.hanh.mat.na", roles::OPERATOR).await;
        let (_, officer, _, _, _) =
            enrolled(&app, "SO-KHCN-HCM", "an.ninh.tinh", roles::SECURITY_OFFICER).await;

        // Version 1 is the built-in policy; an operator reads it.
        let (status, current) = get_as(&app, &operator, "/api/v1/masking/policies/current").await;
        assert_eq!(status, 200, "{current}");
        assert_eq!(current["version"], 1);
        assert_eq!(current["created_by"], "system");
        assert_eq!(current["current"], true);
        let builtin: Value = serde_json::from_str(etx_masking_core::BUILTIN_POLICY).unwrap();
        assert_eq!(current["document"], builtin);
        let before = submit_record(&app, &expert("policy-before")).await;
        let m = masked_copy(&app, &before).await;
        assert_eq!(m.policy_version, 1);
        assert_eq!(m.payload.as_ref().unwrap()["expert"]["phone"], "*******678");

        // Reading is not publishing; a province's security officer may not change the
        // national policy; a connected system may do neither.
        for who in [&operator, &officer] {
            let (status, body) = send_as(
                &app,
                who,
                Method::POST,
                "/api/v1/masking/policies",
                Some(phone_keeps_2(2)),
            )
            .await;
            assert_code(status, &body, (403, "forbidden"));
        }
        let r = app
            .client
            .post(app.url("/api/v1/masking/policies"))
            .header("x-api-key", &app.key_a)
            .json(&phone_keeps_2(2))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(
            app.get("/api/v1/masking/policies", &app.key_a).await.status(),
            403
        );

        // The dry run: valid as version 2, nothing stored.
        let (status, body) = send_as(
            &app,
            &officer,
            Method::POST,
            "/api/v1/masking/policies/validate",
            Some(phone_keeps_2(2)),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body, json!({ "valid": true, "version": 2 }));

        // Published by a system administrator.
        let r = call(
            &app,
            Method::POST,
            "/api/v1/masking/policies",
            &admin,
            Some(phone_keeps_2(2)),
            true,
        )
        .await;
        assert_eq!(r.status(), 201);
        assert_eq!(
            r.headers()["location"].to_str().unwrap(),
            "/api/v1/masking/policies/2"
        );
        let v2: Value = r.json().await.unwrap();
        assert_eq!(v2["version"], 2);
        assert_eq!(v2["created_by"], format!("user:{admin_id}"));
        assert_eq!(v2["document"]["description"], "Phiên bản 2");

        // Two editors from version 1: the second is told the current version.
        for stale in [2, 5] {
            let (status, body) = send_as(
                &app,
                &admin,
                Method::POST,
                "/api/v1/masking/policies",
                Some(phone_keeps_2(stale)),
            )
            .await;
            assert_code(status, &body, (409, "already_exists"));
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap()
                    .contains("current masking policy version is 2"),
                "{body}"
            );
            assert_eq!(body["violations"][0]["path"], "/version");
        }

        // Records received from now on are masked with version 2; the earlier one keeps 1.
        let after = submit_record(&app, &expert("policy-after")).await;
        let m2 = masked_copy(&app, &after).await;
        assert_eq!(m2.policy_version, 2);
        assert_eq!(m2.payload.as_ref().unwrap()["expert"]["phone"], "********78");
        let m1 = masked_copy(&app, &before).await;
        assert_eq!((m1.policy_version, &m1.payload), (1, &m.payload));

        // The versions, newest first; one version; none such.
        let (status, list) = get_as(&app, &operator, "/api/v1/masking/policies").await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["current_version"], 2);
        let versions: Vec<(u64, bool)> = list["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| (v["version"].as_u64().unwrap(), v["current"].as_bool().unwrap()))
            .collect();
        assert_eq!(versions, [(2, true), (1, false)]);
        assert!(list["versions"][0].get("document").is_none(), "metadata only");
        let (status, v1) = get_as(&app, &operator, "/api/v1/masking/policies/1").await;
        assert_eq!(
            (status, &v1["document"], &v1["current"]),
            (200, &builtin, &json!(false))
        );
        let (status, body) = get_as(&app, &operator, "/api/v1/masking/policies/9").await;
        assert_code(status, &body, (404, "not_found"));
        let (status, body) = get_as(&app, &operator, "/api/v1/masking/policies/abc").await;
        assert_code(status, &body, (400, "invalid_parameter"));

        // Every change is an administrative action in the audit log.
        let admin_subject = format!("user:{admin_id}");
        assert_audited(
            &app,
            ("admin_action", "masking_policy.change"),
            201,
            &admin_subject,
        )
        .await;
    }
);

both_backends!(
    a_document_that_breaks_rules_is_refused_with_every_violation_in_vietnamese_or_english,
    |app: TestApp| async move {
        let (_, admin, _, _, _) = enrolled(&app, "SO-KHCN-HN", "quan.tri.sai", roles::SYSTEM_ADMIN).await;
        let mut doc = phone_keeps_2(2);
        doc["colour"] = json!("blue");
        // Personal data kept in clear for the public, and an operator that does not exist.
        doc["fields"][0]["audiences"]["public"] = json!({ "op": "keep" });
        doc["fields"][1]["audiences"]["analyst"] = json!({ "op": "shred" });
        for (lang, title, message) in [
            (None, "Dữ liệu không hợp lệ", "Trường không có trong lược đồ"),
            (
                Some("en"),
                "The data is not valid",
                "This field is not in the schema",
            ),
        ] {
            for path in ["/api/v1/masking/policies", "/api/v1/masking/policies/validate"] {
                let mut r = app
                    .client
                    .post(app.url(path))
                    .header("cookie", &admin.cookie)
                    .header("x-csrf-token", &admin.csrf)
                    .json(&doc);
                if let Some(l) = lang {
                    r = r.header("accept-language", l);
                }
                let r = r.send().await.unwrap();
                assert_eq!(r.status(), 422, "{path}");
                assert_eq!(
                    r.headers()["content-type"].to_str().unwrap(),
                    "application/problem+json"
                );
                let body: Value = r.json().await.unwrap();
                assert_eq!(body["code"], "validation_failed", "{body}");
                assert_eq!(body["title"], title, "{body}");
                let found: Vec<(&str, &str)> = body["violations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| (v["path"].as_str().unwrap(), v["code"].as_str().unwrap()))
                    .collect();
                for want in [
                    ("/colour", "unknown_field"),
                    ("/fields/0/audiences/public", "invalid"),
                    ("/fields/1/audiences/analyst/op", "enum"),
                ] {
                    assert!(found.contains(&want), "{want:?} not in {body}");
                }
                let colour = body["violations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|v| v["path"] == "/colour")
                    .unwrap();
                assert_eq!(colour["message"], message, "{body}");
            }
        }
        // Not JSON at all: 400; larger than the body limit: 413.
        assert_eq!(publish_raw(&app, &admin, "{\"version\": 2,".into()).await, 400);
        let huge = format!(
            "{{\"version\": 2, \"description\": \"{}\"}}",
            "x".repeat(app.cfg.limits.max_body_bytes + 1)
        );
        assert_eq!(publish_raw(&app, &admin, huge).await, 413);
        // Nothing was stored.
        let (status, list) = get_as(&app, &admin, "/api/v1/masking/policies").await;
        assert_eq!((status, &list["current_version"]), (200, &json!(1)));
    }
);

both_backends!(
    a_security_officer_reidentifies_a_reversible_token_with_a_reason_and_every_attempt_is_logged,
    |app: TestApp| async move {
        let (_, admin, _, _, _) = enrolled(&app, "SO-KHCN-HN", "quan.tri.token", roles::SYSTEM_ADMIN).await;
        let (officer_id, officer, _, _, _) =
            enrolled(&app, "SO-KHCN-HCM", "an.ninh.token", roles::SECURITY_OFFICER).await;
        let (_, operator, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "van.hanh.token", roles::OPERATOR).await;
        let (_, auditor, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "kiem.toan.token", roles::AUDITOR).await;
        let (_, auditor_hn, _, _, _) = enrolled(&app, "SO-KHCN-HN", "kiem.toan.hn", roles::AUDITOR).await;

        // Version 2: analysts get a reversible token of an expert's citizen id.
        let doc = edited(2, "/expert/citizen_id", |r| {
            r["audiences"]["analyst"] =
                json!({ "op": "reversible_token", "purpose": "citizen_id.reid", "normalise": "digits" });
        });
        let (status, body) = send_as(&app, &admin, Method::POST, "/api/v1/masking/policies", Some(doc)).await;
        assert_eq!(status, 201, "{body}");
        let record = submit_record(&app, &expert("reid-1")).await;
        let m = masked_copy(&app, &record).await;
        assert_eq!(m.policy_version, 2);
        let token = m.payload.as_ref().unwrap()["expert"]["citizen_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(token.starts_with("rtk_"), "{token}");
        let keyed = m.match_tokens["/expert/citizen_id"].clone();
        assert!(keyed.starts_with("tok_"), "{keyed}");

        let reason = "Vụ việc KN-2026-0042: xác minh danh tính chuyên gia theo yêu cầu của cơ quan điều tra";
        let ask =
            |token: &str, purpose: &str| json!({ "token": token, "purpose": purpose, "reason": reason });

        // The security officer gets the value, uncached.
        let r = call(
            &app,
            Method::POST,
            "/api/v1/masking/reidentify",
            &officer,
            Some(ask(&token, "citizen_id.reid")),
            true,
        )
        .await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["cache-control"].to_str().unwrap(), "no-store");
        let granted: Value = r.json().await.unwrap();
        assert_eq!(granted["value"], CCCD);
        assert_eq!(granted["purpose"], "citizen_id.reid");

        // Nobody else; no connected system.
        let (status, body) = send_as(
            &app,
            &operator,
            Method::POST,
            "/api/v1/masking/reidentify",
            Some(ask(&token, "citizen_id.reid")),
        )
        .await;
        assert_code(status, &body, (403, "forbidden"));
        assert!(!body.to_string().contains(CCCD));
        let r = app
            .client
            .post(app.url("/api/v1/masking/reidentify"))
            .header("x-api-key", &app.key_a)
            .json(&ask(&token, "citizen_id.reid"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);

        // A keyed token, a forged one, a garbled one, another purpose's: 422 at /token, not a
        // 500.
        let forged = format!("rtk_{}", "a".repeat(40));
        for (t, purpose, what) in [
            (keyed.as_str(), "citizen_id.reid", "irreversible"),
            (forged.as_str(), "citizen_id.reid", "not made for this purpose"),
            ("hello", "citizen_id.reid", "not a reversible token"),
            (token.as_str(), "phone.reid", "not made for this purpose"),
        ] {
            let (status, body) = send_as(
                &app,
                &officer,
                Method::POST,
                "/api/v1/masking/reidentify",
                Some(ask(t, purpose)),
            )
            .await;
            assert_eq!(
                (status, body["code"].as_str()),
                (422, Some("validation_failed")),
                "{t}: {body}"
            );
            assert_eq!(body["violations"][0]["path"], "/token", "{body}");
            assert!(body["detail"].as_str().unwrap().contains(what), "{what}: {body}");
            assert!(!body.to_string().contains(CCCD));
        }
        // No reason, or too short a one.
        let (status, body) = send_as(
            &app,
            &officer,
            Method::POST,
            "/api/v1/masking/reidentify",
            Some(json!({ "token": token, "purpose": "citizen_id.reid" })),
        )
        .await;
        assert_code(status, &body, (422, "validation_failed"));
        let (status, body) = send_as(
            &app,
            &officer,
            Method::POST,
            "/api/v1/masking/reidentify",
            Some(json!({ "token": token, "purpose": "citizen_id.reid", "reason": "vì cần" })),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["violations"][0]["path"], "/reason");
        assert_eq!(body["violations"][0]["code"], "too_small");

        // The log: the grant and the four refusals, with a hash of the token, never the value.
        let (status, log) = get_as(&app, &officer, "/api/v1/masking/reidentifications").await;
        assert_eq!(status, 200, "{log}");
        let entries = log["reidentifications"].as_array().unwrap();
        assert_eq!(entries.len(), 5, "{log}");
        let grant = entries.last().unwrap();
        assert_eq!(grant["outcome"], "granted");
        assert_eq!(grant["id"], granted["reidentification_id"]);
        assert_eq!(grant["actor"], format!("user:{officer_id}"));
        assert_eq!(grant["purpose"], "citizen_id.reid");
        assert_eq!(grant["reason"], reason);
        assert_eq!(
            grant["token_sha256"],
            hex::encode(Sha256::digest(token.as_bytes()))
        );
        assert_eq!(entries[0]["refusal"], "wrong_purpose_or_key");
        assert_eq!(entries[3]["refusal"], "keyed_token");
        assert!(!log.to_string().contains(CCCD) && !log.to_string().contains(&token));
        // The organisation's auditor reads it; another province's auditor sees nothing of it;
        // an operator may not.
        let (status, body) = get_as(&app, &auditor, "/api/v1/masking/reidentifications?limit=2").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["reidentifications"].as_array().unwrap().len(), 2);
        let (status, body) = get_as(&app, &auditor_hn, "/api/v1/masking/reidentifications").await;
        assert_eq!(
            (status, body["reidentifications"].as_array().map(Vec::len)),
            (200, Some(0))
        );
        let (status, body) = get_as(&app, &operator, "/api/v1/masking/reidentifications").await;
        assert_code(status, &body, (403, "forbidden"));

        // The audit log holds every call as a raw read.
        let officer_subject = format!("user:{officer_id}");
        assert_audited(&app, ("raw_read", "masking.reidentify"), 200, &officer_subject).await;
    }
);

both_backends!(
    a_security_officer_of_the_root_organisation_publishes_the_hub_wide_policy,
    |app: TestApp| async move {
        let (officer_id, officer, _, _, _) =
            enrolled(&app, "SO-KHCN-HCM", "an.ninh.trung.uong", roles::SECURITY_OFFICER).await;
        // Another server on the same database whose root organisation is A's.
        let org_a = org_id_of(&app, &app.key_a).await;
        let mut cfg = app.cfg.clone();
        cfg.listen = "127.0.0.1:0".into();
        cfg.audit.root_org_id = org_a.clone();
        let hub = serve_all(&cfg).await;
        let publish = |base: String, doc: Value| {
            app.client
                .post(format!("{base}/api/v1/masking/policies"))
                .header("cookie", &officer.cookie)
                .header("x-csrf-token", &officer.csrf)
                .json(&doc)
                .send()
        };
        // Where A is a province like any other: refused.
        let r = publish(app.base.clone(), phone_keeps_2(2)).await.unwrap();
        assert_eq!(r.status(), 403);
        // Where A is the root organisation: published.
        let r = publish(hub.clone(), phone_keeps_2(2)).await.unwrap();
        assert_eq!(r.status(), 201);
        let v2: Value = r.json().await.unwrap();
        assert_eq!(v2["created_by"], format!("user:{officer_id}"));
        assert_eq!(v2["created_by_org"], org_a.as_str());
        // Both servers read the same versions.
        let (status, current) = get_as(&app, &officer, "/api/v1/masking/policies/current").await;
        assert_eq!((status, &current["version"]), (200, &json!(2)));
    }
);
