//! The WSDL 1.1 description of the SOAP endpoint, generated from one table of message types
//! (the same table the request decoder checks element names against), with the XML Schema
//! inlined in `wsdl:types` so that a client needs one download. The committed copy is
//! `contracts/wsdl/ingestion.wsdl` (drift-tested); only `soap:address` differs per server.

use super::{NAMESPACE, Operation};
use std::fmt::Write as _;

/// The address written into the committed contract (the all-in-one default listener).
pub const CONTRACT_ADDRESS: &str = "https://127.0.0.1:8443/soap/v1/ingestion";

/// One child element of a message type.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// Element name.
    pub name: &'static str,
    /// XML Schema type (`xs:…` or `tns:…`).
    pub ty: &'static str,
    /// Whether the element may be left out.
    pub optional: bool,
    /// Whether the element may repeat (`maxOccurs="unbounded"`).
    pub many: bool,
    /// Documentation.
    pub doc: &'static str,
}

const fn req(name: &'static str, ty: &'static str, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        optional: false,
        many: false,
        doc,
    }
}

const fn opt(name: &'static str, ty: &'static str, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        optional: true,
        many: false,
        doc,
    }
}

const fn many(name: &'static str, ty: &'static str, doc: &'static str) -> Field {
    Field {
        name,
        ty,
        optional: false,
        many: true,
        doc,
    }
}

/// A complex type: named (`xs:complexType name=…`) or the anonymous type of a top-level
/// element (the operations' wrappers, the fault detail).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Complex {
    /// Type or element name.
    pub name: &'static str,
    /// A top-level element rather than a named type.
    pub element: bool,
    /// Documentation.
    pub doc: &'static str,
    /// Child elements, in order.
    pub fields: &'static [Field],
}

const ENVELOPE_DOC: &str =
    "written exactly as in the REST XML wire format (urn:etxhub:ingestion:v1); checked by the server";

