//! The crate's one error type.
//!
//! Every failure names what was being done (`op`), on what (`object`: an interface, address,
//! key or path), and — for kernel failures — the errno and the kernel's own extended-ACK message
//! when it sent one. Input is validated before anything is sent to the kernel, so an
//! `Invalid*` error guarantees that nothing was changed.

use std::fmt;
use std::io;

use nix::errno::Errno;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure reported by the kernel for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError {
    /// What was being done, e.g. `"add address"`.
    pub op: &'static str,
    /// The object the request was about, e.g. `"eth0 198.18.0.1/16"`.
    pub object: String,
    /// The errno the kernel returned.
    pub errno: Errno,
    /// The kernel's extended-ACK message (`NLMSGERR_ATTR_MSG`), when it sent one.
    pub message: Option<String>,
    /// The network namespace the request went to (a sandbox key, a pin path, or the origin).
    pub namespace: Option<String>,
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.object)?;
        if let Some(ns) = &self.namespace {
            write!(f, " in namespace {ns}")?;
        }
        write!(f, ": {} ({})", self.errno.desc(), self.errno)?;
        if let Some(m) = &self.message {
            write!(f, ": kernel says \"{m}\"")?;
        }
        Ok(())
    }
}

impl std::error::Error for KernelError {}

/// Every error netsandbox returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An interface name that the kernel would reject (empty, over 15 bytes, `/`, whitespace, NUL,
    /// `.` or `..`). Nothing was sent to the kernel.
    #[error("invalid interface name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A sandbox key or id that is empty, contains `/`, `..` or NUL, or would escape the base path.
    #[error("invalid sandbox key {key:?}: {reason}")]
    InvalidKey {
        /// The key or id as given.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A sysctl key that is empty, starts with `/`, contains `..`, an empty or `.` component, or
    /// a character other than letters, digits, `_`, `.`, `/` and `-` (so it could leave
    /// `/proc/sys`).
    #[error("invalid sysctl key {key:?}: {reason}")]
    InvalidSysctlKey {
        /// The key as given.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A namespace name (as under `/run/netns`) that is empty, `.`/`..`, or contains `/` or NUL.
    #[error("invalid namespace name {name:?}: {reason}")]
    InvalidNamespaceName {
        /// The name as given.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A CIDR or IP address that does not parse or has a prefix out of range.
    #[error("invalid address {input:?}: {reason}")]
    InvalidAddress {
        /// The input as given.
        input: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A MAC address that does not parse or has the wrong length.
    #[error("invalid MAC address {input:?}: {reason}")]
    InvalidMac {
        /// The input as given.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Options that make no sense together, or an argument out of range.
    #[error("invalid argument for {op}: {reason}")]
    InvalidArgument {
        /// What was being done.
        op: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// The kernel refused a request.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// A system call outside netlink failed (mount, setns, open, ...).
    #[error("{op} {object}: {source}")]
    Os {
        /// What was being done.
        op: &'static str,
        /// What it was done to (a path, an interface, a namespace).
        object: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel's reply did not follow the netlink protocol (bad length, wrong sequence, ...).
    #[error("netlink protocol error during {op}: {detail}")]
    Protocol {
        /// What was being done.
        op: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A dump kept being interrupted (`NLM_F_DUMP_INTR`) because the table changed under it.
    #[error("{op}: dump interrupted {attempts} times in a row; giving up")]
    DumpInterrupted {
        /// What was being done.
        op: &'static str,
        /// How many times the dump was tried.
        attempts: u32,
    },
    /// The named object does not exist (link, namespace, sandbox, interface, route, neighbor).
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// What kind of object (`"link"`, `"interface"`, `"neighbor"`, ...).
        kind: &'static str,
        /// The offending name.
        name: String,
    },
    /// The named object already exists (sandbox key, interface, neighbor, route).
    #[error("{kind} {name:?} already exists")]
    AlreadyExists {
        /// What kind of object (`"link"`, `"interface"`, `"neighbor"`, ...).
        kind: &'static str,
        /// The offending name.
        name: String,
    },
    /// A link that was named as a bridge is something else (e.g. a veth).
    #[error("{name:?} is not a bridge (it is a {kind} link)")]
    NotABridge {
        /// The link's name.
        name: String,
        /// Its kind as the kernel names it (`"veth"`, `"none"` for a physical device, ...).
        kind: String,
    },
    /// A closure run inside a namespace panicked; the panic was caught and its thread discarded.
    #[error("closure running in namespace {ns} panicked: {message}")]
    Panicked {
        /// The namespace the closure ran in.
        ns: String,
        /// The panic message.
        message: String,
    },
    /// A sysctl key that this kernel does not have (e.g. IPVS keys without the ip_vs module).
    #[error("sysctl {key} is not present on this kernel")]
    SysctlMissing {
        /// The key or id as given.
        key: String,
    },
    /// A sysctl key that cannot be written here (read-only /proc/sys).
    #[error("sysctl {key} is read-only here")]
    SysctlReadOnly {
        /// The key or id as given.
        key: String,
    },
    /// The sandbox was destroyed; no further operation is possible.
    #[error("sandbox {key} has been destroyed")]
    Destroyed {
        /// The key or id as given.
        key: String,
    },
    /// A namespace reference (name, file, process, thread, container) could not be resolved.
    #[error(transparent)]
    Reference(#[from] crate::netns::ReferenceError),
    /// A kernel feature this operation needs is missing (module not built or not loaded).
    #[error("{feature} is not supported by this kernel: {detail}")]
    Unsupported {
        /// The missing feature.
        feature: &'static str,
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    /// Builds an [`Error::Os`] from the last OS error or an `Errno`.
    #[allow(dead_code)] // used by the netns/netlink layers as they land
    pub(crate) fn os(op: &'static str, object: impl fmt::Display, source: impl Into<io::Error>) -> Self {
        Error::Os { op, object: object.to_string(), source: source.into() }
    }

    /// Builds an [`Error::Os`] for a path.
    #[allow(dead_code)] // used by the netns/netlink layers as they land
    pub(crate) fn path(op: &'static str, path: &std::path::Path, source: impl Into<io::Error>) -> Self {
        Error::os(op, path.display(), source)
    }

    /// The kernel errno behind this error, if any.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            Error::Kernel(k) => Some(k.errno),
            Error::Os { source, .. } => source.raw_os_error().map(Errno::from_raw),
            _ => None,
        }
    }

    /// True when the error says the object already exists (`EEXIST` or [`Error::AlreadyExists`]).
    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. }) || self.errno() == Some(Errno::EEXIST)
    }

    /// True when the error says the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
            || matches!(self, Error::Reference(r) if r.is_not_found())
            || matches!(self.errno(), Some(Errno::ENOENT | Errno::ENODEV | Errno::ESRCH | Errno::EADDRNOTAVAIL))
    }

    /// True for errors caused by the caller's input: nothing was changed.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidName { .. }
                | Error::InvalidKey { .. }
                | Error::InvalidSysctlKey { .. }
                | Error::InvalidNamespaceName { .. }
                | Error::InvalidAddress { .. }
                | Error::InvalidMac { .. }
                | Error::InvalidArgument { .. }
                | Error::NotABridge { .. }
        )
    }
}
