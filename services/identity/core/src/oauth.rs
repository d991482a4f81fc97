//! OAuth2 for connected systems (R-SEC-1; DESIGN.md §5 "API key or OAuth2 bearer token for
//! systems"): the client-credentials grant (RFC 6749 §4.4) and token revocation (RFC 7009).
//!
//! * An organisation registers an **OAuth client** for one of its systems, with the scopes the
//!   client may ask for ([`Scope`]). The client's `client_id` is a UUID; its `client_secret`
//!   (`etxcs_…`, 256 random bits) is shown once and stored only as a keyed hash.
//! * The client exchanges its credentials for an **access token** (`etxat_…`, 256 random bits):
//!   opaque, short-lived ([`OAuthSettings::token_ttl`]), carrying the requested scopes (a subset
//!   of the client's), stored only as a keyed hash, looked up by its public prefix and compared
//!   in constant time — like API keys, but with their own tags and hash purposes, so that a
//!   token is never accepted as an API key, nor an API key or a client secret as a token.
//! * A token presented as `Authorization: Bearer` makes the caller its client's system with the
//!   token's scopes ([`OAuthService::authenticate_access_token`]), so the route table enforces
//!   them. A revoked token, or one of a deleted client, is refused from that moment on.
//!
//! Failed client authentication never says whether the client exists: an unknown, deleted or
//! malformed `client_id` and a wrong secret are all `invalid_client`, after the same work.

use crate::clock::Clock;
use crate::model::{AuthError, Caller};
use crate::ports::StoreError;
use chrono::{DateTime, TimeDelta, Utc};
use etx_crypto::{KeyedHasher, OpaqueSecrets, SecretKind};
use etx_domain::authz::Scope;
use etx_domain::ids::{AccessTokenId, OAuthClientId};
use etx_domain::{OrgId, SystemId};
use std::fmt;
use std::sync::Arc;
use zeroize::Zeroizing;

/// The only grant type offered (RFC 6749 §4.4.2).
pub const CLIENT_CREDENTIALS: &str = "client_credentials";

/// The token type of every access token (RFC 6750).
pub const TOKEN_TYPE: &str = "Bearer";

/// Whether a presented credential is meant as an access token (it has the tokens' tag; its
/// shape and validity are checked by [`OAuthService::authenticate_access_token`]).
pub fn looks_like_access_token(presented: &str) -> bool {
    SecretKind::OAUTH_ACCESS_TOKEN.is_tagged(presented)
}

/// How OAuth2 tokens are issued (`[oauth]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OAuthSettings {
    /// How long an access token lives: [`Self::MIN_TTL_SECS`]..=[`Self::MAX_TTL_SECS`].
    token_ttl: TimeDelta,
}

impl OAuthSettings {
    /// Shortest token lifetime, in seconds.
    pub const MIN_TTL_SECS: u64 = 60;
    /// Longest token lifetime, in seconds: a stolen token is good for at most an hour.
    pub const MAX_TTL_SECS: u64 = 3600;
    /// Default token lifetime, in seconds.
    pub const DEFAULT_TTL_SECS: u64 = 600;

    /// Settings with tokens living `secs` seconds; `Err` outside the bounds.
    pub fn with_token_ttl_secs(secs: u64) -> Result<Self, String> {
        if !(Self::MIN_TTL_SECS..=Self::MAX_TTL_SECS).contains(&secs) {
            return Err(format!(
                "oauth.token_ttl_secs must be {}..={}",
                Self::MIN_TTL_SECS,
                Self::MAX_TTL_SECS
            ));
        }
        Ok(Self {
            token_ttl: TimeDelta::seconds(i64::try_from(secs).unwrap_or(i64::MAX)),
        })
    }

    /// How long an access token lives.
    pub fn token_ttl(&self) -> TimeDelta {
        self.token_ttl
    }
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            token_ttl: TimeDelta::seconds(Self::DEFAULT_TTL_SECS as i64),
        }
    }
}

