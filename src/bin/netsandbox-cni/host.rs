//! The host side of an attachment: its identity on the host end's alias, so DEL without a
//! namespace and GC find host ends from the kernel alone.

use netsandbox::cni::{CniError, ErrorCode};
use netsandbox::netlink::Socket;
use netsandbox::netlink::link::LinkRef;

const ALIAS_PREFIX: &str = "netsandbox-cni";

/// The alias of the host end of (`network`, `id`, `ifname`): none of the three can hold a
/// space (spec grammar, interface names), so it splits back unambiguously.
pub fn alias(network: &str, id: &str, ifname: &str) -> Option<String> {
    let a = format!("{ALIAS_PREFIX} {network} {id} {ifname}");
    (a.len() <= 255).then_some(a)
}

/// A host end of ours on `network`: (ifname on the host, container id, ifname inside).
pub struct HostEnd {
    pub name: String,
    pub container_id: String,
    pub ifname: String,
}

fn internal(e: netsandbox::Error) -> CniError {
    CniError::from(e)
}

/// Every host end of ours on `network`, read from the kernel.
pub fn host_ends(network: &str) -> Result<Vec<HostEnd>, CniError> {
    let sock = Socket::open().map_err(internal)?;
    let mut out = Vec::new();
    for l in sock.links().map_err(internal)? {
        let Some(a) = l.alias.as_deref() else { continue };
        let mut parts = a.split(' ');
        if parts.next() != Some(ALIAS_PREFIX) || parts.next() != Some(network) {
            continue;
        }
        if let (Some(id), Some(ifname), None) = (parts.next(), parts.next(), parts.next()) {
            out.push(HostEnd { name: l.name, container_id: id.to_owned(), ifname: ifname.to_owned() });
        }
    }
    Ok(out)
}

/// Deletes host link `name` (the veth pair with it); a missing link is success.
pub fn delete_link(name: &str) -> Result<(), CniError> {
    let sock = Socket::open().map_err(internal)?;
    match sock.delete_link(LinkRef::Name(name)) {
        Err(e) if !e.is_not_found() => {
            Err(CniError::new(ErrorCode::Plugin(105), format!("deleting host end {name}: {e}")))
        }
        _ => Ok(()),
    }
}

/// The MAC of host link `name`, formatted, when it can be read.
pub fn mac_of(name: &str) -> Option<String> {
    let l = Socket::open().ok()?.link(LinkRef::Name(name)).ok()?;
    l.mac.map(|m| netsandbox::validate::format_mac(&m))
}
