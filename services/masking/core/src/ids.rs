//! Vietnamese personal identifiers as validated types (R-SEC-10): the citizen id (CCCD), the tax
//! code (MST) and the phone number. Each is built only through `parse`, which applies exactly
//! the rules listed in the crate docs; the detectors use the same functions.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use etx_domain::{ParseError, ViolationCode};

use crate::provinces;

/// How many years before "today" a citizen id's birth year may lie and still be plausible.
pub const MAX_AGE_YEARS: i32 = 120;

fn error(code: ViolationCode, detail: &str) -> ParseError {
    ParseError {
        code,
        detail: detail.to_owned(),
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn digit(b: u8) -> u32 {
    u32::from(b.wrapping_sub(b'0'))
}

/// The sex encoded in a citizen id's fourth digit (even = male, odd = female).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    /// Even century digit.
    Male,
    /// Odd century digit.
    Female,
}

/// A plausible 12-digit personal identification number (số định danh cá nhân / CCCD).
///
/// Rules (Circular 07/2016/TT-BCA; there is **no** check digit):
/// * 12 ASCII digits;
/// * digits 1–3: `0` + the 2-digit code of the province where the birth was registered, one of
///   the 63 pre-2025 codes (001 Hà Nội … 096 Cà Mau, with gaps; the 2025 merger did not renumber
///   ids);
/// * digit 4: century and sex — 0/1 = 1900s male/female, 2/3 = 2000s, 4/5 = 2100s, 6/7 = 2200s,
///   8/9 = 2300s;
/// * digits 5–6: the last two digits of the birth year; the birth year must not lie after
///   `today` nor more than [`MAX_AGE_YEARS`] years before it;
/// * digits 7–12: a serial, unconstrained.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CitizenId(String);

impl CitizenId {
    /// Parses and checks a citizen id against `today` (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// `format` when it is not 12 digits; `invalid` when the province code is unknown or the
    /// birth year is in the future or implausibly old. The detail never repeats the value.
    pub fn parse(s: &str, today: NaiveDate) -> Result<Self, ParseError> {
        let s = s.trim();
        if s.len() != 12 || !all_digits(s) {
            return Err(error(ViolationCode::Format, "a citizen id is 12 digits"));
        }
        let b = s.as_bytes();
        let province = digit(b[1]) * 10 + digit(b[2]);
        if b[0] != b'0' || !u8::try_from(province).is_ok_and(provinces::is_pre_2025_code) {
            return Err(error(
                ViolationCode::Invalid,
                "the first three digits are not a province code of birth registration",
            ));
        }
        let year = birth_year(b);
        if year > today.year() {
            return Err(error(ViolationCode::Invalid, "the birth year lies in the future"));
        }
        if year < today.year() - MAX_AGE_YEARS {
            return Err(error(
                ViolationCode::Invalid,
                "the birth year lies more than 120 years ago",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The pre-2025 code of the province of birth registration (`79` for `079…`).
    pub fn province_code(&self) -> u8 {
        let b = self.0.as_bytes();
        (b[1] - b'0') * 10 + (b[2] - b'0')
    }

    /// The birth year (from the century digit and the two year digits).
    pub fn birth_year(&self) -> i32 {
        birth_year(self.0.as_bytes())
    }

    /// The sex encoded in the century digit.
    pub fn sex(&self) -> Sex {
        if digit(self.0.as_bytes()[3]).is_multiple_of(2) {
            Sex::Male
        } else {
            Sex::Female
        }
    }

    /// The 12 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `b` holds 12 ASCII digits.
fn birth_year(b: &[u8]) -> i32 {
    let century = 1900 + (digit(b[3]) / 2) * 100;
    let year = century + digit(b[4]) * 10 + digit(b[5]);
    i32::try_from(year).unwrap_or(i32::MAX)
}

impl fmt::Debug for CitizenId {
    // Personal data: never printed whole, even in debug output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CitizenId(********{})", &self.0[8..])
    }
}

/// The weights of the tax-code check digit, over the first nine digits.
pub const TAX_CODE_WEIGHTS: [u32; 9] = [31, 29, 23, 19, 17, 13, 7, 5, 3];

/// The check digit (10th digit) of a tax code whose first nine digits are `first9`:
/// `10 − (Σ wᵢ·dᵢ mod 11)` with the weights [`TAX_CODE_WEIGHTS`]. `None` when that is 10
/// (remainder 0): no valid tax code has those nine digits.
pub fn tax_code_check_digit(first9: &[u8]) -> Option<u8> {
    if first9.len() != 9 || !first9.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = first9
        .iter()
        .zip(TAX_CODE_WEIGHTS)
        .map(|(d, w)| digit(*d) * w)
        .sum();
    let check = 10 - sum % 11;
    u8::try_from(check).ok().filter(|c| *c < 10)
}

/// A tax code (mã số thuế, MST) whose check digit is right.
///
/// Forms: `NNNNNNNNNN` (an enterprise, organisation or person) and `NNNNNNNNNN-NNN` (a branch or
/// dependent unit; the suffix is `001`–`999`). The 13 digits without the dash are accepted too
/// (several systems store them so) and normalised to the dashed form. The 10th digit must equal
/// [`tax_code_check_digit`] of the first nine. Since 1 July 2025 a person's tax code is their
/// 12-digit citizen id, which is a [`CitizenId`], not a `TaxCode`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TaxCode {
    head: String,
    branch: Option<String>,
}

impl TaxCode {
    /// Parses a tax code (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// `format` when the shape is not one of the three forms or the branch is `000`; `invalid`
    /// when the check digit is wrong.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        let shape = || error(ViolationCode::Format, "a tax code is 10 digits or 10-3 digits");
        // `get` keeps slicing safe on any input: a non-ASCII byte at 10 is simply a bad shape.
        let (head, branch) = match (s.len(), s.as_bytes().get(10)) {
            (10, _) => (s, None),
            (14, Some(b'-')) => (s.get(..10).ok_or_else(shape)?, s.get(11..)),
            (13, _) => (s.get(..10).ok_or_else(shape)?, s.get(10..)),
            _ => return Err(shape()),
        };
        if !all_digits(head) || !branch.is_none_or(all_digits) {
            return Err(shape());
        }
        if branch == Some("000") {
            return Err(error(ViolationCode::Format, "a branch suffix is 001-999"));
        }
        let b = head.as_bytes();
        if tax_code_check_digit(&b[..9]) != Some(b[9] - b'0') {
            return Err(error(ViolationCode::Invalid, "the check digit is wrong"));
        }
        Ok(Self {
            head: head.to_owned(),
            branch: branch.map(str::to_owned),
        })
    }

    /// The 10-digit code of the enterprise (the head office's code for a branch).
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The branch suffix (`001`–`999`), if any.
    pub fn branch(&self) -> Option<&str> {
        self.branch.as_deref()
    }
}

impl fmt::Display for TaxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.branch {
            Some(b) => write!(f, "{}-{b}", self.head),
            None => f.write_str(&self.head),
        }
    }
}

impl fmt::Debug for TaxCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaxCode({self})")
    }
}

