//! Load balancer programming and data-path benchmarks, side by side with `nft -f` (a process
//! per change, as tools that spawn nft do) and an iptables-style rule list (kube-proxy's
//! iptables mode, through `iptables-legacy-restore`, when installed). See BENCHMARKS.md.
//!
//! `cargo bench --bench lb` (root; needs `nft`). Everything runs inside a private network
//! namespace made by this process; pins go under `$TMPDIR/netsandbox-bench-lb-<pid>/`.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use netsandbox::sandbox::lb::{Backend, LbChange, LoadBalancer, ServiceKey};
use netsandbox::sandbox::{CreateOptions, IfaceOptions, NetnsSandbox, Sandbox, SandboxExt, StaticRoute};

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn base() -> PathBuf {
    std::env::temp_dir().join(format!("netsandbox-bench-lb-{}", std::process::id()))
}

fn sandbox() -> NetnsSandbox {
    let k = base().join(format!("sb{}", SEQ.fetch_add(1, Ordering::Relaxed)));
    NetnsSandbox::create(&k.display().to_string(), &CreateOptions::default()).expect("create sandbox")
}

fn vip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1))
}

/// Service `s` of the benchmark: one VIP, port 1 + s.
fn svc(s: usize) -> ServiceKey {
    ServiceKey::tcp(vip(), 1 + s as u16)
}

/// The `k`-th backend address in 198.18.0.0/15.
fn backend(k: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + k as u32))
}

fn changes(services: usize, per: usize) -> Vec<LbChange> {
    let mut v = Vec::new();
    for s in 0..services {
        v.push(LbChange::AddService(svc(s)));
        for b in 0..per {
            v.push(LbChange::AddBackend(svc(s), Backend { ip: backend(s * per + b), port: 8080, weight: 1 }));
        }
    }
    v
}

/// CPU time (user + system) of the calling thread: the kernel handles an nf_tables batch inside
/// our `sendmsg`, so this is our whole cost without the time spent waiting for a CPU on a
/// loaded machine.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Runs `nft -f -` inside `sb` with `script` on stdin; returns the wall time of the process.
fn nft_f(sb: &NetnsSandbox, script: String) -> Duration {
    sb.invoke(move || {
        let t = Instant::now();
        let mut c =
            Command::new("nft").args(["-f", "-"]).stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("nft");
        c.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write script");
        let out = c.wait_with_output().expect("nft");
        assert!(out.status.success(), "nft -f: {}", String::from_utf8_lossy(&out.stderr));
        t.elapsed()
    })
    .expect("invoke")
}

/// `iptables-legacy-restore` inside `sb` (`--noflush` for a change).
fn ipt(sb: &NetnsSandbox, script: String, noflush: bool) -> Duration {
    sb.invoke(move || {
        let t = Instant::now();
        let mut cmd = Command::new("iptables-legacy-restore");
        if noflush {
            cmd.arg("--noflush");
        }
        let mut c = cmd.stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("iptables-restore");
        c.stdin.take().expect("stdin").write_all(script.as_bytes()).expect("write script");
        let out = c.wait_with_output().expect("iptables-restore");
        assert!(out.status.success(), "iptables-restore: {}", String::from_utf8_lossy(&out.stderr));
        t.elapsed()
    })
    .expect("invoke")
}

fn have(cmd: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {cmd}")]).output().is_ok_and(|o| o.status.success())
}

/// The nft script for our table's skeleton: per family the services verdict map, the
/// selection and backends maps; the chain of slot count `size` (IPv4) with its `dnat` rule; the
/// services, NAT base chains and masquerade rules.
fn nft_skeleton(size: usize) -> String {
    let mut s = String::from("add table inet netsandbox\n");
    for (f, ip) in [("4", "ip"), ("6", "ip6")] {
        let a = if f == "4" { "ipv4_addr" } else { "ipv6_addr" };
        s += &format!(
            "add map inet netsandbox services{f} {{ type {a} . inet_proto . inet_service : verdict; }}\n\
             add map inet netsandbox sel{f} {{ typeof {ip} daddr . meta l4proto . th dport . numgen random mod 16 : {ip} daddr . th dport; }}\n\
             add map inet netsandbox backends{f} {{ type {a} . inet_proto . inet_service . {a} . inet_service : mark; }}\n"
        );
        if f == "4" {
            s += &format!(
                "add chain inet netsandbox slots{f}-{size}\n\
                 add rule inet netsandbox slots{f}-{size} dnat {ip} to {ip} daddr . meta l4proto . th dport . numgen random mod {size} map @sel{f}\n"
            );
        }
    }
    s += "add map inet netsandbox published { type ifname . inet_proto . inet_service : verdict; }\n\
          add chain inet netsandbox services\n\
          add rule inet netsandbox services meta nfproto ipv4 ip daddr . meta l4proto . th dport vmap @services4\n\
          add rule inet netsandbox services meta nfproto ipv6 ip6 daddr . meta l4proto . th dport vmap @services6\n\
          add chain inet netsandbox prerouting { type nat hook prerouting priority dstnat; }\n\
          add rule inet netsandbox prerouting iifname . meta l4proto . th dport vmap @published\n\
          add rule inet netsandbox prerouting jump services\n\
          add chain inet netsandbox output { type nat hook output priority -100; }\n\
          add rule inet netsandbox output jump services\n\
          add chain inet netsandbox postrouting { type nat hook postrouting priority srcnat; }\n\
          add rule inet netsandbox postrouting ct status dnat masquerade\n";
    s
}

