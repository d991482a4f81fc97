//! The port contracts of `ports.rs` (R-REC, R-DATA-3), checked on the in-memory reference
//! store. The functions take any store, so the server's SQLite and PostgreSQL adapters can run
//! the same suite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeZone, Utc};
use etx_domain::{
    Category, Form, OrgId, OrgKind, Period, ReceiptId, RecordId, SchemaVersion, SystemId, UserId,
};
use etx_reconciliation_core::{
    ApprovalScope, CanonicalId, ConflictFilter, ConflictStore, Context, Decision, DecisionKind,
    DecisionMemory, IncomingRecord, MatchTokens, MemoryStore, PeriodApproval, PeriodApprovals, PeriodKey,
    ReconcileConfig, Reconciler, ReconciliationStore, ResolutionChoice, SaveError, SourceRef,
};
use serde_json::{Value, json};

trait Store: ReconciliationStore + ConflictStore + DecisionMemory + PeriodApprovals {}
impl<T: ReconciliationStore + ConflictStore + DecisionMemory + PeriodApprovals> Store for T {}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 8, 0, 0).unwrap()
}

fn record(kind: OrgKind, value: f64, day: u32) -> IncomingRecord {
    let payload: Value = json!({
        "indicator": "transaction_count", "transaction_kind": "e_contract", "value": value,
        "unit": "count", "dimensions": {"province_code": "01"}
    });
    let tokens = MatchTokens::new();
    IncomingRecord {
        record_id: RecordId::new(),
        source: SourceRef {
            org_id: OrgId::new(),
            org_kind: kind,
            system_id: SystemId::new(),
            receipt_id: ReceiptId::new(),
        },
        category: Category::Statistics,
        schema_version: SchemaVersion::V1,
        period: Period::parse("2026-10").unwrap(),
        received_at: at(day),
        masking_policy_version: 2,
        form: Form::Raw,
        content: IncomingRecord::content_of(&payload, &tokens),
        payload,
        match_tokens: tokens,
        reporter_territory: None,
    }
}

fn engine() -> Reconciler {
    Reconciler::new(ReconcileConfig::default()).unwrap()
}

/// Decides `r` against what `store` returns for it.
async fn decide(store: &impl Store, r: &IncomingRecord) -> Decision {
    let e = engine();
    let p = e.prepare(r.clone()).unwrap();
    let candidates = store.candidates(&p.query()).await.unwrap();
    let ctx = Context {
        candidates: &candidates,
        ..Context::default()
    };
    e.decide(&p, &ctx, at(20)).unwrap()
}

