//! CNI ADD/DEL runner: our plugin (built-in IPAM and host-local delegation) against Debian's
//! reference `bridge` + `host-local`, same conflist keys (only `type` changes), one exec driver
//! (env + stdin, as libcni runs plugins), in one run. Prints median/min/max per call.
//!
//! `cargo bench --bench cni` (N = 100; `CNI_BENCH_N=1000` for the growth check;
//! `CNI_BENCH_CONTAINER_IPV6=0` switches IPv6 off in every container namespace before its ADD,
//! for every variant, which takes the kernel's flooding of each new interface's IPv6 link-local
//! traffic (DAD, MLD, router solicitation) to every port of the bridge out of the figures).
//!
//! Safety: the runner thread unshares into a brand-new network namespace first; container
//! namespaces are pinned under `$TMPDIR/netsandbox-cni-bench-<pid>/` and removed at the end.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netsandbox::netns;
use serde_json::json;

const PLUGIN: &str = env!("CARGO_BIN_EXE_netsandbox-cni");
const DEBIAN: &str = "/usr/lib/cni";

fn exec(exe: &str, env: &[(&str, &str)], stdin: &[u8]) -> (Duration, bool) {
    let start = Instant::now();
    let mut cmd = Command::new(exe);
    cmd.env_clear().envs(env.iter().copied()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let Ok(mut child) = cmd.spawn() else { return (start.elapsed(), false) };
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    let ok = child.wait_with_output().is_ok_and(|o| {
        if !o.status.success() {
            eprintln!("{exe} failed: {}", String::from_utf8_lossy(&o.stdout));
        }
        o.status.success()
    });
    (start.elapsed(), ok)
}

fn stats(v: Vec<Duration>) -> String {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    if v.is_empty() {
        return "no samples".into();
    }
    // Growth within the run: the first and the last 100 calls (attachments 1-100 and the
    // last 100 on the bridge; for DEL, the bridge emptying).
    let med = |s: &[Duration]| {
        let mut s = s.to_vec();
        s.sort();
        s[s.len() / 2]
    };
    let growth = if v.len() >= 200 {
        format!("  first 100 {:7.2}  last 100 {:7.2}", ms(med(&v[..100])), ms(med(&v[v.len() - 100..])))
    } else {
        String::new()
    };
    let mut v = v;
    v.sort();
    format!("median {:7.2} ms  min {:7.2}  max {:7.2}{growth}", ms(v[v.len() / 2]), ms(v[0]), ms(v[v.len() - 1]))
}

/// The first three fields of /proc/loadavg: the machine is shared, so figures say how busy it was.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

struct Variant {
    label: &'static str,
    exe: String,
    plugin_type: &'static str,
    ipam_type: &'static str,
}

fn run_variant(v: &Variant, idx: usize, n: usize, base: &Path, cni_path: &str) -> (Vec<Duration>, Vec<Duration>) {
    let network = format!("bench{idx}");
    let bridge = format!("cnibr{idx}");
    let conf = json!({
        "cniVersion": "1.0.0",
        "name": network,
        "type": v.plugin_type,
        "bridge": bridge,
        "isGateway": true,
        "isDefaultGateway": true,
        "ipam": {"type": v.ipam_type, "subnet": format!("198.18.{}.0/22", idx * 4), "dataDir": base.join("ipam")}
    });
    let stdin = serde_json::to_vec(&conf).unwrap();
    let pins: Vec<PathBuf> = (0..n).map(|i| base.join(format!("v{idx}-{i}"))).collect();
    let no_v6 = std::env::var("CNI_BENCH_CONTAINER_IPV6").is_ok_and(|v| v == "0");
    for p in &pins {
        let ns = netns::create_pinned(p).unwrap();
        if no_v6 {
            for key in ["net.ipv6.conf.default.disable_ipv6", "net.ipv6.conf.all.disable_ipv6"] {
                netsandbox::sysctl::write(Some(&ns), key, "1").unwrap();
            }
        }
    }
    let mut adds = Vec::new();
    let mut dels = Vec::new();
    for (i, p) in pins.iter().enumerate() {
        let id = format!("bench{idx}c{i}");
        let ns = p.display().to_string();
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", id.as_str()),
            ("CNI_NETNS", ns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", cni_path),
        ];
        let (d, ok) = exec(&v.exe, &env, &stdin);
        assert!(ok, "{} ADD failed", v.label);
        adds.push(d);
    }
    for (i, p) in pins.iter().enumerate() {
        let id = format!("bench{idx}c{i}");
        let ns = p.display().to_string();
        let env = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", id.as_str()),
            ("CNI_NETNS", ns.as_str()),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", cni_path),
        ];
        let (d, ok) = exec(&v.exe, &env, &stdin);
        assert!(ok, "{} DEL failed", v.label);
        dels.push(d);
    }
    for p in &pins {
        let _ = netns::unpin(p);
    }
    let _ = Command::new("ip").args(["link", "del", &bridge]).output();
    settle();
    (adds, dels)
}

