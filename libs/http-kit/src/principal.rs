//! The authenticated caller: established by the gateway, verified by every service
//! (DESIGN.md §5, R-SEC-1).
//!
//! * All-in-one mode: the gateway middleware authenticates the API key or token and calls
//!   `req.extensions_mut().insert(principal)`; the [`Principal`] extractor takes it from there.
//! * Distributed mode: the gateway forwards the principal in the [`PRINCIPAL_HEADER`] header,
//!   signed by [`PrincipalSigner::sign`]; services hold the same secret as
//!   `web::Data<PrincipalSigner>` and the extractor verifies it.
//!
//! Token format: `v1.<payload>.<signature>` where `payload` is base64url (no padding) of the
//! JSON of the principal's fields plus `iat` and `exp` (Unix seconds) and `signature` is
//! base64url of HMAC-SHA256 over `v1.<payload>` (the version is signed too). Tokens live
//! briefly (30 s by default) and 5 s of clock skew is tolerated. The gateway MUST strip any
//! `x-etx-principal` header that arrives from outside before forwarding.
//!
//! Every failure — no principal, a garbled, tampered, expired or foreign-key token — is one
//! [`ErrorCode::UntrustedCaller`] (401), so a caller learns nothing about why.

use crate::error::ApiError;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use etx_domain::authz::{self, Actor, Denial, OrgScope, Permission};
use etx_domain::{ApiKeyId, Classification, ErrorCode, OrgId, SystemId};
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::future::{Ready, ready};
use std::time::Duration;

/// The header carrying the signed principal from the gateway to a service.
pub const PRINCIPAL_HEADER: &str = "x-etx-principal";

/// Default lifetime of a signed principal.
pub const DEFAULT_PRINCIPAL_TTL: Duration = Duration::from_secs(30);

const VERSION_PREFIX: &str = "v1.";
const CLOCK_SKEW_SECS: i64 = 5;
/// Far above any real principal; refuses oversized headers before any work.
const MAX_TOKEN_LEN: usize = 8 * 1024;

type HmacSha256 = Hmac<Sha256>;

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The organisation acted for.
    pub org_id: OrgId,
    /// The connected system, when a system (not a person) calls.
    pub system_id: Option<SystemId>,
    /// The API key used, if any.
    pub key_id: Option<ApiKeyId>,
    /// Who calls, e.g. `system:<id>` or `user:<id>`.
    pub subject: String,
    /// Granted roles.
    pub roles: Vec<String>,
    /// The scopes of a connected system's credential (API key or OAuth2 token, R-SEC-1); empty
    /// for a person.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The client's IP address as the gateway saw it.
    pub client_ip: Option<String>,
}

impl Principal {
    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// The principal as the authorisation policy sees it: a connected system (with its
    /// credential's scopes) or a person (with their roles).
    pub fn actor(&self) -> Actor<'_> {
        if self.system_id.is_some() {
            Actor::System { scopes: &self.scopes }
        } else {
            Actor::Person { roles: &self.roles }
        }
    }

    /// Refuses unless the policy grants `permission` (issue 4 §3, one policy:
    /// [`etx_domain::authz`]): `403 forbidden`, or `403 insufficient_scope` naming the scope.
    pub fn require(&self, permission: Permission) -> Result<(), ApiError> {
        authz::decide(self.actor(), permission).map_err(denial_error)
    }

    /// The highest classification this principal reads in clear ([`authz::clearance`]).
    pub fn clearance(&self) -> Classification {
        authz::clearance(self.actor())
    }

    /// The organisations whose objects this principal reads ([`authz::org_scope`]): a system
    /// its own organisation's, a person their home organisation's subtree.
    pub fn org_scope(&self) -> OrgScope {
        authz::org_scope(self.actor(), self.org_id)
    }
}

/// The problem a policy refusal answers.
pub fn denial_error(d: Denial) -> ApiError {
    match d {
        Denial::Forbidden => ApiError::new(ErrorCode::Forbidden)
            .with_detail("the caller's roles or kind do not allow this operation"),
        Denial::MissingScope(s) => ApiError::new(ErrorCode::InsufficientScope)
            .with_detail(format!("the credential needs the scope `{s}`")),
    }
}

