//! Reconciliation's schema migrations, in their own `reconciliation_migrations` table. The
//! first is the shared outbox (as in every service that publishes), so the relay may start
//! once they have run.

use super::entities::{
    canonical_record, conflict, contribution, key_index, outcome, period_approval, rejection,
};
use etx_storage::OutboxMigration;
use sea_orm::DbErr;
use sea_orm::sea_query::{Alias, Index, IntoIden};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// The table of reconciliation's replica of the organisation hierarchy (the HTTP API reads the
/// conflicts, canonical records and completeness of a person's organisation subtree).
pub const ORG_TREE_TABLE: &str = "reconciliation_org_tree";

/// Reconciliation's migrator.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(OutboxMigration),
            Box::new(M0002Reconciliation),
            Box::new(etx_storage::OrgTreeMigration {
                name: "reconciliation_m0003_org_tree",
                table: ORG_TREE_TABLE,
            }),
        ]
    }

    fn migration_table_name() -> sea_orm::DynIden {
        Alias::new("reconciliation_migrations").into_iden()
    }
}

struct M0002Reconciliation;

impl MigrationName for M0002Reconciliation {
    fn name(&self) -> &str {
        "reconciliation_m0002_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002Reconciliation {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, canonical_record::Entity).await?;
        etx_storage::create_entity_table(m, contribution::Entity).await?;
        etx_storage::create_entity_table(m, key_index::Entity).await?;
        etx_storage::create_entity_table(m, outcome::Entity).await?;
        etx_storage::create_entity_table(m, conflict::Entity).await?;
        etx_storage::create_entity_table(m, rejection::Entity).await?;
        etx_storage::create_entity_table(m, period_approval::Entity).await?;
        // The records an approval holds, oldest first.
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("rec_outcomes_held")
                .table(outcome::Entity)
                .col(outcome::Column::Kind)
                .col(outcome::Column::HeldScope)
                .col(outcome::Column::Category)
                .col(outcome::Column::Period)
                .col(outcome::Column::RecordId)
                .to_owned(),
        )
        .await?;
        // Completeness: what an organisation sent for a period.
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("rec_outcomes_org_period")
                .table(outcome::Entity)
                .col(outcome::Column::OrgId)
                .col(outcome::Column::Period)
                .to_owned(),
        )
        .await?;
        // The open queue, page by page (ids are time-ordered).
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("rec_conflicts_status_id")
                .table(conflict::Entity)
                .col(conflict::Column::Status)
                .col(conflict::Column::Id)
                .to_owned(),
        )
        .await
    }
}
