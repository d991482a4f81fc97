//! Gateway hardening middleware (R-SEC-3, R-SEC-4; issue 4 §11): a CORS policy that is closed
//! unless origins are configured, and an idle timeout on request bodies so that a client that
//! sends its headers and then trickles (or stops sending) its body cannot hold a worker and a
//! connection for ever (a "slow POST"). Header-phase slowness is bounded by actix's
//! `client_request_timeout`, set by the composition root.
//!
//! Both read their settings from app data ([`CorsPolicy`], [`BodyIdleTimeout`]); without them
//! they do nothing but — for CORS — answer every preflight with `403 forbidden`, which is the
//! closed default.

use crate::error::ApiError;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{ConnectionType, Method};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, HttpResponse, ResponseError, web};
use bytes::Bytes;
use etx_domain::ErrorCode;
use futures_util::Stream;
use futures_util::StreamExt;
use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

/// Request headers a browser page on an allowed origin may send.
const ALLOWED_HEADERS: &str = "accept, accept-language, authorization, content-type, idempotency-key, \
                               x-api-key, x-csrf-token, x-request-id";
/// Response headers such a page may read.
const EXPOSED_HEADERS: &str = "location, retry-after, x-request-id, ratelimit, ratelimit-policy";
const ALLOWED_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";

/// Which web origins may call the API from a browser (R-SEC-4). Empty — the default — means
/// none: no response carries `Access-Control-Allow-Origin`, and preflights are refused.
/// Credentials (cookies) are never allowed cross-origin: the admin UI is served from the
/// gateway's own origin.
#[derive(Debug, Clone, Default)]
pub struct CorsPolicy {
    origins: Vec<String>,
}

impl CorsPolicy {
    /// A policy allowing exactly these origins (`https://portal.example.gov.vn`, compared
    /// case-insensitively, without a trailing slash). `*` is refused: a national system names
    /// its partners.
    pub fn new(origins: &[String]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(origins.len());
        for o in origins {
            let o = o.trim().trim_end_matches('/').to_ascii_lowercase();
            let valid = (o.starts_with("https://") || o.starts_with("http://"))
                && !o.contains('*')
                && o.split_once("://")
                    .is_some_and(|(_, host)| !host.is_empty() && !host.contains('/'));
            if !valid {
                return Err(format!(
                    "cors origin `{o}` is not an origin like https://host[:port] (wildcards are not allowed)"
                ));
            }
            out.push(o);
        }
        Ok(Self { origins: out })
    }

