//! The early warning (R-SEC-7) over the real store, on SQLite and on PostgreSQL, with replayed
//! attack scenarios on a clock the tests move: brute force on one account, password spraying
//! from one address, administrators signing in from a new network or outside working hours,
//! and a revoked key hammered — each raises exactly one event, with its evidence, however long
//! the attack goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, Utc};
use etx_audit_core::{EventError, SecurityEvent, SecurityEvents, Severity};
use etx_crypto::{ApiKeyHasher, KeyRing, KeyedHasher, MasterKey};
use etx_domain::{OrgCode, OrgKind, OrgName, SystemName, UserId};
use etx_identity::{AppIdentity, IdentityDeps};
use etx_identity_core::{
    AccountSettings, AuthError, Clock, EarlyWarningPolicy, LoginError, LoginRequest, ManualClock, NewSource,
    NewUser,
};
use etx_storage::testing::TestDb;
use sea_orm::DatabaseConnection;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use zeroize::Zeroizing;

/// An in-memory [`SecurityEvents`] that records what it is given; it can be told to fail.
#[derive(Debug, Default)]
struct Recorder {
    events: Mutex<Vec<SecurityEvent>>,
    failures_to_come: AtomicUsize,
}

impl Recorder {
    fn of_kind(&self, kind: &str) -> Vec<SecurityEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.kind == kind)
            .cloned()
            .collect()
    }

    fn all(&self) -> Vec<SecurityEvent> {
        self.events.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl SecurityEvents for Recorder {
    async fn emit(&self, event: SecurityEvent) -> Result<(), EventError> {
        if self
            .failures_to_come
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(EventError(anyhow::anyhow!("outbox unavailable")));
        }
        self.events.lock().unwrap().push(event);
        Ok(())
    }
}

