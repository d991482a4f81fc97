//! People over HTTP (R-SEC-5, R-SEC-6): signing in and out, the session, the own password, MFA
//! enrolment, and account administration by `system_admin`s within their organisation subtree.
//!
//! The gateway authenticates every call but `POST /auth/login` (public, rate-limited per
//! address) and enforces the session's state and the `X-CSRF-Token` header; handlers here read
//! the session cookie only for the calls that act on the session itself (me, logout, password,
//! MFA), and always check that it belongs to the principal's person.

use crate::AppIdentity;
use actix_web::http::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use etx_domain::{ErrorCode, FieldViolation, OrgId, UserId, ViolationCode};
use etx_http_kit::{ApiError, Principal};
use etx_identity_core::account::{expired_session_cookie, session_cookie, session_token_in};
use etx_identity_core::{
    AccountError, Actor, LoginError, LoginRequest, NewUser, Role, SecondFactor, SessionView, UserInfo,
    UserPatch,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Maps account errors to the catalogue.
pub fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::NotFound => ApiError::not_found(),
        AccountError::Forbidden => ApiError::new(ErrorCode::Forbidden)
            .with_detail("only a system_admin manages accounts, within their organisation subtree"),
        AccountError::Conflict => ApiError::new(ErrorCode::AlreadyExists),
        AccountError::Invalid(v) => ApiError::new(ErrorCode::ValidationFailed).with_violations(v),
        AccountError::InvalidCredentials => {
            ApiError::new(ErrorCode::InvalidCredentials).with_detail("the current password is wrong")
        }
        AccountError::InvalidMfaCode => ApiError::new(ErrorCode::InvalidMfaCode),
        AccountError::Locked { retry_after_secs } => {
            ApiError::new(ErrorCode::AccountLocked).with_retry_after(retry_after_secs)
        }
        AccountError::SessionExpired => ApiError::new(ErrorCode::SessionExpired),
        AccountError::Unknown(e) => ApiError::internal(e),
    }
}

/// One detail for every refused sign-in, so that the answer never tells what was wrong.
const LOGIN_REFUSED: &str =
    "the username, password or second factor is wrong, or a second factor is required";

fn login_error(e: LoginError) -> ApiError {
    match e {
        LoginError::MfaRequired => ApiError::new(ErrorCode::MfaRequired).with_detail(LOGIN_REFUSED),
        LoginError::InvalidMfaCode => ApiError::new(ErrorCode::InvalidMfaCode).with_detail(LOGIN_REFUSED),
        LoginError::Locked { retry_after_secs } => {
            ApiError::new(ErrorCode::AccountLocked).with_retry_after(retry_after_secs)
        }
        LoginError::Unknown(e) => ApiError::internal(e),
    }
}

/// The person behind a principal; `Forbidden` for a connected system.
pub(crate) fn person(p: &Principal) -> Result<Actor, ApiError> {
    let user_id = p
        .subject
        .strip_prefix("user:")
        .and_then(|id| id.parse::<UserId>().ok())
        .ok_or_else(|| {
            ApiError::new(ErrorCode::Forbidden).with_detail("only a signed-in person may do this")
        })?;
    Ok(Actor {
        user_id,
        org_id: p.org_id,
        roles: p.roles.iter().filter_map(|r| Role::parse(r).ok()).collect(),
        ip: p.client_ip.clone(),
    })
}

/// The session token from the request's cookie.
pub(crate) fn cookie_token(req: &HttpRequest) -> Result<String, ApiError> {
    let headers = req.headers().get_all(COOKIE).filter_map(|v| v.to_str().ok());
    session_token_in(headers)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::new(ErrorCode::SessionExpired).with_detail("no session cookie"))
}

fn secret(s: &str) -> Zeroizing<String> {
    Zeroizing::new(s.to_owned())
}

/// A person's account as shown to them and to administrators (never a secret).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserOut {
    /// Account id.
    pub id: Uuid,
    /// Unique, lower case.
    pub username: String,
    /// Display name.
    pub display_name: String,
    /// Home organisation: the account acts within its subtree.
    pub org_id: Uuid,
    /// `system_admin`, `security_officer`, `operator`, `analyst`, `auditor`, `data_consumer`.
    pub roles: Vec<String>,
    /// `active` or `disabled`.
    pub status: String,
    /// The next sign-in must change the password first.
    pub must_change_password: bool,
    /// A TOTP second factor is enrolled (mandatory for every account: until it is, a session
    /// may only enrol it).
    pub mfa_enabled: bool,
    /// Created at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
}

