//! The vulnerability register over HTTP (R-SEC-8): create, read, list, change with checked
//! transitions, roles, validation per field, CSV export, every change audited, and the
//! overdue event stored durably in the outbox.

use crate::helpers::{BACKENDS, Db, auth, json, module, principal};
use crate::{call, service};
use actix_web::test::TestRequest;
use chrono::{Duration, Utc};
use etx_audit::{OutboxSecurityEvents, SECURITY_STREAM};
use etx_domain::OrgId;
use etx_storage::outbox::entity as outbox;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

fn finding(deadline: &str, severity: &str) -> serde_json::Value {
    json!({
        "title": "TLS 1.0 accepted on the SOAP endpoint",
        "description": "The legacy listener negotiates TLS 1.0.",
        "severity": severity,
        "component": "gateway",
        "remediation_plan": "Disable TLS < 1.2 in the listener",
        "owner": "Nguyễn Văn An",
        "deadline": deadline,
    })
}

/// A date `d` days from today *in Vietnam*: deadlines and "days overdue" follow the Vietnam
/// calendar (UTC+7), so a UTC date would be a day off between 17:00 and 24:00 UTC.
fn in_days(d: i64) -> String {
    (etx_audit_core::vuln::vietnam_date(Utc::now()) + Duration::days(d)).to_string()
}

#[actix_web::test]
async fn findings_are_registered_read_listed_and_changed_with_every_change_audited() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        let app = module(&db, None).await;
        let svc = service!(app);
        let officer = principal(OrgId::new(), &["security_officer"]);
        let (status, body) = call!(
            svc,
            TestRequest::post()
                .uri("/api/v1/vulnerabilities")
                .insert_header(auth(&officer))
                .set_json(finding(&in_days(30), "high"))
        );
        assert_eq!(status, 201, "{backend}: {}", String::from_utf8_lossy(&body));
        let created = json(&body);
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(
            (created["status"].as_str(), created["overdue"].as_bool()),
            (Some("open"), Some(false))
        );
        assert_eq!(created["owner"], "Nguyễn Văn An");

        let (status, body) = call!(
            svc,
            TestRequest::get()
                .uri(&format!("/api/v1/vulnerabilities/{id}"))
                .insert_header(auth(&officer))
        );
        assert_eq!(status, 200);
        assert_eq!(json(&body)["title"], created["title"]);

        let patch = |b: serde_json::Value| {
            TestRequest::patch()
                .uri(&format!("/api/v1/vulnerabilities/{id}"))
                .insert_header(auth(&officer))
                .set_json(b)
        };
        let (status, body) = call!(
            svc,
            patch(json!({"status": "in_progress", "owner": "Trần Thị Bình"}))
        );
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v = json(&body);
        assert_eq!(
            (v["status"].as_str(), v["version"].as_i64()),
            (Some("in_progress"), Some(2))
        );

        // in_progress → closed skips remediation: refused, at /status.
        let (status, body) = call!(svc, patch(json!({"status": "closed"})));
        assert_eq!(status, 422);
        let v = json(&body);
        assert_eq!(v["code"], "validation_failed");
        assert_eq!(v["violations"][0]["path"], "/status");
        for step in ["remediated", "closed"] {
            let (status, _) = call!(svc, patch(json!({"status": step})));
            assert_eq!(status, 200, "{step}");
        }
        let (status, _) = call!(svc, patch(json!({"status": "open"})));
        assert_eq!(status, 422, "closed is final");

        let unknown = uuid::Uuid::now_v7();
        let (status, body) = call!(
            svc,
            TestRequest::get()
                .uri(&format!("/api/v1/vulnerabilities/{unknown}"))
                .insert_header(auth(&officer))
        );
        assert_eq!((status, json(&body)["code"].as_str()), (404, Some("not_found")));
        let (status, _) = call!(
            svc,
            TestRequest::patch()
                .uri(&format!("/api/v1/vulnerabilities/{unknown}"))
                .insert_header(auth(&officer))
                .set_json(json!({"owner": "x"}))
        );
        assert_eq!(status, 404);

        app.shutdown().await;
        let rows = etx_audit::query::page(
            &db.db,
            &etx_audit::query::EntryQuery::parse(&[("kind".into(), "admin_action".into())]).unwrap(),
            None,
            0,
            None,
            100,
        )
        .await
        .unwrap();
        let actions: Vec<(String, serde_json::Value, serde_json::Value)> = rows
            .iter()
            .map(|r| {
                let d: serde_json::Value = serde_json::from_str(&r.detail).unwrap();
                (
                    r.action.clone().unwrap(),
                    d["status_before"].clone(),
                    d["status_after"].clone(),
                )
            })
            .collect();
        assert_eq!(
            actions,
            vec![
                ("vulnerability.create".into(), json!(null), json!("open")),
                ("vulnerability.update".into(), json!("open"), json!("in_progress")),
                (
                    "vulnerability.update".into(),
                    json!("in_progress"),
                    json!("remediated")
                ),
                (
                    "vulnerability.update".into(),
                    json!("remediated"),
                    json!("closed")
                ),
            ],
            "{backend}: refused changes are not recorded"
        );
        assert!(rows.iter().all(|r| r.subject == officer.subject));
        assert!(db.verify().await.is_ok());
        db.cleanup().await;
    }
}

