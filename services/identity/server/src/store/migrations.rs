//! Identity's schema migrations, kept in their own `identity_migrations` table so that
//! identity and ingestion can share one database without stepping on each other.

use super::entities::{
    api_key, api_key_policy, config_change, data_key, login_attempt, oidc_login, organisation, recovery_code,
    security_alert, session, system, user, user_mfa,
};
use sea_orm::DbErr;
use sea_orm::sea_query::{Alias, Index, IntoIden};
use sea_orm_migration::{MigrationName, MigrationTrait, MigratorTrait, SchemaManager};

/// Identity's migrator.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Initial),
            Box::new(M0002People),
            // Identity raises security events through the outbox (R-SEC-7): the table must exist
            // wherever identity runs, also alone (it is shared; creating it is idempotent).
            Box::new(etx_storage::OutboxMigration),
            Box::new(M0003EarlyWarning),
            Box::new(M0004Oidc),
            Box::new(M0005KeyPoliciesAndChanges),
            // OAuth2 clients and access tokens of connected systems (issue 4 §4).
            Box::new(super::oauth::OAuthMigration),
        ]
    }

    fn migration_table_name() -> sea_orm::DynIden {
        Alias::new("identity_migrations").into_iden()
    }
}

struct M0001Initial;

impl MigrationName for M0001Initial {
    fn name(&self) -> &str {
        "identity_m0001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Initial {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, organisation::Entity).await?;
        etx_storage::create_entity_table(m, system::Entity).await?;
        etx_storage::create_entity_table(m, api_key::Entity).await
    }
}

/// People (issue 4 §1–2): accounts, second factors, recovery codes, sessions, sign-in attempts
/// and identity's data keys.
struct M0002People;

impl MigrationName for M0002People {
    fn name(&self) -> &str {
        "identity_m0002_people"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002People {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, user::Entity).await?;
        etx_storage::create_entity_table(m, user_mfa::Entity).await?;
        etx_storage::create_entity_table(m, recovery_code::Entity).await?;
        etx_storage::create_entity_table(m, session::Entity).await?;
        etx_storage::create_entity_table(m, login_attempt::Entity).await?;
        etx_storage::create_entity_table(m, data_key::Entity).await?;
        // Lockout counts and the early-warning detectors read attempts by address and by
        // username over a time window.
        for (name, col) in [
            ("idx_login_attempts_ip_at", login_attempt::Column::Ip),
            ("idx_login_attempts_username_at", login_attempt::Column::Username),
        ] {
            m.create_index(
                Index::create()
                    .if_not_exists()
                    .name(name)
                    .table(login_attempt::Entity)
                    .col(col)
                    .col(login_attempt::Column::At)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// The early warning (issue 4 §8, R-SEC-7): the alerts already raised, and an index for an
/// account's recent successful sign-ins (the new-network rule).
struct M0003EarlyWarning;

impl MigrationName for M0003EarlyWarning {
    fn name(&self) -> &str {
        "identity_m0003_early_warning"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0003EarlyWarning {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, security_alert::Entity).await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_login_attempts_user_at")
                .table(login_attempt::Entity)
                .col(login_attempt::Column::UserId)
                .col(login_attempt::Column::At)
                .to_owned(),
        )
        .await
    }
}

/// Sign-in through an OpenID Connect provider (issue 4 §4): the started sign-ins. A session's new
/// state (`second_factor_required`) needs no change: states are stored by name.
struct M0004Oidc;

impl MigrationName for M0004Oidc {
    fn name(&self) -> &str {
        "identity_m0004_oidc"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0004Oidc {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, oidc_login::Entity).await
    }
}

/// API-key policies (issue 4 §5: scopes, expiry, address allow-list, rotation links) in a table
/// of their own, so that `api_keys` keeps its first shape; and the configuration changes
/// connected systems declare (Art. 10.4), listed per system newest first.
struct M0005KeyPoliciesAndChanges;

impl MigrationName for M0005KeyPoliciesAndChanges {
    fn name(&self) -> &str {
        "identity_m0005_key_policies_and_changes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0005KeyPoliciesAndChanges {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        etx_storage::create_entity_table(m, api_key_policy::Entity).await?;
        etx_storage::create_entity_table(m, config_change::Entity).await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("idx_config_changes_system_declared")
                .table(config_change::Entity)
                .col(config_change::Column::SystemId)
                .col(config_change::Column::DeclaredAt)
                .to_owned(),
        )
        .await
    }
}
