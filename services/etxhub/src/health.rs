//! Health endpoints for orchestrators: `/healthz` (the process is alive) and `/readyz` (its
//! database and queue answer; 503 with the failing component otherwise).

use actix_web::{HttpResponse, web};
use etx_queue::Queue;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// What `/readyz` checks.
#[derive(Debug, Default)]
pub struct Readiness {
    db: Option<DatabaseConnection>,
    queue: Option<Arc<dyn Queue>>,
}

impl Readiness {
    /// Checks the database.
    pub fn add_database(&mut self, db: DatabaseConnection) {
        self.db = Some(db);
    }

    /// Checks the queue.
    pub fn add_queue(&mut self, q: Arc<dyn Queue>) {
        self.queue = Some(q);
    }
}

/// Liveness.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Readiness: every dependency answers within 2 s.
pub async fn readyz(r: web::Data<Readiness>) -> HttpResponse {
    let limit = Duration::from_secs(2);
    let mut checks = serde_json::Map::new();
    let mut ok = true;
    if let Some(db) = &r.db {
        let up = matches!(
            tokio::time::timeout(limit, db.execute_unprepared("SELECT 1")).await,
            Ok(Ok(_))
        );
        ok &= up;
        checks.insert("database".into(), json!(if up { "ok" } else { "down" }));
    }
    if let Some(q) = &r.queue {
        // The outbox keeps accepted data safe while the queue is down, so a queue outage is
        // reported but does not make the process unready.
        let up = matches!(tokio::time::timeout(limit, q.ping()).await, Ok(Ok(())));
        checks.insert("queue".into(), json!(if up { "ok" } else { "degraded" }));
    }
    let body = json!({"status": if ok { "ready" } else { "not_ready" }, "checks": checks});
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
