//! Canonical records and their provenance (R-REC, R-DATA-3).
//!
//! A [`CanonicalRecord`] is one fact or entity, made from the records of one or more sources.
//! It lists every contributing record — source organisation, system, receipt, masking policy
//! version, the reconciliation rule that linked it, its score and when ([`Contribution`]).
//!
//! Its state is a **pure function of its contributions** (and of any operator override), so
//! that processing the same records in any order gives the same result:
//! * **id**: the id of its oldest contributing record (earliest `received_at`, then smallest
//!   record id) — a canonical record is "created" when its oldest record was received, and a
//!   merge of two canonical records keeps the older id ([`merge`]); the other id is kept in
//!   [`CanonicalRecord::aliases`] and the server records it as `merged_into` the survivor.
//! * **roles**: per source key, records in `(received_at, record id)` order; the first is
//!   current; a later one with the same content is a [`Role::Duplicate`] of the current one, a
//!   later one with other content becomes current and the previous one
//!   [`Role::Superseded`].
//! * **value**: the operator's override if there is one, else the [`MergeRule`] applied to the
//!   current contributions.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use etx_domain::{Category, ContentHash, Form, Period, RecordId, SchemaVersion, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::categories::{MeasureValue, RecordView};
use crate::config::{MergeRule, ReconcileConfig};
use crate::fuzzy::Score;
use crate::ids::{CanonicalId, ConflictId};
use crate::keys::{BlockingKey, FactKey, KeySet, SourceKey};
use crate::record::{IncomingRecord, MatchTokens, SourceRef};

/// The reconciliation rule that linked a record to its canonical record (R-DATA-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// `new`: the record matched nothing and founded the canonical record.
    New,
    /// `new_after_rejection`: it matched only canonical records an operator rejected it from.
    NewAfterRejection,
    /// `source_duplicate`: the same source re-sent the same content.
    SourceDuplicate,
    /// `source_revision`: the same source sent new content for the same key.
    SourceRevision,
    /// `source_superseded`: the same source had already sent newer content for the key.
    SourceSuperseded,
    /// `fact_tolerance`: another source's record of the same fact, within tolerance.
    FactTolerance,
    /// `fuzzy_match`: another source's record of the same entity by fuzzy score.
    FuzzyMatch,
    /// `operator_choose`: an operator resolved a conflict by choosing a version.
    OperatorChoose,
    /// `operator_merge`: an operator resolved a conflict by merging field values.
    OperatorMerge,
}

impl Rule {
    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::NewAfterRejection => "new_after_rejection",
            Self::SourceDuplicate => "source_duplicate",
            Self::SourceRevision => "source_revision",
            Self::SourceSuperseded => "source_superseded",
            Self::FactTolerance => "fact_tolerance",
            Self::FuzzyMatch => "fuzzy_match",
            Self::OperatorChoose => "operator_choose",
            Self::OperatorMerge => "operator_merge",
        }
    }
}

/// The part a contribution plays in its canonical record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Role {
    /// The source's statement in force: it makes the value.
    Current,
    /// A re-send of the current statement's content.
    Duplicate {
        /// The record it repeats.
        of: RecordId,
    },
    /// An older statement of the source, replaced by a revision.
    Superseded {
        /// The record that replaced it.
        by: RecordId,
    },
}

/// One record's contribution to a canonical record: its provenance (R-DATA-3) and what
/// reconciliation made of it (R-REC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// The record.
    pub record_id: RecordId,
    /// Source organisation, system and receipt.
    pub source: SourceRef,
    /// When ingestion received it.
    pub received_at: DateTime<Utc>,
    /// The form it arrived in.
    pub form: Form,
    /// Its schema version.
    pub schema_version: SchemaVersion,
    /// The masking policy version of its masked payload.
    pub masking_policy_version: u32,
    /// Its content digest.
    pub content: ContentHash,
    /// Its keys.
    pub keys: KeySet,
    /// The rule that linked it.
    pub rule: Rule,
    /// The similarity score, for fuzzy and operator links.
    pub score: Option<Score>,
    /// The [`ReconcileConfig::version`] it was linked under.
    pub config_version: u32,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
    /// Its role (recomputed on every change, see the module documentation).
    pub role: Role,
    /// Its masked payload.
    pub payload: Value,
    /// Its match tokens.
    pub match_tokens: MatchTokens,
}