/// Every message type, in the order the schema lists them.
pub(crate) const TYPES: &[Complex] = &[
    Complex {
        name: "Record",
        element: false,
        doc: "One record: the envelope fields and the payload, as in the REST XML wire format.",
        fields: &[
            req(
                "category",
                "xs:string",
                "policy, statistics, workforce or enforcement (R-DATA-1)",
            ),
            req(
                "schema_version",
                "xs:string",
                "schema version of the payload, e.g. 1",
            ),
            req(
                "period",
                "xs:string",
                "reporting period: YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD",
            ),
            req(
                "classification",
                "xs:string",
                "public, internal, confidential or secret; state-secret labels are refused (R-SRC-2)",
            ),
            opt(
                "priority",
                "xs:string",
                "high, normal (default) or low (R-DATA-2)",
            ),
            opt("form", "xs:string", "raw (default) or masked (R-ING-2)"),
            opt(
                "idempotency_key",
                "xs:string",
                "1-128 visible ASCII characters; checked per record (R-ING-5)",
            ),
            req(
                "payload",
                "tns:Payload",
                "the payload, valid against contracts/schemas/{category}/v{n}.schema.json",
            ),
        ],
    },
    Complex {
        name: "Payload",
        element: false,
        doc: "The payload fields as child elements (any namespace): one element per field, nested objects as nested elements, arrays as repeated <item> children. Typed by the category's JSON Schema on the server.",
        fields: &[],
    },
    Complex {
        name: "Records",
        element: false,
        doc: "1 to limits.max_records (1,000 by default) records.",
        fields: &[many("record", "tns:Record", ENVELOPE_DOC)],
    },
    Complex {
        name: "RecordIds",
        element: false,
        doc: "The records' ids, in submission order.",
        fields: &[many("record_id", "tns:Uuid", "a record id")],
    },
    Complex {
        name: "Receipt",
        element: false,
        doc: "A receipt: the records are durably stored, encrypted (R-SEC-5). The same fields as the REST receipt.",
        fields: &[
            req("receipt_id", "tns:Uuid", "receipt id"),
            req(
                "record_ids",
                "tns:RecordIds",
                "the records' ids, in submission order",
            ),
            req("record_count", "xs:unsignedInt", "how many records"),
            req(
                "received_at",
                "xs:dateTime",
                "when the submission was durably stored (UTC)",
            ),
            req(
                "content_hash",
                "xs:string",
                "SHA-256 of the canonical submission (sha256:<hex>)",
            ),
            opt(
                "idempotency_key",
                "xs:string",
                "the submission's idempotency key, when this answer echoes one",
            ),
            req("status", "xs:string", "received"),
            req(
                "replayed",
                "xs:boolean",
                "true when this answers a replay of an earlier submission",
            ),
        ],
    },
    Complex {
        name: "BatchDefaults",
        element: false,
        doc: "Envelope fields for every row that does not carry its own.",
        fields: &[
            opt(
                "category",
                "xs:string",
                "policy, statistics, workforce or enforcement",
            ),
            opt("schema_version", "xs:string", "e.g. 1"),
            opt("period", "xs:string", "YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD"),
            opt(
                "classification",
                "xs:string",
                "public, internal, confidential or secret",
            ),
            opt("priority", "xs:string", "high, normal or low"),
            opt("form", "xs:string", "raw or masked"),
        ],
    },
    Complex {
        name: "ControlTotals",
        element: false,
        doc: "Control totals (R-REC): a mismatch rejects the whole batch.",
        fields: &[
            opt(
                "row_count",
                "xs:unsignedLong",
                "rows in the file (header excluded)",
            ),
            opt(
                "sha256",
                "xs:string",
                "SHA-256 of the file, 64 lower-case hexadecimal characters",
            ),
        ],
    },
    Complex {
        name: "BatchCounts",
        element: false,
        doc: "Row counts of a batch.",
        fields: &[
            req("total", "xs:unsignedLong", "rows in the file"),
            req(
                "accepted",
                "xs:unsignedLong",
                "rows stored (dry run: rows that would be)",
            ),
            req("rejected", "xs:unsignedLong", "rows refused"),
            req(
                "duplicate",
                "xs:unsignedLong",
                "rows stored earlier: not stored again",
            ),
        ],
    },
    Complex {
        name: "RejectReason",
        element: false,
        doc: "Why a batch was rejected as a whole.",
        fields: &[
            req(
                "code",
                "xs:string",
                "row_count_mismatch, sha256_mismatch or unreadable",
            ),
            opt("declared", "xs:string", "the declared control total"),
            opt("actual", "xs:string", "the file's actual value"),
            opt("detail", "xs:string", "what is wrong, in English"),
        ],
    },
    Complex {
        name: "Batch",
        element: false,
        doc: "A batch as its source sees it.",
        fields: &[
            req("batch_id", "tns:Uuid", "batch id"),
            req("state", "tns:BatchState", "life-cycle state"),
            req("format", "tns:BatchFormat", "file format"),
            req("dry_run", "xs:boolean", "validate only"),
            req("counts", "tns:BatchCounts", "row counts so far"),
            req("size_bytes", "xs:unsignedLong", "size of the file"),
            req("sha256", "xs:string", "SHA-256 of the file, hex"),
            req("declared", "tns:ControlTotals", "the declared control totals"),
            opt(
                "reject_reason",
                "tns:RejectReason",
                "why it was rejected, when it was",
            ),
            opt("receipt_id", "tns:Uuid", "the receipt covering the stored rows"),
            req("received_at", "xs:dateTime", "file durably stored"),
            opt("started_at", "xs:dateTime", "processing started"),
            opt("finished_at", "xs:dateTime", "processing finished"),
        ],
    },
    Complex {
        name: "Violation",
        element: false,
        doc: "One broken rule at one place of the input (R-ING-4).",
        fields: &[
            opt(
                "item",
                "xs:int",
                "0-based index of the record among the submitted records",
            ),
            req(
                "path",
                "xs:string",
                "JSON-Pointer-like path of the field, e.g. /payload/value",
            ),
            req(
                "code",
                "xs:string",
                "violation code: required, type, format, enum, ...",
            ),
            req(
                "message",
                "xs:string",
                "the code's message in the request's language",
            ),
            opt(
                "detail",
                "xs:string",
                "English detail (expected type, limits); never the submitted value",
            ),
        ],
    },
    Complex {
        name: "Violations",
        element: false,
        doc: "Per-field violations, in input order.",
        fields: &[many("violation", "tns:Violation", "one violation")],
    },
    Complex {
        name: "SubmitRecords",
        element: true,
        doc: "Submits 1 to 1,000 records in one transaction (R-ING-1 real time); answered only after they are durably stored.",
        fields: &[
            opt(
                "idempotency_key",
                "xs:string",
                "makes the submission idempotent, like the REST Idempotency-Key header: the same key with the same records returns the original receipt (replayed = true); with other records, the fault idempotency_conflict (R-ING-5)",
            ),
            req("records", "tns:Records", "the records"),
        ],
    },
    Complex {
        name: "SubmitRecordsResponse",
        element: true,
        doc: "The receipt.",
        fields: &[req("receipt", "tns:Receipt", "the receipt")],
    },
    Complex {
        name: "GetReceipt",
        element: true,
        doc: "Reads back one of the caller's receipts.",
        fields: &[req("receipt_id", "tns:Uuid", "receipt id")],
    },
    Complex {
        name: "GetReceiptResponse",
        element: true,
        doc: "The receipt (replayed is false).",
        fields: &[req("receipt", "tns:Receipt", "the receipt")],
    },
    Complex {
        name: "SubmitBatch",
        element: true,
        doc: "Uploads a batch file inline or as an MTOM/XOP attachment (R-ING-1 batch, R-ING-3 files); it is processed in the background: poll GetBatchStatus. MTOM: Content-Type multipart/related; type=\"application/xop+xml\"; start-info=\"text/xml\" (SOAP 1.1) or \"application/soap+xml\" (SOAP 1.2), the envelope as the root part and file holding only <xop:Include xmlns:xop=\"http://www.w3.org/2004/08/xop/include\" href=\"cid:...\"/> naming a binary MIME part by its Content-ID. The whole request is limited by limits.max_body_bytes (inline base64 adds a third); send larger files to POST /api/v1/batches.",
        fields: &[
            req("format", "tns:BatchFormat", "csv, ndjson, json or xml"),
            req(
                "file",
                "xs:base64Binary",
                "the file's bytes: base64 text, or an xop:Include (MTOM)",
            ),
            opt(
                "defaults",
                "tns:BatchDefaults",
                "envelope fields for rows without their own",
            ),
            opt("control_totals", "tns:ControlTotals", "declared control totals"),
            opt(
                "dry_run",
                "xs:boolean",
                "validate only, store nothing (default false)",
            ),
        ],
    },
    Complex {
        name: "SubmitBatchResponse",
        element: true,
        doc: "The registered batch.",
        fields: &[
            req("batch", "tns:Batch", "the batch"),
            req(
                "replayed",
                "xs:boolean",
                "true when the same file with the same parameters was uploaded before: that batch",
            ),
        ],
    },
    Complex {
        name: "GetBatchStatus",
        element: true,
        doc: "Reads the state and counts of one of the caller's batches.",
        fields: &[req("batch_id", "tns:Uuid", "batch id")],
    },
    Complex {
        name: "GetBatchStatusResponse",
        element: true,
        doc: "The batch.",
        fields: &[req("batch", "tns:Batch", "the batch")],
    },
    Complex {
        name: "Error",
        element: true,
        doc: "The detail of every fault: the same stable code, translated title and violations as the REST problem+json body.",
        fields: &[
            req(
                "code",
                "xs:string",
                "stable error code (integration guide, appendix A)",
            ),
            req(
                "title",
                "xs:string",
                "the code's title in the request's language (Accept-Language; Vietnamese by default)",
            ),
            opt(
                "detail",
                "xs:string",
                "English detail; never the submitted content",
            ),
            opt(
                "request_id",
                "xs:string",
                "the request id, also in the X-Request-Id header and the server log",
            ),
            opt("violations", "tns:Violations", "per-field violations"),
        ],
    },
];

