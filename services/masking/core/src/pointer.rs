//! JSON pointers (RFC 6901) into payloads: building them while walking a value, and the field
//! patterns of a masking policy, which are pointers whose segment `*` stands for any array
//! element or object member (`/failure_reasons/*/description`).

use std::fmt;

use serde_json::Value;

/// Escapes one reference token: `~` → `~0`, `/` → `~1`.
pub(crate) fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `ptr` extended by one segment.
pub(crate) fn child(ptr: &str, segment: &str) -> String {
    format!("{ptr}/{}", escape(segment))
}

/// Calls `f(pointer, string)` for every string value inside `value`, depth first, in document
/// order (object members in the map's order).
pub(crate) fn walk_strings(value: &Value, f: &mut dyn FnMut(&str, &str)) {
    fn go(value: &Value, ptr: &mut String, f: &mut dyn FnMut(&str, &str)) {
        match value {
            Value::String(s) => f(ptr, s),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&i.to_string());
                    go(item, ptr, f);
                    ptr.truncate(len);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    let len = ptr.len();
                    ptr.push('/');
                    ptr.push_str(&escape(k));
                    go(v, ptr, f);
                    ptr.truncate(len);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
    go(value, &mut String::new(), f);
}

/// One segment of a [`FieldPattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    /// An object member name or an array index, unescaped.
    Key(String),
    /// `*`: any member or element.
    Any,
}

/// A field of a masking policy: a JSON pointer into the payload whose segments may be `*`.
///
/// Rules: it starts with `/`, names at least one segment, and `~` appears only as `~0` or `~1`.
/// A member literally named `*` cannot be addressed (none of the record schemas has one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldPattern {
    raw: String,
    segments: Vec<Segment>,
}

impl FieldPattern {
    /// Parses a pattern; the error says which rule was broken.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let Some(rest) = s.strip_prefix('/') else {
            return Err("a field is a JSON pointer starting with '/'");
        };
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            if raw == "*" {
                segments.push(Segment::Any);
                continue;
            }
            let mut seg = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => seg.push('~'),
                        Some('1') => seg.push('/'),
                        _ => return Err("'~' must be followed by 0 or 1 (RFC 6901)"),
                    }
                } else {
                    seg.push(c);
                }
            }
            segments.push(Segment::Key(seg));
        }
        Ok(Self {
            raw: s.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The concrete pointers of the values in `value` that this pattern names, in document order.
    pub fn matches(&self, value: &Value) -> Vec<String> {
        fn go(value: &Value, segs: &[Segment], ptr: &mut String, out: &mut Vec<String>) {
            let Some((first, rest)) = segs.split_first() else {
                out.push(ptr.clone());
                return;
            };
            let mut visit = |key: &str, v: &Value, out: &mut Vec<String>| {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&escape(key));
                go(v, rest, ptr, out);
                ptr.truncate(len);
            };
            match (first, value) {
                (Segment::Any, Value::Object(map)) => map.iter().for_each(|(k, v)| visit(k, v, out)),
                (Segment::Any, Value::Array(items)) => items
                    .iter()
                    .enumerate()
                    .for_each(|(i, v)| visit(&i.to_string(), v, out)),
                (Segment::Key(k), Value::Object(map)) => {
                    if let Some(v) = map.get(k) {
                        visit(k, v, out);
                    }
                }
                (Segment::Key(k), Value::Array(items)) => {
                    // RFC 6901 array indices: digits without a leading zero.
                    let canonical =
                        k == "0" || (!k.starts_with('0') && k.bytes().all(|b| b.is_ascii_digit()));
                    if let Some(v) = k
                        .parse::<usize>()
                        .ok()
                        .filter(|_| canonical)
                        .and_then(|i| items.get(i))
                    {
                        visit(k, v, out);
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        go(value, &self.segments, &mut String::new(), &mut out);
        out
    }
}

impl fmt::Display for FieldPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Whether `ptr` equals `ancestor` or lies inside it.
pub(crate) fn is_within(ptr: &str, ancestor: &str) -> bool {
    ptr == ancestor || (ptr.starts_with(ancestor) && ptr.as_bytes().get(ancestor.len()) == Some(&b'/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_follow_rfc_6901_with_a_wildcard() {
        assert!(FieldPattern::parse("").is_err());
        assert!(FieldPattern::parse("expert/phone").is_err());
        assert!(FieldPattern::parse("/a~2b").is_err());
        assert!(FieldPattern::parse("/a~").is_err());
        let v = json!({"a/b": {"~": 1}, "list": [{"x": "1"}, {"x": "2"}, {"y": "3"}], "n": [9]});
        assert_eq!(
            FieldPattern::parse("/a~1b/~0").unwrap().matches(&v),
            vec!["/a~1b/~0"]
        );
        assert_eq!(
            FieldPattern::parse("/list/*/x").unwrap().matches(&v),
            vec!["/list/0/x", "/list/1/x"]
        );
        assert_eq!(FieldPattern::parse("/n/0").unwrap().matches(&v), vec!["/n/0"]);
        assert!(FieldPattern::parse("/n/00").unwrap().matches(&v).is_empty());
        assert!(FieldPattern::parse("/n/1").unwrap().matches(&v).is_empty());
        assert!(FieldPattern::parse("/missing/x").unwrap().matches(&v).is_empty());
        assert!(FieldPattern::parse("/n/0/deeper").unwrap().matches(&v).is_empty());
    }

    #[test]
    fn walking_visits_every_string_with_its_escaped_pointer() {
        let v = json!({"a": ["x", 1, {"b/c": "y"}], "d": null, "e~": "z"});
        let mut seen = Vec::new();
        walk_strings(&v, &mut |p, s| seen.push((p.to_owned(), s.to_owned())));
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("/a/0".to_owned(), "x".to_owned()),
                ("/a/2/b~1c".to_owned(), "y".to_owned()),
                ("/e~0".to_owned(), "z".to_owned()),
            ]
        );
        assert_eq!(child("/a", "b/c"), "/a/b~1c");
    }

    #[test]
    fn within_means_equal_or_below() {
        assert!(is_within("/a/b", "/a"));
        assert!(is_within("/a", "/a"));
        assert!(!is_within("/ab", "/a"));
        assert!(!is_within("/a", "/a/b"));
    }
}
