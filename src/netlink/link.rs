//! Link requests: get, list, create (veth, bridge, macvlan, vxlan), change, move, delete.
//!
//! Builders return a [`Request`] so they can be sent alone or in a batch; the `Socket` methods
//! at the bottom are thin conveniences over them.

pub(crate) mod view;

pub use view::{Link, LinkKind, LinkStats};

use std::net::IpAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, In6AddrGenMode, InfoBridgePort, InfoData, InfoKind, InfoMacVlan, InfoMacVtap,
    InfoPortData, InfoPortKind, InfoVeth, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
    MacVtapMode, Prop,
};

use super::socket::{Dump, Request, Socket};
use super::view::FromReply;
use super::wire::{NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use crate::error::{Error, Result};
use crate::validate;

/// How the caller names a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRef<'a> {
    /// By interface index.
    Index(u32),
    /// By interface name.
    Name(&'a str),
}

impl std::fmt::Display for LinkRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkRef::Index(i) => write!(f, "ifindex {i}"),
            LinkRef::Name(n) => f.write_str(n),
        }
    }
}

fn message_for(link: LinkRef<'_>) -> LinkMessage {
    let mut m = LinkMessage::default();
    match link {
        LinkRef::Index(i) => m.header.index = i,
        LinkRef::Name(n) => m.attributes.push(LinkAttribute::IfName(n.to_owned())),
    }
    m
}

/// `RTM_GETLINK` for one link.
pub fn get(link: LinkRef<'_>) -> Result<Request> {
    if let LinkRef::Name(n) = link {
        validate::ifname(n)?;
    }
    Ok(Request::new("get link", link.to_string(), 0, RouteNetlinkMessage::GetLink(message_for(link))))
}

/// `RTM_GETLINK` dump of every link.
pub fn list() -> Request {
    Request::new("list links", "all", 0, RouteNetlinkMessage::GetLink(LinkMessage::default()))
}

/// `RTM_DELLINK` of every link in device group `group`, as one kernel batch: the kernel waits
/// for RCU once for all of them instead of once per link (tens of ms each). The default group
/// 0 is refused, since it holds every link nobody grouped.
pub fn delete_group(group: u32) -> Result<Request> {
    if group == 0 {
        return Err(Error::InvalidArgument {
            op: "delete link group",
            reason: "group 0 is every ungrouped link".into(),
        });
    }
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::Group(group));
    Ok(Request::new("delete link group", group.to_string(), 0, RouteNetlinkMessage::DelLink(m)))
}

/// `RTM_DELLINK`. Deleting one end of a veth deletes both.
pub fn delete(link: LinkRef<'_>) -> Result<Request> {
    if let LinkRef::Name(n) = link {
        validate::ifname(n)?;
    }
    Ok(Request::new("delete link", link.to_string(), 0, RouteNetlinkMessage::DelLink(message_for(link))))
}

/// Longest alternative name the kernel accepts (`ALTIFNAMSIZ` - 1).
pub const ALTNAME_MAX: usize = 127;

