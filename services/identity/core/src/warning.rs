//! Early warning (R-SEC-7), pure part: the rules that turn sign-in attempts and key uses into
//! security events for the alerting service — brute force on one account, password spraying
//! from one address, an administrator signing in from a new network or outside working hours,
//! use of a revoked API key. No I/O here: [`crate::watch::EarlyWarning`] feeds these detectors
//! from the store and emits what they find.
//!
//! A detector answers a [`Detection`]: its kind, severity, subject (the account, address or
//! key it is about), when the incident began, and evidence — ids, counts, addresses and times,
//! never a password, a second-factor code or a key.

use crate::account::{Role, UserInfo};
use crate::model::ApiKeyInfo;
use crate::ports::{LoginAttempt, LoginOutcome};
use chrono::{DateTime, Datelike, FixedOffset, NaiveTime, SecondsFormat, TimeDelta, Utc, Weekday};
use etx_audit_core::{SecurityEvent, Severity};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

/// At most this many addresses are listed in a brute-force event (the count is always given).
const MAX_LISTED_IPS: usize = 20;

/// What an early warning is about: the `kind` of its [`SecurityEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningKind {
    /// Many rejected sign-ins for one username.
    BruteForce,
    /// Rejected sign-ins for many usernames from one address.
    PasswordSpraying,
    /// An administrator signed in from a network not seen in their recent sign-ins.
    AdminNewNetwork,
    /// An administrator signed in outside working hours.
    AdminOutsideHours,
    /// A revoked API key was presented.
    RevokedKeyUsed,
}

impl WarningKind {
    /// The event kind on `events.security`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BruteForce => "auth.brute_force",
            Self::PasswordSpraying => "auth.password_spraying",
            Self::AdminNewNetwork => "auth.admin_new_network",
            Self::AdminOutsideHours => "auth.admin_outside_hours",
            Self::RevokedKeyUsed => "auth.revoked_key_used",
        }
    }
}

impl fmt::Display for WarningKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// So many events within a sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Threshold {
    /// How many (at least 1).
    pub count: u32,
    /// Within how long.
    pub window: TimeDelta,
}

/// Working hours in one time zone: on `days`, from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkingHours {
    /// Indexed by days from Monday.
    days: [bool; 7],
    start: NaiveTime,
    end: NaiveTime,
    offset: FixedOffset,
}

impl WorkingHours {
    /// Working hours on `days`, `start..end` local time at `offset`. `Err` with the broken rule
    /// when `start` is not before `end`.
    pub fn new(
        days: impl IntoIterator<Item = Weekday>,
        start: NaiveTime,
        end: NaiveTime,
        offset: FixedOffset,
    ) -> Result<Self, &'static str> {
        if start >= end {
            return Err("working hours must start before they end");
        }
        let mut set = [false; 7];
        for d in days {
            set[d.num_days_from_monday() as usize] = true;
        }
        Ok(Self {
            days: set,
            start,
            end,
            offset,
        })
    }

    /// Vietnam (Asia/Ho_Chi_Minh, UTC+07:00, no daylight saving): Monday to Saturday,
    /// 07:00–19:00.
    pub fn vietnam() -> Self {
        Self {
            days: [true, true, true, true, true, true, false],
            start: NaiveTime::from_hms_opt(7, 0, 0).unwrap_or(NaiveTime::MIN),
            end: NaiveTime::from_hms_opt(19, 0, 0).unwrap_or(NaiveTime::MIN),
            offset: FixedOffset::east_opt(7 * 3600).unwrap_or_else(|| unreachable!("+07:00 is valid")),
        }
    }

    /// Parses a comma-separated list of day names (`mon,tue,…` or full English names; `mon-sat`
    /// ranges allowed), e.g. `mon-sat` or `mon,tue,wed,thu,fri`.
    pub fn parse_days(s: &str) -> Result<Vec<Weekday>, String> {
        let day = |d: &str| {
            d.trim()
                .parse::<Weekday>()
                .map_err(|_| format!("`{}` is not a day of the week", d.trim()))
        };
        let mut out = Vec::new();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            match part.split_once('-') {
                Some((from, to)) => {
                    let (mut d, to) = (day(from)?, day(to)?);
                    out.push(d);
                    while d != to {
                        d = d.succ();
                        out.push(d);
                    }
                }
                None => out.push(day(part)?),
            }
        }
        Ok(out)
    }

    /// Whether `at` falls within working hours.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = at.with_timezone(&self.offset);
        let t = local.time();
        self.is_working_day(local.weekday()) && self.start <= t && t < self.end
    }

    fn is_working_day(&self, d: Weekday) -> bool {
        self.days[d.num_days_from_monday() as usize]
    }

    /// When working hours next begin after `at`; `None` when no day is a working day.
    pub fn next_start(&self, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = at.with_timezone(&self.offset);
        (0..=7).find_map(|d| {
            let date = local.date_naive() + TimeDelta::days(d);
            let start = date
                .and_time(self.start)
                .and_local_timezone(self.offset)
                .single()?;
            (self.is_working_day(date.weekday()) && start > local).then(|| start.with_timezone(&Utc))
        })
    }

    /// `at` in the working hours' time zone.
    pub fn local(&self, at: DateTime<Utc>) -> DateTime<FixedOffset> {
        at.with_timezone(&self.offset)
    }
}

