//! The origin ("host") side of sandboxes: the namespace links come from and go back to.
//!
//! Every sandbox opened from the same namespace shares one handle and one netlink socket, so a
//! live sandbox costs one fd for its namespace and one for its own socket, however many exist.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};

use once_cell::sync::Lazy;
use parking_lot::Mutex;

use crate::error::Result;
use crate::netlink::Socket;
use crate::netns::{NetNs, NsInode};

/// The origin namespace and a socket bound to it.
#[derive(Debug)]
pub(crate) struct Host {
    pub(crate) ns: NetNs,
    pub(crate) sock: Socket,
    /// The namespace's never-reused id, recorded on links moved in from here; 0 where the
    /// kernel cannot tell (before Linux 5.14), and then only the inode identifies it.
    pub(crate) cookie: u64,
    /// Its nsfs device and inode, to find it again from another process.
    pub(crate) inode: NsInode,
}

/// Ids per process for [`Host::name_newest_first`].
const NSID_RANGE: u32 = 1 << 16;

static HOSTS: Lazy<Mutex<HashMap<u64, Weak<Host>>>> = Lazy::new(|| Mutex::new(HashMap::new()));

impl Host {
    /// The shared context for the calling thread's current namespace.
    pub(crate) fn current() -> Result<Arc<Host>> {
        // We are in it already: no namespace hop needed to open the socket.
        Self::shared(NetNs::current()?, || Ok(Socket::open()?.labelled("origin")))
    }

    /// A socket bound to `ns`, like [`socket_in`](crate::netns::socket_in) without opening a handle on the calling
    /// thread's namespace again. Only for the `Host` that [`Host::current`] just returned on
    /// this thread: the thread steps into `ns` and back to `self.ns`.
    pub(crate) fn socket_in(&self, ns: &NetNs) -> Result<Socket> {
        crate::netns::socket_in_from(&self.ns, ns)
    }

    /// Gives `ns` (a sandbox namespace about to get its first veth) its id in this origin
    /// before the kernel picks one: the kernel looks a peer's id up by walking the origin's ids
    /// in ascending order (`peernet2id`, on every notification about a host end), and picks the
    /// lowest free id itself, so with thousands of sandboxes the newest, whose links are the
    /// ones being set up, was always found last and every set-up step cost O(live sandboxes).
    /// Ids handed out here count down from the top of a per-process range, so the newest is
    /// found first. Best effort: an id that is taken (another process, a wrapped range) or a
    /// namespace that already has one leaves the kernel's own choice.
    pub(crate) fn name_newest_first(&self, ns: &NetNs) {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed) % NSID_RANGE;
        let range = std::process::id() % (i32::MAX as u32 / NSID_RANGE);
        let top = i32::MAX as u32 - range * NSID_RANGE;
        let id = (top - n) as i32;
        if let Err(e) = self.sock.execute(crate::netlink::nsid::assign_id(ns.as_fd(), id)) {
            log::debug!("namespace id {id} not given ({e}): the kernel picks one");
        }
    }

    fn shared(ns: NetNs, open: impl FnOnce() -> Result<Socket>) -> Result<Arc<Host>> {
        let ino = ns.inode()?;
        let mut hosts = HOSTS.lock();
        if let Some(h) = hosts.get(&ino).and_then(Weak::upgrade) {
            return Ok(h);
        }
        let sock = open()?;
        let cookie = sock.netns_cookie().unwrap_or_else(|e| {
            log::debug!("no namespace cookie ({e}): origins are identified by inode only");
            0
        });
        let inode = ns.nsfs_inode()?;
        let h = Arc::new(Host { ns, sock, cookie, inode });
        hosts.retain(|_, w| w.strong_count() > 0);
        hosts.insert(ino, Arc::downgrade(&h));
        Ok(h)
    }
}
