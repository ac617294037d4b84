//! Adding and removing interfaces: the move/rename/configure sequence, its rollback, and
//! sending links home (on `remove_interface` and `destroy`).

use std::net::IpAddr;
use std::os::fd::AsFd;

use ipnet::IpNet;
use log::{debug, warn};

use super::host::Host;
use super::mark::{self, Origin};
use super::prewire;
use super::{DestroyReport, Live, NetnsSandbox, RTPROT_NETSANDBOX_IFACE};
use crate::error::{Error, Result};
use crate::netlink::addr::{self, AddrOptions};
use crate::netlink::consts::{RT_TABLE_MAIN, RTN_UNICAST, RTPROT_KERNEL, RTPROT_RA, RTPROT_REDIRECT};
use crate::netlink::link::{self, LinkChange, LinkRef, VethPeer};
use crate::netlink::route::{self, RouteSpec};
use crate::netlink::{Address, Link, LinkKind, Route};
use crate::netlink::{BatchMode, Request, Socket};
use crate::netns::{self, NetNs};
use crate::sandbox::check;
use crate::sandbox::options::IfaceOptions;
use crate::{sysctl, validate};

/// Where the interface comes from.
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// An existing link in the origin namespace, moved in.
    Move(&'a str),
    /// A new veth pair with this host-side name; the sandbox end is born inside.
    Veth(&'a str),
}

/// Everything a link had in its origin namespace before it was moved, to put it back exactly
/// when the add fails (the kernel flushes addresses and routes on a move).
struct Before {
    link: Link,
    addresses: Vec<Address>,
    routes: Vec<Route>,
    marker: String,
}

pub(super) fn add(
    sb: &NetnsSandbox,
    live: &Live,
    src: Source<'_>,
    prefix: &str,
    opts: &IfaceOptions,
) -> Result<String> {
    match src {
        Source::Move(n) => check::add_interface(n, prefix, opts)?,
        Source::Veth(n) => check::add_veth(n, prefix, opts)?,
    }
    let _serial = sb.ifaces.lock();

    let source = match src {
        Source::Move(n) if !opts.bridge => {
            let l = match sb.host.sock.link(LinkRef::Name(n)) {
                Ok(l) => Some(l),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            check::movable(n, l.as_ref().map(|l| l.kind == LinkKind::Loopback || l.name == check::LOOPBACK))?;
            l
        }
        _ => None,
    };
    let master = match &opts.master {
        Some(m) => {
            let l = match sb.link(live, m) {
                Ok(l) => Some(l),
                Err(Error::NotFound { .. }) => None,
                Err(e) => return Err(e),
            };
            check::master(m, l.as_ref().map(|l| l.kind == LinkKind::Bridge))?;
            l.map(|l| l.index)
        }
        None => None,
    };
    if opts.address.is_some() || opts.address_ipv6.is_some() {
        check::address_conflict(opts, &main_routes(live, opts)?)?;
    }
    let host_master = match &opts.host_master {
        Some(br) => Some(crate::sandbox::bridge::bridge_link(&sb.host.sock, br)?.index),
        None => None,
    };
    // A pre-wired pool's pair is used for the first add_veth whose name it has inside.
    let prewired = match src {
        Source::Veth(_) if !opts.bridge && !opts.exact_name && format!("{prefix}0") == prewire::INSIDE_NAME => {
            sb.prewired.lock().take()
        }
        Source::Veth(_) if !opts.bridge && opts.exact_name && prefix == prewire::INSIDE_NAME => {
            sb.prewired.lock().take()
        }
        _ => None,
    };
    let name = match prewired {
        Some(_) => prewire::INSIDE_NAME.to_owned(),
        None if opts.exact_name => exact_name_free(live, prefix)?,
        None => free_name(live, prefix)?,
    };

    // Bring the link in: create it inside, or move it (renamed on the way, in one request).
    let (index, before) = match (src, source) {
        (Source::Veth(host_name), _) if prewired.is_some() => {
            let mut p = prewired
                .clone()
                .ok_or_else(|| Error::Protocol { op: "add veth", detail: "pre-wired pair vanished".into() })?;
            match prewire::adopt(sb, &mut p, host_name, opts, host_master) {
                Ok(i) => (i, None),
                Err(e) => {
                    *sb.prewired.lock() = Some(p);
                    return Err(e);
                }
            }
        }
        _ if opts.bridge => {
            live.sock.execute(link::create_bridge(&name)?)?;
            (live.sock.link(LinkRef::Name(&name))?.index, None)
        }
        (Source::Veth(host_name), _) => (add_veth_pair(sb, live, host_name, &name, opts, host_master)?, None),
        (Source::Move(src_name), Some(l)) => {
            let before = record(sb, l)?;
            (move_in(sb, live, src_name, &name, &before)?, Some(before))
        }
        (Source::Move(src_name), None) => return Err(Error::NotFound { kind: "link", name: src_name.to_owned() }),
    };

    // A veth peer is born with its MAC and MTU: setting them again is kernel work (address
    // change notifiers) for nothing.
    let born_configured = matches!(src, Source::Veth(_)) && prewired.is_none();
    // A pre-wired pair's sandbox end was marked as created when the pool made it.
    let mark_created = before.is_none() && prewired.is_none();
    match configure(live, index, master, opts, &name, mark_created, born_configured) {
        Ok(()) => {
            debug!("{}: added {name}", sb.key);
            Ok(name)
        }
        Err(e) => {
            rollback(sb, live, index, &name, before.as_ref(), &src);
            Err(e)
        }
    }
}

/// Destinations of the main table's routes inside, as [`check::address_conflict`] wants them,
/// for the families `opts` has addresses in.
fn main_routes(live: &Live, opts: &IfaceOptions) -> Result<Vec<IpNet>> {
    let keep = |routes: Vec<Route>| -> Vec<IpNet> {
        routes
            .into_iter()
            .filter(|r| r.table == RT_TABLE_MAIN && r.kind == RTN_UNICAST && !check::ignored_for_conflicts(&r.dst))
            .map(|r| r.dst)
            .collect()
    };
    // Both families: one dump instead of two.
    if opts.address.is_some() && opts.address_ipv6.is_some() {
        return Ok(keep(live.sock.routes_in_all_families(RT_TABLE_MAIN)?));
    }
    let mut out = Vec::new();
    for (v6, wanted) in [(false, opts.address.is_some()), (true, opts.address_ipv6.is_some())] {
        if !wanted {
            continue;
        }
        // A namespace nobody has added a route to yet (a runtime's fresh one, loopback down)
        // has no main table: the kernel answers ENOENT, which means no conflict.
        let routes = match live.sock.routes_in(v6, RT_TABLE_MAIN) {
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => continue,
            other => other?,
        };
        out.extend(keep(routes));
    }
    Ok(out)
}

/// The fast path: a veth pair whose sandbox end is born inside as `name`. Returns its index.
fn add_veth_pair(
    sb: &NetnsSandbox,
    live: &Live,
    host_name: &str,
    name: &str,
    opts: &IfaceOptions,
    host_master: Option<u32>,
) -> Result<u32> {
    let ns = live.ns()?;
    if !sb.named.swap(true, std::sync::atomic::Ordering::Relaxed) {
        sb.host.name_newest_first(&ns);
    }
    let peer = VethPeer {
        name: name.to_owned(),
        mac: opts.mac,
        mtu: opts.mtu,
        netns: Some(ns.as_fd()),
        // The host end can be born up (only the peer cannot): saves a request. Not when it
        // must never get a link-local address: that mode can only be set once it exists.
        host_up: opts.host_link_local,
        // Joins the bridge in the creating request: no window in which it is loose.
        host_master,
        ..Default::default()
    };
    // The echoed host end names the peer's index inside: saves a lookup in the sandbox. The
    // name may still be held by the host end of a sandbox destroyed a moment ago that the
    // kernel has not reaped yet: that one is moved out of the way (`reap`) and we try again.
    let host_end = match sb.host.sock.create_veth_echoed(host_name, opts.mtu, &peer) {
        Err(e) if e.is_already_exists() && super::reap::unblock_name(&sb.host, host_name) => {
            sb.host.sock.create_veth_echoed(host_name, opts.mtu, &peer)
        }
        r => r,
    };
    let host_end = host_end.map_err(|e| {
        if e.is_already_exists() { Error::AlreadyExists { kind: "link", name: host_name.to_owned() } } else { e }
    })?;
    let peer_index = host_end.as_ref().and_then(|l| l.link);
    let ready = host_end_without_link_local(sb, host_name, !opts.host_link_local, opts.host_alias.as_deref())
        .and_then(|aliased| {
            host_end_hairpin(sb, host_name, opts.host_hairpin)?;
            if aliased { Ok(()) } else { host_end_alias(sb, host_name, opts.host_alias.as_deref()) }
        })
        .and_then(|()| peer_index.map_or_else(|| live.sock.link(LinkRef::Name(name)).map(|l| l.index), Ok));
    ready.inspect_err(|_| {
        let _ = sb.host.sock.delete_link(LinkRef::Name(host_name));
    })
}

/// Reads what the link `l` has in the origin before it moves: addresses, routes (those the
/// kernel does not make by itself), and the marker recording its origin.
fn record(sb: &NetnsSandbox, l: Link) -> Result<Before> {
    let addresses = sb.host.sock.addresses(None, Some(l.index))?;
    let mut routes = Vec::new();
    for v6 in [false, true] {
        routes.extend(
            sb.host
                .sock
                .routes(v6)?
                .into_iter()
                .filter(|r| r.oif == Some(l.index) && r.kind == RTN_UNICAST && !is_kernel_route(r.protocol)),
        );
    }
    let origin =
        Origin { cookie: sb.host.cookie, ns: sb.host.inode, mac: l.mac, mtu: l.mtu, up: l.up, name: l.name.clone() };
    Ok(Before { marker: origin.encode(), link: l, addresses, routes })
}

/// Marks the link with its origin (in the origin, so it is marked before it ever leaves: a
/// crash in between still knows where it belongs), then moves and renames it in one request.
fn move_in(sb: &NetnsSandbox, live: &Live, src_name: &str, name: &str, before: &Before) -> Result<u32> {
    let index = before.link.index;
    // Origin markers left on it by an add that crashed half-way are stale: this one replaces them.
    let mut reqs: Vec<Request> = before
        .link
        .altnames
        .iter()
        .filter(|a| Origin::decode(a).is_some())
        .map(|a| link::delete_altname(LinkRef::Index(index), a))
        .collect::<Result<_>>()?;
    reqs.push(link::add_altname(LinkRef::Index(index), &before.marker)?);
    sb.host.sock.batch(&reqs, BatchMode::StopAtFirstError)?.into_result()?;
    let ns = live.ns()?;
    let mv = LinkChange::new().up(false).netns(ns.as_fd()).name(name);
    if let Err(e) = sb.host.sock.set_link(LinkRef::Index(index), &mv) {
        undo_partial_move(&live.sock, index, src_name, LinkChange::new().up(before.link.up).netns(sb.host.ns.as_fd()));
        if let Err(d) = sb.host.sock.execute(link::delete_altname(LinkRef::Name(src_name), &before.marker)?) {
            warn!("{}: could not remove the origin marker from {src_name}: {d}", sb.key);
        }
        return Err(e);
    }
    live.sock.link(LinkRef::Name(name)).map(|l| l.index).inspect_err(|e| {
        warn!("{}: moved {src_name} in but cannot find it as {name}: {e}", sb.key);
    })
}

/// For [`IfaceOptions::host_link_local`]`(false)`: the host end was born down; its link-local
/// address generation is switched off and it comes up in one request (the sandbox end is still
/// down, so the host end has no carrier yet and IPv6 configures nothing before the mode applies).
/// The alias, when there is one, goes in the same request: true when it was set here.
fn host_end_without_link_local(sb: &NetnsSandbox, host_name: &str, wanted: bool, alias: Option<&str>) -> Result<bool> {
    if !wanted {
        return Ok(false);
    }
    host_end_ipv6(&sb.host, host_name, false, &sb.key);
    let mut change = LinkChange::new().ipv6_link_local(false).up(true);
    if let Some(a) = alias {
        change = change.alias(a);
    }
    sb.host.sock.set_link(LinkRef::Name(host_name), &change).map(|()| alias.is_some())
}

/// A host end without link-local address also gets no IPv6 at all (`disable_ipv6` on it, in the
/// origin, before it comes up): otherwise bringing it up still adds its own `ff00::/8`
/// multicast route, all of them on one fib6 node that the kernel walks linearly on every
/// insertion, and set-up grew 10x by 3 000 host ends (BENCHMARKS.md). `on` undoes it (a
/// pre-wired host end taken by an `add_veth` that wants link-local). Best effort: without IPv6
/// in the kernel there is nothing to switch.
pub(super) fn host_end_ipv6(host: &Host, host_name: &str, on: bool, key: &str) {
    let sysctl_key = format!("net/ipv6/conf/{host_name}/disable_ipv6");
    let value = if on { "0" } else { "1" };
    // /proc/sys/net follows the opener's namespace: write directly when this thread is in the
    // origin (the common case), else from a thread inside it.
    let here = nix::sys::stat::stat("/proc/thread-self/ns/net")
        .is_ok_and(|st| st.st_dev == host.inode.dev && st.st_ino == host.inode.ino);
    let written =
        if here { sysctl::write(None, &sysctl_key, value) } else { sysctl::write(Some(&host.ns), &sysctl_key, value) };
    if let Err(e) = written {
        debug!("{key}: disable_ipv6 on host end {host_name} left as it was: {e}");
    }
}

/// For [`IfaceOptions::host_hairpin`]: the port mode can only be set once the host end is a
/// bridge port, so after the creating request.
fn host_end_hairpin(sb: &NetnsSandbox, host_name: &str, wanted: bool) -> Result<()> {
    if !wanted {
        return Ok(());
    }
    sb.host.sock.set_link(LinkRef::Name(host_name), &LinkChange::new().hairpin(true))
}

/// For [`IfaceOptions::host_alias`]: the kernel ignores `IFLA_IFALIAS` in a creating request,
/// so it is set right after (a failure rolls the pair back like any other step).
fn host_end_alias(sb: &NetnsSandbox, host_name: &str, alias: Option<&str>) -> Result<()> {
    match alias {
        Some(a) => sb.host.sock.set_link(LinkRef::Name(host_name), &LinkChange::new().alias(a)),
        None => Ok(()),
    }
}

/// For [`IfaceOptions::exact_name`]: `name` itself, when no link inside has it.
fn exact_name_free(live: &Live, name: &str) -> Result<String> {
    match live.sock.link(LinkRef::Name(name)) {
        Err(Error::NotFound { .. }) => Ok(name.to_owned()),
        Err(e) => Err(e),
        Ok(_) => Err(Error::AlreadyExists { kind: "interface", name: name.to_owned() }),
    }
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
        .find(|n| n.len() <= validate::IFNAME_MAX && !links.iter().any(|l| &l.name == n || l.altnames.contains(n)))
        .ok_or_else(|| Error::InvalidArgument {
            op: "add interface",
            reason: format!("no free name with prefix {prefix}"),
        })
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
    // The "created" marker first, so a crash later still leaves the link recognisably ours.
    // Then one request sets MAC, MTU and master and brings the link up (the kernel applies them
    // in that order); addresses and routes follow. All go in one send: on any failure the
    // caller rolls the whole interface back, so later requests need not be held back.
    let mut reqs: Vec<Request> = Vec::new();
    if created {
        reqs.push(link::add_altname(LinkRef::Index(index), &mark::created(index))?);
    }
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
    reqs.push(change.request(LinkRef::Index(index))?);
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

/// Undoes a failed add: a created link is deleted; a moved one goes back to its origin exactly
/// as it was there (name, MAC, MTU, master, up state, addresses, routes). Errors are logged: the
/// caller reports the original failure.
fn rollback(sb: &NetnsSandbox, live: &Live, index: u32, name: &str, before: Option<&Before>, src: &Source<'_>) {
    let result = match (before, src) {
        (Some(b), _) => return_exactly(sb, live, index, b),
        (None, Source::Veth(host_name)) => sb.host.sock.delete_link(LinkRef::Name(host_name)),
        (None, _) => live.sock.delete_link(LinkRef::Index(index)),
    };
    match result {
        Ok(()) => debug!("{}: rolled back {name}", sb.key),
        Err(e) => warn!("{}: rollback of {name} failed: {e}", sb.key),
    }
}

fn return_exactly(sb: &NetnsSandbox, live: &Live, index: u32, b: &Before) -> Result<()> {
    let l = &b.link;
    let mut back = LinkChange::new().up(false).master(0).name(&l.name).netns(sb.host.ns.as_fd());
    if let Some(mac) = l.mac {
        back = back.mac(mac);
    }
    if let Some(mtu) = l.mtu {
        back = back.mtu(mtu);
    }
    live.sock.execute(back.request(LinkRef::Index(index))?)?;
    // Home again (the index may have changed on the way): its master and up state, then the
    // addresses (IPv6 without DAD: they were usable before) and the routes the kernel dropped.
    let home = sb.host.sock.link(LinkRef::Name(&l.name))?.index;
    let mut reqs = vec![link::delete_altname(LinkRef::Index(home), &b.marker)?];
    let mut change = LinkChange::new().up(l.up);
    if let Some(m) = l.master {
        change = change.master(m);
    }
    reqs.push(change.request(LinkRef::Index(home))?);
    for a in b.addresses.iter().filter(|a| !is_kernel_address(a)) {
        let opts = AddrOptions { nodad: a.addr.addr().is_ipv6(), scope: Some(a.scope), ..Default::default() };
        reqs.push(addr::add(home, &a.addr, opts)?);
    }
    for r in &b.routes {
        let spec = RouteSpec {
            dst: r.dst,
            gateway: r.gateway,
            oif: Some(home),
            scope: Some(r.scope),
            table: r.table,
            priority: r.priority,
            protocol: Some(r.protocol),
        };
        reqs.push(route::add(&spec, false)?);
    }
    sb.host.sock.batch(&reqs, BatchMode::Continue)?.into_result()
}

/// The origin namespace of a moved-in link, found again, with a socket bound to it.
enum Home<'a> {
    /// The sandbox's own origin (the common case: no search, no new socket).
    Host(&'a Host),
    /// Another namespace, found by its identity.
    Other(NetNs, Socket),
}

impl Home<'_> {
    fn ns(&self) -> &NetNs {
        match self {
            Home::Host(h) => &h.ns,
            Home::Other(ns, _) => ns,
        }
    }
    fn sock(&self) -> &Socket {
        match self {
            Home::Host(h) => &h.sock,
            Home::Other(_, s) => s,
        }
    }
}

/// Finds the namespace `o` came from, whatever namespace the caller runs in. `None` when it no
/// longer exists (an inode that matches but a cookie that does not is a later namespace).
fn find_home<'a>(sb: &'a NetnsSandbox, o: &Origin) -> Result<Option<Home<'a>>> {
    // A cookie of 0 means the kernel could not tell one (before Linux 5.14): inode only.
    let same = |cookie: u64, inode: netns::NsInode| {
        if o.cookie != 0 && cookie != 0 { o.cookie == cookie } else { o.ns == inode }
    };
    if same(sb.host.cookie, sb.host.inode) {
        return Ok(Some(Home::Host(&sb.host)));
    }
    let current = NetNs::current()?;
    let Some(ns) = netns::find_netns(o.ns, &[&current])? else { return Ok(None) };
    let sock = netns::socket_in(&ns)?;
    if !same(sock.netns_cookie().unwrap_or(0), o.ns) {
        return Ok(None);
    }
    Ok(Some(Home::Other(ns, sock)))
}

