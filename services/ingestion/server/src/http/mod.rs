//! Ingestion's HTTP API (R-ING-1 real-time, R-ING-3 JSON and XML, R-ING-4, R-ING-5):
//! `POST /api/v1/records`, `GET /api/v1/records/{id}`, `GET /api/v1/receipts/{id}`, and the
//! published schemas. Handlers are thin: decode, call one use case, encode.

pub mod dto;

use crate::AppIngestion;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use dto::{ReceiptOut, RecordOut, SchemaListOut};
use etx_domain::authz::Permission;
use etx_domain::{
    Category, ErrorCode, FieldViolation, IdempotencyKey, ReceiptId, RecordId, SchemaVersion, ViolationCode,
};
use etx_http_kit::openapi::{AuthErrors, BadParameter, TooLarge};
use etx_http_kit::{ApiError, Principal, Problem, ProblemViolation};
use etx_ingestion_core::xml::{self, XmlError};
use etx_ingestion_core::xsd;
use etx_ingestion_core::{IngestError, SourceCaller, SubmitOutcome};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

/// The body formats the endpoint speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Json,
    Xml,
}

fn body_format(req: &HttpRequest) -> Result<BodyFormat, ApiError> {
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match ct.as_str() {
        "application/json" => Ok(BodyFormat::Json),
        "application/xml" | "text/xml" => Ok(BodyFormat::Xml),
        s if s.starts_with("application/") && s.ends_with("+json") => Ok(BodyFormat::Json),
        s if s.starts_with("application/") && s.ends_with("+xml") => Ok(BodyFormat::Xml),
        _ => Err(ApiError::new(ErrorCode::UnsupportedMediaType)
            .with_detail("use Content-Type: application/json or application/xml")),
    }
}

fn wants_xml(req: &HttpRequest, format: BodyFormat) -> bool {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("json") {
        return false;
    }
    accept.contains("xml") || format == BodyFormat::Xml
}

/// The connected system submitting data: the policy's `SubmitData` (a system whose credential
/// holds `records:write`; never a person), checked again here behind the gateway.
pub(crate) fn source(p: &Principal) -> Result<SourceCaller, ApiError> {
    p.require(Permission::SubmitData)?;
    let system_id = p.system_id.ok_or_else(|| {
        ApiError::new(ErrorCode::Forbidden).with_detail("only a connected system may submit data")
    })?;
    Ok(SourceCaller {
        org_id: p.org_id,
        system_id,
        key_id: p.key_id,
    })
}

/// Maps a use-case error to the catalogue.
pub fn api_error(e: IngestError) -> ApiError {
    let code = e.code();
    match e {
        IngestError::Invalid(v) | IngestError::StateSecret(v) => ApiError::new(code).with_violations(v),
        IngestError::BatchSize { count, max } => {
            ApiError::new(code).with_detail(format!("{count} records submitted; allowed 1 to {max}"))
        }
        IngestError::Unknown(e) => ApiError::internal(e),
        IngestError::Unavailable(_) | IngestError::Conflict => ApiError::new(code),
    }
}

fn xml_error(e: XmlError) -> ApiError {
    match e {
        XmlError::DtdForbidden => ApiError::new(ErrorCode::XmlDtdForbidden),
        XmlError::TooLarge => ApiError::new(ErrorCode::PayloadTooLarge).with_detail(e.to_string()),
        XmlError::TooDeep => ApiError::new(ErrorCode::MalformedXml).with_detail(e.to_string()),
        XmlError::Malformed { .. } => ApiError::new(ErrorCode::MalformedXml).with_detail(e.to_string()),
    }
}

