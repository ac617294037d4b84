//! Teardown off the caller's path, and knowing when the kernel has finished it.
//!
//! Deleting a veth makes the kernel wait for RCU (~32 ms here) before the request returns. A
//! namespace whose last reference goes is freed by the kernel's own `cleanup_net` work instead,
//! which deletes every virtual device inside — and a veth's peer with it — in one batch for all
//! namespaces freed together. So `destroy` of a namespace the sandbox made only returns links
//! moved in to their origin (they must leave before the namespace dies), notes the host ends
//! of the veth pairs `add_veth` made, closes its socket and unpins.
//!
//! Until the kernel has reaped it, such a host end still holds the engine's name. A new
//! `add_veth` that wants the name *parks* the old end first: one batch takes it down and
//! renames it to a unique name (`nsp…`), then the creation is retried. Parking is done only then,
//! not in every destroy, because each of those two changes waits for an RCU grace period in the
//! kernel (~0.5 ms each measured here), more than the whole rest of destroy.
//!
//! [`Reaped`] waits until the kernel has freed everything; a process-wide reaper thread
//! (started on demand, gone when idle) watches every pending teardown and deletes the host ends
//! itself if their namespace is still held by someone else (a process still inside, an fd)
//! after [`GRACE`], so nothing lingers for longer than that.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};
use once_cell::sync::Lazy;
use parking_lot::{Condvar, Mutex};

use super::host::Host;
use super::{DestroyReport, Live, NetnsSandbox, mark};
use crate::error::{Error, Result};
use crate::netlink::link::{LinkChange, LinkRef};
use crate::netlink::{BatchMode, Request, Socket};
use crate::netlink::{Link, LinkKind};
use crate::netns::NsFileHandle;

/// How long a destroyed sandbox's namespace may stay referenced elsewhere before the reaper
/// deletes its parked host ends itself.
pub const GRACE: Duration = Duration::from_secs(5);

/// Prefix of parked host ends' names: `nsp` + 5 hex digits of the process id + 7 of a counter
/// (15 bytes, the kernel's limit).
pub(crate) const PARKED_PREFIX: &str = "nsp";

static NEXT_PARKED: AtomicU32 = AtomicU32::new(0);

fn parked_name() -> String {
    let n = NEXT_PARKED.fetch_add(1, Ordering::Relaxed) & 0x0fff_ffff;
    format!("{PARKED_PREFIX}{:05x}{n:07x}", std::process::id() & 0xf_ffff)
}

/// A host end (by ifindex in the origin) waiting for its namespace to be freed.
#[derive(Debug)]
struct HostEnd {
    index: u32,
    /// Set once it was renamed out of a new `add_veth`'s way.
    parked: Mutex<Option<String>>,
}

/// One destroyed sandbox whose remains the kernel has not freed yet.
struct Pending {
    key: String,
    host: Arc<Host>,
    ends: Vec<HostEnd>,
    ns: Option<NsFileHandle>,
    since: Instant,
    state: Mutex<PendingState>,
    done: Condvar,
}

#[derive(Default)]
struct PendingState {
    reaped: bool,
    /// The namespace no longer referenced (checked once it is).
    ns_gone: bool,
    /// The reaper deleted parked ends itself (the namespace was held elsewhere).
    forced: bool,
}

impl Pending {
    /// Checks the kernel (links through `sock`, bound to the origin); true once the namespace is
    /// unreferenced and every host end gone.
    fn check(&self, sock: &Socket) -> bool {
        let mut st = self.state.lock();
        if st.reaped {
            return true;
        }
        if !st.ns_gone {
            st.ns_gone = self.ns.and_then(|h| h.alive()).is_none_or(|alive| !alive);
        }
        // The host ends go when the namespace is freed: no point looking before.
        if !st.ns_gone && !st.forced {
            return false;
        }
        let ends_gone = self.ends.iter().all(|e| match sock.link(LinkRef::Index(e.index)) {
            Ok(l) => !is_host_end(&l),
            Err(Error::NotFound { .. }) => true,
            Err(err) => {
                debug!("{}: cannot look up host end {}: {err}", self.key, e.index);
                false
            }
        });
        if ends_gone && (st.ns_gone || st.forced) {
            st.reaped = true;
            self.done.notify_all();
        }
        st.reaped
    }

