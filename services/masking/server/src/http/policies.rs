//! The masking policy API and re-identification (issue 5 §2; R-SEC-10, R-SEC-9), mounted under
//! `/api/v1` where the masking target runs.
//!
//! | operation | who |
//! |---|---|
//! | `GET /masking/policies`, `…/current`, `…/{version}` | [`Permission::ReadMaskingPolicy`]: `system_admin`, `security_officer`, `operator`, `auditor` |
//! | `POST /masking/policies/validate` (dry run) | [`Permission::ManageMaskingPolicy`]: `system_admin`, `security_officer` |
//! | `POST /masking/policies` (publish) | [`Permission::ManageMaskingPolicy`], hub-wide: a `system_admin`, or a person of the root organisation |
//! | `POST /masking/reidentify` | [`Permission::Reidentify`]: `security_officer` |
//! | `GET /masking/reidentifications` | [`Permission::ReadMaskingPolicy`] and the role `security_officer` or `auditor`; the root organisation's see every entry, others the entries of their organisation subtree |
//!
//! The policy is the hub's: one policy masks every organisation's records, so a province's
//! security officer may check a draft but not publish it (`403`). The gateway records every
//! change (`admin_action` `masking_policy.change`) and every re-identification (`raw_read`
//! `masking.reidentify`) in the audit log; the re-identification log of this service adds
//! the purpose, the reason and the outcome.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use etx_domain::authz::{Permission, roles};
use etx_domain::{ErrorCode, FieldViolation, ViolationCode};
use etx_http_kit::openapi::{AuthErrors, BadParameter, TooLarge};
use etx_http_kit::{ApiError, Principal, Problem};
use etx_masking_core::Purpose;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::PipelineOps;
use crate::policies::{Author, PolicyStoreError, PolicyVersion, PublishError, StoredPolicy};
use crate::reid::{ReidError, ReidOutcome, ReidRequest};
use crate::{AppMasking, Reidentification};

/// Shortest and longest reason for a re-identification, in characters after trimming.
pub const REASON_CHARS: (usize, usize) = (10, 500);
/// Longest token accepted (a reversible token of the longest value is about 1,700 characters).
pub const MAX_TOKEN_CHARS: usize = 4096;

fn store_error(e: PolicyStoreError) -> ApiError {
    ApiError::internal(e)
}

/// `500`: the store holds no version of the masking policy at all.
fn no_version_stored() -> ApiError {
    ApiError::internal("no masking policy version is stored")
}

fn publish_error(e: PublishError) -> ApiError {
    match e {
        PublishError::Invalid(v) => ApiError::new(ErrorCode::ValidationFailed)
            .with_detail("the masking policy is not valid: see violations")
            .with_violations(v),
        PublishError::Conflict { current, proposed } => ApiError::new(ErrorCode::AlreadyExists)
            .with_detail(format!(
                "the current masking policy version is {current}: a new version must be {}; reload the current version and edit it",
                u64::from(current) + 1
            ))
            .with_violations(vec![
                FieldViolation::new("/version", ViolationCode::Invalid).with_detail(format!(
                    "version {proposed} is not {}; the current version is {current}",
                    u64::from(current) + 1
                )),
            ]),
        PublishError::Store(e) => store_error(e),
    }
}

/// Refuses unless `p` may publish the hub-wide policy (see the module docs).
fn may_publish(ops: &PipelineOps, p: &Principal) -> Result<(), ApiError> {
    ops.hub_only(
        p,
        Permission::ManageMaskingPolicy,
        "the masking policy is the hub's: system administrators and the root organisation's security officers publish it",
    )
}

/// One version of the masking policy, without its document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyVersionOut {
    /// The version (≥ 1).
    pub version: u32,
    /// The document's description.
    pub description: Option<String>,
    /// Hex SHA-256 of the canonical document (members sorted, no whitespace).
    pub sha256: String,
    /// Who published it: `user:<id>`, or `system` for the built-in version 1.
    pub created_by: String,
    /// The publisher's organisation (`null` for `system`).
    pub created_by_org: Option<Uuid>,
    /// When it was published.
    pub created_at: DateTime<Utc>,
    /// Whether it is the current version (the highest).
    pub current: bool,
}

impl PolicyVersionOut {
    fn of(m: PolicyVersion, current: u32) -> Self {
        Self {
            current: m.version == current,
            version: m.version,
            description: m.description,
            sha256: m.sha256,
            created_by: m.created_by,
            created_by_org: m.created_by_org.map(|o| o.as_uuid()),
            created_at: m.created_at,
        }
    }
}

