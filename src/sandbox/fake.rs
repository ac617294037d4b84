//! [`FakeSandbox`]: an in-memory [`Sandbox`] for container engines' unit tests.
//!
//! It models what the bind-mounted netns implementation does on the kernel, input by input: the
//! same validation (both call the one validation path, `sandbox::check`, in the same order), the
//! same typed errors, the same naming (prefix + lowest free index), the same "failure changes
//! nothing" rule. It also models the origin ("host") namespace as a set
//! of link names, so moving links in and out can be observed with [`FakeSandbox::host_links`].
//!
//! Deliberate modelling choices (matching the kernel):
//! - The origin namespace always holds `lo`, which cannot be moved (`InvalidArgument`).
//! - A link without an explicit MTU has MTU 1500; a created link without an explicit MAC gets a
//!   deterministic locally administered MAC (`02:00:00:00:xx:yy`).
//! - An address with a prefix shorter than the host length makes a prefix route (scope link) in
//!   the main table; routes, gateways and neighbors resolve through those, the interfaces'
//!   [`IfaceOptions::routes`] and directly connected static routes (on-link reachability).
//! - Removing an interface removes everything that used it: its routes, the gateways and static
//!   routes through it, neighbors on it, and the `master` of its ports.
//! - [`delete_neighbor`](Sandbox::delete_neighbor) without `os_delete` leaves the entry in the
//!   "kernel" and so in the view, as the real implementation (whose view is the kernel's) does:
//!   it only checks that the entry exists.
//! - [`destroy`](Sandbox::destroy) returns moved links to the origin namespace under their origin
//!   name when it is free; otherwise, or when the origin is gone ([`FakeSandbox::drop_origin`]),
//!   they stay in the namespace and are reported ([`FakeSandbox::destroy_reporting`]). Host ends
//!   of veths made by [`add_veth`](Sandbox::add_veth) disappear with their peers. In a sandbox
//!   made with [`FakeSandbox::external`] the namespace's own links stay.
//! - Handles made with [`FakeSandbox::handle`] share one sandbox, like two
//!   [`NetnsSandbox::open`](super::NetnsSandbox::open) of one key: once one destroys it, the
//!   others answer `Destroyed`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;
use parking_lot::Mutex;

use super::Sandbox;
use super::check::{self, LOOPBACK};
use super::info::{InterfaceInfo, NeighborInfo, SandboxInfo, Statistics, TweakReport};
use super::key::check_key;
use super::netns::DestroyReport;
use super::options::{IfaceOptions, NeighFamily, NeighOptions, SandboxType, StaticRoute};
use crate::error::{Error, Result};
use crate::validate;

const DEFAULT_MTU: u32 = 1500;

/// What an interface inside the fake sandbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Moved in from the origin namespace (`vxlan`: it is a VXLAN device).
    Moved { vxlan: bool },
    /// In the namespace before the sandbox adopted it ([`FakeSandbox::external`]).
    Foreign,
    /// A bridge created inside.
    Bridge,
    /// The sandbox end of a veth pair whose host end is this name in the origin namespace.
    Veth { host: String },
    /// A VXLAN device created with [`FakeSandbox::add_vxlan`].
    Vxlan,
}

#[derive(Debug, Clone)]
struct Iface {
    info: InterfaceInfo,
    kind: Kind,
}

impl Iface {
    fn is_vxlan(&self) -> bool {
        matches!(self.kind, Kind::Vxlan | Kind::Moved { vxlan: true })
    }
}

/// A link in the origin namespace.
#[derive(Debug, Clone, Copy)]
struct HostLink {
    mac: Option<[u8; 6]>,
    vxlan: bool,
    bridge: bool,
}

#[derive(Debug, Clone)]
struct Neigh {
    info: NeighborInfo,
}

#[derive(Debug, Clone)]
struct StoredRoute {
    route: StaticRoute,
    /// The interface the route goes out of.
    via_link: String,
}

