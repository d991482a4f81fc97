//! Authorisation, decided in one place (issue 4 §3, DESIGN.md §5): **role × organisation
//! subtree × classification** for people, **scope** for connected systems.
//!
//! * [`Permission`] names what an operation needs; the gateway maps every route to one
//!   (`etx_gateway_core::authz`) and refuses the request before it reaches a service, and
//!   services ask the same question again of the signed principal (defence in depth).
//! * A person holds roles (`system_admin`, `operator`, …); [`ROLE_PERMISSIONS`] says what each
//!   role may do. A connected system holds the scopes of its credential (API key or OAuth2
//!   token, R-SEC-1); [`Scope`] says what each scope covers.
//! * Organisation subtree: every service looks objects up within the caller's organisation
//!   (people: their home organisation's subtree where the service supports it), so another
//!   organisation's object is `404`, never `403` (tested over every id-taking route).
//! * Classification: [`clearance`] is the highest classification an actor may read in clear;
//!   a record above it does not exist for that actor (`404`).

use crate::security::Classification;
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a connected system's credential may be used for (R-SEC-1). A key or token without
/// explicit scopes gets [`Scope::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scope {
    /// Submit records and batches (REST and SOAP).
    #[serde(rename = "records:write")]
    RecordsWrite,
    /// Read back the organisation's own records, receipts, batch reports and exports.
    #[serde(rename = "records:read")]
    RecordsRead,
    /// Read the published schemas.
    #[serde(rename = "schemas:read")]
    SchemasRead,
    /// Manage the organisation's API keys (rotation) and list its systems.
    #[serde(rename = "keys:manage")]
    KeysManage,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [
        Self::RecordsWrite,
        Self::RecordsRead,
        Self::SchemasRead,
        Self::KeysManage,
    ];

    /// The scopes of a credential issued without any: everything a data source needs.
    pub const DEFAULT: [Scope; 4] = Self::ALL;

    /// The wire name (`records:write` …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RecordsWrite => "records:write",
            Self::RecordsRead => "records:read",
            Self::SchemasRead => "schemas:read",
            Self::KeysManage => "keys:manage",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Parses a space- or comma-separated list (OAuth2 `scope` parameter style); `Err` names
    /// the first unknown scope. Duplicates are dropped; the result is sorted.
    pub fn parse_list(s: &str) -> Result<Vec<Scope>, String> {
        let mut out = Vec::new();
        for part in s.split([' ', ',']).filter(|p| !p.is_empty()) {
            let scope = Self::parse(part).ok_or_else(|| part.to_owned())?;
            if !out.contains(&scope) {
                out.push(scope);
            }
        }
        out.sort();
        Ok(out)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Submit records or batches (REST `POST /records`, `POST /batches`, every SOAP call).
    SubmitData,
    /// Read one's own submissions back: records, receipts, batch reports (raw data: audited).
    ReadSubmissions,
    /// Export records (raw data: audited).
    ExportRecords,
    /// Read the schemas.
    ReadSchemas,
    /// Read the caller's own organisation.
    ReadOrganisation,
    /// List systems, list, issue and revoke API keys.
    ManageKeys,
    /// Create, read, change accounts and reset their passwords.
    ManageUsers,
    /// A person's own session: who am I, sign out, change password, enrol MFA.
    OwnSession,
    /// Read and export the audit and connection log.
    ReadAudit,
    /// Read the vulnerability register.
    ReadVulnerabilities,
    /// Record and update findings in the vulnerability register.
    ManageVulnerabilities,
    /// Onboard a data source: create an organisation below one's own, register its system and
    /// issue its first key (R-ADM automatic configuration). People only.
    Onboard,
    /// Declare a connected system's configuration changes and read them back (Art. 10.4).
    DeclareChanges,
    /// Watch and repair the pipeline: stream backlogs, dead letters and their replay, records
    /// held by the masking stage (issue 5 §1, §3). People only.
    OperatePipeline,
    /// Read the masking policies and their history (R-SEC-10, issue 5 §2). People only.
    ReadMaskingPolicy,
    /// Publish a new version of the masking policy; every change is audited (issue 5 §2).
    /// People only.
    ManageMaskingPolicy,
    /// Turn a reversible token back into the value it stands for (issue 5 §2): an audited read
    /// of personal data in clear, with a stated reason. People only.
    Reidentify,
    /// Read reconciliation's results: canonical records with their provenance, the conflict
    /// queue, reporting periods and completeness (R-REC, R-DATA-3). People only.
    ReadReconciliation,
    /// Resolve conflicts by choosing, merging or rejecting (R-REC). People only.
    ResolveConflicts,
    /// Approve a reporting period (making it read-only) and reopen it (R-REC). People only.
    ApprovePeriods,
}

