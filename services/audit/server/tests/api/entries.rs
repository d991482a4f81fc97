//! `GET /api/v1/audit/entries` (R-SEC-9): roles, organisation scope, filters, keyset pages,
//! CSV and NDJSON exports, and the audit of the reading itself.

use crate::helpers::{BACKENDS, Db, auth, json, module, module_reading_into, principal, request, write_all};
use crate::{call, service};
use actix_web::test::TestRequest;
use chrono::{Duration, TimeZone, Utc};
use etx_audit_core::MemorySink;
use etx_audit_core::{Actor, AuditKind, NewAuditEntry};
use etx_domain::OrgId;
use std::sync::Arc;

/// Twelve entries: requests of two organisations, an admin action, a raw read, a 403.
fn varied(a: OrgId, b: OrgId) -> Vec<NewAuditEntry> {
    let t0 = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).single().unwrap();
    let mut out = Vec::new();
    for i in 0..8 {
        let mut e = request(i).at(t0 + Duration::hours(i as i64));
        e.org_id = Some(if i % 2 == 0 { a } else { b });
        e.subject = format!("system:{}", if i % 2 == 0 { "a" } else { "b" });
        e.ip = Some(if i < 4 { "203.0.113.7" } else { "2001:db8::9" }.parse().unwrap());
        if i == 7 {
            e.status = Some(403);
            e.route = Some("/api/v1/keys?token=SECRET".into());
        }
        out.push(e);
    }
    let admin = Actor {
        subject: "user:admin".into(),
        org_id: Some(a),
        ip: None,
    };
    out.push(
        NewAuditEntry::admin_action(&admin, "api_key.revoke", serde_json::json!({"key": "k1"}))
            .at(t0 + Duration::hours(9)),
    );
    let mut raw = NewAuditEntry::new(AuditKind::RawRead, "user:analyst").at(t0 + Duration::hours(10));
    raw.org_id = Some(b);
    raw.route = Some("/api/v1/records/x".into());
    out.push(raw);
    out
}

fn seqs(v: &serde_json::Value) -> Vec<i64> {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect()
}

#[actix_web::test]
async fn only_auditors_and_system_admins_read_the_log() {
    let db = Db::new("sqlite").await;
    let app = module(&db, None).await;
    let svc = service!(app);
    let org = OrgId::new();
    for roles in [&[][..], &["operator"], &["security_officer"], &["source"]] {
        let (status, body) = call!(
            svc,
            TestRequest::get()
                .uri("/api/v1/audit/entries")
                .insert_header(auth(&principal(org, roles)))
        );
        assert_eq!(status, 403, "{roles:?}");
        assert_eq!(json(&body)["code"], "forbidden");
    }
    let (status, body) = call!(svc, TestRequest::get().uri("/api/v1/audit/entries"));
    assert_eq!(status, 401);
    assert_eq!(json(&body)["code"], "untrusted_caller");
    for roles in [&["auditor"][..], &["system_admin"]] {
        let (status, _) = call!(
            svc,
            TestRequest::get()
                .uri("/api/v1/audit/entries")
                .insert_header(auth(&principal(org, roles)))
        );
        assert_eq!(status, 200, "{roles:?}");
    }
    app.shutdown().await;
    db.cleanup().await;
}

