//! The middleware every ETX Hub app is wrapped in, the request id and language extractors, and
//! the extractor configurations (R-I18N, R-ING-4, R-SEC-3, R-SEC-4).
//!
//! Use it outermost (actix runs the last `.wrap` first), either as a type or as a function:
//!
//! ```no_run
//! use actix_web::{App, web};
//! let app = App::new()
//!     .app_data(etx_http_kit::json_config(10 * 1024 * 1024))
//!     .app_data(etx_http_kit::payload_config(10 * 1024 * 1024))
//!     .app_data(etx_http_kit::path_config())
//!     .app_data(etx_http_kit::query_config())
//!     .default_service(web::to(etx_http_kit::not_found_handler))
//!     .wrap(etx_http_kit::standard_middleware());
//! // or: .wrap(actix_web::middleware::from_fn(etx_http_kit::standard))
//! ```
//!
//! For every request it:
//! 1. takes the client's `X-Request-Id` if it is 1–64 characters of `[A-Za-z0-9._-]`, otherwise
//!    makes a UUIDv7 (a hostile id can neither split headers nor flood logs, R-SEC-3), and puts
//!    [`RequestId`] and [`RequestLang`] in the request extensions; handlers run inside a
//!    `request` tracing span carrying the id, so [`ApiError::internal`] logs can be found by it;
//! 2. turns every error response (status ≥ 400) into `application/problem+json` in the
//!    request's language with `instance` = path and `request_id`:
//!    * a response carrying an [`ApiError`] (extension or source error) is re-rendered;
//!    * actix's own errors (extractors, `PayloadConfig`) are mapped by type;
//!    * any other error response is mapped by status (404 → `not_found`, 405 →
//!      `method_not_allowed`, 413 → `payload_too_large`, 415 → `unsupported_media_type`,
//!      401 → `missing_credentials`, 403 → `forbidden`, 422 → `validation_failed`,
//!      502/504 → `bad_gateway`, 503 → `service_unavailable`, other 4xx → `invalid_parameter`,
//!      other 5xx → `internal`, logged) keeping its status and headers (e.g. `Allow`);
//!    * except a body that is already problem+json, an XML body (SOAP faults), or a response
//!      with the [`KeepErrorBody`] extension;
//! 3. adds security headers to every response (R-SEC-4): `Strict-Transport-Security`,
//!    `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`, `Referrer-Policy:
//!    no-referrer`, `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` and
//!    `Cache-Control: no-store` (these two only when the handler set none) and echoes
//!    `X-Request-Id`.

use crate::error::{ApiError, PROBLEM_JSON, set_problem_headers};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::{JsonConfig, PathConfig, PayloadConfig, QueryConfig};
use actix_web::{Error, FromRequest, HttpMessage, HttpRequest, HttpResponse, Responder};
use etx_domain::Lang;
use futures_util::future::LocalBoxFuture;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::rc::Rc;
use tracing::Instrument;

/// The request id header, read from the client and echoed on every response.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

const HSTS: &str = "max-age=31536000; includeSubDomains";
const CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The id of this request (client-supplied if acceptable, else a UUIDv7).
///
/// Always present after the middleware; without it, one is generated on first extraction and
/// kept for the rest of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The language to answer this request in, from `Accept-Language` (Vietnamese by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLang(pub Lang);

/// Put this in a response's extensions to keep an error body as the handler wrote it (e.g. a
/// readiness probe's JSON report). Security headers are still added.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeepErrorBody;

impl FromRequest for RequestId {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        if let Some(id) = req.extensions().get::<RequestId>() {
            return ready(Ok(id.clone()));
        }
        let id = RequestId(uuid::Uuid::now_v7().to_string());
        req.extensions_mut().insert(id.clone());
        ready(Ok(id))
    }
}

impl FromRequest for RequestLang {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(RequestLang(request_lang(req))))
    }
}

