//! The composition root (STYLE.md habit 8): reads the configuration, builds the adapters the
//! chosen targets need, mounts the modules and serves them — the same code path for
//! all-in-one and for one process per service (DESIGN.md §2).

use crate::config::Config;
use crate::health::{self, Readiness};
use crate::secrets::Secrets;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use etx_audit::AppAudit;
use etx_crypto::{KeyRing, KeyedHasher};
use etx_gateway::{IdentityHandle, Proxy};
use etx_gateway_core::Upstream;
use etx_http_kit::PrincipalSigner;
use etx_identity::AppIdentity;
use etx_identity::client::HttpIdentityClient;
use etx_ingestion::{AppIngestion, IngestionSettings};
use etx_ingestion_core::Limits;
use etx_queue::Queue;
use etx_storage::{OutboxRelay, RelayHandle};
use sea_orm::DatabaseConnection;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The services a process can run.
pub const TARGETS: [&str; 5] = ["gateway", "identity", "ingestion", "masking", "reconciliation"];

/// Parses `--target` (`all` or a comma-separated list).
pub fn parse_targets(s: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for t in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if t == "all" {
            out.extend(TARGETS.iter().map(|t| (*t).to_owned()));
        } else if TARGETS.contains(&t) {
            out.insert(t.to_owned());
        } else {
            anyhow::bail!("unknown target `{t}`; known: all, {}", TARGETS.join(", "));
        }
    }
    anyhow::ensure!(!out.is_empty(), "no target given");
    Ok(out)
}

/// Opens the database and runs the migrations of the given targets.
pub async fn open_database(cfg: &Config) -> anyhow::Result<DatabaseConnection> {
    if cfg.is_sqlite() {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data directory {}", cfg.data_dir.display()))?;
    }
    etx_storage::connect(&cfg.database_url(), cfg.database.max_connections)
        .await
        .with_context(|| "cannot open the database (check database.url)".to_owned())
}

/// Builds the queue named by the configuration.
pub async fn open_queue(cfg: &Config, db: &DatabaseConnection) -> anyhow::Result<Arc<dyn Queue>> {
    Ok(match cfg.queue.kind.as_str() {
        "redis" => Arc::new(
            etx_queue::RedisQueue::connect(cfg.queue.redis_url.expose(), &cfg.queue.key_prefix)
                .context("cannot set up the Redis queue")?,
        ),
        _ => {
            let q = etx_queue::EmbeddedQueue::new(db.clone());
            q.migrate().await.context("cannot prepare the embedded queue")?;
            Arc::new(q)
        }
    })
}

/// A running process: its server future and what to stop afterwards.
#[allow(missing_debug_implementations)]
pub struct Running {
    /// The HTTP server.
    pub server: actix_web::dev::Server,
    /// The outbox relay, when this process runs ingestion or masking.
    pub relay: Option<(RelayHandle, tokio::task::JoinHandle<()>)>,
    /// The queue consumers of the modules this process runs (stopped before the relay).
    pub consumers: Vec<(etx_queue::ConsumerHandle, tokio::task::JoinHandle<()>)>,
    /// The batch use cases (their workers are stopped on shutdown), when this process runs
    /// ingestion.
    pub batches: Option<etx_ingestion::batch::Batches>,
    /// The audit log's module and its background jobs (purge, overdue scan), when this process
    /// runs the gateway; its writer is drained on shutdown.
    pub audit: Option<(web::Data<AppAudit>, Vec<etx_audit::BackgroundJob>)>,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// Whether it serves HTTPS.
    pub tls: bool,
}

