//! The audit service's HTTP API (mounted under `/api/v1`): the audit and connection log's
//! query and export (R-SEC-9) and the vulnerability register (R-SEC-8).
//!
//! # Who may do what
//! | operation | roles |
//! |---|---|
//! | `GET /audit/entries` | `auditor`, `system_admin` |
//! | `GET /vulnerabilities`, `GET /vulnerabilities/{id}` | `auditor`, `security_officer`, `system_admin` |
//! | `POST /vulnerabilities`, `PATCH /vulnerabilities/{id}` | `security_officer`, `system_admin` |
//!
//! Anyone else gets `403 forbidden`. A `system_admin` sees every audit entry, and so does an
//! `auditor` of the root organisation ([`AuditSettings::root_org`](crate::AuditSettings));
//! any other auditor sees only entries whose `org_id` is their own organisation (an `org_id`
//! filter naming another organisation then matches nothing). Every read of the audit log is
//! itself recorded (`admin_action` `audit.query`), and every change of a finding too
//! (`vulnerability.create`, `vulnerability.update` with the status before and after).

use crate::AppAudit;
use crate::query::{self, AuditEntryOut, EntryFormat, EntryQuery};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use etx_audit_core::{
    Actor, Finding, FindingDraft, FindingFilter, FindingId, FindingPatchDraft, FindingStatus, NewAuditEntry,
    Severity, VulnError, sanitize_route,
};
use etx_domain::authz::{Permission, roles};
use etx_domain::{ErrorCode, OrgId, ViolationCode};
use etx_http_kit::{ApiError, Principal, Problem};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The organisation an audit reader is restricted to: `None` = every entry (see the module
/// docs).
pub fn audit_scope(p: &Principal, root_org: Option<OrgId>) -> Result<Option<OrgId>, ApiError> {
    p.require(Permission::ReadAudit)?;
    if p.has_role(roles::SYSTEM_ADMIN) || root_org == Some(p.org_id) {
        Ok(None)
    } else {
        Ok(Some(p.org_id))
    }
}

fn actor(p: &Principal) -> Actor {
    Actor {
        subject: p.subject.clone(),
        org_id: Some(p.org_id),
        ip: p.client_ip.as_deref().and_then(|ip| ip.parse().ok()),
    }
}

fn invalid_parameters(v: Vec<etx_domain::FieldViolation>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter).with_violations(v)
}

/// Maps the register's errors to the catalogue.
pub fn vuln_error(e: VulnError) -> ApiError {
    match e {
        VulnError::NotFound => ApiError::not_found(),
        VulnError::Invalid(v) => ApiError::new(ErrorCode::ValidationFailed).with_violations(v),
        VulnError::Busy => ApiError::new(ErrorCode::ServiceUnavailable).with_retry_after(1),
        VulnError::Unknown(e) => ApiError::internal(e),
    }
}

/// One page of audit entries.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPageOut {
    /// The entries, in sequence order.
    pub entries: Vec<AuditEntryOut>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next_after: Option<i64>,
}

