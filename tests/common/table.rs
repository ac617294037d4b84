//! The shared bad-input table: the same cases run against every [`Sandbox`] implementation, so
//! the fake and the netns sandbox can be asserted against one literal list of outcomes.

use std::net::IpAddr;

use ipnet::IpNet;
use netsandbox::Error;
use netsandbox::sandbox::{IfaceOptions, NeighFamily, NeighOptions, Sandbox, SandboxExt, SandboxType, StaticRoute};

const GOOD_MAC: [u8; 6] = [0x02, 0x42, 0xc6, 0x12, 0x00, 0x09];
const MULTICAST_MAC: [u8; 6] = [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01];
/// A source link name that exists nowhere.
const MISSING: &str = "nosuchlink0";

fn net(s: &str) -> IpNet {
    s.parse().expect("test CIDR")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test IP")
}

/// What [`bad_input_table`] must return, case by case, for every implementation.
#[allow(dead_code)]
pub const EXPECTED: &[(&str, &str)] = &[
    ("src over 15 bytes", "InvalidName"),
    ("src with slash", "InvalidName"),
    ("src with space", "InvalidName"),
    ("src with NUL", "InvalidName"),
    ("src empty", "InvalidName"),
    ("prefix over 15 bytes", "InvalidName"),
    ("prefix with slash", "InvalidName"),
    ("prefix with space", "InvalidName"),
    ("prefix with NUL", "InvalidName"),
    ("prefix ends with digit", "InvalidName"),
    ("veth prefix with slash", "InvalidName"),
    ("missing source link", "NotFound(link)"),
    ("veth host name exists", "AlreadyExists(link)"),
    ("multicast MAC", "InvalidMac"),
    ("v6 address in v4 slot", "InvalidArgument"),
    ("v4 address in v6 slot", "InvalidArgument"),
    ("link-local not link-local", "InvalidArgument"),
    ("sysctl with ../", "InvalidArgument"),
    ("MTU 20", "InvalidArgument"),
    ("bridge with master", "InvalidArgument"),
    ("master missing bridge", "NotFound(bridge)"),
    ("master not a bridge", "InvalidArgument"),
    ("address conflicts with route", "InvalidArgument"),
    ("gateway unreachable", "NotFound(route to)"),
    ("gateway6 unreachable", "NotFound(route to)"),
    ("unset gateway not set", "NotFound(gateway)"),
    ("static route family mismatch", "InvalidArgument"),
    ("static route without gateway or interface", "InvalidArgument"),
    ("static route gateway unreachable", "NotFound(route to)"),
    ("static route missing interface", "NotFound(interface)"),
    ("remove absent static route", "NotFound(route)"),
    ("neighbor on missing link", "NotFound(interface)"),
    ("neighbor multicast MAC", "InvalidMac"),
    ("neighbor zero MAC", "InvalidMac"),
    ("neighbor unreachable", "NotFound(route to)"),
    ("fdb neighbor without link", "InvalidArgument"),
    ("fdb neighbor on non-vxlan", "InvalidArgument"),
    ("delete absent neighbor", "NotFound(neighbor)"),
    ("alias on missing interface", "NotFound(interface)"),
    ("alias unspecified", "InvalidAddress"),
    ("alias multicast", "InvalidAddress"),
    ("alias duplicate", "AlreadyExists(address)"),
    ("remove absent alias", "NotFound(address)"),
    ("disable arp on missing", "NotFound(interface)"),
    ("statistics of missing", "NotFound(interface)"),
    ("remove missing interface", "NotFound(interface)"),
    ("remove bad name", "InvalidName"),
    ("destroy", "Ok"),
    ("destroy again", "Ok"),
    ("destroyed add_interface", "Destroyed"),
    ("destroyed add_veth", "Destroyed"),
    ("destroyed remove_interface", "Destroyed"),
    ("destroyed interfaces", "Destroyed"),
    ("destroyed statistics", "Destroyed"),
    ("destroyed set_gateway", "Destroyed"),
    ("destroyed unset_gateway", "Destroyed"),
    ("destroyed add_static_route", "Destroyed"),
    ("destroyed remove_static_route", "Destroyed"),
    ("destroyed add_neighbor", "Destroyed"),
    ("destroyed delete_neighbor", "Destroyed"),
    ("destroyed add_alias_ip", "Destroyed"),
    ("destroyed remove_alias_ip", "Destroyed"),
    ("destroyed disable_arp_for_vip", "Destroyed"),
    ("destroyed apply_os_tweaks", "Destroyed"),
    ("destroyed invoke", "Destroyed"),
    ("destroyed restore", "Destroyed"),
    ("destroyed info", "Destroyed"),
];

