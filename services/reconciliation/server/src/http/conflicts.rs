//! The operators' conflict queue (R-REC, issue 5 §4): list it page by page, inspect a conflict
//! — the incoming record's version and the canonical record's current value, each with its
//! provenance (R-DATA-3), the reason and the differences — and resolve it by choosing a version,
//! merging field values or rejecting the match. A resolution is final and remembered: a
//! rejected pair is never merged again.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use etx_domain::authz::Permission;
use etx_domain::{ErrorCode, FieldViolation, Priority, RecordId, ViolationCode};
use etx_http_kit::openapi::{AuthErrors, BadParameter};
use etx_http_kit::{ApiError, Principal, Problem};
use etx_reconciliation_core::{
    Conflict, ConflictId, ConflictStatus, Resolution, ResolutionChoice, ResolveConflictError, ResolveError,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::dto::{CanonicalRecordOut, ContributionOut};
use super::{
    Api, App, Reach, accepted, bad_query, invalid_field, next_page, page_size, person, query_category,
    query_period,
};
use crate::store::queries::{ConflictCursor, ConflictOrder, ConflictQuery, ConflictRow};

/// Conflicts listed when no `limit` is given.
pub const DEFAULT_PAGE: u64 = 50;
/// Most conflicts one page holds.
pub const MAX_PAGE: u64 = 500;
/// Longest note an operator may add to a resolution, in characters (the core's limit).
pub const MAX_NOTE_CHARS: usize = 2000;

/// Which conflicts to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConflictsQuery {
    /// `open` or `resolved` (default: both).
    #[param(example = "open")]
    pub status: Option<String>,
    /// Only of this category: `policy`, `statistics`, `workforce`, `enforcement`.
    #[param(example = "statistics")]
    pub category: Option<String>,
    /// Only of this reporting period (`YYYY`, `YYYY-Qn`, `YYYY-MM`, `YYYY-MM-DD`).
    #[param(example = "2026-10")]
    pub period: Option<String>,
    /// `priority` (default: highest priority first, oldest first within one — the order to work
    /// through the queue), `newest` or `oldest`.
    #[param(example = "priority")]
    pub order: Option<String>,
    /// At most this many, 1 to 500 (default 50).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 500)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page (with the same `order`).
    pub cursor: Option<String>,
}

/// A conflict as the queue lists it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConflictSummaryOut {
    /// Its id (the id of the record that opened it).
    pub id: Uuid,
    /// `open` or `resolved`.
    pub status: String,
    /// `values_disagree`, `revision_disagrees`, `possible_match` or `same_source_other_key`.
    pub reason: String,
    /// The category.
    pub category: String,
    /// The reporting period.
    pub period: String,
    /// The priority the record came with: `high`, `normal` or `low`.
    pub priority: String,
    /// The organisation of the record that opened it.
    pub org_id: Uuid,
    /// The record that opened it (the incoming version).
    pub record_id: Uuid,
    /// The canonical record it was compared with.
    pub canonical_id: Uuid,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<&ConflictRow> for ConflictSummaryOut {
    fn from(r: &ConflictRow) -> Self {
        Self {
            id: r.id.as_uuid(),
            status: if r.open { "open" } else { "resolved" }.to_owned(),
            reason: r.reason.as_str().to_owned(),
            category: r.category.as_str().to_owned(),
            period: r.period.to_string(),
            priority: r.priority.as_str().to_owned(),
            org_id: r.org_id.as_uuid(),
            record_id: r.id.as_uuid(),
            canonical_id: r.target.as_uuid(),
            opened_at: r.opened_at,
            resolved_at: r.resolved_at,
        }
    }
}

/// A page of the conflict queue.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConflictPageOut {
    /// The conflicts, in the order asked for.
    pub conflicts: Vec<ConflictSummaryOut>,
    /// Pass it as `cursor` (with the same `order`) for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// The tolerance a numeric difference exceeded: values agree when