/// The versions of the masking policy.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyListOut {
    /// The current version: records are masked with it from now on.
    pub current_version: u32,
    /// Newest first.
    pub versions: Vec<PolicyVersionOut>,
}

/// One version of the masking policy with its document.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyOut {
    /// The version (≥ 1).
    pub version: u32,
    /// The document's description.
    pub description: Option<String>,
    /// Hex SHA-256 of the canonical document.
    pub sha256: String,
    /// Who published it: `user:<id>`, or `system` for the built-in version 1.
    pub created_by: String,
    /// The publisher's organisation (`null` for `system`).
    pub created_by_org: Option<Uuid>,
    /// When it was published.
    pub created_at: DateTime<Utc>,
    /// Whether it is the current version.
    pub current: bool,
    /// The policy document (see `PolicyDocument`), members sorted.
    #[schema(value_type = Object)]
    pub document: Value,
}

impl PolicyOut {
    fn of(s: StoredPolicy, current: u32) -> Self {
        let meta = PolicyVersionOut::of(s.meta, current);
        Self {
            version: meta.version,
            description: meta.description,
            sha256: meta.sha256,
            created_by: meta.created_by,
            created_by_org: meta.created_by_org,
            created_at: meta.created_at,
            current: meta.current,
            document: s.document,
        }
    }
}

/// A masking policy document (issue 5 §2; the rules: `docs/masking-policies.md`). Only
/// documents the request body: it is read as JSON and every rule is checked, every broken one
/// reported with its JSON pointer.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct PolicyDocument {
    /// The version: exactly the current version + 1 to publish.
    #[schema(minimum = 1)]
    version: u32,
    /// What changed and why, at most 500 characters.
    #[schema(max_length = 500)]
    description: Option<String>,
    /// Default k of small-cell suppression, 2 to 1000 (default 5).
    #[schema(minimum = 2, maximum = 1000)]
    small_cell_k: Option<u32>,
    /// Field rules, applied in order.
    fields: Option<Vec<FieldRuleDocument>>,
    /// Per finding kind (`citizen_id`, `old_id_card`, `tax_code`, `phone`, `bank_account`,
    /// `email`): audience → operator, for identifiers the detectors find in free text.
    #[schema(value_type = Option<Object>)]
    detected: Option<Value>,
}

/// How one field of one category is masked for each audience.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
pub struct FieldRuleDocument {
    /// `policy`, `statistics`, `workforce` or `enforcement`.
    category: String,
    /// A JSON pointer into the payload; `*` matches any element.
    field: String,
    /// `citizen_id`, `old_id_card`, `tax_code`, `phone`, `bank_account`, `email` or
    /// `personal_field` (default).
    kind: Option<String>,
    /// Whether the field holds personal data (default true).
    personal: Option<bool>,
    /// `analyst`, `data_consumer`, `public`, `alert_text` and/or `default` → an operator
    /// (`{"op": "redact" | "partial" | "token" | "reversible_token" | "generalise" | "keep" |
    /// "detect" | "suppress_small_count", …parameters}`).
    #[schema(value_type = Object)]
    audiences: Value,
}

/// The outcome of a dry run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyCheckOut {
    /// Always true (a document that fails is answered 409 or 422).
    pub valid: bool,
    /// The version the document would be published as.
    pub version: u32,
}

async fn current_version(app: &AppMasking) -> Result<u32, ApiError> {
    app.policies()
        .current_version()
        .await
        .map_err(store_error)?
        .ok_or_else(no_version_stored)
}

/// The versions of the masking policy, newest first (metadata only).
#[utoipa::path(get, path = "/api/v1/masking/policies", tag = "masking",
    responses((status = 200, body = PolicyListOut), AuthErrors),
    security(("session" = [])))]
pub async fn list_policies(app: web::Data<AppMasking>, p: Principal) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ReadMaskingPolicy)?;
    let versions = app.policies().list().await.map_err(store_error)?;
    let current = versions.first().map_or(0, |v| v.version);
    Ok(HttpResponse::Ok().json(PolicyListOut {
        current_version: current,
        versions: versions
            .into_iter()
            .map(|v| PolicyVersionOut::of(v, current))
            .collect(),
    }))
}

