//! Per-operation benchmarks, all inside a private network namespace (see BENCHMARKS.md).
//!
//! `cargo bench --bench ops` — sample sizes are small so the whole run takes a few minutes;
//! `cargo bench --bench ops -- "N live"` runs only the growth-with-N group.
//!
//! Safety: the bench thread first unshares into a brand-new network namespace, so the machine's
//! own namespace is never touched; pins go under `$TMPDIR/netsandbox-bench-<pid>/`. Kernel
//! objects made per sample live in throwaway namespaces that are simply dropped, which also keeps
//! the slow link deletion (tens of ms per veth) out of the measurements.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, black_box};
use ipnet::IpNet;
use netsandbox::netlink::addr::AddrOptions;
use netsandbox::netlink::link::{self, LinkChange, LinkRef, VethPeer};
use netsandbox::netlink::neigh::NeighSpec;
use netsandbox::netlink::route::RouteSpec;
use netsandbox::netlink::{BatchMode, Socket};
use netsandbox::netns::{self, NetNs};
use netsandbox::sandbox::{CreateOptions, IfaceOptions, NeighOptions, NetnsSandbox, Sandbox, StaticRoute, WarmPool};

const GW_MAC: [u8; 6] = [0x02, 0x42, 0xc6, 0x12, 0xff, 0xfe];
/// Objects per throwaway namespace before a fresh one is used (bounds table sizes and loops).
const CHUNK: u64 = 1000;

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn next() -> usize {
    SEQ.fetch_add(1, Ordering::Relaxed)
}

fn base() -> PathBuf {
    std::env::temp_dir().join(format!("netsandbox-bench-{}", std::process::id()))
}

/// The `k`-th address of 198.18.0.0/15 (k < 2^17).
fn nth_v4(k: u64) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + (k as u32 & 0x1ffff))
}

/// A throwaway namespace with lo up and a socket bound to it.
fn scratch() -> (NetNs, Socket) {
    let ns = NetNs::new_unpinned().expect("new namespace");
    let s = netsandbox::netns::socket_in(&ns).expect("socket in namespace");
    s.set_link(LinkRef::Index(1), &LinkChange::new().up(true)).expect("lo up");
    (ns, s)
}

/// Runs `op(socket, k)` `iters` times, timing only `op`; `prepare` runs (untimed) on each fresh
/// throwaway namespace, which is replaced every [`CHUNK`] operations and dropped afterwards.
fn chunked(iters: u64, prepare: impl Fn(&NetNs, &Socket), op: impl Fn(&NetNs, &Socket, u64)) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let (ns, s) = scratch();
        prepare(&ns, &s);
        let n = CHUNK.min(iters - done);
        let t = Instant::now();
        for k in 0..n {
            op(&ns, &s, k);
        }
        total += t.elapsed();
        done += n;
    }
    total
}

fn bench_netns(c: &mut Criterion) {
    let dir = base().join("ns");
    c.bench_function("netns/create+pin+destroy", |b| {
        b.iter(|| {
            let pin = dir.join(format!("n{}", next()));
            let ns = netns::create_pinned(&pin).expect("create pinned");
            drop(ns);
            netns::unpin(&pin).expect("unpin");
        })
    });
}

fn bench_veth(c: &mut Criterion) {
    c.bench_function("link/veth born inside", |b| {
        b.iter_custom(|iters| {
            let sandbox = NetNs::new_unpinned().expect("sandbox namespace");
            chunked(
                iters,
                |_, _| {},
                |_, s, k| {
                    let peer = VethPeer {
                        name: format!("c{k}"),
                        mac: Some([0x02, 0x42, 0xc6, 0x12, (k >> 8) as u8, k as u8]),
                        netns: Some(sandbox.as_fd()),
                        ..Default::default()
                    };
                    s.execute(link::create_veth(&format!("h{k}"), None, &peer).expect("request")).expect("veth");
                },
            )
        })
    });
}