async fn links_are_versioned_and_outcomes_final(store: impl Store) {
    let a = record(OrgKind::Province, 100.0, 2);
    let d = decide(&store, &a).await;
    store.save_decision(&d).await.unwrap();
    assert!(matches!(
        store.save_decision(&d).await,
        Err(SaveError::AlreadyDecided)
    ));
    assert_eq!(
        store.outcome(a.record_id).await.unwrap().map(|o| o.kind),
        Some(DecisionKind::NewCanonical)
    );
    assert_eq!(store.outcome(RecordId::new()).await.unwrap(), None);

    // Two consumers decide on the same canonical record; the second save is stale.
    let b = record(OrgKind::Ministry, 100.1, 3);
    let c = record(OrgKind::ProvincialDepartment, 100.2, 4);
    let db = decide(&store, &b).await;
    let dc = decide(&store, &c).await;
    store.save_decision(&db).await.unwrap();
    assert!(matches!(store.save_decision(&dc).await, Err(SaveError::Stale)));
    assert_eq!(
        store.outcome(c.record_id).await.unwrap(),
        None,
        "nothing of it stored"
    );
    let dc = decide(&store, &c).await;
    store.save_decision(&dc).await.unwrap();
    let live = store
        .canonical(CanonicalId::founded_by(a.record_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.contributions.len(), 3);
    assert_eq!(live.version, 3);
}

async fn renamed_canonicals_are_found_by_their_old_ids(store: impl Store) {
    let young = record(OrgKind::Province, 100.0, 5);
    store.save_decision(&decide(&store, &young).await).await.unwrap();
    let old = record(OrgKind::Ministry, 100.0, 1);
    let d = decide(&store, &old).await;
    let linked = d.linked().unwrap();
    assert_eq!(linked.retired(), Some(CanonicalId::founded_by(young.record_id)));
    store.save_decision(&d).await.unwrap();
    let mut older = record(OrgKind::Commune, 100.0, 1);
    older.received_at = Utc.with_ymd_and_hms(2026, 10, 31, 0, 0, 0).unwrap();
    store.save_decision(&decide(&store, &older).await).await.unwrap();
    let expected = CanonicalId::founded_by(older.record_id);
    for id in [young.record_id, old.record_id, older.record_id] {
        let live = store
            .canonical(CanonicalId::founded_by(id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(live.id, expected, "following merged_into to the end");
    }
    assert_eq!(
        store
            .canonical(CanonicalId::founded_by(RecordId::new()))
            .await
            .unwrap(),
        None
    );
}

async fn conflicts_are_listed_and_resolved_once(store: impl Store) {
    let a = record(OrgKind::Province, 100.0, 2);
    store.save_decision(&decide(&store, &a).await).await.unwrap();
    let b = record(OrgKind::Ministry, 200.0, 3);
    let Decision::Conflict(conflict) = decide(&store, &b).await else {
        panic!("beyond tolerance");
    };
    store
        .save_decision(&Decision::Conflict(conflict.clone()))
        .await
        .unwrap();
    let open = ConflictFilter {
        open_only: true,
        limit: 10,
        ..ConflictFilter::default()
    };
    assert_eq!(store.conflicts(&open).await.unwrap().len(), 1);
    let after = ConflictFilter {
        after: Some(conflict.id),
        ..open
    };
    assert!(store.conflicts(&after).await.unwrap().is_empty());
    let live = store.canonical(conflict.target.id).await.unwrap().unwrap();
    let resolved = engine()
        .resolve(
            &conflict,
            ResolutionChoice::Reject,
            UserId::new(),
            None,
            &live,
            &[],
            at(21),
        )
        .unwrap();
    store.save_resolution(&resolved).await.unwrap();
    assert!(matches!(
        store.save_resolution(&resolved).await,
        Err(SaveError::AlreadyDecided)
    ));
    assert!(store.conflicts(&open).await.unwrap().is_empty());
    let source = engine().prepare(b.clone()).unwrap().keys().source;
    assert_eq!(store.rejections(RecordId::new(), source).await.unwrap().len(), 1);
    assert_eq!(
        store.outcome(b.record_id).await.unwrap().map(|o| o.kind),
        Some(DecisionKind::Resolved)
    );
}

async fn approvals_are_versioned_and_stop_late_writes(store: impl Store) {
    let a = record(OrgKind::Province, 100.0, 2);
    let key = PeriodKey {
        scope: ApprovalScope::Org(a.source.org_id),
        category: a.category,
        period: a.period,
    };
    let d = decide(&store, &a).await;
    let approved = PeriodApproval::open(key).approve(UserId::new(), at(3)).unwrap();
    store.save_approval(&approved).await.unwrap();
    assert!(matches!(
        store.save_approval(&approved).await,
        Err(SaveError::Stale)
    ));
    assert_eq!(store.approval(&key).await.unwrap(), Some(approved.clone()));
    assert_eq!(
        store
            .covering(a.source.org_id, a.category, a.period)
            .await
            .unwrap(),
        vec![approved]
    );
    assert!(
        store
            .covering(OrgId::new(), a.category, a.period)
            .await
            .unwrap()
            .is_empty()
    );
    // Decided before the approval, saved after it: refused.
    assert!(matches!(store.save_decision(&d).await, Err(SaveError::Stale)));
}

#[tokio::test]
async fn memory_store_keeps_versions_and_final_outcomes() {
    links_are_versioned_and_outcomes_final(MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_follows_merged_into() {
    renamed_canonicals_are_found_by_their_old_ids(MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_conflict_queue() {
    conflicts_are_listed_and_resolved_once(MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_approvals() {
    approvals_are_versioned_and_stop_late_writes(MemoryStore::new()).await;
}
