//! host-local's address ranges: `subnet`, `rangeStart`, `rangeEnd`, `gateway`, canonicalized
//! the way host-local does (gateway defaults to the subnet's first address, the range runs from
//! there to the last address, less the broadcast address for IPv4).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Deserialize;

use crate::cni::error::{CniError, ErrorCode};

/// One range, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RangeConf {
    /// The subnet addresses come from.
    pub subnet: IpNet,
    /// First address handed out (default: the subnet's first address).
    pub range_start: Option<IpAddr>,
    /// Last address handed out (default: the last, or the one before the IPv4 broadcast).
    pub range_end: Option<IpAddr>,
    /// The gateway (default: the subnet's first address); never handed out.
    pub gateway: Option<IpAddr>,
}

/// A canonical range: every bound known and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet (host bits cleared).
    pub subnet: IpNet,
    /// First address handed out.
    pub start: IpAddr,
    /// Last address handed out.
    pub end: IpAddr,
    /// The gateway, skipped by the allocator.
    pub gateway: IpAddr,
}

fn bad(msg: String) -> CniError {
    CniError::new(ErrorCode::InvalidNetworkConfig, format!("ipam: {msg}"))
}

/// An address as a number, to step and compare within one family.
pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// `n` as an address of the family of `like`.
pub(crate) fn from_u128(n: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(n).unwrap_or(u32::MAX))),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

impl RangeConf {
    /// Canonicalizes and checks the range (code 7 when it makes no sense).
    pub fn canonical(&self) -> Result<Range, CniError> {
        let subnet = self.subnet.trunc();
        if subnet.prefix_len() + 2 > subnet.max_prefix_len() {
            return Err(bad(format!("network {subnet} too small to allocate from")));
        }
        let net = to_u128(subnet.network());
        let last = to_u128(subnet.broadcast());
        let first = net + 1;
        let default_end = if subnet.addr().is_ipv4() { last - 1 } else { last };
        let check = |what: &str, ip: IpAddr| -> Result<u128, CniError> {
            if ip.is_ipv4() != subnet.addr().is_ipv4() || !subnet.contains(&ip) {
                return Err(bad(format!("{what} {ip} not in network {subnet}")));
            }
            Ok(to_u128(ip))
        };
        let gateway = match self.gateway {
            Some(g) => check("gateway", g)?,
            None => first,
        };
        let start = match self.range_start {
            Some(s) => check("rangeStart", s)?,
            None => first,
        };
        let end = match self.range_end {
            Some(e) => check("rangeEnd", e)?,
            None => default_end,
        };
        if start > end {
            return Err(bad(format!("rangeStart is after rangeEnd in {subnet}")));
        }
        let like = subnet.addr();
        Ok(Range {
            subnet,
            start: from_u128(start, like),
            end: from_u128(end, like),
            gateway: from_u128(gateway, like),
        })
    }
}

impl Range {
    /// Whether `ip` is an address this range hands out (gateway included).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.start.is_ipv4() && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    /// Whether two ranges share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        self.start.is_ipv4() == other.start.is_ipv4()
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(subnet: &str) -> RangeConf {
        RangeConf { subnet: subnet.parse().unwrap(), range_start: None, range_end: None, gateway: None }
    }

    #[test]
    fn defaults_as_host_local() {
        let r = conf("198.18.0.0/24").canonical().unwrap();
        assert_eq!(r.start.to_string(), "198.18.0.1");
        assert_eq!(r.end.to_string(), "198.18.0.254");
        assert_eq!(r.gateway.to_string(), "198.18.0.1");
        let r6 = conf("2001:db8::/120").canonical().unwrap();
        assert_eq!(r6.end.to_string(), "2001:db8::ff");
        assert!(conf("198.18.0.0/31").canonical().is_err());
        let mut c = conf("198.18.0.0/24");
        c.gateway = Some("198.19.0.1".parse().unwrap());
        assert!(c.canonical().is_err());
        let mut c = conf("198.18.0.0/24");
        c.range_start = Some("198.18.0.100".parse().unwrap());
        c.range_end = Some("198.18.0.10".parse().unwrap());
        assert!(c.canonical().is_err());
        let a = conf("198.18.0.0/24").canonical().unwrap();
        let b = conf("198.18.0.128/25").canonical().unwrap();
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&r6));
    }
}
