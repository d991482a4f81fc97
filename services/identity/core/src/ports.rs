//! The ports of identity: the stores it needs (sources and keys; people, sessions and sign-in
//! attempts) and the API it offers to other services.

use crate::account::{SessionId, SessionState, UserInfo, Username};
use crate::connection::ConfigChange;
use crate::model::{ApiKeyInfo, AuthError, Caller, SystemInfo};
use crate::oidc::PendingOidcLogin;
use chrono::{DateTime, Utc};
use etx_crypto::WrappedDataKey;
use etx_domain::{ApiKeyId, OrgCode, OrgId, Organisation, SystemId, UserId};

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
    /// Public facts, with its policy (scopes, expiry, allow-list) and rotation links; the
    /// store keeps all of them.
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
    /// One key of `org`, revoked or not. MUST return `Ok(None)` when unknown or another
    /// organisation's.
    async fn key(&self, org: OrgId, id: ApiKeyId) -> Result<Option<ApiKeyInfo>, StoreError>;
    /// Rotation (issue 4 §5), in one transaction: stores `successor` (whose `rotated_from` is
    /// `old`) and sets the old key's expiry to `old_expires_at` and its `replaced_by` to the
    /// successor. MUST return `Ok(false)` and change nothing when `old` is not a key of `org`,
    /// is revoked, or already has a successor — also when another rotation of it commits first.
    async fn rotate_key(
        &self,
        org: OrgId,
        old: ApiKeyId,
        old_expires_at: DateTime<Utc>,
        successor: &KeyMaterial,
    ) -> Result<bool, StoreError>;
    /// Records a configuration-change declaration (Art. 10.4) and, in the same transaction, its
    /// notification on the stream `events.config` (the outbox): both or neither.
    async fn insert_config_change(&self, change: &ConfigChange) -> Result<(), StoreError>;
    /// The declarations of `system` of `org`, newest first, at most `limit`; only those declared
    /// strictly before `before` when given. Empty for another organisation's system.
    async fn config_changes(
        &self,
        org: OrgId,
        system: SystemId,
        before: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<ConfigChange>, StoreError>;
    /// Readiness probe.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// A stored account: its public facts and its password's PHC string (argon2id).
#[derive(Debug, Clone)]
pub struct StoredUser {
    /// Public facts.
    pub info: UserInfo,
    /// `$argon2id$…` PHC string; never the password.
    pub password_hash: String,
}

/// A person's TOTP second factor as stored (R-SEC-6).
#[derive(Debug, Clone)]
pub struct StoredMfa {
    /// The TOTP secret, AES-256-GCM encrypted under a data key of the key ring, bound to the
    /// account by the associated data.
    pub sealed_secret: Vec<u8>,
    /// Whether enrolment was confirmed with a valid code.
    pub confirmed: bool,
    /// The last time step accepted (replay protection).
    pub last_step: Option<i64>,
}

/// A session as stored: a keyed hash of its token, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Its id.
    pub id: SessionId,
    /// Whose.
    pub user_id: UserId,
    /// Keyed hash (HMAC-SHA256) of the token.
    pub token_hash: Vec<u8>,
    /// What it may reach.
    pub state: SessionState,
    /// When it began.
    pub created_at: DateTime<Utc>,
    /// Last time it was seen (refreshed at most once a minute).
    pub last_seen_at: DateTime<Utc>,
    /// Absolute end (created + absolute timeout).
    pub expires_at: DateTime<Utc>,
    /// When it was ended (signed out, timed out, password reset, account disabled).
    pub ended_at: Option<DateTime<Utc>>,
    /// The client's address at sign-in.
    pub ip: Option<String>,
}

/// How a sign-in attempt ended (R-SEC-5; evidence for the early-warning detectors, R-SEC-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoginOutcome {
    /// Signed in.
    Ok,
    /// No account has the submitted username.
    UnknownUser,
    /// Wrong password.
    BadPassword,
    /// Right password, but no second factor given for an enrolled account.
    MfaMissing,
    /// Right password, wrong, expired or replayed second factor.
    BadMfa,
    /// The account is disabled.
    Disabled,
    /// Refused without checking anything: the username or the address is locked out.
    Locked,
}

impl LoginOutcome {
    /// Every outcome.
    pub const ALL: [LoginOutcome; 7] = [
        Self::Ok,
        Self::UnknownUser,
        Self::BadPassword,
        Self::MfaMissing,
        Self::BadMfa,
        Self::Disabled,
        Self::Locked,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::UnknownUser => "unknown_user",
            Self::BadPassword => "bad_password",
            Self::MfaMissing => "mfa_missing",
            Self::BadMfa => "bad_mfa",
            Self::Disabled => "disabled",
            Self::Locked => "locked",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Whether it counts towards a lockout: every failure, but not a refusal because of a
    /// lockout (else a lockout would never end while someone keeps trying).
    pub fn is_failure(self) -> bool {
        !matches!(self, Self::Ok | Self::Locked)
    }
}

/// One sign-in attempt.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    /// When.
    pub at: DateTime<Utc>,
    /// The submitted username, normalised by [`Username::attempt_key`].
    pub username: String,
    /// The account, when one has that username.
    pub user_id: Option<UserId>,
    /// The client's address as the gateway saw it.
    pub ip: Option<String>,
    /// How it ended.
    pub outcome: LoginOutcome,
}

