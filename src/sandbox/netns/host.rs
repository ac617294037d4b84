//! The origin ("host") side of sandboxes: the namespace links come from and go back to.
//!
//! Every sandbox opened from the same namespace shares one handle and one netlink socket, so a
//! live sandbox costs one fd for its namespace and one for its own socket, however many exist.

use std::collections::HashMap;
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
