//! `etx-loadgen`: the load generator of `scripts/bench`.
//!
//! It opens exactly `--connections` HTTP/1.1 keep-alive connections to the gateway (N tasks that
//! each send one request at a time, each over its own one-connection client), submits unique valid statistics records with unique `Idempotency-Key`s for
//! `--warmup-secs` (not measured) and then `--duration-secs` (measured), and reports throughput,
//! exact latency percentiles of the `202` answers and every error by kind. It always stops by
//! itself: no new request starts after the measured window, and stragglers are abandoned after
//! `--timeout-secs`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use anyhow::Context;
use clap::{Parser, ValueEnum};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Output {
    Text,
    Json,
}

/// Drives `POST /api/v1/records` with N concurrent keep-alive connections.
#[derive(Debug, Parser)]
#[command(name = "etx-loadgen", version, about)]
struct Cli {
    /// Base URL of the gateway, e.g. https://127.0.0.1:8443
    #[arg(long)]
    url: String,
    /// API key of a data source (sent as X-API-Key).
    #[arg(long, env = "ETX_LOADGEN_API_KEY", hide_env_values = true)]
    api_key: String,
    /// PEM file with the certificate(s) to trust (the gateway's self-signed certificate).
    /// Without it, only plain http:// URLs work.
    #[arg(long)]
    cacert: Option<std::path::PathBuf>,
    /// Concurrent connections (= concurrent in-flight requests).
    #[arg(long, default_value_t = 500)]
    connections: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    duration_secs: u64,
    /// Unmeasured seconds before the measurement (connections open, caches warm).
    #[arg(long, default_value_t = 3)]
    warmup_secs: u64,
    /// Records per request (1 = one record object; more = a JSON array).
    #[arg(long, default_value_t = 1)]
    records_per_request: usize,
    /// Open loop: total requests per second, spread evenly over the connections (0 = closed
    /// loop: every connection sends its next request as soon as the previous one is answered).
    /// Latency is then measured from each request's *scheduled* time, so a server that falls
    /// behind is charged for the queueing it causes (no coordinated omission).
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Per-request timeout in seconds (a timeout counts as an error).
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
    /// Tokio worker threads of the load generator (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Share one client (pool of up to N idle connections) among the N tasks instead of one
    /// client per task. hyper's shared pool may open a few more than N connections: a request
    /// that started a connect and then got an idle connection first still completes the connect.
    #[arg(long)]
    shared_pool: bool,
    /// `text` (human lines, then the JSON line) or `json` (the JSON line only).
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

/// What one task saw during the measured window.
#[derive(Debug, Default)]
struct TaskStats {
    /// Latencies of measured `202` answers, in microseconds.
    latencies_us: Vec<u32>,
    /// Records acknowledged by measured `202` answers.
    records_ok: u64,
    /// Measured requests (any outcome).
    requests: u64,
    /// Errors by kind (`http_503`, `timeout`, `connect`, ...).
    errors: BTreeMap<String, u64>,
    /// Unmeasured (warm-up) requests.
    warmup_requests: u64,
    /// When the last measured request of this task finished.
    last_done: Option<Instant>,
}

/// One HTTP outcome.
enum Outcome {
    Accepted,
    Error(String),
}

struct Shared {
    /// One client per task (or a single shared one with `--shared-pool`).
    clients: Vec<reqwest::Client>,
    endpoint: String,
    api_key: String,
    records_per_request: usize,
    run_id: String,
    measure_from: Instant,
    stop_at: Instant,
    /// Open loop: the start and the per-connection interval between requests.
    schedule: Option<(Instant, Duration)>,
    connections: usize,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.connections >= 1, "--connections must be at least 1");
    anyhow::ensure!(cli.duration_secs >= 1, "--duration-secs must be at least 1");
    anyhow::ensure!(
        (1..=1000).contains(&cli.records_per_request),
        "--records-per-request must be 1..=1000"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if cli.threads > 0 {
        rt.worker_threads(cli.threads);
    }
    let rt = rt.enable_all().build().context("tokio runtime")?;
    rt.block_on(run(cli))
}

fn build_client(cli: &Cli, pool: usize) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(pool)
        .pool_idle_timeout(Duration::from_secs(cli.warmup_secs + cli.duration_secs + 120))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(cli.timeout_secs));
    if let Some(path) = &cli.cacert {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{} is not a PEM certificate bundle", path.display()))?;
        anyhow::ensure!(!certs.is_empty(), "{} holds no certificate", path.display());
        b = b.tls_certs_only(certs);
    }
    b.build().context("HTTP client")
}

