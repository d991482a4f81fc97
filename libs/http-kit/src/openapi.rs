//! OpenAPI building blocks shared by every module's `#[utoipa::path]` annotations, so that the
//! published document describes the error responses the standard middleware and the gateway
//! really give: every one is `application/problem+json` with the [`Problem`] schema.
//!
//! ```ignore
//! #[utoipa::path(get, path = "/api/v1/things/{id}",
//!     params(("id" = Uuid, Path)),
//!     responses(
//!         (status = 200, body = ThingOut),
//!         (status = 404, description = "not found", body = Problem, content_type = "application/problem+json"),
//!         etx_http_kit::openapi::AuthErrors,
//!         etx_http_kit::openapi::BadParameter,
//!     ),
//!     security(("api_key" = [])))]
//! ```
//!
//! A module's `#[openapi(components(schemas(...)))]` must list [`Problem`] and
//! [`ProblemViolation`](crate::ProblemViolation): responses built from these `IntoResponses`
//! types only reference them.

use crate::error::Problem;

/// The answers of the gateway's authentication to any operation behind it (R-SEC-1).
#[derive(Debug, utoipa::IntoResponses)]
pub enum AuthErrors {
    /// Missing, invalid, expired or revoked credentials (`missing_credentials`,
    /// `invalid_credentials`, `revoked_credentials`); with `WWW-Authenticate`.
    #[response(status = 401, content_type = "application/problem+json",
        headers(("WWW-Authenticate" = String, description = "`ApiKey realm=\"etxhub\", Bearer realm=\"etxhub\"`")))]
    Unauthorized(Problem),
    /// The caller may not do this: a key whose scopes or address allow-list do not cover the
    /// request, or a caller that is not a connected system (`forbidden`, `insufficient_scope`,
    /// `address_not_allowed`).
    #[response(status = 403, content_type = "application/problem+json")]
    Forbidden(Problem),
}

/// A path or query parameter that cannot be read (`invalid_parameter`), e.g. an id that is not
/// a UUID.
#[derive(Debug, utoipa::IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
pub struct BadParameter(pub Problem);

/// A request body larger than the configured limit (`payload_too_large`).
#[derive(Debug, utoipa::IntoResponses)]
#[response(status = 413, content_type = "application/problem+json")]
pub struct TooLarge(pub Problem);
