//! The identity service (R-SRC-1, R-SEC-1), first part: organisations, connected systems and
//! API keys over sea-orm, their HTTP API, and the HTTP client other processes use.

pub mod client;
pub mod http;
pub mod store;

use etx_crypto::ApiKeyHasher;
use etx_identity_core::IdentityService;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use std::sync::Arc;
pub use store::SeaIdentityStore;

/// The identity module as mounted by `etxhub`.
#[derive(Debug)]
pub struct AppIdentity {
    /// The use cases.
    pub service: Arc<IdentityService<SeaIdentityStore>>,
}

impl AppIdentity {
    /// Runs identity's migrations on `db` and builds the module.
    pub async fn build(db: DatabaseConnection, hasher: Arc<ApiKeyHasher>) -> anyhow::Result<Self> {
        migrate(&db).await?;
        Ok(Self {
            service: Arc::new(IdentityService::new(SeaIdentityStore::new(db), hasher)),
        })
    }
}

/// Runs identity's migrations.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    store::migrations::Migrator::up(db, None).await?;
    Ok(())
}

/// Identity's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <http::IdentityDoc as utoipa::OpenApi>::openapi()
}
