//! [`VmSandbox`] for [`FakeSandbox`]: TAPs and attachments in memory, after the same checks as
//! the kernel implementation (`vm/check.rs`), changing the fake's interfaces as the kernel's
//! change:
//!
//! - a TAP (or macvtap, or bridge) the VM API makes is an interface of the sandbox (listed by
//!   `interfaces()`, `created: true`, a name that is then taken);
//! - tc mode: a TAP with the interface's MTU; the interface keeps its addresses and routes, and
//!   both get an "ingress qdisc" (a second tc attach is `AlreadyExists(ingress qdisc)`);
//! - bridge mode: a bridge (with [`DHCP_SERVER_ADDRESS`]) joining the interface and the TAP; the
//!   interface's addresses, its routes, and the gateways and static routes through it are taken
//!   off and kept, and it gets a new MAC (the guest gets the original);
//! - macvtap mode: a macvtap with the interface's MAC, which gets a new one; addresses and
//!   routes taken off as in bridge mode;
//! - detach puts back exactly what was there.
//!
//! Queue "fds": the fake cannot make TAPs, so each queue is one end of a fresh `AF_UNIX`
//! socketpair (close-on-exec, harmless to read, write or hand on); the fake keeps the other end
//! (until detach) and counts a TAP's queue as attached while the caller's end is open. So [`TapInfo::attached_queues`] drops
//! as the caller closes queues, and a non-persistent TAP disappears with its last queue, as on
//! the kernel. Deliberate differences: ifindexes are the fake's own counter (from 2 in order of
//! first use), new MACs are the fake's deterministic ones, addresses are listed sorted, and the
//! guest's routes are reported as netsandbox's own routes appear (main table, its protocol numbers).

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::{AsRawFd, OwnedFd};

use ipnet::IpNet;
use nix::errno::Errno;
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType};

use super::check::{self, Target};
use super::{
    AttachMode, AttachOptions, DHCP_SERVER_ADDRESS, Tap, TapInfo, TapOptions, VmAttachment, VmNetwork, VmRoute,
    VmSandbox,
};
use crate::error::{Error, Result};
use crate::sandbox::FakeSandbox;
use crate::sandbox::check::LOOPBACK;
use crate::sandbox::fake::{Stripped, VmView};
use crate::validate;

const DEFAULT_MTU: u32 = 1500;

/// The VM API's part of a [`FakeSandbox`]'s state.
#[derive(Debug, Default)]
pub(crate) struct FakeVm {
    indices: BTreeMap<String, u32>,
    last_index: u32,
    taps: BTreeMap<String, FakeTap>,
    /// By interface name.
    attachments: BTreeMap<String, Attachment>,
    /// Links with an ingress qdisc.
    ingress: BTreeSet<String>,
}

#[derive(Debug)]
struct FakeTap {
    info: TapInfo,
    /// The fake's ends of the queues' socketpairs.
    peers: Vec<OwnedFd>,
}

#[derive(Debug)]
struct Attachment {
    mode: AttachMode,
    queues: u16,
    vnet_hdr: bool,
    tap: String,
    bridge: Option<String>,
    /// The interface's MAC before.
    mac: [u8; 6],
    /// What bridge and macvtap modes took off, and the guest's routes then.
    taken: Option<(Stripped, Vec<VmRoute>)>,
    /// The fake's ends of a macvtap's queues (a TAP's are in [`FakeVm::taps`]).
    peers: Vec<OwnedFd>,
}

impl FakeVm {
    fn index(&mut self, name: &str) -> u32 {
        if let Some(i) = self.indices.get(name) {
            return *i;
        }
        self.last_index = self.last_index.max(1) + 1;
        self.indices.insert(name.to_owned(), self.last_index);
        self.last_index
    }
}

/// One queue: the caller's end and the fake's.
fn queue_pair() -> Result<(OwnedFd, OwnedFd)> {
    nix::sys::socket::socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::os("socketpair", "fake tap queue", e))
}

fn queue_fds(n: u16) -> Result<(Vec<OwnedFd>, Vec<OwnedFd>)> {
    let mut mine = Vec::with_capacity(n.into());
    let mut theirs = Vec::with_capacity(n.into());
    for _ in 0..n {
        let (a, b) = queue_pair()?;
        theirs.push(a);
        mine.push(b);
    }
    Ok((theirs, mine))
}

/// True while the caller's end of the pair whose other end is `peer` is open.
fn caller_open(peer: &OwnedFd) -> bool {
    let mut b = [0u8; 1];
    !matches!(
        nix::sys::socket::recv(peer.as_raw_fd(), &mut b, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT),
        Ok(0) | Err(Errno::ECONNRESET)
    )
}

/// Forgets closed queues; a non-persistent TAP without queues is gone, as on the kernel.
fn sync(v: &mut VmView<'_>) {
    let mut gone = Vec::new();
    for (name, t) in &mut v.vm().taps {
        t.peers.retain(caller_open);
        if !t.info.persistent && t.peers.is_empty() {
            gone.push(name.clone());
        }
    }
    for name in gone {
        v.vm().taps.remove(&name);
        v.remove_device(&name);
    }
}

