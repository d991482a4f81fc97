//! SOAP faults: every error of the SOAP endpoint — decoding, use case, authentication at the
//! gateway, body limits — is a fault of the request's SOAP version carrying the same stable
//! code, translated title and field violations as the REST problem+json body (R-ING-4,
//! R-I18N), and the HTTP status SOAP prescribes (see the module docs of [`super`]).

use super::encode::{XmlOut, escape};
use super::{NAMESPACE, SoapVersion};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse};
use etx_domain::{ErrorCode, Lang};
use etx_http_kit::{ApiError, RequestId, RequestLang};

/// Which standard fault code a fault carries besides Client/Server (Sender/Receiver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FaultKind {
    /// `Client`/`Sender` or `Server`/`Receiver`, by the error code's class.
    Standard,
    /// The Envelope is not in the namespace of the request's SOAP version.
    VersionMismatch,
    /// Header blocks marked `mustUnderstand` that this endpoint does not understand
    /// (namespace, local name).
    MustUnderstand(Vec<(Option<String>, String)>),
}

/// An error answered as a SOAP fault.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    /// The standard fault code.
    pub kind: FaultKind,
    /// The catalogue error (code, detail, violations).
    pub error: ApiError,
}

impl From<ApiError> for Fault {
    fn from(error: ApiError) -> Self {
        Self {
            kind: FaultKind::Standard,
            error,
        }
    }
}

impl Fault {
    /// Whether the sender is to blame (4xx codes).
    fn is_client(&self) -> bool {
        self.error.code.http_status() < 500
    }

    /// The HTTP status of this fault in `version` (see the module docs of [`super`]).
    pub fn status(&self, version: SoapVersion) -> StatusCode {
        match self.error.code {
            // Refused before any SOAP processing (WS-I Basic Profile R1114, R1115).
            ErrorCode::MethodNotAllowed => return StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::UnsupportedMediaType => return StatusCode::UNSUPPORTED_MEDIA_TYPE,
            // A rate limit is HTTP's business, like the two above: clients and proxies back off
            // on 429 + Retry-After whatever the body (R-SEC-2).
            ErrorCode::RateLimited => return StatusCode::TOO_MANY_REQUESTS,
            _ => {}
        }
        match (version, &self.kind) {
            // SOAP 1.1 §6.2, WS-I Basic Profile R1126: every fault is a 500.
            (SoapVersion::V11, _) => StatusCode::INTERNAL_SERVER_ERROR,
            // SOAP 1.2 Part 2 §7.5.2.2 (table 20): env:Sender → 400, everything else → 500.
            (SoapVersion::V12, FaultKind::Standard) if self.is_client() => StatusCode::BAD_REQUEST,
            (SoapVersion::V12, _) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The fault envelope.
    pub fn body(&self, version: SoapVersion, lang: Lang, request_id: Option<&str>) -> String {
        let problem = self.error.problem(lang, None, request_id);
        let mut detail = XmlOut::default();
        detail
            .open_ns("Error", NAMESPACE)
            .leaf("code", &problem.code)
            .leaf("title", &problem.title)
            .opt_leaf("detail", problem.detail.as_deref())
            .opt_leaf("request_id", problem.request_id.as_deref());
        if !problem.violations.is_empty() {
            detail.open("violations");
            for v in &problem.violations {
                detail
                    .open("violation")
                    .opt_leaf("item", v.item.map(|i| i.to_string()))
                    .leaf("path", &v.path)
                    .leaf("code", &v.code)
                    .leaf("message", &v.message)
                    .opt_leaf("detail", v.detail.as_deref())
                    .close("violation");
            }
            detail.close("violations");
        }
        detail.close("Error");
        let detail = detail.finish();
        let title = escape(&problem.title);
        let tag = lang.tag();
        let env = version.envelope_namespace();
        match version {
            SoapVersion::V11 => {
                let code = match (&self.kind, self.is_client()) {
                    (FaultKind::VersionMismatch, _) => "VersionMismatch",
                    (FaultKind::MustUnderstand(_), _) => "MustUnderstand",
                    (FaultKind::Standard, true) => "Client",
                    (FaultKind::Standard, false) => "Server",
                };
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"{env}\"><soap:Body><soap:Fault><faultcode>soap:{code}</faultcode><faultstring xml:lang=\"{tag}\">{title}</faultstring><detail>{detail}</detail></soap:Fault></soap:Body></soap:Envelope>"
                )
            }
            SoapVersion::V12 => {
                let code = match (&self.kind, self.is_client()) {
                    (FaultKind::VersionMismatch, _) => "VersionMismatch",
                    (FaultKind::MustUnderstand(_), _) => "MustUnderstand",
                    (FaultKind::Standard, true) => "Sender",
                    (FaultKind::Standard, false) => "Receiver",
                };
                let mut header = String::new();
                if let FaultKind::MustUnderstand(blocks) = &self.kind {
                    header.push_str("<env:Header>");
                    for (ns, name) in blocks {
                        match ns {
                            Some(ns) => header.push_str(&format!(
                                "<env:NotUnderstood qname=\"nu:{}\" xmlns:nu=\"{}\"/>",
                                escape(name),
                                escape(ns)
                            )),
                            None => {
                                header.push_str(&format!("<env:NotUnderstood qname=\"{}\"/>", escape(name)))
                            }
                        }
                    }
                    header.push_str("</env:Header>");
                }
                format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<env:Envelope xmlns:env=\"{env}\" xmlns:etx=\"{NAMESPACE}\">{header}<env:Body><env:Fault><env:Code><env:Value>env:{code}</env:Value><env:Subcode><env:Value>etx:{}</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang=\"{tag}\">{title}</env:Text></env:Reason><env:Detail>{detail}</env:Detail></env:Fault></env:Body></env:Envelope>",
                    problem.code
                )
            }
        }
    }

