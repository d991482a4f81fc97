//! The one error type of every HTTP handler, rendered as RFC 9457 `application/problem+json`
//! in Vietnamese or English (R-I18N, R-ING-4).
//!
//! # The problem body (a public contract: keep it stable)
//!
//! ```json
//! {
//!   "type": "urn:etxhub:problem:validation_failed",
//!   "title": "Dữ liệu không hợp lệ",
//!   "status": 422,
//!   "code": "validation_failed",
//!   "detail": "limit is 10485760 bytes",
//!   "instance": "/api/v1/records",
//!   "request_id": "0190f5c2-6a3e-7c1d-9f00-2b7e4c1a9d11",
//!   "violations": [
//!     {"item": 0, "path": "/payload/value", "code": "type",
//!      "message": "Sai kiểu dữ liệu", "detail": "expected number"}
//!   ]
//! }
//! ```
//!
//! * `type` is `urn:etxhub:problem:<code>`; `code` is the stable [`ErrorCode`] name and `status`
//!   always equals the HTTP status of the response.
//! * `title` and every violation `message` are translated by the request's `Accept-Language`
//!   (Vietnamese unless English is preferred).
//! * `detail`, `instance`, `request_id` and `violations` are omitted when empty or unknown;
//!   `item` and a violation's `detail` are omitted when not known.
//! * `detail` texts are English, written by us, and never echo submitted content (R-SEC-3);
//!   an [`ErrorCode::Internal`] never carries one — the cause is only in the server log, under
//!   the request id.
//!
//! Headers: `Content-Type: application/problem+json`, `Content-Language: vi|en`, `Retry-After`
//! when set, and `WWW-Authenticate: ApiKey realm="etxhub", Bearer realm="etxhub"` on every 401
//! (an API key, or an OAuth2 access token per RFC 6750).
//!
//! [`ApiError`] is a [`ResponseError`]: handlers return `Result<_, ApiError>`. Its plain
//! `error_response()` is Vietnamese and has no request id; the
//! [`standard`](crate::standard) middleware re-renders it in the request's language with
//! `instance` and `request_id`. The `from_*_error` constructors map actix-web's extractor
//! errors without echoing the submitted values.

use actix_web::error::{JsonPayloadError, PathError, PayloadError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, Responder, ResponseError};
use etx_domain::{ErrorCode, FieldViolation, Lang, ParseError, ViolationCode};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `WWW-Authenticate` challenge sent with every 401.
pub const WWW_AUTHENTICATE_CHALLENGE: &str = "ApiKey realm=\"etxhub\", Bearer realm=\"etxhub\"";

const PROBLEM_TYPE_PREFIX: &str = "urn:etxhub:problem:";

