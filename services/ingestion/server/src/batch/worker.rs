//! The batch worker: claims unfinished batches under a lease and runs their passes (see the
//! module docs of [`super`]). Everything it commits carries the checkpoint with it, so a crash
//! at any instant resumes without losing or duplicating a row (R-ING-1, R-ING-5).
//!
//! The CPU work (decrypting chunks, parsing, validating, hashing, sealing) runs on one blocking
//! thread per batch; the async side commits what it produces, so the two overlap.

use super::{Batches, RowError, chunk_aad, lease_deadline};
use crate::store::entities::{batch, batch_chunk, batch_error, batch_group, record};
use crate::store::{RowMeta, announcements, find_by_keys, record_row, rows_per_insert};
use chrono::Utc;
use etx_crypto::Aad;
use etx_domain::{FieldViolation, Method, OrgId, ReceiptId, SystemId, ViolationCode};
use etx_ingestion_core::NewRecord;
use etx_ingestion_core::batch::{BatchDefaults, BatchFormat, BatchState, RejectReason, parse::read_rows};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Most violations kept per refused row.
const MAX_VIOLATIONS_PER_ROW: usize = 20;
/// How often chunks of uploads that never became a batch are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(15 * 60);
/// Group transactions in flight at once on PostgreSQL.
const COMMITS_IN_FLIGHT: usize = 3;
/// Attempts before a batch is marked failed.
const MAX_ATTEMPTS: i32 = 5;

pub(crate) struct Worker {
    batches: Batches,
    owner: String,
}

/// What the reading thread sends back.
enum Msg {
    /// Rows read so far (reading pass progress), with refused rows' violations (dry run).
    Progress {
        rows: u64,
        invalid: u64,
        errors: Vec<RowError>,
    },
    /// A group of rows for the storing pass.
    Rows(Group),
    /// End of file.
    End { rows: u64, invalid: u64 },
    /// The file cannot be read.
    Unreadable(String),
}

/// Rows of the storing pass, ready to commit.
struct Group {
    /// Group number: rows `no * group_rows + 1 ..= (no + 1) * group_rows`.
    no: u64,
    /// Last row covered (valid or not).
    last_row: u64,
    /// Valid rows: (row, line, record, sealed payload, data key id).
    records: Vec<(u64, u64, NewRecord, Vec<u8>, Uuid)>,
    /// Violations of refused rows.
    errors: Vec<RowError>,
    /// Refused rows.
    invalid: u64,
}

#[derive(Clone, PartialEq, Eq)]
enum Pass {
    /// Count rows and prove the file readable.
    Count,
    /// Count and validate every row (dry run).
    Validate,
    /// Validate and seal rows, in groups of `group_rows` rows, skipping groups already `done`.
    Store {
        group_rows: u64,
        done: std::sync::Arc<HashSet<u64>>,
    },
}

#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error("database: {0}")]
    Db(#[from] DbErr),
    #[error("lost the lease")]
    LostLease,
    #[error("the process is stopping")]
    Stopping,
    #[error("{0}")]
    Other(String),
}

impl Worker {
    pub(crate) fn new(batches: Batches) -> Self {
        Self {
            batches,
            owner: format!("{}-{}", std::process::id(), Uuid::now_v7()),
        }
    }

