//! The audit service's schema migrations, in their own `audit_migrations` table so that it
//! shares a database with the other services without clashing.

use super::entities::{audit_checkpoint, audit_head, audit_log, vulnerability};
use etx_storage::OutboxMigration;
use sea_orm::sea_query::{Alias, Index, IntoIden, OnConflict};
use sea_orm::{DbErr, EntityTrait, Set};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// The audit service's migrator.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(OutboxMigration),
            Box::new(M0002AuditLog),
            Box::new(M0003Vulnerabilities),
        ]
    }

    fn migration_table_name() -> sea_orm::DynIden {
        Alias::new("audit_migrations").into_iden()
    }
}

struct M0002AuditLog;

impl MigrationName for M0002AuditLog {
    fn name(&self) -> &str {
        "audit_m0002_audit_log"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002AuditLog {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, audit_log::Entity).await?;
        etx_storage::create_entity_table(m, audit_head::Entity).await?;
        etx_storage::create_entity_table(m, audit_checkpoint::Entity).await?;
        // The query API's most selective filters page by seq within one organisation or one
        // subject; other filters scan in seq order (each index costs every request a write).
        for (name, col) in [
            ("audit_log_org_seq", audit_log::Column::OrgId),
            ("audit_log_subject_seq", audit_log::Column::Subject),
        ] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(audit_log::Entity)
                    .col(col)
                    .col(audit_log::Column::Seq)
                    .to_owned(),
            )
            .await?;
        }
        audit_head::Entity::insert(audit_head::ActiveModel {
            id: Set(1),
            last_seq: Set(0),
            last_hash: Set(etx_audit_core::GENESIS.to_vec()),
            mac: Set(None),
        })
        .on_conflict(OnConflict::column(audit_head::Column::Id).do_nothing().to_owned())
        .exec_without_returning(m.get_connection())
        .await?;
        Ok(())
    }
}

struct M0003Vulnerabilities;

impl MigrationName for M0003Vulnerabilities {
    fn name(&self) -> &str {
        "audit_m0003_vulnerabilities"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003Vulnerabilities {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, vulnerability::Entity).await
    }
}
