//! Rate-limited refusals, summarised (R-SEC-9 with R-SEC-2): a flood of requests answered `429`
//! must not become a flood of audit rows, or the log itself turns every refused request into a
//! database write and one organisation's flood slows everybody else down (issue 4 §6).
//!
//! The rule, per caller and route — subject, organisation, system, key, client address, method
//! and path (without the query) —:
//! * the **first** `429` is logged as an ordinary entry, at once;
//! * the following ones within [`RefusalTally::window`] are counted, and when the window has
//!   passed they become **one** entry: status `429`, action `rate_limited.summary`, and in
//!   `detail` the `count`, `first_at`, `last_at`, bytes in and out and the longest duration;
//! * the next `429` after that opens a new window (logged at once again).
//!
//! So nothing is lost — who, from where, on which route, how many, from when to when — while a
//! flood costs at most one row per caller and route per window. At most `max_open` callers are
//! tallied at a time; refusals of further callers are logged one by one (never dropped).
//! Every other status passes through untouched.

use crate::model::NewAuditEntry;
use chrono::{DateTime, TimeDelta, Utc};
use etx_domain::{ApiKeyId, OrgId, SystemId};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::IpAddr;

/// The action name of a summary entry.
pub const SUMMARY_ACTION: &str = "rate_limited.summary";

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    subject: String,
    org_id: Option<OrgId>,
    system_id: Option<SystemId>,
    key_id: Option<ApiKeyId>,
    ip: Option<IpAddr>,
    method: Option<String>,
    path: Option<String>,
}

#[derive(Debug)]
struct Tally {
    opened: DateTime<Utc>,
    /// The first counted entry (its fields become the summary's).
    first: Option<NewAuditEntry>,
    count: u64,
    last_at: DateTime<Utc>,
    bytes_in: u64,
    bytes_out: u64,
    max_duration_ms: u64,
}

/// Counts `429` entries per caller and route (see the module docs).
#[derive(Debug)]
pub struct RefusalTally {
    window: TimeDelta,
    max_open: usize,
    open: HashMap<Key, Tally>,
}

impl RefusalTally {
    /// A tally summarising per `window`, holding at most `max_open` callers.
    pub fn new(window: std::time::Duration, max_open: usize) -> Self {
        Self {
            window: TimeDelta::from_std(window).unwrap_or(TimeDelta::seconds(10)),
            max_open,
            open: HashMap::new(),
        }
    }

    /// The summarising window.
    pub fn window(&self) -> TimeDelta {
        self.window
    }

    /// Offers an entry: returns it when it must be logged now, `None` when it was counted.
    pub fn offer(&mut self, entry: NewAuditEntry) -> Option<NewAuditEntry> {
        if entry.status != Some(429) {
            return Some(entry);
        }
        let key = Key {
            subject: entry.subject.clone(),
            org_id: entry.org_id,
            system_id: entry.system_id,
            key_id: entry.key_id,
            ip: entry.ip,
            method: entry.method.clone(),
            path: entry
                .route
                .as_deref()
                .map(|r| r.split('?').next().unwrap_or(r).to_owned()),
        };
        if let Some(t) = self.open.get_mut(&key) {
            if entry.at >= t.opened + self.window {
                // A window that has passed but was not flushed yet: the caller flushes with
                // `due`; this refusal is logged at once.
                return Some(entry);
            }
            t.count += 1;
            t.last_at = t.last_at.max(entry.at);
            t.bytes_in += entry.bytes_in;
            t.bytes_out += entry.bytes_out;
            t.max_duration_ms = t.max_duration_ms.max(entry.duration_ms);
            if t.first.is_none() {
                t.first = Some(entry);
            }
            return None;
        }
        if self.open.len() < self.max_open {
            self.open.insert(
                key,
                Tally {
                    opened: entry.at,
                    first: None,
                    count: 0,
                    last_at: entry.at,
                    bytes_in: 0,
                    bytes_out: 0,
                    max_duration_ms: 0,
                },
            );
        }
        Some(entry)
    }

    /// The summaries of every window that has passed at `now` (closing them).
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<NewAuditEntry> {
        let window = self.window;
        let closed: Vec<Key> = self
            .open
            .iter()
            .filter(|(_, t)| t.opened + window <= now)
            .map(|(k, _)| k.clone())
            .collect();
        closed
            .into_iter()
            .filter_map(|k| self.open.remove(&k))
            .filter_map(|t| summary(t, now))
            .collect()
    }

