//! Rate limiting at the gateway (R-SEC-2): the stores behind the
//! [`Limiter`](etx_gateway_core::ratelimit::Limiter) port and the three limits every request
//! is checked against.
//!
//! # Limits
//! * **per client IP**, checked *before* authentication, so a flood of guessed keys is answered
//!   `429` instead of costing a key lookup each; every request, good key or not, counts once.
//!   The address is the TCP peer, as in the principal's `client_ip`: behind a load balancer
//!   that does not keep client addresses (PROXY protocol, L4 pass-through) all clients share
//!   the balancer's address and this limit must be raised accordingly.
//! * **per API key** and **per organisation**, checked right after authentication. An
//!   organisation may have its own per-organisation rate (`[rate_limits.orgs."<org id>"]`,
//!   keyed by the organisation's UUID, since the authenticated caller carries no org code).
//!
//! A refused request gets `429` `rate_limited` problem+json with `Retry-After` in whole seconds
//! (rounded up, at least 1) and `RateLimit-Limit` (the burst) / `RateLimit-Remaining: 0`. A
//! refused request consumes nothing from the limit that refused it; limits checked before it
//! (IP, then key, then organisation) keep the request counted.
//!
//! # Stores
//! * [`MemoryLimiter`] — one process (all-in-one, or one gateway alone): a sharded
//!   `Mutex<HashMap>` of theoretical arrival times on a monotonic clock. Idle keys (whose TAT
//!   is in the past, i.e. back at full burst) are swept from a shard every
//!   [`SWEEP_EVERY`] decisions in it, so memory follows the keys active in the last burst
//!   window, not every key ever seen.
//! * [`RedisLimiter`] — several gateway instances sharing one limit: GCRA in one Lua script
//!   (read, decide, write atomically on Redis's own `TIME`, so instance clocks do not matter),
//!   keys `<queue.key_prefix>rl:<kind>:<id>` with a TTL of the time left to full burst.
//!
//! # When Redis is unreachable: fail open to local limits
//! The Redis limiter then decides with its own in-memory fallback, so each gateway instance
//! limits alone (with `n` instances, a caller may get up to `n` times its limit) rather than
//! refusing everything (fail closed) or limiting nothing. After a failure Redis is not tried
//! again for [`RETRY_REDIS_AFTER`], so an unreachable Redis adds no connection timeout to every
//! request; a warning is logged at most once per [`WARN_EVERY`]. When Redis answers again, the
//! shared limits resume (the local state of the outage is simply dropped).

use actix_web::HttpResponse;
use actix_web::ResponseError;
use actix_web::http::header::{HeaderName, HeaderValue};
use deadpool_redis::{Pool, Runtime};
use etx_domain::ErrorCode;
use etx_gateway_core::ratelimit::{Decision, Limiter, LimiterError, Rate, decide};
use etx_http_kit::ApiError;
use redis::Script;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Decisions in one shard between two sweeps of its idle keys.
pub const SWEEP_EVERY: u32 = 1024;
/// How long the Redis limiter uses only its local fallback after Redis failed.
pub const RETRY_REDIS_AFTER: Duration = Duration::from_secs(1);
/// Least time between two "Redis unreachable" warnings.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

const SHARDS: usize = 32;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded state stays consistent even if a holder panicked (plain map updates).
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct Shard {
    tats: HashMap<String, i64>,
    ops: u32,
}

/// In-process limiter: sharded maps of theoretical arrival times.
#[derive(Debug)]
pub struct MemoryLimiter {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    epoch: Instant,
}

impl Default for MemoryLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> i64 {
        i64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(i64::MAX)
    }

    /// Decides synchronously (the lock is never held across an await).
    pub fn decide(&self, key: &str, rate: Rate) -> Decision {
        let idx = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        let now = self.now();
        let mut shard = lock(&self.shards[idx]);
        shard.ops += 1;
        if shard.ops >= SWEEP_EVERY {
            shard.ops = 0;
            shard.tats.retain(|_, tat| *tat > now);
        }
        let d = decide(shard.tats.get(key).copied(), now, rate);
        match shard.tats.get_mut(key) {
            Some(t) => *t = d.new_tat,
            None => {
                shard.tats.insert(key.to_owned(), d.new_tat);
            }
        }
        d
    }

    /// Keys currently held (active within their last burst window, or not swept yet).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).tats.len()).sum()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl Limiter for MemoryLimiter {
    async fn check(&self, key: &str, rate: Rate) -> Result<Decision, LimiterError> {
        Ok(self.decide(key, rate))
    }
}

