//! The consumer loop every pipeline service runs over the [`Queue`] port (masking,
//! reconciliation, …): take a batch, hand it to a [`Handler`], acknowledge what was handled,
//! report what failed, reclaim what a crashed consumer left behind, and ride out backend outages.
//!
//! Promises:
//! - **Nothing acknowledged is lost (R-AVAIL).** A message leaves the group only when it is acked
//!   (the handler said [`Outcome::Done`]) or dead-lettered (`Retry` past `max_attempts`, or
//!   `Reject`). A handler's missing outcome, a panic, a failed `ack`/`fail` call, a crash or a
//!   `kill -9` all leave the message pending, and [`Queue::claim_stuck`] hands it out again after
//!   `min_idle`.
//! - **At-least-once.** The same delivery can reach a handler more than once: when the `ack`
//!   after a handled batch fails, when a stop abandons a `consume` that had just taken messages,
//!   or when handling takes longer than `min_idle` and another consumer reclaims the batch.
//!   Handlers MUST be idempotent by [`Delivery::key`].
//! - **Priority order (R-DATA-2)** is the queue's: batches come from [`Queue::consume`] and
//!   [`Queue::claim_stuck`], which serve higher priority first; the loop keeps their order.
//!   Reclaimed (stuck) messages are processed before new ones.
//! - **Never exits on its own, never panics, never spins.** Queue errors are logged once per
//!   outage (and once on recovery) and retried with exponential backoff and jitter, capped at
//!   `backoff_max`; a missing group (e.g. Redis restarted empty) is created again. A panicking
//!   handler is caught (see [`Handler`]). Only [`ConsumerHandle::stop`] (or aborting the task)
//!   ends the loop.
//! - **Slows down when everything fails.** While the handler answers `Retry` for every delivery
//!   of batch after batch (its database or a dependency is down), the loop backs off between
//!   batches, so new messages do not spend their attempts on an outage. Attempts still count
//!   per delivery: a dependency outage longer than about `max_attempts × min_idle` dead-letters
//!   the messages it keeps failing (replay them with [`Queue::replay_dead_letter`]).
//! - **Graceful stop.** The batch in hand is finished, acked and its failures recorded; no new
//!   batch is taken; a consumer blocked in `consume` returns at once.

use crate::{Delivery, FailOutcome, Queue, QueueError};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

/// The smallest `block`, `claim_every` and `backoff_max` accepted, so a misconfiguration cannot
/// turn the loop into a busy loop.
const MIN_PAUSE: Duration = Duration::from_millis(10);
/// The first backoff step (doubled on every consecutive failure, up to `backoff_max`).
const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// An empty `consume` round takes at least this long (or `block`, if shorter), whatever the
/// adapter does: the port allows returning early and empty.
const EMPTY_ROUND_FLOOR: Duration = Duration::from_millis(100);
/// Calls to `ack` for one batch before leaving it to redelivery.
const ACK_TRIES: u32 = 3;
/// Consecutive all-`Retry` batches that make a warning.
const RETRY_STREAK_WARN: u32 = 3;

/// What a [`Handler`] decided for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Handled (or found already handled: handlers are idempotent). The message is acked.
    Done,
    /// A transient failure (database busy, dependency down). The message stays pending, is
    /// redelivered after `min_idle`, and is dead-lettered after `max_attempts` deliveries.
    Retry {
        /// Why; kept with the message, and in the dead letter if it comes to that.
        reason: String,
    },
    /// A poison message that can never succeed (undecodable, schema violation): dead-lettered
    /// now, with `reason`.
    Reject {
        /// Why; shown to the operator in the dead-letter list.
        reason: String,
    },
}

impl Outcome {
    /// [`Outcome::Retry`] with `reason`.
    pub fn retry(reason: impl Into<String>) -> Self {
        Self::Retry {
            reason: reason.into(),
        }
    }

    /// [`Outcome::Reject`] with `reason`.
    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject {
            reason: reason.into(),
        }
    }
}

/// The work a service does with its messages.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Handles `batch` (1 to `batch_size` deliveries, higher priority first) and returns one
    /// [`Outcome`] per delivery, in the same order. Handling a batch at once lets a handler write
    /// it in one database transaction.
    ///
    /// MUST be idempotent by [`Delivery::key`]: a delivery may arrive again after it was handled
    /// (see the module docs). Missing outcomes are treated as [`Outcome::Retry`] (logged as an
    /// error), extra ones are ignored: nothing unhandled is ever acked. A panic is caught: the
    /// batch is handled again one delivery at a time, and a delivery that panics on its own is
    /// retried, so it ends as a dead letter after `max_attempts` instead of taking its batch
    /// with it.
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome>;
}

