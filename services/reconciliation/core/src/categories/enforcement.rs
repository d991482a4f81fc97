//! Enforcement (R-DATA-1 Art. 8.2(d)): inspections, complaints, denunciations, violations,
//! incident reports (`contracts/schemas/enforcement/v1.schema.json`).
//!
//! **Natural key**: case type + case number (folded with
//! [`fold_number`]: `15/QĐ-TTr` = `15/qd-ttr`) + opening date.
//! A case number is given by the body handling the case and is cited as such by everyone who
//! reports it; the opening date keeps two bodies' `15/QĐ-TTr` of different years or bodies
//! apart. The handling body is free text (`Sở KH&CN Hà Nội` / `Sở Khoa học và Công nghệ Thành
//! phố Hà Nội`) and is left to fuzzy matching.
//!
//! **Fact key**: the same parts, without the organisation — the inspectorate and the
//! provincial department reporting the same case.
//!
//! **Measures**: `status`, `closed_on`, `incident/severity`, `incident/incident_type` (text);
//! `penalty_amount_vnd`, `incident/affected_users` (numeric); `subject_tax_code` (token: two
//! sources naming different subjects for one case disagree).
//!
//! **Fuzzy fields** (for the same case reported with a differently written number or date):
//! `case_number`, `case_type` (codes), `subject_organisation`, `handling_body`,
//! `incident_system` (names), `opened_on` (date), `description` (text), `subject_tax_code`
//! (token; *not* decisive by default: one company can be the subject of several cases).
//! The complainant's fields are personal and never compared.
//!
//! **Blocking**: the opening date; the case number; the subject's tax-code token; each of the
//! three most distinctive words of the subject organisation's name.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    Comparator, FuzzyValue, RecordView, ViewError, code, number_measure, opt_date, part, req_str,
    text_measure, token_measure, usable, usable_str,
};
use crate::normalise::{distinctive_words, fold_number};
use crate::record::MatchTokens;

/// The fuzzy fields of enforcement records.
pub(super) const FUZZY_FIELDS: &[(&str, Comparator)] = &[
    ("case_number", Comparator::Code),
    ("case_type", Comparator::Code),
    ("subject_organisation", Comparator::Name),
    ("handling_body", Comparator::Name),
    ("incident_system", Comparator::Name),
    ("opened_on", Comparator::Date),
    ("description", Comparator::Text),
    ("subject_tax_code", Comparator::Token),
];

