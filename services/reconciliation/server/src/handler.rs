//! The consumer of `records.masked` (R-REC, R-AVAIL): for each batch of announcements, skip the
//! records already decided, read the others through the [`MaskedSource`] port, and reconcile
//! them in message order (the queue hands out higher priority first, R-DATA-2), each priority's
//! records as one batch ([`ReconciliationService::reconcile_batch`](etx_reconciliation_core::ReconciliationService::reconcile_batch)):
//! every decision of a batch is stored with its `records.accepted` / `records.conflicts` outbox
//! entries in one transaction (record by record when the batch cannot be), so a record is
//! announced once however often its message is delivered.
//!
//! Per delivery: a body that is not an announcement is [`Outcome::Reject`]ed with where it is
//! wrong; a record the source cannot give now (unavailable, failing, or not there yet), or whose
//! canonical records keep changing under other consumers, makes the delivery
//! [`Outcome::Retry`]; a record that can never be reconciled (its payload cannot be read for its
//! category, or the source has it under another organisation, category or period than
//! announced) rejects the delivery after its other records are decided; otherwise it is
//! [`Outcome::Done`].
//!
//! Logs and reasons carry record ids, counts, decision kinds and field pointers, never a payload
//! value.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use etx_domain::{Priority, RecordId};
use etx_queue::{Delivery, Handler, Outcome};
use etx_reconciliation_core::{IncomingRecord, InputError, MaskedSource, ReconcileError, Reconciled};
use etx_storage::RelayHandle;

use crate::Services;
use crate::messages::{AnnouncedRecord, MaskedAnnouncement};

/// How many failed records a reject reason names before it summarises.
const NAMED_FAILURES: usize = 3;

/// The reconciliation stage's [`Handler`] for `records.masked` (run it with an
/// [`etx_queue::Consumer`]; [`crate::AppReconciliation::spawn_consumer`] does).
pub struct ReconciliationHandler {
    services: Arc<Services>,
    source: Arc<dyn MaskedSource>,
    relay: Option<RelayHandle>,
}

impl std::fmt::Debug for ReconciliationHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconciliationHandler").finish_non_exhaustive()
    }
}

/// What became of one announced record in this batch.
#[derive(Debug, Clone)]
enum Fate {
    /// Decided (now or before).
    Decided,
    /// Not now; the delivery is retried.
    Retry(String),
    /// Never: the delivery is rejected.
    Failed(String),
}

/// One announced record with what it came with.
#[derive(Debug, Clone, Copy)]
struct Wanted {
    announced: AnnouncedRecord,
    org_id: etx_domain::OrgId,
    system_id: etx_domain::SystemId,
    receipt_id: etx_domain::ReceiptId,
    priority: Priority,
}

impl ReconciliationHandler {
    pub(crate) fn new(
        services: Arc<Services>,
        source: Arc<dyn MaskedSource>,
        relay: Option<RelayHandle>,
    ) -> Self {
        Self {
            services,
            source,
            relay,
        }
    }

    /// Wakes the outbox relay, when there is one.
    pub(crate) fn notify_relay(&self) {
        if let Some(relay) = &self.relay {
            relay.notify();
        }
    }

