//! Reading the audit log (R-SEC-9: "queryable and exportable"): the query parameters, checked
//! all at once; keyset pages by sequence number; and the streamed CSV and NDJSON exports.
//!
//! # Exports
//! An export covers every entry matching the filters after `after` up to the head as it was
//! when the export started (entries written later are not part of it, so a long export is a
//! stable picture and always ends). Entries are read in pages of [`EXPORT_PAGE`]; each page
//! is encoded and sent as one body chunk, and at most [`QUEUED_CHUNKS`] chunks wait for a
//! slow client, so memory stays bounded whatever the export's size. The response starts once
//! the first chunk is ready, so an early failure is an ordinary `500`; a failure after that
//! cuts the body off (no final chunk), never ends it as if complete.
//!
//! CSV: UTF-8 with a byte-order mark (for spreadsheets), RFC 4180 quoting, CRLF line ends, one
//! header row ([`COLUMNS`]); a cell beginning with `=`, `+`, `-`, `@`, a tab or a carriage
//! return gets a leading `'` so that a spreadsheet shows it as text. NDJSON: one
//! [`AuditEntryOut`] object per line.

use crate::store::{self, entities::audit_log};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use etx_audit_core::AuditKind;
use etx_domain::{FieldViolation, OrgId, ViolationCode};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Serialize;
use std::borrow::Cow;
use std::net::IpAddr;
use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

/// Largest page of the JSON listing.
pub const MAX_LIMIT: u64 = 1000;
/// Default page of the JSON listing.
pub const DEFAULT_LIMIT: u64 = 100;
/// Entries read per round trip of an export.
pub const EXPORT_PAGE: u64 = 1000;
/// Encoded chunks that may wait for a slow client.
pub const QUEUED_CHUNKS: usize = 2;

/// The response formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntryFormat {
    /// One page as a JSON object with `entries` and `next_after`.
    Json,
    /// The whole filtered range as CSV.
    Csv,
    /// The whole filtered range as newline-delimited JSON.
    Ndjson,
}

impl EntryFormat {
    /// The `Content-Type` of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Ndjson => "application/x-ndjson",
        }
    }

    /// The file extension of an export.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Ndjson => "ndjson",
        }
    }
}

/// Checked query parameters of `GET /api/v1/audit/entries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryQuery {
    /// Entries at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Entries before this instant (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// Only this kind.
    pub kind: Option<AuditKind>,
    /// Only this subject (exact).
    pub subject: Option<String>,
    /// Only this organisation.
    pub org_id: Option<OrgId>,
    /// Only this client address.
    pub ip: Option<IpAddr>,
    /// Only routes beginning with this (case-sensitive).
    pub route: Option<String>,
    /// Only this HTTP status.
    pub status: Option<u16>,
    /// Only this action (exact).
    pub action: Option<String>,
    /// JSON page size.
    pub limit: u64,
    /// Entries after this sequence number (keyset cursor).
    pub after: i64,
    /// Response format.
    pub format: EntryFormat,
}

const KNOWN: [&str; 12] = [
    "from", "to", "kind", "subject", "org_id", "ip", "route", "status", "action", "limit", "after", "format",
];

/// Longest accepted text filter, in characters.
const FILTER_MAX: usize = 1024;

pub(crate) fn violation(name: &str, code: ViolationCode, detail: &str) -> FieldViolation {
    FieldViolation::new(format!("query:{name}"), code).with_detail(detail)
}

/// Unknown or repeated parameters: refused rather than ignored, so that a misspelt filter
/// never widens a result. A name is shown only when it is a plain identifier.
pub(crate) fn check_names(pairs: &[(String, String)], known: &[&str], bad: &mut Vec<FieldViolation>) {
    let mut seen: Vec<&str> = Vec::new();
    for (name, _) in pairs {
        match known.iter().find(|k| **k == name.as_str()) {
            None => {
                let plain = !name.is_empty()
                    && name.len() <= 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                let path = if plain {
                    format!("query:{name}")
                } else {
                    "query".to_owned()
                };
                bad.push(
                    FieldViolation::new(path, ViolationCode::UnknownField)
                        .with_detail(format!("known parameters: {}", known.join(", "))),
                );
            }
            Some(k) if seen.contains(k) => {
                if !bad.iter().any(|v| v.path == format!("query:{k}")) {
                    bad.push(violation(k, ViolationCode::Invalid, "given more than once"));
                }
            }
            Some(k) => seen.push(k),
        }
    }
}

