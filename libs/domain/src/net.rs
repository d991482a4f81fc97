//! Network ranges of an API key's address allow-list (R-SEC-1, issue 4 §5): an IPv4 or IPv6
//! network in CIDR notation, parsed once and then only ever valid.
//!
//! Small on purpose: parsing and containment are all the allow-list needs. IPv4-mapped IPv6
//! addresses (`::ffff:203.0.113.7`, what a dual-stack listener reports for an IPv4 client) are
//! matched as the IPv4 address they carry.

use crate::{ParseError, ViolationCode};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;

/// Most networks one allow-list may hold.
pub const MAX_ALLOWED_NETWORKS: usize = 32;

/// Longest text of a network (`ffff:…:ffff/128` is 43 characters).
pub const MAX_NETWORK_TEXT: usize = 43;

/// An IP network: an address whose bits past the prefix are zero, and the prefix length.
/// A bare address is a single-host network (`/32` or `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Parses `203.0.113.0/24`, `2001:db8::/32` or a bare address. Host bits past the prefix
    /// are refused (`10.0.0.5/24` is ambiguous: the network `10.0.0.0/24` or a typo?).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bad = |detail: &str| ParseError::new(ViolationCode::Format, detail.to_owned());
        if s.len() > MAX_NETWORK_TEXT || s.trim() != s || s.is_empty() {
            return Err(bad(
                "expected an IPv4 or IPv6 network in CIDR notation, e.g. 203.0.113.0/24",
            ));
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| bad("expected an IPv4 or IPv6 network in CIDR notation, e.g. 203.0.113.0/24"))?;
        let max = max_prefix(addr);
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would take `+24`.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| {
                    bad(if addr.is_ipv4() {
                        "the prefix length of an IPv4 network is 0 to 32"
                    } else {
                        "the prefix length of an IPv6 network is 0 to 128"
                    })
                })?
            }
            Some(_) => return Err(bad("the prefix length must be a number, e.g. /24")),
        };
        let net = Self { addr, prefix };
        if mask(addr, prefix) != addr {
            return Err(bad(
                "the address has bits set past the prefix length; give the network's first address",
            ));
        }
        Ok(net)
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 address is matched as IPv4;
    /// otherwise IPv4 never matches an IPv6 network, nor the other way round.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// `addr` with every bit past `prefix` cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

/// Whether an allow-list admits a client: an empty list admits every address; a non-empty one
/// admits only an address inside one of its networks, and never an unknown or unreadable
/// address.
pub fn admits(allowed: &[IpNetwork], client: Option<&str>) -> bool {
    if allowed.is_empty() {
        return true;
    }
    let Some(ip) = client.and_then(|c| c.trim().parse::<IpAddr>().ok()) else {
        return false;
    };
    allowed.iter().any(|n| n.contains(ip))
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl std::str::FromStr for IpNetwork {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for IpNetwork {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpNetwork {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        IpNetwork::parse(s).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_networks_parse_and_contain_their_addresses() {
        let n = net("203.0.113.0/24");
        assert_eq!(n.to_string(), "203.0.113.0/24");
        assert!(n.contains(ip("203.0.113.0")));
        assert!(n.contains(ip("203.0.113.255")));
        assert!(!n.contains(ip("203.0.114.0")));
        assert!(!n.contains(ip("203.0.112.255")));
        let host = net("198.51.100.7");
        assert_eq!(host.to_string(), "198.51.100.7/32");
        assert!(host.contains(ip("198.51.100.7")));
        assert!(!host.contains(ip("198.51.100.8")));
        let all = net("0.0.0.0/0");
        assert!(all.contains(ip("8.8.8.8")));
        assert!(
            !all.contains(ip("2001:db8::1")),
            "an IPv4 network never holds IPv6"
        );
        assert!(net("10.0.0.0/8").contains(ip("10.255.255.255")));
        assert!(net("10.0.0.0/31").contains(ip("10.0.0.1")));
    }

    #[test]
    fn ipv6_networks_parse_and_contain_their_addresses() {
        let n = net("2001:db8::/32");
        assert_eq!(n.to_string(), "2001:db8::/32");
        assert!(n.contains(ip("2001:db8::1")));
        assert!(n.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!n.contains(ip("2001:db9::")));
        assert!(!n.contains(ip("10.0.0.1")));
        let host = net("::1");
        assert_eq!(host.to_string(), "::1/128");
        assert!(host.contains(ip("::1")));
        assert!(!host.contains(ip("::2")));
        assert!(net("::/0").contains(ip("fe80::1")));
        assert!(net("2001:db8:abcd:12::/64").contains(ip("2001:db8:abcd:12:1:2:3:4")));
        assert!(!net("2001:db8:abcd:12::/64").contains(ip("2001:db8:abcd:13::")));
        // Uppercase and the longest text.
        assert_eq!(
            net("FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF/128").to_string(),
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"
        );
    }

    #[test]
    fn ipv4_mapped_addresses_match_as_ipv4() {
        assert!(net("203.0.113.0/24").contains(ip("::ffff:203.0.113.9")));
        assert!(!net("203.0.113.0/24").contains(ip("::ffff:203.0.114.9")));
    }

    #[test]
    fn malformed_networks_are_refused() {
        for bad in [
            "",
            " 10.0.0.0/8",
            "10.0.0.0/8 ",
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/08x",
            "10.0.0.5/24",
            "10.0.0",
            "10.0.0.256/32",
            "2001:db8::1/32",
            "2001:db8::/129",
            "2001:db8::/1280",
            "example.org/24",
            "10.0.0.0/8/8",
            "fe80::1%eth0",
        ] {
            let e = IpNetwork::parse(bad).unwrap_err();
            assert_eq!(e.code, ViolationCode::Format, "{bad:?}");
        }
        assert!(IpNetwork::parse(&"1".repeat(MAX_NETWORK_TEXT + 1)).is_err());
    }

    #[test]
    fn an_allow_list_admits_only_addresses_inside_it() {
        let list = [net("203.0.113.0/24"), net("2001:db8::/48")];
        assert!(admits(&list, Some("203.0.113.50")));
        assert!(admits(&list, Some("2001:db8:0:1::5")));
        assert!(!admits(&list, Some("198.51.100.1")));
        assert!(!admits(&list, Some("2001:db8:1::5")));
        assert!(!admits(&list, None), "an unknown address is never admitted");
        assert!(!admits(&list, Some("not an address")));
        assert!(admits(&[], None), "no list: every address");
        assert!(admits(&[], Some("198.51.100.1")));
    }

    #[test]
    fn networks_round_trip_through_serde() {
        let n = net("2001:db8::/32");
        let j = serde_json::to_string(&n).unwrap();
        assert_eq!(j, "\"2001:db8::/32\"");
        assert_eq!(serde_json::from_str::<IpNetwork>(&j).unwrap(), n);
        assert!(serde_json::from_str::<IpNetwork>("\"10.0.0.1/24\"").is_err());
    }
}
