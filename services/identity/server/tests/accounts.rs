//! People's use cases over the real store, on SQLite and on PostgreSQL, with a clock the tests
//! move (R-SEC-5, R-SEC-6): sign-in with TOTP and recovery codes, replay refusal, lockout per
//! account and per address, idle and absolute session timeouts, administration within a
//! subtree, and no clear secret in the database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, Utc};
use etx_crypto::{ApiKeyHasher, KeyRing, KeyedHasher, MasterKey};
use etx_domain::{OrgCode, OrgId, OrgKind, OrgName, SystemName, UserId, ViolationCode};
use etx_identity::store::entities::{data_key, login_attempt, recovery_code, session, user, user_mfa};
use etx_identity::{AppIdentity, IdentityDeps, SeaIdentityStore};
use etx_identity_core::{
    AccountError, AccountSettings, AccountStore, Actor, AuthError, EarlyWarningPolicy, LoginError,
    LoginRequest, ManualClock, NewSource, NewUser, Role, SecondFactor, SessionGrant, SessionState, UserPatch,
};
use etx_storage::testing::TestDb;
use sea_orm::{DatabaseConnection, EntityTrait};
use std::sync::Arc;
use zeroize::Zeroizing;

/// These tests are about accounts; the early warning's events are checked in
/// `early_warning.rs`.
#[derive(Debug)]
struct NoEvents;

#[async_trait::async_trait]
impl etx_audit_core::SecurityEvents for NoEvents {
    async fn emit(&self, _: etx_audit_core::SecurityEvent) -> Result<(), etx_audit_core::EventError> {
        Ok(())
    }
}

struct Env {
    app: AppIdentity,
    clock: Arc<ManualClock>,
    conn: DatabaseConnection,
    db: TestDb,
    org_a: OrgId,
    org_a1: OrgId,
    org_b: OrgId,
    master: MasterKey,
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

async fn org(app: &AppIdentity, code: &str, kind: OrgKind, parent: Option<&str>) -> OrgId {
    app.service
        .onboard(NewSource {
            org_code: OrgCode::parse(code).unwrap(),
            org_name: OrgName::parse(&format!("Tổ chức {code}")).unwrap(),
            org_kind: kind,
            parent: parent.map(|p| OrgCode::parse(p).unwrap()),
            valid_from: None,
            system_name: SystemName::parse("Cổng dữ liệu").unwrap(),
        })
        .await
        .unwrap()
        .org_id
}

async fn env(backend: &str) -> Env {
    let db = TestDb::of(backend).await;
    let conn = db.connect().await;
    let clock = Arc::new(ManualClock::new(t0()));
    let master = MasterKey::generate("mk-test");
    let app = build(&conn, &clock, KeyRing::new(master.clone(), vec![])).await;
    let org_a = org(&app, "79", OrgKind::Province, None).await;
    let org_a1 = org(&app, "79-SKHCN", OrgKind::ProvincialDepartment, Some("79")).await;
    let org_b = org(&app, "01", OrgKind::Province, None).await;
    Env {
        app,
        clock,
        conn,
        db,
        org_a,
        org_a1,
        org_b,
        master,
    }
}

async fn build(conn: &DatabaseConnection, clock: &Arc<ManualClock>, ring: KeyRing) -> AppIdentity {
    AppIdentity::build(
        conn.clone(),
        IdentityDeps {
            api_keys: Arc::new(ApiKeyHasher::new(&[7u8; 32])),
            hasher: Arc::new(KeyedHasher::new(&[9u8; 32])),
            ring: Arc::new(ring),
            clock: clock.clone(),
            settings: AccountSettings::default(),
            events: Arc::new(NoEvents),
            // Running, so that these tests also show it never changes a sign-in's outcome.
            early_warning: EarlyWarningPolicy::default(),
        },
    )
    .await
    .unwrap()
}

macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name("sqlite").await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name("postgres").await;
            }
        }
    };
}

