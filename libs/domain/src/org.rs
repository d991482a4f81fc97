//! Organisations and their effective-dated hierarchy (R-SRC-1).
//!
//! Since 1 July 2025 Vietnam has two tiers of local government; district People's Committees
//! exist only in history. The hierarchy is therefore data with validity dates, never code:
//! a unit that merged gets a `valid_to`, its successor a `valid_from`.

use crate::{OrgId, ParseError, ViolationCode};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// The day the district level ended (Resolution 202/2025/QH15).
pub fn district_level_end() -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 7, 1).unwrap_or(NaiveDate::MIN)
}

/// The kind of an organisation (GLOSSARY.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// Bộ.
    Ministry,
    /// Cơ quan ngang bộ.
    MinistryLevelAgency,
    /// Cơ quan thuộc Chính phủ.
    GovernmentAgency,
    /// Tổng cục / Cục of a ministry.
    Department,
    /// Provincial People's Committee.
    Province,
    /// Sở of a province.
    ProvincialDepartment,
    /// District People's Committee: history only, ended on 1 July 2025.
    District,
    /// Commune-level People's Committee.
    Commune,
    /// E-transaction solution provider (company).
    EtxProvider,
}

impl OrgKind {
    /// Every kind.
    pub const ALL: [OrgKind; 9] = [
        Self::Ministry,
        Self::MinistryLevelAgency,
        Self::GovernmentAgency,
        Self::Department,
        Self::Province,
        Self::ProvincialDepartment,
        Self::District,
        Self::Commune,
        Self::EtxProvider,
    ];

    /// Parses a kind code.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let norm = s.trim().to_lowercase().replace('-', "_");
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == norm)
            .ok_or_else(|| ParseError::new(ViolationCode::Enum, format!("unknown organisation kind `{s}`")))
    }

    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ministry => "ministry",
            Self::MinistryLevelAgency => "ministry_level_agency",
            Self::GovernmentAgency => "government_agency",
            Self::Department => "department",
            Self::Province => "province",
            Self::ProvincialDepartment => "provincial_department",
            Self::District => "district",
            Self::Commune => "commune",
            Self::EtxProvider => "etx_provider",
        }
    }

    /// Whether an organisation of this kind may sit under a parent of kind `parent`
    /// (`None` = a root of the hierarchy).
    pub fn may_have_parent(self, parent: Option<OrgKind>) -> bool {
        use OrgKind::*;
        match (self, parent) {
            (Ministry | MinistryLevelAgency | GovernmentAgency | Province | EtxProvider, None) => true,
            (Department, Some(Ministry | MinistryLevelAgency | GovernmentAgency)) => true,
            (ProvincialDepartment | District, Some(Province)) => true,
            (Commune, Some(Province | District)) => true,
            // A company may be registered under the body that supervises it.
            (EtxProvider, Some(Ministry | MinistryLevelAgency | GovernmentAgency | Province)) => true,
            _ => false,
        }
    }
}

