//! OAuth2 for connected systems over HTTP (R-SEC-1; DESIGN.md §5): an organisation registers
//! OAuth clients for its systems (`/api/v1/oauth/clients`), a client exchanges its credentials
//! for a short-lived access token at the token endpoint (`POST /api/v1/oauth/token`, RFC 6749
//! §4.4) and revokes it at the revocation endpoint (`POST /api/v1/oauth/revoke`, RFC 7009).
//!
//! The two endpoints speak OAuth, not our problem format, because that is what OAuth client
//! libraries parse: `application/x-www-form-urlencoded` requests; client authentication by HTTP
//! Basic (`client_secret_basic`, id and secret form-urlencoded first, RFC 6749 §2.3.1) or in the
//! body (`client_secret_post`), never both; answers per RFC 6749 §5.1 and errors per §5.2 in
//! `application/json`, with `Cache-Control: no-store`. They are public at the gateway (the
//! client authenticates itself here), so every request counts against the client address's
//! rate limit; a revocation clears every gateway's authentication cache.

use super::{resource, sources::ScopeName};
use crate::AppIdentity;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use etx_domain::authz::{Permission, Scope};
use etx_domain::ids::OAuthClientId;
use etx_domain::{ErrorCode, FieldViolation, SystemId, ViolationCode};
use etx_http_kit::{ApiError, KeepErrorBody, Principal, Problem};
use etx_identity_core::oauth::{
    ClientCredentials, ClientError, Grantor, OAuthClientInfo, TOKEN_TYPE, TokenError, TokenRequest,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;
use zeroize::Zeroizing;

/// The form media type of both endpoints.
const FORM: &str = "application/x-www-form-urlencoded";

/// Largest request body the endpoints read: a token request is a few hundred bytes.
const MAX_FORM_BYTES: usize = 8 * 1024;

/// The challenge of an `invalid_client` answer (RFC 6749 §5.2).
const BASIC_CHALLENGE: &str = "Basic realm=\"etxhub\"";

/// A token request (RFC 6749 §4.4.2), as `application/x-www-form-urlencoded`. The client
/// authenticates by HTTP Basic (preferred) or with `client_id` and `client_secret` here.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct TokenForm {
    /// Always `client_credentials`.
    #[schema(max_length = 64, example = "client_credentials")]
    grant_type: String,
    /// Space-separated scopes, a subset of the client's (`records:write records:read
    /// schemas:read keys:manage`); absent: all of the client's.
    #[schema(max_length = 256, example = "records:write", nullable = false)]
    scope: Option<String>,
    /// The client id, when not sent by HTTP Basic (`client_secret_post`).
    #[schema(max_length = 64, nullable = false)]
    client_id: Option<String>,
    /// The client secret, when not sent by HTTP Basic (`client_secret_post`).
    #[schema(max_length = 128, nullable = false)]
    client_secret: Option<String>,
}

/// A revocation request (RFC 7009 §2.1), as `application/x-www-form-urlencoded`, with client
/// authentication as at the token endpoint.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct RevokeForm {
    /// The access token to revoke.
    #[schema(max_length = 128)]
    token: String,
    /// `access_token` (optional; only access tokens exist).
    #[schema(max_length = 64, nullable = false)]
    token_type_hint: Option<String>,
    /// The client id, when not sent by HTTP Basic.
    #[schema(max_length = 64, nullable = false)]
    client_id: Option<String>,
    /// The client secret, when not sent by HTTP Basic.
    #[schema(max_length = 128, nullable = false)]
    client_secret: Option<String>,
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenOut {
    /// The access token: send it as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until it expires.
    pub expires_in: u64,
    /// The granted scopes, space-separated.
    pub scope: String,
}

/// An OAuth error response (RFC 6749 §5.2): `invalid_request`, `invalid_client`,
/// `unsupported_grant_type` or `invalid_scope`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OAuthErrorOut {
    /// The error code.
    pub error: String,
    /// A short English explanation.
    pub error_description: String,
}

