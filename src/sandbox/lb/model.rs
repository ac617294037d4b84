//! The load balancer's state and the one validation and planning path shared by the netns and
//! fake sandboxes: every request is checked against the state and turned into [`Op`]s; the
//! netns sandbox sends them as one nf_tables transaction, the fake applies them directly, and
//! both then call [`LbState::apply`].
//!
//! Weighted choice: each backend owns `weight` consecutive-or-not *slots* of its service; a
//! packet picks slot `numgen random mod W` (W = total weight of active backends). Adding a
//! backend appends slots; removing or draining one moves the highest slots into its holes, so
//! every change touches O(weight) map elements, never the rest of the service.

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
    /// Owner of each slot `0..W`.
    pub(crate) slots: Vec<BackendAddr>,
}

/// Everything the load balancer holds, as read back from the kernel (or the fake).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LbState {
    pub(crate) table: bool,
    pub(crate) services: BTreeMap<ServiceKey, Svc>,
    pub(crate) published: BTreeMap<(String, Protocol, u16), ServiceKey>,
}

/// One change, in the order it must happen inside the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    CreateTable,
    AddService(ServiceKey),
    DelService(ServiceKey, Vec<BackendAddr>),
    AddBackend(ServiceKey, Backend),
    DelBackend(ServiceKey, BackendAddr),
    /// Slot changes of a service: keys to delete, then `(slot, owner)` to add; the new modulus.
    Slots {
        svc: ServiceKey,
        del: Vec<u32>,
        add: Vec<(u32, BackendAddr)>,
        modulus: u32,
    },
    Publish(PublishedPort),
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
        ops.push(Op::DelService(*svc, s.backends.keys().copied().collect()));
        Ok(ops)
    }

    pub(crate) fn plan_add_backend(&self, svc: &ServiceKey, b: &Backend) -> Result<Vec<Op>> {
        check_service(svc)?;
        check_backend(svc, b)?;
        let s = self.svc(svc)?;
        let addr = (b.ip, b.port);
        if s.backends.contains_key(&addr) {
            return Err(Error::AlreadyExists { kind: "backend", name: format!("{} of {svc}", fmt_addr(addr)) });
        }
        let w0 = s.slots.len() as u32;
        if w0 + b.weight > MAX_SLOTS {
            return Err(Error::InvalidArgument {
                op: "add backend",
                reason: format!("service {svc} would exceed {MAX_SLOTS} weight units"),
            });
        }
        let add = (w0..w0 + b.weight).map(|slot| (slot, addr)).collect();
        Ok(vec![Op::AddBackend(*svc, *b), Op::Slots { svc: *svc, del: Vec::new(), add, modulus: w0 + b.weight }])
    }

    /// The slot changes that take `addr`'s slots out of `svc`.
    fn unslot(svc: &ServiceKey, s: &Svc, addr: BackendAddr) -> Op {
        let mine = &s.backends[&addr].slots;
        let w = s.slots.len() as u32;
        let w1 = w - mine.len() as u32;
        let holes: Vec<u32> = mine.iter().copied().filter(|&i| i < w1).collect();
        let movers: Vec<u32> = (w1..w).filter(|&i| s.slots[i as usize] != addr).collect();
        let mut del: Vec<u32> = mine.clone();
        del.extend(&movers);
        let add = holes.iter().zip(&movers).map(|(&h, &m)| (h, s.slots[m as usize])).collect();
        Op::Slots { svc: *svc, del, add, modulus: w1 }
    }

    pub(crate) fn plan_drain_backend(&self, svc: &ServiceKey, addr: BackendAddr) -> Result<Vec<Op>> {
        check_service(svc)?;
        let s = self.svc(svc)?;
        let be = s.backends.get(&addr).ok_or_else(|| no_backend(svc, addr))?;
        if be.slots.is_empty() {
            return Ok(Vec::new()); // already draining
        }
        Ok(vec![Self::unslot(svc, s, addr)])
    }

    pub(crate) fn plan_remove_backend(&self, svc: &ServiceKey, addr: BackendAddr) -> Result<Vec<Op>> {
        check_service(svc)?;
        let s = self.svc(svc)?;
        let be = s.backends.get(&addr).ok_or_else(|| no_backend(svc, addr))?;
        let mut ops = Vec::new();
        if !be.slots.is_empty() {
            ops.push(Self::unslot(svc, s, addr));
        }
        ops.push(Op::DelBackend(*svc, addr));
        Ok(ops)
    }

    pub(crate) fn plan_publish(&self, p: &PublishedPort) -> Result<Vec<Op>> {
        validate::ifname(&p.iface)?;
        check_port(p.port, "publish")?;
        check_service(&p.service)?;
        self.svc(&p.service)?;
        if self.published.contains_key(&(p.iface.clone(), p.proto, p.port)) {
            return Err(Error::AlreadyExists { kind: "published port", name: p.to_string() });
        }
        Ok(vec![Op::Publish(p.clone())])
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
        let mut st = self.clone();
        let mut all = Vec::new();
        for c in changes {
            let ops = st.plan_change(c)?;
            st.apply(&ops);
            all.extend(ops);
        }
        Ok(all)
    }

    /// Applies committed ops.
    pub(crate) fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::CreateTable => self.table = true,
                Op::AddService(k) => {
                    self.services.insert(*k, Svc::default());
                }
                Op::DelService(k, _) => {
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
                Op::Slots { svc, del, add, modulus } => {
                    let Some(s) = self.services.get_mut(svc) else { continue };
                    for slot in del {
                        if let Some(owner) = s.slots.get(*slot as usize).copied()
                            && let Some(b) = s.backends.get_mut(&owner)
                        {
                            b.slots.retain(|x| x != slot);
                        }
                    }
                    s.slots.resize(*modulus as usize, (IpAddr::from([0u8; 4]), 0));
                    for (slot, owner) in add {
                        if let Some(x) = s.slots.get_mut(*slot as usize) {
                            *x = *owner;
                        } else {
                            s.slots.push(*owner);
                        }
                        if let Some(b) = s.backends.get_mut(owner) {
                            b.slots.push(*slot);
                        }
                    }
                }
                Op::Publish(p) => {
                    self.published.insert((p.iface.clone(), p.proto, p.port), p.service);
                }
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

    /// Checks the invariants (slots dense, owners agree); used after reading from the kernel.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        for (k, s) in &self.services {
            let mut count = 0;
            for (a, b) in &s.backends {
                for &slot in &b.slots {
                    if s.slots.get(slot as usize) != Some(a) {
                        return Err(format!("{k}: slot {slot} does not belong to {}", fmt_addr(*a)));
                    }
                }
                if !b.slots.is_empty() && b.slots.len() as u32 != b.weight {
                    return Err(format!(
                        "{k}: backend {} has {} slots for weight {}",
                        fmt_addr(*a),
                        b.slots.len(),
                        b.weight
                    ));
                }
                count += b.slots.len();
            }
            if count != s.slots.len() {
                return Err(format!("{k}: {} slots, {count} owned", s.slots.len()));
            }
        }
        Ok(())
    }
}