impl fmt::Display for OrgKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrgKind {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// An organisation's unique code: 2–64 of `A–Z 0–9 . _ -`, starting with a letter or digit,
/// stored upper-case (e.g. `BO-KHCN`, `HN`, `79`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgCode(String);

impl OrgCode {
    /// Parses and normalises a code.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim().to_ascii_uppercase();
        let ok_len = (2..=64).contains(&t.len());
        let ok_chars = t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        let ok_first = t.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
        if ok_len && ok_chars && ok_first {
            Ok(Self(t))
        } else {
            Err(ParseError::new(
                ViolationCode::Format,
                "organisation code must be 2-64 of A-Z 0-9 . _ -",
            ))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for OrgCode {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<OrgCode> for String {
    fn from(c: OrgCode) -> String {
        c.0
    }
}

fn display_name(s: &str, what: &str) -> Result<String, ParseError> {
    let t = s.trim();
    let chars = t.chars().count();
    if chars == 0 {
        return Err(ParseError::new(
            ViolationCode::Required,
            format!("{what} is empty"),
        ));
    }
    if chars > 255 {
        return Err(ParseError::new(
            ViolationCode::TooLarge,
            format!("{what} is longer than 255 characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(ParseError::new(
            ViolationCode::Format,
            format!("{what} contains control characters"),
        ));
    }
    Ok(t.to_owned())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a name: 1–255 characters, no control characters, trimmed.
            pub fn parse(s: &str) -> Result<Self, ParseError> {
                display_name(s, $what).map(Self)
            }
            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = ParseError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0
            }
        }
    };
}

name_type!(
    /// An organisation's display name, with its diacritics (e.g. `Sở Khoa học và Công nghệ Hà Nội`).
    OrgName,
    "organisation name"
);
name_type!(
    /// A connected system's display name.
    SystemName,
    "system name"
);

/// An organisation with its place in the hierarchy and its validity dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    /// Its id.
    pub id: OrgId,
    /// Its unique code.
    pub code: OrgCode,
    /// Its name.
    pub name: OrgName,
    /// Its kind.
    pub kind: OrgKind,
    /// The organisation it belongs to, if any.
    pub parent: Option<OrgId>,
    /// First day it exists (inclusive).
    pub valid_from: NaiveDate,
    /// First day it no longer exists (exclusive), if it ended.
    pub valid_to: Option<NaiveDate>,
}

/// Why an organisation cannot be placed in the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HierarchyError {
    /// The kind may not sit under that parent.
    #[error("an organisation of kind {child} cannot belong to {parent}")]
    KindMismatch { child: OrgKind, parent: String },
    /// A district must end no later than 1 July 2025.
    #[error("district People's Committees exist only before 1 July 2025")]
    DistrictAfterReform,
    /// The validity dates are reversed.
    #[error("valid_to must be after valid_from")]
    EmptyValidity,
    /// The parent does not exist on the child's first day.
    #[error("the parent organisation does not exist on {0}")]
    ParentNotEffective(NaiveDate),
}

impl Organisation {
    /// Whether the organisation exists on `date`.
    pub fn is_effective_on(&self, date: NaiveDate) -> bool {
        self.valid_from <= date && self.valid_to.is_none_or(|end| date < end)
    }

    /// Checks the rules that involve only this organisation and its parent.
    pub fn check_placement(&self, parent: Option<&Organisation>) -> Result<(), HierarchyError> {
        if self.valid_to.is_some_and(|end| end <= self.valid_from) {
            return Err(HierarchyError::EmptyValidity);
        }
        if self.kind == OrgKind::District && self.valid_to.is_none_or(|end| end > district_level_end()) {
            return Err(HierarchyError::DistrictAfterReform);
        }
        if !self.kind.may_have_parent(parent.map(|p| p.kind)) {
            return Err(HierarchyError::KindMismatch {
                child: self.kind,
                parent: parent.map_or_else(|| "no parent".to_owned(), |p| p.kind.to_string()),
            });
        }
        if let Some(p) = parent
            && !p.is_effective_on(self.valid_from)
        {
            return Err(HierarchyError::ParentNotEffective(self.valid_from));
        }
        Ok(())
    }
}

/// An in-memory view of the hierarchy for subtree questions ("is this record's organisation
/// inside the province I may see?", R-SEC authorisation and R-AGG roll-ups).
#[derive(Debug, Clone, Default)]
pub struct OrgTree {
    orgs: HashMap<OrgId, Organisation>,
}

impl OrgTree {
    /// Builds the tree from every organisation.
    pub fn new(orgs: impl IntoIterator<Item = Organisation>) -> Self {
        Self {
            orgs: orgs.into_iter().map(|o| (o.id, o)).collect(),
        }
    }

