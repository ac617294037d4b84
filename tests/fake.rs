//! The in-memory sandbox: its own behaviour, and the shared bad-input table.

mod common;

use std::net::IpAddr;

use common::table::{EXPECTED, bad_input_table, outcome};
use ipnet::IpNet;
use netsandbox::Error;
use netsandbox::sandbox::{
    FakeSandbox, IfaceOptions, NeighFamily, NeighOptions, Sandbox, SandboxExt, SandboxType, StaticRoute,
};

const KEY: &str = "/run/netsandbox-test/netns/fake";
const MAC: [u8; 6] = [0x02, 0x42, 0xc6, 0x12, 0x00, 0x02];

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn eth0_opts() -> IfaceOptions {
    IfaceOptions::new().address(net("198.18.0.2/16")).address_ipv6(net("2001:db8::2/64"))
}

/// A sandbox holding "eth0" (198.18.0.2/16, 2001:db8::2/64), moved in from host link "vh0".
fn with_eth0() -> FakeSandbox {
    let sb = FakeSandbox::new(KEY).unwrap();
    sb.add_host_link("vh0", Some(MAC)).unwrap();
    assert_eq!(sb.add_interface("vh0", "eth", &eth0_opts()).unwrap(), "eth0");
    sb
}

fn names(sb: &FakeSandbox) -> Vec<String> {
    sb.interfaces().unwrap().into_iter().map(|i| i.name).collect()
}

#[test]
fn new_checks_key() {
    assert!(matches!(FakeSandbox::new("relative"), Err(Error::InvalidKey { .. })));
    assert!(matches!(FakeSandbox::new("/a/../b"), Err(Error::InvalidKey { .. })));
    let sb = FakeSandbox::new(KEY).unwrap();
    assert_eq!(sb.key(), KEY);
    assert_eq!(sb.host_links(), ["lo"]);
    assert_eq!(outcome(sb.add_host_link("lo", None)), "AlreadyExists(link)");
    assert_eq!(outcome(sb.add_host_link("a/b", None)), "InvalidName");
}

#[test]
fn add_remove_readd_takes_lowest_index() {
    let sb = with_eth0();
    sb.add_host_link("vh1", None).unwrap();
    sb.add_host_link("vh2", None).unwrap();
    assert_eq!(sb.add_interface("vh1", "eth", &IfaceOptions::new()).unwrap(), "eth1");
    assert_eq!(sb.host_links(), ["lo", "vh2"]);

    let i = &sb.interfaces().unwrap()[0];
    assert_eq!(i.origin_name.as_deref(), Some("vh0"));
    assert!(!i.created);
    assert_eq!(i.mac, Some(MAC));
    assert_eq!(i.addresses, [net("198.18.0.2/16"), net("2001:db8::2/64")]);

    sb.remove_interface("eth0").unwrap();
    assert_eq!(sb.host_links(), ["lo", "vh0", "vh2"]);
    assert_eq!(outcome(sb.remove_interface("eth0")), "NotFound(interface)");
    assert_eq!(sb.add_interface("vh2", "eth", &IfaceOptions::new()).unwrap(), "eth0");
    assert_eq!(names(&sb), ["eth0", "eth1"]);
    assert_eq!(outcome(sb.add_interface("vh2", "eth", &IfaceOptions::new())), "NotFound(link)");
    assert_eq!(outcome(sb.add_interface("lo", "eth", &IfaceOptions::new())), "InvalidArgument");
}

#[test]
fn failure_changes_nothing() {
    let sb = with_eth0();
    sb.add_host_link("vh1", None).unwrap();
    let before = sb.info().unwrap();
    let conflict = IfaceOptions::new().address(net("198.18.5.5/16"));
    assert_eq!(outcome(sb.add_interface("vh1", "eth", &conflict)), "InvalidArgument");
    assert_eq!(outcome(sb.add_veth("vt1", "veth", &conflict)), "InvalidArgument");
    let dup_route = IfaceOptions::new().routes(vec![net("198.18.0.0/16")]);
    assert_eq!(outcome(sb.add_interface("vh1", "eth", &dup_route)), "AlreadyExists(route)");
    assert_eq!(sb.info().unwrap(), before);
    assert_eq!(sb.host_links(), ["lo", "vh1"]);
}