/// The message type called `name`.
pub(crate) fn complex(name: &str) -> Option<&'static Complex> {
    TYPES.iter().find(|c| c.name == name)
}

const AUTH_DOC: &str = "Authentication: every operation needs the same API key as the REST API, sent in the HTTP header X-API-Key: <key> (or Authorization: Bearer <key>); WS-Security headers are not used. This description itself (GET ?wsdl) is public. Messages are in Vietnamese unless the HTTP header Accept-Language prefers English. Xác thực: mọi thao tác dùng cùng khóa API như REST, gửi trong tiêu đề HTTP X-API-Key: <khóa> (hoặc Authorization: Bearer <khóa>).";

const FAULT_DOC: &str = "Every error is a SOAP fault (SOAP 1.1: faultcode soap:Client or soap:Server, HTTP 500; SOAP 1.2: env:Sender with HTTP 400 or env:Receiver with HTTP 500, the stable code also as env:Subcode) whose detail is tns:Error.";

/// Writes the WSDL with `address` as the endpoint of both ports.
pub fn document(address: &str) -> String {
    let mut w = String::with_capacity(24 * 1024);
    let address = quick_xml::escape::escape(address);
    w.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        w,
        "<wsdl:definitions name=\"EtxHubIngestion\" targetNamespace=\"{NAMESPACE}\"\n    xmlns:tns=\"{NAMESPACE}\"\n    xmlns:wsdl=\"http://schemas.xmlsoap.org/wsdl/\"\n    xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\"\n    xmlns:soap12=\"http://schemas.xmlsoap.org/wsdl/soap12/\"\n    xmlns:xs=\"http://www.w3.org/2001/XMLSchema\">"
    );
    let _ = writeln!(
        w,
        "  <wsdl:documentation>{}</wsdl:documentation>",
        quick_xml::escape::escape(format!(
            "ETX Hub ingestion over SOAP 1.1 and 1.2 (R-ING-3), document/literal wrapped. The same use cases, validation and receipts as POST /api/v1/records. {AUTH_DOC} {FAULT_DOC}"
        ))
    );
    types(&mut w);
    messages(&mut w);
    port_type(&mut w);
    binding(&mut w, "IngestionSoap11Binding", "soap");
    binding(&mut w, "IngestionSoap12Binding", "soap12");
    w.push_str("  <wsdl:service name=\"IngestionService\">\n");
    let _ = writeln!(
        w,
        "    <wsdl:documentation>{}</wsdl:documentation>",
        quick_xml::escape::escape(AUTH_DOC)
    );
    let _ = writeln!(
        w,
        "    <wsdl:port name=\"IngestionSoap11Port\" binding=\"tns:IngestionSoap11Binding\">\n      <soap:address location=\"{address}\"/>\n    </wsdl:port>"
    );
    let _ = writeln!(
        w,
        "    <wsdl:port name=\"IngestionSoap12Port\" binding=\"tns:IngestionSoap12Binding\">\n      <soap12:address location=\"{address}\"/>\n    </wsdl:port>"
    );
    w.push_str("  </wsdl:service>\n</wsdl:definitions>\n");
    w
}

