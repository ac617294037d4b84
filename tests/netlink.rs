//! The rtnetlink client against the real kernel, inside private namespaces, checked against
//! what iproute2 reports.

mod common;

use std::net::IpAddr;

use common::{bridge, in_private_netns, ip, net};
use ipnet::IpNet;
use netsandbox::Error;
use netsandbox::netlink::LinkKind;
use netsandbox::netlink::addr::AddrOptions;
use netsandbox::netlink::link::{LinkChange, LinkRef, VethPeer, Vxlan};
use netsandbox::netlink::neigh::NeighSpec;
use netsandbox::netlink::route::RouteSpec;
use netsandbox::netlink::{BatchMode, BatchOutcome, Socket, addr, link};

fn veth(s: &Socket, a: &str, b: &str) -> (u32, u32) {
    let peer = VethPeer { name: b.into(), ..Default::default() };
    s.execute(link::create_veth(a, None, &peer).unwrap()).unwrap();
    (s.link(LinkRef::Name(a)).unwrap().index, s.link(LinkRef::Name(b)).unwrap().index)
}

/// An up veth pair `va`/`vb` with 198.18.0.1/16 and 2001:db8::1/64 (no DAD) on `va`; its index.
fn addressed_veth(s: &Socket) -> u32 {
    let (a, _) = veth(s, "va", "vb");
    s.set_link(LinkRef::Index(a), &LinkChange::new().up(true)).unwrap();
    s.set_link(LinkRef::Name("vb"), &LinkChange::new().up(true)).unwrap();
    s.add_address(a, &net("198.18.0.1/16"), AddrOptions::default()).unwrap();
    s.add_address(a, &net("2001:db8::1/64"), AddrOptions { nodad: true, ..Default::default() }).unwrap();
    a
}

#[test]
fn links_lifecycle_matches_iproute2() {
    in_private_netns(|| {
        let s = Socket::open().unwrap();
        let links = s.links().unwrap();
        assert_eq!(links.len(), 1, "a new namespace has only lo: {links:?}");
        assert_eq!(links[0].name, "lo");

        let (a, _b) = veth(&s, "vt-a", "vt-b");
        assert!(ip(&["-o", "link", "show", "vt-a"]).contains("vt-b"));
        let l = s.link(LinkRef::Index(a)).unwrap();
        assert_eq!(l.kind, LinkKind::Veth);
        assert!(!l.up);

        let mac = [0x02, 0x42, 0xc6, 0x12, 0x00, 0x07];
        s.set_link(LinkRef::Index(a), &LinkChange::new().name("vt-renamed").mac(mac).mtu(1400).up(true)).unwrap();
        let l = s.link(LinkRef::Index(a)).unwrap();
        assert_eq!((l.name.as_str(), l.mac, l.mtu, l.up), ("vt-renamed", Some(mac), Some(1400), true));
        let shown = ip(&["-o", "link", "show", "vt-renamed"]);
        assert!(shown.contains("02:42:c6:12:00:07") && shown.contains("mtu 1400") && shown.contains(",UP"), "{shown}");

        s.execute(link::create_bridge("br-t").unwrap()).unwrap();
        let br = s.link(LinkRef::Name("br-t")).unwrap();
        assert_eq!(br.kind, LinkKind::Bridge);
        s.set_link(LinkRef::Index(a), &LinkChange::new().master(br.index)).unwrap();
        assert_eq!(s.link(LinkRef::Index(a)).unwrap().master, Some(br.index));
        assert!(ip(&["-o", "link", "show", "vt-renamed"]).contains("master br-t"));
        s.set_link(LinkRef::Index(a), &LinkChange::new().master(0)).unwrap();
        assert_eq!(s.link(LinkRef::Index(a)).unwrap().master, None);

        s.execute(link::create_macvlan("mv-t", a).unwrap()).unwrap();
        assert_eq!(s.link(LinkRef::Name("mv-t")).unwrap().kind, LinkKind::Macvlan);

        let vx =
            Vxlan { vni: 42, local: Some("192.0.2.1".parse().unwrap()), port: 4789, underlay: None, learning: false };
        s.execute(link::create_vxlan("vx-t", &vx).unwrap()).unwrap();
        let v = s.link(LinkRef::Name("vx-t")).unwrap();
        assert_eq!((v.kind.clone(), v.vxlan_id), (LinkKind::Vxlan, Some(42)));

        s.delete_link(LinkRef::Name("vt-b")).unwrap();
        assert!(
            matches!(s.link(LinkRef::Name("vt-renamed")), Err(Error::NotFound { .. })),
            "deleting a veth end deletes both"
        );
        assert!(matches!(s.delete_link(LinkRef::Name("vt-b")), Err(Error::NotFound { .. })));
        let names: Vec<_> = s.links().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names.len(), 3, "{names:?}"); // lo, br-t, vx-t (the macvlan went with its parent)
    });
}

