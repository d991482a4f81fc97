//! Authentication of every `/api/**` call: connected systems by API key or OAuth2 access token
//! (R-SEC-1), people by the `etx_session` cookie (R-SEC-5, R-SEC-6). The credential is checked by identity
//! (in-process or over HTTP) and the caller becomes a [`Principal`] that the services trust. A
//! principal header sent by a client is always removed first, so nobody can forge one from
//! outside.
//!
//! * `POST /api/v1/auth/login` and the OpenID Connect sign-in (`GET /api/v1/auth/oidc/login`,
//!   `/callback`) need no credential ([`is_public`]); they get an anonymous
//!   principal carrying only the client address, and are counted against the address's rate
//!   limit like every other request.
//! * OAuth2's token and revocation endpoints (`POST /api/v1/oauth/token`, `/revoke`) are public
//!   too: the client authenticates itself to identity. A successful revocation empties every
//!   gateway's authentication cache, like a revoked key.
//! * An API key (`X-API-Key` or `Authorization`) takes precedence over a cookie. An OAuth2
//!   access token (`etxat_…`) is accepted only as `Authorization: Bearer` without `X-API-Key`;
//!   it is authenticated as a token, never as a key, and never served from the cache past its
//!   expiry.
//! * A request authenticated by the cookie that changes state (anything but GET, HEAD,
//!   OPTIONS) must carry `X-CSRF-Token` equal to the session's anti-forgery token, else `403
//!   csrf_rejected`. The cookie is `SameSite=Strict` too; the header is the second wall.
//! * A session that still has to enrol MFA reaches only the enrolment endpoints (`401
//!   mfa_required` elsewhere); one with a temporary password only the password endpoint
//!   (`403 forbidden` elsewhere); one signed in through the OpenID provider that still has to
//!   give its second factor only `POST /api/v1/auth/mfa/verify` (`401 mfa_required`); see
//!   [`session_allows`].
//!
//! When [`RateLimits`] are configured, every request counts against its client address: an
//! accepted one together with its key (or person) and organisation (one atomic check), a
//! refused credential on its own, so that once an address is over its limit credential
//! guessing answers 429 rather than 401 (R-SEC-2, see [`crate::ratelimit`]).

use crate::cache::AuthCache;
use crate::ratelimit::RateLimits;
use crate::revocation::RevocationBus;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{AUTHORIZATION, COOKIE};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use etx_domain::{ErrorCode, OrgId};
use etx_gateway_core::{
    CredentialError, SessionGate, SessionRefusal, credential, invalidates_credentials, is_bearer, is_public,
    is_state_changing, session_allows,
};
use etx_http_kit::{ApiError, PRINCIPAL_HEADER, Principal};
use etx_identity_core::account::session_token_in;
use etx_identity_core::oauth::looks_like_access_token;
use etx_identity_core::{AuthError, Caller, IdentityApi, SessionFacts, SessionState};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// The identity client the gateway authenticates with, as app data.
pub type IdentityHandle = Arc<dyn IdentityApi>;

/// The header carrying the session's anti-forgery token.
pub const CSRF_HEADER: &str = "x-csrf-token";

fn refuse<B: MessageBody>(req: ServiceRequest, err: ApiError) -> ServiceResponse<EitherBody<B>> {
    let resp = err.error_response();
    req.into_response(resp).map_into_right_body()
}

