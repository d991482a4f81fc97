//! Reporting periods and completeness (R-REC, issue 5 §4).
//!
//! * Approval: once an operator approves a category's period — for one organisation (scope
//!   `org`) or, by the hub's own operators only, for everyone (scope `all`) — it is read-only:
//!   new records of it are held and its conflicts cannot be resolved, until someone reopens it
//!   with a reason (10 to 1000 characters); the records it held are then reconciled. Every
//!   change is audited by the gateway (`period.change`). A period never approved has no entry
//!   and is open.
//! * Completeness, for reports: per organisation, which expected submissions of a period
//!   arrived on time, late (Quá hạn), not at all (Thiếu) or are not yet due. Every organisation
//!   of the caller's subtree is expected to send each category asked for (every category when
//!   none is given) by the deadline `due` — by default the end of the 15th day after the period
//!   ends, Vietnam time ([`default_due`]). Every record reconciliation received counts
//!   (duplicates once, held and conflicting ones too).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Days, FixedOffset, Utc};
use etx_domain::authz::Permission;
use etx_domain::{Category, ErrorCode, FieldViolation, OrgId, Period, UserId, ViolationCode};
use etx_http_kit::openapi::{AuthErrors, BadParameter};
use etx_http_kit::{ApiError, Principal, Problem};
use etx_reconciliation_core::period::PeriodEvent;
use etx_reconciliation_core::{
    ApprovalScope, ExpectedSubmission, OrgPeriodCompleteness, PeriodApproval, PeriodChangeError, PeriodError,
    PeriodKey, PeriodState, Reason, SubmissionStatus,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{
    Api, App, Members, Reach, accepted, bad_query, invalid_field, page_size, person, query_category,
    query_period,
};
use crate::store::queries::ApprovalQuery;

/// Days after the end of a period by which its submissions are due, unless `due` says otherwise.
pub const DEFAULT_GRACE_DAYS: u64 = 15;

/// Whose records an approval covers (OpenAPI document only).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ApprovalScopeName {
    /// One organisation's records (`org_id`; default: the caller's own organisation).
    Org,
    /// Every organisation's records: the national data set (the hub's own operators only).
    All,
}

/// A period to approve.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodIn {
    /// The category: `policy`, `statistics`, `workforce`, `enforcement`.
    #[schema(example = "statistics")]
    pub category: Option<String>,
    /// The reporting period (`YYYY`, `YYYY-Qn`, `YYYY-MM`, `YYYY-MM-DD`).
    #[schema(example = "2026-10")]
    pub period: Option<String>,
    /// `org` (default) or `all`.
    #[schema(value_type = Option<ApprovalScopeName>)]
    pub scope: Option<String>,
    /// With scope `org`: the organisation, within the caller's subtree (default: the caller's
    /// own).
    #[schema(value_type = Option<Uuid>)]
    pub org_id: Option<String>,
}

/// A period to reopen, and why.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenIn {
    /// The category: `policy`, `statistics`, `workforce`, `enforcement`.
    #[schema(example = "statistics")]
    pub category: Option<String>,
    /// The reporting period.
    #[schema(example = "2026-10")]
    pub period: Option<String>,
    /// `org` (default) or `all`.
    #[schema(value_type = Option<ApprovalScopeName>)]
    pub scope: Option<String>,
    /// With scope `org`: the organisation (default: the caller's own).
    #[schema(value_type = Option<Uuid>)]
    pub org_id: Option<String>,
    /// Why read-only data is made writable again: 10 to 1000 characters, kept in the period's
    /// history.
    #[schema(example = "Sở Tư pháp gửi bổ sung số liệu tháng 10 theo công văn 12/STP")]
    pub reason: Option<String>,
}

/// The scope a body asks for, before the caller's reach is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wanted {
    All,
    Org(OrgId),
}

