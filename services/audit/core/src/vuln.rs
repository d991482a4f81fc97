//! The vulnerability register (R-SEC-8): findings with severity, description, affected
//! component, remediation plan, owner, deadline and status; which status changes are allowed;
//! when a finding is overdue.
//!
//! # Status changes
//! | from | to |
//! |---|---|
//! | `open` | `in_progress`, `remediated`, `accepted_risk` |
//! | `in_progress` | `open`, `remediated`, `accepted_risk` |
//! | `remediated` | `in_progress` (the fix did not hold), `closed` |
//! | `accepted_risk` | `open`, `in_progress`, `closed` |
//! | `closed` | nothing: a finding that comes back is registered anew |
//!
//! Keeping the same status is always allowed (other fields change).
//!
//! # Overdue
//! A finding is overdue when its status is `open` or `in_progress` and its deadline has
//! passed, i.e. today's date in Vietnam (UTC+07:00, no daylight saving) is after the deadline
//! — a finding due on 1 March is overdue from 2 March 00:00 Hà Nội time.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use etx_domain::{FieldViolation, ViolationCode};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// A finding's id (UUIDv7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FindingId(Uuid);

impl FindingId {
    /// A new, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    /// Wraps a stored id.
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }
    /// The UUID.
    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for FindingId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for FindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for FindingId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

macro_rules! named_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$(Self::$variant),+];

            /// The stored and wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            /// The value with this name.
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            /// The names, comma-separated (for error details).
            pub fn names() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// How severe a finding (or a security event) is.
    Severity {
        /// Exploitable now with serious impact.
        Critical = "critical",
        /// Serious.
        High = "high",
        /// Moderate.
        Medium = "medium",
        /// Minor.
        Low = "low",
    }
);

named_enum!(
    /// Where a finding is in its life (see the module docs for the allowed changes).
    FindingStatus {
        /// Registered, not yet worked on.
        Open = "open",
        /// Being remediated.
        InProgress = "in_progress",
        /// Fixed, awaiting confirmation.
        Remediated = "remediated",
        /// Not fixed, by a documented decision.
        AcceptedRisk = "accepted_risk",
        /// Done.
        Closed = "closed",
    }
);

impl FindingStatus {
    /// Whether a finding in this status still waits for remediation (and so can be overdue).
    pub fn awaits_remediation(self) -> bool {
        matches!(self, Self::Open | Self::InProgress)
    }

    /// The statuses this one may change to (besides itself).
    pub fn next(self) -> &'static [FindingStatus] {
        use FindingStatus::*;
        match self {
            Open => &[InProgress, Remediated, AcceptedRisk],
            InProgress => &[Open, Remediated, AcceptedRisk],
            Remediated => &[InProgress, Closed],
            AcceptedRisk => &[Open, InProgress, Closed],
            Closed => &[],
        }
    }

    /// Whether a finding in this status may be set to `to`.
    pub fn can_become(self, to: FindingStatus) -> bool {
        self == to || self.next().contains(&to)
    }
}

/// Today's date in Vietnam (UTC+07:00), the calendar deadlines are written in.
pub fn vietnam_date(now: DateTime<Utc>) -> NaiveDate {
    let offset = FixedOffset::east_opt(7 * 3600).unwrap_or_else(|| unreachable!("+07:00 is a valid offset"));
    now.with_timezone(&offset).date_naive()
}

/// The last overdue event emitted for a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OverdueNotice {
    /// The deadline it was about.
    pub deadline: NaiveDate,
    /// The (Vietnam) date it was emitted.
    pub on: NaiveDate,
}

/// A registered finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Id.
    pub id: FindingId,
    /// Short title.
    pub title: String,
    /// What was found.
    pub description: String,
    /// Severity.
    pub severity: Severity,
    /// The affected component (service, host, library…).
    pub component: String,
    /// How it will be remediated (may be empty until planned).
    pub remediation_plan: String,
    /// Who is responsible.
    pub owner: String,
    /// When it must be remediated by.
    pub deadline: NaiveDate,
    /// Status.
    pub status: FindingStatus,
    /// Registered at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
    /// Incremented by every change (optimistic concurrency).
    pub version: i64,
    /// The last overdue event emitted.
    pub overdue_notice: Option<OverdueNotice>,
}

