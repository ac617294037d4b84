//! Typed, checked views ("Reprs") of decoded rtnetlink messages.
//!
//! netlink-packet-route gives us the byte-level decoding: [`LinkMessage`], [`AddressMessage`],
//! [`RouteMessage`] and [`NeighbourMessage`], each a header plus a list of attributes. The types
//! here are the meaningful values built from those messages — [`Link`], [`Address`], [`Route`],
//! [`Neighbor`] — plain data with public fields that compare with `==`, so tests and `restore`
//! can work with them directly.
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
use std::panic::{self, AssertUnwindSafe};

use ipnet::IpNet;
use netlink_packet_core::Parseable;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage,
};
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteVia};

use super::consts::{AF_BRIDGE, AF_INET, AF_INET6, IFA_F_NODAD, IFA_F_PERMANENT, IFA_F_TENTATIVE, NUD_PERMANENT};

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

// ---------------------------------------------------------------------------------------------
// Links
// ---------------------------------------------------------------------------------------------

/// Interface counters (`IFLA_STATS64`, or `IFLA_STATS` widened when only that was sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct LinkStats {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bad packets received.
    pub rx_errors: u64,
    /// Packet transmit problems.
    pub tx_errors: u64,
    /// Received packets dropped (no buffer space, ...).
    pub rx_dropped: u64,
    /// Transmitted packets dropped.
    pub tx_dropped: u64,
}

/// The kind of a link, from `IFLA_LINKINFO`/`IFLA_INFO_KIND`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkKind {
    /// `veth`: one end of a virtual Ethernet pair.
    Veth,
    /// `bridge`.
    Bridge,
    /// `macvlan`.
    Macvlan,
    /// `vxlan`.
    Vxlan,
    /// The loopback device (no link kind; named `lo` or of type `ARPHRD_LOOPBACK`).
    Loopback,
    /// `tun` (tun or tap).
    Tun,
    /// Any other kind, as the kernel names it (`"dummy"`, `"vlan"`, `"wireguard"`, ...).
    Other(String),
    /// No kind given: a physical device, or a message without `IFLA_LINKINFO`.
    None,
}

/// A network interface (`RTM_NEWLINK`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Link {
    /// Interface index (`ifi_index`).
    pub index: u32,
    /// Interface name (`IFLA_IFNAME`); a message without one is rejected.
    pub name: String,
    /// Hardware address (`IFLA_ADDRESS`) when it is 6 bytes long. Devices with other
    /// hardware-address lengths (IP tunnels: 4 or 16, IPoIB: 20) or none (tun) give `None`.
    pub mac: Option<[u8; 6]>,
    /// MTU (`IFLA_MTU`).
    pub mtu: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// The driver signals carrier (`IFF_LOWER_UP`).
    pub running: bool,
    /// Index of the master device, e.g. the bridge this port belongs to (`IFLA_MASTER`).
    pub master: Option<u32>,
    /// Link kind.
    pub kind: LinkKind,
    /// Index of the underlying or peer link (`IFLA_LINK`); for a veth, the peer's index,
    /// which lives in the namespace named by [`netnsid`](Self::netnsid) when that is set.
    pub link: Option<u32>,
    /// Namespace id of the namespace holding the peer/underlying link (`IFLA_LINK_NETNSID`).
    pub netnsid: Option<i32>,
    /// Counters: `IFLA_STATS64` when present, else `IFLA_STATS`.
    pub stats: Option<LinkStats>,
    /// VXLAN network identifier (`IFLA_VXLAN_ID`) of a vxlan device.
    pub vxlan_id: Option<u32>,
}

