//! Retention of the audit log (R-SEC-9: at least
//! [`MIN_RETENTION_DAYS`](etx_audit_core::MIN_RETENTION_DAYS) days): deleting the
//! oldest entries without ever deleting a younger one and without breaking verification.
//!
//! A purge works in transactions of at most [`PURGE_PAGE`] entries. Each one reads the entries
//! after the latest checkpoint in sequence order, keeps the leading run older than the
//! cutoff ([`purgeable_prefix`]: it stops at the first younger entry even if older ones
//! follow), *verifies that run against the chain* (a tampered entry is never purged — its
//! evidence stays, and the purge stops before it), deletes it and writes a sealed checkpoint
//! with the last deleted entry's sequence number and hash, in the same transaction. One
//! checkpoint is kept per purge run. On PostgreSQL the head row is locked for each
//! transaction, so concurrent purges (several processes) and writers take turns.

use crate::jobs::BackgroundJob;
use crate::store::{self, entities::audit_checkpoint, entities::audit_log};
use chrono::{DateTime, Utc};
use etx_audit_core::{
    Actor, AuditSink, ChainBreak, ChainKey, ChainVerifier, NewAuditEntry, RetentionError, cutoff,
    purgeable_prefix,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use std::sync::Arc;
use std::time::Duration;

/// Entries deleted per transaction.
pub const PURGE_PAGE: u64 = 5_000;

/// Why a purge did not run.
#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    /// The retention is below the floor.
    #[error(transparent)]
    Retention(#[from] RetentionError),
    /// The database failed (what was committed before stays purged and checkpointed).
    #[error("database: {0}")]
    Db(#[from] DbErr),
}

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// Entries strictly older than this were eligible.
    pub cutoff: DateTime<Utc>,
    /// Entries deleted.
    pub deleted: u64,
    /// The checkpoint written (last deleted sequence number), if anything was deleted.
    pub checkpoint: Option<i64>,
    /// A break in the chain found among the entries to purge: the purge stopped before it.
    pub stopped_at_break: Option<ChainBreak>,
}

/// Deletes the entries older than `retention_days` before `now` (see the module docs).
/// Refuses `retention_days` below [`etx_audit_core::MIN_RETENTION_DAYS`].
pub async fn purge(
    db: &DatabaseConnection,
    key: &ChainKey,
    now: DateTime<Utc>,
    retention_days: u32,
) -> Result<PurgeOutcome, PurgeError> {
    purge_paged(db, key, now, retention_days, PURGE_PAGE).await
}

/// [`purge`] with `page` entries per transaction (tests, tuning).
#[tracing::instrument(skip(db, key))]
pub async fn purge_paged(
    db: &DatabaseConnection,
    key: &ChainKey,
    now: DateTime<Utc>,
    retention_days: u32,
    page: u64,
) -> Result<PurgeOutcome, PurgeError> {
    let page = page.max(1);
    let cutoff = cutoff(now, retention_days)?;
    let mut out = PurgeOutcome {
        cutoff,
        deleted: 0,
        checkpoint: None,
        stopped_at_break: None,
    };
    loop {
        let txn = etx_storage::begin_write(db).await?;
        // Takes turns with writers and other purges (PostgreSQL; SQLite's write transaction is
        // exclusive already).
        store::read_head(&txn, true).await?;
        let checkpoint = store::latest_checkpoint(&txn).await?;
        let mut verifier = match ChainVerifier::start(key, checkpoint.as_ref()) {
            Ok(v) => v,
            Err(b) => {
                tracing::error!(seq = b.seq, reason = %b.reason, "not purging: the checkpoint does not verify");
                out.stopped_at_break = Some(b);
                return Ok(out);
            }
        };
        let from = checkpoint.as_ref().map_or(0, |c| c.seq);
        let rows = audit_log::Entity::find()
            .filter(audit_log::Column::Seq.gt(from))
            .order_by_asc(audit_log::Column::Seq)
            .limit(page)
            .all(&txn)
            .await?;
        // An unreadable time (only a tampered row) counts as young: it stops the purge.
        let times = rows
            .iter()
            .map(|r| DateTime::from_timestamp_micros(r.at_us).unwrap_or(DateTime::<Utc>::MAX_UTC));
        let eligible = purgeable_prefix(times, cutoff);
        let mut n = 0usize;
        for row in rows.into_iter().take(eligible) {
            if let Err(b) = verifier.check(&store::to_record(row)) {
                tracing::error!(seq = b.seq, reason = %b.reason, "purge stopped before an entry that does not verify");
                out.stopped_at_break = Some(b);
                break;
            }
            n += 1;
        }
        if n == 0 {
            txn.commit().await?;
            break;
        }
        let last = verifier.last();
        audit_log::Entity::delete_many()
            .filter(audit_log::Column::Seq.gt(from))
            .filter(audit_log::Column::Seq.lte(last.seq))
            .exec(&txn)
            .await?;
        let cutoff_us = cutoff.timestamp_micros();
        // One checkpoint per run: this run's earlier one is replaced.
        let mut deleted_in_run = n as i64;
        if let Some(prev) = out.checkpoint {
            let earlier = audit_checkpoint::Entity::find_by_id(prev).one(&txn).await?;
            deleted_in_run += earlier.map_or(0, |c| c.deleted);
            audit_checkpoint::Entity::delete_by_id(prev).exec(&txn).await?;
        }
        audit_checkpoint::ActiveModel {
            seq: Set(last.seq),
            hash: Set(last.hash.to_vec()),
            purged_before_us: Set(cutoff_us),
            deleted: Set(deleted_in_run),
            created_at: Set(now),
            mac: Set(key.checkpoint_mac(last.seq, &last.hash, cutoff_us).to_vec()),
        }
        .insert(&txn)
        .await?;
        txn.commit().await?;
        out.deleted += n as u64;
        out.checkpoint = Some(last.seq);
        // Another round only after a full page was purged.
        if (n as u64) < page {
            break;
        }
    }
    tracing::info!(deleted = out.deleted, cutoff = %out.cutoff, checkpoint = ?out.checkpoint, "audit log purged");
    Ok(out)
}

/// Runs [`purge`] now and then every `every` (daily in production), recording each run that
/// deleted something as an `audit.purge` administrative action. Refuses `retention_days`
/// below [`etx_audit_core::MIN_RETENTION_DAYS`] up front.
pub fn spawn_purge(
    db: DatabaseConnection,
    key: ChainKey,
    audit: Arc<dyn AuditSink>,
    every: Duration,
    retention_days: u32,
) -> Result<BackgroundJob, RetentionError> {
    cutoff(Utc::now(), retention_days)?;
    let actor = Actor {
        subject: "system:audit".into(),
        org_id: None,
        ip: None,
    };
    Ok(BackgroundJob::every("audit-purge", every, move || {
        let (db, key, audit, actor) = (db.clone(), key.clone(), audit.clone(), actor.clone());
        async move {
            match purge(&db, &key, Utc::now(), retention_days).await {
                Ok(o) if o.deleted > 0 || o.stopped_at_break.is_some() => {
                    audit.record(NewAuditEntry::admin_action(
                        &actor,
                        "audit.purge",
                        serde_json::json!({
                            "deleted": o.deleted,
                            "cutoff": o.cutoff,
                            "retention_days": retention_days,
                            "checkpoint": o.checkpoint,
                            "stopped_at_break": o.stopped_at_break.map(|b| b.seq),
                        }),
                    ))
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "audit purge failed; will retry at the next run"),
            }
        }
    }))
}
