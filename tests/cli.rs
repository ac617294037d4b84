//! The `netsandbox` binary end to end: every command is a new process, run with `--netns-root`
//! pointing at a private namespace pinned for the test, and `--base` under a temporary directory.

mod common;

use std::process::Command;
use std::sync::Mutex;

use common::cli::CliEnv as Env;
use netsandbox::netlink::Socket;
use netsandbox::netlink::link::{self, LinkRef, VethPeer};
use netsandbox::netns;
use serde_json::Value;

/// Tests here count mounts and share nothing else; running them one at a time keeps the counts
/// exact.
static SERIAL: Mutex<()> = Mutex::new(());

impl Env {
    fn host_has(&self, name: &str) -> bool {
        netns::run_in_result(&self.host, || Socket::open()?.link(LinkRef::Name(name)).map(drop)).is_ok()
    }
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn full_lifecycle_across_processes() {
    let _serial = lock();
    let env = Env::new("cli-life");
    assert_eq!(env.json(&["list"]), serde_json::json!([]));
    env.ok(&["create", "sb1"]);
    let e = env.fails(4, &["create", "sb1"]);
    assert!(e.starts_with("netsandbox: ") && e.contains("already exists") && e.lines().count() == 1, "{e}");
    assert_eq!(env.json(&["list"]), serde_json::json!(["sb1"]));

    netns::run_in_result(&env.host, || {
        let peer = VethPeer { name: "vc0".into(), ..Default::default() };
        Socket::open()?.execute(link::create_veth("vh0", None, &peer)?)
    })
    .expect("host veth");
    let added = env.json(&[
        "add-interface",
        "sb1",
        "vc0",
        "--prefix",
        "eth",
        "--address",
        "198.18.0.2/16",
        "--address6",
        "2001:db8::2/64",
        "--mac",
        "02:42:c6:12:00:02",
        "--mtu",
        "1450",
    ]);
    assert_eq!(added["name"], "eth0");
    assert!(!env.host_has("vc0"), "vc0 moved into the sandbox");
    let added = env.ok(&["add-veth", "sb1", "vh1", "--address", "203.0.113.2/24", "--no-host-link-local"]);
    assert_eq!(added.trim(), "eth1");
    assert!(env.host_has("vh1"), "host end of the veth stays in the origin");
    let host_v6 = netns::run_in(&env.host, || common::ip(&["-6", "addr", "show", "dev", "vh1"])).unwrap();
    assert!(!host_v6.contains("inet6"), "--no-host-link-local: {host_v6}");
    env.ok(&["set-gateway", "sb1", "198.18.255.254"]);
    env.ok(&["set-gateway", "sb1", "2001:db8::ffff"]);
    env.ok(&["add-route", "sb1", "192.0.2.0/24", "--via", "198.18.0.1"]);
    env.ok(&["add-route", "sb1", "198.51.100.0/24", "--dev", "eth1"]);
    env.ok(&["add-neighbor", "sb1", "198.18.0.9", "02:42:c6:12:00:09"]);
    env.fails(4, &["add-neighbor", "sb1", "198.18.0.9", "02:42:c6:12:00:09"]);
    env.ok(&["add-neighbor", "sb1", "198.18.0.9", "02:42:c6:12:00:0a", "--force"]);
    env.ok(&["alias", "add", "sb1", "lo", "203.0.113.100/32"]);

    // A fresh process reads all of it back from the kernel.
    let info = env.json(&["inspect", "sb1"]);
    let ifs = info["interfaces"].as_array().expect("interfaces");
    assert_eq!(ifs.len(), 2, "{info}");
    let eth0 = &ifs[0];
    assert_eq!(eth0["name"], "eth0");
    assert_eq!(eth0["origin_name"], "vc0");
    assert_eq!(eth0["mac"], "02:42:c6:12:00:02");
    assert_eq!(eth0["mtu"], 1450);
    assert_eq!(eth0["addresses"], serde_json::json!(["198.18.0.2/16", "2001:db8::2/64"]));
    assert!(eth0["statistics"]["tx_packets"].is_u64(), "{info}");
    assert_eq!(ifs[1]["addresses"], serde_json::json!(["203.0.113.2/24"]));
    assert_eq!(info["gateway"], "198.18.255.254");
    assert_eq!(info["gateway6"], "2001:db8::ffff");
    let routes = info["routes"].as_array().expect("routes");
    assert!(routes.iter().any(|r| r["destination"] == "192.0.2.0/24" && r["via"] == "198.18.0.1"), "{info}");
    assert!(routes.iter().any(|r| r["destination"] == "198.51.100.0/24" && r["dev"] == "eth1"), "{info}");
    let n = &info["neighbors"][0];
    assert_eq!((&n["ip"], &n["mac"], &n["link"]), (&"198.18.0.9".into(), &"02:42:c6:12:00:0a".into(), &"eth0".into()));
    assert_eq!(info["loopback_addresses"], serde_json::json!(["203.0.113.100/32"]));
    let text = env.ok(&["inspect", "sb1"]);
    assert!(text.contains(": eth0 veth up") && text.contains("gateway 198.18.255.254"), "{text}");

    // exec runs inside the sandbox and passes the exit status through.
    let out = env.cmd(&["exec", "sb1", "--", "sh", "-c", "exit 7"]).output().expect("exec");
    assert_eq!(out.status.code(), Some(7));
    let ns_self = env.ok(&["exec", "sb1", "--", "readlink", "/proc/self/ns/net"]);
    let ns_host = std::fs::read_link("/proc/self/ns/net").expect("readlink");
    assert_ne!(ns_self.trim(), ns_host.to_string_lossy(), "exec ran outside the sandbox");
    env.fails(127, &["exec", "sb1", "--", "/nonexistent/program"]);

    // And everything can be undone, each step in its own process.
    env.ok(&["delete-neighbor", "sb1", "198.18.0.9", "02:42:c6:12:00:0a"]);
    env.fails(3, &["delete-neighbor", "sb1", "198.18.0.9", "02:42:c6:12:00:0a"]);
    env.ok(&["remove-route", "sb1", "192.0.2.0/24", "--via", "198.18.0.1"]);
    env.ok(&["unset-gateway", "sb1", "2001:db8::ffff"]);
    env.ok(&["alias", "remove", "sb1", "lo", "203.0.113.100/32"]);
    env.ok(&["remove-interface", "sb1", "eth0"]);
    assert!(env.host_has("vc0"), "eth0 went back to the origin as vc0");
    env.fails(3, &["remove-interface", "sb1", "eth0"]);
    let info = env.json(&["inspect", "sb1"]);
    assert_eq!(info["interfaces"].as_array().map(Vec::len), Some(1), "{info}");
    assert!(info["gateway6"].is_null() && info["neighbors"] == serde_json::json!([]), "{info}");
    assert_eq!(info["loopback_addresses"], serde_json::json!([]));

    env.ok(&["destroy", "sb1"]);
    assert!(!env.host_has("vh1"), "the veth the sandbox created is gone");
    env.fails(3, &["destroy", "sb1"]);
    env.fails(3, &["inspect", "sb1"]);
    assert_eq!(env.json(&["list"]), serde_json::json!([]));
    // A file a crashed create left behind is not a sandbox; gc removes it.
    std::fs::write(env.base.join("stale"), b"").expect("stale file");
    assert_eq!(env.json(&["gc"])["removed"].as_array().map(Vec::len), Some(1));
    assert_eq!(common::nsfs_mounts_under(&env.base), 0);
    // With no pin left, gc released the base's bind mount too: nothing is mounted there.
    let base = std::fs::canonicalize(&env.base).expect("base");
    let mounted: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|p| std::path::Path::new(p).starts_with(&base))
        .collect();
    assert!(mounted.is_empty(), "left mounted: {mounted:?}");
}