/// GCRA on Redis's clock, in microseconds (a Lua number holds epoch microseconds exactly).
/// ARGV: interval (µs, may be fractional), burst. Returns {allowed, retry_after_us, remaining,
/// tat_us}. Mirrors [`decide`], including the clamp of a TAT beyond a full burst.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local ceiling = now + tolerance
local stored = tonumber(redis.call('GET', KEYS[1]))
local tat = stored or now
if tat < now then tat = now end
if tat > ceiling then tat = ceiling end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  if stored ~= nil and stored > tat then
    redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  end
  return {0, math.ceil(allow_at - now), 0, math.floor(tat)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0, math.floor((ceiling - new_tat) / interval), math.floor(new_tat)}
";

/// GCRA over several keys at once, all or nothing: `KEYS[i]` with `ARGV[2i-1]` = interval (µs)
/// and `ARGV[2i]` = burst. Refused if any key refuses (then nothing is stored); returns
/// `{allowed, retry_after_us, remaining (least of all), index of the refusing key (1-based) or 0}`.
const GCRA_ALL_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local new = {}
local retry = 0
local refused_by = 0
local remaining = nil
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = interval * tonumber(ARGV[2 * i])
  local ceiling = now + tolerance
  local tat = tonumber(redis.call('GET', KEYS[i])) or now
  if tat < now then tat = now end
  if tat > ceiling then tat = ceiling end
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance
  if now < allow_at and math.ceil(allow_at - now) > retry then
    retry = math.ceil(allow_at - now)
    refused_by = i
  end
  new[i] = new_tat
  local rem = math.floor((ceiling - new_tat) / interval)
  if remaining == nil or rem < remaining then remaining = rem end
end
if refused_by > 0 then return {0, retry, 0, refused_by} end
for i = 1, #KEYS do
  redis.call('SET', KEYS[i], string.format('%.0f', new[i]), 'PX', math.ceil((new[i] - now) / 1000) + 1)
end
return {1, 0, remaining or 0, 0}
";

#[derive(Debug, Default)]
struct Health {
    skip_until: Option<Instant>,
    last_warn: Option<Instant>,
}

/// Limiter shared by every gateway instance through Redis, failing open to a local
/// [`MemoryLimiter`] while Redis is unreachable (see the module docs).
pub struct RedisLimiter {
    pool: Pool,
    prefix: String,
    script: Script,
    script_all: Script,
    fallback: MemoryLimiter,
    health: Mutex<Health>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// A limiter with its own small pool on `url`; keys start with `key_prefix` (e.g.
    /// `etx:rl:`). Does not connect yet. Timeouts are short (500 ms connect and response,
    /// 500 ms pool wait): a limit check must not hold a request up for long.
    pub fn connect(url: &str, key_prefix: &str) -> anyhow::Result<Self> {
        let conn_cfg = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)));
        let manager = deadpool_redis::Manager::new_with_config(url, conn_cfg)
            .map_err(|e| anyhow::anyhow!("invalid Redis URL for rate limits: {e}"))?;
        let pool = Pool::builder(manager)
            .max_size(128)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_millis(500)))
            .create_timeout(Some(Duration::from_millis(500)))
            .recycle_timeout(Some(Duration::from_millis(500)))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the rate-limit Redis pool: {e}"))?;
        Ok(Self {
            pool,
            prefix: key_prefix.to_owned(),
            script: Script::new(GCRA_LUA),
            script_all: Script::new(GCRA_ALL_LUA),
            fallback: MemoryLimiter::new(),
            health: Mutex::new(Health::default()),
        })
    }

    /// The Redis key of a limited key.
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    async fn shared(&self, key: &str, rate: Rate) -> Result<Decision, LimiterError> {
        let unavailable = |e: &dyn std::fmt::Display| LimiterError::Unavailable(e.to_string());
        let mut conn = self.pool.get().await.map_err(|e| unavailable(&e))?;
        let interval_us = rate.interval_nanos() as f64 / 1000.0;
        let (allowed, retry_us, remaining, tat_us): (i64, i64, i64, i64) = self
            .script
            .key(self.redis_key(key))
            .arg(interval_us)
            .arg(rate.burst())
            .invoke_async(&mut conn)
            .await
            .map_err(|e| unavailable(&e))?;
        Ok(Decision {
            allowed: allowed == 1,
            new_tat: tat_us.saturating_mul(1000),
            retry_after: Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)),
            remaining: u32::try_from(remaining).unwrap_or(0),
            limit: rate.burst(),
        })
    }
}

