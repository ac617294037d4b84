//! Comparison runner for workload SW (see BENCHMARKS.md): netsandbox (low level, batched, through
//! the `Sandbox` trait, SW-move) against iproute2 (one process per step, and `ip -batch`) and the
//! async `rtnetlink` crate (on a tokio current-thread runtime), in private namespaces only. Variants run interleaved in rounds to reduce drift.
//!
//! ```text
//! cargo run --release -p netsandbox-compare -- --n 100 [--round 10] [--only trait,ip-batch] [--no-live] [--disk]
//! ```
//!
//! Safety: everything happens inside private "host" namespaces made by this process (one per
//! variant); pins go under `$TMPDIR/netsandbox-bench-<pid>/`, never `/run/netns`. iproute2 is run
//! from a thread inside the private host namespace (children inherit the thread's namespace), and
//! inside a sandbox through `nsenter --net=<pin>`.

mod cleanup;
mod ctx;
mod iproute2;
mod live;
mod ours;
mod report;
mod rtnl;
mod sw;

use std::time::{Duration, Instant};

use netsandbox::netns;

use cleanup::{BaseGuard, verify};
use ctx::{ALL, Ctx, Variant};
use live::{LIVE_SETTLE, live_sandboxes};
use report::report;

pub(crate) type R<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub(crate) const GW: &str = "198.18.255.254";
pub(crate) const GW_MAC: [u8; 6] = [0x02, 0x42, 0xc6, 0x12, 0xff, 0xfe];
/// ifindex of eth0 inside a sandbox built by the low-level variants (chosen at creation).
pub(crate) const INNER_INDEX: u32 = 2;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Args {
    n: usize,
    round: usize,
    only: Vec<Variant>,
    live: bool,
    settle: Duration,
    /// Keep pins on `$TMPDIR`'s filesystem instead of a private tmpfs.
    disk: bool,
}

fn parse_args() -> R<Args> {
    let mut a =
        Args { n: 100, round: 10, only: ALL.to_vec(), live: true, settle: Duration::from_millis(100), disk: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--n" => a.n = it.next().ok_or("--n needs a value")?.parse()?,
            "--round" => a.round = it.next().ok_or("--round needs a value")?.parse()?,
            "--no-live" => a.live = false,
            "--disk" => a.disk = true,
            "--settle-ms" => a.settle = Duration::from_millis(it.next().ok_or("--settle-ms needs a value")?.parse()?),
            "--only" => {
                let names = it.next().ok_or("--only needs a list")?;
                a.only = names
                    .split(',')
                    .map(|n| ALL.iter().copied().find(|v| v.name() == n).ok_or(format!("unknown variant {n}")))
                    .collect::<Result<_, _>>()?;
            }
            "--bench" => {} // passed by `cargo bench`-style runners; ignored
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.n == 0 || a.n > 5000 || a.round == 0 {
        return Err("--n must be in 1..=5000 and --round >= 1".into());
    }
    Ok(a)
}

fn main() {
    // One socket per live sandbox: thousands of them need more than the usual soft limit.
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    if let Err(e) = real_main() {
        eprintln!("compare failed: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> R<()> {
    let args = parse_args()?;
    let base = std::env::temp_dir().join(format!("netsandbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let _guard = BaseGuard(base.clone());
    if !args.disk {
        // Pins live on tmpfs, as under /run on a real host. On ext4, creating the pin file gets
        // slower the more files were created and deleted before (the inode allocator checks
        // recently deleted inodes), which would show up as growth with N that is not ours.
        nix::mount::mount(Some("tmpfs"), &base, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("mode=0700"))?;
    }
    let mut ctxs = args.only.iter().map(|v| Ctx::new(*v, &base, args.round)).collect::<R<Vec<_>>>()?;
    let started = Instant::now();
    let mut start = 0;
    let mut rotation = 0;
    while start < args.n {
        let end = (start + args.round).min(args.n);
        for k in 0..ctxs.len() {
            let idx = (k + rotation) % ctxs.len();
            ctxs[idx].round(start..end)?;
            // Let the kernel's asynchronous namespace clean-up of this round finish, so it does
            // not slow down the next variant.
            std::thread::sleep(args.settle);
        }
        rotation += 1;
        start = end;
    }
    println!("rounds done in {:.1} s", started.elapsed().as_secs_f64());
    report(&ctxs, args.n);
    if args.live
        && let Some(c) = ctxs.iter().find(|c| c.variant == Variant::Trait)
    {
        // The first pass tears down one by one, the second with one destroy_many.
        for (host_ll, batch) in [(true, false), (false, true)] {
            // The kernel frees destroyed namespaces and their devices asynchronously, for seconds
            // after a large teardown, under the same locks set-up needs: let it finish first.
            std::thread::sleep(LIVE_SETTLE);
            let r = live_sandboxes(c, args.n, host_ll, batch)?;
            println!(
                "\n{} live sandboxes (trait, SW{}): {:.2} fds and {:.1} KiB RSS per sandbox; \
                 set-up median of first 10%: {:.3} ms, of last 10%: {:.3} ms ({:+.0}%); \
                 teardown {:.3} ms per sandbox ({}); all reaped by the kernel {:.2} s after the teardown began",
                r.n,
                if host_ll { "" } else { ", host ends without IPv6 link-local" },
                r.fds_per,
                r.rss_kib_per,
                r.first_ms,
                r.last_ms,
                (r.last_ms / r.first_ms - 1.0) * 100.0,
                r.teardown_ms,
                if batch { "one destroy_many" } else { "destroy one by one" },
                r.reaped_s
            );
        }
    }
    // Pools let their namespaces (and a pre-wired pool its pairs) go; the kernel frees them.
    for c in &ctxs {
        if let Some(pool) = &c.pool {
            pool.shutdown();
        }
    }
    if !netsandbox::sandbox::NetnsSandbox::wait_all_reaped(Duration::from_secs(120)) {
        eprintln!("warning: not everything was reaped within 120 s");
    }
    verify(&ctxs, &base)?;
    for c in &ctxs {
        let _ = netns::release_base(&c.dir);
    }
    Ok(())
}
