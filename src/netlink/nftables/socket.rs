//! The `NETLINK_NETFILTER` socket: sends a [`Batch`] as one transaction and reads its
//! answers, and dumps nf_tables objects.
//!
//! The kernel processes a batch inside our `sendmsg` and queues every answer before the call
//! returns, so after sending we read without blocking until the queue is empty: only the
//! messages that failed are answered (with their extended ACK), plus an ACK for
//! `NFNL_MSG_BATCH_END` when the whole transaction was committed.

use std::io;
use std::time::Duration;

use log::debug;
use netlink_sys::SocketAddr;
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use parking_lot::Mutex;

use super::msg::{self, Batch, ChainInfo, ElemInfo, RuleInfo, SetInfo, TableInfo};
use super::{attr, msg_type, nft_type};
use crate::error::{Error, KernelError, Result};
use crate::netlink::wire::{self, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR};

/// `NETLINK_NETFILTER`.
const NETLINK_NETFILTER: isize = 12;
/// Largest transaction we send in one datagram (the kernel needs `sk_sndbuf` above it).
pub const MAX_BATCH: usize = 32 << 20;
const RCVBUF: usize = 4 << 20;
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
const DUMP_ATTEMPTS: u32 = 8;

/// A synchronous nf_tables socket, bound to the namespace it was opened in. Requests are
/// serialized by an internal lock.
pub struct NftSocket {
    conn: Mutex<Conn>,
    label: String,
}

impl std::fmt::Debug for NftSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NftSocket").field("label", &self.label).finish_non_exhaustive()
    }
}

struct Conn {
    sock: netlink_sys::Socket,
    port: u32,
    seq: u32,
    rx: Vec<u8>,
    tx: Vec<u8>,
}

fn unsupported(detail: impl Into<String>) -> Error {
    Error::Unsupported { feature: "nf_tables", detail: detail.into() }
}