/// The one error type every handler returns. Rendered as `application/problem+json`.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The stable code; decides the HTTP status and the title.
    pub code: ErrorCode,
    /// Per-field violations (R-ING-4), in input order.
    pub violations: Vec<FieldViolation>,
    /// Extra English detail that is safe to show, e.g. `limit is 10485760 bytes`.
    /// Never set it from submitted content or from an internal error.
    pub detail: Option<String>,
    /// Seconds for the `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this code and nothing else.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            violations: Vec::new(),
            detail: None,
            retry_after: None,
        }
    }

    /// Adds violations (keeps any already there).
    pub fn with_violations(mut self, v: Vec<FieldViolation>) -> Self {
        self.violations.extend(v);
        self
    }

    /// Sets the English detail; it must not contain submitted content.
    pub fn with_detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }

    /// Sets `Retry-After` in seconds.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// Logs `err` at error level (inside the request span, so with the request id) and returns
    /// [`ErrorCode::Internal`] without exposing anything of `err` to the caller.
    pub fn internal(err: impl fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(ErrorCode::Internal)
    }

    /// [`ErrorCode::NotFound`].
    pub fn not_found() -> Self {
        Self::new(ErrorCode::NotFound)
    }

    /// [`ErrorCode::ValidationFailed`] with one violation at `path` built from a domain parse
    /// error. The parse error's own detail is only logged (it may quote the input).
    pub fn from_parse_error(path: impl Into<String>, err: &ParseError) -> Self {
        tracing::debug!(code = %err.code, detail = %err.detail, "value failed to parse");
        Self::new(ErrorCode::ValidationFailed).with_violations(vec![FieldViolation::new(path, err.code)])
    }

    /// The HTTP status of [`Self::code`].
    pub fn status(&self) -> StatusCode {
        status_of(self.code)
    }

    /// The structured problem body for a language and request.
    pub fn problem(&self, lang: Lang, instance: Option<&str>, request_id: Option<&str>) -> Problem {
        Problem {
            problem_type: format!("{PROBLEM_TYPE_PREFIX}{}", self.code.as_str()),
            title: self.code.title(lang).to_owned(),
            status: self.status().as_u16(),
            code: self.code.as_str().to_owned(),
            // Internal errors never carry detail, whatever a caller put there.
            detail: match self.code {
                ErrorCode::Internal => None,
                _ => self.detail.clone(),
            },
            instance: instance.map(str::to_owned),
            request_id: request_id.map(str::to_owned),
            violations: self
                .violations
                .iter()
                .map(|v| ProblemViolation {
                    item: v.item,
                    path: v.path.clone(),
                    code: v.code.as_str().to_owned(),
                    message: v.code.message(lang).to_owned(),
                    detail: v.detail.clone(),
                })
                .collect(),
        }
    }

    /// Renders the body for a language and request id (used by the middleware and by SOAP
    /// faults).
    pub fn to_problem(
        &self,
        lang: Lang,
        instance: Option<&str>,
        request_id: Option<&str>,
    ) -> serde_json::Value {
        self.problem(lang, instance, request_id).to_value()
    }

    /// The full response for a language and request: status, problem body and headers, with
    /// a clone of `self` in the response extensions.
    pub fn to_response(&self, lang: Lang, instance: Option<&str>, request_id: Option<&str>) -> HttpResponse {
        let body = self.problem(lang, instance, request_id).to_bytes();
        let mut res = HttpResponse::build(self.status()).body(body);
        set_problem_headers(res.headers_mut(), self.status(), lang, self.retry_after);
        res.extensions_mut().insert(self.clone());
        res
    }

    /// Maps an error of actix-web's `Json` extractor: syntax errors → `MalformedJson` with line
    /// and column; type/shape errors → `ValidationFailed`; size → `PayloadTooLarge`;
    /// content type → `UnsupportedMediaType`. Never echoes the body.
    pub fn from_json_error(err: &JsonPayloadError) -> Self {
        match err {
            JsonPayloadError::OverflowKnownLength { limit, .. } | JsonPayloadError::Overflow { limit } => {
                Self::new(ErrorCode::PayloadTooLarge).with_detail(format!("limit is {limit} bytes"))
            }
            JsonPayloadError::ContentType => Self::new(ErrorCode::UnsupportedMediaType)
                .with_detail("expected Content-Type application/json"),
            JsonPayloadError::Deserialize(e) => Self::from_serde_json(e),
            JsonPayloadError::Payload(e) => Self::from_payload_error(e),
            JsonPayloadError::Serialize(e) => Self::internal(e),
            _ => Self::new(ErrorCode::MalformedJson).with_detail("the body could not be read as JSON"),
        }
    }

    /// Maps a `serde_json` error from reading a request body (see [`Self::from_json_error`]).
    pub fn from_serde_json(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let position = format!("line {}, column {}", err.line(), err.column());
        let message = serde_json_message(err);
        match err.classify() {
            Category::Data => {
                let (code, field, expected) = classify_serde_message(&message);
                let detail = [
                    field.map(|f| format!("field `{f}`")),
                    expected,
                    Some(format!("at {position}")),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join("; ");
                Self::new(ErrorCode::ValidationFailed)
                    .with_violations(vec![FieldViolation::new("", code).with_detail(detail)])
            }
            // serde_json's syntax messages are fixed texts ("expected value", "trailing
            // comma", ...): they never quote the input.
            Category::Syntax | Category::Eof => {
                let detail = format!("{message} at {position}");
                Self::new(ErrorCode::MalformedJson)
                    .with_detail(detail.clone())
                    .with_violations(vec![
                        FieldViolation::new("", ViolationCode::Format).with_detail(detail),
                    ])
            }
            Category::Io => {
                Self::new(ErrorCode::MalformedJson).with_detail("the body could not be read as JSON")
            }
        }
    }

    /// Maps an error of reading the raw body (`Bytes`, `String`, `Json` extractors).
    pub fn from_payload_error(err: &PayloadError) -> Self {
        match err {
            PayloadError::Overflow => Self::new(ErrorCode::PayloadTooLarge),
            e if crate::hardening::is_body_timeout(e) => Self::new(ErrorCode::RequestTimeout),
            PayloadError::EncodingCorrupted => {
                Self::new(ErrorCode::InvalidParameter).with_detail("the Content-Encoding cannot be decoded")
            }
            PayloadError::UnknownLength => {
                Self::new(ErrorCode::InvalidParameter).with_detail("the body length is unknown")
            }
            _ => Self::new(ErrorCode::InvalidParameter).with_detail("the body could not be read completely"),
        }
    }

    /// Maps an error of the `Path` extractor to `InvalidParameter`.
    pub fn from_path_error(err: &PathError) -> Self {
        match err {
            PathError::Deserialize(e) => Self::from_parameter_message(&e.to_string()),
            _ => Self::new(ErrorCode::InvalidParameter),
        }
    }

    /// Maps an error of the `Query` extractor to `InvalidParameter`.
    pub fn from_query_error(err: &QueryPayloadError) -> Self {
        match err {
            QueryPayloadError::Deserialize(e) => Self::from_parameter_message(&e.to_string()),
            _ => Self::new(ErrorCode::InvalidParameter),
        }
    }

    fn from_parameter_message(message: &str) -> Self {
        let (code, field, expected) = classify_serde_message(message);
        let mut violation = FieldViolation::new(field.unwrap_or_default(), code);
        violation.detail = expected;
        Self::new(ErrorCode::InvalidParameter).with_violations(vec![violation])
    }

    /// Maps any actix-web error whose type we know (our own [`ApiError`] and actix's
    /// extractor errors); `None` for anything else.
    pub fn from_actix(err: &actix_web::Error) -> Option<Self> {
        if let Some(e) = err.as_error::<ApiError>() {
            return Some(e.clone());
        }
        if let Some(e) = err.as_error::<JsonPayloadError>() {
            return Some(Self::from_json_error(e));
        }
        if let Some(e) = err.as_error::<PayloadError>() {
            return Some(Self::from_payload_error(e));
        }
        if let Some(e) = err.as_error::<PathError>() {
            return Some(Self::from_path_error(e));
        }
        if let Some(e) = err.as_error::<QueryPayloadError>() {
            return Some(Self::from_query_error(e));
        }
        // `PayloadConfig::mimetype` rejects with these fixed texts.
        if let Some(e) = err.as_error::<actix_web::error::InternalError<&'static str>>() {
            let text = e.to_string();
            if text == "Unexpected Content-Type" || text == "Content-Type is expected" {
                return Some(Self::new(ErrorCode::UnsupportedMediaType));
            }
        }
        None
    }

    /// The code for an error response that carries no [`ApiError`], by its status alone.
    pub fn code_for_status(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            401 => ErrorCode::MissingCredentials,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            408 => ErrorCode::RequestTimeout,
            413 => ErrorCode::PayloadTooLarge,
            431 => ErrorCode::RequestHeadersTooLarge,
            415 => ErrorCode::UnsupportedMediaType,
            422 => ErrorCode::ValidationFailed,
            502 | 504 => ErrorCode::BadGateway,
            503 => ErrorCode::ServiceUnavailable,
            s if (500..600).contains(&s) => ErrorCode::Internal,
            _ => ErrorCode::InvalidParameter,
        }
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        Self::new(code)
    }
}