/// Reads category, period, scope and organisation of a body; violations carry their pointer.
fn key_parts(
    category: Option<&str>,
    period: Option<&str>,
    scope: Option<&str>,
    org_id: Option<&str>,
    own: OrgId,
    v: &mut Vec<FieldViolation>,
) -> Option<(Category, Period, Wanted)> {
    let category = match category.map(Category::parse) {
        None => {
            v.push(FieldViolation::new("/category", ViolationCode::Required));
            None
        }
        Some(Err(e)) => {
            v.push(
                FieldViolation::new("/category", e.code)
                    .with_detail("expected one of: policy, statistics, workforce, enforcement"),
            );
            None
        }
        Some(Ok(c)) => Some(c),
    };
    let period = match period.map(Period::parse) {
        None => {
            v.push(FieldViolation::new("/period", ViolationCode::Required));
            None
        }
        Some(Err(e)) => {
            v.push(
                FieldViolation::new("/period", e.code)
                    .with_detail("expected YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD"),
            );
            None
        }
        Some(Ok(p)) => Some(p),
    };
    let org = match org_id.map(|s| s.parse::<OrgId>()) {
        None => None,
        Some(Ok(o)) => Some(o),
        Some(Err(_)) => {
            v.push(FieldViolation::new("/org_id", ViolationCode::Format).with_detail("expected a UUID"));
            return None;
        }
    };
    let wanted = match scope {
        None | Some("org") => Some(Wanted::Org(org.unwrap_or(own))),
        Some("all") if org.is_some() => {
            v.push(
                FieldViolation::new("/org_id", ViolationCode::UnknownField)
                    .with_detail("not allowed with scope `all`"),
            );
            None
        }
        Some("all") => Some(Wanted::All),
        Some(_) => {
            v.push(
                FieldViolation::new("/scope", ViolationCode::Enum).with_detail("expected one of: org, all"),
            );
            None
        }
    };
    Some((category?, period?, wanted?))
}

/// Reads a reopening reason, with the violation a person can act on.
fn reason_of(raw: Option<&str>, v: &mut Vec<FieldViolation>) -> Option<Reason> {
    let Some(raw) = raw else {
        v.push(
            FieldViolation::new("/reason", ViolationCode::Required)
                .with_detail("why the period is reopened, 10 to 1000 characters"),
        );
        return None;
    };
    match Reason::parse(raw) {
        Ok(r) => Some(r),
        Err(_) => {
            let n = raw.trim().chars().count();
            let code = if n < 10 {
                ViolationCode::TooSmall
            } else if n > 1000 {
                ViolationCode::TooLarge
            } else {
                ViolationCode::Invalid
            };
            v.push(FieldViolation::new("/reason", code).with_detail(
                "10 to 1000 characters, without control characters other than line breaks and tabs",
            ));
            None
        }
    }
}

impl PeriodIn {
    fn parse(&self, own: OrgId) -> Result<(Category, Period, Wanted), ApiError> {
        let mut v = Vec::new();
        let key = key_parts(
            self.category.as_deref(),
            self.period.as_deref(),
            self.scope.as_deref(),
            self.org_id.as_deref(),
            own,
            &mut v,
        );
        accepted(key, v)
    }
}

impl ReopenIn {
    fn parse(&self, own: OrgId) -> Result<((Category, Period, Wanted), Reason), ApiError> {
        let mut v = Vec::new();
        let key = key_parts(
            self.category.as_deref(),
            self.period.as_deref(),
            self.scope.as_deref(),
            self.org_id.as_deref(),
            own,
            &mut v,
        );
        let reason = reason_of(self.reason.as_deref(), &mut v);
        accepted(key.zip(reason), v)
    }
}