/// The gateway's rate limits (R-SEC-2), kept in Redis or in this process as configured.
fn rate_limits(cfg: &Config) -> anyhow::Result<etx_gateway::RateLimits> {
    let rl = &cfg.rate_limits;
    let limiter: Arc<dyn etx_gateway_core::ratelimit::Limiter> = if rl.uses_redis(&cfg.queue.kind) {
        let prefix = format!("{}rl:", cfg.queue.key_prefix);
        Arc::new(etx_gateway::RedisLimiter::connect(
            cfg.queue.redis_url.expose(),
            &prefix,
        )?)
    } else {
        Arc::new(etx_gateway::MemoryLimiter::new())
    };
    let orgs = rl
        .orgs
        .iter()
        .map(|(org, r)| Ok((org.to_lowercase(), r.to_rate()?)))
        .collect::<anyhow::Result<_>>()?;
    Ok(etx_gateway::RateLimits::new(
        limiter,
        rl.per_key.to_rate()?,
        rl.per_org.to_rate()?,
        rl.per_ip.to_rate()?,
        orgs,
    ))
}

/// The audit chain's key, derived from the keyed-hash key (its own purpose, R-SEC-9): one
/// secret fewer to manage, and `etxhub audit verify` needs nothing but the configuration.
pub fn audit_chain_key(secrets: &Secrets) -> etx_audit_core::ChainKey {
    etx_audit_core::ChainKey::derive(&secrets.hmac_key)
}

/// The hub's own organisation (`audit.root_org_id`), whose auditors and operators see
/// hub-wide data; `None` when not configured.
fn root_org_of(cfg: &Config) -> anyhow::Result<Option<etx_domain::OrgId>> {
    Ok(match cfg.audit.root_org_id.trim() {
        "" => None,
        id => Some(etx_domain::OrgId::from_uuid(
            uuid::Uuid::parse_str(id).context("audit.root_org_id is not a UUID")?,
        )),
    })
}

