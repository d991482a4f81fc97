//! The masking operators (R-SEC-10, issue 5 §2) as pure functions on strings and counts: redact,
//! partial mask, generalise (date → year, address → province or commune) and small-cell
//! suppression. The keyed operators (tokens) are in [`crate::tokens`]; [`Operator`] names all of
//! them as a policy writes them.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::provinces;
use crate::text::fold_words;
use crate::tokens::{Normalise, Purpose};

/// The default redaction marker.
pub const REDACTED: &str = "[REDACTED]";

/// The default `k` of small-cell suppression: counts 1–4 are not published.
pub const DEFAULT_K: u32 = 5;

/// What to do with one value, as written in a policy document (`{"op": "partial", …}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Operator {
    /// Leave the value as it is (only for the analyst audience; see the policy rules).
    Keep,
    /// Replace the whole value with `marker`.
    Redact {
        /// The replacement text (default `[REDACTED]`).
        #[serde(default = "default_marker")]
        marker: String,
    },
    /// Keep the first `keep_first` and last `keep_last` characters, replace the others with
    /// `mask_char`; see [`partial_mask`].
    Partial {
        /// Characters kept at the start (default 0).
        #[serde(default)]
        keep_first: u8,
        /// Characters kept at the end (default 4).
        #[serde(default = "default_keep_last")]
        keep_last: u8,
        /// The masking character (default `*`).
        #[serde(default = "default_mask_char")]
        mask_char: char,
        /// For an e-mail address, mask the local part only and keep `@domain` (default true).
        #[serde(default = "default_true")]
        keep_email_domain: bool,
    },
    /// A keyed, irreversible token `tok_…` (HMAC-SHA256 under the purpose's key).
    Token {
        /// The purpose whose key makes the token; tokens of two purposes never match.
        purpose: Purpose,
        /// How the value is normalised first (default: trimmed).
        #[serde(default)]
        normalise: Normalise,
    },
    /// A keyed, deterministic, reversible token `rtk_…` (AES-SIV under the purpose's key);
    /// reversed only through an authorised re-identification.
    ReversibleToken {
        /// The purpose whose key encrypts.
        purpose: Purpose,
        /// How the value is normalised first (default: trimmed).
        #[serde(default)]
        normalise: Normalise,
    },
    /// Replace a date by its year or an address by its province or commune; a value that is
    /// not recognised is redacted.
    Generalise {
        /// The level to generalise to.
        to: Generalisation,
    },
    /// Run the detectors over the text and mask each finding with the policy's operator for
    /// its kind: the default for free-text fields.
    Detect,
    /// For a count in an aggregate: a count from 1 to `k − 1` becomes `null`.
    SuppressSmallCount {
        /// The threshold (default: the policy's `small_cell_k`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        k: Option<u32>,
    },
}

fn default_marker() -> String {
    REDACTED.to_owned()
}
fn default_keep_last() -> u8 {
    4
}
fn default_mask_char() -> char {
    '*'
}
fn default_true() -> bool {
    true
}

impl Operator {
    /// A redaction with the default marker.
    pub fn redact() -> Self {
        Self::Redact {
            marker: default_marker(),
        }
    }

    /// Which operator this is, without its parameters.
    pub fn kind(&self) -> OperatorKind {
        match self {
            Self::Keep => OperatorKind::Keep,
            Self::Redact { .. } => OperatorKind::Redact,
            Self::Partial { .. } => OperatorKind::Partial,
            Self::Token { .. } => OperatorKind::Token,
            Self::ReversibleToken { .. } => OperatorKind::ReversibleToken,
            Self::Generalise { .. } => OperatorKind::Generalise,
            Self::Detect => OperatorKind::Detect,
            Self::SuppressSmallCount { .. } => OperatorKind::SuppressSmallCount,
        }
    }

    /// The parameter names each operator accepts in a policy document (besides `op`).
    pub(crate) fn allowed_keys(op: &str) -> Option<&'static [&'static str]> {
        Some(match op {
            "keep" | "detect" => &[],
            "redact" => &["marker"],
            "partial" => &["keep_first", "keep_last", "mask_char", "keep_email_domain"],
            "token" | "reversible_token" => &["purpose", "normalise"],
            "generalise" => &["to"],
            "suppress_small_count" => &["k"],
            _ => return None,
        })
    }
}

