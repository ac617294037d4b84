//! Teardown off the caller's path, and knowing when the kernel has finished it.
//!
//! Deleting a veth makes the kernel wait for RCU (~32 ms here) before the request returns. A
//! namespace whose last reference goes is freed by the kernel's own `cleanup_net` work instead,
//! which deletes every virtual device inside — and a veth's peer with it — in one batch for all
//! namespaces freed together. So `destroy` of a namespace the sandbox made only:
//!
//! 1. returns links moved in to their origin (they must leave before the namespace dies);
//! 2. *parks* the host ends of the veth pairs `add_veth` made: one batch in the origin takes each
//!    down and renames it to a unique name, so the engine's name is free at once;
//! 3. closes its socket and unpins.
//!
//! The kernel then reaps the namespace and the parked pairs. [`Reaped`] waits for that; a
//! process-wide reaper thread (started on demand, gone when idle) watches every pending
//! teardown and deletes parked host ends itself if their namespace is still held by someone
//! else (a process still inside, an fd) after [`GRACE`], so nothing lingers for longer than that.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};
use once_cell::sync::Lazy;
use parking_lot::{Condvar, Mutex};

use super::host::Host;
use super::iface::CREATED;
use super::{Live, NetnsSandbox};
use crate::error::{Error, Result};
use crate::netlink::link::{LinkChange, LinkRef};
use crate::netlink::view::{Link, LinkKind};
use crate::netlink::{BatchMode, Request};
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

/// A host end renamed out of the engine's way, waiting for its namespace to be freed.
#[derive(Debug, Clone)]
struct Parked {
    index: u32,
    name: String,
}

/// One destroyed sandbox whose remains the kernel has not freed yet.
struct Pending {
    key: String,
    host: Arc<Host>,
    parked: Vec<Parked>,
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
    /// Checks the kernel; true once the namespace is unreferenced and every parked end gone.
    fn check(&self) -> bool {
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
        let ends_gone = self.parked.iter().all(|p| match self.host.sock.link(LinkRef::Index(p.index)) {
            Ok(l) => l.name != p.name,
            Err(Error::NotFound { .. }) => true,
            Err(e) => {
                debug!("{}: cannot look up parked {}: {e}", self.key, p.name);
                false
            }
        });
        if ends_gone && (st.ns_gone || st.forced) {
            st.reaped = true;
            self.done.notify_all();
        }
        st.reaped
    }

    /// For a namespace still referenced after [`GRACE`]: deletes the parked ends (ours by their
    /// unique names), so they do not live as long as whoever holds the namespace.
    fn force(&self) {
        let mut st = self.state.lock();
        if st.forced || st.reaped || st.ns_gone {
            return;
        }
        st.forced = true;
        drop(st);
        for p in &self.parked {
            match self.host.sock.link(LinkRef::Index(p.index)) {
                Ok(l) if l.name == p.name => {
                    warn!("{}: namespace still held elsewhere after {GRACE:?}; deleting {}", self.key, p.name);
                    if let Err(e) = self.host.sock.delete_link(LinkRef::Index(p.index)) {
                        warn!("{}: cannot delete parked {}: {e}", self.key, p.name);
                    }
                }
                _ => {}
            }
        }
    }
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
    /// Names of the parked host ends (`nsp…`) still to be freed, in the origin namespace.
    pub fn parked(&self) -> Vec<String> {
        self.pending.iter().flat_map(|p| p.parked.iter().map(|x| x.name.clone())).collect()
    }

