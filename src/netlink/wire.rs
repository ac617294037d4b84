//! The netlink framing layer: splits a received datagram into messages and decodes the control
//! messages (`NLMSG_ERROR`, `NLMSG_DONE`) including the kernel's extended-ACK TLVs.
//!
//! Guarantee: nothing in this module panics, whatever bytes it is given. Lengths are checked
//! before every slice; a malformed buffer yields a [`WireError`]. Route messages themselves are
//! decoded by netlink-packet-route behind `decode_route` (internal), which also never lets a panic escape.

use netlink_packet_core::{NetlinkDeserializable, NetlinkHeader};
use netlink_packet_route::RouteNetlinkMessage;

/// Size of `struct nlmsghdr`.
pub const HEADER_LEN: usize = 16;
/// `NLMSG_NOOP`.
pub const NLMSG_NOOP: u16 = 1;
/// `NLMSG_ERROR` (also carries ACKs: error code 0).
pub const NLMSG_ERROR: u16 = 2;
/// `NLMSG_DONE`: end of a multipart dump.
pub const NLMSG_DONE: u16 = 3;
/// `NLMSG_OVERRUN`.
pub const NLMSG_OVERRUN: u16 = 4;

/// `NLM_F_REQUEST`.
pub const NLM_F_REQUEST: u16 = 0x01;
/// `NLM_F_MULTIPART`.
pub const NLM_F_MULTIPART: u16 = 0x02;
/// `NLM_F_ACK`.
pub const NLM_F_ACK: u16 = 0x04;
/// `NLM_F_ECHO`: send the resulting notification back to the requester too.
pub const NLM_F_ECHO: u16 = 0x08;
/// `NLM_F_DUMP_INTR`: the dump was interrupted by a change and is inconsistent.
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// `NLM_F_DUMP` (`NLM_F_ROOT | NLM_F_MATCH`).
pub const NLM_F_DUMP: u16 = 0x300;
/// `NLM_F_REPLACE`.
pub const NLM_F_REPLACE: u16 = 0x100;
/// `NLM_F_EXCL`.
pub const NLM_F_EXCL: u16 = 0x200;
/// `NLM_F_CREATE`.
pub const NLM_F_CREATE: u16 = 0x400;
/// `NLM_F_CAPPED` (on `NLMSG_ERROR`): the echoed request was cut to its header.
pub const NLM_F_CAPPED: u16 = 0x100;
/// `NLM_F_ACK_TLVS` (on `NLMSG_ERROR`/`NLMSG_DONE`): extended-ACK attributes follow.
pub const NLM_F_ACK_TLVS: u16 = 0x200;

const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const NLMSGERR_ATTR_MISS_TYPE: u16 = 5;

/// A malformed buffer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub String);

/// A `struct nlmsghdr`, decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// Length of the message including this header.
    pub len: u32,
    /// Message type (`RTM_*` or `NLMSG_*`).
    pub kind: u16,
    /// `NLM_F_*` flags.
    pub flags: u16,
    /// Sequence number.
    pub seq: u32,
    /// Port id: on a request, the sender's; on the kernel's reply, the port of the socket it answers.
    pub port: u32,
}

impl Header {
    /// Reads a header from the first 16 bytes.
    pub fn parse(buf: &[u8]) -> Result<Header, WireError> {
        let b = buf
            .get(..HEADER_LEN)
            .ok_or_else(|| WireError(format!("{} bytes is too short for a netlink header", buf.len())))?;
        Ok(Header {
            len: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            kind: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            port: u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
        })
    }

    /// Writes the header into the first 16 bytes of `buf` (which must be at least that long).
    pub fn emit(&self, buf: &mut [u8]) {
        buf[0..4].copy_from_slice(&self.len.to_ne_bytes());
        buf[4..6].copy_from_slice(&self.kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&self.flags.to_ne_bytes());
        buf[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        buf[12..16].copy_from_slice(&self.port.to_ne_bytes());
    }
}

/// One netlink message inside a datagram: its header and its payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The decoded header.
    pub header: Header,
    /// The bytes after the header, `header.len - 16` of them.
    pub payload: &'a [u8],
}