    /// The summaries of every open window, whatever its age (on shutdown).
    pub fn drain(&mut self, now: DateTime<Utc>) -> Vec<NewAuditEntry> {
        self.open.drain().filter_map(|(_, t)| summary(t, now)).collect()
    }

    /// How many callers are being tallied.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }
}

fn summary(t: Tally, now: DateTime<Utc>) -> Option<NewAuditEntry> {
    let mut e = t.first?;
    let first_at = e.at;
    e.at = now;
    e.action = Some(SUMMARY_ACTION.to_owned());
    e.bytes_in = t.bytes_in;
    e.bytes_out = t.bytes_out;
    e.duration_ms = t.max_duration_ms;
    e.payload_hash = None;
    e.detail.insert("count".into(), json!(t.count));
    e.detail
        .insert("first_at".into(), Value::String(first_at.to_rfc3339()));
    e.detail
        .insert("last_at".into(), Value::String(t.last_at.to_rfc3339()));
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AuditKind;
    use std::time::Duration;

    fn refused(subject: &str, at: DateTime<Utc>, status: u16) -> NewAuditEntry {
        let mut e = NewAuditEntry::new(AuditKind::Request, subject);
        e.at = at;
        e.status = Some(status);
        e.method = Some("POST".into());
        e.route = Some("/api/v1/records?x".into());
        e.bytes_out = 100;
        e
    }

    fn t0() -> DateTime<Utc> {
        "2026-11-28T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn the_first_refusal_is_logged_and_the_rest_of_the_window_becomes_one_entry() {
        let mut tally = RefusalTally::new(Duration::from_secs(10), 100);
        assert!(tally.offer(refused("system:a", t0(), 429)).is_some());
        for i in 1..=1000 {
            let at = t0() + TimeDelta::milliseconds(i * 5);
            assert!(tally.offer(refused("system:a", at, 429)).is_none());
        }
        // Other statuses and other callers are not held back.
        assert!(tally.offer(refused("system:a", t0(), 200)).is_some());
        assert!(tally.offer(refused("system:b", t0(), 429)).is_some());
        assert!(
            tally.due(t0() + TimeDelta::seconds(9)).is_empty(),
            "window still open"
        );
        let out = tally.due(t0() + TimeDelta::seconds(10));
        assert_eq!(out.len(), 1, "b had nothing after its first refusal");
        let s = &out[0];
        assert_eq!(s.action.as_deref(), Some(SUMMARY_ACTION));
        assert_eq!((s.subject.as_str(), s.status), ("system:a", Some(429)));
        assert_eq!(s.detail["count"], json!(1000));
        assert_eq!(s.bytes_out, 100_000);
        assert_eq!(
            s.detail["first_at"],
            json!((t0() + TimeDelta::milliseconds(5)).to_rfc3339())
        );
        assert_eq!(
            s.detail["last_at"],
            json!((t0() + TimeDelta::seconds(5)).to_rfc3339())
        );
        assert_eq!(tally.open_count(), 0);
        // After the window, the next refusal is logged at once again.
        assert!(
            tally
                .offer(refused("system:a", t0() + TimeDelta::seconds(11), 429))
                .is_some()
        );
    }

    #[test]
    fn the_query_does_not_split_a_route_but_the_method_and_address_do() {
        let mut tally = RefusalTally::new(Duration::from_secs(10), 100);
        assert!(tally.offer(refused("anonymous", t0(), 429)).is_some());
        let mut other_query = refused("anonymous", t0(), 429);
        other_query.route = Some("/api/v1/records?y".into());
        assert!(tally.offer(other_query).is_none());
        let mut other_method = refused("anonymous", t0(), 429);
        other_method.method = Some("GET".into());
        assert!(tally.offer(other_method).is_some());
        let mut other_ip = refused("anonymous", t0(), 429);
        other_ip.ip = Some("192.0.2.7".parse().unwrap());
        assert!(tally.offer(other_ip).is_some());
    }

    #[test]
    fn beyond_the_open_limit_refusals_are_logged_one_by_one_and_drain_closes_everything() {
        let mut tally = RefusalTally::new(Duration::from_secs(10), 2);
        assert!(tally.offer(refused("a", t0(), 429)).is_some());
        assert!(tally.offer(refused("b", t0(), 429)).is_some());
        assert!(tally.offer(refused("c", t0(), 429)).is_some());
        assert!(
            tally.offer(refused("c", t0(), 429)).is_some(),
            "c is never tallied"
        );
        assert!(tally.offer(refused("a", t0(), 429)).is_none());
        let out = tally.drain(t0());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].detail["count"], json!(1));
        assert_eq!(tally.open_count(), 0);
    }
}
