//! The socket's receive path over arbitrary datagrams (see `netsandbox::fuzzing::recv_path` for
//! the input format): framing, port/sequence matching, ERROR/DONE/extended ACK, DUMP_INTR,
//! overrun, and route-message decoding, with its completion invariants asserted.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: netsandbox::fuzzing::contain_decoder_panics(), |data: &[u8]| {
    let _ = netsandbox::fuzzing::recv_path(data);
});
