//! The provincial-level units before and after the 1 July 2025 reform (`data/*.csv`, copied from
//! the project's reference data): the pre-2025 codes validate the first three digits of a citizen
//! id (R-SEC-10), and both lists let the generaliser recognise a province in an address.

use crate::text::fold;

/// One of the 63 provincial-level units in force until 30 June 2025 (Decision 124/2004/QĐ-TTg).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OldProvince {
    /// The official 2-digit code; a citizen id starts with it after a leading zero (`079…`).
    pub code: u8,
    /// The Vietnamese name.
    pub name_vi: &'static str,
    /// The code of the 2025 unit it merged into (whole).
    pub successor: u8,
}

/// One of the 34 provincial-level units in force from 1 July 2025 (Resolution 202/2025/QH15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Province {
    /// The code (Decision 19/2025/QĐ-TTg).
    pub code: u8,
    /// The Vietnamese name without its kind, e.g. `Hồ Chí Minh`.
    pub name_vi: &'static str,
    /// A centrally-run city (`true`) or a province.
    pub city: bool,
}

impl Province {
    /// The name with its kind, as written in an address: `Thành phố Hà Nội`, `Tỉnh Gia Lai`.
    pub fn full_name_vi(&self) -> String {
        let kind = if self.city { "Thành phố" } else { "Tỉnh" };
        format!("{kind} {}", self.name_vi)
    }
}

const fn old(code: u8, name_vi: &'static str, successor: u8) -> OldProvince {
    OldProvince {
        code,
        name_vi,
        successor,
    }
}

/// The 63 pre-2025 units, by code (`data/provinces-pre2025.csv`).
pub const PRE_2025: [OldProvince; 63] = [
    old(1, "Hà Nội", 1),
    old(2, "Hà Giang", 8),
    old(4, "Cao Bằng", 4),
    old(6, "Bắc Kạn", 19),
    old(8, "Tuyên Quang", 8),
    old(10, "Lào Cai", 15),
    old(11, "Điện Biên", 11),
    old(12, "Lai Châu", 12),
    old(14, "Sơn La", 14),
    old(15, "Yên Bái", 15),
    old(17, "Hòa Bình", 25),
    old(19, "Thái Nguyên", 19),
    old(20, "Lạng Sơn", 20),
    old(22, "Quảng Ninh", 22),
    old(24, "Bắc Giang", 24),
    old(25, "Phú Thọ", 25),
    old(26, "Vĩnh Phúc", 25),
    old(27, "Bắc Ninh", 24),
    old(30, "Hải Dương", 31),
    old(31, "Hải Phòng", 31),
    old(33, "Hưng Yên", 33),
    old(34, "Thái Bình", 33),
    old(35, "Hà Nam", 37),
    old(36, "Nam Định", 37),
    old(37, "Ninh Bình", 37),
    old(38, "Thanh Hóa", 38),
    old(40, "Nghệ An", 40),
    old(42, "Hà Tĩnh", 42),
    old(44, "Quảng Bình", 44),
    old(45, "Quảng Trị", 44),
    old(46, "Huế", 46),
    old(48, "Đà Nẵng", 48),
    old(49, "Quảng Nam", 48),
    old(51, "Quảng Ngãi", 51),
    old(52, "Bình Định", 52),
    old(54, "Phú Yên", 66),
    old(56, "Khánh Hòa", 56),
    old(58, "Ninh Thuận", 56),
    old(60, "Bình Thuận", 68),
    old(62, "Kon Tum", 51),
    old(64, "Gia Lai", 52),
    old(66, "Đắk Lắk", 66),
    old(67, "Đắk Nông", 68),
    old(68, "Lâm Đồng", 68),
    old(70, "Bình Phước", 75),
    old(72, "Tây Ninh", 80),
    old(74, "Bình Dương", 79),
    old(75, "Đồng Nai", 75),
    old(77, "Bà Rịa - Vũng Tàu", 79),
    old(79, "Hồ Chí Minh", 79),
    old(80, "Long An", 80),
    old(82, "Tiền Giang", 82),
    old(83, "Bến Tre", 86),
    old(84, "Trà Vinh", 86),
    old(86, "Vĩnh Long", 86),
    old(87, "Đồng Tháp", 82),
    old(89, "An Giang", 91),
    old(91, "Kiên Giang", 91),
    old(92, "Cần Thơ", 92),
    old(93, "Hậu Giang", 92),
    old(94, "Sóc Trăng", 92),
    old(95, "Bạc Liêu", 96),
    old(96, "Cà Mau", 96),
];

const fn new(code: u8, name_vi: &'static str, city: bool) -> Province {
    Province { code, name_vi, city }
}

/// The 34 units from 1 July 2025, by code (`data/provinces-2025.csv`).
pub const FROM_2025: [Province; 34] = [
    new(1, "Hà Nội", true),
    new(4, "Cao Bằng", false),
    new(8, "Tuyên Quang", false),
    new(11, "Điện Biên", false),
    new(12, "Lai Châu", false),
    new(14, "Sơn La", false),
    new(15, "Lào Cai", false),
    new(19, "Thái Nguyên", false),
    new(20, "Lạng Sơn", false),
    new(22, "Quảng Ninh", false),
    new(24, "Bắc Ninh", false),
    new(25, "Phú Thọ", false),
    new(31, "Hải Phòng", true),
    new(33, "Hưng Yên", false),
    new(37, "Ninh Bình", false),
    new(38, "Thanh Hóa", false),
    new(40, "Nghệ An", false),
    new(42, "Hà Tĩnh", false),
    new(44, "Quảng Trị", false),
    new(46, "Huế", true),
    new(48, "Đà Nẵng", true),
    new(51, "Quảng Ngãi", false),
    new(52, "Gia Lai", false),
    new(56, "Khánh Hòa", false),
    new(66, "Đắk Lắk", false),
    new(68, "Lâm Đồng", false),
    new(75, "Đồng Nai", false),
    new(79, "Hồ Chí Minh", true),
    new(80, "Tây Ninh", false),
    new(82, "Đồng Tháp", false),
    new(86, "Vĩnh Long", false),
    new(91, "An Giang", false),
    new(92, "Cần Thơ", true),
    new(96, "Cà Mau", false),
];

