//! Batch endpoints (issue 3 §1–§5): `POST /api/v1/batches` (raw body or multipart),
//! `GET /api/v1/batches/{id}`, `GET /api/v1/batches/{id}/errors` (JSON or CSV, streamed).
//! Thin: decode, call [`Batches`], encode.

use super::{BatchError, BatchUpload, Batches, UploadOutcome, api_error};
use crate::AppIngestion;
use actix_multipart::Multipart;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use etx_domain::Lang;
use etx_domain::authz::{OrgScope, Permission};
use etx_http_kit::openapi::{AuthErrors, BadParameter, TooLarge};
use etx_http_kit::{ApiError, Principal, Problem, RequestLang};
use etx_ingestion_core::SourceCaller;
use etx_ingestion_core::batch::{BatchDefaults, BatchFormat, BatchView, ControlTotals, RejectReason};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Upload parameters in the query string (also the fields of a multipart `manifest`).
#[derive(Debug, Default, Deserialize, IntoParams, ToSchema)]
#[into_params(parameter_in = Query)]
pub struct BatchParams {
    /// `json`, `ndjson`, `csv` or `xml` (any case; `jsonl` = `ndjson`); by default taken from
    /// the body's `Content-Type`.
    #[param(value_type = Option<BatchFormatName>)]
    #[schema(value_type = Option<BatchFormatName>)]
    pub format: Option<String>,
    /// Default `category` of rows that carry none.
    pub category: Option<String>,
    /// Default `schema_version`.
    pub schema_version: Option<String>,
    /// Default `period` (`2026-10`, `2026-Q3`…).
    pub period: Option<String>,
    /// Default `classification`.
    pub classification: Option<String>,
    /// Default `priority`.
    pub priority: Option<String>,
    /// Default `form` (`raw` or `masked`).
    pub form: Option<String>,
    /// Validate everything, store nothing.
    pub dry_run: Option<bool>,
    /// Control total: rows in the file (manifest only; as a header `X-Batch-Row-Count`).
    #[param(ignore)]
    pub row_count: Option<u64>,
    /// Control total: SHA-256 of the file (manifest only; as a header `X-Batch-SHA256`).
    #[param(ignore)]
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub sha256: Option<String>,
}

/// The batch file formats (OpenAPI document only).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum BatchFormatName {
    /// A JSON array of records.
    Json,
    /// One JSON record per line.
    Ndjson,
    /// Same as `ndjson`.
    Jsonl,
    /// CSV with a header row.
    Csv,
    /// XML (`urn:etxhub:ingestion:v1`).
    Xml,
}

/// A batch file sent as the raw body (OpenAPI document only): any bytes, at least one.
#[derive(Debug)]
pub struct BatchFile;

impl utoipa::PartialSchema for BatchFile {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .description(Some(
                "The file: a JSON array, NDJSON, CSV with a header row, or XML; never empty",
            ))
            .into()
    }
}

impl ToSchema for BatchFile {}

/// A multipart batch upload (OpenAPI document only): an optional `manifest` part, then the
/// `file` part. Any other part is refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchUploadForm {
    /// The upload parameters as a JSON object (the query parameters, plus `row_count` and
    /// `sha256`); they take precedence over the query's.
    #[serde(default)]
    pub manifest: BatchParams,
    /// The file; its part's `Content-Type` gives the format unless the manifest or the query
    /// says it.
    #[schema(value_type = String, format = Binary, min_length = 1)]
    pub file: String,
}

/// Row counts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CountsOut {
    /// Rows in the file.
    pub total: u64,
    /// Rows stored by this batch (dry run: rows that would be).
    pub accepted: u64,
    /// Rows refused (see `/errors`).
    pub rejected: u64,
    /// Rows already stored before: not stored again.
    pub duplicate: u64,
}

/// Declared control totals.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeclaredOut {
    /// Declared row count.
    pub row_count: Option<u64>,
    /// Declared SHA-256.
    pub sha256: Option<String>,
}

