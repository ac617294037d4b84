//! What real runtimes and libnetwork's own tests expect of NetnsSandbox (issue "Fidelity",
//! correctness items), asserted against the kernel with iproute2's JSON (`ip -j`) run inside the
//! namespaces concerned. Every test runs in its own private host namespace.

mod common;

use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use common::{TempBase, in_private_netns, ip, key, net};
use netsandbox::Error;
use netsandbox::netlink::Socket;
use netsandbox::netlink::link::{self, LinkChange, LinkRef, VethPeer};
use netsandbox::netns::{self, NetNs};
use netsandbox::sandbox::{CreateOptions, IfaceOptions, NetnsSandbox, Sandbox, SandboxExt};
use serde_json::Value;

const MAC_INSIDE: [u8; 6] = [0x02, 0x42, 0xc6, 0x12, 0x00, 0x02];

/// A veth pair `a`/`b` in the calling thread's namespace.
fn host_veth(a: &str, b: &str) {
    let s = Socket::open().unwrap();
    let peer = VethPeer { name: b.into(), ..Default::default() };
    s.execute(link::create_veth(a, None, &peer).unwrap()).unwrap();
}

/// `ip -j ARGS` in the calling thread's namespace, parsed.
fn ipj(args: &[&str]) -> Value {
    let mut all = vec!["-j"];
    all.extend_from_slice(args);
    serde_json::from_str(&ip(&all)).unwrap()
}

/// `ip -j ARGS` inside `ns`.
fn ipj_in(ns: &NetNs, args: &[&str]) -> Value {
    netns::run_in(ns, || ipj(args)).unwrap()
}

/// `ip -j ARGS` inside a sandbox.
fn ipj_sb(sb: &dyn Sandbox, args: &[&str]) -> Value {
    sb.invoke(|| ipj(args)).unwrap()
}

fn names(links: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        links.as_array().unwrap().iter().map(|l| l["ifname"].as_str().unwrap().to_owned()).collect();
    v.sort();
    v
}

/// What of a link must survive a round trip, from `ip -j -d link show`.
fn link_state(l: &Value) -> (String, bool, String, u64, Option<String>, Option<String>) {
    let up = l["flags"].as_array().unwrap().iter().any(|f| f == "UP");
    (
        l["ifname"].as_str().unwrap().to_owned(),
        up,
        l["address"].as_str().unwrap().to_owned(),
        l["mtu"].as_u64().unwrap(),
        l["master"].as_str().map(str::to_owned),
        l["ifalias"].as_str().map(str::to_owned),
    )
}

/// Addresses of one device as `addr/len`, without the kernel's own IPv6 link-local one.
fn addr_state(a: &Value) -> Vec<String> {
    link_addrs(&a.as_array().unwrap()[0])
}

