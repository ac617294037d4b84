//! The load balancer's state and the one validation and planning path shared by the netns and
//! fake sandboxes: every request is checked against the state and turned into [`Op`]s; the
//! netns sandbox sends them as one nf_tables transaction, the fake applies them directly, and
//! both then call [`LbState::apply`].
//!
//! Weighted choice: a service has a fixed number S of *slots* (a power of two, at least
//! [`MIN_SLOTS`]); a packet picks slot `numgen random mod S`, and the slot's owner is the backend.
//! S does not follow every change of the weight total W: it stays put while `2·W ≤ S ≤ 8·W`
//! (re-sized to the next power of two ≥ `2·W` when W leaves that band, and never while no
//! backend is active), so the service's rule — which holds S — is not replaced by an ordinary
//! backend change. Replacing a rule costs the kernel a walk of every service chain (its
//! validation of the chain graph); replacing data-map elements costs nothing beyond them.
//!
//! Each active backend owns `⌊S·w/W⌋` or `⌈S·w/W⌉` slots (largest remainder decides which), so
//! its share of new connections is within `1/S` of `w/W` — at most `W/(S·w) ≤ 1/(2w)` off
//! relatively, since `S ≥ 2·W`. A change moves only the slots it must: a new backend takes its
//! share from the backends most over their new share; a removed or drained one's slots go to
//! those most under theirs. So a change touches O(S·w/W) = O(w) map elements, never the rest of
//! the service and never another service. A resize rewrites the service's slots and its rule;
//! it happens when W doubles or falls by a factor of four, so it is amortised over at least
//! W/2 changes. A drained backend owns no slots; an active one always owns at least two.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::{
    Backend, BackendInfo, BackendState, LbChange, MAX_WEIGHT, Protocol, PublishedPort, ServiceInfo, ServiceKey,
};
use crate::error::{Error, Result};
use crate::validate;

/// A backend's address in a service (its identity).
pub type BackendAddr = (IpAddr, u16);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Be {
    pub(crate) weight: u32,
    /// Slots this backend owns; empty while draining.
    pub(crate) slots: Vec<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Svc {
    pub(crate) backends: BTreeMap<BackendAddr, Be>,
    /// Owner of each slot `0..S` (S = the rule's modulus; 0 before the first backend). A slot
    /// has no owner only while no backend is active.
    pub(crate) slots: Vec<Option<BackendAddr>>,
}

impl Svc {
    /// Total weight of the active backends.
    fn active_weight(&self) -> u32 {
        self.backends.values().filter(|b| !b.slots.is_empty()).map(|b| b.weight).sum()
    }
}

/// Everything the load balancer holds, as read back from the kernel (or the fake).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LbState {
    pub(crate) table: bool,
    pub(crate) services: BTreeMap<ServiceKey, Svc>,
    pub(crate) published: BTreeMap<(String, Protocol, u16), ServiceKey>,
    /// The slot counts that have their chain, as `(IPv4, S)`: made on first use, kept with the
    /// table.
    pub(crate) classes: std::collections::BTreeSet<(bool, u32)>,
}

/// One change, in the order it must happen inside the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    CreateTable,
    /// The chain for services of S slots of one family (`v4`), before any service uses it.
    AddClass {
        v4: bool,
        size: u32,
    },
    AddService(ServiceKey),
    /// Deletes the service's own entry; its published ports, slots and backends go first, as
    /// ops of their own.
    DelService(ServiceKey),
    AddBackend(ServiceKey, Backend),
    DelBackend(ServiceKey, BackendAddr),
    /// Slot changes of a service: keys to delete, then `(slot, owner)` to add. `resize: Some(S)`
    /// replaces the service's rule with one of modulus S (and `del` lists every owned slot of
    /// the old size); `None` leaves the rule alone.
    Slots {
        svc: ServiceKey,
        del: Vec<u32>,
        add: Vec<(u32, BackendAddr)>,
        resize: Option<u32>,
    },
    /// A published port and its service's slot count.
    Publish(PublishedPort, u32),
    /// A published port's rule follows its service's new slot count (after a resize).
    Republish(PublishedPort, u32),
    Unpublish(PublishedPort),
}

fn check_ip(ip: IpAddr, what: &str) -> Result<()> {
    let bad = |reason: &str| Err(Error::InvalidAddress { input: ip.to_string(), reason: format!("{what}: {reason}") });
    if ip.is_unspecified() {
        return bad("unspecified address");
    }
    if ip.is_multicast() {
        return bad("multicast address");
    }
    if ip.is_loopback() {
        return bad("loopback address");
    }
    if matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
        return bad("broadcast address");
    }
    Ok(())
}

fn check_port(port: u16, op: &'static str) -> Result<()> {
    if port == 0 {
        return Err(Error::InvalidArgument { op, reason: "port 0".into() });
    }
    Ok(())
}

/// Checks a service key on its own.
pub fn check_service(svc: &ServiceKey) -> Result<()> {
    check_ip(svc.vip, "service VIP")?;
    check_port(svc.port, "service")
}

