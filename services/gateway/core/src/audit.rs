//! What the gateway's connection log records for a request (R-SEC-9, Decree Art. 8.3): every
//! request is a `request` entry; administrative actions and reads of raw (unmasked) data are
//! recognised here, in one table, so that they are logged as such whichever service serves
//! them — and bodies that carry secrets (passwords, TOTP codes) are never hashed, because a
//! hash of a short secret can be reversed by trying guesses.

/// How a request is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditClass {
    /// A plain request (connection log only).
    Request,
    /// A request with a name worth filtering on, logged as a plain request (`auth.login`).
    Named(&'static str),
    /// An administrative action (keys, accounts, findings, the audit log itself).
    Admin(&'static str),
    /// A read of raw, unmasked data.
    RawRead(&'static str),
}

impl AuditClass {
    /// The action name, if any.
    pub fn action(self) -> Option<&'static str> {
        match self {
            Self::Request => None,
            Self::Named(a) | Self::Admin(a) | Self::RawRead(a) => Some(a),
        }
    }
}

/// The path's segments after `/api/v1/`, without a query string; `None` for other paths.
fn api_segments(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix("/api/v1/")?;
    let rest = rest.split(['?', '#']).next().unwrap_or("");
    Some(rest.split('/').filter(|s| !s.is_empty()).collect())
}

/// Classifies a request by method and path (see the module docs). SOAP calls are plain
/// requests: their operations carry no administrative action and return no raw records.
pub fn classify(method: &str, path: &str) -> AuditClass {
    use AuditClass::{Admin, Named, RawRead, Request};
    let Some(seg) = api_segments(path) else {
        return Request;
    };
    let m = method.to_ascii_uppercase();
    match (m.as_str(), seg.as_slice()) {
        ("POST", ["keys"]) => Admin("api_key.issue"),
        ("DELETE", ["keys", _]) => Admin("api_key.revoke"),
        ("POST", ["keys", _, "rotate"]) => Admin("api_key.rotate"),
        ("POST", ["onboarding"]) => Admin("source.onboard"),
        ("POST", ["systems", _, "changes"]) => Admin("system.config_change"),
        ("POST", ["systems"]) => Admin("system.create"),
        ("POST", ["oauth", "clients"]) => Admin("oauth_client.create"),
        ("DELETE", ["oauth", "clients", _]) => Admin("oauth_client.delete"),
        ("POST", ["oauth", "token"]) => Named("oauth.token"),
        ("POST", ["oauth", "revoke"]) => Named("oauth.revoke"),
        ("POST", ["users"]) => Admin("user.create"),
        ("PATCH" | "PUT", ["users", _]) => Admin("user.update"),
        ("DELETE", ["users", _]) => Admin("user.delete"),
        ("POST", ["users", _, "password-reset"]) => Admin("user.password_reset"),
        ("POST", ["auth", "login"]) => Named("auth.login"),
        ("POST", ["auth", "logout"]) => Named("auth.logout"),
        ("GET", ["auth", "oidc", "login"]) => Named("auth.oidc_login"),
        ("GET", ["auth", "oidc", "callback"]) => Named("auth.oidc_callback"),
        ("POST", ["auth", "password"]) => Admin("auth.password_change"),
        ("POST", ["auth", "mfa", step]) => Admin(match *step {
            "enroll" => "auth.mfa_enroll",
            "confirm" => "auth.mfa_confirm",
            "verify" => "auth.mfa_verify",
            _ => "auth.mfa",
        }),
        ("POST", ["vulnerabilities"]) => Admin("vulnerability.create"),
        ("PATCH" | "PUT", ["vulnerabilities", _]) => Admin("vulnerability.update"),
        ("GET", ["audit", ..]) => Admin("audit.query"),
        ("POST" | "PATCH" | "PUT" | "DELETE", ["organisations", ..]) => Admin("organisation.change"),
        ("POST" | "PATCH" | "PUT" | "DELETE", ["masking", "policies", ..]) => Admin("masking_policy.change"),
        ("POST", ["masking", "reidentify"]) => RawRead("masking.reidentify"),
        ("POST", ["conflicts", _, "resolve"]) => Admin("conflict.resolve"),
        ("POST" | "PATCH" | "PUT" | "DELETE", ["periods", ..]) => Admin("period.change"),
        ("GET", ["records", _]) => RawRead("record.read"),
        ("GET", ["exports", ..]) => RawRead("records.export"),
        ("GET", ["batches", _, "errors"]) => RawRead("batch.errors.read"),
        _ => Request,
    }
}

/// Whether the request body may be hashed into the log: not when it carries a password, a
/// TOTP or recovery code, or a client secret.
pub fn may_hash_body(path: &str) -> bool {
    match api_segments(path) {
        Some(seg) => !matches!(
            seg.as_slice(),
            ["auth", ..] | ["users", _, "password-reset"] | ["users"] | ["oauth", ..]
        ),
        None => !path.starts_with("/oauth"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn administrative_actions_and_raw_reads_are_recognised() {
        assert_eq!(
            classify("POST", "/api/v1/oauth/clients"),
            AuditClass::Admin("oauth_client.create")
        );
        assert_eq!(
            classify("DELETE", "/api/v1/oauth/clients/c1"),
            AuditClass::Admin("oauth_client.delete")
        );
        assert_eq!(
            classify("POST", "/api/v1/oauth/token"),
            AuditClass::Named("oauth.token")
        );
        assert!(
            !may_hash_body("/api/v1/oauth/token"),
            "the body carries a client secret"
        );
        assert_eq!(
            classify("POST", "/api/v1/keys"),
            AuditClass::Admin("api_key.issue")
        );
        assert_eq!(
            classify("delete", "/api/v1/keys/0190-1"),
            AuditClass::Admin("api_key.revoke")
        );
        assert_eq!(
            classify("POST", "/api/v1/users/u1/password-reset"),
            AuditClass::Admin("user.password_reset")
        );
        assert_eq!(
            classify("POST", "/api/v1/auth/login"),
            AuditClass::Named("auth.login")
        );
        assert_eq!(
            classify("POST", "/api/v1/masking/policies"),
            AuditClass::Admin("masking_policy.change")
        );
        assert_eq!(
            classify("POST", "/api/v1/masking/reidentify"),
            AuditClass::RawRead("masking.reidentify")
        );
        assert_eq!(
            classify("POST", "/api/v1/conflicts/c1/resolve"),
            AuditClass::Admin("conflict.resolve")
        );
        assert_eq!(
            classify("POST", "/api/v1/periods/approve"),
            AuditClass::Admin("period.change")
        );
        assert_eq!(
            classify("GET", "/api/v1/records/0190-1?x=1"),
            AuditClass::RawRead("record.read")
        );
        assert_eq!(
            classify("GET", "/api/v1/exports/records?format=csv"),
            AuditClass::RawRead("records.export")
        );
        assert_eq!(
            classify("GET", "/api/v1/audit/entries"),
            AuditClass::Admin("audit.query")
        );
        assert_eq!(classify("POST", "/api/v1/records"), AuditClass::Request);
        assert_eq!(classify("GET", "/api/v1/receipts/r"), AuditClass::Request);
        assert_eq!(classify("GET", "/api/v1/keys"), AuditClass::Request);
        assert_eq!(classify("POST", "/soap/v1/ingestion"), AuditClass::Request);
        assert_eq!(classify("GET", "/healthz"), AuditClass::Request);
        assert_eq!(classify("POST", "/api/v1/keys").action(), Some("api_key.issue"));
        assert_eq!(
            classify("POST", "/api/v1/keys/k/rotate"),
            AuditClass::Admin("api_key.rotate")
        );
        assert_eq!(
            classify("POST", "/api/v1/onboarding"),
            AuditClass::Admin("source.onboard")
        );
        assert_eq!(
            classify("POST", "/api/v1/systems/s/changes"),
            AuditClass::Admin("system.config_change")
        );
        assert_eq!(classify("GET", "/api/v1/systems/s/changes"), AuditClass::Request);
        assert_eq!(AuditClass::Request.action(), None);
    }

    #[test]
    fn bodies_with_secrets_are_never_hashed() {
        assert!(!may_hash_body("/api/v1/auth/login"));
        assert!(!may_hash_body("/api/v1/auth/mfa/confirm"));
        assert!(!may_hash_body("/api/v1/auth/password"));
        assert!(!may_hash_body("/api/v1/users"));
        assert!(!may_hash_body("/api/v1/users/u1/password-reset"));
        assert!(!may_hash_body("/api/v1/oauth/token"));
        assert!(!may_hash_body("/oauth/token"));
        assert!(may_hash_body("/api/v1/records"));
        assert!(may_hash_body("/api/v1/batches"));
        assert!(may_hash_body("/soap/v1/ingestion"));
        assert!(may_hash_body("/api/v1/users/u1"));
    }
}