/// Iterates over the messages of a datagram. Stops after the first malformed one.
pub struct Frames<'a> {
    rest: &'a [u8],
}

/// Splits `buf` into netlink messages.
pub fn frames(buf: &[u8]) -> Frames<'_> {
    Frames { rest: buf }
}

/// Rounds up to a multiple of 4; saturates instead of overflowing (an echoed header's length is
/// untrusted and may be near `u32::MAX`, which overflows a 32-bit `usize`).
const fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = (|| {
            let header = Header::parse(self.rest)?;
            let len = header.len as usize;
            if len < HEADER_LEN {
                return Err(WireError(format!("message length {len} is shorter than the header")));
            }
            if len > self.rest.len() {
                return Err(WireError(format!(
                    "message length {len} exceeds the {} bytes left in the datagram",
                    self.rest.len()
                )));
            }
            let payload = &self.rest[HEADER_LEN..len];
            let advance = align4(len).min(self.rest.len());
            self.rest = &self.rest[advance..];
            Ok(Frame { header, payload })
        })();
        if result.is_err() {
            self.rest = &[];
        }
        Some(result)
    }
}

/// The kernel's extended-ACK attributes (`NLMSGERR_ATTR_*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtAck {
    /// `NLMSGERR_ATTR_MSG`: the human-readable reason.
    pub message: Option<String>,
    /// `NLMSGERR_ATTR_OFFS`: byte offset of the offending attribute in the request.
    pub offset: Option<u32>,
    /// `NLMSGERR_ATTR_MISS_TYPE`: the type of a missing mandatory attribute.
    pub missing_type: Option<u32>,
}

/// Decodes extended-ACK TLVs. Malformed trailing bytes end the walk; they never panic.
pub fn parse_ext_ack(mut tlvs: &[u8]) -> ExtAck {
    let mut ack = ExtAck::default();
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            break;
        }
        let value = &tlvs[4..len];
        match kind {
            NLMSGERR_ATTR_MSG => {
                let text = value.split(|&b| b == 0).next().unwrap_or_default();
                let text = String::from_utf8_lossy(text).trim().to_owned();
                if !text.is_empty() {
                    ack.message = Some(text);
                }
            }
            NLMSGERR_ATTR_OFFS => ack.offset = read_u32(value),
            NLMSGERR_ATTR_MISS_TYPE => ack.missing_type = read_u32(value),
            _ => {}
        }
        tlvs = &tlvs[align4(len).min(tlvs.len())..];
    }
    ack
}

fn read_u32(v: &[u8]) -> Option<u32> {
    v.get(..4).map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// What an `NLMSG_ERROR` or `NLMSG_DONE` message says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// 0 for success (an ACK), otherwise a positive errno.
    pub errno: i32,
    /// The extended ACK, if the kernel sent one.
    pub ext_ack: ExtAck,
    /// For `NLMSG_ERROR`: the sequence number of the request this answers (from the echoed header).
    pub echoed_seq: Option<u32>,
}

/// Decodes the payload of an `NLMSG_ERROR` message (`struct nlmsgerr` + optional TLVs).
pub fn decode_error(flags: u16, payload: &[u8]) -> Result<Status, WireError> {
    let code = payload
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| WireError("NLMSG_ERROR shorter than its error code".into()))?;
    let echoed = payload.get(4..).map(Header::parse).transpose().ok().flatten();
    let mut status = Status {
        errno: code.checked_neg().unwrap_or(i32::MAX),
        echoed_seq: echoed.map(|h| h.seq),
        ..Status::default()
    };
    if flags & NLM_F_ACK_TLVS != 0 {
        // TLVs follow the echoed message: the full request, or only its header when capped.
        let echoed_len = match echoed {
            Some(h) if flags & NLM_F_CAPPED == 0 => align4(h.len as usize),
            _ => HEADER_LEN,
        };
        if let Some(tlvs) = payload.get(echoed_len.saturating_add(4)..) {
            status.ext_ack = parse_ext_ack(tlvs);
        }
    }
    Ok(status)
}