fn bench_addr_route_neigh(c: &mut Criterion) {
    c.bench_function("addr/add v4 on lo", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                |_, _| {},
                |_, s, k| {
                    let net = IpNet::new(IpAddr::V4(nth_v4(k)), 32).expect("net");
                    s.add_address(1, &net, AddrOptions::default()).expect("add address");
                },
            )
        })
    });
    c.bench_function("route/add /32 dev lo", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                |_, _| {},
                |_, s, k| {
                    let dst = IpNet::new(IpAddr::V4(nth_v4(k)), 32).expect("net");
                    s.add_route(&RouteSpec::new(dst).dev(1)).expect("add route");
                },
            )
        })
    });
    c.bench_function("neigh/add permanent on veth", |b| {
        b.iter_custom(|iters| {
            chunked(
                iters,
                |_, s| {
                    let peer =
                        VethPeer { name: "b0".into(), index: Some(3), host_index: Some(2), ..Default::default() };
                    s.execute(link::create_veth("a0", None, &peer).expect("request")).expect("veth");
                    s.set_link(LinkRef::Index(2), &LinkChange::new().up(true)).expect("up");
                },
                |_, s, k| {
                    let spec = NeighSpec::arp(2, IpAddr::V4(nth_v4(k)), GW_MAC);
                    s.add_neighbor(&spec, false).expect("add neighbor");
                },
            )
        })
    });
}

/// A throwaway namespace holding `links` links (veth pairs, both ends inside) besides lo.
fn namespace_with_links(links: usize) -> (NetNs, Socket) {
    let (ns, s) = scratch();
    let reqs: Vec<_> = (0..links / 2)
        .map(|i| {
            let peer = VethPeer { name: format!("b{i}"), ..Default::default() };
            link::create_veth(&format!("a{i}"), None, &peer).expect("request")
        })
        .collect();
    s.batch(&reqs, BatchMode::Continue).expect("batch").into_result().expect("create veths");
    (ns, s)
}

fn bench_dump(c: &mut Criterion) {
    let mut g = c.benchmark_group("link/dump");
    for links in [1000usize, 10_000] {
        let t = Instant::now();
        let (_ns, s) = namespace_with_links(links);
        eprintln!("(made {links} links in {:.1} s)", t.elapsed().as_secs_f64());
        g.bench_with_input(BenchmarkId::from_parameter(links), &links, |b, _| {
            b.iter(|| black_box(s.links().expect("dump")).len())
        });
    }
    g.finish();
}

fn sw_setup(dir: &Path, i: usize) -> NetnsSandbox {
    sw_setup_with(dir, i, true)
}

/// SW-direct through the trait; `host_ll`: see `IfaceOptions::host_link_local`.
fn sw_setup_with(dir: &Path, i: usize, host_ll: bool) -> NetnsSandbox {
    let j = i % 60_000 + 1;
    let key = dir.join(format!("sbx{i}")).display().to_string();
    let sb = NetnsSandbox::create(&key, &CreateOptions::default()).expect("create");
    let v4: IpNet = format!("198.18.{}.{}/16", j >> 8, j & 0xff).parse().expect("v4");
    let v6: IpNet = format!("2001:db8::{j:x}/64").parse().expect("v6");
    let opts = IfaceOptions::new()
        .mac([0x02, 0x42, 0xc6, 0x12, (j >> 8) as u8, j as u8])
        .address(v4)
        .address_ipv6(v6)
        .host_link_local(host_ll);
    sb.add_veth(&format!("vh{i}"), "eth", &opts).expect("add_veth");
    let gw: IpAddr = "198.18.255.254".parse().expect("gw");
    sb.set_gateway(gw).expect("gateway");
    let dst: IpNet = format!("198.19.{}.0/24", i % 250).parse().expect("dst");
    sb.add_static_route(&StaticRoute::via(dst, gw)).expect("route");
    sb.add_neighbor(gw, GW_MAC, false, &NeighOptions::new()).expect("neighbor");
    sb
}

fn bench_sw(c: &mut Criterion) {
    let dir = base().join("sw");
    c.bench_function("sw-direct/trait set-up+destroy", |b| {
        b.iter(|| sw_setup(&dir, next()).destroy().expect("destroy"))
    });
    c.bench_function("sw-direct/trait set-up only", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = Instant::now();
                let sb = sw_setup(&dir, next());
                total += t.elapsed();
                sb.destroy().expect("destroy");
            }
            total
        })
    });
}

/// Full SW set-up with N sandboxes already alive (N = 1, 100, 1000): does the cost grow with N?
/// Twice: with the kernel's defaults, and with host ends that get no IPv6 link-local address
/// (`IfaceOptions::host_link_local(false)`), which takes the kernel's per-interface IPv6 work in
/// the host namespace out. Each run gets its own private host namespace. Sandboxes made while
/// measuring stay alive too, so "N" is a lower bound (criterion adds ~150). Clean-up
/// unpins every sandbox and drops the host namespace, so the kernel deletes the veth pairs in
/// one batch instead of one RCU wait (~35 ms) each.
/// Pause for the kernel's deferred per-link work before and after a group of live sandboxes.
const SETTLE: Duration = Duration::from_secs(12);

