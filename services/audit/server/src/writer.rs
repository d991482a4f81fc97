//! The audit log's writer (R-SEC-9): one task per process takes entries from a bounded
//! channel and appends them in batches (group commit), each batch in one transaction that
//! extends the hash chain.
//!
//! * **Never slows a request.** [`AuditWriter::record`] is a `try_send`: when the channel is
//!   full (the database is slow or down), the entry is dropped and counted, a warning is
//!   logged once per overload episode, and as soon as the writer can write again the loss is
//!   itself recorded as a `security` entry (`audit.entries_lost`, with the number lost).
//! * **One chain across processes.** Every batch locks the head row (PostgreSQL
//!   `SELECT … FOR UPDATE`; SQLite's write transaction is exclusive), so gateway processes
//!   sharing a database interleave their batches into one dense, valid chain.
//! * **Nothing held is lost on shutdown.** [`AuditWriter::shutdown`] closes the channel, writes
//!   what is queued and returns when it is stored. A failed batch is retried with back-off
//!   (entries keep arriving meanwhile and are counted as lost once the channel fills up).

use crate::store;
use etx_audit_core::{AuditBody, AuditKind, AuditSink, ChainKey, NewAuditEntry};
use sea_orm::DatabaseConnection;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// The action of the entry recording lost entries.
pub const LOSS_ACTION: &str = "audit.entries_lost";

/// Settings of the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Entries that may wait in the channel (beyond it they are dropped and counted).
    pub capacity: usize,
    /// Most entries per transaction.
    pub max_batch: usize,
    /// Longest a batch waits for more entries after its first.
    pub max_wait: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            capacity: 20_000,
            max_batch: 500,
            max_wait: Duration::from_millis(50),
        }
    }
}

/// Counters shared by the sinks and the task.
#[derive(Debug, Default)]
struct Counters {
    /// Lost entries not yet recorded in the log.
    unrecorded_loss: AtomicU64,
    /// Lost entries since start.
    lost: AtomicU64,
    /// Entries stored since start (including loss entries).
    written: AtomicU64,
    /// Whether the current overload episode was logged.
    warned: AtomicBool,
}

/// What the writer did since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterStats {
    /// Entries stored.
    pub written: u64,
    /// Entries dropped (channel full, or writer stopped).
    pub lost: u64,
}

/// The process's audit writer; cloning it gives another handle to the same task. It is the
/// [`AuditSink`] to hand to the gateway and the services.
#[derive(Debug, Clone)]
pub struct AuditWriter {
    tx: mpsc::Sender<NewAuditEntry>,
    counters: Arc<Counters>,
    stop: tokio_util::sync::CancellationToken,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl AuditWriter {
    /// Starts the writer task on `db` (migrations must have run).
    pub fn start(db: DatabaseConnection, key: ChainKey, cfg: WriterConfig) -> Self {
        let (tx, rx) = mpsc::channel(cfg.capacity.max(1));
        let counters = Arc::new(Counters::default());
        let stop = tokio_util::sync::CancellationToken::new();
        let task = Task {
            db,
            key,
            cfg,
            counters: counters.clone(),
            stop: stop.clone(),
            last_head_log: None,
        };
        let handle = tokio::spawn(task.run(rx));
        Self {
            tx,
            counters,
            stop,
            task: Arc::new(Mutex::new(Some(handle))),
        }
    }

    /// This writer as a shareable sink.
    pub fn sink(&self) -> Arc<dyn AuditSink> {
        Arc::new(self.clone())
    }

    /// Counters since start.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            written: self.counters.written.load(Ordering::Relaxed),
            lost: self.counters.lost.load(Ordering::Relaxed),
        }
    }

    /// Stops taking entries, stores every entry already queued, and returns once they are
    /// stored (or given up on after repeated database failures, which is logged). Later
    /// calls return at once.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let handle = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle
            && let Err(e) = h.await
        {
            tracing::error!(error = %e, "the audit writer task failed");
        }
    }
}