/// The request's language: the middleware's choice, else from `Accept-Language`.
pub(crate) fn request_lang(req: &HttpRequest) -> Lang {
    req.extensions()
        .get::<RequestLang>()
        .map(|l| l.0)
        .unwrap_or_else(|| lang_from_headers(req.headers()))
}

/// The request id put by the middleware, if any.
pub(crate) fn request_id_of(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<RequestId>().map(|id| id.0.clone())
}

fn lang_from_headers(headers: &HeaderMap) -> Lang {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .map(Lang::from_accept_language)
        .unwrap_or_default()
}

/// Whether a client-supplied request id is safe to adopt: 1–64 of `[A-Za-z0-9._-]`.
pub fn is_acceptable_request_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The middleware as an `async fn`, for `actix_web::middleware::from_fn(etx_http_kit::standard)`.
pub async fn standard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    handle(req, move |r| async move { next.call(r).await }).await
}

/// The middleware as a [`Transform`]: `App::new().wrap(standard_middleware())`.
pub fn standard_middleware() -> StandardMiddleware {
    StandardMiddleware
}

/// The standard middleware (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct StandardMiddleware;

impl<S, B> Transform<S, ServiceRequest> for StandardMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = StandardMiddlewareService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(StandardMiddlewareService {
            service: Rc::new(service),
        }))
    }
}

/// The service built by [`StandardMiddleware`].
pub struct StandardMiddlewareService<S> {
    service: Rc<S>,
}

impl<S> std::fmt::Debug for StandardMiddlewareService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StandardMiddlewareService")
            .finish_non_exhaustive()
    }
}

impl<S, B> Service<ServiceRequest> for StandardMiddlewareService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        Box::pin(handle(req, move |r| service.call(r)))
    }
}

async fn handle<F, Fut, B>(req: ServiceRequest, call: F) -> Result<ServiceResponse<BoxBody>, Error>
where
    F: FnOnce(ServiceRequest) -> Fut,
    Fut: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody + 'static,
{
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| is_acceptable_request_id(id))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let lang = lang_from_headers(req.headers());
    req.extensions_mut().insert(RequestId(request_id.clone()));
    req.extensions_mut().insert(RequestLang(lang));

    let span = tracing::info_span!("request", request_id = %request_id, method = %req.method());
    // Only the path is kept: a clone of the request would stop the router from matching it.
    let path = req.path().to_owned();
    let result = call(req).instrument(span.clone()).await;
    let _entered = span.enter();
    match result {
        Ok(res) => {
            let (req, response) = res.map_into_boxed_body().into_parts();
            Ok(ServiceResponse::new(
                req,
                finish(response, &path, lang, &request_id),
            ))
        }
        // An inner middleware failed, so there is no request to answer with: hand actix an
        // error whose response is already the finished problem.
        Err(err) => {
            let cause = err.to_string();
            let response = finish(HttpResponse::from_error(err), &path, lang, &request_id);
            Err(InternalError::from_response(cause, response).into())
        }
    }
}

fn finish(
    mut response: HttpResponse<BoxBody>,
    path: &str,
    lang: Lang,
    request_id: &str,
) -> HttpResponse<BoxBody> {
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        response = problemise(path, response, lang, request_id);
    }
    add_security_headers(response.headers_mut(), request_id);
    response
}

