//! Shared set-up: a fresh, migrated database per test on either engine, entries to write,
//! and signed principals for the HTTP tests.

use chrono::{DateTime, Duration, TimeZone, Utc};
use etx_audit::{AppAudit, AuditSettings, AuditWriter, WriterConfig};
use etx_audit_core::{AuditKind, ChainKey, NewAuditEntry, VerifyReport};
use etx_domain::{OrgId, SystemId};
use etx_http_kit::{DEFAULT_PRINCIPAL_TTL, PRINCIPAL_HEADER, Principal, PrincipalSigner};
use etx_storage::testing::TestDb;
use sea_orm::{ConnectionTrait, DatabaseConnection};

/// Both engines: every store test runs on each.
pub const BACKENDS: [&str; 2] = ["sqlite", "postgres"];

/// The chain key of every test.
pub fn key() -> ChainKey {
    ChainKey::derive(b"audit test secret, at least thirty-two bytes long")
}

/// A fixed "now" for moved-clock tests.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 6, 1, 8, 0, 0)
        .single()
        .unwrap_or_default()
}

/// `days` before [`now`].
pub fn days_ago(days: i64) -> DateTime<Utc> {
    now() - Duration::days(days)
}

/// A fresh migrated database.
pub struct Db {
    pub test: TestDb,
    pub db: DatabaseConnection,
}

impl Db {
    pub async fn new(backend: &str) -> Self {
        let test = TestDb::of(backend).await;
        let db = test.connect().await;
        etx_audit::migrate(&db).await.unwrap();
        Self { test, db }
    }

    /// Another connection pool on the same database (a second process).
    pub async fn another_pool(&self) -> DatabaseConnection {
        self.test.connect().await
    }

    pub async fn exec(&self, sql: &str) {
        self.db.execute_unprepared(sql).await.unwrap();
    }

    pub async fn count(&self, sql: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                sql.to_owned(),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<i64>(0).unwrap()
    }

    pub async fn verify(&self) -> VerifyReport {
        etx_audit::verify(&self.db, &key()).await.unwrap()
    }

    pub async fn cleanup(self) {
        let _ = self.db.close().await;
        self.test.cleanup().await.unwrap();
    }
}

/// A request entry numbered `i`.
pub fn request(i: usize) -> NewAuditEntry {
    let mut e =
        NewAuditEntry::new(AuditKind::Request, format!("system:{i}")).http("POST", "/api/v1/records", 201);
    e.bytes_in = 1000 + i as u64;
    e.bytes_out = 200;
    e.duration_ms = 3;
    e.ip = "203.0.113.7".parse().ok();
    e.system_id = Some(SystemId::new());
    e
}

/// A writer big enough never to drop in tests.
pub fn writer(db: &DatabaseConnection) -> AuditWriter {
    AuditWriter::start(
        db.clone(),
        key(),
        WriterConfig {
            capacity: 10_000,
            ..WriterConfig::default()
        },
    )
}

/// Writes `entries` through a writer and waits until they are stored.
pub async fn write_all(db: &DatabaseConnection, entries: Vec<NewAuditEntry>) {
    use etx_audit_core::AuditSink;
    let w = writer(db);
    for e in entries {
        w.record(e);
    }
    w.shutdown().await;
    assert_eq!(w.stats().lost, 0);
}

pub fn signer() -> PrincipalSigner {
    PrincipalSigner::new(b"principal secret for the audit tests!!", DEFAULT_PRINCIPAL_TTL)
}

pub fn principal(org: OrgId, roles: &[&str]) -> Principal {
    Principal {
        org_id: org,
        system_id: None,
        key_id: None,
        subject: format!("user:{}", uuid::Uuid::now_v7()),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        scopes: Vec::new(),
        client_ip: Some("198.51.100.4".into()),
    }
}

/// The signed header for `p`.
pub fn auth(p: &Principal) -> (&'static str, String) {
    (PRINCIPAL_HEADER, signer().sign(p))
}

/// The module over a fresh database.
pub async fn module(db: &Db, root_org: Option<OrgId>) -> actix_web::web::Data<AppAudit> {
    actix_web::web::Data::new(build(db, root_org).await)
}

async fn build(db: &Db, root_org: Option<OrgId>) -> AppAudit {
    let settings = AuditSettings {
        root_org,
        ..AuditSettings::default()
    };
    AppAudit::build(db.db.clone(), key(), settings).await.unwrap()
}

/// The module whose audit-log reads are recorded in memory instead of the log itself, so
/// that reading does not add entries to the log under test.
pub async fn module_reading_into(
    db: &Db,
    root_org: Option<OrgId>,
    sink: std::sync::Arc<etx_audit_core::MemorySink>,
) -> actix_web::web::Data<AppAudit> {
    let mut app = build(db, root_org).await;
    app.sink = sink;
    actix_web::web::Data::new(app)
}

/// An actix test service with the module's routes under `/api/v1`.
#[macro_export]
macro_rules! service {
    ($app:expr) => {
        actix_web::test::init_service(
            actix_web::App::new()
                .app_data($app.clone())
                .app_data(actix_web::web::Data::new($crate::helpers::signer()))
                .app_data(etx_http_kit::json_config(64 * 1024))
                .app_data(etx_http_kit::query_config())
                .service(actix_web::web::scope("/api/v1").configure(etx_audit::http::routes)),
        )
        .await
    };
}

/// Calls the service and returns the status and body.
#[macro_export]
macro_rules! call {
    ($svc:expr, $req:expr) => {{
        let res = actix_web::test::call_service(&$svc, $req.to_request()).await;
        let status = res.status().as_u16();
        let body = actix_web::test::read_body(res).await;
        (status, body)
    }};
}

/// The body as JSON.
pub fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}
