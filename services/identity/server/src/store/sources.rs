//! Key policies, rotation and configuration-change declarations in the database (issue 4 §5,
//! §9): the parts of [`IdentityStore`](etx_identity_core::IdentityStore) that go beyond the
//! first shape of `api_keys`.

use super::entities::{api_key, api_key_policy, config_change};
use super::{corrupt, map_err};
use chrono::{DateTime, Utc};
use etx_domain::authz::Scope;
use etx_domain::net::IpNetwork;
use etx_domain::{ApiKeyId, OrgId, Priority, SystemId};
use etx_identity_core::{ChangeKind, ConfigChange, KeyMaterial, KeyPolicy, StoreError};
use etx_storage::{OutboxEntry, insert_outbox};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use std::collections::HashMap;
use uuid::Uuid;

/// The stream a declared configuration change is notified on (Art. 10.4).
pub const CONFIG_STREAM: &str = "events.config";

/// The event kind of a declaration on [`CONFIG_STREAM`].
pub const CONFIG_CHANGED: &str = "system.config_changed";

/// A key's stored policy and rotation links.
#[derive(Debug, Clone, Default)]
pub(crate) struct StoredPolicy {
    pub(crate) policy: KeyPolicy,
    pub(crate) rotated_from: Option<ApiKeyId>,
    pub(crate) replaced_by: Option<ApiKeyId>,
}

fn to_policy(m: api_key_policy::Model) -> Result<StoredPolicy, StoreError> {
    let scopes = Scope::parse_list(&m.scopes).map_err(|_| corrupt("key scopes"))?;
    let allowed_networks = m
        .allowed_networks
        .split_whitespace()
        .map(IpNetwork::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| corrupt("key networks"))?;
    Ok(StoredPolicy {
        policy: KeyPolicy {
            scopes,
            expires_at: m.expires_at,
            allowed_networks,
        },
        rotated_from: m.rotated_from.map(ApiKeyId::from_uuid),
        replaced_by: m.replaced_by.map(ApiKeyId::from_uuid),
    })
}

/// The policy row of a new key.
pub(crate) fn policy_model(k: &KeyMaterial) -> api_key_policy::ActiveModel {
    let p = &k.info.policy;
    api_key_policy::ActiveModel {
        key_id: Set(k.info.id.as_uuid()),
        org_id: Set(k.info.org_id.as_uuid()),
        scopes: Set(p.scope_names().join(" ")),
        expires_at: Set(p.expires_at),
        allowed_networks: Set(p
            .allowed_networks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")),
        rotated_from: Set(k.info.rotated_from.map(|id| id.as_uuid())),
        replaced_by: Set(k.info.replaced_by.map(|id| id.as_uuid())),
    }
}

/// Stores a key and its policy on `c` (inside the caller's transaction).
pub(crate) async fn insert_key_on<C: ConnectionTrait>(c: &C, k: &KeyMaterial) -> Result<(), StoreError> {
    super::key_model(k).insert(c).await.map_err(map_err)?;
    policy_model(k).insert(c).await.map_err(map_err)?;
    Ok(())
}

/// The policy of one key; the default for a key issued before policies existed.
pub(crate) async fn policy_of(db: &DatabaseConnection, key: Uuid) -> Result<StoredPolicy, StoreError> {
    match api_key_policy::Entity::find_by_id(key)
        .one(db)
        .await
        .map_err(map_err)?
    {
        Some(m) => to_policy(m),
        None => Ok(StoredPolicy::default()),
    }
}

/// The policies of an organisation's keys, by key id.
pub(crate) async fn policies_of_org(
    db: &DatabaseConnection,
    org: OrgId,
) -> Result<HashMap<Uuid, StoredPolicy>, StoreError> {
    api_key_policy::Entity::find()
        .filter(api_key_policy::Column::OrgId.eq(org.as_uuid()))
        .all(db)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(|m| Ok((m.key_id, to_policy(m)?)))
        .collect()
}

/// See [`IdentityStore::rotate_key`](etx_identity_core::IdentityStore::rotate_key).
pub(crate) async fn rotate_key(
    db: &DatabaseConnection,
    org: OrgId,
    old: ApiKeyId,
    old_expires_at: DateTime<Utc>,
    successor: &KeyMaterial,
) -> Result<bool, StoreError> {
    let txn = etx_storage::begin_write(db).await.map_err(map_err)?;
    let found = api_key::Entity::find_by_id(old.as_uuid())
        .filter(api_key::Column::OrgId.eq(org.as_uuid()))
        .one(&txn)
        .await
        .map_err(map_err)?;
    if found.is_none_or(|k| k.revoked_at.is_some()) {
        return Ok(false);
    }
    // Only a key without a successor moves on: of two concurrent rotations, one updates the
    // row and the other finds nothing to update.
    let updated = api_key_policy::Entity::update_many()
        .col_expr(api_key_policy::Column::ExpiresAt, Expr::value(old_expires_at))
        .col_expr(
            api_key_policy::Column::ReplacedBy,
            Expr::value(successor.info.id.as_uuid()),
        )
        .filter(api_key_policy::Column::KeyId.eq(old.as_uuid()))
        .filter(api_key_policy::Column::ReplacedBy.is_null())
        .exec(&txn)
        .await
        .map_err(map_err)?;
    if updated.rows_affected == 0 {
        let has_row = api_key_policy::Entity::find_by_id(old.as_uuid())
            .one(&txn)
            .await
            .map_err(map_err)?
            .is_some();
        if has_row {
            return Ok(false);
        }
        // A key from before policies: its row is created now, with the defaults.
        let legacy = api_key_policy::ActiveModel {
            key_id: Set(old.as_uuid()),
            org_id: Set(org.as_uuid()),
            scopes: Set(KeyPolicy::default().scope_names().join(" ")),
            expires_at: Set(Some(old_expires_at)),
            allowed_networks: Set(String::new()),
            rotated_from: Set(None),
            replaced_by: Set(Some(successor.info.id.as_uuid())),
        };
        match legacy.insert(&txn).await {
            Ok(_) => {}
            Err(e) if etx_storage::is_unique_violation(&e) => return Ok(false),
            Err(e) => return Err(map_err(e)),
        }
    }
    insert_key_on(&txn, successor).await?;
    txn.commit().await.map_err(map_err)?;
    Ok(true)
}

/// The event of a declaration on [`CONFIG_STREAM`]: `kind` is the event's kind (as on
/// `events.security`), `change_kind` what changed.
#[derive(serde::Serialize)]
struct ConfigChanged<'a> {
    kind: &'static str,
    change_id: Uuid,
    org_id: OrgId,
    system_id: SystemId,
    change_kind: ChangeKind,
    description: &'a str,
    effective_at: DateTime<Utc>,
    details: Option<&'a serde_json::Map<String, serde_json::Value>>,
    declared_by: &'a str,
    declared_at: DateTime<Utc>,
}

