//! Opaque bearer secrets other than API keys (R-SEC-1): OAuth2 client secrets and access tokens,
//! issued and checked the way API keys are — `<tag><prefix>_<secret>` with a 12-character public
//! lookup prefix and 256 random bits, stored only as a keyed hash, compared in constant time —
//! but each kind with its own tag and hash purpose, so that one kind is never accepted as
//! another (an access token is not an API key, a client secret is not an access token).

use std::fmt;

use base64::engine::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{KeyedHasher, REDACTED, random};

const PREFIX_BYTES: usize = 9;
const PREFIX_LEN: usize = 12; // base64url of 9 bytes, no padding
const SECRET_BYTES: usize = 32;
const SECRET_LEN: usize = 43; // base64url of 32 bytes, no padding

/// A kind of opaque secret: the tag every one starts with and the purpose its hash is keyed for.
/// Tags never start with `etx_`, the API keys' tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretKind {
    tag: &'static str,
    purpose: &'static str,
}

impl SecretKind {
    /// OAuth2 client secrets (`etxcs_…`).
    pub const OAUTH_CLIENT_SECRET: SecretKind = SecretKind {
        tag: "etxcs_",
        purpose: "oauth-client-secret",
    };

    /// OAuth2 access tokens (`etxat_…`).
    pub const OAUTH_ACCESS_TOKEN: SecretKind = SecretKind {
        tag: "etxat_",
        purpose: "oauth-access-token",
    };

    /// The fixed start of every secret of this kind.
    pub const fn tag(self) -> &'static str {
        self.tag
    }

    /// Total length of a secret of this kind.
    pub const fn len(self) -> usize {
        self.tag.len() + PREFIX_LEN + 1 + SECRET_LEN
    }

    /// Always `false`: no secret is empty (for clippy's `len_without_is_empty`).
    pub const fn is_empty(self) -> bool {
        false
    }

    /// Whether `presented` has this kind's tag (nothing else is checked: see
    /// [`OpaqueSecrets::prefix_of`]).
    pub fn is_tagged(self, presented: &str) -> bool {
        presented.starts_with(self.tag)
    }
}

/// A freshly issued secret: `plaintext` is shown once and never stored; `prefix` and `hash` are
/// kept. `Debug` redacts the plaintext, which is zeroized on drop.
pub struct IssuedSecret {
    /// The whole secret, `<tag><prefix>_<secret>`.
    pub plaintext: Zeroizing<String>,
    /// The 12-character lookup prefix (not secret).
    pub prefix: String,
    /// The keyed hash to store.
    pub hash: [u8; 32],
}

impl fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedSecret")
            .field("plaintext", &REDACTED)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// Issues and verifies the secrets of one [`SecretKind`]: `HMAC-SHA256` under the server's keyed
/// hasher with the kind's purpose, so hashes of different kinds (and of API keys) never match.
#[derive(Clone)]
pub struct OpaqueSecrets {
    kind: SecretKind,
    hasher: KeyedHasher,
}

impl OpaqueSecrets {
    /// Secrets of `kind`, hashed by `hasher`.
    pub fn new(kind: SecretKind, hasher: KeyedHasher) -> Self {
        Self { kind, hasher }
    }

    /// The kind.
    pub fn kind(&self) -> SecretKind {
        self.kind
    }

    /// Issues a new random secret with its prefix and hash.
    pub fn issue(&self) -> IssuedSecret {
        let prefix = URL_SAFE_NO_PAD.encode(random::array::<PREFIX_BYTES>());
        let mut secret_bytes = Zeroizing::new([0u8; SECRET_BYTES]);
        random::fill(&mut secret_bytes[..]);
        let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(&secret_bytes[..]));
        let mut plaintext = Zeroizing::new(String::with_capacity(self.kind.len()));
        plaintext.push_str(self.kind.tag);
        plaintext.push_str(&prefix);
        plaintext.push('_');
        plaintext.push_str(&secret);
        let hash = self.hash(&plaintext);
        IssuedSecret {
            plaintext,
            prefix,
            hash,
        }
    }

    /// The lookup prefix of a presented secret, refusing anything not of the exact shape: the
    /// kind's tag, 12 base64url characters, `_`, 43 base64url characters that decode
    /// canonically to 32 bytes. Never panics, whatever the input.
    pub fn prefix_of<'a>(&self, presented: &'a str) -> Option<&'a str> {
        lookup_prefix(presented, self.kind.tag)
    }

    /// The keyed hash of a presented secret (whatever its shape).
    pub fn hash(&self, presented: &str) -> [u8; 32] {
        self.hasher.hash(self.kind.purpose, presented.as_bytes())
    }

    /// Whether `presented` is well-formed and its hash equals `stored`, compared in constant
    /// time. A `stored` value of the wrong length never matches.
    pub fn verify(&self, presented: &str, stored: &[u8]) -> bool {
        if self.prefix_of(presented).is_none() {
            return false;
        }
        self.hash(presented).ct_eq(stored).into()
    }
}

