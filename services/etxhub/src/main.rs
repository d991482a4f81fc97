//! `etxhub`: the one binary of ETX Hub. It runs any set of services (`serve --target`),
//! onboards data sources, rotates keys and migrates the database.
#![allow(clippy::print_stdout)]

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use etx_domain::{OrgCode, OrgKind, OrgName, SystemName};
use etxhub::config::Config;
use etxhub::{app, openapi};
use std::path::PathBuf;

/// mimalloc instead of glibc's malloc: under load, glibc's allocator took about 28 % of the
/// ingestion process's CPU (`perf`, distributed real-time benchmark), most of it in
/// consolidation and free-list walks across threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const HELP_EXAMPLES: &str = "Examples:
  etxhub                                   serve all-in-one (SQLite + embedded queue) on https://127.0.0.1:8443
  etxhub serve --target ingestion --listen 10.0.0.5:8082
                                           one service per process (distributed mode, PostgreSQL + Redis)
  etxhub sources add --org-code 79 --org-name \"Thành phố Hồ Chí Minh\" --org-kind province \\
      --system-name \"Cổng dữ liệu\" --output json
                                           onboard a data source; prints its API key once
  etxhub users add --username an.admin --org-code 79 --role system_admin --output json
                                           the first administrator; prints a temporary password once
  etxhub keys rotate                       re-wrap data keys under the active master key, new data key
  etxhub migrate                           create or upgrade the database tables

Configuration: embedded defaults, then ./etxhub.toml, then <data-dir>/etxhub.toml, then ETX__SECTION__KEY
environment variables (e.g. ETX__DATABASE__URL=postgres://...). See docs/operations.md.";

/// ETX Hub — receives, stores and guards data about electronic transactions from ministries,
/// provinces and e-transaction companies.
#[derive(Debug, Parser)]
#[command(name = "etxhub", version, about, long_about = None, after_help = HELP_EXAMPLES)]
struct Cli {
    /// Data directory (SQLite database, keys, TLS certificate). Default ./data.
    #[arg(long, global = true, env = "ETX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Configuration file (default: ./etxhub.toml, then <data-dir>/etxhub.toml, when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the API (all services in one process unless --target says otherwise).
    Serve(ServeArgs),
    /// Onboard and manage data sources.
    #[command(subcommand)]
    Sources(SourcesCmd),
    /// Manage people's accounts.
    #[command(subcommand)]
    Users(UsersCmd),
    /// Manage encryption keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// The audit and connection log (R-SEC-9).
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Create or upgrade the database tables, then exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Debug, Args, Default)]
struct ServeArgs {
    /// Services to run: `all` or a comma-separated list of gateway, identity, ingestion.
    #[arg(long, default_value = "all")]
    target: String,
    /// Address to listen on (overrides `listen` in the configuration).
    #[arg(long)]
    listen: Option<String>,
}

#[derive(Debug, Subcommand)]
enum SourcesCmd {
    /// Register an organisation (if new) and one of its systems; prints the system's API key once.
    Add(AddSource),
}

