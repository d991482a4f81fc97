//! Connecting to the database named by a URL: `sqlite://PATH` (created if missing, WAL,
//! `synchronous=FULL` so a commit survives power loss) or `postgres://…`.

use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use std::time::Duration;

/// Which engine a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file (all-in-one).
    Sqlite,
    /// PostgreSQL (distributed).
    Postgres,
}

impl Backend {
    /// The backend a URL names, or an error for anything else.
    pub fn of_url(url: &str) -> Result<Self, DbErr> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(DbErr::Custom(
                "database URL must start with sqlite: or postgres://".into(),
            ))
        }
    }
}

/// Opens a pool. `max_connections` applies to PostgreSQL; SQLite gets a small pool (one writer
/// at a time is SQLite's rule anyway; readers proceed in parallel under WAL).
pub async fn connect(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let backend = Backend::of_url(url)?;
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10));
    match backend {
        Backend::Sqlite => {
            opts.max_connections(max_connections.clamp(1, 8))
                .min_connections(1);
            opts.map_sqlx_sqlite_opts(|o| {
                o.create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true)
            });
        }
        Backend::Postgres => {
            opts.max_connections(max_connections.max(1)).min_connections(1);
        }
    }
    Database::connect(opts).await
}

/// Whether a database error is a unique-constraint violation (both engines).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// Begins a transaction that will write. On SQLite it is `BEGIN IMMEDIATE`, so that it takes
/// the write lock up front and waits (busy timeout) instead of failing with `SQLITE_BUSY` when
/// it first reads and another writer commits meanwhile; on PostgreSQL a plain `BEGIN`.
pub async fn begin_write(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction, DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..Default::default()
    })
    .await
}

/// Key of the PostgreSQL advisory lock that serialises schema migrations across processes.
const MIGRATION_LOCK_KEY: i64 = 0x6574_7868_7562; // "etxhub"

/// Runs `migrate` while holding a PostgreSQL advisory lock, so that processes starting together
/// on one database (identity and ingestion, several replicas, the migrate job) apply their
/// migrations one after another instead of racing on the same `CREATE TABLE IF NOT EXISTS`
/// (which PostgreSQL answers with a unique violation on its catalogue). The lock is held by a
/// transaction of its own and released when it ends; the migrations run on other connections of
/// the pool. On SQLite `migrate` simply runs.
pub async fn with_migration_lock<T, F>(db: &DatabaseConnection, migrate: F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    use sea_orm::{ConnectionTrait, Statement, TransactionTrait};
    if db.get_database_backend() != sea_orm::DatabaseBackend::Postgres {
        return migrate.await;
    }
    let lock = db.begin().await?;
    lock.execute_raw(Statement::from_string(
        sea_orm::DatabaseBackend::Postgres,
        format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"),
    ))
    .await?;
    let out = migrate.await;
    lock.commit().await?;
    out
}
