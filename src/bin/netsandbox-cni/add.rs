//! ADD: the container end born inside `CNI_NETNS` as `CNI_IFNAME`, the host end a port of the
//! bridge, addresses from IPAM, the gateway on the bridge, routes; the result in the
//! configuration's version, merged into `prevResult`.

use std::net::IpAddr;

use ipnet::IpNet;
use netsandbox::Error;
use netsandbox::cni::{CniError, CniResult, ErrorCode, Interface, IpConfig, NetConf, Request, Route};
use netsandbox::netlink::link::LinkRef;
use netsandbox::netlink::{Link, LinkKind, Socket};
use netsandbox::sandbox::random::{random_local_mac, random_veth_name};
use netsandbox::sandbox::{BridgeOptions, HostBridge, IfaceOptions, NetnsSandbox, Sandbox, StaticRoute};
use netsandbox::validate;
use serde_json::Value;

use crate::host;
use crate::ipam::Ipam;

/// Attempts at a free random host-end name.
const NAME_ATTEMPTS: usize = 8;

pub fn add(req: &Request, conf: &NetConf, stdin: &[u8]) -> Result<Value, CniError> {
    crate::mark("parsed");
    crate::unsupported_fields(conf)?;
    let id = req.container_id()?;
    let ifname = req.ifname()?;
    let netns =
        req.netns.as_deref().ok_or_else(|| CniError::new(ErrorCode::InvalidEnvironment, "CNI_NETNS is not set"))?;
    let mac = mac_for(req, conf)?;
    let ipam = Ipam::from_conf(conf, req)?
        .ok_or_else(|| CniError::new(ErrorCode::InvalidNetworkConfig, "ipam is required for ADD"))?;

    let sb = NetnsSandbox::attach(netns).map_err(|e| match e {
        Error::NotFound { .. } => {
            CniError::new(ErrorCode::UnknownContainer, format!("network namespace {} does not exist", netns.display()))
        }
        e => CniError::from(e),
    })?;
    // Fails before IPAM when the interface exists already (nothing to undo) — unless it is one
    // a DEL retired and its reaper has not deleted yet.
    if sb.statistics(ifname).is_ok() {
        host::clear_retired(netns, ifname)?;
        if sb.statistics(ifname).is_ok() {
            return Err(CniError::new(
                ErrorCode::Plugin(107),
                format!("interface {ifname} already exists in {}", netns.display()),
            ));
        }
    }

    crate::mark("attached");
    let outcome = if conf.ipam.as_ref().is_some_and(|i| i.plugin_type == LINK_FIRST_IPAM) {
        link_then_ipam(&sb, req, conf, &ipam, stdin, mac)?
    } else {
        let allocated = ipam.add(req, conf, stdin)?;
        crate::mark("ipam");
        plumb(&sb, req, conf, &allocated, mac)
    };
    match outcome {
        Ok(result) => {
            let out = match &conf.prev_result {
                Some(prev) => CniResult::merged(prev, &result),
                None => result,
            };
            Ok(out.to_json(conf.cni_version))
        }
        Err(e) => {
            // Undo in reverse: masquerading, the pair (if it was made), then the addresses,
            // then fail.
            if conf.ip_masq {
                let _ = crate::masq::del(&conf.name, id, ifname);
            }
            let _ = sb.remove_interface(ifname);
            if let Err(d) = ipam.del(id, ifname, stdin) {
                return Err(CniError {
                    details: Some(format!(
                        "{}; releasing the addresses also failed: {d}",
                        e.details.clone().unwrap_or_default()
                    )),
                    ..e
                });
            }
            Err(e)
        }
    }
}

/// runtimeConfig.mac, then args.cni.mac, then `CNI_ARGS` `MAC=`; a random locally administered
/// one otherwise (so the result can name it without asking the kernel).
fn mac_for(req: &Request, conf: &NetConf) -> Result<[u8; 6], CniError> {
    if let Some(m) = conf.runtime_mac.or(conf.args_mac) {
        return Ok(m);
    }
    match req.arg("MAC") {
        Some(s) => validate::parse_mac(s)
            .and_then(|m| validate::mac_bytes(&m))
            .map_err(|e| CniError::new(ErrorCode::InvalidNetworkConfig, format!("CNI_ARGS MAC: {e}"))),
        None => Ok(random_local_mac()),
    }
}

