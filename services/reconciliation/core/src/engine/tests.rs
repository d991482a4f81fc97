//! The decision engine on Vietnamese example data: exact-key deduplication, cross-source
//! tolerance, fuzzy matching, rejections, held periods and conflict resolution (R-REC,
//! R-DATA-3).

use chrono::{DateTime, Utc};
use etx_domain::{Category, OrgKind, UserId};
use serde_json::json;

use super::*;
use crate::canonical::{Role, Rule, ValueOrigin};
use crate::config::{MergeRule, ReconcileConfig};
use crate::conflict::{ConflictReason, ResolutionChoice, ResolveError};
use crate::period::{ApprovalScope, PeriodApproval, PeriodKey};
use crate::record::{IncomingRecord, MatchTokens};
use crate::test_support::*;

fn engine() -> Reconciler {
    Reconciler::new(ReconcileConfig::default()).unwrap()
}

fn engine_with(f: impl FnOnce(&mut ReconcileConfig)) -> Reconciler {
    let mut c = ReconcileConfig::default();
    f(&mut c);
    Reconciler::new(c).unwrap()
}

/// Decides `record` against `candidates` with no rejections and no approvals.
fn decide(e: &Reconciler, record: &IncomingRecord, candidates: &[CanonicalRecord]) -> Decision {
    decide_with(e, record, candidates, &[], &[])
}

fn decide_with(
    e: &Reconciler,
    record: &IncomingRecord,
    candidates: &[CanonicalRecord],
    rejections: &[RejectedPair],
    approvals: &[PeriodApproval],
) -> Decision {
    let p = e.prepare(record.clone()).unwrap();
    let ctx = Context {
        candidates,
        rejections,
        approvals,
    };
    e.decide(&p, &ctx, now()).unwrap()
}

fn now() -> DateTime<Utc> {
    at(20, 0)
}

fn linked(d: Decision) -> Linked {
    match d {
        Decision::Duplicate(l)
        | Decision::Revision(l)
        | Decision::Superseded(l)
        | Decision::NewCanonical(l)
        | Decision::Merge(l) => *l,
        other => panic!("not a link: {other:?}"),
    }
}

fn conflict(d: Decision) -> Conflict {
    match d {
        Decision::Conflict(c) => *c,
        other => panic!("not a conflict: {other:?}"),
    }
}

/// Founds a canonical record from `record`.
fn founded(e: &Reconciler, record: &IncomingRecord) -> CanonicalRecord {
    let d = decide(e, record, &[]);
    assert_eq!(d.kind(), DecisionKind::NewCanonical);
    linked(d).canonical
}

// --- exact keys: one source ---------------------------------------------------------------

#[test]
fn a_first_record_founds_a_canonical_record_named_after_it() {
    let e = engine();
    let hcm = Org::new(OrgKind::Province);
    let r = stat(hcm, einvoices("79", 182_456_320.0), at(5, 8));
    let l = linked(decide(&e, &r, &[]));
    assert_eq!(l.rule, Rule::New);
    assert_eq!(l.previous, None);
    assert_eq!(l.canonical.id, CanonicalId::founded_by(r.record_id));
    assert_eq!(l.canonical.created_at, r.received_at);
    assert_eq!(l.canonical.version, 1);
    assert_eq!(l.canonical.payload, r.payload);
    // Provenance (R-DATA-3): source, system, receipt, masking policy, rule, when.
    let c = &l.canonical.contributions[0];
    assert_eq!(c.source, r.source);
    assert_eq!(
        (c.masking_policy_version, c.rule, c.linked_at),
        (1, Rule::New, now())
    );
    assert_eq!(c.role, Role::Current);
    assert_eq!(c.config_version, 1);
}

#[test]
fn the_same_content_from_the_same_source_is_a_duplicate() {
    let e = engine();
    let hcm = Org::new(OrgKind::Province);
    let first = stat(hcm, einvoices("79", 182_456_320.0), at(5, 8));
    let canonical = founded(&e, &first);
    // Re-sent in another batch: new record id, same content.
    let again = stat(hcm, einvoices("79", 182_456_320.0), at(6, 8));
    let d = decide(&e, &again, std::slice::from_ref(&canonical));
    assert_eq!(d.kind(), DecisionKind::Duplicate);
    let l = linked(d);
    assert_eq!(l.canonical.id, canonical.id);
    assert_eq!(
        l.previous,
        Some(Previous {
            id: canonical.id,
            version: 1
        })
    );
    assert_eq!(l.canonical.payload, canonical.payload, "nothing new");
    assert_eq!(
        l.canonical
            .contribution(again.record_id)
            .map(|c| (c.role, c.rule)),
        Some((Role::Duplicate { of: first.record_id }, Rule::SourceDuplicate))
    );
}

