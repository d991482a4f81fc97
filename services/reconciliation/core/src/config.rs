//! Reconciliation settings (R-REC): tolerances per category and indicator, the rule that makes
//! one value of several agreeing ones, fuzzy weights and thresholds, and the authority ranking
//! of source kinds. Every value is checked when built or deserialised
//! ([`ReconcileConfig::validate`]); the defaults are documented on [`ReconcileConfig::default`].

use std::collections::{BTreeMap, BTreeSet};

use etx_domain::{Category, OrgKind};
use serde::{Deserialize, Serialize};

use crate::categories::{Comparator, fuzzy_fields};

/// A setting that breaks its rule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// A tolerance is negative, not finite, or relative above 1.
    #[error("invalid tolerance: {0}")]
    InvalidTolerance(String),
    /// A threshold is outside `[0, 1]` or `possible > match`.
    #[error("invalid thresholds: {0}")]
    InvalidThreshold(String),
    /// A weight is negative or not finite, or every weight is 0.
    #[error("invalid weight for `{field}`")]
    InvalidWeight {
        /// The field.
        field: String,
    },
    /// A fuzzy field the category does not have.
    #[error("{category} has no fuzzy field `{field}`")]
    UnknownField {
        /// The category.
        category: Category,
        /// The field.
        field: String,
    },
    /// A decisive field that is not a token field.
    #[error("{category} field `{field}` is not a token field and cannot be decisive")]
    NotATokenField {
        /// The category.
        category: Category,
        /// The field.
        field: String,
    },
    /// An organisation kind listed twice in the authority ranking.
    #[error("`{0}` appears twice in the authority ranking")]
    DuplicateAuthority(&'static str),
}

/// How far apart two numbers may be and still agree (R-REC): `|a − b| ≤ max(absolute,
/// relative · max(|a|, |b|))`.
///
/// ```
/// use etx_reconciliation_core::config::Tolerance;
/// let t = Tolerance::new(0.0, 0.01).unwrap();
/// assert!(t.allows(1000.0, 1009.0));
/// assert!(!t.allows(1000.0, 1020.0));
/// assert!(Tolerance::EXACT.allows(3.0, 3.0) && !Tolerance::EXACT.allows(3.0, 4.0));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ToleranceDoc", into = "ToleranceDoc")]
pub struct Tolerance {
    absolute: f64,
    relative: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToleranceDoc {
    #[serde(default)]
    absolute: f64,
    #[serde(default)]
    relative: f64,
}

impl TryFrom<ToleranceDoc> for Tolerance {
    type Error = ConfigError;
    fn try_from(d: ToleranceDoc) -> Result<Self, Self::Error> {
        Self::new(d.absolute, d.relative)
    }
}

impl From<Tolerance> for ToleranceDoc {
    fn from(t: Tolerance) -> Self {
        Self {
            absolute: t.absolute,
            relative: t.relative,
        }
    }
}

impl Tolerance {
    /// No difference allowed.
    pub const EXACT: Tolerance = Tolerance {
        absolute: 0.0,
        relative: 0.0,
    };

    /// A tolerance: `absolute` ≥ 0 and `relative` in `[0, 1]`, both finite.
    pub fn new(absolute: f64, relative: f64) -> Result<Self, ConfigError> {
        if !absolute.is_finite() || absolute < 0.0 {
            return Err(ConfigError::InvalidTolerance(format!("absolute {absolute}")));
        }
        if !relative.is_finite() || !(0.0..=1.0).contains(&relative) {
            return Err(ConfigError::InvalidTolerance(format!("relative {relative}")));
        }
        Ok(Self { absolute, relative })
    }

    /// The absolute part.
    pub fn absolute(&self) -> f64 {
        self.absolute
    }

    /// The relative part.
    pub fn relative(&self) -> f64 {
        self.relative
    }

