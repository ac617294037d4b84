//! Typed, checked views ("Reprs") of decoded rtnetlink messages: what they share.
//!
//! Each view lives next to its requests: [`Link`](super::link::Link) in `link/view.rs`,
//! [`Address`](super::addr::Address) in `addr/view.rs`, [`Route`](super::route::Route) in
//! `route/view.rs`, [`Neighbor`](super::neigh::Neighbor) in `neigh/view.rs`. This module holds the
//! error type, the guarded parser and the helpers they share.
//!
//! netlink-packet-route gives us the byte-level decoding: `LinkMessage`, `AddressMessage`,
//! `RouteMessage` and `NeighbourMessage`, each a header plus a list of attributes (internal: not
//! part of our API). The views are the meaningful values built from those messages — plain data
//! with public fields that compare with `==`, so tests and `restore` can work with them directly.
//!
//! # Guarantees
//!
//! - **No decoder here panics, on any input.** Every `from_message` and every `parse_*` function
//!   returns a [`ViewError`] for input it cannot make sense of. The `parse_*` functions also catch
//!   a panic inside netlink-packet-route itself (which has had parser panics on kernel input
//!   before) and turn it into a [`ViewError`]; that last line of defence needs the default
//!   `panic = "unwind"`.
//! - **Unknown numeric values are kept raw.** Flags, scopes, protocols, route types, neighbor
//!   states and families are stored as the kernel's numbers (see [`consts`](super::consts)), so
//!   a value this crate has never heard of passes through unchanged.
//! - **Attributes we do not use are ignored**, including those the library could not parse
//!   (`Other(DefaultNla)`). When the kernel repeats an attribute, the last one wins.
//! - A `from_message` fails only when the message lacks something the view cannot exist without
//!   (a link name, an address) or carries something contradictory (a prefix longer than the
//!   address, an address of the wrong family).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[cfg(any(test, feature = "fuzzing"))]
use std::panic::{self, AssertUnwindSafe};

#[cfg(any(test, feature = "fuzzing"))]
use netlink_packet_core::Parseable;
use netlink_packet_route::RouteNetlinkMessage;

use super::consts::{AF_BRIDGE, AF_INET, AF_INET6};

/// An address family as rtnetlink messages carry it (`ndm_family`, `ifa_family`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// `AF_INET`: an ARP entry.
    Inet,
    /// `AF_INET6`: an NDP entry.
    Inet6,
    /// `AF_BRIDGE`: a forwarding-database (FDB) entry of a bridge or VXLAN device.
    Bridge,
    /// Any other family, raw. [`Family::from`] never produces `Unknown(2)`, `Unknown(7)` or
    /// `Unknown(10)`.
    Unknown(u8),
}

impl From<u8> for Family {
    fn from(v: u8) -> Self {
        match v {
            AF_INET => Family::Inet,
            AF_INET6 => Family::Inet6,
            AF_BRIDGE => Family::Bridge,
            other => Family::Unknown(other),
        }
    }
}

impl From<Family> for u8 {
    fn from(v: Family) -> u8 {
        match v {
            Family::Inet => AF_INET,
            Family::Inet6 => AF_INET6,
            Family::Bridge => AF_BRIDGE,
            Family::Unknown(other) => other,
        }
    }
}

/// A message that could not be turned into a view.
#[derive(Debug, Clone, PartialEq, Eq, Hash, thiserror::Error)]
#[error("cannot decode {what}: {detail}")]
pub struct ViewError {
    /// What was being decoded, e.g. `"link"`, `"address"`, `"route"`, `"neighbor"`.
    pub what: &'static str,
    /// What was wrong with it.
    pub detail: String,
}

impl ViewError {
    /// Builds a [`ViewError`].
    pub fn new(what: &'static str, detail: impl Into<String>) -> Self {
        ViewError { what, detail: detail.into() }
    }
}

impl From<ViewError> for crate::Error {
    fn from(e: ViewError) -> Self {
        crate::Error::Protocol { op: "decode", detail: e.to_string() }
    }
}

/// True when `ip` can belong to a message of address family `family` (a family other than
/// `AF_INET`/`AF_INET6` accepts both).
pub(crate) fn family_matches(family: u8, ip: IpAddr) -> bool {
    match family {
        AF_INET => ip.is_ipv4(),
        AF_INET6 => ip.is_ipv6(),
        _ => true,
    }
}

/// Reads an IP address from raw bytes: 4 bytes are IPv4, 16 bytes IPv6.
pub(crate) fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
        Some(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        None
    }
}

#[cfg(any(test, feature = "fuzzing"))]
/// Parses a message body with netlink-packet-route and converts it; a panic inside the
/// library is caught and reported as a [`ViewError`].
pub(crate) fn parse_guarded<M, T>(
    what: &'static str,
    buf: &[u8],
    convert: fn(&M) -> Result<T, ViewError>,
) -> Result<T, ViewError>
where
    M: Parseable<[u8]>,
{
    // AssertUnwindSafe: the closure only reads `buf`; nothing is left half-modified by a panic.
    match panic::catch_unwind(AssertUnwindSafe(|| M::parse(buf))) {
        Ok(Ok(msg)) => convert(&msg),
        Ok(Err(e)) => Err(ViewError::new(what, e.to_string())),
        Err(payload) => {
            let reason = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            log::warn!("netlink-packet-route panicked parsing a {what} message of {} bytes: {reason}", buf.len());
            Err(ViewError::new(what, format!("netlink-packet-route panicked: {reason}")))
        }
    }
}

