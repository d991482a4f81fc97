//! sea-orm entities of identity's tables.

/// Organisations (R-SRC-1), effective-dated.
pub mod organisation {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "organisations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub code: String,
        pub name: String,
        pub kind: String,
        pub parent_id: Option<Uuid>,
        pub valid_from: ChronoDate,
        pub valid_to: Option<ChronoDate>,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Connected systems.
pub mod system {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "systems")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(indexed)]
        pub org_id: Uuid,
        pub name: String,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// API keys: only a keyed hash is stored, looked up by the public prefix (R-SEC-1).
pub mod api_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(indexed)]
        pub org_id: Uuid,
        pub system_id: Uuid,
        #[sea_orm(unique)]
        pub prefix: String,
        pub hash: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
        pub revoked_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What an API key may do, until when and from where (issue 4 §5), and its rotation links:
/// one row per key issued since policies exist (a key without a row has every default scope,
/// no expiry and no allow-list).
pub mod api_key_policy {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_key_policies")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub key_id: Uuid,
        #[sea_orm(indexed)]
        pub org_id: Uuid,
        /// Space-separated scope names (`records:write records:read`).
        pub scopes: String,
        pub expires_at: Option<ChronoDateTimeUtc>,
        /// Space-separated networks in CIDR notation; empty: any address.
        pub allowed_networks: String,
        pub rotated_from: Option<Uuid>,
        pub replaced_by: Option<Uuid>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Configuration changes declared by connected systems (Art. 10.4), newest first by
/// `declared_at` per system.
pub mod config_change {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "config_changes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub org_id: Uuid,
        pub system_id: Uuid,
        pub kind: String,
        pub description: String,
        pub effective_at: ChronoDateTimeUtc,
        /// The details object as JSON text, if any.
        pub details: Option<String>,
        /// `system:<id>` or `user:<id>`.
        pub declared_by: String,
        pub declared_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// People's accounts (R-SEC-5): the password only as an argon2id PHC string.
pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        /// Lower case, so unique regardless of case.
        #[sea_orm(unique)]
        pub username: String,
        pub display_name: String,
        #[sea_orm(indexed)]
        pub org_id: Uuid,
        /// Comma-separated snake_case role names.
        pub roles: String,
        pub status: String,
        pub password_hash: String,
        pub must_change_password: bool,
        pub mfa_enabled: bool,
        pub created_at: ChronoDateTimeUtc,
        pub updated_at: ChronoDateTimeUtc,
        pub password_changed_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// TOTP second factors (R-SEC-6): the secret AES-256-GCM encrypted, the last accepted step.
pub mod user_mfa {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "user_mfa")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        pub sealed_secret: Vec<u8>,
        pub confirmed: bool,
        pub last_step: Option<i64>,
        pub created_at: ChronoDateTimeUtc,
        pub confirmed_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Single-use recovery codes: keyed hashes only.
pub mod recovery_code {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "recovery_codes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(indexed)]
        pub user_id: Uuid,
        #[sea_orm(unique)]
        pub code_hash: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
        pub used_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Sessions of people: a keyed hash of the token, never the token.
pub mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(indexed)]
        pub user_id: Uuid,
        #[sea_orm(unique)]
        pub token_hash: Vec<u8>,
        pub state: String,
        pub created_at: ChronoDateTimeUtc,
        pub last_seen_at: ChronoDateTimeUtc,
        #[sea_orm(indexed)]
        pub expires_at: ChronoDateTimeUtc,
        pub ended_at: Option<ChronoDateTimeUtc>,
        pub ip: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Every sign-in attempt (R-SEC-5 lockout; evidence for the early-warning detectors, R-SEC-7).
/// Indexed on (ip, at) and (username, at) by the migration.
pub mod login_attempt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "login_attempts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub at: ChronoDateTimeUtc,
        /// As submitted, trimmed and lower-cased (whether or not an account has it).
        pub username: String,
        pub user_id: Option<Uuid>,
        pub ip: Option<String>,
        pub outcome: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Identity's own data keys (wrapped under a master key), which encrypt TOTP secrets.
pub mod data_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "identity_data_keys")]
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

/// Started OpenID Connect sign-ins (issue 4 §4): keyed hashes of the `state` and of the browser's
/// binding token, and the nonce (the PKCE verifier is derived, never stored); each row is taken (deleted) by the one
/// callback that uses it, and expires after 10 minutes.
pub mod oidc_login {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "oidc_logins")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        #[sea_orm(unique)]
        pub state_hash: Vec<u8>,
        pub binding_hash: Vec<u8>,
        pub nonce: String,
        pub created_at: ChronoDateTimeUtc,
        #[sea_orm(indexed)]
        pub expires_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Security alerts already raised by the early warning (R-SEC-7), one row per kind and subject
/// (username, address, account and network, key): while `quiet_until` is in the future no new
/// event of that kind and subject is raised.
pub mod security_alert {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "security_alerts")]
    pub struct Model {
        /// The event kind, e.g. `auth.brute_force`.
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        /// What it is about, e.g. the username.
        #[sea_orm(primary_key, auto_increment = false)]
        pub subject: String,
        /// The deduplication key of the last event raised.
        pub event_key: String,
        /// When it was raised.
        pub raised_at: ChronoDateTimeUtc,
        /// Until when it stays quiet.
        pub quiet_until: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
