//! [`NetnsSandbox`]: a sandbox that is a network namespace pinned by a bind mount at its key.
//!
//! State lives in the kernel, not in this struct: interfaces, addresses, routes and neighbors
//! are read back on demand, and what the kernel cannot tell (a moved link's origin, that the
//! sandbox made a link or the namespace) is recorded in the kernel as alternative interface
//! names (see `mark`), never in the user's interface alias. So any process can reopen a key and
//! see exactly what another built ([`NetnsSandbox::open`], [`Sandbox::restore`]).

mod batch;
mod host;
mod iface;
mod inspect;
mod mark;
mod pool;
mod prewire;
mod read;
mod reap;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use log::{debug, warn};
use nix::errno::Errno;
use parking_lot::{Mutex, RwLock};

use super::Sandbox;
use super::check;
use super::info::{InterfaceInfo, SandboxInfo, Statistics, TweakReport};
use super::key::check_key;
use super::options::{IfaceOptions, NeighFamily, NeighOptions, SandboxType, StaticRoute};
use crate::error::{Error, Result};
use crate::netlink::link::{LinkChange, LinkRef};
use crate::netlink::neigh::NeighSpec;
use crate::netlink::route::RouteSpec;
use crate::netlink::{Link, LinkKind};
use crate::netlink::{Socket, addr};
use crate::netns::{self, NetNs, NsInode};
use crate::sysctl::{self, Outcome};
use crate::validate;
use host::Host;
pub use pool::WarmPool;
pub use reap::{GRACE as REAP_GRACE, Reaped};

/// `rtm_protocol` of routes added for an interface ([`IfaceOptions::routes`]), so `restore`
/// tells them from static routes.
pub const RTPROT_NETSANDBOX_IFACE: u8 = 0xb0;
/// `rtm_protocol` of static routes and gateways added through the sandbox.
pub const RTPROT_NETSANDBOX: u8 = 0xb1;

/// How a new sandbox is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// `Some(false)` disables IPv6 in the sandbox (`net.ipv6.conf.{all,default}.disable_ipv6`);
    /// `Some(true)` makes sure it is on; `None` leaves the kernel's default. libnetwork always
    /// disabled it; here it is an explicit choice.
    pub ipv6: Option<bool>,
}

/// What [`NetnsSandbox::destroy_reporting`] could not do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestroyReport {
    /// Links moved in that stayed in the namespace, by name inside, with the reason: their
    /// origin namespace no longer exists, their origin name is taken there, or the kernel refused
    /// the move. They were not deleted (the sandbox did not make them); when the namespace is
    /// freed the kernel deals with them (a physical device goes to the initial namespace, a
    /// virtual one is deleted).
    pub left_behind: Vec<(String, String)>,
}

/// A sandbox backed by a bind-mounted network namespace.
///
/// Guarantees: every method is safe to call from many threads; interface additions and removals
/// are serialized so index allocation never races; a failed `add_interface` leaves neither the
/// sandbox nor the origin namespace changed (a moved link goes back exactly as it was); links
/// moved in carry their origin with them, so any process sends them home; `destroy` is
/// idempotent and leaves no pin, fd, or host-side veth of a link the sandbox made, and never
/// deletes a link of an adopted namespace's owner; a handle whose sandbox was destroyed
/// elsewhere answers [`Error::Destroyed`].
pub struct NetnsSandbox {
    key: String,
    path: PathBuf,
    host: Arc<Host>,
    live: RwLock<Option<Live>>,
    /// Serializes changes to the set of interfaces (name allocation, move, rollback).
    ifaces: Mutex<()>,
    /// A veth pair made ahead by a pre-wired [`WarmPool`], for the first `add_veth`.
    prewired: Mutex<Option<prewire::Prewired>>,
    /// The origin has been asked to give the namespace its id ([`Host::name_newest_first`]);
    /// set by the first veth (or a pre-wired pool's pair).
    named: std::sync::atomic::AtomicBool,
    /// False for [`NetnsSandbox::attach`]: the namespace belongs to someone else, so destroy
    /// only lets go of it.
    owned: bool,
}

