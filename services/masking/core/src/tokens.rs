//! Keyed pseudonyms (R-SEC-10, issue 5 §2): irreversible tokens `tok_…` (HMAC-SHA256) and
//! reversible tokens `rtk_…` (AES-SIV, RFC 5297), each under a key of its own per purpose, and
//! the re-identification of a reversible token, which needs an [`Authorisation`].
//!
//! Keys come from the operator's [`MasterKey`] through purpose-labelled HMAC derivations
//! ([`KeyedHasher::from_master`]); nothing here can make a token without that key:
//! * token key of purpose `p`: `KeyedHasher::from_master(master, "masking/token/" + p)`;
//!   `tok_` + base32(first 16 bytes of `HMAC(k, p ‖ 0x00 ‖ value)`), 26 lower-case characters;
//! * SIV key of purpose `p` (64 bytes, S2V key then CTR key): the two 32-byte hashes `"mac"` and
//!   `"enc"` of `KeyedHasher::from_master(master, "masking/siv/" + p)`;
//!   `rtk_` + base32(SIV ‖ ciphertext), with the associated data `etxhub/rtk/v1` and `p`.
//!
//! Both are deterministic: one value gives one token within a purpose (so masked records can
//! still be linked) and unrelated tokens across purposes.

use std::fmt;

