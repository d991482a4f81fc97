//! Signing in through an external OpenID Connect provider (issue 4 §4, R-SEC-5, R-SEC-6) with
//! the authorization code flow and PKCE, and giving the hub's second factor that such a session
//! may still need (`POST /auth/mfa/verify`).
//!
//! # Starting ([`OidcSignIn::begin`])
//! A random `state`, `nonce` and browser-binding token (256 bits each) are made, and the PKCE
//! verifier is derived from the state with the keyed-hash key (HMAC-SHA256, 256 bits, so nothing
//! stored redeems an intercepted code); the provider adapter builds the authorization URL with
//! its S256 challenge. Only keyed hashes of the state and of the binding token are stored, with
//! the nonce, for [`LOGIN_TTL_SECS`]. The binding token goes to the browser in an `HttpOnly`
//! cookie.
//!
//! # The callback ([`OidcSignIn::callback`])
//! 1. The started sign-in is taken by its state — removed, so a state works once — and must be
//!    unexpired and bound to this browser's cookie (login CSRF: a code obtained in another
//!    browser cannot be planted into this one).
//! 2. The code is exchanged with the verifier; the ID token is verified ([`verify_id_token`]),
//!    with a second fetch of the provider's keys when it names an unknown one.
//! 3. The username claim must name an existing, active account — accounts are never created
//!    from a token. Unknown and disabled accounts get the same answer.
//! 4. The session opens in the state of [`SessionState::after_provider_sign_in`]: an account
//!    with a second factor must still give it, unless the configuration trusts the provider's
//!    MFA and the token's `amr` shows it was used.
//!
//! # Bookkeeping
//! The lockout of the claimed username and of the address applies as to a password sign-in.
//! Refusals after the token was verified (unknown or disabled account, lockout) are recorded as
//! sign-in attempts, so the early warning sees them (R-SEC-7). A session that still needs the
//! second factor records nothing yet: the attempt is recorded when the factor is given (`ok`)
//! or refused (`bad_mfa`, which counts toward the lockout) — a provider sign-in must not reset
//! the failure count that guards the second factor.

use super::{AccountError, Accounts, Actor, SecondFactor, SessionGrant, SessionView};
use crate::account::{SessionState, UserStatus, Username};
use crate::oidc::{
    IdClaims, IdTokenError, LOGIN_TTL_SECS, OidcProvider, OidcSettings, PendingOidcLogin, ProviderError,
    verify_id_token,
};
use crate::ports::{AccountStore, IdentityStore, LoginOutcome, StoreError, StoredSession};
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Keyed-hash purposes (domain separation).
const STATE_PURPOSE: &str = "oidc-state";
const BINDING_PURPOSE: &str = "oidc-binding";
const PKCE_PURPOSE: &str = "oidc-pkce-verifier";

/// Longest `state` or binding token looked up (ours are 43 characters).
const MAX_STATE_LEN: usize = 256;
/// Longest authorization code passed on to the provider.
const MAX_CODE_LEN: usize = 4096;

/// Why a sign-in through the provider failed.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// No provider is configured.
    #[error("OpenID Connect sign-in is not configured")]
    NotConfigured,
    /// The `state` is missing, unknown, expired or already used, or the browser does not hold
    /// the binding cookie of the sign-in it belongs to.
    #[error("unknown, expired, used or foreign sign-in state")]
    InvalidState,
    /// The provider sent the browser back with an error (the person declined…) or without a
    /// code.
    #[error("the provider did not authorise the sign-in")]
    Denied,
    /// The token endpoint refused the code (e.g. `invalid_grant`: wrong PKCE verifier, code
    /// used or expired).
    #[error("the provider refused the code: {0}")]
    CodeRefused(String),
    /// The provider's answer is not a valid one.
    #[error("the provider's answer is not valid: {0}")]
    ProviderInvalid(anyhow::Error),
    /// The ID token failed a check.
    #[error("the ID token is not valid: {0}")]
    InvalidIdToken(IdTokenError),
    /// No active account has the token's username (unknown, disabled, or the claim is missing):
    /// one answer for every case, so the answer does not tell which.
    #[error("no active account matches")]
    NoAccount,
    /// The username or the address is locked out.
    #[error("locked for {retry_after_secs} s")]
    Locked {
        /// Seconds until the lockout lifts.
        retry_after_secs: u64,
    },
    /// The provider cannot be reached or fails: try again later.
    #[error("the provider is unavailable: {0}")]
    ProviderUnavailable(anyhow::Error),
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl From<StoreError> for OidcError {
    fn from(e: StoreError) -> Self {
        Self::Unknown(e.into())
    }
}

