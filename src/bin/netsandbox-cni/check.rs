//! CHECK: the interface, addresses and routes of `prevResult` against the kernel.

use ipnet::IpNet;
use netsandbox::Error;
use netsandbox::cni::ipam::Builtin;
use netsandbox::cni::{CniError, Command, ErrorCode, NetConf, Request};
use netsandbox::sandbox::{HostBridge, NetnsSandbox, Sandbox};
use netsandbox::validate;

use crate::host;
use crate::ipam::Ipam;

fn mismatch(msg: String) -> CniError {
    CniError::new(ErrorCode::Plugin(110), msg)
}

pub fn check(req: &Request, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    crate::unsupported_fields(conf)?;
    let id = req.container_id()?;
    let ifname = req.ifname()?;
    let netns =
        req.netns.as_deref().ok_or_else(|| CniError::new(ErrorCode::InvalidEnvironment, "CNI_NETNS is not set"))?;
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(ErrorCode::InvalidNetworkConfig, "CHECK needs prevResult"))?;

    match Ipam::from_conf(conf, req)? {
        Some(Ipam::Delegate(d)) => d.call(Command::Check, stdin, &[])?,
        Some(Ipam::Builtin(b)) => check_builtin(&b, id, ifname, prev)?,
        None => {}
    }

    HostBridge::open(&conf.bridge).map_err(|e| mismatch(format!("bridge {}: {e}", conf.bridge)))?;
    let sb = NetnsSandbox::attach(netns).map_err(|e| match e {
        Error::NotFound { .. } => {
            CniError::new(ErrorCode::UnknownContainer, format!("network namespace {} does not exist", netns.display()))
        }
        e => e.into(),
    })?;
    let key = netns.display().to_string();
    let index = prev
        .interface_index(ifname, Some(&key))
        .ok_or_else(|| mismatch(format!("prevResult has no interface {ifname} in {key}")))?;
    let want = &prev.interfaces[index];
    let info = sb.info()?;
    let Some(have) = info.interfaces.iter().find(|i| i.name == ifname) else {
        return Err(mismatch(format!("interface {ifname} is missing from {key}")));
    };
    if let Some(m) = &want.mac {
        let wanted = validate::parse_mac(m).map_err(|e| mismatch(format!("prevResult: {e}")))?;
        if have.mac != Some(wanted) {
            let got = have.mac.map(|m| validate::format_mac(&m)).unwrap_or_else(|| "none".into());
            return Err(mismatch(format!("interface {ifname} has MAC {got}, prevResult says {m}")));
        }
    }
    if let (Some(w), Some(h)) = (want.mtu, have.mtu)
        && w != h
    {
        return Err(mismatch(format!("interface {ifname} has MTU {h}, prevResult says {w}")));
    }
    for ip in prev.ips_of(index) {
        if !have.addresses.contains(&ip.address) {
            return Err(mismatch(format!("interface {ifname} lacks address {}", ip.address)));
        }
    }
    for r in &prev.routes {
        let gw = r
            .gw
            .or_else(|| prev.ips_of(index).filter_map(|i| i.gateway).find(|g| g.is_ipv4() == r.dst.addr().is_ipv4()));
        let present = if r.dst.prefix_len() == 0 {
            match r.dst {
                IpNet::V4(_) => info.gateway.map(std::net::IpAddr::V4) == gw,
                IpNet::V6(_) => info.gateway6.map(std::net::IpAddr::V6) == gw,
            }
        } else {
            info.static_routes.iter().any(|s| s.dst == r.dst.trunc() && (gw.is_none() || s.gateway == gw))
        };
        if !present {
            let via = gw.map(|g| format!(" via {g}")).unwrap_or_default();
            return Err(mismatch(format!("route {}{via} is missing from {key}", r.dst)));
        }
    }
    if conf.ip_masq {
        let subnets: Vec<IpNet> = prev.ips_of(index).map(|i| i.address).collect();
        crate::masq::check(&conf.name, id, ifname, &subnets)?;
    }
    // The host end still joins this attachment to the bridge.
    let ends = host::host_ends(&conf.name)?;
    if !ends.iter().any(|e| e.container_id == id && e.ifname == ifname) {
        return Err(mismatch(format!("no host end of {id}/{ifname} on the host")));
    }
    Ok(())
}

fn check_builtin(b: &Builtin, id: &str, ifname: &str, prev: &netsandbox::cni::CniResult) -> Result<(), CniError> {
    let held = b.store()?.by_id(id, ifname)?;
    for ip in &prev.ips {
        if !held.contains(&ip.address.addr()) {
            return Err(mismatch(format!("address {} is not allocated to {id}/{ifname}", ip.address)));
        }
    }
    Ok(())
}
