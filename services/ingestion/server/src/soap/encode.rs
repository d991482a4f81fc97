//! Writing SOAP answers: the envelope, receipts, batches. Element names and order follow the
//! message types of [`super::wsdl::TYPES`] (a test checks it).

use super::{NAMESPACE, SoapVersion};
use crate::http::dto::ReceiptOut;
use chrono::{DateTime, SecondsFormat, Utc};
use etx_ingestion_core::batch::{BatchView, RejectReason};

/// A compact XML writer whose text is always escaped and stripped of characters XML 1.0 cannot
/// carry.
#[derive(Debug, Default)]
pub(crate) struct XmlOut {
    buf: String,
}

impl XmlOut {
    /// `<name>`.
    pub fn open(&mut self, name: &str) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    /// `<name xmlns="ns">`.
    pub fn open_ns(&mut self, name: &str, ns: &str) -> &mut Self {
        self.buf.push('<');
        self.buf.push_str(name);
        self.buf.push_str(" xmlns=\"");
        self.buf.push_str(&escape(ns));
        self.buf.push_str("\">");
        self
    }

    /// `</name>`.
    pub fn close(&mut self, name: &str) -> &mut Self {
        self.buf.push_str("</");
        self.buf.push_str(name);
        self.buf.push('>');
        self
    }

    /// `<name>text</name>`.
    pub fn leaf(&mut self, name: &str, text: impl AsRef<str>) -> &mut Self {
        self.open(name);
        self.buf.push_str(&escape(text.as_ref()));
        self.close(name)
    }

    /// A leaf only when there is a value.
    pub fn opt_leaf(&mut self, name: &str, text: Option<impl AsRef<str>>) -> &mut Self {
        if let Some(t) = text {
            self.leaf(name, t);
        }
        self
    }

    /// The text written so far.
    pub fn finish(self) -> String {
        self.buf
    }
}

/// Escapes text for element content and attribute values, dropping characters XML 1.0 cannot
/// carry (they can only come from a bug, never from our own texts).
pub(crate) fn escape(s: &str) -> String {
    let clean: String = s
        .chars()
        .filter(|c| matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}'))
        .collect();
    quick_xml::escape::escape(clean.as_str()).into_owned()
}

/// An envelope of `version` whose Body holds `body` (markup written by this module).
pub(crate) fn envelope(version: SoapVersion, body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<soap:Envelope xmlns:soap=\"{}\"><soap:Body>{body}</soap:Body></soap:Envelope>",
        version.envelope_namespace()
    )
}