impl Permission {
    /// The scope a connected system needs for it; `None` when no system may do it at all.
    pub fn scope(self) -> Option<Scope> {
        match self {
            Self::SubmitData => Some(Scope::RecordsWrite),
            Self::ReadSubmissions | Self::ExportRecords => Some(Scope::RecordsRead),
            Self::ReadSchemas => Some(Scope::SchemasRead),
            Self::ManageKeys | Self::DeclareChanges => Some(Scope::KeysManage),
            // Any valid credential may see whose it is.
            Self::ReadOrganisation => None,
            Self::ManageUsers
            | Self::OwnSession
            | Self::ReadAudit
            | Self::ReadVulnerabilities
            | Self::ManageVulnerabilities
            | Self::Onboard
            | Self::OperatePipeline
            | Self::ReadMaskingPolicy
            | Self::ManageMaskingPolicy
            | Self::Reidentify
            | Self::ReadReconciliation
            | Self::ResolveConflicts
            | Self::ApprovePeriods => None,
        }
    }

    /// Whether a connected system may ever do it (given the scope, if one is needed).
    pub fn open_to_systems(self) -> bool {
        self.scope().is_some() || self == Self::ReadOrganisation
    }
}

/// Role names, as accounts carry them (identity's `Role` enum prints these).
pub mod roles {
    /// Manages accounts, keys and configuration within the organisation subtree.
    pub const SYSTEM_ADMIN: &str = "system_admin";
    /// Watches the security log, alerts and the vulnerability register.
    pub const SECURITY_OFFICER: &str = "security_officer";
    /// Runs day-to-day operations (sources, batches, reconciliation).
    pub const OPERATOR: &str = "operator";
    /// Reads aggregates and reports.
    pub const ANALYST: &str = "analyst";
    /// Reads the audit and connection log.
    pub const AUDITOR: &str = "auditor";
    /// Receives shared data (R-SHR).
    pub const DATA_CONSUMER: &str = "data_consumer";
    /// Every role name.
    pub const ALL: [&str; 6] = [
        SYSTEM_ADMIN,
        SECURITY_OFFICER,
        OPERATOR,
        ANALYST,
        AUDITOR,
        DATA_CONSUMER,
    ];
}

use roles::{ANALYST, AUDITOR, DATA_CONSUMER, OPERATOR, SECURITY_OFFICER, SYSTEM_ADMIN};

/// What each role of a person may do, and the highest classification it reads in clear. Every
/// person may use [`Permission::OwnSession`], [`Permission::ReadOrganisation`] and
/// [`Permission::ReadSchemas`].
pub const ROLE_PERMISSIONS: [(&str, &[Permission], Classification); 6] = [
    (
        SYSTEM_ADMIN,
        &[
            Permission::ManageUsers,
            Permission::ManageKeys,
            Permission::ReadSubmissions,
            Permission::ExportRecords,
            Permission::ReadAudit,
            Permission::ReadVulnerabilities,
            Permission::ManageVulnerabilities,
            Permission::Onboard,
            Permission::DeclareChanges,
            Permission::OperatePipeline,
            Permission::ReadMaskingPolicy,
            Permission::ManageMaskingPolicy,
            Permission::ReadReconciliation,
            Permission::ResolveConflicts,
            Permission::ApprovePeriods,
        ],
        Classification::Secret,
    ),
    (
        SECURITY_OFFICER,
        &[
            Permission::ReadVulnerabilities,
            Permission::ManageVulnerabilities,
            Permission::ReadMaskingPolicy,
            Permission::ManageMaskingPolicy,
            Permission::Reidentify,
        ],
        Classification::Internal,
    ),
    (
        OPERATOR,
        &[
            Permission::ReadSubmissions,
            Permission::ExportRecords,
            Permission::OperatePipeline,
            Permission::ReadMaskingPolicy,
            Permission::ReadReconciliation,
            Permission::ResolveConflicts,
            Permission::ApprovePeriods,
        ],
        Classification::Confidential,
    ),
    (
        ANALYST,
        &[Permission::ExportRecords, Permission::ReadReconciliation],
        Classification::Confidential,
    ),
    (
        AUDITOR,
        &[
            Permission::ReadAudit,
            Permission::ReadVulnerabilities,
            Permission::ReadMaskingPolicy,
            Permission::ReadReconciliation,
        ],
        Classification::Internal,
    ),
    (DATA_CONSUMER, &[], Classification::Internal),
];

const EVERY_PERSON: [Permission; 3] = [
    Permission::OwnSession,
    Permission::ReadOrganisation,
    Permission::ReadSchemas,
];

