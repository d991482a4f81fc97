//! A service's replica of the organisation hierarchy, for "role × organisation subtree"
//! reads (issue 4 §3, R-SEC-1, DESIGN.md §5: "a province sees its own subtree").
//!
//! Identity owns the hierarchy. Whenever it creates an organisation, and once at every start
//! (a snapshot, so a new replica or a queue that lost its data converges), it announces each
//! organisation's *lineage* — its id and its ancestors — on [`ORGS_STREAM`] through its outbox.
//! A service that reads by subtree keeps a closure table (`org_id`, `ancestor_id`, `depth`,
//! the organisation itself at depth 0) in its own table, filled by [`OrgReplica::apply`], and
//! filters with [`OrgReplica::condition`]:
//! `org_id = root OR org_id IN (SELECT org_id FROM <table> WHERE ancestor_id = root)`.
//!
//! Applying a lineage replaces that organisation's rows, so messages are idempotent and their
//! order does not matter (each carries the whole chain). The root itself always matches, so a
//! replica that lags behind only ever narrows a reader to their own organisation's objects —
//! it never widens anyone's view.

use crate::outbox::OutboxEntry;
use etx_domain::authz::OrgScope;
use etx_domain::{OrgId, OrgTree, Priority};
use sea_orm::sea_query::{Alias, ColumnDef, Expr, ExprTrait, Index, Query, SimpleExpr, Table};
use sea_orm::{Condition, ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};
use serde::{Deserialize, Serialize};

/// The stream organisation lineages are announced on.
pub const ORGS_STREAM: &str = "events.orgs";

/// The event kind of a lineage announcement.
pub const ORGS_ANNOUNCED: &str = "orgs.lineage";

/// Most lineages one message carries.
const LINEAGES_PER_MESSAGE: usize = 500;

/// Deepest chain accepted from a message (the real hierarchy has four levels).
const MAX_DEPTH: usize = 32;

/// An organisation and its ancestors, nearest first (parent, grandparent, …, root).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgLineage {
    /// The organisation.
    pub org_id: OrgId,
    /// Its ancestors, nearest first; empty for a root.
    pub ancestors: Vec<OrgId>,
}

impl OrgLineage {
    /// The lineage of `id` in `tree` (`None` when `id` is not in it).
    pub fn of(tree: &OrgTree, id: OrgId) -> Option<Self> {
        tree.get(id)?;
        let mut chain = tree.ancestors(id);
        chain.remove(0);
        Some(Self {
            org_id: id,
            ancestors: chain,
        })
    }

    /// Every organisation's lineage in `tree`.
    pub fn all(tree: &OrgTree) -> Vec<Self> {
        let mut v: Vec<Self> = tree.iter().filter_map(|o| Self::of(tree, o.id)).collect();
        v.sort_by_key(|l| l.org_id);
        v
    }
}

/// The body of a message on [`ORGS_STREAM`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgsAnnounced {
    /// Always [`ORGS_ANNOUNCED`].
    pub kind: String,
    /// The lineages announced.
    pub orgs: Vec<OrgLineage>,
}

/// The outbox entries announcing `lineages` (to insert in the transaction that changed them).
pub fn announcements(lineages: &[OrgLineage]) -> Vec<OutboxEntry> {
    lineages
        .chunks(LINEAGES_PER_MESSAGE)
        .map(|chunk| OutboxEntry {
            stream: ORGS_STREAM.to_owned(),
            key: chunk[0].org_id.to_string(),
            priority: Priority::High,
            headers: Default::default(),
            body: serde_json::to_vec(&OrgsAnnounced {
                kind: ORGS_ANNOUNCED.to_owned(),
                orgs: chunk.to_vec(),
            })
            .unwrap_or_default(),
        })
        .collect()
}

/// Why a message could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The message is not a lineage announcement (a poison message: dead-letter it).
    #[error("not an organisation lineage announcement: {0}")]
    Malformed(String),
    /// The database failed (retry later).
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Creates a replica's table, named by the owning service (e.g. `ingestion_org_tree`).
#[derive(Debug, Clone, Copy)]
pub struct OrgTreeMigration {
    /// The migration's name in the service's migration table.
    pub name: &'static str,
    /// The replica's table.
    pub table: &'static str,
}

impl MigrationName for OrgTreeMigration {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for OrgTreeMigration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Alias::new(self.table))
                .if_not_exists()
                .col(ColumnDef::new(Alias::new("org_id")).uuid().not_null())
                .col(ColumnDef::new(Alias::new("ancestor_id")).uuid().not_null())
                .col(ColumnDef::new(Alias::new("depth")).integer().not_null())
                .primary_key(
                    Index::create()
                        .col(Alias::new("org_id"))
                        .col(Alias::new("ancestor_id")),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name(format!("{}_ancestor", self.table))
                .table(Alias::new(self.table))
                .col(Alias::new("ancestor_id"))
                .col(Alias::new("org_id"))
                .to_owned(),
        )
        .await
    }
}

/// A service's replica of the hierarchy (see the module docs).
#[derive(Debug, Clone)]
pub struct OrgReplica {
    db: DatabaseConnection,
    table: &'static str,
}

