//! The gateway's rules, free of any framework: how a caller's credential is read from the
//! request headers (R-SEC-1), which service owns which API path (DESIGN.md §2 routing), which
//! paths need no credential and what a person's session may reach in each of its states
//! (R-SEC-5, R-SEC-6), and the rate-limit decision ([`ratelimit`], R-SEC-2).

pub mod audit;
pub mod authz;
pub mod ratelimit;

use serde::{Deserialize, Serialize};

/// A service behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upstream {
    /// Organisations, systems, keys; people, sessions, sign-in.
    Identity,
    /// Records, receipts, schemas.
    Ingestion,
    /// The masking stage and the pipeline's operations, masking policies, re-identification.
    Masking,
    /// Reconciliation: canonical records, conflicts, reporting periods, completeness.
    Reconciliation,
}

impl Upstream {
    /// The target name (`etxhub serve --target …`).
    pub fn target(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Ingestion => "ingestion",
            Self::Masking => "masking",
            Self::Reconciliation => "reconciliation",
        }
    }
}

/// The service owning an `/api/v1/...` path, by its first segment, or a `/soap/v1/<service>`
/// endpoint (R-ING-3); `None` for unknown paths.
pub fn route(path: &str) -> Option<Upstream> {
    if let Some(rest) = path.strip_prefix("/soap/v1/") {
        return match rest.split(['/', '?']).next().unwrap_or("") {
            "ingestion" => Some(Upstream::Ingestion),
            _ => None,
        };
    }
    let rest = path.strip_prefix("/api/v1/")?;
    let first = rest.split(['/', '?']).next().unwrap_or("");
    match first {
        "records" | "receipts" | "schemas" | "batches" | "exports" => Some(Upstream::Ingestion),
        "keys" | "systems" | "organisations" | "auth" | "users" | "onboarding" => Some(Upstream::Identity),
        "oauth" => Some(Upstream::Identity),
        "pipeline" | "masking" => Some(Upstream::Masking),
        "canonical-records" | "conflicts" | "periods" | "completeness" => Some(Upstream::Reconciliation),
        _ => None,
    }
}

/// Whether a request needs no credential: only signing in — with a password (`POST
/// /api/v1/auth/login`) or through the OpenID provider (`GET /api/v1/auth/oidc/login` and the
/// provider's redirect back, `GET /api/v1/auth/oidc/callback`). It is still counted against the
/// client address's rate limit. And OAuth2's token and revocation endpoints ([`OAUTH_TOKEN`],
/// [`OAUTH_REVOKE`]): the client authenticates itself there, to identity.
pub fn is_public(method: &str, path: &str) -> bool {
    if method.eq_ignore_ascii_case("POST") && matches!(path, OAUTH_TOKEN | OAUTH_REVOKE) {
        return true;
    }
    (method.eq_ignore_ascii_case("POST") && path == "/api/v1/auth/login")
        || (method.eq_ignore_ascii_case("GET")
            && matches!(path, "/api/v1/auth/oidc/login" | "/api/v1/auth/oidc/callback"))
}

/// Whether a method changes state, so that a request authenticated by the session cookie must
/// carry the anti-forgery header (`X-CSRF-Token`): everything but GET, HEAD and OPTIONS.
pub fn is_state_changing(method: &str) -> bool {
    !["GET", "HEAD", "OPTIONS"]
        .iter()
        .any(|m| m.eq_ignore_ascii_case(method))
}

/// The states of a person's session, as the gateway sees them (R-SEC-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionGate {
    /// Password and second factor: everything the roles allow.
    Full,
    /// No second factor enrolled yet: only enrolment.
    MfaEnrolmentRequired,
    /// A temporary password: only changing it.
    PasswordChangeRequired,
    /// Signed in through the OpenID provider, the account's second factor not given yet: only
    /// giving it.
    SecondFactorRequired,
}

/// What the gateway answers a session that may not reach a path in its state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    /// `401 mfa_required`: enrol a second factor first.
    MfaRequired,
    /// `403 forbidden`: change the temporary password first.
    PasswordChangeRequired,
    /// `401 mfa_required`: give the second factor first (`POST /api/v1/auth/mfa/verify`).
    SecondFactorRequired,
}

