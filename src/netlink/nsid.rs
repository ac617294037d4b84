//! Namespace ids: how one network namespace names another (`RTM_GETNSID`), e.g. in a veth's
//! `IFLA_LINK_NETNSID`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};

use super::socket::{Request, Socket};
use crate::error::{Error, Result};

/// `RTM_GETNSID` for the namespace behind the fd `ns` (e.g. a [`NetNs`](crate::netns::NetNs)),
/// as seen from the socket's namespace. The request borrows the fd only while it is built: the
/// caller keeps `ns` open until the request is sent.
pub fn get(ns: BorrowedFd<'_>) -> Request {
    let mut m = NsidMessage::default();
    m.attributes.push(NsidAttribute::Fd(ns.as_raw_fd() as u32));
    Request::new("get namespace id", format!("namespace fd {}", ns.as_raw_fd()), 0, RouteNetlinkMessage::GetNsId(m))
}

impl Socket {
    /// The id under which this socket's namespace knows `ns`, or `None` when it has given it
    /// none (ids are assigned when a link first pairs the two, e.g. a veth across them).
    pub fn nsid_of(&self, ns: impl AsFd) -> Result<Option<i32>> {
        let replies = self.query(get(ns.as_fd()))?;
        let id = replies.iter().find_map(|r| match r {
            RouteNetlinkMessage::NewNsId(m) => m.attributes.iter().find_map(|a| match a {
                NsidAttribute::Id(id) => Some(*id),
                _ => None,
            }),
            _ => None,
        });
        match id {
            Some(id) if id >= 0 => Ok(Some(id)),
            Some(_) => Ok(None),
            None => Err(Error::Protocol {
                op: "get namespace id",
                detail: format!("no NETNSA_NSID in the answer for namespace fd {}", ns.as_fd().as_raw_fd()),
            }),
        }
    }
}

/// `RTM_NEWNSID` asking the kernel to give the namespace behind the fd `ns` an id of its choice
/// in the socket's namespace (`ip netns set NAME auto`). Fails with `EEXIST` when it has one.
/// The caller keeps `ns` open until the request is sent.
pub fn assign(ns: std::os::fd::BorrowedFd<'_>) -> Request {
    let mut m = NsidMessage::default();
    m.attributes.push(NsidAttribute::Fd(ns.as_raw_fd() as u32));
    m.attributes.push(NsidAttribute::Id(-1));
    Request::new("assign namespace id", format!("namespace fd {}", ns.as_raw_fd()), 0, RouteNetlinkMessage::NewNsId(m))
}

/// `RTM_NEWNSID` giving the namespace behind the fd `ns` the id `id` in the socket's namespace
/// (`ip netns set NAME ID`). Fails with `EEXIST` when `id` is taken or `ns` already has one.
/// The caller keeps `ns` open until the request is sent.
pub fn assign_id(ns: std::os::fd::BorrowedFd<'_>, id: i32) -> Request {
    let mut m = NsidMessage::default();
    m.attributes.push(NsidAttribute::Fd(ns.as_raw_fd() as u32));
    m.attributes.push(NsidAttribute::Id(id));
    Request::new(
        "assign namespace id",
        format!("id {id} to namespace fd {}", ns.as_raw_fd()),
        0,
        RouteNetlinkMessage::NewNsId(m),
    )
}
