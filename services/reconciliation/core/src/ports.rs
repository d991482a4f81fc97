//! The ports of the reconciliation service (R-REC, R-DATA-3): what the server's storage
//! adapter implements. Each method says what it MUST return and which writes MUST happen in one
//! transaction; [`crate::memory::MemoryStore`] is the reference implementation every adapter
//! is tested against.
//!
//! Delivery from the queue is at-least-once and several consumers may run at once, so every
//! write is either idempotent by record id or guarded by an optimistic version check; a failed
//! check is [`SaveError::Stale`] and the service reads again and re-decides.

use std::collections::HashMap;

use etx_domain::{Category, OrgId, Period, RecordId};

use crate::canonical::CanonicalRecord;
use crate::conflict::{Conflict, RejectedPair, Resolved};
use crate::engine::{CandidateQuery, Decision, DecisionSummary};
use crate::ids::{CanonicalId, ConflictId};
use crate::keys::SourceKey;
use crate::period::{PeriodApproval, PeriodKey};

/// A read that failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Anything the adapter could not do (connection lost, corrupt row …).
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// A write that was not made. Nothing of it is stored.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// A canonical record, conflict or period changed since it was read (its version is no
    /// longer the expected one, or a record to insert already exists): read again and retry.
    #[error("changed since read")]
    Stale,
    /// The record already has a final outcome (another consumer got there first), or the
    /// conflict is no longer open.
    #[error("already decided")]
    AlreadyDecided,
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

/// Canonical records, record outcomes and held records.
#[async_trait::async_trait]
pub trait ReconciliationStore: Send + Sync {
    /// The outcome saved for `record` by [`ReconciliationStore::save_decision`] or
    /// [`ConflictStore::save_resolution`]. MUST return `Ok(None)` when there is none. A held
    /// outcome ([`DecisionKind::Held`](crate::engine::DecisionKind::Held)) is returned like any
    /// other; the service decides again on it.
    async fn outcome(&self, record: RecordId) -> Result<Option<DecisionSummary>, StoreError>;

    /// The outcomes of those of `records` that have one (see
    /// [`ReconciliationStore::outcome`]). The default asks one by one; an adapter should
    /// answer in one read.
    async fn outcomes(&self, records: &[RecordId]) -> Result<HashMap<RecordId, DecisionSummary>, StoreError> {
        let mut out = HashMap::with_capacity(records.len());
        for id in records {
            if let Some(s) = self.outcome(*id).await? {
                out.insert(*id, s);
            }
        }
        Ok(out)
    }

    /// The **live** canonical records (never one merged into another) of `query.category` and
    /// `query.period` that hold a contribution (of any role) with `query.source_key`, or with
    /// `query.fact_key`, or with any of `query.blocking_keys` — each once, with **all** their
    /// contributions, payloads and tokens included. The order does not matter. It MAY return
    /// more (the engine re-checks the keys) but never a record of another category or period.
    /// An adapter that caps a large block MUST keep every source-key and fact-key match and
    /// document the cap.
    async fn candidates(&self, query: &CandidateQuery) -> Result<Vec<CanonicalRecord>, StoreError>;

