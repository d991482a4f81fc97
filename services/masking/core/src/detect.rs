//! The detectors (R-SEC-10): find Vietnamese personal identifiers in free text and in the string
//! values of a JSON payload. Masking is by field schema first and by detection second (DESIGN §4);
//! detection also checks records that arrive declared `masked` (R-ING-2).
//!
//! The exact rules are in the crate docs (`README.md`). In short, a finding is:
//! * [`FindingKind::CitizenId`] — 12 standalone digits that parse as a [`CitizenId`], or any 12
//!   standalone digits right after a citizen-id keyword (`CCCD`, `căn cước`, `định danh`…);
//! * [`FindingKind::TaxCode`] — 10 digits, `10-3` or 13 digits that parse as a [`TaxCode`], or
//!   the same shapes right after a tax keyword (`MST`, `mã số thuế`, `tax code`);
//! * [`FindingKind::Phone`] — a [`PhoneNumber`] written with optional `+`, `(`…`)` and single
//!   spaces, dots or dashes between digit groups;
//! * [`FindingKind::BankAccount`] — 6–19 digits (groups joined by a space or dash) right after a
//!   bank keyword (`STK`, `số tài khoản`, `account`…), never without one;
//! * [`FindingKind::OldIdCard`] — 9 standalone digits (CMND) that are not part of a grouped or
//!   decimal number and not an amount (`đồng`, `VND`, `%`… right after), or any 9 standalone
//!   digits after a `CMND`/`chứng minh` keyword;
//! * [`FindingKind::Email`] — `local@domain.tld`, also the obfuscated `local(at)domain.tld`.
//!
//! "Standalone" means not glued to a letter, digit or `_` on either side, so codes such as
//! `HD0012345` or the digits inside a `tok_…` value are never findings. Findings never overlap:
//! of the candidates, the set that covers the most bytes is kept (so a longer span beats a
//! shorter one it overlaps); for the same span, the nearer keyword wins, then the more specific
//! kind (e-mail, citizen id, tax code, phone, bank account, old id card).

use chrono::{FixedOffset, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::{CitizenId, PhoneNumber, TaxCode};
use crate::pointer;
use crate::text::{char_at, char_before, fold_words, is_standalone, is_word_char, keyword_before};

/// What kind of personal identifier a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Citizen id (CCCD / số định danh cá nhân), 12 digits.
    CitizenId,
    /// Old 9-digit identity card (CMND).
    OldIdCard,
    /// Tax code (MST).
    TaxCode,
    /// Phone number.
    Phone,
    /// Bank account number.
    BankAccount,
    /// E-mail address.
    Email,
    /// A field that a masking policy marks personal still holds a value that does not look
    /// masked (only from [`crate::check_declared_masked_with`]).
    PersonalField,
}

impl FindingKind {
    /// The kinds the text detectors produce.
    pub const DETECTED: [FindingKind; 6] = [
        Self::CitizenId,
        Self::OldIdCard,
        Self::TaxCode,
        Self::Phone,
        Self::BankAccount,
        Self::Email,
    ];

    /// The snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CitizenId => "citizen_id",
            Self::OldIdCard => "old_id_card",
            Self::TaxCode => "tax_code",
            Self::Phone => "phone",
            Self::BankAccount => "bank_account",
            Self::Email => "email",
            Self::PersonalField => "personal_field",
        }
    }

    /// Parses a snake_case code.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::PersonalField]
            .into_iter()
            .chain(Self::DETECTED)
            .find(|k| k.as_str() == s)
    }

    /// Higher wins a tie between overlapping spans of equal length.
    fn specificity(self) -> u8 {
        match self {
            Self::Email => 6,
            Self::CitizenId => 5,
            Self::TaxCode => 4,
            Self::Phone => 3,
            Self::BankAccount => 2,
            Self::OldIdCard => 1,
            Self::PersonalField => 0,
        }
    }
}

/// One identifier found in a text: `text[start..end]` (byte offsets, on character boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset just past the last byte.
    pub end: usize,
}