    pub(crate) async fn run(self) {
        let mut next_sweep = tokio::time::Instant::now();
        loop {
            if self.batches.stopping() {
                return;
            }
            if tokio::time::Instant::now() >= next_sweep {
                if let Err(e) = self.sweep_orphans().await {
                    tracing::warn!(error = %e, "cannot sweep the chunks of unfinished uploads");
                }
                next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
            }
            match self.claim().await {
                Ok(Some(b)) => {
                    let id = b.id;
                    match self.process(b).await {
                        Ok(()) => {}
                        Err(RunError::Stopping) => {
                            self.release_on_stop(id).await;
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(batch = %id, error = %e, "batch processing interrupted; it will resume");
                            self.release_after_error(id).await;
                        }
                    }
                }
                Ok(None) => {
                    let wake = self.batches.inner.wake.notified();
                    let _ = tokio::time::timeout(Duration::from_secs(2), wake).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot claim batches");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        }
    }

    fn db(&self) -> &sea_orm::DatabaseConnection {
        &self.batches.inner.db
    }

    /// Takes the oldest unfinished batch whose lease is free or expired.
    async fn claim(&self) -> Result<Option<batch::Model>, DbErr> {
        let now = Utc::now();
        let open = [
            BatchState::Received.as_str(),
            BatchState::Validating.as_str(),
            BatchState::Storing.as_str(),
        ];
        let candidates = batch::Entity::find()
            .filter(batch::Column::State.is_in(open))
            .filter(
                sea_orm::Condition::any()
                    .add(batch::Column::LeaseUntil.is_null())
                    .add(batch::Column::LeaseUntil.lt(now)),
            )
            .order_by_asc(batch::Column::ReceivedAt)
            .limit(8)
            .all(self.db())
            .await?;
        for b in candidates {
            let until = lease_deadline(now, self.batches.inner.settings.lease);
            let res = batch::Entity::update_many()
                .col_expr(batch::Column::LeaseOwner, Expr::value(self.owner.clone()))
                .col_expr(batch::Column::LeaseUntil, Expr::value(until))
                .filter(batch::Column::Id.eq(b.id))
                .filter(batch::Column::State.eq(b.state.clone()))
                .filter(
                    sea_orm::Condition::any()
                        .add(batch::Column::LeaseUntil.is_null())
                        .add(batch::Column::LeaseUntil.lt(now)),
                )
                .exec(self.db())
                .await?;
            if res.rows_affected == 1 {
                return batch::Entity::find_by_id(b.id).one(self.db()).await;
            }
        }
        Ok(None)
    }

    async fn process(&self, b: batch::Model) -> Result<(), RunError> {
        let renew = self.spawn_renewal(b.id);
        let out = self.process_inner(b).await;
        renew.abort();
        out
    }

    async fn process_inner(&self, mut b: batch::Model) -> Result<(), RunError> {
        let state = BatchState::parse(&b.state).ok_or_else(|| RunError::Other("bad state".into()))?;
        if matches!(state, BatchState::Received | BatchState::Validating) {
            self.set(
                b.id,
                vec![
                    (batch::Column::State, Expr::value(BatchState::Validating.as_str())),
                    (
                        batch::Column::StartedAt,
                        Expr::value(b.started_at.unwrap_or_else(Utc::now)),
                    ),
                    (batch::Column::Attempts, Expr::value(b.attempts + 1)),
                    (batch::Column::Total, Expr::value(0i64)),
                    (batch::Column::Rejected, Expr::value(0i64)),
                ],
            )
            .await?;
            batch_error::Entity::delete_many()
                .filter(batch_error::Column::BatchId.eq(b.id))
                .exec(self.db())
                .await?;
            let pass = if b.dry_run { Pass::Validate } else { Pass::Count };
            let (rows, invalid) = match self.read_pass(&b, pass).await? {
                Ok(counts) => counts,
                Err(detail) => {
                    return self.reject(b.id, RejectReason::Unreadable { detail }).await;
                }
            };
            if let Some(declared) = b.declared_rows
                && u64::try_from(declared).ok() != Some(rows)
            {
                return self
                    .reject(
                        b.id,
                        RejectReason::RowCountMismatch {
                            declared: u64::try_from(declared).unwrap_or(0),
                            actual: rows,
                        },
                    )
                    .await;
            }
            let total = i64::try_from(rows).unwrap_or(i64::MAX);
            if b.dry_run {
                let invalid = i64::try_from(invalid).unwrap_or(i64::MAX);
                return self
                    .finish(
                        b.id,
                        BatchState::Completed,
                        vec![
                            (batch::Column::Total, Expr::value(total)),
                            (batch::Column::Accepted, Expr::value(total - invalid)),
                            (batch::Column::Rejected, Expr::value(invalid)),
                        ],
                    )
                    .await;
            }
            let group_rows =
                i64::try_from(self.batches.inner.settings.rows_per_commit.max(1)).unwrap_or(1000);
            batch_group::Entity::delete_many()
                .filter(batch_group::Column::BatchId.eq(b.id))
                .exec(self.db())
                .await?;
            self.set(
                b.id,
                vec![
                    (batch::Column::State, Expr::value(BatchState::Storing.as_str())),
                    (batch::Column::Total, Expr::value(total)),
                    (batch::Column::GroupRows, Expr::value(group_rows)),
                    (batch::Column::Accepted, Expr::value(0i64)),
                    (batch::Column::Duplicate, Expr::value(0i64)),
                    (batch::Column::Rejected, Expr::value(0i64)),
                ],
            )
            .await?;
            b.group_rows = group_rows;
        } else {
            self.set(b.id, vec![(batch::Column::Attempts, Expr::value(b.attempts + 1))])
                .await?;
        }
        // Groups committed before a crash are skipped; the others are (re)done.
        let done: HashSet<u64> = batch_group::Entity::find()
            .select_only()
            .column(batch_group::Column::GroupNo)
            .filter(batch_group::Column::BatchId.eq(b.id))
            .into_tuple::<i64>()
            .all(self.db())
            .await?
            .into_iter()
            .filter_map(|g| u64::try_from(g).ok())
            .collect();
        let pass = Pass::Store {
            group_rows: Ord::max(u64::try_from(b.group_rows).unwrap_or(1000), 1),
            done: std::sync::Arc::new(done),
        };
        match self.read_pass(&b, pass).await? {
            Ok(_) => {
                let (accepted, duplicate, rejected) = group_sums(self.db(), b.id).await?;
                self.finish(
                    b.id,
                    BatchState::Completed,
                    vec![
                        (batch::Column::Accepted, Expr::value(accepted)),
                        (batch::Column::Duplicate, Expr::value(duplicate)),
                        (batch::Column::Rejected, Expr::value(rejected)),
                    ],
                )
                .await
            }
            // The reading pass read this file to its end; failing now means it changed or
            // could not be decrypted: stop, keeping what was stored.
            Err(detail) => Err(RunError::Other(detail)),
        }
    }

    /// Runs one pass over the file. `Ok(Err(reason))` when the file is unreadable.
    async fn read_pass(&self, b: &batch::Model, pass: Pass) -> Result<Result<(u64, u64), String>, RunError> {
        let format = BatchFormat::parse(&b.format).ok_or_else(|| RunError::Other("bad format".into()))?;
        let defaults: BatchDefaults =
            serde_json::from_str(&b.defaults).map_err(|e| RunError::Other(format!("bad defaults: {e}")))?;
        let (chunk_tx, chunk_rx) = mpsc::channel::<Result<Vec<u8>, String>>(2);
        let (msg_tx, mut msg_rx) = mpsc::channel::<Msg>(4);

        // Feeder: chunks in order, decrypted.
        let keys = self.batches.inner.keys.clone();
        let db = self.db().clone();
        let (org, id, chunks) = (b.org_id, b.id, b.chunks);
        let feeder = tokio::spawn(async move {
            for seq in 0..chunks {
                let data = batch_chunk::Entity::find_by_id((id, seq)).one(&db).await;
                let plain = match data {
                    Ok(Some(c)) => keys
                        .decrypt(&chunk_aad(org, id, seq), &c.data)
                        .await
                        .map_err(|e| format!("chunk {seq}: {e}")),
                    Ok(None) => Err(format!("chunk {seq} is missing")),
                    Err(e) => Err(format!("chunk {seq}: {e}")),
                };
                let failed = plain.is_err();
                if chunk_tx.send(plain).await.is_err() || failed {
                    return;
                }
            }
        });

        // Reader: parse, validate, seal.
        let service = self.batches.inner.service.clone();
        let ring = self.batches.inner.keys.ring().clone();
        let reader = tokio::task::spawn_blocking(move || {
            let input = std::io::BufReader::with_capacity(256 * 1024, ChunkReader::new(chunk_rx));
            let schemas = service.schemas();
            let mut rows = 0u64;
            let mut invalid = 0u64;
            let mut errors = Vec::new();
            let mut group = Group::new(0);
            for item in read_rows(format, input, schemas, &defaults) {
                let row = match item {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = msg_tx.blocking_send(Msg::Unreadable(e.to_string()));
                        return;
                    }
                };
                rows = row.row;
                match &pass {
                    Pass::Count => {
                        if rows.is_multiple_of(10_000) {
                            let msg = Msg::Progress {
                                rows,
                                invalid: 0,
                                errors: Vec::new(),
                            };
                            if msg_tx.blocking_send(msg).is_err() {
                                return;
                            }
                        }
                    }
                    Pass::Validate => {
                        if let Err(v) = row.item.and_then(|item| service.prepare_row(&item).map(|_| ())) {
                            invalid += 1;
                            errors.extend(row_errors(row.row, row.line, v));
                        }
                        if rows.is_multiple_of(1_000) {
                            let msg = Msg::Progress {
                                rows,
                                invalid,
                                errors: std::mem::take(&mut errors),
                            };
                            if msg_tx.blocking_send(msg).is_err() {
                                return;
                            }
                        }
                    }
                    Pass::Store { group_rows, done } => {
                        let no = (row.row - 1) / group_rows;
                        if no != group.no {
                            let full = std::mem::replace(&mut group, Group::new(no));
                            if full.last_row > 0 && msg_tx.blocking_send(Msg::Rows(full)).is_err() {
                                return;
                            }
                        }
                        if done.contains(&no) {
                            continue;
                        }
                        group.last_row = row.row;
                        match row.item.and_then(|item| service.prepare_row(&item)) {
                            Ok(rec) => {
                                let aad = Aad {
                                    org_id: org,
                                    record_id: rec.id.as_uuid(),
                                };
                                let key_id = ring.active_data_key_id().unwrap_or_default();
                                let sealed = serde_json::to_vec(&rec.payload)
                                    .map_err(|e| e.to_string())
                                    .and_then(|plain| ring.encrypt(&aad, &plain).map_err(|e| e.to_string()));
                                match sealed {
                                    Ok(s) => group.records.push((row.row, row.line, rec, s, key_id)),
                                    Err(e) => {
                                        let _ = msg_tx
                                            .blocking_send(Msg::Unreadable(format!("sealing failed: {e}")));
                                        return;
                                    }
                                }
                            }
                            Err(v) => {
                                group.invalid += 1;
                                group.errors.extend(row_errors(row.row, row.line, v));
                            }
                        }
                    }
                }
            }
            if !errors.is_empty() {
                let msg = Msg::Progress {
                    rows,
                    invalid,
                    errors,
                };
                if msg_tx.blocking_send(msg).is_err() {
                    return;
                }
            }
            if group.last_row > 0 && msg_tx.blocking_send(Msg::Rows(group)).is_err() {
                return;
            }
            let _ = msg_tx.blocking_send(Msg::End { rows, invalid });
        });

        let meta = RowMeta {
            org_id: OrgId::from_uuid(b.org_id),
            system_id: SystemId::from_uuid(b.system_id),
            receipt_id: ReceiptId::from_uuid(b.receipt_id.unwrap_or_default()),
            method: Method::Batch,
            received_at: b.received_at,
        };
        // Groups commit concurrently on PostgreSQL (one transaction's round trips and fsync
        // overlap the next one's inserts); one at a time on SQLite, which has one writer.
        let sqlite = self.db().get_database_backend() == sea_orm::DbBackend::Sqlite;
        let in_flight_max = if sqlite { 1 } else { COMMITS_IN_FLIGHT };
        let mut in_flight = futures_util::stream::FuturesUnordered::new();
        let mut outcome = Err("the file ended unexpectedly".to_string());
        let mut open = true;
        let mut stopped = false;
        while open || !in_flight.is_empty() {
            if open && self.batches.stopping() {
                // Finish the groups in flight, read no more. (Back to the loop condition: with
                // nothing in flight every branch below would be disabled, which panics.)
                open = false;
                stopped = true;
                continue;
            }
            tokio::select! {
                () = self.batches.inner.wake.notified(), if open => {}
                msg = msg_rx.recv(), if open && in_flight.len() < in_flight_max => match msg {
                    None => open = false,
                    Some(Msg::Progress { rows, invalid, errors }) => {
                        self.progress(b.id, rows, invalid, errors).await?;
                    }
                    Some(Msg::Rows(group)) => in_flight.push(self.commit_group(b, &meta, group)),
                    Some(Msg::End { rows, invalid }) => outcome = Ok((rows, invalid)),
                    Some(Msg::Unreadable(reason)) => outcome = Err(reason),
                },
                Some(done) = futures_util::StreamExt::next(&mut in_flight), if !in_flight.is_empty() => done?,
            }
        }
        feeder.abort();
        if stopped {
            drop(msg_rx);
            let _ = reader.await;
            return Err(RunError::Stopping);
        }
        let _ = reader.await;
        Ok(outcome)
    }

    /// Records reading-pass progress (and a dry run's refused rows).
    async fn progress(
        &self,
        id: Uuid,
        rows: u64,
        invalid: u64,
        errors: Vec<RowError>,
    ) -> Result<(), RunError> {
        let txn = etx_storage::begin_write(self.db()).await?;
        insert_errors(&txn, id, &errors).await?;
        let res = batch::Entity::update_many()
            .col_expr(
                batch::Column::Total,
                Expr::value(i64::try_from(rows).unwrap_or(i64::MAX)),
            )
            .col_expr(
                batch::Column::Rejected,
                Expr::value(i64::try_from(invalid).unwrap_or(i64::MAX)),
            )
            .filter(batch::Column::Id.eq(id))
            .filter(batch::Column::LeaseOwner.eq(self.owner.clone()))
            .exec(&txn)
            .await?;
        if res.rows_affected != 1 {
            return Err(RunError::LostLease);
        }
        txn.commit().await?;
        Ok(())
    }

    /// Commits one group of rows with the checkpoint, retrying when a concurrent writer stored
    /// one of the same idempotency keys meanwhile.
    async fn commit_group(&self, b: &batch::Model, meta: &RowMeta, group: Group) -> Result<(), RunError> {
        let mut attempt = 0;
        loop {
            match self.try_commit_group(b, meta, &group).await {
                // A unique violation (a concurrent writer stored the same key) or a deadlock
                // (two groups in flight inserting each other's keys): the group is redone.
                Err(RunError::Db(e)) if attempt < 3 => {
                    tracing::debug!(batch = %b.id, group = group.no, error = %e, "group commit retried");
                    attempt += 1;
                }
                other => {
                    if other.is_ok() {
                        if let Some(r) = &self.batches.inner.relay {
                            r.notify();
                        }
                        let keys = self.batches.inner.keys.clone();
                        if keys.ring().needs_rotation()
                            && let Err(e) = keys.rotate_if_needed().await
                        {
                            tracing::error!(error = %e, "data key rotation failed");
                        }
                    }
                    return other;
                }
            }
        }
    }

    async fn try_commit_group(
        &self,
        b: &batch::Model,
        meta: &RowMeta,
        group: &Group,
    ) -> Result<(), RunError> {
        let txn = etx_storage::begin_write(self.db()).await?;
        // Rows already stored (by an earlier upload, a real-time submission or earlier in this
        // file) are duplicates when their content is the same, conflicts when a reused
        // idempotency key carries other content. The unique (org_id, idempotency_mac) index
        // decides: rows are inserted with ON CONFLICT DO NOTHING, and only those it turned
        // away are looked up (none on a first upload).
        let mac_of = |r: &NewRecord| r.idempotency_mac.map(|m| m.to_vec()).unwrap_or_default();
        let mut first_of: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut candidates = Vec::new();
        let mut repeats = Vec::new();
        for (i, (_, _, rec, _, _)) in group.records.iter().enumerate() {
            match first_of.get(&mac_of(rec)) {
                Some(&j) => repeats.push((i, j)),
                None => {
                    first_of.insert(mac_of(rec), i);
                    candidates.push(i);
                }
            }
        }
        let mut inserted: HashSet<Uuid> = HashSet::new();
        let per = rows_per_insert(&txn);
        for chunk in candidates.chunks(per) {
            let models = chunk.iter().map(|&i| {
                let (_, _, rec, sealed, key_id) = &group.records[i];
                record_row(meta, rec, sealed, *key_id)
            });
            let res = record::Entity::insert_many(models)
                .on_conflict_do_nothing_on([record::Column::OrgId, record::Column::IdempotencyMac])
                .exec_with_returning_keys(&txn)
                .await?;
            if let sea_orm::TryInsertResult::Inserted(ids) = res {
                inserted.extend(ids);
            }
        }
        let turned_away: Vec<(Uuid, Vec<u8>)> = candidates
            .iter()
            .map(|&i| &group.records[i].2)
            .filter(|r| !inserted.contains(&r.id.as_uuid()))
            .map(|r| (b.org_id, mac_of(r)))
            .collect();
        let mut stored: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for row in find_by_keys(&txn, "records", &["idempotency_mac", "content_mac"], &turned_away).await? {
            let k: Option<Vec<u8>> = row.try_get("", "idempotency_mac")?;
            let c: Vec<u8> = row.try_get("", "content_mac")?;
            if let Some(k) = k {
                stored.insert(k, c);
            }
        }
        // What is stored under each key now: this group's row, or the earlier one.
        let effective = |i: usize| -> Option<Vec<u8>> {
            let rec = &group.records[i].2;
            if inserted.contains(&rec.id.as_uuid()) {
                Some(rec.content_mac.to_vec())
            } else {
                stored.get(&mac_of(rec)).cloned()
            }
        };
        let mut fresh = Vec::new();
        let mut errors = group.errors.clone();
        let mut duplicate = 0i64;
        let mut conflicts = 0i64;
        let mut classify = |i: usize, against: Option<Vec<u8>>| {
            let (row, line, rec, _, _) = &group.records[i];
            if against.as_deref() == Some(rec.content_mac.as_slice()) {
                duplicate += 1;
            } else {
                conflicts += 1;
                errors.push(RowError {
                    row: *row,
                    line: *line,
                    path: "/idempotency_key".into(),
                    code: ViolationCode::Invalid,
                    detail: Some("idempotency key already used with different content".into()),
                });
            }
        };
        for &i in &candidates {
            let rec = &group.records[i].2;
            if inserted.contains(&rec.id.as_uuid()) {
                fresh.push(rec);
            } else {
                classify(i, stored.get(&mac_of(rec)).cloned());
            }
        }
        for &(i, j) in &repeats {
            classify(i, effective(j));
        }
        errors.sort_by_key(|e| e.row);
        let outbox = announcements(meta, &fresh);
        let accepted = i64::try_from(inserted.len()).unwrap_or(i64::MAX);
        etx_storage::insert_outbox(&txn, outbox).await?;
        insert_errors(&txn, b.id, &errors).await?;
        let rejected = i64::try_from(group.invalid).unwrap_or(i64::MAX) + conflicts;
        // The group's row is its checkpoint: its primary key lets a group commit once. Still
        // holding the lease is checked without locking the batch row (which would serialise
        // the groups in flight); a worker that lost it meanwhile can at worst race the new
        // owner for the same group, and the primary key lets only one of them commit.
        let owner: Option<Option<String>> = batch::Entity::find_by_id(b.id)
            .select_only()
            .column(batch::Column::LeaseOwner)
            .into_tuple()
            .one(&txn)
            .await?;
        if owner.flatten().as_deref() != Some(self.owner.as_str()) {
            return Err(RunError::LostLease);
        }
        batch_group::Entity::insert(batch_group::ActiveModel {
            batch_id: sea_orm::Set(b.id),
            group_no: sea_orm::Set(i64::try_from(group.no).unwrap_or(i64::MAX)),
            accepted: sea_orm::Set(accepted),
            duplicate: sea_orm::Set(duplicate),
            rejected: sea_orm::Set(rejected),
        })
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn set(
        &self,
        id: Uuid,
        cols: Vec<(batch::Column, sea_orm::sea_query::SimpleExpr)>,
    ) -> Result<(), RunError> {
        self.set_on(self.db(), id, cols).await
    }

    /// Updates columns of a batch this worker holds the lease of.
    async fn set_on(
        &self,
        conn: &impl sea_orm::ConnectionTrait,
        id: Uuid,
        cols: Vec<(batch::Column, sea_orm::sea_query::SimpleExpr)>,
    ) -> Result<(), RunError> {
        let mut q = batch::Entity::update_many();
        for (c, v) in cols {
            q = q.col_expr(c, v);
        }
        let res = q
            .filter(batch::Column::Id.eq(id))
            .filter(batch::Column::LeaseOwner.eq(self.owner.clone()))
            .exec(conn)
            .await?;
        if res.rows_affected != 1 {
            return Err(RunError::LostLease);
        }
        Ok(())
    }

    async fn finish(
        &self,
        id: Uuid,
        state: BatchState,
        mut cols: Vec<(batch::Column, sea_orm::sea_query::SimpleExpr)>,
    ) -> Result<(), RunError> {
        cols.push((batch::Column::State, Expr::value(state.as_str())));
        cols.push((batch::Column::FinishedAt, Expr::value(Utc::now())));
        cols.push((batch::Column::LeaseOwner, Expr::value(Option::<String>::None)));
        cols.push((
            batch::Column::LeaseUntil,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        ));
        // The file has served its purpose once the batch is completed or rejected: its rows
        // are stored and its refused rows listed; it goes in the same transaction as the final
        // state. (Only `failed` is set elsewhere, and keeps its file to be retried.) Re-uploads
        // are still recognised by the batch's keyed file hash.
        let txn = etx_storage::begin_write(self.db()).await?;
        self.set_on(&txn, id, cols).await?;
        batch_chunk::Entity::delete_many()
            .filter(batch_chunk::Column::BatchId.eq(id))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        tracing::info!(batch = %id, state = state.as_str(), "batch finished");
        Ok(())
    }

    /// Rejects the whole batch: nothing of it was stored (the reading pass runs before any).
    async fn reject(&self, id: Uuid, reason: RejectReason) -> Result<(), RunError> {
        let text = serde_json::to_string(&reason).map_err(|e| RunError::Other(e.to_string()))?;
        let mut cols = vec![(batch::Column::RejectReason, Expr::value(text))];
        if let RejectReason::RowCountMismatch { actual, .. } = reason {
            cols.push((
                batch::Column::Total,
                Expr::value(i64::try_from(actual).unwrap_or(i64::MAX)),
            ));
        }
        self.finish(id, BatchState::Rejected, cols).await
    }

    /// After a graceful stop: the lease is given back at once, and the attempt does not count.
    async fn release_on_stop(&self, id: Uuid) {
        let res = batch::Entity::update_many()
            .col_expr(batch::Column::LeaseOwner, Expr::value(Option::<String>::None))
            .col_expr(
                batch::Column::LeaseUntil,
                Expr::value(Option::<chrono::DateTime<Utc>>::None),
            )
            .col_expr(
                batch::Column::Attempts,
                sea_orm::sea_query::ExprTrait::sub(Expr::col(batch::Column::Attempts), 1),
            )
            .filter(batch::Column::Id.eq(id))
            .filter(batch::Column::LeaseOwner.eq(self.owner.clone()))
            .exec(self.db())
            .await;
        match res {
            Ok(_) => tracing::info!(batch = %id, "batch paused for shutdown; lease given back"),
            Err(e) => {
                tracing::warn!(batch = %id, error = %e, "cannot give the batch lease back; it will expire")
            }
        }
    }

    /// After an error: give the lease back with a back-off, or fail the batch for good.
    async fn release_after_error(&self, id: Uuid) {
        let res = async {
            let Some(b) = batch::Entity::find_by_id(id).one(self.db()).await? else {
                return Ok::<_, DbErr>(());
            };
            if b.lease_owner.as_deref() != Some(self.owner.as_str()) {
                return Ok(());
            }
            let mut q = batch::Entity::update_many();
            if b.attempts >= MAX_ATTEMPTS {
                tracing::error!(batch = %id, attempts = b.attempts, "batch failed for good");
                q = q
                    .col_expr(batch::Column::State, Expr::value(BatchState::Failed.as_str()))
                    .col_expr(batch::Column::FinishedAt, Expr::value(Utc::now()))
                    .col_expr(batch::Column::LeaseOwner, Expr::value(Option::<String>::None))
                    .col_expr(
                        batch::Column::LeaseUntil,
                        Expr::value(Option::<chrono::DateTime<Utc>>::None),
                    );
            } else {
                let backoff =
                    Duration::from_secs(2u64.saturating_pow(u32::try_from(b.attempts).unwrap_or(5)));
                // Nobody owns it during the back-off; `lease_until` says when it may be taken.
                q = q
                    .col_expr(batch::Column::LeaseOwner, Expr::value(Option::<String>::None))
                    .col_expr(
                        batch::Column::LeaseUntil,
                        Expr::value(lease_deadline(Utc::now(), backoff)),
                    );
            }
            q.filter(batch::Column::Id.eq(id)).exec(self.db()).await?;
            Ok(())
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(batch = %id, error = %e, "cannot release the batch lease");
        }
    }

    /// Keeps the lease alive while a pass runs.
    fn spawn_renewal(&self, id: Uuid) -> tokio::task::JoinHandle<()> {
        let db = self.db().clone();
        let owner = self.owner.clone();
        let lease = self.batches.inner.settings.lease;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let res = batch::Entity::update_many()
                    .col_expr(
                        batch::Column::LeaseUntil,
                        Expr::value(lease_deadline(Utc::now(), lease)),
                    )
                    .filter(batch::Column::Id.eq(id))
                    .filter(batch::Column::LeaseOwner.eq(owner.clone()))
                    .exec(&db)
                    .await;
                if let Err(e) = res {
                    tracing::warn!(batch = %id, error = %e, "cannot renew the batch lease");
                }
            }
        })
    }

