//! The rtnetlink socket: the one place that sends requests and reads replies.
//!
//! A [`Socket`] is bound to the network namespace it was opened in for its whole life, so a
//! sandbox keeps one and never needs `setns` for netlink work. Every reply is checked against
//! our port id and the request's sequence number; replies to requests we gave up on are skipped.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use log::{debug, warn};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;
use parking_lot::Mutex;

use super::recv::{self, Pending, TxError};
use super::wire::{self, Header, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use crate::error::{Error, Result};

/// How many times a dump is retried after `NLM_F_DUMP_INTR` or `ENOBUFS` before giving up.
pub const DUMP_ATTEMPTS: u32 = 8;
/// How long to wait for the kernel's answer before reporting a protocol error.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Receive buffer requested from the kernel (root may exceed rmem_max with SO_RCVBUFFORCE).
const RCVBUF: usize = 4 << 20;
/// Initial user-space receive buffer; grown on demand from the peeked datagram size.
const RX_INITIAL: usize = 32 << 10;
/// Largest chunk of requests written with one `send` in a batch.
const TX_CHUNK: usize = 64 << 10;

/// One request, built by the typed builders of [`link`](super::link), [`addr`](super::addr),
/// [`route`](super::route), [`neigh`](super::neigh) and [`nsid`](super::nsid), sent alone
/// ([`Socket::execute`]) or in a batch ([`Socket::batch`]). Opaque: the wire message inside is
/// netlink-packet-route's, which is not part of our API.
#[derive(Debug, Clone)]
pub struct Request {
    /// The rtnetlink message.
    pub(crate) msg: RouteNetlinkMessage,
    /// Extra `NLM_F_*` flags, e.g. `NLM_F_CREATE | NLM_F_EXCL` (REQUEST and ACK are added).
    pub(crate) flags: u16,
    /// What is being done, e.g. `"add address"`.
    pub(crate) op: &'static str,
    /// What it is done to, e.g. `"eth0 198.18.0.1/16"`.
    pub(crate) object: String,
}

impl Request {
    /// A request with its error-message context.
    pub(crate) fn new(op: &'static str, object: impl Into<String>, flags: u16, msg: RouteNetlinkMessage) -> Self {
        Request { msg, flags, op, object: object.into() }
    }

    /// What the request does, e.g. `"add address"` (as errors name it).
    pub fn op(&self) -> &'static str {
        self.op
    }

    /// What the request is about, e.g. `"198.18.0.1/16 on ifindex 2"` (as errors name it).
    pub fn object(&self) -> &str {
        &self.object
    }

    pub(crate) fn is_dump(&self) -> bool {
        self.flags & NLM_F_DUMP == NLM_F_DUMP
    }
}

/// The result of a dump that may have been taken while the table changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump<T> {
    /// What the last full pass returned.
    pub entries: Vec<T>,
    /// False when every attempt was interrupted by concurrent changes (`NLM_F_DUMP_INTR`): an
    /// entry changed during the pass may be missing or stale.
    pub consistent: bool,
}

/// What to do with the rest of a batch when one request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchMode {
    /// Send everything in as few `send` calls as possible. The kernel processes every message of
    /// a buffer even after one fails, so later requests are applied regardless; each gets its
    /// own result.
    #[default]
    Continue,
    /// Stop at the first failure: requests after it are not sent ([`BatchOutcome::NotSent`]).
    /// The kernel cannot be told to abort inside one buffer, so this mode sends one request per
    /// system call and is slower; use it when later requests depend on earlier ones.
    StopAtFirstError,
}

/// The result of one request in a batch.
#[derive(Debug)]
pub enum BatchOutcome {
    /// The kernel acknowledged it.
    Applied,
    /// The kernel refused it.
    Failed(Error),
    /// Not sent because an earlier request failed ([`BatchMode::StopAtFirstError`]).
    NotSent,
}

impl BatchOutcome {
    /// True when the request was applied.
    pub fn is_applied(&self) -> bool {
        matches!(self, BatchOutcome::Applied)
    }
}

