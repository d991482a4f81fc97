//! Identity's sea-orm repository (SQLite or PostgreSQL): sources and keys here (key policies,
//! rotation and configuration changes in [`sources`]), people in [`accounts`], the early
//! warning's reads and alerts in [`warning`].

mod accounts;
pub mod entities;
pub mod migrations;
pub mod oauth;
mod sources;
mod warning;

pub use sources::{CONFIG_CHANGED, CONFIG_STREAM};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use entities::{api_key, organisation, system};
use etx_domain::{ApiKeyId, OrgCode, OrgId, OrgKind, OrgName, Organisation, SystemId};
use etx_identity_core::{ApiKeyInfo, ConfigChange, IdentityStore, KeyMaterial, StoreError, SystemInfo};
use etx_storage::{OrgLineage, insert_outbox};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use sources::StoredPolicy;

/// The repository.
#[derive(Debug, Clone)]
pub struct SeaIdentityStore {
    pub(crate) db: DatabaseConnection,
}

impl SeaIdentityStore {
    /// A repository over `db` (migrations must have run).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Announces every organisation's lineage on `events.orgs` (through the outbox), for the
    /// services' subtree replicas ([`etx_storage::org_tree`]). Idempotent.
    pub async fn announce_hierarchy(&self) -> Result<usize, StoreError> {
        let orgs = etx_identity_core::AccountStore::organisations(self).await?;
        let lineages = etx_storage::OrgLineage::all(&etx_domain::OrgTree::new(orgs));
        let txn = etx_storage::begin_write(&self.db).await.map_err(map_err)?;
        insert_outbox(&txn, etx_storage::org_tree::announcements(&lineages))
            .await
            .map_err(map_err)?;
        txn.commit().await.map_err(map_err)?;
        Ok(lineages.len())
    }
}

/// The lineage of a new organisation `org`: its ancestors read within `txn`, nearest first.
async fn lineage_on<C: ConnectionTrait>(txn: &C, org: &Organisation) -> Result<OrgLineage, StoreError> {
    let mut ancestors = Vec::new();
    let mut next = org.parent;
    while let Some(id) = next {
        if ancestors.contains(&id) || id == org.id || ancestors.len() >= 32 {
            break;
        }
        ancestors.push(id);
        next = organisation::Entity::find_by_id(id.as_uuid())
            .one(txn)
            .await
            .map_err(map_err)?
            .and_then(|m| m.parent_id.map(OrgId::from_uuid));
    }
    Ok(OrgLineage {
        org_id: org.id,
        ancestors,
    })
}

pub(crate) fn map_err(e: DbErr) -> StoreError {
    if etx_storage::is_unique_violation(&e) {
        StoreError::Conflict
    } else {
        StoreError::Unknown(anyhow::Error::new(e))
    }
}

pub(crate) fn corrupt(what: &str) -> StoreError {
    StoreError::Unknown(anyhow::anyhow!("stored {what} is not valid"))
}

pub(crate) fn to_org(m: organisation::Model) -> Result<Organisation, StoreError> {
    Ok(Organisation {
        id: OrgId::from_uuid(m.id),
        code: OrgCode::parse(&m.code).map_err(|_| corrupt("organisation code"))?,
        name: OrgName::parse(&m.name).map_err(|_| corrupt("organisation name"))?,
        kind: OrgKind::parse(&m.kind).map_err(|_| corrupt("organisation kind"))?,
        parent: m.parent_id.map(OrgId::from_uuid),
        valid_from: m.valid_from,
        valid_to: m.valid_to,
    })
}

fn to_key_info(m: &api_key::Model, p: StoredPolicy) -> ApiKeyInfo {
    ApiKeyInfo {
        id: ApiKeyId::from_uuid(m.id),
        org_id: OrgId::from_uuid(m.org_id),
        system_id: SystemId::from_uuid(m.system_id),
        prefix: m.prefix.clone(),
        created_at: m.created_at,
        revoked_at: m.revoked_at,
        policy: p.policy,
        rotated_from: p.rotated_from,
        replaced_by: p.replaced_by,
    }
}

fn to_system(m: system::Model) -> SystemInfo {
    SystemInfo {
        id: SystemId::from_uuid(m.id),
        org_id: OrgId::from_uuid(m.org_id),
        name: m.name,
        created_at: m.created_at,
    }
}

pub(crate) fn key_model(k: &KeyMaterial) -> api_key::ActiveModel {
    api_key::ActiveModel {
        id: Set(k.info.id.as_uuid()),
        org_id: Set(k.info.org_id.as_uuid()),
        system_id: Set(k.info.system_id.as_uuid()),
        prefix: Set(k.info.prefix.clone()),
        hash: Set(k.hash.clone()),
        created_at: Set(k.info.created_at),
        revoked_at: Set(k.info.revoked_at),
    }
}

fn system_model(s: &SystemInfo) -> system::ActiveModel {
    system::ActiveModel {
        id: Set(s.id.as_uuid()),
        org_id: Set(s.org_id.as_uuid()),
        name: Set(s.name.clone()),
        created_at: Set(s.created_at),
    }
}

#[async_trait]
impl IdentityStore for SeaIdentityStore {
    async fn org_by_code(&self, code: &OrgCode) -> Result<Option<Organisation>, StoreError> {
        organisation::Entity::find()
            .filter(organisation::Column::Code.eq(code.as_str()))
            .one(&self.db)
            .await
            .map_err(map_err)?
            .map(to_org)
            .transpose()
    }

