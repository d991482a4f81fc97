//! The reconciliation stage end to end (issue 5 §4–5; R-REC, R-DATA-3, R-AVAIL):
//! `records.masked` announcements shaped exactly like masking's are published, the real
//! [`etx_queue::Consumer`] runs the reconciliation handler over a fake [`MaskedSource`], an
//! [`OutboxRelay`] publishes what it stores, and the tests read the module's API,
//! `records.accepted`, `records.conflicts` and the dead letters.
//!
//! Every case runs twice, each time in a place of its own: `sqlite::<case>` on a SQLite file with
//! the embedded queue in it (all-in-one), `postgres::<case>` on a fresh PostgreSQL database with
//! Redis Streams under a fresh key prefix (distributed). PostgreSQL and Redis are required: when
//! they are unreachable the tests fail loudly, they are never skipped. Waiting has a generous
//! timeout as its only failure condition; nothing asserts on wall-clock time.
//!
//! The fixtures' payloads carry a name in free text (which masking cannot recognise); every
//! case ends by checking that it appears in nothing the stage logged, and the provenance case
//! also searches the messages, the dead letters and the SQLite file (payloads are sealed).

// Test helpers outside `#[test]` functions: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use etx_domain::{
    Category, Form, OrgId, OrgKind, Period, Priority, ReceiptId, RecordId, SchemaVersion, SystemId, UserId,
};
use etx_queue::{ConsumerConfig, ConsumerHandle, Delivery, OutMessage, Queue};
use etx_reconciliation::{AppReconciliation, GROUP, RECORDS_ACCEPTED, RECORDS_CONFLICTS, RECORDS_MASKED};
use etx_reconciliation_core::{
    ApprovalScope, CanonicalId, ConflictFilter, ConflictId, DecisionKind, ExpectedSubmission, IncomingRecord,
    InputError, MaskedSource, MatchTokens, PeriodChangeError, PeriodKey, Reason, ReconcileConfig,
    ResolutionChoice, ResolveConflictError, ResolveError, Role, Rule, SourceRef, SubmissionStatus,
};
use etx_storage::{OutboxRelay, RelayHandle};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use support::{Backend, Place, TestVault, eventually};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------------------------
// The canary: a name in free text that masking cannot recognise, so it reaches reconciliation.
// ---------------------------------------------------------------------------------------------

const NAME: &str = "Nguyễn Thị Minh Thư";
const CANARIES: &[&str] = &[NAME, "Minh Thư", "Nguyen Thi Minh Thu"];

fn assert_no_canary(what: &str, text: &str) {
    for c in CANARIES {
        if let Some(at) = text.find(c) {
            let from = text.floor_char_boundary(at.saturating_sub(300));
            let to = text.ceil_char_boundary((at + c.len() + 300).min(text.len()));
            panic!("`{c}` appears in clear in {what}: …{}…", &text[from..to]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Logs: everything the process logs, at every level, is captured and searched.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        if std::env::var_os("ETX_TEST_LOG").is_some() {
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Installs (once per process) a global subscriber writing every event at TRACE into a buffer
/// (`ETX_TEST_LOG=1` also prints it).
fn logs() -> Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let writer = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init();
        logs
    })
    .clone()
}

// ---------------------------------------------------------------------------------------------
// The masked source: an in-memory fake of what the composition root joins.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct FakeSource {
    records: Mutex<HashMap<RecordId, IncomingRecord>>,
    /// Calls still to fail with `Unavailable`.
    unavailable: AtomicU32,
    /// The ids asked for, per call.
    calls: Mutex<Vec<Vec<RecordId>>>,
    /// Calls still to hold at [`FakeSource::barrier`] until as many others arrive: two
    /// consumers then decide at the same moment.
    gated: AtomicU32,
    barrier: OnceLock<tokio::sync::Barrier>,
}

impl FakeSource {
    fn add(&self, records: &[&IncomingRecord]) {
        let mut map = self.records.lock().unwrap();
        for r in records {
            map.insert(r.record_id, (*r).clone());
        }
    }

    fn calls(&self) -> Vec<Vec<RecordId>> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl MaskedSource for FakeSource {
    async fn fetch(&self, ids: &[RecordId]) -> Result<Vec<IncomingRecord>, InputError> {
        self.calls.lock().unwrap().push(ids.to_vec());
        let gated = self
            .gated
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if gated && let Some(barrier) = self.barrier.get() {
            barrier.wait().await;
        }
        let failing = self
            .unavailable
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(InputError::Unavailable("simulated outage".into()));
        }
        let map = self.records.lock().unwrap();
        Ok(ids.iter().filter_map(|id| map.get(id).cloned()).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Records and announcements
// ---------------------------------------------------------------------------------------------

/// 1 November 2026, `day`, at `hour`:00 UTC.
fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, hour, 0, 0).unwrap()
}

/// A reporting organisation with one system.
#[derive(Debug, Clone, Copy)]
struct Org {
    id: OrgId,
    kind: OrgKind,
    system: SystemId,
}

impl Org {
    fn new(kind: OrgKind) -> Self {
        Self {
            id: OrgId::new(),
            kind,
            system: SystemId::new(),
        }
    }

    /// One submission's record, as the composition root would build it from masking's copy.
    fn record(
        &self,
        category: Category,
        period: &str,
        payload: Value,
        received_at: DateTime<Utc>,
    ) -> IncomingRecord {
        let tokens = MatchTokens::new();
        IncomingRecord {
            record_id: RecordId::new(),
            source: SourceRef {
                org_id: self.id,
                org_kind: self.kind,
                system_id: self.system,
                receipt_id: ReceiptId::new(),
            },
            category,
            schema_version: SchemaVersion::V1,
            period: Period::parse(period).unwrap(),
            received_at,
            masking_policy_version: 3,
            form: Form::Raw,
            content: IncomingRecord::content_of(&payload, &tokens),
            payload,
            match_tokens: tokens,
            reporter_territory: None,
        }
    }

    fn stat(&self, payload: Value, received_at: DateTime<Utc>) -> IncomingRecord {
        self.record(Category::Statistics, "2026-10", payload, received_at)
    }
}

/// A statistics payload: `indicator` of e-invoices for province `province`, with a free-text
/// note naming a person (masking has no rule for it: it is what sealing protects).
fn einvoices(indicator: &str, province: &str, value: f64) -> Value {
    json!({
        "indicator": indicator, "transaction_kind": "e_invoice", "value": value, "unit": "count",
        "dimensions": {"province_code": province, "channel": "api"},
        "note": format!("Số liệu do {NAME} tổng hợp")
    })
}

/// The `records.masked` message masking's outbox publishes for `records` of one submission
/// (its `outbox_entries`): keyed by the first record's id.
fn masked_message(records: &[&IncomingRecord], priority: Priority) -> OutMessage {
    let first = records[0];
    let recs: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "record_id": r.record_id,
                "category": r.category,
                "schema_version": r.schema_version.number(),
                "period": r.period.to_string(),
                "classification": "internal",
                "priority": priority,
                "form": r.form,
                "policy_version": r.masking_policy_version,
            })
        })
        .collect();
    let body = json!({
        "org_id": first.source.org_id,
        "system_id": first.source.system_id,
        "receipt_id": first.source.receipt_id,
        "records": recs,
    });
    OutMessage {
        key: first.record_id.to_string(),
        priority,
        headers: Default::default(),
        body: serde_json::to_vec(&body).unwrap(),
    }
}