#[actix_web::test]
async fn validation_errors_name_each_field() {
    let db = Db::new("sqlite").await;
    let app = module(&db, None).await;
    let svc = service!(app);
    let admin = principal(OrgId::new(), &["system_admin"]);
    let post = |b: serde_json::Value| {
        TestRequest::post()
            .uri("/api/v1/vulnerabilities")
            .insert_header(auth(&admin))
            .set_json(b)
    };
    let (status, body) = call!(
        svc,
        post(
            json!({"title": "", "severity": "urgent", "component": "gw", "owner": "o", "deadline": "31/12/2027"})
        )
    );
    assert_eq!(status, 422);
    let v = json(&body);
    assert_eq!(v["code"], "validation_failed");
    let got: Vec<(String, String)> = v["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["path"].as_str().unwrap().to_owned(),
                x["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("/title".to_owned(), "too_small".to_owned()),
            ("/description".to_owned(), "required".to_owned()),
            ("/severity".to_owned(), "enum".to_owned()),
            ("/deadline".to_owned(), "format".to_owned()),
        ]
    );
    let (status, body) = call!(svc, post(json!({"title": 5})));
    assert_eq!(
        (status, json(&body)["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let (status, _) = call!(svc, post(json!({"titel": "typo"})));
    assert_eq!(status, 422, "unknown fields are refused");
    app.shutdown().await;
    db.cleanup().await;
}

#[actix_web::test]
async fn only_security_officers_and_admins_write_and_auditors_read() {
    let db = Db::new("sqlite").await;
    let app = module(&db, None).await;
    let svc = service!(app);
    let org = OrgId::new();
    let auditor = principal(org, &["auditor"]);
    let operator = principal(org, &["operator"]);
    let (status, body) = call!(
        svc,
        TestRequest::post()
            .uri("/api/v1/vulnerabilities")
            .insert_header(auth(&auditor))
            .set_json(finding("2030-01-01", "low"))
    );
    assert_eq!((status, json(&body)["code"].as_str()), (403, Some("forbidden")));
    let (status, _) = call!(
        svc,
        TestRequest::get()
            .uri("/api/v1/vulnerabilities")
            .insert_header(auth(&auditor))
    );
    assert_eq!(status, 200);
    let (status, _) = call!(
        svc,
        TestRequest::get()
            .uri("/api/v1/vulnerabilities")
            .insert_header(auth(&operator))
    );
    assert_eq!(status, 403);
    let (status, _) = call!(
        svc,
        TestRequest::patch()
            .uri(&format!("/api/v1/vulnerabilities/{}", uuid::Uuid::now_v7()))
            .insert_header(auth(&auditor))
            .set_json(json!({"status": "closed"}))
    );
    assert_eq!(status, 403, "the role is checked before the id");
    app.shutdown().await;
    db.cleanup().await;
}

#[actix_web::test]
async fn the_list_filters_and_exports_as_csv() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        let app = module(&db, None).await;
        let svc = service!(app);
        let admin = principal(OrgId::new(), &["system_admin"]);
        for (deadline, severity) in [
            (in_days(-3), "critical"),
            (in_days(10), "high"),
            (in_days(-10), "low"),
        ] {
            let (status, _) = call!(
                svc,
                TestRequest::post()
                    .uri("/api/v1/vulnerabilities")
                    .insert_header(auth(&admin))
                    .set_json(finding(&deadline, severity))
            );
            assert_eq!(status, 201);
        }
        let get = |q: &str| {
            TestRequest::get()
                .uri(&format!("/api/v1/vulnerabilities{q}"))
                .insert_header(auth(&admin))
        };
        let severities = |body: &[u8]| -> Vec<String> {
            json(body)
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["severity"].as_str().unwrap().to_owned())
                .collect()
        };
        let (_, body) = call!(svc, get(""));
        assert_eq!(severities(&body), vec!["critical", "high", "low"], "{backend}");
        let (_, body) = call!(svc, get("?overdue=true"));
        assert_eq!(severities(&body), vec!["critical", "low"]);
        let (_, body) = call!(svc, get("?overdue=false"));
        assert_eq!(severities(&body), vec!["high"]);
        let (_, body) = call!(svc, get("?severity=low&status=open"));
        assert_eq!(severities(&body), vec!["low"]);
        let (_, body) = call!(svc, get("?status=closed"));
        assert!(severities(&body).is_empty());

        let (status, body) = call!(svc, get("?status=done&overdue=yes"));
        assert_eq!(status, 400);
        let v = json(&body);
        assert_eq!(v["code"], "invalid_parameter");
        assert_eq!(v["violations"][0]["path"], "query:status");
        assert_eq!(v["violations"][1]["path"], "query:overdue");

        let (status, body) = call!(svc, get("?format=csv&overdue=true"));
        assert_eq!(status, 200);
        let text = std::str::from_utf8(&body[3..]).unwrap();
        let mut r = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(&r.headers().unwrap()[0], "id");
        let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!((&rows[0][2], &rows[0][4]), ("critical", "true"));
        app.shutdown().await;
        db.cleanup().await;
    }
}