struct Env {
    app: AppIdentity,
    events: Arc<Recorder>,
    clock: Arc<ManualClock>,
    conn: DatabaseConnection,
    db: TestDb,
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Friday 15 January 2027, 10:00 in Vietnam: working hours.
fn friday_10h() -> DateTime<Utc> {
    at("2027-01-15T10:00:00+07:00")
}

async fn build(conn: &DatabaseConnection, clock: &Arc<ManualClock>, events: Arc<Recorder>) -> AppIdentity {
    AppIdentity::build(
        conn.clone(),
        IdentityDeps {
            api_keys: Arc::new(ApiKeyHasher::new(&[7u8; 32])),
            hasher: Arc::new(KeyedHasher::new(&[9u8; 32])),
            ring: Arc::new(KeyRing::new(MasterKey::generate("mk-test"), vec![])),
            clock: clock.clone(),
            settings: AccountSettings::default(),
            events,
            early_warning: EarlyWarningPolicy::default(),
        },
    )
    .await
    .unwrap()
}

async fn env(backend: &str) -> Env {
    let db = TestDb::of(backend).await;
    let conn = db.connect().await;
    let clock = Arc::new(ManualClock::new(friday_10h()));
    let events = Arc::new(Recorder::default());
    let app = build(&conn, &clock, events.clone()).await;
    app.service
        .onboard(NewSource {
            org_code: OrgCode::parse("79").unwrap(),
            org_name: OrgName::parse("Thành phố Hồ Chí Minh").unwrap(),
            org_kind: OrgKind::Province,
            parent: None,
            valid_from: None,
            system_name: SystemName::parse("Cổng dữ liệu").unwrap(),
        })
        .await
        .unwrap();
    Env {
        app,
        events,
        clock,
        conn,
        db,
    }
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

const WRONG: &str = "Mùa xuân 2027 đúng không?";

impl Env {
    /// An account with a temporary password (which signs in on its own until MFA is enrolled).
    async fn account(&self, username: &str, role: &str) -> (UserId, String) {
        let created = self
            .app
            .accounts
            .bootstrap_user(
                &OrgCode::parse("79").unwrap(),
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
        (created.user.id, created.temporary_password.unwrap().to_string())
    }

    async fn login(&self, username: &str, password: &str, ip: &str) -> Result<(), LoginError> {
        self.app
            .accounts
            .login(LoginRequest {
                username: username.into(),
                password: Zeroizing::new(password.into()),
                second_factor: None,
                ip: Some(ip.into()),
            })
            .await
            .map(|_| ())
    }

    fn set(&self, t: DateTime<Utc>) {
        self.clock.set(t);
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(TimeDelta::seconds(secs));
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn a_brute_force_run_raises_one_event_however_long_it_lasts(backend: &str) {
    let env = env(backend).await;
    let (id, password) = env.account("an.admin", "system_admin").await;
    let t0 = friday_10h();
    let ips = ["198.51.100.10", "198.51.100.11", "203.0.113.12"];

    // 20 wrong passwords in 9 min 30 s, from three addresses in turn. The account locks at the
    // fifth; the fifteen refusals that follow keep the alert quiet instead of raising more.
    for i in 0..20 {
        env.set(t0 + TimeDelta::seconds(30 * i));
        let r = env.login("an.admin", WRONG, ips[i as usize % 3]).await;
        if i < 5 {
            assert!(matches!(r, Err(LoginError::MfaRequired)), "attempt {i}");
        } else {
            assert!(matches!(r, Err(LoginError::Locked { .. })), "attempt {i}");
        }
    }
    let events = env.events.all();
    assert_eq!(events.len(), 1, "{backend}: {events:#?}");
    let e = &events[0];
    assert_eq!(e.kind, "auth.brute_force");
    assert_eq!(e.severity, Severity::High);
    assert_eq!(e.at, t0 + TimeDelta::seconds(120), "raised at the fifth failure");
    assert_eq!(e.key, format!("auth.brute_force:an.admin:{}", ts(t0)));
    assert_eq!(e.evidence["username"], "an.admin");
    assert_eq!(e.evidence["user_id"], json!(id));
    assert_eq!(e.evidence["failures"], 5);
    assert_eq!(e.evidence["outcomes"], json!({"bad_password": 5}));
    assert_eq!(e.evidence["distinct_ips"], 3);
    assert_eq!(e.evidence["ips"], json!(ips));
    assert_eq!(e.evidence["first_at"], ts(t0));
    assert_eq!(e.evidence["last_at"], ts(t0 + TimeDelta::seconds(120)));
    assert_eq!(e.evidence["threshold"], 5);
    assert_eq!(e.evidence["window_secs"], 900);
    let body = serde_json::to_string(e).unwrap();
    assert!(!body.contains(WRONG) && !body.contains(&password), "{body}");

    // The burst ends a whole window after its last attempt; a later one is a new incident.
    let last = t0 + TimeDelta::seconds(30 * 19);
    env.set(last + TimeDelta::seconds(899));
    let _ = env.login("an.admin", WRONG, ips[0]).await;
    assert_eq!(env.events.all().len(), 1, "still the same burst");
    let restart = env.clock.now() + TimeDelta::seconds(901);
    for i in 0..5 {
        env.set(restart + TimeDelta::seconds(i));
        let _ = env.login("an.admin", WRONG, "192.0.2.1").await;
    }
    let events = env.events.of_kind("auth.brute_force");
    assert_eq!(events.len(), 2, "{backend}: {events:#?}");
    assert_eq!(
        events[1].key,
        format!("auth.brute_force:an.admin:{}", ts(restart))
    );
    assert_eq!(env.events.of_kind("auth.password_spraying").len(), 0);
    let _ = env.db.cleanup().await;
}
both_backends!(a_brute_force_run_raises_one_event_however_long_it_lasts);

async fn a_spraying_run_from_one_address_raises_one_event(backend: &str) {
    let env = env(backend).await;
    // Some of the sprayed usernames exist, most do not.
    for u in ["chi.operator", "dung.analyst", "hoa.auditor"] {
        env.account(u, "operator").await;
    }
    let sprayer = "192.0.2.66";
    let names = [
        "admin",
        "chi.operator",
        "root",
        "dung.analyst",
        "test",
        "user",
        "hoa.auditor",
        "guest",
        "nguyen.van.a",
        "tran.thi.b",
        "le.van.c",
        "pham.thi.d",
        "support",
        "info",
        "backup",
    ];
    let t0 = friday_10h();
    for (i, name) in names.iter().enumerate() {
        env.set(t0 + TimeDelta::seconds(20 * i as i64));
        let r = env.login(name, "Tet2027!Tet2027!", sprayer).await;
        assert!(matches!(r, Err(LoginError::MfaRequired)), "{name}");
    }
    let events = env.events.all();
    assert_eq!(events.len(), 1, "{backend}: {events:#?}");
    let e = &events[0];
    assert_eq!(e.kind, "auth.password_spraying");
    assert_eq!(e.severity, Severity::High);
    assert_eq!(e.key, format!("auth.password_spraying:{sprayer}:{}", ts(t0)));
    assert_eq!(
        e.at,
        t0 + TimeDelta::seconds(20 * 9),
        "raised at the tenth username"
    );
    assert_eq!(e.evidence["ip"], sprayer);
    assert_eq!(e.evidence["usernames"], 10);
    assert_eq!(e.evidence["existing_accounts"], 3);
    assert_eq!(e.evidence["failures"], 10);
    assert_eq!(e.evidence["first_at"], ts(t0));
    assert_eq!(e.evidence["last_at"], ts(t0 + TimeDelta::seconds(180)));
    let body = serde_json::to_string(e).unwrap();
    assert!(
        !body.contains("Tet2027") && !body.contains("nguyen.van.a"),
        "{body}"
    );
    let _ = env.db.cleanup().await;
}
both_backends!(a_spraying_run_from_one_address_raises_one_event);

async fn an_administrator_is_warned_of_a_new_network_and_of_night_sign_ins(backend: &str) {
    let env = env(backend).await;
    let (admin, pw) = env.account("an.admin", "system_admin").await;
    let (_, op_pw) = env.account("binh.operator", "operator").await;
    let home = "203.0.113.7";

    // The very first sign-in is from a network nobody knew: it is not "new".
    env.set(at("2027-01-14T09:00:00+07:00"));
    env.login("an.admin", &pw, home).await.unwrap();
    env.login("binh.operator", &op_pw, home).await.unwrap();
    // A known network (another address of the same /24) at 10:00 on Friday: nothing.
    env.set(friday_10h());
    env.login("an.admin", &pw, "203.0.113.99").await.unwrap();
    assert_eq!(env.events.all(), vec![], "{backend}");

    // A new network at 10:05: one medium event.
    env.advance(300);
    env.login("an.admin", &pw, "198.51.100.4").await.unwrap();
    let events = env.events.all();
    assert_eq!(events.len(), 1, "{backend}: {events:#?}");
    let e = &events[0];
    assert_eq!(e.kind, "auth.admin_new_network");
    assert_eq!(e.severity, Severity::Medium);
    assert_eq!(e.evidence["user_id"], json!(admin));
    assert_eq!(e.evidence["username"], "an.admin");
    assert_eq!(e.evidence["ip"], "198.51.100.4");
    assert_eq!(e.evidence["network"], "198.51.100.0/24");
    assert_eq!(e.evidence["known_networks"], 1);
    assert_eq!(e.evidence["roles"], json!(["system_admin"]));
    assert_eq!(
        e.key,
        format!(
            "auth.admin_new_network:{admin}:198.51.100.0/24:{}",
            ts(friday_10h() + TimeDelta::seconds(300))
        )
    );
    // Once used, that network is known.
    env.advance(60);
    env.login("an.admin", &pw, "198.51.100.5").await.unwrap();
    assert_eq!(env.events.all().len(), 1);

    // 23:00 from home: one outside-hours event (low by default), and one only that night.
    env.set(at("2027-01-15T23:00:00+07:00"));
    env.login("an.admin", &pw, home).await.unwrap();
    env.set(at("2027-01-16T01:30:00+07:00"));
    env.login("an.admin", &pw, home).await.unwrap();
    let night = env.events.of_kind("auth.admin_outside_hours");
    assert_eq!(night.len(), 1, "{backend}: {night:#?}");
    assert_eq!(night[0].severity, Severity::Low);
    assert_eq!(night[0].evidence["user_id"], json!(admin));
    assert_eq!(night[0].evidence["local_time"], "2027-01-15T23:00:00+07:00");
    assert_eq!(night[0].evidence["weekday"], "fri");
    assert_eq!(night[0].evidence["ip"], home);
    assert_eq!(env.events.of_kind("auth.admin_new_network").len(), 1);
    // The next evening is another one.
    env.set(at("2027-01-16T20:00:00+07:00"));
    env.login("an.admin", &pw, home).await.unwrap();
    assert_eq!(env.events.of_kind("auth.admin_outside_hours").len(), 2);

    // An operator is no administrator: a new network at night says nothing.
    let before = env.events.all().len();
    env.login("binh.operator", &op_pw, "192.0.2.200").await.unwrap();
    assert_eq!(env.events.all().len(), before);
    let _ = env.db.cleanup().await;
}
both_backends!(an_administrator_is_warned_of_a_new_network_and_of_night_sign_ins);

async fn a_revoked_key_used_fifty_times_raises_one_event_an_hour(backend: &str) {
    let env = env(backend).await;
    let src = env
        .app
        .service
        .onboard(NewSource {
            org_code: OrgCode::parse("01").unwrap(),
            org_name: OrgName::parse("Thành phố Hà Nội").unwrap(),
            org_kind: OrgKind::Province,
            parent: None,
            valid_from: None,
            system_name: SystemName::parse("Cổng dữ liệu").unwrap(),
        })
        .await
        .unwrap();
    env.app.service.revoke_key(src.org_id, src.key_id).await.unwrap();
    for i in 0..50 {
        env.advance(10);
        let ip = format!("198.51.100.{}", i % 4);
        assert_eq!(
            env.app
                .service
                .authenticate_api_key(&src.api_key, Some(&ip))
                .await,
            Err(AuthError::Revoked)
        );
    }
    let events = env.events.all();
    assert_eq!(events.len(), 1, "{backend}: {events:#?}");
    let e = &events[0];
    assert_eq!(e.kind, "auth.revoked_key_used");
    assert_eq!(e.severity, Severity::Medium);
    assert_eq!(e.evidence["key_id"], json!(src.key_id));
    assert_eq!(e.evidence["org_id"], json!(src.org_id));
    assert_eq!(e.evidence["system_id"], json!(src.system_id));
    assert_eq!(e.evidence["ip"], "198.51.100.0");
    assert!(e.evidence["revoked_at"].is_string());
    assert!(
        !serde_json::to_string(e).unwrap().contains(&src.api_key),
        "the key itself never travels"
    );
    // An hour later, still hammering: one more.
    env.advance(3600);
    let _ = env.app.service.authenticate_api_key(&src.api_key, None).await;
    let _ = env.app.service.authenticate_api_key(&src.api_key, None).await;
    let events = env.events.all();
    assert_eq!(events.len(), 2, "{backend}");
    assert_eq!(events[1].evidence["ip"], json!(null));
    let _ = env.db.cleanup().await;
}
both_backends!(a_revoked_key_used_fifty_times_raises_one_event_an_hour);

async fn an_event_that_cannot_be_emitted_never_fails_the_sign_in_and_is_raised_later(backend: &str) {
    let env = env(backend).await;
    env.account("an.admin", "system_admin").await;
    env.events.failures_to_come.store(1, Ordering::SeqCst);
    for i in 0..5 {
        env.advance(1);
        let r = env.login("an.admin", WRONG, &format!("198.51.100.{i}")).await;
        assert!(matches!(r, Err(LoginError::MfaRequired)), "attempt {i}");
    }
    assert_eq!(env.events.all().len(), 0, "the outbox was down");
    env.advance(1);
    assert!(matches!(
        env.login("an.admin", WRONG, "198.51.100.9").await,
        Err(LoginError::Locked { .. })
    ));
    let events = env.events.of_kind("auth.brute_force");
    assert_eq!(events.len(), 1, "{backend}: raised at the next attempt");
    assert_eq!(events[0].evidence["failures"], 6);
    let _ = env.db.cleanup().await;
}
both_backends!(an_event_that_cannot_be_emitted_never_fails_the_sign_in_and_is_raised_later);

async fn two_identity_instances_seeing_one_attack_raise_one_event(backend: &str) {
    let env = env(backend).await;
    let other_events = Arc::new(Recorder::default());
    let other = build(&env.conn, &env.clock, other_events.clone()).await;
    let names: Vec<String> = (0..12).map(|i| format!("user{i}")).collect();
    // Concurrent attempts on both instances, from one address.
    let tasks: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let accounts = if i % 2 == 0 { &env.app } else { &other }.accounts.clone();
            let req = LoginRequest {
                username: n.clone(),
                password: Zeroizing::new(WRONG.into()),
                second_factor: None,
                ip: Some("192.0.2.77".into()),
            };
            tokio::spawn(async move { accounts.login(req).await.map(|_| ()) })
        })
        .collect();
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(LoginError::MfaRequired)));
    }
    // One more on each, sequentially, so that both have seen the tenth username.
    for app in [&env.app, &other] {
        let _ = app
            .accounts
            .login(LoginRequest {
                username: "late".into(),
                password: Zeroizing::new(WRONG.into()),
                second_factor: None,
                ip: Some("192.0.2.77".into()),
            })
            .await;
    }
    let n = env.events.of_kind("auth.password_spraying").len()
        + other_events.of_kind("auth.password_spraying").len();
    assert_eq!(n, 1, "{backend}");
    let _ = env.db.cleanup().await;
}
both_backends!(two_identity_instances_seeing_one_attack_raise_one_event);

