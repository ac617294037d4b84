//! [`HostBridge`]: a Linux bridge in the caller's own ("origin") namespace, the other side of the
//! veths that [`IfaceOptions::host_master`](super::IfaceOptions::host_master) attaches to it.
//!
//! The CLI's `bridge add|del`, the demo and a CNI plugin build the same host layout with it:
//! a bridge, up, optionally addressed (the sandboxes' gateway), every sandbox's host end a port.

use ipnet::IpNet;
use log::debug;

use crate::error::{Error, Result};
use crate::netlink::Socket;
use crate::netlink::addr::AddrOptions;
use crate::netlink::link::{self, LinkChange, LinkRef};
use crate::netlink::{BatchMode, Request, addr};
use crate::netlink::{Link, LinkKind};
use crate::validate;

/// How a [`HostBridge`] is set up. Default: no address, the kernel's MTU, up.
///
/// ```
/// use netsandbox::sandbox::BridgeOptions;
/// let opts = BridgeOptions::new()
///     .address("198.18.255.254/16".parse().unwrap())
///     .address("2001:db8::ffff/64".parse().unwrap())
///     .mtu(1500);
/// assert!(opts.check().is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeOptions {
    addresses: Vec<IpNet>,
    mtu: Option<u32>,
    up: bool,
    promisc: Option<bool>,
}

impl Default for BridgeOptions {
    fn default() -> Self {
        BridgeOptions { addresses: Vec::new(), mtu: None, up: true, promisc: None }
    }
}

impl BridgeOptions {
    /// No address, the kernel's MTU, brought up.
    pub fn new() -> Self {
        Self::default()
    }
    /// An address with its prefix (IPv4 or IPv6; IPv6 without DAD, usable at once). Repeatable.
    pub fn address(mut self, net: IpNet) -> Self {
        self.addresses.push(net);
        self
    }
    /// The bridge's MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
    /// Whether the bridge is brought up (default `true`).
    pub fn up(mut self, yes: bool) -> Self {
        self.up = yes;
        self
    }
    /// Promiscuous mode on the bridge device (the CNI bridge plugin's `promiscMode`), so the
    /// host sees frames between ports too. Left as the kernel has it when not set.
    pub fn promisc(mut self, yes: bool) -> Self {
        self.promisc = Some(yes);
        self
    }
    /// Checks every option without touching the kernel.
    pub fn check(&self) -> Result<()> {
        for a in &self.addresses {
            validate::host_cidr(a)?;
        }
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(Error::InvalidArgument {
                op: "bridge options",
                reason: format!("MTU {mtu} out of range 68..=65535"),
            });
        }
        Ok(())
    }
}

/// A bridge in the namespace of the calling thread (for the CLI: `--netns-root`, else the
/// caller's), which is the origin namespace of the sandboxes that thread creates or opens.
///
/// Guarantees: every constructor validates its input before any request is sent;
/// [`create`](Self::create) fails with [`Error::AlreadyExists`] and changes nothing when the
/// name is taken; [`ensure`](Self::ensure) is idempotent and never touches a link that is not a
/// bridge ([`Error::NotABridge`]); [`delete`](Self::delete) only ever deletes a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostBridge {
    name: String,
    index: u32,
}

impl HostBridge {
    /// Creates bridge `name` with `opts` (name, MTU and up state in one request, then the
    /// addresses in one batch). If a later step fails the bridge is deleted again.
    pub fn create(name: &str, opts: &BridgeOptions) -> Result<HostBridge> {
        validate::ifname(name)?;
        opts.check()?;
        let sock = Socket::open()?.labelled("origin");
        sock.execute(create_request(name, opts)?).map_err(|e| {
            if e.is_already_exists() { Error::AlreadyExists { kind: "link", name: name.to_owned() } } else { e }
        })?;
        let made = sock.link(LinkRef::Name(name)).and_then(|l| {
            let br = HostBridge { name: name.to_owned(), index: l.index };
            br.configure(&sock, opts, &[], false)?;
            Ok(br)
        });
        if made.is_err() {
            let _ = sock.delete_link(LinkRef::Name(name));
        }
        let br = made?;
        debug!("created host bridge {name} (ifindex {})", br.index);
        Ok(br)
    }