/// A batch as its source sees it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchOut {
    /// Batch id.
    pub batch_id: Uuid,
    /// `received`, `validating`, `storing`, `completed`, `rejected` or `failed`.
    pub state: String,
    /// File format.
    pub format: String,
    /// Validation only.
    pub dry_run: bool,
    /// Row counts so far.
    pub counts: CountsOut,
    /// File size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Declared control totals.
    pub declared: DeclaredOut,
    /// Why the batch was rejected as a whole (`row_count_mismatch`, `unreadable`).
    #[schema(value_type = Option<Object>)]
    pub reject_reason: Option<serde_json::Value>,
    /// The receipt of the stored rows (none for a dry run).
    pub receipt_id: Option<Uuid>,
    /// When the file was durably stored.
    pub received_at: DateTime<Utc>,
    /// When processing started.
    pub started_at: Option<DateTime<Utc>>,
    /// When processing ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Seconds from receipt to the end of processing, when finished.
    pub duration_seconds: Option<f64>,
    /// True when this answers a re-upload of the same file.
    pub replayed: bool,
}

impl BatchOut {
    /// From the domain view.
    pub fn from_view(v: &BatchView, replayed: bool) -> Self {
        Self {
            batch_id: v.id,
            state: v.state.as_str().into(),
            format: v.format.as_str().into(),
            dry_run: v.dry_run,
            counts: CountsOut {
                total: v.counts.total,
                accepted: v.counts.accepted,
                rejected: v.counts.rejected,
                duplicate: v.counts.duplicate,
            },
            size_bytes: v.size_bytes,
            sha256: v.sha256.clone(),
            declared: DeclaredOut {
                row_count: v.declared.row_count,
                sha256: v.declared.sha256.clone(),
            },
            reject_reason: v
                .reject_reason
                .as_ref()
                .and_then(|r: &RejectReason| serde_json::to_value(r).ok()),
            receipt_id: v.receipt_id,
            received_at: v.received_at,
            started_at: v.started_at,
            finished_at: v.finished_at,
            duration_seconds: v
                .finished_at
                .map(|f| (f - v.received_at).num_milliseconds() as f64 / 1000.0),
            replayed,
        }
    }
}

fn header_u64(req: &HttpRequest, name: &str) -> Result<Option<u64>, BatchError> {
    match req.headers().get(name.to_ascii_lowercase()) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| BatchError::param(format!("header:{name}"), "a non-negative integer")),
    }
}

fn header_sha(req: &HttpRequest) -> Result<Option<String>, BatchError> {
    match req.headers().get("x-batch-sha256") {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_ascii_lowercase()))
            .map_err(|_| BatchError::param("header:X-Batch-SHA256", "64 hexadecimal characters")),
    }
}

fn format_of(
    explicit: Option<&str>,
    content_type: Option<&str>,
    path: &str,
) -> Result<BatchFormat, BatchError> {
    if let Some(f) = explicit {
        return BatchFormat::parse(f).ok_or_else(|| BatchError::param(path, "one of json, ndjson, csv, xml"));
    }
    content_type.and_then(BatchFormat::from_media_type).ok_or_else(|| {
        BatchError::param(
            path,
            "say the format with ?format= or a Content-Type of application/json, application/x-ndjson, text/csv or application/xml",
        )
    })
}

impl BatchParams {
    fn defaults(&self) -> BatchDefaults {
        BatchDefaults {
            category: self.category.clone(),
            schema_version: self.schema_version.clone(),
            period: self.period.clone(),
            classification: self.classification.clone(),
            priority: self.priority.clone(),
            form: self.form.clone(),
        }
    }
}

