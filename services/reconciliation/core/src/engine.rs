//! The decision engine (R-REC, R-DATA-3): given an incoming masked record, the canonical
//! records that share one of its keys, the remembered rejections and the period approvals,
//! decide what the record is. Pure and deterministic: the same inputs give the same decision.
//!
//! The order of questions:
//! 1. **Held** — an approval covering the record's organisation (or everyone), category and
//!    period is read-only: the record waits until the period is reopened.
//! 2. **Same source** — a candidate holds a record with the same source key:
//!    * same content as the source's current statement → [`Decision::Duplicate`];
//!    * new content, newer than the current statement → [`Decision::Revision`], if it still
//!      agrees with the other sources (else a [`ConflictReason::RevisionDisagrees`] conflict);
//!    * new content but *older* than the current statement (a late delivery) →
//!      [`Decision::Superseded`]: kept in the provenance, it changes no value.
//! 3. **Same fact** — candidates with the same fact key (oldest first), less those the
//!    source was rejected from: the first one whose sources all agree within tolerance →
//!    [`Decision::Merge`] (rule `fact_tolerance`); none agrees → a
//!    [`ConflictReason::ValuesDisagree`] conflict with the oldest.
//! 4. **Fuzzy** (categories with fuzzy settings) — candidates sharing a blocking key, less the
//!    rejected ones, scored against each of their current records; the best (highest score,
//!    then the oldest canonical record):
//!    * *match* and agreeing values → [`Decision::Merge`] (rule `fuzzy_match`, with the score);
//!    * *match* with disagreeing values → [`ConflictReason::ValuesDisagree`];
//!    * *match* with a canonical record that already has a current record of the same
//!      organisation under another key → [`ConflictReason::SameSourceOtherKey`];
//!    * *possible* → [`ConflictReason::PossibleMatch`].
//! 5. Otherwise → [`Decision::NewCanonical`] (rule `new`, or `new_after_rejection` when the
//!    only matches were rejected ones). **A remembered rejection therefore gives a new
//!    canonical record, not a conflict**: the operator has already said these are different,
//!    asking again would put the same question to them on every re-send.
//!
//! Linking recomputes the canonical record from its contributions
//! ([`crate::canonical`]), so its id is that of its oldest record whatever the order of
//! arrival: a late, older record renames the canonical record, and the old id is retired
//! (`merged_into` the new one, see [`Linked::retired`]).

use chrono::{DateTime, Utc};
use etx_domain::{Category, Period, RecordId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{CanonicalRecord, Contribution, OperatorOverride, Role, Rule};
use crate::categories::{MeasureValue, RecordView, ViewError, same_text};
use crate::config::{ConfigError, ReconcileConfig};
use crate::conflict::{
    Conflict, ConflictReason, ConflictStatus, FieldDifference, RejectedPair, Resolution, ResolutionChoice,
    ResolveError, Resolved,
};
use crate::fuzzy::{self, FuzzyScore, Score, Verdict};
use crate::ids::{CanonicalId, ConflictId};
use crate::keys::{self, BlockingKey, FactKey, KeySet, SourceKey};
use crate::period::{self, PeriodApproval, PeriodKey};
use crate::record::{IncomingRecord, SourceRef, is_pointer};

/// Why a record cannot be decided on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecideError {
    /// The payload cannot be read for its category (see [`ViewError`]).
    #[error(transparent)]
    Invalid(#[from] ViewError),
    /// A candidate is of another category or period: the candidate lookup broke its contract.
    #[error("candidate {0} is of another category or period")]
    CandidateOutOfScope(CanonicalId),
    /// The record already contributes to a candidate: it was reconciled before.
    #[error("the record already contributes to canonical record {0}")]
    AlreadyReconciled(CanonicalId),
}

/// What the candidate lookup must find (see
/// [`ReconciliationStore::candidates`](crate::ports::ReconciliationStore::candidates)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateQuery {
    /// The category.
    pub category: Category,
    /// The period.
    pub period: Period,
    /// Canonical records holding a contribution with this source key.
    pub source_key: SourceKey,
    /// Canonical records holding a contribution with this fact key.
    pub fact_key: Option<FactKey>,
    /// Canonical records holding a contribution with one of these blocking keys.
    pub blocking_keys: Vec<BlockingKey>,
}

