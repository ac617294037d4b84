//! [`LoadBalancer`] for [`NetnsSandbox`]: the state is read from the kernel once per handle
//! and kept as a mirror that every transaction proves current — each batch names the ruleset
//! generation the mirror was read at, and the kernel refuses it (`ERESTART`) if anything changed
//! the ruleset since; then the mirror is read again and the change planned anew.
//!
//! Also the masquerade API for the CNI plugin (`ipMasq`), in its own table.

use std::net::IpAddr;

use ipnet::IpNet;
use log::{debug, warn};
use parking_lot::Mutex;

use super::model::{LbState, Op};
use super::nft::{self, MASQ_TABLE};
use super::{Backend, LbChange, LoadBalancer, Protocol, PublishedPort, ServiceInfo, ServiceKey};
use crate::error::{Error, Result};
use crate::netlink::nftables::expr::{Expr, Reg, meta};
use crate::netlink::nftables::socket::is_stale;
use crate::netlink::nftables::{Batch, ChainSpec, CmpOp, Family, Hook, NftSocket, Payload};
use crate::netns::{NetNs, run_in};
use crate::sandbox::{NetnsSandbox, Sandbox, SandboxType};
use crate::sysctl;

/// A sandbox's nf_tables socket and the mirror of its load balancer.
pub(crate) struct LbConn {
    sock: NftSocket,
    state: LbState,
    genid: u32,
}

/// Where a [`NetnsSandbox`] keeps its [`LbConn`] (opened on first use).
pub(crate) type LbSlot = Mutex<Option<LbConn>>;

/// Sysctls of a load-balancer sandbox: forwarding (backends are elsewhere), and no ARP answers
/// for the VIP on the loopback from the other interfaces.
const LB_SYSCTLS: [(&str, &str); 4] = [
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    ("net.ipv4.conf.all.arp_ignore", "1"),
    ("net.ipv4.conf.all.arp_announce", "2"),
];

fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

impl LbConn {
    fn open(ns: &NetNs, label: &str) -> Result<LbConn> {
        let sock = run_in(ns, NftSocket::open)??.labelled(label);
        let (state, genid) = nft::load(&sock)?;
        Ok(LbConn { sock, state, genid })
    }

    fn reload(&mut self) -> Result<()> {
        (self.state, self.genid) = nft::load(&self.sock)?;
        Ok(())
    }

