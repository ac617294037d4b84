//! Our synchronous rtnetlink client.