/// Addresses of one entry of `ip -j addr` as `addr/len`, sorted, without the kernel's own IPv6
/// link-local one (it adds that on its own, whenever DAD lets it: not a change of ours).
fn link_addrs(l: &Value) -> Vec<String> {
    let mut v: Vec<String> = l["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| !i["local"].as_str().unwrap().starts_with("fe80:"))
        .map(|i| format!("{}/{}", i["local"].as_str().unwrap(), i["prefixlen"]))
        .collect();
    v.sort();
    v
}

/// Routes of one device (destination, gateway, protocol), both families, without the kernel's
/// IPv6 link-local and multicast ones.
fn route_state(dev: &str) -> Vec<String> {
    let mut v = Vec::new();
    for fam in ["-4", "-6"] {
        for r in ipj(&[fam, "route", "show", "dev", dev]).as_array().unwrap() {
            let dst = r["dst"].as_str().unwrap();
            if dst.starts_with("fe80:") || dst.starts_with("ff00:") || dst.starts_with("multicast") {
                continue;
            }
            v.push(format!("{dst} via {} proto {}", r["gateway"].as_str().unwrap_or("-"), r["protocol"]));
        }
    }
    v.sort();
    v
}

#[test]
fn ipv6_address_conflicting_with_a_route_is_refused_like_ipv4() {
    in_private_netns(|| {
        let base = TempBase::new("fid-v6");
        let sb = NetnsSandbox::create(&key(&base, "c"), &CreateOptions::default()).unwrap();
        sb.add_veth(
            "vh0",
            "eth",
            &IfaceOptions::new().address(net("198.18.0.2/16")).address_ipv6(net("2001:db8::44/64")),
        )
        .unwrap();
        host_veth("vh1", "vc1");
        // Every link's name and addresses (not operstate, which settles on its own).
        let addrs = || -> Vec<(String, Vec<String>)> {
            let all = ipj_sb(&sb, &["addr"]);
            let mut v: Vec<_> = all
                .as_array()
                .unwrap()
                .iter()
                .map(|l| (l["ifname"].as_str().unwrap().to_owned(), link_addrs(l)))
                .collect();
            v.sort();
            v
        };
        let before = addrs();
        for opts in [
            IfaceOptions::new().address_ipv6(net("2001:db8::44/64")),
            IfaceOptions::new().address_ipv6(net("2001:db8::45/80")),
            IfaceOptions::new().address(net("198.18.5.5/24")),
            // Dual stack (both families read in one dump): either family's conflict is found.
            IfaceOptions::new().address(net("203.0.113.5/24")).address_ipv6(net("2001:db8::46/64")),
            IfaceOptions::new().address(net("198.18.5.6/24")).address_ipv6(net("2001:db8:1::46/64")),
        ] {
            let e = sb.add_interface("vc1", "eth", &opts).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument { .. }) && e.to_string().contains("conflicts"), "{e}");
            let e = sb.add_veth("vh2", "eth", &opts).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        }
        assert_eq!(names(&ipj(&["link", "show", "vc1"])), ["vc1"], "the link stayed home");
        assert!(ipj(&["link"]).as_array().unwrap().iter().all(|l| l["ifname"] != "vh2"));
        // An address already on any interface is refused as an alias, in both families.
        for (dev, a) in
            [("lo", "2001:db8::44/128"), ("lo", "198.18.0.2/32"), ("eth0", "198.18.0.2/24"), ("lo", "127.0.0.1/32")]
        {
            let e = sb.add_alias_ip(dev, net(a)).unwrap_err();
            assert!(matches!(e, Error::AlreadyExists { kind: "address", .. }), "{dev} {a}: {e}");
        }
        assert_eq!(addrs(), before, "nothing changed in the sandbox");
        sb.add_alias_ip("lo", net("2001:db8:1::44/128")).unwrap();
        sb.destroy().unwrap();
    });
}

#[test]
fn destroy_of_an_adopted_namespace_keeps_the_owners_links() {
    in_private_netns(|| {
        let base = TempBase::new("fid-adopt");
        // A "container": a namespace of its own with an interface (peer in the host).
        let container = NetNs::new_unpinned().unwrap();
        let s = Socket::open().unwrap();
        let peer = VethPeer { name: "ceth0".into(), netns: Some(container.as_fd()), ..Default::default() };
        s.execute(link::create_veth("c-host", None, &peer).unwrap()).unwrap();
        host_veth("vm0", "vm1");
        let sb = NetnsSandbox::from_external(&key(&base, "ext"), &container).unwrap();
        sb.add_veth("vh0", "eth", &IfaceOptions::new()).unwrap();
        sb.add_interface("vm0", "mv", &IfaceOptions::new()).unwrap();
        sb.add_interface("", "br", &IfaceOptions::new().bridge(true)).unwrap();
        let e = sb.remove_interface("ceth0").unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "not ours to send anywhere: {e}");
        assert_eq!(names(&ipj_in(&container, &["link"])), ["br0", "ceth0", "eth0", "lo", "mv0"]);
        let report = sb.destroy_reporting().unwrap();
        assert!(report.left_behind.is_empty(), "{report:?}");
        assert_eq!(names(&ipj_in(&container, &["link"])), ["ceth0", "lo"], "the owner's link stays");
        assert!(!Path::new(&key(&base, "ext")).exists(), "the sandbox's own pin is gone");
        let host = names(&ipj(&["link"]));
        assert!(host.contains(&"vm0".to_owned()) && host.contains(&"c-host".to_owned()), "{host:?}");
        assert!(!host.contains(&"vh0".to_owned()), "{host:?}");
    });
}