#[test]
fn veth_peer_born_in_another_namespace() {
    in_private_netns(|| {
        let host = Socket::open().unwrap();
        // A second namespace made by a helper thread; we keep its fd and a socket inside it.
        let (ns_fd, inner) = std::thread::scope(|sc| {
            sc.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                (std::fs::File::open("/proc/thread-self/ns/net").unwrap(), Socket::open().unwrap())
            })
            .join()
            .unwrap()
        });
        use std::os::fd::AsFd;
        let mac = [0x02, 0x42, 0xc6, 0x12, 0x00, 0x09];
        let peer = VethPeer {
            name: "eth0".into(),
            mac: Some(mac),
            mtu: Some(1450),
            netns: Some(ns_fd.as_fd()),
            index: Some(7),
            host_index: Some(77),
            host_up: true,
            host_master: None,
        };
        host.execute(link::create_veth("vh0", None, &peer).unwrap()).unwrap();
        let vh0 = host.link(LinkRef::Name("vh0")).unwrap();
        assert!(vh0.up && vh0.index == 77, "host end born up with its index: {vh0:?}");
        assert!(matches!(host.link(LinkRef::Name("eth0")), Err(Error::NotFound { .. })));
        let e = inner.link(LinkRef::Name("eth0")).unwrap();
        assert_eq!((e.index, e.mac, e.mtu), (7, Some(mac), Some(1450)));
        host.delete_link(LinkRef::Name("vh0")).unwrap();
        assert!(inner.link(LinkRef::Name("eth0")).is_err());
    });
}

#[test]
fn addresses_v4_v6_nodad() {
    in_private_netns(|| {
        let s = Socket::open().unwrap();
        let a = addressed_veth(&s);
        let got = s.addresses(None, Some(a)).unwrap();
        let v4 = got.iter().find(|x| x.addr == net("198.18.0.1/16")).expect("v4 listed");
        assert_eq!(v4.index, a);
        let v6 = got.iter().find(|x| x.addr == net("2001:db8::1/64")).expect("v6 listed");
        assert!(v6.is_nodad() && !v6.is_tentative(), "nodad address must be usable at once: {v6:?}");
        let shown = ip(&["-o", "addr", "show", "dev", "va"]);
        assert!(shown.contains("198.18.0.1/16") && shown.contains("2001:db8::1/64"), "{shown}");
        let line = shown.lines().find(|l| l.contains("2001:db8::1/64")).unwrap();
        assert!(!line.contains("tentative"), "{line}");
        // Only v4, filtered by family.
        assert!(s.addresses(Some(false), Some(a)).unwrap().iter().all(|x| x.addr.addr().is_ipv4()));
        let dup = s.add_address(a, &net("198.18.0.1/16"), AddrOptions::default()).unwrap_err();
        assert!(dup.is_already_exists(), "{dup}");
        s.delete_address(a, &net("198.18.0.1/16")).unwrap();
        assert!(!ip(&["-o", "addr", "show", "dev", "va"]).contains("198.18.0.1"));
    });
}

#[test]
fn routes_add_get_list_delete() {
    in_private_netns(|| {
        let s = Socket::open().unwrap();
        let a = addressed_veth(&s);
        let gw: IpAddr = "198.18.255.254".parse().unwrap();
        s.add_route(&RouteSpec::new(net("0.0.0.0/0")).via(gw)).unwrap();
        s.add_route(&RouteSpec::new(net("198.19.7.0/24")).via(gw)).unwrap();
        s.add_route(&RouteSpec::new(net("203.0.113.0/24")).dev(a)).unwrap();
        let gw6: IpAddr = "2001:db8::ffff".parse().unwrap();
        s.add_route(&RouteSpec::new(net("::/0")).via(gw6)).unwrap();

        let r4 = s.routes(false).unwrap();
        assert!(r4.iter().any(|r| r.is_default() && r.gateway == Some(gw) && r.oif == Some(a)), "{r4:?}");
        assert!(r4.iter().any(|r| r.dst == net("198.19.7.0/24")));
        assert!(s.routes(true).unwrap().iter().any(|r| r.is_default() && r.gateway == Some(gw6)));
        let shown = ip(&["route", "show"]);
        assert!(shown.contains("default via 198.18.255.254 dev va") && shown.contains("198.19.7.0/24 via"), "{shown}");
        assert!(ip(&["-6", "route", "show"]).contains("default via 2001:db8::ffff"));

        let to = s.route_to("203.0.113.9".parse().unwrap()).unwrap();
        assert_eq!(to.oif, Some(a));
        s.delete_route(&RouteSpec::new(net("198.19.7.0/24")).via(gw)).unwrap();
        assert!(!ip(&["route", "show"]).contains("198.19.7.0"));
        let e = s.delete_route(&RouteSpec::new(net("198.19.7.0/24")).via(gw)).unwrap_err();
        assert!(e.errno().is_some(), "{e}");
        // Bad input is refused before sending.
        let bad = s.add_route(&RouteSpec::new(net("198.19.0.0/24")).via("2001:db8::1".parse().unwrap())).unwrap_err();
        assert!(bad.is_invalid_input(), "{bad}");
    });
}

