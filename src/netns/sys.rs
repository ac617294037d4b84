//! The few raw system calls nix 0.32 does not wrap. Each wrapper is tiny and returns `Errno`.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use nix::errno::Errno;

/// `NS_GET_NSTYPE` = `_IO(0xb7, 0x3)` from `<linux/nsfs.h>`.
const NS_GET_NSTYPE: u32 = 0xb703;
/// `PIDFD_GET_NET_NAMESPACE` = `_IO(0xFF, 4)` from `<linux/pidfd.h>` (Linux 6.11+).
const PIDFD_GET_NET_NAMESPACE: u32 = 0xff04;

/// The namespace type (`CLONE_NEW*`) of an nsfs file descriptor.
pub(crate) fn ns_type(fd: BorrowedFd<'_>) -> Result<i32, Errno> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which `BorrowedFd` keeps open.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    Errno::result(r)
}

/// `pidfd_open(pid, 0)`; the returned fd is always close-on-exec.
pub(crate) fn pidfd_open(pid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments; no memory is passed.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(r)?;
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `ioctl(pidfd, PIDFD_GET_NET_NAMESPACE)`: the process's network namespace, opened O_CLOEXEC by
/// the kernel.
pub(crate) fn pidfd_net_ns(pidfd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: the request takes no argument; `pidfd` is kept open by the borrow.
    let r = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_NET_NAMESPACE as _) };
    let fd = Errno::result(r)?;
    // SAFETY: the kernel just returned this new fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(pidfd, 0, NULL, 0)`: succeeds only while the process is alive.
pub(crate) fn pidfd_alive(pidfd: impl AsFd) -> Result<(), Errno> {
    let fd = pidfd.as_fd().as_raw_fd();
    // SAFETY: signal 0 only checks for existence; a NULL siginfo is allowed by the syscall.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, fd, 0, std::ptr::null::<libc::siginfo_t>(), 0) };
    Errno::result(r).map(drop)
}

/// `statx(2)` of `path` for the fields in `mask`.
fn statx(path: &std::path::Path, flags: i32, mask: u32) -> Result<libc::statx, Errno> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `st` points to writable memory the size of
    // `struct statx`; the kernel writes at most that much.
    let r = unsafe { libc::statx(libc::AT_FDCWD, c.as_ptr(), flags, mask, st.as_mut_ptr()) };
    if r != 0 {
        return Err(Errno::last());
    }
    // SAFETY: statx succeeded, so the struct is initialised (it was zeroed before anyway).
    Ok(unsafe { st.assume_init() })
}

/// The id of the mount `path` is on (`statx` with `STATX_MNT_ID`), to notice cheaply whether a
/// directory is still on the mount we checked earlier.
pub(crate) fn mount_id(path: &std::path::Path) -> Result<u64, Errno> {
    let st = statx(path, libc::AT_SYMLINK_NOFOLLOW, libc::STATX_MNT_ID)?;
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::ENOSYS);
    }
    Ok(st.stx_mnt_id)
}

/// Whether `path` (symlinks followed) is the root of a mount (`STATX_ATTR_MOUNT_ROOT`), or
/// `None` when the kernel cannot tell.
pub(crate) fn is_mount_root(path: &std::path::Path) -> Option<bool> {
    let st = statx(path, 0, libc::STATX_BASIC_STATS).ok()?;
    let bit = libc::STATX_ATTR_MOUNT_ROOT as u64;
    (st.stx_attributes_mask & bit != 0).then_some(st.stx_attributes & bit != 0)
}

/// `SIOCGSKNS` from `<linux/sockios.h>`: the network namespace a socket belongs to.
const SIOCGSKNS: u64 = 0x894C;

/// A new fd on the network namespace of `sock` (`ioctl(SIOCGSKNS)`, Linux 4.9+), CLOEXEC.
pub(crate) fn socket_net_ns(sock: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    // SAFETY: SIOCGSKNS takes no argument; the kernel returns a new fd (O_CLOEXEC) or -1.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSKNS as _) };
    if r < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a non-negative return is a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// `PIDFD_THREAD` (= `O_EXCL`, Linux 6.9+): `pidfd_open` on a thread id, not a process.
const PIDFD_THREAD: u32 = libc::O_EXCL as u32;

/// `pidfd_open(tid, PIDFD_THREAD)`: a pidfd naming one thread; close-on-exec.
pub(crate) fn pidfd_open_thread(tid: i32) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments; no memory is passed.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, tid, PIDFD_THREAD) };
    let fd = Errno::result(r)?;
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this fd to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
