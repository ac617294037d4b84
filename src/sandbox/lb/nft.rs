//! The load balancer's nf_tables layout: [`Op`]s encoded as batch messages, and the state read
//! back from the kernel.
//!
//! The table holds a constant number of chains and sets, whatever the number of services and
//! backends: the kernel walks every chain of every table on each commit and finds a set by name
//! with a linear search, so objects per service would make every change O(services). Per
//! family (`4`/`6`):
//! - `services4`: `vip . l4proto . port → goto slots4-<S>` (S the service's slot count; `return`
//!   while it has none) — the services, and their S;
//! - chains `slots4-<S>`, one per slot count S in use (a power of two from [`MIN_SLOTS`](super::MIN_SLOTS) to
//!   [`MAX_SLOTS`](super::MAX_SLOTS); made on first use, kept with the table): `dnat to ip daddr . l4proto . th
//!   dport . numgen random mod S map @sel4`;
//! - `sel4`: `vip . l4proto . port . slot → addr . port`, every service's slots;
//! - `backends4`: `vip . l4proto . port . addr . port → weight`, every backend, drained ones too;
//! - per published port a chain `pub-<iface>-<proto>-<port>` (its comment names the service)
//!   whose rule does the same `dnat` with the service's key as constants.
//!
//! A backend change is then a few elements of `sel4` and `backends4`; a resize replaces one
//! `services4` element (and the service's published-port rules).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use log::warn;

use super::model::{BackendAddr, Be, LbState, Op};
use super::{Protocol, PublishedPort, ServiceKey};
use crate::error::{Error, Result};
use crate::netlink::nftables::expr::{Expr, NatKind, Payload, Reg, Verdict, ct, meta};
use crate::netlink::nftables::{Batch, ChainSpec, CmpOp, Family, Hook, NFT_DATA_VERDICT, NftSocket, SetSpec, dtype};

/// The load balancer's table (family `inet`).
pub const LB_TABLE: &str = "netsandbox";
/// The masquerade table (family `inet`).
pub const MASQ_TABLE: &str = "netsandbox-masq";
const FAMILY: Family = Family::Inet;
const SERVICES: &str = "services";
const PUBLISHED: &str = "published";
const PUB_COMMENT: &str = "netsandbox published";
/// `NF_IP_PRI_NAT_DST` / `NF_IP_PRI_NAT_SRC`.
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

fn next_set_id() -> u32 {
    static ID: AtomicU32 = AtomicU32::new(1);
    ID.fetch_add(1, Ordering::Relaxed)
}

/// `4` or `6`: the suffix of a family's maps and chains.
fn fam(ip: IpAddr) -> char {
    if ip.is_ipv4() { '4' } else { '6' }
}

fn services_map(k: &ServiceKey) -> String {
    format!("services{}", fam(k.vip))
}

fn sel_map(k: &ServiceKey) -> String {
    format!("sel{}", fam(k.vip))
}

fn be_map(k: &ServiceKey) -> String {
    format!("backends{}", fam(k.vip))
}

fn class_chain(v4: bool, size: u32) -> String {
    format!("slots{}-{size}", if v4 { '4' } else { '6' })
}

/// The slot count a `slots4-<S>` / `slots6-<S>` chain name stands for.
fn class_size(chain: &str) -> Option<u32> {
    chain.strip_prefix("slots4-").or_else(|| chain.strip_prefix("slots6-"))?.parse().ok()
}