/// Decodes the payload of an `NLMSG_DONE` message: an optional error code (a dump that failed
/// part-way reports it here) and optional TLVs.
pub fn decode_done(flags: u16, payload: &[u8]) -> Status {
    let code = payload.get(..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0);
    let mut status = Status { errno: code.checked_neg().unwrap_or(i32::MAX), ..Status::default() };
    if flags & NLM_F_ACK_TLVS != 0 {
        status.ext_ack = parse_ext_ack(payload.get(4..).unwrap_or_default());
    }
    status
}

/// Decodes a route-family message through netlink-packet-route. The library has had panics on
/// unexpected kernel input before; a panic here is caught and turned into an error.
pub(crate) fn decode_route(header: &Header, payload: &[u8]) -> Result<RouteNetlinkMessage, WireError> {
    let mut nh = NetlinkHeader::default();
    nh.length = header.len;
    nh.message_type = header.kind;
    nh.flags = header.flags;
    nh.sequence_number = header.seq;
    nh.port_number = header.port;
    match std::panic::catch_unwind(|| RouteNetlinkMessage::deserialize(&nh, payload)) {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(WireError(format!("cannot decode message type {}: {e}", header.kind))),
        Err(_) => Err(WireError(format!("decoder panicked on message type {}", header.kind))),
    }
}

