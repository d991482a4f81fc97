//! Fuzzy matching of entity-like records (R-REC): a weighted similarity score over the fields
//! of two records ([`score`]) and its verdict against the thresholds ([`Verdict`]). Candidates
//! come only from shared blocking keys ([`crate::keys::BlockingKey`]).

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::categories::{FuzzyValue, RecordView};
use crate::config::FuzzyConfig;
use crate::similarity;

/// A similarity score in `[0, 1]` (R-REC), kept in the provenance of every fuzzy link
/// (R-DATA-3). Ordered; never NaN.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Score(f64);

impl Score {
    /// Certainly the same.
    pub const ONE: Score = Score(1.0);
    /// Certainly different.
    pub const ZERO: Score = Score(0.0);

    /// A score; `None` outside `[0, 1]` or NaN.
    pub fn new(x: f64) -> Option<Self> {
        (x.is_finite() && (0.0..=1.0).contains(&x)).then_some(Self(x))
    }

    /// `x` clamped into `[0, 1]` (NaN → 0).
    pub fn clamped(x: f64) -> Self {
        if x.is_nan() {
            Self(0.0)
        } else {
            Self(x.clamp(0.0, 1.0))
        }
    }

    /// The value.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.4}", self.0)
    }
}

impl TryFrom<f64> for Score {
    type Error = String;
    fn try_from(x: f64) -> Result<Self, Self::Error> {
        Self::new(x).ok_or_else(|| format!("{x} is not a score in [0, 1]"))
    }
}

impl From<Score> for f64 {
    fn from(s: Score) -> f64 {
        s.0
    }
}

/// What a score means (R-REC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At or above the match threshold: the same entity.
    Match,
    /// Between the possible and the match threshold: an operator decides.
    Possible,
    /// Below the possible threshold, or too little evidence: different entities.
    Distinct,
}

/// The similarity of one field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldScore {
    /// The field.
    pub field: String,
    /// Its similarity in `[0, 1]`.
    pub similarity: f64,
    /// Its weight (0 for a decisive field that decided).
    pub weight: f64,
}

/// The fuzzy comparison of two records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FuzzyScore {
    /// The weighted score.
    pub score: Score,
    /// The share of the total weight present on both sides.
    pub evidence: f64,
    /// The verdict against the thresholds.
    pub verdict: Verdict,
    /// Per field, in field-name order.
    pub fields: Vec<FieldScore>,
    /// The decisive field that decided, if one did.
    pub decided_by: Option<String>,
}

fn similarity_of(a: &FuzzyValue, b: &FuzzyValue, cfg: &FuzzyConfig) -> Option<f64> {
    Some(match (a, b) {
        (FuzzyValue::Name(x), FuzzyValue::Name(y)) => similarity::name(x, y),
        (FuzzyValue::Text(x), FuzzyValue::Text(y)) => similarity::token_set(x, y),
        (FuzzyValue::Code(x), FuzzyValue::Code(y)) => f64::from(u8::from(x == y)),
        (FuzzyValue::Date(x), FuzzyValue::Date(y)) => similarity::date(*x, *y, cfg.date_window_days()),
        (FuzzyValue::Token(x), FuzzyValue::Token(y)) => f64::from(u8::from(x == y)),
        _ => return None,
    })
}