/// Submits one record or an array of up to 1,000 (R-ING-1). Answers `202` with a receipt only
/// after the records are durably committed, encrypted.
#[utoipa::path(post, path = "/api/v1/records", tag = "ingestion",
    request_body(content = dto::RecordsIn, description = "One record, or an array of up to 1,000, as application/json or application/xml (the XML wire format is the XSD of `/api/v1/schemas/{category}/{version}?format=xsd`)", content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, pattern = "^[!-~]{1,128}$",
        description = "Makes the submission idempotent (R-ING-5): 1 to 128 visible ASCII characters")),
    responses(
        (status = 202, description = "Durably received; the receipt is XML when the body was XML or `Accept` asks for XML",
            headers(("Location" = String, description = "The receipt: `/api/v1/receipts/{receipt_id}`"),
                    ("Idempotent-Replayed" = String, description = "`true` when this answers a replay of an earlier submission")),
            content((ReceiptOut = "application/json"), ("application/xml"))),
        (status = 400, description = "Malformed JSON or XML, a DTD in the XML, an unreadable `Idempotency-Key`, or not 1 to 1,000 records", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Idempotency key reused with different content", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Unsupported content type (use application/json or application/xml)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A record failed validation (violations name the item and the field), or is labelled a state secret", body = Problem, content_type = "application/problem+json"),
        AuthErrors, TooLarge,
    ),
    security(("api_key" = [])))]
pub async fn submit_records(
    app: web::Data<AppIngestion>,
    p: Principal,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let caller = source(&p)?;
    let format = body_format(&req)?;
    let header_key = match req.headers().get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| IdempotencyKey::parse(s).ok())
                .ok_or_else(|| {
                    ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
                        FieldViolation::new("header:Idempotency-Key", ViolationCode::Format)
                            .with_detail("1-128 visible ASCII characters"),
                    ])
                })?,
        ),
    };
    let (items, single) = match format {
        BodyFormat::Json => {
            let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
                ApiError::new(ErrorCode::MalformedJson).with_detail(format!(
                    "line {}, column {}",
                    e.line(),
                    e.column()
                ))
            })?;
            match v {
                serde_json::Value::Array(items) => (items, false),
                obj @ serde_json::Value::Object(_) => (vec![obj], true),
                _ => {
                    return Err(ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
                        FieldViolation::new("", ViolationCode::Type)
                            .with_detail("expected a record object or an array of records"),
                    ]));
                }
            }
        }
        BodyFormat::Xml => {
            let parsed = xml::parse_records(app.service.schemas(), &body).map_err(xml_error)?;
            (parsed.items, parsed.single)
        }
    };
    let outcome = app
        .service
        .submit(caller, items, single, header_key)
        .await
        .map_err(api_error)?;
    let replayed = matches!(outcome, SubmitOutcome::Replayed(_));
    let out = ReceiptOut::from_receipt(outcome.receipt(), replayed);
    let mut resp = HttpResponse::Accepted();
    resp.insert_header((header::LOCATION, format!("/api/v1/receipts/{}", out.receipt_id)));
    if replayed {
        resp.insert_header(("idempotent-replayed", HeaderValue::from_static("true")));
    }
    if wants_xml(&req, format) {
        return Ok(resp
            .content_type("application/xml; charset=utf-8")
            .body(out.to_xml()));
    }
    Ok(resp.json(out))
}

/// Reads back one of the caller's records, decrypted (R-DATA-3 provenance included).
/// Another organisation's record is `404`.
#[utoipa::path(get, path = "/api/v1/records/{id}", tag = "ingestion",
    params(("id" = Uuid, Path, description = "record id")),
    responses(
        (status = 200, body = RecordOut),
        (status = 404, description = "No such record in the caller's organisation", body = Problem, content_type = "application/problem+json"),
        AuthErrors, BadParameter,
    ),
    security(("api_key" = [])))]
pub async fn get_record(
    app: web::Data<AppIngestion>,
    p: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ReadSubmissions)?;
    // A record above the caller's clearance does not exist for them (issue 4 §3).
    let clearance = p.clearance();
    let rec = app
        .service
        .record(p.org_scope(), RecordId::from_uuid(path.into_inner()))
        .await
        .map_err(ApiError::internal)?
        .filter(|r| r.envelope.classification <= clearance)
        .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(RecordOut::from(rec)))
}

/// Reads back one of the caller's receipts. Another organisation's receipt is `404`.
#[utoipa::path(get, path = "/api/v1/receipts/{id}", tag = "ingestion",
    params(("id" = Uuid, Path, description = "receipt id")),
    responses(
        (status = 200, body = ReceiptOut),
        (status = 404, description = "No such receipt in the caller's organisation", body = Problem, content_type = "application/problem+json"),
        AuthErrors, BadParameter,
    ),
    security(("api_key" = [])))]
