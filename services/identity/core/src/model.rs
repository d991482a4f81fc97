//! Identity's values: what a caller is after authentication, and what onboarding returns.

use chrono::{DateTime, NaiveDate, Utc};
use etx_domain::{ApiKeyId, OrgCode, OrgId, OrgKind, OrgName, SystemId, SystemName};
use serde::{Deserialize, Serialize};

/// An authenticated connected system, as the gateway forwards it to services.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The organisation the key belongs to.
    pub org_id: OrgId,
    /// The system the key belongs to.
    pub system_id: SystemId,
    /// The key used.
    pub key_id: ApiKeyId,
    /// Roles granted (this issue: `source` for every connected system).
    pub roles: Vec<String>,
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
