//! TAP devices born inside a sandbox: `/dev/net/tun` is opened and `TUNSETIFF` issued by a
//! thread standing in the sandbox's namespace (a tun file belongs to the namespace of the
//! thread that opened it, and the device is created there), so the TAP never has to be moved.
//!
//! Every ioctl is a tiny `unsafe` block on an fd an `OwnedFd` keeps open. Queues are
//! close-on-exec `OwnedFd`s; a runtime hands them to its VMM explicitly (e.g. qemu's
//! `-netdev tap,fd=N` after clearing CLOEXEC in the child only).

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use netlink_packet_core::Nla;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{InfoData, InfoTun, LinkAttribute, LinkInfo, LinkMessage};
use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::netlink::Socket;
use crate::netlink::link::{self, LinkRef};
use crate::netns::{self, NetNs, Target};
use crate::validate;

/// Most queues a multi-queue TAP can have (`MAX_TAP_QUEUES` in the kernel).
pub const MAX_QUEUES: u16 = 256;
const TUN_PATH: &str = "/dev/net/tun";
// `_IOW('T', 203|204|206, int)` from <linux/if_tun.h> (libc lacks these three).
const TUNSETPERSIST: libc::Ioctl = 0x4004_54cb;
const TUNSETOWNER: libc::Ioctl = 0x4004_54cc;
const TUNSETGROUP: libc::Ioctl = 0x4004_54ce;
// IFLA_TUN_* from <linux/if_link.h>.
const IFLA_TUN_OWNER: u16 = 1;
const IFLA_TUN_GROUP: u16 = 2;
const IFLA_TUN_TYPE: u16 = 3;
const IFLA_TUN_PI: u16 = 4;
const IFLA_TUN_VNET_HDR: u16 = 5;
const IFLA_TUN_PERSIST: u16 = 6;
const IFLA_TUN_MULTI_QUEUE: u16 = 7;
const IFLA_TUN_NUM_QUEUES: u16 = 8;

/// How to create a TAP device. Defaults: one queue, `IFF_NO_PI`, no `IFF_VNET_HDR`,
/// persistent, up, the kernel's MTU and a random MAC, owned by root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapOptions {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// MTU; the kernel's default (1500) when `None`.
    pub mtu: Option<u32>,
    /// MAC address; random when `None`.
    pub mac: Option<[u8; 6]>,
    /// Owning user (`TUNSETOWNER`): that user may open the TAP without privileges.
    pub owner: Option<u32>,
    /// Owning group (`TUNSETGROUP`).
    pub group: Option<u32>,
    /// Number of queues (fds); more than one makes an `IFF_MULTI_QUEUE` device.
    pub queues: u16,
    /// Prepend a `virtio_net_hdr` to every frame (`IFF_VNET_HDR`, what vhost-net wants).
    pub vnet_hdr: bool,
    /// No 4-byte packet-information header (`IFF_NO_PI`); what every VMM expects.
    pub no_pi: bool,
    /// Outlive its fds (`TUNSETPERSIST`), so it can be re-opened after an engine restart.
    pub persistent: bool,
    /// Bring it up.
    pub up: bool,
    /// Let the kernel give it an IPv6 link-local address. Off by default: a TAP carries a
    /// guest's link, and the namespace's own IPv6 chatter (DAD, router solicitations) does not
    /// belong on it.
    pub ipv6_link_local: bool,
}