impl fmt::Display for WorkingHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<String> = (0..7u8)
            .filter(|i| self.days[usize::from(*i)])
            .filter_map(|i| Weekday::try_from(i).ok())
            .map(|d| d.to_string().to_lowercase())
            .collect();
        write!(
            f,
            "{} {}-{} UTC{}",
            days.join(","),
            self.start.format("%H:%M"),
            self.end.format("%H:%M"),
            self.offset
        )
    }
}

/// The early-warning rules and their thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlyWarningPolicy {
    /// Whether detectors run at all.
    pub enabled: bool,
    /// Rejected sign-ins for one username (any outcome but `ok`, refusals during a lockout
    /// included) that make a brute-force attack. Default 5 in 15 minutes.
    pub brute_force: Threshold,
    /// Distinct usernames with rejected sign-ins from one address that make password
    /// spraying. Default 10 in 15 minutes.
    pub spraying: Threshold,
    /// How far back an administrator's successful sign-ins make a network known. Default 90
    /// days.
    pub new_network_lookback: TimeDelta,
    /// Working hours. Default [`WorkingHours::vietnam`].
    pub working_hours: WorkingHours,
    /// Severity of an administrator's sign-in outside working hours. Default low.
    pub outside_hours_severity: Severity,
    /// At most one event per revoked key this often. Default one hour.
    pub revoked_key_every: TimeDelta,
}

impl Default for EarlyWarningPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            brute_force: Threshold {
                count: 5,
                window: TimeDelta::minutes(15),
            },
            spraying: Threshold {
                count: 10,
                window: TimeDelta::minutes(15),
            },
            new_network_lookback: TimeDelta::days(90),
            working_hours: WorkingHours::vietnam(),
            outside_hours_severity: Severity::Low,
            revoked_key_every: TimeDelta::hours(1),
        }
    }
}

/// What a detector found.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// What.
    pub kind: WarningKind,
    /// How serious.
    pub severity: Severity,
    /// Who or what it is about: the username, the address, `<user id>:<network>`, the user id,
    /// the key id. One event at most is raised per kind and subject while the incident lasts.
    pub subject: String,
    /// When the incident began: the first rejected attempt counted, the sign-in, the key use.
    pub started_at: DateTime<Utc>,
    /// The facts behind it.
    pub evidence: serde_json::Value,
}

