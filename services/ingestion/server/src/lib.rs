//! The ingestion service (R-ING-1..5, R-SEC-5): real-time submissions over REST in JSON and
//! XML, durably stored encrypted with group commit, announced through the outbox.

pub mod http;
pub mod store;

use etx_crypto::{KeyRing, KeyedHasher};
use etx_ingestion_core::{IngestionService, Limits, SchemaRegistry};
use etx_storage::RelayHandle;
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use std::sync::Arc;
pub use store::{SeaRecordStore, keys::KeyManager};

/// The ingestion module as mounted by `etxhub`.
#[derive(Debug)]
pub struct AppIngestion {
    /// The use cases.
    pub service: IngestionService<SeaRecordStore>,
    /// Key management (for `etxhub keys rotate`).
    pub keys: KeyManager,
}

/// Settings of the module.
#[derive(Debug, Clone)]
pub struct IngestionSettings {
    /// Group-commit writer tasks.
    pub writers: usize,
    /// Real-time limits.
    pub limits: Limits,
}

impl AppIngestion {
    /// Runs migrations, loads and creates data keys, starts the group-commit writers.
    pub async fn build(
        db: DatabaseConnection,
        ring: Arc<KeyRing>,
        hasher: Arc<KeyedHasher>,
        relay: Option<RelayHandle>,
        settings: IngestionSettings,
    ) -> anyhow::Result<Self> {
        migrate(&db).await?;
        let keys = KeyManager::new(db.clone(), ring);
        keys.rotate().await?;
        let schemas = Arc::new(SchemaRegistry::load()?);
        let store = SeaRecordStore::start(db, keys.clone(), relay, settings.writers);
        Ok(Self {
            service: IngestionService::new(store, schemas, hasher, settings.limits),
            keys,
        })
    }
}

/// Runs ingestion's migrations (including the outbox).
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    store::migrations::Migrator::up(db, None).await?;
    Ok(())
}

/// Ingestion's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <http::IngestionDoc as utoipa::OpenApi>::openapi()
}
