//! Security events through the transactional outbox (stream `events.security`): an event is
//! durable once [`OutboxSecurityEvents::emit`] returns, and reaches the queue even if the
//! queue is down now (the relay publishes it later).

use async_trait::async_trait;
use etx_audit_core::{EventError, SecurityEvent, SecurityEvents, Severity};
use etx_domain::Priority;
use etx_storage::{OutboxEntry, RelayHandle, insert_outbox};
use sea_orm::DatabaseConnection;

/// The stream security events go to.
pub const SECURITY_STREAM: &str = "events.security";

/// [`SecurityEvents`] over the outbox of the audit service's database.
#[derive(Debug, Clone)]
pub struct OutboxSecurityEvents {
    db: DatabaseConnection,
    relay: Option<RelayHandle>,
}

impl OutboxSecurityEvents {
    /// Events written to `db`'s outbox; `relay` (if given) is woken after each.
    pub fn new(db: DatabaseConnection, relay: Option<RelayHandle>) -> Self {
        Self { db, relay }
    }
}

/// The outbox row of an event: keyed by the event's deduplication key, headers `kind` and
/// `severity`, body the event as JSON; critical and high events go first.
pub fn outbox_entry(e: &SecurityEvent) -> Result<OutboxEntry, serde_json::Error> {
    Ok(OutboxEntry {
        stream: SECURITY_STREAM.to_owned(),
        key: e.key.clone(),
        priority: match e.severity {
            Severity::Critical | Severity::High => Priority::High,
            Severity::Medium | Severity::Low => Priority::Normal,
        },
        headers: [
            ("kind".to_owned(), e.kind.clone()),
            ("severity".to_owned(), e.severity.as_str().to_owned()),
        ]
        .into_iter()
        .collect(),
        body: serde_json::to_vec(e)?,
    })
}

#[async_trait]
impl SecurityEvents for OutboxSecurityEvents {
    async fn emit(&self, event: SecurityEvent) -> Result<(), EventError> {
        let entry = outbox_entry(&event).map_err(|e| EventError(e.into()))?;
        // One statement: atomic on its own.
        insert_outbox(&self.db, vec![entry])
            .await
            .map_err(|e| EventError(e.into()))?;
        if let Some(r) = &self.relay {
            r.notify();
        }
        Ok(())
    }
}
