//! Address requests: add, delete, list (IPv4 and IPv6).

pub(crate) mod view;

pub use view::Address;

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::socket::{Request, Socket};
use super::wire::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use crate::error::Result;
use crate::validate;

/// Options for [`add`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrOptions {
    /// Skip DAD (IPv6). netsandbox sets this for every IPv6 address it adds.
    pub nodad: bool,
    /// Replace an existing identical address instead of failing with EEXIST.
    pub replace: bool,
    /// Scope (`RT_SCOPE_*`); universe when `None`, host for loopback-only addresses.
    pub scope: Option<u8>,
}

fn family(ip: &IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn message(index: u32, net: &IpNet) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.family = family(&net.addr());
    m.header.prefix_len = net.prefix_len();
    m.header.index = index;
    m.attributes.push(AddressAttribute::Local(net.addr()));
    m.attributes.push(AddressAttribute::Address(net.addr()));
    m
}

/// `RTM_NEWADDR`.
pub fn add(index: u32, net: &IpNet, opts: AddrOptions) -> Result<Request> {
    validate::host_cidr(net)?;
    let mut m = message(index, net);
    if net.addr().is_ipv6() {
        // IPv6 has no IFA_LOCAL for plain addresses: keep IFA_ADDRESS only.
        m.attributes.retain(|a| matches!(a, AddressAttribute::Address(_)));
    }
    if let Some(s) = opts.scope {
        m.header.scope = AddressScope::from(s);
    }
    if opts.nodad {
        m.header.flags = AddressHeaderFlags::Nodad;
        m.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
    }
    let flags = NLM_F_CREATE | if opts.replace { NLM_F_REPLACE } else { NLM_F_EXCL };
    Ok(Request::new("add address", format!("{net} on ifindex {index}"), flags, RouteNetlinkMessage::NewAddress(m)))
}

/// `RTM_DELADDR`.
pub fn delete(index: u32, net: &IpNet) -> Request {
    let mut m = message(index, net);
    if net.addr().is_ipv6() {
        m.attributes.retain(|a| matches!(a, AddressAttribute::Address(_)));
    }
    Request::new("delete address", format!("{net} on ifindex {index}"), 0, RouteNetlinkMessage::DelAddress(m))
}

/// `RTM_GETADDR` dump, optionally of one family and one interface (filtered in the kernel).
pub fn list(v6: Option<bool>, index: Option<u32>) -> Request {
    let mut m = AddressMessage::default();
    m.header.family = match v6 {
        Some(false) => AddressFamily::Inet,
        Some(true) => AddressFamily::Inet6,
        None => AddressFamily::Unspec,
    };
    m.header.index = index.unwrap_or(0);
    Request::new(
        "list addresses",
        index.map_or("all".to_owned(), |i| format!("ifindex {i}")),
        0,
        RouteNetlinkMessage::GetAddress(m),
    )
}

impl Socket {
    /// Adds an address to a link.
    pub fn add_address(&self, index: u32, net: &IpNet, opts: AddrOptions) -> Result<()> {
        self.execute(add(index, net, opts)?)
    }

    /// Removes an address from a link.
    pub fn delete_address(&self, index: u32, net: &IpNet) -> Result<()> {
        self.execute(delete(index, net))
    }

    /// Lists addresses, optionally of one family (`Some(true)` = IPv6) and one link.
    pub fn addresses(&self, v6: Option<bool>, index: Option<u32>) -> Result<Vec<Address>> {
        let mut out: Vec<Address> = self.dump_views(list(v6, index))?;
        // Older kernels ignore the index filter; filter again here.
        out.retain(|a| index.is_none_or(|i| i == a.index));
        Ok(out)
    }
}
