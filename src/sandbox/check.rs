//! The one validation path of the [`Sandbox`](super::Sandbox) trait.
//!
//! [`NetnsSandbox`](super::NetnsSandbox) and [`FakeSandbox`](super::FakeSandbox) call these
//! functions, in the same order, before they do anything: first the input checks of the call
//! (pure, no state), then the rules that need the sandbox's state, given as plain facts each
//! implementation reads from where it keeps its state (the kernel, or memory). So the two cannot
//! disagree on what is valid or on which error comes first.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::options::{IfaceOptions, NeighOptions, StaticRoute};
use crate::error::{Error, Result};
use crate::validate;

/// Name of the loopback interface.
pub(crate) const LOOPBACK: &str = "lo";

/// Addresses the kernel puts on every loopback by itself.
pub(crate) const LOOPBACK_BUILTINS: [(IpAddr, u8); 2] =
    [(IpAddr::V4(Ipv4Addr::LOCALHOST), 8), (IpAddr::V6(Ipv6Addr::LOCALHOST), 128)];

/// The sysctls libnetwork sets for ingress and load-balancer sandboxes (IPVS), with their values.
pub(crate) const LB_SYSCTLS: [(&str, &str); 3] = [
    ("net.ipv4.vs.conn_reuse_mode", "0"),
    ("net.ipv4.vs.expire_nodest_conn", "1"),
    ("net.ipv4.vs.expire_quiescent_template", "1"),
];

/// True for one of [`LOOPBACK_BUILTINS`].
pub(crate) fn is_loopback_builtin(a: &IpNet) -> bool {
    LOOPBACK_BUILTINS.iter().any(|(ip, len)| a.addr() == *ip && a.prefix_len() == *len)
}

/// `add_interface`: the source name (ignored for a bridge, which is created inside), the prefix
/// and the options.
pub(crate) fn add_interface(src: &str, prefix: &str, opts: &IfaceOptions) -> Result<()> {
    if !opts.bridge {
        validate::ifname(src)?;
    }
    opts.check_dst(prefix)?;
    opts.check()?;
    if opts.host_master.is_some() {
        return Err(Error::InvalidArgument {
            op: "add interface",
            reason: "host_master is for add_veth: only a veth leaves an end in the origin namespace".into(),
        });
    }
    Ok(())
}

/// `add_veth`: the host-side name, the prefix and the options (a veth is never a bridge).
pub(crate) fn add_veth(host: &str, prefix: &str, opts: &IfaceOptions) -> Result<()> {
    validate::ifname(host)?;
    opts.check_dst(prefix)?;
    opts.check()?;
    if opts.bridge {
        return Err(Error::InvalidArgument { op: "add veth", reason: "a veth cannot be a bridge".into() });
    }
    Ok(())
}

/// The source link of a move: it must exist in the origin and must not be its loopback.
pub(crate) fn movable(src: &str, found: Option<bool>) -> Result<()> {
    match found {
        None => Err(Error::NotFound { kind: "link", name: src.to_owned() }),
        Some(true) => {
            Err(Error::InvalidArgument { op: "add interface", reason: "the loopback cannot change namespace".into() })
        }
        Some(false) => Ok(()),
    }
}

/// The master named in the options: `found` says whether it exists inside and is a bridge.
pub(crate) fn master(name: &str, found: Option<bool>) -> Result<()> {
    match found {
        None => Err(Error::NotFound { kind: "bridge", name: name.to_owned() }),
        Some(false) => {
            Err(Error::InvalidArgument { op: "add interface", reason: format!("master {name} is not a bridge") })
        }
        Some(true) => Ok(()),
    }
}

/// libnetwork's rule, for both families: an address whose subnet overlaps a route already in
/// the sandbox's main table (`routes`: destinations, default routes and link-local ones left
/// out) is refused.
pub(crate) fn address_conflict(opts: &IfaceOptions, routes: &[IpNet]) -> Result<()> {
    for a in opts.address.iter().chain(opts.address_ipv6.iter()) {
        let subnet = a.trunc();
        let hit = routes.iter().find(|r| {
            r.addr().is_ipv4() == subnet.addr().is_ipv4()
                && r.prefix_len() > 0
                && (r.contains(&subnet.network()) || subnet.contains(&r.network()))
        });
        if let Some(r) = hit {
            return Err(Error::InvalidArgument {
                op: "add interface",
                reason: format!("address {a} conflicts with existing route {r}"),
            });
        }
    }
    Ok(())
}