/// The moved-in link's origin is recorded with it: a later process whose `--netns-root` is
/// another namespace still sends it home, never into its own namespace.
#[test]
fn moved_link_goes_home_whatever_netns_root_the_later_process_uses() {
    let _serial = lock();
    let env = Env::new("cli-origin");
    let other_pin = env.dir.path().join("ns").join("other");
    let other = netns::create_pinned(&other_pin).expect("second namespace");
    netns::run_in_result(&env.host, || {
        let peer = VethPeer { name: "vc0".into(), ..Default::default() };
        Socket::open()?.execute(link::create_veth("vh0", None, &peer)?)?;
        let s = Socket::open()?;
        let i = s.link(LinkRef::Name("vc0"))?.index;
        s.set_link(LinkRef::Index(i), &link::LinkChange::new().mac([2, 0x42, 0xc6, 0x12, 7, 7]).mtu(1400))
    })
    .expect("host veth");
    env.ok(&["create", "o1"]);
    env.ok(&["add-interface", "o1", "vc0", "--prefix", "eth", "--mac", "02:42:c6:12:00:02", "--mtu", "1300"]);
    let later = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_netsandbox"))
            .arg("--base")
            .arg(&env.base)
            .arg("--netns-root")
            .arg(&other_pin)
            .args(args)
            .output()
            .expect("run netsandbox");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let home = || {
        let shown = netns::run_in(&env.host, || common::ip(&["-j", "link", "show", "vc0"])).expect("ip");
        let v: Value = serde_json::from_str(&shown).expect("json");
        (v[0]["address"].as_str().map(str::to_owned), v[0]["mtu"].as_u64())
    };
    later(&["remove-interface", "o1", "eth0"]);
    assert!(env.host_has("vc0"), "back in the origin");
    assert_eq!(home(), (Some("02:42:c6:12:07:07".into()), Some(1400)), "with its MAC and MTU");
    let in_other = netns::run_in_result(&other, || Socket::open()?.links()).expect("links");
    assert_eq!(in_other.len(), 1, "nothing sent to the later process's namespace: {in_other:?}");
    env.ok(&["add-interface", "o1", "vc0", "--prefix", "eth"]);
    later(&["destroy", "o1"]);
    assert!(env.host_has("vc0"), "destroy sent it home too");
    assert_eq!(home(), (Some("02:42:c6:12:07:07".into()), Some(1400)));
    assert_eq!(netns::run_in_result(&other, || Socket::open()?.links()).expect("links").len(), 1);
    drop(other);
    netns::unpin(&other_pin).expect("unpin");
}