impl From<UserInfo> for UserOut {
    fn from(u: UserInfo) -> Self {
        Self {
            id: u.id.as_uuid(),
            username: u.username.to_string(),
            display_name: u.display_name.to_string(),
            org_id: u.org_id.as_uuid(),
            roles: u.roles.names(),
            status: u.status.as_str().to_owned(),
            must_change_password: u.must_change_password,
            mfa_enabled: u.mfa_enabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

/// The signed-in session.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionOut {
    /// The account.
    pub user: UserOut,
    /// The account's roles.
    pub roles: Vec<String>,
    /// The account's organisation.
    pub org_id: Uuid,
    /// `full`; `password_change_required` (only `POST /auth/password` works);
    /// `mfa_enrolment_required` (only `POST /auth/mfa/enroll` and `/auth/mfa/confirm` work); or,
    /// after a sign-in through the OpenID provider, `second_factor_required` (only
    /// `POST /auth/mfa/verify` works).
    pub state: String,
    /// Send it as `X-CSRF-Token` with every POST, PUT, PATCH and DELETE.
    pub csrf_token: String,
    /// The session ends then, used or not (absolute timeout).
    pub expires_at: DateTime<Utc>,
    /// The session ends then if unused (idle timeout; every use moves it, to the minute).
    pub idle_expires_at: DateTime<Utc>,
}

impl From<SessionView> for SessionOut {
    fn from(v: SessionView) -> Self {
        Self {
            roles: v.user.roles.names(),
            org_id: v.user.org_id.as_uuid(),
            user: v.user.into(),
            state: v.state.as_str().to_owned(),
            csrf_token: v.csrf_token,
            expires_at: v.expires_at,
            idle_expires_at: v.idle_expires_at,
        }
    }
}

/// Sign-in request.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// Username (any case).
    pub username: String,
    /// Password.
    pub password: String,
    /// The 6-digit code of the authenticator app (required once MFA is enrolled).
    pub totp_code: Option<String>,
    /// Or one of the recovery codes (each works once).
    pub recovery_code: Option<String>,
}

impl std::fmt::Debug for LoginIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginIn").finish_non_exhaustive()
    }
}

/// Longest password looked at (the policy allows 128 characters).
const MAX_SUBMITTED_PASSWORD: usize = 1024;

/// Signs a person in with username, password and — once enrolled — a TOTP or recovery code
/// (R-SEC-5, R-SEC-6). Sets the `etx_session` cookie (`HttpOnly; Secure; SameSite=Strict`).
/// Every refusal is `mfa_required` (no second factor given) or `invalid_mfa_code` (one given),
/// whatever was wrong, so that it reveals neither the username's existence nor the password's
/// correctness. Too many failures for a username or from an address: `423` with `Retry-After`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "accounts", request_body = LoginIn,
    responses(
        (status = 200, body = SessionOut, description = "signed in; the session token is in the Set-Cookie header",
            headers(("Set-Cookie" = String, description = "etx_session=…; HttpOnly; Secure; SameSite=Strict; Path=/"))),
        (status = 401, description = "mfa_required or invalid_mfa_code"),
        (status = 422, description = "validation_failed"),
        (status = 423, description = "account_locked; Retry-After says when to try again"),
        (status = 429, description = "rate_limited (per client address)")))]
pub async fn login(
    id: web::Data<AppIdentity>,
    gateway: Principal,
    body: web::Json<LoginIn>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.password.len() > MAX_SUBMITTED_PASSWORD || body.username.len() > 256 {
        return Err(ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
            FieldViolation::new("/password", ViolationCode::TooLarge).with_detail("at most 128 characters"),
        ]));
    }
    let second_factor = match (body.totp_code, body.recovery_code) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
                FieldViolation::new("/recovery_code", ViolationCode::Invalid)
                    .with_detail("give totp_code or recovery_code, not both"),
            ]));
        }
        (Some(code), None) => Some(SecondFactor::Totp(code)),
        (None, Some(code)) => Some(SecondFactor::Recovery(Zeroizing::new(code))),
        (None, None) => None,
    };
    let grant = id
        .accounts
        .login(LoginRequest {
            username: body.username,
            password: Zeroizing::new(body.password),
            second_factor,
            ip: gateway.client_ip,
        })
        .await
        .map_err(login_error)?;
    Ok(HttpResponse::Ok()
        .insert_header((SET_COOKIE, session_cookie(&grant.token)))
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(SessionOut::from(grant.view)))
}

