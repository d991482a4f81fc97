//! Sign-in through the external OpenID Connect provider over HTTP (issue 4 §4, R-SEC-5,
//! R-SEC-6), and the second factor such a session may still need.
//!
//! * `GET /auth/oidc/login` (public) — `302` to the provider, with the binding cookie.
//! * `GET /auth/oidc/callback` (public) — the provider's redirect back: `302` to the configured
//!   page with the `etx_session` cookie, or a problem; either way the binding cookie is removed.
//! * `POST /auth/mfa/verify` (a session in `second_factor_required`) — the TOTP or recovery
//!   code; the session moves on.
//!
//! When no provider is configured, the two sign-in endpoints answer `404 not_found`.

use super::accounts::{SessionOut, account_error, cookie_token, person};
use crate::AppIdentity;
use actix_web::http::header::{CACHE_CONTROL, COOKIE, LOCATION, SET_COOKIE};
use actix_web::{HttpRequest, HttpResponse, Responder, web};
use etx_domain::{ErrorCode, FieldViolation, ViolationCode};
use etx_http_kit::{ApiError, Principal, Problem, ProblemViolation};
use etx_identity_core::account::session_cookie;
use etx_identity_core::oidc::{binding_cookie, binding_token_in, expired_binding_cookie};
use etx_identity_core::{AccountError, OidcCallback, OidcError, SecondFactor};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use zeroize::Zeroizing;

fn not_configured() -> ApiError {
    ApiError::not_found().with_detail("OpenID Connect sign-in is not configured on this hub")
}

/// Maps sign-in failures to the catalogue. The details say what kind of failure it was, never
/// which account, nor whether one exists.
fn oidc_error(e: OidcError) -> ApiError {
    let failed = |detail: &str| ApiError::new(ErrorCode::OidcFailed).with_detail(detail);
    match e {
        OidcError::NotConfigured => not_configured(),
        OidcError::InvalidState => failed(
            "the sign-in is unknown, expired, already used or was started in another browser; start again",
        ),
        OidcError::Denied => failed("the identity provider did not authorise the sign-in"),
        OidcError::CodeRefused(_) => failed("the identity provider refused the authorization code"),
        OidcError::InvalidIdToken(_) => failed("the identity provider's ID token is not valid"),
        OidcError::NoAccount => failed("no active account of this hub matches the identity provider's user"),
        OidcError::Locked { retry_after_secs } => {
            ApiError::new(ErrorCode::AccountLocked).with_retry_after(retry_after_secs)
        }
        OidcError::ProviderUnavailable(_) => ApiError::new(ErrorCode::BadGateway)
            .with_detail("the identity provider could not be reached; try again later"),
        OidcError::ProviderInvalid(_) => ApiError::new(ErrorCode::BadGateway)
            .with_detail("the identity provider's answer is not usable; tell the hub's operator"),
        OidcError::Unknown(e) => ApiError::internal(e),
    }
}

/// Starts a sign-in through the configured OpenID Connect provider (authorization code flow
/// with PKCE S256, R-SEC-5): redirects the browser to the provider's authorization endpoint and
/// sets the binding cookie `etx_oidc_binding` (`HttpOnly; Secure; SameSite=Lax;
/// Path=/api/v1/auth/oidc; Max-Age=600`), without which the callback refuses the sign-in. No
/// credential needed.
#[utoipa::path(get, path = "/api/v1/auth/oidc/login", tag = "accounts",
    responses(
        (status = 302, description = "to the provider's authorization endpoint",
            headers(
                ("Location" = String, description = "the provider's authorization URL (response_type=code, state, nonce, S256 code_challenge)"),
                ("Set-Cookie" = String, description = "etx_oidc_binding=…; HttpOnly; Secure; SameSite=Lax; Path=/api/v1/auth/oidc; Max-Age=600"))),
        (status = 404, description = "not_found: OpenID Connect sign-in is not configured", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited (per client address); Retry-After says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "bad_gateway: the identity provider cannot be reached or its metadata is not usable", body = Problem, content_type = "application/problem+json")))]
pub async fn oidc_login(id: web::Data<AppIdentity>, _gateway: Principal) -> Result<HttpResponse, ApiError> {
    let oidc = id.oidc.as_ref().ok_or_else(not_configured)?;
    let start = oidc.sign_in.begin().await.map_err(oidc_error)?;
    Ok(HttpResponse::Found()
        .insert_header((LOCATION, start.authorization_url))
        .insert_header((SET_COOKIE, binding_cookie(&start.binding_token)))
        .insert_header((CACHE_CONTROL, "no-store"))
        .finish())
}

/// The provider's redirect back to the hub.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The `state` of the sign-in.
    pub state: Option<String>,
    /// An OAuth error, when the provider did not authorise (e.g. `access_denied`).
    pub error: Option<String>,
    /// The provider's description of the error (ignored).
    pub error_description: Option<String>,
    /// The provider's issuer identifier (RFC 9207), when it sends it.
    pub iss: Option<String>,
}

impl std::fmt::Debug for CallbackQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackQuery")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

