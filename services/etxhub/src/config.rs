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
        Ok(())
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
}
