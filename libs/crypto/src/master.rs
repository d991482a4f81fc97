//! Master keys: the 256-bit key-encryption keys that wrap data keys (R-SEC-5).

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Key, KeyInit};
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, Engine as _};
use zeroize::Zeroizing;

use crate::{CryptoError, REDACTED, random};

/// Length of a master key in bytes (AES-256).
pub const MASTER_KEY_LEN: usize = 32;

/// Longest accepted master key id, in bytes.
const MAX_ID_LEN: usize = 64;

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);

/// A 256-bit master key (key-encryption key) with an operator-chosen id (e.g. `"mk-2026-11"`).
///
/// Master keys only wrap and unwrap data keys; they never encrypt records. The id is stored with
/// every [`crate::WrappedDataKey`], so the key ring knows which master unwraps it. The key bytes are
/// zeroized on drop and `Debug` prints them as `[redacted]`.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; MASTER_KEY_LEN]>,
}

impl MasterKey {
    /// Reads a master key from base64 (standard or url-safe alphabet, padding optional,
    /// surrounding whitespace ignored). It must decode to exactly 32 bytes.
    ///
    /// The id must be 1–64 bytes of ASCII letters, digits or `-`, `_`, `.`, `:`.
    ///
    /// # Errors
    /// [`CryptoError::InvalidKey`] when the id is not acceptable, the text is not base64 or does
    /// not decode to 32 bytes. The message never contains the key text.
    pub fn from_base64(id: &str, b64: &str) -> Result<Self, CryptoError> {
        validate_id(id)?;
        let text = b64.trim();
        let decoded = STANDARD_LENIENT
            .decode(text)
            .or_else(|_| URL_SAFE_LENIENT.decode(text))
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::InvalidKey(format!("master key {id:?} is not valid base64")))?;
        if decoded.len() != MASTER_KEY_LEN {
            return Err(CryptoError::InvalidKey(format!(
                "master key {id:?} must be {MASTER_KEY_LEN} bytes, got {}",
                decoded.len()
            )));
        }
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        key.copy_from_slice(&decoded);
        Ok(Self {
            id: id.to_owned(),
            key,
        })
    }

    /// Generates a fresh random master key from the operating system's CSPRNG.
    ///
    /// The id is taken as given; pass one that [`MasterKey::from_base64`] accepts
    /// (1–64 bytes of ASCII letters, digits or `-`, `_`, `.`, `:`) so the key can be read back.
    pub fn generate(id: &str) -> Self {
        let mut key = Zeroizing::new([0u8; MASTER_KEY_LEN]);
        random::fill(&mut key[..]);
        Self {
            id: id.to_owned(),
            key,
        }
    }

    /// The operator-chosen id of this key.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as standard, padded base64.
    ///
    /// Only for `etxhub` first-run key generation, where the operator must be shown the key once
    /// to store it in a secret store. The returned string is not zeroized: drop it quickly.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.key[..])
    }

    /// The raw key bytes, for derivations inside this crate.
    pub(crate) fn bytes(&self) -> &[u8; MASTER_KEY_LEN] {
        &self.key
    }

    /// An AES-256-GCM instance keyed with this master key (zeroized on drop).
    pub(crate) fn cipher(&self) -> Aes256Gcm {
        let key: &Key<Aes256Gcm> = (&*self.key).into();
        Aes256Gcm::new(key)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .field("key", &REDACTED)
            .finish()
    }
}

fn validate_id(id: &str) -> Result<(), CryptoError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.chars().all(ok_char) {
        return Err(CryptoError::InvalidKey(format!(
            "master key id must be 1-{MAX_ID_LEN} ASCII letters, digits or '-', '_', '.', ':'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};

    /// 32 bytes chosen so that the standard and url-safe encodings differ (contain `+`/`/`).
    const BYTES: [u8; 32] = [
        0xfb, 0xff, 0xbf, 0xfb, 0xef, 0xbe, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
        0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0xfb, 0xff, 0xbf,
    ];

    #[test]
    fn from_base64_accepts_standard_url_safe_padded_and_unpadded() {
        let standard = STANDARD.encode(BYTES);
        assert!(standard.contains('+') || standard.contains('/'));
        let url = URL_SAFE.encode(BYTES);
        let url_no_pad = URL_SAFE_NO_PAD.encode(BYTES);
        let standard_no_pad = standard.trim_end_matches('=').to_owned();
        for text in [
            standard.clone(),
            url,
            url_no_pad,
            standard_no_pad,
            format!("  {standard}\n"),
        ] {
            let key = MasterKey::from_base64("mk-2026-11", &text).unwrap();
            assert_eq!(key.bytes(), &BYTES, "{text}");
            assert_eq!(key.id(), "mk-2026-11");
        }
    }

    #[test]
    fn from_base64_rejects_wrong_lengths_and_non_base64() {
        for text in [
            STANDARD.encode([7u8; 31]),
            STANDARD.encode([7u8; 33]),
            String::new(),
            "not base64 at all!".to_owned(),
            "é".repeat(43),
        ] {
            let err = MasterKey::from_base64("mk-1", &text).unwrap_err();
            assert!(matches!(err, CryptoError::InvalidKey(_)), "{text}: {err:?}");
        }
    }

    #[test]
    fn from_base64_error_does_not_echo_the_key_text() {
        let text = STANDARD.encode([9u8; 31]);
        let err = MasterKey::from_base64("mk-1", &text).unwrap_err().to_string();
        assert!(!err.contains(&text), "{err}");
        let text = format!("{}!!", STANDARD.encode([9u8; 32]));
        let err = MasterKey::from_base64("mk-1", &text).unwrap_err().to_string();
        assert!(!err.contains(&text[..20]), "{err}");
    }

    #[test]
    fn from_base64_rejects_bad_ids() {
        let text = STANDARD.encode(BYTES);
        for id in ["", "has space", "new\nline", "ümlaut", &"x".repeat(65)] {
            assert!(
                matches!(MasterKey::from_base64(id, &text), Err(CryptoError::InvalidKey(_))),
                "{id:?}"
            );
        }
        assert!(MasterKey::from_base64(&"x".repeat(64), &text).is_ok());
        assert!(MasterKey::from_base64("mk:2026.11_a-b", &text).is_ok());
    }

    #[test]
    fn generated_key_round_trips_through_base64() {
        let key = MasterKey::generate("mk-gen");
        let again = MasterKey::from_base64("mk-gen", &key.to_base64()).unwrap();
        assert_eq!(key.bytes(), again.bytes());
        assert_ne!(key.bytes(), MasterKey::generate("mk-gen").bytes());
    }

    #[test]
    fn debug_of_master_key_does_not_contain_the_secret() {
        let key = MasterKey::from_base64("mk-debug", &STANDARD.encode(BYTES)).unwrap();
        for shown in [format!("{key:?}"), format!("{key:#?}")] {
            assert!(shown.contains("mk-debug"));
            assert!(shown.contains(REDACTED));
            assert!(!shown.contains(&key.to_base64()));
            assert!(!shown.contains(&key.to_base64()[..8]));
            assert!(!shown.contains(&hex::encode(BYTES)[..8]));
            assert!(!shown.contains("251"), "decimal bytes leaked: {shown}");
        }
    }
}
