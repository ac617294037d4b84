//! Black-box tests of the `netsandbox-cni` binary, run the way libcni runs a plugin (the
//! `CNI_*` environment, the configuration on stdin, the result or error on stdout), inside a
//! private host namespace with container namespaces the tests pin under a temporary directory.
//! Every assertion about the network is checked against the kernel with `ip -j`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{TempBase, in_private_netns, ip};
use netsandbox::netns::{self, NetNs};
use serde_json::{Value, json};

const PLUGIN: &str = env!("CARGO_BIN_EXE_netsandbox-cni");
const DEBIAN_PLUGINS: &str = "/usr/lib/cni";

/// What one plugin call printed and how it exited.
#[derive(Debug)]
struct Out {
    ok: bool,
    json: Value,
}

impl Out {
    fn code(&self) -> u64 {
        assert!(!self.ok, "expected a failure, got {}", self.json);
        self.json["code"].as_u64().unwrap_or_else(|| panic!("error without code: {}", self.json))
    }
    fn result(&self) -> &Value {
        assert!(self.ok, "expected success, got {}", self.json);
        &self.json
    }
}

/// Runs `exe` with `env` (only these variables plus PATH) and `stdin`.
fn exec(exe: &str, env: &[(&str, &str)], stdin: &Value) -> Out {
    let mut cmd = Command::new(exe);
    cmd.env_clear().env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // A plugin may answer (an environment error) without reading stdin: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin.to_string().as_bytes());
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let json = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{exe} printed non-JSON ({e}): {text}"))
    };
    if !out.status.success() {
        assert!(
            !json.is_null(),
            "{exe} failed without an error on stdout; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Out { ok: out.status.success(), json }
}

fn have_debian_plugins() -> bool {
    let ok = Path::new(DEBIAN_PLUGINS).join("host-local").exists();
    if !ok {
        eprintln!("skipped: containernetworking-plugins is not installed ({DEBIAN_PLUGINS}/host-local missing)");
    }
    ok
}

/// One test's world: a temp dir with container namespaces and the IPAM data dir.
struct World {
    base: TempBase,
    cni_path: String,
    pins: Vec<(PathBuf, Option<NetNs>)>,
}

impl World {
    fn new(tag: &str) -> World {
        let base = TempBase::new(tag);
        netns::ensure_shared_base(base.path()).unwrap();
        let ours = Path::new(PLUGIN).parent().unwrap().display().to_string();
        World { base, cni_path: format!("{ours}:{DEBIAN_PLUGINS}"), pins: Vec::new() }
    }
    fn data_dir(&self) -> String {
        self.base.path().join("ipam").display().to_string()
    }
    /// A new container namespace, pinned; returns its path (CNI_NETNS).
    fn container(&mut self, name: &str) -> String {
        let p = self.base.path().join(name);
        let ns = netns::create_pinned(&p).unwrap();
        self.pins.push((p.clone(), Some(ns)));
        p.display().to_string()
    }
    fn call(&self, cmd: &str, id: &str, netns: Option<&str>, ifname: &str, conf: &Value) -> Out {
        self.call_args(cmd, id, netns, ifname, conf, None)
    }
    fn call_args(
        &self,
        cmd: &str,
        id: &str,
        netns: Option<&str>,
        ifname: &str,
        conf: &Value,
        args: Option<&str>,
    ) -> Out {
        self.run_plugin(PLUGIN, cmd, id, netns, ifname, conf, args)
    }
    #[allow(clippy::too_many_arguments)]
    fn run_plugin(
        &self,
        exe: &str,
        cmd: &str,
        id: &str,
        netns: Option<&str>,
        ifname: &str,
        conf: &Value,
        args: Option<&str>,
    ) -> Out {
        let mut env = vec![
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_IFNAME", ifname),
            ("CNI_PATH", self.cni_path.as_str()),
        ];
        if let Some(n) = netns {
            env.push(("CNI_NETNS", n));
        }
        if let Some(a) = args {
            env.push(("CNI_ARGS", a));
        }
        exec(exe, &env, conf)
    }
    /// A bridge-plugin style configuration with the built-in IPAM.
    fn conf(&self, name: &str, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": name,
            "type": "netsandbox-cni",
            "bridge": "nsbr0",
            "isGateway": true,
            "ipam": {"type": "netsandbox", "subnet": "198.18.0.0/24", "dataDir": self.data_dir()}
        })
    }
    fn store(&self, network: &str) -> PathBuf {
        Path::new(&self.data_dir()).join(network)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for (p, ns) in self.pins.drain(..) {
            drop(ns);
            let _ = netns::unpin(&p);
        }
    }
}

/// `ip -j <args>` in the namespace pinned at `netns` (or the private host's when `None`).
fn ip_json(netns: Option<&str>, args: &[&str]) -> Value {
    let run = || {
        let mut full = vec!["-j"];
        full.extend_from_slice(args);
        serde_json::from_str::<Value>(&ip(&full)).unwrap()
    };
    match netns {
        Some(p) => netns::run_in(&NetNs::from_path(p).unwrap(), run).unwrap(),
        None => run(),
    }
}

/// Addresses (CIDR strings, global scope) of `dev` in `netns`.
fn addrs(netns: Option<&str>, dev: &str) -> Vec<String> {
    let v = ip_json(netns, &["addr", "show", "dev", dev]);
    v[0]["addr_info"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a["scope"] == "global")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn link_exists(netns: Option<&str>, dev: &str) -> bool {
    let v = ip_json(netns, &["link", "show"]);
    v.as_array().unwrap().iter().any(|l| l["ifname"] == dev)
}

fn host_links() -> Vec<String> {
    let v = ip_json(None, &["link", "show"]);
    v.as_array().unwrap().iter().map(|l| l["ifname"].as_str().unwrap().to_owned()).collect()
}

/// DEL returns before the kernel has finished deleting the pair (a detached reaper does it):
/// polls, bounded, until `cond` holds.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "not within 10 s: {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn default_via(netns: &str, v6: bool) -> Option<String> {
    let v = ip_json(Some(netns), &[if v6 { "-6" } else { "-4" }, "route", "show", "default"]);
    v.as_array()?.first()?["gateway"].as_str().map(str::to_owned)
}

