//! Redis Streams adapter of the queue port for the distributed column (DESIGN.md §1, §2).
//!
//! Layout (every key starts with the configured prefix, so tenants and tests never collide):
//!
//! | key | what |
//! |---|---|
//! | `{prefix}{<stream>}:p0`, `:p1`, `:p2` | one Redis stream per priority, high first (R-DATA-2) |
//! | `{prefix}{<stream>}.dead` | the dead-letter stream (`<stream>.dead`) |
//!
//! The logical stream name is wrapped in a Redis Cluster hash tag (`{…}`) so that all keys of
//! one logical stream live in one slot: the Lua scripts below touch several of them atomically.
//!
//! Choices:
//! - **Ids.** A delivery id is `<rank>:<redis id>` (e.g. `0:1712345678901-0`): the rank says
//!   which priority stream holds it. Dead-letter ids are plain ids of the dead stream.
//! - **Priority.** `consume` runs one Lua script doing `XREADGROUP … >` on `:p0`, then `:p1`,
//!   then `:p2`, filling up to `max`, so nothing beyond what is returned is marked pending.
//!   When all three are empty it waits with a plain `XREAD BLOCK` on the three keys (which
//!   delivers nothing to the group) and retries; a blocking `XREADGROUP` on three keys could
//!   hand out up to `3 × COUNT` messages in one reply, more than `max`.
//! - **Attempts** are Redis' own delivery counters in the group's pending entries list (PEL):
//!   1 after `XREADGROUP`, +1 on every `XAUTOCLAIM`. They survive a consumer crash and (with
//!   AOF/RDB) a Redis restart. A replayed dead letter is a new entry, so it starts at 1 again.
//! - **Dead letters.** `fail` at `max_attempts` copies the entry to the dead stream and `XACK`s
//!   it in one Lua script (atomic), so a crash can neither lose nor duplicate it.
//! - **Ack is `XACK` only; no `XDEL`, no trimming.** Streams may have several groups (one per
//!   service), so deleting on one group's ack would lose messages for the others, and
//!   `MAXLEN ~` trimming can drop unacked entries (R-AVAIL). Memory is bounded by operations
//!   (retention tooling), not by the adapter. Redis must run with AOF (`appendfsync everysec`
//!   or `always`) for the "nothing lost" promise to extend to a Redis crash.
//! - **Connections.** A blocked `consume` holds one pooled connection per `XREAD` round (at
//!   most 250 ms, or 2 s with [`RedisQueue::connect`]); size the pool for the number of
//!   concurrent consumers plus publishers.
//! - **Errors.** Connection, timeout and failover errors map to [`QueueError::Unavailable`];
//!   `NOGROUP` maps to [`QueueError::NotFound`].

use crate::{
    DeadLetter, Delivery, FailOutcome, Headers, OutMessage, Queue, QueueError, headers_from_json,
    headers_to_json, millis, priority_from_rank,
};
use deadpool_redis::{Pool, PoolError, Runtime};
use etx_domain::Priority;
use redis::{ErrorKind, RedisError, Script, ServerErrorKind, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// XREADGROUP high → normal → low, filling up to `max`; when nothing was read, also returns the
/// newest id of each priority stream so the caller can wait for anything newer.
/// KEYS: p0 p1 p2. ARGV: group consumer max.
const CONSUME_LUA: &str = r"
local group, consumer = ARGV[1], ARGV[2]
local remaining = tonumber(ARGV[3])
local out = {}
for i = 1, #KEYS do
  if remaining <= 0 then break end
  local res = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', remaining,
                         'STREAMS', KEYS[i], '>')
  if res then
    for _, e in ipairs(res[1][2]) do
      out[#out + 1] = {i - 1, e[1], 1, e[2]}
      remaining = remaining - 1
    end
  end
end
local last = {}
if #out == 0 then
  for i = 1, #KEYS do
    local top = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)
    if top[1] then last[i] = top[1][1] else last[i] = '0-0' end
  end
end
return {out, last}
";