/// RFC 3339; an unencoded `+` of the offset arrives as a space and is read back as `+`.
fn parse_instant(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    DateTime::parse_from_rfc3339(v)
        .or_else(|e| match v.rfind(' ') {
            Some(i) if i > 10 => DateTime::parse_from_rfc3339(&format!("{}+{}", &v[..i], &v[i + 1..])),
            _ => Err(e),
        })
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl EntryQuery {
    /// Checks the decoded query pairs; every problem is reported, each once, with the path
    /// `query:<name>`, never quoting the value.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, Vec<FieldViolation>> {
        let mut bad = Vec::new();
        check_names(pairs, &KNOWN, &mut bad);
        let get = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
        let text = |name: &str, bad: &mut Vec<FieldViolation>| {
            get(name).and_then(|v| {
                if v.is_empty() || v.chars().count() > FILTER_MAX {
                    bad.push(violation(
                        name,
                        ViolationCode::Invalid,
                        "must be 1 to 1024 characters",
                    ));
                    None
                } else if v.chars().any(char::is_control) {
                    // Never a subject, route or action; and PostgreSQL cannot take a NUL.
                    bad.push(violation(name, ViolationCode::Format, "no control characters"));
                    None
                } else {
                    Some(v.to_owned())
                }
            })
        };
        let subject = text("subject", &mut bad);
        let route = text("route", &mut bad);
        let action = text("action", &mut bad);
        let instant = |name: &str, bad: &mut Vec<FieldViolation>| {
            get(name).and_then(|v| {
                let t = parse_instant(v);
                if t.is_none() {
                    bad.push(violation(
                        name,
                        ViolationCode::Format,
                        "expected an RFC 3339 date-time such as 2026-10-01T00:00:00+07:00 (send + as %2B)",
                    ));
                }
                t
            })
        };
        let from = instant("from", &mut bad);
        let to = instant("to", &mut bad);
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            bad.push(violation(
                "to",
                ViolationCode::Invalid,
                "must be later than `from`",
            ));
        }
        let kind = get("kind").and_then(|v| {
            let k = AuditKind::parse(v.trim());
            if k.is_none() {
                bad.push(violation(
                    "kind",
                    ViolationCode::Enum,
                    "expected request, admin_action, raw_read or security",
                ));
            }
            k
        });
        let org_id = get("org_id").and_then(|v| {
            let o = Uuid::parse_str(v.trim()).ok().map(OrgId::from_uuid);
            if o.is_none() {
                bad.push(violation("org_id", ViolationCode::Format, "expected a UUID"));
            }
            o
        });
        let ip = get("ip").and_then(|v| {
            let ip = v.trim().parse::<IpAddr>().ok();
            if ip.is_none() {
                bad.push(violation(
                    "ip",
                    ViolationCode::Format,
                    "expected an IPv4 or IPv6 address",
                ));
            }
            ip
        });
        let status = get("status").and_then(|v| {
            let s = v.trim().parse::<u16>().ok().filter(|s| (100..=599).contains(s));
            if s.is_none() {
                bad.push(violation(
                    "status",
                    ViolationCode::Format,
                    "expected an HTTP status from 100 to 599",
                ));
            }
            s
        });
        let limit = match get("limit") {
            None => DEFAULT_LIMIT,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                Ok(0) => {
                    bad.push(violation("limit", ViolationCode::TooSmall, "at least 1"));
                    DEFAULT_LIMIT
                }
                Ok(_) => {
                    bad.push(violation("limit", ViolationCode::TooLarge, "at most 1000"));
                    DEFAULT_LIMIT
                }
                Err(_) => {
                    bad.push(violation(
                        "limit",
                        ViolationCode::Type,
                        "expected an integer from 1 to 1000",
                    ));
                    DEFAULT_LIMIT
                }
            },
        };
        let after = match get("after") {
            None => 0,
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) if n >= 0 => n,
                _ => {
                    bad.push(violation(
                        "after",
                        ViolationCode::Type,
                        "expected a sequence number (integer ≥ 0)",
                    ));
                    0
                }
            },
        };
        let format = match get("format").map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("json") => EntryFormat::Json,
            Some("csv") => EntryFormat::Csv,
            Some("ndjson") => EntryFormat::Ndjson,
            Some(_) => {
                bad.push(violation(
                    "format",
                    ViolationCode::Enum,
                    "expected json, csv or ndjson",
                ));
                EntryFormat::Json
            }
        };
        if !bad.is_empty() {
            return Err(bad);
        }
        Ok(Self {
            from,
            to,
            kind,
            subject,
            org_id,
            ip,
            route,
            status,
            action,
            limit,
            after,
            format,
        })
    }

    /// The filters as a JSON object (for the `audit.query` entry): only those given.
    pub fn filters_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        let mut put = |k: &str, v: Option<serde_json::Value>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        put("from", self.from.map(|t| t.to_rfc3339().into()));
        put("to", self.to.map(|t| t.to_rfc3339().into()));
        put("kind", self.kind.map(|k| k.as_str().into()));
        put("subject", self.subject.clone().map(Into::into));
        put("org_id", self.org_id.map(|o| o.to_string().into()));
        put("ip", self.ip.map(|i| i.to_string().into()));
        put("route", self.route.clone().map(Into::into));
        put("status", self.status.map(Into::into));
        put("action", self.action.clone().map(Into::into));
        if self.after > 0 {
            put("after", Some(self.after.into()));
        }
        serde_json::Value::Object(m)
    }

    /// The SQL condition of the filters, restricted to `scope` when given (an auditor outside
    /// the root organisation sees only their own organisation's entries).
    fn condition(&self, scope: Option<OrgId>) -> Condition {
        use audit_log::Column as C;
        let mut c = Condition::all();
        if let Some(t) = self.from {
            c = c.add(C::AtUs.gte(t.timestamp_micros()));
        }
        if let Some(t) = self.to {
            c = c.add(C::AtUs.lt(t.timestamp_micros()));
        }
        if let Some(k) = self.kind {
            c = c.add(C::Kind.eq(k.as_str()));
        }
        if let Some(s) = &self.subject {
            c = c.add(C::Subject.eq(s.as_str()));
        }
        if let Some(o) = self.org_id {
            c = c.add(C::OrgId.eq(o.as_uuid()));
        }
        if let Some(o) = scope {
            c = c.add(C::OrgId.eq(o.as_uuid()));
        }
        if let Some(ip) = self.ip {
            c = c.add(C::Ip.eq(ip.to_string()));
        }
        if let Some(r) = &self.route {
            // An exact, case-sensitive prefix on both engines (LIKE would treat `_` and `%` as
            // wildcards, and is case-insensitive on SQLite).
            // `substr(text, integer, integer)`: both numbers bound as 32-bit for PostgreSQL
            // (filters are at most FILTER_MAX characters).
            let len = i32::try_from(r.chars().count()).unwrap_or(i32::MAX);
            c = c.add(
                Expr::expr(Func::cust("substr").arg(Expr::col(C::Route)).arg(1i32).arg(len)).eq(r.as_str()),
            );
        }
        if let Some(s) = self.status {
            c = c.add(C::Status.eq(i32::from(s)));
        }
        if let Some(a) = &self.action {
            c = c.add(C::Action.eq(a.as_str()));
        }
        c
    }
}

