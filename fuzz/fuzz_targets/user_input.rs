//! User input: names, MACs, addresses, keys and option builders' `check()`, from structured
//! (`arbitrary`) values.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use netsandbox::fuzzing::{self, IfaceOptions, NeighFamily, NeighOptions, StaticRoute};

#[derive(Debug, Arbitrary)]
enum Ip {
    V4([u8; 4]),
    V6([u8; 16]),
}

impl Ip {
    fn addr(&self) -> IpAddr {
        match self {
            Ip::V4(b) => IpAddr::V4(Ipv4Addr::from(*b)),
            Ip::V6(b) => IpAddr::V6(Ipv6Addr::from(*b)),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Net {
    ip: Ip,
    prefix: u8,
}

impl Net {
    /// Any prefix is folded into the family's range: IpNet refuses others at construction.
    fn net(&self) -> Option<IpNet> {
        let max = if matches!(self.ip, Ip::V4(_)) { 33 } else { 129 };
        IpNet::new(self.ip.addr(), self.prefix % max).ok()
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    strings: Vec<String>,
    bridge: bool,
    master: Option<String>,
    mac: Option<[u8; 6]>,
    address: Option<Net>,
    address_ipv6: Option<Net>,
    link_local: Vec<Net>,
    routes: Vec<Net>,
    mtu: Option<u32>,
    sysctls: Vec<(String, String)>,
    neigh_link: Option<String>,
    neigh_bridge: bool,
    route_dst: Net,
    route_gateway: Option<Ip>,
    route_interface: Option<String>,
    route_via: bool,
}

fuzz_target!(|input: Input| {
    for s in &input.strings {
        fuzzing::user_string(s);
    }

    let mut o = IfaceOptions::new().bridge(input.bridge);
    if let Some(m) = &input.master {
        o = o.master(m.clone());
    }
    if let Some(mac) = input.mac {
        o = o.mac(mac);
        let _ = fuzzing::mac_bytes(&mac);
    }
    if let Some(n) = input.address.as_ref().and_then(Net::net) {
        o = o.address(n);
    }
    if let Some(n) = input.address_ipv6.as_ref().and_then(Net::net) {
        o = o.address_ipv6(n);
    }
    o = o.link_local(input.link_local.iter().filter_map(Net::net).collect());
    o = o.routes(input.routes.iter().filter_map(Net::net).collect());
    if let Some(mtu) = input.mtu {
        o = o.mtu(mtu);
    }
    for (k, v) in &input.sysctls {
        o = o.sysctl(k.clone(), v.clone());
    }
    let _ = o.check();

    let mut n = NeighOptions::new().family(if input.neigh_bridge { NeighFamily::Bridge } else { NeighFamily::Ip });
    if let Some(l) = &input.neigh_link {
        n = n.link_name(l.clone());
    }
    let _ = n.check();

    if let Some(dst) = input.route_dst.net() {
        let r = match (&input.route_gateway, &input.route_interface) {
            (Some(g), _) if input.route_via => StaticRoute::via(dst, g.addr()),
            (_, Some(i)) => StaticRoute::dev(dst, i.clone()),
            (g, i) => StaticRoute { dst, gateway: g.as_ref().map(Ip::addr), interface: i.clone() },
        };
        let _ = r.check();
    }
});
