//! Background jobs of the audit service: a small periodic-task handle, and the overdue scan
//! of the vulnerability register (R-SEC-8). The purge job is in [`mod@crate::purge`].

use crate::store::SeaFindingStore;
use chrono::Utc;
use etx_audit_core::{NoopSink, SecurityEvents, Vulnerabilities};
use sea_orm::DatabaseConnection;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A periodic task: runs at once, then every period, until stopped.
#[derive(Debug)]
pub struct BackgroundJob {
    name: &'static str,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl BackgroundJob {
    /// Spawns `run` now and then every `every` (a run that overlaps the next tick delays it).
    pub fn every<F, Fut>(name: &'static str, every: Duration, run: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = tick.tick() => run().await,
                }
            }
            tracing::debug!(job = name, "background job stopped");
        });
        Self {
            name,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// The job's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Stops the job (a run in progress finishes first) and waits for it.
    pub async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

/// Runs the overdue scan of the vulnerability register now and then every `every` (hourly
/// is plenty: each finding gets at most one event per day, see
/// [`etx_audit_core::Finding::needs_overdue_notice`]); events go to `events` (the outbox in
/// production, see [`crate::events::OutboxSecurityEvents`]).
pub fn spawn_overdue_scan(
    db: DatabaseConnection,
    events: Arc<dyn SecurityEvents>,
    every: Duration,
) -> BackgroundJob {
    let register = Arc::new(Vulnerabilities::new(SeaFindingStore::new(db), Arc::new(NoopSink)));
    BackgroundJob::every("vulnerability-overdue-scan", every, move || {
        let (register, events) = (register.clone(), events.clone());
        async move {
            match register.scan_overdue(events.as_ref(), Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(events = n, "overdue vulnerability events emitted"),
                Err(e) => tracing::error!(error = %e, "overdue scan failed; will retry at the next run"),
            }
        }
    })
}
