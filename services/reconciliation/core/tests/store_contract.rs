//! The port contracts of `ports.rs` (R-REC, R-DATA-3), checked on the in-memory reference
//! store. The same functions ([`etx_reconciliation_core::contract`]) run against the server's
//! SQLite and PostgreSQL adapters.

use etx_reconciliation_core::MemoryStore;
use etx_reconciliation_core::contract;

#[tokio::test]
async fn memory_store_keeps_versions_and_final_outcomes() {
    contract::links_are_versioned_and_outcomes_final(MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_founds_a_fact_once() {
    contract::a_fact_is_founded_once(MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_follows_merged_into() {
    contract::renamed_canonicals_are_found_by_their_old_ids(MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_the_conflict_queue() {
    contract::conflicts_are_listed_and_resolved_once(MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_resolves_and_filters_conflicts() {
    contract::resolutions_link_and_filters_select(MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_keeps_approvals_and_held_records() {
    contract::approvals_are_versioned_and_stop_late_writes(MemoryStore::new()).await;
}

#[tokio::test]
async fn memory_store_chains_decisions_in_a_batch() {
    contract::batches_chain_decisions_and_read_in_bulk(MemoryStore::new()).await;
}
