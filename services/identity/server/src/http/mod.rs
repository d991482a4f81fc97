//! Identity's HTTP API: a source reads its organisation and systems and manages its own API
//! keys (R-SEC-1); the gateway authenticates keys through the internal endpoint.

use crate::AppIdentity;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use etx_domain::{ApiKeyId, ErrorCode, SystemId};
use etx_http_kit::{ApiError, Principal};
use etx_identity_core::{ApiKeyInfo, AuthError, Caller, IdentityApi, IdentityError, SystemInfo};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Maps identity errors to the catalogue.
pub fn api_error(e: IdentityError) -> ApiError {
    match e {
        IdentityError::NotFound => ApiError::not_found(),
        IdentityError::Conflict => ApiError::new(ErrorCode::AlreadyExists),
        IdentityError::UnknownParent(_) | IdentityError::Hierarchy(_) | IdentityError::OrgMismatch(_) => {
            ApiError::new(ErrorCode::ValidationFailed).with_detail(e.to_string())
        }
        IdentityError::Unknown(e) => ApiError::internal(e),
    }
}

/// An API key as listed (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyOut {
    /// Key id.
    pub id: Uuid,
    /// The system it belongs to.
    pub system_id: Uuid,
    /// Public prefix (`etx_<prefix>_…`).
    pub prefix: String,
    /// Issued at.
    pub created_at: DateTime<Utc>,
    /// Revoked at, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// `active` or `revoked`.
    pub status: String,
}

impl From<ApiKeyInfo> for ApiKeyOut {
    fn from(k: ApiKeyInfo) -> Self {
        Self {
            id: k.id.as_uuid(),
            system_id: k.system_id.as_uuid(),
            prefix: k.prefix,
            created_at: k.created_at,
            status: if k.revoked_at.is_some() {
                "revoked".into()
            } else {
                "active".into()
            },
            revoked_at: k.revoked_at,
        }
    }
}

/// A newly issued key: the only time its secret is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IssuedKeyOut {
    /// The key's facts.
    #[serde(flatten)]
    pub key: ApiKeyOut,
    /// The API key in clear. Store it now; it cannot be shown again.
    pub api_key: String,
}

/// Request to issue a key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueKeyIn {
    /// The system (of the caller's organisation) the key is for; defaults to the caller's system.
    pub system_id: Option<Uuid>,
}

/// A connected system.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SystemOut {
    /// System id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Registered at.
    pub created_at: DateTime<Utc>,
}

impl From<SystemInfo> for SystemOut {
    fn from(s: SystemInfo) -> Self {
        Self {
            id: s.id.as_uuid(),
            name: s.name,
            created_at: s.created_at,
        }
    }
}

/// The caller's organisation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrganisationOut {
    /// Organisation id.
    pub id: Uuid,
    /// Unique code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Kind (ministry, province, …).
    pub kind: String,
    /// Parent organisation id.
    pub parent_id: Option<Uuid>,
    /// First day of existence.
    pub valid_from: chrono::NaiveDate,
    /// First day it no longer exists.
    pub valid_to: Option<chrono::NaiveDate>,
}

/// The caller's own organisation.
#[utoipa::path(get, path = "/api/v1/organisations/me", tag = "identity",
    responses((status = 200, body = OrganisationOut), (status = 401, description = "missing or invalid API key")),
    security(("api_key" = [])))]
pub async fn my_organisation(id: web::Data<AppIdentity>, p: Principal) -> Result<HttpResponse, ApiError> {
    let o = id.service.organisation(p.org_id).await.map_err(api_error)?;
    Ok(HttpResponse::Ok().json(OrganisationOut {
        id: o.id.as_uuid(),
        code: o.code.to_string(),
        name: o.name.to_string(),
        kind: o.kind.to_string(),
        parent_id: o.parent.map(|p| p.as_uuid()),
        valid_from: o.valid_from,
        valid_to: o.valid_to,
    }))
}

/// The connected systems of the caller's organisation.
#[utoipa::path(get, path = "/api/v1/systems", tag = "identity",
    responses((status = 200, body = Vec<SystemOut>)), security(("api_key" = [])))]