#[test]
fn bad_input_has_distinct_exit_codes() {
    let _serial = lock();
    let env = Env::new("cli-bad");
    for key in ["..", ".", "a/b", "../x", ""] {
        let e = env.fails(2, &["create", key]);
        assert!(e.starts_with("netsandbox: ") && e.lines().count() == 1, "{key:?}: {e}");
    }
    assert!(!env.base.join("x").exists() && !env.dir.path().join("x").exists());
    env.ok(&["create", "s"]);
    let e = env.fails(2, &["add-veth", "s", "vh0", "--address", "198.18.0.2"]);
    assert!(e.contains("198.18.0.2"), "{e}");
    env.fails(2, &["add-veth", "s", "vh0", "--address", "198.18.0.2/33"]);
    env.fails(2, &["add-veth", "s", "vh0", "--address6", "198.18.0.2/16"]);
    let e = env.fails(2, &["add-veth", "s", "vh0", "--mac", "02:42:zz:00:00:01"]);
    assert!(e.contains("MAC"), "{e}");
    env.fails(2, &["add-veth", "s", "vh0", "--mac", "01:00:5e:00:00:01"]);
    env.fails(2, &["add-veth", "s", "vh0", "--prefix", "eth1"]);
    env.fails(2, &["add-neighbor", "s", "198.18.0.9", "nope"]);
    env.fails(2, &["set-gateway", "s", "not-an-ip"]);
    // clap usage errors: neither --via nor --dev, an unknown subcommand.
    env.fails(2, &["add-route", "s", "192.0.2.0/24"]);
    env.fails(2, &["frobnicate"]);
    assert!(!env.host_has("vh0"), "nothing was created by rejected commands");
    env.fails(3, &["inspect", "missing"]);
    env.fails(3, &["add-veth", "missing", "vh0"]);
    env.fails(3, &["exec", "missing", "--", "true"]);
    env.fails(4, &["create", "s"]);
    // A route through a gateway nothing reaches is the kernel's refusal, reported with its reason.
    let e = env.fails(3, &["set-gateway", "s", "192.0.2.1"]);
    assert!(e.starts_with("netsandbox: ") && e.lines().count() == 1, "{e}");
    let e = Command::new(env!("CARGO_BIN_EXE_netsandbox"))
        .arg("--base")
        .arg(&env.base)
        .args(["--netns-root", "/nonexistent/ns", "list"])
        .output()
        .expect("run netsandbox");
    assert_eq!(e.status.code(), Some(3), "{}", String::from_utf8_lossy(&e.stderr));
    // Several at once; a missing name leaves all of them in place.
    for s in ["m1", "m2"] {
        env.ok(&["create", s]);
        env.ok(&["add-veth", s, &format!("vh-{s}")]);
    }
    env.fails(3, &["destroy", "m1", "missing", "m2"]);
    assert!(env.host_has("vh-m1") && env.host_has("vh-m2"), "nothing destroyed");
    assert_eq!(env.json(&["destroy", "m1", "m2"])["destroyed"], serde_json::json!(["m1", "m2"]));
    assert!(!env.host_has("vh-m1") && !env.host_has("vh-m2"), "both host ends gone");
    env.ok(&["destroy", "s"]);
    for sub in ["create", "inspect", "add-interface", "add-veth", "add-route", "alias", "exec", "demo", "gc", "bridge"]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_netsandbox")).args([sub, "--help"]).output().expect("help");
        assert!(out.status.success() && !out.stdout.is_empty(), "{sub} --help");
    }
}

