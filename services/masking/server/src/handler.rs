//! The consumer of `records.received` (R-ING-2, R-SEC-10): for each batch of announcements,
//! read the records' payloads through the [`RecordSource`] port, mask them, and store the masked
//! copies with their `records.masked` / `events.masking` outbox entries in one transaction.
//!
//! Per delivery: a body that is not an announcement is [`Outcome::Reject`]ed with the reason; a
//! record that the source cannot give now (unavailable, failing, or not there yet) makes the
//! delivery [`Outcome::Retry`] (redelivered after `min_idle`, dead-lettered after
//! `max_attempts`); a record that can never be masked (the policy fails on it, or the store has
//! it under another source than announced) rejects the delivery after its other records are
//! stored; otherwise the delivery is [`Outcome::Done`]. Records already stored are skipped, so a
//! delivery handled twice stores and announces nothing twice.
//!
//! Each batch is masked with the current policy version ([`PolicyStore::current`], compared with
//! the stored current version at most once per refresh interval); if that comparison fails the
//! batch is retried. The version used is stored and announced with every record.
//!
//! Logs carry record ids, counts and finding kinds, never a payload value; every reason and
//! error text that reaches a log or the queue is first passed through the detectors, so an
//! identifier quoted in it (a malformed message, a driver error) is replaced by its marker.
//! Masking runs on the blocking pool.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use etx_domain::{OrgId, ReceiptId, RecordId, SystemId};
use etx_masking_core::{
    Audience, Detector, Masker, MaskingPolicy, Purpose, RecordSource, SourceError, SourceRecord,
};
use etx_queue::{Delivery, Handler, Outcome};
use etx_storage::RelayHandle;

use crate::mask::{Masking, RecordMasker};
use crate::messages::{Announcement, NewMaskedRecord};
use crate::policies::PolicyStore;
use crate::store::MaskedStore;

/// How many failed records a reject reason names before it summarises.
const NAMED_FAILURES: usize = 3;

/// The masking stage's [`Handler`] for `records.received` (run it with an
/// [`etx_queue::Consumer`]; [`crate::AppMasking::spawn_consumer`] does).
pub struct MaskingHandler {
    store: MaskedStore,
    source: Arc<dyn RecordSource>,
    work: Arc<Work>,
    relay: Option<RelayHandle>,
}

impl std::fmt::Debug for MaskingHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskingHandler")
            .field("policy_version", &self.work.policies.cached().version())
            .finish_non_exhaustive()
    }
}

/// The CPU part of a batch, run on the blocking pool so that masking a large batch does not
/// hold up the runtime's other tasks (the HTTP server, in all-in-one).
struct Work {
    masker: Masker,
    policies: PolicyStore,
    purpose: Purpose,
}

/// What became of one announced record in this batch.
#[derive(Debug, Clone)]
enum Fate {
    /// Stored (now or before).
    Stored,
    /// Not now; the delivery is retried.
    Retry(String),
    /// Never: the delivery is rejected.
    Failed(String),
}

