//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP), the second factor every person
//! account must use (R-SEC-6): HMAC-SHA1, 30-second steps, 6 digits, one step of clock drift
//! accepted either way. A code is accepted only for a step later than the last one accepted
//! for the same account, so a code cannot be replayed — not even within its own 30 seconds.
//!
//! Written here rather than taken from a crate so that the rules (window, replay) are ours and
//! visible; the tests check it against RFC 6238 Appendix B and against `totp-rs`.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Seconds per time step (RFC 6238 default `X`).
pub const STEP_SECS: i64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Steps of drift accepted on either side of the current one.
pub const DRIFT_STEPS: i64 = 1;
/// Length of a generated secret: 160 bits, the HMAC-SHA1 output size (RFC 4226 §4 R6).
pub const SECRET_LEN: usize = 20;
/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "ETX Hub";

/// A TOTP shared secret; zeroized on drop, never printed.
#[derive(Clone)]
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// A fresh random secret of [`SECRET_LEN`] bytes from the OS random source.
    pub fn generate() -> Self {
        Self(Zeroizing::new(crate::random::bytes(SECRET_LEN)))
    }

    /// Wraps secret bytes (decrypted from storage).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret in base32 (RFC 4648, no padding), as authenticator apps take it.
    pub fn to_base32(&self) -> String {
        base32(&self.0)
    }

    /// The `otpauth://totp/…` URI of RFC 6238 as used by authenticator apps (Key Uri Format):
    /// issuer "ETX Hub", account = the username.
    pub fn otpauth_uri(&self, account: &str) -> String {
        format!(
            "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            issuer = percent_encode(ISSUER),
            account = percent_encode(account),
            secret = self.to_base32(),
        )
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// The time step of a Unix time (floor division, also for times before 1970).
pub fn step_of(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(STEP_SECS)
}

/// HOTP (RFC 4226 §5.3): HMAC-SHA1 of the big-endian counter, dynamic truncation, modulo
/// `10^digits`.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let mut mac = match <Hmac<Sha1> as KeyInit>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let bin = (u32::from(h[offset]) & 0x7f) << 24
        | u32::from(h[offset + 1]) << 16
        | u32::from(h[offset + 2]) << 8
        | u32::from(h[offset + 3]);
    bin % 10u32.pow(digits)
}

/// The code for step `step`, zero-padded to `digits`.
pub fn code_for_step(secret: &[u8], step: i64, digits: u32) -> String {
    let counter = u64::try_from(step).unwrap_or(0);
    format!(
        "{:0width$}",
        hotp(secret, counter, digits),
        width = digits as usize
    )
}

/// The code at a Unix time (RFC 6238 §4: `T = floor(unix / 30)`).
pub fn code_at(secret: &[u8], unix_secs: i64, digits: u32) -> String {
    code_for_step(secret, step_of(unix_secs), digits)
}

/// Checks a submitted 6-digit code at `unix_secs`: it must match the current step or one step
/// either side ([`DRIFT_STEPS`]), and that step must be later than `last_used_step` (replay
/// protection). Returns the matched step, which the caller MUST record atomically as the new
/// last used step before accepting the sign-in. Spaces in the submitted code are ignored.
pub fn verify(secret: &[u8], submitted: &str, unix_secs: i64, last_used_step: Option<i64>) -> Option<i64> {
    let code: String = submitted.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step_of(unix_secs);
    let mut matched = None;
    // Every candidate is computed and compared in constant time, so timing does not say
    // which step (if any) matched.
    for step in (now - DRIFT_STEPS)..=(now + DRIFT_STEPS) {
        if step < 0 {
            continue;
        }
        let expected = code_for_step(secret, step, DIGITS);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
            matched = Some(step);
        }
    }
    matched.filter(|s| last_used_step.is_none_or(|last| *s > last))
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 0x1f) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 0x1f) as usize]));
    }
    out
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        for (t, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(code_at(RFC_SECRET, t, 8), code, "T = {t}");
        }
    }

    #[test]
    fn rfc_4226_appendix_d_hotp_vectors() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64, 6), *code, "counter {counter}");
        }
    }

    #[test]
    fn codes_one_step_either_side_are_accepted_and_two_steps_are_not() {
        let t = 1_800_000_015;
        let now = step_of(t);
        for (offset, accepted) in [(-2, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code = code_for_step(RFC_SECRET, now + offset, 6);
            assert_eq!(
                verify(RFC_SECRET, &code, t, None),
                accepted.then_some(now + offset),
                "offset {offset}"
            );
        }
    }

    #[test]
    fn a_used_step_or_an_older_one_is_refused() {
        let t = 1_800_000_015;
        let now = step_of(t);
        let code = code_at(RFC_SECRET, t, 6);
        assert_eq!(verify(RFC_SECRET, &code, t, None), Some(now));
        assert_eq!(verify(RFC_SECRET, &code, t, Some(now)), None, "replay");
        let previous = code_for_step(RFC_SECRET, now - 1, 6);
        assert_eq!(verify(RFC_SECRET, &previous, t, Some(now)), None, "older step");
        let next = code_for_step(RFC_SECRET, now + 1, 6);
        assert_eq!(verify(RFC_SECRET, &next, t, Some(now)), Some(now + 1));
    }

    #[test]
    fn malformed_codes_are_refused() {
        let t = 1_800_000_015;
        for bad in ["", "12345", "1234567", "12345a", "１２３４５６", "-12345"] {
            assert_eq!(verify(RFC_SECRET, bad, t, None), None, "{bad:?}");
        }
        let code = code_at(RFC_SECRET, t, 6);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(verify(RFC_SECRET, &spaced, t, None).is_some());
    }

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        for (input, out) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), out);
        }
    }

    #[test]
    fn the_uri_names_the_issuer_and_account_and_the_secret_never_prints() {
        let s = TotpSecret::from_bytes(RFC_SECRET.to_vec());
        let uri = s.otpauth_uri("an.admin@hcm");
        assert!(
            uri.starts_with("otpauth://totp/ETX%20Hub:an.admin%40hcm?secret="),
            "{uri}"
        );
        assert!(uri.contains("&issuer=ETX%20Hub"));
        assert!(!format!("{s:?}").contains(&s.to_base32()));
        assert_eq!(TotpSecret::generate().as_bytes().len(), SECRET_LEN);
    }
}