    /// For a namespace still referenced after [`GRACE`]: deletes the host ends (checked at
    /// destroy to be the sandbox's peers; ifindexes are not reused), so they do not live as long
    /// as whoever holds the namespace.
    fn force(&self, sock: &Socket) {
        let mut st = self.state.lock();
        if st.forced || st.reaped || st.ns_gone {
            return;
        }
        st.forced = true;
        drop(st);
        for e in &self.ends {
            match sock.link(LinkRef::Index(e.index)) {
                Ok(l) if is_host_end(&l) => {
                    warn!("{}: namespace still held elsewhere after {GRACE:?}; deleting {}", self.key, l.name);
                    if let Err(err) = sock.delete_link(LinkRef::Index(e.index)) {
                        warn!("{}: cannot delete host end {}: {err}", self.key, l.name);
                    }
                }
                _ => {}
            }
        }
    }
}

/// Still the veth end noted at destroy (a veth with its peer in another namespace).
fn is_host_end(l: &Link) -> bool {
    l.kind == LinkKind::Veth && l.netnsid.is_some()
}

/// What a destroy left for the kernel to free — the namespace and the veth pairs the sandbox
/// made — and a way to wait until it has. Dropping it waits for nothing: the process-wide
/// reaper keeps watching.
#[derive(Clone, Default)]
pub struct Reaped {
    pending: Vec<Arc<Pending>>,
}

impl std::fmt::Debug for Reaped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys: Vec<&str> = self.pending.iter().map(|p| p.key.as_str()).collect();
        f.debug_struct("Reaped").field("pending", &keys).finish()
    }
}

impl Reaped {
    /// Origin-side ifindexes of the veth host ends still to be freed with the namespaces.
    pub fn host_ends(&self) -> Vec<u32> {
        self.pending.iter().flat_map(|p| p.ends.iter().map(|e| e.index)).collect()
    }

    /// Names the host ends were parked under (`nsp…`) because a new `add_veth` wanted their
    /// name before the kernel reaped them.
    pub fn parked(&self) -> Vec<String> {
        self.pending.iter().flat_map(|p| p.ends.iter().filter_map(|e| e.parked.lock().clone())).collect()
    }

    /// True once the kernel has freed everything: each namespace has no reference left and
    /// every parked host end is gone (asks the kernel now).
    pub fn is_reaped(&self) -> bool {
        self.pending.iter().all(|p| p.check(&p.host.sock))
    }

    /// Blocks until [`is_reaped`](Self::is_reaped) or `timeout` has passed; returns whether it
    /// was reaped. A namespace that something else keeps alive is not freed; its parked host
    /// ends are deleted by the reaper after [`GRACE`], and then this returns true once they
    /// are gone.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_micros(500);
        for p in &self.pending {
            loop {
                if p.check(&p.host.sock) {
                    break;
                }
                if p.since.elapsed() >= GRACE {
                    p.force(&p.host.sock);
                }
                let now = Instant::now();
                if now >= deadline {
                    return false;
                }
                let mut st = p.state.lock();
                if !st.reaped {
                    let _ = p.done.wait_for(&mut st, nap.min(deadline - now));
                }
                nap = (nap * 2).min(Duration::from_millis(10));
            }
        }
        true
    }

    pub(super) fn merge(&mut self, other: Reaped) {
        self.pending.extend(other.pending);
    }
}

/// Every teardown not yet reaped, watched by one on-demand thread.
struct Reaper {
    state: Mutex<ReaperState>,
    idle: Condvar,
}

#[derive(Default)]
struct ReaperState {
    pending: Vec<Arc<Pending>>,
    running: bool,
    thread: Option<JoinHandle<()>>,
}

static REAPER: Lazy<Reaper> = Lazy::new(|| Reaper { state: Mutex::new(ReaperState::default()), idle: Condvar::new() });