/// An OAuth client as listed (never its secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OAuthClientOut {
    /// The `client_id`.
    pub client_id: Uuid,
    /// The system it acts as.
    pub system_id: Uuid,
    /// What its tokens may be granted.
    pub scopes: Vec<ScopeName>,
    /// Public prefix of its secret (`etxcs_<prefix>_…`).
    pub secret_prefix: String,
    /// Registered at.
    pub created_at: DateTime<Utc>,
    /// Deleted (revoked) at.
    pub revoked_at: Option<DateTime<Utc>>,
    /// `active` or `revoked`.
    pub status: String,
}

fn scope_name(s: Scope) -> ScopeName {
    match s {
        Scope::RecordsWrite => ScopeName::RecordsWrite,
        Scope::RecordsRead => ScopeName::RecordsRead,
        Scope::SchemasRead => ScopeName::SchemasRead,
        Scope::KeysManage => ScopeName::KeysManage,
    }
}

impl From<OAuthClientInfo> for OAuthClientOut {
    fn from(c: OAuthClientInfo) -> Self {
        Self {
            client_id: c.id.as_uuid(),
            system_id: c.system_id.as_uuid(),
            scopes: c.scopes.into_iter().map(scope_name).collect(),
            secret_prefix: c.secret_prefix,
            created_at: c.created_at,
            status: if c.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            }
            .into(),
            revoked_at: c.revoked_at,
        }
    }
}

/// A newly registered client: the only time its secret is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RegisteredClientOut {
    /// The client's facts.
    #[serde(flatten)]
    pub client: OAuthClientOut,
    /// The client secret in clear. Store it now; it cannot be shown again.
    pub client_secret: String,
    /// Where to ask for tokens.
    pub token_endpoint: String,
}

/// Request to register an OAuth client: a JSON object (an array is refused, although serde
/// would read one as the fields in order).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct NewClientIn {
    /// The system (of the caller's organisation) the client acts as; defaults to the caller's
    /// own system. A person must name it.
    #[schema(pattern = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]
    pub system_id: Option<Uuid>,
    /// What its tokens may be granted. Default: every scope for an administrator; for a
    /// connected system, exactly the scopes of its own credential (it can never grant one it
    /// lacks: `403 insufficient_scope`).
    #[schema(min_items = 1, max_items = 4)]
    pub scopes: Option<Vec<ScopeName>>,
}

/// The fields of [`NewClientIn`], read from an object only.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewClientFields {
    system_id: Option<Uuid>,
    scopes: Option<Vec<ScopeName>>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for NewClientIn {
    type Error = serde_json::Error;

    fn try_from(m: serde_json::Map<String, serde_json::Value>) -> Result<Self, Self::Error> {
        let f: NewClientFields = serde_json::from_value(serde_json::Value::Object(m))?;
        Ok(Self {
            system_id: f.system_id,
            scopes: f.scopes,
        })
    }
}

/// A refusal of the token or revocation endpoint, in RFC 6749 §5.2 form.
/// A store failure is a server error (problem+json `internal`), not an OAuth answer.
fn oauth_error(e: TokenError) -> Result<HttpResponse, ApiError> {
    let Some(code) = e.rfc_code() else {
        return Err(ApiError::internal(e));
    };
    let status = if code == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    let mut resp = HttpResponse::build(status);
    resp.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"));
    if status == StatusCode::UNAUTHORIZED {
        resp.insert_header((header::WWW_AUTHENTICATE, BASIC_CHALLENGE));
    }
    let mut resp = resp.json(OAuthErrorOut {
        error: code.into(),
        error_description: e.description().into(),
    });
    // The standard middleware keeps this body as it is: OAuth clients parse it.
    resp.extensions_mut().insert(KeepErrorBody);
    Ok(resp)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space); `None` when a
