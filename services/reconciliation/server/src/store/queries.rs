//! The read queries of reconciliation's HTTP API (R-REC, R-DATA-3), beside the ports: the
//! conflict queue and the canonical records page by page within an organisation scope, period
//! approvals, and the organisations reconciliation's replica of the hierarchy knows.
//!
//! An organisation scope is applied in SQL through the replica (`reconciliation_org_tree`,
//! [`etx_storage::OrgReplica::condition`]): a conflict belongs to the organisation whose record
//! opened it, a canonical record to every organisation that contributed to it. `None` as a
//! scope means every organisation (the hub's own operators).

use chrono::{DateTime, Utc};
use etx_domain::authz::OrgScope;
use etx_domain::{Category, OrgId, Period, Priority};
use etx_reconciliation_core::{
    ApprovalScope, CanonicalId, CanonicalRecord, ConflictId, ConflictReason, PeriodApproval, StoreError,
};
use etx_storage::OrgReplica;
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::entities::{canonical_record, conflict, contribution, outcome, period_approval};
use super::migrations::ORG_TREE_TABLE;
use super::{SqlStore, from_json, read_err, scope_code};

/// Most rows one query of this module returns, whatever it is asked (the API's pages are at
/// most 500; it asks for one more to tell whether another page follows).
pub const MAX_PAGE: u64 = 1000;

/// The order of the conflict queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictOrder {
    /// Highest priority first (the priority the opening record came with), oldest first
    /// within a priority: the order an operator works through the queue.
    #[default]
    Priority,
    /// Newest first.
    Newest,
    /// Oldest first.
    Oldest,
}

/// Where a page of conflicts starts: after this conflict (its priority matters only for
/// [`ConflictOrder::Priority`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConflictCursor {
    /// The last conflict's priority.
    pub priority: Priority,
    /// The last conflict's id.
    pub id: ConflictId,
}

/// Which conflicts to list.
#[derive(Debug, Clone, Default)]
pub struct ConflictQuery {
    /// `Some(true)`: only open ones; `Some(false)`: only resolved ones.
    pub open: Option<bool>,
    /// Only of this category.
    pub category: Option<Category>,
    /// Only of this period.
    pub period: Option<Period>,
    /// Only those opened by a record of an organisation in this scope (`None`: any).
    pub scope: Option<OrgScope>,
    /// The order.
    pub order: ConflictOrder,
    /// The page after this conflict.
    pub after: Option<ConflictCursor>,
    /// At most this many (capped at [`MAX_PAGE`]).
    pub limit: u64,
}

/// A conflict as the queue lists it: what its row holds in plain columns, nothing sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictRow {
    /// Its id (= the id of the record that opened it).
    pub id: ConflictId,
    /// The category.
    pub category: Category,
    /// The period.
    pub period: Period,
    /// The organisation of the record that opened it.
    pub org_id: OrgId,
    /// Why it was opened.
    pub reason: ConflictReason,
    /// Whether it waits for an operator.
    pub open: bool,
    /// The canonical record it was compared with.
    pub target: CanonicalId,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// The priority its record came with.
    pub priority: Priority,
}

/// Which canonical records to list: live ones only, newest first.
#[derive(Debug, Clone, Default)]
pub struct CanonicalQuery {
    /// Only of this category.
    pub category: Option<Category>,
    /// Only of this period.
    pub period: Option<Period>,
    /// Only those with a contribution of an organisation in this scope (`None`: any).
    pub scope: Option<OrgScope>,
    /// The page after this one (ids smaller than it).
    pub before: Option<CanonicalId>,
    /// At most this many (capped at [`MAX_PAGE`]).
    pub limit: u64,
}

/// Which period approvals to list.
#[derive(Debug, Clone, Default)]
pub struct ApprovalQuery {
    /// Only of this category.
    pub category: Option<Category>,
    /// Only of this period.
    pub period: Option<Period>,
    /// Only these scopes (`None`: any).
    pub scopes: Option<Vec<ApprovalScope>>,
    /// At most this many (capped at [`MAX_PAGE`]).
    pub limit: u64,
}

