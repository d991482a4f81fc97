//! Fault tests of the pipeline (issue 5 acceptance, R-AVAIL, R-ING-2, R-REC), distributed on
//! PostgreSQL + Redis: while clients submit at a steady rate, `kill -9` the masking stage, then
//! the reconciliation stage, then Redis itself (a private, append-only-file instance, so the
//! shared server of the other tests is left alone). Afterwards every acknowledged record has
//! exactly one masked copy and exactly one reconciliation outcome (in the accepted store or the
//! conflict queue), and both groups' backlogs drain to zero.

use crate::common::*;
use etx_e2e::{Hub, HubOptions, Mode, free_port, query_i64, query_rows};
use etx_queue::Queue;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 4;
/// Submissions acknowledged between two faults.
const PER_PHASE: usize = 80;

/// A Redis server of this test only, persisting every write (`appendfsync always`), so a
/// `kill -9` loses nothing it acknowledged.
struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    fn start(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self {
            port: free_port(),
            dir,
            child: None,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", &self.dir.display().to_string()])
            .args(["--appendonly", "yes", "--appendfsync", "always", "--save", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server is required for this test and cannot start: {e}"));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "the private Redis never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill9();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_killing_masking_reconciliation_then_redis_loses_and_duplicates_nothing() {
    let work = std::env::temp_dir().join(format!("etx-e2e-redis-{}", uuid::Uuid::now_v7().simple()));
    let mut redis = PrivateRedis::start(work.join("redis"));
    let mut hub = Hub::start(
        Mode::Distributed,
        HubOptions {
            env: vec![("ETX__QUEUE__REDIS_URL".into(), redis.url())],
            ..Default::default()
        },
    )
    .await;
    let source = hub
        .onboard("E2E-PIPELINE", "Sở Khoa học và Công nghệ Đồng Nai")
        .await;
    let run = uuid::Uuid::now_v7().simple().to_string();
    let acked = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));

    // Clients at a steady rate (each about 40 submissions/s), retrying with idempotency keys,
    // until told to stop: every fault below lands in the middle of the stream.
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = hub.new_client(false);
        let url = hub.url("/api/v1/records");
        let api_key = source.api_key.clone();
        let run = run.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let key = format!("pipe-{run}-{c}-{i}");
                let body = stats_record(&format!("pipeline {c}-{i}"), (c * 100_000 + i) as f64).to_string();
                ids.push(
                    submit_until_acknowledged(&client, &url, &api_key, &key, &body)
                        .await
                        .record_id,
                );
                acked.fetch_add(1, Ordering::SeqCst);
                i += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            ids
        }));
    }
    // Waits until `more` further submissions are acknowledged.
    let after = |more: usize| {
        let acked = acked.clone();
        async move {
            let target = acked.load(Ordering::SeqCst) + more;
            let deadline = Instant::now() + Duration::from_secs(120);
            while acked.load(Ordering::SeqCst) < target {
                assert!(Instant::now() < deadline, "the clients made no progress");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };

    after(PER_PHASE).await;
    hub.masking().kill9();
    after(PER_PHASE / 2).await;
    hub.masking().restart().await;
    after(PER_PHASE).await;
    hub.reconciliation().kill9();
    after(PER_PHASE / 2).await;
    hub.reconciliation().restart().await;
    after(PER_PHASE).await;
    redis.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.spawn();
    after(PER_PHASE).await;
    stop.store(true, Ordering::SeqCst);

    let mut ids = BTreeSet::new();
    let mut n = 0;
    for t in tasks {
        let got = t.await.expect("a client failed");
        n += got.len();
        ids.extend(got);
    }
    let total = ids.len();
    assert_eq!(total, n, "every request acknowledged with its own record");
    assert!(total >= 5 * PER_PHASE, "{total} acknowledged");

    // Every acknowledged record reaches the masked store, exactly once.
    let db = hub.open_db().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = query_i64(&db, "SELECT COUNT(*) AS n FROM masked_records").await;
        if n as usize >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {total} acknowledged records were masked"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let masked: BTreeSet<String> = query_rows(&db, "SELECT record_id FROM masked_records")
        .await
        .iter()
        .map(|r| r.try_get::<uuid::Uuid>("", "record_id").unwrap().to_string())
        .collect();
    assert_eq!(
        masked, ids,
        "the masked copies are exactly the acknowledged records"
    );
    assert_eq!(
        query_i64(
            &db,
            "SELECT COUNT(*) AS n FROM masked_records WHERE status <> 'masked'"
        )
        .await,
        0
    );
    // …and exactly one reconciliation outcome each, in the accepted store or the conflict queue
    // (one source re-sending one indicator: revisions of one canonical record).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let n = query_i64(&db, "SELECT COUNT(*) AS n FROM rec_outcomes").await;
        if n as usize >= total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {total} acknowledged records were reconciled"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let decided: BTreeSet<String> = query_rows(&db, "SELECT record_id FROM rec_outcomes")
        .await
        .iter()
        .map(|r| r.try_get::<uuid::Uuid>("", "record_id").unwrap().to_string())
        .collect();
    assert_eq!(decided, ids, "each acknowledged record decided exactly once");
    assert_eq!(
        query_i64(
            &db,
            "SELECT COUNT(*) AS n FROM rec_outcomes WHERE canonical_id IS NULL AND conflict_id IS NULL"
        )
        .await,
        0,
        "every outcome is in the accepted store or the conflict queue"
    );
    let _ = db.close().await;

    // Both groups' backlogs drain to zero (nothing pending, nothing unread).
    let queue = etx_queue::RedisQueue::connect(&redis.url(), hub.redis_prefix().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for (stream, group) in [
        ("records.received", "masking"),
        ("records.masked", "reconciliation"),
    ] {
        loop {
            let lag = queue.lag(stream, group).await.unwrap();
            if lag == 0 {
                break;
            }
            assert!(Instant::now() < deadline, "the {group} lag stays at {lag}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    for (name, status) in hub.stop_all().await {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
    drop(redis);
    let _ = std::fs::remove_dir_all(&work);
}
