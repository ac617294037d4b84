//! nf_tables messages: attribute encoding, the [`Batch`] a change is built in, and checked
//! decoders for what dumps return (tables, chains, sets, set elements, the generation id).

use super::attr::*;
use super::expr::{Expr, Verdict};
use super::{NFNL_BATCH_GENID, NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END, NFNL_SUBSYS_NFTABLES, msg_type, nft_type};
use crate::netlink::wire::{HEADER_LEN, Header, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, WireError};

/// `NLM_F_APPEND`: a new rule goes at the end of its chain.
const NLM_F_APPEND: u16 = 0x800;
/// Size of `struct nfgenmsg`.
pub const NFGENMSG_LEN: usize = 4;
/// Longest name nf_tables accepts (`NFT_NAME_MAXLEN` - 1 for the NUL).
pub const NAME_MAX: usize = 255;
/// `NFTNL_UDATA_*_COMMENT`: the comment TLV of table, chain, rule and set userdata.
const UDATA_COMMENT: u8 = 0;

/// An nf_tables address family (`NFPROTO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Family {
    /// `inet`: IPv4 and IPv6 in one table.
    Inet = 1,
    /// `ip`.
    Ip = 2,
    /// `ip6`.
    Ip6 = 10,
}

impl Family {
    /// The family from its `NFPROTO_*` number.
    pub fn from_u8(v: u8) -> Option<Family> {
        match v {
            1 => Some(Family::Inet),
            2 => Some(Family::Ip),
            10 => Some(Family::Ip6),
            _ => None,
        }
    }
}

/// A netfilter hook of the inet families.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Hook {
    /// `NF_INET_PRE_ROUTING`.
    Prerouting = 0,
    /// `NF_INET_LOCAL_IN`.
    Input = 1,
    /// `NF_INET_FORWARD`.
    Forward = 2,
    /// `NF_INET_LOCAL_OUT`.
    Output = 3,
    /// `NF_INET_POST_ROUTING`.
    Postrouting = 4,
}

/// A chain to create: a regular chain, or a base chain when `hook` is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSpec {
    /// Table family.
    pub family: Family,
    /// Table name.
    pub table: String,
    /// Chain name.
    pub name: String,
    /// For a base chain: the hook, its priority and the chain type (`"nat"`, `"filter"`).
    pub hook: Option<(Hook, i32, &'static str)>,
    /// Stored as the chain's comment (userdata), shown by `nft list`.
    pub comment: Option<String>,
}

/// A named set or map to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    /// Table family.
    pub family: Family,
    /// Table name.
    pub table: String,
    /// Set name.
    pub name: String,
    /// `NFT_SET_*` flags (`MAP` is added for a verdict map).
    pub flags: u32,
    /// nft datatype id of the key (see [`super::dtype`]).
    pub key_type: u32,
    /// Key length in bytes (each concatenated field padded to 4).
    pub key_len: u32,
    /// Lengths of the concatenated fields, when the key is a concatenation.
    pub concat: Vec<u32>,
    /// `Some(NFT_DATA_VERDICT)` for a verdict map.
    pub data_type: Option<u32>,
    /// Data length (0 for a verdict map).
    pub data_len: u32,
    /// Set id, for references from the same batch.
    pub id: u32,
}

/// The description of one message of a batch, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct MsgMeta {
    pub(crate) op: &'static str,
    pub(crate) object: String,
    /// Offset of the message in the batch body.
    pub(crate) start: usize,
    /// Byte ranges (relative to the message) of each expression, with its name.
    pub(crate) exprs: Vec<(usize, usize, &'static str)>,
}

/// One nf_tables transaction under construction. Sent by [`super::NftSocket::commit`] as
/// `BATCH_BEGIN`, the messages, `BATCH_END`, in one `sendmsg`; the kernel applies all or none.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub(crate) body: Vec<u8>,
    pub(crate) msgs: Vec<MsgMeta>,
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Appends one attribute (header, value, padding).
pub fn put(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(align4(buf.len()), 0);
}

/// Appends a NUL-terminated string attribute.
pub fn put_str(buf: &mut Vec<u8>, kind: u16, s: &str) {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    put(buf, kind, &v);
}

/// Appends a big-endian u32 attribute (nf_tables' integers are all network order).
pub fn put_be32(buf: &mut Vec<u8>, kind: u16, v: u32) {
    put(buf, kind, &v.to_be_bytes());
}

