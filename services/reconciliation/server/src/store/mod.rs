//! Reconciliation's store (sea-orm, SQLite or PostgreSQL): every port of
//! `etx_reconciliation_core::ports` — canonical records with their contributions (provenance,
//! R-DATA-3), the key index the candidate lookup reads, record outcomes (idempotency), the
//! conflict queue, remembered rejections and period approvals (R-REC) — each write in one
//! transaction with the outbox entries announcing it (R-AVAIL).
//!
//! Concurrency (several consumers, at-least-once delivery):
//! * every save first takes a lock per record id and per source and fact key of the record
//!   (PostgreSQL: transaction-scoped advisory locks, in sorted order; SQLite: `BEGIN IMMEDIATE`
//!   serialises writers), so two saves about the same record or fact run one after the other;
//! * a canonical record is changed only at the version the decision read
//!   (`UPDATE … WHERE version = ? AND merged_into IS NULL`), else [`SaveError::Stale`];
//! * a new canonical record is refused ([`SaveError::Stale`]) when a live one already holds the
//!   record's source key, or its fact key without a remembered rejection;
//! * covering approvals are read `FOR SHARE` inside the transaction, so a period approved after
//!   the decision was made sends the service back to decide again (and hold the record).
//!
//! Payloads are sealed with the [`PayloadVault`] before the transaction begins (a vault may
//! write its own key table, which on SQLite would wait for this very transaction).

pub mod entities;
pub mod migrations;
pub mod queries;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use chrono::{DateTime, Utc};
use entities::{canonical_record, conflict, contribution, key_index, outcome, period_approval, rejection};
use etx_domain::{
    Category, ContentHash, Form, OrgId, OrgKind, Period, Priority, ReceiptId, RecordId, SchemaVersion,
    SystemId, UserId,
};
use etx_masking_core::PayloadVault;
use etx_reconciliation_core::engine::Previous;
use etx_reconciliation_core::{
    ApprovalScope, BlockingKey, CandidateQuery, CanonicalId, CanonicalRecord, Conflict, ConflictFilter,
    ConflictId, ConflictStatus, ConflictStore, Contribution, Decision, DecisionKind, DecisionMemory,
    DecisionSummary, FactKey, KeySet, MatchTokens, OperatorOverride, PeriodApproval, PeriodApprovals,
    PeriodKey, ReceivedSubmission, ReconciliationStore, RejectedPair, Resolved, Role, SaveError, Score,
    SourceKey, SourceRef, StoreError, ValueOrigin,
};
use etx_storage::{OutboxEntry, insert_outbox};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::messages;

/// Most canonical records the candidate lookup returns for blocking (fuzzy) keys alone, oldest
/// first; every source-key and fact-key match is always returned. A block this large means the
/// blocking keys of a category are too coarse, not that more comparisons would help.
pub const MAX_BLOCK_CANDIDATES: u64 = 200;

/// Most conflicts one [`ConflictStore::conflicts`] call returns, whatever the filter asks.
pub const MAX_CONFLICT_PAGE: usize = 500;

/// How many merge hops [`ReconciliationStore::canonical`] follows before calling the chain
/// broken (renames re-point older aliases, so a chain is one hop in practice).
const MAX_HOPS: usize = 64;

/// The associated-data "organisation" of sealed canonical values: they belong to no one source.
const CANONICAL_SEAL: Uuid = Uuid::from_u128(0x7265_636f_6e63_696c_6961_7469_6f6e_0001);
/// The associated-data "organisation" of sealed conflicts.
const CONFLICT_SEAL: Uuid = Uuid::from_u128(0x7265_636f_6e63_696c_6961_7469_6f6e_0002);

/// The store of every reconciliation port over one database (migrated: see [`crate::migrate`]).
/// Clones share the connection pool; [`SqlStore::with_priority`] gives the view whose outbox
/// entries carry a message's priority (R-DATA-2).
#[derive(Clone)]
pub struct SqlStore {
    db: DatabaseConnection,
    vault: Arc<dyn PayloadVault>,
    priority: Priority,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("priority", &self.priority)
            .finish_non_exhaustive()
    }
}

fn db_err(e: DbErr) -> anyhow::Error {
    anyhow::Error::new(e).context("reconciliation store")
}

fn read_err(e: DbErr) -> StoreError {
    StoreError::Unknown(db_err(e))
}

fn save_err(e: DbErr) -> SaveError {
    SaveError::Unknown(db_err(e))
}

/// A unique violation on an insert means another writer got there first.
fn conflict_or(e: DbErr, then: SaveError) -> SaveError {
    if etx_storage::is_unique_violation(&e) {
        then
    } else {
        save_err(e)
    }
}

/// The wire code of a serde enum (`"fact_tolerance"`).
fn code<T: Serialize>(v: &T) -> anyhow::Result<String> {
    match serde_json::to_value(v)? {
        Value::String(s) => Ok(s),
        other => Err(anyhow!("expected a code, got {other}")),
    }
}

fn from_code<T: DeserializeOwned>(s: &str, what: &str) -> anyhow::Result<T> {
    serde_json::from_value(Value::String(s.to_owned())).with_context(|| format!("stored {what} is unknown"))
}

fn json_text<T: Serialize>(v: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string(v)?)
}

fn from_json<T: DeserializeOwned>(s: &str, what: &str) -> anyhow::Result<T> {
    serde_json::from_str(s).with_context(|| format!("stored {what} does not parse"))
}

fn u64_of(n: i64, what: &str) -> anyhow::Result<u64> {
    u64::try_from(n).map_err(|_| anyhow!("stored {what} is negative"))
}

fn i64_of(n: u64) -> anyhow::Result<i64> {
    i64::try_from(n).map_err(|_| anyhow!("{n} does not fit a column"))
}

fn scope_code(scope: ApprovalScope) -> String {
    match scope {
        ApprovalScope::All => "all".to_owned(),
        ApprovalScope::Org(o) => o.to_string(),
    }
}

/// A transaction-scoped lock id for `bytes` (PostgreSQL advisory locks take a bigint).
fn lock_id(tag: u8, bytes: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    for (i, x) in bytes.iter().take(8).enumerate() {
        b[i] = *x;
    }
    b[0] ^= tag;
    i64::from_be_bytes(b)
}

/// The operator's override without its value (which is the canonical record's payload).
#[derive(Debug, Serialize, Deserialize)]
struct OverrideMeta {
    by: UserId,
    at: DateTime<Utc>,
    conflict: ConflictId,
}

/// Where a stored contribution sits in its canonical record.
struct StoredContribution {
    canonical_id: Uuid,
    ordinal: i32,
    role: String,
    role_record: Option<Uuid>,
}

/// A canonical record's new state, with what had to be sealed before the transaction.
struct SealedLink<'a> {
    canonical: &'a CanonicalRecord,
    previous: Option<Previous>,
    /// The sealed value.
    payload: Vec<u8>,
    /// The sealed payloads of the contributions new in this change.
    fresh: HashMap<RecordId, Vec<u8>>,
}

/// Rows a save writes at its end, a few statements for many decisions (group commit): new
/// canonical records, contributions, key index rows, conflicts and outcomes. Flushed before
/// anything reads or changes what they would add (a link to a stored canonical record).
#[derive(Default)]
struct Deferred {
    canonicals: Vec<canonical_record::ActiveModel>,
    contributions: Vec<contribution::ActiveModel>,
    keys: Vec<key_index::ActiveModel>,
    conflicts: Vec<conflict::ActiveModel>,
    outcomes: Vec<outcome::ActiveModel>,
}

