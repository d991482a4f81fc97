//! The reconciliation service over the in-memory store (R-REC, R-DATA-3): stable canonical ids
//! whatever the order records arrive in, idempotent redelivery, held periods, the conflict
//! queue with remembered rejections, and retries on concurrent changes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use etx_domain::{
    Category, Form, OrgId, OrgKind, Period, ReceiptId, RecordId, SchemaVersion, SystemId, UserId,
};
use etx_reconciliation_core::{
    ApprovalScope, CandidateQuery, CanonicalId, CanonicalRecord, Conflict, ConflictFilter, ConflictId,
    ConflictStore, Decision, DecisionKind, DecisionMemory, DecisionSummary, IncomingRecord, MatchTokens,
    MemoryStore, PeriodApproval, PeriodApprovals, PeriodKey, Reason, ReconcileConfig, ReconcileError,
    Reconciled, Reconciler, ReconciliationService, ReconciliationStore, RejectedPair, ResolutionChoice,
    Resolved, Role, Rule, SaveError, SourceKey, SourceRef, StoreError,
};
use serde_json::{Value, json};
use uuid::Uuid;

// --- fixtures -----------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct Org {
    id: OrgId,
    kind: OrgKind,
    system: SystemId,
}

fn org(kind: OrgKind) -> Org {
    Org {
        id: OrgId::new(),
        kind,
        system: SystemId::new(),
    }
}

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

static SEQ: AtomicU64 = AtomicU64::new(1);

/// A record id as ingestion gives it: UUIDv7 of the receipt time.
fn rid(t: DateTime<Utc>) -> RecordId {
    let ms = u64::try_from(t.timestamp_millis()).unwrap();
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = 0x70;
    b[8..].copy_from_slice(&((0x80u64 << 56) | SEQ.fetch_add(1, Ordering::Relaxed)).to_be_bytes());
    RecordId::from_uuid(Uuid::from_bytes(b))
}

fn record(
    o: Org,
    category: Category,
    period: &str,
    payload: Value,
    received_at: DateTime<Utc>,
) -> IncomingRecord {
    let tokens = MatchTokens::new();
    IncomingRecord {
        record_id: rid(received_at),
        source: SourceRef {
            org_id: o.id,
            org_kind: o.kind,
            system_id: o.system,
            receipt_id: ReceiptId::new(),
        },
        category,
        schema_version: SchemaVersion::V1,
        period: Period::parse(period).unwrap(),
        received_at,
        masking_policy_version: 1,
        form: Form::Masked,
        content: IncomingRecord::content_of(&payload, &tokens),
        payload,
        match_tokens: tokens,
        reporter_territory: None,
    }
}

fn einvoices(province: &str, value: f64) -> Value {
    json!({
        "indicator": "transaction_count", "transaction_kind": "e_invoice", "value": value,
        "unit": "count", "dimensions": {"province_code": province, "channel": "api", "sector": "tax"}
    })
}

fn stat(o: Org, payload: Value, t: DateTime<Utc>) -> IncomingRecord {
    record(o, Category::Statistics, "2026-10", payload, t)
}

fn course(title: &str, organiser: &str) -> Value {
    json!({
        "activity_type": "training_course", "title": title, "organiser": organiser,
        "start_date": "2026-09-08", "end_date": "2026-09-12", "delivery_mode": "blended",
        "participants_count": 120, "trained_count": 114, "location_province_code": "79"
    })
}

fn service() -> ReconciliationService<MemoryStore> {
    ReconciliationService::new(
        MemoryStore::new(),
        Reconciler::new(ReconcileConfig::default()).unwrap(),
    )
}

fn now() -> DateTime<Utc> {
    at(25, 0)
}

async fn decided(s: &ReconciliationService<impl Store>, r: &IncomingRecord) -> Decision {
    match s.reconcile(r.clone(), now()).await.unwrap() {
        Reconciled::Decided(d) => *d,
        Reconciled::Replayed(sum) => panic!("replayed: {sum:?}"),
    }
}

