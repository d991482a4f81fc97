//! Helpers shared by the end-to-end tests.

use etx_e2e::workspace_root;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A valid statistics record whose payload carries `note` (a free-text field).
pub fn stats_record(note: &str, value: f64) -> Value {
    json!({
        "category": "statistics",
        "schema_version": "1",
        "period": "2026-10",
        "classification": "internal",
        "priority": "normal",
        "form": "raw",
        "payload": {
            "indicator": "transaction_count",
            "transaction_kind": "e_invoice",
            "value": value,
            "unit": "count",
            "dimensions": {"province_code": "79"},
            "note": note
        }
    })
}

/// Reads an example record (`contracts/examples/records/<rel>`) as JSON.
pub fn example_json(rel: &str) -> Value {
    let p = etx_e2e::example_path(rel);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Asserts a problem+json answer with the given status and code.
pub async fn assert_problem(resp: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(resp.status(), status, "expected {status} {code}");
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["code"], code, "{p}");
    p
}

/// What a client got back for one acknowledged (202) submission.
#[derive(Debug, Clone)]
pub struct Ack {
    /// The Idempotency-Key sent.
    pub key: String,
    /// The record's receipt.
    pub receipt_id: String,
    /// Its one record.
    pub record_id: String,
    /// Whether the 202 was a replay of an earlier (unacknowledged) attempt.
    pub replayed: bool,
    /// How many times the request was sent.
    pub attempts: u32,
}

/// POSTs one JSON body with an Idempotency-Key, retrying the very same request (same key, same
/// body) after any transport error, cut-short answer, 5xx, 408 or 429, with a short backoff,
/// until it is acknowledged with 202. Any other answer, or 60 s without success, fails the test.
pub async fn submit_until_acknowledged(
    client: &reqwest::Client,
    url: &str,
    api_key: &str,
    key: &str,
    body: &str,
) -> Ack {
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut attempts = 0;
    let mut backoff = Duration::from_millis(50);
    let mut last: String;
    loop {
        attempts += 1;
        let sent = client
            .post(url)
            .header("x-api-key", api_key)
            .header("content-type", "application/json")
            .header("idempotency-key", key)
            .body(body.to_owned())
            .timeout(Duration::from_secs(15))
            .send()
            .await;
        match sent {
            Ok(r) if r.status() == 202 => {
                let replayed = r
                    .headers()
                    .get("idempotent-replayed")
                    .is_some_and(|v| v == "true");
                match r.json::<Value>().await {
                    Ok(v) => {
                        let ids = v["record_ids"].as_array().unwrap();
                        assert_eq!(ids.len(), 1, "one record per request: {v}");
                        return Ack {
                            key: key.to_owned(),
                            receipt_id: v["receipt_id"].as_str().unwrap().to_owned(),
                            record_id: ids[0].as_str().unwrap().to_owned(),
                            replayed,
                            attempts,
                        };
                    }
                    Err(e) => last = format!("202 cut short: {e}"),
                }
            }
            Ok(r) if r.status().is_server_error() || r.status() == 408 || r.status() == 429 => {
                last = format!("status {}", r.status());
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                panic!("request {key} (attempt {attempts}): unexpected {status}: {text}");
            }
            Err(e) => last = format!("transport: {e}"),
        }
        assert!(
            Instant::now() < give_up,
            "request {key}: not acknowledged after 60 s and {attempts} attempts (last: {last})"
        );
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(500));
    }
}

/// The cargo target dir: `CARGO_TARGET_DIR` (relative to the workspace root) or `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => workspace_root().join(t),
        None => workspace_root().join("target"),
    }
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether the venv's Python imports what the e2e scripts use.
fn venv_ready(python: &Path) -> bool {
    python.is_file()
        && Command::new(python)
            .args(["-c", "import zeep, lxml, requests"])
            .output()
            .is_ok_and(|o| o.status.success())
}

/// The Python of the e2e virtualenv (`<target>/e2e-venv`), with zeep installed, and with it
/// lxml and requests: made on first use with `python3 -m venv` (`ETX_E2E_PYTHON` names another
/// interpreter) and `pip install zeep`. When that cannot be done the calling test fails, it is
/// never skipped. Built in a directory of its own and renamed into place, so tests running at
/// the same time never see half a venv. Blocking: call it from `spawn_blocking` in async tests.
pub fn venv_python() -> PathBuf {
    let venv = target_dir().join("e2e-venv");
    let python = venv.join("bin").join("python");
    if venv_ready(&python) {
        return python;
    }
    let base = std::env::var("ETX_E2E_PYTHON").unwrap_or_else(|_| "python3".into());
    let tmp = target_dir().join(format!("e2e-venv.tmp-{}", uuid::Uuid::now_v7().simple()));
    run_checked(
        Command::new(&base).args(["-m", "venv"]).arg(&tmp),
        "creating the e2e virtualenv (python3 -m venv)",
    );
    run_checked(
        Command::new(tmp.join("bin").join("python")).args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            "zeep>=4.2,<5",
        ]),
        "pip install zeep",
    );
    if std::fs::rename(&tmp, &venv).is_err() {
        if venv_ready(&python) {
            // Another test made it first.
            let _ = std::fs::remove_dir_all(&tmp);
        } else {
            let _ = std::fs::remove_dir_all(&venv);
            std::fs::rename(&tmp, &venv)
                .unwrap_or_else(|e| panic!("cannot move the virtualenv to {}: {e}", venv.display()));
        }
    }
    assert!(
        venv_ready(&python),
        "zeep and lxml are not importable from {}",
        python.display()
    );
    python
}
