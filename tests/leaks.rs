//! Process-wide leak checks (fds, mounts, links, pin files). They count what the whole process
//! holds, so they live in their own test binary and run one at a time.

mod common;

use common::{TempBase, in_private_netns, key, net};
use netsandbox::netlink::Socket;
use netsandbox::sandbox::{CreateOptions, IfaceOptions, NetnsSandbox, Sandbox, WarmPool};
use parking_lot::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn no_fd_or_mount_leak_over_cycles() {
    let _serial = SERIAL.lock();
    in_private_netns(|| {
        let base = TempBase::new("sbx-leak");
        // Warm up lazily created shared state (host socket, base mount).
        let w = NetnsSandbox::create(&key(&base, "warm"), &CreateOptions::default()).unwrap();
        common::wait_reaped();
        let fds = common::fd_count();
        let mounts = common::nsfs_mounts_under(base.path());
        for i in 0..50 {
            let sb = NetnsSandbox::create(&key(&base, &format!("s{i}")), &CreateOptions::default()).unwrap();
            sb.add_veth(&format!("vh{i}"), "eth", &IfaceOptions::new().address(net("198.18.0.2/16"))).unwrap();
            sb.destroy().unwrap();
        }
        common::wait_reaped();
        assert_eq!(common::fd_count(), fds);
        assert_eq!(common::nsfs_mounts_under(base.path()), mounts);
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 1);
        assert_eq!(Socket::open().unwrap().links().unwrap().len(), 1, "only lo is left in the host");
        w.destroy().unwrap();
    });
}

#[test]
fn warm_pool_serves_sandboxes_and_shuts_down_clean() {
    use netsandbox::sandbox::SandboxExt;
    let _serial = SERIAL.lock();
    in_private_netns(|| {
        let base = TempBase::new("pool");
        let warm = NetnsSandbox::create(&key(&base, "warm"), &CreateOptions::default()).unwrap();
        common::wait_reaped();
        let fds = common::fd_count();
        let pool = WarmPool::new(4, CreateOptions::default()).unwrap();
        assert!(pool.wait_full(std::time::Duration::from_secs(30)), "pool fills in the background");
        assert_eq!(pool.ready(), 4);
        // Ten takes from a pool of four: some pooled, some made on the spot; all equivalent.
        let sbs: Vec<_> = (0..10).map(|i| pool.take(&key(&base, &format!("p{i}"))).unwrap()).collect();
        let mut inodes = std::collections::HashSet::new();
        for (i, sb) in sbs.iter().enumerate() {
            assert!(netsandbox::netns::is_pinned(std::path::Path::new(sb.key())));
            let lo = sb.invoke(|| common::ip(&["-o", "link", "show", "lo"])).unwrap();
            assert!(lo.contains("UP"), "loopback up in a pooled namespace: {lo}");
            sb.add_veth(&format!("vp{i}"), "eth", &IfaceOptions::new().address(net("198.18.0.2/16"))).unwrap();
            assert!(inodes.insert(sb.invoke(common::thread_netns_inode).unwrap()), "each take is a distinct namespace");
        }
        let e = pool.take(&key(&base, "p0")).unwrap_err();
        assert!(matches!(e, netsandbox::Error::AlreadyExists { .. }), "{e}");
        for sb in &sbs {
            sb.destroy().unwrap();
        }
        drop(sbs);
        pool.shutdown();
        drop(pool);
        common::wait_reaped();
        assert_eq!(common::fd_count(), fds, "pool released every namespace and socket");
        assert!(!common::netsandbox_threads().contains(&"netsandbox-pool".to_owned()), "refill thread joined");
        assert_eq!(common::nsfs_mounts_under(base.path()), 1);
        assert_eq!(Socket::open().unwrap().links().unwrap().len(), 1);
        warm.destroy().unwrap();
    });
}

#[test]
fn a_live_idle_sandbox_holds_one_fd() {
    let _serial = SERIAL.lock();
    in_private_netns(|| {
        let base = TempBase::new("fds");
        let warm = NetnsSandbox::create(&key(&base, "warm"), &CreateOptions::default()).unwrap();
        common::wait_reaped();
        let fds = common::fd_count();
        let sbs: Vec<_> = (0..50)
            .map(|i| {
                let sb = NetnsSandbox::create(&key(&base, &format!("f{i}")), &CreateOptions::default()).unwrap();
                sb.add_veth(&format!("vf{i}"), "eth", &IfaceOptions::new().address(net("198.18.0.2/16"))).unwrap();
                sb
            })
            .collect();
        assert_eq!(common::fd_count() - fds, 50, "one fd (its netlink socket) per live sandbox");
        for sb in &sbs {
            sb.destroy().unwrap();
        }
        drop(sbs);
        common::wait_reaped();
        assert_eq!(common::fd_count(), fds);
        warm.destroy().unwrap();
    });
}

#[test]
fn warm_pool_refills_only_after_a_quiet_period() {
    let _serial = SERIAL.lock();
    in_private_netns(|| {
        use std::time::Duration;
        let base = TempBase::new("quiet");
        // An hour-long quiet period: after a take, nothing may be refilled during this test.
        let lazy = WarmPool::with_quiet_period(2, CreateOptions::default(), Duration::from_secs(3600)).unwrap();
        assert!(lazy.wait_full(Duration::from_secs(30)), "the first fill does not wait");
        let a = lazy.take(&key(&base, "a")).unwrap();
        assert_eq!(lazy.ready(), 1);
        assert!(!lazy.wait_full(Duration::from_millis(300)), "no refill right after a take");
        assert_eq!(lazy.ready(), 1);
        // No quiet period: the refill starts at once.
        let eager = WarmPool::with_quiet_period(2, CreateOptions::default(), Duration::ZERO).unwrap();
        assert!(eager.wait_full(Duration::from_secs(30)));
        let b = eager.take(&key(&base, "b")).unwrap();
        assert!(eager.wait_full(Duration::from_secs(30)), "refilled without waiting");
        for sb in [a, b] {
            sb.destroy().unwrap();
        }
        lazy.shutdown();
        eager.shutdown();
        assert_eq!(common::nsfs_mounts_under(base.path()), 0);
    });
}