/// Whether the presented anti-forgery token is the session's (SHA-256 compared in constant
/// time).
fn csrf_matches(session: &SessionFacts, presented: Option<&[u8]>) -> bool {
    let Some(presented) = presented.filter(|p| !p.is_empty() && p.len() <= 256) else {
        return false;
    };
    let digest = Sha256::digest(presented);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let expected = session.csrf_sha256.as_bytes();
    hex.len() == expected.len()
        && hex
            .as_bytes()
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn gate(state: SessionState) -> SessionGate {
    match state {
        SessionState::Full => SessionGate::Full,
        SessionState::MfaEnrolmentRequired => SessionGate::MfaEnrolmentRequired,
        SessionState::PasswordChangeRequired => SessionGate::PasswordChangeRequired,
        SessionState::SecondFactorRequired => SessionGate::SecondFactorRequired,
    }
}

/// The credential a request presents.
enum Presented {
    ApiKey(String),
    Session(String),
    /// An OAuth2 access token: only as `Authorization: Bearer`, never in `X-API-Key`.
    AccessToken(String),
}

/// Every gateway instance forgets its cached authentications (R-SEC-1, §5): through the
/// revocation bus when there is one, else here.
async fn forget_credentials(bus: Option<web::Data<RevocationBus>>, cache: Option<web::Data<AuthCache>>) {
    match (bus, cache) {
        (Some(bus), _) => bus.revoked().await,
        (None, Some(cache)) => cache.clear(),
        (None, None) => {}
    }
}

/// Middleware (use with `actix_web::middleware::from_fn`) authenticating the request.
pub async fn authenticate<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    req.headers_mut().remove(PRINCIPAL_HEADER);
    let Some(identity) = req.app_data::<web::Data<IdentityHandle>>().cloned() else {
        return Ok(refuse(
            req,
            ApiError::internal("gateway has no identity client configured"),
        ));
    };
    let limits = req.app_data::<web::Data<RateLimits>>().cloned();
    let client_ip = req.peer_addr().map(|a| a.ip().to_string());
    // A refused credential counts against its client address: once the address is over its
    // limit, guessing answers 429 instead of 401 (and a right guess is refused the same way).
    let refuse_credential = async |req: ServiceRequest, err: ApiError| {
        if let (Some(limits), Some(ip)) = (&limits, &client_ip)
            && let Err(resp) = limits.check_ip(ip).await
        {
            return req.into_response(resp).map_into_right_body();
        }
        refuse(req, err)
    };
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();

    if is_public(&method, &path) {
        // Signing in: no credential, but the address's rate limit applies (identity's lockout
        // is the second wall).
        if let (Some(limits), Some(ip)) = (&limits, &client_ip)
            && let Err(resp) = limits.check_ip(ip).await
        {
            return Ok(req.into_response(resp).map_into_right_body());
        }
        req.extensions_mut().insert(Principal {
            org_id: OrgId::from_uuid(uuid::Uuid::nil()),
            system_id: None,
            key_id: None,
            subject: "anonymous".into(),
            roles: Vec::new(),
            scopes: Vec::new(),
            client_ip,
        });
        // An OAuth2 token revocation is public too (the client authenticates itself): once
        // it succeeded, no gateway may keep serving the token from its cache.
        let invalidating = invalidates_credentials(&method, &path);
        let bus = req.app_data::<web::Data<RevocationBus>>().cloned();
        let cache = req.app_data::<web::Data<AuthCache>>().cloned();
        let resp = next.call(req).await?;
        if invalidating && resp.status().is_success() {
            forget_credentials(bus, cache).await;
        }
        return Ok(resp.map_into_left_body());
    }

    let headers = req.headers();
    let x_api_key = headers.get("x-api-key").map(|v| v.as_bytes());
    let authorization = headers.get(AUTHORIZATION).map(|v| v.as_bytes());
    let cookie = session_token_in(headers.get_all(COOKIE).filter_map(|v| v.to_str().ok())).map(str::to_owned);
    let presented = match (credential(x_api_key, authorization), cookie) {
        (Ok(t), _) if x_api_key.is_none() && is_bearer(authorization) && looks_like_access_token(t) => {
            Presented::AccessToken(t.to_owned())
        }
        (Ok(k), _) => Presented::ApiKey(k.to_owned()),
        (Err(CredentialError::Missing), Some(token)) => Presented::Session(token),
        (Err(CredentialError::Missing), None) => {
            return Ok(refuse_credential(req, ErrorCode::MissingCredentials.into()).await);
        }
        (Err(CredentialError::Malformed), _) => {
            return Ok(refuse_credential(req, ErrorCode::InvalidCredentials.into()).await);
        }
    };
    let cache = req.app_data::<web::Data<AuthCache>>().cloned();
    let fresh: Result<Caller, AuthError> = match &presented {
        Presented::ApiKey(k) => match cache.as_ref().and_then(|c| c.get(k)) {
            Some(c) => Ok(c),
            None => identity
                .authenticate_api_key(k, client_ip.as_deref())
                .await
                .inspect(|c| {
                    if let Some(cache) = &cache {
                        cache.put(k, c.clone());
                    }
                }),
        },
        Presented::Session(t) => match cache.as_ref().and_then(|c| c.get_session(t)) {
            Some(c) => Ok(c),
            None => identity.authenticate_session(t).await.inspect(|c| {
                if let Some(cache) = &cache {
                    cache.put_session(t, c.clone());
                }
            }),
        },
        // A cached token past its expiry is asked again (and refused as invalid).
        Presented::AccessToken(t) => match cache
            .as_ref()
            .and_then(|c| c.get_token(t))
            .filter(|c| c.expires_at.is_some_and(|at| at > chrono::Utc::now()))
        {
            Some(c) => Ok(c),
            None => identity.authenticate_access_token(t).await.inspect(|c| {
                if let Some(cache) = &cache {
                    cache.put_token(t, c.clone());
                }
            }),
        },
    };
    // A key's expiry and address allow-list hold on every request, also when the
    // authentication comes from the cache (issue 4 §5, R-SEC-1).
    let fresh = fresh.and_then(|c| c.admits(chrono::Utc::now(), client_ip.as_deref()).map(|()| c));
    let caller = match fresh {
        Ok(c) => c,
        Err(e) => {
            let err = match e {
                AuthError::Missing => ApiError::new(ErrorCode::MissingCredentials),
                AuthError::Invalid => ApiError::new(ErrorCode::InvalidCredentials),
                AuthError::Revoked => ApiError::new(ErrorCode::RevokedCredentials),
                AuthError::Expired => ApiError::new(ErrorCode::SessionExpired),
                AuthError::CredentialExpired => ApiError::new(ErrorCode::InvalidCredentials)
                    .with_detail("the API key has expired; use its successor or issue a new key"),
                AuthError::AddressNotAllowed => ApiError::new(ErrorCode::AddressNotAllowed)
                    .with_detail("the credential may not be used from the client's address"),
                AuthError::Unavailable => ApiError::new(ErrorCode::ServiceUnavailable),
            };
            tracing::info!(reason = %e, path = %path, "request refused at the gateway");
            if e == AuthError::Unavailable {
                return Ok(refuse(req, err));
            }
            return Ok(refuse_credential(req, err).await);
        }
    };
    if let (Presented::Session(_), Some(session)) = (&presented, &caller.session) {
        if is_state_changing(&method)
            && !csrf_matches(session, req.headers().get(CSRF_HEADER).map(|v| v.as_bytes()))
        {
            tracing::info!(path = %path, session_id = %session.id, "request refused: anti-forgery token missing or wrong");
            return Ok(refuse(
                req,
                ApiError::new(ErrorCode::CsrfRejected)
                    .with_detail("send the session's csrf_token in X-CSRF-Token"),
            ));
        }
        match session_allows(gate(session.state), &method, &path) {
            Ok(()) => {}
            Err(SessionRefusal::MfaRequired) => {
                return Ok(refuse(
                    req,
                    ApiError::new(ErrorCode::MfaRequired)
                        .with_detail("enrol a second factor first: POST /api/v1/auth/mfa/enroll"),
                ));
            }
            Err(SessionRefusal::SecondFactorRequired) => {
                return Ok(refuse(
                    req,
                    ApiError::new(ErrorCode::MfaRequired)
                        .with_detail("give the second factor first: POST /api/v1/auth/mfa/verify"),
                ));
            }
            Err(SessionRefusal::PasswordChangeRequired) => {
                return Ok(refuse(
                    req,
                    ApiError::new(ErrorCode::Forbidden)
                        .with_detail("change the temporary password first: POST /api/v1/auth/password"),
                ));
            }
        }
    }
    if let Some(limits) = &limits
        && let Err(resp) = limits
            .check_caller(
                client_ip.as_deref(),
                &caller.rate_key(),
                &caller.org_id.to_string(),
            )
            .await
    {
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let principal = Principal {
        org_id: caller.org_id,
        system_id: caller.system_id,
        key_id: caller.key_id,
        subject: caller.subject(),
        roles: caller.roles,
        scopes: caller.scopes,
        client_ip,
    };
    // Authorisation, one policy for every route (issue 4 §3): role for people, scope for
    // systems. Object-level checks (organisation, classification) stay in the services.
    if let Some(permission) = etx_gateway_core::authz::required(&method, &path)
        && let Err(denial) = principal.require(permission)
    {
        tracing::info!(path = %path, subject = %principal.subject, ?permission, "request refused: not authorised");
        return Ok(refuse(req, denial));
    }
    req.extensions_mut().insert(principal);
    let invalidating = invalidates_credentials(&method, &path);
    let bus = req.app_data::<web::Data<RevocationBus>>().cloned();
    let resp = next.call(req).await?;
    if invalidating && resp.status().is_success() {
        forget_credentials(bus, cache).await;
    }
    Ok(resp.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use etx_identity_core::SessionId;

    #[test]
    fn the_anti_forgery_token_must_match_the_sessions() {
        let token = "c3JmLXRva2VuLW9mLXRoZS1zZXNzaW9u";
        let hex: String = Sha256::digest(token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let s = SessionFacts {
            id: SessionId::new(),
            state: SessionState::Full,
            csrf_sha256: hex,
        };
        assert!(csrf_matches(&s, Some(token.as_bytes())));
        assert!(!csrf_matches(&s, Some(b"c3JmLXRva2VuLW9mLXRoZS1zZXNzaW9v")));
        assert!(!csrf_matches(&s, Some(b"")));
        assert!(!csrf_matches(&s, None));
    }
}