impl TapOptions {
    /// Defaults for a TAP named `name`.
    pub fn new(name: &str) -> Self {
        TapOptions {
            name: name.to_owned(),
            mtu: None,
            mac: None,
            owner: None,
            group: None,
            queues: 1,
            vnet_hdr: false,
            no_pi: true,
            persistent: true,
            up: true,
            ipv6_link_local: false,
        }
    }
    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
    /// Sets the MAC address.
    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = Some(mac);
        self
    }
    /// Sets the owning user.
    pub fn owner(mut self, uid: u32) -> Self {
        self.owner = Some(uid);
        self
    }
    /// Sets the owning group.
    pub fn group(mut self, gid: u32) -> Self {
        self.group = Some(gid);
        self
    }
    /// Sets the number of queues.
    pub fn queues(mut self, n: u16) -> Self {
        self.queues = n;
        self
    }
    /// Sets `IFF_VNET_HDR`.
    pub fn vnet_hdr(mut self, on: bool) -> Self {
        self.vnet_hdr = on;
        self
    }
    /// Sets `IFF_NO_PI`.
    pub fn no_pi(mut self, on: bool) -> Self {
        self.no_pi = on;
        self
    }
    /// Sets persistence.
    pub fn persistent(mut self, on: bool) -> Self {
        self.persistent = on;
        self
    }
    /// Whether to bring it up.
    pub fn up(mut self, on: bool) -> Self {
        self.up = on;
        self
    }
    /// Whether the kernel gives it an IPv6 link-local address.
    pub fn ipv6_link_local(mut self, on: bool) -> Self {
        self.ipv6_link_local = on;
        self
    }

    pub(crate) fn check(&self) -> Result<()> {
        validate::ifname(&self.name)?;
        check_queues(self.queues)?;
        if let Some(mac) = &self.mac {
            validate::mac_bytes(mac)?;
        }
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(Error::InvalidArgument {
                op: "create tap",
                reason: format!("MTU {mtu} out of range 68..=65535"),
            });
        }
        Ok(())
    }

    fn flags(&self) -> TapFlags {
        TapFlags { no_pi: self.no_pi, vnet_hdr: self.vnet_hdr, multi_queue: self.queues > 1 }
    }
}

fn check_queues(n: u16) -> Result<()> {
    if n == 0 || n > MAX_QUEUES {
        return Err(Error::InvalidArgument { op: "tap queues", reason: format!("{n} queues, not 1..={MAX_QUEUES}") });
    }
    Ok(())
}

/// A TAP device and its open queues.
#[derive(Debug)]
pub struct Tap {
    /// Its name inside the sandbox.
    pub name: String,
    /// Its ifindex inside the sandbox.
    pub index: u32,
    /// One close-on-exec fd per queue. Closing them all removes a non-persistent TAP.
    pub queues: Vec<OwnedFd>,
}

/// What the kernel says about an existing tun/tap device (`IFLA_TUN_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TapInfo {
    /// A TAP (Ethernet frames) rather than a TUN (IP packets).
    pub tap: bool,
    /// `IFF_NO_PI` is set.
    pub no_pi: bool,
    /// `IFF_VNET_HDR` is set.
    pub vnet_hdr: bool,
    /// `TUNSETPERSIST` is on.
    pub persistent: bool,
    /// `IFF_MULTI_QUEUE` is set.
    pub multi_queue: bool,
    /// Queues attached right now (open fds).
    pub attached_queues: u32,
    /// Owning user, if set.
    pub owner: Option<u32>,
    /// Owning group, if set.
    pub group: Option<u32>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct TapFlags {
    pub(crate) no_pi: bool,
    pub(crate) vnet_hdr: bool,
    pub(crate) multi_queue: bool,
}

impl TapFlags {
    fn bits(self) -> libc::c_short {
        let mut f = libc::IFF_TAP;
        if self.no_pi {
            f |= libc::IFF_NO_PI;
        }
        if self.vnet_hdr {
            f |= libc::IFF_VNET_HDR;
        }
        if self.multi_queue {
            f |= libc::IFF_MULTI_QUEUE;
        }
        f as libc::c_short
    }
}

fn ifreq(name: &str, flags: libc::c_short) -> libc::ifreq {
    // SAFETY: ifreq is plain old data (bytes and integers); all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = flags;
    req
}

fn ioctl_int(fd: BorrowedFd<'_>, req: libc::Ioctl, arg: libc::c_ulong) -> std::result::Result<(), Errno> {
    // SAFETY: TUNSETPERSIST/OWNER/GROUP take their argument by value (an integer, not a
    // pointer); the fd is kept open by the borrow.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req, arg) };
    Errno::result(r).map(drop)
}