impl From<ProviderError> for OidcError {
    fn from(e: ProviderError) -> Self {
        match e {
            ProviderError::Unavailable(e) => Self::ProviderUnavailable(e),
            ProviderError::Refused(code) => Self::CodeRefused(code),
            ProviderError::Invalid(e) => Self::ProviderInvalid(e),
        }
    }
}

/// A started sign-in: where to send the browser, and the binding token for its cookie.
pub struct OidcStart {
    /// The provider's authorization URL.
    pub authorization_url: String,
    /// The token to put in the binding cookie (shown once, only its hash is stored).
    pub binding_token: Zeroizing<String>,
}

impl std::fmt::Debug for OidcStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcStart").finish_non_exhaustive()
    }
}

/// What the provider's redirect back brings, with the browser's binding cookie.
#[derive(Default)]
pub struct OidcCallback {
    /// `code`.
    pub code: Option<String>,
    /// `state`.
    pub state: Option<String>,
    /// `error`, when the provider did not authorise.
    pub provider_error: Option<String>,
    /// `iss`, when the provider names itself (RFC 9207: it must be the configured issuer).
    pub issuer: Option<String>,
    /// The binding cookie's token.
    pub binding_token: Option<String>,
    /// The client's address as the gateway saw it.
    pub ip: Option<String>,
}

impl std::fmt::Debug for OidcCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcCallback")
            .field("provider_error", &self.provider_error)
            .field("ip", &self.ip)
            .finish_non_exhaustive()
    }
}

/// Sign-in through the configured OpenID provider, over the people use cases.
#[derive(Debug)]
pub struct OidcSignIn<S> {
    accounts: Arc<Accounts<S>>,
    provider: Arc<dyn OidcProvider>,
    settings: OidcSettings,
}

impl<S: AccountStore + IdentityStore> OidcSignIn<S> {
    /// Sign-in through `provider`, checked and linked as `settings` say.
    pub fn new(accounts: Arc<Accounts<S>>, provider: Arc<dyn OidcProvider>, settings: OidcSettings) -> Self {
        Self {
            accounts,
            provider,
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    /// Starts a sign-in (see the module docs).
    #[tracing::instrument(skip_all)]
    pub async fn begin(&self) -> Result<OidcStart, OidcError> {
        let a = &*self.accounts;
        let state = crate::random::token(32);
        let nonce = crate::random::token(32);
        let binding = Zeroizing::new(crate::random::token(32));
        let url = self
            .provider
            .authorization_url(&state, &nonce, &self.pkce_verifier(&state))
            .await?;
        let now = a.clock.now();
        // Expired sign-ins are swept here: starting one is the only way to add rows.
        if let Err(e) = a.store.purge_oidc_logins(now).await {
            tracing::warn!(error = %e, "expired OIDC sign-ins not purged");
        }
        a.store
            .insert_oidc_login(&PendingOidcLogin {
                state_hash: a.hasher.hash(STATE_PURPOSE, state.as_bytes()).to_vec(),
                binding_hash: a.hasher.hash(BINDING_PURPOSE, binding.as_bytes()).to_vec(),
                nonce,
                created_at: now,
                expires_at: now + TimeDelta::seconds(LOGIN_TTL_SECS),
            })
            .await?;
        Ok(OidcStart {
            authorization_url: url,
            binding_token: binding,
        })
    }

    /// Completes a sign-in from the provider's redirect back (see the module docs). On success
    /// the session token is returned once; on any failure no session is opened.
    #[tracing::instrument(skip_all, fields(ip = cb.ip.as_deref().unwrap_or("-")))]
    pub async fn callback(&self, cb: OidcCallback) -> Result<SessionGrant, OidcError> {
        let a = &*self.accounts;
        let (pending, verifier) = self.take_pending(&cb).await?;
        if cb.provider_error.is_some() {
            tracing::info!("OIDC sign-in refused: the provider did not authorise it");
            return Err(OidcError::Denied);
        }
        if cb
            .issuer
            .as_deref()
            .is_some_and(|iss| iss != self.settings.issuer)
        {
            tracing::warn!("OIDC callback refused: the answer names another issuer (RFC 9207)");
            return Err(OidcError::Denied);
        }
        let code = cb
            .code
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= MAX_CODE_LEN)
            .ok_or(OidcError::Denied)?;
        let id_token = self
            .provider
            .exchange_code(code, &verifier)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "OIDC code exchange failed"))?;
        let claims = self
            .verify(&id_token, &pending.nonce)
            .await
            .inspect_err(|e| tracing::warn!(error = %e, "OIDC ID token refused"))?;

