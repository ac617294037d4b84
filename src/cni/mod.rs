//! CNI (Container Network Interface) 1.1 building blocks, shared by the `netsandbox-cni` plugin
//! and by library users that consume CNI results (VM sandboxes, issue #16).
//!
//! - [`CniVersion`]: the spec versions we speak (0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0).
//! - [`CniResult`]: a version-independent result (interfaces, IPs, routes, DNS) that parses from
//!   any supported version and serializes to the version a runtime asked for.
//! - [`NetConf`]: the network configuration of the reference `bridge` plugin (same keys).
//! - [`Request`]: the `CNI_*` environment, validated as the spec says.
//! - [`CniError`] / [`ErrorCode`]: the error JSON and the spec's well-known codes.
//! - [`link`]: results against a sandbox — configure a link from one, validate and fix one,
//!   extract one from a configured namespace, strip a link (for VM runtimes).
//! - [`ipam`]: delegation to an IPAM plugin and a built-in allocator that shares host-local's
//!   on-disk store.

mod config;
mod env;
mod error;
pub mod ipam;
pub mod link;
mod result;
mod version;

pub use config::{Attachment, IpamConf, NetConf, check_network_name};
pub use env::{Command, Request};
pub use error::{CniError, ErrorCode};
pub use result::{CniResult, Dns, Interface, IpConfig, Route};
pub use version::{CniVersion, SUPPORTED_VERSIONS};
