//! Reporting periods (day, month, quarter, year), written `2026-10-05`, `2026-10`, `2026-Q3`
//! and `2026`, as sources report them.

use crate::{ParseError, ViolationCode};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A reporting period. Years are limited to 1945..=2200 so that a typo cannot create a period
/// nobody can report on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Period {
    /// One calendar day.
    Day(NaiveDate),
    /// A calendar month (1..=12).
    Month { year: i32, month: u32 },
    /// A calendar quarter (1..=4).
    Quarter { year: i32, quarter: u32 },
    /// A calendar year.
    Year(i32),
}

const MIN_YEAR: i32 = 1945;
const MAX_YEAR: i32 = 2200;

fn bad(s: &str) -> ParseError {
    ParseError::new(
        ViolationCode::Format,
        format!("`{s}` is not a period (expected YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD)"),
    )
}

fn year(s: &str, whole: &str) -> Result<i32, ParseError> {
    if s.len() != 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(whole));
    }
    let y: i32 = s.parse().map_err(|_| bad(whole))?;
    if (MIN_YEAR..=MAX_YEAR).contains(&y) {
        Ok(y)
    } else {
        Err(bad(whole))
    }
}

impl Period {
    /// Parses a period string.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        let parts: Vec<&str> = t.split('-').collect();
        match parts.as_slice() {
            [y] => Ok(Self::Year(year(y, s)?)),
            [y, q] if q.len() == 2 && (q.starts_with('Q') || q.starts_with('q')) => {
                let quarter: u32 = q[1..].parse().map_err(|_| bad(s))?;
                if !(1..=4).contains(&quarter) {
                    return Err(bad(s));
                }
                Ok(Self::Quarter {
                    year: year(y, s)?,
                    quarter,
                })
            }
            [y, m] if m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit()) => {
                let month: u32 = m.parse().map_err(|_| bad(s))?;
                if !(1..=12).contains(&month) {
                    return Err(bad(s));
                }
                Ok(Self::Month {
                    year: year(y, s)?,
                    month,
                })
            }
            [y, m, d] if m.len() == 2 && d.len() == 2 => {
                let yy = year(y, s)?;
                let mm: u32 = m.parse().map_err(|_| bad(s))?;
                let dd: u32 = d.parse().map_err(|_| bad(s))?;
                NaiveDate::from_ymd_opt(yy, mm, dd)
                    .map(Self::Day)
                    .ok_or_else(|| bad(s))
            }
            _ => Err(bad(s)),
        }
    }

    /// The first day of the period.
    pub fn start(&self) -> NaiveDate {
        let d = match *self {
            Self::Day(d) => Some(d),
            Self::Month { year, month } => NaiveDate::from_ymd_opt(year, month, 1),
            Self::Quarter { year, quarter } => NaiveDate::from_ymd_opt(year, (quarter - 1) * 3 + 1, 1),
            Self::Year(year) => NaiveDate::from_ymd_opt(year, 1, 1),
        };
        // Every constructor checked its fields, so the date exists.
        d.unwrap_or(NaiveDate::MIN)
    }

    /// The last day of the period (inclusive).
    pub fn end(&self) -> NaiveDate {
        let next = match *self {
            Self::Day(d) => return d,
            Self::Month { year, month: 12 } => NaiveDate::from_ymd_opt(year + 1, 1, 1),
            Self::Month { year, month } => NaiveDate::from_ymd_opt(year, month + 1, 1),
            Self::Quarter { year, quarter: 4 } => NaiveDate::from_ymd_opt(year + 1, 1, 1),
            Self::Quarter { year, quarter } => NaiveDate::from_ymd_opt(year, quarter * 3 + 1, 1),
            Self::Year(year) => NaiveDate::from_ymd_opt(year + 1, 1, 1),
        };
        next.and_then(|n| n.pred_opt()).unwrap_or(NaiveDate::MAX)
    }

    /// `day`, `month`, `quarter` or `year`.
    pub fn granularity(&self) -> &'static str {
        match self {
            Self::Day(_) => "day",
            Self::Month { .. } => "month",
            Self::Quarter { .. } => "quarter",
            Self::Year(_) => "year",
        }
    }

    /// Whether `date` falls inside the period.
    pub fn contains(&self, date: NaiveDate) -> bool {
        self.start() <= date && date <= self.end()
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Day(d) => write!(f, "{:04}-{:02}-{:02}", d.year(), d.month(), d.day()),
            Self::Month { year, month } => write!(f, "{year:04}-{month:02}"),
            Self::Quarter { year, quarter } => write!(f, "{year:04}-Q{quarter}"),
            Self::Year(y) => write!(f, "{y:04}"),
        }
    }
}

impl FromStr for Period {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Period {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Period> for String {
    fn from(p: Period) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap_or(NaiveDate::MIN)
    }

    #[test]
    fn every_granularity_parses_and_prints_canonically() {
        for s in ["2026-10-05", "2026-10", "2026-Q3", "2026"] {
            assert_eq!(Period::parse(s).map(|p| p.to_string()).ok().as_deref(), Some(s));
        }
        assert_eq!(
            Period::parse("2026-q1").map(|p| p.to_string()).ok().as_deref(),
            Some("2026-Q1")
        );
    }

    #[test]
    fn bounds_of_each_period() {
        let q3 = Period::parse("2026-Q3").ok();
        assert_eq!(
            q3.map(|p| (p.start(), p.end())),
            Some((d(2026, 7, 1), d(2026, 9, 30)))
        );
        let feb = Period::parse("2028-02").ok();
        assert_eq!(feb.map(|p| p.end()), Some(d(2028, 2, 29)));
        let dec = Period::parse("2026-12").ok();
        assert_eq!(dec.map(|p| p.end()), Some(d(2026, 12, 31)));
        let q4 = Period::parse("2026-Q4").ok();
        assert_eq!(q4.map(|p| p.end()), Some(d(2026, 12, 31)));
        assert!(Period::parse("2026").is_ok_and(|p| p.contains(d(2026, 6, 1))));
    }

    #[test]
    fn nonsense_is_refused() {
        for s in [
            "",
            "26-10",
            "2026-13",
            "2026-Q5",
            "2026-Q0",
            "2026-02-30",
            "2026-1",
            "abcd",
            "2026-10-05-01",
            "1800",
            "+2026",
        ] {
            assert!(Period::parse(s).is_err(), "{s}");
        }
    }
}