/// Checks a backend for `svc` on its own.
pub fn check_backend(svc: &ServiceKey, b: &Backend) -> Result<()> {
    check_ip(b.ip, "backend")?;
    check_port(b.port, "backend")?;
    if b.ip.is_ipv4() != svc.vip.is_ipv4() {
        return Err(Error::InvalidArgument {
            op: "add backend",
            reason: format!("backend {} is not of the VIP's family ({})", b.ip, svc.vip),
        });
    }
    if b.weight == 0 || b.weight > MAX_WEIGHT {
        return Err(Error::InvalidArgument {
            op: "add backend",
            reason: format!("weight {} out of range 1..={MAX_WEIGHT}", b.weight),
        });
    }
    Ok(())
}

fn no_service(svc: &ServiceKey) -> Error {
    Error::NotFound { kind: "service", name: svc.to_string() }
}

fn no_backend(svc: &ServiceKey, a: BackendAddr) -> Error {
    Error::NotFound { kind: "backend", name: format!("{} of {svc}", fmt_addr(a)) }
}

pub(crate) fn fmt_addr((ip, port): BackendAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

impl LbState {
    fn svc(&self, svc: &ServiceKey) -> Result<&Svc> {
        self.services.get(svc).ok_or_else(|| no_service(svc))
    }

    fn table_ops(&self) -> Vec<Op> {
        if self.table { Vec::new() } else { vec![Op::CreateTable] }
    }

    pub(crate) fn plan_add_service(&self, svc: &ServiceKey) -> Result<Vec<Op>> {
        check_service(svc)?;
        if self.services.contains_key(svc) {
            return Err(Error::AlreadyExists { kind: "service", name: svc.to_string() });
        }
        let mut ops = self.table_ops();
        ops.push(Op::AddService(*svc));
        Ok(ops)
    }

    pub(crate) fn plan_remove_service(&self, svc: &ServiceKey) -> Result<Vec<Op>> {
        check_service(svc)?;
        let s = self.svc(svc)?;
        let mut ops: Vec<Op> = self
            .published
            .iter()
            .filter(|(_, target)| *target == svc)
            .map(|((iface, proto, port), _)| {
                Op::Unpublish(PublishedPort { iface: iface.clone(), proto: *proto, port: *port, service: *svc })
            })
            .collect();
        if s.slots.iter().any(Option::is_some) {
            ops.push(rebalance(svc, s, &[]));
        }
        ops.extend(s.backends.keys().map(|a| Op::DelBackend(*svc, *a)));
        ops.push(Op::DelService(*svc));
        Ok(ops)
    }

    /// The checks of adding `b` to `svc`, whose backends not dealt slots yet weigh `pending`.
    fn check_add_backend(&self, svc: &ServiceKey, b: &Backend, pending: u32) -> Result<&Svc> {
        check_service(svc)?;
        check_backend(svc, b)?;
        let s = self.svc(svc)?;
        let addr = (b.ip, b.port);
        if s.backends.contains_key(&addr) {
            return Err(Error::AlreadyExists { kind: "backend", name: format!("{} of {svc}", fmt_addr(addr)) });
        }
        if s.active_weight() + pending + b.weight > MAX_SERVICE_WEIGHT {
            return Err(Error::InvalidArgument {
                op: "add backend",
                reason: format!("service {svc} would exceed {MAX_SERVICE_WEIGHT} weight units"),
            });
        }
        Ok(s)
    }

    pub(crate) fn plan_add_backend(&self, svc: &ServiceKey, b: &Backend) -> Result<Vec<Op>> {
        let s = self.check_add_backend(svc, b, 0)?;
        let addr = (b.ip, b.port);
        let mut active = active_weights(s, None);
        active.push((addr, b.weight));
        let mut ops = vec![Op::AddBackend(*svc, *b)];
        ops.extend(self.with_republish(rebalance(svc, s, &active)));
        Ok(ops)
    }

    /// `slots`, then (when it resizes the service) its published ports following the new size.
    fn with_republish(&self, slots: Op) -> Vec<Op> {
        let mut ops = Vec::new();
        if let Op::Slots { svc, resize: Some(size), .. } = &slots {
            let class = (svc.vip.is_ipv4(), *size);
            if !self.classes.contains(&class) {
                ops.push(Op::AddClass { v4: class.0, size: class.1 });
            }
            ops.extend(self.published.iter().filter(|(_, t)| *t == svc).map(|((iface, proto, port), _)| {
                Op::Republish(PublishedPort { iface: iface.clone(), proto: *proto, port: *port, service: *svc }, *size)
            }));
        }
        let at = ops.iter().take_while(|o| matches!(o, Op::AddClass { .. })).count();
        ops.insert(at, slots);
        ops
    }

    /// The slot changes that take `addr`'s slots out of `svc`.
    fn unslot(&self, svc: &ServiceKey, s: &Svc, addr: BackendAddr) -> Vec<Op> {
        self.with_republish(rebalance(svc, s, &active_weights(s, Some(addr))))
    }

    pub(crate) fn plan_drain_backend(&self, svc: &ServiceKey, addr: BackendAddr) -> Result<Vec<Op>> {
        check_service(svc)?;
        let s = self.svc(svc)?;
        let be = s.backends.get(&addr).ok_or_else(|| no_backend(svc, addr))?;
        if be.slots.is_empty() {
            return Ok(Vec::new()); // already draining
        }
        Ok(self.unslot(svc, s, addr))
    }

    pub(crate) fn plan_remove_backend(&self, svc: &ServiceKey, addr: BackendAddr) -> Result<Vec<Op>> {
        check_service(svc)?;
        let s = self.svc(svc)?;
        let be = s.backends.get(&addr).ok_or_else(|| no_backend(svc, addr))?;
        let mut ops = Vec::new();
        if !be.slots.is_empty() {
            ops.extend(self.unslot(svc, s, addr));
        }
        ops.push(Op::DelBackend(*svc, addr));
        Ok(ops)
    }

    pub(crate) fn plan_publish(&self, p: &PublishedPort) -> Result<Vec<Op>> {
        validate::ifname(&p.iface)?;
        check_port(p.port, "publish")?;
        check_service(&p.service)?;
        let s = self.svc(&p.service)?;
        if self.published.contains_key(&(p.iface.clone(), p.proto, p.port)) {
            return Err(Error::AlreadyExists { kind: "published port", name: p.to_string() });
        }
        Ok(vec![Op::Publish(p.clone(), s.slots.len() as u32)])
    }

    pub(crate) fn plan_unpublish(&self, iface: &str, proto: Protocol, port: u16) -> Result<Vec<Op>> {
        validate::ifname(iface)?;
        let k = (iface.to_owned(), proto, port);
        let service = *self
            .published
            .get(&k)
            .ok_or_else(|| Error::NotFound { kind: "published port", name: format!("{iface} {proto} {port}") })?;
        Ok(vec![Op::Unpublish(PublishedPort { iface: iface.to_owned(), proto, port, service })])
    }

    pub(crate) fn plan_change(&self, c: &LbChange) -> Result<Vec<Op>> {
        match c {
            LbChange::AddService(k) => self.plan_add_service(k),
            LbChange::RemoveService(k) => self.plan_remove_service(k),
            LbChange::AddBackend(k, b) => self.plan_add_backend(k, b),
            LbChange::RemoveBackend(k, ip, port) => self.plan_remove_backend(k, (*ip, *port)),
            LbChange::DrainBackend(k, ip, port) => self.plan_drain_backend(k, (*ip, *port)),
        }
    }

    /// Plans several changes as one transaction (each planned against the state the previous
    /// ones leave). Costs a copy of the state; single changes use the `plan_*` methods.
    pub(crate) fn plan_many(&self, changes: &[LbChange]) -> Result<Vec<Op>> {
        self.plan_many_state(changes).map(|(ops, _)| ops)
    }

    /// [`Self::plan_many`], also returning the state the ops lead to (what `apply` would make).
    pub(crate) fn plan_many_state(&self, changes: &[LbChange]) -> Result<(Vec<Op>, LbState)> {
        let mut st = self.clone();
        let mut all = Vec::new();
        // Services this batch adds, while it has only added backends to them: their slots are
        // dealt once, for the backends they end up with, instead of one rebalance (and a
        // resize or two) per backend — the same kind of layout a resize deals, planned in a
        // fraction of the time for a bulk `lb_apply`.
        let mut fresh: BTreeMap<ServiceKey, Vec<(BackendAddr, u32)>> = BTreeMap::new();
        for c in changes {
            match c {
                LbChange::AddService(k) => {
                    let ops = st.plan_add_service(k)?;
                    st.apply(&ops);
                    all.extend(ops);
                    fresh.insert(*k, Vec::new());
                }
                LbChange::AddBackend(k, b) if fresh.contains_key(k) => {
                    let pending: u32 = fresh.get(k).map_or(0, |v| v.iter().map(|(_, w)| w).sum());
                    st.check_add_backend(k, b, pending)?;
                    let ops = [Op::AddBackend(*k, *b)];
                    st.apply(&ops);
                    all.extend(ops);
                    if let Some(v) = fresh.get_mut(k) {
                        v.push(((b.ip, b.port), b.weight));
                    }
                }
                other => {
                    if let Some(active) = fresh.remove(change_service(other)) {
                        st.deal(change_service(other), &active, &mut all);
                    }
                    let ops = st.plan_change(c)?;
                    st.apply(&ops);
                    all.extend(ops);
                }
            }
        }
        for (k, active) in fresh {
            st.deal(&k, &active, &mut all);
        }
        Ok((all, st))
    }

    /// Deals the slots of `svc` (which has none yet) to `active`, and applies it.
    fn deal(&mut self, svc: &ServiceKey, active: &[(BackendAddr, u32)], all: &mut Vec<Op>) {
        let Some(s) = self.services.get(svc) else { return };
        if active.is_empty() {
            return;
        }
        let ops = self.with_republish(rebalance(svc, s, active));
        self.apply(&ops);
        all.extend(ops);
    }

    /// Applies committed ops.
    pub(crate) fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::CreateTable => self.table = true,
                Op::AddClass { v4, size } => {
                    self.classes.insert((*v4, *size));
                }
                Op::AddService(k) => {
                    self.services.insert(*k, Svc::default());
                }
                Op::DelService(k) => {
                    self.services.remove(k);
                }
                Op::AddBackend(k, b) => {
                    if let Some(s) = self.services.get_mut(k) {
                        s.backends.insert((b.ip, b.port), Be { weight: b.weight, slots: Vec::new() });
                    }
                }
                Op::DelBackend(k, a) => {
                    if let Some(s) = self.services.get_mut(k) {
                        s.backends.remove(a);
                    }
                }
                Op::Slots { svc, del, add, resize } => {
                    let Some(s) = self.services.get_mut(svc) else { continue };
                    if let Some(size) = resize {
                        // Every slot is dealt anew.
                        s.backends.values_mut().for_each(|b| b.slots.clear());
                        s.slots = vec![None; *size as usize];
                    } else {
                        // One pass over each losing backend's slots (a change takes one or two
                        // slots from each of many backends).
                        let mut lost: BTreeMap<BackendAddr, Vec<u32>> = BTreeMap::new();
                        for slot in del {
                            if let Some(owner) = s.slots.get_mut(*slot as usize).and_then(Option::take) {
                                lost.entry(owner).or_default().push(*slot);
                            }
                        }
                        for (owner, mut gone) in lost {
                            gone.sort_unstable();
                            if let Some(b) = s.backends.get_mut(&owner) {
                                b.slots.retain(|x| gone.binary_search(x).is_err());
                            }
                        }
                    }
                    for (slot, owner) in add {
                        if let Some(x) = s.slots.get_mut(*slot as usize) {
                            *x = Some(*owner);
                            if let Some(b) = s.backends.get_mut(owner) {
                                b.slots.push(*slot);
                            }
                        }
                    }
                }
                Op::Publish(p, _) => {
                    self.published.insert((p.iface.clone(), p.proto, p.port), p.service);
                }
                Op::Republish(..) => {}
                Op::Unpublish(p) => {
                    self.published.remove(&(p.iface.clone(), p.proto, p.port));
                }
            }
        }
    }

    /// The plain-data view.
    pub fn services(&self) -> Vec<ServiceInfo> {
        self.services
            .iter()
            .map(|(k, s)| ServiceInfo {
                service: *k,
                backends: s
                    .backends
                    .iter()
                    .map(|(&(ip, port), b)| BackendInfo {
                        backend: Backend { ip, port, weight: b.weight },
                        state: if b.slots.is_empty() { BackendState::Draining } else { BackendState::Active },
                    })
                    .collect(),
            })
            .collect()
    }

    /// Published ports.
    pub fn published(&self) -> Vec<PublishedPort> {
        self.published
            .iter()
            .map(|((iface, proto, port), s)| PublishedPort {
                iface: iface.clone(),
                proto: *proto,
                port: *port,
                service: *s,
            })
            .collect()
    }

    /// True when the service uses `vip` (for alias bookkeeping).
    pub(crate) fn vip_in_use(&self, vip: IpAddr) -> bool {
        self.services.keys().any(|k| k.vip == vip)
    }

    /// Checks the invariants (owners agree with the slot table; free slots only while no
    /// backend is active); used after reading from the kernel.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        for (k, s) in &self.services {
            let mut count = 0;
            for (a, b) in &s.backends {
                for &slot in &b.slots {
                    if s.slots.get(slot as usize) != Some(&Some(*a)) {
                        return Err(format!("{k}: slot {slot} does not belong to {}", fmt_addr(*a)));
                    }
                }
                count += b.slots.len();
            }
            let owned = s.slots.iter().filter(|o| o.is_some()).count();
            if count != owned {
                return Err(format!("{k}: {owned} slots owned, {count} claimed"));
            }
            if count > 0 && owned != s.slots.len() {
                return Err(format!("{k}: {} of {} slots have no backend", s.slots.len() - owned, s.slots.len()));
            }
        }
        Ok(())
    }
}