trait Store: ReconciliationStore + ConflictStore + DecisionMemory + PeriodApprovals {}
impl<T: ReconciliationStore + ConflictStore + DecisionMemory + PeriodApprovals> Store for T {}

/// All permutations of `0..n` (Heap's algorithm).
fn permutations(n: usize) -> Vec<Vec<usize>> {
    fn go(k: usize, a: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if k <= 1 {
            out.push(a.clone());
            return;
        }
        for i in 0..k {
            go(k - 1, a, out);
            let j = if k.is_multiple_of(2) { i } else { 0 };
            a.swap(j, k - 1);
        }
    }
    let mut a: Vec<usize> = (0..n).collect();
    let mut out = Vec::new();
    go(n, &mut a, &mut out);
    out
}

/// What must not depend on arrival order: each record's live canonical record, and each
/// canonical record's value and contribution roles.
type Outcome = (
    BTreeMap<RecordId, CanonicalId>,
    BTreeMap<CanonicalId, (Value, BTreeMap<RecordId, Role>)>,
);

fn outcome(store: &MemoryStore) -> Outcome {
    let mut of_record = BTreeMap::new();
    let mut canonicals = BTreeMap::new();
    for c in store.live() {
        for x in &c.contributions {
            of_record.insert(x.record_id, c.id);
        }
        let roles = c.contributions.iter().map(|x| (x.record_id, x.role)).collect();
        canonicals.insert(c.id, (c.payload.clone(), roles));
    }
    (of_record, canonicals)
}

// --- stable ids -----------------------------------------------------------------------------

/// Seven records of two categories: agreeing, correcting, re-sent, and fuzzy-matching ones.
fn seven_records() -> [IncomingRecord; 7] {
    let hcm = org(OrgKind::Province);
    let ministry = org(OrgKind::Ministry);
    let hanoi = org(OrgKind::Province);
    let so = org(OrgKind::ProvincialDepartment);
    let cuc = org(OrgKind::Department);
    [
        stat(hcm, einvoices("79", 182_000_000.0), at(1, 8)),
        stat(ministry, einvoices("79", 182_300_000.0), at(2, 8)),
        // The city's correction, and the ministry's re-send of the same content.
        stat(hcm, einvoices("79", 182_100_000.0), at(3, 8)),
        stat(ministry, einvoices("79", 182_300_000.0), at(4, 8)),
        stat(hanoi, einvoices("01", 95_000_000.0), at(1, 9)),
        record(
            so,
            Category::Workforce,
            "2026-09",
            course(
                "Bồi dưỡng kiến thức về chữ ký số và dịch vụ tin cậy cho cán bộ, công chức cấp xã",
                "Sở Khoa học và Công nghệ Thành phố Hồ Chí Minh",
            ),
            at(2, 9),
        ),
        record(
            cuc,
            Category::Workforce,
            "2026-09",
            course(
                "BOI DUONG kien thuc ve chu ky so va dich vu tin cay cho can bo, cong chuc cap xa",
                "So KH&CN TP. HCM",
            ),
            at(3, 9),
        ),
    ]
}