const IP: &str = "203.0.113.7";

impl Env {
    async fn bootstrap(&self, org_code: &str, username: &str) -> (UserId, String) {
        let created = self
            .app
            .accounts
            .bootstrap_user(
                &OrgCode::parse(org_code).unwrap(),
                NewUser {
                    username: username.into(),
                    display_name: None,
                    org_id: None,
                    roles: vec!["system_admin".into()],
                    temporary_password: None,
                },
            )
            .await
            .unwrap();
        (created.user.id, created.temporary_password.unwrap().to_string())
    }

    async fn login(
        &self,
        username: &str,
        password: &str,
        factor: Option<SecondFactor>,
    ) -> Result<SessionGrant, LoginError> {
        self.login_from(username, password, factor, IP).await
    }

    async fn login_from(
        &self,
        username: &str,
        password: &str,
        factor: Option<SecondFactor>,
        ip: &str,
    ) -> Result<SessionGrant, LoginError> {
        self.app
            .accounts
            .login(LoginRequest {
                username: username.into(),
                password: Zeroizing::new(password.into()),
                second_factor: factor,
                ip: Some(ip.into()),
            })
            .await
    }

    fn actor(&self, user: UserId, org: OrgId, roles: &[Role]) -> Actor {
        Actor {
            user_id: user,
            org_id: org,
            roles: roles.to_vec(),
            ip: Some(IP.into()),
        }
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(TimeDelta::seconds(secs));
    }

    fn now(&self) -> u64 {
        use etx_identity_core::Clock;
        self.clock.now().timestamp() as u64
    }

    /// Signs a bootstrap administrator all the way in: password change, enrolment. Returns
    /// the session token, the new password, the authenticator and the recovery codes.
    async fn full_admin(
        &self,
        org_code: &str,
        username: &str,
    ) -> (UserId, String, String, totp_rs::Totp, Vec<String>) {
        let (id, temp) = self.bootstrap(org_code, username).await;
        let grant = self.login(username, &temp, None).await.unwrap();
        let org = grant.view.user.org_id;
        let actor = self.actor(id, org, &[Role::SystemAdmin]);
        let password = format!("a long passphrase for {org_code}");
        self.app
            .accounts
            .change_password(
                &grant.token,
                &actor,
                Zeroizing::new(temp),
                Zeroizing::new(password.clone()),
            )
            .await
            .unwrap();
        let e = self.app.accounts.enroll_mfa(&grant.token, id).await.unwrap();
        let app = totp_rs::Totp::from_url(e.otpauth_uri.as_str()).unwrap();
        let codes = self
            .app
            .accounts
            .confirm_mfa(&grant.token, id, &app.generate(self.now()).to_string())
            .await
            .unwrap();
        let codes = codes.iter().map(|c| c.to_string()).collect();
        (id, grant.token.to_string(), password, app, codes)
    }
}

