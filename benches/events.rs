//! Event throughput and cost: one watcher (`NETLINK_LISTEN_ALL_NSID`) for N sandboxes, against a
//! monitor socket per sandbox, side by side in one run (see BENCHMARKS.md).
//!
//! `cargo bench --bench events` (N = 1000); `cargo bench --bench events -- 200` for another N.
//!
//! Safety: everything runs on a thread that first unshares into a brand-new network namespace;
//! pins go under `$TMPDIR/netsandbox-bench-events-<pid>/` and are destroyed at the end.
//!
//! Workload per pass: in every sandbox, `ADDRS` /32 addresses added to lo then deleted, in one
//! kernel batch per sandbox, by a producer thread; each address change makes two notifications
//! (the address and its local-table route). The consumer reads until it has seen them all.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netsandbox::netlink::addr::{self, AddrOptions};
use netsandbox::netlink::monitor::{Group, Monitor, Received};
use netsandbox::netlink::{BatchMode, Request, Socket};
use netsandbox::netns;
use netsandbox::sandbox::{CreateOptions, Event, NetnsSandbox, WatchOptions, Watcher};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Addresses added then deleted per sandbox per pass.
const ADDRS: u32 = 10;
/// Notifications one address change makes (RTM_NEWADDR/DELADDR + the local route).
const PER_CHANGE: u64 = 2;
/// Queue of the single watcher: holds a whole pass (40 000 notifications) unread.
const RCVBUF: usize = 128 << 20;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

/// CPU time (user + system) of the calling thread.
fn thread_cpu() -> Duration {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one `struct rusage` into the zeroed buffer it is given.
    let r = unsafe { libc::getrusage(libc::RUSAGE_THREAD, u.as_mut_ptr()) };
    assert_eq!(r, 0, "getrusage");
    // SAFETY: initialised by the successful call above (and zeroed before).
    let u = unsafe { u.assume_init() };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// The address batch for sandbox `i`: add ADDRS addresses, then delete them.
fn batch(i: usize) -> Vec<Request> {
    let ip = |j: u32| IpNet::new(IpAddr::V4(Ipv4Addr::from(0xc612_0000 + ((i as u32) << 5) + j)), 32).unwrap();
    let mut v: Vec<Request> = (0..ADDRS)
        .map(|j| addr::add(1, &ip(j), AddrOptions { scope: Some(254), ..Default::default() }).unwrap())
        .collect();
    v.extend((0..ADDRS).map(|j| addr::delete(1, &ip(j))));
    v
}

/// Runs the workload on `socks` from another thread while `consume` reads; returns the
/// consumer's (wall time until the last notification, its CPU time).
fn run_pass(socks: &[Socket], consume: impl FnOnce(u64) -> u64) -> (Duration, Duration, u64) {
    let expected = socks.len() as u64 * u64::from(ADDRS) * 2 * PER_CHANGE;
    std::thread::scope(|s| {
        let start = Instant::now();
        let producer = s.spawn(|| {
            for (i, sock) in socks.iter().enumerate() {
                sock.batch(&batch(i), BatchMode::Continue).unwrap().into_result().unwrap();
            }
        });
        let cpu0 = thread_cpu();
        let got = consume(expected);
        let wall = start.elapsed();
        let cpu = thread_cpu() - cpu0;
        producer.join().unwrap();
        (wall, cpu, got)
    })
}

/// Runs the whole workload first with nobody reading (the queue holds it all), then times
/// `consume` draining it: the consumer's own rate, free of the producer's.
fn drain_pass(socks: &[Socket], consume: impl FnOnce(u64) -> u64) -> (Duration, Duration, u64) {
    let expected = socks.len() as u64 * u64::from(ADDRS) * 2 * PER_CHANGE;
    for (i, sock) in socks.iter().enumerate() {
        sock.batch(&batch(i), BatchMode::Continue).unwrap().into_result().unwrap();
    }
    let start = Instant::now();
    let cpu0 = thread_cpu();
    let got = consume(expected);
    (start.elapsed(), thread_cpu() - cpu0, got)
}

fn report(name: &str, n: usize, wall: Duration, cpu: Duration, got: u64, extra: &str) {
    println!(
        "{name:<34} N={n:<5} events={got:<7} wall={:>8.1} ms  {:>9.0} events/s  consumer CPU {:>7.1} ms = {:>6.2} µs/event  {extra}",
        wall.as_secs_f64() * 1e3,
        got as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e3,
        cpu.as_secs_f64() * 1e6 / got.max(1) as f64,
    );
}

fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1000);
    let h = std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        bench(n);
    });
    h.join().expect("bench thread");
}