/// Checks an alternative name the way the kernel does: 1..=127 bytes, no `/`, `:`, whitespace,
/// NUL, not `.` or `..`.
pub fn check_altname(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name.len() > ALTNAME_MAX {
        Some("length not in 1..=127 bytes")
    } else if name == "." || name == ".." {
        Some("'.' and '..' are reserved")
    } else if name.chars().any(|c| c == '/' || c == ':' || c == '\0' || c.is_whitespace()) {
        Some("contains '/', ':', NUL or whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName { name: name.to_owned(), reason }),
        None => Ok(()),
    }
}

fn altname_message(link: LinkRef<'_>, name: &str) -> Result<LinkMessage> {
    if let LinkRef::Name(n) = link {
        validate::ifname(n)?;
    }
    check_altname(name)?;
    let mut m = message_for(link);
    m.attributes.push(LinkAttribute::PropList(vec![Prop::AltIfName(name.to_owned())]));
    Ok(m)
}

/// `RTM_NEWLINKPROP`: gives `link` the alternative name `name` (unique in its namespace; it
/// travels with the link to other namespaces).
pub fn add_altname(link: LinkRef<'_>, name: &str) -> Result<Request> {
    let m = altname_message(link, name)?;
    let what = format!("{link} {name}");
    Ok(Request::new("add altname", what, NLM_F_CREATE | NLM_F_EXCL, RouteNetlinkMessage::NewLinkProp(m)))
}

/// `RTM_DELLINKPROP`: removes the alternative name `name` from `link`.
pub fn delete_altname(link: LinkRef<'_>, name: &str) -> Result<Request> {
    let m = altname_message(link, name)?;
    Ok(Request::new("delete altname", format!("{link} {name}"), 0, RouteNetlinkMessage::DelLinkProp(m)))
}

/// A set of changes applied to one link by a single `RTM_NEWLINK`: the kernel applies them in the
/// order move → MAC → MTU → name → up/down → master, so a link can be moved and renamed at once.
#[derive(Debug, Default, Clone)]
pub struct LinkChange<'fd> {
    name: Option<String>,
    mac: Option<[u8; 6]>,
    mtu: Option<u32>,
    up: Option<bool>,
    allmulti: Option<bool>,
    master: Option<u32>,
    netns: Option<BorrowedFd<'fd>>,
    alias: Option<String>,
    ipv6_link_local: Option<bool>,
    group: Option<u32>,
    promisc: Option<bool>,
    hairpin: Option<bool>,
}

impl<'fd> LinkChange<'fd> {
    /// No change yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Rename (validated when the request is built).
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }
    /// Set the MAC address.
    pub fn mac(mut self, mac: [u8; 6]) -> Self {
        self.mac = Some(mac);
        self
    }
    /// Set the MTU.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = Some(mtu);
        self
    }
    /// Bring up (`true`) or down (`false`).
    pub fn up(mut self, up: bool) -> Self {
        self.up = Some(up);
        self
    }
    /// Receive all multicast (`IFF_ALLMULTI`) or not.
    pub fn allmulti(mut self, on: bool) -> Self {
        self.allmulti = Some(on);
        self
    }
    /// Enslave to the bridge with this index; 0 releases the link from its master.
    pub fn master(mut self, index: u32) -> Self {
        self.master = Some(index);
        self
    }
    /// Set the interface alias (`IFLA_IFALIAS`); an empty string removes it.
    pub fn alias(mut self, alias: &str) -> Self {
        self.alias = Some(alias.to_owned());
        self
    }
    /// Whether the kernel generates an IPv6 link-local address for the link (`addr_gen_mode`
    /// EUI-64 or none). The kernel applies this after up/down: to keep a link from ever getting
    /// one, send this while it is down, then bring it up in a later request.
    pub fn ipv6_link_local(mut self, yes: bool) -> Self {
        self.ipv6_link_local = Some(yes);
        self
    }
    /// Put the link in device group `group` (`IFLA_GROUP`; 0 is the default group).
    pub fn group(mut self, group: u32) -> Self {
        self.group = Some(group);
        self
    }
    /// Promiscuous mode on (`true`) or off (`IFF_PROMISC`).
    pub fn promisc(mut self, yes: bool) -> Self {
        self.promisc = Some(yes);
        self
    }
    /// For a bridge port: hairpin mode (`IFLA_BRPORT_MODE`), which lets the bridge send a frame
    /// back out of the port it came in on — what a container needs to reach itself through a
    /// service address. The link must already be a bridge port (the kernel says EOPNOTSUPP
    /// otherwise).
    pub fn hairpin(mut self, yes: bool) -> Self {
        self.hairpin = Some(yes);
        self
    }
    /// Move into the namespace behind `fd`.
    pub fn netns(mut self, fd: BorrowedFd<'fd>) -> Self {
        self.netns = Some(fd);
        self
    }

    /// Builds the request. The namespace fd, if any, must stay open until it is sent.
    pub fn request(&self, link: LinkRef<'_>) -> Result<Request> {
        if let Some(n) = &self.name {
            validate::ifname(n)?;
        }
        if let Some(mac) = &self.mac {
            validate::mac_bytes(mac)?;
        }
        if let Some(mtu) = self.mtu
            && !(68..=65535).contains(&mtu)
        {
            return Err(Error::InvalidArgument {
                op: "set link",
                reason: format!("MTU {mtu} out of range 68..=65535"),
            });
        }
        let mut m = message_for(link);
        if let (LinkRef::Index(_), Some(n)) = (link, &self.name) {
            m.attributes.push(LinkAttribute::IfName(n.clone()));
        } else if let (LinkRef::Name(_), Some(_)) = (link, &self.name) {
            return Err(Error::InvalidArgument { op: "set link", reason: "rename needs the link by index".into() });
        }
        if let Some(fd) = self.netns {
            m.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        if let Some(mac) = self.mac {
            m.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(mtu) = self.mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        for (flag, on) in
            [(LinkFlags::Up, self.up), (LinkFlags::Promisc, self.promisc), (LinkFlags::Allmulti, self.allmulti)]
        {
            if let Some(on) = on {
                m.header.change_mask |= flag;
                if on {
                    m.header.flags |= flag;
                }
            }
        }
        if let Some(h) = self.hairpin {
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(h)])),
            ]));
        }
        if let Some(master) = self.master {
            m.attributes.push(LinkAttribute::Controller(master));
        }
        if let Some(a) = &self.alias {
            if a.len() > 255 {
                return Err(Error::InvalidArgument { op: "set link", reason: "alias longer than 255 bytes".into() });
            }
            m.attributes.push(LinkAttribute::IfAlias(a.clone()));
        }
        if let Some(g) = self.group {
            m.attributes.push(LinkAttribute::Group(g));
        }
        if let Some(ll) = self.ipv6_link_local {
            let mode = if ll { In6AddrGenMode::Eui64 } else { In6AddrGenMode::None };
            m.attributes
                .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet6(vec![AfSpecInet6::AddrGenMode(mode)])]));
        }
        // RTM_SETLINK ignores IFLA_LINKINFO; port settings need RTM_NEWLINK on the existing link
        // (without NLM_F_CREATE it changes it, applying everything else the same way).
        let msg =
            if self.hairpin.is_some() { RouteNetlinkMessage::NewLink(m) } else { RouteNetlinkMessage::SetLink(m) };
        Ok(Request::new("set link", link.to_string(), 0, msg))
    }
}

