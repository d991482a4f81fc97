//! Conflicts for an operator (R-REC, issue 5 §4): an incoming record that may be, or is, the
//! same fact or entity as a canonical record but cannot be merged automatically — its values
//! differ beyond tolerance, or the fuzzy score is only "possible". A conflict shows every
//! version with its provenance (R-DATA-3), the reason and the differences.
//!
//! ```text
//!   open ──resolve(choose | merge | reject, by operator)──▶ resolved
//! ```
//!
//! A conflict is resolved once; resolving it again is [`ResolveError::AlreadyResolved`]. The
//! resolution itself is computed by [`Reconciler::resolve`](crate::engine::Reconciler::resolve).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use etx_domain::{Category, Period, RecordId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{CanonicalRecord, Contribution};
use crate::config::Tolerance;
use crate::fuzzy::FuzzyScore;
use crate::ids::{CanonicalId, ConflictId};
use crate::keys::SourceKey;
use crate::record::SourceRef;

/// Why a record was put in front of an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictReason {
    /// Another source reports the same fact or entity with values beyond tolerance.
    ValuesDisagree,
    /// A source's revision disagrees with the other sources of its canonical record.
    RevisionDisagrees,
    /// The fuzzy score lies between the possible and the match threshold.
    PossibleMatch,
    /// A fuzzy match with a canonical record that already holds a current record of the same
    /// organisation under another key: perhaps a renamed re-send, perhaps a second entity.
    SameSourceOtherKey,
}

impl ConflictReason {
    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ValuesDisagree => "values_disagree",
            Self::RevisionDisagrees => "revision_disagrees",
            Self::PossibleMatch => "possible_match",
            Self::SameSourceOtherKey => "same_source_other_key",
        }
    }
}

/// One field on which the incoming record and a version of the canonical record differ.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldDifference {
    /// The measure (`value`, `status`, `failure_reasons/timeout/count`, …).
    pub field: String,
    /// The incoming record's value.
    pub incoming: Value,
    /// The other version's value.
    pub existing: Value,
    /// The version it was compared with; `None` for the operator's override value.
    pub against: Option<RecordId>,
    /// The tolerance that was exceeded (numeric measures).
    pub tolerance: Option<Tolerance>,
}

/// One version shown in a conflict, with its provenance (R-DATA-3).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Version<'a> {
    /// The record.
    pub record_id: RecordId,
    /// Its source.
    pub source: SourceRef,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// The masking policy version of its payload.
    pub masking_policy_version: u32,
    /// Its masked payload.
    pub payload: &'a Value,
    /// Whether it is the incoming record (the others are the canonical record's current ones).
    pub incoming: bool,
}

/// How an operator resolves a conflict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum ResolutionChoice {
    /// The version of `record` is right: the incoming record joins the canonical record and
    /// the chosen version's payload becomes its value.
    Choose {
        /// The record whose version is chosen (the incoming one or a current one).
        record: RecordId,
    },
    /// The incoming record joins the canonical record, whose value becomes its current value
    /// with these fields (JSON pointer → value) set.
    Merge {
        /// The fields the operator sets.
        values: BTreeMap<String, Value>,
    },
    /// They are not the same: the incoming record founds its own canonical record, and the
    /// pair is remembered so that its source's records are never merged into that canonical
    /// record again ([`RejectedPair`]). Not allowed for [`ConflictReason::RevisionDisagrees`]:
    /// a source's revision cannot be split from the source's own earlier statement.
    Reject,
}

impl ResolutionChoice {
    /// The wire code.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Choose { .. } => "choose",
            Self::Merge { .. } => "merge",
            Self::Reject => "reject",
        }
    }
}

/// A conflict's resolution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// What was decided.
    pub choice: ResolutionChoice,
    /// The operator.
    pub by: UserId,
    /// When.
    pub at: DateTime<Utc>,
    /// The operator's note, if any.
    pub note: Option<String>,
}

/// A conflict's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConflictStatus {
    /// Waiting for an operator.
    Open,
    /// Resolved.
    Resolved(Resolution),
}

/// A remembered rejection (R-REC "decisions remembered so a rejected pair is never merged
/// again"): records of `source_key` (or the record itself) are never merged into `canonical`
/// or any canonical record it is merged into later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedPair {
    /// The rejected record.
    pub record_id: RecordId,
    /// Its source key: later revisions and re-sends of the same source are rejected too.
    pub source_key: SourceKey,
    /// The canonical record it must not join.
    pub canonical: CanonicalId,
    /// The conflict where it was decided.
    pub conflict: ConflictId,
    /// The operator.
    pub by: UserId,
    /// When.
    pub at: DateTime<Utc>,
}