#[test]
fn route_to_unreachable_is_not_found() {
    in_private_netns(|| {
        let s = Socket::open().unwrap();
        let e = s.route_to("198.51.100.1".parse().unwrap()).unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
    });
}

#[test]
fn neighbors_arp_ndp_and_fdb() {
    in_private_netns(|| {
        let s = Socket::open().unwrap();
        let (a, _) = veth(&s, "va", "vb");
        s.set_link(LinkRef::Index(a), &LinkChange::new().up(true)).unwrap();
        let mac = [0x02, 0x42, 0xc6, 0x12, 0xff, 0xfe];
        let ip4: IpAddr = "198.18.255.254".parse().unwrap();
        s.add_neighbor(&NeighSpec::arp(a, ip4, mac), false).unwrap();
        s.add_neighbor(&NeighSpec::arp(a, "2001:db8::fe".parse().unwrap(), mac), false).unwrap();
        let e = s.add_neighbor(&NeighSpec::arp(a, ip4, mac), false).unwrap_err();
        assert!(e.is_already_exists(), "{e}");
        let mac2 = [0x02, 0x42, 0xc6, 0x12, 0xff, 0xfd];
        s.add_neighbor(&NeighSpec::arp(a, ip4, mac2), true).unwrap();
        let n = s.neighbors(None, Some(a)).unwrap();
        let e4 = n.iter().find(|x| x.ip == Some(ip4)).unwrap();
        assert!(e4.is_permanent());
        assert_eq!(e4.mac, Some(mac2));
        let shown = ip(&["neigh", "show", "dev", "va"]);
        assert!(shown.contains("198.18.255.254 lladdr 02:42:c6:12:ff:fd PERMANENT"), "{shown}");
        s.delete_neighbor(&NeighSpec::arp(a, ip4, mac2)).unwrap();
        assert!(!ip(&["neigh", "show", "dev", "va"]).contains("198.18.255.254"));

        let vx =
            Vxlan { vni: 7, local: Some("192.0.2.1".parse().unwrap()), port: 4789, underlay: None, learning: false };
        s.execute(link::create_vxlan("vx0", &vx).unwrap()).unwrap();
        let vxi = s.link(LinkRef::Name("vx0")).unwrap().index;
        let vtep: IpAddr = "192.0.2.2".parse().unwrap();
        s.add_neighbor(&NeighSpec::fdb(vxi, mac, Some(vtep)), false).unwrap();
        let fdb = bridge(&["fdb", "show", "dev", "vx0"]);
        assert!(fdb.contains("02:42:c6:12:ff:fe dst 192.0.2.2 self permanent"), "{fdb}");
        let listed = s.neighbors(Some(netsandbox::netlink::Family::Bridge), Some(vxi)).unwrap();
        assert!(listed.iter().any(|x| x.mac == Some(mac) && x.ip == Some(vtep)), "{listed:?}");
        s.delete_neighbor(&NeighSpec::fdb(vxi, mac, Some(vtep))).unwrap();
        assert!(!bridge(&["fdb", "show", "dev", "vx0"]).contains("192.0.2.2"));
    });
}

#[test]
fn extended_ack_message_reaches_the_error() {
    in_private_netns(|| {
        let s = Socket::open().unwrap();
        let (a, _) = veth(&s, "va", "vb");
        // A gateway that no interface reaches: the kernel explains why in its extended ACK.
        let e =
            s.add_route(&RouteSpec::new(net("198.19.0.0/24")).via("198.51.100.1".parse().unwrap()).dev(a)).unwrap_err();
        let Error::Kernel(k) = &e else { panic!("expected a kernel error, got {e}") };
        let msg = k.message.as_deref().expect("the kernel sent an extended-ACK message");
        assert!(msg.to_lowercase().contains("gateway") || msg.to_lowercase().contains("nexthop"), "{msg}");
        assert!(e.to_string().contains(msg), "{e}");
        assert_eq!(k.op, "add route");
    });
}