/// Most weight units one service holds (slots in its selection map).
pub const MAX_SLOTS: u32 = 1 << 20;

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
        let ops = ops.unwrap();
        st.apply(&ops);
        st.check().unwrap();
    }

    #[test]
    fn slots_stay_dense_through_adds_drains_and_removals() {
        let mut st = LbState::default();
        let ops = st.plan_add_service(&svc());
        run(&mut st, ops);
        for (i, w) in [(1, 1), (2, 3), (3, 2), (4, 1)] {
            let ops = st.plan_add_backend(&svc(), &be(i, w));
            run(&mut st, ops);
        }
        assert_eq!(st.services[&svc()].slots.len(), 7);
        let ops = st.plan_drain_backend(&svc(), (be(2, 0).ip, 8080));
        run(&mut st, ops);
        assert_eq!(st.services[&svc()].slots.len(), 4);
        let ops = st.plan_remove_backend(&svc(), (be(1, 0).ip, 8080));
        run(&mut st, ops);
        let ops = st.plan_remove_backend(&svc(), (be(2, 0).ip, 8080));
        run(&mut st, ops);
        assert_eq!(st.services[&svc()].slots.len(), 3);
        let infos = st.services();
        assert_eq!(infos[0].backends.len(), 2);
        assert!(infos[0].backends.iter().all(|b| b.state == BackendState::Active));
        // A change touches only the moved slots.
        let ops = st.plan_remove_backend(&svc(), (be(4, 0).ip, 8080)).unwrap();
        match &ops[0] {
            Op::Slots { del, add, modulus, .. } => assert!(del.len() <= 2 && add.len() <= 1 && *modulus == 2),
            o => panic!("{o:?}"),
        }
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