#[tokio::test]
async fn canonical_ids_do_not_depend_on_the_order_records_arrive_in() {
    let records = seven_records();
    let mut seen: Option<Outcome> = None;
    let perms = permutations(records.len());
    assert_eq!(perms.len(), 5040);
    // Every 4th of the 7! orders (1260, Heap's order): every record comes first and last
    // many times, after and before every other one. All 5040 take four times as long.
    let sample: Vec<&Vec<usize>> = perms.iter().step_by(4).collect();
    for i in 0..records.len() {
        assert!(sample.iter().any(|p| p[0] == i) && sample.iter().any(|p| p[records.len() - 1] == i));
    }
    for perm in sample {
        let s = service();
        for &i in perm {
            let d = s.reconcile(records[i].clone(), now()).await.unwrap();
            assert_ne!(d.summary().kind, DecisionKind::Conflict, "{perm:?}");
        }
        let o = outcome(s.store());
        // Every retired id leads to a live one.
        for target in s.store().merged_into().values() {
            assert!(o.1.contains_key(target));
        }
        match &seen {
            None => seen = Some(o),
            Some(first) => assert_eq!(&o, first, "order {perm:?}"),
        }
    }
    let (of_record, canonicals) = seen.unwrap();
    assert_eq!(canonicals.len(), 3, "e-invoices 79, e-invoices 01, the course");
    // Each canonical record is named after its oldest record.
    assert_eq!(
        of_record[&records[1].record_id],
        CanonicalId::founded_by(records[0].record_id)
    );
    assert_eq!(
        of_record[&records[6].record_id],
        CanonicalId::founded_by(records[5].record_id)
    );
    let (value, roles) = &canonicals[&CanonicalId::founded_by(records[0].record_id)];
    assert_eq!(
        value["value"],
        json!(182_300_000.0),
        "the ministry's, by authority"
    );
    assert_eq!(
        roles[&records[0].record_id],
        Role::Superseded {
            by: records[2].record_id
        }
    );
    assert_eq!(
        roles[&records[3].record_id],
        Role::Duplicate {
            of: records[1].record_id
        }
    );
}

/// A batch (group commit) decides as the records one by one would, in any order and cut into
/// batches of any size, and a redelivered batch replays.
#[tokio::test]
async fn batches_decide_as_records_one_by_one_would() {
    let records = seven_records();
    let one_by_one = {
        let s = service();
        for r in &records {
            s.reconcile(r.clone(), now()).await.unwrap();
        }
        outcome(s.store())
    };
    for perm in permutations(records.len()).iter().step_by(97) {
        for size in [2, 3, 7] {
            let s = service();
            for chunk in perm.chunks(size) {
                let batch: Vec<IncomingRecord> = chunk.iter().map(|&i| records[i].clone()).collect();
                let out = s.reconcile_batch(batch, now()).await;
                assert!(out.grouped, "{perm:?} in batches of {size}");
                for (id, r) in out.results {
                    assert!(matches!(r, Ok(Reconciled::Decided(_))), "{id}: {r:?}");
                }
            }
            assert_eq!(outcome(s.store()), one_by_one, "{perm:?} in batches of {size}");
            let again = s.reconcile_batch(records.to_vec(), now()).await;
            assert!(
                again
                    .results
                    .iter()
                    .all(|(_, r)| matches!(r, Ok(Reconciled::Replayed(_)))),
                "redelivered"
            );
            assert_eq!(outcome(s.store()), one_by_one);
        }
    }
}

// --- idempotency, periods ---------------------------------------------------------------------

#[tokio::test]
async fn a_redelivered_record_is_replayed_and_nothing_is_written() {
    let s = service();
    let r = stat(org(OrgKind::Province), einvoices("79", 1.0), at(1, 8));
    let first = s.reconcile(r.clone(), now()).await.unwrap();
    let before = s.store().live();
    let again = s.reconcile(r, now()).await.unwrap();
    assert_eq!(again, Reconciled::Replayed(first.summary()));
    assert_eq!(s.store().live(), before);
}