impl Detection {
    /// The event's deduplication key: `<kind>:<subject>:<start>` (start in RFC 3339, UTC), e.g.
    /// `auth.brute_force:an.admin:2027-01-15T03:00:00Z`.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.kind,
            self.subject,
            self.started_at.to_rfc3339_opts(SecondsFormat::Secs, true)
        )
    }

    /// The event detected at `at`.
    pub fn into_event(self, at: DateTime<Utc>) -> SecurityEvent {
        SecurityEvent {
            id: uuid::Uuid::now_v7(),
            kind: self.kind.as_str().to_owned(),
            severity: self.severity,
            at,
            key: self.key(),
            evidence: self.evidence,
        }
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The rejected attempts among `attempts` within the window ending at `now`, oldest first.
fn in_window(
    attempts: &[LoginAttempt],
    window: TimeDelta,
    now: DateTime<Utc>,
    keep: impl Fn(&LoginAttempt) -> bool,
) -> Vec<&LoginAttempt> {
    let mut v: Vec<&LoginAttempt> = attempts
        .iter()
        .filter(|a| a.outcome != LoginOutcome::Ok && a.at > now - window && a.at <= now && keep(a))
        .collect();
    v.sort_by_key(|a| a.at);
    v
}

/// Brute force on one account: at least `t.count` rejected sign-ins for `username` within
/// `t.window` before `now`, from any number of addresses (high). `attempts` may hold anything;
/// only `username`'s rejections in the window count.
pub fn brute_force(
    username: &str,
    attempts: &[LoginAttempt],
    t: Threshold,
    now: DateTime<Utc>,
) -> Option<Detection> {
    let hits = in_window(attempts, t.window, now, |a| a.username == username);
    let (first, last) = (hits.first()?, hits.last()?);
    if hits.len() < usize::try_from(t.count.max(1)).unwrap_or(usize::MAX) {
        return None;
    }
    let ips: BTreeSet<&str> = hits.iter().filter_map(|a| a.ip.as_deref()).collect();
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &hits {
        *outcomes.entry(a.outcome.as_str()).or_default() += 1;
    }
    let user_id = hits.iter().find_map(|a| a.user_id);
    Some(Detection {
        kind: WarningKind::BruteForce,
        severity: Severity::High,
        subject: username.to_owned(),
        started_at: first.at,
        evidence: json!({
            "username": username,
            "user_id": user_id,
            "failures": hits.len(),
            "outcomes": outcomes,
            "distinct_ips": ips.len(),
            "ips": ips.iter().take(MAX_LISTED_IPS).collect::<Vec<_>>(),
            "first_at": rfc3339(first.at),
            "last_at": rfc3339(last.at),
            "threshold": t.count,
            "window_secs": t.window.num_seconds(),
        }),
    })
}

/// Password spraying from one address: rejected sign-ins for at least `t.count` distinct
/// usernames from `ip` within `t.window` before `now` (high). The usernames are counted, not
/// listed: a username field sometimes holds a mistyped password.
pub fn password_spraying(
    ip: &str,
    attempts: &[LoginAttempt],
    t: Threshold,
    now: DateTime<Utc>,
) -> Option<Detection> {
    let hits = in_window(attempts, t.window, now, |a| a.ip.as_deref() == Some(ip));
    let (first, last) = (hits.first()?, hits.last()?);
    let usernames: BTreeSet<&str> = hits.iter().map(|a| a.username.as_str()).collect();
    if usernames.len() < usize::try_from(t.count.max(1)).unwrap_or(usize::MAX) {
        return None;
    }
    let accounts: BTreeSet<_> = hits.iter().filter_map(|a| a.user_id).collect();
    Some(Detection {
        kind: WarningKind::PasswordSpraying,
        severity: Severity::High,
        subject: ip.to_owned(),
        started_at: first.at,
        evidence: json!({
            "ip": ip,
            "usernames": usernames.len(),
            "existing_accounts": accounts.len(),
            "failures": hits.len(),
            "first_at": rfc3339(first.at),
            "last_at": rfc3339(last.at),
            "threshold": t.count,
            "window_secs": t.window.num_seconds(),
        }),
    })
}

/// Whether the account administers the hub or watches its security: `system_admin` or
/// `security_officer`.
pub fn is_administrator(user: &UserInfo) -> bool {
    user.roles.has(Role::SystemAdmin) || user.roles.has(Role::SecurityOfficer)
}

/// The network an address belongs to: its IPv4 /24 or IPv6 /48 (an IPv4-mapped IPv6 address
/// counts as IPv4), e.g. `203.0.113.0/24`, `2001:db8:1::/48`. Anything unparseable is its own
/// network.
pub fn network_of(ip: &str) -> String {
    match ip.trim().parse::<IpAddr>().map(|a| a.to_canonical()) {
        Ok(IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Ok(IpAddr::V6(v6)) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
            format!("{net}/48")
        }
        Err(_) => ip.trim().to_owned(),
    }
}

fn person_evidence(user: &UserInfo, ip: Option<&str>) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("user_id".into(), json!(user.id));
    m.insert("username".into(), json!(user.username.as_str()));
    m.insert("org_id".into(), json!(user.org_id));
    m.insert("roles".into(), json!(user.roles.names()));
    m.insert("ip".into(), json!(ip));
    m
}