/// Makes an error response a problem+json one (see the module docs for the rules).
fn problemise(
    path: &str,
    response: HttpResponse<BoxBody>,
    lang: Lang,
    request_id: &str,
) -> HttpResponse<BoxBody> {
    let known = response
        .extensions()
        .get::<ApiError>()
        .cloned()
        .or_else(|| response.error().and_then(ApiError::from_actix));
    if let Some(err) = known {
        let status = err.status();
        let problem = err.problem(lang, Some(path), Some(request_id));
        return replace_body(response, status, problem.to_bytes(), lang, err);
    }

    let status = response.status();
    if response.extensions().contains::<KeepErrorBody>() || is_problem_or_xml(response.headers()) {
        return response;
    }
    let err = ApiError::new(ApiError::code_for_status(status));
    if status.is_server_error() {
        match response.error() {
            Some(e) => tracing::error!(error = %e, status = status.as_u16(), "error response"),
            None => tracing::error!(status = status.as_u16(), "error response without a cause"),
        }
    }
    let mut problem = err.problem(lang, Some(path), Some(request_id));
    // Keep the status actix chose (e.g. 408) even when the code's own status differs.
    problem.status = status.as_u16();
    replace_body(response, status, problem.to_bytes(), lang, err)
}

fn replace_body(
    response: HttpResponse<BoxBody>,
    status: StatusCode,
    body: Vec<u8>,
    lang: Lang,
    err: ApiError,
) -> HttpResponse<BoxBody> {
    let (head, _old_body) = response.into_parts();
    let mut res = head.set_body(BoxBody::new(body));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::CONTENT_ENCODING);
    set_problem_headers(headers, status, lang, err.retry_after);
    res.extensions_mut().insert(err);
    res
}

fn is_problem_or_xml(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence == PROBLEM_JSON
        || essence == "text/xml"
        || essence == "application/xml"
        || essence.ends_with("+xml")
}

fn add_security_headers(headers: &mut HeaderMap, request_id: &str) {
    headers.insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    // The id is checked or generated above, so it is always a valid header value.
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
}

/// `JsonConfig` with a body limit whose errors are [`ApiError`]s: `malformed_json` (with line
/// and column), `validation_failed` (wrong types or shape), `payload_too_large`,
/// `unsupported_media_type`. The body is never echoed.
pub fn json_config(limit_bytes: usize) -> JsonConfig {
    JsonConfig::default()
        .limit(limit_bytes)
        .error_handler(|err, _req| ApiError::from_json_error(&err).into())
}

/// `PayloadConfig` (for `Bytes` and `String` bodies) with a body limit; its errors are mapped by
/// the middleware (`payload_too_large`, `unsupported_media_type`, `invalid_parameter`).
pub fn payload_config(limit_bytes: usize) -> PayloadConfig {
    PayloadConfig::new(limit_bytes)
}

/// `PathConfig` whose errors are `invalid_parameter` [`ApiError`]s that never echo the value.
pub fn path_config() -> PathConfig {
    PathConfig::default().error_handler(|err, _req| ApiError::from_path_error(&err).into())
}

/// `QueryConfig` whose errors are `invalid_parameter` [`ApiError`]s naming the parameter but
/// never echoing its value.
pub fn query_config() -> QueryConfig {
    QueryConfig::default().error_handler(|err, _req| ApiError::from_query_error(&err).into())
}

/// Default service for unknown routes: a 404 problem in the request's language.
pub async fn not_found_handler(req: HttpRequest) -> HttpResponse {
    ApiError::not_found().respond_to(&req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_accepted_only_when_short_and_plain() {
        assert!(is_acceptable_request_id("abc-123_X.y"));
        assert!(is_acceptable_request_id(&"a".repeat(64)));
        assert!(!is_acceptable_request_id(&"a".repeat(65)));
        assert!(!is_acceptable_request_id(""));
        assert!(!is_acceptable_request_id("a b"));
        assert!(!is_acceptable_request_id("a\r\nSet-Cookie: x"));
        assert!(!is_acceptable_request_id("ảnh"));
    }

    #[test]
    fn problem_and_xml_bodies_are_recognised() {
        let mut h = HeaderMap::new();
        assert!(!is_problem_or_xml(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        assert!(is_problem_or_xml(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/xml; charset=utf-8"),
        );
        assert!(is_problem_or_xml(&h));
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/soap+xml"),
        );
        assert!(is_problem_or_xml(&h));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(!is_problem_or_xml(&h));
    }
}
