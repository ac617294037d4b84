//! Container runtimes on netsandbox, end to end, as the README's "Using netsandbox with container
//! runtimes" section tells a user: sandboxes and a bridge made with the CLI, two busybox
//! containers run by crun joining them through `linux.namespaces[].path`, TCP between them over
//! IPv4 and IPv6.
//!
//! Everything lives in a private host namespace and under a temporary directory. crun runs in a
//! child process with a private mount namespace in which the cgroup2 mount of this hybrid-cgroup
//! host is unmounted (with cgroups disabled), so the machine's own mounts are never changed.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TempBase;
use common::oci::{busybox_bundle, without_cgroup2};
use netsandbox::netns::{self, NetNs};
use serde_json::Value;

const BUSYBOX: &str = "/bin/busybox";
const PORT: u16 = 8080;
const TIMEOUT: Duration = Duration::from_secs(30);

/// `program` on PATH, if any.
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// The private host namespace, the CLI's base, and crun's state; torn down in reverse on drop.
struct World {
    crun: PathBuf,
    host_pin: PathBuf,
    base: PathBuf,
    crun_root: PathBuf,
    containers: Vec<String>,
    sandboxes: Vec<String>,
    bridges: Vec<String>,
    dir: TempBase,
}

impl World {
    fn new(crun: PathBuf) -> World {
        let dir = TempBase::new("runtimes");
        let host_pin = dir.path().join("ns").join("host");
        netns::create_pinned(&host_pin).expect("pin private host namespace");
        let crun_root = dir.path().join("crun");
        std::fs::create_dir_all(&crun_root).expect("crun root");
        World {
            crun,
            host_pin,
            base: dir.path().join("base"),
            crun_root,
            containers: Vec::new(),
            sandboxes: Vec::new(),
            bridges: Vec::new(),
            dir,
        }
    }

    /// `netsandbox --base B --netns-root HOST --json ARGS`, expected to succeed; its JSON.
    fn cli(&self, args: &[&str]) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_netsandbox"))
            .arg("--base")
            .arg(&self.base)
            .arg("--netns-root")
            .arg(&self.host_pin)
            .arg("--json")
            .args(args)
            .output()
            .expect("run netsandbox");
        assert!(out.status.success(), "netsandbox {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("netsandbox {args:?}: bad JSON: {e}"))
    }

    fn pin(&self, sandbox: &str) -> PathBuf {
        self.base.join(sandbox)
    }

    /// crun with our state root and cgroups disabled.
    fn crun(&self, args: &[&str]) -> Command {
        let mut c = without_cgroup2(&self.crun);
        c.arg("--root").arg(&self.crun_root).arg("--cgroup-manager=disabled").args(args);
        c
    }

    /// podman with its storage under our directory, no cgroups, events in a file.
    fn podman(&self, podman: &Path, args: &[&str]) -> Command {
        let mut c = without_cgroup2(podman);
        let dir = self.dir.path().join("podman");
        c.arg("--root").arg(dir.join("storage")).arg("--runroot").arg(dir.join("run"));
        c.args(["--cgroup-manager=cgroupfs", "--events-backend=file"]).args(args);
        c
    }

    /// A bundle for a busybox container running `script` in the network namespace `netns`.
    fn bundle(&self, name: &str, netns: &Path, script: &str) -> PathBuf {
        busybox_bundle(&self.dir.path().join("bundles").join(name), name, netns, &["/bin/sh", "-c", script])
    }

    /// Starts a detached container. The container inherits crun's stdio, so its output goes to
    /// a file: a pipe would be held open by the container and never reach EOF.
    fn start(&mut self, id: &str, bundle: &Path) {
        self.containers.push(id.to_owned());
        let log = self.dir.path().join(format!("{id}.log"));
        let file = std::fs::File::create(&log).expect("container log");
        let status = self
            .crun(&["run", "--detach", "--bundle", &bundle.display().to_string(), id])
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log fd"))
            .stderr(file)
            .status()
            .expect("crun run --detach");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(status.success(), "crun run --detach {id}: {text}");
    }

