//! The error catalogue (R-I18N, R-ING-4): one table gives every error code its HTTP status and
//! its Vietnamese and English text; field violations carry a path and a rule code.
//!
//! Codes are part of the public contract (`contracts/openapi`, SOAP faults): never rename one.

use crate::Lang;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A stable, machine-readable error code returned in every problem+json body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not well-formed JSON.
    MalformedJson,
    /// The body is not well-formed XML.
    MalformedXml,
    /// The XML carries a DTD or an entity declaration (R-SEC-3).
    XmlDtdForbidden,
    /// The `Content-Type` is not one the endpoint accepts.
    UnsupportedMediaType,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// A submission holds more records than allowed, or none.
    BatchSize,
    /// One or more fields break their rules; see `violations`.
    ValidationFailed,
    /// A record is labelled as a state secret (R-SRC-2).
    StateSecretRefused,
    /// No API key or bearer token was presented.
    MissingCredentials,
    /// The presented credentials are unknown, expired or malformed.
    InvalidCredentials,
    /// The presented API key or access token has been revoked.
    RevokedCredentials,
    /// The caller may not do this.
    Forbidden,
    /// The object does not exist or belongs to someone else.
    NotFound,
    /// The idempotency key was already used with a different body (R-ING-5).
    IdempotencyConflict,
    /// An object with the same unique code already exists.
    AlreadyExists,
    /// The HTTP method is not allowed on this path.
    MethodNotAllowed,
    /// A query or path parameter is malformed.
    InvalidParameter,
    /// The service cannot take work right now (starting, draining, dependency down).
    ServiceUnavailable,
    /// A dependency answered wrongly or not in time.
    BadGateway,
    /// The request came through no trusted gateway (missing or invalid internal principal).
    UntrustedCaller,
    /// Something unexpected; details are in the server log under the request id.
    Internal,
    /// A batch's declared control totals (row count, SHA-256) do not match the file (R-REC):
    /// nothing of the batch is kept.
    ControlTotalMismatch,
    /// The request body ended before it was complete, or could not be read.
    IncompleteBody,
    /// The caller (API key, organisation or client address) sent more requests than its rate
    /// limit allows (R-SEC-2); `Retry-After` says when to try again.
    RateLimited,
    /// A person signing in needs a second factor (TOTP or recovery code) and gave none, or
    /// must enrol one before doing anything else (R-SEC-6).
    MfaRequired,
    /// The second factor is wrong, expired or was already used (R-SEC-6).
    InvalidMfaCode,
    /// Too many failed sign-ins for this account or from this address; `Retry-After` says
    /// when to try again (R-SEC-5).
    AccountLocked,
    /// The session ended (signed out, idle or absolute timeout).
    SessionExpired,
    /// A state-changing request with a session cookie lacked the anti-forgery header.
    CsrfRejected,
    /// The credential is valid but not granted the scope this operation needs.
    InsufficientScope,
    /// The credential may not be used from the client's address (IP allow-list).
    AddressNotAllowed,
    /// The request body stopped arriving before it was complete (slow or stalled client).
    RequestTimeout,
    /// The request carries too many headers, or they are too large.
    RequestHeadersTooLarge,
    /// Signing in through the external OpenID Connect provider failed: the sign-in is unknown,
    /// expired, used or was started in another browser, the provider refused, its ID token is
    /// not valid, or no active account matches (R-SEC-5).
    OidcFailed,
}

impl ErrorCode {
    /// Every code, for the catalogue test and the documentation.
    pub const ALL: [ErrorCode; 34] = [
        Self::MalformedJson,
        Self::MalformedXml,
        Self::XmlDtdForbidden,
        Self::UnsupportedMediaType,
        Self::PayloadTooLarge,
        Self::BatchSize,
        Self::ValidationFailed,
        Self::StateSecretRefused,
        Self::MissingCredentials,
        Self::InvalidCredentials,
        Self::RevokedCredentials,
        Self::Forbidden,
        Self::NotFound,
        Self::IdempotencyConflict,
        Self::AlreadyExists,
        Self::MethodNotAllowed,
        Self::InvalidParameter,
        Self::ServiceUnavailable,
        Self::BadGateway,
        Self::UntrustedCaller,
        Self::Internal,
        Self::ControlTotalMismatch,
        Self::IncompleteBody,
        Self::RateLimited,
        Self::MfaRequired,
        Self::InvalidMfaCode,
        Self::AccountLocked,
        Self::SessionExpired,
        Self::CsrfRejected,
        Self::InsufficientScope,
        Self::AddressNotAllowed,
        Self::RequestTimeout,
        Self::RequestHeadersTooLarge,
        Self::OidcFailed,
    ];

