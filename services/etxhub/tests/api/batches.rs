//! Batch ingestion (issue 3 §1–§5; R-ING-1 batch, R-ING-3, R-ING-5, R-REC control totals).

use crate::both_backends;
use crate::helpers::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;

const DEFAULTS: &str = "category=statistics&schema_version=1&period=2026-10&classification=internal";
const PROVINCES: [&str; 5] = ["01", "79", "48", "31", "92"];

/// A statistics CSV of `n` rows; rows listed in `bad` break a rule each (value negative).
fn stats_csv(n: usize, bad: &[usize]) -> String {
    let mut s = String::from("indicator,transaction_kind,value,unit,dimensions.province_code,note\n");
    for i in 1..=n {
        let value = if bad.contains(&i) { -1 } else { i as i64 * 10 };
        s.push_str(&format!(
            "transaction_count,e_invoice,{value},count,{},\"Hóa đơn điện tử, dòng {i}\"\n",
            PROVINCES[i % PROVINCES.len()]
        ));
    }
    s
}

async fn upload(
    app: &TestApp,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    upload_with(app, query, content_type, body, &[]).await
}

async fn upload_with(
    app: &TestApp,
    query: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/api/v1/batches?{query}")))
        .header("x-api-key", &app.key_a)
        .header("content-type", content_type)
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    req.send().await.unwrap()
}

/// Polls a batch until it is finished.
async fn finished(app: &TestApp, id: &str) -> Value {
    for _ in 0..600 {
        let v: Value = app
            .get(&format!("/api/v1/batches/{id}"), &app.key_a)
            .await
            .json()
            .await
            .unwrap();
        if matches!(v["state"].as_str(), Some("completed" | "rejected" | "failed")) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("batch {id} did not finish");
}

fn counts(v: &Value) -> (u64, u64, u64, u64) {
    let c = &v["counts"];
    (
        c["total"].as_u64().unwrap(),
        c["accepted"].as_u64().unwrap(),
        c["rejected"].as_u64().unwrap(),
        c["duplicate"].as_u64().unwrap(),
    )
}

async fn accepted_id(resp: reqwest::Response) -> String {
    assert_eq!(resp.status(), 202, "{}", resp.text().await.unwrap());
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let v: Value = resp.json().await.unwrap();
    let id = v["batch_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/batches/{id}"));
    assert_eq!(v["state"], "received");
    id
}

both_backends!(a_csv_batch_is_stored_row_by_row, |app: TestApp| async move {
    let csv = stats_csv(120, &[]);
    let id = accepted_id(upload(&app, DEFAULTS, "text/csv", csv.clone()).await).await;
    let v = finished(&app, &id).await;
    assert_eq!(v["state"], "completed");
    assert_eq!(counts(&v), (120, 120, 0, 0));
    assert_eq!(v["sha256"], hex::encode(Sha256::digest(csv.as_bytes())));
    assert!(v["duration_seconds"].as_f64().is_some());
    assert_eq!(app.count("records").await, 120);
    // The batch's receipt is readable, and its records carry the batch method.
    let receipt = v["receipt_id"].as_str().unwrap();
    let r = app.get(&format!("/api/v1/receipts/{receipt}"), &app.key_a).await;
    assert_eq!(r.status(), 200);
    // Every stored payload is encrypted: no diacritics of the file in the database.
    assert_eq!(app.count("batch_errors").await, 0);
});

both_backends!(
    re_uploading_the_same_file_returns_the_original_batch,
    |app: TestApp| async move {
        let csv = stats_csv(30, &[]);
        let id = accepted_id(upload(&app, DEFAULTS, "text/csv", csv.clone()).await).await;
        finished(&app, &id).await;
        let again = upload(&app, DEFAULTS, "text/csv", csv.clone()).await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.headers()["idempotent-replayed"], "true");
        let v: Value = again.json().await.unwrap();
        assert_eq!(v["batch_id"], id.as_str());
        assert_eq!(v["replayed"], true);
        assert_eq!(app.count("records").await, 30);
        assert_eq!(app.count("batches").await, 1);
        // The file is deleted once processed; the replay's chunks were never kept.
        assert_eq!(app.count("batch_chunks").await, 0);
    }
);

