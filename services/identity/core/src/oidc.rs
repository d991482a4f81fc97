//! Sign-in of people through an external OpenID Connect provider (issue 4 §4, R-SEC-5, R-SEC-6):
//! the rules that need no I/O, and the port through which the use case
//! ([`crate::accounts::OidcSignIn`]) talks to the provider.
//!
//! * [`OidcSettings`] — which provider and client, which claim names the account, whether the
//!   provider's own MFA is trusted, which signature algorithms are accepted.
//! * [`JwkSet`] — the provider's public signing keys (RFC 7517): RSA, and EC on P-256 / P-384.
//! * [`verify_id_token`] — every check of an ID token (OpenID Connect Core §3.1.3.7): a compact
//!   JWS signed with an allowed algorithm (never `none`, never a MAC) by one of the provider's
//!   keys, `iss` equal to the issuer, `aud` containing the client id (and `azp` equal to it when
//!   present or when there are several audiences), `exp`, `iat` and `nbf` within
//!   [`MAX_SKEW_SECS`], and the `nonce` of this sign-in.
//! * [`PendingOidcLogin`] — a started sign-in as stored: the keyed hashes of its `state` and of
//!   the browser-binding token, and its nonce; single use, [`LOGIN_TTL_SECS`]. The PKCE verifier
//!   is not stored: it is derived from the `state` with the keyed-hash key, so a database dump
//!   holds nothing that redeems an intercepted code.
//! * the binding cookie ([`binding_cookie`]): `SameSite=Lax`, because the provider sends the
//!   browser back with a cross-site top-level navigation, which a `Strict` cookie would miss.
//! * [`OidcProvider`] — the port: authorization URL with PKCE, code exchange, signing keys.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// How long a started sign-in may wait for the provider's answer, in seconds.
pub const LOGIN_TTL_SECS: i64 = 600;
/// Clock difference tolerated with the provider when checking `exp`, `iat` and `nbf`.
pub const MAX_SKEW_SECS: i64 = 60;
/// Longest ID token looked at.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// `amr` values (RFC 8176) that show the provider used more than a password: multiple factors,
/// a one-time password or a hardware key.
pub const MFA_AMR_VALUES: [&str; 3] = ["mfa", "otp", "hwk"];

/// A JWS signature algorithm an ID token may be signed with (RFC 7518 §3). `none` and the MAC
/// algorithms (`HS*`) are not among them: a MAC keyed with the client secret would let anyone
/// holding that secret forge tokens, and `none` is no signature at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JwsAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// ECDSA on P-384 with SHA-384.
    Es384,
}

impl JwsAlg {
    /// Every supported algorithm.
    pub const ALL: [JwsAlg; 8] = [
        Self::Rs256,
        Self::Rs384,
        Self::Rs512,
        Self::Ps256,
        Self::Ps384,
        Self::Ps512,
        Self::Es256,
        Self::Es384,
    ];

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Rs384 => "RS384",
            Self::Rs512 => "RS512",
            Self::Ps256 => "PS256",
            Self::Ps384 => "PS384",
            Self::Ps512 => "PS512",
            Self::Es256 => "ES256",
            Self::Es384 => "ES384",
        }
    }

    /// Parses a JOSE name (exact case); `None` for `none`, `HS*` and anything unsupported.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

impl fmt::Display for JwsAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How ID tokens of the configured provider are checked and linked to accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    /// The issuer identifier, exactly as the provider writes it in `iss`.
    pub issuer: String,
    /// The hub's client id at the provider (an ID token's `aud` must contain it).
    pub client_id: String,
    /// The claim whose value is the hub username of the person (no account is ever created
    /// from it). For `email`, the token must also say `email_verified: true`.
    pub username_claim: String,
    /// Whether a token whose `amr` shows the provider's own multi-factor sign-in
    /// ([`MFA_AMR_VALUES`]) replaces the hub's second factor.
    pub trust_provider_mfa: bool,
    /// The signature algorithms accepted.
    pub allowed_algs: Vec<JwsAlg>,
}

/// Which curve an EC key is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl Curve {
    fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
enum PublicKey {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `0x04 || x || y`.
    Ec { curve: Curve, point: Vec<u8> },
}

/// One public signing key of the provider.
#[derive(Clone, PartialEq, Eq)]
pub struct Jwk {
    kid: Option<String>,
    alg: Option<String>,
    key: PublicKey,
}

