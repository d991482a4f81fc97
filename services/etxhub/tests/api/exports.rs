//! Exports for data sources (issue 3 §8, App. I 3.4, R-REP): CSV, XLSX and JSON downloads of
//! the caller's own records, parsed back and compared with what was submitted.

use crate::both_backends;
use crate::helpers::*;
use calamine::Reader;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

const COLUMNS: [&str; 12] = [
    "record_id",
    "receipt_id",
    "category",
    "schema_version",
    "period",
    "classification",
    "priority",
    "form",
    "method",
    "status",
    "received_at",
    "payload",
];

const FORMATS: [&str; 3] = ["csv", "xlsx", "json"];

/// The published example records (one JSON object per file).
fn examples() -> Vec<Value> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/examples/records");
    let mut out = Vec::new();
    for category in ["policy", "statistics", "workforce", "enforcement"] {
        let mut files: Vec<_> = std::fs::read_dir(root.join(category))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            out.push(serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap());
        }
    }
    assert!(out.len() >= 8, "examples not found");
    out
}

/// What a source submitted, by record id.
type Submitted = BTreeMap<String, Value>;

/// Submits a body as `key`; returns the receipt.
async fn submit(app: &TestApp, key: &str, body: &Value) -> Value {
    let resp = app
        .client
        .post(app.url("/api/v1/records"))
        .header("x-api-key", key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    resp.json().await.unwrap()
}

/// Submits records one by one and remembers each with its receipt.
async fn submit_each(app: &TestApp, key: &str, records: &[Value], into: &mut Submitted) {
    for r in records {
        let receipt = submit(app, key, r).await;
        let id = receipt["record_ids"][0].as_str().unwrap().to_owned();
        let mut r = r.clone();
        r["receipt_id"] = receipt["receipt_id"].clone();
        into.insert(id, r);
    }
}

/// Query pairs of an export request.
type Query<'a> = &'a [(&'a str, &'a str)];

fn export_url(app: &TestApp, query: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(&app.url("/api/v1/exports/records"), query).unwrap()
}

async fn export(app: &TestApp, key: &str, query: &[(&str, &str)]) -> reqwest::Response {
    app.client
        .get(export_url(app, query))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

/// Downloads an export and checks its headers; returns the raw body.
async fn download(app: &TestApp, key: &str, format: &str, more: &[(&str, &str)]) -> Vec<u8> {
    let mut query = vec![("format", format)];
    query.extend_from_slice(more);
    let resp = export(app, key, &query).await;
    assert_eq!(resp.status(), 200, "{format} {more:?}");
    let h = resp.headers();
    let ct = h["content-type"].to_str().unwrap();
    let expected_ct = match format {
        "csv" => "text/csv; charset=utf-8",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        _ => "application/json",
    };
    assert_eq!(ct, expected_ct);
    let cd = h["content-disposition"].to_str().unwrap();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        cd,
        format!("attachment; filename=\"etxhub-records-{today}.{format}\"")
    );
    resp.bytes().await.unwrap().to_vec()
}

/// Parses a download into one JSON object per row, keyed by column, with `payload` parsed
/// from its text in CSV and XLSX (so every format compares alike).
fn parse(format: &str, body: &[u8]) -> Vec<Value> {
    let table: Vec<Vec<String>> = match format {
        "json" => {
            let v: Value = serde_json::from_slice(body).unwrap();
            let rows = v.as_array().unwrap().clone();
            for r in &rows {
                let keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
                let mut sorted = COLUMNS.to_vec();
                sorted.sort();
                let mut got = keys.clone();
                got.sort();
                assert_eq!(got, sorted);
            }
            return rows;
        }
        "csv" => {
            let body = body.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(body);
            let mut r = csv::ReaderBuilder::new().has_headers(false).from_reader(body);
            r.records()
                .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
                .collect()
        }
        "xlsx" => {
            let mut wb: calamine::Xlsx<_> =
                calamine::open_workbook_from_rs(std::io::Cursor::new(body.to_vec())).unwrap();
            assert_eq!(wb.sheet_names(), vec!["records".to_owned()]);
            let formulas = wb.worksheet_formula("records").unwrap();
            assert!(
                formulas.rows().flatten().all(String::is_empty),
                "no cell may be a formula"
            );
            let range = wb.worksheet_range("records").unwrap();
            range
                .rows()
                .map(|row| {
                    row.iter()
                        .enumerate()
                        .map(|(i, cell)| match cell {
                            calamine::Data::String(s) => s.clone(),
                            calamine::Data::Float(f) if i == 3 => format!("{f}"),
                            calamine::Data::Int(n) if i == 3 => n.to_string(),
                            calamine::Data::Empty => String::new(),
                            other => panic!("unexpected cell {other:?} in column {i}"),
                        })
                        .collect()
                })
                .collect()
        }
        other => panic!("unknown format {other}"),
    };
    let (header, rows) = table.split_first().expect("a header row");
    assert_eq!(header[..COLUMNS.len()], COLUMNS.map(str::to_owned));
    rows.iter()
        .map(|cells| {
            let mut obj = serde_json::Map::new();
            for (name, cell) in COLUMNS.iter().zip(cells) {
                let v = match *name {
                    "payload" => serde_json::from_str(cell).unwrap(),
                    "schema_version" => json!(cell.parse::<u16>().unwrap()),
                    _ => json!(cell),
                };
                obj.insert((*name).to_owned(), v);
            }
            Value::Object(obj)
        })
        .collect()
}

async fn rows(app: &TestApp, key: &str, format: &str, more: &[(&str, &str)]) -> Vec<Value> {
    parse(format, &download(app, key, format, more).await)
}

fn ids(rows: &[Value]) -> BTreeSet<String> {
    rows.iter()
        .map(|r| r["record_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Every row is one submitted record, exactly, and every submitted record is there.
fn assert_same(rows: &[Value], submitted: &Submitted) {
    assert_eq!(rows.len(), submitted.len());
    assert_eq!(ids(rows), submitted.keys().cloned().collect());
    for row in rows {
        let sent = &submitted[row["record_id"].as_str().unwrap()];
        assert_eq!(row["payload"], sent["payload"], "payload of {}", row["record_id"]);
        assert_eq!(row["receipt_id"], sent["receipt_id"]);
        assert_eq!(row["category"], sent["category"]);
        assert_eq!(row["period"], sent["period"]);
        assert_eq!(row["classification"], sent["classification"]);
        assert_eq!(row["schema_version"], json!(1));
        assert_eq!(
            row["priority"],
            sent.get("priority").cloned().unwrap_or(json!("normal"))
        );
        assert_eq!(row["form"], sent.get("form").cloned().unwrap_or(json!("raw")));
        assert_eq!(row["method"], "realtime");
        assert_eq!(row["status"], "received");
        let at = row["received_at"].as_str().unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(at).is_ok(), "{at}");
    }
    // Ordered by reception.
    let times: Vec<&str> = rows.iter().map(|r| r["received_at"].as_str().unwrap()).collect();
    let parsed: Vec<_> = times
        .iter()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap())
        .collect();
    assert!(parsed.windows(2).all(|w| w[0] <= w[1]), "rows out of order");
}

async fn round_trip(app: TestApp, format: &str) {
    let mut mine = Submitted::new();
    submit_each(&app, &app.key_a, &examples(), &mut mine).await;
    let mut theirs = Submitted::new();
    submit_each(&app, &app.key_b, &[stats_record(7.0, None)], &mut theirs).await;

    let body = download(&app, &app.key_a, format, &[]).await;
    if format != "xlsx" {
        let text = String::from_utf8(body.clone()).unwrap();
        // Diacritics arrive as UTF-8, not escaped.
        assert!(text.contains("Nguyễn Thị Minh Thư"), "diacritics lost");
    }
    if format == "csv" {
        assert!(body.starts_with(b"\xEF\xBB\xBFrecord_id,"), "BOM then header");
        assert!(body.ends_with(b"\r\n"));
    }
    let got = parse(format, &body);
    assert_same(&got, &mine);
    assert!(
        got.iter()
            .any(|r| r["payload"]["expert"]["full_name"] == "Nguyễn Thị Minh Thư")
    );
    assert!(ids(&got).is_disjoint(&theirs.keys().cloned().collect()));
}

both_backends!(
    a_csv_export_round_trips_diacritics_and_holds_exactly_the_callers_records,
    |app: TestApp| async move { round_trip(app, "csv").await }
);

both_backends!(
    an_xlsx_export_round_trips_diacritics_and_holds_exactly_the_callers_records,
    |app: TestApp| async move { round_trip(app, "xlsx").await }
);

both_backends!(
    a_json_export_round_trips_diacritics_and_holds_exactly_the_callers_records,
    |app: TestApp| async move { round_trip(app, "json").await }
);

both_backends!(
    a_csv_export_without_bom_starts_with_the_header,
    |app: TestApp| async move {
        submit(&app, &app.key_a, &stats_record(1.0, None)).await;
        let body = download(&app, &app.key_a, "csv", &[("bom", "false")]).await;
        assert!(body.starts_with(b"record_id,receipt_id,"));
        assert_eq!(parse("csv", &body).len(), 1);
    }
);

both_backends!(
    another_organisations_export_contains_none_of_the_callers_records,
    |app: TestApp| async move {
        let mut mine = Submitted::new();
        submit_each(&app, &app.key_a, &examples(), &mut mine).await;
        let mut theirs = Submitted::new();
        submit_each(&app, &app.key_b, &[stats_record(9.0, None)], &mut theirs).await;
        for format in FORMATS {
            let got = rows(&app, &app.key_b, format, &[]).await;
            assert_same(&got, &theirs);
            assert!(ids(&got).is_disjoint(&mine.keys().cloned().collect()), "{format}");
        }
    }
);

both_backends!(each_filter_narrows_the_export, |app: TestApp| async move {
    let mut early = Submitted::new();
    submit_each(&app, &app.key_a, &examples(), &mut early).await;
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let late_receipt = submit(
        &app,
        &app.key_a,
        &json!([
            stats_record(1.0, None),
            stats_record(2.0, None),
            stats_record(3.0, None)
        ]),
    )
    .await;
    let late: BTreeSet<String> = late_receipt["record_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    let all = rows(&app, &app.key_a, "json", &[]).await;
    assert_eq!(all.len(), early.len() + 3);
    let only = |pred: &dyn Fn(&Value) -> bool| -> BTreeSet<String> {
        all.iter()
            .filter(|r| pred(r))
            .map(|r| r["record_id"].as_str().unwrap().to_owned())
            .collect()
    };

    for category in ["policy", "statistics", "workforce", "enforcement"] {
        let got = rows(&app, &app.key_a, "json", &[("category", category)]).await;
        let want = only(&|r| r["category"] == category);
        assert!(!want.is_empty());
        assert_eq!(ids(&got), want, "category={category}");
    }
    for period in ["2026-10", "2026-Q3", "2023"] {
        let got = rows(&app, &app.key_a, "json", &[("period", period)]).await;
        let want = only(&|r| r["period"] == period);
        assert!(!want.is_empty());
        assert_eq!(ids(&got), want, "period={period}");
    }
    // Periods are matched exactly, whatever their spelling.
    let got = rows(&app, &app.key_a, "json", &[("period", "2026-q3")]).await;
    assert_eq!(ids(&got), only(&|r| r["period"] == "2026-Q3"));

    let got = rows(&app, &app.key_a, "json", &[("status", "received")]).await;
    assert_eq!(got.len(), all.len());
    let got = rows(&app, &app.key_a, "json", &[("status", "rejected")]).await;
    assert!(got.is_empty());

    // `from` is inclusive and `to` exclusive: the late records' own time splits the export.
    let split = all
        .iter()
        .find(|r| late.contains(r["record_id"].as_str().unwrap()))
        .unwrap()["received_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = rows(&app, &app.key_a, "json", &[("from", split.as_str())]).await;
    assert_eq!(ids(&got), late);
    let got = rows(&app, &app.key_a, "json", &[("to", split.as_str())]).await;
    assert_eq!(ids(&got), early.keys().cloned().collect());
    // An offset other than Z, sent with an unencoded `+` in the URL.
    let split_t = chrono::DateTime::parse_from_rfc3339(&split).unwrap();
    let plus7 = split_t
        .with_timezone(&chrono::FixedOffset::east_opt(7 * 3600).unwrap())
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
    let raw = app
        .client
        .get(format!(
            "{}?format=json&from={plus7}",
            app.url("/api/v1/exports/records")
        ))
        .header("x-api-key", &app.key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 200);
    assert_eq!(ids(&parse("json", &raw.bytes().await.unwrap())), late);

    // Filters combine, in every format.
    for format in FORMATS {
        let got = rows(
            &app,
            &app.key_a,
            format,
            &[
                ("category", "statistics"),
                ("period", "2026-10"),
                ("from", split.as_str()),
            ],
        )
        .await;
        assert_eq!(ids(&got), late, "{format}");
        let got = rows(
            &app,
            &app.key_a,
            format,
            &[("category", "policy"), ("from", split.as_str())],
        )
        .await;
        assert!(got.is_empty(), "{format}");
    }
});

both_backends!(
    bad_parameters_give_400_problems_naming_the_parameter,
    |app: TestApp| async move {
        let cases: &[(Query, &str, &str)] = &[
            (&[], "query:format", "required"),
            (&[("format", "pdf")], "query:format", "enum"),
            (
                &[("format", "csv"), ("category", "weather")],
                "query:category",
                "unknown_category",
            ),
            (
                &[("format", "csv"), ("period", "2026-13")],
                "query:period",
                "format",
            ),
            (&[("format", "json"), ("status", "late")], "query:status", "enum"),
            (
                &[("format", "xlsx"), ("from", "yesterday")],
                "query:from",
                "format",
            ),
            (&[("format", "csv"), ("to", "2026-10-01")], "query:to", "format"),
            (
                &[
                    ("format", "csv"),
                    ("from", "2026-10-02T00:00:00Z"),
                    ("to", "2026-10-01T00:00:00Z"),
                ],
                "query:to",
                "invalid",
            ),
            (&[("format", "csv"), ("bom", "maybe")], "query:bom", "type"),
            (
                &[("format", "csv"), ("colour", "red")],
                "query:colour",
                "unknown_field",
            ),
            (
                &[("format", "csv"), ("format", "json")],
                "query:format",
                "invalid",
            ),
        ];
        for (query, path, code) in cases {
            let resp = export(&app, &app.key_a, query).await;
            assert_eq!(resp.status(), 400, "{query:?}");
            assert_eq!(
                resp.headers()["content-type"].to_str().unwrap(),
                "application/problem+json"
            );
            let p: Value = resp.json().await.unwrap();
            assert_eq!(p["code"], "invalid_parameter", "{query:?}");
            assert_eq!(p["instance"], "/api/v1/exports/records");
            let v = &p["violations"];
            assert_eq!(v.as_array().unwrap().len(), 1, "{query:?}: {p}");
            assert_eq!(v[0]["path"], *path, "{query:?}");
            assert_eq!(v[0]["code"], *code, "{query:?}");
        }
        // Every bad parameter at once, in English.
        let resp = app
            .client
            .get(export_url(
                &app,
                &[("format", "doc"), ("category", "x"), ("period", "x")],
            ))
            .header("x-api-key", &app.key_a)
            .header("accept-language", "en")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["title"], "A parameter is not valid");
        let paths: Vec<&str> = p["violations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["query:format", "query:category", "query:period"]);
        // No key, no export.
        let anon = app
            .client
            .get(app.url("/api/v1/exports/records?format=csv"))
            .send()
            .await
            .unwrap();
        assert_eq!(anon.status(), 401);
    }
);

both_backends!(formula_like_text_stays_text, |app: TestApp| async move {
    let mut rec = stats_record(1.0, None);
    let note = "=HYPERLINK(\"http://example.invalid\",\"Nhấn vào đây\")";
    rec["payload"]["note"] = json!(note);
    let mut mine = Submitted::new();
    submit_each(&app, &app.key_a, &[rec], &mut mine).await;
    for format in FORMATS {
        let body = download(&app, &app.key_a, format, &[]).await;
        // `parse` also checks that no XLSX cell is a formula and that every XLSX cell
        // is a string (or the schema version number).
        let got = parse(format, &body);
        assert_same(&got, &mine);
        assert_eq!(got[0]["payload"]["note"], note, "{format}");
    }
    // In CSV no cell begins with a formula character unguarded.
    let body = download(&app, &app.key_a, "csv", &[("bom", "false")]).await;
    let mut r = csv::Reader::from_reader(body.as_slice());
    for rec in r.records() {
        for cell in rec.unwrap().iter() {
            assert!(!cell.starts_with(['=', '+', '-', '@']), "unguarded cell {cell}");
        }
    }
});

both_backends!(
    a_3000_record_export_arrives_complete_in_every_format,
    |app: TestApp| async move {
        let mut all = BTreeSet::new();
        for batch in 0..3 {
            let body: Vec<Value> = (0..1000)
                .map(|i| stats_record(f64::from(batch * 1000 + i), None))
                .collect();
            let receipt = submit(&app, &app.key_a, &json!(body)).await;
            for id in receipt["record_ids"].as_array().unwrap() {
                all.insert(id.as_str().unwrap().to_owned());
            }
        }
        assert_eq!(all.len(), 3000);
        for format in FORMATS {
            let got = rows(&app, &app.key_a, format, &[]).await;
            assert_eq!(got.len(), 3000, "{format}");
            assert_eq!(ids(&got), all, "{format}");
            let values: BTreeSet<i64> = got
                .iter()
                .map(|r| r["payload"]["value"].as_f64().unwrap() as i64)
                .collect();
            assert_eq!(values.len(), 3000, "{format}");
        }
    }
);

both_backends!(
    a_failure_after_the_download_started_cuts_it_off,
    |app: TestApp| async move {
        use etx_ingestion::store::entities::record;
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
        // A full first page, then records whose ciphertext is damaged.
        let first: Vec<Value> = (0..500).map(|i| stats_record(f64::from(i), None)).collect();
        submit(&app, &app.key_a, &json!(first)).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let later: Vec<Value> = (0..5).map(|i| stats_record(f64::from(i), None)).collect();
        let receipt = submit(&app, &app.key_a, &json!(later)).await;
        let receipt_id: uuid::Uuid = receipt["receipt_id"].as_str().unwrap().parse().unwrap();
        let db = app.db_conn().await;
        record::Entity::update_many()
            .col_expr(record::Column::Payload, Expr::value(vec![0x45u8; 64]))
            .filter(record::Column::ReceiptId.eq(receipt_id))
            .exec(&db)
            .await
            .unwrap();

        // CSV and JSON have started streaming: the body must end in an error, not look complete.
        for format in ["csv", "json"] {
            let resp = export(&app, &app.key_a, &[("format", format)]).await;
            assert_eq!(resp.status(), 200, "{format}");
            assert!(
                resp.bytes().await.is_err(),
                "{format}: a cut-off export must not look complete"
            );
        }
        // XLSX fails before its first byte: an ordinary problem.
        let resp = export(&app, &app.key_a, &[("format", "xlsx")]).await;
        assert_eq!(resp.status(), 500);
        let p: Value = resp.json().await.unwrap();
        assert_eq!(p["code"], "internal");
    }
);