    /// The whole HTTP answer.
    pub fn response(&self, version: SoapVersion, lang: Lang, request_id: Option<&str>) -> HttpResponse {
        let status = self.status(version);
        tracing::info!(
            code = self.error.code.as_str(),
            status = status.as_u16(),
            soap = version.label(),
            "SOAP fault"
        );
        let mut res = HttpResponse::build(status);
        res.content_type(version.content_type())
            .insert_header((header::CONTENT_LANGUAGE, lang.tag()));
        if let Some(secs) = self.error.retry_after {
            res.insert_header((header::RETRY_AFTER, secs));
        }
        if self.error.code == ErrorCode::MethodNotAllowed {
            res.insert_header((header::ALLOW, HeaderValue::from_static("POST")));
        }
        res.body(self.body(version, lang, request_id))
    }
}

/// Whether a response already is a SOAP message (a fault written by the endpoint, or one an
/// upstream ingestion process wrote).
fn is_soap(res: &HttpResponse<impl MessageBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(SoapVersion::from_content_type)
        .is_some()
}

/// Middleware for the `/soap/v1` scope (`actix_web::middleware::from_fn`), outside the
/// gateway's authentication: turns every error answer that is not already SOAP — refused
/// credentials, body limits, unknown paths, unreachable upstreams — into a fault of the
/// version the request's Content-Type names (SOAP 1.1 when it names none), in the request's
/// language. Runs inside [`etx_http_kit::standard`], which leaves XML error bodies alone.
pub async fn faults(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let version = SoapVersion::of_request(req.headers()).unwrap_or(SoapVersion::V11);
    let lang = req.extensions().get::<RequestLang>().map_or_else(
        || {
            req.headers()
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .map(Lang::from_accept_language)
                .unwrap_or_default()
        },
        |l| l.0,
    );
    let request_id = req.extensions().get::<RequestId>().map(|r| r.0.clone());
    match next.call(req).await {
        Ok(res) => {
            let status = res.status();
            if !(status.is_client_error() || status.is_server_error()) || is_soap(res.response()) {
                return Ok(res.map_into_boxed_body());
            }
            let err = res
                .response()
                .extensions()
                .get::<ApiError>()
                .cloned()
                .or_else(|| res.response().error().and_then(ApiError::from_actix))
                .unwrap_or_else(|| {
                    if status.is_server_error() {
                        tracing::error!(status = status.as_u16(), "error response on the SOAP endpoint");
                    }
                    ApiError::new(ApiError::code_for_status(status))
                });
            let (req, _) = res.into_parts();
            let answer = Fault::from(err).response(version, lang, request_id.as_deref());
            Ok(ServiceResponse::new(req, answer))
        }
        Err(e) => {
            let err = ApiError::from_actix(&e).unwrap_or_else(|| ApiError::internal(&e));
            let answer = Fault::from(err).response(version, lang, request_id.as_deref());
            Err(InternalError::from_response(e.to_string(), answer).into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etx_domain::{FieldViolation, ViolationCode};
    use etx_ingestion_core::xml;

    fn invalid() -> Fault {
        Fault::from(ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
            FieldViolation::new("/payload/value", ViolationCode::Type)
                .at_item(1)
                .with_detail("expected number"),
        ]))
    }

    #[test]
    fn statuses_follow_each_version() {
        let server = Fault::from(ApiError::new(ErrorCode::ServiceUnavailable));
        assert_eq!(invalid().status(SoapVersion::V11), 500);
        assert_eq!(server.status(SoapVersion::V11), 500);
        assert_eq!(invalid().status(SoapVersion::V12), 400);
        assert_eq!(server.status(SoapVersion::V12), 500);
        let limited = Fault::from(ApiError::new(ErrorCode::RateLimited));
        assert_eq!(limited.status(SoapVersion::V11), 429);
        assert_eq!(limited.status(SoapVersion::V12), 429);
        let mismatch = Fault {
            kind: FaultKind::VersionMismatch,
            error: ApiError::new(ErrorCode::InvalidParameter),
        };
        assert_eq!(mismatch.status(SoapVersion::V12), 500);
        let media = Fault::from(ApiError::new(ErrorCode::UnsupportedMediaType));
        assert_eq!(media.status(SoapVersion::V11), 415);
        assert_eq!(media.status(SoapVersion::V12), 415);
    }

    #[test]
    fn a_soap11_fault_carries_code_title_and_violations() {
        let body = invalid().body(SoapVersion::V11, Lang::En, Some("r-1"));
        let root = xml::parse_document(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let fault = &root.children[0].children[0];
        assert!(fault.is(SoapVersion::V11.envelope_namespace(), "Fault"));
        assert_eq!(
            fault.child("faultcode").map(|c| c.text.as_str()),
            Some("soap:Client")
        );
        assert_eq!(
            fault.child("faultstring").map(|c| c.text.as_str()),
            Some("The data is not valid")
        );
        let error = &fault.child("detail").cloned().unwrap_or_default().children[0];
        assert!(error.is(NAMESPACE, "Error"));
        assert_eq!(
            error.child("code").map(|c| c.text.as_str()),
            Some("validation_failed")
        );
        assert_eq!(error.child("request_id").map(|c| c.text.as_str()), Some("r-1"));
        let v = &error.child("violations").cloned().unwrap_or_default().children[0];
        assert_eq!(v.child("item").map(|c| c.text.as_str()), Some("1"));
        assert_eq!(v.child("path").map(|c| c.text.as_str()), Some("/payload/value"));
        assert_eq!(
            v.child("message").map(|c| c.text.as_str()),
            Some("Wrong data type")
        );
    }

    #[test]
    fn a_soap12_fault_has_code_subcode_reason_and_detail() {
        let body = invalid().body(SoapVersion::V12, Lang::Vi, None);
        let root = xml::parse_document(body.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let env = SoapVersion::V12.envelope_namespace();
        let fault = &root.children[0].children[0];
        assert!(fault.is(env, "Fault"));
        let code = fault.child("Code").cloned().unwrap_or_default();
        assert_eq!(code.child("Value").map(|c| c.text.as_str()), Some("env:Sender"));
        let sub = code
            .child("Subcode")
            .and_then(|s| s.child("Value"))
            .map(|v| v.text.clone());
        assert_eq!(sub.as_deref(), Some("etx:validation_failed"));
        let text = fault
            .child("Reason")
            .and_then(|r| r.child("Text"))
            .cloned()
            .unwrap_or_default();
        assert_eq!(text.text, "Dữ liệu không hợp lệ");
        assert_eq!(
            text.attribute(Some("http://www.w3.org/XML/1998/namespace"), "lang"),
            Some("vi")
        );
        assert!(
            fault
                .child("Detail")
                .is_some_and(|d| d.children[0].is(NAMESPACE, "Error"))
        );
    }

    #[test]
    fn must_understand_lists_the_blocks() {
        let f = Fault {
            kind: FaultKind::MustUnderstand(vec![(Some("urn:x".into()), "Security".into())]),
            error: ApiError::new(ErrorCode::InvalidParameter),
        };
        let body = f.body(SoapVersion::V12, Lang::En, None);
        assert!(body.contains("<env:NotUnderstood qname=\"nu:Security\" xmlns:nu=\"urn:x\"/>"));
        assert!(body.contains("env:MustUnderstand"));
        let body = f.body(SoapVersion::V11, Lang::En, None);
        assert!(body.contains("<faultcode>soap:MustUnderstand</faultcode>"));
    }

    #[test]
    fn internal_faults_never_carry_detail() {
        let f = Fault::from(ApiError::internal("db password=hunter2").with_detail("leak"));
        let body = f.body(SoapVersion::V11, Lang::En, None);
        assert!(body.contains("soap:Server"));
        assert!(!body.contains("leak") && !body.contains("hunter2"));
    }
}