/// Appends a nested attribute whose contents `f` writes.
pub fn nest(buf: &mut Vec<u8>, kind: u16, f: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    f(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    buf[start + 2..start + 4].copy_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
}

/// A `NFTA_DATA_VALUE` inside a nested data attribute `kind`.
pub fn put_value(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    nest(buf, kind, |b| put(b, NFTA_DATA_VALUE, value));
}

/// A `NFTA_DATA_VERDICT` inside a nested data attribute `kind`.
pub fn put_verdict(buf: &mut Vec<u8>, kind: u16, v: &Verdict) {
    nest(buf, kind, |b| {
        nest(b, NFTA_DATA_VERDICT, |b| {
            put_be32(b, NFTA_VERDICT_CODE, v.code() as u32);
            if let Some(chain) = v.chain() {
                put_str(b, NFTA_VERDICT_CHAIN, chain);
            }
        })
    });
}

/// nft's userdata TLV holding a comment (`NFTNL_UDATA_*_COMMENT`), cut to what fits.
pub fn comment_udata(comment: &str) -> Vec<u8> {
    let mut text = comment.as_bytes();
    if text.len() > 254 {
        text = &text[..254];
    }
    let mut v = vec![UDATA_COMMENT, (text.len() + 1) as u8];
    v.extend_from_slice(text);
    v.push(0);
    v
}

/// The comment in a userdata blob, if it holds one.
pub fn parse_comment(udata: &[u8]) -> Option<String> {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], rest[1] as usize);
        let value = rest.get(2..2 + len)?;
        if kind == UDATA_COMMENT {
            let text = value.split(|&b| b == 0).next().unwrap_or_default();
            return String::from_utf8(text.to_vec()).ok();
        }
        rest = &rest[2 + len..];
    }
    None
}

/// Iterates over netlink attributes: `(type without flags, value)`. Stops at the first
/// malformed one; never panics.
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let kind = u16::from_ne_bytes([buf[2], buf[3]]) & 0x3fff;
        if len < 4 || len > buf.len() {
            buf = &[];
            return None;
        }
        let value = &buf[4..len];
        buf = buf.get(align4(len)..).unwrap_or_default();
        Some((kind, value))
    })
}

fn str_of(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or_default()).into_owned()
}