/// Whether a session in `state` may make this request. Signing out and reading the own
/// session are always allowed; a session awaiting MFA enrolment reaches only the enrolment
/// endpoints, one awaiting a password change only the password endpoint, one awaiting its
/// second factor only the endpoint that takes it.
pub fn session_allows(state: SessionGate, method: &str, path: &str) -> Result<(), SessionRefusal> {
    let post = method.eq_ignore_ascii_case("POST");
    let always = (post && path == "/api/v1/auth/logout")
        || (method.eq_ignore_ascii_case("GET") && path == "/api/v1/auth/me");
    match state {
        SessionGate::Full => Ok(()),
        _ if always => Ok(()),
        SessionGate::MfaEnrolmentRequired
            if post && matches!(path, "/api/v1/auth/mfa/enroll" | "/api/v1/auth/mfa/confirm") =>
        {
            Ok(())
        }
        SessionGate::MfaEnrolmentRequired => Err(SessionRefusal::MfaRequired),
        SessionGate::PasswordChangeRequired if post && path == "/api/v1/auth/password" => Ok(()),
        SessionGate::PasswordChangeRequired => Err(SessionRefusal::PasswordChangeRequired),
        SessionGate::SecondFactorRequired if post && path == "/api/v1/auth/mfa/verify" => Ok(()),
        SessionGate::SecondFactorRequired => Err(SessionRefusal::SecondFactorRequired),
    }
}

/// Whether a successful request may have changed what an authenticated credential is allowed
/// (a revoked key; a session ended, moved on or whose account changed), so that the gateway's
/// short-lived authentication cache must be emptied.
pub fn invalidates_credentials(method: &str, path: &str) -> bool {
    // A revoked access token, a deleted OAuth client and its tokens (issue 4 §4).
    if (method.eq_ignore_ascii_case("POST") && path == OAUTH_REVOKE)
        || (method.eq_ignore_ascii_case("DELETE") && path.starts_with("/api/v1/oauth/clients/"))
    {
        return true;
    }
    if method.eq_ignore_ascii_case("DELETE") && path.starts_with("/api/v1/keys/") {
        return true;
    }
    // A rotation moves the old key's expiry closer (issue 4 §5).
    if method.eq_ignore_ascii_case("POST")
        && path
            .strip_prefix("/api/v1/keys/")
            .is_some_and(|rest| rest.ends_with("/rotate"))
    {
        return true;
    }
    is_state_changing(method)
        && !is_public(method, path)
        && (path.starts_with("/api/v1/auth/")
            || path == "/api/v1/users"
            || path.starts_with("/api/v1/users/"))
}

/// OAuth2's token endpoint (RFC 6749 §4.4), public at the gateway.
pub const OAUTH_TOKEN: &str = "/api/v1/oauth/token";

/// OAuth2's token revocation endpoint (RFC 7009), public at the gateway.
pub const OAUTH_REVOKE: &str = "/api/v1/oauth/revoke";

/// Whether `Authorization` uses the `Bearer` scheme (RFC 6750 §2.1): where an OAuth2 access
/// token must come, never in `X-API-Key` or `Authorization: ApiKey`.
pub fn is_bearer(authorization: Option<&[u8]>) -> bool {
    authorization
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.trim().split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
}

/// Why the credential headers could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// No credential header.
    #[error("no credential")]
    Missing,
    /// A header is present but unusable (two different keys, wrong scheme, not ASCII, too long).
    #[error("malformed credential")]
    Malformed,
}

/// Longest credential we look at; real keys are 60 characters.
const MAX_CREDENTIAL: usize = 512;

