//! Network namespaces: handles, pins, and running code inside.
//!
//! - [`NetNs`]: an owned, close-on-exec handle (current thread's, by path, by name, by pid, new).
//! - [`create_pinned`] / [`unpin`] / [`is_pinned`]: namespaces that outlive their handles, pinned
//!   by a bind mount under a base directory made shared by [`ensure_shared_base`].
//! - [`run_in`] / [`run_in_result`]: run a closure inside a namespace on a dedicated thread; the
//!   caller's thread never changes namespace. [`NsGuard`] moves the current thread instead, for
//!   the rare code that must (it is `!Send` and aborts if it cannot switch back).

mod exec;
mod handle;
mod mountinfo;
mod pin;
mod sys;

pub use exec::{NsGuard, run_in, run_in_result};
pub use handle::{NETNS_RUN_DIR, NetNs};
pub use pin::{create_pinned, create_pinned_with, ensure_shared_base, is_pinned, pin_existing, release_base, unpin};
