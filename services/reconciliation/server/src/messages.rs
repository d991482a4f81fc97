//! The messages of the reconciliation stage, metadata only (R-SEC-10: no payload value travels
//! through the queue): the `records.masked` announcements it reads (written by masking), and the
//! `records.accepted` / `records.conflicts` messages it writes through the outbox in the same
//! transaction as each decision (R-AVAIL).

use etx_domain::{
    Category, Classification, Form, OrgId, Period, Priority, ReceiptId, RecordId, SchemaVersion, SystemId,
};
use etx_reconciliation_core::{CanonicalId, CanonicalRecord, Conflict, DecisionKind, Rule};
use etx_storage::OutboxEntry;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::{RECORDS_ACCEPTED, RECORDS_CONFLICTS};

/// A `records.masked` message: the masked records of one submission and priority. Unknown
/// members are ignored, so masking may add some.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MaskedAnnouncement {
    pub org_id: OrgId,
    pub system_id: SystemId,
    pub receipt_id: ReceiptId,
    pub records: Vec<AnnouncedRecord>,
}

/// One record of an announcement. The record itself is read through the `MaskedSource`; the
/// envelope announced here is checked against it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AnnouncedRecord {
    pub record_id: RecordId,
    pub category: Category,
    pub period: Period,
}

/// Where a message is wrong, and how — never what the wrong value is (a message that is not
/// masking's may carry anything).
fn wrong(path: &str, what: &str) -> String {
    format!("the records.masked body is not an announcement: `{path}` {what}")
}

fn member<'a>(obj: &'a Map<String, Value>, path: &str, name: &str) -> Result<&'a Value, String> {
    obj.get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| wrong(&format!("{path}{name}"), "is missing"))
}

fn string<'a>(obj: &'a Map<String, Value>, path: &str, name: &str) -> Result<&'a str, String> {
    member(obj, path, name)?
        .as_str()
        .ok_or_else(|| wrong(&format!("{path}{name}"), "must be a string"))
}

fn uuid_of(obj: &Map<String, Value>, path: &str, name: &str) -> Result<Uuid, String> {
    Uuid::parse_str(string(obj, path, name)?).map_err(|_| wrong(&format!("{path}{name}"), "is not a UUID"))
}

fn parsed<T, E>(
    obj: &Map<String, Value>,
    path: &str,
    name: &str,
    parse: impl Fn(&str) -> Result<T, E>,
    what: &str,
) -> Result<T, String> {
    parse(string(obj, path, name)?).map_err(|_| wrong(&format!("{path}{name}"), what))
}

fn unsigned(obj: &Map<String, Value>, path: &str, name: &str, min: u64, max: u64) -> Result<u64, String> {
    member(obj, path, name)?
        .as_u64()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            wrong(
                &format!("{path}{name}"),
                &format!("must be a whole number from {min} to {max}"),
            )
        })
}

impl MaskedAnnouncement {
    /// Parses a `records.masked` body (as masking's `outbox_entries` writes it).
    ///
    /// # Errors
    /// Why the message can never be handled, precise enough for an operator reading the dead
    /// letter (what is wrong and where), without quoting any value of the message.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        // A syntax error names its line and column, never the text around it.
        let doc: Value =
            serde_json::from_slice(body).map_err(|e| format!("the records.masked body is not JSON: {e}"))?;
        let obj = doc.as_object().ok_or_else(|| {
            "the records.masked body is not an announcement: it is not a JSON object".to_owned()
        })?;
        let org_id = OrgId::from_uuid(uuid_of(obj, "", "org_id")?);
        let system_id = SystemId::from_uuid(uuid_of(obj, "", "system_id")?);
        let receipt_id = ReceiptId::from_uuid(uuid_of(obj, "", "receipt_id")?);
        let items = member(obj, "", "records")?
            .as_array()
            .ok_or_else(|| wrong("records", "must be an array"))?;
        let mut records = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let path = format!("records[{i}].");
            let r = item
                .as_object()
                .ok_or_else(|| wrong(&format!("records[{i}]"), "must be an object"))?;
            let record_id = RecordId::from_uuid(uuid_of(r, &path, "record_id")?);
            let category = parsed(r, &path, "category", Category::parse, "is not a known category")?;
            let version = unsigned(r, &path, "schema_version", 1, u64::from(u16::MAX))?;
            SchemaVersion::parse(&version.to_string())
                .map_err(|_| wrong(&format!("{path}schema_version"), "is not a schema version"))?;
            let period = parsed(r, &path, "period", Period::parse, "is not a reporting period")?;
            parsed(
                r,
                &path,
                "classification",
                Classification::parse,
                "is not a known classification",
            )?;
            parsed(r, &path, "priority", Priority::parse, "is not a known priority")?;
            parsed(r, &path, "form", Form::parse, "is not a known form")?;
            unsigned(r, &path, "policy_version", 1, u64::from(u32::MAX))?;
            records.push(AnnouncedRecord {
                record_id,
                category,
                period,
            });
        }
        Ok(Self {
            org_id,
            system_id,
            receipt_id,
            records,
        })
    }
}

