//! API-key policy (R-SEC-1, issue 4 §5): what a key may do (its [`Scope`]s), until when (its
//! expiry) and from where (its address allow-list), the rules for issuing one, and rotation
//! with an overlap during which the old key and its successor both work.
//!
//! The checks of a key's use ([`check_use`]) are pure, so that the gateway applies them on
//! every request — also when it answers from its authentication cache without asking identity.

use crate::model::AuthError;
use chrono::{DateTime, TimeDelta, Utc};
use etx_domain::authz::Scope;
use etx_domain::net::{self, IpNetwork, MAX_ALLOWED_NETWORKS};
use etx_domain::{FieldViolation, ViolationCode};
use serde::{Deserialize, Serialize};

/// Longest lifetime of a key, in days (two years): a key is rotated at least that often.
pub const MAX_TTL_DAYS: u32 = 730;

/// Overlap of a rotation when none is asked: one day to deploy the successor.
pub const DEFAULT_OVERLAP_SECS: u32 = 86_400;

/// Longest overlap of a rotation (30 days).
pub const MAX_OVERLAP_SECS: u32 = 30 * 86_400;

/// What a key may do, until when and from where, as stored with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyPolicy {
    /// What it may be used for; sorted, without duplicates.
    pub scopes: Vec<Scope>,
    /// When it stops working; `None`: when revoked.
    pub expires_at: Option<DateTime<Utc>>,
    /// The networks it may be used from; empty: any address.
    pub allowed_networks: Vec<IpNetwork>,
}

impl Default for KeyPolicy {
    /// Every default scope, no expiry, any address: what keys issued before policies existed
    /// and keys issued without options get.
    fn default() -> Self {
        Self {
            scopes: Scope::DEFAULT.to_vec(),
            expires_at: None,
            allowed_networks: Vec::new(),
        }
    }
}

impl KeyPolicy {
    /// Whether the key has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }

    /// The scopes as their wire names.
    pub fn scope_names(&self) -> Vec<String> {
        self.scopes.iter().map(|s| s.as_str().to_owned()).collect()
    }
}

/// The options a key is asked with (`POST /api/v1/keys`, onboarding), already parsed; checked
/// against the clock and the issuer by [`KeyOptions::resolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOptions {
    /// The scopes; `None`: every scope the issuer may grant.
    pub scopes: Option<Vec<Scope>>,
    /// An absolute expiry (exclusive with `ttl_days`).
    pub expires_at: Option<DateTime<Utc>>,
    /// A lifetime in days from now (exclusive with `expires_at`), 1 to [`MAX_TTL_DAYS`].
    pub ttl_days: Option<u32>,
    /// The networks the key may be used from; empty: any address.
    pub allowed_networks: Vec<IpNetwork>,
}