    async fn org_by_id(&self, id: OrgId) -> Result<Option<Organisation>, StoreError> {
        organisation::Entity::find_by_id(id.as_uuid())
            .one(&self.db)
            .await
            .map_err(map_err)?
            .map(to_org)
            .transpose()
    }

    async fn create_source(
        &self,
        org: &Organisation,
        org_is_new: bool,
        sys: &SystemInfo,
        key: &KeyMaterial,
    ) -> Result<(), StoreError> {
        let txn = etx_storage::begin_write(&self.db).await.map_err(map_err)?;
        if org_is_new {
            organisation::ActiveModel {
                id: Set(org.id.as_uuid()),
                code: Set(org.code.to_string()),
                name: Set(org.name.to_string()),
                kind: Set(org.kind.to_string()),
                parent_id: Set(org.parent.map(|p| p.as_uuid())),
                valid_from: Set(org.valid_from),
                valid_to: Set(org.valid_to),
                created_at: Set(Utc::now()),
            }
            .insert(&txn)
            .await
            .map_err(map_err)?;
            // The services' subtree replicas learn of it in the same transaction (issue 4 §3).
            let lineage = lineage_on(&txn, org).await?;
            insert_outbox(&txn, etx_storage::org_tree::announcements(&[lineage]))
                .await
                .map_err(map_err)?;
        }
        system_model(sys).insert(&txn).await.map_err(map_err)?;
        sources::insert_key_on(&txn, key).await?;
        txn.commit().await.map_err(map_err)
    }

    async fn insert_key(&self, key: &KeyMaterial) -> Result<(), StoreError> {
        let txn = etx_storage::begin_write(&self.db).await.map_err(map_err)?;
        sources::insert_key_on(&txn, key).await?;
        txn.commit().await.map_err(map_err)
    }

    async fn key_by_prefix(&self, prefix: &str) -> Result<Option<KeyMaterial>, StoreError> {
        let m = api_key::Entity::find()
            .filter(api_key::Column::Prefix.eq(prefix))
            .one(&self.db)
            .await
            .map_err(map_err)?;
        let Some(m) = m else { return Ok(None) };
        let policy = sources::policy_of(&self.db, m.id).await?;
        Ok(Some(KeyMaterial {
            info: to_key_info(&m, policy),
            hash: m.hash,
        }))
    }

    async fn keys_of_org(&self, org: OrgId) -> Result<Vec<ApiKeyInfo>, StoreError> {
        let rows = api_key::Entity::find()
            .filter(api_key::Column::OrgId.eq(org.as_uuid()))
            .order_by_desc(api_key::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(map_err)?;
        let mut policies = sources::policies_of_org(&self.db, org).await?;
        Ok(rows
            .iter()
            .map(|m| to_key_info(m, policies.remove(&m.id).unwrap_or_default()))
            .collect())
    }

    async fn revoke_key(&self, org: OrgId, key: ApiKeyId, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let found = api_key::Entity::find_by_id(key.as_uuid())
            .filter(api_key::Column::OrgId.eq(org.as_uuid()))
            .one(&self.db)
            .await
            .map_err(map_err)?;
        let Some(found) = found else { return Ok(false) };
        if found.revoked_at.is_none() {
            let mut am: api_key::ActiveModel = found.into();
            am.revoked_at = Set(Some(at));
            am.update(&self.db).await.map_err(map_err)?;
        }
        Ok(true)
    }

    async fn systems_of_org(&self, org: OrgId) -> Result<Vec<SystemInfo>, StoreError> {
        let rows = system::Entity::find()
            .filter(system::Column::OrgId.eq(org.as_uuid()))
            .order_by_asc(system::Column::CreatedAt)
            .all(&self.db)
            .await
            .map_err(map_err)?;
        Ok(rows.into_iter().map(to_system).collect())
    }

    async fn system(&self, org: OrgId, id: SystemId) -> Result<Option<SystemInfo>, StoreError> {
        Ok(system::Entity::find_by_id(id.as_uuid())
            .filter(system::Column::OrgId.eq(org.as_uuid()))
            .one(&self.db)
            .await
            .map_err(map_err)?
            .map(to_system))
    }

    async fn create_system(&self, sys: &SystemInfo, key: &KeyMaterial) -> Result<(), StoreError> {
        let txn = etx_storage::begin_write(&self.db).await.map_err(map_err)?;
        system_model(sys).insert(&txn).await.map_err(map_err)?;
        sources::insert_key_on(&txn, key).await?;
        txn.commit().await.map_err(map_err)
    }

    async fn key(&self, org: OrgId, id: ApiKeyId) -> Result<Option<ApiKeyInfo>, StoreError> {
        let m = api_key::Entity::find_by_id(id.as_uuid())
            .filter(api_key::Column::OrgId.eq(org.as_uuid()))
            .one(&self.db)
            .await
            .map_err(map_err)?;
        let Some(m) = m else { return Ok(None) };
        let policy = sources::policy_of(&self.db, m.id).await?;
        Ok(Some(to_key_info(&m, policy)))
    }

    async fn rotate_key(
        &self,
        org: OrgId,
        old: ApiKeyId,
        old_expires_at: DateTime<Utc>,
        successor: &KeyMaterial,
    ) -> Result<bool, StoreError> {
        sources::rotate_key(&self.db, org, old, old_expires_at, successor).await
    }

    async fn insert_config_change(&self, change: &ConfigChange) -> Result<(), StoreError> {
        sources::insert_config_change(&self.db, change).await
    }

    async fn config_changes(
        &self,
        org: OrgId,
        system: SystemId,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<ConfigChange>, StoreError> {
        sources::config_changes(&self.db, org, system, before, limit).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .execute_unprepared("SELECT 1")
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}
