//! VM sandboxes: hand a virtual machine a TAP (or macvtap) carrying the traffic of an interface
//! a CNI plugin configured in the sandbox (a veth `eth0` with addresses and routes), in one of
//! the three ways VM runtimes do it, and undo it exactly.
//!
//! - [`AttachMode::TcRedirect`] (Kata's default): a TAP beside the veth, an `ingress` qdisc on
//!   both and a `u32` match-everything filter with `mirred egress redirect` each way. The
//!   veth keeps its addresses; the guest uses the veth's MAC and MTU.
//! - [`AttachMode::Bridge`] (Virtlet): a bridge joining veth and TAP. The veth's addresses
//!   and non-kernel routes are taken off and kept for the guest (for its DHCP server or its
//!   own configuration), the veth gets a random locally administered MAC and the guest the
//!   original one; the bridge gets `169.254.254.2/24` for a DHCP server.
//! - [`AttachMode::Macvtap`] (Kata's macvtap model): a bridge-mode macvtap on the veth with the
//!   veth's MAC (the veth gets a random one); the veth's addresses and routes are taken off and
//!   kept; the queues are `/dev/tap<ifindex>` opened through a private device node.
//!
//! What an attachment changed is recorded in the kernel, on the device it created (see
//! `state.rs`), so [`NetnsSandbox::vm_recover`] rebuilds the description and re-opens the
//! queues after an engine restart without changing anything, and [`NetnsSandbox::vm_detach`]
//! puts back exactly what was there: addresses (with their flags), routes, MAC; no qdisc,
//! filter, bridge or TAP left.

mod macvtap;
mod state;
mod tap;

use std::net::IpAddr;
use std::os::fd::OwnedFd;

use ipnet::IpNet;
use log::{debug, warn};
use nix::errno::Errno;

pub use tap::{MAX_QUEUES, Tap, TapInfo, TapOptions};

use super::random::random_local_mac;
use super::{NetnsSandbox, Sandbox};
use crate::error::{Error, Result};
use crate::netlink::addr::{self, AddrOptions};
use crate::netlink::consts::{IFA_F_NODAD, RT_SCOPE_LINK, RTN_UNICAST, RTPROT_KERNEL};
use crate::netlink::link::{self, LinkChange, LinkRef};
use crate::netlink::route::{self, RouteSpec};
use crate::netlink::{BatchMode, Request, Socket, tc};
use crate::netlink::{Link, LinkKind};
use crate::netns::NetNs;
use crate::validate;
use state::State;

/// The address the bridge mode puts on the bridge for a DHCP server (as Virtlet does).
pub const DHCP_SERVER_ADDRESS: &str = "169.254.254.2/24";

/// How a VM's TAP is connected to the sandbox's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// Kata's "tcfilter": ingress qdiscs and u32 + mirred redirects between veth and TAP.
    TcRedirect,
    /// Virtlet's: a bridge joining veth and TAP; the veth's IP configuration goes to the guest.
    Bridge,
    /// A bridge-mode macvtap on the veth with the veth's MAC.
    Macvtap,
}

impl std::fmt::Display for AttachMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AttachMode::TcRedirect => "tc",
            AttachMode::Bridge => "bridge",
            AttachMode::Macvtap => "macvtap",
        })
    }
}

impl std::str::FromStr for AttachMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tc" | "tc-redirect" | "tcfilter" => Ok(AttachMode::TcRedirect),
            "bridge" => Ok(AttachMode::Bridge),
            "macvtap" => Ok(AttachMode::Macvtap),
            _ => Err(Error::InvalidArgument {
                op: "vm attach",
                reason: format!("unknown mode {s:?} (tc, bridge, macvtap)"),
            }),
        }
    }
}

/// How to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachOptions {
    /// The mode.
    pub mode: AttachMode,
    /// Queues (fds) for the guest: one per vCPU for multi-queue virtio-net.
    pub queues: u16,
    /// `IFF_VNET_HDR` on the queues (vhost-net and qemu's virtio-net want it).
    pub vnet_hdr: bool,
    /// Name of the TAP (or macvtap); `nsvm<ifindex>` (`nsmvt<ifindex>`) when `None`.
    pub tap_name: Option<String>,
    /// Name of the bridge in bridge mode; `nsbr<ifindex>` when `None`.
    pub bridge_name: Option<String>,
}

