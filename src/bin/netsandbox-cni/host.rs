//! The host side of an attachment: its identity on the host end's alias, so DEL without a
//! namespace and GC find host ends from the kernel alone.

use std::path::Path;
use std::process::{Command, Stdio};

use netsandbox::cni::{CniError, ErrorCode};
use netsandbox::netlink::Socket;
use netsandbox::netlink::link::{LinkChange, LinkRef};
use netsandbox::netns::{self, NetNs};

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

/// The environment variable that turns the binary into the reaper of one host end.
pub const REAP_ENV: &str = "NETSANDBOX_CNI_REAP";

/// Alias of a container end DEL has retired (its deletion is the reaper's).
pub const RETIRED: &str = "netsandbox-cni retired";

/// DEL's fast path. Deleting a veth makes the kernel wait for RCU grace periods (tens of ms)
/// inside the request, and so do bringing a link down and renaming it; DEL need not wait.
/// So the container end loses its addresses (unusable at once) and is marked retired on its
/// alias — neither waits for RCU — and a detached process deletes the pair through its host
/// end, after checking that the host end's alias still names this attachment. An ADD that
/// finds a retired `ifname` deletes it first ([`clear_retired`]). `Ok(false)`: nothing to do
/// (no such namespace or interface); an error: the caller removes the interface the slow way.
pub fn retire(netns: &Path, network: &str, id: &str, ifname: &str) -> Result<bool, CniError> {
    let ns = match NetNs::from_path(netns) {
        Ok(ns) => ns,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let sock = netns::socket_in(&ns)?;
    let l = match sock.link(LinkRef::Name(ifname)) {
        Ok(l) => l,
        Err(e) if e.is_not_found() => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if l.alias.as_deref() == Some(RETIRED) {
        return Ok(true);
    }
    let expected = alias(network, id, ifname).ok_or_else(|| CniError::new(ErrorCode::Plugin(109), "alias too long"))?;
    let host = Socket::open()?;
    let peer = l.link.ok_or_else(|| CniError::new(ErrorCode::Plugin(109), format!("{ifname} has no peer")))?;
    match host.link(LinkRef::Index(peer)) {
        Ok(h) if h.alias.as_deref() == Some(expected.as_str()) => {}
        _ => return Err(CniError::new(ErrorCode::Plugin(109), format!("{ifname}'s peer is not our host end"))),
    }
    sock.set_link(LinkRef::Index(l.index), &LinkChange::new().alias(RETIRED))?;
    for a in sock.addresses(None, Some(l.index))? {
        match sock.delete_address(l.index, &a.addr) {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
    }
    let spawned = std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .env_clear()
            .env(REAP_ENV, format!("{peer} {expected}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
    });
    if spawned.is_err() {
        // No reaper: delete it here (and wait).
        sock.delete_link(LinkRef::Index(l.index))?;
    }
    Ok(true)
}

/// For ADD: an `ifname` in `netns` that DEL retired and the reaper has not deleted yet is
/// deleted now (an immediate ADD of the same container and interface must succeed).
pub fn clear_retired(netns: &Path, ifname: &str) -> Result<(), CniError> {
    let ns = NetNs::from_path(netns)?;
    let sock = netns::socket_in(&ns)?;
    match sock.link(LinkRef::Name(ifname)) {
        Ok(l) if l.alias.as_deref() == Some(RETIRED) => match sock.delete_link(LinkRef::Index(l.index)) {
            Err(e) if !e.is_not_found() => Err(e.into()),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// The reaper (a detached child of DEL): deletes host link `index` if its alias is `alias`.
pub fn reap(spec: &str) {
    let Some((index, alias)) = spec.split_once(' ') else { return };
    let Ok(index) = index.parse::<u32>() else { return };
    let Ok(sock) = Socket::open() else { return };
    if let Ok(l) = sock.link(LinkRef::Index(index))
        && l.alias.as_deref() == Some(alias)
    {
        let _ = sock.delete_link(LinkRef::Index(index));
    }
}
