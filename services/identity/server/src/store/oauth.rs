//! The sea-orm adapter of [`OAuthStore`] (R-SEC-1): OAuth clients of connected systems and the
//! access tokens issued to them, only as keyed hashes, on SQLite or PostgreSQL — with their own
//! tables and migration.

use super::entities::system;
use super::{SeaIdentityStore, corrupt, map_err};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entities::{oauth_access_token, oauth_client};
use etx_domain::authz::Scope;
use etx_domain::ids::{AccessTokenId, OAuthClientId};
use etx_domain::{OrgId, SystemId};
use etx_identity_core::StoreError;
use etx_identity_core::oauth::{
    AccessTokenInfo, OAuthClientInfo, OAuthStore, StoredAccessToken, StoredClient, scope_string,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};

/// sea-orm entities of the OAuth tables.
pub mod entities {
    /// OAuth clients (RFC 6749 §2): a connected system's client credentials; the secret only as
    /// a keyed hash, found by the client id.
    pub mod oauth_client {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "oauth_clients")]
        pub struct Model {
            /// The `client_id`.
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            #[sea_orm(indexed)]
            pub org_id: Uuid,
            pub system_id: Uuid,
            /// Space-separated scope names.
            pub scopes: String,
            #[sea_orm(unique)]
            pub secret_prefix: String,
            pub secret_hash: Vec<u8>,
            pub created_at: ChronoDateTimeUtc,
            pub revoked_at: Option<ChronoDateTimeUtc>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }

    /// Access tokens issued to OAuth clients: a keyed hash of the token, looked up by its
    /// public prefix; deleted a day after they expire.
    pub mod oauth_access_token {
        use sea_orm::entity::prelude::*;

        #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
        #[sea_orm(table_name = "oauth_access_tokens")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: Uuid,
            #[sea_orm(unique)]
            pub prefix: String,
            pub hash: Vec<u8>,
            #[sea_orm(indexed)]
            pub client_id: Uuid,
            pub org_id: Uuid,
            pub system_id: Uuid,
            /// Space-separated scope names.
            pub scopes: String,
            pub issued_at: ChronoDateTimeUtc,
            #[sea_orm(indexed)]
            pub expires_at: ChronoDateTimeUtc,
            pub revoked_at: Option<ChronoDateTimeUtc>,
        }

        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}

        impl ActiveModelBehavior for ActiveModel {}
    }
}

/// OAuth2 for connected systems (issue 4 §4): the clients and their access tokens.
pub(crate) struct OAuthMigration;

impl MigrationName for OAuthMigration {
    fn name(&self) -> &str {
        "identity_m0006_oauth_clients"
    }
}

#[async_trait]
impl MigrationTrait for OAuthMigration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, oauth_client::Entity).await?;
        etx_storage::create_entity_table(m, oauth_access_token::Entity).await
    }
}

fn scopes_of(stored: &str) -> Result<Vec<Scope>, StoreError> {
    Scope::parse_list(stored).map_err(|_| corrupt("oauth scope list"))
}

fn to_client_info(m: &oauth_client::Model) -> Result<OAuthClientInfo, StoreError> {
    Ok(OAuthClientInfo {
        id: OAuthClientId::from_uuid(m.id),
        org_id: OrgId::from_uuid(m.org_id),
        system_id: SystemId::from_uuid(m.system_id),
        scopes: scopes_of(&m.scopes)?,
        secret_prefix: m.secret_prefix.clone(),
        created_at: m.created_at,
        revoked_at: m.revoked_at,
    })
}

#[async_trait]
impl OAuthStore for SeaIdentityStore {
    async fn has_system(&self, org: OrgId, id: SystemId) -> Result<bool, StoreError> {
        let n = system::Entity::find_by_id(id.as_uuid())
            .filter(system::Column::OrgId.eq(org.as_uuid()))
            .count(&self.db)
            .await
            .map_err(map_err)?;
        Ok(n > 0)
    }

    async fn insert_client(&self, c: &StoredClient) -> Result<(), StoreError> {
        let i = &c.info;
        oauth_client::ActiveModel {
            id: Set(i.id.as_uuid()),
            org_id: Set(i.org_id.as_uuid()),
            system_id: Set(i.system_id.as_uuid()),
            scopes: Set(scope_string(&i.scopes)),
            secret_prefix: Set(i.secret_prefix.clone()),
            secret_hash: Set(c.secret_hash.clone()),
            created_at: Set(i.created_at),
            revoked_at: Set(i.revoked_at),
        }
        .insert(&self.db)
        .await
        .map_err(map_err)
        .map(|_| ())
    }