/// Ends the session and removes its cookie.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "accounts",
    responses((status = 204, description = "signed out")),
    security(("session" = [])))]
pub async fn logout(
    id: web::Data<AppIdentity>,
    req: HttpRequest,
    p: Principal,
) -> Result<HttpResponse, ApiError> {
    person(&p)?;
    if let Ok(token) = cookie_token(&req) {
        id.accounts.logout(&token).await.map_err(account_error)?;
    }
    Ok(HttpResponse::NoContent()
        .insert_header((SET_COOKIE, expired_session_cookie()))
        .finish())
}

/// The signed-in person and their session (also hands out the anti-forgery token again).
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "accounts",
    responses((status = 200, body = SessionOut), (status = 401, description = "session_expired")),
    security(("session" = [])))]
pub async fn me(
    id: web::Data<AppIdentity>,
    req: HttpRequest,
    p: Principal,
) -> Result<HttpResponse, ApiError> {
    let actor = person(&p)?;
    let token = cookie_token(&req)?;
    let view = id
        .accounts
        .session_view(&token, actor.user_id)
        .await
        .map_err(account_error)?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(SessionOut::from(view)))
}

/// Changing one's own password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeIn {
    /// The current (or temporary) password.
    pub current_password: String,
    /// The new one: 12–128 characters, not containing the username, not a common password.
    pub new_password: String,
}

impl std::fmt::Debug for PasswordChangeIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordChangeIn").finish_non_exhaustive()
    }
}

/// Changes the signed-in person's password (the only call a session with a temporary password
/// may make). Every other session of the account ends; this one moves on to MFA enrolment or
/// to `full`.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "accounts", request_body = PasswordChangeIn,
    responses((status = 200, body = SessionOut),
        (status = 401, description = "invalid_credentials: the current password is wrong"),
        (status = 422, description = "validation_failed: the new password breaks the policy (one violation per rule)"),
        (status = 423, description = "account_locked")),
    security(("session" = [])))]
pub async fn change_password(
    id: web::Data<AppIdentity>,
    req: HttpRequest,
    p: Principal,
    body: web::Json<PasswordChangeIn>,
) -> Result<HttpResponse, ApiError> {
    let actor = person(&p)?;
    let token = cookie_token(&req)?;
    let view = id
        .accounts
        .change_password(
            &token,
            &actor,
            secret(&body.current_password),
            secret(&body.new_password),
        )
        .await
        .map_err(account_error)?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(SessionOut::from(view)))
}

/// A started TOTP enrolment.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct EnrolmentOut {
    /// `otpauth://totp/ETX%20Hub:<username>?secret=…&issuer=ETX%20Hub&algorithm=SHA1&digits=6&period=30`
    pub otpauth_uri: String,
    /// The secret in base32, to type into the app.
    pub secret: String,
    /// The URI as a QR code (SVG), to scan.
    pub qr_svg: Option<String>,
}

impl std::fmt::Debug for EnrolmentOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolmentOut").finish_non_exhaustive()
    }
}

/// Starts TOTP enrolment (R-SEC-6): a new secret for an authenticator app, pending until
/// confirmed. Calling it again replaces a pending secret. `409` once MFA is enrolled.
#[utoipa::path(post, path = "/api/v1/auth/mfa/enroll", tag = "accounts",
    responses((status = 200, body = EnrolmentOut), (status = 409, description = "already_exists: MFA is enrolled")),
    security(("session" = [])))]
pub async fn enroll_mfa(
    id: web::Data<AppIdentity>,
    req: HttpRequest,
    p: Principal,
) -> Result<HttpResponse, ApiError> {
    let actor = person(&p)?;
    let token = cookie_token(&req)?;
    let e = id
        .accounts
        .enroll_mfa(&token, actor.user_id)
        .await
        .map_err(account_error)?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(EnrolmentOut {
            qr_svg: crate::qr::svg(&e.otpauth_uri),
            otpauth_uri: e.otpauth_uri.to_string(),
            secret: e.secret_base32.to_string(),
        }))
}

/// Confirming an enrolment.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmIn {
    /// The current 6-digit code of the app.
    pub code: String,
}

/// Single-use recovery codes, shown once.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RecoveryCodesOut {
    /// Each signs in once in place of a TOTP code. Store them now; they cannot be shown again.
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodesOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecoveryCodesOut").finish_non_exhaustive()
    }
}

