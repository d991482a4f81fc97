//! What the API answers about canonical records and their contributions: the provenance of
//! every record a canonical record is made of (R-DATA-3) — organisation, system, receipt, form,
//! masking policy version, the reconciliation rule that linked it and its score — and where the
//! value came from. Values are the masked (analyst) payloads.

use chrono::{DateTime, Utc};
use etx_reconciliation_core::{CanonicalId, CanonicalRecord, Contribution, Role, ValueOrigin};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// One record's part in a canonical record (or a conflict's version), with its provenance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ContributionOut {
    /// The record.
    pub record_id: Uuid,
    /// The submitting organisation.
    pub org_id: Uuid,
    /// Its kind (`ministry`, `province`, …): it decides authority under `prefer_authority`.
    pub org_kind: String,
    /// The submitting system.
    pub system_id: Uuid,
    /// The receipt the submission was acknowledged with.
    pub receipt_id: Uuid,
    /// When ingestion received it.
    pub received_at: DateTime<Utc>,
    /// The form it was submitted in: `raw` or `masked`.
    pub form: String,
    /// Its schema version.
    #[schema(example = "1")]
    pub schema_version: String,
    /// The version of the masking policy its payload was masked with.
    pub masking_policy_version: u32,
    /// The digest of its content (`sha256:` and 64 hex digits).
    pub content_hash: String,
    /// The reconciliation rule that linked it: `new`, `new_after_rejection`,
    /// `source_duplicate`, `source_revision`, `source_superseded`, `fact_tolerance`,
    /// `fuzzy_match`, `operator_choose`, `operator_merge`.
    #[schema(example = "fact_tolerance")]
    pub rule: String,
    /// The similarity score in `[0, 1]`, for fuzzy and operator links.
    pub score: Option<f64>,
    /// The version of the reconciliation settings it was linked under.
    pub config_version: u32,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
    /// `current` (its source's statement in force: it makes the value), `duplicate` (a re-send
    /// of the current statement) or `superseded` (replaced by a revision).
    #[schema(example = "current")]
    pub role: String,
    /// The record it duplicates (`duplicate`) or that replaced it (`superseded`).
    pub role_record_id: Option<Uuid>,
    /// Its masked payload.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

impl From<&Contribution> for ContributionOut {
    fn from(c: &Contribution) -> Self {
        let (role, role_record_id) = match c.role {
            Role::Current => ("current", None),
            Role::Duplicate { of } => ("duplicate", Some(of.as_uuid())),
            Role::Superseded { by } => ("superseded", Some(by.as_uuid())),
        };
        Self {
            record_id: c.record_id.as_uuid(),
            org_id: c.source.org_id.as_uuid(),
            org_kind: c.source.org_kind.as_str().to_owned(),
            system_id: c.source.system_id.as_uuid(),
            receipt_id: c.source.receipt_id.as_uuid(),
            received_at: c.received_at,
            form: c.form.as_str().to_owned(),
            schema_version: c.schema_version.to_string(),
            masking_policy_version: c.masking_policy_version,
            content_hash: c.content.to_string(),
            rule: c.rule.as_str().to_owned(),
            score: c.score.map(|s| s.value()),
            config_version: c.config_version,
            linked_at: c.linked_at,
            role: role.to_owned(),
            role_record_id,
            payload: c.payload.clone(),
        }
    }
}

/// A source of a canonical record: an organisation and system that contributed to it.
#[derive(Debug, Serialize, Deserialize, ToSchema, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceOut {
    /// The organisation.
    pub org_id: Uuid,
    /// Its kind.
    pub org_kind: String,
    /// The system.
    pub system_id: Uuid,
}

/// Where a canonical record's value came from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValueOriginOut {
    /// `rule` (a merge rule over the current contributions) or `operator` (an operator's
    /// resolution of a conflict).
    #[schema(example = "rule")]
    pub origin: String,
    /// The merge rule (`prefer_authority`, `mean`, `prefer_earliest`), for `rule`.
    pub rule: Option<String>,
    /// The contribution whose payload is the base of the value, for `rule`.
    pub base_record_id: Option<Uuid>,
    /// The operator (user id), for `operator`.
    pub by: Option<Uuid>,
    /// When the operator set it, for `operator`.
    pub at: Option<DateTime<Utc>>,
    /// The conflict the operator resolved, for `operator`.
    pub conflict_id: Option<Uuid>,
}

/// A canonical record (R-REC) with its full provenance (R-DATA-3).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CanonicalRecordOut {
    /// Its id: the id of its oldest contributing record.
    pub id: Uuid,
    /// When the id asked for was retired by a merge: the id of this record, into which it was
    /// merged (the answer is then this, the surviving record). `null` when the id asked for is
    /// this record's own, and in lists.
    pub merged_into: Option<Uuid>,
    /// Its category.
    pub category: String,
    /// Its reporting period.
    pub period: String,
    /// When its oldest record was received.
    pub created_at: DateTime<Utc>,
    /// Its version (+1 on every change).
    pub version: u64,
    /// Its value: the masked payload.
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    /// Where the value came from.
    pub value_origin: ValueOriginOut,
    /// The organisations and systems that contributed to it.
    pub sources: Vec<SourceOut>,
    /// Every contributing record, oldest first, with its provenance.
    pub contributions: Vec<ContributionOut>,
    /// Ids of canonical records merged into this one (they answer with this record).
    pub aliases: Vec<Uuid>,
}