impl Finding {
    /// Whether the finding is overdue at `now` (see the module docs).
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.status.awaits_remediation() && vietnam_date(now) > self.deadline
    }

    /// Whether an overdue event is due at `now`: the finding is overdue and no event was
    /// emitted for this deadline — and, when the deadline was changed, none today (at most one
    /// event per finding per day).
    pub fn needs_overdue_notice(&self, now: DateTime<Utc>) -> bool {
        if !self.is_overdue(now) {
            return false;
        }
        match self.overdue_notice {
            None => true,
            Some(n) => n.deadline != self.deadline && n.on != vietnam_date(now),
        }
    }

    /// The finding with `changes` applied at `now`, or the violations (an unknown status
    /// change is a violation at `/status`).
    pub fn apply(
        &self,
        changes: &FindingChanges,
        now: DateTime<Utc>,
    ) -> Result<Finding, Vec<FieldViolation>> {
        let mut f = self.clone();
        if let Some(to) = changes.status {
            if !self.status.can_become(to) {
                let allowed = self.status.next().iter().map(|s| s.as_str()).collect::<Vec<_>>();
                let detail = if allowed.is_empty() {
                    format!("a {} finding cannot change status", self.status)
                } else {
                    format!(
                        "from {} the status can become {}",
                        self.status,
                        allowed.join(", ")
                    )
                };
                return Err(vec![
                    FieldViolation::new("/status", ViolationCode::Invalid).with_detail(detail),
                ]);
            }
            f.status = to;
        }
        let set = |slot: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                slot.clone_from(v);
            }
        };
        set(&mut f.title, &changes.title);
        set(&mut f.description, &changes.description);
        set(&mut f.component, &changes.component);
        set(&mut f.remediation_plan, &changes.remediation_plan);
        set(&mut f.owner, &changes.owner);
        if let Some(s) = changes.severity {
            f.severity = s;
        }
        if let Some(d) = changes.deadline {
            f.deadline = d;
        }
        f.updated_at = now;
        f.version = self.version.saturating_add(1);
        Ok(f)
    }
}

/// A finding as submitted, before checking (every field as received).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingDraft {
    /// Title (1–200 characters, one line).
    pub title: Option<String>,
    /// Description (1–10,000 characters).
    pub description: Option<String>,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: Option<String>,
    /// Affected component (1–200 characters, one line).
    pub component: Option<String>,
    /// Remediation plan (up to 10,000 characters; may be empty).
    pub remediation_plan: Option<String>,
    /// Owner (1–200 characters, one line).
    pub owner: Option<String>,
    /// Deadline, `YYYY-MM-DD`.
    pub deadline: Option<String>,
}

/// A checked new finding: holding one means every field is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFinding {
    title: String,
    description: String,
    severity: Severity,
    component: String,
    remediation_plan: String,
    owner: String,
    deadline: NaiveDate,
}

/// Limits of the text fields.
const LINE_MAX: usize = 200;
const TEXT_MAX: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// One line, not empty.
    Line,
    /// Multi-line, not empty.
    Text,
    /// Multi-line, may be empty.
    OptionalText,
}

fn check_text(path: &str, v: &str, shape: Shape, bad: &mut Vec<FieldViolation>) -> Option<String> {
    let v = v.trim();
    let max = if shape == Shape::Line { LINE_MAX } else { TEXT_MAX };
    let n = v.chars().count();
    let control = |c: char| c.is_control() && !(shape != Shape::Line && matches!(c, '\n' | '\r' | '\t'));
    if n == 0 && shape != Shape::OptionalText {
        bad.push(FieldViolation::new(path, ViolationCode::TooSmall).with_detail("must not be empty"));
        None
    } else if n > max {
        bad.push(
            FieldViolation::new(path, ViolationCode::TooLarge)
                .with_detail(format!("at most {max} characters")),
        );
        None
    } else if v.chars().any(control) {
        bad.push(
            FieldViolation::new(path, ViolationCode::Format).with_detail(if shape == Shape::Line {
                "must be one line without control characters"
            } else {
                "must not contain control characters other than line breaks and tabs"
            }),
        );
        None
    } else {
        Some(v.to_owned())
    }
}

