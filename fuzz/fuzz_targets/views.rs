//! Message bodies through `parse_link`, `parse_address`, `parse_route` and `parse_neighbor`
//! (netlink-packet-route parsing plus our checked conversion), and the bytes as a datagram.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: netsandbox::fuzzing::contain_decoder_panics(), |data: &[u8]| {
    netsandbox::fuzzing::views(data);
});
