//! Canonical JSON (object keys sorted, no insignificant whitespace) so that the same content
//! hashes the same whether it arrived as JSON or XML, in any key order (R-ING-5).

use serde_json::Value;
use sha2::{Digest, Sha256};

pub use etx_domain::canonical_json::{to_vec, write};

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
