//! Identity's values: what a caller is after authentication (a system or a person), and what
//! onboarding returns.

use crate::account::{SessionId, SessionState};
use crate::keys::KeyPolicy;
use chrono::{DateTime, NaiveDate, Utc};
use etx_domain::authz::Scope;
use etx_domain::net::IpNetwork;
use etx_domain::{ApiKeyId, OrgCode, OrgId, OrgKind, OrgName, SystemId, SystemName, UserId};
use serde::{Deserialize, Serialize};

/// Who called, once identity has checked the credential: a connected system (API key) or a
/// person (session cookie, R-SEC-5/R-SEC-6). The gateway turns it into the signed
/// `Principal` (etx-http-kit) that services trust. Sent between processes of the same
/// version only (no compatibility with older versions is kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The organisation acted for: the key's organisation or the person's home organisation.
    pub org_id: OrgId,
    /// The system, when a connected system calls.
    pub system_id: Option<SystemId>,
    /// The API key used, when a connected system calls.
    pub key_id: Option<ApiKeyId>,
    /// The person, when a person calls.
    pub user_id: Option<UserId>,
    /// Roles granted: `source` for every connected system, the account's roles for a person.
    pub roles: Vec<String>,
    /// The scopes of a connected system's credential (`records:write` …, see
    /// [`etx_domain::authz::Scope`]); empty for a person, whose roles decide instead.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// When the credential stops working (an API key's expiry, issue 4 §5); `None`: never by
    /// itself. Carried so that the gateway refuses it from then on, also from its cache.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// The networks the credential may be used from; empty: any address. Checked by the
    /// gateway on every request ([`Caller::admits`]).
    #[serde(default)]
    pub allowed_networks: Vec<IpNetwork>,
    /// The session, when a person calls.
    pub session: Option<SessionFacts>,
}

/// What the gateway needs of a person's session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFacts {
    /// The session's id (for logs; never its token).
    pub id: SessionId,
    /// What it may reach.
    pub state: SessionState,
    /// SHA-256 (hex) of the session's anti-forgery token: a state-changing request
    /// authenticated by the cookie must carry the token in `X-CSRF-Token`.
    pub csrf_sha256: String,
}

impl Caller {
    /// A connected system authenticated by an API key.
    pub fn system(org_id: OrgId, system_id: SystemId, key_id: ApiKeyId) -> Self {
        Self {
            org_id,
            system_id: Some(system_id),
            key_id: Some(key_id),
            user_id: None,
            roles: vec!["source".into()],
            scopes: Scope::DEFAULT.iter().map(|s| s.as_str().to_owned()).collect(),
            expires_at: None,
            allowed_networks: Vec::new(),
            session: None,
        }
    }

    /// A connected system authenticated by an OAuth2 access token of one of its clients
    /// (R-SEC-1): no API key, the token's scopes, and the token's expiry, so that the gateway
    /// stops honouring it then, also from its cache.
    pub fn access_token(
        org_id: OrgId,
        system_id: SystemId,
        scopes: &[Scope],
        expires_at: DateTime<Utc>,
    ) -> Self {
        let mut c = Self {
            key_id: None,
            ..Self::system(org_id, system_id, ApiKeyId::from_uuid(uuid::Uuid::nil()))
        }
        .with_scopes(scopes);
        c.expires_at = Some(expires_at);
        c
    }

    /// The same caller bound by a key's policy: its scopes, expiry and allow-list.
    pub fn with_key_policy(self, policy: &KeyPolicy) -> Self {
        let mut c = self.with_scopes(&policy.scopes);
        c.expires_at = policy.expires_at;
        c.allowed_networks = policy.allowed_networks.clone();
        c
    }

    /// Whether the credential may be used at `now` from `client_ip` (R-SEC-1): MUST be asked
    /// on every request, cached authentication or not. `CredentialExpired` from its expiry on,
    /// `AddressNotAllowed` outside its allow-list (see [`crate::keys::check_use`]).
    pub fn admits(&self, now: DateTime<Utc>, client_ip: Option<&str>) -> Result<(), AuthError> {
        crate::keys::check_use(self.expires_at, &self.allowed_networks, now, client_ip)
    }