fn register(p: &Arc<Pending>) {
    let mut st = REAPER.state.lock();
    st.pending.push(Arc::clone(p));
    if st.running {
        return;
    }
    let finished = st.thread.take();
    st.running = true;
    match std::thread::Builder::new().name("netsandbox-reaper".into()).spawn(reap_loop) {
        Ok(h) => st.thread = Some(h),
        Err(e) => {
            // Callers can still wait on their `Reaped`; only the GRACE fallback is lost.
            warn!("cannot start the reaper thread: {e}");
            st.running = false;
            st.pending.clear();
        }
    }
    drop(st);
    if let Some(h) = finished {
        let _ = h.join();
    }
}

fn reap_loop() {
    // Its own socket per origin, so its lookups never queue behind a caller's requests on the
    // origin's shared socket.
    let mut socks: Vec<(Arc<Host>, Option<Socket>)> = Vec::new();
    let mut nap = Duration::from_millis(2);
    loop {
        let batch: Vec<Arc<Pending>> = {
            let mut st = REAPER.state.lock();
            if st.pending.is_empty() {
                st.running = false;
                REAPER.idle.notify_all();
                return;
            }
            st.pending.clone()
        };
        socks.retain(|(h, _)| batch.iter().any(|p| Arc::ptr_eq(h, &p.host)));
        let mut finished = Vec::new();
        // Pending teardowns are in the order they happened, and the kernel frees namespaces
        // roughly in that order too: past the first young one still alive, the rest are not
        // looked at this pass (with thousands pending, checking each of them every pass cost
        // the callers' teardowns more than the teardowns themselves). Those past GRACE are
        // always looked at: they may need forcing.
        let mut young_blocked = false;
        for p in &batch {
            let old = p.since.elapsed() >= GRACE;
            if young_blocked && !old {
                continue;
            }
            let i = match socks.iter().position(|(h, _)| Arc::ptr_eq(h, &p.host)) {
                Some(i) => i,
                None => {
                    let own = crate::netns::socket_in(&p.host.ns).ok();
                    socks.push((Arc::clone(&p.host), own));
                    socks.len() - 1
                }
            };
            let sock = socks[i].1.as_ref().unwrap_or(&p.host.sock);
            if p.check(sock) {
                finished.push(Arc::as_ptr(p));
            } else if old {
                p.force(sock);
            } else {
                young_blocked = true;
            }
        }
        if !finished.is_empty() {
            let finished: std::collections::HashSet<*const Pending> = finished.into_iter().collect();
            let mut st = REAPER.state.lock();
            st.pending.retain(|p| !finished.contains(&Arc::as_ptr(p)));
            nap = Duration::from_millis(2);
        } else {
            nap = (nap * 2).min(Duration::from_millis(50));
        }
        std::thread::sleep(nap);
    }
}

/// Waits until every teardown of this process has been reaped by the kernel (see [`Reaped`])
/// and the reaper thread has exited, or `timeout` passed; returns whether it is all done.
pub fn wait_all(timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut st = REAPER.state.lock();
    while st.running {
        if REAPER.idle.wait_until(&mut st, deadline).timed_out() {
            return false;
        }
    }
    let h = st.thread.take();
    drop(st);
    if let Some(h) = h {
        let _ = h.join();
    }
    true
}

/// The fast teardown of a namespace the sandbox made: notes the host ends of the veths it
/// made, returns the links moved in, leaves everything else it made to the kernel, closes and
/// unpins. `links` is the sandbox's link table.
pub(super) fn teardown(sb: &NetnsSandbox, live: Live, links: Vec<Link>) -> Result<(DestroyReport, Reaped)> {
    // A pre-wired pool's pair that was never used goes with the namespace like one add_veth made.
    let unused = sb.prewired.lock().take();
    let links = links.into_iter().filter(|l| unused.as_ref().is_none_or(|p| p.inside_index != l.index)).collect();
    let (mut ends, rest) = split(sb, &live, links);
    ends.extend(unused.map(|p| p.host_index));
    let report =
        if rest.is_empty() { DestroyReport::default() } else { super::iface::evacuate(sb, &live, &rest, true) };
    let ns = NsFileHandle::of_path(&sb.path);
    drop(live);
    crate::netns::unpin(&sb.path)?;
    debug!("destroyed sandbox {} ({} host ends left to the kernel)", sb.key, ends.len());
    if ends.is_empty() && ns.is_none() {
        return Ok((report, Reaped::default()));
    }
    Ok((report, watch(&sb.key, &sb.host, ends, ns)))
}