/// The error's variant name plus its kind when it has one, or "Ok".
#[allow(dead_code)]
pub fn outcome<T>(r: netsandbox::Result<T>) -> String {
    match r {
        Ok(_) => "Ok".into(),
        Err(Error::NotFound { kind, .. }) => format!("NotFound({kind})"),
        Err(Error::AlreadyExists { kind, .. }) => format!("AlreadyExists({kind})"),
        Err(e) => format!("{e:?}").chars().take_while(char::is_ascii_alphanumeric).collect(),
    }
}

/// Runs the bad-input cases against `sb`, which must hold interface "eth0" with 198.18.0.2/16
/// and 2001:db8::2/64, while `host_link` names a movable link in the origin namespace. Returns
/// `(case, outcome)` in order. Only the case "address conflicts with route" uses `host_link`,
/// and it must fail, so `host_link` stays where it is. The last cases destroy `sb`.
#[allow(dead_code)]
pub fn bad_input_table(sb: &dyn Sandbox, host_link: &str) -> Vec<(&'static str, String)> {
    let o = IfaceOptions::new;
    let long = "a234567890123456"; // 16 bytes
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut case = |name: &'static str, r: String| out.push((name, r));

    // Source names.
    case("src over 15 bytes", outcome(sb.add_interface(long, "eth", &o())));
    case("src with slash", outcome(sb.add_interface("a/b", "eth", &o())));
    case("src with space", outcome(sb.add_interface("a b", "eth", &o())));
    case("src with NUL", outcome(sb.add_interface("a\0b", "eth", &o())));
    case("src empty", outcome(sb.add_interface("", "eth", &o())));
    // Prefixes.
    case("prefix over 15 bytes", outcome(sb.add_interface(MISSING, long, &o())));
    case("prefix with slash", outcome(sb.add_interface(MISSING, "e/th", &o())));
    case("prefix with space", outcome(sb.add_interface(MISSING, "e th", &o())));
    case("prefix with NUL", outcome(sb.add_interface(MISSING, "e\0th", &o())));
    case("prefix ends with digit", outcome(sb.add_interface(MISSING, "eth1", &o())));
    case("veth prefix with slash", outcome(sb.add_veth("vt-tbl0", "e/th", &o())));
    // Links.
    case("missing source link", outcome(sb.add_interface(MISSING, "eth", &o())));
    case("veth host name exists", outcome(sb.add_veth("lo", "veth", &o())));
    // Options.
    case("multicast MAC", outcome(sb.add_interface(MISSING, "eth", &o().mac(MULTICAST_MAC))));
    case("v6 address in v4 slot", outcome(sb.add_interface(MISSING, "eth", &o().address(net("2001:db8::5/64")))));
    case("v4 address in v6 slot", outcome(sb.add_interface(MISSING, "eth", &o().address_ipv6(net("198.18.0.5/16")))));
    case(
        "link-local not link-local",
        outcome(sb.add_interface(MISSING, "eth", &o().link_local(vec![net("198.19.0.1/16")]))),
    );
    case("sysctl with ../", outcome(sb.add_interface(MISSING, "eth", &o().sysctl("../../kernel/x", "1"))));
    case("MTU 20", outcome(sb.add_interface(MISSING, "eth", &o().mtu(20))));
    case("bridge with master", outcome(sb.add_interface(MISSING, "br", &o().bridge(true).master("br0"))));
    case("master missing bridge", outcome(sb.add_veth("vt-tbl0", "veth", &o().master("br9"))));
    case("master not a bridge", outcome(sb.add_veth("vt-tbl0", "veth", &o().master("eth0"))));
    case(
        "address conflicts with route",
        outcome(sb.add_interface(host_link, "eth", &o().address(net("198.18.5.5/16")))),
    );
    // Gateways and static routes.
    case("gateway unreachable", outcome(sb.set_gateway(ip("203.0.113.1"))));
    case("gateway6 unreachable", outcome(sb.set_gateway(ip("2001:db9::1"))));
    case("unset gateway not set", outcome(sb.unset_gateway(ip("198.18.0.1"))));
    case(
        "static route family mismatch",
        outcome(sb.add_static_route(&StaticRoute::via(net("198.19.0.0/16"), ip("2001:db8::1")))),
    );
    case(
        "static route without gateway or interface",
        outcome(sb.add_static_route(&StaticRoute { dst: net("198.19.0.0/16"), gateway: None, interface: None })),
    );
    case(
        "static route gateway unreachable",
        outcome(sb.add_static_route(&StaticRoute::via(net("198.19.0.0/16"), ip("203.0.113.1")))),
    );
    case(
        "static route missing interface",
        outcome(sb.add_static_route(&StaticRoute::dev(net("198.19.0.0/16"), "eth9"))),
    );
    case(
        "remove absent static route",
        outcome(sb.remove_static_route(&StaticRoute::via(net("198.19.0.0/16"), ip("198.18.0.1")))),
    );
    // Neighbors.
    let on = |l: &str| NeighOptions::new().link_name(l);
    case("neighbor on missing link", outcome(sb.add_neighbor(ip("198.18.0.9"), GOOD_MAC, false, &on("eth9"))));
    case("neighbor multicast MAC", outcome(sb.add_neighbor(ip("198.18.0.9"), MULTICAST_MAC, false, &on("eth0"))));
    case("neighbor zero MAC", outcome(sb.add_neighbor(ip("198.18.0.9"), [0; 6], false, &on("eth0"))));
    case("neighbor unreachable", outcome(sb.add_neighbor(ip("203.0.113.9"), GOOD_MAC, false, &NeighOptions::new())));
    case(
        "fdb neighbor without link",
        outcome(sb.add_neighbor(ip("198.18.0.9"), GOOD_MAC, false, &NeighOptions::new().family(NeighFamily::Bridge))),
    );
    case(
        "fdb neighbor on non-vxlan",
        outcome(sb.add_neighbor(ip("198.18.0.9"), GOOD_MAC, false, &on("eth0").family(NeighFamily::Bridge))),
    );
    case("delete absent neighbor", outcome(sb.delete_neighbor(ip("198.18.0.9"), GOOD_MAC, true)));
    // Aliases, ARP, statistics, removal.
    case("alias on missing interface", outcome(sb.add_alias_ip("eth9", net("198.18.0.7/32"))));
    case("alias unspecified", outcome(sb.add_alias_ip("lo", net("0.0.0.0/32"))));
    case("alias multicast", outcome(sb.add_alias_ip("lo", net("224.0.0.1/32"))));
    case("alias duplicate", outcome(sb.add_alias_ip("eth0", net("198.18.0.2/16"))));
    case("remove absent alias", outcome(sb.remove_alias_ip("lo", net("198.18.0.7/32"))));
    case("disable arp on missing", outcome(sb.disable_arp_for_vip("eth9")));
    case("statistics of missing", outcome(sb.statistics("eth9")));
    case("remove missing interface", outcome(sb.remove_interface("eth9")));
    case("remove bad name", outcome(sb.remove_interface("a/b")));
    // Destroyed: checked before anything else, even bad input.
    case("destroy", outcome(sb.destroy()));
    case("destroy again", outcome(sb.destroy()));
    case("destroyed add_interface", outcome(sb.add_interface("a/b", "eth", &o())));
    case("destroyed add_veth", outcome(sb.add_veth("vt-tbl0", "veth", &o())));
    case("destroyed remove_interface", outcome(sb.remove_interface("eth0")));
    case("destroyed interfaces", outcome(sb.interfaces()));
    case("destroyed statistics", outcome(sb.statistics("eth0")));
    case("destroyed set_gateway", outcome(sb.set_gateway(ip("198.18.0.1"))));
    case("destroyed unset_gateway", outcome(sb.unset_gateway(ip("198.18.0.1"))));
    case("destroyed add_static_route", outcome(sb.add_static_route(&StaticRoute::dev(net("198.19.0.0/16"), "eth0"))));
    case(
        "destroyed remove_static_route",
        outcome(sb.remove_static_route(&StaticRoute::dev(net("198.19.0.0/16"), "eth0"))),
    );
    case("destroyed add_neighbor", outcome(sb.add_neighbor(ip("198.18.0.9"), MULTICAST_MAC, false, &on("eth0"))));
    case("destroyed delete_neighbor", outcome(sb.delete_neighbor(ip("198.18.0.9"), GOOD_MAC, true)));
    case("destroyed add_alias_ip", outcome(sb.add_alias_ip("lo", net("0.0.0.0/32"))));
    case("destroyed remove_alias_ip", outcome(sb.remove_alias_ip("lo", net("198.18.0.7/32"))));
    case("destroyed disable_arp_for_vip", outcome(sb.disable_arp_for_vip("lo")));
    case("destroyed apply_os_tweaks", outcome(sb.apply_os_tweaks(&[SandboxType::Ingress])));
    case("destroyed invoke", outcome(sb.invoke(|| 1)));
    case("destroyed restore", outcome(sb.restore()));
    case("destroyed info", outcome(sb.info()));
    out
}

