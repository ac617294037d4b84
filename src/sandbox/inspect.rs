//! [`Inspection`]: everything the kernel holds in a sandbox's namespace, as `ip -d link`,
//! `ip addr`, `ip route` and `ip neigh` would show it — every link (the loopback too), every
//! address (link-local ones flagged), every route of the main table with its device, metric,
//! protocol and scope, every neighbor entry with its state.
//!
//! Unlike [`SandboxInfo`](super::SandboxInfo), which is the engine's stable view (what `restore`
//! reproduces, comparable with `==` across processes), an inspection includes volatile kernel
//! state: operational state, counters, learned neighbors.

use std::net::IpAddr;

use ipnet::IpNet;

use super::info::Statistics;

/// Operational state of a link (`IFLA_OPERSTATE`, RFC 2863), as iproute2 names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OperState {
    /// `UNKNOWN` (e.g. the loopback, which reports no state).
    Unknown,
    /// `NOTPRESENT`.
    NotPresent,
    /// `DOWN`.
    Down,
    /// `LOWERLAYERDOWN` (e.g. a veth whose peer is down).
    LowerLayerDown,
    /// `TESTING`.
    Testing,
    /// `DORMANT`.
    Dormant,
    /// `UP`.
    Up,
    /// A value this crate does not know, raw.
    Other(u8),
}

impl OperState {
    /// From the kernel's `IF_OPER_*` number.
    pub fn from_raw(v: u8) -> OperState {
        match v {
            0 => OperState::Unknown,
            1 => OperState::NotPresent,
            2 => OperState::Down,
            3 => OperState::LowerLayerDown,
            4 => OperState::Testing,
            5 => OperState::Dormant,
            6 => OperState::Up,
            v => OperState::Other(v),
        }
    }

    /// iproute2's name (`ip -j link` `operstate`).
    pub fn name(&self) -> String {
        match self {
            OperState::Unknown => "UNKNOWN".into(),
            OperState::NotPresent => "NOTPRESENT".into(),
            OperState::Down => "DOWN".into(),
            OperState::LowerLayerDown => "LOWERLAYERDOWN".into(),
            OperState::Testing => "TESTING".into(),
            OperState::Dormant => "DORMANT".into(),
            OperState::Up => "UP".into(),
            OperState::Other(v) => v.to_string(),
        }
    }
}

/// The other end of a veth (or the underlying device of a macvlan/vxlan): `IFLA_LINK` and
/// `IFLA_LINK_NETNSID`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkPeer {
    /// Its interface index, in the namespace named by `netnsid` (or this one when `None`).
    pub index: u32,
    /// The id this namespace gives the peer's namespace (`ip netns list-id`), when it is another.
    pub netnsid: Option<i32>,
}

/// One address on a link, as `ip addr` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressDetail {
    /// The address with its prefix length.
    pub addr: IpNet,
    /// Scope (raw `RT_SCOPE_*`: 0 global, 253 link, 254 host).
    pub scope: u8,
    /// `IFA_F_*` flags.
    pub flags: u32,
    /// Link-local (169.254.0.0/16 or fe80::/10).
    pub link_local: bool,
    /// Made by the kernel (its IPv6 link-local address, router advertisements, the loopback's),
    /// not by netsandbox or the user (`IFA_PROTO`).
    pub kernel_made: bool,
}

impl AddressDetail {
    /// Added without duplicate address detection (`IFA_F_NODAD`).
    pub fn nodad(&self) -> bool {
        self.flags & crate::netlink::consts::IFA_F_NODAD != 0
    }
    /// Duplicate address detection still running (`IFA_F_TENTATIVE`): not usable yet.
    pub fn tentative(&self) -> bool {
        self.flags & crate::netlink::consts::IFA_F_TENTATIVE != 0
    }
}

/// One link in the namespace, as `ip -d link` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkDetail {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Kind as the kernel names it (`IFLA_INFO_KIND`: `veth`, `bridge`, `macvlan`, `vxlan`,
    /// `tun`, ...); `loopback` for lo, `none` for a device without one.
    pub kind: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Carrier (`IFF_LOWER_UP`).
    pub lower_up: bool,
    /// Operational state.
    pub oper_state: OperState,
    /// MAC address (6-byte hardware addresses only).
    pub mac: Option<[u8; 6]>,
    /// MTU.
    pub mtu: Option<u32>,
    /// The master's name (a bridge), when it is in this namespace.
    pub master: Option<String>,
    /// For a veth: its peer (index and namespace id); for macvlan/vxlan: the underlying device.
    pub peer: Option<LinkPeer>,
    /// VXLAN network identifier of a vxlan device.
    pub vxlan_id: Option<u32>,
    /// Every address on it, link-local ones included (flagged).
    pub addresses: Vec<AddressDetail>,
    /// Counters.
    pub stats: Statistics,
}