impl CandidateQuery {
    /// Whether `canonical` answers this query: same category and period, and a contribution
    /// (of any role) with the source key, the fact key or one of the blocking keys. The batch
    /// path uses it to decide a record against the canonical records an earlier record of the
    /// same batch created or changed.
    pub fn matches(&self, canonical: &CanonicalRecord) -> bool {
        canonical.category == self.category
            && canonical.period == self.period
            && canonical.contributions.iter().any(|x| {
                x.keys.source == self.source_key
                    || (self.fact_key.is_some() && x.keys.fact == self.fact_key)
                    || x.keys.blocking.iter().any(|b| self.blocking_keys.contains(b))
            })
    }
}

/// An incoming record read and keyed, ready to decide on.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    record: IncomingRecord,
    view: RecordView,
    keys: KeySet,
}

impl Prepared {
    /// The record.
    pub fn record(&self) -> &IncomingRecord {
        &self.record
    }

    /// What was read from its payload.
    pub fn view(&self) -> &RecordView {
        &self.view
    }

    /// Its keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// The candidate lookup for it.
    pub fn query(&self) -> CandidateQuery {
        CandidateQuery {
            category: self.record.category,
            period: self.record.period,
            source_key: self.keys.source,
            fact_key: self.keys.fact,
            blocking_keys: self.keys.blocking.clone(),
        }
    }
}

/// What the engine decides with, besides the record (all read through the ports).
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// Live canonical records sharing a key with the record.
    pub candidates: &'a [CanonicalRecord],
    /// Remembered rejections of the record or its source key.
    pub rejections: &'a [RejectedPair],
    /// Approvals that may cover the record.
    pub approvals: &'a [PeriodApproval],
}

/// A stored canonical record that a new state replaces, with the version it must still have
/// (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Previous {
    /// Its id.
    pub id: CanonicalId,
    /// The version read.
    pub version: u64,
}

/// A record linked to a canonical record: the state to store.
#[derive(Debug, Clone, PartialEq)]
pub struct Linked {
    /// The record.
    pub record_id: RecordId,
    /// The canonical record after the link (with the new contribution and recomputed roles).
    pub canonical: CanonicalRecord,
    /// The stored canonical record it replaces; `None` for a new one.
    pub previous: Option<Previous>,
    /// The rule that linked the record.
    pub rule: Rule,
    /// The fuzzy score, for fuzzy links.
    pub score: Option<Score>,
}

impl Linked {
    /// The id retired by this link: the previous id when the canonical record was renamed to
    /// an older record's id. The server records it as `merged_into` [`Linked::canonical`].
    pub fn retired(&self) -> Option<CanonicalId> {
        self.previous.map(|p| p.id).filter(|id| *id != self.canonical.id)
    }
}

/// A record held because its period is approved (read-only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    /// The record.
    pub record_id: RecordId,
    /// The approval that holds it.
    pub key: PeriodKey,
    /// Who sent it (a held record was received: completeness counts it, R-REC).
    pub source: SourceRef,
    /// When ingestion received it.
    pub received_at: DateTime<Utc>,
}

/// What a record is (R-REC).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The same source re-sent the same content: nothing new, the provenance gains a link.
    Duplicate(Box<Linked>),
    /// The same source sent new content for the same key: it supersedes the source's
    /// previous statement.
    Revision(Box<Linked>),
    /// The same source had already sent newer content: kept in the provenance only.
    Superseded(Box<Linked>),
    /// Nothing matched: a new canonical record.
    NewCanonical(Box<Linked>),
    /// Another source's record of the same fact or entity, in agreement: merged.
    Merge(Box<Linked>),
    /// An operator must decide.
    Conflict(Box<Conflict>),
    /// The period is approved: held.
    Held(Held),
}