/// Lists or exports the audit and connection log (R-SEC-9): who connected, from where, what
/// they did and with what result. Filters combine; all are optional.
///
/// `format=json` (default) answers one page of at most `limit` entries after `after`, with
/// `next_after` for the next page (keyset pagination: pages stay consistent while entries are
/// appended). `format=csv` and `format=ndjson` stream every matching entry after `after` up to
/// the newest entry at the start of the export, as an attachment (CSV: UTF-8 with BOM, CRLF,
/// formula-like cells prefixed with `'`). Reading the log is itself recorded (`audit.query`).
#[utoipa::path(get, path = "/api/v1/audit/entries", tag = "audit",
    params(
        ("from" = Option<String>, Query, format = DateTime, description = "at or after this RFC 3339 instant (percent-encode + as %2B)"),
        ("to" = Option<String>, Query, format = DateTime, description = "before this RFC 3339 instant (exclusive)"),
        ("kind" = Option<String>, Query, description = "request, admin_action, raw_read or security"),
        ("subject" = Option<String>, Query, description = "exact subject, e.g. user:<uuid> or system:<uuid>"),
        ("org_id" = Option<Uuid>, Query, description = "organisation"),
        ("ip" = Option<String>, Query, description = "client IPv4 or IPv6 address"),
        ("route" = Option<String>, Query, description = "route prefix, case-sensitive, e.g. /api/v1/keys"),
        ("status" = Option<u16>, Query, description = "HTTP status, 100 to 599"),
        ("action" = Option<String>, Query, description = "administrative action, e.g. api_key.revoke"),
        ("limit" = Option<u64>, Query, description = "page size for json, 1 to 1000 (default 100)"),
        ("after" = Option<i64>, Query, description = "only entries after this sequence number (cursor)"),
        ("format" = Option<EntryFormat>, Query, description = "json (default), csv or ndjson"),
    ),
    responses(
        (status = 200, description = "A page (json) or the whole filtered range (csv, ndjson; streamed, Content-Disposition: attachment)",
            content(
                (AuditPageOut = "application/json"),
                ("text/csv"),
                ("application/x-ndjson"),
            )),
        (status = 400, description = "A query parameter is not valid (violation path `query:<name>`)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No trusted principal", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an auditor or system administrator", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn list_entries(
    app: web::Data<AppAudit>,
    p: Principal,
    req: HttpRequest,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let scope = audit_scope(&p, app.settings.root_org)?;
    let q = EntryQuery::parse(&query).map_err(invalid_parameters)?;
    let mut entry = NewAuditEntry::admin_action(
        &actor(&p),
        "audit.query",
        serde_json::json!({
            "format": q.format,
            "filters": q.filters_json(),
            "scope_org_id": scope,
        }),
    );
    entry.method = Some("GET".into());
    entry.route = Some(sanitize_route(&req.uri().to_string()));
    app.sink.record(entry);

    if q.format == EntryFormat::Json {
        let mut rows = query::page(&app.db, &q, scope, q.after, None, q.limit + 1)
            .await
            .map_err(ApiError::internal)?;
        let more = rows.len() as u64 > q.limit;
        rows.truncate(usize::try_from(q.limit).unwrap_or(usize::MAX));
        let next_after = if more { rows.last().map(|r| r.seq) } else { None };
        return Ok(HttpResponse::Ok().json(AuditPageOut {
            entries: rows.into_iter().map(AuditEntryOut::from).collect(),
            next_after,
        }));
    }
    let format = q.format;
    let body = query::export(app.db.clone(), q, scope)
        .await
        .map_err(ApiError::internal)?;
    let filename = format!(
        "etxhub-audit-{}.{}",
        Utc::now().format("%Y-%m-%d"),
        format.extension()
    );
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(body))
}

/// A finding to register (R-SEC-8). Every field but `remediation_plan` is required.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingIn {
    /// Short title, 1–200 characters, one line.
    #[schema(example = "TLS 1.0 accepted on the SOAP endpoint")]
    pub title: Option<String>,
    /// What was found, 1–10,000 characters.
    pub description: Option<String>,
    /// `critical`, `high`, `medium` or `low`.
    #[schema(example = "high")]
    pub severity: Option<String>,
    /// The affected component, 1–200 characters, one line.
    #[schema(example = "gateway")]
    pub component: Option<String>,
    /// How it will be remediated, up to 10,000 characters.
    pub remediation_plan: Option<String>,
    /// Who is responsible, 1–200 characters, one line.
    pub owner: Option<String>,
    /// Remediate by this date (`YYYY-MM-DD`, Vietnam calendar).
    #[schema(format = Date, example = "2027-03-01")]
    pub deadline: Option<String>,
}

impl From<FindingIn> for FindingDraft {
    fn from(f: FindingIn) -> Self {
        Self {
            title: f.title,
            description: f.description,
            severity: f.severity,
            component: f.component,
            remediation_plan: f.remediation_plan,
            owner: f.owner,
            deadline: f.deadline,
        }
    }
}

/// A change to a finding: only the fields given change. `status` follows the allowed
/// transitions (open → in_progress | remediated | accepted_risk; in_progress → open |
/// remediated | accepted_risk; remediated → in_progress | closed; accepted_risk → open |
/// in_progress | closed; closed is final).
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FindingPatchIn {
    /// New title.
    pub title: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New severity.
    pub severity: Option<String>,
    /// New component.
    pub component: Option<String>,
    /// New remediation plan.
    pub remediation_plan: Option<String>,
    /// New owner.
    pub owner: Option<String>,
    /// New deadline (`YYYY-MM-DD`).
    #[schema(format = Date)]
    pub deadline: Option<String>,
    /// New status.
    #[schema(example = "in_progress")]
    pub status: Option<String>,
}

impl From<FindingPatchIn> for FindingPatchDraft {
    fn from(f: FindingPatchIn) -> Self {
        Self {
            title: f.title,
            description: f.description,
            severity: f.severity,
            component: f.component,
            remediation_plan: f.remediation_plan,
            owner: f.owner,
            deadline: f.deadline,
            status: f.status,
        }
    }
}

