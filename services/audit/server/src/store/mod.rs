//! The audit service's sea-orm storage (SQLite or PostgreSQL): appending to the chained log
//! in one transaction per batch, reading the head and checkpoints, and the vulnerability
//! register's repository.

pub mod entities;
pub mod migrations;

use async_trait::async_trait;
use chrono::NaiveDate;
use entities::{audit_checkpoint, audit_head, audit_log, vulnerability};
use etx_audit_core::chain::{head_of, seal};
use etx_audit_core::{
    Anchor, AuditBody, AuditRecord, ChainKey, Checkpoint, Finding, FindingFilter, FindingId, FindingStatus,
    FindingStore, GENESIS, Head, OverdueNotice, Severity, StoreError,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

/// The id of the one head row.
pub(crate) const HEAD_ID: i32 = 1;

/// Rows per multi-row `INSERT`: short statements on SQLite (sqlx binds its parameters by a
/// linear name search), long ones on PostgreSQL (19 columns × 500 rows stays far below its
/// 65,535-parameter limit).
fn rows_per_insert(c: &impl ConnectionTrait) -> usize {
    if c.get_database_backend() == DbBackend::Sqlite {
        32
    } else {
        500
    }
}

pub(crate) fn is_postgres(c: &impl ConnectionTrait) -> bool {
    c.get_database_backend() == DbBackend::Postgres
}

/// A stored row as the chain sees it.
pub(crate) fn to_record(m: audit_log::Model) -> AuditRecord {
    AuditRecord {
        seq: m.seq,
        hash: m.hash,
        body: AuditBody {
            at_us: m.at_us,
            kind: m.kind,
            subject: m.subject,
            org_id: m.org_id,
            system_id: m.system_id,
            key_id: m.key_id,
            session_id: m.session_id,
            ip: m.ip,
            method: m.method,
            route: m.route,
            status: m.status,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            duration_ms: m.duration_ms,
            payload_hash: m.payload_hash,
            action: m.action,
            detail: m.detail,
        },
    }
}

fn to_row(r: AuditRecord) -> audit_log::ActiveModel {
    let b = r.body;
    audit_log::ActiveModel {
        seq: Set(r.seq),
        at_us: Set(b.at_us),
        kind: Set(b.kind),
        subject: Set(b.subject),
        org_id: Set(b.org_id),
        system_id: Set(b.system_id),
        key_id: Set(b.key_id),
        session_id: Set(b.session_id),
        ip: Set(b.ip),
        method: Set(b.method),
        route: Set(b.route),
        status: Set(b.status),
        bytes_in: Set(b.bytes_in),
        bytes_out: Set(b.bytes_out),
        duration_ms: Set(b.duration_ms),
        payload_hash: Set(b.payload_hash),
        action: Set(b.action),
        detail: Set(b.detail),
        hash: Set(r.hash),
    }
}

/// The head row; a missing row reads as the empty log's head (so entries without a head are
/// reported as lying beyond it).
pub(crate) async fn read_head<C: ConnectionTrait>(c: &C, lock: bool) -> Result<Head, DbErr> {
    let mut q = audit_head::Entity::find_by_id(HEAD_ID);
    if lock && is_postgres(c) {
        // Several processes appending to one database form one chain: they take turns here.
        q = q.lock_exclusive();
    }
    Ok(match q.one(c).await? {
        Some(h) => Head {
            seq: h.last_seq,
            hash: h.last_hash,
            mac: h.mac,
        },
        None => Head {
            seq: 0,
            hash: GENESIS.to_vec(),
            mac: None,
        },
    })
}

/// The checkpoint verification resumes from: the one with the highest sequence number.
pub(crate) async fn latest_checkpoint<C: ConnectionTrait>(c: &C) -> Result<Option<Checkpoint>, DbErr> {
    Ok(audit_checkpoint::Entity::find()
        .order_by_desc(audit_checkpoint::Column::Seq)
        .one(c)
        .await?
        .map(|m| Checkpoint {
            seq: m.seq,
            hash: m.hash,
            purged_before_us: m.purged_before_us,
            mac: m.mac,
        }))
}

/// Appends `bodies` to the log in one transaction: locks and reads the head (PostgreSQL:
/// `SELECT … FOR UPDATE`; SQLite: the `BEGIN IMMEDIATE` write transaction is exclusive
/// already), numbers and hashes the entries after it, inserts them and moves the head.
/// Returns the new end of the chain.
pub(crate) async fn append(
    db: &DatabaseConnection,
    key: &ChainKey,
    bodies: Vec<AuditBody>,
) -> Result<Anchor, DbErr> {
    let txn = etx_storage::begin_write(db).await?;
    let head = read_head(&txn, true).await?;
    if head.seq > 0 && head_of(key, anchor_of(&head)?) != head {
        // Entries are still written (an audit log never drops them), continuing from the
        // stored head; `verify` reports the break.
        tracing::error!(
            seq = head.seq,
            "the audit head's seal does not verify: the head was changed"
        );
    }
    let (records, end) = seal(key, anchor_of(&head)?, bodies);
    let chunk = rows_per_insert(&txn);
    let mut rows = records.into_iter().map(to_row).peekable();
    while rows.peek().is_some() {
        let batch: Vec<_> = rows.by_ref().take(chunk).collect();
        audit_log::Entity::insert_many(batch)
            .exec_without_returning(&txn)
            .await?;
    }
    let sealed = head_of(key, end);
    audit_head::Entity::insert(audit_head::ActiveModel {
        id: Set(HEAD_ID),
        last_seq: Set(sealed.seq),
        last_hash: Set(sealed.hash),
        mac: Set(sealed.mac),
    })
    .on_conflict(
        sea_orm::sea_query::OnConflict::column(audit_head::Column::Id)
            .update_columns([
                audit_head::Column::LastSeq,
                audit_head::Column::LastHash,
                audit_head::Column::Mac,
            ])
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(end)
}

fn anchor_of(h: &Head) -> Result<Anchor, DbErr> {
    let hash = <[u8; 32]>::try_from(h.hash.as_slice())
        .map_err(|_| DbErr::Custom("the audit head's hash is not 32 bytes".into()))?;
    Ok(Anchor { seq: h.seq, hash })
}

/// The end of the chain as stored in the head (e.g. to record it outside the database).
pub async fn head(db: &DatabaseConnection) -> Result<Anchor, DbErr> {
    anchor_of(&read_head(db, false).await?)
}

/// The vulnerability register's repository.
#[derive(Debug, Clone)]
pub struct SeaFindingStore {
    db: DatabaseConnection,
}

impl SeaFindingStore {
    /// A repository over `db` (migrations must have run).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn unknown(e: DbErr) -> StoreError {
    StoreError::Unknown(anyhow::Error::new(e))
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Unknown(anyhow::anyhow!("stored {what} is not valid"))
}

fn to_finding(m: vulnerability::Model) -> Result<Finding, StoreError> {
    Ok(Finding {
        id: FindingId::from_uuid(m.id),
        title: m.title,
        description: m.description,
        severity: Severity::parse(&m.severity).ok_or_else(|| corrupt("severity"))?,
        component: m.component,
        remediation_plan: m.remediation_plan,
        owner: m.owner,
        deadline: m.deadline,
        status: FindingStatus::parse(&m.status).ok_or_else(|| corrupt("status"))?,
        created_at: m.created_at,
        updated_at: m.updated_at,
        version: m.version,
        overdue_notice: match (m.overdue_deadline, m.overdue_on) {
            (Some(deadline), Some(on)) => Some(OverdueNotice { deadline, on }),
            _ => None,
        },
    })
}

fn finding_row(f: &Finding) -> vulnerability::ActiveModel {
    vulnerability::ActiveModel {
        id: Set(f.id.as_uuid()),
        title: Set(f.title.clone()),
        description: Set(f.description.clone()),
        severity: Set(f.severity.as_str().to_owned()),
        component: Set(f.component.clone()),
        remediation_plan: Set(f.remediation_plan.clone()),
        owner: Set(f.owner.clone()),
        deadline: Set(f.deadline),
        status: Set(f.status.as_str().to_owned()),
        created_at: Set(f.created_at),
        updated_at: Set(f.updated_at),
        version: Set(f.version),
        overdue_deadline: Set(f.overdue_notice.map(|n| n.deadline)),
        overdue_on: Set(f.overdue_notice.map(|n| n.on)),
    }
}

#[async_trait]
impl FindingStore for SeaFindingStore {
    async fn insert(&self, f: &Finding) -> Result<(), StoreError> {
        finding_row(f).insert(&self.db).await.map_err(unknown).map(|_| ())
    }

    async fn get(&self, id: FindingId) -> Result<Option<Finding>, StoreError> {
        vulnerability::Entity::find_by_id(id.as_uuid())
            .one(&self.db)
            .await
            .map_err(unknown)?
            .map(to_finding)
            .transpose()
    }

    async fn list(&self, filter: &FindingFilter) -> Result<Vec<Finding>, StoreError> {
        let mut q = vulnerability::Entity::find().order_by_asc(vulnerability::Column::Id);
        if let Some(s) = filter.status {
            q = q.filter(vulnerability::Column::Status.eq(s.as_str()));
        }
        if let Some(s) = filter.severity {
            q = q.filter(vulnerability::Column::Severity.eq(s.as_str()));
        }
        q.all(&self.db)
            .await
            .map_err(unknown)?
            .into_iter()
            .map(to_finding)
            .collect()
    }

    async fn update(&self, f: &Finding, expected_version: i64) -> Result<bool, StoreError> {
        let mut row = finding_row(f);
        row.id = sea_orm::ActiveValue::NotSet;
        row.created_at = sea_orm::ActiveValue::NotSet;
        let res = vulnerability::Entity::update_many()
            .set(row)
            .filter(vulnerability::Column::Id.eq(f.id.as_uuid()))
            .filter(vulnerability::Column::Version.eq(expected_version))
            .exec(&self.db)
            .await
            .map_err(unknown)?;
        Ok(res.rows_affected == 1)
    }

    async fn past_deadline(&self, date: NaiveDate) -> Result<Vec<Finding>, StoreError> {
        let waiting: Vec<&str> = FindingStatus::ALL
            .iter()
            .filter(|s| s.awaits_remediation())
            .map(|s| s.as_str())
            .collect();
        vulnerability::Entity::find()
            .filter(vulnerability::Column::Status.is_in(waiting))
            .filter(vulnerability::Column::Deadline.lt(date))
            .order_by_asc(vulnerability::Column::Id)
            .all(&self.db)
            .await
            .map_err(unknown)?
            .into_iter()
            .map(to_finding)
            .collect()
    }

    async fn mark_overdue_notice(&self, id: FindingId, n: OverdueNotice) -> Result<(), StoreError> {
        vulnerability::Entity::update_many()
            .col_expr(vulnerability::Column::OverdueDeadline, Expr::value(n.deadline))
            .col_expr(vulnerability::Column::OverdueOn, Expr::value(n.on))
            .filter(vulnerability::Column::Id.eq(id.as_uuid()))
            .exec(&self.db)
            .await
            .map_err(unknown)
            .map(|_| ())
    }
}