fn origin_gone(name: &str, o: &Origin) -> Error {
    Error::NotFound { kind: "origin namespace", name: format!("net:[{}] (origin of {name} as {})", o.ns.ino, o.name) }
}

/// The request that sends a moved-in link home as it was there: down, out of any bridge,
/// renamed, with its MAC and MTU.
fn home_request(index: u32, o: &Origin, home: &Home<'_>) -> Result<Request> {
    let mut back = LinkChange::new().up(false).master(0).name(&o.name).netns(home.ns().as_fd());
    if let Some(mac) = o.mac {
        back = back.mac(mac);
    }
    if let Some(mtu) = o.mtu {
        back = back.mtu(mtu);
    }
    back.request(LinkRef::Index(index))
}

/// After a link arrived home: its marker goes and it comes up if it was up there.
fn settle_home(key: &str, home: &Home<'_>, o: &Origin, marker: &str) {
    let done = link::delete_altname(LinkRef::Name(&o.name), marker).and_then(|del| {
        let mut reqs = vec![del];
        if o.up {
            reqs.push(LinkChange::new().up(true).request(LinkRef::Name(&o.name))?);
        }
        home.sock().batch(&reqs, BatchMode::Continue)?.into_result()
    });
    if let Err(e) = done {
        warn!("{key}: {} is home but could not be settled there: {e}", o.name);
    }
}