#[actix_web::test]
async fn an_overdue_finding_emits_one_durable_event_in_the_outbox() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        let app = module(&db, None).await;
        let svc = service!(app);
        let officer = principal(OrgId::new(), &["security_officer"]);
        let mut ids = Vec::new();
        for (deadline, severity) in [
            (in_days(-2), "critical"),
            (in_days(5), "high"),
            (in_days(-1), "medium"),
        ] {
            let (_, body) = call!(
                svc,
                TestRequest::post()
                    .uri("/api/v1/vulnerabilities")
                    .insert_header(auth(&officer))
                    .set_json(finding(&deadline, severity))
            );
            ids.push(json(&body)["id"].as_str().unwrap().to_owned());
        }
        // The medium one is accepted: not overdue any more.
        let (status, _) = call!(
            svc,
            TestRequest::patch()
                .uri(&format!("/api/v1/vulnerabilities/{}", ids[2]))
                .insert_header(auth(&officer))
                .set_json(json!({"status": "accepted_risk"}))
        );
        assert_eq!(status, 200);

        let events = OutboxSecurityEvents::new(db.db.clone(), None);
        let now = Utc::now();
        assert_eq!(
            app.vulnerabilities.scan_overdue(&events, now).await.unwrap(),
            1,
            "{backend}"
        );
        assert_eq!(
            app.vulnerabilities.scan_overdue(&events, now).await.unwrap(),
            0,
            "once per finding"
        );
        assert_eq!(
            app.vulnerabilities
                .scan_overdue(&events, now + Duration::days(3))
                .await
                .unwrap(),
            0
        );

        let rows = outbox::Entity::find()
            .filter(outbox::Column::Stream.eq(SECURITY_STREAM))
            .all(&db.db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1, "{backend}");
        let row = &rows[0];
        assert!(
            row.msg_key
                .starts_with(&format!("vulnerability.overdue:{}:", ids[0])),
            "{}",
            row.msg_key
        );
        let headers: std::collections::BTreeMap<String, String> = serde_json::from_str(&row.headers).unwrap();
        assert_eq!(headers.get("severity").map(String::as_str), Some("critical"));
        let event: serde_json::Value = serde_json::from_slice(&row.body).unwrap();
        assert_eq!(event["kind"], "vulnerability.overdue");
        assert_eq!(event["severity"], "critical");
        assert_eq!(event["evidence"]["finding_id"], ids[0]);
        assert_eq!(event["evidence"]["days_overdue"], 2);

        // The background job does the same: a new overdue finding gets its event.
        let (_, _) = call!(
            svc,
            TestRequest::patch()
                .uri(&format!("/api/v1/vulnerabilities/{}", ids[1]))
                .insert_header(auth(&officer))
                .set_json(json!({"deadline": in_days(-1)}))
        );
        let job = etx_audit::spawn_overdue_scan(
            db.db.clone(),
            std::sync::Arc::new(OutboxSecurityEvents::new(db.db.clone(), None)),
            std::time::Duration::from_secs(3600),
        );
        let mut waited = 0;
        loop {
            let n = outbox::Entity::find()
                .filter(outbox::Column::Stream.eq(SECURITY_STREAM))
                .all(&db.db)
                .await
                .unwrap()
                .len();
            if n == 2 {
                break;
            }
            waited += 1;
            assert!(waited < 500, "{backend}: the job emitted no event");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        job.stop().await;
        app.shutdown().await;
        db.cleanup().await;
    }
}