impl Link {
    /// Builds the view of a decoded link message.
    ///
    /// Fails only when the message has no `IFLA_IFNAME`.
    pub fn from_message(msg: &LinkMessage) -> Result<Link, ViewError> {
        let mut name = None;
        let mut mac = None;
        let mut mtu = None;
        let mut master = None;
        let mut info_kind = None;
        let mut link = None;
        let mut netnsid = None;
        let mut stats64 = None;
        let mut stats32 = None;
        let mut vxlan_id = None;

        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(m) => mtu = Some(*m),
                LinkAttribute::Controller(m) => master = Some(*m),
                LinkAttribute::Link(l) => link = Some(*l),
                LinkAttribute::LinkNetNsId(id) => netnsid = Some(*id),
                LinkAttribute::Stats64(s) => {
                    stats64 = Some(LinkStats {
                        rx_bytes: s.rx_bytes,
                        tx_bytes: s.tx_bytes,
                        rx_packets: s.rx_packets,
                        tx_packets: s.tx_packets,
                        rx_errors: s.rx_errors,
                        tx_errors: s.tx_errors,
                        rx_dropped: s.rx_dropped,
                        tx_dropped: s.tx_dropped,
                    })
                }
                LinkAttribute::Stats(s) => {
                    stats32 = Some(LinkStats {
                        rx_bytes: s.rx_bytes.into(),
                        tx_bytes: s.tx_bytes.into(),
                        rx_packets: s.rx_packets.into(),
                        tx_packets: s.tx_packets.into(),
                        rx_errors: s.rx_errors.into(),
                        tx_errors: s.tx_errors.into(),
                        rx_dropped: s.rx_dropped.into(),
                        tx_dropped: s.tx_dropped.into(),
                    })
                }
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(k) => info_kind = Some(link_kind(k)),
                            LinkInfo::Data(InfoData::Vxlan(data)) => {
                                for d in data {
                                    if let InfoVxlan::Id(id) = d {
                                        vxlan_id = Some(*id);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }

        let Some(name) = name else {
            return Err(ViewError::new("link", format!("index {}: no IFLA_IFNAME", msg.header.index)));
        };
        let kind = match info_kind {
            Some(k) => k,
            None if name == "lo" || msg.header.link_layer_type == LinkLayerType::Loopback => LinkKind::Loopback,
            None => LinkKind::None,
        };
        let flags = msg.header.flags;
        Ok(Link {
            index: msg.header.index,
            name,
            mac,
            mtu,
            up: flags.contains(LinkFlags::Up),
            running: flags.contains(LinkFlags::LowerUp),
            master,
            kind,
            link,
            netnsid,
            stats: stats64.or(stats32),
            vxlan_id,
        })
    }
}

fn link_kind(k: &InfoKind) -> LinkKind {
    match k {
        InfoKind::Veth => LinkKind::Veth,
        InfoKind::Bridge => LinkKind::Bridge,
        InfoKind::MacVlan => LinkKind::Macvlan,
        InfoKind::Vxlan => LinkKind::Vxlan,
        InfoKind::Tun => LinkKind::Tun,
        InfoKind::Other(s) => LinkKind::Other(s.clone()),
        // Display gives the kernel's own name for every known kind ("dummy", "vlan", ...).
        other => LinkKind::Other(other.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

/// An interface address (`RTM_NEWADDR`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    /// Index of the interface holding the address (`ifa_index`).
    pub index: u32,
    /// The local address with the prefix length from the header (`ifa_prefixlen`): `IFA_LOCAL`
    /// when present, else `IFA_ADDRESS`.
    pub addr: IpNet,
    /// The peer of a point-to-point address: `IFA_ADDRESS` when it differs from `IFA_LOCAL`.
    pub peer: Option<IpAddr>,
    /// The label (`IFA_LABEL`, IPv4 only), e.g. `eth0:1`.
    pub label: Option<String>,
    /// `IFA_F_*` flags: the 32-bit `IFA_FLAGS` attribute when present, else the 8-bit header
    /// flags.
    pub flags: u32,
    /// Scope (`ifa_scope`, raw `RT_SCOPE_*`).
    pub scope: u8,
}

impl Address {
    /// Builds the view of a decoded address message.
    ///
    /// Fails when the message has neither `IFA_LOCAL` nor `IFA_ADDRESS`, when an address's
    /// family contradicts the header's, or when the prefix length is too long for the address.
    pub fn from_message(msg: &AddressMessage) -> Result<Address, ViewError> {
        let h = &msg.header;
        let mut local = None;
        let mut address = None;
        let mut label = None;
        let mut flags = None;
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => address = Some(*ip),
                AddressAttribute::Label(l) => label = Some(l.clone()),
                AddressAttribute::Flags(f) => flags = Some(f.bits()),
                _ => {}
            }
        }
        let err = |detail: String| ViewError::new("address", format!("index {}: {detail}", h.index));
        let (ip, peer) = match (local, address) {
            (Some(l), Some(a)) if l != a => (l, Some(a)),
            (Some(l), _) => (l, None),
            (None, Some(a)) => (a, None),
            (None, None) => return Err(err("neither IFA_LOCAL nor IFA_ADDRESS".into())),
        };
        let family = u8::from(h.family);
        for a in std::iter::once(ip).chain(peer) {
            if !family_matches(family, a) {
                return Err(err(format!("address {a} does not match family {family}")));
            }
        }
        let addr = IpNet::new(ip, h.prefix_len)
            .map_err(|_| err(format!("prefix length {} too long for {ip}", h.prefix_len)))?;
        Ok(Address {
            index: h.index,
            addr,
            peer,
            label,
            flags: flags.unwrap_or(u32::from(h.flags.bits())),
            scope: h.scope.into(),
        })
    }

    /// IPv6 duplicate address detection has not finished (`IFA_F_TENTATIVE`): the address
    /// cannot be bound yet.
    pub fn is_tentative(&self) -> bool {
        self.flags & IFA_F_TENTATIVE != 0
    }

    /// The address was added without duplicate address detection (`IFA_F_NODAD`).
    pub fn is_nodad(&self) -> bool {
        self.flags & IFA_F_NODAD != 0
    }

    /// The address was configured, not autoconfigured (`IFA_F_PERMANENT`).
    pub fn is_permanent(&self) -> bool {
        self.flags & IFA_F_PERMANENT != 0
    }
}

/// True when `ip` can belong to a message of address family `family` (a family other than
/// `AF_INET`/`AF_INET6` accepts both).
fn family_matches(family: u8, ip: IpAddr) -> bool {
    match family {
        AF_INET => ip.is_ipv4(),
        AF_INET6 => ip.is_ipv6(),
        _ => true,
    }
}

/// Reads an IP address from raw bytes: 4 bytes are IPv4, 16 bytes IPv6.
fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(b) {
        Some(IpAddr::V4(Ipv4Addr::from(v4)))
    } else if let Ok(v6) = <[u8; 16]>::try_from(b) {
        Some(IpAddr::V6(Ipv6Addr::from(v6)))
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------------

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
    pub fn from_message(msg: &RouteMessage) -> Result<Route, ViewError> {
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

// ---------------------------------------------------------------------------------------------
// Neighbors
// ---------------------------------------------------------------------------------------------

/// Address family of a neighbor entry (`ndm_family`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighFamily {
    /// `AF_INET`: an ARP entry.
    Inet,
    /// `AF_INET6`: an NDP entry.
    Inet6,
    /// `AF_BRIDGE`: a forwarding-database (FDB) entry of a bridge or VXLAN device.
    Bridge,
    /// Any other family, raw. [`NeighFamily::from`] never produces `Unknown(2)`, `Unknown(7)` or
    /// `Unknown(10)`.
    Unknown(u8),
}

impl From<u8> for NeighFamily {
    fn from(v: u8) -> Self {
        match v {
            AF_INET => NeighFamily::Inet,
            AF_INET6 => NeighFamily::Inet6,
            AF_BRIDGE => NeighFamily::Bridge,
            other => NeighFamily::Unknown(other),
        }
    }
}

impl From<NeighFamily> for u8 {
    fn from(v: NeighFamily) -> u8 {
        match v {
            NeighFamily::Inet => AF_INET,
            NeighFamily::Inet6 => AF_INET6,
            NeighFamily::Bridge => AF_BRIDGE,
            NeighFamily::Unknown(other) => other,
        }
    }
}

/// A neighbor (ARP/NDP) entry or a bridge/VXLAN FDB entry (`RTM_NEWNEIGH`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Neighbor {
    /// Index of the interface (`ndm_ifindex`).
    pub index: u32,
    /// Family of the entry.
    pub family: NeighFamily,
    /// `NDA_DST`: the neighbor's IP for ARP/NDP; for a VXLAN FDB entry, the remote VTEP.
    pub ip: Option<IpAddr>,
    /// `NDA_LLADDR` when it is 6 bytes long (other lengths, e.g. IP tunnels, give `None`).
    pub mac: Option<[u8; 6]>,
    /// State (`ndm_state`, raw `NUD_*`).
    pub state: u16,
    /// Flags (`ndm_flags`, raw `NTF_*`).
    pub flags: u8,
    /// VXLAN network identifier (`NDA_VNI`).
    pub vni: Option<u32>,
    /// Master device index (`NDA_MASTER`), e.g. the bridge of an FDB entry.
    pub master: Option<u32>,
}

impl Neighbor {
    /// Builds the view of a decoded neighbor message.
    ///
    /// Fails when `NDA_DST` is neither 4 nor 16 bytes long or contradicts the header's family.
    pub fn from_message(msg: &NeighbourMessage) -> Result<Neighbor, ViewError> {
        let h = &msg.header;
        let family = u8::from(h.family);
        let err = |detail: String| ViewError::new("neighbor", format!("index {}: {detail}", h.ifindex));
        let mut ip = None;
        let mut mac = None;
        let mut vni = None;
        let mut master = None;
        for attr in &msg.attributes {
            match attr {
                NeighbourAttribute::Destination(d) => {
                    let a = match d {
                        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
                        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
                        NeighbourAddress::Other(b) => ip_from_bytes(b),
                        _ => None,
                    };
                    match a {
                        Some(a) if family_matches(family, a) => ip = Some(a),
                        Some(a) => return Err(err(format!("NDA_DST {a} does not match family {family}"))),
                        None => return Err(err(format!("NDA_DST is not an IP address: {d:?}"))),
                    }
                }
                NeighbourAttribute::LinkLayerAddress(l) => mac = <[u8; 6]>::try_from(l.as_slice()).ok(),
                NeighbourAttribute::Vni(v) => vni = Some(*v),
                NeighbourAttribute::Controller(m) => master = Some(*m),
                _ => {}
            }
        }
        Ok(Neighbor {
            index: h.ifindex,
            family: NeighFamily::from(family),
            ip,
            mac,
            state: h.state.into(),
            flags: h.flags.bits(),
            vni,
            master,
        })
    }

    /// A static entry (`NUD_PERMANENT`).
    pub fn is_permanent(&self) -> bool {
        self.state & NUD_PERMANENT != 0
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing from bytes
// ---------------------------------------------------------------------------------------------

/// Parses a message body with netlink-packet-route and converts it; a panic inside the
/// library is caught and reported as a [`ViewError`].
fn parse_guarded<M, T>(what: &'static str, buf: &[u8], convert: fn(&M) -> Result<T, ViewError>) -> Result<T, ViewError>
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

/// Parses the body of an `RTM_NEWLINK` message (the `ifinfomsg` and its attributes, without the
/// `nlmsghdr`) into a [`Link`]. Never panics.
pub fn parse_link(buf: &[u8]) -> Result<Link, ViewError> {
    parse_guarded::<LinkMessage, _>("link", buf, Link::from_message)
}

/// Parses the body of an `RTM_NEWADDR` message (the `ifaddrmsg` and its attributes) into an
/// [`Address`]. Never panics.
pub fn parse_address(buf: &[u8]) -> Result<Address, ViewError> {
    parse_guarded::<AddressMessage, _>("address", buf, Address::from_message)
}

/// Parses the body of an `RTM_NEWROUTE` message (the `rtmsg` and its attributes) into a
/// [`Route`]. Never panics.
pub fn parse_route(buf: &[u8]) -> Result<Route, ViewError> {
    parse_guarded::<RouteMessage, _>("route", buf, Route::from_message)
}

/// Parses the body of an `RTM_NEWNEIGH` message (the `ndmsg` and its attributes) into a
/// [`Neighbor`]. Never panics.
pub fn parse_neighbor(buf: &[u8]) -> Result<Neighbor, ViewError> {
    parse_guarded::<NeighbourMessage, _>("neighbor", buf, Neighbor::from_message)
}
