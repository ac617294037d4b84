//! A real runtime: podman 4.3 with its CNI backend runs busybox rootfs containers on a network
//! whose plugin is `netsandbox-cni` (built-in IPAM); a container gets its address and default
//! route, two containers talk TCP, and removing a container releases its address and host end.
//!
//! Runs inside a private network + mount namespace (this VM has hybrid cgroups: the cgroup2
//! mount is unmounted there and podman runs with cgroups disabled); podman's state, the CNI
//! cache and `/run` live on tmpfs or under the test's temporary directory. Skips with a printed
//! reason when podman, crun or busybox is missing.

mod common;

use std::path::Path;
use std::process::Command;

use common::{TempBase, enter_private_world, ip};
use netsandbox::netns::{self, NetNs};
use serde_json::Value;

const PLUGIN: &str = env!("CARGO_BIN_EXE_netsandbox-cni");

fn missing_tools() -> Option<String> {
    for (tool, path) in [("podman", "/usr/bin/podman"), ("crun", "/usr/bin/crun"), ("busybox", "/bin/busybox")] {
        if !Path::new(path).exists() {
            return Some(format!("{tool} is not installed ({path})"));
        }
    }
    None
}

struct Podman {
    args: Vec<String>,
    conf: String,
}

impl Podman {
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("timeout")
            .arg("120")
            .arg("podman")
            .args(&self.args)
            .args(args)
            .env("CONTAINERS_CONF", &self.conf)
            .output()
            .expect("run podman");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }
    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "podman {args:?} failed: {text}");
        text
    }
}

#[test]
fn podman_containers_on_a_netsandbox_network() {
    if let Some(why) = missing_tools() {
        eprintln!("skipped: {why}");
        return;
    }
    let base = TempBase::new("podman");
    let t = base.path().to_path_buf();
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_private_world(&["/run", "/var/lib/cni"]);
            // Plugins: ours and the reference ones (podman's own default network uses them).
            let plugins = t.join("plugins");
            std::fs::create_dir_all(&plugins).unwrap();
            std::fs::copy(PLUGIN, plugins.join("netsandbox-cni")).unwrap();
            if let Ok(rd) = std::fs::read_dir("/usr/lib/cni") {
                for e in rd.flatten() {
                    let _ = std::os::unix::fs::symlink(e.path(), plugins.join(e.file_name()));
                }
            }
            let netd = t.join("net.d");
            std::fs::create_dir_all(&netd).unwrap();
            let ipam = t.join("ipam");
            let conflist = serde_json::json!({
                "cniVersion": "1.0.0", "name": "podnet",
                "plugins": [{"type": "netsandbox-cni", "bridge": "podbr0", "isGateway": true, "isDefaultGateway": true,
                    "ipam": {"type": "netsandbox", "dataDir": ipam, "subnet": "198.18.0.0/24"}}]
            });
            std::fs::write(netd.join("podnet.conflist"), conflist.to_string()).unwrap();
            let rootfs = t.join("rootfs");
            for d in ["bin", "proc", "sys", "dev", "etc", "tmp"] {
                std::fs::create_dir_all(rootfs.join(d)).unwrap();
            }
            std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
            for a in ["sh", "ip", "nc", "echo", "seq", "usleep", "cat"] {
                std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
            }
            let conf = t.join("containers.conf");
            std::fs::write(
                &conf,
                format!(
                    "[network]\nnetwork_backend = \"cni\"\ncni_plugin_dirs = [\"{}\"]\nnetwork_config_dir = \"{}\"\n\
                     [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"crun\"\n\
                     [containers]\ncgroups = \"disabled\"\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n",
                    plugins.display(),
                    netd.display()
                ),
            )
            .unwrap();
            let st = t.join("storage");
            let pm = Podman {
                args: vec![
                    "--root".into(),
                    st.join("root").display().to_string(),
                    // Must be short (podman refuses runroots over 50 characters): /run is this
                    // test's own tmpfs.
                    "--runroot".into(),
                    "/run/netsandbox-podman".into(),
                    "--storage-driver".into(),
                    "vfs".into(),
                ],
                conf: conf.display().to_string(),
            };
            let r = rootfs.display().to_string();

            // Container a serves one line over TCP.
            pm.ok(&["run", "-d", "--name", "a", "--network", "podnet", "--rootfs", &r, "sh", "-c", "echo hello-from-a | nc -l -p 8080"]);
            let a_ip = pm.ok(&["inspect", "a", "--format", "{{(index .NetworkSettings.Networks \"podnet\").IPAddress}}"]).trim().to_owned();
            assert!(a_ip.starts_with("198.18.0."), "{a_ip}");
            let sandbox = pm.ok(&["inspect", "a", "--format", "{{.NetworkSettings.SandboxKey}}"]).trim().to_owned();
            // Kernel truth in a's namespace: its address and default route.
            let (addr, route) = netns::run_in(&NetNs::from_path(&sandbox).unwrap(), || {
                (ip(&["-j", "addr", "show", "dev", "eth0"]), ip(&["-j", "route", "show", "default"]))
            })
            .unwrap();
            let addr: Value = serde_json::from_str(&addr).unwrap();
            assert_eq!(addr[0]["addr_info"][0]["local"], a_ip.as_str(), "{addr}");
            let route: Value = serde_json::from_str(&route).unwrap();
            assert_eq!(route[0]["gateway"], "198.18.0.1", "{route}");
            let ports: Value = serde_json::from_str(&ip(&["-j", "link", "show", "master", "podbr0"])).unwrap();
            assert_eq!(ports.as_array().unwrap().len(), 1);

            // Container b connects to a (polling, bounded, until a listens).
            let script = format!("for i in $(seq 100); do nc {a_ip} 8080 && exit 0; usleep 100000; done; exit 1");
            let out = pm.ok(&["run", "--rm", "--network", "podnet", "--rootfs", &r, "sh", "-c", &script]);
            assert!(out.contains("hello-from-a"), "{out}");

            // Removing a runs DEL: its address and host end are gone.
            pm.ok(&["rm", "-f", "a"]);
            // DEL leaves the kernel's deletion of the pair to a detached reaper: poll, bounded.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            loop {
                let ports: Value = serde_json::from_str(&ip(&["-j", "link", "show", "master", "podbr0"])).unwrap();
                if ports.as_array().unwrap().is_empty() {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "host end still on the bridge: {ports}");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let left: Vec<String> = std::fs::read_dir(ipam.join("podnet"))
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with("198."))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        });
    });
}