    /// Makes sure bridge `name` exists with `opts`: creates it when missing; otherwise sets the
    /// MTU, up state and promiscuity asked for and adds the addresses it lacks (addresses it has
    /// beyond those are left alone). Calling it twice with the same options changes nothing the
    /// second time.
    pub fn ensure(name: &str, opts: &BridgeOptions) -> Result<HostBridge> {
        validate::ifname(name)?;
        opts.check()?;
        let sock = Socket::open()?.labelled("origin");
        match bridge_link(&sock, name) {
            Ok(l) => {
                let have: Vec<IpNet> = sock.addresses(None, Some(l.index))?.into_iter().map(|a| a.addr).collect();
                let br = HostBridge { name: name.to_owned(), index: l.index };
                let change = l.mtu != opts.mtu.or(l.mtu) || l.up != opts.up || opts.promisc.is_some();
                br.configure(&sock, opts, &have, change)?;
                Ok(br)
            }
            Err(Error::NotFound { .. }) => match Self::create(name, opts) {
                // Someone else made it between our lookup and our create: check theirs instead.
                Err(e) if e.is_already_exists() => Self::ensure(name, opts),
                other => other,
            },
            Err(e) => Err(e),
        }
    }

    /// The existing bridge `name`: [`Error::NotFound`] when there is no such link,
    /// [`Error::NotABridge`] when it is another kind of link.
    pub fn open(name: &str) -> Result<HostBridge> {
        validate::ifname(name)?;
        let l = bridge_link(&Socket::open()?.labelled("origin"), name)?;
        Ok(HostBridge { name: name.to_owned(), index: l.index })
    }

    /// Deletes bridge `name` (its ports stay, released from it). [`Error::NotFound`] when there
    /// is no such link; a link that is not a bridge is [`Error::NotABridge`] and is kept.
    pub fn delete(name: &str) -> Result<()> {
        validate::ifname(name)?;
        let sock = Socket::open()?.labelled("origin");
        let l = bridge_link(&sock, name)?;
        sock.delete_link(LinkRef::Index(l.index)).map_err(|e| match e {
            Error::NotFound { .. } => Error::NotFound { kind: "bridge", name: name.to_owned() },
            e => e,
        })?;
        debug!("deleted host bridge {name}");
        Ok(())
    }

    /// Like [`delete`](Self::delete), but a missing bridge is success (`Ok(false)`).
    pub fn delete_if_exists(name: &str) -> Result<bool> {
        match Self::delete(name) {
            Ok(()) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The bridge's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its interface index in the origin namespace.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Link change (when `change`) and the addresses missing from `have`, in one send.
    fn configure(&self, sock: &Socket, opts: &BridgeOptions, have: &[IpNet], change: bool) -> Result<()> {
        let mut reqs: Vec<Request> = Vec::new();
        if change {
            let mut c = LinkChange::new().up(opts.up);
            if let Some(m) = opts.mtu {
                c = c.mtu(m);
            }
            if let Some(p) = opts.promisc {
                c = c.promisc(p);
            }
            reqs.push(c.request(LinkRef::Index(self.index))?);
        }
        for a in opts.addresses.iter().filter(|a| !have.contains(a)) {
            reqs.push(addr::add(self.index, a, AddrOptions { nodad: a.addr().is_ipv6(), ..Default::default() })?);
        }
        if reqs.is_empty() {
            return Ok(());
        }
        sock.batch(&reqs, BatchMode::StopAtFirstError)?.into_result()
    }
}

/// `RTM_NEWLINK` for the bridge with what can be set at creation: MTU, up, promiscuity.
fn create_request(name: &str, opts: &BridgeOptions) -> Result<Request> {
    link::create_bridge_with(name, link::BridgeCreate { mtu: opts.mtu, up: opts.up, promisc: opts.promisc })
}

/// The link `name` in `sock`'s namespace, checked to be a bridge.
pub(crate) fn bridge_link(sock: &Socket, name: &str) -> Result<Link> {
    let l = sock.link(LinkRef::Name(name)).map_err(|e| match e {
        Error::NotFound { .. } => Error::NotFound { kind: "bridge", name: name.to_owned() },
        e => e,
    })?;
    if l.kind != LinkKind::Bridge {
        return Err(Error::NotABridge { name: name.to_owned(), kind: kind_name(&l.kind) });
    }
    Ok(l)
}

/// The kernel's name for a link kind (`IFLA_INFO_KIND`), `"loopback"` for lo and `"none"` for a
/// device without one (physical).
pub(crate) fn kind_name(k: &LinkKind) -> String {
    match k {
        LinkKind::Veth => "veth".into(),
        LinkKind::Bridge => "bridge".into(),
        LinkKind::Macvlan => "macvlan".into(),
        LinkKind::Vxlan => "vxlan".into(),
        LinkKind::Loopback => "loopback".into(),
        LinkKind::Tun => "tun".into(),
        LinkKind::Other(s) => s.clone(),
        LinkKind::None => "none".into(),
    }
}
