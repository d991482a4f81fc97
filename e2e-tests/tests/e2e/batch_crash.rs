//! `kill -9` of ingestion in the middle of storing a large batch (issue 3 acceptance): after a
//! restart the batch resumes from its last committed rows and ends with every valid row stored
//! exactly once, in both modes (R-ING-1 batch, R-ING-5).

use etx_e2e::{Hub, HubOptions, Mode, query_i64};
use serde_json::Value;
use std::time::{Duration, Instant};

const ROWS: usize = 60_000;
/// Every this-many-th row is invalid (negative value).
const BAD_EVERY: usize = 1_000;

fn csv() -> String {
    let mut s = String::from("indicator,transaction_kind,value,unit,dimensions.province_code,note\n");
    for i in 1..=ROWS {
        let value = if i % BAD_EVERY == 0 { -1 } else { i as i64 };
        s.push_str(&format!(
            "transaction_count,e_invoice,{value},count,79,Lô dữ liệu hóa đơn điện tử — dòng {i}\n"
        ));
    }
    s
}

async fn status(hub: &Hub, key: &str, id: &str) -> Option<Value> {
    let r = hub
        .client
        .get(hub.url(&format!("/api/v1/batches/{id}")))
        .header("x-api-key", key)
        .send()
        .await
        .ok()?;
    if r.status() != 200 {
        return None;
    }
    r.json().await.ok()
}

/// Starts a hub whose batch leases last `lease_secs`, uploads the CSV as a new source and waits
/// until part of its rows are stored. Returns the hub, the source's key, the batch id and how
/// many rows were stored by then.
async fn hub_in_the_middle_of_a_batch(
    mode: Mode,
    lease_secs: &str,
    org_code: &str,
    org_name: &str,
) -> (Hub, String, String, u64) {
    let opts = HubOptions {
        env: vec![
            ("ETX__INGESTION__BATCH_LEASE_SECS".into(), lease_secs.into()),
            ("ETX__INGESTION__BATCH_ROWS_PER_COMMIT".into(), "500".into()),
        ],
        ..Default::default()
    };
    let hub = Hub::start(mode, opts).await;
    let key = hub.onboard(org_code, org_name).await.api_key;
    let resp = hub
        .client
        .post(hub.url(
            "/api/v1/batches?category=statistics&schema_version=1&period=2026-10&classification=internal",
        ))
        .header("x-api-key", &key)
        .header("content-type", "text/csv")
        .header("x-batch-row-count", ROWS.to_string())
        .body(csv())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let v: Value = resp.json().await.unwrap();
    let id = v["batch_id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(240);
    let before = loop {
        assert!(Instant::now() < deadline, "the batch made no progress");
        if let Some(v) = status(&hub, &key, &id).await {
            let accepted = v["counts"]["accepted"].as_u64().unwrap_or(0);
            assert_ne!(
                v["state"], "completed",
                "the batch finished before the interruption; make it larger"
            );
            if v["state"] == "storing" && accepted > 0 {
                break accepted;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (hub, key, id, before)
}

/// Waits until a batch is finished; returns its status.
async fn finished(hub: &Hub, key: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        assert!(Instant::now() < deadline, "the batch did not resume to its end");
        if let Some(v) = status(hub, key, id).await
            && matches!(v["state"].as_str(), Some("completed" | "failed" | "rejected"))
        {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn killing_ingestion_mid_batch_stores_every_valid_row_once(mode: Mode) {
    let (mut hub, key, id, before) =
        hub_in_the_middle_of_a_batch(mode, "3", "E2E-BATCH", "Sở Tài chính tỉnh Gia Lai").await;
    hub.kill9_ingestion();
    tokio::time::sleep(Duration::from_millis(500)).await;
    hub.restart_ingestion().await;
    let done = finished(&hub, &key, &id).await;
    assert_eq!(done["state"], "completed", "{done}");
    let valid = (ROWS - ROWS / BAD_EVERY) as u64;
    assert_eq!(done["counts"]["total"], ROWS as u64);
    assert_eq!(done["counts"]["accepted"], valid, "{done}");
    assert_eq!(done["counts"]["rejected"], (ROWS / BAD_EVERY) as u64);
    assert_eq!(done["counts"]["duplicate"], 0);
    assert!(
        before < valid,
        "the kill landed before the end ({before} of {valid})"
    );

    let db = hub.open_db().await;
    let stored = query_i64(&db, "SELECT COUNT(*) AS n FROM records WHERE method = 'batch'").await;
    let distinct = query_i64(
        &db,
        "SELECT COUNT(*) AS n FROM (SELECT DISTINCT idempotency_mac FROM records WHERE method = 'batch') d",
    )
    .await;
    assert_eq!(stored as u64, valid, "every valid row stored");
    assert_eq!(distinct, stored, "no row stored twice");
    let errors = query_i64(&db, "SELECT COUNT(DISTINCT row) AS n FROM batch_errors").await;
    assert_eq!(
        errors as u64,
        (ROWS / BAD_EVERY) as u64,
        "each refused row listed once"
    );
    hub.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_batch_survives_kill_9() {
    killing_ingestion_mid_batch_stores_every_valid_row_once(Mode::AllInOne).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_batch_survives_kill_9() {
    killing_ingestion_mid_batch_stores_every_valid_row_once(Mode::Distributed).await;
}

/// SIGTERM during the storing pass: the worker finishes its groups in flight, gives the lease
/// back at once (so a restarted process resumes without waiting for it to expire) and the
/// batch still ends with every valid row stored once.
async fn sigterm_mid_batch_gives_the_lease_back(mode: Mode) {
    // A lease long enough that a resume within the test can only come from the lease given back.
    let (mut hub, key, id, _) =
        hub_in_the_middle_of_a_batch(mode, "600", "E2E-BATCH-TERM", "Sở Tài chính tỉnh Khánh Hòa").await;
    let exit = hub.ingestion().stop().await;
    assert!(exit.success(), "ingestion exited with {exit} on SIGTERM");
    let db = hub.open_db().await;
    let held = query_i64(
        &db,
        "SELECT COUNT(*) AS n FROM batches WHERE lease_owner IS NOT NULL",
    )
    .await;
    // No process owns the batch any more (it may carry a short back-off in `lease_until` if an
    // attempt failed under load before the stop, but never the 600 s lease).
    assert_eq!(held, 0, "the stopped worker gave its lease back");
    let far = query_i64(
        &db,
        &format!(
            "SELECT COUNT(*) AS n FROM batches WHERE lease_until IS NOT NULL AND lease_until > {}",
            if mode == Mode::AllInOne {
                "strftime('%Y-%m-%dT%H:%M:%S', 'now', '+300 seconds')"
            } else {
                "now() + interval '300 seconds'"
            }
        ),
    )
    .await;
    assert_eq!(far, 0, "no lease left to expire");
    hub.restart_ingestion().await;
    let done = finished(&hub, &key, &id).await;
    assert_eq!(done["state"], "completed", "{done}");
    let valid = (ROWS - ROWS / BAD_EVERY) as u64;
    assert_eq!(done["counts"]["accepted"], valid, "{done}");
    assert_eq!(done["counts"]["duplicate"], 0);
    let stored = query_i64(&db, "SELECT COUNT(*) AS n FROM records WHERE method = 'batch'").await;
    assert_eq!(stored as u64, valid);
    hub.stop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_batch_pauses_on_sigterm() {
    sigterm_mid_batch_gives_the_lease_back(Mode::AllInOne).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_batch_pauses_on_sigterm() {
    sigterm_mid_batch_gives_the_lease_back(Mode::Distributed).await;
}