impl fmt::Debug for Jwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kty = match self.key {
            PublicKey::Rsa { .. } => "RSA",
            PublicKey::Ec {
                curve: Curve::P256, ..
            } => "EC P-256",
            PublicKey::Ec {
                curve: Curve::P384, ..
            } => "EC P-384",
        };
        f.debug_struct("Jwk")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kty", &kty)
            .finish()
    }
}

impl Jwk {
    /// The key id, if the provider gave one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key can verify a signature made with `alg`.
    fn fits(&self, alg: JwsAlg) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
            return false;
        }
        match (&self.key, alg) {
            (
                PublicKey::Rsa { .. },
                JwsAlg::Rs256 | JwsAlg::Rs384 | JwsAlg::Rs512 | JwsAlg::Ps256 | JwsAlg::Ps384 | JwsAlg::Ps512,
            ) => true,
            (PublicKey::Ec { curve, .. }, JwsAlg::Es256) => *curve == Curve::P256,
            (PublicKey::Ec { curve, .. }, JwsAlg::Es384) => *curve == Curve::P384,
            _ => false,
        }
    }

    fn verifies(&self, alg: JwsAlg, message: &[u8], sig: &[u8]) -> bool {
        use ring::signature as s;
        match &self.key {
            PublicKey::Rsa { n, e } => {
                let params: &s::RsaParameters = match alg {
                    JwsAlg::Rs256 => &s::RSA_PKCS1_2048_8192_SHA256,
                    JwsAlg::Rs384 => &s::RSA_PKCS1_2048_8192_SHA384,
                    JwsAlg::Rs512 => &s::RSA_PKCS1_2048_8192_SHA512,
                    JwsAlg::Ps256 => &s::RSA_PSS_2048_8192_SHA256,
                    JwsAlg::Ps384 => &s::RSA_PSS_2048_8192_SHA384,
                    JwsAlg::Ps512 => &s::RSA_PSS_2048_8192_SHA512,
                    JwsAlg::Es256 | JwsAlg::Es384 => return false,
                };
                s::RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            PublicKey::Ec { curve, point } => {
                let params: &'static s::EcdsaVerificationAlgorithm = match (alg, curve) {
                    (JwsAlg::Es256, Curve::P256) => &s::ECDSA_P256_SHA256_FIXED,
                    (JwsAlg::Es384, Curve::P384) => &s::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                s::UnparsedPublicKey::new(params, point)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }
}

/// Why a key set could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// Not a JSON object with a `keys` array.
    #[error("not a JWK set: {0}")]
    NotAKeySet(&'static str),
}

/// The provider's public signing keys (its `jwks_uri` document).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JwkSet {
    keys: Vec<Jwk>,
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    // RFC 7515 §2: base64url without padding; some providers pad anyway.
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

fn strip_leading_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

impl JwkSet {
    /// Reads a JWK set. Keys that cannot verify signatures here — symmetric (`oct`),
    /// encryption keys (`use: enc`), other curves, malformed members — are left out; the set
    /// itself must be a JSON object with a `keys` array.
    pub fn parse(json: &[u8]) -> Result<Self, JwkError> {
        let doc: Value = serde_json::from_slice(json).map_err(|_| JwkError::NotAKeySet("not JSON"))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwkError::NotAKeySet("no `keys` array"))?;
        Ok(Self {
            keys: keys
                .iter()
                .filter_map(|k| k.as_object().and_then(Self::parse_key))
                .collect(),
        })
    }

    fn parse_key(k: &Map<String, Value>) -> Option<Jwk> {
        let text = |name: &str| k.get(name).and_then(Value::as_str);
        if text("use").is_some_and(|u| u != "sig") {
            return None;
        }
        if let Some(ops) = k.get("key_ops").and_then(Value::as_array)
            && !ops.iter().any(|o| o.as_str() == Some("verify"))
        {
            return None;
        }
        let key = match text("kty")? {
            "RSA" => {
                let n = strip_leading_zeros(b64url(text("n")?)?);
                let e = strip_leading_zeros(b64url(text("e")?)?);
                if n.is_empty() || e.is_empty() {
                    return None;
                }
                PublicKey::Rsa { n, e }
            }
            "EC" => {
                let curve = match text("crv")? {
                    "P-256" => Curve::P256,
                    "P-384" => Curve::P384,
                    _ => return None,
                };
                let (x, y) = (b64url(text("x")?)?, b64url(text("y")?)?);
                let len = curve.coordinate_len();
                if x.len() != len || y.len() != len {
                    return None;
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                PublicKey::Ec { curve, point }
            }
            _ => return None,
        };
        Some(Jwk {
            kid: text("kid").map(str::to_owned),
            alg: text("alg").map(str::to_owned),
            key,
        })
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Why an ID token was refused. The variants are for logs and tests; a person is only ever told
/// that the provider's answer was not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// Not a compact JWS with JSON header and claims (or too long, or an encrypted token).
    #[error("malformed ID token: {0}")]
    Malformed(&'static str),
    /// Signed with `none`, a MAC, or an algorithm not allowed by the configuration.
    #[error("signature algorithm not allowed")]
    AlgorithmNotAllowed,
    /// No key of the provider's set fits the token's `kid` and algorithm (the set may be stale:
    /// fetch it again once).
    #[error("no signing key of the provider fits the token")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is not the configured issuer.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not contain the client id, or `azp` is missing or another client.
    #[error("wrong audience")]
    Audience,
    /// `exp` has passed.
    #[error("expired")]
    Expired,
    /// `iat` lies in the future.
    #[error("issued in the future")]
    IssuedInFuture,
    /// `nbf` lies in the future.
    #[error("not yet valid")]
    NotYetValid,
    /// `nonce` is missing or not this sign-in's.
    #[error("wrong nonce")]
    Nonce,
    /// A required claim is missing or has the wrong type.
    #[error("claim `{0}` missing or malformed")]
    MissingClaim(&'static str),
}

/// What a verified ID token says about the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdClaims {
    /// `sub`: the provider's stable identifier of the person (logged, never linked on).
    pub subject: String,
    /// The value of the configured username claim, when it is a string (and, for `email`,
    /// verified).
    pub username: Option<String>,
    /// `amr`: how the provider authenticated the person (RFC 8176), when it says.
    pub amr: Vec<String>,
    /// `iat`.
    pub issued_at: DateTime<Utc>,
}

impl IdClaims {
    /// Whether the provider says it used more than a password ([`MFA_AMR_VALUES`]).
    pub fn provider_mfa(&self) -> bool {
        self.amr.iter().any(|m| MFA_AMR_VALUES.contains(&m.as_str()))
    }
}

fn segment(s: &str, what: &'static str) -> Result<Vec<u8>, IdTokenError> {
    if s.is_empty() || s.contains('=') {
        return Err(IdTokenError::Malformed(what));
    }
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| IdTokenError::Malformed(what))
}

fn object(bytes: &[u8], what: &'static str) -> Result<Map<String, Value>, IdTokenError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(IdTokenError::Malformed(what)),
    }
}

/// A NumericDate claim (seconds since the epoch, possibly fractional) as a time.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<DateTime<Utc>>, IdTokenError> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let secs = v
        .as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f.floor() as i64))
        .ok_or(IdTokenError::MissingClaim(name))?;
    DateTime::from_timestamp(secs, 0)
        .map(Some)
        .ok_or(IdTokenError::MissingClaim(name))
}