/// `|a − b| ≤ max(absolute, relative · max(|a|, |b|))`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ToleranceOut {
    /// The absolute part.
    pub absolute: f64,
    /// The relative part (0.005 = 0.5 %).
    pub relative: f64,
}

/// A field on which the incoming record and a version of the canonical record differ.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FieldDifferenceOut {
    /// The measure (`value`, `status`, `failure_reasons/timeout/count`, …).
    pub field: String,
    /// The incoming record's (masked) value.
    #[schema(value_type = Object)]
    pub incoming: serde_json::Value,
    /// The other version's (masked) value.
    #[schema(value_type = Object)]
    pub existing: serde_json::Value,
    /// The record of the other version; `null` for an operator's earlier value.
    pub against_record_id: Option<Uuid>,
    /// The tolerance exceeded (numeric measures).
    pub tolerance: Option<ToleranceOut>,
}

/// The similarity of one field in a fuzzy comparison.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FieldScoreOut {
    /// The field.
    pub field: String,
    /// Its similarity in `[0, 1]`.
    pub similarity: f64,
    /// Its weight.
    pub weight: f64,
}

/// The fuzzy comparison behind a `possible_match` (or fuzzy) conflict.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FuzzyOut {
    /// The weighted score in `[0, 1]`.
    pub score: f64,
    /// The share of the total weight present on both sides.
    pub evidence: f64,
    /// `match`, `possible` or `distinct`.
    pub verdict: String,
    /// The decisive field that decided alone, if one did.
    pub decided_by: Option<String>,
    /// Per field.
    pub fields: Vec<FieldScoreOut>,
}

/// How a conflict was resolved.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResolutionOut {
    /// `choose`, `merge` or `reject`.
    pub action: String,
    /// The record whose version was chosen (`choose`).
    pub record_id: Option<Uuid>,
    /// The fields set, JSON pointer → value (`merge`).
    #[schema(value_type = Option<Object>)]
    pub values: Option<BTreeMap<String, serde_json::Value>>,
    /// The operator (user id).
    pub by: Uuid,
    /// When.
    pub at: DateTime<Utc>,
    /// The operator's note.
    pub note: Option<String>,
}

impl From<&Resolution> for ResolutionOut {
    fn from(r: &Resolution) -> Self {
        let (record_id, values) = match &r.choice {
            ResolutionChoice::Choose { record } => (Some(record.as_uuid()), None),
            ResolutionChoice::Merge { values } => (None, Some(values.clone())),
            ResolutionChoice::Reject => (None, None),
        };
        Self {
            action: r.choice.as_str().to_owned(),
            record_id,
            values,
            by: r.by.as_uuid(),
            at: r.at,
            note: r.note.clone(),
        }
    }
}

/// A conflict, inspected: both sides with their provenance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConflictOut {
    /// Its id (the id of the record that opened it).
    pub id: Uuid,
    /// `open` or `resolved`.
    pub status: String,
    /// Why the record was not merged: `values_disagree` (another source reports the same fact
    /// beyond tolerance), `revision_disagrees` (a source's revision disagrees with the other
    /// sources), `possible_match` (the fuzzy score is between the possible and the match
    /// threshold), `same_source_other_key` (a fuzzy match with a record already holding
    /// another statement of the same organisation).
    pub reason: String,
    /// The category.
    pub category: String,
    /// The reporting period.
    pub period: String,
    /// The priority the record came with.
    pub priority: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// How it was resolved (`null` while open).
    pub resolution: Option<ResolutionOut>,
    /// The incoming record's version, with its provenance and the rule it would be linked by.
    pub incoming: ContributionOut,
    /// The canonical record it was compared with, as it is now (its current value and every
    /// contribution with its provenance); its `contributions` with role `current` are the other
    /// versions an operator may choose.
    pub existing: CanonicalRecordOut,
    /// The version of the canonical record when the conflict was opened (the `differences`
    /// compare with that one).
    pub compared_version: u64,
    /// The differences found (empty for a possible match with equal measures).
    pub differences: Vec<FieldDifferenceOut>,
    /// The fuzzy comparison, for fuzzy conflicts.
    pub fuzzy: Option<FuzzyOut>,
}