#[actix_web::test]
async fn filters_and_keyset_pages() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        let (a, b) = (OrgId::new(), OrgId::new());
        write_all(&db.db, varied(a, b)).await;
        let reads = Arc::new(MemorySink::new());
        let app = module_reading_into(&db, None, reads.clone()).await;
        let svc = service!(app);
        let admin = principal(OrgId::new(), &["system_admin"]);
        let get = |q: String| {
            TestRequest::get()
                .uri(&format!("/api/v1/audit/entries{q}"))
                .insert_header(auth(&admin))
        };
        let cases: Vec<(String, Vec<i64>)> = vec![
            (String::new(), (1..=10).collect()),
            ("?kind=request".into(), (1..=8).collect()),
            ("?kind=admin_action".into(), vec![9]),
            ("?kind=raw_read".into(), vec![10]),
            ("?subject=system:a".into(), vec![1, 3, 5, 7]),
            (format!("?org_id={a}"), vec![1, 3, 5, 7, 9]),
            (format!("?org_id={b}&kind=request"), vec![2, 4, 6, 8]),
            ("?ip=2001:db8:0:0:0:0:0:9".into(), vec![5, 6, 7, 8]),
            ("?route=/api/v1/keys".into(), vec![8]),
            ("?route=/api/v1/record".into(), (1..=7).chain([10]).collect()),
            ("?route=/API/v1".into(), vec![]),
            ("?status=403".into(), vec![8]),
            ("?action=api_key.revoke".into(), vec![9]),
            (
                "?from=2026-10-01T02:00:00Z&to=2026-10-01T04:00:00Z".into(),
                vec![3, 4],
            ),
            ("?from=2026-10-01T09:00:00%2B07:00".into(), (3..=10).collect()),
            ("?after=8".into(), vec![9, 10]),
        ];
        for (q, want) in cases {
            let (status, body) = call!(svc, get(q.clone()));
            assert_eq!(status, 200, "{backend} {q}");
            assert_eq!(seqs(&json(&body)), want, "{backend} {q}");
        }
        // The secret query value was never stored.
        let (_, body) = call!(svc, get("?status=403".into()));
        let v = json(&body);
        assert_eq!(v["entries"][0]["route"], "/api/v1/keys?token");
        assert_eq!(v["entries"][0]["ip"], "2001:db8::9");
        assert_eq!(v["entries"][0]["hash"].as_str().unwrap().len(), 64);

        // Keyset pages of 3.
        let mut got = Vec::new();
        let mut after = 0;
        loop {
            let (_, body) = call!(svc, get(format!("?limit=3&after={after}")));
            let v = json(&body);
            got.extend(seqs(&v));
            match v["next_after"].as_i64() {
                Some(n) => after = n,
                None => break,
            }
        }
        assert_eq!(got, (1..=10).collect::<Vec<_>>(), "{backend}");

        // Bad filters name the parameter.
        let (status, body) = call!(svc, get("?kind=login&limit=5000&colour=red".into()));
        assert_eq!(status, 400);
        let v = json(&body);
        assert_eq!(v["code"], "invalid_parameter");
        let paths: Vec<&str> = v["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, vec!["query:colour", "query:kind", "query:limit"]);
        // Every successful read was recorded; the refused one was not.
        let recorded = reads.entries();
        assert!(recorded.len() > 16, "{backend}");
        assert!(
            recorded
                .iter()
                .all(|e| e.action.as_deref() == Some("audit.query"))
        );
        app.shutdown().await;
        db.cleanup().await;
    }
}

#[actix_web::test]
async fn an_auditor_outside_the_root_sees_only_their_organisation() {
    let db = Db::new("postgres").await;
    let (a, b, root) = (OrgId::new(), OrgId::new(), OrgId::new());
    write_all(&db.db, varied(a, b)).await;
    let app = module_reading_into(&db, Some(root), Arc::new(MemorySink::new())).await;
    let svc = service!(app);
    let of_a = principal(a, &["auditor"]);
    let get = |p: &etx_http_kit::Principal, q: &str| {
        TestRequest::get()
            .uri(&format!("/api/v1/audit/entries{q}"))
            .insert_header(auth(p))
    };
    let (_, body) = call!(svc, get(&of_a, ""));
    assert_eq!(seqs(&json(&body)), vec![1, 3, 5, 7, 9]);
    let (_, body) = call!(svc, get(&of_a, &format!("?org_id={b}")));
    assert_eq!(
        seqs(&json(&body)),
        Vec::<i64>::new(),
        "another organisation's entries stay hidden"
    );
    let (_, body) = call!(svc, get(&of_a, "?format=ndjson"));
    assert_eq!(
        String::from_utf8(body.to_vec()).unwrap().lines().count(),
        5,
        "exports are scoped too"
    );
    let (_, body) = call!(svc, get(&principal(root, &["auditor"]), ""));
    assert_eq!(seqs(&json(&body)).len(), 10);
    app.shutdown().await;
    db.cleanup().await;
}