/// The nft script for the same services as [`changes`] (our table layout, names and rules).
fn nft_bulk_script(services: usize, per: usize) -> String {
    let size = slots_for(per);
    let mut s = nft_skeleton(size);
    let (mut svcs, mut bes, mut sel) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..services {
        let port = 1 + i;
        svcs.push(format!("198.51.100.1 . tcp . {port} : goto slots4-{size}"));
        for b in 0..per {
            bes.push(format!("198.51.100.1 . tcp . {port} . {} . 8080 : 1", backend(i * per + b)));
        }
        for slot in 0..size {
            sel.push(format!("198.51.100.1 . tcp . {port} . {slot} : {} . 8080", backend(i * per + slot % per)));
        }
    }
    s += &format!("add element inet netsandbox services4 {{ {} }}\n", svcs.join(", "));
    s += &format!("add element inet netsandbox backends4 {{ {} }}\n", bes.join(", "));
    s += &format!("add element inet netsandbox sel4 {{ {} }}\n", sel.join(", "));
    s
}

/// Our slot count for `w` weight units of weight-1 backends (the next power of two ≥ 2·w, at
/// least 16), so `nft -f` gets the same maps.
fn slots_for(w: usize) -> usize {
    (2 * w).next_power_of_two().max(16)
}

/// One backend change of service port 1 as our layout makes it: the backends-map element,
/// and the moved slots' elements replaced (deleted, then added with their new owner). Our
/// selection maps type the slot as `mark` (host order, as numgen writes it), so nft writes
/// the slot number as we do.
fn nft_change(ip: IpAddr, add: bool, slots: &[(usize, IpAddr)]) -> String {
    let svc = "198.51.100.1 . tcp . 1";
    let keys: Vec<String> = slots.iter().map(|(s, _)| format!("{svc} . {s}")).collect();
    let elems: Vec<String> = slots.iter().map(|(s, o)| format!("{svc} . {s} : {o} . 8080")).collect();
    let mut s = format!("delete element inet netsandbox sel4 {{ {} }}\n", keys.join(", "));
    s += &format!("add element inet netsandbox sel4 {{ {} }}\n", elems.join(", "));
    s += &if add {
        format!("add element inet netsandbox backends4 {{ {svc} . {ip} . 8080 : 1 }}\n")
    } else {
        format!("delete element inet netsandbox backends4 {{ {svc} . {ip} . 8080 }}\n")
    };
    s
}

fn ipt_bulk_script(services: usize, per: usize) -> String {
    let mut s = String::from("*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n");
    let mut rules = String::new();
    for i in 0..services {
        s += &format!(":SVC-{i} - [0:0]\n");
        rules += &format!("-A PREROUTING -d 198.51.100.1/32 -p tcp --dport {} -j SVC-{i}\n", 1 + i);
        rules += &ipt_service(i, per, per);
    }
    s += &rules;
    s += "COMMIT\n";
    s
}

/// The chains of service `i` with `n` endpoints, as kube-proxy writes them (probabilities
/// 1/n, 1/(n-1), …).
fn ipt_service(i: usize, per: usize, n: usize) -> String {
    let mut decl = String::new();
    let mut rules = String::new();
    for b in 0..n {
        decl += &format!(":SEP-{i}-{b} - [0:0]\n");
        let left = n - b;
        if left > 1 {
            rules += &format!(
                "-A SVC-{i} -m statistic --mode random --probability {:.5} -j SEP-{i}-{b}\n",
                1.0 / left as f64
            );
        } else {
            rules += &format!("-A SVC-{i} -j SEP-{i}-{b}\n");
        }
        rules += &format!("-A SEP-{i}-{b} -p tcp -j DNAT --to-destination {}:8080\n", backend(i * per + b));
    }
    decl + &rules
}

