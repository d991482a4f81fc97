//! The composition root of ETX Hub as a library, so that the `etxhub` binary and the tests
//! build the application the same way.

pub mod app;
pub mod config;
pub mod health;
pub mod openapi;
pub mod pipeline;
pub mod secrets;

/// What the identity module is built from: its keyed hashes from the hmac key, and a key ring of
/// its own (the same master keys as ingestion's, but identity activates its own data key for
/// TOTP secrets, which must never become ingestion's active key). Its early warning's security
/// events go to the outbox of `db` (stream `events.security`, R-SEC-7), which an outbox relay —
/// the one of the process running ingestion on this database — publishes within its poll
/// interval.
pub fn identity_deps(
    cfg: &config::Config,
    secrets: &secrets::Secrets,
    db: &sea_orm::DatabaseConnection,
) -> anyhow::Result<etx_identity::IdentityDeps> {
    use std::sync::Arc;
    Ok(etx_identity::IdentityDeps {
        api_keys: Arc::new(etx_crypto::ApiKeyHasher::new(&secrets.hmac_key)),
        hasher: Arc::new(etx_crypto::KeyedHasher::new(&secrets.hmac_key)),
        ring: Arc::new(etx_crypto::KeyRing::new(
            secrets.master.clone(),
            secrets.previous.clone(),
        )),
        clock: Arc::new(etx_identity_core::SystemClock),
        settings: cfg.accounts.settings(),
        events: Arc::new(etx_audit::OutboxSecurityEvents::new(db.clone(), None)),
        early_warning: cfg.early_warning.policy()?,
    })
}

