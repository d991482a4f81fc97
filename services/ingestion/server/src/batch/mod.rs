//! Batch ingestion (issue 3; R-ING-1 batch, R-ING-3 file formats, R-ING-5, R-REC control
//! totals): the use cases REST and SOAP share.
//!
//! * [`Batches::upload`] streams the file into the database in encrypted chunks of 1 MiB
//!   (memory stays bounded whatever its size), computing its SHA-256 on the way; a declared
//!   SHA-256 that differs rejects the upload at once and keeps nothing. The batch row is
//!   committed last: only then does the caller get `202` with the batch id. Uploading the same
//!   file with the same parameters again returns the original batch (a keyed hash of the
//!   organisation, the file's SHA-256 and the parameters is unique per organisation).
//! * The [`worker`] processes batches asynchronously under a renewable lease, so a crash or a
//!   restart resumes where the last committed chunk of rows left off: first a reading pass
//!   (`validating`: counts the rows and proves the file readable; for a dry run it also
//!   validates every row) — a row count that differs from the declared one, or an unreadable
//!   file, rejects the batch before any row is stored — then the storing pass (`storing`):
//!   rows are validated, sealed and committed in groups of 1,000, each group in one
//!   transaction with its checkpoint row and counts (`batch_groups`; several groups in flight
//!   on PostgreSQL); rows already stored (same idempotency key or, without one, same content)
//!   count as duplicates and are never stored twice.
//! * Refused rows are kept per violation in `batch_errors` with their row, line, field path
//!   and code, listed by [`Batches::errors_page`].

pub mod http;
pub(crate) mod worker;

use crate::store::SeaRecordStore;
use crate::store::entities::{batch, batch_chunk, batch_error, receipt};
use crate::store::keys::KeyManager;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use etx_crypto::Aad;
use etx_domain::authz::OrgScope;
use etx_domain::{ErrorCode, FieldViolation, ViolationCode};
use etx_http_kit::ApiError;
use etx_ingestion_core::batch::{
    BatchCounts, BatchDefaults, BatchFormat, BatchState, BatchView, ControlTotals, RejectReason,
};
use etx_ingestion_core::{IngestionService, SourceCaller};
use etx_storage::RelayHandle;
use futures_util::{Stream, StreamExt};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

/// Size of the stored chunks of an uploaded file.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Purpose of the keyed hash that identifies a batch upload.
const MAC_BATCH_FILE: &str = "ingestion/batch-file";

/// Settings of batch processing.
#[derive(Debug, Clone)]
pub struct BatchSettings {
    /// Largest file accepted (default 1 GiB).
    pub max_bytes: u64,
    /// How long a worker owns a batch without renewing its lease.
    pub lease: Duration,
    /// Rows committed per transaction in the storing pass.
    pub rows_per_commit: usize,
    /// Worker tasks in this process (0 = none: this process only takes uploads).
    pub workers: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 30,
            lease: Duration::from_secs(30),
            rows_per_commit: 1000,
            workers: 1,
        }
    }
}

/// What the source says about an upload besides the bytes.
#[derive(Debug, Clone)]
pub struct BatchUpload {
    /// File format.
    pub format: BatchFormat,
    /// Envelope fields for rows that do not carry them.
    pub defaults: BatchDefaults,
    /// Declared control totals.
    pub declared: ControlTotals,
    /// Validate only, store nothing.
    pub dry_run: bool,
}

/// A new batch, or the original one when the same upload was made before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    /// Stored now; processing follows.
    Created(BatchView),
    /// The same file with the same parameters was uploaded before: that batch.
    Replayed(BatchView),
}

impl UploadOutcome {
    /// The batch either way.
    pub fn view(&self) -> &BatchView {
        match self {
            Self::Created(v) | Self::Replayed(v) => v,
        }
    }
}

