//! Process-wide leak checks (fds, mounts, links, pin files). They count what the whole process
//! holds, so they live in their own test binary and run one at a time.

mod common;

use common::{TempBase, in_private_netns};
use ipnet::IpNet;
use netsandbox::netlink::Socket;
use netsandbox::sandbox::{CreateOptions, IfaceOptions, NetnsSandbox, Sandbox};
use parking_lot::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn key(base: &TempBase, name: &str) -> String {
    base.path().join(name).display().to_string()
}

#[test]
fn no_fd_or_mount_leak_over_cycles() {
    let _serial = SERIAL.lock();
    in_private_netns(|| {
        let base = TempBase::new("sbx-leak");
        // Warm up lazily created shared state (host socket, base mount).
        let w = NetnsSandbox::create(&key(&base, "warm"), &CreateOptions::default()).unwrap();
        let fds = common::fd_count();
        let mounts = common::nsfs_mounts_under(base.path());
        for i in 0..50 {
            let sb = NetnsSandbox::create(&key(&base, &format!("s{i}")), &CreateOptions::default()).unwrap();
            sb.add_veth(&format!("vh{i}"), "eth", &IfaceOptions::new().address(net("198.18.0.2/16"))).unwrap();
            sb.destroy().unwrap();
        }
        assert_eq!(common::fd_count(), fds);
        assert_eq!(common::nsfs_mounts_under(base.path()), mounts);
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 1);
        assert_eq!(Socket::open().unwrap().links().unwrap().len(), 1, "only lo is left in the host");
        w.destroy().unwrap();
    });
}