    /// Decides the fate of every record in `wanted` (in order).
    async fn process(&self, wanted: &[Wanted]) -> HashMap<RecordId, Fate> {
        let mut fates = HashMap::with_capacity(wanted.len());
        let ids: Vec<RecordId> = wanted.iter().map(|w| w.announced.record_id).collect();
        let decided = match self.services.store.final_outcomes(&ids).await {
            Ok(d) => d,
            Err(e) => {
                let why = format!("reconciliation store unavailable: {e}");
                tracing::warn!(error = %e, "cannot read the outcomes; the batch will be retried");
                return ids.into_iter().map(|id| (id, Fate::Retry(why.clone()))).collect();
            }
        };
        let todo: Vec<&Wanted> = wanted
            .iter()
            .filter(|w| !decided.contains(&w.announced.record_id))
            .collect();
        if !decided.is_empty() {
            tracing::debug!(records = decided.len(), "already decided; skipped");
        }
        fates.extend(decided.into_iter().map(|id| (id, Fate::Decided)));
        if todo.is_empty() {
            return fates;
        }
        let todo_ids: Vec<RecordId> = todo.iter().map(|w| w.announced.record_id).collect();
        let fetch_started = std::time::Instant::now();
        let fetched = match self.source.fetch(&todo_ids).await {
            Ok(records) => records,
            Err(e) => {
                match &e {
                    InputError::Unavailable(_) => {
                        tracing::warn!(error = %e, records = todo_ids.len(), "masked records unavailable; retrying later");
                    }
                    InputError::Unknown(_) => {
                        tracing::error!(error = %e, records = todo_ids.len(), "masked records cannot be read; retrying later");
                    }
                }
                let why = format!("cannot read the masked records: {e}");
                fates.extend(todo_ids.into_iter().map(|id| (id, Fate::Retry(why.clone()))));
                return fates;
            }
        };
        tracing::debug!(
            records = todo_ids.len(),
            ms = fetch_started.elapsed().as_millis(),
            "masked records read"
        );
        let mut by_id: HashMap<RecordId, IncomingRecord> =
            fetched.into_iter().map(|r| (r.record_id, r)).collect();
        let mut missing = 0usize;
        let mut changed = false;
        let mut batches: Vec<(Priority, Vec<IncomingRecord>)> = Vec::new();
        for w in todo {
            let id = w.announced.record_id;
            let Some(record) = by_id.remove(&id) else {
                missing += 1;
                fates.insert(id, Fate::Retry(format!("record {id} is not available yet")));
                continue;
            };
            if record.source.org_id != w.org_id
                || record.source.system_id != w.system_id
                || record.source.receipt_id != w.receipt_id
                || record.category != w.announced.category
                || record.period != w.announced.period
            {
                tracing::error!(record_id = %id, "the source has this record under another organisation, system, receipt, category or period than announced");
                fates.insert(
                    id,
                    Fate::Failed(
                        "is stored under another organisation, system, receipt, category or period than announced"
                            .into(),
                    ),
                );
                continue;
            }
            match batches.iter_mut().find(|(p, _)| *p == w.priority) {
                Some((_, records)) => records.push(record),
                None => batches.push((w.priority, vec![record])),
            }
        }
        // Each priority's records as one batch, higher priorities first (the queue handed
        // them out in that order, R-DATA-2): decided in order and stored in one transaction.
        for (priority, records) in batches {
            let service = self.services.for_priority(priority);
            let started = std::time::Instant::now();
            let out = service.reconcile_batch(records, chrono::Utc::now()).await;
            tracing::debug!(
                records = out.results.len(),
                grouped = out.grouped,
                ms = started.elapsed().as_millis(),
                "batch reconciled"
            );
            for (id, result) in out.results {
                let fate = match result {
                    Ok(Reconciled::Decided(d)) => {
                        changed = true;
                        tracing::debug!(record_id = %id, decision = d.kind().as_str(), "reconciled");
                        Fate::Decided
                    }
                    Ok(Reconciled::Replayed(s)) => {
                        tracing::debug!(record_id = %id, decision = s.kind.as_str(), "decided before");
                        Fate::Decided
                    }
                    Err(ReconcileError::Decide(e)) => {
                        tracing::error!(record_id = %id, error = %e, "the record cannot be reconciled");
                        Fate::Failed(format!("cannot be reconciled: {e}"))
                    }
                    Err(ReconcileError::Busy) => {
                        tracing::info!(record_id = %id, "its canonical records keep changing; retrying later");
                        Fate::Retry(format!("record {id}: the canonical records keep changing"))
                    }
                    Err(ReconcileError::Unknown(e)) => {
                        tracing::warn!(record_id = %id, error = %e, "cannot reconcile now; retrying later");
                        Fate::Retry(format!("record {id}: {e}"))
                    }
                };
                fates.insert(id, fate);
            }
        }
        if missing > 0 {
            tracing::info!(
                missing,
                "announced records not available from the source yet; retrying later"
            );
        }
        if changed {
            self.notify_relay();
        }
        fates
    }
}

#[async_trait::async_trait]
impl Handler for ReconciliationHandler {
    #[tracing::instrument(name = "reconciliation_batch", skip_all, fields(deliveries = batch.len()))]
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let parsed: Vec<Result<MaskedAnnouncement, String>> =
            batch.iter().map(|d| MaskedAnnouncement::parse(&d.body)).collect();
        let mut seen = HashSet::new();
        let mut wanted = Vec::new();
        for (d, a) in batch.iter().zip(&parsed) {
            match a {
                Ok(a) => {
                    wanted.extend(
                        a.records
                            .iter()
                            .filter(|r| seen.insert(r.record_id))
                            .map(|r| Wanted {
                                announced: *r,
                                org_id: a.org_id,
                                system_id: a.system_id,
                                receipt_id: a.receipt_id,
                                priority: d.priority,
                            }),
                    )
                }
                Err(reason) => {
                    tracing::warn!(id = %d.id, %reason, "malformed records.masked message");
                }
            }
        }
        let fates = if wanted.is_empty() {
            HashMap::new()
        } else {
            self.process(&wanted).await
        };
        parsed
            .into_iter()
            .map(|a| match a {
                Err(reason) => Outcome::reject(reason),
                Ok(a) => outcome(&a, &fates),
            })
            .collect()
    }
}

/// A delivery's outcome from its records' fates: any failure rejects it, else any pending
/// record retries it, else it is done.
fn outcome(a: &MaskedAnnouncement, fates: &HashMap<RecordId, Fate>) -> Outcome {
    let mut failed = Vec::new();
    let mut retry: Option<&str> = None;
    let mut pending = 0usize;
    for r in &a.records {
        match fates.get(&r.record_id) {
            Some(Fate::Decided) => {}
            Some(Fate::Failed(why)) => failed.push((r.record_id, why.as_str())),
            Some(Fate::Retry(why)) => {
                pending += 1;
                retry.get_or_insert(why.as_str());
            }
            None => {
                pending += 1;
                retry.get_or_insert("not handled in this batch");
            }
        }
    }
    if !failed.is_empty() {
        let mut reason = failed
            .iter()
            .take(NAMED_FAILURES)
            .map(|(id, why)| format!("record {id} {why}"))
            .collect::<Vec<_>>()
            .join("; ");
        if failed.len() > NAMED_FAILURES {
            reason.push_str(&format!(" (and {} more)", failed.len() - NAMED_FAILURES));
        }
        return Outcome::reject(reason);
    }
    match retry {
        Some(why) if pending > 1 => {
            Outcome::retry(format!("{pending} of {} records pending: {why}", a.records.len()))
        }
        Some(why) => Outcome::retry(why),
        None => Outcome::Done,
    }
}