/// The `records.accepted` entry for `record`, linked to `canonical` (R-REC, R-DATA-3), keyed by
/// the record id (consumers dedupe by it):
///
/// ```json
/// {"record_id": "…", "canonical_id": "…", "decision": "merge", "rule": "fact_tolerance",
///  "retired": ["…"], "canonical_version": 2, "category": "statistics", "period": "2026-10",
///  "org_id": "…", "system_id": "…", "receipt_id": "…", "conflict_id": null}
/// ```
///
/// `retired` lists the canonical ids that now answer to `canonical_id` because this decision
/// renamed or merged them (a late, older record keeps the older id): a reader re-points them.
pub(crate) fn accepted(
    record: RecordId,
    kind: DecisionKind,
    canonical: &CanonicalRecord,
    retired: Option<CanonicalId>,
    conflict: Option<Uuid>,
    priority: Priority,
) -> OutboxEntry {
    let contribution = canonical.contribution(record);
    let rule: Option<Rule> = contribution.map(|c| c.rule);
    let body = json!({
        "record_id": record,
        "canonical_id": canonical.id,
        "decision": kind.as_str(),
        "rule": rule.map(Rule::as_str),
        "retired": retired.into_iter().collect::<Vec<_>>(),
        "canonical_version": canonical.version,
        "category": canonical.category,
        "period": canonical.period.to_string(),
        "org_id": contribution.map(|c| c.source.org_id),
        "system_id": contribution.map(|c| c.source.system_id),
        "receipt_id": contribution.map(|c| c.source.receipt_id),
        "conflict_id": conflict,
    });
    entry(RECORDS_ACCEPTED, record, priority, &body)
}

/// The `records.conflicts` entry announcing an opened conflict, keyed by its id; the fields that
/// differ are named, never their values:
///
/// ```json
/// {"event": "opened", "conflict_id": "…", "record_id": "…", "record_ids": ["…", "…"],
///  "canonical_id": "…", "reason": "values_disagree", "fields": ["value"],
///  "category": "statistics", "period": "2026-10", "org_id": "…"}
/// ```
pub(crate) fn conflict_opened(c: &Conflict, priority: Priority) -> OutboxEntry {
    let record_ids: Vec<RecordId> = c.versions().iter().map(|v| v.record_id).collect();
    let mut fields: Vec<&str> = c.differences.iter().map(|d| d.field.as_str()).collect();
    fields.sort_unstable();
    fields.dedup();
    let body = json!({
        "event": "opened",
        "conflict_id": c.id,
        "record_id": c.incoming.record_id,
        "record_ids": record_ids,
        "canonical_id": c.target.id,
        "reason": c.reason.as_str(),
        "fields": fields,
        "category": c.category,
        "period": c.period.to_string(),
        "org_id": c.incoming.source.org_id,
    });
    entry(RECORDS_CONFLICTS, c.incoming.record_id, priority, &body)
}

