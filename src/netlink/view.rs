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
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage, Prop,
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
    /// Interface alias (`IFLA_IFALIAS`), a free-form label that belongs to the user (netsandbox
    /// never writes it).
    pub alias: Option<String>,
    /// Device group (`IFLA_GROUP`); 0, the default group, when absent.
    pub group: u32,
    /// Alternative names (`IFLA_PROP_LIST` / `IFLA_ALT_IFNAME`), in the kernel's order;
    /// netsandbox keeps its bookkeeping there (see `sandbox::netns::mark`).
    pub altnames: Vec<String>,
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
        let mut alias = None;
        let mut group = 0;
        let mut altnames = Vec::new();

        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => name = Some(n.clone()),
                LinkAttribute::IfAlias(a) => alias = Some(a.clone()),
                LinkAttribute::Address(a) => mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Mtu(m) => mtu = Some(*m),
                LinkAttribute::Controller(m) => master = Some(*m),
                LinkAttribute::Link(l) => link = Some(*l),
                LinkAttribute::LinkNetNsId(id) => netnsid = Some(*id),
                LinkAttribute::Group(g) => group = *g,
                LinkAttribute::PropList(props) => altnames.extend(props.iter().filter_map(|p| match p {
                    Prop::AltIfName(n) => Some(n.clone()),
                    _ => None,
                })),
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
            alias,
            group,
            altnames,
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
    /// Who made it (`IFA_PROTO`): 1 = kernel loopback, 2 = kernel router advertisement,
    /// 3 = kernel link-local; `None` when the kernel sent no such attribute (user-added).
    pub protocol: Option<u8>,
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
        let mut protocol = None;
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Protocol(p) => protocol = Some(u8::from(*p)),
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
            protocol,
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

/// A view decoded from one kind of reply message, so the socket can turn any dump or query into
/// views with one generic helper.
pub trait FromReply: Sized {
    /// The view of `m`, or `None` when `m` is another kind of message.
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>>;
}

impl FromReply for Link {
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>> {
        match m {
            RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
            _ => None,
        }
    }
}