/// `%` escape is malformed or the result is not UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex_value)?;
                let lo = bytes.get(i + 2).copied().and_then(hex_value)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The parameters of a form body. RFC 6749 §3.1: a parameter without a value is as if
/// omitted, and none may be sent twice.
fn parse_form(req: &HttpRequest, body: &[u8]) -> Result<HashMap<String, String>, TokenError> {
    let essence = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    if essence.as_deref() != Some(FORM) {
        return Err(TokenError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    if body.len() > MAX_FORM_BYTES {
        return Err(TokenError::InvalidRequest("the body is too large"));
    }
    let text = std::str::from_utf8(body).map_err(|_| TokenError::InvalidRequest("the body is not UTF-8"))?;
    let mut params = HashMap::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (form_decode(k), form_decode(v)) else {
            return Err(TokenError::InvalidRequest("the body is not valid form encoding"));
        };
        if v.is_empty() {
            continue;
        }
        if params.insert(k, v).is_some() {
            return Err(TokenError::InvalidRequest("a parameter is sent more than once"));
        }
    }
    Ok(params)
}

/// The client's credentials (RFC 6749 §2.3.1): from HTTP Basic or from the body, never both;
/// `None` when none were sent. A malformed or non-Basic `Authorization` is `invalid_client`.
fn client_credentials(
    req: &HttpRequest,
    params: &mut HashMap<String, String>,
) -> Result<Option<ClientCredentials>, TokenError> {
    let body_id = params.remove("client_id");
    let body_secret = params.remove("client_secret").map(Zeroizing::new);
    let Some(auth) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(match (body_id, body_secret) {
            (Some(client_id), Some(client_secret)) => Some(ClientCredentials {
                client_id,
                client_secret,
            }),
            _ => None,
        });
    };
    let basic = auth
        .to_str()
        .ok()
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .and_then(|(_, b64)| STANDARD.decode(b64.trim()).ok())
        .map(Zeroizing::new)
        .and_then(|raw| {
            let text = std::str::from_utf8(&raw).ok()?;
            let (id, secret) = text.split_once(':')?;
            Some((form_decode(id)?, Zeroizing::new(form_decode(secret)?)))
        });
    let Some((client_id, client_secret)) = basic else {
        return Err(TokenError::InvalidClient);
    };
    if body_secret.is_some() {
        return Err(TokenError::InvalidRequest(
            "use one client authentication method: HTTP Basic or the body, not both",
        ));
    }
    if body_id.is_some_and(|id| id != client_id) {
        return Err(TokenError::InvalidRequest(
            "client_id in the body differs from the one in HTTP Basic",
        ));
    }
    Ok(Some(ClientCredentials {
        client_id,
        client_secret,
    }))
}

/// Issues an access token to a connected system's OAuth client: the client-credentials grant
/// (RFC 6749 §4.4). The client authenticates by HTTP Basic (`client_secret_basic`: client id
/// and secret form-urlencoded, RFC 6749 §2.3.1) or with `client_id` and `client_secret` in the
/// body (`client_secret_post`), not both. The token is opaque and short-lived; send it as
/// `Authorization: Bearer <token>` instead of `X-API-Key`. Errors follow RFC 6749 §5.2
/// (`application/json`, not problem+json, so that OAuth client libraries read them); an unknown
/// client and a wrong secret are the same `invalid_client`. Counted against the client
/// address's rate limit.
#[utoipa::path(post, path = "/api/v1/oauth/token", tag = "oauth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = TokenOut, description = "The access token (RFC 6749 §5.1)",
            headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 400, body = OAuthErrorOut, description = "`invalid_request` (not a form, a parameter missing or repeated, two client authentication methods), `unsupported_grant_type` or `invalid_scope`"),
        (status = 401, body = OAuthErrorOut, description = "`invalid_client`: no, unknown, deleted or wrong client credentials",
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"etxhub\"`"))),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "`payload_too_large`"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "`rate_limited` (per client address); retry after `Retry-After` seconds",
            headers(("Retry-After" = u64, description = "Whole seconds to wait")))))]