#[test]
fn new_content_for_the_same_key_is_a_revision_that_supersedes_the_old_one() {
    let e = engine();
    let hcm = Org::new(OrgKind::Province);
    let first = stat(hcm, einvoices("79", 182_456_320.0), at(5, 8));
    let canonical = founded(&e, &first);
    let corrected = stat(hcm, einvoices("79", 182_460_000.0), at(7, 8));
    let d = decide(&e, &corrected, std::slice::from_ref(&canonical));
    assert_eq!(d.kind(), DecisionKind::Revision);
    let l = linked(d);
    assert_eq!(l.canonical.payload["value"], json!(182_460_000.0));
    assert_eq!(
        l.canonical.contribution(first.record_id).map(|c| c.role),
        Some(Role::Superseded {
            by: corrected.record_id
        })
    );
    assert_eq!(l.canonical.id, canonical.id);
}

#[test]
fn a_late_older_revision_is_kept_but_changes_nothing_and_gives_the_canonical_its_id() {
    let e = engine();
    let hcm = Org::new(OrgKind::Province);
    let newer = stat(hcm, einvoices("79", 182_460_000.0), at(7, 8));
    let canonical = founded(&e, &newer);
    let older = stat(hcm, einvoices("79", 182_456_320.0), at(5, 8));
    let d = decide(&e, &older, std::slice::from_ref(&canonical));
    assert_eq!(d.kind(), DecisionKind::Superseded);
    let l = linked(d);
    assert_eq!(
        l.canonical.payload["value"],
        json!(182_460_000.0),
        "the newer value stays"
    );
    // The canonical record is as old as its oldest record: renamed, the old id retired.
    assert_eq!(l.canonical.id, CanonicalId::founded_by(older.record_id));
    assert_eq!(l.retired(), Some(canonical.id));
    assert_eq!(l.canonical.aliases, vec![canonical.id]);
}

#[test]
fn an_older_copy_of_the_current_content_is_still_a_duplicate() {
    let e = engine();
    let hcm = Org::new(OrgKind::Province);
    let later = stat(hcm, einvoices("79", 1.0), at(7, 8));
    let canonical = founded(&e, &later);
    let earlier = stat(hcm, einvoices("79", 1.0), at(5, 8));
    let l = linked(decide(&e, &earlier, &[canonical]));
    assert_eq!(l.rule, Rule::SourceDuplicate);
    assert_eq!(
        l.canonical.contribution(later.record_id).map(|c| c.role),
        Some(Role::Duplicate {
            of: earlier.record_id
        })
    );
}

#[test]
fn a_record_already_linked_is_reported_not_decided_again() {
    let e = engine();
    let r = stat(Org::new(OrgKind::Province), einvoices("79", 1.0), at(5, 8));
    let canonical = founded(&e, &r);
    let p = e.prepare(r).unwrap();
    let candidates = [canonical.clone()];
    let ctx = Context {
        candidates: &candidates,
        ..Context::default()
    };
    assert_eq!(
        e.decide(&p, &ctx, now()),
        Err(DecideError::AlreadyReconciled(canonical.id))
    );
}

#[test]
fn candidates_of_another_period_are_a_broken_contract() {
    let e = engine();
    let org = Org::new(OrgKind::Province);
    let mut november = stat(org, einvoices("79", 1.0), at(5, 8));
    november.period = etx_domain::Period::parse("2026-11").unwrap();
    let other = founded(&e, &november);
    let p = e.prepare(stat(org, einvoices("79", 1.0), at(6, 8))).unwrap();
    let candidates = [other.clone()];
    let ctx = Context {
        candidates: &candidates,
        ..Context::default()
    };
    assert_eq!(
        e.decide(&p, &ctx, now()),
        Err(DecideError::CandidateOutOfScope(other.id))
    );
}

#[test]
fn an_unreadable_payload_is_refused_with_the_field() {
    let e = engine();
    let r = stat(
        Org::new(OrgKind::Province),
        json!({"indicator": "transaction_count"}),
        at(5, 8),
    );
    assert_eq!(
        e.prepare(r).err(),
        Some(DecideError::Invalid(ViewError::Missing {
            pointer: "/transaction_kind".to_owned()
        }))
    );
}

// --- exact keys: several sources ----------------------------------------------------------

#[test]
fn a_ministry_and_a_province_agreeing_within_tolerance_make_one_canonical_record() {
    let e = engine();
    let ministry = Org::new(OrgKind::Ministry);
    let hcm = Org::new(OrgKind::Province);
    let city = stat(hcm, einvoices("79", 182_000_000.0), at(5, 8));
    let canonical = founded(&e, &city);
    let national = stat(ministry, einvoices("79", 182_456_320.0), at(6, 8));
    let d = decide(&e, &national, std::slice::from_ref(&canonical));
    assert_eq!(d.kind(), DecisionKind::Merge);
    let l = linked(d);
    assert_eq!(l.rule, Rule::FactTolerance);
    assert_eq!(l.canonical.id, canonical.id, "the older id stays");
    assert_eq!(l.canonical.current().count(), 2);
    // Prefer authority (the default): the ministry's value, with its provenance.
    assert_eq!(l.canonical.payload["value"], json!(182_456_320.0));
    assert_eq!(
        l.canonical.value_origin,
        ValueOrigin::Rule {
            rule: MergeRule::PreferAuthority,
            base: national.record_id
        }
    );
}