/// Up to `limit` entries matching `q` (within `scope`) after `after` and up to `upto`, in
/// sequence order.
pub async fn page(
    db: &DatabaseConnection,
    q: &EntryQuery,
    scope: Option<OrgId>,
    after: i64,
    upto: Option<i64>,
    limit: u64,
) -> Result<Vec<audit_log::Model>, DbErr> {
    let mut sel = audit_log::Entity::find()
        .filter(q.condition(scope))
        .filter(audit_log::Column::Seq.gt(after));
    if let Some(u) = upto {
        sel = sel.filter(audit_log::Column::Seq.lte(u));
    }
    sel.order_by_asc(audit_log::Column::Seq)
        .limit(limit)
        .all(db)
        .await
}

/// One entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AuditEntryOut {
    /// Sequence number (dense, global).
    pub seq: i64,
    /// When it happened (RFC 3339, UTC, microseconds).
    pub at: String,
    /// `request`, `admin_action`, `raw_read` or `security`.
    pub kind: String,
    /// Who: `system:<uuid>`, `user:<uuid>`, `anonymous`, …
    pub subject: String,
    /// Organisation acted for.
    pub org_id: Option<Uuid>,
    /// Connected system.
    pub system_id: Option<Uuid>,
    /// API key used.
    pub key_id: Option<Uuid>,
    /// Session id.
    pub session_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// HTTP method.
    pub method: Option<String>,
    /// Path; of the query string only the parameter names.
    pub route: Option<String>,
    /// HTTP status.
    pub status: Option<i32>,
    /// Request bytes.
    pub bytes_in: i64,
    /// Response bytes.
    pub bytes_out: i64,
    /// Duration in milliseconds.
    pub duration_ms: i64,
    /// SHA-256 of the request body, hex.
    pub payload_hash: Option<String>,
    /// Administrative action, e.g. `api_key.revoke`.
    pub action: Option<String>,
    /// Facts about the event.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    /// The entry's chain hash, hex.
    pub hash: String,
}