/// The fuzz run's finding: PostgreSQL cannot store NUL in text, so control characters (other
/// than line breaks and tabs in multi-line fields) are refused per field, never reaching the
/// database; filters with them are refused too.
#[actix_web::test]
async fn control_characters_are_refused_per_field_on_every_backend() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        let app = module(&db, None).await;
        let svc = service!(app);
        let admin = principal(OrgId::new(), &["system_admin"]);
        let (status, body) = call!(
            svc,
            TestRequest::post()
                .uri("/api/v1/vulnerabilities")
                .insert_header(auth(&admin))
                .set_json(json!({
                    "title": "TLS\u{00} 1.0",
                    "description": "line one\nline\u{00} two",
                    "severity": "high\u{00}",
                    "component": "gate\u{1b}way",
                    "remediation_plan": "\u{00}",
                    "owner": "An\u{07}",
                    "deadline": "2027-01-01\u{00}",
                }))
        );
        assert_eq!(status, 422, "{backend}: {}", String::from_utf8_lossy(&body));
        let v = json(&body);
        let got: Vec<(&str, &str)> = v["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| (x["path"].as_str().unwrap(), x["code"].as_str().unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/title", "format"),
                ("/description", "format"),
                ("/severity", "enum"),
                ("/component", "format"),
                ("/remediation_plan", "format"),
                ("/owner", "format"),
                ("/deadline", "format"),
            ],
            "{backend}"
        );

        let (status, body) = call!(
            svc,
            TestRequest::post()
                .uri("/api/v1/vulnerabilities")
                .insert_header(auth(&admin))
                .set_json(finding(&in_days(30), "high"))
        );
        assert_eq!(status, 201, "{backend}: {}", String::from_utf8_lossy(&body));
        let id = json(&body)["id"].as_str().unwrap().to_owned();
        let (status, body) = call!(
            svc,
            TestRequest::patch()
                .uri(&format!("/api/v1/vulnerabilities/{id}"))
                .insert_header(auth(&admin))
                .set_json(json!({"owner": "\u{00}", "description": "ok\r\n\tstill ok"}))
        );
        assert_eq!(status, 422, "{backend}: {}", String::from_utf8_lossy(&body));
        assert_eq!(json(&body)["violations"][0]["path"], "/owner");

        for query in ["status=%00", "severity=high%00"] {
            let (status, _) = call!(
                svc,
                TestRequest::get()
                    .uri(&format!("/api/v1/vulnerabilities?{query}"))
                    .insert_header(auth(&admin))
            );
            assert_eq!(status, 400, "{backend}: {query}");
        }
        for query in ["subject=user%00", "route=/api%00", "action=a%01"] {
            let (status, _) = call!(
                svc,
                TestRequest::get()
                    .uri(&format!("/api/v1/audit/entries?{query}"))
                    .insert_header(auth(&admin))
            );
            assert_eq!(status, 400, "{backend}: {query}");
        }
        app.shutdown().await;
        db.cleanup().await;
    }
}