#[tokio::test]
async fn an_approved_period_holds_records_until_it_is_reopened() {
    let s = service();
    let op = UserId::new();
    let key = PeriodKey {
        scope: ApprovalScope::All,
        category: Category::Statistics,
        period: Period::parse("2026-10").unwrap(),
    };
    let approved = s.approve_period(key, op, at(10, 0)).await.unwrap();
    assert!(approved.is_read_only());
    assert!(
        s.approve_period(key, op, at(10, 1)).await.is_err(),
        "already approved"
    );
    let r = stat(org(OrgKind::Province), einvoices("79", 1.0), at(11, 8));
    assert_eq!(decided(&s, &r).await.kind(), DecisionKind::Held);
    assert_eq!(s.store().held(&key).await.unwrap(), vec![r.record_id]);
    // Another period is not held.
    let november = record(
        org(OrgKind::Province),
        Category::Statistics,
        "2026-11",
        einvoices("79", 1.0),
        at(11, 9),
    );
    assert_eq!(decided(&s, &november).await.kind(), DecisionKind::NewCanonical);

    let reason = Reason::parse("Sở Tư pháp Hà Nội gửi bổ sung số liệu").unwrap();
    let reopened = s.reopen_period(key, op, reason, at(12, 0)).await.unwrap();
    assert_eq!(reopened.held, vec![r.record_id]);
    // The server reconciles the held records again: now they go through.
    assert_eq!(decided(&s, &r).await.kind(), DecisionKind::NewCanonical);
    assert!(s.store().held(&key).await.unwrap().is_empty());
}

// --- the conflict queue -----------------------------------------------------------------------

#[tokio::test]
async fn conflicts_are_listed_resolved_once_and_rejections_are_remembered() {
    let s = service();
    let hcm = org(OrgKind::Province);
    let ministry = org(OrgKind::Ministry);
    let city = stat(hcm, einvoices("79", 182_000_000.0), at(1, 8));
    decided(&s, &city).await;
    let national = stat(ministry, einvoices("79", 190_000_000.0), at(2, 8));
    let Decision::Conflict(conflict) = decided(&s, &national).await else {
        panic!("beyond tolerance");
    };
    let listed = s
        .store()
        .conflicts(&ConflictFilter {
            open_only: true,
            category: Some(Category::Statistics),
            limit: 10,
            ..ConflictFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), vec![conflict.id]);
    assert_eq!(listed[0].versions().len(), 2);
    let none = s
        .store()
        .conflicts(&ConflictFilter {
            category: Some(Category::Policy),
            limit: 10,
            ..ConflictFilter::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());

    let op = UserId::new();
    let resolved = s
        .resolve(
            conflict.id,
            ResolutionChoice::Reject,
            op,
            Some("Bộ tính cả hóa đơn không mã".into()),
            now(),
        )
        .await
        .unwrap();
    assert_eq!(resolved.canonical.id, CanonicalId::founded_by(national.record_id));
    assert!(
        s.resolve(conflict.id, ResolutionChoice::Reject, op, None, now())
            .await
            .is_err(),
        "no double resolution"
    );
    let summary = s.store().outcome(national.record_id).await.unwrap().unwrap();
    assert_eq!(summary.kind, DecisionKind::Resolved);
    // The ministry's next revision is never merged into the city's canonical record again;
    // it is a revision of its own canonical record.
    let revised = stat(ministry, einvoices("79", 182_000_000.0), at(3, 8));
    let d = decided(&s, &revised).await;
    assert_eq!(d.kind(), DecisionKind::Revision);
    assert_eq!(d.linked().unwrap().canonical.id, resolved.canonical.id);
    // Another source that agrees with the city still merges with it.
    let so = stat(
        org(OrgKind::ProvincialDepartment),
        einvoices("79", 182_100_000.0),
        at(4, 8),
    );
    let d = decided(&s, &so).await;
    assert_eq!(d.kind(), DecisionKind::Merge);
    assert_eq!(
        d.linked().unwrap().canonical.id,
        CanonicalId::founded_by(city.record_id)
    );
}

#[tokio::test]
async fn choosing_a_version_after_the_target_was_renamed_still_works() {
    let s = service();
    let city = stat(org(OrgKind::Province), einvoices("79", 182_000_000.0), at(2, 8));
    decided(&s, &city).await;
    let national = stat(org(OrgKind::Ministry), einvoices("79", 190_000_000.0), at(3, 8));
    let Decision::Conflict(conflict) = decided(&s, &national).await else {
        panic!("beyond tolerance");
    };
    // An older record of another source arrives: the canonical record takes its id.
    let older = stat(org(OrgKind::Commune), einvoices("79", 182_050_000.0), at(1, 8));
    let d = decided(&s, &older).await;
    assert_eq!(
        d.linked().unwrap().retired(),
        Some(CanonicalId::founded_by(city.record_id))
    );
    let r = s
        .resolve(
            conflict.id,
            ResolutionChoice::Choose {
                record: national.record_id,
            },
            UserId::new(),
            None,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(r.canonical.id, CanonicalId::founded_by(older.record_id));
    assert_eq!(r.canonical.payload["value"], json!(190_000_000.0));
    assert_eq!(r.canonical.contributions.len(), 3);
}

// --- concurrency ------------------------------------------------------------------------------

/// A store that fails the first `stale` decision saves as if another consumer had changed the
/// canonical record in between, optionally approving the period first.
struct Flaky {
    inner: MemoryStore,
    stale: AtomicUsize,
    approve_first: Option<PeriodKey>,
}

#[async_trait::async_trait]
impl ReconciliationStore for Flaky {
    async fn outcome(&self, record: RecordId) -> Result<Option<DecisionSummary>, StoreError> {
        self.inner.outcome(record).await
    }
    async fn candidates(&self, query: &CandidateQuery) -> Result<Vec<CanonicalRecord>, StoreError> {
        self.inner.candidates(query).await
    }
    async fn save_decision(&self, decision: &Decision) -> Result<(), SaveError> {
        if let Some(key) = self.approve_first
            && self.inner.approval(&key).await.unwrap().is_none()
        {
            let approved = PeriodApproval::open(key)
                .approve(UserId::new(), at(10, 0))
                .unwrap();
            self.inner.save_approval(&approved).await?;
        }
        if self
            .stale
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SaveError::Stale);
        }
        self.inner.save_decision(decision).await
    }
    async fn canonical(&self, id: CanonicalId) -> Result<Option<CanonicalRecord>, StoreError> {
        self.inner.canonical(id).await
    }
    async fn held(&self, key: &PeriodKey) -> Result<Vec<RecordId>, StoreError> {
        self.inner.held(key).await
    }
}