impl From<audit_log::Model> for AuditEntryOut {
    fn from(m: audit_log::Model) -> Self {
        let at = DateTime::from_timestamp_micros(m.at_us)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
            .unwrap_or_default();
        Self {
            seq: m.seq,
            at,
            kind: m.kind,
            subject: m.subject,
            org_id: m.org_id,
            system_id: m.system_id,
            key_id: m.key_id,
            session_id: m.session_id,
            ip: m.ip,
            method: m.method,
            route: m.route,
            status: m.status,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            duration_ms: m.duration_ms,
            payload_hash: m.payload_hash.map(hex::encode),
            action: m.action,
            detail: serde_json::from_str(&m.detail).unwrap_or(serde_json::Value::String(m.detail)),
            hash: hex::encode(m.hash),
        }
    }
}

/// The CSV columns, in order.
pub const COLUMNS: [&str; 19] = [
    "seq",
    "at",
    "kind",
    "subject",
    "org_id",
    "system_id",
    "key_id",
    "session_id",
    "ip",
    "method",
    "route",
    "status",
    "bytes_in",
    "bytes_out",
    "duration_ms",
    "payload_hash",
    "action",
    "detail",
    "hash",
];

impl AuditEntryOut {
    /// The CSV cells in [`COLUMNS`] order (`detail` as compact JSON).
    pub fn cells(&self) -> [Cow<'_, str>; 19] {
        let opt = |v: &Option<String>| Cow::Owned(v.clone().unwrap_or_default());
        let uuid = |v: &Option<Uuid>| Cow::Owned(v.map(|u| u.to_string()).unwrap_or_default());
        [
            Cow::Owned(self.seq.to_string()),
            Cow::Borrowed(self.at.as_str()),
            Cow::Borrowed(self.kind.as_str()),
            Cow::Borrowed(self.subject.as_str()),
            uuid(&self.org_id),
            uuid(&self.system_id),
            uuid(&self.key_id),
            opt(&self.session_id),
            opt(&self.ip),
            opt(&self.method),
            opt(&self.route),
            Cow::Owned(self.status.map(|s| s.to_string()).unwrap_or_default()),
            Cow::Owned(self.bytes_in.to_string()),
            Cow::Owned(self.bytes_out.to_string()),
            Cow::Owned(self.duration_ms.to_string()),
            opt(&self.payload_hash),
            opt(&self.action),
            Cow::Owned(self.detail.to_string()),
            Cow::Borrowed(self.hash.as_str()),
        ]
    }
}

/// The UTF-8 byte-order mark.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Whether a spreadsheet would read a cell starting like this as a formula.
pub fn looks_like_formula(cell: &str) -> bool {
    matches!(
        cell.as_bytes().first(),
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
    )
}