/// The service a change is about.
fn change_service(c: &LbChange) -> &ServiceKey {
    match c {
        LbChange::AddService(k)
        | LbChange::RemoveService(k)
        | LbChange::AddBackend(k, _)
        | LbChange::RemoveBackend(k, _, _)
        | LbChange::DrainBackend(k, _, _) => k,
    }
}

/// `(addr, weight)` of the active backends of `s`, without `except`.
fn active_weights(s: &Svc, except: Option<BackendAddr>) -> Vec<(BackendAddr, u32)> {
    s.backends.iter().filter(|(a, b)| !b.slots.is_empty() && Some(**a) != except).map(|(a, b)| (*a, b.weight)).collect()
}

/// The slot count for weight total `w`: the next power of two ≥ 2·w, at least [`MIN_SLOTS`].
pub(crate) fn slots_for(w: u32) -> u32 {
    (2 * w).next_power_of_two().max(MIN_SLOTS)
}

/// Whether `size` slots are out of the band kept for weight total `w` (see the module doc).
fn needs_resize(size: u32, w: u32) -> bool {
    w > 0 && (size < 2 * w || (size > 8 * w && size > MIN_SLOTS))
}

/// How many slots each of `active` should own out of `size`, staying as close as the bounds
/// allow to `have` (its current counts): every backend gets `⌊size·w/W⌋` or `⌈size·w/W⌉`;
/// who gets the ceiling is decided first by who holds more now (fewer moves), then by the
/// largest remainder, then by address.
fn targets(size: u32, active: &[(BackendAddr, u32)], have: &[u32]) -> Vec<u32> {
    let total: u64 = active.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return vec![0; active.len()];
    }
    let quota = |w: u32| (u64::from(size) * u64::from(w) / total, u64::from(size) * u64::from(w) % total);
    let mut t = Vec::with_capacity(active.len());
    let mut sum = 0u64;
    for (i, (_, w)) in active.iter().enumerate() {
        let (lo, rem) = quota(*w);
        let hi = lo + u64::from(rem > 0);
        let v = u64::from(have[i]).clamp(lo, hi);
        sum += v;
        t.push(v);
    }
    let size = u64::from(size);
    if sum < size {
        // Raise some from floor to ceiling: those holding more than that first, then the
        // largest remainders.
        let mut c: Vec<usize> =
            (0..active.len()).filter(|&i| t[i] == quota(active[i].1).0 && quota(active[i].1).1 > 0).collect();
        c.sort_by_key(|&i| (u64::from(have[i]) <= t[i], std::cmp::Reverse(quota(active[i].1).1), active[i].0));
        for &i in c.iter().take((size - sum) as usize) {
            t[i] += 1;
        }
    } else if sum > size {
        // Lower some from ceiling to floor: those holding less than that first, then the
        // smallest remainders.
        let mut c: Vec<usize> =
            (0..active.len()).filter(|&i| quota(active[i].1).1 > 0 && t[i] > quota(active[i].1).0).collect();
        c.sort_by_key(|&i| (u64::from(have[i]) >= t[i], quota(active[i].1).1, active[i].0));
        for &i in c.iter().take((sum - size) as usize) {
            t[i] -= 1;
        }
    }
    t.into_iter().map(|v| v as u32).collect()
}

