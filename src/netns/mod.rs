//! Network namespaces: handles, pins, and running code inside.
//!
//! - [`NetNsRef`]: a namespace named by name, file, process, thread or container id (through
//!   the container runtime's state, [`ContainerResolver`]), resolved to a [`NetNs`] on demand.
//! - [`NetNs`]: an owned, close-on-exec handle (current thread's, by path, by name, by pid, new).
//! - [`create_pinned`] / [`unpin`] / [`is_pinned`]: namespaces that outlive their handles, pinned
//!   by a bind mount under a base directory made shared by [`ensure_shared_base`].
//! - [`run_in`] / [`run_in_result`]: run a closure inside a namespace on a dedicated thread; the
//!   caller's thread never changes namespace. [`NsGuard`] moves the current thread instead, for
//!   the rare code that must (it is `!Send` and aborts if it cannot switch back).
//! - [`mountinfo`]: what is mounted where (for checks that no pin is left behind).
//! - [`socket_in`]: a netlink socket bound to a namespace for its whole life.
//! - netsandbox's own few set-up syscalls (`unshare` + bind mount in [`create_pinned`], `socket`
//!   in [`socket_in`]) step the calling thread in and back out instead of paying for a
//!   thread, but only after checking that the way back is permitted; the thread is home again
//!   before the call returns, panics included.

mod exec;
mod fhandle;
mod handle;
mod locate;
pub mod mountinfo;
mod pin;
mod reference;
mod socket;
mod sys;

pub use exec::{NsGuard, run_in, run_in_result};
pub(crate) use exec::{Target, hop};
pub use fhandle::NsFileHandle;
pub use handle::{NETNS_RUN_DIR, NetNs};
pub use locate::{NsInode, find_netns};
pub(crate) use pin::create_pinned_from;
pub use pin::{
    create_pinned, create_pinned_with, ensure_shared_base, is_pinned, pin_existing, release_base,
    release_base_if_unused, unpin,
};
pub use reference::{ContainerResolver, ContainerState, NetNsRef, OciRuntime, Podman, ReferenceError};
pub use socket::socket_in;
pub(crate) use socket::socket_in_from;