    /// Whether `a` and `b` agree. A rounding error of one part in 10¹² is forgiven, so
    /// `0.1 + 0.2` agrees exactly with `0.3`; values that are not finite never agree.
    pub fn allows(&self, a: f64, b: f64) -> bool {
        if !a.is_finite() || !b.is_finite() {
            return false;
        }
        let scale = a.abs().max(b.abs());
        let allowed = self.absolute.max(self.relative * scale) + scale * 1e-12;
        (a - b).abs() <= allowed
    }
}

/// How the value of a canonical record is made from the agreeing current contributions of
/// its sources (R-REC); recorded with the canonical record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeRule {
    /// The payload of the source with the highest authority ([`ReconcileConfig::authority`]);
    /// ties go to the earliest received, then the smaller record id. Every value of the
    /// canonical record was reported by someone, with provenance.
    PreferAuthority,
    /// As [`MergeRule::PreferAuthority`], but every numeric measure is the arithmetic mean of
    /// the sources that report it (rounded half away from zero when all of them are whole
    /// numbers, so counts stay whole).
    Mean,
    /// The payload of the earliest received source (ties: the smaller record id).
    PreferEarliest,
}

impl MergeRule {
    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreferAuthority => "prefer_authority",
            Self::Mean => "mean",
            Self::PreferEarliest => "prefer_earliest",
        }
    }
}

/// Fuzzy matching of entity-like records (R-REC): field weights, decisive token fields,
/// thresholds.
///
/// * The score is `Σ wᵢ·sᵢ / Σ wᵢ` over the weighted fields present (and not masked) on both
///   sides, `sᵢ` the field's similarity ([`crate::similarity`]).
/// * If the present weight is less than `min_evidence` of the total weight, there is too
///   little to compare and the records are distinct.
/// * A *decisive* token field present on both sides decides alone: equal tokens → score 1
///   (same entity), different tokens → score 0 (distinct).
/// * score ≥ `match_threshold` → same entity; ≥ `possible_threshold` → a conflict for an
///   operator; below → distinct.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "FuzzyDoc", into = "FuzzyDoc")]
pub struct FuzzyConfig {
    weights: BTreeMap<String, f64>,
    decisive: BTreeSet<String>,
    match_threshold: f64,
    possible_threshold: f64,
    date_window_days: u32,
    min_evidence: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FuzzyDoc {
    weights: BTreeMap<String, f64>,
    #[serde(default)]
    decisive: BTreeSet<String>,
    match_threshold: f64,
    possible_threshold: f64,
    #[serde(default = "default_window")]
    date_window_days: u32,
    #[serde(default = "default_evidence")]
    min_evidence: f64,
}

fn default_window() -> u32 {
    7
}

fn default_evidence() -> f64 {
    0.6
}

impl TryFrom<FuzzyDoc> for FuzzyConfig {
    type Error = ConfigError;
    fn try_from(d: FuzzyDoc) -> Result<Self, Self::Error> {
        Self::new(
            d.weights,
            d.decisive,
            d.match_threshold,
            d.possible_threshold,
            d.date_window_days,
            d.min_evidence,
        )
    }
}

impl From<FuzzyConfig> for FuzzyDoc {
    fn from(c: FuzzyConfig) -> Self {
        Self {
            weights: c.weights,
            decisive: c.decisive,
            match_threshold: c.match_threshold,
            possible_threshold: c.possible_threshold,
            date_window_days: c.date_window_days,
            min_evidence: c.min_evidence,
        }
    }
}

impl FuzzyConfig {
    /// A fuzzy configuration: weights finite and ≥ 0 with at least one above 0; thresholds and
    /// `min_evidence` in `[0, 1]` with `possible ≤ match`. Field names are checked against a
    /// category by [`ReconcileConfig::validate`].
    pub fn new(
        weights: BTreeMap<String, f64>,
        decisive: BTreeSet<String>,
        match_threshold: f64,
        possible_threshold: f64,
        date_window_days: u32,
        min_evidence: f64,
    ) -> Result<Self, ConfigError> {
        for (field, w) in &weights {
            if !w.is_finite() || *w < 0.0 {
                return Err(ConfigError::InvalidWeight { field: field.clone() });
            }
        }
        if !weights.values().any(|w| *w > 0.0) {
            return Err(ConfigError::InvalidWeight {
                field: "(all)".to_owned(),
            });
        }
        let unit = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        if !unit(match_threshold) || !unit(possible_threshold) || possible_threshold > match_threshold {
            return Err(ConfigError::InvalidThreshold(format!(
                "match {match_threshold}, possible {possible_threshold}"
            )));
        }
        if !unit(min_evidence) {
            return Err(ConfigError::InvalidThreshold(format!(
                "min_evidence {min_evidence}"
            )));
        }
        Ok(Self {
            weights,
            decisive,
            match_threshold,
            possible_threshold,
            date_window_days,
            min_evidence,
        })
    }