async fn the_alert_store_keeps_its_contract(backend: &str) {
    use etx_identity::SeaIdentityStore;
    use etx_identity_core::WarningStore;
    let env = env(backend).await;
    let store = SeaIdentityStore::new(env.conn.clone());
    let t0 = friday_10h();
    let min = |m: i64| t0 + TimeDelta::minutes(m);
    let (k, s) = ("auth.brute_force", "an.admin");

    assert!(!store.extend_alert(k, s, t0, min(15)).await.unwrap(), "unknown");
    assert!(store.claim_alert(k, s, "key-1", t0, min(15)).await.unwrap());
    assert!(
        !store.claim_alert(k, s, "key-2", min(14), min(29)).await.unwrap(),
        "quiet"
    );
    assert!(store.extend_alert(k, s, min(14), min(29)).await.unwrap());
    assert!(
        !store.claim_alert(k, s, "key-2", min(28), min(43)).await.unwrap(),
        "extended"
    );
    assert!(
        !store.extend_alert(k, s, min(29), min(44)).await.unwrap(),
        "no longer quiet"
    );
    assert!(store.claim_alert(k, s, "key-2", min(29), min(44)).await.unwrap());
    store.release_alert(k, s).await.unwrap();
    assert!(
        store.claim_alert(k, s, "key-3", min(30), min(45)).await.unwrap(),
        "released"
    );
    assert!(
        store
            .claim_alert("auth.password_spraying", s, "other", min(30), min(45))
            .await
            .unwrap(),
        "kinds are independent"
    );

    // Racing claims, on a new subject and on one no longer quiet: exactly one wins each time.
    for (subject, at) in [("192.0.2.1", min(30)), ("an.admin", min(60))] {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .claim_alert(k, subject, &format!("race-{i}"), at, at + TimeDelta::minutes(15))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            won += usize::from(t.await.unwrap());
        }
        assert_eq!(won, 1, "{backend}: {subject}");
    }
    let _ = env.db.cleanup().await;
}
both_backends!(the_alert_store_keeps_its_contract);