#[test]
fn batch_of_200_with_one_failure() {
    in_private_netns(|| {
        let s = Socket::open().unwrap();
        let (a, _) = veth(&s, "va", "vb");
        let reqs: Vec<_> = (0..200u32)
            .map(|i| {
                // Request 100 names an interface that does not exist.
                let index = if i == 100 { 9999 } else { a };
                let n = IpNet::new(IpAddr::from([198, 18, (i / 250) as u8, (i % 250 + 1) as u8]), 32).unwrap();
                addr::add(index, &n, AddrOptions::default()).unwrap()
            })
            .collect();
        let report = s.batch(&reqs, BatchMode::Continue).unwrap();
        assert_eq!(report.outcomes.len(), 200);
        let (idx, err) = report.first_error().unwrap();
        assert_eq!(idx, 100, "{err}");
        assert_eq!(report.outcomes.iter().filter(|o| o.is_applied()).count(), 199);
        assert_eq!(s.addresses(Some(false), Some(a)).unwrap().len(), 199);

        let (c, _) = veth(&s, "vc", "vd");
        let reqs: Vec<_> = reqs
            .iter()
            .enumerate()
            .map(|(i, _)| {
                let index = if i == 100 { 9999 } else { c };
                let n = IpNet::new(IpAddr::from([198, 18, 10, (i % 250 + 1) as u8]), 32).unwrap();
                addr::add(index, &n, AddrOptions::default()).unwrap()
            })
            .collect();
        let report = s.batch(&reqs, BatchMode::StopAtFirstError).unwrap();
        assert_eq!(report.outcomes.iter().filter(|o| o.is_applied()).count(), 100);
        assert!(matches!(report.outcomes[100], BatchOutcome::Failed(_)));
        assert!(report.outcomes[101..].iter().all(|o| matches!(o, BatchOutcome::NotSent)));
        assert_eq!(s.addresses(Some(false), Some(c)).unwrap().len(), 100);
    });
}

#[test]
fn invalid_input_never_reaches_the_kernel() {
    in_private_netns(|| {
        let s = Socket::open().unwrap();
        let before = ip(&["-o", "link"]);
        for name in ["", "a234567890123456", "a/b", "a b", ".."] {
            let e = link::create_bridge(name).unwrap_err();
            assert!(matches!(e, Error::InvalidName { .. }), "{name:?}: {e}");
            assert!(s.link(LinkRef::Name(name)).unwrap_err().is_invalid_input());
        }
        let e = LinkChange::new().mac([1, 0, 0, 0, 0, 1]).request(LinkRef::Index(1)).unwrap_err();
        assert!(matches!(e, Error::InvalidMac { .. }));
        let e = LinkChange::new().mtu(10).request(LinkRef::Index(1)).unwrap_err();
        assert!(e.is_invalid_input());
        assert_eq!(before, ip(&["-o", "link"]));
    });
}

#[test]
fn namespace_ids_and_group_deletion() {
    in_private_netns(|| {
        use std::os::fd::AsFd;
        let host = Socket::open().unwrap();
        let other = netsandbox::netns::NetNs::new_unpinned().unwrap();
        assert_eq!(host.nsid_of(&other).unwrap(), None, "no id before anything pairs the namespaces");
        for i in 0..3 {
            let peer = VethPeer { name: format!("eth{i}"), netns: Some(other.as_fd()), ..Default::default() };
            host.execute(link::create_veth(&format!("vg{i}"), None, &peer).unwrap()).unwrap();
        }
        let id = host.nsid_of(&other).unwrap().expect("a veth across the namespaces gives them ids");
        assert_eq!(host.link(LinkRef::Name("vg0")).unwrap().netnsid, Some(id));

        // Two of the three pairs go in one request; the third, in the default group, stays.
        for n in ["vg0", "vg1"] {
            host.set_link(LinkRef::Name(n), &LinkChange::new().group(0x6e73_ffff)).unwrap();
        }
        assert_eq!(host.link(LinkRef::Name("vg1")).unwrap().group, 0x6e73_ffff);
        host.execute(link::delete_group(0x6e73_ffff).unwrap()).unwrap();
        let names: Vec<String> = host.links().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo", "vg2"]);
        assert!(matches!(link::delete_group(0), Err(Error::InvalidArgument { .. })), "group 0 is everything");
        host.delete_link(LinkRef::Name("vg2")).unwrap();
    });
}
