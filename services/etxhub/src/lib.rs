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