#[derive(Debug, Clone, Copy, ValueEnum, Default)]
enum Output {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Args)]
struct AddSource {
    /// Organisation code, unique (e.g. BO-KHCN, 79, HCM-SKHCN).
    #[arg(long)]
    org_code: String,
    /// Organisation name, with diacritics.
    #[arg(long)]
    org_name: String,
    /// ministry, ministry_level_agency, government_agency, department, province,
    /// provincial_department, commune or etx_provider.
    #[arg(long)]
    org_kind: String,
    /// Code of the parent organisation, if any.
    #[arg(long)]
    parent: Option<String>,
    /// Name of the connected system.
    #[arg(long)]
    system_name: String,
    /// A scope of the key; repeat for several (default: all): records:write, records:read,
    /// schemas:read, keys:manage.
    #[arg(long = "scope")]
    scopes: Vec<String>,
    /// The key's lifetime in days (1–730; default: until revoked or rotated).
    #[arg(long)]
    ttl_days: Option<u32>,
    /// A network (CIDR, IPv4 or IPv6) the key may be used from; repeat for several (default:
    /// any address).
    #[arg(long = "allow-network")]
    allowed_networks: Vec<String>,
    /// Output format: `json` prints the connection bundle (R-ADM) with the key.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Subcommand)]
enum AuditCmd {
    /// Check the whole hash chain of the audit log; names the first tampered, missing or
    /// reordered entry and exits with status 1 when the chain is broken.
    Verify {
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
enum UsersCmd {
    /// Create a person's account (e.g. an organisation's first administrator) with a generated
    /// temporary password, printed once: the person must change it and enrol MFA (TOTP) at the
    /// first sign-in.
    Add(AddUser),
}

#[derive(Debug, Args)]
struct AddUser {
    /// Username: 3–64 characters of a-z 0-9 . _ - @.
    #[arg(long)]
    username: String,
    /// Code of the account's home organisation (it acts within this organisation's subtree).
    #[arg(long)]
    org_code: String,
    /// A role; repeat for several: system_admin, security_officer, operator, analyst, auditor,
    /// data_consumer.
    #[arg(long = "role", required = true)]
    roles: Vec<String>,
    /// Display name (default: the username).
    #[arg(long)]
    display_name: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    output: Output,
}

#[derive(Debug, Subcommand)]
enum KeysCmd {
    /// Create a new data key and re-wrap every stored data key under the active master key.
    /// Running processes keep working; after re-wrapping, older master keys can be removed
    /// from the configuration.
    Rotate,
    /// Print a new random master key (base64) to put in the configuration.
    GenerateMaster,
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let json = std::env::var("ETX_LOG_FORMAT").is_ok_and(|v| v == "json");
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut cfg = Config::load(cli.config.as_deref(), cli.data_dir.as_deref())?;
    match cli.command.unwrap_or(Command::Serve(ServeArgs {
        target: "all".into(),
        listen: None,
    })) {
        Command::Serve(args) => {
            if let Some(l) = args.listen {
                cfg.listen = l;
            }
            serve(cfg, &args.target).await
        }
        Command::Sources(SourcesCmd::Add(a)) => add_source(&cfg, a).await,
        Command::Users(UsersCmd::Add(a)) => add_user(&cfg, a).await,
        Command::Keys(KeysCmd::Rotate) => rotate_keys(&cfg).await,
        Command::Keys(KeysCmd::GenerateMaster) => {
            println!("{}", etx_crypto::MasterKey::generate("new").to_base64());
            Ok(())
        }
        Command::Audit(AuditCmd::Verify { output }) => verify_audit(&cfg, output).await,
        Command::Migrate => {
            let db = app::open_database(&cfg).await?;
            etx_identity::migrate(&db).await?;
            etx_ingestion::migrate(&db).await?;
            etx_audit::migrate(&db).await?;
            if cfg.queue.kind == "embedded" {
                etx_queue::EmbeddedQueue::new(db.clone()).migrate().await?;
            }
            println!("migrations applied to {}", redact_url(&cfg.database_url()));
            Ok(())
        }
        Command::Openapi => {
            println!("{}", serde_json::to_string_pretty(&openapi::document())?);
            Ok(())
        }
    }
}

fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

async fn serve(cfg: Config, target: &str) -> anyhow::Result<()> {
    let targets = app::parse_targets(target)?;
    let running = app::build(&cfg, &targets).await?;
    let scheme = if running.tls { "https" } else { "http" };
    let list: Vec<&str> = targets.iter().map(String::as_str).collect();
    println!(
        "ETX Hub {} — services: {}",
        env!("CARGO_PKG_VERSION"),
        list.join(", ")
    );
    println!("  listening on {scheme}://{}", running.addr);
    println!(
        "  data: {} (database {})",
        cfg.data_dir.display(),
        redact_url(&cfg.database_url())
    );
    if targets.contains("gateway") {
        println!(
            "  API: {scheme}://{}/api/v1   OpenAPI: {scheme}://{}/api/v1/openapi.json",
            running.addr, running.addr
        );
        println!("  next: onboard a data source in another terminal:");
        println!(
            "    etxhub sources add --data-dir {} --org-code HCM-SKHCN --org-name \"Sở Khoa học và Công nghệ TP. Hồ Chí Minh\" --org-kind provincial_department --parent 79 --system-name \"Cổng dữ liệu\"",
            cfg.data_dir.display()
        );
        println!("    (create the parent first, or drop --parent and use --org-kind province)");
    }
    running.server.await.context("server stopped with an error")?;
    let grace = std::time::Duration::from_secs(cfg.shutdown.timeout_secs);
    if let Some(batches) = &running.batches {
        tracing::info!("HTTP server stopped; pausing batch processing");
        batches.shutdown(grace).await;
    }
    if let Some((audit, jobs)) = running.audit {
        for job in jobs {
            job.stop().await;
        }
        tracing::info!("storing the last audit entries");
        audit.shutdown().await;
    }
    for (handle, _) in &running.consumers {
        handle.stop();
    }
    for (_, task) in running.consumers {
        let _ = tokio::time::timeout(grace, task).await;
    }
    tracing::info!("draining the outbox");
    if let Some((handle, task)) = running.relay {
        handle.stop();
        let _ = tokio::time::timeout(grace, task).await;
    }
    tracing::info!("stopped");
    Ok(())
}

async fn verify_audit(cfg: &Config, output: Output) -> anyhow::Result<()> {
    let report = etxhub::verify_audit(cfg).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string(&report)?),
        Output::Text => match &report {
            etx_audit_core::VerifyReport::Ok {
                checked,
                first_seq,
                last_seq,
                resumed_after,
            } => {
                println!("audit log OK: {checked} entries verified");
                if let (Some(f), Some(l)) = (first_seq, last_seq) {
                    println!("  sequence {f}..={l}");
                }
                if let Some(c) = resumed_after {
                    println!("  entries up to {c} were purged by retention; verified from the checkpoint");
                }
            }
            etx_audit_core::VerifyReport::Broken { checked, at } => {
                println!("audit log BROKEN after {checked} valid entries");
                println!("  {at}");
            }
        },
    }
    match report {
        etx_audit_core::VerifyReport::Ok { .. } => Ok(()),
        etx_audit_core::VerifyReport::Broken { .. } => anyhow::bail!("the audit log's hash chain is broken"),
    }
}

async fn add_source(cfg: &Config, a: AddSource) -> anyhow::Result<()> {
    let parse_err = |what: &str, e: etx_domain::ParseError| anyhow::anyhow!("invalid {what}: {}", e.detail);
    let req = etx_identity_core::NewSource {
        org_code: OrgCode::parse(&a.org_code).map_err(|e| parse_err("--org-code", e))?,
        org_name: OrgName::parse(&a.org_name).map_err(|e| parse_err("--org-name", e))?,
        org_kind: OrgKind::parse(&a.org_kind).map_err(|e| parse_err("--org-kind", e))?,
        parent: a
            .parent
            .as_deref()
            .map(OrgCode::parse)
            .transpose()
            .map_err(|e| parse_err("--parent", e))?,
        valid_from: None,
        system_name: SystemName::parse(&a.system_name).map_err(|e| parse_err("--system-name", e))?,
    };
    let key = etx_identity_core::KeyOptions {
        scopes: if a.scopes.is_empty() {
            None
        } else {
            Some(
                a.scopes
                    .iter()
                    .map(|s| {
                        etx_domain::authz::Scope::parse(s)
                            .ok_or_else(|| anyhow::anyhow!("invalid --scope `{s}`: records:write, records:read, schemas:read or keys:manage"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            )
        },
        expires_at: None,
        ttl_days: a.ttl_days,
        allowed_networks: a
            .allowed_networks
            .iter()
            .map(|n| etx_domain::IpNetwork::parse(n).map_err(|e| parse_err("--allow-network", e)))
            .collect::<anyhow::Result<_>>()?,
    };
    let out = etxhub::onboard_with(cfg, req, key).await?;
    // The same bundle as POST /api/v1/onboarding answers.
    let out = etx_identity::http::sources::OnboardedOut::from(out);
    match a.output {
        Output::Json => println!("{}", serde_json::to_string(&out)?),
        Output::Text => {
            let c = &out.connection;
            println!(
                "organisation: {} {} ({})",
                c.organisation.code,
                out.org_id,
                if out.org_created { "created" } else { "existing" }
            );
            println!("system:       {}", out.system_id);
            println!("key:          {}", out.key_id);
            println!("API key:      {}", out.api_key);
            if let Some(k) = c.keys.first() {
                println!("  scopes:     {}", k.scopes.join(" "));
                match k.expires_at {
                    Some(e) => println!("  expires:    {}", e.format("%Y-%m-%dT%H:%M:%SZ")),
                    None => println!("  expires:    never (until revoked or rotated)"),
                }
                if !k.allowed_networks.is_empty() {
                    println!("  networks:   {}", k.allowed_networks.join(" "));
                }
            }
            println!("REST API:     {}", c.endpoints.rest);
            println!("SOAP:         {} (WSDL {})", c.endpoints.soap, c.endpoints.wsdl);
            println!("OpenAPI:      {}", c.endpoints.openapi);
            println!("Store the API key now: it is shown only once. Send it as the X-API-Key header.");
            println!("The whole connection bundle (schemas, limits): --output json.");
        }
    }
    Ok(())
}

async fn add_user(cfg: &Config, a: AddUser) -> anyhow::Result<()> {
    let org_code =
        OrgCode::parse(&a.org_code).map_err(|e| anyhow::anyhow!("invalid --org-code: {}", e.detail))?;
    let req = etx_identity_core::NewUser {
        username: a.username,
        display_name: a.display_name,
        org_id: None,
        roles: a.roles,
        temporary_password: None,
    };
    let out = etxhub::add_user(cfg, &org_code, req).await?;
    let password = out
        .temporary_password
        .as_ref()
        .map(|p| p.as_str())
        .unwrap_or_default();
    match a.output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"user_id": out.user.id, "username": out.user.username.as_str(), "org_id": out.user.org_id, "roles": out.user.roles.names(), "temporary_password": password})
        ),
        Output::Text => {
            println!("user:               {} ({})", out.user.username, out.user.id);
            println!("roles:              {}", out.user.roles.names().join(", "));
            println!("temporary password: {password}");
            println!(
                "It is shown only once. At the first sign-in (POST /api/v1/auth/login) the person must change it and enrol a TOTP second factor."
            );
        }
    }
    Ok(())
}

async fn rotate_keys(cfg: &Config) -> anyhow::Result<()> {
    let r = etxhub::rotate_keys(cfg).await?;
    println!(
        "re-wrapped {} data key(s) under master key {}",
        r.rewrapped, r.master_key_id
    );
    println!(
        "new data key {} created; running processes create their own on restart",
        r.new_data_key
    );
    Ok(())
}