/// Uploads a batch file (R-ING-1 batch): JSON array, NDJSON, CSV or XML, as the raw body or as
/// the `file` part of a `multipart/form-data` body (with an optional JSON `manifest` part
/// before it). Answers `202` with the batch id once the file is durably stored; processing
/// follows asynchronously. The same file with the same parameters again answers `200` with the
/// original batch.
#[utoipa::path(post, path = "/api/v1/batches", tag = "batches",
    params(BatchParams,
        ("X-Batch-Row-Count" = Option<u64>, Header, nullable = false, minimum = 0, description = "Control total: rows in the file (R-REC); a batch whose file has another row count is rejected"),
        ("X-Batch-SHA256" = Option<String>, Header, nullable = false, pattern = "^[0-9a-fA-F]{64}$", description = "Control total: SHA-256 of the file, hex (R-REC)")),
    request_body(description = "The file as the raw body (its `Content-Type` gives the format unless `format` does), or multipart/form-data with parts `manifest` (JSON, optional, first) and `file`",
        content(
            (BatchFile = "text/csv"),
            (BatchFile = "application/json"),
            (BatchFile = "application/x-ndjson"),
            (BatchFile = "application/xml"),
            (BatchUploadForm = "multipart/form-data",
                encoding(("manifest" = (content_type = "application/json")), ("file" = (content_type = "text/csv")))),
        )),
    responses(
        (status = 202, description = "File durably stored; processing follows",
            headers(("Location" = String, description = "The batch: `/api/v1/batches/{batch_id}`")),
            body = BatchOut),
        (status = 200, description = "The same upload was made before: the original batch",
            headers(("Location" = String, description = "The batch: `/api/v1/batches/{batch_id}`"),
                    ("Idempotent-Replayed" = String, description = "`true`")),
            body = BatchOut),
        (status = 400, description = "A parameter (query, header or manifest part) is not valid, the format cannot be told, or the body was cut short", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The file is empty, or its SHA-256 differs from the declared one: nothing kept", body = Problem, content_type = "application/problem+json"),
        AuthErrors, TooLarge,
    ),
    security(("api_key" = [])))]
pub async fn upload_batch(
    app: web::Data<AppIngestion>,
    p: Principal,
    req: HttpRequest,
    query: web::Query<BatchParams>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let caller = crate::http::source(&p)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let is_multipart = content_type.as_deref().is_some_and(|c| {
        c.trim_start()
            .to_ascii_lowercase()
            .starts_with("multipart/form-data")
    });
    let row_count = header_u64(&req, "X-Batch-Row-Count").map_err(api_error)?;
    let sha256 = header_sha(&req).map_err(api_error)?;
    let outcome = if is_multipart {
        upload_multipart(
            &app.batches,
            caller,
            query.into_inner(),
            row_count,
            sha256,
            &req,
            payload,
        )
        .await
    } else {
        let params = query.into_inner();
        let format = format_of(params.format.as_deref(), content_type.as_deref(), "query:format")
            .map_err(api_error)?;
        let upload = BatchUpload {
            format,
            defaults: params.defaults(),
            declared: ControlTotals { row_count, sha256 },
            dry_run: params.dry_run.unwrap_or(false),
        };
        app.batches.upload(caller, upload, payload).await
    }
    .map_err(api_error)?;
    Ok(respond(&outcome))
}

fn respond(outcome: &UploadOutcome) -> HttpResponse {
    let replayed = matches!(outcome, UploadOutcome::Replayed(_));
    let out = BatchOut::from_view(outcome.view(), replayed);
    let mut resp = if replayed {
        HttpResponse::Ok()
    } else {
        HttpResponse::Accepted()
    };
    resp.insert_header((header::LOCATION, format!("/api/v1/batches/{}", out.batch_id)));
    if replayed {
        resp.insert_header(("idempotent-replayed", HeaderValue::from_static("true")));
    }
    resp.json(out)
}

/// Most bytes of a multipart `manifest` part.
const MAX_MANIFEST: usize = 16 * 1024;

