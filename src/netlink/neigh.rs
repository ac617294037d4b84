//! Neighbor requests: ARP/NDP entries and AF_BRIDGE forwarding-database entries.

pub(crate) mod view;

pub use view::Neighbor;

use std::net::IpAddr;

use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::consts::NUD_PERMANENT;
use super::socket::{Request, Socket};
use super::view::Family;
use super::wire::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use crate::error::{Error, Result};

/// A neighbor entry to add or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeighSpec {
    /// Interface index (for fdb entries: the VXLAN device).
    pub index: u32,
    /// For ARP/NDP: the neighbor's IP. For fdb: the remote VTEP's IP (`NDA_DST`), if any.
    pub ip: Option<IpAddr>,
    /// Link-layer address.
    pub mac: Option<[u8; 6]>,
    /// An AF_BRIDGE fdb entry instead of an ARP/NDP entry.
    pub bridge: bool,
    /// `NUD_*` state; permanent by default.
    pub state: u16,
}

impl NeighSpec {
    /// A permanent ARP/NDP entry `ip → mac` on `index`.
    pub fn arp(index: u32, ip: IpAddr, mac: [u8; 6]) -> Self {
        NeighSpec { index, ip: Some(ip), mac: Some(mac), bridge: false, state: NUD_PERMANENT }
    }
    /// A permanent fdb entry `mac → remote VTEP` on a VXLAN device.
    pub fn fdb(index: u32, mac: [u8; 6], vtep: Option<IpAddr>) -> Self {
        NeighSpec { index, ip: vtep, mac: Some(mac), bridge: true, state: NUD_PERMANENT }
    }

    fn describe(&self) -> String {
        let ip = self.ip.map(|i| i.to_string()).unwrap_or_default();
        let mac = self.mac.map(|m| crate::validate::format_mac(&m)).unwrap_or_default();
        format!("{}{ip} lladdr {mac} on ifindex {}", if self.bridge { "fdb " } else { "" }, self.index)
    }

    fn message(&self) -> Result<NeighbourMessage> {
        let mut m = NeighbourMessage::default();
        m.header.ifindex = self.index;
        m.header.state = NeighbourState::from(self.state);
        m.header.family = if self.bridge {
            m.header.flags = NeighbourFlags::Own;
            AddressFamily::Bridge
        } else {
            match self.ip {
                Some(IpAddr::V4(_)) => AddressFamily::Inet,
                Some(IpAddr::V6(_)) => AddressFamily::Inet6,
                None => {
                    return Err(Error::InvalidArgument {
                        op: "neighbor",
                        reason: "an ARP/NDP entry needs an IP address".into(),
                    });
                }
            }
        };
        if let Some(ip) = self.ip {
            m.attributes.push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
        }
        if let Some(mac) = self.mac {
            m.attributes.push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        }
        Ok(m)
    }
}

/// `RTM_NEWNEIGH`. With `replace`, an existing (e.g. learned) entry is overwritten instead of
/// failing with EEXIST.
pub fn add(spec: &NeighSpec, replace: bool) -> Result<Request> {
    if spec.mac.is_none() {
        return Err(Error::InvalidArgument { op: "add neighbor", reason: "a MAC address is required".into() });
    }
    let flags = NLM_F_CREATE | if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
    Ok(Request::new("add neighbor", spec.describe(), flags, RouteNetlinkMessage::NewNeighbour(spec.message()?)))
}

/// `RTM_DELNEIGH`.
pub fn delete(spec: &NeighSpec) -> Result<Request> {
    Ok(Request::new("delete neighbor", spec.describe(), 0, RouteNetlinkMessage::DelNeighbour(spec.message()?)))
}

/// `RTM_GETNEIGH` dump of one family (`bridge` = AF_BRIDGE fdb), optionally of one interface.
pub fn list(family: Option<Family>, index: Option<u32>) -> Request {
    let mut m = NeighbourMessage::default();
    m.header.family = family.map_or(AddressFamily::Unspec, |f| AddressFamily::from(u8::from(f)));
    if let Some(i) = index {
        m.attributes.push(NeighbourAttribute::IfIndex(i));
    }
    Request::new(
        "list neighbors",
        index.map_or("all".to_owned(), |i| format!("ifindex {i}")),
        0,
        RouteNetlinkMessage::GetNeighbour(m),
    )
}

impl Socket {
    /// Adds (or, with `replace`, overwrites) a neighbor entry.
    pub fn add_neighbor(&self, spec: &NeighSpec, replace: bool) -> Result<()> {
        self.execute(add(spec, replace)?)
    }

    /// Deletes a neighbor entry.
    pub fn delete_neighbor(&self, spec: &NeighSpec) -> Result<()> {
        self.execute(delete(spec)?)
    }

    /// Lists neighbor entries of a family (`None` = all families) and optionally one interface.
    pub fn neighbors(&self, family: Option<Family>, index: Option<u32>) -> Result<Vec<Neighbor>> {
        let mut out: Vec<Neighbor> = self.dump_views(list(family, index))?;
        out.retain(|n| index.is_none_or(|i| i == n.index));
        Ok(out)
    }
}