impl Contribution {
    /// The contribution `record` makes when linked now by `rule` (role to be computed).
    pub fn of(
        record: &IncomingRecord,
        keys: KeySet,
        rule: Rule,
        score: Option<Score>,
        config_version: u32,
        linked_at: DateTime<Utc>,
    ) -> Self {
        Self {
            record_id: record.record_id,
            source: record.source,
            received_at: record.received_at,
            form: record.form,
            schema_version: record.schema_version,
            masking_policy_version: record.masking_policy_version,
            content: record.content,
            keys,
            rule,
            score,
            config_version,
            linked_at,
            role: Role::Current,
            payload: record.payload.clone(),
            match_tokens: record.match_tokens.clone(),
        }
    }

    /// The age order of records: earliest received first, then the smaller record id.
    pub(crate) fn age(&self) -> (DateTime<Utc>, RecordId) {
        (self.received_at, self.record_id)
    }

    /// Whether it makes the value.
    pub fn is_current(&self) -> bool {
        self.role == Role::Current
    }
}

/// An operator's value for a canonical record, set when resolving a conflict (R-REC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorOverride {
    /// The payload the operator chose or merged.
    pub payload: Value,
    /// The operator.
    pub by: UserId,
    /// When.
    pub at: DateTime<Utc>,
    /// The conflict it resolved.
    pub conflict: ConflictId,
}

/// Where a canonical record's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "origin", rename_all = "snake_case")]
pub enum ValueOrigin {
    /// A merge rule over the current contributions, based on `base`'s payload.
    Rule {
        /// The rule.
        rule: MergeRule,
        /// The contribution whose payload is the base.
        base: RecordId,
    },
    /// An operator's override.
    Operator {
        /// The operator.
        by: UserId,
    },
}

/// One canonical record (R-REC) with its provenance (R-DATA-3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalRecord {
    /// Its id (see the module documentation).
    pub id: CanonicalId,
    /// Its category.
    pub category: Category,
    /// Its reporting period.
    pub period: Period,
    /// When its oldest record was received.
    pub created_at: DateTime<Utc>,
    /// Optimistic-concurrency version: 1 when founded, +1 on every change.
    pub version: u64,
    /// Every contributing record, oldest first.
    pub contributions: Vec<Contribution>,
    /// Its value (masked payload).
    pub payload: Value,
    /// Where the value came from.
    pub value_origin: ValueOrigin,
    /// An operator's override, if a conflict was resolved by choosing or merging.
    pub operator_override: Option<OperatorOverride>,
    /// Ids of canonical records merged into this one (each `merged_into` = [`Self::id`]).
    pub aliases: Vec<CanonicalId>,
}

impl CanonicalRecord {
    /// The canonical record of `category` and `period` founded by one contribution.
    pub fn found(
        category: Category,
        period: Period,
        contribution: Contribution,
        config: &ReconcileConfig,
    ) -> Self {
        rebuild(
            category,
            period,
            vec![contribution],
            None,
            BTreeSet::new(),
            0,
            config,
        )
    }

    /// Whether `id` is this record's id or one merged into it.
    pub fn answers_to(&self, id: CanonicalId) -> bool {
        self.id == id || self.aliases.contains(&id)
    }

    /// The current contributions, oldest first.
    pub fn current(&self) -> impl Iterator<Item = &Contribution> {
        self.contributions.iter().filter(|c| c.is_current())
    }