/// One result per request of a batch, in order.
#[derive(Debug)]
pub struct BatchReport {
    /// Outcomes, index-aligned with the submitted requests.
    pub outcomes: Vec<BatchOutcome>,
}

impl BatchReport {
    /// Index and error of the first failed request.
    pub fn first_error(&self) -> Option<(usize, &Error)> {
        self.outcomes.iter().enumerate().find_map(|(i, o)| match o {
            BatchOutcome::Failed(e) => Some((i, e)),
            _ => None,
        })
    }

    /// `Ok` when every request was applied, else the first error.
    pub fn into_result(self) -> Result<()> {
        for o in self.outcomes {
            match o {
                BatchOutcome::Applied => {}
                BatchOutcome::Failed(e) => return Err(e),
                BatchOutcome::NotSent => {
                    return Err(Error::Protocol { op: "batch", detail: "request not sent".into() });
                }
            }
        }
        Ok(())
    }
}

/// A synchronous rtnetlink socket, bound to the namespace it was opened in.
///
/// Safe to share between threads: requests are serialized by an internal lock, so replies can
/// never be read by the wrong caller.
pub struct Socket {
    /// Outside the lock: `send`/`recv` take `&self`, and [`AsFd`] can borrow it.
    sock: netlink_sys::Socket,
    conn: Mutex<Conn>,
    /// Names the namespace in kernel errors.
    label: String,
}

/// The socket's fd, e.g. to ask which namespace it is bound to
/// ([`NetNs::of_socket`](crate::netns::NetNs::of_socket)). Reading from or writing to it directly
/// would desynchronize the socket's request/reply matching.
impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket").finish_non_exhaustive()
    }
}

struct Conn {
    port: u32,
    seq: u32,
    rx: Vec<u8>,
    tx: Vec<u8>,
    /// Raw datagrams received while recording (see [`Socket::record_datagrams`]).
    #[cfg(feature = "fuzzing")]
    record: Option<Vec<Vec<u8>>>,
}

impl Socket {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> Result<Socket> {
        let os = |op, e: io::Error| Error::os(op, "NETLINK_ROUTE socket", e);
        // netlink-sys opens with SOCK_CLOEXEC.
        let mut sock = netlink_sys::Socket::new(NETLINK_ROUTE).map_err(|e| os("open", e))?;
        let addr = sock.bind_auto().map_err(|e| os("bind", e))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(|e| os("connect", e))?;
        sock.set_ext_ack(true).map_err(|e| os("set NETLINK_EXT_ACK on", e))?;
        // Echo only the request header in errors: ACKs for large batches stay small.
        sock.set_cap_ack(true).map_err(|e| os("set NETLINK_CAP_ACK on", e))?;
        sock.set_netlink_get_strict_chk(true).map_err(|e| os("set NETLINK_GET_STRICT_CHK on", e))?;
        if setsockopt(&sock, sockopt::RcvBufForce, &RCVBUF).is_err() {
            // Not privileged: the default buffer still works, batches are chunked anyway.
            let _ = setsockopt(&sock, sockopt::RcvBuf, &RCVBUF);
        }
        let tv = TimeVal::new(REPLY_TIMEOUT.as_secs() as _, 0);
        setsockopt(&sock, sockopt::ReceiveTimeout, &tv).map_err(|e| os("set SO_RCVTIMEO on", e.into()))?;
        Ok(Socket {
            label: "of the caller".into(),
            sock,
            conn: Mutex::new(Conn {
                port: addr.port_number(),
                seq: 0,
                rx: vec![0; RX_INITIAL],
                tx: Vec::new(),
                #[cfg(feature = "fuzzing")]
                record: None,
            }),
        })
    }

    /// Names the socket's namespace in the errors it returns (e.g. a sandbox key).
    pub fn labelled(mut self, label: impl Into<String>) -> Socket {
        self.label = label.into();
        self
    }

    /// Adds the namespace to a kernel error.
    fn tag(&self, e: Error) -> Error {
        match e {
            Error::Kernel(mut k) => {
                k.namespace = Some(self.label.clone());
                Error::Kernel(k)
            }
            e => e,
        }
    }

