//! Early warning (R-SEC-7), the running part: after every sign-in attempt and every use of a
//! revoked key, [`EarlyWarning`] runs the [`crate::warning`] detectors against the stored
//! attempts and emits what they find on `events.security` through the [`SecurityEvents`] port.
//!
//! # One incident, one event
//! Every alert has a kind and a subject (the username, the address, the account and network,
//! the key) and, once raised, stays *quiet* for a while ([`WarningStore`]):
//! * brute force and spraying are bursts: the alert stays quiet until a whole window
//!   (15 minutes by default) passes without another rejected attempt for that username or from
//!   that address. Every rejected attempt during the burst pushes the end back, so an attack
//!   that goes on for hours raises one event; one that stops and starts again after a quiet
//!   window raises a new one.
//! * a revoked key raises at most one event per key per `revoked_key_every` (an hour by
//!   default), however often it is presented: the gateway caches no refusal, so a client
//!   hammering with a revoked key reaches identity every time.
//! * an administrator's sign-in from a new network is quiet for a day per account and network
//!   (the sign-in makes the network known anyway); one outside working hours is quiet until
//!   working hours begin again — one event per administrator per evening, night or Sunday.
//!
//! The claim of an alert is one atomic statement in the shared database, so several identity
//! instances seeing one attack raise one event. An event whose emission fails gives its claim
//! back (the next attempt raises it again).
//!
//! # Never in the way
//! A watch never fails and never panics: detection and emission errors are logged, the
//! sign-in or the refusal goes on unchanged. The detectors read a bounded number of attempts
//! through the `(username, at)` and `(ip, at)` indexes; while an alert is quiet, a rejected
//! sign-in costs one conditional update per detector (username, address) and a revoked key one
//! read. The watch runs inline, after the attempt is recorded: a few indexed statements next to
//! an argon2id verification, and no event is lost to a process that stops right after answering.

use crate::account::UserInfo;
use crate::clock::Clock;
use crate::model::ApiKeyInfo;
use crate::ports::{LoginAttempt, LoginOutcome, StoreError, WarningStore};
use crate::warning::{self, Detection, EarlyWarningPolicy, WarningKind};
use chrono::{DateTime, TimeDelta, Utc};
use etx_audit_core::SecurityEvents;
use std::sync::Arc;

/// Most attempts a detector reads for one username or address: far above any threshold, so
/// that a burst is seen whole, and a bound on the work an attacker can cause.
const MAX_ATTEMPTS_READ: u32 = 1000;
/// Most known addresses of one administrator read for the new-network rule.
const MAX_KNOWN_ADDRESSES: u32 = 10_000;

/// What identity tells the early warning. Implementations MUST NOT fail, panic or block for
/// long: they log their own errors.
#[async_trait::async_trait]
pub trait SecurityWatch: Send + Sync + std::fmt::Debug {
    /// A sign-in attempt was just recorded; `user` is its account when one has the username
    /// (always given for [`LoginOutcome::Ok`]).
    async fn sign_in_attempted(&self, attempt: &LoginAttempt, user: Option<&UserInfo>);
    /// A revoked API key was presented, from `ip` when the gateway told it.
    async fn revoked_key_presented(&self, key: &ApiKeyInfo, ip: Option<&str>);
}

/// A watch that sees nothing (tools and tests that need no early warning).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoWatch;

#[async_trait::async_trait]
impl SecurityWatch for NoWatch {
    async fn sign_in_attempted(&self, _attempt: &LoginAttempt, _user: Option<&UserInfo>) {}
    async fn revoked_key_presented(&self, _key: &ApiKeyInfo, _ip: Option<&str>) {}
}

/// The early warning: detectors over a [`WarningStore`], events through [`SecurityEvents`].
#[derive(Debug)]
pub struct EarlyWarning<S> {
    store: S,
    events: Arc<dyn SecurityEvents>,
    clock: Arc<dyn Clock>,
    policy: EarlyWarningPolicy,
}

impl<S: WarningStore> EarlyWarning<S> {
    /// Detectors reading `store` with `policy`, emitting to `events`, at `clock`'s time.
    pub fn new(
        store: S,
        events: Arc<dyn SecurityEvents>,
        clock: Arc<dyn Clock>,
        policy: EarlyWarningPolicy,
    ) -> Self {
        Self {
            store,
            events,
            clock,
            policy,
        }
    }

    /// The rules in force.
    pub fn policy(&self) -> &EarlyWarningPolicy {
        &self.policy
    }

