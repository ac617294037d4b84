//! Netlink sockets bound to a namespace: where the namespace layer meets the netlink layer
//! (which itself knows nothing of namespaces).

use super::exec::{Target, hop};
use super::handle::NetNs;
use crate::error::Result;
use crate::netlink::Socket;

/// Opens a netlink socket bound to `ns` for its whole life. The calling thread enters `ns` for
/// the `socket()` call only and is back in its own namespace before this returns (where that
/// return cannot be guaranteed, a short-lived helper thread opens it instead). Errors of the
/// socket name `ns` by its label.
pub fn socket_in(ns: &NetNs) -> Result<Socket> {
    socket_in_from(&NetNs::current()?, ns)
}

/// [`socket_in`] for a caller that already holds `home`, a handle on the calling thread's
/// current namespace (saves opening one per socket).
pub(crate) fn socket_in_from(home: &NetNs, ns: &NetNs) -> Result<Socket> {
    Ok(hop(home, Target::Existing(ns), Socket::open)?.labelled(ns.label()))
}