    /// Runs `f` on this socket and returns, beside its result, every raw datagram the socket
    /// received meanwhile (for recording fuzz corpora from real kernel replies). Not stable API.
    #[cfg(feature = "fuzzing")]
    #[doc(hidden)]
    pub fn record_datagrams<T>(&self, f: impl FnOnce(&Socket) -> T) -> (T, Vec<Vec<u8>>) {
        self.conn.lock().record = Some(Vec::new());
        let out = f(self);
        let recorded = self.conn.lock().record.take().unwrap_or_default();
        (out, recorded)
    }

    /// The cookie of the network namespace this socket is bound to (`SO_NETNS_COOKIE`, Linux
    /// 5.14+): a 64-bit id the kernel never gives to another namespace, unlike an inode number,
    /// which a later namespace can get again once this one is gone.
    pub fn netns_cookie(&self) -> Result<u64> {
        use std::os::fd::{AsFd, AsRawFd};
        /// `SO_NETNS_COOKIE` from `<asm-generic/socket.h>`.
        const SO_NETNS_COOKIE: i32 = 71;
        let mut cookie: u64 = 0;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        // SAFETY: `cookie` is a writable u64 and `len` holds its size; the kernel writes at most
        // `len` bytes there. The fd is borrowed from `self`, so it stays open for the call.
        let r = unsafe {
            libc::getsockopt(
                self.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                SO_NETNS_COOKIE,
                (&mut cookie as *mut u64).cast(),
                &mut len,
            )
        };
        Errno::result(r).map_err(|e| Error::os("get namespace cookie of socket", &self.label, e))?;
        Ok(cookie)
    }

    /// Sends one request and waits for its ACK.
    pub fn execute(&self, req: Request) -> Result<()> {
        self.query(req).map(drop)
    }

    /// Sends one request and returns the messages the kernel answered with before its ACK
    /// (e.g. a `RTM_GETLINK` by name, or `RTM_GETROUTE` for one destination).
    pub(crate) fn query(&self, req: Request) -> Result<Vec<RouteNetlinkMessage>> {
        let mut conn = self.conn.lock();
        let mut pend = conn.transact_collect(&self.sock, std::slice::from_ref(&req))?;
        let p = pend.pop().unwrap_or_default();
        match p.result {
            Some(e) => Err(self.tag(e)),
            None => Ok(p.replies),
        }
    }

    /// Dumps a table (`NLM_F_DUMP` is added). Retried when the kernel flags the dump as
    /// interrupted by a concurrent change (`NLM_F_DUMP_INTR`) or the receive queue overflowed,
    /// up to [`DUMP_ATTEMPTS`] times; then [`Error::DumpInterrupted`].
    pub(crate) fn dump(&self, req: Request) -> Result<Vec<RouteNetlinkMessage>> {
        let op = req.op;
        match self.dump_allow_interrupted(req)? {
            Dump { entries, consistent: true } => Ok(entries),
            Dump { consistent: false, .. } => Err(Error::DumpInterrupted { op, attempts: DUMP_ATTEMPTS }),
        }
    }

    /// Like [`dump`](Self::dump), but when every attempt was interrupted by concurrent changes,
    /// returns the last full pass anyway, flagged not [`consistent`](Dump::consistent), instead
    /// of failing. For callers that prefer a best-effort view of a table that never stops changing.
    pub(crate) fn dump_allow_interrupted(&self, mut req: Request) -> Result<Dump<RouteNetlinkMessage>> {
        req.flags |= NLM_F_DUMP;
        let mut conn = self.conn.lock();
        let mut last = None;
        for attempt in 1..=DUMP_ATTEMPTS {
            match conn.transact(&self.sock, std::slice::from_ref(&req)) {
                Ok(mut pend) => {
                    let p = pend.pop().unwrap_or_default();
                    if let Some(e) = p.result {
                        return Err(self.tag(e));
                    }
                    if !p.interrupted {
                        return Ok(Dump { entries: p.replies, consistent: true });
                    }
                    debug!("{} {}: dump interrupted (attempt {attempt}), retrying", req.op, req.object);
                    last = Some(p.replies);
                }
                Err(TxError::Overflow) => {
                    warn!("{} {}: receive queue overflowed (attempt {attempt}), restarting dump", req.op, req.object);
                    conn.drain(&self.sock);
                }
                Err(TxError::Fatal(e)) => return Err(e),
            }
        }
        match last {
            Some(replies) => Ok(Dump { entries: replies, consistent: false }),
            // Every attempt overflowed: there is no full pass to return.
            None => Err(Error::DumpInterrupted { op: req.op, attempts: DUMP_ATTEMPTS }),
        }
    }

