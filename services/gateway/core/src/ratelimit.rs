//! Rate limiting (R-SEC-2) by the Generic Cell Rate Algorithm, free of any framework or store.
//!
//! GCRA keeps one number per limited key: its *theoretical arrival time* (TAT), the instant at
//! which the key would be back to a full burst if it sent nothing more. A [`Rate`] of `r`
//! requests per second with a burst of `b` lets a fresh key send `b` requests at once and then
//! one every `1/r` seconds; a key that keeps under `r` never waits. The decision is the pure
//! function [`decide`]; stores (memory, Redis) only keep the TAT between calls and implement the
//! [`Limiter`] port.
//!
//! Times are `i64` nanoseconds on any clock that the store keeps consistent (a monotonic clock
//! in one process, Redis `TIME` across processes). A clock that goes backwards never blocks a
//! key for longer than one emission interval: a stored TAT further ahead than a full burst is
//! clamped.

use std::time::Duration;

/// Nanoseconds per second.
const NANOS: f64 = 1_000_000_000.0;

/// A rate limit: a sustained rate and the burst a fresh key may spend at once. Only built by
/// [`Rate::new`], so it is always usable (positive rate, burst ≥ 1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    per_second: f64,
    burst: u32,
    /// Nanoseconds between two requests at the sustained rate (≥ 1).
    interval: i64,
}

/// Why a [`Rate`] was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateError {
    /// The rate is not a finite number above 0 (or so small that one request per ~292 years).
    #[error("the rate must be a finite number of requests per second above 0")]
    Rate,
    /// The burst is 0.
    #[error("the burst must be at least 1")]
    Burst,
}

impl Rate {
    /// `per_second` requests per second sustained, `burst` at once.
    pub fn new(per_second: f64, burst: u32) -> Result<Self, RateError> {
        if !per_second.is_finite() || per_second <= 0.0 {
            return Err(RateError::Rate);
        }
        if burst == 0 {
            return Err(RateError::Burst);
        }
        let interval = (NANOS / per_second).round();
        if interval >= i64::MAX as f64 / f64::from(burst) / 4.0 {
            return Err(RateError::Rate);
        }
        Ok(Self {
            per_second,
            burst,
            interval: (interval as i64).max(1),
        })
    }

    /// Sustained requests per second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Requests a fresh key may send at once.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Nanoseconds between two requests at the sustained rate.
    pub fn interval_nanos(&self) -> i64 {
        self.interval
    }

    /// How far ahead of now a TAT may be: one full burst of intervals.
    pub fn tolerance_nanos(&self) -> i64 {
        self.interval.saturating_mul(i64::from(self.burst))
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The TAT to store, whatever the answer: the new one when allowed; when refused, the old
    /// one (unchanged unless a clock that went backwards made it clamp).
    pub new_tat: i64,
    /// When refused, how long until one request will be allowed; zero when allowed.
    pub retry_after: Duration,
    /// Requests that could still be sent right now after this one.
    pub remaining: u32,
    /// The burst of the rate (for a `RateLimit-Limit` header).
    pub limit: u32,
}

impl Decision {
    /// `Retry-After` in whole seconds: rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
        secs.max(1)
    }
}

/// The GCRA decision for a request arriving at `now` on a key whose stored TAT is `tat`
/// (`None` for a key never seen or evicted).
pub fn decide(tat: Option<i64>, now: i64, rate: Rate) -> Decision {
    let interval = rate.interval;
    let tolerance = rate.tolerance_nanos();
    let ceiling = now.saturating_add(tolerance);
    // Idle keys start from now; a TAT beyond a full burst can only come from a clock that
    // went backwards, and is clamped so that it costs at most one interval.
    let tat = tat.unwrap_or(now).clamp(now, ceiling);
    let new_tat = tat.saturating_add(interval);
    let allow_at = new_tat.saturating_sub(tolerance);
    if now < allow_at {
        let wait = u64::try_from(allow_at - now).unwrap_or(u64::MAX);
        return Decision {
            allowed: false,
            new_tat: tat,
            retry_after: Duration::from_nanos(wait),
            remaining: 0,
            limit: rate.burst,
        };
    }
    let remaining = (ceiling - new_tat) / interval;
    Decision {
        allowed: true,
        new_tat,
        retry_after: Duration::ZERO,
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        limit: rate.burst,
    }
}

