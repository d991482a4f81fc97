//! Builders of incoming records for the unit tests.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use etx_domain::{Category, Form, OrgId, OrgKind, Period, ReceiptId, RecordId, SchemaVersion, SystemId};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::record::{IncomingRecord, MatchTokens, ProvinceCode, SourceRef};

/// A source organisation of a given kind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Org {
    pub id: OrgId,
    pub kind: OrgKind,
    pub system: SystemId,
}

impl Org {
    pub fn new(kind: OrgKind) -> Self {
        Self {
            id: OrgId::new(),
            kind,
            system: SystemId::new(),
        }
    }
}

/// 1 November 2026 at `hour`:00 UTC plus `day − 1` days.
pub(crate) fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

static SEQ: AtomicU64 = AtomicU64::new(1);

/// A fresh record id whose UUIDv7 timestamp is `ms`, as ingestion would give a record received
/// then.
pub(crate) fn rid(ms: u64) -> RecordId {
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = 0x70;
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    b[8..].copy_from_slice(&((0x80u64 << 56) | seq).to_be_bytes());
    RecordId::from_uuid(Uuid::from_bytes(b))
}

pub(crate) fn record(
    org: Org,
    category: Category,
    period: &str,
    payload: Value,
    tokens: MatchTokens,
    received_at: DateTime<Utc>,
) -> IncomingRecord {
    let ms = u64::try_from(received_at.timestamp_millis()).unwrap();
    IncomingRecord {
        record_id: rid(ms),
        source: SourceRef {
            org_id: org.id,
            org_kind: org.kind,
            system_id: org.system,
            receipt_id: ReceiptId::new(),
        },
        category,
        schema_version: SchemaVersion::V1,
        period: Period::parse(period).unwrap(),
        received_at,
        masking_policy_version: 1,
        form: Form::Raw,
        content: IncomingRecord::content_of(&payload, &tokens),
        payload,
        match_tokens: tokens,
        reporter_territory: None,
    }
}

pub(crate) fn with_territory(mut r: IncomingRecord, code: &str) -> IncomingRecord {
    r.reporter_territory = Some(ProvinceCode::parse(code).unwrap());
    r
}

/// E-invoice count of a province for October 2026.
pub(crate) fn einvoices(province: &str, value: f64) -> Value {
    json!({
        "indicator": "transaction_count", "transaction_kind": "e_invoice", "value": value,
        "unit": "count", "source_type": "reported",
        "dimensions": {"province_code": province, "channel": "api"}
    })
}

pub(crate) fn stat(org: Org, payload: Value, received_at: DateTime<Utc>) -> IncomingRecord {
    record(
        org,
        Category::Statistics,
        "2026-10",
        payload,
        MatchTokens::new(),
        received_at,
    )
}

/// The HCMC digital-signature course (contracts/examples/records/workforce/01…).
pub(crate) fn course(title: &str, organiser: &str, participants: u32) -> Value {
    json!({
        "activity_type": "training_course",
        "title": title,
        "organiser": organiser,
        "start_date": "2026-09-08",
        "end_date": "2026-09-12",
        "delivery_mode": "blended",
        "participants_count": participants,
        "location_province_code": "79"
    })
}

pub(crate) fn work(org: Org, payload: Value, received_at: DateTime<Utc>) -> IncomingRecord {
    record(
        org,
        Category::Workforce,
        "2026-09",
        payload,
        MatchTokens::new(),
        received_at,
    )
}

/// The e-contract complaint (contracts/examples/records/enforcement/02…), masked.
pub(crate) fn complaint(number: &str, handling_body: &str, subject: &str) -> Value {
    json!({
        "case_type": "complaint",
        "case_number": number,
        "opened_on": "2026-10-07",
        "status": "under_review",
        "handling_body": handling_body,
        "subject_organisation": subject,
        "subject_tax_code": "*******543",
        "complainant": {"full_name": "T** V** H***", "citizen_id": "[CCCD]"},
        "description": "Khiếu nại việc hợp đồng điện tử được ký mà không có xác nhận của người ký.",
        "legal_basis": ["Luật Giao dịch điện tử số 20/2023/QH15"]
    })
}

pub(crate) fn case(
    org: Org,
    payload: Value,
    tokens: MatchTokens,
    received_at: DateTime<Utc>,
) -> IncomingRecord {
    record(
        org,
        Category::Enforcement,
        "2026-10",
        payload,
        tokens,
        received_at,
    )
}