#[test]
fn rollback_after_the_move_restores_the_origin_exactly() {
    in_private_netns(|| {
        let base = TempBase::new("fid-rollback");
        let sb = NetnsSandbox::create(&key(&base, "r"), &CreateOptions::default()).unwrap();
        // An up, addressed link with routes, a MAC and MTU of its own, in a bridge.
        host_veth("vc0", "vh0");
        let s = Socket::open().unwrap();
        s.execute(link::create_bridge("br-h").unwrap()).unwrap();
        let br = s.link(LinkRef::Name("br-h")).unwrap().index;
        s.set_link(LinkRef::Index(br), &LinkChange::new().up(true)).unwrap();
        s.set_link(LinkRef::Name("vh0"), &LinkChange::new().up(true)).unwrap();
        ip(&["link", "set", "vc0", "address", "02:42:c6:12:07:07", "mtu", "1400", "master", "br-h", "up"]);
        ip(&["link", "set", "vc0", "nomaster"]);
        ip(&["addr", "add", "198.18.7.7/24", "dev", "vc0"]);
        ip(&["addr", "add", "2001:db8:7::7/64", "dev", "vc0", "nodad"]);
        ip(&["route", "add", "203.0.113.0/24", "dev", "vc0"]);
        ip(&["route", "add", "192.0.2.0/24", "via", "198.18.7.1"]);
        ip(&["-6", "route", "add", "2001:db8:99::/64", "dev", "vc0"]);
        // Master last: addresses on a bridge port are unusual but must come back too.
        ip(&["link", "set", "vc0", "master", "br-h"]);
        let snapshot = || {
            (
                link_state(&ipj(&["-d", "link", "show", "vc0"])[0]),
                addr_state(&ipj(&["addr", "show", "dev", "vc0"])),
                route_state("vc0"),
            )
        };
        let before = snapshot();
        assert_eq!(before.0, ("vc0".into(), true, "02:42:c6:12:07:07".into(), 1400, Some("br-h".into()), None));
        assert_eq!(before.1.len(), 2, "{before:?}");
        assert_eq!(before.2.len(), 5, "{before:?}");

        // 1. A per-interface sysctl this kernel lacks: only known once the link is inside.
        let e = sb
            .add_interface("vc0", "eth", &IfaceOptions::new().mac(MAC_INSIDE).mtu(1300).sysctl("ipv4/no_such_key", "1"))
            .unwrap_err();
        assert!(matches!(e, Error::SysctlMissing { .. }), "{e}");
        assert_eq!(snapshot(), before, "rollback after a missing sysctl");

        // 2. A route the kernel refuses (it exists already inside).
        sb.add_interface("", "br", &IfaceOptions::new().bridge(true).routes(vec![net("198.51.100.0/24")])).unwrap();
        let e = sb
            .add_interface(
                "vc0",
                "eth",
                &IfaceOptions::new().address(net("198.19.0.2/16")).routes(vec![net("198.51.100.0/24")]),
            )
            .unwrap_err();
        assert!(e.is_already_exists(), "{e}");
        assert_eq!(snapshot(), before, "rollback after a refused route");
        let inside = names(&ipj_sb(&sb, &["link"]));
        assert_eq!(inside, ["br0", "lo"], "nothing left inside");
        assert!(ipj(&["-d", "link", "show", "vc0"])[0].get("altnames").is_none(), "no marker left");
        sb.destroy().unwrap();
    });
}

#[test]
fn a_moved_link_goes_back_to_its_true_origin_from_another_namespace() {
    in_private_netns(|| {
        let base = TempBase::new("fid-origin");
        let k = key(&base, "o");
        let origin = NetNs::current().unwrap();
        host_veth("vc0", "vh0");
        ip(&["link", "set", "vc0", "address", "02:42:c6:12:07:07", "mtu", "1400", "up"]);
        let sb = NetnsSandbox::create(&k, &CreateOptions::default()).unwrap();
        let opts = IfaceOptions::new().mac(MAC_INSIDE).mtu(1300).address(net("198.18.0.2/16"));
        assert_eq!(sb.add_interface("vc0", "eth", &opts).unwrap(), "eth0");
        drop(sb);
        let want = ("vc0".to_owned(), true, "02:42:c6:12:07:07".to_owned(), 1400, None, None);

        // Another thread in another namespace (an engine restarted elsewhere) removes it.
        let elsewhere = NetNs::new_unpinned().unwrap();
        netns::run_in_result(&elsewhere, || NetnsSandbox::open(&k)?.remove_interface("eth0")).unwrap();
        assert_eq!(link_state(&ipj_in(&origin, &["-d", "link", "show", "vc0"])[0]), want, "home as it was");
        assert_eq!(names(&ipj_in(&elsewhere, &["link"])), ["lo"], "never sent to the caller's namespace");

        // And destroy from there.
        let sb = NetnsSandbox::open(&k).unwrap();
        sb.add_interface("vc0", "eth", &opts).unwrap();
        netns::run_in_result(&elsewhere, || NetnsSandbox::open(&k)?.destroy_reporting()).unwrap();
        assert_eq!(link_state(&ipj_in(&origin, &["-d", "link", "show", "vc0"])[0]), want);
        assert_eq!(names(&ipj_in(&elsewhere, &["link"])), ["lo"]);
        assert!(matches!(sb.info(), Err(Error::Destroyed { .. })));
    });
}