pub(super) fn remove(sb: &NetnsSandbox, live: &Live, name: &str) -> Result<()> {
    check::remove_interface(name)?;
    let _serial = sb.ifaces.lock();
    let l = sb.link(live, name)?;
    if l.kind == LinkKind::Loopback || l.index == 1 {
        return Err(Error::InvalidArgument { op: "remove interface", reason: "the loopback cannot be removed".into() });
    }
    if mark::is_created(&l.altnames) {
        live.sock.delete_link(LinkRef::Index(l.index))?;
        debug!("{}: removed {name}", sb.key);
        return Ok(());
    }
    let Some((o, marker)) = Origin::find(&l.altnames) else {
        // Never send a link of unknown origin anywhere: it is not ours to move.
        return Err(Error::InvalidArgument {
            op: "remove interface",
            reason: format!("{name} was not added through netsandbox: its origin namespace is unknown"),
        });
    };
    let home = find_home(sb, &o)?.ok_or_else(|| origin_gone(name, &o))?;
    let taken = || Error::AlreadyExists { kind: "link", name: o.name.clone() };
    if home.sock().link(LinkRef::Name(&o.name)).is_ok() {
        return Err(taken());
    }
    live.sock.execute(home_request(l.index, &o, &home)?).map_err(|e| {
        if let Ok(ns) = live.ns() {
            let mut undo = LinkChange::new().up(l.up).netns(ns.as_fd());
            if let Some(m) = l.master {
                undo = undo.master(m);
            }
            undo_partial_move(home.sock(), l.index, name, undo);
        }
        if e.is_already_exists() { taken() } else { e }
    })?;
    settle_home(&sb.key, &home, &o, marker);
    debug!("{}: removed {name}", sb.key);
    Ok(())
}