async fn upload_multipart(
    batches: &Batches,
    caller: SourceCaller,
    query: BatchParams,
    row_count: Option<u64>,
    sha256: Option<String>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<UploadOutcome, BatchError> {
    let mut parts = Multipart::new(req.headers(), payload);
    let mut manifest: Option<BatchParams> = None;
    while let Some(field) = parts.next().await {
        let mut field = field.map_err(|e| BatchError::Body(e.to_string()))?;
        let name = field.name().unwrap_or("").to_owned();
        match name.as_str() {
            "manifest" => {
                let mut buf = Vec::new();
                while let Some(piece) = field.next().await {
                    let piece = piece.map_err(|e| BatchError::Body(e.to_string()))?;
                    if buf.len() + piece.len() > MAX_MANIFEST {
                        return Err(BatchError::param("multipart:manifest", "larger than 16 KiB"));
                    }
                    buf.extend_from_slice(&piece);
                }
                manifest = Some(parse_manifest(&buf)?);
            }
            "file" => {
                let m = manifest.take().unwrap_or_default();
                let pick = |a: &Option<String>, b: &Option<String>| a.clone().or_else(|| b.clone());
                let params = BatchParams {
                    format: pick(&m.format, &query.format),
                    category: pick(&m.category, &query.category),
                    schema_version: pick(&m.schema_version, &query.schema_version),
                    period: pick(&m.period, &query.period),
                    classification: pick(&m.classification, &query.classification),
                    priority: pick(&m.priority, &query.priority),
                    form: pick(&m.form, &query.form),
                    dry_run: m.dry_run.or(query.dry_run),
                    row_count: m.row_count.or(row_count),
                    sha256: m.sha256.map(|s| s.to_ascii_lowercase()).or(sha256.clone()),
                };
                let ct = field.content_type().map(|m| m.essence_str().to_owned());
                let format = format_of(
                    params.format.as_deref(),
                    ct.as_deref(),
                    "multipart:manifest/format",
                )?;
                let upload = BatchUpload {
                    format,
                    defaults: params.defaults(),
                    declared: ControlTotals {
                        row_count: params.row_count,
                        sha256: params.sha256.clone(),
                    },
                    dry_run: params.dry_run.unwrap_or(false),
                };
                let outcome = batches.upload(caller, upload, &mut field).await?;
                // The next part is only served once this one is dropped.
                drop(field);
                // Anything after the file is ignored, but read so the connection stays usable.
                while let Some(rest) = parts.next().await {
                    if let Ok(mut f) = rest {
                        while f.next().await.is_some() {}
                    }
                }
                return Ok(outcome);
            }
            _ => {
                return Err(BatchError::param(
                    part_path(&name),
                    "unknown part; use `manifest` (optional, first) and `file`",
                ));
            }
        }
    }
    Err(BatchError::param("multipart:file", "the `file` part is missing"))
}

/// Reads a `manifest` part. The error never quotes the part: serde's messages can.
fn parse_manifest(bytes: &[u8]) -> Result<BatchParams, BatchError> {
    serde_json::from_slice(bytes).map_err(|e| {
        BatchError::param(
            "multipart:manifest",
            format!(
                "not a JSON object of upload parameters (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })
}

/// The violation path of a multipart part: its name only when it is a plain identifier, since
/// the name is the client's text (R-SEC-3).
fn part_path(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if plain {
        format!("multipart:{name}")
    } else {
        "multipart".to_owned()
    }
}

/// A batch's state, counts and timing.
#[utoipa::path(get, path = "/api/v1/batches/{id}", tag = "batches",
    params(("id" = Uuid, Path, description = "batch id")),
    responses(
        (status = 200, body = BatchOut),
        (status = 404, description = "No such batch in the caller's organisation", body = Problem, content_type = "application/problem+json"),
        AuthErrors, BadParameter,
    ),
    security(("api_key" = [])))]
pub async fn get_batch(
    app: web::Data<AppIngestion>,
    p: Principal,
    path: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ReadSubmissions)?;
    let v = app
        .batches
        .status(p.org_scope(), path.into_inner())
        .await
        .map_err(api_error)?
        .ok_or_else(ApiError::not_found)?;
    Ok(HttpResponse::Ok().json(BatchOut::from_view(&v, false)))
}

/// Error-list query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ErrorsQuery {
    /// `json` (default) or `csv`, any case.
    #[param(value_type = Option<ErrorListFormat>)]
    pub format: Option<String>,
}

/// The formats of a batch's error list (OpenAPI document only).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ErrorListFormat {
    /// `{batch_id, errors: [...]}`.
    Json,
    /// UTF-8 CSV with a byte-order mark: `row,line,path,code,message,detail`.
    Csv,
}

