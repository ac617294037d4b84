//! Route requests: add, delete, list, and "which route reaches this address" (get).

pub(crate) mod view;

pub use view::Route;

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::consts::{RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, RT_TABLE_MAIN, RT_TABLE_UNSPEC, RTPROT_BOOT};
use super::socket::{Request, Socket};
use super::wire::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use crate::error::{Error, Result};

/// A route to add or delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination (`0.0.0.0/0` or `::/0` for a default route).
    pub dst: IpNet,
    /// Next hop, if any.
    pub gateway: Option<IpAddr>,
    /// Output interface index, if any.
    pub oif: Option<u32>,
    /// Scope: link when there is no gateway, universe otherwise (unless set).
    pub scope: Option<u8>,
    /// Routing table (main by default).
    pub table: u32,
    /// Metric.
    pub priority: Option<u32>,
    /// Who installs it (`rtm_protocol`); `RTPROT_BOOT` (what iproute2 uses) when `None`.
    pub protocol: Option<u8>,
}

impl RouteSpec {
    /// A route to `dst` in the main table.
    pub fn new(dst: IpNet) -> Self {
        RouteSpec {
            dst: dst.trunc(),
            gateway: None,
            oif: None,
            scope: None,
            table: RT_TABLE_MAIN,
            priority: None,
            protocol: None,
        }
    }
    /// Via a gateway.
    pub fn via(mut self, gw: IpAddr) -> Self {
        self.gateway = Some(gw);
        self
    }
    /// Out of an interface.
    pub fn dev(mut self, index: u32) -> Self {
        self.oif = Some(index);
        self
    }
    /// With a metric.
    pub fn priority(mut self, p: u32) -> Self {
        self.priority = Some(p);
        self
    }

    fn check(&self) -> Result<()> {
        if let Some(gw) = self.gateway
            && gw.is_ipv4() != self.dst.addr().is_ipv4()
        {
            return Err(Error::InvalidArgument {
                op: "route",
                reason: format!("gateway {gw} is not in the address family of {}", self.dst),
            });
        }
        if self.gateway.is_none() && self.oif.is_none() {
            return Err(Error::InvalidArgument {
                op: "route",
                reason: format!("route to {} needs a gateway or a device", self.dst),
            });
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let mut s = self.dst.to_string();
        if let Some(g) = self.gateway {
            s += &format!(" via {g}");
        }
        if let Some(o) = self.oif {
            s += &format!(" dev ifindex {o}");
        }
        s
    }

    fn message(&self) -> RouteMessage {
        let mut m = RouteMessage::default();
        set_header(&mut m.header, self.dst.addr().is_ipv6());
        if let Some(p) = self.protocol {
            m.header.protocol = RouteProtocol::from(p);
        }
        m.header.destination_prefix_length = self.dst.prefix_len();
        m.header.scope = RouteScope::from(self.scope.unwrap_or(if self.gateway.is_some() {
            RT_SCOPE_UNIVERSE
        } else {
            RT_SCOPE_LINK
        }));
        set_table(&mut m, self.table);
        if self.dst.prefix_len() > 0 {
            m.attributes.push(RouteAttribute::Destination(RouteAddress::from(self.dst.addr())));
        }
        if let Some(g) = self.gateway {
            m.attributes.push(RouteAttribute::Gateway(RouteAddress::from(g)));
        }
        if let Some(o) = self.oif {
            m.attributes.push(RouteAttribute::Oif(o));
        }
        if let Some(p) = self.priority {
            m.attributes.push(RouteAttribute::Priority(p));
        }
        m
    }
}

fn set_header(h: &mut RouteHeader, v6: bool) {
    h.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    h.protocol = RouteProtocol::from(RTPROT_BOOT);
    h.kind = RouteType::Unicast;
}

fn set_table(m: &mut RouteMessage, table: u32) {
    if table < 256 {
        m.header.table = table as u8;
    } else {
        m.header.table = 252; // RT_TABLE_COMPAT: the real id is in RTA_TABLE
        m.attributes.push(RouteAttribute::Table(table));
    }
}

/// `RTM_NEWROUTE`.
pub fn add(spec: &RouteSpec, replace: bool) -> Result<Request> {
    spec.check()?;
    let flags = NLM_F_CREATE | if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
    Ok(Request::new("add route", spec.describe(), flags, RouteNetlinkMessage::NewRoute(spec.message())))
}

/// `RTM_DELROUTE`.
pub fn delete(spec: &RouteSpec) -> Request {
    let mut m = spec.message();
    // Let the kernel match any protocol and scope.
    m.header.protocol = RouteProtocol::Unspec;
    m.header.scope = RouteScope::NoWhere;
    Request::new("delete route", spec.describe(), 0, RouteNetlinkMessage::DelRoute(m))
}

/// `RTM_GETROUTE` dump of one family.
pub fn list(v6: bool) -> Request {
    let mut m = RouteMessage::default();
    m.header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    Request::new("list routes", if v6 { "inet6" } else { "inet" }, 0, RouteNetlinkMessage::GetRoute(m))
}

/// A dump of one family's routes in one table only: the kernel filters (strict checking is on
/// for every [`Socket`]), so the local table's many entries are not sent just to be dropped.
pub fn list_table(v6: bool, table: u32) -> Request {
    let mut m = RouteMessage::default();
    m.header.address_family = if v6 { AddressFamily::Inet6 } else { AddressFamily::Inet };
    m.header.table = u8::try_from(table).unwrap_or(RT_TABLE_UNSPEC as u8);
    m.attributes.push(RouteAttribute::Table(table));
    let family = if v6 { "inet6" } else { "inet" };
    Request::new("list routes", format!("{family} table {table}"), 0, RouteNetlinkMessage::GetRoute(m))
}

/// Dump of one table's IPv4 and IPv6 routes in one request (`AF_UNSPEC`: the kernel runs every
/// family's dump in turn and, for a table a family does not have, answers nothing instead of
/// `ENOENT`).
pub fn list_table_all_families(table: u32) -> Request {
    let mut m = RouteMessage::default();
    m.header.address_family = AddressFamily::Unspec;
    m.header.table = u8::try_from(table).unwrap_or(RT_TABLE_UNSPEC as u8);
    m.attributes.push(RouteAttribute::Table(table));
    Request::new("list routes", format!("inet and inet6 table {table}"), 0, RouteNetlinkMessage::GetRoute(m))
}

/// `RTM_GETROUTE` for one destination: which route and device would carry traffic to `dst`.
pub fn get(dst: IpAddr) -> Request {
    let mut m = RouteMessage::default();
    m.header.address_family = if dst.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
    m.header.destination_prefix_length = if dst.is_ipv6() { 128 } else { 32 };
    m.attributes.push(RouteAttribute::Destination(RouteAddress::from(dst)));
    Request::new("get route", dst.to_string(), 0, RouteNetlinkMessage::GetRoute(m))
}

impl Socket {
    /// Adds a route.
    pub fn add_route(&self, spec: &RouteSpec) -> Result<()> {
        self.execute(add(spec, false)?)
    }