/// What an open sandbox holds: one netlink socket bound to its namespace. The namespace itself
/// is reached through the socket when needed (`SIOCGSKNS`), so an idle sandbox costs one fd.
struct Live {
    sock: Socket,
    label: String,
    /// The load balancer's nf_tables socket, opened on first use (src/sandbox/lb).
    lb: super::lb::LbSlot,
    /// The namespace's nsfs device and inode: the pin at the key must still be this namespace,
    /// or the sandbox was destroyed (by another handle or process) and perhaps made anew.
    inode: NsInode,
}

impl Live {
    /// A handle on the sandbox's namespace, for work that needs one (moves, threads, sysctls).
    fn ns(&self) -> Result<NetNs> {
        NetNs::of_socket(&self.sock, &self.label)
    }
}

impl std::fmt::Debug for NetnsSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetnsSandbox").field("key", &self.key).finish_non_exhaustive()
    }
}

impl NetnsSandbox {
    /// Creates a new namespace pinned at `key` (an absolute path, e.g. from
    /// [`generate_key`](super::generate_key)); the loopback is brought up. The caller's current
    /// namespace becomes the sandbox's origin: links are moved in from there and back there.
    /// A key that exists already is [`Error::AlreadyExists`] (the existing sandbox is untouched;
    /// use [`open`](Self::open) to attach to it).
    pub fn create(key: &str, opts: &CreateOptions) -> Result<NetnsSandbox> {
        let path = check_key(key)?;
        let host = Host::current()?;
        let (ns, sock) = netns::create_pinned_from(&host.ns, &path, || prepare_inside(opts, key))?;
        debug!("created sandbox {key}");
        Self::assemble(key, path, host, ns, sock)
    }

