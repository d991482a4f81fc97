//! Reconciliation, pure part (R-REC data synchronisation, R-DATA-3 provenance; issue 5 §4–5):
//! check, cross-match and merge the masked records of many sources into canonical records
//! without duplicates, and put what cannot be merged in front of an operator. No I/O here: the
//! server crate (`etx-reconciliation`, to come) consumes `records.masked`, implements the
//! [`ports`] on SQLite/PostgreSQL and publishes `records.accepted` / `records.conflicts`.
//!
//! * [`record`] — the input: an [`IncomingRecord`] (envelope, masked payload, keyed-hash
//!   [`MatchTokens`] of identifiers that arrived raw).
//! * [`categories`] — what is read from each category's payload ([`RecordView`]): natural key,
//!   fact key, blocking keys, measures, fuzzy fields; one module per category documents its
//!   choices.
//! * [`keys`] — [`SourceKey`] (one organisation's statement), [`FactKey`] (the same fact from
//!   any organisation), [`BlockingKey`] (worth a fuzzy comparison).
//! * [`normalise`], [`similarity`], [`fuzzy`] — Vietnamese folding (`Sở Tư pháp Hà Nội` =
//!   `So Tu Phap Ha Noi`), Jaro-Winkler and token-set similarity, weighted fuzzy [`score`].
//! * [`config`] — [`ReconcileConfig`]: [`Tolerance`]s per category and indicator, the
//!   [`MergeRule`], [`FuzzyConfig`], the authority ranking.
//! * [`canonical`] — [`CanonicalRecord`] with its [`Contribution`]s (provenance), stable ids,
//!   [`merge`](canonical::merge) keeping the older id.
//! * [`engine`] — [`Reconciler`]: [`Decision`] = duplicate, revision, superseded, new canonical,
//!   merge, conflict or held; and conflict resolution.
//! * [`conflict`] — [`Conflict`], [`ResolutionChoice`] (choose, merge, reject),
//!   [`RejectedPair`].
//! * [`period`] — [`PeriodApproval`]: open → approved (read-only) → reopened (with a reason).
//! * [`completeness`](mod@completeness) — expected / received / late / missing per organisation and period.
//! * [`ports`], [`service`], [`memory`] — the storage contracts, the use cases over them, and
//!   an in-memory reference implementation (its executable contract: the `contract` module,
//!   feature `contract`).
//! * [`inputs`] — [`MaskedSource`], where the server reads the masked records it reconciles.
//!
//! The rules, per category, are listed in `README.md` beside this crate.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use etx_domain::{Category, Form, OrgId, OrgKind, Period, ReceiptId, RecordId, SchemaVersion, SystemId};
//! use etx_reconciliation_core::{Context, Decision, IncomingRecord, MatchTokens, ReconcileConfig, Reconciler, SourceRef};
//!
//! let engine = Reconciler::new(ReconcileConfig::default())?;
//! let record = |org_kind, payload: serde_json::Value, day| {
//!     let tokens = MatchTokens::new();
//!     IncomingRecord {
//!         record_id: RecordId::new(),
//!         source: SourceRef { org_id: OrgId::new(), org_kind, system_id: SystemId::new(), receipt_id: ReceiptId::new() },
//!         category: Category::Statistics,
//!         schema_version: SchemaVersion::V1,
//!         period: Period::parse("2026-10").unwrap(),
//!         received_at: Utc.with_ymd_and_hms(2026, 11, day, 8, 0, 0).unwrap(),
//!         masking_policy_version: 1,
//!         form: Form::Raw,
//!         content: IncomingRecord::content_of(&payload, &tokens),
//!         payload,
//!         match_tokens: tokens,
//!         reporter_territory: None,
//!     }
//! };
//! let einvoices = |value| serde_json::json!({
//!     "indicator": "transaction_count", "transaction_kind": "e_invoice", "value": value,
//!     "unit": "count", "dimensions": {"province_code": "79"}
//! });
//! // The Ministry reports e-invoices for Thành phố Hồ Chí Minh …
//! let ministry = engine.prepare(record(OrgKind::Ministry, einvoices(182_456_320), 5))?;
//! let Decision::NewCanonical(first) = engine.decide(&ministry, &Context::default(), Utc::now())? else {
//!     panic!("a first report founds a canonical record");
//! };
//! // … and the city reports the same month within 0.5 %: one canonical record, two sources.
//! let city = engine.prepare(record(OrgKind::Province, einvoices(182_000_000), 6))?;
//! let candidates = [first.canonical.clone()];
//! let ctx = Context { candidates: &candidates, ..Context::default() };
//! let Decision::Merge(merged) = engine.decide(&city, &ctx, Utc::now())? else {
//!     panic!("agreeing sources merge");
//! };
//! assert_eq!(merged.canonical.id, first.canonical.id);
//! assert_eq!(merged.canonical.contributions.len(), 2);
//! assert_eq!(merged.canonical.payload["value"], 182_456_320); // the ministry's, by authority
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod canonical;
pub mod categories;
pub mod completeness;
pub mod config;
pub mod conflict;
#[cfg(feature = "contract")]
pub mod contract;
pub mod engine;
pub mod fuzzy;
pub mod ids;
pub mod inputs;
pub mod keys;
pub mod memory;
pub mod normalise;
pub mod period;
pub mod ports;
pub mod record;
pub mod service;
pub mod similarity;
#[cfg(test)]
mod test_support;

pub use canonical::{CanonicalRecord, Contribution, OperatorOverride, Role, Rule, ValueOrigin};
pub use categories::{Comparator, FuzzyValue, Measure, MeasureValue, RecordView, ViewError};
pub use completeness::{
    ExpectationStatus, ExpectedSubmission, OrgPeriodCompleteness, ReceivedSubmission, SubmissionStatus,
    completeness,
};
pub use config::{CategoryConfig, ConfigError, FuzzyConfig, MergeRule, ReconcileConfig, Tolerance};
pub use conflict::{
    Conflict, ConflictReason, ConflictStatus, FieldDifference, RejectedPair, Resolution, ResolutionChoice,
    ResolveError, Resolved,
};
pub use engine::{
    CandidateQuery, Context, DecideError, Decision, DecisionKind, DecisionSummary, Held, Linked, Prepared,
    Previous, Reconciler,
};
pub use fuzzy::{FuzzyScore, Score, Verdict, score};
pub use ids::{CanonicalId, ConflictId};
pub use inputs::{InputError, MaskedSource};
pub use keys::{BlockingKey, FactKey, KeySet, SourceKey};
pub use memory::MemoryStore;
pub use period::{ApprovalScope, PeriodApproval, PeriodError, PeriodKey, PeriodState, Reason};
pub use ports::{
    ConflictFilter, ConflictStore, DecisionMemory, PeriodApprovals, ReconciliationStore, SaveError,
    StoreError,
};
pub use record::{IncomingRecord, MatchToken, MatchTokens, ProvinceCode, RecordError, SourceRef};
pub use service::{
    BatchReconciled, PeriodChangeError, ReconcileError, Reconciled, ReconciliationService, Reopened,
    ResolveConflictError,
};