#[test]
fn add_check_del_dual_stack() {
    in_private_netns(|| {
        let mut w = World::new("cni-life");
        let ns = w.container("c1");
        let mut conf = w.conf("life", "1.1.0");
        conf["isDefaultGateway"] = json!(true);
        conf["mtu"] = json!(1400);
        conf["hairpinMode"] = json!(true);
        conf["promiscMode"] = json!(true);
        conf["runtimeConfig"] = json!({"mac": "02:42:c6:12:00:05"});
        conf["ipam"] = json!({"type": "netsandbox", "dataDir": w.data_dir(),
            "ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "2001:db8::/64"}]]});
        let out = w.call("ADD", "c1", Some(&ns), "eth0", &conf);
        let r = out.result();
        assert_eq!(r["cniVersion"], "1.1.0");
        let ifs = r["interfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), 3);
        assert_eq!(ifs[0]["name"], "nsbr0");
        let host = ifs[1]["name"].as_str().unwrap().to_owned();
        assert!(host.starts_with("veth") && host.len() == 12, "{host}");
        assert_eq!(ifs[2], json!({"name": "eth0", "mac": "02:42:c6:12:00:05", "mtu": 1400, "sandbox": ns}));
        assert_eq!(r["ips"][0], json!({"address": "198.18.0.2/24", "gateway": "198.18.0.1", "interface": 2}));
        assert_eq!(r["ips"][1], json!({"address": "2001:db8::2/64", "gateway": "2001:db8::1", "interface": 2}));
        assert!(r["routes"].as_array().unwrap().contains(&json!({"dst": "0.0.0.0/0", "gw": "198.18.0.1"})));
        assert!(r["routes"].as_array().unwrap().contains(&json!({"dst": "::/0", "gw": "2001:db8::1"})));

        // Kernel: the container end, its addresses and routes; the bridge and its port.
        assert_eq!(addrs(Some(&ns), "eth0"), ["198.18.0.2/24", "2001:db8::2/64"]);
        let eth0 = &ip_json(Some(&ns), &["link", "show", "dev", "eth0"])[0];
        assert_eq!(eth0["address"], "02:42:c6:12:00:05");
        assert_eq!(eth0["mtu"], 1400);
        assert_eq!(default_via(&ns, false).as_deref(), Some("198.18.0.1"));
        assert_eq!(default_via(&ns, true).as_deref(), Some("2001:db8::1"));
        assert_eq!(addrs(None, "nsbr0"), ["198.18.0.1/24", "2001:db8::1/64"]);
        let br = &ip_json(None, &["-d", "link", "show", "dev", "nsbr0"])[0];
        assert!(br["flags"].as_array().unwrap().contains(&json!("PROMISC")), "{br}");
        let port = &ip_json(None, &["-d", "link", "show", "dev", &host])[0];
        assert_eq!(port["master"], "nsbr0");
        assert_eq!(port["linkinfo"]["info_slave_data"]["hairpin"], true, "{port}");
        assert_eq!(std::fs::read_to_string(w.store("life").join("198.18.0.2")).unwrap(), "c1\r\neth0");

        // CHECK passes against the result, then names what differs once the kernel changes.
        let mut with_prev = conf.clone();
        with_prev["prevResult"] = r.clone();
        assert!(w.call("CHECK", "c1", Some(&ns), "eth0", &with_prev).ok);
        netns::run_in(&NetNs::from_path(&ns).unwrap(), || ip(&["addr", "del", "2001:db8::2/64", "dev", "eth0"]))
            .unwrap();
        let bad = w.call("CHECK", "c1", Some(&ns), "eth0", &with_prev);
        assert_eq!(bad.code(), 110);
        assert!(bad.json["msg"].as_str().unwrap().contains("2001:db8::2/64"), "{}", bad.json);
        let mut no_prev = conf.clone();
        no_prev["prevResult"] = Value::Null;
        assert_eq!(w.call("CHECK", "c1", Some(&ns), "eth0", &no_prev).code(), 7);

        // ADD again on the same interface fails and changes nothing.
        let again = w.call("ADD", "c1", Some(&ns), "eth0", &conf);
        assert_eq!(again.code(), 107);
        assert!(link_exists(Some(&ns), "eth0"));

        // DEL: everything goes; DEL again (with and without prevResult) still succeeds.
        assert!(w.call("DEL", "c1", Some(&ns), "eth0", &with_prev).ok);
        // At once: the addresses are released and eth0, unless the reaper has deleted it
        // already, is marked retired and has no address left (unusable); then the reaper
        // deletes the pair, leaving only the loopback inside.
        // (Whole-table dumps: the reaper may delete the pair between two commands.)
        let links = ip_json(Some(&ns), &["link", "show"]);
        let all_addrs = ip_json(Some(&ns), &["addr", "show"]);
        for l in links.as_array().unwrap().iter().filter(|l| l["ifname"] != "lo") {
            assert_eq!(l["ifalias"], "netsandbox-cni retired", "{l}");
            let a = all_addrs.as_array().unwrap().iter().find(|a| a["ifname"] == l["ifname"]);
            assert!(a.is_none_or(|a| a["addr_info"].as_array().is_none_or(|x| x.is_empty())), "{a:?}");
        }
        eventually("host end deleted", || !host_links().contains(&host));
        eventually("container end deleted", || ip_json(Some(&ns), &["link", "show"]).as_array().unwrap().len() == 1);
        assert!(!w.store("life").join("198.18.0.2").exists());
        assert!(!w.store("life").join("2001:db8::2").exists());
        assert!(w.call("DEL", "c1", Some(&ns), "eth0", &with_prev).ok);
        assert!(w.call("DEL", "c1", Some(&ns), "eth0", &conf).ok);
        assert!(w.call("DEL", "c1", None, "eth0", &conf).ok);

        // The same container and interface can be added again at once, and CNI_ARGS IP= asks
        // for a given address.
        let again = w.call_args("ADD", "c1", Some(&ns), "eth0", &conf, Some("IgnoreUnknown=1;IP=198.18.0.77"));
        assert_eq!(again.result()["ips"][0]["address"], "198.18.0.77/24");
        assert_eq!(addrs(Some(&ns), "eth0")[0], "198.18.0.77/24");
        // DEL then ADD at once, before the reaper may have deleted the retired pair.
        assert!(w.call("DEL", "c1", Some(&ns), "eth0", &conf).ok);
        let r = w.call("ADD", "c1", Some(&ns), "eth0", &conf).result().clone();
        let host2 = r["interfaces"][1]["name"].as_str().unwrap().to_owned();
        eventually("only lo and the new eth0", || ip_json(Some(&ns), &["link", "show"]).as_array().unwrap().len() == 2);
        assert!(link_exists(Some(&ns), "eth0"));
        // A retired eth0 whose reaper never ran (marked by hand here) is cleared by ADD.
        assert!(w.call("DEL", "c1", Some(&ns), "eth0", &conf).ok);
        eventually("pair deleted", || !host_links().contains(&host2));
        let r = w.call("ADD", "c1", Some(&ns), "eth0", &conf).result().clone();
        let host3 = r["interfaces"][1]["name"].as_str().unwrap().to_owned();
        netns::run_in(&NetNs::from_path(&ns).unwrap(), || {
            ip(&["link", "set", "eth0", "alias", "netsandbox-cni retired"])
        })
        .unwrap();
        let r = w.call("ADD", "c2", Some(&ns), "eth0", &conf);
        assert!(r.ok, "{}", r.json);
        assert!(!host_links().contains(&host3), "the retired pair was deleted by ADD");
        assert!(w.call("DEL", "c2", Some(&ns), "eth0", &conf).ok);
        assert!(w.call("DEL", "c1", Some(&ns), "eth0", &conf).ok);
        eventually("nothing left inside", || ip_json(Some(&ns), &["link", "show"]).as_array().unwrap().len() == 1);
        assert!(
            std::fs::read_dir(w.store("life")).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("198."))
        );
    });
}

/// DELs in a row: each leaves its pair unusable at once (no address inside, the host end in
/// the retired device group), the address released, and one reaper deletes them all.
#[test]
fn dels_in_a_row_are_reaped_together() {
    in_private_netns(|| {
        let mut w = World::new("cni-reap");
        let conf = w.conf("reap", "1.0.0");
        let mut nss = Vec::new();
        let mut hosts = Vec::new();
        for i in 0..8 {
            let ns = w.container(&format!("r{i}"));
            let r = w.call("ADD", &format!("r{i}"), Some(&ns), "eth0", &conf).result().clone();
            hosts.push(r["interfaces"][1]["name"].as_str().unwrap().to_owned());
            nss.push(ns);
        }
        for (i, ns) in nss.iter().enumerate() {
            assert!(w.call("DEL", &format!("r{i}"), Some(ns), "eth0", &conf).ok);
            let inside = ip_json(Some(ns), &["addr", "show"]);
            assert!(
                inside
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|l| l["ifname"] == "lo" || l["addr_info"].as_array().unwrap().is_empty()),
                "{inside}"
            );
            assert!(!w.store("reap").join(format!("198.18.0.{}", i + 2)).exists());
            // Still there (not reaped yet): in the retired group, so nothing else mistakes it.
            let host = ip_json(None, &["-d", "link", "show"]);
            if let Some(l) = host.as_array().unwrap().iter().find(|l| l["ifname"] == hosts[i]) {
                assert_eq!(l["group"], "1853087262", "{l}");
            }
        }
        eventually("all pairs reaped", || {
            let links = host_links();
            hosts.iter().all(|h| !links.contains(h))
                && nss.iter().all(|ns| ip_json(Some(ns), &["link", "show"]).as_array().unwrap().len() == 1)
        });
        // The same attachments can come back at once.
        let r = w.call("ADD", "r0", Some(&nss[0]), "eth0", &conf);
        assert!(r.ok, "{}", r.json);
        assert!(w.call("DEL", "r0", Some(&nss[0]), "eth0", &conf).ok);
        eventually("reaped again", || ip_json(Some(&nss[0]), &["link", "show"]).as_array().unwrap().len() == 1);
    });
}

#[test]
fn del_when_the_netns_is_gone() {
    in_private_netns(|| {
        let mut w = World::new("cni-gone");
        let conf = w.conf("gone", "1.0.0");
        let ns = w.container("c1");
        let r = w.call("ADD", "c1", Some(&ns), "eth0", &conf).result().clone();
        let host = r["interfaces"][1]["name"].as_str().unwrap().to_owned();
        // The runtime removed the pin, but the namespace lives on (held by our handle), and so
        // does the pair: DEL must still delete the host end and release the address.
        let (path, handle) = w.pins.pop().unwrap();
        netns::unpin(&path).unwrap();
        assert!(host_links().contains(&host));
        let del = w.call("DEL", "c1", Some(&ns), "eth0", &conf);
        assert!(del.ok, "{}", del.json);
        assert!(!host_links().contains(&host));
        assert!(!w.store("gone").join("198.18.0.2").exists());
        // ... and without CNI_NETNS at all, and repeated.
        assert!(w.call("DEL", "c1", None, "eth0", &conf).ok);
        drop(handle);
    });
}

#[test]
fn version_and_result_versions() {
    in_private_netns(|| {
        let mut w = World::new("cni-ver");
        let v = exec(PLUGIN, &[("CNI_COMMAND", "VERSION")], &json!({"cniVersion": "0.4.0"}));
        assert_eq!(
            v.result(),
            &json!({"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
        );
        for (i, version) in ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"].iter().enumerate() {
            let ns = w.container(&format!("v{i}"));
            let mut conf = w.conf("vers", version);
            conf["mtu"] = json!(1450);
            let r = w.call("ADD", &format!("v{i}"), Some(&ns), "eth0", &conf).result().clone();
            assert_eq!(r["cniVersion"], *version);
            let has_version = r["ips"][0].get("version").is_some();
            assert_eq!(has_version, version.starts_with("0."), "{r}");
            assert_eq!(r["interfaces"][2].get("mtu").is_some(), *version == "1.1.0", "{r}");
            assert!(w.call("DEL", &format!("v{i}"), Some(&ns), "eth0", &conf).ok);
        }
    });
}

#[test]
fn error_codes_and_bad_input_change_nothing() {
    in_private_netns(|| {
        let mut w = World::new("cni-err");
        let ns = w.container("c1");
        let conf = w.conf("errs", "1.0.0");
        let before = host_links();
        // 4: environment.
        assert_eq!(exec(PLUGIN, &[], &conf).code(), 4);
        assert_eq!(exec(PLUGIN, &[("CNI_COMMAND", "FROB")], &conf).code(), 4);
        assert_eq!(w.call("ADD", "bad/id", Some(&ns), "eth0", &conf).code(), 4);
        assert_eq!(w.call("ADD", "c1", None, "eth0", &conf).code(), 4);
        assert_eq!(w.call("ADD", "c1", Some(&ns), "an-interface-name-too-long", &conf).code(), 4);
        assert_eq!(w.call_args("ADD", "c1", Some(&ns), "eth0", &conf, Some("noequals")).code(), 4);
        // 6: not JSON / wrong types.
        let garbage = exec(
            PLUGIN,
            &[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "c1"),
                ("CNI_NETNS", &ns),
                ("CNI_IFNAME", "eth0"),
                ("CNI_PATH", "/x"),
            ],
            &json!("not an object"),
        );
        assert_eq!(garbage.code(), 6);
        let mut c = conf.clone();
        c["mtu"] = json!("big");
        assert_eq!(w.call("ADD", "c1", Some(&ns), "eth0", &c).code(), 6);
        // 1: version.
        let mut c = conf.clone();
        c["cniVersion"] = json!("0.2.0");
        let e = w.call("ADD", "c1", Some(&ns), "eth0", &c);
        assert_eq!(e.code(), 1);
        assert_eq!(e.json["cniVersion"], "1.1.0");
        // 7: invalid values.
        for (k, v) in [("name", json!("../../etc")), ("bridge", json!("bridge/0")), ("mtu", json!(10))] {
            let mut c = conf.clone();
            c[k] = v;
            let e = w.call("ADD", "c1", Some(&ns), "eth0", &c);
            assert_eq!(e.code(), 7, "{k}: {}", e.json);
            assert_eq!(e.json["cniVersion"], "1.0.0");
        }
        let mut c = conf.clone();
        c["ipam"]["subnet"] = json!("198.18.0.0/31");
        assert_eq!(w.call("ADD", "c1", Some(&ns), "eth0", &c).code(), 7);
        let mut c = conf.clone();
        c["ipam"] = json!({"type": "no-such-ipam"});
        assert_eq!(w.call("ADD", "c1", Some(&ns), "eth0", &c).code(), 7);
        // 2: an unsupported field, refused rather than ignored.
        let mut c = conf.clone();
        c["enabledad"] = json!(true);
        let e = w.call("ADD", "c1", Some(&ns), "eth0", &c);
        assert_eq!(e.code(), 2, "{}", e.json);
        assert!(e.json["msg"].as_str().unwrap().contains("not supported"));
        // 3: the namespace does not exist.
        let missing = w.base.path().join("nope").display().to_string();
        assert_eq!(w.call("ADD", "c1", Some(&missing), "eth0", &conf).code(), 3);
        // 11: the store's lock is held (as host-local holds it) past the configured wait.
        let store = w.store("errs");
        std::fs::create_dir_all(&store).unwrap();
        let lock = std::fs::File::create(store.join("lock")).unwrap();
        let held = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
        let mut c = conf.clone();
        c["ipam"]["lockTimeoutMs"] = json!(50);
        let e = w.call("ADD", "c1", Some(&ns), "eth0", &c);
        assert_eq!(e.code(), 11, "{}", e.json);
        drop(held);
        assert_eq!(std::fs::read_dir(&store).unwrap().count(), 1, "only the lock file");
        std::fs::remove_dir_all(&store).unwrap();
        // 1 for STATUS/GC on a pre-1.1 configuration.
        assert_eq!(w.call("STATUS", "c1", None, "eth0", &conf).code(), 1);
        // Nothing changed anywhere: no bridge, no link, no store.
        assert_eq!(host_links(), before);
        assert!(!w.store("errs").exists());
        assert_eq!(ip_json(Some(&ns), &["link", "show"]).as_array().unwrap().len(), 1);
    });
}

#[test]
fn status_and_gc() {
    in_private_netns(|| {
        let mut w = World::new("cni-gc");
        let mut conf = w.conf("gcnet", "1.1.0");
        // A /29: gateway .1, addresses .2-.6.
        conf["ipam"]["subnet"] = json!("198.18.0.0/29");
        assert!(w.call("STATUS", "", None, "", &conf).ok);
        let mut hosts = Vec::new();
        let mut nss = Vec::new();
        for i in 0..5 {
            let ns = w.container(&format!("g{i}"));
            let r = w.call("ADD", &format!("g{i}"), Some(&ns), "eth0", &conf).result().clone();
            hosts.push(r["interfaces"][1]["name"].as_str().unwrap().to_owned());
            nss.push(ns);
        }
        let full = w.call("STATUS", "", None, "", &conf);
        assert_eq!(full.code(), 50);
        let ns = w.container("g5");
        assert!(!w.call("ADD", "g5", Some(&ns), "eth0", &conf).ok);
        assert!(!link_exists(Some(&ns), "eth0"));

        // GC keeps g0 and g3, releases the rest.
        let mut gc = conf.clone();
        gc["cni.dev/valid-attachments"] =
            json!([{"containerID": "g0", "ifname": "eth0"}, {"containerID": "g3", "ifname": "eth0"}]);
        let out = w.call("GC", "", None, "", &gc);
        assert!(out.ok, "{}", out.json);
        let links = host_links();
        for (i, h) in hosts.iter().enumerate() {
            assert_eq!(links.contains(h), i == 0 || i == 3, "{h}");
            assert_eq!(link_exists(Some(&nss[i]), "eth0"), i == 0 || i == 3);
        }
        let mut files: Vec<String> = std::fs::read_dir(w.store("gcnet"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("198."))
            .collect();
        files.sort();
        assert_eq!(files, ["198.18.0.2", "198.18.0.5"]);
        assert!(w.call("STATUS", "", None, "", &conf).ok);
    });
}

/// The masquerade chains of table `inet netsandbox-masq` in the current (private host)
/// namespace, from `nft -j`: chain name → the rule's source and destination prefixes.
fn masq_chains() -> Vec<(String, Vec<String>)> {
    let out = Command::new("nft").args(["-j", "list", "ruleset"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut chains: Vec<(String, Vec<String>)> = Vec::new();
    for o in v["nftables"].as_array().unwrap() {
        if o["chain"]["table"] == "netsandbox-masq" {
            let c = &o["chain"];
            assert_eq!(
                (c["family"].as_str(), c["hook"].as_str(), c["type"].as_str()),
                (Some("inet"), Some("postrouting"), Some("nat")),
                "{c}"
            );
            chains.push((c["name"].as_str().unwrap().to_owned(), Vec::new()));
        }
        if o["rule"]["table"] == "netsandbox-masq" {
            let r = &o["rule"];
            let nets: Vec<String> = r["expr"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| {
                    e["match"]["right"]["prefix"]
                        .as_object()
                        .map(|p| format!("{}/{}", p["addr"].as_str().unwrap(), p["len"]))
                })
                .collect();
            assert!(r["expr"].as_array().unwrap().iter().any(|e| e.get("masquerade").is_some()), "{r}");
            let c = chains.iter_mut().find(|c| c.0 == r["chain"].as_str().unwrap()).unwrap();
            c.1.extend(nets);
        }
    }
    chains.sort();
    chains
}

#[test]
fn ip_masq_add_check_del_gc() {
    in_private_netns(|| {
        if Command::new("nft").arg("--version").output().is_err() {
            eprintln!("skipped: nft is not installed (needed to read the ruleset back)");
            return;
        }
        let mut w = World::new("cni-masq");
        let mut conf = w.conf("masqnet", "1.1.0");
        conf["ipMasq"] = json!(true);
        conf["isDefaultGateway"] = json!(true);
        conf["ipam"] = json!({"type": "netsandbox", "dataDir": w.data_dir(),
            "ranges": [[{"subnet": "198.18.0.0/24"}], [{"subnet": "2001:db8::/64"}]]});
        assert!(masq_chains().is_empty());
        let ns1 = w.container("m1");
        let r1 = w.call("ADD", "m1", Some(&ns1), "eth0", &conf).result().clone();
        let ns2 = w.container("m2");
        w.call("ADD", "m2", Some(&ns2), "eth0", &conf).result();
        let both = [
            (
                "masq-masqnet:m1:eth0:0".to_owned(),
                vec!["198.18.0.0/24".to_owned(), "198.18.0.0/24".into(), "224.0.0.0/4".into()],
            ),
            (
                "masq-masqnet:m1:eth0:1".to_owned(),
                vec!["2001:db8::/64".to_owned(), "2001:db8::/64".into(), "ff00::/8".into()],
            ),
            (
                "masq-masqnet:m2:eth0:0".to_owned(),
                vec!["198.18.0.0/24".to_owned(), "198.18.0.0/24".into(), "224.0.0.0/4".into()],
            ),
            (
                "masq-masqnet:m2:eth0:1".to_owned(),
                vec!["2001:db8::/64".to_owned(), "2001:db8::/64".into(), "ff00::/8".into()],
            ),
        ];
        assert_eq!(masq_chains(), both);

        // Traffic: a namespace "outside" the bridge's subnets, routed through the host, sees
        // the host's address on its link as the source, not the container's.
        let outside = w.container("outside");
        let out_ns = NetNs::from_path(&outside).unwrap();
        ip(&["link", "add", "vout0", "type", "veth", "peer", "name", "vout1", "netns", &outside]);
        ip(&["addr", "add", "203.0.113.1/24", "dev", "vout0"]);
        ip(&["link", "set", "vout0", "up"]);
        netns::run_in(&out_ns, || {
            ip(&["addr", "add", "203.0.113.2/24", "dev", "vout1"]);
            ip(&["link", "set", "vout1", "up"]);
        })
        .unwrap();
        let listener = netns::run_in(&out_ns, || std::net::TcpListener::bind("203.0.113.2:0")).unwrap().unwrap();
        let port = listener.local_addr().unwrap().port();
        let c1 = NetNs::from_path(&ns1).unwrap();
        let dst = std::net::SocketAddr::from(([203, 0, 113, 2], port));
        let conn = netns::run_in(&c1, || std::net::TcpStream::connect_timeout(&dst, std::time::Duration::from_secs(5)))
            .unwrap()
            .unwrap();
        let (_, peer) = listener.accept().unwrap();
        assert_eq!(peer.ip().to_string(), "203.0.113.1", "masqueraded to the host's outgoing address");
        drop(conn);

        // CHECK sees the entries, and names the one that went missing.
        let mut with_prev = conf.clone();
        with_prev["prevResult"] = r1.clone();
        let ok = w.call("CHECK", "m1", Some(&ns1), "eth0", &with_prev);
        assert!(ok.ok, "{}", ok.json);
        // (As JSON: nft's command language does not take a `:` in a chain name.)
        let cmd = json!({"nftables": [{"delete": {"chain":
            {"family": "inet", "table": "netsandbox-masq", "name": "masq-masqnet:m1:eth0:1"}}}]});
        let mut nft = Command::new("nft").args(["-j", "-f", "-"]).stdin(Stdio::piped()).spawn().unwrap();
        nft.stdin.take().unwrap().write_all(cmd.to_string().as_bytes()).unwrap();
        let del = nft.wait().unwrap();
        assert!(del.success());
        let bad = w.call("CHECK", "m1", Some(&ns1), "eth0", &with_prev);
        assert_eq!(bad.code(), 110);
        assert!(bad.json["msg"].as_str().unwrap().contains("2001:db8::/64"), "{}", bad.json);

        // DEL removes m1's (what is left of them), and is idempotent.
        assert!(w.call("DEL", "m1", Some(&ns1), "eth0", &conf).ok);
        assert_eq!(masq_chains(), both[2..]);
        assert!(w.call("DEL", "m1", Some(&ns1), "eth0", &conf).ok);
        assert!(w.call("DEL", "m1", None, "eth0", &conf).ok);

        // GC: m2 not valid, its entries go, and the table with them.
        let ns3 = w.container("m3");
        w.call("ADD", "m3", Some(&ns3), "eth0", &conf).result();
        let mut gc = conf.clone();
        gc["cni.dev/valid-attachments"] = json!([{"containerID": "m3", "ifname": "eth0"}]);
        assert!(w.call("GC", "", None, "", &gc).ok);
        let names: Vec<String> = masq_chains().into_iter().map(|c| c.0).collect();
        assert_eq!(names, ["masq-masqnet:m3:eth0:0", "masq-masqnet:m3:eth0:1"]);
        assert!(w.call("DEL", "m3", Some(&ns3), "eth0", &conf).ok);
        let out = Command::new("nft").args(["-j", "list", "tables"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&out.stdout).contains("netsandbox-masq"), "table left behind");
        assert!(w.call("DEL", "m2", Some(&ns2), "eth0", &conf).ok);
    });
}

#[test]
fn delegation_to_host_local_and_static() {
    if !have_debian_plugins() {
        return;
    }
    in_private_netns(|| {
        let mut w = World::new("cni-deleg");
        let ns = w.container("c1");
        let mut conf = w.conf("deleg", "1.0.0");
        conf["ipam"] = json!({"type": "host-local", "subnet": "198.18.0.0/24", "dataDir": w.data_dir(),
            "routes": [{"dst": "203.0.113.0/24"}]});
        let r = w.call("ADD", "c1", Some(&ns), "eth0", &conf).result().clone();
        assert_eq!(r["ips"][0]["address"], "198.18.0.2/24");
        assert_eq!(addrs(Some(&ns), "eth0"), ["198.18.0.2/24"]);
        let routes = ip_json(Some(&ns), &["route", "show", "203.0.113.0/24"]);
        assert_eq!(routes[0]["gateway"], "198.18.0.1", "{routes}");
        assert_eq!(std::fs::read_to_string(w.store("deleg").join("198.18.0.2")).unwrap(), "c1\r\neth0");
        // CHECK goes to host-local too (it checks its store), then to the kernel.
        let mut with_prev = conf.clone();
        with_prev["prevResult"] = r.clone();
        let c = w.call("CHECK", "c1", Some(&ns), "eth0", &with_prev);
        assert!(c.ok, "{}", c.json);
        assert!(w.call("DEL", "c1", Some(&ns), "eth0", &conf).ok);
        let c = w.call("CHECK", "c1", Some(&ns), "eth0", &with_prev);
        assert!(!c.ok, "CHECK after DEL must fail");
        assert!(!w.store("deleg").join("198.18.0.2").exists());

        // A failure after IPAM (the bridge name is taken by a veth) DELs the delegate first.
        ip(&["link", "add", "nsbr1", "type", "veth", "peer", "name", "nsbr1p"]);
        let mut blocked = conf.clone();
        blocked["bridge"] = json!("nsbr1");
        let e = w.call("ADD", "c1", Some(&ns), "eth0", &blocked);
        assert!(!e.ok);
        assert!(!w.store("deleg").join("198.18.0.3").exists(), "{}", e.json);
        assert!(!link_exists(Some(&ns), "eth0"));
        ip(&["link", "del", "nsbr1"]);

        // GC on a 1.1.0 configuration with a delegate that knows neither GC nor 1.1.0 (Debian's
        // host-local 1.1): the stale attachment's address is released by a DEL in the
        // delegate's own version.
        let (g1, g2) = (w.container("g1"), w.container("g2"));
        assert!(w.call("ADD", "g1", Some(&g1), "eth0", &conf).ok);
        let stale = w.call("ADD", "g2", Some(&g2), "eth0", &conf).result().clone();
        let stale_ip = stale["ips"][0]["address"].as_str().unwrap().split('/').next().unwrap().to_owned();
        let mut gc = conf.clone();
        gc["cniVersion"] = json!("1.1.0");
        gc["cni.dev/valid-attachments"] = json!([{"containerID": "g1", "ifname": "eth0"}]);
        let out = w.call("GC", "", None, "", &gc);
        assert!(out.ok, "{}", out.json);
        assert!(!w.store("deleg").join(&stale_ip).exists());
        assert!(!link_exists(Some(&g2), "eth0"));
        assert!(link_exists(Some(&g1), "eth0"));
        assert!(w.call("DEL", "g1", Some(&g1), "eth0", &conf).ok);

        // static: the address comes from the configuration.
        let ns2 = w.container("c2");
        let mut st = w.conf("deleg", "1.0.0");
        st["ipam"] = json!({"type": "static", "addresses": [{"address": "198.18.0.77/24", "gateway": "198.18.0.1"}, {"address": "2001:db8::77/64"}]});
        let r = w.call("ADD", "c2", Some(&ns2), "eth0", &st).result().clone();
        assert_eq!(r["ips"].as_array().unwrap().len(), 2);
        assert_eq!(addrs(Some(&ns2), "eth0"), ["198.18.0.77/24", "2001:db8::77/64"]);
        assert!(w.call("DEL", "c2", Some(&ns2), "eth0", &st).ok);
        eventually("eth0 deleted", || !link_exists(Some(&ns2), "eth0"));
    });
}

#[test]
fn host_local_and_builtin_share_one_store() {
    if !have_debian_plugins() {
        return;
    }
    in_private_netns(|| {
        let mut w = World::new("cni-switch");
        let builtin = w.conf("shared", "1.0.0");
        let mut hostlocal = builtin.clone();
        hostlocal["ipam"]["type"] = json!("host-local");
        let (a, b, c) = (w.container("a"), w.container("b"), w.container("c"));
        let ip_of = |o: &Out| o.result()["ips"][0]["address"].as_str().unwrap().to_owned();
        assert_eq!(ip_of(&w.call("ADD", "a", Some(&a), "eth0", &hostlocal)), "198.18.0.2/24");
        // The built-in allocator sees host-local's reservation and continues its round robin.
        assert_eq!(ip_of(&w.call("ADD", "b", Some(&b), "eth0", &builtin)), "198.18.0.3/24");
        assert_eq!(std::fs::read_to_string(w.store("shared").join("last_reserved_ip.0")).unwrap(), "198.18.0.3");
        // ... and host-local sees the built-in's.
        assert_eq!(ip_of(&w.call("ADD", "c", Some(&c), "eth0", &hostlocal)), "198.18.0.4/24");
        // Releases cross over too.
        assert!(w.call("DEL", "a", Some(&a), "eth0", &builtin).ok);
        assert!(!w.store("shared").join("198.18.0.2").exists());
        assert!(w.call("DEL", "b", Some(&b), "eth0", &hostlocal).ok);
        assert!(!w.store("shared").join("198.18.0.3").exists());
        assert!(w.call("DEL", "c", Some(&c), "eth0", &builtin).ok);
        let left: Vec<_> = std::fs::read_dir(w.store("shared"))
            .unwrap()
            .filter_map(|e| {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                n.starts_with("198.").then_some(n)
            })
            .collect();
        assert!(left.is_empty(), "{left:?}");
    });
}

#[test]
fn chained_tuning_and_portmap() {
    if !have_debian_plugins() {
        return;
    }
    in_private_netns(|| {
        let mut w = World::new("cni-chain");
        let ns = w.container("c1");
        let ours = w.conf("chain", "1.0.0");
        let r = w.call("ADD", "c1", Some(&ns), "eth0", &ours).result().clone();

        let tuning = json!({"cniVersion": "1.0.0", "name": "chain", "type": "tuning",
            "sysctl": {"net.ipv4.conf.eth0.arp_ignore": "1"}, "prevResult": r});
        let t = w.run_plugin(&format!("{DEBIAN_PLUGINS}/tuning"), "ADD", "c1", Some(&ns), "eth0", &tuning, None);
        let tr = t.result().clone();
        assert_eq!(tr["ips"], r["ips"], "tuning passes our result through");
        let val = netns::run_in(&NetNs::from_path(&ns).unwrap(), || {
            std::fs::read_to_string("/proc/sys/net/ipv4/conf/eth0/arp_ignore").unwrap()
        })
        .unwrap();
        assert_eq!(val.trim(), "1");

        let iptables = Command::new("iptables").arg("--version").output().is_ok_and(|o| o.status.success());
        let mut last = tr.clone();
        let portmap = json!({"cniVersion": "1.0.0", "name": "chain", "type": "portmap",
            "capabilities": {"portMappings": true},
            "runtimeConfig": {"portMappings": [{"hostPort": 18080, "containerPort": 80, "protocol": "tcp"}]},
            "prevResult": tr});
        if iptables {
            let p = w.run_plugin(&format!("{DEBIAN_PLUGINS}/portmap"), "ADD", "c1", Some(&ns), "eth0", &portmap, None);
            last = p.result().clone();
            assert_eq!(last["ips"], r["ips"], "portmap passes the chain's result through");
        } else {
            eprintln!("portmap part skipped: iptables is not installed (Debian's portmap 1.1 needs it)");
        }

        // CHECK with the chain's final result, then DEL in reverse order.
        let mut check = ours.clone();
        check["prevResult"] = last.clone();
        let c = w.call("CHECK", "c1", Some(&ns), "eth0", &check);
        assert!(c.ok, "{}", c.json);
        if iptables {
            let mut pdel = portmap.clone();
            pdel["prevResult"] = last.clone();
            assert!(w.run_plugin(&format!("{DEBIAN_PLUGINS}/portmap"), "DEL", "c1", Some(&ns), "eth0", &pdel, None).ok);
        }
        assert!(w.run_plugin(&format!("{DEBIAN_PLUGINS}/tuning"), "DEL", "c1", Some(&ns), "eth0", &tuning, None).ok);
        assert!(w.call("DEL", "c1", Some(&ns), "eth0", &check).ok);
        eventually("eth0 deleted", || !link_exists(Some(&ns), "eth0"));
    });
}

#[test]
fn fifty_parallel_adds() {
    in_private_netns(|| {
        let mut w = World::new("cni-par");
        let conf = w.conf("par", "1.1.0");
        let nss: Vec<String> = (0..50).map(|i| w.container(&format!("p{i}"))).collect();
        let w = &w;
        let results: Vec<Value> = std::thread::scope(|s| {
            let handles: Vec<_> = nss
                .iter()
                .enumerate()
                .map(|(i, ns)| {
                    let conf = &conf;
                    s.spawn(move || w.call("ADD", &format!("p{i}"), Some(ns), "eth0", conf).result().clone())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut ips: Vec<String> =
            results.iter().map(|r| r["ips"][0]["address"].as_str().unwrap().to_owned()).collect();
        ips.sort();
        ips.dedup();
        assert_eq!(ips.len(), 50);
        for (ns, r) in nss.iter().zip(&results) {
            assert_eq!(addrs(Some(ns), "eth0"), [r["ips"][0]["address"].as_str().unwrap()]);
        }
        let bridges: Vec<Value> = ip_json(None, &["link", "show", "type", "bridge"]).as_array().unwrap().clone();
        assert_eq!(bridges.len(), 1);
        assert_eq!(addrs(None, "nsbr0"), ["198.18.0.1/24"]);
        let ports = ip_json(None, &["link", "show", "master", "nsbr0"]);
        if ports.as_array().unwrap().len() != 50 {
            let all = ip_json(None, &["-d", "link", "show", "type", "veth"]);
            for l in all.as_array().unwrap() {
                if l.get("master").is_none() {
                    eprintln!("loose port: {l}");
                }
            }
        }
        assert_eq!(ports.as_array().unwrap().len(), 50);
        let files = std::fs::read_dir(w.store("par"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("198."))
            .count();
        assert_eq!(files, 50);
        for (i, ns) in nss.iter().enumerate() {
            assert!(w.call("DEL", &format!("p{i}"), Some(ns), "eth0", &conf).ok);
        }
        eventually("every port deleted", || {
            ip_json(None, &["link", "show", "master", "nsbr0"]).as_array().unwrap().is_empty()
        });
    });
}

/// The issue #16 helpers on a namespace the plugin configured: extract the result back from
/// the kernel, strip the link, configure it again from what was taken.
#[test]
fn result_helpers_on_a_plugin_configured_namespace() {
    use netsandbox::cni::{CniResult, link};
    use netsandbox::sandbox::NetnsSandbox;
    in_private_netns(|| {
        let mut w = World::new("cni-link");
        let ns = w.container("c1");
        let mut conf = w.conf("linknet", "1.1.0");
        conf["isDefaultGateway"] = json!(true);
        let out = w.call("ADD", "c1", Some(&ns), "eth0", &conf).result().clone();
        let plugin = CniResult::from_json(&out).unwrap();
        let sb = NetnsSandbox::attach(&ns).unwrap();
        let got = link::extract(&sb).unwrap();
        assert_eq!(got.interfaces.len(), 1);
        // The kernel also tells the MTU, which the plugin reports only when configured.
        assert_eq!(got.interfaces[0].mtu, Some(1500));
        assert_eq!(got.interfaces[0], netsandbox::cni::Interface { mtu: Some(1500), ..plugin.interfaces[2].clone() });
        assert_eq!(
            got.ips,
            plugin
                .ips
                .iter()
                .map(|i| netsandbox::cni::IpConfig { interface: Some(0), ..i.clone() })
                .collect::<Vec<_>>()
        );
        assert_eq!(got.routes, plugin.routes);

        let taken = link::strip_link(&sb, "eth0").unwrap();
        assert!(addrs(Some(&ns), "eth0").is_empty());
        assert_eq!(default_via(&ns, false), None);
        link::configure_link(&sb, &taken, 0).unwrap();
        assert_eq!(addrs(Some(&ns), "eth0"), ["198.18.0.2/24"]);
        assert_eq!(default_via(&ns, false).as_deref(), Some("198.18.0.1"));
        drop(sb);
        assert!(w.call("DEL", "c1", Some(&ns), "eth0", &conf).ok);
    });
}

/// Daemons a test started (killed and reaped on drop, also when an assertion fails).
struct Daemons(Vec<std::process::Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Delegation to Debian's `dhcp` IPAM plugin: its daemon (in the private host namespace) runs
/// a DHCP client on the container's interface, against busybox's `udhcpd` on the bridge, so
/// ADD makes the pair before asking IPAM and then applies the lease.
#[test]
fn delegation_to_dhcp() {
    let dhcp = Path::new(DEBIAN_PLUGINS).join("dhcp");
    let busybox = Path::new("/bin/busybox");
    if !have_debian_plugins() || !dhcp.exists() || !busybox.exists() {
        eprintln!("skipped: needs {} and busybox-static's /bin/busybox", dhcp.display());
        return;
    }
    in_private_netns(|| {
        let mut w = World::new("cni-dhcp");
        let dir = w.base.path().to_owned();
        ip(&["link", "add", "cnidhcp0", "type", "bridge"]);
        ip(&["addr", "add", "198.51.100.1/24", "dev", "cnidhcp0"]);
        ip(&["link", "set", "cnidhcp0", "up"]);
        let leases = dir.join("udhcpd.leases");
        std::fs::write(&leases, "").unwrap();
        let udhcpd_conf = dir.join("udhcpd.conf");
        std::fs::write(
            &udhcpd_conf,
            format!(
                "start 198.51.100.100\nend 198.51.100.150\ninterface cnidhcp0\nlease_file {}\npidfile {}\n\
                 opt subnet 255.255.255.0\nopt router 198.51.100.1\nopt lease 3600\n",
                leases.display(),
                dir.join("udhcpd.pid").display()
            ),
        )
        .unwrap();
        let sock = dir.join("dhcp.sock");
        let quiet = || (Stdio::null(), Stdio::null(), Stdio::null());
        let (i1, o1, e1) = quiet();
        let (i2, o2, e2) = quiet();
        let _daemons = Daemons(vec![
            Command::new(busybox)
                .args(["udhcpd", "-f"])
                .arg(&udhcpd_conf)
                .stdin(i1)
                .stdout(o1)
                .stderr(e1)
                .spawn()
                .unwrap(),
            Command::new(&dhcp)
                .args(["daemon", "-socketpath"])
                .arg(&sock)
                .stdin(i2)
                .stdout(o2)
                .stderr(e2)
                .spawn()
                .unwrap(),
        ]);
        eventually("the dhcp daemon listens", || sock.exists());

        let ns = w.container("c1");
        let mut conf = w.conf("dhcpnet", "1.0.0");
        conf["bridge"] = json!("cnidhcp0");
        conf["isGateway"] = json!(false);
        conf["isDefaultGateway"] = json!(false);
        conf["ipam"] = json!({"type": "dhcp", "daemonSocketPath": sock.display().to_string()});
        let r = w.call("ADD", "c1", Some(&ns), "eth0", &conf).result().clone();
        let addr = r["ips"][0]["address"].as_str().unwrap().to_owned();
        let host: std::net::Ipv4Addr = addr.split('/').next().unwrap().parse().unwrap();
        assert!(addr.ends_with("/24") && (100..=150).contains(&host.octets()[3]), "{r}");
        assert_eq!(r["ips"][0]["gateway"], "198.51.100.1", "{r}");
        // The kernel has the lease's address and the default route the lease's router gives.
        assert_eq!(addrs(Some(&ns), "eth0"), [addr.as_str()]);
        assert_eq!(default_via(&ns, false).as_deref(), Some("198.51.100.1"));
        let mut with_prev = conf.clone();
        with_prev["prevResult"] = r.clone();
        let c = w.call("CHECK", "c1", Some(&ns), "eth0", &with_prev);
        assert!(c.ok, "{}", c.json);
        // DEL releases the lease through the daemon; a second DEL is fine.
        let d = w.call("DEL", "c1", Some(&ns), "eth0", &conf);
        assert!(d.ok, "{}", d.json);
        // The container end is retired (no address) or already deleted: one look at both.
        let left = ip_json(Some(&ns), &["addr", "show"]);
        let global = left.as_array().unwrap().iter().filter(|l| l["ifname"] == "eth0").flat_map(|l| {
            l["addr_info"].as_array().cloned().unwrap_or_default().into_iter().filter(|a| a["scope"] == "global")
        });
        assert_eq!(global.count(), 0, "{left}");
        assert!(w.call("DEL", "c1", Some(&ns), "eth0", &conf).ok);
        eventually("eth0 deleted", || !link_exists(Some(&ns), "eth0"));
        ip(&["link", "del", "cnidhcp0"]);
    });
}
