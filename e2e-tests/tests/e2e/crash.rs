//! `kill -9` of ingestion during a stream of submissions from concurrent clients that retry with
//! idempotency keys: every acknowledged record is stored, and stored exactly once.

use crate::common::*;
use etx_e2e::{Hub, Mode, query_i64, query_rows};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 8;
const PER_CLIENT: usize = 60;

fn marker(client: usize, i: usize) -> String {
    format!("e2e-{client}-{i}")
}

fn value(client: usize, i: usize) -> f64 {
    (client * 1000 + i) as f64
}

async fn killing_ingestion_loses_and_duplicates_nothing(mode: Mode) {
    let mut hub = Hub::start(mode, Default::default()).await;
    let source = hub
        .onboard("E2E-CRASH", "Sở Thông tin và Truyền thông Đà Nẵng")
        .await;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let total = CLIENTS * PER_CLIENT;
    let acked = Arc::new(AtomicUsize::new(0));

    // Each client is a system of its own (own connections); half speak HTTP/1.1, half HTTP/2.
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = hub.new_client(c % 2 == 1);
        let url = hub.url("/api/v1/records");
        let api_key = source.api_key.clone();
        let run = run.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..PER_CLIENT {
                let key = format!("e2e-{run}-{c}-{i}");
                let body = stats_record(&marker(c, i), value(c, i)).to_string();
                acks.push((
                    c,
                    i,
                    submit_until_acknowledged(&client, &url, &api_key, &key, &body).await,
                ));
                acked.fetch_add(1, Ordering::SeqCst);
            }
            acks
        }));
    }

    // In the middle of the stream: kill -9, a pause, a restart with the same data and env.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < total / 3 {
        assert!(
            Instant::now() < deadline,
            "the clients made no progress: {} acknowledged",
            acked.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let acked_before_kill = acked.load(Ordering::SeqCst);
    hub.kill9_ingestion();
    tokio::time::sleep(Duration::from_secs(1)).await;
    hub.restart_ingestion().await;

    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await.expect("a client failed"));
    }
    assert_eq!(acks.len(), total);
    assert!(
        acked_before_kill < total,
        "the kill must land in the middle of the stream ({acked_before_kill} of {total} acknowledged)"
    );
    let retried = acks.iter().filter(|(_, _, a)| a.attempts > 1).count();
    let replayed = acks.iter().filter(|(_, _, a)| a.replayed).count();
    eprintln!(
        "{mode:?}: {total} acknowledged, {acked_before_kill} before the kill, {retried} retried, {replayed} replayed"
    );
    assert!(
        retried > 0,
        "the kill interrupted no request: the test proved nothing"
    );

    // Every acknowledged record reads back, with its own marker.
    let ids: BTreeSet<String> = acks.iter().map(|(_, _, a)| a.record_id.clone()).collect();
    assert_eq!(
        ids.len(),
        total,
        "two requests were acknowledged with the same record"
    );
    let receipts: BTreeSet<String> = acks.iter().map(|(_, _, a)| a.receipt_id.clone()).collect();
    assert_eq!(
        receipts.len(),
        total,
        "two requests were acknowledged with the same receipt"
    );
    let hub = Arc::new(hub);
    let mut readers = Vec::new();
    for chunk in acks.chunks(total.div_ceil(8)) {
        let chunk = chunk.to_vec();
        let hub = hub.clone();
        let api_key = source.api_key.clone();
        readers.push(tokio::spawn(async move {
            for (c, i, a) in chunk {
                let (status, got) = hub.get_record(&api_key, &a.record_id).await;
                assert_eq!(
                    status, 200,
                    "acknowledged record {} ({}) is not readable: {got}",
                    a.record_id, a.key
                );
                assert_eq!(got["payload"]["note"], marker(c, i), "{}", a.key);
                assert_eq!(got["payload"]["value"].as_f64(), Some(value(c, i)), "{}", a.key);
                assert_eq!(
                    got["provenance"]["receipt_id"],
                    a.receipt_id.as_str(),
                    "{}",
                    a.key
                );
            }
        }));
    }
    for r in readers {
        r.await.expect("a read-back failed");
    }
    let mut hub = Arc::into_inner(hub).expect("readers are done");

    // Stop, then look at the database itself.
    for (name, status) in hub.stop_all().await {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
    let db = hub.open_db().await;
    assert_eq!(
        query_i64(&db, "SELECT COUNT(*) AS n FROM receipts").await,
        total as i64,
        "one receipt per idempotency key"
    );
    assert_eq!(
        query_i64(&db, "SELECT COUNT(DISTINCT idempotency_mac) AS n FROM receipts").await,
        total as i64
    );
    assert_eq!(
        query_i64(&db, "SELECT COUNT(*) AS n FROM records").await,
        total as i64,
        "one record per request: nothing lost, nothing duplicated"
    );
    assert_eq!(
        query_i64(&db, "SELECT COUNT(DISTINCT receipt_id) AS n FROM records").await,
        total as i64
    );
    // Keys are stored only as keyed hashes: one distinct hash per sent key, none missing.
    let sent_keys: BTreeSet<String> = acks.iter().map(|(_, _, a)| a.key.clone()).collect();
    assert_eq!(sent_keys.len(), total);
    assert_eq!(
        query_i64(
            &db,
            "SELECT COUNT(*) AS n FROM receipts WHERE idempotency_mac IS NULL"
        )
        .await,
        0
    );
    let stored: HashMap<String, String> = query_rows(&db, "SELECT id, receipt_id FROM records")
        .await
        .iter()
        .map(|r| {
            let id: uuid::Uuid = r.try_get("", "id").unwrap();
            let receipt: uuid::Uuid = r.try_get("", "receipt_id").unwrap();
            (id.to_string(), receipt.to_string())
        })
        .collect();
    let stored_ids: BTreeSet<String> = stored.keys().cloned().collect();
    assert_eq!(
        stored_ids, ids,
        "the stored records are exactly the acknowledged ones"
    );
    for (_, _, a) in &acks {
        assert_eq!(
            stored[&a.record_id], a.receipt_id,
            "record {} under its receipt",
            a.record_id
        );
    }
    let _ = db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_killing_ingestion_loses_and_duplicates_nothing() {
    killing_ingestion_loses_and_duplicates_nothing(Mode::AllInOne).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_killing_ingestion_loses_and_duplicates_nothing() {
    killing_ingestion_loses_and_duplicates_nothing(Mode::Distributed).await;
}
