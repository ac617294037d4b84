//! The [`Sandbox`] trait — libnetwork's `osl` surface — and its implementations:
//! [`NetnsSandbox`] (a bind-mounted network namespace) and [`FakeSandbox`] (in memory, for
//! engines' unit tests).
//!
//! Every method is synchronous and thread-safe; a sandbox can be shared as `Arc<dyn Sandbox>`.

mod bridge;
mod check;
pub mod drift;
mod events;
mod fake;
mod info;
mod inspect;
mod key;
pub mod lb;
mod netns;
mod options;
pub mod random;
pub mod vm;

pub use bridge::{BridgeOptions, HostBridge};
pub use events::{Change, Event, Mirror, Object, Source, WatchOptions, WatchStats, Watcher};
pub use fake::FakeSandbox;
pub use info::{InterfaceInfo, NeighborInfo, SandboxInfo, Statistics, TweakReport};
pub use inspect::{
    AddressDetail, Inspection, LinkDetail, LinkPeer, NeighborDetail, OperState, RouteDetail, protocol_name,
    route_type_name, scope_name,
};
pub use key::{DEFAULT_ROOT, base_path, check_id, check_key, generate_key, set_base_path};
pub use lb::LoadBalancer;
pub use netns::{
    CreateOptions, DestroyReport, NetnsSandbox, REAP_GRACE, RTPROT_NETSANDBOX, RTPROT_NETSANDBOX_IFACE, Reaped,
    WarmPool,
};
pub use options::{IfaceOptions, NeighFamily, NeighOptions, SandboxType, StaticRoute};
pub use random::{random_local_mac, random_veth_name};
pub use vm::{AttachMode, AttachOptions, Tap, TapInfo, TapOptions, VmAttachment, VmNetwork, VmRoute};

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::Result;

/// A network sandbox: a namespace with interfaces, routes and neighbors, as a container engine
/// sees it. Object safe; generic helpers live in [`SandboxExt`].
///
/// Every method validates its input first, through one validation path that every
/// implementation shares: an invalid argument is a typed error and leaves the sandbox unchanged.
/// After [`destroy`](Sandbox::destroy) — through this handle, another one, or another process —
/// every method but `key` and `destroy` returns [`Error::Destroyed`](crate::Error::Destroyed).
pub trait Sandbox: Send + Sync {
    /// The key (pin path) of this sandbox.
    fn key(&self) -> &str;

    /// Moves link `src_name` from the origin namespace into the sandbox, renames it to
    /// `dst_prefix` + the lowest free index, applies `opts`, brings it up and adds its routes.
    /// With [`IfaceOptions::bridge`], creates a bridge inside instead (`src_name` is then
    /// ignored, and may be empty). An address whose subnet overlaps a route already in the
    /// sandbox is refused, IPv4 and IPv6 alike (`InvalidArgument`). On failure nothing is left
    /// half-done: a moved link goes back to its origin exactly as it was there (name, up state,
    /// MAC, MTU, master, addresses and routes). Returns the name inside.
    fn add_interface(&self, src_name: &str, dst_prefix: &str, opts: &IfaceOptions) -> Result<String>;

    /// The fast path: creates a veth pair whose host end is `host_name` in the origin namespace
    /// and whose sandbox end is born inside with its final name (`dst_prefix` + index), MAC and
    /// MTU — no link move, which costs ~18 ms on this kernel. Configured like `add_interface`.
    /// Returns the name inside.
    fn add_veth(&self, host_name: &str, dst_prefix: &str, opts: &IfaceOptions) -> Result<String>;

    /// Returns a moved-in interface to the namespace it came from — found again from whatever
    /// process and namespace calls this — under its original name, MAC and MTU (and up if it was
    /// up); a bridge or veth the sandbox created is deleted. Removing twice is
    /// `NotFound{kind:"interface"}`; an origin that no longer exists is
    /// `NotFound{kind:"origin namespace"}` and an origin name taken there `AlreadyExists`
    /// (the interface stays where it is); a link the sandbox neither made nor moved in (an
    /// adopted namespace's own) is `InvalidArgument`: it is never sent anywhere.
    fn remove_interface(&self, name: &str) -> Result<()>;

    /// The interfaces, read back from the kernel.
    fn interfaces(&self) -> Result<Vec<InterfaceInfo>>;

    /// Counters of one interface.
    fn statistics(&self, name: &str) -> Result<Statistics>;

    /// Adds the default route via `gw` (v4 or v6), through the interface that reaches it.
    fn set_gateway(&self, gw: IpAddr) -> Result<()>;