/// The current version of the masking policy, with its document: the one records are masked
/// with from now on.
#[utoipa::path(get, path = "/api/v1/masking/policies/current", tag = "masking",
    responses((status = 200, body = PolicyOut), AuthErrors),
    security(("session" = [])))]
pub async fn current_policy(app: web::Data<AppMasking>, p: Principal) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ReadMaskingPolicy)?;
    let stored = app
        .policies()
        .current_stored()
        .await
        .map_err(store_error)?
        .ok_or_else(no_version_stored)?;
    let current = stored.meta.version;
    Ok(HttpResponse::Ok().json(PolicyOut::of(stored, current)))
}

/// One version of the masking policy, with its document.
#[utoipa::path(get, path = "/api/v1/masking/policies/{version}", tag = "masking",
    params(("version" = u32, Path, minimum = 1, description = "the version")),
    responses(
        (status = 200, body = PolicyOut),
        (status = 404, description = "No such version", body = Problem, content_type = "application/problem+json"),
        AuthErrors, BadParameter,
    ),
    security(("session" = [])))]
pub async fn get_policy(
    app: web::Data<AppMasking>,
    p: Principal,
    version: web::Path<u32>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ReadMaskingPolicy)?;
    let stored = app
        .policies()
        .get(version.into_inner())
        .await
        .map_err(store_error)?
        .ok_or_else(ApiError::not_found)?;
    let current = current_version(&app).await?;
    Ok(HttpResponse::Ok().json(PolicyOut::of(stored, current)))
}

/// Publishes a new version of the masking policy. Its `version` must be exactly the current
/// version + 1 (else `409 already_exists`, naming the current version, so that two editors
/// cannot overwrite each other); every broken rule is reported (`422 validation_failed`, each
/// violation with its JSON pointer). Records received from now on are masked with it, in every
/// masking process within seconds; records stored before keep the version they were masked
/// with. Hub-wide: system administrators and the root organisation's security officers only.
#[utoipa::path(post, path = "/api/v1/masking/policies", tag = "masking",
    request_body(content = PolicyDocument, content_type = "application/json"),
    responses(
        (status = 201, body = PolicyOut, headers(("Location" = String, description = "the version's URL"))),
        (status = 409, description = "The version is not the current version + 1 (`already_exists`; `detail` and the `/version` violation name the current version)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The document breaks rules (`validation_failed`; every violation with its JSON pointer and code)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not JSON (`malformed_json`)", body = Problem, content_type = "application/problem+json"),
        AuthErrors, TooLarge,
    ),
    security(("session" = [])))]
pub async fn publish_policy(
    app: web::Data<AppMasking>,
    ops: web::Data<PipelineOps>,
    p: Principal,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    may_publish(&ops, &p)?;
    let author = Author {
        subject: &p.subject,
        org_id: Some(p.org_id),
    };
    let stored = app
        .policies()
        .publish(&body, author, Utc::now())
        .await
        .map_err(publish_error)?;
    let version = stored.meta.version;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/masking/policies/{version}")))
        .json(PolicyOut::of(stored, version)))
}

/// Checks a policy document exactly as publishing would (validity, then version = current
/// + 1) and stores nothing.
#[utoipa::path(post, path = "/api/v1/masking/policies/validate", tag = "masking",
    request_body(content = PolicyDocument, content_type = "application/json"),
    responses(
        (status = 200, description = "It would be published as is", body = PolicyCheckOut),
        (status = 409, description = "The version is not the current version + 1", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The document breaks rules (every violation with its JSON pointer and code)", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not JSON (`malformed_json`)", body = Problem, content_type = "application/problem+json"),
        AuthErrors, TooLarge,
    ),
    security(("session" = [])))]
pub async fn validate_policy(
    app: web::Data<AppMasking>,
    p: Principal,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ManageMaskingPolicy)?;
    let policy = app.policies().check(&body).await.map_err(publish_error)?;
    Ok(HttpResponse::Ok().json(PolicyCheckOut {
        valid: true,
        version: policy.version(),
    }))
}

/// A request to re-identify a reversible token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReidentifyIn {
    /// The reversible token (`rtk_…`) as found in a masked record.
    #[schema(max_length = 4096)]
    pub token: String,
    /// The purpose the policy made it for (the `purpose` of its `reversible_token` operator).
    #[schema(min_length = 1, max_length = 64)]
    pub purpose: String,
    /// Why the value is needed (a case number and what it needs), 10 to 500 characters;
    /// identifiers in it are masked before it is stored.
    #[schema(min_length = 10, max_length = 500)]
    pub reason: String,
}

