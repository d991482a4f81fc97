//! The masking stage end to end (issue 5 §1–3; R-ING-2, R-SEC-10, R-DATA-3): `records.received`
//! announcements shaped exactly like ingestion's are published, the real [`etx_queue::Consumer`]
//! runs the masking handler, an [`OutboxRelay`] publishes what it stores, and the tests read
//! `masked_records`, the outbox, `records.masked`, `events.masking` and the dead letters.
//!
//! Every case runs twice, each time in a place of its own: `sqlite::<case>` on a SQLite file with
//! the embedded queue in it (all-in-one), `postgres::<case>` on a fresh PostgreSQL database with
//! Redis Streams under a fresh key prefix (distributed). PostgreSQL (`ETX_TEST_PG_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and Redis (`ETX_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`) are required: when they are unreachable the tests fail loudly,
//! they are never skipped.
//!
//! The record source is an in-memory fake, so clear payloads exist only in this process's
//! memory. Every case ends by checking that no clear identifier of the fixtures appears in
//! anything the stage logged (the PII canary at this level); the first case also searches the
//! tables, the outbox, the messages, every Redis stream of the test and the SQLite file.
//! Waiting has a generous timeout as its only failure condition; nothing asserts on wall-clock
//! time.

// Test helpers outside `#[test]` functions: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use etx_crypto::MasterKey;
use etx_domain::{
    Category, Classification, Envelope, Form, Method, OrgId, Period, Priority, Provenance, ReceiptId,
    RecordId, SchemaVersion, SystemId,
};
use etx_masking::store::entities::masked_record;
use etx_masking::{
    AppMasking, GROUP, MASKING_EVENTS, MATCH_PURPOSE, MaskStatus, RECORDS_MASKED, RECORDS_RECEIVED,
};
use etx_masking_core::{
    BUILTIN_POLICY, Detector, FindingKind, Masker, Purpose, RecordSource, SourceError, SourceRecord,
    TokenKeys, is_token,
};
use etx_queue::{ConsumerConfig, ConsumerHandle, Delivery, EmbeddedQueue, OutMessage, Queue, RedisQueue};
use etx_storage::testing::{TestDb, redis_url};
use etx_storage::{OutboxRelay, RelayHandle};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// Masked payloads sealed with AES-256-GCM under a data key of a test key ring (the hub's
/// composition root uses ingestion's key ring the same way).
struct TestVault(etx_crypto::KeyRing);

impl TestVault {
    fn new() -> Self {
        let ring = etx_crypto::KeyRing::new(MasterKey::generate("mk-vault-test"), Vec::new());
        let key = ring.new_data_key();
        ring.load(&key).unwrap();
        ring.activate(key.id).unwrap();
        Self(ring)
    }

    fn aad(org: etx_domain::OrgId, record: etx_domain::RecordId) -> etx_crypto::Aad {
        etx_crypto::Aad {
            org_id: org.as_uuid(),
            record_id: record.as_uuid(),
        }
    }
}

#[async_trait]
impl etx_masking_core::PayloadVault for TestVault {
    async fn seal(
        &self,
        org: etx_domain::OrgId,
        record: etx_domain::RecordId,
        plain: &[u8],
    ) -> Result<Vec<u8>, etx_masking_core::SourceError> {
        Ok(self.0.encrypt(&Self::aad(org, record), plain).unwrap())
    }

    async fn open(
        &self,
        org: etx_domain::OrgId,
        record: etx_domain::RecordId,
        sealed: &[u8],
    ) -> Result<Vec<u8>, etx_masking_core::SourceError> {
        Ok(self.0.decrypt(&Self::aad(org, record), sealed).unwrap())
    }
}

// ---------------------------------------------------------------------------------------------
// The clear values seeded into the fixtures: none may appear anywhere masking writes.
// ---------------------------------------------------------------------------------------------

const CCCD: &str = "079190000123";
const TAX_VALID: &str = "0100233488";
const TAX_BRANCH: &str = "0314409058-002";
const PHONE: &str = "0912345678";
const NAME: &str = "Nguyễn Thị Minh Thư";
const NAME_2: &str = "Trần Văn Hùng";

/// Every spelling of the seeded values that must never be written.
const CANARIES: &[&str] = &[
    CCCD,
    TAX_VALID,
    "0314409058",
    "0314409058002",
    PHONE,
    "912345678",
    "0912 345 678",
    NAME,
    "Minh Thư",
    "Nguyễn",
    NAME_2,
    "thu.nguyen",
];