impl RejectedPair {
    /// Whether this rejection forbids merging a record (`record`, `source_key`) into
    /// `candidate`.
    pub fn forbids(&self, record: RecordId, source_key: SourceKey, candidate: &CanonicalRecord) -> bool {
        (self.record_id == record || self.source_key == source_key) && candidate.answers_to(self.canonical)
    }
}

/// A conflict (R-REC): the incoming record, the canonical record it was compared with, why they
/// were not merged, and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    /// Its id (derived from the incoming record's id).
    pub id: ConflictId,
    /// The category.
    pub category: Category,
    /// The period.
    pub period: Period,
    /// Why.
    pub reason: ConflictReason,
    /// The incoming record, as it would be linked.
    pub incoming: Contribution,
    /// The canonical record it was compared with, as it was then.
    pub target: CanonicalRecord,
    /// The differences found (empty for a possible match with equal measures).
    pub differences: Vec<FieldDifference>,
    /// The fuzzy comparison, for fuzzy conflicts.
    pub fuzzy: Option<FuzzyScore>,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// Its state.
    pub status: ConflictStatus,
}

impl Conflict {
    /// Whether it waits for an operator.
    pub fn is_open(&self) -> bool {
        self.status == ConflictStatus::Open
    }

    /// Every version: the incoming record first, then the target's current contributions,
    /// oldest first.
    pub fn versions(&self) -> Vec<Version<'_>> {
        fn version(c: &Contribution, incoming: bool) -> Version<'_> {
            Version {
                record_id: c.record_id,
                source: c.source,
                received_at: c.received_at,
                masking_policy_version: c.masking_policy_version,
                payload: &c.payload,
                incoming,
            }
        }
        std::iter::once(version(&self.incoming, true))
            .chain(self.target.current().map(|c| version(c, false)))
            .collect()
    }
}

/// Why a resolution is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The conflict was already resolved.
    #[error("the conflict is already resolved")]
    AlreadyResolved,
    /// The chosen record is neither the incoming record nor a current version.
    #[error("record {0} is not a version of this conflict")]
    UnknownVersion(RecordId),
    /// A merge sets no field.
    #[error("a merge must set at least one field")]
    EmptyMerge,
    /// A merge names something that is not a JSON pointer.
    #[error("`{0}` is not a JSON pointer")]
    InvalidPointer(String),
    /// A merge sets a field that no version has.
    #[error("no version has a field `{0}`")]
    UnknownField(String),
    /// Rejecting is not allowed for this reason.
    #[error("a {0} conflict cannot be rejected; choose or merge")]
    RejectNotAllowed(&'static str),
    /// The canonical record passed is not the conflict's target (nor what it was merged into).
    #[error("canonical record {0} is not this conflict's target")]
    TargetMismatch(CanonicalId),
    /// The period is approved (read-only).
    #[error("the period is approved and read-only")]
    PeriodApproved,
    /// The note is longer than 2000 characters.
    #[error("the note is longer than 2000 characters")]
    NoteTooLong,
}

/// What resolving a conflict produces, to store in one transaction (see
/// [`ConflictStore::save_resolution`](crate::ports::ConflictStore::save_resolution)).
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    /// The conflict, now resolved.
    pub conflict: Conflict,
    /// The canonical record the incoming record is now part of.
    pub canonical: CanonicalRecord,
    /// The stored canonical record `canonical` replaces (the live target), with the version it
    /// must still have; `None` when a rejection founds a new canonical record.
    pub previous: Option<crate::engine::Previous>,
    /// The rejection to remember, for [`ResolutionChoice::Reject`].
    pub rejection: Option<RejectedPair>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolution_choices_have_stable_codes_and_serialise_tagged() {
        assert_eq!(ResolutionChoice::Reject.as_str(), "reject");
        let c = ResolutionChoice::Choose {
            record: RecordId::new(),
        };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["action"], "choose");
        assert_eq!(serde_json::from_value::<ResolutionChoice>(json).unwrap(), c);
        assert_eq!(
            ConflictReason::SameSourceOtherKey.as_str(),
            "same_source_other_key"
        );
    }
}
