//! Nothing in the crate panics, whatever it is given (R-SEC-10: masking runs on every record, so
//! an input that crashed it would stop the stream). proptest is not in the workspace, so a
//! seeded generator drives many random and odd inputs; the invariants of the findings are
//! checked on each.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDate;
use etx_crypto::MasterKey;
use etx_domain::Category;
use etx_masking_core::{
    Audience, Authorisation, BUILTIN_POLICY, CitizenId, Detector, FindingKind, Generalisation, Masker,
    MaskingPolicy, PhoneNumber, Purpose, TaxCode, TokenKeys, generalise, looks_masked, partial_mask,
    suppress_cells,
};
use serde_json::{Value, json};

/// xorshift64*: small, seeded, good enough to explore inputs reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }
}

/// Pieces that exercise every detector's edges, glued at random.
const PIECES: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "5",
    "7",
    "8",
    "9",
    "00",
    "84",
    "+",
    "+84",
    "(",
    ")",
    "(+84)",
    "-",
    ".",
    ",",
    " ",
    "  ",
    "\n",
    ";",
    ". ",
    "@",
    "(at)",
    "[at]",
    "a",
    "Z",
    "_",
    "đ",
    "Đ",
    "ồ",
    "ệ",
    "\u{301}",
    "\u{200b}",
    "😀",
    "\u{0}",
    "%",
    "đồng",
    "VND",
    "₫",
    "STK ",
    "số tài khoản ",
    "CCCD ",
    "CMND ",
    "MST ",
    "mã số thuế ",
    "account no ",
    "001099012345",
    "079190000123",
    "0100233488",
    "0314409058-002",
    "0912 345 678",
    "(024) 3825 1234",
    "tran.hung@example.vn",
    "123456789",
    "tok_",
    "rtk_",
    "*",
    "***",
    "[REDACTED]",
    "Phường Ba Đình",
    "Thành phố Hà Nội",
    "2026-10-07",
    "07/10/1990",
];

fn random_text(rng: &mut Rng, max_pieces: usize) -> String {
    let n = rng.below(max_pieces + 1);
    (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect()
}

fn random_json(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth == 0 { 4 } else { 6 }) {
        0 => Value::Null,
        1 => json!(rng.below(20)),
        2 => json!(rng.below(2) == 0),
        3 => json!(random_text(rng, 12)),
        4 => Value::Array((0..rng.below(4)).map(|_| random_json(rng, depth - 1)).collect()),
        _ => {
            let keys = [
                "complainant",
                "expert",
                "citizen_id",
                "phone",
                "email",
                "address",
                "full_name",
                "a/b",
                "~",
                "*",
            ];
            Value::Object(
                (0..rng.below(5))
                    .map(|_| {
                        (
                            keys[rng.below(keys.len())].to_owned(),
                            random_json(rng, depth - 1),
                        )
                    })
                    .collect(),
            )
        }
    }
}

fn check_findings(text: &str, detector: &Detector) {
    let findings = detector.scan(text);
    let mut last_end = 0;
    for f in &findings {
        assert!(f.start < f.end && f.end <= text.len(), "{text:?}: {f:?}");
        assert!(
            f.start >= last_end,
            "overlap or disorder in {text:?}: {findings:?}"
        );
        assert!(
            text.is_char_boundary(f.start) && text.is_char_boundary(f.end),
            "{text:?}: {f:?}"
        );
        last_end = f.end;
    }
}

#[test]
fn random_texts_never_panic_and_findings_keep_their_invariants() {
    let detector = Detector::new(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
    let today = detector.today();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..10_000 {
        let text = random_text(&mut rng, 16);
        check_findings(&text, &detector);
        let _ = looks_masked(&text);
        let _ = TaxCode::parse(&text);
        let _ = CitizenId::parse(&text, today);
        let _ = PhoneNumber::parse(&text);
        for to in [
            Generalisation::Year,
            Generalisation::Province,
            Generalisation::Commune,
        ] {
            let _ = generalise(&text, to);
        }
        let k = rng.below(10);
        let masked = partial_mask(&text, rng.below(10), k, '*', rng.below(2) == 0);
        assert_eq!(
            masked.chars().count(),
            text.chars().count(),
            "a partial mask keeps the length of {text:?}"
        );
    }
}

#[test]
fn random_bytes_as_lossy_utf8_never_panic() {
    let detector = Detector::new(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..5_000 {
        let len = rng.below(64);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                // Mostly digits and separators, the detectors' hot path.
                let r = rng.below(100);
                let b = rng.next().to_le_bytes()[0];
                match r {
                    0..=49 => b'0' + (b % 10),
                    50..=64 => b" .-+()@"[usize::from(b % 7)],
                    _ => b,
                }
            })
            .collect();
        check_findings(&String::from_utf8_lossy(&bytes), &detector);
    }
}

