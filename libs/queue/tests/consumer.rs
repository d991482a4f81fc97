//! The consumer loop (`etx_queue::consumer`) against real queues: the embedded queue on SQLite
//! and on PostgreSQL, and Redis Streams. Every message is handled and acked, retries end as dead
//! letters, poison messages are dead-lettered at once, a crashed consumer's messages are
//! reclaimed, stop is graceful and prompt, outages are ridden out with backoff (R-AVAIL), and
//! higher priority is handled first (R-DATA-2).
//!
//! PostgreSQL (`ETX_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! Redis (`ETX_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`) are required: when they are
//! unreachable the tests fail loudly, they are never skipped. Each test has its own SQLite file,
//! PostgreSQL database or Redis key prefix, so they run in parallel.

// Test helpers outside `#[test]` functions: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use etx_queue::{
    Consumer, ConsumerConfig, ConsumerHandle, DeadLetter, Delivery, FailOutcome, Handler, Headers,
    OutMessage, Outcome, Priority, Queue, QueueError, RedisQueue,
};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

const STREAM: &str = "records.test";
const GROUP: &str = "svc";

// ---------------------------------------------------------------------------------------------
// Harness (the same places as tests/contract.rs)
// ---------------------------------------------------------------------------------------------

fn pg_admin_url() -> String {
    std::env::var("ETX_TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn redis_url() -> String {
    std::env::var("ETX_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
    Redis,
}

/// Where a test's data lives, so it can be removed.
#[derive(Debug)]
enum Place {
    Sqlite { dir: PathBuf, url: String },
    Postgres { name: String, url: String },
    Redis { prefix: String },
}

impl Place {
    async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir =
                    std::env::temp_dir().join(format!("etx-consumer-test-{}", uuid::Uuid::new_v4().simple()));
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

    async fn open(&self) -> Arc<dyn Queue> {
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
                        "Redis is required for the consumer tests and is unreachable at {url}: {e}. \
                         Start it or set ETX_TEST_REDIS_URL."
                    );
                }
                Arc::new(q)
            }
        }
    }

    /// Best-effort removal of everything the test stored.
    async fn cleanup(&self) {
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
            "PostgreSQL is required for the consumer tests and is unreachable at {admin_url}: {e}. \
             Start it or set ETX_TEST_PG_URL."
        )
    })
}

async fn embedded(db: DatabaseConnection) -> Arc<dyn Queue> {
    let q = etx_queue::EmbeddedQueue::new(db).with_poll_interval(Duration::from_millis(20));
    q.migrate().await.unwrap();
    Arc::new(q)
}

/// Runs `case` on a fresh place of `backend`, removes the place, then re-raises any panic.
async fn run<F, Fut>(backend: Backend, case: F)
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

/// One `#[tokio::test]` per case and backend: `sqlite::<case>`, `postgres::<case>`,
/// `redis::<case>`.
macro_rules! consumer_cases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run(super::Backend::Sqlite, |p| async move {
                        super::cases::$case(p.open().await).await
                    })
                    .await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run(super::Backend::Postgres, |p| async move {
                        super::cases::$case(p.open().await).await
                    })
                    .await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run(super::Backend::Redis, |p| async move {
                        super::cases::$case(p.open().await).await
                    })
                    .await;
                }
            )*
        }
    };
}

consumer_cases!(
    every_published_message_is_handled_once_and_acked,
    a_message_retried_every_time_is_dead_lettered_after_max_attempts,
    a_rejected_message_is_dead_lettered_at_once_with_its_reason,
    messages_left_pending_by_a_crashed_consumer_are_reclaimed_and_handled,
    stop_while_blocked_in_consume_returns_promptly,
    stop_mid_batch_finishes_and_acks_the_batch_in_hand_and_takes_no_more,
    the_consumer_rides_out_an_unavailable_queue,
    an_endless_outage_is_retried_with_backoff_not_a_busy_loop,
    a_failed_ack_means_redelivery_not_loss,
    a_missing_group_is_created_again,
    higher_priority_messages_are_handled_first,
    missing_outcomes_are_retried_never_acked,
    a_panicking_message_is_dead_lettered_without_its_batch,
    a_handler_failing_everything_slows_the_consumer_down,
);

