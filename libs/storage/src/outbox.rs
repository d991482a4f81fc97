//! The transactional outbox (DESIGN.md §1, R-AVAIL): a service writes its state change and an
//! outbox row in one transaction; the relay publishes rows to the queue and deletes them only
//! after the queue has stored them. If the queue is down, rows wait and drain later, so an
//! acknowledged record is never lost. Delivery is at-least-once; consumers dedupe by key.

use etx_domain::Priority;
use etx_queue::{Headers, OutMessage, Queue, QueueError};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Index, Table};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, QueryOrder, QuerySelect, Set, TransactionTrait,
    sea_query::LockBehavior, sea_query::LockType,
};
use sea_orm_migration::{MigrationName, MigrationTrait, SchemaManager};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The outbox table.
pub mod entity {
    use sea_orm::entity::prelude::*;

    /// One message waiting to be published.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub stream: String,
        pub msg_key: String,
        pub priority: i16,
        pub headers: String,
        pub body: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A message to put in the outbox.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// Target stream, e.g. `records.received`.
    pub stream: String,
    /// The message key (record id): consumers dedupe by it.
    pub key: String,
    /// Queue priority (R-DATA-2).
    pub priority: Priority,
    /// Headers.
    pub headers: Headers,
    /// Body bytes (never clear personal data).
    pub body: Vec<u8>,
}

/// Inserts outbox rows inside the caller's transaction.
pub async fn insert_outbox<C: ConnectionTrait>(db: &C, entries: Vec<OutboxEntry>) -> Result<(), DbErr> {
    if entries.is_empty() {
        return Ok(());
    }
    let now = chrono::Utc::now();
    // Short statements on SQLite (sqlx binds its parameters by a linear name search).
    let chunk_rows = if db.get_database_backend() == sea_orm::DbBackend::Sqlite {
        64
    } else {
        1000
    };
    let mut models = entries.into_iter().map(|e| entity::ActiveModel {
        stream: Set(e.stream),
        msg_key: Set(e.key),
        priority: Set(i16::from(e.priority.rank())),
        headers: Set(serde_json::to_string(&e.headers).unwrap_or_else(|_| "{}".into())),
        body: Set(e.body),
        created_at: Set(now),
        ..Default::default()
    });
    loop {
        let chunk: Vec<_> = models.by_ref().take(chunk_rows).collect();
        if chunk.is_empty() {
            return Ok(());
        }
        entity::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
}

/// The migration that creates the outbox table; services include it in their migrator.
#[derive(Debug)]
pub struct OutboxMigration;

impl MigrationName for OutboxMigration {
    fn name(&self) -> &str {
        "m0001_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for OutboxMigration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use sea_orm::Schema;
        let schema = Schema::new(m.get_database_backend());
        let mut create = schema.create_table_from_entity(entity::Entity);
        m.create_table(create.if_not_exists().to_owned()).await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("outbox_by_priority")
                .table(entity::Entity)
                .col(entity::Column::Priority)
                .col(entity::Column::Id)
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(entity::Entity).to_owned()).await
    }
}

/// Publishes outbox rows to the queue.
#[derive(Debug, Clone)]
pub struct OutboxRelay {
    db: DatabaseConnection,
    queue: Arc<dyn Queue>,
    wake: Arc<Notify>,
    stop: CancellationToken,
    batch: u64,
}

/// A handle to wake the relay after a commit and to stop it.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    wake: Arc<Notify>,
    stop: CancellationToken,
}

impl RelayHandle {
    /// Wakes the relay (call after committing outbox rows).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    /// Asks the relay to drain what it can and stop.
    pub fn stop(&self) {
        self.stop.cancel();
        self.wake.notify_one();
    }
}

impl OutboxRelay {
    /// A relay over `db`'s outbox publishing to `queue`.
    pub fn new(db: DatabaseConnection, queue: Arc<dyn Queue>) -> Self {
        Self {
            db,
            queue,
            wake: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
            batch: 500,
        }
    }