fn csv_writer(buf: &mut Vec<u8>) -> csv::Writer<&mut Vec<u8>> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::CRLF)
        .from_writer(buf)
}

/// Appends CSV rows (or the header when `entries` is `None`).
pub fn csv_rows(entries: Option<&[AuditEntryOut]>, buf: &mut Vec<u8>) -> Result<(), csv::Error> {
    let mut w = csv_writer(buf);
    match entries {
        None => w.write_record(COLUMNS)?,
        Some(es) => {
            for e in es {
                w.write_record(e.cells().map(|c| {
                    if looks_like_formula(&c) {
                        format!("'{c}")
                    } else {
                        c.into_owned()
                    }
                }))?;
            }
        }
    }
    w.flush()?;
    Ok(())
}

/// Appends NDJSON lines.
pub fn ndjson_rows(entries: &[AuditEntryOut], buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
    for e in entries {
        serde_json::to_writer(&mut *buf, e)?;
        buf.push(b'\n');
    }
    Ok(())
}

/// One piece of an export body; an error cuts the download off.
pub type Chunk = Result<Bytes, std::io::Error>;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// CSV encoding.
    #[error("csv: {0}")]
    Csv(#[from] csv::Error),
    /// JSON encoding.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// The producer failed before its first chunk.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The producer stopped without output.
    #[error("the export produced nothing")]
    Nothing,
}

/// Starts a CSV or NDJSON export of `q` within `scope` and waits for its first chunk (header
/// plus first page); the rest is produced as the body is consumed. Dropping the body stops
/// it.
pub async fn export(
    db: DatabaseConnection,
    q: EntryQuery,
    scope: Option<OrgId>,
) -> Result<BoxStream<'static, Chunk>, ExportError> {
    let upto = store::read_head(&db, false).await?.seq;
    let (tx, mut rx) = mpsc::channel::<Chunk>(QUEUED_CHUNKS);
    tokio::spawn(produce(db, q, scope, upto, tx).instrument(tracing::Span::current()));
    let first = match rx.recv().await {
        Some(Ok(b)) => b,
        Some(Err(e)) => return Err(ExportError::Io(e)),
        None => return Err(ExportError::Nothing),
    };
    let rest = etx_http_kit::channel_stream(rx);
    Ok(stream::once(async move { Ok(first) }).chain(rest).boxed())
}

async fn produce(
    db: DatabaseConnection,
    q: EntryQuery,
    scope: Option<OrgId>,
    upto: i64,
    tx: mpsc::Sender<Chunk>,
) {
    let mut buf = Vec::new();
    let mut rows = 0u64;
    if q.format == EntryFormat::Csv {
        buf.extend_from_slice(BOM);
        if let Err(e) = csv_rows(None, &mut buf) {
            return fail(&tx, e.into(), rows).await;
        }
    }
    let mut after = q.after;
    loop {
        let page = match page(&db, &q, scope, after, Some(upto), EXPORT_PAGE).await {
            Ok(p) => p,
            Err(e) => return fail(&tx, e.into(), rows).await,
        };
        let full = page.len() as u64 == EXPORT_PAGE;
        if let Some(last) = page.last() {
            after = last.seq;
        }
        rows += page.len() as u64;
        let out: Vec<AuditEntryOut> = page.into_iter().map(AuditEntryOut::from).collect();
        let encoded = match q.format {
            EntryFormat::Csv => csv_rows(Some(&out), &mut buf).map_err(ExportError::from),
            _ => ndjson_rows(&out, &mut buf).map_err(ExportError::from),
        };
        if let Err(e) = encoded {
            return fail(&tx, e, rows).await;
        }
        if !buf.is_empty() && tx.send(Ok(Bytes::from(std::mem::take(&mut buf)))).await.is_err() {
            tracing::info!(rows, "audit export abandoned by the client");
            return;
        }
        if !full {
            break;
        }
    }
    if rows == 0 && q.format == EntryFormat::Ndjson {
        // An empty NDJSON export is an empty body: send one empty chunk so the response starts.
        let _ = tx.send(Ok(Bytes::new())).await;
    }
    tracing::info!(rows, "audit export sent");
}

