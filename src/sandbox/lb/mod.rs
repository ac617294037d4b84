//! Load balancing and ingress inside a sandbox, on nf_tables (no IPVS), the way kube-proxy's
//! nftables mode does it:
//!
//! - one table, `inet netsandbox`, owned by netsandbox, with a constant set of chains and maps
//!   whatever the number of services and backends (the kernel walks every chain on each commit
//!   and finds sets by name linearly, so per-service objects would make every change
//!   O(services); see `nft.rs`);
//! - `ip daddr . meta l4proto . th dport vmap @services4` (and `@services6`) sends a packet for
//!   a service to the chain of its slot count S, `slots4-<S>`, whose one rule picks a backend
//!   and DNATs to it: `dnat to ip daddr . meta l4proto . th dport . numgen random mod S map
//!   @sel4` over a *data* map `service . slot → addr . port`;
//! - S is a power of two per service kept between 2× and 8× its active weight total (see
//!   `model.rs`), so an ordinary backend change rewrites only the few slot elements it moves —
//!   no rule, chain or verdict, so the kernel neither re-validates the chain graph nor does
//!   work that grows with the ruleset; a resize retargets one `services4` element;
//! - the backends map `backends4` (`service . addr . port → weight`) records every backend,
//!   drained ones too;
//! - `postrouting` masquerades DNATed flows (`ct status dnat`), so replies come back through the
//!   sandbox whether the backends route through it or not (hairpin included);
//! - ingress: `iifname . meta l4proto . th dport vmap @published` sends a published port on an
//!   interface to its chain `pub-…`, which DNATs like the service's own rule (its key as
//!   constants), i.e. to the VIP's backends.
//!
//! Every call is one nf_tables transaction: it is applied whole or not at all. The VIP is an
//! alias on the loopback (changed after the transaction commits; a failed alias undoes the
//! transaction). Draining takes a backend out of the selection map only: conntrack keeps its
//! established flows. State lives in the kernel: services (and their S, from the chain their
//! `services4` element goes to), backends, weights, slot owners and drain state are read back
//! from the maps, published ports from their chains' comments, so [`LoadBalancer::lb_restore`]
//! after an engine restart sees exactly what was built.

mod fake;
mod model;
mod netns;
mod nft;

use std::fmt;
use std::net::IpAddr;

pub(crate) use self::netns::LbSlot;
pub use self::netns::{add_masquerade, list_masquerade, remove_masquerade};
pub use model::{LbState, MAX_SERVICE_WEIGHT, MAX_SLOTS, MIN_SLOTS, check_backend, check_service};
pub use nft::{LB_TABLE, MASQ_TABLE};

use crate::error::Result;

/// Largest backend weight.
pub const MAX_WEIGHT: u32 = 256;

/// Transport protocol of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// IANA protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    /// From an IANA protocol number.
    pub fn from_number(n: u8) -> Option<Protocol> {
        match n {
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

impl std::str::FromStr for Protocol {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Protocol> {
        match s {
            "tcp" | "TCP" => Ok(Protocol::Tcp),
            "udp" | "UDP" => Ok(Protocol::Udp),
            _ => Err(crate::Error::InvalidArgument { op: "protocol", reason: format!("{s:?} is not tcp or udp") }),
        }
    }
}

/// A service: a VIP, a protocol and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// The virtual IP (v4 or v6).
    pub vip: IpAddr,
    /// Protocol.
    pub proto: Protocol,
    /// Port.
    pub port: u16,
}

impl ServiceKey {
    /// A TCP service.
    pub fn tcp(vip: IpAddr, port: u16) -> ServiceKey {
        ServiceKey { vip, proto: Protocol::Tcp, port }
    }

    /// A UDP service.
    pub fn udp(vip: IpAddr, port: u16) -> ServiceKey {
        ServiceKey { vip, proto: Protocol::Udp, port }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.proto, model::fmt_addr((self.vip, self.port)))
    }
}

/// A backend of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Backend {
    /// Address (same family as the VIP).
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// Weight, 1..=[`MAX_WEIGHT`]: its share of new connections is weight / total weight.
    pub weight: u32,
}

