//! The queue port's contract suite (DESIGN.md §7.2): one set of cases, each run against the
//! embedded queue on SQLite, the embedded queue on PostgreSQL and Redis Streams, so both
//! adapters keep the promises of `etx_queue::Queue` — priority order (R-DATA-2), at-least-once
//! delivery with nothing lost (R-AVAIL), dead letters and replay.
//!
//! PostgreSQL (`ETX_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! Redis (`ETX_TEST_REDIS_URL`, default `redis://127.0.0.1:6379`) are required: when they are
//! unreachable the tests fail loudly, they are never skipped.

// Test helpers outside `#[test]` functions: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use etx_queue::{
    Delivery, EmbeddedQueue, FailOutcome, Headers, OutMessage, Priority, Queue, QueueError, RedisQueue,
};
use sea_orm::Database;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{Backend, Place, STREAM, msg, run};

// Each case once per backend: `sqlite::<case>`, `postgres::<case>`, `redis::<case>`.
support::per_backend!(
    publish_then_consume_returns_messages_intact,
    higher_priority_is_consumed_first,
    ack_removes_from_lag,
    unacked_message_is_redelivered_by_claim_stuck_with_attempt_two,
    every_group_gets_every_message,
    a_new_group_starts_at_the_beginning_of_the_stream,
    concurrent_consumers_never_get_the_same_message,
    fail_below_max_will_retry_and_is_claimed_later,
    fail_at_max_dead_letters_the_message,
    replayed_dead_letter_is_consumed_again,
    blocking_consume_on_an_empty_stream_returns_empty,
    blocked_consumer_wakes_up_on_publish,
    ensure_group_is_idempotent,
    unknown_group_is_not_found,
    large_batches_keep_publish_order,
    dead_letters_are_listed_oldest_first_up_to_limit,
    ping_succeeds,
);

// ---------------------------------------------------------------------------------------------
// Helpers for the cases
// ---------------------------------------------------------------------------------------------

fn keys(ds: &[Delivery]) -> Vec<&str> {
    ds.iter().map(|d| d.key.as_str()).collect()
}

fn ids(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(|d| d.id.clone()).collect()
}

async fn consume_now(q: &dyn Queue, group: &str, consumer: &str, max: usize) -> Vec<Delivery> {
    q.consume(STREAM, group, consumer, max, Duration::ZERO)
        .await
        .unwrap()
}

const IDLE: Duration = Duration::from_millis(50);

/// Long enough for a pending message to pass `IDLE`.
async fn wait_idle() {
    tokio::time::sleep(IDLE + Duration::from_millis(40)).await;
}

// ---------------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------------

mod cases {
    use super::*;

    pub async fn publish_then_consume_returns_messages_intact(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        let mut headers = Headers::new();
        headers.insert("content-type".into(), "application/json".into());
        headers.insert("tỉnh".into(), "Hà Nội — \"quoted\"".into());
        let binary = vec![0x00, 0xff, 0xfe, 0x80, b'a', 0x00, 0xc3, 0x28, 0x00];
        let sent = vec![
            OutMessage {
                key: "rec-1".into(),
                priority: Priority::Normal,
                headers: headers.clone(),
                body: binary,
            },
            OutMessage {
                key: "rec-2".into(),
                priority: Priority::Normal,
                headers: Headers::new(),
                body: vec![],
            },
        ];
        let published = q.publish(STREAM, &sent).await.unwrap();
        assert_eq!(published.len(), 2);
        assert_ne!(published[0], published[1]);

        let got = consume_now(q, "g", "c1", 10).await;
        assert_eq!(got.len(), 2, "{got:?}");
        for (d, m) in got.iter().zip(&sent) {
            assert_eq!(d.stream, STREAM);
            assert_eq!(d.key, m.key);
            assert_eq!(d.priority, m.priority);
            assert_eq!(d.headers, m.headers);
            assert_eq!(d.body, m.body);
            assert_eq!(d.attempt, 1);
        }
        assert_eq!(ids(&got), published, "delivery ids are the ids publish returned");
        assert!(
            consume_now(q, "g", "c1", 10).await.is_empty(),
            "only never-delivered messages"
        );
        assert!(q.publish(STREAM, &[]).await.unwrap().is_empty());
    }

