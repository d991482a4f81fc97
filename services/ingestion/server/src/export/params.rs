//! The query parameters of an export, checked all at once: every bad parameter becomes one
//! violation whose path is `query:<name>`, and nothing of the submitted value is echoed.

use chrono::{DateTime, Utc};
use etx_domain::{Category, Classification, FieldViolation, Period, ViolationCode};

/// The file formats an export is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// UTF-8 CSV (RFC 4180), with a byte-order mark unless `bom=false`.
    Csv,
    /// One Excel worksheet named `records`.
    Xlsx,
    /// A JSON array of objects.
    Json,
}

impl ExportFormat {
    /// The `Content-Type` of the download.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Json => "application/json",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Xlsx => "xlsx",
            Self::Json => "json",
        }
    }
}

/// Record statuses (GLOSSARY.md "Statuses") that a stored record can hold, now or once the
/// pipeline runs; `late` and `missing` describe expected reports, not records, so they are not
/// filters here. Only `received` exists today.
pub const RECORD_STATUSES: [&str; 8] = [
    "received",
    "validating",
    "valid",
    "rejected",
    "duplicate",
    "reconciled",
    "conflict",
    "approved",
];

/// The categories `category` accepts (OpenAPI document only; any case).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum CategoryName {
    /// Strategies, plans, policies, legal documents, standards.
    Policy,
    /// Reported and measured statistics; security-monitoring data.
    Statistics,
    /// Training, capacity building, human resources, experts.
    Workforce,
    /// Inspection, complaints, denunciations, violations, incident reports.
    Enforcement,
}

/// The statuses `status` accepts, [`RECORD_STATUSES`] (OpenAPI document only; any case).
#[derive(Debug, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum RecordStatusName {
    /// Durably received.
    Received,
    /// Being validated by the pipeline.
    Validating,
    /// Valid.
    Valid,
    /// Rejected.
    Rejected,
    /// A duplicate of a stored record.
    Duplicate,
    /// Reconciled.
    Reconciled,
    /// In conflict with another record.
    Conflict,
    /// Approved.
    Approved,
}

/// A checked export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportParams {
    /// The file format.
    pub format: ExportFormat,
    /// Only this category.
    pub category: Option<Category>,
    /// Only this exact period.
    pub period: Option<Period>,
    /// Only this status (one of [`RECORD_STATUSES`]).
    pub status: Option<&'static str>,
    /// Only records received at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only records received before this instant (exclusive).
    pub to: Option<DateTime<Utc>>,
    /// CSV only: start with a UTF-8 byte-order mark (default true).
    pub bom: bool,
    /// Not a query parameter: the caller's clearance (issue 4 §3); records classified above it
    /// are left out. `secret` (everything) until the handler narrows it.
    pub clearance: Classification,
}

const KNOWN: [&str; 7] = ["format", "category", "period", "status", "from", "to", "bom"];

fn violation(name: &str, code: ViolationCode, detail: &str) -> FieldViolation {
    FieldViolation::new(format!("query:{name}"), code).with_detail(detail)
}

impl ExportParams {
    /// Checks the decoded query pairs. Every problem is reported, each once.
    pub fn parse(pairs: &[(String, String)]) -> Result<Self, Vec<FieldViolation>> {
        let mut bad = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for (name, _) in pairs {
            match KNOWN.iter().find(|k| **k == name.as_str()) {
                None => bad.push(unknown(name)),
                Some(k) if seen.contains(k) => {
                    if !bad
                        .iter()
                        .any(|v: &FieldViolation| v.path == format!("query:{k}"))
                    {
                        bad.push(violation(k, ViolationCode::Invalid, "given more than once"));
                    }
                }
                Some(k) => seen.push(k),
            }
        }
        let get = |name: &str| pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());

        let format = match get("format").map(|v| v.trim().to_ascii_lowercase()) {
            None => {
                bad.push(violation("format", ViolationCode::Required, "csv, xlsx or json"));
                None
            }
            Some(v) => match v.as_str() {
                "csv" => Some(ExportFormat::Csv),
                "xlsx" => Some(ExportFormat::Xlsx),
                "json" => Some(ExportFormat::Json),
                _ => {
                    bad.push(violation(
                        "format",
                        ViolationCode::Enum,
                        "expected csv, xlsx or json",
                    ));
                    None
                }
            },
        };
        let category = get("category").and_then(|v| {
            Category::parse(v)
                .map_err(|e| {
                    bad.push(violation(
                        "category",
                        e.code,
                        "expected policy, statistics, workforce or enforcement",
                    ))
                })
                .ok()
        });
        let period = get("period").and_then(|v| {
            Period::parse(v)
                .map_err(|e| {
                    bad.push(violation(
                        "period",
                        e.code,
                        "expected YYYY, YYYY-Qn, YYYY-MM or YYYY-MM-DD",
                    ))
                })
                .ok()
        });
        let status = get("status").and_then(|v| {
            let v = v.trim().to_ascii_lowercase();
            let found = RECORD_STATUSES.iter().copied().find(|s| *s == v);
            if found.is_none() {
                bad.push(violation(
                    "status",
                    ViolationCode::Enum,
                    "expected received, validating, valid, rejected, duplicate, reconciled, conflict or approved",
                ));
            }
            found
        });
        let mut instant = |name: &str| {
            get(name).and_then(|v| {
                let t = parse_instant(v);
                if t.is_none() {
                    bad.push(violation(
                        name,
                        ViolationCode::Format,
                        "expected an RFC 3339 date-time such as 2026-10-01T00:00:00+07:00 (send + as %2B)",
                    ));
                }
                t
            })
        };
        let from = instant("from");
        let to = instant("to");
        if let (Some(f), Some(t)) = (from, to)
            && t <= f
        {
            bad.push(violation(
                "to",
                ViolationCode::Invalid,
                "must be later than `from`",
            ));
        }
        let bom = match get("bom").map(|v| v.trim().to_ascii_lowercase()) {
            None => true,
            Some(v) => match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    bad.push(violation("bom", ViolationCode::Type, "expected true or false"));
                    true
                }
            },
        };
        match format {
            Some(format) if bad.is_empty() => Ok(Self {
                format,
                category,
                period,
                status,
                from,
                to,
                bom,
                clearance: Classification::Secret,
            }),
            _ => Err(bad),
        }
    }
}