/// The slot changes that make `active` (address, weight) the service's active backends: the
/// fewest slot moves when the slot count can stay, else a resize that deals the slots anew.
fn rebalance(svc: &ServiceKey, s: &Svc, active: &[(BackendAddr, u32)]) -> Op {
    let size = s.slots.len() as u32;
    let w: u32 = active.iter().map(|(_, w)| w).sum();
    if w > 0 && (size == 0 || needs_resize(size, w)) {
        let new = slots_for(w);
        let del = s.slots.iter().enumerate().filter(|(_, o)| o.is_some()).map(|(i, _)| i as u32).collect();
        let counts = targets(new, active, &vec![0; active.len()]);
        let mut add = Vec::with_capacity(new as usize);
        for ((a, _), n) in active.iter().zip(counts) {
            let from = add.len() as u32;
            add.extend((from..from + n).map(|slot| (slot, *a)));
        }
        return Op::Slots { svc: *svc, del, add, resize: Some(new) };
    }
    let owned = |a: &BackendAddr| s.backends.get(a).map(|b| b.slots.as_slice()).unwrap_or_default();
    let have: Vec<u32> = active.iter().map(|(a, _)| owned(a).len() as u32).collect();
    let want = targets(size, active, &have);
    // Slots to hand out: those of backends leaving the active set, free ones, and each active
    // backend's excess (its last-gained slots).
    let staying: std::collections::BTreeSet<&BackendAddr> = active.iter().map(|(a, _)| a).collect();
    let mut freed: Vec<u32> = Vec::new();
    for (a, b) in &s.backends {
        if !staying.contains(a) {
            freed.extend(&b.slots);
        }
    }
    // Free slots exist only while no backend is active: scan for them only then.
    if s.backends.values().all(|b| b.slots.is_empty()) {
        freed.extend(s.slots.iter().enumerate().filter(|(_, o)| o.is_none()).map(|(i, _)| i as u32));
    }
    for (i, (a, _)) in active.iter().enumerate() {
        if have[i] > want[i] {
            let mine = owned(a);
            freed.extend(&mine[mine.len() - (have[i] - want[i]) as usize..]);
        }
    }
    let mut add = Vec::with_capacity(freed.len());
    let mut next = freed.iter();
    for (i, (a, _)) in active.iter().enumerate() {
        for _ in have[i]..want[i].max(have[i]) {
            if let Some(&slot) = next.next() {
                add.push((slot, *a));
            }
        }
    }
    // With no active backend left the freed slots stay free (no element: the lookup misses and
    // the service refuses new connections), and the rule stays.
    let del = freed.iter().copied().filter(|slot| s.slots[*slot as usize].is_some()).collect();
    Op::Slots { svc: *svc, del, add, resize: None }
}

