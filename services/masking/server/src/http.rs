//! The pipeline's operations API (mounted under `/api/v1` where the masking target runs; issue
//! 5 §1, §3): what an operator needs to keep records flowing — the backlog of every pipeline
//! stream, its dead letters and their replay, and the records the masking stage holds. The
//! masking policy API and re-identification are in [`policies`].
//!
//! Every operation needs [`Permission::OperatePipeline`] (`system_admin`, `operator`; never a
//! connected system). Streams and dead letters are the hub's, not one organisation's: they are
//! open to system administrators and to the operators of the root organisation (the same rule
//! as the audit log's); held records are listed within the caller's organisation subtree. Nothing here shows a payload value: messages carry metadata only and held
//! records only the places and kinds of what was found (R-SEC-10). Replays are recorded in the
//! audit log by the gateway like every request.

pub mod policies;

use crate::AppMasking;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use etx_domain::OrgId;
use etx_domain::authz::{OrgScope, Permission, roles};
use etx_domain::{ErrorCode, FieldViolation, ViolationCode};
use etx_http_kit::openapi::{AuthErrors, BadParameter};
use etx_http_kit::{ApiError, Principal, Problem};
use etx_queue::{Queue, QueueError};
use etx_storage::OrgReplica;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The streams of the pipeline and the consumer group whose backlog is watched on each.
pub const PIPELINE_STREAMS: [(&str, &str); 3] = [
    (crate::RECORDS_RECEIVED, crate::GROUP),
    (etx_storage::ORGS_STREAM, "ingestion"),
    (crate::RECORDS_MASKED, "reconciliation"),
];

/// Most dead letters listed (and counted) at once.
pub const MAX_DEAD_LETTERS: usize = 1000;

/// What the operations API works on.
#[derive(Clone)]
pub struct PipelineOps {
    queue: Arc<dyn Queue>,
    orgs: OrgReplica,
    root_org: Option<OrgId>,
}

impl std::fmt::Debug for PipelineOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineOps").finish_non_exhaustive()
    }
}

impl PipelineOps {
    /// Operations over `queue`; held records are listed within the caller's organisation
    /// subtree as `orgs` (masking's replica of the hierarchy) knows it; `root_org` is the
    /// hub's own organisation, whose operators see the whole pipeline.
    pub fn new(queue: Arc<dyn Queue>, orgs: OrgReplica, root_org: Option<OrgId>) -> Self {
        Self {
            queue,
            orgs,
            root_org,
        }
    }

    /// Refuses unless `p` may operate the hub-wide pipeline (see the module docs).
    fn hub_wide(&self, p: &Principal) -> Result<(), ApiError> {
        self.hub_only(
            p,
            Permission::OperatePipeline,
            "the pipeline is the hub's: system administrators and the root organisation's operators operate it",
        )
    }

    /// Refuses unless `p` holds `permission` and is a system administrator or a person of the
    /// root organisation (`403` with `detail` otherwise): for what is the hub's as a whole.
    fn hub_only(&self, p: &Principal, permission: Permission, detail: &'static str) -> Result<(), ApiError> {
        p.require(permission)?;
        if p.has_role(roles::SYSTEM_ADMIN) || self.root_org == Some(p.org_id) {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden).with_detail(detail))
        }
    }

    /// The organisations `p` may see: its own, or those of its subtree.
    async fn visible_orgs(&self, p: &Principal) -> Result<Vec<OrgId>, ApiError> {
        Ok(match p.org_scope() {
            OrgScope::Own(o) => vec![o],
            OrgScope::Subtree(root) => self.orgs.subtree(root).await.map_err(ApiError::internal)?,
        })
    }
}

fn queue_error(e: QueueError) -> ApiError {
    match e {
        QueueError::NotFound(_) => ApiError::not_found(),
        QueueError::Unavailable(_) => ApiError::new(ErrorCode::ServiceUnavailable)
            .with_detail("the queue cannot be reached; try again shortly")
            .with_retry_after(5),
        QueueError::Unknown(e) => ApiError::internal(e),
    }
}

fn known_stream(stream: &str) -> Result<&'static str, ApiError> {
    PIPELINE_STREAMS
        .iter()
        .map(|(s, _)| *s)
        .find(|s| *s == stream)
        .ok_or_else(|| {
            ApiError::new(ErrorCode::InvalidParameter).with_violations(vec![
                FieldViolation::new("query:stream", ViolationCode::Enum).with_detail(format!(
                    "expected one of: {}",
                    PIPELINE_STREAMS.map(|(s, _)| s).join(", ")
                )),
            ])
        })
}

/// A page size from 1 to 1000.
fn checked_limit(limit: u64) -> Result<u64, ApiError> {
    let code = match limit {
        0 => ViolationCode::TooSmall,
        1..=1000 => return Ok(limit),
        _ => ViolationCode::TooLarge,
    };
    Err(ApiError::new(ErrorCode::InvalidParameter).with_violations(vec![
        FieldViolation::new("query:limit", code).with_detail("expected 1 to 1000"),
    ]))
}

