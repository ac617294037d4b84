//! The load balancer's nf_tables layout: [`Op`]s encoded as batch messages, and the state read
//! back from the kernel (service chain comments, the service rules' slot counts, backends and
//! selection maps, published ports).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::model::{BackendAddr, Be, LbState, Op, Svc};
use super::{Protocol, ServiceKey};
use crate::error::{Error, Result};
use crate::netlink::nftables::expr::{Expr, NatKind, Payload, Reg, Verdict, ct, meta};
use crate::netlink::nftables::{Batch, ChainSpec, CmpOp, Family, Hook, NFT_DATA_VERDICT, NftSocket, SetSpec, dtype};

/// The load balancer's table (family `inet`).
pub const LB_TABLE: &str = "netsandbox";
/// The masquerade table (family `inet`).
pub const MASQ_TABLE: &str = "netsandbox-masq";
const FAMILY: Family = Family::Inet;
const SERVICES: &str = "services";
const SERVICES4: &str = "services4";
const SERVICES6: &str = "services6";
const PUBLISHED: &str = "published";
const SVC_COMMENT: &str = "netsandbox service";
/// `NF_IP_PRI_NAT_DST` / `NF_IP_PRI_NAT_SRC`.
const PRIO_DSTNAT: i32 = -100;
const PRIO_SRCNAT: i32 = 100;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

fn next_set_id() -> u32 {
    static ID: AtomicU32 = AtomicU32::new(1);
    ID.fetch_add(1, Ordering::Relaxed)
}

/// An address as nft's parser accepts it inside an identifier (no `:`), so the names work
/// in `nft` commands too.
fn ident(ip: IpAddr) -> String {
    ip.to_string().replace(':', "_")
}

fn svc_id(k: &ServiceKey) -> String {
    format!("{}-{}-{}", k.proto, ident(k.vip), k.port)
}

pub(crate) fn svc_chain(k: &ServiceKey) -> String {
    format!("svc-{}", svc_id(k))
}

fn sel_map(k: &ServiceKey) -> String {
    format!("sel-{}", svc_id(k))
}

fn be_map(k: &ServiceKey) -> String {
    format!("be-{}", svc_id(k))
}

/// `addr . port` as concatenated register fields (the port padded to 4 bytes): the backends
/// map's key and the selection map's data, which `dnat` reads as address and port registers.
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

fn data_map(name: &str, key_type: u32, key_len: u32, concat: Vec<u32>, data_type: u32, data_len: u32) -> SetSpec {
    SetSpec { data_type: Some(data_type), data_len, ..verdict_map(name, key_type, key_len, concat) }
}

/// The service's backends map `addr . port → weight` (what `restore` reads backends from) and
/// its selection map `slot → addr . port` (what `dnat` reads).
fn service_maps(k: &ServiceKey) -> [SetSpec; 2] {
    let (addr_type, alen) = if k.vip.is_ipv4() { (dtype::IPADDR, 4) } else { (dtype::IP6ADDR, 16) };
    let ap = dtype::concat(&[addr_type, dtype::INET_SERVICE]);
    [
        data_map(&be_map(k), ap, alen + 4, vec![alen, 2], dtype::INTEGER, 4),
        data_map(&sel_map(k), dtype::INTEGER, 4, Vec::new(), ap, alen + 4),
    ]
}

