//! Reconciliation's HTTP API (mounted under `/api/v1` where the reconciliation target runs;
//! issue 5 §4–5, R-REC, R-DATA-3): the operators' conflict queue and its resolution, canonical
//! records with their full provenance, reporting-period approval, and completeness for reports.
//!
//! # Who may do what
//! | operation | permission (roles) |
//! |---|---|
//! | `GET /conflicts`, `GET /conflicts/{id}`, `GET /canonical-records`, `GET /canonical-records/{id}`, `GET /periods`, `GET /completeness` | [`Permission::ReadReconciliation`] (`system_admin`, `operator`, `analyst`, `auditor`) |
//! | `POST /conflicts/{id}/resolve` | [`Permission::ResolveConflicts`] (`system_admin`, `operator`) |
//! | `POST /periods/approve`, `POST /periods/reopen` | [`Permission::ApprovePeriods`] (`system_admin`, `operator`) |
//!
//! Connected systems never reach this API (`403`). Everything is read within the caller's
//! organisation subtree, as reconciliation's replica of the hierarchy knows it
//! (`reconciliation_org_tree`, fed by `events.orgs`): a conflict belongs to the organisation
//! whose record opened it (it shows the versions of the other sources it is compared with, with
//! their provenance); a canonical record to every organisation that contributed a record to it;
//! completeness lists the organisations of the subtree. Anything outside is `404`, as if it did
//! not exist. The hub's own operators — `system_admin`s and the people of the root organisation
//! (`audit.root_org_id`), the rule of the pipeline's operations and of the audit log — see every
//! organisation, and only they approve or reopen a period for everyone (scope `all`).
//!
//! Values shown are the masked (analyst) payloads reconciliation stores; nothing is decrypted
//! beyond them and no payload value is ever logged. Resolutions and period changes are recorded
//! in the audit log by the gateway (`conflict.resolve`, `period.change`).

pub mod canonical;
pub mod conflicts;
pub mod dto;
pub mod periods;

use actix_web::web;
use etx_domain::authz::{OrgScope, Permission, roles};
use etx_domain::{Category, ErrorCode, FieldViolation, OrgId, Period, UserId, ViolationCode};
use etx_http_kit::{ApiError, Principal};
use etx_storage::OrgReplica;

use crate::AppReconciliation;

/// What the API needs besides the module: the replica of the hierarchy and the hub's own
/// organisation.
#[derive(Clone)]
pub struct ReconciliationApi {
    orgs: OrgReplica,
    root_org: Option<OrgId>,
}

impl std::fmt::Debug for ReconciliationApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconciliationApi")
            .field("root_org", &self.root_org)
            .finish_non_exhaustive()
    }
}

/// How far a caller reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    /// Every organisation (the hub's own operators).
    Hub,
    /// The caller's organisation subtree.
    Within(OrgScope),
}

impl Reach {
    /// The scope to filter queries with (`None`: no filter).
    pub(crate) fn scope(self) -> Option<OrgScope> {
        match self {
            Self::Hub => None,
            Self::Within(s) => Some(s),
        }
    }
}

/// The organisations a caller reads: every one, or these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Members {
    /// Every organisation.
    All,
    /// These.
    Only(Vec<OrgId>),
}

impl Members {
    /// Whether `org` is one of them.
    pub(crate) fn contains(&self, org: OrgId) -> bool {
        match self {
            Self::All => true,
            Self::Only(v) => v.contains(&org),
        }
    }
}

impl ReconciliationApi {
    /// The API over `orgs` (reconciliation's replica of the hierarchy, see
    /// [`crate::org_replica`]); the people of `root_org` see every organisation.
    pub fn new(orgs: OrgReplica, root_org: Option<OrgId>) -> Self {
        Self { orgs, root_org }
    }

    /// Refuses unless `p` holds `permission`; says how far `p` reads (see the module docs).
    pub(crate) fn reach(&self, p: &Principal, permission: Permission) -> Result<Reach, ApiError> {
        p.require(permission)?;
        if p.has_role(roles::SYSTEM_ADMIN) || self.root_org == Some(p.org_id) {
            Ok(Reach::Hub)
        } else {
            Ok(Reach::Within(p.org_scope()))
        }
    }

    /// The organisations `reach` covers (a subtree as the replica knows it, the root always).
    pub(crate) async fn members(&self, reach: Reach) -> Result<Members, ApiError> {
        match reach {
            Reach::Hub => Ok(Members::All),
            Reach::Within(OrgScope::Own(o)) => Ok(Members::Only(vec![o])),
            Reach::Within(OrgScope::Subtree(root)) => self
                .orgs
                .subtree(root)
                .await
                .map(Members::Only)
                .map_err(ApiError::internal),
        }
    }
}

