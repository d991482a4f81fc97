//! Identity's use cases for connected systems: onboarding a source (with its connection
//! bundle, R-ADM), issuing keys with scopes, expiry and an address allow-list, rotating them
//! with overlap, listing and revoking them, authenticating a presented key (R-SEC-1), and the
//! configuration changes a system declares (Art. 10.4); and [`LocalIdentity`], the in-process
//! [`IdentityApi`] over keys and people's sessions.

use crate::accounts::Accounts;
use crate::connection::{ConfigChange, ConnectionBundle, ConnectionFacts, NewConfigChange, Onboarding};
use crate::keys::{self, KeyOptions, KeyPolicy};
use crate::model::{ApiKeyInfo, AuthError, Caller, KeyStatus, NewSource, OnboardedSource, SystemInfo};
use crate::oauth::{OAuthService, OAuthStore};
use crate::ports::{AccountStore, IdentityApi, IdentityStore, KeyMaterial, StoreError};
use crate::watch::{NoWatch, SecurityWatch};
use chrono::{DateTime, Utc};
use etx_crypto::ApiKeyHasher;
use etx_domain::authz::{self, Actor, Denial, Scope};
use etx_domain::{ApiKeyId, FieldViolation, OrgId, Organisation, SystemId, SystemName};
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
    /// The request breaks field rules (each violation names its field).
    #[error("invalid request")]
    Invalid(Vec<FieldViolation>),
    /// The caller may not do this: a system granting a scope it does not hold.
    #[error("denied: {0:?}")]
    Denied(Denial),
    /// The key cannot be rotated: revoked, expired or already rotated.
    #[error("the key cannot be rotated: {0}")]
    NotRotatable(&'static str),
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
    facts: std::sync::OnceLock<ConnectionFacts>,
}

/// Most hierarchy levels walked up when deciding a subtree (the real hierarchy has four).
const MAX_DEPTH: usize = 32;

impl<S: IdentityStore> IdentityService<S> {
    /// A service over `store`, hashing keys with `hasher`.
    pub fn new(store: S, hasher: Arc<ApiKeyHasher>) -> Self {
        Self {
            store,
            hasher,
            watch: Arc::new(NoWatch),
            facts: std::sync::OnceLock::new(),
        }
    }

    /// What connection bundles tell besides identity's own facts: endpoints, schema versions,
    /// limits (R-ADM); by default empty.
    pub fn with_connection_facts(self, facts: ConnectionFacts) -> Self {
        self.set_connection_facts(facts);
        self
    }

    /// Sets the connection facts once, at start-up (the composition root knows them only once
    /// it has bound its address). Returns `false`, changing nothing, when they were set already.
    pub fn set_connection_facts(&self, facts: ConnectionFacts) -> bool {
        self.facts.set(facts).is_ok()
    }

