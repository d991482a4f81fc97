//! Configuration in layers (STYLE.md habit 9): embedded defaults → `etxhub.toml` → `ETX__…`
//! environment variables (e.g. `ETX__DATABASE__URL`). Secrets never print: their `Debug` is
//! redacted.

use anyhow::Context;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// A secret string: never printed.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "[redacted]" })
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Config {
    /// Data directory (SQLite database, keys, TLS files).
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: String,
    /// The gateway's address as integrators reach it (`https://etxhub.example.gov.vn`), told in
    /// connection bundles (R-ADM); empty: derived from `listen` ([`Config::public_base_url`]).
    #[serde(default)]
    pub public_url: String,
    /// Database.
    pub database: DatabaseCfg,
    /// Queue.
    pub queue: QueueCfg,
    /// TLS.
    pub tls: TlsCfg,
    /// Keys and secrets.
    pub security: SecurityCfg,
    /// Request limits.
    pub limits: LimitsCfg,
    /// Ingestion tuning.
    pub ingestion: IngestionCfg,
    /// Services in other processes.
    pub upstreams: UpstreamsCfg,
    /// Shutdown.
    pub shutdown: ShutdownCfg,
    /// Gateway rate limits (R-SEC-2).
    pub rate_limits: RateLimitsCfg,
    /// Connection hardening.
    pub http: HttpCfg,
    /// The audit and connection log (R-SEC-9).
    pub audit: AuditCfg,
    /// People's sessions and sign-in lockout (R-SEC-5).
    pub accounts: AccountsCfg,
    /// Security events from sign-ins and revoked keys (R-SEC-7).
    pub early_warning: EarlyWarningCfg,
    /// Sign-in of people through an external OpenID Connect provider (R-SEC-5, R-SEC-6).
    pub oidc: OidcCfg,
    /// OAuth2 access tokens of connected systems (R-SEC-1).
    pub oauth: OAuthCfg,
}

/// `[oauth]`: OAuth2 access tokens of connected systems (issue 4 §4, R-SEC-1).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OAuthCfg {
    /// How long an access token lives, in seconds (60..=3600).
    pub token_ttl_secs: u64,
}

impl OAuthCfg {
    /// The issuing rules; `Err` when the lifetime is out of bounds.
    pub fn settings(&self) -> anyhow::Result<etx_identity_core::OAuthSettings> {
        etx_identity_core::OAuthSettings::with_token_ttl_secs(self.token_ttl_secs).map_err(anyhow::Error::msg)
    }
}

/// The environment variable that may carry `oidc.client_secret` (as `ETX__OIDC__CLIENT_SECRET`
/// does too).
pub const OIDC_CLIENT_SECRET_ENV: &str = "ETX_OIDC_CLIENT_SECRET";

/// `[oidc]`: sign-in of people through an external OpenID Connect provider (issue 4 §4,
/// R-SEC-5, R-SEC-6): authorization code flow with PKCE; accounts are linked by username,
/// never created; the hub's second factor stays mandatory unless `trust_provider_mfa`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct OidcCfg {
    /// Whether `GET /api/v1/auth/oidc/login` and `/callback` work (else they answer 404).
    pub enabled: bool,
    /// The provider's issuer identifier, exactly as its metadata and ID tokens write it.
    pub issuer: String,
    /// The hub's client id at the provider.
    pub client_id: String,
    /// The client secret (empty: a public client, PKCE only). Also from `ETX_OIDC_CLIENT_SECRET`.
    pub client_secret: Secret,
    /// The hub's callback URL as registered at the provider:
    /// `https://<hub>/api/v1/auth/oidc/callback`.
    pub redirect_uri: String,
    /// The scopes asked for; `openid` must be among them.
    pub scopes: Vec<String>,
    /// The ID-token claim holding the hub username.
    pub username_claim: String,
    /// Whether the provider's own MFA (`amr` with `mfa`, `otp` or `hwk`) replaces the hub's
    /// second factor.
    pub trust_provider_mfa: bool,
    /// The ID-token signature algorithms accepted.
    pub allowed_algs: Vec<String>,
    /// The hub page the browser is sent to once signed in: a path, never another site.
    pub post_login_redirect: String,
}