use aes_siv::KeyInit as _;
use aes_siv::siv::Aes256Siv;
use etx_crypto::{KeyedHasher, MasterKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::ids::PhoneNumber;

/// Prefix of an irreversible token.
pub const TOKEN_PREFIX: &str = "tok_";
/// Prefix of a reversible token.
pub const REVERSIBLE_PREFIX: &str = "rtk_";
/// Bytes of HMAC output kept in a token (128 bits).
pub const TOKEN_BYTES: usize = 16;
/// Longest value a reversible token is made of, in bytes (the token is about 1.6 times longer).
pub const MAX_REVERSIBLE_LEN: usize = 1024;

const SIV_HEADER: &[u8] = b"etxhub/rtk/v1";

/// Why a policy's purpose name is a separate key: a fixed name chosen by the policy author
/// (`citizen_id`, `citizen_id.share`). 1–64 characters of `a-z`, `0-9`, `_`, `.`, `-`, starting
/// with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Purpose(String);

impl Purpose {
    /// Parses a purpose name.
    ///
    /// # Errors
    /// A short English description of the broken rule.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-');
        if s.is_empty() || s.len() > 64 {
            return Err("a purpose is 1-64 characters");
        }
        if !s.starts_with(|c: char| c.is_ascii_lowercase()) || !s.chars().all(ok) {
            return Err("a purpose is lower-case letters, digits, '_', '.', '-', starting with a letter");
        }
        Ok(Self(s.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Purpose {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Purpose> for String {
    fn from(p: Purpose) -> String {
        p.0
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a value is brought to one spelling before it is tokenised, so that `0912 345 678` and
/// `+84912345678` give the same token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalise {
    /// Surrounding whitespace removed.
    #[default]
    Trim,
    /// Only the ASCII digits kept (citizen ids, tax codes, accounts).
    Digits,
    /// A Vietnamese phone number in E.164 form (`+84…`); other values trimmed.
    Phone,
    /// Trimmed and lower-cased (e-mail addresses).
    Lowercase,
}

impl Normalise {
    /// The normalised value.
    pub fn apply(self, value: &str) -> String {
        match self {
            Self::Trim => value.trim().to_owned(),
            Self::Digits => value.chars().filter(char::is_ascii_digit).collect(),
            Self::Phone => PhoneNumber::parse(value).map_or_else(|_| value.trim().to_owned(), |p| p.e164()),
            Self::Lowercase => value.trim().to_lowercase(),
        }
    }
}

/// Why a reversible token could not be made or read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The value is longer than [`MAX_REVERSIBLE_LEN`].
    #[error("the value is too long for a reversible token")]
    TooLong,
    /// AES-SIV refused the input (does not happen for inputs within the limits).
    #[error("reversible tokenisation failed")]
    Encrypt,
}

/// Why a re-identification was refused. Messages never contain the token or the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReidentifyError {
    /// The authorisation names no actor or gives no real reason.
    #[error("invalid authorisation: {0}")]
    InvalidAuthorisation(&'static str),
    /// The authorisation is for another purpose than the one asked.
    #[error("the authorisation is for another purpose")]
    PurposeMismatch,
    /// The text is not a reversible token (`rtk_` and base32).
    #[error("not a reversible token")]
    NotAToken,
    /// The token was not made under this purpose's key, or was altered.
    #[error("the token does not belong to this purpose and key")]
    WrongKeyOrPurpose,
}

/// The authority to turn one purpose's reversible tokens back into values.
///
/// The server builds it from the signed-in principal and a stated reason, writes the audit
/// entry (R-SEC-10: every read of raw data is audited) from the [`ReidentificationEvent`] it
/// gets back, and only then shows the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorisation {
    actor: String,
    purpose: Purpose,
    reason: String,
}

impl Authorisation {
    /// `actor` (the user id or name, 1–128 characters, no control characters) asks to
    /// re-identify tokens of `purpose` because of `reason` (10–1000 characters after trimming,
    /// e.g. a case number and what it needs).
    ///
    /// # Errors
    /// [`ReidentifyError::InvalidAuthorisation`] naming the broken rule.
    pub fn new(actor: &str, purpose: Purpose, reason: &str) -> Result<Self, ReidentifyError> {
        let actor = actor.trim();
        if actor.is_empty() || actor.chars().count() > 128 || actor.chars().any(char::is_control) {
            return Err(ReidentifyError::InvalidAuthorisation(
                "the actor must be 1-128 characters without control characters",
            ));
        }
        let reason = reason.trim();
        let len = reason.chars().count();
        if !(10..=1000).contains(&len) {
            return Err(ReidentifyError::InvalidAuthorisation(
                "the reason must be 10-1000 characters",
            ));
        }
        Ok(Self {
            actor: actor.to_owned(),
            purpose,
            reason: reason.to_owned(),
        })
    }

    /// Who asked.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// For which purpose.
    pub fn purpose(&self) -> &Purpose {
        &self.purpose
    }

    /// Why.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// What the server must write to the audit log for a re-identification (no clear value in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReidentificationEvent {
    /// Who asked.
    pub actor: String,
    /// The purpose of the token.
    pub purpose: Purpose,
    /// The stated reason.
    pub reason: String,
    /// The token that was reversed.
    pub token: String,
}

/// A re-identified value and the audit event that must be recorded before it is shown.
#[must_use = "the re-identification must be audited before the value is used"]
pub struct Reidentified {
    /// The value (normalised as it was when tokenised).
    pub value: Zeroizing<String>,
    /// The audit record to write.
    pub event: ReidentificationEvent,
}

impl fmt::Debug for Reidentified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reidentified")
            .field("value", &"[redacted]")
            .field("event", &self.event)
            .finish()
    }
}

/// The token keys of every purpose, derived from one master key.
#[derive(Debug, Clone)]
pub struct TokenKeys {
    master: MasterKey,
}

impl TokenKeys {
    /// Token keys derived from `master` (the operator's masking master key; keep it apart from
    /// the storage master key so that rotating one does not touch the other).
    pub fn new(master: MasterKey) -> Self {
        Self { master }
    }

    fn hmac_key(&self, purpose: &Purpose) -> KeyedHasher {
        KeyedHasher::from_master(&self.master, &format!("masking/token/{purpose}"))
    }

    fn siv(&self, purpose: &Purpose) -> Aes256Siv {
        let h = KeyedHasher::from_master(&self.master, &format!("masking/siv/{purpose}"));
        let mut key = Zeroizing::new([0u8; 64]);
        key[..32].copy_from_slice(&h.hash("mac", b""));
        key[32..].copy_from_slice(&h.hash("enc", b""));
        match Aes256Siv::new_from_slice(&key[..]) {
            Ok(siv) => siv,
            // The slice is exactly the 64 bytes AES-256-SIV takes.
            Err(_) => unreachable!("AES-256-SIV takes a 64-byte key"),
        }
    }

    /// The irreversible token of `value` for `purpose` (the value is used as given; normalise
    /// it first).
    pub fn token(&self, purpose: &Purpose, value: &str) -> String {
        let mac = self.hmac_key(purpose).hash(purpose.as_str(), value.as_bytes());
        format!("{TOKEN_PREFIX}{}", base32_encode(&mac[..TOKEN_BYTES]))
    }

    /// The reversible token of `value` for `purpose` (deterministic).
    ///
    /// # Errors
    /// [`TokenError::TooLong`] above [`MAX_REVERSIBLE_LEN`] bytes.
    pub fn reversible_token(&self, purpose: &Purpose, value: &str) -> Result<String, TokenError> {
        if value.len() > MAX_REVERSIBLE_LEN {
            return Err(TokenError::TooLong);
        }
        let sealed = self
            .siv(purpose)
            .encrypt([SIV_HEADER, purpose.as_str().as_bytes()], value.as_bytes())
            .map_err(|_| TokenError::Encrypt)?;
        Ok(format!("{REVERSIBLE_PREFIX}{}", base32_encode(&sealed)))
    }

    /// Turns a reversible token back into its value, for the purpose `auth` is granted.
    ///
    /// # Errors
    /// [`ReidentifyError::PurposeMismatch`] when `purpose` is not the authorised one;
    /// [`ReidentifyError::NotAToken`] when `token` is not `rtk_` + base32;
    /// [`ReidentifyError::WrongKeyOrPurpose`] when it was made under another key or purpose,
    /// or altered.
    pub fn reidentify(
        &self,
        purpose: &Purpose,
        token: &str,
        auth: &Authorisation,
    ) -> Result<Reidentified, ReidentifyError> {
        if auth.purpose() != purpose {
            return Err(ReidentifyError::PurposeMismatch);
        }
        let body = token
            .strip_prefix(REVERSIBLE_PREFIX)
            .and_then(base32_decode)
            .filter(|b| b.len() >= 16)
            .ok_or(ReidentifyError::NotAToken)?;
        let clear = self
            .siv(purpose)
            .decrypt([SIV_HEADER, purpose.as_str().as_bytes()], &body)
            .map_err(|_| ReidentifyError::WrongKeyOrPurpose)?;
        let value = String::from_utf8(clear).map_err(|_| ReidentifyError::WrongKeyOrPurpose)?;
        Ok(Reidentified {
            value: Zeroizing::new(value),
            event: ReidentificationEvent {
                actor: auth.actor.clone(),
                purpose: purpose.clone(),
                reason: auth.reason.clone(),
                token: token.to_owned(),
            },
        })
    }
}

const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// RFC 4648 base32, lower case, without padding.
pub(crate) fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// The inverse of [`base32_encode`]; `None` for any other character, a length no encoding
/// has, or non-zero trailing bits.
pub(crate) fn base32_decode(text: &str) -> Option<Vec<u8>> {
    if matches!(text.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.bytes() {
        let v = BASE32.iter().position(|&a| a == c)?;
        buffer = (buffer << 5) | u32::try_from(v).ok()?;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).ok()?);
        }
    }
    ((buffer & ((1 << bits) - 1)) == 0).then_some(out)
}

