//! Cryptography for ETX Hub: envelope encryption of stored data with AES-256-GCM (R-SEC-5),
//! keyed HMAC-SHA256 hashing for values that are matched or deduplicated, and issuance and
//! verification of API keys (R-SEC-1).
//!
//! # Envelope encryption (R-SEC-5)
//!
//! * A [`MasterKey`] (key-encryption key, 256 bits, operator-held) only ever encrypts *data keys*.
//! * A data key (256 bits, random) encrypts records. It is stored in wrapped form
//!   ([`WrappedDataKey`], AES-256-GCM under a master key) next to the data, and loaded into the
//!   [`KeyRing`] at run time.
//! * Rotating a data key needs no re-encryption: old blobs name their key id in the header and keep
//!   decrypting while that key is loaded. Rotating a master key needs no re-encryption either:
//!   [`KeyRing::rewrap`] re-wraps the stored data keys under the new master.
//! * Every blob is bound to its organisation, record and key through the AEAD associated data
//!   ([`Aad`]), so a blob copied to another record or organisation fails to decrypt.
//!
//! # Hashing and API keys (R-SEC-1)
//!
//! [`KeyedHasher`] gives deterministic, keyed, domain-separated hashes for lookups and
//! deduplication. [`ApiKeyHasher`] issues API keys of the form `etx_<prefix>_<secret>` and stores
//! only a peppered hash of them; verification compares in constant time.
//! [`OpaqueSecrets`] does the same for OAuth2 client secrets (`etxcs_…`) and access tokens
//! (`etxat_…`), each kind with its own tag and hash purpose.
//!
//! ```
//! use etx_crypto::{Aad, ApiKeyHasher, KeyRing, MasterKey};
//! # fn main() -> Result<(), etx_crypto::CryptoError> {
//! let master = MasterKey::generate("mk-2026-11");
//! let ring = KeyRing::new(master.clone(), vec![]);
//! let data_key = ring.new_data_key(); // persist `data_key` before activating it
//! ring.activate(data_key.id)?;
//!
//! let aad = Aad::new(uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
//! let blob = ring.encrypt(&aad, b"0101234567")?;
//! assert_eq!(ring.decrypt(&aad, &blob)?, b"0101234567");
//!
//! let api_keys = ApiKeyHasher::from_master(&master);
//! let issued = api_keys.issue(); // store issued.prefix and issued.hash; show issued.plaintext once
//! assert!(api_keys.verify(&issued.plaintext, &issued.hash));
//! # Ok(())
//! # }
//! ```
//!
//! Secrets never appear in `Debug` output (they print as `[redacted]`) and key material is
//! zeroized when dropped.

#![warn(missing_docs)]

mod api_key;
mod error;
mod hash;
mod keyring;
mod master;
mod opaque;
mod random;

pub use api_key::{API_KEY_LEN, API_KEY_TAG, ApiKeyHasher, IssuedApiKey};
pub use error::CryptoError;
pub use hash::KeyedHasher;
pub use keyring::{
    Aad, BLOB_OVERHEAD, DATA_KEY_HARD_LIMIT, DATA_KEY_MAX_USES, FORMAT_VERSION, KeyRing, WrappedDataKey,
};
pub use master::{MASTER_KEY_LEN, MasterKey};
pub use opaque::{IssuedSecret, OpaqueSecrets, SecretKind};

/// What `Debug` prints in place of a secret.
pub(crate) const REDACTED: &str = "[redacted]";