/// A valid statistics record (the shape of `tests/api/helpers.rs::stats_record`), unique
/// through its value — and a distinct *fact* through its `sector` dimension, so that the
/// pipeline benchmark reconciles many facts as a hub does, not thousands of revisions of one.
fn stats_record(value: u64) -> serde_json::Value {
    serde_json::json!({
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
            "dimensions": {"province_code": "79", "sector": format!("s{value:x}")},
            "note": "Số liệu hóa đơn điện tử tháng 10 — Thành phố Hồ Chí Minh"
        }
    })
}

fn body_for(shared: &Shared, task: usize, seq: u64) -> Vec<u8> {
    // Values are unique per (task, seq, item) within a run; the idempotency key carries the
    // run id, so runs against the same database never collide either.
    let base = ((task as u64) << 40) | (seq << 10);
    let value = if shared.records_per_request == 1 {
        stats_record(base)
    } else {
        serde_json::Value::Array(
            (0..shared.records_per_request as u64)
                .map(|i| stats_record(base | i))
                .collect(),
        )
    };
    // Serialising a `Value` cannot fail.
    serde_json::to_vec(&value).unwrap_or_default()
}

fn classify(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connect".into()
    } else if e.is_body() || e.is_decode() {
        "body".into()
    } else if e.is_request() {
        "request".into()
    } else {
        "other".into()
    }
}

async fn one_request(shared: &Shared, task: usize, seq: u64) -> Outcome {
    let key = format!("lg-{}-{task}-{seq}", shared.run_id);
    let client = &shared.clients[task % shared.clients.len()];
    let res = client
        .post(&shared.endpoint)
        .header("x-api-key", &shared.api_key)
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body_for(shared, task, seq))
        .send()
        .await;
    match res {
        Ok(resp) => {
            let status = resp.status();
            // Read the whole body so the connection goes back to the pool.
            match resp.bytes().await {
                Ok(_) if status.as_u16() == 202 => Outcome::Accepted,
                Ok(_) => Outcome::Error(format!("http_{}", status.as_u16())),
                Err(e) => Outcome::Error(classify(&e)),
            }
        }
        Err(e) => Outcome::Error(classify(&e)),
    }
}

