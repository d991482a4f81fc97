//! The pipeline's adapters, composed here because they join two services (issue 5 §1): the
//! masking stage reads received records from ingestion's store through masking core's
//! [`RecordSource`] port, and its token keys come from the configured secrets.

use crate::secrets::Secrets;
use anyhow::Context;
use etx_crypto::Aad;
use etx_crypto::{KeyedHasher, MasterKey};
use etx_domain::OrgId;
use etx_domain::RecordId;
use etx_ingestion::KeyManager;
use etx_masking_core::{PayloadVault, RecordSource, SourceError, SourceRecord, TokenKeys};
use sea_orm::DatabaseConnection;

/// Ingestion's record store as the masking stage's source: rows read by id on the database
/// ingestion writes (the process's own in all-in-one, the shared one when distributed) and
/// decrypted in memory with ingestion's data keys.
#[derive(Debug, Clone)]
pub struct IngestionRecords {
    db: DatabaseConnection,
    keys: KeyManager,
}

impl IngestionRecords {
    /// A source over `db`, decrypting with `keys`.
    pub fn new(db: DatabaseConnection, keys: KeyManager) -> Self {
        Self { db, keys }
    }
}

#[async_trait::async_trait]
impl RecordSource for IngestionRecords {
    async fn fetch(&self, ids: &[RecordId]) -> Result<Vec<SourceRecord>, SourceError> {
        let records = etx_ingestion::store::records_by_ids(&self.db, &self.keys, ids)
            .await
            .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        Ok(records
            .into_iter()
            .map(|r| SourceRecord {
                id: r.id,
                envelope: r.envelope,
                provenance: r.provenance,
                payload: r.payload,
            })
            .collect())
    }
}

/// Masked copies encrypted with ingestion's data keys (the same key ring and rotation). The
/// associated data names the masked copy, not the record: the record id is tweaked by a
/// constant, so a masked copy's ciphertext never opens as the record's and vice versa.
#[derive(Debug, Clone)]
pub struct DataKeyVault {
    keys: KeyManager,
}

/// XORed into a record id to name its masked copy in the associated data.
const MASKED_COPY_TWEAK: u128 = 0x6d61_736b_6564_2d63_6f70_792d_7631_0000;

impl DataKeyVault {
    /// A vault over `keys` (which must have an active data key to seal).
    pub fn new(keys: KeyManager) -> Self {
        Self { keys }
    }

    fn aad(org: OrgId, record: RecordId) -> Aad {
        Aad {
            org_id: org.as_uuid(),
            record_id: uuid::Uuid::from_u128(record.as_uuid().as_u128() ^ MASKED_COPY_TWEAK),
        }
    }
}

#[async_trait::async_trait]
impl PayloadVault for DataKeyVault {
    async fn seal(&self, org: OrgId, record: RecordId, plain: &[u8]) -> Result<Vec<u8>, SourceError> {
        let sealed = self
            .keys
            .ring()
            .encrypt(&Self::aad(org, record), plain)
            .map_err(|e| SourceError::Unknown(e.into()))?;
        self.keys
            .rotate_if_needed()
            .await
            .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        Ok(sealed)
    }

    async fn open(&self, org: OrgId, record: RecordId, sealed: &[u8]) -> Result<Vec<u8>, SourceError> {
        self.keys
            .decrypt(&Self::aad(org, record), sealed)
            .await
            .map_err(SourceError::Unknown)
    }
}

/// The masking token keys (R-SEC-10): `security.masking_key` when configured (base64 of 32
/// bytes), else derived from the keyed-hash key under its own label — one secret fewer to
/// manage, and still apart from the storage master key, so rotating that key never changes a
/// token.
pub fn masking_keys(cfg: &crate::config::Config, secrets: &Secrets) -> anyhow::Result<TokenKeys> {
    let key = cfg.security.masking_key.expose();
    let master = if key.trim().is_empty() {
        let derived = KeyedHasher::new(&secrets.hmac_key).hash("etxhub/masking-master/v1", b"");
        MasterKey::from_base64("mk-masking", &base64_of(&derived)).context("derived masking key")?
    } else {
        MasterKey::from_base64("mk-masking", key.trim()).context("security.masking_key")?
    };
    Ok(TokenKeys::new(master))
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