fn assert_no_canary(what: &str, text: &str) {
    for c in CANARIES {
        if let Some(at) = text.find(c) {
            // Show where, not the whole text (the logs can be long).
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

/// Installs (once per process) a global subscriber writing every event, with all its fields
/// and spans, at TRACE, into a buffer (`ETX_TEST_LOG=1` also prints it).
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
// The record source: an in-memory fake of ingestion's store.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct FakeSource {
    records: Mutex<HashMap<RecordId, SourceRecord>>,
    /// Calls still to fail with `Unavailable`.
    unavailable: AtomicU32,
    /// The ids asked for, per call.
    calls: Mutex<Vec<Vec<RecordId>>>,
}

impl FakeSource {
    fn add(&self, records: &[&SourceRecord]) {
        let mut map = self.records.lock().unwrap();
        for r in records {
            map.insert(r.id, (*r).clone());
        }
    }

    fn calls(&self) -> Vec<Vec<RecordId>> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl RecordSource for FakeSource {
    async fn fetch(&self, ids: &[RecordId]) -> Result<Vec<SourceRecord>, SourceError> {
        self.calls.lock().unwrap().push(ids.to_vec());
        let failing = self
            .unavailable
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(SourceError::Unavailable("simulated outage".into()));
        }
        let map = self.records.lock().unwrap();
        Ok(ids.iter().filter_map(|id| map.get(id).cloned()).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Records and announcements
// ---------------------------------------------------------------------------------------------

/// One submission of one organisation's system: its records share the receipt.
#[derive(Debug, Clone, Copy)]
struct Submission {
    org_id: OrgId,
    system_id: SystemId,
    receipt_id: ReceiptId,
    received_at: chrono::DateTime<Utc>,
}

impl Submission {
    fn new(org_id: OrgId) -> Self {
        Self {
            org_id,
            system_id: SystemId::new(),
            receipt_id: ReceiptId::new(),
            received_at: Utc::now(),
        }
    }

    fn record(&self, category: Category, priority: Priority, form: Form, payload: Value) -> SourceRecord {
        SourceRecord {
            id: RecordId::new(),
            envelope: Envelope {
                category,
                schema_version: SchemaVersion::V1,
                period: Period::parse("2026-10").unwrap(),
                classification: Classification::Internal,
                priority,
                form,
                idempotency_key: None,
            },
            provenance: Provenance {
                org_id: self.org_id,
                system_id: self.system_id,
                receipt_id: self.receipt_id,
                received_at: self.received_at,
                method: Method::Realtime,
                original_form: form,
            },
            payload,
        }
    }

    /// The `records.received` messages ingestion's outbox publishes for these records (its
    /// `announcements`): one per priority, high first, keyed by the first record's id.
    fn announcements(&self, records: &[&SourceRecord]) -> Vec<OutMessage> {
        let mut out = Vec::new();
        for priority in [Priority::High, Priority::Normal, Priority::Low] {
            let same: Vec<&&SourceRecord> = records
                .iter()
                .filter(|r| r.envelope.priority == priority)
                .collect();
            if same.is_empty() {
                continue;
            }
            let recs: Vec<Value> = same
                .iter()
                .map(|r| {
                    json!({
                        "record_id": r.id,
                        "category": r.envelope.category,
                        "schema_version": r.envelope.schema_version.number(),
                        "period": r.envelope.period.to_string(),
                        "classification": r.envelope.classification,
                        "priority": r.envelope.priority,
                        "form": r.envelope.form,
                    })
                })
                .collect();
            let body = json!({
                "org_id": self.org_id,
                "system_id": self.system_id,
                "receipt_id": self.receipt_id,
                "method": "realtime",
                "received_at": self.received_at,
                "records": recs,
            });
            out.push(OutMessage {
                key: same[0].id.to_string(),
                priority,
                headers: Default::default(),
                body: serde_json::to_vec(&body).unwrap(),
            });
        }
        out
    }
}

fn expert(citizen_id: &str, full_name: &str, phone: &str) -> Value {
    json!({
        "activity_type": "expert_registry",
        "title": "Đăng ký chuyên gia tư vấn về an toàn giao dịch điện tử",
        "organiser": "Cục Chuyển đổi số quốc gia",
        "start_date": "2026-10-05",
        "location_province_code": "01",
        "expert": {
            "full_name": full_name,
            "citizen_id": citizen_id,
            "phone": phone,
            "specialisation": "An toàn thông tin và chữ ký số",
            "years_of_experience": 12
        }
    })
}

fn statistics(value: u64) -> Value {
    json!({ "indicator": "e_invoices_issued", "value": value, "unit": "invoice" })
}

// ---------------------------------------------------------------------------------------------
// The place of a case and the pipeline running in it
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Where a case's data lives, so it can be searched and removed.
#[derive(Debug)]
struct Place {
    db: TestDb,
    /// The Redis key prefix (PostgreSQL + Redis Streams only).
    redis_prefix: Option<String>,
}

impl Place {
    async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self {
                db: TestDb::sqlite(),
                redis_prefix: None,
            },
            Backend::Postgres => Self {
                db: TestDb::postgres().await,
                redis_prefix: Some(format!("etxtest:masking:{}:", uuid::Uuid::new_v4().simple())),
            },
        }
    }

    /// The SQLite file (and its WAL), when this place is one.
    fn sqlite_files(&self) -> Vec<std::path::PathBuf> {
        let Some(rest) = self.db.url.strip_prefix("sqlite://") else {
            return Vec::new();
        };
        let path = std::path::PathBuf::from(rest.split('?').next().unwrap());
        let wal = path.with_extension("db-wal");
        vec![path, wal]
    }

    async fn cleanup(&self) {
        let _ = self.db.cleanup().await;
        if let Some(dir) = self.sqlite_files().first().and_then(|p| p.parent()) {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(prefix) = &self.redis_prefix {
            let Ok(mut conn) = redis_connection().await else {
                return;
            };
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
            }
        }
    }
}

async fn redis_connection() -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    redis::Client::open(redis_url())?
        .get_multiplexed_async_connection()
        .await
}

/// The masking module over a place, with its queue, relay and consumers.
struct Pipeline {
    db: DatabaseConnection,
    queue: Arc<dyn Queue>,
    app: AppMasking,
    source: Arc<FakeSource>,
    masker: Masker,
    relay: Option<OutboxRelay>,
    relay_task: Option<(RelayHandle, JoinHandle<()>)>,
    consumers: Vec<(ConsumerHandle, JoinHandle<()>)>,
}

impl Pipeline {
    /// Builds the module (migrations included); neither consumer nor relay runs yet.
    async fn open(place: &Place) -> Self {
        let db = place.db.connect().await;
        let queue: Arc<dyn Queue> = match &place.redis_prefix {
            None => {
                let q = EmbeddedQueue::new(db.clone()).with_poll_interval(Duration::from_millis(20));
                q.migrate().await.unwrap();
                Arc::new(q)
            }
            Some(prefix) => {
                let url = redis_url();
                let q = RedisQueue::connect(&url, prefix).unwrap();
                if let Err(e) = q.ping().await {
                    panic!(
                        "Redis is required for the masking pipeline tests and is unreachable at {url}: {e}. \
                         Start it or set ETX_TEST_REDIS_URL."
                    );
                }
                Arc::new(q)
            }
        };
        let source = Arc::new(FakeSource::default());
        let masker = Masker::new(
            TokenKeys::new(MasterKey::generate("mk-masking-test")),
            Detector::for_today(),
        );
        let relay = OutboxRelay::new(db.clone(), queue.clone());
        let app = AppMasking::build(
            db.clone(),
            source.clone(),
            masker.clone(),
            Arc::new(TestVault::new()),
            Some(relay.handle()),
        )
        .await
        .unwrap();
        // Idempotent: a second process starting on the same database migrates nothing.
        etx_masking::migrate(&db).await.unwrap();
        Self {
            db,
            queue,
            app,
            source,
            masker,
            relay: Some(relay),
            relay_task: None,
            consumers: Vec::new(),
        }
    }

    /// Short waits so the cases stay fast; reclaims after half a second.
    fn config() -> ConsumerConfig {
        AppMasking::consumer_config()
            .with_block(Duration::from_millis(100))
            .with_backoff_max(Duration::from_millis(100))
            .with_min_idle(Duration::from_millis(500))
            .with_claim_every(Duration::from_millis(100))
            .with_max_attempts(20)
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
        self.queue.publish(RECORDS_RECEIVED, msgs).await.unwrap();
    }

    async fn outbox_rows(&self) -> Vec<etx_storage::outbox::entity::Model> {
        etx_storage::outbox::entity::Entity::find()
            .all(&self.db)
            .await
            .unwrap()
    }

    async fn rows(&self) -> Vec<masked_record::Model> {
        masked_record::Entity::find().all(&self.db).await.unwrap()
    }

    async fn row_count(&self) -> u64 {
        masked_record::Entity::find().count(&self.db).await.unwrap()
    }

    /// Waits until the consumers have settled `deliveries` messages (acked or dead-lettered),
    /// the group has nothing pending, and the outbox is drained (the relay published it all).
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
                    && etx_storage::outbox::entity::Entity::find()
                        .count(&self.db)
                        .await
                        .unwrap()
                        == 0
            },
        )
        .await;
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

    fn match_token(&self, normalised: &str) -> String {
        self.masker
            .keys()
            .token(&Purpose::parse(MATCH_PURPOSE).unwrap(), normalised)
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
    }
}

