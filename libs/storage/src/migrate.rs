//! Migration helpers shared by the services' migrators.

use sea_orm::{DbErr, EntityTrait, Schema};
use sea_orm_migration::SchemaManager;

/// Creates an entity's table and the indexes its `#[sea_orm(indexed)]` columns ask for, if
/// they do not exist yet (both backends).
pub async fn create_entity_table<E: EntityTrait>(m: &SchemaManager<'_>, e: E) -> Result<(), DbErr> {
    let schema = Schema::new(m.get_database_backend());
    m.create_table(schema.create_table_from_entity(e).if_not_exists().to_owned())
        .await?;
    for mut idx in schema.create_index_from_entity(e) {
        m.create_index(idx.if_not_exists().to_owned()).await?;
    }
    Ok(())
}
