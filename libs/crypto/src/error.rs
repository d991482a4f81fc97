//! The one error type of `etx-crypto`; messages never carry key material or plaintext.

/// Why a cryptographic operation failed.
///
/// The messages are safe to log: they name key *ids*, never key material, and [`CryptoError::Decrypt`]
/// deliberately says nothing about why authentication failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Key material or a key id could not be accepted (wrong length, not base64, bad id, conflict).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The blob or wrapped key names a data key that is not loaded in the key ring.
    /// Callers load it from storage ([`crate::KeyRing::load`]) and retry.
    #[error("data key {0} is not loaded")]
    UnknownDataKey(uuid::Uuid),
    /// A wrapped data key names a master key that this key ring does not hold.
    #[error("master key {0:?} is not configured")]
    UnknownMasterKey(String),
    /// Authentication failed: wrong key, tampered bytes, or associated data (org, record) mismatch.
    #[error("decryption failed")]
    Decrypt,
    /// The input is not of the expected shape (too short, wrong magic, unsupported version…).
    #[error("malformed input: {0}")]
    Malformed(String),
    /// `encrypt` was called before any data key was activated.
    #[error("no active data key")]
    NoActiveDataKey,
    /// The active data key reached its hard use limit; a new key must be activated.
    #[error("data key {0} reached its hard use limit")]
    DataKeyExhausted(uuid::Uuid),
}
