//! [`NetNs`]: an owned handle on a network namespace.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::sys::stat::fstat;
use nix::sys::statfs::{NSFS_MAGIC, fstatfs};

use super::sys;
use crate::error::{Error, Result};

/// Where the calling thread's own network namespace is found (`/proc/self` is the leader's).
pub(crate) const THREAD_NETNS: &str = "/proc/thread-self/ns/net";
/// Where named namespaces are pinned by convention (iproute2's `ip netns`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// An open network namespace.
///
/// Holding a `NetNs` keeps the namespace alive (even when nothing else pins it). The fd is always
/// close-on-exec and is closed on drop. The label (a path, `pid N`, ...) only serves error messages.
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
    label: String,
}

impl NetNs {
    /// Wraps an fd already known to be a network namespace.
    pub(crate) fn from_owned(fd: OwnedFd, label: impl Into<String>) -> Self {
        NetNs { fd, label: label.into() }
    }

    /// The network namespace a socket belongs to (e.g. a netlink socket bound inside it). Lets a
    /// long-lived object keep one fd (its socket) instead of two.
    pub fn of_socket(sock: impl AsFd, label: impl Into<String>) -> Result<NetNs> {
        let label = label.into();
        let fd =
            super::sys::socket_net_ns(sock.as_fd()).map_err(|e| Error::os("get namespace of socket", &label, e))?;
        Ok(NetNs { fd, label })
    }

    /// The calling thread's network namespace (from `/proc/thread-self/ns/net`, so a thread that
    /// did `setns` gets its own namespace, not the process leader's).
    pub fn current() -> Result<NetNs> {
        let fd = open_ns_file(Path::new(THREAD_NETNS))?;
        Ok(NetNs::from_owned(fd, "thread"))
    }

    /// Opens a network namespace file (a pin such as `/run/netns/x`, or `/proc/<pid>/ns/net`).
    ///
    /// Guarantees the result is a network namespace: a path that is not an nsfs file, or is a
    /// namespace of another type, gives [`Error::InvalidArgument`] naming the path; a missing path
    /// gives [`Error::NotFound`].
    pub fn from_path(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref();
        let fd = open_ns_file(path)?;
        Ok(NetNs::from_owned(fd, path.display().to_string()))
    }

    /// Opens the namespace pinned at `/run/netns/<name>` (what `ip netns add <name>` creates).
    ///
    /// The name must be non-empty, must not be `.` or `..` and must not contain `/` or NUL
    /// ([`Error::InvalidNamespaceName`] otherwise), so the lookup never leaves `/run/netns`.
    pub fn from_name(name: &str) -> Result<NetNs> {
        validate_ns_name(name)?;
        NetNs::from_path(Path::new(NETNS_RUN_DIR).join(name))
    }

