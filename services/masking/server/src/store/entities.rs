//! sea-orm entities of masking's tables. Only masked data lands here (R-SEC-10): the payload
//! masked for analysts, keyed tokens, and for held records the places of what was found, never
//! the values; the masking policy's versions; the log of re-identifications (a hash of each
//! token, never the token or its value).

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

/// One version of the masking policy (issue 5 §2): immutable once stored; the current policy
/// is the highest version.
pub mod masking_policy {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "masking_policies")]
    pub struct Model {
        /// The policy's `version` (≥ 1); versions follow each other without gaps.
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i64,
        /// The policy document, as canonical JSON (members sorted, no whitespace).
        #[sea_orm(column_type = "Text")]
        pub document: String,
        /// The document's `description`, for listings.
        #[sea_orm(column_type = "Text", nullable)]
        pub description: Option<String>,
        /// Lower-case hex SHA-256 of `document` (checked when the version is loaded).
        pub sha256: String,
        /// Who published it: the principal's subject (`user:<id>`), `system` for the built-in
        /// version 1.
        pub created_by: String,
        /// The publisher's organisation (`NULL` for `system`).
        pub created_by_org: Option<Uuid>,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One request to turn a reversible token back into its value, granted or refused (issue 5
/// §2, R-SEC-10). Never the token or the value: a SHA-256 of the token identifies it.
pub mod masking_reidentification {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "masking_reidentifications")]
    pub struct Model {
        /// UUIDv7: time-ordered.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub at: ChronoDateTimeUtc,
        /// The principal's subject (`user:<id>`).
        pub actor: String,
        /// The actor's organisation.
        pub actor_org: Uuid,
        /// The client address as the gateway saw it.
        pub ip: Option<String>,
        /// The token purpose asked for.
        pub purpose: String,
        /// The stated reason, with any identifier the detectors find in it masked.
        #[sea_orm(column_type = "Text")]
        pub reason: String,
        /// Lower-case hex SHA-256 of the token as presented.
        pub token_sha256: String,
        /// `granted` | `refused`.
        pub outcome: String,
        /// Why it was refused: `keyed_token`, `not_a_token`, `wrong_purpose_or_key`.
        pub refusal: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