    /// Raises `d` unless its alert is quiet; the alert is then quiet until `quiet_until`.
    async fn raise(
        &self,
        d: Detection,
        now: DateTime<Utc>,
        quiet_until: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let kind = d.kind.as_str();
        let subject = d.subject.clone();
        if !self
            .store
            .claim_alert(kind, &subject, &d.key(), now, quiet_until)
            .await?
        {
            return Ok(());
        }
        let event = d.into_event(now);
        let (id, severity) = (event.id, event.severity);
        if let Err(e) = self.events.emit(event).await {
            if let Err(r) = self.store.release_alert(kind, &subject).await {
                tracing::error!(kind, error = %r, "early warning: alert claim not released");
            }
            return Err(e.into());
        }
        // The subject and evidence may name a username: the event carries them, the log not.
        tracing::warn!(kind, severity = severity.as_str(), event_id = %id, "security event raised");
        Ok(())
    }

    /// A burst detector: while the alert `(kind, subject)` is quiet, a new rejection only keeps
    /// it quiet for another `window`; otherwise `detect` decides whether to raise it.
    async fn burst(
        &self,
        kind: WarningKind,
        subject: &str,
        now: DateTime<Utc>,
        window: TimeDelta,
        detect: impl Future<Output = Result<Option<Detection>, StoreError>>,
    ) -> anyhow::Result<()> {
        let quiet_until = now + window;
        if self
            .store
            .extend_alert(kind.as_str(), subject, now, quiet_until)
            .await?
        {
            return Ok(());
        }
        match detect.await? {
            Some(d) => self.raise(d, now, quiet_until).await,
            None => Ok(()),
        }
    }

    async fn brute_force(&self, username: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        let t = self.policy.brute_force;
        self.burst(WarningKind::BruteForce, username, now, t.window, async {
            let rows = self
                .store
                .rejections_of_username(username, now - t.window, MAX_ATTEMPTS_READ)
                .await?;
            Ok(warning::brute_force(username, &rows, t, now))
        })
        .await
    }

    async fn spraying(&self, ip: &str, now: DateTime<Utc>) -> anyhow::Result<()> {
        let t = self.policy.spraying;
        self.burst(WarningKind::PasswordSpraying, ip, now, t.window, async {
            let rows = self
                .store
                .rejections_from_ip(ip, now - t.window, MAX_ATTEMPTS_READ)
                .await?;
            Ok(warning::password_spraying(ip, &rows, t, now))
        })
        .await
    }

    async fn new_network(&self, user: &UserInfo, ip: &str, at: DateTime<Utc>) -> anyhow::Result<()> {
        let lookback = self.policy.new_network_lookback;
        let known = self
            .store
            .sign_in_addresses(user.id, at - lookback, at, MAX_KNOWN_ADDRESSES)
            .await?;
        let before = !known.is_empty() || self.store.signed_in_before(user.id, at).await?;
        match warning::admin_new_network(user, ip, at, &known, before, lookback) {
            Some(d) => self.raise(d, at, at + TimeDelta::days(1)).await,
            None => Ok(()),
        }
    }

    async fn outside_hours(
        &self,
        user: &UserInfo,
        ip: Option<&str>,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let hours = &self.policy.working_hours;
        match warning::admin_outside_hours(user, ip, at, hours, self.policy.outside_hours_severity) {
            Some(d) => {
                let quiet_until = hours.next_start(at).unwrap_or(at + TimeDelta::days(1));
                self.raise(d, at, quiet_until).await
            }
            None => Ok(()),
        }
    }
}

fn log_failure(detector: &str, r: anyhow::Result<()>) {
    if let Err(e) = r {
        tracing::error!(detector, error = %e, "early warning: detection failed");
    }
}

#[async_trait::async_trait]
impl<S: WarningStore> SecurityWatch for EarlyWarning<S> {
    async fn sign_in_attempted(&self, attempt: &LoginAttempt, user: Option<&UserInfo>) {
        if !self.policy.enabled {
            return;
        }
        if attempt.outcome != LoginOutcome::Ok {
            let now = self.clock.now().max(attempt.at);
            log_failure("brute_force", self.brute_force(&attempt.username, now).await);
            if let Some(ip) = attempt.ip.as_deref() {
                log_failure("password_spraying", self.spraying(ip, now).await);
            }
            return;
        }
        let Some(user) = user.filter(|u| warning::is_administrator(u)) else {
            return;
        };
        if let Some(ip) = attempt.ip.as_deref() {
            log_failure("admin_new_network", self.new_network(user, ip, attempt.at).await);
        }
        log_failure(
            "admin_outside_hours",
            self.outside_hours(user, attempt.ip.as_deref(), attempt.at).await,
        );
    }

    async fn revoked_key_presented(&self, key: &ApiKeyInfo, ip: Option<&str>) {
        if !self.policy.enabled {
            return;
        }
        let now = self.clock.now();
        let d = warning::revoked_key_used(key, ip, now);
        log_failure(
            "revoked_key_used",
            self.raise(d, now, now + self.policy.revoked_key_every).await,
        );
    }
}