impl From<ParseError> for ApiError {
    /// `ValidationFailed` with one violation at path `""`; use [`ApiError::from_parse_error`]
    /// when the field is known.
    fn from(err: ParseError) -> Self {
        Self::from_parse_error("", &err)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code.as_str())?;
        if let Some(d) = &self.detail {
            write!(f, ": {d}")?;
        }
        if !self.violations.is_empty() {
            write!(f, " ({} violation(s))", self.violations.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    /// Vietnamese, without request context; the middleware re-renders it per request.
    fn error_response(&self) -> HttpResponse {
        self.to_response(Lang::default(), None, None)
    }
}

impl Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    /// Rendered directly in the request's language with `instance` and `request_id`.
    fn respond_to(self, req: &HttpRequest) -> HttpResponse {
        let lang = crate::middleware::request_lang(req);
        let id = crate::middleware::request_id_of(req);
        self.to_response(lang, Some(req.path()), id.as_deref())
    }
}

/// The problem body (see the module docs); also the OpenAPI schema of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:etxhub:problem:<code>`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// The translated title of the code.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// The stable error code.
    pub code: String,
    /// Extra English detail, never quoting the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The request id, also in the `X-Request-Id` header and the server log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Per-field violations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<ProblemViolation>,
}

/// One violation in a [`Problem`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProblemViolation {
    /// Index of the record in an array submission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// JSON-Pointer-like path of the field (`/payload/value`); for query and path parameters,
    /// the parameter name; `""` when not known.
    pub path: String,
    /// The violation code (`required`, `type`, `format`, ...).
    pub code: String,
    /// The translated message of the code.
    pub message: String,
    /// Extra English detail (expected type, limits, position), never quoting the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Problem {
    /// The body as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The body as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// Sets `Content-Type`, `Content-Language`, `Retry-After` and (on 401) `WWW-Authenticate`.
