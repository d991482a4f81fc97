//! The pipeline's adapters, composed here because they join two services (issue 5 §1): the
//! masking stage reads received records from ingestion's store through masking core's
//! [`RecordSource`] port, and its token keys come from the configured secrets.

use crate::secrets::Secrets;
use anyhow::Context;
use etx_crypto::Aad;
use etx_crypto::{KeyedHasher, MasterKey};
use etx_domain::RecordId;
use etx_domain::{ContentHash, OrgId};
use etx_ingestion::KeyManager;
use etx_masking_core::{PayloadVault, RecordSource, SourceError, SourceRecord, TokenKeys};
use etx_reconciliation_core::inputs::{InputError, MaskedSource};
use etx_reconciliation_core::record::{IncomingRecord, MatchTokens, SourceRef};
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
    tweak: u128,
}

/// XORed into a record id to name its masked copy in the associated data.
pub const MASKED_COPY_TWEAK: u128 = 0x6d61_736b_6564_2d63_6f70_792d_7631_0000;
/// XORed into an id to name reconciliation's sealed copies (canonical records, contributions,
/// conflicts), so they never open as a masked copy or a record.
pub const RECONCILED_TWEAK: u128 = 0x7265_636f_6e63_696c_6564_2d76_3100_0000;

impl DataKeyVault {
    /// A vault over `keys` (which must have an active data key to seal) whose associated data
    /// is the id XORed with `tweak` (one per kind of sealed copy).
    pub fn new(keys: KeyManager, tweak: u128) -> Self {
        Self { keys, tweak }
    }

    fn aad(&self, org: OrgId, record: RecordId) -> Aad {
        Aad {
            org_id: org.as_uuid(),
            record_id: uuid::Uuid::from_u128(record.as_uuid().as_u128() ^ self.tweak),
        }
    }
}

#[async_trait::async_trait]
impl PayloadVault for DataKeyVault {
    async fn seal(&self, org: OrgId, record: RecordId, plain: &[u8]) -> Result<Vec<u8>, SourceError> {
        let sealed = self
            .keys
            .ring()
            .encrypt(&self.aad(org, record), plain)
            .map_err(|e| SourceError::Unknown(e.into()))?;
        self.keys
            .rotate_if_needed()
            .await
            .map_err(|e| SourceError::Unavailable(e.to_string()))?;
        Ok(sealed)
    }

    async fn open(&self, org: OrgId, record: RecordId, sealed: &[u8]) -> Result<Vec<u8>, SourceError> {
        self.keys
            .decrypt(&self.aad(org, record), sealed)
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

/// Masking's store as reconciliation's source (issue 5 §4): the masked copy and its match
/// tokens, ingestion's keyed content hash (so a re-sent record is recognised whatever the
/// masking policy) and, from the organisation hierarchy, the submitter's kind and — for a
/// province or one of its departments — the province it reports for.
pub struct MaskedRecords {
    db: DatabaseConnection,
    masked: etx_masking::MaskedStore,
    orgs: etx_identity::store::SeaIdentityStore,
}

impl std::fmt::Debug for MaskedRecords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskedRecords").finish_non_exhaustive()
    }
}

impl MaskedRecords {
    /// A source over `db`, opening masked copies with `vault` (masking's).
    pub fn new(db: DatabaseConnection, vault: std::sync::Arc<dyn PayloadVault>) -> Self {
        Self {
            masked: etx_masking::MaskedStore::new(db.clone(), vault),
            orgs: etx_identity::store::SeaIdentityStore::new(db.clone()),
            db,
        }
    }

    /// The kind of `org` and, for a province or a provincial department, the code of its
    /// province (the nearest province above or at it, when that code is a province number).
    async fn org_facts(
        &self,
        org: OrgId,
    ) -> Result<
        (
            etx_domain::OrgKind,
            Option<etx_reconciliation_core::record::ProvinceCode>,
        ),
        InputError,
    > {
        use etx_domain::OrgKind;
        use etx_identity_core::IdentityStore as _;
        let unavailable = |e: etx_identity_core::StoreError| InputError::Unavailable(e.to_string());
        let found = self.orgs.org_by_id(org).await.map_err(unavailable)?;
        let Some(o) = found else {
            return Err(InputError::Unknown(anyhow::anyhow!(
                "organisation {org} is unknown"
            )));
        };
        let kind = o.kind;
        if !matches!(kind, OrgKind::Province | OrgKind::ProvincialDepartment) {
            return Ok((kind, None));
        }
        let mut cur = Some(o);
        for _ in 0..8 {
            let Some(c) = cur else { break };
            if c.kind == OrgKind::Province {
                return Ok((
                    kind,
                    etx_reconciliation_core::record::ProvinceCode::parse(c.code.as_str()).ok(),
                ));
            }
            cur = match c.parent {
                Some(p) => self.orgs.org_by_id(p).await.map_err(unavailable)?,
                None => None,
            };
        }
        Ok((kind, None))
    }
}

#[async_trait::async_trait]
impl MaskedSource for MaskedRecords {
    async fn fetch(&self, ids: &[RecordId]) -> Result<Vec<IncomingRecord>, InputError> {
        let macs = etx_ingestion::store::content_macs(&self.db, ids)
            .await
            .map_err(|e| InputError::Unavailable(e.to_string()))?;
        let mut orgs = std::collections::HashMap::new();
        let mut out = Vec::with_capacity(ids.len());
        let found = self.masked.masked_many(ids).await.map_err(|e| match e {
            etx_masking::ReadError::Database(e) => InputError::Unavailable(e.to_string()),
            other => InputError::Unknown(anyhow::anyhow!(other.to_string())),
        })?;
        // Not masked yet, or held by masking: absent (the delivery is retried).
        for m in found {
            if m.status != etx_masking::MaskStatus::Masked {
                continue;
            }
            let id = &m.record_id;
            let Some(payload) = m.payload else { continue };
            let tokens = MatchTokens::try_from(m.match_tokens)
                .map_err(|e| InputError::Unknown(anyhow::anyhow!("match tokens of {id}: {e}")))?;
            let content = macs
                .get(id)
                .map(|mac| ContentHash::from_bytes(*mac))
                .unwrap_or_else(|| IncomingRecord::content_of(&payload, &tokens));
            let facts = match orgs.get(&m.org_id) {
                Some(f) => *f,
                None => {
                    let f = self.org_facts(m.org_id).await?;
                    orgs.insert(m.org_id, f);
                    f
                }
            };
            out.push(IncomingRecord {
                record_id: m.record_id,
                source: SourceRef {
                    org_id: m.org_id,
                    org_kind: facts.0,
                    system_id: m.system_id,
                    receipt_id: m.receipt_id,
                },
                category: m.category,
                schema_version: m.schema_version,
                period: m.period,
                received_at: m.received_at,
                masking_policy_version: m.policy_version,
                form: m.form,
                payload,
                match_tokens: tokens,
                content,
                reporter_territory: facts.1,
            });
        }
        Ok(out)
    }
}