/// XAUTOCLAIM high → normal → low, filling up to `max`, with each entry's delivery count.
/// KEYS: p0 p1 p2. ARGV: group consumer min_idle_ms max.
const CLAIM_LUA: &str = r"
local group, consumer, min_idle = ARGV[1], ARGV[2], ARGV[3]
local remaining = tonumber(ARGV[4])
local out = {}
for i = 1, #KEYS do
  local cursor = '0-0'
  local rounds = 0
  while remaining > 0 and rounds < 100 do
    rounds = rounds + 1
    local res = redis.call('XAUTOCLAIM', KEYS[i], group, consumer, min_idle, cursor,
                           'COUNT', remaining)
    cursor = res[1]
    for _, e in ipairs(res[2]) do
      if type(e) == 'table' and type(e[2]) == 'table' then
        local p = redis.call('XPENDING', KEYS[i], group, e[1], e[1], 1)
        local count = 1
        if p[1] then count = p[1][4] end
        out[#out + 1] = {i - 1, e[1], count, e[2]}
        remaining = remaining - 1
      end
    end
    if cursor == '0-0' then break end
  end
end
return out
";

/// Dead-letters a pending entry once its delivery count reached `max`: XADD to the dead stream
/// and XACK in one atomic step. Returns {status, count}: -1 not pending, 0 retry, 1 dead.
/// KEYS: pkey dead. ARGV: group id max reason stream failed_at_ms rank.
const FAIL_LUA: &str = r"
local group, id = ARGV[1], ARGV[2]
local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
if not p[1] then return {-1, 0} end
local count = tonumber(p[1][4])
if count < tonumber(ARGV[3]) then return {0, count} end
local e = redis.call('XRANGE', KEYS[1], id, id)
if e[1] then
  local args = {KEYS[2], '*', 'stream', ARGV[5], 'group', group, 'orig_id', id,
                'priority', ARGV[7], 'attempts', count, 'reason', ARGV[4], 'failed_at', ARGV[6]}
  local f = e[1][2]
  for j = 1, #f do args[#args + 1] = f[j] end
  redis.call('XADD', unpack(args))
end
redis.call('XACK', KEYS[1], group, id)
return {1, count}
";

/// Moves a dead letter back to its priority stream. Returns the new id, or nil when unknown.
/// KEYS: dead p0 p1 p2. ARGV: dead id.
const REPLAY_LUA: &str = r"
local e = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if not e[1] then return false end
local f = e[1][2]
local m = {}
for j = 1, #f, 2 do m[f[j]] = f[j + 1] end
local rank = tonumber(m['priority']) or 1
if rank < 0 or rank > 2 then rank = 1 end
local nid = redis.call('XADD', KEYS[2 + rank], '*', 'key', m['key'] or '',
                       'headers', m['headers'] or '{}', 'body', m['body'] or '',
                       'replayed_from', ARGV[1])
redis.call('XDEL', KEYS[1], ARGV[1])
return nid
";

/// Entries not yet acked by the group over the three priority streams (the sum of XINFO
/// GROUPS `lag` and `pending`), or -1 when the group does not exist.
/// KEYS: p0 p1 p2. ARGV: group.
const LAG_LUA: &str = r"
local total = 0
for i = 1, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 0 then return -1 end
  local found = false
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[i])) do
    local info = {}
    for j = 1, #g, 2 do info[g[j]] = g[j + 1] end
    if info['name'] == ARGV[1] then
      found = true
      total = total + info['pending']
      if info['lag'] then
        total = total + info['lag']
      else
        total = total + #redis.call('XRANGE', KEYS[i], '(' .. info['last-delivered-id'], '+')
      end
    end
  end
  if not found then return -1 end
end
return total
";

/// The scripts, hashed once.
struct Scripts {
    consume: Script,
    claim: Script,
    fail: Script,
    replay: Script,
    lag: Script,
}

impl Scripts {
    fn new() -> Self {
        Self {
            consume: Script::new(CONSUME_LUA),
            claim: Script::new(CLAIM_LUA),
            fail: Script::new(FAIL_LUA),
            replay: Script::new(REPLAY_LUA),
            lag: Script::new(LAG_LUA),
        }
    }
}

