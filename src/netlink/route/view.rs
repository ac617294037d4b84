//! The [`Route`] view: a checked, plain-data route decoded from `RTM_NEWROUTE`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteVia};

use crate::netlink::consts::{AF_INET, AF_INET6};
#[cfg(any(test, feature = "fuzzing"))]
use crate::netlink::view::parse_guarded;
use crate::netlink::view::{FromReply, ViewError, family_matches, ip_from_bytes};

/// An IPv4 or IPv6 route (`RTM_NEWROUTE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Route {
    /// Routing table: `RTA_TABLE` when present (needed above 255), else `rtm_table`.
    pub table: u32,
    /// Destination (`RTA_DST` with `rtm_dst_len`); `0.0.0.0/0` or `::/0` without `RTA_DST`.
    pub dst: IpNet,
    /// Next hop (`RTA_GATEWAY`, or an IP `RTA_VIA` such as an IPv6 next hop of an IPv4 route).
    pub gateway: Option<IpAddr>,
    /// Output interface index (`RTA_OIF`).
    pub oif: Option<u32>,
    /// Scope (`rtm_scope`, raw `RT_SCOPE_*`).
    pub scope: u8,
    /// Who installed the route (`rtm_protocol`, raw `RTPROT_*`).
    pub protocol: u8,
    /// Route type (`rtm_type`, raw `RTN_*`: unicast = 1, local = 2, ...).
    pub kind: u8,
    /// Metric (`RTA_PRIORITY`).
    pub priority: Option<u32>,
    /// Preferred source address (`RTA_PREFSRC`).
    pub prefsrc: Option<IpAddr>,
}

impl Route {
    /// Builds the view of a decoded route message.
    ///
    /// Fails for families other than `AF_INET`/`AF_INET6` (e.g. MPLS), for addresses of the
    /// wrong family or length, and for a destination prefix longer than the address.
    /// Multipath next hops (`RTA_MULTIPATH`) are not part of this view.
    pub(crate) fn from_message(msg: &RouteMessage) -> Result<Route, ViewError> {
        let h = &msg.header;
        let family = u8::from(h.address_family);
        let err = |detail: String| ViewError::new("route", detail);
        let unspecified = match family {
            AF_INET => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            AF_INET6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            other => return Err(err(format!("unsupported address family {other}"))),
        };
        let ip = |what: &str, a: &RouteAddress| -> Result<IpAddr, ViewError> {
            let ip = match a {
                RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
                RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
                RouteAddress::Other(b) => ip_from_bytes(b),
                _ => None,
            };
            match ip {
                Some(ip) if family_matches(family, ip) => Ok(ip),
                Some(ip) => Err(err(format!("{what} {ip} does not match family {family}"))),
                None => Err(err(format!("{what} is not an IP address: {a:?}"))),
            }
        };

        let mut table = None;
        let mut dst = None;
        let mut gateway = None;
        let mut via = None;
        let mut oif = None;
        let mut priority = None;
        let mut prefsrc = None;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Table(t) => table = Some(*t),
                RouteAttribute::Destination(a) => dst = Some(ip("RTA_DST", a)?),
                RouteAttribute::Gateway(a) => gateway = Some(ip("RTA_GATEWAY", a)?),
                RouteAttribute::PrefSource(a) => prefsrc = Some(ip("RTA_PREFSRC", a)?),
                // RTA_VIA may name a next hop of the other family: no family check.
                RouteAttribute::Via(RouteVia::Inet(v4)) => via = Some(IpAddr::V4(*v4)),
                RouteAttribute::Via(RouteVia::Inet6(v6)) => via = Some(IpAddr::V6(*v6)),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Priority(p) => priority = Some(*p),
                _ => {}
            }
        }
        let dst = match dst {
            Some(d) => IpNet::new(d, h.destination_prefix_length)
                .map_err(|_| err(format!("prefix length {} too long for {d}", h.destination_prefix_length)))?,
            None => IpNet::new(unspecified, 0).map_err(|_| err("cannot build default destination".into()))?,
        };
        Ok(Route {
            table: table.unwrap_or(u32::from(h.table)),
            dst,
            gateway: gateway.or(via),
            oif,
            scope: h.scope.into(),
            protocol: h.protocol.into(),
            kind: h.kind.into(),
            priority,
            prefsrc,
        })
    }

    /// The route is a default route (`0.0.0.0/0` or `::/0`).
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }
}

