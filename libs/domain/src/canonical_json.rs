//! Canonical JSON (object members sorted by key, no insignificant whitespace): the same
//! content gives the same bytes whatever its member order or wire format, so ingestion's
//! content hashes (R-ING-5) and reconciliation's keys (R-REC) are stable.

use serde_json::Value;

/// Writes `v` canonically into `out`.
pub fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                if let Some(val) = map.get(k) {
                    write(val, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => write_str(s, out),
        // Numbers, booleans and null as serde_json prints them, written in place.
        other => write_serialized(other, out),
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is deterministic; reuse it, writing straight into `out`
    // (no copy of the string into a `Value`, no intermediate `String`: this runs for every
    // member name and string of every record).
    write_serialized(s, out);
}

/// `v` serialised compactly by serde_json, appended to `out`; the same bytes as its `Display`.
fn write_serialized<T: serde::Serialize + ?Sized>(v: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and these values (a string, a number, a boolean, null)
    // always serialise.
    let _ = serde_json::to_writer(&mut *out, v);
}

/// The canonical bytes of `v`.
pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_are_written_as_serde_json_displays_them() {
        let v = json!({
            "s": "quote \" backslash \\ tab \t nl \n ctrl \u{1} Đồng ₫ 😀",
            "n": [0, -1, 1.5, 1e300, 18446744073709551615u64, -9223372036854775808i64],
            "b": [true, false, null]
        });
        let mut expected = String::from("{");
        expected.push_str(&format!("\"b\":{},", v["b"]));
        expected.push_str(&format!("\"n\":{},", v["n"]));
        expected.push_str(&format!("\"s\":{}", v["s"]));
        expected.push('}');
        assert_eq!(String::from_utf8(to_vec(&v)).unwrap(), expected);
    }

    #[test]
    fn members_are_sorted_at_every_depth() {
        let v = json!({"b": [{"z": 1, "a": "x"}], "a": null, "c": "Hà Nội"});
        assert_eq!(
            String::from_utf8(to_vec(&v)).unwrap(),
            r#"{"a":null,"b":[{"a":"x","z":1}],"c":"Hà Nội"}"#
        );
    }
}
