//! [`NetnsSandbox::inspect`]: the whole kernel picture of the namespace, read in four dumps.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{Live, NetnsSandbox};
use crate::error::Result;
use crate::netlink::consts::{NTF_SELF, NUD_NOARP, RT_TABLE_MAIN};
use crate::netlink::{self as view, LinkKind};
use crate::sandbox::bridge::kind_name;
use crate::sandbox::inspect::{
    AddressDetail, Inspection, LinkDetail, LinkPeer, NeighborDetail, OperState, RouteDetail,
};

impl NetnsSandbox {
    /// Everything the kernel holds in the sandbox's namespace — every link with its state, kind,
    /// peer and addresses (link-local ones flagged), the main routing table, the neighbor
    /// tables — as `ip -d link`, `ip addr`, `ip route` and `ip neigh` would show it there.
    /// Read-only. See [`Inspection`] for how it differs from [`info`](crate::sandbox::Sandbox::info).
    pub fn inspect(&self) -> Result<Inspection> {
        self.with(read)
    }
}

fn read(live: &Live) -> Result<Inspection> {
    // One raw dump gives both our view of each link and the attribute the view leaves out.
    let mut links = Vec::new();
    for (l, oper) in live.sock.links_with_oper_state()? {
        links.push((l, OperState::from_raw(oper)));
    }
    links.sort_by_key(|(l, _)| l.index);
    let names: HashMap<u32, String> = links.iter().map(|(l, _)| (l.index, l.name.clone())).collect();
    let name_of = |i: Option<u32>| i.and_then(|i| names.get(&i).cloned());

    let mut addrs = live.sock.addresses(None, None)?;
    addrs.sort_by_key(|a| (a.addr.addr().is_ipv6(), a.addr));

    let mut routes = Vec::new();
    for v6 in [false, true] {
        for r in live.sock.routes_in(v6, RT_TABLE_MAIN)? {
            if r.table != RT_TABLE_MAIN {
                continue;
            }
            routes.push(RouteDetail {
                dst: r.dst,
                gateway: r.gateway,
                dev: name_of(r.oif),
                metric: r.priority,
                protocol: r.protocol,
                scope: r.scope,
                kind: r.kind,
                prefsrc: r.prefsrc,
            });
        }
    }

    let mut neigh = live.sock.neighbors(None, None)?;
    if links.iter().any(|(l, _)| l.kind == LinkKind::Vxlan) {
        neigh.extend(live.sock.neighbors(Some(view::Family::Bridge), None)?);
    }
    let mut neighbors = Vec::new();
    for n in neigh {
        let family = match n.family {
            view::Family::Inet => "inet",
            view::Family::Inet6 => "inet6",
            // fdb entries that map a MAC to a remote VTEP (the overlay's), not the bridge's own.
            view::Family::Bridge if n.flags & NTF_SELF != 0 && n.ip.is_some() => "bridge",
            _ => continue,
        };
        // `ip neigh` hides NOARP entries (multicast, loopback); so do we.
        if family != "bridge" && n.state & NUD_NOARP != 0 {
            continue;
        }
        let Some(dev) = names.get(&n.index).cloned() else { continue };
        neighbors.push(NeighborDetail { ip: n.ip, mac: n.mac, dev, family, state: n.state });
    }

    let links = links
        .into_iter()
        .map(|(l, oper_state)| LinkDetail {
            addresses: addrs.iter().filter(|a| a.index == l.index).map(address_detail).collect(),
            index: l.index,
            kind: kind_name(&l.kind),
            up: l.up,
            lower_up: l.running,
            oper_state,
            mac: l.mac,
            mtu: l.mtu,
            master: name_of(l.master),
            peer: l.link.map(|index| LinkPeer { index, netnsid: l.netnsid }),
            vxlan_id: l.vxlan_id,
            stats: l.stats.unwrap_or_default().into(),
            name: l.name,
        })
        .collect();
    Ok(Inspection { links, routes, neighbors })
}

fn address_detail(a: &view::Address) -> AddressDetail {
    let link_local = match a.addr.addr() {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    AddressDetail {
        addr: a.addr,
        scope: a.scope,
        flags: a.flags,
        link_local,
        // IFA_PROTO 1..=3: kernel loopback, router advertisement, kernel link-local.
        kernel_made: matches!(a.protocol, Some(1..=3)),
    }
}
