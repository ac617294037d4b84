mod common;

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use common::{TempBase, fd_count, in_private_netns, thread_netns_inode};
use netsandbox::Error;
use netsandbox::netns::{self, NetNs};

/// fd and mount counts are process-wide: tests in this binary run one at a time so that the leak
/// check sees only its own work.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Unpins on drop so a failing assertion leaves nothing mounted.
struct PinGuard(PathBuf);
impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = netns::unpin(&self.0);
    }
}

/// Kills and reaps a child on drop.
struct ChildGuard(std::process::Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The topmost mount exactly at `dir`.
fn mount_at(dir: &Path) -> Option<netns::mountinfo::Mount> {
    let dir = std::fs::canonicalize(dir).ok()?;
    netns::mountinfo::mounts().unwrap().into_iter().rfind(|m| m.mount_point == dir)
}

#[test]
fn current_is_thread_namespace() {
    let _serial = serial();
    in_private_netns(|| {
        let cur = NetNs::current().unwrap();
        assert_eq!(cur.inode().unwrap(), thread_netns_inode());
        assert_eq!(cur.label(), "thread");
        let dup = cur.try_clone().unwrap();
        assert!(dup.same_as(&cur).unwrap());
    });
}

#[test]
fn create_open_delete_round_trip() {
    let _serial = serial();
    in_private_netns(|| {
        let base = TempBase::new("roundtrip");
        let pin = base.path().join("ns1");
        let _g = PinGuard(pin.clone());
        let host = thread_netns_inode();
        let ns = netns::create_pinned(&pin).unwrap();
        assert!(netns::is_pinned(&pin));
        assert_ne!(ns.inode().unwrap(), host);
        let again = NetNs::from_path(&pin).unwrap();
        assert_eq!(again.inode().unwrap(), ns.inode().unwrap());
        assert!(again.same_as(&ns).unwrap());
        assert_eq!(again.label(), pin.display().to_string());
        assert!(!ns.same_as(&NetNs::current().unwrap()).unwrap());
        // The calling thread stayed where it was.
        assert_eq!(thread_netns_inode(), host);

        netns::unpin(&pin).unwrap();
        assert!(!pin.exists());
        assert!(!netns::is_pinned(&pin));
        netns::unpin(&pin).unwrap();
        // The handle keeps the namespace usable after the pin is gone.
        assert_eq!(netns::run_in(&ns, thread_netns_inode).unwrap(), ns.inode().unwrap());
        assert!(NetNs::from_path(&pin).unwrap_err().is_not_found());
    });
}

#[test]
fn create_runs_inside_and_the_caller_always_comes_home() {
    let _serial = serial();
    in_private_netns(|| {
        let base = TempBase::new("home");
        let host = thread_netns_inode();
        let pin = base.path().join("ok");
        let _g = PinGuard(pin.clone());
        // `inside` runs in the new namespace (on the calling thread or a helper: either way it
        // sees the new namespace), and the caller is back home afterwards.
        let (ns, seen) = netns::create_pinned_with(&pin, || Ok(thread_netns_inode())).unwrap();
        assert_eq!(seen, ns.inode().unwrap());
        assert_ne!(seen, host);
        assert_eq!(thread_netns_inode(), host);

        let failing = base.path().join("fails");
        let err = netns::create_pinned_with(&failing, || -> netsandbox::Result<()> {
            Err(Error::NotFound { kind: "thing", name: "x".into() })
        })
        .unwrap_err();
        assert!(matches!(err, Error::NotFound { kind: "thing", .. }), "{err:?}");
        assert!(!failing.exists(), "a failed create leaves no pin file");
        assert_eq!(thread_netns_inode(), host);

        let panicking = base.path().join("panics");
        let err =
            netns::create_pinned_with(&panicking, || -> netsandbox::Result<()> { panic!("inside {}", 7) }).unwrap_err();
        match err {
            Error::Panicked { ns, message } => {
                assert_eq!(ns, panicking.display().to_string());
                assert_eq!(message, "inside 7");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!panicking.exists(), "a panicking create leaves no pin file");
        assert_eq!(thread_netns_inode(), host);
        assert_eq!(common::nsfs_mounts_under(base.path()), 1, "only the successful pin is mounted");
    });
}

/// Child side of `creation_falls_back_to_a_helper_thread_without_a_way_back`: runs in a user
/// namespace that does not own its network namespace, so the calling thread could not return
/// from a new one. Does nothing unless started by that test.
#[test]
#[ignore = "helper process for creation_falls_back_to_a_helper_thread_without_a_way_back"]
fn userns_child() {
    if std::env::var_os("NETSANDBOX_USERNS_CHILD").is_none() {
        return;
    }
    let home = NetNs::current().unwrap();
    if nix::sched::setns(&home, nix::sched::CloneFlags::CLONE_NEWNET).is_ok() {
        println!("SKIP: re-joining the current network namespace is allowed here");
        return;
    }
    let host = thread_netns_inode();
    let ns = NetNs::new_unpinned().unwrap();
    assert_ne!(ns.inode().unwrap(), host);
    assert_eq!(thread_netns_inode(), host);
    println!("FELL BACK OK");
}

#[test]
fn creation_falls_back_to_a_helper_thread_without_a_way_back() {
    let _serial = serial();
    in_private_netns(|| {
        // `unshare -U -r`: root in a new user namespace, which does not own the (private) network
        // namespace the child starts in.
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("unshare")
            .args(["--user", "--map-root-user"])
            .arg(&exe)
            .args(["--ignored", "--exact", "userns_child", "--nocapture", "--test-threads=1"])
            .env("NETSANDBOX_USERNS_CHILD", "1")
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => return println!("SKIP: cannot run unshare(1): {e}"),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() && stderr.contains("unshare failed") {
            return println!("SKIP: user namespaces unavailable: {stderr}");
        }
        if stdout.contains("SKIP") {
            return println!("SKIP: {stdout}");
        }
        assert!(out.status.success(), "child failed: {stdout}\n{stderr}");
        assert!(stdout.contains("FELL BACK OK"), "child did not run the check: {stdout}\n{stderr}");
    });
}

#[test]
fn create_twice_is_already_exists_and_first_survives() {
    let _serial = serial();
    in_private_netns(|| {
        let base = TempBase::new("twice");
        let pin = base.path().join("ns");
        let _g = PinGuard(pin.clone());
        let first = netns::create_pinned(&pin).unwrap();
        let err = netns::create_pinned(&pin).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { kind: "namespace pin", .. }), "{err:?}");
        assert!(netns::is_pinned(&pin));
        assert_eq!(NetNs::from_path(&pin).unwrap().inode().unwrap(), first.inode().unwrap());
    });
}