    /// Every organisation, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Organisation> {
        self.orgs.values()
    }

    /// Looks an organisation up.
    pub fn get(&self, id: OrgId) -> Option<&Organisation> {
        self.orgs.get(&id)
    }

    /// The chain from `id` up to its root, `id` first. Stops on a cycle.
    pub fn ancestors(&self, id: OrgId) -> Vec<OrgId> {
        let mut out = Vec::new();
        let mut cur = Some(id);
        while let Some(c) = cur {
            if out.contains(&c) {
                break;
            }
            out.push(c);
            cur = self.orgs.get(&c).and_then(|o| o.parent);
        }
        out
    }

    /// Whether `id` is `root` or lies below it.
    pub fn is_within(&self, id: OrgId, root: OrgId) -> bool {
        self.ancestors(id).contains(&root)
    }

    /// The organisations effective on `date` that are `root` or lie below it.
    pub fn subtree_on(&self, root: OrgId, date: NaiveDate) -> Vec<&Organisation> {
        let mut v: Vec<&Organisation> = self
            .orgs
            .values()
            .filter(|o| o.is_effective_on(date) && self.is_within(o.id, root))
            .collect();
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
    }

    fn org(
        code: &str,
        kind: OrgKind,
        parent: Option<OrgId>,
        from: NaiveDate,
        to: Option<NaiveDate>,
    ) -> Organisation {
        Organisation {
            id: OrgId::new(),
            code: OrgCode::parse(code).unwrap_or_else(|_| panic!("bad code {code}")),
            name: OrgName::parse(code).unwrap_or_else(|_| panic!("bad name {code}")),
            kind,
            parent,
            valid_from: from,
            valid_to: to,
        }
    }

    #[test]
    fn codes_are_normalised_and_checked() {
        assert_eq!(
            OrgCode::parse(" bo-khcn ").map(|c| c.to_string()).ok().as_deref(),
            Some("BO-KHCN")
        );
        for bad in ["", "A", "-AB", "HÀ NỘI", "a b", &"X".repeat(65)] {
            assert!(OrgCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_keep_diacritics_and_refuse_control_characters() {
        assert_eq!(
            OrgName::parse(" Sở Khoa học và Công nghệ ")
                .map(|n| n.to_string())
                .ok()
                .as_deref(),
            Some("Sở Khoa học và Công nghệ")
        );
        assert!(OrgName::parse("  ").is_err());
        assert!(OrgName::parse("a\u{0}b").is_err());
    }

    #[test]
    fn districts_are_history_only() {
        let hn = org("01", OrgKind::Province, None, date(2008, 8, 1), None);
        let live = org(
            "HN-BADINH",
            OrgKind::District,
            Some(hn.id),
            date(2008, 8, 1),
            None,
        );
        assert_eq!(
            live.check_placement(Some(&hn)),
            Err(HierarchyError::DistrictAfterReform)
        );
        let past = org(
            "HN-BADINH",
            OrgKind::District,
            Some(hn.id),
            date(2008, 8, 1),
            Some(district_level_end()),
        );
        assert_eq!(past.check_placement(Some(&hn)), Ok(()));
    }

    #[test]
    fn kinds_sit_only_under_allowed_parents() {
        let ministry = org("BO-KHCN", OrgKind::Ministry, None, date(2025, 3, 1), None);
        let so = org(
            "HN-SKHCN",
            OrgKind::ProvincialDepartment,
            Some(ministry.id),
            date(2025, 3, 1),
            None,
        );
        assert!(matches!(
            so.check_placement(Some(&ministry)),
            Err(HierarchyError::KindMismatch { .. })
        ));
        let cuc = org(
            "CDS",
            OrgKind::Department,
            Some(ministry.id),
            date(2025, 3, 1),
            None,
        );
        assert_eq!(cuc.check_placement(Some(&ministry)), Ok(()));
        let orphan = org("CDS2", OrgKind::Department, None, date(2025, 3, 1), None);
        assert!(orphan.check_placement(None).is_err());
    }

    #[test]
    fn subtree_follows_validity_dates_across_the_2025_merger() {
        let ha_giang = org(
            "02",
            OrgKind::Province,
            None,
            date(1991, 10, 1),
            Some(district_level_end()),
        );
        let tuyen_quang = org("08", OrgKind::Province, None, date(1991, 10, 1), None);
        let commune_old = org(
            "02-XA1",
            OrgKind::Commune,
            Some(ha_giang.id),
            date(2000, 1, 1),
            Some(district_level_end()),
        );
        let commune_new = org(
            "08-XA1",
            OrgKind::Commune,
            Some(tuyen_quang.id),
            district_level_end(),
            None,
        );
        let tree = OrgTree::new([
            ha_giang.clone(),
            tuyen_quang.clone(),
            commune_old.clone(),
            commune_new.clone(),
        ]);
        assert!(tree.is_within(commune_new.id, tuyen_quang.id));
        assert!(!tree.is_within(commune_old.id, tuyen_quang.id));
        assert_eq!(tree.subtree_on(ha_giang.id, date(2024, 1, 1)).len(), 2);
        assert_eq!(tree.subtree_on(ha_giang.id, date(2026, 1, 1)).len(), 0);
        assert_eq!(tree.subtree_on(tuyen_quang.id, date(2026, 1, 1)).len(), 2);
    }
}
