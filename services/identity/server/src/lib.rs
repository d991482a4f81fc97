//! The identity service (R-SRC-1, R-SEC-1, R-SEC-5, R-SEC-6, R-SEC-7): organisations, connected
//! systems, their API keys and OAuth2 clients and access tokens; people's accounts, sessions and
//! TOTP second factor; the early warning on sign-ins and revoked keys — over sea-orm, their HTTP
//! API, and the HTTP client other processes use.

pub mod client;
pub mod http;
pub mod oidc;
mod qr;
pub mod store;

use etx_audit_core::SecurityEvents;
use etx_crypto::{ApiKeyHasher, KeyRing, KeyedHasher};
use etx_identity_core::oidc::{OidcProvider, OidcSettings};
use etx_identity_core::{
    AccountSettings, Accounts, Clock, EarlyWarning, EarlyWarningPolicy, IdentityApi, IdentityService,
    LocalIdentity, OidcSignIn, SecurityWatch,
};
use etx_identity_core::{OAuthService, OAuthSettings};
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
    /// Sign-in through an external OpenID Connect provider, when one is configured.
    pub oidc: Option<OidcWeb>,
    /// OAuth2 for connected systems: clients, the client-credentials grant, access tokens.
    pub oauth: Arc<OAuthService<SeaIdentityStore>>,
}

/// Sign-in through the OpenID provider as mounted (issue 4 §4).
#[derive(Debug)]
pub struct OidcWeb {
    /// The use case.
    pub sign_in: OidcSignIn<SeaIdentityStore>,
    /// Where the browser goes after a successful sign-in: a path of the hub.
    pub post_login_redirect: String,
}

impl AppIdentity {
    /// Runs identity's migrations on `db`, prepares identity's data key and builds the module.
    pub async fn build(db: DatabaseConnection, deps: IdentityDeps) -> anyhow::Result<Self> {
        migrate(&db).await?;
        let store = SeaIdentityStore::new(db);
        // Every start re-announces the whole hierarchy, so the services' subtree replicas
        // converge even when one is new or the queue lost its streams (issue 4 §3).
        store.announce_hierarchy().await?;
        let watch: Arc<dyn SecurityWatch> = Arc::new(EarlyWarning::new(
            store.clone(),
            deps.events,
            deps.clock.clone(),
            deps.early_warning,
        ));
        let oauth = Arc::new(OAuthService::new(
            store.clone(),
            &deps.hasher,
            deps.clock.clone(),
            OAuthSettings::default(),
        ));
        let accounts = Arc::new(
            Accounts::new(store.clone(), deps.hasher, deps.ring, deps.clock, deps.settings)
                .with_watch(watch.clone()),
        );
        accounts.prepare_keys().await?;
        Ok(Self {
            service: Arc::new(IdentityService::new(store, deps.api_keys).with_watch(watch)),
            accounts,
            oidc: None,
            oauth,
        })
    }

    /// Issues OAuth2 access tokens as `settings` say (their lifetime).
    pub fn with_oauth_settings(mut self, settings: OAuthSettings) -> Self {
        self.oauth = Arc::new(self.oauth.with_settings(settings));
        self
    }

    /// Enables sign-in through `provider` (issue 4 §4), linking and checking as `settings`
    /// say; the browser is sent to `post_login_redirect` (a path of the hub) once signed in.
    pub fn with_oidc(
        mut self,
        provider: Arc<dyn OidcProvider>,
        settings: OidcSettings,
        post_login_redirect: String,
    ) -> Self {
        self.oidc = Some(OidcWeb {
            sign_in: OidcSignIn::new(self.accounts.clone(), provider, settings),
            post_login_redirect,
        });
        self
    }

    /// Hands identity what connection bundles tell besides its own facts (R-ADM): the public
    /// endpoints, schema versions and limits, known to the composition root.
    pub fn with_connection_facts(self, facts: etx_identity_core::ConnectionFacts) -> Self {
        self.service.set_connection_facts(facts);
        self
    }

    /// Identity as the gateway in this process calls it (API keys, sessions, access tokens).
    pub fn api(&self) -> Arc<dyn IdentityApi> {
        Arc::new(LocalIdentity::new(
            self.service.clone(),
            self.accounts.clone(),
            self.oauth.clone(),
        ))
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
    doc.merge(<http::sources::SourcesDoc as utoipa::OpenApi>::openapi());
    doc.merge(<http::oidc::OidcDoc as utoipa::OpenApi>::openapi());
    doc.merge(<http::oauth::OAuthDoc as utoipa::OpenApi>::openapi());
    doc
}