async fn first_sign_in_changes_the_password_enrols_mfa_and_then_always_needs_it(backend: &str) {
    let env = env(backend).await;
    let (id, temp) = env.bootstrap("79", "An.Admin").await;
    let accounts = &env.app.accounts;

    // 1. The temporary password alone opens a session that may only change it.
    let grant = env.login("AN.ADMIN", &temp, None).await.unwrap();
    assert_eq!(grant.view.state, SessionState::PasswordChangeRequired);
    let caller = accounts.authenticate_session(&grant.token).await.unwrap();
    assert_eq!(caller.user_id, Some(id));
    assert_eq!(caller.subject(), format!("user:{id}"));
    assert_eq!(caller.roles, vec!["system_admin"]);
    assert_eq!(caller.system_id, None);
    assert_eq!(
        caller.session.as_ref().unwrap().state,
        SessionState::PasswordChangeRequired
    );

    // 2. The new password must meet the policy; every broken rule is reported at the field.
    let actor = env.actor(id, env.org_a, &[Role::SystemAdmin]);
    let err = accounts
        .change_password(
            &grant.token,
            &actor,
            Zeroizing::new(temp.clone()),
            Zeroizing::new("an.admin".into()),
        )
        .await
        .unwrap_err();
    let AccountError::Invalid(v) = err else {
        panic!("{err:?}")
    };
    assert!(v.iter().all(|v| v.path == "/new_password"));
    let codes: Vec<ViolationCode> = v.iter().map(|v| v.code).collect();
    assert_eq!(
        codes,
        vec![ViolationCode::TooSmall, ViolationCode::Invalid],
        "{v:?}"
    );
    let wrong = accounts
        .change_password(
            &grant.token,
            &actor,
            Zeroizing::new("not the temporary one".into()),
            Zeroizing::new("a long passphrase 2026".into()),
        )
        .await;
    assert!(matches!(wrong, Err(AccountError::InvalidCredentials)));
    let view = accounts
        .change_password(
            &grant.token,
            &actor,
            Zeroizing::new(temp.clone()),
            Zeroizing::new("a long passphrase 2026".into()),
        )
        .await
        .unwrap();
    assert_eq!(view.state, SessionState::MfaEnrolmentRequired);
    assert!(!view.user.must_change_password);

    // 3. Enrolment: the URI is read by an independent implementation, whose code confirms it.
    let e = accounts.enroll_mfa(&grant.token, id).await.unwrap();
    assert!(e.otpauth_uri.starts_with("otpauth://totp/ETX%20Hub:an.admin?"));
    let app = totp_rs::Totp::from_url(e.otpauth_uri.as_str()).unwrap();
    assert_eq!(app.secret().to_base32(), *e.secret_base32);
    let bad = accounts.confirm_mfa(&grant.token, id, "000000").await;
    assert!(
        matches!(bad, Err(AccountError::InvalidMfaCode)) || app.generate(env.now()).to_string() == "000000"
    );
    let recovery = accounts
        .confirm_mfa(&grant.token, id, &app.generate(env.now()).to_string())
        .await
        .unwrap();
    assert_eq!(recovery.len(), 10);
    let caller = accounts.authenticate_session(&grant.token).await.unwrap();
    assert_eq!(caller.session.unwrap().state, SessionState::Full);
    assert!(matches!(
        accounts.enroll_mfa(&grant.token, id).await,
        Err(AccountError::Conflict)
    ));

    // 4. From now on the password alone never signs in — right or wrong, it is not revealed.
    let pw = "a long passphrase 2026";
    env.advance(30);
    assert!(matches!(
        env.login("an.admin", pw, None).await,
        Err(LoginError::MfaRequired)
    ));
    assert!(matches!(
        env.login("an.admin", "wrong password!", None).await,
        Err(LoginError::MfaRequired)
    ));
    assert!(matches!(
        env.login("nobody.here", "wrong password!", None).await,
        Err(LoginError::MfaRequired)
    ));
    let totp = |e: &Env| SecondFactor::Totp(app.generate(e.now()).to_string());
    let wrong_code = format!(
        "{:06}",
        (app.generate(env.now()).to_string().parse::<u32>().unwrap() + 1) % 1_000_000
    );
    assert!(matches!(
        env.login("an.admin", pw, Some(SecondFactor::Totp(wrong_code)))
            .await,
        Err(LoginError::InvalidMfaCode)
    ));
    let ok = env.login("an.admin", pw, Some(totp(&env))).await.unwrap();
    assert_eq!(ok.view.state, SessionState::Full);
    // 5. The same code again — same step — is a replay.
    assert!(matches!(
        env.login("an.admin", pw, Some(totp(&env))).await,
        Err(LoginError::InvalidMfaCode)
    ));
    // A right code with a wrong password fails the same way and is not used up.
    env.advance(30);
    assert!(matches!(
        env.login("an.admin", "wrong password!", Some(totp(&env))).await,
        Err(LoginError::InvalidMfaCode)
    ));
    env.login("an.admin", pw, Some(totp(&env))).await.unwrap();

    // 6. A recovery code works once, whatever its case and dashes.
    let code = recovery[3].to_uppercase().replace('-', "");
    env.login(
        "an.admin",
        pw,
        Some(SecondFactor::Recovery(Zeroizing::new(code.clone()))),
    )
    .await
    .unwrap();
    assert!(matches!(
        env.login("an.admin", pw, Some(SecondFactor::Recovery(Zeroizing::new(code))))
            .await,
        Err(LoginError::InvalidMfaCode)
    ));
    assert_eq!(accounts.recovery_codes_left(id).await.unwrap(), 9);

    // Every attempt is recorded with its real outcome.
    let outcomes: Vec<String> = login_attempt::Entity::find()
        .all(&env.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    for o in ["ok", "mfa_missing", "bad_password", "unknown_user", "bad_mfa"] {
        assert!(outcomes.iter().any(|x| x == o), "{o} in {outcomes:?}");
    }
    let _ = env.db.cleanup().await;
}
both_backends!(first_sign_in_changes_the_password_enrols_mfa_and_then_always_needs_it);

async fn repeated_failures_lock_a_username_and_an_address_for_the_window(backend: &str) {
    let env = env(backend).await;
    let (_, _, pw, app, _) = env.full_admin("79", "an.admin").await;

    // An unknown username locks like a real one, so a lockout says nothing about existence.
    for _ in 0..5 {
        assert!(matches!(
            env.login("ghost", "guess guess guess", None).await,
            Err(LoginError::MfaRequired)
        ));
    }
    match env.login("ghost", "guess guess guess", None).await {
        Err(LoginError::Locked { retry_after_secs }) => assert_eq!(retry_after_secs, 900),
        other => panic!("{:?}", other.map(|g| g.view.state)),
    }

    // A real account: five wrong passwords from anywhere lock it, even for the right one.
    env.advance(30);
    for i in 0..5 {
        let r = env
            .login_from("an.admin", "wrong wrong wrong", None, &format!("198.51.100.{i}"))
            .await;
        assert!(matches!(r, Err(LoginError::MfaRequired)));
    }
    env.advance(60);
    let code = || SecondFactor::Totp(app.generate(env.now()).to_string());
    match env.login("an.admin", &pw, Some(code())).await {
        Err(LoginError::Locked { retry_after_secs }) => assert_eq!(retry_after_secs, 900 - 60),
        other => panic!("{:?}", other.map(|g| g.view.state)),
    }
    // Refusals while locked do not extend it: it lifts 15 minutes after the fifth failure.
    env.advance(900 - 60 - 1);
    assert!(matches!(
        env.login("an.admin", &pw, Some(code())).await,
        Err(LoginError::Locked { .. })
    ));
    env.advance(1);
    env.login("an.admin", &pw, Some(code())).await.unwrap();
    // A success starts the count again.
    for _ in 0..4 {
        let _ = env.login("an.admin", "wrong wrong wrong", None).await;
    }
    env.advance(30);
    env.login("an.admin", &pw, Some(code())).await.unwrap();
    for _ in 0..4 {
        let _ = env.login("an.admin", "wrong wrong wrong", None).await;
    }
    env.advance(30);
    env.login("an.admin", &pw, Some(code())).await.unwrap();

    // Twenty failures from one address lock it for every username; other addresses go on.
    env.advance(1000);
    let sprayer = "192.0.2.66";
    for i in 0..20 {
        let r = env
            .login_from(&format!("user{i}"), "Spring2026!!", None, sprayer)
            .await;
        assert!(matches!(r, Err(LoginError::MfaRequired)), "attempt {i}");
    }
    env.advance(30);
    assert!(matches!(
        env.login_from("an.admin", &pw, Some(code()), sprayer).await,
        Err(LoginError::Locked {
            retry_after_secs: 870
        })
    ));
    env.login_from("an.admin", &pw, Some(code()), "192.0.2.67")
        .await
        .unwrap();
    let _ = env.db.cleanup().await;
}
both_backends!(repeated_failures_lock_a_username_and_an_address_for_the_window);

async fn sessions_end_when_idle_past_the_absolute_timeout_or_on_logout(backend: &str) {
    let env = env(backend).await;
    let (id, temp) = env.bootstrap("79", "an.admin").await;
    let accounts = &env.app.accounts;
    let store = SeaIdentityStore::new(env.conn.clone());

    // Idle: 30 minutes without a request.
    let g = env.login("an.admin", &temp, None).await.unwrap();
    let hash = |token: &str| {
        // The stored session is found through the same keyed hash the service uses.
        let h = KeyedHasher::new(&[9u8; 32]);
        h.hash("session-token", token.as_bytes()).to_vec()
    };
    env.advance(30);
    accounts.authenticate_session(&g.token).await.unwrap();
    let s = store
        .session_by_token_hash(&hash(&g.token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.last_seen_at, t0(), "not refreshed within a minute");
    env.advance(31);
    accounts.authenticate_session(&g.token).await.unwrap();
    let s = store
        .session_by_token_hash(&hash(&g.token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.last_seen_at,
        t0() + TimeDelta::seconds(61),
        "refreshed after a minute"
    );
    env.advance(29 * 60);
    accounts.authenticate_session(&g.token).await.unwrap();
    env.advance(30 * 60);
    assert_eq!(
        accounts.authenticate_session(&g.token).await,
        Err(AuthError::Expired)
    );
    env.advance(-60 * 60);
    assert_eq!(
        accounts.authenticate_session(&g.token).await,
        Err(AuthError::Expired),
        "an ended session stays ended"
    );
    env.advance(60 * 60);

    // Absolute: 12 hours, however busy.
    let g = env.login("an.admin", &temp, None).await.unwrap();
    for _ in 0..(12 * 60 / 20 - 1) {
        env.advance(20 * 60);
        accounts.authenticate_session(&g.token).await.unwrap();
    }
    env.advance(20 * 60);
    assert_eq!(
        accounts.authenticate_session(&g.token).await,
        Err(AuthError::Expired)
    );

    // Logout.
    let g = env.login("an.admin", &temp, None).await.unwrap();
    let view = accounts.session_view(&g.token, id).await.unwrap();
    assert_eq!(
        view.csrf_token, g.view.csrf_token,
        "the anti-forgery token is handed out again"
    );
    accounts.logout(&g.token).await.unwrap();
    assert_eq!(
        accounts.authenticate_session(&g.token).await,
        Err(AuthError::Expired)
    );
    assert!(matches!(
        accounts.session_view(&g.token, id).await,
        Err(AccountError::SessionExpired)
    ));

    // Tokens that were never issued.
    assert_eq!(accounts.authenticate_session("").await, Err(AuthError::Missing));
    assert_eq!(
        accounts.authenticate_session("nope").await,
        Err(AuthError::Invalid)
    );
    assert_eq!(
        accounts.authenticate_session(&"A".repeat(43)).await,
        Err(AuthError::Invalid)
    );
    let _ = env.db.cleanup().await;
}
both_backends!(sessions_end_when_idle_past_the_absolute_timeout_or_on_logout);

async fn administrators_manage_accounts_only_within_their_subtree(backend: &str) {
    let env = env(backend).await;
    let accounts = &env.app.accounts;
    let (admin_a, _) = env.bootstrap("79", "admin.a").await;
    let (_, _) = env.bootstrap("01", "admin.b").await;
    let a = env.actor(admin_a, env.org_a, &[Role::SystemAdmin]);

    // Create in the own organisation and in a child one; not in another province.
    let op = accounts
        .create_user(
            &a,
            NewUser {
                username: "Operator.One".into(),
                display_name: Some("Nguyễn Văn Một".into()),
                org_id: Some(env.org_a1),
                roles: vec!["operator".into(), "analyst".into()],
                temporary_password: Some(Zeroizing::new("a temporary passphrase".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!(op.user.username.as_str(), "operator.one");
    assert!(op.temporary_password.is_none(), "the admin set it");
    assert!(op.user.must_change_password && !op.user.mfa_enabled);
    let generated = accounts
        .create_user(
            &a,
            NewUser {
                username: "auditor.one".into(),
                display_name: None,
                org_id: None,
                roles: vec!["auditor".into()],
                temporary_password: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(generated.temporary_password.as_ref().unwrap().len(), 20);
    let err = accounts
        .create_user(
            &a,
            NewUser {
                username: "x".into(),
                display_name: Some(" ".into()),
                org_id: Some(env.org_b),
                roles: vec!["root".into()],
                temporary_password: Some(Zeroizing::new("short".into())),
            },
        )
        .await
        .unwrap_err();
    let AccountError::Invalid(v) = err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = v.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["/org_id", "/username", "/display_name", "/roles"],
        "{v:?}"
    );
    let dup = accounts
        .create_user(
            &a,
            NewUser {
                username: "OPERATOR.ONE".into(),
                display_name: None,
                org_id: None,
                roles: vec!["operator".into()],
                temporary_password: None,
            },
        )
        .await;
    assert!(
        matches!(dup, Err(AccountError::Conflict)),
        "usernames are unique whatever the case"
    );

    // Reading: the subtree only; another province's accounts do not exist for A.
    let names: Vec<String> = accounts
        .list_users(&a)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username.to_string())
        .collect();
    assert_eq!(names, vec!["admin.a", "auditor.one", "operator.one"]);
    let admin_b = accounts
        .list_users(&env.actor(admin_a, env.org_b, &[Role::SystemAdmin]))
        .await
        .unwrap()[0]
        .id;
    assert!(matches!(
        accounts.get_user(&a, admin_b).await,
        Err(AccountError::NotFound)
    ));
    assert!(matches!(
        accounts.update_user(&a, admin_b, UserPatch::default()).await,
        Err(AccountError::NotFound)
    ));
    assert!(matches!(
        accounts.reset_password(&a, admin_b, None).await,
        Err(AccountError::NotFound)
    ));
    assert!(matches!(
        accounts.get_user(&a, UserId::new()).await,
        Err(AccountError::NotFound)
    ));
    assert_eq!(
        accounts.get_user(&a, op.user.id).await.unwrap().org_id,
        env.org_a1
    );

    // Only system_admin manages accounts.
    let not_admin = env.actor(op.user.id, env.org_a, &[Role::Operator, Role::SecurityOfficer]);
    assert!(matches!(
        accounts.list_users(&not_admin).await,
        Err(AccountError::Forbidden)
    ));
    assert!(matches!(
        accounts.get_user(&not_admin, op.user.id).await,
        Err(AccountError::Forbidden)
    ));

    // An administrator cannot lock themselves out.
    let own = accounts
        .update_user(
            &a,
            admin_a,
            UserPatch {
                status: Some("disabled".into()),
                roles: Some(vec!["operator".into()]),
                display_name: None,
            },
        )
        .await
        .unwrap_err();
    let AccountError::Invalid(v) = own else {
        panic!("{own:?}")
    };
    assert_eq!(v.len(), 2);

    // Roles and display name change; disabling ends sessions and refuses sign-in.
    let g = env
        .login("operator.one", "a temporary passphrase", None)
        .await
        .unwrap();
    assert_eq!(g.view.state, SessionState::PasswordChangeRequired);
    let changed = accounts
        .update_user(
            &a,
            op.user.id,
            UserPatch {
                display_name: Some("Nguyễn Văn Hai".into()),
                roles: Some(vec!["data_consumer".into()]),
                status: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.roles.names(), vec!["data_consumer"]);
    assert_eq!(
        accounts.authenticate_session(&g.token).await.unwrap().roles,
        vec!["data_consumer"],
        "roles are read fresh"
    );
    accounts
        .update_user(
            &a,
            op.user.id,
            UserPatch {
                status: Some("disabled".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        accounts.authenticate_session(&g.token).await,
        Err(AuthError::Expired)
    );
    assert!(
        env.login("operator.one", "a temporary passphrase", None)
            .await
            .is_err()
    );
    accounts
        .update_user(
            &a,
            op.user.id,
            UserPatch {
                status: Some("active".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();

    // A reset ends the sessions and forces a change at the next sign-in.
    let g = env
        .login("operator.one", "a temporary passphrase", None)
        .await
        .unwrap();
    let short = accounts
        .reset_password(&a, op.user.id, Some(Zeroizing::new("operator.one 2026!!".into())))
        .await
        .unwrap_err();
    assert!(matches!(short, AccountError::Invalid(ref v) if v[0].path == "/temporary_password"));
    let fresh = accounts
        .reset_password(&a, op.user.id, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        accounts.authenticate_session(&g.token).await,
        Err(AuthError::Expired)
    );
    let g = env.login("operator.one", &fresh, None).await.unwrap();
    assert_eq!(g.view.state, SessionState::PasswordChangeRequired);
    let _ = env.db.cleanup().await;
}
both_backends!(administrators_manage_accounts_only_within_their_subtree);

async fn the_database_holds_no_clear_password_totp_secret_recovery_code_or_token(backend: &str) {
    let env = env(backend).await;
    let (_, token, password, app, codes) = env.full_admin("79", "an.admin").await;
    env.advance(30);
    let g = env
        .login(
            "an.admin",
            &password,
            Some(SecondFactor::Totp(app.generate(env.now()).to_string())),
        )
        .await
        .unwrap();
    let secret = app.secret().as_ref().to_vec();
    let mut needles: Vec<Vec<u8>> = vec![
        password.clone().into_bytes(),
        token.clone().into_bytes(),
        g.token.as_bytes().to_vec(),
        g.view.csrf_token.clone().into_bytes(),
        app.secret().to_base32().into_bytes(),
        secret.clone(),
    ];
    for c in &codes {
        needles.push(c.clone().into_bytes());
        needles.push(c.replace('-', "").into_bytes());
    }

    let mut text = String::new();
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    for u in user::Entity::find().all(&env.conn).await.unwrap() {
        text.push_str(&format!("{u:?}"));
    }
    for m in user_mfa::Entity::find().all(&env.conn).await.unwrap() {
        blobs.push(m.sealed_secret.clone());
        text.push_str(&format!("{m:?}"));
    }
    for r in recovery_code::Entity::find().all(&env.conn).await.unwrap() {
        blobs.push(r.code_hash.clone());
    }
    for s in session::Entity::find().all(&env.conn).await.unwrap() {
        blobs.push(s.token_hash.clone());
        text.push_str(&format!("{s:?}"));
    }
    for a in login_attempt::Entity::find().all(&env.conn).await.unwrap() {
        text.push_str(&format!("{a:?}"));
    }
    for k in data_key::Entity::find().all(&env.conn).await.unwrap() {
        blobs.push(k.wrapped.clone());
    }
    assert!(text.contains("$argon2id$"), "passwords are argon2id PHC strings");
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    for n in &needles {
        assert!(!contains(text.as_bytes(), n), "a secret appears in a text column");
        for b in &blobs {
            assert!(!contains(b, n), "a secret appears in a binary column");
        }
    }
    if backend == "sqlite" {
        // And nowhere in the database files, whatever the table.
        let path = env
            .db
            .url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let main = std::fs::read(&path).unwrap();
        assert!(
            contains(&main, b"$argon2id$")
                || contains(
                    &std::fs::read(format!("{path}-wal")).unwrap_or_default(),
                    b"$argon2id$"
                )
        );
        for file in [path.clone(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            for n in &needles {
                assert!(!contains(&bytes, n), "a secret appears in {file}");
            }
        }
    }
    let _ = env.db.cleanup().await;
}
both_backends!(the_database_holds_no_clear_password_totp_secret_recovery_code_or_token);

async fn totp_secrets_stay_readable_after_the_master_key_is_rotated_and_retired(backend: &str) {
    let mut env = env(backend).await;
    let (_, _, password, app, _) = env.full_admin("79", "an.admin").await;
    // Restart with a new active master key, the old one kept as previous: identity re-wraps
    // its data keys at start-up.
    let new = MasterKey::generate("mk-new");
    env.app = build(
        &env.conn,
        &env.clock,
        KeyRing::new(new.clone(), vec![env.master.clone()]),
    )
    .await;
    let keys: Vec<String> = data_key::Entity::find()
        .all(&env.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.master_key_id)
        .collect();
    assert!(!keys.is_empty() && keys.iter().all(|k| k == "mk-new"), "{keys:?}");
    // Then the old master key is retired: sign-in with TOTP still works.
    env.app = build(&env.conn, &env.clock, KeyRing::new(new, vec![])).await;
    env.advance(30);
    env.login(
        "an.admin",
        &password,
        Some(SecondFactor::Totp(app.generate(env.now()).to_string())),
    )
    .await
    .unwrap();
    let _ = env.db.cleanup().await;
}
both_backends!(totp_secrets_stay_readable_after_the_master_key_is_rotated_and_retired);

/// The fuzz run's finding: PostgreSQL cannot store NUL in text, so a submitted username with
/// control characters is recorded normalised (and still counts for lockout), and display names
/// with control characters are refused per field, never reaching the database.
async fn control_characters_in_user_text_never_reach_the_database(backend: &str) {
    let env = env(backend).await;
    let accounts = &env.app.accounts;
    for _ in 0..5 {
        assert!(matches!(
            env.login("gh\u{0}ost\u{1b}", "guess guess guess", None).await,
            Err(LoginError::MfaRequired)
        ));
    }
    assert!(matches!(
        env.login("gh\u{0}ost\u{1b}", "guess guess guess", None).await,
        Err(LoginError::Locked { .. })
    ));
    let attempts = login_attempt::Entity::find().all(&env.conn).await.unwrap();
    assert!(!attempts.is_empty());
    assert!(
        attempts.iter().all(|a| !a.username.chars().any(char::is_control)),
        "{attempts:?}"
    );

    let (admin, _) = env.bootstrap("79", "admin.a").await;
    let a = env.actor(admin, env.org_a, &[Role::SystemAdmin]);
    let err = accounts
        .create_user(
            &a,
            NewUser {
                username: "op\u{0}one".into(),
                display_name: Some("Nguyễn\u{0}Văn A".into()),
                org_id: None,
                roles: vec!["operator".into()],
                temporary_password: None,
            },
        )
        .await
        .unwrap_err();
    let AccountError::Invalid(v) = err else {
        panic!("{err:?}")
    };
    let paths: Vec<&str> = v.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(paths, vec!["/username", "/display_name"], "{v:?}");
    let patch = UserPatch {
        display_name: Some("Admin\u{0}".into()),
        ..UserPatch::default()
    };
    let err = accounts.update_user(&a, admin, patch).await.unwrap_err();
    assert!(matches!(err, AccountError::Invalid(_)), "{err:?}");
    let _ = env.db.cleanup().await;
}
both_backends!(control_characters_in_user_text_never_reach_the_database);