/// Opens `/dev/net/tun` and attaches it to TAP `name` (creating the device when it does not
/// exist, unless `exclusive` refuses one that does). Must run inside the target namespace.
fn open_queue(name: &str, flags: TapFlags, exclusive: bool) -> Result<OwnedFd> {
    let file =
        OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open(TUN_PATH).map_err(|e| match e
            .kind()
        {
            std::io::ErrorKind::NotFound => {
                Error::Unsupported { feature: "tun/tap", detail: format!("{TUN_PATH} does not exist") }
            }
            _ => Error::os("open", TUN_PATH, e),
        })?;
    let fd = OwnedFd::from(file);
    let mut bits = flags.bits();
    if exclusive {
        bits |= libc::IFF_TUN_EXCL as libc::c_short;
    }
    let mut req = ifreq(name, bits);
    // SAFETY: TUNSETIFF reads and writes one `struct ifreq`, which `req` is, for the duration
    // of the call; the fd is open (owned above).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut libc::ifreq) };
    match Errno::result(r) {
        Ok(_) => Ok(fd),
        Err(Errno::EBUSY) if exclusive => Err(Error::AlreadyExists { kind: "interface", name: name.to_owned() }),
        Err(Errno::EBUSY) => Err(Error::AlreadyExists { kind: "tap queue (device busy)", name: name.to_owned() }),
        Err(Errno::EINVAL) => Err(Error::InvalidArgument {
            op: "attach tap",
            reason: format!("{name} exists but is not a tap with these flags (multi-queue must match)"),
        }),
        Err(e) => Err(Error::os("TUNSETIFF", name, e)),
    }
}

/// Creates TAP `opts.name` inside `ns` and opens its queues; then sets its MTU, MAC and state
/// through `sock` (bound to `ns`). A name that is taken is [`Error::AlreadyExists`] and
/// nothing changes; on any later failure the device is removed again.
pub(crate) fn create(ns: &NetNs, sock: &Socket, opts: &TapOptions, alias: Option<&str>) -> Result<Tap> {
    opts.check()?;
    match sock.link(LinkRef::Name(&opts.name)) {
        Ok(_) => return Err(Error::AlreadyExists { kind: "interface", name: opts.name.clone() }),
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let flags = opts.flags();
    let queues = netns::hop(&NetNs::current()?, Target::Existing(ns), || {
        let first = open_queue(&opts.name, flags, true)?;
        let set = || -> Result<()> {
            let b = first.as_fd();
            if let Some(uid) = opts.owner {
                ioctl_int(b, TUNSETOWNER, uid.into()).map_err(|e| Error::os("TUNSETOWNER", &opts.name, e))?;
            }
            if let Some(gid) = opts.group {
                ioctl_int(b, TUNSETGROUP, gid.into()).map_err(|e| Error::os("TUNSETGROUP", &opts.name, e))?;
            }
            if opts.persistent {
                ioctl_int(b, TUNSETPERSIST, 1).map_err(|e| Error::os("TUNSETPERSIST", &opts.name, e))?;
            }
            Ok(())
        };
        // On failure `first` closes, and the (not yet persistent) device goes with it.
        set()?;
        let mut queues = vec![first];
        for _ in 1..opts.queues {
            match open_queue(&opts.name, flags, false) {
                Ok(q) => queues.push(q),
                Err(e) => {
                    unpersist(&queues[0], opts.persistent);
                    return Err(e);
                }
            }
        }
        Ok(queues)
    })?;
    let finish = || -> Result<u32> {
        let index = sock.link(LinkRef::Name(&opts.name))?.index;
        // Born down: the address-generation mode must be set before the first up.
        let mut change = link::LinkChange::new().ipv6_link_local(opts.ipv6_link_local);
        if let Some(m) = opts.mtu {
            change = change.mtu(m);
        }
        if let Some(mac) = opts.mac {
            change = change.mac(mac);
        }
        if let Some(a) = alias {
            change = change.alias(a);
        }
        sock.set_link(LinkRef::Index(index), &change)?;
        if opts.up {
            sock.set_link(LinkRef::Index(index), &link::LinkChange::new().up(true))?;
        }
        Ok(index)
    };
    match finish() {
        Ok(index) => Ok(Tap { name: opts.name.clone(), index, queues }),
        Err(e) => {
            unpersist(&queues[0], opts.persistent);
            Err(e)
        }
    }
}

/// Turns persistence off so the device disappears with its last fd (rollback).
fn unpersist(fd: &OwnedFd, persistent: bool) {
    if persistent && let Err(e) = ioctl_int(fd.as_fd(), TUNSETPERSIST, 0) {
        log::warn!("rollback: cannot clear TUNSETPERSIST: {e}");
    }
}

/// Re-opens `queues` queues of the existing TAP `name` inside `ns` with the flags it was created
/// with (read from the kernel), e.g. after an engine restart. Kernel state does not change
/// (the queues attach to the device as the originals did). A missing device is
/// [`Error::NotFound`]; a device that is not a TAP, or more than one queue on a single-queue
/// TAP, is [`Error::InvalidArgument`].
pub(crate) fn reopen(ns: &NetNs, sock: &Socket, name: &str, queues: u16) -> Result<Tap> {
    validate::ifname(name)?;
    check_queues(queues)?;
    let (index, info) = info(sock, name)?;
    let info = info
        .filter(|i| i.tap)
        .ok_or_else(|| Error::InvalidArgument { op: "open tap", reason: format!("{name} is not a tap device") })?;
    if queues > 1 && !info.multi_queue {
        return Err(Error::InvalidArgument {
            op: "open tap",
            reason: format!("{name} is a single-queue tap; {queues} queues asked"),
        });
    }
    let flags = TapFlags { no_pi: info.no_pi, vnet_hdr: info.vnet_hdr, multi_queue: info.multi_queue };
    let fds = netns::hop(&NetNs::current()?, Target::Existing(ns), || {
        (0..queues).map(|_| open_queue(name, flags, false)).collect::<Result<Vec<_>>>()
    })?;
    Ok(Tap { name: name.to_owned(), index, queues: fds })
}

/// The ifindex of link `name` and, when it is a tun/tap device, what the kernel reports about
/// it. A missing link is [`Error::NotFound`].
pub(crate) fn info(sock: &Socket, name: &str) -> Result<(u32, Option<TapInfo>)> {
    let replies = sock.query(link::get(LinkRef::Name(name))?).map_err(|e| {
        if e.errno() == Some(Errno::ENODEV) { Error::NotFound { kind: "interface", name: name.to_owned() } } else { e }
    })?;
    let msg = replies
        .iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l),
            _ => None,
        })
        .ok_or_else(|| Error::NotFound { kind: "interface", name: name.to_owned() })?;
    Ok((msg.header.index, tap_info(msg)))
}

