//! The masking policy's versions (issue 5 §2; R-SEC-10, R-DATA-3): stored in
//! `masking_policies`, immutable once stored, the current policy the highest version. A new
//! version is published only as exactly the current version + 1, so two editors working from
//! the same version cannot silently overwrite each other: the second gets
//! [`PublishError::Conflict`].
//!
//! The consumer masks with [`PolicyStore::current`]: the cached policy, compared with the
//! stored current version (one indexed `MAX(version)`) at most once per refresh interval
//! ([`DEFAULT_REFRESH`]), and reloaded when it changed — so every masking process on one
//! database takes a new version within that interval, without a restart, and the process that
//! published it at once. A version is never replaced by a lower one, so a slow check cannot
//! undo a newer version already taken.
//!
//! Each stored document is canonical JSON with its SHA-256; a version whose document no longer
//! matches its hash, does not parse or names another version is [`PolicyStoreError::Corrupt`]
//! and is never applied.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use etx_domain::{FieldViolation, OrgId};
use etx_masking_core::{BUILTIN_POLICY, MaskingPolicy};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryOrder, QuerySelect, Set};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::entities::masking_policy;

/// How often, at most, a masking process compares its policy with the stored current version.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(2);

/// The author of the built-in version 1.
pub const SYSTEM_AUTHOR: &str = "system";

/// A stored version, without its document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersion {
    /// The version (≥ 1).
    pub version: u32,
    /// The document's description.
    pub description: Option<String>,
    /// Lower-case hex SHA-256 of the canonical document.
    pub sha256: String,
    /// Who published it: a principal's subject (`user:<id>`), or [`SYSTEM_AUTHOR`].
    pub created_by: String,
    /// The publisher's organisation (`None` for [`SYSTEM_AUTHOR`]).
    pub created_by_org: Option<OrgId>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// A stored version with its document.
#[derive(Debug, Clone)]
pub struct StoredPolicy {
    /// Its metadata.
    pub meta: PolicyVersion,
    /// The document as stored (canonical: members sorted).
    pub document: Value,
    /// The validated policy.
    pub policy: Arc<MaskingPolicy>,
}

/// Who publishes a version.
#[derive(Debug, Clone, Copy)]
pub struct Author<'a> {
    /// The principal's subject (`user:<id>`).
    pub subject: &'a str,
    /// Their organisation.
    pub org_id: Option<OrgId>,
}

/// Why the stored versions could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyStoreError {
    /// The database failed or cannot be reached.
    #[error("masking store unavailable: {0}")]
    Database(#[from] DbErr),
    /// A stored version does not check out (edited by hand, or written by a newer release).
    #[error("stored masking policy version {version} is corrupt: {what}")]
    Corrupt {
        /// The version.
        version: i64,
        /// What is wrong.
        what: String,
    },
}

/// Why a version was not published (nothing was stored).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The document breaks rules: every violation, with its JSON pointer.
    #[error("the masking policy is not valid ({} violation(s))", .0.len())]
    Invalid(Vec<FieldViolation>),
    /// The document's version is not the current version + 1.
    #[error("version {proposed} is not the next version: the current version is {current}")]
    Conflict {
        /// The current version.
        current: u32,
        /// The version the document names.
        proposed: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] PolicyStoreError),
}

impl From<DbErr> for PublishError {
    fn from(e: DbErr) -> Self {
        Self::Store(e.into())
    }
}

/// The masking policy's versions and the policy the consumer applies (see the module docs).
/// Clones share the cache.
#[derive(Clone)]
pub struct PolicyStore {
    db: DatabaseConnection,
    cache: Arc<Cache>,
}

