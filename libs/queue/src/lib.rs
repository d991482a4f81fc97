//! The queue port and its two adapters (DESIGN.md §1, §2): Redis Streams for the distributed
//! column ([`RedisQueue`]) and an embedded, durable queue in the service database for the
//! all-in-one column ([`EmbeddedQueue`]).
//!
//! Delivery is at-least-once: every consumer must be idempotent by [`Delivery::key`]. Messages
//! are served higher priority first (R-DATA-2, App. I 3.2), raw and masked forms travel as
//! separate streams (R-ING-2), and nothing stored is lost on restart or crash: a message leaves
//! a group only when acknowledged or moved to the dead-letter stream (R-AVAIL).
//!
//! Both adapters pass the same contract suite (`tests/contract.rs`). Services do not drive the
//! port by hand: they run a [`Consumer`] (module [`consumer`]) with their [`Handler`].

pub mod consumer;
pub mod embedded;
pub mod redis_streams;

pub use consumer::{Consumer, ConsumerConfig, ConsumerHandle, Handler, Outcome};
pub use embedded::EmbeddedQueue;
pub use etx_domain::Priority;
pub use redis_streams::RedisQueue;

use std::collections::BTreeMap;
use std::time::Duration;

/// Message headers (trace context, content type, schema version, …).
pub type Headers = BTreeMap<String, String>;

/// A message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    /// Idempotency / dedup key for consumers, e.g. the record id. The queue does not dedup.
    pub key: String,
    /// Served before every message of a lower priority (R-DATA-2).
    pub priority: Priority,
    /// Free-form headers, stored and returned as-is.
    pub headers: Headers,
    /// Opaque, binary-safe payload.
    pub body: Vec<u8>,
}

/// A message handed to a consumer of a group.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The adapter's message id (opaque; pass it back to [`Queue::ack`]).
    pub id: String,
    /// The logical stream the message was published to.
    pub stream: String,
    /// The idempotency key given at publish time.
    pub key: String,
    /// The priority given at publish time.
    pub priority: Priority,
    /// The headers given at publish time.
    pub headers: Headers,
    /// The body given at publish time.
    pub body: Vec<u8>,
    /// How many times this message has been delivered to the group: 1 on first delivery.
    pub attempt: u32,
}

/// A message that failed `max_attempts` times and was moved aside.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The dead letter's own id (pass it to [`Queue::replay_dead_letter`]).
    pub id: String,
    /// The logical stream the message was published to.
    pub stream: String,
    /// The idempotency key given at publish time.
    pub key: String,
    /// The priority given at publish time.
    pub priority: Priority,
    /// The headers given at publish time.
    pub headers: Headers,
    /// The body given at publish time.
    pub body: Vec<u8>,
    /// Deliveries made before giving up.
    pub attempts: u32,
    /// The reason given with the last failure.
    pub reason: String,
    /// When the message was dead-lettered.
    pub failed_at: chrono::DateTime<chrono::Utc>,
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The backend cannot be reached (connection refused, timed out, pool exhausted). Callers
    /// keep their state (e.g. the outbox row) and retry later.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    /// The group, message or dead letter does not exist (or is no longer pending).
    #[error("not found: {0}")]
    NotFound(String),
    /// Anything else (corrupt data, unexpected backend reply).
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// What [`Queue::fail`] did with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Still pending; [`Queue::claim_stuck`] redelivers it after its idle time.
    WillRetry,
    /// Moved to the dead-letter stream and acknowledged.
    DeadLettered,
}

/// The queue port. Implemented by [`RedisQueue`] and [`EmbeddedQueue`]; both are tested
/// against the same contract suite.
#[async_trait::async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug {
    /// Appends messages durably to `stream`; returns their ids once stored (in the order of
    /// `msgs`). All of `msgs` are stored or none. MUST return [`QueueError::Unavailable`] when
    /// the backend is down (callers keep the outbox row and retry).
    async fn publish(&self, stream: &str, msgs: &[OutMessage]) -> Result<Vec<String>, QueueError>;

    /// Creates the consumer group if missing (idempotent); a new group starts at the beginning
    /// of the stream.
    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), QueueError>;

    /// Up to `max` never-delivered messages for this group, HIGHER PRIORITY FIRST (all pending
    /// high before any normal, etc.), each marked pending for `consumer`. Waits up to `block`
    /// when none is available (may return early empty). MUST return [`QueueError::NotFound`]
    /// when the group does not exist.
    async fn consume(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Acknowledges delivered messages; acking an unknown/already-acked id is not an error.
    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), QueueError>;

    /// Reports a failed delivery. After `max_attempts` deliveries the message goes to the
    /// dead-letter stream (`<stream>.dead`) with `reason` and is acked; otherwise it stays
    /// pending and is redelivered by `claim_stuck`. The attempt count is the queue's own (not
    /// `delivery.attempt`), so a stale `Delivery` cannot under-count. MUST return
    /// [`QueueError::NotFound`] when the message is no longer pending for the group (already
    /// acked or dead-lettered).
    async fn fail(
        &self,
        stream: &str,
        group: &str,
        delivery: &Delivery,
        reason: &str,
        max_attempts: u32,
    ) -> Result<FailOutcome, QueueError>;

    /// Takes over messages pending longer than `min_idle` (a crashed consumer's), incrementing
    /// their attempt count (XAUTOCLAIM semantics). Higher priority first.
    async fn claim_stuck(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, QueueError>;

    /// Messages not yet acknowledged by the group (never delivered + pending), for lag metrics.
    /// MUST return [`QueueError::NotFound`] when the group does not exist.
    async fn lag(&self, stream: &str, group: &str) -> Result<u64, QueueError>;

    /// Up to `limit` dead letters of `stream`, oldest first.
    async fn dead_letters(&self, stream: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError>;

    /// Re-publishes a dead letter to its stream (attempts reset) and removes it from the
    /// dead-letter stream, atomically. MUST return [`QueueError::NotFound`] for an unknown id.
    async fn replay_dead_letter(&self, stream: &str, id: &str) -> Result<(), QueueError>;

    /// Health check for /readyz: [`QueueError::Unavailable`] when the backend is down.
    async fn ping(&self) -> Result<(), QueueError>;
}

/// Headers as stored (JSON object text).
pub(crate) fn headers_to_json(headers: &Headers) -> Result<String, QueueError> {
    serde_json::to_string(headers).map_err(|e| QueueError::Unknown(e.into()))
}

/// Headers from their stored JSON text.
pub(crate) fn headers_from_json(text: &[u8]) -> Result<Headers, QueueError> {
    if text.is_empty() {
        return Ok(Headers::new());
    }
    serde_json::from_slice(text)
        .map_err(|e| QueueError::Unknown(anyhow::anyhow!("corrupt headers in queue: {e}")))
}

/// A priority from its stored rank.
pub(crate) fn priority_from_rank(rank: i64) -> Result<Priority, QueueError> {
    u8::try_from(rank)
        .ok()
        .and_then(Priority::from_rank)
        .ok_or_else(|| QueueError::Unknown(anyhow::anyhow!("corrupt priority rank {rank} in queue")))
}

/// Milliseconds of a duration, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
