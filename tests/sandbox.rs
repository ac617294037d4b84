//! NetnsSandbox against the real kernel: libnetwork's test ground and more. Every test runs in
//! its own private host namespace and pins under its own temporary directory.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{TempBase, addr, in_private_netns, ip, key, net};
use ipnet::IpNet;
use netsandbox::netlink::Socket;
use netsandbox::netlink::link::{self, LinkChange, LinkRef, VethPeer, Vxlan};
use netsandbox::sandbox::{
    CreateOptions, IfaceOptions, NeighFamily, NeighOptions, NetnsSandbox, Sandbox, SandboxExt, SandboxType, StaticRoute,
};
use netsandbox::{Error, netns};

const MAC_A: [u8; 6] = [0x02, 0x42, 0xc6, 0x12, 0x00, 0x02];

/// A veth pair `a`/`b` in the current (private host) namespace.
fn host_veth(a: &str, b: &str) {
    let s = Socket::open().unwrap();
    let peer = VethPeer { name: b.into(), ..Default::default() };
    s.execute(link::create_veth(a, None, &peer).unwrap()).unwrap();
}

fn host_has(name: &str) -> bool {
    Socket::open().unwrap().link(LinkRef::Name(name)).is_ok()
}

#[test]
fn create_twice_open_destroy() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-create");
        let k = key(&base, "c1");
        let sb = NetnsSandbox::create(&k, &CreateOptions::default()).unwrap();
        assert!(netns::is_pinned(k.as_ref()));
        let e = NetnsSandbox::create(&k, &CreateOptions::default()).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
        // The loopback is up inside.
        let lo = sb.invoke(|| ip(&["-o", "link", "show", "lo"])).unwrap();
        assert!(lo.contains("UP"), "{lo}");
        // Another handle on the same key sees the same namespace.
        let again = NetnsSandbox::open(&k).unwrap();
        let a = sb.invoke(common::thread_netns_inode).unwrap();
        let b = again.invoke(common::thread_netns_inode).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, common::thread_netns_inode());
        sb.destroy().unwrap();
        sb.destroy().unwrap();
        assert!(!std::path::Path::new(&k).exists());
        assert!(!netns::is_pinned(k.as_ref()));
        assert!(matches!(sb.info(), Err(Error::Destroyed { .. })));
        assert!(matches!(NetnsSandbox::open(&k), Err(Error::NotFound { .. })));
        drop(again);
    });
}

#[test]
fn ipv6_policy_is_explicit() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-v6");
        let off = NetnsSandbox::create(&key(&base, "off"), &CreateOptions { ipv6: Some(false) }).unwrap();
        let v = off.invoke(|| std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").unwrap()).unwrap();
        assert_eq!(v.trim(), "1");
        let on = NetnsSandbox::create(&key(&base, "on"), &CreateOptions::default()).unwrap();
        let v = on.invoke(|| std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6").unwrap()).unwrap();
        assert_eq!(v.trim(), "0");
        off.destroy().unwrap();
        on.destroy().unwrap();
    });
}

#[test]
fn add_remove_interface_and_lowest_free_index() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-iface");
        let sb = NetnsSandbox::create(&key(&base, "i"), &CreateOptions::default()).unwrap();
        host_veth("vh0", "vc0");
        host_veth("vh1", "vc1");
        let opts = IfaceOptions::new()
            .address(net("198.18.0.2/16"))
            .address_ipv6(net("2001:db8::2/64"))
            .mac(MAC_A)
            .mtu(1450)
            .routes(vec![net("203.0.113.0/24")]);
        assert_eq!(sb.add_interface("vc0", "eth", &opts).unwrap(), "eth0");
        assert!(!host_has("vc0"), "the link moved out of the host");
        let shown = sb.invoke(|| ip(&["-o", "addr", "show", "dev", "eth0"])).unwrap();
        assert!(shown.contains("198.18.0.2/16") && shown.contains("2001:db8::2/64"), "{shown}");
        let l = sb.invoke(|| ip(&["-o", "link", "show", "eth0"])).unwrap();
        assert!(l.contains("02:42:c6:12:00:02") && l.contains("mtu 1450") && l.contains(",UP"), "{l}");
        let r = sb.invoke(|| ip(&["route", "show", "203.0.113.0/24"])).unwrap();
        assert!(r.contains("dev eth0") && r.contains("scope link"), "{r}");
        let i = &sb.interfaces().unwrap()[0];
        assert_eq!(i.origin_name.as_deref(), Some("vc0"));
        assert_eq!(i.addresses, vec![net("198.18.0.2/16"), net("2001:db8::2/64")]);
        assert_eq!(i.routes, vec![net("203.0.113.0/24")]);

        assert_eq!(sb.add_interface("vc1", "eth", &IfaceOptions::new()).unwrap(), "eth1");
        sb.remove_interface("eth0").unwrap();
        assert!(host_has("vc0"), "removed link is back in the origin under its own name");
        let e = sb.remove_interface("eth0").unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "removing twice: {e}");
        // Re-adding takes the lowest free index.
        assert_eq!(sb.add_interface("vc0", "eth", &IfaceOptions::new()).unwrap(), "eth0");
        // A bridge created inside.
        assert_eq!(sb.add_interface("", "br", &IfaceOptions::new().bridge(true)).unwrap(), "br0");
        assert_eq!(sb.add_interface("vh1", "eth", &IfaceOptions::new().master("br0")).unwrap(), "eth2");
        let infos = sb.interfaces().unwrap();
        assert_eq!(infos.iter().find(|i| i.name == "eth2").unwrap().master.as_deref(), Some("br0"));
        sb.remove_interface("br0").unwrap();
        assert!(sb.interfaces().unwrap().iter().all(|i| i.name != "br0"));
        sb.destroy().unwrap();
    });
}