#[test]
fn the_merge_rule_is_configurable_and_recorded() {
    let mean = engine_with(|c| c.statistics.merge_rule = MergeRule::Mean);
    let earliest = engine_with(|c| c.statistics.merge_rule = MergeRule::PreferEarliest);
    let a = stat(Org::new(OrgKind::Province), einvoices("79", 1000.0), at(5, 8));
    let b = stat(Org::new(OrgKind::Ministry), einvoices("79", 1003.0), at(6, 8));
    let by_mean = linked(decide(&mean, &b, &[founded(&mean, &a)])).canonical;
    assert_eq!(
        by_mean.payload["value"],
        json!(1002),
        "mean of whole counts, rounded half away"
    );
    assert!(matches!(
        by_mean.value_origin,
        ValueOrigin::Rule {
            rule: MergeRule::Mean,
            ..
        }
    ));
    let by_time = linked(decide(&earliest, &b, &[founded(&earliest, &a)])).canonical;
    assert_eq!(by_time.payload["value"], json!(1000.0));
    assert_eq!(
        by_time.value_origin,
        ValueOrigin::Rule {
            rule: MergeRule::PreferEarliest,
            base: a.record_id
        }
    );
}

#[test]
fn values_beyond_tolerance_are_a_conflict_with_the_differences() {
    let e = engine();
    let city = stat(
        Org::new(OrgKind::Province),
        einvoices("79", 182_000_000.0),
        at(5, 8),
    );
    let canonical = founded(&e, &city);
    let national = stat(
        Org::new(OrgKind::Ministry),
        einvoices("79", 190_000_000.0),
        at(6, 8),
    );
    let c = conflict(decide(&e, &national, std::slice::from_ref(&canonical)));
    assert_eq!(c.reason, ConflictReason::ValuesDisagree);
    assert_eq!(c.id, ConflictId::opened_by(national.record_id));
    assert_eq!(c.target.id, canonical.id);
    assert_eq!(c.differences.len(), 1);
    let d = &c.differences[0];
    assert_eq!(d.field, "value");
    assert_eq!(
        (d.incoming.clone(), d.existing.clone()),
        (json!(190_000_000.0), json!(182_000_000.0))
    );
    assert_eq!(d.against, Some(city.record_id));
    assert_eq!(d.tolerance.map(|t| t.relative()), Some(0.005));
    // Both versions, with provenance.
    let versions = c.versions();
    assert_eq!(versions.len(), 2);
    assert!(versions[0].incoming && versions[0].source == national.source);
    assert_eq!(versions[1].record_id, city.record_id);
}

#[test]
fn each_indicator_has_its_own_tolerance() {
    let e = engine();
    let incidents = |v: f64| {
        json!({"indicator": "security_incidents", "transaction_kind": "e_payment", "value": v,
               "unit": "count", "dimensions": {"province_code": "48", "sector": "banking"}})
    };
    let a = stat(Org::new(OrgKind::Province), incidents(3.0), at(5, 8));
    let b = stat(Org::new(OrgKind::Ministry), incidents(4.0), at(6, 8));
    assert_eq!(
        decide(&e, &b, &[founded(&e, &a)]).kind(),
        DecisionKind::Conflict,
        "exact"
    );
    let rate = |v: f64| {
        json!({"indicator": "success_rate", "transaction_kind": "online_public_service", "value": v,
               "unit": "percent", "dimensions": {"province_code": "01"}})
    };
    let a = stat(Org::new(OrgKind::Province), rate(97.25), at(5, 8));
    let b = stat(Org::new(OrgKind::Ministry), rate(97.3), at(6, 8));
    let c = stat(Org::new(OrgKind::Ministry), rate(97.5), at(6, 8));
    let canonical = founded(&e, &a);
    assert_eq!(
        decide(&e, &b, std::slice::from_ref(&canonical)).kind(),
        DecisionKind::Merge
    );
    assert_eq!(
        decide(&e, &c, &[canonical]).kind(),
        DecisionKind::Conflict,
        "0.25 point > 0.1"
    );
}

#[test]
fn failure_reason_counts_are_compared_too() {
    let e = engine();
    let failed = |timeout: u32| {
        json!({
            "indicator": "failed_transactions", "transaction_kind": "online_public_service",
            "value": 444, "unit": "count", "dimensions": {"province_code": "01", "channel": "web"},
            "failure_reasons": [
                {"reason_code": "timeout", "count": timeout, "description": "Hết thời gian chờ"},
                {"reason_code": "invalid_signature", "count": 87}
            ]
        })
    };
    let hanoi = stat(Org::new(OrgKind::Province), failed(312), at(5, 8));
    let ministry = stat(Org::new(OrgKind::Ministry), failed(300), at(6, 8));
    let c = conflict(decide(&e, &ministry, &[founded(&e, &hanoi)]));
    assert_eq!(c.differences[0].field, "failure_reasons/timeout/count");
}