    /// Attaches to an existing pin at `key` (made by this or another process). Nothing in the
    /// kernel changes. A missing key is [`Error::NotFound`]; a file that is not a network
    /// namespace is a typed error.
    pub fn open(key: &str) -> Result<NetnsSandbox> {
        let path = check_key(key)?;
        let ns = NetNs::from_path(&path).map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound { kind: "sandbox", name: key.to_owned() },
            e => e,
        })?;
        let host = Host::current()?;
        let sock = host.socket_in(&ns)?;
        Self::assemble(key, path, host, ns, sock)
    }

    /// Makes a sandbox of an existing namespace (a container's, given by handle — see
    /// [`NetNs::from_pid`] and [`NetNs::from_path`]) by pinning it at `key`, as libnetwork's
    /// external-key sandboxes do. The namespace stays its owner's: [`destroy`](Sandbox::destroy)
    /// removes only what the sandbox added (links it created go, links it moved in go home) and
    /// its own pin and handles; the owner's links stay.
    pub fn from_external(key: &str, ns: &NetNs) -> Result<NetnsSandbox> {
        let path = check_key(key)?;
        netns::pin_existing(ns, &path)?;
        let opened = Host::current().and_then(|host| {
            let ns = NetNs::from_path(&path)?;
            Ok((host.socket_in(&ns)?, ns, host))
        });
        match opened {
            Ok((sock, ns, host)) => Self::assemble(key, path.clone(), host, ns, sock).inspect_err(|_| {
                let _ = netns::unpin(&path);
            }),
            Err(e) => {
                let _ = netns::unpin(&path);
                Err(e)
            }
        }
    }

    /// Attaches to a namespace someone else owns — a container runtime's (`CNI_NETNS`: a pin
    /// such as `/run/netns/cni-…` or `/proc/<pid>/ns/net`) — without pinning it again. The
    /// sandbox works like any other (interfaces, routes, `invoke`), but the namespace stays
    /// its owner's: [`destroy`](Sandbox::destroy) (also through
    /// [`destroy_many`](Self::destroy_many)) and drop only close this handle, never unpin,
    /// unmount, delete the path or evacuate links. Links it made go with
    /// [`remove_interface`](Sandbox::remove_interface). The key is `path` as given; once the
    /// path no longer names this namespace, calls answer [`Error::Destroyed`].
    ///
    /// `path` must be absolute; a missing path is [`Error::NotFound`], a file that is not a
    /// network namespace is a typed error.
    pub fn attach(path: impl AsRef<Path>) -> Result<NetnsSandbox> {
        let path = path.as_ref();
        let key = path.display().to_string();
        if !path.is_absolute() {
            return Err(Error::InvalidKey { key, reason: "a namespace path must be absolute" });
        }
        let ns = NetNs::from_path(path).map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound { kind: "namespace", name: key.clone() },
            e => e,
        })?;
        let host = Host::current()?;
        let sock = host.socket_in(&ns)?;
        let mut sb = Self::assemble(&key, path.to_path_buf(), host, ns, sock)?;
        sb.owned = false;
        Ok(sb)
    }

    /// Whether this sandbox owns its namespace (false for [`attach`](Self::attach)).
    pub fn owns_namespace(&self) -> bool {
        self.owned
    }

    fn assemble(key: &str, path: PathBuf, host: Arc<Host>, ns: NetNs, sock: Socket) -> Result<NetnsSandbox> {
        let inode = ns.nsfs_inode()?;
        // The socket keeps the namespace reachable (`Live::ns`): the separate handle can go, so
        // an idle sandbox holds one fd.
        drop(ns);
        let live = Live { sock, label: key.to_owned(), inode, lb: Default::default() };
        Ok(NetnsSandbox {
            key: key.to_owned(),
            path,
            host,
            live: RwLock::new(Some(live)),
            ifaces: Mutex::new(()),
            prewired: Mutex::new(None),
            named: std::sync::atomic::AtomicBool::new(false),
            owned: true,
        })
    }

    /// True while the pin at the key is still this sandbox's namespace. Once another handle or
    /// process destroyed it, the key is gone (or pins a new namespace), while this handle's
    /// socket alone keeps the old, emptied namespace alive.
    fn pinned_here(&self, live: &Live) -> bool {
        nix::sys::stat::stat(&self.path).is_ok_and(|st| st.st_dev == live.inode.dev && st.st_ino == live.inode.ino)
    }

    /// [`Sandbox::destroy`] with a handle on what is left for the kernel to free.
    ///
    /// For a namespace the sandbox made ([`create`](Self::create), [`WarmPool::take`], also
    /// when reopened later) the caller's path is short: links moved in still go back to their
    /// origin before it returns, but the veth pairs made by `add_veth` (and bridges made
    /// inside) are not deleted — the kernel waits ~32 ms for RCU per deletion — they go when
    /// the kernel frees the namespace, which it does for many namespaces in one batch. Until
    /// then a pair's host end keeps its name; a new `add_veth` in this process that wants the
    /// name moves it out of the way first (down and renamed `nsp…` in one batch), so the name
    /// can be reused at once. [`Reaped::wait`] blocks until the kernel has freed everything; a
    /// process-wide reaper deletes the host ends itself if the namespace is still held
    /// elsewhere (a process still inside, an fd) after [`REAP_GRACE`]. An adopted namespace
    /// ([`from_external`](Self::from_external)) is emptied synchronously as before and gives an
    /// already-reaped handle. Links that could not go home are logged, as by `destroy`.
    pub fn destroy_detached(&self) -> Result<Reaped> {
        let (report, reaped) = self.teardown()?;
        for (name, why) in report.left_behind {
            warn!("sandbox {}: {name} left in the namespace: {why}", self.key);
        }
        Ok(reaped)
    }

    /// Waits until the kernel has freed what every destroy in this process left to it (see
    /// [`Reaped`]) and the reaper thread has exited, or `timeout` passed. Returns whether all
    /// is done.
    pub fn wait_all_reaped(timeout: std::time::Duration) -> bool {
        reap::wait_all(timeout)
    }

    /// The one teardown behind `destroy`, `destroy_reporting` and `destroy_detached`.
    fn teardown(&self) -> Result<(DestroyReport, Reaped)> {
        // Every other operation holds the read lock for its whole run, so the write lock waits
        // for them to finish. (Taking `ifaces` here too would invert the lock order with
        // add_interface and could deadlock.)
        let taken = self.live.write().take();
        let Some(live) = taken else { return Ok(Default::default()) };
        self.teardown_live(live)
    }

    /// [`teardown`](Self::teardown) once `live` is taken: the short path of `reap` for a
    /// namespace the sandbox made, [`empty_and_unpin`](Self::empty_and_unpin) otherwise.
    fn teardown_live(&self, live: Live) -> Result<(DestroyReport, Reaped)> {
        if !self.owned {
            return Ok((self.empty_and_unpin(live)?, Reaped::default()));
        }
        if !self.pinned_here(&live) {
            debug!("sandbox {} was destroyed elsewhere; handle released", self.key);
            return Ok(Default::default());
        }
        match live.sock.links() {
            Ok(links) if owned(&links) => reap::teardown(self, live, links),
            _ => Ok((self.empty_and_unpin(live)?, Reaped::default())),
        }
    }

    /// The namespace handle (for callers that need to run their own code or sockets inside).
    pub fn with_netns<T>(&self, f: impl FnOnce(&NetNs) -> T) -> Result<T> {
        self.with(|live| Ok(f(&live.ns()?)))
    }

    /// For the VM layer (`sandbox::vm`): runs `f` with the sandbox's socket and namespace while
    /// interface changes are serialized (the lock order of `add_interface`: sandbox, then the
    /// interface lock).
    pub(in crate::sandbox) fn with_serialized<T>(&self, f: impl FnOnce(&Socket, &NetNs) -> Result<T>) -> Result<T> {
        self.with(|live| {
            let _serial = self.ifaces.lock();
            f(&live.sock, &live.ns()?)
        })
    }

    /// For the load balancer (src/sandbox/lb): runs `f` with its connection slot and a way to
    /// reach the namespace.
    pub(crate) fn with_lb<T>(
        &self,
        f: impl FnOnce(&super::lb::LbSlot, &dyn Fn() -> Result<NetNs>) -> Result<T>,
    ) -> Result<T> {
        self.with(|live| f(&live.lb, &|| live.ns()))
    }

    fn destroyed(&self) -> Error {
        Error::Destroyed { key: self.key.clone() }
    }

    fn live(&self) -> Result<parking_lot::RwLockReadGuard<'_, Option<Live>>> {
        let g = self.live.read();
        if g.is_none() {
            return Err(self.destroyed());
        }
        Ok(g)
    }

    /// Runs `f` with the live sandbox, or returns [`Error::Destroyed`] — also when another
    /// handle or process destroyed it (this handle then lets go of its socket).
    fn with<T>(&self, f: impl FnOnce(&Live) -> Result<T>) -> Result<T> {
        {
            let g = self.live()?;
            match g.as_ref() {
                Some(l) if self.pinned_here(l) => return f(l),
                Some(_) => {}
                None => return Err(self.destroyed()),
            }
        }
        self.let_go_if_stale();
        Err(self.destroyed())
    }

    /// Drops this handle's hold on a namespace that is no longer pinned at the key.
    fn let_go_if_stale(&self) {
        let mut g = self.live.write();
        if g.as_ref().is_some_and(|l| !self.pinned_here(l)) {
            debug!("sandbox {} was destroyed elsewhere; handle released", self.key);
            *g = None;
        }
    }

    /// The end of [`Sandbox::destroy`], once `live` is taken. Empties the namespace before
    /// unpinning, so nothing lingers until the kernel gets round to freeing it: links the sandbox
    /// made are deleted (which removes a veth's host end at once), links moved in go home (as
    /// `remove_interface` would); other links are deleted only in a namespace the sandbox made.
    /// A handle whose sandbox was destroyed elsewhere only lets go of its socket: the key may
    /// pin someone else's namespace by now.
    fn empty_and_unpin(&self, live: Live) -> Result<DestroyReport> {
        if !self.owned {
            drop(live);
            debug!("released attached namespace {}", self.key);
            return Ok(DestroyReport::default());
        }
        if !self.pinned_here(&live) {
            debug!("sandbox {} was destroyed elsewhere; handle released", self.key);
            return Ok(DestroyReport::default());
        }
        let report = match live.sock.links() {
            Ok(links) => iface::evacuate(self, &live, &links, owned(&links)),
            Err(e) => {
                warn!("sandbox {}: cannot list its links ({e}); they go with the namespace", self.key);
                DestroyReport::default()
            }
        };
        drop(live);
        netns::unpin(&self.path)?;
        debug!("destroyed sandbox {}", self.key);
        Ok(report)
    }

    /// [`Sandbox::destroy`], telling what it could not do: the links moved in that could not go
    /// home (see [`DestroyReport`]). `destroy` logs them instead.
    pub fn destroy_reporting(&self) -> Result<DestroyReport> {
        self.teardown().map(|(report, _)| report)
    }

    /// Removes stale entries under `base` after a crash: files that are not a pinned network
    /// namespace (a create that died half-way) are deleted; pins for which `keep` says false are
    /// destroyed like [`Sandbox::destroy`] (moved-in links go home, links the sandbox made are
    /// deleted, then it is unpinned). Returns the paths removed.
    ///
    /// When no pin is left under `base` afterwards, the shared bind mount that `create` made of
    /// `base` onto itself is released too ([`netns::release_base_if_unused`]), so nothing of
    /// netsandbox stays mounted. Do not run it while another process or thread creates sandboxes
    /// in `base`.
    pub fn gc(base: &Path, keep: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
        /// Stale sandboxes destroyed together (each holds a socket until then).
        const GC_BATCH: usize = 256;
        let mut removed = Vec::new();
        let mut stale = Vec::new();
        let entries = match std::fs::read_dir(base) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(Error::path("read directory", base, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| Error::path("read directory", base, e))?.path();
            let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_file());
            if !is_file {
                continue;
            }
            let pinned = netns::is_pinned(&path);
            if pinned && keep(&path) {
                continue;
            }
            // Destroying (not just unpinning) deletes the links inside first, so host-side veth
            // ends vanish now rather than whenever the kernel frees the namespace. Stale
            // sandboxes go in batches (`destroy_many`: one kernel wait per batch), bounded so
            // their open sockets stay well under the fd limit.
            let key = path.display().to_string();
            match pinned.then(|| NetnsSandbox::open(&key)) {
                Some(Ok(sb)) => stale.push(sb),
                _ => netns::unpin(&path)?,
            }
            if stale.len() == GC_BATCH {
                gc_destroy(&stale)?;
                stale.clear();
            }
            debug!("gc removes {}", path.display());
            removed.push(path);
        }
        gc_destroy(&stale)?;
        drop(stale);
        netns::release_base_if_unused(base)?;
        Ok(removed)
    }

    fn link(&self, live: &Live, name: &str) -> Result<Link> {
        validate::ifname(name)?;
        live.sock.link(LinkRef::Name(name)).map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound { kind: "interface", name: name.to_owned() },
            e => e,
        })
    }

    /// The interface that reaches `ip` inside the sandbox.
    fn oif_for(&self, live: &Live, ip: IpAddr) -> Result<u32> {
        live.sock.route_to(ip)?.oif.ok_or_else(|| Error::NotFound { kind: "route to", name: ip.to_string() })
    }

    /// The interface to name in a route via `gw`: none, so the kernel resolves it while adding
    /// the route (one request instead of a lookup and an add; an unreachable gateway fails the
    /// same way) — except for a link-local IPv6 gateway, which is ambiguous without one.
    fn gateway_oif(&self, live: &Live, gw: IpAddr) -> Result<Option<u32>> {
        match gw {
            IpAddr::V6(v6) if v6.is_unicast_link_local() => self.oif_for(live, gw).map(Some),
            _ => Ok(None),
        }
    }

    fn default_route(gw: IpAddr, oif: Option<u32>) -> RouteSpec {
        let any = if gw.is_ipv4() { IpNet::V4(Default::default()) } else { IpNet::V6(Default::default()) };
        let mut r = RouteSpec::new(any).via(gw);
        r.oif = oif;
        r.protocol = Some(RTPROT_NETSANDBOX);
        r
    }

    fn static_route(&self, live: &Live, route: &StaticRoute) -> Result<RouteSpec> {
        check::static_route(route)?;
        let oif = match (&route.interface, route.gateway) {
            (Some(name), _) => Some(self.link(live, name)?.index),
            (None, Some(gw)) => self.gateway_oif(live, gw)?,
            (None, None) => return Err(needs_gateway_or_interface(route)),
        };
        let mut r = RouteSpec::new(route.dst);
        r.oif = oif;
        r.gateway = route.gateway;
        r.protocol = Some(RTPROT_NETSANDBOX);
        Ok(r)
    }

    fn neigh_spec(&self, live: &Live, ip: IpAddr, mac: [u8; 6], opts: &NeighOptions) -> Result<NeighSpec> {
        let index = match &opts.link_name {
            Some(n) => {
                let l = self.link(live, n)?;
                if opts.family == NeighFamily::Bridge {
                    check::fdb_device(n, l.kind == LinkKind::Vxlan)?;
                }
                l.index
            }
            None => self.oif_for(live, ip)?,
        };
        Ok(match opts.family {
            NeighFamily::Ip => NeighSpec::arp(index, ip, mac),
            NeighFamily::Bridge => NeighSpec::fdb(index, mac, Some(ip)),
        })
    }
}