#[test]
fn ipv4_route_conflict_is_rejected_and_link_stays_home() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-conflict");
        let sb = NetnsSandbox::create(&key(&base, "c"), &CreateOptions::default()).unwrap();
        host_veth("vh0", "vc0");
        host_veth("vh1", "vc1");
        sb.add_interface("vc0", "eth", &IfaceOptions::new().address(net("198.18.0.2/16"))).unwrap();
        let before = sb.info().unwrap();
        let e = sb.add_interface("vc1", "eth", &IfaceOptions::new().address(net("198.18.5.5/24"))).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().contains("conflicts"), "{e}");
        assert!(host_has("vc1"));
        assert_eq!(sb.info().unwrap(), before);
        sb.destroy().unwrap();
    });
}

#[test]
fn failed_configuration_rolls_back_the_move() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-rollback");
        let sb = NetnsSandbox::create(&key(&base, "r"), &CreateOptions::default()).unwrap();
        host_veth("vh0", "vc0");
        let s = Socket::open().unwrap();
        let orig = s.link(LinkRef::Name("vc0")).unwrap();
        // An interface route whose destination exists already: the kernel refuses it after the move.
        sb.add_interface("", "br", &IfaceOptions::new().bridge(true).routes(vec![net("203.0.113.0/24")])).unwrap();
        let before = sb.info().unwrap();
        let e = sb
            .add_interface("vc0", "eth", &IfaceOptions::new().mac(MAC_A).routes(vec![net("203.0.113.0/24")]))
            .unwrap_err();
        assert!(e.is_already_exists(), "{e}");
        let Error::Kernel(k) = &e else { panic!("a kernel error: {e}") };
        assert_eq!((k.op, k.namespace.as_deref()), ("add route", Some(sb.key())), "the error says what and where");
        assert!(e.to_string().contains(sb.key()), "{e}");
        let back = s.link(LinkRef::Name("vc0")).expect("link returned to its origin");
        assert_eq!(back.mac, orig.mac, "original MAC restored");
        assert!(back.altnames.is_empty(), "{:?}", back.altnames);
        assert_eq!(sb.info().unwrap(), before);
        sb.destroy().unwrap();
    });
}

#[test]
fn ipv6_address_is_usable_at_once() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-dad");
        let sb = NetnsSandbox::create(&key(&base, "d"), &CreateOptions::default()).unwrap();
        sb.add_veth("vh0", "eth", &IfaceOptions::new().address_ipv6(net("2001:db8::2/64"))).unwrap();
        let shown = sb.invoke(|| ip(&["-6", "-o", "addr", "show", "dev", "eth0"])).unwrap();
        let line = shown.lines().find(|l| l.contains("2001:db8::2/64")).unwrap();
        assert!(!line.contains("tentative"), "{line}");
        // Binding to it works immediately (a tentative address would give EADDRNOTAVAIL).
        sb.invoke(|| std::net::UdpSocket::bind("[2001:db8::2]:0").map(drop)).unwrap().unwrap();
        let reaped = sb.destroy_detached().unwrap();
        assert!(reaped.wait(std::time::Duration::from_secs(60)), "the kernel reaps the host end");
        assert!(!host_has("vh0"), "the host end is gone once reaped");
    });
}

#[test]
fn ten_interfaces_in_parallel() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-par");
        let sb = NetnsSandbox::create(&key(&base, "p"), &CreateOptions::default()).unwrap();
        for i in 0..10 {
            host_veth(&format!("vh{i}"), &format!("vc{i}"));
        }
        let host = netns::NetNs::current().unwrap();
        let mut names: Vec<String> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..10)
                .map(|i| {
                    let (sb, host) = (&sb, &host);
                    s.spawn(move || {
                        // Callers on other threads act from the same host namespace.
                        netns::run_in_result(host, || sb.add_interface(&format!("vc{i}"), "eth", &IfaceOptions::new()))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
        });
        names.sort();
        let mut want: Vec<String> = (0..10).map(|i| format!("eth{i}")).collect();
        want.sort();
        assert_eq!(names, want);
        sb.destroy().unwrap();
    });
}

/// Accepts one connection on `l`, echoes what it reads, and returns it.
fn echo_once(l: TcpListener) -> Vec<u8> {
    let (mut c, _) = l.accept().unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    c.write_all(&buf).unwrap();
    buf.to_vec()
}

