//! Identity's use cases for connected systems: onboarding a source, issuing, listing and
//! revoking keys, and authenticating a presented key (R-SEC-1); and [`LocalIdentity`], the
//! in-process [`IdentityApi`] over keys and people's sessions.

use crate::accounts::Accounts;
use crate::model::{ApiKeyInfo, AuthError, Caller, NewSource, OnboardedSource, SystemInfo};
use crate::ports::{AccountStore, IdentityApi, IdentityStore, KeyMaterial, StoreError};
use crate::watch::{NoWatch, SecurityWatch};
use chrono::Utc;
use etx_crypto::ApiKeyHasher;
use etx_domain::{ApiKeyId, OrgId, Organisation, SystemId, SystemName};
use std::sync::Arc;

/// Why an identity use case failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The parent organisation does not exist.
    #[error("parent organisation `{0}` does not exist")]
    UnknownParent(String),
    /// The organisation cannot sit there in the hierarchy.
    #[error(transparent)]
    Hierarchy(#[from] etx_domain::org::HierarchyError),
    /// The organisation exists with another kind or name.
    #[error("organisation `{0}` already exists with a different kind")]
    OrgMismatch(String),
    /// The object does not exist (or is another organisation's).
    #[error("not found")]
    NotFound,
    /// A unique value is taken.
    #[error("already exists")]
    Conflict,
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl From<StoreError> for IdentityError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Conflict,
            StoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

/// The identity service, generic over its store.
#[derive(Debug)]
pub struct IdentityService<S> {
    store: S,
    hasher: Arc<ApiKeyHasher>,
    watch: Arc<dyn SecurityWatch>,
}

impl<S: IdentityStore> IdentityService<S> {
    /// A service over `store`, hashing keys with `hasher`.
    pub fn new(store: S, hasher: Arc<ApiKeyHasher>) -> Self {
        Self {
            store,
            hasher,
            watch: Arc::new(NoWatch),
        }
    }

    /// Tells `watch` of every use of a revoked key (the early warning, R-SEC-7); by default
    /// nobody is told.
    pub fn with_watch(mut self, watch: Arc<dyn SecurityWatch>) -> Self {
        self.watch = watch;
        self
    }

    /// The store (for readiness checks).
    pub fn store(&self) -> &S {
        &self.store
    }

    fn new_key(&self, org_id: OrgId, system_id: SystemId) -> (KeyMaterial, String) {
        let issued = self.hasher.issue();
        let info = ApiKeyInfo {
            id: ApiKeyId::new(),
            org_id,
            system_id,
            prefix: issued.prefix.clone(),
            created_at: Utc::now(),
            revoked_at: None,
        };
        (
            KeyMaterial {
                info,
                hash: issued.hash.to_vec(),
            },
            issued.plaintext.clone(),
        )
    }

    /// Onboards a data source (R-ADM automatic configuration, first part): creates the
    /// organisation if its code is new (checking its place in the hierarchy), registers the
    /// system and issues its first API key, all in one transaction.
    #[tracing::instrument(skip(self, req), fields(org = %req.org_code))]
    pub async fn onboard(&self, req: NewSource) -> Result<OnboardedSource, IdentityError> {
        let existing = self.store.org_by_code(&req.org_code).await?;
        let (org, created) = match existing {
            Some(o) if o.kind != req.org_kind => {
                return Err(IdentityError::OrgMismatch(req.org_code.to_string()));
            }
            Some(o) => (o, false),
            None => {
                let parent = match &req.parent {
                    Some(code) => Some(
                        self.store
                            .org_by_code(code)
                            .await?
                            .ok_or_else(|| IdentityError::UnknownParent(code.to_string()))?,
                    ),
                    None => None,
                };
                let org = Organisation {
                    id: OrgId::new(),
                    code: req.org_code.clone(),
                    name: req.org_name.clone(),
                    kind: req.org_kind,
                    parent: parent.as_ref().map(|p| p.id),
                    valid_from: req.valid_from.unwrap_or_else(|| Utc::now().date_naive()),
                    valid_to: None,
                };
                org.check_placement(parent.as_ref())?;
                (org, true)
            }
        };
        let system = SystemInfo {
            id: SystemId::new(),
            org_id: org.id,
            name: req.system_name.to_string(),
            created_at: Utc::now(),
        };
        let (key, plaintext) = self.new_key(org.id, system.id);
        self.store.create_source(&org, created, &system, &key).await?;
        tracing::info!(org_id = %org.id, system_id = %system.id, key_id = %key.info.id, "source onboarded");
        Ok(OnboardedSource {
            org_id: org.id,
            org_created: created,
            system_id: system.id,
            key_id: key.info.id,
            api_key: plaintext,
        })
    }

    /// Registers another system for an organisation, with its first key.
    pub async fn add_system(&self, org: OrgId, name: SystemName) -> Result<OnboardedSource, IdentityError> {
        self.store.org_by_id(org).await?.ok_or(IdentityError::NotFound)?;
        let system = SystemInfo {
            id: SystemId::new(),
            org_id: org,
            name: name.to_string(),
            created_at: Utc::now(),
        };
        let (key, plaintext) = self.new_key(org, system.id);
        self.store.create_system(&system, &key).await?;
        Ok(OnboardedSource {
            org_id: org,
            org_created: false,
            system_id: system.id,
            key_id: key.info.id,
            api_key: plaintext,
        })
    }

    /// Issues a new key for a system of `org` (the old ones keep working until revoked, so a
    /// source can rotate without downtime). Returns the key info and the clear key, once.
    pub async fn issue_key(
        &self,
        org: OrgId,
        system: SystemId,
    ) -> Result<(ApiKeyInfo, String), IdentityError> {
        self.store
            .system(org, system)
            .await?
            .ok_or(IdentityError::NotFound)?;
        let (key, plaintext) = self.new_key(org, system);
        self.store.insert_key(&key).await?;
        Ok((key.info, plaintext))
    }

    /// The keys of `org`.
    pub async fn list_keys(&self, org: OrgId) -> Result<Vec<ApiKeyInfo>, IdentityError> {
        Ok(self.store.keys_of_org(org).await?)
    }

    /// The systems of `org`.
    pub async fn list_systems(&self, org: OrgId) -> Result<Vec<SystemInfo>, IdentityError> {
        Ok(self.store.systems_of_org(org).await?)
    }

    /// The organisation itself.
    pub async fn organisation(&self, org: OrgId) -> Result<Organisation, IdentityError> {
        self.store.org_by_id(org).await?.ok_or(IdentityError::NotFound)
    }

    /// Revokes a key of `org`; it stops working at once. `NotFound` for another
    /// organisation's key.
    #[tracing::instrument(skip(self))]
    pub async fn revoke_key(&self, org: OrgId, key: ApiKeyId) -> Result<(), IdentityError> {
        if self.store.revoke_key(org, key, Utc::now()).await? {
            tracing::info!(%org, %key, "api key revoked");
            Ok(())
        } else {
            Err(IdentityError::NotFound)
        }
    }
}

impl<S: IdentityStore> IdentityService<S> {
    /// Authenticates a presented API key (see [`IdentityApi::authenticate_api_key`]). A revoked
    /// key is reported to the watch before it is refused.
    pub async fn authenticate_api_key(
        &self,
        presented: &str,
        client_ip: Option<&str>,
    ) -> Result<Caller, AuthError> {
        if presented.is_empty() {
            return Err(AuthError::Missing);
        }
        let prefix = ApiKeyHasher::prefix_of(presented).ok_or(AuthError::Invalid)?;
        let key = self
            .store
            .key_by_prefix(prefix)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "key lookup failed");
                AuthError::Unavailable
            })?
            .ok_or(AuthError::Invalid)?;
        if !self.hasher.verify(presented, &key.hash) {
            return Err(AuthError::Invalid);
        }
        if key.info.revoked_at.is_some() {
            self.watch.revoked_key_presented(&key.info, client_ip).await;
            return Err(AuthError::Revoked);
        }
        Ok(Caller::system(key.info.org_id, key.info.system_id, key.info.id))
    }
}

