//! The submit use case over a fake store (R-ING-1, R-ING-4, R-ING-5, R-SRC-2): validation
//! happens before the store is called, hashes do not depend on the wire format, and
//! idempotency facts are derived as documented.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use etx_crypto::KeyedHasher;
use etx_domain::{IdempotencyKey, Method, OrgId, ReceiptId, RecordId, SystemId};
use etx_ingestion_core::{
    IngestError, IngestionService, Limits, Receipt, RecordStore, SchemaRegistry, SourceCaller, StoreError,
    StoredRecord, Submission, SubmitError, SubmitOutcome,
};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Fake {
    seen: Mutex<Vec<Submission>>,
}

#[async_trait::async_trait]
impl RecordStore for Fake {
    async fn submit(&self, s: Submission) -> Result<SubmitOutcome, SubmitError> {
        let r = Receipt {
            id: s.receipt_id,
            org_id: s.org_id,
            system_id: s.system_id,
            record_ids: s.records.iter().map(|r| r.id).collect(),
            received_at: s.received_at,
            content_hash: s.content_hash,
            idempotency_key: s.idempotency_key.clone(),
        };
        self.seen.lock().unwrap().push(s);
        Ok(SubmitOutcome::Created(r))
    }
    async fn record(
        &self,
        _: etx_domain::authz::OrgScope,
        _: RecordId,
    ) -> Result<Option<StoredRecord>, StoreError> {
        Ok(None)
    }
    async fn receipt(
        &self,
        _: etx_domain::authz::OrgScope,
        _: ReceiptId,
    ) -> Result<Option<Receipt>, StoreError> {
        Ok(None)
    }
}

fn service() -> IngestionService<Fake> {
    IngestionService::new(
        Fake::default(),
        Arc::new(SchemaRegistry::load().unwrap()),
        Arc::new(KeyedHasher::new(&[1u8; 32])),
        Limits { max_records: 5 },
    )
}

fn caller() -> SourceCaller {
    SourceCaller {
        org_id: OrgId::new(),
        system_id: SystemId::new(),
        key_id: None,
    }
}

fn example() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../contracts/examples/records/statistics/02-failed-public-services-hanoi.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn nothing_reaches_the_store_when_one_item_is_invalid() {
    let svc = service();
    let mut bad = example();
    bad["payload"]["value"] = json!(-1);
    let err = svc
        .submit(caller(), vec![example(), bad], false, None)
        .await
        .unwrap_err();
    match err {
        IngestError::Invalid(v) => assert!(v.iter().all(|f| f.item == Some(1)), "{v:?}"),
        other => panic!("{other:?}"),
    }
    let err = svc
        .submit(caller(), vec![json!({"category": "statistics"})], true, None)
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::Invalid(v) if v.iter().all(|f| f.item.is_none())));
}

#[tokio::test]
async fn a_state_secret_anywhere_refuses_the_whole_submission() {
    let svc = service();
    let mut secret = example();
    secret["classification"] = json!("tuyệt mật");
    let err = svc
        .submit(caller(), vec![example(), secret], false, None)
        .await
        .unwrap_err();
    assert!(matches!(err, IngestError::StateSecret(_)));
}

#[tokio::test]
async fn the_record_limit_is_enforced_both_ways() {
    let svc = service();
    assert!(matches!(
        svc.submit(caller(), vec![], false, None).await,
        Err(IngestError::BatchSize { count: 0, .. })
    ));
    let six = vec![example(); 6];
    assert!(matches!(
        svc.submit(caller(), six, false, None).await,
        Err(IngestError::BatchSize { count: 6, max: 5 })
    ));
}

#[test]
fn key_order_and_wire_format_do_not_change_the_content_hash() {
    let svc = service();
    let c = caller();
    let a = svc
        .prepare(c, vec![example()], true, None, Method::Realtime)
        .unwrap();
    let reordered: Value = serde_json::from_str(&{
        let v = example();
        let mut keys: Vec<(String, Value)> = v.as_object().unwrap().clone().into_iter().collect();
        keys.reverse();
        serde_json::to_string(&serde_json::Map::from_iter(keys)).unwrap()
    })
    .unwrap();
    let b = svc
        .prepare(c, vec![reordered], true, None, Method::Realtime)
        .unwrap();
    assert_eq!(a.content_hash, b.content_hash);
    assert_eq!(a.request_mac, b.request_mac);
    let xml = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../contracts/examples/records/statistics/02-failed-public-services-hanoi.xml"
    ))
    .unwrap();
    let items = etx_ingestion_core::xml::parse_records(svc.schemas(), &xml).unwrap();
    assert!(!items.single, "a <records> root is an array of one");
    let x = svc
        .prepare(c, items.items, items.single, None, Method::Realtime)
        .unwrap();
    let as_array = svc
        .prepare(c, vec![example()], false, None, Method::Realtime)
        .unwrap();
    assert_eq!(
        as_array.content_hash, x.content_hash,
        "the same records in XML hash like their JSON twin"
    );
    let mut other = example();
    other["payload"]["value"] = json!(999_999);
    let d = svc.prepare(c, vec![other], true, None, Method::Realtime).unwrap();
    assert_ne!(a.content_hash, d.content_hash);
}

#[test]
fn the_submission_key_is_the_header_or_a_single_records_own_key() {
    let svc = service();
    let c = caller();
    let mut rec = example();
    rec["idempotency_key"] = json!("own-key");
    let single = svc
        .prepare(c, vec![rec.clone()], true, None, Method::Realtime)
        .unwrap();
    assert_eq!(
        single.idempotency_key.as_ref().map(|k| k.as_str()),
        Some("own-key")
    );
    let header = IdempotencyKey::parse("header-key").unwrap();
    let with_header = svc
        .prepare(c, vec![rec.clone()], true, Some(header), Method::Realtime)
        .unwrap();
    assert_eq!(
        with_header.idempotency_key.as_ref().map(|k| k.as_str()),
        Some("header-key")
    );
    let mut rec2 = example();
    rec2["idempotency_key"] = json!("other-key");
    let array = svc
        .prepare(c, vec![rec.clone(), rec2], false, None, Method::Realtime)
        .unwrap();
    assert!(
        array.idempotency_key.is_none(),
        "records of an array keep their own keys"
    );
    let dup = svc
        .prepare(c, vec![rec.clone(), rec], false, None, Method::Realtime)
        .unwrap_err();
    assert!(
        matches!(dup, IngestError::Invalid(v) if v[0].path == "/idempotency_key" && v[0].item == Some(1))
    );
}
