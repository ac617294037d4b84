//! A real runtime: containerd 1.6 with `ctr run --cni` runs busybox containers from an image
//! built offline (an OCI layout tarball of busybox-static) on a network whose plugin is
//! `netsandbox-cni` (built-in IPAM). A container gets its address and default route from the
//! plugin, a second one talks TCP to it, and when `ctr run --rm` ends, its CNI DEL has released
//! the address and the host end.
//!
//! Runs inside a private network + mount namespace: containerd's root, state and socket live
//! under the test's temporary directory, `/run` is a private tmpfs, and `/etc/cni` and `/opt`
//! (where `ctr` looks for the conflist and the plugins, paths it cannot be told) are private
//! tmpfs mounts holding only this test's files. Containers run without cgroups (`--cgroup ""`),
//! so nothing is made in the machine's cgroup hierarchy. Skips with a printed reason when
//! containerd, ctr, runc or busybox is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempBase, enter_private_world, ip};
use netsandbox::netns::{self, NetNs};
use serde_json::Value;

const PLUGIN: &str = env!("CARGO_BIN_EXE_netsandbox-cni");
const IMAGE: &str = "docker.io/netsandbox/busybox:test";

fn missing_tools() -> Option<String> {
    for (tool, path) in [
        ("containerd", "/usr/bin/containerd"),
        ("ctr", "/usr/bin/ctr"),
        ("containerd-shim-runc-v2", "/usr/bin/containerd-shim-runc-v2"),
        ("runc", "/usr/sbin/runc"),
        ("busybox", "/bin/busybox"),
        ("/etc/cni (mount point for the private conflist directory)", "/etc/cni"),
    ] {
        if !Path::new(path).exists() {
            return Some(format!("{tool} is not installed ({path})"));
        }
    }
    None
}

/// An OCI image layout tarball of busybox-static, built with tar and sha256sum (no registry).
fn build_image(dir: &Path) -> PathBuf {
    const SCRIPT: &str = r#"set -eu
W=$1; mkdir -p "$W/rootfs/bin" "$W/rootfs/proc" "$W/rootfs/sys" "$W/rootfs/dev" "$W/oci/blobs/sha256"
cp /bin/busybox "$W/rootfs/bin/"
for a in sh nc ip cat echo seq usleep; do ln -sf busybox "$W/rootfs/bin/$a"; done
tar -C "$W/rootfs" -cf "$W/layer.tar" .
put() { d=$(sha256sum "$1" | cut -d' ' -f1); cp "$1" "$W/oci/blobs/sha256/$d"; echo "$d $(stat -c%s "$1")"; }
set -- $(put "$W/layer.tar"); ld=$1 ls=$2
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/sh"],"Env":["PATH=/bin"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$ld" > "$W/config.json"
set -- $(put "$W/config.json"); cd=$1 cs=$2
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' "$cd" "$cs" "$ld" "$ls" > "$W/manifest.json"
set -- $(put "$W/manifest.json"); md=$1 ms=$2
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s"},"platform":{"architecture":"amd64","os":"linux"}}]}' "$md" "$ms" "$IMAGE" > "$W/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' > "$W/oci/oci-layout"
tar -C "$W/oci" -cf "$W/image.tar" .
"#;
    let st = Command::new("sh").args(["-c", SCRIPT, "sh"]).arg(dir).env("IMAGE", IMAGE).status().expect("run sh");
    assert!(st.success(), "building the image failed");
    dir.join("image.tar")
}

/// containerd and everything it started: killed (tasks first, then the daemon and the shims
/// that serve this socket) even when the test fails.
struct Containerd {
    daemon: Child,
    sock: PathBuf,
    children: Vec<Child>,
}

impl Containerd {
    fn start(dir: &Path) -> Containerd {
        let sock = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
                root = dir.join("root").display(),
                state = dir.join("state").display(),
                sock = sock.display(),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd { daemon, sock, children: Vec::new() };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.run(&["version"]).0 {
            assert!(Instant::now() < deadline, "containerd did not come up: {}", c.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.sock.with_file_name("containerd.log")).unwrap_or_default()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.arg("120").arg("ctr").arg("--address").arg(&self.sock).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.command(args).output().expect("run ctr");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "ctr {args:?} failed: {text}\ncontainerd log:\n{}", self.log());
        text
    }

    /// The pid of a running task, once there is one (bounded).
    fn task_pid(&self, id: &str) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (_, out) = self.run(&["task", "ls"]);
            let pid = out.lines().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 3 && f[0] == id && f[2] == "RUNNING").then(|| f[1].parse().ok()).flatten()
            });
            if let Some(pid) = pid {
                return pid;
            }
            assert!(Instant::now() < deadline, "task {id} never ran: {out}\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Ok(out) = self.command(&["task", "ls", "-q"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.command(&["task", "kill", "-s", "SIGKILL", id]).output();
            }
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        // The shims outlive the daemon: those serving this socket go too.
        let sock = self.sock.display().to_string();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else { continue };
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&sock) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// Addresses the built-in IPAM holds for `network` (host-local's format: one file per address).
fn allocations(ipam: &Path, network: &str) -> Vec<String> {
    std::fs::read_dir(ipam.join(network))
        .map(|rd| rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with("198.")).collect())
        .unwrap_or_default()
}

