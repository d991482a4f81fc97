//! API keys (R-SEC-1): issuance of `etx_<prefix>_<secret>` keys, and peppered hashing and
//! constant-time verification of presented keys. Only the prefix and the hash are stored.

use std::fmt;

use base64::engine::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::{KeyedHasher, MasterKey, REDACTED, random};

/// The fixed start of every API key.
pub const API_KEY_TAG: &str = "etx_";

/// Total length of an API key: `"etx_"` (4) + prefix (12) + `"_"` (1) + secret (43).
pub const API_KEY_LEN: usize = API_KEY_TAG.len() + PREFIX_LEN + 1 + SECRET_LEN;

const PREFIX_BYTES: usize = 9;
const PREFIX_LEN: usize = 12; // base64url of 9 bytes, no padding
const SECRET_BYTES: usize = 32;
const SECRET_LEN: usize = 43; // base64url of 32 bytes, no padding

/// Hash purpose (and master-key derivation purpose) of API keys.
const PURPOSE: &str = "api-key";

/// A freshly issued API key.
///
/// `plaintext` is shown to the client once and never stored; the server keeps `prefix` (to find
/// the key's row) and `hash`. `Debug` prints the plaintext as `[redacted]`. The struct does not
/// zeroize itself on drop (so its fields can be moved out); call [`Zeroize::zeroize`] once the
/// plaintext has been handed over if it is not moved.
#[derive(Clone)]
pub struct IssuedApiKey {
    /// The whole key, `etx_<prefix>_<secret>`: shown once.
    pub plaintext: String,
    /// The 12-character lookup prefix (not secret).
    pub prefix: String,
    /// The peppered hash to store ([`ApiKeyHasher::hash`] of `plaintext`).
    pub hash: [u8; 32],
}

impl fmt::Debug for IssuedApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedApiKey")
            .field("plaintext", &REDACTED)
            .field("prefix", &self.prefix)
            .field("hash", &hex::encode(self.hash))
            .finish()
    }
}

impl Zeroize for IssuedApiKey {
    fn zeroize(&mut self) {
        self.plaintext.zeroize();
        self.prefix.zeroize();
        self.hash.zeroize();
    }
}

/// Issues and verifies API keys (R-SEC-1).
///
/// Keys are `etx_<12-char prefix>_<43-char secret>`: the prefix is 9 random bytes and the secret
/// 32 random bytes (256 bits), both base64url without padding. Stored hashes are
/// `HMAC-SHA256` under a server-side pepper (see [`KeyedHasher`], purpose `"api-key"`), so a
/// leaked table of hashes cannot be checked offline without the pepper.
#[derive(Clone)]
pub struct ApiKeyHasher {
    hasher: KeyedHasher,
}

impl ApiKeyHasher {
    /// A hasher peppered with `pepper` (at least 32 random bytes recommended).
    pub fn new(pepper: &[u8]) -> Self {
        Self {
            hasher: KeyedHasher::new(pepper),
        }
    }

    /// A hasher whose pepper is derived from `master` for the purpose `"api-key"`.
    pub fn from_master(master: &MasterKey) -> Self {
        Self {
            hasher: KeyedHasher::from_master(master, PURPOSE),
        }
    }

    /// Issues a new random API key with its prefix and hash.
    pub fn issue(&self) -> IssuedApiKey {
        let prefix = URL_SAFE_NO_PAD.encode(random::array::<PREFIX_BYTES>());
        let mut secret_bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        random::fill(&mut secret_bytes[..]);
        let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(&secret_bytes[..]));
        let mut plaintext = String::with_capacity(API_KEY_LEN);
        plaintext.push_str(API_KEY_TAG);
        plaintext.push_str(&prefix);
        plaintext.push('_');
        plaintext.push_str(&secret);
        let hash = self.hash(&plaintext);
        IssuedApiKey {
            plaintext,
            prefix,
            hash,
        }
    }

    /// Splits a presented key into its prefix, refusing anything not of the exact shape:
    /// 60 ASCII bytes, `"etx_"`, 12 base64url characters, `"_"`, 43 base64url characters that
    /// decode canonically to 32 bytes. Never panics, whatever the input.
    pub fn prefix_of(presented: &str) -> Option<&str> {
        crate::opaque::lookup_prefix(presented, API_KEY_TAG)
    }

    /// The peppered hash of a presented key (whatever its shape).
    pub fn hash(&self, presented: &str) -> [u8; 32] {
        self.hasher.hash(PURPOSE, presented.as_bytes())
    }

    /// Whether `presented` is well-formed and its hash equals `stored`, compared in constant
    /// time. A `stored` value of the wrong length never matches.
    pub fn verify(&self, presented: &str, stored: &[u8]) -> bool {
        if Self::prefix_of(presented).is_none() {
            return false;
        }
        self.hash(presented).ct_eq(stored).into()
    }
}