impl SqlStore {
    /// A store over `db`, sealing payloads with `vault`; its outbox entries carry normal
    /// priority.
    pub fn new(db: DatabaseConnection, vault: Arc<dyn PayloadVault>) -> Self {
        Self {
            db,
            vault,
            priority: Priority::Normal,
        }
    }

    /// This store, announcing its decisions with `priority`.
    #[must_use]
    pub fn with_priority(&self, priority: Priority) -> Self {
        Self {
            priority,
            ..self.clone()
        }
    }

    /// The connection.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    fn chunk(&self) -> usize {
        if self.db.get_database_backend() == DbBackend::Sqlite {
            200
        } else {
            1000
        }
    }

    async fn seal(&self, org: Uuid, id: Uuid, value: &Value) -> anyhow::Result<Vec<u8>> {
        let plain = serde_json::to_vec(value)?;
        self.vault
            .seal(OrgId::from_uuid(org), RecordId::from_uuid(id), &plain)
            .await
            .map_err(|e| anyhow!("cannot seal a payload: {e}"))
    }

    async fn open(&self, org: Uuid, id: Uuid, sealed: &[u8]) -> anyhow::Result<Value> {
        let plain = self
            .vault
            .open(OrgId::from_uuid(org), RecordId::from_uuid(id), sealed)
            .await
            .map_err(|e| anyhow!("a sealed payload of {id} does not open: {e}"))?;
        serde_json::from_slice(&plain).with_context(|| format!("the payload of {id} is not JSON"))
    }

    /// Seals what a link writes: the value, and the contributions the store does not hold yet
    /// (the record just decided; on a rejection, the record founding its own canonical record).
    async fn seal_link<'a>(
        &self,
        canonical: &'a CanonicalRecord,
        previous: Option<Previous>,
        fresh: &[RecordId],
    ) -> anyhow::Result<SealedLink<'a>> {
        let payload = self
            .seal(CANONICAL_SEAL, canonical.id.as_uuid(), &canonical.payload)
            .await?;
        let mut sealed = HashMap::new();
        for c in canonical
            .contributions
            .iter()
            .filter(|c| fresh.contains(&c.record_id))
        {
            sealed.insert(
                c.record_id,
                self.seal(c.source.org_id.as_uuid(), c.record_id.as_uuid(), &c.payload)
                    .await?,
            );
        }
        Ok(SealedLink {
            canonical,
            previous,
            payload,
            fresh: sealed,
        })
    }

    // --- reads ------------------------------------------------------------------------------

    /// Live canonical records among `ids` (of `scope`'s category and period when given), with
    /// every contribution.
    async fn load_live(
        &self,
        ids: &[Uuid],
        scope: Option<(Category, Period)>,
    ) -> Result<Vec<CanonicalRecord>, StoreError> {
        let mut rows = Vec::new();
        for chunk in ids.chunks(self.chunk()) {
            let mut q = canonical_record::Entity::find()
                .filter(canonical_record::Column::Id.is_in(chunk.iter().copied()))
                .filter(canonical_record::Column::MergedInto.is_null());
            if let Some((category, period)) = scope {
                q = q
                    .filter(canonical_record::Column::Category.eq(category.as_str()))
                    .filter(canonical_record::Column::Period.eq(period.to_string()));
            }
            rows.extend(q.all(&self.db).await.map_err(read_err)?);
        }
        let live: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let mut by_canonical: HashMap<Uuid, Vec<contribution::Model>> = HashMap::new();
        for chunk in live.chunks(self.chunk()) {
            let found = contribution::Entity::find()
                .filter(contribution::Column::CanonicalId.is_in(chunk.iter().copied()))
                .all(&self.db)
                .await
                .map_err(read_err)?;
            for c in found {
                by_canonical.entry(c.canonical_id).or_default().push(c);
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let mut contributions = by_canonical.remove(&row.id).unwrap_or_default();
            contributions.sort_by_key(|c| c.ordinal);
            out.push(self.assemble(row, contributions).await?);
        }
        Ok(out)
    }

    async fn assemble(
        &self,
        row: canonical_record::Model,
        rows: Vec<contribution::Model>,
    ) -> Result<CanonicalRecord, StoreError> {
        let id = row.id;
        let corrupt = |e: anyhow::Error| StoreError::Unknown(e.context(format!("canonical record {id}")));
        let payload = self
            .open(CANONICAL_SEAL, id, &row.payload)
            .await
            .map_err(corrupt)?;
        let mut contributions = Vec::with_capacity(rows.len());
        for c in rows {
            contributions.push(self.contribution(c).await.map_err(corrupt)?);
        }
        let operator_override = match &row.operator_override {
            Some(text) => {
                let meta: OverrideMeta = from_json(text, "operator override").map_err(corrupt)?;
                Some(OperatorOverride {
                    payload: payload.clone(),
                    by: meta.by,
                    at: meta.at,
                    conflict: meta.conflict,
                })
            }
            None => None,
        };
        Ok(CanonicalRecord {
            id: CanonicalId::from_uuid(id),
            category: Category::parse(&row.category).map_err(|_| corrupt(anyhow!("unknown category")))?,
            period: Period::parse(&row.period).map_err(|_| corrupt(anyhow!("invalid period")))?,
            created_at: row.created_at,
            version: u64_of(row.version, "version").map_err(corrupt)?,
            contributions,
            payload,
            value_origin: from_json::<ValueOrigin>(&row.value_origin, "value origin").map_err(corrupt)?,
            operator_override,
            aliases: from_json(&row.aliases, "aliases").map_err(corrupt)?,
        })
    }

    async fn contribution(&self, c: contribution::Model) -> anyhow::Result<Contribution> {
        let role = match (c.role.as_str(), c.role_record) {
            ("current", None) => Role::Current,
            ("duplicate", Some(of)) => Role::Duplicate {
                of: RecordId::from_uuid(of),
            },
            ("superseded", Some(by)) => Role::Superseded {
                by: RecordId::from_uuid(by),
            },
            _ => return Err(anyhow!("contribution {} has an invalid role", c.record_id)),
        };
        let blocking: Vec<String> = from_json(&c.blocking_keys, "blocking keys")?;
        let blocking = blocking
            .iter()
            .map(|k| BlockingKey::parse(k))
            .collect::<Result<Vec<_>, _>>()?;
        let schema_version = u16::try_from(c.schema_version)
            .ok()
            .and_then(|n| SchemaVersion::parse(&n.to_string()).ok())
            .ok_or_else(|| anyhow!("invalid schema version"))?;
        let score = match c.score {
            Some(x) => Some(Score::new(x).ok_or_else(|| anyhow!("invalid score"))?),
            None => None,
        };
        Ok(Contribution {
            record_id: RecordId::from_uuid(c.record_id),
            source: SourceRef {
                org_id: OrgId::from_uuid(c.org_id),
                org_kind: OrgKind::parse(&c.org_kind).map_err(|_| anyhow!("unknown organisation kind"))?,
                system_id: SystemId::from_uuid(c.system_id),
                receipt_id: ReceiptId::from_uuid(c.receipt_id),
            },
            received_at: c.received_at,
            form: Form::parse(&c.form).map_err(|_| anyhow!("unknown form"))?,
            schema_version,
            masking_policy_version: u32::try_from(c.masking_policy_version)
                .map_err(|_| anyhow!("invalid masking policy version"))?,
            content: ContentHash::parse(&c.content).map_err(|_| anyhow!("invalid content digest"))?,
            keys: KeySet {
                source: SourceKey::parse(&c.source_key)?,
                fact: c.fact_key.as_deref().map(FactKey::parse).transpose()?,
                blocking,
            },
            rule: from_code(&c.rule, "rule")?,
            score,
            config_version: u32::try_from(c.config_version).map_err(|_| anyhow!("invalid config version"))?,
            linked_at: c.linked_at,
            role,
            payload: self.open(c.org_id, c.record_id, &c.payload).await?,
            match_tokens: from_json::<MatchTokens>(&c.match_tokens, "match tokens")?,
        })
    }

    async fn open_conflict(&self, row: &conflict::Model) -> Result<Conflict, StoreError> {
        let doc = self
            .open(CONFLICT_SEAL, row.id, &row.body)
            .await
            .map_err(StoreError::Unknown)?;
        serde_json::from_value(doc)
            .with_context(|| format!("stored conflict {} does not parse", row.id))
            .map_err(StoreError::Unknown)
    }

    /// Canonical ids holding one of `keys` (at most `limit` when given, oldest first).
    async fn holders(&self, keys: &[String], limit: Option<u64>) -> Result<Vec<Uuid>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut q = key_index::Entity::find()
            .select_only()
            .column(key_index::Column::CanonicalId)
            .distinct()
            .filter(key_index::Column::Key.is_in(keys.iter().cloned()));
        if let Some(n) = limit {
            q = q.order_by_asc(key_index::Column::CanonicalId).limit(n);
        }
        q.into_tuple().all(&self.db).await.map_err(read_err)
    }

    /// Every record received for `orgs` and `periods` (R-REC completeness): one per record
    /// decided in any way.
    pub async fn received(
        &self,
        orgs: &[OrgId],
        periods: &[Period],
    ) -> Result<Vec<ReceivedSubmission>, StoreError> {
        let periods: Vec<String> = periods.iter().map(ToString::to_string).collect();
        let mut out = Vec::new();
        if periods.is_empty() {
            return Ok(out);
        }
        for chunk in orgs.chunks(self.chunk()) {
            let rows = outcome::Entity::find()
                .filter(outcome::Column::OrgId.is_in(chunk.iter().map(OrgId::as_uuid)))
                .filter(outcome::Column::Period.is_in(periods.iter().cloned()))
                .all(&self.db)
                .await
                .map_err(read_err)?;
            for r in rows {
                let corrupt = |what: &str| StoreError::Unknown(anyhow!("outcome of {}: {what}", r.record_id));
                out.push(ReceivedSubmission {
                    org_id: OrgId::from_uuid(r.org_id),
                    category: Category::parse(&r.category).map_err(|_| corrupt("unknown category"))?,
                    period: Period::parse(&r.period).map_err(|_| corrupt("invalid period"))?,
                    record_id: RecordId::from_uuid(r.record_id),
                    received_at: r.received_at,
                });
            }
        }
        Ok(out)
    }

    /// The outcomes saved for `ids` other than held (final: the handler skips them).
    pub async fn final_outcomes(&self, ids: &[RecordId]) -> Result<BTreeSet<RecordId>, StoreError> {
        let mut out = BTreeSet::new();
        for chunk in ids.chunks(self.chunk()) {
            let found: Vec<Uuid> = outcome::Entity::find()
                .select_only()
                .column(outcome::Column::RecordId)
                .filter(outcome::Column::RecordId.is_in(chunk.iter().map(RecordId::as_uuid)))
                .filter(outcome::Column::Kind.ne(DecisionKind::Held.as_str()))
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(read_err)?;
            out.extend(found.into_iter().map(RecordId::from_uuid));
        }
        Ok(out)
    }

    // --- writes -----------------------------------------------------------------------------

    /// Takes the locks of a save about `record` and its `keys` (PostgreSQL; SQLite's
    /// `BEGIN IMMEDIATE` already serialises writers).
    async fn lock(
        &self,
        txn: &DatabaseTransaction,
        what: &[(RecordId, Option<&KeySet>)],
    ) -> Result<(), SaveError> {
        if txn.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(what.len() * 3);
        for (record, keys) in what {
            ids.push(lock_id(1, record.as_uuid().as_bytes()));
            if let Some(k) = keys {
                ids.push(lock_id(2, k.source.as_bytes()));
                if let Some(f) = k.fact {
                    ids.push(lock_id(3, f.as_bytes()));
                }
            }
        }
        // One order for every writer: no two transactions wait for each other's locks.
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(500) {
            // The ids are numbers this process computed, not input: written inline, taken in
            // the order listed.
            let values = chunk
                .iter()
                .map(|id| format!("({id})"))
                .collect::<Vec<_>>()
                .join(",");
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT k FROM (VALUES {values}) AS v(k) ORDER BY k) AS s"
            ))
            .await
            .map_err(save_err)?;
        }
        Ok(())
    }

    /// [`SaveError::AlreadyDecided`] when one of `records` has an outcome other than held.
    async fn check_undecided(
        &self,
        txn: &DatabaseTransaction,
        records: &[RecordId],
    ) -> Result<(), SaveError> {
        for chunk in records.chunks(self.chunk()) {
            let decided: Option<Uuid> = outcome::Entity::find()
                .select_only()
                .column(outcome::Column::RecordId)
                .filter(outcome::Column::RecordId.is_in(chunk.iter().map(RecordId::as_uuid)))
                .filter(outcome::Column::Kind.ne(DecisionKind::Held.as_str()))
                .into_tuple()
                .one(txn)
                .await
                .map_err(save_err)?;
            if decided.is_some() {
                return Err(SaveError::AlreadyDecided);
            }
        }
        Ok(())
    }

    /// [`SaveError::Stale`] when a read-only approval covers `org`'s records of `category`
    /// and `period` (read `FOR SHARE`: an approval being saved waits for this transaction).
    async fn check_writable(
        &self,
        txn: &DatabaseTransaction,
        org: OrgId,
        category: Category,
        period: Period,
    ) -> Result<(), SaveError> {
        let read_only: Vec<bool> = period_approval::Entity::find()
            .select_only()
            .column(period_approval::Column::ReadOnly)
            .filter(period_approval::Column::Category.eq(category.as_str()))
            .filter(period_approval::Column::Period.eq(period.to_string()))
            .filter(period_approval::Column::Scope.is_in([scope_code(ApprovalScope::All), org.to_string()]))
            .lock_shared()
            .into_tuple()
            .all(txn)
            .await
            .map_err(save_err)?;
        if read_only.into_iter().any(|r| r) {
            return Err(SaveError::Stale);
        }
        Ok(())
    }

    /// [`Self::check_founding`] for every decision of a batch that founds a canonical record,
    /// in one read when nothing holds their keys (the usual case); two foundings of one key in
    /// the same batch are [`SaveError::Stale`] as well.
    async fn check_foundings(
        &self,
        txn: &DatabaseTransaction,
        decisions: &[Decision],
    ) -> Result<(), SaveError> {
        let mut founding: Vec<(RecordId, &KeySet)> = Vec::new();
        for d in decisions {
            if let Some(l) = d.linked()
                && l.previous.is_none()
            {
                let record = d.record_id();
                let Some(c) = l.canonical.contribution(record) else {
                    return Err(SaveError::Unknown(anyhow!(
                        "the link of record {record} does not contain it"
                    )));
                };
                founding.push((record, &c.keys));
            }
        }
        if founding.is_empty() {
            return Ok(());
        }
        let mut wanted: HashMap<String, usize> = HashMap::new();
        for (i, (_, keys)) in founding.iter().enumerate() {
            let mut own = vec![keys.source.to_string()];
            own.extend(keys.fact.map(|f| f.to_string()));
            for k in own {
                if wanted.insert(k, i).is_some() {
                    return Err(SaveError::Stale);
                }
            }
        }
        let all: Vec<String> = wanted.keys().cloned().collect();
        let mut held: BTreeSet<usize> = BTreeSet::new();
        for chunk in all.chunks(self.chunk()) {
            let found: Vec<String> = key_index::Entity::find()
                .select_only()
                .column(key_index::Column::Key)
                .filter(key_index::Column::Key.is_in(chunk.iter().cloned()))
                .into_tuple()
                .all(txn)
                .await
                .map_err(save_err)?;
            held.extend(found.iter().filter_map(|k| wanted.get(k).copied()));
        }
        // Rare: a key is held; the full check knows which holders a rejection allows.
        for i in held {
            let (record, keys) = founding[i];
            self.check_founding(txn, record, keys).await?;
        }
        Ok(())
    }

    /// A new canonical record founded by `record` must not split a fact: no live record may
    /// hold its source key, nor its fact key unless a remembered rejection forbids it.
    async fn check_founding(
        &self,
        txn: &DatabaseTransaction,
        record: RecordId,
        keys: &KeySet,
    ) -> Result<(), SaveError> {
        let source = keys.source.to_string();
        let mut wanted = vec![source.clone()];
        if let Some(f) = keys.fact {
            wanted.push(f.to_string());
        }
        let rows = key_index::Entity::find()
            .filter(key_index::Column::Key.is_in(wanted))
            .all(txn)
            .await
            .map_err(save_err)?;
        if rows.iter().any(|r| r.key == source) {
            return Err(SaveError::Stale);
        }
        let holders: BTreeSet<Uuid> = rows.iter().map(|r| r.canonical_id).collect();
        if holders.is_empty() {
            return Ok(());
        }
        let rejected: Vec<Uuid> = rejection::Entity::find()
            .select_only()
            .column(rejection::Column::CanonicalId)
            .filter(
                sea_orm::Condition::any()
                    .add(rejection::Column::RecordId.eq(record.as_uuid()))
                    .add(rejection::Column::SourceKey.eq(source)),
            )
            .into_tuple()
            .all(txn)
            .await
            .map_err(save_err)?;
        let found = canonical_record::Entity::find()
            .filter(canonical_record::Column::Id.is_in(holders.iter().copied()))
            .all(txn)
            .await
            .map_err(save_err)?;
        for h in found {
            let aliases: Vec<Uuid> = from_json(&h.aliases, "aliases").map_err(SaveError::Unknown)?;
            let forbidden = rejected.iter().any(|r| *r == h.id || aliases.contains(r));
            if !forbidden {
                return Err(SaveError::Stale);
            }
        }
        Ok(())
    }

    /// Writes a canonical record's new state (see [`ReconciliationStore::save_decision`]):
    /// changes of stored rows at once, new rows into `deferred` (flush it before the
    /// transaction reads or changes them).
    async fn write_link(
        &self,
        txn: &DatabaseTransaction,
        link: &SealedLink<'_>,
        now: DateTime<Utc>,
        deferred: &mut Deferred,
    ) -> Result<(), SaveError> {
        let c = link.canonical;
        let new_id = c.id.as_uuid();
        let version = i64_of(c.version).map_err(SaveError::Unknown)?;
        let value_origin = json_text(&c.value_origin).map_err(SaveError::Unknown)?;
        let over = c
            .operator_override
            .as_ref()
            .map(|o| {
                json_text(&OverrideMeta {
                    by: o.by,
                    at: o.at,
                    conflict: o.conflict,
                })
            })
            .transpose()
            .map_err(SaveError::Unknown)?;
        let aliases = json_text(&c.aliases).map_err(SaveError::Unknown)?;
        let row = canonical_record::ActiveModel {
            id: Set(new_id),
            category: Set(c.category.as_str().to_owned()),
            period: Set(c.period.to_string()),
            created_at: Set(c.created_at),
            version: Set(version),
            merged_into: Set(None),
            payload: Set(link.payload.clone()),
            value_origin: Set(value_origin.clone()),
            operator_override: Set(over.clone()),
            aliases: Set(aliases.clone()),
            updated_at: Set(now),
        };
        let mut existing: HashMap<Uuid, StoredContribution> = HashMap::new();
        match link.previous {
            Some(p) if p.id == c.id => {
                let updated = canonical_record::Entity::update_many()
                    .col_expr(canonical_record::Column::CreatedAt, Expr::value(c.created_at))
                    .col_expr(canonical_record::Column::Version, Expr::value(version))
                    .col_expr(
                        canonical_record::Column::Payload,
                        Expr::value(link.payload.clone()),
                    )
                    .col_expr(canonical_record::Column::ValueOrigin, Expr::value(value_origin))
                    .col_expr(canonical_record::Column::OperatorOverride, Expr::value(over))
                    .col_expr(canonical_record::Column::Aliases, Expr::value(aliases))
                    .col_expr(canonical_record::Column::UpdatedAt, Expr::value(now))
                    .filter(canonical_record::Column::Id.eq(new_id))
                    .filter(
                        canonical_record::Column::Version.eq(i64_of(p.version).map_err(SaveError::Unknown)?),
                    )
                    .filter(canonical_record::Column::MergedInto.is_null())
                    .exec(txn)
                    .await
                    .map_err(save_err)?;
                if updated.rows_affected != 1 {
                    return Err(SaveError::Stale);
                }
                existing.extend(self.stored_contributions(txn, p.id).await?);
            }
            Some(p) => {
                // Renamed to an older record's id: the old row is retired and points to it.
                let old = p.id.as_uuid();
                let retired = canonical_record::Entity::update_many()
                    .col_expr(canonical_record::Column::MergedInto, Expr::value(new_id))
                    .col_expr(
                        canonical_record::Column::Version,
                        Expr::value(i64_of(p.version + 1).map_err(SaveError::Unknown)?),
                    )
                    .col_expr(canonical_record::Column::UpdatedAt, Expr::value(now))
                    .filter(canonical_record::Column::Id.eq(old))
                    .filter(
                        canonical_record::Column::Version.eq(i64_of(p.version).map_err(SaveError::Unknown)?),
                    )
                    .filter(canonical_record::Column::MergedInto.is_null())
                    .exec(txn)
                    .await
                    .map_err(save_err)?;
                if retired.rows_affected != 1 {
                    return Err(SaveError::Stale);
                }
                canonical_record::Entity::insert(row)
                    .exec_without_returning(txn)
                    .await
                    .map_err(|e| conflict_or(e, SaveError::Stale))?;
                canonical_record::Entity::update_many()
                    .col_expr(canonical_record::Column::MergedInto, Expr::value(new_id))
                    .filter(canonical_record::Column::MergedInto.eq(old))
                    .exec(txn)
                    .await
                    .map_err(save_err)?;
                key_index::Entity::update_many()
                    .col_expr(key_index::Column::CanonicalId, Expr::value(new_id))
                    .filter(key_index::Column::CanonicalId.eq(old))
                    .exec(txn)
                    .await
                    .map_err(save_err)?;
                existing.extend(self.stored_contributions(txn, p.id).await?);
            }
            None => deferred.canonicals.push(row),
        }

        let mut inserts = Vec::new();
        let mut keys = Vec::new();
        for (i, x) in c.contributions.iter().enumerate() {
            let ordinal =
                i32::try_from(i).map_err(|_| SaveError::Unknown(anyhow!("too many contributions")))?;
            let (role, role_record) = match x.role {
                Role::Current => ("current", None),
                Role::Duplicate { of } => ("duplicate", Some(of.as_uuid())),
                Role::Superseded { by } => ("superseded", Some(by.as_uuid())),
            };
            match existing.remove(&x.record_id.as_uuid()) {
                Some(stored) => {
                    if stored.canonical_id != new_id
                        || stored.ordinal != ordinal
                        || stored.role != role
                        || stored.role_record != role_record
                    {
                        contribution::Entity::update_many()
                            .col_expr(contribution::Column::CanonicalId, Expr::value(new_id))
                            .col_expr(contribution::Column::Ordinal, Expr::value(ordinal))
                            .col_expr(contribution::Column::Role, Expr::value(role))
                            .col_expr(contribution::Column::RoleRecord, Expr::value(role_record))
                            .filter(contribution::Column::RecordId.eq(x.record_id.as_uuid()))
                            .exec(txn)
                            .await
                            .map_err(save_err)?;
                    }
                }
                None => {
                    // Only the record just linked is new; anything else means the decision was
                    // made on a state that has changed since.
                    let Some(sealed) = link.fresh.get(&x.record_id) else {
                        return Err(SaveError::Stale);
                    };
                    inserts.push(contribution_row(
                        x,
                        new_id,
                        ordinal,
                        role,
                        role_record,
                        sealed.clone(),
                    )?);
                    keys.extend(key_rows(x, new_id));
                }
            }
        }
        if !existing.is_empty() {
            // The stored record holds contributions the decision did not see.
            return Err(SaveError::Stale);
        }
        deferred.contributions.extend(inserts);
        deferred.keys.extend(keys);
        Ok(())
    }

    /// Writes what `deferred` holds, a few rows per statement, and empties it. A row that
    /// exists already means another writer got there first: [`SaveError::Stale`] (for a
    /// conflict: [`SaveError::AlreadyDecided`]).
    async fn flush(&self, txn: &DatabaseTransaction, deferred: &mut Deferred) -> Result<(), SaveError> {
        let stale = |e| conflict_or(e, SaveError::Stale);
        for chunk in std::mem::take(&mut deferred.canonicals).chunks(64) {
            canonical_record::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await
                .map_err(stale)?;
        }
        for chunk in std::mem::take(&mut deferred.contributions).chunks(32) {
            contribution::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await
                .map_err(stale)?;
        }
        for chunk in std::mem::take(&mut deferred.keys).chunks(200) {
            key_index::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await
                .map_err(stale)?;
        }
        for chunk in std::mem::take(&mut deferred.conflicts).chunks(64) {
            conflict::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(txn)
                .await
                .map_err(|e| conflict_or(e, SaveError::AlreadyDecided))?;
        }
        for chunk in std::mem::take(&mut deferred.outcomes).chunks(64) {
            outcome::Entity::insert_many(chunk.to_vec())
                .on_conflict(outcome_upsert())
                .exec_without_returning(txn)
                .await
                .map_err(save_err)?;
        }
        Ok(())
    }

    /// The bookkeeping columns of `canonical`'s stored contributions (payloads stay put).
    async fn stored_contributions(
        &self,
        txn: &DatabaseTransaction,
        canonical: CanonicalId,
    ) -> Result<HashMap<Uuid, StoredContribution>, SaveError> {
        let rows: Vec<(Uuid, Uuid, i32, String, Option<Uuid>)> = contribution::Entity::find()
            .select_only()
            .column(contribution::Column::RecordId)
            .column(contribution::Column::CanonicalId)
            .column(contribution::Column::Ordinal)
            .column(contribution::Column::Role)
            .column(contribution::Column::RoleRecord)
            .filter(contribution::Column::CanonicalId.eq(canonical.as_uuid()))
            .into_tuple()
            .all(txn)
            .await
            .map_err(save_err)?;
        Ok(rows
            .into_iter()
            .map(|(record_id, canonical_id, ordinal, role, role_record)| {
                (
                    record_id,
                    StoredContribution {
                        canonical_id,
                        ordinal,
                        role,
                        role_record,
                    },
                )
            })
            .collect())
    }

    /// Stores `record`'s outcome (replacing a held one).
    #[allow(clippy::too_many_arguments)]
    async fn put_outcome(
        &self,
        txn: &DatabaseTransaction,
        summary: DecisionSummary,
        source: &SourceRef,
        category: Category,
        period: Period,
        received_at: DateTime<Utc>,
        held_scope: Option<String>,
        priority: Priority,
        now: DateTime<Utc>,
    ) -> Result<(), SaveError> {
        let row = outcome_row(
            summary,
            source,
            category,
            period,
            received_at,
            held_scope,
            priority,
            now,
        );
        outcome::Entity::insert(row)
            .on_conflict(outcome_upsert())
            .exec_without_returning(txn)
            .await
            .map_err(save_err)?;
        Ok(())
    }

    async fn commit(&self, txn: DatabaseTransaction, outbox: Vec<OutboxEntry>) -> Result<(), SaveError> {
        insert_outbox(&txn, outbox).await.map_err(save_err)?;
        txn.commit().await.map_err(save_err)
    }
}