/// A re-identified value.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReidentifiedOut {
    /// The value in clear, normalised as when it was tokenised (e.g. digits only).
    pub value: String,
    /// The purpose.
    pub purpose: String,
    /// The entry of the re-identification log.
    pub reidentification_id: Uuid,
}

/// Checks the body's fields; the purpose parsed.
fn checked(body: &ReidentifyIn) -> Result<Purpose, ApiError> {
    let mut v = Vec::new();
    let purpose = Purpose::parse(&body.purpose)
        .map_err(|why| v.push(FieldViolation::new("/purpose", ViolationCode::Format).with_detail(why)))
        .ok();
    let reason = body.reason.trim().chars().count();
    if reason < REASON_CHARS.0 {
        v.push(FieldViolation::new("/reason", ViolationCode::TooSmall).with_detail("10 to 500 characters"));
    } else if reason > REASON_CHARS.1 {
        v.push(FieldViolation::new("/reason", ViolationCode::TooLarge).with_detail("10 to 500 characters"));
    }
    let token = body.token.trim().chars().count();
    if token == 0 {
        v.push(
            FieldViolation::new("/token", ViolationCode::Required).with_detail("a reversible token (rtk_…)"),
        );
    } else if token > MAX_TOKEN_CHARS {
        v.push(FieldViolation::new("/token", ViolationCode::TooLarge).with_detail("at most 4096 characters"));
    }
    match purpose {
        Some(p) if v.is_empty() => Ok(p),
        _ => Err(ApiError::new(ErrorCode::ValidationFailed).with_violations(v)),
    }
}

/// Turns a reversible token (`rtk_…`, AES-SIV) back into the value it stands for, for the
/// purpose it was made for: a read of personal data in clear (R-SEC-10), for security officers
/// only, with a stated reason. Every attempt — granted or refused — is logged (who, when,
/// purpose, reason, a SHA-256 of the token; never the value) before anything is answered, and
/// the audit log records the call as `masking.reidentify`. A keyed token (`tok_…`) is
/// irreversible, and a garbled or forged token or another purpose's is refused: `422` with a
/// violation at `/token`.
#[utoipa::path(post, path = "/api/v1/masking/reidentify", tag = "masking",
    request_body = ReidentifyIn,
    responses(
        (status = 200, body = ReidentifiedOut, headers(("Cache-Control" = String, description = "`no-store`"))),
        (status = 422, description = "A field breaks its rules, or the token cannot be re-identified (keyed token, not a reversible token, another purpose or key, altered): a violation at `/token`", body = Problem, content_type = "application/problem+json"),
        (status = 400, description = "The body is not JSON (`malformed_json`)", body = Problem, content_type = "application/problem+json"),
        AuthErrors, TooLarge,
    ),
    security(("session" = [])))]
pub async fn reidentify(
    app: web::Data<AppMasking>,
    p: Principal,
    body: web::Json<ReidentifyIn>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::Reidentify)?;
    let purpose = checked(&body)?;
    let req = ReidRequest {
        actor: &p.subject,
        org_id: p.org_id,
        ip: p.client_ip.as_deref(),
        purpose: &purpose,
        token: &body.token,
        reason: &body.reason,
    };
    match app.reidentify(req).await {
        Ok(ReidOutcome::Granted { id, value }) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(ReidentifiedOut {
                value: value.as_str().to_owned(),
                purpose: purpose.as_str().to_owned(),
                reidentification_id: id,
            })),
        Ok(ReidOutcome::Refused { refusal, .. }) => Err(ApiError::new(ErrorCode::ValidationFailed)
            .with_detail(refusal.detail())
            .with_violations(vec![
                FieldViolation::new("/token", ViolationCode::Invalid).with_detail(refusal.detail()),
            ])),
        Err(ReidError::Invalid(why)) => {
            Err(ApiError::new(ErrorCode::ValidationFailed).with_violations(vec![
                FieldViolation::new("/reason", ViolationCode::Invalid).with_detail(why),
            ]))
        }
        Err(ReidError::Database(e)) => {
            tracing::error!(error = %e, "re-identification not recorded, so not done");
            Err(ApiError::new(ErrorCode::ServiceUnavailable)
                .with_detail(
                    "the re-identification cannot be recorded now, so it was not done; try again shortly",
                )
                .with_retry_after(5))
        }
    }
}