/// See [`IdentityStore::insert_config_change`](etx_identity_core::IdentityStore::insert_config_change).
pub(crate) async fn insert_config_change(
    db: &DatabaseConnection,
    c: &ConfigChange,
) -> Result<(), StoreError> {
    let body = serde_json::to_vec(&ConfigChanged {
        kind: CONFIG_CHANGED,
        change_id: c.id,
        org_id: c.org_id,
        system_id: c.system_id,
        change_kind: c.kind,
        description: &c.description,
        effective_at: c.effective_at,
        details: c.details.as_ref(),
        declared_by: &c.declared_by,
        declared_at: c.declared_at,
    })
    .map_err(|e| StoreError::Unknown(e.into()))?;
    let details = c
        .details
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Unknown(e.into()))?;
    let txn = etx_storage::begin_write(db).await.map_err(map_err)?;
    config_change::ActiveModel {
        id: Set(c.id),
        org_id: Set(c.org_id.as_uuid()),
        system_id: Set(c.system_id.as_uuid()),
        kind: Set(c.kind.as_str().to_owned()),
        description: Set(c.description.clone()),
        effective_at: Set(c.effective_at),
        details: Set(details),
        declared_by: Set(c.declared_by.clone()),
        declared_at: Set(c.declared_at),
    }
    .insert(&txn)
    .await
    .map_err(map_err)?;
    insert_outbox(
        &txn,
        vec![OutboxEntry {
            stream: CONFIG_STREAM.to_owned(),
            key: c.id.to_string(),
            priority: Priority::Normal,
            headers: [
                ("kind".to_owned(), CONFIG_CHANGED.to_owned()),
                ("change_kind".to_owned(), c.kind.as_str().to_owned()),
                ("org_id".to_owned(), c.org_id.to_string()),
                ("system_id".to_owned(), c.system_id.to_string()),
            ]
            .into_iter()
            .collect(),
            body,
        }],
    )
    .await
    .map_err(map_err)?;
    txn.commit().await.map_err(map_err)
}

fn to_change(m: config_change::Model) -> Result<ConfigChange, StoreError> {
    Ok(ConfigChange {
        id: m.id,
        org_id: OrgId::from_uuid(m.org_id),
        system_id: SystemId::from_uuid(m.system_id),
        kind: ChangeKind::parse(&m.kind).ok_or_else(|| corrupt("change kind"))?,
        description: m.description,
        effective_at: m.effective_at,
        details: m
            .details
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|_| corrupt("change details"))?,
        declared_by: m.declared_by,
        declared_at: m.declared_at,
    })
}

/// See [`IdentityStore::config_changes`](etx_identity_core::IdentityStore::config_changes).
pub(crate) async fn config_changes(
    db: &DatabaseConnection,
    org: OrgId,
    system: SystemId,
    before: Option<DateTime<Utc>>,
    limit: u32,
) -> Result<Vec<ConfigChange>, StoreError> {
    let mut q = config_change::Entity::find()
        .filter(config_change::Column::OrgId.eq(org.as_uuid()))
        .filter(config_change::Column::SystemId.eq(system.as_uuid()));
    if let Some(b) = before {
        q = q.filter(config_change::Column::DeclaredAt.lt(b));
    }
    q.order_by_desc(config_change::Column::DeclaredAt)
        .order_by_desc(config_change::Column::Id)
        .limit(u64::from(limit))
        .all(db)
        .await
        .map_err(map_err)?
        .into_iter()
        .map(to_change)
        .collect()
}