impl AttachOptions {
    /// One queue, `IFF_VNET_HDR` on, default names.
    pub fn new(mode: AttachMode) -> Self {
        AttachOptions { mode, queues: 1, vnet_hdr: true, tap_name: None, bridge_name: None }
    }
    /// Sets the number of queues.
    pub fn queues(mut self, n: u16) -> Self {
        self.queues = n;
        self
    }
    /// Sets `IFF_VNET_HDR`.
    pub fn vnet_hdr(mut self, on: bool) -> Self {
        self.vnet_hdr = on;
        self
    }
    /// Names the TAP.
    pub fn tap_name(mut self, name: &str) -> Self {
        self.tap_name = Some(name.to_owned());
        self
    }
    /// Names the bridge (bridge mode).
    pub fn bridge_name(mut self, name: &str) -> Self {
        self.bridge_name = Some(name.to_owned());
        self
    }
}

/// A route the guest should have (taken off the interface in bridge and macvtap modes; the
/// interface's own in tc mode).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VmRoute {
    /// Destination.
    pub dst: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Routing table.
    pub table: u32,
    /// `rtm_protocol`.
    pub protocol: u8,
    /// `rtm_scope`.
    pub scope: u8,
    /// Metric.
    pub priority: Option<u32>,
}

/// Everything about one attached VM interface, as rebuilt from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmNetwork {
    /// The sandbox's interface the VM's traffic goes through (the CNI veth).
    pub iface: String,
    /// Its ifindex.
    pub iface_index: u32,
    /// The mode.
    pub mode: AttachMode,
    /// The TAP (or macvtap) the guest's queues belong to.
    pub tap: String,
    /// Its ifindex (a macvtap's queues are `/dev/tap<tap_index>`).
    pub tap_index: u32,
    /// The bridge, in bridge mode.
    pub bridge: Option<String>,
    /// The MAC the guest must use.
    pub guest_mac: [u8; 6],
    /// The MTU the guest must use.
    pub mtu: u32,
    /// Number of queues.
    pub queues: u16,
    /// `IFF_VNET_HDR` on the queues.
    pub vnet_hdr: bool,
    /// The guest's addresses.
    pub addresses: Vec<IpNet>,
    /// The guest's routes.
    pub routes: Vec<VmRoute>,
    /// In bridge mode, the address on the bridge for a DHCP server.
    pub dhcp_server: Option<IpNet>,
}

/// An attached VM interface and its open queues (close-on-exec; hand them to the VMM).
#[derive(Debug)]
pub struct VmAttachment {
    /// The description.
    pub network: VmNetwork,
    /// One fd per queue.
    pub queues: Vec<OwnedFd>,
}

/// The sandbox's interface as found before attaching, and what will be taken off it.
struct Found {
    link: Link,
    mac: [u8; 6],
    mtu: u32,
    addresses: Vec<(IpNet, u32)>,
    routes: Vec<VmRoute>,
}

impl NetnsSandbox {
    fn with_vm<T>(&self, f: impl FnOnce(&Socket, &NetNs) -> Result<T>) -> Result<T> {
        self.with_serialized(f)
    }

    /// Creates a TAP inside the sandbox and opens its queues (see [`TapOptions`]). A name that
    /// is taken is [`Error::AlreadyExists`]; nothing changes on any error.
    pub fn create_tap(&self, opts: &TapOptions) -> Result<Tap> {
        self.with_vm(|sock, ns| tap::create(ns, sock, opts, None))
    }

    /// Re-opens `queues` queues of the existing TAP `name` with the flags it was created with
    /// (after an engine restart; a persistent TAP). Kernel state does not change.
    pub fn open_tap(&self, name: &str, queues: u16) -> Result<Tap> {
        self.with_vm(|sock, ns| tap::reopen(ns, sock, name, queues))
    }

