//! Teardown off the caller's path: host-end names free at once, moved links home before destroy
//! returns, and the kernel really reaping everything afterwards (links, mounts, namespaces).
//! They count process-wide resources, so they run one at a time (SERIAL).

mod common;

use std::time::{Duration, Instant};

use common::{TempBase, in_private_netns, ip, key, net};
use netsandbox::netlink::Socket;
use netsandbox::netlink::link::LinkRef;
use netsandbox::netns::NsFileHandle;
use netsandbox::sandbox::{CreateOptions, IfaceOptions, NetnsSandbox, REAP_GRACE, Sandbox, SandboxExt};
use parking_lot::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

/// Names of the links in the calling thread's namespace, from `ip -j link` (kernel truth).
fn host_links() -> Vec<(String, bool)> {
    let v: serde_json::Value = serde_json::from_str(&ip(&["-j", "link", "show"])).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let up = l["flags"].as_array().unwrap().iter().any(|f| f == "UP");
            (l["ifname"].as_str().unwrap().to_owned(), up)
        })
        .collect()
}

#[test]
fn host_end_name_is_free_at_once_and_reused_before_the_kernel_reaped_the_old_pair() {
    let _serial = SERIAL.lock();
    in_private_netns(|| {
        let base = TempBase::new("reuse");
        let old = NetnsSandbox::create(&key(&base, "old"), &CreateOptions::default()).unwrap();
        old.add_veth("vh0", "eth", &IfaceOptions::new().address(net("198.18.0.2/16"))).unwrap();
        // Something else holds the old namespace (as a process still inside would), so the
        // kernel cannot reap the old pair while the name is reused.
        let holder = old.with_netns(|ns| ns.try_clone()).unwrap().unwrap();
        let reaped = old.destroy_detached().unwrap();
        assert_eq!(reaped.host_ends().len(), 1);
        assert!(!reaped.is_reaped(), "the old namespace is held, so not reaped yet");
        assert!(host_links().iter().any(|(n, _)| n == "vh0"), "old pair still there, under its name");

        // A new sandbox wants the same host-end name at once.
        let new = NetnsSandbox::create(&key(&base, "new"), &CreateOptions::default()).unwrap();
        new.add_veth("vh0", "eth", &IfaceOptions::new().address(net("198.18.0.3/16"))).unwrap();
        let parked = reaped.parked();
        assert_eq!(parked.len(), 1, "the old host end was parked: {parked:?}");
        let links = host_links();
        assert!(links.iter().any(|(n, up)| n == "vh0" && *up), "new host end under the reused name: {links:?}");
        assert!(links.iter().any(|(n, up)| n == &parked[0] && !up), "old pair parked and down: {links:?}");
        assert!(!reaped.is_reaped(), "still not reaped: the name was reused before the kernel freed the pair");
        // The new pair is the new sandbox's: its end inside is eth0, up, and its peer is vh0.
        let inside = new.invoke(|| ip(&["-o", "link", "show", "eth0"])).unwrap();
        assert!(inside.contains(",UP"), "{inside}");
        let vh0 = Socket::open().unwrap().link(LinkRef::Name("vh0")).unwrap();
        let eth0 = new.invoke(|| Socket::open().unwrap().link(LinkRef::Name("eth0")).unwrap().index).unwrap();
        assert_eq!(vh0.link, Some(eth0), "vh0's peer is the new sandbox's eth0");

        drop(holder);
        assert!(reaped.wait(Duration::from_secs(60)), "reaped once nothing holds the old namespace");
        assert!(!host_links().iter().any(|(n, _)| n == &parked[0]), "old pair deleted by the kernel");
        new.destroy_detached().unwrap().wait(Duration::from_secs(60));
        assert_eq!(host_links().len(), 1, "only lo left: {:?}", host_links());
        common::wait_reaped();
    });
}