both_backends!(
    fixing_five_rows_and_re_uploading_stores_exactly_those_five,
    |app: TestApp| async move {
        let bad = [3, 10, 17, 33, 48];
        let first = stats_csv(50, &bad);
        let id = accepted_id(upload(&app, DEFAULTS, "text/csv", first).await).await;
        let v = finished(&app, &id).await;
        assert_eq!(v["state"], "completed");
        assert_eq!(counts(&v), (50, 45, 5, 0));
        assert_eq!(app.count("records").await, 45);

        // Every refused row with its line, path and translated message.
        let errs: Value = app
            .client
            .get(app.url(&format!("/api/v1/batches/{id}/errors")))
            .header("x-api-key", &app.key_a)
            .header("accept-language", "en")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let list = errs["errors"].as_array().unwrap();
        let rows: Vec<u64> = list.iter().map(|e| e["row"].as_u64().unwrap()).collect();
        assert_eq!(rows, bad.iter().map(|r| *r as u64).collect::<Vec<_>>());
        for e in list {
            assert_eq!(
                e["line"].as_u64().unwrap(),
                e["row"].as_u64().unwrap() + 1,
                "header is line 1"
            );
            assert_eq!(e["path"], "/payload/value");
            assert_eq!(e["code"], "too_small");
            assert!(e["message"].as_str().unwrap().is_ascii(), "English message");
        }

        // The same list as CSV, in Vietnamese by default.
        let csv_errs = app
            .get(&format!("/api/v1/batches/{id}/errors?format=csv"), &app.key_a)
            .await;
        assert_eq!(csv_errs.status(), 200);
        assert!(
            csv_errs.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let text = csv_errs.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 5);
        assert_eq!(&records[0][0], "3");
        assert!(
            !records[0][4].is_ascii(),
            "Vietnamese message: {}",
            &records[0][4]
        );

        // Fix the five rows and send the whole file again.
        let fixed = stats_csv(50, &[]);
        let id2 = accepted_id(upload(&app, DEFAULTS, "text/csv", fixed).await).await;
        let v2 = finished(&app, &id2).await;
        assert_eq!(counts(&v2), (50, 5, 0, 45));
        assert_eq!(app.count("records").await, 50);
    }
);

both_backends!(
    a_row_count_mismatch_rejects_the_whole_batch,
    |app: TestApp| async move {
        let csv = stats_csv(40, &[]);
        let resp = upload_with(
            &app,
            DEFAULTS,
            "text/csv",
            csv,
            &[("x-batch-row-count", "41".into())],
        )
        .await;
        let id = accepted_id(resp).await;
        let v = finished(&app, &id).await;
        assert_eq!(v["state"], "rejected");
        assert_eq!(v["reject_reason"]["code"], "row_count_mismatch");
        assert_eq!(v["reject_reason"]["declared"], 41);
        assert_eq!(v["reject_reason"]["actual"], 40);
        assert_eq!(v["counts"]["total"], 40);
        assert_eq!(app.count("records").await, 0);
        // No announcement of a record (other modules announce their own start-up state).
        assert_eq!(app.count("outbox WHERE stream = 'records.received'").await, 0);

        // The right count is accepted.
        let csv = stats_csv(40, &[]);
        let resp = upload_with(
            &app,
            DEFAULTS,
            "text/csv",
            csv,
            &[("x-batch-row-count", "40".into())],
        )
        .await;
        let id = accepted_id(resp).await;
        assert_eq!(finished(&app, &id).await["state"], "completed");
        assert_eq!(app.count("records").await, 40);
    }
);

both_backends!(a_sha256_mismatch_keeps_nothing, |app: TestApp| async move {
    let csv = stats_csv(10, &[]);
    let wrong = hex::encode(Sha256::digest(b"another file"));
    let resp = upload_with(
        &app,
        DEFAULTS,
        "text/csv",
        csv.clone(),
        &[("x-batch-sha256", wrong)],
    )
    .await;
    assert_eq!(resp.status(), 422);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], "control_total_mismatch");
    assert_eq!(p["violations"][0]["path"], "header:X-Batch-SHA256");
    assert_eq!(app.count("batches").await, 0);
    assert_eq!(app.count("batch_chunks").await, 0);
    assert_eq!(app.count("records").await, 0);

    let right = hex::encode(Sha256::digest(csv.as_bytes()));
    let resp = upload_with(
        &app,
        DEFAULTS,
        "text/csv",
        csv,
        &[("x-batch-sha256", right.to_uppercase())],
    )
    .await;
    let id = accepted_id(resp).await;
    assert_eq!(finished(&app, &id).await["state"], "completed");
});

both_backends!(
    a_dry_run_validates_everything_and_stores_nothing,
    |app: TestApp| async move {
        let csv = stats_csv(20, &[4, 9]);
        let id = accepted_id(upload(&app, &format!("{DEFAULTS}&dry_run=true"), "text/csv", csv).await).await;
        let v = finished(&app, &id).await;
        assert_eq!(v["state"], "completed");
        assert_eq!(v["dry_run"], true);
        assert_eq!(counts(&v), (20, 18, 2, 0));
        assert!(v["receipt_id"].is_null());
        assert_eq!(app.count("records").await, 0);
        assert_eq!(app.count("receipts").await, 0);
        let errs: Value = app
            .get(&format!("/api/v1/batches/{id}/errors"), &app.key_a)
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(errs["errors"].as_array().unwrap().len(), 2);
    }
);