/// Most slots in one service's selection map.
pub const MAX_SLOTS: u32 = 1 << 20;
/// Most weight units the active backends of one service hold together (S stays ≥ 2·W).
pub const MAX_SERVICE_WEIGHT: u32 = MAX_SLOTS / 2;
/// Fewest slots a service with backends has.
pub const MIN_SLOTS: u32 = 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn svc() -> ServiceKey {
        ServiceKey { vip: "198.51.100.10".parse().unwrap(), proto: Protocol::Tcp, port: 80 }
    }
    fn be(last: u8, weight: u32) -> Backend {
        Backend { ip: IpAddr::from([198, 18, 0, last]), port: 8080, weight }
    }

    fn run(st: &mut LbState, ops: Result<Vec<Op>>) {
        step(st, ops);
    }

    fn addr(last: u8) -> BackendAddr {
        (be(last, 0).ip, 8080)
    }

    /// Every active backend owns ⌊S·w/W⌋ or ⌈S·w/W⌉ slots, S is in its band, no slot is free
    /// while a backend is active, and a drained one owns none.
    fn assert_bounds(st: &LbState) {
        for (k, s) in &st.services {
            let size = s.slots.len() as u64;
            let w: u64 = s.active_weight().into();
            if w == 0 {
                assert!(s.slots.iter().all(Option::is_none), "{k}: slots owned with no backend active");
                continue;
            }
            assert!(size.is_power_of_two() && size >= u64::from(MIN_SLOTS), "{k}: S = {size}");
            assert!(2 * w <= size && (size <= 8 * w || size == u64::from(MIN_SLOTS)), "{k}: S = {size}, W = {w}");
            assert!(s.slots.iter().all(Option::is_some), "{k}: a free slot with backends active");
            for (a, b) in &s.backends {
                let n = b.slots.len() as u64;
                if n == 0 {
                    continue;
                }
                let exact = size * u64::from(b.weight);
                assert!(n >= exact / w && n <= exact.div_ceil(w), "{k}: {a:?} owns {n} of {size} for {}/{w}", b.weight);
                assert!(n >= 2, "an active backend owns at least two slots");
            }
        }
    }

    fn step(st: &mut LbState, ops: Result<Vec<Op>>) -> Vec<Op> {
        let ops = ops.unwrap();
        st.apply(&ops);
        st.check().unwrap();
        assert_bounds(st);
        ops
    }

    /// `(slots deleted, slots added, resize)` of a plan's one slot op.
    fn slot_op(ops: &[Op]) -> (usize, usize, Option<u32>) {
        let mut it = ops.iter().filter_map(|o| match o {
            Op::Slots { del, add, resize, .. } => Some((del.len(), add.len(), *resize)),
            _ => None,
        });
        let r = it.next().expect("a slot op");
        assert!(it.next().is_none());
        r
    }

    /// A batch that adds a service and its backends deals the service's slots once, for the
    /// backends it ends with (within the same bounds as one change at a time); a later change
    /// in the same batch to that service deals first, then plans on top.
    #[test]
    fn a_batch_deals_a_new_service_once() {
        let weights = [1u32, 2, 3, 1, 1, 5, 1, 1, 1, 4];
        let mut changes = vec![LbChange::AddService(svc())];
        changes.extend(weights.iter().enumerate().map(|(i, w)| LbChange::AddBackend(svc(), be(i as u8 + 1, *w))));
        let st = LbState::default();
        let (ops, end) = st.plan_many_state(&changes).unwrap();
        let (del, add, resize) = slot_op(&ops);
        let w: u32 = weights.iter().sum();
        assert_eq!((del, add, resize), (0, slots_for(w) as usize, Some(slots_for(w))));
        end.check().unwrap();
        assert_bounds(&end);
        // Applying the plan to the state it was made from gives the state it returned.
        let mut applied = st.clone();
        applied.apply(&ops);
        assert_eq!(applied, end);
        // Draining one in the same batch: dealt first, then the drain's moves.
        changes.push(LbChange::DrainBackend(svc(), be(6, 0).ip, 8080));
        let (ops, end) = st.plan_many_state(&changes).unwrap();
        assert_eq!(ops.iter().filter(|o| matches!(o, Op::Slots { .. })).count(), 2);
        assert_bounds(&end);
        assert!(end.services[&svc()].backends[&addr(6)].slots.is_empty(), "drained");
        // The weight cap counts backends not dealt yet.
        let mut big = vec![LbChange::AddService(svc())];
        big.extend((0..3).map(|i| LbChange::AddBackend(svc(), be(i + 1, MAX_WEIGHT))));
        let cap_hit = (MAX_WEIGHT as u64) * 3 > u64::from(MAX_SERVICE_WEIGHT);
        assert_eq!(st.plan_many_state(&big).is_err(), cap_hit);
        // A duplicate backend within the batch is refused.
        let dup =
            [LbChange::AddService(svc()), LbChange::AddBackend(svc(), be(1, 1)), LbChange::AddBackend(svc(), be(1, 1))];
        assert!(matches!(st.plan_many_state(&dup), Err(Error::AlreadyExists { .. })));
    }

    #[test]
    fn slots_stay_within_bounds_for_various_weights() {
        for weights in [
            &[1u32, 1, 1][..],
            &[1, 2, 1],
            &[1, 2, 3, 4, 5],
            &[256, 1, 1],
            &[7, 7, 7, 7, 7, 7, 7],
            &[1; 40],
            &[3, 256, 17, 1, 100, 2, 64, 5],
        ] {
            let mut st = LbState::default();
            let ops = st.plan_add_service(&svc());
            step(&mut st, ops);
            for (i, w) in weights.iter().enumerate() {
                let ops = st.plan_add_backend(&svc(), &be(i as u8 + 1, *w));
                step(&mut st, ops);
            }
            // Drain every other one, then remove them all in another order.
            for i in (0..weights.len()).step_by(2) {
                let ops = st.plan_drain_backend(&svc(), addr(i as u8 + 1));
                step(&mut st, ops);
            }
            let drained = st.services()[0].backends.iter().filter(|b| b.state == BackendState::Draining).count();
            assert_eq!(drained, weights.len().div_ceil(2));
            for i in (0..weights.len()).rev() {
                let ops = st.plan_remove_backend(&svc(), addr(i as u8 + 1));
                step(&mut st, ops);
            }
            assert!(st.services[&svc()].backends.is_empty());
        }
    }

    #[test]
    fn a_change_moves_only_the_share_it_must() {
        let mut st = LbState::default();
        let other = ServiceKey { port: 81, ..svc() };
        for k in [svc(), other] {
            let ops = st.plan_add_service(&k);
            step(&mut st, ops);
        }
        // 100 backends of weight 1 (and a second service with 100): W = 100, S = 256.
        let changes: Vec<LbChange> = (0..100u8)
            .flat_map(|i| [LbChange::AddBackend(svc(), be(i, 1)), LbChange::AddBackend(other, be(i, 1))])
            .collect();
        let ops = st.plan_many(&changes);
        step(&mut st, ops);
        assert_eq!(st.services[&svc()].slots.len(), 256);
        let before = st.services[&other].clone();

        // Adding one of weight 3 (W = 103) moves ⌊768/103⌋ or ⌈768/103⌉ = 7 or 8 slots.
        let ops = st.plan_add_backend(&svc(), &be(200, 3)).unwrap();
        assert!(ops.iter().all(|o| !matches!(o, Op::Slots { svc: k, .. } if *k != svc())));
        let (del, add, resize) = slot_op(&ops);
        assert_eq!(resize, None, "no new rule");
        assert!((7..=8).contains(&add) && del == add, "{del} {add}");
        step(&mut st, Ok(ops));
        let mine = st.services[&svc()].backends[&addr(200)].slots.len();
        assert_eq!(mine, add);

        // Draining it gives back exactly its slots; removing a drained one moves none.
        let ops = st.plan_drain_backend(&svc(), addr(200)).unwrap();
        assert_eq!(slot_op(&ops), (mine, mine, None));
        step(&mut st, Ok(ops));
        let ops = st.plan_remove_backend(&svc(), addr(200)).unwrap();
        assert_eq!(ops, vec![Op::DelBackend(svc(), addr(200))]);
        step(&mut st, Ok(ops));

        // Removing an active weight-1 backend moves its 2 or 3 slots only.
        let ops = st.plan_remove_backend(&svc(), addr(5)).unwrap();
        let (del, add, resize) = slot_op(&ops);
        assert!(resize.is_none() && (2..=3).contains(&del) && add == del, "{del} {add}");
        step(&mut st, Ok(ops));
        assert_eq!(st.services[&other], before, "the other service is untouched");
    }

    #[test]
    fn resize_only_when_the_weight_leaves_the_band() {
        let mut st = LbState::default();
        let ops = st.plan_add_service(&svc());
        step(&mut st, ops);
        // First backend: the rule appears with S = 16.
        let ops = st.plan_add_backend(&svc(), &be(1, 1));
        assert_eq!(slot_op(ops.as_ref().unwrap()), (0, 16, Some(16)));
        assert!(ops.as_ref().unwrap().contains(&Op::AddClass { v4: true, size: 16 }), "its chain is made");
        step(&mut st, ops);
        for i in 2..=8 {
            let ops = st.plan_add_backend(&svc(), &be(i, 1));
            assert_eq!(slot_op(ops.as_ref().unwrap()).2, None, "W = {i} fits in 16");
            step(&mut st, ops);
        }
        // W = 9 needs 2·W = 18 > 16: every slot dealt anew, S = 32.
        let ops = st.plan_add_backend(&svc(), &be(9, 1));
        assert_eq!(slot_op(ops.as_ref().unwrap()), (16, 32, Some(32)));
        step(&mut st, ops);
        // Down to W = 4 keeps 32 (≤ 8·W); W = 3 shrinks to 16.
        for i in (5..=9).rev() {
            let ops = st.plan_remove_backend(&svc(), addr(i));
            assert_eq!(slot_op(ops.as_ref().unwrap()).2, None, "W = {} keeps 32", i - 1);
            step(&mut st, ops);
        }
        let ops = st.plan_drain_backend(&svc(), addr(4));
        assert_eq!(slot_op(ops.as_ref().unwrap()), (32, 16, Some(16)));
        assert!(!ops.as_ref().unwrap().iter().any(|o| matches!(o, Op::AddClass { .. })), "16 has its chain");
        step(&mut st, ops);
        // Draining every backend frees the slots but keeps S (the rule stays; lookups miss).
        for i in 1..=3 {
            let ops = st.plan_drain_backend(&svc(), addr(i));
            assert_eq!(slot_op(ops.as_ref().unwrap()).2, None);
            step(&mut st, ops);
        }
        assert_eq!(st.services[&svc()].slots, vec![None; 16]);
        // A backend added then takes every free slot without a resize.
        let ops = st.plan_add_backend(&svc(), &be(20, 2));
        assert_eq!(slot_op(ops.as_ref().unwrap()), (0, 16, None));
        step(&mut st, ops);
        // A resize also retargets the service's published ports; an ordinary change does not.
        let p = PublishedPort { iface: "eth0".into(), proto: Protocol::Tcp, port: 9000, service: svc() };
        let ops = st.plan_publish(&p);
        assert_eq!(ops.as_ref().unwrap(), &vec![Op::Publish(p.clone(), 16)]);
        step(&mut st, ops);
        let ops = st.plan_add_backend(&svc(), &be(21, 1)).unwrap();
        assert!(!ops.iter().any(|o| matches!(o, Op::Republish(..))), "{ops:?}");
        step(&mut st, Ok(ops));
        let ops = st.plan_add_backend(&svc(), &be(22, 6)).unwrap();
        assert_eq!(slot_op(&ops).2, Some(32));
        assert!(ops.contains(&Op::Republish(p, 32)), "{ops:?}");
        step(&mut st, Ok(ops));
        // Too much weight for one service is refused.
        // (Built directly: planning half a million weight units slot by slot is slow in a
        // debug build; only the active weight total matters to the check.)
        let mut big = st.clone();
        let s = big.services.get_mut(&svc()).unwrap();
        for i in 0..((MAX_SERVICE_WEIGHT - 2) / MAX_WEIGHT) as usize {
            let ip = IpAddr::from([198, 19, (i >> 8) as u8, i as u8]);
            s.backends.insert((ip, 1), Be { weight: MAX_WEIGHT, slots: vec![0] });
        }
        assert!(big.plan_add_backend(&svc(), &be(98, 1)).is_ok());
        let e = big.plan_add_backend(&svc(), &be(99, MAX_WEIGHT)).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");
    }

    #[test]
    fn bad_input_is_typed() {
        let mut st = LbState::default();
        let mut bad = svc();
        bad.port = 0;
        assert!(st.plan_add_service(&bad).unwrap_err().is_invalid_input());
        bad = svc();
        bad.vip = "0.0.0.0".parse().unwrap();
        assert!(st.plan_add_service(&bad).unwrap_err().is_invalid_input());
        assert!(st.plan_add_backend(&svc(), &be(1, 1)).unwrap_err().is_not_found());
        let ops = st.plan_add_service(&svc());
        run(&mut st, ops);
        assert!(st.plan_add_service(&svc()).unwrap_err().is_already_exists());
        assert!(st.plan_add_backend(&svc(), &be(1, 0)).unwrap_err().is_invalid_input());
        assert!(st.plan_add_backend(&svc(), &be(1, MAX_WEIGHT + 1)).unwrap_err().is_invalid_input());
        let v6 = Backend { ip: "2001:db8::1".parse().unwrap(), port: 1, weight: 1 };
        assert!(st.plan_add_backend(&svc(), &v6).unwrap_err().is_invalid_input());
        let ops = st.plan_add_backend(&svc(), &be(1, 1));
        run(&mut st, ops);
        assert!(st.plan_add_backend(&svc(), &be(1, 2)).unwrap_err().is_already_exists());
        assert!(st.plan_drain_backend(&svc(), (be(9, 1).ip, 8080)).unwrap_err().is_not_found());
        let p = PublishedPort { iface: "eth0/x".into(), proto: Protocol::Tcp, port: 80, service: svc() };
        assert!(st.plan_publish(&p).unwrap_err().is_invalid_input());
    }
}
