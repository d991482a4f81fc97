//! Identity (R-SRC-1, R-SEC-1, R-SEC-5, R-SEC-6): organisations, their connected systems and the
//! systems' API keys; people's accounts, sessions, lockout and TOTP second factor. This crate
//! holds the domain rules, the ports the adapters implement and the client trait other services
//! (the gateway) call, locally or over HTTP.
//!
//! * [`service`] — sources and API keys; [`LocalIdentity`], the in-process [`IdentityApi`].
//! * [`accounts`] — people: sign-in, sessions, lockout, MFA enrolment, administration.
//! * [`account`] — usernames, roles, session states, the session cookie.
//! * [`password`] — the password policy and argon2id hashing; [`totp`] — RFC 6238.
//! * [`warning`] — the early-warning detectors (R-SEC-7); [`watch`] — running them after
//!   sign-ins and revoked-key uses and emitting security events.

pub mod account;
pub mod accounts;
pub mod clock;
pub mod model;
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
    LoginRequest, NewUser, SecondFactor, SessionGrant, SessionView, UserPatch,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use model::{ApiKeyInfo, AuthError, Caller, NewSource, OnboardedSource, SessionFacts, SystemInfo};
pub use ports::{
    AccountStore, IdentityApi, IdentityStore, KeyMaterial, LoginAttempt, LoginOutcome, StoreError, StoredMfa,
    StoredSession, StoredUser, WarningStore,
};
pub use service::{IdentityError, IdentityService, LocalIdentity};
pub use warning::{Detection, EarlyWarningPolicy, Threshold, WarningKind, WorkingHours};
pub use watch::{EarlyWarning, NoWatch, SecurityWatch};
