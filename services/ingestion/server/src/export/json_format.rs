//! JSON exports: one array, one record object per line, written page by page.

use super::ExportError;
use super::source::ExportRecord;

/// Writes the array incrementally; it needs to know whether a record came before.
#[derive(Debug, Default)]
pub struct JsonArray {
    started: bool,
}

impl JsonArray {
    /// Appends the opening bracket.
    pub fn head(&mut self, buf: &mut Vec<u8>) {
        buf.push(b'[');
    }

    /// Appends the records.
    pub fn rows(&mut self, records: &[ExportRecord], buf: &mut Vec<u8>) -> Result<(), ExportError> {
        for r in records {
            buf.extend_from_slice(if self.started { b",\n" } else { b"\n" });
            self.started = true;
            serde_json::to_writer(&mut *buf, r)?;
        }
        Ok(())
    }

    /// Appends the closing bracket.
    pub fn tail(&mut self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(b"\n]\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::source::tests::sample;

    fn whole(pages: &[&[ExportRecord]]) -> serde_json::Value {
        let mut a = JsonArray::default();
        let mut buf = Vec::new();
        a.head(&mut buf);
        for p in pages {
            a.rows(p, &mut buf).unwrap();
        }
        a.tail(&mut buf);
        serde_json::from_slice(&buf).unwrap()
    }

    #[test]
    fn pages_join_into_one_array_with_payload_objects() {
        let one = [sample(r#"{"note":"Đà Nẵng"}"#), sample("{}")];
        let two = [sample(r#"{"n":[1,2]}"#)];
        let v = whole(&[&one, &[], &two]);
        let items = v.as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["payload"]["note"], "Đà Nẵng");
        assert_eq!(items[0]["schema_version"], 1);
        assert_eq!(items[2]["payload"]["n"][1], 2);
    }

    #[test]
    fn an_empty_export_is_an_empty_array() {
        assert_eq!(whole(&[]), serde_json::json!([]));
    }
}
