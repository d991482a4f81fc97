//! The harness the queue's integration tests share: a fresh place per test (SQLite file,
//! PostgreSQL database or Redis key prefix), the per-backend test generator, a queue that fails on
//! purpose, and the consumer helpers.
//!
//! PostgreSQL (`ETX_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! Redis (`ETX_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`) are required: when they are
//! unreachable the tests fail loudly, they are never skipped.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use async_trait::async_trait;
use etx_queue::{
    Consumer, ConsumerConfig, ConsumerHandle, DeadLetter, Delivery, EmbeddedQueue, FailOutcome, Handler,
    Headers, OutMessage, Outcome, Priority, Queue, QueueError, RedisQueue,
};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

pub const STREAM: &str = "records.test";
pub const GROUP: &str = "svc";

/// Names the test binary in the "is required" messages.
const SUITE: &str = env!("CARGO_CRATE_NAME");

// ---------------------------------------------------------------------------------------------
// Places
// ---------------------------------------------------------------------------------------------

fn pg_admin_url() -> String {
    std::env::var("ETX_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn redis_url() -> String {
    std::env::var("ETX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
    Redis,
}

/// Where a test's data lives, so it can be reopened and removed.
#[derive(Debug)]
pub enum Place {
    Sqlite { dir: PathBuf, url: String },
    Postgres { name: String, url: String },
    Redis { prefix: String },
}

impl Place {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir =
                    std::env::temp_dir().join(format!("etx-queue-test-{}", uuid::Uuid::new_v4().simple()));
                std::fs::create_dir_all(&dir).unwrap();
                let url = format!("sqlite://{}?mode=rwc", dir.join("queue.db").display());
                Self::Sqlite { dir, url }
            }
            Backend::Postgres => {
                let admin_url = pg_admin_url();
                let admin = connect_pg_admin(&admin_url).await;
                let name = format!("etx_test_{}", uuid::Uuid::new_v4().simple());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .unwrap_or_else(|e| panic!("cannot create test database {name} on {admin_url}: {e}"));
                let _ = admin.close().await;
                let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b);
                Self::Postgres {
                    url: format!("{base}/{name}"),
                    name,
                }
            }
            Backend::Redis => Self::Redis {
                prefix: format!("etxtest:{}:", uuid::Uuid::new_v4().simple()),
            },
        }
    }

    /// A fresh queue over this place (a new connection pool each call).
    pub async fn open(&self) -> Arc<dyn Queue> {
        match self {
            Self::Sqlite { url, .. } => {
                let mut opts = ConnectOptions::new(url.clone());
                opts.sqlx_logging(false).max_connections(4).min_connections(1);
                opts.map_sqlx_sqlite_opts(|o| {
                    o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                        .busy_timeout(Duration::from_secs(10))
                });
                let db = Database::connect(opts)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
                embedded(db).await
            }
            Self::Postgres { url, .. } => {
                let mut opts = ConnectOptions::new(url.clone());
                opts.sqlx_logging(false)
                    .max_connections(8)
                    .connect_timeout(Duration::from_secs(5));
                let db = Database::connect(opts)
                    .await
                    .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
                embedded(db).await
            }
            Self::Redis { prefix } => {
                let url = redis_url();
                let q = RedisQueue::connect(&url, prefix).unwrap();
                if let Err(e) = q.ping().await {
                    panic!(
                        "Redis is required for the queue's {SUITE} tests and is unreachable at {url}: {e}. \
                         Start it or set ETX_TEST_REDIS_URL."
                    );
                }
                Arc::new(q)
            }
        }
    }

    /// Best-effort removal of everything the test stored.
    pub async fn cleanup(&self) {
        match self {
            Self::Sqlite { dir, .. } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Self::Postgres { name, .. } => {
                if let Ok(admin) = Database::connect(pg_admin_url()).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
            }
            Self::Redis { prefix } => {
                let Ok(client) = ::redis::Client::open(redis_url()) else {
                    return;
                };
                let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
                    return;
                };
                let keys: Vec<String> = ::redis::cmd("KEYS")
                    .arg(format!("{prefix}*"))
                    .query_async(&mut conn)
                    .await
                    .unwrap_or_default();
                if !keys.is_empty() {
                    let _: Result<i64, _> = ::redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
                }
            }
        }
    }
}

