//! Random bytes straight from the operating system's CSPRNG, for keys, nonces and API keys.

use rand::Rng as _;
use rand::rand_core::UnwrapErr;
use rand::rngs::SysRng;

/// Fills `buf` from the OS random source.
///
/// # Panics
/// Only if the operating system cannot supply randomness at all, in which case no key or nonce
/// could be made safely and continuing would be worse than stopping.
pub(crate) fn fill(buf: &mut [u8]) {
    UnwrapErr(SysRng).fill_bytes(buf);
}

/// A fresh array of `N` random bytes.
pub(crate) fn array<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_arrays_are_not_constant_and_differ_between_calls() {
        let a: [u8; 32] = array();
        let b: [u8; 32] = array();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }
}