pub async fn get_receipt(
    app: web::Data<AppIngestion>,
    p: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ReadSubmissions)?;
    let r = app
        .service
        .receipt(p.org_scope(), ReceiptId::from_uuid(path.into_inner()))
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(ReceiptOut::from_receipt(&r, false)))
}

/// Lists the categories and their schema versions.
///
/// Each version comes with the paths of its JSON Schema and of the XSD of its XML wire format.
#[utoipa::path(get, path = "/api/v1/schemas", tag = "schemas",
    responses((status = 200, body = SchemaListOut), AuthErrors), security(("api_key" = [])))]
pub async fn list_schemas(app: web::Data<AppIngestion>, _p: Principal) -> HttpResponse {
    HttpResponse::Ok().json(SchemaListOut::from_registry(app.service.schemas()))
}

/// Query of `GET /api/v1/schemas/{category}/{version}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SchemaQuery {
    /// `json` (the JSON Schema) or `xsd` (the XSD of the XML wire format). Without it, the XSD
    /// when the `Accept` header prefers `application/xml` or `text/xml` to JSON, else the JSON Schema.
    #[param(value_type = Option<SchemaFormat>)]
    pub format: Option<String>,
}

/// The documents a schema version is published as, by `format` (OpenAPI document only; any
/// case is accepted).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SchemaFormat {
    /// The JSON Schema (draft 2020-12).
    Json,
    /// The XSD 1.0 of the XML wire format.
    Xsd,
}

/// The documents a schema version is published as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SchemaDocument {
    JsonSchema,
    Xsd,
}

fn schema_document(format: Option<&str>, req: &HttpRequest) -> Result<SchemaDocument, ApiError> {
    match format.map(str::to_ascii_lowercase).as_deref() {
        Some("json") => Ok(SchemaDocument::JsonSchema),
        Some("xsd") => Ok(SchemaDocument::Xsd),
        Some(_) => Err(ApiError::new(ErrorCode::InvalidParameter).with_violations(vec![
            FieldViolation::new("query:format", ViolationCode::Enum)
                .with_detail("expected one of: json, xsd"),
        ])),
        None => {
            let accept = req
                .headers()
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            Ok(if prefers_xml(accept) {
                SchemaDocument::Xsd
            } else {
                SchemaDocument::JsonSchema
            })
        }
    }
}

