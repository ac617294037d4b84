//! netsandbox: fast, correct, testable Linux network sandboxes.
//!
//! Layers, bottom up (dependencies point one way):
//! - [`netlink`]: our synchronous rtnetlink client (socket, request/ACK, dumps, batches, typed ops).
//! - [`netns`]: namespace handles, pinning by bind mount, running code inside a namespace.
//! - [`sysctl`]: `/proc/sys` keys read and written inside a namespace.
//! - [`sandbox`]: the [`Sandbox`](sandbox::Sandbox) trait, its options, the bind-mounted netns
//!   implementation and an in-memory fake.

pub mod error;
pub mod netlink;
pub mod netns;
pub mod sysctl;
pub mod validate;

pub use error::{Error, KernelError, Result};
pub mod sandbox;

/// Internal entry points for the fuzz targets (`fuzz/`) and the corpus test; not stable API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
