//! Option setters for sandbox operations.
//!
//! Setters only record; every option is checked when the operation that takes it runs, and an
//! invalid value or combination is a typed error before anything changes in the kernel.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::validate;

/// How an interface is configured by [`Sandbox::add_interface`](super::Sandbox::add_interface).
///
/// ```
/// use netsandbox::sandbox::IfaceOptions;
/// let opts = IfaceOptions::new()
///     .address("198.18.0.2/16".parse().unwrap())
///     .address_ipv6("2001:db8::2/64".parse().unwrap())
///     .mac([0x02, 0x42, 0xc6, 0x12, 0x00, 0x02])
///     .mtu(1450);
/// assert!(opts.check().is_ok());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IfaceOptions {
    pub(crate) bridge: bool,
    pub(crate) master: Option<String>,
    pub(crate) mac: Option<[u8; 6]>,
    pub(crate) address: Option<IpNet>,
    pub(crate) address_ipv6: Option<IpNet>,
    pub(crate) link_local: Vec<IpNet>,
    pub(crate) routes: Vec<IpNet>,
    pub(crate) mtu: Option<u32>,
    pub(crate) sysctls: Vec<(String, String)>,
    /// Off by default: see [`IfaceOptions::host_link_local`].
    pub(crate) host_link_local: bool,
    pub(crate) host_master: Option<String>,
    pub(crate) host_hairpin: bool,
    pub(crate) exact_name: bool,
    pub(crate) host_alias: Option<String>,
}