    pub async fn higher_priority_is_consumed_first(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        q.publish(STREAM, &[msg("low-1", Priority::Low)]).await.unwrap();
        q.publish(STREAM, &[msg("normal-1", Priority::Normal)])
            .await
            .unwrap();
        q.publish(STREAM, &[msg("high-1", Priority::High)]).await.unwrap();
        let got = consume_now(q, "g", "c", 10).await;
        assert_eq!(keys(&got), ["high-1", "normal-1", "low-1"]);
        assert_eq!(got.iter().map(|d| d.priority).collect::<Vec<_>>(), Priority::ALL);

        // Filling up to `max`: all high before any normal, publish order within a priority.
        q.publish(
            STREAM,
            &[
                msg("low-2", Priority::Low),
                msg("normal-2", Priority::Normal),
                msg("high-2", Priority::High),
                msg("normal-3", Priority::Normal),
                msg("high-3", Priority::High),
            ],
        )
        .await
        .unwrap();
        assert_eq!(
            keys(&consume_now(q, "g", "c", 3).await),
            ["high-2", "high-3", "normal-2"]
        );
        q.publish(STREAM, &[msg("high-4", Priority::High)]).await.unwrap();
        assert_eq!(keys(&consume_now(q, "g", "c", 1).await), ["high-4"]);
        assert_eq!(keys(&consume_now(q, "g", "c", 10).await), ["normal-3", "low-2"]);
    }