/// `gc`'s batch: destroyed together, and waited for, so that what gc removes is gone when it
/// returns (it is a clean-up tool, not a hot path).
fn gc_destroy(stale: &[NetnsSandbox]) -> Result<()> {
    let reaped = NetnsSandbox::destroy_many_detached(&stale.iter().collect::<Vec<_>>())?;
    if !reaped.wait(reap::GRACE + std::time::Duration::from_secs(30)) {
        warn!("gc: the kernel has not freed {} destroyed namespaces yet", stale.len());
    }
    Ok(())
}

/// True when the loopback in `links` carries the mark of a namespace the sandbox made.
fn owned(links: &[Link]) -> bool {
    links.iter().any(|l| l.index == 1 && l.altnames.iter().any(|a| a == mark::OWNED))
}

/// Set-up of a fresh namespace, run on a thread that is inside it: the socket binds here and
/// sysctls follow the thread that opens them. Brings the loopback up, applies the IPv6 policy.
fn prepare_inside(opts: &CreateOptions, label: &str) -> Result<Socket> {
    let sock = Socket::open()?.labelled(label);
    // The loopback comes up and records that the sandbox made this namespace (see `mark`).
    let lo = LinkRef::Index(1);
    let reqs = [LinkChange::new().up(true).request(lo)?, crate::netlink::link::add_altname(lo, mark::OWNED)?];
    sock.batch(&reqs, crate::netlink::BatchMode::StopAtFirstError)?.into_result()?;
    if let Some(on) = opts.ipv6 {
        let v = if on { "0" } else { "1" };
        for k in ["net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6"] {
            sysctl::write(None, k, v)?;
        }
    }
    Ok(sock)
}

