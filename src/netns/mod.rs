//! Network namespaces: handles, pins, and running code inside.