impl FromReply for Route {
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>> {
        match m {
            RouteNetlinkMessage::NewRoute(r) => Some(Route::from_message(r)),
            _ => None,
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
/// Parses the body of an `RTM_NEWROUTE` message (the `rtmsg` and its attributes) into a
/// [`Route`]. Never panics.
pub fn parse_route(buf: &[u8]) -> Result<Route, ViewError> {
    parse_guarded::<RouteMessage, _>("route", buf, Route::from_message)
}

#[cfg(test)]
mod tests {

    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use netlink_packet_core::DefaultNla;
    use netlink_packet_route::AddressFamily;

    use netlink_packet_route::route::{RouteHeader, RouteProtocol, RouteScope, RouteType};

    use super::*;
    use crate::netlink::consts::*;
    use crate::netlink::view::testutil::*;

    #[test]
    fn route_default_v4_without_dst() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Static;
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(192, 168, 1, 1))));
        m.attributes.push(RouteAttribute::Oif(3));
        m.attributes.push(RouteAttribute::Priority(100));
        let want = Route {
            table: RT_TABLE_MAIN,
            dst: "0.0.0.0/0".parse().unwrap(),
            gateway: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1))),
            oif: Some(3),
            scope: RT_SCOPE_UNIVERSE,
            protocol: RTPROT_STATIC,
            kind: RTN_UNICAST,
            priority: Some(100),
            prefsrc: None,
        };
        assert_eq!(Route::from_message(&m), Ok(want.clone()));
        let (back, buf) = roundtrip(&m);
        assert_eq!(Route::from_message(&back), Ok(want.clone()));
        assert_eq!(parse_route(&buf), Ok(want.clone()));
        assert!(want.is_default());

        let mut m6 = RouteMessage::default();
        m6.header.address_family = AddressFamily::Inet6;
        m6.header.kind = RouteType::Unicast;
        let r = Route::from_message(&m6).unwrap();
        assert_eq!(r.dst, "::/0".parse::<IpNet>().unwrap());
        assert!(r.is_default());
        assert_eq!(r.table, RT_TABLE_UNSPEC);
    }

    #[test]
    fn route_v6_table_above_255_and_raw_numbers() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet6;
        m.header.destination_prefix_length = 48;
        m.header.table = 252; // RT_TABLE_COMPAT, what the kernel puts in the header for big ids
        m.header.protocol = RouteProtocol::Other(99);
        m.header.scope = RouteScope::Link;
        m.header.kind = RouteType::Unreachable;
        m.attributes.push(RouteAttribute::Table(1000));
        m.attributes.push(RouteAttribute::Destination(RouteAddress::Inet6("2001:db8:1::".parse().unwrap())));
        m.attributes.push(RouteAttribute::PrefSource(RouteAddress::Inet6("2001:db8::5".parse().unwrap())));
        m.attributes.push(RouteAttribute::Other(DefaultNla::new(999, vec![0; 4])));
        let want = Route {
            table: 1000,
            dst: "2001:db8:1::/48".parse().unwrap(),
            gateway: None,
            oif: None,
            scope: RT_SCOPE_LINK,
            protocol: 99,
            kind: RTN_UNREACHABLE,
            priority: None,
            prefsrc: Some(IpAddr::V6("2001:db8::5".parse().unwrap())),
        };
        assert_eq!(Route::from_message(&m), Ok(want.clone()));
        let (back, buf) = roundtrip(&m);
        assert_eq!(Route::from_message(&back), Ok(want.clone()));
        assert_eq!(parse_route(&buf), Ok(want.clone()));
        assert!(!want.is_default());
    }

    #[test]
    fn route_v4_via_v6_gateway() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = 8;
        m.header.kind = RouteType::Unicast;
        m.attributes.push(RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(10, 0, 0, 0))));
        m.attributes.push(RouteAttribute::Via(RouteVia::Inet6("fe80::1".parse().unwrap())));
        let r = Route::from_message(&m).unwrap();
        assert_eq!(r.gateway, Some(IpAddr::V6("fe80::1".parse().unwrap())));
        let (back, _) = roundtrip(&m);
        assert_eq!(Route::from_message(&back), Ok(r));
    }

    #[test]
    fn route_errors() {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Mpls;
        assert_eq!(Route::from_message(&m).unwrap_err().what, "route");
        // Destination of the wrong family.
        m.header.address_family = AddressFamily::Inet;
        m.attributes.push(RouteAttribute::Destination(RouteAddress::Inet6(Ipv6Addr::LOCALHOST)));
        assert!(Route::from_message(&m).is_err());
        // Prefix too long.
        m.header.destination_prefix_length = 40;
        m.attributes[0] = RouteAttribute::Destination(RouteAddress::Inet(Ipv4Addr::new(10, 0, 0, 0)));
        assert!(Route::from_message(&m).is_err());
        let (_, buf) = roundtrip(&m);
        assert!(parse_route(&buf).is_err());
    }
}