/// A registered finding.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FindingOut {
    /// Id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// `critical`, `high`, `medium` or `low`.
    pub severity: String,
    /// Affected component.
    pub component: String,
    /// Remediation plan.
    pub remediation_plan: String,
    /// Owner.
    pub owner: String,
    /// Deadline.
    pub deadline: NaiveDate,
    /// `open`, `in_progress`, `remediated`, `accepted_risk` or `closed`.
    pub status: String,
    /// Whether the deadline has passed while the finding is still `open` or `in_progress`.
    pub overdue: bool,
    /// Registered at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
    /// Incremented by every change.
    pub version: i64,
}

impl FindingOut {
    /// The finding as shown at `now`.
    pub fn of(f: Finding, now: DateTime<Utc>) -> Self {
        Self {
            overdue: f.is_overdue(now),
            id: f.id.as_uuid(),
            title: f.title,
            description: f.description,
            severity: f.severity.as_str().to_owned(),
            component: f.component,
            remediation_plan: f.remediation_plan,
            owner: f.owner,
            deadline: f.deadline,
            status: f.status.as_str().to_owned(),
            created_at: f.created_at,
            updated_at: f.updated_at,
            version: f.version,
        }
    }
}

const FINDING_COLUMNS: [&str; 13] = [
    "id",
    "title",
    "severity",
    "status",
    "overdue",
    "component",
    "owner",
    "deadline",
    "remediation_plan",
    "description",
    "created_at",
    "updated_at",
    "version",
];

fn findings_csv(list: &[FindingOut]) -> Result<Vec<u8>, csv::Error> {
    let mut buf = query::BOM.to_vec();
    {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut buf);
        w.write_record(FINDING_COLUMNS)?;
        for f in list {
            let cells = [
                f.id.to_string(),
                f.title.clone(),
                f.severity.clone(),
                f.status.clone(),
                f.overdue.to_string(),
                f.component.clone(),
                f.owner.clone(),
                f.deadline.to_string(),
                f.remediation_plan.clone(),
                f.description.clone(),
                f.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                f.updated_at.to_rfc3339_opts(SecondsFormat::Micros, true),
                f.version.to_string(),
            ];
            w.write_record(cells.map(|c| {
                if query::looks_like_formula(&c) {
                    format!("'{c}")
                } else {
                    c
                }
            }))?;
        }
        w.flush()?;
    }
    Ok(buf)
}

/// The checked query of the findings list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FindingListQuery {
    filter: FindingFilter,
    csv: bool,
}

fn parse_finding_query(
    pairs: &[(String, String)],
) -> Result<FindingListQuery, Vec<etx_domain::FieldViolation>> {
    let mut bad = Vec::new();
    query::check_names(pairs, &["status", "severity", "overdue", "format"], &mut bad);
    let get = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.trim());
    let status = get("status").and_then(|v| {
        let s = FindingStatus::parse(v);
        if s.is_none() {
            bad.push(query::violation(
                "status",
                ViolationCode::Enum,
                &format!("expected one of {}", FindingStatus::names()),
            ));
        }
        s
    });
    let severity = get("severity").and_then(|v| {
        let s = Severity::parse(v);
        if s.is_none() {
            bad.push(query::violation(
                "severity",
                ViolationCode::Enum,
                &format!("expected one of {}", Severity::names()),
            ));
        }
        s
    });
    let overdue = match get("overdue") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            bad.push(query::violation(
                "overdue",
                ViolationCode::Type,
                "expected true or false",
            ));
            None
        }
    };
    let csv = match get("format") {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => {
            bad.push(query::violation(
                "format",
                ViolationCode::Enum,
                "expected json or csv",
            ));
            false
        }
    };
    if bad.is_empty() {
        Ok(FindingListQuery {
            filter: FindingFilter {
                status,
                severity,
                overdue,
            },
            csv,
        })
    } else {
        Err(bad)
    }
}

/// Registers a finding in the vulnerability register (R-SEC-8), status `open`.
#[utoipa::path(post, path = "/api/v1/vulnerabilities", tag = "vulnerabilities", request_body = FindingIn,
    responses(
        (status = 201, body = FindingOut, headers(("Location" = String, description = "the finding's URL"))),
        (status = 403, description = "Not a security officer or system administrator", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields break their rules (violations name each, e.g. `/deadline`)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn create_finding(
    app: web::Data<AppAudit>,
    p: Principal,
    body: web::Json<FindingIn>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageVulnerabilities)?;
    let now = Utc::now();
    let f = app
        .vulnerabilities
        .create(&actor(&p), &body.into_inner().into(), now)
        .await
        .map_err(vuln_error)?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/vulnerabilities/{}", f.id)))
        .json(FindingOut::of(f, now)))
}