/// The starting point of a [`World`] for the fidelity cases.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// The sandbox holds "eth0" (198.18.0.2/16, 2001:db8::2/64), moved in from origin link "vm0".
    Plain,
    /// The sandbox adopted a namespace that already holds "ceth0" (a container's).
    Adopted,
    /// The sandbox holds "eth0", moved in from an origin namespace that no longer exists.
    OriginGone,
}

/// One implementation's view of a sandbox and its surroundings, for [`fidelity_cases`].
#[allow(dead_code)]
pub trait World {
    /// The sandbox.
    fn sb(&self) -> &dyn Sandbox;
    /// Another handle on the same sandbox (as a second `open` of its key).
    fn other_handle(&self) -> Box<dyn Sandbox + '_>;
    /// Makes a movable link `name` in the origin namespace.
    fn host_link(&self, name: &str);
    /// Makes a VXLAN device `name` in the origin namespace.
    fn host_vxlan(&self, name: &str);
    /// Whether the origin namespace holds link `name`.
    fn host_has(&self, name: &str) -> bool;
    /// Destroys the sandbox; returns the names inside of the links it reported left behind.
    fn destroy_reporting(&self) -> Vec<String>;
    /// After destroy: whether the (adopted) namespace still holds link `name`.
    fn still_inside(&self, name: &str) -> bool;
}