    /// Plans with `plan` against the mirror, commits, applies. Retried when the mirror was stale.
    fn change(&mut self, plan: &dyn Fn(&LbState) -> Result<Vec<Op>>) -> Result<Vec<Op>> {
        for _ in 0..4 {
            let ops = plan(&self.state)?;
            if ops.is_empty() {
                return Ok(ops);
            }
            let mut batch = nft::encode(&ops);
            match self.sock.commit(&mut batch, self.genid) {
                Ok(()) => {
                    self.state.apply(&ops);
                    self.genid = self.genid.wrapping_add(1).max(1);
                    return Ok(ops);
                }
                Err(e) if is_stale(&e) => {
                    debug!("nf_tables ruleset changed under the load balancer; reading it again");
                    self.reload()?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Protocol { op: "load balancer change", detail: "the ruleset kept changing concurrently".into() })
    }
}

impl LbConn {
    /// Commits `ops` planned against the mirror at generation `at`, then takes `after` (the
    /// state they lead to) as the mirror. Planned anew with `plan` if the mirror changed since.
    fn change_planned(
        &mut self,
        ((ops, after), at): ((Vec<Op>, LbState), u32),
        plan: &dyn Fn(&LbState) -> Result<Vec<Op>>,
    ) -> Result<Vec<Op>> {
        if at != self.genid {
            return self.change(plan);
        }
        if ops.is_empty() {
            return Ok(ops);
        }
        match self.sock.commit(&mut nft::encode(&ops), self.genid) {
            Ok(()) => {
                self.state = after;
                self.genid = self.genid.wrapping_add(1).max(1);
                Ok(ops)
            }
            Err(e) if is_stale(&e) => {
                debug!("nf_tables ruleset changed under the load balancer; reading it again");
                self.reload()?;
                self.change(plan)
            }
            Err(e) => Err(e),
        }
    }
}

impl NetnsSandbox {
    /// Runs `f` on the sandbox's load-balancer connection (opened and read on first use). `f`
    /// must not call back into the sandbox: the sandbox's state lock is held meanwhile.
    fn lb<T>(&self, f: impl FnOnce(&mut LbConn) -> Result<T>) -> Result<T> {
        self.with_lb(|slot, ns| {
            let mut g = slot.lock();
            if g.is_none() {
                *g = Some(LbConn::open(&ns()?, self.key())?);
            }
            match g.as_mut() {
                Some(c) => f(c),
                None => Err(Error::Protocol { op: "load balancer", detail: "no connection".into() }),
            }
        })
    }

    /// Sysctls for a sandbox that gets its first service (idempotent: unchanged keys are not
    /// written).
    fn prepare_lb(&self) -> Result<()> {
        if self.lb(|c| Ok(c.state.table))? {
            return Ok(());
        }
        let ns = self.with_netns(|ns| ns.try_clone())??;
        for (k, o) in sysctl::apply(Some(&ns), &LB_SYSCTLS)? {
            if matches!(o, sysctl::Outcome::Missing | sysctl::Outcome::ReadOnly) {
                warn!("sandbox {}: load-balancer sysctl {k} could not be set ({o:?})", self.key());
            }
        }
        self.apply_os_tweaks(&[SandboxType::LoadBalancer]).map(drop)
    }

    fn vips(&self) -> Result<std::collections::BTreeSet<IpAddr>> {
        self.lb(|c| Ok(c.state.services.keys().map(|k| k.vip).collect()))
    }
}

impl LoadBalancer for NetnsSandbox {
    fn add_service(&self, svc: &ServiceKey) -> Result<()> {
        self.lb(|c| c.state.plan_add_service(svc).map(drop))?;
        self.prepare_lb()?;
        let before = self.vips()?;
        self.lb(|c| c.change(&|st| st.plan_add_service(svc)))?;
        if !before.contains(&svc.vip) {
            match self.add_alias_ip(self.loopback_name(), host_net(svc.vip)) {
                Ok(()) => {}
                Err(e) if e.is_already_exists() => {}
                Err(e) => {
                    // Undo the transaction so the call changes nothing.
                    let _ = self.lb(|c| c.change(&|st| st.plan_remove_service(svc)));
                    return Err(e);
                }
            }
        }
        debug!("sandbox {}: service {svc} added", self.key());
        Ok(())
    }

    fn remove_service(&self, svc: &ServiceKey) -> Result<()> {
        let before = self.vips()?;
        self.lb(|c| c.change(&|st| st.plan_remove_service(svc)))?;
        sync_aliases(self, &before, &self.vips()?)
    }

    fn add_backend(&self, svc: &ServiceKey, backend: &Backend) -> Result<()> {
        self.lb(|c| c.change(&|st| st.plan_add_backend(svc, backend)).map(drop))
    }

    fn remove_backend(&self, svc: &ServiceKey, ip: IpAddr, port: u16) -> Result<()> {
        self.lb(|c| c.change(&|st| st.plan_remove_backend(svc, (ip, port))).map(drop))
    }

    fn drain_backend(&self, svc: &ServiceKey, ip: IpAddr, port: u16) -> Result<()> {
        self.lb(|c| c.change(&|st| st.plan_drain_backend(svc, (ip, port))).map(drop))
    }

    fn publish_port(&self, port: &PublishedPort) -> Result<()> {
        self.lb(|c| c.change(&|st| st.plan_publish(port)).map(drop))
    }

    fn unpublish_port(&self, iface: &str, proto: Protocol, port: u16) -> Result<()> {
        self.lb(|c| c.change(&|st| st.plan_unpublish(iface, proto, port)).map(drop))
    }

    fn lb_apply(&self, changes: &[LbChange]) -> Result<()> {
        // Planned once, before the sysctls (bad input changes nothing); the plan and the state it
        // leads to are used as they are unless the mirror moved on meanwhile.
        let (before, planned) = self.lb(|c| {
            let before: std::collections::BTreeSet<IpAddr> = c.state.services.keys().map(|k| k.vip).collect();
            Ok((before, (c.state.plan_many_state(changes)?, c.genid)))
        })?;
        if changes.iter().any(|ch| matches!(ch, LbChange::AddService(_))) {
            self.prepare_lb()?;
        }
        self.lb(|c| c.change_planned(planned, &|st| st.plan_many(changes)))?;
        sync_aliases(self, &before, &self.vips()?)
    }

    fn lb_services(&self) -> Result<Vec<ServiceInfo>> {
        self.lb_restore()
    }

    fn lb_published(&self) -> Result<Vec<PublishedPort>> {
        self.lb(|c| {
            c.reload()?;
            Ok(c.state.published())
        })
    }

    fn lb_restore(&self) -> Result<Vec<ServiceInfo>> {
        self.lb(|c| {
            c.reload()?;
            Ok(c.state.services())
        })
    }

    fn lb_clear(&self) -> Result<()> {
        let before = match self.vips() {
            Ok(v) => v,
            // A table this version cannot read (an older layout, or edited by hand): deleted whole,
            // without a mirror.
            Err(e) if nft::is_unreadable(&e) => {
                warn!("sandbox {}: clearing a load-balancer table it cannot read: {e}", self.key());
                return self.with_lb(|slot, ns| {
                    run_in(&ns()?, NftSocket::open)??.commit(&mut nft::encode_clear(), 0)?;
                    *slot.lock() = None;
                    Ok(())
                });
            }
            Err(e) => return Err(e),
        };
        self.lb(|c| {
            if !c.state.table {
                return Ok(());
            }
            c.sock.commit(&mut nft::encode_clear(), c.genid).or_else(|e| {
                if is_stale(&e) {
                    c.reload()?;
                    c.sock.commit(&mut nft::encode_clear(), c.genid)
                } else {
                    Err(e)
                }
            })?;
            c.state = LbState::default();
            c.genid = c.genid.wrapping_add(1).max(1);
            Ok(())
        })?;
        sync_aliases(self, &before, &Default::default())
    }
}

/// Puts the VIPs in `after` but not `before` on the loopback and takes those gone off it.
pub(crate) fn sync_aliases(
    sb: &dyn Sandbox,
    before: &std::collections::BTreeSet<IpAddr>,
    after: &std::collections::BTreeSet<IpAddr>,
) -> Result<()> {
    for vip in after.difference(before) {
        match sb.add_alias_ip(sb.loopback_name(), host_net(*vip)) {
            Err(e) if !e.is_already_exists() => return Err(e),
            _ => {}
        }
    }
    for vip in before.difference(after) {
        match sb.remove_alias_ip(sb.loopback_name(), host_net(*vip)) {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

// ---- masquerade (CNI ipMasq) ----

const MASQ_COMMENT: &str = "netsandbox masquerade";

fn check_masq_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 200
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            op: "masquerade",
            reason: format!("id {id:?} must be 1-200 characters of [A-Za-z0-9._:-]"),
        })
    }
}

fn masq_socket(ns: Option<&NetNs>) -> Result<NftSocket> {
    match ns {
        Some(ns) => run_in(ns, NftSocket::open)?,
        None => NftSocket::open(),
    }
}

fn net_match(offset: u32, net: &IpNet, op: CmpOp, reg: u8) -> [Expr; 3] {
    let (addr, mask, len) = match net {
        IpNet::V4(n) => (n.network().octets().to_vec(), n.netmask().octets().to_vec(), 4),
        IpNet::V6(n) => (n.network().octets().to_vec(), n.netmask().octets().to_vec(), 16),
    };
    let zero = vec![0; mask.len()];
    [
        Expr::Payload { base: Payload::Network, offset, len, dreg: Reg::R32(reg) },
        Expr::Bitwise { sreg: Reg::R32(reg), dreg: Reg::R32(reg), mask, xor: zero },
        Expr::Cmp { sreg: Reg::R32(reg), op, data: addr },
    ]
}

/// Masquerades traffic from `subnet` that leaves it (multicast excluded), as the CNI bridge
/// plugin's `ipMasq` does: one base chain `masq-<id>` in table `inet netsandbox-masq` of the
/// namespace `ns` (`None`: the calling thread's), added in one transaction. `id` names the
/// entry (e.g. the CNI network and container id); an existing `id` is `AlreadyExists`.
pub fn add_masquerade(ns: Option<&NetNs>, id: &str, subnet: IpNet) -> Result<()> {
    check_masq_id(id)?;
    crate::validate::host_cidr(&IpNet::from(subnet.addr()))
        .map_err(|_| Error::InvalidAddress { input: subnet.to_string(), reason: "not a unicast subnet".into() })?;
    let subnet = subnet.trunc();
    let (p, src, dst) = match subnet {
        IpNet::V4(_) => (2u8, 12, 16),
        IpNet::V6(_) => (10u8, 8, 24),
    };
    let mut e = vec![
        Expr::Meta { key: meta::NFPROTO, dreg: Reg::R32(0) },
        Expr::Cmp { sreg: Reg::R32(0), op: CmpOp::Eq, data: vec![p] },
    ];
    e.extend(net_match(src, &subnet, CmpOp::Eq, 0));
    e.extend(net_match(dst, &subnet, CmpOp::Neq, 0));
    let multicast: IpNet = if subnet.addr().is_ipv4() {
        IpNet::V4("224.0.0.0/4".parse().map_err(|_| Error::Protocol { op: "masquerade", detail: "constant".into() })?)
    } else {
        IpNet::V6("ff00::/8".parse().map_err(|_| Error::Protocol { op: "masquerade", detail: "constant".into() })?)
    };
    e.extend(net_match(dst, &multicast, CmpOp::Neq, 0));
    e.push(Expr::Masq);
    let mut b = Batch::new();
    b.add_table(Family::Inet, MASQ_TABLE, Some("netsandbox masquerade"));
    b.add_chain(
        &ChainSpec {
            family: Family::Inet,
            table: MASQ_TABLE.into(),
            name: format!("masq-{id}"),
            hook: Some((Hook::Postrouting, 100, "nat")),
            comment: Some(format!("{MASQ_COMMENT} {subnet}")),
        },
        true,
    );
    b.add_rule(Family::Inet, MASQ_TABLE, &format!("masq-{id}"), &e, None);
    masq_socket(ns)?.commit(&mut b, 0).map_err(|e| match e.errno() {
        Some(nix::errno::Errno::EEXIST) => Error::AlreadyExists { kind: "masquerade", name: id.to_owned() },
        _ => e,
    })
}

/// Removes the masquerade entry `id` (one transaction; the table goes with its last entry).
/// A missing `id` is `NotFound`.
pub fn remove_masquerade(ns: Option<&NetNs>, id: &str) -> Result<()> {
    check_masq_id(id)?;
    let sock = masq_socket(ns)?;
    let not_found = || Error::NotFound { kind: "masquerade", name: id.to_owned() };
    for _ in 0..4 {
        let g = sock.genid()?;
        let chains = match sock.chains(Family::Inet, MASQ_TABLE) {
            Ok(c) => c,
            Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => return Err(not_found()),
            Err(e) => return Err(e),
        };
        let name = format!("masq-{id}");
        if !chains.iter().any(|c| c.name == name) {
            return Err(not_found());
        }
        let mut b = Batch::new();
        if chains.len() == 1 {
            b.del_table(Family::Inet, MASQ_TABLE);
        } else {
            b.del_chain(Family::Inet, MASQ_TABLE, &name);
        }
        match sock.commit(&mut b, g) {
            Err(e) if is_stale(&e) => continue,
            r => return r,
        }
    }
    Err(Error::Protocol { op: "remove masquerade", detail: "the ruleset kept changing concurrently".into() })
}

/// The masquerade entries: `(id, subnet)`.
pub fn list_masquerade(ns: Option<&NetNs>) -> Result<Vec<(String, IpNet)>> {
    let sock = masq_socket(ns)?;
    let chains = match sock.chains(Family::Inet, MASQ_TABLE) {
        Ok(c) => c,
        Err(e) if e.errno() == Some(nix::errno::Errno::ENOENT) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(chains
        .into_iter()
        .filter_map(|c| {
            let id = c.name.strip_prefix("masq-")?.to_owned();
            let net = c.comment?.strip_prefix(MASQ_COMMENT)?.trim().parse().ok()?;
            Some((id, net))
        })
        .collect())
}