/// Which entries of the re-identification log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReidQuery {
    /// At most this many, 1 to 1000 (default 100).
    pub limit: Option<u64>,
    /// Only entries older than this entry (the `id` of the last entry of the previous page).
    pub before: Option<Uuid>,
}

/// One re-identification attempt.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReidentificationOut {
    /// The entry.
    pub id: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (`user:<id>`).
    pub actor: String,
    /// Their organisation.
    pub actor_org_id: Uuid,
    /// From where.
    pub ip: Option<String>,
    /// The purpose asked for.
    pub purpose: String,
    /// The reason given (identifiers in it masked).
    pub reason: String,
    /// Hex SHA-256 of the token presented (the token itself is not kept).
    pub token_sha256: String,
    /// `granted` or `refused`.
    pub outcome: String,
    /// Why it was refused: `keyed_token`, `not_a_token` or `wrong_purpose_or_key`.
    pub refusal: Option<String>,
}

impl From<Reidentification> for ReidentificationOut {
    fn from(r: Reidentification) -> Self {
        Self {
            id: r.id,
            at: r.at,
            actor: r.actor,
            actor_org_id: r.actor_org.as_uuid(),
            ip: r.ip,
            purpose: r.purpose,
            reason: r.reason,
            token_sha256: r.token_sha256,
            outcome: if r.granted { "granted" } else { "refused" }.to_owned(),
            refusal: r.refusal,
        }
    }
}

/// Re-identification attempts.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReidentificationsOut {
    /// Newest first.
    pub reidentifications: Vec<ReidentificationOut>,
}

/// The re-identification log, newest first: every attempt, granted or refused, with who,
/// when, the purpose, the reason and a hash of the token. For security officers and auditors;
/// those of the root organisation see every entry, others the entries of people of their
/// organisation subtree.
#[utoipa::path(get, path = "/api/v1/masking/reidentifications", tag = "masking",
    params(ReidQuery),
    responses((status = 200, body = ReidentificationsOut), AuthErrors, BadParameter),
    security(("session" = [])))]
pub async fn list_reidentifications(
    app: web::Data<AppMasking>,
    ops: web::Data<PipelineOps>,
    p: Principal,
    q: web::Query<ReidQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::ReadMaskingPolicy)?;
    if !(p.has_role(roles::SECURITY_OFFICER) || p.has_role(roles::AUDITOR)) {
        return Err(ApiError::new(ErrorCode::Forbidden)
            .with_detail("the re-identification log is for security officers and auditors"));
    }
    let limit = super::checked_limit(q.limit.unwrap_or(100))?;
    let orgs = if ops.root_org == Some(p.org_id) {
        None
    } else {
        Some(ops.visible_orgs(&p).await?)
    };
    let rows = app
        .reidentifications()
        .list(orgs.as_deref(), q.before, limit)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(ReidentificationsOut {
        reidentifications: rows.into_iter().map(Into::into).collect(),
    }))
}

/// Mounts the policy API and re-identification (under `/api/v1`); needs
/// `web::Data<AppMasking>` and `web::Data<PipelineOps>`. The fixed paths come before
/// `{version}`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/masking/policies", "GET, POST")
            .route(web::get().to(list_policies))
            .route(web::post().to(publish_policy)),
    )
    .service(super::resource("/masking/policies/current", "GET").route(web::get().to(current_policy)))
    .service(super::resource("/masking/policies/validate", "POST").route(web::post().to(validate_policy)))
    .service(super::resource("/masking/policies/{version}", "GET").route(web::get().to(get_policy)))
    .service(super::resource("/masking/reidentify", "POST").route(web::post().to(reidentify)))
    .service(
        super::resource("/masking/reidentifications", "GET").route(web::get().to(list_reidentifications)),
    );
}

/// The policy API's part of the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(
        list_policies,
        current_policy,
        get_policy,
        publish_policy,
        validate_policy,
        reidentify,
        list_reidentifications
    ),
    components(schemas(
        PolicyListOut,
        PolicyVersionOut,
        PolicyOut,
        PolicyDocument,
        FieldRuleDocument,
        PolicyCheckOut,
        ReidentifyIn,
        ReidentifiedOut,
        ReidentificationsOut,
        ReidentificationOut
    )),
    tags((name = "masking", description = "The masking policy's versions (stored, immutable, published as current + 1) and the audited re-identification of reversible tokens (issue 5 §2, R-SEC-10)"))
)]
pub struct PolicyDoc;