#[derive(Debug, Default)]
struct State {
    destroyed: bool,
    /// The origin namespace no longer exists ([`FakeSandbox::drop_origin`]).
    origin_gone: bool,
    /// Links in the origin namespace, by name.
    host_links: BTreeMap<String, HostLink>,
    /// Links left in the namespace by `destroy` (adopted ones, and moved ones that could not go home).
    left: Vec<String>,
    /// Interfaces inside, by name.
    ifaces: BTreeMap<String, Iface>,
    gateway: Option<(Ipv4Addr, String)>,
    gateway6: Option<(Ipv6Addr, String)>,
    static_routes: Vec<StoredRoute>,
    neighbors: Vec<Neigh>,
    loopback_addresses: Vec<IpNet>,
    mac_counter: u16,
}

/// An in-memory [`Sandbox`] that behaves like the netns implementation on every input, for
/// container engines' unit tests. No kernel state is touched; [`Sandbox::invoke_boxed`] runs the
/// closure on a scoped thread of the calling process (no namespace switch).
///
/// Thread safe: all state sits behind one mutex, so concurrent calls are serialized and
/// concurrent `add_interface` calls get distinct names.
#[derive(Debug)]
pub struct FakeSandbox {
    key: String,
    state: Arc<Mutex<State>>,
    /// The load balancer (src/sandbox/lb), shared by handles like `state`.
    lb: Arc<Mutex<super::lb::LbState>>,
}

