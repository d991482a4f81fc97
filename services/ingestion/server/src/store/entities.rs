//! sea-orm entities of ingestion's tables. Payloads are stored only as AES-256-GCM
//! ciphertext (R-SEC-5); what is matched is stored as keyed hashes.

/// Stored records (envelope in plain columns, payload encrypted).
pub mod record {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "records")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(indexed)]
        pub org_id: Uuid,
        pub system_id: Uuid,
        #[sea_orm(indexed)]
        pub receipt_id: Uuid,
        pub category: String,
        pub schema_version: i32,
        pub period: String,
        pub period_start: ChronoDate,
        pub classification: String,
        pub priority: i16,
        pub form: String,
        pub idempotency_mac: Option<Vec<u8>>,
        pub content_mac: Vec<u8>,
        pub key_id: Uuid,
        pub payload: Vec<u8>,
        pub method: String,
        pub status: String,
        pub received_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Receipts of submissions.
pub mod receipt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "receipts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub org_id: Uuid,
        pub system_id: Uuid,
        pub key_id: Option<Uuid>,
        pub idempotency_mac: Option<Vec<u8>>,
        pub request_mac: Vec<u8>,
        pub content_hash: String,
        /// JSON array of record ids, in submission order.
        #[sea_orm(column_type = "Text")]
        pub record_ids: String,
        pub method: String,
        pub received_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Wrapped data keys (R-SEC-5): each ingestion process encrypts with its own data key, wrapped
/// by the master key; any process can unwrap any of them to decrypt.
pub mod data_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "data_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub master_key_id: String,
        pub wrapped: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Batches (issue 3): one row per uploaded file, with its state, counts and processing lease.
pub mod batch {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "batches")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub org_id: Uuid,
        pub system_id: Uuid,
        pub key_id: Option<Uuid>,
        pub receipt_id: Option<Uuid>,
        pub format: String,
        pub dry_run: bool,
        /// JSON object of the envelope defaults.
        #[sea_orm(column_type = "Text")]
        pub defaults: String,
        pub declared_rows: Option<i64>,
        pub declared_sha256: Option<String>,
        pub sha256: String,
        /// Keyed hash of org + file + parameters: re-uploading the same is a replay.
        pub file_mac: Vec<u8>,
        pub size_bytes: i64,
        pub chunks: i32,
        #[sea_orm(indexed)]
        pub state: String,
        pub total: i64,
        pub accepted: i64,
        pub rejected: i64,
        pub duplicate: i64,
        /// Rows per group of the storing pass, fixed when it starts (groups are the unit of
        /// commit and of resumption; see `batch_groups`).
        pub group_rows: i64,
        #[sea_orm(column_type = "Text", nullable)]
        pub reject_reason: Option<String>,
        pub lease_owner: Option<String>,
        pub lease_until: Option<ChronoDateTimeUtc>,
        pub attempts: i32,
        pub received_at: ChronoDateTimeUtc,
        pub started_at: Option<ChronoDateTimeUtc>,
        pub finished_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The uploaded file of a batch, in encrypted chunks of up to 1 MiB.
pub mod batch_chunk {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "batch_chunks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub batch_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i32,
        pub data: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Refused rows of a batch: one line per violation.
pub mod batch_error {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "batch_errors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub batch_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub row: i64,
        #[sea_orm(primary_key, auto_increment = false)]
        pub seq: i32,
        pub line: i64,
        pub path: String,
        pub code: String,
        pub detail: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Committed groups of a batch's storing pass: the checkpoint (a group is committed at most
/// once: its key is the primary key) and the group's counts.
pub mod batch_group {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "batch_groups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub batch_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_no: i64,
        pub accepted: i64,
        pub duplicate: i64,
        pub rejected: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
