//! Sandbox API additions for the CNI plugin: `NetnsSandbox::attach` (a runtime's namespace,
//! never unpinned or emptied by us), `IfaceOptions::exact_name`, `IfaceOptions::host_alias`,
//! and the random helpers. Checked against the kernel with `ip -j`.

mod common;

use common::{TempBase, in_private_netns, ip, key, net};
use netsandbox::netns::{self, NetNs};
use netsandbox::sandbox::random::{random_local_mac, random_veth_name};
use netsandbox::sandbox::{FakeSandbox, IfaceOptions, NetnsSandbox, Sandbox};
use netsandbox::{Error, netns::run_in};
use serde_json::Value;

fn links_in(ns: &NetNs) -> Vec<String> {
    run_in(ns, || {
        let v: Value = serde_json::from_str(&ip(&["-j", "link", "show"])).unwrap();
        v.as_array().unwrap().iter().map(|l| l["ifname"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    })
    .unwrap()
}

#[test]
fn attach_leaves_the_owners_namespace_alone() {
    in_private_netns(|| {
        let base = TempBase::new("attach");
        netns::ensure_shared_base(base.path()).unwrap();
        let pin = key(&base, "runtime-owned");
        let owner = netns::create_pinned(std::path::Path::new(&pin)).unwrap();

        let sb = NetnsSandbox::attach(&pin).unwrap();
        assert!(!sb.owns_namespace());
        assert_eq!(sb.key(), pin);
        let host = random_veth_name();
        let opts = IfaceOptions::new()
            .exact_name(true)
            .host_alias("netsandbox-cni testnet c1 eth0")
            .mac(random_local_mac())
            .address(net("198.18.0.2/16"));
        assert_eq!(sb.add_veth(&host, "eth0", &opts).unwrap(), "eth0");
        let h: Value = serde_json::from_str(&ip(&["-j", "link", "show", "dev", &host])).unwrap();
        assert_eq!(h[0]["ifalias"], "netsandbox-cni testnet c1 eth0");

        // The exact name is taken now: a typed error, nothing new on either side.
        let other = random_veth_name();
        let before = links_in(&owner);
        let e = sb.add_veth(&other, "eth0", &IfaceOptions::new().exact_name(true)).unwrap_err();
        assert!(matches!(e, Error::AlreadyExists { kind: "interface", .. }), "{e}");
        assert_eq!(links_in(&owner), before);
        assert!(!ip(&["-o", "link"]).contains(&other));

        // destroy and drop release our handle only: the pin, the mount and eth0 stay.
        sb.destroy().unwrap();
        drop(sb);
        assert!(netns::is_pinned(std::path::Path::new(&pin)));
        assert!(links_in(&owner).contains(&"eth0".to_owned()));
        assert!(ip(&["-o", "link"]).contains(&host));
        let again = NetnsSandbox::attach(&pin).unwrap();
        NetnsSandbox::destroy_many(&[&again]).unwrap();
        assert!(netns::is_pinned(std::path::Path::new(&pin)));
        assert!(ip(&["-o", "link"]).contains(&host));

        // Removing through the API is what deletes the pair.
        let third = NetnsSandbox::attach(&pin).unwrap();
        third.remove_interface("eth0").unwrap();
        assert!(!ip(&["-o", "link"]).contains(&host));
        drop(owner);
        netns::unpin(std::path::Path::new(&pin)).unwrap();
    });
}

#[test]
fn attach_rejects_bad_paths() {
    in_private_netns(|| {
        let base = TempBase::new("attach-bad");
        assert!(matches!(NetnsSandbox::attach("relative/ns").unwrap_err(), Error::InvalidKey { .. }));
        let missing = key(&base, "missing");
        assert!(matches!(NetnsSandbox::attach(&missing).unwrap_err(), Error::NotFound { .. }));
        let plain = key(&base, "plain");
        std::fs::write(&plain, "").unwrap();
        assert!(NetnsSandbox::attach(&plain).is_err());
        // /proc/<pid>/ns/net works without a pin.
        let sb = NetnsSandbox::attach("/proc/thread-self/ns/net").unwrap();
        sb.destroy().unwrap();
        assert!(std::fs::metadata("/proc/thread-self/ns/net").is_ok());
    });
}

#[test]
fn fake_sandbox_honours_exact_name() {
    let fake = FakeSandbox::new("/fake/exact").unwrap();
    let opts = IfaceOptions::new().exact_name(true);
    assert_eq!(fake.add_veth("veth00000001", "eth0", &opts).unwrap(), "eth0");
    let e = fake.add_veth("veth00000002", "eth0", &opts).unwrap_err();
    assert!(matches!(e, Error::AlreadyExists { kind: "interface", .. }), "{e}");
    assert!(fake.add_veth("veth00000003", "a/b", &opts).unwrap_err().is_invalid_input());
    // Without exact_name "eth0" is a prefix ending in a digit: refused as before.
    assert!(fake.add_veth("veth00000004", "eth0", &IfaceOptions::new()).unwrap_err().is_invalid_input());
}