/// Completes a sign-in through the OpenID Connect provider (R-SEC-5, R-SEC-6): checks the
/// `state` (single use, 10 minutes) against the browser's binding cookie, exchanges the code
/// with its PKCE verifier, verifies the ID token (signature against the provider's keys,
/// algorithm, issuer, audience, expiry, nonce) and opens a session for the active account whose
/// username is the configured claim. The session is `second_factor_required` when the account
/// has a second factor (unless the provider's own MFA is trusted and was used), else as after a
/// password sign-in. Redirects to the configured page with the `etx_session` cookie. Every
/// refusal is `oidc_failed` (or `account_locked`), opens no session and removes the binding
/// cookie; unknown and disabled accounts are refused alike.
#[utoipa::path(get, path = "/api/v1/auth/oidc/callback", tag = "accounts", params(CallbackQuery),
    responses(
        (status = 302, description = "signed in: to the configured page (oidc.post_login_redirect)",
            headers(
                ("Location" = String, description = "oidc.post_login_redirect"),
                ("Set-Cookie" = String, description = "etx_session=…; HttpOnly; Secure; SameSite=Strict; Path=/ — and the binding cookie removed"))),
        (status = 401, description = "oidc_failed: unknown, expired, used or foreign sign-in, provider refusal, invalid ID token, or no active account matches", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "not_found: OpenID Connect sign-in is not configured", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "account_locked: too many failed sign-ins for this username or address; Retry-After says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "rate_limited (per client address); Retry-After says when to try again", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "bad_gateway: the identity provider cannot be reached or answered wrongly", body = Problem, content_type = "application/problem+json")))]
pub async fn oidc_callback(
    id: web::Data<AppIdentity>,
    gateway: Principal,
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    let Some(oidc) = id.oidc.as_ref() else {
        return not_configured().respond_to(&req);
    };
    let q = query.into_inner();
    let binding =
        binding_token_in(req.headers().get_all(COOKIE).filter_map(|v| v.to_str().ok())).map(str::to_owned);
    let result = oidc
        .sign_in
        .callback(OidcCallback {
            code: q.code,
            state: q.state,
            provider_error: q.error,
            issuer: q.iss,
            binding_token: binding,
            ip: gateway.client_ip,
        })
        .await;
    let mut resp = match result {
        Ok(grant) => HttpResponse::Found()
            .insert_header((LOCATION, oidc.post_login_redirect.as_str()))
            .insert_header((SET_COOKIE, session_cookie(&grant.token)))
            .insert_header((CACHE_CONTROL, "no-store"))
            .finish(),
        Err(e) => oidc_error(e).respond_to(&req),
    };
    if let Ok(v) = expired_binding_cookie().parse() {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

/// The second factor a session opened through the OpenID provider still needs: exactly one of
/// the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyIn {
    /// The current 6-digit code of the authenticator app.
    pub totp: Option<String>,
    /// Or one of the recovery codes (each works once).
    pub recovery_code: Option<String>,
}

impl std::fmt::Debug for MfaVerifyIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaVerifyIn").finish_non_exhaustive()
    }
}

/// Gives the second factor (R-SEC-6) of a session in `second_factor_required` — the only call,
/// with `GET /auth/me` and `POST /auth/logout`, such a session may make. A TOTP code is
/// accepted once (later than the last one accepted), a recovery code once; a wrong code counts
/// toward the account's lockout like a failed sign-in. The session then becomes `full` (or
/// `password_change_required` when the account still has a temporary password).
#[utoipa::path(post, path = "/api/v1/auth/mfa/verify", tag = "accounts", request_body = MfaVerifyIn,
    responses((status = 200, body = SessionOut),
        (status = 401, description = "invalid_mfa_code: wrong, expired or already used; or no live session (missing_credentials, session_expired)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "already_exists: the session is not waiting for a second factor", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "validation_failed: give totp or recovery_code, exactly one", body = Problem, content_type = "application/problem+json"),
        (status = 423, description = "account_locked: too many failures; Retry-After says when to try again", body = Problem, content_type = "application/problem+json")),
    security(("session" = [])))]
pub async fn verify_mfa(
    id: web::Data<AppIdentity>,
    req: HttpRequest,
    p: Principal,
    body: web::Json<MfaVerifyIn>,
) -> Result<HttpResponse, ApiError> {
    let actor = person(&p)?;
    let token = cookie_token(&req)?;
    let factor = match body.into_inner() {
        MfaVerifyIn {
            totp: Some(code),
            recovery_code: None,
        } => SecondFactor::Totp(code),
        MfaVerifyIn {
            totp: None,
            recovery_code: Some(code),
        } => SecondFactor::Recovery(Zeroizing::new(code)),
        _ => {
            return Err(ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
                FieldViolation::new("/totp", ViolationCode::Invalid)
                    .with_detail("give totp or recovery_code, exactly one"),
            ]));
        }
    };
    let view = id
        .accounts
        .verify_second_factor(&token, &actor, factor)
        .await
        .map_err(|e| match e {
            AccountError::Conflict => ApiError::new(ErrorCode::AlreadyExists)
                .with_detail("the session is not waiting for a second factor"),
            e => account_error(e),
        })?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(SessionOut::from(view)))
}

/// Mounts the routes (under `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/auth/oidc/login", "GET").route(web::get().to(oidc_login)))
        .service(resource("/auth/oidc/callback", "GET").route(web::get().to(oidc_callback)))
        .service(resource("/auth/mfa/verify", "POST").route(web::post().to(verify_mfa)));
}

/// The OpenID Connect part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(oidc_login, oidc_callback, verify_mfa),
    components(schemas(MfaVerifyIn, SessionOut, Problem, ProblemViolation))
)]
#[derive(Debug)]
pub struct OidcDoc;