fn programming() {
    let ipt_ok = have("iptables-legacy-restore");
    println!("## Programming (one transaction / one process)");
    // 100 services x 10 backends in one transaction.
    let (mut ours, mut nft, mut legacy) = (Vec::new(), Vec::new(), Vec::new());
    let mut cpu = Vec::new();
    for _ in 0..9 {
        let sb = sandbox();
        let all = changes(100, 10);
        let t = Instant::now();
        let c = thread_cpu();
        sb.lb_apply(&all).expect("bulk");
        cpu.push(thread_cpu() - c);
        ours.push(t.elapsed());
        sb.destroy().expect("destroy");
        let sb = sandbox();
        nft.push(nft_f(&sb, nft_bulk_script(100, 10)));
        if ipt_ok {
            legacy.push(ipt(&sb, ipt_bulk_script(100, 10), false));
        }
        sb.destroy().expect("destroy");
    }
    let (o, n) = (median(ours), median(nft));
    println!(
        "100 services x 10 backends: netsandbox {}, nft -f {} (x{:.1})",
        ms(o),
        ms(n),
        n.as_secs_f64() / o.as_secs_f64()
    );
    println!("  netsandbox CPU time of the calling thread (user + kernel): {}", ms(median(cpu)));
    if ipt_ok {
        let l = median(legacy);
        println!("  iptables-legacy-restore {} (x{:.1})", ms(l), l.as_secs_f64() / o.as_secs_f64());
    }

    println!("\n## One backend change with N backends present (services of 10 backends)");
    println!(
        "| N | netsandbox add | netsandbox remove | netsandbox CPU (add+remove) | nft -f add | nft -f remove | ratio (nft/ours, add+remove) | iptables-restore change |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in [10usize, 1000, 10000] {
        let services = n / 10;
        let sb = sandbox();
        sb.lb_apply(&changes(services, 10)).expect("setup");
        let s0 = svc(0);
        let extra = Backend { ip: IpAddr::V4(Ipv4Addr::new(198, 19, 255, 1)), port: 8080, weight: 1 };
        let (mut add, mut del, mut cpu) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..300 {
            let c = thread_cpu();
            let t = Instant::now();
            sb.add_backend(&s0, &extra).expect("add");
            add.push(t.elapsed());
            let t = Instant::now();
            sb.remove_backend(&s0, extra.ip, extra.port).expect("remove");
            del.push(t.elapsed());
            cpu.push(thread_cpu() - c);
        }
        let (a, d) = (median(add), median(del));
        let cpu = median(cpu);
        // The same change through nft -f, on the same ruleset (our table, our names): the
        // extra backend takes 3 of the 32 slots (ours takes them from the backends most over
        // their share) and gives them back.
        let (mut nadd, mut ndel) = (Vec::new(), Vec::new());
        let size = slots_for(10);
        let moved: Vec<usize> = (0..3).map(|k| size - 1 - k).collect();
        let to_extra: Vec<(usize, IpAddr)> = moved.iter().map(|&s| (s, extra.ip)).collect();
        let back: Vec<(usize, IpAddr)> = moved.iter().map(|&s| (s, backend(9))).collect();
        for _ in 0..15 {
            nadd.push(nft_f(&sb, nft_change(extra.ip, true, &to_extra)));
            ndel.push(nft_f(&sb, nft_change(extra.ip, false, &back)));
        }
        let (na, nd) = (median(nadd), median(ndel));
        let ratio = (na + nd).as_secs_f64() / (a + d).as_secs_f64();
        let legacy = if ipt_ok {
            let ib = sandbox();
            ipt(&ib, ipt_bulk_script(services, 10), false);
            let mut v = Vec::new();
            for k in 0..15 {
                let n = if k % 2 == 0 { 11 } else { 10 };
                let mut script = String::from("*nat\n:SVC-0 - [0:0]\n");
                script +=
                    &ipt_service(0, 10, n).replace(&format!("{}:8080", backend(10)), &format!("{}:8080", extra.ip));
                script += "COMMIT\n";
                v.push(ipt(&ib, script, true));
            }
            ib.destroy().expect("destroy");
            ms(median(v))
        } else {
            "not installed".into()
        };
        println!("| {n} | {} | {} | {} | {} | {} | x{ratio:.0} | {legacy} |", ms(a), ms(d), ms(cpu), ms(na), ms(nd));
        sb.destroy().expect("destroy");
    }
    interleaved();
}