/// A remembered rejection as stored.
fn rejected_pair(r: rejection::Model) -> Result<RejectedPair, StoreError> {
    Ok(RejectedPair {
        record_id: RecordId::from_uuid(r.record_id),
        source_key: SourceKey::parse(&r.source_key).map_err(|e| StoreError::Unknown(e.into()))?,
        canonical: CanonicalId::from_uuid(r.canonical_id),
        conflict: ConflictId::from_uuid(r.conflict_id),
        by: UserId::from_uuid(r.by_user),
        at: r.at,
    })
}

/// A record's outcome row.
#[allow(clippy::too_many_arguments)]
fn outcome_row(
    summary: DecisionSummary,
    source: &SourceRef,
    category: Category,
    period: Period,
    received_at: DateTime<Utc>,
    held_scope: Option<String>,
    priority: Priority,
    now: DateTime<Utc>,
) -> outcome::ActiveModel {
    outcome::ActiveModel {
        record_id: Set(summary.record_id.as_uuid()),
        kind: Set(summary.kind.as_str().to_owned()),
        canonical_id: Set(summary.canonical.map(|c| c.as_uuid())),
        conflict_id: Set(summary.conflict.map(|c| c.as_uuid())),
        org_id: Set(source.org_id.as_uuid()),
        category: Set(category.as_str().to_owned()),
        period: Set(period.to_string()),
        received_at: Set(received_at),
        decided_at: Set(now),
        held_scope: Set(held_scope),
        priority: Set(i16::from(priority.rank())),
    }
}

