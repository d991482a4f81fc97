//! Exports for data sources (issue 3 §8, App. I 3.4, R-REP): `GET /api/v1/exports/records`
//! downloads the caller's own organisation's records — envelope, receipt, status, time and
//! decrypted payload — as CSV, XLSX or JSON. Another organisation's records are never read:
//! every query is scoped to the caller's organisation.
//!
//! # Streaming and memory
//! Records are read in keyset pages of [`source::PAGE_ROWS`] ordered by `(received_at, id)` and
//! decrypted one page at a time. Records received after the export started are not part of it.
//! * **CSV, JSON**: each page is encoded and sent as one body chunk; at most
//!   [`QUEUED_CHUNKS`] chunks wait for a slow client, so memory is bounded by a few pages
//!   whatever the export's size.
//! * **XLSX**: rows go to a constant-memory worksheet backed by a temporary file (see
//!   [`xlsx_format`]); once every row is written, the workbook is zipped into the body in
//!   64 KiB chunks. Memory is bounded; disk use is about the size of the sheet XML. One sheet
//!   holds at most 1,048,575 records: a larger export is refused up front (`400`, use CSV or
//!   JSON, or narrow `from`/`to`).
//!
//! # Failures
//! The response starts only once its first chunk is ready (CSV and JSON: header and first page;
//! XLSX: the whole sheet written), so an early failure is an ordinary `500` problem. A failure
//! after that is logged and ends the body with an error — the connection is cut without the
//! final chunk — so a client never takes a cut-short file for a complete one.

pub mod csv_format;
pub mod json_format;
pub mod params;
pub mod source;
pub mod xlsx_format;

use crate::{AppIngestion, KeyManager};
use actix_web::http::header;
use actix_web::{HttpResponse, web};
use bytes::Bytes;
use chrono::Utc;
use etx_domain::authz::{OrgScope, Permission};
use etx_domain::{ErrorCode, FieldViolation, ViolationCode};
use etx_http_kit::openapi::AuthErrors;
use etx_http_kit::{ApiError, Principal, Problem};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use params::{ExportFormat, ExportParams};
use sea_orm::DatabaseConnection;
use source::{ExportRecord, RecordPages};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;
use tracing::Instrument;

/// Encoded chunks that may wait for a slow client.
pub const QUEUED_CHUNKS: usize = 2;

/// One piece of a download body; an error cuts the download off.
pub type Chunk = Result<Bytes, std::io::Error>;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// A stored record could not be read back (key, ciphertext or columns).
    #[error("record {id}: {reason}")]
    Record {
        /// The record.
        id: uuid::Uuid,
        /// What was wrong (never payload content).
        reason: String,
    },
    /// CSV encoding.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// JSON encoding.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Workbook writing (temporary file, zip).
    #[error("xlsx: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
    /// I/O.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// More records than one worksheet holds.
    #[error("more than {} records for one worksheet", xlsx_format::MAX_RECORDS)]
    TooManyRows,
    /// The worksheet writer thread stopped abnormally.
    #[error("xlsx writer: {0}")]
    Worker(String),
}

/// Why an export could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An XLSX export would hold more records than one worksheet.
    #[error("{0} records do not fit one worksheet")]
    TooManyForXlsx(u64),
    /// Anything else, before the first byte.
    #[error(transparent)]
    Failed(#[from] ExportError),
}

/// A download ready to stream: its first chunk is already produced.
pub struct Download {
    /// The format written.
    pub format: ExportFormat,
    /// The body.
    pub body: BoxStream<'static, Chunk>,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// Runs exports over ingestion's database.
#[derive(Debug, Clone)]
pub struct Exporter {
    db: DatabaseConnection,
    keys: KeyManager,
}

impl Exporter {
    /// An exporter reading `db`, decrypting with `keys`.
    pub fn new(db: DatabaseConnection, keys: KeyManager) -> Self {
        Self { db, keys }
    }

