mod common;

use std::path::PathBuf;

use common::{TempBase, in_private_netns};
use netsandbox::Error;
use netsandbox::netns::{self, NetNs};
use netsandbox::sysctl::{self, Outcome};

const MISSING: &str = "net.ipv4.vs.conn_reuse_mode";

struct PinGuard(PathBuf);
impl Drop for PinGuard {
    fn drop(&mut self) {
        let _ = netns::unpin(&self.0);
    }
}

#[test]
fn read_in_private_namespace() {
    in_private_netns(|| {
        // A fresh namespace starts with forwarding off.
        assert_eq!(sysctl::read(None, "net.ipv4.ip_forward").unwrap(), "0");
        assert_eq!(sysctl::read(None, "net/ipv4/ip_forward").unwrap(), "0");
        let v = sysctl::read(None, "net/ipv4/conf/lo/arp_ignore").unwrap();
        assert!(!v.ends_with('\n'));
    });
}

#[test]
fn write_in_pinned_namespace() {
    in_private_netns(|| {
        let base = TempBase::new("sysctl");
        let pin = base.path().join("ns");
        let _g = PinGuard(pin.clone());
        let ns = netns::create_pinned(&pin).unwrap();

        assert_eq!(sysctl::read(Some(&ns), "net.ipv4.ip_forward").unwrap(), "0");
        assert!(sysctl::write(Some(&ns), "net.ipv4.ip_forward", "1").unwrap());
        assert_eq!(sysctl::read(Some(&ns), "net.ipv4.ip_forward").unwrap(), "1");
        assert!(!sysctl::write(Some(&ns), "net.ipv4.ip_forward", "1").unwrap());
        // Reopening by path sees the same namespace's value; the test's own namespace is untouched.
        let again = NetNs::from_path(&pin).unwrap();
        assert_eq!(sysctl::read(Some(&again), "net/ipv4/ip_forward").unwrap(), "1");
        assert_eq!(sysctl::read(None, "net.ipv4.ip_forward").unwrap(), "0");

        // Multi-value keys compare with whitespace normalised.
        let range = sysctl::read(Some(&ns), "net.ipv4.ip_local_port_range").unwrap();
        let spaced = range.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(!sysctl::write(Some(&ns), "net.ipv4.ip_local_port_range", &spaced).unwrap());
    });
}

#[test]
fn missing_and_read_only_keys() {
    in_private_netns(|| {
        let ns = NetNs::new_unpinned().unwrap();
        assert!(matches!(sysctl::read(Some(&ns), MISSING), Err(Error::SysctlMissing { .. })));
        assert!(matches!(sysctl::write(Some(&ns), MISSING, "0"), Err(Error::SysctlMissing { .. })));
        // net.ipv4.tcp_available_congestion_control is mode 0444.
        let ro = "net.ipv4.tcp_available_congestion_control";
        assert!(matches!(sysctl::write(Some(&ns), ro, "x"), Err(Error::SysctlReadOnly { .. })));

        let out = sysctl::apply(
            Some(&ns),
            &[("net.ipv4.ip_forward", "1"), (MISSING, "0"), (ro, "x"), ("net/ipv4/ip_forward", "1")],
        )
        .unwrap();
        assert_eq!(
            out,
            vec![
                ("net.ipv4.ip_forward".to_owned(), Outcome::Written { old: "0".into() }),
                (MISSING.to_owned(), Outcome::Missing),
                (ro.to_owned(), Outcome::ReadOnly),
                ("net/ipv4/ip_forward".to_owned(), Outcome::Unchanged),
            ]
        );
        assert_eq!(sysctl::read(Some(&ns), "net.ipv4.ip_forward").unwrap(), "1");
    });
}

#[test]
fn invalid_keys_rejected_before_anything_changes() {
    in_private_netns(|| {
        let ns = NetNs::new_unpinned().unwrap();
        for bad in ["../x", "/etc/passwd", "", "net..ipv4", "net/ipv4/../../x", "net.ipv4.ip forward", "net/./x"] {
            assert!(matches!(sysctl::read(Some(&ns), bad), Err(Error::InvalidSysctlKey { .. })), "{bad:?}");
            assert!(matches!(sysctl::write(None, bad, "1"), Err(Error::InvalidSysctlKey { .. })), "{bad:?}");
        }
        // One bad key anywhere: nothing is applied.
        let err = sysctl::apply(Some(&ns), &[("net.ipv4.ip_forward", "1"), ("../x", "1")]).unwrap_err();
        assert!(matches!(err, Error::InvalidSysctlKey { .. }));
        assert_eq!(sysctl::read(Some(&ns), "net.ipv4.ip_forward").unwrap(), "0");
    });
}

#[test]
fn dotted_interface_names_use_slash_form() {
    in_private_netns(|| {
        let ns = NetNs::new_unpinned().unwrap();
        netns::run_in(&ns, || {
            common::ip(&["link", "add", "veth0.100", "type", "veth", "peer", "name", "vp0"]);
        })
        .unwrap();
        let key = "net/ipv4/conf/veth0.100/arp_ignore";
        assert_eq!(sysctl::read(Some(&ns), key).unwrap(), "0");
        assert!(sysctl::write(Some(&ns), key, "1").unwrap());
        assert_eq!(sysctl::read(Some(&ns), key).unwrap(), "1");
        // The dotted form splits the interface name and so names a key that does not exist.
        assert!(matches!(
            sysctl::read(Some(&ns), "net.ipv4.conf.veth0.100.arp_ignore"),
            Err(Error::SysctlMissing { .. })
        ));
    });
}