impl IfaceOptions {
    /// No options: the link is moved, renamed and brought up.
    pub fn new() -> Self {
        Self::default()
    }
    /// The name argument of `add_interface`/`add_veth` is the interface's exact name instead of
    /// a prefix to append the lowest free index to (CNI's `CNI_IFNAME`). A name already taken
    /// inside is [`Error::AlreadyExists`] and nothing changes.
    pub fn exact_name(mut self, yes: bool) -> Self {
        self.exact_name = yes;
        self
    }
    /// For [`Sandbox::add_veth`](super::Sandbox::add_veth) only: the host end's interface alias
    /// (`IFLA_IFALIAS`, at most 255 bytes), set right after its creation, so the owner of the
    /// host end (e.g. a CNI plugin's garbage collection) can recognise it from the kernel alone.
    pub fn host_alias(mut self, alias: impl Into<String>) -> Self {
        self.host_alias = Some(alias.into());
        self
    }
    /// Checks the name argument of `add_interface`/`add_veth`: an exact interface name with
    /// [`exact_name`](Self::exact_name), else a prefix. Shared by every sandbox implementation.
    pub(crate) fn check_dst(&self, dst: &str) -> Result<()> {
        if self.exact_name { validate::ifname(dst) } else { validate::ifname_prefix(dst) }
    }
    /// Create a bridge inside the sandbox instead of moving a link in (`src_name` is ignored).
    pub fn bridge(mut self, yes: bool) -> Self {
        self.bridge = yes;
        self
    }
    /// Enslave the interface to this bridge (a name inside the sandbox).
    pub fn master(mut self, name: impl Into<String>) -> Self {
        self.master = Some(name.into());
        self
    }
    /// For [`Sandbox::add_veth`](super::Sandbox::add_veth) only: whether the host end gets the
    /// kernel's IPv6 link-local address. **Default `false`**: the host end's `addr_gen_mode` is
    /// set to none before it comes up, as LXD does for bridge ports. A host end that is a
    /// bridge port or carries no IPv6 of its own needs no address, and each one costs the
    /// kernel duplicate-address detection, MLD and IPv6 route work in the origin namespace under
    /// RTNL that grows with the number of interfaces there: with the kernel's behaviour,
    /// set-up at 1 000 live sandboxes was 24–55 % slower than at the start, without it flat
    /// (BENCHMARKS.md). Ask for `true` when the host routes IPv6 to the sandbox over the host
    /// end by its link-local address (a routed set-up whose sandbox gateway is `fe80::…` on the
    /// host end).
    pub fn host_link_local(mut self, yes: bool) -> Self {
        self.host_link_local = yes;
        self
    }
    /// For [`Sandbox::add_veth`](super::Sandbox::add_veth) only: the host end joins this bridge
    /// in the origin namespace, as part of the request that creates it (see
    /// [`HostBridge`](super::HostBridge) to make one). A missing bridge is
    /// [`Error::NotFound`], a link that is not a bridge [`Error::NotABridge`]; both are checked
    /// before anything is created.
    pub fn host_master(mut self, bridge: impl Into<String>) -> Self {
        self.host_master = Some(bridge.into());
        self
    }
    /// For [`Sandbox::add_veth`](super::Sandbox::add_veth) with
    /// [`host_master`](Self::host_master): hairpin mode on the host end's bridge port (frames
    /// may leave by the port they came in on, so a container reaches itself through an address
    /// the host translates, as the CNI bridge plugin's `hairpinMode` does).
    pub fn host_hairpin(mut self, yes: bool) -> Self {
        self.host_hairpin = yes;
        self
    }
    /// Set this MAC address.
    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = Some(mac);
        self
    }
    /// The IPv4 address with its prefix.
    pub fn address(mut self, net: IpNet) -> Self {
        self.address = Some(net);
        self
    }
    /// The IPv6 address with its prefix (added without DAD, usable at once).
    pub fn address_ipv6(mut self, net: IpNet) -> Self {
        self.address_ipv6 = Some(net);
        self
    }
    /// Extra link-local addresses (169.254.0.0/16 or fe80::/10).
    pub fn link_local(mut self, nets: Vec<IpNet>) -> Self {
        self.link_local = nets;
        self
    }
    /// Routes reachable directly through this interface (scope link).
    pub fn routes(mut self, nets: Vec<IpNet>) -> Self {
        self.routes = nets;
        self
    }
    /// Set the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
    /// A per-interface sysctl, relative to `net/ipv4/conf/<if>/` or `net/ipv6/conf/<if>/`:
    /// `key` is e.g. `"ipv4/arp_ignore"` or `"ipv6/disable_ipv6"`.
    pub fn sysctl(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.sysctls.push((key.into(), value.into()));
        self
    }

    /// Checks every option and their combination without touching the kernel.
    pub fn check(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidArgument { op: "interface options", reason });
        if let Some(m) = &self.master {
            validate::ifname(m)?;
            if self.bridge {
                return bad(format!("a bridge cannot itself have master {m}"));
            }
        }
        if let Some(mac) = &self.mac {
            validate::mac_bytes(mac)?;
        }
        if let Some(m) = &self.host_master {
            validate::ifname(m)?;
        }
        if let Some(a) = &self.host_alias
            && (a.len() > 255 || a.contains('\0'))
        {
            return bad(format!("host alias of {} bytes: at most 255, no NUL", a.len()));
        }
        if self.host_hairpin && self.host_master.is_none() {
            return bad("host_hairpin needs host_master (hairpin is a bridge port mode)".into());
        }
        if let Some(a) = &self.address {
            if !a.addr().is_ipv4() {
                return bad(format!("address {a} is not IPv4 (use address_ipv6)"));
            }
            validate::host_cidr(a)?;
        }
        if let Some(a) = &self.address_ipv6 {
            if !a.addr().is_ipv6() {
                return bad(format!("address_ipv6 {a} is not IPv6"));
            }
            validate::host_cidr(a)?;
        }
        for ll in &self.link_local {
            let ok = match ll.addr() {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
            if !ok {
                return bad(format!("{ll} is not a link-local address"));
            }
        }
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            return bad(format!("MTU {mtu} out of range 68..=65535"));
        }
        for (k, _) in &self.sysctls {
            let ok = (k.starts_with("ipv4/") || k.starts_with("ipv6/"))
                && k[5..].chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && k.len() > 5;
            if !ok {
                return bad(format!("per-interface sysctl {k:?} must be ipv4/<name> or ipv6/<name>"));
            }
        }
        Ok(())
    }
}

/// Which table a neighbor entry goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, PartialOrd, Ord)]
pub enum NeighFamily {
    /// ARP (IPv4) or NDP (IPv6), chosen from the IP.
    #[default]
    Ip,
    /// An AF_BRIDGE forwarding-database entry on a VXLAN device: MAC → remote VTEP IP.
    Bridge,
}

/// Options for [`Sandbox::add_neighbor`](super::Sandbox::add_neighbor).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NeighOptions {
    pub(crate) link_name: Option<String>,
    pub(crate) family: NeighFamily,
}

impl NeighOptions {
    /// Default: an ARP/NDP entry on the interface that reaches the IP.
    pub fn new() -> Self {
        Self::default()
    }
    /// The interface inside the sandbox (required for [`NeighFamily::Bridge`]).
    pub fn link_name(mut self, name: impl Into<String>) -> Self {
        self.link_name = Some(name.into());
        self
    }
    /// The table.
    pub fn family(mut self, f: NeighFamily) -> Self {
        self.family = f;
        self
    }
    /// Checks the options without touching the kernel.
    pub fn check(&self) -> Result<()> {
        if let Some(n) = &self.link_name {
            validate::ifname(n)?;
        }
        if self.family == NeighFamily::Bridge && self.link_name.is_none() {
            return Err(Error::InvalidArgument {
                op: "neighbor options",
                reason: "an fdb entry needs link_name".into(),
            });
        }
        Ok(())
    }
}

