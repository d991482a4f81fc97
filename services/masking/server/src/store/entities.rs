//! sea-orm entities of masking's tables. Only masked data lands here (R-SEC-10): the payload
//! masked for analysts, keyed tokens, and for held records the places of what was found, never
//! the values.

/// One masked (or held) copy per received record (R-ING-2, R-DATA-3).
pub mod masked_record {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "masked_records")]
    pub struct Model {
        /// Ingestion's record id: consumers are idempotent by it.
        #[sea_orm(primary_key, auto_increment = false)]
        pub record_id: Uuid,
        pub org_id: Uuid,
        pub system_id: Uuid,
        pub receipt_id: Uuid,
        pub category: String,
        pub schema_version: i32,
        pub period: String,
        pub classification: String,
        /// Priority rank (0 high, 1 normal, 2 low), as ingestion stores it.
        pub priority: i16,
        /// The form the record arrived in (`raw` | `masked`).
        pub form: String,
        /// `masked` | `held`.
        pub status: String,
        pub policy_version: i64,
        /// The JSON of the payload masked for analysts, sealed by the [`PayloadVault`]
        /// (AES-256-GCM under the hub's data keys: a masked copy may still hold free text no
        /// rule names as personal); NULL when held.
        ///
        /// [`PayloadVault`]: etx_masking_core::PayloadVault
        #[sea_orm(column_type = "VarBinary(StringLen::None)", nullable)]
        pub payload: Option<Vec<u8>>,
        /// JSON object: JSON pointer → `tok_…` match token.
        #[sea_orm(column_type = "Text")]
        pub match_tokens: String,
        /// JSON array of `{pointer, kind}` (held records; `[]` otherwise).
        #[sea_orm(column_type = "Text")]
        pub findings: String,
        pub received_at: ChronoDateTimeUtc,
        pub masked_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
