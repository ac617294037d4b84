//! Our synchronous rtnetlink client, on netlink-sys and netlink-packet-route.
//!
//! - [`wire`]: framing and control messages (ERROR/DONE/extended ACK), pure and fuzzable;
//! - `recv`: the receive path over one datagram, pure (no socket) and fuzzable;
//! - [`socket`]: the one place that sends requests and reads replies (ACKs, dumps, batches);
//! - [`view`]: checked, plain-data views of what the kernel returns;
//! - [`nftables`]: nf_tables over NETLINK_NETFILTER (batches, sets, maps, rules);
//! - [`link`], [`addr`], [`route`], [`neigh`], [`nsid`]: typed requests, thin over the socket.

pub mod addr;
pub mod consts;
pub mod link;
pub mod neigh;
pub mod nftables;
pub mod nsid;
pub(crate) mod recv;
pub mod route;
pub mod socket;
pub mod view;
pub mod wire;

pub use socket::{BatchMode, BatchOutcome, BatchReport, Request, Socket};