/// Why an upload or a read failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The file is larger than the limit; nothing was kept.
    #[error("the file exceeds {max} bytes")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The body was empty.
    #[error("the file is empty")]
    Empty,
    /// The declared SHA-256 differs from the file's; nothing was kept.
    #[error("declared SHA-256 does not match the file")]
    Sha256Mismatch {
        /// Declared.
        declared: String,
        /// Computed.
        actual: String,
    },
    /// A parameter (query, header, manifest) is not valid.
    #[error("invalid parameter {path}: {detail}")]
    InvalidParameter {
        /// Where (`query:format`, `header:X-Batch-SHA256`…).
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// The body could not be read to its end; nothing was kept.
    #[error("the body could not be read: {0}")]
    Body(String),
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// Anything else.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl BatchError {
    /// An invalid parameter.
    pub fn param(path: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::InvalidParameter {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// Maps a batch error to the catalogue (problem+json and SOAP faults alike).
pub fn api_error(e: BatchError) -> ApiError {
    match e {
        BatchError::TooLarge { max } => ApiError::new(ErrorCode::PayloadTooLarge)
            .with_detail(format!("the largest batch file accepted is {max} bytes")),
        BatchError::Empty => ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
            FieldViolation::new("body", ViolationCode::Required).with_detail("the batch file is empty"),
        ]),
        BatchError::Sha256Mismatch { declared, actual } => ApiError::new(ErrorCode::ControlTotalMismatch)
            .with_violations(vec![
                FieldViolation::new("header:X-Batch-SHA256", ViolationCode::Invalid)
                    .with_detail(format!("declared {declared}, the file's SHA-256 is {actual}")),
            ]),
        BatchError::InvalidParameter { path, detail } => ApiError::new(ErrorCode::InvalidParameter)
            .with_violations(vec![
                FieldViolation::new(path, ViolationCode::Invalid).with_detail(detail),
            ]),
        BatchError::Body(d) => ApiError::new(ErrorCode::IncompleteBody).with_detail(d),
        BatchError::Db(e) => {
            tracing::error!(error = %e, "batch database error");
            ApiError::new(ErrorCode::ServiceUnavailable)
        }
        BatchError::Other(e) => ApiError::internal(e),
    }
}

/// One refused row's violation, as listed to its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based row.
    pub row: u64,
    /// 1-based line of the file.
    pub line: u64,
    /// Field path inside the row (JSON Pointer), or `""` for the whole row.
    pub path: String,
    /// Rule broken.
    pub code: ViolationCode,
    /// English detail, never the submitted value.
    pub detail: Option<String>,
}

/// The batch use cases.
#[derive(Clone)]
pub struct Batches {
    inner: Arc<Inner>,
}

struct Inner {
    db: DatabaseConnection,
    keys: KeyManager,
    service: Arc<IngestionService<SeaRecordStore>>,
    relay: Option<RelayHandle>,
    settings: BatchSettings,
    wake: Notify,
    /// Set by [`Batches::shutdown`]: workers stop taking work.
    stopping: std::sync::atomic::AtomicBool,
    workers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches").finish_non_exhaustive()
    }
}

/// The AAD of chunk `seq` of batch `batch_id`: the organisation, and the batch id with the
/// chunk number folded into its low bits, so chunks cannot be swapped between positions or
/// batches without failing authentication.
pub(crate) fn chunk_aad(org: Uuid, batch_id: Uuid, seq: i32) -> Aad {
    Aad {
        org_id: org,
        record_id: Uuid::from_u128(batch_id.as_u128() ^ u128::from(seq.unsigned_abs())),
    }
}