impl NftSocket {
    /// Opens a socket in the calling thread's network namespace. A kernel without nfnetlink is
    /// [`Error::Unsupported`].
    pub fn open() -> Result<NftSocket> {
        let os = |op, e: io::Error| Error::os(op, "NETLINK_NETFILTER socket", e);
        let mut sock = match netlink_sys::Socket::new(NETLINK_NETFILTER) {
            Ok(s) => s,
            Err(e) if e.raw_os_error() == Some(Errno::EPROTONOSUPPORT as i32) => {
                return Err(unsupported("the kernel has no NETLINK_NETFILTER (nfnetlink)"));
            }
            Err(e) => return Err(os("open", e)),
        };
        let addr = sock.bind_auto().map_err(|e| os("bind", e))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(|e| os("connect", e))?;
        sock.set_ext_ack(true).map_err(|e| os("set NETLINK_EXT_ACK on", e))?;
        sock.set_cap_ack(true).map_err(|e| os("set NETLINK_CAP_ACK on", e))?;
        if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
            let _ = setsockopt(&sock, sockopt::RcvBuf, &RCVBUF);
        }
        // A transaction must fit one datagram; the send buffer only bounds what is accepted
        // (memory is allocated per message as it is sent).
        if setsockopt(&sock, sockopt::SndBufForce, &MAX_BATCH).is_err() {
            let _ = setsockopt(&sock, sockopt::SndBuf, &MAX_BATCH);
        }
        let tv = TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0);
        setsockopt(&sock, sockopt::ReceiveTimeout, &tv).map_err(|e| os("set SO_RCVTIMEO on", e.into()))?;
        Ok(NftSocket {
            conn: Mutex::new(Conn { sock, port: addr.port_number(), seq: 0, rx: vec![0; 64 << 10], tx: Vec::new() }),
            label: "of the caller".into(),
        })
    }

    /// Names the socket's namespace in the errors it returns.
    pub fn labelled(mut self, label: impl Into<String>) -> NftSocket {
        self.label = label.into();
        self
    }

    fn kernel(&self, op: &'static str, object: String, st: wire::Status) -> Error {
        Error::Kernel(KernelError {
            op,
            object,
            errno: Errno::from_raw(st.errno),
            message: st.ext_ack.message,
            namespace: Some(self.label.clone()),
        })
    }

    /// Applies `batch` as one transaction. With `genid` non-zero the kernel refuses it
    /// (`ERESTART`, see [`is_stale`]) when the ruleset changed since that generation was read.
    /// On error nothing of the batch was applied; the error names the first message the
    /// kernel refused, with its extended-ACK text. An expression or chain type the kernel
    /// lacks is [`Error::Unsupported`].
    pub fn commit(&self, batch: &mut Batch, genid: u32) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.lock();
        let first = conn.seq.wrapping_add(1);
        let mut tx = std::mem::take(&mut conn.tx);
        let end = batch.encode(first, genid, &mut tx);
        conn.seq = end;
        let sent = conn.send_all(&tx);
        conn.tx = tx;
        if let Err(e) = sent {
            return Err(match e.raw_os_error().map(Errno::from_raw) {
                Some(Errno::EMSGSIZE | Errno::ENOBUFS) => Error::InvalidArgument {
                    op: "nf_tables transaction",
                    reason: format!("{} bytes do not fit one netlink datagram here: {e}", conn.tx.len()),
                },
                _ => Error::os("send nf_tables batch", format!("{} messages", batch.len()), e),
            });
        }
        let mut committed = false;
        let mut first_err: Option<Error> = None;
        let mut others = 0;
        loop {
            let n = match conn.recv(libc_flags::DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(Errno::EAGAIN as i32) => break,
                Err(e) if e.raw_os_error() == Some(Errno::ENOBUFS as i32) => {
                    first_err.get_or_insert(Error::Protocol {
                        op: "nf_tables transaction",
                        detail: "receive queue overflowed: some errors were lost".into(),
                    });
                    continue;
                }
                Err(e) => return Err(Error::os("receive nf_tables answer", "batch", e)),
            };
            for frame in wire::frames(&conn.rx[..n]) {
                let frame = frame.map_err(|e| Error::Protocol { op: "nf_tables transaction", detail: e.0 })?;
                let h = frame.header;
                if (h.port != conn.port && h.port != 0) || h.kind != NLMSG_ERROR {
                    continue;
                }
                let idx = h.seq.wrapping_sub(first);
                if idx > end.wrapping_sub(first) {
                    debug!("skipping stale nf_tables answer with sequence {}", h.seq);
                    continue;
                }
                let st = wire::decode_error(h.flags, frame.payload)
                    .map_err(|e| Error::Protocol { op: "nf_tables transaction", detail: e.0 })?;
                if st.errno == 0 {
                    committed |= h.seq == end;
                    continue;
                }
                if first_err.is_some() {
                    others += 1;
                    continue;
                }
                first_err = Some(self.describe(batch, idx, st));
            }
        }
        if let Some(e) = first_err {
            if others > 0 {
                debug!("nf_tables transaction: {others} further message(s) refused");
            }
            return Err(e);
        }
        if !committed {
            return Err(Error::Protocol {
                op: "nf_tables transaction",
                detail: "the kernel did not acknowledge the commit".into(),
            });
        }
        Ok(())
    }

    /// The error for the answer to message `idx` (0 = batch begin).
    fn describe(&self, batch: &Batch, idx: u32, st: wire::Status) -> Error {
        let errno = Errno::from_raw(st.errno);
        let Some(m) = idx.checked_sub(1).and_then(|i| batch.msgs.get(i as usize)) else {
            if idx == 0 && errno == Errno::EOPNOTSUPP {
                return unsupported("the kernel has no nf_tables subsystem (module nf_tables)");
            }
            return self.kernel("nf_tables transaction", format!("{} messages", batch.len()), st);
        };
        if matches!(errno, Errno::ENOENT | Errno::EOPNOTSUPP)
            && let Some(off) = st.ext_ack.offset
            && let Some((_, _, name)) = m.exprs.iter().find(|(s, e, _)| (*s..*e).contains(&(off as usize)))
        {
            return Error::Unsupported {
                feature: "nf_tables expression",
                detail: format!("{name} (in {} {}): {}", m.op, m.object, errno.desc()),
            };
        }
        self.kernel(m.op, m.object.clone(), st)
    }

    /// The ruleset generation id (`NFT_MSG_GETGEN`).
    pub fn genid(&self) -> Result<u32> {
        let replies = self.get(msg_type::GETGEN, 0, 0, |_| {})?;
        let (_, p) = replies
            .iter()
            .find(|(k, _)| *k == nft_type(msg_type::NEWGEN))
            .ok_or_else(|| Error::Protocol { op: "get nf_tables generation", detail: "no NEWGEN reply".into() })?;
        msg::decode_gen(p).map_err(|e| Error::Protocol { op: "get nf_tables generation", detail: e.0 })
    }

    /// Dumps objects of one kind; returns the reply payloads.
    fn get(&self, m: u8, flags: u16, family: u8, f: impl Fn(&mut Vec<u8>)) -> Result<Vec<(u16, Vec<u8>)>> {
        let op = match m {
            msg_type::GETTABLE => "list nf_tables tables",
            msg_type::GETCHAIN => "list nf_tables chains",
            msg_type::GETSET => "list nf_tables sets",
            msg_type::GETSETELEM => "list nf_tables set elements",
            msg_type::GETRULE => "list nf_tables rules",
            _ => "get nf_tables generation",
        };
        let mut conn = self.conn.lock();
        for _ in 0..DUMP_ATTEMPTS {
            conn.seq = conn.seq.wrapping_add(1);
            let seq = conn.seq;
            let req = msg::request(m, flags | NLM_F_ACK, family, seq, &f);
            conn.send_all(&req).map_err(|e| Error::os("send nf_tables request", op, e))?;
            let mut out = Vec::new();
            let mut interrupted = false;
            let mut done = false;
            while !done {
                let n = conn.recv(0).map_err(|e| match e.raw_os_error().map(Errno::from_raw) {
                    Some(Errno::EAGAIN) => Error::Protocol { op, detail: "no answer from the kernel".into() },
                    _ => Error::os("receive nf_tables answer", op, e),
                })?;
                for frame in wire::frames(&conn.rx[..n]) {
                    let frame = frame.map_err(|e| Error::Protocol { op, detail: e.0 })?;
                    let h = frame.header;
                    if h.seq != seq || (h.port != conn.port && h.port != 0) {
                        continue;
                    }
                    interrupted |= h.flags & NLM_F_DUMP_INTR != 0;
                    match h.kind {
                        NLMSG_ERROR => {
                            let st = wire::decode_error(h.flags, frame.payload)
                                .map_err(|e| Error::Protocol { op, detail: e.0 })?;
                            if st.errno != 0 {
                                return Err(self.kernel(op, String::new(), st));
                            }
                            done = true;
                        }
                        NLMSG_DONE => {
                            let st = wire::decode_done(h.flags, frame.payload);
                            if st.errno != 0 {
                                return Err(self.kernel(op, String::new(), st));
                            }
                            done = true;
                        }
                        k => out.push((k, frame.payload.to_vec())),
                    }
                }
            }
            if !interrupted {
                return Ok(out);
            }
        }
        Err(Error::DumpInterrupted { op, attempts: DUMP_ATTEMPTS })
    }

    fn decode_all<T>(
        &self,
        m: u8,
        kind: u8,
        family: u8,
        f: impl Fn(&mut Vec<u8>),
        dec: fn(&[u8]) -> std::result::Result<T, wire::WireError>,
    ) -> Result<Vec<T>> {
        self.get(m, NLM_F_DUMP, family, f)?
            .iter()
            .filter(|(k, _)| *k == nft_type(kind))
            .map(|(_, p)| dec(p).map_err(|e| Error::Protocol { op: "decode nf_tables object", detail: e.0 }))
            .collect()
    }

    /// Every table.
    pub fn tables(&self) -> Result<Vec<TableInfo>> {
        self.decode_all(msg_type::GETTABLE, msg_type::NEWTABLE, 0, |_| {}, TableInfo::decode)
    }

    /// The chains of table `table` of `family`.
    pub fn chains(&self, family: msg::Family, table: &str) -> Result<Vec<ChainInfo>> {
        let all = self.decode_all(
            msg_type::GETCHAIN,
            msg_type::NEWCHAIN,
            family as u8,
            |b| msg::put_str(b, attr::NFTA_CHAIN_TABLE, table),
            ChainInfo::decode,
        )?;
        Ok(all.into_iter().filter(|c| c.table == table).collect())
    }

    /// The sets of table `table` of `family`.
    pub fn sets(&self, family: msg::Family, table: &str) -> Result<Vec<SetInfo>> {
        let all = self.decode_all(
            msg_type::GETSET,
            msg_type::NEWSET,
            family as u8,
            |b| msg::put_str(b, attr::NFTA_SET_TABLE, table),
            SetInfo::decode,
        )?;
        Ok(all.into_iter().filter(|s| s.table == table).collect())
    }

    /// The rules of one chain (handles and comments).
    pub fn rules(&self, family: msg::Family, table: &str, chain: &str) -> Result<Vec<RuleInfo>> {
        let all = self.decode_all(
            msg_type::GETRULE,
            msg_type::NEWRULE,
            family as u8,
            |b| {
                msg::put_str(b, attr::NFTA_RULE_TABLE, table);
                msg::put_str(b, attr::NFTA_RULE_CHAIN, chain);
            },
            RuleInfo::decode,
        )?;
        Ok(all.into_iter().filter(|r| r.table == table && r.chain == chain).collect())
    }

    /// Every rule of table `table` of `family`, in one dump.
    pub fn table_rules(&self, family: msg::Family, table: &str) -> Result<Vec<RuleInfo>> {
        let all = self.decode_all(
            msg_type::GETRULE,
            msg_type::NEWRULE,
            family as u8,
            |b| msg::put_str(b, attr::NFTA_RULE_TABLE, table),
            RuleInfo::decode,
        )?;
        Ok(all.into_iter().filter(|r| r.table == table).collect())
    }

    /// The elements of a set.
    pub fn elems(&self, family: msg::Family, table: &str, set: &str) -> Result<Vec<ElemInfo>> {
        let lists = self.decode_all(
            msg_type::GETSETELEM,
            msg_type::NEWSETELEM,
            family as u8,
            |b| {
                msg::put_str(b, attr::NFTA_SET_ELEM_LIST_TABLE, table);
                msg::put_str(b, attr::NFTA_SET_ELEM_LIST_SET, set);
            },
            msg::decode_elems,
        )?;
        Ok(lists.into_iter().flatten().collect())
    }
}