/// Mobile or fixed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhoneKind {
    /// A 9-digit national number starting with 3, 5, 7, 8 or 9 (03x, 05x, 07x, 08x, 09x).
    Mobile,
    /// A 10-digit national number starting with 2 (area codes 0203–0299, 024 Hà Nội, 028 TP.HCM).
    Landline,
}

/// A Vietnamese phone number.
///
/// Accepted: an optional `+84`, `84` or trunk `0`, then the national significant number (NSN):
/// * mobile — 9 digits, first digit 3, 5, 7, 8 or 9 (the blocks allocated to mobile networks
///   since the 2018 renumbering: 032–039, 052–059, 070–079, 081–089, 090–099; whole blocks are
///   accepted so that newly allocated prefixes are still caught);
/// * landline — 10 digits, first digit 2 (area code 2x or 2xx, then the subscriber number:
///   `024 3825 1234`, `0225 384 2123`). Landlines are therefore 11 digits with the `0`, one
///   more than the mobile form the record schemas accept.
///
/// Spaces, dots, dashes and parentheses between digits are ignored. Numbers such as 1800/1900
/// service lines are not personal and not accepted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber {
    nsn: String,
    kind: PhoneKind,
}

impl PhoneNumber {
    /// Parses a phone number in any of the accepted forms.
    ///
    /// # Errors
    /// `format` when the digits do not form an accepted number.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        let (plus, rest) = match s.strip_prefix('+') {
            Some(r) => (true, r),
            None => (false, s.strip_prefix("(+").map_or(s, |r| r)),
        };
        let plus = plus || s.starts_with("(+");
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '.' | '-' | '(' | ')' => {}
                _ => return Err(error(ViolationCode::Format, "not a phone number")),
            }
        }
        Self::from_digits(&digits, plus)
            .ok_or_else(|| error(ViolationCode::Format, "not a Vietnamese phone number"))
    }

    /// `digits` are all the digits of the number (after a `+` when `plus`).
    pub(crate) fn from_digits(digits: &str, plus: bool) -> Option<Self> {
        let nsn = if plus {
            digits.strip_prefix("84")?
        } else if let Some(n) = digits.strip_prefix('0') {
            n
        } else {
            digits.strip_prefix("84")?
        };
        let kind = classify_nsn(nsn)?;
        Some(Self {
            nsn: nsn.to_owned(),
            kind,
        })
    }

    /// Mobile or landline.
    pub fn kind(&self) -> PhoneKind {
        self.kind
    }

    /// The number in E.164 form, `+84…`: one spelling per number, for tokens and matching.
    pub fn e164(&self) -> String {
        format!("+84{}", self.nsn)
    }
}

