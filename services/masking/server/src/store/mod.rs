//! Masking's store (sea-orm, SQLite or PostgreSQL): masked copies and held records in
//! `masked_records`, written with their outbox entries in one transaction per batch (DESIGN §1:
//! nothing acknowledged is lost), idempotent by record id (at-least-once delivery).

pub mod entities;
pub mod migrations;

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use entities::masked_record;
use etx_domain::{
    Category, Classification, Form, OrgId, Period, Priority, ReceiptId, RecordId, SchemaVersion, SystemId,
};
use etx_storage::insert_outbox;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TryInsertResult,
};
use serde_json::Value;

use crate::mask::Masking;
use crate::messages::{NewMaskedRecord, outbox_entries};
use crate::model::{HeldFinding, MaskStatus, MaskedRecord, ReadError};
use etx_masking_core::{PayloadVault, SourceError};
use std::sync::Arc;

/// The most rows [`MaskedStore::held`] returns at once.
pub const MAX_HELD_PAGE: u64 = 1000;

/// Reads and writes `masked_records` (R-ING-2, R-SEC-10, R-DATA-3).
#[derive(Clone)]
pub struct MaskedStore {
    db: DatabaseConnection,
    vault: Arc<dyn PayloadVault>,
}

impl std::fmt::Debug for MaskedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskedStore").finish_non_exhaustive()
    }
}

/// Why [`MaskedStore::store`] failed (nothing was written).
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// A payload could not be sealed.
    #[error("cannot seal a masked payload: {0}")]
    Seal(#[from] SourceError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What one [`MaskedStore::store`] call wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stored {
    /// New masked rows (announced on `records.masked`).
    pub masked: usize,
    /// New held rows (announced on `events.masking`).
    pub held: usize,
    /// Rows another consumer had written first (nothing announced for them).
    pub already: usize,
}

impl MaskedStore {
    /// A store over `db` (migrated: see [`crate::migrate`]) that seals masked payloads with
    /// `vault`.
    pub fn new(db: DatabaseConnection, vault: Arc<dyn PayloadVault>) -> Self {
        Self { db, vault }
    }

    /// The ids among `ids` that are stored already (masked or held).
    pub(crate) async fn stored_ids(&self, ids: &[RecordId]) -> Result<HashSet<RecordId>, DbErr> {
        let mut out = HashSet::new();
        for chunk in ids.chunks(params_per_query(&self.db)) {
            let found: Vec<uuid::Uuid> = masked_record::Entity::find()
                .select_only()
                .column(masked_record::Column::RecordId)
                .filter(masked_record::Column::RecordId.is_in(chunk.iter().map(RecordId::as_uuid)))
                .into_tuple()
                .all(&self.db)
                .await?;
            out.extend(found.into_iter().map(RecordId::from_uuid));
        }
        Ok(out)
    }

    /// Stores `records` and the outbox entries announcing them, in one transaction. A record
    /// already stored (another consumer got there first) is left as it is and not announced
    /// again, so `records.masked` carries each record once.
    pub(crate) async fn store(
        &self,
        records: &[NewMaskedRecord],
        masked_at: DateTime<Utc>,
    ) -> Result<Stored, StoreError> {
        if records.is_empty() {
            return Ok(Stored::default());
        }
        // Sealed before the transaction: no lock is held while encrypting.
        let mut sealed = Vec::with_capacity(records.len());
        for r in records {
            sealed.push(match &r.masking {
                Masking::Masked { payload, .. } => Some(
                    self.vault
                        .seal(r.org_id, r.record_id, payload.to_string().as_bytes())
                        .await?,
                ),
                Masking::Held { .. } => None,
            });
        }
        let txn = etx_storage::begin_write(&self.db).await?;
        let mut inserted: HashSet<uuid::Uuid> = HashSet::new();
        let per_insert = rows_per_insert(&txn);
        for (chunk, sealed) in records.chunks(per_insert).zip(sealed.chunks(per_insert)) {
            let models = chunk
                .iter()
                .zip(sealed)
                .map(|(r, s)| row(r, s.clone(), masked_at));
            let res = masked_record::Entity::insert_many(models)
                .on_conflict_do_nothing_on([masked_record::Column::RecordId])
                .exec_with_returning_keys(&txn)
                .await?;
            if let TryInsertResult::Inserted(ids) = res {
                inserted.extend(ids);
            }
        }
        let fresh: Vec<&NewMaskedRecord> = records
            .iter()
            .filter(|r| inserted.contains(&r.record_id.as_uuid()))
            .collect();
        insert_outbox(&txn, outbox_entries(&fresh)).await?;
        txn.commit().await?;
        let held = fresh.iter().filter(|r| r.findings().is_some()).count();
        Ok(Stored {
            masked: fresh.len() - held,
            held,
            already: records.len() - fresh.len(),
        })
    }