impl OrgReplica {
    /// The replica kept in `table` (created by an [`OrgTreeMigration`]).
    pub fn new(db: DatabaseConnection, table: &'static str) -> Self {
        Self { db, table }
    }

    /// Replaces the rows of every organisation in `lineages`, in one transaction (a later
    /// lineage of the same organisation wins).
    pub async fn apply(&self, lineages: &[OrgLineage]) -> Result<(), DbErr> {
        if lineages.is_empty() {
            return Ok(());
        }
        let table = Alias::new(self.table);
        let txn = self.db.begin().await?;
        for chunk in lineages.chunks(200) {
            let ids: Vec<uuid::Uuid> = chunk.iter().map(|l| l.org_id.as_uuid()).collect();
            let del = Query::delete()
                .from_table(table.clone())
                .and_where(ExprTrait::is_in(Expr::col(Alias::new("org_id")), ids))
                .to_owned();
            txn.execute(&del).await?;
            let mut ins = Query::insert()
                .into_table(table.clone())
                .columns([
                    Alias::new("org_id"),
                    Alias::new("ancestor_id"),
                    Alias::new("depth"),
                ])
                .to_owned();
            let mut seen = std::collections::HashSet::new();
            // Last wins: walk backwards and skip organisations already written.
            for l in chunk.iter().rev() {
                if !seen.insert(l.org_id) {
                    continue;
                }
                let mut chain = vec![l.org_id];
                for a in &l.ancestors {
                    if !chain.contains(a) {
                        chain.push(*a);
                    }
                }
                for (depth, a) in chain.iter().enumerate() {
                    let depth = i32::try_from(depth).unwrap_or(i32::MAX);
                    ins.values_panic([
                        SimpleExpr::from(l.org_id.as_uuid()),
                        SimpleExpr::from(a.as_uuid()),
                        SimpleExpr::from(depth),
                    ]);
                }
            }
            txn.execute(&ins).await?;
        }
        txn.commit().await
    }

    /// Applies one message body from [`ORGS_STREAM`]; returns how many lineages it carried.
    pub async fn apply_message(&self, body: &[u8]) -> Result<usize, ApplyError> {
        let msg: OrgsAnnounced =
            serde_json::from_slice(body).map_err(|e| ApplyError::Malformed(e.to_string()))?;
        if msg.kind != ORGS_ANNOUNCED {
            return Err(ApplyError::Malformed(format!("unknown kind `{}`", msg.kind)));
        }
        if let Some(l) = msg.orgs.iter().find(|l| l.ancestors.len() > MAX_DEPTH) {
            return Err(ApplyError::Malformed(format!(
                "organisation {} has {} ancestors (at most {MAX_DEPTH})",
                l.org_id,
                l.ancestors.len()
            )));
        }
        self.apply(&msg.orgs).await?;
        Ok(msg.orgs.len())
    }

    /// The filter "`col` names an organisation within `scope`": the organisation itself for
    /// [`OrgScope::Own`]; the root or any organisation the replica places below it for
    /// [`OrgScope::Subtree`].
    pub fn condition<C: sea_orm::ColumnTrait>(&self, col: C, scope: OrgScope) -> Condition {
        match scope {
            OrgScope::Own(org) => Condition::all().add(col.eq(org.as_uuid())),
            OrgScope::Subtree(root) => Condition::any().add(col.eq(root.as_uuid())).add(
                col.in_subquery(
                    Query::select()
                        .column(Alias::new("org_id"))
                        .from(Alias::new(self.table))
                        .and_where(ExprTrait::eq(
                            Expr::col(Alias::new("ancestor_id")),
                            root.as_uuid(),
                        ))
                        .to_owned(),
                ),
            ),
        }
    }

    /// The organisations the replica places within `root`'s subtree (`root` included).
    pub async fn subtree(&self, root: OrgId) -> Result<Vec<OrgId>, DbErr> {
        let q = Query::select()
            .column(Alias::new("org_id"))
            .from(Alias::new(self.table))
            .and_where(ExprTrait::eq(
                Expr::col(Alias::new("ancestor_id")),
                root.as_uuid(),
            ))
            .to_owned();
        let rows = self.db.query_all(&q).await?;
        let mut out = vec![root];
        for r in rows {
            let id: uuid::Uuid = r.try_get_by_index(0)?;
            let id = OrgId::from_uuid(id);
            if !out.contains(&id) {
                out.push(id);
            }
        }
        Ok(out)
    }
}

/// The replica consumes [`ORGS_STREAM`] itself: a malformed message is dead-lettered at once,
/// a database failure retried.
#[async_trait::async_trait]
impl etx_queue::Handler for OrgReplica {
    async fn handle(&self, batch: &[etx_queue::Delivery]) -> Vec<etx_queue::Outcome> {
        let mut out = Vec::with_capacity(batch.len());
        for d in batch {
            out.push(match self.apply_message(&d.body).await {
                Ok(_) => etx_queue::Outcome::Done,
                Err(ApplyError::Malformed(m)) => etx_queue::Outcome::reject(m),
                Err(ApplyError::Db(e)) => etx_queue::Outcome::retry(e.to_string()),
            });
        }
        out
    }
}