/// Lists the vulnerability register (oldest first) as JSON, or exports it as CSV
/// (`format=csv`: UTF-8 with BOM, CRLF, formula-like cells prefixed with `'`).
#[utoipa::path(get, path = "/api/v1/vulnerabilities", tag = "vulnerabilities",
    params(
        ("status" = Option<String>, Query, description = "open, in_progress, remediated, accepted_risk or closed"),
        ("severity" = Option<String>, Query, description = "critical, high, medium or low"),
        ("overdue" = Option<bool>, Query, description = "only overdue (true) or only not overdue (false) findings"),
        ("format" = Option<String>, Query, description = "json (default) or csv"),
    ),
    responses(
        (status = 200, description = "The findings", content((Vec<FindingOut> = "application/json"), ("text/csv"))),
        (status = 400, description = "A query parameter is not valid", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an auditor, security officer or system administrator", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn list_findings(
    app: web::Data<AppAudit>,
    p: Principal,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ReadVulnerabilities)?;
    let q = parse_finding_query(&query).map_err(invalid_parameters)?;
    let now = Utc::now();
    let list: Vec<FindingOut> = app
        .vulnerabilities
        .list(q.filter, now)
        .await
        .map_err(vuln_error)?
        .into_iter()
        .map(|f| FindingOut::of(f, now))
        .collect();
    if !q.csv {
        return Ok(HttpResponse::Ok().json(list));
    }
    let body = findings_csv(&list).map_err(ApiError::internal)?;
    let filename = format!("etxhub-vulnerabilities-{}.csv", now.format("%Y-%m-%d"));
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .body(body))
}

/// One finding.
#[utoipa::path(get, path = "/api/v1/vulnerabilities/{id}", tag = "vulnerabilities",
    params(("id" = Uuid, Path, description = "finding id")),
    responses(
        (status = 200, body = FindingOut),
        (status = 403, description = "Not an auditor, security officer or system administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such finding", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn get_finding(
    app: web::Data<AppAudit>,
    p: Principal,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ReadVulnerabilities)?;
    let f = app
        .vulnerabilities
        .get(FindingId::from_uuid(id.into_inner()))
        .await
        .map_err(vuln_error)?;
    Ok(HttpResponse::Ok().json(FindingOut::of(f, Utc::now())))
}

/// Changes a finding; a status change must follow the allowed transitions (a refused one is
/// a violation at `/status`). Recorded as `vulnerability.update` with the status before and
/// after.
#[utoipa::path(patch, path = "/api/v1/vulnerabilities/{id}", tag = "vulnerabilities", request_body = FindingPatchIn,
    params(("id" = Uuid, Path, description = "finding id")),
    responses(
        (status = 200, body = FindingOut),
        (status = 403, description = "Not a security officer or system administrator", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such finding", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Fields break their rules or the status change is not allowed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("api_key" = [])))]
pub async fn update_finding(
    app: web::Data<AppAudit>,
    p: Principal,
    id: web::Path<Uuid>,
    body: web::Json<FindingPatchIn>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageVulnerabilities)?;
    let now = Utc::now();
    let f = app
        .vulnerabilities
        .update(
            &actor(&p),
            FindingId::from_uuid(id.into_inner()),
            &body.into_inner().into(),
            now,
        )
        .await
        .map_err(vuln_error)?;
    Ok(HttpResponse::Ok().json(FindingOut::of(f, now)))
}

/// Mounts the routes (under `/api/v1`, behind the gateway's authentication). Each path is a
/// resource, so another method on it is `405` with `Allow`, not `404`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/audit/entries", "GET").route(web::get().to(list_entries)))
        .service(
            resource("/vulnerabilities", "GET, POST")
                .route(web::post().to(create_finding))
                .route(web::get().to(list_findings)),
        )
        .service(
            resource("/vulnerabilities/{id}", "GET, PATCH")
                .route(web::get().to(get_finding))
                .route(web::patch().to(update_finding)),
        );
}

/// A resource whose other methods are answered `405` with `Allow: <allow>`.
fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(etx_http_kit::method_not_allowed(allow))
}

/// The audit service's part of the OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_entries, create_finding, list_findings, get_finding, update_finding),
    components(schemas(
        AuditPageOut,
        AuditEntryOut,
        EntryFormat,
        FindingIn,
        FindingPatchIn,
        FindingOut,
        Problem
    ))
)]
#[derive(Debug)]
pub struct AuditDoc;