impl RedisLimiter {
    /// All the checks in one atomic script call (one round trip per request).
    async fn shared_all(&self, checks: &[(String, Rate)]) -> Result<Decision, LimiterError> {
        let unavailable = |e: &dyn std::fmt::Display| LimiterError::Unavailable(e.to_string());
        let mut conn = self.pool.get().await.map_err(|e| unavailable(&e))?;
        let mut inv = self.script_all.prepare_invoke();
        for (key, rate) in checks {
            inv.key(self.redis_key(key))
                .arg(rate.interval_nanos() as f64 / 1000.0)
                .arg(rate.burst());
        }
        let (allowed, retry_us, remaining, refused_by): (i64, i64, i64, i64) =
            inv.invoke_async(&mut conn).await.map_err(|e| unavailable(&e))?;
        let limit = usize::try_from(refused_by)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| checks.get(i))
            .or(checks.first())
            .map_or(0, |(_, r)| r.burst());
        Ok(Decision {
            allowed: allowed == 1,
            new_tat: 0,
            retry_after: Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)),
            remaining: u32::try_from(remaining).unwrap_or(0),
            limit,
        })
    }

    /// Whether Redis is being skipped after a recent failure.
    fn skipping(&self) -> bool {
        lock(&self.health).skip_until.is_some_and(|t| Instant::now() < t)
    }

    /// Records a failure: skip Redis for a while, warn at most every [`WARN_EVERY`].
    fn failed(&self, e: &LimiterError) {
        let now = Instant::now();
        let mut h = lock(&self.health);
        h.skip_until = Some(now + RETRY_REDIS_AFTER);
        if h.last_warn.is_none_or(|t| now.duration_since(t) >= WARN_EVERY) {
            h.last_warn = Some(now);
            tracing::warn!(error = %e, "rate-limit Redis unreachable; this gateway limits alone until it is back");
        }
    }
}

#[async_trait::async_trait]
impl Limiter for RedisLimiter {
    /// Never fails: while Redis is unreachable it answers from the local fallback.
    async fn check(&self, key: &str, rate: Rate) -> Result<Decision, LimiterError> {
        if !self.skipping() {
            match self.shared(key, rate).await {
                Ok(d) => return Ok(d),
                Err(e) => self.failed(&e),
            }
        }
        Ok(self.fallback.decide(key, rate))
    }

    /// One round trip for all the limits of a request; the local fallback while Redis is down.
    async fn check_all(&self, checks: &[(String, Rate)]) -> Result<Decision, LimiterError> {
        if !self.skipping() {
            match self.shared_all(checks).await {
                Ok(d) => return Ok(d),
                Err(e) => self.failed(&e),
            }
        }
        self.fallback.check_all(checks).await
    }
}

/// The three limits of the gateway and the store they are kept in (app data of the
/// authenticated scopes).
#[derive(Debug, Clone)]
pub struct RateLimits {
    limiter: Arc<dyn Limiter>,
    per_key: Rate,
    per_org: Rate,
    per_ip: Rate,
    org_overrides: HashMap<String, Rate>,
}

impl RateLimits {
    /// Limits kept in `limiter`; `org_overrides` maps an organisation id (UUID text) to its
    /// own per-organisation rate.
    pub fn new(
        limiter: Arc<dyn Limiter>,
        per_key: Rate,
        per_org: Rate,
        per_ip: Rate,
        org_overrides: HashMap<String, Rate>,
    ) -> Self {
        Self {
            limiter,
            per_key,
            per_org,
            per_ip,
            org_overrides,
        }
    }

    /// Checks the client-address limit; `Err` is the response to send.
    pub async fn check_ip(&self, ip: &str) -> Result<(), HttpResponse> {
        self.check(&format!("ip:{ip}"), self.per_ip).await
    }

