//! The [`Neighbor`] view: a checked, plain-data ARP/NDP or FDB entry decoded from `RTM_NEWNEIGH`.

use std::net::IpAddr;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage};

use crate::netlink::consts::NUD_PERMANENT;
#[cfg(any(test, feature = "fuzzing"))]
use crate::netlink::view::parse_guarded;
use crate::netlink::view::{Family, FromReply, ViewError, family_matches, ip_from_bytes};

/// A neighbor (ARP/NDP) entry or a bridge/VXLAN FDB entry (`RTM_NEWNEIGH`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Neighbor {
    /// Index of the interface (`ndm_ifindex`).
    pub index: u32,
    /// Family of the entry.
    pub family: Family,
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
    pub(crate) fn from_message(msg: &NeighbourMessage) -> Result<Neighbor, ViewError> {
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
            family: Family::from(family),
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

impl FromReply for Neighbor {
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>> {
        match m {
            RouteNetlinkMessage::NewNeighbour(n) => Some(Neighbor::from_message(n)),
            _ => None,
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
/// Parses the body of an `RTM_NEWNEIGH` message (the `ndmsg` and its attributes) into a
/// [`Neighbor`]. Never panics.
pub fn parse_neighbor(buf: &[u8]) -> Result<Neighbor, ViewError> {
    parse_guarded::<NeighbourMessage, _>("neighbor", buf, Neighbor::from_message)
}

#[cfg(test)]
mod tests {

    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use netlink_packet_route::AddressFamily;

    use netlink_packet_route::neighbour::{NeighbourFlags, NeighbourState};

    use super::*;
    use crate::netlink::consts::*;
    use crate::netlink::view::testutil::*;

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
            family: Family::Bridge,
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
            family: Family::Inet,
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
            assert_eq!(u8::from(Family::from(raw)), raw);
        }
        assert_eq!(Family::from(AF_INET6), Family::Inet6);
        assert_eq!(Family::from(99), Family::Unknown(99));
    }
}
