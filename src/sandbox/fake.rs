//! [`FakeSandbox`]: an in-memory [`Sandbox`] for container engines' unit tests.
//!
//! It models what the bind-mounted netns implementation does on the kernel, input by input: the
//! same validation order, the same typed errors, the same naming (prefix + lowest free index),
//! the same "failure changes nothing" rule. It also models the origin ("host") namespace as a set
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
//! - [`delete_neighbor`](Sandbox::delete_neighbor) without `os_delete` forgets the entry but the
//!   "kernel" keeps it: a later plain add is `AlreadyExists`, and [`restore`](Sandbox::restore)
//!   brings it back into the view, as the real implementation reading the kernel would.
//! - [`destroy`](Sandbox::destroy) returns moved links to the origin namespace under their origin
//!   name when it is free (else deletes them), like the real one. Host ends of veths made by
//!   [`add_veth`](Sandbox::add_veth) disappear with their peers.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use parking_lot::Mutex;

use super::Sandbox;
use super::info::{InterfaceInfo, NeighborInfo, SandboxInfo, Statistics, TweakReport};
use super::key::check_key;
use super::options::{IfaceOptions, NeighFamily, NeighOptions, SandboxType, StaticRoute};
use crate::error::{Error, Result};
use crate::validate;

/// The IPVS keys [`Sandbox::apply_os_tweaks`] sets; this kernel has no IPVS, so all are missing.
const IPVS_KEYS: [&str; 3] =
    ["net.ipv4.vs.conn_reuse_mode", "net.ipv4.vs.expire_nodest_conn", "net.ipv4.vs.expire_quiescent_template"];

const LOOPBACK: &str = "lo";
const DEFAULT_MTU: u32 = 1500;

/// What an interface inside the fake sandbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// Moved in from the origin namespace.
    Moved,
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
        self.kind == Kind::Vxlan || self.info.name.starts_with("vx")
    }
}

#[derive(Debug, Clone)]
struct Neigh {
    info: NeighborInfo,
    /// False once forgotten with `delete_neighbor(.., os_delete: false)`: still in the "kernel".
    tracked: bool,
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
    /// Links in the origin namespace: name → MAC.
    host_links: BTreeMap<String, Option<[u8; 6]>>,
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
    state: Mutex<State>,
    /// The load balancer (src/sandbox/lb).
    lb: Mutex<super::lb::LbState>,
}

fn is_host_prefix(net: &IpNet) -> bool {
    net.prefix_len() == net.max_prefix_len()
}

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn same_family(a: &IpNet, b: &IpNet) -> bool {
    a.addr().is_ipv4() == b.addr().is_ipv4()
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
    fn plan(&self, op: &'static str, opts: &IfaceOptions) -> Result<(Vec<IpNet>, Vec<IpNet>)> {
        if let Some(m) = &opts.master {
            match self.ifaces.get(m) {
                None => return Err(Error::NotFound { kind: "bridge", name: m.clone() }),
                Some(i) if i.kind != Kind::Bridge => {
                    return Err(Error::InvalidArgument { op, reason: format!("master {m} is not a bridge") });
                }
                Some(_) => {}
            }
        }
        let existing = self.routes();
        if let Some(a) = &opts.address {
            let net = a.trunc();
            if let Some((dst, _)) = existing.iter().find(|(d, _)| same_family(d, &net) && overlaps(d, &net)) {
                return Err(Error::InvalidArgument {
                    op,
                    reason: format!("address {a} conflicts with route {dst} already in the sandbox"),
                });
            }
        }
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
            created: kind != Kind::Moved,
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
        state.host_links.insert(LOOPBACK.to_owned(), None);
        Ok(FakeSandbox { key: key.to_owned(), state: Mutex::new(state), lb: Mutex::default() })
    }

    /// Simulates a link `name` (with MAC `mac`) in the origin namespace, ready for
    /// [`Sandbox::add_interface`]. Works after `destroy` too: the origin namespace outlives the
    /// sandbox. Errors: `InvalidName`, `InvalidMac`, `AlreadyExists{kind:"link"}`.
    pub fn add_host_link(&self, name: &str, mac: Option<[u8; 6]>) -> Result<()> {
        validate::ifname(name)?;
        if let Some(m) = &mac {
            validate::mac_bytes(m)?;
        }
        let mut st = self.state.lock();
        if st.host_links.contains_key(name) {
            return Err(Error::AlreadyExists { kind: "link", name: name.to_owned() });
        }
        st.host_links.insert(name.to_owned(), mac);
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
        let planned = st.plan("add interface", &opts)?;
        st.insert(name, Kind::Vxlan, None, Some(mac), &opts, planned);
        Ok(())
    }

    fn live(&self) -> Result<parking_lot::MutexGuard<'_, State>> {
        let st = self.state.lock();
        if st.destroyed { Err(destroyed(&self.key)) } else { Ok(st) }
    }
}