    /// What the kernel reports about the tun/tap device `name`; [`Error::InvalidArgument`] when
    /// it is another kind of link.
    pub fn tap_info(&self, name: &str) -> Result<TapInfo> {
        self.with_vm(|sock, _| {
            validate::ifname(name)?;
            tap::info(sock, name)?
                .1
                .ok_or_else(|| Error::InvalidArgument { op: "tap info", reason: format!("{name} is not a tun/tap") })
        })
    }

    /// Connects a new TAP (or macvtap) to interface `iface` for a VM, in `opts.mode`, and
    /// returns its description and open queues.
    ///
    /// Typed errors, with nothing changed: a missing interface is [`Error::NotFound`]; one
    /// already attached (or with an ingress qdisc, or a bridge port) is
    /// [`Error::AlreadyExists`]; a TAP or bridge name that is taken is
    /// [`Error::AlreadyExists`]; bad options are `InvalidArgument`/`InvalidName`. A failure
    /// half-way is rolled back.
    pub fn vm_attach(&self, iface: &str, opts: &AttachOptions) -> Result<VmAttachment> {
        validate::ifname(iface)?;
        if opts.queues == 0 || opts.queues > MAX_QUEUES {
            return Err(Error::InvalidArgument {
                op: "vm attach",
                reason: format!("{} queues, not 1..={MAX_QUEUES}", opts.queues),
            });
        }
        for n in opts.tap_name.iter().chain(&opts.bridge_name) {
            validate::ifname(n)?;
        }
        self.with_vm(|sock, ns| {
            let found = find(sock, iface, opts.mode)?;
            let links = sock.links()?;
            if links.iter().any(|l| attachment_of(l).is_some_and(|s| s.iface_index == found.link.index)) {
                return Err(Error::AlreadyExists { kind: "vm attachment", name: iface.to_owned() });
            }
            let idx = found.link.index;
            let tap_name = opts.tap_name.clone().unwrap_or_else(|| match opts.mode {
                AttachMode::Macvtap => format!("nsmvt{idx}"),
                _ => format!("nsvm{idx}"),
            });
            let bridge_name = opts.bridge_name.clone().unwrap_or_else(|| format!("nsbr{idx}"));
            let mut names = vec![&tap_name];
            if opts.mode == AttachMode::Bridge {
                names.push(&bridge_name);
            }
            for n in names {
                if links.iter().any(|l| &l.name == n) {
                    return Err(Error::AlreadyExists { kind: "interface", name: n.clone() });
                }
            }
            let mut st = State {
                mode: opts.mode,
                iface_index: idx,
                queues: opts.queues,
                vnet_hdr: opts.vnet_hdr,
                mac: None,
                bridge_index: None,
                addresses: Vec::new(),
                routes: Vec::new(),
            };
            let queues = match opts.mode {
                AttachMode::TcRedirect => attach_tc(sock, ns, &found, &tap_name, &st)?,
                AttachMode::Bridge => {
                    st.mac = Some(found.mac);
                    st.addresses = found.addresses.clone();
                    st.routes = found.routes.clone();
                    attach_bridge(sock, ns, &found, &tap_name, &bridge_name, &mut st)?
                }
                AttachMode::Macvtap => {
                    st.mac = Some(found.mac);
                    st.addresses = found.addresses.clone();
                    st.routes = found.routes.clone();
                    attach_macvtap(sock, ns, &found, &tap_name, &st)?
                }
            };
            let network = describe(sock, &st)?;
            debug!("{}: attached {iface} for a VM ({}, {} queues)", self.key(), opts.mode, opts.queues);
            Ok(VmAttachment { network, queues })
        })
    }

    /// Undoes [`vm_attach`](Self::vm_attach) on `iface`: the namespace is back to its state
    /// before (addresses with their flags, routes, MAC; no qdisc, filter, bridge, TAP or
    /// macvtap left). Works from the kernel alone (also after an engine restart). An interface
    /// that is not attached is [`Error::NotFound`].
    pub fn vm_detach(&self, iface: &str) -> Result<()> {
        validate::ifname(iface)?;
        self.with_vm(|sock, _| {
            let (st, dev) = attached(sock, iface)?;
            undo(sock, &st, Some(dev.index), st.bridge_index)
        })
    }

