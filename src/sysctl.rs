//! `/proc/sys` keys inside a namespace.