/// An interface name as nft's parser accepts it inside an identifier.
fn ident(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

fn pub_chain(p: &PublishedPort) -> String {
    format!("pub-{}-{}-{}", ident(&p.iface), p.proto, p.port)
}

/// `addr . port` as concatenated register fields (the port padded to 4 bytes): the selection
/// map's data, which `dnat` reads as address and port registers.
fn addr_port(ip: IpAddr, port: u16) -> Vec<u8> {
    let mut v = ip_bytes(ip);
    let p = port.to_be_bytes();
    v.extend_from_slice(&[p[0], p[1], 0, 0]);
    v
}

fn parse_addr_port(b: &[u8]) -> Option<BackendAddr> {
    let (ip, rest) = match b.len() {
        8 => (IpAddr::from(<[u8; 4]>::try_from(&b[..4]).ok()?), &b[4..]),
        20 => (IpAddr::from(<[u8; 16]>::try_from(&b[..16]).ok()?), &b[16..]),
        _ => return None,
    };
    Some((ip, u16::from_be_bytes([rest[0], rest[1]])))
}

/// The service key `vip . l4proto . port` (12 or 24 bytes) back from its register form.
fn parse_service_key(b: &[u8]) -> Option<ServiceKey> {
    let (vip, rest) = match b.len() {
        12 => (IpAddr::from(<[u8; 4]>::try_from(&b[..4]).ok()?), &b[4..]),
        24 => (IpAddr::from(<[u8; 16]>::try_from(&b[..16]).ok()?), &b[16..]),
        _ => return None,
    };
    Some(ServiceKey { vip, proto: Protocol::from_number(rest[0])?, port: u16::from_be_bytes([rest[4], rest[5]]) })
}

fn data_map(name: &str, key_type: u32, key_len: u32, concat: Vec<u32>, data_type: u32, data_len: u32) -> SetSpec {
    SetSpec { data_type: Some(data_type), data_len, ..verdict_map(name, key_type, key_len, concat) }
}

/// The selection and backends maps of a family.
fn family_maps(v4: bool) -> [SetSpec; 3] {
    let (a, alen, sfx) = if v4 { (dtype::IPADDR, 4, '4') } else { (dtype::IP6ADDR, 16, '6') };
    let svc = [a, dtype::INET_PROTOCOL, dtype::INET_SERVICE];
    let ap = dtype::concat(&[a, dtype::INET_SERVICE]);
    [
        verdict_map(&format!("services{sfx}"), dtype::concat(&svc), alen + 8, vec![alen, 1, 2]),
        data_map(
            &format!("sel{sfx}"),
            // The slot as `mark`: a 32-bit host-order type, as numgen writes it (nft cannot
            // list a concatenation with a plain `integer` field).
            dtype::concat(&[a, dtype::INET_PROTOCOL, dtype::INET_SERVICE, dtype::MARK]),
            alen + 12,
            vec![alen, 1, 2, 4],
            ap,
            alen + 4,
        ),
        data_map(
            &format!("backends{sfx}"),
            dtype::concat(&[a, dtype::INET_PROTOCOL, dtype::INET_SERVICE, a, dtype::INET_SERVICE]),
            2 * alen + 12,
            vec![alen, 1, 2, alen, 2],
            dtype::INTEGER,
            4,
        ),
    ]
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    }
}

/// `proto . port` as two 4-byte register fields.
fn proto_port(proto: Protocol, port: u16) -> [u8; 8] {
    let p = port.to_be_bytes();
    [proto.number(), 0, 0, 0, p[0], p[1], 0, 0]
}

fn service_key(k: &ServiceKey) -> Vec<u8> {
    let mut v = ip_bytes(k.vip);
    v.extend_from_slice(&proto_port(k.proto, k.port));
    v
}

fn published_key(iface: &str, proto: Protocol, port: u16) -> Vec<u8> {
    let mut v = [0u8; 16].to_vec();
    v[..iface.len().min(15)].copy_from_slice(&iface.as_bytes()[..iface.len().min(15)]);
    v.extend_from_slice(&proto_port(proto, port));
    v
}

fn slot_key(slot: u32) -> Vec<u8> {
    // numgen writes its result in host order.
    slot.to_ne_bytes().to_vec()
}