    fn facts(&self) -> &ConnectionFacts {
        self.facts.get_or_init(ConnectionFacts::default)
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

    fn new_key(&self, org_id: OrgId, system_id: SystemId, policy: KeyPolicy) -> (KeyMaterial, String) {
        let issued = self.hasher.issue();
        let info = ApiKeyInfo {
            id: ApiKeyId::new(),
            org_id,
            system_id,
            prefix: issued.prefix.clone(),
            created_at: Utc::now(),
            revoked_at: None,
            policy,
            rotated_from: None,
            replaced_by: None,
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
    /// system and issues its first API key (every default scope, no expiry, any address), all
    /// in one transaction.
    pub async fn onboard(&self, req: NewSource) -> Result<OnboardedSource, IdentityError> {
        let o = self.onboard_source(req, KeyOptions::default(), None).await?;
        Ok(OnboardedSource {
            org_id: o.bundle.organisation.id,
            org_created: o.org_created,
            system_id: o.bundle.system.id,
            key_id: o.key_id,
            api_key: o.api_key,
        })
    }

    /// Whether `org` is `root` or lies below it (walking up its parents).
    async fn is_within(&self, org: &Organisation, root: OrgId) -> Result<bool, IdentityError> {
        let mut cur = org.clone();
        for _ in 0..MAX_DEPTH {
            if cur.id == root {
                return Ok(true);
            }
            match cur.parent {
                Some(p) => match self.store.org_by_id(p).await? {
                    Some(parent) => cur = parent,
                    None => return Ok(false),
                },
                None => return Ok(false),
            }
        }
        Ok(false)
    }

    /// Onboards a data source with its key's options and returns the credentials (once) with
    /// the connection bundle (R-ADM automatic configuration, issue 4 §9). `within`: the
    /// organisation of an administrator onboarding through the API — the organisation must
    /// then lie in its subtree (an existing one) or be created below it (`parent` required);
    /// `NotFound` for a parent or an existing organisation outside it, so that the answer does
    /// not tell whether it exists. `None`: the operator's CLI, anywhere in the hierarchy.
    #[tracing::instrument(skip(self, req, key), fields(org = %req.org_code))]
    pub async fn onboard_source(
        &self,
        req: NewSource,
        key: KeyOptions,
        within: Option<OrgId>,
    ) -> Result<Onboarding, IdentityError> {
        let policy = key
            .resolve(Utc::now(), &Scope::DEFAULT)
            .map_err(IdentityError::Invalid)?;
        let existing = self.store.org_by_code(&req.org_code).await?;
        if let (Some(root), Some(o)) = (within, &existing)
            && !self.is_within(o, root).await?
        {
            return Err(IdentityError::NotFound);
        }
        let (org, created) = match existing {
            Some(o) if o.kind != req.org_kind => {
                return Err(IdentityError::OrgMismatch(req.org_code.to_string()));
            }
            Some(o) => (o, false),
            None => {
                let parent = match &req.parent {
                    Some(code) => {
                        let p = self.store.org_by_code(code).await?;
                        match (p, within) {
                            (Some(p), Some(root)) if !self.is_within(&p, root).await? => {
                                return Err(IdentityError::NotFound);
                            }
                            (Some(p), _) => Some(p),
                            (None, Some(_)) => return Err(IdentityError::NotFound),
                            (None, None) => return Err(IdentityError::UnknownParent(code.to_string())),
                        }
                    }
                    None if within.is_some() => {
                        return Err(IdentityError::Invalid(vec![
                            FieldViolation::new("/parent_code", etx_domain::ViolationCode::Required)
                                .with_detail(
                                    "a new organisation is placed within your organisation's subtree",
                                ),
                        ]));
                    }
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
        let (key, plaintext) = self.new_key(org.id, system.id, policy);
        self.store.create_source(&org, created, &system, &key).await?;
        tracing::info!(org_id = %org.id, system_id = %system.id, key_id = %key.info.id, "source onboarded");
        Ok(Onboarding {
            org_created: created,
            key_id: key.info.id,
            api_key: plaintext,
            bundle: self.facts().bundle(&org, system, vec![key.info]),
        })
    }

    /// The connection bundle of a system of `org`, without secrets: its keys that work, the
    /// endpoints, schema versions and limits. `NotFound` for another organisation's system.
    pub async fn connection(&self, org: OrgId, system: SystemId) -> Result<ConnectionBundle, IdentityError> {
        let sys = self
            .store
            .system(org, system)
            .await?
            .ok_or(IdentityError::NotFound)?;
        let organisation = self.store.org_by_id(org).await?.ok_or(IdentityError::NotFound)?;
        let now = Utc::now();
        let keys = self
            .store
            .keys_of_org(org)
            .await?
            .into_iter()
            .filter(|k| k.system_id == system && k.status(now) == KeyStatus::Active)
            .collect();
        Ok(self.facts().bundle(&organisation, sys, keys))
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
        let (key, plaintext) = self.new_key(org, system.id, KeyPolicy::default());
        self.store.create_system(&system, &key).await?;
        Ok(OnboardedSource {
            org_id: org,
            org_created: false,
            system_id: system.id,
            key_id: key.info.id,
            api_key: plaintext,
        })
    }

    /// Issues a new key for a system of `org` with `options` (scopes, expiry, allow-list;
    /// issue 4 §5); the other keys keep working. `issuer` is who asks: a connected system may
    /// grant only scopes its own credential holds (`Denied`), and without asked scopes gets
    /// exactly its own; a person (`system_admin`) any. `Invalid` for broken options, `NotFound`
    /// for another organisation's system. Returns the key info and the clear key, once.
    pub async fn issue_key(
        &self,
        org: OrgId,
        system: SystemId,
        options: KeyOptions,
        issuer: Actor<'_>,
    ) -> Result<(ApiKeyInfo, String), IdentityError> {
        let defaults = grantable_defaults(issuer);
        let policy = options
            .resolve(Utc::now(), &defaults)
            .map_err(IdentityError::Invalid)?;
        authz::may_grant(issuer, &policy.scopes).map_err(IdentityError::Denied)?;
        self.store
            .system(org, system)
            .await?
            .ok_or(IdentityError::NotFound)?;
        let (key, plaintext) = self.new_key(org, system, policy);
        self.store.insert_key(&key).await?;
        tracing::info!(%org, %system, key_id = %key.info.id, "api key issued");
        Ok((key.info, plaintext))
    }

    /// Rotates a key of `org` with overlap (issue 4 §5): issues a successor for the same
    /// system with the same scopes and allow-list (and, for a key with a lifetime, the same
    /// lifetime from now), and makes the old key expire `overlap` from now (or earlier, if it
    /// already expires sooner): both work during the overlap, afterwards only the successor.
    /// `NotFound` for another organisation's key; `NotRotatable` for a revoked, expired or
    /// already rotated one (also when a concurrent rotation wins); `Denied` when a system
    /// rotates a key with scopes its own credential lacks. Returns the successor and its clear
    /// key (once), and the old key as it is now.
    #[tracing::instrument(skip(self, issuer))]
    pub async fn rotate_key(
        &self,
        org: OrgId,
        old: ApiKeyId,
        overlap: chrono::TimeDelta,
        issuer: Actor<'_>,
    ) -> Result<(ApiKeyInfo, String, ApiKeyInfo), IdentityError> {
        let mut current = self.store.key(org, old).await?.ok_or(IdentityError::NotFound)?;
        let now = Utc::now();
        match current.status(now) {
            KeyStatus::Revoked => return Err(IdentityError::NotRotatable("it is revoked")),
            KeyStatus::Expired => return Err(IdentityError::NotRotatable("it has expired")),
            KeyStatus::Active if current.replaced_by.is_some() => {
                return Err(IdentityError::NotRotatable("it was already rotated"));
            }
            KeyStatus::Active => {}
        }
        authz::may_grant(issuer, &current.policy.scopes).map_err(IdentityError::Denied)?;
        let policy = KeyPolicy {
            scopes: current.policy.scopes.clone(),
            expires_at: keys::successor_expiry(current.created_at, current.policy.expires_at, now),
            allowed_networks: current.policy.allowed_networks.clone(),
        };
        let (mut successor, plaintext) = self.new_key(org, current.system_id, policy);
        successor.info.rotated_from = Some(old);
        let until: DateTime<Utc> = match current.policy.expires_at {
            Some(e) => e.min(now + overlap),
            None => now + overlap,
        };
        if !self.store.rotate_key(org, old, until, &successor).await? {
            return Err(IdentityError::NotRotatable("it was revoked or rotated meanwhile"));
        }
        tracing::info!(%org, %old, new = %successor.info.id, old_expires_at = %until, "api key rotated");
        current.policy.expires_at = Some(until);
        current.replaced_by = Some(successor.info.id);
        Ok((successor.info, plaintext, current))
    }

    /// A system of `org` as `acting` may see it: `NotFound` for another organisation's system,
    /// then `Denied(Forbidden)` when a connected system (`acting`) asks about another system
    /// than itself (Art. 10.4: a system declares its own changes).
    async fn own_system(
        &self,
        org: OrgId,
        system: SystemId,
        acting: Option<SystemId>,
    ) -> Result<(), IdentityError> {
        self.store
            .system(org, system)
            .await?
            .ok_or(IdentityError::NotFound)?;
        match acting {
            Some(own) if own != system => Err(IdentityError::Denied(Denial::Forbidden)),
            _ => Ok(()),
        }
    }

    /// Records a configuration change of a system of `org` declared by `declared_by`
    /// (`system:<id>` or `user:<id>`; Art. 10.4), and notifies it on `events.config` in the same
    /// transaction. `acting`: the connected system that declares, if a system does (it declares
    /// its own changes only). `Invalid` for a broken declaration, `NotFound` for another
    /// organisation's system, `Denied(Forbidden)` for another system of the organisation.
    pub async fn declare_change(
        &self,
        org: OrgId,
        system: SystemId,
        change: NewConfigChange,
        declared_by: String,
        acting: Option<SystemId>,
    ) -> Result<ConfigChange, IdentityError> {
        change.check().map_err(IdentityError::Invalid)?;
        self.own_system(org, system, acting).await?;
        let recorded = ConfigChange {
            id: uuid::Uuid::now_v7(),
            org_id: org,
            system_id: system,
            kind: change.kind,
            description: change.description,
            effective_at: change.effective_at,
            details: change.details,
            declared_by,
            declared_at: Utc::now(),
        };
        self.store.insert_config_change(&recorded).await?;
        tracing::info!(%org, %system, change_id = %recorded.id, kind = recorded.kind.as_str(), "configuration change declared");
        Ok(recorded)
    }

    /// The declared changes of a system of `org`, newest first, at most `limit` (capped at
    /// [`crate::connection::MAX_CHANGES_LISTED`]), before `before` when given. `NotFound` for
    /// another organisation's system; `Denied(Forbidden)` when a connected system (`acting`)
    /// asks about another system.
    pub async fn config_changes(
        &self,
        org: OrgId,
        system: SystemId,
        before: Option<DateTime<Utc>>,
        limit: u32,
        acting: Option<SystemId>,
    ) -> Result<Vec<ConfigChange>, IdentityError> {
        self.own_system(org, system, acting).await?;
        let limit = limit.clamp(1, crate::connection::MAX_CHANGES_LISTED);
        Ok(self.store.config_changes(org, system, before, limit).await?)
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
        let caller = Caller::system(key.info.org_id, key.info.system_id, key.info.id)
            .with_key_policy(&key.info.policy);
        caller.admits(Utc::now(), client_ip)?;
        Ok(caller)
    }
}

/// The scopes a key gets when none are asked: everything for a person, exactly its own for a
/// connected system (so that a key never mints a stronger one).
fn grantable_defaults(issuer: Actor<'_>) -> Vec<Scope> {
    match issuer {
        Actor::Person { .. } => Scope::DEFAULT.to_vec(),
        Actor::System { scopes } => scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
    }
}

/// Identity in this process, as the gateway calls it: API keys of systems
/// ([`IdentityService`]), sessions of people ([`Accounts`]) and OAuth2 access tokens of
/// systems ([`OAuthService`]).
#[derive(Debug)]
pub struct LocalIdentity<S> {
    keys: Arc<IdentityService<S>>,
    accounts: Arc<Accounts<S>>,
    oauth: Arc<OAuthService<S>>,
}

impl<S> LocalIdentity<S> {
    /// All three parts.
    pub fn new(
        keys: Arc<IdentityService<S>>,
        accounts: Arc<Accounts<S>>,
        oauth: Arc<OAuthService<S>>,
    ) -> Self {
        Self {
            keys,
            accounts,
            oauth,
        }
    }
}

#[async_trait::async_trait]
impl<S: IdentityStore + AccountStore + OAuthStore> IdentityApi for LocalIdentity<S> {
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

    async fn authenticate_access_token(&self, token: &str) -> Result<Caller, AuthError> {
        self.oauth.authenticate_access_token(token).await
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

    async fn authenticate_access_token(&self, token: &str) -> Result<Caller, AuthError> {
        (**self).authenticate_access_token(token).await
    }
}
