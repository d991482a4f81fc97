//! Canonical records with their full provenance (R-REC, R-DATA-3): every contributing record
//! with its organisation, system, receipt, form, masking policy version, the rule that linked it
//! and its score, and where the value came from.
//!
//! A canonical record merged into another keeps its id as an alias: asked for by that id, the
//! API answers `200` with the surviving record and `merged_into` set to the survivor's id (one
//! round trip, and the same answer through the gateway for every client; the old id is also in
//! the survivor's `aliases`).

use actix_web::{HttpResponse, web};
use etx_domain::authz::Permission;
use etx_http_kit::openapi::{AuthErrors, BadParameter};
use etx_http_kit::{ApiError, Principal, Problem};
use etx_reconciliation_core::{CanonicalId, CanonicalRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::dto::CanonicalRecordOut;
use super::{Api, App, Members, bad_query, next_page, page_size, query_category, query_period};
use crate::store::queries::CanonicalQuery;
use etx_domain::ViolationCode;

/// Canonical records listed when no `limit` is given.
pub const DEFAULT_PAGE: u64 = 20;
/// Most canonical records one page holds (each comes with every contribution).
pub const MAX_PAGE: u64 = 100;

/// Which canonical records to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CanonicalQueryIn {
    /// Only of this category: `policy`, `statistics`, `workforce`, `enforcement`.
    #[param(example = "statistics")]
    pub category: Option<String>,
    /// Only of this reporting period (`YYYY`, `YYYY-Qn`, `YYYY-MM`, `YYYY-MM-DD`).
    #[param(example = "2026-10")]
    pub period: Option<String>,
    /// At most this many, 1 to 100 (default 20).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A page of canonical records.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CanonicalPageOut {
    /// Live canonical records (never one merged into another), newest first.
    pub records: Vec<CanonicalRecordOut>,
    /// Pass it as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Whether `members` see `c`: one of its contributions comes from one of them.
pub(crate) fn sees(members: &Members, c: &CanonicalRecord) -> bool {
    c.contributions.iter().any(|x| members.contains(x.source.org_id))
}

/// The live canonical records (R-REC) of the caller's organisation subtree — those to which an
/// organisation of it contributed — newest first, each with its provenance (R-DATA-3).
#[utoipa::path(get, path = "/api/v1/canonical-records", operation_id = "list_canonical_records", tag = "reconciliation",
    params(CanonicalQueryIn),
    responses((status = 200, body = CanonicalPageOut), AuthErrors, BadParameter),
    security(("session" = [])))]
pub async fn list(
    app: App,
    api: Api,
    p: Principal,
    q: web::Query<CanonicalQueryIn>,
) -> Result<HttpResponse, ApiError> {
    let reach = api.reach(&p, Permission::ReadReconciliation)?;
    let page = page_size(q.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
    let before = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<CanonicalId>().map_err(|_| {
                bad_query(
                    "cursor",
                    ViolationCode::Format,
                    "expected the next_cursor of a page",
                )
            })
        })
        .transpose()?;
    let query = CanonicalQuery {
        category: query_category(q.category.as_deref())?,
        period: query_period(q.period.as_deref())?,
        scope: reach.scope(),
        before,
        limit: page + 1,
    };
    let mut records = app
        .store()
        .canonical_page(&query)
        .await
        .map_err(ApiError::internal)?;
    let next_cursor = next_page(&mut records, page, |c| c.id.to_string());
    Ok(HttpResponse::Ok().json(CanonicalPageOut {
        records: records.iter().map(|c| CanonicalRecordOut::of(c, None)).collect(),
        next_cursor,
    }))
}

/// A canonical record with its full provenance (R-DATA-3): its masked value, where the value
/// came from, and every contributing record with organisation, system, receipt, form, masking
/// policy version, reconciliation rule and score. An id retired by a merge answers with the
/// surviving record and `merged_into` set.
#[utoipa::path(get, path = "/api/v1/canonical-records/{id}", operation_id = "get_canonical_record", tag = "reconciliation",
    params(("id" = Uuid, Path, description = "the canonical record's id (or an id merged into it)")),
    responses(
        (status = 200, body = CanonicalRecordOut),
        (status = 404, description = "No such canonical record in the caller's organisation subtree", body = Problem, content_type = "application/problem+json"),
        AuthErrors, BadParameter,
    ),
    security(("session" = [])))]
pub async fn get(app: App, api: Api, p: Principal, path: web::Path<Uuid>) -> Result<HttpResponse, ApiError> {
    let reach = api.reach(&p, Permission::ReadReconciliation)?;
    let asked = CanonicalId::from_uuid(path.into_inner());
    let record = app
        .canonical(asked)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    if !sees(&api.members(reach).await?, &record) {
        return Err(ApiError::not_found());
    }
    Ok(HttpResponse::Ok().json(CanonicalRecordOut::of(&record, Some(asked))))
}