fn chain(name: &str, hook: Option<(Hook, i32, &'static str)>, comment: Option<String>) -> ChainSpec {
    ChainSpec { family: FAMILY, table: LB_TABLE.into(), name: name.into(), hook, comment }
}

fn verdict_map(name: &str, key_type: u32, key_len: u32, concat: Vec<u32>) -> SetSpec {
    SetSpec {
        family: FAMILY,
        table: LB_TABLE.into(),
        name: name.into(),
        flags: 0,
        key_type,
        key_len,
        concat,
        data_type: Some(NFT_DATA_VERDICT),
        data_len: 0,
        id: next_set_id(),
    }
}

fn match_nfproto(p: u8) -> [Expr; 2] {
    [
        Expr::Meta { key: meta::NFPROTO, dreg: Reg::R32(0) },
        Expr::Cmp { sreg: Reg::R32(0), op: CmpOp::Eq, data: vec![p] },
    ]
}

/// The `dnat` of a service's connection: `key` (`vip . l4proto . port`, 3 or 6 registers from
/// R32(0)) is already loaded; numgen picks the slot into the next register; the looked-up
/// `addr . port` lands in consecutive registers from R32(0) (the port right after the address).
fn select_and_dnat(v4: bool, size: u32) -> [Expr; 3] {
    let (slot_reg, port_reg, sel) = if v4 { (3, 1, "sel4") } else { (6, 4, "sel6") };
    [
        Expr::Numgen { dreg: Reg::R32(slot_reg), modulus: size, random: true },
        Expr::Lookup { set: sel.into(), sreg: Reg::R32(0), dreg: Some(Reg::R32(0)) },
        Expr::Nat {
            kind: NatKind::Dnat,
            family: if v4 { NFPROTO_IPV4 } else { NFPROTO_IPV6 },
            addr: Some(Reg::R32(0)),
            port: Some(Reg::R32(port_reg)),
        },
    ]
}

/// `daddr . l4proto . th dport` into registers from R32(0).
fn load_service_key(v4: bool) -> [Expr; 3] {
    let (off, len) = if v4 { (16, 4u8) } else { (24, 16) };
    let r = len / 4;
    [
        Expr::Payload { base: Payload::Network, offset: off, len: u32::from(len), dreg: Reg::R32(0) },
        Expr::Meta { key: meta::L4PROTO, dreg: Reg::R32(r) },
        Expr::Payload { base: Payload::Transport, offset: 2, len: 2, dreg: Reg::R32(r + 1) },
    ]
}

/// The chain of services with `size` slots of one family: `dnat` through the selection map.
fn class(b: &mut Batch, v4: bool, size: u32) {
    let name = class_chain(v4, size);
    b.add_chain(&chain(&name, None, None), true);
    let mut e = load_service_key(v4).to_vec();
    e.extend(select_and_dnat(v4, size));
    b.add_rule(FAMILY, LB_TABLE, &name, &e, None);
}

fn skeleton(b: &mut Batch) {
    b.add_table(FAMILY, LB_TABLE, Some("netsandbox load balancer"));
    let l4 = [dtype::INET_PROTOCOL, dtype::INET_SERVICE];
    for v4 in [true, false] {
        for m in family_maps(v4) {
            b.add_set(&m);
        }
    }
    b.add_set(&verdict_map(PUBLISHED, dtype::concat(&[dtype::IFNAME, l4[0], l4[1]]), 24, vec![16, 1, 2]));
    b.add_chain(&chain(SERVICES, None, None), true);
    for (p, v4, map) in [(NFPROTO_IPV4, true, "services4"), (NFPROTO_IPV6, false, "services6")] {
        let mut e = match_nfproto(p).to_vec();
        e.extend(load_service_key(v4));
        e.push(Expr::Lookup { set: map.into(), sreg: Reg::R32(0), dreg: Some(Reg::Verdict) });
        b.add_rule(FAMILY, LB_TABLE, SERVICES, &e, None);
    }
    b.add_chain(&chain("prerouting", Some((Hook::Prerouting, PRIO_DSTNAT, "nat")), None), true);
    b.add_rule(
        FAMILY,
        LB_TABLE,
        "prerouting",
        &[
            Expr::Meta { key: meta::IIFNAME, dreg: Reg::R32(0) },
            Expr::Meta { key: meta::L4PROTO, dreg: Reg::R32(4) },
            Expr::Payload { base: Payload::Transport, offset: 2, len: 2, dreg: Reg::R32(5) },
            Expr::Lookup { set: PUBLISHED.into(), sreg: Reg::R32(0), dreg: Some(Reg::Verdict) },
        ],
        Some("ingress"),
    );
    b.add_rule(FAMILY, LB_TABLE, "prerouting", &[Expr::Verdict(Verdict::Jump(SERVICES.into()))], None);
    b.add_chain(&chain("output", Some((Hook::Output, PRIO_DSTNAT, "nat")), None), true);
    b.add_rule(FAMILY, LB_TABLE, "output", &[Expr::Verdict(Verdict::Jump(SERVICES.into()))], None);
    b.add_chain(&chain("postrouting", Some((Hook::Postrouting, PRIO_SRCNAT, "nat")), None), true);
    b.add_rule(
        FAMILY,
        LB_TABLE,
        "postrouting",
        &[
            Expr::Ct { key: ct::STATUS, dreg: Reg::R32(0) },
            Expr::Bitwise {
                sreg: Reg::R32(0),
                dreg: Reg::R32(0),
                mask: ct::IPS_DST_NAT.to_ne_bytes().to_vec(),
                xor: vec![0; 4],
            },
            Expr::Cmp { sreg: Reg::R32(0), op: CmpOp::Neq, data: vec![0; 4] },
            Expr::Masq,
        ],
        Some("return traffic of DNATed flows"),
    );
}

/// The `services4`/`services6` verdict of a service with `size` slots.
fn service_verdict(k: &ServiceKey, size: u32) -> Verdict {
    if size == 0 { Verdict::Return } else { Verdict::Goto(class_chain(k.vip.is_ipv4(), size)) }
}

/// A published port's rule: the service's key as constants, then the service's `dnat`.
fn published_rule(b: &mut Batch, p: &PublishedPort, size: u32, replace: bool) {
    if replace {
        b.flush_chain(FAMILY, LB_TABLE, &pub_chain(p));
    }
    if size > 0 {
        let mut e = vec![Expr::Immediate { dreg: Reg::R32(0), data: service_key(&p.service) }];
        e.extend(select_and_dnat(p.service.vip.is_ipv4(), size));
        b.add_rule(FAMILY, LB_TABLE, &pub_chain(p), &e, None);
    }
}

/// Data elements waiting to be sent, per map: `key → value`.
type Pending = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

/// The net change of the selection maps within a transaction: per service, slot → (it had an
/// element before the transaction, its owner at the end).
type SlotDiff = BTreeMap<ServiceKey, BTreeMap<u32, (bool, Option<BackendAddr>)>>;

fn slot_elem(k: &ServiceKey, slot: u32) -> Vec<u8> {
    let mut v = service_key(k);
    v.extend(slot_key(slot));
    v
}

fn backend_elem(k: &ServiceKey, (ip, port): BackendAddr) -> Vec<u8> {
    let mut v = service_key(k);
    v.extend(addr_port(ip, port));
    v
}

/// The transaction for `ops`.
pub(crate) fn encode(ops: &[Op]) -> Batch {
    let mut b = Batch::new();
    // A service's `services` element is written with its final slot count: by its AddService
    // when that is in this transaction, else replaced by its last resize (a bulk `lb_apply`
    // resizes a growing service several times). Indexed by the op that writes it.
    let mut final_size: BTreeMap<usize, u32> = BTreeMap::new();
    {
        let mut writer: BTreeMap<ServiceKey, (usize, bool)> = BTreeMap::new();
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::AddService(k) => {
                    writer.insert(*k, (i, true));
                    final_size.insert(i, 0);
                }
                Op::DelService(k) => {
                    writer.remove(k);
                }
                Op::Slots { svc, resize: Some(size), .. } => {
                    let (at, added) = match writer.get(svc) {
                        Some(&(at, true)) => (at, true),
                        Some(&(prev, false)) => {
                            final_size.remove(&prev);
                            (i, false)
                        }
                        None => (i, false),
                    };
                    writer.insert(*svc, (at, added));
                    final_size.insert(at, *size);
                }
                _ => {}
            }
        }
    }
    // Data elements are queued per map and sent as one message per map (a message per element
    // cost a set lookup each); slot elements are reduced to each slot's net change, so a slot
    // moved several times while a bulk `lb_apply` builds a service is written once. Both are
    // flushed before anything deletes a backend, a service or a published port.
    let mut pending: Pending = BTreeMap::new();
    let mut slots: SlotDiff = BTreeMap::new();
    let flush = |b: &mut Batch, pending: &mut Pending, slots: &mut SlotDiff| {
        for (set, elems) in std::mem::take(pending) {
            b.add_data_elems(FAMILY, LB_TABLE, &set, &elems);
        }
        let mut del: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        let mut add: Pending = BTreeMap::new();
        for (k, diff) in std::mem::take(slots) {
            let set = sel_map(&k);
            let (del, add) = (del.entry(set.clone()).or_default(), add.entry(set).or_default());
            for (slot, (had, now)) in diff {
                if had {
                    del.push(slot_elem(&k, slot));
                }
                if let Some((ip, port)) = now {
                    add.push((slot_elem(&k, slot), addr_port(ip, port)));
                }
            }
        }
        for (set, keys) in del {
            b.del_elems(FAMILY, LB_TABLE, &set, &keys);
        }
        for (set, elems) in add {
            b.add_data_elems(FAMILY, LB_TABLE, &set, &elems);
        }
    };
    // The table, then the slot-count chains, before anything that may refer to them (a new
    // service's element is written with its final verdict, which may go to a chain this
    // transaction makes later).
    if ops.contains(&Op::CreateTable) {
        skeleton(&mut b);
    }
    for op in ops {
        if let Op::AddClass { v4, size } = op {
            class(&mut b, *v4, *size);
        }
    }
    for (i, op) in ops.iter().enumerate() {
        if matches!(op, Op::DelService(..) | Op::DelBackend(..) | Op::Unpublish(_)) {
            flush(&mut b, &mut pending, &mut slots);
        }
        match op {
            Op::CreateTable | Op::AddClass { .. } => {}
            Op::AddService(k) => {
                let size = final_size.get(&i).copied().unwrap_or(0);
                b.add_elems(FAMILY, LB_TABLE, &services_map(k), &[(service_key(k), Some(service_verdict(k, size)))]);
            }
            Op::DelService(k) => b.del_elems(FAMILY, LB_TABLE, &services_map(k), &[service_key(k)]),
            Op::AddBackend(k, be) => pending
                .entry(be_map(k))
                .or_default()
                .push((backend_elem(k, (be.ip, be.port)), be.weight.to_ne_bytes().to_vec())),
            Op::DelBackend(k, a) => b.del_elems(FAMILY, LB_TABLE, &be_map(k), &[backend_elem(k, *a)]),
            Op::Slots { svc, del, add, .. } => {
                let d = slots.entry(*svc).or_default();
                for s in del {
                    d.entry(*s).or_insert((true, None)).1 = None;
                }
                for (s, owner) in add {
                    d.entry(*s).or_insert((false, None)).1 = Some(*owner);
                }
                if let Some(size) = final_size.get(&i) {
                    let map = services_map(svc);
                    b.del_elems(FAMILY, LB_TABLE, &map, &[service_key(svc)]);
                    b.add_elems(FAMILY, LB_TABLE, &map, &[(service_key(svc), Some(service_verdict(svc, *size)))]);
                }
            }
            Op::Publish(p, size) => {
                let comment = format!("{PUB_COMMENT} {} {} {}", p.service.proto, p.service.vip, p.service.port);
                b.add_chain(&chain(&pub_chain(p), None, Some(comment)), true);
                published_rule(&mut b, p, *size, false);
                b.add_elems(
                    FAMILY,
                    LB_TABLE,
                    PUBLISHED,
                    &[(published_key(&p.iface, p.proto, p.port), Some(Verdict::Goto(pub_chain(p))))],
                );
            }
            Op::Republish(p, size) => published_rule(&mut b, p, *size, true),
            Op::Unpublish(p) => {
                b.del_elems(FAMILY, LB_TABLE, PUBLISHED, &[published_key(&p.iface, p.proto, p.port)]);
                b.flush_chain(FAMILY, LB_TABLE, &pub_chain(p));
                b.del_chain(FAMILY, LB_TABLE, &pub_chain(p));
            }
        }
    }
    flush(&mut b, &mut pending, &mut slots);
    b
}