#[test]
fn demo_runs_and_leaves_nothing_behind() {
    let _serial = lock();
    let env = Env::new("cli-demo");
    // The demo's temporary base goes under TMPDIR; point it at our directory to check it.
    let tmp = env.dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).expect("tmp");
    // Without --base (which the demo would honour instead).
    let out = Command::new(env!("CARGO_BIN_EXE_netsandbox"))
        .arg("--netns-root")
        .arg(&env.pin)
        .arg("demo")
        .env("TMPDIR", &tmp)
        .output()
        .expect("demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("TCP round trip") && stdout.contains("demo ok"), "{stdout}");
    let base = stdout.lines().find_map(|l| l.strip_prefix("demo base: ")).expect("demo names its base");
    assert!(base.starts_with(&tmp.display().to_string()), "{base} not under TMPDIR");
    assert_eq!(common::nsfs_mounts_under(&tmp), 0);
    assert_eq!(std::fs::read_dir(&tmp).map(Iterator::count).ok(), Some(0), "demo base removed");
    // The demo ran in its own namespace: the test's host namespace has only its loopback.
    let links = netns::run_in_result(&env.host, || Socket::open()?.links()).expect("links");
    assert_eq!(links.len(), 1, "{links:?}");
    let json = env.json(&["demo"]);
    assert_eq!(json["ok"], true);
    assert_eq!(json["round_trips"].as_array().map(Vec::len), Some(2));
}

/// `ip -j -d link show dev NAME` in the test's host namespace, as the one object it lists.
fn host_link_json(env: &Env, name: &str) -> Value {
    let s = netns::run_in(&env.host, || common::ip(&["-j", "-d", "link", "show", "dev", name])).unwrap();
    serde_json::from_str::<Value>(&s).unwrap()[0].clone()
}

#[test]
fn bridge_and_host_master_from_the_shell() {
    let _serial = lock();
    let env = Env::new("cli-bridge");
    let br = env.json(&["bridge", "add", "br0", "--address", "198.18.255.254/16", "--address", "2001:db8::ffff/64"]);
    assert_eq!(br["bridge"], "br0");
    let l = host_link_json(&env, "br0");
    assert_eq!(l["linkinfo"]["info_kind"], "bridge", "{l}");
    assert_eq!(l["ifindex"], br["ifindex"], "{l}");
    let a = netns::run_in(&env.host, || common::ip(&["-j", "addr", "show", "dev", "br0"])).unwrap();
    assert!(a.contains("\"198.18.255.254\"") && a.contains("\"2001:db8::ffff\""), "{a}");
    let e = env.fails(4, &["bridge", "add", "br0"]);
    assert!(e.contains("br0") && e.contains("already exists"), "{e}");
    env.ok(&["bridge", "add", "br0", "--exist-ok", "--address", "198.18.255.254/16"]);

    env.ok(&["create", "a"]);
    let added =
        env.json(&["add-veth", "a", "vh-a", "--host-master", "br0", "--host-hairpin", "--address", "198.18.0.2/16"]);
    assert_eq!((&added["name"], &added["host_master"]), (&"eth0".into(), &"br0".into()));
    let l = host_link_json(&env, "vh-a");
    assert_eq!(l["master"], "br0", "{l}");
    assert_eq!(l["linkinfo"]["info_slave_data"]["hairpin"], true, "{l}");
    // A missing bridge, a link that is not one, hairpin without a bridge: refused, nothing made.
    let e = env.fails(3, &["add-veth", "a", "vh-x", "--host-master", "nope0"]);
    assert!(e.contains("nope0"), "{e}");
    let e = env.fails(2, &["add-veth", "a", "vh-x", "--host-master", "vh-a"]);
    assert!(e.contains("vh-a") && e.contains("not a bridge"), "{e}");
    env.fails(2, &["add-veth", "a", "vh-x", "--host-hairpin"]);
    assert!(!env.host_has("vh-x"));

    // The gateway is the bridge's own address; a second one names the one there.
    env.ok(&["set-gateway", "a", "198.18.255.254"]);
    let e = env.fails(4, &["set-gateway", "a", "198.18.255.254"]);
    assert!(e.contains("already has default gateway 198.18.255.254"), "{e}");
    let e = env.fails(4, &["set-gateway", "a", "198.18.0.1"]);
    assert!(e.contains("198.18.255.254") && e.contains("198.18.0.1") && e.contains("sandbox a"), "{e}");

    let e = env.fails(2, &["bridge", "del", "vh-a"]);
    assert!(e.contains("not a bridge"), "{e}");
    assert!(env.host_has("vh-a"));
    env.ok(&["destroy", "a"]);
    assert!(!env.host_has("vh-a"));
    env.ok(&["bridge", "del", "br0"]);
    assert!(!env.host_has("br0"));
    env.fails(3, &["bridge", "del", "br0"]);
}

