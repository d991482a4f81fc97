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

mod support;

use async_trait::async_trait;
use etx_queue::{DeadLetter, Delivery, Handler, OutMessage, Outcome, Priority, Queue};
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Backend, Flaky, GROUP, PATIENCE, Recorder, STREAM, config, eventually, msg, run, start, stop};

// Each case once per backend: `sqlite::<case>`, `postgres::<case>`, `redis::<case>`.
support::per_backend!(
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

fn msgs(prefix: &str, n: usize, priority: Priority) -> Vec<OutMessage> {
    (0..n)
        .map(|i| msg(&format!("{prefix}-{i:03}"), priority))
        .collect()
}

fn key_set(ms: &[OutMessage]) -> BTreeSet<String> {
    ms.iter().map(|m| m.key.clone()).collect()
}

async fn dead(q: &Arc<dyn Queue>) -> Vec<DeadLetter> {
    q.dead_letters(STREAM, 100).await.unwrap()
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