#[test]
fn bridges_veths_and_masters() {
    let sb = with_eth0();
    let br = sb.add_interface("ignored", "br", &IfaceOptions::new().bridge(true)).unwrap();
    assert_eq!(br, "br0");
    let v = sb.add_veth("vt0", "veth", &IfaceOptions::new().master("br0").mtu(1450)).unwrap();
    assert_eq!(v, "veth0");
    assert_eq!(sb.host_links(), ["lo", "vt0"]);
    let info = sb.interfaces().unwrap();
    let veth = info.iter().find(|i| i.name == "veth0").unwrap();
    assert!(veth.created && veth.origin_name.is_none());
    assert_eq!((veth.master.as_deref(), veth.mtu), (Some("br0"), Some(1450)));
    assert_eq!(outcome(sb.add_veth("vt0", "veth", &IfaceOptions::new())), "AlreadyExists(link)");
    assert_eq!(outcome(sb.add_veth("vt1", "veth", &IfaceOptions::new().master("eth0"))), "InvalidArgument");

    sb.remove_interface("br0").unwrap();
    assert_eq!(sb.interfaces().unwrap().iter().find(|i| i.name == "veth0").unwrap().master, None);
    sb.remove_interface("veth0").unwrap();
    assert_eq!(sb.host_links(), ["lo"]);
}

#[test]
fn parallel_add_interface_gives_distinct_names() {
    let sb = FakeSandbox::new(KEY).unwrap();
    for i in 0..10 {
        sb.add_host_link(&format!("vp{i}"), None).unwrap();
    }
    let mut got: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..10)
            .map(|i| {
                let sb = &sb;
                s.spawn(move || sb.add_interface(&format!("vp{i}"), "eth", &IfaceOptions::new()).unwrap())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    got.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("eth{i}")).collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(sb.host_links(), ["lo"]);
}