/// The gateway of each family the IPAM result gives one for, with the subnet's prefix.
fn gateways(allocated: &CniResult) -> Vec<IpNet> {
    let mut out: Vec<IpNet> = Vec::new();
    for ip in &allocated.ips {
        if let Some(gw) = ip.gateway
            && !out.iter().any(|g| g.addr().is_ipv4() == gw.is_ipv4())
            && let Ok(n) = IpNet::new(gw, ip.address.prefix_len())
        {
            out.push(n);
        }
    }
    out
}

/// The IPAM plugin whose client runs on the interface itself (Debian's `dhcp`: its daemon
/// enters the namespace and asks for a lease on `CNI_IFNAME`): the interface is made first.
const LINK_FIRST_IPAM: &str = "dhcp";

/// The bridge and the pair, the host end a port of the bridge and the container end up.
struct Attached {
    host: Socket,
    bridge_name: String,
    bridge_mac: Option<[u8; 6]>,
    host_name: String,
}

/// ADD for [`LINK_FIRST_IPAM`]: the pair without addresses, then IPAM (whose client brings
/// the interface's lease), then the addresses, gateway and routes it gave. An IPAM failure
/// removes the pair before it is returned (the outer `Err`); a later failure is the inner
/// one, which the caller undoes like any other.
fn link_then_ipam(
    sb: &NetnsSandbox,
    req: &Request,
    conf: &NetConf,
    ipam: &Ipam,
    stdin: &[u8],
    mac: [u8; 6],
) -> Result<Result<CniResult, CniError>, CniError> {
    let ifname = req.ifname()?;
    let attached = link(sb, req, conf, &CniResult::default(), mac)?;
    let allocated = match ipam.add(req, conf, stdin) {
        Ok(a) => a,
        Err(e) => {
            let _ = sb.remove_interface(ifname);
            return Err(e);
        }
    };
    crate::mark("ipam");
    Ok((|| {
        let gws = gateways(&allocated);
        if conf.is_gateway && !gws.is_empty() && ready_bridge(&attached.host, conf, &gws)?.is_none() {
            ensure_bridge(&attached.host, conf, &gws)?;
        }
        for ip in &allocated.ips {
            sb.add_alias_ip(ifname, ip.address)?;
        }
        finish(sb, req, conf, &allocated, mac, attached)
    })())
}

fn plumb(
    sb: &NetnsSandbox,
    req: &Request,
    conf: &NetConf,
    allocated: &CniResult,
    mac: [u8; 6],
) -> Result<CniResult, CniError> {
    let attached = link(sb, req, conf, allocated, mac)?;
    finish(sb, req, conf, allocated, mac, attached)
}

