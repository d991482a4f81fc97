//! Policy documents (R-DATA-1 Art. 8.2(a)): strategies, plans, legal documents, standards
//! (`contracts/schemas/policy/v1.schema.json`).
//!
//! **Natural key**: document type + official number (`số, ký hiệu`), folded with
//! [`fold_number`] so `12/2026/TT-BKHCN` and `12/2026/tt-bkhcn`
//! are one document. The official number of a Vietnamese legal document carries its issuer's
//! symbol (`TT-BKHCN`, `QĐ-TTg`, `KH-UBND`) and year, and standards are numbered nationally
//! (`TCVN 12345:2026`), so the number identifies the document nationwide. The title and the
//! issuing body are free text and are not part of the key.
//!
//! **Fact key**: the same parts, without the organisation — a ministry and a province that
//! both report Decree 23/2025/NĐ-CP report one document.
//!
//! **Measures** (must agree between sources): `status`, `issued_on`, `effective_from`,
//! `expires_on`, `scope`, `province_code` — all compared as folded text.
//!
//! **Fuzzy fields** (off by default; configure them to catch mistyped numbers): `title` and
//! `issuing_body` (names), `issued_on` (date), `document_number` and `document_type` (codes).
//! Blocking: document type + date of issue, and each distinctive word of the title.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    Comparator, FuzzyValue, RecordView, ViewError, code, opt_date, part, req_str, text_measure, usable,
    usable_str,
};
use crate::normalise::{distinctive_words, fold_number};

/// The fuzzy fields of policy documents.
pub(super) const FUZZY_FIELDS: &[(&str, Comparator)] = &[
    ("title", Comparator::Name),
    ("issuing_body", Comparator::Name),
    ("issued_on", Comparator::Date),
    ("document_number", Comparator::Code),
    ("document_type", Comparator::Code),
];

pub(super) fn view(payload: &Value) -> Result<RecordView, ViewError> {
    let doc_type = req_str(payload, "/document_type")?;
    let number = req_str(payload, "/document_number")?;
    let issued_on = opt_date(payload, "/issued_on")?;

    let natural = match (usable(doc_type), usable(number)) {
        (Some(t), Some(n)) => Some(vec![
            part("document_type", code(t)),
            part("document_number", fold_number(n)),
        ]),
        _ => None,
    };

    let mut measures = BTreeMap::new();
    for name in [
        "status",
        "issued_on",
        "effective_from",
        "expires_on",
        "scope",
        "province_code",
    ] {
        text_measure(&mut measures, payload, name, &format!("/{name}"))?;
    }

    let mut fuzzy = BTreeMap::new();
    if let Some(t) = usable_str(payload, "/title")? {
        fuzzy.insert("title".to_owned(), FuzzyValue::Name(t.to_owned()));
    }
    if let Some(b) = usable_str(payload, "/issuing_body")? {
        fuzzy.insert("issuing_body".to_owned(), FuzzyValue::Name(b.to_owned()));
    }
    if let Some(d) = issued_on {
        fuzzy.insert("issued_on".to_owned(), FuzzyValue::Date(d));
    }
    if let Some(n) = usable(number) {
        fuzzy.insert("document_number".to_owned(), FuzzyValue::Code(fold_number(n)));
    }
    if let Some(t) = usable(doc_type) {
        fuzzy.insert("document_type".to_owned(), FuzzyValue::Code(code(t)));
    }

    let mut blocking = Vec::new();
    if let Some(d) = issued_on {
        blocking.push(vec![
            part("document_type", code(doc_type)),
            part("issued_on", d.to_string()),
        ]);
    }
    if let Some(t) = usable_str(payload, "/title")? {
        for w in distinctive_words(t, 4) {
            blocking.push(vec![part("title_word", w)]);
        }
    }

    Ok(RecordView {
        fact: natural.clone(),
        natural,
        blocking,
        measures,
        fuzzy,
        indicator: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hcmc_plan() -> Value {
        json!({
            "document_type": "plan",
            "document_number": "215/KH-UBND",
            "title": "Kế hoạch phát triển giao dịch điện tử trên địa bàn Thành phố Hồ Chí Minh năm 2026",
            "issuing_body": "Ủy ban nhân dân Thành phố Hồ Chí Minh",
            "issued_on": "2026-01-20",
            "effective_from": "2026-01-20",
            "status": "in_force",
            "scope": "provincial",
            "province_code": "79"
        })
    }

    #[test]
    fn the_official_number_identifies_the_document_across_sources() {
        let v = view(&hcmc_plan()).unwrap();
        assert_eq!(
            v.natural,
            Some(vec![
                part("document_type", "plan"),
                part("document_number", "215khubnd")
            ])
        );
        assert_eq!(v.fact, v.natural);
        let mut retyped = hcmc_plan();
        retyped["document_number"] = json!("215 / KH-UBND");
        retyped["title"] = json!("KẾ HOẠCH phát triển GDĐT");
        assert_eq!(view(&retyped).unwrap().natural, v.natural);
    }

    #[test]
    fn status_and_dates_are_measures() {
        let v = view(&hcmc_plan()).unwrap();
        let names: Vec<&str> = v.measures.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["effective_from", "issued_on", "province_code", "scope", "status"]
        );
        assert!(!v.blocking.is_empty());
        assert_eq!(v.fuzzy.len(), 5);
    }

    #[test]
    fn a_masked_number_makes_the_record_unkeyable() {
        let mut p = hcmc_plan();
        p["document_number"] = json!("[REDACTED]");
        let v = view(&p).unwrap();
        assert!(v.natural.is_none() && v.fact.is_none());
        assert!(!v.fuzzy.contains_key("document_number"));
    }
}
