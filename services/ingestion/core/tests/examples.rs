//! The published examples under `contracts/examples/records/` are part of the contract
//! (R-DATA-1, R-ING-3, R-ING-4): every valid example validates, every XML example converts to
//! the same envelope and payload as its JSON twin, and every invalid example gives exactly the
//! violations listed in its `*.expected.json` sidecar.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use etx_domain::{Category, FieldViolation};
use etx_ingestion_core::schema::{SchemaRegistry, parse_item};
use etx_ingestion_core::xml::parse_records;
use serde_json::Value;
use std::fs;
use std::path::{Path, PathBuf};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../contracts/examples/records")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some(ext))
        .collect();
    out.sort();
    out
}

fn read_json(path: &Path) -> Value {
    let text = fs::read_to_string(path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn registry() -> SchemaRegistry {
    SchemaRegistry::load().unwrap()
}

fn show(v: &[FieldViolation]) -> Vec<String> {
    v.iter()
        .map(|f| format!("{} {} ({})", f.path, f.code, f.detail.as_deref().unwrap_or("")))
        .collect()
}

#[test]
fn every_json_example_is_a_valid_record_of_its_folder_category() {
    let reg = registry();
    for category in Category::ALL {
        let dir = examples_dir().join(category.as_str());
        let examples = files(&dir, "json");
        assert!(examples.len() >= 3, "{category}: at least 3 examples expected");
        for path in examples {
            let item = read_json(&path);
            let (envelope, payload) =
                parse_item(&reg, &item).unwrap_or_else(|v| panic!("{}: {:#?}", path.display(), show(&v)));
            assert_eq!(envelope.category, category, "{}", path.display());
            assert_eq!(&payload, &item["payload"]);
        }
    }
}

#[test]
fn examples_contain_vietnamese_with_diacritics() {
    for category in Category::ALL {
        let dir = examples_dir().join(category.as_str());
        let all: String = files(&dir, "json")
            .iter()
            .map(|p| fs::read_to_string(p).unwrap())
            .collect();
        assert!(
            all.chars().any(|c| matches!(c, 'ạ'..='ỹ' | 'Đ' | 'đ')),
            "{category}: examples should use Vietnamese with diacritics"
        );
    }
}

#[test]
fn every_xml_example_converts_and_matches_its_json_twin() {
    let reg = registry();
    let mut xml_count = 0;
    for category in Category::ALL {
        let dir = examples_dir().join(category.as_str());
        let xmls = files(&dir, "xml");
        assert!(!xmls.is_empty(), "{category}: at least one XML example expected");
        for path in xmls {
            xml_count += 1;
            let bytes = fs::read(&path).unwrap();
            let doc = parse_records(&reg, &bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(!doc.items.is_empty(), "{}", path.display());
            let parsed: Vec<_> = doc
                .items
                .iter()
                .map(|item| {
                    parse_item(&reg, item).unwrap_or_else(|v| panic!("{}: {:#?}", path.display(), show(&v)))
                })
                .collect();
            for (envelope, _) in &parsed {
                assert_eq!(envelope.category, category, "{}", path.display());
            }
            let twin = path.with_extension("json");
            if twin.exists() {
                assert_eq!(parsed.len(), 1, "{}: a twin holds one record", path.display());
                let expected = parse_item(&reg, &read_json(&twin)).unwrap();
                assert_eq!(
                    parsed[0],
                    expected,
                    "{} differs from its JSON twin",
                    path.display()
                );
            }
        }
    }
    assert!(xml_count >= 4);
}

#[test]
fn every_invalid_example_gives_exactly_its_expected_violations() {
    let reg = registry();
    let dir = examples_dir().join("invalid");
    let cases: Vec<PathBuf> = files(&dir, "json")
        .into_iter()
        .filter(|p| !p.to_string_lossy().ends_with(".expected.json"))
        .collect();
    assert!(cases.len() >= 5);
    for path in cases {
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap().to_owned();
        let sidecar = dir.join(format!("{stem}.expected.json"));
        let expected: Vec<(String, String)> = read_json(&sidecar)["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: violations array", sidecar.display()))
            .iter()
            .map(|v| {
                (
                    v["path"].as_str().unwrap().to_owned(),
                    v["code"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let violations = match parse_item(&reg, &read_json(&path)) {
            Ok(_) => panic!("{} should be invalid", path.display()),
            Err(v) => v,
        };
        let got: Vec<(String, String)> = violations
            .iter()
            .map(|v| (v.path.clone(), v.code.as_str().to_owned()))
            .collect();
        assert_eq!(got, expected, "{}: {:#?}", path.display(), show(&violations));
        assert!(
            violations.iter().all(|v| v.detail.is_some()),
            "{}",
            path.display()
        );
    }
}