impl OidcCfg {
    /// The ID-token rules; `Err` naming the key that is wrong.
    pub fn settings(&self) -> anyhow::Result<etx_identity_core::oidc::OidcSettings> {
        use etx_identity_core::oidc::JwsAlg;
        let allowed_algs = self
            .allowed_algs
            .iter()
            .map(|a| {
                JwsAlg::parse(a.trim()).with_context(|| {
                    format!(
                        "oidc.allowed_algs: `{a}` is not one of {} (none and HS* are never accepted)",
                        JwsAlg::ALL.map(JwsAlg::as_str).join(", ")
                    )
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!allowed_algs.is_empty(), "oidc.allowed_algs must not be empty");
        Ok(etx_identity_core::oidc::OidcSettings {
            issuer: self.issuer.trim().to_owned(),
            client_id: self.client_id.trim().to_owned(),
            username_claim: self.username_claim.trim().to_owned(),
            trust_provider_mfa: self.trust_provider_mfa,
            allowed_algs,
        })
    }

    /// The hub as the provider's client.
    pub fn client(&self) -> etx_identity::oidc::OidcClientConfig {
        etx_identity::oidc::OidcClientConfig {
            issuer: self.issuer.trim().to_owned(),
            client_id: self.client_id.trim().to_owned(),
            client_secret: (!self.client_secret.is_empty())
                .then(|| zeroize::Zeroizing::new(self.client_secret.expose().to_owned())),
            redirect_uri: self.redirect_uri.trim().to_owned(),
            scopes: self.scopes.iter().map(|s| s.trim().to_owned()).collect(),
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        use etx_identity_core::oidc::endpoint_url_allowed;
        if !self.enabled {
            return Ok(());
        }
        let url_ok = |u: &str| endpoint_url_allowed(u) && !u.contains(['?', '#']);
        anyhow::ensure!(
            url_ok(self.issuer.trim()),
            "oidc.issuer must be an https:// URL without query (http:// only to the loopback interface)"
        );
        anyhow::ensure!(
            url_ok(self.redirect_uri.trim()),
            "oidc.redirect_uri must be an https:// URL without query (http:// only to the loopback interface)"
        );
        let printable = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic());
        anyhow::ensure!(
            printable(self.client_id.trim()),
            "oidc.client_id is required (printable ASCII)"
        );
        anyhow::ensure!(
            self.scopes.iter().any(|s| s.trim() == "openid")
                && self.scopes.iter().all(|s| printable(s.trim())),
            "oidc.scopes must contain openid, each scope one word"
        );
        anyhow::ensure!(
            printable(self.username_claim.trim()),
            "oidc.username_claim is required"
        );
        let r = &self.post_login_redirect;
        anyhow::ensure!(
            r.starts_with('/') && !r.starts_with("//") && !r.contains('\\') && printable(r),
            "oidc.post_login_redirect must be a path of the hub (starting with one /), never another site"
        );
        self.settings().map(|_| ())
    }
}

/// `[early_warning]`: security events from sign-ins and revoked keys (R-SEC-7).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EarlyWarningCfg {
    /// Whether the detectors run.
    pub enabled: bool,
    /// Rejected sign-ins for one username within the window that make a brute-force attack.
    pub brute_force_failures: u32,
    /// The brute-force window, in seconds.
    pub brute_force_window_secs: u64,
    /// Distinct usernames with rejected sign-ins from one address within the window that make
    /// password spraying.
    pub spraying_usernames: u32,
    /// The spraying window, in seconds.
    pub spraying_window_secs: u64,
    /// Days of an administrator's successful sign-ins whose networks are known.
    pub new_network_lookback_days: u32,
    /// Working days, e.g. `mon-sat`.
    pub working_days: String,
    /// Start of working hours, `HH:MM` local time.
    pub working_hours_start: String,
    /// End of working hours (exclusive), `HH:MM` local time.
    pub working_hours_end: String,
    /// The local time's offset from UTC, e.g. `+07:00`.
    pub working_hours_utc_offset: String,
    /// Severity of an administrator's sign-in outside working hours: `low` or `medium`.
    pub outside_hours_severity: String,
    /// At most one event per revoked key this often, in seconds.
    pub revoked_key_every_secs: u64,
}

impl EarlyWarningCfg {
    /// The identity policy; `Err` naming the key that is wrong.
    pub fn policy(&self) -> anyhow::Result<etx_identity_core::EarlyWarningPolicy> {
        use etx_identity_core::{Threshold, WorkingHours};
        let secs = |s: u64| chrono::TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        let window = |name: &str, s: u64| {
            anyhow::ensure!(
                (60..=86_400).contains(&s),
                "early_warning.{name} must be 60..=86400"
            );
            Ok(secs(s))
        };
        let time = |name: &str, s: &str| {
            chrono::NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .with_context(|| format!("early_warning.{name} must be HH:MM"))
        };
        anyhow::ensure!(
            self.brute_force_failures >= 2 && self.spraying_usernames >= 2,
            "early_warning.brute_force_failures and spraying_usernames must be at least 2"
        );
        anyhow::ensure!(
            (1..=3650).contains(&self.new_network_lookback_days),
            "early_warning.new_network_lookback_days must be 1..=3650"
        );
        anyhow::ensure!(
            (60..=7 * 86_400).contains(&self.revoked_key_every_secs),
            "early_warning.revoked_key_every_secs must be 60..=604800"
        );
        let days = WorkingHours::parse_days(&self.working_days)
            .map_err(|e| anyhow::anyhow!("early_warning.working_days: {e}"))?;
        let offset: chrono::FixedOffset = self
            .working_hours_utc_offset
            .trim()
            .parse()
            .ok()
            .context("early_warning.working_hours_utc_offset must look like +07:00")?;
        let hours = WorkingHours::new(
            days,
            time("working_hours_start", &self.working_hours_start)?,
            time("working_hours_end", &self.working_hours_end)?,
            offset,
        )
        .map_err(|e| anyhow::anyhow!("early_warning: {e}"))?;
        let outside_hours_severity = match self.outside_hours_severity.as_str() {
            "low" => etx_audit_core::Severity::Low,
            "medium" => etx_audit_core::Severity::Medium,
            _ => anyhow::bail!("early_warning.outside_hours_severity must be low or medium"),
        };
        Ok(etx_identity_core::EarlyWarningPolicy {
            enabled: self.enabled,
            brute_force: Threshold {
                count: self.brute_force_failures,
                window: window("brute_force_window_secs", self.brute_force_window_secs)?,
            },
            spraying: Threshold {
                count: self.spraying_usernames,
                window: window("spraying_window_secs", self.spraying_window_secs)?,
            },
            new_network_lookback: chrono::TimeDelta::days(i64::from(self.new_network_lookback_days)),
            working_hours: hours,
            outside_hours_severity,
            revoked_key_every: secs(self.revoked_key_every_secs),
        })
    }
}

/// `[accounts]`: people's sessions and sign-in lockout (R-SEC-5).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AccountsCfg {
    /// A session unused for this many seconds ends.
    pub idle_timeout_secs: u64,
    /// A session ends this many seconds after sign-in, used or not.
    pub absolute_timeout_secs: u64,
    /// Failed sign-ins for one username within the window that lock it.
    pub lockout_account_failures: u32,
    /// Failed sign-ins from one address within the window that lock it.
    pub lockout_ip_failures: u32,
    /// The lockout window, and how long a lockout lasts, in seconds.
    pub lockout_window_secs: u64,
}

impl AccountsCfg {
    /// The identity settings.
    pub fn settings(&self) -> etx_identity_core::AccountSettings {
        let secs = |s: u64| chrono::TimeDelta::seconds(i64::try_from(s).unwrap_or(i64::MAX / 1000));
        let idle = secs(self.idle_timeout_secs);
        etx_identity_core::AccountSettings {
            idle_timeout: idle,
            absolute_timeout: secs(self.absolute_timeout_secs),
            // At most one write a minute per session, and often enough for short idle timeouts.
            touch_every: secs(60).min(idle / 2),
            lockout: etx_identity_core::LockoutPolicy {
                account_failures: self.lockout_account_failures,
                ip_failures: self.lockout_ip_failures,
                window: secs(self.lockout_window_secs),
            },
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=86_400 * 7).contains(&self.idle_timeout_secs),
            "accounts.idle_timeout_secs must be 1..=604800"
        );
        anyhow::ensure!(
            (self.idle_timeout_secs..=86_400 * 30).contains(&self.absolute_timeout_secs),
            "accounts.absolute_timeout_secs must be at least idle_timeout_secs and at most 30 days"
        );
        anyhow::ensure!(
            self.lockout_account_failures >= 1 && self.lockout_ip_failures >= 1,
            "accounts.lockout_*_failures must be positive"
        );
        anyhow::ensure!(
            (1..=86_400).contains(&self.lockout_window_secs),
            "accounts.lockout_window_secs must be 1..=86400"
        );
        Ok(())
    }
}