fn tcp_round_trip(server: &dyn Sandbox, client: &dyn Sandbox, to: IpAddr) {
    let listener = server.invoke(|| TcpListener::bind(SocketAddr::new(to, 7000))).unwrap().unwrap();
    std::thread::scope(|s| {
        let h = s.spawn(|| echo_once(listener));
        let got = client
            .invoke(|| {
                let mut c = TcpStream::connect_timeout(&SocketAddr::new(to, 7000), Duration::from_secs(10))?;
                c.write_all(b"hello")?;
                let mut buf = [0u8; 5];
                c.read_exact(&mut buf)?;
                Ok::<_, std::io::Error>(buf)
            })
            .unwrap()
            .unwrap();
        assert_eq!(&got, b"hello");
        assert_eq!(h.join().unwrap(), b"hello");
    });
}

#[test]
fn traffic_between_two_sandboxes_on_a_bridge() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-traffic");
        let host = Socket::open().unwrap();
        host.execute(link::create_bridge("br-t").unwrap()).unwrap();
        let br = host.link(LinkRef::Name("br-t")).unwrap().index;
        host.set_link(LinkRef::Index(br), &LinkChange::new().up(true)).unwrap();
        let a = NetnsSandbox::create(&key(&base, "a"), &CreateOptions::default()).unwrap();
        let b = NetnsSandbox::create(&key(&base, "b"), &CreateOptions::default()).unwrap();
        for (sb, hn, i) in [(&a, "vha", 2), (&b, "vhb", 3)] {
            let o = IfaceOptions::new()
                .address(net(&format!("198.18.0.{i}/16")))
                .address_ipv6(net(&format!("2001:db8::{i}/64")));
            sb.add_veth(hn, "eth", &o).unwrap();
            host.set_link(LinkRef::Name(hn), &LinkChange::new().master(br)).unwrap();
        }
        let before = b.statistics("eth0").unwrap();
        tcp_round_trip(&a, &b, addr("198.18.0.2"));
        tcp_round_trip(&b, &a, addr("2001:db8::3"));
        let after = b.statistics("eth0").unwrap();
        assert!(after.tx_packets > before.tx_packets && after.rx_bytes > before.rx_bytes, "{before:?} {after:?}");
        assert!(matches!(b.statistics("eth9"), Err(Error::NotFound { .. })));
        a.destroy().unwrap();
        b.destroy().unwrap();
    });
}

#[test]
fn gateways_routes_neighbors_and_restore_round_trip() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-restore");
        let k = key(&base, "r");
        let sb = NetnsSandbox::create(&k, &CreateOptions::default()).unwrap();
        host_veth("vh0", "vc0");
        sb.add_interface(
            "vc0",
            "eth",
            &IfaceOptions::new().address(net("198.18.0.2/16")).address_ipv6(net("2001:db8::2/64")),
        )
        .unwrap();
        sb.add_veth(
            "vh1",
            "eth",
            &IfaceOptions::new().address(net("198.51.100.2/24")).address_ipv6(net("2001:db8:1::2/64")),
        )
        .unwrap();
        sb.set_gateway(addr("198.18.255.254")).unwrap();
        sb.set_gateway(addr("2001:db8::ffff")).unwrap();
        let e = sb.set_gateway(addr("198.18.255.253")).unwrap_err();
        assert!(e.is_already_exists(), "second v4 gateway: {e}");
        sb.add_static_route(&StaticRoute::via(net("198.19.7.0/24"), addr("198.51.100.1"))).unwrap();
        sb.add_static_route(&StaticRoute::dev(net("203.0.113.0/24"), "eth0")).unwrap();
        let e = sb.add_static_route(&StaticRoute::dev(net("203.0.113.0/24"), "eth0")).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
        sb.add_alias_ip("lo", net("203.0.113.10/32")).unwrap();
        let mac = [0x02, 0x42, 0xc6, 0x12, 0xff, 0xfe];
        sb.add_neighbor(addr("198.18.255.254"), mac, false, &NeighOptions::new()).unwrap();
        sb.add_neighbor(addr("2001:db8::ffff"), mac, false, &NeighOptions::new().link_name("eth0")).unwrap();
        sb.add_neighbor(addr("198.51.100.1"), mac, false, &NeighOptions::new()).unwrap();
        let e = sb.add_neighbor(addr("198.51.100.1"), mac, false, &NeighOptions::new()).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { kind: "neighbor", .. }), "{e}");
        let mac2 = [0x02, 0x42, 0xc6, 0x12, 0xff, 0xfd];
        sb.add_neighbor(addr("198.51.100.1"), mac2, true, &NeighOptions::new()).unwrap();
        let shown = sb.invoke(|| ip(&["route", "show"])).unwrap();
        assert!(shown.contains("default via 198.18.255.254 dev eth0"), "{shown}");

        let original = sb.info().unwrap();
        assert_eq!(original.interfaces.len(), 2);
        assert_eq!(original.gateway, Some("198.18.255.254".parse().unwrap()));
        assert_eq!(original.gateway6, Some("2001:db8::ffff".parse().unwrap()));
        assert_eq!(original.static_routes.len(), 2, "{:?}", original.static_routes);
        assert_eq!(original.loopback_addresses, vec![net("203.0.113.10/32")]);
        assert_eq!(original.neighbors.len(), 3, "{:?}", original.neighbors);
        assert!(original.neighbors.iter().any(|n| n.mac == mac2));

        // The engine restarts: every handle is dropped, then the sandbox is reopened by key.
        drop(sb);
        let restored = NetnsSandbox::open(&k).unwrap();
        restored.restore().unwrap();
        assert_eq!(restored.info().unwrap(), original);
        // Restore keeps addresses (live-restore): nothing in the kernel changed.
        let shown = restored.invoke(|| ip(&["-o", "addr", "show", "dev", "eth0"])).unwrap();
        assert!(shown.contains("198.18.0.2/16") && shown.contains("2001:db8::2/64"), "{shown}");
        restored.unset_gateway(addr("198.18.255.254")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(restored.unset_gateway(addr("198.18.255.254")), Err(Error::NotFound { .. })));
        restored.remove_static_route(&StaticRoute::via(net("198.19.7.0/24"), addr("198.51.100.1"))).unwrap();
        assert!(matches!(
            restored.remove_static_route(&StaticRoute::via(net("198.19.7.0/24"), addr("198.51.100.1"))),
            Err(Error::NotFound { .. })
        ));
        restored.delete_neighbor(addr("198.51.100.1"), mac2, true).unwrap();
        assert!(matches!(restored.delete_neighbor(addr("198.51.100.1"), mac2, true), Err(Error::NotFound { .. })));
        restored.remove_alias_ip("lo", net("203.0.113.10/32")).unwrap();
        assert!(matches!(restored.remove_alias_ip("lo", net("203.0.113.10/32")), Err(Error::NotFound { .. })));
        // The restored handle still knows the origin name.
        restored.remove_interface("eth0").unwrap();
        assert!(host_has("vc0"));

        restored.destroy().unwrap();
    });
}