    pub async fn ack_removes_from_lag(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 0);
        q.publish(
            STREAM,
            &[
                msg("a", Priority::High),
                msg("b", Priority::Normal),
                msg("c", Priority::Low),
            ],
        )
        .await
        .unwrap();
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 3);
        let got = consume_now(q, "g", "c", 2).await;
        assert_eq!(
            q.lag(STREAM, "g").await.unwrap(),
            3,
            "pending messages still count"
        );
        q.ack(STREAM, "g", &ids(&got)).await.unwrap();
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 1);
        // Acking again, an unknown id or garbage is not an error and changes nothing.
        let mut again = ids(&got);
        again.push("2:1-99".into());
        again.push("999999".into());
        again.push("not an id".into());
        q.ack(STREAM, "g", &again).await.unwrap();
        q.ack(STREAM, "g", &[]).await.unwrap();
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 1);
        let rest = consume_now(q, "g", "c", 10).await;
        assert_eq!(keys(&rest), ["c"]);
        q.ack(STREAM, "g", &ids(&rest)).await.unwrap();
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 0);
    }

    pub async fn unacked_message_is_redelivered_by_claim_stuck_with_attempt_two(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        q.publish(
            STREAM,
            &[msg("crash", Priority::Normal), msg("urgent", Priority::High)],
        )
        .await
        .unwrap();
        let first = consume_now(q, "g", "crashed-consumer", 10).await;
        assert_eq!(keys(&first), ["urgent", "crash"]);
        assert!(
            q.claim_stuck(STREAM, "g", "rescuer", Duration::from_secs(60), 10)
                .await
                .unwrap()
                .is_empty(),
            "nothing is idle for a minute yet"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        let claimed = q.claim_stuck(STREAM, "g", "rescuer", IDLE, 10).await.unwrap();
        assert_eq!(keys(&claimed), ["urgent", "crash"], "higher priority first");
        assert_eq!(ids(&claimed), ids(&first));
        assert!(claimed.iter().all(|d| d.attempt == 2), "{claimed:?}");
        assert_eq!(claimed[1].body, b"crash");
        // Idle for 400 ms before the claim; the claim resets that.
        let reset = Duration::from_millis(300);
        assert!(
            q.claim_stuck(STREAM, "g", "other", reset, 10)
                .await
                .unwrap()
                .is_empty(),
            "a claim resets the idle time"
        );
        wait_idle().await;
        let again = q.claim_stuck(STREAM, "g", "other", IDLE, 1).await.unwrap();
        assert_eq!(keys(&again), ["urgent"], "`max` is respected");
        assert_eq!(again[0].attempt, 3);
        q.ack(STREAM, "g", &ids(&claimed)).await.unwrap();
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 0);
        wait_idle().await;
        assert!(
            q.claim_stuck(STREAM, "g", "other", IDLE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(consume_now(q, "g", "c", 10).await.is_empty());
    }

    pub async fn every_group_gets_every_message(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "masking").await.unwrap();
        q.ensure_group(STREAM, "analytics").await.unwrap();
        let sent: Vec<_> = (0..5).map(|i| msg(&format!("m{i}"), Priority::Normal)).collect();
        q.publish(STREAM, &sent).await.unwrap();
        let a = consume_now(q, "masking", "c", 10).await;
        let b = consume_now(q, "analytics", "c", 10).await;
        assert_eq!(keys(&a), ["m0", "m1", "m2", "m3", "m4"]);
        assert_eq!(keys(&b), keys(&a));
        q.ack(STREAM, "masking", &ids(&a)).await.unwrap();
        assert_eq!(q.lag(STREAM, "masking").await.unwrap(), 0);
        assert_eq!(
            q.lag(STREAM, "analytics").await.unwrap(),
            5,
            "one group's ack is not another's"
        );
    }

    pub async fn a_new_group_starts_at_the_beginning_of_the_stream(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "early").await.unwrap();
        q.publish(STREAM, &[msg("before", Priority::Low)]).await.unwrap();
        q.ensure_group(STREAM, "late").await.unwrap();
        q.publish(STREAM, &[msg("after", Priority::High)]).await.unwrap();
        assert_eq!(q.lag(STREAM, "late").await.unwrap(), 2);
        assert_eq!(keys(&consume_now(q, "late", "c", 10).await), ["after", "before"]);
        assert_eq!(keys(&consume_now(q, "early", "c", 10).await), ["after", "before"]);
    }

    pub async fn concurrent_consumers_never_get_the_same_message(q: Arc<dyn Queue>) {
        q.ensure_group(STREAM, "g").await.unwrap();
        let sent: Vec<_> = (0..200)
            .map(|i| msg(&format!("k{i:03}"), Priority::ALL[i % 3]))
            .collect();
        for chunk in sent.chunks(50) {
            q.publish(STREAM, chunk).await.unwrap();
        }
        let mut tasks = Vec::new();
        for c in 0..4 {
            let q = q.clone();
            tasks.push(tokio::spawn(async move {
                let consumer = format!("consumer-{c}");
                let mut mine = Vec::new();
                loop {
                    let got = q
                        .consume(STREAM, "g", &consumer, 7, Duration::from_millis(50))
                        .await
                        .unwrap();
                    if got.is_empty() {
                        break;
                    }
                    q.ack(STREAM, "g", &ids(&got)).await.unwrap();
                    mine.extend(got.into_iter().map(|d| (d.id, d.key)));
                }
                mine
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        let unique_ids: BTreeSet<_> = all.iter().map(|(id, _)| id.clone()).collect();
        let unique_keys: BTreeSet<_> = all.iter().map(|(_, k)| k.clone()).collect();
        assert_eq!(all.len(), 200, "every message delivered exactly once");
        assert_eq!(unique_ids.len(), 200, "no message delivered twice");
        assert_eq!(
            unique_keys,
            sent.iter().map(|m| m.key.clone()).collect::<BTreeSet<_>>()
        );
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 0);
    }

    pub async fn fail_below_max_will_retry_and_is_claimed_later(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        q.publish(STREAM, &[msg("flaky", Priority::Normal)])
            .await
            .unwrap();
        let d = consume_now(q, "g", "c", 1).await.remove(0);
        assert_eq!(
            q.fail(STREAM, "g", &d, "timeout", 3).await.unwrap(),
            FailOutcome::WillRetry
        );
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 1);
        assert!(q.dead_letters(STREAM, 10).await.unwrap().is_empty());
        assert!(
            consume_now(q, "g", "c", 1).await.is_empty(),
            "a failed message is not new"
        );
        wait_idle().await;
        let d2 = q
            .claim_stuck(STREAM, "g", "c2", IDLE, 10)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(
            (d2.id.as_str(), d2.key.as_str(), d2.attempt),
            (d.id.as_str(), "flaky", 2)
        );
        assert_eq!(
            q.fail(STREAM, "g", &d2, "timeout", 3).await.unwrap(),
            FailOutcome::WillRetry
        );
        wait_idle().await;
        let d3 = q
            .claim_stuck(STREAM, "g", "c3", IDLE, 10)
            .await
            .unwrap()
            .remove(0);
        assert_eq!(d3.attempt, 3);
        assert_eq!(
            q.fail(STREAM, "g", &d3, "timeout", 3).await.unwrap(),
            FailOutcome::DeadLettered
        );
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 0);
        let dead = q.dead_letters(STREAM, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].attempts, 3);
    }

    pub async fn fail_at_max_dead_letters_the_message(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        let mut headers = Headers::new();
        headers.insert("trace".into(), "abc".into());
        let poison = OutMessage {
            key: "poison".into(),
            priority: Priority::High,
            headers: headers.clone(),
            body: vec![0x00, 0xde, 0xad, 0xbe, 0xef],
        };
        q.publish(STREAM, &[poison.clone(), msg("fine", Priority::Low)])
            .await
            .unwrap();
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 2);
        let before = chrono::Utc::now() - chrono::Duration::seconds(5);
        let d = consume_now(q, "g", "c", 1).await.remove(0);
        assert_eq!(d.key, "poison");
        assert_eq!(
            q.fail(STREAM, "g", &d, "schema violation", 1).await.unwrap(),
            FailOutcome::DeadLettered
        );
        assert_eq!(
            q.lag(STREAM, "g").await.unwrap(),
            1,
            "a dead letter no longer lags the group"
        );

        let dead = q.dead_letters(STREAM, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        let dl = &dead[0];
        assert_eq!(dl.stream, STREAM);
        assert_eq!(dl.key, poison.key);
        assert_eq!(dl.priority, Priority::High);
        assert_eq!(dl.headers, headers);
        assert_eq!(dl.body, poison.body);
        assert_eq!(dl.attempts, 1);
        assert_eq!(dl.reason, "schema violation");
        assert!(dl.failed_at > before && dl.failed_at < chrono::Utc::now() + chrono::Duration::seconds(5));
        assert!(q.dead_letters(STREAM, 0).await.unwrap().is_empty());

        assert!(
            matches!(
                q.fail(STREAM, "g", &d, "again", 1).await,
                Err(QueueError::NotFound(_))
            ),
            "a dead-lettered message is no longer pending"
        );
        wait_idle().await;
        assert!(
            q.claim_stuck(STREAM, "g", "c", IDLE, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(keys(&consume_now(q, "g", "c", 10).await), ["fine"]);
        assert!(q.dead_letters("other.stream", 10).await.unwrap().is_empty());
    }

    pub async fn replayed_dead_letter_is_consumed_again(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        let body = vec![0x00, 0xff, 0x10];
        let m = OutMessage {
            key: "again".into(),
            priority: Priority::Low,
            headers: Headers::new(),
            body,
        };
        q.publish(STREAM, std::slice::from_ref(&m)).await.unwrap();
        let d = consume_now(q, "g", "c", 1).await.remove(0);
        assert_eq!(
            q.fail(STREAM, "g", &d, "bug", 1).await.unwrap(),
            FailOutcome::DeadLettered
        );
        let dead = q.dead_letters(STREAM, 10).await.unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 0);

        q.replay_dead_letter(STREAM, &dead[0].id).await.unwrap();
        assert!(q.dead_letters(STREAM, 10).await.unwrap().is_empty());
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 1);
        let again = consume_now(q, "g", "c", 10).await;
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].key.as_str(), again[0].priority),
            ("again", Priority::Low)
        );
        assert_eq!(again[0].body, m.body);
        assert_eq!(again[0].attempt, 1, "attempts reset on replay");
        q.ack(STREAM, "g", &ids(&again)).await.unwrap();
        assert_eq!(q.lag(STREAM, "g").await.unwrap(), 0);

        assert!(matches!(
            q.replay_dead_letter(STREAM, &dead[0].id).await,
            Err(QueueError::NotFound(_))
        ));
        assert!(matches!(
            q.replay_dead_letter(STREAM, "nonsense").await,
            Err(QueueError::NotFound(_))
        ));
    }

    pub async fn blocking_consume_on_an_empty_stream_returns_empty(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        let started = Instant::now();
        let got = q
            .consume(STREAM, "g", "c", 10, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(got.is_empty());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    pub async fn blocked_consumer_wakes_up_on_publish(q: Arc<dyn Queue>) {
        q.ensure_group(STREAM, "g").await.unwrap();
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let got = q
                    .consume(STREAM, "g", "c", 10, Duration::from_secs(20))
                    .await
                    .unwrap();
                (got, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(150)).await;
        q.publish(STREAM, &[msg("wake", Priority::Low)]).await.unwrap();
        let (got, took) = tokio::time::timeout(Duration::from_secs(10), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(keys(&got), ["wake"]);
        assert!(took < Duration::from_secs(10), "woke after {took:?}");
    }

    pub async fn ensure_group_is_idempotent(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        q.ensure_group(STREAM, "g").await.unwrap();
        q.publish(
            STREAM,
            &[msg("one", Priority::Normal), msg("two", Priority::Normal)],
        )
        .await
        .unwrap();
        let got = consume_now(q, "g", "c", 1).await;
        q.ack(STREAM, "g", &ids(&got)).await.unwrap();
        q.ensure_group(STREAM, "g").await.unwrap();
        assert_eq!(
            q.lag(STREAM, "g").await.unwrap(),
            1,
            "re-ensuring does not reset the group"
        );
        assert_eq!(keys(&consume_now(q, "g", "c", 10).await), ["two"]);
    }

    pub async fn unknown_group_is_not_found(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        let none = q
            .consume(STREAM, "nobody", "c", 10, Duration::from_millis(10))
            .await;
        assert!(matches!(none, Err(QueueError::NotFound(_))), "{none:?}");
        assert!(matches!(
            q.lag(STREAM, "nobody").await,
            Err(QueueError::NotFound(_))
        ));
        q.ensure_group(STREAM, "g").await.unwrap();
        let none = q.consume(STREAM, "nobody", "c", 10, Duration::ZERO).await;
        assert!(matches!(none, Err(QueueError::NotFound(_))), "{none:?}");
        assert!(matches!(
            q.lag(STREAM, "nobody").await,
            Err(QueueError::NotFound(_))
        ));
        let claim = q.claim_stuck(STREAM, "nobody", "c", IDLE, 10).await;
        assert!(matches!(claim, Err(QueueError::NotFound(_))), "{claim:?}");
    }

    pub async fn large_batches_keep_publish_order(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        let sent: Vec<_> = (0..1200)
            .map(|i| msg(&format!("k{i:04}"), Priority::ALL[(i / 7) % 3]))
            .collect();
        let published = q.publish(STREAM, &sent).await.unwrap();
        assert_eq!(published.len(), sent.len());
        assert_eq!(published.iter().collect::<BTreeSet<_>>().len(), sent.len());
        let got = consume_now(q, "g", "c", 5000).await;
        let mut expected: Vec<(u8, usize)> = sent
            .iter()
            .enumerate()
            .map(|(i, m)| (m.priority.rank(), i))
            .collect();
        expected.sort_unstable();
        assert_eq!(
            got.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            expected
                .iter()
                .map(|&(_, i)| sent[i].key.as_str())
                .collect::<Vec<_>>(),
            "priority first, publish order within a priority"
        );
        for d in &got {
            let i: usize = d.key[1..].parse().unwrap();
            assert_eq!(
                d.id, published[i],
                "publish returns ids in the order of the messages"
            );
        }
    }

    pub async fn dead_letters_are_listed_oldest_first_up_to_limit(q: Arc<dyn Queue>) {
        let q = q.as_ref();
        q.ensure_group(STREAM, "g").await.unwrap();
        q.publish(
            STREAM,
            &[
                msg("first", Priority::Low),
                msg("second", Priority::Low),
                msg("third", Priority::Low),
            ],
        )
        .await
        .unwrap();
        for d in consume_now(q, "g", "c", 10).await {
            let reason = format!("bad {}", d.key);
            assert_eq!(
                q.fail(STREAM, "g", &d, &reason, 1).await.unwrap(),
                FailOutcome::DeadLettered
            );
        }
        let two = q.dead_letters(STREAM, 2).await.unwrap();
        assert_eq!(
            two.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["first", "second"]
        );
        assert_eq!(two[1].reason, "bad second");
        q.replay_dead_letter(STREAM, &two[0].id).await.unwrap();
        let rest = q.dead_letters(STREAM, 10).await.unwrap();
        assert_eq!(
            rest.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["second", "third"]
        );
    }

    pub async fn ping_succeeds(q: Arc<dyn Queue>) {
        q.ping().await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Adapter-specific promises
// ---------------------------------------------------------------------------------------------

/// Publish, deliver one, drop the queue (a crash), reopen: nothing is lost (R-AVAIL).
async fn messages_survive_reopening(place: Arc<Place>) {
    {
        let q = place.open().await;
        q.ensure_group(STREAM, "g").await.unwrap();
        q.publish(
            STREAM,
            &[msg("pending", Priority::High), msg("queued", Priority::Normal)],
        )
        .await
        .unwrap();
        assert_eq!(
            keys(&consume_now(q.as_ref(), "g", "crashing", 1).await),
            ["pending"]
        );
    }
    let q = place.open().await;
    assert_eq!(q.lag(STREAM, "g").await.unwrap(), 2);
    let queued = consume_now(q.as_ref(), "g", "c", 10).await;
    assert_eq!(keys(&queued), ["queued"]);
    q.ack(STREAM, "g", &ids(&queued)).await.unwrap();
    wait_idle().await;
    let claimed = q.claim_stuck(STREAM, "g", "c", IDLE, 10).await.unwrap();
    assert_eq!(keys(&claimed), ["pending"]);
    assert_eq!(claimed[0].attempt, 2);
}

/// Two queue instances (as two processes would) on one database share the work without
/// duplicates.
async fn two_instances_on_one_database_share_without_duplicates(place: Arc<Place>) {
    let a = place.open().await;
    let b = place.open().await;
    a.ensure_group(STREAM, "g").await.unwrap();
    let sent: Vec<_> = (0..100)
        .map(|i| msg(&format!("k{i}"), Priority::ALL[i % 3]))
        .collect();
    b.publish(STREAM, &sent).await.unwrap();
    let mut tasks = Vec::new();
    for (n, q) in [a.clone(), b.clone(), a, b].into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = q
                    .consume(STREAM, "g", &format!("c{n}"), 5, Duration::from_millis(50))
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                q.ack(STREAM, "g", &ids(&got)).await.unwrap();
                mine.extend(got.into_iter().map(|d| d.key));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 100);
    assert_eq!(all.iter().collect::<BTreeSet<_>>().len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_messages_survive_reopening() {
    run(Backend::Sqlite, messages_survive_reopening).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_messages_survive_reopening() {
    run(Backend::Postgres, messages_survive_reopening).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_messages_survive_reopening() {
    run(Backend::Redis, messages_survive_reopening).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_two_instances_on_one_database_share_without_duplicates() {
    run(
        Backend::Sqlite,
        two_instances_on_one_database_share_without_duplicates,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_two_instances_on_one_database_share_without_duplicates() {
    run(
        Backend::Postgres,
        two_instances_on_one_database_share_without_duplicates,
    )
    .await;
}

/// Redis down: publish and ping report Unavailable quickly (the outbox keeps the rows).
#[tokio::test]
async fn redis_down_is_unavailable_not_a_panic_or_a_hang() {
    let q = RedisQueue::connect("redis://127.0.0.1:1", "etxtest:down:").unwrap();
    let started = Instant::now();
    let published = tokio::time::timeout(
        Duration::from_secs(10),
        q.publish(STREAM, &[msg("x", Priority::High)]),
    )
    .await
    .expect("publish must not hang when Redis is down");
    assert!(
        matches!(published, Err(QueueError::Unavailable(_))),
        "{published:?}"
    );
    let pinged = tokio::time::timeout(Duration::from_secs(10), q.ping())
        .await
        .unwrap();
    assert!(matches!(pinged, Err(QueueError::Unavailable(_))), "{pinged:?}");
    let consumed = tokio::time::timeout(
        Duration::from_secs(10),
        q.consume(STREAM, "g", "c", 1, Duration::from_millis(100)),
    )
    .await
    .unwrap();
    assert!(
        matches!(consumed, Err(QueueError::Unavailable(_))),
        "{consumed:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// The embedded queue's database down (closed pool): Unavailable, not Unknown.
#[tokio::test]
async fn embedded_database_closed_is_unavailable() {
    let place = Place::new(Backend::Sqlite).await;
    let Place::Sqlite { url, .. } = &place else {
        unreachable!()
    };
    let db = Database::connect(url.as_str()).await.unwrap();
    let q = EmbeddedQueue::new(db.clone());
    q.migrate().await.unwrap();
    db.close_by_ref().await.unwrap();
    let published = q.publish(STREAM, &[msg("x", Priority::High)]).await;
    assert!(
        matches!(published, Err(QueueError::Unavailable(_))),
        "{published:?}"
    );
    assert!(matches!(q.ping().await, Err(QueueError::Unavailable(_))));
    place.cleanup().await;
}