fn required<'a>(path: &str, v: &'a Option<String>, bad: &mut Vec<FieldViolation>) -> Option<&'a str> {
    if v.is_none() {
        bad.push(FieldViolation::new(path, ViolationCode::Required));
    }
    v.as_deref()
}

fn check_severity(v: &str, bad: &mut Vec<FieldViolation>) -> Option<Severity> {
    let s = Severity::parse(v.trim());
    if s.is_none() {
        bad.push(
            FieldViolation::new("/severity", ViolationCode::Enum)
                .with_detail(format!("expected one of {}", Severity::names())),
        );
    }
    s
}

fn check_date(v: &str, bad: &mut Vec<FieldViolation>) -> Option<NaiveDate> {
    let d = NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").ok();
    if d.is_none() {
        bad.push(
            FieldViolation::new("/deadline", ViolationCode::Format).with_detail("expected a date YYYY-MM-DD"),
        );
    }
    d
}

impl NewFinding {
    /// Checks every field; all problems are reported at once, with JSON-Pointer paths
    /// (`/title`, `/deadline`, …).
    pub fn parse(d: &FindingDraft) -> Result<Self, Vec<FieldViolation>> {
        let mut bad = Vec::new();
        let title = required("/title", &d.title, &mut bad)
            .and_then(|v| check_text("/title", v, Shape::Line, &mut bad));
        let description = required("/description", &d.description, &mut bad)
            .and_then(|v| check_text("/description", v, Shape::Text, &mut bad));
        let severity = required("/severity", &d.severity, &mut bad).and_then(|v| check_severity(v, &mut bad));
        let component = required("/component", &d.component, &mut bad)
            .and_then(|v| check_text("/component", v, Shape::Line, &mut bad));
        let remediation_plan = check_text(
            "/remediation_plan",
            d.remediation_plan.as_deref().unwrap_or_default(),
            Shape::OptionalText,
            &mut bad,
        );
        let owner = required("/owner", &d.owner, &mut bad)
            .and_then(|v| check_text("/owner", v, Shape::Line, &mut bad));
        let deadline = required("/deadline", &d.deadline, &mut bad).and_then(|v| check_date(v, &mut bad));
        match (
            title,
            description,
            severity,
            component,
            remediation_plan,
            owner,
            deadline,
        ) {
            (
                Some(title),
                Some(description),
                Some(severity),
                Some(component),
                Some(remediation_plan),
                Some(owner),
                Some(deadline),
            ) if bad.is_empty() => Ok(Self {
                title,
                description,
                severity,
                component,
                remediation_plan,
                owner,
                deadline,
            }),
            _ => Err(bad),
        }
    }

    /// The finding registered at `now` with status `open`.
    pub fn register(self, now: DateTime<Utc>) -> Finding {
        Finding {
            id: FindingId::new(),
            title: self.title,
            description: self.description,
            severity: self.severity,
            component: self.component,
            remediation_plan: self.remediation_plan,
            owner: self.owner,
            deadline: self.deadline,
            status: FindingStatus::Open,
            created_at: now,
            updated_at: now,
            version: 1,
            overdue_notice: None,
        }
    }
}

/// A change to a finding as submitted (every field optional).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingPatchDraft {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New severity.
    pub severity: Option<String>,
    /// New component.
    pub component: Option<String>,
    /// New remediation plan.
    pub remediation_plan: Option<String>,
    /// New owner.
    pub owner: Option<String>,
    /// New deadline.
    pub deadline: Option<String>,
    /// New status.
    pub status: Option<String>,
}

/// A checked change (transitions are checked against the finding by [`Finding::apply`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingChanges {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New severity.
    pub severity: Option<Severity>,
    /// New component.
    pub component: Option<String>,
    /// New remediation plan.
    pub remediation_plan: Option<String>,
    /// New owner.
    pub owner: Option<String>,
    /// New deadline.
    pub deadline: Option<NaiveDate>,
    /// New status.
    pub status: Option<FindingStatus>,
}