/// The person behind `p` (every operation here is for people: the permission check refused
/// connected systems already).
pub(crate) fn person(p: &Principal) -> Result<UserId, ApiError> {
    p.subject
        .strip_prefix("user:")
        .and_then(|id| id.parse::<UserId>().ok())
        .ok_or_else(|| ApiError::new(ErrorCode::Forbidden).with_detail("only a signed-in person may do this"))
}

/// `400 invalid_parameter` with one violation of query parameter `name`.
pub(crate) fn bad_query(name: &str, code: ViolationCode, detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter).with_violations(vec![
        FieldViolation::new(format!("query:{name}"), code).with_detail(detail),
    ])
}

/// A page size: `default` when absent, else a whole number from 1 to `max`.
pub(crate) fn page_size(raw: Option<&str>, default: u64, max: u64) -> Result<u64, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    let expected = format!("expected a whole number from 1 to {max}");
    match raw.trim().parse::<u64>() {
        Ok(0) => Err(bad_query("limit", ViolationCode::TooSmall, expected)),
        Ok(n) if n <= max => Ok(n),
        Ok(_) => Err(bad_query("limit", ViolationCode::TooLarge, expected)),
        Err(_) => Err(bad_query("limit", ViolationCode::Type, expected)),
    }
}

/// Cuts `rows`, read with a limit of one more than `page`, to the page; returns the cursor of
/// its last row (`cursor_of`) when more rows follow, `None` on the last page.
pub(crate) fn next_page<T>(
    rows: &mut Vec<T>,
    page: u64,
    cursor_of: impl FnOnce(&T) -> String,
) -> Option<String> {
    let page = usize::try_from(page).unwrap_or(usize::MAX);
    if rows.len() > page {
        rows.truncate(page);
        rows.last().map(cursor_of)
    } else {
        None
    }
}

/// An optional category query parameter.
pub(crate) fn query_category(raw: Option<&str>) -> Result<Option<Category>, ApiError> {
    raw.map(|s| {
        Category::parse(s).map_err(|e| {
            bad_query(
                "category",
                e.code,
                "expected one of: policy, statistics, workforce, enforcement",
            )
        })
    })
    .transpose()
}

/// An optional period query parameter.
pub(crate) fn query_period(raw: Option<&str>) -> Result<Option<Period>, ApiError> {
    raw.map(|s| {
        Period::parse(s)
            .map_err(|e| bad_query("period", e.code, "expected YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD"))
    })
    .transpose()
}

/// `422 validation_failed` with these violations.
pub(crate) fn invalid_body(violations: Vec<FieldViolation>) -> ApiError {
    ApiError::new(ErrorCode::ValidationFailed).with_violations(violations)
}

/// `422 validation_failed` with one violation at the JSON pointer `pointer`.
pub(crate) fn invalid_field(pointer: &str, code: ViolationCode, detail: impl Into<String>) -> ApiError {
    invalid_body(vec![FieldViolation::new(pointer, code).with_detail(detail)])
}

/// What a body asked for when nothing in it is violated (`parts` read and `violations`
/// empty), else `422 validation_failed` with every violation.
pub(crate) fn accepted<T>(parts: Option<T>, violations: Vec<FieldViolation>) -> Result<T, ApiError> {
    match parts {
        Some(parts) if violations.is_empty() => Ok(parts),
        _ => Err(invalid_body(violations)),
    }
}

/// Mounts the API (under `/api/v1`); needs `web::Data<AppReconciliation>` and
/// `web::Data<ReconciliationApi>`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/conflicts", "GET").route(web::get().to(conflicts::list)))
        .service(resource("/conflicts/{id}", "GET").route(web::get().to(conflicts::get)))
        .service(resource("/conflicts/{id}/resolve", "POST").route(web::post().to(conflicts::resolve)))
        .service(resource("/canonical-records", "GET").route(web::get().to(canonical::list)))
        .service(resource("/canonical-records/{id}", "GET").route(web::get().to(canonical::get)))
        .service(resource("/periods", "GET").route(web::get().to(periods::list)))
        .service(resource("/periods/approve", "POST").route(web::post().to(periods::approve)))
        .service(resource("/periods/reopen", "POST").route(web::post().to(periods::reopen)))
        .service(resource("/completeness", "GET").route(web::get().to(periods::completeness)));
}

fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(etx_http_kit::method_not_allowed(allow))
}

/// The module as the handlers receive it.
pub(crate) type App = web::Data<AppReconciliation>;
/// The API's settings as the handlers receive them.
pub(crate) type Api = web::Data<ReconciliationApi>;

