//! The reconciliation use cases (R-REC, R-DATA-3), generic over the ports: reconcile one
//! incoming record, resolve a conflict, approve and reopen a period. The queue consumer calls
//! [`ReconciliationService::reconcile`] once per `records.masked` message and acknowledges the
//! message when it returns `Ok`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use etx_domain::{Category, OrgId, Period, UserId};

use crate::canonical::CanonicalRecord;
use crate::conflict::{ResolutionChoice, ResolveError, Resolved};
use crate::engine::{
    CandidateQuery, Context, DecideError, Decision, DecisionKind, DecisionSummary, Prepared, Reconciler,
};
use crate::ids::{CanonicalId, ConflictId};
use crate::period::{PeriodApproval, PeriodError, PeriodKey, Reason};
use crate::ports::{
    ConflictStore, DecisionMemory, PeriodApprovals, ReconciliationStore, SaveError, StoreError,
};
use crate::record::IncomingRecord;
use etx_domain::RecordId;

/// How many times a use case re-reads and re-decides after a concurrent change.
const ATTEMPTS: usize = 5;

/// Why a record could not be reconciled.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The record cannot be decided on (unreadable payload, broken candidate lookup): retrying
    /// will not help; the consumer dead-letters the message.
    #[error(transparent)]
    Decide(#[from] DecideError),
    /// Other consumers kept changing the same canonical records: retry later.
    #[error("the canonical records keep changing; retry")]
    Busy,
    /// A port failed.
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// Why a conflict could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveConflictError {
    /// No such conflict.
    #[error("no such conflict")]
    NotFound,
    /// Its canonical record no longer exists (a broken store).
    #[error("the conflict's canonical record no longer exists")]
    TargetGone,
    /// The resolution is refused.
    #[error(transparent)]
    Refused(#[from] ResolveError),
    /// The canonical record kept changing: retry.
    #[error("the canonical record keeps changing; retry")]
    Busy,
    /// A port failed.
    #[error(transparent)]
    Unknown(anyhow::Error),
}

/// Why a period change failed.
#[derive(Debug, thiserror::Error)]
pub enum PeriodChangeError {
    /// The change is refused.
    #[error(transparent)]
    Refused(#[from] PeriodError),
    /// Someone else changed the period at the same time: read it again.
    #[error("the period was changed by someone else")]
    Busy,
    /// A port failed.
    #[error(transparent)]
    Unknown(anyhow::Error),
}

macro_rules! unknown_from {
    ($($t:ty),*) => {$(
        impl From<StoreError> for $t {
            fn from(e: StoreError) -> Self {
                match e {
                    StoreError::Unknown(e) => Self::Unknown(e),
                }
            }
        }
    )*};
}
unknown_from!(ReconcileError, ResolveConflictError, PeriodChangeError);

/// The result of reconciling a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconciled {
    /// Decided now.
    Decided(Box<Decision>),
    /// Decided before (a redelivery): the stored outcome, nothing written.
    Replayed(DecisionSummary),
}

impl Reconciled {
    /// The outcome either way.
    pub fn summary(&self) -> DecisionSummary {
        match self {
            Self::Decided(d) => d.summary(),
            Self::Replayed(s) => *s,
        }
    }
}

/// Returns to the executor once (whatever the runtime), so a long batch never holds a worker
/// thread between two decisions.
async fn yield_now() {
    struct YieldNow(bool);
    impl std::future::Future for YieldNow {
        type Output = ();
        fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
            if self.0 {
                return std::task::Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    YieldNow(false).await;
}

/// What [`ReconciliationService::reconcile_batch`] did.
#[derive(Debug)]
pub struct BatchReconciled {
    /// One result per record, in the order given.
    pub results: Vec<(RecordId, Result<Reconciled, ReconcileError>)>,
    /// Whether the records not decided before were decided and stored as one batch (`false`:
    /// one by one, after the batch could not be).
    pub grouped: bool,
}

/// A reopened period and the records it held, for the server to reconcile again.
#[derive(Debug, Clone, PartialEq)]
pub struct Reopened {
    /// The period, now reopened.
    pub approval: PeriodApproval,
    /// The records that were held, oldest first.
    pub held: Vec<RecordId>,
}

/// The reconciliation service over a store implementing every port.
#[derive(Debug)]
pub struct ReconciliationService<S> {
    store: S,
    engine: Reconciler,
}

impl<S> ReconciliationService<S>
where
    S: ReconciliationStore + ConflictStore + DecisionMemory + PeriodApprovals,
{
    /// The service over `store`, deciding with `engine`.
    pub fn new(store: S, engine: Reconciler) -> Self {
        Self { store, engine }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The engine.
    pub fn engine(&self) -> &Reconciler {
        &self.engine
    }

    /// Reconciles one incoming record (R-REC). Idempotent by record id: a record that already
    /// has an outcome (other than held) is [`Reconciled::Replayed`]. A concurrent change of the
    /// same canonical records makes it read and decide again, up to 5 times.
    #[tracing::instrument(skip_all, fields(record = %record.record_id, category = %record.category, period = %record.period))]
    pub async fn reconcile(
        &self,
        record: IncomingRecord,
        now: DateTime<Utc>,
    ) -> Result<Reconciled, ReconcileError> {
        let id = record.record_id;
        if let Some(prior) = self.store.outcome(id).await?
            && prior.kind != DecisionKind::Held
        {
            return Ok(Reconciled::Replayed(prior));
        }
        let prepared = self.engine.prepare(record)?;
        let rec = prepared.record();
        let rejections = self.store.rejections(id, prepared.keys().source).await?;
        for _ in 0..ATTEMPTS {
            let approvals = self
                .store
                .covering(rec.source.org_id, rec.category, rec.period)
                .await?;
            let candidates = self.store.candidates(&prepared.query()).await?;
            let ctx = Context {
                candidates: &candidates,
                rejections: &rejections,
                approvals: &approvals,
            };
            let decision = match self.engine.decide(&prepared, &ctx, now) {
                Ok(d) => d,
                Err(DecideError::AlreadyReconciled(_)) => {
                    if let Some(prior) = self.store.outcome(id).await? {
                        return Ok(Reconciled::Replayed(prior));
                    }
                    return Err(ReconcileError::Unknown(anyhow::anyhow!(
                        "record {id} is linked but has no outcome"
                    )));
                }
                Err(e) => return Err(e.into()),
            };
            match self.store.save_decision(&decision).await {
                Ok(()) => {
                    tracing::debug!(decision = decision.kind().as_str(), "reconciled");
                    return Ok(Reconciled::Decided(Box::new(decision)));
                }
                Err(SaveError::Stale) => continue,
                Err(SaveError::AlreadyDecided) => {
                    if let Some(prior) = self.store.outcome(id).await? {
                        return Ok(Reconciled::Replayed(prior));
                    }
                    continue;
                }
                Err(SaveError::Unknown(e)) => return Err(ReconcileError::Unknown(e)),
            }
        }
        Err(ReconcileError::Busy)
    }

    /// Reconciles `records` in their order as one unit of work (R-REC; a group commit, so
    /// that the stage keeps up with ingestion): reads the outcomes, remembered rejections,
    /// approvals and candidates of them all at once, decides each record against the canonical
    /// records as the earlier records of the batch left them, and stores every decision with
    /// [`ReconciliationStore::save_decisions`]. When the batch cannot be decided or stored as
    /// one — another consumer changed a canonical record meanwhile, a period was approved, a
    /// record cannot be decided, a read failed — each record not stored yet is reconciled on
    /// its own with [`Self::reconcile`], which gives the same decisions (or the precise error)
    /// one transaction at a time. Returns one result per record, in order.
    #[tracing::instrument(skip_all, fields(records = records.len()))]
    pub async fn reconcile_batch(&self, records: Vec<IncomingRecord>, now: DateTime<Utc>) -> BatchReconciled {
        let ids: Vec<RecordId> = records.iter().map(|r| r.record_id).collect();
        let mut grouped = true;
        let mut results: Vec<Option<Result<Reconciled, ReconcileError>>> = ids.iter().map(|_| None).collect();
        let prior = match self.store.outcomes(&ids).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the batch's outcomes; one by one");
                HashMap::new()
            }
        };
        let mut pending: Vec<(usize, Prepared)> = Vec::with_capacity(records.len());
        for (i, record) in records.into_iter().enumerate() {
            match prior.get(&record.record_id) {
                Some(p) if p.kind != DecisionKind::Held => {
                    results[i] = Some(Ok(Reconciled::Replayed(*p)));
                }
                _ => match self.engine.prepare(record) {
                    Ok(p) => pending.push((i, p)),
                    Err(e) => results[i] = Some(Err(e.into())),
                },
            }
        }
        if !pending.is_empty() {
            let started = std::time::Instant::now();
            let stored = match self.decide_batch(&pending, now).await {
                Ok(decisions) => match self.store.save_decisions(&decisions).await {
                    Ok(()) => {
                        tracing::debug!(
                            records = decisions.len(),
                            ms = started.elapsed().as_millis(),
                            "batch decided and stored"
                        );
                        Some(decisions)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, records = pending.len(), "the batch cannot be stored as one; one by one");
                        None
                    }
                },
                Err(why) => {
                    tracing::debug!(%why, records = pending.len(), "the batch cannot be decided as one; one by one");
                    None
                }
            };
            match stored {
                Some(decisions) => {
                    for ((i, _), d) in pending.iter().zip(decisions) {
                        results[*i] = Some(Ok(Reconciled::Decided(Box::new(d))));
                    }
                }
                None => {
                    grouped = false;
                    for (i, p) in &pending {
                        results[*i] = Some(self.reconcile(p.record().clone(), now).await);
                    }
                }
            }
        }
        let results = ids
            .into_iter()
            .zip(results)
            .map(|(id, r)| {
                let r = r.unwrap_or_else(|| {
                    Err(ReconcileError::Unknown(anyhow::anyhow!(
                        "record {id} was not handled"
                    )))
                });
                (id, r)
            })
            .collect();
        BatchReconciled { results, grouped }
    }

    /// The decisions of `pending`, in order, each made against the canonical records as the
    /// decisions before it left them; `Err` (why, for the log) when the batch must be decided
    /// record by record instead.
    async fn decide_batch(
        &self,
        pending: &[(usize, Prepared)],
        now: DateTime<Utc>,
    ) -> Result<Vec<Decision>, String> {
        let started = std::time::Instant::now();
        let queries: Vec<CandidateQuery> = pending.iter().map(|(_, p)| p.query()).collect();
        let pairs: Vec<_> = pending
            .iter()
            .map(|(_, p)| (p.record().record_id, p.keys().source))
            .collect();
        let rejections = self
            .store
            .rejections_of(&pairs)
            .await
            .map_err(|e| e.to_string())?;
        if rejections.len() != pending.len() {
            return Err("the rejection lookup answered for another number of records".into());
        }
        let mut approvals: HashMap<(OrgId, Category, Period), Vec<PeriodApproval>> = HashMap::new();
        for (_, p) in pending {
            let r = p.record();
            let key = (r.source.org_id, r.category, r.period);
            if let std::collections::hash_map::Entry::Vacant(slot) = approvals.entry(key) {
                let covering = self
                    .store
                    .covering(key.0, key.1, key.2)
                    .await
                    .map_err(|e| e.to_string())?;
                slot.insert(covering);
            }
        }
        let mut live: BTreeMap<CanonicalId, CanonicalRecord> = self
            .store
            .candidates_for(&queries)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|c| (c.id, c))
            .collect();
        tracing::debug!(
            records = pending.len(),
            approvals = approvals.len(),
            candidates = live.len(),
            ms = started.elapsed().as_millis(),
            "batch read"
        );
        let mut decisions = Vec::with_capacity(pending.len());
        for (((_, p), query), rejections) in pending.iter().zip(&queries).zip(&rejections) {
            let r = p.record();
            let candidates: Vec<CanonicalRecord> =
                live.values().filter(|c| query.matches(c)).cloned().collect();
            let ctx = Context {
                candidates: &candidates,
                rejections,
                approvals: approvals
                    .get(&(r.source.org_id, r.category, r.period))
                    .map_or(&[][..], Vec::as_slice),
            };
            let decision = self
                .engine
                .decide(p, &ctx, now)
                .map_err(|e| format!("record {}: {e}", r.record_id))?;
            if let Some(l) = decision.linked() {
                if let Some(old) = l.retired() {
                    live.remove(&old);
                }
                live.insert(l.canonical.id, l.canonical.clone());
            }
            decisions.push(decision);
            // The engine is synchronous and a decision on a canonical record with many
            // contributions is not free: let the runtime's other tasks (HTTP, shutdown) run.
            yield_now().await;
        }
        Ok(decisions)
    }

    /// Resolves conflict `id` (R-REC) by `choice` of operator `by`.
    #[tracing::instrument(skip_all, fields(conflict = %id, action = choice.as_str()))]
    pub async fn resolve(
        &self,
        id: ConflictId,
        choice: ResolutionChoice,
        by: UserId,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Resolved, ResolveConflictError> {
        for _ in 0..ATTEMPTS {
            let conflict = self
                .store
                .conflict(id)
                .await?
                .ok_or(ResolveConflictError::NotFound)?;
            if !conflict.is_open() {
                return Err(ResolveError::AlreadyResolved.into());
            }
            let live = self
                .store
                .canonical(conflict.target.id)
                .await?
                .ok_or(ResolveConflictError::TargetGone)?;
            let approvals = self
                .store
                .covering(
                    conflict.incoming.source.org_id,
                    conflict.category,
                    conflict.period,
                )
                .await?;
            let resolved = self.engine.resolve(
                &conflict,
                choice.clone(),
                by,
                note.clone(),
                &live,
                &approvals,
                now,
            )?;
            match self.store.save_resolution(&resolved).await {
                Ok(()) => return Ok(resolved),
                Err(SaveError::Stale) => continue,
                Err(SaveError::AlreadyDecided) => return Err(ResolveError::AlreadyResolved.into()),
                Err(SaveError::Unknown(e)) => return Err(ResolveConflictError::Unknown(e)),
            }
        }
        Err(ResolveConflictError::Busy)
    }

    /// Approves the period `key`: from now on its records are held (R-REC).
    pub async fn approve_period(
        &self,
        key: PeriodKey,
        by: UserId,
        now: DateTime<Utc>,
    ) -> Result<PeriodApproval, PeriodChangeError> {
        let current = self
            .store
            .approval(&key)
            .await?
            .unwrap_or_else(|| PeriodApproval::open(key));
        let approved = current.approve(by, now)?;
        self.save_period(&approved).await?;
        Ok(approved)
    }

    /// Reopens the approved period `key` for `reason`, and lists the records it held so the
    /// server can reconcile them again.
    pub async fn reopen_period(
        &self,
        key: PeriodKey,
        by: UserId,
        reason: Reason,
        now: DateTime<Utc>,
    ) -> Result<Reopened, PeriodChangeError> {
        let current = self
            .store
            .approval(&key)
            .await?
            .unwrap_or_else(|| PeriodApproval::open(key));
        let reopened = current.reopen(by, reason, now)?;
        self.save_period(&reopened).await?;
        let held = self.store.held(&key).await?;
        Ok(Reopened {
            approval: reopened,
            held,
        })
    }

    async fn save_period(&self, approval: &PeriodApproval) -> Result<(), PeriodChangeError> {
        match self.store.save_approval(approval).await {
            Ok(()) => Ok(()),
            Err(SaveError::Stale | SaveError::AlreadyDecided) => Err(PeriodChangeError::Busy),
            Err(SaveError::Unknown(e)) => Err(PeriodChangeError::Unknown(e)),
        }
    }
}
