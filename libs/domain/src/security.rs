//! Security fields of every record (R-DATA-2): classification, priority and form (R-ING-2).
//! State secrets are out of scope and always refused (R-SRC-2).

use crate::{ParseError, ViolationCode};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How sensitive a record is. There is deliberately no variant for state secrets:
/// [`Classification::parse`] refuses every state-secret label (R-SRC-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    /// Công khai.
    Public,
    /// Sử dụng nội bộ.
    Internal,
    /// Hạn chế tiếp cận.
    Confidential,
    /// Bí mật cá nhân / kinh doanh (personal or business secret, not a state secret).
    Secret,
}

/// Labels that mean "state secret" (Mật, Tối mật, Tuyệt mật) in any spelling we accept.
const STATE_SECRET_LABELS: &[&str] = &[
    "state_secret",
    "state-secret",
    "statesecret",
    "mat",
    "mật",
    "toi_mat",
    "tối mật",
    "tối_mật",
    "toi-mat",
    "tuyet_mat",
    "tuyệt mật",
    "tuyệt_mật",
    "tuyet-mat",
    "top_secret",
    "top-secret",
];

impl Classification {
    /// Parses a classification code. State-secret labels give
    /// [`ViolationCode::StateSecret`], anything else unknown gives [`ViolationCode::Enum`].
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let norm = s.trim().to_lowercase();
        match norm.as_str() {
            "public" => Ok(Self::Public),
            "internal" => Ok(Self::Internal),
            "confidential" => Ok(Self::Confidential),
            "secret" => Ok(Self::Secret),
            _ if STATE_SECRET_LABELS.contains(&norm.as_str()) => Err(ParseError::new(
                ViolationCode::StateSecret,
                "state-secret data is not accepted (R-SRC-2)",
            )),
            _ => Err(ParseError::new(
                ViolationCode::Enum,
                format!("unknown classification `{s}`"),
            )),
        }
    }

    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::Confidential => "confidential",
            Self::Secret => "secret",
        }
    }

    /// All accepted values, for documentation and schemas.
    pub const ALL: [Classification; 4] = [Self::Public, Self::Internal, Self::Confidential, Self::Secret];
}

/// Handling priority (App. I 3.2): high records are processed first in every queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Cao.
    High,
    /// Bình thường.
    #[default]
    Normal,
    /// Thấp.
    Low,
}

impl Priority {
    /// Parses a priority code.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_lowercase().as_str() {
            "high" => Ok(Self::High),
            "normal" => Ok(Self::Normal),
            "low" => Ok(Self::Low),
            _ => Err(ParseError::new(
                ViolationCode::Enum,
                format!("unknown priority `{s}`"),
            )),
        }
    }

    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }

    /// 0 for high, 1 for normal, 2 for low: smaller is served first.
    pub fn rank(self) -> u8 {
        match self {
            Self::High => 0,
            Self::Normal => 1,
            Self::Low => 2,
        }
    }

    /// The inverse of [`Priority::rank`].
    pub fn from_rank(rank: u8) -> Option<Self> {
        match rank {
            0 => Some(Self::High),
            1 => Some(Self::Normal),
            2 => Some(Self::Low),
            _ => None,
        }
    }

    /// Highest first.
    pub const ALL: [Priority; 3] = [Self::High, Self::Normal, Self::Low];
}

/// The form in which a record was submitted (R-ING-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    /// Dữ liệu nguyên vẹn.
    #[default]
    Raw,
    /// Dữ liệu ẩn một phần.
    Masked,
}

impl Form {
    /// Parses a form code.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_lowercase().as_str() {
            "raw" => Ok(Self::Raw),
            "masked" => Ok(Self::Masked),
            _ => Err(ParseError::new(
                ViolationCode::Enum,
                format!("unknown form `{s}`"),
            )),
        }
    }

    /// The wire code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Masked => "masked",
        }
    }
}

macro_rules! display_from_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $t {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    )*};
}
display_from_str!(Classification, Priority, Form);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_secret_labels_are_always_refused() {
        for label in ["state_secret", "Mật", "TỐI MẬT", "tuyet_mat", "top-secret"] {
            let err = Classification::parse(label).err();
            assert_eq!(err.map(|e| e.code), Some(ViolationCode::StateSecret), "{label}");
        }
    }

    #[test]
    fn known_classifications_parse_and_unknown_ones_do_not() {
        assert_eq!(Classification::parse("Secret").ok(), Some(Classification::Secret));
        assert_eq!(
            Classification::parse("top").err().map(|e| e.code),
            Some(ViolationCode::Enum)
        );
    }

    #[test]
    fn priority_rank_orders_high_first() {
        let mut all = vec![Priority::Low, Priority::High, Priority::Normal];
        all.sort_by_key(|p| p.rank());
        assert_eq!(all, Priority::ALL.to_vec());
        assert_eq!(Priority::from_rank(2), Some(Priority::Low));
        assert_eq!(Priority::from_rank(3), None);
    }
}
