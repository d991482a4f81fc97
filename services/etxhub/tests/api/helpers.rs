//! Spawns the whole application (gateway + identity + ingestion) on port 0 over real TLS,
//! with a fresh database per test: SQLite + embedded queue, or PostgreSQL + Redis Streams.

use etx_domain::{OrgCode, OrgKind, OrgName, SystemName};
use etx_identity_core::NewSource;
use etx_storage::testing::{TestDb, redis_url};
use etxhub::config::Config;
use sea_orm::{ConnectionTrait, Statement};

use crate::users::{Session, call};

/// A running app for one test.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub cfg: Config,
    pub db: TestDb,
    /// API key of the first source (organisation A).
    pub key_a: String,
    /// API key of another organisation (B).
    pub key_b: String,
}

pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl TestApp {
    pub async fn spawn(backend: &'static str) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: &'static str, tweak: impl FnOnce(&mut Config)) -> TestApp {
        install_crypto();
        let data_dir = std::env::temp_dir().join(format!("etx-api-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&data_dir).unwrap();
        let db = TestDb::of(backend).await;
        let mut cfg = Config::load(None, Some(&data_dir)).unwrap();
        cfg.listen = "127.0.0.1:0".into();
        cfg.shutdown.timeout_secs = 1;
        if backend == "postgres" {
            cfg.database.url = db.url.clone().into();
            cfg.queue.kind = "redis".into();
            cfg.queue.redis_url = redis_url().into();
            cfg.queue.key_prefix = format!("etxtest:{}:", uuid::Uuid::now_v7().simple());
            cfg.security.master_key = etx_crypto::MasterKey::generate("t").to_base64().into();
            cfg.security.master_key_id = "mk-test".into();
            cfg.security.hmac_key = etx_crypto::MasterKey::generate("t").to_base64().into();
            cfg.security.internal_secret = etx_crypto::MasterKey::generate("t").to_base64().into();
        }
        tweak(&mut cfg);
        let targets = etxhub::app::parse_targets("all").unwrap();
        let running = etxhub::app::build(&cfg, &targets).await.unwrap();
        let addr = running.addr;
        tokio::spawn(running.server);
        let pem = std::fs::read(data_dir.join("tls/cert.pem")).unwrap();
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
            .build()
            .unwrap();
        let key_a = onboard(&cfg, "SO-KHCN-HCM", "Sở Khoa học và Công nghệ TP. Hồ Chí Minh").await;
        let key_b = onboard(&cfg, "SO-KHCN-HN", "Sở Khoa học và Công nghệ Hà Nội").await;
        TestApp {
            base: format!("https://127.0.0.1:{}", addr.port()),
            client,
            cfg,
            db,
            key_a,
            key_b,
        }
    }

    /// A connection to the database the app itself uses (its SQLite file, or the test's
    /// PostgreSQL database).
    pub async fn app_db(&self) -> sea_orm::DatabaseConnection {
        etx_storage::connect(&self.cfg.database_url(), 2).await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The OpenAPI document the running app serves.
    pub async fn openapi(&self) -> serde_json::Value {
        let resp = self
            .client
            .get(self.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// GETs a path with an API key.
    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a JSON value as the first source.
    pub async fn submit_json(&self, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/records"))
            .header("x-api-key", &self.key_a)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    /// POSTs raw bytes with a content type as the first source.
    pub async fn submit_raw(&self, content_type: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/records"))
            .header("x-api-key", &self.key_a)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Counts rows of a table in the app's database.
    pub async fn count(&self, table: &str) -> i64 {
        let db = self.db_conn().await;
        let backend = db.get_database_backend();
        let row = db
            .query_one_raw(Statement::from_string(
                backend,
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }

    pub async fn db_conn(&self) -> sea_orm::DatabaseConnection {
        etx_storage::connect(&self.cfg.database_url(), 2).await.unwrap()
    }
}

/// Starts another all-in-one server on `cfg` (e.g. the same database with other keys) and
/// returns its base URL.
pub async fn serve_all(cfg: &Config) -> String {
    let running = etxhub::app::build(cfg, &etxhub::app::parse_targets("all").unwrap())
        .await
        .unwrap();
    let base = format!("https://127.0.0.1:{}", running.addr.port());
    tokio::spawn(running.server);
    base
}

pub async fn onboard(cfg: &Config, code: &str, name: &str) -> String {
    let req = NewSource {
        org_code: OrgCode::parse(code).unwrap(),
        org_name: OrgName::parse(name).unwrap(),
        org_kind: OrgKind::Province,
        parent: None,
        valid_from: None,
        system_name: SystemName::parse("Cổng dữ liệu giao dịch điện tử").unwrap(),
    };
    etxhub::onboard(cfg, req).await.unwrap().api_key
}

/// A valid statistics record.
pub fn stats_record(value: f64, key: Option<&str>) -> serde_json::Value {
    let mut r = serde_json::json!({
        "category": "statistics",
        "schema_version": "1",
        "period": "2026-10",
        "classification": "internal",
        "priority": "normal",
        "form": "raw",
        "payload": {
            "indicator": "transaction_count",
            "transaction_kind": "e_invoice",
            "value": value,
            "unit": "count",
            "dimensions": {"province_code": "79"},
            "note": "Số liệu hóa đơn điện tử tháng 10 — Thành phố Hồ Chí Minh"
        }
    });
    if let Some(k) = key {
        r["idempotency_key"] = serde_json::json!(k);
    }
    r
}

/// A workforce record registering an expert, with personal data (a citizen id, a phone
/// number) in `form` (`raw` or `masked`).
pub fn expert_record(citizen_id: &str, phone: &str, form: &str, key: &str) -> serde_json::Value {
    serde_json::json!({
        "category": "workforce",
        "schema_version": 1,
        "period": "2026-10-05",
        "classification": "confidential",
        "priority": "normal",
        "form": form,
        "idempotency_key": key,
        "payload": {
            "activity_type": "expert_registry",
            "title": "Đăng ký chuyên gia tư vấn về an toàn giao dịch điện tử",
            "organiser": "Cục Chuyển đổi số quốc gia",
            "start_date": "2026-10-05",
            "location_province_code": "79",
            "expert": {
                "full_name": "Nguyễn Thị Minh Thư",
                "citizen_id": citizen_id,
                "email": "thu.nguyen@example.vn",
                "phone": phone,
                "specialisation": "An toàn thông tin và chữ ký số",
                "qualification": "master",
                "organisation": "Viện Công nghệ số (giả định)",
                "years_of_experience": 12
            }
        }
    })
}

/// Submits `body` as the first source, asserts `202 Accepted` and returns the first record id.
pub async fn submit_record(app: &TestApp, body: &serde_json::Value) -> String {
    let r = app.submit_json(body).await;
    let status = r.status();
    let receipt: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 202, "{receipt}");
    receipt["record_ids"][0].as_str().unwrap().to_owned()
}

/// The organisation id of an API key's source.
pub async fn org_id_of(app: &TestApp, key: &str) -> String {
    let me: serde_json::Value = app
        .get("/api/v1/organisations/me", key)
        .await
        .json()
        .await
        .unwrap();
    me["id"].as_str().unwrap().to_owned()
}

/// The reconciliation stage's outcome of `record` (kind, canonical id): waits (up to 30 s).
pub async fn reconciliation_outcome(app: &TestApp, record: &str) -> (String, Option<uuid::Uuid>) {
    let db = app.app_db().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let id = uuid::Uuid::parse_str(record).unwrap();
    loop {
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "SELECT kind, canonical_id FROM rec_outcomes WHERE record_id = $1",
                [id.into()],
            ))
            .await
            .unwrap();
        if let Some(row) = row {
            return (
                row.try_get("", "kind").unwrap(),
                row.try_get("", "canonical_id").unwrap(),
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "record {record} was never reconciled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Calls the API as a signed-in person (with the CSRF token, but for a `GET`); returns the
/// status and the JSON body (`null` when there is none).
pub async fn send_as(
    app: &TestApp,
    who: &Session,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let csrf = method != reqwest::Method::GET;
    let r = call(app, method, path, who, body, csrf).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

/// GETs a path as a signed-in person; returns the status and the JSON body.
pub async fn get_as(app: &TestApp, who: &Session, path: &str) -> (u16, serde_json::Value) {
    send_as(app, who, reqwest::Method::GET, path, None).await
}

/// Asserts an answer's status and, for an error, its problem `code`.
#[track_caller]
pub fn assert_code(status: u16, problem: &serde_json::Value, (want, code): (u16, &str)) {
    assert_eq!(
        (status, problem["code"].as_str()),
        (want, Some(code)),
        "{problem}"
    );
}

/// Generates one test per backend. With `with = setup`, the app comes from
/// `setup(backend) -> (TestApp, extra)` (e.g. an app configured against a test server) and the
/// body takes both.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, with = $setup:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let (app, extra) = ($setup)("sqlite").await;
                ($body)(app, extra).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let (app, extra) = ($setup)("postgres").await;
                let db = app.db.clone();
                ($body)(app, extra).await;
                let _ = db.cleanup().await;
            }
        }
    };
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::helpers::TestApp::spawn("sqlite").await;
                ($body)(app).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::helpers::TestApp::spawn("postgres").await;
                let db = app.db.clone();
                ($body)(app).await;
                let _ = db.cleanup().await;
            }
        }
    };
}