/// A view decoded from one kind of reply message, so the socket can turn any dump or query into
/// views with one generic helper.
pub(crate) trait FromReply: Sized {
    /// The view of `m`, or `None` when `m` is another kind of message.
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>>;
}

/// Shared by the per-object view tests.
#[cfg(test)]
pub(crate) mod testutil {
    use std::fmt::Debug;

    use netlink_packet_core::{DefaultNla, Emitable, Parseable};
    use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage};

    /// Serializes a message (sized with `buffer_len` first) and parses it back.
    pub(crate) fn roundtrip<M: Emitable + Parseable<[u8]> + Debug>(msg: &M) -> (M, Vec<u8>) {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        let back = M::parse(&buf).expect("parse back what we emitted");
        (back, buf)
    }

    pub(crate) fn veth_message() -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = 12;
        m.header.link_layer_type = LinkLayerType::Ether;
        m.header.flags = LinkFlags::Up | LinkFlags::LowerUp | LinkFlags::Broadcast;
        m.attributes.push(LinkAttribute::IfName("veth0".into()));
        m.attributes.push(LinkAttribute::Address(vec![0x02, 0x42, 0xac, 0x11, 0x00, 0x02]));
        m.attributes.push(LinkAttribute::Mtu(1450));
        m.attributes.push(LinkAttribute::Controller(5));
        m.attributes.push(LinkAttribute::Link(13));
        m.attributes.push(LinkAttribute::LinkNetNsId(3));
        m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Veth)]));
        m.attributes.push(LinkAttribute::Other(DefaultNla::new(999, vec![1, 2, 3, 4])));
        m
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Debug;
    use std::net::{IpAddr, Ipv4Addr};

    use netlink_packet_core::Parseable;
    use netlink_packet_route::AddressFamily;
    use netlink_packet_route::address::{AddressAttribute, AddressMessage};
    use netlink_packet_route::link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage};
    use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
    use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};

    use super::*;
    use crate::netlink::addr::{Address, view::parse_address};
    use crate::netlink::consts::*;
    use crate::netlink::link::{Link, view::parse_link};
    use crate::netlink::neigh::{Neighbor, view::parse_neighbor};
    use crate::netlink::route::{Route, view::parse_route};
    use crate::netlink::view::testutil::*;

    // ---- never panic on any input ----

    use crate::fuzzing::Rng;

    /// Kind strings that steer `IFLA_INFO_DATA` parsing into the per-kind decoders.
    const KINDS: &[&str] =
        &["veth", "vxlan", "bridge", "macvlan", "tun", "vlan", "bond", "dummy", "gre", "ip6tnl", "wireguard", "vrf"];

    /// Appends one attribute of type `kind` and payload `value`, padded to 4 bytes.
    fn push_nla(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
        let len = (4 + value.len()).min(u16::MAX as usize) as u16;
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(value);
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }

    /// A plausible-looking attribute stream: well-formed NLA framing (mostly), random types
    /// from the low range the parsers know, random payloads, nested streams, and link kinds.
    fn random_nlas(rng: &mut Rng, depth: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..rng.below(8) {
            let kind = rng.below(64) as u16;
            match rng.below(10) {
                0 if depth < 3 => {
                    let inner = random_nlas(rng, depth + 1);
                    push_nla(&mut out, kind | if rng.below(2) == 0 { 0x8000 } else { 0 }, &inner);
                }
                1 => {
                    // IFLA_LINKINFO with a kind and random data.
                    let mut info = Vec::new();
                    let k = KINDS[rng.below(KINDS.len())];
                    push_nla(&mut info, 1, k.as_bytes());
                    let data = random_nlas(rng, depth + 1);
                    push_nla(&mut info, 2 + rng.below(3) as u16, &data);
                    push_nla(&mut out, 18, &info);
                }
                2 => {
                    // Broken framing: a length that lies.
                    let n = rng.below(12);
                    let v = rng.bytes(n);
                    out.extend_from_slice(&(rng.below(70) as u16).to_ne_bytes());
                    out.extend_from_slice(&kind.to_ne_bytes());
                    out.extend_from_slice(&v);
                }
                _ => {
                    let lens = [0, 1, 2, 3, 4, 5, 6, 8, 12, 16, 20, 24, 36, 64, 100, 200];
                    let n = lens[rng.below(lens.len())];
                    let v = rng.bytes(n);
                    push_nla(&mut out, kind, &v);
                }
            }
        }
        out
    }

    /// One fuzz input for a message with a `header_len`-byte header; family byte biased towards
    /// the families the parsers branch on.
    fn random_message(rng: &mut Rng, header_len: usize, valid: &[Vec<u8>]) -> Vec<u8> {
        match rng.below(4) {
            // Pure noise.
            0 => {
                let n = rng.below(256);
                rng.bytes(n)
            }
            // A valid message with bytes flipped and maybe truncated.
            1 => {
                let mut b = valid[rng.below(valid.len())].clone();
                for _ in 0..=rng.below(4) {
                    if !b.is_empty() {
                        let i = rng.below(b.len());
                        b[i] = rng.next_u64() as u8;
                    }
                }
                if rng.below(3) == 0 {
                    b.truncate(rng.below(b.len() + 1));
                }
                b
            }
            // Structured: header + attribute stream.
            _ => {
                let mut b = rng.bytes(header_len);
                let families = [AF_UNSPEC, AF_INET, AF_INET6, AF_BRIDGE, libc::AF_MPLS as u8, rng.next_u64() as u8];
                b[0] = families[rng.below(families.len())];
                b.extend(random_nlas(rng, 0));
                b
            }
        }
    }

    /// Feeds 2000 inputs (or `NETSANDBOX_FUZZ_ITERS`) through the library parser (guarded) and our view (not guarded: a panic
    /// in our code fails the test). Returns the inputs on which the library itself panicked.
    fn fuzz<M, T>(
        seed: u64,
        header_len: usize,
        valid: &[Vec<u8>],
        convert: fn(&M) -> Result<T, ViewError>,
        guarded: fn(&[u8]) -> Result<T, ViewError>,
    ) -> Vec<Vec<u8>>
    where
        M: Parseable<[u8]>,
        T: PartialEq + Debug,
    {
        let mut rng = Rng(seed ^ env_u64("NETSANDBOX_FUZZ_SEED", 0));
        let mut library_panics = Vec::new();
        let mut converted = 0;
        for _ in 0..env_u64("NETSANDBOX_FUZZ_ITERS", 2000) {
            let buf = random_message(&mut rng, header_len, valid);
            let direct = match std::panic::catch_unwind(|| M::parse(&buf)) {
                Ok(Ok(msg)) => {
                    let v = convert(&msg);
                    converted += usize::from(v.is_ok());
                    Some(v)
                }
                Ok(Err(_)) => None,
                Err(_) => {
                    library_panics.push(buf.clone());
                    None
                }
            };
            let via_helper = guarded(&buf);
            if let Some(direct) = direct {
                assert_eq!(direct, via_helper);
            } else {
                assert!(via_helper.is_err());
            }
        }
        // Make sure the generator reaches the converters, not only the library's error paths.
        assert!(converted > 50, "only {converted} inputs reached a successful view");
        library_panics
    }

    /// A number from the environment, for longer fuzz runs: `NETSANDBOX_FUZZ_ITERS=1000000`.
    fn env_u64(name: &str, default: u64) -> u64 {
        std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    fn report(what: &str, panics: &[Vec<u8>]) {
        for p in panics {
            eprintln!("netlink-packet-route panicked parsing {what} input {p:02x?}");
        }
    }

    #[test]
    fn random_buffers_never_panic() {
        let links = vec![roundtrip(&veth_message()).1, {
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName("vxlan0".into()));
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(vec![InfoVxlan::Id(7)])),
            ]));
            roundtrip(&m).1
        }];
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.prefix_len = 24;
        a.attributes.push(AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        a.attributes.push(AddressAttribute::Label("eth0".into()));
        let addrs = vec![roundtrip(&a).1];
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet6;
        r.header.destination_prefix_length = 64;
        r.attributes.push(RouteAttribute::Destination(RouteAddress::Inet6("2001:db8::".parse().unwrap())));
        r.attributes.push(RouteAttribute::Table(1000));
        r.attributes.push(RouteAttribute::Oif(2));
        let routes = vec![roundtrip(&r).1];
        let mut n = NeighbourMessage::default();
        n.header.family = AddressFamily::Bridge;
        n.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Other(vec![192, 0, 2, 1])));
        n.attributes.push(NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 1]));
        n.attributes.push(NeighbourAttribute::Vni(42));
        let neighs = vec![roundtrip(&n).1];

        let l = fuzz::<LinkMessage, _>(0x9e37_79b9_7f4a_7c15, 16, &links, Link::from_message, parse_link);
        let a = fuzz::<AddressMessage, _>(0xdead_beef_cafe_f00d, 8, &addrs, Address::from_message, parse_address);
        let r = fuzz::<RouteMessage, _>(0x0123_4567_89ab_cdef, 12, &routes, Route::from_message, parse_route);
        let n = fuzz::<NeighbourMessage, _>(0xfeed_face_1234_5678, 12, &neighs, Neighbor::from_message, parse_neighbor);
        report("link", &l);
        report("address", &a);
        report("route", &r);
        report("neighbour", &n);
        eprintln!("library panics: link {}, address {}, route {}, neighbour {}", l.len(), a.len(), r.len(), n.len());
    }
}