/// The container end of a veth pair created by [`create_veth`].
#[derive(Debug, Clone, Default)]
pub struct VethPeer<'fd> {
    /// Its name (in its namespace).
    pub name: String,
    /// Its MAC address; the kernel picks a random one when `None`.
    pub mac: Option<[u8; 6]>,
    /// Its MTU.
    pub mtu: Option<u32>,
    /// Create it directly in this namespace (saves moving it later, which is slow).
    pub netns: Option<BorrowedFd<'fd>>,
    /// Ask for this ifindex in its namespace (saves a lookup; fails with EBUSY if taken).
    /// The kernel honours it only when `host_index` is given too.
    pub index: Option<u32>,
    /// Ask for this ifindex for the host end, in the namespace the request is sent to.
    pub host_index: Option<u32>,
    /// Create the host end up (the peer is always created down; bring it up afterwards).
    pub host_up: bool,
    /// Enslave the host end to the bridge with this index (in the namespace the request is
    /// sent to) as part of its creation.
    pub host_master: Option<u32>,
}

/// `RTM_NEWLINK` for a veth pair `name` ↔ `peer`. The peer cannot be created up (the kernel
/// configures it before pairing); bring it up afterwards.
pub fn create_veth(name: &str, mtu: Option<u32>, peer: &VethPeer<'_>) -> Result<Request> {
    validate::ifname(name)?;
    validate::ifname(&peer.name)?;
    let mut p = LinkMessage::default();
    p.header.index = peer.index.unwrap_or(0);
    p.attributes.push(LinkAttribute::IfName(peer.name.clone()));
    if let Some(mac) = peer.mac {
        validate::mac_bytes(&mac)?;
        p.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(mtu) = peer.mtu {
        p.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(fd) = peer.netns {
        p.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
    }
    let mut m = new_link(name, InfoKind::Veth, Some(InfoData::Veth(InfoVeth::Peer(p))));
    m.header.index = peer.host_index.unwrap_or(0);
    if peer.host_up {
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
    }
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    if let Some(master) = peer.host_master {
        m.attributes.push(LinkAttribute::Controller(master));
    }
    Ok(Request::new(
        "create veth",
        format!("{name} (peer {})", peer.name),
        NLM_F_CREATE | NLM_F_EXCL,
        RouteNetlinkMessage::NewLink(m),
    ))
}

/// `RTM_NEWLINK` for a bridge.
pub fn create_bridge(name: &str) -> Result<Request> {
    validate::ifname(name)?;
    let m = new_link(name, InfoKind::Bridge, None);
    Ok(Request::new("create bridge", name, NLM_F_CREATE | NLM_F_EXCL, RouteNetlinkMessage::NewLink(m)))
}

/// What a bridge can be given in its creating request ([`create_bridge_with`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BridgeCreate {
    /// MTU (`IFLA_MTU`); the kernel's default when `None`.
    pub mtu: Option<u32>,
    /// Born up (`IFF_UP`).
    pub up: bool,
    /// Promiscuous mode (`IFF_PROMISC`) set on or off; left as the kernel makes it when `None`.
    pub promisc: Option<bool>,
}

/// `RTM_NEWLINK` for a bridge with its MTU and flags set at creation (no window in which it
/// exists without them).
pub fn create_bridge_with(name: &str, opts: BridgeCreate) -> Result<Request> {
    validate::ifname(name)?;
    let mut m = new_link(name, InfoKind::Bridge, None);
    if let Some(mtu) = opts.mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    for (flag, on) in [(LinkFlags::Up, Some(opts.up)), (LinkFlags::Promisc, opts.promisc)] {
        if let Some(on) = on {
            m.header.change_mask |= flag;
            if on {
                m.header.flags |= flag;
            }
        }
    }
    Ok(Request::new("create bridge", name, NLM_F_CREATE | NLM_F_EXCL, RouteNetlinkMessage::NewLink(m)))
}

/// `RTM_NEWLINK` for a macvlan in bridge mode on `parent`.
pub fn create_macvlan(name: &str, parent: u32) -> Result<Request> {
    validate::ifname(name)?;
    let mut m =
        new_link(name, InfoKind::MacVlan, Some(InfoData::MacVlan(vec![InfoMacVlan::Mode(MacVlanMode::Bridge)])));
    m.attributes.push(LinkAttribute::Link(parent));
    Ok(Request::new("create macvlan", name, NLM_F_CREATE | NLM_F_EXCL, RouteNetlinkMessage::NewLink(m)))
}

/// `RTM_NEWLINK` for a macvtap in bridge mode on `parent`, with its MAC and MTU (a VM's
/// interface: its character device `/dev/tap<ifindex>` carries the guest's frames).
pub fn create_macvtap(name: &str, parent: u32, mac: Option<[u8; 6]>, mtu: Option<u32>) -> Result<Request> {
    validate::ifname(name)?;
    let mut m =
        new_link(name, InfoKind::MacVtap, Some(InfoData::MacVtap(vec![InfoMacVtap::Mode(MacVtapMode::Bridge)])));
    m.attributes.push(LinkAttribute::Link(parent));
    if let Some(mac) = mac {
        validate::mac_bytes(&mac)?;
        m.attributes.push(LinkAttribute::Address(mac.to_vec()));
    }
    if let Some(mtu) = mtu {
        m.attributes.push(LinkAttribute::Mtu(mtu));
    }
    Ok(Request::new("create macvtap", name, NLM_F_CREATE | NLM_F_EXCL, RouteNetlinkMessage::NewLink(m)))
}

/// Parameters of a VXLAN device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vxlan {
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// Local VTEP address.
    pub local: Option<IpAddr>,
    /// UDP destination port (4789 by default).
    pub port: u16,
    /// Underlay device index.
    pub underlay: Option<u32>,
    /// Learn remote MACs from traffic (overlay drivers usually disable this and program fdb).
    pub learning: bool,
}