    /// The same caller with exactly these credential scopes.
    pub fn with_scopes(mut self, scopes: &[Scope]) -> Self {
        self.scopes = scopes.iter().map(|s| s.as_str().to_owned()).collect();
        self
    }

    /// Who it is, as the principal's subject: `system:<id>` or `user:<id>`.
    pub fn subject(&self) -> String {
        match (self.user_id, self.system_id) {
            (Some(u), _) => format!("user:{u}"),
            (None, Some(s)) => format!("system:{s}"),
            (None, None) => "unknown".into(),
        }
    }

    /// The identity a per-credential rate limit counts against: the API key, or the person.
    pub fn rate_key(&self) -> String {
        match (self.key_id, self.user_id) {
            (Some(k), _) => k.to_string(),
            (None, Some(u)) => format!("user:{u}"),
            (None, None) => self.org_id.to_string(),
        }
    }
}

/// Why a presented credential was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthError {
    /// Nothing was presented.
    #[error("no credentials")]
    Missing,
    /// Unknown, malformed or expired.
    #[error("invalid credentials")]
    Invalid,
    /// The key was revoked.
    #[error("revoked credentials")]
    Revoked,
    /// The session ended: signed out, idle or absolute timeout, or its account was disabled.
    #[error("session expired")]
    Expired,
    /// The credential (an API key) passed its expiry: a rotated key after its overlap, or a
    /// key issued with a lifetime (issue 4 §5).
    #[error("expired credentials")]
    CredentialExpired,
    /// The credential may not be used from the client's address (its allow-list, issue 4 §5).
    #[error("address not allowed")]
    AddressNotAllowed,
    /// Identity could not answer (database down…).
    #[error("identity unavailable")]
    Unavailable,
}

/// What an operator asks for when onboarding a data source (`etxhub sources add`).
#[derive(Debug, Clone)]
pub struct NewSource {
    /// Organisation code (unique).
    pub org_code: OrgCode,
    /// Organisation name.
    pub org_name: OrgName,
    /// Organisation kind.
    pub org_kind: OrgKind,
    /// Parent organisation code, if any.
    pub parent: Option<OrgCode>,
    /// First day the organisation exists (default: today).
    pub valid_from: Option<NaiveDate>,
    /// The connected system's name.
    pub system_name: SystemName,
}

/// The result of onboarding: the only time the API key is shown.
#[derive(Debug, Clone, Serialize)]
pub struct OnboardedSource {
    /// The organisation (existing or created).
    pub org_id: OrgId,
    /// Whether the organisation was created now.
    pub org_created: bool,
    /// The new system.
    pub system_id: SystemId,
    /// The new key's id.
    pub key_id: ApiKeyId,
    /// The API key in clear — shown once, never stored.
    pub api_key: String,
}

/// A connected system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// Its id.
    pub id: SystemId,
    /// Its organisation.
    pub org_id: OrgId,
    /// Its name.
    pub name: String,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
}

/// An API key's public facts (never its secret or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// Its id.
    pub id: ApiKeyId,
    /// Its organisation.
    pub org_id: OrgId,
    /// Its system.
    pub system_id: SystemId,
    /// The public prefix, to recognise it (`etx_<prefix>_…`).
    pub prefix: String,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Its scopes, expiry and address allow-list (issue 4 §5).
    #[serde(default)]
    pub policy: KeyPolicy,
    /// The key it succeeds, when it was issued by a rotation.
    #[serde(default)]
    pub rotated_from: Option<ApiKeyId>,
    /// Its successor, once it was rotated (it then works until its expiry: the overlap).
    #[serde(default)]
    pub replaced_by: Option<ApiKeyId>,
}

/// Whether a key works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// It authenticates (within its scopes and networks).
    Active,
    /// It passed its expiry.
    Expired,
    /// It was revoked.
    Revoked,
}

impl KeyStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }
}

impl ApiKeyInfo {
    /// Whether it works at `now`: revoked first, then expired.
    pub fn status(&self, now: DateTime<Utc>) -> KeyStatus {
        if self.revoked_at.is_some() {
            KeyStatus::Revoked
        } else if self.policy.is_expired(now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }
}
