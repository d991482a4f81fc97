//! People's use cases (R-SEC-5, R-SEC-6): signing in with a password and a TOTP second factor,
//! sessions with idle and absolute timeouts, lockout per account and per address, MFA
//! enrolment with recovery codes, password changes, and administration of accounts within an
//! organisation subtree.
//!
//! # Signing in
//! 1. A username or address with too many recent failures is refused at once (`Locked`, with
//!    the seconds until the lockout lifts), without checking anything.
//! 2. The password is verified (argon2id, on the blocking pool); for an unknown username a
//!    dummy hash is verified instead, so that timing does not tell which usernames exist.
//! 3. An account with a confirmed second factor must also give a TOTP code (current step ± 1,
//!    later than the last accepted one) or an unused recovery code.
//!
//! Every failure answers the same way whatever went wrong: `MfaRequired` when no second factor
//! was given, `InvalidMfaCode` when one was — so neither the existence of the username nor the
//! correctness of the password is revealed, and an enrolled account never signs in without its
//! second factor. The only sign-in without a second factor is the right password of an account
//! that has none yet: its session may then only enrol one (and change a temporary password
//! first), see [`SessionState`]. Every attempt is recorded with its real outcome, then shown to
//! the early warning (R-SEC-7, [`crate::watch`]), which can neither fail nor change the answer.
//!
//! # Lockout
//! `account_failures` failures for one submitted username (existing or not) within `window`,
//! counted since its last successful sign-in, lock that username; `ip_failures` failures from
//! one address within `window` lock that address for every username. A refusal because of a
//! lockout is recorded but does not count, so the lockout lifts `window` after the failure
//! that caused it. Attempts live in the database, so every identity instance sees them.

use crate::account::{
    DisplayName, Invalid, Role, Roles, SessionId, SessionState, UserInfo, UserStatus, Username,
};
use crate::clock::Clock;
use crate::model::{AuthError, Caller, SessionFacts};
use crate::password::{self, PasswordHasher};
use crate::ports::{
    AccountStore, IdentityStore, LoginAttempt, LoginOutcome, StoreError, StoredSession, StoredUser,
};
use crate::totp::{self, TotpSecret};
use crate::watch::{NoWatch, SecurityWatch};
use chrono::{DateTime, TimeDelta, Utc};
use etx_crypto::{Aad, CryptoError, KeyRing, KeyedHasher};
use etx_domain::{FieldViolation, OrgCode, OrgId, OrgTree, UserId, ViolationCode};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use zeroize::Zeroizing;

mod oidc;
pub use oidc::{OidcCallback, OidcError, OidcSignIn, OidcStart};

/// Keyed-hash purposes (domain separation).
const TOKEN_PURPOSE: &str = "session-token";
const CSRF_PURPOSE: &str = "session-csrf";
const RECOVERY_PURPOSE: &str = "recovery-code";

/// The organisation half of the associated data that binds an encrypted TOTP secret to its
/// account, so that such a blob can never pass for a record's payload.
const MFA_AAD_NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6574_7868_7562_4d46_4100_0000_0000_0001);

/// How many recovery codes an enrolment hands out.
pub const RECOVERY_CODES: usize = 10;
const RECOVERY_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// Lockout thresholds (R-SEC-5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures for one username within `window` that lock it.
    pub account_failures: u32,
    /// Failures from one address within `window` that lock it.
    pub ip_failures: u32,
    /// The window, and how long a lockout lasts after the failure that caused it.
    pub window: TimeDelta,
}

/// Session and lockout settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountSettings {
    /// A session unused for this long ends.
    pub idle_timeout: TimeDelta,
    /// A session ends this long after sign-in, used or not.
    pub absolute_timeout: TimeDelta,
    /// Least time between two refreshes of a session's last-seen time (one write a minute,
    /// not one per request).
    pub touch_every: TimeDelta,
    /// Lockout thresholds.
    pub lockout: LockoutPolicy,
}

impl Default for AccountSettings {
    fn default() -> Self {
        Self {
            idle_timeout: TimeDelta::minutes(30),
            absolute_timeout: TimeDelta::hours(12),
            touch_every: TimeDelta::minutes(1),
            lockout: LockoutPolicy {
                account_failures: 5,
                ip_failures: 20,
                window: TimeDelta::minutes(15),
            },
        }
    }
}

/// The second factor given at sign-in.
#[derive(Debug, Clone)]
pub enum SecondFactor {
    /// A 6-digit TOTP code.
    Totp(String),
    /// One of the recovery codes handed out at enrolment.
    Recovery(Zeroizing<String>),
}

/// A sign-in request.
#[derive(Debug, Clone)]
pub struct LoginRequest {
    /// As typed.
    pub username: String,
    /// As typed.
    pub password: Zeroizing<String>,
    /// The second factor, if given.
    pub second_factor: Option<SecondFactor>,
    /// The client's address as the gateway saw it.
    pub ip: Option<String>,
}