impl ConflictOut {
    fn of(c: &Conflict, row: &ConflictRow, live: Option<&etx_reconciliation_core::CanonicalRecord>) -> Self {
        let (status, resolution) = match &c.status {
            ConflictStatus::Open => ("open", None),
            ConflictStatus::Resolved(r) => ("resolved", Some(ResolutionOut::from(r))),
        };
        Self {
            id: c.id.as_uuid(),
            status: status.to_owned(),
            reason: c.reason.as_str().to_owned(),
            category: c.category.as_str().to_owned(),
            period: c.period.to_string(),
            priority: row.priority.as_str().to_owned(),
            opened_at: c.opened_at,
            resolution,
            incoming: ContributionOut::from(&c.incoming),
            existing: CanonicalRecordOut::of(live.unwrap_or(&c.target), None),
            compared_version: c.target.version,
            differences: c
                .differences
                .iter()
                .map(|d| FieldDifferenceOut {
                    field: d.field.clone(),
                    incoming: d.incoming.clone(),
                    existing: d.existing.clone(),
                    against_record_id: d.against.map(|r| r.as_uuid()),
                    tolerance: d.tolerance.map(|t| ToleranceOut {
                        absolute: t.absolute(),
                        relative: t.relative(),
                    }),
                })
                .collect(),
            fuzzy: c.fuzzy.as_ref().map(|f| FuzzyOut {
                score: f.score.value(),
                evidence: f.evidence,
                verdict: serde_json::to_value(f.verdict)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                decided_by: f.decided_by.clone(),
                fields: f
                    .fields
                    .iter()
                    .map(|s| FieldScoreOut {
                        field: s.field.clone(),
                        similarity: s.similarity,
                        weight: s.weight,
                    })
                    .collect(),
            }),
        }
    }
}

/// How an operator resolves a conflict (one-to-one with the core's `ResolutionChoice`).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum ResolutionAction {
    /// The version of `record_id` (the incoming record, or a `current` contribution of the
    /// canonical record) is right: the incoming record joins the canonical record and that
    /// version's payload becomes its value.
    Choose,
    /// The incoming record joins the canonical record, whose value becomes its current value
    /// with the fields of `values` set.
    Merge,
    /// They are not the same: the incoming record founds its own canonical record, and the pair
    /// is remembered so that its source's records are never merged into that canonical record
    /// again. Not allowed for `revision_disagrees`.
    Reject,
}

/// A resolution.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveIn {
    /// `choose`, `merge` or `reject`.
    #[schema(value_type = ResolutionAction)]
    pub action: Option<String>,
    /// With `choose` (required): the record whose version is right — the incoming record's id
    /// (the conflict's `incoming.record_id`) or the `record_id` of a `current` contribution of
    /// `existing`.
    #[schema(value_type = Option<Uuid>)]
    pub record_id: Option<String>,
    /// With `merge` (required, at least one): the fields to set over the canonical record's
    /// current value, JSON pointer → value (e.g. `{"/value": 182456320}`); each field must exist
    /// in a version.
    #[schema(value_type = Option<Object>)]
    pub values: Option<serde_json::Value>,
    /// Why, for the next operator (at most 2000 characters).
    pub note: Option<String>,
}

/// A resolution, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveRequest {
    /// The choice.
    pub choice: ResolutionChoice,
    /// The note, trimmed; `None` when empty.
    pub note: Option<String>,
}