/// Other spellings people write for a unit, already folded (see [`fold`]), with the 2025 code.
const ALIASES: [(&str, u8); 9] = [
    ("hcm", 79),
    ("tphcm", 79),
    ("saigon", 79),
    ("hn", 1),
    ("thuathienhue", 46),
    ("brvt", 79),
    ("vungtau", 79),
    ("daklak", 66),
    ("daknong", 68),
];

/// Whether `code` is one of the 63 pre-2025 province codes (the codes a citizen id starts with).
pub fn is_pre_2025_code(code: u8) -> bool {
    PRE_2025.iter().any(|p| p.code == code)
}

/// The 2025 unit with this code.
pub fn by_code(code: u8) -> Option<&'static Province> {
    FROM_2025.iter().find(|p| p.code == code)
}

/// Recognises a province name as written in an address component (`Thành phố Hà Nội`, `Tỉnh
/// Bình Dương`, `TP.HCM`, `Ha Noi`) and returns the unit it belongs to **today**: a pre-2025
/// name maps to the 2025 unit it merged into. Case, diacritics, spaces and punctuation are
/// ignored; a leading `Thành phố` / `TP` / `Tỉnh` is dropped.
pub fn recognise(component: &str) -> Option<&'static Province> {
    let folded = fold(component);
    let name = ["thanhpho", "tp", "tinh"]
        .iter()
        .find_map(|p| folded.strip_prefix(*p).filter(|rest| !rest.is_empty()))
        .unwrap_or(&folded);
    for candidate in [name, folded.as_str()] {
        if let Some(p) = FROM_2025.iter().find(|p| fold(p.name_vi) == candidate) {
            return Some(p);
        }
        if let Some(p) = PRE_2025.iter().find(|p| fold(p.name_vi) == candidate) {
            return by_code(p.successor);
        }
        if let Some((_, code)) = ALIASES.iter().find(|(a, _)| *a == candidate) {
            return by_code(*code);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRE_CSV: &str = include_str!("../data/provinces-pre2025.csv");
    const NEW_CSV: &str = include_str!("../data/provinces-2025.csv");

    #[test]
    fn pre_2025_table_matches_the_reference_data() {
        let rows: Vec<Vec<&str>> = PRE_CSV.lines().skip(1).map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), PRE_2025.len());
        for (row, p) in rows.iter().zip(PRE_2025.iter()) {
            assert_eq!(row[0].parse::<u8>().unwrap(), p.code, "{row:?}");
            assert_eq!(row[1], p.name_vi);
            assert_eq!(row[4].parse::<u8>().unwrap(), p.successor, "{row:?}");
            assert!(by_code(p.successor).is_some(), "{row:?}");
        }
    }

    #[test]
    fn table_from_2025_matches_the_reference_data() {
        let rows: Vec<Vec<&str>> = NEW_CSV.lines().skip(1).map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), FROM_2025.len());
        for (row, p) in rows.iter().zip(FROM_2025.iter()) {
            assert_eq!(row[0].parse::<u8>().unwrap(), p.code, "{row:?}");
            assert_eq!(row[1], p.name_vi);
            assert_eq!(row[3] == "city", p.city, "{row:?}");
        }
    }

    #[test]
    fn the_reference_copy_matches_shared_data_when_present() {
        // The crate keeps its own copy so it builds alone; this catches drift from shared/data.
        let shared = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../../shared/data/provinces-pre2025.csv"
        );
        if let Ok(text) = std::fs::read_to_string(shared) {
            assert_eq!(text, PRE_CSV);
        }
    }

    #[test]
    fn citizen_id_province_codes_are_the_63_old_codes() {
        assert!(is_pre_2025_code(1) && is_pre_2025_code(79) && is_pre_2025_code(96));
        for gap in [0, 3, 5, 7, 9, 13, 16, 18, 97, 99] {
            assert!(!is_pre_2025_code(gap), "{gap}");
        }
        assert_eq!((0..=255u8).filter(|c| is_pre_2025_code(*c)).count(), 63);
    }

    #[test]
    fn names_are_recognised_in_many_spellings_and_mapped_to_today() {
        let code = |s: &str| recognise(s).map(|p| p.code);
        assert_eq!(code("Thành phố Hà Nội"), Some(1));
        assert_eq!(code("TP. Hồ Chí Minh"), Some(79));
        assert_eq!(code("TP.HCM"), Some(79));
        assert_eq!(code("ha noi"), Some(1));
        assert_eq!(code("Tỉnh Bình Dương"), Some(79));
        assert_eq!(code("Bà Rịa - Vũng Tàu"), Some(79));
        assert_eq!(code("tỉnh Kon Tum"), Some(51));
        assert_eq!(code("Thừa Thiên Huế"), Some(46));
        assert_eq!(code("Quận Ba Đình"), None);
        assert_eq!(code(""), None);
        assert_eq!(
            recognise("Tinh Gia Lai").map(Province::full_name_vi).as_deref(),
            Some("Tỉnh Gia Lai")
        );
    }
}
