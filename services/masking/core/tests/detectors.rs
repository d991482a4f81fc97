//! The detectors on free text (R-SEC-10, issue 5 §3): every example of the issue, the edge cases
//! of each rule, overlaps and JSON payloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use etx_masking_core::{Detector, Finding, FindingKind, ValueFinding};
use serde_json::json;

fn detector() -> Detector {
    Detector::new(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap())
}

/// `(kind, matched text)` of every finding.
fn found(text: &str) -> Vec<(FindingKind, &str)> {
    detector()
        .scan(text)
        .into_iter()
        .map(|f| (f.kind, &text[f.start..f.end]))
        .collect()
}

use FindingKind::*;

#[test]
fn a_citizen_id_in_a_sentence_is_found() {
    assert_eq!(
        found("Ông Hùng, CCCD 001099012345, cư trú tại Hà Nội."),
        vec![(CitizenId, "001099012345")]
    );
    // Without a keyword too, when it is plausible.
    assert_eq!(
        found("số 079190000123 cấp ngày 1/1/2021"),
        vec![(CitizenId, "079190000123")]
    );
}

#[test]
fn an_implausible_twelve_digit_number_is_not_a_citizen_id_without_a_keyword() {
    // Unknown province 097, a future birth year, a 22nd-century digit, a 1905 birth.
    for text in [
        "mã 097099012345",
        "mã 001227000001",
        "mã 001400000001",
        "mã 001105000001",
        "202610120214",
    ] {
        assert_eq!(found(text), vec![], "{text}");
    }
    // After a citizen-id keyword the shape alone is enough: a mistyped id is still personal.
    assert_eq!(found("CCCD: 097099012345"), vec![(CitizenId, "097099012345")]);
    assert_eq!(
        found("số định danh cá nhân 001227000001"),
        vec![(CitizenId, "001227000001")]
    );
}

#[test]
fn digits_glued_to_letters_are_codes_not_identifiers() {
    for text in [
        "HD001099012345",
        "001099012345abc",
        "x_0912345678",
        "tok_0100233488",
        "Đ0912345678",
    ] {
        assert_eq!(found(text), vec![], "{text}");
    }
    assert_eq!(
        found("0010990124456"),
        vec![],
        "13 digits: no citizen id, nor a valid tax code"
    );
}

#[test]
fn tax_codes_need_their_check_digit_or_a_keyword() {
    assert_eq!(found("Công ty 0100233488 nộp"), vec![(TaxCode, "0100233488")]);
    assert_eq!(found("Công ty 0100233480 nộp"), vec![]);
    assert_eq!(
        found("chi nhánh 0314409058-002"),
        vec![(TaxCode, "0314409058-002")]
    );
    assert_eq!(
        found("chi nhánh 0314409058002."),
        vec![(TaxCode, "0314409058002")]
    );
    // A bad branch suffix leaves the head office's code.
    assert_eq!(found("0314409058-000"), vec![(TaxCode, "0314409058")]);
    // With a tax keyword, a wrong check digit is still masked.
    assert_eq!(found("MST: 0100233480"), vec![(TaxCode, "0100233480")]);
    assert_eq!(
        found("mã số thuế 0109876543-001"),
        vec![(TaxCode, "0109876543-001")]
    );
}

#[test]
fn phone_numbers_in_every_common_spelling() {
    for phone in [
        "0912345678",
        "+84912345678",
        "84912345678",
        "0912 345 678",
        "0912.345.678",
        "0912-345-678",
        "+84 912 345 678",
        "(+84) 912 345 678",
        "(024) 3825 1234",
        "024.3825.1234",
        "+84 24 3825 1234",
        "0225 384 2123",
        "+84900000456",
        "0387654321",
        "0523456789",
        "0701234568",
        "0812345678",
    ] {
        let text = format!("Gọi {phone}, gặp chị Lan.");
        assert_eq!(found(&text), vec![(Phone, phone)], "{phone}");
    }
}

#[test]
fn not_phone_numbers() {
    for text in [
        "0112345678",        // NSN starting with 1
        "0412345678",        // 4: no such block
        "1900 1234",         // service line
        "091234567",         // too short (and a 9-digit id card instead? no: starts with 0 → see below)
        "09123456789",       // 11 digits starting 09
        "tỷ lệ 0.912345678", // a decimal
        "2026-10-12",
    ] {
        assert!(
            !found(text).iter().any(|(k, _)| *k == Phone),
            "{text}: {:?}",
            found(text)
        );
    }
}

#[test]
fn two_phones_separated_by_a_space_are_two_findings() {
    assert_eq!(
        found("0912345678 0987654321"),
        vec![(Phone, "0912345678"), (Phone, "0987654321")]
    );
    assert_eq!(
        found("079190000123(024) 3825 1234"),
        vec![(CitizenId, "079190000123"), (Phone, "(024) 3825 1234")]
    );
    assert_eq!(
        found("0912 345 678 - 0913.222.333"),
        vec![(Phone, "0912 345 678"), (Phone, "0913.222.333")]
    );
}

#[test]
fn bank_accounts_need_a_keyword() {
    assert_eq!(
        found("STK 0011004012345 tại Vietcombank"),
        vec![(BankAccount, "0011004012345")]
    );
    assert_eq!(
        found("Số tài khoản: 1903 4567 8901 23"),
        vec![(BankAccount, "1903 4567 8901 23")]
    );
    assert_eq!(found("account no. 123456"), vec![(BankAccount, "123456")]);
    assert_eq!(found("mã hồ sơ 0011004012345"), vec![]);
    // Too short or too long.
    assert_eq!(found("STK 12345"), vec![]);
    assert_eq!(found("STK 12345678901234567890"), vec![]);
    // Dates are not accounts.
    assert_eq!(found("STK ngày 2026-10-07"), vec![]);
    // The keyword does not reach across a sentence.
    assert_eq!(found("Xem STK. Mã 0011004012345"), vec![]);
}