    /// Dumps a table and decodes the replies of one kind into views (see [`dump`](Self::dump)).
    pub(crate) fn dump_views<T: super::view::FromReply>(&self, req: Request) -> Result<Vec<T>> {
        self.dump(req)?.iter().filter_map(T::from_reply).map(|r| r.map_err(Error::from)).collect()
    }

    /// [`dump_views`](Self::dump_views) that answers with a best-effort [`Dump`] when the table
    /// never stops changing (see [`dump_allow_interrupted`](Self::dump_allow_interrupted)).
    pub(crate) fn dump_views_allow_interrupted<T: super::view::FromReply>(&self, req: Request) -> Result<Dump<T>> {
        let d = self.dump_allow_interrupted(req)?;
        let entries =
            d.entries.iter().filter_map(T::from_reply).map(|r| r.map_err(Error::from)).collect::<Result<_>>()?;
        Ok(Dump { entries, consistent: d.consistent })
    }

    /// Sends one request and decodes the first reply of the kind `T`, if the kernel sent one.
    pub(crate) fn query_view<T: super::view::FromReply>(&self, req: Request) -> Result<Option<T>> {
        self.query(req)?.iter().find_map(T::from_reply).transpose().map_err(Error::from)
    }

    /// Sends many requests together and returns one outcome per request. See [`BatchMode`]
    /// for what happens after a failure. An `Err` means the socket itself failed (the outcome
    /// of the requests is then unknown), never that a request was refused.
    pub fn batch(&self, reqs: &[Request], mode: BatchMode) -> Result<BatchReport> {
        let mut conn = self.conn.lock();
        let mut outcomes = Vec::with_capacity(reqs.len());
        match mode {
            BatchMode::Continue => {
                for p in conn.transact_collect(&self.sock, reqs)? {
                    outcomes.push(match p.result {
                        Some(e) => BatchOutcome::Failed(self.tag(e)),
                        None => BatchOutcome::Applied,
                    });
                }
            }
            BatchMode::StopAtFirstError => {
                let mut failed = false;
                for req in reqs {
                    if failed {
                        outcomes.push(BatchOutcome::NotSent);
                        continue;
                    }
                    let p = conn.transact_collect(&self.sock, std::slice::from_ref(req))?.pop().unwrap_or_default();
                    outcomes.push(match p.result {
                        Some(e) => {
                            failed = true;
                            BatchOutcome::Failed(self.tag(e))
                        }
                        None => BatchOutcome::Applied,
                    });
                }
            }
        }
        Ok(BatchReport { outcomes })
    }
}

impl Conn {
    fn transact_collect(&mut self, sock: &netlink_sys::Socket, reqs: &[Request]) -> Result<Vec<Pending>> {
        match self.transact(sock, reqs) {
            Ok(p) => Ok(p),
            Err(TxError::Fatal(e)) => Err(e),
            Err(TxError::Overflow) => {
                self.drain(sock);
                Err(Error::Protocol {
                    op: reqs.first().map_or("request", |r| r.op),
                    detail: "netlink receive queue overflowed (ENOBUFS): outcome of the requests is unknown".into(),
                })
            }
        }
    }

