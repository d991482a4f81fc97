//! Reporting-period approval (R-REC, issue 5 §4): once an operator approves the data of a
//! period it is read-only — records for it are held, conflicts in it cannot be resolved —
//! until someone reopens it, with a reason.
//!
//! ```text
//!   open ──approve──▶ approved ──reopen(reason)──▶ reopened ──approve──▶ approved …
//! ```

use chrono::{DateTime, Utc};
use etx_domain::{Category, OrgId, Period, UserId};
use serde::{Deserialize, Serialize};

/// Whose data an approval covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "scope", content = "org_id", rename_all = "snake_case")]
pub enum ApprovalScope {
    /// Every organisation's records of the category and period (the national data set).
    All,
    /// One organisation's records.
    Org(OrgId),
}

impl ApprovalScope {
    /// Whether records of `org` fall under this scope.
    pub fn covers(self, org: OrgId) -> bool {
        match self {
            Self::All => true,
            Self::Org(o) => o == org,
        }
    }
}

/// What one approval is about: scope, category and period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PeriodKey {
    /// Whose records.
    pub scope: ApprovalScope,
    /// Which category.
    pub category: Category,
    /// Which period.
    pub period: Period,
}

impl PeriodKey {
    /// Whether a record of `org`, `category` and `period` falls under this key.
    pub fn covers(&self, org: OrgId, category: Category, period: Period) -> bool {
        self.scope.covers(org) && self.category == category && self.period == period
    }
}

/// The reason for reopening an approved period: 10 to 1000 characters once trimmed, without
/// control characters other than line breaks and tabs, so the audit trail says why read-only
/// data was made writable again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Reason(String);

impl Reason {
    /// Parses a reason.
    pub fn parse(s: &str) -> Result<Self, PeriodError> {
        let t = s.trim();
        let n = t.chars().count();
        if !(10..=1000).contains(&n)
            || t.chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(PeriodError::InvalidReason);
        }
        Ok(Self(t.to_owned()))
    }

    /// The reason.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Reason {
    type Error = PeriodError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.0
    }
}

/// Why a period change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    /// The period is already approved.
    #[error("the period is already approved")]
    AlreadyApproved,
    /// Only an approved period can be reopened.
    #[error("the period is not approved")]
    NotApproved,
    /// A reopening needs a reason of 10 to 1000 characters.
    #[error("a reason of 10 to 1000 characters is required")]
    InvalidReason,
}

/// The state of a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PeriodState {
    /// Never approved: writable.
    Open,
    /// Approved: read-only.
    Approved {
        /// By whom.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
    },
    /// Approved once, then reopened: writable.
    Reopened {
        /// By whom.
        by: UserId,
        /// When.
        at: DateTime<Utc>,
        /// Why.
        reason: Reason,
    },
}

/// One change of a period's state, kept for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodEvent {
    /// The state entered.
    pub state: PeriodState,
}

/// The approval state of one [`PeriodKey`], with its history.
///
/// ```
/// use chrono::Utc;
/// use etx_domain::{Category, Period, UserId};
/// use etx_reconciliation_core::period::{ApprovalScope, PeriodApproval, PeriodError, PeriodKey, Reason};
/// let key = PeriodKey { scope: ApprovalScope::All, category: Category::Statistics, period: Period::parse("2026-10").unwrap() };
/// let operator = UserId::new();
/// let approved = PeriodApproval::open(key).approve(operator, Utc::now()).unwrap();
/// assert!(approved.is_read_only());
/// assert_eq!(approved.clone().approve(operator, Utc::now()).err(), Some(PeriodError::AlreadyApproved));
/// let reason = Reason::parse("Sở Tư pháp Hà Nội gửi bổ sung số liệu tháng 10").unwrap();
/// let reopened = approved.reopen(operator, reason, Utc::now()).unwrap();
/// assert!(!reopened.is_read_only());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodApproval {
    /// What it is about.
    pub key: PeriodKey,
    /// Its state.
    pub state: PeriodState,
    /// Optimistic-concurrency version: 0 for a period never stored, +1 on every change.
    pub version: u64,
    /// Every change, oldest first.
    pub history: Vec<PeriodEvent>,
}

impl PeriodApproval {
    /// A period never approved.
    pub fn open(key: PeriodKey) -> Self {
        Self {
            key,
            state: PeriodState::Open,
            version: 0,
            history: Vec::new(),
        }
    }

