//! Canonical JSON (object keys sorted, no insignificant whitespace) so that the same content
//! hashes the same whether it arrived as JSON or XML, in any key order (R-ING-5).

use serde_json::Value;
use sha2::{Digest, Sha256};

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

/// SHA-256 of the canonical bytes.
pub fn sha256(v: &Value) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(to_vec(v));
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_and_whitespace_do_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": "Hà Nội"}}"#).unwrap();
        let b = json!({"a": {"x": "Hà Nội", "y": [1, 2]}, "b": 1});
        assert_eq!(to_vec(&a), to_vec(&b));
        assert_eq!(
            String::from_utf8(to_vec(&a)).unwrap(),
            r#"{"a":{"x":"Hà Nội","y":[1,2]},"b":1}"#
        );
        assert_ne!(sha256(&a), sha256(&json!({"b": 2})));
    }
}