/// The kind of a [`Decision`], for statuses and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionKind {
    /// [`Decision::Duplicate`].
    Duplicate,
    /// [`Decision::Revision`].
    Revision,
    /// [`Decision::Superseded`].
    Superseded,
    /// [`Decision::NewCanonical`].
    NewCanonical,
    /// [`Decision::Merge`].
    Merge,
    /// [`Decision::Conflict`].
    Conflict,
    /// [`Decision::Held`].
    Held,
    /// A conflict of the record was resolved and the record linked.
    Resolved,
}

impl DecisionKind {
    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Revision => "revision",
            Self::Superseded => "superseded",
            Self::NewCanonical => "new_canonical",
            Self::Merge => "merge",
            Self::Conflict => "conflict",
            Self::Held => "held",
            Self::Resolved => "resolved",
        }
    }

    /// The record status it shows as (GLOSSARY.md "Statuses"): `duplicate` (Trùng lặp),
    /// `conflict` (Xung đột), `held` (its period is approved: Đã phê duyệt), otherwise
    /// `reconciled` (Đã đối soát).
    pub fn status(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Conflict => "conflict",
            Self::Held => "held",
            Self::Revision | Self::Superseded | Self::NewCanonical | Self::Merge | Self::Resolved => {
                "reconciled"
            }
        }
    }
}

/// The outcome of a record, as stored and replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionSummary {
    /// The record.
    pub record_id: RecordId,
    /// What it is.
    pub kind: DecisionKind,
    /// The canonical record it is part of.
    pub canonical: Option<CanonicalId>,
    /// The conflict it opened.
    pub conflict: Option<ConflictId>,
}

impl Decision {
    /// Its kind.
    pub fn kind(&self) -> DecisionKind {
        match self {
            Self::Duplicate(_) => DecisionKind::Duplicate,
            Self::Revision(_) => DecisionKind::Revision,
            Self::Superseded(_) => DecisionKind::Superseded,
            Self::NewCanonical(_) => DecisionKind::NewCanonical,
            Self::Merge(_) => DecisionKind::Merge,
            Self::Conflict(_) => DecisionKind::Conflict,
            Self::Held(_) => DecisionKind::Held,
        }
    }

    /// The link, for the linking kinds.
    pub fn linked(&self) -> Option<&Linked> {
        match self {
            Self::Duplicate(l)
            | Self::Revision(l)
            | Self::Superseded(l)
            | Self::NewCanonical(l)
            | Self::Merge(l) => Some(l),
            Self::Conflict(_) | Self::Held(_) => None,
        }
    }

    /// The record decided on.
    pub fn record_id(&self) -> RecordId {
        match self {
            Self::Duplicate(l)
            | Self::Revision(l)
            | Self::Superseded(l)
            | Self::NewCanonical(l)
            | Self::Merge(l) => l.record_id,
            Self::Conflict(c) => c.incoming.record_id,
            Self::Held(h) => h.record_id,
        }
    }

    /// Its summary.
    pub fn summary(&self) -> DecisionSummary {
        DecisionSummary {
            record_id: self.record_id(),
            kind: self.kind(),
            canonical: self.linked().map(|l| l.canonical.id),
            conflict: match self {
                Self::Conflict(c) => Some(c.id),
                _ => None,
            },
        }
    }
}

/// The result of comparing the incoming record's measures with a canonical record's.
#[derive(Debug, Clone, PartialEq)]
struct Comparison {
    differences: Vec<FieldDifference>,
}

impl Comparison {
    fn agrees(&self) -> bool {
        self.differences.is_empty()
    }
}

/// The reconciliation engine (R-REC): pure, deterministic, configured once.
#[derive(Debug, Clone)]
pub struct Reconciler {
    config: ReconcileConfig,
}