#[test]
fn a_province_without_a_province_dimension_reports_about_itself() {
    let e = engine();
    let mut own = einvoices("79", 182_000_000.0);
    own["dimensions"] = json!({"channel": "api"});
    let city = with_territory(stat(Org::new(OrgKind::Province), own, at(5, 8)), "79");
    let canonical = founded(&e, &city);
    let national = stat(
        Org::new(OrgKind::Ministry),
        einvoices("79", 182_100_000.0),
        at(6, 8),
    );
    assert_eq!(decide(&e, &national, &[canonical]).kind(), DecisionKind::Merge);
}

#[test]
fn national_figures_without_a_subject_are_never_merged_across_sources() {
    let e = engine();
    let mut national = einvoices("79", 1.0);
    national["dimensions"] = json!({"channel": "api"});
    let a = stat(Org::new(OrgKind::Ministry), national.clone(), at(5, 8));
    let b = stat(Org::new(OrgKind::EtxProvider), national, at(6, 8));
    let pa = e.prepare(a.clone()).unwrap();
    assert_eq!(pa.keys().fact, None);
    assert_eq!(
        decide(&e, &b, &[founded(&e, &a)]).kind(),
        DecisionKind::NewCanonical
    );
}

#[test]
fn a_revision_that_breaks_agreement_with_another_source_is_a_conflict() {
    let e = engine();
    let hcm = Org::new(OrgKind::Province);
    let city = stat(hcm, einvoices("79", 182_000_000.0), at(5, 8));
    let national = stat(
        Org::new(OrgKind::Ministry),
        einvoices("79", 182_100_000.0),
        at(6, 8),
    );
    let merged = linked(decide(&e, &national, &[founded(&e, &city)])).canonical;
    let revised = stat(hcm, einvoices("79", 150_000_000.0), at(7, 8));
    let c = conflict(decide(&e, &revised, std::slice::from_ref(&merged)));
    assert_eq!(c.reason, ConflictReason::RevisionDisagrees);
    assert_eq!(c.differences[0].against, Some(national.record_id));
    // Agreeing revisions go through.
    let fine = stat(hcm, einvoices("79", 182_050_000.0), at(7, 9));
    assert_eq!(decide(&e, &fine, &[merged]).kind(), DecisionKind::Revision);
}

#[test]
fn decisions_are_deterministic_whatever_the_candidate_order() {
    let e = engine();
    let a = founded(
        &e,
        &stat(Org::new(OrgKind::Province), einvoices("79", 100.0), at(5, 8)),
    );
    // A second canonical record of the same fact, split off by an operator's rejection.
    let b = founded(
        &e,
        &stat(Org::new(OrgKind::Province), einvoices("79", 1000.0), at(4, 8)),
    );
    let r = stat(Org::new(OrgKind::Ministry), einvoices("79", 100.2), at(6, 8));
    let one = decide(&e, &r, &[a.clone(), b.clone()]);
    let two = decide(&e, &r, &[b, a.clone()]);
    assert_eq!(one, two);
    assert_eq!(
        linked(one).canonical.id,
        a.id,
        "the agreeing one, not merely the oldest"
    );
    assert_eq!(decide(&e, &r, std::slice::from_ref(&a)), decide(&e, &r, &[a]));
}

// --- rejections and periods ---------------------------------------------------------------

#[test]
fn a_rejected_pair_is_never_merged_again_even_after_a_revision() {
    let e = engine();
    let city = stat(Org::new(OrgKind::Province), einvoices("79", 100.0), at(5, 8));
    let canonical = founded(&e, &city);
    let ministry = Org::new(OrgKind::Ministry);
    let national = stat(ministry, einvoices("79", 100.0), at(6, 8));
    let source_key = e.prepare(national.clone()).unwrap().keys().source;
    let rejection = RejectedPair {
        record_id: national.record_id,
        source_key,
        canonical: canonical.id,
        conflict: ConflictId::opened_by(national.record_id),
        by: UserId::new(),
        at: at(6, 9),
    };
    let d = decide_with(
        &e,
        &national,
        std::slice::from_ref(&canonical),
        std::slice::from_ref(&rejection),
        &[],
    );
    assert_eq!(d.kind(), DecisionKind::NewCanonical);
    assert_eq!(linked(d).rule, Rule::NewAfterRejection);
    // The ministry's next revision (a new record, same source key) is not merged either.
    let revised = stat(ministry, einvoices("79", 100.1), at(7, 8));
    let d = decide_with(
        &e,
        &revised,
        std::slice::from_ref(&canonical),
        std::slice::from_ref(&rejection),
        &[],
    );
    assert_eq!(linked(d).rule, Rule::NewAfterRejection);
    // The rejection follows the canonical record when it is renamed or merged.
    let older = stat(Org::new(OrgKind::Commune), einvoices("79", 100.0), at(1, 8));
    let renamed = linked(decide(&e, &older, &[canonical])).canonical;
    assert!(renamed.answers_to(rejection.canonical));
    let d = decide_with(&e, &revised, &[renamed], &[rejection], &[]);
    assert_eq!(linked(d).rule, Rule::NewAfterRejection);
}