/// How a [`Consumer`] reads its stream. Built with [`ConsumerConfig::new`] and the `with_*`
/// setters; values below a sane floor are raised to it.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    stream: String,
    group: String,
    consumer: String,
    batch_size: usize,
    block: Duration,
    min_idle: Duration,
    claim_every: Duration,
    max_attempts: u32,
    backoff_max: Duration,
}

impl ConsumerConfig {
    /// Reads `stream` as a member of `group` (one group per service), under a consumer name
    /// unique to this process (`<hostname>-<pid>-<random>`), with the defaults: batches of 100,
    /// `consume` blocking 1 s, messages pending longer than 30 s reclaimed (checked every 5 s),
    /// dead-lettered after 5 deliveries, backoff up to 5 s.
    pub fn new(stream: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            group: group.into(),
            consumer: default_consumer_name(),
            batch_size: 100,
            block: Duration::from_secs(1),
            min_idle: Duration::from_secs(30),
            claim_every: Duration::from_secs(5),
            max_attempts: 5,
            backoff_max: Duration::from_secs(5),
        }
    }

    /// The consumer name within the group. Two live consumers must not share one: Redis would
    /// treat them as one and their pending messages would mix.
    #[must_use]
    pub fn with_consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = consumer.into();
        self
    }

    /// Most deliveries per handler call (at least 1).
    #[must_use]
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// Longest wait in one `consume` call when the stream is empty (at least 10 ms). Stopping
    /// does not wait for it.
    #[must_use]
    pub fn with_block(mut self, block: Duration) -> Self {
        self.block = block.max(MIN_PAUSE);
        self
    }

    /// Messages pending (delivered, not acked) longer than this are taken over from whichever
    /// consumer holds them: a crashed one, or this one after [`Outcome::Retry`]. Keep it well
    /// above the longest batch handling time, or live consumers' batches are handled twice.
    #[must_use]
    pub fn with_min_idle(mut self, min_idle: Duration) -> Self {
        self.min_idle = min_idle;
        self
    }

    /// How often to look for stuck messages (at least 10 ms).
    #[must_use]
    pub fn with_claim_every(mut self, claim_every: Duration) -> Self {
        self.claim_every = claim_every.max(MIN_PAUSE);
        self
    }

    /// Deliveries before a message that keeps failing with [`Outcome::Retry`] is dead-lettered
    /// (at least 1).
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    /// The longest pause between retries while the queue fails (at least 10 ms).
    #[must_use]
    pub fn with_backoff_max(mut self, backoff_max: Duration) -> Self {
        self.backoff_max = backoff_max.max(MIN_PAUSE);
        self
    }

    /// The stream read.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The consumer name within the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Most deliveries per handler call.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Longest wait in one `consume` call.
    pub fn block(&self) -> Duration {
        self.block
    }

    /// Pending time after which a message is reclaimed.
    pub fn min_idle(&self) -> Duration {
        self.min_idle
    }

    /// How often stuck messages are looked for.
    pub fn claim_every(&self) -> Duration {
        self.claim_every
    }

    /// Deliveries before a retried message is dead-lettered.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The longest pause between retries while the queue fails.
    pub fn backoff_max(&self) -> Duration {
        self.backoff_max
    }
}

/// `<hostname>-<pid>-<8 hex>`: readable in `XINFO CONSUMERS`, unique even when a restarted
/// process reuses a pid (in a container, usually 1).
fn default_consumer_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}-{}", std::process::id(), &random[..8])
}

#[derive(Debug, Default)]
struct Stats {
    processed: AtomicU64,
    retried: AtomicU64,
    dead_lettered: AtomicU64,
}

/// Controls and observes a running [`Consumer`]. Cheap to clone; dropping it does not stop the
/// consumer.
#[derive(Debug, Clone)]
pub struct ConsumerHandle {
    token: CancellationToken,
    stats: Arc<Stats>,
    queue: Arc<dyn Queue>,
    stream: Arc<str>,
    group: Arc<str>,
    consumer: Arc<str>,
}