impl Reconciler {
    /// An engine with `config`, checked.
    pub fn new(config: ReconcileConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self { config })
    }

    /// Its settings.
    pub fn config(&self) -> &ReconcileConfig {
        &self.config
    }

    /// Reads and keys `record`.
    pub fn prepare(&self, record: IncomingRecord) -> Result<Prepared, DecideError> {
        let view = RecordView::read(
            record.category,
            record.schema_version,
            &record.payload,
            &record.match_tokens,
            record.reporter_territory,
        )?;
        let (c, p) = (record.category, record.period);
        let source = match &view.natural {
            Some(parts) => keys::source_key(c, p, record.source.org_id, parts),
            None => keys::content_source_key(c, p, record.source.org_id, &record.content),
        };
        let fact = view.fact.as_ref().map(|parts| keys::fact_key(c, p, parts));
        let mut blocking: Vec<BlockingKey> = if self.config.for_category(c).fuzzy.is_some() {
            view.blocking
                .iter()
                .map(|parts| keys::blocking_key(c, p, parts))
                .collect()
        } else {
            Vec::new()
        };
        blocking.sort();
        blocking.dedup();
        Ok(Prepared {
            record,
            view,
            keys: KeySet {
                source,
                fact,
                blocking,
            },
        })
    }

    /// Decides what `prepared` is, given `ctx` (see the module documentation). `now` is the
    /// time written into new provenance links and conflicts.
    pub fn decide(
        &self,
        prepared: &Prepared,
        ctx: &Context<'_>,
        now: DateTime<Utc>,
    ) -> Result<Decision, DecideError> {
        let rec = &prepared.record;
        if let Some(a) = period::holding(ctx.approvals, rec.source.org_id, rec.category, rec.period) {
            return Ok(Decision::Held(Held {
                record_id: rec.record_id,
                key: a.key,
                source: rec.source,
                received_at: rec.received_at,
            }));
        }

        let mut candidates: Vec<&CanonicalRecord> = Vec::new();
        for c in ctx.candidates {
            if c.category != rec.category || c.period != rec.period {
                return Err(DecideError::CandidateOutOfScope(c.id));
            }
            if c.contribution(rec.record_id).is_some() {
                return Err(DecideError::AlreadyReconciled(c.id));
            }
            if !candidates.iter().any(|x| x.id == c.id) {
                candidates.push(c);
            }
        }
        candidates.sort_by_key(|c| c.age());

        let keys = &prepared.keys;
        if let Some(target) = candidates.iter().find(|c| c.source_keys().contains(&keys.source)) {
            return Ok(self.same_source(prepared, target, now));
        }

        let rejected = |c: &CanonicalRecord| {
            ctx.rejections
                .iter()
                .any(|r| r.forbids(rec.record_id, keys.source, c))
        };
        let mut saw_rejected = false;

        if let Some(fact) = keys.fact {
            let (allowed, refused): (Vec<&CanonicalRecord>, Vec<&CanonicalRecord>) = candidates
                .iter()
                .copied()
                .filter(|c| c.fact_keys().contains(&fact))
                .partition(|c| !rejected(c));
            saw_rejected |= !refused.is_empty();
            if let Some(first) = allowed.first() {
                for c in &allowed {
                    if self.compare(prepared, c).agrees() {
                        return Ok(self.link(prepared, c, Rule::FactTolerance, None, now, Decision::Merge));
                    }
                }
                let cmp = self.compare(prepared, first);
                return Ok(self.conflict(
                    prepared,
                    first,
                    ConflictReason::ValuesDisagree,
                    Rule::FactTolerance,
                    cmp,
                    None,
                    now,
                ));
            }
        }

        if let Some(fz) = &self.config.for_category(rec.category).fuzzy
            && !keys.blocking.is_empty()
        {
            let (allowed, refused): (Vec<&CanonicalRecord>, Vec<&CanonicalRecord>) = candidates
                .iter()
                .copied()
                .filter(|c| keys.blocking.iter().any(|b| c.blocking_keys().contains(b)))
                .partition(|c| !rejected(c));
            saw_rejected |= !refused.is_empty();
            let mut best: Option<(&CanonicalRecord, FuzzyScore)> = None;
            for c in allowed {
                let Some(s) = self.best_score(prepared, c, fz) else {
                    continue;
                };
                // Candidates are oldest first, so a tie keeps the older one.
                if best.as_ref().is_none_or(|(_, b)| s.score > b.score) {
                    best = Some((c, s));
                }
            }
            if let Some((c, s)) = best {
                let score = Some(s.score);
                match s.verdict {
                    Verdict::Match => {
                        let same_org_other_key = c
                            .current()
                            .any(|x| x.source.org_id == rec.source.org_id && x.keys.source != keys.source);
                        let cmp = self.compare(prepared, c);
                        if same_org_other_key {
                            return Ok(self.conflict(
                                prepared,
                                c,
                                ConflictReason::SameSourceOtherKey,
                                Rule::FuzzyMatch,
                                cmp,
                                Some(s),
                                now,
                            ));
                        }
                        if cmp.agrees() {
                            return Ok(self.link(prepared, c, Rule::FuzzyMatch, score, now, Decision::Merge));
                        }
                        return Ok(self.conflict(
                            prepared,
                            c,
                            ConflictReason::ValuesDisagree,
                            Rule::FuzzyMatch,
                            cmp,
                            Some(s),
                            now,
                        ));
                    }
                    Verdict::Possible => {
                        let cmp = self.compare(prepared, c);
                        return Ok(self.conflict(
                            prepared,
                            c,
                            ConflictReason::PossibleMatch,
                            Rule::FuzzyMatch,
                            cmp,
                            Some(s),
                            now,
                        ));
                    }
                    Verdict::Distinct => {}
                }
            }
        }

        let rule = if saw_rejected {
            Rule::NewAfterRejection
        } else {
            Rule::New
        };
        let contribution = self.contribution(prepared, rule, None, now);
        Ok(Decision::NewCanonical(Box::new(Linked {
            record_id: rec.record_id,
            canonical: CanonicalRecord::found(rec.category, rec.period, contribution, &self.config),
            previous: None,
            rule,
            score: None,
        })))
    }

    /// Step 2: the target holds a record of the same source key.
    fn same_source(&self, prepared: &Prepared, target: &CanonicalRecord, now: DateTime<Utc>) -> Decision {
        let rec = &prepared.record;
        let key = prepared.keys.source;
        let before = target.current().find(|c| c.keys.source == key).map(|c| c.content);
        let trial = target.with(
            self.contribution(prepared, Rule::SourceRevision, None, now),
            &self.config,
        );
        let role = trial.contribution(rec.record_id).map(|c| c.role);
        let after = trial.current().find(|c| c.keys.source == key).map(|c| c.content);
        match role {
            Some(Role::Superseded { .. }) => self.link(
                prepared,
                target,
                Rule::SourceSuperseded,
                None,
                now,
                Decision::Superseded,
            ),
            Some(Role::Current) if after != before && before.is_some() => {
                let cmp = self.compare(prepared, target);
                if cmp.agrees() {
                    self.link(
                        prepared,
                        target,
                        Rule::SourceRevision,
                        None,
                        now,
                        Decision::Revision,
                    )
                } else {
                    self.conflict(
                        prepared,
                        target,
                        ConflictReason::RevisionDisagrees,
                        Rule::SourceRevision,
                        cmp,
                        None,
                        now,
                    )
                }
            }
            // A duplicate, or an older copy of the current content (which then becomes the
            // current one and the later copy its duplicate): nothing new either way.
            _ => self.link(
                prepared,
                target,
                Rule::SourceDuplicate,
                None,
                now,
                Decision::Duplicate,
            ),
        }
    }

    fn contribution(
        &self,
        prepared: &Prepared,
        rule: Rule,
        score: Option<Score>,
        now: DateTime<Utc>,
    ) -> Contribution {
        Contribution::of(
            &prepared.record,
            prepared.keys.clone(),
            rule,
            score,
            self.config.version,
            now,
        )
    }

    fn link(
        &self,
        prepared: &Prepared,
        target: &CanonicalRecord,
        rule: Rule,
        score: Option<Score>,
        now: DateTime<Utc>,
        make: fn(Box<Linked>) -> Decision,
    ) -> Decision {
        let canonical = target.with(self.contribution(prepared, rule, score, now), &self.config);
        make(Box::new(Linked {
            record_id: prepared.record.record_id,
            canonical,
            previous: Some(Previous {
                id: target.id,
                version: target.version,
            }),
            rule,
            score,
        }))
    }

    #[allow(clippy::too_many_arguments)]
    fn conflict(
        &self,
        prepared: &Prepared,
        target: &CanonicalRecord,
        reason: ConflictReason,
        rule: Rule,
        cmp: Comparison,
        fuzzy: Option<FuzzyScore>,
        now: DateTime<Utc>,
    ) -> Decision {
        let rec = &prepared.record;
        let score = fuzzy.as_ref().map(|f| f.score);
        Decision::Conflict(Box::new(Conflict {
            id: ConflictId::opened_by(rec.record_id),
            category: rec.category,
            period: rec.period,
            reason,
            incoming: self.contribution(prepared, rule, score, now),
            target: target.clone(),
            differences: cmp.differences,
            fuzzy,
            opened_at: now,
            status: ConflictStatus::Open,
        }))
    }

    /// The best fuzzy score of the incoming record against the target's current records.
    fn best_score(
        &self,
        prepared: &Prepared,
        target: &CanonicalRecord,
        fz: &crate::config::FuzzyConfig,
    ) -> Option<FuzzyScore> {
        let mut best: Option<FuzzyScore> = None;
        for c in target.current() {
            let Ok(view) = read(target.category, c) else {
                continue;
            };
            let s = fuzzy::score(&prepared.view, &view, fz);
            if best.as_ref().is_none_or(|b| s.score > b.score) {
                best = Some(s);
            }
        }
        best
    }

    /// Compares the incoming record's measures with the target's value: the operator's
    /// override if it has one, else every current record of another source key. A record that
    /// can no longer be read is not compared.
    fn compare(&self, prepared: &Prepared, target: &CanonicalRecord) -> Comparison {
        let rec = &prepared.record;
        let tolerance = self
            .config
            .for_category(rec.category)
            .tolerance_for(prepared.view.indicator());
        let mut differences = Vec::new();
        let mut against = |other: &RecordView, who: Option<RecordId>| {
            for (name, mine) in prepared.view.measures() {
                let Some(theirs) = other.measures().get(name) else {
                    continue;
                };
                let (differs, tol) = match (&mine.value, &theirs.value) {
                    (MeasureValue::Number(a), MeasureValue::Number(b)) => {
                        (!tolerance.allows(*a, *b), Some(tolerance))
                    }
                    (MeasureValue::Text(a), MeasureValue::Text(b)) => (!same_text(a, b), None),
                    (MeasureValue::Token(a), MeasureValue::Token(b)) => (a != b, None),
                    _ => (true, None),
                };
                if differs {
                    differences.push(FieldDifference {
                        field: name.clone(),
                        incoming: mine.value.to_json(),
                        existing: theirs.value.to_json(),
                        against: who,
                        tolerance: tol,
                    });
                }
            }
        };
        if let Some(over) = &target.operator_override {
            if let Ok(view) = RecordView::read(
                rec.category,
                rec.schema_version,
                &over.payload,
                &rec.match_tokens,
                None,
            ) {
                against(&view, None);
            }
        } else {
            for c in target.current().filter(|c| c.keys.source != prepared.keys.source) {
                if let Ok(view) = read(target.category, c) {
                    against(&view, Some(c.record_id));
                }
            }
        }
        Comparison { differences }
    }

    /// Resolves `conflict` by `choice` of operator `by` (R-REC). `live` is the conflict's
    /// target as stored now (or the canonical record it was merged into since); `approvals`
    /// those that may cover the incoming record.
    #[allow(clippy::too_many_arguments)]
    pub fn resolve(
        &self,
        conflict: &Conflict,
        choice: ResolutionChoice,
        by: UserId,
        note: Option<String>,
        live: &CanonicalRecord,
        approvals: &[PeriodApproval],
        now: DateTime<Utc>,
    ) -> Result<Resolved, ResolveError> {
        if !conflict.is_open() {
            return Err(ResolveError::AlreadyResolved);
        }
        if note.as_ref().is_some_and(|n| n.chars().count() > 2000) {
            return Err(ResolveError::NoteTooLong);
        }
        if !live.answers_to(conflict.target.id) {
            return Err(ResolveError::TargetMismatch(live.id));
        }
        let incoming = &conflict.incoming;
        if period::holding(
            approvals,
            incoming.source.org_id,
            conflict.category,
            conflict.period,
        )
        .is_some()
        {
            return Err(ResolveError::PeriodApproved);
        }
        let linked = |rule: Rule| {
            let mut c = incoming.clone();
            c.rule = rule;
            c.linked_at = now;
            c.config_version = self.config.version;
            c
        };
        let over = |payload: Value| OperatorOverride {
            payload,
            by,
            at: now,
            conflict: conflict.id,
        };
        let previous = Some(Previous {
            id: live.id,
            version: live.version,
        });
        let (canonical, previous, rejection) = match &choice {
            ResolutionChoice::Choose { record } => {
                let payload = if *record == incoming.record_id {
                    incoming.payload.clone()
                } else {
                    live.current()
                        .find(|c| c.record_id == *record)
                        .map(|c| c.payload.clone())
                        .ok_or(ResolveError::UnknownVersion(*record))?
                };
                let canonical = live.changed(
                    Some(linked(Rule::OperatorChoose)),
                    Some(over(payload)),
                    &self.config,
                );
                (canonical, previous, None)
            }
            ResolutionChoice::Merge { values } => {
                if values.is_empty() {
                    return Err(ResolveError::EmptyMerge);
                }
                let mut payload = live.payload.clone();
                for (ptr, v) in values {
                    if ptr.is_empty() || !is_pointer(ptr) {
                        return Err(ResolveError::InvalidPointer(ptr.clone()));
                    }
                    let known = incoming.payload.pointer(ptr).is_some()
                        || live.current().any(|c| c.payload.pointer(ptr).is_some());
                    if !known || !set_pointer(&mut payload, ptr, v.clone()) {
                        return Err(ResolveError::UnknownField(ptr.clone()));
                    }
                }
                let canonical = live.changed(
                    Some(linked(Rule::OperatorMerge)),
                    Some(over(payload)),
                    &self.config,
                );
                (canonical, previous, None)
            }
            ResolutionChoice::Reject => {
                if conflict.reason == ConflictReason::RevisionDisagrees {
                    return Err(ResolveError::RejectNotAllowed(conflict.reason.as_str()));
                }
                let canonical = CanonicalRecord::found(
                    conflict.category,
                    conflict.period,
                    linked(Rule::NewAfterRejection),
                    &self.config,
                );
                let rejection = RejectedPair {
                    record_id: incoming.record_id,
                    source_key: incoming.keys.source,
                    canonical: live.id,
                    conflict: conflict.id,
                    by,
                    at: now,
                };
                (canonical, None, Some(rejection))
            }
        };
        let mut resolved = conflict.clone();
        resolved.status = ConflictStatus::Resolved(Resolution {
            choice,
            by,
            at: now,
            note,
        });
        Ok(Resolved {
            conflict: resolved,
            canonical,
            previous,
            rejection,
        })
    }
}

/// Reads a stored contribution's payload.
fn read(category: Category, c: &Contribution) -> Result<RecordView, ViewError> {
    RecordView::read(category, c.schema_version, &c.payload, &c.match_tokens, None)
}

/// Sets the value at JSON pointer `ptr` (non-empty) in `root`: an existing array element, or a
/// member of an existing object (created if absent). `false` when the parent does not exist.
fn set_pointer(root: &mut Value, ptr: &str, value: Value) -> bool {
    let segments: Vec<String> = ptr
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut cur = root;
    for seg in parents {
        let next = match cur {
            Value::Object(map) => map.get_mut(seg),
            Value::Array(items) => seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        };
        let Some(n) = next else {
            return false;
        };
        cur = n;
    }
    match cur {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            true
        }
        Value::Array(items) => match last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
            Some(slot) => {
                *slot = value;
                true
            }
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests;
