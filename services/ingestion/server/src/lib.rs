//! The ingestion service (R-ING-1..5, R-SEC-5): real-time submissions over REST in JSON and
//! XML, durably stored encrypted with group commit, announced through the outbox.

pub mod batch;
pub mod export;
pub mod http;
pub mod soap;
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
    pub service: Arc<IngestionService<SeaRecordStore>>,
    /// The batch use cases (issue 3).
    pub batches: batch::Batches,
    /// Key management (for `etxhub keys rotate`).
    pub keys: KeyManager,
    /// Exports of a source's own records (issue 3 §8).
    pub exports: export::Exporter,
}

/// Settings of the module.
#[derive(Debug, Clone)]
pub struct IngestionSettings {
    /// Group-commit writer tasks.
    pub writers: usize,
    /// Real-time limits.
    pub limits: Limits,
    /// Batch processing.
    pub batch: batch::BatchSettings,
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
        let exports = export::Exporter::new(db.clone(), keys.clone());
        let schemas = Arc::new(SchemaRegistry::load()?);
        let store = SeaRecordStore::start(db.clone(), keys.clone(), relay.clone(), settings.writers);
        let service = Arc::new(IngestionService::new(store, schemas, hasher, settings.limits));
        let batches = batch::Batches::new(db, keys.clone(), service.clone(), relay, settings.batch);
        batches.start_workers();
        Ok(Self {
            service,
            batches,
            keys,
            exports,
        })
    }
}

/// Runs ingestion's migrations (including the outbox).
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    etx_storage::with_migration_lock(db, async {
        store::migrations::Migrator::up(db, None).await?;
        Ok(())
    })
    .await
}

/// Ingestion's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <http::IngestionDoc as utoipa::OpenApi>::openapi();
    doc.merge(<batch::http::BatchDoc as utoipa::OpenApi>::openapi());
    doc.merge(<export::ExportDoc as utoipa::OpenApi>::openapi());
    doc
}