#[test]
fn odd_inputs_never_panic() {
    let detector = Detector::new(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
    let long_digits = "0".repeat(100_000);
    let long_mixed = "0912 345 678 ".repeat(5_000);
    let many_ats = "@".repeat(10_000);
    let deep_parens = "(".repeat(1_000) + "+84912345678";
    for text in [
        "",
        " ",
        "+",
        "(",
        ")",
        "(+",
        "(+84",
        "+84",
        "84",
        "0",
        "@",
        "a@",
        "@b",
        "(at)",
        "a(at)",
        "(AT)b.vn",
        ".",
        "-",
        "\u{0}\u{0}",
        "\u{feff}0912345678",
        "\u{202e}0912345678",
        "ồ",
        "ồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồồ123456789",
        "STKồ123456",
        "CCCDồ001099012345",
        long_digits.as_str(),
        long_mixed.as_str(),
        many_ats.as_str(),
        deep_parens.as_str(),
    ] {
        check_findings(text, &detector);
        let _ = looks_masked(text);
        let _ = partial_mask(text, 255, 255, '*', true);
        let _ = generalise(text, Generalisation::Commune);
    }
}

#[test]
fn random_payloads_are_masked_for_every_audience_without_panicking() {
    let policy = MaskingPolicy::parse(BUILTIN_POLICY).unwrap();
    let keys = TokenKeys::new(MasterKey::generate("mk-fuzz"));
    let detector = Detector::new(NaiveDate::from_ymd_opt(2026, 11, 28).unwrap());
    let masker = Masker::new(keys.clone(), detector);
    let mut rng = Rng(42);
    for _ in 0..1_500 {
        let payload = random_json(&mut rng, 4);
        for category in Category::ALL {
            for audience in Audience::ALL {
                let masked = masker.apply(&policy, audience, category, &payload).unwrap();
                // No identifier that stands on its own (a phone, an e-mail, a valid citizen id
                // or tax code) survives masking. Keyword-gated findings may appear in the
                // output: masking shortens the text, which can bring a keyword within reach of
                // a number that was not one before (a known limit of byte windows).
                if matches!(audience, Audience::Public | Audience::AlertText) {
                    for f in detector.scan_value(&masked.value) {
                        let s = masked
                            .value
                            .pointer(&f.pointer)
                            .and_then(Value::as_str)
                            .unwrap_or_default();
                        let hit = &s[f.start..f.end];
                        let standalone = match f.kind {
                            FindingKind::Phone | FindingKind::Email => true,
                            FindingKind::CitizenId => CitizenId::parse(hit, detector.today()).is_ok(),
                            FindingKind::TaxCode => TaxCode::parse(hit).is_ok(),
                            _ => false,
                        };
                        assert!(!standalone, "{payload} → {}: {f:?}", masked.value);
                    }
                }
            }
            let _ = etx_masking_core::check_declared_masked_with(&policy, category, &payload);
        }
    }
    // Re-identification of junk never panics either.
    let purpose = Purpose::parse("citizen_id").unwrap();
    let auth = Authorisation::new("fuzz", purpose.clone(), "fuzzing re-identification").unwrap();
    for _ in 0..2_000 {
        let junk = format!("rtk_{}", random_text(&mut rng, 8));
        let _ = keys.reidentify(&purpose, &junk, &auth);
    }
}

#[test]
fn random_policy_documents_are_refused_or_accepted_without_panicking() {
    let base: Value = serde_json::from_str(BUILTIN_POLICY).unwrap();
    let mut rng = Rng(7);
    let replacements = [
        json!(null),
        json!(-1),
        json!(1.5),
        json!("x"),
        json!([]),
        json!({}),
        json!({"op": "partial", "keep_last": 300}),
        json!({"op": "partial", "mask_char": "ab"}),
        json!({"op": "token"}),
        json!(u64::MAX),
    ];
    for _ in 0..2_000 {
        let mut doc = base.clone();
        // Replace a random node of the document.
        let mut ptrs = Vec::new();
        collect_pointers(&doc, String::new(), &mut ptrs);
        let ptr = &ptrs[rng.below(ptrs.len())];
        if let Some(node) = doc.pointer_mut(ptr) {
            *node = replacements[rng.below(replacements.len())].clone();
        }
        match MaskingPolicy::from_value(&doc) {
            Ok(_) => {}
            Err(e) => assert!(!e.violations.is_empty()),
        }
        let text = doc.to_string();
        let _ = MaskingPolicy::parse(text.get(..rng.below(text.len())).unwrap_or_default());
    }
}

fn collect_pointers(v: &Value, ptr: String, out: &mut Vec<String>) {
    out.push(ptr.clone());
    match v {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect_pointers(item, format!("{ptr}/{i}"), out);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                collect_pointers(
                    item,
                    format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        _ => {}
    }
}

#[test]
fn suppression_never_panics_on_extreme_counts() {
    for k in [0, 1, 2, 5, u64::MAX] {
        let _ = suppress_cells(&[0, 1, u64::MAX, u64::MAX - 1, 4], k);
        let _ = suppress_cells(&[], k);
    }
}