/// An operator's name (`token`, `partial`…), as reported in a masked payload's `applied` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorKind {
    /// [`Operator::Keep`].
    Keep,
    /// [`Operator::Redact`].
    Redact,
    /// [`Operator::Partial`].
    Partial,
    /// [`Operator::Token`].
    Token,
    /// [`Operator::ReversibleToken`].
    ReversibleToken,
    /// [`Operator::Generalise`].
    Generalise,
    /// [`Operator::Detect`].
    Detect,
    /// [`Operator::SuppressSmallCount`].
    SuppressSmallCount,
}

impl OperatorKind {
    /// Every operator name, as a policy writes it.
    pub const ALL: [&'static str; 8] = [
        "keep",
        "redact",
        "partial",
        "token",
        "reversible_token",
        "generalise",
        "detect",
        "suppress_small_count",
    ];
}

impl fmt::Display for OperatorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Keep => "keep",
            Self::Redact => "redact",
            Self::Partial => "partial",
            Self::Token => "token",
            Self::ReversibleToken => "reversible_token",
            Self::Generalise => "generalise",
            Self::Detect => "detect",
            Self::SuppressSmallCount => "suppress_small_count",
        };
        f.write_str(s)
    }
}

/// The level [`Operator::Generalise`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generalisation {
    /// A date or date-time → its year (`2026-10-07` → `2026`).
    Year,
    /// A Vietnamese address → its provincial-level unit as of today (`Thành phố Hà Nội`).
    Province,
    /// A Vietnamese address → its commune and province (`Phường Ba Đình, Thành phố Hà Nội`), or
    /// the province alone when no commune is recognisable.
    Commune,
}

/// Masks all characters of `value` except the first `keep_first` and the last `keep_last`.
///
/// Rules:
/// * characters are Unicode scalar values, so `Hùng` has 4;
/// * at most half of the characters (rounded down) are ever revealed: `keep_first` is cut to
///   that budget first, then `keep_last` to what remains — so `1234` with `keep_last = 4`
///   gives `**34`, and a one-character value is fully masked;
/// * with `keep_email_domain`, a value of the form `local@domain` masks `local` by these rules
///   and keeps `@domain`.
///
/// `001099012345` with `keep_last = 4` → `********2345`.
pub fn partial_mask(
    value: &str,
    keep_first: usize,
    keep_last: usize,
    mask: char,
    keep_email_domain: bool,
) -> String {
    if keep_email_domain
        && let Some((local, domain)) = value.split_once('@')
        && !local.is_empty()
        && !domain.is_empty()
        && !domain.contains('@')
    {
        return format!(
            "{}@{domain}",
            partial_mask(local, keep_first, keep_last, mask, false)
        );
    }
    let chars: Vec<char> = value.chars().collect();
    let n = chars.len();
    let budget = n / 2;
    let first = keep_first.min(budget);
    let last = keep_last.min(budget - first);
    let mut out = String::with_capacity(value.len());
    out.extend(&chars[..first]);
    out.extend(std::iter::repeat_n(mask, n - first - last));
    out.extend(&chars[n - last..]);
    out
}

/// The generalised form of `value`, or `None` when it is not recognised (the caller redacts).
///
/// * [`Generalisation::Year`]: `YYYY-MM-DD…` (a date or an RFC 3339 date-time) or
///   `DD/MM/YYYY` → `YYYY`, when the date exists.
/// * [`Generalisation::Province`]: the address is split at `,` `;` and line breaks; a trailing
///   `Việt Nam` is dropped; the last component must name a provincial-level unit (2025 or
///   pre-2025 name, with or without `Thành phố`/`Tỉnh`/`TP`, with or without diacritics, or a
///   common alias such as `TP.HCM`) → that unit **as of 2025** with its kind
///   (`Tỉnh Bình Dương` → `Thành phố Hồ Chí Minh`).
/// * [`Generalisation::Commune`]: as for the province, plus the nearest earlier component
///   that starts with `Xã`, `Phường`, `Đặc khu`, `Thị trấn` (or `P.`/`X.`), kept as written:
///   `Phường Ba Đình, Thành phố Hà Nội`. Without one, the province alone. Commune names are
///   not checked against a list (the hub holds none yet).
pub fn generalise(value: &str, to: Generalisation) -> Option<String> {
    match to {
        Generalisation::Year => year_of(value).map(|y| y.to_string()),
        Generalisation::Province => {
            let (_, province) = address_parts(value)?;
            Some(province.full_name_vi())
        }
        Generalisation::Commune => {
            let (components, province) = address_parts(value)?;
            let commune = components.iter().rev().find(|c| {
                let w = fold_words(c);
                ["xa ", "phuong ", "dac khu ", "thi tran ", "p ", "x "]
                    .iter()
                    .any(|p| w.starts_with(p))
            });
            Some(match commune {
                Some(c) => format!("{c}, {}", province.full_name_vi()),
                None => province.full_name_vi(),
            })
        }
    }
}

