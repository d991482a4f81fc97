//! The ports of identity: the store it needs and the API it offers to other services.

use crate::model::{ApiKeyInfo, AuthError, Caller, SystemInfo};
use chrono::{DateTime, Utc};
use etx_domain::{ApiKeyId, OrgCode, OrgId, Organisation, SystemId};

/// Storage failures, as the service sees them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique value (organisation code, key prefix) is taken.
    #[error("already exists")]
    Conflict,
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// A stored key as the authenticator needs it.
#[derive(Debug, Clone)]
pub struct KeyMaterial {
    /// Public facts.
    pub info: ApiKeyInfo,
    /// Keyed hash of the full key.
    pub hash: Vec<u8>,
}

/// Persistence of organisations, systems and keys.
#[async_trait::async_trait]
pub trait IdentityStore: Send + Sync + std::fmt::Debug {
    /// The organisation with this code. MUST return `Ok(None)` when there is none.
    async fn org_by_code(&self, code: &OrgCode) -> Result<Option<Organisation>, StoreError>;
    /// The organisation with this id. MUST return `Ok(None)` when there is none.
    async fn org_by_id(&self, id: OrgId) -> Result<Option<Organisation>, StoreError>;
    /// Creates an organisation, a system and its first key in one transaction (the
    /// organisation only when `org_is_new`). MUST return `Conflict` when the code is taken.
    async fn create_source(
        &self,
        org: &Organisation,
        org_is_new: bool,
        system: &SystemInfo,
        key: &KeyMaterial,
    ) -> Result<(), StoreError>;
    /// Adds a key to an existing system.
    async fn insert_key(&self, key: &KeyMaterial) -> Result<(), StoreError>;
    /// The key with this public prefix, revoked or not. `Ok(None)` when unknown.
    async fn key_by_prefix(&self, prefix: &str) -> Result<Option<KeyMaterial>, StoreError>;
    /// Every key of an organisation, newest first.
    async fn keys_of_org(&self, org: OrgId) -> Result<Vec<ApiKeyInfo>, StoreError>;
    /// Marks a key of `org` revoked at `at`. MUST return `Ok(false)` when the key does not exist
    /// or belongs to another organisation (so that existence does not leak).
    async fn revoke_key(&self, org: OrgId, key: ApiKeyId, at: DateTime<Utc>) -> Result<bool, StoreError>;
    /// The systems of an organisation.
    async fn systems_of_org(&self, org: OrgId) -> Result<Vec<SystemInfo>, StoreError>;
    /// One system of an organisation; `Ok(None)` when unknown or another organisation's.
    async fn system(&self, org: OrgId, id: SystemId) -> Result<Option<SystemInfo>, StoreError>;
    /// Creates a system for an existing organisation with its first key.
    async fn create_system(&self, system: &SystemInfo, key: &KeyMaterial) -> Result<(), StoreError>;
    /// Readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// What identity offers other services (the gateway), in-process or over HTTP.
#[async_trait::async_trait]
pub trait IdentityApi: Send + Sync + std::fmt::Debug {
    /// Authenticates a presented API key. MUST return `Missing` for an empty string, `Invalid`
    /// for anything malformed or unknown, `Revoked` for a revoked key (from the moment of
    /// revocation), `Unavailable` when it cannot decide.
    async fn authenticate_api_key(&self, presented: &str) -> Result<Caller, AuthError>;
}
