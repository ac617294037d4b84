//! The plugin's view of IPAM: the built-in allocator or a delegate, behind one interface.

use std::net::IpAddr;

use netsandbox::cni::ipam::{BUILTIN_TYPE, Builtin, Delegate};
use netsandbox::cni::{CniError, CniResult, Command, ErrorCode, NetConf, Request};

pub enum Ipam {
    Builtin(Builtin),
    Delegate(Delegate),
}

impl Ipam {
    /// The configured IPAM, or `None` when the configuration has no `ipam` section.
    pub fn from_conf(conf: &NetConf, req: &Request) -> Result<Option<Ipam>, CniError> {
        let Some(ipam) = &conf.ipam else { return Ok(None) };
        Ok(Some(if ipam.plugin_type == BUILTIN_TYPE {
            Ipam::Builtin(Builtin::from_conf(&conf.name, &ipam.raw)?)
        } else {
            Ipam::Delegate(Delegate::find(&ipam.plugin_type, &req.path)?)
        }))
    }

    /// Allocates for the request's (container id, ifname).
    pub fn add(&self, req: &Request, conf: &NetConf, stdin: &[u8]) -> Result<CniResult, CniError> {
        let r = match self {
            Ipam::Builtin(b) => b.allocate(req.container_id()?, req.ifname()?, &requested_ips(req, conf)?)?,
            Ipam::Delegate(d) => d.add(stdin)?,
        };
        if r.ips.is_empty() {
            return Err(CniError::new(ErrorCode::Plugin(106), "IPAM returned no addresses"));
        }
        Ok(r.convert(conf.cni_version))
    }

    /// Releases what (`id`, `ifname`) holds.
    pub fn del(&self, id: &str, ifname: &str, stdin: &[u8]) -> Result<(), CniError> {
        match self {
            Ipam::Builtin(b) => b.release(id, ifname).map(drop),
            Ipam::Delegate(d) => d.call(Command::Del, stdin, &[("CNI_CONTAINERID", id), ("CNI_IFNAME", ifname)]),
        }
    }
}

/// Addresses asked for: `CNI_ARGS` `IP=` (comma-separated) and the `ips` capability
/// (`runtimeConfig.ips`), as host-local reads them.
fn requested_ips(req: &Request, conf: &NetConf) -> Result<Vec<IpAddr>, CniError> {
    let mut out = Vec::new();
    let bad = |s: &str| CniError::new(ErrorCode::InvalidNetworkConfig, format!("requested IP {s:?} is not an address"));
    if let Some(list) = req.arg("IP") {
        for s in list.split(',').filter(|s| !s.is_empty()) {
            out.push(s.parse().map_err(|_| bad(s))?);
        }
    }
    if let Some(ips) = conf.raw.get("runtimeConfig").and_then(|r| r.get("ips")).and_then(|v| v.as_array()) {
        for v in ips {
            let s = v.as_str().unwrap_or_default();
            // The capability carries CIDRs; host-local takes the address part.
            let addr = s.split('/').next().unwrap_or_default();
            out.push(addr.parse().map_err(|_| bad(s))?);
        }
    }
    Ok(out)
}
