//! Variants (a)-(d): netsandbox, low level and through the `Sandbox` trait.

use std::os::fd::AsFd;
use std::path::Path;

use netsandbox::netlink::addr::{self, AddrOptions};
use netsandbox::netlink::link::{self, LinkChange, LinkRef, VethPeer};
use netsandbox::netlink::neigh::{self, NeighSpec};
use netsandbox::netlink::route::{self, RouteSpec};
use netsandbox::netlink::{BatchMode, Request, Socket};
use netsandbox::netns::{self, NetNs};
use netsandbox::sandbox::{CreateOptions, IfaceOptions, NeighOptions, NetnsSandbox, Sandbox, StaticRoute, WarmPool};

use crate::ctx::Built;
use crate::sw::{Laps, Sw, gw};
use crate::{GW_MAC, INNER_INDEX, R};

// (a) One netlink request per step; the container end is born inside with its index.
pub(crate) fn low_step(h: &Socket, dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    let pin = sw.pin(dir);
    let (ns, inner) = netns::create_pinned_with(&pin, Socket::open)?;
    laps.mark("create+pin netns, open socket");
    h.execute(veth_direct(&ns, sw)?)?;
    laps.mark("create veth (born inside)");
    inner.add_address(INNER_INDEX, &sw.v4(), AddrOptions::default())?;
    inner.add_address(INNER_INDEX, &sw.v6(), AddrOptions { nodad: true, ..Default::default() })?;
    laps.mark("2 addresses");
    inner.set_link(LinkRef::Index(INNER_INDEX), &LinkChange::new().up(true))?;
    inner.set_link(LinkRef::Index(1), &LinkChange::new().up(true))?;
    laps.mark("eth0 + lo up");
    inner.add_route(&default_route())?;
    inner.add_route(&static_route(sw))?;
    laps.mark("2 routes");
    inner.add_neighbor(&NeighSpec::arp(INNER_INDEX, gw(), GW_MAC), false)?;
    laps.mark("neighbor");
    h.set_link(LinkRef::Index(sw.host_index()), &LinkChange::new().up(true))?;
    laps.mark("host end up");
    Ok(Built::Low { _ns: ns, _inner: inner, pin, host_index: sw.host_index() })
}

// (b) The same requests, host side as one batch and sandbox side as one batch.
pub(crate) fn low_batch(h: &Socket, dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    let pin = sw.pin(dir);
    let (ns, inner) = netns::create_pinned_with(&pin, Socket::open)?;
    laps.mark("create+pin netns, open socket");
    let host_reqs = [veth_direct(&ns, sw)?, LinkChange::new().up(true).request(LinkRef::Index(sw.host_index()))?];
    h.batch(&host_reqs, BatchMode::Continue)?.into_result()?;
    laps.mark("host batch (veth + up)");
    inner.batch(&inner_requests(sw)?, BatchMode::Continue)?.into_result()?;
    laps.mark("sandbox batch (7 requests)");
    Ok(Built::Low { _ns: ns, _inner: inner, pin, host_index: sw.host_index() })
}

pub(crate) fn veth_direct(ns: &NetNs, sw: Sw) -> R<Request> {
    let peer = VethPeer {
        name: "eth0".into(),
        mac: Some(sw.mac()),
        netns: Some(ns.as_fd()),
        index: Some(INNER_INDEX),
        host_index: Some(sw.host_index()),
        ..Default::default()
    };
    Ok(link::create_veth(&sw.vh(), None, &peer)?)
}

pub(crate) fn default_route() -> RouteSpec {
    RouteSpec::new("0.0.0.0/0".parse().expect("literal")).via(gw()).dev(INNER_INDEX)
}

pub(crate) fn static_route(sw: Sw) -> RouteSpec {
    RouteSpec::new(sw.static_dst()).via(gw()).dev(INNER_INDEX)
}

pub(crate) fn inner_requests(sw: Sw) -> R<Vec<Request>> {
    Ok(vec![
        addr::add(INNER_INDEX, &sw.v4(), AddrOptions::default())?,
        addr::add(INNER_INDEX, &sw.v6(), AddrOptions { nodad: true, ..Default::default() })?,
        LinkChange::new().up(true).request(LinkRef::Index(INNER_INDEX))?,
        LinkChange::new().up(true).request(LinkRef::Index(1))?,
        route::add(&default_route(), false)?,
        route::add(&static_route(sw), false)?,
        neigh::add(&NeighSpec::arp(INNER_INDEX, gw(), GW_MAC), false)?,
    ])
}

pub(crate) fn iface_opts(sw: Sw) -> IfaceOptions {
    IfaceOptions::new().mac(sw.mac()).address(sw.v4()).address_ipv6(sw.v6())
}

/// Gateway, static route and neighbor through the trait (shared by (c) and (d)).
pub(crate) fn trait_routes(sb: &NetnsSandbox, sw: Sw, laps: &mut Laps) -> R<()> {
    sb.set_gateway(gw())?;
    laps.mark("set_gateway");
    sb.add_static_route(&StaticRoute::via(sw.static_dst(), gw()))?;
    laps.mark("add_static_route");
    sb.add_neighbor(gw(), GW_MAC, false, &NeighOptions::new())?;
    laps.mark("add_neighbor");
    Ok(())
}

// (c) Through the Sandbox trait, the container end born inside (add_veth).
pub(crate) fn trait_direct(dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    let sb = NetnsSandbox::create(&sw.pin(dir).display().to_string(), &CreateOptions::default())?;
    laps.mark("create");
    trait_sw_direct(sb, sw, laps)
}

/// The SW steps after the namespace exists, container end born inside.
pub(crate) fn trait_sw_direct(sb: NetnsSandbox, sw: Sw, laps: &mut Laps) -> R<Built> {
    sb.add_veth(&sw.vh(), "eth", &iface_opts(sw))?;
    laps.mark("add_veth");
    trait_routes(&sb, sw, laps)?;
    Ok(Built::Sbx(sb))
}

// (c') As (c), with the namespace taken from a warm pool.
pub(crate) fn trait_pool(pool: &WarmPool, dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    let sb = pool.take(&sw.pin(dir).display().to_string())?;
    laps.mark("pool take");
    trait_sw_direct(sb, sw, laps)
}

// (d) Through the Sandbox trait, libnetwork's model: veth made in the host, moved in.
pub(crate) fn trait_move(h: &Socket, dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    let sb = NetnsSandbox::create(&sw.pin(dir).display().to_string(), &CreateOptions::default())?;
    laps.mark("create");
    let peer = VethPeer { name: sw.vc(), ..Default::default() };
    if let Err(e) = h.execute(link::create_veth(&sw.vh(), None, &peer)?) {
        let _ = sb.destroy();
        return Err(e.into());
    }
    laps.mark("create veth in host");
    let configured = sb.add_interface(&sw.vc(), "eth", &iface_opts(sw)).map_err(Into::into).and_then(|_| {
        laps.mark("add_interface (move)");
        h.set_link(LinkRef::Name(&sw.vh()), &LinkChange::new().up(true))?;
        laps.mark("host end up");
        trait_routes(&sb, sw, laps)
    });
    if let Err(e) = configured {
        let _ = sb.destroy();
        let _ = h.delete_link(LinkRef::Name(&sw.vh()));
        return Err(e);
    }
    Ok(Built::SbxMoved { sb, vh: sw.vh() })
}
