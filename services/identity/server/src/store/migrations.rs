//! Identity's schema migrations, kept in their own `identity_migrations` table so that
//! identity and ingestion can share one database without stepping on each other.

use super::entities::{api_key, organisation, system};
use sea_orm::sea_query::{Alias, IntoIden};
use sea_orm::{DbErr, EntityTrait, Schema};
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

async fn create<E: EntityTrait>(m: &SchemaManager<'_>, e: E) -> Result<(), DbErr> {
    let schema = Schema::new(m.get_database_backend());
    m.create_table(schema.create_table_from_entity(e).if_not_exists().to_owned())
        .await?;
    for mut idx in schema.create_index_from_entity(e) {
        m.create_index(idx.if_not_exists().to_owned()).await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        create(m, organisation::Entity).await?;
        create(m, system::Entity).await?;
        create(m, api_key::Entity).await
    }
}
