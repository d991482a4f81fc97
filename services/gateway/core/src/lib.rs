//! The gateway's rules, free of any framework: how a caller's credential is read from the
//! request headers (R-SEC-1), which service owns which API path (DESIGN.md §2 routing), and
//! the rate-limit decision ([`ratelimit`], R-SEC-2).

pub mod ratelimit;

use serde::{Deserialize, Serialize};

/// A service behind the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upstream {
    /// Organisations, systems, keys.
    Identity,
    /// Records, receipts, schemas.
    Ingestion,
}

impl Upstream {
    /// The target name (`etxhub serve --target …`).
    pub fn target(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Ingestion => "ingestion",
        }
    }
}

/// The service owning an `/api/v1/...` path, by its first segment, or a `/soap/v1/<service>`
/// endpoint (R-ING-3); `None` for unknown paths.
pub fn route(path: &str) -> Option<Upstream> {
    if let Some(rest) = path.strip_prefix("/soap/v1/") {
        return match rest.split(['/', '?']).next().unwrap_or("") {
            "ingestion" => Some(Upstream::Ingestion),
            _ => None,
        };
    }
    let rest = path.strip_prefix("/api/v1/")?;
    let first = rest.split(['/', '?']).next().unwrap_or("");
    match first {
        "records" | "receipts" | "schemas" | "batches" | "exports" => Some(Upstream::Ingestion),
        "keys" | "systems" | "organisations" => Some(Upstream::Identity),
        _ => None,
    }
}

/// Why the credential headers could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    /// No credential header.
    #[error("no credential")]
    Missing,
    /// A header is present but unusable (two different keys, wrong scheme, not ASCII, too long).
    #[error("malformed credential")]
    Malformed,
}

/// Longest credential we look at; real keys are 60 characters.
const MAX_CREDENTIAL: usize = 512;

/// Reads the API key from `X-API-Key` or `Authorization: ApiKey <key>` / `Bearer <key>`.
/// Both may be present only if they carry the same key.
pub fn credential<'a>(
    x_api_key: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
) -> Result<&'a str, CredentialError> {
    let text = |b: &'a [u8]| -> Result<&'a str, CredentialError> {
        if b.len() > MAX_CREDENTIAL {
            return Err(CredentialError::Malformed);
        }
        let s = std::str::from_utf8(b)
            .map_err(|_| CredentialError::Malformed)?
            .trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(CredentialError::Malformed);
        }
        Ok(s)
    };
    let from_key = x_api_key.map(text).transpose()?;
    let from_auth = match authorization {
        None => None,
        Some(b) => {
            let s = std::str::from_utf8(b)
                .map_err(|_| CredentialError::Malformed)?
                .trim();
            let (scheme, rest) = s.split_once(' ').ok_or(CredentialError::Malformed)?;
            if !(scheme.eq_ignore_ascii_case("apikey") || scheme.eq_ignore_ascii_case("bearer")) {
                return Err(CredentialError::Malformed);
            }
            Some(text(rest.as_bytes())?)
        }
    };
    match (from_key, from_auth) {
        (Some(a), Some(b)) if a != b => Err(CredentialError::Malformed),
        (Some(a), _) | (None, Some(a)) => Ok(a),
        (None, None) => Err(CredentialError::Missing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_to_their_service() {
        assert_eq!(route("/api/v1/records"), Some(Upstream::Ingestion));
        assert_eq!(route("/api/v1/records/0190-abc"), Some(Upstream::Ingestion));
        assert_eq!(route("/api/v1/receipts/x?y"), Some(Upstream::Ingestion));
        assert_eq!(route("/api/v1/keys/1"), Some(Upstream::Identity));
        assert_eq!(route("/api/v1/recordsx"), None);
        assert_eq!(route("/api/v2/records"), None);
        assert_eq!(route("/internal/v1/authenticate"), None);
    }

    #[test]
    fn the_soap_endpoint_routes_to_ingestion() {
        assert_eq!(route("/soap/v1/ingestion"), Some(Upstream::Ingestion));
        assert_eq!(route("/soap/v1/ingestion?wsdl"), Some(Upstream::Ingestion));
        assert_eq!(route("/soap/v1/identity"), None);
        assert_eq!(route("/soap/v1/ingestionx"), None);
        assert_eq!(route("/soap/v2/ingestion"), None);
    }

    #[test]
    fn credentials_come_from_either_header() {
        assert_eq!(credential(Some(b"etx_a_b"), None), Ok("etx_a_b"));
        assert_eq!(credential(None, Some(b"Bearer etx_a_b")), Ok("etx_a_b"));
        assert_eq!(credential(None, Some(b"apikey etx_a_b")), Ok("etx_a_b"));
        assert_eq!(credential(Some(b"k"), Some(b"Bearer k")), Ok("k"));
    }

    #[test]
    fn hostile_or_ambiguous_credentials_are_refused() {
        assert_eq!(credential(None, None), Err(CredentialError::Missing));
        assert_eq!(credential(Some(b""), None), Err(CredentialError::Malformed));
        assert_eq!(credential(Some(b"a b"), None), Err(CredentialError::Malformed));
        assert_eq!(
            credential(Some(&[0xff, 0xfe]), None),
            Err(CredentialError::Malformed)
        );
        assert_eq!(
            credential(Some("x".repeat(600).as_bytes()), None),
            Err(CredentialError::Malformed)
        );
        assert_eq!(
            credential(None, Some(b"Basic dXNlcg==")),
            Err(CredentialError::Malformed)
        );
        assert_eq!(
            credential(Some(b"k1"), Some(b"Bearer k2")),
            Err(CredentialError::Malformed)
        );
    }
}
