//! Ingestion over SOAP 1.1 and 1.2 (R-ING-3): `POST /soap/v1/ingestion`, described by the WSDL
//! at `GET /soap/v1/ingestion?wsdl` (schema inlined; committed as
//! `contracts/wsdl/ingestion.wsdl`). Document/literal wrapped operations in the namespace
//! [`NAMESPACE`] call the very use cases REST calls — decode the envelope, call one use case,
//! encode the answer; no business logic lives here:
//!
//! | operation | use case | answer |
//! |---|---|---|
//! | `SubmitRecords` (`idempotency_key`?, `records`) | `IngestionService::submit` | `receipt` |
//! | `GetReceipt` (`receipt_id`) | `IngestionService::receipt` | `receipt` |
//! | `SubmitBatch` (`format`, `file`, `defaults`?, `control_totals`?, `dry_run`?) | `Batches::upload` | `batch`, `replayed` |
//! | `GetBatchStatus` (`batch_id`) | `Batches::status` | `batch` |
//!
//! The records inside `SubmitRecords/records` are the REST XML wire format, converted by the
//! same schema-directed reader ([`etx_ingestion_core::xml::records_in`]); the whole envelope is
//! read by the hardened reader (no DTD, no entity expansion; R-SEC-3).
//!
//! Versions: `Content-Type: text/xml` is SOAP 1.1 (action in the `SOAPAction` header),
//! `application/soap+xml` is SOAP 1.2 (action as its `action` parameter). An action, when
//! given and not empty, must be the operation's (`urn:etxhub:soap:ingestion:v1:<Operation>`);
//! the operation itself is the Body's element.
//!
//! MTOM/XOP ([`mtom`]): `Content-Type: multipart/related; type="application/xop+xml";
//! start-info="text/xml"` (or `"application/soap+xml"`) carries the envelope as its root part
//! and the `SubmitBatch` file as a binary MIME part that `<xop:Include href="cid:…"/>` in
//! `file` names; the SOAP 1.2 action may also be a parameter of `start-info` or of the root
//! part's `type`.
//!
//! Authentication is the REST one — the API key in `X-API-Key` or `Authorization: Bearer`,
//! checked by the gateway — and the WSDL is public (no key). Every error is a fault of the
//! request's version ([`faults`] also re-renders the gateway's refusals) whose detail holds
//! the problem+json code, translated title and violations. HTTP status of a fault:
//!
//! | fault | SOAP 1.1 | SOAP 1.2 |
//! |---|---|---|
//! | Content-Type neither `text/xml`, `application/soap+xml` nor an XOP `multipart/related` | 415 | 415 |
//! | method other than POST (or GET `?wsdl`) | 405 | 405 |
//! | sender's error (`soap:Client` / `env:Sender`), including refused credentials | 500 | 400 |
//! | server's error (`soap:Server` / `env:Receiver`) | 500 | 500 |
//! | `VersionMismatch`, `MustUnderstand` | 500 | 500 |
//!
//! SOAP 1.1 §6.2 (and WS-I Basic Profile R1126) require 500 for every fault; SOAP 1.2 Part 2
//! §7.5.2.2 maps `env:Sender` to 400 and the rest to 500; WS-I Basic Profile R1114/R1115 ask
//! for 405/415 when the request is not a SOAP POST at all.

mod batch;
mod encode;
mod envelope;
mod fault;
mod mtom;
pub mod wsdl;

pub use envelope::SoapVersion;
pub use fault::faults;

use crate::AppIngestion;
use crate::http::dto::ReceiptOut;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use envelope::{Call, check, leaf};
use etx_domain::{ErrorCode, FieldViolation, IdempotencyKey, ReceiptId, ViolationCode};
use etx_http_kit::{ApiError, Principal, RequestId, RequestLang};
use etx_ingestion_core::SubmitOutcome;
use etx_ingestion_core::xml;
use fault::Fault;
use uuid::Uuid;

/// The namespace of the operations and their messages.
pub const NAMESPACE: &str = "urn:etxhub:soap:ingestion:v1";

/// Where the endpoint is mounted.
pub const PATH: &str = "/soap/v1/ingestion";

/// The operations of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Real-time records.
    SubmitRecords,
    /// A receipt by id.
    GetReceipt,
    /// A batch file, inline or as an MTOM/XOP attachment.
    SubmitBatch,
    /// A batch's state by id.
    GetBatchStatus,
}

