//! The real-time submission use case (R-ING-1, R-ING-4, R-ING-5, R-SRC-2): validate every
//! item before anything is stored, report every violation per item and field, derive the
//! idempotency facts, and hand the submission to the store.

use crate::canonical;
use crate::model::{NewRecord, Receipt, StoredRecord, Submission, SubmitOutcome};
use crate::ports::{RecordStore, StoreError, SubmitError};
use crate::schema::{SchemaRegistry, parse_item};
use chrono::Utc;
use etx_crypto::KeyedHasher;
use etx_domain::authz::OrgScope;
use etx_domain::{
    ApiKeyId, ContentHash, ErrorCode, FieldViolation, IdempotencyKey, Method, OrgId, ReceiptId, RecordId,
    SystemId, ViolationCode,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// The authenticated source submitting data.
#[derive(Debug, Clone, Copy)]
pub struct SourceCaller {
    /// Organisation.
    pub org_id: OrgId,
    /// System.
    pub system_id: SystemId,
    /// Key used, if any.
    pub key_id: Option<ApiKeyId>,
}

/// Limits of the real-time endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most records in one real-time submission (the issue fixes 1,000).
    pub max_records: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_records: 1000 }
    }
}

/// Why a submission was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// One or more items broke their rules; nothing was stored.
    #[error("{} violation(s)", .0.len())]
    Invalid(Vec<FieldViolation>),
    /// An item is labelled a state secret (R-SRC-2); nothing was stored.
    #[error("state secret refused")]
    StateSecret(Vec<FieldViolation>),
    /// Empty submission or more than the limit.
    #[error("submission holds {count} records; allowed 1..={max}")]
    BatchSize {
        /// Records submitted.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// Idempotency key reused with different content.
    #[error("idempotency conflict")]
    Conflict,
    /// The store cannot take writes now.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error(transparent)]
    Unknown(#[from] anyhow::Error),
}

impl IngestError {
    /// The catalogue code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid(_) => ErrorCode::ValidationFailed,
            Self::StateSecret(_) => ErrorCode::StateSecretRefused,
            Self::BatchSize { .. } => ErrorCode::BatchSize,
            Self::Conflict => ErrorCode::IdempotencyConflict,
            Self::Unavailable(_) => ErrorCode::ServiceUnavailable,
            Self::Unknown(_) => ErrorCode::Internal,
        }
    }
}

impl From<SubmitError> for IngestError {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::IdempotencyConflict => Self::Conflict,
            SubmitError::Unavailable(s) => Self::Unavailable(s),
            SubmitError::Unknown(e) => Self::Unknown(e),
        }
    }
}

/// The canonical form of a validated record (what its content hash covers): the envelope
/// without its idempotency key, and the payload.
fn canonical_record(envelope: &etx_domain::Envelope, payload: &Value) -> Value {
    json!({
        "category": envelope.category.as_str(),
        "schema_version": envelope.schema_version.number(),
        "period": envelope.period.to_string(),
        "classification": envelope.classification.as_str(),
        "priority": envelope.priority.as_str(),
        "form": envelope.form.as_str(),
        "payload": payload,
    })
}

/// The ingestion use cases, generic over the record store.
#[derive(Debug)]
pub struct IngestionService<S> {
    store: S,
    schemas: Arc<SchemaRegistry>,
    hasher: Arc<KeyedHasher>,
    limits: Limits,
}

/// Purposes of the keyed hashes (domain separation).
const MAC_REQUEST: &str = "ingestion/request";
const MAC_RECORD: &str = "ingestion/record";
const MAC_IDEMPOTENCY: &str = "ingestion/idempotency-key";
const MAC_BATCH_ROW: &str = "ingestion/batch-row";

impl<S: RecordStore> IngestionService<S> {
    /// A service over `store`.
    pub fn new(store: S, schemas: Arc<SchemaRegistry>, hasher: Arc<KeyedHasher>, limits: Limits) -> Self {
        Self {
            store,
            schemas,
            hasher,
            limits,
        }
    }

    /// The schema registry.
    pub fn schemas(&self) -> &SchemaRegistry {
        &self.schemas
    }

    /// Validates one row of a batch into a record (R-ING-1 batch, R-ING-4, R-ING-5). The row's
    /// deduplication key is its own idempotency key when it carries one, else a keyed hash of
    /// its canonical content: re-uploading a file never stores a row twice, and a corrected row
    /// (new content) is new. Violations carry paths relative to the row.
    pub fn prepare_row(&self, item: &Value) -> Result<NewRecord, Vec<FieldViolation>> {
        let (envelope, payload) = parse_item(&self.schemas, item)?;
        let canon = canonical_record(&envelope, &payload);
        let content_mac = self.hasher.hash(MAC_RECORD, &canonical::to_vec(&canon));
        let idempotency_mac = Some(match &envelope.idempotency_key {
            Some(k) => self.hasher.hash(MAC_IDEMPOTENCY, k.as_str().as_bytes()),
            None => self.hasher.hash(MAC_BATCH_ROW, &content_mac),
        });
        Ok(NewRecord {
            id: RecordId::new(),
            envelope,
            payload,
            content_mac,
            idempotency_mac,
        })
    }

