//! Our synchronous rtnetlink client, on netlink-sys and netlink-packet-route.
//!
//! - [`wire`]: framing and control messages (ERROR/DONE/extended ACK), pure and fuzzable;
//! - `recv`: the receive path over one datagram, pure (no socket) and fuzzable;
//! - [`socket`]: the one place that sends requests and reads replies (ACKs, dumps, batches);
//! - [`monitor`]: the multicast receive path (notifications from every namespace with an id);
//! - [`link`], [`addr`], [`route`], [`neigh`], [`nsid`], [`tc`]: typed requests, thin over the socket,
//!   each with its checked, plain-data view of what the kernel returns ([`Link`], [`Address`],
//!   [`Route`], [`Neighbor`]) in a `view` file beside it; [`view`] holds what the views share;
//! - [`nftables`]: nf_tables over NETLINK_NETFILTER (batches, sets, maps, rules).
//!
//! This layer knows nothing of namespaces: a [`Socket`] works in the namespace it was opened in.
//! Opening one inside another namespace is [`netns::socket_in`](crate::netns::socket_in).

pub mod addr;
pub mod consts;
pub mod link;
pub mod monitor;
pub mod neigh;
pub mod nftables;
pub mod nsid;
pub(crate) mod recv;
pub mod route;
pub mod socket;
pub mod tc;
pub mod view;
pub mod wire;

pub use addr::Address;
pub use link::{Link, LinkKind, LinkStats};
pub use neigh::Neighbor;
pub use route::Route;
pub use socket::{BatchMode, BatchOutcome, BatchReport, Dump, Request, Socket};
pub use view::{Family, ViewError};