    /// The handle of this relay, available before it is started (a store needs it to wake the
    /// relay, and the relay may only start once the outbox table exists).
    pub fn handle(&self) -> RelayHandle {
        RelayHandle {
            wake: self.wake.clone(),
            stop: self.stop.clone(),
        }
    }

    /// Publishes one batch: returns how many rows were published. On PostgreSQL the rows are
    /// locked with `SKIP LOCKED`, so several relays (one per ingestion instance) share the work.
    pub async fn publish_once(&self) -> Result<usize, RelayError> {
        let query = entity::Entity::find()
            .order_by_asc(entity::Column::Priority)
            .order_by_asc(entity::Column::Id)
            .limit(self.batch);
        if self.db.get_database_backend() != sea_orm::DbBackend::Postgres {
            // SQLite (all-in-one, one relay per process): no transaction is held while
            // publishing, because the embedded queue writes to the same file and SQLite allows
            // one writer. A crash between publish and delete republishes: consumers dedupe.
            let rows = query.all(&self.db).await?;
            if rows.is_empty() {
                return Ok(0);
            }
            self.publish_rows(&rows).await?;
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            entity::Entity::delete_many()
                .filter(entity::Column::Id.is_in(ids))
                .exec(&self.db)
                .await?;
            return Ok(rows.len());
        }
        let txn = self.db.begin().await?;
        let rows = query
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await?;
        if rows.is_empty() {
            txn.commit().await?;
            return Ok(0);
        }
        self.publish_rows(&rows).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        entity::Entity::delete_many()
            .filter(entity::Column::Id.is_in(ids))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(rows.len())
    }

    /// Publishes rows, one queue call per run of rows with the same stream.
    async fn publish_rows(&self, rows: &[entity::Model]) -> Result<(), QueueError> {
        let mut start = 0;
        while start < rows.len() {
            let stream = &rows[start].stream;
            let end = rows[start..]
                .iter()
                .position(|r| &r.stream != stream)
                .map_or(rows.len(), |p| start + p);
            let msgs: Vec<OutMessage> = rows[start..end]
                .iter()
                .map(|r| OutMessage {
                    key: r.msg_key.clone(),
                    priority: Priority::from_rank(u8::try_from(r.priority).unwrap_or(1)).unwrap_or_default(),
                    headers: serde_json::from_str(&r.headers).unwrap_or_default(),
                    body: r.body.clone(),
                })
                .collect();
            self.queue.publish(stream, &msgs).await?;
            start = end;
        }
        Ok(())
    }

    /// Rows still waiting.
    pub async fn backlog(&self) -> Result<u64, DbErr> {
        entity::Entity::find().count(&self.db).await
    }

    /// Starts the relay loop; returns a handle and the task. The loop publishes until the
    /// outbox is empty, then sleeps until woken or for `poll`; on queue errors it backs off.
    /// When stopped it makes a last attempt to drain before returning.
    pub fn spawn(self, poll: Duration) -> (RelayHandle, tokio::task::JoinHandle<()>) {
        let handle = self.handle();
        let stop = self.stop.clone();
        let task = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match self.publish_once().await {
                    Ok(n) if n > 0 => {
                        backoff = Duration::from_millis(100);
                        continue;
                    }
                    Ok(_) => {
                        if stop.is_cancelled() {
                            break;
                        }
                        tokio::select! {
                            () = self.wake.notified() => {}
                            () = tokio::time::sleep(poll) => {}
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "outbox relay cannot publish; rows stay in the outbox");
                        if stop.is_cancelled() {
                            break;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        (handle, task)
    }
}

/// Why a relay round failed; the rows stay in the outbox either way.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] DbErr),
    /// The queue refused or is down.
    #[error("queue: {0}")]
    Queue(#[from] QueueError),
}