impl FromReply for Address {
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>> {
        match m {
            RouteNetlinkMessage::NewAddress(a) => Some(Address::from_message(a)),
            _ => None,
        }
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

impl FromReply for Neighbor {
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>> {
        match m {
            RouteNetlinkMessage::NewNeighbour(n) => Some(Neighbor::from_message(n)),
            _ => None,
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

#[cfg(test)]
mod tests {
    use std::fmt::Debug;
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use netlink_packet_core::{DefaultNla, Emitable, Parseable};
    use netlink_packet_route::AddressFamily;
    use netlink_packet_route::address::{AddressFlags, AddressHeaderFlags, AddressScope};
    use netlink_packet_route::link::{LinkLayerType, Stats, Stats64};
    use netlink_packet_route::neighbour::{NeighbourFlags, NeighbourState};
    use netlink_packet_route::route::{RouteHeader, RouteProtocol, RouteScope, RouteType};

    use super::*;
    use crate::netlink::consts::*;

    /// Serializes a message (sized with `buffer_len` first) and parses it back.
    fn roundtrip<M: Emitable + Parseable<[u8]> + Debug>(msg: &M) -> (M, Vec<u8>) {
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        let back = M::parse(&buf).expect("parse back what we emitted");
        (back, buf)
    }

    // ---- links ----

    fn veth_message() -> LinkMessage {
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

    #[test]
    fn link_veth_every_field() {
        let m = veth_message();
        let want = Link {
            index: 12,
            name: "veth0".into(),
            mac: Some([0x02, 0x42, 0xac, 0x11, 0x00, 0x02]),
            mtu: Some(1450),
            up: true,
            running: true,
            master: Some(5),
            kind: LinkKind::Veth,
            link: Some(13),
            netnsid: Some(3),
            stats: None,
            vxlan_id: None,
            alias: None,
            group: 0,
            altnames: Vec::new(),
        };
        assert_eq!(Link::from_message(&m), Ok(want.clone()));
        let (back, buf) = roundtrip(&m);
        assert_eq!(Link::from_message(&back), Ok(want.clone()));
        assert_eq!(parse_link(&buf), Ok(want));
    }

    #[test]
    fn link_down_without_carrier() {
        let mut m = veth_message();
        m.header.flags = LinkFlags::Broadcast;
        let l = Link::from_message(&m).unwrap();
        assert!(!l.up);
        assert!(!l.running);
        // IFF_UP without IFF_LOWER_UP: admin up, no carrier.
        m.header.flags = LinkFlags::Up;
        let l = Link::from_message(&m).unwrap();
        assert!(l.up);
        assert!(!l.running);
    }

    #[test]
    fn link_without_name_is_an_error() {
        let mut m = LinkMessage::default();
        m.header.index = 4;
        m.attributes.push(LinkAttribute::Mtu(1500));
        let e = Link::from_message(&m).unwrap_err();
        assert_eq!(e.what, "link");
        assert!(e.detail.contains("IFLA_IFNAME"), "{e}");
        let (_, buf) = roundtrip(&m);
        assert_eq!(parse_link(&buf), Err(e.clone()));
        let err: crate::Error = e.into();
        assert!(matches!(err, crate::Error::Protocol { op: "decode", .. }), "{err:?}");
    }

    #[test]
    fn link_vxlan_id_and_kinds() {
        let mut m = LinkMessage::default();
        m.header.index = 30;
        m.attributes.push(LinkAttribute::IfName("vxlan0".into()));
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![InfoVxlan::Id(4097), InfoVxlan::Port(4789)])),
        ]));
        let want = Link {
            index: 30,
            name: "vxlan0".into(),
            mac: None,
            mtu: None,
            up: false,
            running: false,
            master: None,
            kind: LinkKind::Vxlan,
            link: None,
            netnsid: None,
            stats: None,
            vxlan_id: Some(4097),
            alias: None,
            group: 0,
            altnames: Vec::new(),
        };
        assert_eq!(Link::from_message(&m), Ok(want.clone()));
        let (back, buf) = roundtrip(&m);
        assert_eq!(Link::from_message(&back), Ok(want.clone()));
        assert_eq!(parse_link(&buf), Ok(want));

        let kind_of = |k: InfoKind| {
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName("x".into()));
            m.attributes.push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(k)]));
            let (back, _) = roundtrip(&m);
            let direct = Link::from_message(&m).unwrap().kind;
            assert_eq!(Link::from_message(&back).unwrap().kind, direct);
            direct
        };
        assert_eq!(kind_of(InfoKind::Bridge), LinkKind::Bridge);
        assert_eq!(kind_of(InfoKind::MacVlan), LinkKind::Macvlan);
        assert_eq!(kind_of(InfoKind::Tun), LinkKind::Tun);
        assert_eq!(kind_of(InfoKind::Dummy), LinkKind::Other("dummy".into()));
        assert_eq!(kind_of(InfoKind::Other("fancy".into())), LinkKind::Other("fancy".into()));
    }

    #[test]
    fn link_loopback_and_odd_hardware_addresses() {
        let mut m = LinkMessage::default();
        m.header.index = 1;
        m.header.link_layer_type = LinkLayerType::Loopback;
        m.header.flags = LinkFlags::Up | LinkFlags::Loopback | LinkFlags::LowerUp;
        m.attributes.push(LinkAttribute::IfName("lo".into()));
        m.attributes.push(LinkAttribute::Address(vec![0; 6]));
        m.attributes.push(LinkAttribute::Mtu(65536));
        let l = Link::from_message(&m).unwrap();
        assert_eq!(l.kind, LinkKind::Loopback);
        assert_eq!(l.mac, Some([0; 6]));
        // Loopback by link-layer type, whatever the name.
        m.attributes[0] = LinkAttribute::IfName("renamed".into());
        assert_eq!(Link::from_message(&m).unwrap().kind, LinkKind::Loopback);
        // Named "lo" by name alone.
        m.header.link_layer_type = LinkLayerType::Ether;
        m.attributes[0] = LinkAttribute::IfName("lo".into());
        assert_eq!(Link::from_message(&m).unwrap().kind, LinkKind::Loopback);
        // Neither: no kind.
        m.attributes[0] = LinkAttribute::IfName("eth0".into());
        assert_eq!(Link::from_message(&m).unwrap().kind, LinkKind::None);
        // A 4-byte hardware address (ipip) is not a MAC.
        m.attributes[1] = LinkAttribute::Address(vec![10, 0, 0, 1]);
        assert_eq!(Link::from_message(&m).unwrap().mac, None);
    }

    #[test]
    fn link_stats64_preferred_over_stats32() {
        let mut s32 = Stats::default();
        s32.rx_bytes = 1;
        s32.tx_bytes = 2;
        s32.rx_packets = 3;
        s32.tx_packets = 4;
        s32.rx_errors = 5;
        s32.tx_errors = 6;
        s32.rx_dropped = 7;
        s32.tx_dropped = 8;
        let mut s64 = Stats64::default();
        s64.rx_bytes = 1 << 40;
        s64.tx_bytes = (1 << 40) + 1;
        s64.rx_packets = 30;
        s64.tx_packets = 40;
        s64.rx_errors = 50;
        s64.tx_errors = 60;
        s64.rx_dropped = 70;
        s64.tx_dropped = 80;
        let want64 = LinkStats {
            rx_bytes: 1 << 40,
            tx_bytes: (1 << 40) + 1,
            rx_packets: 30,
            tx_packets: 40,
            rx_errors: 50,
            tx_errors: 60,
            rx_dropped: 70,
            tx_dropped: 80,
        };
        let want32 = LinkStats {
            rx_bytes: 1,
            tx_bytes: 2,
            rx_packets: 3,
            tx_packets: 4,
            rx_errors: 5,
            tx_errors: 6,
            rx_dropped: 7,
            tx_dropped: 8,
        };
        for order in [
            [LinkAttribute::Stats(s32), LinkAttribute::Stats64(s64)],
            [LinkAttribute::Stats64(s64), LinkAttribute::Stats(s32)],
        ] {
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName("eth0".into()));
            m.attributes.extend(order);
            assert_eq!(Link::from_message(&m).unwrap().stats, Some(want64));
            let (_, buf) = roundtrip(&m);
            assert_eq!(parse_link(&buf).unwrap().stats, Some(want64));
        }
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName("eth0".into()));
        m.attributes.push(LinkAttribute::Stats(s32));
        assert_eq!(Link::from_message(&m).unwrap().stats, Some(want32));
        let (_, buf) = roundtrip(&m);
        assert_eq!(parse_link(&buf).unwrap().stats, Some(want32));
    }

    // ---- addresses ----

    #[test]
    fn address_v4_with_peer() {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = 32;
        m.header.flags = AddressHeaderFlags::Permanent;
        m.header.scope = AddressScope::Universe;
        m.header.index = 7;
        m.attributes.push(AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2))));
        m.attributes.push(AddressAttribute::Local(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 1))));
        m.attributes.push(AddressAttribute::Label("tun0".into()));
        let want = Address {
            index: 7,
            addr: "10.9.0.1/32".parse().unwrap(),
            peer: Some(IpAddr::V4(Ipv4Addr::new(10, 9, 0, 2))),
            label: Some("tun0".into()),
            flags: IFA_F_PERMANENT,
            scope: RT_SCOPE_UNIVERSE,
            protocol: None,
        };
        assert_eq!(Address::from_message(&m), Ok(want.clone()));
        let (back, buf) = roundtrip(&m);
        assert_eq!(Address::from_message(&back), Ok(want.clone()));
        assert_eq!(parse_address(&buf), Ok(want.clone()));
        assert!(want.is_permanent());
        assert!(!want.is_tentative());
        assert!(!want.is_nodad());
    }

    #[test]
    fn address_v4_local_equal_to_address_has_no_peer() {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = 24;
        m.header.index = 2;
        let ip = IpAddr::V4(Ipv4Addr::new(192, 168, 7, 9));
        m.attributes.push(AddressAttribute::Address(ip));
        m.attributes.push(AddressAttribute::Local(ip));
        m.attributes.push(AddressAttribute::Broadcast(Ipv4Addr::new(192, 168, 7, 255)));
        let a = Address::from_message(&m).unwrap();
        assert_eq!(a.addr, "192.168.7.9/24".parse::<IpNet>().unwrap());
        assert_eq!(a.peer, None);
        assert_eq!(a.label, None);
        assert_eq!(a.flags, 0);
    }

    #[test]
    fn address_v6_tentative_flags_attr_wins() {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet6;
        m.header.prefix_len = 64;
        m.header.flags = AddressHeaderFlags::Permanent;
        m.header.scope = AddressScope::Link;
        m.header.index = 3;
        m.attributes.push(AddressAttribute::Address(IpAddr::V6("fe80::1".parse().unwrap())));
        // An unknown bit (0x10000) must be kept raw.
        m.attributes.push(AddressAttribute::Flags(
            AddressFlags::Tentative | AddressFlags::Permanent | AddressFlags::from_bits_retain(0x1_0000),
        ));
        let want = Address {
            index: 3,
            addr: "fe80::1/64".parse().unwrap(),
            peer: None,
            label: None,
            flags: IFA_F_TENTATIVE | IFA_F_PERMANENT | 0x1_0000,
            scope: RT_SCOPE_LINK,
            protocol: None,
        };
        assert_eq!(Address::from_message(&m), Ok(want.clone()));
        let (back, buf) = roundtrip(&m);
        assert_eq!(Address::from_message(&back), Ok(want.clone()));
        assert_eq!(parse_address(&buf), Ok(want.clone()));
        assert!(want.is_tentative());
        assert!(!want.is_nodad());

        m.attributes[1] = AddressAttribute::Flags(AddressFlags::Nodad | AddressFlags::Permanent);
        let a = Address::from_message(&m).unwrap();
        assert!(a.is_nodad());
        assert!(!a.is_tentative());
        assert_eq!(a.flags, IFA_F_NODAD | IFA_F_PERMANENT);
    }

    #[test]
    fn address_errors() {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = 24;
        let e = Address::from_message(&m).unwrap_err();
        assert_eq!(e.what, "address");
        // Prefix too long for IPv4.
        m.header.prefix_len = 33;
        m.attributes.push(AddressAttribute::Address(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        assert!(Address::from_message(&m).is_err());
        let (_, buf) = roundtrip(&m);
        assert!(parse_address(&buf).is_err());
        // Family mismatch.
        m.header.prefix_len = 24;
        m.header.family = AddressFamily::Inet6;
        assert!(Address::from_message(&m).is_err());
    }

    // ---- routes ----

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

    // ---- neighbors ----

    #[test]
    fn neighbor_bridge_fdb_vxlan() {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = 30;
        m.header.state = NeighbourState::Permanent;
        m.header.flags = NeighbourFlags::Own;
        m.attributes.push(NeighbourAttribute::LinkLayerAddress(vec![0x02, 0, 0, 0, 0, 0x07]));
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(Ipv4Addr::new(192, 0, 2, 7))));
        m.attributes.push(NeighbourAttribute::Vni(4097));
        let want = Neighbor {
            index: 30,
            family: NeighFamily::Bridge,
            ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7))),
            mac: Some([0x02, 0, 0, 0, 0, 0x07]),
            state: NUD_PERMANENT,
            flags: NTF_SELF,
            vni: Some(4097),
            master: None,
        };
        assert_eq!(Neighbor::from_message(&m), Ok(want.clone()));
        // Parsed back with family AF_BRIDGE, NDA_DST arrives as raw bytes.
        let (back, buf) = roundtrip(&m);
        assert!(
            back.attributes.iter().any(|a| matches!(a, NeighbourAttribute::Destination(NeighbourAddress::Other(_))))
        );
        assert_eq!(Neighbor::from_message(&back), Ok(want.clone()));
        assert_eq!(parse_neighbor(&buf), Ok(want.clone()));
        assert!(want.is_permanent());

        // IPv6 VTEP.
        m.attributes[1] = NeighbourAttribute::Destination(NeighbourAddress::Other(
            "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets().to_vec(),
        ));
        assert_eq!(Neighbor::from_message(&m).unwrap().ip, Some(IpAddr::V6("2001:db8::7".parse().unwrap())));
        // Neither 4 nor 16 bytes: an error.
        m.attributes[1] = NeighbourAttribute::Destination(NeighbourAddress::Other(vec![1, 2, 3]));
        assert_eq!(Neighbor::from_message(&m).unwrap_err().what, "neighbor");
    }

    #[test]
    fn neighbor_arp_with_master_and_raw_state() {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.ifindex = 4;
        m.header.state = NeighbourState::from(NUD_PERMANENT | NUD_NOARP);
        m.header.flags = NeighbourFlags::Controller | NeighbourFlags::from_bits_retain(0x80);
        m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::Inet(Ipv4Addr::new(172, 17, 0, 3))));
        m.attributes.push(NeighbourAttribute::LinkLayerAddress(vec![0x02, 0x42, 0xac, 0x11, 0, 3]));
        m.attributes.push(NeighbourAttribute::Controller(9));
        let want = Neighbor {
            index: 4,
            family: NeighFamily::Inet,
            ip: Some(IpAddr::V4(Ipv4Addr::new(172, 17, 0, 3))),
            mac: Some([0x02, 0x42, 0xac, 0x11, 0, 3]),
            state: NUD_PERMANENT | NUD_NOARP,
            flags: NTF_MASTER | NTF_ROUTER,
            vni: None,
            master: Some(9),
        };
        assert_eq!(Neighbor::from_message(&m), Ok(want.clone()));
        let (back, buf) = roundtrip(&m);
        assert_eq!(Neighbor::from_message(&back), Ok(want.clone()));
        assert_eq!(parse_neighbor(&buf), Ok(want.clone()));
        assert!(want.is_permanent());

        m.header.state = NeighbourState::Reachable;
        assert!(!Neighbor::from_message(&m).unwrap().is_permanent());
    }

    #[test]
    fn neigh_family_roundtrip() {
        for raw in 0..=u8::MAX {
            assert_eq!(u8::from(NeighFamily::from(raw)), raw);
        }
        assert_eq!(NeighFamily::from(AF_INET6), NeighFamily::Inet6);
        assert_eq!(NeighFamily::from(99), NeighFamily::Unknown(99));
    }

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
                let families = [AF_UNSPEC, AF_INET, AF_INET6, AF_BRIDGE, 28 /* MPLS */, rng.next_u64() as u8];
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