    /// The network namespace of process `pid`, free of the PID-reuse race.
    ///
    /// Uses `pidfd_open` + `PIDFD_GET_NET_NAMESPACE` (Linux 6.11+). On older kernels it opens
    /// `/proc/<pid>/ns/net` and then checks, through the pidfd taken *before*, that the same
    /// process is still alive, so the namespace cannot belong to a process that reused the PID.
    /// A process that does not exist (or has exited) gives [`Error::NotFound`].
    pub fn from_pid(pid: i32) -> Result<NetNs> {
        let label = format!("pid {pid}");
        if pid <= 0 {
            return Err(Error::InvalidArgument { op: "open namespace of process", reason: format!("bad pid {pid}") });
        }
        let not_found = || Error::NotFound { kind: "process", name: pid.to_string() };
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(Errno::ESRCH) => return Err(not_found()),
            Err(e) => return Err(Error::os("pidfd_open", &label, e)),
        };
        match sys::pidfd_net_ns(pidfd.as_fd()) {
            Ok(fd) => {
                // The kernel hands out the right type, but a cheap check keeps the invariant local.
                check_net_ns(fd.as_fd(), &label)?;
                return Ok(NetNs::from_owned(fd, label));
            }
            Err(Errno::ESRCH) => return Err(not_found()),
            // ENOTTY/EINVAL: kernel older than 6.11; fall back to /proc.
            Err(e @ (Errno::ENOTTY | Errno::EINVAL | Errno::EOPNOTSUPP)) => {
                log::debug!("PIDFD_GET_NET_NAMESPACE unavailable ({e}); falling back to /proc/{pid}/ns/net");
            }
            Err(e) => return Err(Error::os("get network namespace of", &label, e)),
        }
        NetNs::from_pid_via_proc(pid, &pidfd)
    }

    /// Fallback for kernels without `PIDFD_GET_NET_NAMESPACE`: opens `/proc/<pid>/ns/net`, then
    /// proves through `pidfd` (taken before) that the process it names is still alive, so the
    /// namespace cannot belong to a process that reused the PID.
    fn from_pid_via_proc(pid: i32, pidfd: &OwnedFd) -> Result<NetNs> {
        let label = format!("pid {pid}");
        let not_found = || Error::NotFound { kind: "process", name: pid.to_string() };
        let path = format!("/proc/{pid}/ns/net");
        let fd = match open_ns_file(Path::new(&path)) {
            Ok(fd) => fd,
            Err(e) if e.is_not_found() => return Err(not_found()),
            Err(e) => return Err(e),
        };
        match sys::pidfd_alive(pidfd) {
            Ok(()) => Ok(NetNs::from_owned(fd, label)),
            Err(Errno::ESRCH) => Err(not_found()),
            Err(e) => Err(Error::os("pidfd_send_signal", &label, e)),
        }
    }

    /// A brand-new network namespace, kept alive only by the returned handle.
    ///
    /// The calling thread unshares it and is back in its own namespace before this returns (or a
    /// short-lived helper thread does it when the way back cannot be guaranteed); see
    /// [`create_pinned`](super::create_pinned).
    pub fn new_unpinned() -> Result<NetNs> {
        let fd = super::hop(&NetNs::current()?, super::Target::New, || open_ns_file(Path::new(THREAD_NETNS)))?;
        Ok(NetNs::from_owned(fd, "new namespace"))
    }

    /// The namespace's inode number: equal inodes (on nsfs) mean the same namespace.
    pub fn inode(&self) -> Result<u64> {
        let st = fstat(self.fd.as_fd()).map_err(|e| Error::os("fstat namespace", &self.label, e))?;
        Ok(st.st_ino)
    }

    /// A short description for messages: the path it was opened from, `pid N`, `thread`, ...
    pub fn label(&self) -> &str {
        &self.label
    }

    /// A second handle on the same namespace (`F_DUPFD_CLOEXEC`).
    pub fn try_clone(&self) -> Result<NetNs> {
        let fd = self.fd.try_clone().map_err(|e| Error::os("duplicate namespace fd", &self.label, e))?;
        Ok(NetNs::from_owned(fd, self.label.clone()))
    }

    /// True when both handles refer to the same namespace (same device and inode).
    pub fn same_as(&self, other: &NetNs) -> Result<bool> {
        let a = fstat(self.fd.as_fd()).map_err(|e| Error::os("fstat namespace", &self.label, e))?;
        let b = fstat(other.fd.as_fd()).map_err(|e| Error::os("fstat namespace", &other.label, e))?;
        Ok(a.st_dev == b.st_dev && a.st_ino == b.st_ino)
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Opens `path` read-only and close-on-exec, and checks it is a network namespace.
pub(crate) fn open_ns_file(path: &Path) -> Result<OwnedFd> {
    // O_NONBLOCK so that a FIFO passed by mistake cannot hang us; it means nothing on nsfs.
    let file = OpenOptions::new().read(true).custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK).open(path).map_err(
        |e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound { kind: "network namespace", name: path.display().to_string() },
            _ => Error::path("open namespace", path, e),
        },
    )?;
    let fd = OwnedFd::from(file);
    check_net_ns(fd.as_fd(), &path.display().to_string())?;
    Ok(fd)
}

/// Fails unless `fd` is an nsfs file of a network namespace.
pub(crate) fn check_net_ns(fd: BorrowedFd<'_>, label: &str) -> Result<()> {
    let not_ns = |reason: String| Error::InvalidArgument { op: "open network namespace", reason };
    let sfs = fstatfs(fd).map_err(|e| Error::os("fstatfs", label, e))?;
    if sfs.filesystem_type() != NSFS_MAGIC {
        return Err(not_ns(format!("{label} is not a namespace file")));
    }
    let ty = sys::ns_type(fd).map_err(|e| match e {
        Errno::ENOTTY | Errno::EINVAL => not_ns(format!("{label} is not a namespace file")),
        e => Error::os("NS_GET_NSTYPE", label, e),
    })?;
    if ty != CloneFlags::CLONE_NEWNET.bits() {
        return Err(not_ns(format!("{label} is a namespace of type {ty:#x}, not a network namespace")));
    }
    Ok(())
}

/// Checks a namespace name for `/run/netns/<name>`.
pub(crate) fn validate_ns_name(name: &str) -> Result<()> {
    crate::validate::file_name(name).map_err(|reason| Error::InvalidNamespaceName { name: name.to_owned(), reason })
}

/// The text of a caught panic payload.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Read-only use of this process's (the machine's) namespace.
    #[test]
    fn proc_fallback_matches_ioctl() {
        let pid = std::process::id() as i32;
        let pidfd = sys::pidfd_open(pid).unwrap();
        let via_proc = NetNs::from_pid_via_proc(pid, &pidfd).unwrap();
        let via_ioctl = NetNs::from_pid(pid).unwrap();
        assert!(via_proc.same_as(&via_ioctl).unwrap());
    }

    #[test]
    fn proc_fallback_refuses_a_dead_process() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let pidfd = sys::pidfd_open(pid).unwrap();
        child.wait().unwrap();
        // The PID may now be reused by anyone; the pidfd still names the dead process.
        assert!(NetNs::from_pid_via_proc(pid, &pidfd).unwrap_err().is_not_found());
        assert!(matches!(sys::pidfd_net_ns(pidfd.as_fd()), Err(Errno::ESRCH)));
    }

    #[test]
    fn names() {
        assert!(validate_ns_name("ns1").is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(validate_ns_name(bad).is_err(), "{bad:?}");
        }
    }
}
