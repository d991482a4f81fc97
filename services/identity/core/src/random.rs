//! Random values from the operating system's CSPRNG: session tokens, TOTP secrets, recovery
//! codes and generated temporary passwords.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;

/// `n` random bytes.
///
/// # Panics
/// Only if the operating system cannot supply randomness at all; no secret could then be made
/// safely.
pub(crate) fn bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    UnwrapErr(SysRng).fill_bytes(&mut out);
    out
}

/// `n` random bytes as base64url without padding.
pub(crate) fn token(n: usize) -> String {
    URL_SAFE_NO_PAD.encode(bytes(n))
}

/// `len` characters drawn uniformly from `alphabet` (rejection sampling, no modulo bias).
pub(crate) fn string_from(alphabet: &[u8], len: usize) -> String {
    debug_assert!(!alphabet.is_empty() && alphabet.len() <= 256);
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in bytes(len * 2) {
            if usize::from(b) < limit && out.len() < len {
                out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_distinct_and_strings_stay_in_their_alphabet() {
        assert_ne!(token(32), token(32));
        assert_eq!(token(32).len(), 43);
        let s = string_from(b"ab", 200);
        assert_eq!(s.len(), 200);
        assert!(s.bytes().all(|b| b == b'a' || b == b'b'));
        assert!(s.contains('a') && s.contains('b'));
    }
}