/// The `records.conflicts` entry announcing a resolution, keyed by the conflict's record:
///
/// ```json
/// {"event": "resolved", "conflict_id": "…", "record_id": "…", "action": "reject",
///  "canonical_id": "…", "reason": "values_disagree", "category": "statistics",
///  "period": "2026-10", "org_id": "…"}
/// ```
pub(crate) fn conflict_resolved(
    c: &Conflict,
    action: &str,
    canonical: CanonicalId,
    priority: Priority,
) -> OutboxEntry {
    let body = json!({
        "event": "resolved",
        "conflict_id": c.id,
        "record_id": c.incoming.record_id,
        "action": action,
        "canonical_id": canonical,
        "reason": c.reason.as_str(),
        "category": c.category,
        "period": c.period.to_string(),
        "org_id": c.incoming.source.org_id,
    });
    entry(RECORDS_CONFLICTS, c.incoming.record_id, priority, &body)
}

fn entry(stream: &str, key: RecordId, priority: Priority, body: &Value) -> OutboxEntry {
    OutboxEntry {
        stream: stream.into(),
        key: key.to_string(),
        priority,
        headers: Default::default(),
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A body exactly as masking's `outbox_entries` writes it.
    fn masking_body() -> Value {
        json!({
            "org_id": OrgId::new(), "system_id": SystemId::new(), "receipt_id": ReceiptId::new(),
            "records": [{"record_id": RecordId::new(), "category": "statistics", "schema_version": 1,
                         "period": "2026-10", "classification": "internal", "priority": "normal",
                         "form": "raw", "policy_version": 1}]
        })
    }

    fn parse(v: &Value) -> Result<MaskedAnnouncement, String> {
        MaskedAnnouncement::parse(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn masking_announcements_parse() {
        let body = masking_body();
        let a = parse(&body).unwrap();
        assert_eq!(a.records.len(), 1);
        assert_eq!(a.records[0].category, Category::Statistics);
        assert_eq!(a.records[0].period.to_string(), "2026-10");
        assert_eq!(a.org_id.to_string(), body["org_id"].as_str().unwrap());
        let mut extra = masking_body();
        extra["added_later"] = json!({"anything": 1});
        extra["records"][0]["also"] = json!(true);
        assert!(parse(&extra).is_ok(), "unknown members are ignored");
    }

    #[test]
    fn malformed_announcements_say_what_and_where_without_quoting_values() {
        let not_json = MaskedAnnouncement::parse(b"{\"org_id\": \"079190000123").unwrap_err();
        assert!(
            not_json.starts_with("the records.masked body is not JSON: EOF"),
            "{not_json}"
        );
        assert!(!not_json.contains("079190000123"), "{not_json}");

        let cases: [(&str, Value, &str); 8] = [
            ("/records", Value::Null, "`records` is missing"),
            ("/org_id", json!("079190000123"), "`org_id` is not a UUID"),
            (
                "/records/0/category",
                json!("0912345678"),
                "`records[0].category` is not a known category",
            ),
            (
                "/records/0/schema_version",
                json!(0),
                "`records[0].schema_version` must be a whole number from 1",
            ),
            (
                "/records/0/period",
                json!("Nguyễn Văn A"),
                "`records[0].period` is not a reporting period",
            ),
            (
                "/records/0/priority",
                json!(7),
                "`records[0].priority` must be a string",
            ),
            (
                "/records/0/policy_version",
                json!(-1),
                "`records[0].policy_version` must be a whole number",
            ),
            (
                "/records/0",
                json!("0100233488"),
                "`records[0]` must be an object",
            ),
        ];
        for (pointer, value, expected) in cases {
            let mut body = masking_body();
            *body.pointer_mut(pointer).unwrap() = value.clone();
            let e = parse(&body).unwrap_err();
            assert!(e.contains(expected), "{pointer}: {e}");
            if let Some(s) = value.as_str() {
                assert!(!e.contains(s), "{pointer} quoted its value: {e}");
            }
        }
        let e = parse(&json!([1, 2])).unwrap_err();
        assert!(e.ends_with("it is not a JSON object"), "{e}");
    }
}