#[test]
fn records_of_an_approved_period_are_held() {
    let e = engine();
    let org = Org::new(OrgKind::Province);
    let r = stat(org, einvoices("79", 1.0), at(5, 8));
    let op = UserId::new();
    let key = PeriodKey {
        scope: ApprovalScope::Org(org.id),
        category: Category::Statistics,
        period: r.period,
    };
    let approved = PeriodApproval::open(key).approve(op, at(4, 0)).unwrap();
    let d = decide_with(&e, &r, &[], &[], std::slice::from_ref(&approved));
    assert_eq!(
        d,
        Decision::Held(Held {
            record_id: r.record_id,
            key,
            source: r.source,
            received_at: r.received_at,
        })
    );
    assert_eq!(d.kind().status(), "held");
    // Another organisation's record of the same period is not held by this approval.
    let other = stat(Org::new(OrgKind::Ministry), einvoices("79", 1.0), at(5, 8));
    assert_eq!(
        decide_with(&e, &other, &[], &[], std::slice::from_ref(&approved)).kind(),
        DecisionKind::NewCanonical
    );
    // Reopened, the record goes through.
    let reason = crate::period::Reason::parse("Bổ sung số liệu tháng 10 của Sở").unwrap();
    let reopened = approved.reopen(op, reason, at(6, 0)).unwrap();
    assert_eq!(
        decide_with(&e, &r, &[], &[], &[reopened]).kind(),
        DecisionKind::NewCanonical
    );
}

// --- fuzzy matching -----------------------------------------------------------------------

const COURSE: &str = "Bồi dưỡng kiến thức về chữ ký số và dịch vụ tin cậy cho cán bộ, công chức cấp xã";
const COURSE_ASCII: &str = "Boi duong kien thuc ve chu ky so va dich vu tin cay cho can bo, cong chuc cap xa";

#[test]
fn the_same_course_reported_by_two_organisations_is_merged_by_fuzzy_score() {
    let e = engine();
    let so = Org::new(OrgKind::ProvincialDepartment);
    let cuc = Org::new(OrgKind::Department);
    let a = work(
        so,
        course(COURSE, "Sở Khoa học và Công nghệ Thành phố Hồ Chí Minh", 120),
        at(1, 8),
    );
    let canonical = founded(&e, &a);
    let b = work(cuc, course(COURSE_ASCII, "So KH&CN TP. HCM", 122), at(2, 8));
    let pb = e.prepare(b.clone()).unwrap();
    assert_eq!(pb.keys().fact, None);
    assert!(!pb.keys().blocking.is_empty());
    let d = decide(&e, &b, std::slice::from_ref(&canonical));
    assert_eq!(d.kind(), DecisionKind::Merge);
    let l = linked(d);
    assert_eq!(l.rule, Rule::FuzzyMatch);
    assert!(l.score.is_some_and(|s| s.value() > 0.95), "{:?}", l.score);
    let c = l.canonical.contribution(b.record_id).unwrap();
    assert_eq!(
        (c.rule, c.score),
        (Rule::FuzzyMatch, l.score),
        "score in the provenance"
    );
    // The Cục ranks above the Sở: its version is the value.
    assert_eq!(l.canonical.payload["participants_count"], json!(122));
}

#[test]
fn a_fuzzy_match_with_other_figures_is_a_conflict() {
    let e = engine();
    let a = work(
        Org::new(OrgKind::ProvincialDepartment),
        course(COURSE, "Sở KH&CN TP.HCM", 120),
        at(1, 8),
    );
    let b = work(
        Org::new(OrgKind::Department),
        course(COURSE_ASCII, "So KH&CN TP. HCM", 150),
        at(2, 8),
    );
    let c = conflict(decide(&e, &b, &[founded(&e, &a)]));
    assert_eq!(c.reason, ConflictReason::ValuesDisagree);
    assert!(c.fuzzy.as_ref().is_some_and(|f| f.verdict == Verdict::Match));
    assert_eq!(c.differences[0].field, "participants_count");
}

#[test]
fn a_possible_match_goes_to_an_operator_and_a_different_course_is_new() {
    let e = engine();
    let a = work(
        Org::new(OrgKind::ProvincialDepartment),
        course(COURSE, "Sở KH&CN TP.HCM", 120),
        at(1, 8),
    );
    let canonical = founded(&e, &a);
    // Same organiser, place and start; another end date and a rather different title.
    let mut payload = course("Tập huấn chữ ký số cho doanh nghiệp", "Sở KH&CN TP.HCM", 120);
    payload["end_date"] = json!("2026-09-10");
    let similar = work(Org::new(OrgKind::Department), payload, at(2, 8));
    let c = conflict(decide(&e, &similar, std::slice::from_ref(&canonical)));
    assert_eq!(c.reason, ConflictReason::PossibleMatch, "{:?}", c.fuzzy);
    let mut other = course(
        "Tập huấn an toàn thông tin mạng cho doanh nghiệp",
        "Công an Thành phố Hồ Chí Minh",
        40,
    );
    other["start_date"] = json!("2026-09-21");
    other["end_date"] = json!("2026-09-22");
    let distinct = work(Org::new(OrgKind::Department), other, at(2, 8));
    assert_eq!(
        decide(&e, &distinct, &[canonical]).kind(),
        DecisionKind::NewCanonical
    );
}