#[test]
fn load_balancer_shape() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-lb");
        let sb = NetnsSandbox::create(&key(&base, "lb"), &CreateOptions::default()).unwrap();
        sb.add_veth("vh0", "eth", &IfaceOptions::new().address(net("198.18.0.2/16"))).unwrap();
        sb.add_alias_ip(sb.loopback_name(), net("203.0.113.10/32")).unwrap();
        sb.disable_arp_for_vip("eth0").unwrap();
        let (ig, an) = sb
            .invoke(|| {
                let r = |k: &str| std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/eth0/{k}")).unwrap();
                (r("arp_ignore"), r("arp_announce"))
            })
            .unwrap();
        assert_eq!((ig.trim(), an.trim()), ("1", "2"));
        let ipvs = sb.invoke(|| std::path::Path::new("/proc/sys/net/ipv4/vs").exists()).unwrap();
        let report = sb.apply_os_tweaks(&[SandboxType::LoadBalancer, SandboxType::Ingress]).unwrap();
        if ipvs {
            assert_eq!(report.written.len() + report.unchanged.len(), 3, "{report:?}");
        } else {
            println!("IPVS absent on this kernel: tweaks reported as skipped: {:?}", report.missing);
            assert_eq!(report.missing.len(), 3, "{report:?}");
            assert!(report.missing.iter().any(|k| k.contains("conn_reuse_mode")));
        }
        let shown = sb.invoke(|| ip(&["-o", "addr", "show", "dev", "lo"])).unwrap();
        assert!(shown.contains("203.0.113.10/32"), "{shown}");
        sb.destroy().unwrap();
    });
}

#[test]
fn overlay_traffic_across_vxlan() {
    // Two private "hosts" joined by an underlay veth; a VXLAN device made in each host and moved
    // into a sandbox behind it; fdb and neighbor entries programmed through the API.
    let base = TempBase::new("sbx-overlay");
    let h1 = netns::NetNs::new_unpinned().unwrap();
    let h2 = netns::NetNs::new_unpinned().unwrap();
    let vx_mac = |i: u8| [0x02, 0x42, 0xc6, 0x33, 0x00, i];
    let setup = |h: &netns::NetNs, i: u8| {
        let (base, key) = (&base, key(&base, &format!("ov{i}")));
        let _ = base;
        netns::run_in_result(h, || {
            let s = Socket::open()?;
            let u = s.link(LinkRef::Name(&format!("u{i}")))?.index;
            s.add_address(u, &net(&format!("192.0.2.{i}/24")), Default::default())?;
            s.set_link(LinkRef::Index(u), &LinkChange::new().up(true))?;
            let vx = Vxlan {
                vni: 4242,
                local: Some(addr(&format!("192.0.2.{i}"))),
                port: 4789,
                underlay: Some(u),
                learning: false,
            };
            s.execute(link::create_vxlan(&format!("vx{i}"), &vx)?)?;
            let sb = NetnsSandbox::create(&key, &CreateOptions::default())?;
            let o = IfaceOptions::new().address(net(&format!("198.51.100.{i}/24"))).mac(vx_mac(i)).mtu(1450);
            sb.add_interface(&format!("vx{i}"), "vxlan", &o)?;
            Ok(sb)
        })
    };
    // Underlay: u1 in h1, u2 in h2.
    netns::run_in_result(&h1, || {
        let s = Socket::open()?;
        use std::os::fd::AsFd;
        let peer = VethPeer { name: "u2".into(), netns: Some(h2.as_fd()), ..Default::default() };
        s.execute(link::create_veth("u1", None, &peer)?)
    })
    .unwrap();
    let s1 = setup(&h1, 1).unwrap();
    let s2 = setup(&h2, 2).unwrap();
    for (sb, peer) in [(&s1, 2u8), (&s2, 1u8)] {
        let vtep = addr(&format!("192.0.2.{peer}"));
        let fdb = NeighOptions::new().link_name("vxlan0").family(NeighFamily::Bridge);
        sb.add_neighbor(vtep, vx_mac(peer), false, &fdb).unwrap();
        sb.add_neighbor(
            addr(&format!("198.51.100.{peer}")),
            vx_mac(peer),
            false,
            &NeighOptions::new().link_name("vxlan0"),
        )
        .unwrap();
    }
    let fdb = s1.invoke(|| common::bridge(&["fdb", "show", "dev", "vxlan0"])).unwrap();
    let line = fdb.lines().find(|l| l.contains("02:42:c6:33:00:02 dst 192.0.2.2")).unwrap_or_else(|| panic!("{fdb}"));
    assert!(line.contains("self permanent"), "{line}");
    let info = s1.info().unwrap();
    assert!(info.neighbors.iter().any(|n| n.family == NeighFamily::Bridge && n.ip == addr("192.0.2.2")), "{info:?}");
    tcp_round_trip(&s1, &s2, addr("198.51.100.1"));
    s1.destroy().unwrap();
    s2.destroy().unwrap();
}