    /// The candidates of every query in `queries` (as [`ReconciliationStore::candidates`]),
    /// each canonical record once, in any order; it MAY also return records of the queries'
    /// other categories and periods (the caller matches each record with
    /// [`CandidateQuery::matches`]). The default asks query by query; an adapter should answer
    /// in a few reads.
    async fn candidates_for(&self, queries: &[CandidateQuery]) -> Result<Vec<CanonicalRecord>, StoreError> {
        let mut out: Vec<CanonicalRecord> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for q in queries {
            for c in self.candidates(q).await? {
                if seen.insert(c.id) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    /// Stores `decision` **atomically**, together with the outbox event the server publishes
    /// for it (`records.accepted` or `records.conflicts`):
    /// * every decision: the record's outcome ([`Decision::summary`]); if the record already has
    ///   an outcome other than held, nothing is written and it MUST return
    ///   [`SaveError::AlreadyDecided`];
    /// * a link ([`Decision::linked`]): the canonical record's new state. With
    ///   `previous = Some(p)` the stored record `p.id` MUST still have version `p.version`
    ///   (else [`SaveError::Stale`]); when `canonical.id != p.id` the row `p.id` is retired with
    ///   `merged_into = canonical.id` (and rows merged into `p.id` follow) and `canonical` is
    ///   stored under its own id. With `previous = None` no canonical record with that id may
    ///   exist (else [`SaveError::Stale`]); nor may a live canonical record hold a contribution
    ///   with the record's source key, or with its fact key unless a remembered rejection of the
    ///   record or its source key forbids that canonical record ([`RejectedPair::forbids`]) —
    ///   another consumer founded the same fact meanwhile, and the decision would split it in
    ///   two: [`SaveError::Stale`] (in SQL: serialise saves per source and fact key, e.g. with an
    ///   advisory lock, and check inside the transaction). The contributions and their keys are
    ///   stored so that [`ReconciliationStore::candidates`] finds them;
    /// * a conflict: it is stored open (an existing conflict with the same id →
    ///   [`SaveError::AlreadyDecided`]);
    /// * held: the record is listed under its period key for
    ///   [`ReconciliationStore::held`].
    ///
    /// A period may be approved between the read and this write: for a link or a conflict, if a
    /// read-only approval now covers the record's organisation, category and period, it MUST
    /// return [`SaveError::Stale`] (in SQL: read the covering approval rows `FOR SHARE` in the
    /// same transaction), so the service decides again and holds the record.
    async fn save_decision(&self, decision: &Decision) -> Result<(), SaveError>;

    /// Stores `decisions`, made in this order (a later one may change a canonical record an
    /// earlier one created or changed, with `previous` naming the version the earlier one
    /// wrote), each under the rules of [`ReconciliationStore::save_decision`]. An adapter
    /// SHOULD store them atomically — all or none, in one transaction (group commit: the
    /// reconciliation stage keeps up with ingestion this way). The default stores them one by
    /// one and stops at the first error, leaving the earlier ones stored; callers must cope
    /// with that (the service does: on an error it reconciles each record again, and a stored
    /// one replays).
    async fn save_decisions(&self, decisions: &[Decision]) -> Result<(), SaveError> {
        for d in decisions {
            self.save_decision(d).await?;
        }
        Ok(())
    }

    /// The live canonical record `id` answers to: itself, or the record it was merged into
    /// (following `merged_into` to the end). MUST return `Ok(None)` for an unknown id.
    async fn canonical(&self, id: CanonicalId) -> Result<Option<CanonicalRecord>, StoreError>;

    /// The records held under `key` (for the server to reconcile again after the period is
    /// reopened), oldest first.
    async fn held(&self, key: &PeriodKey) -> Result<Vec<RecordId>, StoreError>;
}

/// Which conflicts to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConflictFilter {
    /// Only open ones.
    pub open_only: bool,
    /// Only of this category.
    pub category: Option<Category>,
    /// Only of this period.
    pub period: Option<Period>,
    /// Only those whose incoming record comes from this organisation.
    pub org: Option<OrgId>,
    /// Only those with an id greater than this (the page after).
    pub after: Option<ConflictId>,
    /// At most this many (0 returns none; the server caps what a client asks for).
    pub limit: usize,
}

/// The operator's conflict queue.
#[async_trait::async_trait]
pub trait ConflictStore: Send + Sync {
    /// The conflict `id`. MUST return `Ok(None)` when there is none.
    async fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>, StoreError>;

    /// The conflicts matching `filter`, ordered by id (oldest first: ids are time-ordered).
    async fn conflicts(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, StoreError>;

    /// Stores a resolution **atomically**, with its outbox event:
    /// * the conflict's new state — only if it is still open, else
    ///   [`SaveError::AlreadyDecided`] and nothing is written;
    /// * the canonical record, under the same rules as a link in
    ///   [`ReconciliationStore::save_decision`] (`previous` checked, renames retired);
    /// * the rejection, if any, for [`DecisionMemory::rejections`];
    /// * the incoming record's outcome, replacing its conflict outcome
    ///   ([`DecisionKind::Resolved`](crate::engine::DecisionKind::Resolved)).
    ///
    /// If a read-only approval now covers the incoming record's organisation, category and
    /// period (approved after the service read it), it MUST return [`SaveError::Stale`].
    async fn save_resolution(&self, resolved: &Resolved) -> Result<(), SaveError>;
}

/// Operators' remembered decisions.
#[async_trait::async_trait]
pub trait DecisionMemory: Send + Sync {
    /// Every remembered rejection of record `record` or of source key `source_key`, in the
    /// order they were made.
    async fn rejections(
        &self,
        record: RecordId,
        source_key: SourceKey,
    ) -> Result<Vec<RejectedPair>, StoreError>;

    /// [`DecisionMemory::rejections`] of each `(record, source_key)` pair, in the same order.
    /// The default asks pair by pair; an adapter should answer in one read.
    async fn rejections_of(
        &self,
        pairs: &[(RecordId, SourceKey)],
    ) -> Result<Vec<Vec<RejectedPair>>, StoreError> {
        let mut out = Vec::with_capacity(pairs.len());
        for (record, key) in pairs {
            out.push(self.rejections(*record, *key).await?);
        }
        Ok(out)
    }
}

/// Period approvals.
#[async_trait::async_trait]
pub trait PeriodApprovals: Send + Sync {
    /// Every stored approval that covers records of `org`, `category` and `period`: the one
    /// with scope `all` and the one with scope `org`, whatever their state.
    async fn covering(
        &self,
        org: OrgId,
        category: Category,
        period: Period,
    ) -> Result<Vec<PeriodApproval>, StoreError>;

    /// The approval of `key`. MUST return `Ok(None)` when it was never stored.
    async fn approval(&self, key: &PeriodKey) -> Result<Option<PeriodApproval>, StoreError>;

    /// Stores `approval` if the stored version is `approval.version − 1` (0: not stored
    /// yet), else [`SaveError::Stale`].
    async fn save_approval(&self, approval: &PeriodApproval) -> Result<(), SaveError>;
}