/// The bridge (with the gateways of `allocated` when it is the gateway) and the pair, the
/// container end born inside with its final name, MAC, MTU and `allocated`'s addresses.
fn link(
    sb: &NetnsSandbox,
    req: &Request,
    conf: &NetConf,
    allocated: &CniResult,
    mac: [u8; 6],
) -> Result<Attached, CniError> {
    let id = req.container_id()?;
    let ifname = req.ifname()?;
    let gws = gateways(allocated);

    // One socket in the host namespace for the bridge and the result's MACs.
    let host = Socket::open()?;
    let (bridge_name, bridge_mac) = match ready_bridge(&host, conf, &gws)? {
        Some(l) => {
            if conf.is_gateway {
                enable_forwarding(&gws);
            }
            (l.name, l.mac)
        }
        None => {
            let b = ensure_bridge(&host, conf, &gws)?;
            let mac = host.link(LinkRef::Index(b.index())).ok().and_then(|l| l.mac);
            (b.name().to_owned(), mac)
        }
    };
    crate::mark("bridge");

    // The pair: the container end born inside with its final name, MAC and MTU.
    let v4: Vec<&IpConfig> = allocated.ips.iter().filter(|i| i.address.addr().is_ipv4()).collect();
    let v6: Vec<&IpConfig> = allocated.ips.iter().filter(|i| i.address.addr().is_ipv6()).collect();
    let mut opts = IfaceOptions::new()
        .exact_name(true)
        .mac(mac)
        .host_master(&bridge_name)
        .host_hairpin(conf.hairpin_mode)
        .host_link_local(false);
    if let Some(a) = host::alias(&conf.name, id, ifname) {
        opts = opts.host_alias(a);
    }
    if let Some(m) = conf.mtu {
        opts = opts.mtu(m);
    }
    if let Some(a) = v4.first() {
        opts = opts.address(a.address);
    }
    if let Some(a) = v6.first() {
        opts = opts.address_ipv6(a.address);
    }
    let mut host_name = random_veth_name();
    let mut attempt = 0;
    loop {
        match sb.add_veth(&host_name, ifname, &opts) {
            Ok(_) => break,
            Err(Error::AlreadyExists { kind: "link", .. }) if attempt + 1 < NAME_ATTEMPTS => {
                attempt += 1;
                host_name = random_veth_name();
            }
            Err(Error::AlreadyExists { kind: "interface", .. }) => {
                return Err(CniError::new(
                    ErrorCode::Plugin(107),
                    format!("interface {ifname} already exists in {}", sb.key()),
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    crate::mark("veth");
    for extra in v4.iter().skip(1).chain(v6.iter().skip(1)) {
        sb.add_alias_ip(ifname, extra.address)?;
    }
    Ok(Attached { host, bridge_name, bridge_mac, host_name })
}

/// Routes (IPAM's, and the default route when we are the default gateway), the result, and
/// masquerading.
fn finish(
    sb: &NetnsSandbox,
    req: &Request,
    conf: &NetConf,
    allocated: &CniResult,
    mac: [u8; 6],
    attached: Attached,
) -> Result<CniResult, CniError> {
    let id = req.container_id()?;
    let ifname = req.ifname()?;
    let gws = gateways(allocated);
    let Attached { host, bridge_name, bridge_mac, host_name } = attached;

    let mut routes = allocated.routes.clone();
    if conf.is_default_gateway {
        for g in &gws {
            let any = if g.addr().is_ipv4() { IpNet::V4(Default::default()) } else { IpNet::V6(Default::default()) };
            match routes.iter().find(|r| r.dst == any) {
                Some(r) if r.gw.is_some_and(|gw| gw != g.addr()) => {
                    return Err(CniError::new(
                        ErrorCode::InvalidNetworkConfig,
                        format!(
                            "isDefaultGateway ineffective: IPAM sets the default route via {}",
                            r.gw.map(|g| g.to_string()).unwrap_or_default()
                        ),
                    ));
                }
                Some(_) => {}
                None => routes.push(Route::new(any, Some(g.addr()))),
            }
        }
    }
    for r in &routes {
        let gw = r.gw.or_else(|| family_gateway(allocated, r.dst.addr()));
        let route = match gw {
            Some(gw) => StaticRoute::via(r.dst, gw),
            None => StaticRoute::dev(r.dst, ifname),
        };
        sb.add_static_route(&route)?;
    }

    crate::mark("routes");
    let netns = sb.key().to_owned();
    let result = CniResult {
        cni_version: conf.cni_version,
        interfaces: vec![
            Interface { name: bridge_name, mac: bridge_mac.map(|m| validate::format_mac(&m)), ..Default::default() },
            Interface { name: host_name.clone(), mac: mac_of(&host, &host_name), ..Default::default() },
            Interface {
                name: ifname.to_owned(),
                mac: Some(validate::format_mac(&mac)),
                mtu: conf.mtu,
                sandbox: Some(netns),
                ..Default::default()
            },
        ],
        ips: allocated.ips.iter().map(|ip| IpConfig { interface: Some(2), ..ip.clone() }).collect(),
        routes,
        dns: if conf.dns.is_empty() { allocated.dns.clone() } else { conf.dns.clone() },
    };
    crate::mark("result");
    if conf.ip_masq {
        crate::masq::add(&conf.name, id, ifname, &result)?;
    }
    Ok(result)
}

fn family_gateway(allocated: &CniResult, like: IpAddr) -> Option<IpAddr> {
    allocated.ips.iter().filter_map(|i| i.gateway).find(|g| g.is_ipv4() == like.is_ipv4())
}

/// The bridge when it already is as this ADD needs it — a bridge, up, with the configured MTU,
/// no promiscuity to apply, and (as gateway) every gateway address — after the `forceAddress`
/// check: then ADD need not touch it (one lookup and one filtered address dump, where
/// [`ensure_bridge`] takes three of each). `None`: it must be made or changed.
fn ready_bridge(host: &Socket, conf: &NetConf, gws: &[IpNet]) -> Result<Option<Link>, CniError> {
    let l = match host.link(LinkRef::Name(&conf.bridge)) {
        Ok(l) if l.kind == LinkKind::Bridge => l,
        _ => return Ok(None),
    };
    if !l.up || conf.mtu.is_some_and(|m| l.mtu != Some(m)) || conf.promisc_mode {
        return Ok(None);
    }
    if !conf.is_gateway {
        return Ok(Some(l));
    }
    let have: Vec<IpNet> = host.addresses(None, Some(l.index))?.into_iter().map(|a| a.addr).collect();
    check_bridge_addresses(host, &l, &have, gws, conf.force_address)?;
    Ok(gws.iter().all(|g| have.contains(g)).then_some(l))
}

/// The bridge, made once however many ADDs race for it: first without addresses (so a
/// creation can never fail half-way and be rolled back under another ADD's port), then the
/// gateway addresses, which a concurrent ADD may add first (EEXIST: look again).
fn ensure_bridge(host: &Socket, conf: &NetConf, gws: &[IpNet]) -> Result<HostBridge, CniError> {
    let mut bopts = BridgeOptions::new();
    if let Some(m) = conf.mtu {
        bopts = bopts.mtu(m);
    }
    if conf.promisc_mode {
        bopts = bopts.promisc(true);
    }
    let bridge = HostBridge::ensure(&conf.bridge, &bopts)?;
    if !conf.is_gateway {
        return Ok(bridge);
    }
    if let Ok(l) = host.link(LinkRef::Index(bridge.index())) {
        let have: Vec<IpNet> = host.addresses(None, Some(l.index))?.into_iter().map(|a| a.addr).collect();
        check_bridge_addresses(host, &l, &have, gws, conf.force_address)?;
    }
    let mut with_addrs = bopts;
    for g in gws {
        with_addrs = with_addrs.address(*g);
    }
    enable_forwarding(gws);
    Ok(HostBridge::ensure(&conf.bridge, &with_addrs)
        .or_else(|e| if e.is_already_exists() { HostBridge::ensure(&conf.bridge, &with_addrs) } else { Err(e) })?)
}

/// The MAC of host link `name`, formatted, when it can be read.
fn mac_of(host: &Socket, name: &str) -> Option<String> {
    host.link(LinkRef::Name(name)).ok()?.mac.map(|m| validate::format_mac(&m))
}

/// The bridge plugin's `forceAddress`: an existing address of the bridge (`have`) in the same
/// subnet as a gateway but different from it is an error, or is replaced when forced.
fn check_bridge_addresses(
    sock: &Socket,
    bridge: &Link,
    have: &[IpNet],
    gws: &[IpNet],
    force: bool,
) -> Result<(), CniError> {
    for a in have {
        let Some(g) = gws.iter().find(|g| g.addr().is_ipv4() == a.addr().is_ipv4()) else { continue };
        if a == g || a.addr().is_ipv6() && a.addr().to_string().starts_with("fe80") {
            continue;
        }
        if g.trunc().contains(&a.addr()) || a.trunc().contains(&g.addr()) {
            if !force {
                return Err(CniError::new(
                    ErrorCode::Plugin(108),
                    format!("{} already has address {a}, not the gateway {g}", bridge.name),
                )
                .with_details("set forceAddress to replace it"));
            }
            sock.delete_address(bridge.index, a)?;
        }
    }
    Ok(())
}

/// The bridge plugin turns forwarding on in the host namespace when it is the gateway.
fn enable_forwarding(gws: &[IpNet]) {
    for g in gws {
        let key = if g.addr().is_ipv4() { "net.ipv4.ip_forward" } else { "net.ipv6.conf.all.forwarding" };
        if let Err(e) = netsandbox::sysctl::write(None, key, "1") {
            log::warn!("cannot enable {key}: {e}");
        }
    }
}
