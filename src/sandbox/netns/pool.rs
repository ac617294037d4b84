//! A warm pool of ready network namespaces, so creating a sandbox costs a bind mount instead of
//! a namespace creation (~0.8 ms of kernel work here, plus a thread hop and a socket).
//!
//! Pooled namespaces are held by fd only (never pinned) with their loopback up and a netlink
//! socket already bound inside. Taking one pins it at the caller's key. A background thread
//! refills the pool off the caller's path; dropping the pool (or [`WarmPool::shutdown`]) stops
//! that thread and closes every pooled namespace, which the kernel then frees: nothing is left.

use std::collections::VecDeque;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, warn};
use parking_lot::{Condvar, Mutex};

use super::host::Host;
use super::prewire::{self, Prewired};
use super::{CreateOptions, NetnsSandbox, prepare_inside};
use crate::error::{Error, Result};
use crate::netlink::Socket;
use crate::netns::{self, NetNs};
use crate::sandbox::key::check_key;

/// A namespace ready to become a sandbox.
struct Ready {
    ns: NetNs,
    sock: Socket,
    /// The veth pair of a pre-wired pool.
    pair: Option<Prewired>,
}

struct Shared {
    ready: Mutex<State>,
    wake: Condvar,
    size: usize,
    opts: CreateOptions,
    quiet: Duration,
    /// Pre-wired: each namespace comes with a veth pair whose host end is in this origin.
    prewire: Option<Arc<Host>>,
}

struct State {
    queue: VecDeque<Ready>,
    stop: bool,
    /// When the last [`WarmPool::take`] happened; the refill waits for a quiet period after it.
    last_take: Option<Instant>,
}

/// A bounded pool of pre-created namespaces for [`NetnsSandbox`].
///
/// Guarantees: at most `size` namespaces are held; [`take`](Self::take) never blocks on the
/// refill thread (an empty pool creates a namespace on the caller's thread instead); shutdown
/// joins the refill thread and releases every pooled namespace.
///
/// Refilling waits until no `take` has happened for a quiet period ([`DEFAULT_QUIET`](Self::DEFAULT_QUIET) unless set
/// with [`with_quiet_period`](Self::with_quiet_period)). Namespace creation holds kernel locks
/// (RTNL among them) that the caller's own set-up needs right after a take, so refilling
/// during a burst of sandbox creations would slow every one of them; measured here, a veth
/// added while the pool refilled took ~1.25 ms instead of ~0.8 ms.
pub struct WarmPool {
    shared: Arc<Shared>,
    host: Arc<Host>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for WarmPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WarmPool").field("size", &self.shared.size).field("ready", &self.ready()).finish()
    }
}

/// Makes one namespace with its loopback up and a socket bound inside (see
/// [`netns::hop`] for which thread does it).
fn make(opts: &CreateOptions, prewire: Option<&Host>) -> Result<Ready> {
    let (ns, sock) = netns::hop(&NetNs::current()?, netns::Target::New, || {
        let sock = prepare_inside(opts, "pooled namespace")?;
        Ok((NetNs::current()?, sock))
    })?;
    let pair = match prewire {
        Some(host) => Some(prewire::make(host, &ns, &sock)?),
        None => None,
    };
    Ok(Ready { ns, sock, pair })
}

impl WarmPool {
    /// How long the pool waits after the last take before refilling, by default.
    pub const DEFAULT_QUIET: Duration = Duration::from_millis(5);

    /// Starts a pool of `size` namespaces made with `opts`, filled in the background. The
    /// caller's current namespace is the origin of sandboxes taken from it.
    pub fn new(size: usize, opts: CreateOptions) -> Result<WarmPool> {
        Self::with_quiet_period(size, opts, Self::DEFAULT_QUIET)
    }

    /// Like [`new`](Self::new), refilling only once no `take` has happened for `quiet`
    /// (`Duration::ZERO`: refill at once).
    pub fn with_quiet_period(size: usize, opts: CreateOptions, quiet: Duration) -> Result<WarmPool> {
        Self::start(size, opts, quiet, false)
    }

    /// A pre-wired pool: each namespace also holds a veth pair made ahead (the sandbox end born
    /// inside as `eth0`, the host end in the caller's namespace under a temporary name `nsw…`,
    /// both down). The first [`add_veth`](crate::sandbox::Sandbox::add_veth)`(host_name, "eth",
    /// opts)` on a taken sandbox then renames the host end to `host_name` and applies `opts`
    /// instead of creating a pair; any other first call ignores it (the pair goes with the
    /// namespace). Refilling (namespace and pair) waits for the quiet period as usual.
    pub fn prewired(size: usize, opts: CreateOptions) -> Result<WarmPool> {
        Self::start(size, opts, Self::DEFAULT_QUIET, true)
    }

