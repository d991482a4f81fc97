//! JSON and XML over HTTPS, read back, and a revoked key refused at once — in both modes.

use crate::common::*;
use etx_e2e::{Hub, Mode, example_path, xml_elements};
use serde_json::Value;

/// The example records that have an XML twin (`<stem>.json` + `<stem>.xml`).
fn twins() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for cat in ["enforcement", "policy", "statistics", "workforce"] {
        let dir = example_path(cat);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for n in names {
            if let Some(stem) = n.strip_suffix(".xml")
                && dir.join(format!("{stem}.json")).exists()
            {
                out.push((format!("{cat}/{stem}.json"), format!("{cat}/{stem}.xml")));
            }
        }
    }
    assert!(!out.is_empty(), "no JSON/XML twins in contracts/examples/records");
    out
}

async fn accepts_json_and_xml_over_https(mode: Mode) {
    let hub = Hub::start(mode, Default::default()).await;
    assert!(hub.base.starts_with("https://"));
    // The XML twins carry the same idempotency keys as the JSON files, so they are sent by
    // another organisation (keys are per organisation) and both must read back the same payload.
    let a = hub
        .onboard("E2E-HCM", "Sở Khoa học và Công nghệ TP. Hồ Chí Minh")
        .await;
    let b = hub.onboard("E2E-HN", "Sở Khoa học và Công nghệ Hà Nội").await;
    // JSON goes over HTTP/1.1 (hub.client), XML over HTTP/2.
    let h2 = hub.new_client(true);
    let mut a_records = Vec::new();
    for (json_rel, xml_rel) in twins() {
        let expected = example_json(&json_rel);

        let resp = hub
            .submit(&a.api_key, "application/json", expected.to_string(), None)
            .await;
        assert_eq!(resp.status(), 202, "{json_rel}");
        let receipt: Value = resp.json().await.unwrap();
        assert_eq!(receipt["record_count"], 1, "{json_rel}: {receipt}");
        let id = receipt["record_ids"][0].as_str().unwrap().to_owned();
        let (status, got) = hub.get_record(&a.api_key, &id).await;
        assert_eq!(status, 200, "{json_rel}: {got}");
        assert_eq!(got["payload"], expected["payload"], "{json_rel}");
        assert_eq!(got["category"], expected["category"], "{json_rel}");
        assert_eq!(got["period"], expected["period"], "{json_rel}");
        assert_eq!(got["classification"], expected["classification"], "{json_rel}");
        assert_eq!(got["provenance"]["receipt_id"], receipt["receipt_id"]);
        a_records.push(id);

        let xml = std::fs::read(example_path(&xml_rel)).unwrap();
        let resp = h2
            .post(hub.url("/api/v1/records"))
            .header("x-api-key", &b.api_key)
            .header("content-type", "application/xml")
            .body(xml)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.status(), 202, "{xml_rel}");
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.contains("xml"), "an XML submission gets an XML receipt: {ct}");
        let text = resp.text().await.unwrap();
        let ids = xml_elements(&text, "record_id");
        assert_eq!(ids.len(), 1, "{xml_rel}: {text}");
        let (status, got) = hub.get_record(&b.api_key, &ids[0]).await;
        assert_eq!(status, 200, "{xml_rel}: {got}");
        assert_eq!(
            got["payload"], expected["payload"],
            "{xml_rel} reads back like {json_rel}"
        );
        assert_eq!(got["category"], expected["category"], "{xml_rel}");
        assert_eq!(got["period"], expected["period"], "{xml_rel}");
    }

    // A batch in XML: one receipt, every record readable.
    let batch = std::fs::read_to_string(example_path("statistics/batch-2026-10.xml")).unwrap();
    let n = batch.matches("<record>").count();
    let resp = hub.submit(&b.api_key, "application/xml", batch, None).await;
    assert_eq!(resp.status(), 202);
    let ids = xml_elements(&resp.text().await.unwrap(), "record_id");
    assert_eq!(ids.len(), n);
    for id in &ids {
        assert_eq!(hub.get_record(&b.api_key, id).await.0, 200);
    }

    // Revoke A's key through the API: refused right after, B unaffected.
    let keys: Value = hub
        .client
        .get(hub.url("/api/v1/keys"))
        .header("x-api-key", &a.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        keys.as_array()
            .unwrap()
            .iter()
            .any(|k| k["id"] == a.key_id.as_str()),
        "{keys}"
    );
    let del = hub
        .client
        .delete(hub.url(&format!("/api/v1/keys/{}", a.key_id)))
        .header("x-api-key", &a.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 204);
    let body = stats_record("sau khi thu hồi khóa", 1.0).to_string();
    assert_problem(
        hub.submit(&a.api_key, "application/json", body, None).await,
        401,
        "revoked_credentials",
    )
    .await;
    let read = hub
        .client
        .get(hub.url(&format!("/api/v1/records/{}", a_records[0])))
        .header("x-api-key", &a.api_key)
        .send()
        .await
        .unwrap();
    assert_problem(read, 401, "revoked_credentials").await;
    assert_eq!(hub.get_record(&b.api_key, &ids[0]).await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_accepts_json_and_xml_over_https() {
    accepts_json_and_xml_over_https(Mode::AllInOne).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_accepts_json_and_xml_over_https() {
    accepts_json_and_xml_over_https(Mode::Distributed).await;
}