/// What [`fidelity_cases`] must return for every implementation.
#[allow(dead_code)]
pub const FIDELITY_EXPECTED: &[(&str, &str)] = &[
    ("v6 address conflicts with route", "InvalidArgument"),
    ("veth v6 address conflicts with route", "InvalidArgument"),
    ("v6 address in another subnet", "Ok"),
    ("alias v4 on another interface", "AlreadyExists(address)"),
    ("alias v6 on another interface", "AlreadyExists(address)"),
    ("alias same address other prefix", "AlreadyExists(address)"),
    ("alias loopback built-in", "AlreadyExists(address)"),
    ("alias bad name before bad address", "InvalidName"),
    ("bridge from empty source", "Ok"),
    ("bridge listed as created", "true"),
    ("veth cannot be a bridge", "InvalidArgument"),
    ("host_master on add_interface", "InvalidArgument"),
    ("host_master missing bridge", "NotFound(bridge)"),
    ("remove loopback", "InvalidArgument"),
    ("statistics of loopback", "Ok"),
    ("gateway unspecified", "InvalidAddress"),
    ("unset gateway multicast", "InvalidAddress"),
    ("add neighbor", "Ok"),
    ("delete neighbor without os_delete", "Ok"),
    ("neighbor still listed", "1"),
    ("delete neighbor zero MAC", "InvalidMac"),
    ("delete neighbor with os_delete", "Ok"),
    ("neighbor gone", "0"),
    ("move in a vxlan", "Ok"),
    ("fdb on a moved-in vxlan", "Ok"),
    ("move in a non-vxlan named vx", "Ok"),
    ("fdb on a non-vxlan named vx", "InvalidArgument"),
    ("destroy through another handle", "Ok"),
    ("stale handle info", "Destroyed"),
    ("stale handle remove_interface", "Destroyed"),
    ("stale handle add_veth", "Destroyed"),
    ("stale handle destroy", "Ok"),
    ("moved link home", "true"),
    ("moved vxlan home", "true"),
    ("adopted: remove the owner's link", "InvalidArgument"),
    ("adopted: add veth", "Ok"),
    ("adopted: destroy reports", ""),
    ("adopted: owner's link stays", "true"),
    ("adopted: created veth's host end gone", "false"),
    ("origin gone: remove", "NotFound(origin namespace)"),
    ("origin gone: still listed", "1"),
    ("origin gone: destroy reports", "eth0"),
];