fn bench_sw_live(c: &mut Criterion) {
    let mut g = c.benchmark_group("sw-direct/set-up with N live");
    // Short runs: every measured sandbox stays alive, so a long run would itself grow N.
    g.warm_up_time(Duration::from_millis(50)).measurement_time(Duration::from_millis(300));
    for host_ll in [true, false] {
        let label = if host_ll { "kernel defaults" } else { "host ends without link-local" };
        for n in [1usize, 100, 1000] {
            let host = NetNs::new_unpinned().expect("host namespace");
            let dir = base().join(format!("live{n}-{host_ll}"));
            let mut live: Vec<NetnsSandbox> = Vec::new();
            {
                // The criterion group is not Send, so this thread itself joins the host namespace
                // (and is put back when the guard drops).
                let _in_host = netns::NsGuard::enter(&host).expect("enter host namespace");
                live.extend((1..n).map(|_| sw_setup_with(&dir, next(), host_ll)));
                // Every new link leaves the kernel seconds of deferred IPv6 work (DAD after 1 s,
                // MLD reports and router solicitations for ~10 s, link watch) that takes RTNL;
                // measuring right after making N links would measure that backlog instead of
                // the cost of one more sandbox among N (2.6 ms instead of 1.8 at N = 1000 here).
                std::thread::sleep(SETTLE);
                g.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let t = Instant::now();
                            let sb = sw_setup_with(&dir, next(), host_ll);
                            total += t.elapsed();
                            live.push(sb);
                        }
                        total
                    })
                });
            }
            let keys: Vec<PathBuf> = live.drain(..).map(|sb| PathBuf::from(sb.key())).collect();
            for k in &keys {
                netns::unpin(k).expect("unpin");
            }
            drop(host);
            let _ = netns::release_base(&dir);
            // Let the kernel's asynchronous clean-up of this group's namespaces run before the next.
            std::thread::sleep(SETTLE);
        }
    }
    g.finish();
}

fn bench_pool(c: &mut Criterion) {
    let dir = base().join("pool");
    let pool = WarmPool::new(16, CreateOptions::default()).expect("pool");
    c.bench_function("pool/take with a namespace ready", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Measure the ready case only: let the background refill catch up (untimed).
                if pool.ready() == 0 {
                    pool.wait_full(Duration::from_secs(30));
                }
                let key = dir.join(format!("p{}", next())).display().to_string();
                let t = Instant::now();
                let sb = pool.take(&key).expect("take");
                total += t.elapsed();
                sb.destroy().expect("destroy");
            }
            total
        })
    });
    pool.shutdown();
}

/// Removes the bench directory, detaching anything still mounted below it, on drop.
struct BaseGuard(PathBuf);

impl Drop for BaseGuard {
    fn drop(&mut self) {
        let _ = netns::mountinfo::detach_all_under(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    // Everything below runs in a private namespace of this thread (threads it spawns inherit it).
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    std::fs::create_dir_all(base()).expect("bench directory");
    let _guard = BaseGuard(base());
    // Pins on tmpfs, as under /run on a real host (see BENCHMARKS.md: on ext4 creating pin files
    // gets slower with every file created and deleted before).
    nix::mount::mount(Some("tmpfs"), &base(), Some("tmpfs"), nix::mount::MsFlags::empty(), Some("mode=0700"))
        .expect("tmpfs on the bench directory");
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_netns(&mut c);
    bench_veth(&mut c);
    bench_addr_route_neigh(&mut c);
    bench_dump(&mut c);
    bench_sw(&mut c);
    bench_sw_live(&mut c);
    bench_pool(&mut c);
    c.final_summary();
    verify();
    for d in ["ns", "sw", "pool"] {
        let _ = netns::release_base(&base().join(d));
    }
}

/// No pins or links left behind.
fn verify() {
    let nsfs = netns::mountinfo::mounts_under(&base()).unwrap_or_default().iter().filter(|m| m.is_nsfs()).count();
    let links = Socket::open().and_then(|s| s.links()).map(|l| l.len()).unwrap_or(usize::MAX);
    assert_eq!(nsfs, 0, "nsfs mounts left under the bench directory");
    assert_eq!(links, 1, "links left in the private namespace besides lo");
    eprintln!("verified: no nsfs mounts and no links left");
}