impl fmt::Debug for ApiKeyHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyHasher").field("pepper", &REDACTED).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opaque::is_base64url;

    fn hasher() -> ApiKeyHasher {
        ApiKeyHasher::new(&[0x42; 32])
    }

    /// A well-formed key with a chosen prefix and secret.
    fn key_with(prefix: &str, secret: &str) -> String {
        format!("{API_KEY_TAG}{prefix}_{secret}")
    }

    #[test]
    fn issued_key_has_the_documented_shape() {
        let issued = hasher().issue();
        let key = &issued.plaintext;
        assert_eq!(key.len(), 60);
        assert_eq!(API_KEY_LEN, 60);
        assert!(key.starts_with("etx_"));
        assert_eq!(&key[16..17], "_");
        assert_eq!(issued.prefix.len(), 12);
        assert_eq!(&key[4..16], issued.prefix);
        assert!(key[4..].bytes().all(is_base64url));
        assert_eq!(ApiKeyHasher::prefix_of(key), Some(issued.prefix.as_str()));
    }

    #[test]
    fn issued_key_carries_at_least_256_bits_of_secret() {
        let issued = hasher().issue();
        let secret = &issued.plaintext[17..];
        assert_eq!(secret.len(), 43);
        let decoded = URL_SAFE_NO_PAD.decode(secret).unwrap();
        assert_eq!(decoded.len() * 8, 256);
        let prefix = URL_SAFE_NO_PAD.decode(&issued.prefix).unwrap();
        assert_eq!(prefix.len(), 9);
    }

    #[test]
    fn issued_keys_are_unique() {
        let h = hasher();
        let keys: std::collections::HashSet<String> = (0..200).map(|_| h.issue().plaintext).collect();
        assert_eq!(keys.len(), 200);
        let prefixes: std::collections::HashSet<String> = (0..200).map(|_| h.issue().prefix).collect();
        assert_eq!(prefixes.len(), 200);
    }

    #[test]
    fn issued_hash_is_the_hash_of_the_plaintext() {
        let h = hasher();
        let issued = h.issue();
        assert_eq!(issued.hash, h.hash(&issued.plaintext));
    }

    #[test]
    fn verify_accepts_the_issued_key() {
        let h = hasher();
        for _ in 0..50 {
            let issued = h.issue();
            assert!(h.verify(&issued.plaintext, &issued.hash));
        }
    }

    #[test]
    fn verify_rejects_a_one_character_change_anywhere() {
        let h = hasher();
        let issued = h.issue();
        let original = issued.plaintext.as_bytes();
        for i in 0..original.len() {
            let mut changed = original.to_vec();
            changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            assert!(!h.verify(&changed, &issued.hash), "accepted a change at {i}");
        }
    }

    #[test]
    fn verify_rejects_under_another_pepper() {
        let issued = hasher().issue();
        assert!(!ApiKeyHasher::new(&[0x43; 32]).verify(&issued.plaintext, &issued.hash));
    }

    #[test]
    fn verify_rejects_stored_hashes_of_the_wrong_length() {
        let h = hasher();
        let issued = h.issue();
        assert!(!h.verify(&issued.plaintext, &[]));
        assert!(!h.verify(&issued.plaintext, &issued.hash[..31]));
        let mut longer = issued.hash.to_vec();
        longer.push(0);
        assert!(!h.verify(&issued.plaintext, &longer));
    }

    #[test]
    fn verify_rejects_malformed_keys_even_when_their_hash_is_stored() {
        let h = hasher();
        let not_a_key = "password";
        assert!(!h.verify(not_a_key, &h.hash(not_a_key)));
    }

    #[test]
    fn hashers_from_the_same_master_agree_and_differ_from_other_masters() {
        let master = MasterKey::generate("mk-1");
        let issued = ApiKeyHasher::from_master(&master).issue();
        assert!(ApiKeyHasher::from_master(&master).verify(&issued.plaintext, &issued.hash));
        let other = MasterKey::generate("mk-1");
        assert!(!ApiKeyHasher::from_master(&other).verify(&issued.plaintext, &issued.hash));
    }

    #[test]
    fn prefix_of_accepts_the_alphabet_edges() {
        let prefix = "AZaz09-_AZaz";
        // 43 chars; the last, 'y', has value 50 (low bits 10), so it does not decode canonically.
        let secret = format!("{}Axy", "-_09azAZ".repeat(5));
        assert_eq!(secret.len(), 43);
        assert_eq!(ApiKeyHasher::prefix_of(&key_with(prefix, &secret)), None);
        let canonical = format!("{}w", &secret[..42]); // 'w' = 48, low bits 00
        assert_eq!(
            ApiKeyHasher::prefix_of(&key_with(prefix, &canonical)),
            Some(prefix)
        );
    }

    #[test]
    fn prefix_of_rejects_malformed_and_hostile_input() {
        let good = hasher().issue().plaintext;
        let prefix = &good[4..16];
        let secret = &good[17..];
        let huge = "a".repeat(1 << 20);
        let huge_key = format!("etx_{}", "A".repeat(1 << 20));
        let cases: Vec<String> = vec![
            String::new(),
            "etx_".into(),
            "etx__".into(),
            huge,
            huge_key,
            format!("{good}A"),
            good[..59].to_owned(),
            format!("ETX_{}", &good[4..]),
            format!("etk_{}", &good[4..]),
            format!("etx-{}", &good[4..]),
            format!("etx_{prefix}-{secret}"),
            format!("etx_{prefix}{secret}_"),
            format!("etx_{}_{secret}", &prefix[..11]),
            format!("etx_{prefix}A_{}", &secret[..42]),
            format!("etx_{prefix}_{}=", &secret[..42]),
            format!("etx_{prefix}_{} ", &secret[..42]),
            format!(" etx_{prefix}_{}", &secret[..42]),
            format!("etx_{prefix}_{}\0", &secret[..42]),
            format!("etx_{prefix}_{}+", &secret[..42]),
            format!("etx_{prefix}_{}/", &secret[..42]),
            format!("etx_{}é_{secret}", &prefix[..10]),
            format!("etx_{prefix}_{}é", &secret[..41]),
            format!("etx_{prefix}_{}\u{1F600}", &secret[..39]),
            format!("etx_{prefix}_{}\u{0301}", &secret[..41]),
            "\u{FEFF}".repeat(20),
            "_".repeat(60),
            "etx_".repeat(15),
        ];
        for case in &cases {
            let shown: String = case.chars().take(80).collect();
            assert_eq!(ApiKeyHasher::prefix_of(case), None, "accepted {shown:?}");
            // Hashing or verifying hostile input must not panic either.
            let _ = hasher().hash(case);
            assert!(!hasher().verify(case, &[0u8; 32]));
        }
    }

    #[test]
    fn prefix_of_accepts_underscores_and_dashes_inside_the_prefix() {
        let prefix = "ab_cd-ef_gh-";
        let secret = format!("{}A", "Q".repeat(42));
        assert_eq!(ApiKeyHasher::prefix_of(&key_with(prefix, &secret)), Some(prefix));
    }

    #[test]
    fn debug_of_issued_api_key_does_not_contain_the_secret() {
        let issued = hasher().issue();
        let shown = format!("{issued:?}");
        assert!(shown.contains(REDACTED));
        assert!(
            shown.contains(&issued.prefix),
            "the prefix is not secret and helps support"
        );
        assert!(!shown.contains(&issued.plaintext));
        assert!(!shown.contains(&issued.plaintext[17..]));
        assert!(!shown.contains(&issued.plaintext[17..27]));
    }

    #[test]
    fn debug_of_api_key_hasher_does_not_contain_the_pepper() {
        let h = ApiKeyHasher::new(b"super-secret-pepper-value-0123456789");
        let shown = format!("{h:?}");
        assert!(shown.contains(REDACTED));
        assert!(!shown.contains("super-secret"));
    }

    #[test]
    fn zeroize_clears_an_issued_key() {
        let mut issued = hasher().issue();
        issued.zeroize();
        assert!(issued.plaintext.is_empty());
        assert_eq!(issued.hash, [0u8; 32]);
    }
}