fn be32(v: &[u8]) -> Option<u32> {
    v.get(..4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

fn be64(v: &[u8]) -> Option<u64> {
    v.get(..8).map(|b| u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
}

/// `elems` cut into runs whose encoded element list stays below the 64 KiB a netlink
/// attribute's 16-bit length can describe; `bound` over-estimates one element's encoding.
fn elem_chunks<T>(elems: &[T], bound: impl Fn(&T) -> usize) -> impl Iterator<Item = &[T]> {
    const LIMIT: usize = 60_000;
    let mut rest = elems;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (mut n, mut size) = (0, 0);
        while n < rest.len() && (n == 0 || size + bound(&rest[n]) <= LIMIT) {
            size += bound(&rest[n]);
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// Number of messages (without begin/end).
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    /// Encoded size of the messages in bytes.
    pub fn byte_len(&self) -> usize {
        self.body.len()
    }

    /// Starts a message; `f` writes its attributes. Returns the message's index.
    fn message(
        &mut self,
        m: u8,
        flags: u16,
        family: Family,
        op: &'static str,
        object: String,
        f: impl FnOnce(&mut Vec<u8>, &mut Vec<(usize, usize, &'static str)>),
    ) {
        let start = self.body.len();
        self.body.resize(start + HEADER_LEN, 0);
        self.body.extend_from_slice(&[family as u8, 0, 0, 0]);
        let mut exprs = Vec::new();
        f(&mut self.body, &mut exprs);
        let len = self.body.len() - start;
        Header { len: len as u32, kind: nft_type(m), flags: NLM_F_REQUEST | flags, seq: 0, port: 0 }
            .emit(&mut self.body[start..start + HEADER_LEN]);
        for e in &mut exprs {
            e.0 -= start;
            e.1 -= start;
        }
        self.msgs.push(MsgMeta { op, object, start, exprs });
    }

    /// Creates table `name` (no error when it exists).
    pub fn add_table(&mut self, family: Family, name: &str, comment: Option<&str>) {
        self.message(msg_type::NEWTABLE, NLM_F_CREATE, family, "add table", name.into(), |b, _| {
            put_str(b, NFTA_TABLE_NAME, name);
            put_be32(b, NFTA_TABLE_FLAGS, 0);
            if let Some(c) = comment {
                put(b, NFTA_TABLE_USERDATA, &comment_udata(c));
            }
        });
    }

    /// Deletes table `name` with everything in it.
    pub fn del_table(&mut self, family: Family, name: &str) {
        self.message(msg_type::DELTABLE, 0, family, "delete table", name.into(), |b, _| {
            put_str(b, NFTA_TABLE_NAME, name);
        });
    }

    /// Creates a chain; `exclusive` makes an existing one an error (`EEXIST`).
    pub fn add_chain(&mut self, c: &ChainSpec, exclusive: bool) {
        let flags = NLM_F_CREATE | if exclusive { NLM_F_EXCL } else { 0 };
        self.message(msg_type::NEWCHAIN, flags, c.family, "add chain", c.name.clone(), |b, _| {
            put_str(b, NFTA_CHAIN_TABLE, &c.table);
            put_str(b, NFTA_CHAIN_NAME, &c.name);
            if let Some((hook, prio, kind)) = c.hook {
                nest(b, NFTA_CHAIN_HOOK, |b| {
                    put_be32(b, NFTA_HOOK_HOOKNUM, hook as u32);
                    put_be32(b, NFTA_HOOK_PRIORITY, prio as u32);
                });
                put_be32(b, NFTA_CHAIN_POLICY, 1); // NF_ACCEPT
                put_str(b, NFTA_CHAIN_TYPE, kind);
            }
            if let Some(cm) = &c.comment {
                put(b, NFTA_CHAIN_USERDATA, &comment_udata(cm));
            }
        });
    }

    /// Deletes a chain and its rules (it must not be referenced any more).
    pub fn del_chain(&mut self, family: Family, table: &str, name: &str) {
        self.message(msg_type::DELCHAIN, 0, family, "delete chain", name.into(), |b, _| {
            put_str(b, NFTA_CHAIN_TABLE, table);
            put_str(b, NFTA_CHAIN_NAME, name);
        });
    }

    /// Deletes every rule of a chain.
    pub fn flush_chain(&mut self, family: Family, table: &str, chain: &str) {
        self.message(msg_type::DELRULE, 0, family, "flush chain", chain.into(), |b, _| {
            put_str(b, NFTA_RULE_TABLE, table);
            put_str(b, NFTA_RULE_CHAIN, chain);
        });
    }

    /// Deletes one rule by handle.
    pub fn del_rule(&mut self, family: Family, table: &str, chain: &str, handle: u64) {
        self.message(msg_type::DELRULE, 0, family, "delete rule", format!("{chain} handle {handle}"), |b, _| {
            put_str(b, NFTA_RULE_TABLE, table);
            put_str(b, NFTA_RULE_CHAIN, chain);
            put(b, NFTA_RULE_HANDLE, &handle.to_be_bytes());
        });
    }

    /// Appends a rule made of `exprs` to a chain.
    pub fn add_rule(&mut self, family: Family, table: &str, chain: &str, exprs: &[Expr], comment: Option<&str>) {
        self.message(msg_type::NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, "add rule", chain.into(), |b, spans| {
            put_str(b, NFTA_RULE_TABLE, table);
            put_str(b, NFTA_RULE_CHAIN, chain);
            nest(b, NFTA_RULE_EXPRESSIONS, |b| {
                for e in exprs {
                    let s = b.len();
                    nest(b, NFTA_LIST_ELEM, |b| {
                        put_str(b, NFTA_EXPR_NAME, e.name());
                        nest(b, NFTA_EXPR_DATA, |b| e.encode(b));
                    });
                    spans.push((s, b.len(), e.name()));
                }
            });
            if let Some(c) = comment {
                put(b, NFTA_RULE_USERDATA, &comment_udata(c));
            }
        });
    }

    /// Creates a named set or map (no error when an identical one exists).
    pub fn add_set(&mut self, s: &SetSpec) {
        self.message(msg_type::NEWSET, NLM_F_CREATE, s.family, "add set", s.name.clone(), |b, _| {
            put_str(b, NFTA_SET_TABLE, &s.table);
            put_str(b, NFTA_SET_NAME, &s.name);
            let mut flags = s.flags;
            if s.data_type.is_some() {
                flags |= super::set_flags::MAP;
            }
            if !s.concat.is_empty() {
                flags |= super::set_flags::CONCAT;
            }
            put_be32(b, NFTA_SET_FLAGS, flags);
            put_be32(b, NFTA_SET_KEY_TYPE, s.key_type);
            put_be32(b, NFTA_SET_KEY_LEN, s.key_len);
            if let Some(dt) = s.data_type {
                put_be32(b, NFTA_SET_DATA_TYPE, dt);
                put_be32(b, NFTA_SET_DATA_LEN, s.data_len);
            }
            put_be32(b, NFTA_SET_ID, s.id);
            if !s.concat.is_empty() {
                nest(b, NFTA_SET_DESC, |b| {
                    nest(b, NFTA_SET_DESC_CONCAT, |b| {
                        for len in &s.concat {
                            nest(b, NFTA_LIST_ELEM, |b| put_be32(b, NFTA_SET_FIELD_LEN, *len));
                        }
                    })
                });
            }
        });
    }

    /// Deletes a set (it must not be referenced any more).
    pub fn del_set(&mut self, family: Family, table: &str, name: &str) {
        self.message(msg_type::DELSET, 0, family, "delete set", name.into(), |b, _| {
            put_str(b, NFTA_SET_TABLE, table);
            put_str(b, NFTA_SET_NAME, name);
        });
    }

    /// Adds elements `key → verdict` to a verdict map (`verdict` `None` for a plain set).
    /// Elements that exist are an error (`EEXIST`), so a change never silently overwrites.
    pub fn add_elems(&mut self, family: Family, table: &str, set: &str, elems: &[(Vec<u8>, Option<Verdict>)]) {
        let len = |v: &Option<Verdict>| v.as_ref().and_then(Verdict::chain).map_or(0, str::len);
        self.new_elems(family, table, set, elems, len, |b, v| {
            if let Some(v) = v {
                put_verdict(b, NFTA_SET_ELEM_DATA, v);
            }
        });
    }

    /// Adds elements `key → value` to a data map. Elements that exist are an error (`EEXIST`).
    pub fn add_data_elems(&mut self, family: Family, table: &str, set: &str, elems: &[(Vec<u8>, Vec<u8>)]) {
        self.new_elems(family, table, set, elems, Vec::len, |b, data| put_value(b, NFTA_SET_ELEM_DATA, data));
    }

    /// NEWSETELEM messages for `elems` (one unless the list outgrows a netlink attribute;
    /// none for no elements); `put_data` writes each element's data attribute (`data_len` its
    /// payload length), the only part in which verdict maps, data maps and sets differ.
    fn new_elems<D>(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        elems: &[(Vec<u8>, D)],
        data_len: impl Fn(&D) -> usize,
        put_data: impl Fn(&mut Vec<u8>, &D),
    ) {
        for chunk in elem_chunks(elems, |(k, d)| k.len() + data_len(d) + 48) {
            self.message(
                msg_type::NEWSETELEM,
                NLM_F_CREATE | NLM_F_EXCL,
                family,
                "add element to",
                set.into(),
                |b, _| {
                    put_str(b, NFTA_SET_ELEM_LIST_TABLE, table);
                    put_str(b, NFTA_SET_ELEM_LIST_SET, set);
                    nest(b, NFTA_SET_ELEM_LIST_ELEMENTS, |b| {
                        for (key, data) in chunk {
                            nest(b, NFTA_LIST_ELEM, |b| {
                                put_value(b, NFTA_SET_ELEM_KEY, key);
                                put_data(b, data);
                            });
                        }
                    });
                },
            );
        }
    }

    /// Deletes elements by key (a missing one is an error: `ENOENT`).
    pub fn del_elems(&mut self, family: Family, table: &str, set: &str, keys: &[Vec<u8>]) {
        for chunk in elem_chunks(keys, |k| k.len() + 16) {
            self.message(msg_type::DELSETELEM, 0, family, "delete element from", set.into(), |b, _| {
                put_str(b, NFTA_SET_ELEM_LIST_TABLE, table);
                put_str(b, NFTA_SET_ELEM_LIST_SET, set);
                nest(b, NFTA_SET_ELEM_LIST_ELEMENTS, |b| {
                    for key in chunk {
                        nest(b, NFTA_LIST_ELEM, |b| put_value(b, NFTA_SET_ELEM_KEY, key));
                    }
                });
            });
        }
    }

    /// Appends the messages of `other`.
    pub fn extend(&mut self, other: Batch) {
        let base = self.body.len();
        self.body.extend_from_slice(&other.body);
        self.msgs.extend(other.msgs.into_iter().map(|mut m| {
            m.start += base;
            m
        }));
    }

    /// The whole datagram: begin (expecting generation `genid`, 0 = any), the messages with
    /// sequence numbers `first_seq + 1 ..`, end with `NLM_F_ACK`. Returns the sequence number
    /// of the end message.
    pub(crate) fn encode(&mut self, first_seq: u32, genid: u32, out: &mut Vec<u8>) -> u32 {
        out.clear();
        let control = |out: &mut Vec<u8>, kind: u16, flags: u16, seq: u32, genid: Option<u32>| {
            let start = out.len();
            out.resize(start + HEADER_LEN, 0);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(&NFNL_SUBSYS_NFTABLES.to_be_bytes());
            if let Some(g) = genid {
                put_be32(out, NFNL_BATCH_GENID, g);
            }
            let len = (out.len() - start) as u32;
            Header { len, kind, flags: NLM_F_REQUEST | flags, seq, port: 0 }.emit(&mut out[start..start + HEADER_LEN]);
        };
        control(out, NFNL_MSG_BATCH_BEGIN, 0, first_seq, (genid != 0).then_some(genid));
        let body_start = out.len();
        out.extend_from_slice(&self.body);
        for (i, m) in self.msgs.iter().enumerate() {
            let at = body_start + m.start + 8;
            out[at..at + 4].copy_from_slice(&first_seq.wrapping_add(1 + i as u32).to_ne_bytes());
        }
        let end_seq = first_seq.wrapping_add(1 + self.msgs.len() as u32);
        control(out, NFNL_MSG_BATCH_END, NLM_F_ACK, end_seq, None);
        end_seq
    }
}

/// A table as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableInfo {
    /// Family.
    pub family: Option<Family>,
    /// Name.
    pub name: String,
    /// Comment (userdata).
    pub comment: Option<String>,
}

/// A chain as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// Family.
    pub family: Option<Family>,
    /// Table name.
    pub table: String,
    /// Chain name.
    pub name: String,
    /// Kernel handle.
    pub handle: u64,
    /// Comment (userdata).
    pub comment: Option<String>,
    /// True for a base chain.
    pub base: bool,
}

/// A set as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfo {
    /// Table name.
    pub table: String,
    /// Set name.
    pub name: String,
    /// `NFT_SET_*` flags.
    pub flags: u32,
    /// Key length.
    pub key_len: u32,
}

/// One set element as dumped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElemInfo {
    /// Key bytes.
    pub key: Vec<u8>,
    /// For a verdict map: the verdict.
    pub verdict: Option<Verdict>,
    /// For a data map: the value bytes.
    pub data: Option<Vec<u8>>,
}

/// A rule as dumped: handle, comment and its expressions as the kernel sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// Table name.
    pub table: String,
    /// Chain name.
    pub chain: String,
    /// Kernel handle.
    pub handle: u64,
    /// Comment (userdata).
    pub comment: Option<String>,
    /// Each expression's kernel name and its raw `NFTA_EXPR_DATA` attributes, in rule order.
    pub exprs: Vec<(String, Vec<u8>)>,
}

fn split_nfgen(payload: &[u8]) -> Result<(u8, &[u8]), WireError> {
    if payload.len() < NFGENMSG_LEN {
        return Err(WireError(format!("nf_tables message of {} bytes has no nfgenmsg", payload.len())));
    }
    Ok((payload[0], &payload[NFGENMSG_LEN..]))
}

impl TableInfo {
    /// Decodes a `NFT_MSG_NEWTABLE` payload.
    pub fn decode(payload: &[u8]) -> Result<TableInfo, WireError> {
        let (fam, a) = split_nfgen(payload)?;
        let mut t = TableInfo { family: Family::from_u8(fam), name: String::new(), comment: None };
        for (k, v) in attrs(a) {
            match k {
                NFTA_TABLE_NAME => t.name = str_of(v),
                NFTA_TABLE_USERDATA => t.comment = parse_comment(v),
                _ => {}
            }
        }
        Ok(t)
    }
}

impl ChainInfo {
    /// Decodes a `NFT_MSG_NEWCHAIN` payload.
    pub fn decode(payload: &[u8]) -> Result<ChainInfo, WireError> {
        let (fam, a) = split_nfgen(payload)?;
        let mut c = ChainInfo {
            family: Family::from_u8(fam),
            table: String::new(),
            name: String::new(),
            handle: 0,
            comment: None,
            base: false,
        };
        for (k, v) in attrs(a) {
            match k {
                NFTA_CHAIN_TABLE => c.table = str_of(v),
                NFTA_CHAIN_NAME => c.name = str_of(v),
                NFTA_CHAIN_HANDLE => c.handle = be64(v).unwrap_or(0),
                NFTA_CHAIN_HOOK => c.base = true,
                NFTA_CHAIN_USERDATA => c.comment = parse_comment(v),
                _ => {}
            }
        }
        Ok(c)
    }
}

impl SetInfo {
    /// Decodes a `NFT_MSG_NEWSET` payload.
    pub fn decode(payload: &[u8]) -> Result<SetInfo, WireError> {
        let (_, a) = split_nfgen(payload)?;
        let mut s = SetInfo { table: String::new(), name: String::new(), flags: 0, key_len: 0 };
        for (k, v) in attrs(a) {
            match k {
                NFTA_SET_TABLE => s.table = str_of(v),
                NFTA_SET_NAME => s.name = str_of(v),
                NFTA_SET_FLAGS => s.flags = be32(v).unwrap_or(0),
                NFTA_SET_KEY_LEN => s.key_len = be32(v).unwrap_or(0),
                _ => {}
            }
        }
        Ok(s)
    }
}

impl RuleInfo {
    /// Decodes a `NFT_MSG_NEWRULE` payload.
    pub fn decode(payload: &[u8]) -> Result<RuleInfo, WireError> {
        let (_, a) = split_nfgen(payload)?;
        let mut r =
            RuleInfo { table: String::new(), chain: String::new(), handle: 0, comment: None, exprs: Vec::new() };
        for (k, v) in attrs(a) {
            match k {
                NFTA_RULE_TABLE => r.table = str_of(v),
                NFTA_RULE_CHAIN => r.chain = str_of(v),
                NFTA_RULE_HANDLE => r.handle = be64(v).unwrap_or(0),
                NFTA_RULE_USERDATA => r.comment = parse_comment(v),
                NFTA_RULE_EXPRESSIONS => {
                    for (k, e) in attrs(v) {
                        if k != NFTA_LIST_ELEM {
                            continue;
                        }
                        let mut name = String::new();
                        let mut data = Vec::new();
                        for (k, v) in attrs(e) {
                            match k {
                                NFTA_EXPR_NAME => name = str_of(v),
                                NFTA_EXPR_DATA => data = v.to_vec(),
                                _ => {}
                            }
                        }
                        r.exprs.push((name, data));
                    }
                }
                _ => {}
            }
        }
        Ok(r)
    }

    /// The modulus of the rule's first `numgen` expression (`NFTA_NG_MODULUS`).
    pub fn numgen_modulus(&self) -> Option<u32> {
        let (_, data) = self.exprs.iter().find(|(n, _)| n == "numgen")?;
        attrs(data).find(|(k, _)| *k == NFTA_NG_MODULUS).and_then(|(_, v)| be32(v))
    }
}

fn decode_verdict(v: &[u8]) -> Option<Verdict> {
    let (_, inner) = attrs(v).find(|(k, _)| *k == NFTA_DATA_VERDICT)?;
    let mut code = None;
    let mut chain = None;
    for (k, v) in attrs(inner) {
        match k {
            NFTA_VERDICT_CODE => code = be32(v).map(|c| c as i32),
            NFTA_VERDICT_CHAIN => chain = Some(str_of(v)),
            _ => {}
        }
    }
    Verdict::from_code(code?, chain)
}

/// Decodes a `NFT_MSG_NEWSETELEM` payload into its elements.
pub fn decode_elems(payload: &[u8]) -> Result<Vec<ElemInfo>, WireError> {
    let (_, a) = split_nfgen(payload)?;
    let mut out = Vec::new();
    for (k, v) in attrs(a) {
        if k != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for (k, el) in attrs(v) {
            if k != NFTA_LIST_ELEM {
                continue;
            }
            let mut e = ElemInfo { key: Vec::new(), verdict: None, data: None };
            for (k, v) in attrs(el) {
                match k {
                    NFTA_SET_ELEM_KEY => {
                        e.key =
                            attrs(v).find(|(k, _)| *k == NFTA_DATA_VALUE).map(|(_, v)| v.to_vec()).unwrap_or_default()
                    }
                    NFTA_SET_ELEM_DATA => {
                        e.verdict = decode_verdict(v);
                        e.data = attrs(v).find(|(k, _)| *k == NFTA_DATA_VALUE).map(|(_, v)| v.to_vec());
                    }
                    _ => {}
                }
            }
            out.push(e);
        }
    }
    Ok(out)
}

/// Decodes a `NFT_MSG_NEWGEN` payload: the ruleset generation id.
pub fn decode_gen(payload: &[u8]) -> Result<u32, WireError> {
    let (_, a) = split_nfgen(payload)?;
    attrs(a)
        .find(|(k, _)| *k == NFTA_GEN_ID)
        .and_then(|(_, v)| be32(v))
        .ok_or_else(|| WireError("NFT_MSG_NEWGEN without NFTA_GEN_ID".into()))
}

/// A get or dump request: `nfgenmsg` for `family` plus attributes `f` writes.
pub(crate) fn request(m: u8, flags: u16, family: u8, seq: u32, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = vec![0; HEADER_LEN];
    out.extend_from_slice(&[family, 0, 0, 0]);
    f(&mut out);
    let len = out.len() as u32;
    Header { len, kind: nft_type(m), flags: NLM_F_REQUEST | flags, seq, port: 0 }.emit(&mut out[..HEADER_LEN]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::wire::frames;

    #[test]
    fn attribute_layout_and_padding() {
        let mut b = Vec::new();
        put_str(&mut b, 3, "nat");
        assert_eq!(b, [8, 0, 3, 0, b'n', b'a', b't', 0]);
        let mut b = Vec::new();
        put_be32(&mut b, 2, 0x0102_0304);
        assert_eq!(b, [8, 0, 2, 0, 1, 2, 3, 4]);
        let mut b = Vec::new();
        nest(&mut b, 4, |b| put(b, 1, &[7]));
        assert_eq!(b, [12, 0, 4, 0x80, 5, 0, 1, 0, 7, 0, 0, 0]);
        let parsed: Vec<_> = attrs(&b).collect();
        assert_eq!(parsed, vec![(4, &b[4..])]);
    }

    #[test]
    fn long_element_lists_split_into_messages_that_fit_an_attribute() {
        let elems: Vec<(Vec<u8>, Vec<u8>)> = (0..5000u32).map(|i| (i.to_be_bytes().repeat(4), vec![7; 8])).collect();
        let mut b = Batch::new();
        b.add_data_elems(Family::Inet, "t", "m", &elems);
        assert!(b.len() >= 2, "{} messages", b.len());
        let mut out = Vec::new();
        b.encode(0, 0, &mut out);
        let mut seen = 0;
        for f in frames(&out) {
            let f = f.unwrap();
            if f.header.kind != nft_type(msg_type::NEWSETELEM) {
                continue;
            }
            assert!(f.payload.len() < 65_535, "{}", f.payload.len());
            seen += decode_elems(f.payload).unwrap().len();
        }
        assert_eq!(seen, elems.len(), "every element in exactly one message");
        let mut d = Batch::new();
        d.del_elems(Family::Inet, "t", "m", &elems.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>());
        assert!(d.len() >= 2);
    }

    #[test]
    fn attrs_survive_garbage() {
        assert_eq!(attrs(&[0xff, 0xff, 1, 0]).count(), 0);
        assert_eq!(attrs(&[2, 0, 1, 0, 9]).count(), 0);
        assert_eq!(attrs(&[5, 0, 1, 0, 9]).count(), 1, "last attribute without padding");
    }

    #[test]
    fn comment_round_trip_and_limits() {
        let u = comment_udata("netsandbox svc tcp 198.18.0.10 80");
        assert_eq!(u[0], 0);
        assert_eq!(u[1] as usize, u.len() - 2);
        assert_eq!(parse_comment(&u).as_deref(), Some("netsandbox svc tcp 198.18.0.10 80"));
        let long = "x".repeat(400);
        assert_eq!(parse_comment(&comment_udata(&long)).map(|s| s.len()), Some(254));
        assert_eq!(parse_comment(&[0, 200, 1]), None);
        assert_eq!(parse_comment(&[]), None);
    }

    #[test]
    fn batch_frames_sequences_and_genid() {
        let mut b = Batch::new();
        b.add_table(Family::Inet, "t", None);
        b.add_chain(
            &ChainSpec {
                family: Family::Inet,
                table: "t".into(),
                name: "pre".into(),
                hook: Some((Hook::Prerouting, -100, "nat")),
                comment: Some("c".into()),
            },
            false,
        );
        let mut out = Vec::new();
        let end = b.encode(100, 7, &mut out);
        assert_eq!(end, 103);
        let f: Vec<_> = frames(&out).collect::<Result<_, _>>().unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(f[0].header.kind, NFNL_MSG_BATCH_BEGIN);
        assert_eq!(&f[0].payload[2..4], &10u16.to_be_bytes(), "res_id is NFNL_SUBSYS_NFTABLES, network order");
        assert_eq!(attrs(&f[0].payload[4..]).next(), Some((NFNL_BATCH_GENID, &7u32.to_be_bytes()[..])));
        assert_eq!(f[1].header.kind, (10 << 8) | msg_type::NEWTABLE as u16);
        assert_eq!((f[1].header.seq, f[2].header.seq, f[3].header.seq), (101, 102, 103));
        assert_eq!(f[3].header.kind, NFNL_MSG_BATCH_END);
        assert_ne!(f[3].header.flags & NLM_F_ACK, 0);
        assert_eq!(f[1].header.flags & NLM_F_ACK, 0, "errors come unasked; only the end is acked");
        // The chain decodes back through the dump decoder.
        let c = ChainInfo::decode(f[2].payload).unwrap();
        assert_eq!((c.table.as_str(), c.name.as_str(), c.base), ("t", "pre", true));
        assert_eq!(c.comment.as_deref(), Some("c"));
        // genid 0 = no generation check.
        b.encode(1, 0, &mut out);
        let f0 = frames(&out).next().unwrap().unwrap();
        assert_eq!(f0.payload.len(), 4);
    }

    #[test]
    fn elements_round_trip() {
        let mut b = Batch::new();
        let elems = vec![(vec![1, 2, 3, 4], Some(Verdict::Goto("ep-a".into()))), (vec![5, 6, 7, 8], None)];
        b.add_elems(Family::Inet, "t", "m", &elems);
        let mut out = Vec::new();
        b.encode(1, 0, &mut out);
        let f: Vec<_> = frames(&out).collect::<Result<_, _>>().unwrap();
        let got = decode_elems(f[1].payload).unwrap();
        assert_eq!(got[0], ElemInfo { key: vec![1, 2, 3, 4], verdict: Some(Verdict::Goto("ep-a".into())), data: None });
        assert_eq!(got[1], ElemInfo { key: vec![5, 6, 7, 8], verdict: None, data: None });
        assert!(decode_elems(&[1, 2]).is_err());
        let mut empty = Batch::new();
        empty.add_elems(Family::Inet, "t", "m", &[]);
        assert!(empty.is_empty());
    }

    #[test]
    fn set_spec_encoding() {
        let mut b = Batch::new();
        b.add_set(&SetSpec {
            family: Family::Inet,
            table: "t".into(),
            name: "svc4".into(),
            flags: 0,
            key_type: super::super::dtype::concat(&[7, 12, 13]),
            key_len: 12,
            concat: vec![4, 1, 2],
            data_type: Some(super::super::NFT_DATA_VERDICT),
            data_len: 0,
            id: 3,
        });
        let mut out = Vec::new();
        b.encode(1, 0, &mut out);
        let f: Vec<_> = frames(&out).collect::<Result<_, _>>().unwrap();
        let s = SetInfo::decode(f[1].payload).unwrap();
        assert_eq!(s.flags, super::super::set_flags::MAP | super::super::set_flags::CONCAT);
        assert_eq!((s.name.as_str(), s.key_len), ("svc4", 12));
        assert_eq!(super::super::dtype::concat(&[7, 12, 13]), (7 << 12) | (12 << 6) | 13);
    }
}
