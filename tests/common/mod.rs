//! Test scaffolding: every test runs inside a private "host" namespace it made itself and pins
//! under its own temporary directory, so the machine's own namespace is never touched.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use netsandbox::netns::mountinfo;

/// Runs `f` on a fresh thread that has unshared into a brand-new network namespace (the test's
/// private host namespace). Panics inside `f` are propagated to the caller so assertions work.
pub fn in_private_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Private network and mount namespace for the calling thread, set up for a container runtime
/// (podman, containerd): `/` made private, the cgroup2 mount of this VM's hybrid hierarchy
/// unmounted (the runtimes run without cgroups), a fresh tmpfs on each of `tmpfs` (`/run` and
/// the runtime's fixed paths, so nothing lands on the machine's own), loopback up.
pub fn enter_private_world(tmpfs: &[&str]) {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    use nix::sched::{CloneFlags, unshare};
    unshare(CloneFlags::CLONE_NEWNET | CloneFlags::CLONE_NEWNS).expect("unshare(NEWNET|NEWNS)");
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .expect("make / private");
    let _ = umount2("/sys/fs/cgroup/unified", MntFlags::MNT_DETACH);
    for dir in tmpfs {
        std::fs::create_dir_all(dir).expect("create mount point");
        mount(Some("tmpfs"), *dir, Some("tmpfs"), MsFlags::empty(), Some("mode=0755")).expect("tmpfs");
    }
    ip(&["link", "set", "lo", "up"]);
}

/// A temporary directory removed (with everything pinned under it unmounted) on drop.
pub struct TempBase {
    path: PathBuf,
}

impl TempBase {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "netsandbox-test-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp base");
        TempBase { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempBase {
    fn drop(&mut self) {
        // Detach anything still mounted below us (a failed test may leave pins), deepest first.
        let _ = mountinfo::detach_all_under(&self.path);
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A test CIDR.
pub fn net(s: &str) -> ipnet::IpNet {
    s.parse().expect("test CIDR")
}

/// A test IP address.
pub fn addr(s: &str) -> std::net::IpAddr {
    s.parse().expect("test IP")
}

/// The key (pin path) `name` under the test's base directory.
pub fn key(base: &TempBase, name: &str) -> String {
    base.path().join(name).display().to_string()
}

/// Inode of the calling thread's network namespace.
pub fn thread_netns_inode() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/thread-self/ns/net").expect("stat thread netns").ino()
}

/// Threads of this process that netsandbox made (named `netns-*` or `netsandbox-*`). Counting
/// every thread would also count the test harness's own, which come and go as other tests start
/// and finish.
pub fn netsandbox_threads() -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|c| c.trim().to_owned())
        .filter(|c| c.starts_with("netns-") || c.starts_with("netsandbox-"))
        .collect()
}

/// A pidfd on the calling thread (`PIDFD_THREAD`): it becomes readable once the thread has fully
/// exited, which a join alone does not promise (the kernel wakes the joiner before it drops the
/// thread's namespaces).
pub fn own_thread_pidfd() -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: gettid and pidfd_open take integers only; PIDFD_THREAD is O_EXCL.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::gettid(), libc::O_EXCL) };
    assert!(fd >= 0, "pidfd_open(PIDFD_THREAD): {}", std::io::Error::last_os_error());
    // SAFETY: the kernel just returned this fd and nothing else owns it.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
}

/// Waits (at most 10 s) until the thread behind `pidfd` has exited.
pub fn wait_thread_exit(pidfd: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd;
    let mut p = libc::pollfd { fd: pidfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: `p` is one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut p, 1, 10_000) };
    assert_eq!(n, 1, "thread did not exit within 10 s ({})", std::io::Error::last_os_error());
}

/// Number of open fds of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// Number of nsfs mounts visible to this thread.
pub fn nsfs_mounts() -> usize {
    mountinfo::mounts().map(|m| m.iter().filter(|m| m.is_nsfs()).count()).unwrap_or(0)
}

/// Number of nsfs mounts at or below `dir`: unlike [`nsfs_mounts`], blind to other processes' pins.
pub fn nsfs_mounts_under(dir: &Path) -> usize {
    mountinfo::mounts_under(dir).map(|m| m.iter().filter(|m| m.is_nsfs()).count()).unwrap_or(0)
}

/// Runs `ip` (iproute2) with args and returns stdout. A child process inherits the namespaces of
/// the thread that spawned it, so `ip` sees the calling thread's network namespace.
pub fn ip(args: &[&str]) -> String {
    run("ip", args)
}

/// Runs iproute2's `bridge` like [`ip`].
pub fn bridge(args: &[&str]) -> String {
    run("bridge", args)
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd).args(args).output().expect("run iproute2");
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub mod cli;
pub mod oci;
pub mod table;
pub mod vm_table;

/// Waits (bounded) until the kernel has freed everything this process's destroys left to it
/// (namespaces, parked veth host ends) and netsandbox's reaper thread has exited.
pub fn wait_reaped() {
    let ok = netsandbox::sandbox::NetnsSandbox::wait_all_reaped(std::time::Duration::from_secs(120));
    assert!(ok, "the kernel did not reap destroyed sandboxes within 120 s");
}

/// [`wait_reaped`], then also until /proc no longer lists the reaper thread (it may for a
/// moment after it was joined). Only for tests that run one at a time and count threads.
pub fn wait_reaped_and_reaper_gone() {
    wait_reaped();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // comm is cut to 15 bytes.
    while netsandbox_threads().iter().any(|t| t == "netsandbox-reap") {
        assert!(std::time::Instant::now() < deadline, "reaper thread still listed 10 s after it was joined");
        std::thread::yield_now();
    }
}
