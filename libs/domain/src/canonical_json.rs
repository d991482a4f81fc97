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
        other => out.extend_from_slice(other.to_string().as_bytes()),
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    // serde_json's string escaping is deterministic; reuse it.
    out.extend_from_slice(Value::String(s.to_owned()).to_string().as_bytes());
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
    fn members_are_sorted_at_every_depth() {
        let v = json!({"b": [{"z": 1, "a": "x"}], "a": null, "c": "Hà Nội"});
        assert_eq!(
            String::from_utf8(to_vec(&v)).unwrap(),
            r#"{"a":null,"b":[{"a":"x","z":1}],"c":"Hà Nội"}"#
        );
    }
}
