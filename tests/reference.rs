//! Namespace references: by name, file, pid, thread, and by container id through crun's own
//! state, against a real crun container running busybox in a sandbox pin.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::oci::{busybox_bundle, without_cgroup2};
use common::{TempBase, in_private_netns, thread_netns_inode};
use netsandbox::Error;
use netsandbox::netns::{self, ContainerResolver, ContainerState, NetNsRef, OciRuntime, ReferenceError};

fn reference_error(e: Error) -> ReferenceError {
    match e {
        Error::Reference(r) => r,
        other => panic!("expected a reference error, got {other:?}"),
    }
}

#[test]
fn named_references_get_or_create_and_enter() {
    in_private_netns(|| {
        let base = TempBase::new("ref-name");
        let r = NetNsRef::name_in(base.path(), "ns1");
        assert!(!r.is_available());
        assert!(r.open().unwrap_err().is_not_found());
        let a = r.get_or_create().unwrap();
        let b = r.get_or_create().unwrap();
        assert!(a.same_as(&b).unwrap(), "second get_or_create opens the first namespace");
        assert!(r.is_available());
        let path = base.path().join("ns1");
        assert!(netns::is_pinned(&path));
        // The file form of the same pin names the same namespace.
        let f = NetNsRef::file(&path).open().unwrap();
        assert_eq!(f.inode().unwrap(), a.inode().unwrap());

        let home = thread_netns_inode();
        {
            let _g = r.enter().unwrap();
            assert_eq!(thread_netns_inode(), a.inode().unwrap());
        }
        assert_eq!(thread_netns_inode(), home, "the guard switched back");

        for bad in ["", "..", "a/b"] {
            assert!(NetNsRef::name_in(base.path(), bad).open().unwrap_err().is_invalid_input(), "{bad:?}");
        }
        netns::unpin(&path).unwrap();
    });
}

#[test]
fn file_that_is_not_nsfs_is_typed() {
    let base = TempBase::new("ref-file");
    let plain = base.path().join("plain");
    std::fs::write(&plain, b"x").unwrap();
    for p in [plain.clone(), PathBuf::from("/proc/self/ns/mnt")] {
        match reference_error(NetNsRef::file(&p).open().unwrap_err()) {
            ReferenceError::NotNetns { path, .. } => assert_eq!(path, p),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            reference_error(NetNsRef::file(&p).get_or_create().unwrap_err()),
            ReferenceError::NotNetns { .. }
        ));
    }
    assert!(NetNsRef::file(base.path().join("missing")).open().unwrap_err().is_not_found());
}

#[test]
fn pid_and_thread_references() {
    let me = NetNsRef::pid(std::process::id() as i32).open().unwrap();
    assert_eq!(me.inode().unwrap(), std::fs::metadata("/proc/self/ns/net").unwrap().ino());
    // Above pid_max: never a process.
    match reference_error(NetNsRef::pid(i32::MAX).open().unwrap_err()) {
        ReferenceError::NoSuchProcess { kind: "process", pid } => assert_eq!(pid, i32::MAX),
        other => panic!("{other:?}"),
    }
    assert!(NetNsRef::pid(0).open().unwrap_err().is_invalid_input());
    assert!(matches!(
        reference_error(NetNsRef::pid(1).get_or_create().unwrap_err()),
        ReferenceError::NotCreatable { .. }
    ));

    // A thread in a namespace of its own: the reference by thread id finds its namespace, not
    // the process's; once the thread is gone the reference is NoSuchProcess.
    let (tx, rx) = std::sync::mpsc::channel();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let pidfd = common::own_thread_pidfd();
        tx.send((nix::unistd::gettid().as_raw(), thread_netns_inode(), pidfd)).unwrap();
        let _ = done_rx.recv();
    });
    let (tid, inode, pidfd) = rx.recv().unwrap();
    let ns = NetNsRef::thread(tid).open().unwrap();
    assert_eq!(ns.inode().unwrap(), inode);
    assert_ne!(inode, me.inode().unwrap());
    drop(ns);
    done_tx.send(()).unwrap();
    t.join().unwrap();
    common::wait_thread_exit(&pidfd);
    assert!(matches!(
        reference_error(NetNsRef::thread(tid).open().unwrap_err()),
        ReferenceError::NoSuchProcess { kind: "thread", .. }
    ));
    assert_eq!(NetNsRef::current_thread().open().unwrap().inode().unwrap(), thread_netns_inode());
}

/// A resolver whose answers are scripted: lets the PID-reuse check be exercised without waiting
/// for the kernel to recycle a PID.
#[derive(Debug)]
struct Scripted(std::sync::Mutex<Vec<ContainerState>>);
impl ContainerResolver for Scripted {
    fn runtime(&self) -> &str {
        "scripted"
    }
    fn state(&self, _id: &str) -> netsandbox::Result<ContainerState> {
        let mut v = self.0.lock().unwrap();
        Ok(if v.len() > 1 { v.remove(0) } else { v[0] })
    }
}

