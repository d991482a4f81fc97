//! Ingestion's schema migrations, in their own `ingestion_migrations` table.

use super::entities::{batch, batch_chunk, batch_error, batch_group, data_key, receipt, record};
use etx_storage::OutboxMigration;
use sea_orm::DbErr;
use sea_orm::sea_query::{Alias, Index, IntoIden};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// Ingestion's migrator.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(OutboxMigration),
            Box::new(M0002Records),
            Box::new(M0003Batches),
            Box::new(etx_storage::OrgTreeMigration {
                name: "ingestion_m0004_org_tree",
                table: super::ORG_TREE_TABLE,
            }),
        ]
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

struct M0003Batches;

impl MigrationName for M0003Batches {
    fn name(&self) -> &str {
        "ingestion_m0003_batches"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003Batches {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, batch::Entity).await?;
        etx_storage::create_entity_table(m, batch_chunk::Entity).await?;
        etx_storage::create_entity_table(m, batch_error::Entity).await?;
        etx_storage::create_entity_table(m, batch_group::Entity).await?;
        // Exports page through an organisation's records by (received_at, id) (issue 3 §8).
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("records_org_received_at_id")
                .table(record::Entity)
                .col(record::Column::OrgId)
                .col(record::Column::ReceivedAt)
                .col(record::Column::Id)
                .to_owned(),
        )
        .await?;
        // Re-uploading the same file with the same parameters is a replay (issue 3 §5).
        m.create_index(
            Index::create()
                .if_not_exists()
                .unique()
                .name("batches_org_file_mac")
                .table(batch::Entity)
                .col(batch::Column::OrgId)
                .col(batch::Column::FileMac)
                .to_owned(),
        )
        .await
    }
}
