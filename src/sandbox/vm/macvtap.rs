//! Opening a macvtap's queues without udev: the character device's numbers come from the
//! sysfs of the sandbox's namespace (`class/net/<name>/macvtap/tap<ifindex>/dev`; sysfs shows
//! the network namespace of whoever mounted it), read on a short-lived thread that has a mount
//! namespace of its own; the node is then made privately in a fresh 0700 directory, opened and
//! unlinked at once. The machine's `/dev` and mounts are never touched.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::error::{Error, Result};
use crate::netns::NetNs;

/// A fresh private directory under the temp dir, removed (with what is left in it) on drop.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new(tag: &str) -> Result<PrivateDir> {
        let mut b = [0u8; 6];
        b.copy_from_slice(&crate::sandbox::random::random_local_mac());
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let p = std::env::temp_dir().join(format!("netsandbox-{tag}-{}-{hex}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&p).map_err(|e| Error::path("create directory", &p, e))?;
        Ok(PrivateDir(p))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `(major, minor)` of macvtap `name`'s character device, as the sysfs of `ns` shows it.
fn device_numbers(ns: &NetNs, name: &str, index: u32) -> Result<(u32, u32)> {
    let dir = PrivateDir::new("sysfs")?;
    let mnt = dir.0.clone();
    let rel = format!("class/net/{name}/macvtap/tap{index}/dev");
    let read = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("netns-sysfs".into())
            .spawn_scoped(s, || -> Result<String> {
                // This thread's own mount namespace, private so nothing propagates out; it
                // dies with the thread, and with it the sysfs mount.
                nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| Error::os("unshare(CLONE_NEWNS)", name, e))?;
                nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                    .map_err(|e| Error::os("make mounts private", "/", e))?;
                nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| Error::os("setns", ns.label(), e))?;
                let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                nix::mount::mount(Some("sysfs"), &mnt, Some("sysfs"), flags, None::<&str>)
                    .map_err(|e| Error::path("mount sysfs on", &mnt, e))?;
                let text = std::fs::read_to_string(mnt.join(&rel));
                let _ = nix::mount::umount2(&mnt, MntFlags::MNT_DETACH);
                text.map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => Error::NotFound { kind: "macvtap device", name: name.to_owned() },
                    _ => Error::path("read", &mnt.join(&rel), e),
                })
            })
            .map_err(|e| Error::os("spawn thread", "netns-sysfs", e))?
            .join()
            .map_err(|_| Error::Panicked { ns: ns.label().to_owned(), message: "sysfs reader".into() })?
    })?;
    let bad = || Error::Protocol { op: "read macvtap device number", detail: format!("{rel}: {read:?}") };
    let (maj, min) = read.trim().split_once(':').ok_or_else(bad)?;
    Ok((maj.parse().map_err(|_| bad())?, min.parse().map_err(|_| bad())?))
}

/// Opens `queues` queues of macvtap `name` (ifindex `index`) living in `ns`, each set to
/// `IFF_TAP | IFF_NO_PI` (plus `IFF_VNET_HDR` when asked), close-on-exec.
pub(crate) fn open_queues(ns: &NetNs, name: &str, index: u32, queues: u16, vnet_hdr: bool) -> Result<Vec<OwnedFd>> {
    let (major, minor) = device_numbers(ns, name, index)?;
    let dir = PrivateDir::new("tap")?;
    let node = dir.0.join(format!("tap{index}"));
    mknod_char(&node, major, minor)?;
    let mut fds = Vec::with_capacity(queues.into());
    for _ in 0..queues {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&node)
            .map_err(|e| Error::path("open macvtap device", &node, e))?;
        let fd = OwnedFd::from(f);
        let mut flags = libc::IFF_TAP | libc::IFF_NO_PI;
        if vnet_hdr {
            flags |= libc::IFF_VNET_HDR;
        }
        // SAFETY: ifreq is plain old data; all zeroes is a valid value.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: TUNSETIFF on a macvtap fd reads one `struct ifreq` (`req`) during the call;
        // the fd is open.
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut libc::ifreq) };
        Errno::result(r).map_err(|e| Error::os("TUNSETIFF", name, e))?;
        fds.push(fd);
    }
    // The node goes now; the directory with `dir`.
    let _ = std::fs::remove_file(&node);
    Ok(fds)
}

fn mknod_char(path: &Path, major: u32, minor: u32) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidArgument { op: "mknod", reason: "path contains NUL".into() })?;
    let dev = libc::makedev(major, minor);
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call; mknod takes
    // integers otherwise.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o600, dev) };
    Errno::result(r).map(drop).map_err(|e| Error::path("mknod", path, e))
}