async fn connect_pg_admin(admin_url: &str) -> DatabaseConnection {
    let mut opts = ConnectOptions::new(admin_url.to_owned());
    opts.sqlx_logging(false)
        .max_connections(1)
        .connect_timeout(Duration::from_secs(5));
    Database::connect(opts).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is required for the queue's {SUITE} tests and is unreachable at {admin_url}: {e}. \
             Start it or set ETX_TEST_PG_URL."
        )
    })
}

async fn embedded(db: DatabaseConnection) -> Arc<dyn Queue> {
    let q = EmbeddedQueue::new(db).with_poll_interval(Duration::from_millis(20));
    q.migrate().await.unwrap();
    q.migrate().await.unwrap(); // idempotent
    Arc::new(q)
}

/// Runs `case` on a fresh place of `backend`, removes the place, then re-raises any panic.
pub async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Arc<Place>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let place = Arc::new(Place::new(backend).await);
    let outcome = tokio::spawn(case(place.clone())).await;
    place.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Generates one `#[tokio::test]` per case and backend: `sqlite::<case>`, `postgres::<case>`,
/// `redis::<case>`, each running `cases::<case>` of the calling test file on a fresh place.
// Not every test binary has per-backend cases (`dead_code` does not cover macros).
#[allow(unused_macros)]
macro_rules! per_backend {
    ($($case:ident),* $(,)?) => {
        $crate::support::per_backend!(@mod sqlite, Sqlite, $($case),*);
        $crate::support::per_backend!(@mod postgres, Postgres, $($case),*);
        $crate::support::per_backend!(@mod redis, Redis, $($case),*);
    };
    (@mod $module:ident, $backend:ident, $($case:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    $crate::support::run($crate::support::Backend::$backend, |p| async move {
                        super::cases::$case(p.open().await).await
                    })
                    .await;
                }
            )*
        }
    };
}
#[allow(unused_imports)]
pub(crate) use per_backend;

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// A message whose body is its key.
pub fn msg(key: &str, priority: Priority) -> OutMessage {
    OutMessage {
        key: key.into(),
        priority,
        headers: Headers::new(),
        body: key.as_bytes().to_vec(),
    }
}

// ---------------------------------------------------------------------------------------------
// A queue that fails on purpose
// ---------------------------------------------------------------------------------------------

/// A queue that fails on purpose, then delegates to `inner`: an outage, a lost group or a
/// failing ack without stopping a shared server. Each counter is the number of calls still to
/// fail.
#[derive(Debug)]
pub struct Flaky {
    inner: Arc<dyn Queue>,
    pub ensure_group_unavailable: AtomicU32,
    pub consume_unavailable: AtomicU32,
    pub consume_not_found: AtomicU32,
    pub ack_unavailable: AtomicU32,
    pub ensure_group_calls: AtomicU32,
    pub consume_calls: AtomicU32,
}

impl Flaky {
    pub fn new(inner: Arc<dyn Queue>) -> Self {
        Self {
            inner,
            ensure_group_unavailable: AtomicU32::new(0),
            consume_unavailable: AtomicU32::new(0),
            consume_not_found: AtomicU32::new(0),
            ack_unavailable: AtomicU32::new(0),
            ensure_group_calls: AtomicU32::new(0),
            consume_calls: AtomicU32::new(0),
        }
    }
}

/// Uses up one planned failure; false when none is left.
fn take_one(left: &AtomicU32) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

fn down() -> QueueError {
    QueueError::Unavailable("simulated outage".into())
}

