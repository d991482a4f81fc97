//! The messages of the masking stage, metadata only (R-SEC-10: no clear personal data travels
//! through the queue): the `records.received` announcements it reads (written by ingestion), and
//! the `records.masked` announcements and `events.masking` events it writes through the outbox.

use chrono::{DateTime, Utc};
use etx_domain::{
    Category, Classification, Form, OrgId, Period, Priority, ReceiptId, RecordId, SchemaVersion, SystemId,
};
use etx_storage::OutboxEntry;
use serde::Deserialize;
use serde_json::json;

use crate::mask::Masking;
use crate::model::HeldFinding;
use crate::{MASKING_EVENTS, RECORDS_MASKED};

/// Most records one `records.masked` message announces (as ingestion's announcements).
const RECORDS_PER_MESSAGE: usize = 500;

/// Who sent a group of records: one `records.masked` message per submission and priority.
type Submission = (OrgId, SystemId, ReceiptId);

/// A `records.received` message: the records one submission (or batch group) stored, of one
/// priority. Unknown members are ignored, so ingestion may add some.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub(crate) struct Announcement {
    pub org_id: OrgId,
    pub system_id: SystemId,
    pub receipt_id: ReceiptId,
    pub records: Vec<AnnouncedRecord>,
}

/// One record of an announcement. Only the id is used: the envelope is read again from the
/// record store, which is authoritative; the other members are checked for shape only (so a
/// message that is not ingestion's is refused, not half-understood).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[allow(dead_code)] // read by serde for the shape check only
pub(crate) struct AnnouncedRecord {
    pub record_id: RecordId,
    pub category: Category,
    pub schema_version: u16,
    pub period: Period,
    pub classification: Classification,
    pub priority: Priority,
    pub form: Form,
}

impl Announcement {
    /// Parses a `records.received` body.
    ///
    /// # Errors
    /// The reason the message can never be handled, precise enough for an operator reading
    /// the dead letter (what is wrong, and where).
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            return Err(format!("the records.received body is not JSON: {e}"));
        }
        let a: Self = serde_json::from_slice(body)
            .map_err(|e| format!("the records.received body is not an announcement: {e}"))?;
        if let Some(i) = a.records.iter().position(|r| r.schema_version == 0) {
            return Err(format!(
                "the records.received body is not an announcement: records[{i}].schema_version is 0 (versions start at 1)"
            ));
        }
        Ok(a)
    }
}

/// A record ready to be stored: its envelope and provenance, as the record store has them, and
/// what masking made of it.
#[derive(Debug, Clone)]
pub(crate) struct NewMaskedRecord {
    pub record_id: RecordId,
    pub org_id: OrgId,
    pub system_id: SystemId,
    pub receipt_id: ReceiptId,
    pub category: Category,
    pub schema_version: SchemaVersion,
    pub period: Period,
    pub classification: Classification,
    pub priority: Priority,
    pub form: Form,
    pub policy_version: u32,
    pub received_at: DateTime<Utc>,
    pub masking: Masking,
}

impl NewMaskedRecord {
    /// The findings of a held record.
    pub fn findings(&self) -> Option<&[HeldFinding]> {
        match &self.masking {
            Masking::Held { findings } => Some(findings),
            Masking::Masked { .. } => None,
        }
    }
}