fn needs_gateway_or_interface(route: &StaticRoute) -> Error {
    Error::InvalidArgument { op: "static route", reason: format!("{} needs a gateway or an interface", route.dst) }
}

/// The kernel's refusal of a gateway it cannot reach, as the same typed error a failed route
/// lookup gives.
fn unreachable_gw(e: Error, gw: IpAddr) -> Error {
    match e.errno() {
        Some(Errno::ENETUNREACH | Errno::EHOSTUNREACH) => Error::NotFound { kind: "route to", name: gw.to_string() },
        _ => e,
    }
}

/// Maps the kernel's errno for "already there" / "not there" to typed errors about `kind`.
fn typed(e: Error, kind: &'static str, name: impl std::fmt::Display) -> Error {
    match e.errno() {
        Some(Errno::EEXIST) => Error::AlreadyExists { kind, name: name.to_string() },
        Some(Errno::ESRCH | Errno::ENOENT | Errno::EADDRNOTAVAIL) => Error::NotFound { kind, name: name.to_string() },
        _ => e,
    }
}

impl Sandbox for NetnsSandbox {
    fn key(&self) -> &str {
        &self.key
    }

    fn add_interface(&self, src_name: &str, dst_prefix: &str, opts: &IfaceOptions) -> Result<String> {
        self.with(|live| iface::add(self, live, iface::Source::Move(src_name), dst_prefix, opts))
    }

