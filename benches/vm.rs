//! VM attach/detach benchmarks against the plain `add_veth` cost, inside a private network
//! namespace (see BENCHMARKS.md, "VM sandboxes").
//!
//! `cargo bench --bench vm`. Safety: the bench thread first unshares into a brand-new network
//! namespace, so the machine's own namespace is never touched; pins go on a private tmpfs under
//! `$TMPDIR/netsandbox-vmbench-<pid>/`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::Criterion;
use netsandbox::netlink::Socket;
use netsandbox::netns;
use netsandbox::sandbox::{AttachMode, AttachOptions, CreateOptions, IfaceOptions, NetnsSandbox, Sandbox};

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn base() -> PathBuf {
    std::env::temp_dir().join(format!("netsandbox-vmbench-{}", std::process::id()))
}

fn veth_opts() -> IfaceOptions {
    IfaceOptions::new()
        .address("198.18.0.2/16".parse().unwrap())
        .address_ipv6("2001:db8::2/64".parse().unwrap())
        .mac([0x02, 0x42, 0xc6, 0x12, 0x00, 0x02])
        .host_link_local(false)
}

/// A pod as a CNI plugin leaves it: eth0 with addresses and a gateway on both families.
fn pod(dir: &Path) -> NetnsSandbox {
    let i = SEQ.fetch_add(1, Ordering::Relaxed);
    let sb = NetnsSandbox::create(&dir.join(format!("p{i}")).display().to_string(), &CreateOptions::default())
        .expect("create");
    sb.add_veth(&format!("vb{i}"), "eth", &veth_opts()).expect("add_veth");
    sb.set_gateway("198.18.255.254".parse().unwrap()).expect("gateway");
    sb.set_gateway("2001:db8::ffff".parse().unwrap()).expect("gateway6");
    sb
}

fn bench_baseline(c: &mut Criterion, dir: &Path) {
    c.bench_function("vm/baseline add_veth", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut made = Vec::new();
            for _ in 0..iters {
                let i = SEQ.fetch_add(1, Ordering::Relaxed);
                let sb =
                    NetnsSandbox::create(&dir.join(format!("b{i}")).display().to_string(), &CreateOptions::default())
                        .expect("create");
                let t = Instant::now();
                sb.add_veth(&format!("vb{i}"), "eth", &veth_opts()).expect("add_veth");
                total += t.elapsed();
                made.push(sb);
            }
            NetnsSandbox::destroy_many(&made.iter().collect::<Vec<_>>()).expect("destroy");
            total
        })
    });
}

fn bench_attach(c: &mut Criterion, dir: &Path) {
    let cases = [
        ("tc 1 queue", AttachOptions::new(AttachMode::TcRedirect)),
        ("tc 4 queues", AttachOptions::new(AttachMode::TcRedirect).queues(4)),
        ("bridge", AttachOptions::new(AttachMode::Bridge)),
        ("macvtap", AttachOptions::new(AttachMode::Macvtap)),
    ];
    let sb = pod(dir);
    for (name, opts) in &cases {
        c.bench_function(&format!("vm/attach {name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let a = sb.vm_attach("eth0", opts).expect("attach");
                    total += t.elapsed();
                    drop(a);
                    sb.vm_detach("eth0").expect("detach");
                }
                total
            })
        });
        c.bench_function(&format!("vm/detach {name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    drop(sb.vm_attach("eth0", opts).expect("attach"));
                    let t = Instant::now();
                    sb.vm_detach("eth0").expect("detach");
                    total += t.elapsed();
                }
                total
            })
        });
    }
    sb.destroy().expect("destroy");
}

struct BaseGuard(PathBuf);

impl Drop for BaseGuard {
    fn drop(&mut self) {
        let prefix = self.0.display().to_string();
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn main() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
    std::fs::create_dir_all(base()).expect("bench directory");
    let _guard = BaseGuard(base());
    nix::mount::mount(Some("tmpfs"), &base(), Some("tmpfs"), nix::mount::MsFlags::empty(), Some("mode=0700"))
        .expect("tmpfs on the bench directory");
    let dir = base().join("sb");
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_baseline(&mut c, &dir);
    bench_attach(&mut c, &dir);
    c.final_summary();
    let links = Socket::open().and_then(|s| s.links()).map(|l| l.len()).unwrap_or(usize::MAX);
    assert_eq!(links, 1, "links left in the private namespace besides lo");
    let _ = netns::release_base(&dir);
    eprintln!("verified: no links left");
}