impl AuditSink for AuditWriter {
    fn record(&self, entry: NewAuditEntry) {
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(e) => {
                self.counters.unrecorded_loss.fetch_add(1, Ordering::Relaxed);
                let total = self.counters.lost.fetch_add(1, Ordering::Relaxed) + 1;
                if !self.counters.warned.swap(true, Ordering::Relaxed) {
                    let why = match e {
                        mpsc::error::TrySendError::Full(_) => "the audit channel is full",
                        mpsc::error::TrySendError::Closed(_) => "the audit writer has stopped",
                    };
                    tracing::warn!(
                        lost_total = total,
                        "{why}: dropping audit entries (the loss will be recorded)"
                    );
                }
            }
        }
    }
}

struct Task {
    db: DatabaseConnection,
    key: ChainKey,
    cfg: WriterConfig,
    counters: Arc<Counters>,
    stop: tokio_util::sync::CancellationToken,
    last_head_log: Option<Instant>,
}

/// How often an idle writer looks for losses to record.
const LOSS_CHECK: Duration = Duration::from_secs(1);
/// How often the head is logged at info level (an anchor kept outside the database).
const HEAD_LOG_EVERY: Duration = Duration::from_secs(60);
/// Attempts at a failing batch once shutting down.
const SHUTDOWN_ATTEMPTS: u32 = 3;

impl Task {
    async fn run(mut self, mut rx: mpsc::Receiver<NewAuditEntry>) {
        let mut batch: Vec<NewAuditEntry> = Vec::with_capacity(self.cfg.max_batch);
        loop {
            tokio::select! {
                biased;
                () = self.stop.cancelled() => break,
                got = rx.recv() => match got {
                    Some(e) => batch.push(e),
                    None => break,
                },
                () = tokio::time::sleep(LOSS_CHECK) => {}
            }
            if !batch.is_empty() {
                let until = Instant::now() + self.cfg.max_wait;
                while batch.len() < self.cfg.max_batch {
                    match tokio::time::timeout_at(until, rx.recv()).await {
                        Ok(Some(e)) => batch.push(e),
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            self.commit(std::mem::take(&mut batch), false).await;
        }
        // Shutdown: refuse new entries, store what is queued.
        rx.close();
        while let Some(e) = rx.recv().await {
            batch.push(e);
            if batch.len() >= self.cfg.max_batch {
                self.commit(std::mem::take(&mut batch), true).await;
            }
        }
        self.commit(batch, true).await;
        let s = self.counters.written.load(Ordering::Relaxed);
        tracing::info!(written = s, "audit writer stopped");
    }

    /// Stores `batch`, plus the record of any loss; retries with back-off.
    async fn commit(&mut self, mut batch: Vec<NewAuditEntry>, stopping: bool) {
        let lost = self.counters.unrecorded_loss.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let mut e = NewAuditEntry::new(AuditKind::Security, "system:audit");
            e.action = Some(LOSS_ACTION.to_owned());
            e.detail.insert("lost".into(), lost.into());
            e.detail
                .insert("reason".into(), "the audit channel was full".into());
            batch.push(e);
        }
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let bodies: Vec<AuditBody> = batch.into_iter().map(AuditBody::from_new).collect();
        let mut delay = Duration::from_millis(100);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match store::append(&self.db, &self.key, bodies.clone()).await {
                Ok(end) => {
                    self.counters.written.fetch_add(n, Ordering::Relaxed);
                    if lost > 0 {
                        self.counters.warned.store(false, Ordering::Relaxed);
                        tracing::warn!(lost, seq = end.seq, "recorded the loss of audit entries");
                    }
                    let due = self.last_head_log.is_none_or(|t| t.elapsed() >= HEAD_LOG_EVERY);
                    if due || stopping {
                        self.last_head_log = Some(Instant::now());
                        tracing::info!(seq = end.seq, hash = %hex::encode(end.hash), "audit head");
                    }
                    return;
                }
                Err(e) if (stopping || self.stop.is_cancelled()) && attempt >= SHUTDOWN_ATTEMPTS => {
                    self.counters.lost.fetch_add(n, Ordering::Relaxed);
                    tracing::error!(error = %e, entries = n, "audit entries could not be stored before shutdown");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, entries = n, attempt, "audit batch failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