/// An outcome replaces the record's held one.
fn outcome_upsert() -> OnConflict {
    OnConflict::column(outcome::Column::RecordId)
        .update_columns([
            outcome::Column::Kind,
            outcome::Column::CanonicalId,
            outcome::Column::ConflictId,
            outcome::Column::DecidedAt,
            outcome::Column::HeldScope,
            outcome::Column::Priority,
        ])
        .to_owned()
}

fn contribution_row(
    x: &Contribution,
    canonical: Uuid,
    ordinal: i32,
    role: &str,
    role_record: Option<Uuid>,
    sealed: Vec<u8>,
) -> Result<contribution::ActiveModel, SaveError> {
    let blocking: Vec<String> = x.keys.blocking.iter().map(ToString::to_string).collect();
    let unknown = SaveError::Unknown;
    Ok(contribution::ActiveModel {
        record_id: Set(x.record_id.as_uuid()),
        canonical_id: Set(canonical),
        ordinal: Set(ordinal),
        org_id: Set(x.source.org_id.as_uuid()),
        org_kind: Set(x.source.org_kind.as_str().to_owned()),
        system_id: Set(x.source.system_id.as_uuid()),
        receipt_id: Set(x.source.receipt_id.as_uuid()),
        received_at: Set(x.received_at),
        form: Set(x.form.as_str().to_owned()),
        schema_version: Set(i32::from(x.schema_version.number())),
        masking_policy_version: Set(i64::from(x.masking_policy_version)),
        content: Set(x.content.to_string()),
        source_key: Set(x.keys.source.to_string()),
        fact_key: Set(x.keys.fact.map(|f| f.to_string())),
        blocking_keys: Set(json_text(&blocking).map_err(unknown)?),
        rule: Set(code(&x.rule).map_err(unknown)?),
        score: Set(x.score.map(|s| s.value())),
        config_version: Set(i64::from(x.config_version)),
        linked_at: Set(x.linked_at),
        role: Set(role.to_owned()),
        role_record: Set(role_record),
        payload: Set(sealed),
        match_tokens: Set(json_text(&x.match_tokens).map_err(unknown)?),
    })
}