impl Work {
    /// Masks the records of `todo` found in `fetched` with `policy`; the fate of those that
    /// cannot be.
    fn mask_all(
        &self,
        policy: &MaskingPolicy,
        todo: &[(RecordId, Source)],
        fetched: Vec<SourceRecord>,
    ) -> (Vec<NewMaskedRecord>, Vec<(RecordId, Fate)>) {
        let mut by_id: HashMap<RecordId, SourceRecord> = fetched.into_iter().map(|r| (r.id, r)).collect();
        let masker = RecordMasker {
            masker: &self.masker,
            policy,
            detector: Detector::for_today(),
            purpose: &self.purpose,
        };
        let mut rows = Vec::with_capacity(todo.len());
        let mut fates = Vec::new();
        let mut missing = 0usize;
        for (id, announced) in todo {
            let Some(rec) = by_id.remove(id) else {
                missing += 1;
                fates.push((
                    *id,
                    Fate::Retry(format!("record {id} is not in the record store (yet)")),
                ));
                continue;
            };
            let actual = Source {
                org_id: rec.provenance.org_id,
                system_id: rec.provenance.system_id,
                receipt_id: rec.provenance.receipt_id,
            };
            if actual != *announced {
                tracing::error!(record_id = %id, "the record store has this record under another source than announced");
                fates.push((
                    *id,
                    Fate::Failed(
                        "is stored under another organisation, system or receipt than announced".into(),
                    ),
                ));
                continue;
            }
            match masker.mask(rec.envelope.category, rec.envelope.form, &rec.payload) {
                Ok(masking) => {
                    if let Masking::Held { findings } = &masking {
                        let kinds: Vec<&str> = findings.iter().map(|f| f.kind.as_str()).collect();
                        tracing::warn!(
                            record_id = %id,
                            org_id = %rec.provenance.org_id,
                            form = %rec.envelope.form,
                            kinds = ?kinds,
                            "record held: identifiers in clear where it should be masked"
                        );
                    }
                    rows.push(NewMaskedRecord {
                        record_id: *id,
                        org_id: rec.provenance.org_id,
                        system_id: rec.provenance.system_id,
                        receipt_id: rec.provenance.receipt_id,
                        category: rec.envelope.category,
                        schema_version: rec.envelope.schema_version,
                        period: rec.envelope.period,
                        classification: rec.envelope.classification,
                        priority: rec.envelope.priority,
                        form: rec.envelope.form,
                        policy_version: policy.version(),
                        received_at: rec.provenance.received_at,
                        masking,
                    });
                }
                Err(e) => {
                    tracing::error!(record_id = %id, error = %e, "the masking policy cannot be applied to this record");
                    fates.push((*id, Fate::Failed(format!("cannot be masked: {e}"))));
                }
            }
        }
        if missing > 0 {
            tracing::info!(
                missing,
                "announced records not found in the record store; retrying later"
            );
        }
        (rows, fates)
    }

    /// `text` with every identifier the detectors find replaced by its marker: reasons and
    /// errors may quote what they refused (a serde error quotes an unknown value), and they end
    /// up in logs and dead letters (R-SEC-10).
    fn scrub(&self, text: &str) -> String {
        self.masker
            .mask_text(&self.policies.cached(), Audience::AlertText, text)
            .map_or_else(
                |_| "[withheld: the text could not be masked]".to_owned(),
                |(t, _)| t,
            )
    }
}

impl MaskingHandler {
    pub(crate) fn new(
        store: MaskedStore,
        source: Arc<dyn RecordSource>,
        masker: Masker,
        policies: PolicyStore,
        purpose: Purpose,
        relay: Option<RelayHandle>,
    ) -> Self {
        Self {
            store,
            source,
            work: Arc::new(Work {
                masker,
                policies,
                purpose,
            }),
            relay,
        }
    }