fn nfproto(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { NFPROTO_IPV4 } else { NFPROTO_IPV6 }
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

fn skeleton(b: &mut Batch) {
    b.add_table(FAMILY, LB_TABLE, Some("netsandbox load balancer"));
    let l4 = [dtype::INET_PROTOCOL, dtype::INET_SERVICE];
    b.add_set(&verdict_map(SERVICES4, dtype::concat(&[dtype::IPADDR, l4[0], l4[1]]), 12, vec![4, 1, 2]));
    b.add_set(&verdict_map(SERVICES6, dtype::concat(&[dtype::IP6ADDR, l4[0], l4[1]]), 24, vec![16, 1, 2]));
    b.add_set(&verdict_map(PUBLISHED, dtype::concat(&[dtype::IFNAME, l4[0], l4[1]]), 24, vec![16, 1, 2]));
    b.add_chain(&chain(SERVICES, None, None), true);
    for (p, off, len, map) in [(NFPROTO_IPV4, 16, 4u8, SERVICES4), (NFPROTO_IPV6, 24, 16, SERVICES6)] {
        let r = len / 4;
        let mut e = match_nfproto(p).to_vec();
        e.extend([
            Expr::Payload { base: Payload::Network, offset: off, len: u32::from(len), dreg: Reg::R32(0) },
            Expr::Meta { key: meta::L4PROTO, dreg: Reg::R32(r) },
            Expr::Payload { base: Payload::Transport, offset: 2, len: 2, dreg: Reg::R32(r + 1) },
            Expr::Lookup { set: map.into(), sreg: Reg::R32(0), dreg: Some(Reg::Verdict) },
        ]);
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

/// Data elements waiting to be sent, per map: `key → value`.
type Pending = BTreeMap<String, Vec<(Vec<u8>, Vec<u8>)>>;

/// The net change of one selection map within a transaction: slot → (it had an element before
/// the transaction, its owner at the end).
type SlotDiff = BTreeMap<u32, (bool, Option<BackendAddr>)>;

/// The service rule: `dnat to numgen random mod size map @sel-…`. The looked-up `addr . port`
/// lands in consecutive registers from R32(0): the address, then the port right after it.
fn service_rule(b: &mut Batch, svc: &ServiceKey, size: u32) {
    let port_reg = if svc.vip.is_ipv4() { 1 } else { 4 };
    b.add_rule(
        FAMILY,
        LB_TABLE,
        &svc_chain(svc),
        &[
            Expr::Numgen { dreg: Reg::R32(0), modulus: size, random: true },
            Expr::Lookup { set: sel_map(svc), sreg: Reg::R32(0), dreg: Some(Reg::R32(0)) },
            Expr::Nat {
                kind: NatKind::Dnat,
                family: nfproto(svc.vip),
                addr: Some(Reg::R32(0)),
                port: Some(Reg::R32(port_reg)),
            },
        ],
        None,
    );
}

/// The transaction for `ops`.
pub(crate) fn encode(ops: &[Op]) -> Batch {
    let mut b = Batch::new();
    // A service's rule is written only on a resize, and once per transaction, by its last one
    // (a bulk `lb_apply` resizes a growing service several times).
    let mut last_resize: BTreeMap<ServiceKey, usize> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        if let Op::Slots { svc, resize: Some(_), .. } = op {
            last_resize.insert(*svc, i);
        }
    }
    // Backends-map elements are queued per map and sent as one message per map (a message per
    // backend cost a set lookup by name each); slot elements are reduced to each slot's net
    // change, so a slot moved several times while a bulk `lb_apply` builds a service is written
    // once. Both are flushed before anything deletes a backend, a service or a published port.
    let mut pending: Pending = BTreeMap::new();
    let mut slots: BTreeMap<ServiceKey, SlotDiff> = BTreeMap::new();
    let flush = |b: &mut Batch, pending: &mut Pending, slots: &mut BTreeMap<ServiceKey, SlotDiff>| {
        for (set, elems) in std::mem::take(pending) {
            b.add_data_elems(FAMILY, LB_TABLE, &set, &elems);
        }
        for (k, diff) in std::mem::take(slots) {
            let sel = sel_map(&k);
            let del: Vec<_> = diff.iter().filter(|(_, (had, _))| *had).map(|(s, _)| slot_key(*s)).collect();
            b.del_elems(FAMILY, LB_TABLE, &sel, &del);
            let add: Vec<_> =
                diff.iter().filter_map(|(s, (_, o))| o.map(|(ip, port)| (slot_key(*s), addr_port(ip, port)))).collect();
            if !add.is_empty() {
                b.add_data_elems(FAMILY, LB_TABLE, &sel, &add);
            }
        }
    };
    for (i, op) in ops.iter().enumerate() {
        if matches!(op, Op::DelService(..) | Op::DelBackend(..) | Op::Unpublish(_)) {
            flush(&mut b, &mut pending, &mut slots);
        }
        match op {
            Op::CreateTable => skeleton(&mut b),
            Op::AddService(k) => {
                let comment = format!("{SVC_COMMENT} {} {} {}", k.proto, k.vip, k.port);
                b.add_chain(&chain(&svc_chain(k), None, Some(comment)), true);
                for m in service_maps(k) {
                    b.add_set(&m);
                }
                let map = if k.vip.is_ipv4() { SERVICES4 } else { SERVICES6 };
                b.add_elems(FAMILY, LB_TABLE, map, &[(service_key(k), Some(Verdict::Goto(svc_chain(k))))]);
            }
            Op::DelService(k, _) => {
                let map = if k.vip.is_ipv4() { SERVICES4 } else { SERVICES6 };
                b.del_elems(FAMILY, LB_TABLE, map, &[service_key(k)]);
                b.flush_chain(FAMILY, LB_TABLE, &svc_chain(k));
                b.del_set(FAMILY, LB_TABLE, &sel_map(k));
                b.del_set(FAMILY, LB_TABLE, &be_map(k));
                b.del_chain(FAMILY, LB_TABLE, &svc_chain(k));
            }
            Op::AddBackend(k, be) => pending
                .entry(be_map(k))
                .or_default()
                .push((addr_port(be.ip, be.port), be.weight.to_ne_bytes().to_vec())),
            Op::DelBackend(k, (ip, port)) => b.del_elems(FAMILY, LB_TABLE, &be_map(k), &[addr_port(*ip, *port)]),
            Op::Slots { svc, del, add, resize } => {
                let d = slots.entry(*svc).or_default();
                for s in del {
                    d.entry(*s).or_insert((true, None)).1 = None;
                }
                for (s, o) in add {
                    d.entry(*s).or_insert((false, None)).1 = Some(*o);
                }
                if let Some(size) = resize
                    && last_resize.get(svc) == Some(&i)
                {
                    b.flush_chain(FAMILY, LB_TABLE, &svc_chain(svc));
                    service_rule(&mut b, svc, *size);
                }
            }
            Op::Publish(p) => b.add_elems(
                FAMILY,
                LB_TABLE,
                PUBLISHED,
                &[(published_key(&p.iface, p.proto, p.port), Some(Verdict::Goto(svc_chain(&p.service))))],
            ),
            Op::Unpublish(p) => b.del_elems(FAMILY, LB_TABLE, PUBLISHED, &[published_key(&p.iface, p.proto, p.port)]),
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

fn inconsistent(detail: String) -> Error {
    Error::Protocol { op: "read load balancer from nf_tables", detail }
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
    Err(Error::DumpInterrupted { op: "read load balancer from nf_tables", attempts: 8 })
}

fn load_once(sock: &NftSocket) -> Result<LbState> {
    let mut st = LbState::default();
    if !sock.tables()?.iter().any(|t| t.name == LB_TABLE && t.family == Some(FAMILY)) {
        return Ok(st);
    }
    st.table = true;
    let mut by_chain: BTreeMap<String, ServiceKey> = BTreeMap::new();
    for c in sock.chains(FAMILY, LB_TABLE)? {
        let Some(comment) = &c.comment else { continue };
        if let Some(rest) = comment.strip_prefix(SVC_COMMENT) {
            let words: Vec<&str> = rest.split_whitespace().collect();
            let k = parse_service(&words).ok_or_else(|| inconsistent(format!("chain {}: bad comment", c.name)))?;
            st.services.entry(k).or_default();
            by_chain.insert(c.name, k);
        }
    }
    let mut modulus: BTreeMap<String, u32> = BTreeMap::new();
    for r in sock.table_rules(FAMILY, LB_TABLE)? {
        if by_chain.contains_key(&r.chain)
            && let Some(m) = r.numgen_modulus()
        {
            modulus.insert(r.chain, m);
        }
    }
    let keys: Vec<ServiceKey> = st.services.keys().copied().collect();
    for k in keys {
        let s: &mut Svc = st.services.entry(k).or_default();
        for e in sock.elems(FAMILY, LB_TABLE, &be_map(&k))? {
            let bad = || inconsistent(format!("{}: bad element", be_map(&k)));
            let addr = parse_addr_port(&e.key).ok_or_else(bad)?;
            let weight = e
                .data
                .as_deref()
                .and_then(|d| d.get(..4))
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(bad)?;
            s.backends.insert(addr, Be { weight, slots: Vec::new() });
        }
        // S is the modulus of the service rule's numgen (no rule: no backend was ever added).
        let size = modulus.get(&svc_chain(&k)).copied().unwrap_or(0);
        s.slots = vec![None; size as usize];
        for e in sock.elems(FAMILY, LB_TABLE, &sel_map(&k))? {
            let slot = e
                .key
                .get(..4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| inconsistent(format!("{}: short key", sel_map(&k))))?;
            let owner = match e.data.as_deref().and_then(parse_addr_port) {
                Some(a) if s.backends.contains_key(&a) => a,
                _ => return Err(inconsistent(format!("{}: slot {slot} leads nowhere known", sel_map(&k)))),
            };
            let cell = s
                .slots
                .get_mut(slot as usize)
                .ok_or_else(|| inconsistent(format!("{}: slot {slot} beyond the modulus {size}", sel_map(&k))))?;
            *cell = Some(owner);
            if let Some(b) = s.backends.get_mut(&owner) {
                b.slots.push(slot);
            }
        }
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
