//! TLS (R-SEC-4): the operator's certificate and key when configured, otherwise a self-signed
//! certificate generated into the data directory on first run and reused afterwards.
//! TLS 1.2 and 1.3 only, ring as the only crypto provider.

use anyhow::Context;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// Where the certificate and key are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// Whether they were generated now.
    pub generated: bool,
}

/// The configured files, or self-signed ones under `data_dir/tls/` (generated if missing).
pub fn resolve(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
    hosts: &[String],
) -> anyhow::Result<TlsFiles> {
    if let (Some(c), Some(k)) = (cert, key) {
        return Ok(TlsFiles {
            cert: c.to_owned(),
            key: k.to_owned(),
            generated: false,
        });
    }
    if cert.is_some() != key.is_some() {
        anyhow::bail!("tls.cert and tls.key must be configured together");
    }
    let dir = data_dir.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok(TlsFiles {
            cert,
            key,
            generated: false,
        });
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    names.extend(hosts.iter().cloned());
    let ck =
        rcgen::generate_simple_self_signed(names).context("cannot generate a self-signed certificate")?;
    write_private(&key, ck.signing_key.serialize_pem().as_bytes())?;
    std::fs::write(&cert, ck.cert.pem()).with_context(|| format!("cannot write {}", cert.display()))?;
    Ok(TlsFiles {
        cert,
        key,
        generated: true,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

/// The cipher suites offered (issue 4 §11): AEAD only, with forward secrecy — the TLS 1.3
/// suites and, for TLS 1.2, ECDHE with AES-GCM or ChaCha20-Poly1305. No CBC, no RSA key
/// exchange, no SHA-1 MACs.
pub const CIPHER_SUITES: [rustls::CipherSuite; 9] = [
    rustls::CipherSuite::TLS13_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS13_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
];

/// The oldest TLS version accepted (`tls.min_version`: `"1.2"`, the default, or `"1.3"`).
pub fn protocol_versions(
    min_version: &str,
) -> anyhow::Result<&'static [&'static rustls::SupportedProtocolVersion]> {
    static BOTH: [&rustls::SupportedProtocolVersion; 2] = [&rustls::version::TLS13, &rustls::version::TLS12];
    static ONLY_13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    match min_version.trim() {
        "" | "1.2" => Ok(&BOTH),
        "1.3" => Ok(&ONLY_13),
        other => anyhow::bail!("tls.min_version must be \"1.2\" or \"1.3\", not `{other}`"),
    }
}

/// A rustls server configuration from PEM files (TLS `min_version`+ with [`CIPHER_SUITES`],
/// ALPN http/1.1).
pub fn server_config(files: &TlsFiles, min_version: &str) -> anyhow::Result<ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("cannot read certificate {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid certificate {}", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {}", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read private key {}", files.key.display()))?;
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|s| CIPHER_SUITES.contains(&s.suite()));
    let mut cfg = ServerConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(protocol_versions(min_version)?)
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    // HTTP/1.1 only for now: actix-http's HTTP/2 dispatcher sends no GOAWAY on graceful
    // shutdown (actix/actix-web#3169), so one idle HTTP/2 client would hold a SIGTERM'd process
    // for the whole shutdown timeout while it keeps accepting requests (R-AVAIL).
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_signed_certificate_is_generated_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("etx-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = resolve(&dir, None, None, &[]).unwrap();
        assert!(first.generated);
        let pem = std::fs::read_to_string(&first.cert).unwrap();
        let second = resolve(&dir, None, None, &[]).unwrap();
        assert!(!second.generated);
        assert_eq!(std::fs::read_to_string(&second.cert).unwrap(), pem);
        assert!(server_config(&second, "1.2").is_ok());
        assert!(server_config(&second, "1.3").is_ok());
        assert!(server_config(&second, "1.1").is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&second.key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "private key must not be readable by others");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn half_a_configuration_is_refused() {
        let dir = std::env::temp_dir();
        assert!(resolve(&dir, Some(Path::new("/x.pem")), None, &[]).is_err());
    }
}