/// One route of the main table (IPv4 or IPv6), as `ip route` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteDetail {
    /// Destination (`0.0.0.0/0` / `::/0` for a default route).
    pub dst: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output device name (also for routes via a gateway and default routes).
    pub dev: Option<String>,
    /// Metric (`RTA_PRIORITY`).
    pub metric: Option<u32>,
    /// Who installed it (raw `RTPROT_*`: 2 kernel, 4 static, 0xb0/0xb1 netsandbox, ...).
    pub protocol: u8,
    /// Scope (raw `RT_SCOPE_*`).
    pub scope: u8,
    /// Route type (raw `RTN_*`: 1 unicast, 6 blackhole, ...).
    pub kind: u8,
    /// Preferred source address.
    pub prefsrc: Option<IpAddr>,
}

/// One neighbor entry (ARP, NDP, or an fdb entry of a vxlan device), as `ip neigh` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NeighborDetail {
    /// The IP (or the remote VTEP of an fdb entry).
    pub ip: Option<IpAddr>,
    /// The MAC address, when known.
    pub mac: Option<[u8; 6]>,
    /// Device name.
    pub dev: String,
    /// `inet`, `inet6` or `bridge` (fdb).
    pub family: &'static str,
    /// State (raw `NUD_*` bits).
    pub state: u16,
}

impl NeighborDetail {
    /// The state bits by iproute2's names (`ip -j neigh` `state`), e.g. `["PERMANENT"]`.
    pub fn state_names(&self) -> Vec<&'static str> {
        const NAMES: [(u16, &str); 8] = [
            (0x01, "INCOMPLETE"),
            (0x02, "REACHABLE"),
            (0x04, "STALE"),
            (0x08, "DELAY"),
            (0x10, "PROBE"),
            (0x20, "FAILED"),
            (0x40, "NOARP"),
            (0x80, "PERMANENT"),
        ];
        if self.state == 0 {
            return vec!["NONE"];
        }
        NAMES.iter().filter(|(bit, _)| self.state & bit != 0).map(|(_, n)| *n).collect()
    }
}

/// Everything in a sandbox's namespace (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Every link, the loopback included, by index.
    pub links: Vec<LinkDetail>,
    /// The main table, IPv4 then IPv6.
    pub routes: Vec<RouteDetail>,
    /// ARP and NDP entries (without `NOARP` ones, as `ip neigh` hides them) and vxlan fdb
    /// entries with a remote VTEP.
    pub neighbors: Vec<NeighborDetail>,
}

/// iproute2's name for a route protocol, when it has one.
pub fn protocol_name(p: u8) -> Option<&'static str> {
    Some(match p {
        0 => "unspec",
        1 => "redirect",
        2 => "kernel",
        3 => "boot",
        4 => "static",
        9 => "ra",
        _ => return None,
    })
}

/// iproute2's name for a scope.
pub fn scope_name(s: u8) -> String {
    match s {
        0 => "global".into(),
        200 => "site".into(),
        253 => "link".into(),
        254 => "host".into(),
        255 => "nowhere".into(),
        s => s.to_string(),
    }
}

/// iproute2's name for a route type.
pub fn route_type_name(t: u8) -> String {
    const NAMES: [&str; 12] = [
        "none",
        "unicast",
        "local",
        "broadcast",
        "anycast",
        "multicast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
        "nat",
        "xresolve",
    ];
    NAMES.get(usize::from(t)).map_or_else(|| t.to_string(), |n| (*n).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(OperState::from_raw(6).name(), "UP");
        assert_eq!(OperState::from_raw(3).name(), "LOWERLAYERDOWN");
        assert_eq!(OperState::from_raw(42), OperState::Other(42));
        let n = NeighborDetail { ip: None, mac: None, dev: "eth0".into(), family: "inet", state: 0x82 };
        assert_eq!(n.state_names(), ["REACHABLE", "PERMANENT"]);
        assert_eq!(NeighborDetail { state: 0, ..n }.state_names(), ["NONE"]);
        assert_eq!(protocol_name(2), Some("kernel"));
        assert_eq!(protocol_name(0xb1), None);
        assert_eq!(scope_name(253), "link");
        assert_eq!(route_type_name(6), "blackhole");
        assert_eq!(route_type_name(99), "99");
    }
}
