//! `decode_error`, `decode_done` and `parse_ext_ack`: two bytes of `NLM_F_*` flags, then the
//! control message's payload.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    netsandbox::fuzzing::ext_ack(data);
});