/// Confirms TOTP enrolment with a code from the app: from now on every sign-in of this account
/// needs a TOTP or recovery code. Returns 10 single-use recovery codes, once.
#[utoipa::path(post, path = "/api/v1/auth/mfa/confirm", tag = "accounts", request_body = ConfirmIn,
    responses((status = 200, body = RecoveryCodesOut),
        (status = 401, description = "invalid_mfa_code"),
        (status = 409, description = "already_exists: MFA is enrolled"),
        (status = 422, description = "validation_failed: no enrolment in progress")),
    security(("session" = [])))]
pub async fn confirm_mfa(
    id: web::Data<AppIdentity>,
    req: HttpRequest,
    p: Principal,
    body: web::Json<ConfirmIn>,
) -> Result<HttpResponse, ApiError> {
    let actor = person(&p)?;
    let token = cookie_token(&req)?;
    let codes = id
        .accounts
        .confirm_mfa(&token, actor.user_id, &body.code)
        .await
        .map_err(account_error)?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(RecoveryCodesOut {
            recovery_codes: codes.iter().map(|c| c.to_string()).collect(),
        }))
}

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserIn {
    /// 3–64 characters of a-z 0-9 . _ - @ (stored in lower case; unique).
    pub username: String,
    /// Display name (default: the username).
    pub display_name: Option<String>,
    /// Home organisation, within the administrator's subtree (default: the administrator's).
    pub org_id: Option<Uuid>,
    /// Role names.
    pub roles: Vec<String>,
    /// A temporary password (the policy applies); generated and returned once when absent.
    pub temporary_password: Option<String>,
}

impl std::fmt::Debug for NewUserIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUserIn")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A created account, with its generated temporary password (once).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedUserOut {
    /// The account.
    #[serde(flatten)]
    pub user: UserOut,
    /// Present only when it was generated: hand it to the person; it must be changed at the
    /// first sign-in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
}

impl std::fmt::Debug for CreatedUserOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedUserOut")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// Creates an account in the administrator's organisation subtree (`system_admin` only). The
/// person must change the temporary password and enrol MFA at the first sign-in.
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts", request_body = NewUserIn,
    responses((status = 201, body = CreatedUserOut),
        (status = 403, description = "forbidden: not a system_admin"),
        (status = 409, description = "already_exists: the username is taken"),
        (status = 422, description = "validation_failed")),
    security(("session" = [])))]
pub async fn create_user(
    id: web::Data<AppIdentity>,
    p: Principal,
    body: web::Json<NewUserIn>,
) -> Result<HttpResponse, ApiError> {
    let actor = person(&p)?;
    let b = body.into_inner();
    let created = id
        .accounts
        .create_user(
            &actor,
            NewUser {
                username: b.username,
                display_name: b.display_name,
                org_id: b.org_id.map(OrgId::from_uuid),
                roles: b.roles,
                temporary_password: b.temporary_password.map(Zeroizing::new),
            },
        )
        .await
        .map_err(account_error)?;
    Ok(HttpResponse::Created()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(CreatedUserOut {
            user: created.user.into(),
            temporary_password: created.temporary_password.map(|p| p.to_string()),
        }))
}

/// The accounts of the administrator's organisation subtree, by username (`system_admin` only).
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts",
    responses((status = 200, body = Vec<UserOut>), (status = 403, description = "forbidden: not a system_admin")),
    security(("session" = [])))]
pub async fn list_users(id: web::Data<AppIdentity>, p: Principal) -> Result<HttpResponse, ApiError> {
    let actor = person(&p)?;
    let users = id.accounts.list_users(&actor).await.map_err(account_error)?;
    Ok(HttpResponse::Ok().json(users.into_iter().map(UserOut::from).collect::<Vec<_>>()))
}

/// One account of the administrator's subtree; `404` for any other.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "accounts",
    params(("id" = Uuid, Path, description = "account id")),
    responses((status = 200, body = UserOut), (status = 403, description = "forbidden: not a system_admin"),
        (status = 404, description = "not_found (also for accounts outside the subtree)")),
    security(("session" = [])))]
pub async fn get_user(
    id: web::Data<AppIdentity>,
    p: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let actor = person(&p)?;
    let user = id
        .accounts
        .get_user(&actor, UserId::from_uuid(path.into_inner()))
        .await
        .map_err(account_error)?;
    Ok(HttpResponse::Ok().json(UserOut::from(user)))
}