/// Creates a person's account with a generated temporary password (what `etxhub users add`
/// does: the first administrator of an organisation). The person must change the password and
/// enrol MFA at the first sign-in.
pub async fn add_user(
    cfg: &config::Config,
    org_code: &etx_domain::OrgCode,
    req: etx_identity_core::NewUser,
) -> anyhow::Result<etx_identity_core::CreatedUser> {
    let secrets = secrets::Secrets::load(cfg)?;
    let db = app::open_database(cfg).await?;
    let deps = identity_deps(cfg, &secrets, &db)?;
    let identity = etx_identity::AppIdentity::build(db, deps).await?;
    identity
        .accounts
        .bootstrap_user(org_code, req)
        .await
        .map_err(|e| match e {
            etx_identity_core::AccountError::Invalid(v) => anyhow::anyhow!(
                "cannot add the user: {}",
                v.iter()
                    .map(|v| format!("{} {}", v.path, v.detail.as_deref().unwrap_or(v.code.as_str())))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            etx_identity_core::AccountError::Conflict => {
                anyhow::anyhow!("cannot add the user: the username is taken")
            }
            e => anyhow::anyhow!("cannot add the user: {e}"),
        })
}

/// What connection bundles tell besides identity's own facts (R-ADM automatic configuration,
/// issue 4 §9), from the configuration: the endpoints under the public base URL (`bound`: the
/// gateway's address really bound, see [`config::Config::public_base_url`]), every category's
/// schema versions from ingestion's registry, the rate limits (with the per-organisation ones)
/// and the size limits.
pub fn connection_facts(
    cfg: &config::Config,
    bound: Option<std::net::SocketAddr>,
) -> anyhow::Result<etx_identity_core::ConnectionFacts> {
    use etx_identity_core::{ConnectionFacts, ConnectionLimits, Endpoints, RateFacts, SchemaVersions};
    let base = cfg.public_base_url(bound);
    let rest = format!("{base}/api/v1");
    let soap = format!("{base}{}", etx_ingestion::soap::PATH);
    let registry = etx_ingestion_core::SchemaRegistry::load()?;
    let rate = |r: config::RateCfg| RateFacts {
        rate: r.rate,
        burst: r.burst,
    };
    let rl = &cfg.rate_limits;
    let org_rates = rl
        .orgs
        .iter()
        .map(|(org, r)| {
            let id = uuid::Uuid::parse_str(org)
                .map_err(|_| anyhow::anyhow!("rate_limits.orgs.\"{org}\" is not an organisation id"))?;
            Ok((etx_domain::OrgId::from_uuid(id), rate(*r)))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(ConnectionFacts {
        endpoints: Endpoints {
            records: format!("{rest}/records"),
            batches: format!("{rest}/batches"),
            wsdl: format!("{soap}?wsdl"),
            openapi: format!("{rest}/openapi.json"),
            schemas: format!("{rest}/schemas"),
            soap,
            rest,
            base_url: base,
        },
        schemas: etx_domain::Category::ALL
            .into_iter()
            .map(|c| SchemaVersions {
                category: c,
                versions: registry.versions(c),
                latest: registry.latest(c),
            })
            .collect(),
        limits: ConnectionLimits {
            per_key: rate(rl.per_key),
            per_organisation: rate(rl.per_org),
            per_address: rate(rl.per_ip),
            max_body_bytes: cfg.limits.max_body_bytes as u64,
            max_records_per_submission: cfg.limits.max_records as u64,
            max_batch_bytes: cfg.limits.max_batch_bytes,
        },
        org_rates,
    })
}

/// Onboards a data source against the configured database (what `etxhub sources add` does),
/// its key with every scope, no expiry and no allow-list.
pub async fn onboard(
    cfg: &config::Config,
    req: etx_identity_core::NewSource,
) -> anyhow::Result<etx_identity_core::Onboarding> {
    onboard_with(cfg, req, etx_identity_core::KeyOptions::default()).await
}

/// Onboards a data source with its key's options (`etxhub sources add --scope …`): the
/// credentials, once, and the connection bundle (R-ADM automatic configuration). The operator
/// may place the organisation anywhere in the hierarchy.
pub async fn onboard_with(
    cfg: &config::Config,
    req: etx_identity_core::NewSource,
    key: etx_identity_core::KeyOptions,
) -> anyhow::Result<etx_identity_core::Onboarding> {
    let secrets = secrets::Secrets::load(cfg)?;
    let db = app::open_database(cfg).await?;
    let deps = identity_deps(cfg, &secrets, &db)?;
    let identity = etx_identity::AppIdentity::build(db, deps)
        .await?
        .with_connection_facts(connection_facts(cfg, None)?);
    identity
        .service
        .onboard_source(req, key, None)
        .await
        .map_err(|e| match e {
            etx_identity_core::IdentityError::Invalid(v) => anyhow::anyhow!(
                "cannot onboard the source: {}",
                v.iter()
                    .map(|v| format!("{} {}", v.path, v.detail.as_deref().unwrap_or(v.code.as_str())))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            e => anyhow::anyhow!("cannot onboard the source: {e}"),
        })
}

/// Verifies the audit log's hash chain against the configured database (what `etxhub audit
/// verify` does, R-SEC-9).
pub async fn verify_audit(cfg: &config::Config) -> anyhow::Result<etx_audit_core::VerifyReport> {
    let secrets = secrets::Secrets::load(cfg)?;
    let db = app::open_database(cfg).await?;
    etx_audit::migrate(&db).await?;
    Ok(etx_audit::verify(&db, &app::audit_chain_key(&secrets)).await?)
}

/// What `etxhub keys rotate` did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Data keys re-wrapped under the active master key.
    pub rewrapped: usize,
    /// The active master key's id.
    pub master_key_id: String,
    /// The data key created.
    pub new_data_key: uuid::Uuid,
}

/// Re-wraps every stored data key under the active master key and creates a new data key
/// (R-SEC-5): master-key rotation without re-encrypting data and without downtime.
pub async fn rotate_keys(cfg: &config::Config) -> anyhow::Result<Rotation> {
    let secrets = secrets::Secrets::load(cfg)?;
    let db = app::open_database(cfg).await?;
    etx_ingestion::migrate(&db).await?;
    let ring = std::sync::Arc::new(etx_crypto::KeyRing::new(
        secrets.master.clone(),
        secrets.previous.clone(),
    ));
    // Identity re-wraps its own data keys (TOTP secrets) whenever it is built.
    etx_identity::AppIdentity::build(db.clone(), identity_deps(cfg, &secrets, &db)?).await?;
    let keys = etx_ingestion::KeyManager::new(db, ring);
    let rewrapped = keys.rewrap_all().await?;
    let new_data_key = keys.rotate().await?;
    Ok(Rotation {
        rewrapped,
        master_key_id: secrets.master.id().to_owned(),
        new_data_key,
    })
}
