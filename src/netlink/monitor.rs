//! The multicast receive path: a socket subscribed to rtnetlink notification groups, with
//! `NETLINK_LISTEN_ALL_NSID` so one socket hears every namespace that has a namespace id in
//! the socket's own namespace. Each notification carries that id (from the `NETLINK_LISTEN_ALL_NSID`
//! control message) or `None` for the socket's own namespace; what an id *means* is for the
//! layer above to say.
//!
//! Guarantees: memory is bounded (one receive buffer; the kernel queue is bounded by the
//! socket's receive buffer, and an overflow is reported as [`Received::Overflow`] — events were
//! lost, the caller must re-read state — never silently dropped); nothing here panics on any
//! input ([`decode`] is pure and total); every fd is close-on-exec.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::nsid::NsidAttribute;
use netlink_sys::protocols::NETLINK_ROUTE;
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};

use super::wire::{self, NLMSG_OVERRUN};
use super::{Address, Link, Neighbor, Route};
use crate::error::{Error, Result};

/// An rtnetlink multicast group (`RTNLGRP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Group {
    /// `RTNLGRP_LINK`: links created, changed, deleted.
    Link,
    /// `RTNLGRP_NEIGH`: neighbor (ARP/NDP/FDB) entries.
    Neigh,
    /// `RTNLGRP_IPV4_IFADDR`.
    Ipv4Addr,
    /// `RTNLGRP_IPV4_ROUTE`.
    Ipv4Route,
    /// `RTNLGRP_IPV6_IFADDR`.
    Ipv6Addr,
    /// `RTNLGRP_IPV6_ROUTE`.
    Ipv6Route,
    /// `RTNLGRP_NSID`: namespace ids assigned and released.
    Nsid,
}

impl Group {
    /// Every group a sandbox watcher needs.
    pub const ALL: [Group; 7] =
        [Group::Link, Group::Neigh, Group::Ipv4Addr, Group::Ipv4Route, Group::Ipv6Addr, Group::Ipv6Route, Group::Nsid];

    /// The kernel's group number.
    pub fn number(self) -> u32 {
        match self {
            Group::Link => 1,
            Group::Neigh => 3,
            Group::Ipv4Addr => 5,
            Group::Ipv4Route => 7,
            Group::Ipv6Addr => 9,
            Group::Ipv6Route => 11,
            Group::Nsid => 28,
        }
    }
}

/// Whether an object appeared/changed or went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// `RTM_NEW*`: created, or changed in place.
    New,
    /// `RTM_DEL*`.
    Del,
}

/// The object a notification is about, as our own checked views.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Object {
    /// A link.
    Link(Link),
    /// An interface address.
    Address(Address),
    /// A route.
    Route(Route),
    /// A neighbor or FDB entry.
    Neighbor(Neighbor),
    /// A namespace id in the sending namespace: `id` now names (New) or no longer names (Del)
    /// some peer namespace.
    Nsid {
        /// The id.
        id: i32,
    },
}

/// One decoded notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The namespace it came from, as the id the socket's namespace gave it; `None` for the
    /// socket's own namespace.
    pub nsid: Option<i32>,
    /// New or deleted.
    pub change: Change,
    /// What changed.
    pub object: Object,
}

/// What one receive produced.
#[derive(Debug)]
pub enum Received {
    /// The notifications of one datagram (possibly none: messages of other kinds, or undecodable
    /// ones, are skipped).
    Notifications(Vec<Notification>),
    /// The kernel dropped notifications because the receive queue was full (`ENOBUFS`), or a
    /// datagram was too large for the buffer: state must be re-read.
    Overflow,
}

/// Receive buffer: a notification is one skb of at most a few KiB; a larger one is reported as
/// [`Received::Overflow`] rather than half-read.
const RX_LEN: usize = 64 << 10;

/// A socket subscribed to notification groups, hearing every namespace with an id.
pub struct Monitor {
    sock: netlink_sys::Socket,
    rx: Vec<u8>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").finish_non_exhaustive()
    }
}