/// A finding inside a JSON payload: in the string at `pointer` (RFC 6901), bytes `start..end`.
/// A [`FindingKind::PersonalField`] finding covers the whole value (`start` 0, `end` its length).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValueFinding {
    /// JSON pointer of the string value, relative to the payload (`/complainant/phone`).
    pub pointer: String,
    /// What was found.
    pub kind: FindingKind,
    /// Byte offset of the first byte within the string.
    pub start: usize,
    /// Byte offset just past the last byte within the string.
    pub end: usize,
}

const CITIZEN_KEYWORDS: &[&str] = &[
    "cccd",
    "cmnd cccd",
    "can cuoc",
    "can cuoc cong dan",
    "dinh danh",
    "so dinh danh",
    "ma dinh danh",
    "citizen id",
    "id card",
    "identity card",
    "personal id",
];
const OLD_ID_KEYWORDS: &[&str] = &[
    "cmnd",
    "cmt",
    "chung minh",
    "chung minh nhan dan",
    "cmnd cccd",
    "id card",
    "identity card",
];
const TAX_KEYWORDS: &[&str] = &["mst", "ma so thue", "tax code", "tax id", "masothue"];
/// Bank keywords. `tài khoản` and `account` alone are left out: they usually mean a sign-in
/// account (`tài khoản của 0912345678` is a phone).
const BANK_KEYWORDS: &[&str] = &[
    "stk",
    "so tk",
    "tk",
    "so tai khoan",
    "tai khoan so",
    "tai khoan ngan hang",
    "tk ngan hang",
    "account no",
    "account number",
    "bank account",
    "acct",
    "a c",
];
/// Words right after a 9-digit number that make it an amount rather than an id card.
const AMOUNT_UNITS: &[&str] = &[
    "dong", "d", "vnd", "usd", "trieu", "ty", "nghin", "ngan", "nguoi", "luot",
];

/// Finds identifiers as of a given day (the day matters for citizen-id plausibility).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detector {
    today: NaiveDate,
}

impl Detector {
    /// A detector that judges birth years against `today`.
    pub fn new(today: NaiveDate) -> Self {
        Self { today }
    }

    /// A detector for today's date in Vietnam (UTC+7).
    pub fn for_today() -> Self {
        let now = Utc::now();
        let today = FixedOffset::east_opt(7 * 3600)
            .map_or_else(|| now.date_naive(), |tz| now.with_timezone(&tz).date_naive());
        Self { today }
    }

    /// The day birth years are judged against.
    pub fn today(&self) -> NaiveDate {
        self.today
    }