/// Waits (bounded) until the kernel has torn down what the variant left: its namespaces are
/// freed asynchronously, and with them the host ends, while holding RTNL for long stretches.
/// Without this wait the next variant's calls would run during the previous one's teardown
/// (the reference runs first, so ours paid for it).
fn settle() {
    let deadline = Instant::now() + Duration::from_secs(60);
    let links = || netsandbox::netlink::Socket::open().and_then(|s| s.links()).map(|l| l.len()).unwrap_or(0);
    while links() > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The last host ends go before their namespaces' final cleanup steps end.
    std::thread::sleep(Duration::from_secs(1));
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !Path::new(DEBIAN).join("bridge").exists() {
        eprintln!("skipped: containernetworking-plugins is not installed");
        return;
    }
    let n: usize = std::env::var("CNI_BENCH_N").ok().and_then(|s| s.parse().ok()).unwrap_or(100);
    let base = std::env::temp_dir().join(format!("netsandbox-cni-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let ours_dir = Path::new(PLUGIN).parent().unwrap().display().to_string();
    let cni_path = format!("{ours_dir}:{DEBIAN}");
    let variants = [
        Variant {
            label: "bridge + host-local (reference)",
            exe: format!("{DEBIAN}/bridge"),
            plugin_type: "bridge",
            ipam_type: "host-local",
        },
        Variant {
            label: "netsandbox-cni + host-local",
            exe: PLUGIN.into(),
            plugin_type: "netsandbox-cni",
            ipam_type: "host-local",
        },
        Variant {
            label: "netsandbox-cni + built-in IPAM",
            exe: PLUGIN.into(),
            plugin_type: "netsandbox-cni",
            ipam_type: "netsandbox",
        },
    ];
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
            netns::ensure_shared_base(&base).unwrap();
            println!("CNI ADD/DEL through one exec driver, N = {n} sandboxes on one bridge per variant");
            println!("load average at start: {}", loadavg());
            if std::env::var("CNI_BENCH_CONTAINER_IPV6").is_ok_and(|v| v == "0") {
                println!("IPv6 off in the container namespaces (CNI_BENCH_CONTAINER_IPV6=0)");
            }
            let mut medians = Vec::new();
            for (i, v) in variants.iter().enumerate() {
                let (adds, dels) = run_variant(v, i, n, &base, &cni_path);
                let med = |mut x: Vec<Duration>| {
                    x.sort();
                    x[x.len() / 2]
                };
                medians.push((med(adds.clone()), med(dels.clone())));
                println!("{:34} ADD {}", v.label, stats(adds));
                println!("{:34} DEL {}", "", stats(dels));
            }
            let (ra, rd) = medians[0];
            for (v, (a, d)) in variants.iter().zip(&medians).skip(1) {
                println!(
                    "{:34} ADD {:5.2}x faster, DEL {:5.2}x faster than the reference (medians)",
                    v.label,
                    ra.as_secs_f64() / a.as_secs_f64(),
                    rd.as_secs_f64() / d.as_secs_f64()
                );
            }
            println!("load average at end: {}", loadavg());
            let _ = netns::release_base(&base);
        });
    });
    let _ = std::fs::remove_dir_all(&base);
}