    /// The stored copy of `record_id`, masked or held; `None` when it has not been masked (yet).
    ///
    /// # Errors
    /// [`ReadError::Database`] when the database fails, [`ReadError::Corrupt`] when the row
    /// does not parse back.
    pub async fn masked(&self, record_id: RecordId) -> Result<Option<MaskedRecord>, ReadError> {
        match masked_record::Entity::find_by_id(record_id.as_uuid())
            .one(&self.db)
            .await?
        {
            Some(m) => Ok(Some(self.view(m).await?)),
            None => Ok(None),
        }
    }

    /// A row as the view type, its payload opened.
    /// The stored states of those of `record_ids` that have one, in one read per chunk
    /// (reconciliation reads a whole batch this way).
    ///
    /// # Errors
    /// As [`MaskedStore::masked`].
    pub async fn masked_many(&self, record_ids: &[RecordId]) -> Result<Vec<MaskedRecord>, ReadError> {
        let mut out = Vec::with_capacity(record_ids.len());
        for chunk in record_ids.chunks(500) {
            let rows = masked_record::Entity::find()
                .filter(masked_record::Column::RecordId.is_in(chunk.iter().map(RecordId::as_uuid)))
                .all(&self.db)
                .await?;
            for m in rows {
                out.push(self.view(m).await?);
            }
        }
        Ok(out)
    }

    async fn view(&self, m: masked_record::Model) -> Result<MaskedRecord, ReadError> {
        let plain = match &m.payload {
            Some(sealed) => Some(
                self.vault
                    .open(
                        OrgId::from_uuid(m.org_id),
                        RecordId::from_uuid(m.record_id),
                        sealed,
                    )
                    .await
                    .map_err(|e| ReadError::Corrupt {
                        record_id: RecordId::from_uuid(m.record_id),
                        what: format!("the masked payload does not open: {e}"),
                    })?,
            ),
            None => None,
        };
        view(m, plain.as_deref())
    }

    /// Held records, oldest first (ids are time-ordered), of the organisations `org_ids` (all
    /// organisations when `None`; none when empty), at most `limit` (capped at
    /// [`MAX_HELD_PAGE`]).
    ///
    /// # Errors
    /// As [`MaskedStore::masked`].
    pub async fn held(&self, org_ids: Option<&[OrgId]>, limit: u64) -> Result<Vec<MaskedRecord>, ReadError> {
        let mut q =
            masked_record::Entity::find().filter(masked_record::Column::Status.eq(MaskStatus::Held.as_str()));
        if let Some(orgs) = org_ids {
            if orgs.is_empty() {
                return Ok(Vec::new());
            }
            q = q.filter(masked_record::Column::OrgId.is_in(orgs.iter().map(OrgId::as_uuid)));
        }
        let rows = q
            .order_by_asc(masked_record::Column::RecordId)
            .limit(limit.min(MAX_HELD_PAGE))
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for m in rows {
            out.push(self.view(m).await?);
        }
        Ok(out)
    }
}

/// Ids per `IN (…)` list: sqlx binds SQLite parameters by a linear name search.
fn params_per_query(c: &impl ConnectionTrait) -> usize {
    if c.get_database_backend() == sea_orm::DbBackend::Sqlite {
        200
    } else {
        1000
    }
}

