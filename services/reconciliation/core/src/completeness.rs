//! Completeness of submissions per organisation and period (R-REC, R-REP, issue 5 §4): which
//! expected submissions arrived on time, late, or not at all — plain data for reports
//! (Quá hạn = late, Thiếu = missing).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use etx_domain::{Category, OrgId, Period, RecordId};
use serde::{Deserialize, Serialize};

/// A submission an organisation owes: one category for one period, due by a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ExpectedSubmission {
    /// Who owes it.
    pub org_id: OrgId,
    /// Which category.
    pub category: Category,
    /// Which period.
    pub period: Period,
    /// When it is due.
    pub deadline: DateTime<Utc>,
}

/// A record received (any decision but a refusal: duplicates count once, by their first
/// arrival).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReceivedSubmission {
    /// Who sent it.
    pub org_id: OrgId,
    /// Its category.
    pub category: Category,
    /// Its period.
    pub period: Period,
    /// The record.
    pub record_id: RecordId,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

/// Where one expected submission stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SubmissionStatus {
    /// Received by the deadline.
    OnTime {
        /// The first record received.
        first_record: RecordId,
        /// When.
        received_at: DateTime<Utc>,
    },
    /// Received after the deadline (Quá hạn).
    Late {
        /// The first record received.
        first_record: RecordId,
        /// When.
        received_at: DateTime<Utc>,
        /// How many whole seconds after the deadline.
        seconds_late: i64,
    },
    /// Not received and past the deadline (Thiếu).
    Missing,
    /// Not received, not yet due.
    Pending,
}

/// One expected submission and its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectationStatus {
    /// The category.
    pub category: Category,
    /// The deadline.
    pub deadline: DateTime<Utc>,
    /// Where it stands.
    pub status: SubmissionStatus,
}

/// The completeness of one organisation for one period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgPeriodCompleteness {
    /// The organisation.
    pub org_id: OrgId,
    /// The period.
    pub period: Period,
    /// How many submissions were expected.
    pub expected: usize,
    /// How many of them were received (on time or late).
    pub received: usize,
    /// How many were received on time.
    pub on_time: usize,
    /// How many were received late.
    pub late: usize,
    /// How many are missing (past the deadline, not received).
    pub missing: usize,
    /// How many are not yet due and not received.
    pub pending: usize,
    /// Every expected submission, by category.
    pub items: Vec<ExpectationStatus>,
    /// Categories received for this period that nobody expected.
    pub unexpected: Vec<Category>,
}