/// `[audit]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AuditCfg {
    /// Days entries are kept (at least 366).
    pub retention_days: u32,
    /// Id of the hub operator's organisation, whose auditors see every entry (empty: none).
    pub root_org_id: String,
    /// Rate-limited refusals (`429`) of one caller and route within this many seconds are
    /// logged as the first one plus one summary entry (1..=3600).
    pub refusal_summary_secs: u64,
}

/// `[database]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct DatabaseCfg {
    /// URL; empty = SQLite in the data dir.
    pub url: Secret,
    /// Pool size (PostgreSQL).
    pub max_connections: u32,
}

/// `[queue]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct QueueCfg {
    /// `embedded` or `redis`.
    pub kind: String,
    /// Redis URL.
    pub redis_url: Secret,
    /// Prefix of every Redis key.
    pub key_prefix: String,
    /// Most messages a pipeline stage (masking, reconciliation) takes per batch; each batch
    /// is stored in one transaction (1–5000).
    pub batch_size: usize,
}

/// `[tls]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct TlsCfg {
    /// Certificate chain (PEM).
    pub cert: String,
    /// Private key (PEM).
    pub key: String,
    /// Extra host names for the self-signed certificate.
    pub hosts: Vec<String>,
    /// Oldest TLS version accepted: `1.2` or `1.3`.
    pub min_version: String,
}