#[test]
fn gc_removes_stale_pins() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-gc");
        let keep = NetnsSandbox::create(&key(&base, "keep"), &CreateOptions::default()).unwrap();
        let drop_me = NetnsSandbox::create(&key(&base, "old"), &CreateOptions::default()).unwrap();
        std::fs::write(base.path().join("half"), b"").unwrap(); // a create that crashed half-way
        drop(drop_me);
        let removed = NetnsSandbox::gc(base.path(), &|p| p.ends_with("keep")).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(netns::is_pinned(&base.path().join("keep")));
        assert!(!base.path().join("old").exists() && !base.path().join("half").exists());
        keep.destroy().unwrap();
    });
}

#[test]
fn external_namespace_by_pid() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-ext");
        // A "container": a process in a namespace of its own.
        let ns = netns::NetNs::new_unpinned().unwrap();
        let mut child = netns::run_in(&ns, || std::process::Command::new("sleep").arg("30").spawn().unwrap()).unwrap();
        let pid_ns = netns::NetNs::from_pid(child.id() as i32).unwrap();
        let sb = NetnsSandbox::from_external(&key(&base, "ext"), &pid_ns).unwrap();
        assert_eq!(sb.invoke(common::thread_netns_inode).unwrap(), ns.inode().unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        sb.destroy().unwrap();
    });
}

/// Forwards to a sandbox, and records `info()` and the host's links just before the first
/// `destroy`, so the bad-input table can prove that no failed call changed anything.
struct SnapshotBeforeDestroy<'a> {
    inner: &'a NetnsSandbox,
    before_destroy: parking_lot::Mutex<Option<(netsandbox::sandbox::SandboxInfo, String)>>,
}

impl Sandbox for SnapshotBeforeDestroy<'_> {
    fn key(&self) -> &str {
        self.inner.key()
    }
    fn add_interface(&self, s: &str, p: &str, o: &IfaceOptions) -> netsandbox::Result<String> {
        self.inner.add_interface(s, p, o)
    }
    fn add_veth(&self, h: &str, p: &str, o: &IfaceOptions) -> netsandbox::Result<String> {
        self.inner.add_veth(h, p, o)
    }
    fn remove_interface(&self, n: &str) -> netsandbox::Result<()> {
        self.inner.remove_interface(n)
    }
    fn interfaces(&self) -> netsandbox::Result<Vec<netsandbox::sandbox::InterfaceInfo>> {
        self.inner.interfaces()
    }
    fn statistics(&self, n: &str) -> netsandbox::Result<netsandbox::sandbox::Statistics> {
        self.inner.statistics(n)
    }
    fn set_gateway(&self, g: IpAddr) -> netsandbox::Result<()> {
        self.inner.set_gateway(g)
    }
    fn unset_gateway(&self, g: IpAddr) -> netsandbox::Result<()> {
        self.inner.unset_gateway(g)
    }
    fn add_static_route(&self, r: &StaticRoute) -> netsandbox::Result<()> {
        self.inner.add_static_route(r)
    }
    fn remove_static_route(&self, r: &StaticRoute) -> netsandbox::Result<()> {
        self.inner.remove_static_route(r)
    }
    fn add_neighbor(&self, i: IpAddr, m: [u8; 6], f: bool, o: &NeighOptions) -> netsandbox::Result<()> {
        self.inner.add_neighbor(i, m, f, o)
    }
    fn delete_neighbor(&self, i: IpAddr, m: [u8; 6], d: bool) -> netsandbox::Result<()> {
        self.inner.delete_neighbor(i, m, d)
    }
    fn add_alias_ip(&self, n: &str, c: IpNet) -> netsandbox::Result<()> {
        self.inner.add_alias_ip(n, c)
    }
    fn remove_alias_ip(&self, n: &str, c: IpNet) -> netsandbox::Result<()> {
        self.inner.remove_alias_ip(n, c)
    }
    fn disable_arp_for_vip(&self, n: &str) -> netsandbox::Result<()> {
        self.inner.disable_arp_for_vip(n)
    }
    fn apply_os_tweaks(&self, t: &[SandboxType]) -> netsandbox::Result<netsandbox::sandbox::TweakReport> {
        self.inner.apply_os_tweaks(t)
    }
    fn invoke_boxed(&self, f: Box<dyn FnOnce() + Send + '_>) -> netsandbox::Result<()> {
        self.inner.invoke_boxed(f)
    }
    fn restore(&self) -> netsandbox::Result<()> {
        self.inner.restore()
    }
    fn info(&self) -> netsandbox::Result<netsandbox::sandbox::SandboxInfo> {
        self.inner.info()
    }
    fn destroy(&self) -> netsandbox::Result<()> {
        let mut snap = self.before_destroy.lock();
        if snap.is_none()
            && let Ok(info) = self.inner.info()
        {
            *snap = Some((info, ip(&["-o", "link", "show"])));
        }
        self.inner.destroy()
    }
}