/// `None`: no such link; `Some(None)`: a link that is no tun/tap.
fn tap_found(v: &VmView<'_>, name: &str) -> Option<Option<TapInfo>> {
    v.taken(name)
        .then(|| v.vm_ref().taps.get(name).map(|t| TapInfo { attached_queues: t.peers.len() as u32, ..t.info }))
}

fn add_tap(v: &mut VmView<'_>, name: &str, info: TapInfo, queues: u16) -> Result<Vec<OwnedFd>> {
    let (theirs, mine) = queue_fds(queues)?;
    v.vm().taps.insert(name.to_owned(), FakeTap { info, peers: mine });
    Ok(theirs)
}

fn describe(v: &mut VmView<'_>, iface: &str) -> Result<VmNetwork> {
    let info = v.iface(iface).cloned().ok_or_else(|| Error::NotFound { kind: "interface", name: iface.to_owned() })?;
    let routes_now = v.routes_of(iface);
    let vm = v.vm();
    let a =
        vm.attachments.get(iface).ok_or_else(|| Error::NotFound { kind: "vm attachment", name: iface.to_owned() })?;
    let (mode, tap, bridge, queues, vnet_hdr, mac) =
        (a.mode, a.tap.clone(), a.bridge.clone(), a.queues, a.vnet_hdr, a.mac);
    let (addresses, routes) = match &a.taken {
        Some((s, r)) => (s.addresses().to_vec(), r.clone()),
        None => {
            let own =
                info.addresses.iter().filter(|a| !matches!(a, IpNet::V6(v6) if v6.addr().is_unicast_link_local()));
            (own.copied().collect(), routes_now)
        }
    };
    Ok(VmNetwork {
        iface: iface.to_owned(),
        iface_index: vm.index(iface),
        mode,
        tap_index: vm.index(&tap),
        tap,
        bridge,
        guest_mac: if mode == AttachMode::TcRedirect { info.mac.unwrap_or_default() } else { mac },
        mtu: info.mtu.unwrap_or(DEFAULT_MTU),
        queues,
        vnet_hdr,
        addresses,
        routes,
        dhcp_server: (mode == AttachMode::Bridge).then(|| DHCP_SERVER_ADDRESS.parse().ok()).flatten(),
    })
}

fn tap_info_for(queues: u16, vnet_hdr: bool, no_pi: bool, persistent: bool) -> TapInfo {
    TapInfo {
        tap: true,
        no_pi,
        vnet_hdr,
        persistent,
        multi_queue: queues > 1,
        attached_queues: 0,
        owner: None,
        group: None,
    }
}

impl VmSandbox for FakeSandbox {
    fn create_tap(&self, opts: &TapOptions) -> Result<Tap> {
        let mut v = self.vm_view()?;
        sync(&mut v);
        check::create_tap(opts, |n| Ok(v.taken(n)))?;
        let mac = match opts.mac {
            Some(m) => m,
            None => v.next_mac(),
        };
        let info = TapInfo {
            owner: opts.owner,
            group: opts.group,
            ..tap_info_for(opts.queues, opts.vnet_hdr, opts.no_pi, opts.persistent)
        };
        let queues = add_tap(&mut v, &opts.name, info, opts.queues)?;
        v.add_device(&opts.name, mac, opts.mtu.unwrap_or(DEFAULT_MTU), Vec::new());
        let index = v.vm().index(&opts.name);
        Ok(Tap { name: opts.name.clone(), index, queues })
    }

    fn open_tap(&self, name: &str, queues: u16) -> Result<Tap> {
        let mut v = self.vm_view()?;
        check::open_tap_input(name, queues)?;
        sync(&mut v);
        let found = tap_found(&v, name);
        check::open_tap(name, queues, found.as_ref().map(Option::as_ref))?;
        let (theirs, mine) = queue_fds(queues)?;
        if let Some(t) = v.vm().taps.get_mut(name) {
            t.peers.extend(mine);
        }
        let index = v.vm().index(name);
        Ok(Tap { name: name.to_owned(), index, queues: theirs })
    }

    fn tap_info(&self, name: &str) -> Result<TapInfo> {
        let mut v = self.vm_view()?;
        validate::ifname(name)?;
        sync(&mut v);
        let found = tap_found(&v, name);
        check::tap_info(name, found.as_ref().map(Option::as_ref))
    }

