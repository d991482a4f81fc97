//! The key ring: envelope encryption of stored records with AES-256-GCM data keys wrapped under
//! master keys (R-SEC-5), with data-key and master-key rotation.
//!
//! Blob format (version 1):
//!
//! ```text
//! "ETX" | 0x01 | data key id (16) | nonce (12, random) | ciphertext | tag (16)
//! ```
//!
//! The AEAD associated data is `"etxhub/record/v1" | 0x00 | version | org id | record id | key id`,
//! all fixed-width, so a blob only decrypts for the organisation and record it was written for.
//! A wrapped data key is `nonce (12) | encrypted key (32) | tag (16)` under the master key, with
//! associated data `"etxhub/data-key/v1" | 0x00 | master key id | 0x00 | data key id`, so a wrapped
//! key cannot be relabelled with another id.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, Key, KeyInit, Nonce, Tag};
use subtle::ConstantTimeEq;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::{CryptoError, MasterKey, random};

/// Encryptions after which [`KeyRing::needs_rotation`] asks for a new data key: well before the
/// 2^32 bound on random 96-bit nonces per key (NIST SP 800-38D §8.3).
pub const DATA_KEY_MAX_USES: u64 = 1 << 28;

/// Encryptions after which [`KeyRing::encrypt`] refuses to use the active data key at all.
pub const DATA_KEY_HARD_LIMIT: u64 = 1 << 31;

/// The blob format version written by [`KeyRing::encrypt`].
pub const FORMAT_VERSION: u8 = 1;

/// Bytes a blob adds to its plaintext: header (20) + nonce (12) + tag (16).
pub const BLOB_OVERHEAD: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;

const MAGIC: &[u8; 3] = b"ETX";
const HEADER_LEN: usize = MAGIC.len() + 1 + 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const DATA_KEY_LEN: usize = 32;
const WRAPPED_LEN: usize = NONCE_LEN + DATA_KEY_LEN + TAG_LEN;
const RECORD_LABEL: &[u8] = b"etxhub/record/v1";
const WRAP_LABEL: &[u8] = b"etxhub/data-key/v1";

/// What a blob is bound to: the organisation and the record it belongs to.
///
/// Decrypting with any other pair fails with [`CryptoError::Decrypt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aad {
    /// The organisation that owns the record.
    pub org_id: Uuid,
    /// The record the blob is stored in.
    pub record_id: Uuid,
}

impl Aad {
    /// Binds a blob to `org_id` and `record_id`.
    pub fn new(org_id: Uuid, record_id: Uuid) -> Self {
        Self { org_id, record_id }
    }
}

/// A data key in wrapped (storable) form: encrypted under a master key with AES-256-GCM.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WrappedDataKey {
    /// The data key id, also written in the header of every blob it encrypts.
    pub id: Uuid,
    /// Id of the master key that wrapped it.
    pub master_key_id: String,
    /// `nonce (12) || encrypted key (32) || tag (16)`.
    pub wrapped: Vec<u8>,
}

/// An unwrapped data key; the raw bytes and the AES key schedule are zeroized on drop.
struct DataKey {
    key: Zeroizing<[u8; DATA_KEY_LEN]>,
    cipher: Aes256Gcm,
}

impl DataKey {
    fn new(key: Zeroizing<[u8; DATA_KEY_LEN]>) -> Self {
        let cipher = cipher_for(&key);
        Self { key, cipher }
    }
}

/// The data key used by `encrypt`, with the number of messages it has encrypted.
struct ActiveKey {
    id: Uuid,
    key: Arc<DataKey>,
    uses: AtomicU64,
}

/// The key ring: master keys (one active, older ones kept so that wrapped keys made under them
/// can still be unwrapped) and unwrapped data keys in memory.
///
/// Thread-safe (all methods take `&self`) and cheap to share in an `Arc`.
///
/// # Use-count limits
///
/// Data keys use random 96-bit nonces, which are safe for about 2^32 messages per key. The ring
/// counts encryptions per activation: [`KeyRing::needs_rotation`] turns true after
/// [`DATA_KEY_MAX_USES`] and [`KeyRing::encrypt`] fails after [`DATA_KEY_HARD_LIMIT`]. The count lives
/// in memory only, so each process should create, persist and activate its own data key at start
/// (keys are cheap), rather than share one active key between processes or across restarts.
pub struct KeyRing {
    active_master: MasterKey,
    masters: HashMap<String, MasterKey>,
    data_keys: RwLock<HashMap<Uuid, Arc<DataKey>>>,
    active: RwLock<Option<Arc<ActiveKey>>>,
    max_uses: u64,
    hard_limit: u64,
}