fn message(r: &IncomingRecord) -> OutMessage {
    masked_message(&[r], Priority::Normal)
}

// ---------------------------------------------------------------------------------------------
// The module running in a place
// ---------------------------------------------------------------------------------------------

/// The reconciliation module over a place, with its queue, relay and consumers.
struct Pipeline {
    db: DatabaseConnection,
    queue: Arc<dyn Queue>,
    app: AppReconciliation,
    source: Arc<FakeSource>,
    relay: Option<OutboxRelay>,
    relay_task: Option<(RelayHandle, JoinHandle<()>)>,
    consumers: Vec<(ConsumerHandle, JoinHandle<()>)>,
}

impl Pipeline {
    /// Builds the module (migrations included); neither consumer nor relay runs yet.
    async fn open(place: &Place) -> Self {
        let db = place.db.connect().await;
        let queue = place.queue(&db).await;
        let source = Arc::new(FakeSource::default());
        let relay = OutboxRelay::new(db.clone(), queue.clone());
        let app = AppReconciliation::build(
            db.clone(),
            source.clone(),
            Arc::new(TestVault::new()),
            ReconcileConfig::default(),
            Some(relay.handle()),
        )
        .await
        .unwrap();
        Self {
            db,
            queue,
            app,
            source,
            relay: Some(relay),
            relay_task: None,
            consumers: Vec::new(),
        }
    }

    /// Short waits so the cases stay fast; reclaims after half a second.
    fn config() -> ConsumerConfig {
        AppReconciliation::consumer_config()
            .with_block(Duration::from_millis(100))
            .with_backoff_max(Duration::from_millis(100))
            .with_min_idle(Duration::from_millis(500))
            .with_claim_every(Duration::from_millis(100))
            .with_max_attempts(20)
    }

    /// Starts the relay and one consumer.
    fn start(&mut self) -> ConsumerHandle {
        self.start_relay();
        self.start_consumer(Self::config())
    }

    fn start_consumer(&mut self, cfg: ConsumerConfig) -> ConsumerHandle {
        let (handle, join) = self.app.spawn_consumer(self.queue.clone(), cfg);
        self.consumers.push((handle.clone(), join));
        handle
    }

    fn start_relay(&mut self) {
        let relay = self.relay.take().expect("the relay runs already");
        self.relay_task = Some(relay.spawn(Duration::from_millis(50)));
    }

    async fn publish(&self, msgs: &[OutMessage]) {
        self.queue.publish(RECORDS_MASKED, msgs).await.unwrap();
    }

    /// Adds `records` to the source and publishes one message each, in this order.
    async fn submit(&self, records: &[&IncomingRecord]) {
        self.source.add(records);
        let msgs: Vec<OutMessage> = records.iter().map(|r| message(r)).collect();
        self.publish(&msgs).await;
    }

    /// Waits until the consumers have settled `deliveries` messages (acked or dead-lettered),
    /// the group has nothing pending, and the outbox is drained.
    async fn settled(&self, deliveries: u64) {
        eventually(
            &format!("{deliveries} deliveries settled and the outbox drained"),
            || async {
                let settled: u64 = self
                    .consumers
                    .iter()
                    .map(|(h, _)| h.processed() + h.dead_lettered())
                    .sum();
                settled >= deliveries
                    && self.consumers[0].0.lag().await.unwrap() == 0
                    && self.outbox_len().await == 0
            },
        )
        .await;
    }

    async fn outbox_len(&self) -> u64 {
        etx_storage::outbox::entity::Entity::find()
            .count(&self.db)
            .await
            .unwrap()
    }

    /// Waits until the outbox is drained (after a module call that writes it).
    async fn drained(&self) {
        eventually("the outbox drained", || async { self.outbox_len().await == 0 }).await;
    }

    /// Everything on `stream` not yet read by this test (its own consumer group).
    async fn read(&self, stream: &str) -> Vec<Delivery> {
        const OBSERVER: &str = "test-observer";
        self.queue.ensure_group(stream, OBSERVER).await.unwrap();
        let mut out = Vec::new();
        loop {
            let batch = self
                .queue
                .consume(stream, OBSERVER, "observer-1", 1000, Duration::from_millis(100))
                .await
                .unwrap();
            if batch.is_empty() {
                return out;
            }
            let ids: Vec<String> = batch.iter().map(|d| d.id.clone()).collect();
            self.queue.ack(stream, OBSERVER, &ids).await.unwrap();
            out.extend(batch);
        }
    }