async fn worker(shared: Arc<Shared>, task: usize) -> TaskStats {
    let mut st = TaskStats::default();
    let mut seq: u64 = 0;
    loop {
        let start = match shared.schedule {
            None => Instant::now(),
            Some((t0, every)) => {
                // Connections are staggered across one interval.
                let offset = every.mul_f64(task as f64 / shared.connections as f64);
                let at = t0 + offset + every.mul_f64(seq as f64);
                tokio::time::sleep_until(at.into()).await;
                at
            }
        };
        if start >= shared.stop_at {
            break;
        }
        let measured = start >= shared.measure_from;
        let outcome = one_request(&shared, task, seq).await;
        seq += 1;
        let done = Instant::now();
        if !measured {
            st.warmup_requests += 1;
            if let Outcome::Error(_) = outcome {
                // Do not hammer a failing server during warm-up.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            continue;
        }
        st.requests += 1;
        st.last_done = Some(done);
        match outcome {
            Outcome::Accepted => {
                let us = done.duration_since(start).as_micros();
                st.latencies_us.push(u32::try_from(us).unwrap_or(u32::MAX));
                st.records_ok += shared.records_per_request as u64;
            }
            Outcome::Error(kind) => {
                *st.errors.entry(kind).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    st
}

/// Exact nearest-rank percentile of sorted values.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    f64::from(sorted[idx]) / 1000.0
}

/// CPU seconds (user + system) this process has used, from /proc (Linux); `None` elsewhere.
fn own_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let clients = if cli.shared_pool {
        vec![build_client(&cli, cli.connections)?]
    } else {
        (0..cli.connections)
            .map(|_| build_client(&cli, 1))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let client = &clients[0];
    let base = cli.url.trim_end_matches('/');
    let endpoint = format!("{base}/api/v1/records");
    // One probe first: a wrong URL, certificate or key should fail fast, not produce 20 s of
    // errors.
    let probe = client
        .get(format!("{base}/healthz"))
        .send()
        .await
        .with_context(|| format!("cannot reach {base}/healthz"))?;
    anyhow::ensure!(
        probe.status().is_success(),
        "{base}/healthz answered {}",
        probe.status()
    );
    drop(probe);
    // The probe's connection stays in the first client's pool and becomes task 0's connection.

    let cpu_before = own_cpu_secs();
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs(cli.warmup_secs);
    let stop_at = measure_from + Duration::from_secs(cli.duration_secs);
    let shared = Arc::new(Shared {
        clients,
        endpoint,
        api_key: cli.api_key.clone(),
        records_per_request: cli.records_per_request,
        run_id: uuid::Uuid::now_v7().simple().to_string(),
        measure_from,
        stop_at,
        schedule: (cli.rate > 0.0).then(|| (t0, Duration::from_secs_f64(cli.connections as f64 / cli.rate))),
        connections: cli.connections,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..cli.connections {
        tasks.spawn(worker(shared.clone(), i));
    }
    // Hard bound: in-flight requests end by their own timeout; this is a safety net.
    let hard_deadline = stop_at + Duration::from_secs(cli.timeout_secs + 5);
    let mut all = Vec::with_capacity(cli.connections);
    let mut abandoned = 0usize;
    loop {
        match tokio::time::timeout_at(hard_deadline.into(), tasks.join_next()).await {
            Ok(Some(Ok(st))) => all.push(st),
            Ok(Some(Err(e))) => anyhow::bail!("a load task failed: {e}"),
            Ok(None) => break,
            Err(_) => {
                abandoned = tasks.len();
                tasks.abort_all();
                break;
            }
        }
    }
    let cpu_secs = match (cpu_before, own_cpu_secs()) {
        (Some(a), Some(b)) => Some(round2(b - a)),
        _ => None,
    };

    let mut latencies: Vec<u32> = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let (mut records_ok, mut requests, mut warmup_requests) = (0u64, 0u64, 0u64);
    let mut last_done = stop_at;
    for st in all {
        latencies.extend_from_slice(&st.latencies_us);
        records_ok += st.records_ok;
        requests += st.requests;
        warmup_requests += st.warmup_requests;
        for (k, v) in st.errors {
            *errors.entry(k).or_default() += v;
        }
        if let Some(d) = st.last_done {
            last_done = last_done.max(d);
        }
    }
    if abandoned > 0 {
        *errors.entry("abandoned".into()).or_default() += abandoned as u64;
    }
    latencies.sort_unstable();
    // Every request that started in the window is counted, so the window is stretched to the
    // end of the last one.
    let measured_secs = last_done.duration_since(measure_from).as_secs_f64();
    let error_count: u64 = errors.values().sum();
    let ok_requests = latencies.len() as u64;
    let mean_ms = if latencies.is_empty() {
        0.0
    } else {
        latencies.iter().map(|&u| f64::from(u)).sum::<f64>() / latencies.len() as f64 / 1000.0
    };
    let summary = serde_json::json!({
        "url": base,
        "connections": cli.connections,
        "records_per_request": cli.records_per_request,
        "rate": cli.rate,
        "warmup_secs": cli.warmup_secs,
        "measured_secs": round2(measured_secs),
        "requests": requests,
        "ok_requests": ok_requests,
        "records_ok": records_ok,
        "records_per_sec": round2(records_ok as f64 / measured_secs),
        "requests_per_sec": round2(ok_requests as f64 / measured_secs),
        "latency_ms": {
            "mean": round2(mean_ms),
            "p50": round2(percentile(&latencies, 50.0)),
            "p90": round2(percentile(&latencies, 90.0)),
            "p99": round2(percentile(&latencies, 99.0)),
            "p999": round2(percentile(&latencies, 99.9)),
            "max": round2(percentile(&latencies, 100.0)),
        },
        "errors": error_count,
        "errors_by_kind": errors,
        "warmup_requests": warmup_requests,
        "loadgen_cpu_secs": cpu_secs,
    });
    if let Output::Text = cli.output {
        println!(
            "{} connections, {:.1} s measured (+{} s warm-up), {} record(s)/request",
            cli.connections, measured_secs, cli.warmup_secs, cli.records_per_request
        );
        println!(
            "  records/s:  {:.0}   requests/s: {:.0}   acknowledged records: {records_ok}",
            records_ok as f64 / measured_secs,
            ok_requests as f64 / measured_secs
        );
        println!(
            "  latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}  (mean {:.2}, {} samples)",
            percentile(&latencies, 50.0),
            percentile(&latencies, 90.0),
            percentile(&latencies, 99.0),
            percentile(&latencies, 100.0),
            mean_ms,
            latencies.len()
        );
        if error_count == 0 {
            println!("  errors:     0");
        } else {
            let kinds: Vec<String> = errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("  errors:     {error_count} ({})", kinds.join(", "));
        }
    }
    println!("{summary}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7000], 99.0), 7.0);
        assert_eq!(percentile(&[], 99.0), 0.0);
    }

    #[test]
    fn records_are_unique_and_valid_json() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let shared = Shared {
            clients: vec![reqwest::Client::new()],
            endpoint: String::new(),
            api_key: String::new(),
            records_per_request: 3,
            run_id: "r".into(),
            measure_from: Instant::now(),
            stop_at: Instant::now(),
            schedule: None,
            connections: 1,
        };
        let a: serde_json::Value = serde_json::from_slice(&body_for(&shared, 1, 2)).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&body_for(&shared, 2, 1)).unwrap();
        assert_eq!(a.as_array().unwrap().len(), 3);
        assert_ne!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