    /// Whether the period is read-only.
    pub fn is_read_only(&self) -> bool {
        matches!(self.state, PeriodState::Approved { .. })
    }

    /// Approves the period: open or reopened → approved.
    pub fn approve(self, by: UserId, at: DateTime<Utc>) -> Result<Self, PeriodError> {
        if self.is_read_only() {
            return Err(PeriodError::AlreadyApproved);
        }
        Ok(self.enter(PeriodState::Approved { by, at }))
    }

    /// Reopens the period: approved → reopened, with a reason.
    pub fn reopen(self, by: UserId, reason: Reason, at: DateTime<Utc>) -> Result<Self, PeriodError> {
        if !self.is_read_only() {
            return Err(PeriodError::NotApproved);
        }
        Ok(self.enter(PeriodState::Reopened { by, at, reason }))
    }

    fn enter(mut self, state: PeriodState) -> Self {
        self.history.push(PeriodEvent { state: state.clone() });
        self.state = state;
        self.version += 1;
        self
    }
}

/// The first read-only approval among `approvals` that covers a record of `org`, `category`
/// and `period`.
pub fn holding(
    approvals: &[PeriodApproval],
    org: OrgId,
    category: Category,
    period: Period,
) -> Option<&PeriodApproval> {
    let mut covering: Vec<&PeriodApproval> = approvals
        .iter()
        .filter(|a| a.is_read_only() && a.key.covers(org, category, period))
        .collect();
    covering.sort_by_key(|a| a.key);
    covering.into_iter().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scope: ApprovalScope) -> PeriodKey {
        PeriodKey {
            scope,
            category: Category::Statistics,
            period: Period::parse("2026-10").unwrap(),
        }
    }

    #[test]
    fn the_state_machine_allows_only_its_transitions() {
        let op = UserId::new();
        let now = Utc::now();
        let reason = || Reason::parse("Bổ sung số liệu của Sở Tư pháp Hà Nội").unwrap();
        let open = PeriodApproval::open(key(ApprovalScope::All));
        assert!(!open.is_read_only());
        assert_eq!(
            open.clone().reopen(op, reason(), now),
            Err(PeriodError::NotApproved)
        );
        let approved = open.approve(op, now).unwrap();
        assert_eq!(approved.version, 1);
        assert_eq!(
            approved.clone().approve(op, now),
            Err(PeriodError::AlreadyApproved)
        );
        let reopened = approved.reopen(op, reason(), now).unwrap();
        assert!(matches!(reopened.state, PeriodState::Reopened { .. }));
        assert_eq!(
            reopened.clone().reopen(op, reason(), now),
            Err(PeriodError::NotApproved)
        );
        let again = reopened.approve(op, now).unwrap();
        assert!(again.is_read_only());
        assert_eq!(again.version, 3);
        assert_eq!(again.history.len(), 3);
    }

    #[test]
    fn reopening_needs_a_real_reason() {
        for bad in ["", "   ", "quá ngắn", &"x".repeat(1001), "mười ký tự\u{0}nữa"] {
            assert_eq!(Reason::parse(bad), Err(PeriodError::InvalidReason), "{bad}");
        }
        assert!(
            Reason::parse("  Sửa số liệu theo công văn 12/STP  ").is_ok_and(|r| !r.as_str().starts_with(' '))
        );
        assert!(serde_json::from_str::<Reason>("\"ngắn\"").is_err());
    }

    #[test]
    fn an_approval_holds_only_the_records_it_covers() {
        let op = UserId::new();
        let org = OrgId::new();
        let other = OrgId::new();
        let p = Period::parse("2026-10").unwrap();
        let q = Period::parse("2026-11").unwrap();
        let org_only = PeriodApproval::open(key(ApprovalScope::Org(org)))
            .approve(op, Utc::now())
            .unwrap();
        let approvals = [org_only];
        assert!(holding(&approvals, org, Category::Statistics, p).is_some());
        assert!(holding(&approvals, other, Category::Statistics, p).is_none());
        assert!(holding(&approvals, org, Category::Statistics, q).is_none());
        assert!(holding(&approvals, org, Category::Policy, p).is_none());
        let all = PeriodApproval::open(key(ApprovalScope::All));
        assert!(
            holding(std::slice::from_ref(&all), other, Category::Statistics, p).is_none(),
            "open"
        );
        let all = all.approve(op, Utc::now()).unwrap();
        assert!(holding(&[all], other, Category::Statistics, p).is_some());
    }
}