/// `[http]`: connection hardening of the listening server (issue 4 §11).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct HttpCfg {
    /// Seconds a client has to send a request's headers (slow-header attacks).
    pub header_timeout_secs: u64,
    /// Seconds a request body may stay silent between two chunks (slow-body attacks).
    pub body_idle_timeout_secs: u64,
    /// Seconds an idle keep-alive connection is kept.
    pub keep_alive_secs: u64,
    /// Seconds to finish closing a connection (TLS shutdown) before dropping it.
    pub disconnect_timeout_secs: u64,
    /// Most open connections per worker thread.
    pub max_connections_per_worker: usize,
    /// Web origins allowed to call the API from a browser (CORS); empty = none.
    pub cors_origins: Vec<String>,
}

/// An older master key.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct PreviousKey {
    /// Its id.
    pub id: String,
    /// Base64 of 32 bytes.
    pub key: Secret,
}

/// `[security]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SecurityCfg {
    /// Active master key (base64).
    pub master_key: Secret,
    /// Its id.
    pub master_key_id: String,
    /// Older master keys.
    pub previous_master_keys: Vec<PreviousKey>,
    /// Keyed-hash key (base64).
    pub hmac_key: Secret,
    /// Principal-signing secret (base64).
    pub internal_secret: Secret,
    /// Master of the masking token keys (base64; empty = derived from `hmac_key`).
    pub masking_key: Secret,
    /// Principal lifetime.
    pub principal_ttl_secs: u64,
    /// Gateway authentication cache lifetime (ms, 0 = off).
    pub auth_cache_ms: u64,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LimitsCfg {
    /// Largest body.
    pub max_body_bytes: usize,
    /// Most records per real-time submission.
    pub max_records: usize,
    /// Largest batch file.
    pub max_batch_bytes: u64,
}

