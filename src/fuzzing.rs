//! Entry points for the fuzz targets in `fuzz/`, the corpus recorder and the stable corpus test.
//!
//! Compiled with the `fuzzing` feature (and in unit tests). Nothing here is stable API: it
//! re-exports internals and defines the byte formats the fuzz corpora are written in.

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkMessage;

pub use crate::netlink::addr::view::parse_address;
pub use crate::netlink::link::view::parse_link;
pub use crate::netlink::neigh::view::parse_neighbor;
pub use crate::netlink::route::view::parse_route;
pub use crate::netlink::wire::{
    ExtAck, Frame, Header, Status, WireError, decode_done, decode_error, frames, parse_ext_ack,
};
pub use crate::sandbox::{IfaceOptions, NeighFamily, NeighOptions, StaticRoute, check_key, generate_key};
pub use crate::validate::{host_cidr, ifname, ifname_prefix, mac_bytes, parse_cidr, parse_ip, parse_mac};

use crate::netlink::recv::{Pending, TxError, process_datagram};
use crate::netlink::socket::Request;
use crate::netlink::wire::NLM_F_DUMP;
use crate::netlink::wire::decode_route;

/// Most requests one `recv_path` input describes.
pub const RECV_MAX_REQUESTS: usize = 8;
/// Bytes before the first datagram in a `recv_path` input.
pub const RECV_PREFIX_LEN: usize = 10;

/// What the receive path made of an input, for assertions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RecvSummary {
    /// Requests in the chunk.
    pub requests: usize,
    /// Datagrams processed.
    pub datagrams: usize,
    /// Requests completed (ACK, error or DONE).
    pub completed: usize,
    /// Requests that carry an error.
    pub failed: usize,
    /// Decoded replies over all requests.
    pub replies: usize,
    /// Requests flagged as interrupted dumps.
    pub interrupted: usize,
    /// The datagram loop ended with an error: `Some(true)` for an overflow, `Some(false)` for
    /// a protocol error.
    pub error: Option<bool>,
}

/// Builds a `recv_path` input: `port` and `first_seq` (native endian), the number of requests,
/// a bit mask of which of them are dumps, then each datagram prefixed with its length as a
/// native-endian `u16` (longer datagrams are cut).
pub fn encode_recv_input(port: u32, first_seq: u32, requests: u8, dump_mask: u8, datagrams: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&port.to_ne_bytes());
    out.extend_from_slice(&first_seq.to_ne_bytes());
    out.push(requests);
    out.push(dump_mask);
    for d in datagrams {
        let d = &d[..d.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(d.len() as u16).to_ne_bytes());
        out.extend_from_slice(d);
    }
    out
}

/// Runs the socket's receive logic (`process_datagram`) over the datagrams of an input in the
/// [`encode_recv_input`] format, the way `Conn::collect` does: until every request is complete
/// or a datagram fails. Panics only when an internal invariant is broken (a fuzz finding).
/// For fuzz targets that decode route messages: panics raised inside netlink-packet-route are
/// contained by design (`wire::decode_route` catches them and returns an error), so they must
/// not abort the fuzzer, whose panic hook aborts on every panic, caught or not. Any other panic
/// still goes to the hook installed before (libFuzzer's: report and abort). Call once, from the
/// target's `init`.
pub fn contain_decoder_panics() {
    let fuzzer_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_decoder = info.location().is_some_and(|l| l.file().contains("netlink-packet-route"));
        if !in_decoder {
            fuzzer_hook(info);
        }
    }));
}