impl Monitor {
    /// Opens a monitor in the calling thread's namespace, subscribed to `groups`, with
    /// `NETLINK_LISTEN_ALL_NSID`. `rcvbuf` sets the kernel receive queue size in bytes (forced
    /// past `rmem_max` when privileged); `None` keeps the default. Small queues overflow sooner
    /// ([`Received::Overflow`]), large ones hold more pinned kernel memory.
    pub fn open(groups: &[Group], rcvbuf: Option<usize>) -> Result<Monitor> {
        let os = |op, e: std::io::Error| Error::os(op, "NETLINK_ROUTE monitor", e);
        let mut sock = netlink_sys::Socket::new(NETLINK_ROUTE).map_err(|e| os("open", e))?;
        sock.bind_auto().map_err(|e| os("bind", e))?;
        if let Some(n) = rcvbuf
            && setsockopt(&sock, sockopt::RcvBufForce, &n).is_err()
        {
            setsockopt(&sock, sockopt::RcvBuf, &n).map_err(|e| os("set SO_RCVBUF on", e.into()))?;
        }
        sock.set_listen_all_namespaces(true).map_err(|e| os("set NETLINK_LISTEN_ALL_NSID on", e))?;
        for g in groups {
            sock.add_membership(g.number()).map_err(|e| os("join multicast group", e))?;
        }
        Ok(Monitor { sock, rx: vec![0; RX_LEN] })
    }

    /// Waits at most `timeout` (`None`: forever) for a datagram and decodes it. `Ok(None)` when
    /// the time ran out. Interrupted waits (`EINTR`) return `Ok(None)` too, so a caller can check
    /// for signals.
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Option<Received>> {
        if !self.wait_readable(timeout)? {
            return Ok(None);
        }
        self.recv_ready()
    }

    /// Reads one datagram if one is queued, without waiting.
    pub fn try_recv(&mut self) -> Result<Option<Received>> {
        self.recv_ready()
    }

    fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let t = match timeout {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::try_from(d).unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, t) {
            Ok(0) | Err(Errno::EINTR) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(Error::os("poll", "NETLINK_ROUTE monitor", e)),
        }
    }

    fn recv_ready(&mut self) -> Result<Option<Received>> {
        let (len, nsid, sender, truncated) = match recvmsg_nsid(self.sock.as_fd(), &mut self.rx) {
            Ok(r) => r,
            Err(Errno::EAGAIN | Errno::EINTR) => return Ok(None),
            Err(Errno::ENOBUFS) => return Ok(Some(Received::Overflow)),
            Err(e) => return Err(Error::os("receive notification", "NETLINK_ROUTE monitor", e)),
        };
        if truncated {
            log::warn!("notification datagram larger than {RX_LEN} bytes: reporting an overflow");
            return Ok(Some(Received::Overflow));
        }
        if sender != 0 {
            // Only the kernel sends to rtnetlink groups; anything else is not a notification.
            log::debug!("ignoring a datagram from port {sender}");
            return Ok(Some(Received::Notifications(Vec::new())));
        }
        let mut out = Vec::new();
        if decode(&self.rx[..len], nsid, &mut out).overrun {
            return Ok(Some(Received::Overflow));
        }
        Ok(Some(Received::Notifications(out)))
    }
}

impl AsFd for Monitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

/// What [`decode`] saw besides the notifications it produced.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DecodeStats {
    /// Messages skipped: other kinds, or undecodable.
    pub skipped: usize,
    /// The datagram carried `NLMSG_OVERRUN`.
    pub overrun: bool,
}

/// Decodes the notifications of one datagram from namespace `nsid` into `out`. Pure and total:
/// malformed framing ends the datagram, undecodable messages are skipped, nothing panics.
pub fn decode(buf: &[u8], nsid: Option<i32>, out: &mut Vec<Notification>) -> DecodeStats {
    let mut stats = DecodeStats::default();
    for frame in wire::frames(buf) {
        let Ok(frame) = frame else {
            stats.skipped += 1;
            break;
        };
        if frame.header.kind == NLMSG_OVERRUN {
            stats.overrun = true;
            continue;
        }
        let Ok(msg) = wire::decode_route(&frame.header, frame.payload) else {
            stats.skipped += 1;
            continue;
        };
        match notification(&msg) {
            Some((change, object)) => out.push(Notification { nsid, change, object }),
            None => stats.skipped += 1,
        }
    }
    stats
}