fn year_of(value: &str) -> Option<i32> {
    let v = value.trim();
    if let Some(d) = v
        .get(..10)
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
    {
        let rest = &v[10..];
        if rest.is_empty() || rest.starts_with(['T', 't', ' ']) {
            return Some(d.year());
        }
    }
    NaiveDate::parse_from_str(v, "%d/%m/%Y").ok().map(|d| d.year())
}

/// The components before the province, and the province (as of 2025).
fn address_parts(value: &str) -> Option<(Vec<&str>, &'static provinces::Province)> {
    let mut components: Vec<&str> = value
        .split([',', ';', '\n'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    while components
        .last()
        .is_some_and(|c| matches!(crate::text::fold(c).as_str(), "vietnam" | "vn"))
    {
        components.pop();
    }
    let last = components.pop()?;
    let province = provinces::recognise(last)?;
    Some((components, province))
}

/// One published cell of an aggregate after small-cell suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// The count, published as it is.
    Shown(u64),
    /// Withheld: too small, or withheld so that a small one cannot be recovered from the total.
    Suppressed,
}

/// Primary suppression of one count: 1 ≤ `count` < `k` is withheld; 0 and counts ≥ `k` are
/// shown (a zero reveals no person). `k` ≤ 1 suppresses nothing.
pub fn suppress_count(count: u64, k: u64) -> Cell {
    if count >= 1 && count < k {
        Cell::Suppressed
    } else {
        Cell::Shown(count)
    }
}

/// Small-cell suppression of the cells of one group whose total is published (R-SHR,
/// R-SEC-10).
///
/// 1. Primary: every count from 1 to `k − 1` is withheld ([`suppress_count`]).
/// 2. Complementary: while some cell is withheld and either only one is, or the withheld
///    counts add up to less than `k`, the smallest shown non-zero count (the first of equals)
///    is withheld too — otherwise the total minus the shown cells would reveal the small one.
///    It stops when no shown non-zero count is left.
///
/// `[12, 3, 40]` with `k = 5` → `[Suppressed, Suppressed, Shown(40)]`.
pub fn suppress_cells(counts: &[u64], k: u64) -> Vec<Cell> {
    let mut cells: Vec<Cell> = counts.iter().map(|&c| suppress_count(c, k)).collect();
    loop {
        let withheld: Vec<u64> = counts
            .iter()
            .zip(&cells)
            .filter(|(_, c)| **c == Cell::Suppressed)
            .map(|(n, _)| *n)
            .collect();
        let sum: u64 = withheld.iter().fold(0u64, |a, b| a.saturating_add(*b));
        if withheld.is_empty() || (withheld.len() >= 2 && sum >= k) {
            return cells;
        }
        let next = cells
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match c {
                Cell::Shown(n) if *n > 0 => Some((*n, i)),
                _ => None,
            })
            .min();
        match next {
            Some((_, i)) => cells[i] = Cell::Suppressed,
            None => return cells,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_mask_keeps_the_last_characters() {
        assert_eq!(partial_mask("001099012345", 0, 4, '*', true), "********2345");
        assert_eq!(partial_mask("+84900000456", 0, 3, '*', true), "*********456");
        assert_eq!(partial_mask("Trần Văn Hùng", 1, 0, '*', true), "T************");
    }

    #[test]
    fn partial_mask_never_reveals_more_than_half_of_a_short_value() {
        assert_eq!(partial_mask("1234", 0, 4, '*', false), "**34");
        assert_eq!(partial_mask("123", 0, 4, '*', false), "**3");
        assert_eq!(partial_mask("12", 0, 4, '*', false), "*2");
        assert_eq!(partial_mask("1", 0, 4, '*', false), "*");
        assert_eq!(partial_mask("", 0, 4, '*', false), "");
        assert_eq!(partial_mask("abcdef", 2, 4, '#', false), "ab###f");
        assert_eq!(partial_mask("ồồồồ", 0, 255, '*', false), "**ồồ");
    }

    #[test]
    fn partial_mask_of_an_email_keeps_the_domain() {
        assert_eq!(
            partial_mask("tran.hung@example.vn", 1, 0, '*', true),
            "t********@example.vn"
        );
        assert_eq!(partial_mask("a@b.vn", 1, 0, '*', true), "*@b.vn");
        assert_eq!(partial_mask("@b.vn", 1, 0, '*', true), "@****");
        assert_eq!(partial_mask("x@y@z", 0, 0, '*', true), "*****");
        assert_eq!(partial_mask("tran.hung@example.vn", 1, 0, '*', false).len(), 20);
    }

    #[test]
    fn dates_generalise_to_their_year() {
        let y = |s: &str| generalise(s, Generalisation::Year);
        assert_eq!(y("2026-10-07").as_deref(), Some("2026"));
        assert_eq!(y("2026-10-12T02:14:00+07:00").as_deref(), Some("2026"));
        assert_eq!(y("07/10/1990").as_deref(), Some("1990"));
        assert_eq!(y("2026-02-30"), None);
        assert_eq!(y("2026-10-07abc"), None);
        assert_eq!(y("hôm qua"), None);
        assert_eq!(y("ồồồồồồồồồồồ"), None);
    }

    #[test]
    fn addresses_generalise_to_province_or_commune() {
        let p = |s: &str| generalise(s, Generalisation::Province);
        let c = |s: &str| generalise(s, Generalisation::Commune);
        let hn = "Phường Ba Đình, Thành phố Hà Nội";
        assert_eq!(p(hn).as_deref(), Some("Thành phố Hà Nội"));
        assert_eq!(c(hn).as_deref(), Some(hn));
        let old = "Số 12 đường Lê Lợi, Phường Phú Cường, TP. Thủ Dầu Một, Tỉnh Bình Dương, Việt Nam";
        assert_eq!(p(old).as_deref(), Some("Thành phố Hồ Chí Minh"));
        assert_eq!(c(old).as_deref(), Some("Phường Phú Cường, Thành phố Hồ Chí Minh"));
        assert_eq!(c("Thôn 3, Ia Grai, Gia Lai").as_deref(), Some("Tỉnh Gia Lai"));
        assert_eq!(
            c("xã Ia Grai; tinh gia lai").as_deref(),
            Some("xã Ia Grai, Tỉnh Gia Lai")
        );
        assert_eq!(p("12 Nguyễn Huệ, Quận 1"), None);
        assert_eq!(p("Paris, France"), None);
        assert_eq!(p(""), None);
        assert_eq!(p(", ,"), None);
    }

    #[test]
    fn small_counts_are_suppressed_and_zero_is_shown() {
        assert_eq!(suppress_count(0, 5), Cell::Shown(0));
        assert_eq!(suppress_count(1, 5), Cell::Suppressed);
        assert_eq!(suppress_count(4, 5), Cell::Suppressed);
        assert_eq!(suppress_count(5, 5), Cell::Shown(5));
        assert_eq!(suppress_count(1, 1), Cell::Shown(1));
    }

    #[test]
    fn a_lone_small_cell_gets_a_complementary_partner() {
        use Cell::*;
        assert_eq!(
            suppress_cells(&[12, 3, 40], 5),
            vec![Suppressed, Suppressed, Shown(40)]
        );
        // Two small cells adding up to less than k: a third is withheld.
        assert_eq!(
            suppress_cells(&[1, 2, 30, 9], 5),
            vec![Suppressed, Suppressed, Shown(30), Suppressed]
        );
        // Two small cells adding up to k: enough.
        assert_eq!(
            suppress_cells(&[2, 3, 30], 5),
            vec![Suppressed, Suppressed, Shown(30)]
        );
        assert_eq!(suppress_cells(&[10, 20], 5), vec![Shown(10), Shown(20)]);
        // Zeros are never partners; a lone small cell with nothing to pair stays alone.
        assert_eq!(suppress_cells(&[0, 3], 5), vec![Shown(0), Suppressed]);
        assert_eq!(suppress_cells(&[], 5), vec![]);
        assert_eq!(
            suppress_cells(&[u64::MAX, 1, u64::MAX], 5),
            vec![Suppressed, Suppressed, Shown(u64::MAX)]
        );
    }
}
