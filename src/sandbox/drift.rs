//! Drift detection: what changed in the kernel since the engine saved a sandbox's
//! [`SandboxInfo`] (an address removed, a link downed, a route added by hand, ...).
//!
//! [`compare`] is pure: saved snapshot, current snapshot and the interfaces found down give the
//! list of differences, in a stable order. [`detect`] reads the current state of a
//! [`NetnsSandbox`] from the kernel and compares.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::info::{InterfaceInfo, NeighborInfo, SandboxInfo};
use super::options::StaticRoute;
use super::{NetnsSandbox, Sandbox};
use crate::error::Result;

/// One difference between what the engine saved and what the kernel holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Drift {
    /// A saved interface is gone.
    InterfaceMissing {
        /// Its name.
        name: String,
    },
    /// An interface the engine does not know about.
    InterfaceAdded {
        /// Its name.
        name: String,
    },
    /// A saved interface (which the sandbox brought up) is administratively down.
    InterfaceDown {
        /// Its name.
        name: String,
    },
    /// A saved address is gone (`lo` for a loopback VIP).
    AddressRemoved {
        /// The interface.
        interface: String,
        /// The address.
        addr: IpNet,
    },
    /// An address the engine did not add.
    AddressAdded {
        /// The interface.
        interface: String,
        /// The address.
        addr: IpNet,
    },
    /// MTU differs.
    MtuChanged {
        /// The interface.
        interface: String,
        /// Saved.
        saved: Option<u32>,
        /// Now.
        now: Option<u32>,
    },
    /// MAC address differs.
    MacChanged {
        /// The interface.
        interface: String,
        /// Saved.
        saved: Option<[u8; 6]>,
        /// Now.
        now: Option<[u8; 6]>,
    },
    /// Master bridge differs.
    MasterChanged {
        /// The interface.
        interface: String,
        /// Saved.
        saved: Option<String>,
        /// Now.
        now: Option<String>,
    },
    /// A route added for an interface is gone.
    InterfaceRouteRemoved {
        /// The interface.
        interface: String,
        /// The destination.
        dst: IpNet,
    },
    /// An IPv4 or IPv6 default gateway differs.
    GatewayChanged {
        /// Saved.
        saved: Option<IpAddr>,
        /// Now.
        now: Option<IpAddr>,
    },
    /// A saved static route is gone.
    RouteRemoved(StaticRoute),
    /// A route the engine did not add (e.g. by hand with `ip route add`).
    RouteAdded(StaticRoute),
    /// A saved neighbor entry is gone.
    NeighborRemoved(NeighborInfo),
    /// A neighbor entry the engine did not add.
    NeighborAdded(NeighborInfo),
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mac = |m: &Option<[u8; 6]>| m.map_or("none".to_owned(), |m| crate::validate::format_mac(&m));
        match self {
            Drift::InterfaceMissing { name } => write!(f, "interface {name} is missing"),
            Drift::InterfaceAdded { name } => write!(f, "interface {name} was added"),
            Drift::InterfaceDown { name } => write!(f, "interface {name} is down"),
            Drift::AddressRemoved { interface, addr } => write!(f, "address {addr} removed from {interface}"),
            Drift::AddressAdded { interface, addr } => write!(f, "address {addr} added to {interface}"),
            Drift::MtuChanged { interface, saved, now } => write!(f, "mtu of {interface}: {saved:?} -> {now:?}"),
            Drift::MacChanged { interface, saved, now } => {
                write!(f, "mac of {interface}: {} -> {}", mac(saved), mac(now))
            }
            Drift::MasterChanged { interface, saved, now } => {
                write!(f, "master of {interface}: {saved:?} -> {now:?}")
            }
            Drift::InterfaceRouteRemoved { interface, dst } => write!(f, "route {dst} of {interface} removed"),
            Drift::GatewayChanged { saved, now } => write!(f, "gateway: {saved:?} -> {now:?}"),
            Drift::RouteRemoved(r) => write!(f, "route {r:?} removed"),
            Drift::RouteAdded(r) => write!(f, "route {r:?} added"),
            Drift::NeighborRemoved(n) => write!(f, "neighbor {} on {} removed", n.ip, n.link_name),
            Drift::NeighborAdded(n) => write!(f, "neighbor {} on {} added", n.ip, n.link_name),
        }
    }
}

