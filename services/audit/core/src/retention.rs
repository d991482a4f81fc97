//! How long the audit log is kept, and which entries a purge may delete (R-SEC-9: at least
//! 366 days).
//!
//! A purge deletes only a *contiguous prefix* of the log: starting from the oldest entry
//! still present, it deletes entries while each is older than the cutoff and stops at the
//! first that is not — even if older ones follow (entries are numbered when written, and
//! their times can be slightly out of order across gateway processes). So a purge never
//! deletes a younger entry and never opens a hole in the chain.

use chrono::{DateTime, Duration, Utc};

/// The shortest retention allowed, in days (R-SEC-9: "at least 366 days").
pub const MIN_RETENTION_DAYS: u32 = 366;

/// Why a purge was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// The retention asked for is shorter than the legal floor.
    #[error("retention of {0} days is below the minimum of {MIN_RETENTION_DAYS} days (R-SEC-9)")]
    TooShort(u32),
    /// `now - retention` is not a representable time.
    #[error("retention of {0} days is out of range")]
    OutOfRange(u32),
}

/// The cutoff of a purge at `now`: entries strictly older than it may go. Refuses a retention
/// below [`MIN_RETENTION_DAYS`].
pub fn cutoff(now: DateTime<Utc>, retention_days: u32) -> Result<DateTime<Utc>, RetentionError> {
    if retention_days < MIN_RETENTION_DAYS {
        return Err(RetentionError::TooShort(retention_days));
    }
    now.checked_sub_signed(Duration::days(i64::from(retention_days)))
        .ok_or(RetentionError::OutOfRange(retention_days))
}

/// How many leading entries of `times` (the entries' times, in sequence order, starting at
/// the oldest entry still present) a purge with this `cutoff` deletes: the length of the run
/// of entries strictly older than `cutoff` at the start.
pub fn purgeable_prefix<I>(times: I, cutoff: DateTime<Utc>) -> usize
where
    I: IntoIterator<Item = DateTime<Utc>>,
{
    times.into_iter().take_while(|t| *t < cutoff).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    fn days_ago(d: i64) -> DateTime<Utc> {
        now() - Duration::days(d)
    }

    #[test]
    fn retention_below_the_floor_is_refused() {
        assert_eq!(cutoff(now(), 365), Err(RetentionError::TooShort(365)));
        assert_eq!(cutoff(now(), 0), Err(RetentionError::TooShort(0)));
        assert_eq!(cutoff(now(), 366), Ok(days_ago(366)));
        assert!(cutoff(now(), u32::MAX).is_err());
    }

    #[test]
    fn only_entries_older_than_the_retention_go() {
        let c = cutoff(now(), 366).unwrap_or_default();
        let ages = [days_ago(400), days_ago(367), days_ago(365), days_ago(1)];
        assert_eq!(purgeable_prefix(ages, c), 2);
        // Exactly at the cutoff is kept.
        assert_eq!(purgeable_prefix([c], c), 0);
    }

    #[test]
    fn the_purge_stops_at_the_first_younger_entry() {
        let c = cutoff(now(), 366).unwrap_or_default();
        let ages = [days_ago(400), days_ago(10), days_ago(500), days_ago(600)];
        assert_eq!(purgeable_prefix(ages, c), 1);
    }

    /// A small deterministic generator, so the property runs the same everywhere.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }
    }

    #[test]
    fn property_no_younger_entry_is_ever_in_the_purged_prefix() {
        let mut rng = Lcg(0x5eed);
        for round in 0..2_000 {
            let days = MIN_RETENTION_DAYS + (rng.next() % 100) as u32;
            let c = cutoff(now(), days).unwrap_or_default();
            let n = (rng.next() % 60) as usize;
            // Ages from 0 to 800 days, to the second, mostly increasing with noise.
            let times: Vec<DateTime<Utc>> = (0..n)
                .map(|_| now() - Duration::seconds((rng.next() % (800 * 86_400)) as i64))
                .collect();
            let k = purgeable_prefix(times.iter().copied(), c);
            assert!(
                times[..k].iter().all(|t| *t < c),
                "round {round}: a young entry in the prefix"
            );
            assert!(
                k == n || times[k] >= c,
                "round {round}: stopped before the first young entry"
            );
        }
    }
}