pub(crate) fn set_problem_headers(
    headers: &mut HeaderMap,
    status: StatusCode,
    lang: Lang,
    retry_after: Option<u64>,
) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    headers.insert(header::CONTENT_LANGUAGE, HeaderValue::from_static(lang.tag()));
    if let Some(secs) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if status == StatusCode::UNAUTHORIZED && !headers.contains_key(header::WWW_AUTHENTICATE) {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(WWW_AUTHENTICATE_CHALLENGE),
        );
    }
}

/// serde_json's message without its ` at line L column C` suffix.
fn serde_json_message(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    full.strip_suffix(&suffix).map(str::to_owned).unwrap_or(full)
}

/// Reads serde's standard error texts into a violation code, a field name and an
/// `expected …` phrase — keeping only the parts that come from our types, never the parts
/// that quote the input. Unknown (custom) texts give [`ViolationCode::Invalid`] and nothing
/// else, since they may quote the input.
pub(crate) fn classify_serde_message(msg: &str) -> (ViolationCode, Option<String>, Option<String>) {
    // serde puts `expected …` last, after the quoted input; rfind skips any lookalike inside it.
    let expected = || msg.rfind(", expected ").map(|i| msg[i + 2..].to_owned());
    let field = |rest: &str| {
        let end = rest.rfind('`')?;
        let name = &rest[..end];
        let name = name.split_once('`').map_or(name, |(n, _)| n);
        is_safe_name(name).then(|| name.to_owned())
    };
    if let Some(rest) = msg.strip_prefix("missing field `") {
        (ViolationCode::Required, field(rest), None)
    } else if let Some(rest) = msg.strip_prefix("unknown field `") {
        (ViolationCode::UnknownField, field(rest), expected())
    } else if let Some(rest) = msg.strip_prefix("duplicate field `") {
        (
            ViolationCode::Invalid,
            field(rest),
            Some("duplicate field".to_owned()),
        )
    } else if msg.starts_with("invalid type: ") {
        (ViolationCode::Type, None, expected())
    } else if msg.starts_with("invalid value: ") {
        (ViolationCode::Format, None, expected())
    } else if msg.starts_with("unknown variant `") {
        (ViolationCode::Enum, None, expected())
    } else if msg.starts_with("invalid length ") {
        (ViolationCode::Invalid, None, expected())
    } else {
        (ViolationCode::Invalid, None, None)
    }
}