/// Rows per multi-row `INSERT` (17 columns each), short on SQLite for the same reason.
fn rows_per_insert(c: &impl ConnectionTrait) -> usize {
    if c.get_database_backend() == sea_orm::DbBackend::Sqlite {
        32
    } else {
        500
    }
}

fn row(r: &NewMaskedRecord, sealed: Option<Vec<u8>>, masked_at: DateTime<Utc>) -> masked_record::ActiveModel {
    let (status, payload, match_tokens, findings) = match &r.masking {
        Masking::Masked { match_tokens, .. } => (
            MaskStatus::Masked,
            sealed,
            serde_json::to_string(match_tokens).unwrap_or_else(|_| "{}".into()),
            "[]".to_owned(),
        ),
        Masking::Held { findings } => (
            MaskStatus::Held,
            None,
            "{}".to_owned(),
            serde_json::to_string(findings).unwrap_or_else(|_| "[]".into()),
        ),
    };
    masked_record::ActiveModel {
        record_id: Set(r.record_id.as_uuid()),
        org_id: Set(r.org_id.as_uuid()),
        system_id: Set(r.system_id.as_uuid()),
        receipt_id: Set(r.receipt_id.as_uuid()),
        category: Set(r.category.as_str().into()),
        schema_version: Set(i32::from(r.schema_version.number())),
        period: Set(r.period.to_string()),
        classification: Set(r.classification.as_str().into()),
        priority: Set(i16::from(r.priority.rank())),
        form: Set(r.form.as_str().into()),
        status: Set(status.as_str().into()),
        policy_version: Set(i64::from(r.policy_version)),
        payload: Set(payload),
        match_tokens: Set(match_tokens),
        findings: Set(findings),
        received_at: Set(r.received_at),
        masked_at: Set(masked_at),
    }
}

fn view(m: masked_record::Model, plain: Option<&[u8]>) -> Result<MaskedRecord, ReadError> {
    let record_id = RecordId::from_uuid(m.record_id);
    let corrupt = |what: &str| ReadError::Corrupt {
        record_id,
        what: what.to_owned(),
    };
    let payload = plain
        .map(serde_json::from_slice::<Value>)
        .transpose()
        .map_err(|e| corrupt(&format!("payload is not JSON: {e}")))?;
    let match_tokens: BTreeMap<String, String> = serde_json::from_str(&m.match_tokens)
        .map_err(|e| corrupt(&format!("match_tokens is not a JSON object of strings: {e}")))?;
    let findings: Vec<HeldFinding> = serde_json::from_str(&m.findings)
        .map_err(|e| corrupt(&format!("findings is not a list of {{pointer, kind}}: {e}")))?;
    Ok(MaskedRecord {
        record_id,
        org_id: OrgId::from_uuid(m.org_id),
        system_id: SystemId::from_uuid(m.system_id),
        receipt_id: ReceiptId::from_uuid(m.receipt_id),
        category: Category::parse(&m.category).map_err(|_| corrupt("unknown category"))?,
        schema_version: u16::try_from(m.schema_version)
            .ok()
            .and_then(|n| SchemaVersion::parse(&n.to_string()).ok())
            .ok_or_else(|| corrupt("invalid schema_version"))?,
        period: Period::parse(&m.period).map_err(|_| corrupt("invalid period"))?,
        classification: Classification::parse(&m.classification)
            .map_err(|_| corrupt("unknown classification"))?,
        priority: u8::try_from(m.priority)
            .ok()
            .and_then(Priority::from_rank)
            .ok_or_else(|| corrupt("invalid priority rank"))?,
        form: Form::parse(&m.form).map_err(|_| corrupt("unknown form"))?,
        status: MaskStatus::parse(&m.status).ok_or_else(|| corrupt("unknown status"))?,
        policy_version: u32::try_from(m.policy_version).map_err(|_| corrupt("invalid policy_version"))?,
        payload,
        match_tokens,
        findings,
        received_at: m.received_at,
        masked_at: m.masked_at,
    })
}