    async fn client(&self, id: OAuthClientId) -> Result<Option<StoredClient>, StoreError> {
        let Some(m) = oauth_client::Entity::find_by_id(id.as_uuid())
            .one(&self.db)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        Ok(Some(StoredClient {
            info: to_client_info(&m)?,
            secret_hash: m.secret_hash,
        }))
    }

    async fn clients_of_org(&self, org: OrgId) -> Result<Vec<OAuthClientInfo>, StoreError> {
        oauth_client::Entity::find()
            .filter(oauth_client::Column::OrgId.eq(org.as_uuid()))
            .order_by_desc(oauth_client::Column::CreatedAt)
            .order_by_desc(oauth_client::Column::Id)
            .all(&self.db)
            .await
            .map_err(map_err)?
            .iter()
            .map(to_client_info)
            .collect()
    }

    async fn revoke_client(
        &self,
        org: OrgId,
        id: OAuthClientId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let txn = etx_storage::begin_write(&self.db).await.map_err(map_err)?;
        let Some(found) = oauth_client::Entity::find_by_id(id.as_uuid())
            .filter(oauth_client::Column::OrgId.eq(org.as_uuid()))
            .one(&txn)
            .await
            .map_err(map_err)?
        else {
            return Ok(false);
        };
        if found.revoked_at.is_none() {
            let mut am: oauth_client::ActiveModel = found.into();
            am.revoked_at = Set(Some(at));
            am.update(&txn).await.map_err(map_err)?;
        }
        oauth_access_token::Entity::update_many()
            .col_expr(oauth_access_token::Column::RevokedAt, Expr::value(Some(at)))
            .filter(oauth_access_token::Column::ClientId.eq(id.as_uuid()))
            .filter(oauth_access_token::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(true)
    }

    async fn insert_token(&self, t: &StoredAccessToken) -> Result<(), StoreError> {
        let i = &t.info;
        oauth_access_token::ActiveModel {
            id: Set(i.id.as_uuid()),
            prefix: Set(i.prefix.clone()),
            hash: Set(t.hash.clone()),
            client_id: Set(i.client_id.as_uuid()),
            org_id: Set(i.org_id.as_uuid()),
            system_id: Set(i.system_id.as_uuid()),
            scopes: Set(scope_string(&i.scopes)),
            issued_at: Set(i.issued_at),
            expires_at: Set(i.expires_at),
            revoked_at: Set(i.revoked_at),
        }
        .insert(&self.db)
        .await
        .map_err(map_err)
        .map(|_| ())
    }

    async fn token_by_prefix(&self, prefix: &str) -> Result<Option<StoredAccessToken>, StoreError> {
        let Some(m) = oauth_access_token::Entity::find()
            .filter(oauth_access_token::Column::Prefix.eq(prefix))
            .one(&self.db)
            .await
            .map_err(map_err)?
        else {
            return Ok(None);
        };
        Ok(Some(StoredAccessToken {
            info: AccessTokenInfo {
                id: AccessTokenId::from_uuid(m.id),
                prefix: m.prefix,
                client_id: OAuthClientId::from_uuid(m.client_id),
                org_id: OrgId::from_uuid(m.org_id),
                system_id: SystemId::from_uuid(m.system_id),
                scopes: scopes_of(&m.scopes)?,
                issued_at: m.issued_at,
                expires_at: m.expires_at,
                revoked_at: m.revoked_at,
            },
            hash: m.hash,
        }))
    }

    async fn revoke_token(&self, id: AccessTokenId, at: DateTime<Utc>) -> Result<(), StoreError> {
        oauth_access_token::Entity::update_many()
            .col_expr(oauth_access_token::Column::RevokedAt, Expr::value(Some(at)))
            .filter(oauth_access_token::Column::Id.eq(id.as_uuid()))
            .filter(oauth_access_token::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await
            .map_err(map_err)
            .map(|_| ())
    }

    async fn purge_tokens(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let r = oauth_access_token::Entity::delete_many()
            .filter(oauth_access_token::Column::ExpiresAt.lt(before))
            .exec(&self.db)
            .await
            .map_err(map_err)?;
        Ok(r.rows_affected)
    }
}