#[test]
fn container_whose_pid_changes_between_answers_is_exited() {
    let me = std::process::id() as i32;
    let flaky = Arc::new(Scripted(std::sync::Mutex::new(vec![
        ContainerState::Running { pid: me },
        ContainerState::Running { pid: me + 1 },
    ])));
    assert!(matches!(
        reference_error(NetNsRef::container("c", flaky).open().unwrap_err()),
        ReferenceError::ContainerExited { .. }
    ));
    let steady = Arc::new(Scripted(std::sync::Mutex::new(vec![ContainerState::Running { pid: me }])));
    let ns = NetNsRef::container("c", steady).open().unwrap();
    assert_eq!(ns.inode().unwrap(), std::fs::metadata("/proc/self/ns/net").unwrap().ino());
    let gone = Arc::new(Scripted(std::sync::Mutex::new(vec![ContainerState::Unknown])));
    assert!(matches!(
        reference_error(NetNsRef::container("c", gone.clone()).open().unwrap_err()),
        ReferenceError::UnknownContainer { .. }
    ));
    assert!(NetNsRef::container("-x", gone).open().unwrap_err().is_invalid_input(), "option look-alike id");
    let missing = Arc::new(OciRuntime::new("/nonexistent/crun"));
    assert!(matches!(
        reference_error(NetNsRef::container("c", missing).open().unwrap_err()),
        ReferenceError::Runtime { .. }
    ));
}

// ---- crun ----

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Runs crun with cgroups disabled in a private mount namespace without the cgroup2 mount
/// ([`without_cgroup2`]). Output goes to files, not pipes: a detached container inherits crun's
/// stdout and stderr and would hold a pipe open for its whole life.
fn crun(root: &Path, args: &[&str]) -> (bool, String) {
    let log = root.with_extension(format!("log-{}", args[0]));
    let file = std::fs::File::create(&log).unwrap();
    let status = without_cgroup2(Path::new("crun"))
        .arg("--cgroup-manager=disabled")
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .expect("run crun");
    (status.success(), std::fs::read_to_string(&log).unwrap_or_default())
}

/// Deletes the container on drop, whatever the test did.
struct Container<'a> {
    root: &'a Path,
    id: &'a str,
}
impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = crun(self.root, &["delete", "-f", self.id]);
    }
}

/// An OCI bundle running busybox `sleep` with its network namespace joined to `netns_path`.
fn sleep_bundle(dir: &Path, netns_path: &Path) -> PathBuf {
    busybox_bundle(&dir.join("bundle"), "ref", netns_path, &["/bin/busybox", "sleep", "600"])
}

#[test]
fn crun_container_reference_resolves_to_its_sandbox_namespace() {
    if !have("crun") || !Path::new("/bin/busybox").exists() {
        eprintln!("skipping: crun or busybox-static not installed (apt-get install crun busybox-static)");
        return;
    }
    in_private_netns(|| {
        let base = TempBase::new("ref-crun");
        let pin = base.path().join("sandbox");
        let sandbox = netns::create_pinned(&pin).unwrap();
        let root = base.path().join("crun-root");
        std::fs::create_dir_all(&root).unwrap();
        let bundle = sleep_bundle(base.path(), &pin);
        let id = format!("nsref-{}", std::process::id());
        let _container = Container { root: &root, id: &id };
        let (ok, err) = crun(&root, &["run", "-d", "--bundle", bundle.to_str().unwrap(), &id]);
        assert!(ok, "crun run: {err}");

        let resolver: Arc<dyn ContainerResolver> = Arc::new(OciRuntime::crun().root(&root));
        let r = NetNsRef::container(&id, resolver.clone());
        let ns = r.open().unwrap();
        assert_eq!(ns.inode().unwrap(), sandbox.inode().unwrap(), "the container's namespace is the sandbox");
        assert!(r.is_available());
        // Kernel truth, independent of our resolution: the init process's ns link.
        let ContainerState::Running { pid } = resolver.state(&id).unwrap() else { panic!("not running") };
        let via_proc = std::fs::metadata(format!("/proc/{pid}/ns/net")).unwrap().ino();
        assert_eq!(via_proc, sandbox.inode().unwrap());
        drop(ns);

        let (ok, err) = crun(&root, &["kill", &id, "KILL"]);
        assert!(ok, "crun kill: {err}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while resolver.state(&id).unwrap() != ContainerState::Stopped {
            assert!(Instant::now() < deadline, "container did not stop within 10 s");
            std::thread::sleep(Duration::from_millis(10));
        }
        match reference_error(r.open().unwrap_err()) {
            ReferenceError::ContainerExited { id: got, runtime } => {
                assert_eq!((got.as_str(), runtime.as_str()), (id.as_str(), "crun"));
            }
            other => panic!("{other:?}"),
        }
        assert!(!r.is_available());

        let (ok, err) = crun(&root, &["delete", "-f", &id]);
        assert!(ok, "crun delete: {err}");
        assert!(matches!(reference_error(r.open().unwrap_err()), ReferenceError::UnknownContainer { .. }));
        drop(sandbox);
        netns::unpin(&pin).unwrap();
    });
}