impl FindingChanges {
    /// Checks every given field like [`NewFinding::parse`]; a change with no field is refused.
    pub fn parse(d: &FindingPatchDraft) -> Result<Self, Vec<FieldViolation>> {
        let mut bad = Vec::new();
        let text = |path: &str, v: &Option<String>, shape: Shape, bad: &mut Vec<FieldViolation>| {
            v.as_deref().and_then(|v| check_text(path, v, shape, bad))
        };
        let out = Self {
            title: text("/title", &d.title, Shape::Line, &mut bad),
            description: text("/description", &d.description, Shape::Text, &mut bad),
            severity: d.severity.as_deref().and_then(|v| check_severity(v, &mut bad)),
            component: text("/component", &d.component, Shape::Line, &mut bad),
            remediation_plan: text(
                "/remediation_plan",
                &d.remediation_plan,
                Shape::OptionalText,
                &mut bad,
            ),
            owner: text("/owner", &d.owner, Shape::Line, &mut bad),
            deadline: d.deadline.as_deref().and_then(|v| check_date(v, &mut bad)),
            status: d.status.as_deref().and_then(|v| {
                let s = FindingStatus::parse(v.trim());
                if s.is_none() {
                    bad.push(
                        FieldViolation::new("/status", ViolationCode::Enum)
                            .with_detail(format!("expected one of {}", FindingStatus::names())),
                    );
                }
                s
            }),
        };
        if *d == FindingPatchDraft::default() {
            bad.push(
                FieldViolation::new("", ViolationCode::Required)
                    .with_detail("give at least one field to change"),
            );
        }
        if bad.is_empty() { Ok(out) } else { Err(bad) }
    }

    /// The names of the fields this change sets (for the audit entry).
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("title", self.title.is_some()),
            ("description", self.description.is_some()),
            ("severity", self.severity.is_some()),
            ("component", self.component.is_some()),
            ("remediation_plan", self.remediation_plan.is_some()),
            ("owner", self.owner.is_some()),
            ("deadline", self.deadline.is_some()),
            ("status", self.status.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect()
    }
}