/// `RTM_NEWLINK` for a VXLAN device.
pub fn create_vxlan(name: &str, v: &Vxlan) -> Result<Request> {
    validate::ifname(name)?;
    if v.vni >= 1 << 24 {
        return Err(Error::InvalidArgument { op: "create vxlan", reason: format!("VNI {} exceeds 24 bits", v.vni) });
    }
    let mut data = vec![InfoVxlan::Id(v.vni), InfoVxlan::Port(v.port), InfoVxlan::Learning(v.learning)];
    match v.local {
        Some(IpAddr::V4(a)) => data.push(InfoVxlan::Local(a)),
        Some(IpAddr::V6(a)) => data.push(InfoVxlan::Local6(a)),
        None => {}
    }
    if let Some(dev) = v.underlay {
        data.push(InfoVxlan::Link(dev));
    }
    let m = new_link(name, InfoKind::Vxlan, Some(InfoData::Vxlan(data)));
    Ok(Request::new(
        "create vxlan",
        format!("{name} vni {}", v.vni),
        NLM_F_CREATE | NLM_F_EXCL,
        RouteNetlinkMessage::NewLink(m),
    ))
}

fn new_link(name: &str, kind: InfoKind, data: Option<InfoData>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    let mut info = vec![LinkInfo::Kind(kind)];
    if let Some(d) = data {
        info.push(LinkInfo::Data(d));
    }
    m.attributes.push(LinkAttribute::LinkInfo(info));
    m
}

