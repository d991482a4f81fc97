//! Reads the records of the organisations within a caller's scope for an export: keyset pages ordered by
//! `(received_at, id)`, payloads decrypted as each page is read (R-SEC-5: clear payloads exist
//! only in memory, one page at a time).

use super::ExportError;
use super::params::ExportParams;
use crate::KeyManager;
use crate::store::entities::record;
use chrono::{DateTime, SecondsFormat, Utc};
use etx_crypto::Aad;
use etx_domain::authz::OrgScope;
use etx_domain::{Classification, Priority};
use sea_orm::sea_query::Condition;
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, FromQueryResult, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use serde::Serialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use uuid::Uuid;

/// Records read per database round trip.
pub const PAGE_ROWS: u64 = 500;

/// The columns of every export, in order (CSV header, XLSX header row, JSON keys).
pub const COLUMNS: [&str; 12] = [
    "record_id",
    "receipt_id",
    "category",
    "schema_version",
    "period",
    "classification",
    "priority",
    "form",
    "method",
    "status",
    "received_at",
    "payload",
];

/// One exported record (the JSON export is an array of these).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExportRecord {
    /// Record id.
    pub record_id: Uuid,
    /// The receipt of the submission that brought it.
    pub receipt_id: Uuid,
    /// `policy`, `statistics`, `workforce` or `enforcement`.
    pub category: String,
    /// Schema version of the payload.
    pub schema_version: u16,
    /// Reporting period as submitted (`2026`, `2026-Q3`, `2026-10`, `2026-10-05`).
    pub period: String,
    /// `public`, `internal`, `confidential` or `secret`.
    pub classification: String,
    /// `high`, `normal` or `low`.
    pub priority: &'static str,
    /// `raw` or `masked`.
    pub form: String,
    /// `realtime` or `batch`.
    pub method: String,
    /// Record status, e.g. `received`.
    pub status: String,
    /// When it was received (RFC 3339, UTC).
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub received_at: DateTime<Utc>,
    /// The decrypted payload.
    #[schema(value_type = Object)]
    pub payload: Box<RawValue>,
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&received_text(t))
}

/// The one text form of `received_at` in every format: exact (all stored digits), UTC, `Z`.
fn received_text(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

impl ExportRecord {
    /// The cells of the row as text, in [`COLUMNS`] order; the payload is compact JSON.
    pub fn cells(&self) -> [Cow<'_, str>; 12] {
        [
            Cow::Owned(self.record_id.to_string()),
            Cow::Owned(self.receipt_id.to_string()),
            Cow::Borrowed(&self.category),
            Cow::Owned(self.schema_version.to_string()),
            Cow::Borrowed(&self.period),
            Cow::Borrowed(&self.classification),
            Cow::Borrowed(self.priority),
            Cow::Borrowed(&self.form),
            Cow::Borrowed(&self.method),
            Cow::Borrowed(&self.status),
            Cow::Owned(received_text(&self.received_at)),
            Cow::Borrowed(self.payload.get()),
        ]
    }
}

/// The columns read from `records` (not the keyed hashes).
#[derive(Debug, FromQueryResult)]
struct Row {
    id: Uuid,
    org_id: Uuid,
    receipt_id: Uuid,
    category: String,
    schema_version: i32,
    period: String,
    classification: String,
    priority: i16,
    form: String,
    method: String,
    status: String,
    received_at: DateTime<Utc>,
    payload: Vec<u8>,
}

/// The pages of one export, read lazily.
#[derive(Debug)]
pub struct RecordPages {
    db: DatabaseConnection,
    keys: KeyManager,
    scope: OrgScope,
    params: ExportParams,
    /// Records received after this instant (the export's start) are not part of it, so a long
    /// export is a stable picture and always ends.
    until: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid)>,
    done: bool,
}

impl RecordPages {
    /// The records of the organisations within `scope` matching `params`, received up to
    /// `until`.
    pub fn new(
        db: DatabaseConnection,
        keys: KeyManager,
        scope: OrgScope,
        params: ExportParams,
        until: DateTime<Utc>,
    ) -> Self {
        Self {
            db,
            keys,
            scope,
            params,
            until,
            after: None,
            done: false,
        }
    }

    fn query(&self) -> Select<record::Entity> {
        let p = &self.params;
        let mut q = record::Entity::find()
            .filter(crate::store::org_replica(&self.db).condition(record::Column::OrgId, self.scope))
            .filter(record::Column::ReceivedAt.lte(self.until));
        if let Some(c) = p.category {
            q = q.filter(record::Column::Category.eq(c.as_str()));
        }
        if let Some(period) = p.period {
            q = q.filter(record::Column::Period.eq(period.to_string()));
        }
        if let Some(s) = p.status {
            q = q.filter(record::Column::Status.eq(s));
        }
        if let Some(t) = p.from {
            q = q.filter(record::Column::ReceivedAt.gte(t));
        }
        if let Some(t) = p.to {
            q = q.filter(record::Column::ReceivedAt.lt(t));
        }
        if p.clearance < Classification::Secret {
            let readable = Classification::ALL
                .into_iter()
                .filter(|c| *c <= p.clearance)
                .map(Classification::as_str);
            q = q.filter(record::Column::Classification.is_in(readable));
        }
        q
    }