/// Why a sign-in was refused.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Refused without a second factor (whatever the cause, see the module docs).
    #[error("a second factor is required")]
    MfaRequired,
    /// Refused with a second factor (whatever the cause, see the module docs).
    #[error("the second factor is wrong")]
    InvalidMfaCode,
    /// The username or the address is locked out.
    #[error("locked for {retry_after_secs} s")]
    Locked {
        /// Seconds until the lockout lifts.
        retry_after_secs: u64,
    },
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl From<StoreError> for LoginError {
    fn from(e: StoreError) -> Self {
        Self::Unknown(e.into())
    }
}

/// Why an account or session use case failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The account does not exist or lies outside the caller's organisation subtree.
    #[error("not found")]
    NotFound,
    /// The caller lacks the role (only `system_admin` manages accounts).
    #[error("forbidden")]
    Forbidden,
    /// The username is taken, or a second factor is already enrolled.
    #[error("already exists")]
    Conflict,
    /// Input breaks its rules; one violation per field and rule.
    #[error("invalid input")]
    Invalid(Vec<FieldViolation>),
    /// The current password is wrong.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The TOTP code is wrong, expired or already used.
    #[error("invalid second-factor code")]
    InvalidMfaCode,
    /// Too many failures for the account.
    #[error("locked for {retry_after_secs} s")]
    Locked {
        /// Seconds until the lockout lifts.
        retry_after_secs: u64,
    },
    /// The session has ended.
    #[error("session expired")]
    SessionExpired,
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict => Self::Conflict,
            StoreError::Unknown(e) => Self::Unknown(e),
        }
    }
}

/// A session as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionView {
    /// The account.
    pub user: UserInfo,
    /// The session.
    pub session_id: SessionId,
    /// What it may reach.
    pub state: SessionState,
    /// The anti-forgery token to send as `X-CSRF-Token` with every state-changing request.
    pub csrf_token: String,
    /// Absolute end.
    pub expires_at: DateTime<Utc>,
    /// End if unused from now on.
    pub idle_expires_at: DateTime<Utc>,
}

/// A successful sign-in: the token for the cookie (shown once, never stored) and the session.
#[derive(Debug)]
pub struct SessionGrant {
    /// The session token (256 random bits, base64url).
    pub token: Zeroizing<String>,
    /// The session.
    pub view: SessionView,
}

/// A started MFA enrolment: what the authenticator app needs.
#[derive(Debug)]
pub struct Enrolment {
    /// The `otpauth://totp/…` URI (issuer "ETX Hub", account = username).
    pub otpauth_uri: Zeroizing<String>,
    /// The secret in base32, for typing it in.
    pub secret_base32: Zeroizing<String>,
}

/// The person acting, as the gateway authenticated them.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The account.
    pub user_id: UserId,
    /// Its home organisation.
    pub org_id: OrgId,
    /// Its roles.
    pub roles: Vec<Role>,
    /// The client's address.
    pub ip: Option<String>,
}

impl Actor {
    fn require_admin(&self) -> Result<(), AccountError> {
        if self.roles.contains(&Role::SystemAdmin) {
            Ok(())
        } else {
            Err(AccountError::Forbidden)
        }
    }
}

/// A new account, as an administrator (or the bootstrap command) asks for it.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Username.
    pub username: String,
    /// Display name (default: the username).
    pub display_name: Option<String>,
    /// Home organisation (default: the administrator's).
    pub org_id: Option<OrgId>,
    /// Role names.
    pub roles: Vec<String>,
    /// Temporary password; generated when absent.
    pub temporary_password: Option<Zeroizing<String>>,
}

/// A created account; the generated temporary password is shown once.
#[derive(Debug)]
pub struct CreatedUser {
    /// The account.
    pub user: UserInfo,
    /// The temporary password, when it was generated.
    pub temporary_password: Option<Zeroizing<String>>,
}

/// Changes to an account.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    /// New display name.
    pub display_name: Option<String>,
    /// New role names.
    pub roles: Option<Vec<String>>,
    /// `active` or `disabled`.
    pub status: Option<String>,
}

