//! An in-process implementation of every port ([`MemoryStore`]): the executable form of the
//! contracts in [`crate::ports`], used by this crate's tests and as the reference the storage
//! adapters (SQLite, PostgreSQL) are compared against. Not durable.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};

use etx_domain::{Category, OrgId, Period, RecordId};

use crate::canonical::CanonicalRecord;
use crate::conflict::{Conflict, ConflictStatus, RejectedPair, Resolved};
use crate::engine::{CandidateQuery, Decision, DecisionKind, DecisionSummary, Previous};
use crate::ids::{CanonicalId, ConflictId};
use crate::keys::SourceKey;
use crate::period::{ApprovalScope, PeriodApproval, PeriodKey};
use crate::ports::{
    ConflictFilter, ConflictStore, DecisionMemory, PeriodApprovals, ReconciliationStore, SaveError,
    StoreError,
};

#[derive(Debug, Default)]
struct State {
    live: BTreeMap<CanonicalId, CanonicalRecord>,
    merged_into: BTreeMap<CanonicalId, CanonicalId>,
    outcomes: BTreeMap<RecordId, DecisionSummary>,
    held: BTreeMap<PeriodKey, BTreeSet<RecordId>>,
    conflicts: BTreeMap<ConflictId, Conflict>,
    rejections: Vec<RejectedPair>,
    approvals: BTreeMap<PeriodKey, PeriodApproval>,
}

/// Every port in memory, behind one lock (so every write is atomic).
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