/// Who asks.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A connected system, with its credential's scopes.
    System {
        /// Scope names (unknown names grant nothing).
        scopes: &'a [String],
    },
    /// A person, with their roles.
    Person {
        /// Role names (unknown names grant nothing).
        roles: &'a [String],
    },
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No role of the person (or no kind of caller) allows it: `403 forbidden`.
    Forbidden,
    /// The system's credential lacks this scope: `403 insufficient_scope`.
    MissingScope(Scope),
}

/// Decides whether `actor` may do `permission`.
pub fn decide(actor: Actor<'_>, permission: Permission) -> Result<(), Denial> {
    match actor {
        Actor::System { scopes } => {
            if !permission.open_to_systems() {
                return Err(Denial::Forbidden);
            }
            match permission.scope() {
                None => Ok(()),
                Some(needed) if scopes.iter().any(|s| s == needed.as_str()) => Ok(()),
                Some(needed) => Err(Denial::MissingScope(needed)),
            }
        }
        Actor::Person { roles } => {
            if EVERY_PERSON.contains(&permission)
                || ROLE_PERMISSIONS
                    .iter()
                    .any(|(role, perms, _)| roles.iter().any(|r| r == role) && perms.contains(&permission))
            {
                Ok(())
            } else {
                Err(Denial::Forbidden)
            }
        }
    }
}

/// Whether `actor`, already allowed [`Permission::ManageKeys`], may issue a credential with
/// `requested` scopes (R-SEC-1): a person may grant any scope; a connected system only scopes
/// its own credential holds, so that no key can mint a stronger one. `Err` names the first
/// scope it lacks (`403 insufficient_scope`).
pub fn may_grant(actor: Actor<'_>, requested: &[Scope]) -> Result<(), Denial> {
    match actor {
        Actor::Person { .. } => Ok(()),
        Actor::System { scopes } => match requested
            .iter()
            .find(|want| !scopes.iter().any(|held| held == want.as_str()))
        {
            Some(missing) => Err(Denial::MissingScope(*missing)),
            None => Ok(()),
        },
    }
}

/// The highest classification `actor` may read in clear. A connected system reads back what its
/// organisation submitted, whatever its classification; a person reads up to the highest
/// clearance of their roles (nothing above `public` without a role).
pub fn clearance(actor: Actor<'_>) -> Classification {
    match actor {
        Actor::System { .. } => Classification::Secret,
        Actor::Person { roles } => ROLE_PERMISSIONS
            .iter()
            .filter(|(role, _, _)| roles.iter().any(|r| r == role))
            .map(|(_, _, c)| *c)
            .max()
            .unwrap_or(Classification::Public),
    }
}

/// Which organisations' objects a caller reads (issue 4 §3: role × organisation subtree ×
/// classification, DESIGN.md §5 "a province sees its own subtree").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgScope {
    /// Only this organisation's (a connected system reads back what its organisation sent).
    Own(crate::OrgId),
    /// This organisation's and every organisation below it in the hierarchy (a person acts
    /// within their home organisation's subtree).
    Subtree(crate::OrgId),
}

impl OrgScope {
    /// The organisation the scope starts from.
    pub fn root(self) -> crate::OrgId {
        match self {
            Self::Own(o) | Self::Subtree(o) => o,
        }
    }
}