impl ResolveIn {
    /// Validates the body; every violation has a JSON pointer (`/action`, `/record_id`,
    /// `/values`, `/note`) and never quotes the input.
    pub fn parse(self) -> Result<ResolveRequest, ApiError> {
        let mut v = Vec::new();
        let note = self.note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
        if let Some(n) = &note {
            if n.chars().count() > MAX_NOTE_CHARS {
                v.push(
                    FieldViolation::new("/note", ViolationCode::TooLarge)
                        .with_detail(format!("at most {MAX_NOTE_CHARS} characters")),
                );
            } else if n
                .chars()
                .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
            {
                v.push(
                    FieldViolation::new("/note", ViolationCode::Invalid)
                        .with_detail("control characters other than line breaks and tabs are not allowed"),
                );
            }
        }
        let not_with = |field: &str, action: &str| {
            FieldViolation::new(format!("/{field}"), ViolationCode::UnknownField)
                .with_detail(format!("not allowed with action `{action}`"))
        };
        let choice = match self.action.as_deref() {
            None => {
                v.push(
                    FieldViolation::new("/action", ViolationCode::Required)
                        .with_detail("expected one of: choose, merge, reject"),
                );
                None
            }
            Some("choose") => {
                if self.values.is_some() {
                    v.push(not_with("values", "choose"));
                }
                match self.record_id.as_deref().map(|s| s.parse::<RecordId>()) {
                    None => {
                        v.push(
                            FieldViolation::new("/record_id", ViolationCode::Required)
                                .with_detail("the record whose version is chosen"),
                        );
                        None
                    }
                    Some(Err(_)) => {
                        v.push(
                            FieldViolation::new("/record_id", ViolationCode::Format)
                                .with_detail("expected a UUID"),
                        );
                        None
                    }
                    Some(Ok(record)) => Some(ResolutionChoice::Choose { record }),
                }
            }
            Some("merge") => {
                if self.record_id.is_some() {
                    v.push(not_with("record_id", "merge"));
                }
                match self.values {
                    None => {
                        v.push(
                            FieldViolation::new("/values", ViolationCode::Required)
                                .with_detail("an object of JSON pointer → value"),
                        );
                        None
                    }
                    Some(serde_json::Value::Object(map)) if map.is_empty() => {
                        v.push(
                            FieldViolation::new("/values", ViolationCode::TooSmall)
                                .with_detail("a merge sets at least one field"),
                        );
                        None
                    }
                    Some(serde_json::Value::Object(map)) => {
                        let bad: Vec<_> = map.keys().filter(|k| !k.starts_with('/')).collect();
                        if bad.is_empty() {
                            Some(ResolutionChoice::Merge {
                                values: map.into_iter().collect(),
                            })
                        } else {
                            v.push(
                                FieldViolation::new("/values", ViolationCode::Format)
                                    .with_detail("every key must be a JSON pointer, e.g. `/value`"),
                            );
                            None
                        }
                    }
                    Some(_) => {
                        v.push(
                            FieldViolation::new("/values", ViolationCode::Type)
                                .with_detail("expected an object"),
                        );
                        None
                    }
                }
            }
            Some("reject") => {
                if self.record_id.is_some() {
                    v.push(not_with("record_id", "reject"));
                }
                if self.values.is_some() {
                    v.push(not_with("values", "reject"));
                }
                Some(ResolutionChoice::Reject)
            }
            Some(_) => {
                v.push(
                    FieldViolation::new("/action", ViolationCode::Enum)
                        .with_detail("expected one of: choose, merge, reject"),
                );
                None
            }
        };
        accepted(choice, v).map(|choice| ResolveRequest { choice, note })
    }
}

/// What resolving a conflict gave.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ResolvedOut {
    /// The conflict.
    pub conflict_id: Uuid,
    /// Always `resolved`.
    pub status: String,
    /// The resolution.
    pub resolution: ResolutionOut,
    /// The canonical record the incoming record is part of now: the one it was compared with
    /// (`choose`, `merge`), or the one it founded (`reject`).
    pub canonical: CanonicalRecordOut,
}

fn cursor_of(order: ConflictOrder, row: &ConflictRow) -> String {
    match order {
        ConflictOrder::Priority => format!("{}.{}", row.priority.rank(), row.id),
        ConflictOrder::Newest | ConflictOrder::Oldest => row.id.to_string(),
    }
}