fn key_rows(x: &Contribution, canonical: Uuid) -> Vec<key_index::ActiveModel> {
    let row = |key: String, kind: &str| key_index::ActiveModel {
        key: Set(key),
        record_id: Set(x.record_id.as_uuid()),
        kind: Set(kind.to_owned()),
        canonical_id: Set(canonical),
    };
    let mut rows = vec![row(x.keys.source.to_string(), "source")];
    if let Some(f) = x.keys.fact {
        rows.push(row(f.to_string(), "fact"));
    }
    let blocking: BTreeSet<String> = x.keys.blocking.iter().map(ToString::to_string).collect();
    rows.extend(blocking.into_iter().map(|b| row(b, "block")));
    rows
}

#[async_trait::async_trait]
impl ReconciliationStore for SqlStore {
    async fn outcome(&self, record: RecordId) -> Result<Option<DecisionSummary>, StoreError> {
        let Some(row) = outcome::Entity::find_by_id(record.as_uuid())
            .one(&self.db)
            .await
            .map_err(read_err)?
        else {
            return Ok(None);
        };
        Ok(Some(DecisionSummary {
            record_id: record,
            kind: from_code(&row.kind, "decision kind").map_err(StoreError::Unknown)?,
            canonical: row.canonical_id.map(CanonicalId::from_uuid),
            conflict: row.conflict_id.map(ConflictId::from_uuid),
        }))
    }