impl CanonicalRecordOut {
    /// The answer for `c`, asked for as `asked` (an alias answers with the survivor).
    pub fn of(c: &CanonicalRecord, asked: Option<CanonicalId>) -> Self {
        let value_origin = match c.value_origin {
            ValueOrigin::Rule { rule, base } => ValueOriginOut {
                origin: "rule".into(),
                rule: Some(rule.as_str().to_owned()),
                base_record_id: Some(base.as_uuid()),
                by: None,
                at: None,
                conflict_id: None,
            },
            ValueOrigin::Operator { by } => ValueOriginOut {
                origin: "operator".into(),
                rule: None,
                base_record_id: None,
                by: Some(by.as_uuid()),
                at: c.operator_override.as_ref().map(|o| o.at),
                conflict_id: c.operator_override.as_ref().map(|o| o.conflict.as_uuid()),
            },
        };
        let mut sources: Vec<SourceOut> = c
            .contributions
            .iter()
            .map(|x| SourceOut {
                org_id: x.source.org_id.as_uuid(),
                org_kind: x.source.org_kind.as_str().to_owned(),
                system_id: x.source.system_id.as_uuid(),
            })
            .collect();
        sources.sort();
        sources.dedup();
        Self {
            id: c.id.as_uuid(),
            merged_into: asked.filter(|a| *a != c.id).map(|_| c.id.as_uuid()),
            category: c.category.as_str().to_owned(),
            period: c.period.to_string(),
            created_at: c.created_at,
            version: c.version,
            value: c.payload.clone(),
            value_origin,
            sources,
            contributions: c.contributions.iter().map(ContributionOut::from).collect(),
            aliases: c.aliases.iter().map(CanonicalId::as_uuid).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use etx_domain::{Category, Form, OrgId, OrgKind, Period, ReceiptId, RecordId, SchemaVersion, SystemId};
    use etx_reconciliation_core::{
        Contribution, IncomingRecord, KeySet, MatchTokens, ReconcileConfig, Rule, SourceKey, SourceRef,
    };

    fn contribution(org_kind: OrgKind, value: i64, day: u32) -> Contribution {
        let tokens = MatchTokens::new();
        let payload = serde_json::json!({"indicator": "transaction_count", "value": value});
        let record = IncomingRecord {
            record_id: RecordId::new(),
            source: SourceRef {
                org_id: OrgId::new(),
                org_kind,
                system_id: SystemId::new(),
                receipt_id: ReceiptId::new(),
            },
            category: Category::Statistics,
            schema_version: SchemaVersion::V1,
            period: Period::parse("2026-10").unwrap(),
            received_at: Utc.with_ymd_and_hms(2026, 11, day, 8, 0, 0).unwrap(),
            masking_policy_version: 3,
            form: Form::Raw,
            content: IncomingRecord::content_of(&payload, &tokens),
            payload,
            match_tokens: tokens,
            reporter_territory: None,
        };
        let keys = KeySet {
            source: SourceKey::parse(&"ab".repeat(32)).unwrap(),
            fact: None,
            blocking: vec![],
        };
        Contribution::of(&record, keys, Rule::New, None, 1, Utc::now())
    }

    #[test]
    fn a_canonical_record_shows_every_contribution_with_its_provenance() {
        let config = ReconcileConfig::default();
        let first = contribution(OrgKind::Ministry, 10, 5);
        let c = CanonicalRecord::found(
            Category::Statistics,
            Period::parse("2026-10").unwrap(),
            first.clone(),
            &config,
        );
        let out = CanonicalRecordOut::of(&c, Some(c.id));
        assert_eq!(out.id, first.record_id.as_uuid());
        assert_eq!(out.merged_into, None, "asked by its own id");
        assert_eq!(out.contributions.len(), 1);
        let p = &out.contributions[0];
        assert_eq!(p.receipt_id, first.source.receipt_id.as_uuid());
        assert_eq!(
            (
                p.masking_policy_version,
                p.rule.as_str(),
                p.role.as_str(),
                p.org_kind.as_str()
            ),
            (3, "new", "current", "ministry")
        );
        assert_eq!(out.value_origin.origin, "rule");
        assert_eq!(out.value_origin.base_record_id, Some(first.record_id.as_uuid()));
        assert_eq!(out.sources.len(), 1);
        assert_eq!(out.value["value"], 10);
        // Asked for by an id merged into it: the survivor answers, saying so.
        let retired = CanonicalId::from_uuid(Uuid::now_v7());
        assert_eq!(
            CanonicalRecordOut::of(&c, Some(retired)).merged_into,
            Some(c.id.as_uuid())
        );
    }
}