    /// The snake_case code.
    pub fn as_str(self) -> &'static str {
        self.entry().0
    }

    /// The HTTP status this code is answered with.
    pub fn http_status(self) -> u16 {
        self.entry().1
    }

    /// The human title in the given language.
    pub fn title(self, lang: Lang) -> &'static str {
        let (_, _, vi, en) = self.entry();
        match lang {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    /// The one table: code, status, Vietnamese title, English title.
    fn entry(self) -> (&'static str, u16, &'static str, &'static str) {
        match self {
            Self::MalformedJson => (
                "malformed_json",
                400,
                "Nội dung JSON không hợp lệ",
                "The body is not valid JSON",
            ),
            Self::MalformedXml => (
                "malformed_xml",
                400,
                "Nội dung XML không hợp lệ",
                "The body is not well-formed XML",
            ),
            Self::XmlDtdForbidden => (
                "xml_dtd_forbidden",
                400,
                "XML không được chứa DTD hoặc khai báo thực thể",
                "XML must not contain a DTD or entity declarations",
            ),
            Self::UnsupportedMediaType => (
                "unsupported_media_type",
                415,
                "Kiểu nội dung không được hỗ trợ",
                "Unsupported content type",
            ),
            Self::PayloadTooLarge => (
                "payload_too_large",
                413,
                "Dữ liệu gửi lên vượt quá kích thước cho phép",
                "The body is larger than allowed",
            ),
            Self::BatchSize => (
                "batch_size",
                400,
                "Số lượng bản ghi trong một lần gửi không hợp lệ",
                "The number of records in one submission is not allowed",
            ),
            Self::ValidationFailed => (
                "validation_failed",
                422,
                "Dữ liệu không hợp lệ",
                "The data is not valid",
            ),
            Self::StateSecretRefused => (
                "state_secret_refused",
                422,
                "Hệ thống không tiếp nhận dữ liệu thuộc bí mật nhà nước",
                "State-secret data is not accepted",
            ),
            Self::MissingCredentials => (
                "missing_credentials",
                401,
                "Thiếu khóa API hoặc mã truy cập",
                "An API key or access token is required",
            ),
            Self::InvalidCredentials => (
                "invalid_credentials",
                401,
                "Khóa API hoặc mã truy cập không hợp lệ",
                "The API key or access token is not valid",
            ),
            Self::RevokedCredentials => (
                "revoked_credentials",
                401,
                "Khóa API hoặc mã truy cập đã bị thu hồi",
                "The API key or access token has been revoked",
            ),
            Self::Forbidden => (
                "forbidden",
                403,
                "Không có quyền thực hiện thao tác này",
                "You are not allowed to do this",
            ),
            Self::NotFound => ("not_found", 404, "Không tìm thấy", "Not found"),
            Self::IdempotencyConflict => (
                "idempotency_conflict",
                409,
                "Khóa chống trùng lặp đã được dùng cho nội dung khác",
                "The idempotency key was already used with a different body",
            ),
            Self::AlreadyExists => ("already_exists", 409, "Đối tượng đã tồn tại", "It already exists"),
            Self::MethodNotAllowed => (
                "method_not_allowed",
                405,
                "Phương thức không được hỗ trợ",
                "Method not allowed",
            ),
            Self::InvalidParameter => (
                "invalid_parameter",
                400,
                "Tham số không hợp lệ",
                "A parameter is not valid",
            ),
            Self::ServiceUnavailable => (
                "service_unavailable",
                503,
                "Dịch vụ tạm thời không sẵn sàng, vui lòng thử lại",
                "The service is temporarily unavailable; please retry",
            ),
            Self::BadGateway => (
                "bad_gateway",
                502,
                "Dịch vụ phía sau không phản hồi đúng",
                "An upstream service did not answer correctly",
            ),
            Self::UntrustedCaller => (
                "untrusted_caller",
                401,
                "Yêu cầu không đi qua cổng kết nối tin cậy",
                "The request did not come through a trusted gateway",
            ),
            Self::Internal => (
                "internal",
                500,
                "Lỗi hệ thống; vui lòng liên hệ quản trị viên với mã yêu cầu",
                "Internal error; please contact the operator with the request id",
            ),
            Self::ControlTotalMismatch => (
                "control_total_mismatch",
                422,
                "Tổng kiểm soát của lô không khớp với tệp; không dòng nào được lưu",
                "The batch's control totals do not match the file; no row was kept",
            ),
            Self::IncompleteBody => (
                "incomplete_body",
                400,
                "Nội dung yêu cầu bị gián đoạn hoặc không đọc được",
                "The request body was cut short or could not be read",
            ),
            Self::RateLimited => (
                "rate_limited",
                429,
                "Vượt quá giới hạn tần suất yêu cầu; vui lòng thử lại sau",
                "Too many requests; retry later",
            ),
            Self::MfaRequired => (
                "mfa_required",
                401,
                "Cần xác thực hai yếu tố (mã TOTP hoặc mã khôi phục)",
                "A second factor (TOTP or recovery code) is required",
            ),
            Self::InvalidMfaCode => (
                "invalid_mfa_code",
                401,
                "Mã xác thực hai yếu tố không đúng, đã hết hạn hoặc đã được sử dụng",
                "The second-factor code is wrong, expired or already used",
            ),
            Self::AccountLocked => (
                "account_locked",
                423,
                "Tài khoản tạm thời bị khóa do đăng nhập sai nhiều lần; vui lòng thử lại sau",
                "Too many failed sign-ins; the account is locked for a while",
            ),
            Self::SessionExpired => (
                "session_expired",
                401,
                "Phiên làm việc đã hết hạn; vui lòng đăng nhập lại",
                "The session has ended; please sign in again",
            ),
            Self::CsrfRejected => (
                "csrf_rejected",
                403,
                "Yêu cầu thiếu mã chống giả mạo",
                "The request lacks the anti-forgery header",
            ),
            Self::InsufficientScope => (
                "insufficient_scope",
                403,
                "Thông tin xác thực không được cấp phạm vi cho thao tác này",
                "The credential is not granted the scope this operation needs",
            ),
            Self::AddressNotAllowed => (
                "address_not_allowed",
                403,
                "Không được phép sử dụng thông tin xác thực từ địa chỉ này",
                "The credential may not be used from this address",
            ),
            Self::RequestTimeout => (
                "request_timeout",
                408,
                "Nội dung yêu cầu gửi quá chậm hoặc bị ngừng giữa chừng",
                "The request body arrived too slowly or stopped",
            ),
            Self::RequestHeadersTooLarge => (
                "request_headers_too_large",
                431,
                "Yêu cầu có quá nhiều trường tiêu đề hoặc tiêu đề quá lớn",
                "The request has too many headers, or they are too large",
            ),
            Self::OidcFailed => (
                "oidc_failed",
                401,
                "Đăng nhập qua nhà cung cấp định danh không thành công; vui lòng đăng nhập lại",
                "Signing in through the identity provider failed; please sign in again",
            ),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rule a single field broke (R-ING-4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationCode {
    /// A required field is missing.
    Required,
    /// The value has the wrong type.
    Type,
    /// The value does not have the expected shape.
    Format,
    /// The value is not one of the allowed values.
    Enum,
    /// The value is too small / too short.
    TooSmall,
    /// The value is too large / too long.
    TooLarge,
    /// A field that the schema does not know.
    UnknownField,
    /// The category is unknown.
    UnknownCategory,
    /// The schema version is unknown for the category.
    UnknownSchemaVersion,
    /// The classification is a state secret (R-SRC-2).
    StateSecret,
    /// Any other rule.
    Invalid,
}

impl ViolationCode {
    /// The snake_case code.
    pub fn as_str(self) -> &'static str {
        self.entry().0
    }

    /// The message in the given language.
    pub fn message(self, lang: Lang) -> &'static str {
        let (_, vi, en) = self.entry();
        match lang {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    fn entry(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Required => ("required", "Trường bắt buộc bị thiếu", "This field is required"),
            Self::Type => ("type", "Sai kiểu dữ liệu", "Wrong data type"),
            Self::Format => ("format", "Sai định dạng", "Wrong format"),
            Self::Enum => (
                "enum",
                "Giá trị không nằm trong danh sách cho phép",
                "Not one of the allowed values",
            ),
            Self::TooSmall => (
                "too_small",
                "Giá trị nhỏ hơn (ngắn hơn) mức cho phép",
                "Smaller or shorter than allowed",
            ),
            Self::TooLarge => (
                "too_large",
                "Giá trị lớn hơn (dài hơn) mức cho phép",
                "Larger or longer than allowed",
            ),
            Self::UnknownField => (
                "unknown_field",
                "Trường không có trong lược đồ",
                "This field is not in the schema",
            ),
            Self::UnknownCategory => (
                "unknown_category",
                "Loại dữ liệu không tồn tại",
                "Unknown data category",
            ),
            Self::UnknownSchemaVersion => (
                "unknown_schema_version",
                "Phiên bản lược đồ không tồn tại",
                "Unknown schema version for this category",
            ),
            Self::StateSecret => (
                "state_secret",
                "Không tiếp nhận dữ liệu thuộc bí mật nhà nước",
                "State-secret data is not accepted",
            ),
            Self::Invalid => ("invalid", "Giá trị không hợp lệ", "Invalid value"),
        }
    }
}

impl fmt::Display for ViolationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken rule at one place in the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldViolation {
    /// Index of the record in an array submission (`None` for a single record).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// JSON-Pointer-like path of the field, e.g. `/payload/value`.
    pub path: String,
    /// The rule broken.
    pub code: ViolationCode,
    /// Extra detail in English (expected values, limits); never echoes the submitted value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl FieldViolation {
    /// A violation at `path`.
    pub fn new(path: impl Into<String>, code: ViolationCode) -> Self {
        Self {
            item: None,
            path: path.into(),
            code,
            detail: None,
        }
    }

    /// Adds a detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the item index.
    pub fn at_item(mut self, item: usize) -> Self {
        self.item = Some(item);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_distinct_name_and_both_languages() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for c in ErrorCode::ALL {
            assert_ne!(c.title(Lang::Vi), c.title(Lang::En), "{c}");
            assert!((400..600).contains(&c.http_status()));
        }
    }

    #[test]
    fn serde_names_match_the_catalogue() {
        for c in ErrorCode::ALL {
            let json = serde_json::to_string(&c).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }
}
