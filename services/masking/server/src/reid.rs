//! Re-identification (issue 5 §2; R-SEC-10: every read of raw data is audited): a reversible
//! token (`rtk_…`, AES-SIV) of a purpose turned back into its value for a person allowed to,
//! with a stated reason. Every attempt that reaches [`AppMasking::reidentify`] — granted or
//! refused — is written to `masking_reidentifications` **before** any value is returned, with a
//! SHA-256 of the token, never the token or the value; if that write fails, nothing is shown.
//!
//! A keyed token (`tok_…`, HMAC) is irreversible by design and is refused as such; a text that
//! is no reversible token, or one made for another purpose or under another key (forged or
//! altered), is refused too. The stated reason is stored with any identifier the detectors
//! find in it masked (as for alert texts), so a reason quoting a citizen id leaves no clear
//! value in the log.
//!
//! [`AppMasking::reidentify`]: crate::AppMasking::reidentify

use chrono::{DateTime, Utc};
use etx_domain::OrgId;
use etx_masking_core::{Audience, Authorisation, Masker, MaskingPolicy, Purpose, ReidentifyError};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::policies::sha256_hex;
use crate::store::entities::masking_reidentification;

/// Most entries [`ReidLog::list`] returns at once.
pub const MAX_REID_PAGE: u64 = 1000;

/// Who asks, for what and why.
#[derive(Clone, Copy)]
pub struct ReidRequest<'a> {
    /// The principal's subject (`user:<id>`).
    pub actor: &'a str,
    /// Their organisation.
    pub org_id: OrgId,
    /// The client address as the gateway saw it.
    pub ip: Option<&'a str>,
    /// The purpose the token was made for.
    pub purpose: &'a Purpose,
    /// The token as presented.
    pub token: &'a str,
    /// Why (10–500 characters, checked by the caller).
    pub reason: &'a str,
}

impl std::fmt::Debug for ReidRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReidRequest")
            .field("actor", &self.actor)
            .field("org_id", &self.org_id)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

/// Why a token was not turned back into a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A keyed token (`tok_…`): irreversible by design.
    KeyedToken,
    /// Not a reversible token at all.
    NotAToken,
    /// A reversible token of another purpose or key, or altered.
    WrongPurposeOrKey,
}

impl Refusal {
    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KeyedToken => "keyed_token",
            Self::NotAToken => "not_a_token",
            Self::WrongPurposeOrKey => "wrong_purpose_or_key",
        }
    }

    /// An English explanation for the caller (never quoting the token).
    pub fn detail(self) -> &'static str {
        match self {
            Self::KeyedToken => {
                "a keyed token (tok_…) is irreversible by design: only reversible tokens (rtk_…) can be re-identified"
            }
            Self::NotAToken => "not a reversible token: expected rtk_ followed by base32",
            Self::WrongPurposeOrKey => {
                "the token was not made for this purpose with this hub's key, or it was altered"
            }
        }
    }
}

/// The result of an attempt, once it is in the log.
pub enum ReidOutcome {
    /// The value (normalised as when it was tokenised).
    Granted {
        /// The log entry.
        id: Uuid,
        /// The value in clear.
        value: Zeroizing<String>,
    },
    /// Refused.
    Refused {
        /// The log entry.
        id: Uuid,
        /// Why.
        refusal: Refusal,
    },
}

impl std::fmt::Debug for ReidOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Granted { id, .. } => f
                .debug_struct("Granted")
                .field("id", id)
                .field("value", &"[redacted]")
                .finish(),
            Self::Refused { id, refusal } => f
                .debug_struct("Refused")
                .field("id", id)
                .field("refusal", refusal)
                .finish(),
        }
    }
}

