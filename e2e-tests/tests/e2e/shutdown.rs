//! SIGTERM while clients are submitting: in-flight requests finish, the process exits 0, and
//! every acknowledged record is still there after a restart.

use crate::common::*;
use etx_e2e::{Hub, Mode, SHUTDOWN_TIMEOUT_SECS};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 4;
const MAX_PER_CLIENT: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_cleanly() {
    let mut hub = Hub::start(Mode::AllInOne, Default::default()).await;
    let source = hub.onboard("E2E-SIGTERM", "Sở Khoa học và Công nghệ Huế").await;
    let acked = Arc::new(AtomicUsize::new(0));

    // Clients (HTTP/1.1, each its own connection) submit one request at a time until the first
    // refusal or transport error.
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = hub.new_client(false);
        let url = hub.url("/api/v1/records");
        let api_key = source.api_key.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let mut acks = Vec::new();
            for i in 0..MAX_PER_CLIENT {
                let note = format!("sigterm-{c}-{i}");
                let resp = client
                    .post(&url)
                    .header("x-api-key", &api_key)
                    .header("content-type", "application/json")
                    .header("idempotency-key", format!("sigterm-{c}-{i}"))
                    .body(stats_record(&note, i as f64).to_string())
                    .send()
                    .await;
                let Ok(resp) = resp else { break };
                if resp.status() != 202 {
                    break;
                }
                // A 202 whose body is cut short is not an acknowledgement the client can use.
                let Ok(receipt) = resp.json::<Value>().await else {
                    break;
                };
                acks.push((note, receipt["record_ids"][0].as_str().unwrap().to_owned()));
                acked.fetch_add(1, Ordering::SeqCst);
            }
            acks
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 20 {
        assert!(Instant::now() < deadline, "the clients made no progress");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let p = hub.gateway();
    let acked_at_sigterm = acked.load(Ordering::SeqCst);
    p.terminate();
    let status = p.wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 20)).await;
    assert!(status.success(), "exit status on SIGTERM: {status}");
    let mut acks = Vec::new();
    for t in tasks {
        acks.extend(t.await.expect("a client panicked"));
    }
    assert!(acks.len() >= 20);
    assert!(
        acks.len() < CLIENTS * MAX_PER_CLIENT,
        "the clients must still have been submitting at SIGTERM"
    );

    eprintln!(
        "SIGTERM after {acked_at_sigterm} acknowledgements; {} in all",
        acks.len()
    );
    // Restart on the same data: every acknowledged record is there.
    hub.restart_all().await;
    for (note, id) in &acks {
        let (status, got) = hub.get_record(&source.api_key, id).await;
        assert_eq!(status, 200, "acknowledged record {id} lost across SIGTERM: {got}");
        assert_eq!(got["payload"]["note"], note.as_str());
    }
    let resp = hub
        .submit(
            &source.api_key,
            "application/json",
            stats_record("sau khi khởi động lại", 1.0).to_string(),
            None,
        )
        .await;
    assert_eq!(resp.status(), 202, "submissions work again after the restart");
}