/// `[ingestion]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct IngestionCfg {
    /// Group-commit writers (0 = auto).
    pub writers: usize,
    /// Batch worker tasks in this process.
    pub batch_workers: usize,
    /// Seconds a batch worker owns a batch without renewing its lease.
    pub batch_lease_secs: u64,
    /// Rows per transaction when storing a batch.
    pub batch_rows_per_commit: usize,
}

/// `[upstreams]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UpstreamsCfg {
    /// Identity base URL.
    pub identity: String,
    /// Ingestion base URL.
    pub ingestion: String,
    /// Masking base URL (the pipeline's operations API); empty = not routed.
    pub masking: String,
    /// Reconciliation base URL (canonical records, conflicts, periods, completeness); empty =
    /// not routed.
    pub reconciliation: String,
}

/// `[shutdown]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ShutdownCfg {
    /// Seconds.
    pub timeout_secs: u64,
}

/// One rate: sustained requests per second and the burst allowed at once.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct RateCfg {
    /// Requests per second.
    pub rate: f64,
    /// Requests at once.
    pub burst: u32,
}

impl RateCfg {
    /// The checked rate.
    pub fn to_rate(self) -> anyhow::Result<etx_gateway_core::ratelimit::Rate> {
        Ok(etx_gateway_core::ratelimit::Rate::new(self.rate, self.burst)?)
    }
}

/// `[rate_limits]`
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RateLimitsCfg {
    /// Where limits are kept: `auto` (Redis when `queue.kind = "redis"`, else memory),
    /// `memory` (each gateway alone) or `redis` (shared, on `queue.redis_url`).
    pub store: String,
    /// Per API key.
    pub per_key: RateCfg,
    /// Per organisation (all its keys together).
    pub per_org: RateCfg,
    /// Per client IP address: every request counts, accepted or refused.
    pub per_ip: RateCfg,
    /// Per-organisation rates of some organisations, by organisation id (UUID).
    #[serde(default)]
    pub orgs: std::collections::BTreeMap<String, RateCfg>,
}

impl RateLimitsCfg {
    /// Whether limits are kept in Redis, given the queue kind.
    pub fn uses_redis(&self, queue_kind: &str) -> bool {
        match self.store.as_str() {
            "redis" => true,
            "memory" => false,
            _ => queue_kind == "redis",
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(self.store.as_str(), "auto" | "memory" | "redis"),
            "rate_limits.store must be auto, memory or redis"
        );
        for (name, r) in [
            ("per_key", self.per_key),
            ("per_org", self.per_org),
            ("per_ip", self.per_ip),
        ] {
            r.to_rate().with_context(|| format!("rate_limits.{name}"))?;
        }
        for (org, r) in &self.orgs {
            anyhow::ensure!(
                uuid::Uuid::parse_str(org).is_ok(),
                "rate_limits.orgs.\"{org}\": key by organisation id (UUID), not code"
            );
            r.to_rate()
                .with_context(|| format!("rate_limits.orgs.\"{org}\""))?;
        }
        Ok(())
    }
}

const DEFAULTS: &str = include_str!("defaults.toml");

