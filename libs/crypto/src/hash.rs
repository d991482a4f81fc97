//! Keyed HMAC-SHA256 hashing with per-purpose domain separation, for values that are matched or
//! deduplicated without being kept in clear (lookup keys for R-SEC-5 encrypted fields, API key
//! hashes for R-SEC-1).

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::{MasterKey, REDACTED};

/// Length of an HMAC-SHA256 output and of every derived key, in bytes.
const OUT_LEN: usize = 32;

/// Label under which [`KeyedHasher::new`] derives its internal key from the caller's key.
const NEW_KEY_LABEL: &[u8] = b"etxhub/keyed-hasher/v1";

/// Prefix of the label under which [`KeyedHasher::from_master`] derives a key for one purpose.
const MASTER_LABEL_PREFIX: &[u8] = b"etxhub/hash/";

/// HMAC-SHA256 of the concatenation of `parts` under `key` (RFC 2104 / FIPS 198-1).
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; OUT_LEN] {
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC takes keys of any length (longer ones are hashed first), so this cannot happen.
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Keyed HMAC-SHA256 for anything matched or deduplicated, with domain separation per purpose.
///
/// `hash(purpose, value) = HMAC-SHA256(k, purpose || 0x00 || value)`, where `k` is a 32-byte key
/// derived at construction (see [`KeyedHasher::new`] and [`KeyedHasher::from_master`]). The same
/// value hashed for two purposes gives unrelated outputs, so a hash kept for one use cannot be
/// joined against another. Purposes are fixed strings chosen by the code (e.g. `"tax-code"`) and
/// must not contain a NUL character.
///
/// The derived key is zeroized on drop; `Debug` prints `[redacted]`.
#[derive(Clone)]
pub struct KeyedHasher {
    key: Zeroizing<[u8; OUT_LEN]>,
}

impl KeyedHasher {
    /// A hasher keyed by `key`, used through an internal derivation
    /// `k = HMAC-SHA256(key, "etxhub/keyed-hasher/v1")`.
    ///
    /// Any length works, but `key` should hold at least 32 bytes of secret randomness: a shorter
    /// or guessable key makes hashes of low-entropy values (tax codes, phone numbers) reversible
    /// by brute force.
    pub fn new(key: &[u8]) -> Self {
        Self {
            key: Zeroizing::new(hmac_sha256(key, &[NEW_KEY_LABEL])),
        }
    }

    /// A hasher whose key is derived from a master key for one purpose:
    /// `k = HMAC-SHA256(master, "etxhub/hash/" || purpose)`.
    ///
    /// Derived keys for different purposes are independent; knowing one reveals nothing of the
    /// master key or of the others.
    pub fn from_master(master: &MasterKey, purpose: &str) -> Self {
        let key = hmac_sha256(master.bytes(), &[MASTER_LABEL_PREFIX, purpose.as_bytes()]);
        Self {
            key: Zeroizing::new(key),
        }
    }

    /// `HMAC-SHA256(k, purpose || 0x00 || value)`.
    pub fn hash(&self, purpose: &str, value: &[u8]) -> [u8; 32] {
        debug_assert!(!purpose.contains('\0'), "hash purposes must not contain NUL");
        hmac_sha256(&self.key[..], &[purpose.as_bytes(), &[0u8], value])
    }

    /// [`KeyedHasher::hash`] as 64 lowercase hex characters.
    pub fn hash_hex(&self, purpose: &str, value: &[u8]) -> String {
        hex::encode(self.hash(purpose, value))
    }

    #[cfg(test)]
    pub(crate) fn derived_key(&self) -> &[u8; OUT_LEN] {
        &self.key
    }
}

impl fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedHasher").field("key", &REDACTED).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_2() {
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            mac.to_vec(),
            unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231_test_case_6_with_a_key_longer_than_a_block() {
        let key = [0xaa; 131];
        let mac = hmac_sha256(&key, &[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(
            mac.to_vec(),
            unhex("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
        );
    }

    #[test]
    fn hash_is_hmac_of_purpose_nul_value_under_the_derived_key() {
        let hasher = KeyedHasher::new(&[1u8; 32]);
        let expected = hmac_sha256(hasher.derived_key(), &[b"tax-code\0", b"0101234567"]);
        assert_eq!(hasher.hash("tax-code", b"0101234567"), expected);
        assert_eq!(
            hasher.derived_key(),
            &hmac_sha256(&[1u8; 32], &[b"etxhub/keyed-hasher/v1"])
        );
    }

    #[test]
    fn hash_is_deterministic() {
        let a = KeyedHasher::new(&[1u8; 32]);
        let b = KeyedHasher::new(&[1u8; 32]);
        assert_eq!(a.hash("p", b"v"), b.hash("p", b"v"));
    }

    #[test]
    fn keyed_hashes_differ_by_purpose() {
        let hasher = KeyedHasher::new(&[1u8; 32]);
        assert_ne!(
            hasher.hash("tax-code", b"0101234567"),
            hasher.hash("phone", b"0101234567")
        );
    }

    #[test]
    fn keyed_hashes_differ_by_key() {
        let a = KeyedHasher::new(&[1u8; 32]);
        let b = KeyedHasher::new(&[2u8; 32]);
        assert_ne!(
            a.hash("tax-code", b"0101234567"),
            b.hash("tax-code", b"0101234567")
        );
    }

    #[test]
    fn purpose_and_value_boundary_is_unambiguous() {
        let hasher = KeyedHasher::new(&[1u8; 32]);
        assert_ne!(hasher.hash("ab", b"c"), hasher.hash("a", b"bc"));
        assert_ne!(hasher.hash("a", b""), hasher.hash("", b"a"));
    }

    #[test]
    fn short_keys_still_work_and_differ() {
        let a = KeyedHasher::new(b"");
        let b = KeyedHasher::new(b"x");
        assert_ne!(a.hash("p", b"v"), b.hash("p", b"v"));
    }

    #[test]
    fn hashers_from_the_same_master_differ_by_derivation_purpose() {
        let master = MasterKey::generate("mk-1");
        let a = KeyedHasher::from_master(&master, "dedup");
        let b = KeyedHasher::from_master(&master, "lookup");
        assert_ne!(a.hash("p", b"v"), b.hash("p", b"v"));
        assert_eq!(
            a.hash("p", b"v"),
            KeyedHasher::from_master(&master, "dedup").hash("p", b"v")
        );
        let other = MasterKey::generate("mk-1");
        assert_ne!(
            a.hash("p", b"v"),
            KeyedHasher::from_master(&other, "dedup").hash("p", b"v")
        );
    }

    #[test]
    fn from_master_derivation_is_hmac_of_the_labelled_purpose() {
        let master = MasterKey::generate("mk-1");
        let hasher = KeyedHasher::from_master(&master, "dedup");
        assert_eq!(
            hasher.derived_key(),
            &hmac_sha256(master.bytes(), &[b"etxhub/hash/dedup"])
        );
    }

    #[test]
    fn hash_hex_is_lowercase_hex_of_hash() {
        let hasher = KeyedHasher::new(&[3u8; 32]);
        let hex = hasher.hash_hex("p", b"v");
        assert_eq!(hex.len(), 64);
        assert!(
            hex.chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_eq!(hex, hex::encode(hasher.hash("p", b"v")));
    }

    #[test]
    fn debug_of_keyed_hasher_does_not_contain_the_secret() {
        let hasher = KeyedHasher::new(&[0xab; 32]);
        let shown = format!("{hasher:?}");
        assert!(shown.contains(REDACTED));
        assert!(!shown.contains(&hex::encode(hasher.derived_key())[..8]));
        assert!(!shown.contains("ab"), "{shown}");
        assert!(!shown.contains(&hasher.derived_key()[0].to_string()), "{shown}");
    }
}