fn is_host_prefix(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

fn destroyed(key: &str) -> Error {
    Error::Destroyed { key: key.to_owned() }
}

impl State {
    /// Main-table routes with their interface, default routes excluded: address prefix routes
    /// (loopback included), interface routes and static routes.
    fn routes(&self) -> Vec<(IpNet, Option<&str>)> {
        let mut out = Vec::new();
        for (name, i) in &self.ifaces {
            for a in i.info.addresses.iter().filter(|a| !is_host_prefix(a)) {
                out.push((a.trunc(), Some(name.as_str())));
            }
            for r in &i.info.routes {
                out.push((*r, Some(name.as_str())));
            }
        }
        for a in self.loopback_addresses.iter().filter(|a| !is_host_prefix(a)) {
            out.push((a.trunc(), Some(LOOPBACK)));
        }
        for r in &self.static_routes {
            if r.route.dst.prefix_len() > 0 {
                out.push((r.route.dst.trunc(), Some(r.via_link.as_str())));
            }
        }
        out
    }

    /// The interface inside that reaches `ip` on-link (longest prefix wins; ties go to the first
    /// interface by name). `only` restricts the search to one interface.
    fn on_link(&self, ip: IpAddr, only: Option<&str>) -> Option<String> {
        let mut nets: Vec<(&IpNet, &str)> = Vec::new();
        for (name, i) in &self.ifaces {
            nets.extend(i.info.addresses.iter().filter(|a| !is_host_prefix(a)).map(|a| (a, name.as_str())));
            nets.extend(i.info.routes.iter().map(|r| (r, name.as_str())));
        }
        for r in self.static_routes.iter().filter(|r| r.route.gateway.is_none()) {
            nets.push((&r.route.dst, r.via_link.as_str()));
        }
        let mut best: Option<(u8, &str)> = None;
        for (net, name) in nets {
            if net.contains(&ip) && only.is_none_or(|o| o == name) && best.is_none_or(|(p, _)| net.prefix_len() > p) {
                best = Some((net.prefix_len(), name));
            }
        }
        best.map(|(_, n)| n.to_owned())
    }

    fn unreachable(ip: IpAddr) -> Error {
        Error::NotFound { kind: "route to", name: ip.to_string() }
    }

    fn iface_exists(&self, name: &str) -> Result<()> {
        if self.ifaces.contains_key(name) {
            Ok(())
        } else {
            Err(Error::NotFound { kind: "interface", name: name.to_owned() })
        }
    }

    fn next_mac(&mut self) -> [u8; 6] {
        self.mac_counter = self.mac_counter.wrapping_add(1);
        let [hi, lo] = self.mac_counter.to_be_bytes();
        [0x02, 0, 0, 0, hi, lo]
    }

    /// The new interface's name: `dst` itself with [`IfaceOptions::exact_name`] (taken is
    /// `AlreadyExists`), else the lowest free `dst<N>`.
    fn dst_name(&self, dst: &str, opts: &IfaceOptions) -> Result<String> {
        if !opts.exact_name {
            return self.free_name(dst);
        }
        if self.ifaces.contains_key(dst) || dst == LOOPBACK {
            return Err(Error::AlreadyExists { kind: "interface", name: dst.to_owned() });
        }
        Ok(dst.to_owned())
    }

    /// Lowest free `prefix<N>` name inside.
    fn free_name(&self, prefix: &str) -> Result<String> {
        let name = (0u32..)
            .map(|i| format!("{prefix}{i}"))
            .find(|n| !self.ifaces.contains_key(n))
            .ok_or_else(|| Error::InvalidArgument { op: "add interface", reason: "no free index".into() })?;
        validate::ifname(&name)?;
        Ok(name)
    }

    /// Checks that `opts` fit this sandbox (master, route conflicts, duplicate routes) and builds
    /// the interface's address and route lists. Changes nothing.
    fn plan(&self, opts: &IfaceOptions) -> Result<(Vec<IpNet>, Vec<IpNet>)> {
        if let Some(m) = &opts.master {
            check::master(m, self.ifaces.get(m).map(|i| i.kind == Kind::Bridge))?;
        }
        let existing = self.routes();
        let dsts: Vec<IpNet> = existing.iter().map(|(d, _)| *d).filter(|d| !check::ignored_for_conflicts(d)).collect();
        check::address_conflict(opts, &dsts)?;
        let mut addresses: Vec<IpNet> = Vec::new();
        for a in opts.address.iter().chain(opts.address_ipv6.iter()).chain(opts.link_local.iter()) {
            let dup = addresses.iter().any(|b| if a.addr().is_ipv4() { a == b } else { a.addr() == b.addr() });
            if dup {
                return Err(Error::AlreadyExists { kind: "address", name: a.to_string() });
            }
            addresses.push(*a);
        }
        addresses.sort();
        // The new interface's own prefix routes (IPv4 ones collide with user routes: same metric).
        let own: Vec<IpNet> =
            addresses.iter().filter(|a| a.addr().is_ipv4() && !is_host_prefix(a)).map(IpNet::trunc).collect();
        let mut routes: Vec<IpNet> = Vec::new();
        for r in opts.routes.iter().map(IpNet::trunc) {
            if routes.contains(&r) || self.route_taken(&existing, &r) || own.contains(&r) {
                return Err(Error::AlreadyExists { kind: "route", name: r.to_string() });
            }
            routes.push(r);
        }
        routes.sort();
        Ok((addresses, routes))
    }

    /// True when a route to `dst` already exists: any user route (interface or static) with that
    /// destination, or for IPv4 also an address prefix route (the kernel gives both metric 0).
    fn route_taken(&self, existing: &[(IpNet, Option<&str>)], dst: &IpNet) -> bool {
        if dst.addr().is_ipv4() {
            return existing.iter().any(|(d, _)| d == dst);
        }
        self.ifaces.values().any(|i| i.info.routes.contains(dst))
            || self.static_routes.iter().any(|r| r.route.dst.trunc() == *dst)
    }

    /// Inserts an interface planned with [`State::plan`].
    fn insert(
        &mut self,
        name: &str,
        kind: Kind,
        origin: Option<String>,
        mac: Option<[u8; 6]>,
        opts: &IfaceOptions,
        (addresses, routes): (Vec<IpNet>, Vec<IpNet>),
    ) {
        let info = InterfaceInfo {
            name: name.to_owned(),
            origin_name: origin,
            created: matches!(kind, Kind::Bridge | Kind::Veth { .. } | Kind::Vxlan),
            mac,
            mtu: Some(opts.mtu.unwrap_or(DEFAULT_MTU)),
            master: opts.master.clone(),
            addresses,
            routes,
        };
        self.ifaces.insert(name.to_owned(), Iface { info, kind });
    }

    /// Removes interface `name` and everything that used it. Returns it.
    fn take(&mut self, name: &str) -> Option<Iface> {
        let iface = self.ifaces.remove(name)?;
        if self.gateway.as_ref().is_some_and(|(_, l)| l == name) {
            self.gateway = None;
        }
        if self.gateway6.as_ref().is_some_and(|(_, l)| l == name) {
            self.gateway6 = None;
        }
        self.static_routes.retain(|r| r.via_link != name);
        self.neighbors.retain(|n| n.info.link_name != name);
        for other in self.ifaces.values_mut() {
            if other.info.master.as_deref() == Some(name) {
                other.info.master = None;
            }
        }
        Some(iface)
    }

    /// Resolves the interface a static route goes out of.
    fn route_link(&self, route: &StaticRoute) -> Result<String> {
        if let Some(i) = &route.interface {
            self.iface_exists(i)?;
        }
        match route.gateway {
            Some(gw) => self.on_link(gw, route.interface.as_deref()).ok_or_else(|| Self::unreachable(gw)),
            None => Ok(route.interface.clone().unwrap_or_default()),
        }
    }
}

fn normalized(route: &StaticRoute) -> StaticRoute {
    StaticRoute { dst: route.dst.trunc(), gateway: route.gateway, interface: route.interface.clone() }
}

impl FakeSandbox {
    pub(crate) fn lb_state(&self) -> &Mutex<super::lb::LbState> {
        &self.lb
    }

    /// A fresh, empty sandbox for `key` (checked with [`check_key`]). Its origin namespace holds
    /// only `lo`.
    pub fn new(key: &str) -> Result<FakeSandbox> {
        check_key(key)?;
        let mut state = State::default();
        state.host_links.insert(LOOPBACK.to_owned(), HostLink { mac: None, vxlan: false, bridge: false });
        Ok(FakeSandbox { key: key.to_owned(), state: Arc::new(Mutex::new(state)), lb: Arc::default() })
    }

    /// A sandbox adopted from an existing namespace that already holds `links` (a container's,
    /// like [`NetnsSandbox::from_external`](super::NetnsSandbox::from_external)): they are
    /// neither created nor moved in by the sandbox, `remove_interface` refuses them and
    /// `destroy` leaves them where they are ([`FakeSandbox::left_in_namespace`]).
    pub fn external(key: &str, links: &[&str]) -> Result<FakeSandbox> {
        let sb = FakeSandbox::new(key)?;
        {
            let mut st = sb.state.lock();
            for name in links {
                validate::ifname(name)?;
                if *name == LOOPBACK || st.ifaces.contains_key(*name) {
                    return Err(Error::AlreadyExists { kind: "interface", name: (*name).to_owned() });
                }
                let mac = st.next_mac();
                let opts = IfaceOptions::new();
                let planned = st.plan(&opts)?;
                st.insert(name, Kind::Foreign, None, Some(mac), &opts, planned);
            }
        }
        Ok(sb)
    }

    /// Another handle on the same sandbox, as [`NetnsSandbox::open`](super::NetnsSandbox::open)
    /// of the same key gives: destroying through one is seen by all.
    pub fn handle(&self) -> FakeSandbox {
        FakeSandbox { key: self.key.clone(), state: Arc::clone(&self.state), lb: Arc::clone(&self.lb) }
    }

    /// Simulates the origin namespace going away (its owner deleted it): links moved in can no
    /// longer go home. Its links are gone with it.
    pub fn drop_origin(&self) {
        let mut st = self.state.lock();
        st.origin_gone = true;
        st.host_links.clear();
    }

    /// Links `destroy` left in the namespace, sorted: an adopted namespace's own links, and
    /// moved-in links that could not go home.
    pub fn left_in_namespace(&self) -> Vec<String> {
        let mut v = self.state.lock().left.clone();
        v.sort();
        v
    }

    /// Simulates a VXLAN device `name` in the origin namespace (overlay drivers make one there
    /// and move it in), which can carry fdb entries once inside.
    pub fn add_host_vxlan(&self, name: &str, mac: Option<[u8; 6]>) -> Result<()> {
        self.add_host(name, HostLink { mac, vxlan: true, bridge: false })
    }

    /// Simulates a bridge `name` in the origin namespace, for [`IfaceOptions::host_master`].
    pub fn add_host_bridge(&self, name: &str) -> Result<()> {
        self.add_host(name, HostLink { mac: None, vxlan: false, bridge: true })
    }

    /// Simulates a link `name` (with MAC `mac`) in the origin namespace, ready for
    /// [`Sandbox::add_interface`]. Works after `destroy` too: the origin namespace outlives the
    /// sandbox. Errors: `InvalidName`, `InvalidMac`, `AlreadyExists{kind:"link"}`.
    pub fn add_host_link(&self, name: &str, mac: Option<[u8; 6]>) -> Result<()> {
        self.add_host(name, HostLink { mac, vxlan: false, bridge: false })
    }

    fn add_host(&self, name: &str, link: HostLink) -> Result<()> {
        validate::ifname(name)?;
        if let Some(m) = &link.mac {
            validate::mac_bytes(m)?;
        }
        let mut st = self.state.lock();
        if st.host_links.contains_key(name) {
            return Err(Error::AlreadyExists { kind: "link", name: name.to_owned() });
        }
        st.host_links.insert(name.to_owned(), link);
        Ok(())
    }

    /// The link names in the origin namespace, sorted (always including `lo`).
    pub fn host_links(&self) -> Vec<String> {
        self.state.lock().host_links.keys().cloned().collect()
    }

    /// Creates a VXLAN device `name` inside the sandbox (`created: true`), which can carry fdb
    /// ([`NeighFamily::Bridge`]) neighbor entries. Errors: `Destroyed`, `InvalidName`,
    /// `AlreadyExists{kind:"interface"}`.
    pub fn add_vxlan(&self, name: &str) -> Result<()> {
        let mut st = self.state.lock();
        if st.destroyed {
            return Err(destroyed(&self.key));
        }
        validate::ifname(name)?;
        if st.ifaces.contains_key(name) || name == LOOPBACK {
            return Err(Error::AlreadyExists { kind: "interface", name: name.to_owned() });
        }
        let mac = st.next_mac();
        let opts = IfaceOptions::new();
        let planned = st.plan(&opts)?;
        st.insert(name, Kind::Vxlan, None, Some(mac), &opts, planned);
        Ok(())
    }

    fn live(&self) -> Result<parking_lot::MutexGuard<'_, State>> {
        let st = self.state.lock();
        if st.destroyed { Err(destroyed(&self.key)) } else { Ok(st) }
    }
}

