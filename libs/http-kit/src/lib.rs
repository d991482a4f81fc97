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
//! * [`principal`] — [`Principal`], [`PrincipalSigner`], [`PRINCIPAL_HEADER`].

pub mod error;
pub mod middleware;
pub mod principal;

pub use error::{ApiError, PROBLEM_JSON, Problem, ProblemViolation, WWW_AUTHENTICATE_CHALLENGE};
pub use middleware::{
    KeepErrorBody, REQUEST_ID_HEADER, RequestId, RequestLang, StandardMiddleware, StandardMiddlewareService,
    is_acceptable_request_id, json_config, not_found_handler, path_config, payload_config, query_config,
    standard, standard_middleware,
};
pub use principal::{DEFAULT_PRINCIPAL_TTL, PRINCIPAL_HEADER, Principal, PrincipalSigner};

/// The items of a channel as a stream: how a task producing a large body (an export, an error
/// list, a proxied upload) feeds a streaming HTTP body with bounded memory.
pub fn channel_stream<T>(rx: tokio::sync::mpsc::Receiver<T>) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// What a handler returns.
pub type ApiResult<T> = Result<T, ApiError>;
