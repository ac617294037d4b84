//! HostBridge and `IfaceOptions::host_master` against the kernel, checked with `ip -j -d`.
//! Every test runs in its own private host namespace.

mod common;

use common::{TempBase, in_private_netns, ip, key, net};
use netsandbox::Error;
use netsandbox::netlink::Socket;
use netsandbox::netlink::link::{self, LinkRef, VethPeer};
use netsandbox::sandbox::{BridgeOptions, CreateOptions, HostBridge, IfaceOptions, NetnsSandbox, Sandbox};
use serde_json::Value;

/// `ip -j -d link show dev NAME` as the one object it lists.
fn link_json(name: &str) -> Value {
    let v: Value = serde_json::from_str(&ip(&["-j", "-d", "link", "show", "dev", name])).unwrap();
    v[0].clone()
}

/// The addresses iproute2 lists on `name`, as (CIDR, nodad) pairs.
fn addrs_of(name: &str) -> Vec<(String, bool)> {
    let v: Value = serde_json::from_str(&ip(&["-j", "addr", "show", "dev", name])).unwrap();
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["scope"] != "link")
        .map(|a| (format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]), a["nodad"] == true))
        .collect()
}

fn host_has(name: &str) -> bool {
    Socket::open().unwrap().link(LinkRef::Name(name)).is_ok()
}

fn host_veth(a: &str, b: &str) {
    let peer = VethPeer { name: b.into(), ..Default::default() };
    Socket::open().unwrap().execute(link::create_veth(a, None, &peer).unwrap()).unwrap();
}

#[test]
fn host_bridge_create_ensure_delete() {
    in_private_netns(|| {
        let opts = BridgeOptions::new().address(net("198.18.255.254/16")).address(net("2001:db8::ffff/64")).mtu(1400);
        let br = HostBridge::create("br-t0", &opts).unwrap();
        assert_eq!(br.name(), "br-t0");
        let l = link_json("br-t0");
        assert_eq!(l["linkinfo"]["info_kind"], "bridge", "{l}");
        assert_eq!(l["mtu"], 1400, "{l}");
        assert_eq!(l["ifindex"], br.index(), "{l}");
        assert!(l["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{l}");
        let want = vec![("198.18.255.254/16".to_owned(), false), ("2001:db8::ffff/64".to_owned(), true)];
        assert_eq!(addrs_of("br-t0"), want);

        // create refuses a taken name and changes nothing; ensure is idempotent.
        let e = HostBridge::create("br-t0", &BridgeOptions::new()).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { .. }), "{e}");
        assert_eq!(HostBridge::ensure("br-t0", &opts).unwrap(), br);
        assert_eq!(HostBridge::ensure("br-t0", &opts).unwrap(), br);
        assert_eq!(addrs_of("br-t0"), want);
        // ensure adds what is missing and applies a new MTU, keeping what is there.
        let more = opts.clone().address(net("203.0.113.1/24")).mtu(1300);
        HostBridge::ensure("br-t0", &more).unwrap();
        assert_eq!(link_json("br-t0")["mtu"], 1300);
        assert_eq!(addrs_of("br-t0").len(), 3);
        // ensure creates when missing; a down bridge stays down.
        let down = HostBridge::ensure("br-t1", &BridgeOptions::new().up(false)).unwrap();
        let l = link_json("br-t1");
        assert_eq!(l["ifindex"], down.index());
        assert!(!l["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{l}");
        assert_eq!(HostBridge::open("br-t1").unwrap(), down);

        // A link that is not a bridge is never changed or deleted.
        host_veth("vx-a", "vx-b");
        for e in [
            HostBridge::ensure("vx-a", &opts).unwrap_err(),
            HostBridge::open("vx-a").unwrap_err(),
            HostBridge::delete("vx-a").unwrap_err(),
        ] {
            assert!(matches!(&e, Error::NotABridge { name, kind } if name == "vx-a" && kind == "veth"), "{e}");
            assert!(e.is_invalid_input());
        }
        assert!(host_has("vx-a"));
        assert!(addrs_of("vx-a").is_empty());

        // Bad input is refused before any request.
        assert!(HostBridge::create("br/x", &BridgeOptions::new()).unwrap_err().is_invalid_input());
        assert!(HostBridge::create("br-t2", &BridgeOptions::new().mtu(10)).unwrap_err().is_invalid_input());
        assert!(!host_has("br-t2"));

        HostBridge::delete("br-t0").unwrap();
        HostBridge::delete("br-t1").unwrap();
        assert!(!host_has("br-t0") && !host_has("br-t1"));
        let e = HostBridge::delete("br-t0").unwrap_err();
        assert!(matches!(&e, Error::NotFound { kind: "bridge", .. }), "{e}");
        assert!(!HostBridge::delete_if_exists("br-t0").unwrap());
        assert!(matches!(HostBridge::open("br-t0"), Err(Error::NotFound { .. })));
    });
}

