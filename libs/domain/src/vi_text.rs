//! Vietnamese letters without their diacritics, shared by the masking detectors and
//! reconciliation's name matching (so that "Sở Tư pháp" and "So Tu Phap" compare equal).

/// Whether `c` is a combining diacritical mark (U+0300–U+036F), as left by NFD decomposition.
pub fn is_combining(c: char) -> bool {
    ('\u{0300}'..='\u{036f}').contains(&c)
}

/// The ASCII base letter of a lower-case Vietnamese letter (`ệ` → `e`, `đ` → `d`), or the
/// character itself.
pub fn base_letter(c: char) -> char {
    const GROUPS: [(char, &str); 7] = [
        ('a', "àáảãạăằắẳẵặâầấẩẫậ"),
        ('e', "èéẻẽẹêềếểễệ"),
        ('i', "ìíỉĩị"),
        ('o', "òóỏõọôồốổỗộơờớởỡợ"),
        ('u', "ùúủũụưừứửữự"),
        ('y', "ỳýỷỹỵ"),
        ('d', "đ"),
    ];
    if c.is_ascii() {
        return c;
    }
    GROUPS
        .iter()
        .find(|(_, set)| set.contains(c))
        .map_or(c, |(base, _)| *base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vietnamese_letters_lose_their_marks() {
        let folded: String = "sởtưphápđắklắk".chars().map(base_letter).collect();
        assert_eq!(folded, "sotuphapdaklak");
        assert!(is_combining('\u{0301}'));
        assert!(!is_combining('a'));
        assert_eq!(base_letter('Ж'), 'Ж');
    }
}