    /// True once the kernel has freed everything: each namespace has no reference left and
    /// every parked host end is gone (asks the kernel now).
    pub fn is_reaped(&self) -> bool {
        self.pending.iter().all(|p| p.check())
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
                if p.check() {
                    break;
                }
                if p.since.elapsed() >= GRACE {
                    p.force();
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
        let mut finished = Vec::new();
        for p in &batch {
            if p.check() {
                finished.push(Arc::as_ptr(p));
            } else if p.since.elapsed() >= GRACE {
                p.force();
            }
        }
        {
            let mut st = REAPER.state.lock();
            st.pending.retain(|p| !finished.contains(&Arc::as_ptr(p)));
        }
        nap = if finished.is_empty() { (nap * 2).min(Duration::from_millis(50)) } else { Duration::from_millis(2) };
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

/// The fast teardown of a namespace the sandbox made: parks the host ends of the veths it made,
/// returns the links moved in, leaves everything else it made to the kernel, closes and
/// unpins. `links` is the sandbox's link table.
pub(super) fn teardown(sb: &NetnsSandbox, live: Live, links: Vec<Link>) -> Result<Reaped> {
    let (ends, rest) = split(sb, &live, links);
    let parked = park(&sb.host, &sb.key, &ends);
    // Host ends that could not be parked go the slow way, with the rest.
    let mut leftover: Vec<Link> = rest;
    for (inside, host_index) in &ends {
        if !parked.iter().any(|p| p.index == *host_index) {
            leftover.push(inside.clone());
        }
    }
    if !leftover.is_empty() {
        super::iface::evacuate(sb, &live, &leftover);
    }
    let ns = NsFileHandle::of_path(&sb.path);
    drop(live);
    crate::netns::unpin(&sb.path)?;
    debug!("destroyed sandbox {} ({} host ends parked)", sb.key, parked.len());
    if parked.is_empty() && ns.is_none() {
        return Ok(Reaped::default());
    }
    let p = Arc::new(Pending {
        key: sb.key.clone(),
        host: Arc::clone(&sb.host),
        parked,
        ns,
        since: Instant::now(),
        state: Mutex::new(PendingState::default()),
        done: Condvar::new(),
    });
    register(&p);
    Ok(Reaped { pending: vec![p] })
}

/// Splits the sandbox's links into veths it made whose peer is in the origin (with the peer's
/// index there) and links that need `evacuate` (moved in, or not made by netsandbox). Links
/// it made otherwise (bridges, veths with both ends inside) go with the namespace.
fn split(sb: &NetnsSandbox, live: &Live, links: Vec<Link>) -> (Vec<(Link, u32)>, Vec<Link>) {
    let mut ends = Vec::new();
    let mut rest = Vec::new();
    let mut nsid = None;
    for l in links.into_iter().filter(|l| l.kind != LinkKind::Loopback && l.name != "lo") {
        let created = l.alias.as_deref() == Some(CREATED);
        match (created, l.kind.clone(), l.link, l.netnsid) {
            (true, LinkKind::Veth, Some(peer), Some(_)) => {
                if nsid.is_none() {
                    nsid = Some(live.ns().and_then(|ns| sb.host.sock.nsid_of(&ns)).ok().flatten());
                }
                match sb.host.sock.link(LinkRef::Index(peer)) {
                    Ok(h) if h.kind == LinkKind::Veth && h.link == Some(l.index) && h.netnsid == nsid.flatten() => {
                        ends.push((l, h.index))
                    }
                    // Peer not in the origin: it goes with whichever namespace holds it.
                    _ => rest.push(l),
                }
            }
            (true, _, _, _) => {}
            _ => rest.push(l),
        }
    }
    (ends, rest)
}

/// Takes the host ends down and renames them to unique parked names, in one batch. Returns the
/// ones parked; a name the kernel refuses (taken) is retried once with the next one.
fn park(host: &Host, key: &str, ends: &[(Link, u32)]) -> Vec<Parked> {
    let mut parked = Vec::with_capacity(ends.len());
    let mut todo: Vec<u32> = ends.iter().map(|(_, i)| *i).collect();
    for _attempt in 0..2 {
        if todo.is_empty() {
            break;
        }
        let mut reqs: Vec<Request> = Vec::with_capacity(2 * todo.len());
        let mut names = Vec::with_capacity(todo.len());
        for &i in &todo {
            let name = parked_name();
            let (Ok(down), Ok(rename)) = (
                LinkChange::new().up(false).request(LinkRef::Index(i)),
                LinkChange::new().name(&name).request(LinkRef::Index(i)),
            ) else {
                continue;
            };
            reqs.push(down);
            reqs.push(rename);
            names.push((i, name));
        }
        let outcomes = match host.sock.batch(&reqs, BatchMode::Continue) {
            Ok(r) => r.outcomes,
            Err(e) => {
                warn!("{key}: parking host ends failed ({e}); deleting them");
                return parked;
            }
        };
        let mut again = Vec::new();
        for (k, (i, name)) in names.into_iter().enumerate() {
            match outcomes.get(2 * k + 1) {
                Some(o) if o.is_applied() => parked.push(Parked { index: i, name }),
                _ => again.push(i),
            }
        }
        todo = again;
    }
    parked
}