/// Reconciliation's part of the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(
        conflicts::list,
        conflicts::get,
        conflicts::resolve,
        canonical::list,
        canonical::get,
        periods::list,
        periods::approve,
        periods::reopen,
        periods::completeness
    ),
    components(schemas(
        etx_http_kit::Problem,
        etx_http_kit::ProblemViolation,
        dto::ContributionOut,
        dto::SourceOut,
        dto::ValueOriginOut,
        dto::CanonicalRecordOut,
        canonical::CanonicalPageOut,
        conflicts::ConflictSummaryOut,
        conflicts::ConflictPageOut,
        conflicts::ConflictOut,
        conflicts::FieldDifferenceOut,
        conflicts::ToleranceOut,
        conflicts::FuzzyOut,
        conflicts::FieldScoreOut,
        conflicts::ResolutionOut,
        conflicts::ResolveIn,
        conflicts::ResolutionAction,
        conflicts::ResolvedOut,
        periods::PeriodIn,
        periods::ReopenIn,
        periods::ApprovalScopeName,
        periods::PeriodOut,
        periods::PeriodEventOut,
        periods::PeriodsOut,
        periods::ReopenedOut,
        periods::HeldRunOut,
        periods::ReconciledOut,
        periods::CompletenessOut,
        periods::OrgCompletenessOut,
        periods::ExpectationOut,
        periods::CompletenessTotalsOut
    )),
    tags((name = "reconciliation", description = "Reconciliation (issue 5 §4–5, R-REC, R-DATA-3): the conflict queue and its resolution, canonical records with their provenance, reporting-period approval, completeness"))
)]
pub struct ReconciliationDoc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_are_whole_numbers_within_bounds() {
        assert_eq!(page_size(None, 50, 500).ok(), Some(50));
        assert_eq!(page_size(Some("500"), 50, 500).ok(), Some(500));
        for (raw, code) in [
            ("0", ViolationCode::TooSmall),
            ("501", ViolationCode::TooLarge),
            ("-1", ViolationCode::Type),
            ("ten", ViolationCode::Type),
        ] {
            let e = page_size(Some(raw), 50, 500).expect_err("refused");
            assert_eq!(e.code, ErrorCode::InvalidParameter, "{raw}");
            assert_eq!(
                (e.violations[0].path.as_str(), e.violations[0].code),
                ("query:limit", code),
                "{raw}"
            );
        }
    }

    #[test]
    fn categories_and_periods_are_parsed_without_echoing_the_input() {
        assert_eq!(
            query_category(Some("statistics")).ok(),
            Some(Some(Category::Statistics))
        );
        assert_eq!(query_category(None).ok(), Some(None));
        let e = query_category(Some("<secret>")).expect_err("refused");
        assert_eq!(e.violations[0].path, "query:category");
        assert_eq!(e.violations[0].code, ViolationCode::UnknownCategory);
        assert!(!format!("{:?}", e.violations[0].detail).contains("secret"));
        assert_eq!(
            query_period(Some("2026-10")).ok(),
            Some(Some(Period::parse("2026-10").unwrap()))
        );
        let e = query_period(Some("2026-13")).expect_err("refused");
        assert_eq!(
            (e.violations[0].path.as_str(), e.violations[0].code),
            ("query:period", ViolationCode::Format)
        );
    }

    #[test]
    fn only_people_act() {
        let p = |subject: &str| Principal {
            org_id: OrgId::new(),
            system_id: None,
            key_id: None,
            subject: subject.into(),
            roles: vec![roles::OPERATOR.into()],
            scopes: vec![],
            client_ip: None,
        };
        let id = UserId::new();
        assert_eq!(person(&p(&format!("user:{id}"))).ok(), Some(id));
        assert_eq!(
            person(&p("system:x")).err().map(|e| e.code),
            Some(ErrorCode::Forbidden)
        );
    }

    #[test]
    fn the_hub_reads_everything_and_a_province_its_subtree() {
        let root = OrgId::new();
        let db = sea_orm::DatabaseConnection::default();
        let api = ReconciliationApi::new(OrgReplica::new(db, "t"), Some(root));
        let person = |org, role: &str| Principal {
            org_id: org,
            system_id: None,
            key_id: None,
            subject: format!("user:{}", UserId::new()),
            roles: vec![role.into()],
            scopes: vec![],
            client_ip: None,
        };
        let province = OrgId::new();
        assert_eq!(
            api.reach(
                &person(province, roles::SYSTEM_ADMIN),
                Permission::ReadReconciliation
            )
            .ok(),
            Some(Reach::Hub)
        );
        assert_eq!(
            api.reach(&person(root, roles::ANALYST), Permission::ReadReconciliation)
                .ok(),
            Some(Reach::Hub)
        );
        assert_eq!(
            api.reach(&person(province, roles::OPERATOR), Permission::ReadReconciliation)
                .ok(),
            Some(Reach::Within(OrgScope::Subtree(province)))
        );
        assert_eq!(
            api.reach(&person(province, roles::ANALYST), Permission::ResolveConflicts)
                .err()
                .map(|e| e.code),
            Some(ErrorCode::Forbidden)
        );
        let system = Principal {
            system_id: Some(etx_domain::SystemId::new()),
            subject: "system:x".into(),
            roles: vec![],
            scopes: vec!["records:read".into()],
            ..person(root, roles::OPERATOR)
        };
        assert!(api.reach(&system, Permission::ReadReconciliation).is_err());
    }
}