impl Batches {
    /// The use cases over `db`; call [`Batches::start_workers`] to process batches here.
    pub fn new(
        db: DatabaseConnection,
        keys: KeyManager,
        service: Arc<IngestionService<SeaRecordStore>>,
        relay: Option<RelayHandle>,
        settings: BatchSettings,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                keys,
                service,
                relay,
                settings,
                wake: Notify::new(),
                stopping: std::sync::atomic::AtomicBool::new(false),
                workers: std::sync::Mutex::new(Vec::new()),
            }),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BatchSettings {
        &self.inner.settings
    }

    /// Starts the configured number of worker tasks (they resume unfinished batches).
    pub fn start_workers(&self) {
        let mut handles = self
            .inner
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for _ in 0..self.inner.settings.workers {
            let w = worker::Worker::new(self.clone());
            handles.push(tokio::spawn(async move { w.run().await }));
        }
    }

    /// Graceful stop (SIGTERM): workers finish the groups they are committing, take no more,
    /// and give their batches' leases back at once, so that a restarted or another process
    /// resumes them without waiting for the lease to expire. Waits up to `within`.
    pub async fn shutdown(&self, within: Duration) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.wake.notify_waiters();
        let handles: Vec<_> = self
            .inner
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .drain(..)
            .collect();
        let all = futures_util::future::join_all(handles);
        if tokio::time::timeout(within, all).await.is_err() {
            tracing::warn!("batch workers did not stop in time; their leases will expire");
        }
    }

    pub(crate) fn stopping(&self) -> bool {
        self.inner.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Streams an uploaded file into durable storage and registers the batch (issue 3 §1, §2,
    /// §5). `Ok` means the file and the batch are committed.
    #[tracing::instrument(skip_all, fields(org = %caller.org_id, format = upload.format.as_str()))]
    pub async fn upload<S, E>(
        &self,
        caller: SourceCaller,
        upload: BatchUpload,
        mut body: S,
    ) -> Result<UploadOutcome, BatchError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if let Some(s) = &upload.declared.sha256
            && (s.len() != 64
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        {
            return Err(BatchError::param(
                "header:X-Batch-SHA256",
                "64 lower-case hexadecimal characters",
            ));
        }
        let db = &self.inner.db;
        let id = Uuid::now_v7();
        let org = caller.org_id.as_uuid();
        let max = self.inner.settings.max_bytes;
        let mut sha = Sha256::new();
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK_BYTES);
        let mut seq: i32 = 0;
        let mut size: u64 = 0;
        let streamed: Result<(), BatchError> = async {
            while let Some(piece) = body.next().await {
                let piece = piece.map_err(|e| BatchError::Body(e.to_string()))?;
                size += piece.len() as u64;
                if size > max {
                    return Err(BatchError::TooLarge { max });
                }
                sha.update(&piece);
                let mut rest = &piece[..];
                while !rest.is_empty() {
                    let take = (CHUNK_BYTES - buf.len()).min(rest.len());
                    buf.extend_from_slice(&rest[..take]);
                    rest = &rest[take..];
                    if buf.len() == CHUNK_BYTES {
                        self.put_chunk(org, id, seq, &buf).await?;
                        seq += 1;
                        buf.clear();
                    }
                }
            }
            if !buf.is_empty() {
                self.put_chunk(org, id, seq, &buf).await?;
                seq += 1;
            }
            Ok(())
        }
        .await;
        drop(buf);
        if let Err(e) = streamed {
            self.drop_chunks(id).await;
            return Err(e);
        }
        if size == 0 {
            return Err(BatchError::Empty);
        }
        let actual = hex::encode(sha.finalize());
        if let Some(declared) = &upload.declared.sha256
            && *declared != actual
        {
            self.drop_chunks(id).await;
            return Err(BatchError::Sha256Mismatch {
                declared: declared.clone(),
                actual,
            });
        }
        let identity = serde_json::json!({
            "org": org,
            "sha256": actual,
            "format": upload.format.as_str(),
            "defaults": upload.defaults,
            "declared_rows": upload.declared.row_count,
            "dry_run": upload.dry_run,
        });
        let file_mac = self
            .inner
            .service
            .mac(MAC_BATCH_FILE, &etx_ingestion_core::canonical::to_vec(&identity));
        if let Some(existing) = self.find_by_mac(org, &file_mac).await? {
            self.drop_chunks(id).await;
            return Ok(UploadOutcome::Replayed(to_view(existing)?));
        }
        let now = Utc::now();
        let receipt_id = (!upload.dry_run).then(Uuid::now_v7);
        let model = batch::ActiveModel {
            id: Set(id),
            org_id: Set(org),
            system_id: Set(caller.system_id.as_uuid()),
            key_id: Set(caller.key_id.map(|k| k.as_uuid())),
            receipt_id: Set(receipt_id),
            format: Set(upload.format.as_str().into()),
            dry_run: Set(upload.dry_run),
            defaults: Set(serde_json::to_string(&upload.defaults).map_err(anyhow::Error::from)?),
            declared_rows: Set(upload
                .declared
                .row_count
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX))),
            declared_sha256: Set(upload.declared.sha256.clone()),
            sha256: Set(actual.clone()),
            file_mac: Set(file_mac.to_vec()),
            size_bytes: Set(i64::try_from(size).unwrap_or(i64::MAX)),
            chunks: Set(seq),
            state: Set(BatchState::Received.as_str().into()),
            total: Set(0),
            accepted: Set(0),
            rejected: Set(0),
            duplicate: Set(0),
            group_rows: Set(0),
            reject_reason: Set(None),
            lease_owner: Set(None),
            lease_until: Set(None),
            attempts: Set(0),
            received_at: Set(now),
            started_at: Set(None),
            finished_at: Set(None),
        };
        let committed: Result<batch::Model, DbErr> = async {
            let txn = etx_storage::begin_write(db).await?;
            if let Some(rid) = receipt_id {
                receipt::ActiveModel {
                    id: Set(rid),
                    org_id: Set(org),
                    system_id: Set(caller.system_id.as_uuid()),
                    key_id: Set(caller.key_id.map(|k| k.as_uuid())),
                    idempotency_mac: Set(None),
                    request_mac: Set(file_mac.to_vec()),
                    content_hash: Set(format!("sha256:{actual}")),
                    // A batch's records are listed through the batch, not in its receipt.
                    record_ids: Set("[]".into()),
                    method: Set(etx_domain::Method::Batch.as_str().into()),
                    received_at: Set(now),
                }
                .insert(&txn)
                .await?;
            }
            let m = model.insert(&txn).await?;
            txn.commit().await?;
            Ok(m)
        }
        .await;
        match committed {
            Ok(m) => {
                self.inner.wake.notify_waiters();
                self.inner.wake.notify_one();
                Ok(UploadOutcome::Created(to_view(m)?))
            }
            Err(e) if etx_storage::is_unique_violation(&e) => {
                // The same upload raced this one and won.
                self.drop_chunks(id).await;
                match self.find_by_mac(org, &file_mac).await? {
                    Some(m) => Ok(UploadOutcome::Replayed(to_view(m)?)),
                    None => Err(BatchError::Db(e)),
                }
            }
            Err(e) => {
                self.drop_chunks(id).await;
                Err(BatchError::Db(e))
            }
        }
    }

    /// A batch of an organisation within `scope`; `None` when unknown or outside it.
    pub async fn status(&self, scope: OrgScope, id: Uuid) -> Result<Option<BatchView>, BatchError> {
        let m = batch::Entity::find_by_id(id)
            .filter(crate::store::org_replica(&self.inner.db).condition(batch::Column::OrgId, scope))
            .one(&self.inner.db)
            .await?;
        let Some(m) = m else { return Ok(None) };
        let mut view = to_view(m)?;
        if view.state == BatchState::Storing {
            // While storing, the counts are the committed groups' (final counts are copied to
            // the batch when it completes).
            let (accepted, duplicate, rejected) = worker::group_sums(&self.inner.db, id).await?;
            view.counts.accepted = opt_u64(accepted);
            view.counts.duplicate = opt_u64(duplicate);
            view.counts.rejected = opt_u64(rejected);
        }
        Ok(Some(view))
    }

    /// Up to `limit` violations of refused rows of a batch of `org`, after `(row, seq)`, in
    /// row order; `None` when the batch is unknown or another organisation's.
    pub async fn errors_page(
        &self,
        scope: OrgScope,
        id: Uuid,
        after: Option<(u64, i32)>,
        limit: u64,
    ) -> Result<Option<Vec<(RowError, i32)>>, BatchError> {
        if self.status(scope, id).await?.is_none() {
            return Ok(None);
        }
        let mut q = batch_error::Entity::find().filter(batch_error::Column::BatchId.eq(id));
        if let Some((row, seq)) = after {
            let row = i64::try_from(row).unwrap_or(i64::MAX);
            q = q.filter(
                sea_orm::Condition::any()
                    .add(batch_error::Column::Row.gt(row))
                    .add(
                        sea_orm::Condition::all()
                            .add(batch_error::Column::Row.eq(row))
                            .add(batch_error::Column::Seq.gt(seq)),
                    ),
            );
        }
        let rows = q
            .order_by_asc(batch_error::Column::Row)
            .order_by_asc(batch_error::Column::Seq)
            .limit(limit)
            .all(&self.inner.db)
            .await?;
        Ok(Some(
            rows.into_iter()
                .map(|m| {
                    let code = serde_json::from_value(serde_json::Value::String(m.code))
                        .unwrap_or(ViolationCode::Invalid);
                    (
                        RowError {
                            row: u64::try_from(m.row).unwrap_or(0),
                            line: u64::try_from(m.line).unwrap_or(0),
                            path: m.path,
                            code,
                            detail: m.detail,
                        },
                        m.seq,
                    )
                })
                .collect(),
        ))
    }

    async fn put_chunk(&self, org: Uuid, id: Uuid, seq: i32, data: &[u8]) -> Result<(), BatchError> {
        let sealed = self
            .inner
            .keys
            .ring()
            .encrypt(&chunk_aad(org, id, seq), data)
            .map_err(|e| BatchError::Other(e.into()))?;
        batch_chunk::Entity::insert(batch_chunk::ActiveModel {
            batch_id: Set(id),
            seq: Set(seq),
            data: Set(sealed),
        })
        .exec_without_returning(&self.inner.db)
        .await?;
        Ok(())
    }

    async fn drop_chunks(&self, id: Uuid) {
        if let Err(e) = batch_chunk::Entity::delete_many()
            .filter(batch_chunk::Column::BatchId.eq(id))
            .exec(&self.inner.db)
            .await
        {
            // Orphan chunks are swept by the worker later.
            tracing::warn!(error = %e, batch = %id, "could not delete the chunks of a refused upload");
        }
    }

    async fn find_by_mac(&self, org: Uuid, mac: &[u8; 32]) -> Result<Option<batch::Model>, DbErr> {
        batch::Entity::find()
            .filter(batch::Column::OrgId.eq(org))
            .filter(batch::Column::FileMac.eq(mac.to_vec()))
            .one(&self.inner.db)
            .await
    }
}