/// Persistence of people, sessions, sign-in attempts and the data keys that encrypt TOTP
/// secrets (R-SEC-5, R-SEC-6). Shared by every identity process through the database, so
/// lockouts and sessions hold across instances.
#[async_trait::async_trait]
pub trait AccountStore: Send + Sync + std::fmt::Debug {
    /// Every organisation (to decide subtrees).
    async fn organisations(&self) -> Result<Vec<Organisation>, StoreError>;
    /// Stores a new account. MUST return `Conflict` when the username is taken.
    async fn insert_user(&self, user: &StoredUser) -> Result<(), StoreError>;
    /// The account with this id; `Ok(None)` when there is none.
    async fn user_by_id(&self, id: UserId) -> Result<Option<StoredUser>, StoreError>;
    /// The account with this (normalised) username; `Ok(None)` when there is none.
    async fn user_by_username(&self, username: &Username) -> Result<Option<StoredUser>, StoreError>;
    /// The accounts whose home organisation is one of `orgs`, by username.
    async fn users_in(&self, orgs: &[OrgId]) -> Result<Vec<UserInfo>, StoreError>;
    /// Writes an account's display name, roles, status, flags and `updated_at`. MUST return
    /// `Ok(())` and change nothing when the account does not exist.
    async fn update_user(&self, info: &UserInfo) -> Result<(), StoreError>;
    /// Replaces an account's password hash and sets `must_change_password`.
    async fn set_password(
        &self,
        id: UserId,
        password_hash: &str,
        must_change: bool,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// An account's second factor, confirmed or pending; `Ok(None)` when none.
    async fn mfa(&self, user: UserId) -> Result<Option<StoredMfa>, StoreError>;
    /// Stores a pending (unconfirmed) second factor, replacing a pending one. MUST return
    /// `Ok(false)` and change nothing when a confirmed one exists.
    async fn put_pending_mfa(
        &self,
        user: UserId,
        sealed: &[u8],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// In one transaction: confirms the pending second factor with `step` as its last used
    /// step, replaces the account's recovery codes by `recovery_hashes` and sets the account's
    /// `mfa_enabled`. MUST return `Ok(false)` and change nothing when there is no pending one.
    async fn confirm_mfa(
        &self,
        user: UserId,
        step: i64,
        recovery_hashes: &[Vec<u8>],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Atomically records `step` as the last used TOTP step if it is later than the stored one.
    /// MUST return `Ok(false)` when it is not (a replay, or a concurrent sign-in won).
    async fn advance_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError>;
    /// Atomically marks an unused recovery code of `user` used. MUST return `Ok(false)` when
    /// no unused code of that account has this hash.
    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &[u8],
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Unused recovery codes left.
    async fn recovery_codes_left(&self, user: UserId) -> Result<u64, StoreError>;
    /// Stores a new session.
    async fn insert_session(&self, session: &StoredSession) -> Result<(), StoreError>;
    /// The session with this token hash, ended or not; `Ok(None)` when unknown.
    async fn session_by_token_hash(&self, hash: &[u8]) -> Result<Option<StoredSession>, StoreError>;
    /// Sets a session's `last_seen_at`.
    async fn touch_session(&self, id: SessionId, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Sets a session's state.
    async fn set_session_state(&self, id: SessionId, state: SessionState) -> Result<(), StoreError>;
    /// Ends a session (no effect when already ended).
    async fn end_session(&self, id: SessionId, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// Ends every live session of `user` but `except`; returns how many.
    async fn end_sessions_of(
        &self,
        user: UserId,
        except: Option<SessionId>,
        at: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Deletes sessions that ended or expired before `before`; returns how many.
    async fn purge_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Records a sign-in attempt.
    async fn record_attempt(&self, attempt: &LoginAttempt) -> Result<(), StoreError>;
    /// Times of failed attempts ([`LoginOutcome::is_failure`]) for this submitted username since
    /// `since` and since its last successful sign-in, newest first, at most `limit`.
    async fn failures_of_username(
        &self,
        username: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DateTime<Utc>>, StoreError>;
    /// Times of failed attempts from this address since `since`, newest first, at most `limit`.
    async fn failures_from_ip(
        &self,
        ip: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<DateTime<Utc>>, StoreError>;
    /// Stores a wrapped data key (identity's own, for TOTP secrets).
    async fn insert_data_key(&self, key: &WrappedDataKey) -> Result<(), StoreError>;
    /// A stored data key; `Ok(None)` when unknown.
    async fn data_key(&self, id: uuid::Uuid) -> Result<Option<WrappedDataKey>, StoreError>;
    /// Every stored data key.
    async fn data_keys(&self) -> Result<Vec<WrappedDataKey>, StoreError>;
    /// Replaces a stored data key's wrapping (master-key rotation).
    async fn replace_data_key(&self, key: &WrappedDataKey) -> Result<(), StoreError>;
    /// Stores a started OpenID Connect sign-in (issue 4 §4).
    async fn insert_oidc_login(&self, login: &PendingOidcLogin) -> Result<(), StoreError>;
    /// Removes the started sign-in whose state hash is `state_hash` and returns it, expired or
    /// not (the caller checks). MUST return `Ok(None)` when there is none, and MUST hand a
    /// sign-in to at most one caller, also when several ask at once: a state is used once.
    async fn take_oidc_login(&self, state_hash: &[u8]) -> Result<Option<PendingOidcLogin>, StoreError>;
    /// Deletes started sign-ins that expired before `before`; returns how many.
    async fn purge_oidc_logins(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// What the early-warning detectors read and remember (R-SEC-7): recent sign-in attempts, and
/// the alerts already raised, so that one incident raises one event however long it lasts and
/// however many identity instances see it.
///
/// An alert is identified by its kind and subject (e.g. `auth.brute_force` and a username) and
/// is *quiet* until its `quiet_until`: while quiet, no new event of that kind and subject is
/// raised.
#[async_trait::async_trait]
pub trait WarningStore: Send + Sync + std::fmt::Debug {
    /// Rejected attempts (every outcome but [`LoginOutcome::Ok`]) for this submitted username
    /// at or after `since`, newest first, at most `limit`.
    async fn rejections_of_username(
        &self,
        username: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LoginAttempt>, StoreError>;
    /// Rejected attempts from this address at or after `since`, newest first, at most `limit`.
    async fn rejections_from_ip(
        &self,
        ip: &str,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<LoginAttempt>, StoreError>;
    /// The distinct addresses of `user`'s successful sign-ins at or after `since` and strictly
    /// before `before`, at most `limit`. Sign-ins without an address are left out.
    async fn sign_in_addresses(
        &self,
        user: UserId,
        since: DateTime<Utc>,
        before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Whether `user` ever signed in successfully strictly before `before`.
    async fn signed_in_before(&self, user: UserId, before: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Atomically claims the right to raise the alert `(kind, subject)` at `now`: when it is
    /// unknown or no longer quiet (`quiet_until <= now`), records `event_key`, `now` and
    /// `quiet_until` and MUST return `Ok(true)`; when it is quiet, MUST change nothing and
    /// return `Ok(false)`. Of concurrent claims (several instances), exactly one wins.
    async fn claim_alert(
        &self,
        kind: &str,
        subject: &str,
        event_key: &str,
        now: DateTime<Utc>,
        quiet_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Keeps a quiet alert quiet: when `(kind, subject)` is quiet at `now`, moves its
    /// `quiet_until` to `quiet_until` and MUST return `Ok(true)`; otherwise MUST change
    /// nothing and return `Ok(false)`.
    async fn extend_alert(
        &self,
        kind: &str,
        subject: &str,
        now: DateTime<Utc>,
        quiet_until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Gives up a claim whose event could not be emitted, so that the next detection raises it
    /// again: the alert stops being quiet. No effect when unknown.
    async fn release_alert(&self, kind: &str, subject: &str) -> Result<(), StoreError>;
}

/// What identity offers other services (the gateway), in-process or over HTTP.
#[async_trait::async_trait]
pub trait IdentityApi: Send + Sync + std::fmt::Debug {
    /// Authenticates a presented API key. MUST return `Missing` for an empty string, `Invalid`
    /// for anything malformed or unknown, `Revoked` for a revoked key (from the moment of
    /// revocation), `Unavailable` when it cannot decide. `client_ip` is the client's address
    /// as the gateway saw it: evidence of the early warning on a revoked key (R-SEC-7).
    async fn authenticate_api_key(
        &self,
        presented: &str,
        client_ip: Option<&str>,
    ) -> Result<Caller, AuthError>;

    /// Authenticates a session token from the `etx_session` cookie (R-SEC-5). MUST return
    /// `Missing` for an empty string, `Invalid` for anything malformed or unknown, `Expired` for
    /// a session that was ended or passed its idle or absolute timeout or whose account is
    /// disabled, `Unavailable` when it cannot decide. On success the caller carries the
    /// account's current roles and the session's state and anti-forgery token hash; the
    /// session's last-seen time is refreshed at most once a minute.
    async fn authenticate_session(&self, token: &str) -> Result<Caller, AuthError>;

    /// Authenticates an OAuth2 access token from `Authorization: Bearer` (R-SEC-1, RFC 6750).
    /// MUST return `Missing` for an empty string, `Invalid` for anything malformed, unknown or
    /// expired (an API key or a client secret is malformed here), `Revoked` for a token revoked
    /// or whose client was deleted (from that moment on), `Unavailable` when it cannot decide.
    /// On success the caller is the client's system with the token's scopes, no API key, and
    /// the token's expiry in `expires_at`.
    async fn authenticate_access_token(&self, token: &str) -> Result<Caller, AuthError>;
}