/// True when `e` is the kernel refusing a batch because the ruleset changed since the
/// generation it named (`ERESTART`): read the state again and rebuild the batch.
pub fn is_stale(e: &Error) -> bool {
    e.errno() == Some(Errno::ERESTART)
}

impl Conn {
    fn send_all(&mut self, buf: &[u8]) -> io::Result<()> {
        loop {
            match self.sock.send(buf, 0) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Receives one datagram into `rx` (grown to the peeked size first); returns its length.
    fn recv(&mut self, flags: i32) -> io::Result<usize> {
        loop {
            let peeked = {
                let mut buf: &mut [u8] = &mut self.rx[..];
                self.sock.recv(&mut buf, flags | libc_flags::PEEK_TRUNC)
            };
            let r = peeked.and_then(|n| {
                if n > self.rx.len() {
                    self.rx.resize(n.next_power_of_two(), 0);
                }
                let mut buf: &mut [u8] = &mut self.rx[..];
                self.sock.recv(&mut buf, flags)
            });
            match r {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r.map(|n| n.min(self.rx.len())),
            }
        }
    }
}

mod libc_flags {
    use nix::sys::socket::MsgFlags;
    pub const PEEK_TRUNC: i32 = MsgFlags::MSG_PEEK.bits() | MsgFlags::MSG_TRUNC.bits();
    pub const DONTWAIT: i32 = MsgFlags::MSG_DONTWAIT.bits();
}