/// An unknown parameter is refused rather than ignored, so that a misspelt filter never widens
/// an export. Its name is shown only when it is a plain identifier (R-SEC-3).
fn unknown(name: &str) -> FieldViolation {
    let plain = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    let path = if plain {
        format!("query:{name}")
    } else {
        "query".to_owned()
    };
    FieldViolation::new(path, ViolationCode::UnknownField)
        .with_detail("known parameters: format, category, period, status, from, to, bom")
}

/// RFC 3339. A `+` of the offset that was not percent-encoded arrives as a space; it is taken
/// back as `+`, which is the only reading that makes the value valid.
fn parse_instant(v: &str) -> Option<DateTime<Utc>> {
    let v = v.trim();
    DateTime::parse_from_rfc3339(v)
        .or_else(|e| match v.rfind(' ') {
            Some(i) if i > 10 => DateTime::parse_from_rfc3339(&format!("{}+{}", &v[..i], &v[i + 1..])),
            _ => Err(e),
        })
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<ExportParams, Vec<FieldViolation>> {
        let pairs: Vec<(String, String)> = q.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        ExportParams::parse(&pairs)
    }

    fn paths(r: Result<ExportParams, Vec<FieldViolation>>) -> Vec<(String, &'static str)> {
        r.err()
            .unwrap_or_default()
            .into_iter()
            .map(|v| (v.path, v.code.as_str()))
            .collect()
    }

    #[test]
    fn every_filter_is_read() {
        let p = parse(&[
            ("format", "CSV"),
            ("category", "statistics"),
            ("period", "2026-10"),
            ("status", "received"),
            ("from", "2026-10-01T00:00:00+07:00"),
            ("to", "2026-11-01T00:00:00Z"),
            ("bom", "false"),
        ])
        .unwrap();
        assert_eq!(p.format, ExportFormat::Csv);
        assert_eq!(p.category, Some(Category::Statistics));
        assert_eq!(p.period.unwrap().to_string(), "2026-10");
        assert_eq!(p.status, Some("received"));
        assert_eq!(p.from.unwrap().to_rfc3339(), "2026-09-30T17:00:00+00:00");
        assert!(!p.bom);
    }

    #[test]
    fn only_the_format_is_required_and_bom_defaults_on() {
        let p = parse(&[("format", "json")]).unwrap();
        assert_eq!(
            (p.category, p.period, p.status, p.from, p.to, p.bom),
            (None, None, None, None, None, true)
        );
        assert_eq!(paths(parse(&[])), vec![("query:format".to_owned(), "required")]);
    }

    #[test]
    fn every_bad_parameter_is_named() {
        let got = paths(parse(&[
            ("format", "pdf"),
            ("category", "weather"),
            ("period", "2026-13"),
            ("status", "late"),
            ("from", "yesterday"),
            ("bom", "maybe"),
            ("colour", "red"),
            ("<script>", "x"),
        ]));
        assert_eq!(
            got,
            vec![
                ("query:colour".to_owned(), "unknown_field"),
                ("query".to_owned(), "unknown_field"),
                ("query:format".to_owned(), "enum"),
                ("query:category".to_owned(), "unknown_category"),
                ("query:period".to_owned(), "format"),
                ("query:status".to_owned(), "enum"),
                ("query:from".to_owned(), "format"),
                ("query:bom".to_owned(), "type"),
            ]
        );
    }

    #[test]
    fn repeated_parameters_and_empty_ranges_are_refused() {
        assert_eq!(
            paths(parse(&[
                ("format", "csv"),
                ("format", "json"),
                ("format", "xlsx")
            ])),
            vec![("query:format".to_owned(), "invalid")]
        );
        assert_eq!(
            paths(parse(&[
                ("format", "csv"),
                ("from", "2026-10-02T00:00:00Z"),
                ("to", "2026-10-01T00:00:00Z")
            ])),
            vec![("query:to".to_owned(), "invalid")]
        );
    }

    #[test]
    fn an_unencoded_plus_in_an_offset_is_understood() {
        let p = parse(&[("format", "csv"), ("from", "2026-10-01T00:00:00 07:00")]).unwrap();
        assert_eq!(p.from.unwrap().to_rfc3339(), "2026-09-30T17:00:00+00:00");
    }
}