    /// Field → weight.
    pub fn weights(&self) -> &BTreeMap<String, f64> {
        &self.weights
    }

    /// The decisive token fields.
    pub fn decisive(&self) -> &BTreeSet<String> {
        &self.decisive
    }

    /// The score from which two records are the same entity.
    pub fn match_threshold(&self) -> f64 {
        self.match_threshold
    }

    /// The score from which two records may be the same entity (a conflict for review).
    pub fn possible_threshold(&self) -> f64 {
        self.possible_threshold
    }

    /// Dates this many days apart or more have similarity 0.
    pub fn date_window_days(&self) -> u32 {
        self.date_window_days
    }

    /// The share of the total weight that must be present on both sides.
    pub fn min_evidence(&self) -> f64 {
        self.min_evidence
    }

    fn validate_for(&self, category: Category) -> Result<(), ConfigError> {
        let fields = fuzzy_fields(category);
        let comparator = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
        for name in self.weights.keys().chain(&self.decisive) {
            if comparator(name).is_none() {
                return Err(ConfigError::UnknownField {
                    category,
                    field: name.clone(),
                });
            }
        }
        for name in &self.decisive {
            if comparator(name) != Some(Comparator::Token) {
                return Err(ConfigError::NotATokenField {
                    category,
                    field: name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// The settings of one category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    /// The tolerance of numeric measures.
    pub tolerance: Tolerance,
    /// Per-indicator tolerances (statistics), overriding `tolerance`.
    #[serde(default)]
    pub indicator_tolerances: BTreeMap<String, Tolerance>,
    /// How agreeing values are merged.
    pub merge_rule: MergeRule,
    /// Fuzzy matching, if the category has it.
    #[serde(default)]
    pub fuzzy: Option<FuzzyConfig>,
}

impl CategoryConfig {
    /// The tolerance for `indicator` (or the category's).
    pub fn tolerance_for(&self, indicator: Option<&str>) -> Tolerance {
        indicator
            .and_then(|i| self.indicator_tolerances.get(i))
            .copied()
            .unwrap_or(self.tolerance)
    }
}

/// Every reconciliation setting (R-REC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileConfig {
    /// A number the operator raises on every change; recorded in the provenance of every link
    /// (R-DATA-3) so a decision can be traced to the settings it was made with.
    pub version: u32,
    /// Organisation kinds, highest authority first; kinds not listed rank below all listed ones.
    pub authority: Vec<OrgKind>,
    /// Statistics.
    pub statistics: CategoryConfig,
    /// Policy documents.
    pub policy: CategoryConfig,
    /// Workforce.
    pub workforce: CategoryConfig,
    /// Enforcement.
    pub enforcement: CategoryConfig,
}

impl ReconcileConfig {
    /// The settings of `category`.
    pub fn for_category(&self, category: Category) -> &CategoryConfig {
        match category {
            Category::Statistics => &self.statistics,
            Category::Policy => &self.policy,
            Category::Workforce => &self.workforce,
            Category::Enforcement => &self.enforcement,
        }
    }

    /// The rank of `kind`: 0 is the highest authority.
    pub fn authority_rank(&self, kind: OrgKind) -> usize {
        self.authority
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(self.authority.len())
    }

    /// Checks what the types alone cannot: fuzzy field names against each category, and the
    /// authority ranking for repeats.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for category in Category::ALL {
            if let Some(f) = &self.for_category(category).fuzzy {
                f.validate_for(category)?;
            }
        }
        let mut seen = BTreeSet::new();
        for k in &self.authority {
            if !seen.insert(k.as_str()) {
                return Err(ConfigError::DuplicateAuthority(k.as_str()));
            }
        }
        Ok(())
    }
}

fn tol(absolute: f64, relative: f64) -> Tolerance {
    Tolerance::new(absolute, relative).unwrap_or(Tolerance::EXACT)
}

fn weights(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
    pairs.iter().map(|(k, w)| ((*k).to_owned(), *w)).collect()
}

impl Default for ReconcileConfig {
    /// The defaults, chosen for the data of the Circular:
    ///
    /// * **authority**: ministry, ministry-level agency, government agency, department (Cục),
    ///   province, provincial department, district, commune, e-transaction provider.
    /// * **statistics**: relative 0.5 % for counts and values; per indicator: `success_rate`
    ///   and `system_availability` 0.1 percentage point; `mean_processing_time_ms` 5 %;
    ///   `transaction_value_vnd` 1 %; `security_incidents`, `blocked_attacks`,
    ///   `active_systems` exact (small counts: any difference deserves a look). Merge:
    ///   prefer authority. No fuzzy matching.
    /// * **policy**: exact, prefer authority, no fuzzy matching (numbers are official).
    /// * **workforce**: relative 5 % (participant counts are rounded differently by organiser
    ///   and supervisor); prefer authority; fuzzy: title 0.35, organiser 0.2, start date 0.2,
    ///   end date 0.1, province 0.1, activity type 0.05, expert e-mail and phone tokens 0.1
    ///   each; `expert_citizen_id` decisive; match 0.85, possible 0.65, 7-day date window,
    ///   60 % minimum evidence.
    /// * **enforcement**: exact (a fine is a fine); prefer authority; fuzzy: case number 0.25,
    ///   subject organisation 0.2, subject tax-code token 0.15, opening date 0.15, handling
    ///   body 0.1, case type 0.05, description 0.05, incident system 0.05; nothing decisive;
    ///   match 0.85, possible 0.65, 7-day window, 60 % minimum evidence.
    fn default() -> Self {
        let workforce_fuzzy = FuzzyConfig::new(
            weights(&[
                ("title", 0.35),
                ("organiser", 0.2),
                ("start_date", 0.2),
                ("end_date", 0.1),
                ("location_province_code", 0.1),
                ("activity_type", 0.05),
                ("expert_email", 0.1),
                ("expert_phone", 0.1),
            ]),
            ["expert_citizen_id".to_owned()].into_iter().collect(),
            0.85,
            0.65,
            7,
            0.6,
        )
        .ok();
        let enforcement_fuzzy = FuzzyConfig::new(
            weights(&[
                ("case_number", 0.25),
                ("subject_organisation", 0.2),
                ("subject_tax_code", 0.15),
                ("opened_on", 0.15),
                ("handling_body", 0.1),
                ("case_type", 0.05),
                ("description", 0.05),
                ("incident_system", 0.05),
            ]),
            BTreeSet::new(),
            0.85,
            0.65,
            7,
            0.6,
        )
        .ok();
        let stat_indicators: BTreeMap<String, Tolerance> = [
            ("success_rate", tol(0.1, 0.0)),
            ("system_availability", tol(0.1, 0.0)),
            ("mean_processing_time_ms", tol(0.0, 0.05)),
            ("transaction_value_vnd", tol(0.0, 0.01)),
            ("security_incidents", Tolerance::EXACT),
            ("blocked_attacks", Tolerance::EXACT),
            ("active_systems", Tolerance::EXACT),
        ]
        .into_iter()
        .map(|(k, t)| (k.to_owned(), t))
        .collect();
        Self {
            version: 1,
            authority: vec![
                OrgKind::Ministry,
                OrgKind::MinistryLevelAgency,
                OrgKind::GovernmentAgency,
                OrgKind::Department,
                OrgKind::Province,
                OrgKind::ProvincialDepartment,
                OrgKind::District,
                OrgKind::Commune,
                OrgKind::EtxProvider,
            ],
            statistics: CategoryConfig {
                tolerance: tol(0.0, 0.005),
                indicator_tolerances: stat_indicators,
                merge_rule: MergeRule::PreferAuthority,
                fuzzy: None,
            },
            policy: CategoryConfig {
                tolerance: Tolerance::EXACT,
                indicator_tolerances: BTreeMap::new(),
                merge_rule: MergeRule::PreferAuthority,
                fuzzy: None,
            },
            workforce: CategoryConfig {
                tolerance: tol(0.0, 0.05),
                indicator_tolerances: BTreeMap::new(),
                merge_rule: MergeRule::PreferAuthority,
                fuzzy: workforce_fuzzy,
            },
            enforcement: CategoryConfig {
                tolerance: Tolerance::EXACT,
                indicator_tolerances: BTreeMap::new(),
                merge_rule: MergeRule::PreferAuthority,
                fuzzy: enforcement_fuzzy,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_defaults_are_valid_and_complete() {
        let c = ReconcileConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.workforce.fuzzy.is_some() && c.enforcement.fuzzy.is_some());
        assert_eq!(c.authority_rank(OrgKind::Ministry), 0);
        assert!(c.authority_rank(OrgKind::Province) < c.authority_rank(OrgKind::Commune));
        let stats = c.for_category(Category::Statistics);
        assert_eq!(stats.tolerance_for(Some("security_incidents")), Tolerance::EXACT);
        assert_eq!(stats.tolerance_for(Some("transaction_count")), tol(0.0, 0.005));
        assert_eq!(stats.tolerance_for(None), tol(0.0, 0.005));
    }

    #[test]
    fn tolerances_combine_absolute_and_relative() {
        let t = Tolerance::new(2.0, 0.01).unwrap();
        assert!(t.allows(10.0, 12.0), "absolute wins for small values");
        assert!(!t.allows(10.0, 12.5));
        assert!(t.allows(1000.0, 1010.0), "relative wins for large values");
        assert!(!t.allows(1000.0, 1011.0));
        assert!(Tolerance::EXACT.allows(0.1 + 0.2, 0.3));
        assert!(!Tolerance::EXACT.allows(f64::NAN, f64::NAN));
        for (a, r) in [(-1.0, 0.0), (0.0, -0.1), (0.0, 1.5), (f64::INFINITY, 0.0)] {
            assert!(Tolerance::new(a, r).is_err(), "{a} {r}");
        }
    }

    #[test]
    fn fuzzy_settings_are_checked() {
        let w = weights(&[("title", 1.0)]);
        assert!(FuzzyConfig::new(w.clone(), BTreeSet::new(), 0.6, 0.8, 7, 0.5).is_err());
        assert!(FuzzyConfig::new(w.clone(), BTreeSet::new(), 1.2, 0.8, 7, 0.5).is_err());
        assert!(FuzzyConfig::new(w.clone(), BTreeSet::new(), 0.9, 0.8, 7, 1.5).is_err());
        assert!(FuzzyConfig::new(weights(&[("title", 0.0)]), BTreeSet::new(), 0.9, 0.8, 7, 0.5).is_err());
        assert!(FuzzyConfig::new(weights(&[("title", -1.0)]), BTreeSet::new(), 0.9, 0.8, 7, 0.5).is_err());

        let mut c = ReconcileConfig::default();
        c.enforcement.fuzzy =
            FuzzyConfig::new(weights(&[("colour", 1.0)]), BTreeSet::new(), 0.9, 0.8, 7, 0.5).ok();
        assert_eq!(
            c.validate(),
            Err(ConfigError::UnknownField {
                category: Category::Enforcement,
                field: "colour".to_owned()
            })
        );
        c.enforcement.fuzzy = FuzzyConfig::new(
            w,
            ["case_number".to_owned()].into_iter().collect(),
            0.9,
            0.8,
            7,
            0.5,
        )
        .ok();
        assert!(matches!(c.validate(), Err(ConfigError::UnknownField { .. })));
        let mut c = ReconcileConfig::default();
        c.enforcement.fuzzy = FuzzyConfig::new(
            weights(&[("case_number", 1.0)]),
            ["case_number".to_owned()].into_iter().collect(),
            0.9,
            0.8,
            7,
            0.5,
        )
        .ok();
        assert!(matches!(c.validate(), Err(ConfigError::NotATokenField { .. })));
        let mut c = ReconcileConfig::default();
        c.authority.push(OrgKind::Ministry);
        assert_eq!(c.validate(), Err(ConfigError::DuplicateAuthority("ministry")));
    }

    #[test]
    fn the_configuration_round_trips_and_refuses_bad_documents() {
        let c = ReconcileConfig::default();
        let doc = serde_json::to_value(&c).unwrap();
        assert_eq!(serde_json::from_value::<ReconcileConfig>(doc.clone()).unwrap(), c);
        let mut bad = doc.clone();
        bad["statistics"]["tolerance"] = json!({"absolute": -1});
        assert!(serde_json::from_value::<ReconcileConfig>(bad).is_err());
        let mut bad = doc;
        bad["workforce"]["fuzzy"]["match_threshold"] = json!(0.1);
        assert!(serde_json::from_value::<ReconcileConfig>(bad).is_err());
    }
}
