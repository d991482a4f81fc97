//! A canary in payloads (free text and a personal identifier) comes back through the API but
//! never appears in clear in the database files, a PostgreSQL dump, the logs or Redis.

use crate::common::*;
use etx_e2e::{Hub, HubOptions, Mode, contains_bytes, files_containing, files_under, query_column};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Debug logging for our crates and the web stack, so a payload logged "only in debug" is
/// caught too; the noisiest transport crates stay at info.
const VERBOSE_LOG: &str = "debug,h2=info,hyper=info,hyper_util=info,rustls=info,tokio_postgres=info,\
                           sqlx=info,redis=info,deadpool=info,mio=info,tokio=info,runtime=info";

/// The byte sequences under which a secret counts as "in clear": as is, and hex-encoded (how
/// PostgreSQL dumps and prints bytea).
fn forms(secret: &str) -> Vec<(String, Vec<u8>)> {
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    vec![
        (format!("{secret:?}"), secret.as_bytes().to_vec()),
        (format!("{secret:?} as hex"), hex.into_bytes()),
    ]
}

fn assert_absent(what: &str, hay: &[u8], secrets: &[&str]) {
    for s in secrets {
        for (name, needle) in forms(s) {
            assert!(!contains_bytes(hay, &needle), "{name} found in clear in {what}");
        }
    }
}

fn assert_absent_from_files(files: &[PathBuf], secrets: &[&str]) {
    for s in secrets {
        for (name, needle) in forms(s) {
            let hits = files_containing(files, &needle);
            assert!(hits.is_empty(), "{name} found in clear in {hits:?}");
        }
    }
}

