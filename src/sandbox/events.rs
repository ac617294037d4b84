//! [`Watcher`]: one netlink socket that reports every link, address, route and neighbor change
//! in every watched sandbox, as typed [`Event`]s naming the sandbox by key.
//!
//! How: the watcher's socket ([`Monitor`]) listens with `NETLINK_LISTEN_ALL_NSID` in the
//! watcher's namespace (the sandboxes' origin); [`Watcher::watch`] makes sure the sandbox's
//! namespace has a namespace id there, so its notifications reach the socket tagged with it,
//! and maps that id to the key. One fd for any number of sandboxes.
//!
//! Guarantees:
//! - Each event is a change to the watcher's mirror of the sandbox (what it last saw of links,
//!   addresses, routes, neighbors): a notification that changes nothing (an object re-announced
//!   unchanged, link counters) is not reported, so each change is reported once.
//! - Bounded memory: the kernel queue is bounded by the socket's receive buffer; when it
//!   overflows (`ENOBUFS`) the watcher reports [`Event::ResyncNeeded`], re-dumps every watched
//!   sandbox, reports the differences to its mirror as [`Source::Reconcile`] events, then
//!   [`Event::Resynced`]. Events are never silently lost.
//! - Notifications from namespaces that are not watched (other sandboxes, the watcher's own
//!   namespace) are dropped; they never carry a key.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::key::check_key;
use crate::error::{Error, Result};
use crate::netlink::Socket;
pub use crate::netlink::monitor::{Change, Object};
use crate::netlink::monitor::{Group, Monitor, Notification, Received, without_stats};
use crate::netlink::nsid;
use crate::netlink::{Address, Family, Link, Neighbor, Route};
use crate::netns::NetNs;

/// Where a [`Event::Changed`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A kernel notification.
    Live,
    /// The re-dump after an overflow: the object differs from what the watcher last saw.
    Reconcile,
}

/// What a [`Watcher`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// `Changed` is nearly every event; boxing it would add an allocation per event to save space
// in the rare other variants.
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// An object in a watched sandbox appeared, changed (`Change::New`) or went away.
    Changed {
        /// The sandbox's key.
        key: String,
        /// New/changed or deleted.
        change: Change,
        /// The object, as the kernel describes it now (or last, for a deletion).
        object: Object,
        /// Live notification or reconcile.
        source: Source,
    },
    /// The kernel dropped notifications (receive queue full). Reconcile events follow, then
    /// [`Event::Resynced`].
    ResyncNeeded,
    /// Every watched sandbox was re-read after [`Event::ResyncNeeded`]; the mirror matches the
    /// kernel again.
    Resynced,
    /// A watched sandbox's namespace no longer exists (its namespace id was released); it is no
    /// longer watched.
    Gone {
        /// The sandbox's key.
        key: String,
    },
}

impl Event {
    /// The key of the sandbox the event is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Event::Changed { key, .. } | Event::Gone { key } => Some(key),
            Event::ResyncNeeded | Event::Resynced => None,
        }
    }
}

/// How a [`Watcher`] is set up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Kernel receive queue in bytes (`SO_RCVBUF`); `None`: 4 MiB.
    pub rcvbuf: Option<usize>,
}

/// Default receive queue: some thousands of notifications, enough for bursts of a few hundred
/// sandboxes changing at once.
const DEFAULT_RCVBUF: usize = 4 << 20;

/// Identity of a route in the mirror: what makes two routes distinct kernel objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RouteId {
    table: u32,
    dst: IpNet,
    priority: Option<u32>,
    kind: u8,
    // IPv6 keeps routes with the same destination and metric apart by next hop.
    oif: Option<u32>,
    gateway: Option<IpAddr>,
}

impl RouteId {
    fn of(r: &Route) -> RouteId {
        let v6 = r.dst.addr().is_ipv6();
        RouteId {
            table: r.table,
            dst: r.dst,
            priority: r.priority,
            kind: r.kind,
            oif: if v6 { r.oif } else { None },
            gateway: if v6 { r.gateway } else { None },
        }
    }
}

/// Identity of a neighbor entry: interface, family, IP, and for FDB entries the MAC.
type NeighId = (u32, Family, Option<IpAddr>, Option<[u8; 6]>);

fn neigh_id(n: &Neighbor) -> NeighId {
    let mac = if n.family == Family::Bridge { n.mac } else { None };
    (n.index, n.family, n.ip, mac)
}

/// What the watcher last saw of one sandbox: one entry per link (by index), address (by link and
/// prefix), route and neighbor, each as the kernel last described it; links without counters
/// (`stats` is always `None`, counter updates are not changes). The iterators yield entries in no
/// particular order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mirror {
    links: HashMap<u32, Link>,
    addresses: HashMap<(u32, IpNet), Address>,
    routes: HashMap<RouteId, Route>,
    neighbors: HashMap<NeighId, Neighbor>,
}

