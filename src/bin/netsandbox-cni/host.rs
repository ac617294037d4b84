//! The host side of an attachment: its identity on the host end's alias, so DEL without a
//! namespace and GC find host ends from the kernel alone.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr, bind, recv, sendto, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;

use netsandbox::cni::{CniError, ErrorCode};
use netsandbox::netlink::Socket;
use netsandbox::netlink::link::{self, LinkChange, LinkRef};
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

/// The environment variable that turns the binary into the host namespace's reaper.
pub const REAP_ENV: &str = "NETSANDBOX_CNI_REAP";

/// Alias of a container end DEL has retired (its deletion is the reaper's).
pub const RETIRED: &str = "netsandbox-cni retired";

/// The device group of retired host ends in the host namespace: the reaper deletes the whole
/// group with one request, so the kernel's RCU wait (and its hold of RTNL, which every other
/// plugin call needs) is paid once per batch, not once per DEL.
pub const RETIRED_GROUP: u32 = 0x6e73_de1e;

/// The reaper's name: an abstract unix socket, which belongs to the network namespace it is
/// bound in, so there is at most one reaper per host namespace, and DEL finds it there.
const REAPER_SOCKET: &[u8] = b"netsandbox-cni-reaper";

/// How long the reaper waits for DELs to stop coming before it deletes the batch, and the
/// longest a retired pair waits.
const REAP_IDLE: Duration = Duration::from_millis(30);
const REAP_MAX_DELAY: Duration = Duration::from_millis(500);

/// DEL's fast path. Deleting a veth makes the kernel wait for RCU grace periods (tens of ms)
/// inside the request, and so do bringing a link down and renaming it; DEL need not wait.
/// So the container end loses its addresses (unusable at once) and is marked retired on its
/// alias, and the host end (after checking that its alias names this attachment) joins
/// [`RETIRED_GROUP`] — none of which waits for RCU — and the namespace's reaper, started if
/// none runs, deletes the group. An ADD that finds a retired `ifname` deletes it first
/// ([`clear_retired`]). `Ok(false)`: nothing to do (no such namespace or interface); an error:
/// the caller removes the interface the slow way.
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
    host.set_link(LinkRef::Index(peer), &LinkChange::new().group(RETIRED_GROUP))?;
    if !wake_reaper() && !spawn_reaper() {
        // No reaper: delete it here (and wait).
        sock.delete_link(LinkRef::Index(l.index))?;
    }
    Ok(true)
}

fn reaper_addr() -> Option<UnixAddr> {
    UnixAddr::new_abstract(REAPER_SOCKET).ok()
}

/// Tells a running reaper that there is more to delete: false when none listens.
fn wake_reaper() -> bool {
    let Some(addr) = reaper_addr() else { return false };
    let Ok(fd) = socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None) else { return false };
    sendto(fd.as_raw_fd(), b"r", &addr, MsgFlags::MSG_DONTWAIT).is_ok()
}

fn spawn_reaper() -> bool {
    std::env::current_exe()
        .and_then(|exe| {
            Command::new(exe)
                .env_clear()
                .env(REAP_ENV, "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        })
        .is_ok()
}

/// For ADD: an `ifname` in `netns` that DEL retired and the reaper has not deleted yet is
/// deleted now (an immediate ADD of the same container and interface must succeed).
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

/// The reaper (a detached child of DEL): while DELs keep coming it waits (up to
/// [`REAP_MAX_DELAY`]), then deletes every retired host end with one request, until none is
/// left. It exits only after giving up its name and looking once more, so a DEL that woke it
/// is never left behind; a second reaper finding the name taken exits at once.
pub fn reap() {
    let Some(addr) = reaper_addr() else { return };
    let Ok(host) = Socket::open() else { return };
    loop {
        let Ok(fd) = socket(AddressFamily::Unix, SockType::Datagram, SockFlag::SOCK_CLOEXEC, None) else { return };
        if bind(fd.as_raw_fd(), &addr).is_err() {
            return; // another reaper serves this namespace
        }
        let _ = setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, REAP_IDLE.as_micros() as _));
        loop {
            let start = Instant::now();
            let mut buf = [0u8; 16];
            while start.elapsed() < REAP_MAX_DELAY && recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).is_ok() {}
            if let Ok(req) = link::delete_group(RETIRED_GROUP) {
                let _ = host.execute(req);
            }
            if !any_retired(&host) {
                break;
            }
        }
        drop(fd);
        if !any_retired(&host) {
            return;
        }
    }
}

fn any_retired(host: &Socket) -> bool {
    host.links().is_ok_and(|ls| ls.iter().any(|l| l.group == RETIRED_GROUP))
}