impl ConsumerHandle {
    /// Asks the consumer to stop: the batch in hand is finished and acked, no new batch is
    /// taken, a blocked `consume` is abandoned. Await the `JoinHandle` from
    /// [`Consumer::spawn`] to know when it has stopped. Idempotent.
    pub fn stop(&self) {
        self.token.cancel();
    }

    /// Whether [`ConsumerHandle::stop`] was called.
    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The consumer name within the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Deliveries handled with [`Outcome::Done`] and acked.
    pub fn processed(&self) -> u64 {
        self.stats.processed.load(Ordering::Relaxed)
    }

    /// Deliveries that failed with [`Outcome::Retry`] and stay pending for redelivery.
    pub fn retried(&self) -> u64 {
        self.stats.retried.load(Ordering::Relaxed)
    }

    /// Deliveries moved to the dead-letter stream ([`Outcome::Reject`], or `Retry` at
    /// `max_attempts`).
    pub fn dead_lettered(&self) -> u64 {
        self.stats.dead_lettered.load(Ordering::Relaxed)
    }

    /// Messages the group has not acked yet (never delivered + pending), from the queue.
    pub async fn lag(&self) -> Result<u64, QueueError> {
        self.queue.lag(&self.stream, &self.group).await
    }
}

/// A running consumer loop; see the module docs. Start one with [`Consumer::spawn`].
pub struct Consumer {
    queue: Arc<dyn Queue>,
    handler: Arc<dyn Handler>,
    cfg: ConsumerConfig,
    token: CancellationToken,
    stats: Arc<Stats>,
    outage: Option<Outage>,
    /// Consecutive batches the handler failed entirely with `Retry`.
    retry_streak: u32,
    jitter: Jitter,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("cfg", &self.cfg)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

/// Consecutive failed queue calls.
#[derive(Debug)]
struct Outage {
    since: Instant,
    failures: u32,
}

impl Consumer {
    /// Starts the consumer loop on the current Tokio runtime. It runs until
    /// [`ConsumerHandle::stop`]; the `JoinHandle` completes after the stop (aborting it instead
    /// is a crash as far as the queue is concerned: pending messages are reclaimed later).
    ///
    /// # Panics
    /// Outside a Tokio runtime (like [`tokio::spawn`]).
    pub fn spawn(
        queue: Arc<dyn Queue>,
        handler: Arc<dyn Handler>,
        cfg: ConsumerConfig,
    ) -> (ConsumerHandle, tokio::task::JoinHandle<()>) {
        let token = CancellationToken::new();
        let stats = Arc::new(Stats::default());
        let handle = ConsumerHandle {
            token: token.clone(),
            stats: stats.clone(),
            queue: queue.clone(),
            stream: cfg.stream.as_str().into(),
            group: cfg.group.as_str().into(),
            consumer: cfg.consumer.as_str().into(),
        };
        let span = tracing::info_span!(
            "queue_consumer",
            stream = %cfg.stream,
            group = %cfg.group,
            consumer = %cfg.consumer,
        );
        let consumer = Self {
            queue,
            handler,
            cfg,
            token,
            stats,
            outage: None,
            retry_streak: 0,
            jitter: Jitter::new(),
        };
        (handle, tokio::spawn(consumer.run().instrument(span)))
    }