    /// Deletes chunks of uploads that never became a batch (the process died mid-upload) and
    /// are older than an hour (UUIDv7 ids carry their creation time), and any left behind by
    /// finished batches.
    async fn sweep_orphans(&self) -> Result<(), DbErr> {
        let ids: Vec<Uuid> = batch_chunk::Entity::find()
            .select_only()
            .column(batch_chunk::Column::BatchId)
            .distinct()
            .into_tuple()
            .all(self.db())
            .await?;
        let cutoff = Utc::now().timestamp_millis() - 3_600_000;
        for id in ids {
            let old = id
                .get_timestamp()
                .map(|t| {
                    let (s, n) = t.to_unix();
                    i64::try_from(s).unwrap_or(i64::MAX) * 1000 + i64::from(n / 1_000_000) < cutoff
                })
                .unwrap_or(false);
            let orphan = match batch::Entity::find_by_id(id).one(self.db()).await? {
                None => old,
                Some(b) => matches!(
                    BatchState::parse(&b.state),
                    Some(BatchState::Completed | BatchState::Rejected)
                ),
            };
            if orphan {
                batch_chunk::Entity::delete_many()
                    .filter(batch_chunk::Column::BatchId.eq(id))
                    .exec(self.db())
                    .await?;
                tracing::info!(batch = %id, "swept the chunks of an unfinished upload");
            }
        }
        Ok(())
    }
}