    /// Deletes a route.
    pub fn delete_route(&self, spec: &RouteSpec) -> Result<()> {
        self.execute(delete(spec))
    }

    /// Lists the routes of one family in every table.
    pub fn routes(&self, v6: bool) -> Result<Vec<Route>> {
        self.dump_views(list(v6))
    }

    /// Lists the routes of one family in one table (filtered by the kernel).
    pub fn routes_in(&self, v6: bool, table: u32) -> Result<Vec<Route>> {
        self.dump_views(list_table(v6, table))
    }

    /// The IPv4 and IPv6 routes of `table`, with one dump (half the round trips of two
    /// [`routes_in`](Self::routes_in)). Routes of other families (multicast routing, MPLS) are
    /// left out.
    pub fn routes_in_all_families(&self, table: u32) -> Result<Vec<Route>> {
        self.dump(list_table_all_families(table))?
            .iter()
            .filter(|m| {
                matches!(m, RouteNetlinkMessage::NewRoute(r)
                    if matches!(r.header.address_family, AddressFamily::Inet | AddressFamily::Inet6))
            })
            .filter_map(<Route as crate::netlink::view::FromReply>::from_reply)
            .map(|r| r.map_err(Error::from))
            .collect()
    }

    /// The route the kernel would use to reach `dst`. Unreachable is [`Error::NotFound`].
    pub fn route_to(&self, dst: IpAddr) -> Result<Route> {
        let unreachable = || Error::NotFound { kind: "route to", name: dst.to_string() };
        self.query_view(get(dst))
            .map_err(|e| match e.errno() {
                Some(nix::errno::Errno::ENETUNREACH | nix::errno::Errno::EHOSTUNREACH) => unreachable(),
                _ => e,
            })?
            .ok_or_else(unreachable)
    }
}
