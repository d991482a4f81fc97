//! Authorisation in one place (issue 4 §3, DESIGN.md §5): every operation of the published
//! OpenAPI document has a rule in the gateway's route table, every role and a connected system
//! get exactly what `etx_domain::authz` grants them, and a record above a person's clearance
//! does not exist for them (neither read nor exported).

use crate::both_backends;
use crate::helpers::*;
use crate::users::{Session, enrolled};
use etx_domain::authz::{self, Actor, Permission, roles};
use reqwest::Method;
use serde_json::{Value, json};

/// Paths answered without any credential (they authenticate the caller themselves).
fn public(method: &str, template: &str) -> bool {
    etx_gateway_core::is_public(&method.to_uppercase(), &template.replace(['{', '}'], ""))
}

both_backends!(
    every_operation_has_a_rule_in_the_route_table,
    |app: TestApp| async move {
        let doc: Value = app.openapi().await;
        let mut missing = Vec::new();
        let mut checked = 0;
        for (template, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if public(method, template) {
                    continue;
                }
                let concrete = template
                    .split('/')
                    .map(|s| if s.starts_with('{') { "x" } else { s })
                    .collect::<Vec<_>>()
                    .join("/");
                checked += 1;
                if etx_gateway_core::authz::required(&method.to_uppercase(), &concrete).is_none() {
                    missing.push(format!("{} {template}", method.to_uppercase()));
                }
            }
        }
        assert!(checked >= 25, "only {checked} operations found");
        assert!(
            missing.is_empty(),
            "add these operations to RULES in services/gateway/core/src/authz.rs: {missing:?}"
        );
    }
);

/// One request standing for each permission: method, path, body.
fn probes(record_id: &str) -> Vec<(Permission, Method, String, Option<Value>)> {
    vec![
        (
            Permission::SubmitData,
            Method::POST,
            "/api/v1/records".into(),
            Some(stats_record(1.0, None)),
        ),
        (
            Permission::ReadSubmissions,
            Method::GET,
            format!("/api/v1/records/{record_id}"),
            None,
        ),
        (
            Permission::ExportRecords,
            Method::GET,
            "/api/v1/exports/records?format=json".into(),
            None,
        ),
        (
            Permission::ReadSchemas,
            Method::GET,
            "/api/v1/schemas".into(),
            None,
        ),
        (
            Permission::ReadOrganisation,
            Method::GET,
            "/api/v1/organisations/me".into(),
            None,
        ),
        (Permission::ManageKeys, Method::GET, "/api/v1/keys".into(), None),
        (Permission::ManageUsers, Method::GET, "/api/v1/users".into(), None),
        (
            Permission::OwnSession,
            Method::GET,
            "/api/v1/auth/me".into(),
            None,
        ),
        (
            Permission::ReadAudit,
            Method::GET,
            "/api/v1/audit/entries".into(),
            None,
        ),
        (
            Permission::ReadVulnerabilities,
            Method::GET,
            "/api/v1/vulnerabilities".into(),
            None,
        ),
        // An empty finding: allowed callers get 422 for it, others 403 before any validation.
        (
            Permission::ManageVulnerabilities,
            Method::POST,
            "/api/v1/vulnerabilities".into(),
            Some(json!({})),
        ),
        // An empty onboarding, likewise: 422 for administrators, 403 for everyone else.
        (
            Permission::Onboard,
            Method::POST,
            "/api/v1/onboarding".into(),
            Some(json!({})),
        ),
        (
            Permission::OperatePipeline,
            Method::GET,
            "/api/v1/masking/held".into(),
            None,
        ),
        (
            Permission::ReadMaskingPolicy,
            Method::GET,
            "/api/v1/masking/policies/current".into(),
            None,
        ),
        // A dry run of an empty policy: 422 for those who may publish, 403 for the others.
        (
            Permission::ManageMaskingPolicy,
            Method::POST,
            "/api/v1/masking/policies/validate".into(),
            Some(json!({})),
        ),
        // Re-identification without token or reason: 422 for security officers only.
        (
            Permission::Reidentify,
            Method::POST,
            "/api/v1/masking/reidentify".into(),
            Some(json!({})),
        ),
        (
            Permission::ReadReconciliation,
            Method::GET,
            "/api/v1/conflicts".into(),
            None,
        ),
        // Empty bodies are checked before the conflict or period is looked up: 422 or 403.
        (
            Permission::ResolveConflicts,
            Method::POST,
            format!("/api/v1/conflicts/{}/resolve", uuid::Uuid::now_v7()),
            Some(json!({})),
        ),
        (
            Permission::ApprovePeriods,
            Method::POST,
            "/api/v1/periods/approve".into(),
            Some(json!({})),
        ),
    ]
}