#[test]
fn from_path_rejects_regular_file_and_other_namespaces() {
    let _serial = serial();
    in_private_netns(|| {
        let base = TempBase::new("regular");
        let file = base.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        let err = NetNs::from_path(&file).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
        assert!(err.to_string().contains(file.to_str().unwrap()), "{err}");
        assert!(!netns::is_pinned(&file));

        let err = NetNs::from_path("/proc/thread-self/ns/uts").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");

        let err = NetNs::from_path(base.path().join("missing")).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    });
}

#[test]
fn from_name_validates_and_reports_not_found() {
    let _serial = serial();
    for bad in ["", ".", "..", "a/b", "../etc", "a\0b"] {
        assert!(matches!(NetNs::from_name(bad), Err(Error::InvalidNamespaceName { .. })), "{bad:?}");
    }
    let name = format!("netsandbox-test-missing-{}", std::process::id());
    assert!(NetNs::from_name(&name).unwrap_err().is_not_found());
}

#[test]
fn from_name_opens_run_netns_pin() {
    let _serial = serial();
    in_private_netns(|| {
        let name = format!("netsandbox-test-{}", std::process::id());
        let pin = Path::new(netns::NETNS_RUN_DIR).join(&name);
        let run_netns_existed = Path::new(netns::NETNS_RUN_DIR).exists();
        // Undo everything we did to /run/netns; declared first so it runs after the pin is gone.
        struct Release(bool);
        impl Drop for Release {
            fn drop(&mut self) {
                let _ = netns::release_base(Path::new(netns::NETNS_RUN_DIR));
                if !self.0 {
                    let _ = std::fs::remove_dir(netns::NETNS_RUN_DIR);
                }
            }
        }
        let _r = Release(run_netns_existed);
        let _g = PinGuard(pin.clone());
        let ns = netns::create_pinned(&pin).unwrap();
        let by_name = NetNs::from_name(&name).unwrap();
        assert!(by_name.same_as(&ns).unwrap());
        assert_eq!(by_name.label(), pin.display().to_string());
    });
}