#[async_trait]
impl Queue for Flaky {
    async fn publish(&self, stream: &str, msgs: &[OutMessage]) -> Result<Vec<String>, QueueError> {
        self.inner.publish(stream, msgs).await
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), QueueError> {
        self.ensure_group_calls.fetch_add(1, Ordering::SeqCst);
        if take_one(&self.ensure_group_unavailable) {
            return Err(down());
        }
        self.inner.ensure_group(stream, group).await
    }

    async fn consume(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.consume_calls.fetch_add(1, Ordering::SeqCst);
        if take_one(&self.consume_unavailable) {
            return Err(down());
        }
        if take_one(&self.consume_not_found) {
            return Err(QueueError::NotFound(format!("group {group} of stream {stream}")));
        }
        self.inner.consume(stream, group, consumer, max, block).await
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), QueueError> {
        if take_one(&self.ack_unavailable) {
            return Err(down());
        }
        self.inner.ack(stream, group, ids).await
    }

    async fn fail(
        &self,
        stream: &str,
        group: &str,
        delivery: &Delivery,
        reason: &str,
        max_attempts: u32,
    ) -> Result<FailOutcome, QueueError> {
        self.inner
            .fail(stream, group, delivery, reason, max_attempts)
            .await
    }

    async fn claim_stuck(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, QueueError> {
        self.inner
            .claim_stuck(stream, group, consumer, min_idle, max)
            .await
    }

    async fn lag(&self, stream: &str, group: &str) -> Result<u64, QueueError> {
        self.inner.lag(stream, group).await
    }

    async fn dead_letters(&self, stream: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        self.inner.dead_letters(stream, limit).await
    }

    async fn replay_dead_letter(&self, stream: &str, id: &str) -> Result<(), QueueError> {
        self.inner.replay_dead_letter(stream, id).await
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.inner.ping().await
    }
}

// ---------------------------------------------------------------------------------------------
// Consumers and handlers
// ---------------------------------------------------------------------------------------------

/// How long `eventually` waits: generous, tests share two cores.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A consumer configuration with short waits, so tests stay fast.
pub fn config() -> ConsumerConfig {
    ConsumerConfig::new(STREAM, GROUP)
        .with_block(Duration::from_millis(200))
        .with_backoff_max(Duration::from_millis(200))
}

/// A handler that records every delivery it sees (key, attempt) and decides with `decide`.
pub struct Recorder {
    seen: Mutex<Vec<(String, u32)>>,
    decide: Box<dyn Fn(&Delivery) -> Outcome + Send + Sync>,
}

impl Recorder {
    pub fn new(decide: impl Fn(&Delivery) -> Outcome + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::new(Vec::new()),
            decide: Box::new(decide),
        })
    }

    pub fn all_done() -> Arc<Self> {
        Self::new(|_| Outcome::Done)
    }

    pub fn keys(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|(k, _)| k.clone()).collect()
    }

    pub fn attempts_of(&self, key: &str) -> Vec<u32> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k == key)
            .map(|&(_, a)| a)
            .collect()
    }
}

#[async_trait]
impl Handler for Recorder {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        self.seen
            .lock()
            .unwrap()
            .extend(batch.iter().map(|d| (d.key.clone(), d.attempt)));
        batch.iter().map(|d| (self.decide)(d)).collect()
    }
}

pub fn start(
    q: &Arc<dyn Queue>,
    handler: Arc<dyn Handler>,
    cfg: ConsumerConfig,
) -> (ConsumerHandle, JoinHandle<()>) {
    Consumer::spawn(q.clone(), handler, cfg)
}

/// Stops the consumer and waits for its task (failing after a generous timeout).
pub async fn stop(handle: &ConsumerHandle, join: JoinHandle<()>) {
    handle.stop();
    tokio::time::timeout(Duration::from_secs(15), join)
        .await
        .expect("the consumer did not stop within 15 s")
        .expect("the consumer task panicked");
}

/// Polls `check` every 20 ms until it holds; panics with `what` after `PATIENCE`.
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
