//! Workforce (R-DATA-1 Art. 8.2(c)): training courses, capacity building, recruitment and
//! expert registrations (`contracts/schemas/workforce/v1.schema.json`).
//!
//! These are *entities* without an official number, so they are matched fuzzily across
//! sources; only an expert has a reliable identity, the keyed-hash token of their citizen id.
//!
//! **Natural key**:
//! * an expert registration: activity type + the token of `/expert/citizen_id`. Without a token
//!   (the id arrived masked) the registration is *unkeyable*: the title (`Đăng ký chuyên gia …`)
//!   is shared by every expert, and the name arrived masked, so nothing else tells two experts
//!   apart — only an exact re-send is then recognised;
//! * anything else: activity type + start date + title folded with
//!   [`fold_name`].
//!
//! **Fact key**: for an expert registration with a token, activity type + token (the same
//! expert registered by two organisations); otherwise none — courses are matched fuzzily.
//!
//! **Measures**: `participants_count`, `trained_count`, `funding_vnd` (numeric);
//! `start_date`, `end_date`, `delivery_mode`, `location_province_code` (text).
//!
//! **Fuzzy fields**: `title`, `organiser` (names), `start_date`, `end_date` (dates),
//! `location_province_code`, `activity_type`, `delivery_mode` (codes), and the tokens
//! `expert_citizen_id`, `expert_email`, `expert_phone`.
//!
//! **Blocking**: the start date; the province (or `-`) with each of the four most distinctive
//! words of the title ([`distinctive_words`]). Expert registrations have **no** blocking keys:
//! they are never matched fuzzily, because everything but the person is alike (one organiser
//! registers many experts on one day under one title) and the person's name arrives masked —
//! an expert is the same only by the token of their citizen id (the fact key).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{
    Comparator, FuzzyValue, RecordView, ViewError, code, number_measure, opt_date, part, req_str,
    text_measure, usable, usable_str,
};
use crate::normalise::{distinctive_words, fold_name};
use crate::record::MatchTokens;

/// The fuzzy fields of workforce records.
pub(super) const FUZZY_FIELDS: &[(&str, Comparator)] = &[
    ("title", Comparator::Name),
    ("organiser", Comparator::Name),
    ("start_date", Comparator::Date),
    ("end_date", Comparator::Date),
    ("location_province_code", Comparator::Code),
    ("activity_type", Comparator::Code),
    ("delivery_mode", Comparator::Code),
    ("expert_citizen_id", Comparator::Token),
    ("expert_email", Comparator::Token),
    ("expert_phone", Comparator::Token),
];

const EXPERT_REGISTRY: &str = "expert_registry";