    /// Starts the export of `org`'s records matching `params` and waits for its first chunk.
    /// The rest is produced by a background task as the body is consumed; dropping the body
    /// stops it.
    #[tracing::instrument(skip(self, params), fields(org = %scope.root(), format = ?params.format))]
    pub async fn start(&self, scope: OrgScope, params: ExportParams) -> Result<Download, StartError> {
        let format = params.format;
        let bom = params.bom;
        let pages = RecordPages::new(self.db.clone(), self.keys.clone(), scope, params, Utc::now());
        if format == ExportFormat::Xlsx {
            let n = pages.count().await?;
            if n > xlsx_format::MAX_RECORDS {
                return Err(StartError::TooManyForXlsx(n));
            }
        }
        let (tx, mut rx) = mpsc::channel::<Chunk>(QUEUED_CHUNKS);
        let span = tracing::Span::current();
        match format {
            ExportFormat::Csv => tokio::spawn(run_text(pages, Encoder::Csv { bom }, tx).instrument(span)),
            ExportFormat::Json => {
                tokio::spawn(run_text(pages, Encoder::Json(Default::default()), tx).instrument(span))
            }
            ExportFormat::Xlsx => tokio::spawn(run_xlsx(pages, tx).instrument(span)),
        };
        let first = match rx.recv().await {
            Some(Ok(b)) => b,
            Some(Err(e)) => return Err(ExportError::Io(e).into()),
            None => return Err(ExportError::Worker("the export produced nothing".into()).into()),
        };
        let rest = etx_http_kit::channel_stream(rx);
        Ok(Download {
            format,
            body: stream::once(async move { Ok(first) }).chain(rest).boxed(),
        })
    }
}

/// The text formats, encoded page by page on the async runtime.
#[derive(Debug)]
enum Encoder {
    Csv { bom: bool },
    Json(json_format::JsonArray),
}

impl Encoder {
    fn head(&mut self, buf: &mut Vec<u8>) -> Result<(), ExportError> {
        match self {
            Self::Csv { bom } => csv_format::head(*bom, buf),
            Self::Json(a) => {
                a.head(buf);
                Ok(())
            }
        }
    }

    fn rows(&mut self, records: &[ExportRecord], buf: &mut Vec<u8>) -> Result<(), ExportError> {
        match self {
            Self::Csv { .. } => csv_format::rows(records, buf),
            Self::Json(a) => a.rows(records, buf),
        }
    }

    fn tail(&mut self, buf: &mut Vec<u8>) {
        if let Self::Json(a) = self {
            a.tail(buf);
        }
    }
}

async fn run_text(mut pages: RecordPages, mut enc: Encoder, tx: mpsc::Sender<Chunk>) {
    let mut buf = Vec::new();
    let mut rows = 0u64;
    let mut sent = false;
    if let Err(e) = enc.head(&mut buf) {
        return fail(&tx, e, sent, rows).await;
    }
    loop {
        let page = match pages.next_page().await {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => return fail(&tx, e, sent, rows).await,
        };
        if let Err(e) = enc.rows(&page, &mut buf) {
            return fail(&tx, e, sent, rows).await;
        }
        rows += page.len() as u64;
        drop(page);
        if tx.send(Ok(Bytes::from(std::mem::take(&mut buf)))).await.is_err() {
            tracing::info!(rows, "export abandoned by the client");
            return;
        }
        sent = true;
    }
    enc.tail(&mut buf);
    if tx.send(Ok(Bytes::from(buf))).await.is_ok() {
        tracing::info!(rows, "export sent");
    }
}

async fn run_xlsx(mut pages: RecordPages, tx: mpsc::Sender<Chunk>) {
    let (feed_tx, mut feed_rx) = mpsc::channel::<xlsx_format::Feed>(QUEUED_CHUNKS);
    let started = Arc::new(AtomicBool::new(false));
    let mut out = xlsx_format::ChunkWriter::new(tx.clone(), started.clone());
    let span = tracing::Span::current();
    let writer = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        xlsx_format::write(&mut feed_rx, &mut out)
    });
    let mut rows = 0u64;
    let fed = loop {
        // The client may leave while the sheet is still being written (nothing sent yet).
        if tx.is_closed() {
            break Ok(());
        }
        match pages.next_page().await {
            Ok(Some(page)) => {
                rows += page.len() as u64;
                // A closed feed means the writer stopped: its result says why.
                if feed_tx.send(xlsx_format::Feed::Rows(page)).await.is_err() {
                    break Ok(());
                }
            }
            Ok(None) => {
                let _ = feed_tx.send(xlsx_format::Feed::End).await;
                break Ok(());
            }
            Err(e) => break Err(e),
        }
    };
    drop(feed_tx);
    let written = writer.await;
    let err = match (fed, written) {
        (Err(e), _) => e,
        (Ok(()), Ok(Ok(xlsx_format::Outcome::Written))) => {
            tracing::info!(rows, "export sent");
            return;
        }
        (Ok(()), Ok(Ok(xlsx_format::Outcome::Cancelled))) => {
            tracing::info!(rows, "export abandoned by the client");
            return;
        }
        (Ok(()), Ok(Err(e))) => e,
        (Ok(()), Err(join)) => ExportError::Worker(join.to_string()),
    };
    if tx.is_closed() {
        tracing::info!(rows, "export abandoned by the client");
        return;
    }
    fail(&tx, err, started.load(Ordering::Acquire), rows).await;
}