#[test]
fn a_keyword_decides_between_equally_long_readings() {
    // 0912345678 is a phone; after "STK" it is an account number.
    assert_eq!(found("STK 0912345678"), vec![(BankAccount, "0912345678")]);
    // 001099012345 is a citizen id; after "số tài khoản" it is an account number.
    assert_eq!(
        found("số tài khoản 001099012345"),
        vec![(BankAccount, "001099012345")]
    );
    // Both keywords: the nearer one wins.
    assert_eq!(
        found("STK của người có CCCD 001099012345"),
        vec![(CitizenId, "001099012345")]
    );
    // A valid tax code that is also a valid phone (03x): the checked tax code wins.
    assert_eq!(found("0314409058"), vec![(TaxCode, "0314409058")]);
    assert_eq!(found("SĐT 0314409058"), vec![(TaxCode, "0314409058")]);
}

#[test]
fn old_id_cards_are_standalone_nine_digit_numbers_that_are_not_amounts() {
    assert_eq!(
        found("CMND số 012345678 cấp năm 2010"),
        vec![(OldIdCard, "012345678")]
    );
    assert_eq!(found("giấy tờ 123456789"), vec![(OldIdCard, "123456789")]);
    for text in [
        "phạt 450000000 đồng",
        "phạt 450000000 VNĐ",
        "phạt 450000000đ",
        "VND 450000000",
        "tăng 123456789%",
        "1.123456789",
        "123456789,5",
        "A123456789",
    ] {
        assert_eq!(found(text), vec![], "{text}");
    }
    // A keyword overrides the amount rule.
    assert_eq!(found("CMND 450000000 đồng"), vec![(OldIdCard, "450000000")]);
}

#[test]
fn e_mail_addresses_including_obfuscated_ones() {
    assert_eq!(
        found("Email: tran.hung@example.vn."),
        vec![(Email, "tran.hung@example.vn")]
    );
    assert_eq!(
        found("thu.nguyen@example.vn"),
        vec![(Email, "thu.nguyen@example.vn")]
    );
    assert_eq!(
        found("hoa.le(at)example.vn"),
        vec![(Email, "hoa.le(at)example.vn")]
    );
    assert_eq!(
        found("a+b_c%d@sub-1.example.com.vn"),
        vec![(Email, "a+b_c%d@sub-1.example.com.vn")]
    );
    // A dash and digits after the domain are not part of it.
    assert_eq!(
        found("tran.hung@example.vn-0912 345 678"),
        vec![(Email, "tran.hung@example.vn"), (Phone, "0912 345 678")]
    );
    // Two addresses glued by punctuation are two findings.
    assert_eq!(
        found("x.y@a.vn%-tran.hung@example.vn"),
        vec![(Email, "x.y@a.vn"), (Email, "tran.hung@example.vn")]
    );
    // Digits in the local part do not make a phone.
    assert_eq!(
        found("0912345678@example.vn"),
        vec![(Email, "0912345678@example.vn")]
    );
    for text in [
        "@example.vn",
        "a@localhost",
        "a@b.c",
        "a@-b.vn",
        "a@b.v1",
        "a@ b.vn",
        "@@",
    ] {
        assert_eq!(found(text), vec![], "{text}");
    }
}

#[test]
fn findings_are_sorted_and_never_overlap() {
    let text =
        "Ông A (CCCD 001099012345, SĐT 0912 345 678, email a@b.vn, STK 0011004012345, MST 0100233488).";
    let findings = detector().scan(text);
    let kinds: Vec<FindingKind> = findings.iter().map(|f| f.kind).collect();
    assert_eq!(kinds, vec![CitizenId, Phone, Email, BankAccount, TaxCode]);
    for pair in findings.windows(2) {
        assert!(pair[0].end <= pair[1].start);
    }
    assert!(findings.iter().all(|f: &Finding| f.start < f.end));
}

#[test]
fn offsets_are_bytes_in_text_with_diacritics() {
    let text = "Đồng chí Nguyễn Văn Ánh — 0912345678";
    let f = detector().scan(text);
    assert_eq!(f.len(), 1);
    assert_eq!(&text[f[0].start..f[0].end], "0912345678");
    assert_eq!(f[0].start, text.find('0').unwrap());
}

#[test]
fn scanning_a_payload_reports_json_pointers() {
    let payload = json!({
        "description": "Người khiếu nại (SĐT 0912345678) yêu cầu giữ bí mật.",
        "legal_basis": ["Luật 20/2023/QH15", "liên hệ a@b.vn"],
        "a/b": {"~x": "CCCD 001099012345"},
        "penalty_amount_vnd": 450000000,
        "count": 123456789,
        "ok": true,
        "none": null
    });
    let mut got = detector().scan_value(&payload);
    got.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    let expect = |pointer: &str, kind, start, end| ValueFinding {
        pointer: pointer.to_owned(),
        kind,
        start,
        end,
    };
    assert_eq!(
        got,
        vec![
            expect("/a~1b/~0x", CitizenId, 5, 17),
            expect("/description", Phone, 29, 39),
            expect("/legal_basis/1", Email, 11, 17),
        ]
    );
}

#[test]
fn the_free_functions_use_today() {
    assert_eq!(etx_masking_core::scan("0912345678").len(), 1);
    assert!(etx_masking_core::scan_value(&json!(["0912345678"]))[0].pointer == "/0");
    assert!(Detector::for_today().today() >= NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
}