#[test]
fn a_renamed_record_of_the_same_organisation_is_not_merged_silently() {
    let e = engine();
    let so = Org::new(OrgKind::ProvincialDepartment);
    let a = work(so, course(COURSE, "Sở KH&CN TP.HCM", 120), at(1, 8));
    // The same organisation again, the title retyped (so another source key).
    let b = work(
        so,
        course(&format!("{COURSE} (đợt 1)"), "Sở KH&CN TP.HCM", 120),
        at(2, 8),
    );
    let c = conflict(decide(&e, &b, &[founded(&e, &a)]));
    assert_eq!(c.reason, ConflictReason::SameSourceOtherKey);
}

#[test]
fn an_expert_is_matched_by_the_token_of_their_citizen_id_never_by_a_masked_value() {
    let e = engine();
    let expert = |citizen_id: &str| {
        json!({
            "activity_type": "expert_registry",
            "title": "Đăng ký chuyên gia tư vấn về an toàn giao dịch điện tử",
            "organiser": "Cục Chuyển đổi số quốc gia",
            "start_date": "2026-10-05",
            "location_province_code": "01",
            "expert": {"full_name": "N*** T** M*** T***", "citizen_id": citizen_id,
                       "specialisation": "An toàn thông tin và chữ ký số"}
        })
    };
    let token = MatchTokens::from_pairs([("/expert/citizen_id", "tok_abcdefghijklmnopqrstuvwa")]).unwrap();
    let rec = |org, payload, tokens, t| record(org, Category::Workforce, "2026-10", payload, tokens, t);
    let a = rec(
        Org::new(OrgKind::Department),
        expert("tok_abcdefghijklmnopqrstuvwa"),
        token.clone(),
        at(1, 8),
    );
    let canonical = founded(&e, &a);
    let b = rec(
        Org::new(OrgKind::Province),
        expert("tok_abcdefghijklmnopqrstuvwa"),
        token,
        at(2, 8),
    );
    let d = decide(&e, &b, std::slice::from_ref(&canonical));
    assert_eq!(
        (d.kind(), linked(d).rule),
        (DecisionKind::Merge, Rule::FactTolerance)
    );
    // Two registrations that arrived masked (`********0123`) have no token: never one key,
    // however alike they look.
    let m1 = rec(
        Org::new(OrgKind::Department),
        expert("********0123"),
        MatchTokens::new(),
        at(1, 8),
    );
    let m2 = rec(
        Org::new(OrgKind::Province),
        expert("********0123"),
        MatchTokens::new(),
        at(2, 8),
    );
    let k1 = e.prepare(m1.clone()).unwrap().keys().clone();
    let k2 = e.prepare(m2.clone()).unwrap().keys().clone();
    assert_eq!((k1.fact, k2.fact), (None, None));
    assert!(k1.blocking.is_empty() && k2.blocking.is_empty());
    assert_eq!(
        decide(&e, &m2, &[founded(&e, &m1)]).kind(),
        DecisionKind::NewCanonical
    );
}

#[test]
fn the_same_case_reported_twice_is_merged_and_a_different_subject_is_a_conflict() {
    let e = engine();
    let tax = |t: &str| MatchTokens::from_pairs([("/subject_tax_code", t)]).unwrap();
    let so = Org::new(OrgKind::ProvincialDepartment);
    let thanh_tra = Org::new(OrgKind::Department);
    let a = case(
        so,
        complaint(
            "2026-KN-0042",
            "Sở Tư pháp Hà Nội",
            "Công ty TNHH Hợp đồng Số Việt",
        ),
        tax("h-0109876543"),
        at(8, 8),
    );
    let canonical = founded(&e, &a);
    let b = case(
        thanh_tra,
        complaint(
            "2026-kn-0042",
            "So Tu Phap Ha Noi",
            "CONG TY TNHH HOP DONG SO VIET",
        ),
        tax("h-0109876543"),
        at(9, 8),
    );
    assert_eq!(
        decide(&e, &b, std::slice::from_ref(&canonical)).kind(),
        DecisionKind::Merge
    );
    let c = case(
        thanh_tra,
        complaint("2026-KN-0042", "Sở Tư pháp Hà Nội", "Công ty khác"),
        tax("h-0312345678"),
        at(9, 8),
    );
    let c = conflict(decide(&e, &c, &[canonical]));
    assert_eq!(c.differences[0].field, "subject_tax_code");
}

#[test]
fn a_case_with_a_retyped_number_is_found_by_fuzzy_matching() {
    let e = engine();
    let a = case(
        Org::new(OrgKind::ProvincialDepartment),
        complaint(
            "2026-KN-0042",
            "Sở Tư pháp Hà Nội",
            "Công ty TNHH Hợp đồng Số Việt",
        ),
        MatchTokens::new(),
        at(8, 8),
    );
    let canonical = founded(&e, &a);
    let mut payload = complaint(
        "KN-0042/2026",
        "So Tu Phap Ha Noi",
        "Cong ty TNHH Hop dong So Viet",
    );
    payload["opened_on"] = json!("2026-10-08");
    let b = case(
        Org::new(OrgKind::Department),
        payload,
        MatchTokens::new(),
        at(9, 8),
    );
    let pb = e.prepare(b.clone()).unwrap();
    assert_ne!(pb.keys().fact, e.prepare(a).unwrap().keys().fact);
    let d = decide(&e, &b, &[canonical]);
    // The number differs, so it is not certain: a possible match for an operator.
    let c = conflict(d);
    assert_eq!(c.reason, ConflictReason::PossibleMatch);
    assert!(c.fuzzy.is_some_and(|f| f.score.value() >= 0.65));
}