/// Ends the body with an error. Before the first chunk the handler answers a `500` problem
/// (and logs); after it, this is the only trace, so it is logged here.
async fn fail(tx: &mpsc::Sender<Chunk>, e: ExportError, sent: bool, rows: u64) {
    if sent {
        tracing::error!(error = %e, rows, "export failed after the download started; cutting it off");
    }
    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
}

/// Downloads the caller's own organisation's records with their receipts and statuses, as
/// CSV, XLSX or JSON (issue 3 §8, App. I 3.4). Filters combine; all are optional.
///
/// Columns, in this order in every format: `record_id`, `receipt_id`, `category`,
/// `schema_version`, `period`, `classification`, `priority`, `form`, `method`, `status`,
/// `received_at`, `payload`. In CSV and XLSX `payload` is the payload as compact JSON text; in
/// JSON it is the object. Rows are ordered by `received_at`, then `record_id`; records
/// received after the export started are not included.
///
/// CSV is UTF-8 with a byte-order mark (`bom=false` omits it), RFC 4180 quoting and CRLF line
/// ends; a cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed
/// with `'` so that spreadsheets show it as text. XLSX has one sheet `records` (at most
/// 1,048,575 records) whose cells are never formulas. A download that fails after it started
/// is cut off (no final chunk), never ended as if complete.
#[utoipa::path(get, path = "/api/v1/exports/records", tag = "exports",
    params(
        ("format" = params::ExportFormat, Query, description = "csv, xlsx or json (any case)"),
        ("category" = Option<params::CategoryName>, Query, description = "policy, statistics, workforce or enforcement (any case)"),
        ("period" = Option<String>, Query, 
            // A year from 1945 to 2200, then nothing, a quarter, a month, or a day that exists
            // in every year (29 February is accepted in leap years too, but not described).
            pattern = "^(?:19(?:4[5-9]|[5-9][0-9])|2[01][0-9]{2}|2200)(?:-[Qq][1-4]|-(?:0[1-9]|1[0-2])|-(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|-(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|-02-(?:0[1-9]|1[0-9]|2[0-8]))?$",
            description = "exact period as submitted: 2026, 2026-Q3, 2026-10 or 2026-10-05; years 1945 to 2200"),
        ("status" = Option<params::RecordStatusName>, Query, description = "record status (any case): received (today the only one held), validating, valid, rejected, duplicate, reconciled, conflict or approved"),
        ("from" = Option<String>, Query, format = DateTime, description = "received at or after this RFC 3339 instant (percent-encode + as %2B)"),
        ("to" = Option<String>, Query, format = DateTime, description = "received before this RFC 3339 instant (exclusive); later than `from`"),
        ("bom" = Option<bool>, Query, description = "CSV only: begin with a UTF-8 byte-order mark (default true)"),
    ),
    responses(
        (status = 200, description = "The file, streamed, with Content-Disposition: attachment; filename=\"etxhub-records-<YYYY-MM-DD>.<csv|xlsx|json>\"",
            headers(("Content-Disposition" = String, description = "attachment with the file name")),
            content(
                (Vec<ExportRecord> = "application/json"),
                ("text/csv"),
                ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            )),
        (status = 400, description = "A query parameter is not valid, unknown or repeated (violation path `query:<name>`), or too many records for one XLSX sheet", body = Problem, content_type = "application/problem+json"),
        AuthErrors,
    ),
    security(("api_key" = [])))]
pub async fn export_records(
    app: web::Data<AppIngestion>,
    p: Principal,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ExportRecords)?;
    let mut params = ExportParams::parse(&query)
        .map_err(|v| ApiError::new(ErrorCode::InvalidParameter).with_violations(v))?;
    params.clearance = p.clearance();
    let download = app
        .exports
        .start(p.org_scope(), params)
        .await
        .map_err(|e| match e {
            StartError::TooManyForXlsx(n) => ApiError::new(ErrorCode::InvalidParameter)
                .with_detail(format!(
                    "{n} records match; one XLSX sheet holds at most {}",
                    xlsx_format::MAX_RECORDS
                ))
                .with_violations(vec![
                    FieldViolation::new("query:format", ViolationCode::TooLarge)
                        .with_detail("use csv or json, or narrow the export with from and to"),
                ]),
            StartError::Failed(e) => ApiError::internal(e),
        })?;
    let filename = format!(
        "etxhub-records-{}.{}",
        Utc::now().format("%Y-%m-%d"),
        download.format.extension()
    );
    Ok(HttpResponse::Ok()
        .content_type(download.format.content_type())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(download.body))
}

/// The export part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(export_records),
    components(schemas(
        ExportRecord,
        params::ExportFormat,
        params::CategoryName,
        params::RecordStatusName
    ))
)]
#[derive(Debug)]
pub struct ExportDoc;