enum Who<'a> {
    Key(&'a str),
    Person(&'a Session),
}

async fn send(app: &TestApp, who: &Who<'_>, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = app.client.request(method, app.url(path));
    r = match who {
        Who::Key(k) => r.header("x-api-key", *k),
        Who::Person(s) => r.header("cookie", &s.cookie).header("x-csrf-token", &s.csrf),
    };
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

both_backends!(
    each_role_and_a_system_get_exactly_what_the_policy_grants,
    |app: TestApp| async move {
        let receipt: Value = app
            .submit_json(&stats_record(3.0, Some("authz-1")))
            .await
            .json()
            .await
            .unwrap();
        let record_id = receipt["record_ids"][0].as_str().unwrap().to_owned();

        // A connected system with every default scope.
        let all_scopes: Vec<String> = authz::Scope::DEFAULT
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        for (permission, method, path, body) in probes(&record_id) {
            let allowed = authz::decide(Actor::System { scopes: &all_scopes }, permission).is_ok();
            let (status, problem) = send(&app, &Who::Key(&app.key_a), method.clone(), &path, body).await;
            check(allowed, status, &problem, &format!("system: {method} {path}"));
        }

        // One person per role, all of organisation A.
        for role in roles::ALL {
            let username = format!("vai.tro.{}", role.replace('_', "."));
            let (_, session, _, _, _) = enrolled(&app, "SO-KHCN-HCM", &username, role).await;
            let held = vec![role.to_owned()];
            for (permission, method, path, body) in probes(&record_id) {
                let allowed = authz::decide(Actor::Person { roles: &held }, permission).is_ok();
                let (status, problem) = send(&app, &Who::Person(&session), method.clone(), &path, body).await;
                check(allowed, status, &problem, &format!("{role}: {method} {path}"));
            }
        }
    }
);

fn check(allowed: bool, status: u16, problem: &Value, what: &str) {
    if allowed {
        assert!(
            (200..300).contains(&status) || status == 422,
            "{what} is granted by the policy but answered {status}: {problem}"
        );
    } else {
        assert_eq!(
            (status, problem["code"].as_str()),
            (403, Some("forbidden")),
            "{what} is not granted by the policy: {problem}"
        );
    }
}

both_backends!(
    a_record_above_a_persons_clearance_does_not_exist_for_them,
    |app: TestApp| async move {
        let mut secret = stats_record(9.0, Some("authz-secret"));
        secret["classification"] = json!("secret");
        let receipt: Value = app.submit_json(&secret).await.json().await.unwrap();
        let secret_id = receipt["record_ids"][0].as_str().expect("accepted").to_owned();
        let receipt: Value = app
            .submit_json(&stats_record(2.0, Some("authz-internal")))
            .await
            .json()
            .await
            .unwrap();
        let internal_id = receipt["record_ids"][0].as_str().unwrap().to_owned();

        let (_, operator, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "van.hanh.a", roles::OPERATOR).await;
        let (_, admin, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "quan.tri.a", roles::SYSTEM_ADMIN).await;

        // The operator's clearance is `confidential`: the secret record is not found, the internal
        // one is.
        let (status, problem) = send(
            &app,
            &Who::Person(&operator),
            Method::GET,
            &format!("/api/v1/records/{secret_id}"),
            None,
        )
        .await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (404, Some("not_found")),
            "{problem}"
        );
        let (status, _) = send(
            &app,
            &Who::Person(&operator),
            Method::GET,
            &format!("/api/v1/records/{internal_id}"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        // The administrator (clearance `secret`) and the source system read both.
        let (status, body) = send(
            &app,
            &Who::Person(&admin),
            Method::GET,
            &format!("/api/v1/records/{secret_id}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            app.get(&format!("/api/v1/records/{secret_id}"), &app.key_a)
                .await
                .status(),
            200
        );

        // Exports leave out what the reader may not see.
        for (reader, sees_secret) in [(&operator, false), (&admin, true)] {
            let (status, exported) = send(
                &app,
                &Who::Person(reader),
                Method::GET,
                "/api/v1/exports/records?format=json",
                None,
            )
            .await;
            assert_eq!(status, 200);
            let seen: Vec<&str> = exported
                .as_array()
                .unwrap_or_else(|| panic!("a JSON array: {exported}"))
                .iter()
                .map(|r| r["record_id"].as_str().or(r["id"].as_str()).unwrap())
                .collect();
            assert!(seen.contains(&internal_id.as_str()), "{seen:?}");
            assert_eq!(seen.contains(&secret_id.as_str()), sees_secret, "{seen:?}");
        }
    }
);
