//! End-to-end harness: starts the real `etxhub` binary, as one process (all-in-one: SQLite +
//! embedded queue) or as three (gateway, identity, ingestion on PostgreSQL + Redis Streams),
//! talks to it over HTTPS like a data source does, and can kill, stop and restart its
//! processes. Everything a test creates — temporary directory, PostgreSQL database, Redis key
//! prefix, ports — is its own, so tests run in parallel.
//!
//! The binary is not built by the tests: run `cargo build -p etxhub` first (`scripts/test`
//! does), or point `ETXHUB_BIN` at one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use base64::Engine;
use etx_storage::testing::{TestDb, redis_url};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a process may take to answer `/healthz` after it is spawned.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The shutdown timeout the processes are configured with (`shutdown.timeout_secs`).
pub const SHUTDOWN_TIMEOUT_SECS: u64 = 10;

/// Installs the ring crypto provider for rustls (reqwest is built without one). Idempotent.
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The workspace root (the folder holding `e2e-tests/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `contracts/examples/records/<rel>`.
pub fn example_path(rel: &str) -> PathBuf {
    workspace_root().join("contracts/examples/records").join(rel)
}

/// The `etxhub` binary: `ETXHUB_BIN`, else `<target dir>/debug/etxhub` where the target dir is
/// `CARGO_TARGET_DIR` (relative to the workspace root) or the one this test binary runs from,
/// else `<workspace root>/target`.
pub fn etxhub_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ETXHUB_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "ETXHUB_BIN={} is not a file", p.display());
        return p;
    }
    let exe = format!("etxhub{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        let t = PathBuf::from(t);
        let t = if t.is_relative() {
            workspace_root().join(t)
        } else {
            t
        };
        candidates.push(t.join("debug").join(&exe));
    }
    // Test binaries live in <target>/debug/deps/.
    if let Ok(me) = std::env::current_exe()
        && let Some(profile_dir) = me.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.join(&exe));
    }
    candidates.push(workspace_root().join("target/debug").join(&exe));
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "the end-to-end tests drive the real binary, which is missing: run `cargo build -p etxhub` \
             first (or set ETXHUB_BIN to an etxhub executable)"
        )
    })
}

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

/// Base64 of 32 random bytes (a master key, keyed-hash key or internal secret).
pub fn random_key() -> String {
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A directory of its own under the system temp dir. Removed on drop, unless the test is
/// failing: then it is kept (logs, data) and its path is printed.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `etx-e2e-<label>-<uuid>`.
    pub fn new(label: &str) -> Self {
        let path = std::env::temp_dir().join(format!("etx-e2e-{label}-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "e2e: kept {} (logs and data of the failed test)",
                self.path.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// How to start one `etxhub serve` process.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// Name, for messages and the log file.
    pub name: String,
    /// `--target`.
    pub target: String,
    /// Port on 127.0.0.1.
    pub port: u16,
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `ETX__…` and other environment variables.
    pub env: Vec<(String, String)>,
    /// Whether it serves HTTPS (it runs the gateway).
    pub tls: bool,
    /// Where stdout and stderr are appended.
    pub log: PathBuf,
    /// Working directory (the test's temp dir, so no stray `etxhub.toml` is read).
    pub cwd: PathBuf,
}

/// Builds a `Command` for the binary with a clean `ETX_*` environment plus `env`.
fn etxhub_command(cwd: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(etxhub_bin());
    cmd.current_dir(cwd);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("ETX_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info,sqlx=warn,sea_orm=warn")
        .env("NO_COLOR", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A running (or stopped) `etxhub serve` process. Killed on drop.
#[derive(Debug)]
pub struct Process {
    spec: ProcessSpec,
    child: Option<Child>,
    starts: u32,
}

impl Process {
    /// Spawns the process (without waiting for it to be ready).
    pub fn spawn(spec: ProcessSpec) -> Self {
        let mut p = Self {
            spec,
            child: None,
            starts: 0,
        };
        p.start();
        p
    }

    fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.spec.name);
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.spec.log.display()));
        let _ = writeln!(log, "=== e2e: start #{} of {} ===", self.starts, self.spec.name);
        let err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone log handle: {e}"));
        let mut cmd = etxhub_command(&self.spec.cwd, &self.spec.env);
        cmd.arg("--data-dir")
            .arg(&self.spec.data_dir)
            .arg("serve")
            .arg("--target")
            .arg(&self.spec.target)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.spec.port))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", self.spec.name));
        self.child = Some(child);
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// Its spec.
    pub fn spec(&self) -> &ProcessSpec {
        &self.spec
    }

    /// `https://127.0.0.1:<port>` or `http://…`.
    pub fn base_url(&self) -> String {
        let scheme = if self.spec.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.spec.port)
    }

    /// Its log file.
    pub fn log_path(&self) -> &Path {
        &self.spec.log
    }

    /// The OS process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it has been started and not yet reaped.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            None => false,
            Some(c) => matches!(c.try_wait(), Ok(None)),
        }
    }

    /// The last `n` lines of its log, for failure messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read(&self.spec.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Polls `/healthz` until it answers 200 (at most [`READY_TIMEOUT`]); panics with the log
    /// tail if the process exits or never answers.
    pub async fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let url = format!("{}/healthz", self.base_url());
        let mut client: Option<reqwest::Client> = None;
        let mut last = String::from("not tried");
        loop {
            if let Some(c) = &mut self.child
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                panic!(
                    "{} exited with {status} before becoming ready; log:\n{}",
                    self.spec.name,
                    self.log_tail(40)
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer {url} within {READY_TIMEOUT:?} (last: {last}); log:\n{}",
                self.spec.name,
                self.log_tail(40)
            );
            if client.is_none() {
                client = if self.spec.tls {
                    std::fs::read(self.spec.data_dir.join("tls/cert.pem"))
                        .ok()
                        .and_then(|pem| https_client(&pem, false).ok())
                } else {
                    reqwest::Client::builder()
                        .timeout(Duration::from_secs(2))
                        .build()
                        .ok()
                };
            }
            if let Some(c) = &client {
                match c.get(&url).timeout(Duration::from_secs(2)).send().await {
                    Ok(r) if r.status() == 200 => return,
                    Ok(r) => last = format!("status {}", r.status()),
                    Err(e) => {
                        last = e.to_string();
                        // The certificate may have been read half-written: build a new client.
                        if self.spec.tls && e.is_connect() {
                            client = None;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `kill -9`: SIGKILL, then reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.note("killed with SIGKILL");
        }
    }

    /// Sends SIGTERM (graceful shutdown); see [`Process::wait_exit`].
    pub fn terminate(&self) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "cannot send SIGTERM to {} (pid {})", self.spec.name, c.id());
        }
    }

    /// Waits for the process to exit (at most `within`) and reaps it.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            let Some(c) = &mut self.child else {
                panic!("{} is not running", self.spec.name);
            };
            if let Ok(Some(status)) = c.try_wait() {
                self.child = None;
                self.note(&format!("exited with {status}"));
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?}; log:\n{}",
                self.spec.name,
                self.log_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then waits for the exit (shutdown timeout plus a margin).
    pub async fn stop(&mut self) -> ExitStatus {
        self.terminate();
        self.wait_exit(Duration::from_secs(SHUTDOWN_TIMEOUT_SECS + 20))
            .await
    }

    /// Starts it again with the same spec (data dir, env, port) and waits until it is ready.
    pub async fn restart(&mut self) {
        if self.is_running() {
            panic!("{} is still running", self.spec.name);
        }
        self.child = None;
        self.start();
        self.wait_ready().await;
    }

    fn note(&self, what: &str) {
        if let Ok(mut log) = OpenOptions::new().append(true).open(&self.spec.log) {
            let _ = writeln!(log, "=== e2e: {} {what} ===", self.spec.name);
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An HTTPS client trusting exactly the given PEM certificate (real verification), speaking
/// HTTP/1.1, or HTTP/2 when the server offers it by ALPN (`http2`).
pub fn https_client(pem: &[u8], http2: bool) -> anyhow::Result<reqwest::Client> {
    install_crypto();
    let mut b = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem)?)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    if !http2 {
        b = b.http1_only();
    }
    Ok(b.build()?)
}