    /// A keyed hash for `purpose` (for adapters that deduplicate, e.g. whole batch files).
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        self.hasher.hash(purpose, data)
    }

    /// Validates items into a submission without storing anything. `single` says whether the
    /// body was one record (paths then carry no item index). `header_key` is the
    /// `Idempotency-Key` header, already checked by [`IdempotencyKey::parse`].
    pub fn prepare(
        &self,
        caller: SourceCaller,
        items: Vec<Value>,
        single: bool,
        header_key: Option<IdempotencyKey>,
        method: Method,
    ) -> Result<Submission, IngestError> {
        if items.is_empty() || items.len() > self.limits.max_records {
            return Err(IngestError::BatchSize {
                count: items.len(),
                max: self.limits.max_records,
            });
        }
        let mut violations = Vec::new();
        let mut records = Vec::with_capacity(items.len());
        let mut canon_items = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match parse_item(&self.schemas, item) {
                Ok((envelope, payload)) => {
                    let canon = canonical_record(&envelope, &payload);
                    let content_mac = self.hasher.hash(MAC_RECORD, &canonical::to_vec(&canon));
                    let mut with_key = canon;
                    if let (Some(k), Some(obj)) = (&envelope.idempotency_key, with_key.as_object_mut()) {
                        obj.insert("idempotency_key".into(), Value::String(k.to_string()));
                    }
                    canon_items.push(with_key);
                    let idempotency_mac = envelope
                        .idempotency_key
                        .as_ref()
                        .map(|k| self.hasher.hash(MAC_IDEMPOTENCY, k.as_str().as_bytes()));
                    records.push(NewRecord {
                        id: RecordId::new(),
                        envelope,
                        payload,
                        content_mac,
                        idempotency_mac,
                    });
                }
                Err(v) => violations.extend(v.into_iter().map(|f| if single { f } else { f.at_item(i) })),
            }
        }
        if !violations.is_empty() {
            if violations.iter().any(|v| v.code == ViolationCode::StateSecret) {
                return Err(IngestError::StateSecret(violations));
            }
            return Err(IngestError::Invalid(violations));
        }
        // Per-record keys must be unique within one submission.
        let mut seen = std::collections::HashSet::new();
        for (i, r) in records.iter().enumerate() {
            if let Some(k) = &r.envelope.idempotency_key
                && !seen.insert(k.as_str())
            {
                let v = FieldViolation::new("/idempotency_key", ViolationCode::Invalid)
                    .with_detail("duplicate idempotency_key within the submission");
                return Err(IngestError::Invalid(vec![if single { v } else { v.at_item(i) }]));
            }
        }
        let canon_all = if single {
            canon_items.swap_remove(0)
        } else {
            Value::Array(canon_items)
        };
        let bytes = canonical::to_vec(&canon_all);
        let content_hash = {
            use sha2::{Digest, Sha256};
            ContentHash::from_bytes(Sha256::digest(&bytes).into())
        };
        let request_mac = self.hasher.hash(MAC_REQUEST, &bytes);
        let idempotency_key = header_key.or_else(|| {
            if single {
                records[0].envelope.idempotency_key.clone()
            } else {
                None
            }
        });
        let idempotency_mac = idempotency_key
            .as_ref()
            .map(|k| self.hasher.hash(MAC_IDEMPOTENCY, k.as_str().as_bytes()));
        Ok(Submission {
            receipt_id: ReceiptId::new(),
            idempotency_mac,
            org_id: caller.org_id,
            system_id: caller.system_id,
            key_id: caller.key_id,
            idempotency_key,
            content_hash,
            request_mac,
            method,
            records,
            received_at: Utc::now(),
        })
    }

    /// Validates and durably stores a submission (R-ING-1): `Ok` means committed.
    #[tracing::instrument(skip_all, fields(org = %caller.org_id, items = items.len()))]
    pub async fn submit(
        &self,
        caller: SourceCaller,
        items: Vec<Value>,
        single: bool,
        header_key: Option<IdempotencyKey>,
    ) -> Result<SubmitOutcome, IngestError> {
        let submission = self.prepare(caller, items, single, header_key, Method::Realtime)?;
        Ok(self.store.submit(submission).await?)
    }

    /// A record of an organisation within the caller's scope.
    pub async fn record(&self, scope: OrgScope, id: RecordId) -> Result<Option<StoredRecord>, StoreError> {
        self.store.record(scope, id).await
    }

    /// A receipt of an organisation within the caller's scope.
    pub async fn receipt(&self, scope: OrgScope, id: ReceiptId) -> Result<Option<Receipt>, StoreError> {
        self.store.receipt(scope, id).await
    }
}