    fn add_veth(&self, host_name: &str, dst_prefix: &str, opts: &IfaceOptions) -> Result<String> {
        self.with(|live| iface::add(self, live, iface::Source::Veth(host_name), dst_prefix, opts))
    }

    fn remove_interface(&self, name: &str) -> Result<()> {
        self.with(|live| iface::remove(self, live, name))
    }

    fn interfaces(&self) -> Result<Vec<InterfaceInfo>> {
        self.with(|live| Ok(read::snapshot(live, &self.key)?.interfaces))
    }

    fn statistics(&self, name: &str) -> Result<Statistics> {
        self.with(|live| {
            check::ifname(name)?;
            Ok(self.link(live, name)?.stats.map(Statistics::from).unwrap_or_default())
        })
    }

    fn set_gateway(&self, gw: IpAddr) -> Result<()> {
        self.with(|live| {
            check::gateway(gw)?;
            let oif = self.gateway_oif(live, gw)?;
            live.sock.add_route(&Self::default_route(gw, oif)).map_err(|e| typed(unreachable_gw(e, gw), "gateway", gw))
        })
    }

    fn unset_gateway(&self, gw: IpAddr) -> Result<()> {
        self.with(|live| {
            check::gateway(gw)?;
            let any = if gw.is_ipv4() { IpNet::V4(Default::default()) } else { IpNet::V6(Default::default()) };
            let mut r = RouteSpec::new(any).via(gw);
            r.oif = None;
            live.sock.delete_route(&r).map_err(|e| typed(e, "gateway", gw))
        })
    }