#[derive(Serialize)]
struct ClaimsOut<'a> {
    #[serde(flatten)]
    principal: &'a Principal,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct ClaimsIn {
    #[serde(flatten)]
    principal: Principal,
    iat: i64,
    exp: i64,
}

/// Signs and verifies the principal forwarded from gateway to services in distributed mode.
///
/// Use a secret of at least 32 random bytes. The secret never appears in `Debug` output.
#[derive(Clone)]
pub struct PrincipalSigner {
    mac: HmacSha256,
    ttl_secs: i64,
}

impl std::fmt::Debug for PrincipalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalSigner")
            .field("secret", &"<redacted>")
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl PrincipalSigner {
    /// A signer with this shared secret and token lifetime (at least one second).
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        if secret.len() < 32 {
            tracing::warn!(
                len = secret.len(),
                "principal signing secret is shorter than 32 bytes"
            );
        }
        let mac = match HmacSha256::new_from_slice(secret) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        let ttl_secs = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX).max(1);
        Self { mac, ttl_secs }
    }

    /// The signed header value for `p`, valid from now for the configured lifetime.
    pub fn sign(&self, p: &Principal) -> String {
        self.sign_at(p, now())
    }

    /// Verifies a header value and returns its principal; any failure is `UntrustedCaller`.
    pub fn verify(&self, header: &str) -> Result<Principal, ApiError> {
        self.verify_at(header, now()).map_err(|reason| {
            tracing::warn!(reason, "rejected forwarded principal");
            ApiError::new(ErrorCode::UntrustedCaller)
        })
    }

    fn sign_at(&self, p: &Principal, now: i64) -> String {
        let claims = ClaimsOut {
            principal: p,
            iat: now,
            exp: now.saturating_add(self.ttl_secs),
        };
        // Serialising plain data to JSON cannot fail.
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let signed = format!("{VERSION_PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signed}.{sig}")
    }

    fn verify_at(&self, header: &str, now: i64) -> Result<Principal, &'static str> {
        if header.len() > MAX_TOKEN_LEN {
            return Err("too long");
        }
        if !header.starts_with(VERSION_PREFIX) {
            return Err("unknown version");
        }
        let (signed, sig_b64) = header.rsplit_once('.').ok_or("malformed")?;
        let payload_b64 = signed.strip_prefix(VERSION_PREFIX).ok_or("malformed")?;
        if payload_b64.contains('.') {
            return Err("malformed");
        }
        let sig = URL_SAFE_NO_PAD
            .decode(sig_b64)
            .map_err(|_| "malformed signature")?;
        let mut mac = self.mac.clone();
        mac.update(signed.as_bytes());
        // Constant-time comparison.
        mac.verify_slice(&sig).map_err(|_| "bad signature")?;

        let json = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| "malformed payload")?;
        let claims: ClaimsIn = serde_json::from_slice(&json).map_err(|_| "malformed claims")?;
        if claims.iat > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err("issued in the future");
        }
        // The verifier's own lifetime bounds the token too, whatever `exp` says.
        let expires = claims.exp.min(claims.iat.saturating_add(self.ttl_secs));
        if now > expires.saturating_add(CLOCK_SKEW_SECS) {
            return Err("expired");
        }
        Ok(claims.principal)
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    /// The in-process principal from the request extensions if present, else the verified
    /// [`PRINCIPAL_HEADER`] (with `web::Data<PrincipalSigner>` or `PrincipalSigner` app data);
    /// otherwise `UntrustedCaller`.
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(principal_of(req))
    }
}