#[test]
fn from_pid_of_self_and_child() {
    let _serial = serial();
    // Read-only use of the leader's namespace.
    let me = NetNs::from_pid(std::process::id() as i32).unwrap();
    let leader = NetNs::from_path(format!("/proc/{}/ns/net", std::process::id())).unwrap();
    assert!(me.same_as(&leader).unwrap());
    assert_eq!(me.label(), format!("pid {}", std::process::id()));

    in_private_netns(|| {
        // A child spawned from this thread inherits the thread's private namespace.
        let child = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        let mut child = ChildGuard(child);
        let ns = NetNs::from_pid(child.0.id() as i32).unwrap();
        assert_eq!(ns.inode().unwrap(), thread_netns_inode());
        assert_ne!(ns.inode().unwrap(), me.inode().unwrap());
        child.0.kill().unwrap();
        child.0.wait().unwrap();
    });

    assert!(matches!(NetNs::from_pid(0), Err(Error::InvalidArgument { .. })));
    assert!(NetNs::from_pid(i32::MAX).unwrap_err().is_not_found());
}

#[test]
fn new_unpinned_is_fresh() {
    let _serial = serial();
    in_private_netns(|| {
        let host = thread_netns_inode();
        let a = NetNs::new_unpinned().unwrap();
        let b = NetNs::new_unpinned().unwrap();
        assert_ne!(a.inode().unwrap(), host);
        assert!(!a.same_as(&b).unwrap());
        assert_eq!(thread_netns_inode(), host);
        assert_eq!(netns::run_in(&a, thread_netns_inode).unwrap(), a.inode().unwrap());
    });
}