fn opt_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The source's view of a stored batch.
pub(crate) fn to_view(m: batch::Model) -> Result<BatchView, BatchError> {
    let corrupt =
        |what: &str| BatchError::Other(anyhow::anyhow!("stored batch {} has an invalid {what}", m.id));
    let state = BatchState::parse(&m.state).ok_or_else(|| corrupt("state"))?;
    let format = BatchFormat::parse(&m.format).ok_or_else(|| corrupt("format"))?;
    let reject_reason: Option<RejectReason> = match &m.reject_reason {
        None => None,
        Some(s) => Some(serde_json::from_str(s).map_err(|_| corrupt("reject reason"))?),
    };
    Ok(BatchView {
        id: m.id,
        state,
        format,
        dry_run: m.dry_run,
        counts: BatchCounts {
            total: opt_u64(m.total),
            accepted: opt_u64(m.accepted),
            rejected: opt_u64(m.rejected),
            duplicate: opt_u64(m.duplicate),
        },
        size_bytes: opt_u64(m.size_bytes),
        sha256: m.sha256,
        declared: ControlTotals {
            row_count: m.declared_rows.map(opt_u64),
            sha256: m.declared_sha256,
        },
        reject_reason,
        receipt_id: m.receipt_id,
        received_at: m.received_at,
        started_at: m.started_at,
        finished_at: m.finished_at,
    })
}

/// Time helper shared with the worker.
pub(crate) fn lease_deadline(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or_else(|_| chrono::Duration::seconds(30))
}