/// Changes to an account.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchIn {
    /// New display name.
    pub display_name: Option<String>,
    /// New roles (replace the old ones).
    pub roles: Option<Vec<String>>,
    /// `active` or `disabled` (disabling ends the account's sessions).
    pub status: Option<String>,
}

/// Changes an account's display name, roles or status (`system_admin` only, within the
/// subtree). An administrator cannot disable or demote themselves.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "accounts", request_body = UserPatchIn,
    params(("id" = Uuid, Path, description = "account id")),
    responses((status = 200, body = UserOut), (status = 403, description = "forbidden"),
        (status = 404, description = "not_found"), (status = 422, description = "validation_failed")),
    security(("session" = [])))]
pub async fn update_user(
    id: web::Data<AppIdentity>,
    p: Principal,
    path: web::Path<Uuid>,
    body: web::Json<UserPatchIn>,
) -> Result<HttpResponse, ApiError> {
    let actor = person(&p)?;
    let b = body.into_inner();
    let user = id
        .accounts
        .update_user(
            &actor,
            UserId::from_uuid(path.into_inner()),
            UserPatch {
                display_name: b.display_name,
                roles: b.roles,
                status: b.status,
            },
        )
        .await
        .map_err(account_error)?;
    Ok(HttpResponse::Ok().json(UserOut::from(user)))
}

/// An administrator's password reset.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetIn {
    /// The temporary password (the policy applies); generated and returned once when absent.
    pub temporary_password: Option<String>,
}

impl std::fmt::Debug for PasswordResetIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordResetIn").finish_non_exhaustive()
    }
}

/// The outcome of a reset.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PasswordResetOut {
    /// Present only when it was generated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temporary_password: Option<String>,
}

impl std::fmt::Debug for PasswordResetOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordResetOut").finish_non_exhaustive()
    }
}

/// Resets an account's password to a temporary one (`system_admin` only, within the subtree):
/// the account must change it at its next sign-in, and its sessions end now. Its second factor
/// is kept.
#[utoipa::path(post, path = "/api/v1/users/{id}/password-reset", tag = "accounts", request_body = PasswordResetIn,
    params(("id" = Uuid, Path, description = "account id")),
    responses((status = 200, body = PasswordResetOut), (status = 403, description = "forbidden"),
        (status = 404, description = "not_found"), (status = 422, description = "validation_failed")),
    security(("session" = [])))]
pub async fn reset_password(
    id: web::Data<AppIdentity>,
    p: Principal,
    path: web::Path<Uuid>,
    body: Option<web::Json<PasswordResetIn>>,
) -> Result<HttpResponse, ApiError> {
    let actor = person(&p)?;
    let temporary = body
        .and_then(|b| b.into_inner().temporary_password)
        .map(Zeroizing::new);
    let generated = id
        .accounts
        .reset_password(&actor, UserId::from_uuid(path.into_inner()), temporary)
        .await
        .map_err(account_error)?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .json(PasswordResetOut {
            temporary_password: generated.map(|p| p.to_string()),
        }))
}

/// Mounts the routes (under `/api/v1`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(resource("/auth/login", "POST").route(web::post().to(login)))
        .service(resource("/auth/logout", "POST").route(web::post().to(logout)))
        .service(resource("/auth/me", "GET").route(web::get().to(me)))
        .service(resource("/auth/password", "POST").route(web::post().to(change_password)))
        .service(resource("/auth/mfa/enroll", "POST").route(web::post().to(enroll_mfa)))
        .service(resource("/auth/mfa/confirm", "POST").route(web::post().to(confirm_mfa)))
        .service(
            resource("/users", "GET, POST")
                .route(web::post().to(create_user))
                .route(web::get().to(list_users)),
        )
        .service(
            resource("/users/{id}", "GET, PATCH")
                .route(web::get().to(get_user))
                .route(web::patch().to(update_user)),
        )
        .service(resource("/users/{id}/password-reset", "POST").route(web::post().to(reset_password)));
}

/// The accounts part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        login,
        logout,
        me,
        change_password,
        enroll_mfa,
        confirm_mfa,
        create_user,
        list_users,
        get_user,
        update_user,
        reset_password
    ),
    components(schemas(
        UserOut,
        SessionOut,
        LoginIn,
        PasswordChangeIn,
        EnrolmentOut,
        ConfirmIn,
        RecoveryCodesOut,
        NewUserIn,
        CreatedUserOut,
        UserPatchIn,
        PasswordResetIn,
        PasswordResetOut
    ))
)]
#[derive(Debug)]
pub struct AccountsDoc;