#[test]
fn crun_unknown_container_is_typed() {
    if !have("crun") {
        eprintln!("skipping: crun not installed");
        return;
    }
    let base = TempBase::new("ref-crun-unknown");
    let r = NetNsRef::container("no-such-container", Arc::new(OciRuntime::crun().root(base.path())));
    match reference_error(r.open().unwrap_err()) {
        ReferenceError::UnknownContainer { id, runtime } => {
            assert_eq!((id.as_str(), runtime.as_str()), ("no-such-container", "crun"))
        }
        other => panic!("{other:?}"),
    }
}

// ---- podman ----

/// podman with its storage under `dir` (vfs: no overlay mounts left behind), no cgroups.
fn podman_args(dir: &Path) -> Vec<String> {
    vec![
        "--root".into(),
        dir.join("storage").display().to_string(),
        "--runroot".into(),
        dir.join("run").display().to_string(),
        "--storage-driver=vfs".into(),
        "--cgroup-manager=cgroupfs".into(),
        "--events-backend=file".into(),
    ]
}

/// Runs podman like [`crun`]: private mount namespace without the cgroup2 mount, output in a file.
fn podman(dir: &Path, args: &[&str]) -> (bool, String) {
    let log = dir.join(format!("podman-{}.log", args[0]));
    let file = std::fs::File::create(&log).unwrap();
    let status = without_cgroup2(Path::new("podman"))
        .args(podman_args(dir))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .expect("run podman");
    (status.success(), std::fs::read_to_string(&log).unwrap_or_default())
}

struct PodmanContainer<'a> {
    dir: &'a Path,
    name: &'a str,
}
impl Drop for PodmanContainer<'_> {
    fn drop(&mut self) {
        let _ = podman(self.dir, &["rm", "-f", "-t", "0", self.name]);
    }
}

#[test]
fn podman_container_reference_resolves_to_its_sandbox_namespace() {
    if !have("podman") || !Path::new("/bin/busybox").exists() {
        eprintln!("skipping: podman or busybox-static not installed");
        return;
    }
    in_private_netns(|| {
        let base = TempBase::new("ref-podman");
        let pin = base.path().join("sandbox");
        let sandbox = netns::create_pinned(&pin).unwrap();
        let bundle = sleep_bundle(base.path(), &pin);
        let rootfs = bundle.join("rootfs").display().to_string();
        let name = format!("nsref-podman-{}", std::process::id());
        let _c = PodmanContainer { dir: base.path(), name: &name };
        let network = format!("ns:{}", pin.display());
        let (ok, err) = podman(
            base.path(),
            &[
                "run",
                "-d",
                "--name",
                &name,
                "--cgroups=disabled",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=4096:4096",
                "--network",
                &network,
                "--rootfs",
                &rootfs,
                "/bin/busybox",
                "sleep",
                "600",
            ],
        );
        assert!(ok, "podman run: {err}");

        let mut resolver = netsandbox::netns::Podman::new();
        for a in podman_args(base.path()) {
            resolver = resolver.arg(a);
        }
        let resolver: Arc<dyn ContainerResolver> = Arc::new(resolver);
        let r = NetNsRef::container(&name, resolver.clone());
        assert_eq!(r.open().unwrap().inode().unwrap(), sandbox.inode().unwrap());

        let (ok, err) = podman(base.path(), &["kill", &name]);
        assert!(ok, "podman kill: {err}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while resolver.state(&name).unwrap() != ContainerState::Stopped {
            assert!(Instant::now() < deadline, "container did not stop within 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(matches!(reference_error(r.open().unwrap_err()), ReferenceError::ContainerExited { .. }));
        let (ok, err) = podman(base.path(), &["rm", "-f", &name]);
        assert!(ok, "podman rm: {err}");
        match reference_error(r.open().unwrap_err()) {
            ReferenceError::UnknownContainer { runtime, .. } => assert_eq!(runtime, "podman"),
            other => panic!("{other:?}"),
        }
        drop(sandbox);
        netns::unpin(&pin).unwrap();
    });
}
