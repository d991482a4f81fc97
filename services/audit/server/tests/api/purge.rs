//! Retention (R-SEC-9: at least 366 days), with a moved clock: the purge deletes exactly the
//! contiguous prefix of entries older than the cutoff, never a younger one, never a tampered
//! one, and the log still verifies afterwards.

use crate::helpers::{BACKENDS, Db, days_ago, key, now, request, write_all};
use chrono::Duration;
use etx_audit::{PurgeError, purge};
use etx_audit_core::{BreakReason, RetentionError, VerifyReport};

fn aged(days: &[i64]) -> Vec<etx_audit_core::NewAuditEntry> {
    days.iter()
        .enumerate()
        .map(|(i, d)| request(i).at(days_ago(*d)))
        .collect()
}

async fn seqs(db: &Db) -> Vec<i64> {
    let rows = etx_audit::query::page(
        &db.db,
        &etx_audit::query::EntryQuery::parse(&[]).unwrap(),
        None,
        0,
        None,
        1000,
    )
    .await
    .unwrap();
    rows.iter().map(|r| r.seq).collect()
}

#[tokio::test]
async fn only_entries_older_than_the_retention_are_purged() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        write_all(&db.db, aged(&[400, 367, 365, 1])).await;
        let out = purge(&db.db, &key(), now(), 366).await.unwrap();
        assert_eq!(out.deleted, 2, "{backend}");
        assert_eq!(out.checkpoint, Some(2));
        assert_eq!(out.cutoff, days_ago(366));
        assert_eq!(seqs(&db).await, vec![3, 4]);
        assert_eq!(
            db.verify().await,
            VerifyReport::Ok {
                checked: 2,
                first_seq: Some(3),
                last_seq: Some(4),
                resumed_after: Some(2)
            },
            "{backend}"
        );
        // Nothing more is old enough; purging again changes nothing.
        let again = purge(&db.db, &key(), now(), 366).await.unwrap();
        assert_eq!((again.deleted, again.checkpoint), (0, None));
        // A year later everything goes, and the log still verifies (against the head).
        let later = purge(&db.db, &key(), now() + Duration::days(400), 366)
            .await
            .unwrap();
        assert_eq!(later.deleted, 2);
        assert!(seqs(&db).await.is_empty());
        assert!(db.verify().await.is_ok(), "{backend}");
        // New entries continue the chain after the purge.
        write_all(&db.db, vec![request(9)]).await;
        assert_eq!(seqs(&db).await, vec![5]);
        assert!(db.verify().await.is_ok(), "{backend}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_retention_below_366_days_is_refused() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        write_all(&db.db, aged(&[1000])).await;
        for days in [0, 30, 365] {
            assert!(matches!(
                purge(&db.db, &key(), now(), days).await,
                Err(PurgeError::Retention(RetentionError::TooShort(d))) if d == days
            ));
        }
        assert_eq!(seqs(&db).await, vec![1]);
        assert!(
            etx_audit::spawn_purge(
                db.db.clone(),
                key(),
                std::sync::Arc::new(etx_audit_core::NoopSink),
                std::time::Duration::from_secs(86_400),
                365
            )
            .is_err()
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_purge_stops_at_the_first_younger_entry() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        // Entries' times can be out of order across processes: the old ones after a young one
        // stay, so the chain never gets a hole.
        write_all(&db.db, aged(&[400, 10, 500, 600])).await;
        let out = purge(&db.db, &key(), now(), 366).await.unwrap();
        assert_eq!(out.deleted, 1, "{backend}");
        assert_eq!(seqs(&db).await, vec![2, 3, 4]);
        assert!(db.verify().await.is_ok());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_tampered_entry_is_never_purged() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        write_all(&db.db, aged(&[500, 450, 400, 1])).await;
        db.exec("UPDATE audit_log SET bytes_out = 1 WHERE seq = 2").await;
        let out = purge(&db.db, &key(), now(), 366).await.unwrap();
        assert_eq!(out.deleted, 1, "{backend}");
        assert_eq!(
            out.stopped_at_break.as_ref().map(|b| (b.seq, b.reason.clone())),
            Some((2, BreakReason::HashMismatch))
        );
        assert_eq!(seqs(&db).await, vec![2, 3, 4]);
        assert_eq!(
            db.verify().await.broken_seq(),
            Some(2),
            "{backend}: the evidence stays"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_forged_checkpoint_hides_nothing() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        write_all(&db.db, aged(&[400, 380, 10, 5, 1])).await;
        purge(&db.db, &key(), now(), 366).await.unwrap();
        // An attacker deletes a young entry and moves the checkpoint over it.
        db.exec("DELETE FROM audit_log WHERE seq = 3").await;
        db.exec("UPDATE audit_checkpoints SET seq = 3").await;
        let r = db.verify().await;
        assert!(
            matches!(&r, VerifyReport::Broken { at, .. } if at.seq == 4 && at.reason == BreakReason::CheckpointForged),
            "{backend}: {r}"
        );
        db.cleanup().await;
    }
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

/// Property: over random ages (mostly ordered, with out-of-order noise) and a clock moving
/// forward in random steps, with small purge transactions, no entry younger than the cutoff
/// is ever deleted, exactly the old prefix is, and the log verifies after every purge.
#[tokio::test]
async fn property_no_entry_younger_than_the_cutoff_is_ever_purged() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        let mut rng = Lcg(0xA0D1 + backend.len() as u64);
        let n = 300;
        let ages: Vec<i64> = (0..n)
            .map(|i| {
                let trend = 900 - (i as i64) * 3;
                let noise = (rng.next() % 40) as i64 - 20;
                let outlier = if rng.next().is_multiple_of(17) {
                    (rng.next() % 300) as i64
                } else {
                    0
                };
                (trend + noise + outlier).max(0)
            })
            .collect();
        let times: Vec<_> = ages.iter().map(|d| days_ago(*d)).collect();
        write_all(&db.db, aged(&ages)).await;
        let mut clock = now();
        let mut gone = 0usize;
        for round in 0..12 {
            clock += Duration::days((rng.next() % 30) as i64);
            let retention = 366 + (rng.next() % 30) as u32;
            let page = 1 + rng.next() % 40;
            let cutoff = clock - Duration::days(i64::from(retention));
            let out = etx_audit::purge::purge_paged(&db.db, &key(), clock, retention, page)
                .await
                .unwrap();
            let expected = times[gone..].iter().take_while(|t| **t < cutoff).count();
            assert_eq!(out.deleted as usize, expected, "{backend} round {round}");
            gone += expected;
            let left = seqs(&db).await;
            assert_eq!(
                left,
                ((gone as i64 + 1)..=n as i64).collect::<Vec<_>>(),
                "{backend} round {round}"
            );
            assert!(
                times[gone..].first().is_none_or(|t| *t >= cutoff),
                "{backend} round {round}: stopped before the first young entry"
            );
            assert!(db.verify().await.is_ok(), "{backend} round {round}");
        }
        assert!(
            gone > 0 && gone < n,
            "{backend}: the rounds purged something but not everything ({gone})"
        );
        db.cleanup().await;
    }
}
