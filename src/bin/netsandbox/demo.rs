//! `netsandbox demo`: two sandboxes on a bridge, TCP between them over IPv4 and IPv6, all inside
//! a private host namespace and a temporary base directory, torn down and checked at the end.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netsandbox::netlink::LinkKind;
use netsandbox::netlink::Socket;
use netsandbox::sandbox::{
    BridgeOptions, CreateOptions, HostBridge, IfaceOptions, NeighOptions, NetnsSandbox, Sandbox, SandboxExt,
};
use netsandbox::validate::{format_mac, parse_cidr, parse_ip};
use netsandbox::{Error, Result, netns};
use serde_json::json;

use crate::output::{self, Out};

const BRIDGE: &str = "nsbx-br0";
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The bridge's own addresses, the sandboxes' gateways: inside their subnets, so a route
/// reaches them.
const GW4: &str = "198.18.255.254";
const GW6: &str = "2001:db8::ffff";
const GW4_CIDR: &str = "198.18.255.254/16";
const GW6_CIDR: &str = "2001:db8::ffff/64";

/// The two sandboxes: name, host end, MAC, v4 and v6 addresses.
const SANDBOXES: [(&str, &str, [u8; 6], &str, &str); 2] = [
    ("a", "vh-a", [0x02, 0x42, 0xc6, 0x12, 0x00, 0x02], "198.18.0.2/16", "2001:db8::2/64"),
    ("b", "vh-b", [0x02, 0x42, 0xc6, 0x12, 0x00, 0x03], "198.18.0.3/16", "2001:db8::3/64"),
];

/// Timed steps, printed as they finish and summed up at the end.
struct Steps {
    out: Out,
    done: Vec<(String, f64)>,
}

impl Steps {
    fn step<T>(&mut self, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t = Instant::now();
        let v = f()?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if !self.out.json {
            println!("{ms:>9.3} ms  {what}");
        }
        self.done.push((what.to_owned(), ms));
        Ok(v)
    }
}

/// Removes the sandboxes, the base's self bind mount and the directory, also when a step failed.
struct Cleanup<'a> {
    base: &'a Path,
    sandboxes: Vec<NetnsSandbox>,
}

impl Cleanup<'_> {
    fn run(&mut self) -> Result<()> {
        let mut first = None;
        for sb in self.sandboxes.drain(..) {
            // The clean-up check that follows wants the host ends gone: wait for the kernel.
            match sb.destroy_detached() {
                Ok(r) => {
                    r.wait(netsandbox::sandbox::REAP_GRACE + std::time::Duration::from_secs(30));
                }
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        if let Err(e) = netns::release_base(self.base) {
            first.get_or_insert(e);
        }
        if let Err(e) = std::fs::remove_dir_all(self.base)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            first.get_or_insert(Error::Os { op: "remove", object: self.base.display().to_string(), source: e });
        }
        first.map_or(Ok(()), Err)
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.run() {
            log::warn!("demo cleanup: {e}");
        }
    }
}

/// Runs the demo. Its pins go under a fresh private directory (`mkdtemp`: unpredictable name,
/// mode 0700): below `base` when given (`--base`), else below the temporary directory; that
/// directory, and `base` if the demo made it, are gone afterwards.
pub fn run(out: Out, base: Option<&Path>) -> Result<i32> {
    let made_parent = base.filter(|b| !b.exists());
    let parent = base.map_or_else(std::env::temp_dir, Path::to_path_buf);
    if made_parent.is_some() {
        std::fs::create_dir_all(&parent).map_err(|e| Error::Os {
            op: "create directory",
            object: parent.display().to_string(),
            source: e,
        })?;
    }
    let result = run_in(out, &parent);
    if let Some(parent) = made_parent {
        // Only if empty: something else may have been put there meanwhile.
        let _ = std::fs::remove_dir(parent);
    }
    result
}