pub async fn oauth_token(
    id: web::Data<AppIdentity>,
    _gateway: Principal,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let issued = async {
        let mut params = parse_form(&req, &body)?;
        let creds = client_credentials(&req, &mut params)?;
        let request = TokenRequest {
            grant_type: params.remove("grant_type"),
            scope: params.remove("scope"),
        };
        id.oauth.issue_token(creds.as_ref(), &request).await
    };
    match issued.await {
        Ok(t) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(TokenOut {
                scope: t.scope(),
                access_token: t.access_token.to_string(),
                token_type: TOKEN_TYPE.into(),
                expires_in: t.expires_in,
            })),
        Err(e) => oauth_error(e),
    }
}

/// Revokes an access token (RFC 7009): the client that was issued the token authenticates as
/// at the token endpoint and sends it as `token`. The token stops working at once on every
/// gateway. An unknown or already revoked token, or another client's, is answered `200` too and
/// changes nothing (RFC 7009 §2.2).
#[utoipa::path(post, path = "/api/v1/oauth/revoke", tag = "oauth",
    request_body(content = RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke"),
        (status = 400, body = OAuthErrorOut, description = "`invalid_request`: not a form, `token` missing, a parameter repeated, two client authentication methods"),
        (status = 401, body = OAuthErrorOut, description = "`invalid_client`",
            headers(("WWW-Authenticate" = String, description = "`Basic realm=\"etxhub\"`"))),
        (status = 413, body = Problem, content_type = "application/problem+json", description = "`payload_too_large`"),
        (status = 429, body = Problem, content_type = "application/problem+json", description = "`rate_limited` (per client address); retry after `Retry-After` seconds",
            headers(("Retry-After" = u64, description = "Whole seconds to wait")))))]
pub async fn oauth_revoke(
    id: web::Data<AppIdentity>,
    _gateway: Principal,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let revoked = async {
        let mut params = parse_form(&req, &body)?;
        let creds = client_credentials(&req, &mut params)?;
        let token = params.remove("token").map(Zeroizing::new);
        id.oauth
            .revoke_token(creds.as_ref(), token.as_deref().map(String::as_str))
            .await
    };
    match revoked.await {
        Ok(()) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .finish()),
        Err(e) => oauth_error(e),
    }
}

fn client_error(e: ClientError) -> ApiError {
    match e {
        ClientError::NotFound => ApiError::not_found(),
        ClientError::NoScope => ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
            FieldViolation::new("/scopes", ViolationCode::TooSmall).with_detail("at least one scope"),
        ]),
        ClientError::NotHeld(s) => ApiError::new(ErrorCode::InsufficientScope).with_detail(format!(
            "the caller's credential does not hold `{s}`, so cannot grant it"
        )),
        ClientError::Unknown(e) => ApiError::internal(e),
    }
}

/// The OAuth clients of the caller's organisation, deleted ones included, newest first.
#[utoipa::path(get, path = "/api/v1/oauth/clients", tag = "oauth",
    responses((status = 200, body = Vec<OAuthClientOut>)),
    security(("api_key" = []), ("session" = [])))]
pub async fn list_oauth_clients(id: web::Data<AppIdentity>, p: Principal) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageKeys)?;
    let v = id.oauth.list_clients(p.org_id).await.map_err(client_error)?;
    Ok(HttpResponse::Ok().json(v.into_iter().map(OAuthClientOut::from).collect::<Vec<_>>()))
}