/// Verifies an ID token received from the token endpoint for the sign-in whose nonce is
/// `nonce`, at `now`, with the provider's `keys` (see the module docs for every check). The
/// signature is checked before any claim is believed.
pub fn verify_id_token(
    token: &str,
    keys: &JwkSet,
    settings: &OidcSettings,
    nonce: &str,
    now: DateTime<Utc>,
) -> Result<IdClaims, IdTokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(IdTokenError::Malformed("too long"));
    }
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, claims_b64, sig_b64] = parts.as_slice() else {
        return Err(IdTokenError::Malformed(if parts.len() == 5 {
            "encrypted ID tokens are not supported"
        } else {
            "not a compact JWS"
        }));
    };
    let header = object(&segment(header_b64, "header")?, "header")?;
    if header.contains_key("crit") {
        return Err(IdTokenError::Malformed(
            "critical header extensions are not supported",
        ));
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(JwsAlg::parse)
        .filter(|a| settings.allowed_algs.contains(a))
        .ok_or(IdTokenError::AlgorithmNotAllowed)?;
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.as_str()),
        Some(_) => return Err(IdTokenError::Malformed("kid")),
    };
    let sig = segment(sig_b64, "signature")?;
    let message = &token.as_bytes()[..header_b64.len() + 1 + claims_b64.len()];
    let candidates: Vec<&Jwk> = keys
        .keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)) && k.fits(alg))
        .collect();
    if candidates.is_empty() {
        return Err(IdTokenError::UnknownKey);
    }
    if !candidates.iter().any(|k| k.verifies(alg, message, &sig)) {
        return Err(IdTokenError::BadSignature);
    }

    let claims = object(&segment(claims_b64, "claims")?, "claims")?;
    let text = |name: &'static str| match claims.get(name) {
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        None => Ok(None),
        Some(_) => Err(IdTokenError::MissingClaim(name)),
    };
    if text("iss")? != Some(settings.issuer.as_str()) {
        return Err(IdTokenError::Issuer);
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).collect(),
        _ => return Err(IdTokenError::Audience),
    };
    if !audiences.contains(&settings.client_id.as_str()) {
        return Err(IdTokenError::Audience);
    }
    match text("azp").map_err(|_| IdTokenError::Audience)? {
        Some(azp) if azp != settings.client_id => return Err(IdTokenError::Audience),
        None if audiences.len() > 1 => return Err(IdTokenError::Audience),
        _ => {}
    }
    let skew = TimeDelta::seconds(MAX_SKEW_SECS);
    let exp = numeric_date(&claims, "exp")?.ok_or(IdTokenError::MissingClaim("exp"))?;
    if now >= exp + skew {
        return Err(IdTokenError::Expired);
    }
    let iat = numeric_date(&claims, "iat")?.ok_or(IdTokenError::MissingClaim("iat"))?;
    if iat > now + skew {
        return Err(IdTokenError::IssuedInFuture);
    }
    if numeric_date(&claims, "nbf")?.is_some_and(|nbf| nbf > now + skew) {
        return Err(IdTokenError::NotYetValid);
    }
    let token_nonce = text("nonce").map_err(|_| IdTokenError::Nonce)?.unwrap_or("");
    if token_nonce.is_empty() || !bool::from(token_nonce.as_bytes().ct_eq(nonce.as_bytes())) {
        return Err(IdTokenError::Nonce);
    }
    let subject = text("sub")?
        .filter(|s| !s.is_empty())
        .ok_or(IdTokenError::MissingClaim("sub"))?
        .to_owned();
    let mut username = claims
        .get(&settings.username_claim)
        .and_then(Value::as_str)
        .map(str::to_owned);
    if settings.username_claim == "email" && claims.get("email_verified") != Some(&Value::Bool(true)) {
        username = None;
    }
    let amr = match claims.get("amr") {
        None => Vec::new(),
        Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(_) => return Err(IdTokenError::MissingClaim("amr")),
    };
    Ok(IdClaims {
        subject,
        username,
        amr,
        issued_at: iat,
    })
}