/// One stream of the pipeline.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StreamOut {
    /// The stream.
    pub stream: String,
    /// The consumer group watched on it.
    pub group: String,
    /// Messages the group has not yet acknowledged (unread + pending); `null` while the group
    /// does not exist (its service has not started yet).
    pub lag: Option<u64>,
    /// Dead letters waiting (counted up to 1000).
    pub dead_letters: u64,
}

/// The pipeline's streams.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PipelineOut {
    /// One entry per stream, in pipeline order.
    pub streams: Vec<StreamOut>,
}

/// The backlog and dead letters of every pipeline stream (issue 5 §1): after an outage the
/// lags return to zero as the stages catch up.
#[utoipa::path(get, path = "/api/v1/pipeline", tag = "pipeline",
    responses(
        (status = 200, body = PipelineOut),
        (status = 503, description = "The queue cannot be reached", body = Problem, content_type = "application/problem+json"),
        AuthErrors,
    ),
    security(("session" = [])))]
pub async fn pipeline(ops: web::Data<PipelineOps>, p: Principal) -> Result<HttpResponse, ApiError> {
    ops.hub_wide(&p)?;
    let mut streams = Vec::new();
    for (stream, group) in PIPELINE_STREAMS {
        let lag = match ops.queue.lag(stream, group).await {
            Ok(n) => Some(n),
            Err(QueueError::NotFound(_)) => None,
            Err(e) => return Err(queue_error(e)),
        };
        let dead = ops
            .queue
            .dead_letters(stream, MAX_DEAD_LETTERS)
            .await
            .map_err(queue_error)?;
        streams.push(StreamOut {
            stream: stream.to_owned(),
            group: group.to_owned(),
            lag,
            dead_letters: dead.len() as u64,
        });
    }
    Ok(HttpResponse::Ok().json(PipelineOut { streams }))
}

/// Which stream's dead letters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// `records.received`, `events.orgs` or `records.masked`.
    pub stream: String,
    /// At most this many, 1 to 1000 (default 100).
    pub limit: Option<usize>,
}

/// A message that failed its consumer `attempts` times and was set aside.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterOut {
    /// Its id (pass it to the replay operation).
    pub id: String,
    /// The message key (a record or organisation id).
    pub key: String,
    /// `high`, `normal` or `low`.
    pub priority: String,
    /// Deliveries made before giving up.
    pub attempts: u32,
    /// Why the last delivery failed (identifiers scrubbed).
    pub reason: String,
    /// When it was set aside.
    pub failed_at: DateTime<Utc>,
    /// The message body (metadata only: ids, categories, periods), as JSON when it is JSON.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

/// Dead letters of one stream.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLettersOut {
    /// The stream.
    pub stream: String,
    /// Oldest first.
    pub dead_letters: Vec<DeadLetterOut>,
}

/// The dead letters of a pipeline stream, oldest first, with the reason each was set aside.
#[utoipa::path(get, path = "/api/v1/pipeline/dead-letters", tag = "pipeline",
    params(DeadLetterQuery),
    responses(
        (status = 200, body = DeadLettersOut),
        (status = 503, description = "The queue cannot be reached", body = Problem, content_type = "application/problem+json"),
        AuthErrors, BadParameter,
    ),
    security(("session" = [])))]
pub async fn dead_letters(
    ops: web::Data<PipelineOps>,
    p: Principal,
    q: web::Query<DeadLetterQuery>,
) -> Result<HttpResponse, ApiError> {
    ops.hub_wide(&p)?;
    let stream = known_stream(&q.stream)?;
    let limit = usize::try_from(checked_limit(
        q.limit.map_or(100, |l| u64::try_from(l).unwrap_or(u64::MAX)),
    )?)
    .unwrap_or(100);
    let dead = ops.queue.dead_letters(stream, limit).await.map_err(queue_error)?;
    let dead_letters = dead
        .into_iter()
        .map(|d| DeadLetterOut {
            id: d.id,
            key: d.key,
            priority: d.priority.as_str().to_owned(),
            attempts: d.attempts,
            reason: d.reason,
            failed_at: d.failed_at,
            body: serde_json::from_slice(&d.body).unwrap_or(serde_json::Value::Null),
        })
        .collect();
    Ok(HttpResponse::Ok().json(DeadLettersOut {
        stream: stream.to_owned(),
        dead_letters,
    }))
}

/// Which stream a replayed dead letter belongs to.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayQuery {
    /// `records.received`, `events.orgs` or `records.masked`.
    pub stream: String,
}

/// Puts a dead letter back on its stream (attempts reset) and removes it from the dead letters,
/// atomically — after the cause was repaired. Consumers are idempotent, so a replay never
/// duplicates anything.
#[utoipa::path(post, path = "/api/v1/pipeline/dead-letters/{id}/replay", tag = "pipeline",
    params(("id" = String, Path, description = "the dead letter's id"), ReplayQuery),
    responses(
        (status = 204, description = "Replayed"),
        (status = 404, description = "No such dead letter on the stream", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The queue cannot be reached", body = Problem, content_type = "application/problem+json"),
        AuthErrors, BadParameter,
    ),
    security(("session" = [])))]