fn corrupt(what: String) -> StoreError {
    StoreError::Unknown(anyhow::anyhow!(what))
}

fn conflict_row(r: conflict::Model) -> Result<ConflictRow, StoreError> {
    let id = r.id;
    let bad = |what: &str| corrupt(format!("conflict {id}: {what}"));
    Ok(ConflictRow {
        id: ConflictId::from_uuid(r.id),
        category: Category::parse(&r.category).map_err(|_| bad("unknown category"))?,
        period: Period::parse(&r.period).map_err(|_| bad("invalid period"))?,
        org_id: OrgId::from_uuid(r.org_id),
        reason: serde_json::from_value(serde_json::Value::String(r.reason))
            .map_err(|_| bad("unknown reason"))?,
        open: match r.status.as_str() {
            "open" => true,
            "resolved" => false,
            _ => return Err(bad("unknown status")),
        },
        target: CanonicalId::from_uuid(r.target_id),
        opened_at: r.opened_at,
        resolved_at: r.resolved_at,
        priority: u8::try_from(r.priority)
            .ok()
            .and_then(Priority::from_rank)
            .ok_or_else(|| bad("unknown priority"))?,
    })
}

impl SqlStore {
    fn replica(&self) -> OrgReplica {
        OrgReplica::new(self.db.clone(), ORG_TREE_TABLE)
    }