/// Builds and binds everything for `targets`.
pub async fn build(cfg: &Config, targets: &BTreeSet<String>) -> anyhow::Result<Running> {
    let secrets = Secrets::load(cfg)?;
    let db = open_database(cfg).await?;
    let signer = PrincipalSigner::new(
        &secrets.internal_secret,
        Duration::from_secs(cfg.security.principal_ttl_secs),
    );
    // No total timeout: batch uploads and exports stream for minutes through the gateway. A
    // peer that stops sending or answering for 5 minutes (an XLSX export is assembled before
    // its first byte) is given up on.
    // Redirects are never followed: an upstream's 302 (the OpenID sign-in) goes to the browser.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .read_timeout(Duration::from_secs(300))
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(256)
        .build()
        .context("HTTP client")?;
    let mut readiness = Readiness::default();
    readiness.add_database(db.clone());
    // Bound first: the connection bundles name the gateway's real address (port 0 in tests).
    let listener = std::net::TcpListener::bind(&cfg.listen)
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;

    let identity = if targets.contains("identity") {
        let deps = crate::identity_deps(cfg, &secrets, &db)?;
        if !targets.contains("gateway") && cfg.public_url.trim().is_empty() {
            tracing::warn!("public_url is not set: connection bundles will name this process's own address");
        }
        let bound = targets.contains("gateway").then_some(addr);
        let mut module = AppIdentity::build(db.clone(), deps)
            .await?
            .with_connection_facts(crate::connection_facts(cfg, bound)?)
            .with_oauth_settings(cfg.oauth.settings()?);
        // Sign-in through an OpenID Connect provider (issue 4 §4), where identity runs.
        if cfg.oidc.enabled {
            let provider = etx_identity::oidc::HttpOidcProvider::new(cfg.oidc.client())
                .context("cannot set up the OpenID Connect provider (check [oidc])")?;
            module = module.with_oidc(
                Arc::new(provider),
                cfg.oidc.settings()?,
                cfg.oidc.post_login_redirect.clone(),
            );
        }
        Some(web::Data::new(module))
    } else {
        None
    };

    let mut consumers = Vec::new();
    // The modules that write an outbox (ingestion, masking) share one queue and one relay per
    // process; several relays share the outbox on PostgreSQL (SKIP LOCKED).
    let queue = if ["ingestion", "masking", "reconciliation"]
        .iter()
        .any(|t| targets.contains(*t))
    {
        let q = open_queue(cfg, &db).await?;
        readiness.add_queue(q.clone());
        Some(q)
    } else {
        None
    };
    let outbox = queue.as_ref().map(|q| OutboxRelay::new(db.clone(), q.clone()));
    let ring = Arc::new(KeyRing::new(secrets.master.clone(), secrets.previous.clone()));
    let ingestion = if let (true, Some(queue), Some(outbox)) =
        (targets.contains("ingestion"), queue.clone(), outbox.as_ref())
    {
        let handle = outbox.handle();
        let hasher = Arc::new(KeyedHasher::new(&secrets.hmac_key));
        let writers = match cfg.ingestion.writers {
            0 if cfg.is_sqlite() => 1,
            0 => 8,
            n => n,
        };
        let settings = IngestionSettings {
            writers,
            limits: Limits {
                max_records: cfg.limits.max_records,
            },
            batch: etx_ingestion::batch::BatchSettings {
                max_bytes: cfg.limits.max_batch_bytes,
                lease: Duration::from_secs(cfg.ingestion.batch_lease_secs.max(3)),
                rows_per_commit: cfg.ingestion.batch_rows_per_commit.clamp(1, 10_000),
                workers: cfg.ingestion.batch_workers,
            },
        };
        // Built first: it runs the migrations that create the outbox table the relay reads.
        let app = AppIngestion::build(db.clone(), ring.clone(), hasher, Some(handle), settings).await?;
        // Ingestion's replica of the hierarchy, for subtree reads (issue 4 §3).
        consumers.push(etx_queue::Consumer::spawn(
            queue,
            Arc::new(etx_ingestion::store::org_replica(&db)),
            etx_queue::ConsumerConfig::new(etx_storage::ORGS_STREAM, "ingestion"),
        ));
        Some(web::Data::new(app))
    } else {
        None
    };

    // The masking stage (issue 5 §1–3): records.received → masked copies → records.masked.
    let mut masking = None;
    if let (true, Some(queue), Some(outbox)) = (targets.contains("masking"), queue.clone(), outbox.as_ref()) {
        // Masking reads ingestion's tables and seals with its data keys: a process that runs
        // masking alone prepares them too (idempotent, under the migration lock).
        let keys = etx_ingestion::KeyManager::new(db.clone(), ring.clone());
        if ingestion.is_none() {
            etx_ingestion::migrate(&db).await?;
            keys.rotate()
                .await
                .context("cannot create a data key for the masking stage")?;
        }
        let source = Arc::new(crate::pipeline::IngestionRecords::new(db.clone(), keys.clone()));
        let vault = Arc::new(crate::pipeline::DataKeyVault::new(
            keys,
            crate::pipeline::MASKED_COPY_TWEAK,
        ));
        let masker = etx_masking_core::Masker::new(
            crate::pipeline::masking_keys(cfg, &secrets)?,
            etx_masking_core::Detector::for_today(),
        );
        // Masks with the current stored policy version (the built-in one is version 1),
        // taking a newly published version within seconds (issue 5 §2).
        let module = etx_masking::AppMasking::build(db.clone(), source, masker, vault, Some(outbox.handle()))
            .await
            .context("cannot start the masking stage")?;
        consumers.push(
            module.spawn_consumer(
                queue.clone(),
                etx_queue::ConsumerConfig::new(etx_masking::RECORDS_RECEIVED, etx_masking::GROUP)
                    .with_batch_size(cfg.queue.batch_size.clamp(1, 5000)),
            ),
        );
        // Masking's replica of the hierarchy: held records are listed by subtree.
        let orgs = etx_masking::org_replica(&db);
        consumers.push(etx_queue::Consumer::spawn(
            queue.clone(),
            Arc::new(orgs.clone()),
            etx_queue::ConsumerConfig::new(etx_storage::ORGS_STREAM, "masking"),
        ));
        let ops = etx_masking::http::PipelineOps::new(queue, orgs, root_org_of(cfg)?);
        masking = Some((web::Data::new(module), web::Data::new(ops)));
    }
    // The reconciliation stage (issue 5 §4–5): records.masked → canonical records,
    // records.accepted / records.conflicts.
    let mut reconciliation: Option<(
        web::Data<etx_reconciliation::AppReconciliation>,
        web::Data<etx_reconciliation::http::ReconciliationApi>,
    )> = None;
    if let (true, Some(queue), Some(outbox)) =
        (targets.contains("reconciliation"), queue.clone(), outbox.as_ref())
    {
        // It reads masking's and ingestion's tables and seals with the data keys: a process
        // that runs it alone prepares them too (idempotent, under the migration lock).
        let keys = etx_ingestion::KeyManager::new(db.clone(), ring.clone());
        if ingestion.is_none() {
            etx_ingestion::migrate(&db).await?;
        }
        if masking.is_none() {
            etx_masking::migrate(&db).await?;
        }
        if ring.active_data_key_id().is_none() {
            keys.rotate()
                .await
                .context("cannot create a data key for the reconciliation stage")?;
        }
        let masked_vault = Arc::new(crate::pipeline::DataKeyVault::new(
            keys.clone(),
            crate::pipeline::MASKED_COPY_TWEAK,
        ));
        let source = Arc::new(crate::pipeline::MaskedRecords::new(db.clone(), masked_vault));
        let vault = Arc::new(crate::pipeline::DataKeyVault::new(
            keys,
            crate::pipeline::RECONCILED_TWEAK,
        ));
        let module = etx_reconciliation::AppReconciliation::build(
            db.clone(),
            source,
            vault,
            etx_reconciliation_core::ReconcileConfig::default(),
            Some(outbox.handle()),
        )
        .await
        .context("cannot start the reconciliation stage")?;
        consumers.push(
            module.spawn_consumer(
                queue.clone(),
                etx_queue::ConsumerConfig::new(etx_reconciliation::RECORDS_MASKED, etx_reconciliation::GROUP)
                    .with_batch_size(cfg.queue.batch_size.clamp(1, 5000)),
            ),
        );
        // Reconciliation's replica of the hierarchy: its API reads by organisation subtree.
        let orgs = etx_reconciliation::org_replica(&db);
        consumers.push(etx_queue::Consumer::spawn(
            queue,
            Arc::new(orgs.clone()),
            etx_queue::ConsumerConfig::new(etx_storage::ORGS_STREAM, etx_reconciliation::GROUP),
        ));
        let api = etx_reconciliation::http::ReconciliationApi::new(orgs, root_org_of(cfg)?);
        reconciliation = Some((web::Data::new(module), web::Data::new(api)));
    }
    // Started once the modules' migrations have created the outbox table.
    let relay = outbox.map(|o| o.spawn(Duration::from_millis(200)));

    let gateway = targets.contains("gateway");
    // The audit and connection log (R-SEC-9) is written where requests arrive: the gateway.
    let audit = if gateway {
        let root_org = root_org_of(cfg)?;
        let settings = etx_audit::AuditSettings {
            root_org,
            retention_days: cfg.audit.retention_days,
            refusal_window: std::time::Duration::from_secs(cfg.audit.refusal_summary_secs.clamp(1, 3600)),
            ..Default::default()
        };
        let module = AppAudit::build(db.clone(), audit_chain_key(&secrets), settings).await?;
        let events = Arc::new(etx_audit::OutboxSecurityEvents::new(
            db.clone(),
            relay.as_ref().map(|(h, _): &(RelayHandle, _)| h.clone()),
        ));
        let jobs = module.spawn_jobs(events)?;
        Some((web::Data::new(module), jobs))
    } else {
        None
    };
    let audit_module = audit.as_ref().map(|(m, _)| m.clone());
    let audit_sink = audit
        .as_ref()
        .map(|(m, _)| web::Data::new(m.sink.clone() as etx_gateway::AuditHandle));
    let identity_client: Option<web::Data<IdentityHandle>> = if gateway {
        Some(web::Data::new(match &identity {
            Some(id) => id.api() as IdentityHandle,
            None => {
                anyhow::ensure!(
                    !cfg.upstreams.identity.is_empty(),
                    "the gateway needs upstreams.identity when identity runs elsewhere"
                );
                Arc::new(HttpIdentityClient::new(
                    &cfg.upstreams.identity,
                    http.clone(),
                    signer.clone(),
                )) as IdentityHandle
            }
        }))
    } else {
        None
    };
    let mut remote = HashMap::new();
    if gateway {
        if identity.is_none() {
            remote.insert(Upstream::Identity, cfg.upstreams.identity.clone());
        }
        if ingestion.is_none() {
            anyhow::ensure!(
                !cfg.upstreams.ingestion.is_empty(),
                "the gateway needs upstreams.ingestion when ingestion runs elsewhere"
            );
            remote.insert(Upstream::Ingestion, cfg.upstreams.ingestion.clone());
        }
        // The pipeline's operations API lives with the masking stage; without an upstream for
        // it, its paths answer 503 (no masking service configured) at this gateway.
        if masking.is_none() && !cfg.upstreams.masking.is_empty() {
            remote.insert(Upstream::Masking, cfg.upstreams.masking.clone());
        }
        // Likewise reconciliation's API (canonical records, conflicts, periods, completeness).
        if reconciliation.is_none() && !cfg.upstreams.reconciliation.is_empty() {
            remote.insert(Upstream::Reconciliation, cfg.upstreams.reconciliation.clone());
        }
    }
    let proxy = web::Data::new(Proxy::new(remote.clone(), http.clone(), signer.clone()));
    let has_remote = !remote.is_empty();
    let openapi = web::Data::new(crate::openapi::document());
    let readiness = web::Data::new(readiness);
    let signer_data = web::Data::new(signer.clone());
    let auth_cache = Arc::new(etx_gateway::AuthCache::new(Duration::from_millis(
        cfg.security.auth_cache_ms,
    )));
    // Revocations reach the other gateway instances through Redis in the distributed mode.
    let revocations = if gateway && cfg.queue.kind == "redis" {
        let bus = etx_gateway::RevocationBus::redis(
            cfg.queue.redis_url.expose(),
            &cfg.queue.key_prefix,
            auth_cache.clone(),
        )?;
        bus.spawn_listener();
        bus
    } else {
        etx_gateway::RevocationBus::local(auth_cache.clone())
    };
    let revocations = web::Data::new(revocations);
    let auth_cache = web::Data::from(auth_cache);
    let rate_limits = web::Data::new(rate_limits(cfg)?);
    let limit = cfg.limits.max_body_bytes;
    let cors = web::Data::new(
        etx_http_kit::CorsPolicy::new(&cfg.http.cors_origins).map_err(|e| anyhow::anyhow!(e))?,
    );
    let body_idle = web::Data::new(etx_http_kit::BodyIdleTimeout(Duration::from_secs(
        cfg.http.body_idle_timeout_secs.max(1),
    )));

    let soap_on = gateway || ingestion.is_some();
    let batches = ingestion.as_ref().map(|i| i.batches.clone());
    let factory = move || {
        let mut api = web::scope("/api/v1");
        if let Some(id) = &identity {
            api = api
                .app_data(id.clone())
                .configure(etx_identity::http::public_routes);
        }
        if let Some(ing) = &ingestion {
            api = api.app_data(ing.clone()).configure(etx_ingestion::http::routes);
        }
        if let Some(a) = &audit_module {
            api = api.app_data(a.clone()).configure(etx_audit::http::routes);
        }
        if let Some((m, ops)) = &masking {
            api = api
                .app_data(m.clone())
                .app_data(ops.clone())
                .configure(etx_masking::http::routes);
        }
        if let Some((r, rapi)) = &reconciliation {
            api = api
                .app_data(r.clone())
                .app_data(rapi.clone())
                .configure(etx_reconciliation::http::routes);
        }
        if has_remote {
            api = api.default_service(web::to(etx_gateway::forward));
        }
        // SOAP (R-ING-3): mounted like /api/v1 (same authentication, module, forwarding);
        // every error of the scope is a SOAP fault.
        let mut soap = web::scope("/soap/v1");
        if let Some(ing) = &ingestion {
            soap = soap.app_data(ing.clone()).configure(etx_ingestion::soap::routes);
        }
        if has_remote {
            soap = soap.default_service(web::to(etx_gateway::forward));
        }
        let mut app = App::new()
            .app_data(signer_data.clone())
            .app_data(readiness.clone())
            .app_data(proxy.clone())
            .app_data(etx_http_kit::json_config(limit))
            .app_data(etx_http_kit::payload_config(limit))
            .app_data(etx_http_kit::path_config())
            .app_data(etx_http_kit::query_config())
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/api/v1/openapi.json", web::get().to(serve_openapi))
            .app_data(openapi.clone());
        if soap_on {
            // The WSDL is public: its GET resource comes before the authenticated scope.
            app = app.route(
                etx_ingestion::soap::PATH,
                web::get().to(etx_ingestion::soap::wsdl),
            );
        }
        if let Some(idc) = &identity_client {
            app = app
                .app_data(idc.clone())
                .app_data(auth_cache.clone())
                .app_data(revocations.clone())
                .app_data(rate_limits.clone());
            // The connection log wraps authentication, so refused requests are logged too.
            app = app.service(
                api.wrap(from_fn(etx_gateway::authenticate))
                    .wrap(from_fn(etx_gateway::audit)),
            );
            if soap_on {
                app = app.service(
                    soap.wrap(from_fn(etx_gateway::authenticate))
                        .wrap(from_fn(etx_gateway::audit))
                        .wrap(from_fn(etx_ingestion::soap::faults)),
                );
            }
        } else {
            app = app.service(api);
            if soap_on {
                app = app.service(soap.wrap(from_fn(etx_ingestion::soap::faults)));
            }
        }
        if let Some(id) = &identity {
            app = app.service(
                web::scope("/internal/v1")
                    .app_data(id.clone())
                    .configure(etx_identity::http::internal_routes),
            );
        }
        // Outermost first: the standard middleware (request id, problem bodies, security
        // headers), then CORS (before authentication: preflights carry no credentials), then
        // the client limits (header count, body idle timeout).
        if let Some(sink) = &audit_sink {
            app = app.app_data(sink.clone());
        }
        app.app_data(cors.clone())
            .app_data(body_idle.clone())
            .default_service(web::to(etx_http_kit::not_found_handler))
            .wrap(from_fn(etx_http_kit::client_limits))
            .wrap(from_fn(etx_http_kit::cors))
            .wrap(from_fn(etx_http_kit::standard))
    };

    let server = HttpServer::new(factory)
        .shutdown_timeout(cfg.shutdown.timeout_secs)
        .client_request_timeout(Duration::from_secs(cfg.http.header_timeout_secs.max(1)))
        .client_disconnect_timeout(Duration::from_secs(cfg.http.disconnect_timeout_secs))
        .keep_alive(Duration::from_secs(cfg.http.keep_alive_secs))
        .max_connections(cfg.http.max_connections_per_worker.max(1))
        .backlog(4096)
        .max_connection_rate(1024);
    let server = if gateway {
        let files = etx_gateway::tls::resolve(
            &cfg.data_dir,
            (!cfg.tls.cert.is_empty()).then(|| std::path::Path::new(&cfg.tls.cert)),
            (!cfg.tls.key.is_empty()).then(|| std::path::Path::new(&cfg.tls.key)),
            &cfg.tls.hosts,
        )?;
        let tls = etx_gateway::tls::server_config(&files, &cfg.tls.min_version)?;
        server.listen_rustls_0_23(listener, tls)?.run()
    } else {
        server.listen(listener)?.run()
    };
    Ok(Running {
        server,
        relay,
        consumers,
        batches,
        audit,
        addr,
        tls: gateway,
    })
}

async fn serve_openapi(doc: web::Data<serde_json::Value>) -> HttpResponse {
    HttpResponse::Ok().json(doc.get_ref())
}