/// The period key `wanted` by a caller of `reach`: scope `all` is the hub's own operators',
/// an organisation must be within the caller's subtree (else `404`, as if it did not exist).
async fn key_for(
    api: &Api,
    reach: Reach,
    (category, period, wanted): (Category, Period, Wanted),
) -> Result<PeriodKey, ApiError> {
    let scope = match wanted {
        Wanted::All if reach == Reach::Hub => ApprovalScope::All,
        Wanted::All => {
            return Err(ApiError::new(ErrorCode::Forbidden).with_detail(
                "only system administrators and the root organisation's operators approve or reopen a period for every organisation",
            ));
        }
        Wanted::Org(o) if api.members(reach).await?.contains(o) => ApprovalScope::Org(o),
        Wanted::Org(_) => {
            return Err(ApiError::not_found().with_detail("no such organisation in your subtree"));
        }
    };
    Ok(PeriodKey {
        scope,
        category,
        period,
    })
}

/// A change of a period asked for by `p`: refuses a caller without
/// [`Permission::ApprovePeriods`] or who is not a person, reads the body with `parse` (the
/// period key's parts and whatever else the change needs) and finds the key the caller may
/// change ([`key_for`]). Returns the key, the person and the rest of the body.
async fn period_change<T>(
    api: &Api,
    p: &Principal,
    parse: impl FnOnce(OrgId) -> Result<((Category, Period, Wanted), T), ApiError>,
) -> Result<(PeriodKey, UserId, T), ApiError> {
    let reach = api.reach(p, Permission::ApprovePeriods)?;
    let by = person(p)?;
    let (parts, rest) = parse(p.org_id)?;
    let key = key_for(api, reach, parts).await?;
    Ok((key, by, rest))
}

/// One change of a period's state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PeriodEventOut {
    /// The state entered: `approved` or `reopened`.
    pub state: String,
    /// By whom (user id).
    pub by: Option<Uuid>,
    /// When.
    pub at: Option<DateTime<Utc>>,
    /// Why (a reopening).
    pub reason: Option<String>,
}

fn state_parts(s: &PeriodState) -> PeriodEventOut {
    match s {
        PeriodState::Open => PeriodEventOut {
            state: "open".into(),
            by: None,
            at: None,
            reason: None,
        },
        PeriodState::Approved { by, at } => PeriodEventOut {
            state: "approved".into(),
            by: Some(by.as_uuid()),
            at: Some(*at),
            reason: None,
        },
        PeriodState::Reopened { by, at, reason } => PeriodEventOut {
            state: "reopened".into(),
            by: Some(by.as_uuid()),
            at: Some(*at),
            reason: Some(reason.as_str().to_owned()),
        },
    }
}

/// A reporting period's approval state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PeriodOut {
    /// The category.
    pub category: String,
    /// The reporting period.
    pub period: String,
    /// `org` (one organisation's records) or `all` (everyone's).
    pub scope: String,
    /// The organisation, for scope `org`.
    pub org_id: Option<Uuid>,
    /// `open` (never approved), `approved` (read-only) or `reopened`.
    pub state: String,
    /// Whether its records are held and its conflicts cannot be resolved.
    pub read_only: bool,
    /// +1 on every change.
    pub version: u64,
    /// Who made the last change (user id).
    pub changed_by: Option<Uuid>,
    /// When.
    pub changed_at: Option<DateTime<Utc>>,
    /// Why it was reopened (state `reopened`).
    pub reason: Option<String>,
    /// Every change, oldest first.
    pub history: Vec<PeriodEventOut>,
}

impl From<&PeriodApproval> for PeriodOut {
    fn from(a: &PeriodApproval) -> Self {
        let (scope, org_id) = match a.key.scope {
            ApprovalScope::All => ("all", None),
            ApprovalScope::Org(o) => ("org", Some(o.as_uuid())),
        };
        let now = state_parts(&a.state);
        Self {
            category: a.key.category.as_str().to_owned(),
            period: a.key.period.to_string(),
            scope: scope.to_owned(),
            org_id,
            state: now.state,
            read_only: a.is_read_only(),
            version: a.version,
            changed_by: now.by,
            changed_at: now.at,
            reason: now.reason,
            history: a
                .history
                .iter()
                .map(|PeriodEvent { state }| state_parts(state))
                .collect(),
        }
    }
}