#[test]
fn messages_name_the_flags_and_the_sandbox() {
    let _serial = lock();
    let env = Env::new("cli-msg");
    env.ok(&["create", "s"]);
    let e = env.fails(2, &["add-veth", "s", "vh0", "--address", "2001:db8::2/64"]);
    assert!(e.contains("--address6") && !e.contains("address_ipv6"), "{e}");
    let e = env.fails(2, &["add-veth", "s", "vh0", "--address6", "198.18.0.2/16"]);
    assert!(e.contains("--address ") || e.contains("--address\n") || e.contains("with --address"), "{e}");
    for args in [
        &["add-route", "s", "192.0.2.0/24"][..],
        &["add-route", "s", "192.0.2.0/24", "--via", "198.18.0.1", "--dev", "eth0"],
        &["remove-route", "s", "192.0.2.0/24"],
    ] {
        let e = env.fails(2, args);
        assert!(e.contains("exactly one of --via / --dev"), "{args:?}: {e}");
    }
    let e = env.fails(3, &["set-gateway", "s", "192.0.2.1"]);
    assert!(e.contains("sandbox s") && e.contains("no interface") && e.contains("192.0.2.1"), "{e}");
    let e = env.fails(3, &["add-route", "s", "203.0.113.0/24", "--via", "192.0.2.1"]);
    assert!(e.contains("sandbox s") && e.contains("no interface"), "{e}");
    assert!(!env.host_has("vh0"));

    // A key longer than a file name may be is bad input, found before any system call: even
    // with a --netns-root that does not exist, and nothing is created.
    let long = "k".repeat(256);
    let e = env.fails(2, &["create", &long]);
    assert!(e.contains("longer than a file name"), "{e}");
    let out = Command::new(env!("CARGO_BIN_EXE_netsandbox"))
        .arg("--base")
        .arg(&env.base)
        .args(["--netns-root", "/nonexistent/ns", "create", &long])
        .output()
        .expect("run netsandbox");
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    env.ok(&["create", &"k".repeat(255)]);
    env.ok(&["destroy", &"k".repeat(255)]);

    // With --json a failure is JSON on stdout too.
    let out = env.run(&["--json", "destroy", "missing"]);
    assert_eq!(out.status.code(), Some(3));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!((&v["ok"], &v["error"]["code"], &v["error"]["kind"]), (&false.into(), &3.into(), &"not_found".into()));
    assert!(v["error"]["message"].as_str().unwrap().contains("missing"), "{v}");
    env.ok(&["destroy", "s"]);
}

#[test]
fn demo_honours_base_and_prints_clean_json() {
    let _serial = lock();
    let env = Env::new("cli-demo-base");
    let base = env.dir.path().join("demo-base");
    let out = env.cmd(&["--json", "demo"]).arg("--base").arg(&base).output().expect("demo");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON document");
    assert_eq!(v["ok"], true);
    let used = v["base"].as_str().expect("base");
    assert!(used.starts_with(&base.display().to_string()), "{used} not under {}", base.display());
    // Every duration is milliseconds with at most 3 decimals.
    let mut numbers = vec![&v["total_ms"]];
    numbers.extend(v["steps"].as_array().unwrap().iter().map(|s| &s["ms"]));
    numbers.extend(v["round_trips"].as_array().unwrap().iter().map(|s| &s["ms"]));
    for n in numbers {
        let text = n.to_string();
        let decimals = text.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(n.is_number() && decimals <= 3 && !text.contains('e'), "{text}");
    }
    // Nothing left: the demo's directory and the --base it made are gone.
    assert!(!base.exists(), "{} left behind", base.display());
    assert_eq!(common::nsfs_mounts_under(&base), 0);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&base.display().to_string()), "a mount under {} is left", base.display());
}
