//! CNI results against a sandbox, for engines that start from a namespace CNI configured (VM
//! runtimes: Virtlet's `ConfigureLink`, `ValidateAndFixCNIResult`, `ExtractLinkInfo`,
//! `StripLink`). Everything goes through the [`Sandbox`] trait, so it works the same on a
//! [`NetnsSandbox`](crate::sandbox::NetnsSandbox) and a [`FakeSandbox`](crate::sandbox::FakeSandbox).

use std::net::IpAddr;

use ipnet::IpNet;

use super::result::{CniResult, Interface, IpConfig, Route};
use crate::error::{Error, Result};
use crate::sandbox::{InterfaceInfo, Sandbox, StaticRoute};
use crate::validate;

fn any(v4: bool) -> IpNet {
    if v4 { IpNet::V4(Default::default()) } else { IpNet::V6(Default::default()) }
}

fn is_link_local(a: &IpNet) -> bool {
    match a.addr() {
        IpAddr::V4(v) => v.is_link_local(),
        IpAddr::V6(v) => v.is_unicast_link_local(),
    }
}

/// Whether `gw` is on-link through one of `addrs` (inside its subnet).
fn reaches(addrs: &[IpNet], gw: IpAddr) -> bool {
    addrs
        .iter()
        .any(|a| a.addr().is_ipv4() == gw.is_ipv4() && a.trunc().contains(&gw) && a.prefix_len() < a.max_prefix_len())
}

/// Applies what `result` says about interface `index` to the sandbox: its addresses (those
/// already there are kept), then its routes — a route without `gw` goes via the gateway of its
/// family, a default route becomes the sandbox's gateway, and a gateway outside every subnet
/// of the link (e.g. Calico's `169.254.1.1` with a /32 address) first gets an on-link host
/// route. The interface must exist in the sandbox ([`Error::NotFound`]).
pub fn configure_link(sb: &dyn Sandbox, result: &CniResult, index: usize) -> Result<()> {
    result.check().map_err(|e| Error::InvalidArgument { op: "configure link from CNI result", reason: e.msg })?;
    let iface = result.interfaces.get(index).ok_or_else(|| Error::InvalidArgument {
        op: "configure link from CNI result",
        reason: format!("no interface {index} in the result"),
    })?;
    let name = iface.name.as_str();
    validate::ifname(name)?;
    let have = sb
        .interfaces()?
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| Error::NotFound { kind: "interface", name: name.to_owned() })?;
    let mut addrs = have.addresses.clone();
    for ip in result.ips_of(index) {
        if !addrs.contains(&ip.address) {
            sb.add_alias_ip(name, ip.address)?;
            addrs.push(ip.address);
        }
    }
    let gateway_of = |v4: bool| result.ips_of(index).filter_map(|i| i.gateway).find(|g| g.is_ipv4() == v4);
    let mut on_link: Vec<IpAddr> = Vec::new();
    for r in &result.routes {
        let gw = r.gw.or_else(|| gateway_of(r.dst.addr().is_ipv4()));
        if let Some(g) = gw
            && !reaches(&addrs, g)
            && !on_link.contains(&g)
        {
            let host = IpNet::new(g, if g.is_ipv4() { 32 } else { 128 })
                .map_err(|e| Error::InvalidAddress { input: g.to_string(), reason: e.to_string() })?;
            sb.add_static_route(&StaticRoute::dev(host, name))?;
            on_link.push(g);
        }
        match gw {
            Some(g) if r.dst.prefix_len() == 0 => sb.set_gateway(g)?,
            Some(g) => {
                sb.add_static_route(&StaticRoute { interface: Some(name.to_owned()), ..StaticRoute::via(r.dst, g) })?
            }
            None => sb.add_static_route(&StaticRoute::dev(r.dst, name))?,
        }
    }
    Ok(())
}