#[actix_web::test]
async fn csv_and_ndjson_export_the_whole_filtered_range() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        // More than one export page.
        let mut entries: Vec<NewAuditEntry> = (0..2_500).map(request).collect();
        entries[1_234].status = Some(500);
        entries[2_400].status = Some(500);
        write_all(&db.db, entries).await;
        let app = module_reading_into(&db, None, Arc::new(MemorySink::new())).await;
        let svc = service!(app);
        let auditor = principal(OrgId::new(), &["system_admin"]);
        let get = |q: &str| {
            TestRequest::get()
                .uri(&format!("/api/v1/audit/entries{q}"))
                .insert_header(auth(&auditor))
        };

        let res = actix_web::test::call_service(&svc, get("?format=csv").to_request()).await;
        assert_eq!(res.status().as_u16(), 200);
        let ct = res
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(ct.starts_with("text/csv"), "{ct}");
        let cd = res
            .headers()
            .get("content-disposition")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cd.starts_with("attachment; filename=\"etxhub-audit-"), "{cd}");
        let body = actix_web::test::read_body(res).await;
        assert!(body.starts_with(etx_audit::query::BOM));
        let text = std::str::from_utf8(&body[3..]).unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            etx_audit::query::COLUMNS.to_vec()
        );
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 2_500, "{backend}");
        assert_eq!(&rows[2_499][0], "2500");

        let (status, body) = call!(svc, get("?format=ndjson&status=500"));
        assert_eq!(status, 200);
        let lines: Vec<serde_json::Value> = std::str::from_utf8(&body)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            lines
                .iter()
                .map(|l| l["seq"].as_i64().unwrap())
                .collect::<Vec<_>>(),
            vec![1_235, 2_401]
        );

        let (status, body) = call!(svc, get("?format=ndjson&after=2490"));
        assert_eq!(status, 200);
        assert_eq!(
            std::str::from_utf8(&body).unwrap().lines().count(),
            10,
            "{backend}"
        );
        let (status, body) = call!(svc, get("?format=csv&status=418"));
        assert_eq!(status, 200);
        assert_eq!(
            std::str::from_utf8(&body[3..]).unwrap().lines().count(),
            1,
            "header only"
        );
        app.shutdown().await;
        db.cleanup().await;
    }
}

#[actix_web::test]
async fn reading_the_log_is_itself_audited() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        let app = module(&db, None).await;
        let svc = service!(app);
        let org = OrgId::new();
        let auditor = principal(org, &["auditor"]);
        let (status, _) = call!(
            svc,
            TestRequest::get()
                .uri("/api/v1/audit/entries?kind=security&format=csv")
                .insert_header(auth(&auditor))
        );
        assert_eq!(status, 200);
        // Refused reads are not (the gateway logs the request with its 403).
        call!(
            svc,
            TestRequest::get()
                .uri("/api/v1/audit/entries")
                .insert_header(auth(&principal(org, &["operator"])))
        );
        app.shutdown().await;
        let rows = etx_audit::query::page(
            &db.db,
            &etx_audit::query::EntryQuery::parse(&[("action".into(), "audit.query".into())]).unwrap(),
            None,
            0,
            None,
            10,
        )
        .await
        .unwrap();
        assert_eq!(rows.len(), 1, "{backend}");
        let e = &rows[0];
        assert_eq!(e.kind, "admin_action");
        assert_eq!(e.subject, auditor.subject);
        assert_eq!(e.org_id, Some(org.as_uuid()));
        assert_eq!(e.ip.as_deref(), Some("198.51.100.4"));
        assert_eq!(e.route.as_deref(), Some("/api/v1/audit/entries?kind&format"));
        let d: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
        assert_eq!(d["format"], "csv");
        assert_eq!(d["filters"]["kind"], "security");
        assert_eq!(d["scope_org_id"], serde_json::json!(org));
        assert!(db.verify().await.is_ok());
        db.cleanup().await;
    }
}

#[test]
fn the_openapi_document_describes_every_operation() {
    let doc = serde_json::to_value(etx_audit::openapi()).unwrap();
    for (path, method) in [
        ("/api/v1/audit/entries", "get"),
        ("/api/v1/vulnerabilities", "get"),
        ("/api/v1/vulnerabilities", "post"),
        ("/api/v1/vulnerabilities/{id}", "get"),
        ("/api/v1/vulnerabilities/{id}", "patch"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path}");
        assert!(
            op["responses"]["403"].is_object(),
            "{method} {path} documents 403"
        );
    }
    for schema in [
        "AuditPageOut",
        "AuditEntryOut",
        "FindingIn",
        "FindingOut",
        "Problem",
    ] {
        assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
    }
}