both_backends!(every_example_batch_file_is_accepted, |app: TestApp| async move {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/examples/batches");
    let mut uploaded = 0;
    for (file, ct) in [
        ("statistics-2026-10.csv", "text/csv"),
        ("statistics-2026-10.ndjson", "application/x-ndjson"),
        ("statistics-2026-10.json", "application/json"),
        ("statistics-2026-10.xml", "application/xml"),
    ] {
        let body = std::fs::read(dir.join(file)).unwrap();
        let id = accepted_id(upload(&app, DEFAULTS, ct, body).await).await;
        let v = finished(&app, &id).await;
        assert_eq!(v["state"], "completed", "{file}: {v}");
        let (total, accepted, rejected, duplicate) = counts(&v);
        assert_eq!(total, 12, "{file}");
        assert_eq!(rejected, 0, "{file}");
        // The four files hold the same rows: the first stores them, the others find them.
        assert_eq!(accepted + duplicate, 12, "{file}");
        uploaded += 1;
    }
    assert_eq!(uploaded, 4);
    assert_eq!(app.count("records").await, 12);

    let mixed = std::fs::read(dir.join("mixed.ndjson")).unwrap();
    let id = accepted_id(upload(&app, "", "application/x-ndjson", mixed).await).await;
    let v = finished(&app, &id).await;
    assert_eq!(v["state"], "completed", "{v}");
    assert_eq!(v["counts"]["rejected"], 0, "{v}");
});

both_backends!(
    a_multipart_upload_with_a_manifest_works,
    |app: TestApp| async move {
        let csv = stats_csv(15, &[]);
        let manifest = serde_json::json!({
            "format": "csv",
            "category": "statistics",
            "schema_version": "1",
            "period": "2026-10",
            "classification": "internal",
            "row_count": 15,
            "sha256": hex::encode(Sha256::digest(csv.as_bytes())),
        });
        let form = reqwest::multipart::Form::new()
            .part(
                "manifest",
                reqwest::multipart::Part::text(manifest.to_string())
                    .mime_str("application/json")
                    .unwrap(),
            )
            .part(
                "file",
                reqwest::multipart::Part::bytes(csv.into_bytes())
                    .file_name("so-lieu-thang-10.csv")
                    .mime_str("text/csv")
                    .unwrap(),
            );
        let resp = app
            .client
            .post(app.url("/api/v1/batches"))
            .header("x-api-key", &app.key_a)
            .multipart(form)
            .send()
            .await
            .unwrap();
        let id = accepted_id(resp).await;
        let v = finished(&app, &id).await;
        assert_eq!(counts(&v), (15, 15, 0, 0));
        assert_eq!(v["declared"]["row_count"], 15);
    }
);

both_backends!(
    another_organisation_cannot_see_a_batch,
    |app: TestApp| async move {
        let id = accepted_id(upload(&app, DEFAULTS, "text/csv", stats_csv(3, &[1])).await).await;
        finished(&app, &id).await;
        for path in [
            format!("/api/v1/batches/{id}"),
            format!("/api/v1/batches/{id}/errors"),
        ] {
            let r = app.get(&path, &app.key_b).await;
            assert_eq!(r.status(), 404, "{path}");
            let p: Value = r.json().await.unwrap();
            assert_eq!(p["code"], "not_found");
        }
    }
);

both_backends!(
    bad_uploads_get_precise_errors_and_keep_nothing,
    |app: TestApp| async move {
        // No format to be found.
        let r = upload(&app, DEFAULTS, "application/octet-stream", "a,b\n1,2\n").await;
        assert_eq!(r.status(), 400);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["code"], "invalid_parameter");
        assert_eq!(p["violations"][0]["path"], "query:format");
        // Unknown explicit format.
        let r = upload(&app, &format!("{DEFAULTS}&format=xls"), "text/csv", "a\n1\n").await;
        assert_eq!(r.status(), 400);
        // Bad control-total headers.
        let r = upload_with(
            &app,
            DEFAULTS,
            "text/csv",
            "a\n1\n",
            &[("x-batch-row-count", "many".into())],
        )
        .await;
        assert_eq!(r.status(), 400);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["violations"][0]["path"], "header:X-Batch-Row-Count");
        let r = upload_with(
            &app,
            DEFAULTS,
            "text/csv",
            "a\n1\n",
            &[("x-batch-sha256", "abc".into())],
        )
        .await;
        assert_eq!(r.status(), 400);
        // Empty file.
        let r = upload(&app, DEFAULTS, "text/csv", "").await;
        assert_eq!(r.status(), 422);
        // Bad errors format.
        let r = app
            .get(
                &format!("/api/v1/batches/{}/errors?format=pdf", uuid::Uuid::now_v7()),
                &app.key_a,
            )
            .await;
        assert_eq!(r.status(), 400);
        // No key.
        let r = app
            .client
            .post(app.url("/api/v1/batches"))
            .header("content-type", "text/csv")
            .body("a\n1\n")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(app.count("batches").await, 0);
        assert_eq!(app.count("batch_chunks").await, 0);
    }
);