        let now = a.clock.now();
        let Some(claimed) = claims.username.as_deref() else {
            tracing::warn!(subject = %claims.subject, claim = %self.settings.username_claim, "OIDC sign-in refused: the ID token lacks the username claim");
            return Err(OidcError::NoAccount);
        };
        let key = Username::attempt_key(claimed);
        let ip = cb.ip.as_deref();
        if let Some(retry_after_secs) = a.lockout(&key, ip, now).await? {
            a.record(&key, None, ip, LoginOutcome::Locked).await;
            tracing::info!(retry_after_secs, "OIDC sign-in refused: locked out");
            return Err(OidcError::Locked { retry_after_secs });
        }
        let user = match Username::parse(claimed) {
            Ok(u) => a.store.user_by_username(&u).await?,
            Err(_) => None,
        };
        let user = match user {
            Some(u) if u.info.status == UserStatus::Active => u,
            other => {
                let outcome = match &other {
                    None => LoginOutcome::UnknownUser,
                    Some(_) => LoginOutcome::Disabled,
                };
                a.record(&key, other.as_ref().map(|u| &u.info), ip, outcome).await;
                tracing::info!(outcome = outcome.as_str(), subject = %claims.subject, "OIDC sign-in refused");
                return Err(OidcError::NoAccount);
            }
        };
        let trusted = self.settings.trust_provider_mfa && claims.provider_mfa();
        let state = SessionState::after_provider_sign_in(
            user.info.must_change_password,
            user.info.mfa_enabled,
            trusted,
        );
        if state != SessionState::SecondFactorRequired {
            a.record(&key, Some(&user.info), ip, LoginOutcome::Ok).await;
        }
        let grant = a.open_session(user.info, cb.ip, now, state).await?;
        tracing::info!(user_id = %grant.view.user.id, session_id = %grant.view.session_id, state = state.as_str(), provider_mfa_trusted = trusted, "signed in through the OpenID provider");
        Ok(grant)
    }

    /// The PKCE verifier of the sign-in with this `state`: 43 characters of base64url
    /// (RFC 7636 §4.1), unguessable without the keyed-hash key.
    fn pkce_verifier(&self, state: &str) -> Zeroizing<String> {
        use base64::Engine as _;
        Zeroizing::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(self.accounts.hasher.hash(PKCE_PURPOSE, state.as_bytes())),
        )
    }

    /// The started sign-in of the callback's state, taken (so used once), unexpired and bound
    /// to the callback's browser; and its PKCE verifier.
    async fn take_pending(
        &self,
        cb: &OidcCallback,
    ) -> Result<(PendingOidcLogin, Zeroizing<String>), OidcError> {
        let a = &*self.accounts;
        let state = cb
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= MAX_STATE_LEN)
            .ok_or(OidcError::InvalidState)?;
        let Some(pending) = a
            .store
            .take_oidc_login(&a.hasher.hash(STATE_PURPOSE, state.as_bytes()))
            .await?
        else {
            tracing::info!("OIDC callback refused: unknown or used state");
            return Err(OidcError::InvalidState);
        };
        let bound = cb
            .binding_token
            .as_deref()
            .filter(|t| t.len() <= MAX_STATE_LEN)
            .is_some_and(|t| {
                a.hasher
                    .hash(BINDING_PURPOSE, t.as_bytes())
                    .ct_eq(&pending.binding_hash)
                    .into()
            });
        if !bound {
            tracing::warn!("OIDC callback refused: the browser does not hold the sign-in's binding cookie");
            return Err(OidcError::InvalidState);
        }
        if a.clock.now() >= pending.expires_at {
            tracing::info!("OIDC callback refused: the sign-in expired");
            return Err(OidcError::InvalidState);
        }
        Ok((pending, self.pkce_verifier(state)))
    }

    /// Verifies the ID token, fetching the provider's keys again once when it names a key the
    /// cached set lacks (a key rotation).
    async fn verify(&self, token: &str, nonce: &str) -> Result<IdClaims, OidcError> {
        let now: DateTime<Utc> = self.accounts.clock.now();
        let keys = self.provider.signing_keys(false).await?;
        let verified = match verify_id_token(token, &keys, &self.settings, nonce, now) {
            Err(IdTokenError::UnknownKey) => {
                let keys = self.provider.signing_keys(true).await?;
                verify_id_token(token, &keys, &self.settings, nonce, now)
            }
            other => other,
        };
        verified.map_err(OidcError::InvalidIdToken)
    }
}