fn notification(msg: &RouteNetlinkMessage) -> Option<(Change, Object)> {
    use Change::{Del, New};
    use RouteNetlinkMessage as M;
    let nsid = |m: &netlink_packet_route::nsid::NsidMessage| {
        m.attributes.iter().find_map(|a| match a {
            NsidAttribute::Id(id) => Some(Object::Nsid { id: *id }),
            _ => None,
        })
    };
    let r = match msg {
        M::NewLink(l) => (New, Object::Link(without_stats(Link::from_message(l).ok()?))),
        M::DelLink(l) => (Del, Object::Link(without_stats(Link::from_message(l).ok()?))),
        M::NewAddress(a) => (New, Object::Address(Address::from_message(a).ok()?)),
        M::DelAddress(a) => (Del, Object::Address(Address::from_message(a).ok()?)),
        M::NewRoute(r) => (New, Object::Route(Route::from_message(r).ok()?)),
        M::DelRoute(r) => (Del, Object::Route(Route::from_message(r).ok()?)),
        M::NewNeighbour(n) => (New, Object::Neighbor(Neighbor::from_message(n).ok()?)),
        M::DelNeighbour(n) => (Del, Object::Neighbor(Neighbor::from_message(n).ok()?)),
        M::NewNsId(m) => (New, nsid(m)?),
        M::DelNsId(m) => (Del, nsid(m)?),
        _ => return None,
    };
    Some(r)
}

/// Counters change with every packet and are not what a change notification is about.
pub(crate) fn without_stats(mut l: Link) -> Link {
    l.stats = None;
    l
}

/// `recvmsg(MSG_DONTWAIT)` into `buf`: (length, the `NETLINK_LISTEN_ALL_NSID` id if any, the
/// sender's port, truncated).
fn recvmsg_nsid(fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::result::Result<(usize, Option<i32>, u32, bool), Errno> {
    const SOL_NETLINK: i32 = 270;
    const NETLINK_LISTEN_ALL_NSID: i32 = 8;
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // u64 for the alignment cmsghdr needs; room for the nsid control message and more.
    let mut control = [0u64; 16];
    // SAFETY: an all-zero sockaddr_nl / msghdr is a valid value of these plain C structs.
    let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_name = (&raw mut addr).cast();
    mh.msg_namelen = std::mem::size_of::<libc::sockaddr_nl>() as u32;
    mh.msg_iov = &raw mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.as_mut_ptr().cast();
    mh.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: `mh` points at `iov` (covering `buf`), `addr` and `control`, all live and writable
    // for the duration of the call and sized as declared; the fd is kept open by the borrow.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut mh, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(Errno::last());
    }
    let mut nsid = None;
    // SAFETY: the CMSG_* helpers walk the control buffer the kernel filled, bounded by
    // msg_controllen, which the kernel set to at most the buffer's size.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == SOL_NETLINK
                && h.cmsg_type == NETLINK_LISTEN_ALL_NSID
                && h.cmsg_len as usize >= libc::CMSG_LEN(4) as usize
            {
                nsid = Some(std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>()));
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    let truncated = mh.msg_flags & libc::MSG_TRUNC != 0;
    Ok((n as usize, nsid, addr.nl_pid, truncated))
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::address::{AddressAttribute, AddressMessage};

    use super::*;
    use crate::netlink::wire::Header;

    fn addr_msg(del: bool) -> Vec<u8> {
        let mut a = AddressMessage::default();
        a.header.family = netlink_packet_route::AddressFamily::Inet;
        a.header.prefix_len = 24;
        a.header.index = 7;
        a.attributes.push(AddressAttribute::Local("198.51.100.1".parse().unwrap()));
        let m = if del { RouteNetlinkMessage::DelAddress(a) } else { RouteNetlinkMessage::NewAddress(a) };
        let mut out = Vec::new();
        wire::emit_route(&mut out, Header::default(), &m);
        out
    }

    #[test]
    fn decodes_new_and_del_with_the_datagram_nsid() {
        let mut buf = addr_msg(false);
        buf.extend(addr_msg(true));
        let mut out = Vec::new();
        let st = decode(&buf, Some(3), &mut out);
        assert_eq!(st, DecodeStats::default());
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].nsid, out[0].change, out[1].change), (Some(3), Change::New, Change::Del));
        match &out[0].object {
            Object::Address(a) => assert_eq!((a.index, a.addr.to_string().as_str()), (7, "198.51.100.1/24")),
            o => panic!("{o:?}"),
        }
    }

    #[test]
    fn garbage_is_skipped_not_fatal() {
        let mut out = Vec::new();
        for junk in [&[][..], &[1, 2, 3], &[0xff; 64], &addr_msg(false)[..20]] {
            decode(junk, None, &mut out);
        }
        assert!(out.is_empty());
        let mut bad_len = addr_msg(false);
        bad_len[0..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(decode(&bad_len, None, &mut out).skipped, 1);
    }
}