    /// Removes the default route via `gw`.
    fn unset_gateway(&self, gw: IpAddr) -> Result<()>;

    /// Adds a static route.
    fn add_static_route(&self, route: &StaticRoute) -> Result<()>;

    /// Removes a static route.
    fn remove_static_route(&self, route: &StaticRoute) -> Result<()>;

    /// Adds a permanent neighbor entry (ARP/NDP, or an fdb entry on a VXLAN device).
    /// An existing entry is `AlreadyExists` unless `force`, which replaces it (also a learned one).
    fn add_neighbor(&self, ip: IpAddr, mac: [u8; 6], force: bool, opts: &NeighOptions) -> Result<()>;

    /// Deletes a permanent neighbor entry from the kernel when `os_delete`; without it only
    /// checks that the entry exists (libnetwork's "already gone from the kernel" case: the view
    /// is the kernel's, so there is nothing else to forget). An unknown entry is `NotFound`.
    fn delete_neighbor(&self, ip: IpAddr, mac: [u8; 6], os_delete: bool) -> Result<()>;

    /// Adds an extra address (e.g. a VIP on the loopback). An address already on any interface
    /// of the sandbox, with any prefix (the loopback's own 127.0.0.1 and ::1 included), is
    /// `AlreadyExists{kind:"address"}`.
    fn add_alias_ip(&self, ifname: &str, cidr: IpNet) -> Result<()>;

    /// Removes an address added with `add_alias_ip`.
    fn remove_alias_ip(&self, ifname: &str, cidr: IpNet) -> Result<()>;

    /// Sets `arp_ignore=1` and `arp_announce=2` for the interface inside the sandbox, so a VIP on
    /// the loopback is not answered for on the wire.
    fn disable_arp_for_vip(&self, ifname: &str) -> Result<()>;

    /// Applies the kernel tweaks for the sandbox roles (IPVS connection reuse and expiry).
    /// Keys the kernel lacks are reported in the result, not errors.
    fn apply_os_tweaks(&self, types: &[SandboxType]) -> Result<TweakReport>;

    /// Name of the loopback interface.
    fn loopback_name(&self) -> &str {
        check::LOOPBACK
    }

    /// Runs `f` inside the sandbox's namespace on a dedicated thread. Prefer
    /// [`SandboxExt::invoke`], which returns the closure's value.
    fn invoke_boxed(&self, f: Box<dyn FnOnce() + Send + '_>) -> Result<()>;

    /// Checks, after an engine restart, that the sandbox can be read back from the kernel in
    /// full: the namespace is reachable and every link, address, route and neighbor entry in it
    /// decodes (an error names what could not be read). Never changes kernel state.
    ///
    /// There is no cache to rebuild: [`NetnsSandbox`] reads the kernel on every call, so a sandbox
    /// reopened with [`NetnsSandbox::open`] already reports what the kernel holds, whether or not
    /// `restore` is called. [`FakeSandbox`] models the same: entries its view stopped tracking
    /// come back from its "kernel".
    fn restore(&self) -> Result<()>;

    /// A plain-data snapshot of everything the sandbox holds.
    fn info(&self) -> Result<SandboxInfo>;

    /// Deletes the sandbox and its pin and handles. Links the sandbox created are deleted (a
    /// veth's host end with them); links moved in go back to their origin as `remove_interface`
    /// sends them, and when that cannot be (origin gone, name taken there) they are left in
    /// place and logged ([`NetnsSandbox::destroy_reporting`] returns them). Other links are
    /// deleted only in a namespace the sandbox made: an adopted one
    /// ([`NetnsSandbox::from_external`]) keeps its owner's. Moved-in links are home when it
    /// returns; what the sandbox made may be deleted by the kernel afterwards, when it frees
    /// the namespace (see [`NetnsSandbox::destroy_detached`]). Idempotent.
    fn destroy(&self) -> Result<()>;
}

/// Generic conveniences over any [`Sandbox`], including `dyn Sandbox`.
pub trait SandboxExt: Sandbox {
    /// Runs `f` inside the sandbox's namespace and returns its value. A panic in `f` is an
    /// [`Error::Panicked`](crate::Error::Panicked).
    fn invoke<T: Send, F: FnOnce() -> T + Send>(&self, f: F) -> Result<T> {
        let mut slot = None;
        self.invoke_boxed(Box::new(|| slot = Some(f())))?;
        slot.ok_or_else(|| crate::Error::Protocol { op: "invoke", detail: "closure did not run".into() })
    }
}

impl<S: Sandbox + ?Sized> SandboxExt for S {}
