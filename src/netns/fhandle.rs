//! Telling whether a namespace still exists without holding it: nsfs file handles (Linux 6.18+).
//!
//! Any fd or mount of a namespace keeps it alive, so "wait until the kernel freed it" cannot
//! hold one. A file handle (`name_to_handle_at`) names the namespace by its unique id instead;
//! `open_by_handle_at` on the nsfs root succeeds only while the namespace is still referenced and
//! fails with `ESTALE` once its last reference is gone (the kernel's `cleanup_net` then frees
//! it).

use std::ffi::CString;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// `FD_NSFS_ROOT` from `<linux/fcntl.h>`: the "mount" to resolve nsfs handles against.
const FD_NSFS_ROOT: i32 = -10003;
/// Room for the handle; nsfs handles are 16 bytes (id, type, inode).
const HANDLE_MAX: usize = 64;

#[repr(C)]
#[derive(Clone, Copy)]
struct RawHandle {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; HANDLE_MAX],
}

/// A reference-free name for one namespace.
#[derive(Clone, Copy)]
pub struct NsFileHandle(RawHandle);

impl std::fmt::Debug for NsFileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NsFileHandle").field("type", &self.0.handle_type).finish_non_exhaustive()
    }
}

impl NsFileHandle {
    /// The handle of the namespace file at `path` (a pin or `/proc/.../ns/net`); `None` when
    /// this kernel has no nsfs file handles (before 6.18) or the path is not one.
    pub fn of_path(path: &Path) -> Option<NsFileHandle> {
        let c = CString::new(path.as_os_str().as_bytes()).ok()?;
        let mut h = RawHandle { handle_bytes: HANDLE_MAX as u32, handle_type: 0, f_handle: [0; HANDLE_MAX] };
        let mut mount_id: i32 = 0;
        // SAFETY: `c` is a NUL-terminated path, `h` a writable file_handle with `handle_bytes`
        // bytes of room after its header, `mount_id` a writable int; all outlive the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_name_to_handle_at,
                libc::AT_FDCWD,
                c.as_ptr(),
                &mut h as *mut RawHandle,
                &mut mount_id as *mut i32,
                0,
            )
        };
        (r == 0).then_some(NsFileHandle(h))
    }

    /// The handle of the namespace behind an open nsfs fd; `None` as for [`of_path`](Self::of_path).
    pub fn of_fd(fd: impl std::os::fd::AsFd) -> Option<NsFileHandle> {
        use std::os::fd::AsRawFd;
        let mut h = RawHandle { handle_bytes: HANDLE_MAX as u32, handle_type: 0, f_handle: [0; HANDLE_MAX] };
        let mut mount_id: i32 = 0;
        let empty = c"";
        // SAFETY: as in `of_path`; the fd is kept open by the borrow, the path is empty with
        // AT_EMPTY_PATH so the fd itself is named.
        let r = unsafe {
            libc::syscall(
                libc::SYS_name_to_handle_at,
                fd.as_fd().as_raw_fd(),
                empty.as_ptr(),
                &mut h as *mut RawHandle,
                &mut mount_id as *mut i32,
                libc::AT_EMPTY_PATH,
            )
        };
        (r == 0).then_some(NsFileHandle(h))
    }

    /// `Some(true)` while the namespace is referenced by anything (a process, fd, mount),
    /// `Some(false)` once it is not (freed or being freed by the kernel), `None` if the kernel
    /// cannot tell.
    pub fn alive(&self) -> Option<bool> {
        let mut h = self.0;
        // SAFETY: `h` is the handle the kernel filled in; open_by_handle_at only reads it. The
        // returned fd is new and owned by us alone.
        let r = unsafe {
            libc::syscall(
                libc::SYS_open_by_handle_at,
                FD_NSFS_ROOT,
                &mut h as *mut RawHandle,
                libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if r >= 0 {
            // SAFETY: see above; closed at once, so we never become a lasting reference.
            drop(unsafe { OwnedFd::from_raw_fd(r as i32) });
            return Some(true);
        }
        match Errno::last() {
            Errno::ESTALE | Errno::ENOENT => Some(false),
            _ => None,
        }
    }
}
