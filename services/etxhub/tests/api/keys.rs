//! Master-key and data-key rotation without re-encrypting data (R-SEC-5, `etxhub keys rotate`).

use crate::helpers::*;
use etxhub::config::PreviousKey;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stay_readable_after_the_master_key_is_rotated_and_the_old_one_retired() {
    let old = etx_crypto::MasterKey::generate("mk-old").to_base64();
    let new = etx_crypto::MasterKey::generate("mk-new").to_base64();
    let (old2, new2) = (old.clone(), new.clone());

    // 1. Running on the old master key.
    let app = TestApp::spawn_with("sqlite", move |c| {
        c.security.master_key = old2.into();
        c.security.master_key_id = "mk-old".into();
    })
    .await;
    let receipt: Value = app
        .submit_json(&stats_record(3.0, None))
        .await
        .json()
        .await
        .unwrap();
    let id = receipt["record_ids"][0].as_str().unwrap().to_owned();

    // 2. The operator makes the new key active, keeps the old one as previous, and rotates.
    let mut cfg = app.cfg.clone();
    cfg.security.master_key = new2.clone().into();
    cfg.security.master_key_id = "mk-new".into();
    cfg.security.previous_master_keys = vec![PreviousKey {
        id: "mk-old".into(),
        key: old.into(),
    }];
    let r = etxhub::rotate_keys(&cfg).await.unwrap();
    assert_eq!(r.master_key_id, "mk-new");
    assert!(r.rewrapped >= 1);

    // 3. A process that knows only the new master key reads the old record.
    let mut only_new = app.cfg.clone();
    only_new.security.master_key = new2.into();
    only_new.security.master_key_id = "mk-new".into();
    only_new.security.previous_master_keys = vec![];
    let base = serve_all(&only_new).await;
    let got = app
        .client
        .get(format!("{base}/api/v1/records/{id}"))
        .header("x-api-key", &app.key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let body: Value = got.json().await.unwrap();
    assert_eq!(body["payload"]["value"], serde_json::json!(3.0));
    // And it writes new records under a fresh data key.
    let resp = app
        .client
        .post(format!("{base}/api/v1/records"))
        .header("x-api-key", &app.key_a)
        .header("content-type", "application/json")
        .body(stats_record(4.0, None).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_master_key_records_cannot_be_read() {
    let app = TestApp::spawn("sqlite").await;
    let receipt: Value = app
        .submit_json(&stats_record(3.0, None))
        .await
        .json()
        .await
        .unwrap();
    let id = receipt["record_ids"][0].as_str().unwrap().to_owned();
    let mut stranger = app.cfg.clone();
    stranger.security.master_key = etx_crypto::MasterKey::generate("mk-x").to_base64().into();
    stranger.security.master_key_id = "mk-x".into();
    let base = serve_all(&stranger).await;
    let got = app
        .client
        .get(format!("{base}/api/v1/records/{id}"))
        .header("x-api-key", &app.key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.status(),
        500,
        "an unreadable record is an operator problem, reported without detail"
    );
    let p: Value = got.json().await.unwrap();
    assert_eq!(p["code"], "internal");
    assert!(p.get("detail").is_none());
}
