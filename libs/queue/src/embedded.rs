//! Embedded, durable adapter of the queue port for the all-in-one column (DESIGN.md §2): the
//! queue lives in the service database through sea-orm — a SQLite file in all-in-one, and it
//! works unchanged on PostgreSQL (several processes may share it).
//!
//! Tables (all prefixed `queue_`):
//!
//! | table | what |
//! |---|---|
//! | `queue_streams` | one row per stream: a lock row that orders `publish` against `ensure_group` |
//! | `queue_groups` | consumer groups per stream |
//! | `queue_messages` | the messages (`seq` autoincrement, priority rank, headers JSON, body bytes) |
//! | `queue_deliveries` | per (stream, message, group) state: ready → pending (consumer, delivered_at, attempts); deleted on ack |
//! | `queue_dead_letters` | messages that failed `max_attempts` times |
//!
//! Choices:
//! - **Fan-out on write.** `publish` inserts the messages and, in the same transaction, one
//!   `ready` delivery row per existing group; a new group copies the stream's messages. So
//!   "never delivered" is an index range (`stream, grp, state, priority, seq`) rather than an
//!   anti-join, and lag is a count. A per-group cursor over `seq` would lose messages on
//!   PostgreSQL, where sequence values commit out of order (R-AVAIL).
//! - **Claiming** is one `UPDATE … RETURNING` statement: on PostgreSQL the candidate rows are
//!   picked with `FOR UPDATE SKIP LOCKED`, so concurrent consumers in any process never get the
//!   same message; SQLite has a single writer, so the statement is atomic as is.
//! - Every write transaction starts with a write, so SQLite never has to upgrade a read lock
//!   (which fails with `SQLITE_BUSY` instead of waiting).
//! - **Blocking** `consume` waits on a [`Notify`] woken by `publish` in this process, plus a
//!   short poll (50 ms by default) for publishers in other processes.
//! - Acked deliveries are deleted; messages are kept (a new group starts at the beginning of the
//!   stream, like Redis). No retention/trimming yet: it must never drop unacked messages.