pub(super) fn view(payload: &Value, tokens: &MatchTokens) -> Result<RecordView, ViewError> {
    let case_type = req_str(payload, "/case_type")?;
    let number = req_str(payload, "/case_number")?;
    req_str(payload, "/opened_on")?;
    let opened = opt_date(payload, "/opened_on")?;
    let tax = tokens.get("/subject_tax_code");

    let natural = match (usable(case_type), usable(number), opened) {
        (Some(t), Some(n), Some(d)) => Some(vec![
            part("case_type", code(t)),
            part("case_number", fold_number(n)),
            part("opened_on", d.to_string()),
        ]),
        _ => None,
    };

    let mut measures = BTreeMap::new();
    for (name, ptr) in [
        ("status", "/status"),
        ("closed_on", "/closed_on"),
        ("incident/severity", "/incident/severity"),
        ("incident/incident_type", "/incident/incident_type"),
    ] {
        text_measure(&mut measures, payload, name, ptr)?;
    }
    for (name, ptr) in [
        ("penalty_amount_vnd", "/penalty_amount_vnd"),
        ("incident/affected_users", "/incident/affected_users"),
    ] {
        number_measure(&mut measures, payload, name, ptr)?;
    }
    token_measure(&mut measures, tokens, "subject_tax_code", "/subject_tax_code");

    let mut fuzzy = BTreeMap::new();
    if let Some(n) = usable(number) {
        fuzzy.insert("case_number".to_owned(), FuzzyValue::Code(fold_number(n)));
    }
    if let Some(t) = usable(case_type) {
        fuzzy.insert("case_type".to_owned(), FuzzyValue::Code(code(t)));
    }
    for (name, ptr) in [
        ("subject_organisation", "/subject_organisation"),
        ("handling_body", "/handling_body"),
        ("incident_system", "/incident/system_name"),
    ] {
        if let Some(s) = usable_str(payload, ptr)? {
            fuzzy.insert(name.to_owned(), FuzzyValue::Name(s.to_owned()));
        }
    }
    if let Some(d) = opened {
        fuzzy.insert("opened_on".to_owned(), FuzzyValue::Date(d));
    }
    if let Some(s) = usable_str(payload, "/description")? {
        fuzzy.insert("description".to_owned(), FuzzyValue::Text(s.to_owned()));
    }
    if let Some(t) = tax {
        fuzzy.insert("subject_tax_code".to_owned(), FuzzyValue::Token(t.clone()));
    }

    let mut blocking = Vec::new();
    if let Some(d) = opened {
        blocking.push(vec![part("opened_on", d.to_string())]);
    }
    if let Some(n) = usable(number) {
        blocking.push(vec![part("case_number", fold_number(n))]);
    }
    if let Some(t) = tax {
        blocking.push(vec![part("subject_tax_code", t.as_str())]);
    }
    if let Some(s) = usable_str(payload, "/subject_organisation")? {
        for w in distinctive_words(s, 3) {
            blocking.push(vec![part("subject_word", w)]);
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
    use crate::categories::MeasureValue;
    use serde_json::json;

    fn inspection() -> Value {
        json!({
            "case_type": "inspection",
            "case_number": "15/QĐ-TTr",
            "opened_on": "2026-06-02",
            "closed_on": "2026-08-20",
            "status": "resolved",
            "handling_body": "Thanh tra Bộ Khoa học và Công nghệ",
            "subject_organisation": "Công ty Cổ phần Giải pháp Số Phương Nam (giả định)",
            "subject_tax_code": "*******678",
            "description": "Thanh tra việc tuân thủ quy định về lưu trữ thông điệp dữ liệu.",
            "penalty_amount_vnd": 45000000,
            "legal_basis": ["Luật Giao dịch điện tử số 20/2023/QH15"]
        })
    }

    #[test]
    fn a_case_is_keyed_by_type_folded_number_and_opening_date() {
        let v = view(&inspection(), &MatchTokens::new()).unwrap();
        assert_eq!(
            v.natural,
            Some(vec![
                part("case_type", "inspection"),
                part("case_number", "15qdttr"),
                part("opened_on", "2026-06-02")
            ])
        );
        assert_eq!(v.fact, v.natural);
        let mut other = inspection();
        other["case_number"] = json!("15/QD-TTR");
        assert_eq!(view(&other, &MatchTokens::new()).unwrap().fact, v.fact);
    }

    #[test]
    fn a_masked_tax_code_is_neither_a_measure_nor_a_blocking_key() {
        let v = view(&inspection(), &MatchTokens::new()).unwrap();
        assert!(!v.measures.contains_key("subject_tax_code"));
        assert!(!v.fuzzy.contains_key("subject_tax_code"));
        let with_token = MatchTokens::from_pairs([("/subject_tax_code", "h-0312345678")]).unwrap();
        let t = view(&inspection(), &with_token).unwrap();
        assert!(matches!(
            t.measures.get("subject_tax_code").map(|m| &m.value),
            Some(MeasureValue::Token(_))
        ));
        assert_eq!(t.blocking.len(), v.blocking.len() + 1);
    }

    #[test]
    fn measures_include_status_penalty_and_closing_date() {
        let v = view(&inspection(), &MatchTokens::new()).unwrap();
        let names: Vec<&str> = v.measures.keys().map(String::as_str).collect();
        assert_eq!(names, ["closed_on", "penalty_amount_vnd", "status"]);
    }
}