/// Reads the API key from `X-API-Key` or `Authorization: ApiKey <key>` / `Bearer <key>`.
/// Both may be present only if they carry the same key.
pub fn credential<'a>(
    x_api_key: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
) -> Result<&'a str, CredentialError> {
    let text = |b: &'a [u8]| -> Result<&'a str, CredentialError> {
        if b.len() > MAX_CREDENTIAL {
            return Err(CredentialError::Malformed);
        }
        let s = std::str::from_utf8(b)
            .map_err(|_| CredentialError::Malformed)?
            .trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(CredentialError::Malformed);
        }
        Ok(s)
    };
    let from_key = x_api_key.map(text).transpose()?;
    let from_auth = match authorization {
        None => None,
        Some(b) => {
            let s = std::str::from_utf8(b)
                .map_err(|_| CredentialError::Malformed)?
                .trim();
            let (scheme, rest) = s.split_once(' ').ok_or(CredentialError::Malformed)?;
            if !(scheme.eq_ignore_ascii_case("apikey") || scheme.eq_ignore_ascii_case("bearer")) {
                return Err(CredentialError::Malformed);
            }
            Some(text(rest.as_bytes())?)
        }
    };
    match (from_key, from_auth) {
        (Some(a), Some(b)) if a != b => Err(CredentialError::Malformed),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err(CredentialError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_their_service() {
        assert_eq!(route("/api/v1/records"), Some(Upstream::Ingestion));
        assert_eq!(route("/api/v1/records/0190-abc"), Some(Upstream::Ingestion));
        assert_eq!(route("/api/v1/receipts/x?y"), Some(Upstream::Ingestion));
        assert_eq!(route("/api/v1/keys/1"), Some(Upstream::Identity));
        assert_eq!(route("/api/v1/recordsx"), None);
        assert_eq!(route("/api/v2/records"), None);
        assert_eq!(route("/internal/v1/authenticate"), None);
        assert_eq!(route("/api/v1/auth/login"), Some(Upstream::Identity));
        assert_eq!(route("/api/v1/auth/mfa/enroll"), Some(Upstream::Identity));
        assert_eq!(route("/api/v1/users"), Some(Upstream::Identity));
        assert_eq!(
            route("/api/v1/users/0190/password-reset"),
            Some(Upstream::Identity)
        );
        assert_eq!(route("/api/v1/usersx"), None);
        assert_eq!(route("/api/v1/onboarding"), Some(Upstream::Identity));
        assert_eq!(route("/api/v1/pipeline"), Some(Upstream::Masking));
        assert_eq!(
            route("/api/v1/pipeline/dead-letters/1/replay"),
            Some(Upstream::Masking)
        );
        assert_eq!(route("/api/v1/masking/held"), Some(Upstream::Masking));
        assert_eq!(route("/api/v1/masking/policies/current"), Some(Upstream::Masking));
        for p in [
            "/api/v1/conflicts",
            "/api/v1/conflicts/0190-1/resolve",
            "/api/v1/canonical-records/0190-1",
            "/api/v1/periods?category=statistics",
            "/api/v1/completeness?period=2026-10",
        ] {
            assert_eq!(route(p), Some(Upstream::Reconciliation), "{p}");
        }
        assert_eq!(route("/api/v1/systems/1/changes"), Some(Upstream::Identity));
    }

    #[test]
    fn only_signing_in_is_public() {
        assert!(is_public("POST", "/api/v1/auth/login"));
        assert!(is_public("post", "/api/v1/auth/login"));
        assert!(!is_public("GET", "/api/v1/auth/login"));
        assert!(!is_public("POST", "/api/v1/auth/login/"));
        assert!(!is_public("POST", "/api/v1/auth/logout"));
        assert!(!is_public("POST", "/api/v1/auth/loginx"));
        assert!(!is_public("GET", "/api/v1/records"));
        assert!(is_public("GET", "/api/v1/auth/oidc/login"));
        assert!(is_public("GET", "/api/v1/auth/oidc/callback"));
        assert!(!is_public("POST", "/api/v1/auth/oidc/callback"));
        assert!(!is_public("GET", "/api/v1/auth/oidc/callback/x"));
        assert!(!is_public("GET", "/api/v1/auth/oidc"));
    }

    #[test]
    fn reads_are_not_state_changing() {
        for m in ["GET", "HEAD", "OPTIONS", "get"] {
            assert!(!is_state_changing(m), "{m}");
        }
        for m in ["POST", "PUT", "PATCH", "DELETE", "TRACE"] {
            assert!(is_state_changing(m), "{m}");
        }
    }

    #[test]
    fn a_session_reaches_only_what_its_state_allows() {
        use SessionGate::*;
        let ok = |s, m, p| session_allows(s, m, p).is_ok();
        for p in [
            "/api/v1/records",
            "/api/v1/users",
            "/api/v1/auth/password",
            "/api/v1/auth/mfa/enroll",
        ] {
            assert!(ok(Full, "POST", p), "{p}");
        }
        for s in [MfaEnrolmentRequired, PasswordChangeRequired, SecondFactorRequired] {
            assert!(ok(s, "POST", "/api/v1/auth/logout"));
            assert!(ok(s, "GET", "/api/v1/auth/me"));
            assert!(!ok(s, "GET", "/api/v1/users"));
            assert!(!ok(s, "POST", "/api/v1/records"));
        }
        assert!(ok(MfaEnrolmentRequired, "POST", "/api/v1/auth/mfa/enroll"));
        assert!(ok(MfaEnrolmentRequired, "POST", "/api/v1/auth/mfa/confirm"));
        assert_eq!(
            session_allows(MfaEnrolmentRequired, "POST", "/api/v1/auth/password"),
            Err(SessionRefusal::MfaRequired)
        );
        assert_eq!(
            session_allows(MfaEnrolmentRequired, "GET", "/api/v1/auth/mfa/enroll"),
            Err(SessionRefusal::MfaRequired)
        );
        assert!(ok(PasswordChangeRequired, "POST", "/api/v1/auth/password"));
        assert_eq!(
            session_allows(PasswordChangeRequired, "POST", "/api/v1/auth/mfa/enroll"),
            Err(SessionRefusal::PasswordChangeRequired)
        );
        assert!(ok(SecondFactorRequired, "POST", "/api/v1/auth/mfa/verify"));
        for (m, p) in [
            ("GET", "/api/v1/auth/mfa/verify"),
            ("POST", "/api/v1/auth/mfa/enroll"),
            ("POST", "/api/v1/auth/mfa/confirm"),
            ("POST", "/api/v1/auth/password"),
            ("GET", "/api/v1/records/x"),
        ] {
            assert_eq!(
                session_allows(SecondFactorRequired, m, p),
                Err(SessionRefusal::SecondFactorRequired),
                "{m} {p}"
            );
        }
        assert!(!ok(MfaEnrolmentRequired, "POST", "/api/v1/auth/mfa/verify"));
    }

    #[test]
    fn changes_to_keys_sessions_and_accounts_invalidate_the_cache() {
        assert!(invalidates_credentials("DELETE", "/api/v1/keys/1"));
        assert!(invalidates_credentials("POST", "/api/v1/auth/logout"));
        assert!(invalidates_credentials("POST", "/api/v1/auth/mfa/confirm"));
        assert!(invalidates_credentials("PATCH", "/api/v1/users/1"));
        assert!(invalidates_credentials("POST", "/api/v1/users/1/password-reset"));
        assert!(!invalidates_credentials("POST", "/api/v1/auth/login"));
        assert!(!invalidates_credentials("GET", "/api/v1/users"));
        assert!(!invalidates_credentials("POST", "/api/v1/records"));
        assert!(!invalidates_credentials("POST", "/api/v1/keys"));
        assert!(invalidates_credentials("POST", "/api/v1/keys/1/rotate"));
        assert!(!invalidates_credentials("GET", "/api/v1/keys/1/rotate"));
    }

    #[test]
    fn oauth_endpoints_route_to_identity_and_only_token_and_revoke_are_public() {
        assert_eq!(route(OAUTH_TOKEN), Some(Upstream::Identity));
        assert_eq!(route("/api/v1/oauth/clients/1"), Some(Upstream::Identity));
        assert!(is_public("POST", OAUTH_TOKEN));
        assert!(is_public("post", OAUTH_REVOKE));
        assert!(!is_public("GET", OAUTH_TOKEN));
        assert!(!is_public("POST", "/api/v1/oauth/clients"));
        assert!(!is_public("POST", "/api/v1/oauth/token/"));
        // Revoking a token or deleting a client empties every gateway's cache; getting a
        // token or registering a client does not.
        assert!(invalidates_credentials("POST", OAUTH_REVOKE));
        assert!(invalidates_credentials("DELETE", "/api/v1/oauth/clients/1"));
        assert!(!invalidates_credentials("POST", OAUTH_TOKEN));
        assert!(!invalidates_credentials("POST", "/api/v1/oauth/clients"));
        assert!(is_bearer(Some(b"Bearer etxat_x")));
        assert!(is_bearer(Some(b"bearer etxat_x")));
        assert!(!is_bearer(Some(b"ApiKey etxat_x")));
        assert!(!is_bearer(Some(b"Bearer")));
        assert!(!is_bearer(None));
    }

    #[test]
    fn the_soap_endpoint_routes_to_ingestion() {
        assert_eq!(route("/soap/v1/ingestion"), Some(Upstream::Ingestion));
        assert_eq!(route("/soap/v1/ingestion?wsdl"), Some(Upstream::Ingestion));
        assert_eq!(route("/soap/v1/identity"), None);
        assert_eq!(route("/soap/v1/ingestionx"), None);
        assert_eq!(route("/soap/v2/ingestion"), None);
    }

    #[test]
    fn credentials_come_from_either_header() {
        assert_eq!(credential(Some(b"etx_a_b"), None), Ok("etx_a_b"));
        assert_eq!(credential(None, Some(b"Bearer etx_a_b")), Ok("etx_a_b"));
        assert_eq!(credential(None, Some(b"apikey etx_a_b")), Ok("etx_a_b"));
        assert_eq!(credential(Some(b"k"), Some(b"Bearer k")), Ok("k"));
    }

    #[test]
    fn hostile_or_ambiguous_credentials_are_refused() {
        assert_eq!(credential(None, None), Err(CredentialError::Missing));
        assert_eq!(credential(Some(b""), None), Err(CredentialError::Malformed));
        assert_eq!(credential(Some(b"a b"), None), Err(CredentialError::Malformed));
        assert_eq!(
            credential(Some(&[0xff, 0xfe]), None),
            Err(CredentialError::Malformed)
        );
        assert_eq!(
            credential(Some("x".repeat(600).as_bytes()), None),
            Err(CredentialError::Malformed)
        );
        assert_eq!(
            credential(None, Some(b"Basic dXNlcg==")),
            Err(CredentialError::Malformed)
        );
        assert_eq!(
            credential(Some(b"k1"), Some(b"Bearer k2")),
            Err(CredentialError::Malformed)
        );
    }
}