fn bridge_ports(bridge: &str) -> usize {
    let ports: Value = serde_json::from_str(&ip(&["-j", "link", "show", "master", bridge])).unwrap();
    ports.as_array().map_or(0, Vec::len)
}

/// Polls `f` until it is true (bounded).
fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn containerd_ctr_run_cni_on_a_netsandbox_network() {
    if let Some(why) = missing_tools() {
        eprintln!("skipped: {why}");
        return;
    }
    let base = TempBase::new("containerd");
    let t = base.path().to_path_buf();
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_private_world(&["/run", "/etc/cni", "/opt"]);
            // ctr's fixed paths, private to this mount namespace.
            std::fs::create_dir_all("/opt/cni/bin").unwrap();
            std::fs::create_dir_all("/etc/cni/net.d").unwrap();
            std::fs::copy(PLUGIN, "/opt/cni/bin/netsandbox-cni").unwrap();
            for e in std::fs::read_dir("/usr/lib/cni").into_iter().flatten().flatten() {
                let _ = std::os::unix::fs::symlink(e.path(), Path::new("/opt/cni/bin").join(e.file_name()));
            }
            let ipam = t.join("ipam");
            let conflist = serde_json::json!({
                "cniVersion": "1.0.0", "name": "ctrnet",
                "plugins": [{"type": "netsandbox-cni", "bridge": "ctrbr0", "isGateway": true, "isDefaultGateway": true,
                    "ipam": {"type": "netsandbox", "dataDir": ipam, "subnet": "198.18.0.0/24"}}]
            });
            std::fs::write("/etc/cni/net.d/10-ctrnet.conflist", conflist.to_string()).unwrap();
            let image = build_image(&t.join("image"));
            let mut ctr = Containerd::start(&t);
            ctr.ok(&["images", "import", image.to_str().unwrap()]);

            // Container a serves one line over TCP; `ctr run --rm` in the foreground, so its CNI
            // DEL runs when the container ends.
            let a = ctr
                .command(&[
                    "run",
                    "--cni",
                    "--rm",
                    "--cgroup",
                    "",
                    IMAGE,
                    "a",
                    "sh",
                    "-c",
                    "echo hello-from-a | nc -l -p 8080",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("ctr run a");
            ctr.children.push(a);
            let pid = ctr.task_pid("a");
            // Kernel truth in a's namespace: its address and default route.
            let (addr, route) = netns::run_in(&NetNs::from_path(format!("/proc/{pid}/ns/net")).unwrap(), || {
                (ip(&["-j", "addr", "show", "dev", "eth0"]), ip(&["-j", "route", "show", "default"]))
            })
            .unwrap();
            let addr: Value = serde_json::from_str(&addr).unwrap();
            let a_ip = addr[0]["addr_info"][0]["local"].as_str().unwrap_or_default().to_owned();
            assert!(a_ip.starts_with("198.18.0."), "{addr}");
            assert_eq!(
                allocations(&ipam, "ctrnet"),
                std::slice::from_ref(&a_ip),
                "the address a got is the one the IPAM holds"
            );
            let route: Value = serde_json::from_str(&route).unwrap();
            assert_eq!(route[0]["gateway"], "198.18.0.1", "{route}");
            assert_eq!(bridge_ports("ctrbr0"), 1);

            // Container b connects to a (polling, bounded, until a listens).
            let script = format!("for i in $(seq 100); do nc {a_ip} 8080 && exit 0; usleep 100000; done; exit 1");
            let out = ctr.ok(&["run", "--cni", "--rm", "--cgroup", "", IMAGE, "b", "sh", "-c", &script]);
            assert!(out.contains("hello-from-a"), "{out}");
            println!("b got from a ({a_ip}): {}", out.trim());

            // a has served its one connection and ended: both DELs have run.
            let mut a = ctr.children.pop().unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while a.try_wait().unwrap().is_none() {
                assert!(Instant::now() < deadline, "ctr run a did not end");
                std::thread::sleep(Duration::from_millis(20));
            }
            // DEL leaves the kernel's deletion of the pair to a detached reaper: poll, bounded.
            eventually("no port left on ctrbr0", || bridge_ports("ctrbr0") == 0);
            assert!(allocations(&ipam, "ctrnet").is_empty(), "{:?}", allocations(&ipam, "ctrnet"));
            drop(ctr);
        });
    });
}