/// The differences from `saved` to `now`, `down` naming the interfaces found administratively
/// down now. Sorted; empty when nothing drifted.
pub fn compare(saved: &SandboxInfo, now: &SandboxInfo, down: &[String]) -> Vec<Drift> {
    let mut out = Vec::new();
    let find = |list: &'_ [InterfaceInfo], name: &str| list.iter().position(|i| i.name == name);
    for s in &saved.interfaces {
        let Some(i) = find(&now.interfaces, &s.name) else {
            out.push(Drift::InterfaceMissing { name: s.name.clone() });
            continue;
        };
        let n = &now.interfaces[i];
        let name = || s.name.clone();
        if down.contains(&s.name) {
            out.push(Drift::InterfaceDown { name: name() });
        }
        sets(
            &s.addresses,
            &n.addresses,
            &mut out,
            |addr| Drift::AddressRemoved { interface: name(), addr },
            |addr| Drift::AddressAdded { interface: name(), addr },
        );
        for dst in &s.routes {
            if !n.routes.contains(dst) {
                out.push(Drift::InterfaceRouteRemoved { interface: name(), dst: *dst });
            }
        }
        if s.mtu != n.mtu {
            out.push(Drift::MtuChanged { interface: name(), saved: s.mtu, now: n.mtu });
        }
        if s.mac != n.mac {
            out.push(Drift::MacChanged { interface: name(), saved: s.mac, now: n.mac });
        }
        if s.master != n.master {
            out.push(Drift::MasterChanged { interface: name(), saved: s.master.clone(), now: n.master.clone() });
        }
    }
    for n in &now.interfaces {
        if find(&saved.interfaces, &n.name).is_none() {
            out.push(Drift::InterfaceAdded { name: n.name.clone() });
        }
    }
    if down.iter().any(|d| d == "lo") {
        out.push(Drift::InterfaceDown { name: "lo".into() });
    }
    let lo = || "lo".to_owned();
    sets(
        &saved.loopback_addresses,
        &now.loopback_addresses,
        &mut out,
        |addr| Drift::AddressRemoved { interface: lo(), addr },
        |addr| Drift::AddressAdded { interface: lo(), addr },
    );
    if saved.gateway != now.gateway {
        out.push(Drift::GatewayChanged { saved: saved.gateway.map(IpAddr::V4), now: now.gateway.map(IpAddr::V4) });
    }
    if saved.gateway6 != now.gateway6 {
        out.push(Drift::GatewayChanged { saved: saved.gateway6.map(IpAddr::V6), now: now.gateway6.map(IpAddr::V6) });
    }
    sets(&saved.static_routes, &now.static_routes, &mut out, Drift::RouteRemoved, Drift::RouteAdded);
    sets(&saved.neighbors, &now.neighbors, &mut out, Drift::NeighborRemoved, Drift::NeighborAdded);
    out.sort();
    out
}

fn sets<T: Ord + Clone>(
    saved: &[T],
    now: &[T],
    out: &mut Vec<Drift>,
    removed: impl Fn(T) -> Drift,
    added: impl Fn(T) -> Drift,
) {
    let s: BTreeSet<&T> = saved.iter().collect();
    let n: BTreeSet<&T> = now.iter().collect();
    out.extend(s.difference(&n).map(|t| removed((*t).clone())));
    out.extend(n.difference(&s).map(|t| added((*t).clone())));
}

/// Reads `sb` from the kernel and compares it with `saved` (see [`compare`]).
pub fn detect(sb: &NetnsSandbox, saved: &SandboxInfo) -> Result<Vec<Drift>> {
    let now = sb.info()?;
    let links = sb.with_netns(|ns| crate::netns::socket_in(ns).and_then(|s| s.links()))??;
    let down: Vec<String> = links.into_iter().filter(|l| !l.up).map(|l| l.name).collect();
    Ok(compare(saved, &now, &down))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, addrs: &[&str]) -> InterfaceInfo {
        InterfaceInfo {
            name: name.into(),
            origin_name: None,
            created: true,
            mac: Some([2, 0, 0, 0, 0, 1]),
            mtu: Some(1500),
            master: None,
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            routes: Vec::new(),
        }
    }

    fn info(ifaces: Vec<InterfaceInfo>) -> SandboxInfo {
        SandboxInfo {
            key: "/k".into(),
            interfaces: ifaces,
            gateway: None,
            gateway6: None,
            static_routes: Vec::new(),
            neighbors: Vec::new(),
            loopback_addresses: Vec::new(),
        }
    }

    #[test]
    fn no_drift_when_equal() {
        let a = info(vec![iface("eth0", &["198.51.100.2/24"])]);
        assert!(compare(&a, &a.clone(), &[]).is_empty());
    }

    #[test]
    fn each_kind_of_drift() {
        let saved = info(vec![iface("eth0", &["198.51.100.2/24"]), iface("eth1", &[])]);
        let mut now = info(vec![iface("eth0", &["198.51.100.3/24"]), iface("eth2", &[])]);
        now.interfaces[0].mtu = Some(1400);
        now.gateway = Some("198.51.100.1".parse().unwrap());
        let hand =
            StaticRoute { dst: "203.0.113.0/24".parse().unwrap(), gateway: None, interface: Some("eth0".into()) };
        now.static_routes.push(hand.clone());
        let d = compare(&saved, &now, &["eth0".into()]);
        let expect = [
            Drift::InterfaceMissing { name: "eth1".into() },
            Drift::InterfaceAdded { name: "eth2".into() },
            Drift::InterfaceDown { name: "eth0".into() },
            Drift::AddressRemoved { interface: "eth0".into(), addr: "198.51.100.2/24".parse().unwrap() },
            Drift::AddressAdded { interface: "eth0".into(), addr: "198.51.100.3/24".parse().unwrap() },
            Drift::MtuChanged { interface: "eth0".into(), saved: Some(1500), now: Some(1400) },
            Drift::GatewayChanged { saved: None, now: Some("198.51.100.1".parse().unwrap()) },
            Drift::RouteAdded(hand),
        ];
        for e in &expect {
            assert!(d.contains(e), "missing {e}: {d:?}");
        }
        assert_eq!(d.len(), expect.len(), "{d:?}");
    }
}