#[test]
fn gateways_and_static_routes() {
    let sb = with_eth0();
    assert_eq!(outcome(sb.set_gateway(ip("203.0.113.1"))), "NotFound(route to)");
    sb.set_gateway(ip("198.18.0.1")).unwrap();
    sb.set_gateway(ip("2001:db8::1")).unwrap();
    assert_eq!(outcome(sb.set_gateway(ip("198.18.0.254"))), "AlreadyExists(gateway)");
    let info = sb.info().unwrap();
    assert_eq!(info.gateway, Some("198.18.0.1".parse().unwrap()));
    assert_eq!(info.gateway6, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(outcome(sb.unset_gateway(ip("198.18.0.254"))), "NotFound(gateway)");
    sb.unset_gateway(ip("198.18.0.1")).unwrap();
    assert_eq!(outcome(sb.unset_gateway(ip("198.18.0.1"))), "NotFound(gateway)");

    let via = StaticRoute::via(net("198.19.0.0/16"), ip("198.18.0.1"));
    let dev = StaticRoute::dev(net("198.20.0.0/16"), "eth0");
    sb.add_static_route(&via).unwrap();
    sb.add_static_route(&dev).unwrap();
    assert_eq!(outcome(sb.add_static_route(&via)), "AlreadyExists(route)");
    // A gateway reached through a directly connected static route.
    sb.add_static_route(&StaticRoute::via(net("198.21.0.0/16"), ip("198.20.0.1"))).unwrap();
    assert_eq!(sb.info().unwrap().static_routes.len(), 3);
    sb.remove_static_route(&via).unwrap();
    assert_eq!(outcome(sb.remove_static_route(&via)), "NotFound(route)");

    // Removing the interface takes its gateway, routes and neighbors with it.
    sb.add_neighbor(ip("198.18.0.9"), MAC, false, &NeighOptions::new()).unwrap();
    sb.remove_interface("eth0").unwrap();
    let info = sb.info().unwrap();
    assert_eq!((info.gateway, info.gateway6), (None, None));
    assert!(info.static_routes.is_empty() && info.neighbors.is_empty());
}

#[test]
fn neighbors_force_and_fdb() {
    let sb = with_eth0();
    let n = ip("198.18.0.9");
    let other = [0x02, 0, 0, 0, 0, 0x99];
    sb.add_neighbor(n, MAC, false, &NeighOptions::new()).unwrap();
    assert_eq!(outcome(sb.add_neighbor(n, other, false, &NeighOptions::new())), "AlreadyExists(neighbor)");
    sb.add_neighbor(n, other, true, &NeighOptions::new().link_name("eth0")).unwrap();
    let neigh = sb.info().unwrap().neighbors;
    assert_eq!(neigh.len(), 1);
    assert_eq!((neigh[0].mac, neigh[0].link_name.as_str()), (other, "eth0"));
    assert_eq!(outcome(sb.delete_neighbor(n, MAC, true)), "NotFound(neighbor)");

    // Without os_delete the entry stays in the "kernel", and so in the view (as on NetnsSandbox,
    // whose view is the kernel's): a plain add still fails.
    sb.delete_neighbor(n, other, false).unwrap();
    assert_eq!(sb.info().unwrap().neighbors.len(), 1);
    assert_eq!(outcome(sb.add_neighbor(n, other, false, &NeighOptions::new())), "AlreadyExists(neighbor)");
    sb.restore().unwrap();
    assert_eq!(sb.info().unwrap().neighbors.len(), 1);
    sb.delete_neighbor(n, other, true).unwrap();
    sb.restore().unwrap();
    assert!(sb.info().unwrap().neighbors.is_empty());

    let fdb = NeighOptions::new().link_name("vxlan0").family(NeighFamily::Bridge);
    assert_eq!(outcome(sb.add_neighbor(ip("192.0.2.10"), MAC, false, &fdb)), "NotFound(interface)");
    sb.add_vxlan("vxlan0").unwrap();
    assert_eq!(outcome(sb.add_vxlan("vxlan0")), "AlreadyExists(interface)");
    sb.add_neighbor(ip("192.0.2.10"), MAC, false, &fdb).unwrap();
    sb.add_vxlan("ovl1").unwrap();
    // fdb is decided by the device's kind, not its name: a moved-in vxlan named otherwise works,
    // a plain link named "vx..." does not.
    sb.add_host_vxlan("ovl-host", None).unwrap();
    let moved = sb.add_interface("ovl-host", "ov", &IfaceOptions::new()).unwrap();
    let fdb_moved = NeighOptions::new().link_name(moved.as_str()).family(NeighFamily::Bridge);
    sb.add_neighbor(ip("192.0.2.12"), MAC, false, &fdb_moved).unwrap();
    sb.add_host_link("vxfake", None).unwrap();
    let plain = sb.add_interface("vxfake", "vxl", &IfaceOptions::new()).unwrap();
    let fdb_plain = NeighOptions::new().link_name(plain.as_str()).family(NeighFamily::Bridge);
    assert_eq!(outcome(sb.add_neighbor(ip("192.0.2.13"), MAC, false, &fdb_plain)), "InvalidArgument");
    let fdb1 = NeighOptions::new().link_name("ovl1").family(NeighFamily::Bridge);
    sb.add_neighbor(ip("192.0.2.11"), MAC, false, &fdb1).unwrap();
    let neigh = sb.info().unwrap().neighbors;
    assert_eq!(neigh.len(), 3);
    assert!(neigh.iter().all(|n| n.family == NeighFamily::Bridge));
}

#[test]
fn aliases() {
    let sb = with_eth0();
    let vip = net("10.255.0.5/32");
    sb.add_alias_ip("lo", vip).unwrap();
    assert_eq!(outcome(sb.add_alias_ip("lo", vip)), "AlreadyExists(address)");
    assert_eq!(outcome(sb.add_alias_ip("lo", net("127.0.0.1/8"))), "AlreadyExists(address)");
    sb.add_alias_ip("eth0", net("198.18.0.3/16")).unwrap();
    assert_eq!(outcome(sb.add_alias_ip("eth9", vip)), "NotFound(interface)");
    assert_eq!(outcome(sb.add_alias_ip("lo", net("0.0.0.0/32"))), "InvalidAddress");
    let info = sb.info().unwrap();
    assert_eq!(info.loopback_addresses, [vip]);
    assert_eq!(info.interfaces[0].addresses, [net("198.18.0.2/16"), net("198.18.0.3/16"), net("2001:db8::2/64")]);
    sb.disable_arp_for_vip("lo").unwrap();
    sb.disable_arp_for_vip("eth0").unwrap();
    assert_eq!(outcome(sb.disable_arp_for_vip("eth9")), "NotFound(interface)");
    sb.remove_alias_ip("lo", vip).unwrap();
    assert_eq!(outcome(sb.remove_alias_ip("lo", vip)), "NotFound(address)");
    sb.remove_alias_ip("eth0", net("198.18.0.3/16")).unwrap();
    assert!(sb.info().unwrap().loopback_addresses.is_empty());
}

#[test]
fn statistics_and_tweaks() {
    let sb = with_eth0();
    assert_eq!(sb.statistics("eth0").unwrap(), Default::default());
    assert_eq!(outcome(sb.statistics("eth9")), "NotFound(interface)");
    assert_eq!(sb.apply_os_tweaks(&[]).unwrap(), Default::default());
    let r = sb.apply_os_tweaks(&[SandboxType::Ingress, SandboxType::LoadBalancer]).unwrap();
    assert_eq!(
        r.missing,
        ["net.ipv4.vs.conn_reuse_mode", "net.ipv4.vs.expire_nodest_conn", "net.ipv4.vs.expire_quiescent_template"]
    );
    assert!(r.written.is_empty() && r.unchanged.is_empty() && r.read_only.is_empty());
}

#[test]
fn invoke_returns_value_and_catches_panic() {
    let sb = with_eth0();
    let local = 20;
    assert_eq!(sb.invoke(|| local + 22).unwrap(), 42);
    let dyn_sb: &dyn Sandbox = &sb;
    assert_eq!(dyn_sb.invoke(|| "x".to_owned()).unwrap(), "x");
    match sb.invoke(|| -> u32 { panic!("boom") }) {
        Err(Error::Panicked { ns, message }) => assert_eq!((ns.as_str(), message.as_str()), (KEY, "boom")),
        other => panic!("expected Panicked, got {other:?}"),
    }
    // Still usable afterwards.
    assert_eq!(sb.invoke(|| 1).unwrap(), 1);
}

#[test]
fn destroy_is_idempotent_and_final() {
    let sb = with_eth0();
    sb.add_veth("vt0", "veth", &IfaceOptions::new()).unwrap();
    sb.add_host_link("vh1", None).unwrap();
    sb.destroy().unwrap();
    sb.destroy().unwrap();
    // The moved link went home under its origin name; the veth's host end went with its peer.
    assert_eq!(sb.host_links(), ["lo", "vh0", "vh1"]);
    assert_eq!(sb.key(), KEY);
    assert_eq!(outcome(sb.info()), "Destroyed");
    assert_eq!(outcome(sb.restore()), "Destroyed");
    assert_eq!(outcome(sb.add_vxlan("vx0")), "Destroyed");
    assert_eq!(outcome(sb.invoke(|| 1)), "Destroyed");
}

#[test]
fn bad_input_table_on_fake() {
    let sb = FakeSandbox::new(KEY).unwrap();
    sb.add_host_link("vh0", Some(MAC)).unwrap();
    sb.add_host_link("vh-table", None).unwrap();
    assert_eq!(sb.add_interface("vh0", "eth", &eth0_opts()).unwrap(), "eth0");
    let got = bad_input_table(&sb, "vh-table");
    let got: Vec<(&str, &str)> = got.iter().map(|(c, o)| (*c, o.as_str())).collect();
    assert_eq!(got, EXPECTED);
    assert!(got.len() >= 25);
    // The table ends with destroy: eth0 (moved in from vh0) is back in the origin.
    assert_eq!(sb.host_links(), ["lo", "vh-table", "vh0"]);
}

/// The fake's side of the fidelity table.
struct FakeWorld {
    sb: FakeSandbox,
}

impl common::table::World for FakeWorld {
    fn sb(&self) -> &dyn Sandbox {
        &self.sb
    }
    fn other_handle(&self) -> Box<dyn Sandbox + '_> {
        Box::new(self.sb.handle())
    }
    fn host_link(&self, name: &str) {
        self.sb.add_host_link(name, None).unwrap();
    }
    fn host_vxlan(&self, name: &str) {
        self.sb.add_host_vxlan(name, None).unwrap();
    }
    fn host_has(&self, name: &str) -> bool {
        self.sb.host_links().iter().any(|l| l == name)
    }
    fn destroy_reporting(&self) -> Vec<String> {
        self.sb.destroy_reporting().unwrap().left_behind.into_iter().map(|(n, _)| n).collect()
    }
    fn still_inside(&self, name: &str) -> bool {
        self.sb.left_in_namespace().iter().any(|l| l == name)
    }
}

#[test]
fn fidelity_table_on_fake() {
    use common::table::{FIDELITY_EXPECTED, Scenario, fidelity_cases};
    let got = fidelity_cases(&|scenario, run| {
        let sb = match scenario {
            Scenario::Adopted => FakeSandbox::external(KEY, &["ceth0"]).unwrap(),
            Scenario::Plain | Scenario::OriginGone => {
                let sb = FakeSandbox::new(KEY).unwrap();
                sb.add_host_link("vm0", Some(MAC)).unwrap();
                assert_eq!(sb.add_interface("vm0", "eth", &eth0_opts()).unwrap(), "eth0");
                if scenario == Scenario::OriginGone {
                    sb.drop_origin();
                }
                sb
            }
        };
        run(&FakeWorld { sb });
    });
    let got: Vec<(&str, &str)> = got.iter().map(|(c, o)| (*c, o.as_str())).collect();
    assert_eq!(got, FIDELITY_EXPECTED);
}
