//! Authentication of every `/api/**` call (R-SEC-1): the API key is read from the headers,
//! checked by identity (in-process or over HTTP), and the caller becomes a [`Principal`] that
//! the services trust. A principal header sent by a client is always removed first, so nobody
//! can forge one from outside. When [`RateLimits`] are configured, every request counts against
//! its client address: an accepted one together with its key and organisation (one atomic
//! check), a refused credential on its own, so that once an address is over its limit key
//! guessing answers 429 rather than 401 (R-SEC-2, see [`crate::ratelimit`]).

use crate::cache::AuthCache;
use crate::ratelimit::RateLimits;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, ResponseError, web};
use etx_domain::ErrorCode;
use etx_gateway_core::{CredentialError, credential};
use etx_http_kit::{ApiError, PRINCIPAL_HEADER, Principal};
use etx_identity_core::{AuthError, IdentityApi};
use std::sync::Arc;

/// The identity client the gateway authenticates with, as app data.
pub type IdentityHandle = Arc<dyn IdentityApi>;

fn refuse<B: MessageBody>(req: ServiceRequest, err: ApiError) -> ServiceResponse<EitherBody<B>> {
    let resp = err.error_response();
    req.into_response(resp).map_into_right_body()
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
    let refuse_credential = async |req: ServiceRequest, code: ErrorCode| {
        if let (Some(limits), Some(ip)) = (&limits, &client_ip)
            && let Err(resp) = limits.check_ip(ip).await
        {
            return req.into_response(resp).map_into_right_body();
        }
        refuse(req, ApiError::new(code))
    };
    let headers = req.headers();
    let presented = match credential(
        headers.get("x-api-key").map(|v| v.as_bytes()),
        headers.get(AUTHORIZATION).map(|v| v.as_bytes()),
    ) {
        Ok(k) => k.to_owned(),
        Err(CredentialError::Missing) => {
            return Ok(refuse_credential(req, ErrorCode::MissingCredentials).await);
        }
        Err(CredentialError::Malformed) => {
            return Ok(refuse_credential(req, ErrorCode::InvalidCredentials).await);
        }
    };
    let cache = req.app_data::<web::Data<AuthCache>>().cloned();
    let cached = cache.as_ref().and_then(|c| c.get(&presented));
    let fresh = match cached {
        Some(c) => Ok(c),
        None => identity.authenticate_api_key(&presented).await,
    };
    let caller = match fresh {
        Ok(c) => {
            if let Some(cache) = &cache {
                cache.put(&presented, c.clone());
            }
            c
        }
        Err(e) => {
            let code = match e {
                AuthError::Missing => ErrorCode::MissingCredentials,
                AuthError::Invalid => ErrorCode::InvalidCredentials,
                AuthError::Revoked => ErrorCode::RevokedCredentials,
                AuthError::Unavailable => ErrorCode::ServiceUnavailable,
            };
            tracing::info!(reason = %e, path = %req.path(), "request refused at the gateway");
            if code == ErrorCode::ServiceUnavailable {
                return Ok(refuse(req, ApiError::new(code)));
            }
            return Ok(refuse_credential(req, code).await);
        }
    };
    if let Some(limits) = &limits
        && let Err(resp) = limits
            .check_caller(
                client_ip.as_deref(),
                &caller.key_id.to_string(),
                &caller.org_id.to_string(),
            )
            .await
    {
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let principal = Principal {
        org_id: caller.org_id,
        system_id: Some(caller.system_id),
        key_id: Some(caller.key_id),
        subject: format!("system:{}", caller.system_id),
        roles: caller.roles,
        client_ip,
    };
    req.extensions_mut().insert(principal);
    let revoking = req.method() == actix_web::http::Method::DELETE && req.path().starts_with("/api/v1/keys/");
    let resp = next.call(req).await?;
    if revoking
        && resp.status().is_success()
        && let Some(cache) = cache
    {
        cache.clear();
    }
    Ok(resp.map_into_left_body())
}
