//! The HTTP toolkit shared by every ETX Hub app (actix-web 4): one error type rendered as
//! `application/problem+json` in Vietnamese or English (R-I18N, R-ING-4), the standard
//! middleware (request id, problem bodies for every error, security headers; R-SEC-3,
//! R-SEC-4), extractor configurations with body limits, and the gateway-signed
//! [`Principal`] every service trusts (R-SEC-1, DESIGN.md §5).
//!
//! * [`error`] — [`ApiError`] and the problem body contract.
//! * [`middleware`] — [`standard_middleware`] / [`standard`], [`RequestId`], [`RequestLang`],
//!   [`json_config`], [`payload_config`], [`path_config`], [`query_config`],
//!   [`not_found_handler`].
//! * [`hardening`] — [`CorsPolicy`] / [`cors`], [`BodyIdleTimeout`] / [`client_limits`].
//! * [`openapi`] — the error responses every operation declares ([`openapi::AuthErrors`],
//!   [`openapi::BadParameter`], [`openapi::TooLarge`]), all with the [`Problem`] schema.
//! * [`principal`] — [`Principal`], [`PrincipalSigner`], [`PRINCIPAL_HEADER`].
//! * [`routes`] — [`method_not_allowed`]: `405` with `Allow` for a method a path has no route for.

pub mod error;
pub mod hardening;
pub mod middleware;
pub mod openapi;
pub mod principal;
pub mod routes;

pub use error::{ApiError, PROBLEM_JSON, Problem, ProblemViolation, WWW_AUTHENTICATE_CHALLENGE};
pub use hardening::{BodyIdleTimeout, CorsPolicy, client_limits, cors};
pub use middleware::{
    KeepErrorBody, REQUEST_ID_HEADER, RequestId, RequestLang, StandardMiddleware, StandardMiddlewareService,
    is_acceptable_request_id, json_config, not_found_handler, path_config, payload_config, query_config,
    standard, standard_middleware,
};
pub use principal::{DEFAULT_PRINCIPAL_TTL, PRINCIPAL_HEADER, Principal, PrincipalSigner, denial_error};
pub use routes::method_not_allowed;

/// The items of a channel as a stream: how a task producing a large body (an export, an error
/// list, a proxied upload) feeds a streaming HTTP body with bounded memory.
pub fn channel_stream<T>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// What a handler returns.
pub type ApiResult<T> = Result<T, ApiError>;