impl<S: AccountStore + IdentityStore> Accounts<S> {
    /// Gives the second factor a session opened through the OpenID provider still needs
    /// ([`SessionState::SecondFactorRequired`]): a TOTP code (later than the last one accepted)
    /// or an unused recovery code, consumed atomically as at a password sign-in. The lockout
    /// applies and a wrong code counts toward it; every attempt is recorded. On success the
    /// session moves on to the state [`SessionState::for_account`] gives. `Conflict` when the
    /// session is not waiting for a second factor.
    #[tracing::instrument(skip_all, fields(user_id = %actor.user_id))]
    pub async fn verify_second_factor(
        &self,
        token: &str,
        actor: &Actor,
        factor: SecondFactor,
    ) -> Result<SessionView, AccountError> {
        let (s, u) = self.own_session(token, actor.user_id).await?;
        if s.state != SessionState::SecondFactorRequired {
            return Err(AccountError::Conflict);
        }
        let now = self.clock.now();
        let key = u.info.username.as_str().to_owned();
        let ip = actor.ip.as_deref();
        if let Some(retry_after_secs) = self.lockout(&key, ip, now).await? {
            self.record(&key, Some(&u.info), ip, LoginOutcome::Locked).await;
            return Err(AccountError::Locked { retry_after_secs });
        }
        if !self.second_factor_ok(&u.info, &factor, now).await? {
            self.record(&key, Some(&u.info), ip, LoginOutcome::BadMfa).await;
            tracing::info!("second factor refused");
            return Err(AccountError::InvalidMfaCode);
        }
        self.record(&key, Some(&u.info), ip, LoginOutcome::Ok).await;
        let state = SessionState::for_account(u.info.must_change_password, u.info.mfa_enabled);
        self.store.set_session_state(s.id, state).await?;
        tracing::info!(session_id = %s.id, state = state.as_str(), "second factor given");
        Ok(self.view(&StoredSession { state, ..s }, u.info, token))
    }
}