    /// The description of the VM attachment on `iface`, rebuilt from the kernel. Changes
    /// nothing. An interface that is not attached is [`Error::NotFound`].
    pub fn vm_inspect(&self, iface: &str) -> Result<VmNetwork> {
        validate::ifname(iface)?;
        self.with_vm(|sock, _| {
            let (st, _) = attached(sock, iface)?;
            describe(sock, &st)
        })
    }

    /// Every VM attachment in the sandbox, rebuilt from the kernel.
    pub fn vm_list(&self) -> Result<Vec<VmNetwork>> {
        self.with_vm(|sock, _| {
            let links = sock.links()?;
            links.iter().filter_map(attachment_of).map(|st| describe(sock, &st)).collect()
        })
    }

    /// After an engine restart: rebuilds the description of the attachment on `iface` from
    /// the kernel and re-opens its queues (`RecoverContainerSideNetwork`). Kernel state does
    /// not change.
    pub fn vm_recover(&self, iface: &str) -> Result<VmAttachment> {
        validate::ifname(iface)?;
        self.with_vm(|sock, ns| {
            let (st, dev) = attached(sock, iface)?;
            let network = describe(sock, &st)?;
            let queues = match st.mode {
                AttachMode::Macvtap => macvtap::open_queues(ns, &dev.name, dev.index, st.queues, st.vnet_hdr)?,
                _ => tap::reopen(ns, sock, &dev.name, st.queues)?.queues,
            };
            Ok(VmAttachment { network, queues })
        })
    }
}

/// The recorded state on a link, if it is a VM attachment's device.
fn attachment_of(l: &Link) -> Option<State> {
    l.alias.as_deref().and_then(State::decode)
}

/// The attachment on `iface` and the device carrying its record.
fn attached(sock: &Socket, iface: &str) -> Result<(State, Link)> {
    let link = sock.link(LinkRef::Name(iface)).map_err(|e| match e {
        Error::NotFound { .. } => Error::NotFound { kind: "interface", name: iface.to_owned() },
        e => e,
    })?;
    sock.links()?
        .into_iter()
        .find_map(|l| attachment_of(&l).filter(|s| s.iface_index == link.index).map(|s| (s, l)))
        .ok_or_else(|| Error::NotFound { kind: "vm attachment", name: iface.to_owned() })
}

/// Reads the interface and what an attachment in `mode` would take off it.
fn find(sock: &Socket, iface: &str, mode: AttachMode) -> Result<Found> {
    let link = sock.link(LinkRef::Name(iface)).map_err(|e| match e {
        Error::NotFound { .. } => Error::NotFound { kind: "interface", name: iface.to_owned() },
        e => e,
    })?;
    if link.kind == LinkKind::Loopback {
        return Err(Error::InvalidArgument { op: "vm attach", reason: format!("{iface} is the loopback") });
    }
    let mac = link.mac.ok_or_else(|| Error::InvalidArgument {
        op: "vm attach",
        reason: format!("{iface} has no Ethernet address"),
    })?;
    if link.master.is_some() {
        return Err(Error::AlreadyExists { kind: "bridge port (interface has a master)", name: iface.to_owned() });
    }
    if mode == AttachMode::TcRedirect && sock.qdiscs()?.iter().any(|q| q.index == link.index && q.is_ingress()) {
        return Err(Error::AlreadyExists { kind: "ingress qdisc", name: iface.to_owned() });
    }
    let (addresses, routes) = config(sock, link.index)?;
    Ok(Found { mtu: link.mtu.unwrap_or(1500), link, mac, addresses, routes })
}

fn encode(st: &State) -> Result<String> {
    st.encode().ok_or_else(|| Error::InvalidArgument {
        op: "vm attach",
        reason: format!(
            "{} addresses and {} routes are more than the attachment record (255 bytes) holds",
            st.addresses.len(),
            st.routes.len()
        ),
    })
}

/// One batch in one send; on failure, the first error.
fn batch(sock: &Socket, reqs: &[Request]) -> Result<()> {
    sock.batch(reqs, BatchMode::Continue)?.into_result()
}