impl KeyOptions {
    /// The policy these options give at `now`; `default_scopes` are used when no scopes are
    /// asked. MUST return every broken rule, each with its field's path: no scopes at all
    /// (`/scopes`), both an expiry and a lifetime (`/ttl_days`), an expiry not in the future or
    /// more than [`MAX_TTL_DAYS`] ahead (`/expires_at`), a lifetime outside 1 to
    /// [`MAX_TTL_DAYS`] days (`/ttl_days`), more than [`MAX_ALLOWED_NETWORKS`] networks
    /// (`/allowed_networks`).
    pub fn resolve(
        self,
        now: DateTime<Utc>,
        default_scopes: &[Scope],
    ) -> Result<KeyPolicy, Vec<FieldViolation>> {
        let mut v = Vec::new();
        let mut scopes = self.scopes.unwrap_or_else(|| default_scopes.to_vec());
        scopes.sort();
        scopes.dedup();
        if scopes.is_empty() {
            v.push(
                FieldViolation::new("/scopes", ViolationCode::TooSmall)
                    .with_detail("a key needs at least one scope"),
            );
        }
        let longest = now + TimeDelta::days(i64::from(MAX_TTL_DAYS));
        let expires_at = match (self.expires_at, self.ttl_days) {
            (Some(_), Some(_)) => {
                v.push(
                    FieldViolation::new("/ttl_days", ViolationCode::Invalid)
                        .with_detail("give expires_at or ttl_days, not both"),
                );
                None
            }
            (Some(at), None) if at <= now => {
                v.push(
                    FieldViolation::new("/expires_at", ViolationCode::TooSmall)
                        .with_detail("the expiry must be in the future"),
                );
                None
            }
            (Some(at), None) if at > longest => {
                v.push(
                    FieldViolation::new("/expires_at", ViolationCode::TooLarge)
                        .with_detail(format!("at most {MAX_TTL_DAYS} days ahead")),
                );
                None
            }
            (Some(at), None) => Some(at),
            (None, Some(0)) => {
                v.push(
                    FieldViolation::new("/ttl_days", ViolationCode::TooSmall).with_detail("at least 1 day"),
                );
                None
            }
            (None, Some(days)) if days > MAX_TTL_DAYS => {
                v.push(
                    FieldViolation::new("/ttl_days", ViolationCode::TooLarge)
                        .with_detail(format!("at most {MAX_TTL_DAYS} days")),
                );
                None
            }
            (None, Some(days)) => Some(now + TimeDelta::days(i64::from(days))),
            (None, None) => None,
        };
        let mut networks = self.allowed_networks;
        networks.sort();
        networks.dedup();
        if networks.len() > MAX_ALLOWED_NETWORKS {
            v.push(
                FieldViolation::new("/allowed_networks", ViolationCode::TooLarge)
                    .with_detail(format!("at most {MAX_ALLOWED_NETWORKS} networks")),
            );
        }
        if v.is_empty() {
            Ok(KeyPolicy {
                scopes,
                expires_at,
                allowed_networks: networks,
            })
        } else {
            Err(v)
        }
    }
}

/// Whether a credential with this expiry and allow-list may be used at `now` from `client_ip`
/// (the address the gateway saw). MUST be asked on every request, whether the credential was
/// just checked by identity or comes from the gateway's cache: `CredentialExpired` from its
/// expiry on, `AddressNotAllowed` for an address outside a non-empty allow-list (or no address
/// at all).
pub fn check_use(
    expires_at: Option<DateTime<Utc>>,
    allowed_networks: &[IpNetwork],
    now: DateTime<Utc>,
    client_ip: Option<&str>,
) -> Result<(), AuthError> {
    if expires_at.is_some_and(|e| e <= now) {
        return Err(AuthError::CredentialExpired);
    }
    if !net::admits(allowed_networks, client_ip) {
        return Err(AuthError::AddressNotAllowed);
    }
    Ok(())
}

/// The overlap of a rotation: `None` gives [`DEFAULT_OVERLAP_SECS`]; MUST refuse more than
/// [`MAX_OVERLAP_SECS`] (`/overlap_secs`). Zero retires the old key at once.
pub fn overlap(secs: Option<u32>) -> Result<TimeDelta, Vec<FieldViolation>> {
    match secs.unwrap_or(DEFAULT_OVERLAP_SECS) {
        s if s > MAX_OVERLAP_SECS => Err(vec![
            FieldViolation::new("/overlap_secs", ViolationCode::TooLarge)
                .with_detail(format!("at most {MAX_OVERLAP_SECS} seconds (30 days)")),
        ]),
        s => Ok(TimeDelta::seconds(i64::from(s))),
    }
}