    /// Whether `origin` (as a browser sends it) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        !origin.is_empty() && self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// Middleware (use with `actix_web::middleware::from_fn`) applying the app's [`CorsPolicy`].
/// Mount it outside authentication: preflights carry no credentials.
pub async fn cors<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(origin) = origin else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let allowed = req
        .app_data::<web::Data<CorsPolicy>>()
        .is_some_and(|p| p.allows(&origin));
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let resp = if allowed {
            let mut r = HttpResponse::NoContent().finish();
            let h = r.headers_mut();
            allow_origin(h, &origin);
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOWED_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE),
            );
            r
        } else {
            tracing::info!(%origin, path = %req.path(), "cross-origin preflight refused");
            ApiError::new(ErrorCode::Forbidden)
                .with_detail("this origin may not call the API from a browser")
                .error_response()
        };
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let mut resp = next.call(req).await?;
    if allowed {
        let h = resp.headers_mut();
        allow_origin(h, &origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
    Ok(resp.map_into_left_body())
}

fn allow_origin(h: &mut header::HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    h.append(header::VARY, HeaderValue::from_static("origin"));
}

/// The longest a request body may pause between two chunks (app data for [`client_limits`]).
#[derive(Debug, Clone, Copy)]
pub struct BodyIdleTimeout(pub Duration);

/// The error a stalled body ends with; [`ApiError::from_payload_error`] answers it with
/// `408 request_timeout`.
pub(crate) fn is_body_timeout(err: &PayloadError) -> bool {
    matches!(err, PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

/// Most request headers accepted (`431` above; actix's parser itself stops at 96).
pub const MAX_REQUEST_HEADERS: usize = 96;
/// Most bytes of request header names and values accepted (`431` above; actix's parser itself
/// stops at a 128 KiB head).
pub const MAX_REQUEST_HEADER_BYTES: usize = 32 * 1024;

/// Middleware (use with `actix_web::middleware::from_fn`) enforcing client limits: a request
/// with more than [`MAX_REQUEST_HEADERS`] headers or [`MAX_REQUEST_HEADER_BYTES`] of them is
/// refused with `431`, and a request body
/// that stays silent longer than the app's [`BodyIdleTimeout`] is ended: the handler reading it
/// gets an error (→ `408 request_timeout`), nothing half-read is stored, and the connection is
/// closed after the answer. A slow but steady upload (a 1 GiB batch over minutes) is
/// unaffected; only silence counts.
pub async fn client_limits<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, Error> {
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum();
    if req.headers().len() > MAX_REQUEST_HEADERS || header_bytes > MAX_REQUEST_HEADER_BYTES {
        let resp = ApiError::new(ErrorCode::RequestHeadersTooLarge)
            .with_detail(format!(
                "at most {MAX_REQUEST_HEADERS} request headers, {MAX_REQUEST_HEADER_BYTES} bytes in all, are accepted"
            ))
            .error_response();
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let timeout = req.app_data::<web::Data<BodyIdleTimeout>>().map(|t| t.0);
    let has_body = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(header::TRANSFER_ENCODING);
    let Some(idle) = timeout.filter(|_| has_body) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let stalled = Rc::new(Cell::new(false));
    let flag = stalled.clone();
    let inner = req.take_payload();
    let stream = futures_util::stream::unfold(Some(inner), move |state| {
        let flag = flag.clone();
        async move {
            let mut payload = state?;
            match tokio::time::timeout(idle, payload.next()).await {
                Ok(Some(item)) => Some((item, Some(payload))),
                Ok(None) => None,
                Err(_) => {
                    tracing::info!(idle_secs = idle.as_secs_f64(), "request body stalled; giving up");
                    flag.set(true);
                    let err = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body stalled");
                    Some((Err(PayloadError::Io(err)), None))
                }
            }
        }
    });
    // Fused: a reader may poll again after the end (actix-multipart does), and `unfold`
    // panics when polled after it returned `None`.
    let boxed: Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream.fuse());
    req.set_payload(Payload::from(boxed));
    let mut resp = next.call(req).await?;
    if stalled.get() {
        // The rest of the body may still arrive (or never): the connection cannot carry another
        // request, so it is closed after the answer — which also lets a client that is still
        // "sending" see the answer.
        resp.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(resp.map_into_left_body())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::{App, test as atest};

    #[test]
    fn origins_are_exact_and_wildcards_are_refused() {
        let p = CorsPolicy::new(&["https://Portal.gov.vn/".into()]).unwrap();
        assert!(p.allows("https://portal.gov.vn"));
        assert!(!p.allows("https://portal.gov.vn.evil.example"));
        assert!(!p.allows("http://portal.gov.vn"));
        assert!(!p.allows(""));
        assert!(CorsPolicy::new(&["*".into()]).is_err());
        assert!(CorsPolicy::new(&["https://*.gov.vn".into()]).is_err());
        assert!(CorsPolicy::new(&["portal.gov.vn".into()]).is_err());
        assert!(CorsPolicy::new(&["https://portal.gov.vn/api".into()]).is_err());
        assert!(!CorsPolicy::default().allows("https://portal.gov.vn"));
    }

    async fn ok() -> HttpResponse {
        HttpResponse::Ok().body("ok")
    }

    #[actix_web::test]
    async fn preflights_are_refused_unless_the_origin_is_allowed() {
        let policy = web::Data::new(CorsPolicy::new(&["https://portal.gov.vn".into()]).unwrap());
        let app = atest::init_service(
            App::new()
                .app_data(policy)
                .route("/x", web::get().to(ok))
                .wrap(from_fn(cors)),
        )
        .await;
        let pre = |origin: &'static str| {
            atest::TestRequest::default()
                .method(Method::OPTIONS)
                .uri("/x")
                .insert_header((header::ORIGIN, origin))
                .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "POST"))
                .to_request()
        };
        let evil = atest::call_service(&app, pre("https://evil.example")).await;
        assert_eq!(evil.status(), 403);
        assert!(!evil.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        let good = atest::call_service(&app, pre("https://portal.gov.vn")).await;
        assert_eq!(good.status(), 204);
        assert_eq!(
            good.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
            "https://portal.gov.vn"
        );
        assert!(
            !good
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
        );

        let get = |origin: &'static str| {
            atest::TestRequest::get()
                .uri("/x")
                .insert_header((header::ORIGIN, origin))
                .to_request()
        };
        let evil = atest::call_service(&app, get("https://evil.example")).await;
        assert_eq!(
            evil.status(),
            200,
            "a simple request runs; the browser hides the answer"
        );
        assert!(!evil.headers().contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
        let good = atest::call_service(&app, get("https://portal.gov.vn")).await;
        assert_eq!(
            good.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
            "https://portal.gov.vn"
        );
    }

    #[actix_web::test]
    async fn without_a_policy_every_preflight_is_refused() {
        let app = atest::init_service(App::new().route("/x", web::get().to(ok)).wrap(from_fn(cors))).await;
        let req = atest::TestRequest::default()
            .method(Method::OPTIONS)
            .uri("/x")
            .insert_header((header::ORIGIN, "https://portal.gov.vn"))
            .insert_header((header::ACCESS_CONTROL_REQUEST_METHOD, "GET"))
            .to_request();
        assert_eq!(atest::call_service(&app, req).await.status(), 403);
    }

    #[test]
    fn only_a_timed_out_io_error_is_a_body_timeout() {
        let t = PayloadError::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, "x"));
        assert!(is_body_timeout(&t));
        assert!(!is_body_timeout(&PayloadError::Overflow));
        let other = PayloadError::Io(std::io::Error::other("x"));
        assert!(!is_body_timeout(&other));
    }
}