#[test]
fn add_veth_host_master_joins_the_bridge() {
    in_private_netns(|| {
        let base = TempBase::new("bridge-master");
        let sb = NetnsSandbox::create(&key(&base, "m1"), &CreateOptions::default()).unwrap();
        let br = HostBridge::create("br-m", &BridgeOptions::new()).unwrap();

        let opts = IfaceOptions::new().address(net("198.18.0.2/16")).host_master("br-m").host_hairpin(true);
        assert_eq!(sb.add_veth("vh-m0", "eth", &opts).unwrap(), "eth0");
        let l = link_json("vh-m0");
        assert_eq!(l["master"], "br-m", "{l}");
        assert_eq!(l["linkinfo"]["info_kind"], "veth", "{l}");
        assert_eq!(l["linkinfo"]["info_slave_kind"], "bridge", "{l}");
        assert_eq!(l["linkinfo"]["info_slave_data"]["hairpin"], true, "{l}");
        // Without hairpin and with no host link-local address (a born-down host end).
        let opts = IfaceOptions::new().host_master("br-m").host_link_local(false);
        assert_eq!(sb.add_veth("vh-m1", "eth", &opts).unwrap(), "eth1");
        let l = link_json("vh-m1");
        assert_eq!(l["master"], "br-m", "{l}");
        assert_eq!(l["linkinfo"]["info_slave_data"]["hairpin"], false, "{l}");
        assert!(l["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{l}");
        let ports: Value = serde_json::from_str(&ip(&["-j", "link", "show", "master", "br-m"])).unwrap();
        assert_eq!(ports.as_array().map(Vec::len), Some(2), "{ports}");
        assert!(ports.as_array().unwrap().iter().all(|p| p["master"] == br.name()), "{ports}");

        // A missing bridge, or a link that is not one, is refused before anything is created.
        let e = sb.add_veth("vh-m2", "eth", &IfaceOptions::new().host_master("nope0")).unwrap_err();
        assert!(matches!(&e, Error::NotFound { kind: "bridge", name } if name == "nope0"), "{e}");
        let e = sb.add_veth("vh-m2", "eth", &IfaceOptions::new().host_master("vh-m0")).unwrap_err();
        assert!(matches!(&e, Error::NotABridge { .. }), "{e}");
        assert!(!host_has("vh-m2"));
        assert_eq!(sb.info().unwrap().interfaces.len(), 2);
        // host_master means nothing for a link that moves in whole.
        let e = sb.add_interface("vh-m0", "eth", &IfaceOptions::new().host_master("br-m")).unwrap_err();
        assert!(e.is_invalid_input(), "{e}");

        let reaped = sb.destroy_detached().unwrap();
        assert!(reaped.wait(std::time::Duration::from_secs(60)), "the kernel reaps the pairs");
        assert!(!host_has("vh-m0") && !host_has("vh-m1"));
        HostBridge::delete("br-m").unwrap();
    });
}