/// Whether a URL of the provider (issuer, endpoints, key set) may be used: HTTPS, or plain
/// HTTP to the loopback interface only (a provider on the same host; tests). No user
/// information in the authority.
pub fn endpoint_url_allowed(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    let (https, rest) = if let Some(r) = lower.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = lower.strip_prefix("http://") {
        (false, r)
    } else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return false;
    }
    if https {
        return true;
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A started sign-in as stored (single use, [`LOGIN_TTL_SECS`]): never the `state`, the binding
/// token or the PKCE verifier, only keyed hashes of the first two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingOidcLogin {
    /// Keyed hash of the `state` sent to the provider.
    pub state_hash: Vec<u8>,
    /// Keyed hash of the binding token in the browser's cookie.
    pub binding_hash: Vec<u8>,
    /// The `nonce` the ID token must carry (not a secret: it travels in the authorization URL).
    pub nonce: String,
    /// When the sign-in started.
    pub created_at: DateTime<Utc>,
    /// When it stops being usable.
    pub expires_at: DateTime<Utc>,
}

/// The cookie binding a started sign-in to the browser that started it (login CSRF).
pub const BINDING_COOKIE: &str = "etx_oidc_binding";
/// The path the binding cookie is sent to: the sign-in endpoints only.
pub const BINDING_COOKIE_PATH: &str = "/api/v1/auth/oidc";