pub async fn list_systems(id: web::Data<AppIdentity>, p: Principal) -> Result<HttpResponse, ApiError> {
    let v = id.service.list_systems(p.org_id).await.map_err(api_error)?;
    Ok(HttpResponse::Ok().json(v.into_iter().map(SystemOut::from).collect::<Vec<_>>()))
}

/// The API keys of the caller's organisation.
#[utoipa::path(get, path = "/api/v1/keys", tag = "identity",
    responses((status = 200, body = Vec<ApiKeyOut>)), security(("api_key" = [])))]
pub async fn list_keys(id: web::Data<AppIdentity>, p: Principal) -> Result<HttpResponse, ApiError> {
    let v = id.service.list_keys(p.org_id).await.map_err(api_error)?;
    Ok(HttpResponse::Ok().json(v.into_iter().map(ApiKeyOut::from).collect::<Vec<_>>()))
}

/// Issues a new API key for a system of the caller's organisation (rotation with overlap:
/// the old key works until revoked).
#[utoipa::path(post, path = "/api/v1/keys", tag = "identity", request_body = IssueKeyIn,
    responses((status = 201, body = IssuedKeyOut), (status = 404, description = "no such system")),
    security(("api_key" = [])))]
pub async fn issue_key(
    id: web::Data<AppIdentity>,
    p: Principal,
    body: Option<web::Json<IssueKeyIn>>,
) -> Result<HttpResponse, ApiError> {
    let system = body
        .and_then(|b| b.into_inner().system_id)
        .map(SystemId::from_uuid)
        .or(p.system_id)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidParameter).with_detail("system_id is required"))?;
    let (info, plaintext) = id.service.issue_key(p.org_id, system).await.map_err(api_error)?;
    Ok(HttpResponse::Created().json(IssuedKeyOut {
        key: info.into(),
        api_key: plaintext,
    }))
}

/// Revokes an API key of the caller's organisation; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "identity",
    params(("id" = Uuid, Path, description = "key id")),
    responses((status = 204, description = "revoked"), (status = 404, description = "no such key")),
    security(("api_key" = [])))]
pub async fn revoke_key(
    id: web::Data<AppIdentity>,
    p: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    id.service
        .revoke_key(p.org_id, ApiKeyId::from_uuid(path.into_inner()))
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of the internal authentication call.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuthenticateIn {
    /// The presented key.
    pub api_key: String,
}

/// Answer of the internal authentication call.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum AuthenticateOut {
    /// Authenticated.
    Ok {
        /// The caller.
        caller: Caller,
    },
    /// Refused.
    Refused {
        /// Why.
        reason: AuthError,
    },
}

/// Internal: authenticates a key for the gateway. Only a caller carrying a principal signed by
/// the gateway reaches it (the `Principal` extractor).
pub async fn authenticate(
    id: web::Data<AppIdentity>,
    _gateway: Principal,
    body: web::Json<AuthenticateIn>,
) -> HttpResponse {
    match id.service.authenticate_api_key(&body.api_key).await {
        Ok(caller) => HttpResponse::Ok().json(AuthenticateOut::Ok { caller }),
        Err(AuthError::Unavailable) => HttpResponse::ServiceUnavailable().json(AuthenticateOut::Refused {
            reason: AuthError::Unavailable,
        }),
        Err(reason) => HttpResponse::Ok().json(AuthenticateOut::Refused { reason }),
    }
}

/// Mounts the public routes (under `/api/v1`, behind the gateway's authentication).
pub fn public_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/organisations/me", web::get().to(my_organisation))
        .route("/systems", web::get().to(list_systems))
        .route("/keys", web::get().to(list_keys))
        .route("/keys", web::post().to(issue_key))
        .route("/keys/{id}", web::delete().to(revoke_key));
}

/// Mounts the internal routes (under `/internal/v1`).
pub fn internal_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/authenticate", web::post().to(authenticate));
}

/// Identity's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(my_organisation, list_systems, list_keys, issue_key, revoke_key),
    components(schemas(ApiKeyOut, IssuedKeyOut, IssueKeyIn, SystemOut, OrganisationOut))
)]
#[derive(Debug)]
pub struct IdentityDoc;