fn doc(w: &mut String, indent: &str, text: &str) {
    let _ = writeln!(
        w,
        "{indent}<xs:annotation><xs:documentation>{}</xs:documentation></xs:annotation>",
        quick_xml::escape::escape(text)
    );
}

fn types(w: &mut String) {
    w.push_str("  <wsdl:types>\n");
    let _ = writeln!(
        w,
        "    <xs:schema targetNamespace=\"{NAMESPACE}\" elementFormDefault=\"qualified\">"
    );
    w.push_str("      <xs:simpleType name=\"Uuid\">\n");
    doc(w, "        ", "A UUID in its canonical text form.");
    w.push_str("        <xs:restriction base=\"xs:string\">\n          <xs:pattern value=\"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\"/>\n        </xs:restriction>\n      </xs:simpleType>\n");
    enumeration(
        w,
        "BatchFormat",
        "A batch file format.",
        &["csv", "ndjson", "json", "xml"],
    );
    enumeration(
        w,
        "BatchState",
        "Life-cycle state of a batch.",
        &[
            "received",
            "validating",
            "storing",
            "completed",
            "rejected",
            "failed",
        ],
    );
    for c in TYPES {
        let indent = if c.element {
            let _ = writeln!(w, "      <xs:element name=\"{}\">", c.name);
            doc(w, "        ", c.doc);
            w.push_str("        <xs:complexType>\n");
            "          "
        } else {
            let _ = writeln!(w, "      <xs:complexType name=\"{}\">", c.name);
            doc(w, "        ", c.doc);
            "        "
        };
        let _ = writeln!(w, "{indent}<xs:sequence>");
        if c.name == "Payload" {
            let _ = writeln!(
                w,
                "{indent}  <xs:any namespace=\"##any\" processContents=\"lax\" minOccurs=\"0\" maxOccurs=\"unbounded\"/>"
            );
        }
        for f in c.fields {
            let occurs = match (f.optional, f.many) {
                (false, false) => "",
                (true, false) => " minOccurs=\"0\"",
                (false, true) => " maxOccurs=\"unbounded\"",
                (true, true) => " minOccurs=\"0\" maxOccurs=\"unbounded\"",
            };
            let _ = writeln!(
                w,
                "{indent}  <xs:element name=\"{}\" type=\"{}\"{occurs}>",
                f.name, f.ty
            );
            doc(w, &format!("{indent}    "), f.doc);
            let _ = writeln!(w, "{indent}  </xs:element>");
        }
        let _ = writeln!(w, "{indent}</xs:sequence>");
        if c.element {
            w.push_str("        </xs:complexType>\n      </xs:element>\n");
        } else {
            w.push_str("      </xs:complexType>\n");
        }
    }
    w.push_str("    </xs:schema>\n  </wsdl:types>\n");
}