/// Which findings to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FindingFilter {
    /// Only this status.
    pub status: Option<FindingStatus>,
    /// Only this severity.
    pub severity: Option<Severity>,
    /// Only overdue (`true`) or only not overdue (`false`) findings.
    pub overdue: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn draft() -> FindingDraft {
        FindingDraft {
            title: Some("TLS 1.0 enabled on the SOAP endpoint".into()),
            description: Some("The legacy listener accepts TLS 1.0.\nSee scan report.".into()),
            severity: Some("high".into()),
            component: Some("gateway".into()),
            remediation_plan: None,
            owner: Some("Nguyễn Văn A".into()),
            deadline: Some("2027-03-01".into()),
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn finding(status: FindingStatus) -> Finding {
        let mut f = NewFinding::parse(&draft())
            .map(|n| n.register(utc(2027, 1, 1, 0)))
            .unwrap_or_else(|v| panic!("{v:?}"));
        f.status = status;
        f
    }

    #[test]
    fn a_valid_draft_registers_an_open_finding() {
        let f = finding(FindingStatus::Open);
        assert_eq!(f.status, FindingStatus::Open);
        assert_eq!(f.severity, Severity::High);
        assert_eq!(f.remediation_plan, "");
        assert_eq!(f.version, 1);
    }

    #[test]
    fn every_bad_field_is_reported_with_its_path() {
        let d = FindingDraft {
            title: Some("  ".into()),
            description: None,
            severity: Some("urgent".into()),
            component: Some("a\u{7}b".into()),
            remediation_plan: Some("x".repeat(TEXT_MAX + 1)),
            owner: Some("o".repeat(LINE_MAX + 1)),
            deadline: Some("01/03/2027".into()),
        };
        let got: Vec<(String, ViolationCode)> = NewFinding::parse(&d)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.path, v.code))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/title".into(), ViolationCode::TooSmall),
                ("/description".into(), ViolationCode::Required),
                ("/severity".into(), ViolationCode::Enum),
                ("/component".into(), ViolationCode::Format),
                ("/remediation_plan".into(), ViolationCode::TooLarge),
                ("/owner".into(), ViolationCode::TooLarge),
                ("/deadline".into(), ViolationCode::Format),
            ]
        );
    }

    #[test]
    fn overdue_follows_the_vietnam_calendar_and_the_status() {
        let f = finding(FindingStatus::Open); // due 2027-03-01
        // 2027-03-01 16:59 UTC is 23:59 in Hà Nội: still due today.
        assert!(
            !f.is_overdue(
                Utc.with_ymd_and_hms(2027, 3, 1, 16, 59, 0)
                    .single()
                    .unwrap_or_default()
            )
        );
        // 17:00 UTC is midnight in Hà Nội: overdue.
        assert!(f.is_overdue(utc(2027, 3, 1, 17)));
        for s in FindingStatus::ALL {
            let g = Finding {
                status: *s,
                ..f.clone()
            };
            assert_eq!(
                g.is_overdue(utc(2027, 6, 1, 0)),
                matches!(s, FindingStatus::Open | FindingStatus::InProgress),
                "{s}"
            );
        }
    }

    #[test]
    fn an_overdue_notice_is_due_once_per_deadline_and_at_most_daily() {
        let mut f = finding(FindingStatus::InProgress);
        let day1 = utc(2027, 3, 2, 3);
        assert!(f.needs_overdue_notice(day1));
        f.overdue_notice = Some(OverdueNotice {
            deadline: f.deadline,
            on: vietnam_date(day1),
        });
        assert!(!f.needs_overdue_notice(day1));
        assert!(
            !f.needs_overdue_notice(utc(2027, 3, 9, 3)),
            "not again for the same deadline"
        );
        // The deadline moved and passed again the same day: wait until tomorrow.
        f.deadline = NaiveDate::from_ymd_opt(2027, 3, 1)
            .unwrap_or_default()
            .pred_opt()
            .unwrap_or_default();
        assert!(!f.needs_overdue_notice(day1));
        assert!(f.needs_overdue_notice(utc(2027, 3, 3, 3)));
        assert!(!finding(FindingStatus::Remediated).needs_overdue_notice(day1));
    }

    #[test]
    fn transitions_follow_the_table() {
        use FindingStatus::*;
        let allowed = [
            (Open, InProgress),
            (Open, Remediated),
            (Open, AcceptedRisk),
            (InProgress, Open),
            (InProgress, Remediated),
            (InProgress, AcceptedRisk),
            (Remediated, InProgress),
            (Remediated, Closed),
            (AcceptedRisk, Open),
            (AcceptedRisk, InProgress),
            (AcceptedRisk, Closed),
        ];
        for from in FindingStatus::ALL {
            for to in FindingStatus::ALL {
                let expect = from == to || allowed.contains(&(*from, *to));
                assert_eq!(from.can_become(*to), expect, "{from} -> {to}");
                let changes = FindingChanges {
                    status: Some(*to),
                    ..Default::default()
                };
                let r = finding(*from).apply(&changes, utc(2027, 2, 1, 0));
                assert_eq!(r.is_ok(), expect, "{from} -> {to}");
                if let Err(v) = r {
                    assert_eq!(v[0].path, "/status");
                }
            }
        }
    }

    #[test]
    fn applying_changes_bumps_the_version_and_keeps_the_rest() {
        let f = finding(FindingStatus::Open);
        let c = FindingChanges::parse(&FindingPatchDraft {
            owner: Some("Trần Thị B".into()),
            status: Some("in_progress".into()),
            ..Default::default()
        })
        .unwrap_or_default();
        assert_eq!(c.fields(), vec!["owner", "status"]);
        let g = f
            .apply(&c, utc(2027, 2, 1, 0))
            .unwrap_or_else(|v| panic!("{v:?}"));
        assert_eq!(
            (g.owner.as_str(), g.status, g.version),
            ("Trần Thị B", FindingStatus::InProgress, 2)
        );
        assert_eq!((g.title, g.created_at), (f.title, f.created_at));
    }

    #[test]
    fn empty_or_bad_patches_are_refused() {
        let e = FindingChanges::parse(&FindingPatchDraft::default())
            .err()
            .unwrap_or_default();
        assert_eq!(e.len(), 1);
        let e = FindingChanges::parse(&FindingPatchDraft {
            status: Some("done".into()),
            deadline: Some("tomorrow".into()),
            ..Default::default()
        })
        .err()
        .unwrap_or_default();
        let paths: Vec<&str> = e.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, vec!["/deadline", "/status"]);
    }
}
