//! The keys a process needs (R-SEC-5): the master key, the keyed-hash key and the principal
//! signing secret — from configuration, or from files in `<data_dir>/keys/` that all-in-one
//! generates on first run (mode 0600). Key material is never logged.

use crate::config::Config;
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use etx_crypto::MasterKey;
use std::path::Path;

/// Key material of one process.
pub struct Secrets {
    /// The active master key.
    pub master: MasterKey,
    /// Older master keys (unwrap only).
    pub previous: Vec<MasterKey>,
    /// Keyed-hash key bytes.
    pub hmac_key: Vec<u8>,
    /// Principal-signing secret bytes.
    pub internal_secret: Vec<u8>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("master_key_id", &self.master.id())
            .finish_non_exhaustive()
    }
}

fn random32() -> String {
    MasterKey::generate("tmp").to_base64()
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

/// Reads `<data_dir>/keys/<name>`, creating it with `make()` when allowed and missing.
fn file_value(
    cfg: &Config,
    name: &str,
    generate: bool,
    make: impl Fn() -> String,
) -> anyhow::Result<Option<String>> {
    let path = cfg.data_dir.join("keys").join(name);
    if path.exists() {
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(Some(text.trim().to_owned()));
    }
    if !generate {
        return Ok(None);
    }
    write_private(&path, &make())?;
    tracing::info!(file = %path.display(), "generated a new key file (keep a backup: data cannot be read without it)");
    Ok(Some(std::fs::read_to_string(&path)?.trim().to_owned()))
}

fn decode(name: &str, b64: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = STANDARD
        .decode(b64.trim())
        .with_context(|| format!("{name} is not base64"))?;
    if bytes.len() < 32 {
        bail!("{name} must be at least 32 bytes");
    }
    Ok(bytes)
}

impl Secrets {
    /// Loads the keys. Files are generated only for a SQLite (all-in-one) deployment; a
    /// distributed deployment must configure them, so that every process shares them.
    pub fn load(cfg: &Config) -> anyhow::Result<Self> {
        let generate = cfg.is_sqlite();
        let s = &cfg.security;
        let master = if !s.master_key.is_empty() {
            let id = if s.master_key_id.is_empty() {
                "mk-1"
            } else {
                s.master_key_id.as_str()
            };
            MasterKey::from_base64(id, s.master_key.expose()).context("security.master_key")?
        } else {
            let text = file_value(cfg, "master.key", generate, || {
                format!("mk-{}:{}", chrono::Utc::now().format("%Y%m%d"), random32())
            })?
            .context(
                "no master key: set ETX__SECURITY__MASTER_KEY (and ..._ID) for a PostgreSQL deployment",
            )?;
            let (id, key) = text
                .split_once(':')
                .context("master.key must be `<id>:<base64>`")?;
            MasterKey::from_base64(id, key).context("master.key")?
        };
        let previous = s
            .previous_master_keys
            .iter()
            .map(|p| {
                MasterKey::from_base64(&p.id, p.key.expose())
                    .with_context(|| format!("previous master key {}", p.id))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let hmac_key = if !s.hmac_key.is_empty() {
            decode("security.hmac_key", s.hmac_key.expose())?
        } else {
            let t = file_value(cfg, "hmac.key", generate, random32)?
                .context("no keyed-hash key: set ETX__SECURITY__HMAC_KEY for a PostgreSQL deployment")?;
            decode("hmac.key", &t)?
        };
        let internal_secret = if !s.internal_secret.is_empty() {
            decode("security.internal_secret", s.internal_secret.expose())?
        } else {
            let t = file_value(cfg, "internal.key", generate, random32)?.context(
                "no internal secret: set ETX__SECURITY__INTERNAL_SECRET for a PostgreSQL deployment",
            )?;
            decode("internal.key", &t)?
        };
        Ok(Self {
            master,
            previous,
            hmac_key,
            internal_secret,
        })
    }
}