    /// The contribution of `record`, if it has one.
    pub fn contribution(&self, record: RecordId) -> Option<&Contribution> {
        self.contributions.iter().find(|c| c.record_id == record)
    }

    /// Every source key of its contributions, without repeats.
    pub fn source_keys(&self) -> BTreeSet<SourceKey> {
        self.contributions.iter().map(|c| c.keys.source).collect()
    }

    /// Every fact key of its contributions, without repeats.
    pub fn fact_keys(&self) -> BTreeSet<FactKey> {
        self.contributions.iter().filter_map(|c| c.keys.fact).collect()
    }

    /// Every blocking key of its contributions, without repeats.
    pub fn blocking_keys(&self) -> BTreeSet<BlockingKey> {
        self.contributions
            .iter()
            .flat_map(|c| c.keys.blocking.iter().copied())
            .collect()
    }

    /// The age order of canonical records: the older is created first; ties go to the smaller
    /// id.
    pub fn age(&self) -> (DateTime<Utc>, CanonicalId) {
        (self.created_at, self.id)
    }

    /// This record with `contribution` added (or replacing the contribution of the same
    /// record), everything recomputed (see the module documentation). If the contribution is
    /// older than every other one, the id changes and the old id becomes an alias.
    pub fn with(&self, contribution: Contribution, config: &ReconcileConfig) -> Self {
        self.changed(Some(contribution), None, config)
    }

    /// This record with `over` as its value.
    pub fn with_override(&self, over: OperatorOverride, config: &ReconcileConfig) -> Self {
        self.changed(None, Some(over), config)
    }

    /// This record with `add` added and `over` (if given) as its new override, in one change.
    pub(crate) fn changed(
        &self,
        add: Option<Contribution>,
        over: Option<OperatorOverride>,
        config: &ReconcileConfig,
    ) -> Self {
        let mut all = self.contributions.clone();
        if let Some(c) = add {
            all.retain(|x| x.record_id != c.record_id);
            all.push(c);
        }
        let mut aliases: BTreeSet<CanonicalId> = self.aliases.iter().copied().collect();
        aliases.insert(self.id);
        rebuild(
            self.category,
            self.period,
            all,
            over.or_else(|| self.operator_override.clone()),
            aliases,
            self.version,
            config,
        )
    }
}

/// The canonical record made of both `a` and `b` (R-REC stable ids): it keeps the older id
/// (earliest `created_at`; tie → the smaller id), the other id becomes an alias and the server
/// records it as `merged_into` the result. The older record's operator override is kept (else
/// the other's). Both must be of the same category and period; `None` otherwise.
pub fn merge(a: &CanonicalRecord, b: &CanonicalRecord, config: &ReconcileConfig) -> Option<CanonicalRecord> {
    if a.category != b.category || a.period != b.period {
        return None;
    }
    let (older, younger) = if a.age() <= b.age() { (a, b) } else { (b, a) };
    let mut all = older.contributions.clone();
    for c in &younger.contributions {
        if !all.iter().any(|x| x.record_id == c.record_id) {
            all.push(c.clone());
        }
    }
    let aliases: BTreeSet<CanonicalId> = older
        .aliases
        .iter()
        .chain(&younger.aliases)
        .copied()
        .chain([older.id, younger.id])
        .collect();
    let over = older
        .operator_override
        .clone()
        .or_else(|| younger.operator_override.clone());
    Some(rebuild(
        older.category,
        older.period,
        all,
        over,
        aliases,
        older.version.max(younger.version),
        config,
    ))
}