fn check_cidr(cidr: &IpNet) -> Result<()> {
    validate::host_cidr(cidr)
}

impl Sandbox for FakeSandbox {
    fn key(&self) -> &str {
        &self.key
    }

    fn add_interface(&self, src_name: &str, dst_prefix: &str, opts: &IfaceOptions) -> Result<String> {
        let mut st = self.live()?;
        validate::ifname(src_name)?;
        validate::ifname_prefix(dst_prefix)?;
        opts.check()?;
        let (kind, origin, mac) = if opts.bridge {
            (Kind::Bridge, None, None)
        } else {
            let Some(mac) = st.host_links.get(src_name).copied() else {
                return Err(Error::NotFound { kind: "link", name: src_name.to_owned() });
            };
            if src_name == LOOPBACK {
                return Err(Error::InvalidArgument {
                    op: "add interface",
                    reason: "the loopback cannot change namespace".into(),
                });
            }
            (Kind::Moved, Some(src_name.to_owned()), mac)
        };
        let planned = st.plan("add interface", opts)?;
        let name = st.free_name(dst_prefix)?;
        let mac = match opts.mac.or(mac) {
            Some(m) => m,
            None => st.next_mac(),
        };
        if kind == Kind::Moved {
            st.host_links.remove(src_name);
        }
        st.insert(&name, kind, origin, Some(mac), opts, planned);
        Ok(name)
    }

    fn add_veth(&self, host_name: &str, dst_prefix: &str, opts: &IfaceOptions) -> Result<String> {
        let mut st = self.live()?;
        validate::ifname(host_name)?;
        validate::ifname_prefix(dst_prefix)?;
        opts.check()?;
        if opts.bridge {
            return Err(Error::InvalidArgument { op: "add veth", reason: "a veth cannot be a bridge".into() });
        }
        if st.host_links.contains_key(host_name) {
            return Err(Error::AlreadyExists { kind: "link", name: host_name.to_owned() });
        }
        let planned = st.plan("add interface", opts)?;
        let name = st.free_name(dst_prefix)?;
        let mac = match opts.mac {
            Some(m) => m,
            None => st.next_mac(),
        };
        let host_mac = st.next_mac();
        st.host_links.insert(host_name.to_owned(), Some(host_mac));
        st.insert(&name, Kind::Veth { host: host_name.to_owned() }, None, Some(mac), opts, planned);
        Ok(name)
    }

    fn remove_interface(&self, name: &str) -> Result<()> {
        let mut st = self.live()?;
        validate::ifname(name)?;
        let Some(iface) = st.ifaces.get(name) else {
            return Err(Error::NotFound { kind: "interface", name: name.to_owned() });
        };
        if iface.kind == Kind::Moved
            && let Some(origin) = &iface.info.origin_name
            && st.host_links.contains_key(origin)
        {
            return Err(Error::AlreadyExists { kind: "link", name: origin.clone() });
        }
        let Some(iface) = st.take(name) else {
            return Err(Error::NotFound { kind: "interface", name: name.to_owned() });
        };
        match iface.kind {
            Kind::Moved => {
                if let Some(origin) = iface.info.origin_name {
                    st.host_links.insert(origin, iface.info.mac);
                }
            }
            Kind::Veth { host } => {
                st.host_links.remove(&host);
            }
            Kind::Bridge | Kind::Vxlan => {}
        }
        Ok(())
    }

    fn interfaces(&self) -> Result<Vec<InterfaceInfo>> {
        let st = self.live()?;
        Ok(st.ifaces.values().map(|i| i.info.clone()).collect())
    }

    fn statistics(&self, name: &str) -> Result<Statistics> {
        let st = self.live()?;
        validate::ifname(name)?;
        st.iface_exists(name)?;
        Ok(Statistics::default())
    }

    fn set_gateway(&self, gw: IpAddr) -> Result<()> {
        let mut st = self.live()?;
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
        route.check()?;
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
        route.check()?;
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
        validate::mac_bytes(&mac)?;
        opts.check()?;
        let link = match &opts.link_name {
            Some(l) => {
                st.iface_exists(l)?;
                l.clone()
            }
            None => st.on_link(ip, None).ok_or_else(|| State::unreachable(ip))?,
        };
        if opts.family == NeighFamily::Bridge && !st.ifaces.get(&link).is_some_and(Iface::is_vxlan) {
            return Err(Error::InvalidArgument {
                op: "add neighbor",
                reason: format!("fdb entries need a VXLAN device; {link} is not one"),
            });
        }
        let info = NeighborInfo { ip, mac, link_name: link, family: opts.family };
        let existing = st
            .neighbors
            .iter()
            .position(|n| n.info.ip == ip && n.info.family == info.family && n.info.link_name == info.link_name);
        match existing {
            Some(_) if !force => Err(Error::AlreadyExists { kind: "neighbor", name: ip.to_string() }),
            Some(p) => {
                st.neighbors[p] = Neigh { info, tracked: true };
                Ok(())
            }
            None => {
                st.neighbors.push(Neigh { info, tracked: true });
                Ok(())
            }
        }
    }