impl Mirror {
    /// Links by index.
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.links.values()
    }
    /// Addresses.
    pub fn addresses(&self) -> impl Iterator<Item = &Address> {
        self.addresses.values()
    }
    /// Routes (every table).
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.values()
    }
    /// Neighbor and FDB entries.
    pub fn neighbors(&self) -> impl Iterator<Item = &Neighbor> {
        self.neighbors.values()
    }

    /// Reads the whole state of the namespace a socket is bound to.
    fn dump(sock: &Socket) -> Result<Mirror> {
        let mut m = Mirror::default();
        for l in sock.links()? {
            m.links.insert(l.index, without_stats(l));
        }
        for a in sock.addresses(None, None)? {
            m.addresses.insert((a.index, a.addr), a);
        }
        for v6 in [false, true] {
            for r in sock.routes(v6)? {
                m.routes.insert(RouteId::of(&r), r);
            }
        }
        let mut neighbors = sock.neighbors(None, None)?;
        neighbors.extend(sock.neighbors(Some(Family::Bridge), None)?);
        for n in neighbors {
            m.neighbors.insert(neigh_id(&n), n);
        }
        Ok(m)
    }

    /// Applies one change; `true` when it changed the mirror (and is worth reporting).
    fn apply(&mut self, change: Change, object: &Object) -> bool {
        match object {
            Object::Link(l) => apply_one(&mut self.links, l.index, l, change),
            Object::Address(a) => apply_one(&mut self.addresses, (a.index, a.addr), a, change),
            Object::Route(r) => apply_one(&mut self.routes, RouteId::of(r), r, change),
            Object::Neighbor(n) => apply_one(&mut self.neighbors, neigh_id(n), n, change),
            Object::Nsid { .. } => false,
        }
    }

    /// The changes that turn `self` into `now`, as events.
    fn diff(&self, now: &Mirror, out: &mut Vec<(Change, Object)>) {
        diff_map(&self.links, &now.links, Object::Link, out);
        diff_map(&self.addresses, &now.addresses, Object::Address, out);
        diff_map(&self.routes, &now.routes, Object::Route, out);
        diff_map(&self.neighbors, &now.neighbors, Object::Neighbor, out);
    }

    /// Number of objects held.
    fn len(&self) -> usize {
        self.links.len() + self.addresses.len() + self.routes.len() + self.neighbors.len()
    }
}

fn apply_one<K: Eq + Hash, V: Clone + PartialEq>(map: &mut HashMap<K, V>, k: K, v: &V, change: Change) -> bool {
    match change {
        Change::New => match map.get(&k) {
            Some(old) if old == v => false,
            _ => {
                map.insert(k, v.clone());
                true
            }
        },
        Change::Del => map.remove(&k).is_some(),
    }
}

fn diff_map<K: Eq + Hash, V: Clone + PartialEq>(
    old: &HashMap<K, V>,
    now: &HashMap<K, V>,
    wrap: fn(V) -> Object,
    out: &mut Vec<(Change, Object)>,
) {
    for (k, v) in old {
        if !now.contains_key(k) {
            out.push((Change::Del, wrap(v.clone())));
        }
    }
    for (k, v) in now {
        if old.get(k) != Some(v) {
            out.push((Change::New, wrap(v.clone())));
        }
    }
}

struct Watched {
    key: String,
    /// How to reach the namespace again for a re-dump.
    reach: Reach,
    mirror: Mirror,
}

/// A pin is reopened by path, so watching it does not keep the namespace alive (its end is
/// reported as [`Event::Gone`]); a namespace given by handle has no path, so its handle is kept.
enum Reach {
    Pin(std::path::PathBuf),
    Handle(NetNs),
}

/// Counters of what a watcher did, for benchmarks and diagnostics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Datagrams read.
    pub datagrams: u64,
    /// Notifications decoded.
    pub notifications: u64,
    /// Notifications dropped because they came from a namespace that is not watched.
    pub foreign: u64,
    /// Notifications that changed nothing in the mirror.
    pub unchanged: u64,
    /// Overflows (`ENOBUFS`) seen.
    pub overflows: u64,
}

/// Watches many sandboxes through one netlink socket with `NETLINK_LISTEN_ALL_NSID`: every namespace that has an nsid in the watcher's namespace.
///
/// Not `Sync`: one thread reads events. The watcher's namespace is the calling thread's at
/// [`new`](Self::new); sandboxes must be reachable from it (their pins visible, ids assignable).
pub struct Watcher {
    monitor: Monitor,
    /// Bound to the watcher's namespace: assigns and reads namespace ids.
    host: Socket,
    by_nsid: HashMap<i32, Watched>,
    queue: VecDeque<Event>,
    stats: WatchStats,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("watched", &self.by_nsid.len()).finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher in the calling thread's namespace, watching nothing yet.
    pub fn new() -> Result<Watcher> {
        Watcher::with_options(&WatchOptions::default())
    }