/// The batch that deletes the whole load balancer.
pub(crate) fn encode_clear() -> Batch {
    let mut b = Batch::new();
    b.del_table(FAMILY, LB_TABLE);
    b
}

fn parse_service(words: &[&str]) -> Option<ServiceKey> {
    match words {
        [proto, vip, port, ..] => {
            Some(ServiceKey { proto: proto.parse().ok()?, vip: vip.parse().ok()?, port: port.parse().ok()? })
        }
        _ => None,
    }
}

const READ_OP: &str = "read load balancer from nf_tables";

fn inconsistent(detail: String) -> Error {
    Error::Protocol { op: READ_OP, detail }
}

/// True when `e` says the table exists but is not laid out as this version builds it.
pub(crate) fn is_unreadable(e: &Error) -> bool {
    matches!(e, Error::Protocol { op, .. } if *op == READ_OP)
}

/// Reads the load balancer's state, consistent with the generation id returned.
pub(crate) fn load(sock: &NftSocket) -> Result<(LbState, u32)> {
    for _ in 0..8 {
        let g = sock.genid()?;
        let st = load_once(sock)?;
        if sock.genid()? == g {
            st.check().map_err(inconsistent)?;
            return Ok((st, g));
        }
    }
    Err(Error::DumpInterrupted { op: READ_OP, attempts: 8 })
}