/// A static route inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StaticRoute {
    /// Destination network.
    pub dst: IpNet,
    /// Next hop; when `None`, `interface` must be set (a directly connected route).
    pub gateway: Option<IpAddr>,
    /// Interface name inside the sandbox; when `None`, the one that reaches `gateway`.
    pub interface: Option<String>,
}

impl StaticRoute {
    /// A route to `dst` via `gateway`.
    pub fn via(dst: IpNet, gateway: IpAddr) -> Self {
        StaticRoute { dst: dst.trunc(), gateway: Some(gateway), interface: None }
    }
    /// A route to `dst` straight out of `interface`.
    pub fn dev(dst: IpNet, interface: impl Into<String>) -> Self {
        StaticRoute { dst: dst.trunc(), gateway: None, interface: Some(interface.into()) }
    }
    /// Checks the route without touching the kernel.
    pub fn check(&self) -> Result<()> {
        if let Some(i) = &self.interface {
            validate::ifname(i)?;
        }
        match self.gateway {
            None if self.interface.is_none() => Err(Error::InvalidArgument {
                op: "static route",
                reason: format!("{} needs a gateway or an interface", self.dst),
            }),
            Some(g) if g.is_ipv4() != self.dst.addr().is_ipv4() => Err(Error::InvalidArgument {
                op: "static route",
                reason: format!("gateway {g} and destination {} differ in family", self.dst),
            }),
            _ => Ok(()),
        }
    }
}

/// Sandbox roles that need kernel tweaks (libnetwork's `SandboxType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SandboxType {
    /// The ingress sandbox of a swarm-style routing mesh.
    Ingress,
    /// A load-balancer sandbox (IPVS).
    LoadBalancer,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iface_option_checks() {
        let n = |s: &str| s.parse::<IpNet>().unwrap();
        assert!(IfaceOptions::new().check().is_ok());
        assert!(IfaceOptions::new().address(n("2001:db8::1/64")).check().is_err());
        assert!(IfaceOptions::new().address_ipv6(n("198.18.0.1/16")).check().is_err());
        assert!(IfaceOptions::new().bridge(true).master("br0").check().is_err());
        assert!(IfaceOptions::new().master("a/b").check().is_err());
        assert!(IfaceOptions::new().mac([1, 2, 3, 4, 5, 6]).check().is_err());
        assert!(IfaceOptions::new().mtu(20).check().is_err());
        assert!(IfaceOptions::new().link_local(vec![n("198.18.0.1/16")]).check().is_err());
        assert!(IfaceOptions::new().link_local(vec![n("169.254.1.1/16"), n("fe80::1/64")]).check().is_ok());
        assert!(IfaceOptions::new().sysctl("../../x", "1").check().is_err());
        assert!(IfaceOptions::new().sysctl("ipv4/arp_ignore", "1").check().is_ok());
        assert!(IfaceOptions::new().address(n("0.0.0.0/0")).check().is_err());
        assert!(IfaceOptions::new().host_alias("x".repeat(256)).check().is_err());
        assert!(IfaceOptions::new().host_alias("netsandbox-cni net c1 eth0").check().is_ok());
        assert!(IfaceOptions::new().check_dst("eth0").is_err());
        assert!(IfaceOptions::new().exact_name(true).check_dst("eth0").is_ok());
        assert!(IfaceOptions::new().exact_name(true).check_dst("a/b").is_err());
        assert!(IfaceOptions::new().host_master("br 0").check().is_err());
        assert!(IfaceOptions::new().host_hairpin(true).check().is_err());
        assert!(IfaceOptions::new().host_master("br0").host_hairpin(true).check().is_ok());
    }

    #[test]
    fn neigh_and_route_checks() {
        assert!(NeighOptions::new().family(NeighFamily::Bridge).check().is_err());
        assert!(NeighOptions::new().family(NeighFamily::Bridge).link_name("vx0").check().is_ok());
        let dst: IpNet = "198.19.1.0/24".parse().unwrap();
        assert!(StaticRoute::via(dst, "2001:db8::1".parse().unwrap()).check().is_err());
        assert!(StaticRoute { dst, gateway: None, interface: None }.check().is_err());
        assert!(StaticRoute::dev(dst, "eth0").check().is_ok());
    }
}