fn principal_of(req: &HttpRequest) -> Result<Principal, ApiError> {
    if let Some(p) = req.extensions().get::<Principal>() {
        return Ok(p.clone());
    }
    let untrusted = || ApiError::new(ErrorCode::UntrustedCaller);
    let signer = req
        .app_data::<web::Data<PrincipalSigner>>()
        .map(|d| d.get_ref())
        .or_else(|| req.app_data::<PrincipalSigner>())
        .ok_or_else(untrusted)?;
    let header = req
        .headers()
        .get(PRINCIPAL_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(untrusted)?;
    let principal = signer.verify(header)?;
    // Later extractions in this request reuse it.
    req.extensions_mut().insert(principal.clone());
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal {
            org_id: OrgId::new(),
            system_id: Some(SystemId::new()),
            key_id: Some(ApiKeyId::new()),
            subject: "system:abc".into(),
            roles: vec!["submitter".into()],
            scopes: Vec::new(),
            client_ip: Some("203.0.113.7".into()),
        }
    }

    fn signer() -> PrincipalSigner {
        PrincipalSigner::new(b"0123456789abcdef0123456789abcdef", DEFAULT_PRINCIPAL_TTL)
    }

    #[test]
    fn signed_principal_round_trips() {
        let p = principal();
        let token = signer().sign(&p);
        assert!(token.starts_with("v1."));
        assert_eq!(signer().verify(&token).ok(), Some(p));
    }

    #[test]
    fn principal_without_optional_fields_round_trips() {
        let p = Principal {
            system_id: None,
            key_id: None,
            scopes: Vec::new(),
            client_ip: None,
            roles: vec![],
            ..principal()
        };
        assert_eq!(signer().verify(&signer().sign(&p)).ok(), Some(p));
    }

    #[test]
    fn tampered_payload_is_untrusted() {
        let s = signer();
        let token = s.sign(&principal());
        let (signed, sig) = token.rsplit_once('.').unwrap();
        let payload = signed.strip_prefix("v1.").unwrap();
        let mut json: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        json["roles"] = serde_json::json!(["admin"]);
        let forged = format!(
            "v1.{}.{sig}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap())
        );
        let err = s.verify(&forged).unwrap_err();
        assert_eq!(err.code, ErrorCode::UntrustedCaller);
    }

    #[test]
    fn tampered_signature_is_untrusted() {
        let s = signer();
        let token = s.sign(&principal());
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let token = String::from_utf8(bytes).unwrap();
        assert_eq!(s.verify(&token).unwrap_err().code, ErrorCode::UntrustedCaller);
    }

    #[test]
    fn wrong_secret_is_untrusted() {
        let token = signer().sign(&principal());
        let other = PrincipalSigner::new(b"another secret of enough length!!", DEFAULT_PRINCIPAL_TTL);
        assert_eq!(other.verify(&token).unwrap_err().code, ErrorCode::UntrustedCaller);
    }

    #[test]
    fn expired_token_is_untrusted_after_the_skew() {
        let s = signer();
        let t0 = 1_800_000_000;
        let token = s.sign_at(&principal(), t0);
        assert!(s.verify_at(&token, t0 + 30 + 5).is_ok());
        assert_eq!(s.verify_at(&token, t0 + 30 + 6), Err("expired"));
        assert_eq!(
            s.verify(&s.sign_at(&principal(), t0)).unwrap_err().code,
            ErrorCode::UntrustedCaller
        );
    }

    #[test]
    fn token_from_the_future_is_untrusted() {
        let s = signer();
        let t0 = 1_800_000_000;
        let token = s.sign_at(&principal(), t0);
        assert!(s.verify_at(&token, t0 - 5).is_ok());
        assert_eq!(s.verify_at(&token, t0 - 6), Err("issued in the future"));
    }

    #[test]
    fn verifier_lifetime_bounds_a_long_lived_token() {
        let long = PrincipalSigner::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(3600));
        let t0 = 1_800_000_000;
        let token = long.sign_at(&principal(), t0);
        assert!(signer().verify_at(&token, t0 + 60).is_err());
        assert!(long.verify_at(&token, t0 + 60).is_ok());
    }

    #[test]
    fn garbage_is_untrusted() {
        let s = signer();
        for g in [
            "",
            "v1.",
            "v1..",
            "v2.abc.def",
            "v1.abc",
            "v1.a.b.c",
            "v1.!!!.???",
            "Bearer xyz",
            &"v1.".repeat(5000),
        ] {
            assert_eq!(
                s.verify(g).unwrap_err().code,
                ErrorCode::UntrustedCaller,
                "{g:.20}"
            );
        }
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let s = PrincipalSigner::new(b"super-secret-value-0123456789abcd", DEFAULT_PRINCIPAL_TTL);
        let dbg = format!("{s:?}");
        assert!(dbg.contains("redacted"));
        assert!(!dbg.contains("super-secret"));
    }
}