    /// A page of the conflict queue (see [`ConflictQuery`]), read from plain columns only.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a row does not read back.
    pub async fn conflict_page(&self, q: &ConflictQuery) -> Result<Vec<ConflictRow>, StoreError> {
        let limit = q.limit.min(MAX_PAGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut find = conflict::Entity::find();
        if let Some(open) = q.open {
            find = find.filter(conflict::Column::Status.eq(if open { "open" } else { "resolved" }));
        }
        if let Some(c) = q.category {
            find = find.filter(conflict::Column::Category.eq(c.as_str()));
        }
        if let Some(p) = q.period {
            find = find.filter(conflict::Column::Period.eq(p.to_string()));
        }
        if let Some(scope) = q.scope {
            find = find.filter(self.replica().condition(conflict::Column::OrgId, scope));
        }
        find = match q.order {
            ConflictOrder::Priority => {
                if let Some(after) = q.after {
                    let rank = i16::from(after.priority.rank());
                    find = find.filter(
                        Condition::any().add(conflict::Column::Priority.gt(rank)).add(
                            Condition::all()
                                .add(conflict::Column::Priority.eq(rank))
                                .add(conflict::Column::Id.gt(after.id.as_uuid())),
                        ),
                    );
                }
                find.order_by_asc(conflict::Column::Priority)
                    .order_by_asc(conflict::Column::Id)
            }
            ConflictOrder::Newest => {
                if let Some(after) = q.after {
                    find = find.filter(conflict::Column::Id.lt(after.id.as_uuid()));
                }
                find.order_by_desc(conflict::Column::Id)
            }
            ConflictOrder::Oldest => {
                if let Some(after) = q.after {
                    find = find.filter(conflict::Column::Id.gt(after.id.as_uuid()));
                }
                find.order_by_asc(conflict::Column::Id)
            }
        };
        find.limit(limit)
            .all(&self.db)
            .await
            .map_err(read_err)?
            .into_iter()
            .map(conflict_row)
            .collect()
    }

    /// The queue row of conflict `id`, or `None`.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or the row does not read back.
    pub async fn conflict_row(&self, id: ConflictId) -> Result<Option<ConflictRow>, StoreError> {
        conflict::Entity::find_by_id(id.as_uuid())
            .one(&self.db)
            .await
            .map_err(read_err)?
            .map(conflict_row)
            .transpose()
    }

    /// A page of live canonical records with every contribution (see [`CanonicalQuery`]),
    /// newest first.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a row does not read back.
    pub async fn canonical_page(&self, q: &CanonicalQuery) -> Result<Vec<CanonicalRecord>, StoreError> {
        let limit = q.limit.min(MAX_PAGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut find = canonical_record::Entity::find()
            .select_only()
            .column(canonical_record::Column::Id)
            .filter(canonical_record::Column::MergedInto.is_null());
        if let Some(c) = q.category {
            find = find.filter(canonical_record::Column::Category.eq(c.as_str()));
        }
        if let Some(p) = q.period {
            find = find.filter(canonical_record::Column::Period.eq(p.to_string()));
        }
        if let Some(scope) = q.scope {
            let contributed = Query::select()
                .column(contribution::Column::CanonicalId)
                .from(contribution::Entity)
                .cond_where(self.replica().condition(contribution::Column::OrgId, scope))
                .to_owned();
            find = find.filter(canonical_record::Column::Id.in_subquery(contributed));
        }
        if let Some(before) = q.before {
            find = find.filter(canonical_record::Column::Id.lt(before.as_uuid()));
        }
        let ids: Vec<Uuid> = find
            .order_by_desc(canonical_record::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(read_err)?;
        let mut records = self.load_live(&ids, None).await?;
        // Merged away between the two reads: simply not on this page.
        records.sort_by_key(|c| std::cmp::Reverse(c.id));
        Ok(records)
    }

    /// Stored period approvals matching `q`, latest period first, then by category and scope.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails or a row does not read back.
    pub async fn approvals(&self, q: &ApprovalQuery) -> Result<Vec<PeriodApproval>, StoreError> {
        let limit = q.limit.min(MAX_PAGE);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut find = period_approval::Entity::find();
        if let Some(c) = q.category {
            find = find.filter(period_approval::Column::Category.eq(c.as_str()));
        }
        if let Some(p) = q.period {
            find = find.filter(period_approval::Column::Period.eq(p.to_string()));
        }
        if let Some(scopes) = &q.scopes {
            if scopes.is_empty() {
                return Ok(Vec::new());
            }
            find = find.filter(period_approval::Column::Scope.is_in(scopes.iter().map(|s| scope_code(*s))));
        }
        let rows = find
            .order_by_desc(period_approval::Column::UpdatedAt)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(read_err)?;
        let mut out: Vec<PeriodApproval> = rows
            .iter()
            .map(|r| from_json(&r.body, "period approval"))
            .collect::<Result<_, _>>()
            .map_err(StoreError::Unknown)?;
        out.sort_by(|a, b| {
            b.key
                .period
                .cmp(&a.key.period)
                .then(a.key.category.cmp(&b.key.category))
                .then(a.key.scope.cmp(&b.key.scope))
        });
        Ok(out)
    }

    /// Every organisation the replica of the hierarchy knows.
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn known_orgs(&self) -> Result<Vec<OrgId>, StoreError> {
        let q = Query::select()
            .column(Alias::new("org_id"))
            .from(Alias::new(ORG_TREE_TABLE))
            .and_where(sea_orm::sea_query::ExprTrait::eq(
                Expr::col(Alias::new("depth")),
                0,
            ))
            .order_by(Alias::new("org_id"), sea_orm::Order::Asc)
            .to_owned();
        let rows = self.db.query_all(&q).await.map_err(read_err)?;
        rows.iter()
            .map(|r| {
                r.try_get_by_index::<Uuid>(0)
                    .map(OrgId::from_uuid)
                    .map_err(read_err)
            })
            .collect()
    }

    /// The organisations that sent records of `categories` for `period` (every decision
    /// counts, held and conflicting ones too).
    ///
    /// # Errors
    /// [`StoreError`] when the database fails.
    pub async fn senders(&self, categories: &[Category], period: Period) -> Result<Vec<OrgId>, StoreError> {
        let ids: Vec<Uuid> = outcome::Entity::find()
            .select_only()
            .column(outcome::Column::OrgId)
            .distinct()
            .filter(outcome::Column::Period.eq(period.to_string()))
            .filter(outcome::Column::Category.is_in(categories.iter().map(|c| c.as_str())))
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(read_err)?;
        Ok(ids.into_iter().map(OrgId::from_uuid).collect())
    }
}