/// The two ways to run ETX Hub (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One process, SQLite + embedded queue.
    AllInOne,
    /// Gateway, identity and ingestion processes on PostgreSQL + Redis Streams.
    Distributed,
}

/// Options for starting a [`Hub`].
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// `RUST_LOG` of the processes (default: the binary's own default level).
    pub rust_log: Option<String>,
    /// Extra environment for every process (and the CLI); overrides the harness's own.
    pub env: Vec<(String, String)>,
}

/// An onboarded data source.
#[derive(Debug, Clone)]
pub struct Source {
    /// The API key (send as `X-API-Key`).
    pub api_key: String,
    /// The key's id.
    pub key_id: String,
    /// The organisation.
    pub org_id: String,
    /// The system.
    pub system_id: String,
}

/// A running ETX Hub, in either mode. Its processes are killed, its PostgreSQL database
/// dropped and its Redis keys deleted on drop.
#[derive(Debug)]
pub struct Hub {
    /// The mode.
    pub mode: Mode,
    /// `https://127.0.0.1:<port>` of the gateway.
    pub base: String,
    /// A client trusting the gateway's self-signed certificate. It speaks HTTP/1.1: an idle
    /// HTTP/2 connection holds a SIGTERM'd etxhub for its whole shutdown timeout (actix-http
    /// has no graceful HTTP/2 shutdown), which would slow every stop down. Use
    /// [`Hub::new_client`] for HTTP/2.
    pub client: reqwest::Client,
    cert_pem: Vec<u8>,
    /// All-in-one: `[all]`; distributed: `[identity, ingestion, gateway]`.
    procs: Vec<Process>,
    /// Environment shared by the processes and the CLI.
    env: Vec<(String, String)>,
    /// Data dir the CLI uses.
    cli_data_dir: PathBuf,
    external: External,
    dir: TempDir,
}