/// The queue port over Redis Streams (deadpool-redis pool).
#[derive(Clone)]
pub struct RedisQueue {
    pool: Pool,
    prefix: String,
    scripts: Arc<Scripts>,
    /// Longest single `XREAD BLOCK` while waiting in `consume`; kept below the connection's
    /// response timeout (redis-rs defaults to 500 ms).
    block_chunk: Duration,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.prefix)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// A queue over an existing pool. Every key starts with `key_prefix` (e.g. `etx:`).
    /// Blocking waits are cut into 250 ms `XREAD`s, below redis-rs' default 500 ms response
    /// timeout.
    pub fn new(pool: Pool, key_prefix: &str) -> Self {
        Self {
            pool,
            prefix: key_prefix.to_owned(),
            scripts: Arc::new(Scripts::new()),
            block_chunk: Duration::from_millis(250),
        }
    }

    /// A queue with its own pool on `url` (`redis://…`). Does not connect yet, so a service
    /// starts while Redis is down; operations then return [`QueueError::Unavailable`] within a
    /// few seconds (2 s connect timeout, 5 s response and pool-wait timeouts).
    pub fn connect(url: &str, key_prefix: &str) -> Result<Self, QueueError> {
        let conn_cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)));
        let manager = deadpool_redis::Manager::new_with_config(url, conn_cfg)
            .map_err(|e| QueueError::Unknown(anyhow::anyhow!("invalid Redis URL: {e}")))?;
        let pool = Pool::builder(manager)
            .max_size(32)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(3)))
            .recycle_timeout(Some(Duration::from_secs(2)))
            .build()
            .map_err(|e| QueueError::Unknown(anyhow::anyhow!("cannot build Redis pool: {e}")))?;
        let mut queue = Self::new(pool, key_prefix);
        queue.block_chunk = Duration::from_secs(2);
        Ok(queue)
    }

    /// The key prefix given at construction.
    pub fn key_prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of one priority stream of `stream`.
    pub fn priority_key(&self, stream: &str, priority: Priority) -> String {
        format!("{}{{{}}}:p{}", self.prefix, stream, priority.rank())
    }

    /// The Redis key of the dead-letter stream of `stream`.
    pub fn dead_letter_key(&self, stream: &str) -> String {
        format!("{}{{{}}}.dead", self.prefix, stream)
    }

    fn priority_keys(&self, stream: &str) -> [String; 3] {
        Priority::ALL.map(|p| self.priority_key(stream, p))
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection, QueueError> {
        self.pool.get().await.map_err(map_pool)
    }

    /// One non-blocking priority read; `last` ids are set only when nothing was read.
    async fn consume_once(
        &self,
        conn: &mut deadpool_redis::Connection,
        stream: &str,
        group: &str,
        consumer: &str,
        max: usize,
    ) -> Result<(Vec<Delivery>, Vec<String>), QueueError> {
        let mut inv = self.scripts.consume.prepare_invoke();
        for k in self.priority_keys(stream) {
            inv.key(k);
        }
        inv.arg(group).arg(consumer).arg(max);
        let reply: Value = inv.invoke_async(conn).await.map_err(map_redis)?;
        let mut parts = v_array(reply)?.into_iter();
        let entries = parts.next().map(v_array).transpose()?.unwrap_or_default();
        let last = parts.next().map(v_array).transpose()?.unwrap_or_default();
        let deliveries = entries
            .into_iter()
            .map(|e| entry_to_delivery(stream, e))
            .collect::<Result<Vec<_>, _>>()?;
        let last = last.into_iter().map(v_string).collect::<Result<Vec<_>, _>>()?;
        Ok((deliveries, last))
    }
}

#[async_trait::async_trait]
impl Queue for RedisQueue {
    #[tracing::instrument(level = "debug", skip(self, msgs), fields(n = msgs.len()))]
    async fn publish(&self, stream: &str, msgs: &[OutMessage]) -> Result<Vec<String>, QueueError> {
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for m in msgs {
            pipe.cmd("XADD")
                .arg(self.priority_key(stream, m.priority))
                .arg("*")
                .arg("key")
                .arg(&m.key)
                .arg("headers")
                .arg(headers_to_json(&m.headers)?)
                .arg("body")
                .arg(m.body.as_slice());
        }
        let mut conn = self.conn().await?;
        let ids: Vec<String> = pipe.query_async(&mut conn).await.map_err(map_redis)?;
        if ids.len() != msgs.len() {
            return Err(QueueError::Unknown(anyhow::anyhow!(
                "XADD returned {} ids for {} messages",
                ids.len(),
                msgs.len()
            )));
        }
        Ok(msgs
            .iter()
            .zip(ids)
            .map(|(m, id)| format!("{}:{id}", m.priority.rank()))
            .collect())
    }