both_backends!(an_unreadable_file_is_rejected_whole, |app: TestApp| async move {
    // A JSON array cut short after valid rows: nothing of it is stored.
    let rows: Vec<Value> = (1..=5).map(|i| stats_record(f64::from(i), None)).collect();
    let mut text = serde_json::to_string(&rows).unwrap();
    text.truncate(text.len() - 10);
    let id = accepted_id(upload(&app, "", "application/json", text).await).await;
    let v = finished(&app, &id).await;
    assert_eq!(v["state"], "rejected", "{v}");
    assert_eq!(v["reject_reason"]["code"], "unreadable");
    assert_eq!(app.count("records").await, 0);
});

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_over_the_limit_is_refused_and_nothing_is_kept() {
    let app = TestApp::spawn_with("sqlite", |c| c.limits.max_batch_bytes = 4096).await;
    let r = upload(&app, DEFAULTS, "text/csv", stats_csv(200, &[])).await;
    assert_eq!(r.status(), 413);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "payload_too_large");
    assert_eq!(app.count("batches").await, 0);
    assert_eq!(app.count("batch_chunks").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_file_spans_many_chunks() {
    // > 2 MiB: three encrypted chunks, read back in order.
    let app = TestApp::spawn("sqlite").await;
    let csv = stats_csv(30_000, &[]);
    assert!(csv.len() > 2 * (1 << 20));
    let csv_len = csv.len();
    let id = accepted_id(upload(&app, DEFAULTS, "text/csv", csv).await).await;
    let v = finished(&app, &id).await;
    assert_eq!(counts(&v), (30_000, 30_000, 0, 0));
    assert_eq!(v["size_bytes"].as_u64().unwrap(), csv_len as u64);
    // Processed: the file's three chunks are gone.
    assert_eq!(app.count("batch_chunks").await, 0);
}

both_backends!(
    xxe_and_billion_laughs_in_an_xml_batch_are_refused,
    |app: TestApp| async move {
        let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE records [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<records><record><payload><note>&x;</note></payload></record></records>"#;
        let lol = format!(
            "<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [<!ENTITY lol \"lol\">{}]>\n<records><record><payload><note>&lol9;</note></payload></record></records>",
            (1..10)
                .map(|i| format!(
                    "<!ENTITY lol{i} \"{}\">",
                    format!(
                        "&lol{};",
                        if i == 1 {
                            String::new()
                        } else {
                            (i - 1).to_string()
                        }
                    )
                    .repeat(10)
                ))
                .collect::<String>()
        );
        for body in [xxe.to_owned(), lol] {
            let id = accepted_id(upload(&app, DEFAULTS, "application/xml", body).await).await;
            let v = finished(&app, &id).await;
            assert_eq!(v["state"], "rejected", "{v}");
            assert_eq!(v["reject_reason"]["code"], "unreadable");
            assert!(
                v["reject_reason"]["detail"].as_str().unwrap().contains("DTD"),
                "{v}"
            );
        }
        assert_eq!(app.count("records").await, 0);
    }
);

/// Rows repeated across groups committed concurrently are stored once and counted as
/// duplicates (on PostgreSQL several groups are in flight at once).
async fn repeated_rows_across_concurrent_groups(backend: &'static str) {
    let app = TestApp::spawn_with(backend, |c| c.ingestion.batch_rows_per_commit = 7).await;
    let mut csv = String::from("indicator,transaction_kind,value,unit,dimensions.province_code,note\n");
    for i in 1..=90 {
        let k = (i - 1) % 30 + 1;
        csv.push_str(&format!(
            "transaction_count,e_invoice,{},count,79,Dòng lặp {k}\n",
            k * 10
        ));
    }
    let id = accepted_id(upload(&app, DEFAULTS, "text/csv", csv).await).await;
    let v = finished(&app, &id).await;
    assert_eq!(v["state"], "completed", "{v}");
    assert_eq!(counts(&v), (90, 30, 0, 60));
    assert_eq!(app.count("records").await, 30);
    assert_eq!(app.count("batch_groups").await, 13, "90 rows in groups of 7");
    let db = app.db.clone();
    drop(app);
    let _ = db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_rows_across_concurrent_groups_sqlite() {
    repeated_rows_across_concurrent_groups("sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_rows_across_concurrent_groups_postgres() {
    repeated_rows_across_concurrent_groups("postgres").await;
}