#[test]
fn run_in_values_errors_and_panics() {
    let _serial = serial();
    in_private_netns(|| {
        let host = thread_netns_inode();
        let ns = NetNs::new_unpinned().unwrap();
        let target = ns.inode().unwrap();

        let borrowed = String::from("abc");
        let sum: usize = netns::run_in(&ns, || borrowed.len() * 2).unwrap();
        assert_eq!(sum, 6);
        assert_eq!(netns::run_in(&ns, thread_netns_inode).unwrap(), target);

        let r: netsandbox::Result<u32> =
            netns::run_in_result(&ns, || Err(Error::NotFound { kind: "thing", name: "x".into() }));
        assert!(matches!(r, Err(Error::NotFound { kind: "thing", .. })));
        assert_eq!(netns::run_in_result(&ns, || Ok(7)).unwrap(), 7);

        let err = netns::run_in(&ns, || -> u32 { panic!("boom {}", 42) }).unwrap_err();
        match err {
            Error::Panicked { ns: label, message } => {
                assert_eq!(label, ns.label());
                assert_eq!(message, "boom 42");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(thread_netns_inode(), host);
        // Still usable afterwards.
        assert_eq!(netns::run_in(&ns, thread_netns_inode).unwrap(), target);
    });
}

#[test]
fn base_becomes_shared_mount_and_release_is_idempotent() {
    let _serial = serial();
    in_private_netns(|| {
        let base = TempBase::new("shared");
        let dir = base.path().join("pins");
        netns::ensure_shared_base(&dir).unwrap();
        let m = mount_at(&dir).expect("base is a mount point");
        assert!(m.is_shared(), "{m:?}");
        // Second call does not stack another mount.
        // Count only our mounts: other processes on the machine may mount meanwhile.
        let ours = || netns::mountinfo::mounts_under(base.path()).unwrap().len();
        let before = ours();
        netns::ensure_shared_base(&dir).unwrap();
        let after = ours();
        assert_eq!(before, after);

        let pin = dir.join("ns");
        let _g = PinGuard(pin.clone());
        netns::create_pinned(&pin).unwrap();
        netns::unpin(&pin).unwrap();

        netns::release_base(&dir).unwrap();
        assert!(mount_at(&dir).is_none());
        netns::release_base(&dir).unwrap();
    });
}

#[test]
fn no_fd_or_mount_leak_over_many_cycles() {
    let _serial = serial();
    in_private_netns(|| {
        let base = TempBase::new("leak");
        let dir = base.path().join("pins");
        netns::ensure_shared_base(&dir).unwrap();
        // Warm up lazily-initialised state (std, log) before counting.
        let pin = dir.join("warm");
        netns::create_pinned(&pin).unwrap();
        netns::unpin(&pin).unwrap();

        let fds = fd_count();
        let mounts = common::nsfs_mounts_under(base.path());
        for i in 0..100 {
            let pin = dir.join(format!("ns{i}"));
            let _g = PinGuard(pin.clone());
            let ns = netns::create_pinned(&pin).unwrap();
            assert!(ns.as_fd().try_clone_to_owned().is_ok());
            drop(ns);
            netns::unpin(&pin).unwrap();
        }
        assert_eq!(common::nsfs_mounts_under(base.path()), mounts);
        assert_eq!(fd_count(), fds);
        netns::release_base(&dir).unwrap();
    });
}

#[test]
fn failed_create_leaves_nothing() {
    let _serial = serial();
    in_private_netns(|| {
        let base = TempBase::new("fail");
        // Parent is a regular file: creating the base must fail and leave nothing behind.
        let file = base.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = netns::create_pinned(&file.join("ns")).unwrap_err();
        assert!(matches!(err, Error::Os { .. }), "{err:?}");
        assert!(matches!(netns::create_pinned(Path::new("ns")), Err(Error::InvalidArgument { .. })));
    });
}

#[test]
fn ns_guard_switches_back() {
    let _serial = serial();
    in_private_netns(|| {
        let host = thread_netns_inode();
        let ns = NetNs::new_unpinned().unwrap();
        {
            let _guard = netns::NsGuard::enter(&ns).unwrap();
            assert_eq!(thread_netns_inode(), ns.inode().unwrap());
        }
        assert_eq!(thread_netns_inode(), host);
        // Unwinding through the guard also switches back.
        let r = std::panic::catch_unwind(|| {
            let _guard = netns::NsGuard::enter(&ns).unwrap();
            panic!("inside");
        });
        assert!(r.is_err());
        assert_eq!(thread_netns_inode(), host);
    });
}

#[test]
fn every_handle_is_cloexec() {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let _serial = serial();
    in_private_netns(|| {
        let base = TempBase::new("cloexec");
        let pin = base.path().join("ns");
        let _g = PinGuard(pin.clone());
        let mut child = ChildGuard(std::process::Command::new("sleep").arg("1000").spawn().unwrap());
        let handles = vec![
            NetNs::current().unwrap(),
            NetNs::new_unpinned().unwrap(),
            netns::create_pinned(&pin).unwrap(),
            NetNs::from_path(&pin).unwrap(),
            NetNs::from_pid(child.0.id() as i32).unwrap(),
            NetNs::current().unwrap().try_clone().unwrap(),
        ];
        for h in &handles {
            let flags = FdFlag::from_bits_truncate(fcntl(h.as_fd(), FcntlArg::F_GETFD).unwrap());
            assert!(flags.contains(FdFlag::FD_CLOEXEC), "{}", h.label());
        }
        child.0.kill().unwrap();
    });
}

#[test]
fn unpin_never_detaches_other_mounts() {
    let _serial = serial();
    in_private_netns(|| {
        let base = TempBase::new("foreign");
        let dir = base.path().join("dir");
        // A self-bind mount point that is not a pin.
        netns::ensure_shared_base(&dir).unwrap();
        assert!(netns::unpin(&dir).is_err());
        assert!(mount_at(&dir).is_some(), "unpin must not detach a non-namespace mount");
        netns::release_base(&dir).unwrap();
    });
}