/// Stored period approvals.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PeriodsOut {
    /// Latest period first, then by category and scope. A period not listed is open.
    pub periods: Vec<PeriodOut>,
}

/// Which approvals to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PeriodsQuery {
    /// Only of this category.
    #[param(example = "statistics")]
    pub category: Option<String>,
    /// Only of this reporting period.
    #[param(example = "2026-10")]
    pub period: Option<String>,
    /// At most this many, 1 to 500 (default 100), most recently changed first.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
}

/// The approval state of reporting periods (R-REC): those for everyone (scope `all`) and those
/// of the organisations of the caller's subtree. A period with no entry is open.
#[utoipa::path(get, path = "/api/v1/periods", operation_id = "list_periods", tag = "reconciliation",
    params(PeriodsQuery),
    responses((status = 200, body = PeriodsOut), AuthErrors, BadParameter),
    security(("session" = [])))]
pub async fn list(
    app: App,
    api: Api,
    p: Principal,
    q: web::Query<PeriodsQuery>,
) -> Result<HttpResponse, ApiError> {
    let reach = api.reach(&p, Permission::ReadReconciliation)?;
    let query = ApprovalQuery {
        category: query_category(q.category.as_deref())?,
        period: query_period(q.period.as_deref())?,
        limit: page_size(q.limit.as_deref(), 100, 500)?,
        scopes: match api.members(reach).await? {
            Members::All => None,
            Members::Only(orgs) => Some(
                std::iter::once(ApprovalScope::All)
                    .chain(orgs.into_iter().map(ApprovalScope::Org))
                    .collect(),
            ),
        },
    };
    let approvals = app.store().approvals(&query).await.map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(PeriodsOut {
        periods: approvals.iter().map(PeriodOut::from).collect(),
    }))
}

fn period_error(e: PeriodChangeError) -> ApiError {
    let conflict = |detail: &str| ApiError::new(ErrorCode::AlreadyExists).with_detail(detail);
    match e {
        PeriodChangeError::Refused(PeriodError::AlreadyApproved) => {
            conflict("the period is already approved (read-only)")
        }
        PeriodChangeError::Refused(PeriodError::NotApproved) => {
            conflict("the period is not approved: only an approved period can be reopened")
        }
        PeriodChangeError::Refused(PeriodError::InvalidReason) => {
            invalid_field("/reason", ViolationCode::Invalid, "10 to 1000 characters")
        }
        PeriodChangeError::Busy => {
            conflict("the period was changed by someone else at the same time; read it again")
        }
        PeriodChangeError::Unknown(e) => ApiError::internal(e),
    }
}

/// Approves a reporting period (R-REC): from now on the category's records of the period (of
/// one organisation, or of everyone) are held and its conflicts cannot be resolved, until it is
/// reopened. Audited as `period.change`.
#[utoipa::path(post, path = "/api/v1/periods/approve", operation_id = "approve_period", tag = "reconciliation",
    request_body = PeriodIn,
    responses(
        (status = 200, body = PeriodOut, description = "Approved: read-only"),
        (status = 403, description = "`forbidden`: the caller may not approve periods, or asked for scope `all` without being one of the hub's own operators", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The organisation is not in the caller's subtree", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_exists`: the period is already approved, or was changed at the same time", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`, a pointer per violation", body = Problem, content_type = "application/problem+json"),
        AuthErrors,
    ),
    security(("session" = [])))]
pub async fn approve(
    app: App,
    api: Api,
    p: Principal,
    body: web::Json<PeriodIn>,
) -> Result<HttpResponse, ApiError> {
    let (key, by, ()) = period_change(&api, &p, |own| Ok((body.parse(own)?, ()))).await?;
    let approved = app.approve_period(key, by).await.map_err(period_error)?;
    tracing::info!(category = %key.category, period = %key.period, subject = %p.subject, "period approved");
    Ok(HttpResponse::Ok().json(PeriodOut::from(&approved)))
}