/// A batch's refused rows, as JSON (OpenAPI document only; the body is streamed).
#[derive(Debug, ToSchema)]
pub struct BatchErrorsOut {
    /// The batch.
    pub batch_id: Uuid,
    /// One entry per violation, in row order.
    pub errors: Vec<BatchRowErrorOut>,
}

/// One violation of a refused row.
#[derive(Debug, ToSchema)]
pub struct BatchRowErrorOut {
    /// 1-based row.
    pub row: u64,
    /// 1-based line of the file.
    pub line: u64,
    /// Field path inside the row (JSON Pointer), `""` for the whole row.
    pub path: String,
    /// The violation code.
    pub code: String,
    /// Its message in the request's language.
    pub message: String,
    /// Extra English detail, never the submitted value.
    pub detail: Option<String>,
}

/// Every refused row of a batch: row, line, field path, code and translated message, as JSON
/// or CSV (streamed; `Accept-Language` picks Vietnamese or English).
#[utoipa::path(get, path = "/api/v1/batches/{id}/errors", tag = "batches",
    params(("id" = Uuid, Path, description = "batch id"), ErrorsQuery),
    responses(
        (status = 200, description = "The refused rows as JSON, or as CSV with the same columns (`format=csv`, as an attachment)",
            headers(("Content-Disposition" = String, description = "CSV only: `attachment; filename=\"batch-<id>-errors.csv\"`")),
            content((BatchErrorsOut = "application/json"), ("text/csv"))),
        (status = 400, description = "`format` is neither json nor csv (violation path `query:format`), or the id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such batch in the caller's organisation", body = Problem, content_type = "application/problem+json"),
        AuthErrors,
    ),
    security(("api_key" = [])))]
pub async fn get_batch_errors(
    app: web::Data<AppIngestion>,
    p: Principal,
    lang: RequestLang,
    path: web::Path<Uuid>,
    query: web::Query<ErrorsQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ReadSubmissions)?;
    let id = path.into_inner();
    let csv = match query.format.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            return Err(api_error(BatchError::param("query:format", "json or csv")));
        }
    };
    // 404 before any byte is sent.
    let first = app
        .batches
        .errors_page(p.org_scope(), id, None, PAGE)
        .await
        .map_err(api_error)?
        .ok_or_else(ApiError::not_found)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let batches = app.batches.clone();
    tokio::spawn(stream_errors(batches, p.org_scope(), id, first, lang.0, csv, tx));
    let body = etx_http_kit::channel_stream(rx);
    let mut resp = HttpResponse::Ok();
    if csv {
        resp.content_type("text/csv; charset=utf-8").insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"batch-{id}-errors.csv\""),
        ));
    } else {
        resp.content_type("application/json");
    }
    Ok(resp.streaming(body))
}

const PAGE: u64 = 1000;

