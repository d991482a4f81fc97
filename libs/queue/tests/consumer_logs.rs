//! What the consumer loop logs during a queue outage: one warning when it starts and one line
//! when it ends, however long it lasts, so an outage does not flood the logs. Its own test
//! binary (its own process under `cargo test` too), because it installs a global subscriber.

// Test helpers outside `#[test]` functions: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use etx_queue::{
    Consumer, ConsumerConfig, DeadLetter, Delivery, EmbeddedQueue, FailOutcome, Handler, Headers, OutMessage,
    Outcome, Priority, Queue, QueueError,
};
use sea_orm::{ConnectOptions, Database};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt as _;

const STREAM: &str = "records.test";

/// Every event of the consumer module: (level, message).
#[derive(Debug, Clone, Default)]
struct Logs(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl Logs {
    fn count(&self, level: tracing::Level, starts_with: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, m)| *l == level && m.starts_with(starts_with))
            .count()
    }

    fn at_least(&self, level: tracing::Level) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| *l <= level)
            .map(|(l, m)| format!("{l} {m}"))
            .collect()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Logs {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        if event.metadata().target() != "etx_queue::consumer" {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), message.0));
    }
}

/// The embedded queue, whose `consume` fails while `down` > 0 (one failure used per call).
#[derive(Debug)]
struct Outages {
    inner: EmbeddedQueue,
    down: AtomicU32,
}

#[async_trait]
impl Queue for Outages {
    async fn publish(&self, stream: &str, msgs: &[OutMessage]) -> Result<Vec<String>, QueueError> {
        self.inner.publish(stream, msgs).await
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), QueueError> {
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
        if self
            .down
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(QueueError::Unavailable("simulated outage".into()));
        }
        self.inner.consume(stream, group, consumer, max, block).await
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), QueueError> {
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

struct Done;

#[async_trait]
impl Handler for Done {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        vec![Outcome::Done; batch.len()]
    }
}

fn msg(key: &str) -> OutMessage {
    OutMessage {
        key: key.into(),
        priority: Priority::Normal,
        headers: Headers::new(),
        body: Vec::new(),
    }
}

async fn wait_for(what: &str, check: impl Fn() -> bool) {
    tokio::time::timeout(Duration::from_secs(30), async {
        while !check() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() {
    let logs = Logs::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(logs.clone())).unwrap();

    let dir = std::env::temp_dir().join(format!("etx-consumer-logs-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut opts = ConnectOptions::new(format!("sqlite://{}?mode=rwc", dir.join("queue.db").display()));
    opts.sqlx_logging(false).max_connections(4);
    let inner = EmbeddedQueue::new(Database::connect(opts).await.unwrap())
        .with_poll_interval(Duration::from_millis(20));
    inner.migrate().await.unwrap();
    let queue = Arc::new(Outages {
        inner,
        down: AtomicU32::new(12),
    });

    let cfg = ConsumerConfig::new(STREAM, "svc")
        .with_block(Duration::from_millis(100))
        .with_backoff_max(Duration::from_millis(100));
    let (handle, join) = Consumer::spawn(queue.clone(), Arc::new(Done), cfg);
    queue.publish(STREAM, &[msg("a"), msg("b")]).await.unwrap();
    wait_for("the first outage to pass", || handle.processed() == 2).await;

    queue.down.store(12, Ordering::SeqCst);
    wait_for("the second outage to be over", || {
        queue.down.load(Ordering::SeqCst) == 0
    })
    .await;
    queue.publish(STREAM, &[msg("c")]).await.unwrap();
    wait_for("the second outage to pass", || handle.processed() == 3).await;

    handle.stop();
    tokio::time::timeout(Duration::from_secs(10), join)
        .await
        .unwrap()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let warnings = logs.at_least(tracing::Level::WARN);
    assert_eq!(
        warnings.len(),
        2,
        "one warning per outage (12 failed calls each): {warnings:?}"
    );
    assert_eq!(
        logs.count(tracing::Level::INFO, "queue calls succeed again"),
        2,
        "one line when each outage ends"
    );
}