impl Group {
    fn new(no: u64) -> Self {
        Self {
            no,
            last_row: 0,
            records: Vec::new(),
            errors: Vec::new(),
            invalid: 0,
        }
    }
}

fn row_errors(row: u64, line: u64, v: Vec<FieldViolation>) -> impl Iterator<Item = RowError> {
    v.into_iter().take(MAX_VIOLATIONS_PER_ROW).map(move |f| RowError {
        row,
        line,
        path: f.path,
        code: f.code,
        detail: f.detail,
    })
}

async fn insert_errors(txn: &DatabaseTransaction, id: Uuid, errors: &[RowError]) -> Result<(), DbErr> {
    if errors.is_empty() {
        return Ok(());
    }
    let mut seq_of: HashMap<u64, i32> = HashMap::new();
    let models: Vec<batch_error::ActiveModel> = errors
        .iter()
        .map(|e| {
            let seq = seq_of.entry(e.row).or_insert(0);
            *seq += 1;
            batch_error::ActiveModel {
                batch_id: sea_orm::Set(id),
                row: sea_orm::Set(i64::try_from(e.row).unwrap_or(i64::MAX)),
                seq: sea_orm::Set(*seq),
                line: sea_orm::Set(i64::try_from(e.line).unwrap_or(i64::MAX)),
                path: sea_orm::Set(e.path.clone()),
                code: sea_orm::Set(e.code.as_str().into()),
                detail: sea_orm::Set(e.detail.clone()),
            }
        })
        .collect();
    let per = rows_per_insert(txn);
    for chunk in models.chunks(per) {
        batch_error::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// A `Read` over decrypted chunks arriving from the feeder task.
struct ChunkReader {
    rx: mpsc::Receiver<Result<Vec<u8>, String>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChunkReader {
    fn new(rx: mpsc::Receiver<Result<Vec<u8>, String>>) -> Self {
        Self {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(Ok(v)) => {
                    self.cur = v;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Sums of the committed groups of a batch: (accepted, duplicate, rejected).
pub(crate) async fn group_sums(conn: &impl ConnectionTrait, id: Uuid) -> Result<(i64, i64, i64), DbErr> {
    let backend = conn.get_database_backend();
    let placeholder = if backend == sea_orm::DbBackend::Sqlite {
        "?"
    } else {
        "$1"
    };
    let sql = format!(
        "SELECT CAST(COALESCE(SUM(accepted), 0) AS BIGINT) AS a, CAST(COALESCE(SUM(duplicate), 0) AS BIGINT) AS d, \
         CAST(COALESCE(SUM(rejected), 0) AS BIGINT) AS r FROM batch_groups WHERE batch_id = {placeholder}"
    );
    let row = conn
        .query_one_raw(sea_orm::Statement::from_sql_and_values(backend, sql, [id.into()]))
        .await?;
    match row {
        Some(r) => Ok((r.try_get("", "a")?, r.try_get("", "d")?, r.try_get("", "r")?)),
        None => Ok((0, 0, 0)),
    }
}
