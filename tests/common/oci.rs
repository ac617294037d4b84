//! Running OCI runtimes (crun, podman) from tests on this hybrid-cgroup host without touching
//! the machine's mounts, and the busybox bundle they run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `program` in a child with a private mount namespace whose cgroup2 mount is gone (crun
/// refuses hybrid hierarchies otherwise); the machine's mounts are untouched. Exits 125 when
/// the mount is there and cannot be unmounted.
pub fn without_cgroup2(program: &Path) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "sh", "-c"]);
    c.arg("if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified || exit 125; fi; exec \"$@\"");
    c.arg("sh").arg(program);
    c
}

/// An OCI bundle at `bundle` whose busybox (with `sh`, `nc` and `sed` applets) runs `args` with
/// its network namespace joined to `netns` (a pin). The rootfs is read-only, with tmpfs on /dev
/// and /tmp.
pub fn busybox_bundle(bundle: &Path, hostname: &str, netns: &Path, args: &[&str]) -> PathBuf {
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).expect("rootfs dir");
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in ["sh", "nc", "sed"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).expect("applet link");
    }
    let config = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": ["PATH=/bin"],
            "cwd": "/",
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": hostname,
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"] },
            { "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" },
                { "type": "ipc" },
                { "type": "uts" },
                { "type": "mount" },
                // The sandbox: the pin netsandbox made.
                { "type": "network", "path": netns.display().to_string() }
            ]
        }
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).expect("config.json");
    bundle.to_path_buf()
}