impl FakeSandbox {
    /// [`Sandbox::destroy`], telling which moved-in links could not go home, like
    /// [`NetnsSandbox::destroy_reporting`](super::NetnsSandbox::destroy_reporting).
    pub fn destroy_reporting(&self) -> Result<DestroyReport> {
        let mut st = self.state.lock();
        let mut report = DestroyReport::default();
        if st.destroyed {
            return Ok(report);
        }
        // As the real one: moved links go home under their origin name when it is free (else
        // they stay and are reported), veths made here take their host ends with them, an
        // adopted namespace keeps its own links.
        let ifaces = std::mem::take(&mut st.ifaces);
        let mut left = Vec::new();
        for (name, iface) in ifaces {
            match iface.kind {
                Kind::Moved { vxlan } => match iface.info.origin_name {
                    Some(origin) if !st.origin_gone && !st.host_links.contains_key(&origin) => {
                        st.host_links.insert(origin, HostLink { mac: iface.info.mac, vxlan, bridge: false });
                    }
                    Some(origin) => {
                        let why = if st.origin_gone {
                            "its origin namespace no longer exists".to_owned()
                        } else {
                            format!("{origin} is taken in its origin")
                        };
                        report.left_behind.push((name.clone(), why));
                        left.push(name);
                    }
                    None => left.push(name),
                },
                Kind::Veth { host } => {
                    st.host_links.remove(&host);
                }
                Kind::Foreign => left.push(name),
                Kind::Bridge | Kind::Vxlan => {}
            }
        }
        let host_links = std::mem::take(&mut st.host_links);
        let origin_gone = st.origin_gone;
        *st = State { destroyed: true, host_links, origin_gone, left, ..State::default() };
        Ok(report)
    }