// ---------------------------------------------------------------------------------------------
// Helpers for the cases
// ---------------------------------------------------------------------------------------------

/// How long `eventually` waits: generous, tests share two cores.
const PATIENCE: Duration = Duration::from_secs(30);

fn msg(key: &str, priority: Priority) -> OutMessage {
    OutMessage {
        key: key.into(),
        priority,
        headers: Headers::new(),
        body: key.as_bytes().to_vec(),
    }
}

fn msgs(prefix: &str, n: usize, priority: Priority) -> Vec<OutMessage> {
    (0..n)
        .map(|i| msg(&format!("{prefix}-{i:03}"), priority))
        .collect()
}

fn key_set(ms: &[OutMessage]) -> BTreeSet<String> {
    ms.iter().map(|m| m.key.clone()).collect()
}

/// A consumer configuration with short waits, so tests stay fast.
fn config() -> ConsumerConfig {
    ConsumerConfig::new(STREAM, GROUP)
        .with_block(Duration::from_millis(200))
        .with_backoff_max(Duration::from_millis(200))
}

/// A handler that records every delivery it sees (key, attempt) and decides with `decide`.
struct Recorder {
    seen: Mutex<Vec<(String, u32)>>,
    decide: Box<dyn Fn(&Delivery) -> Outcome + Send + Sync>,
}

impl Recorder {
    fn new(decide: impl Fn(&Delivery) -> Outcome + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::new(Vec::new()),
            decide: Box::new(decide),
        })
    }

    fn all_done() -> Arc<Self> {
        Self::new(|_| Outcome::Done)
    }

    fn keys(&self) -> Vec<String> {
        self.seen.lock().unwrap().iter().map(|(k, _)| k.clone()).collect()
    }

    fn attempts_of(&self, key: &str) -> Vec<u32> {
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

fn start(
    q: &Arc<dyn Queue>,
    handler: Arc<dyn Handler>,
    cfg: ConsumerConfig,
) -> (ConsumerHandle, JoinHandle<()>) {
    Consumer::spawn(q.clone(), handler, cfg)
}

/// Stops the consumer and waits for its task (failing after a generous timeout).
async fn stop(handle: &ConsumerHandle, join: JoinHandle<()>) {
    handle.stop();
    tokio::time::timeout(Duration::from_secs(15), join)
        .await
        .expect("the consumer did not stop within 15 s")
        .expect("the consumer task panicked");
}

/// Polls `check` every 20 ms until it holds; panics with `what` after `PATIENCE`.
async fn eventually<F, Fut>(what: &str, mut check: F)
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

async fn dead(q: &Arc<dyn Queue>) -> Vec<DeadLetter> {
    q.dead_letters(STREAM, 100).await.unwrap()
}

/// A queue that fails on purpose, then delegates to `inner`: an outage, a lost group or a
/// failing ack without stopping a shared server.
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn Queue>,
    ensure_group_unavailable: AtomicU32,
    consume_unavailable: AtomicU32,
    consume_not_found: AtomicU32,
    ack_unavailable: AtomicU32,
    ensure_group_calls: AtomicU32,
    consume_calls: AtomicU32,
}

impl Flaky {
    fn new(inner: Arc<dyn Queue>) -> Self {
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
// The cases
// ---------------------------------------------------------------------------------------------

mod cases {
    use super::*;

    pub async fn every_published_message_is_handled_once_and_acked(q: Arc<dyn Queue>) {
        let before = msgs("before", 150, Priority::Normal);
        let after = msgs("after", 100, Priority::Normal);
        q.publish(STREAM, &before).await.unwrap();
        let rec = Recorder::all_done();
        let (handle, join) = start(&q, rec.clone(), config());
        // Some arrive while the consumer is running (wakes a blocked consume).
        for chunk in after.chunks(25) {
            q.publish(STREAM, chunk).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }

        eventually("250 messages processed", || async { handle.processed() >= 250 }).await;
        eventually("lag back to 0", || async { handle.lag().await.unwrap() == 0 }).await;
        stop(&handle, join).await;

        assert_eq!(handle.processed(), 250);
        assert_eq!((handle.retried(), handle.dead_lettered()), (0, 0));
        let seen = rec.keys();
        assert_eq!(seen.len(), 250, "each message handled once");
        let mut all = key_set(&before);
        all.extend(key_set(&after));
        assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), all);
        assert!(dead(&q).await.is_empty());
    }