/// Reads a `cursor` written by [`cursor_of`] for `order`.
fn parse_cursor(order: ConflictOrder, raw: &str) -> Result<ConflictCursor, ApiError> {
    let bad = || {
        bad_query(
            "cursor",
            ViolationCode::Format,
            "expected the next_cursor of a page in the same order",
        )
    };
    let (priority, id) = match order {
        ConflictOrder::Priority => {
            let (rank, id) = raw.split_once('.').ok_or_else(bad)?;
            let rank: u8 = rank.parse().map_err(|_| bad())?;
            (Priority::from_rank(rank).ok_or_else(bad)?, id)
        }
        ConflictOrder::Newest | ConflictOrder::Oldest => (Priority::Normal, raw),
    };
    let id = id.parse::<ConflictId>().map_err(|_| bad())?;
    Ok(ConflictCursor { priority, id })
}

impl ConflictsQuery {
    /// The store's query (its limit one more than the page, to tell whether more follow).
    fn parse(&self, reach: Reach) -> Result<ConflictQuery, ApiError> {
        let open = match self.status.as_deref() {
            None => None,
            Some("open") => Some(true),
            Some("resolved") => Some(false),
            Some(_) => {
                return Err(bad_query(
                    "status",
                    ViolationCode::Enum,
                    "expected one of: open, resolved",
                ));
            }
        };
        let order = match self.order.as_deref() {
            None | Some("priority") => ConflictOrder::Priority,
            Some("newest") => ConflictOrder::Newest,
            Some("oldest") => ConflictOrder::Oldest,
            Some(_) => {
                return Err(bad_query(
                    "order",
                    ViolationCode::Enum,
                    "expected one of: priority, newest, oldest",
                ));
            }
        };
        Ok(ConflictQuery {
            open,
            category: query_category(self.category.as_deref())?,
            period: query_period(self.period.as_deref())?,
            scope: reach.scope(),
            order,
            after: self
                .cursor
                .as_deref()
                .map(|c| parse_cursor(order, c))
                .transpose()?,
            limit: page_size(self.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)? + 1,
        })
    }
}

/// The conflict queue (R-REC) of the caller's organisation subtree: by default every conflict,
/// highest priority first and oldest first within a priority, 50 a page.
#[utoipa::path(get, path = "/api/v1/conflicts", operation_id = "list_conflicts", tag = "reconciliation",
    params(ConflictsQuery),
    responses((status = 200, body = ConflictPageOut), AuthErrors, BadParameter),
    security(("session" = [])))]
pub async fn list(
    app: App,
    api: Api,
    p: Principal,
    q: web::Query<ConflictsQuery>,
) -> Result<HttpResponse, ApiError> {
    let reach = api.reach(&p, Permission::ReadReconciliation)?;
    let query = q.parse(reach)?;
    let mut rows = app
        .store()
        .conflict_page(&query)
        .await
        .map_err(ApiError::internal)?;
    let next_cursor = next_page(&mut rows, query.limit - 1, |r| cursor_of(query.order, r));
    Ok(HttpResponse::Ok().json(ConflictPageOut {
        conflicts: rows.iter().map(ConflictSummaryOut::from).collect(),
        next_cursor,
    }))
}

/// The queue row of conflict `id` if `reach` sees it (its record's organisation is within).
async fn visible(app: &App, api: &Api, reach: Reach, id: ConflictId) -> Result<ConflictRow, ApiError> {
    let row = app
        .store()
        .conflict_row(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    if api.members(reach).await?.contains(row.org_id) {
        Ok(row)
    } else {
        Err(ApiError::not_found())
    }
}

/// A conflict with both sides and their provenance (R-REC, R-DATA-3): the incoming record's
/// masked version, the canonical record it was compared with as it is now, the reason, the
/// differences and the fuzzy breakdown, and its resolution once resolved.
#[utoipa::path(get, path = "/api/v1/conflicts/{id}", operation_id = "get_conflict", tag = "reconciliation",
    params(("id" = Uuid, Path, description = "the conflict's id")),
    responses(
        (status = 200, body = ConflictOut),
        (status = 404, description = "No such conflict in the caller's organisation subtree", body = Problem, content_type = "application/problem+json"),
        AuthErrors, BadParameter,
    ),
    security(("session" = [])))]
