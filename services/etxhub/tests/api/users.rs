//! People over HTTPS (R-SEC-5, R-SEC-6): the first administrator signs in with a temporary
//! password, changes it, enrols TOTP (codes computed by an independent implementation) and
//! manages accounts within their organisation; the session cookie's attributes, the CSRF
//! header, idle and absolute expiry, lockout with Retry-After, and 404 across organisations.

use crate::both_backends;
use crate::helpers::*;
use etx_domain::OrgCode;
use etx_identity::store::entities::session;
use etx_identity_core::NewUser;
use reqwest::{Method, Response};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

/// A signed-in browser: its cookie and anti-forgery token.
#[derive(Clone)]
pub(crate) struct Session {
    pub(crate) cookie: String,
    pub(crate) csrf: String,
}

pub(crate) async fn add_user(app: &TestApp, org_code: &str, username: &str, role: &str) -> (String, String) {
    let out = etxhub::add_user(
        &app.cfg,
        &OrgCode::parse(org_code).unwrap(),
        NewUser {
            username: username.into(),
            display_name: None,
            org_id: None,
            roles: vec![role.into()],
            temporary_password: None,
        },
    )
    .await
    .unwrap();
    (
        out.user.id.to_string(),
        out.temporary_password.unwrap().to_string(),
    )
}