/// A record reconciled again after its period was reopened.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReconciledOut {
    /// The record.
    pub record_id: Uuid,
    /// The decision: `duplicate`, `revision`, `superseded`, `new_canonical`, `merge`,
    /// `conflict`, `resolved`.
    pub decision: String,
    /// Its canonical record.
    pub canonical_id: Option<Uuid>,
    /// The conflict it opened.
    pub conflict_id: Option<Uuid>,
}

/// What became of the records a reopened period held.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeldRunOut {
    /// The records decided now, in the order they were held.
    pub reconciled: Vec<ReconciledOut>,
    /// The records still waiting (not readable now, or held again); they are reconciled later.
    pub pending: Vec<Uuid>,
}

/// A reopened period.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReopenedOut {
    /// The period, now reopened (writable).
    pub period: PeriodOut,
    /// The records it held, reconciled again.
    pub held: HeldRunOut,
}

/// Reopens an approved reporting period (R-REC) with a reason, kept in its history; the records
/// it held are reconciled at once. Audited as `period.change`.
#[utoipa::path(post, path = "/api/v1/periods/reopen", operation_id = "reopen_period", tag = "reconciliation",
    request_body = ReopenIn,
    responses(
        (status = 200, body = ReopenedOut, description = "Reopened: writable again"),
        (status = 403, description = "`forbidden`: the caller may not reopen periods, or asked for scope `all` without being one of the hub's own operators", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "The organisation is not in the caller's subtree", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_exists`: the period is not approved, or was changed at the same time", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` (e.g. a reason shorter than 10 characters), a pointer per violation", body = Problem, content_type = "application/problem+json"),
        AuthErrors,
    ),
    security(("session" = [])))]
pub async fn reopen(
    app: App,
    api: Api,
    p: Principal,
    body: web::Json<ReopenIn>,
) -> Result<HttpResponse, ApiError> {
    let (key, by, reason) = period_change(&api, &p, |own| body.parse(own)).await?;
    let reopened = app.reopen_period(key, by, reason).await.map_err(period_error)?;
    tracing::info!(
        category = %key.category, period = %key.period, subject = %p.subject,
        reconciled = reopened.held.reconciled.len(), pending = reopened.held.pending.len(),
        "period reopened"
    );
    Ok(HttpResponse::Ok().json(ReopenedOut {
        period: PeriodOut::from(&reopened.approval),
        held: HeldRunOut {
            reconciled: reopened
                .held
                .reconciled
                .iter()
                .map(|s| ReconciledOut {
                    record_id: s.record_id.as_uuid(),
                    decision: s.kind.as_str().to_owned(),
                    canonical_id: s.canonical.map(|c| c.as_uuid()),
                    conflict_id: s.conflict.map(|c| c.as_uuid()),
                })
                .collect(),
            pending: reopened.held.pending.iter().map(|r| r.as_uuid()).collect(),
        },
    }))
}

/// Which completeness.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompletenessQuery {
    /// The reporting period (required).
    #[param(example = "2026-10")]
    pub period: Option<String>,
    /// Only this category (default: every category is expected).
    #[param(example = "statistics")]
    pub category: Option<String>,
    /// The deadline (RFC 3339); default: the end of the 15th day after the period ends,
    /// Vietnam time.
    #[param(value_type = Option<DateTime<Utc>>, example = "2026-11-15T17:00:00Z")]
    pub due: Option<String>,
}

/// One expected submission and where it stands.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExpectationOut {
    /// The category.
    pub category: String,
    /// The deadline.
    pub deadline: DateTime<Utc>,
    /// `on_time`, `late` (Quá hạn), `missing` (Thiếu: past the deadline, not received) or
    /// `pending` (not received, not yet due).
    pub status: String,
    /// The first record received.
    pub first_record_id: Option<Uuid>,
    /// When it was received.
    pub received_at: Option<DateTime<Utc>>,
    /// How many whole seconds after the deadline (`late`).
    pub seconds_late: Option<i64>,
}

