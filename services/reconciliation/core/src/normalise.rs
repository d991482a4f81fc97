//! Vietnamese text normalisation for matching (R-REC): the same name written with or without
//! diacritics, in any case and spacing, folds to the same words, so that
//! `Sở Tư pháp Hà Nội` and `SO TU PHAP  HA NOI` compare equal.

use etx_domain::vi_text::{base_letter, is_combining};

/// Folds `s` for comparison:
/// * lower-cases it (Unicode case folding of every letter);
/// * removes Vietnamese diacritics, `đ`/`Đ` → `d` included; the combining marks of decomposed
///   (NFD) text are dropped too, so precomposed and decomposed input fold alike;
/// * turns every character that is neither a letter nor a digit into a space;
/// * collapses runs of spaces and trims both ends.
///
/// Letters of other scripts are kept (lower-cased).
///
/// ```
/// use etx_reconciliation_core::normalise::fold;
/// assert_eq!(fold("Sở Tư pháp Hà Nội"), "so tu phap ha noi");
/// assert_eq!(fold("  SO TU PHAP\tHA   NOI "), "so tu phap ha noi");
/// assert_eq!(fold("Đắk Lắk – Buôn Ma Thuột"), "dak lak buon ma thuot");
/// ```
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.chars().flat_map(char::to_lowercase) {
        if is_combining(c) {
            continue;
        }
        let base = base_letter(c);
        if base.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(base);
        } else {
            pending_space = true;
        }
    }
    out
}