    async fn ensure_group(&self, stream: &str, group: &str) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        for key in self.priority_keys(stream) {
            let res: Result<Value, RedisError> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&key)
                .arg(group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut conn)
                .await;
            match res {
                Ok(_) => {}
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                Err(e) => return Err(map_redis(e)),
            }
        }
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
        loop {
            // A fresh pooled connection per round: a blocking XREAD holds its connection, so
            // holding one for the whole `block` would starve other users of a small pool.
            let mut conn = self.conn().await?;
            let (deliveries, last) = self.consume_once(&mut conn, stream, group, consumer, max).await?;
            if !deliveries.is_empty() {
                return Ok(deliveries);
            }
            let now = Instant::now();
            if now >= deadline || last.len() != 3 {
                return Ok(Vec::new());
            }
            // Wait for anything newer than what the group has already seen; this delivers
            // nothing, so the next round's XREADGROUP still hands out in priority order.
            let wait = (deadline - now)
                .min(self.block_chunk)
                .max(Duration::from_millis(1));
            redis::cmd("XREAD")
                .arg("COUNT")
                .arg(1)
                .arg("BLOCK")
                .arg(millis(wait))
                .arg("STREAMS")
                .arg(&self.priority_keys(stream)[..])
                .arg(&last[..])
                .exec_async(&mut conn)
                .await
                .map_err(map_redis)?;
        }
    }

    async fn ack(&self, stream: &str, group: &str, ids: &[String]) -> Result<(), QueueError> {
        let mut by_rank: BTreeMap<u8, Vec<&str>> = BTreeMap::new();
        for id in ids {
            match parse_id(id) {
                Some((p, rid)) => by_rank.entry(p.rank()).or_default().push(rid),
                None => tracing::warn!(id, "ignoring ack of a malformed queue message id"),
            }
        }
        if by_rank.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (rank, rids) in &by_rank {
            let p = Priority::from_rank(*rank).unwrap_or_default();
            pipe.cmd("XACK")
                .arg(self.priority_key(stream, p))
                .arg(group)
                .arg(&rids[..]);
        }
        let mut conn = self.conn().await?;
        pipe.exec_async(&mut conn).await.map_err(map_redis)?;
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
        let (p, rid) = parse_id(&delivery.id)
            .ok_or_else(|| QueueError::NotFound(format!("malformed message id `{}`", delivery.id)))?;
        let mut conn = self.conn().await?;
        let reply: Value = self
            .scripts
            .fail
            .key(self.priority_key(stream, p))
            .key(self.dead_letter_key(stream))
            .arg(group)
            .arg(rid)
            .arg(max_attempts.max(1))
            .arg(reason)
            .arg(stream)
            .arg(chrono::Utc::now().timestamp_millis())
            .arg(p.rank())
            .invoke_async(&mut conn)
            .await
            .map_err(map_redis)?;
        let mut parts = v_array(reply)?.into_iter();
        let status = parts.next().map(v_int).transpose()?.unwrap_or(-1);
        let count = parts.next().map(v_int).transpose()?.unwrap_or(0);
        match status {
            0 => {
                tracing::debug!(attempt = count, reason, "delivery failed; will retry");
                Ok(FailOutcome::WillRetry)
            }
            1 => {
                tracing::warn!(attempts = count, reason, key = %delivery.key, "message dead-lettered");
                Ok(FailOutcome::DeadLettered)
            }
            _ => Err(QueueError::NotFound(format!(
                "message {} is not pending for group {group}",
                delivery.id
            ))),
        }
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
        let mut inv = self.scripts.claim.prepare_invoke();
        for k in self.priority_keys(stream) {
            inv.key(k);
        }
        inv.arg(group).arg(consumer).arg(millis(min_idle)).arg(max);
        let mut conn = self.conn().await?;
        let reply: Value = inv.invoke_async(&mut conn).await.map_err(map_redis)?;
        v_array(reply)?
            .into_iter()
            .map(|e| entry_to_delivery(stream, e))
            .collect()
    }

    async fn lag(&self, stream: &str, group: &str) -> Result<u64, QueueError> {
        let mut inv = self.scripts.lag.prepare_invoke();
        for k in self.priority_keys(stream) {
            inv.key(k);
        }
        inv.arg(group);
        let mut conn = self.conn().await?;
        let n: i64 = inv.invoke_async(&mut conn).await.map_err(map_redis)?;
        u64::try_from(n).map_err(|_| QueueError::NotFound(format!("group {group} of stream {stream}")))
    }

    async fn dead_letters(&self, stream: &str, limit: usize) -> Result<Vec<DeadLetter>, QueueError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let reply: Value = redis::cmd("XRANGE")
            .arg(self.dead_letter_key(stream))
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut conn)
            .await
            .map_err(map_redis)?;
        v_array(reply)?
            .into_iter()
            .map(|e| entry_to_dead_letter(stream, e))
            .collect()
    }

    async fn replay_dead_letter(&self, stream: &str, id: &str) -> Result<(), QueueError> {
        if !is_redis_id(id) {
            return Err(QueueError::NotFound(format!(
                "dead letter `{id}` of stream {stream}"
            )));
        }
        let mut inv = self.scripts.replay.key(self.dead_letter_key(stream));
        for k in self.priority_keys(stream) {
            inv.key(k);
        }
        inv.arg(id);
        let mut conn = self.conn().await?;
        let reply: Value = inv.invoke_async(&mut conn).await.map_err(map_redis)?;
        match reply {
            Value::Nil => Err(QueueError::NotFound(format!(
                "dead letter `{id}` of stream {stream}"
            ))),
            _ => Ok(()),
        }
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(map_redis)?;
        Ok(())
    }
}