impl KeyRing {
    /// `active` wraps new data keys; `previous` only unwrap.
    ///
    /// Should an id appear twice, the active key wins, then the first of `previous`; use
    /// [`KeyRing::try_new`] to refuse such a configuration instead.
    pub fn new(active: MasterKey, previous: Vec<MasterKey>) -> Self {
        let mut masters = HashMap::with_capacity(previous.len() + 1);
        masters.insert(active.id().to_owned(), active.clone());
        for key in previous {
            masters.entry(key.id().to_owned()).or_insert(key);
        }
        Self {
            active_master: active,
            masters,
            data_keys: RwLock::new(HashMap::new()),
            active: RwLock::new(None),
            max_uses: DATA_KEY_MAX_USES,
            hard_limit: DATA_KEY_HARD_LIMIT,
        }
    }

    /// Like [`KeyRing::new`], but refuses two different master keys under one id.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] naming the duplicated id.
    pub fn try_new(active: MasterKey, previous: Vec<MasterKey>) -> Result<Self, CryptoError> {
        let mut seen: HashMap<&str, &MasterKey> = HashMap::from([(active.id(), &active)]);
        for key in &previous {
            if let Some(other) = seen.insert(key.id(), key)
                && !bool::from(other.bytes().ct_eq(key.bytes()))
            {
                return Err(CryptoError::InvalidKey(format!(
                    "two different master keys share the id {:?}",
                    key.id()
                )));
            }
        }
        Ok(Self::new(active, previous))
    }

    /// Lowers the use-count limits (for tests, or for a stricter policy). Values above
    /// [`DATA_KEY_MAX_USES`] / [`DATA_KEY_HARD_LIMIT`] are capped to them, and `max_uses` to
    /// `hard_limit`.
    #[must_use]
    pub fn with_limits(mut self, max_uses: u64, hard_limit: u64) -> Self {
        self.hard_limit = hard_limit.min(DATA_KEY_HARD_LIMIT);
        self.max_uses = max_uses.min(DATA_KEY_MAX_USES).min(self.hard_limit);
        self
    }

    /// The id of the master key that wraps new data keys.
    pub fn active_master_id(&self) -> &str {
        self.active_master.id()
    }

    /// Creates a fresh random data key, wraps it under the active master key, loads it, and
    /// returns the wrapped form.
    ///
    /// The new key is NOT used for encryption until [`KeyRing::activate`] is called: callers
    /// persist the wrapped key first, so no blob can exist whose key is not stored.
    pub fn new_data_key(&self) -> WrappedDataKey {
        let id = Uuid::new_v4();
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        random::fill(&mut key[..]);
        let wrapped = wrap(&self.active_master, id, &key);
        write(&self.data_keys).insert(id, Arc::new(DataKey::new(key)));
        wrapped
    }

    /// Unwraps (verifying) and loads a stored data key so it can decrypt; idempotent.
    ///
    /// # Errors
    /// * [`CryptoError::UnknownMasterKey`] when its master key is not in this ring;
    /// * [`CryptoError::Malformed`] when `wrapped` has the wrong length;
    /// * [`CryptoError::Decrypt`] when it does not authenticate (tampered, or relabelled id);
    /// * [`CryptoError::InvalidKey`] when a different key with the same id is already loaded.
    pub fn load(&self, k: &WrappedDataKey) -> Result<(), CryptoError> {
        let key = self.unwrap(k)?;
        let mut keys = write(&self.data_keys);
        if let Some(existing) = keys.get(&k.id) {
            if bool::from(existing.key.ct_eq(&*key)) {
                return Ok(());
            }
            return Err(CryptoError::InvalidKey(format!(
                "a different data key with id {} is already loaded",
                k.id
            )));
        }
        keys.insert(k.id, Arc::new(DataKey::new(key)));
        Ok(())
    }

    /// Makes a loaded key the one used by [`KeyRing::encrypt`], and resets its use counter.
    ///
    /// # Errors
    /// [`CryptoError::UnknownDataKey`] when the key is not loaded.
    pub fn activate(&self, id: Uuid) -> Result<(), CryptoError> {
        let key = read(&self.data_keys)
            .get(&id)
            .cloned()
            .ok_or(CryptoError::UnknownDataKey(id))?;
        *write(&self.active) = Some(Arc::new(ActiveKey {
            id,
            key,
            uses: AtomicU64::new(0),
        }));
        Ok(())
    }

    /// The id of the data key used by [`KeyRing::encrypt`], if any.
    pub fn active_data_key_id(&self) -> Option<Uuid> {
        read(&self.active).as_ref().map(|a| a.id)
    }

    /// How many messages the active data key has encrypted since it was activated.
    pub fn active_data_key_uses(&self) -> Option<u64> {
        read(&self.active)
            .as_ref()
            .map(|a| a.uses.load(Ordering::Relaxed))
    }