#[test]
fn an_origin_that_is_gone_is_a_typed_error_and_destroy_reports_the_link() {
    in_private_netns(|| {
        let base = TempBase::new("fid-gone");
        let k = key(&base, "g");
        let here = NetNs::current().unwrap();
        let sb = NetnsSandbox::create(&k, &CreateOptions::default()).unwrap();
        // The origin: a namespace held by this handle only, whose veth's peer lives here.
        let doomed = NetNs::new_unpinned().unwrap();
        netns::run_in_result(&doomed, || {
            let peer = VethPeer { name: "peer-here".into(), netns: Some(here.as_fd()), ..Default::default() };
            Socket::open()?.execute(link::create_veth("vgone", None, &peer)?)?;
            NetnsSandbox::open(&k)?.add_interface("vgone", "eth", &IfaceOptions::new()).map(drop)
        })
        .unwrap();
        drop(doomed);
        let e = sb.remove_interface("eth0").unwrap_err();
        assert!(matches!(e, Error::NotFound { kind: "origin namespace", .. }), "{e}");
        assert_eq!(names(&ipj_sb(&sb, &["link"])), ["eth0", "lo"], "the link stays where it is");
        assert_eq!(names(&ipj(&["link"])), ["lo", "peer-here"], "not sent to the caller's namespace");
        let report = sb.destroy_reporting().unwrap();
        assert_eq!(report.left_behind.len(), 1, "{report:?}");
        assert_eq!(report.left_behind[0].0, "eth0");
        assert!(report.left_behind[0].1.contains("origin namespace"), "{report:?}");
        // The namespace goes once the kernel frees it; the link with it (a veth: deleted).
        let mut left = Vec::new();
        for _ in 0..500 {
            left = names(&ipj(&["link"]));
            if left == ["lo"] {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(left, ["lo"]);
    });
}

#[test]
fn a_users_alias_survives_add_and_remove() {
    in_private_netns(|| {
        let base = TempBase::new("fid-alias");
        let sb = NetnsSandbox::create(&key(&base, "a"), &CreateOptions::default()).unwrap();
        host_veth("vc0", "vh0");
        ip(&["link", "set", "vc0", "alias", "uplink to rack 7"]);
        sb.add_interface("vc0", "eth", &IfaceOptions::new()).unwrap();
        let inside = &ipj_sb(&sb, &["-d", "link", "show", "eth0"])[0];
        assert_eq!(inside["ifalias"], "uplink to rack 7", "{inside}");
        let alt = inside["altnames"].as_array().unwrap();
        assert!(
            alt.len() == 1 && alt[0].as_str().unwrap().starts_with("nsbx.o."),
            "bookkeeping in an altname: {alt:?}"
        );
        sb.remove_interface("eth0").unwrap();
        let home = &ipj(&["-d", "link", "show", "vc0"])[0];
        assert_eq!(home["ifalias"], "uplink to rack 7", "{home}");
        assert!(home.get("altnames").is_none(), "{home}");
        // A user's alias on a link the sandbox made is left alone too.
        sb.add_veth("vh1", "eth", &IfaceOptions::new()).unwrap();
        sb.invoke(|| ip(&["link", "set", "eth0", "alias", "mine"])).unwrap();
        let i = &sb.interfaces().unwrap()[0];
        assert!(i.created, "still known as created: {i:?}");
        sb.destroy().unwrap();
        common::wait_reaped();
        assert!(ipj(&["link"]).as_array().unwrap().iter().all(|l| l["ifname"] != "vh1"));
    });
}

#[test]
fn a_handle_whose_sandbox_was_destroyed_elsewhere_says_so() {
    in_private_netns(|| {
        let base = TempBase::new("fid-stale");
        let k = key(&base, "s");
        let a = NetnsSandbox::create(&k, &CreateOptions::default()).unwrap();
        a.add_veth("vh0", "eth", &IfaceOptions::new()).unwrap();
        NetnsSandbox::open(&k).unwrap().destroy().unwrap();
        assert!(!Path::new(&k).exists());
        assert!(matches!(a.info(), Err(Error::Destroyed { .. })), "{:?}", a.info());
        assert!(matches!(a.interfaces(), Err(Error::Destroyed { .. })));
        assert!(matches!(a.add_veth("vh1", "eth", &IfaceOptions::new()), Err(Error::Destroyed { .. })));
        // The stale handle let go of the old namespace, so the kernel can free it (and vh0).
        common::wait_reaped();
        assert_eq!(names(&ipj(&["link"])), ["lo"], "nothing was made by the stale handle");

        // The key pins a new sandbox now: the stale handle neither sees nor destroys it.
        let b = NetnsSandbox::create(&k, &CreateOptions::default()).unwrap();
        let c = NetnsSandbox::open(&k).unwrap();
        b.add_veth("vh2", "eth", &IfaceOptions::new()).unwrap();
        assert!(matches!(a.info(), Err(Error::Destroyed { .. })));
        a.destroy().unwrap();
        assert!(netns::is_pinned(Path::new(&k)), "b's pin survives a's destroy");
        assert_eq!(names(&ipj_sb(&b, &["link"])), ["eth0", "lo"]);
        // Unpinned by another process (as `ip netns del` or a second engine would).
        netns::unpin(Path::new(&k)).unwrap();
        assert!(matches!(c.interfaces(), Err(Error::Destroyed { .. })));
        assert!(matches!(b.invoke(|| 1), Err(Error::Destroyed { .. })));
        b.destroy().unwrap();
    });
}

/// Bind-mounts a new network namespace at `path` without netsandbox (as `ip netns add` does,
/// before any base exists).
fn foreign_pin(path: &Path) {
    std::fs::write(path, b"").unwrap();
    in_private_netns(|| {
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            path,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap()
    });
}

fn mounts_at_or_below(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|p| p == &dir || p.starts_with(&format!("{dir}/")))
        .collect()
}

#[test]
fn pins_made_before_the_first_create_stay_reachable_and_gc_releases_the_base() {
    in_private_netns(|| {
        let tmp = TempBase::new("fid-base");
        let base = tmp.path().join("base");
        std::fs::create_dir(&base).unwrap();
        let pre = base.join("pre");
        foreign_pin(&pre);
        let pre_ino = NetNs::from_path(&pre).unwrap().inode().unwrap();
        assert!(mounts_at_or_below(&base).len() == 1, "{:?}", mounts_at_or_below(&base));

        let sb = NetnsSandbox::create(&base.join("new").display().to_string(), &CreateOptions::default()).unwrap();
        // The base is a shared mount now, and the earlier pin is still a namespace at its path.
        assert!(netns::is_pinned(&pre), "a pin made before the base mount is still reachable");
        let old = NetnsSandbox::open(&pre.display().to_string()).unwrap();
        assert_eq!(old.invoke(common::thread_netns_inode).unwrap(), pre_ino);
        let shown: Vec<String> = mounts_at_or_below(&base);
        assert_eq!(shown.iter().filter(|p| p.ends_with("/pre")).count(), 1, "no hidden copy left: {shown:?}");

        old.destroy().unwrap();
        sb.destroy().unwrap();
        assert!(!pre.exists(), "the old pin really went (nothing hidden kept it busy)");
        assert_eq!(mounts_at_or_below(&base), [base.display().to_string()], "only the base mount is left");
        NetnsSandbox::gc(&base, &|_| true).unwrap();
        assert!(mounts_at_or_below(&base).is_empty(), "gc released the base mount");
        // A base that is a mount of its own is not netsandbox's to release.
        nix::mount::mount(Some("none"), &base, Some("tmpfs"), nix::mount::MsFlags::empty(), None::<&str>).unwrap();
        let sb = NetnsSandbox::create(&base.join("t").display().to_string(), &CreateOptions::default()).unwrap();
        sb.destroy().unwrap();
        NetnsSandbox::gc(&base, &|_| true).unwrap();
        assert_eq!(mounts_at_or_below(&base).len(), 1, "the tmpfs stays");
        nix::mount::umount2(&base, nix::mount::MntFlags::MNT_DETACH).unwrap();
    });
}

/// The netns sandbox's side of the fidelity table; lives in the calling thread's (private host)
/// namespace.
struct NetnsWorld {
    sb: NetnsSandbox,
    key: String,
    /// The adopted namespace, for [`Scenario::Adopted`].
    container: Option<NetNs>,
    _base: TempBase,
}

impl common::table::World for NetnsWorld {
    fn sb(&self) -> &dyn Sandbox {
        &self.sb
    }
    fn other_handle(&self) -> Box<dyn Sandbox + '_> {
        Box::new(NetnsSandbox::open(&self.key).unwrap())
    }
    fn host_link(&self, name: &str) {
        host_veth(name, &format!("{name}p"));
    }
    fn host_vxlan(&self, name: &str) {
        let vx = link::Vxlan { vni: 42, local: None, port: 4789, underlay: None, learning: false };
        Socket::open().unwrap().execute(link::create_vxlan(name, &vx).unwrap()).unwrap();
    }
    fn host_has(&self, name: &str) -> bool {
        Socket::open().unwrap().link(LinkRef::Name(name)).is_ok()
    }
    fn destroy_reporting(&self) -> Vec<String> {
        self.sb.destroy_reporting().unwrap().left_behind.into_iter().map(|(n, _)| n).collect()
    }
    fn still_inside(&self, name: &str) -> bool {
        let ns = self.container.as_ref().expect("an adopted namespace");
        names(&ipj_in(ns, &["link"])).iter().any(|n| n == name)
    }
}