/// `<rank>:<redis id>` → (priority, redis id).
fn parse_id(id: &str) -> Option<(Priority, &str)> {
    let (rank, rid) = id.split_once(':')?;
    let p = Priority::from_rank(rank.parse().ok()?)?;
    is_redis_id(rid).then_some((p, rid))
}

/// Whether `s` is `<ms>-<seq>`.
fn is_redis_id(s: &str) -> bool {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    s.split_once('-').is_some_and(|(a, b)| digits(a) && digits(b))
}

/// One `{rank, id, delivery count, {field, value, …}}` script entry → a delivery.
fn entry_to_delivery(stream: &str, entry: Value) -> Result<Delivery, QueueError> {
    let mut it = v_array(entry)?.into_iter();
    let mut next = || it.next().ok_or_else(|| corrupt("short script entry"));
    let rank = v_int(next()?)?;
    let rid = v_string(next()?)?;
    let count = v_int(next()?)?;
    let mut fields = fields_map(next()?)?;
    let priority = priority_from_rank(rank)?;
    Ok(Delivery {
        id: format!("{rank}:{rid}"),
        stream: stream.to_owned(),
        key: take_string(&mut fields, "key")?,
        priority,
        headers: headers_of(&mut fields)?,
        body: fields.remove("body").unwrap_or_default(),
        attempt: u32::try_from(count.max(1)).unwrap_or(u32::MAX),
    })
}