// --- conflict resolution ------------------------------------------------------------------

struct Disagreement {
    e: Reconciler,
    city: IncomingRecord,
    national: IncomingRecord,
    canonical: CanonicalRecord,
    conflict: Conflict,
}

fn disagreement() -> Disagreement {
    let e = engine();
    let city = stat(
        Org::new(OrgKind::Province),
        einvoices("79", 182_000_000.0),
        at(5, 8),
    );
    let canonical = founded(&e, &city);
    let national = stat(
        Org::new(OrgKind::Ministry),
        einvoices("79", 190_000_000.0),
        at(6, 8),
    );
    let conflict = conflict(decide(&e, &national, std::slice::from_ref(&canonical)));
    Disagreement {
        e,
        city,
        national,
        canonical,
        conflict,
    }
}

#[test]
fn choosing_a_version_links_the_record_and_sets_the_value() {
    let d = disagreement();
    let op = UserId::new();
    let choice = ResolutionChoice::Choose {
        record: d.national.record_id,
    };
    let r =
        d.e.resolve(
            &d.conflict,
            choice.clone(),
            op,
            Some("Số liệu Bộ đã đối chiếu".into()),
            &d.canonical,
            &[],
            now(),
        )
        .unwrap();
    assert_eq!(
        r.previous,
        Some(Previous {
            id: d.canonical.id,
            version: 1
        })
    );
    assert_eq!(r.canonical.payload["value"], json!(190_000_000.0));
    assert_eq!(r.canonical.value_origin, ValueOrigin::Operator { by: op });
    let c = r.canonical.contribution(d.national.record_id).unwrap();
    assert_eq!(c.rule, Rule::OperatorChoose);
    assert!(
        matches!(&r.conflict.status, ConflictStatus::Resolved(res) if res.by == op && res.choice == choice)
    );
    assert!(r.rejection.is_none());
    // Resolved once only.
    assert_eq!(
        d.e.resolve(
            &r.conflict,
            ResolutionChoice::Reject,
            op,
            None,
            &r.canonical,
            &[],
            now()
        ),
        Err(ResolveError::AlreadyResolved)
    );
    // Choosing the existing version keeps its value but still links the record.
    let keep =
        d.e.resolve(
            &d.conflict,
            ResolutionChoice::Choose {
                record: d.city.record_id,
            },
            op,
            None,
            &d.canonical,
            &[],
            now(),
        )
        .unwrap();
    assert_eq!(keep.canonical.payload["value"], json!(182_000_000.0));
    assert_eq!(keep.canonical.contributions.len(), 2);
}

#[test]
fn a_later_record_is_compared_with_the_operator_s_value() {
    let d = disagreement();
    let op = UserId::new();
    let r =
        d.e.resolve(
            &d.conflict,
            ResolutionChoice::Choose {
                record: d.national.record_id,
            },
            op,
            None,
            &d.canonical,
            &[],
            now(),
        )
        .unwrap();
    let third = stat(
        Org::new(OrgKind::ProvincialDepartment),
        einvoices("79", 190_100_000.0),
        at(7, 8),
    );
    assert_eq!(decide(&d.e, &third, &[r.canonical]).kind(), DecisionKind::Merge);
}

#[test]
fn merging_sets_the_operator_s_field_values() {
    let d = disagreement();
    let values = [("/value".to_owned(), json!(186_000_000))].into_iter().collect();
    let r =
        d.e.resolve(
            &d.conflict,
            ResolutionChoice::Merge { values },
            UserId::new(),
            None,
            &d.canonical,
            &[],
            now(),
        )
        .unwrap();
    assert_eq!(r.canonical.payload["value"], json!(186_000_000));
    assert_eq!(r.canonical.payload["indicator"], json!("transaction_count"));
    for (values, err) in [
        (vec![], ResolveError::EmptyMerge),
        (
            vec![("value", json!(1))],
            ResolveError::InvalidPointer("value".into()),
        ),
        (
            vec![("/colour", json!(1))],
            ResolveError::UnknownField("/colour".into()),
        ),
    ] {
        let values = values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        assert_eq!(
            d.e.resolve(
                &d.conflict,
                ResolutionChoice::Merge { values },
                UserId::new(),
                None,
                &d.canonical,
                &[],
                now()
            ),
            Err(err)
        );
    }
}

