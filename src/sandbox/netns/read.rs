//! Reading a sandbox back from the kernel: what `info`, `interfaces` and `restore` return.
//!
//! Pure kernel state plus the bookkeeping recorded in altnames (`mark`), so two processes
//! reading the same namespace get equal snapshots.

use std::collections::HashMap;
use std::net::IpAddr;

use super::iface::{is_default_loopback, is_kernel_address, is_kernel_route};
use super::mark::{self, Origin};
use super::{Live, RTPROT_NETSANDBOX_IFACE};
use crate::error::Result;
use crate::netlink::consts::{NTF_SELF, NUD_NOARP, NUD_PERMANENT, RT_TABLE_MAIN, RTN_UNICAST};
use crate::netlink::neigh::NeighSpec;
use crate::netlink::{self as view, LinkKind};
use crate::sandbox::info::{InterfaceInfo, NeighborInfo, SandboxInfo};
use crate::sandbox::options::{NeighFamily, StaticRoute};

pub(super) fn snapshot(live: &Live, key: &str) -> Result<SandboxInfo> {
    let links = live.sock.links()?;
    let names: HashMap<u32, &str> = links.iter().map(|l| (l.index, l.name.as_str())).collect();
    let addrs = live.sock.addresses(None, None)?;
    let mut routes = live.sock.routes(false)?;
    routes.extend(live.sock.routes(true)?);
    routes.retain(|r| r.table == RT_TABLE_MAIN && r.kind == RTN_UNICAST && !is_kernel_route(r.protocol));

    let mut info = SandboxInfo {
        key: key.to_owned(),
        interfaces: Vec::new(),
        gateway: None,
        gateway6: None,
        static_routes: Vec::new(),
        neighbors: neighbors_of(live, &links)?.into_iter().map(|(n, _)| n).collect(),
        loopback_addresses: Vec::new(),
    };
    for l in &links {
        let mine = |a: &&view::Address| a.index == l.index && !is_kernel_address(a);
        if l.kind == LinkKind::Loopback || l.name == crate::sandbox::check::LOOPBACK {
            info.loopback_addresses =
                addrs.iter().filter(mine).map(|a| a.addr).filter(|a| !is_default_loopback(a)).collect();
            info.loopback_addresses.sort();
            continue;
        }
        let mut addresses: Vec<_> = addrs.iter().filter(mine).map(|a| a.addr).collect();
        addresses.sort();
        let mut iroutes: Vec<_> = routes
            .iter()
            .filter(|r| r.protocol == RTPROT_NETSANDBOX_IFACE && r.oif == Some(l.index))
            .map(|r| r.dst)
            .collect();
        iroutes.sort();
        info.interfaces.push(InterfaceInfo {
            name: l.name.clone(),
            origin_name: Origin::find(&l.altnames).map(|(o, _)| o.name),
            created: mark::is_created(&l.altnames),
            mac: l.mac,
            mtu: l.mtu,
            master: l.master.and_then(|m| names.get(&m)).map(|s| (*s).to_owned()),
            addresses,
            routes: iroutes,
        });
    }
    info.interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    for r in &routes {
        if r.protocol == RTPROT_NETSANDBOX_IFACE {
            continue;
        }
        if r.is_default() {
            match r.gateway {
                Some(IpAddr::V4(g)) => info.gateway = Some(g),
                Some(IpAddr::V6(g)) => info.gateway6 = Some(g),
                None => {}
            }
            continue;
        }
        info.static_routes.push(StaticRoute {
            dst: r.dst,
            gateway: r.gateway,
            interface: if r.gateway.is_none() {
                r.oif.and_then(|o| names.get(&o)).map(|s| (*s).to_owned())
            } else {
                None
            },
        });
    }
    info.static_routes.sort();
    info.neighbors.sort();
    Ok(info)
}

pub(super) fn neighbors(live: &Live) -> Result<Vec<(NeighborInfo, NeighSpec)>> {
    neighbors_of(live, &live.sock.links()?)
}

/// Permanent ARP/NDP entries, and permanent fdb entries with a remote VTEP on VXLAN devices.
fn neighbors_of(live: &Live, links: &[view::Link]) -> Result<Vec<(NeighborInfo, NeighSpec)>> {
    let mut out = Vec::new();
    let mut all = live.sock.neighbors(None, None)?;
    // An AF_UNSPEC dump covers ARP and NDP only; fdb entries need their own dump.
    if links.iter().any(|l| l.kind == LinkKind::Vxlan) {
        all.extend(live.sock.neighbors(Some(view::Family::Bridge), None)?);
    }
    for n in all {
        let (Some(ip), Some(mac)) = (n.ip, n.mac) else { continue };
        if n.state & NUD_PERMANENT == 0 || n.state & NUD_NOARP != 0 || mac == [0; 6] {
            continue;
        }
        let Some(link) = links.iter().find(|l| l.index == n.index) else { continue };
        let family = match n.family {
            view::Family::Inet | view::Family::Inet6 => NeighFamily::Ip,
            view::Family::Bridge if n.flags & NTF_SELF != 0 && link.kind == LinkKind::Vxlan => NeighFamily::Bridge,
            _ => continue,
        };
        let spec = match family {
            NeighFamily::Ip => NeighSpec::arp(n.index, ip, mac),
            NeighFamily::Bridge => NeighSpec::fdb(n.index, mac, Some(ip)),
        };
        out.push((NeighborInfo { ip, mac, link_name: link.name.clone(), family }, spec));
    }
    Ok(out)
}
