//! Our TOTP (R-SEC-6) against an independent implementation, `totp-rs`: same codes for random
//! secrets and times, and an otpauth URI that `totp-rs` reads back into the same generator.
#![allow(clippy::unwrap_used)]

use etx_identity_core::totp::{self, TotpSecret};
use totp_rs::{Algorithm, Builder, Totp};

fn theirs(secret: &[u8], digits: u8) -> Totp {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(digits)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret.to_vec())
        .build()
        .unwrap()
}

#[test]
fn codes_agree_with_totp_rs_for_random_secrets_and_times() {
    let mut t: u64 = 1_700_000_000;
    for i in 0..300u64 {
        let secret = TotpSecret::generate();
        t = t
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407 + i)
            % 4_000_000_000;
        let digits = if i % 2 == 0 { 6 } else { 8 };
        let expected = theirs(secret.as_bytes(), digits).generate(t).to_string();
        let ours = totp::code_at(secret.as_bytes(), t as i64, u32::from(digits));
        assert_eq!(ours, expected, "t = {t}, digits = {digits}");
    }
}

#[test]
fn rfc_6238_vectors_agree_with_totp_rs() {
    let secret = b"12345678901234567890";
    for t in [
        59u64,
        1_111_111_109,
        1_111_111_111,
        1_234_567_890,
        2_000_000_000,
        20_000_000_000,
    ] {
        assert_eq!(
            totp::code_at(secret, t as i64, 8),
            theirs(secret, 8).generate(t).to_string()
        );
    }
}

#[test]
fn codes_totp_rs_generates_around_now_are_accepted_within_one_step() {
    let secret = TotpSecret::generate();
    let them = theirs(secret.as_bytes(), 6);
    let now: i64 = 1_800_000_007;
    for (offset, accepted) in [(-60i64, false), (-30, true), (0, true), (30, true), (60, false)] {
        let code = them.generate((now + offset) as u64).to_string();
        assert_eq!(
            totp::verify(secret.as_bytes(), &code, now, None).is_some(),
            accepted,
            "offset {offset}"
        );
    }
}

#[test]
fn the_otpauth_uri_reads_back_in_totp_rs_with_our_secret() {
    let secret = TotpSecret::generate();
    let uri = secret.otpauth_uri("an.admin@so-khcn.hcm");
    let parsed = Totp::from_url(&uri).unwrap();
    assert_eq!(parsed.issuer(), Some("ETX Hub"));
    assert_eq!(parsed.secret().to_base32(), secret.to_base32());
    for t in [1_800_000_000u64, 1_800_000_030, 1_900_000_000] {
        assert_eq!(
            parsed.generate(t).to_string(),
            totp::code_at(secret.as_bytes(), t as i64, 6)
        );
    }
}
