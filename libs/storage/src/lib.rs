//! Storage glue shared by the services: a sea-orm connection to SQLite (all-in-one) or
//! PostgreSQL (distributed) chosen by URL, the migration runner, and the transactional outbox
//! with its relay to the queue (DESIGN.md §1: "a 2xx means durable").

pub mod db;
pub mod migrate;
pub mod org_tree;
pub mod outbox;
pub mod testing;

pub use db::{Backend, begin_write, connect, is_unique_violation, with_migration_lock};
pub use migrate::create_entity_table;
pub use org_tree::{ORGS_STREAM, OrgLineage, OrgReplica, OrgTreeMigration};
pub use outbox::{OutboxEntry, OutboxMigration, OutboxRelay, RelayHandle, insert_outbox};