fn bench(n: usize) {
    let base = std::env::temp_dir().join(format!("netsandbox-bench-events-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    let keys: Vec<String> = (0..n).map(|i| base.join(format!("sb{i}")).display().to_string()).collect();
    let sbs: Vec<NetnsSandbox> =
        keys.iter().map(|k| NetnsSandbox::create(k, &CreateOptions::default()).unwrap()).collect();
    let socks: Vec<Socket> = sbs.iter().map(|sb| sb.with_netns(netns::socket_in).unwrap().unwrap()).collect();
    println!("{n} sandboxes, {ADDRS} addresses added and deleted in each per pass\n");

    // 1. One Watcher (mirror per sandbox, nsid -> key).
    let (rss0, fds0) = (rss_kib(), fds());
    let t = Instant::now();
    let mut w = Watcher::with_options(&WatchOptions { rcvbuf: Some(RCVBUF) }).unwrap();
    for k in &keys {
        w.watch(k).unwrap();
    }
    let watch_time = t.elapsed();
    let (rss1, fds1) = (rss_kib(), fds());
    println!(
        "Watcher: watch() of {n} sandboxes {:.1} ms ({:.0} µs each); +{} fd; RSS +{} KiB = {:.2} KiB per sandbox ({} objects mirrored)",
        watch_time.as_secs_f64() * 1e3,
        watch_time.as_secs_f64() * 1e6 / n as f64,
        fds1 - fds0,
        rss1.saturating_sub(rss0),
        rss1.saturating_sub(rss0) as f64 / n as f64,
        w.mirrored_objects()
    );
    for pass in 0..4 {
        let run = if pass == 3 { drain_pass } else { run_pass };
        let (wall, cpu, got) = run(&socks, |expected| {
            let mut got = 0;
            while got < expected {
                match w.next(Some(Duration::from_secs(10))).unwrap() {
                    Some(Event::Changed { .. }) => got += 1,
                    Some(_) => {}
                    None => break,
                }
            }
            got
        });
        let st = w.stats();
        let name = if pass == 3 { "one Watcher, drain".to_owned() } else { format!("one Watcher, pass {pass}") };
        report(&name, n, wall, cpu, got, &format!("overflows {}", st.overflows));
    }
    drop(w);

    // 2. One raw Monitor with LISTEN_ALL_NSID (decode only: what the watcher costs on top).
    let mut m = Monitor::open(&Group::ALL, Some(RCVBUF)).unwrap();
    for pass in 0..4 {
        let run = if pass == 3 { drain_pass } else { run_pass };
        let (wall, cpu, got) = run(&socks, |expected| {
            let mut got = 0;
            while got < expected {
                match m.recv(Some(Duration::from_secs(10))).unwrap() {
                    Some(Received::Notifications(v)) => {
                        got += v.iter().filter(|x| x.nsid.is_some()).count() as u64;
                    }
                    Some(Received::Overflow) => {}
                    None => break,
                }
            }
            got
        });
        let name =
            if pass == 3 { "one Monitor (raw), drain".to_owned() } else { format!("one Monitor (raw), pass {pass}") };
        report(&name, n, wall, cpu, got, "");
    }
    drop(m);

    // 3. A monitor socket per sandbox (no LISTEN_ALL_NSID needed), polled together.
    let (rss0, fds0) = (rss_kib(), fds());
    let t = Instant::now();
    let mut ms: Vec<Monitor> = sbs
        .iter()
        .map(|sb| {
            sb.with_netns(|ns| netns::run_in_result(ns, || Monitor::open(&Group::ALL, Some(256 << 10))))
                .unwrap()
                .unwrap()
        })
        .collect();
    let open_time = t.elapsed();
    let (rss1, fds1) = (rss_kib(), fds());
    println!(
        "per-sandbox monitors: opened {n} in {:.1} ms; +{} fds; RSS +{} KiB",
        open_time.as_secs_f64() * 1e3,
        fds1 - fds0,
        rss1.saturating_sub(rss0)
    );
    for pass in 0..4 {
        let run = if pass == 3 { drain_pass } else { run_pass };
        let (wall, cpu, got) = run(&socks, |expected| {
            let mut got = 0;
            while got < expected {
                let ready: Vec<usize> = {
                    let mut pfds: Vec<PollFd> = ms.iter().map(|m| PollFd::new(m.as_fd(), PollFlags::POLLIN)).collect();
                    match poll(&mut pfds, PollTimeout::from(10_000u16)) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) => panic!("poll: {e}"),
                    }
                    pfds.iter()
                        .enumerate()
                        .filter(|(_, p)| p.revents().is_some_and(|r| !r.is_empty()))
                        .map(|(i, _)| i)
                        .collect()
                };
                for i in ready {
                    while let Some(r) = ms[i].try_recv().unwrap() {
                        if let Received::Notifications(v) = r {
                            got += v.iter().filter(|x| x.nsid.is_none()).count() as u64;
                        }
                    }
                }
            }
            got
        });
        let name =
            if pass == 3 { format!("{n} monitors + poll, drain") } else { format!("{n} monitors + poll, pass {pass}") };
        report(&name, n, wall, cpu, got, "");
    }
    drop(ms);
    drop(socks);
    NetnsSandbox::destroy_many(&sbs.iter().collect::<Vec<_>>()).unwrap();
    let _ = netns::release_base(&base);
    let _ = std::fs::remove_dir_all(&base);
}
