//! Verifying the stored audit log (R-SEC-9, `etxhub audit verify`): the whole chain, from the
//! latest purge checkpoint to the head, in keyset pages of [`VERIFY_PAGE`] entries — constant
//! memory whatever the log's size — inside one read snapshot, so that writers and purges
//! running meanwhile never cause a false alarm.

use crate::store::{self, entities::audit_log};
use etx_audit_core::{ChainKey, ChainVerifier, VerifyReport};
use sea_orm::{
    AccessMode, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, IsolationLevel, QueryFilter, QueryOrder,
    QuerySelect, TransactionOptions, TransactionTrait,
};

/// Entries read per round trip.
pub const VERIFY_PAGE: u64 = 10_000;

/// Verifies the log in `db` with `key`: either every entry and the head verify (how many,
/// first and last sequence numbers), or the first broken sequence number and why. A database
/// failure is an error, never a verdict.
#[tracing::instrument(skip_all)]
pub async fn verify(db: &DatabaseConnection, key: &ChainKey) -> Result<VerifyReport, DbErr> {
    let snapshot = if store::is_postgres(db) {
        // One consistent picture of rows, head and checkpoints for the whole run.
        db.begin_with_options(TransactionOptions {
            isolation_level: Some(IsolationLevel::RepeatableRead),
            access_mode: Some(AccessMode::ReadOnly),
            sqlite_transaction_mode: None,
        })
        .await?
    } else {
        // SQLite in WAL mode: a read transaction sees one snapshot from its first read on.
        db.begin().await?
    };
    let checkpoint = store::latest_checkpoint(&snapshot).await?;
    let head = store::read_head(&snapshot, false).await?;
    let mut verifier = match ChainVerifier::start(key, checkpoint.as_ref()) {
        Ok(v) => v,
        Err(b) => return Ok(ChainVerifier::broken(0, b)),
    };
    let mut after = checkpoint.as_ref().map_or(0, |c| c.seq);
    loop {
        let page = audit_log::Entity::find()
            .filter(audit_log::Column::Seq.gt(after))
            .order_by_asc(audit_log::Column::Seq)
            .limit(VERIFY_PAGE)
            .all(&snapshot)
            .await?;
        let full = page.len() as u64 == VERIFY_PAGE;
        for row in page {
            after = row.seq;
            if let Err(b) = verifier.check(&store::to_record(row)) {
                tracing::error!(seq = b.seq, reason = %b.reason, "the audit log does not verify");
                return Ok(ChainVerifier::broken(verifier.checked(), b));
            }
        }
        if !full {
            break;
        }
    }
    snapshot.commit().await?;
    let checked = verifier.checked();
    let report = verifier.finish(&head).unwrap_or_else(|b| {
        tracing::error!(seq = b.seq, reason = %b.reason, "the audit log does not verify");
        ChainVerifier::broken(checked, b)
    });
    if report.is_ok() {
        tracing::info!(checked, "the audit log verifies");
    }
    Ok(report)
}
