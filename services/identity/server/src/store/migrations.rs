//! Identity's schema migrations, kept in their own `identity_migrations` table so that
//! identity and ingestion can share one database without stepping on each other.

use super::entities::{api_key, organisation, system};
use sea_orm::DbErr;
use sea_orm::sea_query::{Alias, IntoIden};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// Identity's migrator.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Initial)]
    }

    fn migration_table_name() -> sea_orm::DynIden {
        Alias::new("identity_migrations").into_iden()
    }
}

struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "identity_m0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, organisation::Entity).await?;
        etx_storage::create_entity_table(m, system::Entity).await?;
        etx_storage::create_entity_table(m, api_key::Entity).await
    }
}
