//! Plain-data snapshots of a sandbox, comparable with `==` (what `restore` must reproduce).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::options::{NeighFamily, StaticRoute};
use crate::netlink::LinkStats;

/// One interface inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceInfo {
    /// Name inside the sandbox (prefix + index, e.g. `eth0`).
    pub name: String,
    /// Name it had in its origin namespace, restored on removal (recorded on the link as an
    /// altname, so any process reads it back); `None` for a link the sandbox created or one it
    /// did not add (an adopted namespace's own).
    pub origin_name: Option<String>,
    /// True when the sandbox created this interface (a bridge, or a veth born inside).
    pub created: bool,
    /// MAC address.
    pub mac: Option<[u8; 6]>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Master bridge name inside the sandbox.
    pub master: Option<String>,
    /// Addresses (v4 and v6, global scope, sorted), excluding kernel-made IPv6 link-local ones.
    pub addresses: Vec<IpNet>,
    /// Routes added for this interface (scope link), sorted.
    pub routes: Vec<IpNet>,
}

/// One neighbor entry programmed in a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighborInfo {
    /// The IP (ARP/NDP) or remote VTEP (fdb).
    pub ip: IpAddr,
    /// The MAC address.
    pub mac: [u8; 6],
    /// Interface inside the sandbox.
    pub link_name: String,
    /// ARP/NDP or fdb.
    pub family: NeighFamily,
}

/// Everything a sandbox holds, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    /// The key (pin path).
    pub key: String,
    /// Interfaces, sorted by name (loopback excluded).
    pub interfaces: Vec<InterfaceInfo>,
    /// IPv4 default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// IPv6 default gateway.
    pub gateway6: Option<Ipv6Addr>,
    /// Static routes, sorted.
    pub static_routes: Vec<StaticRoute>,
    /// Neighbor entries, sorted.
    pub neighbors: Vec<NeighborInfo>,
    /// Addresses on the loopback besides 127.0.0.1/8 and ::1 (load-balancer VIPs), sorted.
    pub loopback_addresses: Vec<IpNet>,
}

/// What [`Sandbox::apply_os_tweaks`](super::Sandbox::apply_os_tweaks) did, key by key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TweakReport {
    /// Keys written because their value differed.
    pub written: Vec<String>,
    /// Keys that already had the wanted value.
    pub unchanged: Vec<String>,
    /// Keys this kernel does not have (e.g. IPVS keys without the ip_vs module): skipped.
    pub missing: Vec<String>,
    /// Keys that could not be written (read-only /proc/sys): skipped.
    pub read_only: Vec<String>,
}

/// An interface's counters, as [`Sandbox::statistics`](super::Sandbox::statistics) reports them.
/// Since the interface was created; the kernel's 64-bit counters (`IFLA_STATS64`), or its 32-bit
/// ones widened where only those exist.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Statistics {
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

impl From<LinkStats> for Statistics {
    fn from(s: LinkStats) -> Self {
        let LinkStats { rx_bytes, tx_bytes, rx_packets, tx_packets, rx_errors, tx_errors, rx_dropped, tx_dropped } = s;
        Statistics { rx_bytes, tx_bytes, rx_packets, tx_packets, rx_errors, tx_errors, rx_dropped, tx_dropped }
    }
}