    /// Checks an authenticated request against its client address, API key and organisation
    /// limits at once (one round trip to a shared store); `Err` is the response to send.
    pub async fn check_caller(
        &self,
        ip: Option<&str>,
        key_id: &str,
        org_id: &str,
    ) -> Result<(), HttpResponse> {
        let org_rate = self.org_overrides.get(org_id).copied().unwrap_or(self.per_org);
        let mut checks = Vec::with_capacity(3);
        if let Some(ip) = ip {
            checks.push((format!("ip:{ip}"), self.per_ip));
        }
        checks.push((format!("key:{key_id}"), self.per_key));
        checks.push((format!("org:{org_id}"), org_rate));
        match self.answer(&checks[0].0, self.limiter.check_all(&checks).await) {
            Some(refused) => Err(*refused),
            None => Ok(()),
        }
    }

    async fn check(&self, key: &str, rate: Rate) -> Result<(), HttpResponse> {
        match self.answer(key, self.limiter.check(key, rate).await) {
            Some(refused) => Err(*refused),
            None => Ok(()),
        }
    }

    /// The 429 to send, if the decision refuses. `key` names the limit in the log (for a
    /// combined check, its first limit).
    fn answer(&self, key: &str, decision: Result<Decision, LimiterError>) -> Option<Box<HttpResponse>> {
        match decision {
            Ok(d) if d.allowed => None,
            Ok(d) => {
                tracing::debug!(limit = %key, retry_after_ms = d.retry_after.as_millis() as u64, "request rate-limited at the gateway");
                Some(Box::new(refusal(&d)))
            }
            Err(e) => {
                // A store that cannot answer must not take the API down: fail open.
                tracing::warn!(error = %e, "rate limit not checked");
                None
            }
        }
    }
}

/// The `429` for a refused decision.
pub fn refusal(d: &Decision) -> HttpResponse {
    let mut resp = ApiError::new(ErrorCode::RateLimited)
        .with_retry_after(d.retry_after_secs())
        .error_response();
    let h = resp.headers_mut();
    h.insert(
        HeaderName::from_static("ratelimit-limit"),
        HeaderValue::from(d.limit),
    );
    h.insert(
        HeaderName::from_static("ratelimit-remaining"),
        HeaderValue::from_static("0"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limiter_limits_each_key_alone() {
        let l = MemoryLimiter::new();
        let rate = Rate::new(1.0, 3).unwrap();
        let passed = (0..10).filter(|_| l.decide("a", rate).allowed).count();
        assert_eq!(passed, 3);
        assert!(l.decide("b", rate).allowed);
    }

    #[test]
    fn idle_keys_are_evicted_from_memory() {
        let l = MemoryLimiter::new();
        let fast = Rate::new(1e9, 1).unwrap(); // back to full burst after 1 ns
        for i in 0..5_000 {
            l.decide(&format!("ip:{i}"), fast);
        }
        std::thread::sleep(Duration::from_millis(2));
        // Enough decisions on one key to sweep its shard several times; every shard gets
        // swept once its own counter wraps, so drive all of them.
        for i in 0..(SWEEP_EVERY as usize * SHARDS * 2) {
            l.decide(&format!("hot:{}", i % 64), fast);
        }
        assert!(l.len() < 2_500, "{} keys held", l.len());
    }

    #[tokio::test]
    async fn an_unreachable_redis_fails_open_to_local_limits() {
        let l = RedisLimiter::connect("redis://127.0.0.1:1", "etx:rl:").unwrap();
        let rate = Rate::new(1.0, 2).unwrap();
        let mut passed = 0;
        for _ in 0..5 {
            let d = l.check("key:k", rate).await.unwrap();
            passed += u32::from(d.allowed);
        }
        assert_eq!(passed, 2, "still limited, by the local fallback");
        assert_eq!(l.redis_key("key:k"), "etx:rl:key:k");
    }

    #[test]
    fn a_refusal_is_a_429_with_whole_seconds_to_wait() {
        let d = Decision {
            allowed: false,
            new_tat: 0,
            retry_after: Duration::from_millis(1_200),
            remaining: 0,
            limit: 400,
        };
        let r = refusal(&d);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers().get("retry-after").unwrap(), "2");
        assert_eq!(r.headers().get("ratelimit-limit").unwrap(), "400");
    }
}