/// Why an attempt could not be decided or logged (no value was shown).
#[derive(Debug, thiserror::Error)]
pub enum ReidError {
    /// The authorisation's own rules (actor, reason) refused it.
    #[error("{0}")]
    Invalid(&'static str),
    /// The log could not be written.
    #[error("cannot record the re-identification: {0}")]
    Database(#[from] DbErr),
}

/// One entry of the re-identification log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reidentification {
    /// Its id (time-ordered).
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (`user:<id>`).
    pub actor: String,
    /// Their organisation.
    pub actor_org: OrgId,
    /// From where.
    pub ip: Option<String>,
    /// The purpose asked for.
    pub purpose: String,
    /// The reason given (identifiers masked).
    pub reason: String,
    /// Hex SHA-256 of the token presented.
    pub token_sha256: String,
    /// Whether the value was given.
    pub granted: bool,
    /// Why not ([`Refusal::as_str`]).
    pub refusal: Option<String>,
}

/// Decides an attempt with `masker`'s keys and logs it (see the module docs).
pub(crate) async fn reidentify(
    log: &ReidLog,
    masker: &Masker,
    policy: &MaskingPolicy,
    req: ReidRequest<'_>,
) -> Result<ReidOutcome, ReidError> {
    let reason = masker
        .mask_text(policy, Audience::AlertText, req.reason.trim())
        .map_or_else(|_| "[REDACTED]".to_owned(), |(t, _)| t);
    let auth = Authorisation::new(req.actor, req.purpose.clone(), &reason).map_err(|e| match e {
        ReidentifyError::InvalidAuthorisation(why) => ReidError::Invalid(why),
        _ => ReidError::Invalid("invalid authorisation"),
    })?;
    let token = req.token.trim();
    let decided = if token.starts_with(etx_masking_core::tokens::TOKEN_PREFIX) {
        Err(Refusal::KeyedToken)
    } else {
        match masker.keys().reidentify(req.purpose, token, &auth) {
            Ok(r) => Ok(r.value),
            Err(ReidentifyError::NotAToken) => Err(Refusal::NotAToken),
            Err(_) => Err(Refusal::WrongPurposeOrKey),
        }
    };
    let id = Uuid::now_v7();
    let row = masking_reidentification::ActiveModel {
        id: Set(id),
        at: Set(Utc::now()),
        actor: Set(auth.actor().to_owned()),
        actor_org: Set(req.org_id.as_uuid()),
        ip: Set(req.ip.map(str::to_owned)),
        purpose: Set(req.purpose.as_str().to_owned()),
        reason: Set(auth.reason().to_owned()),
        token_sha256: Set(sha256_hex(req.token.as_bytes())),
        outcome: Set(if decided.is_ok() { "granted" } else { "refused" }.to_owned()),
        refusal: Set(decided.as_ref().err().map(|r| r.as_str().to_owned())),
    };
    log.record(row).await?;
    match decided {
        Ok(value) => {
            tracing::info!(reidentification = %id, purpose = %req.purpose, actor = %req.actor, "token re-identified");
            Ok(ReidOutcome::Granted { id, value })
        }
        Err(refusal) => {
            tracing::info!(reidentification = %id, purpose = %req.purpose, actor = %req.actor,
                refusal = refusal.as_str(), "re-identification refused");
            Ok(ReidOutcome::Refused { id, refusal })
        }
    }
}

/// The re-identification log (`masking_reidentifications`).
#[derive(Debug, Clone)]
pub struct ReidLog {
    db: DatabaseConnection,
}

impl ReidLog {
    /// The log over `db` (migrated).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    async fn record(&self, row: masking_reidentification::ActiveModel) -> Result<(), DbErr> {
        masking_reidentification::Entity::insert(row)
            .exec_without_returning(&self.db)
            .await
            .map(|_| ())
    }

    /// Entries newest first, by actors of `orgs` (everyone's when `None`; nobody's when
    /// empty), older than the entry `before` when given, at most `limit` (capped at
    /// [`MAX_REID_PAGE`]).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn list(
        &self,
        orgs: Option<&[OrgId]>,
        before: Option<Uuid>,
        limit: u64,
    ) -> Result<Vec<Reidentification>, DbErr> {
        let mut q = masking_reidentification::Entity::find();
        if let Some(orgs) = orgs {
            if orgs.is_empty() {
                return Ok(Vec::new());
            }
            q = q.filter(masking_reidentification::Column::ActorOrg.is_in(orgs.iter().map(OrgId::as_uuid)));
        }
        if let Some(before) = before {
            q = q.filter(masking_reidentification::Column::Id.lt(before));
        }
        let rows = q
            .order_by_desc(masking_reidentification::Column::Id)
            .limit(limit.min(MAX_REID_PAGE))
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|m| Reidentification {
                id: m.id,
                at: m.at,
                actor: m.actor,
                actor_org: OrgId::from_uuid(m.actor_org),
                ip: m.ip,
                purpose: m.purpose,
                reason: m.reason,
                token_sha256: m.token_sha256,
                granted: m.outcome == "granted",
                refusal: m.refusal,
            })
            .collect())
    }
}