pub(super) fn view(payload: &Value, tokens: &MatchTokens) -> Result<RecordView, ViewError> {
    let activity = req_str(payload, "/activity_type")?;
    req_str(payload, "/title")?;
    req_str(payload, "/organiser")?;
    req_str(payload, "/start_date")?;
    let title = usable_str(payload, "/title")?;
    let start = opt_date(payload, "/start_date")?;
    let expert = tokens.get("/expert/citizen_id");
    let activity_code = usable(activity).map(code);

    let (natural, fact) = match (activity_code.as_deref(), expert, title, start) {
        (Some(EXPERT_REGISTRY), Some(token), _, _) => {
            let parts = vec![
                part("activity_type", EXPERT_REGISTRY),
                part("expert", token.as_str()),
            ];
            (Some(parts.clone()), Some(parts))
        }
        (Some(EXPERT_REGISTRY), None, _, _) | (None, _, _, _) => (None, None),
        (Some(a), _, Some(t), Some(d)) => (
            Some(vec![
                part("activity_type", a),
                part("start_date", d.to_string()),
                part("title", fold_name(t)),
            ]),
            None,
        ),
        (Some(_), _, _, _) => (None, None),
    };

    let mut measures = BTreeMap::new();
    for name in ["participants_count", "trained_count", "funding_vnd"] {
        number_measure(&mut measures, payload, name, &format!("/{name}"))?;
    }
    for name in [
        "start_date",
        "end_date",
        "delivery_mode",
        "location_province_code",
    ] {
        text_measure(&mut measures, payload, name, &format!("/{name}"))?;
    }

    let mut fuzzy = BTreeMap::new();
    if let Some(t) = title {
        fuzzy.insert("title".to_owned(), FuzzyValue::Name(t.to_owned()));
    }
    if let Some(o) = usable_str(payload, "/organiser")? {
        fuzzy.insert("organiser".to_owned(), FuzzyValue::Name(o.to_owned()));
    }
    if let Some(d) = start {
        fuzzy.insert("start_date".to_owned(), FuzzyValue::Date(d));
    }
    if let Some(d) = opt_date(payload, "/end_date")? {
        fuzzy.insert("end_date".to_owned(), FuzzyValue::Date(d));
    }
    for name in ["location_province_code", "delivery_mode"] {
        if let Some(c) = usable_str(payload, &format!("/{name}"))? {
            fuzzy.insert(name.to_owned(), FuzzyValue::Code(code(c)));
        }
    }
    if let Some(a) = &activity_code {
        fuzzy.insert("activity_type".to_owned(), FuzzyValue::Code(a.clone()));
    }
    for (name, ptr) in [
        ("expert_citizen_id", "/expert/citizen_id"),
        ("expert_email", "/expert/email"),
        ("expert_phone", "/expert/phone"),
    ] {
        if let Some(t) = tokens.get(ptr) {
            fuzzy.insert(name.to_owned(), FuzzyValue::Token(t.clone()));
        }
    }

    let province = usable_str(payload, "/location_province_code")?.map_or_else(|| "-".to_owned(), code);
    let mut blocking = Vec::new();
    if activity_code.as_deref() != Some(EXPERT_REGISTRY) {
        if let Some(d) = start {
            blocking.push(vec![part("start_date", d.to_string())]);
        }
        if let Some(t) = title {
            for w in distinctive_words(t, 4) {
                blocking.push(vec![part("province", province.clone()), part("title_word", w)]);
            }
        }
    }

    Ok(RecordView {
        natural,
        fact,
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

    fn course() -> Value {
        json!({
            "activity_type": "training_course",
            "title": "Bồi dưỡng kiến thức về chữ ký số và dịch vụ tin cậy cho cán bộ, công chức cấp xã",
            "organiser": "Sở Khoa học và Công nghệ Thành phố Hồ Chí Minh",
            "start_date": "2026-09-08",
            "end_date": "2026-09-12",
            "delivery_mode": "blended",
            "participants_count": 120,
            "trained_count": 114,
            "funding_vnd": 185000000,
            "location_province_code": "79",
            "topics": ["chữ ký số", "dịch vụ tin cậy", "hồ sơ điện tử"]
        })
    }

    fn expert() -> Value {
        json!({
            "activity_type": "expert_registry",
            "title": "Đăng ký chuyên gia tư vấn về an toàn giao dịch điện tử",
            "organiser": "Cục Chuyển đổi số quốc gia",
            "start_date": "2026-10-05",
            "location_province_code": "01",
            "expert": {
                "full_name": "N*** T** M*** T***",
                "citizen_id": "tok_AAAAAAAAAAAAAAAAAAAAAAAAAA",
                "specialisation": "An toàn thông tin và chữ ký số"
            }
        })
    }

    #[test]
    fn a_course_is_keyed_by_activity_start_and_folded_title() {
        let v = view(&course(), &MatchTokens::new()).unwrap();
        let mut retitled = course();
        retitled["title"] =
            json!("BOI DUONG kien thuc ve chu ky so va dich vu tin cay cho can bo, cong chuc cap xa");
        assert_eq!(view(&retitled, &MatchTokens::new()).unwrap().natural, v.natural);
        assert_eq!(v.fact, None, "courses are matched fuzzily across sources");
        assert_eq!(v.measures.len(), 7);
        assert!(v.blocking.len() >= 2);
        assert!(!v.fuzzy.contains_key("expert_citizen_id"));
    }

    #[test]
    fn an_expert_is_keyed_by_the_token_of_their_citizen_id_only() {
        let tokens = MatchTokens::from_pairs([("/expert/citizen_id", "h-79190000123")]).unwrap();
        let v = view(&expert(), &tokens).unwrap();
        assert_eq!(
            v.fact,
            Some(vec![
                part("activity_type", "expert_registry"),
                part("expert", "h-79190000123")
            ])
        );
        assert_eq!(v.natural, v.fact);
        assert!(matches!(
            v.fuzzy.get("expert_citizen_id"),
            Some(FuzzyValue::Token(_))
        ));
        assert!(v.blocking.is_empty(), "experts are never matched fuzzily");
    }

    #[test]
    fn the_payload_s_citizen_id_is_never_a_key() {
        // The payload carries a token-like value, but no match token was computed: the id
        // arrived masked, so the registration is unkeyable.
        let v = view(&expert(), &MatchTokens::new()).unwrap();
        assert!(!v.is_keyable());
        assert_eq!(v.fact, None);
        assert!(!v.fuzzy.contains_key("expert_citizen_id"));
    }

    #[test]
    fn required_fields_are_checked() {
        let mut p = course();
        p.as_object_mut().unwrap().remove("organiser");
        assert_eq!(
            view(&p, &MatchTokens::new()),
            Err(ViewError::Missing {
                pointer: "/organiser".to_owned()
            })
        );
    }
}