pub(crate) async fn login(app: &TestApp, body: Value) -> Response {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The session from a successful sign-in.
pub(crate) async fn session_of(resp: Response) -> (Session, Value) {
    assert_eq!(resp.status(), 200);
    let set = resp
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let token = set
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("etx_session=")
        .unwrap()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    let s = Session {
        cookie: format!("etx_session={token}"),
        csrf: body["csrf_token"].as_str().unwrap().to_owned(),
    };
    (s, body)
}

pub(crate) async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    s: &Session,
    body: Option<Value>,
    csrf: bool,
) -> Response {
    let mut r = app
        .client
        .request(method, app.url(path))
        .header("cookie", &s.cookie);
    if csrf {
        r = r.header("x-csrf-token", &s.csrf);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    r.send().await.unwrap()
}

async fn problem(resp: Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "expected {code}");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    p
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Signs a new account all the way in: temporary password, change, TOTP enrolment. Returns
/// the full session, the password, the authenticator and the recovery codes.
pub(crate) async fn enrolled(
    app: &TestApp,
    org: &str,
    username: &str,
    role: &str,
) -> (String, Session, String, totp_rs::Totp, Vec<String>) {
    let (id, temp) = add_user(app, org, username, role).await;
    let (s, _) = session_of(login(app, json!({"username": username, "password": temp})).await).await;
    let password = "someone has a long passphrase".to_owned();
    let r = call(
        app,
        Method::POST,
        "/api/v1/auth/password",
        &s,
        Some(json!({"current_password": temp, "new_password": password})),
        true,
    )
    .await;
    assert_eq!(r.status(), 200);
    let e: Value = call(app, Method::POST, "/api/v1/auth/mfa/enroll", &s, None, true)
        .await
        .json()
        .await
        .unwrap();
    let totp = totp_rs::Totp::from_url(e["otpauth_uri"].as_str().unwrap()).unwrap();
    let r = call(
        app,
        Method::POST,
        "/api/v1/auth/mfa/confirm",
        &s,
        Some(json!({"code": totp.generate(now()).to_string()})),
        true,
    )
    .await;
    assert_eq!(r.status(), 200);
    let codes: Value = r.json().await.unwrap();
    let codes = codes["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (id, s, password, totp, codes)
}

both_backends!(
    an_administrator_signs_in_enrols_totp_and_then_always_needs_it,
    |app: TestApp| async move {
        let (_, temp) = add_user(&app, "SO-KHCN-HCM", "an.admin", "system_admin").await;

        // The temporary password opens a session that may only change it.
        let resp = login(&app, json!({"username": "AN.ADMIN", "password": temp})).await;
        let set_cookie = resp
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
            assert!(
                set_cookie.split("; ").any(|a| a == attr),
                "{attr} in {set_cookie}"
            );
        }
        assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
        let (s, body) = session_of(resp).await;
        assert_eq!(body["state"], "password_change_required");
        assert_eq!(body["user"]["username"], "an.admin");
        assert_eq!(body["roles"], json!(["system_admin"]));
        assert!(body["expires_at"].is_string() && body["idle_expires_at"].is_string());
        let p = problem(
            call(&app, Method::GET, "/api/v1/users", &s, None, false).await,
            403,
            "forbidden",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains("/api/v1/auth/password"));
        let me: Value = call(&app, Method::GET, "/api/v1/auth/me", &s, None, false)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["csrf_token"], body["csrf_token"]);

        // The new password must meet the policy, violations per field.
        let r = call(
            &app,
            Method::POST,
            "/api/v1/auth/password",
            &s,
            Some(json!({"current_password": temp, "new_password": "password1234"})),
            true,
        )
        .await;
        let p = problem(r, 422, "validation_failed").await;
        assert_eq!(p["violations"][0]["path"], "/new_password");
        let r = call(
            &app,
            Method::POST,
            "/api/v1/auth/password",
            &s,
            Some(json!({"current_password": temp, "new_password": "correct horse battery staple"})),
            true,
        )
        .await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["state"], "mfa_enrolment_required");
        problem(
            call(&app, Method::GET, "/api/v1/users", &s, None, false).await,
            401,
            "mfa_required",
        )
        .await;

        // Enrolment: the URI and secret go to an independent TOTP implementation.
        let r = call(&app, Method::POST, "/api/v1/auth/mfa/enroll", &s, None, true).await;
        assert_eq!(r.status(), 200);
        let e: Value = r.json().await.unwrap();
        let uri = e["otpauth_uri"].as_str().unwrap();
        assert!(uri.starts_with("otpauth://totp/ETX%20Hub:an.admin?"), "{uri}");
        assert!(e["qr_svg"].as_str().unwrap().starts_with("<svg"));
        let totp = totp_rs::Totp::from_url(uri).unwrap();
        assert_eq!(totp.secret().to_base32(), e["secret"].as_str().unwrap());
        let r = call(
            &app,
            Method::POST,
            "/api/v1/auth/mfa/confirm",
            &s,
            Some(json!({"code": totp.generate(now()).to_string()})),
            true,
        )
        .await;
        assert_eq!(r.status(), 200);
        let codes: Value = r.json().await.unwrap();
        let codes = codes["recovery_codes"].as_array().unwrap().clone();
        assert_eq!(codes.len(), 10);
        let me: Value = call(&app, Method::GET, "/api/v1/auth/me", &s, None, false)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(me["state"], "full");
        assert_eq!(me["user"]["mfa_enabled"], true);
        let r = call(&app, Method::GET, "/api/v1/users", &s, None, false).await;
        assert_eq!(r.status(), 200);

        // From now on: never without the second factor, right password or not.
        let pw = "correct horse battery staple";
        let p = problem(
            login(&app, json!({"username": "an.admin", "password": pw})).await,
            401,
            "mfa_required",
        )
        .await;
        let wrong_pw = problem(
            login(
                &app,
                json!({"username": "an.admin", "password": "not the password"}),
            )
            .await,
            401,
            "mfa_required",
        )
        .await;
        assert_eq!(
            p["detail"], wrong_pw["detail"],
            "the answer does not tell which was wrong"
        );
        problem(
            login(
                &app,
                json!({"username": "an.admin", "password": pw, "totp_code": "12345"}),
            )
            .await,
            401,
            "invalid_mfa_code",
        )
        .await;
        // A recovery code signs in once.
        let code = codes[0].as_str().unwrap();
        let (full, body) = session_of(
            login(
                &app,
                json!({"username": "an.admin", "password": pw, "recovery_code": code}),
            )
            .await,
        )
        .await;
        assert_eq!(body["state"], "full");
        problem(
            login(
                &app,
                json!({"username": "an.admin", "password": pw, "recovery_code": code}),
            )
            .await,
            401,
            "invalid_mfa_code",
        )
        .await;
        let r = call(&app, Method::GET, "/api/v1/users", &full, None, false).await;
        assert_eq!(r.status(), 200);

        // Signing out ends the session; the cookie is removed.
        let r = call(&app, Method::POST, "/api/v1/auth/logout", &full, None, true).await;
        assert_eq!(r.status(), 204);
        assert!(
            r.headers()
                .get("set-cookie")
                .unwrap()
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        problem(
            call(&app, Method::GET, "/api/v1/auth/me", &full, None, false).await,
            401,
            "session_expired",
        )
        .await;
        problem(
            call(&app, Method::GET, "/api/v1/users", &full, None, false).await,
            401,
            "session_expired",
        )
        .await;
    }
);