/// `(record id, priority)` of every record a `records.masked` message announces, in order.
fn announced(msgs: &[Delivery]) -> Vec<(RecordId, Priority)> {
    msgs.iter()
        .flat_map(|d| {
            let body: Value = serde_json::from_slice(&d.body).unwrap();
            body["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["record_id"].as_str().unwrap().parse().unwrap(), d.priority))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// How long `eventually` waits: generous, the tests share two cores.
const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `check` every 20 ms until it holds; panics with `what` after [`PATIENCE`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {PATIENCE:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `case` on a pipeline in a fresh place of `backend`, removes the place, re-raises any
/// panic, and finally checks that nothing logged carries a seeded value.
async fn run<F, Fut>(backend: Backend, case: F)
where
    F: FnOnce(Pipeline, Arc<Place>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let logs = logs();
    let place = Arc::new(Place::new(backend).await);
    let pipeline = Pipeline::open(&place).await;
    let outcome = tokio::spawn(case(pipeline, place.clone())).await;
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
// Each case once per place: `sqlite::<case>` and `postgres::<case>`.
per_backend!(
    raw_records_are_stored_masked_and_no_clear_identifier_reaches_tables_outbox_queue_or_logs,
    a_record_declared_masked_with_a_clear_citizen_id_is_held_and_announced_only_as_an_event,
    an_announcement_delivered_twice_stores_and_announces_each_record_once,
    a_malformed_announcement_is_dead_lettered_with_its_reason,
    records_are_retried_while_the_source_is_unavailable_and_then_stored,
    a_record_not_yet_in_the_source_is_retried_until_it_appears,
    high_priority_records_are_masked_and_announced_before_normal_ones,
    a_policy_version_published_elsewhere_is_taken_without_a_restart_and_stored_records_keep_theirs,
);

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

mod cases {
    use super::*;

    /// (a) The PII canary at this level, and match tokens.
    pub async fn raw_records_are_stored_masked_and_no_clear_identifier_reaches_tables_outbox_queue_or_logs(
        mut p: Pipeline,
        place: Arc<Place>,
    ) {
        let sub = Submission::new(OrgId::new());
        let mut expert_payload = expert(CCCD, NAME, PHONE);
        expert_payload["expert"]["email"] = json!("thu.nguyen@example.vn");
        expert_payload["expert"]["organisation_tax_code"] = json!(TAX_VALID);
        let r1 = sub.record(Category::Workforce, Priority::Normal, Form::Raw, expert_payload);
        let r2 = sub.record(
            Category::Enforcement,
            Priority::Normal,
            Form::Raw,
            json!({
                "case_type": "complaint",
                "case_number": "2026-KN-0042",
                "subject_organisation": "Công ty TNHH Hợp đồng Số Việt (giả định)",
                "subject_tax_code": TAX_BRANCH,
                "complainant": {
                    "full_name": NAME_2,
                    "citizen_id": CCCD,
                    "phone": "+84912345678",
                    "address": "Phường Ba Đình, Thành phố Hà Nội"
                },
                "description": "Người khiếu nại (CCCD 079190000123, SĐT 0912 345 678) phản ánh hợp đồng ký không có xác nhận."
            }),
        );
        let r3 = sub.record(
            Category::Statistics,
            Priority::Normal,
            Form::Raw,
            json!({ "indicator": "e_invoices_issued", "value": 1520,
                    "note": "Số liệu của đơn vị có MST 0100233488" }),
        );
        p.source.add(&[&r1, &r2, &r3]);
        let msgs = sub.announcements(&[&r1, &r2, &r3]);
        assert_eq!(msgs.len(), 1);
        p.publish(&msgs).await;
        // The relay starts only after the outbox rows were searched.
        let consumer = p.start_consumer(Pipeline::config());
        eventually("the 3 records stored", || async { p.row_count().await == 3 }).await;
        eventually("the delivery acked", || async { consumer.processed() == 1 }).await;

        // The table: every text column of every row.
        let rows = p.rows().await;
        for row in &rows {
            assert_no_canary("masked_records", &format!("{row:?}"));
        }
        let outbox = p.outbox_rows().await;
        assert!(outbox.iter().any(|o| o.stream == RECORDS_MASKED), "{outbox:?}");
        for o in &outbox {
            let text = format!(
                "{} {} {} {}",
                o.stream,
                o.msg_key,
                o.headers,
                String::from_utf8_lossy(&o.body)
            );
            assert_no_canary("the outbox", &text);
        }

        // What each record became.
        let m1 = p.app.masked(r1.id).await.unwrap().unwrap();
        let m2 = p.app.masked(r2.id).await.unwrap().unwrap();
        let m3 = p.app.masked(r3.id).await.unwrap().unwrap();
        for (m, r) in [(&m1, &r1), (&m2, &r2), (&m3, &r3)] {
            assert_eq!(m.status, MaskStatus::Masked);
            assert_eq!(
                (m.org_id, m.system_id, m.receipt_id),
                (sub.org_id, sub.system_id, sub.receipt_id)
            );
            assert_eq!(m.category, r.envelope.category);
            assert_eq!(m.period, r.envelope.period);
            assert_eq!(m.form, Form::Raw);
            assert_eq!(m.policy_version, 1);
            assert_eq!(
                m.received_at.timestamp_micros(),
                sub.received_at.timestamp_micros()
            );
            assert!(m.findings.is_empty());
        }
        let p1 = m1.payload.as_ref().unwrap();
        assert!(is_token(p1["expert"]["citizen_id"].as_str().unwrap()), "{p1}");
        let name = p1["expert"]["full_name"].as_str().unwrap();
        assert!(
            name.starts_with('N') && name.chars().skip(1).all(|c| c == '*'),
            "{name}"
        );
        assert_eq!(p1["expert"]["phone"], "*******678");
        assert_eq!(
            p1["title"],
            "Đăng ký chuyên gia tư vấn về an toàn giao dịch điện tử"
        );
        let keys = |m: &etx_masking::MaskedRecord| m.match_tokens.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            keys(&m1),
            [
                "/expert/citizen_id",
                "/expert/organisation_tax_code",
                "/expert/phone"
            ]
        );
        assert_eq!(
            keys(&m2),
            [
                "/complainant/citizen_id",
                "/complainant/phone",
                "/subject_tax_code"
            ]
        );
        assert!(
            m3.match_tokens.is_empty(),
            "a tax code inside free text is no match key"
        );
        // The same citizen id, and the same phone in two spellings, give one token each.
        let cccd = p.match_token(CCCD);
        assert_eq!(m1.match_tokens["/expert/citizen_id"], cccd);
        assert_eq!(m2.match_tokens["/complainant/citizen_id"], cccd);
        assert_eq!(
            m1.match_tokens["/expert/phone"],
            m2.match_tokens["/complainant/phone"]
        );
        assert_eq!(
            m1.match_tokens["/expert/organisation_tax_code"],
            p.match_token(TAX_VALID)
        );
        assert_eq!(
            m2.match_tokens["/subject_tax_code"],
            p.match_token("0314409058002")
        );

        // The queue: records.masked carries the metadata of the three, and nothing in clear.
        p.start_relay();
        p.settled(1).await;
        let masked = p.read(RECORDS_MASKED).await;
        let ids: BTreeSet<RecordId> = announced(&masked).into_iter().map(|(id, _)| id).collect();
        assert_eq!(ids, BTreeSet::from([r1.id, r2.id, r3.id]));
        for d in &masked {
            assert_no_canary("a records.masked message", &String::from_utf8_lossy(&d.body));
            let body: Value = serde_json::from_slice(&d.body).unwrap();
            assert_eq!(body["org_id"], json!(sub.org_id));
            assert_eq!(body["receipt_id"], json!(sub.receipt_id));
            for r in body["records"].as_array().unwrap() {
                let members: BTreeSet<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
                assert_eq!(
                    members,
                    BTreeSet::from([
                        "record_id",
                        "category",
                        "schema_version",
                        "period",
                        "classification",
                        "priority",
                        "form",
                        "policy_version"
                    ])
                );
            }
        }
        assert!(p.read(MASKING_EVENTS).await.is_empty());

        // Every Redis stream of the test, read back entry by entry.
        if let Some(prefix) = &place.redis_prefix {
            let mut conn = redis_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(keys.iter().any(|k| k.contains(RECORDS_MASKED)), "{keys:?}");
            for key in keys {
                let entries: redis::Value = redis::cmd("XRANGE")
                    .arg(&key)
                    .arg("-")
                    .arg("+")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let mut text = String::new();
                flatten(&entries, &mut text);
                assert_no_canary(&format!("Redis stream {key}"), &text);
            }
        }
        p.stop().await;
        // The whole SQLite file (tables, indexes, the embedded queue, free pages) and its WAL.
        for file in place.sqlite_files() {
            if let Ok(bytes) = std::fs::read(&file) {
                let text = String::from_utf8_lossy(&bytes);
                for c in CANARIES {
                    assert!(!text.contains(c), "`{c}` appears in clear in {}", file.display());
                }
            }
        }
    }

    fn flatten(v: &redis::Value, out: &mut String) {
        match v {
            redis::Value::BulkString(b) => {
                out.push_str(&String::from_utf8_lossy(b));
                out.push('\n');
            }
            redis::Value::SimpleString(s) => {
                out.push_str(s);
                out.push('\n');
            }
            redis::Value::Array(items) | redis::Value::Set(items) => {
                for i in items {
                    flatten(i, out);
                }
            }
            redis::Value::Map(pairs) => {
                for (k, v) in pairs {
                    flatten(k, out);
                    flatten(v, out);
                }
            }
            _ => {}
        }
    }

    /// (b) Declared masked: held when it is not, stored as it arrived when it is.
    pub async fn a_record_declared_masked_with_a_clear_citizen_id_is_held_and_announced_only_as_an_event(
        mut p: Pipeline,
        _place: Arc<Place>,
    ) {
        let org = OrgId::new();
        let sub = Submission::new(org);
        let not_masked = sub.record(
            Category::Workforce,
            Priority::Normal,
            Form::Masked,
            expert(CCCD, "N******************", "*******678"),
        );
        let masked_payload = expert("********0123", "[REDACTED]", "*******678");
        let properly = sub.record(
            Category::Workforce,
            Priority::Normal,
            Form::Masked,
            masked_payload.clone(),
        );
        p.source.add(&[&not_masked, &properly]);
        p.publish(&sub.announcements(&[&not_masked, &properly])).await;
        p.start_relay();
        p.start_consumer(Pipeline::config());
        p.settled(1).await;

        let held = p.app.masked(not_masked.id).await.unwrap().unwrap();
        assert_eq!(held.status, MaskStatus::Held);
        assert_eq!(held.form, Form::Masked);
        assert_eq!(held.payload, None, "a held record keeps no payload");
        assert!(held.match_tokens.is_empty());
        assert_eq!(held.findings.len(), 1, "{:?}", held.findings);
        assert_eq!(held.findings[0].pointer, "/expert/citizen_id");
        assert_eq!(held.findings[0].kind, FindingKind::CitizenId);
        assert_no_canary("the held row", &format!("{:?}", p.rows().await));

        // Stored as it arrived (a masked value is kept, never re-tokenised), with no match token.
        let ok = p.app.masked(properly.id).await.unwrap().unwrap();
        assert_eq!(ok.status, MaskStatus::Masked);
        assert_eq!(ok.payload.as_ref(), Some(&masked_payload));
        assert!(ok.match_tokens.is_empty(), "{:?}", ok.match_tokens);

        // Only the properly masked one travels on; the held one is an event, without the value.
        let on_masked = announced(&p.read(RECORDS_MASKED).await);
        assert_eq!(on_masked, [(properly.id, Priority::Normal)]);
        let events = p.read(MASKING_EVENTS).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].key, not_masked.id.to_string());
        let text = String::from_utf8_lossy(&events[0].body).into_owned();
        assert_no_canary("the events.masking message", &text);
        let event: Value = serde_json::from_slice(&events[0].body).unwrap();
        assert_eq!(event["kind"], "record_held");
        assert_eq!(event["record_id"], json!(not_masked.id));
        assert_eq!(event["org_id"], json!(org));
        assert_eq!(
            event["findings"],
            json!([{"pointer": "/expert/citizen_id", "kind": "citizen_id"}])
        );

        // The operator's list.
        let all = p.app.held(None, 10).await.unwrap();
        assert_eq!(
            all.iter().map(|m| m.record_id).collect::<Vec<_>>(),
            [not_masked.id]
        );
        let mine = p.app.held(Some(&[org]), 10).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert!(p.app.held(Some(&[OrgId::new()]), 10).await.unwrap().is_empty());
        assert!(p.app.held(Some(&[]), 10).await.unwrap().is_empty());
        assert_eq!(p.app.masked(RecordId::new()).await.unwrap(), None);
        p.stop().await;
    }

    /// (c) At-least-once delivery, exactly-once effect: duplicates handled concurrently by two
    /// consumers and again later store and announce each record once.
    pub async fn an_announcement_delivered_twice_stores_and_announces_each_record_once(
        mut p: Pipeline,
        _place: Arc<Place>,
    ) {
        let mut all = Vec::new();
        let mut msgs = Vec::new();
        let mut first = None;
        for i in 0..10u64 {
            let sub = Submission::new(OrgId::new());
            let recs: Vec<SourceRecord> = (0..3)
                .map(|j| {
                    sub.record(
                        Category::Statistics,
                        Priority::Normal,
                        Form::Raw,
                        statistics(i * 10 + j),
                    )
                })
                .collect();
            let refs: Vec<&SourceRecord> = recs.iter().collect();
            p.source.add(&refs);
            let announcement = sub.announcements(&refs);
            first.get_or_insert_with(|| announcement.clone());
            // Each announcement twice, back to back.
            msgs.extend(announcement.iter().cloned());
            msgs.extend(announcement);
            all.extend(recs.iter().map(|r| r.id));
        }
        p.publish(&msgs).await;
        p.start_relay();
        let cfg = || Pipeline::config().with_batch_size(1);
        p.start_consumer(cfg().with_consumer("masking-a"));
        p.start_consumer(cfg().with_consumer("masking-b"));
        p.settled(20).await;

        // And once more, after everything was stored.
        p.publish(&first.unwrap()).await;
        p.settled(21).await;

        assert_eq!(p.row_count().await, 30);
        let ids = announced(&p.read(RECORDS_MASKED).await);
        let mut counts: BTreeMap<RecordId, usize> = BTreeMap::new();
        for (id, _) in &ids {
            *counts.entry(*id).or_default() += 1;
        }
        assert_eq!(counts.len(), 30, "every record announced");
        assert!(
            counts.values().all(|&n| n == 1),
            "each record announced once: {counts:?}"
        );
        assert_eq!(
            counts.keys().copied().collect::<BTreeSet<_>>(),
            all.into_iter().collect::<BTreeSet<_>>()
        );
        let dead: u64 = p.consumers.iter().map(|(h, _)| h.dead_lettered()).sum();
        assert_eq!(dead, 0);
        p.stop().await;
    }

    /// (d) A poison message goes to the operator at once, with why.
    pub async fn a_malformed_announcement_is_dead_lettered_with_its_reason(
        mut p: Pipeline,
        _place: Arc<Place>,
    ) {
        let sub = Submission::new(OrgId::new());
        let good = sub.record(Category::Statistics, Priority::Normal, Form::Raw, statistics(7));
        p.source.add(&[&good]);
        let mut msgs = vec![
            OutMessage {
                key: "not-json".into(),
                priority: Priority::Normal,
                headers: Default::default(),
                body: b"{\"org_id\": ".to_vec(),
            },
            OutMessage {
                key: "no-records".into(),
                priority: Priority::Normal,
                headers: Default::default(),
                body: serde_json::to_vec(&json!({
                    "org_id": OrgId::new(), "system_id": SystemId::new(), "receipt_id": ReceiptId::new()
                }))
                .unwrap(),
            },
        ];
        // A malformed message that quotes an identifier: the reason must not repeat it.
        let other = sub.record(Category::Statistics, Priority::Normal, Form::Raw, statistics(8));
        let mut quoting = sub.announcements(&[&other]).remove(0);
        let mut body: Value = serde_json::from_slice(&quoting.body).unwrap();
        body["records"][0]["category"] = json!(CCCD);
        quoting.body = serde_json::to_vec(&body).unwrap();
        quoting.key = "quotes-a-value".into();
        msgs.push(quoting);
        msgs.extend(sub.announcements(&[&good]));
        p.publish(&msgs).await;
        p.start_relay();
        let consumer = p.start_consumer(Pipeline::config());
        p.settled(4).await;

        assert_eq!((consumer.processed(), consumer.dead_lettered()), (1, 3));
        let dead = p.queue.dead_letters(RECORDS_RECEIVED, 10).await.unwrap();
        let reasons: BTreeMap<&str, &str> =
            dead.iter().map(|d| (d.key.as_str(), d.reason.as_str())).collect();
        assert_eq!(reasons.len(), 3, "{dead:?}");
        assert!(
            reasons["not-json"].starts_with("the records.received body is not JSON: EOF while parsing"),
            "{reasons:?}"
        );
        assert!(
            reasons["no-records"].contains("missing field `records`"),
            "{reasons:?}"
        );
        assert!(
            reasons["quotes-a-value"].contains("unknown variant `[CCCD]`"),
            "{reasons:?}"
        );
        assert_no_canary("a dead letter's reason", &format!("{reasons:?}"));
        assert_eq!(dead.iter().map(|d| d.attempts).max(), Some(1), "rejected at once");
        assert_eq!(
            p.app.masked(good.id).await.unwrap().unwrap().status,
            MaskStatus::Masked
        );
        assert_eq!(
            announced(&p.read(RECORDS_MASKED).await),
            [(good.id, Priority::Normal)]
        );
        p.stop().await;
    }

    /// (e) The source down for the first calls: retried, then stored, nothing lost.
    pub async fn records_are_retried_while_the_source_is_unavailable_and_then_stored(
        mut p: Pipeline,
        _place: Arc<Place>,
    ) {
        let sub = Submission::new(OrgId::new());
        let recs: Vec<SourceRecord> = (0..4)
            .map(|i| {
                sub.record(
                    Category::Workforce,
                    Priority::Normal,
                    Form::Raw,
                    expert(CCCD, NAME, if i % 2 == 0 { PHONE } else { "+84912345678" }),
                )
            })
            .collect();
        let refs: Vec<&SourceRecord> = recs.iter().collect();
        p.source.add(&refs);
        p.source.unavailable.store(3, Ordering::SeqCst);
        p.publish(&sub.announcements(&refs)).await;
        p.start_relay();
        let consumer = p.start_consumer(Pipeline::config());
        p.settled(1).await;

        assert!(p.source.calls().len() >= 4, "{} calls", p.source.calls().len());
        assert!(consumer.retried() >= 1, "retried {}", consumer.retried());
        assert_eq!((consumer.processed(), consumer.dead_lettered()), (1, 0));
        assert_eq!(p.row_count().await, 4);
        let ids: BTreeSet<RecordId> = announced(&p.read(RECORDS_MASKED).await)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, recs.iter().map(|r| r.id).collect());
        // One token for one person, whichever spelling of the phone.
        let tokens: BTreeSet<String> = p
            .rows()
            .await
            .iter()
            .map(|r| {
                let t: BTreeMap<String, String> = serde_json::from_str(&r.match_tokens).unwrap();
                t["/expert/phone"].clone()
            })
            .collect();
        assert_eq!(tokens.len(), 1);
        p.stop().await;
    }

    /// (e) An id the source does not have is retried (it is reclaimed later), and stored once
    /// it appears; the records of the same delivery that were there are stored at once.
    pub async fn a_record_not_yet_in_the_source_is_retried_until_it_appears(
        mut p: Pipeline,
        _place: Arc<Place>,
    ) {
        let sub = Submission::new(OrgId::new());
        let present = sub.record(Category::Statistics, Priority::Normal, Form::Raw, statistics(1));
        let late = sub.record(Category::Statistics, Priority::Normal, Form::Raw, statistics(2));
        p.source.add(&[&present]);
        p.publish(&sub.announcements(&[&present, &late])).await;
        p.start_relay();
        let consumer = p.start_consumer(Pipeline::config());
        eventually("the delivery retried", || async { consumer.retried() >= 1 }).await;
        assert!(p.app.masked(present.id).await.unwrap().is_some());
        assert!(p.app.masked(late.id).await.unwrap().is_none());
        assert_eq!(consumer.processed(), 0);

        p.source.add(&[&late]);
        p.settled(1).await;
        assert_eq!(consumer.dead_lettered(), 0);
        assert!(p.app.masked(late.id).await.unwrap().is_some());
        let ids = announced(&p.read(RECORDS_MASKED).await);
        assert_eq!(ids.len(), 2, "each record announced once: {ids:?}");
        assert_eq!(
            ids.iter().map(|(id, _)| *id).collect::<BTreeSet<_>>(),
            BTreeSet::from([present.id, late.id])
        );
        p.stop().await;
    }

    /// (f) R-DATA-2: when both wait, high-priority records are masked first and travel on
    /// `records.masked` at high priority, ahead of normal ones.
    pub async fn high_priority_records_are_masked_and_announced_before_normal_ones(
        mut p: Pipeline,
        _place: Arc<Place>,
    ) {
        let mut normal = Vec::new();
        for i in 0..3 {
            let sub = Submission::new(OrgId::new());
            let r = sub.record(Category::Statistics, Priority::Normal, Form::Raw, statistics(i));
            p.source.add(&[&r]);
            p.publish(&sub.announcements(&[&r])).await;
            normal.push(r.id);
        }
        let sub = Submission::new(OrgId::new());
        let urgent = sub.record(
            Category::Enforcement,
            Priority::High,
            Form::Raw,
            json!({ "case_type": "incident", "case_number": "SC-2026-0117", "subject_tax_code": TAX_VALID }),
        );
        p.source.add(&[&urgent]);
        p.publish(&sub.announcements(&[&urgent])).await;

        p.start_relay();
        p.start_consumer(Pipeline::config().with_batch_size(1));
        p.settled(4).await;

        let calls = p.source.calls();
        assert_eq!(calls.first(), Some(&vec![urgent.id]), "masked first: {calls:?}");
        let on_masked = announced(&p.read(RECORDS_MASKED).await);
        assert_eq!(on_masked.len(), 4, "{on_masked:?}");
        assert_eq!(on_masked[0], (urgent.id, Priority::High), "{on_masked:?}");
        assert!(
            on_masked[1..]
                .iter()
                .all(|(id, pr)| *pr == Priority::Normal && normal.contains(id))
        );
        p.stop().await;
    }

    /// (g) Issue 5 §2: a policy version published through one process is taken by another
    /// masking process on the same database without a restart; every record carries the
    /// version it was masked with, and a record stored before is never masked again.
    pub async fn a_policy_version_published_elsewhere_is_taken_without_a_restart_and_stored_records_keep_theirs(
        mut p: Pipeline,
        _place: Arc<Place>,
    ) {
        // The second process masks; the first one only publishes.
        let other = AppMasking::build(
            p.db.clone(),
            p.source.clone(),
            p.masker.clone(),
            Arc::new(TestVault::new()),
            None,
        )
        .await
        .unwrap()
        .with_policy_refresh(Duration::from_millis(100));
        let (handle, join) = other.spawn_consumer(p.queue.clone(), Pipeline::config());
        p.consumers.push((handle, join));
        p.start_relay();

        let sub = Submission::new(OrgId::new());
        let before = sub.record(
            Category::Workforce,
            Priority::Normal,
            Form::Raw,
            expert(CCCD, NAME, PHONE),
        );
        p.source.add(&[&before]);
        p.publish(&sub.announcements(&[&before])).await;
        p.settled(1).await;
        let m = other.masked(before.id).await.unwrap().unwrap();
        assert_eq!(m.policy_version, 1);
        assert_eq!(m.payload.as_ref().unwrap()["expert"]["phone"], "*******678");

        // Version 2: analysts see the last 2 digits of an expert's phone.
        let mut doc: Value = serde_json::from_str(BUILTIN_POLICY).unwrap();
        doc["version"] = json!(2);
        let rule = doc["fields"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|r| r["category"] == "workforce" && r["field"] == "/expert/phone")
            .unwrap();
        rule["audiences"]["analyst"] = json!({ "op": "partial", "keep_last": 2 });
        let author = etx_masking::Author {
            subject: "user:test",
            org_id: None,
        };
        let stored = p.app.policies().publish(&doc, author, Utc::now()).await.unwrap();
        assert_eq!(stored.meta.version, 2);
        assert_eq!(
            p.app.policies().cached().version(),
            2,
            "the publishing process at once"
        );
        eventually("the other process takes version 2", || async {
            other.policies().current().await.unwrap().version() == 2
        })
        .await;

        let sub2 = Submission::new(OrgId::new());
        let after = sub2.record(
            Category::Workforce,
            Priority::Normal,
            Form::Raw,
            expert(CCCD, NAME, PHONE),
        );
        p.source.add(&[&after]);
        p.publish(&sub2.announcements(&[&after])).await;
        // The first record announced again (a redelivery): left as it was.
        p.publish(&sub.announcements(&[&before])).await;
        p.settled(3).await;
        let m2 = other.masked(after.id).await.unwrap().unwrap();
        assert_eq!(m2.policy_version, 2);
        assert_eq!(m2.payload.as_ref().unwrap()["expert"]["phone"], "********78");
        let m1 = other.masked(before.id).await.unwrap().unwrap();
        assert_eq!((m1.policy_version, m1.masked_at), (1, m.masked_at));
        assert_eq!(m1.payload, m.payload);

        // Each record is announced with the version it was masked with, once.
        let versions: BTreeMap<RecordId, u64> = p
            .read(RECORDS_MASKED)
            .await
            .iter()
            .flat_map(|d| {
                let body: Value = serde_json::from_slice(&d.body).unwrap();
                body["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        (
                            r["record_id"].as_str().unwrap().parse().unwrap(),
                            r["policy_version"].as_u64().unwrap(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(versions, BTreeMap::from([(before.id, 1), (after.id, 2)]));
        p.stop().await;
    }
}

// Keeps the group constant in view: the consumer reads records.received as `masking`.
#[test]
fn the_stage_reads_records_received_as_group_masking() {
    let cfg = AppMasking::consumer_config();
    assert_eq!((cfg.stream(), cfg.group()), (RECORDS_RECEIVED, GROUP));
}
