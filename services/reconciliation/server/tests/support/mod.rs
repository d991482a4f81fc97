//! Test support shared by the reconciliation server's test binaries: a vault sealing with a
//! real key ring, and the place a case runs in (a fresh SQLite file with the embedded queue, or
//! a fresh PostgreSQL database with Redis Streams under a fresh key prefix). PostgreSQL and
//! Redis being unreachable is a loud failure, never a skip.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use etx_crypto::{Aad, KeyRing, MasterKey};
use etx_domain::{OrgId, RecordId};
use etx_masking_core::{PayloadVault, SourceError};
use etx_queue::{EmbeddedQueue, Queue, RedisQueue};
use etx_storage::testing::{TestDb, redis_url};
use sea_orm::DatabaseConnection;

/// Payloads sealed with AES-256-GCM under a data key of a test key ring (the hub seals with its
/// own key ring the same way).
pub struct TestVault(KeyRing);

impl TestVault {
    pub fn new() -> Self {
        let ring = KeyRing::new(MasterKey::generate("mk-reconciliation-test"), Vec::new());
        let key = ring.new_data_key();
        ring.load(&key).unwrap();
        ring.activate(key.id).unwrap();
        Self(ring)
    }

    fn aad(org: OrgId, record: RecordId) -> Aad {
        Aad {
            org_id: org.as_uuid(),
            record_id: record.as_uuid(),
        }
    }
}

#[async_trait]
impl PayloadVault for TestVault {
    async fn seal(&self, org: OrgId, record: RecordId, plain: &[u8]) -> Result<Vec<u8>, SourceError> {
        Ok(self.0.encrypt(&Self::aad(org, record), plain).unwrap())
    }

    async fn open(&self, org: OrgId, record: RecordId, sealed: &[u8]) -> Result<Vec<u8>, SourceError> {
        Ok(self.0.decrypt(&Self::aad(org, record), sealed).unwrap())
    }
}

/// Which column of DESIGN §2 a case runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite + embedded queue (all-in-one).
    Sqlite,
    /// PostgreSQL + Redis Streams (distributed).
    Postgres,
}

/// Where a case's data lives, so it can be removed afterwards.
#[derive(Debug)]
pub struct Place {
    pub db: TestDb,
    /// The Redis key prefix (PostgreSQL + Redis Streams only).
    pub redis_prefix: Option<String>,
}

impl Place {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self {
                db: TestDb::sqlite(),
                redis_prefix: None,
            },
            Backend::Postgres => Self {
                db: TestDb::postgres().await,
                redis_prefix: Some(format!(
                    "etxtest:reconciliation:{}:",
                    uuid::Uuid::new_v4().simple()
                )),
            },
        }
    }

    /// The queue of this place: the embedded one in the database, or Redis under the prefix.
    pub async fn queue(&self, db: &DatabaseConnection) -> Arc<dyn Queue> {
        match &self.redis_prefix {
            None => {
                let q = EmbeddedQueue::new(db.clone()).with_poll_interval(Duration::from_millis(20));
                q.migrate().await.unwrap();
                Arc::new(q)
            }
            Some(prefix) => {
                let url = redis_url();
                let q = RedisQueue::connect(&url, prefix).unwrap();
                if let Err(e) = q.ping().await {
                    panic!(
                        "Redis is required for the reconciliation tests and is unreachable at {url}: {e}. \
                         Start it or set ETX_TEST_REDIS_URL."
                    );
                }
                Arc::new(q)
            }
        }
    }

    pub async fn cleanup(&self) {
        let _ = self.db.cleanup().await;
        if let Some(rest) = self.db.url.strip_prefix("sqlite://") {
            let path = std::path::PathBuf::from(rest.split('?').next().unwrap_or_default());
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        if let Some(prefix) = &self.redis_prefix {
            let Ok(client) = redis::Client::open(redis_url()) else {
                return;
            };
            let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
            }
        }
    }
}

/// How long `eventually` waits: generous, the tests share two cores.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` every 20 ms until it holds; panics with `what` after [`PATIENCE`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
