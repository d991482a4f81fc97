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
