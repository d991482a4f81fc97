//! Identity's HTTP API: a source reads its organisation and systems and manages its own API
//! keys (R-SEC-1); people sign in and administrators manage accounts ([`accounts`], R-SEC-5,
//! R-SEC-6); the gateway authenticates keys and session tokens through the internal endpoints.

pub mod accounts;

use crate::AppIdentity;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use etx_domain::{ApiKeyId, ErrorCode, SystemId};
use etx_http_kit::{ApiError, Principal};
use etx_identity_core::{ApiKeyInfo, AuthError, Caller, IdentityError, SystemInfo};
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

/// Who may manage API keys: the connected system itself (its own organisation's keys), or a
/// person holding `system_admin` (their home organisation's keys). Other people — operators,
/// analysts, auditors… — may not (R-SEC-1, R-SEC-5).
fn may_manage_keys(p: &Principal) -> Result<(), ApiError> {
    let person = p.subject.starts_with("user:");
    if !person || p.has_role(etx_identity_core::Role::SystemAdmin.as_str()) {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::Forbidden).with_detail("only a system_admin manages API keys"))
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
    may_manage_keys(&p)?;
    let v = id.service.list_keys(p.org_id).await.map_err(api_error)?;
    Ok(HttpResponse::Ok().json(v.into_iter().map(ApiKeyOut::from).collect::<Vec<_>>()))
}

/// Issues a new API key for a system of the caller's organisation (rotation with overlap:
/// the old key works until revoked). The body is optional: without one, the key is for the
/// caller's own system (so too with `null`); a body that is sent must be valid.
#[utoipa::path(post, path = "/api/v1/keys", tag = "identity", request_body = Option<IssueKeyIn>,
    responses((status = 201, body = IssuedKeyOut), (status = 404, description = "no such system")),
    security(("api_key" = [])))]
pub async fn issue_key(
    id: web::Data<AppIdentity>,
    p: Principal,
    req: actix_web::HttpRequest,
    body: Result<web::Json<Option<IssueKeyIn>>, actix_web::Error>,
) -> Result<HttpResponse, actix_web::Error> {
    may_manage_keys(&p)?;
    let body = match body {
        Ok(b) => b.into_inner(),
        Err(_) if body_is_empty(&req) => None,
        Err(e) => return Err(e),
    };
    let system = body
        .and_then(|b| b.system_id)
        .map(SystemId::from_uuid)
        .or(p.system_id)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidParameter).with_detail("system_id is required"))?;
    let (info, plaintext) = id.service.issue_key(p.org_id, system).await.map_err(api_error)?;
    Ok(HttpResponse::Created().json(IssuedKeyOut {
        key: info.into(),
        api_key: plaintext,
    }))
}

/// Whether the request came without a body (no `Content-Length`, or `0`, and not chunked).
fn body_is_empty(req: &actix_web::HttpRequest) -> bool {
    use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    let h = req.headers();
    !h.contains_key(TRANSFER_ENCODING)
        && h.get(CONTENT_LENGTH)
            .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == "0"))
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
    may_manage_keys(&p)?;
    id.service
        .revoke_key(p.org_id, ApiKeyId::from_uuid(path.into_inner()))
        .await
        .map_err(api_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of the internal authentication call.
#[derive(Serialize, Deserialize)]
pub struct AuthenticateIn {
    /// The presented key.
    pub api_key: String,
    /// The client's address as the gateway saw it (evidence for the early warning on a revoked
    /// key, R-SEC-7).
    #[serde(default)]
    pub client_ip: Option<String>,
}

impl std::fmt::Debug for AuthenticateIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateIn")
            .field("client_ip", &self.client_ip)
            .finish_non_exhaustive()
    }
}

/// Body of the internal session authentication call.
#[derive(Serialize, Deserialize)]
pub struct AuthenticateSessionIn {
    /// The token from the `etx_session` cookie.
    pub token: String,
}

impl std::fmt::Debug for AuthenticateSessionIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateSessionIn").finish_non_exhaustive()
    }
}

/// Answer of the internal authentication calls.
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
    answer(
        id.service
            .authenticate_api_key(&body.api_key, body.client_ip.as_deref())
            .await,
    )
}

/// Internal: authenticates a session token for the gateway (R-SEC-5), like [`authenticate`].
pub async fn authenticate_session(
    id: web::Data<AppIdentity>,
    _gateway: Principal,
    body: web::Json<AuthenticateSessionIn>,
) -> HttpResponse {
    answer(id.accounts.authenticate_session(&body.token).await)
}

fn answer(r: Result<Caller, AuthError>) -> HttpResponse {
    match r {
        Ok(caller) => HttpResponse::Ok().json(AuthenticateOut::Ok { caller }),
        Err(AuthError::Unavailable) => HttpResponse::ServiceUnavailable().json(AuthenticateOut::Refused {
            reason: AuthError::Unavailable,
        }),
        Err(reason) => HttpResponse::Ok().json(AuthenticateOut::Refused { reason }),
    }
}

/// Mounts the public routes (under `/api/v1`, behind the gateway's authentication). Each path
/// is a resource, so another method on it is `405` with `Allow`, not `404`.
pub fn public_routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/organisations/me", "GET").route(web::get().to(my_organisation)))
        .service(resource("/systems", "GET").route(web::get().to(list_systems)))
        .service(
            resource("/keys", "GET, POST")
                .route(web::get().to(list_keys))
                .route(web::post().to(issue_key)),
        )
        .service(resource("/keys/{id}", "DELETE").route(web::delete().to(revoke_key)))
        .configure(accounts::routes);
}

/// A resource whose other methods are answered `405` with `Allow: <allow>`.
pub(crate) fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(etx_http_kit::method_not_allowed(allow))
}

/// Mounts the internal routes (under `/internal/v1`).
pub fn internal_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/authenticate", web::post().to(authenticate))
        .route("/sessions/authenticate", web::post().to(authenticate_session));
}

/// Identity's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(my_organisation, list_systems, list_keys, issue_key, revoke_key),
    components(schemas(ApiKeyOut, IssuedKeyOut, IssueKeyIn, SystemOut, OrganisationOut))
)]
#[derive(Debug)]
pub struct IdentityDoc;