pub async fn replay(
    ops: web::Data<PipelineOps>,
    p: Principal,
    path: web::Path<String>,
    q: web::Query<ReplayQuery>,
) -> Result<HttpResponse, ApiError> {
    ops.hub_wide(&p)?;
    let stream = known_stream(&q.stream)?;
    let id = path.into_inner();
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(ApiError::not_found());
    }
    ops.queue
        .replay_dead_letter(stream, &id)
        .await
        .map_err(queue_error)?;
    tracing::info!(stream, dead_letter = %id, subject = %p.subject, "dead letter replayed");
    Ok(HttpResponse::NoContent().finish())
}

/// How many held records.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeldQuery {
    /// At most this many, 1 to 1000 (default 100).
    pub limit: Option<u64>,
}

/// Where a held record carries an identifier in clear (never the value).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeldFindingOut {
    /// JSON pointer inside the payload.
    pub pointer: String,
    /// What was found: `citizen_id`, `old_id_card`, `tax_code`, `phone`, `bank_account`, `email`.
    pub kind: String,
}

/// A record the masking stage held instead of passing on (issue 5 §3).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeldRecordOut {
    /// The record.
    pub record_id: Uuid,
    /// The submitting organisation.
    pub org_id: Uuid,
    /// The submitting system.
    pub system_id: Uuid,
    /// The receipt it was acknowledged with.
    pub receipt_id: Uuid,
    /// Its category.
    pub category: String,
    /// Its reporting period.
    pub period: String,
    /// The form it was declared in.
    pub form: String,
    /// What the detectors found, where.
    pub findings: Vec<HeldFindingOut>,
    /// When ingestion received it.
    pub received_at: DateTime<Utc>,
    /// When the masking stage held it.
    pub held_at: DateTime<Utc>,
}

/// Held records.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HeldOut {
    /// Oldest first.
    pub records: Vec<HeldRecordOut>,
}

/// The records the masking stage held — declared `masked` but still carrying an identifier in
/// clear — of the caller's organisation subtree, oldest first. The source must resubmit them
/// properly masked (or raw); held records are never passed on.
#[utoipa::path(get, path = "/api/v1/masking/held", tag = "pipeline",
    params(HeldQuery),
    responses((status = 200, body = HeldOut), AuthErrors, BadParameter),
    security(("session" = [])))]
pub async fn held(
    app: web::Data<AppMasking>,
    ops: web::Data<PipelineOps>,
    p: Principal,
    q: web::Query<HeldQuery>,
) -> Result<HttpResponse, ApiError> {
    p.require(Permission::OperatePipeline)?;
    let limit = checked_limit(q.limit.unwrap_or(100))?;
    let orgs = ops.visible_orgs(&p).await?;
    let rows = app.held(Some(&orgs), limit).await.map_err(ApiError::internal)?;
    let records = rows
        .into_iter()
        .map(|r| HeldRecordOut {
            record_id: r.record_id.as_uuid(),
            org_id: r.org_id.as_uuid(),
            system_id: r.system_id.as_uuid(),
            receipt_id: r.receipt_id.as_uuid(),
            category: r.category.as_str().to_owned(),
            period: r.period.to_string(),
            form: r.form.as_str().to_owned(),
            findings: r
                .findings
                .into_iter()
                .map(|f| HeldFindingOut {
                    pointer: f.pointer,
                    kind: serde_json::to_value(f.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                })
                .collect(),
            received_at: r.received_at,
            held_at: r.masked_at,
        })
        .collect();
    Ok(HttpResponse::Ok().json(HeldOut { records }))
}

/// Mounts the operations API and the masking policy API ([`policies::routes`]) under
/// `/api/v1`; needs `web::Data<AppMasking>` and `web::Data<PipelineOps>`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/pipeline", "GET").route(web::get().to(pipeline)))
        .service(resource("/pipeline/dead-letters", "GET").route(web::get().to(dead_letters)))
        .service(resource("/pipeline/dead-letters/{id}/replay", "POST").route(web::post().to(replay)))
        .service(resource("/masking/held", "GET").route(web::get().to(held)))
        .configure(policies::routes);
}

fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(etx_http_kit::method_not_allowed(allow))
}

/// The operations API's part of the OpenAPI document.
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(pipeline, dead_letters, replay, held),
    components(schemas(
        PipelineOut,
        StreamOut,
        DeadLettersOut,
        DeadLetterOut,
        HeldOut,
        HeldRecordOut,
        HeldFindingOut
    )),
    tags((name = "pipeline", description = "The pipeline's operations: stream backlogs, dead letters and their replay, records held by the masking stage (issue 5)"))
)]
pub struct PipelineDoc;