impl Operation {
    /// Every operation, in WSDL order.
    pub const ALL: [Operation; 4] = [
        Self::SubmitRecords,
        Self::GetReceipt,
        Self::SubmitBatch,
        Self::GetBatchStatus,
    ];

    /// The operation's (and its request element's) name.
    pub fn name(self) -> &'static str {
        match self {
            Self::SubmitRecords => "SubmitRecords",
            Self::GetReceipt => "GetReceipt",
            Self::SubmitBatch => "SubmitBatch",
            Self::GetBatchStatus => "GetBatchStatus",
        }
    }

    /// The SOAP action: `urn:etxhub:soap:ingestion:v1:<name>`.
    pub fn action(self) -> &'static str {
        match self {
            Self::SubmitRecords => "urn:etxhub:soap:ingestion:v1:SubmitRecords",
            Self::GetReceipt => "urn:etxhub:soap:ingestion:v1:GetReceipt",
            Self::SubmitBatch => "urn:etxhub:soap:ingestion:v1:SubmitBatch",
            Self::GetBatchStatus => "urn:etxhub:soap:ingestion:v1:GetBatchStatus",
        }
    }
}

/// Mounts `POST /ingestion` under `/soap/v1` (wrap the scope in [`faults`]); other methods
/// are `405` (mount [`wsdl`] for GET before the scope).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/ingestion").route(web::post().to(endpoint)));
}

/// `POST /soap/v1/ingestion`: one SOAP request, one answer (200) or fault.
pub async fn endpoint(
    app: web::Data<AppIngestion>,
    p: Principal,
    req: HttpRequest,
    body: web::Bytes,
    lang: RequestLang,
    rid: RequestId,
) -> HttpResponse {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (version, package) = if mtom::is_package(content_type) {
        match mtom::unpack(content_type, &body) {
            Ok(package) => (package.version, Some(package)),
            Err(f) => {
                let version = SoapVersion::of_request(req.headers()).unwrap_or(SoapVersion::V11);
                return f.response(version, lang.0, Some(&rid.0));
            }
        }
    } else {
        let Some(version) = SoapVersion::of_request(req.headers()) else {
            let f = Fault::from(ApiError::new(ErrorCode::UnsupportedMediaType).with_detail(
                "use Content-Type: text/xml (SOAP 1.1), application/soap+xml (SOAP 1.2) or multipart/related; type=\"application/xop+xml\" (MTOM)",
            ));
            return f.response(SoapVersion::V11, lang.0, Some(&rid.0));
        };
        (version, None)
    };
    let action =
        envelope::action(version, req.headers()).or_else(|| package.as_ref().and_then(|p| p.action.clone()));
    let answer = async {
        let envelope = package.as_ref().map_or(&body, |p| &p.root);
        let mut call = envelope::read(version, action.as_deref(), envelope)?;
        let attachment = mtom::attach(&mut call, package.as_ref())?;
        dispatch(&app, &p, call, attachment).await
    }
    .await;
    match answer {
        Ok(body) => HttpResponse::Ok()
            .content_type(version.content_type())
            .body(encode::envelope(version, &body)),
        Err(f) => f.response(version, lang.0, Some(&rid.0)),
    }
}

async fn dispatch(
    app: &AppIngestion,
    p: &Principal,
    call: Call,
    attachment: Option<bytes::Bytes>,
) -> Result<String, Fault> {
    match call.op {
        Operation::SubmitRecords => submit_records(app, p, &call.input).await,
        Operation::GetReceipt => get_receipt(app, p, &call.input).await,
        Operation::SubmitBatch => batch::submit_batch(app, p, &call.input, attachment).await,
        Operation::GetBatchStatus => batch::get_batch_status(app, p, &call.input).await,
    }
}

fn invalid(violations: Vec<FieldViolation>) -> Fault {
    Fault::from(ApiError::new(ErrorCode::ValidationFailed).with_violations(violations))
}

/// A required UUID leaf (`receipt_id`, `batch_id`) of an operation element.
pub(crate) fn uuid_of(input: &xml::XmlNode, ty: &str, name: &str) -> Result<Uuid, Fault> {
    let mut v = check(input, ty, "");
    let path = format!("/{name}");
    let id = input
        .child(name)
        .and_then(|n| leaf(n, &path, &mut v))
        .and_then(|t| match Uuid::parse_str(t) {
            Ok(id) => Some(id),
            Err(_) => {
                v.push(FieldViolation::new(&path, ViolationCode::Format).with_detail("expected a UUID"));
                None
            }
        });
    match id {
        Some(id) if v.is_empty() => Ok(id),
        _ => Err(invalid(v)),
    }
}