    fn delete_neighbor(&self, ip: IpAddr, mac: [u8; 6], os_delete: bool) -> Result<()> {
        let mut st = self.live()?;
        validate::mac_bytes(&mac)?;
        let mut candidates: Vec<usize> = (0..st.neighbors.len())
            .filter(|&i| st.neighbors[i].tracked && st.neighbors[i].info.ip == ip && st.neighbors[i].info.mac == mac)
            .collect();
        candidates.sort_by(|&a, &b| st.neighbors[a].info.cmp(&st.neighbors[b].info));
        let Some(&p) = candidates.first() else {
            return Err(Error::NotFound { kind: "neighbor", name: ip.to_string() });
        };
        if os_delete {
            st.neighbors.remove(p);
        } else {
            st.neighbors[p].tracked = false;
        }
        Ok(())
    }

    fn add_alias_ip(&self, ifname: &str, cidr: IpNet) -> Result<()> {
        let mut st = self.live()?;
        validate::ifname(ifname)?;
        check_cidr(&cidr)?;
        let same = |b: &IpNet| if cidr.addr().is_ipv4() { *b == cidr } else { b.addr() == cidr.addr() };
        let dup = || Error::AlreadyExists { kind: "address", name: cidr.to_string() };
        if ifname == LOOPBACK {
            // 127.0.0.1/8 and ::1/128 are always there.
            let builtin =
                [IpNet::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8), IpNet::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 128)];
            if st.loopback_addresses.iter().any(same) || builtin.iter().flatten().any(same) {
                return Err(dup());
            }
            st.loopback_addresses.push(cidr);
            st.loopback_addresses.sort();
            return Ok(());
        }
        let Some(iface) = st.ifaces.get_mut(ifname) else {
            return Err(Error::NotFound { kind: "interface", name: ifname.to_owned() });
        };
        if iface.info.addresses.iter().any(same) {
            return Err(dup());
        }
        iface.info.addresses.push(cidr);
        iface.info.addresses.sort();
        Ok(())
    }

    fn remove_alias_ip(&self, ifname: &str, cidr: IpNet) -> Result<()> {
        let mut st = self.live()?;
        validate::ifname(ifname)?;
        check_cidr(&cidr)?;
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
        validate::ifname(ifname)?;
        if ifname == LOOPBACK { Ok(()) } else { st.iface_exists(ifname) }
    }

    fn apply_os_tweaks(&self, types: &[SandboxType]) -> Result<TweakReport> {
        let _st = self.live()?;
        let mut report = TweakReport::default();
        if !types.is_empty() {
            report.missing = IPVS_KEYS.iter().map(|k| (*k).to_owned()).collect();
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
        let mut st = self.live()?;
        // The view is rebuilt from the "kernel": forgotten neighbor entries come back.
        for n in &mut st.neighbors {
            n.tracked = true;
        }
        Ok(())
    }

    fn info(&self) -> Result<SandboxInfo> {
        let st = self.live()?;
        let mut static_routes: Vec<StaticRoute> = st.static_routes.iter().map(|r| r.route.clone()).collect();
        static_routes.sort();
        let mut neighbors: Vec<NeighborInfo> =
            st.neighbors.iter().filter(|n| n.tracked).map(|n| n.info.clone()).collect();
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
        let mut st = self.state.lock();
        if st.destroyed {
            return Ok(());
        }
        // As the real one: moved links go home under their origin name when it is free (else
        // they are deleted), veths made here take their host ends with them.
        let ifaces = std::mem::take(&mut st.ifaces);
        for iface in ifaces.into_values() {
            match iface.kind {
                Kind::Moved => {
                    if let Some(origin) = iface.info.origin_name
                        && !st.host_links.contains_key(&origin)
                    {
                        st.host_links.insert(origin, iface.info.mac);
                    }
                }
                Kind::Veth { host } => {
                    st.host_links.remove(&host);
                }
                Kind::Bridge | Kind::Vxlan => {}
            }
        }
        let host_links = std::mem::take(&mut st.host_links);
        *st = State { destroyed: true, host_links, ..State::default() };
        Ok(())
    }
}