/// Serializes `msg` with `header` (length computed here) and appends it to `out`, padded to 4.
pub(crate) fn emit_route(out: &mut Vec<u8>, mut header: Header, msg: &RouteNetlinkMessage) {
    use netlink_packet_core::NetlinkSerializable;
    let body = msg.buffer_len();
    header.len = (HEADER_LEN + body) as u32;
    header.kind = msg.message_type();
    let start = out.len();
    out.resize(start + align4(HEADER_LEN + body), 0);
    header.emit(&mut out[start..start + HEADER_LEN]);
    msg.serialize(&mut out[start + HEADER_LEN..start + HEADER_LEN + body]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; HEADER_LEN];
        Header { len: (HEADER_LEN + payload.len()) as u32, kind, flags, seq, port: 7 }.emit(&mut v);
        v.extend_from_slice(payload);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    #[test]
    fn splits_multipart_datagram() {
        let mut buf = msg(16, NLM_F_MULTIPART, 1, &[1, 2, 3]);
        buf.extend(msg(16, NLM_F_MULTIPART, 1, &[4; 8]));
        buf.extend(msg(NLMSG_DONE, NLM_F_MULTIPART, 1, &0i32.to_ne_bytes()));
        let f: Vec<_> = frames(&buf).collect::<Result<_, _>>().unwrap();
        assert_eq!(f.len(), 3);
        assert_eq!(f[0].payload, &[1, 2, 3]);
        assert_eq!(f[1].payload.len(), 8);
        assert_eq!(f[2].header.kind, NLMSG_DONE);
        assert_eq!(decode_done(f[2].header.flags, f[2].payload).errno, 0);
    }

    #[test]
    fn rejects_bad_lengths() {
        let mut short = msg(16, 0, 1, &[]);
        short[0..4].copy_from_slice(&8u32.to_ne_bytes());
        assert!(frames(&short).next().unwrap().is_err());
        let mut long = msg(16, 0, 1, &[0; 4]);
        long[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        let mut it = frames(&long);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none(), "iteration stops after a malformed message");
        assert!(frames(&[1, 2, 3]).next().unwrap().is_err());
    }

    #[test]
    fn error_with_ext_ack_capped() {
        let req = msg(16, NLM_F_REQUEST | NLM_F_ACK, 42, &[9; 12]);
        let mut payload = (-22i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&req[..HEADER_LEN]);
        payload.extend(tlv(NLMSGERR_ATTR_MSG, b"Invalid prefix length\0"));
        payload.extend(tlv(NLMSGERR_ATTR_OFFS, &24u32.to_ne_bytes()));
        let st = decode_error(NLM_F_CAPPED | NLM_F_ACK_TLVS, &payload).unwrap();
        assert_eq!(st.errno, 22);
        assert_eq!(st.echoed_seq, Some(42));
        assert_eq!(st.ext_ack.message.as_deref(), Some("Invalid prefix length"));
        assert_eq!(st.ext_ack.offset, Some(24));
    }

    #[test]
    fn error_with_ext_ack_uncapped() {
        let req = msg(16, NLM_F_REQUEST | NLM_F_ACK, 5, &[9; 10]);
        let mut payload = (-17i32).to_ne_bytes().to_vec();
        payload.extend_from_slice(&req);
        payload.extend(tlv(NLMSGERR_ATTR_MSG, b"File exists\0"));
        payload.extend(tlv(NLMSGERR_ATTR_MISS_TYPE, &3u32.to_ne_bytes()));
        let st = decode_error(NLM_F_ACK_TLVS, &payload).unwrap();
        assert_eq!(st.errno, 17);
        assert_eq!(st.ext_ack.message.as_deref(), Some("File exists"));
        assert_eq!(st.ext_ack.missing_type, Some(3));
    }

    #[test]
    fn ack_and_truncated_error() {
        let mut payload = 0i32.to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; HEADER_LEN]);
        assert_eq!(decode_error(0, &payload).unwrap().errno, 0);
        assert!(decode_error(0, &[1, 2]).is_err());
        // An error whose echoed header is missing still yields the errno.
        assert_eq!(decode_error(NLM_F_ACK_TLVS, &(-1i32).to_ne_bytes()).unwrap().errno, 1);
        assert_eq!(decode_error(0, &i32::MIN.to_ne_bytes()).unwrap().errno, i32::MAX);
    }

    #[test]
    fn error_with_huge_echoed_length() {
        let mut payload = (-22i32).to_ne_bytes().to_vec();
        let mut h = [0u8; HEADER_LEN];
        Header { len: u32::MAX, kind: 16, flags: 5, seq: 3, port: 0 }.emit(&mut h);
        payload.extend_from_slice(&h);
        payload.extend(tlv(NLMSGERR_ATTR_MSG, b"ignored\0"));
        let st = decode_error(NLM_F_ACK_TLVS, &payload).unwrap();
        assert_eq!((st.errno, st.echoed_seq, st.ext_ack.message), (22, Some(3), None));
        assert_eq!(align4(usize::MAX - 1), usize::MAX & !3);
    }

    #[test]
    fn done_with_error_and_message() {
        let mut payload = (-16i32).to_ne_bytes().to_vec();
        payload.extend(tlv(NLMSGERR_ATTR_MSG, b"dump failed\0"));
        let st = decode_done(NLM_F_ACK_TLVS, &payload);
        assert_eq!(st.errno, 16);
        assert_eq!(st.ext_ack.message.as_deref(), Some("dump failed"));
        assert_eq!(decode_done(0, &[]).errno, 0);
    }

    #[test]
    fn ext_ack_survives_garbage() {
        assert_eq!(parse_ext_ack(&[0xff, 0xff, 1, 0, 1]), ExtAck::default());
        assert_eq!(parse_ext_ack(&[2, 0, 1, 0]), ExtAck::default());
        let mut t = tlv(NLMSGERR_ATTR_OFFS, &[1, 2]);
        t.extend(tlv(NLMSGERR_ATTR_MSG, b"ok"));
        let a = parse_ext_ack(&t);
        assert_eq!(a.offset, None);
        assert_eq!(a.message.as_deref(), Some("ok"));
    }

    #[test]
    fn emit_then_decode_route_message() {
        let mut lm = netlink_packet_route::link::LinkMessage::default();
        lm.header.index = 3;
        let m = RouteNetlinkMessage::GetLink(lm);
        let mut out = Vec::new();
        emit_route(&mut out, Header { flags: NLM_F_REQUEST, seq: 9, ..Header::default() }, &m);
        let f = frames(&out).next().unwrap().unwrap();
        assert_eq!(f.header.seq, 9);
        assert_eq!(decode_route(&f.header, f.payload).unwrap(), m);
    }
}
