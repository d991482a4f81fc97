//! The composition root of ETX Hub as a library, so that the `etxhub` binary and the tests
//! build the application the same way.

pub mod app;
pub mod config;
pub mod health;
pub mod openapi;
pub mod secrets;

/// Onboards a data source against the configured database (what `etxhub sources add` does).
pub async fn onboard(
    cfg: &config::Config,
    req: etx_identity_core::NewSource,
) -> anyhow::Result<etx_identity_core::OnboardedSource> {
    let secrets = secrets::Secrets::load(cfg)?;
    let db = app::open_database(cfg).await?;
    let hasher = std::sync::Arc::new(etx_crypto::ApiKeyHasher::new(&secrets.hmac_key));
    let identity = etx_identity::AppIdentity::build(db, hasher).await?;
    identity
        .service
        .onboard(req)
        .await
        .map_err(|e| anyhow::anyhow!("cannot onboard the source: {e}"))
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
    let keys = etx_ingestion::KeyManager::new(db, ring);
    let rewrapped = keys.rewrap_all().await?;
    let new_data_key = keys.rotate().await?;
    Ok(Rotation {
        rewrapped,
        master_key_id: secrets.master.id().to_owned(),
        new_data_key,
    })
}