/// One organisation's completeness.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrgCompletenessOut {
    /// The organisation.
    pub org_id: Uuid,
    /// Submissions expected.
    pub expected: usize,
    /// Received (on time or late).
    pub received: usize,
    /// Received on time.
    pub on_time: usize,
    /// Received late.
    pub late: usize,
    /// Missing: past the deadline, not received.
    pub missing: usize,
    /// Not received, not yet due.
    pub pending: usize,
    /// Per category.
    pub items: Vec<ExpectationOut>,
}

impl From<&OrgPeriodCompleteness> for OrgCompletenessOut {
    fn from(c: &OrgPeriodCompleteness) -> Self {
        Self {
            org_id: c.org_id.as_uuid(),
            expected: c.expected,
            received: c.received,
            on_time: c.on_time,
            late: c.late,
            missing: c.missing,
            pending: c.pending,
            items: c
                .items
                .iter()
                .map(|i| {
                    let (status, first, at, late) = match i.status {
                        SubmissionStatus::OnTime {
                            first_record,
                            received_at,
                        } => ("on_time", Some(first_record), Some(received_at), None),
                        SubmissionStatus::Late {
                            first_record,
                            received_at,
                            seconds_late,
                        } => ("late", Some(first_record), Some(received_at), Some(seconds_late)),
                        SubmissionStatus::Missing => ("missing", None, None, None),
                        SubmissionStatus::Pending => ("pending", None, None, None),
                    };
                    ExpectationOut {
                        category: i.category.as_str().to_owned(),
                        deadline: i.deadline,
                        status: status.to_owned(),
                        first_record_id: first.map(|r| r.as_uuid()),
                        received_at: at,
                        seconds_late: late,
                    }
                })
                .collect(),
        }
    }
}

/// The sums over every organisation.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct CompletenessTotalsOut {
    /// Organisations listed.
    pub organisations: usize,
    /// Submissions expected.
    pub expected: usize,
    /// Received (on time or late).
    pub received: usize,
    /// Received on time.
    pub on_time: usize,
    /// Received late.
    pub late: usize,
    /// Missing.
    pub missing: usize,
    /// Not yet due.
    pub pending: usize,
}

/// Completeness of a period, for reports.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CompletenessOut {
    /// The reporting period.
    pub period: String,
    /// The categories expected.
    pub categories: Vec<String>,
    /// The deadline applied.
    pub due: DateTime<Utc>,
    /// When it was computed.
    pub as_of: DateTime<Utc>,
    /// Per organisation, by organisation id.
    pub organisations: Vec<OrgCompletenessOut>,
    /// The sums.
    pub totals: CompletenessTotalsOut,
}

/// The default deadline of `period`: the end of the [`DEFAULT_GRACE_DAYS`]th day after it ends,
/// in Vietnam (UTC+7).
pub fn default_due(period: Period) -> DateTime<Utc> {
    FixedOffset::east_opt(7 * 3600)
        .and_then(|vietnam| {
            period
                .end()
                .checked_add_days(Days::new(DEFAULT_GRACE_DAYS + 1))?
                .and_hms_opt(0, 0, 0)?
                .and_local_timezone(vietnam)
                .single()
        })
        .map_or(DateTime::<Utc>::MAX_UTC, |t| t.with_timezone(&Utc))
}

impl CompletenessQuery {
    fn parse(&self) -> Result<(Period, Vec<Category>, DateTime<Utc>), ApiError> {
        let period = query_period(self.period.as_deref())?.ok_or_else(|| {
            bad_query(
                "period",
                ViolationCode::Required,
                "the reporting period, e.g. 2026-10",
            )
        })?;
        let categories = match query_category(self.category.as_deref())? {
            Some(c) => vec![c],
            None => Category::ALL.to_vec(),
        };
        let due = match self.due.as_deref() {
            None => default_due(period),
            Some(s) => DateTime::parse_from_rfc3339(s.trim())
                .map(|d| d.with_timezone(&Utc))
                .map_err(|_| bad_query("due", ViolationCode::Format, "expected an RFC 3339 date-time"))?,
        };
        Ok((period, categories, due))
    }
}

