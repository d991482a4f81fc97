//! The core's port contract (`etx_reconciliation_core::contract`, R-REC, R-DATA-3) run against
//! [`SqlStore`] on SQLite (`sqlite::<rule>`) and PostgreSQL (`postgres::<rule>`), each rule on a
//! fresh database — the same functions the in-memory reference store passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::future::Future;
use std::sync::Arc;

use etx_reconciliation::SqlStore;
use support::{Backend, Place, TestVault};

/// Runs `rule` on a migrated store in a fresh place of `backend`, removes the place, and
/// re-raises any failure.
async fn run<F, Fut>(backend: Backend, rule: F)
where
    F: FnOnce(SqlStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let place = Place::new(backend).await;
    let db = place.db.connect().await;
    etx_reconciliation::migrate(&db).await.unwrap();
    // Idempotent: a second process starting on the same database migrates nothing.
    etx_reconciliation::migrate(&db).await.unwrap();
    let store = SqlStore::new(db.clone(), Arc::new(TestVault::new()));
    let outcome = tokio::spawn(rule(store)).await;
    let _ = db.close().await;
    place.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! per_backend {
    ($($rule:ident),* $(,)?) => {
        per_backend!(@mod sqlite, Sqlite, $($rule),*);
        per_backend!(@mod postgres, Postgres, $($rule),*);
    };
    (@mod $module:ident, $backend:ident, $($rule:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $rule() {
                    super::run(
                        super::Backend::$backend,
                        etx_reconciliation_core::contract::$rule,
                    )
                    .await;
                }
            )*
        }
    };
}

per_backend!(
    links_are_versioned_and_outcomes_final,
    a_fact_is_founded_once,
    renamed_canonicals_are_found_by_their_old_ids,
    conflicts_are_listed_and_resolved_once,
    resolutions_link_and_filters_select,
    approvals_are_versioned_and_stop_late_writes,
    batches_chain_decisions_and_read_in_bulk,
    batches_are_atomic,
);