fn u32_of(b: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(..4)?.try_into().ok()?))
}

fn load_once(sock: &NftSocket) -> Result<LbState> {
    let mut st = LbState::default();
    if !sock.tables()?.iter().any(|t| t.name == LB_TABLE && t.family == Some(FAMILY)) {
        return Ok(st);
    }
    st.table = true;
    let sets = sock.sets(FAMILY, LB_TABLE)?;
    for map in ["services4", "services6", "sel4", "sel6", "backends4", "backends6", PUBLISHED] {
        if !sets.iter().any(|s| s.name == map) {
            return Err(inconsistent(format!("table {LB_TABLE} has no map {map}: not built by this version")));
        }
    }
    for (map, klen) in [("services4", 12), ("services6", 24)] {
        for e in sock.elems(FAMILY, LB_TABLE, map)? {
            let bad = || inconsistent(format!("{map}: bad element"));
            let k = e.key.get(..klen).and_then(parse_service_key).ok_or_else(bad)?;
            let size = match &e.verdict {
                Some(Verdict::Return) => 0,
                Some(Verdict::Goto(c)) => class_size(c).ok_or_else(bad)?,
                _ => return Err(bad()),
            };
            st.services.entry(k).or_default().slots = vec![None; size as usize];
        }
    }
    // Elements of services that have no `services` element are someone else's (the kernel
    // never holds ours without it): skipped, with a warning.
    for (map, klen) in [("backends4", 12), ("backends6", 24)] {
        for e in sock.elems(FAMILY, LB_TABLE, map)? {
            let bad = || inconsistent(format!("{map}: bad element"));
            let k = e.key.get(..klen).and_then(parse_service_key).ok_or_else(bad)?;
            let addr = e.key.get(klen..).and_then(parse_addr_port).ok_or_else(bad)?;
            let weight = e.data.as_deref().and_then(u32_of).ok_or_else(bad)?;
            match st.services.get_mut(&k) {
                Some(s) => {
                    s.backends.insert(addr, Be { weight, slots: Vec::new() });
                }
                None => warn!("{map}: backend of unknown service {k} ignored"),
            }
        }
    }
    for (map, klen) in [("sel4", 12), ("sel6", 24)] {
        for e in sock.elems(FAMILY, LB_TABLE, map)? {
            let bad = || inconsistent(format!("{map}: bad element"));
            let k = e.key.get(..klen).and_then(parse_service_key).ok_or_else(bad)?;
            let slot = e.key.get(klen..).and_then(u32_of).ok_or_else(bad)?;
            let Some(s) = st.services.get_mut(&k) else {
                warn!("{map}: slot of unknown service {k} ignored");
                continue;
            };
            let owner = match e.data.as_deref().and_then(parse_addr_port) {
                Some(a) if s.backends.contains_key(&a) => a,
                _ => return Err(inconsistent(format!("{map}: slot {slot} of {k} leads nowhere known"))),
            };
            let size = s.slots.len();
            let cell = s
                .slots
                .get_mut(slot as usize)
                .ok_or_else(|| inconsistent(format!("{map}: slot {slot} of {k} beyond its {size} slots")))?;
            *cell = Some(owner);
            if let Some(b) = s.backends.get_mut(&owner) {
                b.slots.push(slot);
            }
        }
    }
    let mut by_chain: BTreeMap<String, ServiceKey> = BTreeMap::new();
    for c in sock.chains(FAMILY, LB_TABLE)? {
        if let Some(size) = class_size(&c.name) {
            st.classes.insert((c.name.starts_with("slots4-"), size));
        }
        let Some(rest) = c.comment.as_deref().and_then(|t| t.strip_prefix(PUB_COMMENT)) else { continue };
        let words: Vec<&str> = rest.split_whitespace().collect();
        let k = parse_service(&words).ok_or_else(|| inconsistent(format!("chain {}: bad comment", c.name)))?;
        by_chain.insert(c.name, k);
    }
    for e in sock.elems(FAMILY, LB_TABLE, PUBLISHED)? {
        let (Some(name), Some(pp)) = (e.key.get(..16), e.key.get(16..24)) else { continue };
        let iface = String::from_utf8_lossy(name.split(|&b| b == 0).next().unwrap_or_default()).into_owned();
        let (Some(proto), port) = (Protocol::from_number(pp[0]), u16::from_be_bytes([pp[4], pp[5]])) else { continue };
        let Some(service) = e.verdict.as_ref().and_then(Verdict::chain).and_then(|c| by_chain.get(c)) else {
            continue;
        };
        st.published.insert((iface, proto, port), *service);
    }
    Ok(st)
}
