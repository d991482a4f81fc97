//! Statistics (R-DATA-1 Art. 8.2(b)): one indicator value for one transaction kind, period and
//! breakdown (`contracts/schemas/statistics/v1.schema.json`).
//!
//! **Natural key** (issue 5 §4): indicator + transaction kind + unit + every dimension
//! (`province_code`, `channel`, `sector`, `system_code`), sorted by name, values trimmed and
//! lower-cased; with the organisation and the period it makes the **source key**. The unit is
//! part of it because `transaction_count` in `count` and a mis-declared one in `percent` are
//! not the same statement.
//!
//! **Fact key** — who the fact is *about*. The schema has no subject field separate from the
//! reporter; the subject is read from the dimensions:
//! * `dimensions.province_code` — the territory the value is about. A ministry reporting
//!   e-invoices *for province 79* and Thành phố Hồ Chí Minh reporting its own e-invoices state
//!   the same fact;
//! * `dimensions.system_code` — the connected system the value is about (a measured value of
//!   one system, reported by its operator and by the supervising agency);
//! * otherwise, when the reporter is a provincial-level unit or one of its departments
//!   ([`IncomingRecord::reporter_territory`](crate::record::IncomingRecord::reporter_territory)),
//!   its province is taken as the `province_code` dimension: a province's figure without a
//!   breakdown is about itself;
//! * otherwise there is **no fact key**: a national figure of a ministry and a company's figure
//!   about its own platform are statements about different things, and only that source's own
//!   records are compared with it.
//!
//! The fact key is the natural key with the implied province filled in, **without** the
//! organisation.
//!
//! **Measures**: `value` (numeric, within the tolerance of the indicator), and the count of
//! every failure reason, `failure_reasons/<reason_code>/count` (numeric; a reason listed twice
//! counts with its first entry). Reasons only one side lists are not compared.
//!
//! No fuzzy matching: statistics have exact keys.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{RecordView, ViewError, at, code, number_measure, part, req_str, usable, usable_str};
use crate::keys::Parts;
use crate::record::ProvinceCode;

