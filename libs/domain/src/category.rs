//! The four data categories of Art. 8.2 (R-DATA-1) and their schema versions.

use crate::{ParseError, ViolationCode};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A data category (R-DATA-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Strategies, plans, policies, legal documents, standards.
    Policy,
    /// Reported and measured statistics; security-monitoring data.
    Statistics,
    /// Training, capacity building, human resources, experts.
    Workforce,
    /// Inspection, complaints, denunciations, violations, incident reports.
    Enforcement,
}

impl Category {
    /// Every category, in the order of Art. 8.2.
    pub const ALL: [Category; 4] = [Self::Policy, Self::Statistics, Self::Workforce, Self::Enforcement];

    /// Parses a category code.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_lowercase().as_str() {
            "policy" => Ok(Self::Policy),
            "statistics" => Ok(Self::Statistics),
            "workforce" => Ok(Self::Workforce),
            "enforcement" => Ok(Self::Enforcement),
            _ => Err(ParseError::new(
                ViolationCode::UnknownCategory,
                format!("unknown category `{s}`"),
            )),
        }
    }

    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Policy => "policy",
            Self::Statistics => "statistics",
            Self::Workforce => "workforce",
            Self::Enforcement => "enforcement",
        }
    }

    /// The Vietnamese name (GLOSSARY.md).
    pub fn name_vi(self) -> &'static str {
        match self {
            Self::Policy => {
                "Chiến lược, kế hoạch, chính sách; văn bản quy phạm pháp luật; tiêu chuẩn, quy chuẩn kỹ thuật"
            }
            Self::Statistics => {
                "Số liệu báo cáo, đo lường, thống kê hoạt động giao dịch điện tử; dữ liệu giám sát an toàn hệ thống thông tin"
            }
            Self::Workforce => "Đào tạo, bồi dưỡng, phát triển nguồn nhân lực, chuyên gia",
            Self::Enforcement => {
                "Thanh tra, kiểm tra, giải quyết khiếu nại, tố cáo, xử lý vi phạm; báo cáo vụ việc"
            }
        }
    }

    /// The English name (GLOSSARY.md).
    pub fn name_en(self) -> &'static str {
        match self {
            Self::Policy => {
                "Strategies, plans, policies; legal documents; standards and technical regulations"
            }
            Self::Statistics => {
                "Reported and measured statistics of e-transactions; security-monitoring data"
            }
            Self::Workforce => "Training, capacity building, human resources, experts",
            Self::Enforcement => "Inspection, complaints, denunciations, violations; incident reports",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A schema version of a category: a positive integer, written `1` or `v1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SchemaVersion(u16);

impl SchemaVersion {
    /// Version 1, the first published schema of every category.
    pub const V1: SchemaVersion = SchemaVersion(1);

    /// Parses `1` or `v1`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let t = s.trim();
        let digits = t.strip_prefix('v').or_else(|| t.strip_prefix('V')).unwrap_or(t);
        match digits.parse::<u16>() {
            Ok(n) if n >= 1 => Ok(Self(n)),
            _ => Err(ParseError::new(
                ViolationCode::UnknownSchemaVersion,
                format!("invalid schema version `{s}`"),
            )),
        }
    }

    /// The version number.
    pub fn number(self) -> u16 {
        self.0
    }
}

impl fmt::Display for SchemaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<String> for SchemaVersion {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<SchemaVersion> for String {
    fn from(v: SchemaVersion) -> String {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_round_trip() {
        for c in Category::ALL {
            assert_eq!(Category::parse(c.as_str()).ok(), Some(c));
        }
        assert!(Category::parse("weather").is_err());
    }

    #[test]
    fn schema_versions_accept_both_spellings() {
        assert_eq!(SchemaVersion::parse("v1").ok(), Some(SchemaVersion::V1));
        assert_eq!(SchemaVersion::parse("2").map(|v| v.number()).ok(), Some(2));
        assert!(SchemaVersion::parse("0").is_err());
        assert!(SchemaVersion::parse("one").is_err());
    }
}