/// Decodes `IFLA_INFO_DATA` of a `tun` link (netlink-packet-route leaves it undecoded).
pub(crate) fn tap_info(msg: &LinkMessage) -> Option<TapInfo> {
    let infos = msg.attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(i) => Some(i),
        _ => None,
    })?;
    let data = infos.iter().find_map(|i| match i {
        LinkInfo::Data(InfoData::Tun(d)) => Some(d),
        _ => None,
    })?;
    let mut t = TapInfo::default();
    for nla in data {
        let InfoTun::Other(raw) = nla else { continue };
        let mut v = vec![0u8; raw.value_len()];
        raw.emit_value(&mut v);
        let byte = v.first().copied().unwrap_or(0) != 0;
        let word = v.get(..4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
        match raw.kind() {
            IFLA_TUN_TYPE => t.tap = v.first() == Some(&(libc::IFF_TAP as u8)),
            IFLA_TUN_PI => t.no_pi = !byte,
            IFLA_TUN_VNET_HDR => t.vnet_hdr = byte,
            IFLA_TUN_PERSIST => t.persistent = byte,
            IFLA_TUN_MULTI_QUEUE => t.multi_queue = byte,
            IFLA_TUN_NUM_QUEUES => t.attached_queues = word.unwrap_or(0),
            IFLA_TUN_OWNER => t.owner = word.filter(|&u| u != u32::MAX),
            IFLA_TUN_GROUP => t.group = word.filter(|&g| g != u32::MAX),
            _ => {}
        }
    }
    Some(t)
}
