//! The published XSDs checked by a real XSD processor (issue 3 §9, R-ING-3): libxml2, through
//! Python's lxml in the e2e virtualenv ([`venv_python`]), loads every committed
//! `contracts/schemas/<category>/v<n>.xsd`; every XML example in `contracts/examples/records/`
//! validates against the XSD of its category; the XML batch files in
//! `contracts/examples/batches/` validate with the envelope elements optional (a batch file may
//! leave them to the upload's defaults); variants the hub accepts validate; deliberately invalid
//! documents do not. The checks are `e2e-tests/soap/validate_xsd.py`. No hub is started. When
//! python3, venv or pip (and PyPI, the first time) are missing the test fails, it is never
//! skipped.

use crate::common::venv_python;
use etx_e2e::workspace_root;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The `.xml` files under `dir` (relative to the workspace root), recursively, as relative paths.
fn xml_files(root: &Path, dir: &str, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(root.join(dir)).unwrap() {
        let path = entry.unwrap().path();
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if path.is_dir() {
            xml_files(root, &rel, out);
        } else if path.extension().is_some_and(|e| e == "xml") {
            out.push(rel);
        }
    }
}

fn list<'a>(report: &'a Value, key: &str) -> &'a Vec<Value> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in the report"))
}

#[test]
fn the_examples_validate_against_the_published_xsds_with_lxml() {
    let python = venv_python();
    let root = workspace_root();
    let script = root.join("e2e-tests/soap/validate_xsd.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(
        out.status.success(),
        "XSD validation failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // One XSD per category (version 1 today), each loaded by libxml2.
    let schemas: Vec<&str> = list(&report, "schemas")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        schemas,
        [
            "contracts/schemas/enforcement/v1.xsd",
            "contracts/schemas/policy/v1.xsd",
            "contracts/schemas/statistics/v1.xsd",
            "contracts/schemas/workforce/v1.xsd"
        ]
    );

    // Every XML example was checked, none skipped.
    let mut expected = Vec::new();
    xml_files(&root, "contracts/examples/records", &mut expected);
    xml_files(&root, "contracts/examples/batches", &mut expected);
    expected.sort();
    let mut checked: Vec<&str> = list(&report, "valid")
        .iter()
        .map(|v| v["file"].as_str().unwrap())
        .collect();
    checked.sort_unstable();
    assert_eq!(checked, expected);
    assert!(expected.len() >= 8, "{expected:?}");
    for v in list(&report, "valid") {
        assert_eq!(v["ok"], true, "{v}");
        let file = v["file"].as_str().unwrap();
        let mode = if file.starts_with("contracts/examples/batches/") {
            "batch"
        } else {
            "strict"
        };
        assert_eq!(v["mode"], mode, "{file}");
    }

    let variants = list(&report, "variants");
    assert!(variants.len() >= 7);
    for v in variants {
        assert_eq!(v["ok"], true, "a variant the hub accepts: {v}");
    }
    let invalid = list(&report, "invalid");
    assert!(invalid.len() >= 50, "{}", invalid.len());
    for v in invalid {
        assert_eq!(v["rejected"], true, "an invalid document: {v}");
        assert!(v["error"].as_str().is_some_and(|e| e.starts_with("line ")), "{v}");
    }
}