#[test]
fn fidelity_table_matches_the_fake() {
    use common::table::{FIDELITY_EXPECTED, Scenario, fidelity_cases};
    let eth0 = || IfaceOptions::new().address(net("198.18.0.2/16")).address_ipv6(net("2001:db8::2/64"));
    let got = fidelity_cases(&|scenario, run| {
        in_private_netns(|| {
            let base = TempBase::new("fid-table");
            let k = key(&base, "t");
            let here = NetNs::current().unwrap();
            let mut container = None;
            let sb = match scenario {
                Scenario::Plain => {
                    let sb = NetnsSandbox::create(&k, &CreateOptions::default()).unwrap();
                    host_veth("vm0", "vm0p");
                    assert_eq!(sb.add_interface("vm0", "eth", &eth0()).unwrap(), "eth0");
                    sb
                }
                Scenario::Adopted => {
                    let c = NetNs::new_unpinned().unwrap();
                    netns::run_in(&c, || host_veth("ceth0", "ceth0p")).unwrap();
                    let sb = NetnsSandbox::from_external(&k, &c).unwrap();
                    container = Some(c);
                    sb
                }
                Scenario::OriginGone => {
                    let sb = NetnsSandbox::create(&k, &CreateOptions::default()).unwrap();
                    let doomed = NetNs::new_unpinned().unwrap();
                    netns::run_in_result(&doomed, || {
                        let peer = VethPeer { name: "vm0p".into(), netns: Some(here.as_fd()), ..Default::default() };
                        Socket::open()?.execute(link::create_veth("vm0", None, &peer)?)?;
                        NetnsSandbox::open(&k)?.add_interface("vm0", "eth", &eth0()).map(drop)
                    })
                    .unwrap();
                    sb
                }
            };
            run(&NetnsWorld { sb, key: k, container, _base: base });
        })
    });
    let got: Vec<(&str, &str)> = got.iter().map(|(c, o)| (*c, o.as_str())).collect();
    assert_eq!(got, FIDELITY_EXPECTED, "the netns sandbox and the fake disagree");
}

#[test]
fn an_origin_marker_left_by_a_crashed_add_is_replaced() {
    in_private_netns(|| {
        let base = TempBase::new("fid-stalemark");
        let sb = NetnsSandbox::create(&key(&base, "m"), &CreateOptions::default()).unwrap();
        host_veth("vc0", "vh0");
        // As if an engine died after marking vc0 but before moving it.
        ip(&["link", "property", "add", "dev", "vc0", "altname", "nsbx.o.1.2.3.-.-.u.vc0"]);
        sb.add_interface("vc0", "eth", &IfaceOptions::new()).unwrap();
        let inside = &ipj_sb(&sb, &["-d", "link", "show", "eth0"])[0];
        let alt: Vec<&str> = inside["altnames"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(alt.len() == 1 && alt[0] != "nsbx.o.1.2.3.-.-.u.vc0", "{alt:?}");
        sb.remove_interface("eth0").unwrap();
        assert!(ipj(&["-d", "link", "show", "vc0"])[0].get("altnames").is_none());
        sb.destroy().unwrap();
    });
}
