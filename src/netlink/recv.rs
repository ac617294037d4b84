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
        namespace: None, // added by the socket, which knows where it is bound
    })
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::link::LinkMessage;

    use super::*;
    use crate::netlink::wire::{HEADER_LEN, Header, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_MULTIPART};

    const PORT: u32 = 4242;

    fn msg(kind: u16, flags: u16, seq: u32, port: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN];
        Header { len: (HEADER_LEN + payload.len()) as u32, kind, flags, seq, port }.emit(&mut v);
        v.extend_from_slice(payload);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    fn link_reply(seq: u32, flags: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let mut l = LinkMessage::default();
        l.header.index = seq;
        wire::emit_route(
            &mut out,
            Header { flags, seq, port: PORT, ..Header::default() },
            &RouteNetlinkMessage::NewLink(l),
        );
        out
    }

    fn error(seq: u32, errno: i32, text: Option<&str>) -> Vec<u8> {
        let mut p = (-errno).to_ne_bytes().to_vec();
        let mut echoed = vec![0u8; HEADER_LEN];
        Header { len: HEADER_LEN as u32, kind: 16, flags: 0, seq, port: PORT }.emit(&mut echoed);
        p.extend(echoed);
        let mut flags = NLM_F_CAPPED;
        if let Some(t) = text {
            flags |= NLM_F_ACK_TLVS;
            let mut v = t.as_bytes().to_vec();
            v.push(0);
            p.extend(((4 + v.len()) as u16).to_ne_bytes());
            p.extend(1u16.to_ne_bytes());
            p.extend(v);
        }
        msg(NLMSG_ERROR, flags, seq, PORT, &p)
    }

    fn reqs(n: usize, dump: bool) -> Vec<Request> {
        let flags = if dump { NLM_F_DUMP } else { 0 };
        (0..n)
            .map(|i| Request::new("test", format!("r{i}"), flags, RouteNetlinkMessage::GetLink(LinkMessage::default())))
            .collect()
    }

    fn run(datagrams: &[Vec<u8>], chunk: &[Request], first_seq: u32) -> (Vec<Pending>, usize) {
        let mut pending: Vec<Pending> = chunk.iter().map(|_| Pending::default()).collect();
        let mut completed = 0;
        for d in datagrams {
            completed += process_datagram(d, PORT, first_seq, chunk, &mut pending).unwrap_or_else(|_| panic!("fatal"));
        }
        (pending, completed)
    }

    #[test]
    fn multipart_dump_across_datagrams_with_dump_intr() {
        let chunk = reqs(1, true);
        let mut first = link_reply(10, NLM_F_MULTIPART);
        first.extend(link_reply(10, NLM_F_MULTIPART));
        let mut second = link_reply(10, NLM_F_MULTIPART | NLM_F_DUMP_INTR);
        second.extend(msg(NLMSG_DONE, NLM_F_MULTIPART, 10, PORT, &0i32.to_ne_bytes()));
        let (p, completed) = run(&[first, second], &chunk, 10);
        assert_eq!(completed, 1);
        assert!(p[0].done && p[0].interrupted && p[0].result.is_none());
        assert_eq!(p[0].replies.len(), 3);
    }

    #[test]
    fn done_carrying_an_error_fails_the_dump() {
        let chunk = reqs(1, true);
        let mut payload = (-16i32).to_ne_bytes().to_vec();
        payload.extend(((4 + 5) as u16).to_ne_bytes());
        payload.extend(1u16.to_ne_bytes());
        payload.extend(b"busy\0\0\0\0");
        let done = msg(NLMSG_DONE, NLM_F_MULTIPART | NLM_F_ACK_TLVS, 3, PORT, &payload);
        let (p, _) = run(&[link_reply(3, NLM_F_MULTIPART), done], &chunk, 3);
        match &p[0].result {
            Some(Error::Kernel(k)) => {
                assert_eq!(k.errno, Errno::EBUSY);
                assert_eq!(k.message.as_deref(), Some("busy"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn batch_acks_map_to_their_requests() {
        let chunk = reqs(3, false);
        // ACK, error with an extended ACK, ACK: all in one datagram, out of the usual order.
        let mut d = error(102, 0, None);
        d.extend(error(101, 19, Some("Device not found")));
        d.extend(error(100, 0, None));
        let (p, completed) = run(&[d], &chunk, 100);
        assert_eq!(completed, 3);
        assert!(p[0].result.is_none() && p[2].result.is_none());
        match &p[1].result {
            Some(Error::Kernel(k)) => {
                assert_eq!((k.errno, k.object.as_str()), (Errno::ENODEV, "r1"));
                assert_eq!(k.message.as_deref(), Some("Device not found"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn other_ports_stale_sequences_and_duplicates_are_skipped() {
        let chunk = reqs(1, false);
        let mut d = msg(NLMSG_ERROR, 0, 50, PORT + 1, &0i32.to_ne_bytes()); // someone else's
        d.extend(error(49, 0, None)); // stale: an earlier request we gave up on
        d.extend(error(50, 22, None));
        d.extend(error(50, 0, None)); // a second answer for a completed request
        let (p, completed) = run(&[d], &chunk, 50);
        assert_eq!(completed, 1);
        assert_eq!(p[0].result.as_ref().and_then(Error::errno), Some(Errno::EINVAL));
    }

    #[test]
    fn overrun_and_malformed_buffers_are_errors_not_panics() {
        let chunk = reqs(1, false);
        let mut pending = vec![Pending::default()];
        let o = msg(NLMSG_OVERRUN, 0, 1, PORT, &[]);
        assert!(matches!(process_datagram(&o, PORT, 1, &chunk, &mut pending), Err(TxError::Overflow)));
        let mut bad = error(1, 0, None);
        bad[0..4].copy_from_slice(&9999u32.to_ne_bytes());
        assert!(matches!(process_datagram(&bad, PORT, 1, &chunk, &mut pending), Err(TxError::Fatal(_))));
        assert_eq!(process_datagram(&[], PORT, 1, &[], &mut []).ok(), Some(0));
    }
}