    async fn outcomes(&self, records: &[RecordId]) -> Result<HashMap<RecordId, DecisionSummary>, StoreError> {
        let mut out = HashMap::with_capacity(records.len());
        for chunk in records.chunks(self.chunk()) {
            let rows: Vec<(Uuid, String, Option<Uuid>, Option<Uuid>)> = outcome::Entity::find()
                .select_only()
                .column(outcome::Column::RecordId)
                .column(outcome::Column::Kind)
                .column(outcome::Column::CanonicalId)
                .column(outcome::Column::ConflictId)
                .filter(outcome::Column::RecordId.is_in(chunk.iter().map(RecordId::as_uuid)))
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(read_err)?;
            for (id, kind, canonical, conflict) in rows {
                let record_id = RecordId::from_uuid(id);
                out.insert(
                    record_id,
                    DecisionSummary {
                        record_id,
                        kind: from_code(&kind, "decision kind").map_err(StoreError::Unknown)?,
                        canonical: canonical.map(CanonicalId::from_uuid),
                        conflict: conflict.map(ConflictId::from_uuid),
                    },
                );
            }
        }
        Ok(out)
    }

    /// Every source-key and fact-key match of the batch in one lookup; blocking keys query by
    /// query (each capped at [`MAX_BLOCK_CANDIDATES`], as [`Self::candidates`]).
    async fn candidates_for(&self, queries: &[CandidateQuery]) -> Result<Vec<CanonicalRecord>, StoreError> {
        let mut exact: Vec<String> = Vec::with_capacity(queries.len() * 2);
        for q in queries {
            exact.push(q.source_key.to_string());
            exact.extend(q.fact_key.map(|f| f.to_string()));
        }
        let mut ids: BTreeSet<Uuid> = BTreeSet::new();
        for chunk in exact.chunks(self.chunk()) {
            ids.extend(self.holders(chunk, None).await?);
        }
        for q in queries.iter().filter(|q| !q.blocking_keys.is_empty()) {
            let blocking: Vec<String> = q.blocking_keys.iter().map(ToString::to_string).collect();
            ids.extend(self.holders(&blocking, Some(MAX_BLOCK_CANDIDATES)).await?);
        }
        let ids: Vec<Uuid> = ids.into_iter().collect();
        self.load_live(&ids, None).await
    }

    async fn candidates(&self, query: &CandidateQuery) -> Result<Vec<CanonicalRecord>, StoreError> {
        let mut exact = vec![query.source_key.to_string()];
        exact.extend(query.fact_key.map(|f| f.to_string()));
        let mut ids: BTreeSet<Uuid> = self.holders(&exact, None).await?.into_iter().collect();
        let blocking: Vec<String> = query.blocking_keys.iter().map(ToString::to_string).collect();
        ids.extend(self.holders(&blocking, Some(MAX_BLOCK_CANDIDATES)).await?);
        let ids: Vec<Uuid> = ids.into_iter().collect();
        self.load_live(&ids, Some((query.category, query.period))).await
    }

    async fn save_decision(&self, decision: &Decision) -> Result<(), SaveError> {
        self.save_decisions(std::slice::from_ref(decision)).await
    }

