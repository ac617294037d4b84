//! The [`Link`] view: a checked, plain-data interface decoded from `RTM_NEWLINK`.

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkLayerType, LinkMessage, Prop,
};

#[cfg(any(test, feature = "fuzzing"))]
use crate::netlink::view::parse_guarded;
use crate::netlink::view::{FromReply, ViewError};

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
    pub(crate) fn from_message(msg: &LinkMessage) -> Result<Link, ViewError> {
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

impl FromReply for Link {
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>> {
        match m {
            RouteNetlinkMessage::NewLink(l) => Some(Link::from_message(l)),
            _ => None,
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
/// Parses the body of an `RTM_NEWLINK` message (the `ifinfomsg` and its attributes, without the
/// `nlmsghdr`) into a [`Link`]. Never panics.
pub fn parse_link(buf: &[u8]) -> Result<Link, ViewError> {
    parse_guarded::<LinkMessage, _>("link", buf, Link::from_message)
}

#[cfg(test)]
mod tests {

    use netlink_packet_route::link::{LinkLayerType, Stats, Stats64};

    use super::*;
    use crate::netlink::view::testutil::*;

    /// `m` decodes to `want` directly, after an emit/parse round trip, and through `parse_link`.
    fn assert_decodes(m: &LinkMessage, want: Link) {
        assert_eq!(Link::from_message(m), Ok(want.clone()));
        let (back, buf) = roundtrip(m);
        assert_eq!(Link::from_message(&back), Ok(want.clone()));
        assert_eq!(parse_link(&buf), Ok(want));
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
        assert_decodes(&m, want);
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
        assert_decodes(&m, want);

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
}