/// An OAuth client's public facts (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClientInfo {
    /// Its `client_id`.
    pub id: OAuthClientId,
    /// Its organisation.
    pub org_id: OrgId,
    /// The system it acts as.
    pub system_id: SystemId,
    /// What its tokens may be granted, sorted.
    pub scopes: Vec<Scope>,
    /// The public prefix of its secret (`etxcs_<prefix>_…`), to recognise it.
    pub secret_prefix: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it was deleted (revoked), if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A stored client as the token endpoint needs it.
#[derive(Debug, Clone)]
pub struct StoredClient {
    /// Public facts.
    pub info: OAuthClientInfo,
    /// Keyed hash of its secret.
    pub secret_hash: Vec<u8>,
}

/// An access token's facts (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenInfo {
    /// Its id.
    pub id: AccessTokenId,
    /// The public lookup prefix (`etxat_<prefix>_…`).
    pub prefix: String,
    /// The client it was issued to.
    pub client_id: OAuthClientId,
    /// The client's organisation.
    pub org_id: OrgId,
    /// The client's system.
    pub system_id: SystemId,
    /// What it was granted, sorted.
    pub scopes: Vec<Scope>,
    /// When it was issued.
    pub issued_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked (by RFC 7009 revocation or with its client), if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A stored access token: its facts and the keyed hash of the token.
#[derive(Debug, Clone)]
pub struct StoredAccessToken {
    /// Facts.
    pub info: AccessTokenInfo,
    /// Keyed hash of the token.
    pub hash: Vec<u8>,
}

