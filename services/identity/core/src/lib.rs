//! Identity (R-SRC-1, R-SEC-1, R-SEC-5, R-SEC-6): organisations, their connected systems and the
//! systems' API keys; people's accounts, sessions, lockout and TOTP second factor. This crate
//! holds the domain rules, the ports the adapters implement and the client trait other services
//! (the gateway) call, locally or over HTTP.
//!
//! * [`service`] — sources and API keys; [`LocalIdentity`], the in-process [`IdentityApi`].
//! * [`keys`] — an API key's scopes, expiry, address allow-list and rotation (issue 4 §5).
//! * [`connection`] — the connection bundle of onboarding and the configuration changes a
//!   connected system declares (R-ADM, Art. 10.4).
//! * [`accounts`] — people: sign-in, sessions, lockout, MFA enrolment, administration.
//! * [`account`] — usernames, roles, session states, the session cookie.
//! * [`password`] — the password policy and argon2id hashing; [`totp`] — RFC 6238.
//! * [`oauth`] — OAuth2 for connected systems: clients, the client-credentials grant, access
//!   tokens and their revocation ([`OAuthService`]).
//! * [`oidc`] — sign-in through an external OpenID Connect provider: ID-token checks, the
//!   provider's keys and the port to it; the use case is [`OidcSignIn`].
//! * [`warning`] — the early-warning detectors (R-SEC-7); [`watch`] — running them after
//!   sign-ins and revoked-key uses and emitting security events.

pub mod account;
pub mod accounts;
pub mod clock;
pub mod connection;
pub mod keys;
pub mod model;
pub mod oauth;
pub mod oidc;
pub mod password;
pub mod ports;
mod random;
pub mod service;
pub mod totp;
pub mod warning;
pub mod watch;

pub use account::{
    DisplayName, Role, Roles, SESSION_COOKIE, SessionId, SessionState, UserInfo, UserStatus, Username,
};
pub use accounts::{
    AccountError, AccountSettings, Accounts, Actor, CreatedUser, Enrolment, LockoutPolicy, LoginError,
    LoginRequest, NewUser, OidcCallback, OidcError, OidcSignIn, OidcStart, SecondFactor, SessionGrant,
    SessionView, UserPatch,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use connection::{
    ChangeKind, ConfigChange, ConnectionBundle, ConnectionFacts, ConnectionLimits, Endpoints,
    NewConfigChange, Onboarding, RateFacts, SchemaVersions,
};
pub use keys::{KeyOptions, KeyPolicy};
pub use model::{
    ApiKeyInfo, AuthError, Caller, KeyStatus, NewSource, OnboardedSource, SessionFacts, SystemInfo,
};
pub use oauth::{OAuthService, OAuthSettings, OAuthStore};
pub use ports::{
    AccountStore, IdentityApi, IdentityStore, KeyMaterial, LoginAttempt, LoginOutcome, StoreError, StoredMfa,
    StoredSession, StoredUser, WarningStore,
};
pub use service::{IdentityError, IdentityService, LocalIdentity};
pub use warning::{Detection, EarlyWarningPolicy, Threshold, WarningKind, WorkingHours};
pub use watch::{EarlyWarning, NoWatch, SecurityWatch};