/// The kind of a national significant number, or `None` when it is not an accepted one.
pub(crate) fn classify_nsn(nsn: &str) -> Option<PhoneKind> {
    if !all_digits(nsn) {
        return None;
    }
    match (nsn.len(), nsn.as_bytes()[0]) {
        (9, b'3' | b'5' | b'7' | b'8' | b'9') => Some(PhoneKind::Mobile),
        (10, b'2') => Some(PhoneKind::Landline),
        _ => None,
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail = self
            .nsn
            .get(self.nsn.len().saturating_sub(3)..)
            .unwrap_or_default();
        write!(f, "PhoneNumber({:?}, ***{tail})", self.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 28).unwrap()
    }

    #[test]
    fn the_three_reference_tax_codes_r_sec_10() {
        assert!(TaxCode::parse("0100233488").is_ok());
        assert_eq!(
            TaxCode::parse("0100233480").unwrap_err().code,
            ViolationCode::Invalid
        );
        let branch = TaxCode::parse("0314409058-002").unwrap();
        assert_eq!(branch.head(), "0314409058");
        assert_eq!(branch.branch(), Some("002"));
        assert_eq!(branch.to_string(), "0314409058-002");
    }

    #[test]
    fn published_tax_codes_of_well_known_enterprises_pass_the_check_digit() {
        // Head-office codes as printed on their invoices; they exercise every branch of the
        // rule, including remainder 10 (check digit 0).
        for code in [
            "0100109106", // Viettel
            "0101248141", // FPT
            "0300588569", // Vinamilk
            "0100112437", // Vietcombank
            "0100107370", // Petrolimex (check digit 0: Σ mod 11 = 10)
            "0100107518", // Vietnam Airlines
            "0100686209",
            "0302035520",
        ] {
            assert!(TaxCode::parse(code).is_ok(), "{code}");
        }
    }

    #[test]
    fn check_digit_is_ten_minus_weighted_sum_mod_eleven_and_ten_is_impossible() {
        // 0100233488: Σ = 1·29 + 2·17 + 3·13 + 3·7 + 4·5 + 8·3 = 167; 167 mod 11 = 2; 10 − 2 = 8.
        assert_eq!(tax_code_check_digit(b"010023348"), Some(8));
        // 0109876543 (a contract example): Σ = 506 ≡ 0 (mod 11) → 10 → no valid code.
        assert_eq!(tax_code_check_digit(b"010987654"), None);
        assert!(TaxCode::parse("0109876543").is_err());
        // Every other last digit of a valid code is wrong.
        for last in 0..=9u8 {
            let code = format!("010023348{last}");
            assert_eq!(TaxCode::parse(&code).is_ok(), last == 8, "{code}");
        }
        assert_eq!(tax_code_check_digit(b"01002334"), None);
        assert_eq!(tax_code_check_digit(b"01002334x"), None);
    }

    #[test]
    fn tax_code_forms() {
        assert_eq!(
            TaxCode::parse("0314409058002").unwrap().to_string(),
            "0314409058-002"
        );
        assert!(TaxCode::parse(" 0100233488 ").is_ok());
        for bad in [
            "",
            "010023348",
            "01002334888",
            "0314409058-02",
            "0314409058-0021",
            "0314409058-000",
            "0314409058_002",
            "0314409058-00a",
            "O100233488",
            "０１００２３３４８８",
        ] {
            assert!(TaxCode::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn citizen_id_fields_and_plausibility() {
        let id = CitizenId::parse("001099012345", today()).unwrap();
        assert_eq!(id.province_code(), 1);
        assert_eq!(id.birth_year(), 1999);
        assert_eq!(id.sex(), Sex::Male);
        let id = CitizenId::parse("079190000123", today()).unwrap();
        assert_eq!(
            (id.province_code(), id.birth_year(), id.sex()),
            (79, 1990, Sex::Female)
        );
        let id = CitizenId::parse("096326000001", today()).unwrap();
        assert_eq!((id.birth_year(), id.sex()), (2026, Sex::Female));
        assert!(!format!("{id:?}").contains("096326"));
    }

    #[test]
    fn citizen_id_edge_cases() {
        let code = |s: &str| CitizenId::parse(s, today()).map(|_| ()).map_err(|e| e.code);
        // Born this year: fine; next year: future.
        assert_eq!(code("001226000001"), Ok(()));
        assert_eq!(code("001227000001"), Err(ViolationCode::Invalid));
        // 22nd century is always in the future today.
        assert_eq!(code("001400000001"), Err(ViolationCode::Invalid));
        // 120 years ago is the oldest plausible year; 121 is not.
        assert_eq!(code("001006000001"), Ok(()));
        assert_eq!(code("001105000001"), Err(ViolationCode::Invalid));
        // Province codes: gaps, 000, and a first digit other than 0.
        for bad in [
            "000099012345",
            "003099012345",
            "097099012345",
            "101099012345",
            "179099012345",
        ] {
            assert_eq!(code(bad), Err(ViolationCode::Invalid), "{bad}");
        }
        for bad in [
            "",
            "00109901234",
            "0010990123456",
            "00109901234a",
            "001 099 012 345",
        ] {
            assert_eq!(code(bad), Err(ViolationCode::Format), "{bad}");
        }
        // The same id judged on another day.
        let later = NaiveDate::from_ymd_opt(2127, 1, 1).unwrap();
        assert!(CitizenId::parse("001099012345", later).is_err());
        assert!(CitizenId::parse("001400000001", later).is_ok());
        let far = NaiveDate::from_ymd_opt(2101, 1, 1).unwrap();
        assert!(CitizenId::parse("001401000001", far).is_ok());
        assert!(CitizenId::parse("001402000001", far).is_err());
        assert!(CitizenId::parse("001500000001", far).is_ok());
    }

    #[test]
    fn phone_formats() {
        let e164 = |s: &str| PhoneNumber::parse(s).map(|p| p.e164()).ok();
        let mobile = Some("+84912345678".to_owned());
        for s in [
            "0912345678",
            "+84912345678",
            "84912345678",
            "0912 345 678",
            "0912.345.678",
            "0912-345-678",
            "+84 912 345 678",
            "(+84) 912 345 678",
            "091 234 5678",
        ] {
            assert_eq!(e164(s), mobile, "{s}");
        }
        let hanoi = PhoneNumber::parse("(024) 3825 1234").unwrap();
        assert_eq!(hanoi.kind(), PhoneKind::Landline);
        assert_eq!(hanoi.e164(), "+842438251234");
        assert_eq!(e164("+84 225 384 2123").as_deref(), Some("+842253842123"));
        for prefix in ["03", "05", "07", "08", "09"] {
            assert!(e164(&format!("{prefix}12345678")).is_some(), "{prefix}");
        }
        for bad in [
            "0112345678",  // NSN starting with 1
            "0412345678",  // 4: not allocated
            "0612345678",  // 6: not allocated
            "091234567",   // too short
            "09123456789", // too long for a mobile, wrong first digit for a landline
            "0243825123",  // landline one digit short
            "+85912345678",
            "1900123456",
            "0912 345 67a",
            "",
            "+",
        ] {
            assert_eq!(e164(bad), None, "{bad}");
        }
        assert!(!format!("{:?}", PhoneNumber::parse("0912345678").unwrap()).contains("912345"));
    }
}