use crate::{
    DeadLetter, Delivery, FailOutcome, Headers, OutMessage, Queue, QueueError, headers_from_json,
    headers_to_json, millis, priority_from_rank,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryResult, RuntimeErr, Statement,
    TransactionTrait, Value,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Rows per multi-row statement (well below SQLite's and PostgreSQL's bind-parameter limits).
const CHUNK: usize = 500;

/// `queue_deliveries.state`: not yet delivered to the group.
const READY: i64 = 0;
/// `queue_deliveries.state`: delivered, waiting for ack.
const PENDING: i64 = 1;

/// Serialises concurrent `migrate` calls on PostgreSQL (`pg_advisory_xact_lock` key).
const MIGRATE_LOCK_KEY: i64 = 0x6574_785f_7175_6575; // "etx_queue"

const SQLITE_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS queue_streams (stream TEXT NOT NULL PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS queue_groups (stream TEXT NOT NULL, grp TEXT NOT NULL, \
     created_at BIGINT NOT NULL, PRIMARY KEY (stream, grp))",
    "CREATE TABLE IF NOT EXISTS queue_messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
     stream TEXT NOT NULL, msg_key TEXT NOT NULL, priority BIGINT NOT NULL, headers TEXT NOT NULL, \
     body BLOB NOT NULL, created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS queue_deliveries (stream TEXT NOT NULL, seq BIGINT NOT NULL, \
     grp TEXT NOT NULL, priority BIGINT NOT NULL, state BIGINT NOT NULL, consumer TEXT, \
     delivered_at BIGINT, attempts BIGINT NOT NULL, last_error TEXT, PRIMARY KEY (stream, seq, grp))",
    "CREATE TABLE IF NOT EXISTS queue_dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, \
     stream TEXT NOT NULL, grp TEXT NOT NULL, orig_seq BIGINT NOT NULL, msg_key TEXT NOT NULL, \
     priority BIGINT NOT NULL, headers TEXT NOT NULL, body BLOB NOT NULL, attempts BIGINT NOT NULL, \
     reason TEXT NOT NULL, failed_at BIGINT NOT NULL)",
];

const POSTGRES_DDL: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS queue_streams (stream TEXT NOT NULL PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS queue_groups (stream TEXT NOT NULL, grp TEXT NOT NULL, \
     created_at BIGINT NOT NULL, PRIMARY KEY (stream, grp))",
    "CREATE TABLE IF NOT EXISTS queue_messages (seq BIGSERIAL PRIMARY KEY, \
     stream TEXT NOT NULL, msg_key TEXT NOT NULL, priority BIGINT NOT NULL, headers TEXT NOT NULL, \
     body BYTEA NOT NULL, created_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS queue_deliveries (stream TEXT NOT NULL, seq BIGINT NOT NULL, \
     grp TEXT NOT NULL, priority BIGINT NOT NULL, state BIGINT NOT NULL, consumer TEXT, \
     delivered_at BIGINT, attempts BIGINT NOT NULL, last_error TEXT, PRIMARY KEY (stream, seq, grp))",
    "CREATE TABLE IF NOT EXISTS queue_dead_letters (id BIGSERIAL PRIMARY KEY, \
     stream TEXT NOT NULL, grp TEXT NOT NULL, orig_seq BIGINT NOT NULL, msg_key TEXT NOT NULL, \
     priority BIGINT NOT NULL, headers TEXT NOT NULL, body BYTEA NOT NULL, attempts BIGINT NOT NULL, \
     reason TEXT NOT NULL, failed_at BIGINT NOT NULL)",
];

const INDEX_DDL: &[&str] = &[
    "CREATE INDEX IF NOT EXISTS queue_messages_stream_idx ON queue_messages (stream, seq)",
    "CREATE INDEX IF NOT EXISTS queue_deliveries_order_idx \
     ON queue_deliveries (stream, grp, state, priority, seq)",
    "CREATE INDEX IF NOT EXISTS queue_dead_letters_stream_idx ON queue_dead_letters (stream, id)",
];

/// The queue port over the service database (SQLite or PostgreSQL).
#[derive(Debug, Clone)]
pub struct EmbeddedQueue {
    db: DatabaseConnection,
    published: Arc<Notify>,
    poll: Duration,
}

impl EmbeddedQueue {
    /// A queue over `db`. Call [`EmbeddedQueue::migrate`] once before use.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            published: Arc::new(Notify::new()),
            poll: Duration::from_millis(50),
        }
    }

    /// How often a blocked `consume` looks for messages published by other processes
    /// (default 50 ms; publishes in this process wake it at once).
    #[must_use]
    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(1));
        self
    }

    /// Creates the `queue_*` tables and indexes if missing (idempotent, safe to run from several
    /// processes at once).
    pub async fn migrate(&self) -> Result<(), QueueError> {
        let backend = self.backend();
        let ddl = match backend {
            DbBackend::Sqlite => SQLITE_DDL,
            DbBackend::Postgres => POSTGRES_DDL,
            other => {
                return Err(QueueError::Unknown(anyhow::anyhow!(
                    "the embedded queue supports SQLite and PostgreSQL, not {other:?}"
                )));
            }
        };
        let txn = self.db.begin().await.map_err(map_db)?;
        if backend == DbBackend::Postgres {
            txn.execute_raw(stmt(
                backend,
                "SELECT pg_advisory_xact_lock($1)",
                [MIGRATE_LOCK_KEY.into()],
            ))
            .await
            .map_err(map_db)?;
        }
        for sql in ddl.iter().chain(INDEX_DDL) {
            txn.execute_unprepared(sql).await.map_err(map_db)?;
        }
        txn.commit().await.map_err(map_db)
    }

    fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    async fn group_exists(&self, stream: &str, group: &str) -> Result<bool, QueueError> {
        let row = self
            .db
            .query_one_raw(stmt(
                self.backend(),
                "SELECT 1 FROM queue_groups WHERE stream = $1 AND grp = $2",
                [stream.into(), group.into()],
            ))
            .await
            .map_err(map_db)?;
        Ok(row.is_some())
    }

    /// Marks up to `max` rows pending for `consumer` and returns them with their messages:
    /// ready rows (`stale_before` = None) or pending rows delivered before `stale_before`.
    async fn take(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
        stale_before: Option<i64>,
    ) -> Result<Vec<Delivery>, QueueError> {
        let backend = self.backend();
        let now = now_ms();
        let limit = i64::try_from(max).unwrap_or(i64::MAX);
        let (filter, mut values): (&str, Vec<Value>) = match stale_before {
            None => ("state = $6", vec![READY.into()]),
            Some(cutoff) => (
                "state = $6 AND delivered_at <= $7",
                vec![PENDING.into(), cutoff.into()],
            ),
        };
        let sql = match backend {
            DbBackend::Postgres => format!(
                "WITH c AS MATERIALIZED (SELECT seq FROM queue_deliveries \
                 WHERE stream = $1 AND grp = $2 AND {filter} ORDER BY priority, seq LIMIT $5 \
                 FOR UPDATE SKIP LOCKED) \
                 UPDATE queue_deliveries d SET state = {PENDING}, consumer = $3, delivered_at = $4, \
                 attempts = d.attempts + 1 FROM c \
                 WHERE d.stream = $1 AND d.grp = $2 AND d.seq = c.seq \
                 RETURNING d.seq, d.priority, d.attempts"
            ),
            _ => format!(
                "UPDATE queue_deliveries SET state = {PENDING}, consumer = $3, delivered_at = $4, \
                 attempts = attempts + 1 \
                 WHERE stream = $1 AND grp = $2 AND {filter} AND seq IN (SELECT seq FROM queue_deliveries \
                 WHERE stream = $1 AND grp = $2 AND {filter} ORDER BY priority, seq LIMIT $5) \
                 RETURNING seq, priority, attempts"
            ),
        };
        let mut args: Vec<Value> = vec![
            stream.into(),
            group.into(),
            consumer.into(),
            now.into(),
            limit.into(),
        ];
        args.append(&mut values);
        let rows = self
            .db
            .query_all_raw(stmt(backend, &sql, args))
            .await
            .map_err(map_db)?;
        let mut taken = rows
            .iter()
            .map(|r| Ok((get::<i64>(r, 0)?, get::<i64>(r, 1)?, get::<i64>(r, 2)?)))
            .collect::<Result<Vec<_>, QueueError>>()?;
        if taken.is_empty() {
            return Ok(Vec::new());
        }
        taken.sort_unstable_by_key(|&(seq, prio, _)| (prio, seq));
        let bodies = self.load_messages(taken.iter().map(|t| t.0)).await?;
        taken
            .into_iter()
            .map(|(seq, prio, attempts)| {
                let (key, headers, body) = bodies.get(&seq).cloned().ok_or_else(|| {
                    QueueError::Unknown(anyhow::anyhow!("queue message {seq} has a delivery but no body"))
                })?;
                Ok(Delivery {
                    id: seq.to_string(),
                    stream: stream.to_owned(),
                    key,
                    priority: priority_from_rank(prio)?,
                    headers,
                    body,
                    attempt: u32::try_from(attempts.max(1)).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    async fn load_messages(
        &self,
        seqs: impl Iterator<Item = i64>,
    ) -> Result<HashMap<i64, (String, Headers, Vec<u8>)>, QueueError> {
        let seqs: Vec<i64> = seqs.collect();
        let mut out = HashMap::with_capacity(seqs.len());
        for chunk in seqs.chunks(CHUNK) {
            let sql = format!(
                "SELECT seq, msg_key, headers, body FROM queue_messages WHERE seq IN ({})",
                placeholders(1, chunk.len())
            );
            let rows = self
                .db
                .query_all_raw(stmt(self.backend(), &sql, chunk.iter().map(|&s| s.into())))
                .await
                .map_err(map_db)?;
            for r in &rows {
                let headers: String = get(r, 2)?;
                out.insert(
                    get(r, 0)?,
                    (get(r, 1)?, headers_from_json(headers.as_bytes())?, get(r, 3)?),
                );
            }
        }
        Ok(out)
    }
}

/// Inserts `msgs` into `stream` (with a ready delivery row for each existing group) inside the
/// caller's transaction; returns their seqs in the order of `msgs`.
async fn insert_messages<C: ConnectionTrait>(
    c: &C,
    stream: &str,
    msgs: &[OutMessage],
) -> Result<Vec<i64>, QueueError> {
    let backend = c.get_database_backend();
    // The first statement is a write (SQLite takes the write lock up front).
    c.execute_raw(stmt(
        backend,
        "INSERT INTO queue_streams (stream) VALUES ($1) ON CONFLICT DO NOTHING",
        [stream.into()],
    ))
    .await
    .map_err(map_db)?;
    if backend == DbBackend::Postgres {
        // Shared lock: publishes run in parallel, ensure_group (FOR UPDATE) waits for them, so
        // a new group never misses a message committed around its creation.
        c.query_one_raw(stmt(
            backend,
            "SELECT stream FROM queue_streams WHERE stream = $1 FOR KEY SHARE",
            [stream.into()],
        ))
        .await
        .map_err(map_db)?;
    }
    let now = now_ms();
    let mut seqs = Vec::with_capacity(msgs.len());
    for chunk in msgs.chunks(CHUNK) {
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 6);
        let mut rows = Vec::with_capacity(chunk.len());
        for (i, m) in chunk.iter().enumerate() {
            rows.push(format!("({})", placeholders(i * 6 + 1, 6)));
            values.push(stream.into());
            values.push(m.key.as_str().into());
            values.push(i64::from(m.priority.rank()).into());
            values.push(headers_to_json(&m.headers)?.into());
            values.push(m.body.clone().into());
            values.push(now.into());
        }
        let sql = format!(
            "INSERT INTO queue_messages (stream, msg_key, priority, headers, body, created_at) \
             VALUES {} RETURNING seq",
            rows.join(", ")
        );
        let returned = c
            .query_all_raw(stmt(backend, &sql, values))
            .await
            .map_err(map_db)?;
        // Both engines assign the keys in VALUES order, so ascending seqs match `chunk`.
        let mut chunk_seqs = returned
            .iter()
            .map(|r| get::<i64>(r, 0))
            .collect::<Result<Vec<_>, _>>()?;
        if chunk_seqs.len() != chunk.len() {
            return Err(QueueError::Unknown(anyhow::anyhow!(
                "inserted {} queue messages, expected {}",
                chunk_seqs.len(),
                chunk.len()
            )));
        }
        chunk_seqs.sort_unstable();
        let fan_out = format!(
            "INSERT INTO queue_deliveries (stream, seq, grp, priority, state, attempts) \
             SELECT m.stream, m.seq, g.grp, m.priority, {READY}, 0 \
             FROM queue_messages m JOIN queue_groups g ON g.stream = m.stream \
             WHERE m.stream = $1 AND m.seq IN ({})",
            placeholders(2, chunk_seqs.len())
        );
        let mut args: Vec<Value> = vec![stream.into()];
        args.extend(chunk_seqs.iter().map(|&s| Value::from(s)));
        c.execute_raw(stmt(backend, &fan_out, args))
            .await
            .map_err(map_db)?;
        seqs.extend(chunk_seqs);
    }
    Ok(seqs)
}

#[async_trait::async_trait]
impl Queue for EmbeddedQueue {
    #[tracing::instrument(level = "debug", skip(self, msgs), fields(n = msgs.len()))]
    async fn publish(&self, stream: &str, msgs: &[OutMessage]) -> Result<Vec<String>, QueueError> {
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        let txn = self.db.begin().await.map_err(map_db)?;
        let seqs = insert_messages(&txn, stream, msgs).await?;
        txn.commit().await.map_err(map_db)?;
        self.published.notify_waiters();
        Ok(seqs.into_iter().map(|s| s.to_string()).collect())
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), QueueError> {
        if self.group_exists(stream, group).await? {
            return Ok(());
        }
        let backend = self.backend();
        let txn = self.db.begin().await.map_err(map_db)?;
        txn.execute_raw(stmt(
            backend,
            "INSERT INTO queue_streams (stream) VALUES ($1) ON CONFLICT DO NOTHING",
            [stream.into()],
        ))
        .await
        .map_err(map_db)?;
        if backend == DbBackend::Postgres {
            txn.query_one_raw(stmt(
                backend,
                "SELECT stream FROM queue_streams WHERE stream = $1 FOR UPDATE",
                [stream.into()],
            ))
            .await
            .map_err(map_db)?;
        }
        let created = txn
            .execute_raw(stmt(
                backend,
                "INSERT INTO queue_groups (stream, grp, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT DO NOTHING",
                [stream.into(), group.into(), now_ms().into()],
            ))
            .await
            .map_err(map_db)?
            .rows_affected();
        if created > 0 {
            // A new group starts at the beginning of the stream.
            txn.execute_raw(stmt(
                backend,
                &format!(
                    "INSERT INTO queue_deliveries (stream, seq, grp, priority, state, attempts) \
                     SELECT stream, seq, $2, priority, {READY}, 0 FROM queue_messages WHERE stream = $1"
                ),
                [stream.into(), group.into()],
            ))
            .await
            .map_err(map_db)?;
        }
        txn.commit().await.map_err(map_db)?;
        self.published.notify_waiters();
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn consume(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
        block: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + block;
        let mut checked_group = false;
        loop {
            // Register for wake-ups before looking, so a publish in between is not missed.
            let notified = self.published.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let got = self.take(stream, group, consumer, max, None).await?;
            if !got.is_empty() {
                return Ok(got);
            }
            if !checked_group {
                if !self.group_exists(stream, group).await? {
                    return Err(QueueError::NotFound(format!("group {group} of stream {stream}")));
                }
                checked_group = true;
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wait = (deadline - now).min(self.poll);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), QueueError> {
        let seqs: Vec<i64> = ids
            .iter()
            .filter_map(|id| {
                let seq = id.parse::<i64>().ok();
                if seq.is_none() {
                    tracing::warn!(id, "ignoring ack of a malformed queue message id");
                }
                seq
            })
            .collect();
        for chunk in seqs.chunks(CHUNK) {
            let sql = format!(
                "DELETE FROM queue_deliveries WHERE stream = $1 AND grp = $2 AND state = {PENDING} \
                 AND seq IN ({})",
                placeholders(3, chunk.len())
            );
            let mut args: Vec<Value> = vec![stream.into(), group.into()];
            args.extend(chunk.iter().map(|&s| Value::from(s)));
            self.db
                .execute_raw(stmt(self.backend(), &sql, args))
                .await
                .map_err(map_db)?;
        }
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, delivery), fields(id = %delivery.id))]
    async fn fail(
        &self,
        stream: &str,
        group: &str,
        delivery: &Delivery,
        reason: &str,
        max_attempts: u32,
    ) -> Result<FailOutcome, QueueError> {
        let not_pending = || {
            QueueError::NotFound(format!(
                "message {} is not pending for group {group}",
                delivery.id
            ))
        };
        let seq: i64 = delivery.id.parse().map_err(|_| not_pending())?;
        let backend = self.backend();
        let txn = self.db.begin().await.map_err(map_db)?;
        let row = txn
            .query_one_raw(stmt(
                backend,
                &format!(
                    "UPDATE queue_deliveries SET last_error = $4 \
                     WHERE stream = $1 AND grp = $2 AND seq = $3 AND state = {PENDING} RETURNING attempts"
                ),
                [stream.into(), group.into(), seq.into(), reason.into()],
            ))
            .await
            .map_err(map_db)?;
        let Some(row) = row else {
            return Err(not_pending());
        };
        let attempts: i64 = get(&row, 0)?;
        if attempts < i64::from(max_attempts.max(1)) {
            txn.commit().await.map_err(map_db)?;
            tracing::debug!(attempt = attempts, reason, "delivery failed; will retry");
            return Ok(FailOutcome::WillRetry);
        }
        txn.execute_raw(stmt(
            backend,
            "INSERT INTO queue_dead_letters \
             (stream, grp, orig_seq, msg_key, priority, headers, body, attempts, reason, failed_at) \
             SELECT stream, $2, seq, msg_key, priority, headers, body, $4, $5, $6 \
             FROM queue_messages WHERE stream = $1 AND seq = $3",
            [
                stream.into(),
                group.into(),
                seq.into(),
                attempts.into(),
                reason.into(),
                now_ms().into(),
            ],
        ))
        .await
        .map_err(map_db)?;
        txn.execute_raw(stmt(
            backend,
            "DELETE FROM queue_deliveries WHERE stream = $1 AND grp = $2 AND seq = $3",
            [stream.into(), group.into(), seq.into()],
        ))
        .await
        .map_err(map_db)?;
        txn.commit().await.map_err(map_db)?;
        tracing::warn!(attempts, reason, key = %delivery.key, "message dead-lettered");
        Ok(FailOutcome::DeadLettered)
    }

    async fn claim_stuck(
        &self,
        stream: &str,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        max: usize,
    ) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let cutoff = now_ms().saturating_sub(i64::try_from(millis(min_idle)).unwrap_or(i64::MAX));
        let got = self.take(stream, group, consumer, max, Some(cutoff)).await?;
        if got.is_empty() && !self.group_exists(stream, group).await? {
            return Err(QueueError::NotFound(format!("group {group} of stream {stream}")));
        }
        Ok(got)
    }

    async fn lag(&self, stream: &str, group: &str) -> Result<u64, QueueError> {
        if !self.group_exists(stream, group).await? {
            return Err(QueueError::NotFound(format!("group {group} of stream {stream}")));
        }
        let row = self
            .db
            .query_one_raw(stmt(
                self.backend(),
                "SELECT COUNT(*) FROM queue_deliveries WHERE stream = $1 AND grp = $2",
                [stream.into(), group.into()],
            ))
            .await
            .map_err(map_db)?;
        let n: i64 = match row {
            Some(r) => get(&r, 0)?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn dead_letters(&self, stream: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows = self
            .db
            .query_all_raw(stmt(
                self.backend(),
                "SELECT id, msg_key, priority, headers, body, attempts, reason, failed_at \
                 FROM queue_dead_letters WHERE stream = $1 ORDER BY id LIMIT $2",
                [stream.into(), i64::try_from(limit).unwrap_or(i64::MAX).into()],
            ))
            .await
            .map_err(map_db)?;
        rows.iter()
            .map(|r| {
                let headers: String = get(r, 3)?;
                let attempts: i64 = get(r, 5)?;
                let failed_at: i64 = get(r, 7)?;
                Ok(DeadLetter {
                    id: get::<i64>(r, 0)?.to_string(),
                    stream: stream.to_owned(),
                    key: get(r, 1)?,
                    priority: priority_from_rank(get(r, 2)?)?,
                    headers: headers_from_json(headers.as_bytes())?,
                    body: get(r, 4)?,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    reason: get(r, 6)?,
                    failed_at: chrono::DateTime::from_timestamp_millis(failed_at).unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn replay_dead_letter(&self, stream: &str, id: &str) -> Result<(), QueueError> {
        let unknown = || QueueError::NotFound(format!("dead letter `{id}` of stream {stream}"));
        let dead_id: i64 = id.parse().map_err(|_| unknown())?;
        let backend = self.backend();
        let txn = self.db.begin().await.map_err(map_db)?;
        let row = txn
            .query_one_raw(stmt(
                backend,
                "DELETE FROM queue_dead_letters WHERE stream = $1 AND id = $2 \
                 RETURNING msg_key, priority, headers, body",
                [stream.into(), dead_id.into()],
            ))
            .await
            .map_err(map_db)?;
        let Some(row) = row else {
            return Err(unknown());
        };
        let headers: String = get(&row, 2)?;
        let msg = OutMessage {
            key: get(&row, 0)?,
            priority: priority_from_rank(get(&row, 1)?)?,
            headers: headers_from_json(headers.as_bytes())?,
            body: get(&row, 3)?,
        };
        insert_messages(&txn, stream, std::slice::from_ref(&msg)).await?;
        txn.commit().await.map_err(map_db)?;
        self.published.notify_waiters();
        Ok(())
    }

    async fn ping(&self) -> Result<(), QueueError> {
        self.db.ping().await.map_err(map_db)
    }
}

fn stmt(backend: DbBackend, sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

/// `$first, $first+1, …` (`n` of them); sqlx binds `$N` on SQLite too.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn get<T: sea_orm::TryGetable>(row: &QueryResult, idx: usize) -> Result<T, QueueError> {
    row.try_get_by_index(idx)
        .map_err(|e| QueueError::Unknown(anyhow::anyhow!("queue row: {e}")))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn map_db(e: DbErr) -> QueueError {
    let down = match &e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(s)) | DbErr::Query(RuntimeErr::SqlxError(s)) => sqlx_down(s),
        _ => false,
    };
    if down {
        QueueError::Unavailable(format!("queue database: {e}"))
    } else {
        QueueError::Unknown(anyhow::Error::new(e))
    }
}

/// Whether a driver error means "the database is unreachable or busy, try again later".
fn sqlx_down(e: &sea_orm::sqlx::Error) -> bool {
    use sea_orm::sqlx::Error as E;
    match e {
        E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => true,
        E::Database(db) => db.code().is_some_and(|c| {
            // PostgreSQL class 08 (connection), 57P0x (shutdown), 53xxx (resources);
            // SQLite 5/6 (BUSY/LOCKED after the busy timeout).
            c.starts_with("08") || c.starts_with("57P") || c.starts_with("53") || c == "5" || c == "6"
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_from_first() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 1), "$1");
    }
}