    /// Runs a container to its end and returns its output, killed after [`TIMEOUT`].
    fn run(&mut self, id: &str, bundle: &Path) -> Output {
        self.containers.push(id.to_owned());
        let child = self
            .crun(&["run", "--bundle", &bundle.display().to_string(), id])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("crun run");
        wait_bounded(child, TIMEOUT, id)
    }

    /// The container's init pid, from `crun state`.
    fn pid(&self, id: &str) -> u32 {
        let out = self.crun(&["state", id]).output().expect("crun state");
        assert!(out.status.success(), "crun state {id}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).expect("crun state JSON");
        v["pid"].as_u64().expect("pid") as u32
    }
}

impl World {
    /// `crun delete --force` of every container started, newest first.
    fn delete_containers(&mut self) {
        for id in std::mem::take(&mut self.containers).into_iter().rev() {
            let _ = self.crun(&["delete", "--force", &id]).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.delete_containers();
        let cli = |args: &[&str]| {
            let _ = Command::new(env!("CARGO_BIN_EXE_netsandbox"))
                .arg("--base")
                .arg(&self.base)
                .arg("--netns-root")
                .arg(&self.host_pin)
                .args(args)
                .output();
        };
        for sb in &self.sandboxes {
            cli(&["destroy", sb]);
        }
        for br in &self.bridges {
            cli(&["bridge", "del", br]);
        }
        let _ = netns::unpin(&self.host_pin);
        // `dir` (dropped after this) detaches whatever is still mounted below it.
    }
}

/// Waits for `child` at most `limit` (polling), killing it when it overruns.
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        match child.try_wait().expect("wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if start.elapsed() > limit => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!("{what} did not finish within {limit:?}: {}", String::from_utf8_lossy(&out.stderr));
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Polls (at most [`TIMEOUT`]) until something listens on TCP `port` in the namespace at `pin`.
fn wait_listening(pin: &Path, port: u16) {
    let ns = NetNs::from_path(pin).expect("open sandbox namespace");
    let start = Instant::now();
    let hex = format!(":{port:04X} ");
    loop {
        // /proc/thread-self/net shows the namespace of the thread reading it.
        let listening = netns::run_in(&ns, || {
            ["tcp", "tcp6"].iter().any(|t| {
                std::fs::read_to_string(format!("/proc/thread-self/net/{t}"))
                    .unwrap_or_default()
                    .lines()
                    // Local address column, state 0A = LISTEN.
                    .any(|l| {
                        l.split_whitespace().nth(1).is_some_and(|a| format!("{a} ").ends_with(&hex))
                            && l.split_whitespace().nth(3) == Some("0A")
                    })
            })
        })
        .expect("read sockets in the sandbox");
        if listening {
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "nothing listens on port {port} in {} after {TIMEOUT:?}", pin.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn netns_inode(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display())).ino()
}

/// The host side, from the shell: a bridge holding the gateways, sandboxes c1 and c2 on it.
fn layout(w: &mut World) {
    w.bridges.push("nsbr0".into());
    w.cli(&["bridge", "add", "nsbr0", "--address", "198.18.255.254/16", "--address", "2001:db8::ffff/64"]);
    for (sb, v4, v6) in [("c1", "198.18.0.2/16", "2001:db8::2/64"), ("c2", "198.18.0.3/16", "2001:db8::3/64")] {
        w.sandboxes.push(sb.into());
        w.cli(&["create", sb]);
        let host_end = format!("vh-{sb}");
        w.cli(&["add-veth", sb, &host_end, "--host-master", "nsbr0", "--address", v4, "--address6", v6]);
        w.cli(&["set-gateway", sb, "198.18.255.254"]);
        w.cli(&["set-gateway", sb, "2001:db8::ffff"]);
    }
}

/// A crun container in c2 that answers every connection, on IPv4 or IPv6, with its lines
/// prefixed; returns once it listens.
fn serve_in_c2(w: &mut World) {
    let server = w.bundle("srv", &w.pin("c2"), &format!("exec nc -ll -p {PORT} -e sed s/^/pong:/"));
    w.start("nsbx-srv", &server);
    // The container's process is in the sandbox's namespace, as the kernel sees it.
    let pid = w.pid("nsbx-srv");
    assert_eq!(netns_inode(&PathBuf::from(format!("/proc/{pid}/ns/net"))), netns_inode(&w.pin("c2")));
    wait_listening(&w.pin("c2"), PORT);
}

/// What a client in c1 runs: one exchange over each family.
fn client_script() -> String {
    format!("echo ping4 | nc -w 10 198.18.0.3 {PORT} && echo ping6 | nc -w 10 2001:db8::3 {PORT}")
}

fn assert_answered(out: &Output, who: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{who}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().collect::<Vec<_>>(), ["pong:ping4", "pong:ping6"], "{who}: {stdout}");
}

#[test]
fn crun_containers_talk_tcp_through_cli_sandboxes() {
    let Some(crun) = find("crun") else {
        eprintln!("SKIP crun_containers_talk_tcp_through_cli_sandboxes: crun not found on PATH (apt-get install crun)");
        return;
    };
    assert!(Path::new(BUSYBOX).is_file(), "{BUSYBOX} missing: apt-get install busybox-static");
    let mut w = World::new(crun);
    layout(&mut w);
    serve_in_c2(&mut w);

    let client = w.bundle("cli", &w.pin("c1"), &client_script());
    let out = w.run("nsbx-cli", &client);
    assert_answered(&out, "crun client");

    // And the sandboxes saw the traffic: their counters, read by the CLI.
    let info = w.cli(&["inspect", "c1"]);
    let tx = info["interfaces"][0]["statistics"]["tx_packets"].as_u64().unwrap_or(0);
    assert!(tx > 0, "{info}");

    // Tear down as the README says: containers, sandboxes, then gc releases the base's mount.
    w.delete_containers();
    w.cli(&["destroy", "c1", "c2"]);
    w.sandboxes.clear();
    let base = w.base.display().to_string();
    let base_mounted = || {
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        mounts.lines().any(|l| l.split(' ').nth(4) == Some(base.as_str()))
    };
    assert!(base_mounted(), "the base is a shared bind mount of itself until released");
    w.cli(&["gc"]);
    assert!(!base_mounted(), "{base} still mounted after gc");
    w.cli(&["bridge", "del", "nsbr0"]);
    w.bridges.clear();
}

#[test]
fn podman_container_joins_a_cli_sandbox() {
    let (Some(crun), Some(podman)) = (find("crun"), find("podman")) else {
        eprintln!("SKIP podman_container_joins_a_cli_sandbox: crun or podman not found on PATH");
        return;
    };
    assert!(Path::new(BUSYBOX).is_file(), "{BUSYBOX} missing: apt-get install busybox-static");
    let mut w = World::new(crun);
    layout(&mut w);
    serve_in_c2(&mut w);

    // No image: podman runs a busybox root file system as it is (`--rootfs`), so nothing is
    // pulled, imported or cached outside our directory.
    let rootfs = w.bundle("img", &w.pin("c1"), "true").join("rootfs");
    let rootfs = rootfs.display().to_string();
    let pin = format!("ns:{}", w.pin("c1").display());
    // This host's hard fd and process limits are above what podman passes on by default.
    let args = [
        "run",
        "--rm",
        "--cgroups=disabled",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=4096:4096",
        "--network",
        &pin,
        "--rootfs",
        &rootfs,
        "/bin/sh",
        "-c",
        &client_script(),
    ];
    let child = w.podman(&podman, &args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
    let out = wait_bounded(child.expect("podman run"), TIMEOUT, "podman run");
    assert_answered(&out, "podman client");
}