/// Scores record `a` against record `b` of the same category under `cfg`. Symmetric and
/// deterministic.
///
/// ```
/// use etx_domain::{Category, SchemaVersion};
/// use etx_reconciliation_core::{config::ReconcileConfig, fuzzy::{score, Verdict}};
/// use etx_reconciliation_core::categories::RecordView;
/// use etx_reconciliation_core::record::MatchTokens;
/// let read = |p: serde_json::Value| {
///     RecordView::read(Category::Enforcement, SchemaVersion::V1, &p, &MatchTokens::new(), None).unwrap()
/// };
/// let ministry = read(serde_json::json!({
///     "case_type": "complaint", "case_number": "2026-KN-0042", "opened_on": "2026-10-07",
///     "status": "under_review", "handling_body": "Sở Tư pháp Hà Nội",
///     "subject_organisation": "Công ty TNHH Hợp đồng Số Việt",
///     "description": "Khiếu nại hợp đồng điện tử ký không có xác nhận"
/// }));
/// let province = read(serde_json::json!({
///     "case_type": "complaint", "case_number": "2026-KN-42", "opened_on": "2026-10-08",
///     "status": "under_review", "handling_body": "So Tu Phap Ha Noi",
///     "subject_organisation": "Cong ty TNHH Hop dong So Viet",
///     "description": "Khieu nai hop dong dien tu ky khong co xac nhan"
/// }));
/// let config = ReconcileConfig::default();
/// let fuzzy = config.enforcement.fuzzy.as_ref().unwrap();
/// let s = score(&ministry, &province, fuzzy);
/// assert_eq!(s.verdict, Verdict::Possible); // the case numbers differ
/// ```
pub fn score(a: &RecordView, b: &RecordView, cfg: &FuzzyConfig) -> FuzzyScore {
    let (fa, fb) = (a.fuzzy_fields(), b.fuzzy_fields());
    for name in cfg.decisive() {
        if let (Some(FuzzyValue::Token(x)), Some(FuzzyValue::Token(y))) = (fa.get(name), fb.get(name)) {
            let same = x == y;
            let s = if same { Score::ONE } else { Score::ZERO };
            return FuzzyScore {
                score: s,
                evidence: 1.0,
                verdict: if same { Verdict::Match } else { Verdict::Distinct },
                fields: vec![FieldScore {
                    field: name.clone(),
                    similarity: s.value(),
                    weight: 0.0,
                }],
                decided_by: Some(name.clone()),
            };
        }
    }
    let total: f64 = cfg.weights().values().sum();
    let mut present = 0.0;
    let mut weighted = 0.0;
    let mut fields = Vec::new();
    for (name, w) in cfg.weights() {
        if *w <= 0.0 {
            continue;
        }
        let (Some(x), Some(y)) = (fa.get(name), fb.get(name)) else {
            continue;
        };
        let Some(sim) = similarity_of(x, y, cfg) else {
            continue;
        };
        present += w;
        weighted += w * sim;
        fields.push(FieldScore {
            field: name.clone(),
            similarity: sim,
            weight: *w,
        });
    }
    let evidence = if total > 0.0 { present / total } else { 0.0 };
    let score = if present > 0.0 {
        Score::clamped(weighted / present)
    } else {
        Score::ZERO
    };
    let verdict = if evidence + 1e-12 < cfg.min_evidence() {
        Verdict::Distinct
    } else if score.value() >= cfg.match_threshold() {
        Verdict::Match
    } else if score.value() >= cfg.possible_threshold() {
        Verdict::Possible
    } else {
        Verdict::Distinct
    };
    FuzzyScore {
        score,
        evidence,
        verdict,
        fields,
        decided_by: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ReconcileConfig;
    use crate::record::MatchTokens;
    use etx_domain::{Category, SchemaVersion};
    use serde_json::{Value, json};

    fn read(category: Category, p: Value, tokens: &MatchTokens) -> RecordView {
        RecordView::read(category, SchemaVersion::V1, &p, tokens, None).unwrap()
    }

    fn course(title: &str, organiser: &str, start: &str, province: &str) -> Value {
        json!({
            "activity_type": "training_course", "title": title, "organiser": organiser,
            "start_date": start, "end_date": "2026-09-12", "location_province_code": province,
            "participants_count": 120
        })
    }

    fn workforce_cfg() -> FuzzyConfig {
        ReconcileConfig::default().workforce.fuzzy.unwrap()
    }

    #[test]
    fn the_same_course_written_differently_matches() {
        let none = MatchTokens::new();
        let a = read(
            Category::Workforce,
            course(
                "Bồi dưỡng kiến thức về chữ ký số và dịch vụ tin cậy",
                "Sở Khoa học và Công nghệ Thành phố Hồ Chí Minh",
                "2026-09-08",
                "79",
            ),
            &none,
        );
        let b = read(
            Category::Workforce,
            course(
                "Boi duong kien thuc ve chu ky so va dich vu tin cay",
                "So KH&CN TP. HCM",
                "2026-09-08",
                "79",
            ),
            &none,
        );
        let s = score(&a, &b, &workforce_cfg());
        assert_eq!(s.verdict, Verdict::Match, "{s:?}");
        assert_eq!(s.score, score(&b, &a, &workforce_cfg()).score, "symmetric");
        assert!(s.decided_by.is_none());
    }

    #[test]
    fn different_courses_of_the_same_organiser_are_distinct() {
        let none = MatchTokens::new();
        let a = read(
            Category::Workforce,
            course(
                "Bồi dưỡng kiến thức về chữ ký số",
                "Sở Tư pháp Hà Nội",
                "2026-09-08",
                "01",
            ),
            &none,
        );
        let b = read(
            Category::Workforce,
            course(
                "Tập huấn an toàn thông tin cho doanh nghiệp",
                "Sở Tư pháp Hà Nội",
                "2026-09-28",
                "01",
            ),
            &none,
        );
        assert_eq!(score(&a, &b, &workforce_cfg()).verdict, Verdict::Distinct);
    }

    #[test]
    fn a_decisive_token_decides_alone() {
        let payload = |title: &str| {
            json!({
                "activity_type": "expert_registry", "title": title, "organiser": "Cục Chuyển đổi số quốc gia",
                "start_date": "2026-10-05",
                "expert": {"full_name": "N*** T** M*** T***", "specialisation": "An toàn thông tin"}
            })
        };
        let t1 = MatchTokens::from_pairs([("/expert/citizen_id", "h-1")]).unwrap();
        let t2 = MatchTokens::from_pairs([("/expert/citizen_id", "h-2")]).unwrap();
        let a = read(Category::Workforce, payload("Đăng ký chuyên gia"), &t1);
        let same = read(Category::Workforce, payload("Hồ sơ chuyên gia khác hẳn"), &t1);
        let other = read(Category::Workforce, payload("Đăng ký chuyên gia"), &t2);
        let s = score(&a, &same, &workforce_cfg());
        assert_eq!(
            (s.verdict, s.decided_by.as_deref()),
            (Verdict::Match, Some("expert_citizen_id"))
        );
        assert_eq!(score(&a, &other, &workforce_cfg()).verdict, Verdict::Distinct);
    }

    #[test]
    fn too_little_evidence_is_distinct() {
        let cfg = FuzzyConfig::new(
            [("title".to_owned(), 0.2), ("organiser".to_owned(), 0.8)]
                .into_iter()
                .collect(),
            Default::default(),
            0.8,
            0.6,
            7,
            0.5,
        )
        .unwrap();
        let none = MatchTokens::new();
        let mut p = course("Tập huấn hợp đồng điện tử", "[REDACTED]", "2026-05-14", "52");
        let a = read(Category::Workforce, p.clone(), &none);
        p["title"] = json!("Tập huấn hợp đồng điện tử");
        let b = read(Category::Workforce, p, &none);
        let s = score(&a, &b, &cfg);
        assert_eq!(s.score, Score::ONE);
        assert!((s.evidence - 0.2).abs() < 1e-9);
        assert_eq!(s.verdict, Verdict::Distinct);
    }

    #[test]
    fn enforcement_cases_match_across_diacritics_and_number_formats() {
        let none = MatchTokens::new();
        let cfg = ReconcileConfig::default().enforcement.fuzzy.unwrap();
        let a = read(
            Category::Enforcement,
            json!({
                "case_type": "complaint", "case_number": "2026-KN-0042", "opened_on": "2026-10-07",
                "status": "under_review", "handling_body": "Sở Tư pháp Hà Nội",
                "subject_organisation": "Công ty TNHH Hợp đồng Số Việt",
                "description": "Khiếu nại việc hợp đồng điện tử được ký mà không có xác nhận"
            }),
            &none,
        );
        let b = read(
            Category::Enforcement,
            json!({
                "case_type": "complaint", "case_number": "2026 KN 0042", "opened_on": "2026-10-07",
                "status": "under_review", "handling_body": "So Tu Phap Ha Noi",
                "subject_organisation": "CONG TY TNHH HOP DONG SO VIET",
                "description": "Khieu nai viec hop dong dien tu duoc ky ma khong co xac nhan"
            }),
            &none,
        );
        let s = score(&a, &b, &cfg);
        assert_eq!(s.verdict, Verdict::Match, "{s:?}");
        assert!(s.score.value() > 0.99);
    }

    #[test]
    fn scores_are_ordered_and_bounded() {
        assert!(Score::new(1.1).is_none() && Score::new(f64::NAN).is_none());
        assert_eq!(Score::clamped(f64::NAN), Score::ZERO);
        assert!(Score::ONE > Score::clamped(0.5));
        assert_eq!(Score::clamped(0.123456).to_string(), "0.1235");
        assert!(serde_json::from_str::<Score>("1.5").is_err());
    }
}