    /// The bodies on `stream` not yet read, each checked for the canary.
    async fn bodies(&self, stream: &str) -> Vec<Value> {
        self.read(stream)
            .await
            .iter()
            .map(|d| {
                let text = String::from_utf8(d.body.clone()).unwrap();
                assert_no_canary(stream, &text);
                serde_json::from_str(&text).unwrap()
            })
            .collect()
    }

    /// The decision kind saved for `r`.
    async fn kind(&self, r: &IncomingRecord) -> Option<DecisionKind> {
        self.app.outcome(r.record_id).await.unwrap().map(|o| o.kind)
    }

    /// The live canonical record `r` is part of.
    async fn canonical_of(&self, r: &IncomingRecord) -> etx_reconciliation_core::CanonicalRecord {
        let o = self.app.outcome(r.record_id).await.unwrap().expect("decided");
        let id = o.canonical.expect("linked");
        self.app.canonical(id).await.unwrap().expect("live")
    }

    /// How many canonical records are live.
    async fn live_count(&self) -> usize {
        use etx_reconciliation::store::entities::canonical_record;
        use sea_orm::{ColumnTrait, QueryFilter};
        canonical_record::Entity::find()
            .filter(canonical_record::Column::MergedInto.is_null())
            .count(&self.db)
            .await
            .unwrap() as usize
    }

    async fn stop(mut self) {
        for (h, _) in &self.consumers {
            h.stop();
        }
        for (_, join) in self.consumers.drain(..) {
            tokio::time::timeout(Duration::from_secs(15), join)
                .await
                .expect("a consumer did not stop within 15 s")
                .expect("a consumer task panicked");
        }
        if let Some((handle, join)) = self.relay_task.take() {
            handle.stop();
            tokio::time::timeout(Duration::from_secs(15), join)
                .await
                .expect("the relay did not stop within 15 s")
                .expect("the relay task panicked");
        }
        let _ = self.db.close().await;
    }
}