    /// Every identifier in `text`, sorted by position, never overlapping. Never panics.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut candidates = Vec::new();
        let runs = digit_runs(text);
        self.fixed_length_ids(text, &runs, &mut candidates);
        phones(text, &runs, &mut candidates);
        bank_accounts(text, &runs, &mut candidates);
        emails(text, &mut candidates);
        resolve(candidates)
    }

    /// Every identifier in the string values of `value` (object keys, numbers and booleans are
    /// not scanned), with the JSON pointer of each string.
    pub fn scan_value(&self, value: &Value) -> Vec<ValueFinding> {
        let mut out = Vec::new();
        pointer::walk_strings(value, &mut |ptr, s| {
            for f in self.scan(s) {
                out.push(ValueFinding {
                    pointer: ptr.to_owned(),
                    kind: f.kind,
                    start: f.start,
                    end: f.end,
                });
            }
        });
        out
    }

    /// Citizen ids (12), tax codes (10, 10-3, 13) and old id cards (9).
    fn fixed_length_ids(&self, text: &str, runs: &[(usize, usize)], out: &mut Vec<Candidate>) {
        for (i, &(start, end)) in runs.iter().enumerate() {
            let digits = &text[start..end];
            let standalone = is_standalone(text, start, end);
            match digits.len() {
                12 if standalone => {
                    let kw = keyword_before(text, start, CITIZEN_KEYWORDS);
                    if kw.is_some() || CitizenId::parse(digits, self.today).is_ok() {
                        out.push(Candidate::new(FindingKind::CitizenId, start, end, kw));
                    }
                }
                10 => {
                    let kw = keyword_before(text, start, TAX_KEYWORDS);
                    // The branch form: 10 digits, a dash, 3 digits.
                    if let Some(&(b_start, b_end)) = runs.get(i + 1)
                        && b_start == end + 1
                        && text.as_bytes()[end] == b'-'
                        && b_end - b_start == 3
                        && is_standalone(text, start, b_end)
                        && (kw.is_some() || TaxCode::parse(&text[start..b_end]).is_ok())
                    {
                        out.push(Candidate::new(FindingKind::TaxCode, start, b_end, kw));
                    }
                    if standalone && (kw.is_some() || TaxCode::parse(digits).is_ok()) {
                        out.push(Candidate::new(FindingKind::TaxCode, start, end, kw));
                    }
                }
                13 if standalone => {
                    let kw = keyword_before(text, start, TAX_KEYWORDS);
                    if kw.is_some() || TaxCode::parse(digits).is_ok() {
                        out.push(Candidate::new(FindingKind::TaxCode, start, end, kw));
                    }
                }
                9 if standalone => {
                    let kw = keyword_before(text, start, OLD_ID_KEYWORDS);
                    if kw.is_some() || (!in_grouped_number(text, start, end) && !is_amount(text, start, end))
                    {
                        out.push(Candidate::new(FindingKind::OldIdCard, start, end, kw));
                    }
                }
                _ => {}
            }
        }
    }
}

impl Default for Detector {
    fn default() -> Self {
        Self::for_today()
    }
}

/// [`Detector::scan`] as of today in Vietnam.
pub fn scan(text: &str) -> Vec<Finding> {
    Detector::for_today().scan(text)
}

/// [`Detector::scan_value`] as of today in Vietnam.
pub fn scan_value(value: &Value) -> Vec<ValueFinding> {
    Detector::for_today().scan_value(value)
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    kind: FindingKind,
    start: usize,
    end: usize,
    /// Distance from the nearest keyword of this kind, if one gave context.
    keyword: Option<usize>,
}

impl Candidate {
    fn new(kind: FindingKind, start: usize, end: usize, keyword: Option<usize>) -> Self {
        Self {
            kind,
            start,
            end,
            keyword,
        }
    }
}

/// Keeps the non-overlapping set of candidates that covers the most bytes (weighted interval
/// scheduling); among candidates with the same span, the one with the nearer keyword, then the
/// more specific kind. Covering the most bytes, rather than taking the longest candidate first,
/// keeps `x@a.vn%-y@b.vn` as two addresses instead of one mangled one.
fn resolve(candidates: Vec<Candidate>) -> Vec<Finding> {
    // A byte of coverage outweighs any number of tie-break bonuses (each at most 1,006).
    let weight = |c: &Candidate| -> u64 {
        let len = u64::try_from(c.end - c.start).unwrap_or(u64::MAX);
        let near = c
            .keyword
            .map_or(0, |d| 100 - u64::try_from(d.min(99)).unwrap_or(99));
        len.saturating_mul(1_000_000)
            .saturating_add(near * 10)
            .saturating_add(u64::from(c.kind.specificity()))
    };
    let mut cs = candidates;
    cs.sort_by_key(|c| (c.end, c.start));
    // best[j]: the best total weight using the first j candidates; took[j]: whether the j-th is in.
    let mut best: Vec<u64> = vec![0; cs.len() + 1];
    let mut took: Vec<bool> = vec![false; cs.len() + 1];
    let mut prev: Vec<usize> = vec![0; cs.len() + 1];
    for (j, c) in cs.iter().enumerate() {
        // Candidates ending at or before this one's start: a prefix, as `cs` is sorted by end.
        let p = cs.partition_point(|o| o.end <= c.start);
        let with = best[p].saturating_add(weight(c));
        prev[j + 1] = p;
        if with > best[j] {
            best[j + 1] = with;
            took[j + 1] = true;
        } else {
            best[j + 1] = best[j];
        }
    }
    let mut out = Vec::new();
    let mut j = cs.len();
    while j > 0 {
        if took[j] {
            let c = &cs[j - 1];
            out.push(Finding {
                kind: c.kind,
                start: c.start,
                end: c.end,
            });
            j = prev[j];
        } else {
            j -= 1;
        }
    }
    out.reverse();
    out
}