/// Why a limiter could not decide.
#[derive(Debug, thiserror::Error)]
pub enum LimiterError {
    /// The store is unreachable or answered wrongly.
    #[error("rate-limit store unavailable: {0}")]
    Unavailable(String),
}

/// A store of TATs deciding atomically per key (the port the gateway checks every request
/// against).
#[async_trait::async_trait]
pub trait Limiter: Send + Sync + std::fmt::Debug {
    /// Decides one request on `key` under `rate` by [`decide`] and stores
    /// [`Decision::new_tat`] — the read, decision and write MUST be atomic per key across
    /// everything sharing the store, so a refused request consumes nothing. A store MAY forget
    /// a key whose TAT is in the past (it then starts from a full burst, which is the same). MUST return
    /// [`LimiterError::Unavailable`] when the store cannot be reached; the caller then
    /// chooses to fail open or closed.
    async fn check(&self, key: &str, rate: Rate) -> Result<Decision, LimiterError>;

    /// Decides one request under several limits at once (client address, key, organisation):
    /// refused if any refuses. The default checks them one after the other (an earlier limit
    /// may have been consumed when a later one refuses); a shared store SHOULD do it in one
    /// atomic, all-or-nothing round trip.
    async fn check_all(&self, checks: &[(String, Rate)]) -> Result<Decision, LimiterError> {
        let mut last = None;
        for (key, rate) in checks {
            let d = self.check(key, *rate).await?;
            if !d.allowed {
                return Ok(d);
            }
            last = Some(d);
        }
        last.ok_or_else(|| LimiterError::Unavailable("no limit to check".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    /// Sends `n` requests at `now`, storing the TAT like a store would; returns how many passed.
    fn send(tat: &mut Option<i64>, now: i64, rate: Rate, n: u32) -> u32 {
        let mut ok = 0;
        for _ in 0..n {
            let d = decide(*tat, now, rate);
            *tat = Some(d.new_tat);
            ok += u32::from(d.allowed);
        }
        ok
    }

    #[test]
    fn a_fresh_key_gets_exactly_its_burst_at_once() {
        let rate = Rate::new(10.0, 5).unwrap();
        let mut tat = None;
        let now = 1_000 * SEC;
        let first = decide(tat, now, rate);
        assert!(first.allowed);
        assert_eq!(first.remaining, 4);
        assert_eq!(first.limit, 5);
        tat = Some(first.new_tat);
        assert_eq!(send(&mut tat, now, rate, 10), 4);
        let refused = decide(tat, now, rate);
        assert!(!refused.allowed);
        assert_eq!(refused.remaining, 0);
        assert_eq!(refused.new_tat, tat.unwrap(), "a refusal consumes nothing");
    }

    #[test]
    fn the_sustained_rate_is_never_refused_and_faster_is() {
        let rate = Rate::new(10.0, 1).unwrap();
        let mut tat = None;
        // One every 100 ms for 10 s: all pass.
        for i in 0..100 {
            assert_eq!(send(&mut tat, i * SEC / 10, rate, 1), 1, "request {i}");
        }
        // Two per 100 ms after that: half pass.
        let mut passed = 0;
        for i in 100..200 {
            passed += send(&mut tat, i * SEC / 10, rate, 2);
        }
        assert_eq!(passed, 100);
    }

    #[test]
    fn a_long_flood_is_accepted_at_the_configured_rate_within_five_percent() {
        // Issue 4 acceptance: the accepted rate is within ±5 % of the limit. Clients at 3× the
        // limit with jittered arrival times, for 60 virtual seconds, over several rates. (With a
        // burst of 1 there is no slack, and discrete arrivals lose the time between a slot
        // opening and the next request: ~11 % at 3× — configure bursts of a few requests.)
        for (per_second, burst) in [(10.0, 5), (50.0, 20), (200.0, 400), (1234.5, 100)] {
            let rate = Rate::new(per_second, burst).unwrap();
            let mut tat = None;
            let mut accepted = 0u64;
            let offered = (per_second * 3.0 * 60.0) as i64;
            let gap = 60 * SEC / offered;
            for i in 0..offered {
                // Deterministic jitter of up to ±40 % of the gap.
                let jitter = ((i * 7919) % 81 - 40) * gap / 100;
                let now = i * gap + jitter;
                let d = decide(tat, now.max(0), rate);
                if d.allowed {
                    tat = Some(d.new_tat);
                    accepted += 1;
                }
            }
            let expected = per_second * 60.0 + f64::from(burst);
            let ratio = accepted as f64 / expected;
            assert!(
                (0.95..=1.05).contains(&ratio),
                "{per_second}/s burst {burst}: accepted {accepted}, expected {expected:.0} ({ratio:.3})"
            );
        }
    }

    #[test]
    fn retry_after_is_the_time_until_the_next_request_fits() {
        let rate = Rate::new(2.0, 2).unwrap(); // one every 500 ms
        let mut tat = None;
        assert_eq!(send(&mut tat, 0, rate, 2), 2);
        let d = decide(tat, 0, rate);
        assert_eq!(d.retry_after, Duration::from_millis(500));
        assert_eq!(d.retry_after_secs(), 1);
        let d = decide(tat, 200 * SEC / 1000, rate);
        assert_eq!(d.retry_after, Duration::from_millis(300));
        // Waiting exactly the answer is enough.
        assert!(decide(tat, SEC / 2, rate).allowed);

        let slow = Rate::new(0.25, 1).unwrap(); // one every 4 s
        let mut tat = None;
        assert_eq!(send(&mut tat, 0, slow, 1), 1);
        let d = decide(tat, SEC / 10, slow);
        assert_eq!(d.retry_after, Duration::from_millis(3900));
        assert_eq!(d.retry_after_secs(), 4, "whole seconds, rounded up");
    }

    #[test]
    fn an_idle_key_recovers_its_full_burst_and_no_more() {
        let rate = Rate::new(100.0, 3).unwrap();
        let mut tat = None;
        assert_eq!(send(&mut tat, 0, rate, 3), 3);
        assert_eq!(send(&mut tat, 3600 * SEC, rate, 10), 3);
    }

    #[test]
    fn a_clock_going_backwards_costs_at_most_one_interval() {
        let rate = Rate::new(1.0, 2).unwrap();
        let mut tat = None;
        assert_eq!(send(&mut tat, 1_000 * SEC, rate, 2), 2);
        // The clock jumps back an hour: the key is not blocked for an hour.
        let back = 1_000 * SEC - 3600 * SEC;
        let d = decide(tat, back, rate);
        assert!(!d.allowed);
        assert!(d.retry_after <= Duration::from_secs(1), "{:?}", d.retry_after);
        tat = Some(d.new_tat);
        assert_eq!(send(&mut tat, back + SEC, rate, 5), 1);
        assert_eq!(send(&mut tat, back + 2 * SEC, rate, 5), 1);
        // Extreme values do not overflow.
        let d = decide(Some(i64::MAX), i64::MIN, rate);
        assert!(!d.allowed);
        let d = decide(Some(i64::MIN), i64::MAX - 1, rate);
        assert!(d.allowed || d.retry_after <= Duration::from_secs(1));
    }

    #[test]
    fn unusable_rates_are_refused() {
        assert_eq!(Rate::new(0.0, 1), Err(RateError::Rate));
        assert_eq!(Rate::new(-1.0, 1), Err(RateError::Rate));
        assert_eq!(Rate::new(f64::NAN, 1), Err(RateError::Rate));
        assert_eq!(Rate::new(f64::INFINITY, 1), Err(RateError::Rate));
        assert_eq!(Rate::new(1e-30, 1), Err(RateError::Rate));
        assert_eq!(Rate::new(1.0, 0), Err(RateError::Burst));
        let r = Rate::new(200.0, 400).unwrap();
        assert_eq!(r.interval_nanos(), 5_000_000);
        assert_eq!(r.tolerance_nanos(), 2 * SEC);
        assert_eq!(Rate::new(1e12, 1).unwrap().interval_nanos(), 1);
    }
}
