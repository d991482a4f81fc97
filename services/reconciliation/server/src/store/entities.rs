//! sea-orm entities of reconciliation's tables (R-REC, R-DATA-3). Payloads (masked, yet still
//! record content) are sealed with the hub's data keys; ids, keys (SHA-256 digests), codes and
//! provenance are plain columns so they can be indexed and filtered. Keyed-hash match tokens are
//! plain too (as in masking's table): they are opaque without the masking key.

/// Canonical records, live and retired (R-REC). A retired row (merged into another) keeps its
/// id with `merged_into` set, so an old id still finds the record it became.
pub mod canonical_record {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rec_canonical_records")]
    pub struct Model {
        /// The id of its oldest record.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub category: String,
        pub period: String,
        /// When its oldest record was received.
        pub created_at: ChronoDateTimeUtc,
        /// Optimistic-concurrency version (+1 on every change, retirement included).
        pub version: i64,
        /// The live record this one was merged into (NULL: live).
        #[sea_orm(nullable, indexed)]
        pub merged_into: Option<Uuid>,
        /// JSON of its value, sealed.
        #[sea_orm(column_type = "VarBinary(StringLen::None)")]
        pub payload: Vec<u8>,
        /// JSON of its `ValueOrigin` (merge rule and base record, or the operator).
        #[sea_orm(column_type = "Text")]
        pub value_origin: String,
        /// JSON `{by, at, conflict}` of the operator's override (its value is `payload`).
        #[sea_orm(column_type = "Text", nullable)]
        pub operator_override: Option<String>,
        /// JSON array of the ids merged into it.
        #[sea_orm(column_type = "Text")]
        pub aliases: String,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One row per record linked to a live canonical record: its provenance (R-DATA-3) and what
/// reconciliation made of it.
pub mod contribution {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "rec_contributions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub record_id: Uuid,
        /// The live canonical record it belongs to.
        #[sea_orm(indexed)]
        pub canonical_id: Uuid,
        /// Its place among the canonical record's contributions (oldest first).
        pub ordinal: i32,
        pub org_id: Uuid,
        pub org_kind: String,
        pub system_id: Uuid,
        pub receipt_id: Uuid,
        pub received_at: ChronoDateTimeUtc,
        pub form: String,
        pub schema_version: i32,
        pub masking_policy_version: i64,
        /// Content digest (hex).
        pub content: String,
        pub source_key: String,
        #[sea_orm(nullable)]
        pub fact_key: Option<String>,
        /// JSON array of blocking keys (hex).
        #[sea_orm(column_type = "Text")]
        pub blocking_keys: String,
        /// The rule that linked it (`fact_tolerance`, `fuzzy_match`, …).
        pub rule: String,
        #[sea_orm(nullable)]
        pub score: Option<f64>,
        pub config_version: i64,
        pub linked_at: ChronoDateTimeUtc,
        /// `current` | `duplicate` | `superseded`.
        pub role: String,
        /// The record it duplicates or that superseded it.
        #[sea_orm(nullable)]
        pub role_record: Option<Uuid>,
        /// JSON of its masked payload, sealed under its organisation and record.
        #[sea_orm(column_type = "VarBinary(StringLen::None)")]
        pub payload: Vec<u8>,
        /// JSON object: JSON pointer → keyed-hash token.
        #[sea_orm(column_type = "Text")]
        pub match_tokens: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The key index: every source, fact and blocking key of every contribution → its live
/// canonical record (the candidate lookup, R-REC).
pub mod key_index {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rec_keys")]
    pub struct Model {
        /// The key (64 hex digits; the kind is part of the digest).
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub record_id: Uuid,
        /// `source` | `fact` | `block`.
        pub kind: String,
        #[sea_orm(indexed)]
        pub canonical_id: Uuid,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The saved outcome of every record decided (idempotency by record id; completeness).
pub mod outcome {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rec_outcomes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub record_id: Uuid,
        /// `DecisionKind` code.
        pub kind: String,
        #[sea_orm(nullable)]
        pub canonical_id: Option<Uuid>,
        #[sea_orm(nullable)]
        pub conflict_id: Option<Uuid>,
        pub org_id: Uuid,
        pub category: String,
        pub period: String,
        pub received_at: ChronoDateTimeUtc,
        pub decided_at: ChronoDateTimeUtc,
        /// For a held record, the scope of the approval holding it (`all` or an org id).
        #[sea_orm(nullable)]
        pub held_scope: Option<String>,
        /// The priority rank of the message it came with (0 high), for what it announces.
        pub priority: i16,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The operators' conflict queue (R-REC).
pub mod conflict {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rec_conflicts")]
    pub struct Model {
        /// The id of the record that opened it.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub category: String,
        pub period: String,
        /// The incoming record's organisation.
        pub org_id: Uuid,
        pub reason: String,
        /// `open` | `resolved`.
        pub status: String,
        /// The canonical record it was compared with.
        pub target_id: Uuid,
        pub opened_at: ChronoDateTimeUtc,
        #[sea_orm(nullable)]
        pub resolved_at: Option<ChronoDateTimeUtc>,
        pub priority: i16,
        /// JSON of the whole conflict (both versions with provenance), sealed.
        #[sea_orm(column_type = "VarBinary(StringLen::None)")]
        pub body: Vec<u8>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Remembered rejections: a record (and its source key) never to be merged into a canonical
/// record again (R-REC).
pub mod rejection {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rec_rejections")]
    pub struct Model {
        /// The conflict where it was decided (one rejection per conflict).
        #[sea_orm(primary_key, auto_increment = false)]
        pub conflict_id: Uuid,
        #[sea_orm(indexed)]
        pub record_id: Uuid,
        #[sea_orm(indexed)]
        pub source_key: String,
        pub canonical_id: Uuid,
        pub by_user: Uuid,
        pub at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Reporting-period approvals (R-REC), versioned.
pub mod period_approval {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "rec_period_approvals")]
    pub struct Model {
        /// `all` or the organisation's id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub scope: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub category: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub period: String,
        pub version: i64,
        pub read_only: bool,
        /// JSON of the approval with its history.
        #[sea_orm(column_type = "Text")]
        pub body: String,
        pub updated_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