/// Maximal runs of ASCII digits, as byte ranges.
fn digit_runs(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            runs.push((start, i));
        } else {
            i += 1;
        }
    }
    runs
}

/// Whether the digits `start..end` continue a number written with `.` or `,` groups or
/// decimals (`1.234567890`, `123456789,5`).
fn in_grouped_number(text: &str, start: usize, end: usize) -> bool {
    let b = text.as_bytes();
    let before = start >= 2 && matches!(b[start - 1], b'.' | b',') && b[start - 2].is_ascii_digit();
    let after = end + 1 < b.len() && matches!(b[end], b'.' | b',') && b[end + 1].is_ascii_digit();
    before || after
}

/// Whether a unit of money or a count follows the digits (`450000000 đồng`, `… VND`, `… %`) or
/// a currency sign precedes them.
fn is_amount(text: &str, start: usize, end: usize) -> bool {
    let before = text.get(..start).unwrap_or_default().trim_end();
    let mut tail: Vec<char> = before.chars().rev().take(4).collect();
    tail.reverse();
    let tail: String = tail.into_iter().collect();
    if before.ends_with(['$', '₫', '€']) || fold_words(&tail).ends_with("vnd") {
        return true;
    }
    let after = text.get(end..).unwrap_or_default().trim_start();
    if after.starts_with(['%', '₫', '$']) {
        return true;
    }
    let next_word: String = after.chars().take_while(|c| is_word_char(*c)).collect();
    let next_word = fold_words(&next_word);
    AMOUNT_UNITS.contains(&next_word.as_str())
}

/// Phone numbers, starting at a `+`, a `(` or a digit run that is not glued to a word.
fn phones(text: &str, runs: &[(usize, usize)], out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    for &(run_start, _) in runs {
        // Where the number may begin: at `+`, `(`, `(+` right before the digits, or the digits.
        let mut start = run_start;
        if start >= 1 && b[start - 1] == b'+' {
            start -= 1;
        }
        if start >= 1 && b[start - 1] == b'(' {
            start -= 1;
        }
        // `+` and `(` delimit by themselves; digits must not be glued to a word.
        if start == run_start && char_before(text, start).is_some_and(is_word_char) {
            continue;
        }
        if let Some(end) = phone_at(text, start) {
            out.push(Candidate::new(FindingKind::Phone, start, end, None));
        }
    }
}

/// The end of the longest phone number starting at byte `p`, if any.
fn phone_at(text: &str, p: usize) -> Option<usize> {
    let b = text.as_bytes();
    let mut i = p;
    let open = b.get(i) == Some(&b'(');
    if open {
        i += 1;
    }
    let plus = b.get(i) == Some(&b'+');
    if plus {
        i += 1;
    }
    let mut digits = String::new();
    // (number of digits, byte end) after each digit.
    let mut ends: Vec<(usize, usize)> = Vec::new();
    let mut closed = false;
    let mut after_sep = false;
    let mut first_group = 0usize;
    let mut separated = false;
    while i < b.len() && digits.len() < 13 {
        let c = b[i];
        if c.is_ascii_digit() {
            digits.push(char::from(c));
            if !separated {
                first_group += 1;
            }
            i += 1;
            ends.push((digits.len(), i));
            after_sep = false;
        } else if c == b')' && open && !closed && !digits.is_empty() && !after_sep {
            closed = true;
            separated = true;
            i += 1;
            // One separator may follow the parenthesis: `(028) 3829 1234`.
            if b.get(i).is_some_and(|&c| matches!(c, b' ' | b'.' | b'-'))
                && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
                i += 1;
            }
        } else if matches!(c, b' ' | b'.' | b'-')
            && !after_sep
            && !digits.is_empty()
            && b.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            // A lone leading `0.` is a decimal, not a trunk prefix.
            if !separated && first_group < 2 {
                break;
            }
            separated = true;
            after_sep = true;
            i += 1;
        } else {
            break;
        }
    }
    ends.iter().rev().find_map(|&(n, end)| {
        let fits = !char_at(text, end).is_some_and(is_word_char);
        (fits && PhoneNumber::from_digits(&digits[..n], plus).is_some()).then_some(end)
    })
}

