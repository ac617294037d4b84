//! Adding and removing interfaces: the move/rename/configure sequence and its rollback.

use std::net::IpAddr;
use std::os::fd::AsFd;

use ipnet::IpNet;
use log::{debug, warn};

use super::{Live, NetnsSandbox, RTPROT_NETSANDBOX_IFACE};
use crate::error::{Error, Result};
use crate::netlink::addr::{self, AddrOptions};
use crate::netlink::consts::{RT_TABLE_MAIN, RTPROT_KERNEL};
use crate::netlink::link::{self, LinkChange, LinkRef, VethPeer};
use crate::netlink::route::{self, RouteSpec};
use crate::netlink::view::{FromReply, Link, LinkKind};
use crate::netlink::wire::NLM_F_ECHO;
use crate::netlink::{BatchMode, Request};
use crate::sandbox::options::IfaceOptions;
use crate::{sysctl, validate};

/// Alias marking a link the sandbox moved in; the origin name follows.
pub(super) const ORIGIN_PREFIX: &str = "netsandbox origin=";
/// Alias marking a link the sandbox created (bridge, veth born inside).
pub(super) const CREATED: &str = "netsandbox created";

/// Where the interface comes from.
pub(super) enum Source<'a> {
    /// An existing link in the origin namespace, moved in.
    Move(&'a str),
    /// A new veth pair with this host-side name; the sandbox end is born inside.
    Veth(&'a str),
}

/// What a link looked like in its origin namespace, to put it back exactly on failure.
struct Origin {
    name: String,
    mac: Option<[u8; 6]>,
    mtu: Option<u32>,
}

pub(super) fn add(
    sb: &NetnsSandbox,
    live: &Live,
    src: Source<'_>,
    prefix: &str,
    opts: &IfaceOptions,
) -> Result<String> {
    match src {
        Source::Move(n) if !opts.bridge => validate::ifname(n)?,
        Source::Veth(n) => validate::ifname(n)?,
        Source::Move(_) => {}
    }
    validate::ifname_prefix(prefix)?;
    opts.check()?;
    if opts.host_master.is_some() && (opts.bridge || !matches!(src, Source::Veth(_))) {
        return Err(Error::InvalidArgument {
            op: "add interface",
            reason: "host_master is for add_veth: only a veth leaves an end in the origin namespace".into(),
        });
    }
    let _serial = sb.ifaces.lock();

    let name = free_name(live, prefix)?;
    let master = match &opts.master {
        Some(m) => {
            let l = sb.link(live, m).map_err(|e| match e {
                Error::NotFound { .. } => Error::NotFound { kind: "bridge", name: m.clone() },
                e => e,
            })?;
            if l.kind != LinkKind::Bridge {
                return Err(Error::InvalidArgument {
                    op: "add interface",
                    reason: format!("master {m} is not a bridge"),
                });
            }
            Some(l.index)
        }
        None => None,
    };
    if let Some(v4) = opts.address {
        check_route_conflict(live, &v4)?;
    }
    let host_master = match &opts.host_master {
        Some(br) => Some(crate::sandbox::bridge::bridge_link(&sb.host.sock, br)?.index),
        None => None,
    };

    // Bring the link in: create it inside, or move it (renamed on the way, in one request).
    let (index, origin) = match src {
        _ if opts.bridge => {
            live.sock.execute(link::create_bridge(&name)?)?;
            (live.sock.link(LinkRef::Name(&name))?.index, None)
        }
        Source::Veth(host_name) => {
            let ns = live.ns()?;
            let peer = VethPeer {
                name: name.clone(),
                mac: opts.mac,
                mtu: opts.mtu,
                netns: Some(ns.as_fd()),
                // The host end can be born up (only the peer cannot): saves a request. Not when
                // it must never get a link-local address: that mode can only be set once it exists.
                host_up: !opts.no_host_link_local,
                // Joins the bridge in the creating request: no window in which it is loose.
                host_master,
                ..Default::default()
            };
            let mut req = link::create_veth(host_name, opts.mtu, &peer)?;
            // Ask for the new host end back: its IFLA_LINK is the peer's index inside, which
            // saves a lookup in the sandbox.
            req.flags |= NLM_F_ECHO;
            // The name may still be held by the host end of a sandbox destroyed a moment ago
            // that the kernel has not reaped yet: that one is moved out of the way (`reap`).
            let echoed = match sb.host.sock.query(req.clone()) {
                Err(e) if e.is_already_exists() && super::reap::unblock_name(&sb.host, host_name) => {
                    sb.host.sock.query(req)
                }
                r => r,
            };
            let echoed = echoed.map_err(|e| {
                if e.is_already_exists() {
                    Error::AlreadyExists { kind: "link", name: host_name.to_owned() }
                } else {
                    e
                }
            })?;
            let host_end =
                echoed.iter().filter_map(Link::from_reply).filter_map(|r| r.ok()).find(|l| l.name == host_name);
            let peer_index = host_end.as_ref().and_then(|l| l.link);
            let ready = host_end_without_link_local(sb, host_name, opts.no_host_link_local)
                .and_then(|()| host_end_hairpin(sb, host_name, opts.host_hairpin))
                .and_then(|()| peer_index.map_or_else(|| live.sock.link(LinkRef::Name(&name)).map(|l| l.index), Ok));
            match ready {
                Ok(index) => (index, None),
                Err(e) => {
                    let _ = sb.host.sock.delete_link(LinkRef::Name(host_name));
                    return Err(e);
                }
            }
        }
        Source::Move(src_name) => {
            let l = sb.host.sock.link(LinkRef::Name(src_name))?;
            let ns = live.ns()?;
            let mv =
                LinkChange::new().up(false).netns(ns.as_fd()).name(&name).alias(&format!("{ORIGIN_PREFIX}{src_name}"));
            if let Err(e) = sb.host.sock.set_link(LinkRef::Index(l.index), &mv) {
                undo_partial_move(&live.sock, l.index, src_name, LinkChange::new().up(l.up).netns(sb.host.ns.as_fd()));
                return Err(e);
            }
            let origin = Origin { name: src_name.to_owned(), mac: l.mac, mtu: l.mtu };
            match live.sock.link(LinkRef::Name(&name)) {
                Ok(inside) => (inside.index, Some(origin)),
                Err(e) => {
                    warn!("{}: moved {src_name} in but cannot find it as {name}: {e}", sb.key);
                    return Err(e);
                }
            }
        }
    };

    // A veth peer is born with its MAC and MTU: setting them again is kernel work (address
    // change notifiers) for nothing.
    let born_configured = matches!(src, Source::Veth(_)) && !opts.bridge;
    match configure(live, index, master, opts, &name, origin.is_none(), born_configured) {
        Ok(()) => {
            debug!("{}: added {name}", sb.key);
            Ok(name)
        }
        Err(e) => {
            rollback(sb, live, index, &name, origin.as_ref(), &src);
            Err(e)
        }
    }
}

/// For [`IfaceOptions::host_link_local`]`(false)`: the host end was born down; its link-local
/// address generation is switched off before it comes up, in one send.
fn host_end_without_link_local(sb: &NetnsSandbox, host_name: &str, wanted: bool) -> Result<()> {
    if !wanted {
        return Ok(());
    }
    let host = LinkRef::Name(host_name);
    let reqs = [LinkChange::new().ipv6_link_local(false).request(host)?, LinkChange::new().up(true).request(host)?];
    sb.host.sock.batch(&reqs, BatchMode::StopAtFirstError)?.into_result()
}

/// For [`IfaceOptions::host_hairpin`]: the port mode can only be set once the host end is a
/// bridge port, so after the creating request.
fn host_end_hairpin(sb: &NetnsSandbox, host_name: &str, wanted: bool) -> Result<()> {
    if !wanted {
        return Ok(());
    }
    sb.host.sock.set_link(LinkRef::Name(host_name), &LinkChange::new().hairpin(true))
}

/// `prefix` + the lowest index not used by a link inside. The first candidate is free in the
/// common case (a sandbox's first interface of that kind): one lookup answers that, instead of a
/// dump of every link with all its attributes and statistics.
fn free_name(live: &Live, prefix: &str) -> Result<String> {
    let first = format!("{prefix}0");
    if first.len() <= validate::IFNAME_MAX {
        match live.sock.link(LinkRef::Name(&first)) {
            Err(Error::NotFound { .. }) => return Ok(first),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    lowest_free(&live.sock.links()?, prefix)
}

/// `prefix` + the lowest index not used by a link in `links`.
fn lowest_free(links: &[Link], prefix: &str) -> Result<String> {
    (0..4096)
        .map(|i| format!("{prefix}{i}"))
        .find(|n| n.len() <= validate::IFNAME_MAX && !links.iter().any(|l| &l.name == n))
        .ok_or_else(|| Error::InvalidArgument {
            op: "add interface",
            reason: format!("no free name with prefix {prefix}"),
        })
}

/// libnetwork refuses an IPv4 address whose subnet overlaps an existing route.
fn check_route_conflict(live: &Live, net: &IpNet) -> Result<()> {
    let subnet = net.trunc();
    for r in live.sock.routes_in(false, RT_TABLE_MAIN)? {
        if r.table != RT_TABLE_MAIN || r.is_default() {
            continue;
        }
        if r.dst.contains(&subnet.network()) || subnet.contains(&r.dst.network()) {
            return Err(Error::InvalidArgument {
                op: "add interface",
                reason: format!("address {net} conflicts with existing route {}", r.dst),
            });
        }
    }
    Ok(())
}

/// Everything after the link is inside, as one batch: set attributes, addresses, up, routes.
fn configure(
    live: &Live,
    index: u32,
    master: Option<u32>,
    opts: &IfaceOptions,
    name: &str,
    created: bool,
    born_configured: bool,
) -> Result<()> {
    // Per-interface sysctls first, so settings such as accept_dad or disable_ipv6 are in force
    // before the link comes up.
    if !opts.sysctls.is_empty() {
        let keys: Vec<(String, &str)> = opts
            .sysctls
            .iter()
            .map(|(k, v)| {
                let (fam, rest) = k.split_at(4);
                (format!("net/{fam}/conf/{name}{rest}"), v.as_str())
            })
            .collect();
        let pairs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        sysctl::apply_all(Some(&live.ns()?), &pairs)?;
    }
    // One request sets MAC, MTU, master and alias and brings the link up (the kernel applies
    // them in that order); addresses and routes follow. All go in one send: on any failure the
    // caller rolls the whole interface back, so later requests need not be held back.
    let mut change = LinkChange::new().up(true);
    if let Some(mac) = opts.mac.filter(|_| !born_configured) {
        change = change.mac(mac);
    }
    if let Some(mtu) = opts.mtu.filter(|_| !born_configured) {
        change = change.mtu(mtu);
    }
    if let Some(m) = master {
        change = change.master(m);
    }
    if created {
        change = change.alias(CREATED);
    }
    let mut reqs: Vec<Request> = vec![change.request(LinkRef::Index(index))?];
    let nodad = AddrOptions { nodad: true, ..Default::default() };
    if let Some(a) = opts.address {
        reqs.push(addr::add(index, &a, AddrOptions::default())?);
    }
    if let Some(a) = opts.address_ipv6 {
        reqs.push(addr::add(index, &a, nodad)?);
    }
    for ll in &opts.link_local {
        reqs.push(addr::add(index, ll, if ll.addr().is_ipv6() { nodad } else { AddrOptions::default() })?);
    }
    for dst in &opts.routes {
        let mut r = RouteSpec::new(*dst).dev(index);
        r.protocol = Some(RTPROT_NETSANDBOX_IFACE);
        reqs.push(route::add(&r, false)?);
    }
    live.sock.batch(&reqs, BatchMode::Continue)?.into_result()?;
    Ok(())
}

/// Undoes a failed add: a created link is deleted; a moved one goes back to its origin with its
/// name, MAC and MTU. Errors are logged: the caller reports the original failure.
fn rollback(sb: &NetnsSandbox, live: &Live, index: u32, name: &str, origin: Option<&Origin>, src: &Source<'_>) {
    let result = match (origin, src) {
        (Some(o), _) => {
            let mut back = LinkChange::new().up(false).master(0).alias("").name(&o.name).netns(sb.host.ns.as_fd());
            if let Some(mac) = o.mac {
                back = back.mac(mac);
            }
            if let Some(mtu) = o.mtu {
                back = back.mtu(mtu);
            }
            back.request(LinkRef::Index(index)).and_then(|r| live.sock.execute(r))
        }
        (None, Source::Veth(host_name)) => sb.host.sock.delete_link(LinkRef::Name(host_name)),
        (None, _) => live.sock.delete_link(LinkRef::Index(index)),
    };
    match result {
        Ok(()) => debug!("{}: rolled back {name}", sb.key),
        Err(e) => warn!("{}: rollback of {name} failed: {e}", sb.key),
    }
}

pub(super) fn remove(sb: &NetnsSandbox, live: &Live, name: &str) -> Result<()> {
    let _serial = sb.ifaces.lock();
    let l = sb.link(live, name)?;
    if l.kind == LinkKind::Loopback || l.index == 1 {
        return Err(Error::InvalidArgument { op: "remove interface", reason: "the loopback cannot be removed".into() });
    }
    let origin = l.alias.as_deref().and_then(|a| a.strip_prefix(ORIGIN_PREFIX));
    match origin {
        Some(orig) => {
            let taken = || Error::AlreadyExists { kind: "link", name: orig.to_owned() };
            if sb.host.sock.link(LinkRef::Name(orig)).is_ok() {
                return Err(taken());
            }
            // Down, out of any bridge, alias cleared, renamed and moved home in one request;
            // the kernel drops its addresses and routes on the way out.
            let back = LinkChange::new().up(false).master(0).alias("").name(orig).netns(sb.host.ns.as_fd());
            live.sock.set_link(LinkRef::Index(l.index), &back).map_err(|e| {
                let ns = live.ns();
                if let (Ok(ns), Some(alias)) = (&ns, l.alias.as_deref()) {
                    let mut home = LinkChange::new().up(l.up).alias(alias).netns(ns.as_fd());
                    if let Some(m) = l.master {
                        home = home.master(m);
                    }
                    undo_partial_move(&sb.host.sock, l.index, name, home);
                }
                if e.is_already_exists() { taken() } else { e }
            })
        }
        None if l.alias.as_deref() == Some(CREATED) || l.kind == LinkKind::Bridge => {
            live.sock.delete_link(LinkRef::Index(l.index))
        }
        None => {
            // Origin unknown (not added by netsandbox): return it under its own name.
            let back = LinkChange::new().up(false).master(0).netns(sb.host.ns.as_fd());
            live.sock.set_link(LinkRef::Index(l.index), &back)
        }
    }?;
    debug!("{}: removed {name}", sb.key);
    Ok(())
}

/// For `destroy`: every link but the loopback leaves the namespace, in two batches. Links with
/// an origin whose name is free there go back to it; everything else, and any move-back the
/// kernel refuses, is deleted. Failures are logged: the namespace is going away regardless.
pub(super) fn evacuate(sb: &NetnsSandbox, live: &Live, links: &[Link]) {
    let mut moves = Vec::new();
    let mut deletes = Vec::new();
    for l in links.iter().filter(|l| l.kind != LinkKind::Loopback && l.name != "lo") {
        let origin = l.alias.as_deref().and_then(|a| a.strip_prefix(ORIGIN_PREFIX));
        let home = origin.filter(|o| sb.host.sock.link(LinkRef::Name(o)).is_err()).and_then(|o| {
            LinkChange::new()
                .up(false)
                .master(0)
                .alias("")
                .name(o)
                .netns(sb.host.ns.as_fd())
                .request(LinkRef::Index(l.index))
                .ok()
        });
        match home {
            Some(req) => moves.push((l.index, req)),
            None => deletes.extend(link::delete(LinkRef::Index(l.index)).ok()),
        }
    }
    if !moves.is_empty() {
        let reqs: Vec<Request> = moves.iter().map(|(_, r)| r.clone()).collect();
        match live.sock.batch(&reqs, BatchMode::Continue) {
            Ok(report) => {
                for ((index, _), outcome) in moves.iter().zip(&report.outcomes) {
                    if !outcome.is_applied() {
                        deletes.extend(link::delete(LinkRef::Index(*index)).ok());
                    }
                }
            }
            Err(e) => warn!("{}: returning links to their origin failed: {e}", sb.key),
        }
    }
    if !deletes.is_empty()
        && let Err(e) = live.sock.batch(&deletes, BatchMode::Continue).and_then(|r| r.into_result())
    {
        debug!("{}: a link could not be deleted ({e}); it goes with the namespace", sb.key);
    }
}

/// A move with a rename is not atomic in the kernel: the link can cross over under its old name
/// and then fail the rename. If link `index` now sits in the namespace of `landed` still named
/// `old_name`, `back` returns it (and restores what the request changed). Errors are logged.
fn undo_partial_move(landed: &crate::netlink::Socket, index: u32, old_name: &str, back: LinkChange<'_>) {
    match landed.link(LinkRef::Index(index)) {
        Ok(l) if l.name == old_name => match landed.set_link(LinkRef::Index(index), &back) {
            Ok(()) => debug!("moved {old_name} back after a failed move"),
            Err(e) => warn!("{old_name} crossed namespaces in a failed move and could not be returned: {e}"),
        },
        _ => {}
    }
}

/// True for kernel-made routes (subnet routes of addresses, IPv6 link-local, RA).
pub(super) fn is_kernel_route(protocol: u8) -> bool {
    protocol == RTPROT_KERNEL || protocol == 9 /* RTPROT_RA */ || protocol == 1 /* redirect */
}

/// True for IPs the kernel adds on its own to loopback.
pub(super) fn is_default_loopback(a: &IpNet) -> bool {
    matches!(a.addr(), IpAddr::V4(v) if v.is_loopback() && a.prefix_len() == 8)
        || matches!(a.addr(), IpAddr::V6(v) if v.is_loopback())
}