    /// A watcher with explicit options.
    pub fn with_options(opts: &WatchOptions) -> Result<Watcher> {
        let monitor = Monitor::open(&Group::ALL, Some(opts.rcvbuf.unwrap_or(DEFAULT_RCVBUF)))?;
        let host = Socket::open()?.labelled("watcher");
        Ok(Watcher { monitor, host, by_nsid: HashMap::new(), queue: VecDeque::new(), stats: WatchStats::default() })
    }

    /// Starts watching the sandbox pinned at `key`: gives its namespace an id in the watcher's
    /// namespace if it has none, and reads its current state (events report changes from
    /// there). Watching a key twice re-reads it. A missing key is [`Error::NotFound`].
    pub fn watch(&mut self, key: &str) -> Result<()> {
        let path = check_key(key)?;
        let ns = NetNs::from_path(&path).map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound { kind: "sandbox", name: key.to_owned() },
            e => e,
        })?;
        self.add(key, &ns, Reach::Pin(path))
    }

    /// Starts watching any namespace (a container's, from a
    /// [`NetNsRef`](crate::netns::NetNsRef)) under the label `key`. The watcher keeps a handle
    /// on it (needed to re-read it after an overflow), so it stays alive while watched; use
    /// [`unwatch`](Self::unwatch) to let it go.
    pub fn watch_ns(&mut self, key: &str, ns: &NetNs) -> Result<()> {
        self.add(key, ns, Reach::Handle(ns.try_clone()?))
    }

    fn add(&mut self, key: &str, ns: &NetNs, reach: Reach) -> Result<()> {
        let id = self.nsid(ns)?;
        let sock = crate::netns::socket_in(ns)?;
        let mirror = Mirror::dump(&sock)?;
        self.by_nsid.retain(|_, w| w.key != key);
        self.by_nsid.insert(id, Watched { key: key.to_owned(), reach, mirror });
        Ok(())
    }

    /// Stops watching `key`; `false` when it was not watched.
    pub fn unwatch(&mut self, key: &str) -> bool {
        let before = self.by_nsid.len();
        self.by_nsid.retain(|_, w| w.key != key);
        before != self.by_nsid.len()
    }

    /// The keys watched.
    pub fn keys(&self) -> Vec<&str> {
        self.by_nsid.values().map(|w| w.key.as_str()).collect()
    }

    /// What the watcher last saw of `key` (after every event returned so far is applied).
    pub fn mirror(&self, key: &str) -> Option<&Mirror> {
        self.by_nsid.values().find(|w| w.key == key).map(|w| &w.mirror)
    }

    /// Objects held in all mirrors (for memory accounting).
    pub fn mirrored_objects(&self) -> usize {
        self.by_nsid.values().map(|w| w.mirror.len()).sum()
    }

    /// Counters.
    pub fn stats(&self) -> WatchStats {
        self.stats
    }

    /// The namespace id of `ns` in the watcher's namespace, assigned if it has none.
    fn nsid(&self, ns: &NetNs) -> Result<i32> {
        if let Some(id) = self.host.nsid_of(ns)? {
            return Ok(id);
        }
        match self.host.execute(nsid::assign(ns.as_fd())) {
            Ok(()) => {}
            // Assigned concurrently (a veth pairing the two, another watcher): fine.
            Err(e) if e.is_already_exists() => {}
            Err(e) => return Err(e),
        }
        self.host.nsid_of(ns)?.ok_or_else(|| Error::Protocol {
            op: "assign namespace id",
            detail: format!("{} still has no id after RTM_NEWNSID", ns.label()),
        })
    }

    /// The next event, waiting at most `timeout` (`None`: forever). `Ok(None)` when the time ran
    /// out (or a signal interrupted the wait).
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Option<Event>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let Some(r) = self.monitor.recv(left)? else { return Ok(None) };
            self.absorb(r)?;
            if self.queue.is_empty() && left.is_some_and(|l| l.is_zero()) {
                return Ok(None);
            }
        }
    }

    /// The next event if one is ready now (reads whatever the kernel has queued, never waits).
    pub fn try_next(&mut self) -> Result<Option<Event>> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            match self.monitor.try_recv()? {
                Some(r) => self.absorb(r)?,
                None => return Ok(None),
            }
        }
    }

    fn absorb(&mut self, r: Received) -> Result<()> {
        self.stats.datagrams += 1;
        match r {
            Received::Notifications(ns) => {
                for n in ns {
                    self.stats.notifications += 1;
                    self.apply(n);
                }
                Ok(())
            }
            Received::Overflow => {
                self.stats.overflows += 1;
                self.resync()
            }
        }
    }

    fn apply(&mut self, n: Notification) {
        let Some(id) = n.nsid else {
            // The watcher's own namespace: only its namespace-id changes matter.
            if let (Change::Del, Object::Nsid { id }) = (n.change, &n.object)
                && let Some(w) = self.by_nsid.remove(id)
            {
                self.queue.push_back(Event::Gone { key: w.key });
            }
            return;
        };
        let Some(w) = self.by_nsid.get_mut(&id) else {
            self.stats.foreign += 1;
            return;
        };
        if w.mirror.apply(n.change, &n.object) {
            self.queue.push_back(Event::Changed {
                key: w.key.clone(),
                change: n.change,
                object: n.object,
                source: Source::Live,
            });
        } else {
            self.stats.unchanged += 1;
        }
    }

    /// After an overflow: drain what is queued (it is incomplete anyway), re-dump every watched
    /// sandbox and report the differences.
    fn resync(&mut self) -> Result<()> {
        self.queue.push_back(Event::ResyncNeeded);
        // Notifications still queued describe changes the dump below will see; reading them
        // first keeps them from being replayed on top of the newer dump.
        for _ in 0..100_000 {
            match self.monitor.try_recv()? {
                Some(Received::Notifications(_)) | Some(Received::Overflow) => {}
                None => break,
            }
        }
        let ids: Vec<i32> = self.by_nsid.keys().copied().collect();
        for id in ids {
            let Some(w) = self.by_nsid.get(&id) else { continue };
            let key = w.key.clone();
            let now = match redump(&self.host, id, &w.reach) {
                Ok(m) => m,
                Err(e) if e.is_not_found() => {
                    self.by_nsid.remove(&id);
                    self.queue.push_back(Event::Gone { key });
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(w) = self.by_nsid.get_mut(&id) else { continue };
            let mut changes = Vec::new();
            w.mirror.diff(&now, &mut changes);
            w.mirror = now;
            for (change, object) in changes {
                self.queue.push_back(Event::Changed { key: key.clone(), change, object, source: Source::Reconcile });
            }
        }
        self.queue.push_back(Event::Resynced);
        Ok(())
    }
}

/// Re-reads a watched namespace, checking it still has the id `id` (a pin path destroyed and
/// made again names another namespace: that one is not the watched one, which is gone).
fn redump(host: &Socket, id: i32, reach: &Reach) -> Result<Mirror> {
    let reopened;
    let ns = match reach {
        Reach::Pin(path) => {
            reopened = NetNs::from_path(path)?;
            &reopened
        }
        Reach::Handle(ns) => ns,
    };
    if host.nsid_of(ns)? != Some(id) {
        return Err(Error::NotFound { kind: "watched namespace", name: ns.label().to_owned() });
    }
    Mirror::dump(&crate::netns::socket_in(ns)?)
}

impl AsFd for Watcher {
    /// The socket to poll for readiness (with other fds, e.g. a signalfd); then call
    /// [`try_next`](Watcher::try_next).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.monitor.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(index: u32, s: &str) -> Address {
        Address { index, addr: s.parse().unwrap(), peer: None, label: None, flags: 0, scope: 0, protocol: None }
    }

    #[test]
    fn mirror_reports_each_change_once() {
        let mut m = Mirror::default();
        let a = Object::Address(addr(2, "198.51.100.1/24"));
        assert!(m.apply(Change::New, &a));
        assert!(!m.apply(Change::New, &a), "re-announced unchanged");
        assert!(m.apply(Change::Del, &a));
        assert!(!m.apply(Change::Del, &a), "deleting the absent");
    }

    #[test]
    fn diff_reports_added_removed_changed() {
        let mut old = Mirror::default();
        old.apply(Change::New, &Object::Address(addr(2, "198.51.100.1/24")));
        old.apply(Change::New, &Object::Address(addr(2, "198.51.100.2/24")));
        let mut now = old.clone();
        now.apply(Change::Del, &Object::Address(addr(2, "198.51.100.1/24")));
        let mut changed = addr(2, "198.51.100.2/24");
        changed.flags = 0x80;
        now.apply(Change::New, &Object::Address(changed.clone()));
        now.apply(Change::New, &Object::Address(addr(3, "203.0.113.9/32")));
        let mut out = Vec::new();
        old.diff(&now, &mut out);
        out.sort_by_key(|(c, o)| (*c == Change::New, format!("{o:?}")));
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], (Change::Del, Object::Address(addr(2, "198.51.100.1/24"))));
        assert!(out.contains(&(Change::New, Object::Address(changed))));
        let mut none = Vec::new();
        now.diff(&now, &mut none);
        assert!(none.is_empty());
    }
}