/// Completeness per organisation and period, as of `as_of`, ordered by organisation then
/// period. An expectation listed twice counts once (the earlier deadline). Received records of
/// an organisation and period with no expectation at all are not reported.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use etx_domain::{Category, OrgId, Period, RecordId};
/// use etx_reconciliation_core::completeness::*;
/// let hanoi = OrgId::new();
/// let oct = Period::parse("2026-10").unwrap();
/// let deadline = Utc.with_ymd_and_hms(2026, 11, 10, 17, 0, 0).unwrap();
/// let expected = [
///     ExpectedSubmission { org_id: hanoi, category: Category::Statistics, period: oct, deadline },
///     ExpectedSubmission { org_id: hanoi, category: Category::Enforcement, period: oct, deadline },
/// ];
/// let received = [ReceivedSubmission {
///     org_id: hanoi, category: Category::Statistics, period: oct,
///     record_id: RecordId::new(), received_at: Utc.with_ymd_and_hms(2026, 11, 12, 9, 0, 0).unwrap(),
/// }];
/// let report = completeness(&expected, &received, Utc.with_ymd_and_hms(2026, 11, 15, 0, 0, 0).unwrap());
/// assert_eq!((report[0].expected, report[0].received, report[0].late, report[0].missing), (2, 1, 1, 1));
/// ```
pub fn completeness(
    expected: &[ExpectedSubmission],
    received: &[ReceivedSubmission],
    as_of: DateTime<Utc>,
) -> Vec<OrgPeriodCompleteness> {
    let mut deadlines: BTreeMap<(OrgId, Period), BTreeMap<Category, DateTime<Utc>>> = BTreeMap::new();
    for e in expected {
        let slot = deadlines.entry((e.org_id, e.period)).or_default();
        let d = slot.entry(e.category).or_insert(e.deadline);
        *d = (*d).min(e.deadline);
    }
    let mut first: BTreeMap<(OrgId, Period, Category), (DateTime<Utc>, RecordId)> = BTreeMap::new();
    for r in received {
        let slot = first
            .entry((r.org_id, r.period, r.category))
            .or_insert((r.received_at, r.record_id));
        *slot = (*slot).min((r.received_at, r.record_id));
    }
    deadlines
        .into_iter()
        .map(|((org_id, period), cats)| {
            let items: Vec<ExpectationStatus> = cats
                .iter()
                .map(|(category, deadline)| {
                    let status = match first.get(&(org_id, period, *category)) {
                        Some((at, rec)) if at <= deadline => SubmissionStatus::OnTime {
                            first_record: *rec,
                            received_at: *at,
                        },
                        Some((at, rec)) => SubmissionStatus::Late {
                            first_record: *rec,
                            received_at: *at,
                            seconds_late: (*at - *deadline).num_seconds(),
                        },
                        None if as_of > *deadline => SubmissionStatus::Missing,
                        None => SubmissionStatus::Pending,
                    };
                    ExpectationStatus {
                        category: *category,
                        deadline: *deadline,
                        status,
                    }
                })
                .collect();
            let count = |f: fn(&SubmissionStatus) -> bool| items.iter().filter(|i| f(&i.status)).count();
            let on_time = count(|s| matches!(s, SubmissionStatus::OnTime { .. }));
            let late = count(|s| matches!(s, SubmissionStatus::Late { .. }));
            let missing = count(|s| matches!(s, SubmissionStatus::Missing));
            let pending = count(|s| matches!(s, SubmissionStatus::Pending));
            let unexpected = first
                .range((org_id, period, Category::Policy)..=(org_id, period, Category::Enforcement))
                .map(|((_, _, c), _)| *c)
                .filter(|c| !cats.contains_key(c))
                .collect();
            OrgPeriodCompleteness {
                org_id,
                period,
                expected: items.len(),
                received: on_time + late,
                on_time,
                late,
                missing,
                pending,
                items,
                unexpected,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap()
    }

    #[test]
    fn each_expectation_is_on_time_late_missing_or_pending() {
        let (hn, hcm) = (OrgId::new(), OrgId::new());
        let oct = Period::parse("2026-10").unwrap();
        let q4 = Period::parse("2026-Q4").unwrap();
        let exp = |org, category, period, deadline| ExpectedSubmission {
            org_id: org,
            category,
            period,
            deadline,
        };
        let expected = [
            exp(hn, Category::Statistics, oct, at(10, 10)),
            exp(hn, Category::Workforce, oct, at(10, 10)),
            exp(hn, Category::Enforcement, oct, at(10, 10)),
            exp(hn, Category::Policy, oct, at(30, 10)),
            exp(hcm, Category::Statistics, oct, at(10, 10)),
            // Listed twice: the earlier deadline counts.
            exp(hcm, Category::Statistics, oct, at(5, 10)),
            exp(hcm, Category::Statistics, q4, at(20, 10)),
        ];
        let rec = |org, category, period, received_at| ReceivedSubmission {
            org_id: org,
            category,
            period,
            record_id: RecordId::new(),
            received_at,
        };
        let received = [
            rec(hn, Category::Statistics, oct, at(9, 8)),
            // A second record of the same submission does not count again.
            rec(hn, Category::Statistics, oct, at(12, 8)),
            rec(hn, Category::Workforce, oct, at(11, 8)),
            rec(hcm, Category::Statistics, oct, at(7, 8)),
            rec(hcm, Category::Enforcement, oct, at(7, 8)),
        ];
        let report = completeness(&expected, &received, at(15, 0));
        assert_eq!(report.len(), 3);
        let hn_oct = report.iter().find(|r| r.org_id == hn).unwrap();
        assert_eq!(
            (
                hn_oct.expected,
                hn_oct.received,
                hn_oct.on_time,
                hn_oct.late,
                hn_oct.missing,
                hn_oct.pending
            ),
            (4, 2, 1, 1, 1, 1)
        );
        let late = hn_oct
            .items
            .iter()
            .find(|i| i.category == Category::Workforce)
            .unwrap();
        assert!(
            matches!(late.status, SubmissionStatus::Late { seconds_late, .. } if seconds_late == 86_400 - 7_200)
        );
        let hcm_oct = report
            .iter()
            .find(|r| r.org_id == hcm && r.period == oct)
            .unwrap();
        assert_eq!((hcm_oct.expected, hcm_oct.late), (1, 1), "deadline of the 5th");
        assert_eq!(hcm_oct.unexpected, vec![Category::Enforcement]);
        let hcm_q4 = report.iter().find(|r| r.org_id == hcm && r.period == q4).unwrap();
        assert_eq!(hcm_q4.pending, 1);
    }

    #[test]
    fn nothing_expected_gives_an_empty_report() {
        assert!(completeness(&[], &[], at(1, 0)).is_empty());
    }
}