#[test]
fn rejecting_founds_a_new_canonical_record_and_remembers_the_pair() {
    let d = disagreement();
    let op = UserId::new();
    let r =
        d.e.resolve(
            &d.conflict,
            ResolutionChoice::Reject,
            op,
            None,
            &d.canonical,
            &[],
            now(),
        )
        .unwrap();
    assert_eq!(r.previous, None);
    assert_eq!(r.canonical.id, CanonicalId::founded_by(d.national.record_id));
    assert_eq!(r.canonical.contributions[0].rule, Rule::NewAfterRejection);
    let rejection = r.rejection.unwrap();
    assert_eq!(
        (rejection.record_id, rejection.canonical, rejection.by),
        (d.national.record_id, d.canonical.id, op)
    );
}

#[test]
fn resolutions_check_versions_targets_periods_and_notes() {
    let d = disagreement();
    let op = UserId::new();
    let stranger = RecordId::new();
    assert_eq!(
        d.e.resolve(
            &d.conflict,
            ResolutionChoice::Choose { record: stranger },
            op,
            None,
            &d.canonical,
            &[],
            now()
        ),
        Err(ResolveError::UnknownVersion(stranger))
    );
    let other = founded(
        &d.e,
        &stat(Org::new(OrgKind::Province), einvoices("01", 1.0), at(5, 8)),
    );
    assert_eq!(
        d.e.resolve(
            &d.conflict,
            ResolutionChoice::Reject,
            op,
            None,
            &other,
            &[],
            now()
        ),
        Err(ResolveError::TargetMismatch(other.id))
    );
    let approved = PeriodApproval::open(PeriodKey {
        scope: ApprovalScope::All,
        category: Category::Statistics,
        period: d.conflict.period,
    })
    .approve(op, now())
    .unwrap();
    assert_eq!(
        d.e.resolve(
            &d.conflict,
            ResolutionChoice::Reject,
            op,
            None,
            &d.canonical,
            &[approved],
            now()
        ),
        Err(ResolveError::PeriodApproved)
    );
    assert_eq!(
        d.e.resolve(
            &d.conflict,
            ResolutionChoice::Reject,
            op,
            Some("x".repeat(2001)),
            &d.canonical,
            &[],
            now()
        ),
        Err(ResolveError::NoteTooLong)
    );
}

#[test]
fn a_revision_conflict_cannot_be_rejected() {
    let e = engine();
    let hcm = Org::new(OrgKind::Province);
    let city = stat(hcm, einvoices("79", 182_000_000.0), at(5, 8));
    let national = stat(
        Org::new(OrgKind::Ministry),
        einvoices("79", 182_100_000.0),
        at(6, 8),
    );
    let merged = linked(decide(&e, &national, &[founded(&e, &city)])).canonical;
    let revised = stat(hcm, einvoices("79", 150_000_000.0), at(7, 8));
    let c = conflict(decide(&e, &revised, std::slice::from_ref(&merged)));
    assert_eq!(
        e.resolve(
            &c,
            ResolutionChoice::Reject,
            UserId::new(),
            None,
            &merged,
            &[],
            now()
        ),
        Err(ResolveError::RejectNotAllowed("revision_disagrees"))
    );
    // Choosing the revision makes it the source's current statement and the value.
    let r = e
        .resolve(
            &c,
            ResolutionChoice::Choose {
                record: revised.record_id,
            },
            UserId::new(),
            None,
            &merged,
            &[],
            now(),
        )
        .unwrap();
    assert_eq!(
        r.canonical.contribution(city.record_id).map(|c| c.role),
        Some(Role::Superseded {
            by: revised.record_id
        })
    );
    assert_eq!(r.canonical.payload["value"], json!(150_000_000.0));
}

// --- canonical merges ---------------------------------------------------------------------

#[test]
fn merging_two_canonical_records_keeps_the_older_id() {
    let e = engine();
    let young = founded(
        &e,
        &stat(Org::new(OrgKind::Province), einvoices("79", 1.0), at(6, 8)),
    );
    let old = founded(
        &e,
        &stat(Org::new(OrgKind::Ministry), einvoices("79", 1.0), at(5, 8)),
    );
    let m = crate::canonical::merge(&young, &old, e.config()).unwrap();
    assert_eq!(m.id, old.id);
    assert_eq!(m.aliases, vec![young.id]);
    assert_eq!(m.contributions.len(), 2);
    assert_eq!(
        crate::canonical::merge(&old, &young, e.config()).map(|x| x.id),
        Some(old.id)
    );
    // A tie on time goes to the smaller id.
    let t = at(7, 8);
    let x = founded(&e, &stat(Org::new(OrgKind::Province), einvoices("01", 1.0), t));
    let y = founded(&e, &stat(Org::new(OrgKind::Ministry), einvoices("01", 1.0), t));
    let smaller = x.id.min(y.id);
    assert_eq!(
        crate::canonical::merge(&x, &y, e.config()).map(|m| m.id),
        Some(smaller)
    );
    assert_eq!(
        crate::canonical::merge(&y, &x, e.config()).map(|m| m.id),
        Some(smaller)
    );
    // Different periods never merge.
    let mut nov = stat(Org::new(OrgKind::Province), einvoices("79", 1.0), at(6, 8));
    nov.period = etx_domain::Period::parse("2026-11").unwrap();
    assert!(crate::canonical::merge(&old, &founded(&e, &nov), e.config()).is_none());
}