/// `<{op}Response xmlns="…">…</{op}Response>` around what `fill` writes.
pub(crate) fn response(op: &str, fill: impl FnOnce(&mut XmlOut)) -> String {
    let name = format!("{op}Response");
    let mut x = XmlOut::default();
    x.open_ns(&name, NAMESPACE);
    fill(&mut x);
    x.close(&name);
    x.finish()
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A `tns:Receipt` element called `name`.
pub(crate) fn receipt(x: &mut XmlOut, name: &str, r: &ReceiptOut) {
    x.open(name).leaf("receipt_id", r.receipt_id.to_string());
    x.open("record_ids");
    for id in &r.record_ids {
        x.leaf("record_id", id.to_string());
    }
    x.close("record_ids")
        .leaf("record_count", r.record_count.to_string())
        .leaf("received_at", time(r.received_at))
        .leaf("content_hash", &r.content_hash)
        .opt_leaf("idempotency_key", r.idempotency_key.as_deref())
        .leaf("status", &r.status)
        .leaf("replayed", r.replayed.to_string())
        .close(name);
}

/// A `tns:Batch` element called `name`.
pub(crate) fn batch(x: &mut XmlOut, name: &str, v: &BatchView) {
    x.open(name)
        .leaf("batch_id", v.id.to_string())
        .leaf("state", v.state.as_str())
        .leaf("format", v.format.as_str())
        .leaf("dry_run", v.dry_run.to_string())
        .open("counts")
        .leaf("total", v.counts.total.to_string())
        .leaf("accepted", v.counts.accepted.to_string())
        .leaf("rejected", v.counts.rejected.to_string())
        .leaf("duplicate", v.counts.duplicate.to_string())
        .close("counts")
        .leaf("size_bytes", v.size_bytes.to_string())
        .leaf("sha256", &v.sha256)
        .open("declared")
        .opt_leaf("row_count", v.declared.row_count.map(|n| n.to_string()))
        .opt_leaf("sha256", v.declared.sha256.as_deref())
        .close("declared");
    if let Some(r) = &v.reject_reason {
        x.open("reject_reason");
        match r {
            RejectReason::RowCountMismatch { declared, actual } => {
                x.leaf("code", "row_count_mismatch")
                    .leaf("declared", declared.to_string())
                    .leaf("actual", actual.to_string());
            }
            RejectReason::Sha256Mismatch { declared, actual } => {
                x.leaf("code", "sha256_mismatch")
                    .leaf("declared", declared)
                    .leaf("actual", actual);
            }
            RejectReason::Unreadable { detail } => {
                x.leaf("code", "unreadable").leaf("detail", detail);
            }
        }
        x.close("reject_reason");
    }
    x.opt_leaf("receipt_id", v.receipt_id.map(|u| u.to_string()))
        .leaf("received_at", time(v.received_at))
        .opt_leaf("started_at", v.started_at.map(time))
        .opt_leaf("finished_at", v.finished_at.map(time))
        .close(name);
}

#[cfg(test)]
mod tests {
    use super::super::wsdl::complex;
    use super::*;
    use etx_ingestion_core::batch::{BatchCounts, BatchFormat, BatchState, ControlTotals};
    use etx_ingestion_core::xml::{self, XmlNode};

    /// Every child is a field of `ty`, in the table's order, and every required field is there.
    fn follows(node: &XmlNode, ty: &str) {
        let c = complex(ty).unwrap_or_else(|| panic!("no type {ty}"));
        let mut at = 0;
        for child in &node.children {
            let Some(i) = c.fields.iter().position(|f| f.name == child.name) else {
                panic!("{ty} has no field {}", child.name);
            };
            assert!(i >= at, "{ty}: {} out of order", child.name);
            at = i;
            if let Some(t) = c.fields[i].ty.strip_prefix("tns:")
                && complex(t).is_some()
            {
                follows(child, t);
            }
        }
        for f in c.fields.iter().filter(|f| !f.optional) {
            assert!(node.child(f.name).is_some(), "{ty}: {} missing", f.name);
        }
    }

    fn parsed(body: &str) -> XmlNode {
        let env = envelope(SoapVersion::V11, body);
        let root = xml::parse_document(env.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        root.children[0].children[0].clone()
    }

    #[test]
    fn receipts_and_batches_follow_the_wsdl() {
        let r = ReceiptOut {
            receipt_id: uuid::Uuid::now_v7(),
            record_ids: vec![uuid::Uuid::now_v7(), uuid::Uuid::now_v7()],
            record_count: 2,
            received_at: Utc::now(),
            content_hash: "sha256:ab".into(),
            idempotency_key: Some("k<1>".into()),
            status: "received".into(),
            replayed: false,
        };
        let node = parsed(&response("SubmitRecords", |x| receipt(x, "receipt", &r)));
        assert!(node.is(NAMESPACE, "SubmitRecordsResponse"));
        follows(&node, "SubmitRecordsResponse");
        let rec = node.child("receipt").cloned().unwrap_or_default();
        assert_eq!(
            rec.child("idempotency_key").map(|k| k.text.as_str()),
            Some("k<1>")
        );
        assert!(
            rec.children
                .iter()
                .all(|c| c.namespace.as_deref() == Some(NAMESPACE))
        );

        let v = BatchView {
            id: uuid::Uuid::now_v7(),
            state: BatchState::Rejected,
            format: BatchFormat::Csv,
            dry_run: false,
            counts: BatchCounts::default(),
            size_bytes: 10,
            sha256: "00".into(),
            declared: ControlTotals {
                row_count: Some(3),
                sha256: None,
            },
            reject_reason: Some(RejectReason::RowCountMismatch {
                declared: 3,
                actual: 2,
            }),
            receipt_id: None,
            received_at: Utc::now(),
            started_at: Some(Utc::now()),
            finished_at: Some(Utc::now()),
        };
        let node = parsed(&response("SubmitBatch", |x| {
            batch(x, "batch", &v);
            x.leaf("replayed", "false");
        }));
        follows(&node, "SubmitBatchResponse");
        let node = parsed(&response("GetBatchStatus", |x| batch(x, "batch", &v)));
        follows(&node, "GetBatchStatusResponse");
    }

    #[test]
    fn text_is_escaped_and_cleaned() {
        assert_eq!(escape("a<b>&\"c\u{0}"), "a&lt;b&gt;&amp;&quot;c");
    }
}