    /// Whether the data key `id` is loaded.
    pub fn has_data_key(&self, id: Uuid) -> bool {
        read(&self.data_keys).contains_key(&id)
    }

    /// True once the active key has encrypted [`DATA_KEY_MAX_USES`] messages (or there is no
    /// active key); callers then create, persist and activate a new key. `encrypt` keeps working
    /// until the hard limit.
    pub fn needs_rotation(&self) -> bool {
        match read(&self.active).as_ref() {
            Some(active) => active.uses.load(Ordering::Relaxed) >= self.max_uses,
            None => true,
        }
    }

    /// Re-wraps a stored data key under the active master key (master-key rotation without
    /// re-encrypting data). The key id is kept; the key need not be loaded.
    ///
    /// # Errors
    /// As [`KeyRing::load`] for unwrapping `k`.
    pub fn rewrap(&self, k: &WrappedDataKey) -> Result<WrappedDataKey, CryptoError> {
        let key = self.unwrap(k)?;
        Ok(wrap(&self.active_master, k.id, &key))
    }

    /// Encrypts with the active data key, binding the blob to `aad`.
    ///
    /// Output = header (`"ETX"`, version 1, 16-byte data key id) || nonce (12, random) ||
    /// ciphertext || tag. Blobs are [`BLOB_OVERHEAD`] bytes longer than the plaintext.
    ///
    /// # Errors
    /// * [`CryptoError::NoActiveDataKey`] before any key is activated;
    /// * [`CryptoError::DataKeyExhausted`] once the active key reached [`DATA_KEY_HARD_LIMIT`];
    /// * [`CryptoError::Malformed`] for a plaintext over AES-GCM's 64 GiB limit.
    pub fn encrypt(&self, aad: &Aad, plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let active = read(&self.active).clone().ok_or(CryptoError::NoActiveDataKey)?;
        active
            .uses
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.hard_limit).then_some(n + 1)
            })
            .map_err(|_| CryptoError::DataKeyExhausted(active.id))?;

        let nonce: [u8; NONCE_LEN] = random::array();
        let mut out = Vec::with_capacity(BLOB_OVERHEAD + plaintext.len());
        out.extend_from_slice(MAGIC);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(active.id.as_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        let tag = active
            .key
            .cipher
            .encrypt_inout_detached(
                &Nonce::<Aes256Gcm>::from(nonce),
                &record_aad(aad, active.id),
                (&mut out[HEADER_LEN + NONCE_LEN..]).into(),
            )
            .map_err(|_| CryptoError::Malformed("plaintext exceeds the AES-GCM length limit".into()))?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts any blob whose data key is loaded.
    ///
    /// # Errors
    /// * [`CryptoError::Malformed`] when the blob is too short or its header is not ours;
    /// * [`CryptoError::UnknownDataKey`] when its key is not loaded (callers load it from storage
    ///   and retry);
    /// * [`CryptoError::Decrypt`] when the tag does not verify: tampered bytes, or an `aad` other
    ///   than the one it was written with (e.g. a blob moved to another record or organisation).
    pub fn decrypt(&self, aad: &Aad, blob: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let id = Self::key_id_of(blob)?;
        let key = read(&self.data_keys)
            .get(&id)
            .cloned()
            .ok_or(CryptoError::UnknownDataKey(id))?;
        let (nonce, rest) = split(&blob[HEADER_LEN..], NONCE_LEN)?;
        let (ciphertext, tag) = split(rest, rest.len() - TAG_LEN)?;
        let nonce = <&Nonce<Aes256Gcm>>::try_from(nonce).map_err(|_| malformed("bad nonce length"))?;
        let tag = <&Tag<Aes256Gcm>>::try_from(tag).map_err(|_| malformed("bad tag length"))?;
        let mut plaintext = ciphertext.to_vec();
        key.cipher
            .decrypt_inout_detached(nonce, &record_aad(aad, id), (&mut plaintext[..]).into(), tag)
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(plaintext)
    }

    /// Reads the data key id out of a blob header without decrypting.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] when the blob is shorter than [`BLOB_OVERHEAD`], does not start
    /// with `"ETX"`, or has a format version other than [`FORMAT_VERSION`].
    pub fn key_id_of(blob: &[u8]) -> Result<Uuid, CryptoError> {
        if blob.len() < BLOB_OVERHEAD {
            return Err(malformed("blob is shorter than its fixed overhead"));
        }
        let (magic, rest) = split(blob, MAGIC.len())?;
        if magic != MAGIC {
            return Err(malformed("blob does not start with the ETX magic"));
        }
        let (version, rest) = split(rest, 1)?;
        if version != [FORMAT_VERSION] {
            return Err(CryptoError::Malformed(format!(
                "unsupported blob format version {version:?}"
            )));
        }
        let (id, _) = split(rest, 16)?;
        let id: [u8; 16] = id.try_into().map_err(|_| malformed("bad key id length"))?;
        Ok(Uuid::from_bytes(id))
    }

    /// Unwraps `k` with the master key it names.
    fn unwrap(&self, k: &WrappedDataKey) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, CryptoError> {
        let master = self
            .masters
            .get(&k.master_key_id)
            .ok_or_else(|| CryptoError::UnknownMasterKey(k.master_key_id.clone()))?;
        if k.wrapped.len() != WRAPPED_LEN {
            return Err(CryptoError::Malformed(format!(
                "wrapped data key must be {WRAPPED_LEN} bytes, got {}",
                k.wrapped.len()
            )));
        }
        let (nonce, rest) = split(&k.wrapped, NONCE_LEN)?;
        let (encrypted, tag) = split(rest, DATA_KEY_LEN)?;
        let nonce = <&Nonce<Aes256Gcm>>::try_from(nonce).map_err(|_| malformed("bad nonce length"))?;
        let tag = <&Tag<Aes256Gcm>>::try_from(tag).map_err(|_| malformed("bad tag length"))?;
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        key.copy_from_slice(encrypted);
        master
            .cipher()
            .decrypt_inout_detached(nonce, &wrap_aad(master.id(), k.id), (&mut key[..]).into(), tag)
            .map_err(|_| CryptoError::Decrypt)?;
        Ok(key)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut master_ids: Vec<&str> = self.masters.keys().map(String::as_str).collect();
        master_ids.sort_unstable();
        f.debug_struct("KeyRing")
            .field("active_master_id", &self.active_master_id())
            .field("master_ids", &master_ids)
            .field("data_keys_loaded", &read(&self.data_keys).len())
            .field("active_data_key_id", &self.active_data_key_id())
            .field("active_data_key_uses", &self.active_data_key_uses())
            .field("max_uses", &self.max_uses)
            .field("hard_limit", &self.hard_limit)
            .finish()
    }
}