fn run_in(out: Out, parent: &Path) -> Result<i32> {
    let mut steps = Steps { out, done: Vec::new() };
    // A private host namespace: the bridge and host veth ends live there, and it vanishes with
    // its last handle, so the machine's own network is never touched.
    let host = steps.step("create private host namespace", netns::NetNs::new_unpinned)?;
    let base = private_dir(parent)?;
    let trips = netns::run_in_result(&host, || build_and_check(&mut steps, &base)).inspect_err(|_| {
        // Normally removed by the clean-up inside; this covers a failure before it existed.
        let _ = std::fs::remove_dir(&base);
    })?;
    let left = steps.step("verify nothing is left", || leftovers(&base))?;
    if !left.is_empty() {
        return Err(Error::Protocol { op: "demo clean-up check", detail: left.join("; ") });
    }
    let total: f64 = steps.done.iter().map(|(_, ms)| ms).sum();
    if out.json {
        let ms = |ms: f64| output::ms(ms / 1e3);
        let s: Vec<_> = steps.done.iter().map(|(w, t)| json!({ "step": w, "ms": ms(*t) })).collect();
        let t: Vec<_> =
            trips.iter().map(|r| json!({ "from": r.from, "to": r.to.to_string(), "ms": ms(r.ms) })).collect();
        let base = base.display().to_string();
        println!("{}", json!({ "base": base, "steps": s, "round_trips": t, "total_ms": ms(total), "ok": true }));
    } else {
        println!();
        println!("{:<58} {:>10}", "step", "ms");
        println!("{}", "-".repeat(69));
        for (what, ms) in &steps.done {
            println!("{what:<58} {ms:>10.3}");
        }
        println!("{}", "-".repeat(69));
        println!("{:<58} {total:>10.3}", "total");
        println!();
        for r in &trips {
            println!("TCP round trip {} -> {:<12} ok in {:.3} ms", r.from, r.to.to_string(), r.ms);
        }
        println!("demo base: {}", base.display());
        println!("demo ok: everything torn down, nothing left behind");
    }
    Ok(0)
}

/// A fresh directory for the demo's pins that nobody else can have prepared: an unpredictable
/// name, created by us with mode 0700 (`mkdtemp`), never an existing path reused.
fn private_dir(parent: &Path) -> Result<PathBuf> {
    let template = parent.join("netsandbox-demo-XXXXXX");
    nix::unistd::mkdtemp(&template).map_err(|e| Error::Os {
        op: "create private directory",
        object: template.display().to_string(),
        source: e.into(),
    })
}

struct Trip {
    from: &'static str,
    to: IpAddr,
    ms: f64,
}

/// Runs inside the private host namespace.
fn build_and_check(steps: &mut Steps, base: &Path) -> Result<Vec<Trip>> {
    let mut cleanup = Cleanup { base, sandboxes: Vec::new() };
    let bridge = BridgeOptions::new().address(parse_cidr(GW4_CIDR)?).address(parse_cidr(GW6_CIDR)?);
    let br = steps.step(&format!("create bridge {BRIDGE} with {GW4_CIDR}, {GW6_CIDR}, up"), || {
        HostBridge::create(BRIDGE, &bridge)
    })?;
    for (name, host_end, mac, v4, v6) in SANDBOXES {
        let key = base.join(name).display().to_string();
        let sb =
            steps.step(&format!("create sandbox {name}"), || NetnsSandbox::create(&key, &CreateOptions::default()))?;
        cleanup.sandboxes.push(sb);
        let sb = cleanup.sandboxes.last().ok_or_else(|| bug("sandbox just pushed"))?;
        let opts = IfaceOptions::new()
            .address(parse_cidr(v4)?)
            .address_ipv6(parse_cidr(v6)?)
            .mac(mac)
            .host_master(br.name())
            .host_link_local(false);
        steps.step(&format!("add veth {host_end} (port of {BRIDGE}) / {name}:eth0 with {v4}, {v6}"), || {
            sb.add_veth(host_end, "eth", &opts)
        })?;
        steps.step(&format!("set gateways {GW4} and {GW6} in {name}"), || {
            sb.set_gateway(parse_ip(GW4)?)?;
            sb.set_gateway(parse_ip(GW6)?)
        })?;
    }
    let [a, b] = cleanup.sandboxes.as_slice() else { return Err(bug("two sandboxes")) };
    let (b_ip, b_mac) = (parse_ip("198.18.0.3")?, SANDBOXES[1].2);
    steps.step(&format!("add neighbor {b_ip} lladdr {} in a", format_mac(&b_mac)), || {
        a.add_neighbor(b_ip, b_mac, false, &NeighOptions::new())
    })?;
    let info = steps.step("read sandbox a back from the kernel", || a.info())?;
    if info.interfaces.len() != 1 || info.gateway.is_none() || info.gateway6.is_none() || info.neighbors.is_empty() {
        return Err(Error::Protocol { op: "demo read-back", detail: format!("unexpected state: {info:?}") });
    }
    let mut trips = Vec::new();
    for (server, client, from, to) in [(b, a, "a", "198.18.0.3"), (a, b, "b", "2001:db8::2")] {
        let to = parse_ip(to)?;
        let t = Instant::now();
        steps.step(&format!("TCP round trip {from} -> {to}"), || tcp_round_trip(server, client, to))?;
        trips.push(Trip { from, to, ms: t.elapsed().as_secs_f64() * 1e3 });
    }
    steps.step("destroy both sandboxes and the base directory", || cleanup.run())?;
    steps.step(&format!("delete bridge {BRIDGE}"), || HostBridge::delete(br.name()))?;
    let links = Socket::open()?.links()?;
    let extra: Vec<&str> = links.iter().filter(|l| l.kind != LinkKind::Loopback).map(|l| l.name.as_str()).collect();
    if !extra.is_empty() {
        return Err(Error::Protocol { op: "demo clean-up check", detail: format!("host links left: {extra:?}") });
    }
    Ok(trips)
}