    fn add_static_route(&self, route: &StaticRoute) -> Result<()> {
        self.with(|live| {
            let spec = self.static_route(live, route)?;
            live.sock.add_route(&spec).map_err(|e| match route.gateway {
                Some(gw) => typed(unreachable_gw(e, gw), "route", route.dst),
                None => typed(e, "route", route.dst),
            })
        })
    }

    fn remove_static_route(&self, route: &StaticRoute) -> Result<()> {
        self.with(|live| {
            check::static_route(route)?;
            let mut r = RouteSpec::new(route.dst);
            r.gateway = route.gateway;
            if let Some(n) = &route.interface {
                r.oif = Some(self.link(live, n)?.index);
            }
            live.sock.delete_route(&r).map_err(|e| typed(e, "route", route.dst))
        })
    }

    fn add_neighbor(&self, ip: IpAddr, mac: [u8; 6], force: bool, opts: &NeighOptions) -> Result<()> {
        self.with(|live| {
            check::add_neighbor(&mac, opts)?;
            let spec = self.neigh_spec(live, ip, mac, opts)?;
            let name = format!("{ip} lladdr {}", validate::format_mac(&mac));
            live.sock.add_neighbor(&spec, force).map_err(|e| typed(e, "neighbor", name))
        })
    }

    fn delete_neighbor(&self, ip: IpAddr, mac: [u8; 6], os_delete: bool) -> Result<()> {
        self.with(|live| {
            check::delete_neighbor(&mac)?;
            let name = format!("{ip} lladdr {}", validate::format_mac(&mac));
            let found = read::neighbors(live)?
                .into_iter()
                .find(|(n, _)| n.ip == ip && n.mac == mac)
                .ok_or_else(|| Error::NotFound { kind: "neighbor", name: name.clone() })?;
            if os_delete {
                live.sock.delete_neighbor(&found.1).map_err(|e| typed(e, "neighbor", name))?;
            }
            Ok(())
        })
    }