/// Completeness of a reporting period (R-REC, for reports): per organisation of the caller's
/// subtree, how many submissions were expected, received on time or late, missing or not yet
/// due, and per category the first record received. See the module documentation for what is
/// expected.
#[utoipa::path(get, path = "/api/v1/completeness", operation_id = "get_completeness", tag = "reconciliation",
    params(CompletenessQuery),
    responses((status = 200, body = CompletenessOut), AuthErrors, BadParameter),
    security(("session" = [])))]
pub async fn completeness(
    app: App,
    api: Api,
    p: Principal,
    q: web::Query<CompletenessQuery>,
) -> Result<HttpResponse, ApiError> {
    let reach = api.reach(&p, Permission::ReadReconciliation)?;
    let (period, categories, due) = q.parse()?;
    let mut orgs = match api.members(reach).await? {
        Members::Only(orgs) => orgs,
        Members::All => {
            let store = app.store();
            let mut all = store.known_orgs().await.map_err(ApiError::internal)?;
            all.extend(
                store
                    .senders(&categories, period)
                    .await
                    .map_err(ApiError::internal)?,
            );
            all
        }
    };
    orgs.sort();
    orgs.dedup();
    let expected: Vec<ExpectedSubmission> = orgs
        .iter()
        .flat_map(|org| {
            categories.iter().map(move |category| ExpectedSubmission {
                org_id: *org,
                category: *category,
                period,
                deadline: due,
            })
        })
        .collect();
    let as_of = Utc::now();
    let report = app
        .completeness(&expected, as_of)
        .await
        .map_err(ApiError::internal)?;
    let organisations: Vec<OrgCompletenessOut> = report.iter().map(OrgCompletenessOut::from).collect();
    let mut totals = CompletenessTotalsOut {
        organisations: organisations.len(),
        ..Default::default()
    };
    for o in &organisations {
        totals.expected += o.expected;
        totals.received += o.received;
        totals.on_time += o.on_time;
        totals.late += o.late;
        totals.missing += o.missing;
        totals.pending += o.pending;
    }
    Ok(HttpResponse::Ok().json(CompletenessOut {
        period: period.to_string(),
        categories: categories.iter().map(|c| c.as_str().to_owned()).collect(),
        due,
        as_of,
        organisations,
        totals,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(e: ApiError) -> Vec<(String, ViolationCode)> {
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        e.violations.into_iter().map(|v| (v.path, v.code)).collect()
    }

    #[test]
    fn a_period_body_defaults_to_the_callers_organisation() {
        let own = OrgId::new();
        let body = |v: serde_json::Value| serde_json::from_value::<PeriodIn>(v).unwrap();
        let (c, p, w) = body(serde_json::json!({"category": "statistics", "period": "2026-10"}))
            .parse(own)
            .expect("valid");
        assert_eq!(
            (c, p, w),
            (
                Category::Statistics,
                Period::parse("2026-10").unwrap(),
                Wanted::Org(own)
            )
        );
        let other = OrgId::new();
        let (_, _, w) = body(serde_json::json!({
            "category": "policy", "period": "2026", "scope": "org", "org_id": other.to_string()
        }))
        .parse(own)
        .expect("valid");
        assert_eq!(w, Wanted::Org(other));
        let (_, _, w) = body(serde_json::json!({"category": "policy", "period": "2026", "scope": "all"}))
            .parse(own)
            .expect("valid");
        assert_eq!(w, Wanted::All);
    }

    #[test]
    fn a_bad_period_body_names_every_field() {
        let body = |v: serde_json::Value| serde_json::from_value::<PeriodIn>(v).unwrap();
        assert_eq!(
            violations(body(serde_json::json!({})).parse(OrgId::new()).err().unwrap()),
            vec![
                ("/category".to_owned(), ViolationCode::Required),
                ("/period".to_owned(), ViolationCode::Required)
            ]
        );
        assert_eq!(
            violations(
                body(serde_json::json!({"category": "weather", "period": "2026-13", "scope": "nation"}))
                    .parse(OrgId::new())
                    .err()
                    .unwrap()
            ),
            vec![
                ("/category".to_owned(), ViolationCode::UnknownCategory),
                ("/period".to_owned(), ViolationCode::Format),
                ("/scope".to_owned(), ViolationCode::Enum),
            ]
        );
        assert_eq!(
            violations(
                body(serde_json::json!({"category": "policy", "period": "2026", "scope": "all", "org_id": OrgId::new().to_string()}))
                    .parse(OrgId::new())
                    .err()
                    .unwrap()
            ),
            vec![("/org_id".to_owned(), ViolationCode::UnknownField)]
        );
        assert_eq!(
            violations(
                body(serde_json::json!({"category": "policy", "period": "2026", "org_id": "hà-nội"}))
                    .parse(OrgId::new())
                    .err()
                    .unwrap()
            ),
            vec![("/org_id".to_owned(), ViolationCode::Format)]
        );
        assert!(serde_json::from_value::<PeriodIn>(serde_json::json!({"reason": "x"})).is_err());
    }

    #[test]
    fn reopening_needs_a_reason_of_ten_to_a_thousand_characters() {
        let body = |reason: Option<&str>| ReopenIn {
            category: Some("statistics".into()),
            period: Some("2026-10".into()),
            scope: None,
            org_id: None,
            reason: reason.map(str::to_owned),
        };
        for (reason, code) in [
            (None, ViolationCode::Required),
            (Some("quá ngắn"), ViolationCode::TooSmall),
            (Some("   ngắn quá   "), ViolationCode::TooSmall),
            (Some(&*"x".repeat(1001)), ViolationCode::TooLarge),
            (Some("mười ký tự nữa\u{0}"), ViolationCode::Invalid),
        ] {
            assert_eq!(
                violations(body(reason).parse(OrgId::new()).err().unwrap()),
                vec![("/reason".to_owned(), code)],
                "{reason:?}"
            );
        }
        let (_, reason) = body(Some("  Sở Tư pháp gửi bổ sung số liệu  "))
            .parse(OrgId::new())
            .expect("valid");
        assert_eq!(reason.as_str(), "Sở Tư pháp gửi bổ sung số liệu");
    }

    #[test]
    fn submissions_are_due_fifteen_days_after_the_period_vietnam_time() {
        let due = default_due(Period::parse("2026-10").unwrap());
        assert_eq!(due.to_rfc3339(), "2026-11-15T17:00:00+00:00");
        let due = default_due(Period::parse("2026-Q4").unwrap());
        assert_eq!(due.to_rfc3339(), "2027-01-15T17:00:00+00:00");
    }

    #[test]
    fn completeness_needs_a_period_and_reads_the_deadline() {
        let q = |v: serde_json::Value| serde_json::from_value::<CompletenessQuery>(v).unwrap();
        let e = q(serde_json::json!({})).parse().err().unwrap();
        assert_eq!(
            (e.code, e.violations[0].path.as_str(), e.violations[0].code),
            (
                ErrorCode::InvalidParameter,
                "query:period",
                ViolationCode::Required
            )
        );
        let (_, categories, due) =
            q(serde_json::json!({"period": "2026-10", "due": "2026-11-10T10:00:00+07:00"}))
                .parse()
                .ok()
                .unwrap();
        assert_eq!(categories.len(), 4, "every category by default");
        assert_eq!(due.to_rfc3339(), "2026-11-10T03:00:00+00:00");
        let e = q(serde_json::json!({"period": "2026-10", "due": "tomorrow"}))
            .parse()
            .err()
            .unwrap();
        assert_eq!(e.violations[0].path, "query:due");
        assert!(serde_json::from_value::<CompletenessQuery>(serde_json::json!({"org": "x"})).is_err());
    }
}