/// Whether a backend gets new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendState {
    /// Chosen for new connections.
    Active,
    /// Out of the selection: only its established connections continue.
    Draining,
}

/// A backend as the kernel holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BackendInfo {
    /// The backend.
    pub backend: Backend,
    /// Active or draining.
    pub state: BackendState,
}

/// A service and its backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The service.
    pub service: ServiceKey,
    /// Its backends, ordered by address.
    pub backends: Vec<BackendInfo>,
}

/// An ingress entry: packets arriving on `iface` for `proto`/`port` go to `service`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublishedPort {
    /// Interface of the ingress sandbox.
    pub iface: String,
    /// Protocol.
    pub proto: Protocol,
    /// Published port.
    pub port: u16,
    /// The service it leads to.
    pub service: ServiceKey,
}

impl fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} -> {}", self.iface, self.proto, self.port, self.service)
    }
}

/// One change of a [`LoadBalancer::lb_apply`] transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LbChange {
    /// [`LoadBalancer::add_service`].
    AddService(ServiceKey),
    /// [`LoadBalancer::remove_service`].
    RemoveService(ServiceKey),
    /// [`LoadBalancer::add_backend`].
    AddBackend(ServiceKey, Backend),
    /// [`LoadBalancer::remove_backend`].
    RemoveBackend(ServiceKey, IpAddr, u16),
    /// [`LoadBalancer::drain_backend`].
    DrainBackend(ServiceKey, IpAddr, u16),
}

/// The load-balancer API of a sandbox (implemented by [`NetnsSandbox`](super::NetnsSandbox)
/// and [`FakeSandbox`](super::FakeSandbox), which share one validation path).
///
/// Every mutating call validates first (typed errors: `InvalidAddress`, `InvalidArgument`,
/// `InvalidName`, `NotFound`, `AlreadyExists`), then applies one atomic transaction: on error
/// nothing changed.
pub trait LoadBalancer {
    /// Adds a service with no backends (connections to it are refused until one is added).
    /// Puts the VIP on the loopback, turns IP forwarding on and applies the LB sysctls.
    fn add_service(&self, svc: &ServiceKey) -> Result<()>;

    /// Removes a service, its backends and its published ports; new connections to the VIP
    /// fail from then on. The VIP leaves the loopback when no other service uses it.
    fn remove_service(&self, svc: &ServiceKey) -> Result<()>;

    /// Adds an active backend.
    fn add_backend(&self, svc: &ServiceKey, backend: &Backend) -> Result<()>;

    /// Removes a backend (draining or not).
    fn remove_backend(&self, svc: &ServiceKey, ip: IpAddr, port: u16) -> Result<()>;

    /// Stops sending new connections to a backend; established ones continue. Idempotent.
    fn drain_backend(&self, svc: &ServiceKey, ip: IpAddr, port: u16) -> Result<()>;

    /// Ingress: packets for `port.proto`/`port.port` arriving on `port.iface` go to the
    /// service's backends.
    fn publish_port(&self, port: &PublishedPort) -> Result<()>;

    /// Removes a published port.
    fn unpublish_port(&self, iface: &str, proto: Protocol, port: u16) -> Result<()>;

    /// Applies many changes as one transaction (e.g. a whole service set at start-up): all are
    /// validated in order, then committed together or not at all. VIP aliases are changed after
    /// the commit; an alias that fails then is returned as the error (the rules stay).
    fn lb_apply(&self, changes: &[LbChange]) -> Result<()>;

    /// Services and backends, read back from the kernel.
    fn lb_services(&self) -> Result<Vec<ServiceInfo>>;

    /// Published ports, read back from the kernel.
    fn lb_published(&self) -> Result<Vec<PublishedPort>>;

    /// Rebuilds the in-memory view from the kernel (after an engine restart) and returns it.
    /// Never changes kernel state.
    fn lb_restore(&self) -> Result<Vec<ServiceInfo>>;

    /// Removes the whole load balancer (table and VIP aliases).
    fn lb_clear(&self) -> Result<()>;
}