/// Bank account numbers: 6–19 digits right after a bank keyword. A number may be written in
/// groups joined by one space or dash when the first group has at least 3 digits and each
/// later one at least 2 (`1903 4567 8901 23`).
fn bank_accounts(text: &str, runs: &[(usize, usize)], out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < runs.len() {
        let (start, mut end) = runs[i];
        let mut count = end - start;
        let mut j = i;
        if count >= 3 {
            while let Some(&(next_start, next_end)) = runs.get(j + 1) {
                let joined = next_start == end + 1
                    && matches!(b[end], b' ' | b'-')
                    && next_end - next_start >= 2
                    && count + (next_end - next_start) <= 19;
                if !joined {
                    break;
                }
                count += next_end - next_start;
                end = next_end;
                j += 1;
            }
        }
        if (6..=19).contains(&count)
            && is_standalone(text, start, end)
            && !is_date(&text[start..end])
            && let Some(kw) = keyword_before(text, start, BANK_KEYWORDS)
        {
            out.push(Candidate::new(FindingKind::BankAccount, start, end, Some(kw)));
        }
        i = j + 1;
    }
}

/// `YYYY-MM-DD` or `DD-MM-YYYY` (with `-` or a space) naming a real day: a date, not an account.
fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split([' ', '-']).collect();
    let [a, m, c] = parts.as_slice() else {
        return false;
    };
    let (y, d) = match (a.len(), c.len()) {
        (4, _) => (a, c),
        (_, 4) => (c, a),
        _ => return false,
    };
    if m.len() > 2 || d.len() > 2 {
        return false;
    }
    match (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>()) {
        (Ok(y), Ok(m), Ok(d)) => NaiveDate::from_ymd_opt(y, m, d).is_some(),
        _ => false,
    }
}

fn is_local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// E-mail addresses around each `@` (or `(at)` / `[at]`).
fn emails(text: &str, out: &mut Vec<Candidate>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let sep_len = if b[i] == b'@' {
            1
        } else if b[i..].len() >= 4
            && (b[i..i + 4].eq_ignore_ascii_case(b"(at)") || b[i..i + 4].eq_ignore_ascii_case(b"[at]"))
        {
            4
        } else {
            i += 1;
            continue;
        };
        // The local part: at most 64 characters (RFC 5321) of local characters before the
        // separator. Every shorter local part starting after a punctuation mark is a candidate
        // too, so that `a@b.vn-c@d.vn` yields both addresses once overlaps are resolved.
        let mut first = i;
        while first > 0 && i - first < 64 && is_local_char(b[first - 1]) {
            first -= 1;
        }
        let dom_start = i + sep_len;
        let mut end = dom_start;
        while end < b.len() && is_domain_char(b[end]) {
            end += 1;
        }
        // The longest valid domain that ends at a label boundary: `a@b.vn-0912…` is `a@b.vn`
        // followed by a phone.
        end = end.min(dom_start + 253);
        let valid_end = (dom_start + 1..=end)
            .rev()
            .filter(|&e| e == end || matches!(b[e], b'.' | b'-'))
            .find(|&e| valid_domain(&text[dom_start..e]));
        if let Some(end) = valid_end {
            for start in first..i {
                let starts_word = start == first || !b[start - 1].is_ascii_alphanumeric();
                if starts_word && b[start].is_ascii_alphanumeric() {
                    out.push(Candidate::new(FindingKind::Email, start, end, None));
                }
            }
        }
        i += sep_len;
    }
}

/// `label(.label)+` with a final label of at least two letters.
fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic()))
}