/// One `[id, [field, value, …]]` entry of the dead stream → a dead letter.
fn entry_to_dead_letter(stream: &str, entry: Value) -> Result<DeadLetter, QueueError> {
    let mut it = v_array(entry)?.into_iter();
    let id = v_string(it.next().ok_or_else(|| corrupt("short stream entry"))?)?;
    let mut fields = fields_map(it.next().ok_or_else(|| corrupt("short stream entry"))?)?;
    let rank: i64 = take_string(&mut fields, "priority")?.parse().unwrap_or(1);
    let attempts: u32 = take_string(&mut fields, "attempts")?.parse().unwrap_or(0);
    let failed_ms: i64 = take_string(&mut fields, "failed_at")?.parse().unwrap_or(0);
    Ok(DeadLetter {
        id,
        stream: stream.to_owned(),
        key: take_string(&mut fields, "key")?,
        priority: priority_from_rank(rank)?,
        headers: headers_of(&mut fields)?,
        body: fields.remove("body").unwrap_or_default(),
        attempts,
        reason: take_string(&mut fields, "reason")?,
        failed_at: chrono::DateTime::from_timestamp_millis(failed_ms).unwrap_or_default(),
    })
}

fn fields_map(v: Value) -> Result<BTreeMap<String, Vec<u8>>, QueueError> {
    let flat = v_array(v)?;
    let mut map = BTreeMap::new();
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        map.insert(v_string(k)?, v_bytes(v)?);
    }
    Ok(map)
}

fn take_string(fields: &mut BTreeMap<String, Vec<u8>>, name: &str) -> Result<String, QueueError> {
    String::from_utf8(fields.remove(name).unwrap_or_default())
        .map_err(|_| corrupt(&format!("field `{name}` is not UTF-8")))
}

fn headers_of(fields: &mut BTreeMap<String, Vec<u8>>) -> Result<Headers, QueueError> {
    headers_from_json(&fields.remove("headers").unwrap_or_default())
}

fn corrupt(what: &str) -> QueueError {
    QueueError::Unknown(anyhow::anyhow!("unexpected Redis reply: {what}"))
}

fn v_array(v: Value) -> Result<Vec<Value>, QueueError> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        other => Err(corrupt(&format!("expected an array, got {other:?}"))),
    }
}

fn v_bytes(v: Value) -> Result<Vec<u8>, QueueError> {
    match v {
        Value::BulkString(b) => Ok(b),
        Value::SimpleString(s) => Ok(s.into_bytes()),
        Value::Int(i) => Ok(i.to_string().into_bytes()),
        Value::Okay => Ok(b"OK".to_vec()),
        other => Err(corrupt(&format!("expected a string, got {other:?}"))),
    }
}

fn v_string(v: Value) -> Result<String, QueueError> {
    String::from_utf8(v_bytes(v)?).map_err(|_| corrupt("string is not UTF-8"))
}

fn v_int(v: Value) -> Result<i64, QueueError> {
    match v {
        Value::Int(i) => Ok(i),
        other => v_string(other)?
            .parse()
            .map_err(|_| corrupt("expected an integer")),
    }
}

fn map_pool(e: PoolError) -> QueueError {
    match e {
        PoolError::Backend(e) => QueueError::Unavailable(format!("cannot connect to Redis: {e}")),
        other => QueueError::Unavailable(format!("Redis pool: {other}")),
    }
}

fn map_redis(e: RedisError) -> QueueError {
    let down = e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
    if down {
        return QueueError::Unavailable(format!("Redis: {e}"));
    }
    // Inside a script the NOGROUP code may arrive wrapped in the script error text.
    if e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP") {
        return QueueError::NotFound(format!("consumer group: {e}"));
    }
    QueueError::Unknown(anyhow::Error::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_garbage() {
        assert_eq!(parse_id("0:1712-0"), Some((Priority::High, "1712-0")));
        assert_eq!(parse_id("2:1-15"), Some((Priority::Low, "1-15")));
        assert_eq!(parse_id("3:1-15"), None);
        assert_eq!(parse_id("1:1712"), None);
        assert_eq!(parse_id("1712-0"), None);
        assert_eq!(parse_id("1:a-0"), None);
    }

    #[test]
    fn keys_share_one_cluster_slot_per_stream() {
        let pool = deadpool_redis::Config::from_url("redis://127.0.0.1:1")
            .create_pool(Some(Runtime::Tokio1))
            .unwrap();
        let q = RedisQueue::new(pool, "etx:");
        assert_eq!(
            q.priority_key("records.received", Priority::High),
            "etx:{records.received}:p0"
        );
        assert_eq!(
            q.dead_letter_key("records.received"),
            "etx:{records.received}.dead"
        );
    }
}
