//! Identity's values: what a caller is after authentication (a system or a person), and what
//! onboarding returns.

use crate::account::{SessionId, SessionState};
use chrono::{DateTime, NaiveDate, Utc};
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
            session: None,
        }
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
}
