//! Passwords of people (R-SEC-5): the policy a new password must meet, argon2id hashing in PHC
//! strings, and generated temporary passwords.
//!
//! # Policy (NIST SP 800-63B §5.1.1.2)
//! 12 to 128 characters (any characters, spaces included; no composition rules), not
//! containing the username, not one of the commonly used passwords in
//! `data/common-passwords.txt`. Every broken rule is reported at once, at the field's path.
//!
//! # Hashing (OWASP Password Storage Cheat Sheet)
//! argon2id v19, m = 19 MiB, t = 2, p = 1, 16-byte random salt, stored as a PHC string
//! (`$argon2id$v=19$m=19456,t=2,p=1$…`), so parameters can be raised later and old hashes still
//! verify. Hashing takes tens of milliseconds of CPU: callers run it on the blocking pool.

use crate::account::Username;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use etx_domain::{FieldViolation, ViolationCode};
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Fewest characters.
pub const MIN_LEN: usize = 12;
/// Most characters.
pub const MAX_LEN: usize = 128;

const COMMON: &str = include_str!("../data/common-passwords.txt");

fn common() -> &'static std::collections::HashSet<String> {
    static SET: OnceLock<std::collections::HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| {
        COMMON
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_lowercase)
            .collect()
    })
}

/// The rules `password` breaks for an account named `username`, as violations at `path`
/// (empty when it is acceptable).
pub fn check_policy(password: &str, username: &str, path: &str) -> Vec<FieldViolation> {
    let mut out = Vec::new();
    let len = password.chars().count();
    if len < MIN_LEN {
        out.push(FieldViolation::new(path, ViolationCode::TooSmall).with_detail("at least 12 characters"));
    }
    if len > MAX_LEN {
        out.push(FieldViolation::new(path, ViolationCode::TooLarge).with_detail("at most 128 characters"));
    }
    let lower = password.to_lowercase();
    let user = username.trim().to_lowercase();
    if user.chars().count() >= 3 && lower.contains(&user) {
        out.push(
            FieldViolation::new(path, ViolationCode::Invalid).with_detail("must not contain the username"),
        );
    }
    if common().contains(&lower) {
        out.push(
            FieldViolation::new(path, ViolationCode::Invalid).with_detail("is a commonly used password"),
        );
    }
    out
}

/// Characters of generated passwords: no look-alikes (0/O, 1/l/I).
const GENERATED_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Length of generated temporary passwords (~117 bits).
pub const GENERATED_LEN: usize = 20;

/// A random temporary password that meets the policy for `username`.
pub fn generate_temporary(username: &Username) -> Zeroizing<String> {
    loop {
        let p = Zeroizing::new(crate::random::string_from(GENERATED_ALPHABET, GENERATED_LEN));
        if check_policy(&p, username.as_str(), "/password").is_empty() {
            return p;
        }
    }
}

/// Why a hash could not be made or read.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// argon2id hashing with fixed parameters (see the module docs).
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    dummy: std::sync::Arc<OnceLock<String>>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::owasp()
    }
}

impl PasswordHasher {
    /// OWASP's argon2id parameters: m = 19 MiB, t = 2, p = 1.
    pub fn owasp() -> Self {
        Self {
            params: Params::DEFAULT,
            dummy: std::sync::Arc::new(OnceLock::new()),
        }
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// The PHC string of `password` with a fresh random salt. CPU-heavy: call it on the
    /// blocking pool.
    pub fn hash(&self, password: &str) -> Result<String, HashError> {
        self.argon2()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Whether `password` matches the PHC string `phc` (parameters are read from it). An
    /// unreadable hash never matches. CPU-heavy: call it on the blocking pool.
    pub fn verify(&self, password: &str, phc: &str) -> bool {
        match PasswordHash::new(phc) {
            Ok(parsed) => self
                .argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(e) => {
                tracing::error!(error = %e, "stored password hash is unreadable");
                false
            }
        }
    }

    /// Verifies `password` against a hash of a random password, so that signing in with an
    /// unknown username takes as long as with a known one. Always false.
    pub fn verify_dummy(&self, password: &str) -> bool {
        let dummy = self.dummy.get_or_init(|| {
            let random = crate::random::token(32);
            self.hash(&random).unwrap_or_default()
        });
        if dummy.is_empty() {
            // Still spend the time of one hash.
            let _ = self.hash(password);
            return false;
        }
        let _ = self.verify(password, dummy);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(p: &str, user: &str) -> Vec<(ViolationCode, String)> {
        check_policy(p, user, "/password")
            .into_iter()
            .map(|v| (v.code, v.detail.unwrap_or_default()))
            .collect()
    }

    #[test]
    fn the_policy_reports_every_broken_rule_at_the_field() {
        assert!(codes("correct horse battery staple", "an.admin").is_empty());
        assert_eq!(codes("short", "an.admin")[0].0, ViolationCode::TooSmall);
        assert_eq!(codes(&"x".repeat(129), "an.admin")[0].0, ViolationCode::TooLarge);
        assert!(
            codes(&"é".repeat(12), "an.admin").is_empty(),
            "characters, not bytes"
        );
        let v = codes("my-An.Admin-password", "an.admin");
        assert_eq!(v.len(), 1);
        assert!(v[0].1.contains("username"));
        let v = codes("Password1234", "an.admin");
        assert!(v[0].1.contains("common"), "case-insensitive: {v:?}");
        let v = check_policy("admin", "admin", "/new_password");
        assert_eq!(v.len(), 2, "too short and contains the username: {v:?}");
        assert!(v.iter().all(|v| v.path == "/new_password"));
    }

    #[test]
    fn generated_passwords_meet_the_policy() {
        let u = Username::parse("an.admin").unwrap();
        let p = generate_temporary(&u);
        assert_eq!(p.len(), GENERATED_LEN);
        assert!(check_policy(&p, "an.admin", "/p").is_empty());
        assert_ne!(*p, *generate_temporary(&u));
    }

    #[test]
    fn hashes_are_argon2id_phc_strings_that_verify_only_the_password() {
        let h = PasswordHasher::owasp();
        let phc = h.hash("correct horse battery staple").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("correct horse battery staple", &phc));
        assert!(!h.verify("correct horse battery stapler", &phc));
        assert!(!h.verify("x", "not a hash"));
        assert_ne!(phc, h.hash("correct horse battery staple").unwrap(), "salted");
        assert!(!h.verify_dummy("correct horse battery staple"));
    }
}