/// `pg_dump --data-only` of the test database, or — without pg_dump — every row of every table
/// of its public schema as text.
async fn pg_data(hub: &Hub) -> Vec<u8> {
    let url = hub.pg_url().unwrap();
    match tokio::process::Command::new("pg_dump")
        .args(["--data-only", "--no-owner", "--dbname", url])
        .output()
        .await
    {
        Ok(out) if out.status.success() => return out.stdout,
        Ok(out) => eprintln!(
            "pg_dump failed ({}), reading the tables instead: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("pg_dump unavailable ({e}), reading the tables instead"),
    }
    let db = hub.open_db().await;
    let tables: Vec<String> = query_column(
        &db,
        "SELECT table_name::text AS t FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
        "t",
    )
    .await;
    assert!(tables.iter().any(|t| t == "records"), "{tables:?}");
    let mut out = Vec::new();
    for t in tables {
        let rows: Vec<Option<String>> = query_column(
            &db,
            &format!("SELECT string_agg(x::text, E'\\n') AS d FROM \"{t}\" x"),
            "d",
        )
        .await;
        for r in rows.into_iter().flatten() {
            out.extend_from_slice(r.as_bytes());
            out.push(b'\n');
        }
    }
    let _ = db.close().await;
    out
}

async fn a_canary_never_appears_in_clear(mode: Mode) {
    let mut hub = Hub::start(
        mode,
        HubOptions {
            rust_log: Some(VERBOSE_LOG.into()),
            ..Default::default()
        },
    )
    .await;
    let source = hub
        .onboard("E2E-CANARY", "Sở Khoa học và Công nghệ Cần Thơ")
        .await;
    let canary = format!("CANARY-{}", uuid::Uuid::new_v4());
    // A 12-digit citizen id (schema-valid) that occurs nowhere else.
    let citizen = format!("{:012}", uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000);
    // Idempotency keys are matched through keyed hashes only, so they must be absent too; the
    // receipts' content hashes are stored in clear and serve as the positive control that the
    // scans below do see the stored data.
    let control = format!("idemkey-{}", uuid::Uuid::new_v4().simple());
    let mut control_hash = String::new();

    let mut stats = stats_record(&format!("Ghi chú {canary} — số liệu kiểm thử"), 17.0);
    stats["payload"]["failure_reasons"] = json!([
        {"reason_code": "timeout", "count": 17, "description": format!("Mô tả {canary}")}
    ]);
    let mut expert = example_json("workforce/02-expert-registry.json");
    expert["idempotency_key"] = json!(format!("{control}-expert"));
    expert["payload"]["title"] = json!(format!("Đăng ký chuyên gia {canary}"));
    expert["payload"]["expert"]["full_name"] = json!(format!("Nguyễn Văn {canary}"));
    expert["payload"]["expert"]["citizen_id"] = json!(citizen);
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<records xmlns="urn:etxhub:ingestion:v1">
  <record>
    <category>statistics</category><schema_version>1</schema_version><period>2026-11</period>
    <classification>confidential</classification><priority>high</priority><form>raw</form>
    <payload>
      <indicator>transaction_count</indicator><transaction_kind>e_contract</transaction_kind>
      <value>3</value><unit>count</unit>
      <dimensions><province_code>92</province_code></dimensions>
      <note>XML {canary}</note>
    </payload>
  </record>
</records>"#
    );

    let mut stored: Vec<(String, Value)> = Vec::new();
    for (i, rec) in [stats.clone(), expert.clone()].into_iter().enumerate() {
        let key = format!("{control}-{i}");
        let resp = hub
            .submit(&source.api_key, "application/json", rec.to_string(), Some(&key))
            .await;
        assert_eq!(resp.status(), 202);
        let r: Value = resp.json().await.unwrap();
        if control_hash.is_empty() {
            control_hash = r["content_hash"].as_str().unwrap().to_owned();
        }
        stored.push((
            r["record_ids"][0].as_str().unwrap().to_owned(),
            rec["payload"].clone(),
        ));
    }
    let resp = hub
        .submit(
            &source.api_key,
            "application/xml",
            xml,
            Some(&format!("{control}-xml")),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let xml_ids = etx_e2e::xml_elements(&resp.text().await.unwrap(), "record_id");
    assert_eq!(xml_ids.len(), 1);

    // The canary was stored: it comes back through the API.
    for (id, payload) in &stored {
        let (status, got) = hub.get_record(&source.api_key, id).await;
        assert_eq!(status, 200);
        assert_eq!(&got["payload"], payload);
        assert!(got["payload"].to_string().contains(&canary));
    }
    let (_, got) = hub.get_record(&source.api_key, &xml_ids[0]).await;
    assert_eq!(got["payload"]["note"], format!("XML {canary}"));
    let (_, got) = hub.get_record(&source.api_key, &stored[1].0).await;
    assert_eq!(got["payload"]["expert"]["citizen_id"], citizen.as_str());

    // Distributed: wait until the relay has put the three records on the Redis streams.
    let all_ids: Vec<String> = stored.iter().map(|(i, _)| i.clone()).chain(xml_ids).collect();
    if mode == Mode::Distributed {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let contents = hub.redis_contents().await;
            let published = all_ids.iter().all(|id| {
                contents
                    .iter()
                    .any(|(_, vals)| vals.iter().any(|v| contains_bytes(v, id.as_bytes())))
            });
            if published {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the records never reached Redis: {:?}",
                contents.iter().map(|(k, _)| k).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The masking stage has stored its copies of the three records (issue 5, R-SEC-10): the
    // scans below must find no canary in them either.
    let db = hub.open_db().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while etx_e2e::query_i64(
        &db,
        "SELECT COUNT(*) AS n FROM masked_records WHERE status = 'masked'",
    )
    .await
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "the masking stage never stored the three records"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = db.close().await;

    // Stop every process (SIGTERM) so files and logs are complete, then scan.
    hub.stop_all().await;
    let secrets = [canary.as_str(), citizen.as_str(), control.as_str()];

    let data_files: Vec<PathBuf> = hub.data_dirs().iter().flat_map(|d| files_under(d)).collect();
    assert!(!data_files.is_empty());
    assert_absent_from_files(&data_files, &secrets);
    if mode == Mode::AllInOne {
        assert!(
            data_files
                .iter()
                .any(|f| f.to_string_lossy().contains("etxhub.db")),
            "{data_files:?}"
        );
        assert!(
            !files_containing(&data_files, control_hash.as_bytes()).is_empty(),
            "control: the scan must see the stored receipts in the SQLite files"
        );
    }

    let logs = hub.log_files();
    assert!(
        logs.iter()
            .any(|l| std::fs::metadata(l).is_ok_and(|m| m.len() > 0))
    );
    assert_absent_from_files(&logs, &secrets);

    if mode == Mode::Distributed {
        let contents = hub.redis_contents().await;
        assert!(!contents.is_empty(), "the Redis prefix holds no keys");
        for (key, values) in &contents {
            for v in values {
                assert_absent(&format!("Redis key {key}"), v, &secrets);
            }
        }
        let dump = pg_data(&hub).await;
        assert!(
            contains_bytes(&dump, control_hash.as_bytes()),
            "control: the dump must show the stored receipts"
        );
        assert_absent("the PostgreSQL data", &dump, &secrets);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_in_one_a_canary_never_appears_in_clear() {
    a_canary_never_appears_in_clear(Mode::AllInOne).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_a_canary_never_appears_in_clear() {
    a_canary_never_appears_in_clear(Mode::Distributed).await;
}