/// The PostgreSQL database and Redis prefix of a distributed hub: dropped and deleted on drop
/// (also when starting the hub fails half-way).
#[derive(Debug, Default)]
struct External {
    db: Option<TestDb>,
    redis_prefix: Option<String>,
}

impl Drop for External {
    fn drop(&mut self) {
        let db = self.db.take();
        let prefix = self.redis_prefix.take();
        if db.is_none() && prefix.is_none() {
            return;
        }
        // Async clean-up from a synchronous drop: a runtime of its own on a thread of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                if let Some(db) = db
                    && let Err(e) = db.cleanup().await
                {
                    eprintln!("e2e: cannot drop test database {}: {e}", db.url);
                }
                if let Some(prefix) = prefix {
                    delete_redis_prefix(&prefix).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

impl Hub {
    /// All-in-one with default options.
    pub async fn all_in_one() -> Self {
        Self::start(Mode::AllInOne, HubOptions::default()).await
    }

    /// Distributed with default options.
    pub async fn distributed() -> Self {
        Self::start(Mode::Distributed, HubOptions::default()).await
    }

    /// Starts a hub and waits until every process answers `/healthz`.
    pub async fn start(mode: Mode, opts: HubOptions) -> Self {
        install_crypto();
        let dir = TempDir::new(match mode {
            Mode::AllInOne => "aio",
            Mode::Distributed => "dist",
        });
        let logs = dir.path().join("logs");
        std::fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("cannot create {}: {e}", logs.display()));
        let mut env = vec![(
            "ETX__SHUTDOWN__TIMEOUT_SECS".to_owned(),
            SHUTDOWN_TIMEOUT_SECS.to_string(),
        )];
        // The end-to-end scenarios drive one source from one address much faster than the
        // default rate limits allow (R-SEC-2, tested in the API suite): lift them here. A
        // test's own `opts.env` still overrides these.
        for limit in ["PER_KEY", "PER_ORG", "PER_IP"] {
            for part in ["RATE", "BURST"] {
                env.push((format!("ETX__RATE_LIMITS__{limit}__{part}"), "1000000".to_owned()));
            }
        }
        if let Some(l) = &opts.rust_log {
            env.push(("RUST_LOG".into(), l.clone()));
        }
        let spec = |name: &str, target: &str, tls: bool, env: &[(String, String)]| ProcessSpec {
            name: name.to_owned(),
            target: target.to_owned(),
            port: free_port(),
            data_dir: dir.path().join(format!("data-{name}")),
            env: env.to_vec(),
            tls,
            log: logs.join(format!("{name}.log")),
            cwd: dir.path().to_path_buf(),
        };
        let mut external = External::default();
        let (procs, cli_data_dir) = match mode {
            Mode::AllInOne => {
                env.extend(opts.env.iter().cloned());
                let s = spec("all", "all", true, &env);
                let data = s.data_dir.clone();
                let mut p = Process::spawn(s);
                p.wait_ready().await;
                (vec![p], data)
            }
            Mode::Distributed => {
                let db = TestDb::postgres().await;
                let prefix = format!("etxe2e:{}:", uuid::Uuid::now_v7().simple());
                external.db = Some(db.clone());
                external.redis_prefix = Some(prefix.clone());
                env.extend(
                    [
                        ("ETX__DATABASE__URL", db.url.clone()),
                        ("ETX__DATABASE__MAX_CONNECTIONS", "8".to_owned()),
                        ("ETX__QUEUE__KIND", "redis".to_owned()),
                        ("ETX__QUEUE__REDIS_URL", redis_url()),
                        ("ETX__QUEUE__KEY_PREFIX", prefix.clone()),
                        ("ETX__SECURITY__MASTER_KEY", random_key()),
                        ("ETX__SECURITY__MASTER_KEY_ID", "mk-e2e".to_owned()),
                        ("ETX__SECURITY__HMAC_KEY", random_key()),
                        ("ETX__SECURITY__INTERNAL_SECRET", random_key()),
                    ]
                    .map(|(k, v)| (k.to_owned(), v)),
                );
                env.extend(opts.env.iter().cloned());
                // Identity and ingestion start together (as an orchestrator would start them).
                let mut identity = Process::spawn(spec("identity", "identity", false, &env));
                let mut ingestion = Process::spawn(spec("ingestion", "ingestion", false, &env));
                identity.wait_ready().await;
                ingestion.wait_ready().await;
                // The masking stage reads what ingestion stored (issue 5 §1).
                let mut masking = Process::spawn(spec("masking", "masking", false, &env));
                let mut reconciliation =
                    Process::spawn(spec("reconciliation", "reconciliation", false, &env));
                masking.wait_ready().await;
                reconciliation.wait_ready().await;
                let mut genv = env.clone();
                genv.push(("ETX__UPSTREAMS__IDENTITY".into(), identity.base_url()));
                genv.push(("ETX__UPSTREAMS__INGESTION".into(), ingestion.base_url()));
                genv.push(("ETX__UPSTREAMS__MASKING".into(), masking.base_url()));
                genv.push(("ETX__UPSTREAMS__RECONCILIATION".into(), reconciliation.base_url()));
                let mut gateway = Process::spawn(spec("gateway", "gateway", true, &genv));
                gateway.wait_ready().await;
                let cli = identity.spec().data_dir.clone();
                (vec![identity, ingestion, masking, reconciliation, gateway], cli)
            }
        };
        let gw = procs.last().expect("a gateway process");
        let pem = std::fs::read(gw.spec().data_dir.join("tls/cert.pem"))
            .unwrap_or_else(|e| panic!("the gateway's self-signed certificate is missing: {e}"));
        let client = https_client(&pem, false).unwrap_or_else(|e| panic!("HTTPS client: {e}"));
        Self {
            mode,
            base: gw.base_url(),
            client,
            cert_pem: pem,
            procs,
            env,
            cli_data_dir,
            external,
            dir,
        }
    }

    /// A new client with its own connection pool (one per simulated client system); HTTP/2 when
    /// `http2`.
    pub fn new_client(&self, http2: bool) -> reqwest::Client {
        https_client(&self.cert_pem, http2).unwrap_or_else(|e| panic!("HTTPS client: {e}"))
    }

    /// `<base><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The test's temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The gateway process (all-in-one: the only one).
    pub fn gateway(&mut self) -> &mut Process {
        self.procs.last_mut().expect("a gateway process")
    }

    /// The process that runs ingestion (all-in-one: the only one).
    pub fn ingestion(&mut self) -> &mut Process {
        match self.mode {
            Mode::AllInOne => &mut self.procs[0],
            Mode::Distributed => &mut self.procs[1],
        }
    }

    /// The process that runs masking (all-in-one: the only one).
    pub fn masking(&mut self) -> &mut Process {
        match self.mode {
            Mode::AllInOne => &mut self.procs[0],
            Mode::Distributed => &mut self.procs[2],
        }
    }

    /// The process that runs reconciliation (all-in-one: the only one).
    pub fn reconciliation(&mut self) -> &mut Process {
        match self.mode {
            Mode::AllInOne => &mut self.procs[0],
            Mode::Distributed => &mut self.procs[3],
        }
    }

    /// Every process.
    pub fn processes(&mut self) -> &mut [Process] {
        &mut self.procs
    }

    /// Distributed mode: starts one more gateway process (own data directory, own
    /// certificate) in front of the same identity and ingestion, with `extra` environment, and
    /// returns its base URL and a client trusting its certificate. It is stopped with the hub.
    pub async fn add_gateway(&mut self, extra: &[(&str, &str)]) -> (String, reqwest::Client) {
        assert_eq!(
            self.mode,
            Mode::Distributed,
            "only a distributed hub has separate gateways"
        );
        let n = self.procs.len();
        let name = format!("gateway{n}");
        let mut env = self.env.clone();
        env.push(("ETX__UPSTREAMS__IDENTITY".into(), self.procs[0].base_url()));
        env.push(("ETX__UPSTREAMS__INGESTION".into(), self.procs[1].base_url()));
        env.push(("ETX__UPSTREAMS__MASKING".into(), self.procs[2].base_url()));
        env.push(("ETX__UPSTREAMS__RECONCILIATION".into(), self.procs[3].base_url()));
        env.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let spec = ProcessSpec {
            name: name.clone(),
            target: "gateway".into(),
            port: free_port(),
            data_dir: self.dir.path().join(format!("data-{name}")),
            env,
            tls: true,
            log: self.dir.path().join(format!("logs/{name}.log")),
            cwd: self.dir.path().to_path_buf(),
        };
        let mut p = Process::spawn(spec);
        p.wait_ready().await;
        let pem = std::fs::read(p.spec().data_dir.join("tls/cert.pem"))
            .unwrap_or_else(|e| panic!("the new gateway's certificate is missing: {e}"));
        let client = https_client(&pem, false).unwrap_or_else(|e| panic!("HTTPS client: {e}"));
        let base = p.base_url();
        // Keep the main gateway last (`gateway()` relies on it).
        self.procs.insert(n - 1, p);
        (base, client)
    }

    /// Onboards a source with `etxhub sources add … --output json`, run as a subprocess with the
    /// processes' configuration.
    pub async fn onboard(&self, org_code: &str, org_name: &str) -> Source {
        let log = self.dir.path().join("logs/cli.log");
        let err = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()));
        let mut cmd = etxhub_command(self.dir.path(), &self.env);
        cmd.arg("--data-dir")
            .arg(&self.cli_data_dir)
            .args(["sources", "add", "--org-code", org_code, "--org-name", org_name])
            .args([
                "--org-kind",
                "province",
                "--system-name",
                "Cổng dữ liệu giao dịch điện tử",
            ])
            .args(["--output", "json"])
            .stdin(Stdio::null())
            .stderr(err);
        let out = tokio::process::Command::from(cmd)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run etxhub sources add: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "etxhub sources add failed ({}): {stdout}; see {}",
            out.status,
            log.display()
        );
        let v: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("sources add printed no JSON ({e}): {stdout}"));
        let s = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("sources add: no `{k}` in {v}"))
                .to_owned()
        };
        Source {
            api_key: s("api_key"),
            key_id: s("key_id"),
            org_id: s("org_id"),
            system_id: s("system_id"),
        }
    }

    /// POSTs a body to `/api/v1/records`.
    pub async fn submit(
        &self,
        api_key: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
        idempotency_key: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(self.url("/api/v1/records"))
            .header("x-api-key", api_key)
            .header("content-type", content_type)
            .body(body);
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
        }
        req.send()
            .await
            .unwrap_or_else(|e| panic!("POST /api/v1/records: {e}"))
    }

    /// GETs a record: status and JSON body.
    pub async fn get_record(&self, api_key: &str, id: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(&format!("/api/v1/records/{id}")))
            .header("x-api-key", api_key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET /api/v1/records/{id}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// `kill -9` of the process that runs ingestion.
    pub fn kill9_ingestion(&mut self) {
        self.ingestion().kill9();
    }

    /// Restarts the ingestion process (same data dir, env and port) and waits until it is ready.
    pub async fn restart_ingestion(&mut self) {
        self.ingestion().restart().await;
    }

    /// SIGTERM to every process (gateway first), then waits for each exit.
    pub async fn stop_all(&mut self) -> Vec<(String, ExitStatus)> {
        let mut out = Vec::new();
        for p in self.procs.iter_mut().rev() {
            if p.is_running() {
                let status = p.stop().await;
                out.push((p.name().to_owned(), status));
            }
        }
        out
    }

    /// Starts every stopped process again (identity and ingestion before the gateway).
    pub async fn restart_all(&mut self) {
        for p in &mut self.procs {
            if !p.is_running() {
                p.restart().await;
            }
        }
    }

    /// The data directories of the processes.
    pub fn data_dirs(&self) -> Vec<PathBuf> {
        self.procs.iter().map(|p| p.spec().data_dir.clone()).collect()
    }

    /// Every log file (processes and CLI).
    pub fn log_files(&self) -> Vec<PathBuf> {
        files_under(&self.dir.path().join("logs"))
    }

    /// The PostgreSQL database URL (distributed).
    pub fn pg_url(&self) -> Option<&str> {
        self.external.db.as_ref().map(|d| d.url.as_str())
    }

    /// The Redis key prefix (distributed).
    pub fn redis_prefix(&self) -> Option<&str> {
        self.external.redis_prefix.as_deref()
    }

    /// Opens the hub's database: PostgreSQL, or the SQLite file read-only (best after the
    /// processes have stopped).
    pub async fn open_db(&self) -> DatabaseConnection {
        let url = match &self.external.db {
            Some(db) => db.url.clone(),
            None => format!(
                "sqlite://{}?mode=ro",
                self.procs[0].spec().data_dir.join("etxhub.db").display()
            ),
        };
        sea_orm::Database::connect(url.as_str())
            .await
            .unwrap_or_else(|e| panic!("cannot open {url}: {e}"))
    }

    /// Every key under the Redis prefix with every value it holds (strings, stream entry field
    /// values, hash fields and values, list/set/sorted-set members), as raw bytes.
    pub async fn redis_contents(&self) -> Vec<(String, Vec<Vec<u8>>)> {
        let Some(prefix) = &self.external.redis_prefix else {
            return Vec::new();
        };
        let mut con = redis_connection().await;
        let mut out = Vec::new();
        for key in redis_keys(&mut con, prefix).await {
            let kind: String = redis::cmd("TYPE")
                .arg(&key)
                .query_async(&mut con)
                .await
                .unwrap_or_else(|e| panic!("TYPE {key}: {e}"));
            let value: redis::Value = match kind.as_str() {
                "string" => redis::cmd("GET").arg(&key).query_async(&mut con).await,
                "stream" => {
                    redis::cmd("XRANGE")
                        .arg(&key)
                        .arg("-")
                        .arg("+")
                        .query_async(&mut con)
                        .await
                }
                "hash" => redis::cmd("HGETALL").arg(&key).query_async(&mut con).await,
                "list" => {
                    redis::cmd("LRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut con)
                        .await
                }
                "set" => redis::cmd("SMEMBERS").arg(&key).query_async(&mut con).await,
                "zset" => {
                    redis::cmd("ZRANGE")
                        .arg(&key)
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut con)
                        .await
                }
                "none" => continue,
                other => panic!("Redis key {key} has a type the scan does not read: {other}"),
            }
            .unwrap_or_else(|e| panic!("reading Redis key {key}: {e}"));
            let mut values = Vec::new();
            flatten_redis(value, &mut values);
            out.push((key, values));
        }
        out
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // Processes first, then (field drops) the database, Redis keys and the temp dir.
        for p in &mut self.procs {
            p.kill9();
        }
    }
}

