//! The transactional outbox (R-AVAIL, DESIGN.md §1): rows committed with the state change are
//! published in priority order and removed only once the queue has them; a rolled-back
//! transaction publishes nothing; a queue outage keeps the rows until it ends.
#![allow(clippy::unwrap_used)]

use etx_domain::Priority;
use etx_queue::{EmbeddedQueue, Queue, RedisQueue};
use etx_storage::testing::{TestDb, redis_url};
use etx_storage::{OutboxEntry, OutboxMigration, OutboxRelay, insert_outbox};
use sea_orm::{DatabaseConnection, TransactionTrait};
use sea_orm_migration::{MigrationTrait, SchemaManager};
use std::sync::Arc;
use std::time::Duration;

async fn setup(backend: &str) -> (TestDb, DatabaseConnection) {
    let tdb = TestDb::of(backend).await;
    let db = tdb.connect().await;
    OutboxMigration.up(&SchemaManager::new(&db)).await.unwrap();
    (tdb, db)
}

fn entry(key: &str, priority: Priority) -> OutboxEntry {
    OutboxEntry {
        stream: "records.received".into(),
        key: key.into(),
        priority,
        headers: Default::default(),
        body: format!("{{\"record_id\":\"{key}\"}}").into_bytes(),
    }
}

async fn queue_for(backend: &str, db: &DatabaseConnection) -> Arc<dyn Queue> {
    if backend == "postgres" {
        let prefix = format!("etxtest:{}:", uuid::Uuid::now_v7().simple());
        Arc::new(RedisQueue::connect(&redis_url(), &prefix).unwrap())
    } else {
        let q = EmbeddedQueue::new(db.clone());
        q.migrate().await.unwrap();
        Arc::new(q)
    }
}

async fn committed_rows_are_published_in_priority_order_and_removed(backend: &str) {
    let (tdb, db) = setup(backend).await;
    let queue = queue_for(backend, &db).await;
    queue.ensure_group("records.received", "test").await.unwrap();
    let txn = db.begin().await.unwrap();
    insert_outbox(
        &txn,
        vec![
            entry("a", Priority::Low),
            entry("b", Priority::High),
            entry("c", Priority::Normal),
        ],
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();

    let relay = OutboxRelay::new(db.clone(), queue.clone());
    assert_eq!(relay.backlog().await.unwrap(), 3);
    assert_eq!(relay.publish_once().await.unwrap(), 3);
    assert_eq!(relay.backlog().await.unwrap(), 0);
    let got = queue
        .consume("records.received", "test", "c1", 10, Duration::from_millis(200))
        .await
        .unwrap();
    let keys: Vec<&str> = got.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["b", "c", "a"]);
    let _ = tdb.cleanup().await;
}

async fn a_rolled_back_transaction_publishes_nothing(backend: &str) {
    let (tdb, db) = setup(backend).await;
    let queue = queue_for(backend, &db).await;
    let txn = db.begin().await.unwrap();
    insert_outbox(&txn, vec![entry("x", Priority::Normal)])
        .await
        .unwrap();
    txn.rollback().await.unwrap();
    let relay = OutboxRelay::new(db.clone(), queue);
    assert_eq!(relay.publish_once().await.unwrap(), 0);
    let _ = tdb.cleanup().await;
}

async fn rows_wait_while_the_queue_is_down_and_drain_afterwards(backend: &str) {
    let (tdb, db) = setup(backend).await;
    let txn = db.begin().await.unwrap();
    insert_outbox(
        &txn,
        vec![entry("k1", Priority::Normal), entry("k2", Priority::Normal)],
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    let down: Arc<dyn Queue> = Arc::new(RedisQueue::connect("redis://127.0.0.1:1", "etxtest:down:").unwrap());
    let relay = OutboxRelay::new(db.clone(), down);
    assert!(relay.publish_once().await.is_err());
    assert_eq!(
        relay.backlog().await.unwrap(),
        2,
        "nothing is lost while the queue is down"
    );

    let queue = queue_for(backend, &db).await;
    queue.ensure_group("records.received", "test").await.unwrap();
    let (handle, task) = OutboxRelay::new(db.clone(), queue.clone()).spawn(Duration::from_millis(20));
    let mut got = Vec::new();
    for _ in 0..100 {
        got.extend(
            queue
                .consume("records.received", "test", "c1", 10, Duration::from_millis(50))
                .await
                .unwrap(),
        );
        if got.len() >= 2 {
            break;
        }
    }
    handle.stop();
    task.await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(OutboxRelay::new(db.clone(), queue).backlog().await.unwrap(), 0);
    let _ = tdb.cleanup().await;
}

macro_rules! both {
    ($($name:ident),*) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name("sqlite").await } )* }
        mod postgres_redis { $( #[tokio::test] async fn $name() { super::$name("postgres").await } )* }
    };
}

both!(
    committed_rows_are_published_in_priority_order_and_removed,
    a_rolled_back_transaction_publishes_nothing,
    rows_wait_while_the_queue_is_down_and_drain_afterwards
);