async fn stream_errors(
    batches: Batches,
    scope: OrgScope,
    id: Uuid,
    mut page: Vec<(super::RowError, i32)>,
    lang: Lang,
    csv: bool,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let head = if csv {
        "\u{feff}row,line,path,code,message,detail\r\n".to_string()
    } else {
        format!("{{\"batch_id\":\"{id}\",\"errors\":[")
    };
    if tx.send(Ok(Bytes::from(head))).await.is_err() {
        return;
    }
    let mut first = true;
    loop {
        if page.is_empty() {
            break;
        }
        let mut out = Vec::with_capacity(page.len() * 96);
        for (e, _) in &page {
            if csv {
                let mut w = csv_writer(&mut out);
                let _ = w.write_record([
                    e.row.to_string().as_str(),
                    e.line.to_string().as_str(),
                    e.path.as_str(),
                    e.code.as_str(),
                    e.code.message(lang),
                    e.detail.as_deref().unwrap_or(""),
                ]);
                let _ = w.flush();
            } else {
                if !first {
                    out.push(b',');
                }
                first = false;
                let item = serde_json::json!({
                    "row": e.row,
                    "line": e.line,
                    "path": e.path,
                    "code": e.code.as_str(),
                    "message": e.code.message(lang),
                    "detail": e.detail,
                });
                let _ = serde_json::to_writer(&mut out, &item);
            }
        }
        if tx.send(Ok(Bytes::from(out))).await.is_err() {
            return;
        }
        let after = page.last().map(|(e, seq)| (e.row, *seq));
        page = match batches.errors_page(scope, id, after, PAGE).await {
            Ok(Some(p)) => p,
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::error!(batch = %id, error = %e, "error list cut short");
                let _ = tx.send(Err(std::io::Error::other("error list cut short"))).await;
                return;
            }
        };
    }
    if !csv {
        let _ = tx.send(Ok(Bytes::from_static(b"]}"))).await;
    }
}

fn csv_writer(out: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out)
}

/// Mounts the batch routes under `/api/v1`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use crate::http::resource;
    cfg.service(resource("/batches", "POST").route(web::post().to(upload_batch)))
        .service(resource("/batches/{id}", "GET").route(web::get().to(get_batch)))
        .service(resource("/batches/{id}/errors", "GET").route(web::get().to(get_batch_errors)));
}

/// The batch part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(upload_batch, get_batch, get_batch_errors),
    components(schemas(
        BatchOut,
        CountsOut,
        DeclaredOut,
        BatchParams,
        BatchFormatName,
        BatchFile,
        BatchUploadForm,
        ErrorListFormat,
        BatchErrorsOut,
        BatchRowErrorOut
    ))
)]
#[derive(Debug)]
pub struct BatchDoc;

#[cfg(test)]
mod tests {
    use super::*;

    fn violation(e: BatchError) -> (String, String) {
        match e {
            BatchError::InvalidParameter { path, detail } => (path, detail),
            other => panic!("not a parameter error: {other}"),
        }
    }

    #[test]
    fn a_bad_manifest_is_refused_without_quoting_it() {
        for bad in [
            &b"null"[..],
            b"[1]",
            b"{\"dry_run\": \"SECRET\"}",
            b"{\"SECRET\": 1,",
        ] {
            let (path, detail) = violation(parse_manifest(bad).expect_err("refused"));
            assert_eq!(path, "multipart:manifest");
            assert!(
                detail.starts_with("not a JSON object of upload parameters"),
                "{detail}"
            );
            assert!(!detail.contains("SECRET") && !detail.contains("null"), "{detail}");
        }
        let ok = parse_manifest(br#"{"format": "csv", "dry_run": true, "row_count": 3}"#).expect("valid");
        assert_eq!(
            (ok.format.as_deref(), ok.dry_run, ok.row_count),
            (Some("csv"), Some(true), Some(3))
        );
    }

    #[test]
    fn an_unknown_part_is_named_only_when_its_name_is_plain() {
        assert_eq!(part_path("attachment"), "multipart:attachment");
        assert_eq!(part_path("<script>alert(1)</script>"), "multipart");
        assert_eq!(part_path(""), "multipart");
        assert_eq!(part_path(&"a".repeat(65)), "multipart");
    }
}
