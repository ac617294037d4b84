//! The receive path, without a socket: what one datagram of replies does to the requests of a
//! chunk. [`socket`](super::socket) calls [`process_datagram`] for every datagram it reads; the
//! fuzz targets and the corpus test call it on arbitrary bytes.
//!
//! Guarantee: nothing here panics, whatever the bytes, the port, the sequence numbers or the
//! number of requests.

use log::{debug, warn};
use netlink_packet_route::RouteNetlinkMessage;
use nix::errno::Errno;

use super::socket::Request;
use super::wire::{self, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN};
use crate::error::{Error, KernelError};

/// Per-request progress while its replies come in.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// The request got its ACK, error or `NLMSG_DONE`.
    pub(crate) done: bool,
    /// The kernel refused it, or a reply could not be decoded.
    pub(crate) result: Option<Error>,
    /// Decoded replies, in order.
    pub(crate) replies: Vec<RouteNetlinkMessage>,
    /// A reply carried `NLM_F_DUMP_INTR`.
    pub(crate) interrupted: bool,
}

/// Why a transaction could not complete as a whole.
#[derive(Debug)]
pub(crate) enum TxError {
    /// The receive queue overflowed: some replies are lost.
    Overflow,
    Fatal(Error),
}

impl From<Error> for TxError {
    fn from(e: Error) -> Self {
        TxError::Fatal(e)
    }
}

/// Applies one received datagram to `pending`, index-aligned with `chunk` whose first request
/// has sequence number `first_seq`. Messages for another port, for sequence numbers outside the
/// chunk, or for requests already complete are skipped. Returns how many requests this datagram
/// completed.
pub(crate) fn process_datagram(
    buf: &[u8],
    port: u32,
    first_seq: u32,
    chunk: &[Request],
    pending: &mut [Pending],
) -> Result<usize, TxError> {
    let chunk_op = chunk.first().map_or("receive netlink reply", |r| r.op);
    let mut completed = 0;
    for frame in wire::frames(buf) {
        let frame = frame.map_err(|e| Error::Protocol { op: chunk_op, detail: e.0 })?;
        let h = frame.header;
        if h.port != port && h.port != 0 {
            debug!("skipping netlink message for port {} (ours is {port})", h.port);
            continue;
        }
        let idx = h.seq.wrapping_sub(first_seq) as usize;
        let (Some(req), Some(p)) = (chunk.get(idx), pending.get_mut(idx)) else {
            debug!("skipping stale netlink reply with sequence {}", h.seq);
            continue;
        };
        if p.done {
            continue;
        }
        if h.flags & NLM_F_DUMP_INTR != 0 {
            p.interrupted = true;
        }
        match h.kind {
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => return Err(TxError::Overflow),
            NLMSG_ERROR => {
                let st = wire::decode_error(h.flags, frame.payload)
                    .map_err(|e| Error::Protocol { op: req.op, detail: e.0 })?;
                if st.errno != 0 {
                    p.result = Some(kernel_error(req, st));
                }
                p.done = true;
                completed += 1;
            }
            NLMSG_DONE => {
                let st = wire::decode_done(h.flags, frame.payload);
                if st.errno != 0 {
                    p.result = Some(kernel_error(req, st));
                }
                // A dump request also asked for an ACK; the kernel ends dumps with DONE only.
                p.done = true;
                completed += 1;
            }
            _ => match wire::decode_route(&h, frame.payload) {
                Ok(m) => p.replies.push(m),
                Err(e) => {
                    warn!("{} {}: undecodable reply skipped: {e}", req.op, req.object);
                    if p.result.is_none() && !req.is_dump() {
                        p.result = Some(Error::Protocol { op: req.op, detail: e.0 });
                    }
                }
            },
        }
    }
    Ok(completed)
}

fn kernel_error(req: &Request, st: wire::Status) -> Error {
    Error::Kernel(KernelError {
        op: req.op,
        object: req.object.clone(),
        errno: Errno::from_raw(st.errno),
        message: st.ext_ack.message,
    })
}
