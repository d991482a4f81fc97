//! Small text helpers shared by the detectors and operators: Vietnamese diacritic folding, word
//! boundaries and keyword look-behind. All work on `&str` and never slice inside a character.

use etx_domain::vi_text::{base_letter, is_combining};

/// Lower-cases `s`, removes Vietnamese diacritics (`Đ` → `d`, `ằ` → `a`; combining marks of
/// decomposed text are dropped too) and keeps only ASCII letters and digits.
///
/// `Thành phố Hồ Chí Minh` → `thanhphohochiminh`, `TP.HCM` → `tphcm`.
pub(crate) fn fold(s: &str) -> String {
    fold_with(s, false)
}

/// Like [`fold`] but keeps a single space between words, for keyword search
/// (`Số tài khoản:` → `so tai khoan`).
pub(crate) fn fold_words(s: &str) -> String {
    fold_with(s, true)
}

fn fold_with(s: &str, keep_spaces: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        let base = base_letter(c);
        if base.is_ascii_alphanumeric() {
            out.push(base);
        } else if keep_spaces && !out.is_empty() && !out.ends_with(' ') && !is_combining(c) {
            out.push(' ');
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// A character that glues to a number so that the number is part of a bigger token
/// (`HD0012345`, `x_123`): letters of any script, digits and `_`.
pub(crate) fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The character just before byte `i` (`i` must be a char boundary; otherwise `None`).
pub(crate) fn char_before(text: &str, i: usize) -> Option<char> {
    text.get(..i).and_then(|s| s.chars().next_back())
}

/// The character starting at byte `i` (`None` at the end or off a boundary).
pub(crate) fn char_at(text: &str, i: usize) -> Option<char> {
    text.get(i..).and_then(|s| s.chars().next())
}

/// Whether the span `start..end` of `text` stands alone: not glued to a word character on
/// either side.
pub(crate) fn is_standalone(text: &str, start: usize, end: usize) -> bool {
    !char_before(text, start).is_some_and(is_word_char) && !char_at(text, end).is_some_and(is_word_char)
}

/// How many bytes before a match a keyword may stand to give it context.
pub(crate) const KEYWORD_WINDOW: usize = 40;

/// The distance in folded characters between the end of the nearest keyword of `keywords` and
/// byte `start`, looking back at most [`KEYWORD_WINDOW`] bytes and never past a line break, `;`
/// or a sentence end (`. ` / `! ` / `? `). Keywords are folded (see [`fold_words`]) and matched
/// as whole words.
pub(crate) fn keyword_before(text: &str, start: usize, keywords: &[&str]) -> Option<usize> {
    let mut from = start.saturating_sub(KEYWORD_WINDOW);
    while from > 0 && !text.is_char_boundary(from) {
        from -= 1;
    }
    let window = text.get(from..start)?;
    let window = match window.rfind(['\n', ';', '!', '?']) {
        Some(i) => &window[i + 1..],
        None => window,
    };
    // A sentence ends at ". " before a capital letter ("STK. Mã …"), not after an
    // abbreviation ("account no. 123456").
    let sentence_start = window
        .match_indices(". ")
        .filter(|(i, _)| window[i + 2..].starts_with(char::is_uppercase))
        .map(|(i, _)| i + 2)
        .last();
    let window = sentence_start.map_or(window, |i| &window[i..]);
    // A redaction marker (`[MST]`) is masked output, not context: masking must not turn the
    // next number into a finding.
    let folded = format!(" {} ", fold_words(&without_markers(window)));
    keywords
        .iter()
        .filter_map(|kw| {
            let needle = format!(" {kw} ");
            folded
                .rfind(&needle)
                .map(|i| folded.len().saturating_sub(i + needle.len()))
        })
        .min()
}

/// `s` without its bracketed segments (`a [MST] b` → `a  b`); an unclosed `[` is kept.
fn without_markers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push(' ');
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_removes_diacritics_case_and_punctuation() {
        assert_eq!(fold("Thành phố Hồ Chí Minh"), "thanhphohochiminh");
        assert_eq!(fold("TP.HCM"), "tphcm");
        assert_eq!(fold("Đắk Lắk"), "daklak");
        assert_eq!(fold("Bà Rịa - Vũng Tàu"), "bariavungtau");
        // Decomposed input (NFD): base letters followed by combining marks.
        assert_eq!(fold("Ha\u{300} No\u{323}i"), "hanoi");
        assert_eq!(fold_words("Số tài khoản:"), "so tai khoan");
        assert_eq!(fold_words("  SĐT/Zalo "), "sdt zalo");
    }

    #[test]
    fn standalone_means_not_glued_to_letters_digits_or_underscore() {
        let t = "HD0012345 x 0012345 đ0012345";
        assert!(!is_standalone(t, 2, 9));
        assert!(is_standalone(t, 12, 19));
        assert!(!is_standalone(t, 22, 29));
    }

    #[test]
    fn keyword_context_is_whole_words_in_a_short_window_within_a_sentence() {
        let at = |t: &str, kws: &[&str]| keyword_before(t, t.find("123456").unwrap(), kws);
        assert_eq!(at("Số tài khoản: 123456", &["so tai khoan"]), Some(0));
        assert_eq!(at("STK của bà A: 123456", &["stk"]), Some(9));
        assert_eq!(at("bstk 123456", &["stk"]), None);
        assert_eq!(at("STK. Số lượng 123456", &["stk"]), None);
        assert_eq!(at("account no. 123456", &["account no"]), Some(0));
        assert_eq!(at("STK\n123456", &["stk"]), None);
        assert_eq!(at("[MST]-123456", &["mst"]), None);
        assert_eq!(at("MST [ghi chú] 123456", &["mst"]), Some(0));
        assert_eq!(at("MST [ 123456", &["mst"]), Some(0));
        let far = format!("STK {} 123456", "x".repeat(60));
        assert_eq!(at(&far, &["stk"]), None);
        // Never panics when the window would start inside a multi-byte character.
        let t = "ồồồồồồồồồồồồồồồồồồồồ 123456";
        let _ = keyword_before(t, t.len() - 6, &["stk"]);
    }
}
