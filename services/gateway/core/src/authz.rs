//! Which permission every route needs (issue 4 §3): the gateway asks
//! [`etx_domain::authz::decide`] for every authenticated request before it reaches a service,
//! so no handler can forget a check. Services ask again of the signed principal (defence in
//! depth) and scope every object look-up to the caller's organisation (`404` otherwise).
//!
//! A method or path not in the table gets no decision here: the service answers it (`405` with
//! `Allow`, or `404`). A test walks the served OpenAPI document and fails for any operation
//! missing from this table.

use etx_domain::authz::Permission;

/// One rule: a method (`*` = any), a path pattern whose `{}` segments match one segment and
/// whose trailing `**` matches the rest, and what it needs.
type Rule = (&'static str, &'static str, Permission);

const RULES: &[Rule] = &[
    ("POST", "/api/v1/records", Permission::SubmitData),
    ("GET", "/api/v1/records/{}", Permission::ReadSubmissions),
    ("GET", "/api/v1/receipts/{}", Permission::ReadSubmissions),
    ("POST", "/api/v1/batches", Permission::SubmitData),
    ("GET", "/api/v1/batches/{}", Permission::ReadSubmissions),
    ("GET", "/api/v1/batches/{}/errors", Permission::ReadSubmissions),
    ("GET", "/api/v1/exports/records", Permission::ExportRecords),
    ("GET", "/api/v1/schemas", Permission::ReadSchemas),
    ("GET", "/api/v1/schemas/{}/{}", Permission::ReadSchemas),
    ("GET", "/api/v1/organisations/me", Permission::ReadOrganisation),
    ("GET", "/api/v1/systems", Permission::ManageKeys),
    ("GET", "/api/v1/keys", Permission::ManageKeys),
    ("POST", "/api/v1/keys", Permission::ManageKeys),
    ("DELETE", "/api/v1/keys/{}", Permission::ManageKeys),
    ("POST", "/api/v1/keys/{}/rotate", Permission::ManageKeys),
    ("GET", "/api/v1/systems/{}/connection", Permission::ManageKeys),
    ("GET", "/api/v1/systems/{}/changes", Permission::DeclareChanges),
    ("POST", "/api/v1/systems/{}/changes", Permission::DeclareChanges),
    ("POST", "/api/v1/onboarding", Permission::Onboard),
    // OAuth2 clients are credentials of the organisation's systems, like API keys (issue 4 §4).
    // The token and revocation endpoints need no rule: they are public at the gateway
    // (`is_public`) and the client authenticates itself to identity.
    ("GET", "/api/v1/oauth/clients", Permission::ManageKeys),
    ("POST", "/api/v1/oauth/clients", Permission::ManageKeys),
    ("DELETE", "/api/v1/oauth/clients/{}", Permission::ManageKeys),
    ("GET", "/api/v1/auth/me", Permission::OwnSession),
    ("POST", "/api/v1/auth/logout", Permission::OwnSession),
    ("POST", "/api/v1/auth/password", Permission::OwnSession),
    ("POST", "/api/v1/auth/mfa/{}", Permission::OwnSession),
    ("GET", "/api/v1/users", Permission::ManageUsers),
    ("POST", "/api/v1/users", Permission::ManageUsers),
    ("GET", "/api/v1/users/{}", Permission::ManageUsers),
    ("PATCH", "/api/v1/users/{}", Permission::ManageUsers),
    ("POST", "/api/v1/users/{}/password-reset", Permission::ManageUsers),
    ("GET", "/api/v1/audit/entries", Permission::ReadAudit),
    ("GET", "/api/v1/vulnerabilities", Permission::ReadVulnerabilities),
    (
        "POST",
        "/api/v1/vulnerabilities",
        Permission::ManageVulnerabilities,
    ),
    (
        "GET",
        "/api/v1/vulnerabilities/{}",
        Permission::ReadVulnerabilities,
    ),
    (
        "PATCH",
        "/api/v1/vulnerabilities/{}",
        Permission::ManageVulnerabilities,
    ),
    // The pipeline's operations (issue 5 §1, §3): backlogs, dead letters, held records.
    ("GET", "/api/v1/pipeline", Permission::OperatePipeline),
    (
        "GET",
        "/api/v1/pipeline/dead-letters",
        Permission::OperatePipeline,
    ),
    (
        "POST",
        "/api/v1/pipeline/dead-letters/{}/replay",
        Permission::OperatePipeline,
    ),
    ("GET", "/api/v1/masking/held", Permission::OperatePipeline),
    // The masking policy and re-identification (issue 5 §2).
    ("GET", "/api/v1/masking/policies", Permission::ReadMaskingPolicy),
    (
        "POST",
        "/api/v1/masking/policies",
        Permission::ManageMaskingPolicy,
    ),
    (
        "GET",
        "/api/v1/masking/policies/current",
        Permission::ReadMaskingPolicy,
    ),
    (
        "POST",
        "/api/v1/masking/policies/validate",
        Permission::ManageMaskingPolicy,
    ),
    (
        "GET",
        "/api/v1/masking/policies/{}",
        Permission::ReadMaskingPolicy,
    ),
    ("POST", "/api/v1/masking/reidentify", Permission::Reidentify),
    (
        "GET",
        "/api/v1/masking/reidentifications",
        Permission::ReadMaskingPolicy,
    ),
    // Reconciliation: canonical records, the conflict queue, periods, completeness (issue 5 §4).
    ("GET", "/api/v1/conflicts", Permission::ReadReconciliation),
    ("GET", "/api/v1/conflicts/{}", Permission::ReadReconciliation),
    (
        "POST",
        "/api/v1/conflicts/{}/resolve",
        Permission::ResolveConflicts,
    ),
    ("GET", "/api/v1/canonical-records", Permission::ReadReconciliation),
    (
        "GET",
        "/api/v1/canonical-records/{}",
        Permission::ReadReconciliation,
    ),
    ("GET", "/api/v1/periods", Permission::ReadReconciliation),
    ("POST", "/api/v1/periods/approve", Permission::ApprovePeriods),
    ("POST", "/api/v1/periods/reopen", Permission::ApprovePeriods),
    ("GET", "/api/v1/completeness", Permission::ReadReconciliation),
    // SOAP is the submitting sources' protocol: every operation needs the submit scope.
    ("POST", "/soap/v1/**", Permission::SubmitData),
];

fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (Some("**"), Some(s)) => return !s.is_empty(),
            (Some("{}"), Some(s)) if !s.is_empty() => {}
            (Some(w), Some(s)) if w == s => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The permission a request needs; `None` when the table has no rule for it (the service then
/// answers `404` or `405`). `HEAD` is treated as `GET`.
pub fn required(method: &str, path: &str) -> Option<Permission> {
    let method = if method.eq_ignore_ascii_case("HEAD") {
        "GET"
    } else {
        method
    };
    RULES
        .iter()
        .find(|(m, p, _)| (*m == "*" || m.eq_ignore_ascii_case(method)) && matches(p, path))
        .map(|(_, _, perm)| *perm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_whole_segments() {
        assert_eq!(
            required("GET", "/api/v1/records/abc"),
            Some(Permission::ReadSubmissions)
        );
        assert_eq!(
            required("HEAD", "/api/v1/records/abc"),
            Some(Permission::ReadSubmissions)
        );
        assert_eq!(required("GET", "/api/v1/records/"), None);
        assert_eq!(required("GET", "/api/v1/records/a/b"), None);
        assert_eq!(
            required("PUT", "/api/v1/records/a"),
            None,
            "the service answers 405"
        );
        assert_eq!(
            required("GET", "/api/v1/batches/x/errors"),
            Some(Permission::ReadSubmissions)
        );
        assert_eq!(
            required("POST", "/api/v1/auth/mfa/enroll"),
            Some(Permission::OwnSession)
        );
        assert_eq!(required("POST", "/api/v1/auth"), None);
        assert_eq!(
            required("TRACE", "/api/v1/auth/me"),
            None,
            "the service answers 405"
        );
        assert_eq!(
            required("POST", "/soap/v1/ingestion"),
            Some(Permission::SubmitData)
        );
        assert_eq!(required("get", "/api/v1/users/1"), Some(Permission::ManageUsers));
        assert_eq!(required("GET", "/api/v1/recordsx"), None);
        assert_eq!(
            required("POST", "/api/v1/keys/k/rotate"),
            Some(Permission::ManageKeys)
        );
        assert_eq!(required("POST", "/api/v1/onboarding"), Some(Permission::Onboard));
        assert_eq!(
            required("POST", "/api/v1/systems/s/changes"),
            Some(Permission::DeclareChanges)
        );
        assert_eq!(
            required("GET", "/api/v1/systems/s/connection"),
            Some(Permission::ManageKeys)
        );
    }
}