impl Config {
    /// Loads the layers. `file` is `--config`; otherwise `etxhub.toml` in the working
    /// directory and then in the data directory are read when present. `data_dir` (the
    /// `--data-dir` flag) overrides everything.
    pub fn load(file: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Toml::string(DEFAULTS));
        match file {
            Some(f) => {
                anyhow::ensure!(f.exists(), "configuration file {} does not exist", f.display());
                fig = fig.merge(Toml::file(f));
            }
            None => fig = fig.merge(Toml::file("etxhub.toml")),
        }
        fig = fig.merge(Env::prefixed("ETX__").split("__"));
        if let Some(d) = data_dir {
            fig = fig.merge(Serialized::default("data_dir", d));
        }
        let mut cfg: Config = fig.extract().context("invalid configuration")?;
        if file.is_none() {
            let in_data = cfg.data_dir.join("etxhub.toml");
            if in_data.exists() {
                let mut fig = Figment::from(Toml::string(DEFAULTS))
                    .merge(Toml::file("etxhub.toml"))
                    .merge(Toml::file(&in_data));
                fig = fig.merge(Env::prefixed("ETX__").split("__"));
                if let Some(d) = data_dir {
                    fig = fig.merge(Serialized::default("data_dir", d));
                }
                cfg = fig.extract().context("invalid configuration")?;
            }
        }
        if let Ok(secret) = std::env::var(OIDC_CLIENT_SECRET_ENV)
            && !secret.is_empty()
        {
            cfg.oidc.client_secret = secret.into();
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            matches!(self.queue.kind.as_str(), "embedded" | "redis"),
            "queue.kind must be embedded or redis"
        );
        anyhow::ensure!(
            self.limits.max_body_bytes >= 1024,
            "limits.max_body_bytes must be at least 1024"
        );
        anyhow::ensure!(
            (1..=10_000).contains(&self.limits.max_records),
            "limits.max_records must be 1..=10000"
        );
        anyhow::ensure!(
            self.security.principal_ttl_secs >= 1,
            "security.principal_ttl_secs must be positive"
        );
        self.rate_limits.validate()?;
        self.accounts.validate()?;
        self.early_warning.policy()?;
        self.oidc.validate()?;
        self.oauth.settings()?;
        self.validate_public_url()?;
        Ok(())
    }

    fn validate_public_url(&self) -> anyhow::Result<()> {
        let u = self.public_url.trim();
        if u.is_empty() {
            return Ok(());
        }
        let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
        anyhow::ensure!(
            rest.is_some_and(|r| {
                let host = r.trim_end_matches('/');
                !host.is_empty()
                    && !host.contains(['?', '#', '@'])
                    && !host.chars().any(|c| c.is_whitespace() || c.is_control())
            }),
            "public_url must look like https://host[:port][/path], without query, fragment or credentials"
        );
        Ok(())
    }

    /// The gateway's base URL as integrators reach it (connection bundles, R-ADM): `public_url`
    /// without a trailing slash when set; else `https://` (the gateway always serves TLS) and
    /// the listen address — `bound` when given (the address really bound, e.g. for port 0),
    /// with the first `tls.hosts` name (or `localhost`) for an unspecified address, and no port
    /// for 443.
    pub fn public_base_url(&self, bound: Option<std::net::SocketAddr>) -> String {
        let configured = self.public_url.trim().trim_end_matches('/');
        if !configured.is_empty() {
            return configured.to_owned();
        }
        let addr = bound.or_else(|| self.listen.parse().ok());
        let Some(addr) = addr else {
            // A host name in `listen` (e.g. `hub.local:8443`) is used as written.
            return format!("https://{}", self.listen.trim());
        };
        let host = if addr.ip().is_unspecified() {
            self.tls
                .hosts
                .first()
                .cloned()
                .unwrap_or_else(|| "localhost".to_owned())
        } else if addr.is_ipv6() {
            format!("[{}]", addr.ip())
        } else {
            addr.ip().to_string()
        };
        match addr.port() {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        }
    }

    /// The database URL (SQLite in the data dir when unset).
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("etxhub.db").display())
        } else {
            self.database.url.expose().to_owned()
        }
    }

    /// Whether the database is SQLite (all-in-one).
    pub fn is_sqlite(&self) -> bool {
        self.database_url().starts_with("sqlite:")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_is_configured_or_derived_from_the_listen_address() {
        let dir = std::env::temp_dir().join("etx-config-test-public-url");
        let mut cfg = Config::load(None, Some(&dir)).unwrap();
        assert_eq!(cfg.public_base_url(None), "https://127.0.0.1:8443");
        assert_eq!(
            cfg.public_base_url(Some("127.0.0.1:40123".parse().unwrap())),
            "https://127.0.0.1:40123"
        );
        cfg.listen = "0.0.0.0:443".into();
        assert_eq!(cfg.public_base_url(None), "https://localhost");
        cfg.tls.hosts = vec!["etxhub.example.gov.vn".into()];
        assert_eq!(cfg.public_base_url(None), "https://etxhub.example.gov.vn");
        cfg.listen = "[::1]:8443".into();
        assert_eq!(cfg.public_base_url(None), "https://[::1]:8443");
        cfg.public_url = "https://hub.example.gov.vn/etx/".into();
        assert_eq!(cfg.public_base_url(None), "https://hub.example.gov.vn/etx");
        assert!(cfg.validate_public_url().is_ok());
        for bad in [
            "hub.example",
            "ftp://hub",
            "https://",
            "https://a b",
            "https://u@hub",
            "https://hub?x",
        ] {
            cfg.public_url = bad.into();
            assert!(cfg.validate_public_url().is_err(), "{bad}");
        }
    }

    #[test]
    fn oauth_tokens_live_ten_minutes_by_default_and_at_most_an_hour() {
        let dir = std::env::temp_dir().join("etx-config-test-oauth");
        let mut cfg = Config::load(None, Some(&dir)).unwrap();
        assert_eq!(cfg.oauth.token_ttl_secs, 600);
        assert_eq!(
            cfg.oauth.settings().unwrap().token_ttl(),
            chrono::TimeDelta::seconds(600)
        );
        for bad in [0, 59, 3601] {
            cfg.oauth.token_ttl_secs = bad;
            assert!(cfg.validate().is_err(), "{bad}");
        }
        cfg.oauth.token_ttl_secs = 3600;
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn embedded_defaults_load_and_secrets_do_not_print() {
        let dir = std::env::temp_dir().join("etx-config-test-none");
        let cfg = Config::load(None, Some(&dir)).unwrap();
        assert_eq!(cfg.data_dir, dir);
        assert!(cfg.database_url().starts_with("sqlite://"));
        assert_eq!(
            (
                cfg.rate_limits.per_key.burst,
                cfg.rate_limits.per_org.burst,
                cfg.rate_limits.per_ip.burst
            ),
            (400, 1000, 600)
        );
        assert!(!cfg.rate_limits.uses_redis(&cfg.queue.kind));
        assert_eq!(
            cfg.early_warning.policy().unwrap(),
            etx_identity_core::EarlyWarningPolicy::default(),
            "the embedded defaults are the issue's: 5 and 10 in 15 min, 90 days, Mon–Sat 07–19 +07:00"
        );
        let with_secret = Secret("postgres://u:hunter2@h/db".into());
        assert!(!format!("{with_secret:?}").contains("hunter2"));
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn layers_apply_in_order_defaults_file_environment_flag() {
        figment::Jail::expect_with(|jail| {
            let dir = jail.directory().join("data");
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            // ./etxhub.toml, then <data_dir>/etxhub.toml, then the environment.
            jail.create_file(
                "etxhub.toml",
                "listen = \"0.0.0.0:9443\"\n[limits]\nmax_records = 50\n",
            )?;
            let cfg = Config::load(None, Some(&dir)).map_err(|e| e.to_string())?;
            assert_eq!(cfg.listen, "0.0.0.0:9443");
            assert_eq!(cfg.limits.max_records, 50);
            std::fs::write(dir.join("etxhub.toml"), "[limits]\nmax_records = 60\n")
                .map_err(|e| e.to_string())?;
            let cfg = Config::load(None, Some(&dir)).map_err(|e| e.to_string())?;
            assert_eq!(
                (cfg.listen.as_str(), cfg.limits.max_records),
                ("0.0.0.0:9443", 60)
            );
            jail.set_env("ETX__LIMITS__MAX_RECORDS", "70");
            let cfg = Config::load(None, Some(&dir)).map_err(|e| e.to_string())?;
            assert_eq!(cfg.limits.max_records, 70);
            assert_eq!(cfg.data_dir, dir, "--data-dir wins");
            jail.set_env("ETX__RATE_LIMITS__PER_KEY__RATE", "5");
            let cfg = Config::load(None, Some(&dir)).map_err(|e| e.to_string())?;
            assert!((cfg.rate_limits.per_key.rate - 5.0).abs() < f64::EPSILON);
            jail.set_env("ETX__RATE_LIMITS__PER_KEY__RATE", "0");
            assert!(Config::load(None, Some(&dir)).is_err(), "a zero rate is refused");
            jail.set_env("ETX__RATE_LIMITS__PER_KEY__RATE", "200");
            jail.set_env("ETX__EARLY_WARNING__WORKING_DAYS", "mon-fri");
            jail.set_env("ETX__EARLY_WARNING__OUTSIDE_HOURS_SEVERITY", "medium");
            let cfg = Config::load(None, Some(&dir)).map_err(|e| e.to_string())?;
            let p = cfg.early_warning.policy().map_err(|e| e.to_string())?;
            assert_eq!(p.outside_hours_severity, etx_audit_core::Severity::Medium);
            let saturday_noon = chrono::DateTime::parse_from_rfc3339("2027-01-16T12:00:00+07:00")
                .map_err(|e| e.to_string())?
                .to_utc();
            assert!(!p.working_hours.contains(saturday_noon));
            jail.set_env("ETX__EARLY_WARNING__WORKING_HOURS_END", "06:00");
            assert!(
                Config::load(None, Some(&dir)).is_err(),
                "hours that end before they start"
            );
            jail.set_env("ETX__EARLY_WARNING__WORKING_HOURS_END", "19:00");
            jail.set_env("ETX__EARLY_WARNING__OUTSIDE_HOURS_SEVERITY", "critical");
            assert!(Config::load(None, Some(&dir)).is_err(), "low or medium only");
            jail.set_env("ETX__EARLY_WARNING__OUTSIDE_HOURS_SEVERITY", "low");
            jail.set_env("ETX__QUEUE__KIND", "kafka");
            assert!(
                Config::load(None, Some(&dir)).is_err(),
                "invalid values are refused at start-up"
            );
            Ok(())
        });
    }

    #[test]
    fn an_enabled_oidc_section_is_checked_at_start_up() {
        let dir = std::env::temp_dir().join("etx-config-test-oidc");
        let mut cfg = Config::load(None, Some(&dir)).unwrap();
        assert!(!cfg.oidc.enabled, "off by default");
        assert!(cfg.oidc.validate().is_ok(), "nothing to check while off");
        cfg.oidc.enabled = true;
        cfg.oidc.issuer = "https://idp.example.gov.vn/realms/etx".into();
        cfg.oidc.client_id = "etxhub".into();
        cfg.oidc.redirect_uri = "https://etx.example.gov.vn/api/v1/auth/oidc/callback".into();
        cfg.oidc.validate().unwrap();
        let s = cfg.oidc.settings().unwrap();
        assert_eq!(s.username_claim, "preferred_username");
        assert!(!s.trust_provider_mfa);
        assert_eq!(
            cfg.oidc.client().client_secret.map(|s| s.len()),
            None,
            "public client"
        );
        let refused = |change: &dyn Fn(&mut OidcCfg)| {
            let mut o = cfg.oidc.clone();
            change(&mut o);
            o.validate().is_err()
        };
        assert!(refused(&|o| o.issuer = "http://idp.example.gov.vn".into()));
        assert!(refused(&|o| o.issuer = "https://idp.example.gov.vn/?x=1".into()));
        assert!(refused(&|o| o.client_id = String::new()));
        assert!(refused(&|o| o.redirect_uri = String::new()));
        assert!(refused(&|o| o.scopes = vec!["profile".into()]));
        for alg in ["none", "HS256", "rs256"] {
            assert!(refused(&|o| o.allowed_algs = vec![alg.into()]), "{alg}");
        }
        assert!(refused(&|o| o.allowed_algs = Vec::new()));
        for target in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "app",
            "",
        ] {
            assert!(refused(&|o| o.post_login_redirect = target.into()), "{target}");
        }
        assert!(!refused(&|o| o.issuer = "http://127.0.0.1:8080".into()));
        assert!(!refused(&|o| o.post_login_redirect = "/app/#/home".into()));
    }
}
