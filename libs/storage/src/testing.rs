//! Test support shared by every crate's integration tests: a fresh database per test, on
//! SQLite (a temporary file) or PostgreSQL (a new database on the local server), so tests can
//! run in parallel. PostgreSQL being unreachable is a loud failure, never a skip.

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbErr};

/// The admin URL of the test PostgreSQL server (`ETX_TEST_PG_URL`, default the local one).
pub fn pg_admin_url() -> String {
    std::env::var("ETX_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The URL of the test Redis server (`ETX_TEST_REDIS_URL`, default the local one).
pub fn redis_url() -> String {
    std::env::var("ETX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A fresh database for one test. Dropping it does not remove it (async drop is not possible);
/// call [`TestDb::cleanup`] at the end of the test when convenient.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// The URL of the fresh database.
    pub url: String,
    name: Option<String>,
}

impl TestDb {
    /// A new SQLite file in the temp directory.
    pub fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(format!("etx-test-{}", uuid::Uuid::now_v7().simple()));
        let _ = std::fs::create_dir_all(&dir);
        Self {
            url: format!("sqlite://{}?mode=rwc", dir.join("test.db").display()),
            name: None,
        }
    }

    /// A new, empty PostgreSQL database. Panics with a clear message when the server cannot be
    /// reached: the test suite needs it (see README).
    pub async fn postgres() -> Self {
        let admin_url = pg_admin_url();
        let admin = Database::connect(admin_url.as_str()).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is required for this test and is unreachable at {admin_url}: {e}. Start it (scripts/test does) or set ETX_TEST_PG_URL.")
        });
        let name = format!("etx_test_{}", uuid::Uuid::now_v7().simple());
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        let _ = admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b)
            .to_owned();
        Self {
            url: format!("{base}/{name}"),
            name: Some(name),
        }
    }

    /// Either backend by name (`sqlite` or `postgres`), for table-driven tests.
    pub async fn of(backend: &str) -> Self {
        if backend == "postgres" {
            Self::postgres().await
        } else {
            Self::sqlite()
        }
    }

    /// Opens a connection pool on the database.
    pub async fn connect(&self) -> DatabaseConnection {
        crate::connect(&self.url, 8)
            .await
            .unwrap_or_else(|e| panic!("cannot open test database {}: {e}", self.url))
    }

    /// Drops the PostgreSQL database (best effort).
    pub async fn cleanup(&self) -> Result<(), DbErr> {
        if let Some(name) = &self.name {
            let admin = Database::connect(pg_admin_url().as_str()).await?;
            admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await?;
            let _ = admin.close().await;
        }
        Ok(())
    }
}