#[async_trait::async_trait]
impl ConflictStore for Flaky {
    async fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>, StoreError> {
        self.inner.conflict(id).await
    }
    async fn conflicts(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, StoreError> {
        self.inner.conflicts(filter).await
    }
    async fn save_resolution(&self, resolved: &Resolved) -> Result<(), SaveError> {
        self.inner.save_resolution(resolved).await
    }
}

#[async_trait::async_trait]
impl DecisionMemory for Flaky {
    async fn rejections(
        &self,
        record: RecordId,
        source_key: SourceKey,
    ) -> Result<Vec<RejectedPair>, StoreError> {
        self.inner.rejections(record, source_key).await
    }
}

#[async_trait::async_trait]
impl PeriodApprovals for Flaky {
    async fn covering(
        &self,
        org: OrgId,
        category: Category,
        period: Period,
    ) -> Result<Vec<PeriodApproval>, StoreError> {
        self.inner.covering(org, category, period).await
    }
    async fn approval(&self, key: &PeriodKey) -> Result<Option<PeriodApproval>, StoreError> {
        self.inner.approval(key).await
    }
    async fn save_approval(&self, approval: &PeriodApproval) -> Result<(), SaveError> {
        self.inner.save_approval(approval).await
    }
}

fn flaky(stale: usize, approve_first: Option<PeriodKey>) -> ReconciliationService<Flaky> {
    ReconciliationService::new(
        Flaky {
            inner: MemoryStore::new(),
            stale: AtomicUsize::new(stale),
            approve_first,
        },
        Reconciler::new(ReconcileConfig::default()).unwrap(),
    )
}

#[tokio::test]
async fn a_concurrent_change_makes_the_service_read_and_decide_again() {
    let s = flaky(2, None);
    let r = stat(org(OrgKind::Province), einvoices("79", 1.0), at(1, 8));
    assert_eq!(
        s.reconcile(r, now()).await.unwrap().summary().kind,
        DecisionKind::NewCanonical
    );
    let s = flaky(usize::MAX, None);
    let r = stat(org(OrgKind::Province), einvoices("79", 1.0), at(1, 8));
    assert!(matches!(s.reconcile(r, now()).await, Err(ReconcileError::Busy)));
}

#[tokio::test]
async fn a_period_approved_while_deciding_holds_the_record() {
    let key = PeriodKey {
        scope: ApprovalScope::All,
        category: Category::Statistics,
        period: Period::parse("2026-10").unwrap(),
    };
    let s = flaky(0, Some(key));
    let r = stat(org(OrgKind::Province), einvoices("79", 1.0), at(1, 8));
    assert_eq!(
        s.reconcile(r, now()).await.unwrap().summary().kind,
        DecisionKind::Held
    );
}

// --- the contract examples ----------------------------------------------------------------------

/// Every example record of `contracts/examples/records/<category>/`: (file, category, period,
/// payload).
fn examples() -> Vec<(String, Category, String, Value)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../contracts/examples/records");
    let mut out = Vec::new();
    for category in Category::ALL {
        let dir = root.join(category.as_str());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for p in files {
            let doc: Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            out.push((
                p.file_name().unwrap().to_string_lossy().into_owned(),
                category,
                doc["period"].as_str().unwrap().to_owned(),
                doc["payload"].clone(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn every_contract_example_is_reconciled_deduplicated_and_matched_across_sources() {
    let examples = examples();
    assert!(examples.len() >= 15, "{}", examples.len());
    let s = service();
    let mut kinds = BTreeMap::new();
    for (i, (name, category, period, payload)) in examples.iter().enumerate() {
        let day = u32::try_from(i % 20).unwrap() + 1;
        let (first, second, third) = (
            org(OrgKind::Province),
            org(OrgKind::Ministry),
            org(OrgKind::Province),
        );
        let a = record(first, *category, period, payload.clone(), at(day, 1));
        assert_eq!(decided(&s, &a).await.kind(), DecisionKind::NewCanonical, "{name}");
        // Re-sent by the same source: a duplicate.
        let again = record(first, *category, period, payload.clone(), at(day, 2));
        assert_eq!(
            decided(&s, &again).await.kind(),
            DecisionKind::Duplicate,
            "{name}"
        );
        // The same content from another organisation.
        let other = record(second, *category, period, payload.clone(), at(day, 3));
        let d = decided(&s, &other).await;
        kinds.insert(name.clone(), d.kind());
        // And from a third, once more (nothing may break with three sources).
        let third = record(third, *category, period, payload.clone(), at(day, 4));
        assert_ne!(decided(&s, &third).await.kind(), DecisionKind::Conflict, "{name}");
    }
    // Statistics about a province or a system, policy documents, cases and courses are the
    // same fact across sources; an expert registration without a token (its citizen id in
    // the example is raw, no token was computed) never is.
    for (name, kind) in &kinds {
        let expected = if name.contains("expert-registry") {
            DecisionKind::NewCanonical
        } else {
            DecisionKind::Merge
        };
        assert_eq!(*kind, expected, "{name}");
    }
    let rules: BTreeSet<Rule> = s
        .store()
        .live()
        .iter()
        .flat_map(|c| c.contributions.iter().map(|x| x.rule))
        .collect();
    assert!(
        rules.contains(&Rule::FactTolerance) && rules.contains(&Rule::FuzzyMatch),
        "{rules:?}"
    );
}