/// Strips counters and other volatile bits from `ip -o link` so dumps compare.
fn link_names(dump: &str) -> Vec<String> {
    let mut v: Vec<String> = dump.lines().filter_map(|l| l.split(':').nth(1).map(|s| s.trim().to_owned())).collect();
    v.sort();
    v
}

#[test]
fn bad_input_table_matches_the_fake_and_changes_nothing() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-table");
        let sb = NetnsSandbox::create(&key(&base, "t"), &CreateOptions::default()).unwrap();
        host_veth("vh0", "vc0");
        host_veth("vh-table", "vh-peer");
        sb.add_interface(
            "vc0",
            "eth",
            &IfaceOptions::new().address(net("198.18.0.2/16")).address_ipv6(net("2001:db8::2/64")),
        )
        .unwrap();
        let info_before = sb.info().unwrap();
        let host_before = ip(&["-o", "link", "show"]);
        let proxy = SnapshotBeforeDestroy { inner: &sb, before_destroy: parking_lot::Mutex::new(None) };
        let got = common::table::bad_input_table(&proxy, "vh-table");
        let got: Vec<(&str, &str)> = got.iter().map(|(c, o)| (*c, o.as_str())).collect();
        assert_eq!(got, common::table::EXPECTED, "the netns sandbox and the fake disagree");
        let (info_at_destroy, host_at_destroy) =
            proxy.before_destroy.lock().take().expect("table destroys the sandbox");
        assert_eq!(info_at_destroy, info_before, "a failed call changed the sandbox");
        assert_eq!(link_names(&host_at_destroy), link_names(&host_before), "a failed call changed the host");
        assert!(host_has("vh-table"));
    });
}

#[test]
fn pin_that_is_a_regular_file_and_read_only_base() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-badpin");
        let file = base.path().join("plain");
        std::fs::write(&file, b"not a namespace").unwrap();
        let e = NetnsSandbox::open(&file.display().to_string()).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert!(matches!(NetnsSandbox::open(&key(&base, "absent")), Err(Error::NotFound { kind: "sandbox", .. })));

        // Root ignores permission bits, so make the base read-only with a read-only bind mount.
        let ro = base.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        use nix::mount::{MsFlags, mount};
        mount(Some(&ro), &ro, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        mount(
            None::<&str>,
            &ro,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None::<&str>,
        )
        .unwrap();
        let e = NetnsSandbox::create(&ro.join("s").display().to_string(), &CreateOptions::default()).unwrap_err();
        assert_eq!(e.errno(), Some(nix::errno::Errno::EROFS), "{e}");
        assert!(e.to_string().contains("ro/s"), "the error names the path: {e}");
        assert!(!ro.join("s").exists());
    });
}