/// An administrator ([`is_administrator`]) signed in successfully from `ip` at `at`, and no
/// address of their successful sign-ins since `at - lookback` (`known_ips`) lies in the same
/// network ([`network_of`]) (medium). The very first sign-in of an account
/// (`signed_in_before` false) is not from a "new" network: there is nothing to compare with.
pub fn admin_new_network(
    user: &UserInfo,
    ip: &str,
    at: DateTime<Utc>,
    known_ips: &[String],
    signed_in_before: bool,
    lookback: TimeDelta,
) -> Option<Detection> {
    if !is_administrator(user) || !signed_in_before {
        return None;
    }
    let network = network_of(ip);
    let known: BTreeSet<String> = known_ips.iter().map(|k| network_of(k)).collect();
    if known.contains(&network) {
        return None;
    }
    let mut evidence = person_evidence(user, Some(ip));
    evidence.insert("network".into(), json!(network));
    evidence.insert("known_networks".into(), json!(known.len()));
    evidence.insert("lookback_days".into(), json!(lookback.num_days()));
    evidence.insert("at".into(), json!(rfc3339(at)));
    Some(Detection {
        kind: WarningKind::AdminNewNetwork,
        severity: Severity::Medium,
        subject: format!("{}:{network}", user.id),
        started_at: at,
        evidence: serde_json::Value::Object(evidence),
    })
}

/// An administrator ([`is_administrator`]) signed in successfully at `at`, outside `hours`
/// (`severity`, low or medium by configuration).
pub fn admin_outside_hours(
    user: &UserInfo,
    ip: Option<&str>,
    at: DateTime<Utc>,
    hours: &WorkingHours,
    severity: Severity,
) -> Option<Detection> {
    if !is_administrator(user) || hours.contains(at) {
        return None;
    }
    let local = hours.local(at);
    let mut evidence = person_evidence(user, ip);
    evidence.insert(
        "local_time".into(),
        json!(local.to_rfc3339_opts(SecondsFormat::Secs, false)),
    );
    evidence.insert(
        "weekday".into(),
        json!(local.weekday().to_string().to_lowercase()),
    );
    evidence.insert("working_hours".into(), json!(hours.to_string()));
    Some(Detection {
        kind: WarningKind::AdminOutsideHours,
        severity,
        subject: user.id.to_string(),
        started_at: at,
        evidence: serde_json::Value::Object(evidence),
    })
}