fn poisoned() -> anyhow::Error {
    anyhow::anyhow!("memory store lock poisoned")
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, State>, anyhow::Error> {
        self.state.lock().map_err(|_| poisoned())
    }

    /// Every live canonical record, by id.
    pub fn live(&self) -> Vec<CanonicalRecord> {
        self.lock()
            .map(|s| s.live.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every retired id and the id it was merged into.
    pub fn merged_into(&self) -> BTreeMap<CanonicalId, CanonicalId> {
        self.lock().map(|s| s.merged_into.clone()).unwrap_or_default()
    }

    /// Every record's outcome.
    pub fn outcomes(&self) -> BTreeMap<RecordId, DecisionSummary> {
        self.lock().map(|s| s.outcomes.clone()).unwrap_or_default()
    }
}

impl State {
    fn resolve_id(&self, id: CanonicalId) -> Option<CanonicalId> {
        let mut cur = id;
        for _ in 0..=self.merged_into.len() {
            if self.live.contains_key(&cur) {
                return Some(cur);
            }
            cur = *self.merged_into.get(&cur)?;
        }
        None
    }

    fn read_only(&self, org: OrgId, category: Category, period: Period) -> bool {
        [ApprovalScope::All, ApprovalScope::Org(org)]
            .into_iter()
            .any(|scope| {
                self.approvals
                    .get(&PeriodKey {
                        scope,
                        category,
                        period,
                    })
                    .is_some_and(PeriodApproval::is_read_only)
            })
    }

    fn has_final_outcome(&self, record: RecordId) -> bool {
        self.outcomes
            .get(&record)
            .is_some_and(|o| o.kind != DecisionKind::Held)
    }

    /// Checks that a canonical write may be made.
    fn check_canonical(
        &self,
        canonical: &CanonicalRecord,
        previous: Option<Previous>,
    ) -> Result<(), SaveError> {
        match previous {
            Some(p) => {
                if self.live.get(&p.id).map(|c| c.version) != Some(p.version) {
                    return Err(SaveError::Stale);
                }
                if canonical.id != p.id && self.live.contains_key(&canonical.id) {
                    return Err(SaveError::Stale);
                }
            }
            None => {
                if self.live.contains_key(&canonical.id) || self.merged_into.contains_key(&canonical.id) {
                    return Err(SaveError::Stale);
                }
            }
        }
        Ok(())
    }

    /// Checks that a new canonical record founded by `record` does not split a fact another
    /// write founded meanwhile: no live record holds its source key, or its fact key unless a
    /// remembered rejection forbids it.
    fn check_founding(&self, canonical: &CanonicalRecord, record: RecordId) -> Result<(), SaveError> {
        let Some(keys) = canonical.contribution(record).map(|c| &c.keys) else {
            return Ok(());
        };
        for live in self.live.values() {
            if live.source_keys().contains(&keys.source) {
                return Err(SaveError::Stale);
            }
            let shares_fact = keys.fact.is_some_and(|f| live.fact_keys().contains(&f));
            if shares_fact
                && !self
                    .rejections
                    .iter()
                    .any(|r| r.forbids(record, keys.source, live))
            {
                return Err(SaveError::Stale);
            }
        }
        Ok(())
    }

    /// Writes a checked canonical record.
    fn put_canonical(&mut self, canonical: &CanonicalRecord, previous: Option<Previous>) {
        if let Some(p) = previous
            && p.id != canonical.id
        {
            self.live.remove(&p.id);
            self.merged_into.insert(p.id, canonical.id);
            for target in self.merged_into.values_mut() {
                if *target == p.id {
                    *target = canonical.id;
                }
            }
        }
        self.live.insert(canonical.id, canonical.clone());
    }
}

#[async_trait::async_trait]
impl ReconciliationStore for MemoryStore {
    async fn outcome(&self, record: RecordId) -> Result<Option<DecisionSummary>, StoreError> {
        Ok(self.lock()?.outcomes.get(&record).copied())
    }

    async fn candidates(&self, query: &CandidateQuery) -> Result<Vec<CanonicalRecord>, StoreError> {
        let s = self.lock()?;
        Ok(s.live.values().filter(|c| query.matches(c)).cloned().collect())
    }

    async fn save_decision(&self, decision: &Decision) -> Result<(), SaveError> {
        let mut s = self.lock()?;
        let record = decision.record_id();
        if s.has_final_outcome(record) {
            return Err(SaveError::AlreadyDecided);
        }
        match decision {
            Decision::Held(h) => {
                s.held.entry(h.key).or_default().insert(record);
            }
            Decision::Conflict(c) => {
                if s.read_only(c.incoming.source.org_id, c.category, c.period) {
                    return Err(SaveError::Stale);
                }
                if s.conflicts.contains_key(&c.id) {
                    return Err(SaveError::AlreadyDecided);
                }
                s.conflicts.insert(c.id, (**c).clone());
            }
            Decision::Duplicate(l)
            | Decision::Revision(l)
            | Decision::Superseded(l)
            | Decision::NewCanonical(l)
            | Decision::Merge(l) => {
                let org = l
                    .canonical
                    .contribution(record)
                    .map(|c| c.source.org_id)
                    .ok_or_else(|| anyhow::anyhow!("the link does not contain its record"))?;
                if s.read_only(org, l.canonical.category, l.canonical.period) {
                    return Err(SaveError::Stale);
                }
                s.check_canonical(&l.canonical, l.previous)?;
                if l.previous.is_none() {
                    s.check_founding(&l.canonical, record)?;
                }
                s.put_canonical(&l.canonical, l.previous);
            }
        }
        if !matches!(decision, Decision::Held(_)) {
            for records in s.held.values_mut() {
                records.remove(&record);
            }
        }
        s.outcomes.insert(record, decision.summary());
        Ok(())
    }

    async fn canonical(&self, id: CanonicalId) -> Result<Option<CanonicalRecord>, StoreError> {
        let s = self.lock()?;
        Ok(s.resolve_id(id).and_then(|live| s.live.get(&live).cloned()))
    }

    async fn held(&self, key: &PeriodKey) -> Result<Vec<RecordId>, StoreError> {
        Ok(self
            .lock()?
            .held
            .get(key)
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default())
    }
}

#[async_trait::async_trait]
impl ConflictStore for MemoryStore {
    async fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>, StoreError> {
        Ok(self.lock()?.conflicts.get(&id).cloned())
    }

    async fn conflicts(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, StoreError> {
        let s = self.lock()?;
        Ok(s.conflicts
            .values()
            .filter(|c| !filter.open_only || c.is_open())
            .filter(|c| filter.category.is_none_or(|x| x == c.category))
            .filter(|c| filter.period.is_none_or(|x| x == c.period))
            .filter(|c| filter.org.is_none_or(|x| x == c.incoming.source.org_id))
            .filter(|c| filter.after.is_none_or(|x| c.id > x))
            .take(filter.limit)
            .cloned()
            .collect())
    }

    async fn save_resolution(&self, resolved: &Resolved) -> Result<(), SaveError> {
        let mut s = self.lock()?;
        let id = resolved.conflict.id;
        if !s
            .conflicts
            .get(&id)
            .is_some_and(|c| c.status == ConflictStatus::Open)
        {
            return Err(SaveError::AlreadyDecided);
        }
        let c = &resolved.conflict;
        if s.read_only(c.incoming.source.org_id, c.category, c.period) {
            return Err(SaveError::Stale);
        }
        s.check_canonical(&resolved.canonical, resolved.previous)?;
        s.put_canonical(&resolved.canonical, resolved.previous);
        if let Some(r) = &resolved.rejection {
            s.rejections.push(r.clone());
        }
        s.conflicts.insert(id, resolved.conflict.clone());
        let record = resolved.conflict.incoming.record_id;
        s.outcomes.insert(
            record,
            DecisionSummary {
                record_id: record,
                kind: DecisionKind::Resolved,
                canonical: Some(resolved.canonical.id),
                conflict: Some(id),
            },
        );
        Ok(())
    }
}

#[async_trait::async_trait]
impl DecisionMemory for MemoryStore {
    async fn rejections(
        &self,
        record: RecordId,
        source_key: SourceKey,
    ) -> Result<Vec<RejectedPair>, StoreError> {
        Ok(self
            .lock()?
            .rejections
            .iter()
            .filter(|r| r.record_id == record || r.source_key == source_key)
            .cloned()
            .collect())
    }
}

#[async_trait::async_trait]
impl PeriodApprovals for MemoryStore {
    async fn covering(
        &self,
        org: OrgId,
        category: Category,
        period: Period,
    ) -> Result<Vec<PeriodApproval>, StoreError> {
        let s = self.lock()?;
        Ok([ApprovalScope::All, ApprovalScope::Org(org)]
            .into_iter()
            .filter_map(|scope| {
                s.approvals
                    .get(&PeriodKey {
                        scope,
                        category,
                        period,
                    })
                    .cloned()
            })
            .collect())
    }

    async fn approval(&self, key: &PeriodKey) -> Result<Option<PeriodApproval>, StoreError> {
        Ok(self.lock()?.approvals.get(key).cloned())
    }

    async fn save_approval(&self, approval: &PeriodApproval) -> Result<(), SaveError> {
        let mut s = self.lock()?;
        let stored = s.approvals.get(&approval.key).map_or(0, |a| a.version);
        if stored + 1 != approval.version {
            return Err(SaveError::Stale);
        }
        s.approvals.insert(approval.key, approval.clone());
        Ok(())
    }
}