async fn redis_connection() -> redis::aio::MultiplexedConnection {
    let url = redis_url();
    redis::Client::open(url.as_str())
        .unwrap_or_else(|e| panic!("Redis URL {url}: {e}"))
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("Redis is required and unreachable at {url}: {e}"))
}

async fn redis_keys(con: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(con)
            .await
            .unwrap_or_else(|e| panic!("SCAN: {e}"));
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    keys.sort();
    keys.dedup();
    keys
}

async fn delete_redis_prefix(prefix: &str) {
    let url = redis_url();
    let Ok(client) = redis::Client::open(url.as_str()) else {
        return;
    };
    let Ok(mut con) = client.get_multiplexed_async_connection().await else {
        return;
    };
    for key in redis_keys(&mut con, prefix).await {
        let _: Result<i64, _> = redis::cmd("DEL").arg(&key).query_async(&mut con).await;
    }
}

fn flatten_redis(v: redis::Value, out: &mut Vec<Vec<u8>>) {
    use redis::Value as V;
    match v {
        V::BulkString(b) => out.push(b),
        V::SimpleString(s) => out.push(s.into_bytes()),
        V::VerbatimString { text, .. } => out.push(text.into_bytes()),
        V::Array(items) | V::Set(items) => items.into_iter().for_each(|i| flatten_redis(i, out)),
        V::Map(pairs) => pairs.into_iter().for_each(|(k, v)| {
            flatten_redis(k, out);
            flatten_redis(v, out);
        }),
        V::Attribute { data, attributes } => {
            flatten_redis(*data, out);
            attributes.into_iter().for_each(|(k, v)| {
                flatten_redis(k, out);
                flatten_redis(v, out);
            });
        }
        V::Push { data, .. } => data.into_iter().for_each(|i| flatten_redis(i, out)),
        other => out.push(format!("{other:?}").into_bytes()),
    }
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
    out.sort();
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains_bytes(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// The files (among `paths`) whose raw bytes contain `needle`.
pub fn files_containing(paths: &[PathBuf], needle: &[u8]) -> Vec<PathBuf> {
    paths
        .iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| contains_bytes(&b, needle)))
        .cloned()
        .collect()
}

/// Runs a query that returns one integer column `n`.
pub async fn query_i64(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"));
    row.try_get::<i64>("", "n")
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs a query and returns its rows.
pub async fn query_rows(db: &DatabaseConnection, sql: &str) -> Vec<sea_orm::QueryResult> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs a query and reads one column of every row.
pub async fn query_column<T: sea_orm::TryGetable>(db: &DatabaseConnection, sql: &str, col: &str) -> Vec<T> {
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| {
            r.try_get::<T>("", col)
                .unwrap_or_else(|e| panic!("{sql}: column {col}: {e}"))
        })
        .collect()
}

/// The text of every `<name>` element in an XML document (enough for receipts).
pub fn xml_elements(xml: &str, name: &str) -> Vec<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(after[..j].to_owned());
        rest = &after[j + close.len()..];
    }
    out
}