    /// All in one transaction (group commit): the locks of every record and key taken at once
    /// in one order, the final outcomes and foundings checked in one read each, new rows
    /// written a few statements at a time — a link to a stored canonical record flushes them
    /// first, so it sees what the batch wrote before it.
    #[tracing::instrument(name = "save_decisions", skip_all, fields(decisions = decisions.len()))]
    async fn save_decisions(&self, decisions: &[Decision]) -> Result<(), SaveError> {
        if decisions.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        // Sealing (the vault) happens before the transaction, which then only writes.
        let mut sealed = Vec::with_capacity(decisions.len());
        for decision in decisions {
            let record = decision.record_id();
            let link = match decision.linked() {
                Some(l) => Some(
                    self.seal_link(&l.canonical, l.previous, &[record])
                        .await
                        .map_err(SaveError::Unknown)?,
                ),
                None => None,
            };
            let conflict = match decision {
                Decision::Conflict(c) => Some(
                    self.seal(
                        CONFLICT_SEAL,
                        c.id.as_uuid(),
                        &serde_json::to_value(&**c).map_err(|e| SaveError::Unknown(e.into()))?,
                    )
                    .await
                    .map_err(SaveError::Unknown)?,
                ),
                _ => None,
            };
            sealed.push((link, conflict));
        }
        let keyed: Vec<(RecordId, Option<&KeySet>)> = decisions
            .iter()
            .map(|d| {
                let record = d.record_id();
                let keys = match d {
                    Decision::Conflict(c) => Some(&c.incoming.keys),
                    _ => d
                        .linked()
                        .and_then(|l| l.canonical.contribution(record))
                        .map(|c| &c.keys),
                };
                (record, keys)
            })
            .collect();
        let records: Vec<RecordId> = keyed.iter().map(|(r, _)| *r).collect();

        let t0 = std::time::Instant::now();
        let txn = etx_storage::begin_write(&self.db).await.map_err(save_err)?;
        let begun_ms = t0.elapsed().as_millis();
        self.lock(&txn, &keyed).await?;
        let locked_ms = t0.elapsed().as_millis();
        self.check_undecided(&txn, &records).await?;
        self.check_foundings(&txn, decisions).await?;
        let checked_ms = t0.elapsed().as_millis();
        let mut writable: HashSet<(OrgId, Category, Period)> = HashSet::new();
        let mut deferred = Deferred::default();
        let mut outbox = Vec::with_capacity(decisions.len());
        for (decision, (link, sealed_conflict)) in decisions.iter().zip(sealed) {
            let record = decision.record_id();
            let summary = decision.summary();
            match decision {
                Decision::Held(h) => {
                    deferred.outcomes.push(outcome_row(
                        summary,
                        &h.source,
                        h.key.category,
                        h.key.period,
                        h.received_at,
                        Some(scope_code(h.key.scope)),
                        self.priority,
                        now,
                    ));
                }
                Decision::Conflict(c) => {
                    let inc = &c.incoming;
                    if writable.insert((inc.source.org_id, c.category, c.period)) {
                        self.check_writable(&txn, inc.source.org_id, c.category, c.period)
                            .await?;
                    }
                    deferred.conflicts.push(conflict::ActiveModel {
                        id: Set(c.id.as_uuid()),
                        category: Set(c.category.as_str().to_owned()),
                        period: Set(c.period.to_string()),
                        org_id: Set(inc.source.org_id.as_uuid()),
                        reason: Set(c.reason.as_str().to_owned()),
                        status: Set("open".to_owned()),
                        target_id: Set(c.target.id.as_uuid()),
                        opened_at: Set(c.opened_at),
                        resolved_at: Set(None),
                        priority: Set(i16::from(self.priority.rank())),
                        body: Set(sealed_conflict.unwrap_or_default()),
                    });
                    deferred.outcomes.push(outcome_row(
                        summary,
                        &inc.source,
                        c.category,
                        c.period,
                        inc.received_at,
                        None,
                        self.priority,
                        now,
                    ));
                    outbox.push(messages::conflict_opened(c, self.priority));
                }
                Decision::Duplicate(l)
                | Decision::Revision(l)
                | Decision::Superseded(l)
                | Decision::NewCanonical(l)
                | Decision::Merge(l) => {
                    let Some((link, contribution)) = link.as_ref().zip(l.canonical.contribution(record))
                    else {
                        return Err(SaveError::Unknown(anyhow!(
                            "the link of record {record} does not contain it"
                        )));
                    };
                    let org = contribution.source.org_id;
                    if writable.insert((org, l.canonical.category, l.canonical.period)) {
                        self.check_writable(&txn, org, l.canonical.category, l.canonical.period)
                            .await?;
                    }
                    if l.previous.is_some() {
                        // It reads and changes stored rows: what the batch wrote before it
                        // must be there.
                        self.flush(&txn, &mut deferred).await?;
                    }
                    self.write_link(&txn, link, now, &mut deferred).await?;
                    deferred.outcomes.push(outcome_row(
                        summary,
                        &contribution.source,
                        l.canonical.category,
                        l.canonical.period,
                        contribution.received_at,
                        None,
                        self.priority,
                        now,
                    ));
                    outbox.push(messages::accepted(
                        record,
                        decision.kind(),
                        &l.canonical,
                        l.retired(),
                        None,
                        self.priority,
                    ));
                }
            }
        }
        let written_ms = t0.elapsed().as_millis();
        self.flush(&txn, &mut deferred).await?;
        let flushed_ms = t0.elapsed().as_millis();
        self.commit(txn, outbox).await?;
        // Where a batch's time goes, in ms since the transaction was asked for (a stall shows
        // as a jump between two of them; found the sqlx TCP_NODELAY regression).
        tracing::debug!(
            decisions = decisions.len(),
            begun_ms,
            locked_ms,
            checked_ms,
            written_ms,
            flushed_ms,
            committed_ms = t0.elapsed().as_millis(),
            "batch stored"
        );
        Ok(())
    }

    async fn canonical(&self, id: CanonicalId) -> Result<Option<CanonicalRecord>, StoreError> {
        let mut current = id.as_uuid();
        for _ in 0..MAX_HOPS {
            let next: Option<Option<Uuid>> = canonical_record::Entity::find_by_id(current)
                .select_only()
                .column(canonical_record::Column::MergedInto)
                .into_tuple()
                .one(&self.db)
                .await
                .map_err(read_err)?;
            match next {
                None => return Ok(None),
                Some(Some(target)) => current = target,
                Some(None) => {
                    // Live now; it may be retired by the time it is read, so follow again.
                    let mut found = self.load_live(&[current], None).await?;
                    if let Some(c) = found.pop() {
                        return Ok(Some(c));
                    }
                }
            }
        }
        Err(StoreError::Unknown(anyhow!(
            "canonical record {id}: merged_into does not end after {MAX_HOPS} hops"
        )))
    }

    async fn held(&self, key: &PeriodKey) -> Result<Vec<RecordId>, StoreError> {
        let ids: Vec<Uuid> = outcome::Entity::find()
            .select_only()
            .column(outcome::Column::RecordId)
            .filter(outcome::Column::Kind.eq(DecisionKind::Held.as_str()))
            .filter(outcome::Column::HeldScope.eq(scope_code(key.scope)))
            .filter(outcome::Column::Category.eq(key.category.as_str()))
            .filter(outcome::Column::Period.eq(key.period.to_string()))
            .order_by_asc(outcome::Column::RecordId)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(read_err)?;
        Ok(ids.into_iter().map(RecordId::from_uuid).collect())
    }
}

#[async_trait::async_trait]
impl ConflictStore for SqlStore {
    async fn conflict(&self, id: ConflictId) -> Result<Option<Conflict>, StoreError> {
        match conflict::Entity::find_by_id(id.as_uuid())
            .one(&self.db)
            .await
            .map_err(read_err)?
        {
            Some(row) => Ok(Some(self.open_conflict(&row).await?)),
            None => Ok(None),
        }
    }