fn attach_tc(sock: &Socket, ns: &NetNs, found: &Found, tap_name: &str, st: &State) -> Result<Vec<OwnedFd>> {
    let alias = encode(st)?;
    let opts = TapOptions::new(tap_name).mtu(found.mtu).queues(st.queues).vnet_hdr(st.vnet_hdr).persistent(true);
    let veth = found.link.index;
    let mut attempt = 1;
    loop {
        let t = tap::create(ns, sock, &opts, Some(&alias))?;
        let reqs = [
            tc::add_ingress_qdisc(veth)?,
            tc::add_ingress_qdisc(t.index)?,
            tc::add_redirect_filter(veth, t.index)?,
            tc::add_redirect_filter(t.index, veth)?,
        ];
        match batch(sock, &reqs) {
            Ok(()) => return Ok(t.queues),
            Err(e) => {
                // Roll back: the veth's qdisc (ours: there was none before), then the TAP
                // (its qdisc and filter go with it).
                let _ = sock.delete_ingress_qdisc(veth);
                delete_link(sock, t.index);
                drop(t);
                if e.errno() == Some(Errno::EBUSY) && attempt < tc::EBUSY_ATTEMPTS {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                return Err(e);
            }
        }
    }
}

fn attach_bridge(
    sock: &Socket,
    ns: &NetNs,
    found: &Found,
    tap_name: &str,
    bridge_name: &str,
    st: &mut State,
) -> Result<Vec<OwnedFd>> {
    let veth = found.link.index;
    let mut bridge_index = None;
    let mut tap_index = None;
    let run = |bridge_index: &mut Option<u32>, tap_index: &mut Option<u32>, st: &mut State| -> Result<Vec<OwnedFd>> {
        // The bridge first: its ifindex is part of the record.
        sock.execute(link::create_bridge(bridge_name)?)?;
        let br = sock.link(LinkRef::Name(bridge_name))?.index;
        *bridge_index = Some(br);
        st.bridge_index = Some(br);
        let alias = encode(st)?;
        strip(sock, veth, &found.addresses, &found.routes)?;
        let dhcp: IpNet = DHCP_SERVER_ADDRESS.parse().map_err(|_| Error::InvalidAddress {
            input: DHCP_SERVER_ADDRESS.into(),
            reason: "does not parse".into(),
        })?;
        sock.batch(
            &[
                LinkChange::new().mac(random_local_mac()).request(LinkRef::Index(veth))?,
                // No IPv6 link-local on the bridge: the namespace stays silent on the guest's link.
                LinkChange::new().mtu(found.mtu).ipv6_link_local(false).request(LinkRef::Index(br))?,
                LinkChange::new().up(true).request(LinkRef::Index(br))?,
                addr::add(br, &dhcp, AddrOptions::default())?,
            ],
            BatchMode::StopAtFirstError,
        )?
        .into_result()?;
        let opts =
            TapOptions::new(tap_name).mtu(found.mtu).queues(st.queues).vnet_hdr(st.vnet_hdr).persistent(true).up(false);
        let t = tap::create(ns, sock, &opts, Some(&alias))?;
        *tap_index = Some(t.index);
        sock.batch(
            &[
                LinkChange::new().master(br).up(true).request(LinkRef::Index(t.index))?,
                LinkChange::new().master(br).request(LinkRef::Index(veth))?,
            ],
            BatchMode::StopAtFirstError,
        )?
        .into_result()?;
        Ok(t.queues)
    };
    match run(&mut bridge_index, &mut tap_index, st) {
        Ok(q) => Ok(q),
        Err(e) => {
            warn!("vm attach (bridge) of {} failed ({e}); rolling back", found.link.name);
            if let Err(u) = undo(sock, st, tap_index, bridge_index) {
                warn!("rollback incomplete: {u}");
            }
            Err(e)
        }
    }
}

fn attach_macvtap(sock: &Socket, ns: &NetNs, found: &Found, name: &str, st: &State) -> Result<Vec<OwnedFd>> {
    let veth = found.link.index;
    let alias = encode(st)?;
    let mut dev = None;
    let mut run = || -> Result<Vec<OwnedFd>> {
        // The veth lets go of its MAC before the macvtap takes it: never two on the wire.
        sock.set_link(LinkRef::Index(veth), &LinkChange::new().mac(random_local_mac()))?;
        sock.execute(link::create_macvtap(name, veth, Some(found.mac), Some(found.mtu))?)?;
        let index = sock.link(LinkRef::Name(name))?.index;
        dev = Some(index);
        // The guest's multicast (IPv6 neighbour discovery above all) reaches a macvtap only
        // through its multicast filter, which knows nothing of the guest's groups.
        sock.set_link(LinkRef::Index(index), &LinkChange::new().alias(&alias).allmulti(true).ipv6_link_local(false))?;
        sock.set_link(LinkRef::Index(index), &LinkChange::new().up(true))?;
        strip(sock, veth, &found.addresses, &found.routes)?;
        macvtap::open_queues(ns, name, index, st.queues, st.vnet_hdr)
    };
    match run() {
        Ok(q) => Ok(q),
        Err(e) => {
            warn!("vm attach (macvtap) of {} failed ({e}); rolling back", found.link.name);
            if let Err(u) = undo(sock, st, dev, None) {
                warn!("rollback incomplete: {u}");
            }
            Err(e)
        }
    }
}

/// Takes routes, then addresses (secondaries before primaries), off link `index`.
fn strip(sock: &Socket, index: u32, addresses: &[(IpNet, u32)], routes: &[VmRoute]) -> Result<()> {
    let mut reqs: Vec<Request> = routes.iter().map(|r| route::delete(&route_spec(r, index))).collect();
    reqs.extend(addresses.iter().rev().map(|(a, _)| addr::delete(index, a)));
    let report = sock.batch(&reqs, BatchMode::Continue)?;
    for (o, r) in report.outcomes.into_iter().zip(&reqs) {
        if let crate::netlink::BatchOutcome::Failed(e) = o
            // Removing a primary IPv4 address can take its secondaries (and their routes) along.
            && !e.is_not_found()
        {
            debug!("strip: {} {} failed", r.op, r.object);
            return Err(e);
        }
    }
    Ok(())
}

fn route_spec(r: &VmRoute, oif: u32) -> RouteSpec {
    let mut s = RouteSpec::new(r.dst);
    s.gateway = r.gateway;
    s.oif = Some(oif);
    s.table = r.table;
    s.scope = Some(r.scope);
    s.protocol = Some(r.protocol);
    s.priority = r.priority;
    s
}

fn delete_link(sock: &Socket, index: u32) {
    match sock.delete_link(LinkRef::Index(index)) {
        Ok(()) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => warn!("delete link ifindex {index}: {e}"),
    }
}

/// Deletes two links with one request: both join a fresh device group, which is deleted as a
/// whole, so the kernel's RCU wait on unregistering (tens of ms) is paid once, not twice.
fn delete_together(sock: &Socket, a: u32, b: u32) {
    let taken: Vec<u32> = sock.links().map(|l| l.iter().map(|l| l.group).collect()).unwrap_or_default();
    let group = (0..8)
        .map(|_| {
            let m = random_local_mac();
            u32::from_ne_bytes([m[1], m[2], m[3], m[4]]) | 1
        })
        .find(|g| !taken.contains(g));
    let grouped = group.and_then(|g| {
        let reqs = [
            LinkChange::new().group(g).request(LinkRef::Index(a)).ok()?,
            LinkChange::new().group(g).request(LinkRef::Index(b)).ok()?,
            link::delete_group(g).ok()?,
        ];
        sock.batch(&reqs, BatchMode::StopAtFirstError).ok()?.into_result().ok()
    });
    if grouped.is_none() {
        delete_link(sock, a);
        delete_link(sock, b);
    }
}

/// Puts the interface back as `st` recorded it and deletes what the attachment created.
/// Idempotent, and works on a partial attachment (rollback): every step tolerates "already
/// undone".
fn undo(sock: &Socket, st: &State, dev: Option<u32>, bridge: Option<u32>) -> Result<()> {
    let veth = st.iface_index;
    match st.mode {
        AttachMode::TcRedirect => match sock.delete_ingress_qdisc(veth) {
            Ok(()) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        },
        AttachMode::Bridge => {
            if let Err(e) = sock.set_link(LinkRef::Index(veth), &LinkChange::new().master(0))
                && !e.is_not_found()
            {
                return Err(e);
            }
        }
        AttachMode::Macvtap => {}
    }
    match (dev, bridge) {
        (Some(d), Some(b)) => delete_together(sock, d, b),
        (Some(one), None) | (None, Some(one)) => delete_link(sock, one),
        (None, None) => {}
    }
    if let Some(mac) = st.mac {
        sock.set_link(LinkRef::Index(veth), &LinkChange::new().mac(mac))?;
    }
    let mut reqs = Vec::new();
    for (a, flags) in &st.addresses {
        let opts = AddrOptions { nodad: flags & IFA_F_NODAD != 0, ..AddrOptions::default() };
        reqs.push(addr::add(veth, a, opts)?);
    }
    for r in &st.routes {
        reqs.push(route::add(&route_spec(r, veth), false)?);
    }
    if !reqs.is_empty() {
        // In order: addresses before the routes that need them. "Exists" means already back.
        let report = sock.batch(&reqs, BatchMode::Continue)?;
        for (o, r) in report.outcomes.into_iter().zip(&reqs) {
            if let crate::netlink::BatchOutcome::Failed(e) = o
                && !e.is_already_exists()
            {
                warn!("detach: {} {} failed: {e}", r.op, r.object);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The description of an attachment, from its record and the kernel's current view.
fn describe(sock: &Socket, st: &State) -> Result<VmNetwork> {
    let links = sock.links()?;
    let iface = links
        .iter()
        .find(|l| l.index == st.iface_index)
        .ok_or_else(|| Error::NotFound { kind: "interface", name: format!("ifindex {}", st.iface_index) })?;
    let dev = links
        .iter()
        .find(|l| attachment_of(l).is_some_and(|s| s.iface_index == st.iface_index))
        .ok_or_else(|| Error::NotFound { kind: "vm attachment", name: iface.name.clone() })?;
    let bridge = st.bridge_index.and_then(|b| links.iter().find(|l| l.index == b)).map(|l| l.name.clone());
    let (addresses, routes) = match st.mode {
        // The interface keeps its configuration; the guest mirrors it.
        AttachMode::TcRedirect => {
            let (a, r) = config(sock, iface.index)?;
            (a.into_iter().map(|(a, _)| a).collect(), r)
        }
        _ => (st.addresses.iter().map(|(a, _)| *a).collect(), st.routes.clone()),
    };
    Ok(VmNetwork {
        iface: iface.name.clone(),
        iface_index: iface.index,
        mode: st.mode,
        tap: dev.name.clone(),
        tap_index: dev.index,
        bridge,
        guest_mac: st.mac.or(iface.mac).unwrap_or_default(),
        mtu: iface.mtu.unwrap_or(1500),
        queues: st.queues,
        vnet_hdr: st.vnet_hdr,
        addresses,
        routes,
        dhcp_server: (st.mode == AttachMode::Bridge).then(|| DHCP_SERVER_ADDRESS.parse().ok()).flatten(),
    })
}

/// An address and its `IFA_F_*` flags.
type Flagged = (IpNet, u32);

/// The addresses (with their `IFA_F_*` flags) and non-kernel unicast routes of link `index`
/// that belong to the guest: all but the kernel's own IPv6 link-local address and routes.
fn config(sock: &Socket, index: u32) -> Result<(Vec<Flagged>, Vec<VmRoute>)> {
    let addrs = sock
        .addresses(None, Some(index))?
        .into_iter()
        .filter(|a| !(a.addr.addr().is_ipv6() && a.scope == RT_SCOPE_LINK))
        .map(|a| (a.addr, a.flags))
        .collect();
    let mut routes = Vec::new();
    for v6 in [false, true] {
        for r in sock.routes(v6)? {
            if r.oif == Some(index) && r.protocol != RTPROT_KERNEL && r.kind == RTN_UNICAST {
                routes.push(VmRoute {
                    dst: r.dst,
                    gateway: r.gateway,
                    table: r.table,
                    protocol: r.protocol,
                    scope: r.scope,
                    priority: r.priority,
                });
            }
        }
    }
    Ok((addrs, routes))
}