    /// Every address inside, the loopback's built-ins included.
    fn all_addresses(st: &State) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = check::LOOPBACK_BUILTINS.iter().map(|(a, _)| *a).collect();
        v.extend(st.loopback_addresses.iter().map(IpNet::addr));
        v.extend(st.ifaces.values().flat_map(|i| i.info.addresses.iter().map(IpNet::addr)));
        v
    }
}

impl Sandbox for FakeSandbox {
    fn key(&self) -> &str {
        &self.key
    }

    fn add_interface(&self, src_name: &str, dst_prefix: &str, opts: &IfaceOptions) -> Result<String> {
        let mut st = self.live()?;
        check::add_interface(src_name, dst_prefix, opts)?;
        let (kind, origin, mac) = if opts.bridge {
            (Kind::Bridge, None, None)
        } else {
            let found = st.host_links.get(src_name).copied();
            check::movable(src_name, found.map(|_| src_name == LOOPBACK))?;
            let link = found.ok_or_else(|| Error::NotFound { kind: "link", name: src_name.to_owned() })?;
            (Kind::Moved { vxlan: link.vxlan }, Some(src_name.to_owned()), link.mac)
        };
        let planned = st.plan(opts)?;
        let name = st.dst_name(dst_prefix, opts)?;
        let mac = match opts.mac.or(mac) {
            Some(m) => m,
            None => st.next_mac(),
        };
        if matches!(kind, Kind::Moved { .. }) {
            st.host_links.remove(src_name);
        }
        st.insert(&name, kind, origin, Some(mac), opts, planned);
        Ok(name)
    }

