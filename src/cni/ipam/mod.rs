//! IPAM for the plugin: delegation to the IPAM plugin named in `ipam.type`, exactly as the
//! spec says (found in `CNI_PATH`, run with the same environment and the same configuration on
//! stdin, its result parsed), or the built-in allocator (`"type": "netsandbox"`) that shares
//! host-local's on-disk store.

mod builtin;
mod delegate;
mod range;
mod store;

pub use builtin::{BUILTIN_TYPE, Builtin};
pub use delegate::{Delegate, find_plugin};
pub use range::{Range, RangeConf};
pub use store::{Allocation, DEFAULT_DATA_DIR, Store};