/// Persistence of OAuth clients and access tokens.
#[async_trait::async_trait]
pub trait OAuthStore: Send + Sync + std::fmt::Debug {
    /// Whether `system` is a connected system of `org`.
    async fn has_system(&self, org: OrgId, system: SystemId) -> Result<bool, StoreError>;
    /// Stores a new client. MUST return `Conflict` when its id or secret prefix is taken.
    async fn insert_client(&self, client: &StoredClient) -> Result<(), StoreError>;
    /// The client with this id, whatever its organisation, deleted or not. MUST return
    /// `Ok(None)` when there is none.
    async fn client(&self, id: OAuthClientId) -> Result<Option<StoredClient>, StoreError>;
    /// The clients of an organisation, deleted ones included, newest first.
    async fn clients_of_org(&self, org: OrgId) -> Result<Vec<OAuthClientInfo>, StoreError>;
    /// In one transaction: marks the client of `org` revoked at `at` (keeping an earlier
    /// revocation time) and every not yet revoked token of it revoked at `at`. MUST return
    /// `Ok(false)` and change nothing when the client does not exist or belongs to another
    /// organisation (so that existence does not leak).
    async fn revoke_client(
        &self,
        org: OrgId,
        id: OAuthClientId,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Stores an issued token. MUST return `Conflict` when its prefix is taken.
    async fn insert_token(&self, token: &StoredAccessToken) -> Result<(), StoreError>;
    /// The token with this public prefix, revoked or expired or not. MUST return `Ok(None)`
    /// when there is none.
    async fn token_by_prefix(&self, prefix: &str) -> Result<Option<StoredAccessToken>, StoreError>;
    /// Marks a token revoked at `at`; no effect when it is already revoked or unknown.
    async fn revoke_token(&self, id: AccessTokenId, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Deletes the tokens that expired before `before`; returns how many.
    async fn purge_tokens(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// Who registers a client: what they may grant it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantor {
    /// A person allowed to manage the organisation's credentials (`system_admin`): any scope.
    Administrator,
    /// A connected system with `keys:manage`: only scopes its own credential holds.
    System {
        /// The scopes of the system's credential.
        holds: Vec<Scope>,
    },
}

/// Why registering, listing or deleting a client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The system or client does not exist, or is another organisation's.
    #[error("not found")]
    NotFound,
    /// No scope was asked for (`[]`).
    #[error("a client needs at least one scope")]
    NoScope,
    /// A connected system asked for a scope its own credential does not hold.
    #[error("the caller's credential does not hold the scope `{0}`")]
    NotHeld(Scope),
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl From<StoreError> for ClientError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Unknown(anyhow::anyhow!("an issued client secret collided")),
            StoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

/// A newly registered client: the only time its secret is shown.
#[derive(Debug)]
pub struct RegisteredClient {
    /// Its facts.
    pub info: OAuthClientInfo,
    /// The client secret in clear (zeroized on drop).
    pub secret: Zeroizing<String>,
}

/// Client credentials as presented (RFC 6749 §2.3.1), by HTTP Basic or in the body.
pub struct ClientCredentials {
    /// The presented `client_id`.
    pub client_id: String,
    /// The presented `client_secret` (zeroized on drop).
    pub client_secret: Zeroizing<String>,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why the token or revocation endpoint refused (RFC 6749 §5.2, RFC 7009 §2.2.1).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The request is malformed: a parameter missing, repeated or unreadable, or more than one
    /// client authentication method.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
    /// Client authentication failed: none, unknown or deleted client, wrong secret.
    #[error("invalid client")]
    InvalidClient,
    /// A grant type other than `client_credentials`.
    #[error("unsupported grant type")]
    UnsupportedGrantType,
    /// An unknown scope, or one the client may not be granted.
    #[error("invalid scope")]
    InvalidScope(&'static str),
    /// Anything else (the store failed).
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl TokenError {
    /// The RFC 6749 §5.2 `error` code; `None` for [`TokenError::Unknown`] (a server error).
    pub fn rfc_code(&self) -> Option<&'static str> {
        match self {
            Self::InvalidRequest(_) => Some("invalid_request"),
            Self::InvalidClient => Some("invalid_client"),
            Self::UnsupportedGrantType => Some("unsupported_grant_type"),
            Self::InvalidScope(_) => Some("invalid_scope"),
            Self::Unknown(_) => None,
        }
    }

    /// A short English description for `error_description` (ASCII, never echoing input).
    pub fn description(&self) -> &'static str {
        match self {
            Self::InvalidRequest(d) | Self::InvalidScope(d) => d,
            Self::InvalidClient => "client authentication failed",
            Self::UnsupportedGrantType => "only the client_credentials grant is supported",
            Self::Unknown(_) => "internal error",
        }
    }
}

impl From<StoreError> for TokenError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Unknown(anyhow::anyhow!("an issued token collided")),
            StoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

/// A token request (RFC 6749 §4.4.2) once its transport is read.
#[derive(Debug, Clone, Default)]
pub struct TokenRequest {
    /// `grant_type`.
    pub grant_type: Option<String>,
    /// `scope`: space-separated scope names; absent: every scope of the client.
    pub scope: Option<String>,
}

/// An issued access token (RFC 6749 §5.1).
pub struct IssuedToken {
    /// The token in clear (zeroized on drop): shown once.
    pub access_token: Zeroizing<String>,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// What it was granted, sorted.
    pub scopes: Vec<Scope>,
    /// Its facts.
    pub info: AccessTokenInfo,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl IssuedToken {
    /// The `scope` response parameter: the granted scopes, space-separated.
    pub fn scope(&self) -> String {
        scope_string(&self.scopes)
    }
}

/// Scopes as an OAuth `scope` string: space-separated names.
pub fn scope_string(scopes: &[Scope]) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

/// Old tokens are deleted this long after they expired (kept a while for support).
const PURGE_AFTER: TimeDelta = TimeDelta::days(1);

/// The OAuth2 use cases, generic over the store.
pub struct OAuthService<S> {
    store: S,
    secrets: OpaqueSecrets,
    tokens: OpaqueSecrets,
    clock: Arc<dyn Clock>,
    settings: OAuthSettings,
}

impl<S: fmt::Debug> fmt::Debug for OAuthService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthService")
            .field("store", &self.store)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S> OAuthService<S> {
    /// A service over `store`; secrets and tokens are hashed by `hasher` (each kind for its own
    /// purpose) and time is read from `clock`.
    pub fn new(store: S, hasher: &KeyedHasher, clock: Arc<dyn Clock>, settings: OAuthSettings) -> Self {
        Self {
            store,
            secrets: OpaqueSecrets::new(SecretKind::OAUTH_CLIENT_SECRET, hasher.clone()),
            tokens: OpaqueSecrets::new(SecretKind::OAUTH_ACCESS_TOKEN, hasher.clone()),
            clock,
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> OAuthSettings {
        self.settings
    }

    /// The same service with other settings.
    pub fn with_settings(&self, settings: OAuthSettings) -> Self
    where
        S: Clone,
    {
        Self {
            store: self.store.clone(),
            secrets: self.secrets.clone(),
            tokens: self.tokens.clone(),
            clock: self.clock.clone(),
            settings,
        }
    }
}

impl<S: OAuthStore> OAuthService<S> {
    /// Registers a client for `system` of `org` with `scopes` (absent: every scope the grantor
    /// may give). `NotFound` when the system is not `org`'s.
    #[tracing::instrument(skip(self, grantor, scopes))]
    pub async fn register_client(
        &self,
        org: OrgId,
        system: SystemId,
        scopes: Option<Vec<Scope>>,
        grantor: &Grantor,
    ) -> Result<RegisteredClient, ClientError> {
        let scopes = match (scopes, grantor) {
            (Some(s), _) => s,
            (None, Grantor::Administrator) => Scope::DEFAULT.to_vec(),
            (None, Grantor::System { holds }) => holds.clone(),
        };
        let mut scopes = scopes;
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            return Err(ClientError::NoScope);
        }
        if let Grantor::System { holds } = grantor
            && let Some(missing) = scopes.iter().find(|s| !holds.contains(s))
        {
            return Err(ClientError::NotHeld(*missing));
        }
        if !self.store.has_system(org, system).await? {
            return Err(ClientError::NotFound);
        }
        let issued = self.secrets.issue();
        let info = OAuthClientInfo {
            id: OAuthClientId::new(),
            org_id: org,
            system_id: system,
            scopes,
            secret_prefix: issued.prefix.clone(),
            created_at: self.clock.now(),
            revoked_at: None,
        };
        self.store
            .insert_client(&StoredClient {
                info: info.clone(),
                secret_hash: issued.hash.to_vec(),
            })
            .await?;
        tracing::info!(client_id = %info.id, %org, %system, "oauth client registered");
        Ok(RegisteredClient {
            info,
            secret: issued.plaintext,
        })
    }

    /// The clients of `org`, deleted ones included, newest first.
    pub async fn list_clients(&self, org: OrgId) -> Result<Vec<OAuthClientInfo>, ClientError> {
        Ok(self.store.clients_of_org(org).await?)
    }

    /// Deletes (revokes) a client of `org` and every live token of it, at once. `NotFound` for
    /// another organisation's client.
    #[tracing::instrument(skip(self))]
    pub async fn delete_client(&self, org: OrgId, id: OAuthClientId) -> Result<(), ClientError> {
        if self.store.revoke_client(org, id, self.clock.now()).await? {
            tracing::info!(client_id = %id, %org, "oauth client revoked with its tokens");
            Ok(())
        } else {
            Err(ClientError::NotFound)
        }
    }

    /// Authenticates a client (RFC 6749 §2.3.1). Every failure is `InvalidClient` after the
    /// same work (a hash of the presented secret), whether or not the client exists.
    async fn authenticate_client(
        &self,
        creds: Option<&ClientCredentials>,
    ) -> Result<StoredClient, TokenError> {
        let Some(creds) = creds else {
            return Err(TokenError::InvalidClient);
        };
        let id = uuid::Uuid::parse_str(&creds.client_id)
            .ok()
            .map(OAuthClientId::from_uuid);
        let stored = match id {
            Some(id) => self.store.client(id).await?,
            None => None,
        };
        let Some(stored) = stored else {
            let _ = self.secrets.hash(&creds.client_secret);
            tracing::info!("oauth client authentication refused: unknown client");
            return Err(TokenError::InvalidClient);
        };
        let secret_ok = self.secrets.verify(&creds.client_secret, &stored.secret_hash);
        if !secret_ok || stored.info.revoked_at.is_some() {
            tracing::info!(client_id = %stored.info.id, revoked = stored.info.revoked_at.is_some(), "oauth client authentication refused");
            return Err(TokenError::InvalidClient);
        }
        Ok(stored)
    }

    /// The client-credentials grant (RFC 6749 §4.4): authenticates the client, checks the grant
    /// type and the requested scopes (a subset of the client's; none asked: all of them) and
    /// issues a token living [`OAuthSettings::token_ttl`].
    #[tracing::instrument(skip_all)]
    pub async fn issue_token(
        &self,
        creds: Option<&ClientCredentials>,
        req: &TokenRequest,
    ) -> Result<IssuedToken, TokenError> {
        let grant_type = req
            .grant_type
            .as_deref()
            .ok_or(TokenError::InvalidRequest("grant_type is required"))?;
        let client = self.authenticate_client(creds).await?;
        if grant_type != CLIENT_CREDENTIALS {
            return Err(TokenError::UnsupportedGrantType);
        }
        let scopes = match req.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => client.info.scopes.clone(),
            Some(asked) => {
                let asked = Scope::parse_list(asked)
                    .map_err(|_| TokenError::InvalidScope("unknown scope requested"))?;
                if asked.iter().any(|s| !client.info.scopes.contains(s)) {
                    return Err(TokenError::InvalidScope(
                        "a requested scope is not granted to this client",
                    ));
                }
                asked
            }
        };
        let now = self.clock.now();
        let issued = self.tokens.issue();
        let info = AccessTokenInfo {
            id: AccessTokenId::new(),
            prefix: issued.prefix.clone(),
            client_id: client.info.id,
            org_id: client.info.org_id,
            system_id: client.info.system_id,
            scopes: scopes.clone(),
            issued_at: now,
            expires_at: now + self.settings.token_ttl,
            revoked_at: None,
        };
        self.store
            .insert_token(&StoredAccessToken {
                info: info.clone(),
                hash: issued.hash.to_vec(),
            })
            .await?;
        // Expired tokens are swept here rather than by a background job.
        if let Err(e) = self.store.purge_tokens(now - PURGE_AFTER).await {
            tracing::warn!(error = %e, "old access tokens not purged");
        }
        tracing::info!(client_id = %info.client_id, token_id = %info.id, scope = %scope_string(&scopes), "access token issued");
        Ok(IssuedToken {
            access_token: issued.plaintext,
            expires_in: u64::try_from(self.settings.token_ttl.num_seconds()).unwrap_or(0),
            scopes,
            info,
        })
    }

    /// Token revocation (RFC 7009): authenticates the client and revokes `token` if it is an
    /// access token issued to that client. An unknown, malformed or other client's token is
    /// not an error (§2.2: the answer is the same, and reveals nothing).
    #[tracing::instrument(skip_all)]
    pub async fn revoke_token(
        &self,
        creds: Option<&ClientCredentials>,
        token: Option<&str>,
    ) -> Result<(), TokenError> {
        let token = token.ok_or(TokenError::InvalidRequest("token is required"))?;
        let client = self.authenticate_client(creds).await?;
        let Some(prefix) = self.tokens.prefix_of(token) else {
            return Ok(());
        };
        let Some(stored) = self.store.token_by_prefix(prefix).await? else {
            return Ok(());
        };
        if !self.tokens.verify(token, &stored.hash) || stored.info.client_id != client.info.id {
            return Ok(());
        }
        self.store.revoke_token(stored.info.id, self.clock.now()).await?;
        tracing::info!(client_id = %client.info.id, token_id = %stored.info.id, "access token revoked");
        Ok(())
    }

    /// Authenticates a presented access token (see [`crate::IdentityApi::authenticate_access_token`]):
    /// the caller is the client's system with the token's scopes and the token's expiry.
    pub async fn authenticate_access_token(&self, presented: &str) -> Result<Caller, AuthError> {
        if presented.is_empty() {
            return Err(AuthError::Missing);
        }
        let prefix = self.tokens.prefix_of(presented).ok_or(AuthError::Invalid)?;
        let stored = self
            .store
            .token_by_prefix(prefix)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "access token lookup failed");
                AuthError::Unavailable
            })?
            .ok_or(AuthError::Invalid)?;
        if !self.tokens.verify(presented, &stored.hash) {
            return Err(AuthError::Invalid);
        }
        if stored.info.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if self.clock.now() >= stored.info.expires_at {
            return Err(AuthError::Invalid);
        }
        let t = stored.info;
        Ok(Caller::access_token(
            t.org_id,
            t.system_id,
            &t.scopes,
            t.expires_at,
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::model::SystemInfo;
    use std::sync::Mutex;

    /// Systems and OAuth rows in memory.
    #[derive(Debug, Default)]
    struct Fake {
        systems: Mutex<Vec<SystemInfo>>,
        clients: Mutex<Vec<StoredClient>>,
        tokens: Mutex<Vec<StoredAccessToken>>,
    }

    #[async_trait::async_trait]
    impl OAuthStore for Fake {
        async fn has_system(&self, org: OrgId, id: SystemId) -> Result<bool, StoreError> {
            Ok(self
                .systems
                .lock()
                .unwrap()
                .iter()
                .any(|s| s.id == id && s.org_id == org))
        }
        async fn insert_client(&self, c: &StoredClient) -> Result<(), StoreError> {
            self.clients.lock().unwrap().push(c.clone());
            Ok(())
        }
        async fn client(&self, id: OAuthClientId) -> Result<Option<StoredClient>, StoreError> {
            Ok(self
                .clients
                .lock()
                .unwrap()
                .iter()
                .find(|c| c.info.id == id)
                .cloned())
        }
        async fn clients_of_org(&self, org: OrgId) -> Result<Vec<OAuthClientInfo>, StoreError> {
            Ok(self
                .clients
                .lock()
                .unwrap()
                .iter()
                .filter(|c| c.info.org_id == org)
                .map(|c| c.info.clone())
                .collect())
        }
        async fn revoke_client(
            &self,
            org: OrgId,
            id: OAuthClientId,
            at: DateTime<Utc>,
        ) -> Result<bool, StoreError> {
            let mut clients = self.clients.lock().unwrap();
            let Some(c) = clients
                .iter_mut()
                .find(|c| c.info.id == id && c.info.org_id == org)
            else {
                return Ok(false);
            };
            c.info.revoked_at.get_or_insert(at);
            for t in self
                .tokens
                .lock()
                .unwrap()
                .iter_mut()
                .filter(|t| t.info.client_id == id)
            {
                t.info.revoked_at.get_or_insert(at);
            }
            Ok(true)
        }
        async fn insert_token(&self, t: &StoredAccessToken) -> Result<(), StoreError> {
            self.tokens.lock().unwrap().push(t.clone());
            Ok(())
        }
        async fn token_by_prefix(&self, prefix: &str) -> Result<Option<StoredAccessToken>, StoreError> {
            Ok(self
                .tokens
                .lock()
                .unwrap()
                .iter()
                .find(|t| t.info.prefix == prefix)
                .cloned())
        }
        async fn revoke_token(&self, id: AccessTokenId, at: DateTime<Utc>) -> Result<(), StoreError> {
            for t in self.tokens.lock().unwrap().iter_mut().filter(|t| t.info.id == id) {
                t.info.revoked_at.get_or_insert(at);
            }
            Ok(())
        }
        async fn purge_tokens(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
            let mut tokens = self.tokens.lock().unwrap();
            let n = tokens.len();
            tokens.retain(|t| t.info.expires_at >= before);
            Ok((n - tokens.len()) as u64)
        }
    }

    struct World {
        oauth: OAuthService<Fake>,
        clock: Arc<ManualClock>,
        org: OrgId,
        system: SystemId,
    }

    fn world() -> World {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let fake = Fake::default();
        let org = OrgId::new();
        let system = SystemId::new();
        fake.systems.lock().unwrap().push(SystemInfo {
            id: system,
            org_id: org,
            name: "Cổng dữ liệu".into(),
            created_at: Utc::now(),
        });
        let oauth = OAuthService::new(
            fake,
            &KeyedHasher::new(&[9u8; 32]),
            clock.clone(),
            OAuthSettings::default(),
        );
        World {
            oauth,
            clock,
            org,
            system,
        }
    }

    fn creds(c: &RegisteredClient) -> ClientCredentials {
        ClientCredentials {
            client_id: c.info.id.to_string(),
            client_secret: c.secret.clone(),
        }
    }

    fn grant(scope: Option<&str>) -> TokenRequest {
        TokenRequest {
            grant_type: Some(CLIENT_CREDENTIALS.into()),
            scope: scope.map(str::to_owned),
        }
    }

    async fn client(w: &World, scopes: Option<Vec<Scope>>) -> RegisteredClient {
        w.oauth
            .register_client(w.org, w.system, scopes, &Grantor::Administrator)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_token_carries_the_asked_scopes_its_system_and_expiry() {
        let w = world();
        let c = client(&w, None).await;
        assert_eq!(c.info.scopes, Scope::DEFAULT.to_vec());
        assert!(c.secret.starts_with("etxcs_"));
        let t = w
            .oauth
            .issue_token(Some(&creds(&c)), &grant(Some("records:read")))
            .await
            .unwrap();
        assert!(t.access_token.starts_with("etxat_"));
        assert_eq!(t.expires_in, 600);
        assert_eq!(t.scope(), "records:read");
        let caller = w.oauth.authenticate_access_token(&t.access_token).await.unwrap();
        assert_eq!(caller.org_id, w.org);
        assert_eq!(caller.system_id, Some(w.system));
        assert_eq!(caller.key_id, None);
        assert_eq!(caller.scopes, vec!["records:read".to_owned()]);
        assert_eq!(caller.expires_at, Some(t.info.expires_at));
        // No scope asked: every scope of the client.
        let all = w.oauth.issue_token(Some(&creds(&c)), &grant(None)).await.unwrap();
        assert_eq!(all.scopes, Scope::DEFAULT.to_vec());
    }

    #[tokio::test]
    async fn scopes_beyond_the_clients_or_unknown_are_invalid_scope() {
        let w = world();
        let c = client(&w, Some(vec![Scope::RecordsRead])).await;
        for asked in ["records:write", "records:read admin"] {
            let e = w
                .oauth
                .issue_token(Some(&creds(&c)), &grant(Some(asked)))
                .await
                .unwrap_err();
            assert_eq!(e.rfc_code(), Some("invalid_scope"), "{asked}");
        }
    }

    #[tokio::test]
    async fn client_authentication_failures_all_look_the_same() {
        let w = world();
        let c = client(&w, None).await;
        let other = client(&w, None).await;
        let cases = [
            ClientCredentials {
                client_id: c.info.id.to_string(),
                client_secret: other.secret.clone(),
            },
            ClientCredentials {
                client_id: OAuthClientId::new().to_string(),
                client_secret: c.secret.clone(),
            },
            ClientCredentials {
                client_id: "not-a-uuid".into(),
                client_secret: c.secret.clone(),
            },
        ];
        for creds in &cases {
            let e = w.oauth.issue_token(Some(creds), &grant(None)).await.unwrap_err();
            assert_eq!(e.rfc_code(), Some("invalid_client"), "{creds:?}");
        }
        let e = w.oauth.issue_token(None, &grant(None)).await.unwrap_err();
        assert_eq!(e.rfc_code(), Some("invalid_client"));
        // The grant type is judged only for an authenticated client.
        let wrong_grant = TokenRequest {
            grant_type: Some("password".into()),
            scope: None,
        };
        let e = w
            .oauth
            .issue_token(Some(&cases[1]), &wrong_grant)
            .await
            .unwrap_err();
        assert_eq!(e.rfc_code(), Some("invalid_client"));
        let e = w
            .oauth
            .issue_token(Some(&creds(&c)), &wrong_grant)
            .await
            .unwrap_err();
        assert_eq!(e.rfc_code(), Some("unsupported_grant_type"));
        let e = w
            .oauth
            .issue_token(Some(&creds(&c)), &TokenRequest::default())
            .await
            .unwrap_err();
        assert_eq!(e.rfc_code(), Some("invalid_request"));
    }

    #[tokio::test]
    async fn an_expired_token_is_invalid_and_a_revoked_one_revoked() {
        let w = world();
        let c = client(&w, None).await;
        let t = w.oauth.issue_token(Some(&creds(&c)), &grant(None)).await.unwrap();
        w.clock.advance(TimeDelta::seconds(599));
        assert!(w.oauth.authenticate_access_token(&t.access_token).await.is_ok());
        w.clock.advance(TimeDelta::seconds(1));
        assert_eq!(
            w.oauth.authenticate_access_token(&t.access_token).await,
            Err(AuthError::Invalid)
        );
        let t = w.oauth.issue_token(Some(&creds(&c)), &grant(None)).await.unwrap();
        w.oauth
            .revoke_token(Some(&creds(&c)), Some(&t.access_token))
            .await
            .unwrap();
        assert_eq!(
            w.oauth.authenticate_access_token(&t.access_token).await,
            Err(AuthError::Revoked)
        );
    }

    #[tokio::test]
    async fn only_the_owning_client_revokes_and_unknown_tokens_are_fine() {
        let w = world();
        let c = client(&w, None).await;
        let other = client(&w, None).await;
        let t = w.oauth.issue_token(Some(&creds(&c)), &grant(None)).await.unwrap();
        w.oauth
            .revoke_token(Some(&creds(&other)), Some(&t.access_token))
            .await
            .unwrap();
        assert!(w.oauth.authenticate_access_token(&t.access_token).await.is_ok());
        for unknown in ["", "x", c.secret.as_str()] {
            w.oauth
                .revoke_token(Some(&creds(&c)), Some(unknown))
                .await
                .unwrap();
        }
        let e = w
            .oauth
            .revoke_token(None, Some(&t.access_token))
            .await
            .unwrap_err();
        assert_eq!(e.rfc_code(), Some("invalid_client"));
        let e = w.oauth.revoke_token(Some(&creds(&c)), None).await.unwrap_err();
        assert_eq!(e.rfc_code(), Some("invalid_request"));
    }

    #[tokio::test]
    async fn deleting_a_client_revokes_its_tokens_and_its_credentials() {
        let w = world();
        let c = client(&w, None).await;
        let t = w.oauth.issue_token(Some(&creds(&c)), &grant(None)).await.unwrap();
        assert!(matches!(
            w.oauth.delete_client(OrgId::new(), c.info.id).await,
            Err(ClientError::NotFound)
        ));
        w.oauth.delete_client(w.org, c.info.id).await.unwrap();
        assert_eq!(
            w.oauth.authenticate_access_token(&t.access_token).await,
            Err(AuthError::Revoked)
        );
        let e = w
            .oauth
            .issue_token(Some(&creds(&c)), &grant(None))
            .await
            .unwrap_err();
        assert_eq!(e.rfc_code(), Some("invalid_client"));
        assert!(w.oauth.list_clients(w.org).await.unwrap()[0].revoked_at.is_some());
    }

    #[tokio::test]
    async fn secrets_are_not_tokens_and_a_system_grants_only_what_it_holds() {
        let w = world();
        let c = client(&w, None).await;
        assert_eq!(
            w.oauth.authenticate_access_token(&c.secret).await,
            Err(AuthError::Invalid)
        );
        assert_eq!(
            w.oauth.authenticate_access_token("").await,
            Err(AuthError::Missing)
        );
        let holds = Grantor::System {
            holds: vec![Scope::RecordsRead, Scope::KeysManage],
        };
        let own = w
            .oauth
            .register_client(w.org, w.system, None, &holds)
            .await
            .unwrap();
        assert_eq!(own.info.scopes, vec![Scope::RecordsRead, Scope::KeysManage]);
        assert!(matches!(
            w.oauth
                .register_client(w.org, w.system, Some(vec![Scope::RecordsWrite]), &holds)
                .await,
            Err(ClientError::NotHeld(Scope::RecordsWrite))
        ));
        assert!(matches!(
            w.oauth
                .register_client(w.org, w.system, Some(vec![]), &Grantor::Administrator)
                .await,
            Err(ClientError::NoScope)
        ));
        assert!(matches!(
            w.oauth
                .register_client(OrgId::new(), w.system, None, &Grantor::Administrator)
                .await,
            Err(ClientError::NotFound)
        ));
    }

    #[test]
    fn token_lifetimes_are_bounded() {
        assert!(OAuthSettings::with_token_ttl_secs(59).is_err());
        assert!(OAuthSettings::with_token_ttl_secs(3601).is_err());
        assert_eq!(
            OAuthSettings::with_token_ttl_secs(60).unwrap().token_ttl(),
            TimeDelta::seconds(60)
        );
        assert_eq!(OAuthSettings::default().token_ttl(), TimeDelta::seconds(600));
        assert!(looks_like_access_token("etxat_x"));
        assert!(!looks_like_access_token("etx_x"));
    }
}