async fn submit_records(app: &AppIngestion, p: &Principal, input: &xml::XmlNode) -> Result<String, Fault> {
    let caller = crate::http::source(p)?;
    let mut v = check(input, "SubmitRecords", "");
    let header_key = input
        .child("idempotency_key")
        .and_then(|k| leaf(k, "/idempotency_key", &mut v))
        .and_then(|k| match IdempotencyKey::parse(k) {
            Ok(k) => Some(k),
            Err(_) => {
                v.push(
                    FieldViolation::new("/idempotency_key", ViolationCode::Format)
                        .with_detail("1-128 visible ASCII characters"),
                );
                None
            }
        });
    if !v.is_empty() {
        return Err(invalid(v));
    }
    let records = input
        .child("records")
        .ok_or_else(|| invalid(vec![FieldViolation::new("/records", ViolationCode::Required)]))?;
    let parsed =
        xml::records_in(app.service.schemas(), records).map_err(|e| Fault::from(envelope::xml_error(e)))?;
    let outcome = app
        .service
        .submit(caller, parsed.items, parsed.single, header_key)
        .await
        .map_err(|e| Fault::from(crate::http::api_error(e)))?;
    let replayed = matches!(outcome, SubmitOutcome::Replayed(_));
    let out = ReceiptOut::from_receipt(outcome.receipt(), replayed);
    Ok(encode::response("SubmitRecords", |x| {
        encode::receipt(x, "receipt", &out);
    }))
}

async fn get_receipt(app: &AppIngestion, p: &Principal, input: &xml::XmlNode) -> Result<String, Fault> {
    let id = uuid_of(input, "GetReceipt", "receipt_id")?;
    let r = app
        .service
        .receipt(p.org_scope(), ReceiptId::from_uuid(id))
        .await
        .map_err(|e| Fault::from(ApiError::internal(e)))?
        .ok_or_else(|| Fault::from(ApiError::not_found()))?;
    let out = ReceiptOut::from_receipt(&r, false);
    Ok(encode::response("GetReceipt", |x| {
        encode::receipt(x, "receipt", &out)
    }))
}

/// `GET /soap/v1/ingestion?wsdl`: the WSDL, public (no key), with this server's address as
/// the request reached it. Any other GET is a `405` fault.
pub async fn wsdl(req: HttpRequest, lang: RequestLang, rid: RequestId) -> HttpResponse {
    let asks_wsdl = req.query_string().split('&').any(|p| {
        p.split('=')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("wsdl"))
    });
    if !asks_wsdl {
        let f = Fault::from(
            ApiError::new(ErrorCode::MethodNotAllowed)
                .with_detail("send SOAP requests with POST; GET serves only the WSDL (?wsdl)"),
        );
        return f.response(SoapVersion::V11, lang.0, Some(&rid.0));
    }
    HttpResponse::Ok()
        .content_type("text/xml; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(wsdl::document(&address(&req)))
}

/// `scheme://host/soap/v1/ingestion` as the client reached this server (`Host`, or the
/// `Forwarded`/`X-Forwarded-*` headers of a proxy). The host is checked so that nothing odd
/// is written into the document; `localhost` stands in for a strange one.
fn address(req: &HttpRequest) -> String {
    let info = req.connection_info();
    let scheme = match info.scheme() {
        "http" => "http",
        _ => "https",
    };
    let host = info.host();
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    let host = if plain { host } else { "localhost" };
    format!("{scheme}://{host}{PATH}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_the_namespace_and_the_name() {
        for op in Operation::ALL {
            assert_eq!(op.action(), format!("{NAMESPACE}:{}", op.name()));
        }
    }

    #[test]
    fn the_wsdl_address_follows_the_request_and_refuses_odd_hosts() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::HOST, "hub.example.gov.vn:8443"))
            .to_http_request();
        assert_eq!(address(&req), "http://hub.example.gov.vn:8443/soap/v1/ingestion");
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::HOST, "a\"><x"))
            .to_http_request();
        assert_eq!(address(&req), "http://localhost/soap/v1/ingestion");
    }
}