#[test]
fn destroy_returns_moved_in_links_before_it_returns() {
    let _serial = SERIAL.lock();
    in_private_netns(|| {
        let base = TempBase::new("movedhome");
        let host = Socket::open().unwrap();
        ip(&["link", "add", "mv0", "type", "veth", "peer", "name", "mvpeer"]);
        let sb = NetnsSandbox::create(&key(&base, "m"), &CreateOptions::default()).unwrap();
        sb.add_interface("mv0", "eth", &IfaceOptions::new().address(net("198.18.0.2/16"))).unwrap();
        sb.add_veth("vh1", "eth", &IfaceOptions::new()).unwrap();
        let reaped = sb.destroy_detached().unwrap();
        // No waiting: the moved link is home, under its own name, before destroy returned.
        let back = host.link(LinkRef::Name("mv0")).expect("moved-in link back in its origin");
        assert_eq!(back.alias, None);
        assert!(reaped.wait(Duration::from_secs(60)));
        let mut names: Vec<String> = host_links().into_iter().map(|(n, _)| n).collect();
        names.sort();
        assert_eq!(names, ["lo", "mv0", "mvpeer"]);
        host.delete_link(LinkRef::Name("mv0")).unwrap();
        common::wait_reaped();
    });
}

#[test]
fn the_kernel_really_reaps_every_namespace_link_and_mount() {
    let _serial = SERIAL.lock();
    common::wait_reaped();
    in_private_netns(|| {
        let base = TempBase::new("reap");
        let links_before = host_links().len();
        let mounts_before = common::nsfs_mounts_under(base.path());
        let mut handles = Vec::new();
        let mut all = Vec::new();
        for i in 0..20u32 {
            let k = key(&base, &format!("s{i}"));
            let sb = NetnsSandbox::create(&k, &CreateOptions::default()).unwrap();
            let opts = IfaceOptions::new().address(net(&format!("198.18.0.{}/16", i + 2)));
            sb.add_veth(&format!("vh{i}"), "eth", &opts).unwrap();
            if i % 4 == 0 {
                // A second pair, one without a host link-local address, and a bridge inside.
                sb.add_veth(&format!("vg{i}"), "eth", &IfaceOptions::new().host_link_local(false)).unwrap();
                sb.add_interface("", "br", &IfaceOptions::new().bridge(true)).unwrap();
            }
            handles.push(NsFileHandle::of_path(std::path::Path::new(&k)));
            all.push(sb);
        }
        // The kernel's own answer per namespace (lsns only sees namespaces a process is in, and
        // these have none): a file handle opens while anything references the namespace.
        let supported = handles.iter().all(|h| h.is_some_and(|h| h.alive() == Some(true)));
        let t = Instant::now();
        let mut reaped = Vec::new();
        for sb in &all[..10] {
            reaped.push(sb.destroy_detached().unwrap());
        }
        reaped.push(NetnsSandbox::destroy_many_detached(&all[10..].iter().collect::<Vec<_>>()).unwrap());
        assert_eq!(common::nsfs_mounts_under(base.path()), mounts_before, "pins unmounted on return");
        assert_eq!(std::fs::read_dir(base.path()).unwrap().count(), 0, "pin files removed on return");
        for r in &reaped {
            assert!(r.wait(Duration::from_secs(60)), "reaped within 60 s");
        }
        println!("20 sandboxes reaped {:.1} ms after the first destroy", t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(host_links().len(), links_before, "no link left: {:?}", host_links());
        if supported {
            let alive: Vec<_> = handles.iter().map(|h| h.and_then(|h| h.alive())).collect();
            assert!(alive.iter().all(|a| *a == Some(false)), "every namespace freed: {alive:?}");
        } else {
            println!("skip the namespace check: this kernel has no nsfs file handles (Linux 6.18+)");
        }
        drop(all);
        common::wait_reaped();
    });
}

#[test]
fn parked_host_ends_of_a_namespace_held_elsewhere_are_deleted_after_the_grace_period() {
    let _serial = SERIAL.lock();
    in_private_netns(|| {
        let base = TempBase::new("held");
        let sb = NetnsSandbox::create(&key(&base, "h"), &CreateOptions::default()).unwrap();
        sb.add_veth("vh0", "eth", &IfaceOptions::new()).unwrap();
        let holder = sb.with_netns(|ns| ns.try_clone()).unwrap().unwrap();
        let handle = NsFileHandle::of_path(std::path::Path::new(sb.key()));
        let reaped = sb.destroy_detached().unwrap();
        let t = Instant::now();
        assert!(reaped.wait(REAP_GRACE + Duration::from_secs(60)), "bounded even while the namespace is held");
        assert!(t.elapsed() + Duration::from_millis(100) >= REAP_GRACE, "not before the grace period");
        assert_eq!(host_links().len(), 1, "parked end deleted: {:?}", host_links());
        if let Some(alive) = handle.and_then(|h| h.alive()) {
            assert!(alive, "the holder still has the namespace");
        }
        // Inside, its end went with the pair; the holder's namespace keeps only lo.
        let inside = netsandbox::netns::run_in(&holder, || ip(&["-o", "link", "show"])).unwrap();
        assert_eq!(inside.lines().count(), 1, "{inside}");
        drop(holder);
        common::wait_reaped();
    });
}

#[test]
fn prewired_pool_take_renames_the_host_end_and_configures_both_ends() {
    use netsandbox::sandbox::WarmPool;
    let _serial = SERIAL.lock();
    in_private_netns(|| {
        let base = TempBase::new("prewired");
        let pool = WarmPool::prewired(3, CreateOptions::default()).unwrap();
        assert!(pool.wait_full(Duration::from_secs(30)));
        let parked: Vec<(String, bool)> = host_links().into_iter().filter(|(n, _)| n.starts_with("nsw")).collect();
        assert_eq!(parked.len(), 3, "three pairs waiting, host ends under temporary names: {parked:?}");
        assert!(parked.iter().all(|(_, up)| !up), "and down: {parked:?}");
        // The default host-end IPv6 mode (none) is applied while they wait, off the take's path.
        for (n, _) in &parked {
            assert_eq!(disable_ipv6(n), "1", "{n} waits with IPv6 off");
        }

        let sb = pool.take(&key(&base, "p")).unwrap();
        let mac = [0x02, 0x42, 0xc6, 0x12, 0x00, 0x07];
        let opts = IfaceOptions::new()
            .address(net("198.18.0.7/16"))
            .address_ipv6(net("2001:db8::7/64"))
            .mac(mac)
            .host_link_local(false);
        assert_eq!(sb.add_veth("vh7", "eth", &opts).unwrap(), "eth0");
        let links = host_links();
        assert!(links.iter().any(|(n, up)| n == "vh7" && *up), "host end renamed and up: {links:?}");
        let left = parked.iter().filter(|(p, _)| links.iter().any(|(n, _)| n == p)).count();
        assert_eq!(left, 2, "one waiting pair was used: {parked:?} then {links:?}");
        let vh7: serde_json::Value = serde_json::from_str(&ip(&["-j", "-d", "link", "show", "vh7"])).unwrap();
        assert_eq!(vh7[0]["inet6_addr_gen_mode"], "none", "{vh7}");
        assert_eq!(disable_ipv6("vh7"), "1", "vh7 keeps IPv6 off after the rename");
        let vh7a: serde_json::Value = serde_json::from_str(&ip(&["-j", "addr", "show", "vh7"])).unwrap();
        assert_eq!(vh7a[0]["addr_info"].as_array().map_or(0, Vec::len), 0, "no address on the host end: {vh7a}");
        let inside: serde_json::Value =
            serde_json::from_str(&sb.invoke(|| ip(&["-j", "addr", "show", "eth0"])).unwrap()).unwrap();
        let eth0 = &inside[0];
        assert_eq!(eth0["address"], "02:42:c6:12:00:07", "{eth0}");
        assert!(eth0["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "{eth0}");
        let addrs: Vec<&str> =
            eth0["addr_info"].as_array().unwrap().iter().filter_map(|a| a["local"].as_str()).collect();
        assert!(addrs.contains(&"198.18.0.7") && addrs.contains(&"2001:db8::7"), "{addrs:?}");
        assert!(sb.interfaces().unwrap()[0].created, "known as made by the sandbox");
        // The peer of vh7 is this sandbox's eth0.
        let eth0_index = sb.invoke(|| Socket::open().unwrap().link(LinkRef::Name("eth0")).unwrap().index).unwrap();
        assert_eq!(Socket::open().unwrap().link(LinkRef::Name("vh7")).unwrap().link, Some(eth0_index));
        // A second add_veth makes a new pair as usual.
        assert_eq!(sb.add_veth("vh8", "eth", &IfaceOptions::new()).unwrap(), "eth1");

        // A take that wants the host end's link-local address gets IPv6 back on it.
        let ll = pool.take(&key(&base, "l")).unwrap();
        ll.add_veth("vh9", "eth", &IfaceOptions::new().host_link_local(true)).unwrap();
        let vh9: serde_json::Value = serde_json::from_str(&ip(&["-j", "-d", "link", "show", "vh9"])).unwrap();
        assert_eq!(vh9[0]["inet6_addr_gen_mode"], "eui64", "{vh9}");
        assert_eq!(disable_ipv6("vh9"), "0", "vh9 has IPv6 back");

        // A taken sandbox whose pair was never used leaves nothing either.
        let unused = pool.take(&key(&base, "u")).unwrap();
        let r1 = sb.destroy_detached().unwrap();
        let r2 = unused.destroy_detached().unwrap();
        let r3 = ll.destroy_detached().unwrap();
        pool.shutdown();
        assert!(
            r1.wait(Duration::from_secs(60)) && r2.wait(Duration::from_secs(60)) && r3.wait(Duration::from_secs(60))
        );
        common::wait_reaped();
        assert_eq!(host_links().len(), 1, "only lo left: {:?}", host_links());
        assert_eq!(common::nsfs_mounts_under(base.path()), 0);
    });
}

/// The kernel finds a peer namespace's id by walking the origin's ids in ascending order on
/// every notification about a host end; the newest sandbox, whose links are being set up, is
/// given the lowest id of those netsandbox named, so it is found first (see the 5 000 test).
#[test]
fn the_newest_sandbox_has_the_lowest_namespace_id_in_the_origin() {
    let _serial = SERIAL.lock();
    in_private_netns(|| {
        let base = TempBase::new("nsid");
        let mut live = Vec::new();
        let mut ids = Vec::new();
        for i in 0..3 {
            let sb = NetnsSandbox::create(&key(&base, &format!("n{i}")), &CreateOptions::default()).unwrap();
            sb.add_veth(&format!("vn{i}"), "eth", &IfaceOptions::new()).unwrap();
            // A second veth keeps the id the first one gave.
            sb.add_veth(&format!("vm{i}"), "eth", &IfaceOptions::new()).unwrap();
            let l: serde_json::Value = serde_json::from_str(&ip(&["-j", "link", "show", &format!("vn{i}")])).unwrap();
            let m: serde_json::Value = serde_json::from_str(&ip(&["-j", "link", "show", &format!("vm{i}")])).unwrap();
            assert_eq!(l[0]["link_netnsid"], m[0]["link_netnsid"], "{l} {m}");
            ids.push(l[0]["link_netnsid"].as_i64().unwrap());
            live.push(sb);
        }
        assert!(ids[0] > ids[1] && ids[1] > ids[2], "ids count down: {ids:?}");
        // Not the kernel's own choice (the lowest free id: 0, 1, 2 here).
        assert!(ids[2] >= 1 << 16, "from the top of this process's id range: {ids:?}");
        for sb in live {
            sb.destroy().unwrap();
        }
        common::wait_reaped();
    });
}

/// `net.ipv6.conf.<link>.disable_ipv6` in this thread's namespace.
fn disable_ipv6(link: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{link}/disable_ipv6")).unwrap().trim().to_owned()
}

/// Our RSS in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

/// One SW set-up (`create`, `add_veth`, gateway, route, neighbor) with the default options;
/// returns the sandbox and the milliseconds of each step: create, add_veth, the rest.
fn scale_setup(base: &TempBase, tag: &str, j: usize) -> (NetnsSandbox, [f64; 3]) {
    use netsandbox::sandbox::{NeighOptions, StaticRoute};
    let gw = common::addr("198.18.255.254");
    let t = Instant::now();
    let sb = NetnsSandbox::create(&key(base, &format!("{tag}{j}")), &CreateOptions::default()).unwrap();
    let t1 = Instant::now();
    let opts = IfaceOptions::new()
        .address(net(&format!("198.18.{}.{}/16", j >> 8, j & 0xff)))
        .address_ipv6(net(&format!("2001:db8::{j:x}/64")))
        .mac([0x02, 0x42, 0xc6, 0x12, (j >> 8) as u8, j as u8]);
    sb.add_veth(&format!("v{tag}{j}"), "eth", &opts).unwrap();
    let t2 = Instant::now();
    sb.set_gateway(gw).unwrap();
    sb.add_static_route(&StaticRoute::via(net(&format!("198.19.{}.0/24", j % 250)), gw)).unwrap();
    sb.add_neighbor(gw, [0x02, 0x42, 0xc6, 0x12, 0xff, 0xfe], false, &NeighOptions::new()).unwrap();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (sb, [ms(t1 - t), ms(t2 - t1), ms(t2.elapsed())])
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// Scale: 5 000 live SW sandboxes with the default options. Asserts the resource bounds (≤ 1 fd
/// and < 64 KiB of our memory per idle sandbox, everything reaped within a bound) and prints the
/// set-up growth (first vs last 10 %), which is a measurement, not an assertion. Every 10th
/// set-up is paired with one in a second, nearly empty host namespace (the control, at most
/// N / 10 live), so growth with N can be told apart from the machine's load changing during the
/// run. Long: run with
/// `cargo test --release --test lifecycle -- --ignored five_thousand --nocapture`
/// (`NSBX_SCALE_N` overrides the count).
#[test]
#[ignore = "long: 5 000 live sandboxes"]
fn five_thousand_live_sandboxes() {
    let _serial = SERIAL.lock();
    // One socket per live sandbox: raise the soft fd limit to the hard one.
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid rlimit for both calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    let n: usize = std::env::var("NSBX_SCALE_N").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let base = TempBase::new("scale");
    // On a real host pins live on /run (tmpfs); on ext4 pin-file creation slows with churn.
    nix::mount::mount(Some("tmpfs"), base.path(), Some("tmpfs"), nix::mount::MsFlags::empty(), Some("mode=0700"))
        .unwrap();
    // The control host: a thread in its own private namespace, set-ups on request.
    let (to_ctl, ctl_rx) = std::sync::mpsc::channel::<usize>();
    let (ctl_tx, from_ctl) = std::sync::mpsc::channel::<[f64; 3]>();
    std::thread::scope(|s| {
        let base = &base;
        s.spawn(move || {
            in_private_netns(move || {
                let mut kept = Vec::new();
                while let Ok(j) = ctl_rx.recv() {
                    let (sb, t) = scale_setup(base, "c", j);
                    kept.push(sb);
                    if ctl_tx.send(t).is_err() {
                        break;
                    }
                }
                let r = NetnsSandbox::destroy_many_detached(&kept.iter().collect::<Vec<_>>()).unwrap();
                assert!(r.wait(Duration::from_secs(600)), "control sandboxes reaped");
            })
        });
        in_private_netns(move || {
            let warm = NetnsSandbox::create(&key(base, "warm"), &CreateOptions::default()).unwrap();
            // The control's first set-up opens its host's socket, before the baseline is taken.
            to_ctl.send(0).unwrap();
            from_ctl.recv().unwrap();
            common::wait_reaped();
            let (fds, rss) = (common::fd_count(), rss_kib());
            let mut steps: [Vec<f64>; 3] = Default::default();
            let mut paired: Vec<(usize, f64, f64)> = Vec::new();
            let mut all = Vec::with_capacity(n);
            for i in 0..n {
                let (sb, t) = scale_setup(base, "s", i + 1);
                for (v, x) in steps.iter_mut().zip(t) {
                    v.push(x);
                }
                all.push(sb);
                if i % 10 == 0 {
                    to_ctl.send(i / 10 + 1).unwrap();
                    let c = from_ctl.recv().unwrap();
                    paired.push((i, t.iter().sum(), c.iter().sum()));
                }
            }
            drop(to_ctl);
            // The control's sandboxes (one per 10 here) are live too.
            let live = (n + paired.len()) as f64;
            let fd_per = (common::fd_count() - fds) as f64 / live;
            let kib_per = (rss_kib().saturating_sub(rss)) as f64 / live;
            let k = (n / 10).max(1);
            let total: Vec<f64> = (0..n).map(|i| steps.iter().map(|v| v[i]).sum()).collect();
            let (first, last) = (median(&total[..k]), median(&total[n - k..]));
            println!(
                "{n} live: {fd_per:.2} fds and {kib_per:.1} KiB per sandbox; set-up first 10% {first:.3} ms, last \
                 10% {last:.3} ms ({:+.0}%)",
                (last / first - 1.0) * 100.0
            );
            for (name, v) in ["create", "add_veth", "rest"].iter().zip(&steps) {
                let d: Vec<String> = v.chunks(k).map(|c| format!("{:.3}", median(c))).collect();
                println!("  {name:8} median per 10%: {}", d.join(" "));
            }
            // Paired with the control: set-up here divided by the control's, per 10 %.
            let kp = (paired.len() / 10).max(1);
            let r: Vec<f64> = paired.iter().map(|&(_, a, c)| a / c).collect();
            let d: Vec<String> = r.chunks(kp).map(|c| format!("{:.2}", median(c))).collect();
            let c: Vec<String> = paired
                .chunks(kp)
                .map(|c| format!("{:.3}", median(&c.iter().map(|p| p.2).collect::<Vec<_>>())))
                .collect();
            println!("  control  median per 10%: {}", c.join(" "));
            println!("  here / control per 10%:   {}", d.join(" "));
            assert!(fd_per <= 1.0, "{fd_per} fds per idle sandbox");
            assert!(kib_per < 64.0, "{kib_per} KiB per idle sandbox");
            let t = Instant::now();
            let reaped = NetnsSandbox::destroy_many_detached(&all.iter().collect::<Vec<_>>()).unwrap();
            let on_path = t.elapsed();
            assert!(reaped.wait(Duration::from_secs(600)), "all {n} reaped within 600 s");
            println!(
                "teardown of {n}: {:.3} ms per sandbox on the caller's path, all reaped {:.1} s after it began",
                on_path.as_secs_f64() * 1e3 / n as f64,
                t.elapsed().as_secs_f64()
            );
            drop(all);
            common::wait_reaped();
            assert_eq!(host_links().len(), 1, "only lo left");
            warm.destroy().unwrap();
            common::wait_reaped();
        });
    });
    nix::mount::umount2(base.path(), nix::mount::MntFlags::MNT_DETACH).unwrap();
}