pub async fn get(app: App, api: Api, p: Principal, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let reach = api.reach(&p, Permission::ReadReconciliation)?;
    let id = ConflictId::from_uuid(path.into_inner());
    let row = visible(&app, &api, reach, id).await?;
    let conflict = app
        .conflict(id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    let live = app
        .canonical(conflict.target.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(HttpResponse::Ok().json(ConflictOut::of(&conflict, &row, live.as_ref())))
}

/// Maps a refused resolution to the catalogue.
fn resolve_error(e: ResolveConflictError) -> ApiError {
    let conflict = |detail: &str| ApiError::new(ErrorCode::AlreadyExists).with_detail(detail);
    match e {
        ResolveConflictError::NotFound => ApiError::not_found(),
        ResolveConflictError::Refused(r) => match r {
            ResolveError::AlreadyResolved => {
                conflict("the conflict is already resolved; its decision stands")
            }
            ResolveError::PeriodApproved => conflict(
                "the reporting period is approved and read-only: reopen it (POST /api/v1/periods/reopen) before resolving",
            ),
            ResolveError::UnknownVersion(_) => invalid_field(
                "/record_id",
                ViolationCode::Invalid,
                "not a version of this conflict: the incoming record or a current contribution",
            ),
            ResolveError::EmptyMerge => invalid_field(
                "/values",
                ViolationCode::TooSmall,
                "a merge sets at least one field",
            ),
            ResolveError::InvalidPointer(_) => invalid_field(
                "/values",
                ViolationCode::Format,
                "every key must be a JSON pointer, e.g. `/value`",
            ),
            ResolveError::UnknownField(_) => invalid_field(
                "/values",
                ViolationCode::UnknownField,
                "a field set must exist in one of the versions",
            ),
            ResolveError::RejectNotAllowed(_) => invalid_field(
                "/action",
                ViolationCode::Invalid,
                "a revision_disagrees conflict cannot be rejected; choose or merge",
            ),
            ResolveError::NoteTooLong => invalid_field(
                "/note",
                ViolationCode::TooLarge,
                format!("at most {MAX_NOTE_CHARS} characters"),
            ),
            ResolveError::TargetMismatch(_) => ApiError::internal(r),
        },
        ResolveConflictError::Busy => ApiError::new(ErrorCode::ServiceUnavailable)
            .with_detail("the canonical record keeps changing; try again shortly")
            .with_retry_after(1),
        ResolveConflictError::TargetGone | ResolveConflictError::Unknown(_) => ApiError::internal(e),
    }
}

/// Resolves a conflict (R-REC) by choosing a version, merging field values or rejecting the
/// match, with an optional note. The decision is final and remembered (a rejected pair is never
/// merged again); the record is then announced on `records.accepted`. Audited as
/// `conflict.resolve`.
#[utoipa::path(post, path = "/api/v1/conflicts/{id}/resolve", operation_id = "resolve_conflict", tag = "reconciliation",
    params(("id" = Uuid, Path, description = "the conflict's id")),
    request_body = ResolveIn,
    responses(
        (status = 200, body = ResolvedOut),
        (status = 404, description = "No such conflict in the caller's organisation subtree", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_exists`: the conflict is already resolved, or its reporting period is approved (read-only) — reopen it first", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: an unknown action, a missing or extra field, a version or field the conflict does not have, a note over 2000 characters; a pointer per violation", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "The canonical record keeps changing: retry after `Retry-After`", body = Problem, content_type = "application/problem+json"),
        AuthErrors, BadParameter,
    ),
    security(("session" = [])))]
pub async fn resolve(
    app: App,
    api: Api,
    p: Principal,
    path: web::Path<Uuid>,
    body: web::Json<ResolveIn>,
) -> Result<HttpResponse, ApiError> {
    let reach = api.reach(&p, Permission::ResolveConflicts)?;
    let by = person(&p)?;
    let id = ConflictId::from_uuid(path.into_inner());
    // Validated first: the answer to a bad body says nothing about whether the conflict exists.
    let req = body.into_inner().parse()?;
    visible(&app, &api, reach, id).await?;
    let resolved = app
        .resolve(id, req.choice, by, req.note)
        .await
        .map_err(resolve_error)?;
    let ConflictStatus::Resolved(resolution) = &resolved.conflict.status else {
        return Err(ApiError::internal(format!(
            "conflict {id} is not resolved after resolving"
        )));
    };
    tracing::info!(conflict = %id, action = resolution.choice.as_str(), subject = %p.subject, "conflict resolved");
    Ok(HttpResponse::Ok().json(ResolvedOut {
        conflict_id: id.as_uuid(),
        status: "resolved".into(),
        resolution: ResolutionOut::from(resolution),
        canonical: CanonicalRecordOut::of(&resolved.canonical, None),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> Result<ResolveRequest, ApiError> {
        serde_json::from_value::<ResolveIn>(v)
            .map_err(|e| ApiError::from_serde_json(&e))
            .and_then(ResolveIn::parse)
    }

    fn violations(r: Result<ResolveRequest, ApiError>) -> Vec<(String, ViolationCode)> {
        let e = r.expect_err("refused");
        assert_eq!(e.code, ErrorCode::ValidationFailed);
        e.violations.into_iter().map(|v| (v.path, v.code)).collect()
    }

    #[test]
    fn each_choice_maps_one_to_one() {
        let r = RecordId::new();
        assert_eq!(
            body(serde_json::json!({"action": "choose", "record_id": r.to_string()})).ok(),
            Some(ResolveRequest {
                choice: ResolutionChoice::Choose { record: r },
                note: None
            })
        );
        let merged = body(
            serde_json::json!({"action": "merge", "values": {"/value": 42}, "note": "  theo công văn 12  "}),
        )
        .expect("valid");
        assert_eq!(
            merged.choice,
            ResolutionChoice::Merge {
                values: [("/value".to_owned(), serde_json::json!(42))]
                    .into_iter()
                    .collect()
            }
        );
        assert_eq!(merged.note.as_deref(), Some("theo công văn 12"));
        assert_eq!(
            body(serde_json::json!({"action": "reject", "note": ""})).ok(),
            Some(ResolveRequest {
                choice: ResolutionChoice::Reject,
                note: None
            })
        );
    }

    #[test]
    fn a_bad_resolution_names_every_field_it_breaks() {
        assert_eq!(
            violations(body(serde_json::json!({"action": "keep_existing"}))),
            vec![("/action".to_owned(), ViolationCode::Enum)]
        );
        assert_eq!(
            violations(body(serde_json::json!({}))),
            vec![("/action".to_owned(), ViolationCode::Required)]
        );
        assert_eq!(
            violations(body(serde_json::json!({"action": "choose"}))),
            vec![("/record_id".to_owned(), ViolationCode::Required)]
        );
        assert_eq!(
            violations(body(serde_json::json!({"action": "choose", "record_id": "x"}))),
            vec![("/record_id".to_owned(), ViolationCode::Format)]
        );
        assert_eq!(
            violations(body(serde_json::json!({"action": "merge", "values": {}}))),
            vec![("/values".to_owned(), ViolationCode::TooSmall)]
        );
        assert_eq!(
            violations(body(
                serde_json::json!({"action": "merge", "values": {"value": 1}})
            )),
            vec![("/values".to_owned(), ViolationCode::Format)]
        );
        assert_eq!(
            violations(body(serde_json::json!({"action": "merge", "values": [1]}))),
            vec![("/values".to_owned(), ViolationCode::Type)]
        );
        assert_eq!(
            violations(body(serde_json::json!({
                "action": "reject", "record_id": RecordId::new().to_string(), "values": {"/a": 1},
                "note": "x".repeat(MAX_NOTE_CHARS + 1)
            }))),
            vec![
                ("/note".to_owned(), ViolationCode::TooLarge),
                ("/record_id".to_owned(), ViolationCode::UnknownField),
                ("/values".to_owned(), ViolationCode::UnknownField),
            ]
        );
        assert_eq!(
            violations(body(serde_json::json!({"action": "reject", "note": "a\u{0}b"}))),
            vec![("/note".to_owned(), ViolationCode::Invalid)]
        );
        // A note of exactly 2000 characters (not bytes) is fine.
        assert!(body(serde_json::json!({"action": "reject", "note": "ữ".repeat(MAX_NOTE_CHARS)})).is_ok());
        // Unknown members are refused by the extractor, naming the member.
        let e = body(serde_json::json!({"action": "reject", "choice": "x"})).expect_err("refused");
        assert_eq!(e.violations[0].code, ViolationCode::UnknownField);
    }

    #[test]
    fn cursors_round_trip_per_order_and_refuse_anything_else() {
        let row = ConflictRow {
            id: ConflictId::from_uuid(Uuid::now_v7()),
            category: etx_domain::Category::Statistics,
            period: etx_domain::Period::parse("2026-10").unwrap(),
            org_id: etx_domain::OrgId::new(),
            reason: etx_reconciliation_core::ConflictReason::ValuesDisagree,
            open: true,
            target: etx_reconciliation_core::CanonicalId::from_uuid(Uuid::now_v7()),
            opened_at: Utc::now(),
            resolved_at: None,
            priority: Priority::High,
        };
        for order in [
            ConflictOrder::Priority,
            ConflictOrder::Newest,
            ConflictOrder::Oldest,
        ] {
            let c = parse_cursor(order, &cursor_of(order, &row)).expect("reads back");
            assert_eq!(c.id, row.id);
        }
        assert_eq!(
            parse_cursor(ConflictOrder::Priority, &cursor_of(ConflictOrder::Priority, &row))
                .ok()
                .map(|c| c.priority),
            Some(Priority::High)
        );
        for bad in ["", "x", "7.0190", "0.nope", &row.id.to_string()] {
            let e = parse_cursor(ConflictOrder::Priority, bad).expect_err("refused");
            assert_eq!(e.violations[0].path, "query:cursor", "{bad}");
        }
        assert!(parse_cursor(ConflictOrder::Newest, "1.x").is_err());
    }

    #[test]
    fn queue_filters_are_checked() {
        let q = |v: serde_json::Value| serde_json::from_value::<ConflictsQuery>(v).unwrap();
        let reach = Reach::Hub;
        let ok = q(serde_json::json!({"status": "open", "order": "newest", "limit": "10"}))
            .parse(reach)
            .expect("valid");
        assert_eq!(
            (ok.open, ok.order, ok.limit),
            (Some(true), ConflictOrder::Newest, 11)
        );
        for (v, path) in [
            (serde_json::json!({"status": "closed"}), "query:status"),
            (serde_json::json!({"order": "random"}), "query:order"),
            (serde_json::json!({"limit": "501"}), "query:limit"),
            (serde_json::json!({"category": "weather"}), "query:category"),
            (serde_json::json!({"period": "tháng 10"}), "query:period"),
            (serde_json::json!({"cursor": "zzz"}), "query:cursor"),
        ] {
            let e = q(v).parse(reach).expect_err("refused");
            assert_eq!(
                (e.code, e.violations[0].path.as_str()),
                (ErrorCode::InvalidParameter, path)
            );
        }
        assert!(serde_json::from_value::<ConflictsQuery>(serde_json::json!({"sort": "x"})).is_err());
    }
}