/// Completes `result` from what is in the sandbox and returns a note per fix: interfaces
/// without `sandbox` that exist inside get the sandbox's key; IPs without `interface` get the
/// interface that holds them (added to `interfaces` when the result lacked it), or the only
/// interface inside. An IP that no interface holds and that cannot be placed is an
/// [`Error::InvalidArgument`]; a gateway outside every subnet of its interface is noted (see
/// [`configure_link`] for how it is reached).
pub fn validate_and_fix(result: &mut CniResult, sb: &dyn Sandbox) -> Result<Vec<String>> {
    let key = sb.key().to_owned();
    let lo = sb.loopback_name().to_owned();
    let inside: Vec<InterfaceInfo> = sb.interfaces()?.into_iter().filter(|i| i.name != lo).collect();
    let mut notes = Vec::new();
    for i in &mut result.interfaces {
        if i.sandbox.is_none() && inside.iter().any(|x| x.name == i.name) {
            i.sandbox = Some(key.clone());
            notes.push(format!("interface {}: sandbox set to {key}", i.name));
        }
    }
    for n in 0..result.ips.len() {
        if result.ips[n].interface.is_some() {
            continue;
        }
        let addr = result.ips[n].address;
        let holder = inside.iter().find(|i| i.addresses.iter().any(|a| a.addr() == addr.addr()));
        let holder = match holder {
            Some(h) => h,
            None if inside.len() == 1 => &inside[0],
            None => {
                return Err(Error::InvalidArgument {
                    op: "validate CNI result",
                    reason: format!("address {addr} is on no interface of {key} and cannot be placed"),
                });
            }
        };
        let index = match result.interface_index(&holder.name, Some(&key)) {
            Some(i) => i,
            None => {
                result.interfaces.push(interface_of(holder, &key));
                notes.push(format!("interface {} added from {key}", holder.name));
                result.interfaces.len() - 1
            }
        };
        result.ips[n].interface = Some(index);
        notes.push(format!("address {addr}: interface set to {} ({index})", holder.name));
    }
    for ip in &result.ips {
        let (Some(gw), Some(i)) = (ip.gateway, ip.interface) else { continue };
        let name = &result.interfaces[i].name;
        let addrs: Vec<IpNet> =
            inside.iter().find(|x| &x.name == name).map(|x| x.addresses.clone()).unwrap_or_default();
        if !reaches(&addrs, gw) && !reaches(&[ip.address], gw) {
            notes.push(format!("gateway {gw} is outside every subnet of {name}: reached by an on-link route"));
        }
    }
    result.check().map_err(|e| Error::InvalidArgument { op: "validate CNI result", reason: e.msg })?;
    Ok(notes)
}

fn interface_of(i: &InterfaceInfo, key: &str) -> Interface {
    Interface {
        name: i.name.clone(),
        mac: i.mac.map(|m| validate::format_mac(&m)),
        mtu: i.mtu,
        sandbox: Some(key.to_owned()),
        ..Default::default()
    }
}

/// A result describing the sandbox as it is (every interface but the loopback, their
/// addresses without link-local ones, the gateways and static routes), as Virtlet's
/// `ExtractLinkInfo`. Reads only.
pub fn extract(sb: &dyn Sandbox) -> Result<CniResult> {
    extract_filtered(sb, None)
}

fn extract_filtered(sb: &dyn Sandbox, only: Option<&str>) -> Result<CniResult> {
    let info = sb.info()?;
    let lo = sb.loopback_name();
    let mut r = CniResult::default();
    for i in info.interfaces.iter().filter(|i| i.name != lo && only.is_none_or(|o| o == i.name)) {
        let index = r.interfaces.len();
        r.interfaces.push(interface_of(i, &info.key));
        for a in i.addresses.iter().filter(|a| !is_link_local(a)) {
            let gateway = match a.addr() {
                IpAddr::V4(_) => info.gateway.map(IpAddr::V4),
                IpAddr::V6(_) => info.gateway6.map(IpAddr::V6),
            }
            .filter(|g| reaches(&i.addresses, *g) || reaches(&[*a], *g));
            r.ips.push(IpConfig { address: *a, gateway, interface: Some(index) });
        }
    }
    let names: Vec<String> = r.interfaces.iter().map(|i| i.name.clone()).collect();
    let ours = |s: &StaticRoute| match (&s.interface, only) {
        (Some(n), _) => names.contains(n),
        (None, None) => true,
        (None, Some(_)) => false,
    };
    let holds_gateway = |g: IpAddr| r.ips.iter().any(|ip| ip.gateway == Some(g));
    let mut routes = Vec::new();
    if let Some(g) = info.gateway.map(IpAddr::V4).filter(|g| only.is_none() || holds_gateway(*g)) {
        routes.push(Route::new(any(true), Some(g)));
    }
    if let Some(g) = info.gateway6.map(IpAddr::V6).filter(|g| only.is_none() || holds_gateway(*g)) {
        routes.push(Route::new(any(false), Some(g)));
    }
    routes.extend(info.static_routes.iter().filter(|s| ours(s)).map(|s| Route::new(s.dst, s.gateway)));
    r.routes = routes;
    Ok(r)
}