/// Whether `s` has the exact shape of a token this crate makes (`tok_` + 26 base32 characters,
/// or `rtk_` + base32 of at least 16 bytes).
pub fn is_token(s: &str) -> bool {
    if let Some(body) = s.strip_prefix(TOKEN_PREFIX) {
        return body.len() == 26 && base32_decode(body).is_some();
    }
    s.strip_prefix(REVERSIBLE_PREFIX)
        .and_then(base32_decode)
        .is_some_and(|b| b.len() >= 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(MasterKey::generate("mk-test"))
    }

    fn purpose(s: &str) -> Purpose {
        Purpose::parse(s).unwrap()
    }

    fn auth(p: &str) -> Authorisation {
        Authorisation::new(
            "operator.a",
            purpose(p),
            "case 2026-KN-0042: contact the complainant",
        )
        .unwrap()
    }

    #[test]
    fn base32_matches_rfc_4648_vectors() {
        for (clear, enc) in [
            ("", ""),
            ("f", "my"),
            ("fo", "mzxq"),
            ("foo", "mzxw6"),
            ("foob", "mzxw6yq"),
            ("fooba", "mzxw6ytb"),
            ("foobar", "mzxw6ytboi"),
        ] {
            assert_eq!(base32_encode(clear.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), clear.as_bytes());
        }
        assert_eq!(base32_decode("m"), None);
        assert_eq!(base32_decode("MY"), None);
        assert_eq!(base32_decode("mz"), None, "non-zero trailing bits");
        assert_eq!(base32_decode("m1"), None);
    }

    #[test]
    fn tokens_are_stable_within_a_purpose_and_differ_across_purposes() {
        let k = keys();
        let cid = purpose("citizen_id");
        let a = k.token(&cid, "001099012345");
        assert_eq!(a, k.token(&cid, "001099012345"));
        assert_ne!(a, k.token(&cid, "001099012346"));
        assert_ne!(a, k.token(&purpose("citizen_id.share"), "001099012345"));
        assert!(a.starts_with("tok_") && a.len() == 30, "{a}");
        assert!(is_token(&a));
        assert!(!a.contains("001099012345"));
    }

    #[test]
    fn tokens_need_the_key() {
        let cid = purpose("citizen_id");
        let a = keys().token(&cid, "001099012345");
        let b = keys().token(&cid, "001099012345");
        assert_ne!(a, b, "another master key gives unrelated tokens");
        let master = MasterKey::generate("mk-same");
        let again = TokenKeys::new(master.clone());
        assert_eq!(TokenKeys::new(master).token(&cid, "x"), again.token(&cid, "x"));
    }

    #[test]
    fn reversible_tokens_round_trip_only_with_the_key_the_purpose_and_an_authorisation() {
        let k = keys();
        let cid = purpose("citizen_id");
        let t = k.reversible_token(&cid, "001099012345").unwrap();
        assert_eq!(
            t,
            k.reversible_token(&cid, "001099012345").unwrap(),
            "deterministic"
        );
        assert!(t.starts_with("rtk_") && is_token(&t), "{t}");
        assert!(!t.contains("001099012345"));
        let back = k.reidentify(&cid, &t, &auth("citizen_id")).unwrap();
        assert_eq!(back.value.as_str(), "001099012345");
        assert_eq!(back.event.actor, "operator.a");
        assert_eq!(back.event.token, t);
        assert!(!format!("{back:?}").contains("001099012345"));

        // Another key, another purpose, a purpose not authorised, a tampered token: refused.
        assert_eq!(
            keys().reidentify(&cid, &t, &auth("citizen_id")).unwrap_err(),
            ReidentifyError::WrongKeyOrPurpose
        );
        let phone = purpose("phone");
        assert_eq!(
            k.reidentify(&phone, &t, &auth("phone")).unwrap_err(),
            ReidentifyError::WrongKeyOrPurpose
        );
        assert_eq!(
            k.reidentify(&cid, &t, &auth("phone")).unwrap_err(),
            ReidentifyError::PurposeMismatch
        );
        let mut tampered = t.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'a' { b'b' } else { b'a' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert!(k.reidentify(&cid, &tampered, &auth("citizen_id")).is_err());
        for junk in ["", "rtk_", "tok_abc", "rtk_!!!", "rtk_aaaa", &t[4..]] {
            assert!(k.reidentify(&cid, junk, &auth("citizen_id")).is_err(), "{junk}");
        }
        // Empty values round-trip too.
        let empty = k.reversible_token(&cid, "").unwrap();
        assert_eq!(
            k.reidentify(&cid, &empty, &auth("citizen_id"))
                .unwrap()
                .value
                .as_str(),
            ""
        );
        assert_eq!(
            k.reversible_token(&cid, &"x".repeat(MAX_REVERSIBLE_LEN + 1)),
            Err(TokenError::TooLong)
        );
    }

    #[test]
    fn authorisations_need_an_actor_and_a_reason() {
        let p = purpose("citizen_id");
        assert!(Authorisation::new("", p.clone(), "a good long reason").is_err());
        assert!(Authorisation::new("a\u{7}b", p.clone(), "a good long reason").is_err());
        assert!(Authorisation::new("a", p.clone(), "   short  ").is_err());
        assert!(Authorisation::new("a", p, "a good long reason").is_ok());
    }

    #[test]
    fn purposes_are_simple_names() {
        assert!(Purpose::parse("citizen_id").is_ok());
        assert!(Purpose::parse("citizen_id.share-2").is_ok());
        for bad in ["", "Citizen", "1abc", "a b", "a/b", "ồ", &"a".repeat(65)] {
            assert!(Purpose::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn normalisation_gives_one_spelling() {
        assert_eq!(Normalise::Phone.apply("0912 345 678"), "+84912345678");
        assert_eq!(Normalise::Phone.apply("+84912345678"), "+84912345678");
        assert_eq!(Normalise::Phone.apply(" not a phone "), "not a phone");
        assert_eq!(Normalise::Digits.apply("001 099-012345"), "001099012345");
        assert_eq!(
            Normalise::Lowercase.apply(" Tran.Hung@Example.VN"),
            "tran.hung@example.vn"
        );
        assert_eq!(Normalise::Trim.apply(" x "), "x");
    }
}