    async fn conflicts(&self, filter: &ConflictFilter) -> Result<Vec<Conflict>, StoreError> {
        let limit = filter.limit.min(MAX_CONFLICT_PAGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut q = conflict::Entity::find();
        if filter.open_only {
            q = q.filter(conflict::Column::Status.eq("open"));
        }
        if let Some(c) = filter.category {
            q = q.filter(conflict::Column::Category.eq(c.as_str()));
        }
        if let Some(p) = filter.period {
            q = q.filter(conflict::Column::Period.eq(p.to_string()));
        }
        if let Some(o) = filter.org {
            q = q.filter(conflict::Column::OrgId.eq(o.as_uuid()));
        }
        if let Some(a) = filter.after {
            q = q.filter(conflict::Column::Id.gt(a.as_uuid()));
        }
        let rows = q
            .order_by_asc(conflict::Column::Id)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .all(&self.db)
            .await
            .map_err(read_err)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.open_conflict(row).await?);
        }
        Ok(out)
    }

    #[tracing::instrument(name = "save_resolution", skip_all, fields(conflict = %resolved.conflict.id))]
    async fn save_resolution(&self, resolved: &Resolved) -> Result<(), SaveError> {
        let c = &resolved.conflict;
        let inc = &c.incoming;
        let record = inc.record_id;
        let now = Utc::now();
        let ConflictStatus::Resolved(resolution) = &c.status else {
            return Err(SaveError::Unknown(anyhow!("conflict {} is not resolved", c.id)));
        };
        // A rejection founds the incoming record's own canonical record: its payload is new.
        let link = self
            .seal_link(&resolved.canonical, resolved.previous, &[record])
            .await
            .map_err(SaveError::Unknown)?;
        let body = self
            .seal(
                CONFLICT_SEAL,
                c.id.as_uuid(),
                &serde_json::to_value(c).map_err(|e| SaveError::Unknown(e.into()))?,
            )
            .await
            .map_err(SaveError::Unknown)?;

        let txn = etx_storage::begin_write(&self.db).await.map_err(save_err)?;
        self.lock(&txn, &[(record, Some(&inc.keys))]).await?;
        let priority: Option<i16> = conflict::Entity::find_by_id(c.id.as_uuid())
            .select_only()
            .column(conflict::Column::Priority)
            .filter(conflict::Column::Status.eq("open"))
            .into_tuple()
            .one(&txn)
            .await
            .map_err(save_err)?;
        let Some(priority) = priority else {
            return Err(SaveError::AlreadyDecided);
        };
        let priority = u8::try_from(priority)
            .ok()
            .and_then(Priority::from_rank)
            .unwrap_or(Priority::Normal);
        let updated = conflict::Entity::update_many()
            .col_expr(conflict::Column::Status, Expr::value("resolved"))
            .col_expr(conflict::Column::ResolvedAt, Expr::value(resolution.at))
            .col_expr(conflict::Column::Body, Expr::value(body))
            .filter(conflict::Column::Id.eq(c.id.as_uuid()))
            .filter(conflict::Column::Status.eq("open"))
            .exec(&txn)
            .await
            .map_err(save_err)?;
        if updated.rows_affected != 1 {
            return Err(SaveError::AlreadyDecided);
        }
        self.check_writable(&txn, inc.source.org_id, c.category, c.period)
            .await?;
        let mut deferred = Deferred::default();
        self.write_link(&txn, &link, now, &mut deferred).await?;
        self.flush(&txn, &mut deferred).await?;
        if let Some(r) = &resolved.rejection {
            rejection::Entity::insert(rejection::ActiveModel {
                conflict_id: Set(r.conflict.as_uuid()),
                record_id: Set(r.record_id.as_uuid()),
                source_key: Set(r.source_key.to_string()),
                canonical_id: Set(r.canonical.as_uuid()),
                by_user: Set(r.by.as_uuid()),
                at: Set(r.at),
            })
            .exec_without_returning(&txn)
            .await
            .map_err(|e| conflict_or(e, SaveError::AlreadyDecided))?;
        }
        let summary = DecisionSummary {
            record_id: record,
            kind: DecisionKind::Resolved,
            canonical: Some(resolved.canonical.id),
            conflict: Some(c.id),
        };
        self.put_outcome(
            &txn,
            summary,
            &inc.source,
            c.category,
            c.period,
            inc.received_at,
            None,
            priority,
            now,
        )
        .await?;
        let retired = resolved
            .previous
            .map(|p| p.id)
            .filter(|id| *id != resolved.canonical.id);
        let outbox = vec![
            messages::accepted(
                record,
                DecisionKind::Resolved,
                &resolved.canonical,
                retired,
                Some(c.id.as_uuid()),
                priority,
            ),
            messages::conflict_resolved(c, resolution.choice.as_str(), resolved.canonical.id, priority),
        ];
        self.commit(txn, outbox).await
    }
}

#[async_trait::async_trait]
impl DecisionMemory for SqlStore {
    async fn rejections(
        &self,
        record: RecordId,
        source_key: SourceKey,
    ) -> Result<Vec<RejectedPair>, StoreError> {
        let rows = rejection::Entity::find()
            .filter(
                sea_orm::Condition::any()
                    .add(rejection::Column::RecordId.eq(record.as_uuid()))
                    .add(rejection::Column::SourceKey.eq(source_key.to_string())),
            )
            .order_by_asc(rejection::Column::At)
            .order_by_asc(rejection::Column::ConflictId)
            .all(&self.db)
            .await
            .map_err(read_err)?;
        rows.into_iter().map(rejected_pair).collect()
    }

    async fn rejections_of(
        &self,
        pairs: &[(RecordId, SourceKey)],
    ) -> Result<Vec<Vec<RejectedPair>>, StoreError> {
        let mut found: Vec<RejectedPair> = Vec::new();
        for chunk in pairs.chunks(self.chunk() / 2) {
            let rows = rejection::Entity::find()
                .filter(
                    sea_orm::Condition::any()
                        .add(rejection::Column::RecordId.is_in(chunk.iter().map(|(r, _)| r.as_uuid())))
                        .add(rejection::Column::SourceKey.is_in(chunk.iter().map(|(_, k)| k.to_string()))),
                )
                .order_by_asc(rejection::Column::At)
                .order_by_asc(rejection::Column::ConflictId)
                .all(&self.db)
                .await
                .map_err(read_err)?;
            for r in rows {
                let pair = rejected_pair(r)?;
                if !found.contains(&pair) {
                    found.push(pair);
                }
            }
        }
        found.sort_by_key(|r| (r.at, r.conflict));
        Ok(pairs
            .iter()
            .map(|(record, key)| {
                found
                    .iter()
                    .filter(|r| r.record_id == *record || r.source_key == *key)
                    .cloned()
                    .collect()
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl PeriodApprovals for SqlStore {
    async fn covering(
        &self,
        org: OrgId,
        category: Category,
        period: Period,
    ) -> Result<Vec<PeriodApproval>, StoreError> {
        let rows = period_approval::Entity::find()
            .filter(period_approval::Column::Category.eq(category.as_str()))
            .filter(period_approval::Column::Period.eq(period.to_string()))
            .filter(period_approval::Column::Scope.is_in([scope_code(ApprovalScope::All), org.to_string()]))
            .all(&self.db)
            .await
            .map_err(read_err)?;
        let mut out: Vec<PeriodApproval> = rows
            .iter()
            .map(|r| from_json(&r.body, "period approval"))
            .collect::<Result<_, _>>()
            .map_err(StoreError::Unknown)?;
        out.sort_by_key(|a| a.key);
        Ok(out)
    }

    async fn approval(&self, key: &PeriodKey) -> Result<Option<PeriodApproval>, StoreError> {
        let row = period_approval::Entity::find_by_id((
            scope_code(key.scope),
            key.category.as_str().to_owned(),
            key.period.to_string(),
        ))
        .one(&self.db)
        .await
        .map_err(read_err)?;
        row.map(|r| from_json(&r.body, "period approval"))
            .transpose()
            .map_err(StoreError::Unknown)
    }

    async fn save_approval(&self, approval: &PeriodApproval) -> Result<(), SaveError> {
        let key = approval.key;
        let body = json_text(approval).map_err(SaveError::Unknown)?;
        let version = i64_of(approval.version).map_err(SaveError::Unknown)?;
        let now = Utc::now();
        if approval.version <= 1 {
            let row = period_approval::ActiveModel {
                scope: Set(scope_code(key.scope)),
                category: Set(key.category.as_str().to_owned()),
                period: Set(key.period.to_string()),
                version: Set(version),
                read_only: Set(approval.is_read_only()),
                body: Set(body),
                updated_at: Set(now),
            };
            period_approval::Entity::insert(row)
                .exec_without_returning(&self.db)
                .await
                .map_err(|e| conflict_or(e, SaveError::Stale))?;
            return Ok(());
        }
        let updated = period_approval::Entity::update_many()
            .col_expr(period_approval::Column::Version, Expr::value(version))
            .col_expr(
                period_approval::Column::ReadOnly,
                Expr::value(approval.is_read_only()),
            )
            .col_expr(period_approval::Column::Body, Expr::value(body))
            .col_expr(period_approval::Column::UpdatedAt, Expr::value(now))
            .filter(period_approval::Column::Scope.eq(scope_code(key.scope)))
            .filter(period_approval::Column::Category.eq(key.category.as_str()))
            .filter(period_approval::Column::Period.eq(key.period.to_string()))
            .filter(period_approval::Column::Version.eq(version - 1))
            .exec(&self.db)
            .await
            .map_err(save_err)?;
        if updated.rows_affected != 1 {
            return Err(SaveError::Stale);
        }
        Ok(())
    }
}
