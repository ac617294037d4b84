//! Our synchronous rtnetlink client.

pub mod consts;
pub mod view;