/// The expiry of a rotated key's successor: a key that had a lifetime gets the same lifetime
/// again from `now` (at most [`MAX_TTL_DAYS`]); a key without expiry gets none.
pub fn successor_expiry(
    old_created_at: DateTime<Utc>,
    old_expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let lifetime = old_expires_at? - old_created_at;
    let lifetime = lifetime
        .max(TimeDelta::seconds(1))
        .min(TimeDelta::days(i64::from(MAX_TTL_DAYS)));
    Some(now + lifetime)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn net(s: &str) -> IpNetwork {
        IpNetwork::parse(s).unwrap()
    }

    #[test]
    fn options_resolve_to_a_sorted_policy_with_defaults() {
        let p = KeyOptions::default().resolve(now(), &Scope::DEFAULT).unwrap();
        assert_eq!(p, KeyPolicy::default());
        let p = KeyOptions {
            scopes: Some(vec![Scope::RecordsRead, Scope::RecordsWrite, Scope::RecordsRead]),
            ttl_days: Some(90),
            allowed_networks: vec![net("2001:db8::/32"), net("203.0.113.0/24"), net("203.0.113.0/24")],
            ..Default::default()
        }
        .resolve(now(), &Scope::DEFAULT)
        .unwrap();
        assert_eq!(p.scopes, vec![Scope::RecordsWrite, Scope::RecordsRead]);
        assert_eq!(p.expires_at, Some(now() + TimeDelta::days(90)));
        assert_eq!(
            p.allowed_networks,
            vec![net("203.0.113.0/24"), net("2001:db8::/32")]
        );
        let p = KeyOptions::default()
            .resolve(now(), &[Scope::RecordsWrite])
            .unwrap();
        assert_eq!(p.scopes, vec![Scope::RecordsWrite], "the issuer's default");
    }

    #[test]
    fn broken_options_name_every_field() {
        let paths = |o: KeyOptions| -> Vec<String> {
            o.resolve(now(), &Scope::DEFAULT)
                .unwrap_err()
                .into_iter()
                .map(|v| v.path)
                .collect()
        };
        assert_eq!(
            paths(KeyOptions {
                scopes: Some(vec![]),
                expires_at: Some(now()),
                allowed_networks: (0..33u8).map(|i| net(&format!("10.0.{i}.0/24"))).collect(),
                ..Default::default()
            }),
            ["/scopes", "/expires_at", "/allowed_networks"]
        );
        assert_eq!(
            paths(KeyOptions {
                expires_at: Some(now() + TimeDelta::days(1)),
                ttl_days: Some(1),
                ..Default::default()
            }),
            ["/ttl_days"]
        );
        for days in [0, MAX_TTL_DAYS + 1] {
            assert_eq!(
                paths(KeyOptions {
                    ttl_days: Some(days),
                    ..Default::default()
                }),
                ["/ttl_days"]
            );
        }
        assert_eq!(
            paths(KeyOptions {
                expires_at: Some(now() + TimeDelta::days(i64::from(MAX_TTL_DAYS)) + TimeDelta::seconds(1)),
                ..Default::default()
            }),
            ["/expires_at"]
        );
        assert!(
            KeyOptions {
                ttl_days: Some(MAX_TTL_DAYS),
                ..Default::default()
            }
            .resolve(now(), &Scope::DEFAULT)
            .is_ok()
        );
    }

    #[test]
    fn a_key_is_refused_from_its_expiry_and_outside_its_networks() {
        let at = now();
        let nets = [net("203.0.113.0/24"), net("2001:db8::/32")];
        assert_eq!(check_use(None, &[], at, None), Ok(()));
        assert_eq!(
            check_use(Some(at + TimeDelta::seconds(1)), &nets, at, Some("203.0.113.9")),
            Ok(())
        );
        assert_eq!(
            check_use(Some(at), &[], at, None),
            Err(AuthError::CredentialExpired),
            "from its expiry on"
        );
        assert_eq!(check_use(None, &nets, at, Some("2001:db8::7")), Ok(()));
        assert_eq!(
            check_use(None, &nets, at, Some("198.51.100.1")),
            Err(AuthError::AddressNotAllowed)
        );
        assert_eq!(
            check_use(None, &nets, at, None),
            Err(AuthError::AddressNotAllowed)
        );
        assert_eq!(
            check_use(Some(at - TimeDelta::seconds(1)), &nets, at, Some("198.51.100.1")),
            Err(AuthError::CredentialExpired),
            "expiry is told first"
        );
    }

    #[test]
    fn overlaps_default_to_a_day_and_stop_at_thirty_days() {
        assert_eq!(overlap(None).unwrap(), TimeDelta::days(1));
        assert_eq!(overlap(Some(0)).unwrap(), TimeDelta::zero());
        assert_eq!(overlap(Some(MAX_OVERLAP_SECS)).unwrap(), TimeDelta::days(30));
        assert_eq!(
            overlap(Some(MAX_OVERLAP_SECS + 1)).unwrap_err()[0].path,
            "/overlap_secs"
        );
    }

    #[test]
    fn a_successor_keeps_the_lifetime_of_its_predecessor() {
        let created = now() - TimeDelta::days(80);
        assert_eq!(
            successor_expiry(created, Some(created + TimeDelta::days(90)), now()),
            Some(now() + TimeDelta::days(90))
        );
        assert_eq!(successor_expiry(created, None, now()), None);
    }
}