/// `(record_id, decision)` of `records.accepted` bodies.
fn accepted_of(bodies: &[Value]) -> Vec<(RecordId, String)> {
    bodies
        .iter()
        .map(|b| {
            (
                b["record_id"].as_str().unwrap().parse().unwrap(),
                b["decision"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Runs `case` on a pipeline in a fresh place of `backend`, removes the place, re-raises any
/// panic, and finally checks that nothing logged carries the canary.
async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Pipeline, Arc<Place>, Backend) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let logs = logs();
    let place = Arc::new(Place::new(backend).await);
    let pipeline = Pipeline::open(&place).await;
    let outcome = tokio::spawn(case(pipeline, place.clone(), backend)).await;
    place.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
    let text = logs.text();
    assert!(!text.is_empty(), "the log capture saw nothing");
    assert_no_canary("the logs", &text);
}

/// Generates one `#[tokio::test]` per case and backend: `sqlite::<case>`, `postgres::<case>`.
macro_rules! per_backend {
    ($($case:ident),* $(,)?) => {
        per_backend!(@mod sqlite, Sqlite, $($case),*);
        per_backend!(@mod postgres, Postgres, $($case),*);
    };
    (@mod $module:ident, $backend:ident, $($case:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::run(super::Backend::$backend, super::cases::$case).await;
                }
            )*
        }
    };
}

per_backend!(
    an_exact_duplicate_makes_one_canonical_record,
    a_ministry_and_a_province_within_tolerance_make_one_canonical_record_with_full_provenance,
    values_beyond_tolerance_open_a_conflict_that_an_operator_chooses_merges_or_rejects_for_good,
    an_approved_period_holds_new_records_and_refuses_changes_until_reopened,
    replaying_the_messages_in_another_order_gives_the_same_canonical_ids,
    a_message_delivered_twice_to_racing_consumers_decides_and_announces_each_record_once,
    a_malformed_message_is_dead_lettered_with_a_precise_reason,
    records_are_retried_while_the_source_is_unavailable_and_then_decided,
    completeness_counts_every_record_received_per_organisation_and_period,
);

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

mod cases {
    use super::*;

    /// R-REC exact-key deduplication: a province re-sends the same content.
    pub async fn an_exact_duplicate_makes_one_canonical_record(
        mut p: Pipeline,
        _place: Arc<Place>,
        _b: Backend,
    ) {
        let hcm = Org::new(OrgKind::Province);
        let first = hcm.stat(einvoices("transaction_count", "79", 182_000_000.0), at(5, 8));
        let again = hcm.stat(einvoices("transaction_count", "79", 182_000_000.0), at(6, 8));
        p.submit(&[&first, &again]).await;
        p.start();
        p.settled(2).await;

        assert_eq!(p.kind(&first).await, Some(DecisionKind::NewCanonical));
        assert_eq!(p.kind(&again).await, Some(DecisionKind::Duplicate));
        let c = p.canonical_of(&again).await;
        assert_eq!(c.id, CanonicalId::founded_by(first.record_id));
        assert_eq!(c.contributions.len(), 2);
        assert_eq!(
            c.contribution(again.record_id).unwrap().role,
            Role::Duplicate { of: first.record_id }
        );
        assert_eq!(p.live_count().await, 1);
        let accepted = p.bodies(RECORDS_ACCEPTED).await;
        assert_eq!(
            accepted_of(&accepted),
            vec![
                (first.record_id, "new_canonical".to_owned()),
                (again.record_id, "duplicate".to_owned())
            ]
        );
        assert!(accepted.iter().all(|b| b["canonical_id"] == json!(c.id)));
        assert!(p.bodies(RECORDS_CONFLICTS).await.is_empty());
        p.stop().await;
    }

    /// R-REC cross-source matching and R-DATA-3 provenance: the Ministry and Thành phố Hồ Chí
    /// Minh report the city's e-invoices within 0.5 %; two organisations report the same
    /// training course under slightly different titles (fuzzy, with its score). Payloads are
    /// sealed: the free-text name appears in no table file, message or dead letter.
    pub async fn a_ministry_and_a_province_within_tolerance_make_one_canonical_record_with_full_provenance(
        mut p: Pipeline,
        place: Arc<Place>,
        backend: Backend,
    ) {
        let ministry = Org::new(OrgKind::Ministry);
        let hcm = Org::new(OrgKind::Province);
        let city = hcm.stat(einvoices("transaction_count", "79", 182_000_000.0), at(5, 8));
        let national = ministry.stat(einvoices("transaction_count", "79", 182_456_320.0), at(6, 8));
        let so = Org::new(OrgKind::ProvincialDepartment);
        let cuc = Org::new(OrgKind::GovernmentAgency);
        let course = |title: &str, organiser: &str| {
            json!({
                "activity_type": "training_course", "title": title, "organiser": organiser,
                "start_date": "2026-09-08", "end_date": "2026-09-12", "delivery_mode": "blended",
                "participants_count": 120, "trained_count": 114, "location_province_code": "79"
            })
        };
        let course_a = so.record(
            Category::Workforce,
            "2026-09",
            course(
                "Bồi dưỡng kiến thức về chữ ký số và dịch vụ tin cậy cho cán bộ, công chức cấp xã",
                "Sở Khoa học và Công nghệ Thành phố Hồ Chí Minh",
            ),
            at(2, 9),
        );
        let course_b = cuc.record(
            Category::Workforce,
            "2026-09",
            course(
                "BOI DUONG kien thuc ve chu ky so va dich vu tin cay cho can bo, cong chuc cap xa",
                "So KH&CN TP. HCM",
            ),
            at(3, 9),
        );
        p.submit(&[&city, &national, &course_a, &course_b]).await;
        p.start();
        p.settled(4).await;

        assert_eq!(p.kind(&national).await, Some(DecisionKind::Merge));
        let c = p.canonical_of(&national).await;
        assert_eq!(
            c.id,
            CanonicalId::founded_by(city.record_id),
            "the older record's id"
        );
        assert_eq!(c.contributions.len(), 2);
        assert_eq!(
            c.payload["value"],
            json!(182_456_320.0),
            "the ministry's value, by authority"
        );
        for (r, rule) in [(&city, Rule::New), (&national, Rule::FactTolerance)] {
            let x = c.contribution(r.record_id).unwrap();
            assert_eq!(x.source, r.source, "organisation, kind, system and receipt");
            assert_eq!(x.received_at, r.received_at);
            assert_eq!(x.masking_policy_version, 3);
            assert_eq!(x.form, Form::Raw);
            assert_eq!(x.content, r.content);
            assert_eq!(x.rule, rule);
            assert_eq!(x.score, None, "exact keys have no score");
            assert_eq!(x.config_version, ReconcileConfig::default().version);
            assert_eq!(x.role, Role::Current);
            assert_eq!(x.payload, r.payload);
        }

        assert_eq!(p.kind(&course_b).await, Some(DecisionKind::Merge));
        let course = p.canonical_of(&course_b).await;
        assert_eq!(course.contributions.len(), 2);
        let fuzzy = course.contribution(course_b.record_id).unwrap();
        assert_eq!(fuzzy.rule, Rule::FuzzyMatch);
        let score = fuzzy.score.expect("a fuzzy link keeps its score").value();
        assert!((0.85..=1.0).contains(&score), "{score}");
        assert_eq!(p.live_count().await, 2);

        let accepted = p.bodies(RECORDS_ACCEPTED).await;
        assert_eq!(accepted.len(), 4);
        let merge = accepted
            .iter()
            .find(|b| b["record_id"] == json!(national.record_id))
            .unwrap();
        assert_eq!(merge["decision"], "merge");
        assert_eq!(merge["rule"], "fact_tolerance");
        assert_eq!(merge["canonical_id"], json!(c.id));
        assert_eq!(merge["org_id"], json!(ministry.id));
        assert_eq!(merge["receipt_id"], json!(national.source.receipt_id));
        assert_eq!(merge["category"], "statistics");
        assert_eq!(merge["period"], "2026-10");
        assert!(merge.get("payload").is_none() && !merge.to_string().contains("182456320"));

        // Sealed at rest: the note's name is in no table (the SQLite file and its log).
        if backend == Backend::Sqlite {
            let rest = place.db.url.strip_prefix("sqlite://").unwrap();
            let path = std::path::PathBuf::from(rest.split('?').next().unwrap());
            for file in [path.clone(), path.with_extension("db-wal")] {
                if let Ok(bytes) = std::fs::read(&file) {
                    assert_no_canary(&file.display().to_string(), &String::from_utf8_lossy(&bytes));
                }
            }
        }
        p.stop().await;
    }

    /// R-REC conflict queue: beyond tolerance, a conflict on `records.conflicts` (fields
    /// named, no values); resolved by choosing, merging or rejecting; a rejected pair is never
    /// merged again, not by a redelivery nor by a later, agreeing revision.
    pub async fn values_beyond_tolerance_open_a_conflict_that_an_operator_chooses_merges_or_rejects_for_good(
        mut p: Pipeline,
        _place: Arc<Place>,
        _b: Backend,
    ) {
        let ministry = Org::new(OrgKind::Ministry);
        let hanoi = Org::new(OrgKind::Province);
        let pairs: Vec<(IncomingRecord, IncomingRecord)> =
            ["transaction_count", "failed_transactions", "active_users"]
                .iter()
                .map(|indicator| {
                    (
                        ministry.stat(einvoices(indicator, "01", 1_234_567.0), at(5, 8)),
                        hanoi.stat(einvoices(indicator, "01", 2_345_678.0), at(6, 8)),
                    )
                })
                .collect();
        let all: Vec<&IncomingRecord> = pairs.iter().flat_map(|(a, b)| [a, b]).collect();
        p.submit(&all).await;
        let operator = UserId::new();
        p.start();
        p.settled(6).await;

        let opened = p.bodies(RECORDS_CONFLICTS).await;
        assert_eq!(opened.len(), 3);
        for ((m, h), body) in pairs.iter().zip(&opened) {
            assert_eq!(p.kind(h).await, Some(DecisionKind::Conflict));
            assert_eq!(body["event"], "opened");
            assert_eq!(body["conflict_id"], json!(ConflictId::opened_by(h.record_id)));
            assert_eq!(body["reason"], "values_disagree");
            assert_eq!(body["fields"], json!(["value"]));
            assert_eq!(body["record_ids"], json!([h.record_id, m.record_id]));
            assert_eq!(body["canonical_id"], json!(CanonicalId::founded_by(m.record_id)));
            let text = body.to_string();
            assert!(
                !text.contains("2345678") && !text.contains("1234567"),
                "no value: {text}"
            );
        }
        let open = ConflictFilter {
            open_only: true,
            limit: 50,
            ..ConflictFilter::default()
        };
        let queue = p.app.conflicts(&open).await.unwrap();
        assert_eq!(queue.len(), 3);
        let first = p.app.conflict(queue[0].id).await.unwrap().unwrap();
        assert_eq!(first.versions().len(), 2, "both versions, with provenance");
        assert_eq!(first.differences[0].field, "value");
        // Every accepted record so far is a ministry's.
        let accepted = accepted_of(&p.bodies(RECORDS_ACCEPTED).await);
        assert_eq!(accepted.len(), 3);

        // Choose the province's version.
        let (m0, h0) = &pairs[0];
        let chosen = p
            .app
            .resolve(
                ConflictId::opened_by(h0.record_id),
                ResolutionChoice::Choose { record: h0.record_id },
                operator,
                Some("Sở đã xác nhận số liệu".into()),
            )
            .await
            .unwrap();
        assert_eq!(chosen.canonical.id, CanonicalId::founded_by(m0.record_id));
        let c = p.canonical_of(h0).await;
        assert_eq!(c.payload["value"], json!(2_345_678.0));
        assert_eq!(c.contributions.len(), 2);
        assert_eq!(c.contribution(h0.record_id).unwrap().rule, Rule::OperatorChoose);
        assert_eq!(p.kind(h0).await, Some(DecisionKind::Resolved));
        // Resolved once.
        let again = p
            .app
            .resolve(
                ConflictId::opened_by(h0.record_id),
                ResolutionChoice::Reject,
                operator,
                None,
            )
            .await;
        assert!(
            matches!(
                again,
                Err(ResolveConflictError::Refused(ResolveError::AlreadyResolved))
            ),
            "{again:?}"
        );

        // Merge: the operator sets the value.
        let (m1, h1) = &pairs[1];
        p.app
            .resolve(
                ConflictId::opened_by(h1.record_id),
                ResolutionChoice::Merge {
                    values: BTreeMap::from([("/value".to_owned(), json!(1_500_000))]),
                },
                operator,
                None,
            )
            .await
            .unwrap();
        let c = p.canonical_of(h1).await;
        assert_eq!(c.id, CanonicalId::founded_by(m1.record_id));
        assert_eq!(c.payload["value"], json!(1_500_000));
        assert_eq!(c.contribution(h1.record_id).unwrap().rule, Rule::OperatorMerge);

        // Reject: the province's record founds its own canonical record, for good.
        let (m2, h2) = &pairs[2];
        p.app
            .resolve(
                ConflictId::opened_by(h2.record_id),
                ResolutionChoice::Reject,
                operator,
                Some("Hai chỉ tiêu khác nhau".into()),
            )
            .await
            .unwrap();
        let own = p.canonical_of(h2).await;
        assert_eq!(own.id, CanonicalId::founded_by(h2.record_id));
        assert_eq!(own.contributions.len(), 1);
        assert!(p.app.conflicts(&open).await.unwrap().is_empty());
        p.drained().await;
        let accepted = accepted_of(&p.bodies(RECORDS_ACCEPTED).await);
        assert_eq!(
            accepted,
            vec![
                (h0.record_id, "resolved".to_owned()),
                (h1.record_id, "resolved".to_owned()),
                (h2.record_id, "resolved".to_owned())
            ]
        );
        let resolved = p.bodies(RECORDS_CONFLICTS).await;
        let actions: Vec<&str> = resolved.iter().map(|b| b["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["choose", "merge", "reject"]);
        assert!(resolved.iter().all(|b| b["event"] == "resolved"));

        // Re-run: the rejected record's message again, and the province's revision that now
        // agrees with the ministry — neither joins the ministry's canonical record.
        let revision = hanoi.stat(einvoices("active_users", "01", 1_234_567.0), at(7, 8));
        p.source.add(&[&revision]);
        p.publish(&[message(h2), message(&revision)]).await;
        p.settled(8).await;
        assert_eq!(p.kind(h2).await, Some(DecisionKind::Resolved), "decided once");
        assert_eq!(p.kind(&revision).await, Some(DecisionKind::Revision));
        assert_eq!(p.canonical_of(&revision).await.id, own.id);
        let ministry_side = p.canonical_of(m2).await;
        assert_eq!(ministry_side.id, CanonicalId::founded_by(m2.record_id));
        assert_eq!(ministry_side.contributions.len(), 1, "never merged");
        assert_eq!(
            accepted_of(&p.bodies(RECORDS_ACCEPTED).await),
            vec![(revision.record_id, "revision".to_owned())]
        );
        assert!(p.bodies(RECORDS_CONFLICTS).await.is_empty(), "no new conflict");
        p.stop().await;
    }

    /// R-REC period approval: an approved period holds new records (nothing accepted), its
    /// conflicts cannot be resolved, it cannot be approved twice; reopened with a reason, the
    /// held records are reconciled and announced.
    pub async fn an_approved_period_holds_new_records_and_refuses_changes_until_reopened(
        mut p: Pipeline,
        _place: Arc<Place>,
        _b: Backend,
    ) {
        let ministry = Org::new(OrgKind::Ministry);
        let hanoi = Org::new(OrgKind::Province);
        let danang = Org::new(OrgKind::Province);
        let base = ministry.stat(einvoices("transaction_count", "01", 1_000.0), at(5, 8));
        let disputed = hanoi.stat(einvoices("transaction_count", "01", 3_000.0), at(6, 8));
        p.submit(&[&base, &disputed]).await;
        p.start();
        p.settled(2).await;
        assert_eq!(p.kind(&disputed).await, Some(DecisionKind::Conflict));
        p.bodies(RECORDS_ACCEPTED).await;

        let key = PeriodKey {
            scope: ApprovalScope::All,
            category: Category::Statistics,
            period: Period::parse("2026-10").unwrap(),
        };
        let operator = UserId::new();
        let approved = p.app.approve_period(key, operator).await.unwrap();
        assert!(approved.is_read_only());
        assert!(matches!(
            p.app.approve_period(key, operator).await,
            Err(PeriodChangeError::Refused(_))
        ));

        let late = danang.stat(einvoices("transaction_count", "48", 500.0), at(8, 8));
        let late_dup = ministry.stat(einvoices("transaction_count", "01", 1_000.0), at(9, 8));
        p.submit(&[&late, &late_dup]).await;
        p.settled(4).await;
        assert_eq!(p.kind(&late).await, Some(DecisionKind::Held));
        assert_eq!(p.kind(&late_dup).await, Some(DecisionKind::Held));
        assert!(
            p.bodies(RECORDS_ACCEPTED).await.is_empty(),
            "nothing accepted while approved"
        );
        let refused = p
            .app
            .resolve(
                ConflictId::opened_by(disputed.record_id),
                ResolutionChoice::Choose {
                    record: disputed.record_id,
                },
                operator,
                None,
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(ResolveConflictError::Refused(ResolveError::PeriodApproved))
            ),
            "{refused:?}"
        );
        assert_eq!(p.canonical_of(&base).await.contributions.len(), 1, "unchanged");
        // A period of another category is not held.
        let policy = ministry.record(
            Category::Policy,
            "2026-10",
            json!({"document_type": "decision", "document_number": "15/QĐ-BKHCN", "status": "in_force"}),
            at(9, 9),
        );
        p.submit(&[&policy]).await;
        p.settled(5).await;
        assert_eq!(p.kind(&policy).await, Some(DecisionKind::NewCanonical));

        let reason = Reason::parse("Sở Đà Nẵng gửi bổ sung số liệu tháng 10").unwrap();
        let reopened = p.app.reopen_period(key, operator, reason).await.unwrap();
        assert!(!reopened.approval.is_read_only());
        assert!(reopened.held.pending.is_empty(), "{:?}", reopened.held);
        let decided: BTreeMap<RecordId, DecisionKind> = reopened
            .held
            .reconciled
            .iter()
            .map(|s| (s.record_id, s.kind))
            .collect();
        assert_eq!(
            decided,
            BTreeMap::from([
                (late.record_id, DecisionKind::NewCanonical),
                (late_dup.record_id, DecisionKind::Duplicate),
            ])
        );
        p.drained().await;
        let mut accepted = accepted_of(&p.bodies(RECORDS_ACCEPTED).await);
        accepted.sort();
        let mut want = vec![
            (late.record_id, "new_canonical".to_owned()),
            (late_dup.record_id, "duplicate".to_owned()),
            (policy.record_id, "new_canonical".to_owned()),
        ];
        want.sort();
        assert_eq!(accepted, want);
        // Writable again: the conflict can be resolved.
        p.app
            .resolve(
                ConflictId::opened_by(disputed.record_id),
                ResolutionChoice::Choose {
                    record: base.record_id,
                },
                operator,
                None,
            )
            .await
            .unwrap();
        assert_eq!(p.canonical_of(&base).await.contributions.len(), 3);
        p.stop().await;
    }

    /// R-REC stable canonical ids: the same messages in the opposite order, into a fresh place
    /// of the same kind, give the same canonical records (ids, members, roles and values).
    pub async fn replaying_the_messages_in_another_order_gives_the_same_canonical_ids(
        mut p: Pipeline,
        _place: Arc<Place>,
        backend: Backend,
    ) {
        let ministry = Org::new(OrgKind::Ministry);
        let hcm = Org::new(OrgKind::Province);
        let hanoi = Org::new(OrgKind::Province);
        let records = vec![
            hcm.stat(einvoices("transaction_count", "79", 182_000_000.0), at(1, 8)),
            ministry.stat(einvoices("transaction_count", "79", 182_300_000.0), at(2, 8)),
            // The city's correction, and the ministry's re-send of the same content.
            hcm.stat(einvoices("transaction_count", "79", 182_100_000.0), at(3, 8)),
            ministry.stat(einvoices("transaction_count", "79", 182_300_000.0), at(4, 8)),
            hanoi.stat(einvoices("transaction_count", "01", 95_000_000.0), at(1, 9)),
            ministry.stat(einvoices("transaction_count", "01", 95_100_000.0), at(2, 9)),
        ];
        let refs: Vec<&IncomingRecord> = records.iter().collect();
        p.submit(&refs).await;
        p.start();
        p.settled(6).await;

        let other_place = Arc::new(Place::new(backend).await);
        let mut q = Pipeline::open(&other_place).await;
        let reversed: Vec<&IncomingRecord> = records.iter().rev().collect();
        q.submit(&reversed).await;
        q.start();
        q.settled(6).await;

        /// Every record's live canonical record: id, members with roles, value.
        async fn shape(
            p: &Pipeline,
            records: &[IncomingRecord],
        ) -> BTreeMap<RecordId, (CanonicalId, BTreeSet<String>, Value)> {
            let mut out = BTreeMap::new();
            for r in records {
                let c = p.canonical_of(r).await;
                let members = c
                    .contributions
                    .iter()
                    .map(|x| format!("{}:{:?}", x.record_id, x.role))
                    .collect();
                out.insert(r.record_id, (c.id, members, c.payload.clone()));
            }
            out
        }
        let forward = shape(&p, &records).await;
        let backward = shape(&q, &records).await;
        assert_eq!(forward, backward);
        let ids: BTreeSet<CanonicalId> = forward.values().map(|(id, _, _)| *id).collect();
        assert_eq!(
            ids,
            BTreeSet::from([
                CanonicalId::founded_by(records[0].record_id),
                CanonicalId::founded_by(records[4].record_id)
            ])
        );
        assert_eq!(p.live_count().await, 2);
        assert_eq!(q.live_count().await, 2);
        // In reverse order the older records arrive last and rename: the retired ids are
        // announced, and still lead to the live record.
        let renamed: Vec<Value> = q
            .bodies(RECORDS_ACCEPTED)
            .await
            .into_iter()
            .filter(|b| !b["retired"].as_array().unwrap().is_empty())
            .collect();
        assert!(!renamed.is_empty());
        for b in &renamed {
            for old in b["retired"].as_array().unwrap() {
                let old: CanonicalId = old.as_str().unwrap().parse().unwrap();
                let live = q.app.canonical(old).await.unwrap().unwrap();
                assert!(ids.contains(&live.id));
            }
        }
        q.stop().await;
        other_place.cleanup().await;
        p.stop().await;
    }

    /// R-AVAIL at-least-once: every message is published twice and two consumers race over
    /// them (batches of one, so they interleave); eight organisations report the same fact, and
    /// the first two are fetched at the same moment, so both consumers try to found it. Each
    /// record is decided once and announced once; one canonical record holds them all.
    pub async fn a_message_delivered_twice_to_racing_consumers_decides_and_announces_each_record_once(
        mut p: Pipeline,
        _place: Arc<Place>,
        _b: Backend,
    ) {
        let mut records = Vec::new();
        for i in 0..8u32 {
            let kind = if i == 0 {
                OrgKind::Ministry
            } else {
                OrgKind::Province
            };
            let org = Org::new(kind);
            let value = 50_000.0 + f64::from(i) * 10.0;
            records.push(org.stat(einvoices("transaction_count", "31", value), at(2 + i, 8)));
        }
        let refs: Vec<&IncomingRecord> = records.iter().collect();
        p.source.barrier.set(tokio::sync::Barrier::new(2)).unwrap();
        p.source.gated.store(2, Ordering::SeqCst);
        p.source.add(&refs);
        let msgs: Vec<OutMessage> = records.iter().chain(&records).map(message).collect();
        p.publish(&msgs).await;
        p.start_relay();
        let cfg = Pipeline::config().with_batch_size(1);
        p.start_consumer(cfg.clone().with_consumer("racer-1"));
        p.start_consumer(cfg.with_consumer("racer-2"));
        p.settled(16).await;

        let dead: u64 = p.consumers.iter().map(|(h, _)| h.dead_lettered()).sum();
        assert_eq!(dead, 0);
        let accepted = accepted_of(&p.bodies(RECORDS_ACCEPTED).await);
        assert_eq!(accepted.len(), 8, "each record announced once: {accepted:?}");
        let ids: BTreeSet<RecordId> = accepted.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, records.iter().map(|r| r.record_id).collect());
        assert_eq!(p.live_count().await, 1, "one canonical record");
        let c = p.canonical_of(&records[5]).await;
        assert_eq!(c.id, CanonicalId::founded_by(records[0].record_id));
        assert_eq!(c.contributions.len(), 8);
        assert!(p.bodies(RECORDS_CONFLICTS).await.is_empty());
        p.stop().await;
    }

    /// A message that is not masking's, or whose record can never be read for its category,
    /// is dead-lettered at once with where it is wrong — and without quoting its values.
    pub async fn a_malformed_message_is_dead_lettered_with_a_precise_reason(
        mut p: Pipeline,
        _place: Arc<Place>,
        _b: Backend,
    ) {
        let org = Org::new(OrgKind::Province);
        let good = org.stat(einvoices("transaction_count", "01", 10.0), at(3, 8));
        let mut unreadable = org.stat(einvoices("transaction_count", "01", 10.0), at(3, 9));
        unreadable.payload.as_object_mut().unwrap().remove("indicator");
        p.source.add(&[&good, &unreadable]);
        let mut bad_category = message(&good);
        let mut body: Value = serde_json::from_slice(&bad_category.body).unwrap();
        body["records"][0]["category"] = json!(NAME);
        bad_category.body = serde_json::to_vec(&body).unwrap();
        let not_json = OutMessage {
            key: "x".into(),
            priority: Priority::Normal,
            headers: Default::default(),
            body: format!("{{\"org_id\": \"{NAME}").into_bytes(),
        };
        // A record announced under another organisation than the source has it under.
        let foreign = org.stat(einvoices("failed_transactions", "01", 1.0), at(3, 10));
        p.source.add(&[&foreign]);
        let mut misattributed = message(&foreign);
        let mut body: Value = serde_json::from_slice(&misattributed.body).unwrap();
        body["org_id"] = json!(OrgId::new());
        misattributed.body = serde_json::to_vec(&body).unwrap();
        p.publish(&[
            not_json,
            bad_category,
            message(&unreadable),
            misattributed,
            message(&good),
        ])
        .await;
        let consumer = p.start();
        p.settled(5).await;
        assert_eq!(consumer.dead_lettered(), 4);
        assert_eq!(p.kind(&foreign).await, None);
        assert_eq!(p.kind(&good).await, Some(DecisionKind::NewCanonical));
        assert_eq!(p.kind(&unreadable).await, None);

        let dead = p.queue.dead_letters(RECORDS_MASKED, 10).await.unwrap();
        let reasons: Vec<&str> = dead.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        for r in &reasons {
            assert_no_canary("a dead letter's reason", r);
        }
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with("the records.masked body is not JSON: EOF while parsing")),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(
                &"the records.masked body is not an announcement: `records[0].category` is not a known category"
            ),
            "{reasons:?}"
        );
        let unreadable_reason = format!(
            "record {} cannot be reconciled: `/indicator` is missing",
            unreadable.record_id
        );
        assert!(reasons.contains(&unreadable_reason.as_str()), "{reasons:?}");
        let foreign_reason = format!(
            "record {} is stored under another organisation, system, receipt, category or period than announced",
            foreign.record_id
        );
        assert!(reasons.contains(&foreign_reason.as_str()), "{reasons:?}");
        p.stop().await;
    }

    /// R-AVAIL: while the source is down, or a record is not there yet, the delivery is
    /// retried (not dead-lettered); then the records are decided, once.
    pub async fn records_are_retried_while_the_source_is_unavailable_and_then_decided(
        mut p: Pipeline,
        _place: Arc<Place>,
        _b: Backend,
    ) {
        let org = Org::new(OrgKind::Province);
        let present = org.stat(einvoices("transaction_count", "01", 10.0), at(3, 8));
        // One submission of two records, announced at high priority; the second is not in the
        // source yet.
        let mut late = org.stat(einvoices("failed_transactions", "01", 2.0), at(3, 8));
        late.source.receipt_id = present.source.receipt_id;
        p.source.add(&[&present]);
        p.source.unavailable.store(3, Ordering::SeqCst);
        p.publish(&[masked_message(&[&present, &late], Priority::High)])
            .await;
        let consumer = p.start();

        eventually(
            "the present record decided while the other is missing",
            || async { p.kind(&present).await.is_some() && consumer.retried() >= 4 },
        )
        .await;
        assert_eq!(p.kind(&late).await, None);
        assert_eq!(consumer.dead_lettered(), 0);
        p.source.add(&[&late]);
        p.settled(1).await;
        assert_eq!(consumer.dead_lettered(), 0);
        assert_eq!(p.kind(&late).await, Some(DecisionKind::NewCanonical));
        assert!(p.source.calls().len() >= 5, "{:?}", p.source.calls().len());
        let accepted = p.read(RECORDS_ACCEPTED).await;
        let decided: Vec<(RecordId, Priority)> = accepted
            .iter()
            .map(|d| {
                let b: Value = serde_json::from_slice(&d.body).unwrap();
                (b["record_id"].as_str().unwrap().parse().unwrap(), d.priority)
            })
            .collect();
        assert_eq!(
            decided,
            vec![
                (present.record_id, Priority::High),
                (late.record_id, Priority::High)
            ],
            "each once, with the priority it came with"
        );
        p.stop().await;
    }

    /// R-REC completeness for reports: per organisation and period, which expected submissions
    /// arrived on time, late, or not at all — duplicates once, conflicting records included.
    pub async fn completeness_counts_every_record_received_per_organisation_and_period(
        mut p: Pipeline,
        _place: Arc<Place>,
        _b: Backend,
    ) {
        let ministry = Org::new(OrgKind::Ministry);
        let hanoi = Org::new(OrgKind::Province);
        let silent = Org::new(OrgKind::Province);
        let on_time = ministry.stat(einvoices("transaction_count", "01", 1_000.0), at(5, 8));
        let resent = ministry.stat(einvoices("transaction_count", "01", 1_000.0), at(12, 8));
        let late_conflict = hanoi.stat(einvoices("transaction_count", "01", 9_000.0), at(12, 8));
        p.submit(&[&on_time, &resent, &late_conflict]).await;
        p.start();
        p.settled(3).await;
        assert_eq!(p.kind(&late_conflict).await, Some(DecisionKind::Conflict));

        let october = Period::parse("2026-10").unwrap();
        let deadline = at(10, 17);
        let expect = |org: &Org, category| ExpectedSubmission {
            org_id: org.id,
            category,
            period: october,
            deadline,
        };
        let expected = [
            expect(&ministry, Category::Statistics),
            expect(&ministry, Category::Policy),
            expect(&hanoi, Category::Statistics),
            expect(&silent, Category::Statistics),
        ];
        let report = p.app.completeness(&expected, at(20, 0)).await.unwrap();
        let of = |org: &Org| report.iter().find(|r| r.org_id == org.id).unwrap();
        let m = of(&ministry);
        assert_eq!(
            (m.expected, m.received, m.on_time, m.late, m.missing),
            (2, 1, 1, 0, 1)
        );
        assert!(matches!(
            m.items.iter().find(|i| i.category == Category::Statistics).unwrap().status,
            SubmissionStatus::OnTime { first_record, .. } if first_record == on_time.record_id
        ));
        let h = of(&hanoi);
        assert_eq!((h.received, h.late), (1, 1));
        let s = of(&silent);
        assert_eq!((s.received, s.missing), (0, 1));
        p.stop().await;
    }
}

// Keeps the group constant in view: the consumer reads records.masked as `reconciliation`.
#[test]
fn the_stage_reads_records_masked_as_group_reconciliation() {
    let cfg = AppReconciliation::consumer_config();
    assert_eq!((cfg.stream(), cfg.group()), (RECORDS_MASKED, GROUP));
}