/// The words of [`fold`]`(s)`, in order.
///
/// ```
/// use etx_reconciliation_core::normalise::words;
/// assert_eq!(words("Công ty TNHH Hợp đồng Số Việt"), ["cong", "ty", "tnhh", "hop", "dong", "so", "viet"]);
/// ```
pub fn words(s: &str) -> Vec<String> {
    fold(s)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Folds a name of an organisation or an activity for matching: [`fold`], then the common
/// Vietnamese administrative abbreviations are written out, so that `UBND TP. Hà Nội` and
/// `Ủy ban nhân dân Thành phố Hà Nội` give the same words:
///
/// | abbreviation | written out |
/// |---|---|
/// | `ubnd` | `uy ban nhan dan` |
/// | `tp` | `thanh pho` |
/// | `tnhh` | `trach nhiem huu han` |
/// | `khcn` | `khoa hoc va cong nghe` |
/// | `cp` | `co phan` |
/// | `hcm` | `ho chi minh` |
///
/// (`kh&cn` folds to `kh cn`, which is written out as `khcn` is.)
///
/// ```
/// use etx_reconciliation_core::normalise::fold_name;
/// assert_eq!(fold_name("UBND TP. Hà Nội"), fold_name("Ủy ban nhân dân Thành phố Hà Nội"));
/// assert_eq!(fold_name("Sở KH&CN"), "so khoa hoc va cong nghe");
/// ```
pub fn fold_name(s: &str) -> String {
    let folded = fold(s);
    let ws: Vec<&str> = folded.split(' ').filter(|w| !w.is_empty()).collect();
    let mut out: Vec<&str> = Vec::with_capacity(ws.len() + 4);
    let mut i = 0;
    while let Some(w) = ws.get(i) {
        if *w == "kh" && ws.get(i + 1) == Some(&"cn") {
            out.extend(["khoa", "hoc", "va", "cong", "nghe"]);
            i += 2;
            continue;
        }
        match *w {
            "ubnd" => out.extend(["uy", "ban", "nhan", "dan"]),
            "tp" => out.extend(["thanh", "pho"]),
            "tnhh" => out.extend(["trach", "nhiem", "huu", "han"]),
            "khcn" => out.extend(["khoa", "hoc", "va", "cong", "nghe"]),
            "cp" => out.extend(["co", "phan"]),
            "hcm" => out.extend(["ho", "chi", "minh"]),
            other => out.push(other),
        }
        i += 1;
    }
    out.join(" ")
}

/// Folds an official number (document number, case number) for exact matching: [`fold`]
/// without any space, so `12/2026/TT-BKHCN`, `12 / 2026 / tt-bkhcn` and `12/2026/TT–BKHCN`
/// compare equal (`/`, `-`, `.`, `:` and brackets separate words but do not count).
///
/// ```
/// use etx_reconciliation_core::normalise::fold_number;
/// assert_eq!(fold_number("15/QĐ-TTr"), fold_number("15 / qd - ttr"));
/// assert_eq!(fold_number("15/QĐ-TTr"), "15qdttr");
/// ```
pub fn fold_number(s: &str) -> String {
    fold(s).replace(' ', "")
}

/// Words that say nothing about which organisation or activity a name means; they are not
/// used as blocking keys (they would put almost every record in the same block).
const STOP_WORDS: &[&str] = &[
    "nhung", "tren", "trong", "theo", "cong", "phan", "trach", "nhiem", "thanh", "tinh", "nhan", "dinh",
    "viet", "khoa", "nghe", "dien", "giao", "dich", "duong", "huan", "with", "from",
];

/// The distinctive words of a name for blocking: the words of [`fold_name`] that have at least
/// four characters and are not stop words (`công`, `thành`, `giao dịch điện tử` …),
/// longest first (ties in alphabetical order), at most `limit` of them, without repeats.
///
/// ```
/// use etx_reconciliation_core::normalise::distinctive_words;
/// assert_eq!(
///     distinctive_words("Công ty Cổ phần Giải pháp Số Phương Nam", 3),
///     ["phuong", "giai", "phap"]
/// );
/// ```
pub fn distinctive_words(s: &str, limit: usize) -> Vec<String> {
    let folded = fold_name(s);
    let mut ws: Vec<&str> = folded
        .split(' ')
        .filter(|w| w.chars().count() >= 4 && !STOP_WORDS.contains(w))
        .collect();
    ws.sort_by(|a, b| b.chars().count().cmp(&a.chars().count()).then_with(|| a.cmp(b)));
    ws.dedup();
    ws.into_iter().take(limit).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diacritics_case_and_spacing_do_not_matter() {
        assert_eq!(fold("Sở Tư pháp Hà Nội"), fold("So Tu Phap Ha Noi"));
        assert_eq!(fold("SỞ TƯ PHÁP HÀ NỘI"), "so tu phap ha noi");
        assert_eq!(fold("Đà Nẵng"), "da nang");
        assert_eq!(fold("ĐĂNG KÝ"), "dang ky");
        assert_eq!(fold("  \n\t "), "");
        assert_eq!(fold("Bà Rịa - Vũng Tàu"), "ba ria vung tau");
    }

    #[test]
    fn decomposed_text_folds_like_precomposed_text() {
        // "Hà Nội" in NFD: base letters followed by combining marks.
        assert_eq!(fold("Ha\u{300} No\u{302}\u{323}i"), "ha noi");
        assert_eq!(fold("D\u{303}"), "d");
    }

    #[test]
    fn other_scripts_are_kept_lower_cased() {
        assert_eq!(fold("Ωmega 北京"), "ωmega 北京");
    }

    #[test]
    fn abbreviations_are_written_out_in_names() {
        assert_eq!(
            fold_name("Sở KH&CN TP.HCM"),
            "so khoa hoc va cong nghe thanh pho ho chi minh"
        );
        assert_eq!(
            fold_name("Công ty TNHH Hợp đồng Số Việt"),
            "cong ty trach nhiem huu han hop dong so viet"
        );
        assert_eq!(fold_name(""), "");
    }

    #[test]
    fn official_numbers_ignore_separators_and_diacritics() {
        assert_eq!(
            fold_number("12/2026/TT-BKHCN"),
            fold_number("12 / 2026 / tt–bkhcn")
        );
        assert_ne!(fold_number("12/2026/TT-BKHCN"), fold_number("13/2026/TT-BKHCN"));
        assert_eq!(fold_number("TCVN 12345:2026"), "tcvn123452026");
    }

    #[test]
    fn distinctive_words_skip_short_and_common_words() {
        assert_eq!(
            distinctive_words("Bồi dưỡng kiến thức về chữ ký số và dịch vụ tin cậy", 10),
            ["kien", "thuc"]
        );
        assert!(distinctive_words("Công ty TNHH", 5).is_empty());
        assert_eq!(distinctive_words("Phương Nam phương nam", 5), ["phuong"]);
    }
}