pub(super) fn view(payload: &Value, territory: Option<ProvinceCode>) -> Result<RecordView, ViewError> {
    let indicator = req_str(payload, "/indicator")?;
    let kind = req_str(payload, "/transaction_kind")?;
    let unit = req_str(payload, "/unit")?;

    let mut dims: BTreeMap<String, Option<String>> = BTreeMap::new();
    match at(payload, "/dimensions") {
        None => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let ptr = format!("/dimensions/{}", k.replace('~', "~0").replace('/', "~1"));
                match v {
                    Value::Null => {}
                    Value::String(s) => {
                        dims.insert(k.clone(), usable(s).map(code));
                    }
                    _ => {
                        return Err(ViewError::WrongType {
                            pointer: ptr,
                            expected: "a string",
                        });
                    }
                }
            }
        }
        Some(_) => {
            return Err(ViewError::WrongType {
                pointer: "/dimensions".to_owned(),
                expected: "an object",
            });
        }
    }

    let head = [indicator, kind, unit].map(usable);
    let keyable = head.iter().all(Option::is_some) && dims.values().all(Option::is_some);
    let natural_of = |dims: &BTreeMap<String, Option<String>>| -> Parts {
        let mut parts = vec![
            part("indicator", code(indicator)),
            part("transaction_kind", code(kind)),
            part("unit", code(unit)),
        ];
        parts.extend(
            dims.iter()
                .map(|(k, v)| part(&format!("dimension:{k}"), v.clone().unwrap_or_default())),
        );
        parts
    };
    let natural = keyable.then(|| natural_of(&dims));
    let fact = if keyable {
        let mut fact_dims = dims.clone();
        if !fact_dims.contains_key("province_code")
            && let Some(t) = territory
        {
            fact_dims.insert("province_code".to_owned(), Some(t.to_string()));
        }
        let has_subject = fact_dims.contains_key("province_code") || fact_dims.contains_key("system_code");
        has_subject.then(|| natural_of(&fact_dims))
    } else {
        None
    };

    let mut measures = BTreeMap::new();
    number_measure(&mut measures, payload, "value", "/value")?;
    match at(payload, "/failure_reasons") {
        None => {}
        Some(Value::Array(items)) => {
            for i in 0..items.len() {
                let Some(reason) = usable_str(payload, &format!("/failure_reasons/{i}/reason_code"))? else {
                    continue;
                };
                let name = format!("failure_reasons/{}/count", code(reason));
                if !measures.contains_key(&name) {
                    number_measure(
                        &mut measures,
                        payload,
                        &name,
                        &format!("/failure_reasons/{i}/count"),
                    )?;
                }
            }
        }
        Some(_) => {
            return Err(ViewError::WrongType {
                pointer: "/failure_reasons".to_owned(),
                expected: "an array",
            });
        }
    }

    Ok(RecordView {
        natural,
        fact,
        blocking: Vec::new(),
        measures,
        fuzzy: BTreeMap::new(),
        indicator: Some(code(indicator)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::categories::{Measure, MeasureValue};
    use serde_json::json;

    fn hcmc_einvoices() -> Value {
        json!({
            "indicator": "transaction_count",
            "transaction_kind": "e_invoice",
            "value": 182456320,
            "unit": "count",
            "source_type": "reported",
            "dimensions": {"province_code": "79", "channel": "api", "sector": "tax"},
            "note": "Số hóa đơn điện tử có mã của cơ quan thuế, tháng 10/2026."
        })
    }

    #[test]
    fn the_natural_key_is_indicator_kind_unit_and_sorted_dimensions() {
        let v = view(&hcmc_einvoices(), None).unwrap();
        let natural = v.natural.clone().unwrap();
        let names: Vec<&str> = natural.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "indicator",
                "transaction_kind",
                "unit",
                "dimension:channel",
                "dimension:province_code",
                "dimension:sector"
            ]
        );
        assert_eq!(v.fact, v.natural, "a province dimension names the subject");
        assert_eq!(v.indicator.as_deref(), Some("transaction_count"));
        assert_eq!(
            v.measures.get("value"),
            Some(&Measure {
                pointer: "/value".to_owned(),
                value: MeasureValue::Number(182456320.0)
            })
        );
    }

    #[test]
    fn dimension_order_and_case_do_not_change_the_key() {
        let mut other = hcmc_einvoices();
        other["dimensions"] = json!({"sector": "TAX ", "channel": "api", "province_code": "79"});
        assert_eq!(
            view(&other, None).unwrap().natural,
            view(&hcmc_einvoices(), None).unwrap().natural
        );
    }

    #[test]
    fn without_a_subject_dimension_the_reporter_s_province_is_the_subject() {
        let mut p = hcmc_einvoices();
        p["dimensions"] = json!({"channel": "api", "sector": "tax"});
        assert_eq!(
            view(&p, None).unwrap().fact,
            None,
            "a national figure has no cross-source fact"
        );
        let hcmc = ProvinceCode::parse("79").unwrap();
        let implied = view(&p, Some(hcmc)).unwrap();
        assert_eq!(implied.fact, view(&hcmc_einvoices(), None).unwrap().natural);
        assert_ne!(implied.natural, implied.fact);
        // An explicit province wins over the reporter's.
        let hanoi = ProvinceCode::parse("01").unwrap();
        assert_eq!(
            view(&hcmc_einvoices(), Some(hanoi)).unwrap().fact,
            view(&hcmc_einvoices(), None).unwrap().fact
        );
    }

    #[test]
    fn a_system_dimension_names_the_subject() {
        let p = json!({
            "indicator": "mean_processing_time_ms", "transaction_kind": "digital_signature",
            "value": 842.5, "unit": "ms",
            "dimensions": {"channel": "mobile", "system_code": "remote_signing"}
        });
        assert!(view(&p, None).unwrap().fact.is_some());
    }

    #[test]
    fn failure_reasons_are_measures_by_reason_code() {
        let p = json!({
            "indicator": "failed_transactions", "transaction_kind": "online_public_service",
            "value": 444, "unit": "count", "dimensions": {"province_code": "01"},
            "failure_reasons": [
                {"reason_code": "timeout", "count": 312},
                {"reason_code": "invalid_signature", "count": 87},
                {"reason_code": "timeout", "count": 1}
            ]
        });
        let v = view(&p, None).unwrap();
        assert_eq!(
            v.measures
                .get("failure_reasons/timeout/count")
                .map(|m| m.pointer.as_str()),
            Some("/failure_reasons/0/count")
        );
        assert_eq!(v.measures.len(), 3);
    }

    #[test]
    fn malformed_payloads_give_precise_errors() {
        let mut p = hcmc_einvoices();
        p["dimensions"] = json!({"province_code": 79});
        assert_eq!(
            view(&p, None),
            Err(ViewError::WrongType {
                pointer: "/dimensions/province_code".to_owned(),
                expected: "a string"
            })
        );
        let mut p = hcmc_einvoices();
        p["failure_reasons"] = json!({"x": 1});
        assert!(matches!(view(&p, None), Err(ViewError::WrongType { .. })));
        let mut p = hcmc_einvoices();
        p.as_object_mut().unwrap().remove("unit");
        assert_eq!(
            view(&p, None),
            Err(ViewError::Missing {
                pointer: "/unit".to_owned()
            })
        );
    }
}