/// The organisation scope of `actor`, whose home organisation is `org`: a connected system its
/// own organisation only, a person their organisation's subtree.
pub fn org_scope(actor: Actor<'_>, org: crate::OrgId) -> OrgScope {
    match actor {
        Actor::System { .. } => OrgScope::Own(org),
        Actor::Person { .. } => OrgScope::Subtree(org),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn scopes_round_trip_and_lists_parse() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert_eq!(
            Scope::parse_list("records:read records:write,records:read"),
            Ok(vec![Scope::RecordsWrite, Scope::RecordsRead])
        );
        assert_eq!(Scope::parse_list("records:read admin"), Err("admin".to_owned()));
        assert_eq!(Scope::parse_list(""), Ok(vec![]));
    }

    #[test]
    fn systems_need_the_scope_and_never_reach_people_operations() {
        let write_only = names(&["records:write"]);
        let sys = Actor::System { scopes: &write_only };
        assert_eq!(decide(sys, Permission::SubmitData), Ok(()));
        assert_eq!(
            decide(sys, Permission::ReadSubmissions),
            Err(Denial::MissingScope(Scope::RecordsRead))
        );
        assert_eq!(decide(sys, Permission::ReadOrganisation), Ok(()));
        let all = names(&["records:write", "records:read", "schemas:read", "keys:manage"]);
        let sys = Actor::System { scopes: &all };
        for p in [
            Permission::ManageUsers,
            Permission::OwnSession,
            Permission::ReadAudit,
            Permission::ReadVulnerabilities,
            Permission::ManageVulnerabilities,
        ] {
            assert_eq!(decide(sys, p), Err(Denial::Forbidden), "{p:?}");
        }
    }

    #[test]
    fn people_get_what_their_roles_grant_and_nobody_submits() {
        let analyst = names(&["analyst"]);
        let p = Actor::Person { roles: &analyst };
        assert_eq!(decide(p, Permission::ExportRecords), Ok(()));
        assert_eq!(decide(p, Permission::ReadSubmissions), Err(Denial::Forbidden));
        assert_eq!(decide(p, Permission::OwnSession), Ok(()));
        for role in roles::ALL {
            let r = names(&[role]);
            assert_eq!(
                decide(Actor::Person { roles: &r }, Permission::SubmitData),
                Err(Denial::Forbidden),
                "{role} must not submit: only connected systems do"
            );
        }
        let auditor_and_officer = names(&["auditor", "security_officer"]);
        let p = Actor::Person {
            roles: &auditor_and_officer,
        };
        assert_eq!(decide(p, Permission::ManageVulnerabilities), Ok(()));
        assert_eq!(decide(p, Permission::ManageUsers), Err(Denial::Forbidden));
        let nobody = names(&["root"]);
        assert_eq!(
            decide(Actor::Person { roles: &nobody }, Permission::ReadAudit),
            Err(Denial::Forbidden)
        );
    }

    #[test]
    fn a_system_grants_only_scopes_it_holds_and_a_person_any() {
        let write_manage = names(&["records:write", "keys:manage"]);
        let sys = Actor::System {
            scopes: &write_manage,
        };
        assert_eq!(may_grant(sys, &[Scope::RecordsWrite]), Ok(()));
        assert_eq!(may_grant(sys, &[Scope::RecordsWrite, Scope::KeysManage]), Ok(()));
        assert_eq!(may_grant(sys, &[]), Ok(()));
        assert_eq!(
            may_grant(sys, &[Scope::RecordsWrite, Scope::RecordsRead]),
            Err(Denial::MissingScope(Scope::RecordsRead)),
            "no escalation: records:read is not held"
        );
        assert_eq!(
            may_grant(sys, &Scope::ALL),
            Err(Denial::MissingScope(Scope::RecordsRead))
        );
        let admin = names(&["system_admin"]);
        assert_eq!(may_grant(Actor::Person { roles: &admin }, &Scope::ALL), Ok(()));
    }

    #[test]
    fn onboarding_is_for_administrators_and_change_declarations_need_keys_manage() {
        let admin = names(&["system_admin"]);
        let operator = names(&["operator"]);
        assert_eq!(
            decide(Actor::Person { roles: &admin }, Permission::Onboard),
            Ok(())
        );
        assert_eq!(
            decide(Actor::Person { roles: &operator }, Permission::Onboard),
            Err(Denial::Forbidden)
        );
        let all = names(&["records:write", "records:read", "schemas:read", "keys:manage"]);
        assert_eq!(
            decide(Actor::System { scopes: &all }, Permission::Onboard),
            Err(Denial::Forbidden),
            "systems never onboard"
        );
        assert_eq!(
            decide(Actor::System { scopes: &all }, Permission::DeclareChanges),
            Ok(())
        );
        let write = names(&["records:write"]);
        assert_eq!(
            decide(Actor::System { scopes: &write }, Permission::DeclareChanges),
            Err(Denial::MissingScope(Scope::KeysManage))
        );
        assert_eq!(
            decide(Actor::Person { roles: &admin }, Permission::DeclareChanges),
            Ok(())
        );
        assert_eq!(
            decide(Actor::Person { roles: &operator }, Permission::DeclareChanges),
            Err(Denial::Forbidden)
        );
    }

    #[test]
    fn clearance_is_the_highest_of_the_roles() {
        let r = names(&["auditor", "operator"]);
        assert_eq!(
            clearance(Actor::Person { roles: &r }),
            Classification::Confidential
        );
        let r = names(&["system_admin"]);
        assert_eq!(clearance(Actor::Person { roles: &r }), Classification::Secret);
        assert_eq!(clearance(Actor::Person { roles: &[] }), Classification::Public);
        assert_eq!(clearance(Actor::System { scopes: &[] }), Classification::Secret);
        assert!(ROLE_PERMISSIONS.iter().map(|r| r.0).eq(roles::ALL));
    }
}