impl Socket {
    /// Looks up one link. A missing link is [`Error::NotFound`].
    pub fn link(&self, link: LinkRef<'_>) -> Result<Link> {
        self.query_view(get(link)?)
            .map_err(|e| not_found_as_typed(e, link))?
            .ok_or_else(|| Error::NotFound { kind: "link", name: link.to_string() })
    }

    /// Every link in this socket's namespace.
    pub fn links(&self) -> Result<Vec<Link>> {
        self.dump_views(list())
    }

    /// Every link with its operational state (`IFLA_OPERSTATE`, RFC 2863: 0 unknown when absent),
    /// which the [`Link`] view leaves out; from one dump.
    pub(crate) fn links_with_oper_state(&self) -> Result<Vec<(Link, u8)>> {
        let mut out = Vec::new();
        for m in self.dump(list())? {
            let RouteNetlinkMessage::NewLink(m) = m else { continue };
            let l = Link::from_message(&m).map_err(Error::from)?;
            let oper = m.attributes.iter().rev().find_map(|a| match a {
                LinkAttribute::OperState(s) => Some(u8::from(*s)),
                _ => None,
            });
            out.push((l, oper.unwrap_or(0)));
        }
        Ok(out)
    }

    /// Every link, best effort: when the table kept changing during every attempt, the last
    /// full pass flagged not [`consistent`](Dump::consistent) instead of
    /// [`Error::DumpInterrupted`].
    pub fn links_allow_interrupted(&self) -> Result<Dump<Link>> {
        self.dump_views_allow_interrupted(list())
    }

    /// Creates a veth pair ([`create_veth`]) and returns the new host end as the kernel echoes
    /// it back (`NLM_F_ECHO`), or `None` when it sent no such echo. Its [`Link::link`] is the
    /// peer's index in the peer's namespace, which saves a lookup there.
    pub fn create_veth_echoed(&self, name: &str, mtu: Option<u32>, peer: &VethPeer<'_>) -> Result<Option<Link>> {
        let mut req = create_veth(name, mtu, peer)?;
        req.flags |= NLM_F_ECHO;
        let echoed = self.query(req)?;
        Ok(echoed.iter().filter_map(Link::from_reply).filter_map(|r| r.ok()).find(|l| l.name == name))
    }

    /// Applies a [`LinkChange`].
    pub fn set_link(&self, link: LinkRef<'_>, change: &LinkChange<'_>) -> Result<()> {
        self.execute(change.request(link)?).map_err(|e| not_found_as_typed(e, link))
    }

    /// Deletes a link.
    pub fn delete_link(&self, link: LinkRef<'_>) -> Result<()> {
        self.execute(delete(link)?).map_err(|e| not_found_as_typed(e, link))
    }
}

/// The kernel says ENODEV for a missing link; callers want a typed "not found".
fn not_found_as_typed(e: Error, link: LinkRef<'_>) -> Error {
    if e.errno() == Some(nix::errno::Errno::ENODEV) {
        Error::NotFound { kind: "link", name: link.to_string() }
    } else {
        e
    }
}
