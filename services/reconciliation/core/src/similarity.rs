//! Field similarity for fuzzy matching (R-REC): Jaro, Jaro-Winkler and token-set similarity
//! over folded Vietnamese text (see [`crate::normalise`]), and closeness of dates and numbers.
//! Every function returns a value in `[0, 1]`, 1 meaning identical, and is symmetric.

use chrono::NaiveDate;

use crate::normalise::{fold, fold_name};

/// The Jaro similarity of two strings, compared character by character (Unicode scalars):
/// `(m/|a| + m/|b| + (m − t)/m) / 3` with `m` matching characters (equal and at most
/// `max(|a|, |b|)/2 − 1` positions apart) and `t` half the transpositions. Two empty strings
/// are identical (1); one empty string matches nothing (0).
///
/// ```
/// use etx_reconciliation_core::similarity::jaro;
/// assert!((jaro("martha", "marhta") - 0.9444).abs() < 1e-4);
/// ```
pub fn jaro(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    jaro_chars(&a, &b)
}

fn jaro_chars(a: &[char], b: &[char]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut a_matched = vec![false; a.len()];
    let mut b_matched = vec![false; b.len()];
    let mut matches = 0usize;
    for (i, ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for j in lo..hi {
            if !b_matched[j] && b[j] == *ca {
                a_matched[i] = true;
                b_matched[j] = true;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let a_seq = a.iter().zip(&a_matched).filter(|(_, m)| **m).map(|(c, _)| c);
    let b_seq = b.iter().zip(&b_matched).filter(|(_, m)| **m).map(|(c, _)| c);
    let half_transpositions = a_seq.zip(b_seq).filter(|(x, y)| x != y).count();
    let m = matches as f64;
    let t = half_transpositions as f64 / 2.0;
    (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0
}

/// The Jaro-Winkler similarity: Jaro, raised for a common prefix of up to four characters
/// (`jaro + ℓ · 0.1 · (1 − jaro)`).
///
/// ```
/// use etx_reconciliation_core::similarity::jaro_winkler;
/// assert!((jaro_winkler("martha", "marhta") - 0.9611).abs() < 1e-4);
/// assert_eq!(jaro_winkler("Hà Nội", "Hà Nội"), 1.0);
/// ```
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let j = jaro_chars(&a, &b);
    let prefix = a.iter().zip(&b).take(4).take_while(|(x, y)| x == y).count();
    clamp(j + prefix as f64 * 0.1 * (1.0 - j))
}

/// The token-set similarity of two texts: the Sørensen–Dice coefficient
/// `2·|A ∩ B| / (|A| + |B|)` of their sets of folded words ([`fold_name`], so diacritics, case,
/// punctuation and the common abbreviations do not count). Word order does not matter; two
/// texts without words are identical (1).
///
/// ```
/// use etx_reconciliation_core::similarity::token_set;
/// assert_eq!(token_set("Sở Tư pháp Hà Nội", "Hà Nội – So Tu Phap"), 1.0);
/// assert_eq!(token_set("Sở Tư pháp Hà Nội", "Sở Tư pháp Hà Tĩnh"), 0.8);
/// ```
pub fn token_set(a: &str, b: &str) -> f64 {
    let fa = fold_name(a);
    let fb = fold_name(b);
    let mut sa: Vec<&str> = fa.split(' ').filter(|w| !w.is_empty()).collect();
    let mut sb: Vec<&str> = fb.split(' ').filter(|w| !w.is_empty()).collect();
    sa.sort_unstable();
    sa.dedup();
    sb.sort_unstable();
    sb.dedup();
    if sa.is_empty() && sb.is_empty() {
        return 1.0;
    }
    let common = sa.iter().filter(|w| sb.binary_search(w).is_ok()).count();
    clamp(2.0 * common as f64 / (sa.len() + sb.len()) as f64)
}

/// The similarity of two names (of organisations, activities, bodies): the mean of the
/// Jaro-Winkler similarity of the folded names ([`fold_name`]), which forgives typing errors
/// but rewards a long common prefix, and their [`token_set`] similarity, which forgives a
/// different word order but no typing error. Only names close in both senses score high:
/// `Sở Tư pháp Hà Nội` and `Sở Tư pháp Hải Phòng` share a long prefix (Jaro-Winkler ≈ 0.93)
/// but only three words of five (token set 0.6).
///
/// ```
/// use etx_reconciliation_core::similarity::name;
/// assert_eq!(name("Sở Tư pháp Hà Nội", "So Tu Phap Ha Noi"), 1.0);
/// assert!(name("Sở Tư pháp Hà Nội", "Sở Tư pháp Hải Phòng") < 0.8);
/// assert!(name("Sở Tư pháp Hà Nội", "Công an tỉnh Gia Lai") < 0.4);
/// ```
pub fn name(a: &str, b: &str) -> f64 {
    clamp((jaro_winkler(&fold_name(a), &fold_name(b)) + token_set(a, b)) / 2.0)
}

/// Whether two texts are equal once folded ([`fold`]): 1 or 0.
pub fn exact(a: &str, b: &str) -> f64 {
    if fold(a) == fold(b) { 1.0 } else { 0.0 }
}

/// The closeness of two dates: 1 on the same day, falling linearly to 0 at `window_days` days
/// apart (0 beyond). A window of 0 days means "same day or nothing".
///
/// ```
/// use chrono::NaiveDate;
/// use etx_reconciliation_core::similarity::date;
/// let d = |s| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
/// assert_eq!(date(d("2026-09-08"), d("2026-09-08"), 7), 1.0);
/// assert!((date(d("2026-09-08"), d("2026-09-09"), 7) - 6.0 / 7.0).abs() < 1e-9);
/// assert_eq!(date(d("2026-09-08"), d("2026-10-08"), 7), 0.0);
/// ```
pub fn date(a: NaiveDate, b: NaiveDate, window_days: u32) -> f64 {
    let apart = (a - b).num_days().unsigned_abs();
    if apart == 0 {
        return 1.0;
    }
    let window = u64::from(window_days);
    if apart >= window {
        return 0.0;
    }
    clamp(1.0 - apart as f64 / window as f64)
}

/// The closeness of two non-negative quantities: `1 − |a − b| / max(|a|, |b|)`; two zeros are
/// identical. Values that are not finite give 0.
pub fn number(a: f64, b: f64) -> f64 {
    if !a.is_finite() || !b.is_finite() {
        return 0.0;
    }
    let scale = a.abs().max(b.abs());
    if scale == 0.0 {
        return 1.0;
    }
    clamp(1.0 - (a - b).abs() / scale)
}

fn clamp(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn jaro_and_jaro_winkler_match_the_published_examples() {
        // Winkler (1990) and the usual test vectors.
        assert!(close(jaro("martha", "marhta"), 0.9444));
        assert!(close(jaro_winkler("martha", "marhta"), 0.9611));
        assert!(close(jaro("dwayne", "duane"), 0.8222));
        assert!(close(jaro_winkler("dwayne", "duane"), 0.84));
        assert!(close(jaro("dixon", "dicksonx"), 0.7667));
        assert!(close(jaro_winkler("dixon", "dicksonx"), 0.8133));
        assert_eq!(jaro("", ""), 1.0);
        assert_eq!(jaro("abc", ""), 0.0);
        assert_eq!(jaro("abc", "xyz"), 0.0);
        assert_eq!(jaro_winkler("a", "a"), 1.0);
    }

    #[test]
    fn similarities_are_symmetric_and_bounded() {
        let samples = [
            "Sở Tư pháp Hà Nội",
            "So Tu Phap Ha Noi",
            "Thanh tra Bộ Khoa học và Công nghệ",
            "Công ty TNHH Hợp đồng Số Việt",
            "",
            "x",
            "Đắk Lắk",
        ];
        for a in samples {
            for b in samples {
                for f in [jaro, jaro_winkler, token_set, name, exact] {
                    let (x, y) = (f(a, b), f(b, a));
                    assert!((0.0..=1.0).contains(&x), "{a} / {b}: {x}");
                    assert!(close(x, y), "{a} / {b}: {x} vs {y}");
                }
            }
        }
    }

    #[test]
    fn vietnamese_names_match_without_diacritics() {
        assert_eq!(name("Sở Tư pháp Hà Nội", "So Tu Phap Ha Noi"), 1.0);
        assert_eq!(exact("Sở Tư pháp Hà Nội", "SO TU PHAP HA NOI"), 1.0);
        assert_eq!(
            name(
                "Sở Khoa học và Công nghệ TP. Hồ Chí Minh",
                "So KH&CN Thanh pho HCM"
            ),
            1.0
        );
        assert!(name("Sở Tư pháp Hà Nội", "Sở Tư pháp Hải Phòng") < 0.8);
        assert_eq!(
            name("Thanh tra Bộ Khoa học và Công nghệ", "Thanh tra Bo KHCN"),
            1.0
        );
        // A typing error in one word, and a different word order, still score high.
        assert!(name("Sở Tư pháp Hà Nội", "Sở Tư phápp Hà Nội") > 0.85);
        assert!(name("Sở Tư pháp Hà Nội", "Hà Nội, Sở Tư pháp") > 0.8);
    }

    #[test]
    fn token_set_ignores_order_and_counts_common_words() {
        assert_eq!(token_set("chữ ký số", "số ký chữ"), 1.0);
        assert_eq!(token_set("", ""), 1.0);
        assert_eq!(token_set("a b", ""), 0.0);
        assert!(close(token_set("a b c", "a b d"), 2.0 / 3.0));
    }

    #[test]
    fn numbers_and_dates_fall_off_with_distance() {
        assert_eq!(number(0.0, 0.0), 1.0);
        assert!(close(number(100.0, 90.0), 0.9));
        assert_eq!(number(f64::NAN, 1.0), 0.0);
        assert_eq!(number(f64::INFINITY, 1.0), 0.0);
        let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
        assert_eq!(date(d(2026, 1, 1), d(2026, 1, 1), 0), 1.0);
        assert_eq!(date(d(2026, 1, 1), d(2026, 1, 2), 0), 0.0);
        assert!(close(date(d(2026, 1, 10), d(2026, 1, 1), 10), 0.1));
    }
}