    /// Sends `reqs` in chunks of at most [`TX_CHUNK`] bytes, reading each chunk's replies before
    /// sending the next so the receive queue cannot overflow with our own ACKs.
    fn transact(&mut self, sock: &netlink_sys::Socket, reqs: &[Request]) -> Result<Vec<Pending>, TxError> {
        let mut pending: Vec<Pending> = Vec::with_capacity(reqs.len());
        let mut start = 0;
        while start < reqs.len() {
            self.tx.clear();
            let first_seq = self.seq.wrapping_add(1);
            let mut end = start;
            while end < reqs.len() && (end == start || self.tx.len() < TX_CHUNK) {
                let r = &reqs[end];
                self.seq = self.seq.wrapping_add(1);
                let h =
                    Header { flags: NLM_F_REQUEST | NLM_F_ACK | r.flags, seq: self.seq, port: 0, ..Header::default() };
                wire::emit_route(&mut self.tx, h, &r.msg);
                end += 1;
            }
            self.send(sock, &reqs[start])?;
            let chunk = &reqs[start..end];
            let base = pending.len();
            pending.extend((start..end).map(|_| Pending::default()));
            self.collect(sock, chunk, first_seq, &mut pending[base..])?;
            start = end;
        }
        Ok(pending)
    }

    fn send(&mut self, sock: &netlink_sys::Socket, first: &Request) -> Result<(), TxError> {
        let mut off = 0;
        while off < self.tx.len() {
            match sock.send(&self.tx[off..], 0) {
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::os("send netlink request", format!("{} {}", first.op, first.object), e).into());
                }
            }
        }
        Ok(())
    }

    /// Reads datagrams until every request in `chunk` is complete.
    fn collect(
        &mut self,
        sock: &netlink_sys::Socket,
        chunk: &[Request],
        first_seq: u32,
        pending: &mut [Pending],
    ) -> Result<(), TxError> {
        let mut open = chunk.len();
        while open > 0 {
            let len = self.recv(sock, chunk)?;
            #[cfg(feature = "fuzzing")]
            if let Some(rec) = &mut self.record {
                rec.push(self.rx[..len].to_vec());
            }
            let completed = recv::process_datagram(&self.rx[..len], self.port, first_seq, chunk, pending)?;
            open = open.saturating_sub(completed);
        }
        Ok(())
    }

    /// Receives one datagram into `rx`, growing it first to the peeked size so nothing is ever
    /// truncated. Returns its length.
    fn recv(&mut self, sock: &netlink_sys::Socket, chunk: &[Request]) -> Result<usize, TxError> {
        loop {
            let peeked = {
                let mut buf: &mut [u8] = &mut self.rx[..];
                sock.recv(&mut buf, libc_flags::PEEK_TRUNC)
            };
            let result = match peeked {
                Ok(n) => {
                    if n > self.rx.len() {
                        self.rx.resize(n.next_power_of_two(), 0);
                    }
                    let mut buf: &mut [u8] = &mut self.rx[..];
                    sock.recv(&mut buf, 0)
                }
                Err(e) => Err(e),
            };
            match result {
                Ok(n) => return Ok(n.min(self.rx.len())),
                Err(e) => match Errno::from_raw(e.raw_os_error().unwrap_or(0)) {
                    Errno::EINTR => continue,
                    Errno::ENOBUFS => return Err(TxError::Overflow),
                    Errno::EAGAIN => {
                        return Err(Error::Protocol {
                            op: chunk[0].op,
                            detail: format!("no reply from the kernel within {} s", REPLY_TIMEOUT.as_secs()),
                        }
                        .into());
                    }
                    _ => {
                        return Err(Error::os(
                            "receive netlink reply",
                            format!("{} {}", chunk[0].op, chunk[0].object),
                            e,
                        )
                        .into());
                    }
                },
            }
        }
    }

    /// Discards whatever is queued (after an overflow) without blocking.
    fn drain(&mut self, sock: &netlink_sys::Socket) {
        for _ in 0..10_000 {
            let mut buf: &mut [u8] = &mut self.rx[..];
            match sock.recv(&mut buf, libc_flags::DONTWAIT) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(Errno::ENOBUFS as i32) => {}
                Err(_) => return,
            }
        }
    }
}

/// `recv` flags as the C int netlink-sys takes.
mod libc_flags {
    use nix::sys::socket::MsgFlags;
    pub const PEEK_TRUNC: i32 = MsgFlags::MSG_PEEK.bits() | MsgFlags::MSG_TRUNC.bits();
    pub const DONTWAIT: i32 = MsgFlags::MSG_DONTWAIT.bits();
}
