//! Identity's HTTP API: a source reads its organisation and systems and manages its own API
//! keys with their scopes, expiry and address allow-lists (R-SEC-1); onboarding with a
//! connection bundle, key rotation and configuration-change declarations ([`sources`], R-ADM,
//! Art. 10.4); people sign in and administrators manage accounts ([`accounts`], R-SEC-5,
//! R-SEC-6); connected systems get OAuth2 access tokens ([`oauth`]); the gateway authenticates
//! keys, session tokens and access tokens through the internal endpoints.

pub mod accounts;
pub mod oauth;
pub mod oidc;
pub mod sources;

use crate::AppIdentity;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use etx_domain::{ApiKeyId, ErrorCode, SystemId};
use etx_http_kit::{ApiError, Principal, Problem};
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
        IdentityError::Invalid(v) => ApiError::new(ErrorCode::ValidationFailed).with_violations(v),
        IdentityError::Denied(d) => etx_http_kit::denial_error(d),
        IdentityError::NotRotatable(why) => ApiError::new(ErrorCode::ValidationFailed).with_detail(format!(
            "the key cannot be rotated: {why}; issue a new key instead"
        )),
        IdentityError::Unknown(e) => ApiError::internal(e),
    }
}

/// Who may manage API keys: the policy's `ManageKeys` (issue 4 §3) — a connected system whose
/// credential holds `keys:manage` (its own organisation's keys), or a person holding
/// `system_admin` (their home organisation's keys). Other people — operators, analysts,
/// auditors… — may not (R-SEC-1, R-SEC-5).
fn may_manage_keys(p: &Principal) -> Result<(), ApiError> {
    p.require(etx_domain::authz::Permission::ManageKeys)
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
    /// `active`, `expired` or `revoked`.
    pub status: String,
    /// What it may be used for (R-SEC-1): `records:write`, `records:read`, `schemas:read`,
    /// `keys:manage`.
    pub scopes: Vec<String>,
    /// When it stops working (a rotated key: the end of the overlap); `null`: when revoked.
    pub expires_at: Option<DateTime<Utc>>,
    /// The networks (CIDR) it may be used from; empty: any address.
    pub allowed_networks: Vec<String>,
    /// The key it succeeds, when a rotation issued it.
    pub rotated_from: Option<Uuid>,
    /// Its successor, once rotated.
    pub replaced_by: Option<Uuid>,
}

impl From<ApiKeyInfo> for ApiKeyOut {
    fn from(k: ApiKeyInfo) -> Self {
        Self {
            id: k.id.as_uuid(),
            system_id: k.system_id.as_uuid(),
            prefix: k.prefix.clone(),
            created_at: k.created_at,
            status: k.status(Utc::now()).as_str().to_owned(),
            revoked_at: k.revoked_at,
            scopes: k.policy.scope_names(),
            expires_at: k.policy.expires_at,
            allowed_networks: k
                .policy
                .allowed_networks
                .iter()
                .map(ToString::to_string)
                .collect(),
            rotated_from: k.rotated_from.map(|id| id.as_uuid()),
            replaced_by: k.replaced_by.map(|id| id.as_uuid()),
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

/// Request to issue a key, with its options (issue 4 §5). Without options the key has every
/// scope the issuer may grant, no expiry and no address allow-list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueKeyIn {
    /// The system (of the caller's organisation) the key is for; defaults to the caller's system.
    pub system_id: Option<Uuid>,
    /// What the key may be used for. Default: every scope for an administrator; for a
    /// connected system issuing a key, exactly the scopes of its own key (it can never grant
    /// one it lacks: `403 insufficient_scope`).
    #[schema(min_items = 1, max_items = 4)]
    pub scopes: Option<Vec<sources::ScopeName>>,
    /// When the key stops working: in the future, at most 730 days ahead. Exclusive with
    /// `ttl_days`.
    pub expires_at: Option<DateTime<Utc>>,
    /// The key's lifetime in days from now. Exclusive with `expires_at`.
    #[schema(minimum = 1, maximum = 730)]
    pub ttl_days: Option<u32>,
    /// Networks (IPv4 or IPv6, CIDR; a bare address is one host) the key may be used from;
    /// from any other address it is refused (`403 address_not_allowed`). Empty or absent: any
    /// address.
    #[schema(max_items = 32)]
    pub allowed_networks: Option<Vec<sources::NetworkIn>>,
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

/// Issues a new API key for a system of the caller's organisation, with optional scopes,
/// expiry (`expires_at` or `ttl_days`) and address allow-list (issue 4 §5, R-SEC-1); the other
/// keys keep working (to replace one with overlap, rotate it: `POST /api/v1/keys/{id}/rotate`).
/// The body is optional: without one, the key is for the caller's own system (so too with
/// `null`); a body that is sent must be valid.
#[utoipa::path(post, path = "/api/v1/keys", tag = "identity", request_body = Option<IssueKeyIn>,
    responses((status = 201, body = IssuedKeyOut),
        (status = 400, description = "`invalid_parameter`: a person must name the system; or a body that is not JSON (`malformed_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (not a system_admin), or `insufficient_scope`: a connected system granting a scope its own key lacks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such system in the caller's organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an unknown scope, a malformed network, an expiry in the past or more than 730 days ahead, both `expires_at` and `ttl_days`; one violation per field", body = Problem, content_type = "application/problem+json")),
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
    let (system, options) = match body {
        Some(b) => (
            b.system_id,
            sources::key_options(b.scopes, b.expires_at, b.ttl_days, b.allowed_networks)
                .map_err(|v| ApiError::new(ErrorCode::ValidationFailed).with_violations(v))?,
        ),
        None => (None, Default::default()),
    };
    let system = system
        .map(SystemId::from_uuid)
        .or(p.system_id)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidParameter).with_detail("system_id is required"))?;
    let (info, plaintext) = id
        .service
        .issue_key(p.org_id, system, options, p.actor())
        .await
        .map_err(api_error)?;
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

pub(crate) fn answer(r: Result<Caller, AuthError>) -> HttpResponse {
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
        .configure(sources::routes)
        .configure(accounts::routes)
        .configure(oidc::routes)
        .configure(oauth::routes);
}

/// A resource whose other methods are answered `405` with `Allow: <allow>`.
pub(crate) fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(etx_http_kit::method_not_allowed(allow))
}

/// Mounts the internal routes (under `/internal/v1`).
pub fn internal_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/authenticate", web::post().to(authenticate))
        .route("/sessions/authenticate", web::post().to(authenticate_session))
        .configure(oauth::internal_routes);
}

/// Identity's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(my_organisation, list_systems, list_keys, issue_key, revoke_key),
    components(schemas(ApiKeyOut, IssuedKeyOut, IssueKeyIn, SystemOut, OrganisationOut))
)]
#[derive(Debug)]
pub struct IdentityDoc;