impl fmt::Debug for OpaqueSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpaqueSecrets")
            .field("kind", &self.kind.tag)
            .field("hasher", &REDACTED)
            .finish()
    }
}

/// The public lookup prefix of `<tag><12 base64url>_<43 base64url>` (API keys, client secrets,
/// access tokens share this layout), or `None` unless the whole string has that shape and the
/// secret part decodes canonically to 32 bytes. Never panics, whatever the input.
pub(crate) fn lookup_prefix<'a>(presented: &'a str, tag: &str) -> Option<&'a str> {
    let t = tag.len();
    let bytes = presented.as_bytes();
    if bytes.len() != t + PREFIX_LEN + 1 + SECRET_LEN
        || !bytes.starts_with(tag.as_bytes())
        || bytes.get(t + PREFIX_LEN) != Some(&b'_')
    {
        return None;
    }
    let prefix = bytes.get(t..t + PREFIX_LEN)?;
    let secret = bytes.get(t + PREFIX_LEN + 1..)?;
    if !prefix.iter().all(|&b| is_base64url(b)) || !secret.iter().all(|&b| is_base64url(b)) {
        return None;
    }
    // 43 characters carry 258 bits for 256: the last one's two low bits must be zero.
    let last = secret.last().copied().and_then(base64url_value)?;
    if last & 0b11 != 0 {
        return None;
    }
    presented.get(t..t + PREFIX_LEN)
}

pub(crate) fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn base64url_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiKeyHasher;

    fn secrets(kind: SecretKind) -> OpaqueSecrets {
        OpaqueSecrets::new(kind, KeyedHasher::new(&[0x42; 32]))
    }

    #[test]
    fn issued_secrets_have_their_kinds_shape_and_256_bits() {
        for kind in [SecretKind::OAUTH_CLIENT_SECRET, SecretKind::OAUTH_ACCESS_TOKEN] {
            let s = secrets(kind);
            let issued = s.issue();
            assert_eq!(issued.plaintext.len(), kind.len());
            assert_eq!(kind.len(), 62);
            assert!(kind.is_tagged(&issued.plaintext));
            assert_eq!(s.prefix_of(&issued.plaintext), Some(issued.prefix.as_str()));
            let secret = &issued.plaintext[kind.tag().len() + 13..];
            assert_eq!(URL_SAFE_NO_PAD.decode(secret).unwrap().len() * 8, 256);
            assert!(s.verify(&issued.plaintext, &issued.hash));
            assert_ne!(s.issue().plaintext, issued.plaintext);
        }
    }

    #[test]
    fn no_kind_is_accepted_as_another_nor_as_an_api_key() {
        let hasher = KeyedHasher::new(&[0x42; 32]);
        let clients = OpaqueSecrets::new(SecretKind::OAUTH_CLIENT_SECRET, hasher.clone());
        let tokens = OpaqueSecrets::new(SecretKind::OAUTH_ACCESS_TOKEN, hasher);
        let api_keys = ApiKeyHasher::new(&[0x42; 32]);
        let secret = clients.issue();
        let token = tokens.issue();
        let key = api_keys.issue();
        assert!(tokens.prefix_of(&secret.plaintext).is_none());
        assert!(!tokens.verify(&secret.plaintext, &secret.hash));
        assert!(clients.prefix_of(&token.plaintext).is_none());
        assert!(ApiKeyHasher::prefix_of(&token.plaintext).is_none());
        assert!(ApiKeyHasher::prefix_of(&secret.plaintext).is_none());
        assert!(tokens.prefix_of(&key.plaintext).is_none());
        assert!(clients.prefix_of(&key.plaintext).is_none());
        // The same text hashed for two kinds gives unrelated hashes.
        assert_ne!(tokens.hash(&token.plaintext), clients.hash(&token.plaintext));
    }

    #[test]
    fn one_changed_character_or_a_hostile_input_is_refused() {
        let s = secrets(SecretKind::OAUTH_ACCESS_TOKEN);
        let issued = s.issue();
        let original = issued.plaintext.as_bytes().to_vec();
        for i in 0..original.len() {
            let mut changed = original.clone();
            changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            assert!(!s.verify(&changed, &issued.hash), "accepted a change at {i}");
        }
        let good = issued.plaintext.as_str();
        for case in [
            String::new(),
            "etxat_".into(),
            format!("{good}A"),
            good[..61].to_owned(),
            good.replacen('_', "-", 1),
            format!("{}é", &good[..60]),
            "etxat_".repeat(11),
            "a".repeat(1 << 16),
        ] {
            assert!(s.prefix_of(&case).is_none());
            assert!(!s.verify(&case, &[0u8; 32]));
        }
        assert!(!s.verify(good, &issued.hash[..31]));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let issued = secrets(SecretKind::OAUTH_CLIENT_SECRET).issue();
        let shown = format!("{issued:?}");
        assert!(!shown.contains(issued.plaintext.as_str()));
        assert!(shown.contains(&issued.prefix));
        assert!(format!("{:?}", secrets(SecretKind::OAUTH_ACCESS_TOKEN)).contains(REDACTED));
    }
}