/// The outbox entries for newly stored records:
/// * on `records.masked`, the masked ones, one message per submission (receipt) and priority,
///   higher priority first (R-DATA-2), of up to 500 records, keyed by the first record's id:
///
///   ```json
///   {"org_id": "…", "system_id": "…", "receipt_id": "…",
///    "records": [{"record_id": "…", "category": "workforce", "schema_version": 1,
///                 "period": "2026-10", "classification": "internal", "priority": "normal",
///                 "form": "raw", "policy_version": 1}]}
///   ```
/// * on `events.masking`, one `record_held` event per held record, keyed by its id, with the
///   places and kinds of the findings (never the values):
///
///   ```json
///   {"kind": "record_held", "record_id": "…", "org_id": "…", "system_id": "…",
///    "receipt_id": "…", "category": "workforce", "form": "masked", "policy_version": 1,
///    "findings": [{"pointer": "/expert/citizen_id", "kind": "citizen_id"}]}
///   ```
pub(crate) fn outbox_entries(fresh: &[&NewMaskedRecord]) -> Vec<OutboxEntry> {
    let mut out = Vec::new();
    for priority in Priority::ALL {
        // Submissions in first-seen order.
        let mut groups: Vec<(Submission, Vec<&NewMaskedRecord>)> = Vec::new();
        for r in fresh
            .iter()
            .filter(|r| r.priority == priority && r.findings().is_none())
        {
            let key = (r.org_id, r.system_id, r.receipt_id);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, rs)) => rs.push(r),
                None => groups.push((key, vec![r])),
            }
        }
        for ((org_id, system_id, receipt_id), recs) in groups {
            for chunk in recs.chunks(RECORDS_PER_MESSAGE) {
                let records: Vec<serde_json::Value> = chunk
                    .iter()
                    .map(|r| {
                        json!({
                            "record_id": r.record_id,
                            "category": r.category,
                            "schema_version": r.schema_version.number(),
                            "period": r.period.to_string(),
                            "classification": r.classification,
                            "priority": r.priority,
                            "form": r.form,
                            "policy_version": r.policy_version,
                        })
                    })
                    .collect();
                let body = json!({
                    "org_id": org_id,
                    "system_id": system_id,
                    "receipt_id": receipt_id,
                    "records": records,
                });
                out.push(OutboxEntry {
                    stream: RECORDS_MASKED.into(),
                    key: chunk[0].record_id.to_string(),
                    priority,
                    headers: Default::default(),
                    body: serde_json::to_vec(&body).unwrap_or_default(),
                });
            }
        }
    }
    for r in fresh {
        let Some(findings) = r.findings() else {
            continue;
        };
        let body = json!({
            "kind": "record_held",
            "record_id": r.record_id,
            "org_id": r.org_id,
            "system_id": r.system_id,
            "receipt_id": r.receipt_id,
            "category": r.category,
            "form": r.form,
            "policy_version": r.policy_version,
            "findings": findings,
        });
        out.push(OutboxEntry {
            stream: MASKING_EVENTS.into(),
            key: r.record_id.to_string(),
            priority: r.priority,
            headers: Default::default(),
            body: serde_json::to_vec(&body).unwrap_or_default(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use etx_masking_core::FindingKind;
    use std::collections::BTreeMap;

    fn ingestion_body() -> serde_json::Value {
        json!({
            "org_id": OrgId::new(), "system_id": SystemId::new(), "receipt_id": ReceiptId::new(),
            "method": "realtime", "received_at": Utc::now(),
            "records": [{"record_id": RecordId::new(), "category": "statistics",
                         "schema_version": 1, "period": "2026-10", "classification": "internal",
                         "priority": "normal", "form": "raw"}]
        })
    }

    #[test]
    fn ingestion_announcements_parse() {
        let a = Announcement::parse(&serde_json::to_vec(&ingestion_body()).unwrap()).unwrap();
        assert_eq!(a.records.len(), 1);
        assert_eq!(a.records[0].category, Category::Statistics);
    }

    #[test]
    fn malformed_announcements_are_refused_with_what_and_where() {
        let not_json = Announcement::parse(b"{\"org_id\": ").unwrap_err();
        assert!(
            not_json.starts_with("the records.received body is not JSON: EOF while parsing"),
            "{not_json}"
        );
        let mut missing = ingestion_body();
        missing.as_object_mut().unwrap().remove("records");
        let e = Announcement::parse(&serde_json::to_vec(&missing).unwrap()).unwrap_err();
        assert!(e.contains("missing field `records`"), "{e}");
        let mut bad = ingestion_body();
        bad["records"][0]["category"] = json!("recipes");
        let e = Announcement::parse(&serde_json::to_vec(&bad).unwrap()).unwrap_err();
        assert!(
            e.contains("unknown variant `recipes`") && e.contains("line 1"),
            "{e}"
        );
        let mut zero = ingestion_body();
        zero["records"][0]["schema_version"] = json!(0);
        let e = Announcement::parse(&serde_json::to_vec(&zero).unwrap()).unwrap_err();
        assert!(e.contains("records[0].schema_version is 0"), "{e}");
    }

    fn rec(receipt: ReceiptId, priority: Priority, masking: Masking) -> NewMaskedRecord {
        NewMaskedRecord {
            record_id: RecordId::new(),
            org_id: OrgId::from_uuid(uuid::Uuid::nil()),
            system_id: SystemId::from_uuid(uuid::Uuid::nil()),
            receipt_id: receipt,
            category: Category::Workforce,
            schema_version: SchemaVersion::V1,
            period: Period::parse("2026-10").unwrap(),
            classification: Classification::Internal,
            priority,
            form: Form::Raw,
            policy_version: 1,
            received_at: Utc::now(),
            masking,
        }
    }

    #[test]
    fn masked_records_are_announced_per_submission_and_priority_high_first_and_held_ones_as_events() {
        let masked = || Masking::Masked {
            payload: json!({}),
            match_tokens: BTreeMap::new(),
        };
        let (r1, r2) = (ReceiptId::new(), ReceiptId::new());
        let recs = [
            rec(r1, Priority::Normal, masked()),
            rec(r1, Priority::High, masked()),
            rec(r2, Priority::Normal, masked()),
            rec(r1, Priority::Normal, masked()),
            rec(
                r1,
                Priority::High,
                Masking::Held {
                    findings: vec![HeldFinding {
                        pointer: "/a".into(),
                        kind: FindingKind::Phone,
                    }],
                },
            ),
        ];
        let refs: Vec<&NewMaskedRecord> = recs.iter().collect();
        let out = outbox_entries(&refs);
        let summary: Vec<(&str, Priority, usize)> = out
            .iter()
            .map(|e| {
                let body: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
                let n = body["records"].as_array().map_or(0, Vec::len);
                (e.stream.as_str(), e.priority, n)
            })
            .collect();
        assert_eq!(
            summary,
            [
                (RECORDS_MASKED, Priority::High, 1),
                (RECORDS_MASKED, Priority::Normal, 2),
                (RECORDS_MASKED, Priority::Normal, 1),
                (MASKING_EVENTS, Priority::High, 0),
            ]
        );
        assert_eq!(out[1].key, recs[0].record_id.to_string());
        let event: serde_json::Value = serde_json::from_slice(&out[3].body).unwrap();
        assert_eq!(event["kind"], "record_held");
        assert_eq!(event["findings"], json!([{"pointer": "/a", "kind": "phone"}]));
        let first: serde_json::Value = serde_json::from_slice(&out[0].body).unwrap();
        assert_eq!(first["records"][0]["policy_version"], 1);
        assert_eq!(first["records"][0]["schema_version"], 1);
        assert!(first["records"][0].get("payload").is_none());
    }
}
