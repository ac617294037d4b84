//! The [`Address`] view: a checked, plain-data interface address decoded from `RTM_NEWADDR`.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use crate::netlink::consts::{IFA_F_NODAD, IFA_F_PERMANENT, IFA_F_TENTATIVE};
#[cfg(any(test, feature = "fuzzing"))]
use crate::netlink::view::parse_guarded;
use crate::netlink::view::{FromReply, ViewError, family_matches};

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
    pub(crate) fn from_message(msg: &AddressMessage) -> Result<Address, ViewError> {
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

impl FromReply for Address {
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>> {
        match m {
            RouteNetlinkMessage::NewAddress(a) => Some(Address::from_message(a)),
            _ => None,
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
/// Parses the body of an `RTM_NEWADDR` message (the `ifaddrmsg` and its attributes) into an
/// [`Address`]. Never panics.
pub fn parse_address(buf: &[u8]) -> Result<Address, ViewError> {
    parse_guarded::<AddressMessage, _>("address", buf, Address::from_message)
}

#[cfg(test)]
mod tests {

    use std::net::{IpAddr, Ipv4Addr};

    use netlink_packet_route::AddressFamily;
    use netlink_packet_route::address::{AddressFlags, AddressHeaderFlags, AddressScope};

    use super::*;
    use crate::netlink::consts::*;
    use crate::netlink::view::testutil::*;

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
}