#[test]
fn link_local_addresses_sysctls_and_forced_neighbor_over_learned() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-opts");
        let sb = NetnsSandbox::create(&key(&base, "o"), &CreateOptions::default()).unwrap();
        let opts = IfaceOptions::new()
            .address(net("198.18.0.2/16"))
            .link_local(vec![net("169.254.7.7/16"), net("fe80::7/64")])
            .sysctl("ipv4/arp_ignore", "1")
            .sysctl("ipv6/accept_ra", "0");
        sb.add_veth("vh0", "eth", &opts).unwrap();
        let shown = sb.invoke(|| ip(&["-o", "addr", "show", "dev", "eth0"])).unwrap();
        assert!(shown.contains("169.254.7.7/16") && shown.contains("fe80::7/64"), "{shown}");
        let i = &sb.interfaces().unwrap()[0];
        assert!(i.addresses.contains(&net("fe80::7/64")), "user link-local listed: {i:?}");
        let v6: Vec<_> = i.addresses.iter().filter(|a| a.addr().is_ipv6()).collect();
        assert_eq!(v6, [&net("fe80::7/64")], "the kernel's own link-local address is not listed");
        let (ig, ra) = sb
            .invoke(|| {
                let r = |p: &str| std::fs::read_to_string(p).unwrap().trim().to_owned();
                (r("/proc/sys/net/ipv4/conf/eth0/arp_ignore"), r("/proc/sys/net/ipv6/conf/eth0/accept_ra"))
            })
            .unwrap();
        assert_eq!((ig.as_str(), ra.as_str()), ("1", "0"));

        // A link-local IPv6 gateway names its interface (the kernel cannot pick one for it).
        sb.set_gateway(addr("fe80::1")).unwrap();
        sb.add_static_route(&StaticRoute::via(net("2001:db8:7::/48"), addr("fe80::1"))).unwrap();
        let routes = sb.invoke(|| ip(&["-6", "route", "show"])).unwrap();
        assert!(routes.contains("default via fe80::1 dev eth0"), "{routes}");
        assert!(routes.contains("2001:db8:7::/48 via fe80::1 dev eth0"), "{routes}");
        assert_eq!(sb.info().unwrap().gateway6, Some("fe80::1".parse().unwrap()));

        // A learned (reachable) entry: a plain add refuses it, a forced add replaces it.
        let s = sb
            .invoke(|| {
                let s = Socket::open().unwrap();
                let idx = s.link(LinkRef::Name("eth0")).unwrap().index;
                let mut learned =
                    netsandbox::netlink::neigh::NeighSpec::arp(idx, addr("198.18.0.9"), [2, 0, 0, 0, 0, 9]);
                learned.state = netsandbox::netlink::consts::NUD_REACHABLE;
                s.add_neighbor(&learned, false).unwrap();
                s
            })
            .unwrap();
        let mac = [0x02, 0x42, 0xc6, 0x12, 0x00, 0x09];
        let e = sb.add_neighbor(addr("198.18.0.9"), mac, false, &NeighOptions::new()).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { kind: "neighbor", .. }), "{e}");
        sb.add_neighbor(addr("198.18.0.9"), mac, true, &NeighOptions::new()).unwrap();
        let n = s.neighbors(None, None).unwrap();
        let n = n.iter().find(|n| n.ip == Some(addr("198.18.0.9"))).unwrap();
        assert!(n.is_permanent() && n.mac == Some(mac), "{n:?}");
        sb.destroy().unwrap();
    });
}

#[test]
fn remove_when_origin_name_is_taken_keeps_the_interface() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-taken");
        let sb = NetnsSandbox::create(&key(&base, "t"), &CreateOptions::default()).unwrap();
        host_veth("vh0", "vc0");
        sb.add_interface("vc0", "eth", &IfaceOptions::new()).unwrap();
        host_veth("vc0", "other"); // someone reuses the origin name
        let e = sb.remove_interface("eth0").unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { kind: "link", .. }), "{e}");
        assert_eq!(sb.interfaces().unwrap().len(), 1, "the interface stays in the sandbox");
        sb.destroy().unwrap();
    });
}

#[test]
fn destroy_while_other_threads_work_does_not_deadlock() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-race");
        let sb = NetnsSandbox::create(&key(&base, "r"), &CreateOptions::default()).unwrap();
        let outcomes: Vec<Vec<String>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|t| {
                    let sb = &sb;
                    s.spawn(move || {
                        (0..10)
                            .map(|i| match sb.add_veth(&format!("vr{t}x{i}"), "eth", &IfaceOptions::new()) {
                                Ok(_) => "ok".to_owned(),
                                Err(Error::Destroyed { .. }) => "destroyed".to_owned(),
                                Err(e) => panic!("unexpected: {e}"),
                            })
                            .collect()
                    })
                })
                .collect();
            sb.destroy().unwrap();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        common::wait_reaped();
        let all: Vec<&String> = outcomes.iter().flatten().collect();
        assert_eq!(all.len(), 40);
        // Once destroyed, every later call says so; nothing was left in the host.
        assert!(matches!(sb.add_veth("vlate", "eth", &IfaceOptions::new()), Err(Error::Destroyed { .. })));
        let left = Socket::open().unwrap().links().unwrap();
        assert_eq!(left.len(), 1, "{left:?}");
    });
}