both_backends!(
    administrators_manage_accounts_of_their_organisation_only,
    |app: TestApp| async move {
        let (admin_a, s, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "admin.a", "system_admin").await;
        let (admin_b, _) = add_user(&app, "SO-KHCN-HN", "admin.b", "system_admin").await;

        // Create an operator with a generated temporary password, shown once.
        let r = call(
            &app,
            Method::POST,
            "/api/v1/users",
            &s,
            Some(json!({"username": "Operator.One", "display_name": "Trần Thị Vận Hành", "roles": ["operator"]})),
            true,
        )
        .await;
        assert_eq!(r.status(), 201);
        assert_eq!(r.headers().get("cache-control").unwrap(), "no-store");
        let op: Value = r.json().await.unwrap();
        assert_eq!(op["username"], "operator.one");
        assert_eq!(op["must_change_password"], true);
        let op_id = op["id"].as_str().unwrap().to_owned();
        assert_eq!(op["temporary_password"].as_str().unwrap().len(), 20);
        // Per-field violations.
        let r = call(
            &app,
            Method::POST,
            "/api/v1/users",
            &s,
            Some(json!({"username": "ab", "roles": ["root"], "temporary_password": "short"})),
            true,
        )
        .await;
        let p = problem(r, 422, "validation_failed").await;
        let paths: Vec<&str> = p["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, vec!["/username", "/roles"]);
        let r = call(
            &app,
            Method::POST,
            "/api/v1/users",
            &s,
            Some(json!({"username": "new.one", "roles": ["analyst"], "temporary_password": "short"})),
            true,
        )
        .await;
        let p = problem(r, 422, "validation_failed").await;
        assert_eq!(p["violations"][0]["path"], "/temporary_password");
        problem(
            call(
                &app,
                Method::POST,
                "/api/v1/users",
                &s,
                Some(json!({"username": "OPERATOR.one", "roles": ["operator"]})),
                true,
            )
            .await,
            409,
            "already_exists",
        )
        .await;

        // Read and change within the organisation.
        let list: Value = call(&app, Method::GET, "/api/v1/users", &s, None, false)
            .await
            .json()
            .await
            .unwrap();
        let names: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["username"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["admin.a", "operator.one"]);
        let r = call(
            &app,
            Method::GET,
            &format!("/api/v1/users/{op_id}"),
            &s,
            None,
            false,
        )
        .await;
        assert_eq!(r.status(), 200);
        let r = call(
            &app,
            Method::PATCH,
            &format!("/api/v1/users/{op_id}"),
            &s,
            Some(json!({"roles": ["operator", "analyst"], "display_name": "Trần Thị Hai"})),
            true,
        )
        .await;
        assert_eq!(r.status(), 200);
        let u: Value = r.json().await.unwrap();
        assert_eq!(u["roles"], json!(["operator", "analyst"]));
        let r = call(
            &app,
            Method::POST,
            &format!("/api/v1/users/{op_id}/password-reset"),
            &s,
            None,
            true,
        )
        .await;
        assert_eq!(r.status(), 200);
        let reset: Value = r.json().await.unwrap();
        let op_password = reset["temporary_password"].as_str().unwrap().to_owned();
        problem(
            call(
                &app,
                Method::PATCH,
                &format!("/api/v1/users/{admin_a}"),
                &s,
                Some(json!({"status": "disabled"})),
                true,
            )
            .await,
            422,
            "validation_failed",
        )
        .await;

        // Another organisation's accounts do not exist for this administrator.
        for (method, path, body) in [
            (Method::GET, format!("/api/v1/users/{admin_b}"), None),
            (
                Method::PATCH,
                format!("/api/v1/users/{admin_b}"),
                Some(json!({"display_name": "x"})),
            ),
            (
                Method::POST,
                format!("/api/v1/users/{admin_b}/password-reset"),
                None,
            ),
            (
                Method::GET,
                format!("/api/v1/users/{}", uuid::Uuid::now_v7()),
                None,
            ),
        ] {
            problem(call(&app, method, &path, &s, body, true).await, 404, "not_found").await;
        }
        let r = call(
            &app,
            Method::POST,
            "/api/v1/users",
            &s,
            Some(json!({"username": "intruder", "roles": ["operator"], "org_id": uuid::Uuid::now_v7()})),
            true,
        )
        .await;
        let p = problem(r, 422, "validation_failed").await;
        assert_eq!(p["violations"][0]["path"], "/org_id");

        // A person without system_admin — or a connected system — may not manage accounts.
        let (op_session, _) =
            session_of(login(&app, json!({"username": "operator.one", "password": op_password})).await).await;
        let r = call(
            &app,
            Method::POST,
            "/api/v1/auth/password",
            &op_session,
            Some(json!({"current_password": op_password, "new_password": "the operator's own passphrase"})),
            true,
        )
        .await;
        assert_eq!(r.status(), 200);
        let e: Value = call(
            &app,
            Method::POST,
            "/api/v1/auth/mfa/enroll",
            &op_session,
            None,
            true,
        )
        .await
        .json()
        .await
        .unwrap();
        let totp = totp_rs::Totp::from_url(e["otpauth_uri"].as_str().unwrap()).unwrap();
        let r = call(
            &app,
            Method::POST,
            "/api/v1/auth/mfa/confirm",
            &op_session,
            Some(json!({"code": totp.generate(now()).to_string()})),
            true,
        )
        .await;
        assert_eq!(r.status(), 200);
        problem(
            call(&app, Method::GET, "/api/v1/users", &op_session, None, false).await,
            403,
            "forbidden",
        )
        .await;
        problem(
            call(
                &app,
                Method::GET,
                &format!("/api/v1/users/{op_id}"),
                &op_session,
                None,
                false,
            )
            .await,
            403,
            "forbidden",
        )
        .await;
        problem(app.get("/api/v1/users", &app.key_a).await, 403, "forbidden").await;
        // Nor manage the organisation's API keys; an administrator may.
        problem(
            call(&app, Method::GET, "/api/v1/keys", &op_session, None, false).await,
            403,
            "forbidden",
        )
        .await;
        problem(
            call(
                &app,
                Method::POST,
                "/api/v1/keys",
                &op_session,
                Some(json!({})),
                true,
            )
            .await,
            403,
            "forbidden",
        )
        .await;
        assert_eq!(
            call(&app, Method::GET, "/api/v1/keys", &s, None, false)
                .await
                .status(),
            200
        );
        // And a person is not a connected system: no record submission with a session.
        let r = call(
            &app,
            Method::POST,
            "/api/v1/records",
            &op_session,
            Some(stats_record(1.0, None)),
            true,
        )
        .await;
        assert_eq!(r.status(), 403);
    }
);

both_backends!(
    cookie_authenticated_writes_need_the_csrf_header,
    |app: TestApp| async move {
        let (_, s, _, _, _) = enrolled(&app, "SO-KHCN-HCM", "an.admin", "system_admin").await;
        let body = || Some(json!({"username": "someone.new", "roles": ["auditor"]}));
        problem(
            call(&app, Method::POST, "/api/v1/users", &s, body(), false).await,
            403,
            "csrf_rejected",
        )
        .await;
        let forged = Session {
            csrf: "A".repeat(43),
            ..s.clone()
        };
        problem(
            call(&app, Method::POST, "/api/v1/users", &forged, body(), true).await,
            403,
            "csrf_rejected",
        )
        .await;
        problem(
            call(
                &app,
                Method::PATCH,
                &format!("/api/v1/users/{}", uuid::Uuid::now_v7()),
                &s,
                Some(json!({})),
                false,
            )
            .await,
            403,
            "csrf_rejected",
        )
        .await;
        problem(
            call(
                &app,
                Method::DELETE,
                &format!("/api/v1/keys/{}", uuid::Uuid::now_v7()),
                &s,
                None,
                false,
            )
            .await,
            403,
            "csrf_rejected",
        )
        .await;
        problem(
            call(&app, Method::POST, "/api/v1/auth/logout", &s, None, false).await,
            403,
            "csrf_rejected",
        )
        .await;
        // Reads need no header; writes with it go through.
        assert_eq!(
            call(&app, Method::GET, "/api/v1/users", &s, None, false)
                .await
                .status(),
            200
        );
        assert_eq!(
            call(&app, Method::POST, "/api/v1/users", &s, body(), true)
                .await
                .status(),
            201
        );
        // An API key is not a cookie: no anti-forgery header needed.
        let r = app
            .client
            .post(app.url("/api/v1/keys"))
            .header("x-api-key", &app.key_a)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
);

/// Moves a stored session's clock back instead of waiting (no sleeping, no wall-clock asserts).
async fn age_sessions(app: &TestApp, column: session::Column, by: chrono::TimeDelta) {
    let db = app.db_conn().await;
    for s in session::Entity::find().all(&db).await.unwrap() {
        let value = match column {
            session::Column::LastSeenAt => s.last_seen_at - by,
            _ => s.expires_at - by,
        };
        session::Entity::update_many()
            .col_expr(column, Expr::value(value))
            .filter(session::Column::Id.eq(s.id))
            .exec(&db)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_after_the_idle_and_the_absolute_timeout() {
    for backend in ["sqlite", "postgres"] {
        let app = TestApp::spawn_with(backend, |c| c.security.auth_cache_ms = 0).await;
        let (_, temp) = add_user(&app, "SO-KHCN-HCM", "an.admin", "system_admin").await;
        let (s, _) = session_of(login(&app, json!({"username": "an.admin", "password": temp})).await).await;
        assert_eq!(
            call(&app, Method::GET, "/api/v1/auth/me", &s, None, false)
                .await
                .status(),
            200
        );
        // 29 idle minutes: still alive.
        age_sessions(&app, session::Column::LastSeenAt, chrono::TimeDelta::minutes(29)).await;
        assert_eq!(
            call(&app, Method::GET, "/api/v1/auth/me", &s, None, false)
                .await
                .status(),
            200
        );
        // Another 31: past the 30-minute idle timeout (the previous request refreshed nothing
        // or refreshed it to now; either way it is now 31+ minutes old).
        age_sessions(&app, session::Column::LastSeenAt, chrono::TimeDelta::minutes(31)).await;
        problem(
            call(&app, Method::GET, "/api/v1/auth/me", &s, None, false).await,
            401,
            "session_expired",
        )
        .await;

        // Absolute: a busy session still ends at its absolute end.
        let (s, _) = session_of(login(&app, json!({"username": "an.admin", "password": temp})).await).await;
        assert_eq!(
            call(&app, Method::GET, "/api/v1/auth/me", &s, None, false)
                .await
                .status(),
            200
        );
        age_sessions(&app, session::Column::ExpiresAt, chrono::TimeDelta::hours(12)).await;
        problem(
            call(&app, Method::GET, "/api/v1/auth/me", &s, None, false).await,
            401,
            "session_expired",
        )
        .await;
        let _ = app.db.cleanup().await;
    }
}

both_backends!(
    repeated_failures_answer_423_with_retry_after_per_account_and_per_address,
    |app: TestApp| async move {
        let (_, temp) = add_user(&app, "SO-KHCN-HCM", "an.admin", "system_admin").await;
        for _ in 0..5 {
            problem(
                login(
                    &app,
                    json!({"username": "an.admin", "password": "guessing the password"}),
                )
                .await,
                401,
                "mfa_required",
            )
            .await;
        }
        // Locked: even the right password is refused, with the time to wait.
        let r = login(&app, json!({"username": "an.admin", "password": temp})).await;
        let retry: u64 = r
            .headers()
            .get("retry-after")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&retry), "{retry}");
        problem(r, 423, "account_locked").await;
        // An unknown username locks the same way.
        for _ in 0..5 {
            login(
                &app,
                json!({"username": "nobody", "password": "guessing the password"}),
            )
            .await;
        }
        problem(
            login(&app, json!({"username": "nobody", "password": "x"})).await,
            423,
            "account_locked",
        )
        .await;

        // Twenty failures from one address lock it for every username.
        for i in 0..10 {
            login(
                &app,
                json!({"username": format!("sprayed{i}"), "password": "Spring2026!!"}),
            )
            .await;
        }
        let r = login(
            &app,
            json!({"username": "never.tried", "password": "Spring2026!!"}),
        )
        .await;
        assert!(r.headers().get("retry-after").is_some());
        problem(r, 423, "account_locked").await;
        let db = app.db_conn().await;
        let attempts = etx_identity::store::entities::login_attempt::Entity::find()
            .all(&db)
            .await
            .unwrap();
        assert!(attempts.iter().all(|a| a.ip.as_deref() == Some("127.0.0.1")));
        assert!(attempts.iter().any(|a| a.outcome == "locked"));
    }
);