/// Registers an OAuth client for a system of the caller's organisation (R-SEC-1): its
/// `client_id` and `client_secret` (shown once) get short-lived access tokens at
/// `POST /api/v1/oauth/token`. A system_admin, or a connected system with `keys:manage`.
#[utoipa::path(post, path = "/api/v1/oauth/clients", tag = "oauth", request_body = NewClientIn,
    responses((status = 201, body = RegisteredClientOut),
        (status = 400, description = "`invalid_parameter`: a person must name the system; or a body that is not JSON (`malformed_json`)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden` (not a system_admin), or `insufficient_scope`: a connected system granting a scope its own credential lacks", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such system in the caller's organisation", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an unknown scope, or more than four", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("session" = [])))]
pub async fn create_oauth_client(
    id: web::Data<AppIdentity>,
    p: Principal,
    body: web::Json<NewClientIn>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageKeys)?;
    let body = body.into_inner();
    if body.scopes.as_ref().is_some_and(|s| s.len() > Scope::ALL.len()) {
        return Err(ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
            FieldViolation::new("/scopes", ViolationCode::TooLarge).with_detail("at most 4 scopes"),
        ]));
    }
    let system = body
        .system_id
        .map(SystemId::from_uuid)
        .or(p.system_id)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidParameter).with_detail("system_id is required"))?;
    let grantor = if p.system_id.is_some() {
        Grantor::System {
            holds: p.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
        }
    } else {
        Grantor::Administrator
    };
    let scopes = body.scopes.map(|v| v.into_iter().map(Scope::from).collect());
    let c = id
        .oauth
        .register_client(p.org_id, system, scopes, &grantor)
        .await
        .map_err(client_error)?;
    Ok(HttpResponse::Created().json(RegisteredClientOut {
        client: c.info.into(),
        client_secret: c.secret.to_string(),
        token_endpoint: "/api/v1/oauth/token".into(),
    }))
}

/// Deletes an OAuth client of the caller's organisation: it can no longer get tokens, and every
/// token it holds stops working at once on every gateway.
#[utoipa::path(delete, path = "/api/v1/oauth/clients/{id}", tag = "oauth",
    params(("id" = Uuid, Path, description = "the client_id")),
    responses((status = 204, description = "deleted"),
        (status = 404, description = "No such client in the caller's organisation", body = Problem, content_type = "application/problem+json")),
    security(("api_key" = []), ("session" = [])))]
pub async fn delete_oauth_client(
    id: web::Data<AppIdentity>,
    p: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageKeys)?;
    id.oauth
        .delete_client(p.org_id, OAuthClientId::from_uuid(path.into_inner()))
        .await
        .map_err(client_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of the internal access-token authentication call.
#[derive(Serialize, Deserialize)]
pub struct AuthenticateTokenIn {
    /// The token from `Authorization: Bearer`.
    pub token: String,
}

impl std::fmt::Debug for AuthenticateTokenIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthenticateTokenIn").finish_non_exhaustive()
    }
}

/// Internal: authenticates an access token for the gateway, like the API-key call.
pub async fn authenticate_token(
    id: web::Data<AppIdentity>,
    _gateway: Principal,
    body: web::Json<AuthenticateTokenIn>,
) -> HttpResponse {
    super::answer(id.oauth.authenticate_access_token(&body.token).await)
}

/// Mounts the public routes (under `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/oauth/token", "POST").route(web::post().to(oauth_token)))
        .service(resource("/oauth/revoke", "POST").route(web::post().to(oauth_revoke)))
        .service(
            resource("/oauth/clients", "GET, POST")
                .route(web::get().to(list_oauth_clients))
                .route(web::post().to(create_oauth_client)),
        )
        .service(resource("/oauth/clients/{id}", "DELETE").route(web::delete().to(delete_oauth_client)));
}

/// Mounts the internal routes (under `/internal/v1`).
pub fn internal_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/tokens/authenticate", web::post().to(authenticate_token));
}