#[test]
fn destroy_returns_moved_links_and_deletes_created_ones() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-evac");
        let sb = NetnsSandbox::create(&key(&base, "e"), &CreateOptions::default()).unwrap();
        host_veth("vh0", "vc0");
        host_veth("vh1", "vc1");
        sb.add_interface("vc0", "eth", &IfaceOptions::new().address(net("198.18.0.2/16"))).unwrap();
        sb.add_interface("vc1", "eth", &IfaceOptions::new()).unwrap();
        host_veth("vc1", "x1"); // vc1's name is taken in the origin meanwhile
        sb.add_veth("vh2", "eth", &IfaceOptions::new()).unwrap();
        sb.add_interface("", "br", &IfaceOptions::new().bridge(true)).unwrap();
        let report = sb.destroy_reporting().unwrap();
        let s = Socket::open().unwrap();
        assert!(s.link(LinkRef::Name("vc0")).is_ok(), "a moved link is home when destroy returns");
        common::wait_reaped();
        let back = s.link(LinkRef::Name("vc0")).expect("moved link returned to its origin");
        assert!(back.altnames.is_empty(), "no netsandbox marker left on it: {:?}", back.altnames);
        assert!(!host_has("vh2"), "a veth made by the sandbox goes, host end included");
        // A link whose origin name was taken is not the sandbox's to delete: it stays (and goes
        // with the namespace when the kernel frees it), and destroy says so.
        assert_eq!(report.left_behind.len(), 1, "{report:?}");
        assert_eq!(report.left_behind[0].0, "eth1");
        assert!(report.left_behind[0].1.contains("vc1 is taken"), "{report:?}");
        let mut names: Vec<String> = Vec::new();
        for _ in 0..500 {
            names = s.links().unwrap().into_iter().map(|l| l.name).collect();
            if !names.iter().any(|n| n == "vh1") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        names.sort();
        assert_eq!(names, ["lo", "vc0", "vc1", "vh0", "x1"], "vh1 goes when the kernel frees the namespace");
    });
}

#[test]
fn host_end_without_link_local_address() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-hostll");
        let sb = NetnsSandbox::create(&key(&base, "h"), &CreateOptions::default()).unwrap();
        sb.add_veth("vh0", "eth", &IfaceOptions::new().host_link_local(true)).unwrap();
        sb.add_veth("vh1", "eth", &IfaceOptions::new()).unwrap(); // the default: none
        // The kernel adds the link-local address (tentative) as the link comes up, so its
        // absence right after add_veth returns is final.
        let with = ip(&["-6", "addr", "show", "dev", "vh0"]);
        assert!(with.contains("inet6 fe80::"), "host_link_local(true) gives the kernel's link-local address: {with}");
        let without = ip(&["-6", "addr", "show", "dev", "vh1"]);
        assert!(!without.contains("inet6"), "no IPv6 address on the host end: {without}");
        // No IPv6 on it at all (no per-device multicast route either); this thread is in the
        // test's private host namespace, whose /proc/sys it reads.
        let v6 = std::fs::read_to_string("/proc/sys/net/ipv6/conf/vh1/disable_ipv6").unwrap();
        assert_eq!(v6.trim(), "1", "IPv6 disabled on the default host end");
        let details = ip(&["-d", "link", "show", "vh1"]);
        assert!(details.contains("addrgenmode none") && details.contains(",UP"), "{details}");
        assert_eq!(sb.interfaces().unwrap().len(), 2);
        sb.destroy().unwrap();
        common::wait_reaped();
        assert!(Socket::open().unwrap().links().unwrap().len() == 1, "both host ends are gone");
    });
}

#[test]
fn destroy_many_deletes_veth_pairs_in_one_batch() {
    in_private_netns(|| {
        let base = TempBase::new("sbx-many");
        let host = Socket::open().unwrap();
        // Bystanders in the host: a veth pair in its own device group and one in the default.
        host_veth("vx0", "vx1");
        host.set_link(LinkRef::Name("vx0"), &LinkChange::new().group(7)).unwrap();
        let sbs: Vec<NetnsSandbox> = (0..12)
            .map(|i| {
                let sb = NetnsSandbox::create(&key(&base, &format!("m{i}")), &CreateOptions::default()).unwrap();
                sb.add_veth(&format!("vb{i}"), "eth", &IfaceOptions::new().address(net("198.18.0.2/16"))).unwrap();
                sb
            })
            .collect();
        // One sandbox also holds a moved-in link and a bridge; one is destroyed already.
        host_veth("vmi", "vmo");
        sbs[3].add_interface("vmi", "eth", &IfaceOptions::new()).unwrap();
        sbs[3].add_interface("", "br", &IfaceOptions::new().bridge(true)).unwrap();
        sbs[5].destroy().unwrap();
        let mut all: Vec<&NetnsSandbox> = sbs.iter().collect();
        all.push(&sbs[0]); // listed twice
        let reaped = NetnsSandbox::destroy_many_detached(&all).unwrap();
        assert!(reaped.wait(std::time::Duration::from_secs(60)), "reaped within 60 s");
        common::wait_reaped(); // sbs[5] too

        let mut left: Vec<String> = host.links().unwrap().into_iter().map(|l| l.name).collect();
        left.sort();
        assert_eq!(left, ["lo", "vmi", "vmo", "vx0", "vx1"], "host ends gone, moved link home, bystanders kept");
        assert_eq!(host.link(LinkRef::Name("vx0")).unwrap().group, 7);
        assert_eq!(common::nsfs_mounts_under(base.path()), 0, "every pin removed");
        for sb in &sbs {
            assert!(matches!(sb.interfaces(), Err(Error::Destroyed { .. })));
        }
        NetnsSandbox::destroy_many(&all).unwrap();
        host.delete_link(LinkRef::Name("vx0")).unwrap();
        host.delete_link(LinkRef::Name("vmi")).unwrap();
    });
}