    fn add_alias_ip(&self, ifname: &str, cidr: IpNet) -> Result<()> {
        self.with(|live| {
            check::alias_ip(ifname, &cidr)?;
            let l = self.link(live, ifname)?;
            let v6 = cidr.addr().is_ipv6();
            check::alias_unique(&cidr, live.sock.addresses(Some(v6), None)?.iter().map(|a| a.addr.addr()))?;
            let opts = addr::AddrOptions { nodad: v6, ..Default::default() };
            live.sock.add_address(l.index, &cidr, opts).map_err(|e| typed(e, "address", cidr))
        })
    }

    fn remove_alias_ip(&self, ifname: &str, cidr: IpNet) -> Result<()> {
        self.with(|live| {
            check::alias_ip(ifname, &cidr)?;
            let l = self.link(live, ifname)?;
            live.sock.delete_address(l.index, &cidr).map_err(|e| typed(e, "address", cidr))
        })
    }

    fn disable_arp_for_vip(&self, ifname: &str) -> Result<()> {
        self.with(|live| {
            check::ifname(ifname)?;
            self.link(live, ifname)?;
            let a = format!("net/ipv4/conf/{ifname}/arp_ignore");
            let b = format!("net/ipv4/conf/{ifname}/arp_announce");
            sysctl::apply_all(Some(&live.ns()?), &[(&a, "1"), (&b, "2")])
        })
    }

    fn apply_os_tweaks(&self, types: &[SandboxType]) -> Result<TweakReport> {
        self.with(|live| {
            let mut report = TweakReport::default();
            if types.is_empty() {
                return Ok(report);
            }
            for (k, o) in sysctl::apply(Some(&live.ns()?), &check::LB_SYSCTLS)? {
                match o {
                    Outcome::Written { .. } => report.written.push(k),
                    Outcome::Unchanged => report.unchanged.push(k),
                    Outcome::Missing => {
                        warn!("sandbox {}: sysctl {k} not present on this kernel (no IPVS?); skipped", self.key);
                        report.missing.push(k);
                    }
                    Outcome::ReadOnly => {
                        warn!("sandbox {}: sysctl {k} is read-only; skipped", self.key);
                        report.read_only.push(k);
                    }
                }
            }
            Ok(report)
        })
    }

    fn invoke_boxed(&self, f: Box<dyn FnOnce() + Send + '_>) -> Result<()> {
        self.with(|live| netns::run_in(&live.ns()?, f))
    }

    fn restore(&self) -> Result<()> {
        // The view is the kernel's: check that it can be read in full.
        self.with(|live| read::snapshot(live, &self.key).map(drop))
    }

    fn info(&self) -> Result<SandboxInfo> {
        self.with(|live| read::snapshot(live, &self.key))
    }

    fn destroy(&self) -> Result<()> {
        self.destroy_detached().map(drop)
    }
}
