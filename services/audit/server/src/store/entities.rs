//! sea-orm entities of the audit service's tables.

/// The audit and connection log (R-SEC-9): one row per entry, keyed by its dense sequence
/// number. Rows are only ever inserted (by the writer) and deleted as a prefix (by the purge).
pub mod audit_log {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_log")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        /// Microseconds since the Unix epoch (UTC): exact on both engines, compared as integers.
        #[sea_orm(indexed)]
        pub at_us: i64,
        pub kind: String,
        pub subject: String,
        pub org_id: Option<Uuid>,
        pub system_id: Option<Uuid>,
        pub key_id: Option<Uuid>,
        pub session_id: Option<String>,
        pub ip: Option<String>,
        pub method: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub route: Option<String>,
        pub status: Option<i32>,
        pub bytes_in: i64,
        pub bytes_out: i64,
        pub duration_ms: i64,
        pub payload_hash: Option<Vec<u8>>,
        pub action: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub detail: String,
        pub hash: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The one-row head of the chain: last sequence number and hash, sealed with a MAC.
pub mod audit_head {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_head")]
    pub struct Model {
        /// Always 1.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub last_seq: i64,
        pub last_hash: Vec<u8>,
        /// `None` only before the first entry.
        pub mac: Option<Vec<u8>>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Purge checkpoints: where verification resumes after entries were purged.
pub mod audit_checkpoint {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_checkpoints")]
    pub struct Model {
        /// The last purged sequence number.
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i64,
        pub hash: Vec<u8>,
        /// The purge's cutoff, microseconds since the epoch.
        pub purged_before_us: i64,
        /// Entries this purge run deleted.
        pub deleted: i64,
        pub created_at: ChronoDateTimeUtc,
        pub mac: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The vulnerability register (R-SEC-8).
pub mod vulnerability {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "vulnerabilities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub title: String,
        #[sea_orm(column_type = "Text")]
        pub description: String,
        pub severity: String,
        pub component: String,
        #[sea_orm(column_type = "Text")]
        pub remediation_plan: String,
        pub owner: String,
        pub deadline: ChronoDate,
        #[sea_orm(indexed)]
        pub status: String,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        pub version: i64,
        /// The deadline the last overdue event was about.
        pub overdue_deadline: Option<ChronoDate>,
        /// The date (Vietnam) the last overdue event was emitted.
        pub overdue_on: Option<ChronoDate>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