    async fn run(mut self) {
        tracing::info!(
            batch_size = self.cfg.batch_size,
            max_attempts = self.cfg.max_attempts,
            "queue consumer started"
        );
        let token = self.token.clone();
        let queue = self.queue.clone();
        let (stream, group, consumer) = (
            self.cfg.stream.clone(),
            self.cfg.group.clone(),
            self.cfg.consumer.clone(),
        );
        let mut need_group = true;
        // Claim at once: a restarted service picks up what its previous process left pending.
        let mut next_claim = Instant::now();
        while !token.is_cancelled() {
            if need_group {
                match until_stopped(&token, queue.ensure_group(&stream, &group)).await {
                    None => break,
                    Some(Ok(())) => {
                        self.recovered();
                        need_group = false;
                    }
                    Some(Err(e)) => {
                        self.backoff("ensure_group", &e).await;
                        continue;
                    }
                }
            }

            if Instant::now() >= next_claim {
                let claimed =
                    queue.claim_stuck(&stream, &group, &consumer, self.cfg.min_idle, self.cfg.batch_size);
                match until_stopped(&token, claimed).await {
                    None => break,
                    Some(Ok(batch)) => {
                        self.recovered();
                        // A full batch may mean more are stuck: look again before new messages.
                        next_claim = if batch.len() >= self.cfg.batch_size {
                            Instant::now()
                        } else {
                            Instant::now() + self.cfg.claim_every
                        };
                        if !batch.is_empty() {
                            tracing::info!(n = batch.len(), "reclaimed stuck messages");
                            self.process(batch).await;
                            continue;
                        }
                    }
                    Some(Err(e)) => {
                        need_group |= matches!(e, QueueError::NotFound(_));
                        self.backoff("claim_stuck", &e).await;
                        continue;
                    }
                }
            }

            // Wake up in time for the next claim round.
            let block = self
                .cfg
                .block
                .min(next_claim.saturating_duration_since(Instant::now()))
                .max(Duration::from_millis(1));
            let started = Instant::now();
            let consumed = queue.consume(&stream, &group, &consumer, self.cfg.batch_size, block);
            match until_stopped(&token, consumed).await {
                None => break,
                Some(Ok(batch)) if batch.is_empty() => {
                    self.recovered();
                    let floor = block.min(EMPTY_ROUND_FLOOR);
                    let spent = started.elapsed();
                    if spent < floor {
                        pause(&token, floor - spent).await;
                    }
                }
                Some(Ok(batch)) => {
                    self.recovered();
                    self.process(batch).await;
                }
                Some(Err(e)) => {
                    need_group |= matches!(e, QueueError::NotFound(_));
                    self.backoff("consume", &e).await;
                }
            }
        }
        tracing::info!(
            processed = self.stats.processed.load(Ordering::Relaxed),
            retried = self.stats.retried.load(Ordering::Relaxed),
            dead_lettered = self.stats.dead_lettered.load(Ordering::Relaxed),
            "queue consumer stopped"
        );
    }

    /// Handles one batch and records every outcome. Runs to the end even after a stop request
    /// (the batch in hand is finished), except that retries of a failing queue are cut short.
    async fn process(&mut self, batch: Vec<Delivery>) {
        let batch: Arc<[Delivery]> = batch.into();
        let outcomes = self.handle(&batch).await;
        let all_retry = outcomes.iter().all(|o| matches!(o, Outcome::Retry { .. }));
        self.record(&batch, outcomes).await;
        self.pace(all_retry).await;
    }

    /// Acks the `Done` deliveries and reports the others to the queue.
    async fn record(&mut self, batch: &[Delivery], outcomes: Vec<Outcome>) {
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for (delivery, outcome) in batch.iter().zip(outcomes) {
            match outcome {
                Outcome::Done => done.push(delivery.id.clone()),
                Outcome::Retry { reason } => failed.push((delivery, reason, self.cfg.max_attempts)),
                // `fail` dead-letters once the delivery count reaches `max_attempts`, and every
                // pending message has been delivered at least once.
                Outcome::Reject { reason } => failed.push((delivery, reason, 1)),
            }
        }

        if !done.is_empty() {
            if !self.ack(&done).await {
                // Whatever broke `ack` breaks `fail` too; the failed ones stay pending as well.
                return;
            }
            self.stats
                .processed
                .fetch_add(count(done.len()), Ordering::Relaxed);
        }

        let (stream, group) = (self.cfg.stream.clone(), self.cfg.group.clone());
        for (i, (delivery, reason, max_attempts)) in failed.iter().enumerate() {
            match self
                .queue
                .fail(&stream, &group, delivery, reason, *max_attempts)
                .await
            {
                Ok(FailOutcome::WillRetry) => {
                    self.recovered();
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                }
                Ok(FailOutcome::DeadLettered) => {
                    self.recovered();
                    self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                }
                Err(QueueError::NotFound(_)) => {
                    // Reclaimed by another consumer and settled there.
                    tracing::debug!(id = %delivery.id, "failed delivery is no longer pending");
                }
                Err(e) => {
                    tracing::debug!(
                        left = failed.len() - i,
                        "failures not recorded; those messages stay pending and come back after min_idle"
                    );
                    self.backoff("fail", &e).await;
                    return;
                }
            }
        }
    }

