//! The composition root of ETX Hub as a library, so that the `etxhub` binary and the tests
//! build the application the same way.

pub mod app;
pub mod config;
pub mod health;
pub mod openapi;
pub mod secrets;

/// What the identity module is built from: its keyed hashes from the hmac key, and a key ring of
/// its own (the same master keys as ingestion's, but identity activates its own data key for
/// TOTP secrets, which must never become ingestion's active key). Its early warning's security
/// events go to the outbox of `db` (stream `events.security`, R-SEC-7), which an outbox relay —
/// the one of the process running ingestion on this database — publishes within its poll
/// interval.
pub fn identity_deps(
    cfg: &config::Config,
    secrets: &secrets::Secrets,
    db: &sea_orm::DatabaseConnection,
) -> anyhow::Result<etx_identity::IdentityDeps> {
    use std::sync::Arc;
    Ok(etx_identity::IdentityDeps {
        api_keys: Arc::new(etx_crypto::ApiKeyHasher::new(&secrets.hmac_key)),
        hasher: Arc::new(etx_crypto::KeyedHasher::new(&secrets.hmac_key)),
        ring: Arc::new(etx_crypto::KeyRing::new(
            secrets.master.clone(),
            secrets.previous.clone(),
        )),
        clock: Arc::new(etx_identity_core::SystemClock),
        settings: cfg.accounts.settings(),
        events: Arc::new(etx_audit::OutboxSecurityEvents::new(db.clone(), None)),
        early_warning: cfg.early_warning.policy()?,
    })
}

/// Creates a person's account with a generated temporary password (what `etxhub users add`
/// does: the first administrator of an organisation). The person must change the password and
/// enrol MFA at the first sign-in.
pub async fn add_user(
    cfg: &config::Config,
    org_code: &etx_domain::OrgCode,
    req: etx_identity_core::NewUser,
) -> anyhow::Result<etx_identity_core::CreatedUser> {
    let secrets = secrets::Secrets::load(cfg)?;
    let db = app::open_database(cfg).await?;
    let deps = identity_deps(cfg, &secrets, &db)?;
    let identity = etx_identity::AppIdentity::build(db, deps).await?;
    identity
        .accounts
        .bootstrap_user(org_code, req)
        .await
        .map_err(|e| match e {
            etx_identity_core::AccountError::Invalid(v) => anyhow::anyhow!(
                "cannot add the user: {}",
                v.iter()
                    .map(|v| format!("{} {}", v.path, v.detail.as_deref().unwrap_or(v.code.as_str())))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            etx_identity_core::AccountError::Conflict => {
                anyhow::anyhow!("cannot add the user: the username is taken")
            }
            e => anyhow::anyhow!("cannot add the user: {e}"),
        })
}

/// Onboards a data source against the configured database (what `etxhub sources add` does).
pub async fn onboard(
    cfg: &config::Config,
    req: etx_identity_core::NewSource,
) -> anyhow::Result<etx_identity_core::OnboardedSource> {
    let secrets = secrets::Secrets::load(cfg)?;
    let db = app::open_database(cfg).await?;
    let deps = identity_deps(cfg, &secrets, &db)?;
    let identity = etx_identity::AppIdentity::build(db, deps).await?;
    identity
        .service
        .onboard(req)
        .await
        .map_err(|e| anyhow::anyhow!("cannot onboard the source: {e}"))
}

/// Verifies the audit log's hash chain against the configured database (what `etxhub audit
/// verify` does, R-SEC-9).
pub async fn verify_audit(cfg: &config::Config) -> anyhow::Result<etx_audit_core::VerifyReport> {
    let secrets = secrets::Secrets::load(cfg)?;
    let db = app::open_database(cfg).await?;
    etx_audit::migrate(&db).await?;
    Ok(etx_audit::verify(&db, &app::audit_chain_key(&secrets)).await?)
}

/// What `etxhub keys rotate` did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Data keys re-wrapped under the active master key.
    pub rewrapped: usize,
    /// The active master key's id.
    pub master_key_id: String,
    /// The data key created.
    pub new_data_key: uuid::Uuid,
}

/// Re-wraps every stored data key under the active master key and creates a new data key
/// (R-SEC-5): master-key rotation without re-encrypting data and without downtime.
pub async fn rotate_keys(cfg: &config::Config) -> anyhow::Result<Rotation> {
    let secrets = secrets::Secrets::load(cfg)?;
    let db = app::open_database(cfg).await?;
    etx_ingestion::migrate(&db).await?;
    let ring = std::sync::Arc::new(etx_crypto::KeyRing::new(
        secrets.master.clone(),
        secrets.previous.clone(),
    ));
    // Identity re-wraps its own data keys (TOTP secrets) whenever it is built.
    etx_identity::AppIdentity::build(db.clone(), identity_deps(cfg, &secrets, &db)?).await?;
    let keys = etx_ingestion::KeyManager::new(db, ring);
    let rewrapped = keys.rewrap_all().await?;
    let new_data_key = keys.rotate().await?;
    Ok(Rotation {
        rewrapped,
        master_key_id: secrets.master.id().to_owned(),
        new_data_key,
    })
}
