//! Data-key management over the key ring (R-SEC-5): every process encrypts with a data key of
//! its own, created and persisted (wrapped) at start and replaced long before its nonce budget
//! runs out; keys of other processes and of the past are loaded on demand to decrypt.

use super::entities::data_key;
use chrono::Utc;
use etx_crypto::{CryptoError, KeyRing, WrappedDataKey};
use sea_orm::{ActiveModelTrait, DatabaseConnection, DbErr, EntityTrait, Set};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Keeps the ring's active data key persisted and fresh.
#[derive(Debug, Clone)]
pub struct KeyManager {
    db: DatabaseConnection,
    ring: Arc<KeyRing>,
    rotating: Arc<Mutex<()>>,
}

/// Errors of key management.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Database failure.
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// Crypto failure (unknown master key, corrupt wrapped key).
    #[error("crypto: {0}")]
    Crypto(#[from] CryptoError),
}

impl KeyManager {
    /// A manager for `ring`, persisting to `db`.
    pub fn new(db: DatabaseConnection, ring: Arc<KeyRing>) -> Self {
        Self {
            db,
            ring,
            rotating: Arc::new(Mutex::new(())),
        }
    }

    /// The ring.
    pub fn ring(&self) -> &Arc<KeyRing> {
        &self.ring
    }

    /// Creates, persists and activates a new data key.
    pub async fn rotate(&self) -> Result<uuid::Uuid, KeyError> {
        let _guard = self.rotating.lock().await;
        let wrapped = self.ring.new_data_key();
        data_key::ActiveModel {
            id: Set(wrapped.id),
            master_key_id: Set(wrapped.master_key_id.clone()),
            wrapped: Set(wrapped.wrapped.clone()),
            created_at: Set(Utc::now()),
        }
        .insert(&self.db)
        .await?;
        self.ring.load(&wrapped)?;
        self.ring.activate(wrapped.id)?;
        tracing::info!(key_id = %wrapped.id, "new data key active");
        Ok(wrapped.id)
    }

    /// Rotates when the active key has reached its use budget (called after encrypting).
    pub async fn rotate_if_needed(&self) -> Result<(), KeyError> {
        if self.ring.needs_rotation() {
            let _guard = self.rotating.lock().await;
            // Another task may have rotated while we waited.
            if self.ring.needs_rotation() {
                drop(_guard);
                self.rotate().await?;
            }
        }
        Ok(())
    }

    /// Loads a stored data key into the ring (to decrypt data written by another process).
    pub async fn load(&self, id: uuid::Uuid) -> Result<bool, KeyError> {
        if self.ring.has_data_key(id) {
            return Ok(true);
        }
        let Some(m) = data_key::Entity::find_by_id(id).one(&self.db).await? else {
            return Ok(false);
        };
        self.ring.load(&WrappedDataKey {
            id: m.id,
            master_key_id: m.master_key_id,
            wrapped: m.wrapped,
        })?;
        Ok(true)
    }

    /// Decrypts `blob`, loading its data key from the database first when this process has not
    /// seen it (data written by another process or before a restart).
    pub async fn decrypt(&self, aad: &etx_crypto::Aad, blob: &[u8]) -> anyhow::Result<Vec<u8>> {
        match self.ring.decrypt(aad, blob) {
            Err(CryptoError::UnknownDataKey(k)) => {
                self.load(k).await?;
                Ok(self.ring.decrypt(aad, blob)?)
            }
            other => Ok(other?),
        }
    }

    /// Re-wraps every stored data key under the active master key (master-key rotation without
    /// downtime: data is not re-encrypted, old master keys can then be retired from config).
    /// Returns how many keys were re-wrapped.
    pub async fn rewrap_all(&self) -> Result<usize, KeyError> {
        let all = data_key::Entity::find().all(&self.db).await?;
        let mut n = 0;
        for m in all {
            if m.master_key_id == self.ring.active_master_id() {
                continue;
            }
            let new = self.ring.rewrap(&WrappedDataKey {
                id: m.id,
                master_key_id: m.master_key_id.clone(),
                wrapped: m.wrapped.clone(),
            })?;
            let mut am: data_key::ActiveModel = m.into();
            am.master_key_id = Set(new.master_key_id);
            am.wrapped = Set(new.wrapped);
            am.update(&self.db).await?;
            n += 1;
        }
        Ok(n)
    }
}