    /// Slows down while every delivery fails with `Retry`: that is a dependency down rather
    /// than bad messages, and taking new batches at full speed would only spend their attempts
    /// (each reclaim counts one) and dead-letter the backlog within `max_attempts × min_idle`.
    /// Backoff as for queue errors; logged once when a streak gets long and once when it ends
    /// (one stuck message failing alone is not worth a warning).
    async fn pace(&mut self, all_retry: bool) {
        if !all_retry {
            if self.retry_streak >= RETRY_STREAK_WARN {
                tracing::info!(batches = self.retry_streak, "the handler succeeds again");
            }
            self.retry_streak = 0;
            return;
        }
        self.retry_streak = self.retry_streak.saturating_add(1);
        if self.retry_streak == RETRY_STREAK_WARN {
            tracing::warn!(
                batches = self.retry_streak,
                "the handler failed every delivery of several batches in a row; slowing down until it succeeds again"
            );
        }
        let delay = self.jitter.backoff(self.retry_streak, self.cfg.backoff_max);
        pause(&self.token, delay).await;
    }

    /// Acks `ids` in one call, retried a few times; false when it could not.
    async fn ack(&mut self, ids: &[String]) -> bool {
        let (stream, group) = (self.cfg.stream.clone(), self.cfg.group.clone());
        let mut tries = 0;
        loop {
            tries += 1;
            match self.queue.ack(&stream, &group, ids).await {
                Ok(()) => {
                    self.recovered();
                    return true;
                }
                Err(e) => {
                    let last = tries >= ACK_TRIES || self.token.is_cancelled();
                    if last {
                        tracing::warn!(
                            n = ids.len(),
                            error = %e,
                            "cannot ack handled messages; they will be redelivered after min_idle"
                        );
                    }
                    self.backoff("ack", &e).await;
                    if last {
                        return false;
                    }
                }
            }
        }
    }

    /// The handler's outcomes for `batch`, exactly one per delivery.
    async fn handle(&self, batch: &Arc<[Delivery]>) -> Vec<Outcome> {
        if let Some(outcomes) = self.call_handler(batch.clone()).await {
            return one_per_delivery(outcomes, batch.len());
        }
        if batch.len() == 1 {
            return vec![Outcome::retry("handler panicked")];
        }
        tracing::error!(
            n = batch.len(),
            "handler panicked; handling the batch one delivery at a time to isolate the cause"
        );
        let mut outcomes = Vec::with_capacity(batch.len());
        for delivery in batch.iter() {
            let one: Arc<[Delivery]> = Arc::from(std::slice::from_ref(delivery));
            match self.call_handler(one).await {
                Some(o) => outcomes.extend(one_per_delivery(o, 1)),
                None => outcomes.push(Outcome::retry("handler panicked")),
            }
        }
        outcomes
    }

    /// Runs the handler in its own task so a panic is caught; None when it panicked.
    async fn call_handler(&self, batch: Arc<[Delivery]>) -> Option<Vec<Outcome>> {
        let handler = self.handler.clone();
        let keys = (batch.len() == 1).then(|| (batch[0].key.clone(), batch[0].attempt));
        // Aborted with this consumer's task, so an aborted consumer leaves no handler behind.
        let task = AbortOnDropHandle::new(tokio::spawn(
            async move { handler.handle(&batch).await }.in_current_span(),
        ));
        match task.await {
            Ok(outcomes) => Some(outcomes),
            Err(e) => {
                match keys {
                    Some((key, attempt)) => {
                        tracing::error!(%key, attempt, error = %e, "handler panicked on this delivery");
                    }
                    None => tracing::error!(error = %e, "handler panicked"),
                }
                None
            }
        }
    }

    /// Records a failed queue call (a warning on the first failure of an outage only) and
    /// waits out the backoff, or until stopped.
    async fn backoff(&mut self, op: &'static str, e: &QueueError) {
        let failures = match &mut self.outage {
            Some(outage) => {
                outage.failures = outage.failures.saturating_add(1);
                tracing::debug!(op, error = %e, failures = outage.failures, "queue call failed again");
                outage.failures
            }
            None => {
                match e {
                    QueueError::NotFound(_) => tracing::warn!(
                        op,
                        error = %e,
                        "consumer group missing (queue emptied or restarted?); creating it again"
                    ),
                    _ => tracing::warn!(op, error = %e, "queue call failed; retrying with backoff"),
                }
                self.outage = Some(Outage {
                    since: Instant::now(),
                    failures: 1,
                });
                1
            }
        };
        let delay = self.jitter.backoff(failures, self.cfg.backoff_max);
        pause(&self.token, delay).await;
    }

