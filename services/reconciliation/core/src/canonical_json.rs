//! Canonical JSON (object members sorted by key, no insignificant whitespace), so that digests
//! and keys do not depend on member order or on how `serde_json` was built (R-REC: the same
//! inputs give the same keys and decisions).

use serde_json::Value;

/// Writes `v` canonically into `out`.
fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, val)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(k, out);
                out.push(b':');
                write(val, out);
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
pub(crate) fn to_vec(v: &Value) -> Vec<u8> {
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
