//! IPAM: delegation to an IPAM plugin, and the built-in allocator.
