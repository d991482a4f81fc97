//! Masking's schema migrations, in their own `masking_migrations` table.

use super::entities::{masked_record, masking_policy, masking_reidentification};
use etx_storage::OutboxMigration;
use sea_orm::DbErr;
use sea_orm::sea_query::{Alias, Index, IntoIden};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// The table of masking's replica of the organisation hierarchy (held records by subtree).
pub const ORG_TREE_TABLE: &str = "masking_org_tree";

/// Masking's migrator.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(OutboxMigration),
            Box::new(M0002MaskedRecords),
            Box::new(etx_storage::OrgTreeMigration {
                name: "masking_m0003_org_tree",
                table: ORG_TREE_TABLE,
            }),
            Box::new(M0004Policies),
        ]
    }

    fn migration_table_name() -> sea_orm::DynIden {
        Alias::new("masking_migrations").into_iden()
    }
}

struct M0002MaskedRecords;

impl MigrationName for M0002MaskedRecords {
    fn name(&self) -> &str {
        "masking_m0002_masked_records"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002MaskedRecords {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, masked_record::Entity).await?;
        // An organisation's held (or masked) records: the operator's list per subtree.
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("masked_records_org_status")
                .table(masked_record::Entity)
                .col(masked_record::Column::OrgId)
                .col(masked_record::Column::Status)
                .to_owned(),
        )
        .await?;
        // Every held record, oldest first (ids are UUIDv7), for an operator who sees all.
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("masked_records_status_record_id")
                .table(masked_record::Entity)
                .col(masked_record::Column::Status)
                .col(masked_record::Column::RecordId)
                .to_owned(),
        )
        .await
    }
}

/// The masking policy's versions and the re-identification log (issue 5 §2). The built-in
/// version 1 is stored by [`crate::AppMasking::build`], not here: a migration only shapes.
struct M0004Policies;

impl MigrationName for M0004Policies {
    fn name(&self) -> &str {
        "masking_m0004_policies_reidentifications"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0004Policies {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, masking_policy::Entity).await?;
        etx_storage::create_entity_table(m, masking_reidentification::Entity).await?;
        // A reader of one organisation subtree, newest first.
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("masking_reidentifications_org_id")
                .table(masking_reidentification::Entity)
                .col(masking_reidentification::Column::ActorOrg)
                .col(masking_reidentification::Column::Id)
                .to_owned(),
        )
        .await
    }
}