    fn add_veth(&self, host_name: &str, dst_prefix: &str, opts: &IfaceOptions) -> Result<String> {
        let mut st = self.live()?;
        check::add_veth(host_name, dst_prefix, opts)?;
        let planned = st.plan(opts)?;
        if let Some(br) = &opts.host_master {
            match st.host_links.get(br) {
                None => return Err(Error::NotFound { kind: "bridge", name: br.clone() }),
                Some(l) if !l.bridge => {
                    let kind = if br == LOOPBACK {
                        "loopback"
                    } else if l.vxlan {
                        "vxlan"
                    } else {
                        "veth"
                    };
                    return Err(Error::NotABridge { name: br.clone(), kind: kind.into() });
                }
                Some(_) => {}
            }
        }
        if st.host_links.contains_key(host_name) {
            return Err(Error::AlreadyExists { kind: "link", name: host_name.to_owned() });
        }
        let name = st.dst_name(dst_prefix, opts)?;
        let mac = match opts.mac {
            Some(m) => m,
            None => st.next_mac(),
        };
        let host_mac = st.next_mac();
        st.host_links.insert(host_name.to_owned(), HostLink { mac: Some(host_mac), vxlan: false, bridge: false });
        st.insert(&name, Kind::Veth { host: host_name.to_owned() }, None, Some(mac), opts, planned);
        Ok(name)
    }

    fn remove_interface(&self, name: &str) -> Result<()> {
        let mut st = self.live()?;
        check::remove_interface(name)?;
        let Some(iface) = st.ifaces.get(name) else {
            return Err(Error::NotFound { kind: "interface", name: name.to_owned() });
        };
        match (&iface.kind, &iface.info.origin_name) {
            (Kind::Foreign, _) => {
                return Err(Error::InvalidArgument {
                    op: "remove interface",
                    reason: format!("{name} was not added through netsandbox: its origin namespace is unknown"),
                });
            }
            (Kind::Moved { .. }, Some(origin)) if st.origin_gone => {
                return Err(Error::NotFound {
                    kind: "origin namespace",
                    name: format!("origin of {name} as {origin}"),
                });
            }
            (Kind::Moved { .. }, Some(origin)) if st.host_links.contains_key(origin) => {
                return Err(Error::AlreadyExists { kind: "link", name: origin.clone() });
            }
            _ => {}
        }
        let Some(iface) = st.take(name) else {
            return Err(Error::NotFound { kind: "interface", name: name.to_owned() });
        };
        match iface.kind {
            Kind::Moved { vxlan } => {
                if let Some(origin) = iface.info.origin_name {
                    st.host_links.insert(origin, HostLink { mac: iface.info.mac, vxlan, bridge: false });
                }
            }
            Kind::Veth { host } => {
                st.host_links.remove(&host);
            }
            Kind::Bridge | Kind::Vxlan | Kind::Foreign => {}
        }
        Ok(())
    }

    fn interfaces(&self) -> Result<Vec<InterfaceInfo>> {
        let st = self.live()?;
        Ok(st.ifaces.values().map(|i| i.info.clone()).collect())
    }