/// Whether an `Accept` header prefers XML (`application/xml`, `text/xml`) to JSON
/// (`application/schema+json`, `application/json`). Quality values as in RFC 9110: each type
/// takes the `q` of the most specific range matching it; a tie keeps JSON, the default.
fn prefers_xml(accept: &str) -> bool {
    let ranges: Vec<(String, f32)> = accept
        .split(',')
        .filter_map(|part| {
            let mut params = part.split(';');
            let range = params.next()?.trim().to_ascii_lowercase();
            let q = params
                .find_map(|p| {
                    let (k, v) = p.split_once('=')?;
                    k.trim()
                        .eq_ignore_ascii_case("q")
                        .then(|| v.trim().parse::<f32>().ok())?
                })
                .unwrap_or(1.0);
            (!range.is_empty()).then_some((range, q.clamp(0.0, 1.0)))
        })
        .collect();
    let quality = |media: &str| {
        let family = media.split_once('/').map_or(media, |(t, _)| t);
        let mut best: Option<(u8, f32)> = None;
        for (range, q) in &ranges {
            let specificity = match range.split_once('/') {
                _ if range == media => 2,
                Some((t, "*")) if t == family => 1,
                Some(("*", "*")) => 0,
                _ => continue,
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, *q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    let xml = quality("application/xml").max(quality("text/xml"));
    let json = quality("application/schema+json").max(quality("application/json"));
    xml > json
}

/// The JSON Schema of a category version, or the XSD of its XML wire format.
///
/// The XSD is generated from the JSON Schema; it is committed as
/// `contracts/schemas/{category}/v{n}.xsd`.
#[utoipa::path(get, path = "/api/v1/schemas/{category}/{version}", tag = "schemas",
    params(("category" = String, Path, description = "policy, statistics, workforce or enforcement"),
           ("version" = String, Path, description = "schema version, e.g. 1"),
           SchemaQuery),
    responses(
        (status = 200, description = "The JSON Schema (draft 2020-12); with `format=xsd`, or an `Accept` header preferring `application/xml` or `text/xml` to JSON, the XSD 1.0 of the XML wire format (namespace `urn:etxhub:ingestion:v1`), as `application/xml; charset=utf-8`",
            headers(("Vary" = String, description = "Accept: the document depends on it when `format` is not given")),
            content(("application/schema+json"), ("application/xml"))),
        (status = 400, description = "`format` is neither json nor xsd (violation path `query:format`)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such category or version", body = Problem, content_type = "application/problem+json"),
        AuthErrors),
    security(("api_key" = [])))]
pub async fn get_schema(
    app: web::Data<AppIngestion>,
    _p: Principal,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    query: web::Query<SchemaQuery>,
) -> Result<HttpResponse, ApiError> {
    let document = schema_document(query.format.as_deref(), &req)?;
    let (c, v) = path.into_inner();
    let category = Category::parse(&c).map_err(|_| ApiError::not_found())?;
    let version = SchemaVersion::parse(&v).map_err(|_| ApiError::not_found())?;
    let schemas = app.service.schemas();
    let mut resp = HttpResponse::Ok();
    resp.append_header((header::VARY, "Accept"));
    match document {
        SchemaDocument::JsonSchema => {
            let schema = schemas
                .json_schema(category, version)
                .ok_or_else(ApiError::not_found)?;
            Ok(resp.content_type("application/schema+json").json(schema))
        }
        SchemaDocument::Xsd => {
            let xsd = xsd::generate(schemas, category, version).ok_or_else(ApiError::not_found)?;
            Ok(resp.content_type("application/xml; charset=utf-8").body(xsd))
        }
    }
}

/// Mounts the routes under `/api/v1`. Each path is a resource, so another method on it is
/// `405` with `Allow`, not `404`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/records", "POST").route(web::post().to(submit_records)))
        .service(resource("/records/{id}", "GET").route(web::get().to(get_record)))
        .service(resource("/receipts/{id}", "GET").route(web::get().to(get_receipt)))
        .service(resource("/schemas", "GET").route(web::get().to(list_schemas)))
        .service(resource("/schemas/{category}/{version}", "GET").route(web::get().to(get_schema)))
        .service(resource("/exports/records", "GET").route(web::get().to(crate::export::export_records)));
    crate::batch::http::routes(cfg);
}

/// A resource whose other methods are answered `405` with `Allow: <allow>`.
pub(crate) fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(etx_http_kit::method_not_allowed(allow))
}

/// Ingestion's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(submit_records, get_record, get_receipt, list_schemas, get_schema),
    components(schemas(
        Problem,
        ProblemViolation,
        SchemaFormat,
        dto::RecordIn,
        dto::RecordsIn,
        ReceiptOut,
        RecordOut,
        dto::ProvenanceOut,
        SchemaListOut,
        dto::CategorySchemasOut,
        dto::SchemaDocumentsOut
    ))
)]
#[derive(Debug)]
pub struct IngestionDoc;

#[cfg(test)]
mod tests {
    use super::prefers_xml;

    #[test]
    fn accept_picks_the_xsd_only_when_xml_is_preferred_to_json() {
        for accept in [
            "application/xml",
            "text/xml",
            "text/*",
            "application/json;q=0.5, application/xml",
            "application/xml, */*;q=0.1",
            "TEXT/XML; charset=utf-8",
        ] {
            assert!(prefers_xml(accept), "{accept}");
        }
        for accept in [
            "",
            "*/*",
            "application/*",
            "application/json",
            "application/schema+json",
            "application/json, application/xml",
            "application/xml;q=0.5, application/json",
            "application/xml;q=0.5, */*",
            "application/xml;q=0",
            "text/html",
        ] {
            assert!(!prefers_xml(accept), "{accept}");
        }
    }
}
