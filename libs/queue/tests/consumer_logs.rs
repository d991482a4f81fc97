//! What the consumer loop logs during a queue outage: one warning when it starts and one line
//! when it ends, however long it lasts, so an outage does not flood the logs. Its own test
//! binary (its own process under `cargo test` too), because it installs a global subscriber.

// Test helpers outside `#[test]` functions: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use etx_queue::{Priority, Queue};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Backend, Flaky, Recorder, STREAM, config, eventually, msg, run, start, stop};
use tracing_subscriber::layer::SubscriberExt as _;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_is_logged_once_when_it_starts_and_once_when_it_ends() {
    let logs = Logs::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(logs.clone())).unwrap();

    run(Backend::Sqlite, |place| async move {
        let flaky = Arc::new(Flaky::new(place.open().await));
        flaky.consume_unavailable.store(12, Ordering::SeqCst);
        let queue: Arc<dyn Queue> = flaky.clone();
        let cfg = config()
            .with_block(Duration::from_millis(100))
            .with_backoff_max(Duration::from_millis(100));
        let (handle, join) = start(&queue, Recorder::all_done(), cfg);
        queue
            .publish(STREAM, &[msg("a", Priority::Normal), msg("b", Priority::Normal)])
            .await
            .unwrap();
        eventually("the first outage to pass", || async { handle.processed() == 2 }).await;

        flaky.consume_unavailable.store(12, Ordering::SeqCst);
        eventually("the second outage to be over", || async {
            flaky.consume_unavailable.load(Ordering::SeqCst) == 0
        })
        .await;
        queue
            .publish(STREAM, &[msg("c", Priority::Normal)])
            .await
            .unwrap();
        eventually("the second outage to pass", || async { handle.processed() == 3 }).await;
        stop(&handle, join).await;
    })
    .await;

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
