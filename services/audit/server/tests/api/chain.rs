//! The stored chain (R-SEC-9): the writer appends a dense, valid chain; tampering with the
//! database is detected at the exact entry; several writers on one database form one chain;
//! an overloaded sink drops without blocking and records the loss.

use crate::helpers::{BACKENDS, Db, key, request, write_all};
use etx_audit::{AuditWriter, WriterConfig};
use etx_audit_core::{AuditSink, BreakReason, VerifyReport};

async fn logged(backend: &str, n: usize) -> Db {
    let db = Db::new(backend).await;
    write_all(&db.db, (0..n).map(request).collect()).await;
    db
}

fn reason(r: &VerifyReport) -> Option<BreakReason> {
    match r {
        VerifyReport::Broken { at, .. } => Some(at.reason.clone()),
        VerifyReport::Ok { .. } => None,
    }
}

#[tokio::test]
async fn the_writer_appends_a_dense_chain_that_verifies() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        assert!(db.verify().await.is_ok(), "{backend}: an empty log verifies");
        // More than one batch.
        write_all(&db.db, (0..1_200).map(request).collect()).await;
        assert_eq!(
            db.verify().await,
            VerifyReport::Ok {
                checked: 1_200,
                first_seq: Some(1),
                last_seq: Some(1_200),
                resumed_after: None
            },
            "{backend}"
        );
        assert_eq!(db.count("SELECT COUNT(*) FROM audit_log").await, 1_200);
        assert_eq!(db.count("SELECT MAX(seq) FROM audit_log").await, 1_200);
        let head = etx_audit::head(&db.db).await.unwrap();
        assert_eq!(head.seq, 1_200);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_changed_column_is_detected_at_that_entry() {
    for backend in BACKENDS {
        let db = logged(backend, 50).await;
        db.exec("UPDATE audit_log SET status = 200 WHERE seq = 17").await;
        let r = db.verify().await;
        assert_eq!(r.broken_seq(), Some(17), "{backend}: {r}");
        assert_eq!(reason(&r), Some(BreakReason::HashMismatch));
        if let VerifyReport::Broken { checked, .. } = r {
            assert_eq!(checked, 16);
        }
        // Put it back: the chain verifies again (the hash covers the value, nothing else).
        db.exec("UPDATE audit_log SET status = 201 WHERE seq = 17").await;
        assert!(db.verify().await.is_ok(), "{backend}");
        db.exec("UPDATE audit_log SET subject = 'system:forged' WHERE seq = 33")
            .await;
        assert_eq!(db.verify().await.broken_seq(), Some(33), "{backend}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_deleted_entry_is_detected_at_its_number() {
    for backend in BACKENDS {
        let db = logged(backend, 50).await;
        db.exec("DELETE FROM audit_log WHERE seq = 30").await;
        let r = db.verify().await;
        assert_eq!(r.broken_seq(), Some(30), "{backend}: {r}");
        assert_eq!(reason(&r), Some(BreakReason::Missing { next_found: Some(31) }));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_truncated_tail_or_a_changed_head_is_detected() {
    for backend in BACKENDS {
        let db = logged(backend, 50).await;
        db.exec("DELETE FROM audit_log WHERE seq > 47").await;
        let r = db.verify().await;
        assert_eq!(r.broken_seq(), Some(48), "{backend}: truncation: {r}");

        // Rewinding the head to the new end: the seal does not match.
        db.exec(
            "UPDATE audit_head SET last_seq = 47, last_hash = (SELECT hash FROM audit_log WHERE seq = 47)",
        )
        .await;
        let r = db.verify().await;
        assert_eq!(
            (r.broken_seq(), reason(&r)),
            (Some(47), Some(BreakReason::HeadMismatch)),
            "{backend}: {r}"
        );
        db.cleanup().await;

        let db = logged(backend, 20).await;
        db.exec("UPDATE audit_head SET last_seq = 19").await;
        let r = db.verify().await;
        assert_eq!(
            (r.broken_seq(), reason(&r)),
            (Some(20), Some(BreakReason::BeyondHead { head_seq: 19 })),
            "{backend}: {r}"
        );
        db.exec("UPDATE audit_head SET last_seq = 20, mac = NULL").await;
        assert_eq!(
            reason(&db.verify().await),
            Some(BreakReason::HeadMismatch),
            "{backend}"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn swapped_rows_are_detected() {
    for backend in BACKENDS {
        let db = logged(backend, 10).await;
        // Swap the contents of entries 4 and 5 (hashes travel with them).
        db.exec("UPDATE audit_log SET seq = -4 WHERE seq = 4").await;
        db.exec("UPDATE audit_log SET seq = 4 WHERE seq = 5").await;
        db.exec("UPDATE audit_log SET seq = 5 WHERE seq = -4").await;
        assert_eq!(db.verify().await.broken_seq(), Some(4), "{backend}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_wrong_key_verifies_nothing() {
    for backend in BACKENDS {
        let db = logged(backend, 3).await;
        let other = etx_audit_core::ChainKey::derive(b"not the deployment's key, but long enough");
        let r = etx_audit::verify(&db.db, &other).await.unwrap();
        assert_eq!(r.broken_seq(), Some(1), "{backend}");
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_database_form_one_chain() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        // Two "processes": separate pools, separate writers.
        let (pool_a, pool_b) = (db.another_pool().await, db.another_pool().await);
        let config = WriterConfig {
            capacity: 10_000,
            max_batch: 200,
            ..WriterConfig::default()
        };
        let a = AuditWriter::start(pool_a, key(), config);
        let b = AuditWriter::start(pool_b, key(), config);
        let feed = |w: AuditWriter, tag: &'static str| {
            tokio::spawn(async move {
                for i in 0..2_000 {
                    let mut e = request(i);
                    e.subject = format!("system:{tag}-{i}");
                    w.record(e);
                    if i.is_multiple_of(100) {
                        tokio::task::yield_now().await;
                    }
                }
                w.shutdown().await;
                w.stats()
            })
        };
        let (sa, sb) = (feed(a, "a"), feed(b, "b"));
        let (sa, sb) = (sa.await.unwrap(), sb.await.unwrap());
        assert_eq!((sa.lost, sb.lost), (0, 0), "{backend}");
        assert_eq!(
            db.verify().await,
            VerifyReport::Ok {
                checked: 4_000,
                first_seq: Some(1),
                last_seq: Some(4_000),
                resumed_after: None
            },
            "{backend}"
        );
        assert_eq!(
            db.count("SELECT COUNT(*) FROM audit_log WHERE subject LIKE 'system:a-%'")
                .await,
            2_000
        );
        assert_eq!(db.count("SELECT COUNT(DISTINCT seq) FROM audit_log").await, 4_000);
        db.cleanup().await;
    }
}

/// The sink never waits: on a single-threaded runtime the writer cannot run while the loop
/// records, so all but the channel's capacity are dropped — and the loss is then recorded.
#[tokio::test(flavor = "current_thread")]
async fn an_overloaded_sink_drops_without_blocking_and_records_the_loss() {
    for backend in BACKENDS {
        let db = Db::new(backend).await;
        let w = AuditWriter::start(
            db.db.clone(),
            key(),
            WriterConfig {
                capacity: 4,
                ..WriterConfig::default()
            },
        );
        for i in 0..1_000 {
            w.record(request(i));
        }
        assert_eq!(w.stats().lost, 996, "{backend}");
        w.shutdown().await;
        assert_eq!(
            db.count("SELECT COUNT(*) FROM audit_log WHERE kind = 'request'")
                .await,
            4
        );
        let lost = db
            .count("SELECT COUNT(*) FROM audit_log WHERE kind = 'security' AND action = 'audit.entries_lost'")
            .await;
        assert_eq!(lost, 1, "{backend}");
        let page = etx_audit::query::page(
            &db.db,
            &etx_audit::query::EntryQuery::parse(&[("kind".into(), "security".into())]).unwrap(),
            None,
            0,
            None,
            10,
        )
        .await
        .unwrap();
        let detail: serde_json::Value = serde_json::from_str(&page[0].detail).unwrap();
        assert_eq!(detail["lost"], 996);
        assert!(db.verify().await.is_ok());
        // After shutdown, entries are refused (and counted), never block.
        w.record(request(0));
        assert_eq!(w.stats().lost, 997);
        db.cleanup().await;
    }
}