fn is_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ApiError {
        ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
            FieldViolation::new("/payload/value", ViolationCode::Type)
                .at_item(0)
                .with_detail("expected number"),
        ])
    }

    #[test]
    fn problem_body_has_the_documented_shape() {
        let v = sample().to_problem(Lang::Vi, Some("/api/v1/records"), Some("req-1"));
        assert_eq!(
            v,
            serde_json::json!({
                "type": "urn:etxhub:problem:validation_failed",
                "title": "Dữ liệu không hợp lệ",
                "status": 422,
                "code": "validation_failed",
                "instance": "/api/v1/records",
                "request_id": "req-1",
                "violations": [{"item": 0, "path": "/payload/value", "code": "type",
                                "message": "Sai kiểu dữ liệu", "detail": "expected number"}]
            })
        );
    }

    #[test]
    fn problem_body_is_translated_to_english() {
        let v = sample().to_problem(Lang::En, None, None);
        assert_eq!(v["title"], "The data is not valid");
        assert_eq!(v["violations"][0]["message"], "Wrong data type");
        assert!(v.get("instance").is_none());
        assert!(v.get("request_id").is_none());
        assert!(v.get("detail").is_none());
    }

    #[test]
    fn internal_errors_drop_any_detail() {
        let e = ApiError::internal("db password=hunter2").with_detail("leak");
        let v = e.to_problem(Lang::En, None, None);
        assert_eq!(v["code"], "internal");
        assert_eq!(v["status"], 500);
        assert!(v.get("detail").is_none());
        assert!(!v.to_string().contains("hunter2"));
    }

    #[test]
    fn status_code_follows_the_catalogue() {
        for c in ErrorCode::ALL {
            assert_eq!(ApiError::new(c).status_code().as_u16(), c.http_status());
        }
    }

    #[test]
    fn parse_errors_become_validation_failures_without_quoting_input() {
        let err = ParseError {
            code: ViolationCode::Enum,
            detail: "unknown organisation kind `<script>`".into(),
        };
        let e = ApiError::from(err);
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        assert_eq!(e.violations.len(), 1);
        assert_eq!(e.violations[0].path, "");
        assert_eq!(e.violations[0].code, ViolationCode::Enum);
        assert!(e.violations[0].detail.is_none());
    }

    #[test]
    fn serde_messages_keep_only_our_own_words() {
        let (c, f, d) = classify_serde_message("missing field `name`");
        assert_eq!(
            (c, f.as_deref(), d),
            (ViolationCode::Required, Some("name"), None)
        );

        let (c, f, d) = classify_serde_message("invalid type: string \"SECRET, expected x\", expected u32");
        assert_eq!(
            (c, f, d.as_deref()),
            (ViolationCode::Type, None, Some("expected u32"))
        );

        let (c, _, d) = classify_serde_message("unknown variant `SECRET`, expected `a` or `b`");
        assert_eq!(
            (c, d.as_deref()),
            (ViolationCode::Enum, Some("expected `a` or `b`"))
        );

        let (c, f, _) = classify_serde_message("unknown field `<b>`, expected `a`");
        assert_eq!((c, f), (ViolationCode::UnknownField, None));

        let (c, f, d) = classify_serde_message("can not parse \"SECRET\" to a u32");
        assert_eq!((c, f, d), (ViolationCode::Invalid, None, None));
    }

    #[test]
    fn json_syntax_errors_give_line_and_column() {
        let err = serde_json::from_slice::<serde_json::Value>(b"{\n  \"a\": tru SECRET}")
            .err()
            .map(|e| ApiError::from_serde_json(&e));
        let err = err.expect("must fail");
        assert_eq!(err.code, ErrorCode::MalformedJson);
        let detail = err.detail.unwrap_or_default();
        assert!(detail.contains("line 2"), "{detail}");
        assert!(!detail.contains("SECRET"), "{detail}");
    }

    #[test]
    fn json_type_errors_are_validation_failures_without_the_value() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct T {
            n: u32,
        }
        let err = serde_json::from_slice::<T>(br#"{"n": "SECRET"}"#)
            .err()
            .map(|e| ApiError::from_serde_json(&e))
            .expect("must fail");
        assert_eq!(err.code, ErrorCode::ValidationFailed);
        assert_eq!(err.violations[0].code, ViolationCode::Type);
        let detail = err.violations[0].detail.clone().unwrap_or_default();
        assert!(detail.contains("expected u32"), "{detail}");
        assert!(detail.contains("line 1"), "{detail}");
        assert!(!detail.contains("SECRET"), "{detail}");
    }
}
