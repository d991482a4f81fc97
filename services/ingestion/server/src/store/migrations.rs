//! Ingestion's schema migrations, in their own `ingestion_migrations` table.

use super::entities::{data_key, receipt, record};
use etx_storage::OutboxMigration;
use sea_orm::DbErr;
use sea_orm::sea_query::{Alias, Index, IntoIden};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// Ingestion's migrator.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(OutboxMigration), Box::new(M0002Records)]
    }

    fn migration_table_name() -> sea_orm::DynIden {
        Alias::new("ingestion_migrations").into_iden()
    }
}

struct M0002Records;

impl MigrationName for M0002Records {
    fn name(&self) -> &str {
        "ingestion_m0002_records"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002Records {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, record::Entity).await?;
        etx_storage::create_entity_table(m, receipt::Entity).await?;
        etx_storage::create_entity_table(m, data_key::Entity).await?;
        // Idempotency (R-ING-5): one key per organisation, for submissions and for records.
        m.create_index(
            Index::create()
                .if_not_exists()
                .unique()
                .name("receipts_org_idempotency_mac")
                .table(receipt::Entity)
                .col(receipt::Column::OrgId)
                .col(receipt::Column::IdempotencyMac)
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .unique()
                .name("records_org_idempotency_mac")
                .table(record::Entity)
                .col(record::Column::OrgId)
                .col(record::Column::IdempotencyMac)
                .to_owned(),
        )
        .await
    }
}