struct Cache {
    current: RwLock<Arc<MaskingPolicy>>,
    /// When the stored current version was last compared with `current`.
    checked: Mutex<Option<Instant>>,
    refresh_ms: AtomicU64,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore")
            .field("cached_version", &self.cached().version())
            .finish_non_exhaustive()
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl PolicyStore {
    /// Opens the versions over `db` (migrated): stores [`BUILTIN_POLICY`] as version 1 when
    /// there is none (`created_by` = [`SYSTEM_AUTHOR`]; several processes starting together
    /// store it once) and loads the current version.
    ///
    /// # Errors
    /// When the database fails or the current version is corrupt.
    pub async fn open(db: DatabaseConnection) -> Result<Self, PolicyStoreError> {
        let builtin: Value = serde_json::from_str(BUILTIN_POLICY).map_err(|e| PolicyStoreError::Corrupt {
            version: 1,
            what: format!("the built-in policy is not JSON: {e}"),
        })?;
        let builtin_policy = MaskingPolicy::from_value(&builtin).map_err(|e| PolicyStoreError::Corrupt {
            version: 1,
            what: format!("the built-in policy is not valid: {e}"),
        })?;
        let canonical = etx_domain::canonical_json::to_vec(&builtin);
        let row = masking_policy::ActiveModel {
            version: Set(i64::from(builtin_policy.version())),
            document: Set(String::from_utf8_lossy(&canonical).into_owned()),
            description: Set(builtin_policy.description().map(str::to_owned)),
            sha256: Set(sha256_hex(&canonical)),
            created_by: Set(SYSTEM_AUTHOR.to_owned()),
            created_by_org: Set(None),
            created_at: Set(Utc::now()),
        };
        masking_policy::Entity::insert(row)
            .on_conflict_do_nothing_on([masking_policy::Column::Version])
            .exec_without_returning(&db)
            .await?;
        let store = Self {
            db,
            cache: Arc::new(Cache {
                current: RwLock::new(Arc::new(builtin_policy)),
                checked: Mutex::new(None),
                refresh_ms: AtomicU64::new(millis(DEFAULT_REFRESH)),
            }),
        };
        store.current().await?;
        Ok(store)
    }

    /// Compares with the stored current version at most every `every` (at least 10 ms).
    pub fn set_refresh(&self, every: Duration) {
        self.cache
            .refresh_ms
            .store(millis(every).max(10), Ordering::Relaxed);
    }

    /// The policy last taken, without asking the database (for scrubbing log texts).
    pub fn cached(&self) -> Arc<MaskingPolicy> {
        self.cache
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The policy to mask with now: the cached one, after comparing it with the stored
    /// current version when the refresh interval has passed since the last comparison.
    ///
    /// # Errors
    /// When that comparison fails (the caller retries later); nothing is cached then.
    pub async fn current(&self) -> Result<Arc<MaskingPolicy>, PolicyStoreError> {
        if !self.due() {
            return Ok(self.cached());
        }
        match self.refresh().await {
            Ok(p) => Ok(p),
            Err(e) => {
                // Compare again on the next call rather than after a whole interval.
                *self.cache.checked.lock().unwrap_or_else(PoisonError::into_inner) = None;
                Err(e)
            }
        }
    }

    /// Whether a comparison is due; if so, marks it done now (one caller at a time compares).
    fn due(&self) -> bool {
        let every = Duration::from_millis(self.cache.refresh_ms.load(Ordering::Relaxed));
        let mut checked = self.cache.checked.lock().unwrap_or_else(PoisonError::into_inner);
        match *checked {
            Some(at) if at.elapsed() < every => false,
            _ => {
                *checked = Some(Instant::now());
                true
            }
        }
    }

    async fn refresh(&self) -> Result<Arc<MaskingPolicy>, PolicyStoreError> {
        let cached = self.cached();
        let Some(latest) = self.current_version().await? else {
            return Ok(cached);
        };
        if latest > cached.version() {
            let stored = self.get(latest).await?.ok_or(PolicyStoreError::Corrupt {
                version: i64::from(latest),
                what: "listed as the current version but not found".into(),
            })?;
            tracing::info!(
                from = cached.version(),
                to = latest,
                "masking policy version changed; masking with the new version from now on"
            );
            return Ok(self.offer(stored.policy));
        }
        if latest < cached.version() {
            tracing::warn!(
                cached = cached.version(),
                stored = latest,
                "the stored current masking policy version is lower than the one in use; keeping it"
            );
        }
        Ok(cached)
    }

    /// Takes `policy` unless a higher version is cached already; returns the cached one.
    fn offer(&self, policy: Arc<MaskingPolicy>) -> Arc<MaskingPolicy> {
        let mut current = self.cache.current.write().unwrap_or_else(PoisonError::into_inner);
        if policy.version() > current.version() {
            *current = policy;
        }
        current.clone()
    }

    /// The highest stored version (`None` only before [`PolicyStore::open`] stored version 1).
    ///
    /// # Errors
    /// When the database fails.
    pub async fn current_version(&self) -> Result<Option<u32>, PolicyStoreError> {
        let max: Option<Option<i64>> = masking_policy::Entity::find()
            .select_only()
            .column_as(masking_policy::Column::Version.max(), "v")
            .into_tuple()
            .one(&self.db)
            .await?;
        match max.flatten() {
            None => Ok(None),
            Some(v) => u32::try_from(v).map(Some).map_err(|_| PolicyStoreError::Corrupt {
                version: v,
                what: "not a version number".into(),
            }),
        }
    }

    /// Every stored version, newest first.
    ///
    /// # Errors
    /// When the database fails or a row is corrupt.
    pub async fn list(&self) -> Result<Vec<PolicyVersion>, PolicyStoreError> {
        let rows = masking_policy::Entity::find()
            .select_only()
            .columns([
                masking_policy::Column::Version,
                masking_policy::Column::Description,
                masking_policy::Column::Sha256,
                masking_policy::Column::CreatedBy,
                masking_policy::Column::CreatedByOrg,
                masking_policy::Column::CreatedAt,
            ])
            .order_by_desc(masking_policy::Column::Version)
            .into_tuple::<(
                i64,
                Option<String>,
                String,
                String,
                Option<uuid::Uuid>,
                DateTime<Utc>,
            )>()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|(version, description, sha256, created_by, org, created_at)| {
                Ok(PolicyVersion {
                    version: version_of(version)?,
                    description,
                    sha256,
                    created_by,
                    created_by_org: org.map(OrgId::from_uuid),
                    created_at,
                })
            })
            .collect()
    }

    /// Version `version` with its document; `None` when there is none.
    ///
    /// # Errors
    /// When the database fails or the row does not check out.
    pub async fn get(&self, version: u32) -> Result<Option<StoredPolicy>, PolicyStoreError> {
        match masking_policy::Entity::find_by_id(i64::from(version))
            .one(&self.db)
            .await?
        {
            Some(m) => Ok(Some(stored(m)?)),
            None => Ok(None),
        }
    }

    /// The current version with its document.
    ///
    /// # Errors
    /// When the database fails or the row does not check out.
    pub async fn current_stored(&self) -> Result<Option<StoredPolicy>, PolicyStoreError> {
        let row = masking_policy::Entity::find()
            .order_by_desc(masking_policy::Column::Version)
            .limit(1)
            .one(&self.db)
            .await?;
        row.map(stored).transpose()
    }

    /// Checks `doc` as [`PolicyStore::publish`] would, storing nothing.
    ///
    /// # Errors
    /// [`PublishError::Invalid`] with every violation; [`PublishError::Conflict`] when its
    /// version is not the current version + 1; [`PublishError::Store`].
    pub async fn check(&self, doc: &Value) -> Result<MaskingPolicy, PublishError> {
        let policy = MaskingPolicy::from_value(doc).map_err(|e| PublishError::Invalid(e.violations))?;
        let current = self.current_version().await?.unwrap_or(0);
        if u64::from(policy.version()) != u64::from(current) + 1 {
            return Err(PublishError::Conflict {
                current,
                proposed: policy.version(),
            });
        }
        Ok(policy)
    }

    /// Validates `doc` and stores it as the next version, which the consumer of this process
    /// applies at once (other processes within their refresh interval). Records stored before
    /// keep the version they were masked with.
    ///
    /// # Errors
    /// [`PublishError::Invalid`] with every violation; [`PublishError::Conflict`] when its
    /// version is not the current version + 1 (also when another version was published
    /// meanwhile); [`PublishError::Store`].
    pub async fn publish(
        &self,
        doc: &Value,
        author: Author<'_>,
        now: DateTime<Utc>,
    ) -> Result<StoredPolicy, PublishError> {
        let policy = MaskingPolicy::from_value(doc).map_err(|e| PublishError::Invalid(e.violations))?;
        let canonical = etx_domain::canonical_json::to_vec(doc);
        let row = masking_policy::ActiveModel {
            version: Set(i64::from(policy.version())),
            document: Set(String::from_utf8_lossy(&canonical).into_owned()),
            description: Set(policy.description().map(str::to_owned)),
            sha256: Set(sha256_hex(&canonical)),
            created_by: Set(author.subject.to_owned()),
            created_by_org: Set(author.org_id.map(|o| o.as_uuid())),
            created_at: Set(now),
        };
        let txn = etx_storage::begin_write(&self.db).await?;
        let current: Option<Option<i64>> = masking_policy::Entity::find()
            .select_only()
            .column_as(masking_policy::Column::Version.max(), "v")
            .into_tuple()
            .one(&txn)
            .await?;
        let current = current.flatten().unwrap_or(0);
        if i64::from(policy.version()) != current + 1 {
            return Err(PublishError::Conflict {
                current: u32::try_from(current).unwrap_or(u32::MAX),
                proposed: policy.version(),
            });
        }
        let inserted = masking_policy::Entity::insert(row)
            .exec_without_returning(&txn)
            .await;
        match inserted {
            Ok(_) => txn.commit().await?,
            Err(e) if etx_storage::is_unique_violation(&e) => {
                drop(txn);
                // Another editor published this version between our read and our insert.
                let current = self.current_version().await?.unwrap_or(0);
                return Err(PublishError::Conflict {
                    current,
                    proposed: policy.version(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        let stored = self
            .get(policy.version())
            .await?
            .ok_or(PolicyStoreError::Corrupt {
                version: i64::from(policy.version()),
                what: "not found right after it was stored".into(),
            })?;
        self.offer(stored.policy.clone());
        tracing::info!(
            version = stored.meta.version,
            by = %stored.meta.created_by,
            sha256 = %stored.meta.sha256,
            "masking policy version published"
        );
        Ok(stored)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn version_of(v: i64) -> Result<u32, PolicyStoreError> {
    u32::try_from(v)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or(PolicyStoreError::Corrupt {
            version: v,
            what: "not a version number".into(),
        })
}

/// A row as a checked [`StoredPolicy`].
fn stored(m: masking_policy::Model) -> Result<StoredPolicy, PolicyStoreError> {
    let version = version_of(m.version)?;
    let corrupt = |what: String| PolicyStoreError::Corrupt {
        version: m.version,
        what,
    };
    if sha256_hex(m.document.as_bytes()) != m.sha256 {
        return Err(corrupt("the document does not match its SHA-256".into()));
    }
    let document: Value =
        serde_json::from_str(&m.document).map_err(|e| corrupt(format!("the document is not JSON: {e}")))?;
    let policy = MaskingPolicy::from_value(&document).map_err(|e| corrupt(e.to_string()))?;
    if policy.version() != version {
        return Err(corrupt(format!(
            "the document names version {}",
            policy.version()
        )));
    }
    Ok(StoredPolicy {
        meta: PolicyVersion {
            version,
            description: m.description,
            sha256: m.sha256,
            created_by: m.created_by,
            created_by_org: m.created_by_org.map(OrgId::from_uuid),
            created_at: m.created_at,
        },
        document,
        policy: Arc::new(policy),
    })
}
