//! The executable contract of [`crate::ports`] (R-REC, R-DATA-3): one async function per rule,
//! each taking a fresh, empty store. [`crate::MemoryStore`] passes it (this crate's
//! `tests/store_contract.rs`); every storage adapter runs the same functions against each of
//! its databases. Test support, compiled only with the `contract` feature: the functions panic
//! on the first broken rule.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, TimeZone, Utc};
use etx_domain::{
    Category, Form, OrgId, OrgKind, Period, ReceiptId, RecordId, SchemaVersion, SystemId, UserId,
};
use serde_json::{Value, json};

use crate::ReconcileConfig;
use crate::conflict::ResolutionChoice;
use crate::engine::{Context, Decision, DecisionKind, Reconciler};
use crate::ids::CanonicalId;
use crate::period::{ApprovalScope, PeriodApproval, PeriodKey, Reason};
use crate::ports::{
    ConflictFilter, ConflictStore, DecisionMemory, PeriodApprovals, ReconciliationStore, SaveError,
};
use crate::record::{IncomingRecord, MatchTokens, SourceRef};
use crate::service::{Reconciled, ReconciliationService};

/// A store implementing every port.
pub trait ContractStore: ReconciliationStore + ConflictStore + DecisionMemory + PeriodApprovals {}
impl<T: ReconciliationStore + ConflictStore + DecisionMemory + PeriodApprovals> ContractStore for T {}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, day, 8, 0, 0).unwrap()
}

fn record(kind: OrgKind, value: f64, day: u32) -> IncomingRecord {
    record_of(Category::Statistics, "2026-10", kind, value, day)
}