fn bug(what: &str) -> Error {
    Error::Protocol { op: "demo", detail: format!("internal error: {what}") }
}

fn io(op: &'static str, to: IpAddr) -> impl Fn(std::io::Error) -> Error {
    move |e| Error::Os { op, object: to.to_string(), source: e }
}

/// Sends "hello" from `client` to a listener in `server` at `to` and checks the echo.
fn tcp_round_trip(server: &NetnsSandbox, client: &NetnsSandbox, to: IpAddr) -> Result<()> {
    // Bound inside the server sandbox; the socket stays in that namespace wherever it is used.
    let listener = server.invoke(|| TcpListener::bind(SocketAddr::new(to, 0)))?.map_err(io("listen on", to))?;
    let addr = listener.local_addr().map_err(io("local address of", to))?;
    std::thread::scope(|s| {
        let echo = s.spawn(move || -> std::io::Result<()> {
            let (mut c, _) = listener.accept()?;
            c.set_read_timeout(Some(IO_TIMEOUT))?;
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf)?;
            c.write_all(&buf)
        });
        let sent = client.invoke(|| -> std::io::Result<[u8; 5]> {
            let mut c = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
            c.set_read_timeout(Some(IO_TIMEOUT))?;
            c.write_all(b"hello")?;
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf)?;
            Ok(buf)
        });
        if !matches!(sent, Ok(Ok(_))) {
            // The client never got through, so wake the acceptor from inside the server sandbox
            // (its own address is always local there) instead of leaving it blocked forever.
            let _ = server.invoke(|| TcpStream::connect_timeout(&addr, IO_TIMEOUT).map(drop));
        }
        let echoed = echo.join().map_err(|_| bug("echo thread panicked"))?;
        let got = sent?.map_err(io("TCP round trip to", to))?;
        echoed.map_err(io("echo for", to))?;
        if &got != b"hello" {
            return Err(Error::Protocol { op: "TCP round trip", detail: format!("echo was {got:?}") });
        }
        Ok(())
    })
}

/// What is still there after tear-down: pin files, nsfs mounts under the base, the base itself.
fn leftovers(base: &Path) -> Result<Vec<String>> {
    let mut left = Vec::new();
    for (name, ..) in SANDBOXES {
        let pin: PathBuf = base.join(name);
        if netns::is_pinned(&pin) || pin.exists() {
            left.push(format!("pin {}", pin.display()));
        }
    }
    for m in netns::mountinfo::mounts_under(base)? {
        left.push(format!("{} mount at {}", m.fstype, m.mount_point.display()));
    }
    if base.exists() {
        left.push(format!("directory {}", base.display()));
    }
    Ok(left)
}