/// True for a route destination that [`address_conflict`] ignores (default and IPv6
/// link-local routes, which every interface has).
pub(crate) fn ignored_for_conflicts(dst: &IpNet) -> bool {
    dst.prefix_len() == 0 || matches!(dst.addr(), IpAddr::V6(v6) if v6.is_unicast_link_local())
}

/// `remove_interface`: a valid name, and never the loopback.
pub(crate) fn remove_interface(name: &str) -> Result<()> {
    validate::ifname(name)?;
    if name == LOOPBACK {
        return Err(Error::InvalidArgument { op: "remove interface", reason: "the loopback cannot be removed".into() });
    }
    Ok(())
}

/// A gateway (set or unset): a unicast address.
pub(crate) fn gateway(gw: IpAddr) -> Result<()> {
    let reason = if gw.is_unspecified() {
        "unspecified address"
    } else if gw.is_multicast() {
        "multicast address"
    } else if matches!(gw, IpAddr::V4(v4) if v4.is_broadcast()) {
        "broadcast address"
    } else {
        return Ok(());
    };
    Err(Error::InvalidAddress { input: gw.to_string(), reason: format!("{reason} cannot be a gateway") })
}

/// A static route (add or remove).
pub(crate) fn static_route(route: &StaticRoute) -> Result<()> {
    route.check()
}

/// `add_neighbor`.
pub(crate) fn add_neighbor(mac: &[u8; 6], opts: &NeighOptions) -> Result<()> {
    validate::mac_bytes(mac)?;
    opts.check()
}

/// `delete_neighbor`: entries are only ever added with a valid MAC.
pub(crate) fn delete_neighbor(mac: &[u8; 6]) -> Result<()> {
    validate::mac_bytes(mac).map(drop)
}

/// An fdb entry goes on a VXLAN device only.
pub(crate) fn fdb_device(link: &str, is_vxlan: bool) -> Result<()> {
    if is_vxlan {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op: "add neighbor",
            reason: format!("fdb entries go on a vxlan device; {link} is not one"),
        })
    }
}

/// `add_alias_ip` / `remove_alias_ip`: the interface name, then the address.
pub(crate) fn alias_ip(ifname: &str, cidr: &IpNet) -> Result<()> {
    validate::ifname(ifname)?;
    validate::host_cidr(cidr)
}

/// `add_alias_ip`: the address must not be on any interface of the sandbox yet (`present`:
/// every address there, the loopback's built-ins included), whatever its prefix.
pub(crate) fn alias_unique(cidr: &IpNet, present: impl IntoIterator<Item = IpAddr>) -> Result<()> {
    if present.into_iter().any(|a| a == cidr.addr()) {
        return Err(Error::AlreadyExists { kind: "address", name: cidr.to_string() });
    }
    Ok(())
}

/// `disable_arp_for_vip`, `statistics`: an interface name.
pub(crate) fn ifname(name: &str) -> Result<()> {
    validate::ifname(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn conflicts_in_both_families() {
        let routes = [n("198.18.0.0/16"), n("2001:db8::/64")];
        let v4 = IfaceOptions::new().address(n("198.18.5.5/24"));
        let v6 = IfaceOptions::new().address_ipv6(n("2001:db8::44/64"));
        assert!(address_conflict(&v4, &routes).is_err());
        assert!(address_conflict(&v6, &routes).is_err());
        assert!(address_conflict(&IfaceOptions::new().address_ipv6(n("2001:db8:1::1/64")), &routes).is_ok());
        assert!(ignored_for_conflicts(&n("fe80::/64")) && ignored_for_conflicts(&n("0.0.0.0/0")));
        assert!(is_loopback_builtin(&n("127.0.0.1/8")) && !is_loopback_builtin(&n("127.0.0.2/8")));
        assert!(alias_unique(&n("198.18.0.2/32"), [n("198.18.0.2/16").addr()]).is_err());
        assert!(gateway("0.0.0.0".parse().unwrap()).is_err() && gateway("198.18.0.1".parse().unwrap()).is_ok());
        assert!(add_interface("", "br", &IfaceOptions::new().bridge(true)).is_ok());
        assert!(add_veth("vh0", "eth", &IfaceOptions::new().bridge(true)).is_err());
    }
}