fn enumeration(w: &mut String, name: &str, text: &str, values: &[&str]) {
    let _ = writeln!(w, "      <xs:simpleType name=\"{name}\">");
    doc(w, "        ", text);
    w.push_str("        <xs:restriction base=\"xs:string\">\n");
    for v in values {
        let _ = writeln!(w, "          <xs:enumeration value=\"{v}\"/>");
    }
    w.push_str("        </xs:restriction>\n      </xs:simpleType>\n");
}

fn messages(w: &mut String) {
    for op in Operation::ALL {
        let n = op.name();
        let _ = writeln!(
            w,
            "  <wsdl:message name=\"{n}Request\">\n    <wsdl:part name=\"parameters\" element=\"tns:{n}\"/>\n  </wsdl:message>"
        );
        let _ = writeln!(
            w,
            "  <wsdl:message name=\"{n}Response\">\n    <wsdl:part name=\"parameters\" element=\"tns:{n}Response\"/>\n  </wsdl:message>"
        );
    }
    w.push_str("  <wsdl:message name=\"ErrorFault\">\n    <wsdl:part name=\"fault\" element=\"tns:Error\"/>\n  </wsdl:message>\n");
}

fn port_type(w: &mut String) {
    w.push_str("  <wsdl:portType name=\"IngestionPortType\">\n");
    for op in Operation::ALL {
        let n = op.name();
        let text = complex(n).map_or("", |c| c.doc);
        let _ = writeln!(
            w,
            "    <wsdl:operation name=\"{n}\">\n      <wsdl:documentation>{}</wsdl:documentation>\n      <wsdl:input message=\"tns:{n}Request\"/>\n      <wsdl:output message=\"tns:{n}Response\"/>\n      <wsdl:fault name=\"Error\" message=\"tns:ErrorFault\"/>\n    </wsdl:operation>",
            quick_xml::escape::escape(text)
        );
    }
    w.push_str("  </wsdl:portType>\n");
}

fn binding(w: &mut String, name: &str, prefix: &str) {
    let transport = "http://schemas.xmlsoap.org/soap/http";
    let _ = writeln!(
        w,
        "  <wsdl:binding name=\"{name}\" type=\"tns:IngestionPortType\">\n    <{prefix}:binding style=\"document\" transport=\"{transport}\"/>"
    );
    for op in Operation::ALL {
        let required = if prefix == "soap12" {
            " soapActionRequired=\"false\""
        } else {
            ""
        };
        let _ = writeln!(
            w,
            "    <wsdl:operation name=\"{n}\">\n      <{prefix}:operation soapAction=\"{a}\"{required} style=\"document\"/>\n      <wsdl:input>\n        <{prefix}:body use=\"literal\"/>\n      </wsdl:input>\n      <wsdl:output>\n        <{prefix}:body use=\"literal\"/>\n      </wsdl:output>\n      <wsdl:fault name=\"Error\">\n        <{prefix}:fault name=\"Error\" use=\"literal\"/>\n      </wsdl:fault>\n    </wsdl:operation>",
            n = op.name(),
            a = op.action()
        );
    }
    w.push_str("  </wsdl:binding>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use etx_ingestion_core::xml;

    #[test]
    fn the_wsdl_is_well_formed_and_names_every_operation_in_both_bindings() {
        let text = document(CONTRACT_ADDRESS);
        let root = xml::parse_document(text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert!(root.is("http://schemas.xmlsoap.org/wsdl/", "definitions"));
        let bindings: Vec<_> = root.children.iter().filter(|c| c.name == "binding").collect();
        assert_eq!(bindings.len(), 2);
        for b in bindings {
            let ops: Vec<_> = b.children.iter().filter(|c| c.name == "operation").collect();
            assert_eq!(ops.len(), Operation::ALL.len());
        }
        for op in Operation::ALL {
            assert!(complex(op.name()).is_some_and(|c| c.element), "{}", op.name());
            assert!(complex(&format!("{}Response", op.name())).is_some_and(|c| c.element));
        }
    }

    #[test]
    fn every_referenced_type_is_defined() {
        let simple = ["Uuid", "BatchFormat", "BatchState"];
        for c in TYPES {
            for f in c.fields {
                if let Some(t) = f.ty.strip_prefix("tns:") {
                    assert!(
                        simple.contains(&t) || complex(t).is_some_and(|c| !c.element),
                        "{}.{} refers to {t}",
                        c.name,
                        f.name
                    );
                } else {
                    assert!(f.ty.starts_with("xs:"), "{}", f.ty);
                }
            }
        }
    }

    #[test]
    fn the_address_is_escaped() {
        assert!(document("https://h/x?a=1&b=2").contains("location=\"https://h/x?a=1&amp;b=2\""));
    }
}