/// Wraps `key` under `master`, binding the data key id and the master id.
fn wrap(master: &MasterKey, id: Uuid, key: &[u8; DATA_KEY_LEN]) -> WrappedDataKey {
    let nonce: [u8; NONCE_LEN] = random::array();
    let mut wrapped = Vec::with_capacity(WRAPPED_LEN);
    wrapped.extend_from_slice(&nonce);
    wrapped.extend_from_slice(key);
    let Ok(tag) = master.cipher().encrypt_inout_detached(
        &Nonce::<Aes256Gcm>::from(nonce),
        &wrap_aad(master.id(), id),
        (&mut wrapped[NONCE_LEN..]).into(),
    ) else {
        // AES-GCM only refuses inputs over 2^36 bytes; a data key is 32.
        unreachable!("AES-GCM encryption of a 32-byte key cannot fail");
    };
    wrapped.extend_from_slice(&tag);
    WrappedDataKey {
        id,
        master_key_id: master.id().to_owned(),
        wrapped,
    }
}

fn cipher_for(key: &[u8; DATA_KEY_LEN]) -> Aes256Gcm {
    let key: &Key<Aes256Gcm> = key.into();
    Aes256Gcm::new(key)
}

fn record_aad(aad: &Aad, key_id: Uuid) -> Vec<u8> {
    let mut out = Vec::with_capacity(RECORD_LABEL.len() + 2 + 3 * 16);
    out.extend_from_slice(RECORD_LABEL);
    out.push(0);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(aad.org_id.as_bytes());
    out.extend_from_slice(aad.record_id.as_bytes());
    out.extend_from_slice(key_id.as_bytes());
    out
}

fn wrap_aad(master_id: &str, key_id: Uuid) -> Vec<u8> {
    let mut out = Vec::with_capacity(WRAP_LABEL.len() + master_id.len() + 2 + 16);
    out.extend_from_slice(WRAP_LABEL);
    out.push(0);
    out.extend_from_slice(master_id.as_bytes());
    out.push(0);
    out.extend_from_slice(key_id.as_bytes());
    out
}

fn split(bytes: &[u8], at: usize) -> Result<(&[u8], &[u8]), CryptoError> {
    bytes
        .split_at_checked(at)
        .ok_or_else(|| malformed("input is truncated"))
}

fn malformed(what: &str) -> CryptoError {
    CryptoError::Malformed(what.to_owned())
}

// The locks only guard maps and an `Option` that are never left half-updated, so a panic
// elsewhere while one was held leaves consistent data: recover it rather than propagate.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