/// The `Set-Cookie` value of the binding token: `HttpOnly`, `Secure`, `SameSite=Lax` (the
/// provider's redirect back is a cross-site top-level GET, which `Lax` allows and `Strict`
/// would not), only for the sign-in endpoints, for [`LOGIN_TTL_SECS`].
pub fn binding_cookie(token: &str) -> String {
    format!(
        "{BINDING_COOKIE}={token}; HttpOnly; Secure; SameSite=Lax; Path={BINDING_COOKIE_PATH}; Max-Age={LOGIN_TTL_SECS}"
    )
}

/// The `Set-Cookie` value that removes the binding cookie.
pub fn expired_binding_cookie() -> String {
    format!("{BINDING_COOKIE}=; HttpOnly; Secure; SameSite=Lax; Path={BINDING_COOKIE_PATH}; Max-Age=0")
}

/// The binding token in `Cookie` header values; `None` when absent or empty.
pub fn binding_token_in<'a>(cookie_headers: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    crate::account::cookie_value_in(BINDING_COOKIE, cookie_headers)
}

/// Why the provider could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// It could not be reached, timed out or answered with a server error: try again later.
    #[error("identity provider unavailable: {0}")]
    Unavailable(anyhow::Error),
    /// It refused the request with an OAuth error (e.g. `invalid_grant`); the code says which.
    #[error("identity provider refused: {0}")]
    Refused(String),
    /// It answered something that is not a valid answer (no ID token, not JSON, wrong issuer in
    /// its metadata, a URL that is neither HTTPS nor loopback).
    #[error("identity provider answered wrongly: {0}")]
    Invalid(anyhow::Error),
}

/// The external OpenID provider, as the sign-in use case needs it. Implemented over HTTP by
/// the server crate (discovery from `{issuer}/.well-known/openid-configuration`).
#[async_trait::async_trait]
pub trait OidcProvider: Send + Sync + fmt::Debug {
    /// The URL that starts a sign-in with this `state` and `nonce`: the authorization endpoint
    /// with `response_type=code`, the client id, the redirect URI, the scopes and the S256
    /// challenge (RFC 7636) of `pkce_verifier`. MUST return `Unavailable` when the provider's
    /// metadata cannot be fetched, and `Invalid` when it is not usable.
    async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<String, ProviderError>;

    /// Exchanges an authorization code, with its PKCE verifier, at the token endpoint
    /// (authenticating the client), and returns the ID token as received, unverified. MUST
    /// return `Refused` with the OAuth error code when the provider answers with one (e.g.
    /// `invalid_grant` for a wrong verifier), `Invalid` when the answer has no ID token or is
    /// not a token response, `Unavailable` when the provider cannot be reached or fails.
    async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<Zeroizing<String>, ProviderError>;

    /// The provider's signing keys. A cached set may be returned; `refresh` asks for a fresh
    /// one (a token names a key the cached set lacks), which an implementation MAY serve from
    /// its cache when it refreshed very recently, to bound the load a stream of unknown key ids
    /// causes.
    async fn signing_keys(&self, refresh: bool) -> Result<Arc<JwkSet>, ProviderError>;
}