fn record_of(category: Category, period: &str, kind: OrgKind, value: f64, day: u32) -> IncomingRecord {
    let payload: Value = match category {
        Category::Statistics => json!({
            "indicator": "transaction_count", "transaction_kind": "e_contract", "value": value,
            "unit": "count", "dimensions": {"province_code": "01", "channel": "api"}
        }),
        _ => json!({
            "document_type": "decision", "document_number": format!("{value}/QĐ-BTTTT"),
            "title": "Quyết định ban hành quy chế", "issued_on": "2026-10-02", "status": "in_force"
        }),
    };
    let tokens = MatchTokens::new();
    IncomingRecord {
        record_id: RecordId::new(),
        source: SourceRef {
            org_id: OrgId::new(),
            org_kind: kind,
            system_id: SystemId::new(),
            receipt_id: ReceiptId::new(),
        },
        category,
        schema_version: SchemaVersion::V1,
        period: Period::parse(period).unwrap(),
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

/// Decides `r` against what `store` returns for it (approvals included).
async fn decide(store: &impl ContractStore, r: &IncomingRecord) -> Decision {
    let e = engine();
    let p = e.prepare(r.clone()).unwrap();
    let candidates = store.candidates(&p.query()).await.unwrap();
    let approvals = store
        .covering(r.source.org_id, r.category, r.period)
        .await
        .unwrap();
    let ctx = Context {
        candidates: &candidates,
        approvals: &approvals,
        ..Context::default()
    };
    e.decide(&p, &ctx, at(20)).unwrap()
}

/// Outcomes are final; links are checked against the version read; what is stored reads back
/// exactly as it was decided (contributions, payloads, tokens, provenance).
pub async fn links_are_versioned_and_outcomes_final(store: impl ContractStore) {
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
    assert_eq!(store.outcome(a.record_id).await.unwrap(), Some(d.summary()));
    assert_eq!(store.outcome(RecordId::new()).await.unwrap(), None);
    assert_eq!(
        store
            .canonical(CanonicalId::founded_by(a.record_id))
            .await
            .unwrap()
            .as_ref(),
        Some(&d.linked().unwrap().canonical),
        "a canonical record reads back as it was saved"
    );

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
    assert_eq!(&live, &dc.linked().unwrap().canonical);
    let query = engine().prepare(c.clone()).unwrap().query();
    assert_eq!(store.candidates(&query).await.unwrap(), vec![live]);
}

/// A batch (group commit): decisions made in order, a later one changing the canonical record
/// an earlier one founded, stored by `save_decisions`; the bulk reads answer for every record;
/// a redelivered batch replays; a batch whose first decision is stale stores nothing.
pub async fn batches_chain_decisions_and_read_in_bulk(store: impl ContractStore) {
    let svc = ReconciliationService::new(store, engine());
    let a = record(OrgKind::Province, 100.0, 2);
    let b = record(OrgKind::Ministry, 100.1, 3);
    let mut c = record(OrgKind::Province, 100.0, 4);
    c.source = a.source;
    c.source.receipt_id = ReceiptId::new();
    let d = record_of(Category::Statistics, "2026-11", OrgKind::Province, 7.0, 2);
    let e = record(OrgKind::ProvincialDepartment, 150.0, 5);
    let batch = vec![a.clone(), b.clone(), c.clone(), d.clone(), e.clone()];
    let out = svc.reconcile_batch(batch.clone(), at(20)).await;
    assert!(out.grouped, "decided and stored as one batch");
    let kinds: Vec<DecisionKind> = out
        .results
        .iter()
        .map(|(_, r)| match r {
            Ok(Reconciled::Decided(d)) => d.kind(),
            other => panic!("not decided now: {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            DecisionKind::NewCanonical,
            DecisionKind::Merge,
            DecisionKind::Duplicate,
            DecisionKind::NewCanonical,
            DecisionKind::Conflict
        ]
    );
    let store = svc.store();
    let ids: Vec<RecordId> = batch.iter().map(|r| r.record_id).collect();
    let mut asked = ids.clone();
    asked.push(RecordId::new());
    let outcomes = store.outcomes(&asked).await.unwrap();
    assert_eq!(outcomes.len(), 5, "every decided record, not the unknown one");
    for (id, r) in &out.results {
        assert_eq!(outcomes[id], r.as_ref().unwrap().summary());
    }
    let live = store
        .canonical(CanonicalId::founded_by(a.record_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.contributions.len(), 3, "a, b and the duplicate c");
    assert_eq!(live.version, 3, "founded, then changed twice in the same batch");
    let e2 = engine();
    let queries: Vec<_> = batch
        .iter()
        .map(|r| e2.prepare(r.clone()).unwrap().query())
        .collect();
    let mut found: Vec<CanonicalId> = store
        .candidates_for(&queries)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    found.sort();
    let mut expected = vec![
        CanonicalId::founded_by(a.record_id),
        CanonicalId::founded_by(d.record_id),
    ];
    expected.sort();
    assert_eq!(found, expected, "each canonical record once");
    let pairs: Vec<_> = batch
        .iter()
        .map(|r| (r.record_id, e2.prepare(r.clone()).unwrap().keys().source))
        .collect();
    let rejections = store.rejections_of(&pairs).await.unwrap();
    assert_eq!(rejections.len(), 5);
    assert!(rejections.iter().all(Vec::is_empty));

    // Delivered again: replayed, nothing written.
    let again = svc.reconcile_batch(batch, at(21)).await;
    for (id, r) in &again.results {
        assert_eq!(r.as_ref().unwrap(), &Reconciled::Replayed(outcomes[id]));
    }
    assert_eq!(
        store.canonical(live.id).await.unwrap().unwrap().version,
        3,
        "nothing written"
    );

    // A batch whose first decision was made on a state that changed stores nothing.
    let f = record(OrgKind::Department, 100.05, 6);
    let stale = decide(store, &f).await;
    let g = record(OrgKind::Ministry, 100.02, 7);
    store.save_decision(&decide(store, &g).await).await.unwrap();
    let h = record_of(Category::Statistics, "2026-12", OrgKind::Province, 1.0, 2);
    let fresh = decide(store, &h).await;
    assert!(matches!(
        store.save_decisions(&[stale, fresh]).await,
        Err(SaveError::Stale)
    ));
    assert_eq!(store.outcome(f.record_id).await.unwrap(), None);
    assert_eq!(store.outcome(h.record_id).await.unwrap(), None);
    // The service, reading again, decides both.
    let out = svc.reconcile_batch(vec![f.clone(), h.clone()], at(22)).await;
    assert!(out.grouped);
    assert!(
        out.results
            .iter()
            .all(|(_, r)| matches!(r, Ok(Reconciled::Decided(_))))
    );
}

/// For adapters that store a batch atomically (the SQL store; the ports' default does not):
/// a batch whose *last* decision is stale stores none of it, and neither does one founding the
/// same fact twice.
pub async fn batches_are_atomic(store: impl ContractStore) {
    let a = record(OrgKind::Province, 100.0, 2);
    store.save_decision(&decide(&store, &a).await).await.unwrap();
    let f = record(OrgKind::Department, 100.05, 6);
    let stale = decide(&store, &f).await;
    let g = record(OrgKind::Ministry, 100.02, 7);
    store.save_decision(&decide(&store, &g).await).await.unwrap();
    let h = record_of(Category::Statistics, "2026-12", OrgKind::Province, 1.0, 2);
    let fresh = decide(&store, &h).await;
    let k = record_of(Category::Statistics, "2027-01", OrgKind::Province, 1.0, 2);
    let fresh2 = decide(&store, &k).await;
    assert!(matches!(
        store
            .save_decisions(&[fresh.clone(), fresh2.clone(), stale])
            .await,
        Err(SaveError::Stale)
    ));
    for r in [&f, &h, &k] {
        assert_eq!(store.outcome(r.record_id).await.unwrap(), None, "nothing stored");
    }
    assert_eq!(
        store
            .canonical(CanonicalId::founded_by(h.record_id))
            .await
            .unwrap(),
        None
    );

    // Two records of one fact, each founding it (decided apart): stale, nothing stored.
    let m = record_of(Category::Statistics, "2027-02", OrgKind::Province, 3.0, 2);
    let n = record_of(Category::Statistics, "2027-02", OrgKind::Ministry, 3.0, 3);
    let (dm, dn) = (decide(&store, &m).await, decide(&store, &n).await);
    assert!(matches!(
        store.save_decisions(&[fresh.clone(), dm, dn]).await,
        Err(SaveError::Stale)
    ));
    assert_eq!(store.outcome(h.record_id).await.unwrap(), None);
    store.save_decisions(&[fresh, fresh2]).await.unwrap();
    assert!(store.outcome(k.record_id).await.unwrap().is_some());
}

/// A second founding of the same fact (two consumers, two records, both saw nothing) is stale,
/// and so is a founding of a source key another canonical record holds.
pub async fn a_fact_is_founded_once(store: impl ContractStore) {
    let a = record(OrgKind::Province, 100.0, 2);
    let b = record(OrgKind::Ministry, 100.0, 3);
    let da = decide(&store, &a).await;
    let db = decide(&store, &b).await;
    assert_eq!(db.kind(), DecisionKind::NewCanonical);
    store.save_decision(&da).await.unwrap();
    assert!(matches!(store.save_decision(&db).await, Err(SaveError::Stale)));
    let db = decide(&store, &b).await;
    assert_eq!(db.kind(), DecisionKind::Merge, "read again, it merges");
    store.save_decision(&db).await.unwrap();

    // The same record decided by two consumers at once: one founding, the other already
    // decided (or stale), never two canonical records.
    let c = record_of(Category::Statistics, "2026-11", OrgKind::Province, 5.0, 2);
    let first = decide(&store, &c).await;
    let second = decide(&store, &c).await;
    store.save_decision(&first).await.unwrap();
    assert!(matches!(
        store.save_decision(&second).await,
        Err(SaveError::AlreadyDecided | SaveError::Stale)
    ));
}

/// A late, older record renames the canonical record; every old id still finds it.
pub async fn renamed_canonicals_are_found_by_their_old_ids(store: impl ContractStore) {
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
        assert_eq!(live.contributions.len(), 3);
    }
    assert_eq!(
        store
            .canonical(CanonicalId::founded_by(RecordId::new()))
            .await
            .unwrap(),
        None
    );
    // A link decided against a retired id is stale.
    let stale = record(OrgKind::District, 100.0, 9);
    let young_only = store
        .canonical(CanonicalId::founded_by(older.record_id))
        .await
        .unwrap()
        .unwrap();
    let mut retired = young_only.clone();
    retired.id = CanonicalId::founded_by(young.record_id);
    let e = engine();
    let p = e.prepare(stale).unwrap();
    let ctx = Context {
        candidates: std::slice::from_ref(&retired),
        ..Context::default()
    };
    let d = e.decide(&p, &ctx, at(20)).unwrap();
    assert!(matches!(store.save_decision(&d).await, Err(SaveError::Stale)));
}

/// The conflict queue: listed, filtered, paged, resolved once; rejections remembered.
pub async fn conflicts_are_listed_and_resolved_once(store: impl ContractStore) {
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
    assert!(matches!(
        store.save_decision(&Decision::Conflict(conflict.clone())).await,
        Err(SaveError::AlreadyDecided)
    ));
    assert_eq!(
        store.conflict(conflict.id).await.unwrap().as_ref(),
        Some(&*conflict),
        "a conflict reads back as it was saved"
    );
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
    let all = ConflictFilter {
        limit: 10,
        ..ConflictFilter::default()
    };
    assert_eq!(
        store.conflicts(&all).await.unwrap(),
        vec![resolved.conflict.clone()]
    );
    let source = engine().prepare(b.clone()).unwrap().keys().source;
    assert_eq!(
        store.rejections(RecordId::new(), source).await.unwrap(),
        vec![resolved.rejection.clone().unwrap()]
    );
    assert_eq!(
        store
            .rejections(b.record_id, engine().prepare(a.clone()).unwrap().keys().source)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store.outcome(b.record_id).await.unwrap().map(|o| o.kind),
        Some(DecisionKind::Resolved)
    );
    assert_eq!(
        store
            .canonical(CanonicalId::founded_by(b.record_id))
            .await
            .unwrap()
            .as_ref(),
        Some(&resolved.canonical)
    );
}

/// Choosing a version links the incoming record with the operator's value; filters select by
/// category, period and organisation, `limit` caps the page.
pub async fn resolutions_link_and_filters_select(store: impl ContractStore) {
    let a = record(OrgKind::Province, 100.0, 2);
    store.save_decision(&decide(&store, &a).await).await.unwrap();
    let b = record(OrgKind::Ministry, 300.0, 3);
    let c = record(OrgKind::Ministry, 400.0, 4);
    let p = record_of(Category::Policy, "2026-10", OrgKind::Ministry, 7.0, 2);
    store.save_decision(&decide(&store, &p).await).await.unwrap();
    let mut p2 = record_of(Category::Policy, "2026-10", OrgKind::Province, 7.0, 3);
    p2.payload["status"] = json!("repealed");
    p2.content = IncomingRecord::content_of(&p2.payload, &p2.match_tokens);
    let mut conflicts = Vec::new();
    for r in [&b, &c, &p2] {
        let Decision::Conflict(x) = decide(&store, r).await else {
            panic!("beyond tolerance");
        };
        store.save_decision(&Decision::Conflict(x.clone())).await.unwrap();
        conflicts.push(x);
    }
    let base = ConflictFilter {
        limit: 10,
        ..ConflictFilter::default()
    };
    let ids = |v: Vec<crate::Conflict>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    let mut expected: Vec<_> = conflicts.iter().map(|c| c.id).collect();
    expected.sort();
    assert_eq!(
        ids(store.conflicts(&base).await.unwrap()),
        expected,
        "ordered by id"
    );
    let stats = ConflictFilter {
        category: Some(Category::Statistics),
        ..base
    };
    assert_eq!(store.conflicts(&stats).await.unwrap().len(), 2);
    let of_c = ConflictFilter {
        org: Some(c.source.org_id),
        ..base
    };
    assert_eq!(ids(store.conflicts(&of_c).await.unwrap()), vec![conflicts[1].id]);
    let november = ConflictFilter {
        period: Some(Period::parse("2026-11").unwrap()),
        ..base
    };
    assert!(store.conflicts(&november).await.unwrap().is_empty());
    let one = ConflictFilter { limit: 1, ..base };
    assert_eq!(ids(store.conflicts(&one).await.unwrap()), vec![expected[0]]);
    let none = ConflictFilter { limit: 0, ..base };
    assert!(store.conflicts(&none).await.unwrap().is_empty());

    let conflict = &conflicts[0];
    let live = store.canonical(conflict.target.id).await.unwrap().unwrap();
    let resolved = engine()
        .resolve(
            conflict,
            ResolutionChoice::Choose { record: b.record_id },
            UserId::new(),
            Some("Số liệu của Bộ đã được xác nhận".into()),
            &live,
            &[],
            at(21),
        )
        .unwrap();
    store.save_resolution(&resolved).await.unwrap();
    let now = store.canonical(conflict.target.id).await.unwrap().unwrap();
    assert_eq!(now, resolved.canonical);
    assert!(now.operator_override.is_some());
    assert_eq!(now.payload["value"], json!(300.0));
    assert_eq!(
        store.conflict(conflict.id).await.unwrap(),
        Some(resolved.conflict.clone())
    );
    // The second conflict's target changed meanwhile: its resolution, computed on the old
    // version, is stale.
    let second = &conflicts[1];
    let resolved = engine()
        .resolve(
            second,
            ResolutionChoice::Choose { record: c.record_id },
            UserId::new(),
            None,
            &live,
            &[],
            at(21),
        )
        .unwrap();
    assert!(matches!(
        store.save_resolution(&resolved).await,
        Err(SaveError::Stale)
    ));
    assert!(store.conflict(second.id).await.unwrap().unwrap().is_open());
}

/// Approvals are versioned and stop writes decided before them; held records are listed
/// until they are decided.
pub async fn approvals_are_versioned_and_stop_late_writes(store: impl ContractStore) {
    let a = record(OrgKind::Province, 100.0, 2);
    let key = PeriodKey {
        scope: ApprovalScope::Org(a.source.org_id),
        category: a.category,
        period: a.period,
    };
    let d = decide(&store, &a).await;
    assert_eq!(store.approval(&key).await.unwrap(), None);
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
        vec![approved.clone()]
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

    // Decided now: held, and listed under the approval.
    let held = decide(&store, &a).await;
    assert_eq!(held.kind(), DecisionKind::Held);
    store.save_decision(&held).await.unwrap();
    assert_eq!(store.held(&key).await.unwrap(), vec![a.record_id]);
    assert_eq!(
        store.outcome(a.record_id).await.unwrap().map(|o| o.kind),
        Some(DecisionKind::Held)
    );
    // An approval for everyone covers every organisation too.
    let all_key = PeriodKey {
        scope: ApprovalScope::All,
        ..key
    };
    let all = PeriodApproval::open(all_key)
        .approve(UserId::new(), at(3))
        .unwrap();
    store.save_approval(&all).await.unwrap();
    assert_eq!(
        store.covering(OrgId::new(), a.category, a.period).await.unwrap(),
        vec![all.clone()]
    );
    let reason = Reason::parse("Bổ sung số liệu theo công văn 12/STP").unwrap();
    for (k, approval) in [(all_key, all), (key, approved)] {
        let reopened = approval.reopen(UserId::new(), reason.clone(), at(4)).unwrap();
        store.save_approval(&reopened).await.unwrap();
        assert_eq!(store.approval(&k).await.unwrap(), Some(reopened));
    }
    // Reopened: decided for good, no longer held.
    let d = decide(&store, &a).await;
    assert_eq!(d.kind(), DecisionKind::NewCanonical);
    store.save_decision(&d).await.unwrap();
    assert!(store.held(&key).await.unwrap().is_empty());
    assert_eq!(
        store.outcome(a.record_id).await.unwrap().map(|o| o.kind),
        Some(DecisionKind::NewCanonical)
    );
}