/// For `destroy`: every link but the loopback is dealt with. Links the sandbox created are
/// deleted (a veth's host end with them); links moved in go home, found by their recorded
/// identity, as they were there; a moved-in link whose origin is gone, whose name is taken
/// there, or whose move the kernel refuses is left in place and reported. Links the sandbox
/// neither made nor moved in are deleted only when the sandbox made the namespace (`owned`);
/// in an adopted namespace they belong to its owner and stay. Failures are logged.
pub(super) fn evacuate(sb: &NetnsSandbox, live: &Live, links: &[Link], owned: bool) -> DestroyReport {
    let mut report = DestroyReport::default();
    let mut homes: Vec<(u64, Option<Home<'_>>)> = Vec::new();
    let mut moves: Vec<(usize, &Link, Origin, String)> = Vec::new();
    let mut deletes = Vec::new();
    for l in links.iter().filter(|l| l.kind != LinkKind::Loopback && l.name != check::LOOPBACK) {
        if mark::is_created(&l.altnames) {
            deletes.extend(link::delete(LinkRef::Index(l.index)).ok());
            continue;
        }
        let Some((o, marker)) = Origin::find(&l.altnames) else {
            if owned {
                deletes.extend(link::delete(LinkRef::Index(l.index)).ok());
            }
            continue;
        };
        let slot = match homes.iter().position(|(c, _)| *c == o.cookie) {
            Some(p) => p,
            None => {
                let found = find_home(sb, &o).unwrap_or_else(|e| {
                    warn!("{}: looking for the origin of {}: {e}", sb.key, l.name);
                    None
                });
                homes.push((o.cookie, found));
                homes.len() - 1
            }
        };
        let marker = marker.to_owned();
        match &homes[slot].1 {
            None => report.left_behind.push((l.name.clone(), origin_gone(&l.name, &o).to_string())),
            Some(h) if h.sock().link(LinkRef::Name(&o.name)).is_ok() => {
                report.left_behind.push((l.name.clone(), format!("{} is taken in its origin", o.name)))
            }
            Some(_) => moves.push((slot, l, o, marker)),
        }
    }
    let reqs: Vec<(usize, Request)> = moves
        .iter()
        .enumerate()
        .filter_map(|(i, (slot, l, o, _))| {
            homes[*slot].1.as_ref().and_then(|h| home_request(l.index, o, h).ok()).map(|r| (i, r))
        })
        .collect();
    if !reqs.is_empty() {
        let batch: Vec<Request> = reqs.iter().map(|(_, r)| r.clone()).collect();
        match live.sock.batch(&batch, BatchMode::Continue) {
            Ok(out) => {
                for ((i, _), outcome) in reqs.iter().zip(&out.outcomes) {
                    let (slot, l, o, marker) = &moves[*i];
                    match (outcome.is_applied(), &homes[*slot].1) {
                        (true, Some(h)) => settle_home(&sb.key, h, o, marker),
                        _ => report.left_behind.push((l.name.clone(), "the kernel refused the move home".into())),
                    }
                }
            }
            Err(e) => {
                warn!("{}: returning links to their origin failed: {e}", sb.key);
                report.left_behind.extend(moves.iter().map(|(_, l, _, _)| (l.name.clone(), e.to_string())));
            }
        }
    }
    if !deletes.is_empty()
        && let Err(e) = live.sock.batch(&deletes, BatchMode::Continue).and_then(|r| r.into_result())
    {
        debug!("{}: a link could not be deleted ({e}); it goes with the namespace", sb.key);
    }
    report
}

/// A move with a rename is not atomic in the kernel: the link can cross over under its old name
/// and then fail the rename. If link `index` now sits in the namespace of `landed` still named
/// `old_name`, `back` returns it (and restores what the request changed). Errors are logged.
fn undo_partial_move(landed: &Socket, index: u32, old_name: &str, back: LinkChange<'_>) {
    match landed.link(LinkRef::Index(index)) {
        Ok(l) if l.name == old_name => match landed.set_link(LinkRef::Index(index), &back) {
            Ok(()) => debug!("moved {old_name} back after a failed move"),
            Err(e) => warn!("{old_name} crossed namespaces in a failed move and could not be returned: {e}"),
        },
        _ => {}
    }
}

/// True for kernel-made routes (subnet routes of addresses, IPv6 link-local, RA, redirects).
pub(super) fn is_kernel_route(protocol: u8) -> bool {
    matches!(protocol, RTPROT_KERNEL | RTPROT_RA | RTPROT_REDIRECT)
}

/// Kernel-made addresses (`IFA_PROTO` kernel loopback / RA / link-local).
pub(super) fn is_kernel_address(a: &Address) -> bool {
    matches!(a.protocol, Some(1..=3))
}

/// True for IPs the kernel adds on its own to loopback.
pub(super) fn is_default_loopback(a: &IpNet) -> bool {
    check::is_loopback_builtin(a) || matches!(a.addr(), IpAddr::V6(v) if v.is_loopback())
}