/// Recomputes a canonical record from its contributions (see the module documentation).
/// `all` is never empty when called from this crate.
fn rebuild(
    category: Category,
    period: Period,
    mut all: Vec<Contribution>,
    over: Option<OperatorOverride>,
    mut aliases: BTreeSet<CanonicalId>,
    previous_version: u64,
    config: &ReconcileConfig,
) -> CanonicalRecord {
    all.sort_by_key(Contribution::age);
    assign_roles(&mut all);
    let (id, created_at) = all.first().map_or(
        (CanonicalId::from_uuid(Uuid::nil()), DateTime::<Utc>::MIN_UTC),
        |c| (CanonicalId::founded_by(c.record_id), c.received_at),
    );
    aliases.remove(&id);
    let (payload, value_origin) = match &over {
        Some(o) => (o.payload.clone(), ValueOrigin::Operator { by: o.by }),
        None => value_of(category, &all, config),
    };
    CanonicalRecord {
        id,
        category,
        period,
        created_at,
        version: previous_version + 1,
        contributions: all,
        payload,
        value_origin,
        operator_override: over,
        aliases: aliases.into_iter().collect(),
    }
}

/// Assigns roles per source key, walking `all` in age order.
fn assign_roles(all: &mut [Contribution]) {
    let mut current: BTreeMap<SourceKey, usize> = BTreeMap::new();
    for i in 0..all.len() {
        let key = all[i].keys.source;
        match current.get(&key).copied() {
            Some(j) if all[j].content == all[i].content => {
                all[i].role = Role::Duplicate { of: all[j].record_id };
            }
            Some(j) => {
                all[j].role = Role::Superseded { by: all[i].record_id };
                all[i].role = Role::Current;
                current.insert(key, i);
            }
            None => {
                all[i].role = Role::Current;
                current.insert(key, i);
            }
        }
    }
}

/// The value of the current contributions under the category's merge rule.
fn value_of(category: Category, all: &[Contribution], config: &ReconcileConfig) -> (Value, ValueOrigin) {
    let rule = config.for_category(category).merge_rule;
    let current: Vec<&Contribution> = all.iter().filter(|c| c.is_current()).collect();
    let by_authority = current
        .iter()
        .copied()
        .min_by_key(|c| (config.authority_rank(c.source.org_kind), c.age()));
    let earliest = current.iter().copied().min_by_key(|c| c.age());
    let base = match rule {
        MergeRule::PreferAuthority | MergeRule::Mean => by_authority,
        MergeRule::PreferEarliest => earliest,
    };
    let Some(base) = base.or_else(|| all.last()) else {
        return (
            Value::Null,
            ValueOrigin::Rule {
                rule,
                base: RecordId::from_uuid(Uuid::nil()),
            },
        );
    };
    let mut payload = base.payload.clone();
    if rule == MergeRule::Mean && current.len() > 1 {
        apply_means(category, base, &current, &mut payload);
    }
    (
        payload,
        ValueOrigin::Rule {
            rule,
            base: base.record_id,
        },
    )
}

/// Replaces every numeric measure of `base` in `payload` by the mean over `current`.
fn apply_means(category: Category, base: &Contribution, current: &[&Contribution], payload: &mut Value) {
    let read = |c: &Contribution| {
        RecordView::read(category, c.schema_version, &c.payload, &c.match_tokens, None).ok()
    };
    let Some(base_view) = read(base) else {
        return;
    };
    let views: Vec<RecordView> = current.iter().filter_map(|c| read(c)).collect();
    for (name, m) in base_view.measures() {
        if !matches!(m.value, MeasureValue::Number(_)) {
            continue;
        }
        let xs: Vec<f64> = views
            .iter()
            .filter_map(|v| match v.measures().get(name).map(|m| &m.value) {
                Some(MeasureValue::Number(x)) => Some(*x),
                _ => None,
            })
            .collect();
        if xs.is_empty() {
            continue;
        }
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let whole = xs.iter().all(|x| x.fract() == 0.0);
        let value = if whole && mean.abs() < 9.0e15 {
            Value::from(mean.round() as i64)
        } else {
            serde_json::Number::from_f64(mean).map_or(Value::Null, Value::Number)
        };
        if let Some(slot) = payload.pointer_mut(&m.pointer) {
            *slot = value;
        }
    }
}