pub fn recv_path(data: &[u8]) -> RecvSummary {
    let mut summary = RecvSummary::default();
    let Some(prefix) = data.get(..RECV_PREFIX_LEN) else {
        return summary;
    };
    let port = u32::from_ne_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let first_seq = u32::from_ne_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    let n = (prefix[8] as usize % RECV_MAX_REQUESTS) + 1;
    let dump_mask = prefix[9];
    let chunk: Vec<Request> = (0..n)
        .map(|i| {
            let flags = if dump_mask & (1 << i) != 0 { NLM_F_DUMP } else { 0 };
            Request::new("fuzz", format!("request {i}"), flags, RouteNetlinkMessage::GetLink(LinkMessage::default()))
        })
        .collect();
    let mut pending: Vec<Pending> = (0..n).map(|_| Pending::default()).collect();
    summary.requests = n;
    let mut open = n;
    let mut rest = &data[RECV_PREFIX_LEN..];
    while open > 0 && rest.len() >= 2 {
        let len = (u16::from_ne_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let datagram = &rest[2..2 + len];
        rest = &rest[2 + len..];
        summary.datagrams += 1;
        let before = pending.iter().filter(|p| p.done).count();
        match process_datagram(datagram, port, first_seq, &chunk, &mut pending) {
            Ok(completed) => {
                assert!(completed <= open, "a datagram completed {completed} requests with only {open} open");
                let after = pending.iter().filter(|p| p.done).count();
                assert_eq!(after - before, completed, "completed count disagrees with the requests marked done");
                open -= completed;
            }
            // The transaction is abandoned: requests completed before the failure stay marked.
            Err(e) => {
                summary.error = Some(matches!(e, TxError::Overflow));
                break;
            }
        }
    }
    let done = pending.iter().filter(|p| p.done).count();
    summary.completed = done;
    summary.failed = pending.iter().filter(|p| p.result.is_some()).count();
    summary.replies = pending.iter().map(|p| p.replies.len()).sum();
    summary.interrupted = pending.iter().filter(|p| p.interrupted).count();
    summary
}

/// The `ext_ack` target: the first two bytes are the `NLM_F_*` flags, the rest the payload of an
/// `NLMSG_ERROR`/`NLMSG_DONE` message (and, as a whole, a TLV stream).
pub fn ext_ack(data: &[u8]) {
    let (flags, payload) = match data {
        [a, b, rest @ ..] => (u16::from_ne_bytes([*a, *b]), rest),
        _ => (0, data),
    };
    let _ = decode_error(flags, payload);
    let _ = decode_done(flags, payload);
    let _ = parse_ext_ack(payload);
    let _ = parse_ext_ack(data);
}

/// The `views` target: the bytes as the body of each kind of message, plus framing and
/// `decode_route` over them as a datagram.
pub fn views(data: &[u8]) {
    let _ = parse_link(data);
    let _ = parse_address(data);
    let _ = parse_route(data);
    let _ = parse_neighbor(data);
    for frame in frames(data).flatten() {
        let _ = decode_route(&frame.header, frame.payload);
    }
    // The same bytes as a multicast datagram (the event watcher's receive path).
    let _ = crate::netlink::monitor::decode(data, Some(1), &mut Vec::new());
}

/// Every user-input check over one string (the `user_input` target's strings go through here).
pub fn user_string(s: &str) {
    let _ = ifname(s);
    let _ = ifname_prefix(s);
    let _ = parse_mac(s);
    let _ = parse_ip(s);
    if let Ok(net) = parse_cidr(s) {
        let _ = host_cidr(&net);
    }
    let _ = check_key(s);
    let _ = generate_key(s);
}

/// A tiny deterministic PRNG (xorshift64*) for bounded random-input tests without a dependency.
#[doc(hidden)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Dumps a table and discards the answer (for the corpus recorder: what matters is the raw
/// datagrams [`Socket::record_datagrams`](crate::netlink::Socket::record_datagrams) keeps).
pub fn dump(sock: &crate::netlink::Socket, req: Request) -> crate::Result<()> {
    sock.dump(req).map(drop)
}

#[cfg(test)]
mod tests {
    //! Stable-Rust stand-in for the fuzzers: the committed corpora and regressions, then a
    //! bounded stream of generated buffers, through every decoder and the receive path.

    use std::path::{Path, PathBuf};

    use super::*;
    use crate::netlink::wire::{HEADER_LEN, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP_INTR, NLM_F_MULTIPART};

    /// One of the listed values, evaluated first (they may draw from the generator too).
    macro_rules! pick {
        ($rng:expr, [$($x:expr),* $(,)?]) => {{
            let xs = [$($x),*];
            let i = $rng.below(xs.len());
            xs[i]
        }};
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    fn fuzz_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
    }

    /// Runs the input through the target named like its corpus directory.
    fn run_target(target: &str, data: &[u8]) {
        match target {
            "recv_path" => {
                recv_path(data);
            }
            "ext_ack" => ext_ack(data),
            "views" => views(data),
            "user_input" => user_string(&String::from_utf8_lossy(data)),
            other => panic!("unknown fuzz target directory {other}"),
        }
    }

    #[test]
    fn committed_corpora_and_regressions_do_not_panic() {
        let mut seen = 0;
        for base in ["corpus", "regressions"] {
            for target in ["recv_path", "ext_ack", "views", "user_input"] {
                for f in files(&fuzz_dir().join(base).join(target)) {
                    let data = std::fs::read(&f).unwrap();
                    let r = std::panic::catch_unwind(|| run_target(target, &data));
                    assert!(r.is_ok(), "{} panicked", f.display());
                    // Every target also gets every input: the formats overlap on purpose.
                    for other in ["recv_path", "ext_ack", "views"] {
                        run_target(other, &data);
                    }
                    seen += 1;
                }
            }
        }
        assert!(seen >= 20, "expected the committed corpora under fuzz/corpus, found {seen} files");
    }

    #[test]
    fn recorded_dump_completes() {
        // Recorded corpora hold whole transactions: at least one of them must complete every
        // request with replies, or the recorder wrote something the receive path ignores.
        let full = files(&fuzz_dir().join("corpus/recv_path"))
            .iter()
            .map(|f| recv_path(&std::fs::read(f).unwrap()))
            .filter(|s| s.completed == s.requests && s.replies > 0 && s.error.is_none())
            .count();
        assert!(full > 0, "no recorded recv_path input completes its requests");
    }

    fn tlv(rng: &mut Rng, out: &mut Vec<u8>) {
        let kind = pick!(rng, [1u16, 2, 3, 4, 5, 6, 0x4001, rng.next_u64() as u16]);
        let value = match kind & 0x3fff {
            1 => {
                let mut v = {
                    let n = rng.below(24);
                    rng.bytes(n)
                };
                if rng.below(2) == 0 {
                    v.push(0);
                }
                v
            }
            _ => {
                let n = pick!(rng, [0, 2, 4, 8]);
                rng.bytes(n)
            }
        };
        let len = match rng.below(8) {
            0 => rng.next_u64() as u16,
            1 => rng.below(4) as u16,
            _ => (4 + value.len()) as u16,
        };
        out.extend_from_slice(&len.to_ne_bytes());
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&value);
        while !out.len().is_multiple_of(4) && rng.below(4) != 0 {
            out.push(0);
        }
    }

    /// A netlink-shaped datagram: a few messages with mostly plausible headers.
    fn datagram(rng: &mut Rng, port: u32, first_seq: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..1 + rng.below(4) {
            let kind = pick!(rng, [1u16, 2, 3, 4, 16, 20, 24, 28, rng.next_u64() as u16]);
            let flags = pick!(rng, [0, NLM_F_MULTIPART, NLM_F_DUMP_INTR | NLM_F_MULTIPART, NLM_F_ACK_TLVS])
                | pick!(rng, [0, NLM_F_CAPPED, NLM_F_ACK_TLVS, rng.next_u64() as u16]);
            let seq = first_seq.wrapping_add(pick!(rng, [0u32, 0, 1, 2, 7, u32::MAX, rng.next_u64() as u32]));
            let port = pick!(rng, [port, port, 0, rng.next_u64() as u32]);
            let mut payload = Vec::new();
            match kind {
                2 | 3 => {
                    payload.extend_from_slice(&pick!(rng, [0i32, -1, -17, -22, i32::MIN, 5]).to_ne_bytes());
                    if kind == 2 && rng.below(4) != 0 {
                        let echoed_len = pick!(rng, [HEADER_LEN as u32, 20, 0, 3, rng.next_u64() as u32]);
                        let h = Header { len: echoed_len, kind: 16, flags: 5, seq, port: 0 };
                        let mut hb = [0u8; HEADER_LEN];
                        h.emit(&mut hb);
                        payload.extend_from_slice(&hb);
                        payload.extend({
                            let n = pick!(rng, [0, 4, 16]);
                            rng.bytes(n)
                        });
                    }
                    for _ in 0..rng.below(4) {
                        tlv(rng, &mut payload);
                    }
                }
                _ => {
                    payload.extend({
                        let n = pick!(rng, [0, 3, 8, 12, 16, 40]);
                        rng.bytes(n)
                    });
                    for _ in 0..rng.below(6) {
                        tlv(rng, &mut payload);
                    }
                }
            }
            let true_len = (HEADER_LEN + payload.len()) as u32;
            let len = match rng.below(12) {
                0 => rng.below(HEADER_LEN) as u32,
                1 => true_len + 1 + rng.below(64) as u32,
                2 => u32::MAX,
                _ => true_len,
            };
            let mut hb = [0u8; HEADER_LEN];
            Header { len, kind, flags, seq, port }.emit(&mut hb);
            out.extend_from_slice(&hb);
            out.extend(payload);
            while !out.len().is_multiple_of(4) {
                out.push(0);
            }
        }
        if rng.below(8) == 0 {
            out.truncate(rng.below(out.len() + 1));
        }
        out
    }

    #[test]
    fn generated_buffers_do_not_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for i in 0..20_000 {
            let data = if i % 5 == 0 {
                {
                    let n = rng.below(256);
                    rng.bytes(n)
                }
            } else {
                let port = pick!(rng, [0u32, 1, 4242, rng.next_u64() as u32]);
                let first_seq = pick!(rng, [1u32, u32::MAX, rng.next_u64() as u32]);
                let n = rng.next_u64() as u8;
                let dumps = rng.next_u64() as u8;
                let datagrams: Vec<Vec<u8>> =
                    (0..1 + rng.below(3)).map(|_| datagram(&mut rng, port, first_seq)).collect();
                encode_recv_input(port, first_seq, n, dumps, &datagrams)
            };
            recv_path(&data);
            ext_ack(&data);
            ext_ack(data.get(RECV_PREFIX_LEN..).unwrap_or_default());
            views(&data);
            views(data.get(RECV_PREFIX_LEN + 2..).unwrap_or_default());
            if i % 10 == 0 {
                user_string(&String::from_utf8_lossy(&data));
            }
        }
    }

    #[test]
    fn recv_path_handles_a_synthetic_dump() {
        // One dump: two replies across two datagrams, the second flagged DUMP_INTR, then DONE.
        let port = 77;
        let msg = |kind: u16, flags: u16, payload: &[u8]| {
            let mut v = vec![0u8; HEADER_LEN];
            Header { len: (HEADER_LEN + payload.len()) as u32, kind, flags, seq: 5, port }.emit(&mut v);
            v.extend_from_slice(payload);
            v
        };
        let mut link = LinkMessage::default();
        link.header.index = 1;
        let mut body = Vec::new();
        crate::netlink::wire::emit_route(
            &mut body,
            Header { flags: NLM_F_MULTIPART, seq: 5, port, ..Header::default() },
            &RouteNetlinkMessage::NewLink(link),
        );
        let mut second = body.clone();
        second[6..8].copy_from_slice(&(NLM_F_MULTIPART | NLM_F_DUMP_INTR).to_ne_bytes());
        second.extend(msg(3, NLM_F_MULTIPART, &0i32.to_ne_bytes()));
        let s = recv_path(&encode_recv_input(port, 5, 0, 1, &[body, second]));
        assert_eq!(
            s,
            RecvSummary { requests: 1, datagrams: 2, completed: 1, failed: 0, replies: 2, interrupted: 1, error: None }
        );
    }
}