/// The seconds until a lockout lifts, given the failures counted (newest first): locked when
/// there are at least `threshold`, until the `threshold`-th newest leaves the window. At least
/// one second.
pub fn lockout_retry(
    failures_newest_first: &[DateTime<Utc>],
    threshold: u32,
    window: TimeDelta,
    now: DateTime<Utc>,
) -> Option<u64> {
    let threshold = usize::try_from(threshold).ok()?.max(1);
    let pivot = failures_newest_first.get(threshold - 1)?;
    let lifts = *pivot + window;
    if lifts <= now {
        return None;
    }
    let ms = (lifts - now).num_milliseconds().max(0);
    Some(u64::try_from((ms + 999) / 1000).unwrap_or(1).max(1))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value, or `None` with its violation at `path` recorded.
fn keep<T>(r: Result<T, Invalid>, path: &str, violations: &mut Vec<FieldViolation>) -> Option<T> {
    r.map_err(|e| violations.push(e.at(path))).ok()
}

fn invalid(v: Vec<FieldViolation>) -> AccountError {
    AccountError::Invalid(v)
}

/// Session tokens are 32 random bytes in base64url: anything else is not worth a lookup.
fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The people half of identity, generic over its store.
#[derive(Debug)]
pub struct Accounts<S> {
    store: S,
    hasher: Arc<KeyedHasher>,
    ring: Arc<KeyRing>,
    passwords: PasswordHasher,
    clock: Arc<dyn Clock>,
    settings: AccountSettings,
    rotating: tokio::sync::Mutex<()>,
    watch: Arc<dyn SecurityWatch>,
}

impl<S: AccountStore + IdentityStore> Accounts<S> {
    /// The use cases over `store`. `hasher` keys the hashes of session tokens and recovery
    /// codes; `ring` encrypts TOTP secrets and MUST be identity's own ring (its active data key
    /// is managed here, see [`Accounts::prepare_keys`]).
    pub fn new(
        store: S,
        hasher: Arc<KeyedHasher>,
        ring: Arc<KeyRing>,
        clock: Arc<dyn Clock>,
        settings: AccountSettings,
    ) -> Self {
        Self {
            store,
            hasher,
            ring,
            passwords: PasswordHasher::owasp(),
            clock,
            settings,
            rotating: tokio::sync::Mutex::new(()),
            watch: Arc::new(NoWatch),
        }
    }

    /// Tells `watch` of every sign-in attempt (the early warning, R-SEC-7); by default nobody
    /// is told.
    pub fn with_watch(mut self, watch: Arc<dyn SecurityWatch>) -> Self {
        self.watch = watch;
        self
    }

    /// The settings.
    pub fn settings(&self) -> &AccountSettings {
        &self.settings
    }

    /// Prepares the ring at start-up: re-wraps identity's stored data keys that an older
    /// master key wrapped (when the ring still knows that key), so that an old master key can be
    /// retired once every process restarted with the new one. This process's own data key is
    /// created, stored and activated on its first enrolment.
    pub async fn prepare_keys(&self) -> anyhow::Result<()> {
        let active = self.ring.active_master_id().to_owned();
        for key in self.store.data_keys().await? {
            if key.master_key_id == active {
                continue;
            }
            match self.ring.rewrap(&key) {
                Ok(new) => self.store.replace_data_key(&new).await?,
                Err(e) => {
                    tracing::warn!(key_id = %key.id, error = %e, "identity data key not re-wrapped (its master key is not configured)")
                }
            }
        }
        Ok(())
    }

    async fn rotate_key(&self) -> anyhow::Result<()> {
        let _guard = self.rotating.lock().await;
        // Another task may have rotated while this one waited.
        if !self.ring.needs_rotation() {
            return Ok(());
        }
        let wrapped = self.ring.new_data_key();
        self.store.insert_data_key(&wrapped).await?;
        self.ring.activate(wrapped.id)?;
        tracing::info!(key_id = %wrapped.id, "identity data key active");
        Ok(())
    }

    fn aad(user: UserId) -> Aad {
        Aad::new(MFA_AAD_NAMESPACE, user.as_uuid())
    }

    async fn seal(&self, user: UserId, secret: &TotpSecret) -> anyhow::Result<Vec<u8>> {
        if self.ring.needs_rotation() {
            self.rotate_key().await?;
        }
        Ok(self.ring.encrypt(&Self::aad(user), secret.as_bytes())?)
    }

    async fn unseal(&self, user: UserId, blob: &[u8]) -> anyhow::Result<TotpSecret> {
        let aad = Self::aad(user);
        let plain = match self.ring.decrypt(&aad, blob) {
            Err(CryptoError::UnknownDataKey(id)) => {
                let key = self
                    .store
                    .data_key(id)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("identity data key {id} is not stored"))?;
                self.ring.load(&key)?;
                self.ring.decrypt(&aad, blob)?
            }
            other => other?,
        };
        Ok(TotpSecret::from_bytes(plain))
    }

    fn token_hash(&self, token: &str) -> Vec<u8> {
        self.hasher.hash(TOKEN_PURPOSE, token.as_bytes()).to_vec()
    }

    /// The anti-forgery token of a session: derived from its token, so it is never stored and
    /// can be handed out again (`GET /auth/me`).
    fn csrf_of(&self, token: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.hasher.hash(CSRF_PURPOSE, token.as_bytes()))
    }

    fn recovery_hash(&self, user: UserId, code: &str) -> Vec<u8> {
        let normalised: String = code
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let mut value = user.as_uuid().as_bytes().to_vec();
        value.extend_from_slice(normalised.as_bytes());
        self.hasher.hash(RECOVERY_PURPOSE, &value).to_vec()
    }

    async fn hash_password(&self, password: &Zeroizing<String>) -> anyhow::Result<String> {
        let hasher = self.passwords.clone();
        let password = password.clone();
        Ok(tokio::task::spawn_blocking(move || hasher.hash(&password)).await??)
    }

    async fn verify_password(
        &self,
        password: &Zeroizing<String>,
        phc: Option<String>,
    ) -> anyhow::Result<bool> {
        let hasher = self.passwords.clone();
        let password = password.clone();
        Ok(tokio::task::spawn_blocking(move || match phc {
            Some(phc) => hasher.verify(&password, &phc),
            None => hasher.verify_dummy(&password),
        })
        .await?)
    }

    async fn lockout(
        &self,
        username_key: &str,
        ip: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>, StoreError> {
        let policy = self.settings.lockout;
        let since = now - policy.window;
        let by_name = self
            .store
            .failures_of_username(username_key, since, policy.account_failures)
            .await?;
        let mut retry = lockout_retry(&by_name, policy.account_failures, policy.window, now);
        if let Some(ip) = ip {
            let by_ip = self.store.failures_from_ip(ip, since, policy.ip_failures).await?;
            retry = retry.max(lockout_retry(&by_ip, policy.ip_failures, policy.window, now));
        }
        Ok(retry)
    }

    /// Records an attempt, then lets the early warning look at it (it logs its own errors and
    /// never fails the sign-in).
    async fn record(&self, username: &str, user: Option<&UserInfo>, ip: Option<&str>, outcome: LoginOutcome) {
        let attempt = LoginAttempt {
            at: self.clock.now(),
            username: username.to_owned(),
            user_id: user.map(|u| u.id),
            ip: ip.map(str::to_owned),
            outcome,
        };
        if let Err(e) = self.store.record_attempt(&attempt).await {
            tracing::error!(error = %e, "sign-in attempt not recorded");
            return;
        }
        self.watch.sign_in_attempted(&attempt, user).await;
    }

    /// Checks a second factor of an enrolled account and, when valid, consumes it atomically
    /// (the TOTP step becomes the last used one; the recovery code is marked used). Called only
    /// after the password was verified right, so a guessed password cannot burn codes.
    async fn second_factor_ok(
        &self,
        user: &UserInfo,
        factor: &SecondFactor,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        match factor {
            SecondFactor::Totp(code) => {
                let Some(mfa) = self.store.mfa(user.id).await?.filter(|m| m.confirmed) else {
                    return Ok(false);
                };
                let secret = self.unseal(user.id, &mfa.sealed_secret).await?;
                match totp::verify(secret.as_bytes(), code, now.timestamp(), mfa.last_step) {
                    Some(step) => Ok(self.store.advance_totp_step(user.id, step).await?),
                    None => Ok(false),
                }
            }
            SecondFactor::Recovery(code) => {
                let hash = self.recovery_hash(user.id, code);
                Ok(self.store.use_recovery_code(user.id, &hash, now).await?)
            }
        }
    }

    /// Signs a person in (see the module docs). On success the session token is returned once.
    #[tracing::instrument(skip_all, fields(ip = req.ip.as_deref().unwrap_or("-")))]
    pub async fn login(&self, req: LoginRequest) -> Result<SessionGrant, LoginError> {
        let now = self.clock.now();
        let key = Username::attempt_key(&req.username);
        let ip = req.ip.as_deref();
        if let Some(retry_after_secs) = self.lockout(&key, ip, now).await? {
            self.record(&key, None, ip, LoginOutcome::Locked).await;
            tracing::info!(retry_after_secs, "sign-in refused: locked out");
            return Err(LoginError::Locked { retry_after_secs });
        }
        let user = match Username::parse(&req.username) {
            Ok(u) => self.store.user_by_username(&u).await?,
            Err(_) => None,
        };
        let password_ok = self
            .verify_password(&req.password, user.as_ref().map(|u| u.password_hash.clone()))
            .await?;
        let outcome = match &user {
            None => LoginOutcome::UnknownUser,
            Some(u) if u.info.status == UserStatus::Disabled => LoginOutcome::Disabled,
            Some(_) if !password_ok => LoginOutcome::BadPassword,
            Some(u) if !u.info.mfa_enabled => LoginOutcome::Ok,
            Some(u) => match &req.second_factor {
                None => LoginOutcome::MfaMissing,
                Some(f) if self.second_factor_ok(&u.info, f, now).await? => LoginOutcome::Ok,
                Some(_) => LoginOutcome::BadMfa,
            },
        };
        self.record(&key, user.as_ref().map(|u| &u.info), ip, outcome)
            .await;
        let Some(user) = user.filter(|_| outcome == LoginOutcome::Ok) else {
            tracing::info!(outcome = outcome.as_str(), "sign-in refused");
            return Err(if req.second_factor.is_some() {
                LoginError::InvalidMfaCode
            } else {
                LoginError::MfaRequired
            });
        };
        let state = SessionState::for_account(user.info.must_change_password, user.info.mfa_enabled);
        let grant = self.open_session(user.info, req.ip, now, state).await?;
        tracing::info!(user_id = %grant.view.user.id, session_id = %grant.view.session_id, state = grant.view.state.as_str(), "signed in");
        Ok(grant)
    }

    async fn open_session(
        &self,
        user: UserInfo,
        ip: Option<String>,
        now: DateTime<Utc>,
        state: SessionState,
    ) -> anyhow::Result<SessionGrant> {
        // Old sessions are swept here rather than by a background job: sign-ins are rare.
        if let Err(e) = self.store.purge_sessions(now - TimeDelta::days(1)).await {
            tracing::warn!(error = %e, "old sessions not purged");
        }
        let token = Zeroizing::new(crate::random::token(32));
        let session = StoredSession {
            id: SessionId::new(),
            user_id: user.id,
            token_hash: self.token_hash(&token),
            state,
            created_at: now,
            last_seen_at: now,
            expires_at: now + self.settings.absolute_timeout,
            ended_at: None,
            ip,
        };
        self.store.insert_session(&session).await?;
        let view = self.view(&session, user, &token);
        Ok(SessionGrant { token, view })
    }

    fn view(&self, s: &StoredSession, user: UserInfo, token: &str) -> SessionView {
        SessionView {
            user,
            session_id: s.id,
            state: s.state,
            csrf_token: self.csrf_of(token),
            expires_at: s.expires_at,
            idle_expires_at: (s.last_seen_at + self.settings.idle_timeout).min(s.expires_at),
        }
    }

    /// The live session of `token` and its active account; ends a session found past its
    /// timeouts. `Err(None)` when unknown, `Err(Some(()))` when ended.
    async fn live(&self, token: &str) -> Result<Result<(StoredSession, StoredUser), bool>, StoreError> {
        if !plausible_token(token) {
            return Ok(Err(false));
        }
        let Some(s) = self.store.session_by_token_hash(&self.token_hash(token)).await? else {
            return Ok(Err(false));
        };
        if s.ended_at.is_some() {
            return Ok(Err(true));
        }
        let now = self.clock.now();
        let user = self.store.user_by_id(s.user_id).await?;
        let timed_out = now >= s.expires_at || now >= s.last_seen_at + self.settings.idle_timeout;
        let user = match user {
            Some(u) if u.info.status == UserStatus::Active && !timed_out => u,
            _ => {
                self.store.end_session(s.id, now).await?;
                tracing::info!(session_id = %s.id, "session ended (timeout or account disabled)");
                return Ok(Err(true));
            }
        };
        if now - s.last_seen_at >= self.settings.touch_every {
            self.store.touch_session(s.id, now).await?;
            return Ok(Ok((
                StoredSession {
                    last_seen_at: now,
                    ..s
                },
                user,
            )));
        }
        Ok(Ok((s, user)))
    }

    /// The live session of `token`, which must be `actor`'s.
    async fn own_session(
        &self,
        token: &str,
        actor: UserId,
    ) -> Result<(StoredSession, StoredUser), AccountError> {
        match self.live(token).await? {
            Ok((s, u)) if u.info.id == actor => Ok((s, u)),
            _ => Err(AccountError::SessionExpired),
        }
    }

    /// The session of `token` as its owner sees it (`GET /auth/me`).
    pub async fn session_view(&self, token: &str, actor: UserId) -> Result<SessionView, AccountError> {
        let (s, u) = self.own_session(token, actor).await?;
        Ok(self.view(&s, u.info, token))
    }

    /// Ends the session of `token` (signing out). Unknown or ended sessions are fine.
    pub async fn logout(&self, token: &str) -> Result<(), AccountError> {
        if !plausible_token(token) {
            return Ok(());
        }
        if let Some(s) = self.store.session_by_token_hash(&self.token_hash(token)).await?
            && s.ended_at.is_none()
        {
            self.store.end_session(s.id, self.clock.now()).await?;
            tracing::info!(session_id = %s.id, user_id = %s.user_id, "signed out");
        }
        Ok(())
    }

    /// A person changes their own password (also the way out of a temporary one): the current
    /// password must be right (failures count towards the account's lockout), the new one must
    /// meet the policy and differ from it. Every other session of the account ends.
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id))]
    pub async fn change_password(
        &self,
        token: &str,
        actor: &Actor,
        current: Zeroizing<String>,
        new: Zeroizing<String>,
    ) -> Result<SessionView, AccountError> {
        let (s, u) = self.own_session(token, actor.user_id).await?;
        let now = self.clock.now();
        let key = u.info.username.as_str().to_owned();
        if let Some(retry_after_secs) = self.lockout(&key, actor.ip.as_deref(), now).await? {
            return Err(AccountError::Locked { retry_after_secs });
        }
        let mut violations = password::check_policy(&new, u.info.username.as_str(), "/new_password");
        if *new == *current {
            violations.push(
                FieldViolation::new("/new_password", ViolationCode::Invalid)
                    .with_detail("must differ from the current password"),
            );
        }
        if !self
            .verify_password(&current, Some(u.password_hash.clone()))
            .await?
        {
            self.record(
                &key,
                Some(&u.info),
                actor.ip.as_deref(),
                LoginOutcome::BadPassword,
            )
            .await;
            return Err(AccountError::InvalidCredentials);
        }
        if !violations.is_empty() {
            return Err(invalid(violations));
        }
        let phc = self.hash_password(&new).await?;
        self.store.set_password(u.info.id, &phc, false, now).await?;
        let ended = self.store.end_sessions_of(u.info.id, Some(s.id), now).await?;
        let state = SessionState::for_account(false, u.info.mfa_enabled);
        self.store.set_session_state(s.id, state).await?;
        tracing::info!(other_sessions_ended = ended, "password changed");
        let user = UserInfo {
            must_change_password: false,
            updated_at: now,
            ..u.info
        };
        Ok(self.view(&StoredSession { state, ..s }, user, token))
    }

    /// Starts (or restarts) TOTP enrolment for an account that has no confirmed second factor:
    /// a new secret is stored encrypted, pending confirmation. `Conflict` when one is enrolled.
    #[tracing::instrument(skip_all, fields(user_id = %actor))]
    pub async fn enroll_mfa(&self, token: &str, actor: UserId) -> Result<Enrolment, AccountError> {
        let (_, u) = self.own_session(token, actor).await?;
        if u.info.mfa_enabled {
            return Err(AccountError::Conflict);
        }
        let secret = TotpSecret::generate();
        let sealed = self.seal(u.info.id, &secret).await?;
        if !self
            .store
            .put_pending_mfa(u.info.id, &sealed, self.clock.now())
            .await?
        {
            return Err(AccountError::Conflict);
        }
        tracing::info!("MFA enrolment started");
        Ok(Enrolment {
            otpauth_uri: Zeroizing::new(secret.otpauth_uri(u.info.username.as_str())),
            secret_base32: Zeroizing::new(secret.to_base32()),
        })
    }

    /// Confirms the pending enrolment with a code from the app: the second factor becomes
    /// mandatory for this account from now on, and [`RECOVERY_CODES`] single-use recovery
    /// codes are returned — once; only their keyed hashes are stored.
    #[tracing::instrument(skip_all, fields(user_id = %actor))]
    pub async fn confirm_mfa(
        &self,
        token: &str,
        actor: UserId,
        code: &str,
    ) -> Result<Vec<Zeroizing<String>>, AccountError> {
        let (s, u) = self.own_session(token, actor).await?;
        if u.info.mfa_enabled {
            return Err(AccountError::Conflict);
        }
        let Some(pending) = self.store.mfa(u.info.id).await?.filter(|m| !m.confirmed) else {
            return Err(invalid(vec![
                FieldViolation::new("/code", ViolationCode::Invalid)
                    .with_detail("no enrolment in progress: call /api/v1/auth/mfa/enroll first"),
            ]));
        };
        let now = self.clock.now();
        let secret = self.unseal(u.info.id, &pending.sealed_secret).await?;
        let step = totp::verify(secret.as_bytes(), code, now.timestamp(), None)
            .ok_or(AccountError::InvalidMfaCode)?;
        let codes: Vec<Zeroizing<String>> = (0..RECOVERY_CODES)
            .map(|_| {
                let raw = crate::random::string_from(RECOVERY_ALPHABET, 10);
                Zeroizing::new(format!("{}-{}", &raw[..5], &raw[5..]))
            })
            .collect();
        let hashes: Vec<Vec<u8>> = codes.iter().map(|c| self.recovery_hash(u.info.id, c)).collect();
        if !self.store.confirm_mfa(u.info.id, step, &hashes, now).await? {
            return Err(AccountError::Conflict);
        }
        let state = SessionState::for_account(u.info.must_change_password, true);
        self.store.set_session_state(s.id, state).await?;
        tracing::info!("MFA enrolled");
        Ok(codes)
    }

    /// Unused recovery codes of the session's account.
    pub async fn recovery_codes_left(&self, user: UserId) -> Result<u64, AccountError> {
        Ok(self.store.recovery_codes_left(user).await?)
    }

    async fn tree(&self) -> Result<OrgTree, StoreError> {
        Ok(OrgTree::new(self.store.organisations().await?))
    }

    /// The account `id` if it lies in `actor`'s subtree, else `NotFound`.
    async fn managed(&self, actor: &Actor, id: UserId) -> Result<StoredUser, AccountError> {
        actor.require_admin()?;
        let user = self.store.user_by_id(id).await?.ok_or(AccountError::NotFound)?;
        if self.tree().await?.is_within(user.info.org_id, actor.org_id) {
            Ok(user)
        } else {
            Err(AccountError::NotFound)
        }
    }

    fn parse_new(
        req: &NewUser,
        violations: &mut Vec<FieldViolation>,
    ) -> Option<(Username, DisplayName, Roles)> {
        let username = keep(Username::parse(&req.username), "/username", violations);
        let display = keep(
            DisplayName::parse(req.display_name.as_deref().unwrap_or(&req.username)),
            "/display_name",
            violations,
        );
        let roles = keep(Roles::parse(&req.roles), "/roles", violations);
        Some((username?, display?, roles?))
    }

    async fn create(
        &self,
        req: NewUser,
        org_id: OrgId,
        mut violations: Vec<FieldViolation>,
    ) -> Result<CreatedUser, AccountError> {
        let parsed = Self::parse_new(&req, &mut violations);
        if let (Some(p), Some((username, _, _))) = (&req.temporary_password, &parsed) {
            violations.extend(password::check_policy(
                p,
                username.as_str(),
                "/temporary_password",
            ));
        }
        let Some((username, display_name, roles)) = parsed.filter(|_| violations.is_empty()) else {
            return Err(invalid(violations));
        };
        let (password, generated) = match req.temporary_password {
            Some(p) => (p, false),
            None => (password::generate_temporary(&username), true),
        };
        let now = self.clock.now();
        let info = UserInfo {
            id: UserId::new(),
            username,
            display_name,
            org_id,
            roles,
            status: UserStatus::Active,
            must_change_password: true,
            mfa_enabled: false,
            created_at: now,
            updated_at: now,
        };
        let password_hash = self.hash_password(&password).await?;
        self.store
            .insert_user(&StoredUser {
                info: info.clone(),
                password_hash,
            })
            .await?;
        tracing::info!(user_id = %info.id, org_id = %info.org_id, roles = ?info.roles.names(), "account created");
        Ok(CreatedUser {
            user: info,
            temporary_password: generated.then_some(password),
        })
    }

    /// An administrator creates an account in their subtree (default: their own organisation),
    /// with a temporary password they set (checked against the policy) or one generated and
    /// returned once. The account must change it and enrol MFA at its first sign-in.
    #[tracing::instrument(skip_all, fields(admin = %actor.user_id))]
    pub async fn create_user(&self, actor: &Actor, req: NewUser) -> Result<CreatedUser, AccountError> {
        actor.require_admin()?;
        let org = req.org_id.unwrap_or(actor.org_id);
        let mut violations = Vec::new();
        if !self.tree().await?.is_within(org, actor.org_id) {
            violations.push(
                FieldViolation::new("/org_id", ViolationCode::Invalid)
                    .with_detail("not an organisation you administer"),
            );
        }
        self.create(req, org, violations).await
    }

    /// The first administrator of an organisation (`etxhub users add`): always a generated
    /// temporary password, returned once.
    pub async fn bootstrap_user(
        &self,
        org_code: &OrgCode,
        mut req: NewUser,
    ) -> Result<CreatedUser, AccountError> {
        let org = self.store.org_by_code(org_code).await?.ok_or_else(|| {
            invalid(vec![
                FieldViolation::new("/org_code", ViolationCode::Invalid)
                    .with_detail("no organisation has this code"),
            ])
        })?;
        req.temporary_password = None;
        self.create(req, org.id, Vec::new()).await
    }

    /// The accounts of `actor`'s subtree, by username.
    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<UserInfo>, AccountError> {
        actor.require_admin()?;
        let tree = self.tree().await?;
        let orgs: Vec<OrgId> = self
            .store
            .organisations()
            .await?
            .into_iter()
            .map(|o| o.id)
            .filter(|o| tree.is_within(*o, actor.org_id))
            .collect();
        Ok(self.store.users_in(&orgs).await?)
    }

    /// One account of `actor`'s subtree; `NotFound` outside it.
    pub async fn get_user(&self, actor: &Actor, id: UserId) -> Result<UserInfo, AccountError> {
        Ok(self.managed(actor, id).await?.info)
    }

    /// Changes an account's display name, roles or status. Disabling ends its sessions; an
    /// administrator cannot disable or demote themselves (someone must remain able to
    /// administer).
    #[tracing::instrument(skip_all, fields(admin = %actor.user_id, user_id = %id))]
    pub async fn update_user(
        &self,
        actor: &Actor,
        id: UserId,
        patch: UserPatch,
    ) -> Result<UserInfo, AccountError> {
        let user = self.managed(actor, id).await?.info;
        let mut violations = Vec::new();
        let v = &mut violations;
        let display_name = patch
            .display_name
            .as_deref()
            .and_then(|d| keep(DisplayName::parse(d), "/display_name", v));
        let roles = patch
            .roles
            .as_ref()
            .and_then(|r| keep(Roles::parse(r), "/roles", v));
        let status = patch
            .status
            .as_deref()
            .and_then(|s| keep(UserStatus::parse(s), "/status", v));
        if id == actor.user_id {
            if status == Some(UserStatus::Disabled) {
                violations.push(
                    FieldViolation::new("/status", ViolationCode::Invalid)
                        .with_detail("you cannot disable your own account"),
                );
            }
            if roles.as_ref().is_some_and(|r| !r.has(Role::SystemAdmin)) {
                violations.push(
                    FieldViolation::new("/roles", ViolationCode::Invalid)
                        .with_detail("you cannot remove your own system_admin role"),
                );
            }
        }
        if !violations.is_empty() {
            return Err(invalid(violations));
        }
        let now = self.clock.now();
        let updated = UserInfo {
            display_name: display_name.unwrap_or(user.display_name),
            roles: roles.unwrap_or(user.roles),
            status: status.unwrap_or(user.status),
            updated_at: now,
            ..user
        };
        self.store.update_user(&updated).await?;
        if updated.status == UserStatus::Disabled {
            let ended = self.store.end_sessions_of(id, None, now).await?;
            tracing::info!(sessions_ended = ended, "account disabled");
        }
        tracing::info!(roles = ?updated.roles.names(), status = updated.status.as_str(), "account updated");
        Ok(updated)
    }

    /// An administrator resets an account's password: to one they set (checked against the
    /// policy) or a generated one returned once. The account must change it at its next
    /// sign-in, and its sessions end now. Its second factor is kept.
    #[tracing::instrument(skip_all, fields(admin = %actor.user_id, user_id = %id))]
    pub async fn reset_password(
        &self,
        actor: &Actor,
        id: UserId,
        temporary: Option<Zeroizing<String>>,
    ) -> Result<Option<Zeroizing<String>>, AccountError> {
        let user = self.managed(actor, id).await?.info;
        let (password, generated) = match temporary {
            Some(p) => {
                let v = password::check_policy(&p, user.username.as_str(), "/temporary_password");
                if !v.is_empty() {
                    return Err(invalid(v));
                }
                (p, false)
            }
            None => (password::generate_temporary(&user.username), true),
        };
        let now = self.clock.now();
        let phc = self.hash_password(&password).await?;
        self.store.set_password(id, &phc, true, now).await?;
        let ended = self.store.end_sessions_of(id, None, now).await?;
        tracing::info!(sessions_ended = ended, "password reset by an administrator");
        Ok(generated.then_some(password))
    }

    /// Authenticates a session token for the gateway (see [`crate::IdentityApi`]).
    pub async fn authenticate_session(&self, token: &str) -> Result<Caller, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let (s, u) = match self.live(token).await {
            Ok(Ok(found)) => found,
            Ok(Err(true)) => return Err(AuthError::Expired),
            Ok(Err(false)) => return Err(AuthError::Invalid),
            Err(e) => {
                tracing::error!(error = %e, "session lookup failed");
                return Err(AuthError::Unavailable);
            }
        };
        let csrf = self.csrf_of(token);
        Ok(Caller {
            org_id: u.info.org_id,
            system_id: None,
            key_id: None,
            user_id: Some(u.info.id),
            roles: u.info.roles.names(),
            scopes: Vec::new(),
            expires_at: None,
            allowed_networks: Vec::new(),
            session: Some(SessionFacts {
                id: s.id,
                state: s.state,
                csrf_sha256: hex(&Sha256::digest(csrf.as_bytes())),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lockout_lasts_until_the_failure_that_caused_it_leaves_the_window() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let w = TimeDelta::minutes(15);
        let ago = |s: i64| now - TimeDelta::seconds(s);
        assert_eq!(lockout_retry(&[ago(1), ago(2), ago(3), ago(4)], 5, w, now), None);
        assert_eq!(
            lockout_retry(&[ago(0), ago(10), ago(20), ago(30), ago(40)], 5, w, now),
            Some(900 - 40)
        );
        assert_eq!(
            lockout_retry(&[ago(0), ago(900)], 2, w, now),
            None,
            "left the window"
        );
        assert_eq!(lockout_retry(&[ago(0)], 1, w, now), Some(900));
        let just = now - w + TimeDelta::milliseconds(10);
        assert_eq!(lockout_retry(&[just], 1, w, now), Some(1), "at least one second");
    }

    #[test]
    fn only_well_formed_tokens_are_looked_up() {
        assert!(plausible_token(&crate::random::token(32)));
        assert!(!plausible_token(""));
        assert!(!plausible_token(&"a".repeat(44)));
        assert!(!plausible_token(&format!("{}=", "a".repeat(42))));
    }
}