/// Identity in this process, as the gateway calls it: API keys of systems
/// ([`IdentityService`]) and sessions of people ([`Accounts`]).
#[derive(Debug)]
pub struct LocalIdentity<S> {
    keys: Arc<IdentityService<S>>,
    accounts: Arc<Accounts<S>>,
}

impl<S> LocalIdentity<S> {
    /// Both halves.
    pub fn new(keys: Arc<IdentityService<S>>, accounts: Arc<Accounts<S>>) -> Self {
        Self { keys, accounts }
    }
}

#[async_trait::async_trait]
impl<S: IdentityStore + AccountStore> IdentityApi for LocalIdentity<S> {
    async fn authenticate_api_key(
        &self,
        presented: &str,
        client_ip: Option<&str>,
    ) -> Result<Caller, AuthError> {
        self.keys.authenticate_api_key(presented, client_ip).await
    }

    async fn authenticate_session(&self, token: &str) -> Result<Caller, AuthError> {
        self.accounts.authenticate_session(token).await
    }
}

#[async_trait::async_trait]
impl<T: IdentityApi + ?Sized> IdentityApi for Arc<T> {
    async fn authenticate_api_key(
        &self,
        presented: &str,
        client_ip: Option<&str>,
    ) -> Result<Caller, AuthError> {
        (**self).authenticate_api_key(presented, client_ip).await
    }

    async fn authenticate_session(&self, token: &str) -> Result<Caller, AuthError> {
        (**self).authenticate_session(token).await
    }
}
