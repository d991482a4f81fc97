//! Odd and hostile payloads never make reconciliation panic (R-REC): every field of every
//! category is replaced, one at a time and in seeded random combinations, by values of the
//! wrong type, masked values, empty strings, huge numbers and strange text; reading either
//! succeeds or fails with a typed error, and deciding against a canonical record built from the
//! original never panics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{TimeZone, Utc};
use etx_domain::{Category, Form, OrgId, OrgKind, Period, ReceiptId, RecordId, SchemaVersion, SystemId};
use etx_reconciliation_core::{
    Context, Decision, IncomingRecord, MatchTokens, ReconcileConfig, Reconciler, SourceRef,
};
use serde_json::{Value, json};

fn samples() -> Vec<(Category, Value)> {
    vec![
        (
            Category::Statistics,
            json!({"indicator": "failed_transactions", "transaction_kind": "online_public_service",
                   "value": 444, "unit": "count",
                   "dimensions": {"province_code": "01", "channel": "web"},
                   "failure_reasons": [{"reason_code": "timeout", "count": 312}]}),
        ),
        (
            Category::Policy,
            json!({"document_type": "legal_document", "document_number": "20/2023/QH15",
                   "title": "Luật Giao dịch điện tử", "issuing_body": "Quốc hội",
                   "issued_on": "2023-06-22", "status": "in_force"}),
        ),
        (
            Category::Workforce,
            json!({"activity_type": "training_course", "title": "Tập huấn hợp đồng điện tử",
                   "organiser": "Sở Khoa học và Công nghệ tỉnh Gia Lai", "start_date": "2026-05-14",
                   "end_date": "2026-05-14", "participants_count": 350, "location_province_code": "52"}),
        ),
        (
            Category::Enforcement,
            json!({"case_type": "incident_report", "case_number": "SC-2026-017", "opened_on": "2026-10-02",
                   "status": "resolved", "description": "Tấn công từ chối dịch vụ vào cổng thanh toán",
                   "subject_organisation": "Công ty Cổ phần Thanh toán Số (giả định)",
                   "incident": {"system_name": "Cổng thanh toán", "detected_at": "2026-10-02T08:15:00+07:00",
                                "severity": "high", "affected_users": 12000}}),
        ),
    ]
}

fn odd_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(-1),
        json!(1e308),
        json!(0.1),
        json!(""),
        json!("   "),
        json!("********2345"),
        json!("[REDACTED]"),
        json!("tok_abcdefghijklmnopqrstuvwa"),
        json!("2026-02-30"),
        json!("Ω\u{0}\u{202e}𝔘𝔫𝔦"),
        json!("x".repeat(10_000)),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"a": {"b": [1]}}),
    ]
}

/// A tiny seeded generator (xorshift), so failures are reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[usize::try_from(self.next() % xs.len() as u64).unwrap()].clone()
    }
}

fn record(category: Category, payload: Value, tokens: MatchTokens) -> IncomingRecord {
    IncomingRecord {
        record_id: RecordId::new(),
        source: SourceRef {
            org_id: OrgId::new(),
            org_kind: OrgKind::Province,
            system_id: SystemId::new(),
            receipt_id: ReceiptId::new(),
        },
        category,
        schema_version: SchemaVersion::V1,
        period: Period::parse("2026-10").unwrap(),
        received_at: Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap(),
        masking_policy_version: 1,
        form: Form::Masked,
        content: IncomingRecord::content_of(&payload, &tokens),
        payload,
        match_tokens: tokens,
        reporter_territory: None,
    }
}

/// Every JSON pointer of `v`'s members, depth first.
fn pointers(v: &Value, at: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = v {
        for (k, child) in map {
            let p = format!("{at}/{k}");
            out.push(p.clone());
            pointers(child, &p, out);
        }
    }
}

fn try_decide(engine: &Reconciler, base: &IncomingRecord, odd: IncomingRecord) {
    let Ok(original) = engine.prepare(base.clone()) else {
        return;
    };
    let Ok(Decision::NewCanonical(founded)) = engine.decide(&original, &Context::default(), Utc::now())
    else {
        panic!("the sample itself must found a canonical record");
    };
    let candidates = [founded.canonical];
    if let Ok(prepared) = engine.prepare(odd) {
        let ctx = Context {
            candidates: &candidates,
            ..Context::default()
        };
        let _ = engine.decide(&prepared, &ctx, Utc::now());
    }
}

#[test]
fn every_field_replaced_by_an_odd_value_is_handled() {
    let engine = Reconciler::new(ReconcileConfig::default()).unwrap();
    for (category, payload) in samples() {
        let base = record(category, payload.clone(), MatchTokens::new());
        let mut ptrs = Vec::new();
        pointers(&payload, "", &mut ptrs);
        for ptr in &ptrs {
            for odd in odd_values() {
                let mut p = payload.clone();
                *p.pointer_mut(ptr).unwrap() = odd;
                try_decide(&engine, &base, record(category, p, MatchTokens::new()));
            }
        }
        for odd in odd_values() {
            try_decide(&engine, &base, record(category, odd, MatchTokens::new()));
        }
    }
}

#[test]
fn seeded_random_combinations_never_panic() {
    let engine = Reconciler::new(ReconcileConfig::default()).unwrap();
    let mut rng = Rng(0x5eed_2026_1107);
    let odd = odd_values();
    let samples = samples();
    for _ in 0..2_000 {
        let (category, payload) = rng.pick(&samples);
        let mut ptrs = Vec::new();
        pointers(&payload, "", &mut ptrs);
        let mut p = payload.clone();
        for _ in 0..3 {
            let ptr = rng.pick(&ptrs);
            if let Some(slot) = p.pointer_mut(&ptr) {
                *slot = rng.pick(&odd);
            }
        }
        let tokens = if rng.next().is_multiple_of(2) {
            MatchTokens::from_pairs([("/subject_tax_code", "h-1"), ("/expert/citizen_id", "h-2")]).unwrap()
        } else {
            MatchTokens::new()
        };
        let base = record(category, payload, MatchTokens::new());
        try_decide(&engine, &base, record(category, p, tokens));
    }
}