    pub async fn a_message_retried_every_time_is_dead_lettered_after_max_attempts(q: Arc<dyn Queue>) {
        let mut sent = msgs("ok", 20, Priority::Normal);
        sent.insert(7, msg("flaky", Priority::Normal));
        q.publish(STREAM, &sent).await.unwrap();
        let rec = Recorder::new(|d| {
            if d.key == "flaky" {
                Outcome::retry("downstream timeout")
            } else {
                Outcome::Done
            }
        });
        let cfg = config()
            .with_min_idle(Duration::from_millis(60))
            .with_claim_every(Duration::from_millis(50))
            .with_max_attempts(3);
        let (handle, join) = start(&q, rec.clone(), cfg);

        eventually("the flaky message dead-lettered", || async {
            handle.dead_lettered() == 1
        })
        .await;
        eventually("lag back to 0", || async { handle.lag().await.unwrap() == 0 }).await;
        stop(&handle, join).await;

        let dead = dead(&q).await;
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].key, "flaky");
        assert_eq!(dead[0].attempts, 3);
        assert_eq!(dead[0].reason, "downstream timeout");
        assert_eq!(rec.attempts_of("flaky"), [1, 2, 3], "handled once per attempt");
        assert_eq!(handle.processed(), 20);
        assert_eq!(handle.retried(), 2);
        assert_eq!(handle.dead_lettered(), 1);
    }

    pub async fn a_rejected_message_is_dead_lettered_at_once_with_its_reason(q: Arc<dyn Queue>) {
        let mut sent = msgs("ok", 9, Priority::Normal);
        sent.insert(3, msg("poison", Priority::High));
        q.publish(STREAM, &sent).await.unwrap();
        let rec = Recorder::new(|d| {
            if d.key == "poison" {
                Outcome::reject("schema violation: missing tax code")
            } else {
                Outcome::Done
            }
        });
        // Default min_idle (30 s): only an immediate dead letter passes in time.
        let (handle, join) = start(&q, rec.clone(), config());

        eventually("all handled", || async {
            handle.processed() == 9 && handle.dead_lettered() == 1
        })
        .await;
        assert_eq!(handle.lag().await.unwrap(), 0);
        stop(&handle, join).await;

        let dead = dead(&q).await;
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].key, "poison");
        assert_eq!(dead[0].priority, Priority::High);
        assert_eq!(dead[0].body, b"poison");
        assert_eq!(dead[0].attempts, 1);
        assert_eq!(dead[0].reason, "schema violation: missing tax code");
        assert_eq!(rec.attempts_of("poison"), [1]);
        assert_eq!(handle.retried(), 0);
    }

    pub async fn messages_left_pending_by_a_crashed_consumer_are_reclaimed_and_handled(q: Arc<dyn Queue>) {
        let sent = msgs("m", 30, Priority::Normal);
        q.ensure_group(STREAM, GROUP).await.unwrap();
        q.publish(STREAM, &sent).await.unwrap();
        // A process took these and was killed before acking.
        let orphans = q
            .consume(STREAM, GROUP, "killed-process", 12, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(orphans.len(), 12);

        let rec = Recorder::all_done();
        let cfg = config()
            .with_min_idle(Duration::from_millis(150))
            .with_claim_every(Duration::from_millis(50));
        let (handle, join) = start(&q, rec.clone(), cfg);

        eventually("all 30 processed", || async { handle.processed() >= 30 }).await;
        eventually("lag back to 0", || async { handle.lag().await.unwrap() == 0 }).await;
        stop(&handle, join).await;

        assert_eq!(handle.processed(), 30);
        assert_eq!(rec.keys().into_iter().collect::<BTreeSet<_>>(), key_set(&sent));
        for o in &orphans {
            assert_eq!(
                rec.attempts_of(&o.key),
                [2],
                "{} reclaimed once, as its second delivery",
                o.key
            );
        }
        assert!(dead(&q).await.is_empty());
    }

    pub async fn stop_while_blocked_in_consume_returns_promptly(q: Arc<dyn Queue>) {
        let rec = Recorder::all_done();
        // Without the stop signal, the consumer would sit in consume for 60 s.
        let cfg = config()
            .with_block(Duration::from_secs(60))
            .with_claim_every(Duration::from_secs(60));
        let (handle, join) = start(&q, rec.clone(), cfg);
        eventually("the group exists", || async {
            q.lag(STREAM, GROUP).await.is_ok()
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!join.is_finished(), "the consumer never exits on its own");

        handle.stop();
        tokio::time::timeout(Duration::from_secs(5), join)
            .await
            .expect("stop while blocked in consume must not wait for the block to end")
            .unwrap();
        q.publish(STREAM, &[msg("late", Priority::Normal)]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(rec.keys().is_empty());
        assert_eq!(q.lag(STREAM, GROUP).await.unwrap(), 1);
    }

    pub async fn stop_mid_batch_finishes_and_acks_the_batch_in_hand_and_takes_no_more(q: Arc<dyn Queue>) {
        struct Gated {
            seen: Mutex<Vec<String>>,
            started: tokio::sync::mpsc::UnboundedSender<usize>,
            release: tokio::sync::Semaphore,
        }
        #[async_trait]
        impl Handler for Gated {
            async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
                self.seen
                    .lock()
                    .unwrap()
                    .extend(batch.iter().map(|d| d.key.clone()));
                let _ = self.started.send(batch.len());
                self.release.acquire().await.unwrap().forget();
                vec![Outcome::Done; batch.len()]
            }
        }

        let sent = msgs("m", 10, Priority::Normal);
        q.publish(STREAM, &sent).await.unwrap();
        let (tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let gated = Arc::new(Gated {
            seen: Mutex::new(Vec::new()),
            started: tx,
            release: tokio::sync::Semaphore::new(0),
        });
        let (handle, join) = start(&q, gated.clone(), config().with_batch_size(4));

        let n = tokio::time::timeout(PATIENCE, started.recv())
            .await
            .expect("the handler was never called")
            .unwrap();
        assert_eq!(n, 4);
        handle.stop();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!join.is_finished(), "stop waits for the batch in hand");
        gated.release.add_permits(100);
        tokio::time::timeout(Duration::from_secs(15), join)
            .await
            .expect("the consumer did not stop after its batch")
            .unwrap();

        let handled = gated.seen.lock().unwrap().clone();
        assert_eq!(handled.len(), 4, "no batch after the stop: {handled:?}");
        assert_eq!(handle.processed(), 4);
        assert_eq!(
            q.lag(STREAM, GROUP).await.unwrap(),
            6,
            "the batch in hand was acked"
        );
        // The other six were never taken: a new consumer gets exactly them, as new messages.
        let rest = q
            .consume(STREAM, GROUP, "successor", 100, Duration::ZERO)
            .await
            .unwrap();
        let rest: BTreeSet<String> = rest.into_iter().map(|d| d.key).collect();
        let expected: BTreeSet<String> = key_set(&sent)
            .into_iter()
            .filter(|k| !handled.contains(k))
            .collect();
        assert_eq!(rest, expected);
    }

    pub async fn the_consumer_rides_out_an_unavailable_queue(q: Arc<dyn Queue>) {
        let flaky = Arc::new(Flaky::new(q.clone()));
        flaky.ensure_group_unavailable.store(3, Ordering::SeqCst);
        flaky.consume_unavailable.store(5, Ordering::SeqCst);
        let sent = msgs("m", 50, Priority::Normal);
        q.publish(STREAM, &sent).await.unwrap();
        let rec = Recorder::all_done();
        let as_queue: Arc<dyn Queue> = flaky.clone();
        let (handle, join) = start(&as_queue, rec.clone(), config());

        eventually("all 50 processed", || async { handle.processed() >= 50 }).await;
        eventually("lag back to 0", || async { handle.lag().await.unwrap() == 0 }).await;
        assert!(!join.is_finished(), "errors never end the loop");
        stop(&handle, join).await;

        assert_eq!(flaky.ensure_group_unavailable.load(Ordering::SeqCst), 0);
        assert_eq!(flaky.consume_unavailable.load(Ordering::SeqCst), 0);
        assert_eq!(handle.processed(), 50);
        assert_eq!(rec.keys().into_iter().collect::<BTreeSet<_>>(), key_set(&sent));
    }

    pub async fn an_endless_outage_is_retried_with_backoff_not_a_busy_loop(q: Arc<dyn Queue>) {
        let flaky = Arc::new(Flaky::new(q.clone()));
        flaky.consume_unavailable.store(u32::MAX, Ordering::SeqCst);
        let as_queue: Arc<dyn Queue> = flaky.clone();
        let (handle, join) = start(&as_queue, Recorder::all_done(), config());

        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(!join.is_finished(), "an outage never ends the loop");
        let calls = flaky.consume_calls.load(Ordering::SeqCst);
        // Backoff 25–50 ms, doubling to 100–200 ms (backoff_max): about 10 calls in 1.5 s.
        assert!((3..=40).contains(&calls), "{calls} consume calls in 1.5 s");
        // Stopping does not wait out the backoff.
        stop(&handle, join).await;
    }

    pub async fn a_failed_ack_means_redelivery_not_loss(q: Arc<dyn Queue>) {
        let flaky = Arc::new(Flaky::new(q.clone()));
        // Every try of the first batch's ack fails (the consumer tries 3 times).
        flaky.ack_unavailable.store(3, Ordering::SeqCst);
        let sent = msgs("m", 10, Priority::Normal);
        q.publish(STREAM, &sent).await.unwrap();
        let rec = Recorder::all_done();
        let cfg = config()
            .with_min_idle(Duration::from_millis(200))
            .with_claim_every(Duration::from_millis(50));
        let as_queue: Arc<dyn Queue> = flaky.clone();
        let (handle, join) = start(&as_queue, rec.clone(), cfg);

        eventually("all 10 processed", || async { handle.processed() >= 10 }).await;
        eventually("lag back to 0", || async { handle.lag().await.unwrap() == 0 }).await;
        stop(&handle, join).await;

        assert_eq!(flaky.ack_unavailable.load(Ordering::SeqCst), 0);
        assert_eq!(handle.processed(), 10, "counted once, when the ack succeeded");
        for m in &sent {
            assert_eq!(
                rec.attempts_of(&m.key),
                [1, 2],
                "{} handled again after the lost ack",
                m.key
            );
        }
    }

    pub async fn a_missing_group_is_created_again(q: Arc<dyn Queue>) {
        let flaky = Arc::new(Flaky::new(q.clone()));
        flaky.consume_not_found.store(1, Ordering::SeqCst);
        let sent = msgs("m", 5, Priority::Normal);
        q.publish(STREAM, &sent).await.unwrap();
        let as_queue: Arc<dyn Queue> = flaky.clone();
        let (handle, join) = start(&as_queue, Recorder::all_done(), config());

        eventually("all 5 processed", || async { handle.processed() >= 5 }).await;
        stop(&handle, join).await;
        assert_eq!(flaky.consume_not_found.load(Ordering::SeqCst), 0);
        assert!(
            flaky.ensure_group_calls.load(Ordering::SeqCst) >= 2,
            "NotFound from consume makes the consumer ensure its group again"
        );
    }

    pub async fn higher_priority_messages_are_handled_first(q: Arc<dyn Queue>) {
        let normal = msgs("normal", 6, Priority::Normal);
        let high = msgs("high", 6, Priority::High);
        q.publish(STREAM, &normal).await.unwrap();
        q.publish(STREAM, &high).await.unwrap();
        let rec = Recorder::all_done();
        let (handle, join) = start(&q, rec.clone(), config().with_batch_size(4));

        eventually("all 12 processed", || async { handle.processed() >= 12 }).await;
        stop(&handle, join).await;
        let expected: Vec<String> = high.iter().chain(&normal).map(|m| m.key.clone()).collect();
        assert_eq!(
            rec.keys(),
            expected,
            "all high first, publish order within a priority"
        );
    }

    pub async fn missing_outcomes_are_retried_never_acked(q: Arc<dyn Queue>) {
        /// Answers only for the first delivery of each batch.
        struct Forgetful(Mutex<Vec<String>>);
        #[async_trait]
        impl Handler for Forgetful {
            async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
                self.0.lock().unwrap().extend(batch.iter().map(|d| d.key.clone()));
                vec![Outcome::Done]
            }
        }

        let sent = msgs("m", 4, Priority::Normal);
        q.publish(STREAM, &sent).await.unwrap();
        let forgetful = Arc::new(Forgetful(Mutex::new(Vec::new())));
        let cfg = config()
            .with_min_idle(Duration::from_millis(60))
            .with_claim_every(Duration::from_millis(50))
            .with_max_attempts(10);
        let (handle, join) = start(&q, forgetful.clone(), cfg);

        eventually("all 4 processed", || async { handle.processed() >= 4 }).await;
        eventually("lag back to 0", || async { handle.lag().await.unwrap() == 0 }).await;
        stop(&handle, join).await;

        assert_eq!(handle.processed(), 4);
        assert_eq!(handle.dead_lettered(), 0);
        assert!(handle.retried() >= 3, "the unanswered ones were retried");
        let seen = forgetful.0.lock().unwrap().clone();
        assert_eq!(
            seen.iter().filter(|k| *k == "m-003").count(),
            4,
            "the last one went unanswered (and unacked) three times: {seen:?}"
        );
    }

    pub async fn a_panicking_message_is_dead_lettered_without_its_batch(q: Arc<dyn Queue>) {
        let mut sent = msgs("ok", 6, Priority::Normal);
        sent.insert(2, msg("bomb", Priority::Normal));
        q.publish(STREAM, &sent).await.unwrap();
        let rec = Recorder::new(|d| {
            assert!(d.key != "bomb", "simulated handler bug");
            Outcome::Done
        });
        let cfg = config()
            .with_min_idle(Duration::from_millis(60))
            .with_claim_every(Duration::from_millis(50))
            .with_max_attempts(2);
        let (handle, join) = start(&q, rec.clone(), cfg);

        eventually("bomb dead-lettered", || async { handle.dead_lettered() == 1 }).await;
        eventually("lag back to 0", || async { handle.lag().await.unwrap() == 0 }).await;
        assert!(!join.is_finished(), "a handler panic never ends the loop");
        stop(&handle, join).await;

        assert_eq!(handle.processed(), 6, "the rest of the batch is acked");
        let dead = dead(&q).await;
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!((dead[0].key.as_str(), dead[0].attempts), ("bomb", 2));
        assert_eq!(dead[0].reason, "handler panicked");
    }

    pub async fn a_handler_failing_everything_slows_the_consumer_down(q: Arc<dyn Queue>) {
        q.publish(STREAM, &msgs("m", 50, Priority::Normal)).await.unwrap();
        let rec = Recorder::new(|_| Outcome::retry("database down"));
        let cfg = config().with_batch_size(5).with_max_attempts(100);
        let (handle, join) = start(&q, rec.clone(), cfg);

        eventually("the first batch handled", || async { !rec.keys().is_empty() }).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        // Full speed would take all 10 batches by now; pauses of 25–50, 50–100, then 100–200 ms
        // between batches allow about 5.
        let seen = rec.keys().len();
        assert!(seen <= 7 * 5, "{seen} deliveries handled in 400 ms of failures");
        stop(&handle, join).await;
        assert_eq!(q.lag(STREAM, GROUP).await.unwrap(), 50, "failed, not lost");
        assert_eq!(handle.processed(), 0);
        assert_eq!(handle.retried(), u64::try_from(rec.keys().len()).unwrap());
    }
}

// ---------------------------------------------------------------------------------------------
// Redis only: the server loses everything (restart without persistence, FLUSHALL)
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_emptied_while_running_the_consumer_recreates_its_group() {
    run(Backend::Redis, |place| async move {
        let q = place.open().await;
        let rec = Recorder::all_done();
        let (handle, join) = start(&q, rec.clone(), config());
        q.publish(STREAM, &msgs("before", 3, Priority::Normal))
            .await
            .unwrap();
        eventually("the first 3 processed", || async { handle.processed() >= 3 }).await;

        place.cleanup().await; // every key of this test, the groups with them
        q.publish(STREAM, &msgs("after", 3, Priority::High))
            .await
            .unwrap();

        eventually("the next 3 processed", || async { handle.processed() >= 6 }).await;
        stop(&handle, join).await;
        let seen: BTreeSet<String> = rec.keys().into_iter().collect();
        assert!(
            seen.contains("after-000") && seen.contains("after-002"),
            "{seen:?}"
        );
    })
    .await;
}