/// The OAuth part of identity's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        oauth_token,
        oauth_revoke,
        list_oauth_clients,
        create_oauth_client,
        delete_oauth_client
    ),
    components(schemas(
        TokenForm,
        RevokeForm,
        TokenOut,
        OAuthErrorOut,
        OAuthClientOut,
        RegisteredClientOut,
        NewClientIn,
        ScopeName
    ))
)]
#[derive(Debug)]
pub struct OAuthDoc;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn form_request(auth: Option<&str>) -> HttpRequest {
        let mut r = TestRequest::post().insert_header((
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8",
        ));
        if let Some(a) = auth {
            r = r.insert_header((header::AUTHORIZATION, a));
        }
        r.to_http_request()
    }

    #[test]
    fn form_components_decode_like_a_browser_encodes_them() {
        assert_eq!(
            form_decode("records%3Awrite+records%3aread").unwrap(),
            "records:write records:read"
        );
        assert_eq!(form_decode("%C3%A9").unwrap(), "é");
        for bad in ["%", "%4", "%zz", "%+1", "%FF"] {
            assert_eq!(form_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_form_refuses_repeats_and_other_media_types_and_drops_empty_values() {
        let req = form_request(None);
        let p = parse_form(&req, b"grant_type=client_credentials&scope=&x").unwrap();
        assert_eq!(p.len(), 1);
        assert!(matches!(
            parse_form(&req, b"scope=a&scope=b"),
            Err(TokenError::InvalidRequest(_))
        ));
        let json = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "application/json"))
            .to_http_request();
        assert!(matches!(
            parse_form(&json, b"{}"),
            Err(TokenError::InvalidRequest(_))
        ));
    }

    #[test]
    fn client_credentials_come_from_basic_or_the_body_never_both() {
        let basic = format!("Basic {}", STANDARD.encode("0190-id:etxcs_secret%2Bplus"));
        let req = form_request(Some(&basic));
        let mut p = HashMap::new();
        let c = client_credentials(&req, &mut p).unwrap().unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.client_secret.as_str()),
            ("0190-id", "etxcs_secret+plus")
        );

        let mut p = HashMap::from([("client_secret".to_owned(), "s".to_owned())]);
        assert!(matches!(
            client_credentials(&req, &mut p),
            Err(TokenError::InvalidRequest(_))
        ));
        let mut p = HashMap::from([("client_id".to_owned(), "other".to_owned())]);
        assert!(matches!(
            client_credentials(&req, &mut p),
            Err(TokenError::InvalidRequest(_))
        ));

        let mut p = HashMap::from([
            ("client_id".to_owned(), "id".to_owned()),
            ("client_secret".to_owned(), "s".to_owned()),
        ]);
        let c = client_credentials(&form_request(None), &mut p).unwrap().unwrap();
        assert_eq!(c.client_id, "id");
        assert!(
            client_credentials(&form_request(None), &mut HashMap::new())
                .unwrap()
                .is_none()
        );
        for bad in [
            "Bearer x",
            "Basic !!!",
            "Basic",
            &format!("Basic {}", STANDARD.encode("no-colon")),
        ] {
            assert!(
                matches!(
                    client_credentials(&form_request(Some(bad)), &mut HashMap::new()),
                    Err(TokenError::InvalidClient)
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_new_client_is_an_object_with_known_fields_only() {
        assert!(serde_json::from_str::<NewClientIn>("[null, null]").is_err());
        assert!(serde_json::from_str::<NewClientIn>(r#"{"x": 1}"#).is_err());
        let c: NewClientIn = serde_json::from_str(r#"{"scopes": ["records:read"]}"#).unwrap();
        assert_eq!(c.scopes.map(|s| s.len()), Some(1));
        assert!(serde_json::from_str::<NewClientIn>("{}").is_ok());
    }

    #[test]
    fn errors_are_rfc_6749_json_with_a_basic_challenge_on_401() {
        let r = oauth_error(TokenError::InvalidClient).unwrap();
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            BASIC_CHALLENGE
        );
        assert_eq!(r.headers().get(header::CACHE_CONTROL).unwrap(), "no-store");
        assert!(r.extensions().contains::<KeepErrorBody>());
        let r = oauth_error(TokenError::UnsupportedGrantType).unwrap();
        assert_eq!(r.status(), 400);
        assert!(r.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
}