    /// Notes a successful queue call, ending an outage.
    fn recovered(&mut self) {
        if let Some(outage) = self.outage.take() {
            tracing::info!(
                failures = outage.failures,
                after_ms = u64::try_from(outage.since.elapsed().as_millis()).unwrap_or(u64::MAX),
                "queue calls succeed again"
            );
        }
    }
}

/// Exactly `n` outcomes: missing ones become `Retry`, extra ones are dropped.
fn one_per_delivery(mut outcomes: Vec<Outcome>, n: usize) -> Vec<Outcome> {
    if outcomes.len() != n {
        tracing::error!(
            expected = n,
            got = outcomes.len(),
            "handler returned the wrong number of outcomes; missing ones are retried, extra ones ignored"
        );
        outcomes.truncate(n);
        outcomes.resize(n, Outcome::retry("handler returned no outcome"));
    }
    outcomes
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// `fut`'s output, or None if `token` is cancelled first (then `fut` is dropped).
async fn until_stopped<T>(token: &CancellationToken, fut: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        () = token.cancelled() => None,
        out = fut => Some(out),
    }
}

/// Sleeps `d`, or until `token` is cancelled.
async fn pause(token: &CancellationToken, d: Duration) {
    tokio::select! {
        () = token.cancelled() => {}
        () = tokio::time::sleep(d) => {}
    }
}

/// A small xorshift generator for backoff jitter (not for anything secret).
#[derive(Debug)]
struct Jitter(u64);

impl Jitter {
    fn new() -> Self {
        Self(uuid::Uuid::new_v4().as_u64_pair().0 | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// The pause after the `failures`-th consecutive failure: 50 ms doubling up to `max`, with
    /// "equal jitter" (half fixed, half random) so consumers that failed together spread out.
    fn backoff(&mut self, failures: u32, max: Duration) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        let ceiling = BACKOFF_BASE.saturating_mul(1 << doublings).min(max);
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        let half = nanos / 2;
        let spread = nanos - half;
        Duration::from_nanos(half + self.next() % spread.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half() {
        let mut j = Jitter::new();
        let max = Duration::from_secs(5);
        for _ in 0..1000 {
            let first = j.backoff(1, max);
            assert!(first >= Duration::from_millis(25) && first <= Duration::from_millis(50));
            let fourth = j.backoff(4, max);
            assert!(fourth >= Duration::from_millis(200) && fourth <= Duration::from_millis(400));
            let late = j.backoff(u32::MAX, max);
            assert!(late >= Duration::from_millis(2500) && late <= max);
        }
        let tiny = Duration::from_millis(10);
        assert!(j.backoff(30, tiny) <= tiny);
    }

    #[test]
    fn missing_outcomes_are_retried_and_extra_ones_dropped() {
        let short = one_per_delivery(vec![Outcome::Done], 3);
        assert_eq!(short.len(), 3);
        assert_eq!(short[0], Outcome::Done);
        assert!(matches!(short[1], Outcome::Retry { .. }));
        assert!(matches!(short[2], Outcome::Retry { .. }));
        let long = one_per_delivery(vec![Outcome::Done, Outcome::reject("x")], 1);
        assert_eq!(long, [Outcome::Done]);
    }

    #[test]
    fn config_raises_values_below_the_floor_and_names_consumers_uniquely() {
        let a = ConsumerConfig::new("records.received", "masking")
            .with_batch_size(0)
            .with_block(Duration::ZERO)
            .with_claim_every(Duration::ZERO)
            .with_max_attempts(0)
            .with_backoff_max(Duration::ZERO);
        assert_eq!(a.batch_size(), 1);
        assert_eq!(a.block(), MIN_PAUSE);
        assert_eq!(a.claim_every(), MIN_PAUSE);
        assert_eq!(a.max_attempts(), 1);
        assert_eq!(a.backoff_max(), MIN_PAUSE);
        let b = ConsumerConfig::new("records.received", "masking");
        assert_ne!(a.consumer(), b.consumer());
        assert!(b.consumer().contains(&std::process::id().to_string()));
        assert_eq!((b.batch_size(), b.max_attempts()), (100, 5));
        assert_eq!(b.min_idle(), Duration::from_secs(30));
    }
}