    fn statistics(&self, name: &str) -> Result<Statistics> {
        let st = self.live()?;
        check::ifname(name)?;
        if name != LOOPBACK {
            st.iface_exists(name)?;
        }
        Ok(Statistics::default())
    }

    fn set_gateway(&self, gw: IpAddr) -> Result<()> {
        let mut st = self.live()?;
        check::gateway(gw)?;
        let link = st.on_link(gw, None).ok_or_else(|| State::unreachable(gw))?;
        let taken = || Error::AlreadyExists { kind: "gateway", name: gw.to_string() };
        match gw {
            IpAddr::V4(v4) => {
                if st.gateway.is_some() {
                    return Err(taken());
                }
                st.gateway = Some((v4, link));
            }
            IpAddr::V6(v6) => {
                if st.gateway6.is_some() {
                    return Err(taken());
                }
                st.gateway6 = Some((v6, link));
            }
        }
        Ok(())
    }

    fn unset_gateway(&self, gw: IpAddr) -> Result<()> {
        let mut st = self.live()?;
        check::gateway(gw)?;
        let set = match gw {
            IpAddr::V4(v4) => st.gateway.as_ref().is_some_and(|(g, _)| *g == v4),
            IpAddr::V6(v6) => st.gateway6.as_ref().is_some_and(|(g, _)| *g == v6),
        };
        if !set {
            return Err(Error::NotFound { kind: "gateway", name: gw.to_string() });
        }
        match gw {
            IpAddr::V4(_) => st.gateway = None,
            IpAddr::V6(_) => st.gateway6 = None,
        }
        Ok(())
    }

    fn add_static_route(&self, route: &StaticRoute) -> Result<()> {
        let mut st = self.live()?;
        check::static_route(route)?;
        let route = normalized(route);
        let via_link = st.route_link(&route)?;
        let existing = st.routes();
        let default_dup = route.dst.prefix_len() == 0
            && (st.static_routes.iter().any(|r| r.route.dst == route.dst)
                || match route.dst.addr() {
                    IpAddr::V4(_) => st.gateway.is_some(),
                    IpAddr::V6(_) => st.gateway6.is_some(),
                });
        if default_dup || (route.dst.prefix_len() > 0 && st.route_taken(&existing, &route.dst)) {
            return Err(Error::AlreadyExists { kind: "route", name: route.dst.to_string() });
        }
        st.static_routes.push(StoredRoute { route, via_link });
        Ok(())
    }

    fn remove_static_route(&self, route: &StaticRoute) -> Result<()> {
        let mut st = self.live()?;
        check::static_route(route)?;
        let route = normalized(route);
        let via_link = st.route_link(&route)?;
        let pos = st.static_routes.iter().position(|r| {
            r.route.dst == route.dst
                && (route.gateway.is_none() || r.route.gateway == route.gateway)
                && (route.interface.is_none() || r.via_link == via_link)
        });
        match pos {
            Some(p) => {
                st.static_routes.remove(p);
                Ok(())
            }
            None => Err(Error::NotFound { kind: "route", name: route.dst.to_string() }),
        }
    }

    fn add_neighbor(&self, ip: IpAddr, mac: [u8; 6], force: bool, opts: &NeighOptions) -> Result<()> {
        let mut st = self.live()?;
        check::add_neighbor(&mac, opts)?;
        let link = match &opts.link_name {
            Some(l) => {
                st.iface_exists(l)?;
                if opts.family == NeighFamily::Bridge {
                    check::fdb_device(l, st.ifaces.get(l).is_some_and(Iface::is_vxlan))?;
                }
                l.clone()
            }
            None => st.on_link(ip, None).ok_or_else(|| State::unreachable(ip))?,
        };
        let info = NeighborInfo { ip, mac, link_name: link, family: opts.family };
        let existing = st
            .neighbors
            .iter()
            .position(|n| n.info.ip == ip && n.info.family == info.family && n.info.link_name == info.link_name);
        match existing {
            Some(_) if !force => Err(Error::AlreadyExists { kind: "neighbor", name: ip.to_string() }),
            Some(p) => {
                st.neighbors[p] = Neigh { info };
                Ok(())
            }
            None => {
                st.neighbors.push(Neigh { info });
                Ok(())
            }
        }
    }