    /// How many records the export holds.
    pub async fn count(&self) -> Result<u64, ExportError> {
        Ok(self.query().count(&self.db).await?)
    }

    /// The next page, decrypted; `None` once every record was returned.
    pub async fn next_page(&mut self) -> Result<Option<Vec<ExportRecord>>, ExportError> {
        if self.done {
            return Ok(None);
        }
        let mut q = self.query();
        if let Some((t, id)) = self.after {
            q = q.filter(
                Condition::any().add(record::Column::ReceivedAt.gt(t)).add(
                    Condition::all()
                        .add(record::Column::ReceivedAt.eq(t))
                        .add(record::Column::Id.gt(id)),
                ),
            );
        }
        let rows = q
            .select_only()
            .columns([
                record::Column::Id,
                record::Column::OrgId,
                record::Column::ReceiptId,
                record::Column::Category,
                record::Column::SchemaVersion,
                record::Column::Period,
                record::Column::Classification,
                record::Column::Priority,
                record::Column::Form,
                record::Column::Method,
                record::Column::Status,
                record::Column::ReceivedAt,
                record::Column::Payload,
            ])
            .order_by_asc(record::Column::ReceivedAt)
            .order_by_asc(record::Column::Id)
            .limit(PAGE_ROWS)
            .into_model::<Row>()
            .all(&self.db)
            .await?;
        if (rows.len() as u64) < PAGE_ROWS {
            self.done = true;
        }
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        self.after = Some((last.received_at, last.id));
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.decrypt(row).await?);
        }
        Ok(Some(out))
    }

    async fn decrypt(&self, row: Row) -> Result<ExportRecord, ExportError> {
        let id = row.id;
        let bad = |reason: String| ExportError::Record { id, reason };
        let aad = Aad {
            org_id: row.org_id,
            record_id: row.id,
        };
        let plain = self
            .keys
            .decrypt(&aad, &row.payload)
            .await
            .map_err(|e| bad(format!("cannot decrypt: {e}")))?;
        let text = String::from_utf8(plain).map_err(|_| bad("payload is not UTF-8".into()))?;
        let payload = RawValue::from_string(text).map_err(|_| bad("payload is not JSON".into()))?;
        Ok(ExportRecord {
            record_id: row.id,
            receipt_id: row.receipt_id,
            category: row.category,
            schema_version: u16::try_from(row.schema_version)
                .map_err(|_| bad("schema version out of range".into()))?,
            period: row.period,
            classification: row.classification,
            priority: u8::try_from(row.priority)
                .ok()
                .and_then(Priority::from_rank)
                .map(Priority::as_str)
                .ok_or_else(|| bad("unknown priority rank".into()))?,
            form: row.form,
            method: row.method,
            status: row.status,
            received_at: row.received_at,
            payload,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A record for encoder tests.
    pub fn sample(payload: &str) -> ExportRecord {
        ExportRecord {
            record_id: Uuid::nil(),
            receipt_id: Uuid::max(),
            category: "statistics".into(),
            schema_version: 1,
            period: "2026-10".into(),
            classification: "internal".into(),
            priority: "normal",
            form: "raw".into(),
            method: "realtime".into(),
            status: "received".into(),
            received_at: DateTime::parse_from_rfc3339("2026-10-05T01:02:03.5Z")
                .unwrap()
                .with_timezone(&Utc),
            payload: RawValue::from_string(payload.to_owned()).unwrap(),
        }
    }

    #[test]
    fn cells_follow_the_column_order() {
        let r = sample(r#"{"note":"Hà Nội"}"#);
        let cells = r.cells();
        assert_eq!(cells.len(), COLUMNS.len());
        assert_eq!(cells[0], "00000000-0000-0000-0000-000000000000");
        assert_eq!(cells[3], "1");
        assert_eq!(cells[6], "normal");
        assert_eq!(cells[10], "2026-10-05T01:02:03.500Z");
        assert_eq!(cells[11], r#"{"note":"Hà Nội"}"#);
    }

    #[test]
    fn json_keys_follow_the_column_order() {
        let v = serde_json::to_string(&sample(r#"{"a":1}"#)).unwrap();
        let mut at = 0;
        for c in COLUMNS {
            let i = v[at..].find(&format!("\"{c}\":")).map(|i| i + at);
            assert!(i.is_some(), "{c} missing or out of order in {v}");
            at = i.unwrap_or(at);
        }
        assert!(v.ends_with(r#""payload":{"a":1}}"#), "{v}");
    }
}