/// Hands a namespace no longer referenced by this process, and the origin-side host ends that
/// go with it, to the reaper.
pub(super) fn watch(label: &str, host: &Arc<Host>, ends: Vec<u32>, ns: Option<NsFileHandle>) -> Reaped {
    let p = Arc::new(Pending {
        key: label.to_owned(),
        host: Arc::clone(host),
        ends: ends.into_iter().map(|index| HostEnd { index, parked: Mutex::new(None) }).collect(),
        ns,
        since: Instant::now(),
        state: Mutex::new(PendingState::default()),
        done: Condvar::new(),
    });
    register(&p);
    Reaped { pending: vec![p] }
}

/// Splits the sandbox's links into the origin-side indexes of veths it made whose peer is in
/// the origin, and links that need `evacuate` (moved in, or not made by netsandbox). Links it
/// made otherwise (bridges, veths with both ends inside) go with the namespace.
fn split(sb: &NetnsSandbox, live: &Live, links: Vec<Link>) -> (Vec<u32>, Vec<Link>) {
    let mut ends = Vec::new();
    let mut rest = Vec::new();
    // The id under which the sandbox knows its origin: a veth whose peer is there names it.
    let mut origin_id = None;
    for l in links.into_iter().filter(|l| l.kind != LinkKind::Loopback && l.name != "lo") {
        let created = mark::is_created(&l.altnames);
        match (created, &l.kind, l.link, l.netnsid) {
            (true, LinkKind::Veth, Some(peer), Some(id)) => {
                let origin = *origin_id.get_or_insert_with(|| live.sock.nsid_of(&sb.host.ns).ok().flatten());
                if origin == Some(id) {
                    ends.push(peer);
                } else {
                    // Peer elsewhere: it goes with whichever namespace holds it.
                    rest.push(l);
                }
            }
            (true, _, _, _) => {}
            _ => rest.push(l),
        }
    }
    (ends, rest)
}

/// For `add_veth`, whose host-end name `name` is taken in `host`: if the link holding it is the
/// host end of a sandbox this process destroyed and the kernel has not reaped yet, takes it down
/// and renames it to a unique parked name in one batch. Returns whether the name is free now.
pub(super) fn unblock_name(host: &Arc<Host>, name: &str) -> bool {
    let Ok(l) = host.sock.link(LinkRef::Name(name)) else { return false };
    let end = {
        let st = REAPER.state.lock();
        st.pending
            .iter()
            .filter(|p| Arc::ptr_eq(&p.host, host))
            .find_map(|p| p.ends.iter().position(|e| e.index == l.index).map(|i| (Arc::clone(p), i)))
    };
    let Some((p, i)) = end else { return false };
    if !is_host_end(&l) {
        return false;
    }
    for _attempt in 0..2 {
        let parked = parked_name();
        let reqs = [
            LinkChange::new().up(false).request(LinkRef::Index(l.index)),
            LinkChange::new().name(&parked).request(LinkRef::Index(l.index)),
        ];
        let Ok(reqs) = reqs.into_iter().collect::<Result<Vec<Request>>>() else { return false };
        match host.sock.batch(&reqs, BatchMode::Continue) {
            Ok(r) if r.outcomes.get(1).is_some_and(|o| o.is_applied()) => {
                debug!("{}: parked the old host end {name} as {parked} for a new add_veth", p.key);
                *p.ends[i].parked.lock() = Some(parked);
                return true;
            }
            Ok(r) => debug!("parking {name} as {parked} failed: {:?}", r.first_error().map(|(_, e)| e.to_string())),
            Err(e) => {
                warn!("parking {name} failed: {e}");
                return false;
            }
        }
    }
    false
}