    fn vm_attach(&self, iface: &str, opts: &AttachOptions) -> Result<VmAttachment> {
        let mut v = self.vm_view()?;
        check::attach_input(iface, opts)?;
        sync(&mut v);
        let target = if iface == LOOPBACK {
            Some(Target { loopback: true, has_mac: false, has_master: false, ingress_qdisc: false, attached: false })
        } else {
            v.iface(iface).map(|i| (i.mac.is_some(), i.master.is_some())).map(|(has_mac, has_master)| Target {
                loopback: false,
                has_mac,
                has_master,
                ingress_qdisc: v.vm_ref().ingress.contains(iface),
                attached: v.vm_ref().attachments.contains_key(iface),
            })
        };
        check::attach_target(iface, opts.mode, target.as_ref())?;
        let info =
            v.iface(iface).cloned().ok_or_else(|| Error::NotFound { kind: "interface", name: iface.to_owned() })?;
        let index = v.vm().index(iface);
        let (tap, bridge) = check::device_names(opts, index);
        check::names_free(opts.mode, &tap, &bridge, |n| v.taken(n))?;
        let mac = info.mac.unwrap_or_default();
        let mtu = info.mtu.unwrap_or(DEFAULT_MTU);
        let tinfo = tap_info_for(opts.queues, opts.vnet_hdr, true, true);
        let mut a = Attachment {
            mode: opts.mode,
            queues: opts.queues,
            vnet_hdr: opts.vnet_hdr,
            tap: tap.clone(),
            bridge: None,
            mac,
            taken: None,
            peers: Vec::new(),
        };
        let queues = match opts.mode {
            AttachMode::TcRedirect => {
                let q = add_tap(&mut v, &tap, tinfo, opts.queues)?;
                let tap_mac = v.next_mac();
                v.add_device(&tap, tap_mac, mtu, Vec::new());
                v.vm().ingress.extend([iface.to_owned(), tap.clone()]);
                q
            }
            AttachMode::Bridge => {
                let q = add_tap(&mut v, &tap, tinfo, opts.queues)?;
                let dhcp: IpNet = DHCP_SERVER_ADDRESS.parse().map_err(|_| Error::InvalidAddress {
                    input: DHCP_SERVER_ADDRESS.into(),
                    reason: "does not parse".into(),
                })?;
                let br_mac = v.next_mac();
                v.add_device(&bridge, br_mac, mtu, vec![dhcp]);
                let routes = v.routes_of(iface);
                a.taken = Some((v.strip(iface), routes));
                let veth_mac = v.next_mac();
                v.set_mac(iface, veth_mac);
                let tap_mac = v.next_mac();
                v.add_device(&tap, tap_mac, mtu, Vec::new());
                v.set_master(&tap, Some(&bridge));
                v.set_master(iface, Some(&bridge));
                v.vm().index(&bridge);
                a.bridge = Some(bridge);
                q
            }
            AttachMode::Macvtap => {
                let (theirs, mine) = queue_fds(opts.queues)?;
                a.peers = mine;
                let veth_mac = v.next_mac();
                v.set_mac(iface, veth_mac);
                v.add_device(&tap, mac, mtu, Vec::new());
                let routes = v.routes_of(iface);
                a.taken = Some((v.strip(iface), routes));
                theirs
            }
        };
        v.vm().attachments.insert(iface.to_owned(), a);
        let network = describe(&mut v, iface)?;
        Ok(VmAttachment { network, queues })
    }

    fn vm_detach(&self, iface: &str) -> Result<()> {
        let mut v = self.vm_view()?;
        validate::ifname(iface)?;
        sync(&mut v);
        let found = v.taken(iface);
        check::attached(iface, found, v.vm_ref().attachments.contains_key(iface))?;
        let a = v
            .vm()
            .attachments
            .remove(iface)
            .ok_or_else(|| Error::NotFound { kind: "vm attachment", name: iface.to_owned() })?;
        v.vm().ingress.remove(iface);
        v.vm().ingress.remove(&a.tap);
        v.vm().taps.remove(&a.tap);
        v.remove_device(&a.tap);
        if let Some(b) = &a.bridge {
            v.remove_device(b);
        }
        v.set_master(iface, None);
        v.set_mac(iface, a.mac);
        if let Some((s, _)) = a.taken {
            v.unstrip(iface, s);
        }
        Ok(())
    }

    fn vm_inspect(&self, iface: &str) -> Result<VmNetwork> {
        let mut v = self.vm_view()?;
        validate::ifname(iface)?;
        sync(&mut v);
        let found = v.taken(iface);
        check::attached(iface, found, v.vm_ref().attachments.contains_key(iface))?;
        describe(&mut v, iface)
    }

    fn vm_list(&self) -> Result<Vec<VmNetwork>> {
        let mut v = self.vm_view()?;
        sync(&mut v);
        let names: Vec<String> = v.vm_ref().attachments.keys().cloned().collect();
        let mut out = names.iter().map(|n| describe(&mut v, n)).collect::<Result<Vec<_>>>()?;
        out.sort_by_key(|n| n.tap_index);
        Ok(out)
    }

    fn vm_recover(&self, iface: &str) -> Result<VmAttachment> {
        let network = self.vm_inspect(iface)?;
        let mut v = self.vm_view()?;
        let (theirs, mine) = queue_fds(network.queues)?;
        let vm = v.vm();
        if let Some(t) = vm.taps.get_mut(&network.tap) {
            t.peers.extend(mine);
        } else if let Some(a) = vm.attachments.get_mut(iface) {
            a.peers.extend(mine);
        }
        Ok(VmAttachment { network, queues: theirs })
    }
}