/// Takes interface `ifname`'s configuration off it — the gateways it carries, its static
/// routes, then its addresses (link-local ones stay), as Virtlet's `StripLink` — and returns it
/// as a result, so [`configure_link`] can put it back (or a VM be given it).
pub fn strip_link(sb: &dyn Sandbox, ifname: &str) -> Result<CniResult> {
    validate::ifname(ifname)?;
    let taken = extract_filtered(sb, Some(ifname))?;
    if taken.interfaces.is_empty() {
        return Err(Error::NotFound { kind: "interface", name: ifname.to_owned() });
    }
    let info = sb.info()?;
    for r in &taken.routes {
        match (r.dst.prefix_len(), r.gw) {
            (0, Some(g)) => sb.unset_gateway(g)?,
            _ => {
                let s =
                    info.static_routes.iter().find(|s| s.dst == r.dst && s.gateway == r.gw).cloned().unwrap_or_else(
                        || StaticRoute { dst: r.dst, gateway: r.gw, interface: Some(ifname.to_owned()) },
                    );
                sb.remove_static_route(&s)?;
            }
        }
    }
    for ip in &taken.ips {
        sb.remove_alias_ip(ifname, ip.address)?;
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sandbox::{FakeSandbox, IfaceOptions};

    fn result() -> CniResult {
        CniResult::from_json(&json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0"}],
            "ips": [{"address": "198.18.0.5/16", "gateway": "198.18.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "203.0.113.0/24"}]
        }))
        .unwrap()
    }

    fn sandbox() -> FakeSandbox {
        let sb = FakeSandbox::new("/fake/vm").unwrap();
        sb.add_veth("veth0000000a", "eth0", &IfaceOptions::new().exact_name(true).mac([2, 0, 0, 0, 0, 5])).unwrap();
        sb
    }

    #[test]
    fn fix_configure_extract_strip_round_trip() {
        let sb = sandbox();
        let mut r = result();
        let notes = validate_and_fix(&mut r, &sb).unwrap();
        assert_eq!(r.interfaces[0].sandbox.as_deref(), Some("/fake/vm"));
        assert_eq!(r.ips[0].interface, Some(0));
        assert_eq!(notes.len(), 2, "{notes:?}");
        configure_link(&sb, &r, 0).unwrap();
        let info = sb.info().unwrap();
        assert_eq!(info.gateway, Some("198.18.0.1".parse().unwrap()));
        assert_eq!(
            info.interfaces.iter().find(|i| i.name == "eth0").unwrap().addresses,
            vec!["198.18.0.5/16".parse::<IpNet>().unwrap()]
        );

        let got = extract(&sb).unwrap();
        assert_eq!(got.ips, r.ips);
        assert_eq!(got.interfaces[0].mac.as_deref(), Some("02:00:00:00:00:05"));
        assert!(got.routes.contains(&Route::new(any(true), Some("198.18.0.1".parse().unwrap()))));
        assert!(got.routes.iter().any(|x| x.dst == "203.0.113.0/24".parse::<IpNet>().unwrap()));

        let taken = strip_link(&sb, "eth0").unwrap();
        assert_eq!(taken.ips, got.ips);
        let bare = sb.info().unwrap();
        assert_eq!(bare.gateway, None);
        assert!(bare.static_routes.is_empty());
        assert!(bare.interfaces.iter().find(|i| i.name == "eth0").unwrap().addresses.is_empty());
        // And back.
        configure_link(&sb, &taken, 0).unwrap();
        assert_eq!(sb.info().unwrap(), info);
    }

    #[test]
    fn off_subnet_gateway_gets_an_on_link_route() {
        let sb = sandbox();
        let mut r = CniResult::from_json(&json!({
            "cniVersion": "1.0.0",
            "ips": [{"address": "198.18.7.7/32", "gateway": "169.254.1.1"}],
            "routes": [{"dst": "0.0.0.0/0"}]
        }))
        .unwrap();
        let notes = validate_and_fix(&mut r, &sb).unwrap();
        assert!(notes.iter().any(|n| n.contains("169.254.1.1")), "{notes:?}");
        assert_eq!(r.interfaces.len(), 1, "the interface is added from the sandbox");
        configure_link(&sb, &r, 0).unwrap();
        let info = sb.info().unwrap();
        assert_eq!(info.gateway, Some("169.254.1.1".parse().unwrap()));
        assert!(info.static_routes.iter().any(|s| s.dst == "169.254.1.1/32".parse::<IpNet>().unwrap()));
    }

    #[test]
    fn bad_input() {
        let sb = sandbox();
        sb.add_veth("veth0000000b", "eth1", &IfaceOptions::new().exact_name(true)).unwrap();
        let mut r = result();
        r.interfaces.clear();
        // Two interfaces inside and none holds the address: cannot be placed.
        assert!(validate_and_fix(&mut r, &sb).is_err());
        let mut missing = result();
        missing.interfaces[0].name = "eth9".into();
        missing.ips[0].interface = Some(0);
        assert!(matches!(configure_link(&sb, &missing, 0), Err(Error::NotFound { .. })));
        assert!(configure_link(&sb, &missing, 3).is_err());
        assert!(matches!(strip_link(&sb, "eth9"), Err(Error::NotFound { .. })));
        assert_eq!(sb.info().unwrap().gateway, None);
    }
}
