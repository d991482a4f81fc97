//! A database dump contains no usable secret (issue 4 acceptance, R-SEC-5): after sources,
//! people, MFA enrolment, sign-ins and submissions, neither `pg_dump` of the whole PostgreSQL
//! database nor the SQLite files hold an API key, a password, a TOTP secret, a recovery code, a
//! session token, an OAuth2 client secret or access token, the master or keyed-hash key, or a
//! record's personal payload in clear.

use crate::both_backends;
use crate::helpers::*;
use crate::users::{add_user, call, login, now, session_of};
use reqwest::Method;
use serde_json::{Value, json};

/// Every byte the database holds: `pg_dump` for PostgreSQL, the files for SQLite.
async fn dump(app: &TestApp) -> Vec<u8> {
    if app.cfg.is_sqlite() {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&app.cfg.data_dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("etxhub.db") {
                out.extend(std::fs::read(&path).unwrap());
            }
        }
        assert!(
            !out.is_empty(),
            "no SQLite file in {}",
            app.cfg.data_dir.display()
        );
        out
    } else {
        let out = tokio::process::Command::new("pg_dump")
            .arg("--data-only")
            .arg(&app.db.url)
            .output()
            .await
            .expect("pg_dump must be installed for this test");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

both_backends!(
    a_database_dump_holds_no_usable_secret,
    |app: TestApp| async move {
        let mut secrets: Vec<(&str, String)> =
            vec![("API key A", app.key_a.clone()), ("API key B", app.key_b.clone())];
        // A person: temporary password, new password, TOTP secret, recovery codes, sessions.
        let (_, temp) = add_user(&app, "SO-KHCN-HCM", "bao.mat", "security_officer").await;
        let (s, _) = session_of(login(&app, json!({"username": "bao.mat", "password": temp})).await).await;
        let password = "một câu mật khẩu rất dài 2026".to_owned();
        let changed = call(
            &app,
            Method::POST,
            "/api/v1/auth/password",
            &s,
            Some(json!({"current_password": temp, "new_password": password})),
            true,
        )
        .await;
        assert_eq!(changed.status(), 200);
        let enrol: Value = call(&app, Method::POST, "/api/v1/auth/mfa/enroll", &s, None, true)
            .await
            .json()
            .await
            .unwrap();
        let totp = totp_rs::Totp::from_url(enrol["otpauth_uri"].as_str().unwrap()).unwrap();
        let confirmed: Value = call(
            &app,
            Method::POST,
            "/api/v1/auth/mfa/confirm",
            &s,
            Some(json!({"code": totp.generate(now()).to_string()})),
            true,
        )
        .await
        .json()
        .await
        .unwrap();
        let (full, _) = session_of(
            login(
                &app,
                json!({"username": "bao.mat", "password": password, "recovery_code": confirmed["recovery_codes"][0]}),
            )
            .await,
        )
        .await;
        secrets.push(("temporary password", temp));
        secrets.push(("password", password));
        secrets.push(("TOTP secret", enrol["secret"].as_str().unwrap().to_owned()));
        for (i, c) in confirmed["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .skip(1)
        {
            assert!(i < 11);
            secrets.push(("recovery code", c.as_str().unwrap().to_owned()));
        }
        for sess in [&s, &full] {
            let token = sess.cookie.strip_prefix("etx_session=").unwrap().to_owned();
            secrets.push(("session token", token));
            secrets.push(("CSRF token", sess.csrf.clone()));
        }
        // A connected system's OAuth2 client secret and access token (issue 4 §4).
        let client = crate::oauth::register(&app, &app.key_a, None).await;
        let access_token = crate::oauth::token(&app, &client, None).await;
        secrets.push(("OAuth2 client secret", client.secret.clone()));
        secrets.push(("OAuth2 access token", access_token));
        // A record with a citizen id in its payload, and the deployment's own keys.
        let mut record = stats_record(3.0, Some("dump-1"));
        record["payload"]["note"] = json!("CCCD 079203001234 của người nộp");
        assert_eq!(app.submit_json(&record).await.status(), 202);
        secrets.push(("payload", "079203001234".to_owned()));
        let keys = etxhub::secrets::Secrets::load(&app.cfg).unwrap();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        secrets.push(("HMAC key", b64.encode(&keys.hmac_key)));
        secrets.push(("internal secret", b64.encode(&keys.internal_secret)));
        secrets.push(("master key", keys.master.to_base64()));

        let bytes = dump(&app).await;
        assert!(bytes.len() > 10_000, "the dump looks empty");
        // Controls: what is not secret is there, so the scan does look at the right bytes.
        assert!(
            contains(&bytes, "bao.mat"),
            "the account's username should be in the dump"
        );
        assert!(
            contains(&bytes, "SO-KHCN-HCM"),
            "the organisation code should be in the dump"
        );
        for (what, secret) in &secrets {
            assert!(
                !contains(&bytes, secret),
                "{what} found in clear in the database dump"
            );
        }
    }
);