/// A revoked API key was presented at `at`, from `ip` when the gateway told it (medium).
pub fn revoked_key_used(key: &ApiKeyInfo, ip: Option<&str>, at: DateTime<Utc>) -> Detection {
    Detection {
        kind: WarningKind::RevokedKeyUsed,
        severity: Severity::Medium,
        subject: key.id.to_string(),
        started_at: at,
        evidence: json!({
            "key_id": key.id,
            "key_prefix": key.prefix,
            "org_id": key.org_id,
            "system_id": key.system_id,
            "revoked_at": key.revoked_at.map(rfc3339),
            "ip": ip,
            "at": rfc3339(at),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{DisplayName, Roles, UserStatus, Username};
    use etx_domain::{ApiKeyId, OrgId, SystemId, UserId};

    /// Friday 15 January 2027, 10:00 in Hà Nội (03:00 UTC).
    fn friday_10h() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2027-01-15T10:00:00+07:00")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn attempt(t: DateTime<Utc>, username: &str, ip: &str, outcome: LoginOutcome) -> LoginAttempt {
        LoginAttempt {
            at: t,
            username: username.into(),
            user_id: None,
            ip: Some(ip.into()),
            outcome,
        }
    }

    fn user(roles: &[&str]) -> UserInfo {
        UserInfo {
            id: UserId::new(),
            username: Username::parse("an.admin").unwrap(),
            display_name: DisplayName::parse("An").unwrap(),
            org_id: OrgId::new(),
            roles: Roles::parse(roles).unwrap(),
            status: UserStatus::Active,
            must_change_password: false,
            mfa_enabled: true,
            created_at: friday_10h(),
            updated_at: friday_10h(),
        }
    }

    const FIVE_IN_15: Threshold = Threshold {
        count: 5,
        window: TimeDelta::minutes(15),
    };

    #[test]
    fn five_rejections_of_one_username_within_the_window_are_brute_force() {
        let t0 = friday_10h();
        let uid = UserId::new();
        let ips = ["198.51.100.1", "198.51.100.2", "203.0.113.9"];
        let mut attempts: Vec<LoginAttempt> = (0..5)
            .map(|i| {
                let mut a = attempt(
                    t0 + TimeDelta::minutes(i * 2),
                    "an.admin",
                    ips[i as usize % 3],
                    LoginOutcome::BadPassword,
                );
                a.user_id = Some(uid);
                a
            })
            .collect();
        attempts[4].outcome = LoginOutcome::Locked;
        // Other usernames and successes do not count.
        attempts.push(attempt(t0, "someone.else", ips[0], LoginOutcome::BadPassword));
        attempts.push(attempt(t0, "an.admin", ips[0], LoginOutcome::Ok));
        let now = t0 + TimeDelta::minutes(8);

        let d = brute_force("an.admin", &attempts, FIVE_IN_15, now).unwrap();
        assert_eq!(d.kind, WarningKind::BruteForce);
        assert_eq!(d.severity, Severity::High);
        assert_eq!(d.subject, "an.admin");
        assert_eq!(d.started_at, t0);
        assert_eq!(d.key(), "auth.brute_force:an.admin:2027-01-15T03:00:00Z");
        let e = &d.evidence;
        assert_eq!(e["username"], "an.admin");
        assert_eq!(e["user_id"], json!(uid));
        assert_eq!(e["failures"], 5);
        assert_eq!(e["outcomes"], json!({"bad_password": 4, "locked": 1}));
        assert_eq!(e["distinct_ips"], 3);
        assert_eq!(e["ips"], json!(ips));
        assert_eq!(e["first_at"], "2027-01-15T03:00:00Z");
        assert_eq!(e["last_at"], "2027-01-15T03:08:00Z");

        // Four are not enough; and once the first leaves the window, neither are the rest.
        assert_eq!(brute_force("an.admin", &attempts[1..], FIVE_IN_15, now), None);
        assert_eq!(
            brute_force("an.admin", &attempts, FIVE_IN_15, t0 + TimeDelta::minutes(15)),
            None,
            "the window is (now - 15 min, now]"
        );
        assert_eq!(
            brute_force("an.admin", &attempts, FIVE_IN_15, t0 - TimeDelta::minutes(1)),
            None,
            "attempts after now do not count"
        );
    }

    #[test]
    fn rejections_of_many_usernames_from_one_address_are_spraying_and_name_no_username() {
        let t0 = friday_10h();
        let ip = "203.0.113.50";
        let mut attempts: Vec<LoginAttempt> = (0..10)
            .map(|i| {
                attempt(
                    t0 + TimeDelta::seconds(i * 30),
                    &format!("user{i}"),
                    ip,
                    LoginOutcome::UnknownUser,
                )
            })
            .collect();
        attempts[3].user_id = Some(UserId::new());
        // Repeats of one username count once; other addresses do not count.
        attempts.push(attempt(t0, "user1", ip, LoginOutcome::BadPassword));
        attempts.push(attempt(t0, "user99", "198.51.100.1", LoginOutcome::BadPassword));
        let t10 = Threshold {
            count: 10,
            window: TimeDelta::minutes(15),
        };
        let now = t0 + TimeDelta::minutes(5);
        let d = password_spraying(ip, &attempts, t10, now).unwrap();
        assert_eq!(d.kind.as_str(), "auth.password_spraying");
        assert_eq!(d.severity, Severity::High);
        assert_eq!(
            d.key(),
            format!("auth.password_spraying:{ip}:2027-01-15T03:00:00Z")
        );
        assert_eq!(d.evidence["ip"], ip);
        assert_eq!(d.evidence["usernames"], 10);
        assert_eq!(d.evidence["existing_accounts"], 1);
        assert_eq!(d.evidence["failures"], 11);
        assert!(!d.evidence.to_string().contains("user1"), "{}", d.evidence);
        assert_eq!(password_spraying(ip, &attempts[1..], t10, now), None);
    }

    #[test]
    fn networks_are_ipv4_slash_24_and_ipv6_slash_48() {
        assert_eq!(network_of("203.0.113.7"), "203.0.113.0/24");
        assert_eq!(network_of("::ffff:203.0.113.200"), "203.0.113.0/24");
        assert_eq!(network_of("2001:db8:1:2::5"), "2001:db8:1::/48");
        assert_eq!(network_of("2001:0db8:0001:ffff::1"), "2001:db8:1::/48");
        assert_eq!(network_of("not an address"), "not an address");
    }

    #[test]
    fn an_administrator_from_an_unseen_network_is_warned_but_not_at_the_first_sign_in() {
        let admin = user(&["system_admin"]);
        let now = friday_10h();
        let known = vec!["203.0.113.7".to_owned(), "2001:db8:1::9".to_owned()];
        let lookback = TimeDelta::days(90);
        assert_eq!(
            admin_new_network(&admin, "203.0.113.99", now, &known, true, lookback),
            None
        );
        assert_eq!(
            admin_new_network(&admin, "2001:db8:1:77::1", now, &known, true, lookback),
            None
        );
        let d = admin_new_network(&admin, "198.51.100.4", now, &known, true, lookback).unwrap();
        assert_eq!(d.kind.as_str(), "auth.admin_new_network");
        assert_eq!(d.severity, Severity::Medium);
        assert_eq!(d.subject, format!("{}:198.51.100.0/24", admin.id));
        assert_eq!(d.evidence["network"], "198.51.100.0/24");
        assert_eq!(d.evidence["known_networks"], 2);
        assert_eq!(d.evidence["roles"], json!(["system_admin"]));
        assert_eq!(d.evidence["lookback_days"], 90);
        // Nothing known in 90 days, but signed in before: every network is new.
        assert!(admin_new_network(&admin, "198.51.100.4", now, &[], true, lookback).is_some());
        // The very first sign-in of the account is not "new".
        assert_eq!(
            admin_new_network(&admin, "198.51.100.4", now, &[], false, lookback),
            None
        );
        // Security officers too; other people are not administrators.
        let officer = user(&["security_officer"]);
        assert!(admin_new_network(&officer, "198.51.100.4", now, &known, true, lookback).is_some());
        let operator = user(&["operator", "auditor"]);
        assert_eq!(
            admin_new_network(&operator, "198.51.100.4", now, &known, true, lookback),
            None
        );
    }

    #[test]
    fn working_hours_are_monday_to_saturday_seven_to_nineteen_in_vietnam() {
        let h = WorkingHours::vietnam();
        for (t, working) in [
            ("2027-01-15T10:00:00+07:00", true),  // Friday
            ("2027-01-16T07:00:00+07:00", true),  // Saturday, first second
            ("2027-01-16T18:59:59+07:00", true),  // Saturday, last second
            ("2027-01-16T19:00:00+07:00", false), // Saturday evening
            ("2027-01-15T06:59:59+07:00", false), // Friday, early
            ("2027-01-15T23:00:00+07:00", false), // Friday night
            ("2027-01-17T10:00:00+07:00", false), // Sunday
            ("2027-01-15T02:00:00Z", true),       // 09:00 on Friday in Vietnam
            ("2027-01-16T12:30:00Z", false),      // 19:30 on Saturday in Vietnam
        ] {
            assert_eq!(h.contains(at(t)), working, "{t}");
        }
        assert_eq!(
            h.next_start(at("2027-01-15T23:00:00+07:00")),
            Some(at("2027-01-16T07:00:00+07:00"))
        );
        assert_eq!(
            h.next_start(at("2027-01-16T20:00:00+07:00")),
            Some(at("2027-01-18T07:00:00+07:00")),
            "Saturday evening → Monday"
        );
        assert_eq!(
            h.next_start(at("2027-01-15T10:00:00+07:00")),
            Some(at("2027-01-16T07:00:00+07:00"))
        );
        assert_eq!(h.to_string(), "mon,tue,wed,thu,fri,sat 07:00-19:00 UTC+07:00");
        let none = WorkingHours::new([], h.start, h.end, h.offset).unwrap();
        assert_eq!(none.next_start(friday_10h()), None);
        assert!(WorkingHours::new([Weekday::Mon], h.end, h.start, h.offset).is_err());
    }

    #[test]
    fn day_lists_parse_names_and_ranges() {
        use Weekday::*;
        assert_eq!(
            WorkingHours::parse_days("mon-sat"),
            Ok(vec![Mon, Tue, Wed, Thu, Fri, Sat])
        );
        assert_eq!(
            WorkingHours::parse_days("mon, wed,Friday"),
            Ok(vec![Mon, Wed, Fri])
        );
        assert_eq!(WorkingHours::parse_days("sat-mon"), Ok(vec![Sat, Sun, Mon]));
        assert!(WorkingHours::parse_days("mon,funday").is_err());
    }

    #[test]
    fn an_administrator_signing_in_at_night_or_on_sunday_is_warned() {
        let admin = user(&["system_admin", "operator"]);
        let h = WorkingHours::vietnam();
        let ip = Some("203.0.113.7");
        assert_eq!(
            admin_outside_hours(&admin, ip, friday_10h(), &h, Severity::Low),
            None
        );
        let night = at("2027-01-15T23:00:00+07:00");
        let d = admin_outside_hours(&admin, ip, night, &h, Severity::Medium).unwrap();
        assert_eq!(d.kind.as_str(), "auth.admin_outside_hours");
        assert_eq!(d.severity, Severity::Medium);
        assert_eq!(d.subject, admin.id.to_string());
        assert_eq!(d.evidence["local_time"], "2027-01-15T23:00:00+07:00");
        assert_eq!(d.evidence["weekday"], "fri");
        assert_eq!(d.evidence["ip"], "203.0.113.7");
        assert!(
            admin_outside_hours(&admin, None, at("2027-01-17T10:00:00+07:00"), &h, Severity::Low).is_some()
        );
        let analyst = user(&["analyst"]);
        assert_eq!(admin_outside_hours(&analyst, ip, night, &h, Severity::Low), None);
    }

    #[test]
    fn a_revoked_key_event_names_the_key_its_organisation_system_and_address() {
        let key = ApiKeyInfo {
            id: ApiKeyId::new(),
            org_id: OrgId::new(),
            system_id: SystemId::new(),
            prefix: "abcd1234".into(),
            created_at: friday_10h() - TimeDelta::days(30),
            revoked_at: Some(friday_10h() - TimeDelta::days(1)),
            policy: Default::default(),
            rotated_from: None,
            replaced_by: None,
        };
        let d = revoked_key_used(&key, Some("198.51.100.4"), friday_10h());
        assert_eq!(d.kind.as_str(), "auth.revoked_key_used");
        assert_eq!(d.severity, Severity::Medium);
        assert_eq!(
            d.key(),
            format!("auth.revoked_key_used:{}:2027-01-15T03:00:00Z", key.id)
        );
        assert_eq!(d.evidence["key_id"], json!(key.id));
        assert_eq!(d.evidence["org_id"], json!(key.org_id));
        assert_eq!(d.evidence["system_id"], json!(key.system_id));
        assert_eq!(d.evidence["ip"], "198.51.100.4");
        assert_eq!(d.evidence["revoked_at"], "2027-01-14T03:00:00Z");
        let e = d.clone().into_event(friday_10h());
        assert_eq!(e.kind, "auth.revoked_key_used");
        assert_eq!(e.key, d.key());
        assert_eq!(e.at, friday_10h());
    }
}