    fn delete_neighbor(&self, ip: IpAddr, mac: [u8; 6], os_delete: bool) -> Result<()> {
        let mut st = self.live()?;
        check::delete_neighbor(&mac)?;
        let mut candidates: Vec<usize> = (0..st.neighbors.len())
            .filter(|&i| st.neighbors[i].info.ip == ip && st.neighbors[i].info.mac == mac)
            .collect();
        candidates.sort_by(|&a, &b| st.neighbors[a].info.cmp(&st.neighbors[b].info));
        let Some(&p) = candidates.first() else {
            return Err(Error::NotFound { kind: "neighbor", name: ip.to_string() });
        };
        if os_delete {
            st.neighbors.remove(p);
        }
        Ok(())
    }

    fn add_alias_ip(&self, ifname: &str, cidr: IpNet) -> Result<()> {
        let mut st = self.live()?;
        check::alias_ip(ifname, &cidr)?;
        if ifname != LOOPBACK {
            st.iface_exists(ifname)?;
        }
        check::alias_unique(&cidr, Self::all_addresses(&st))?;
        let list = match st.ifaces.get_mut(ifname) {
            Some(i) => &mut i.info.addresses,
            None => &mut st.loopback_addresses,
        };
        list.push(cidr);
        list.sort();
        Ok(())
    }

    fn remove_alias_ip(&self, ifname: &str, cidr: IpNet) -> Result<()> {
        let mut st = self.live()?;
        check::alias_ip(ifname, &cidr)?;
        let list = if ifname == LOOPBACK {
            &mut st.loopback_addresses
        } else {
            match st.ifaces.get_mut(ifname) {
                Some(i) => &mut i.info.addresses,
                None => return Err(Error::NotFound { kind: "interface", name: ifname.to_owned() }),
            }
        };
        match list.iter().position(|a| *a == cidr) {
            Some(p) => {
                list.remove(p);
                Ok(())
            }
            None => Err(Error::NotFound { kind: "address", name: cidr.to_string() }),
        }
    }

    fn disable_arp_for_vip(&self, ifname: &str) -> Result<()> {
        let st = self.live()?;
        check::ifname(ifname)?;
        if ifname == LOOPBACK { Ok(()) } else { st.iface_exists(ifname) }
    }

    fn apply_os_tweaks(&self, types: &[SandboxType]) -> Result<TweakReport> {
        let _st = self.live()?;
        let mut report = TweakReport::default();
        if !types.is_empty() {
            // Modelled on this project's kernel, which has no IPVS: every key is missing.
            report.missing = check::LB_SYSCTLS.iter().map(|(k, _)| (*k).to_owned()).collect();
        }
        Ok(report)
    }

    fn invoke_boxed(&self, f: Box<dyn FnOnce() + Send + '_>) -> Result<()> {
        drop(self.live()?);
        std::thread::scope(|s| s.spawn(f).join()).map_err(|payload| {
            let message = if let Some(s) = payload.downcast_ref::<&str>() {
                (*s).to_owned()
            } else if let Some(s) = payload.downcast_ref::<String>() {
                s.clone()
            } else {
                "non-string panic payload".to_owned()
            };
            Error::Panicked { ns: self.key.clone(), message }
        })
    }

    fn restore(&self) -> Result<()> {
        // The view is the "kernel's": nothing to rebuild.
        self.live().map(drop)
    }

    fn info(&self) -> Result<SandboxInfo> {
        let st = self.live()?;
        let mut static_routes: Vec<StaticRoute> = st.static_routes.iter().map(|r| r.route.clone()).collect();
        static_routes.sort();
        let mut neighbors: Vec<NeighborInfo> = st.neighbors.iter().map(|n| n.info.clone()).collect();
        neighbors.sort();
        Ok(SandboxInfo {
            key: self.key.clone(),
            interfaces: st.ifaces.values().map(|i| i.info.clone()).collect(),
            gateway: st.gateway.as_ref().map(|(g, _)| *g),
            gateway6: st.gateway6.as_ref().map(|(g, _)| *g),
            static_routes,
            neighbors,
            loopback_addresses: st.loopback_addresses.clone(),
        })
    }

    fn destroy(&self) -> Result<()> {
        self.destroy_reporting().map(drop)
    }
}