async fn fail(tx: &mpsc::Sender<Chunk>, e: ExportError, rows: u64) {
    tracing::error!(error = %e, rows, "audit export failed; cutting it off");
    let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<EntryQuery, Vec<FieldViolation>> {
        let pairs: Vec<(String, String)> = q.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        EntryQuery::parse(&pairs)
    }

    fn paths(r: Result<EntryQuery, Vec<FieldViolation>>) -> Vec<(String, &'static str)> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.path, v.code.as_str()))
            .collect()
    }

    #[test]
    fn defaults_and_every_filter_are_read() {
        let q = parse(&[]).unwrap();
        assert_eq!(
            (q.limit, q.after, q.format),
            (DEFAULT_LIMIT, 0, EntryFormat::Json)
        );
        let q = parse(&[
            ("from", "2026-10-01T00:00:00+07:00"),
            ("to", "2026-11-01T00:00:00Z"),
            ("kind", "admin_action"),
            ("subject", "user:1"),
            ("org_id", "0190f5c2-6a3e-7c1d-9f00-2b7e4c1a9d11"),
            ("ip", "2001:db8::1"),
            ("route", "/api/v1/keys"),
            ("status", "403"),
            ("action", "api_key.revoke"),
            ("limit", "1000"),
            ("after", "42"),
            ("format", "CSV"),
        ])
        .unwrap();
        assert_eq!(q.kind, Some(AuditKind::AdminAction));
        assert_eq!(q.status, Some(403));
        assert_eq!(q.format, EntryFormat::Csv);
        assert_eq!(q.from.unwrap().to_rfc3339(), "2026-09-30T17:00:00+00:00");
        assert_eq!(q.filters_json()["after"], 42);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let got = paths(parse(&[
            ("from", "yesterday"),
            ("kind", "login"),
            ("org_id", "79"),
            ("ip", "999.1.1.1"),
            ("status", "99"),
            ("limit", "1001"),
            ("after", "-1"),
            ("format", "xml"),
            ("colour", "red"),
            ("subject", ""),
        ]));
        assert_eq!(
            got,
            vec![
                ("query:colour".to_owned(), "unknown_field"),
                ("query:subject".to_owned(), "invalid"),
                ("query:from".to_owned(), "format"),
                ("query:kind".to_owned(), "enum"),
                ("query:org_id".to_owned(), "format"),
                ("query:ip".to_owned(), "format"),
                ("query:status".to_owned(), "format"),
                ("query:limit".to_owned(), "too_large"),
                ("query:after".to_owned(), "type"),
                ("query:format".to_owned(), "enum"),
            ]
        );
        assert_eq!(
            paths(parse(&[("limit", "0"), ("limit", "5")])),
            vec![
                ("query:limit".to_owned(), "invalid"),
                ("query:limit".to_owned(), "too_small")
            ]
        );
    }

    #[test]
    fn csv_cells_are_guarded_against_formulas() {
        let e = AuditEntryOut {
            seq: 1,
            at: "2026-10-01T00:00:00.000000Z".into(),
            kind: "request".into(),
            subject: "=cmd".into(),
            org_id: None,
            system_id: None,
            key_id: None,
            session_id: None,
            ip: None,
            method: Some("GET".into()),
            route: Some("/a".into()),
            status: Some(200),
            bytes_in: 0,
            bytes_out: 5,
            duration_ms: 1,
            payload_hash: None,
            action: None,
            detail: serde_json::json!({"a": "b, \"c\""}),
            hash: "00".into(),
        };
        let mut buf = Vec::new();
        csv_rows(None, &mut buf).unwrap();
        csv_rows(Some(&[e]), &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let mut lines = text.split("\r\n");
        assert_eq!(lines.next().unwrap(), COLUMNS.join(","));
        let row = lines.next().unwrap();
        assert!(
            row.starts_with("1,2026-10-01T00:00:00.000000Z,request,'=cmd,"),
            "{row}"
        );
        assert!(row.contains(r#""{""a"":""b, \""c\""""}""#), "{row}");
    }
}
