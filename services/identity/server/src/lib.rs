//! The identity service (R-SRC-1, R-SEC-1, R-SEC-5, R-SEC-6, R-SEC-7): organisations, connected
//! systems and API keys; people's accounts, sessions and TOTP second factor; the early warning
//! on sign-ins and revoked keys — over sea-orm, their HTTP API, and the HTTP client other
//! processes use.

pub mod client;
pub mod http;
mod qr;
pub mod store;

use etx_audit_core::SecurityEvents;
use etx_crypto::{ApiKeyHasher, KeyRing, KeyedHasher};
use etx_identity_core::{
    AccountSettings, Accounts, Clock, EarlyWarning, EarlyWarningPolicy, IdentityApi, IdentityService,
    LocalIdentity, SecurityWatch,
};
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use std::sync::Arc;
pub use store::SeaIdentityStore;

/// What the identity module is built from.
#[derive(Debug, Clone)]
pub struct IdentityDeps {
    /// Hashes API keys (R-SEC-1).
    pub api_keys: Arc<ApiKeyHasher>,
    /// Keys the hashes of session tokens and recovery codes.
    pub hasher: Arc<KeyedHasher>,
    /// Encrypts TOTP secrets. MUST be a ring of identity's own (not shared with ingestion):
    /// identity activates its own data key in it.
    pub ring: Arc<KeyRing>,
    /// The time sessions, lockouts and TOTP steps read.
    pub clock: Arc<dyn Clock>,
    /// Session timeouts and lockout thresholds.
    pub settings: AccountSettings,
    /// Where the early warning's security events go (stream `events.security`, R-SEC-7): in
    /// `etxhub`, the audit service's outbox adapter over this same database.
    pub events: Arc<dyn SecurityEvents>,
    /// The early warning's rules and thresholds.
    pub early_warning: EarlyWarningPolicy,
}

/// The identity module as mounted by `etxhub`.
#[derive(Debug)]
pub struct AppIdentity {
    /// Sources and API keys.
    pub service: Arc<IdentityService<SeaIdentityStore>>,
    /// People: sign-in, sessions, MFA, account administration.
    pub accounts: Arc<Accounts<SeaIdentityStore>>,
}

impl AppIdentity {
    /// Runs identity's migrations on `db`, prepares identity's data key and builds the module.
    pub async fn build(db: DatabaseConnection, deps: IdentityDeps) -> anyhow::Result<Self> {
        migrate(&db).await?;
        let store = SeaIdentityStore::new(db);
        let watch: Arc<dyn SecurityWatch> = Arc::new(EarlyWarning::new(
            store.clone(),
            deps.events,
            deps.clock.clone(),
            deps.early_warning,
        ));
        let accounts = Arc::new(
            Accounts::new(store.clone(), deps.hasher, deps.ring, deps.clock, deps.settings)
                .with_watch(watch.clone()),
        );
        accounts.prepare_keys().await?;
        Ok(Self {
            service: Arc::new(IdentityService::new(store, deps.api_keys).with_watch(watch)),
            accounts,
        })
    }

    /// Identity as the gateway in this process calls it (API keys and sessions).
    pub fn api(&self) -> Arc<dyn IdentityApi> {
        Arc::new(LocalIdentity::new(self.service.clone(), self.accounts.clone()))
    }
}

/// Runs identity's migrations.
pub async fn migrate(db: &DatabaseConnection) -> anyhow::Result<()> {
    etx_storage::with_migration_lock(db, async {
        store::migrations::Migrator::up(db, None).await?;
        Ok(())
    })
    .await
}

/// Identity's part of the OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = <http::IdentityDoc as utoipa::OpenApi>::openapi();
    doc.merge(<http::accounts::AccountsDoc as utoipa::OpenApi>::openapi());
    doc
}