    /// Decides the fate of every record id in `wanted` (announced with its source).
    async fn process(&self, wanted: &[(RecordId, Source)]) -> HashMap<RecordId, Fate> {
        let mut fates = HashMap::with_capacity(wanted.len());
        let ids: Vec<RecordId> = wanted.iter().map(|(id, _)| *id).collect();
        let stored = match self.store.stored_ids(&ids).await {
            Ok(s) => s,
            Err(e) => {
                let why = format!("masking store unavailable: {}", self.work.scrub(&e.to_string()));
                tracing::warn!(error = %why, "cannot read the masking store; the batch will be retried");
                return ids.into_iter().map(|id| (id, Fate::Retry(why.clone()))).collect();
            }
        };
        let todo: Vec<(RecordId, Source)> = wanted
            .iter()
            .filter(|(id, _)| !stored.contains(id))
            .copied()
            .collect();
        fates.extend(stored.into_iter().map(|id| (id, Fate::Stored)));
        if todo.is_empty() {
            return fates;
        }
        let todo_ids: Vec<RecordId> = todo.iter().map(|(id, _)| *id).collect();
        let policy = match self.work.policies.current().await {
            Ok(p) => p,
            Err(e) => {
                let why = format!(
                    "cannot read the current masking policy: {}",
                    self.work.scrub(&e.to_string())
                );
                tracing::warn!(error = %why, "the batch will be retried");
                fates.extend(todo_ids.into_iter().map(|id| (id, Fate::Retry(why.clone()))));
                return fates;
            }
        };
        let fetched = match self.source.fetch(&todo_ids).await {
            Ok(records) => records,
            Err(e) => {
                let error = self.work.scrub(&e.to_string());
                match &e {
                    SourceError::Unavailable(_) => {
                        tracing::warn!(%error, records = todo_ids.len(), "record source unavailable; retrying later");
                    }
                    SourceError::Unknown(_) => {
                        tracing::error!(%error, records = todo_ids.len(), "record source failed; retrying later");
                    }
                }
                let why = format!("cannot read the records: {error}");
                fates.extend(todo_ids.into_iter().map(|id| (id, Fate::Retry(why.clone()))));
                return fates;
            }
        };

        let work = self.work.clone();
        let span = tracing::Span::current();
        let masked =
            tokio::task::spawn_blocking(move || span.in_scope(|| work.mask_all(&policy, &todo, fetched)))
                .await;
        let (rows, unmasked) = match masked {
            Ok(out) => out,
            Err(e) => {
                tracing::error!(error = %e, "masking a batch panicked; it will be retried");
                fates.extend(
                    todo_ids
                        .into_iter()
                        .map(|id| (id, Fate::Retry("masking panicked".into()))),
                );
                return fates;
            }
        };
        fates.extend(unmasked);
        if rows.is_empty() {
            return fates;
        }
        match self.store.store(&rows, chrono::Utc::now()).await {
            Ok(stored) => {
                tracing::debug!(
                    masked = stored.masked,
                    held = stored.held,
                    already = stored.already,
                    "masked records stored"
                );
                if let Some(relay) = &self.relay {
                    relay.notify();
                }
                fates.extend(rows.iter().map(|r| (r.record_id, Fate::Stored)));
            }
            Err(e) => {
                let why = format!(
                    "cannot store the masked records: {}",
                    self.work.scrub(&e.to_string())
                );
                tracing::warn!(error = %why, records = rows.len(), "retrying later");
                fates.extend(rows.iter().map(|r| (r.record_id, Fate::Retry(why.clone()))));
            }
        }
        fates
    }
}

/// Who announced a record: it must be who the record store says sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Source {
    org_id: OrgId,
    system_id: SystemId,
    receipt_id: ReceiptId,
}

#[async_trait::async_trait]
impl Handler for MaskingHandler {
    #[tracing::instrument(name = "masking_batch", skip_all, fields(deliveries = batch.len()))]
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        let parsed: Vec<Result<Announcement, String>> =
            batch.iter().map(|d| Announcement::parse(&d.body)).collect();
        let mut seen = HashSet::new();
        let mut wanted = Vec::new();
        for (d, a) in batch.iter().zip(&parsed) {
            match a {
                Ok(a) => {
                    let source = Source {
                        org_id: a.org_id,
                        system_id: a.system_id,
                        receipt_id: a.receipt_id,
                    };
                    wanted.extend(
                        a.records
                            .iter()
                            .filter(|r| seen.insert(r.record_id))
                            .map(|r| (r.record_id, source)),
                    );
                }
                Err(reason) => {
                    let reason = self.work.scrub(reason);
                    tracing::warn!(id = %d.id, %reason, "malformed records.received message");
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
                Err(reason) => Outcome::reject(self.work.scrub(&reason)),
                Ok(a) => match outcome(&a, &fates) {
                    Outcome::Retry { reason } => Outcome::retry(self.work.scrub(&reason)),
                    Outcome::Reject { reason } => Outcome::reject(self.work.scrub(&reason)),
                    Outcome::Done => Outcome::Done,
                },
            })
            .collect()
    }
}

/// A delivery's outcome from its records' fates: any failure rejects it, else any pending record
/// retries it, else it is done.
fn outcome(a: &Announcement, fates: &HashMap<RecordId, Fate>) -> Outcome {
    let mut failed = Vec::new();
    let mut retry: Option<&str> = None;
    let mut pending = 0usize;
    for r in &a.records {
        match fates.get(&r.record_id) {
            Some(Fate::Stored) => {}
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
