//! A real SOAP client against the real binary (R-ING-3): Python's zeep, configured only from
//! the WSDL the hub publishes, over HTTPS trusting the hub's certificate, SOAP 1.1 and 1.2,
//! in both modes. The client is `e2e-tests/soap/zeep_client.py`; it runs in the e2e virtualenv
//! under the target dir ([`venv_python`]: `<target>/e2e-venv`, made on first use with
//! `pip install zeep`) — when that cannot be done the test fails, it is never skipped.

use crate::common::venv_python;
use etx_e2e::{Hub, Mode, workspace_root};
use serde_json::Value;

fn s<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

async fn zeep_talks_to(mode: Mode) {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let mut hub = Hub::start(mode, Default::default()).await;
    let a = hub
        .onboard("E2E-SOAP-A", "Sở Thông tin và Truyền thông Đà Nẵng")
        .await;
    let b = hub
        .onboard("E2E-SOAP-B", "Sở Thông tin và Truyền thông Cần Thơ")
        .await;
    let cert = hub.gateway().spec().data_dir.join("tls/cert.pem");
    let script = workspace_root().join("e2e-tests/soap/zeep_client.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg("--wsdl")
        .arg(hub.url("/soap/v1/ingestion?wsdl"))
        .arg("--cafile")
        .arg(&cert)
        .args(["--key", &a.api_key, "--other-key", &b.api_key])
        .output()
        .await
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the zeep client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));

    assert_eq!(
        r["operations"],
        serde_json::json!(["GetBatchStatus", "GetReceipt", "SubmitBatch", "SubmitRecords"]),
        "zeep read every operation from the WSDL"
    );
    for (version, sender) in [("1.1", "soap:Client"), ("1.2", "env:Sender")] {
        let v = &r["versions"][version];
        let receipt = &v["receipt"];
        assert_eq!(receipt["record_count"], 2, "{version}: {v}");
        assert_eq!(receipt["replayed"], false);
        assert_eq!(receipt["status"], "received");
        let ids = s(receipt, &["record_ids", "record_id"]).clone();
        assert_eq!(v["read_back"]["receipt_id"], receipt["receipt_id"]);
        assert_eq!(s(&v["read_back"], &["record_ids", "record_id"]), &ids);
        assert_eq!(
            v["replay"]["receipt_id"], receipt["receipt_id"],
            "{version}: the same key replays"
        );
        assert_eq!(v["replay"]["replayed"], true);

        // Stored like any other submission: the record reads back over REST.
        let (status, got) = hub.get_record(&a.api_key, ids[1].as_str().unwrap()).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["payload"]["value"], 97.5);
        assert_eq!(got["payload"]["note"], format!("zeep {version} — hai"));
        assert_eq!(got["provenance"]["receipt_id"], receipt["receipt_id"]);

        let invalid = &v["invalid"];
        assert_eq!(invalid["soap_code"], sender, "{version}: {invalid}");
        assert_eq!(invalid["code"], "validation_failed");
        assert_eq!(invalid["message"], "Dữ liệu không hợp lệ");
        assert_eq!(
            invalid["violations"][0],
            serde_json::json!({"item": "0", "path": "/payload/value", "code": "type", "message": "Sai kiểu dữ liệu"})
        );
        assert_eq!(
            v["foreign"]["code"], "not_found",
            "{version}: another organisation's receipt"
        );

        assert_eq!(v["batch_submitted"]["replayed"], false);
        let batch = &v["batch_status"];
        assert_eq!(batch["batch_id"], v["batch_submitted"]["batch"]["batch_id"]);
        assert_eq!(batch["state"], "completed", "{version}: {batch}");
        assert_eq!(batch["counts"]["accepted"], 3);
        assert_eq!(batch["declared"]["row_count"], 3);
    }
    assert_eq!(r["anonymous"]["code"], "missing_credentials");
    assert_eq!(r["anonymous"]["soap_code"], "soap:Client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_uses_the_published_wsdl_all_in_one() {
    zeep_talks_to(Mode::AllInOne).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zeep_uses_the_published_wsdl_distributed() {
    zeep_talks_to(Mode::Distributed).await;
}