/// Flatness side by side: the three rulesets live at once and one change (add + remove) goes to
/// each in turn, round after round, so a drift of the machine's speed during the run lands on
/// all three alike.
fn interleaved() {
    let sizes = [10usize, 1000, 10000];
    let sbs: Vec<NetnsSandbox> = sizes
        .iter()
        .map(|&n| {
            let sb = sandbox();
            sb.lb_apply(&changes(n / 10, 10)).expect("setup");
            sb
        })
        .collect();
    let extra = Backend { ip: IpAddr::V4(Ipv4Addr::new(198, 19, 255, 1)), port: 8080, weight: 1 };
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); sizes.len()];
    for _ in 0..1000 {
        for (sb, t) in sbs.iter().zip(times.iter_mut()) {
            let start = Instant::now();
            sb.add_backend(&svc(0), &extra).expect("add");
            sb.remove_backend(&svc(0), extra.ip, extra.port).expect("remove");
            t.push(start.elapsed());
        }
    }
    let med: Vec<Duration> = times.into_iter().map(median).collect();
    println!(
        "\ninterleaved, one add + remove, median of 1000 each: N = 10 {}, N = 1000 {}, N = 10000 {} \
         (10000 / 10 = {:.2})",
        ms(med[0]),
        ms(med[1]),
        ms(med[2]),
        med[2].as_secs_f64() / med[0].as_secs_f64()
    );
    for sb in sbs {
        sb.destroy().expect("destroy");
    }
}

fn data_path() {
    println!("\n## Data path: TCP connections per second (connect, read 1 byte, close), sequential");
    let run = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().expect("ip");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(&["link", "add", "brb", "type", "bridge"]);
    run(&["link", "set", "brb", "up"]);
    let mk = |host: &str, cidr: &str| {
        let sb = sandbox();
        sb.add_veth(host, "eth", &IfaceOptions::new().address(cidr.parse().expect("cidr"))).expect("veth");
        run(&["link", "set", host, "master", "brb", "up"]);
        sb
    };
    let lb = mk("vblb", "198.18.0.1/24");
    let client = mk("vbcl", "198.18.0.2/24");
    let be = mk("vbbe", "198.18.0.11/24");
    client
        .add_static_route(&StaticRoute::via("198.51.100.1/32".parse().expect("net"), "198.18.0.1".parse().expect("ip")))
        .expect("route");
    let s = ServiceKey::tcp(vip(), 80);
    lb.add_service(&s).expect("service");
    lb.add_backend(&s, &Backend { ip: "198.18.0.11".parse().expect("ip"), port: 8080, weight: 1 }).expect("backend");
    let listener = be.invoke(|| TcpListener::bind("0.0.0.0:8080")).expect("invoke").expect("bind");
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    listener.set_nonblocking(true).expect("nonblocking");
    let server = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut c, _)) => {
                    let _ = c.write_all(b"x");
                }
                Err(_) => std::thread::sleep(Duration::from_micros(50)),
            }
        }
    });
    let rate = |to: SocketAddr| {
        client
            .invoke(move || {
                let n = 3000;
                let t = Instant::now();
                for _ in 0..n {
                    let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2)).expect("connect");
                    let mut b = [0u8; 1];
                    c.read_exact(&mut b).expect("read");
                }
                n as f64 / t.elapsed().as_secs_f64()
            })
            .expect("invoke")
    };
    let direct = rate("198.18.0.11:8080".parse().expect("addr"));
    let via = rate("198.51.100.1:80".parse().expect("addr"));
    println!("direct to the backend: {direct:.0}/s; through the VIP: {via:.0}/s (ratio {:.2})", via / direct);
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    for sb in [lb, client, be] {
        sb.destroy().expect("destroy");
    }
    run(&["link", "del", "brb"]);
}

fn main() {
    if !have("nft") {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        std::fs::create_dir_all(base()).expect("bench dir");
        programming();
        data_path();
        // The library made the pin directory a (shared) mount point of its own: detach it
        // (as many times as it was stacked) before removing it.
        for _ in 0..8 {
            if nix::mount::umount2(&base(), nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
        let _ = std::fs::remove_dir_all(base());
    })
    .join()
    .expect("bench thread");
}
