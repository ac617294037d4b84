//! netsandbox: fast, correct, testable Linux network sandboxes.
//!
//! Layers, bottom up (dependencies point one way):
//! - [`netlink`]: our synchronous rtnetlink client (socket, request/ACK, dumps, batches, typed ops).
//! - [`netns`]: namespace handles, pinning by bind mount, running code inside a namespace.
//! - [`sysctl`]: `/proc/sys` keys read and written inside a namespace.
//! - [`cni`] (feature `cni`): CNI configuration, results, errors and IPAM, for the
//!   `netsandbox-cni` plugin and for users of CNI results.
//! - [`sandbox`]: the [`Sandbox`](sandbox::Sandbox) trait, its options, the bind-mounted netns
//!   implementation and an in-memory fake.
//!
//! A complete sandbox set-up (the standard "SW" workload), as a container engine does it:
//!
//! ```no_run
//! use netsandbox::sandbox::{
//!     CreateOptions, IfaceOptions, NeighOptions, NetnsSandbox, Sandbox, SandboxExt, StaticRoute, generate_key,
//!     set_base_path,
//! };
//!
//! set_base_path("/run/netsandbox")?;
//! let key = generate_key("4f1c2a9e7b3d5c8a0e6f")?; // /run/netsandbox/netns/4f1c2a9e7b3d
//! let sb = NetnsSandbox::create(&key, &CreateOptions::default())?;
//!
//! // The fast path: the container end of a veth is born inside with its final name and MAC.
//! let opts = IfaceOptions::new()
//!     .address("198.18.0.2/16".parse().unwrap())
//!     .address_ipv6("2001:db8::2/64".parse().unwrap()) // no DAD: usable at once
//!     .mac([0x02, 0x42, 0xc6, 0x12, 0x00, 0x02]);
//! let eth0 = sb.add_veth("vh4f1c2a9e", "eth", &opts)?;
//! assert_eq!(eth0, "eth0");
//!
//! sb.set_gateway("198.18.255.254".parse().unwrap())?;
//! sb.add_static_route(&StaticRoute::via("198.19.7.0/24".parse().unwrap(), "198.18.255.254".parse().unwrap()))?;
//! sb.add_neighbor("198.18.255.254".parse().unwrap(), [0x02, 0x42, 0xc6, 0x12, 0xff, 0xfe], false, &NeighOptions::new())?;
//!
//! // Run code inside the namespace (a dedicated thread; the caller never changes namespace).
//! let listener = sb.invoke(|| std::net::TcpListener::bind("198.18.0.2:80"))??;
//! drop(listener);
//!
//! // After an engine restart: reopen by key; the view is rebuilt from the kernel.
//! let info = sb.info()?;
//! let again = NetnsSandbox::open(&key)?;
//! again.restore()?;
//! assert_eq!(again.info()?, info);
//!
//! sb.destroy()?; // idempotent: no mount, pin, fd or host-side veth left
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "cni")]
pub mod cni;
pub mod error;
pub mod netlink;
pub mod netns;
pub mod sysctl;
pub mod validate;

pub use error::{Error, KernelError, Result};
/// IP networks (address + prefix length) as the API takes and returns them, re-exported so users
/// need not depend on `ipnet` themselves.
pub use ipnet::IpNet;
pub mod sandbox;

/// Internal entry points for the fuzz targets (`fuzz/`) and the corpus test; not stable API.
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