#[cfg(test)]
pub(crate) mod testing {
    //! Keys and tokens for tests: ES256 keys generated by ring, an RSA key by `openssl`.

    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};

    /// A signing key of a test provider.
    pub(crate) enum TestKey {
        Ec(EcdsaKeyPair),
        Rsa(RsaKeyPair),
    }

    pub(crate) fn es256() -> TestKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap_or_else(|e| panic!("{e}"));
        TestKey::Ec(
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    /// A 2048-bit RSA key from `openssl genpkey` (ring cannot generate RSA keys).
    pub(crate) fn rsa() -> TestKey {
        let out = std::process::Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-outform",
                "DER",
            ])
            .output()
            .unwrap_or_else(|e| panic!("the RSA tests need the openssl command: {e}"));
        assert!(out.status.success(), "openssl genpkey failed");
        // OpenSSL 3.0 writes PKCS#1 DER here, other versions PKCS#8.
        let key = RsaKeyPair::from_pkcs8(&out.stdout).or_else(|_| RsaKeyPair::from_der(&out.stdout));
        TestKey::Rsa(key.unwrap_or_else(|e| panic!("{e}")))
    }

    impl TestKey {
        pub(crate) fn jwk(&self, kid: &str) -> Value {
            match self {
                Self::Ec(k) => {
                    let p = k.public_key().as_ref();
                    serde_json::json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
                        "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65])})
                }
                Self::Rsa(k) => {
                    let c = signature::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                    serde_json::json!({"kty": "RSA", "kid": kid, "alg": "RS256",
                        "n": URL_SAFE_NO_PAD.encode(&c.n), "e": URL_SAFE_NO_PAD.encode(&c.e)})
                }
            }
        }

        pub(crate) fn alg(&self) -> &'static str {
            match self {
                Self::Ec(_) => "ES256",
                Self::Rsa(_) => "RS256",
            }
        }

        /// A compact JWS of `claims` with this header.
        pub(crate) fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let rng = SystemRandom::new();
            let sig = match self {
                Self::Ec(k) => k
                    .sign(&rng, input.as_bytes())
                    .unwrap_or_else(|e| panic!("{e}"))
                    .as_ref()
                    .to_vec(),
                Self::Rsa(k) => {
                    let mut sig = vec![0u8; k.public().modulus_len()];
                    k.sign(&signature::RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
                        .unwrap_or_else(|e| panic!("{e}"));
                    sig
                }
            };
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
        }

        pub(crate) fn sign(&self, kid: &str, claims: &Value) -> String {
            self.sign_with_header(
                &serde_json::json!({"alg": self.alg(), "kid": kid, "typ": "JWT"}),
                claims,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use serde_json::json;

    fn settings() -> OidcSettings {
        OidcSettings {
            issuer: "https://idp.example.gov.vn/realms/etx".into(),
            client_id: "etxhub".into(),
            username_claim: "preferred_username".into(),
            trust_provider_mfa: false,
            allowed_algs: vec![JwsAlg::Rs256, JwsAlg::Es256],
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default()
    }

    fn claims() -> Value {
        let t = now().timestamp();
        json!({"iss": "https://idp.example.gov.vn/realms/etx", "aud": "etxhub", "sub": "0f1e",
            "exp": t + 300, "iat": t, "nonce": "n-0S6_WzA2Mj", "preferred_username": "An.Admin",
            "amr": ["pwd", "otp"]})
    }

    fn set(keys: &[(&TestKey, &str)]) -> JwkSet {
        let doc = json!({"keys": keys.iter().map(|(k, kid)| k.jwk(kid)).collect::<Vec<_>>()});
        JwkSet::parse(doc.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn verify(token: &str, keys: &JwkSet) -> Result<IdClaims, IdTokenError> {
        verify_id_token(token, keys, &settings(), "n-0S6_WzA2Mj", now())
    }

    #[test]
    fn jwk_sets_keep_only_signature_keys_they_can_use() {
        let ec = es256();
        let mut doc = json!({"keys": [ec.jwk("ec-1")]});
        let keys = doc["keys"].as_array_mut().unwrap_or_else(|| unreachable!());
        keys.push(json!({"kty": "oct", "k": "c2VjcmV0", "kid": "mac"}));
        keys.push(json!({"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"}));
        keys.push(json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "short"}));
        let mut enc = ec.jwk("enc-1");
        enc["use"] = json!("enc");
        keys.push(enc);
        keys.push(json!({"kty": "RSA", "n": "!!", "e": "AQAB"}));
        keys.push(json!("not an object"));
        let set = JwkSet::parse(doc.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            set.keys().iter().map(|k| k.kid()).collect::<Vec<_>>(),
            vec![Some("ec-1")]
        );
        assert!(JwkSet::parse(b"[]").is_err());
        assert!(JwkSet::parse(b"{\"keys\": {}}").is_err());
        assert!(JwkSet::parse(b"not json").is_err());
        assert!(
            JwkSet::parse(b"{\"keys\": []}")
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
    }

    #[test]
    fn rsa_moduli_with_leading_zero_bytes_are_accepted() {
        let rsa = rsa();
        let mut jwk = rsa.jwk("r");
        let n = URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().unwrap_or_default())
            .unwrap_or_default();
        let mut padded = vec![0u8];
        padded.extend(n);
        jwk["n"] = json!(URL_SAFE_NO_PAD.encode(padded));
        let keys = JwkSet::parse(json!({"keys": [jwk]}).to_string().as_bytes()).unwrap_or_default();
        let token = rsa.sign("r", &claims());
        assert!(verify(&token, &keys).is_ok());
    }

    #[test]
    fn a_good_token_signed_with_es256_or_rs256_is_accepted() {
        let (ec, rsa) = (es256(), rsa());
        let keys = set(&[(&ec, "ec-1"), (&rsa, "rsa-1")]);
        for (key, kid) in [(&ec, "ec-1"), (&rsa, "rsa-1")] {
            let c = verify(&key.sign(kid, &claims()), &keys).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(c.subject, "0f1e");
            assert_eq!(c.username.as_deref(), Some("An.Admin"));
            assert_eq!(c.amr, vec!["pwd", "otp"]);
            assert!(c.provider_mfa());
        }
        // Without a kid, every key that fits the algorithm is tried.
        let no_kid = ec.sign_with_header(&json!({"alg": "ES256"}), &claims());
        assert!(verify(&no_kid, &keys).is_ok());
    }

    #[test]
    fn signatures_by_other_keys_or_with_forbidden_algorithms_are_refused() {
        let (ec, other) = (es256(), es256());
        let keys = set(&[(&ec, "ec-1")]);
        assert_eq!(
            verify(&other.sign("ec-1", &claims()), &keys),
            Err(IdTokenError::BadSignature)
        );
        assert_eq!(
            verify(&ec.sign("ec-2", &claims()), &keys),
            Err(IdTokenError::UnknownKey),
            "an unknown kid asks for the key set again"
        );
        // A token whose claims were changed after signing.
        let good = ec.sign("ec-1", &claims());
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        let mut c = claims();
        c["preferred_username"] = json!("someone.else");
        parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
        assert_eq!(verify(&parts.join("."), &keys), Err(IdTokenError::BadSignature));
        // alg none, with or without a signature; a MAC; an algorithm not configured.
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        assert_eq!(verify(&unsigned, &keys), Err(IdTokenError::AlgorithmNotAllowed));
        for alg in ["none", "HS256", "ES384", "RS256 ", "es256"] {
            let t = ec.sign_with_header(&json!({"alg": alg, "kid": "ec-1"}), &claims());
            assert_eq!(verify(&t, &keys), Err(IdTokenError::AlgorithmNotAllowed), "{alg}");
        }
        // An ES256 header cannot be checked with an RSA key, nor RS256 with an EC key.
        let rs = ec.sign_with_header(&json!({"alg": "RS256", "kid": "ec-1"}), &claims());
        assert_eq!(verify(&rs, &keys), Err(IdTokenError::UnknownKey));
        let crit = ec.sign_with_header(&json!({"alg": "ES256", "crit": ["exp"]}), &claims());
        assert!(matches!(verify(&crit, &keys), Err(IdTokenError::Malformed(_))));
        for bad in ["", "a.b", "a.b.c.d.e", "###.###.###", &"a".repeat(20_000)] {
            assert!(
                matches!(verify(bad, &keys), Err(IdTokenError::Malformed(_))),
                "{bad:.20}"
            );
        }
    }

    #[test]
    fn each_claim_is_checked() {
        let ec = es256();
        let keys = set(&[(&ec, "k")]);
        let t = now().timestamp();
        let with = |name: &str, value: Value| {
            let mut c = claims();
            if value.is_null() {
                c.as_object_mut().map(|o| o.remove(name));
            } else {
                c[name] = value;
            }
            verify(&ec.sign("k", &c), &keys)
        };
        assert_eq!(
            with("iss", json!("https://evil.example")),
            Err(IdTokenError::Issuer)
        );
        assert_eq!(with("iss", Value::Null), Err(IdTokenError::Issuer));
        assert_eq!(with("aud", json!("another-client")), Err(IdTokenError::Audience));
        assert_eq!(
            with("aud", json!(["another", "etxhub"])),
            Err(IdTokenError::Audience),
            "several audiences need azp"
        );
        assert_eq!(with("aud", Value::Null), Err(IdTokenError::Audience));
        assert!(with("aud", json!(["etxhub"])).is_ok());
        assert_eq!(with("azp", json!("another")), Err(IdTokenError::Audience));
        let mut c = claims();
        c["aud"] = json!(["another", "etxhub"]);
        c["azp"] = json!("etxhub");
        assert!(verify(&ec.sign("k", &c), &keys).is_ok());
        assert_eq!(with("exp", json!(t - 61)), Err(IdTokenError::Expired));
        assert!(with("exp", json!(t - 59)).is_ok(), "within the skew");
        assert_eq!(with("exp", Value::Null), Err(IdTokenError::MissingClaim("exp")));
        assert_eq!(with("exp", json!("soon")), Err(IdTokenError::MissingClaim("exp")));
        assert!(
            with("exp", json!((t + 10) as f64 + 0.5)).is_ok(),
            "fractional dates"
        );
        assert_eq!(with("iat", json!(t + 61)), Err(IdTokenError::IssuedInFuture));
        assert!(with("iat", json!(t + 59)).is_ok());
        assert_eq!(with("iat", Value::Null), Err(IdTokenError::MissingClaim("iat")));
        assert_eq!(with("nbf", json!(t + 61)), Err(IdTokenError::NotYetValid));
        assert_eq!(with("nonce", json!("another")), Err(IdTokenError::Nonce));
        assert_eq!(with("nonce", Value::Null), Err(IdTokenError::Nonce));
        assert_eq!(with("nonce", json!("")), Err(IdTokenError::Nonce));
        assert_eq!(with("sub", Value::Null), Err(IdTokenError::MissingClaim("sub")));
        assert_eq!(with("amr", json!("mfa")), Err(IdTokenError::MissingClaim("amr")));
        let c = with("amr", Value::Null).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.provider_mfa());
        for (amr, mfa) in [
            (json!(["pwd"]), false),
            (json!(["mfa"]), true),
            (json!(["hwk"]), true),
        ] {
            assert_eq!(with("amr", amr).map(|c| c.provider_mfa()), Ok(mfa));
        }
        assert_eq!(with("preferred_username", json!(7)).map(|c| c.username), Ok(None));
    }

    #[test]
    fn an_email_names_an_account_only_when_verified() {
        let ec = es256();
        let keys = set(&[(&ec, "k")]);
        let s = OidcSettings {
            username_claim: "email".into(),
            ..settings()
        };
        let mut c = claims();
        c["email"] = json!("an.admin@hcm.gov.vn");
        let check = |c: &Value| {
            verify_id_token(&ec.sign("k", c), &keys, &s, "n-0S6_WzA2Mj", now()).map(|c| c.username)
        };
        assert_eq!(check(&c), Ok(None));
        c["email_verified"] = json!("true");
        assert_eq!(check(&c), Ok(None));
        c["email_verified"] = json!(true);
        assert_eq!(check(&c), Ok(Some("an.admin@hcm.gov.vn".into())));
    }

    #[test]
    fn provider_urls_are_https_or_loopback() {
        for ok in [
            "https://idp.example.gov.vn/realms/etx",
            "HTTPS://idp.example.gov.vn",
            "http://127.0.0.1:8080/",
            "http://localhost:9000/x",
            "http://[::1]:80",
        ] {
            assert!(endpoint_url_allowed(ok), "{ok}");
        }
        for bad in [
            "http://idp.example.gov.vn",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "https://",
            "https://user@idp.example.gov.vn",
            "http://127.0.0.1.evil.example/",
            "http://localhost.evil.example/",
            "javascript:alert(1)",
        ] {
            assert!(!endpoint_url_allowed(bad), "{bad}");
        }
    }

    #[test]
    fn the_binding_cookie_is_lax_http_only_secure_and_scoped() {
        let c = binding_cookie("tok");
        for attr in [
            "etx_oidc_binding=tok",
            "HttpOnly",
            "Secure",
            "SameSite=Lax",
            "Path=/api/v1/auth/oidc",
            "Max-Age=600",
        ] {
            assert!(c.split("; ").any(|a| a == attr), "{attr} in {c}");
        }
        assert!(expired_binding_cookie().contains("Max-Age=0"));
        assert_eq!(binding_token_in(["etx_session=a; etx_oidc_binding=b"]), Some("b"));
        assert_eq!(binding_token_in(["etx_oidc_binding="]), None);
    }

    #[test]
    fn only_asymmetric_algorithms_parse() {
        for a in JwsAlg::ALL {
            assert_eq!(JwsAlg::parse(a.as_str()), Some(a));
        }
        for bad in ["none", "None", "HS256", "HS512", "", "EdDSA"] {
            assert_eq!(JwsAlg::parse(bad), None, "{bad}");
        }
    }
}