/// What [`fidelity_cases`] hands a world to, once made.
pub type RunCases<'a> = dyn FnMut(&dyn World) + Send + 'a;

/// Runs the fidelity cases against one world per [`Scenario`], made by `make`, which may wrap
/// each in whatever isolation it needs and must pass the world to the closure it is given.
#[allow(dead_code)]
pub fn fidelity_cases(make: &dyn Fn(Scenario, &mut RunCases<'_>)) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    make(Scenario::Plain, &mut |w| plain_cases(w, &mut out));
    make(Scenario::Adopted, &mut |w| {
        let sb = w.sb();
        out.push(("adopted: remove the owner's link", outcome(sb.remove_interface("ceth0"))));
        out.push(("adopted: add veth", outcome(sb.add_veth("vt-adopt", "eth", &IfaceOptions::new()))));
        out.push(("adopted: destroy reports", w.destroy_reporting().join(",")));
        out.push(("adopted: owner's link stays", w.still_inside("ceth0").to_string()));
        out.push(("adopted: created veth's host end gone", w.host_has("vt-adopt").to_string()));
    });
    make(Scenario::OriginGone, &mut |w| {
        let sb = w.sb();
        out.push(("origin gone: remove", outcome(sb.remove_interface("eth0"))));
        out.push(("origin gone: still listed", sb.interfaces().map(|i| i.len()).unwrap_or(99).to_string()));
        out.push(("origin gone: destroy reports", w.destroy_reporting().join(",")));
    });
    out
}

fn plain_cases(w: &dyn World, out: &mut Vec<(&'static str, String)>) {
    let sb = w.sb();
    let o = IfaceOptions::new;
    let mut case = |name: &'static str, r: String| out.push((name, r));
    w.host_link("vt0");
    case(
        "v6 address conflicts with route",
        outcome(sb.add_interface("vt0", "eth", &o().address_ipv6(net("2001:db8::44/64")))),
    );
    case(
        "veth v6 address conflicts with route",
        outcome(sb.add_veth("vt1", "eth", &o().address_ipv6(net("2001:db8::45/96")))),
    );
    case(
        "v6 address in another subnet",
        outcome(sb.add_interface("vt0", "eth", &o().address_ipv6(net("2001:db8:5::44/64")))),
    );
    case("alias v4 on another interface", outcome(sb.add_alias_ip("lo", net("198.18.0.2/32"))));
    case("alias v6 on another interface", outcome(sb.add_alias_ip("lo", net("2001:db8::2/128"))));
    case("alias same address other prefix", outcome(sb.add_alias_ip("eth0", net("198.18.0.2/24"))));
    case("alias loopback built-in", outcome(sb.add_alias_ip("lo", net("127.0.0.1/32"))));
    case("alias bad name before bad address", outcome(sb.add_alias_ip("a/b", net("0.0.0.0/32"))));
    case("bridge from empty source", outcome(sb.add_interface("", "br", &o().bridge(true))));
    let br_created = sb.interfaces().map(|i| i.iter().any(|i| i.name == "br0" && i.created)).unwrap_or(false);
    case("bridge listed as created", br_created.to_string());
    case("veth cannot be a bridge", outcome(sb.add_veth("vt2", "br", &o().bridge(true))));
    case("host_master on add_interface", outcome(sb.add_interface("vt0", "eth", &o().host_master("br-host"))));
    case("host_master missing bridge", outcome(sb.add_veth("vt2", "eth", &o().host_master("nobr0"))));
    case("remove loopback", outcome(sb.remove_interface("lo")));
    case("statistics of loopback", outcome(sb.statistics("lo")));
    case("gateway unspecified", outcome(sb.set_gateway(ip("0.0.0.0"))));
    case("unset gateway multicast", outcome(sb.unset_gateway(ip("ff02::1"))));
    let n = ip("198.18.0.9");
    case("add neighbor", outcome(sb.add_neighbor(n, GOOD_MAC, false, &NeighOptions::new())));
    case("delete neighbor without os_delete", outcome(sb.delete_neighbor(n, GOOD_MAC, false)));
    case("neighbor still listed", sb.info().map(|i| i.neighbors.len()).unwrap_or(99).to_string());
    case("delete neighbor zero MAC", outcome(sb.delete_neighbor(n, [0; 6], true)));
    case("delete neighbor with os_delete", outcome(sb.delete_neighbor(n, GOOD_MAC, true)));
    case("neighbor gone", sb.info().map(|i| i.neighbors.len()).unwrap_or(99).to_string());
    w.host_vxlan("vxh0");
    case("move in a vxlan", outcome(sb.add_interface("vxh0", "ovl", &o())));
    let fdb = |l: &str| NeighOptions::new().link_name(l).family(NeighFamily::Bridge);
    case("fdb on a moved-in vxlan", outcome(sb.add_neighbor(ip("192.0.2.10"), GOOD_MAC, false, &fdb("ovl0"))));
    w.host_link("vxfake");
    case("move in a non-vxlan named vx", outcome(sb.add_interface("vxfake", "vxl", &o())));
    case("fdb on a non-vxlan named vx", outcome(sb.add_neighbor(ip("192.0.2.11"), GOOD_MAC, false, &fdb("vxl0"))));
    let other = w.other_handle();
    case("destroy through another handle", outcome(other.destroy()));
    case("stale handle info", outcome(sb.info()));
    case("stale handle remove_interface", outcome(sb.remove_interface("eth0")));
    case("stale handle add_veth", outcome(sb.add_veth("vt3", "eth", &o())));
    case("stale handle destroy", outcome(sb.destroy()));
    case("moved link home", w.host_has("vm0").to_string());
    case("moved vxlan home", w.host_has("vxh0").to_string());
}
