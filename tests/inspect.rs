//! `netsandbox --json inspect` compared field by field with iproute2's JSON (`ip -j -d link`,
//! `ip -j addr`, `ip -j route`, `ip -j -6 route`, `ip -j neigh`) run inside the same sandbox.

mod common;

use std::collections::BTreeSet;

use common::cli::CliEnv as Env;
use netsandbox::netlink::Socket;
use netsandbox::netlink::link::{self, LinkRef, Vxlan};
use netsandbox::netns;
use serde_json::Value;

impl Env {
    /// iproute2's JSON from inside sandbox `sb`.
    fn ip(&self, sb: &str, args: &[&str]) -> Value {
        let mut all = vec!["exec", sb, "--", "ip", "-j"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("ip JSON")
    }
}

fn has_flag(l: &Value, flag: &str) -> bool {
    l["flags"].as_array().is_some_and(|f| f.iter().any(|x| x == flag))
}

/// iproute2's route destination as a CIDR ("default" and bare host addresses expanded).
fn cidr(dst: &str, v6: bool) -> String {
    match dst {
        "default" if v6 => "::/0".into(),
        "default" => "0.0.0.0/0".into(),
        d if d.contains('/') => d.into(),
        d if v6 => format!("{d}/128"),
        d => format!("{d}/32"),
    }
}

/// A JSON value as comparable text (absent and null alike).
fn opt(v: &Value) -> String {
    v.to_string()
}

/// What iproute2 shows inside the sandbox.
struct Kernel {
    links: Value,
    state: Vec<(Value, Value)>,
    addrs: Value,
    routes4: Value,
    routes6: Value,
    neigh: Value,
}

impl Kernel {
    fn same(&self, other: &Kernel) -> bool {
        self.state == other.state
            && self.addrs == other.addrs
            && self.routes4 == other.routes4
            && self.routes6 == other.routes6
            && self.neigh == other.neigh
    }
}

#[test]
fn inspect_json_matches_iproute2() {
    let env = Env::new("inspect-vs-ip");
    env.ok(&["create", "s"]);
    env.ok(&["add-interface", "s", "--bridge", "--prefix", "br"]);
    env.ok(&[
        "add-veth",
        "s",
        "vh-s",
        "--address",
        "198.18.0.2/16",
        "--address6",
        "2001:db8::2/64",
        "--mac",
        "02:42:c6:12:00:02",
        "--mtu",
        "1450",
    ]);
    env.ok(&["add-veth", "s", "vh-p", "--master", "br0", "--prefix", "port"]);
    // A vxlan moved in from the host (kind vxlan, its VNI).
    netns::run_in_result(&env.host, || {
        let v = Vxlan { vni: 4097, local: None, port: 4789, underlay: None, learning: false };
        Socket::open()?.execute(link::create_vxlan("vx-h", &v)?)
    })
    .expect("host vxlan");
    env.ok(&["add-interface", "s", "vx-h", "--prefix", "vx"]);
    env.ok(&["set-gateway", "s", "198.18.255.254"]);
    env.ok(&["set-gateway", "s", "2001:db8::ffff"]);
    env.ok(&["add-route", "s", "192.0.2.0/24", "--via", "198.18.0.1"]);
    env.ok(&["add-route", "s", "198.51.100.0/24", "--dev", "eth0"]);
    env.ok(&["add-neighbor", "s", "198.18.0.9", "02:42:c6:12:00:09"]);
    env.ok(&["add-neighbor", "s", "2001:db8::9", "02:42:c6:12:00:0a"]);
    // A learned-looking entry in another state.
    env.ok(&[
        "exec",
        "s",
        "--",
        "ip",
        "neigh",
        "replace",
        "198.18.0.7",
        "lladdr",
        "02:42:c6:12:00:07",
        "dev",
        "eth0",
        "nud",
        "stale",
    ]);

    // Carrier, operational state, IPv6 link-local addresses, their routes and DAD settle
    // asynchronously: take our inspection between two equal iproute2 snapshots of everything
    // compared, polling with a bound. (Bridge port timers in `ip -d link` tick: links are
    // compared by state and flags only.)
    let snapshot = || -> Kernel {
        let links = env.ip("s", &["-d", "link"]);
        let state = links.as_array().unwrap().iter().map(|l| (l["operstate"].clone(), l["flags"].clone())).collect();
        Kernel {
            links,
            state,
            addrs: env.ip("s", &["addr"]),
            routes4: env.ip("s", &["route"]),
            routes6: env.ip("s", &["-6", "route"]),
            neigh: env.ip("s", &["neigh"]),
        }
    };
    let mut attempts = 0;
    let (ours, k) = loop {
        let before = snapshot();
        let ours = env.json(&["inspect", "s"]);
        let after = snapshot();
        if before.same(&after) {
            break (ours, after);
        }
        attempts += 1;
        assert!(attempts < 100, "kernel state never settled: {:?}", after.addrs);
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let ip_links = k.links.clone();
    let mut links: Vec<Value> = ours["interfaces"].as_array().unwrap().clone();
    links.push(ours["loopback"].clone());
    assert!(!ours["loopback"].is_null(), "loopback listed: {ours}");

    // Links, field by field.
    let ip_links = ip_links.as_array().unwrap();
    assert_eq!(ip_links.len(), links.len(), "{ours}");
    for il in ip_links {
        let name = il["ifname"].as_str().unwrap();
        let l = links.iter().find(|l| l["name"] == name).unwrap_or_else(|| panic!("{name} missing: {ours}"));
        let ctx = format!("{name}: ours {l} ip {il}");
        assert_eq!(l["ifindex"], il["ifindex"], "{ctx}");
        assert_eq!(l["mtu"], il["mtu"], "{ctx}");
        assert_eq!(l["mac"], il["address"], "{ctx}");
        assert_eq!(l["oper_state"], il["operstate"], "{ctx}");
        assert_eq!(l["up"], has_flag(il, "UP"), "{ctx}");
        assert_eq!(l["lower_up"], has_flag(il, "LOWER_UP"), "{ctx}");
        assert_eq!(l["master"], il["master"], "{ctx}");
        let kind = il["linkinfo"]["info_kind"].as_str().unwrap_or(if name == "lo" { "loopback" } else { "none" });
        assert_eq!(l["kind"], kind, "{ctx}");
        if kind == "veth" {
            // The peer is in the origin: ip gives its index and the namespace id.
            assert_eq!(l["peer"]["ifindex"], il["link_index"], "{ctx}");
            assert_eq!(l["peer"]["netnsid"], il["link_netnsid"], "{ctx}");
            assert!(l["peer"]["netnsid"].is_i64(), "{ctx}");
        }
        if kind == "vxlan" {
            assert_eq!(l["vxlan_id"], il["linkinfo"]["info_data"]["id"], "{ctx}");
            assert_eq!(l["vxlan_id"], 4097, "{ctx}");
        }
    }
    let kinds: BTreeSet<&str> = links.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, BTreeSet::from(["bridge", "loopback", "veth", "vxlan"]));

    // Addresses: every one ip lists, link-local ones included and flagged.
    let ip_addrs = k.addrs.clone();
    let mut saw_link_local = false;
    for il in ip_addrs.as_array().unwrap() {
        let name = il["ifname"].as_str().unwrap();
        let l = links.iter().find(|l| l["name"] == name).unwrap();
        let ours_all = l["all_addresses"].as_array().unwrap();
        let theirs = il["addr_info"].as_array().unwrap();
        assert_eq!(ours_all.len(), theirs.len(), "{name}: ours {ours_all:?} ip {theirs:?}");
        for a in theirs {
            let o = ours_all
                .iter()
                .find(|o| o["local"] == a["local"] && o["prefixlen"] == a["prefixlen"])
                .unwrap_or_else(|| panic!("{name}: {a} missing from {ours_all:?}"));
            assert_eq!(o["family"], a["family"], "{a}");
            assert_eq!(o["scope"], a["scope"], "{a}");
            assert_eq!(o["nodad"], a["nodad"] == true, "{a}");
            assert_eq!(o["tentative"], a["tentative"] == true, "{a}");
            let ll = a["local"].as_str().unwrap().starts_with("fe80:");
            assert_eq!(o["link_local"], ll, "{a}");
            saw_link_local |= ll;
        }
    }
    assert!(saw_link_local, "some interface has a kernel link-local address: {ours}");

    // Routes: the main table of both families, with dev, metric, protocol and scope.
    let mut theirs = BTreeSet::new();
    for (v6, table) in [(false, &k.routes4), (true, &k.routes6)] {
        for r in table.as_array().unwrap() {
            theirs.insert((
                cidr(r["dst"].as_str().unwrap(), v6),
                opt(&r["gateway"]),
                opt(&r["dev"]),
                opt(&r["metric"]),
                r["protocol"].as_str().unwrap_or("unspec").to_owned(),
                r["scope"].as_str().unwrap_or("global").to_owned(),
                r["type"].as_str().unwrap_or("unicast").to_owned(),
            ));
        }
    }
    let ours_routes: BTreeSet<_> = ours["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["destination"].as_str().unwrap().to_owned(),
                opt(&r["via"]),
                opt(&r["dev"]),
                opt(&r["metric"]),
                r["protocol"].as_str().unwrap().to_owned(),
                r["scope"].as_str().unwrap().to_owned(),
                r["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // Subnet routes of both families, link-local, the two defaults, the two static routes.
    assert!(theirs.len() >= 8, "{theirs:?}");
    assert_eq!(ours_routes, theirs);
    // The default routes and the route via a gateway name their device.
    for r in ours["routes"].as_array().unwrap() {
        assert!(r["dev"].is_string(), "{r}");
    }
    assert!(ours["routes"].as_array().unwrap().iter().any(|r| r["default"] == true && r["dev"] == "eth0"));
    // Each interface's routes are the table's routes out of it.
    let eth0 = links.iter().find(|l| l["name"] == "eth0").unwrap();
    let eth0_routes = eth0["routes"].as_array().unwrap();
    let n = ours["routes"].as_array().unwrap().iter().filter(|r| r["dev"] == "eth0").count();
    assert_eq!(eth0_routes.len(), n);
    assert!(eth0_routes.iter().any(|r| r["destination"] == "192.0.2.0/24" && r["via"] == "198.18.0.1"));

    // Neighbors: family and state.
    let theirs: BTreeSet<_> = k
        .neigh
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (opt(&n["dst"]), opt(&n["dev"]), opt(&n["lladdr"]), opt(&n["state"])))
        .collect();
    let ours_n: BTreeSet<_> = ours["neighbors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (opt(&n["ip"]), opt(&n["link"]), opt(&n["mac"]), opt(&n["state"])))
        .collect();
    assert_eq!(ours_n.len(), 3, "{ours_n:?}");
    assert_eq!(ours_n, theirs);
    let fam =
        |ip: &str| ours["neighbors"].as_array().unwrap().iter().find(|n| n["ip"] == ip).unwrap()["family"].clone();
    assert_eq!((fam("198.18.0.9"), fam("2001:db8::9")), ("inet".into(), "inet6".into()));
    let stale = ours["neighbors"].as_array().unwrap().iter().find(|n| n["ip"] == "198.18.0.7").unwrap();
    assert_eq!(stale["state"], serde_json::json!(["STALE"]));

    env.ok(&["destroy", "s"]);
    let left = netns::run_in_result(&env.host, || Socket::open()?.link(LinkRef::Name("vx-h")).map(|l| l.name));
    assert_eq!(left.ok().as_deref(), Some("vx-h"), "the vxlan went home");
}