    fn start(size: usize, opts: CreateOptions, quiet: Duration, prewire: bool) -> Result<WarmPool> {
        let host = Host::current()?;
        let shared = Arc::new(Shared {
            ready: Mutex::new(State { queue: VecDeque::new(), stop: false, last_take: None }),
            wake: Condvar::new(),
            size,
            opts,
            quiet,
            prewire: prewire.then(|| Arc::clone(&host)),
        });
        let worker_shared = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("netsandbox-pool".into())
            .spawn(move || refill(&worker_shared))
            .map_err(|e| Error::os("spawn thread", "netsandbox-pool", e))?;
        Ok(WarmPool { shared, host, worker: Mutex::new(Some(worker)) })
    }

    /// How many namespaces are ready now.
    pub fn ready(&self) -> usize {
        self.shared.ready.lock().queue.len()
    }

    /// Blocks until the pool is full or `timeout` passes; returns whether it is full. For
    /// start-up and tests: taking never needs this.
    pub fn wait_full(&self, timeout: Duration) -> bool {
        let mut st = self.shared.ready.lock();
        let deadline = std::time::Instant::now() + timeout;
        while st.queue.len() < self.shared.size && !st.stop {
            if self.shared.wake.wait_until(&mut st, deadline).timed_out() {
                break;
            }
        }
        st.queue.len() >= self.shared.size
    }

    /// A new sandbox pinned at `key`: a pooled namespace when one is ready, else one made now.
    /// Same guarantees and errors as [`NetnsSandbox::create`].
    pub fn take(&self, key: &str) -> Result<NetnsSandbox> {
        let path = check_key(key)?;
        let pooled = {
            let mut st = self.shared.ready.lock();
            let r = st.queue.pop_front();
            st.last_take = Some(Instant::now());
            self.shared.wake.notify_all();
            r
        };
        let Ready { ns, sock, pair } = match pooled {
            Some(r) => r,
            None => {
                debug!("pool empty: creating a namespace for {key} on the caller's thread");
                make(&self.shared.opts, self.shared.prewire.as_deref())?
            }
        };
        // On failure `ns` and `sock` are dropped: the namespace is freed, nothing is pinned.
        netns::pin_existing(&ns, &path)?;
        let sb = NetnsSandbox::assemble(key, path, Arc::clone(&self.host), ns, sock.labelled(key))?;
        if pair.is_some() {
            // Named by the refill when it made the pair.
            sb.named.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        *sb.prewired.lock() = pair;
        Ok(sb)
    }

    /// Stops refilling and releases every pooled namespace. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        {
            let mut st = self.shared.ready.lock();
            st.stop = true;
            let host = self.shared.prewire.clone();
            for r in st.queue.drain(..) {
                release(r, host.as_ref());
            }
            self.shared.wake.notify_all();
        }
        if let Some(h) = self.worker.lock().take()
            && h.join().is_err()
        {
            warn!("pool refill thread panicked");
        }
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn refill(shared: &Shared) {
    let mut failures = 0u32;
    loop {
        {
            let mut st = shared.ready.lock();
            loop {
                if st.stop {
                    return;
                }
                if st.queue.len() >= shared.size {
                    shared.wake.wait(&mut st);
                    continue;
                }
                match st.last_take.map(|t| t + shared.quiet).filter(|&until| until > Instant::now()) {
                    Some(until) => {
                        shared.wake.wait_until(&mut st, until);
                    }
                    None => break,
                }
            }
        }
        match make(&shared.opts, shared.prewire.as_deref()) {
            Ok(r) => {
                failures = 0;
                let mut st = shared.ready.lock();
                if st.stop {
                    return;
                }
                st.queue.push_back(r);
                shared.wake.notify_all();
            }
            Err(e) => {
                failures += 1;
                warn!("pool: cannot create a namespace ({e}); retrying");
                // Back off so a persistent failure (e.g. namespace limit) does not spin.
                let mut st = shared.ready.lock();
                let wait = Duration::from_millis(10 << failures.min(8));
                if !st.stop {
                    shared.wake.wait_for(&mut st, wait);
                }
            }
        }
    }
}

/// Lets a pooled namespace go: the kernel frees it, with its pre-wired pair, which the reaper
/// watches like a destroyed sandbox's.
fn release(r: Ready, host: Option<&Arc<Host>>) {
    let Ready { ns, sock, pair } = r;
    if let (Some(pair), Some(host)) = (pair, host) {
        let handle = crate::netns::NsFileHandle::of_fd(&ns);
        drop((ns, sock));
        super::reap::watch("pooled namespace", host, vec![pair.host_index], handle);
    }
}
