//! Load balancer on nf_tables with real traffic: private host namespace, a bridge, an LB
//! sandbox, a client sandbox and three backend sandboxes answering their own names.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{TempBase, addr, in_private_netns, ip, key, net};
use netsandbox::Error;
use netsandbox::sandbox::lb::{Backend, BackendState, LbChange, LoadBalancer, Protocol, PublishedPort, ServiceKey};
use netsandbox::sandbox::{CreateOptions, FakeSandbox, IfaceOptions, NetnsSandbox, Sandbox, SandboxExt, StaticRoute};

fn nft_available() -> bool {
    std::process::Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success())
}

/// `nft -j list ruleset` inside the sandbox.
fn ruleset(sb: &NetnsSandbox) -> serde_json::Value {
    let out =
        sb.invoke(|| std::process::Command::new("nft").args(["-j", "list", "ruleset"]).output()).unwrap().unwrap();
    assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn nft_in(sb: &NetnsSandbox, args: &[&str]) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = sb.invoke(move || std::process::Command::new("nft").args(&args).output()).unwrap().unwrap();
    assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
}

struct Lab {
    _base: TempBase,
    lb: NetnsSandbox,
    client: NetnsSandbox,
    backends: Vec<NetnsSandbox>,
    stop: Arc<AtomicBool>,
}

const LB4: &str = "198.18.0.1";
const LB6: &str = "2001:db8::1";
const VIP4: &str = "198.51.100.10";
const VIP6: &str = "2001:db8:100::10";

fn backend_ip(i: usize, v6: bool) -> IpAddr {
    if v6 { addr(&format!("2001:db8::{}", 11 + i)) } else { addr(&format!("198.18.0.{}", 11 + i)) }
}

fn sandbox(base: &TempBase, name: &str, host: &str, last: u8) -> NetnsSandbox {
    let sb = NetnsSandbox::create(&key(base, name), &CreateOptions { ipv6: Some(true) }).unwrap();
    let opts = IfaceOptions::new()
        .address(net(&format!("198.18.0.{last}/24")))
        .address_ipv6(net(&format!("2001:db8::{last:x}/64")));
    sb.add_veth(host, "eth", &opts).unwrap();
    ip(&["link", "set", host, "master", "br0", "up"]);
    sb
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let base = TempBase::new(tag);
        ip(&["link", "add", "br0", "type", "bridge"]);
        ip(&["link", "set", "br0", "up"]);
        let lb = sandbox(&base, "lb", "vlb", 1);
        let client = sandbox(&base, "client", "vcl", 2);
        client.add_static_route(&StaticRoute::via(net(&format!("{VIP4}/32")), addr(LB4))).unwrap();
        client.add_static_route(&StaticRoute::via(net(&format!("{VIP6}/128")), addr(LB6))).unwrap();
        let backends: Vec<_> = (0..3)
            .map(|i| {
                // Backends 0x11.. in hex for v6 would differ from v4; use decimal digits in both.
                let sb =
                    NetnsSandbox::create(&key(&base, &format!("b{i}")), &CreateOptions { ipv6: Some(true) }).unwrap();
                let opts = IfaceOptions::new()
                    .address(net(&format!("{}/24", backend_ip(i, false))))
                    .address_ipv6(net(&format!("{}/64", backend_ip(i, true))));
                let host = format!("vb{i}");
                sb.add_veth(&host, "eth", &opts).unwrap();
                ip(&["link", "set", &host, "master", "br0", "up"]);
                sb
            })
            .collect();
        Lab { _base: base, lb, client, backends, stop: Arc::new(AtomicBool::new(false)) }
    }

    /// Starts a TCP server on [::]:8080 (v4 and v6) and a UDP one on [::]:5353 in each backend:
    /// TCP answers `b<i>\n` then echoes; UDP answers `b<i>`.
    ///
    /// The servers run until the returned guard drops (inside the scope, so a failing
    /// assertion cannot leave the scope waiting for them).
    #[must_use]
    fn serve<'s>(&'s self, scope: &'s std::thread::Scope<'s, '_>) -> StopGuard {
        for (i, b) in self.backends.iter().enumerate() {
            let (tcp, udp) =
                b.invoke(|| (TcpListener::bind("[::]:8080").unwrap(), UdpSocket::bind("[::]:5353").unwrap())).unwrap();
            tcp.set_nonblocking(true).unwrap();
            udp.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let stop = self.stop.clone();
            scope.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        Ok((mut s, _)) => {
                            s.set_nonblocking(false).unwrap();
                            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                            let _ = s.write_all(format!("b{i}\n").as_bytes());
                            std::thread::spawn(move || {
                                let mut buf = [0u8; 64];
                                while let Ok(n) = s.read(&mut buf) {
                                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
            });
            let stop = self.stop.clone();
            scope.spawn(move || {
                let mut buf = [0u8; 64];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((_, from)) = udp.recv_from(&mut buf) {
                        let _ = udp.send_to(format!("b{i}").as_bytes(), from);
                    }
                }
            });
        }
        StopGuard(self.stop.clone())
    }

    fn add_backends(&self, svc: &ServiceKey, v6: bool, port: u16, weights: &[u32]) {
        for (i, w) in weights.iter().enumerate() {
            self.lb.add_backend(svc, &Backend { ip: backend_ip(i, v6), port, weight: *w }).unwrap();
        }
    }
}

struct StopGuard(Arc<AtomicBool>);

impl Drop for StopGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for sb in [&self.lb, &self.client].into_iter().chain(&self.backends) {
            let _ = sb.destroy();
        }
        let _ = std::process::Command::new("ip").args(["link", "del", "br0"]).output();
    }
}

/// One connection from the client: the backend name that answered, or None when it failed.
fn connect(client: &NetnsSandbox, to: SocketAddr) -> Option<(String, TcpStream)> {
    client
        .invoke(move || {
            let s = TcpStream::connect_timeout(&to, Duration::from_millis(700)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
            let mut line = String::new();
            BufReader::new(s.try_clone().ok()?).read_line(&mut line).ok()?;
            Some((line.trim().to_owned(), s))
        })
        .unwrap()
}

/// `n` connections; counts per backend name (failed ones under "").
fn spread(client: &NetnsSandbox, to: SocketAddr, n: usize) -> BTreeMap<String, usize> {
    client
        .invoke(move || {
            let mut counts = BTreeMap::new();
            for _ in 0..n {
                let name = TcpStream::connect_timeout(&to, Duration::from_millis(700))
                    .ok()
                    .and_then(|s| {
                        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
                        let mut line = String::new();
                        BufReader::new(s).read_line(&mut line).ok()?;
                        Some(line.trim().to_owned())
                    })
                    .unwrap_or_default();
                *counts.entry(name).or_insert(0) += 1;
            }
            counts
        })
        .unwrap()
}

fn check_spread(counts: &BTreeMap<String, usize>, weights: &[u32], n: usize) {
    let total: u32 = weights.iter().sum();
    assert_eq!(counts.get(""), None, "every connection is answered: {counts:?}");
    for (i, w) in weights.iter().enumerate() {
        let got = counts.get(&format!("b{i}")).copied().unwrap_or(0);
        let share = n as f64 * f64::from(*w) / f64::from(total);
        assert!(got > 0, "backend b{i} served nothing: {counts:?}");
        assert!((got as f64) <= 2.0 * share, "backend b{i} got {got}, over twice its share {share}: {counts:?}");
    }
}

fn tcp_scenario(v6: bool) {
    if !nft_available() {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    in_private_netns(|| {
        let lab = Lab::new(if v6 { "lb6" } else { "lb4" });
        std::thread::scope(|scope| {
            let _servers = lab.serve(scope);
            let vip = addr(if v6 { VIP6 } else { VIP4 });
            let svc = ServiceKey::tcp(vip, 80);
            lab.lb.add_service(&svc).unwrap();
            let weights = [1, 2, 1];
            lab.add_backends(&svc, v6, 8080, &weights);
            let to = SocketAddr::new(vip, 80);

            // Kernel truth: the VIP is on lo, the map holds the service.
            let lo = ip_in(&lab.lb, &["-j", "addr", "show", "dev", "lo"]);
            assert!(lo.contains(&vip.to_string()), "{lo}");
            let rs = ruleset(&lab.lb);
            let fam = if v6 { 6 } else { 4 };
            assert_eq!(
                service_target(&rs, &format!("services{fam}"), &vip.to_string(), 80).as_deref(),
                Some(format!("slots{fam}-16").as_str()),
                "{rs}"
            );

            let counts = spread(&lab.client, to, 300);
            check_spread(&counts, &weights, 300);

            // Keep a connection to b0 open, then drain b0.
            let mut kept = None;
            for _ in 0..200 {
                if let Some((name, s)) = connect(&lab.client, to)
                    && name == "b0"
                {
                    kept = Some(s);
                    break;
                }
            }
            let mut kept = kept.expect("a connection reaches b0");
            lab.lb.drain_backend(&svc, backend_ip(0, v6), 8080).unwrap();
            let states: Vec<_> = lab.lb.lb_services().unwrap()[0].backends.iter().map(|b| b.state).collect();
            assert_eq!(states, [BackendState::Draining, BackendState::Active, BackendState::Active]);
            kept.write_all(b"still there\n").unwrap();
            let mut echo = String::new();
            BufReader::new(&kept).read_line(&mut echo).unwrap();
            assert_eq!(echo, "still there\n", "the established connection to the drained backend works");
            let after = spread(&lab.client, to, 100);
            assert_eq!(after.get("b0"), None, "no new connection reaches the drained backend: {after:?}");
            assert_eq!(after.get(""), None, "{after:?}");
            drop(kept);

            lab.lb.remove_backend(&svc, backend_ip(0, v6), 8080).unwrap();
            assert_eq!(lab.lb.lb_services().unwrap()[0].backends.len(), 2);
            lab.lb.remove_service(&svc).unwrap();
            let gone = spread(&lab.client, to, 5);
            assert_eq!(gone.get(""), Some(&5), "connections to a removed service fail: {gone:?}");
            let lo = ip_in(&lab.lb, &["-j", "addr", "show", "dev", "lo"]);
            assert!(!lo.contains(&vip.to_string()), "{lo}");
            let rs = ruleset(&lab.lb).to_string();
            assert!(!rs.contains(&format!("\"{vip}\"")), "nothing of the service is left: {rs}");
        });
    });
}

fn ip_in(sb: &NetnsSandbox, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = sb.invoke(move || std::process::Command::new("ip").args(&args).output()).unwrap().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tcp_v4_spread_drain_remove() {
    tcp_scenario(false);
}

#[test]
fn tcp_v6_spread_drain_remove() {
    tcp_scenario(true);
}

#[test]
fn udp_service_and_ingress_published_port() {
    if !nft_available() {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    in_private_netns(|| {
        let lab = Lab::new("lbudp");
        std::thread::scope(|scope| {
            let _servers = lab.serve(scope);
            let vip = addr(VIP4);
            let svc = ServiceKey::udp(vip, 53);
            lab.lb.add_service(&svc).unwrap();
            lab.add_backends(&svc, false, 5353, &[1, 1, 1]);
            let answers = lab
                .client
                .invoke(move || {
                    let mut names = BTreeMap::new();
                    for _ in 0..30 {
                        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        s.send_to(b"q", SocketAddr::new(vip, 53)).unwrap();
                        let mut buf = [0u8; 16];
                        let name = match s.recv_from(&mut buf) {
                            Ok((n, from)) => {
                                assert_eq!(from, SocketAddr::new(vip, 53), "the answer comes from the VIP");
                                String::from_utf8_lossy(&buf[..n]).into_owned()
                            }
                            Err(_) => String::new(),
                        };
                        *names.entry(name).or_insert(0) += 1;
                    }
                    names
                })
                .unwrap();
            assert_eq!(answers.get(""), None, "every datagram is answered: {answers:?}");
            assert!(answers.keys().all(|k| ["b0", "b1", "b2"].contains(&k.as_str())), "{answers:?}");

            // Ingress: TCP 9000 arriving on the LB's eth0 goes to the TCP service's backends.
            let web = ServiceKey::tcp(vip, 80);
            lab.lb.add_service(&web).unwrap();
            lab.add_backends(&web, false, 8080, &[1, 1, 1]);
            let p = PublishedPort { iface: "eth0".into(), proto: Protocol::Tcp, port: 9000, service: web };
            lab.lb.publish_port(&p).unwrap();
            assert_eq!(lab.lb.lb_published().unwrap(), vec![p.clone()]);
            assert!(lab.lb.publish_port(&p).unwrap_err().is_already_exists());
            let counts = spread(&lab.client, SocketAddr::new(addr(LB4), 9000), 30);
            assert_eq!(counts.get(""), None, "published port answered: {counts:?}");
            // A resize of the service (W = 9 > 16 / 2) carries over to the published port.
            lab.lb.remove_backend(&web, backend_ip(2, false), 8080).unwrap();
            lab.lb.add_backend(&web, &Backend { ip: backend_ip(2, false), port: 8080, weight: 7 }).unwrap();
            let rs = ruleset(&lab.lb);
            assert_eq!(service_target(&rs, "services4", VIP4, 80).as_deref(), Some("slots4-32"), "{rs}");
            let pub_rule = rs["nftables"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|o| o.get("rule"))
                .find(|r| r["chain"] == "pub-eth0-tcp-9000")
                .map(|r| r["expr"].to_string())
                .unwrap_or_default();
            assert!(pub_rule.contains("\"mod\":32"), "{pub_rule}");
            let counts = spread(&lab.client, SocketAddr::new(addr(LB4), 9000), 30);
            assert_eq!(counts.get(""), None, "published port answered after the resize: {counts:?}");
            lab.lb.unpublish_port("eth0", Protocol::Tcp, 9000).unwrap();
            let counts = spread(&lab.client, SocketAddr::new(addr(LB4), 9000), 3);
            assert_eq!(counts.get(""), Some(&3), "{counts:?}");
        });
    });
}

#[test]
fn failed_transaction_leaves_ruleset_identical_and_bad_input_is_typed() {
    if !nft_available() {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    in_private_netns(|| {
        let base = TempBase::new("lbtx");
        let lb = NetnsSandbox::create(&key(&base, "lb"), &CreateOptions::default()).unwrap();
        let svc = ServiceKey::tcp(addr(VIP4), 80);
        lb.add_service(&svc).unwrap();
        lb.add_backend(&svc, &Backend { ip: addr("198.18.0.11"), port: 8080, weight: 2 }).unwrap();

        // Someone else put the backends-map element our next service's backend needs there:
        // the second message of the next transaction (after the service's element) fails in
        // the kernel.
        nft_in(
            &lb,
            &[
                "add",
                "element",
                "inet",
                "netsandbox",
                "backends4",
                "{ 198.51.100.99 . tcp . 80 . 198.18.0.12 . 8080 : 1 }",
            ],
        );
        let before = ruleset(&lb);
        let s99 = ServiceKey::tcp(addr("198.51.100.99"), 80);
        let e = lb
            .lb_apply(&[
                LbChange::AddService(s99),
                LbChange::AddBackend(s99, Backend { ip: addr("198.18.0.12"), port: 8080, weight: 1 }),
            ])
            .unwrap_err();
        match &e {
            Error::Kernel(k) => assert_eq!((k.op, k.errno), ("add element to", nix::errno::Errno::EEXIST), "{e}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(ruleset(&lb), before, "a failed transaction changes nothing");
        let lo = ip_in(&lb, &["-j", "addr", "show", "dev", "lo"]);
        assert!(!lo.contains("198.51.100.99"), "{lo}");

        // Bad input: typed, nothing changed.
        let bad: Vec<Error> = vec![
            lb.add_service(&ServiceKey::tcp(addr("0.0.0.0"), 80)).unwrap_err(),
            lb.add_service(&ServiceKey::tcp(addr("224.0.0.1"), 80)).unwrap_err(),
            lb.add_service(&ServiceKey::tcp(addr(VIP4), 0)).unwrap_err(),
            lb.add_backend(&svc, &Backend { ip: addr("198.18.0.12"), port: 8080, weight: 0 }).unwrap_err(),
            lb.add_backend(&svc, &Backend { ip: addr("2001:db8::12"), port: 8080, weight: 1 }).unwrap_err(),
            lb.add_backend(&svc, &Backend { ip: addr("198.18.0.12"), port: 0, weight: 1 }).unwrap_err(),
            lb.publish_port(&PublishedPort { iface: "../x".into(), proto: Protocol::Tcp, port: 1, service: svc })
                .unwrap_err(),
        ];
        for e in &bad {
            assert!(e.is_invalid_input(), "{e:?}");
        }
        assert!(lb.add_service(&svc).unwrap_err().is_already_exists());
        assert!(
            lb.add_backend(&svc, &Backend { ip: addr("198.18.0.11"), port: 8080, weight: 1 })
                .unwrap_err()
                .is_already_exists()
        );
        assert!(lb.remove_backend(&svc, addr("198.18.0.99"), 8080).unwrap_err().is_not_found());
        assert!(lb.remove_service(&ServiceKey::udp(addr(VIP4), 80)).unwrap_err().is_not_found());
        assert!(lb.unpublish_port("eth0", Protocol::Tcp, 1).unwrap_err().is_not_found());
        assert_eq!(ruleset(&lb), before);

        lb.lb_clear().unwrap();
        let rs = ruleset(&lb).to_string();
        assert!(!rs.contains("\"netsandbox\""), "{rs}");
        lb.destroy().unwrap();
    });
}

/// A JSON scalar as text (`"tcp"` → `tcp`, `80` → `80`).
fn text(v: &serde_json::Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())
}

/// Elements `[key fields, value]` of map `map` of our table, from `nft -j`.
fn map_elems<'a>(rs: &'a serde_json::Value, map: &str) -> Vec<&'a serde_json::Value> {
    rs["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("map"))
        .filter(|m| m["table"] == "netsandbox" && m["name"] == map)
        .flat_map(|m| m["elem"].as_array().into_iter().flatten())
        .collect()
}

fn is_service(key: &serde_json::Value, vip: &str, port: u16) -> bool {
    let c = &key["concat"];
    text(&c[0]) == vip && (text(&c[2]) == port.to_string() || (port == 80 && text(&c[2]) == "http"))
}

/// The chain the `services4`/`services6` element of `vip`/`port` goes to.
fn service_target(rs: &serde_json::Value, map: &str, vip: &str, port: u16) -> Option<String> {
    map_elems(rs, map).into_iter().find(|e| is_service(&e[0], vip, port)).map(|e| text(&e[1]["goto"]["target"]))
}

/// Every rule of our table as `(chain, handle)`.
fn rule_handles(rs: &serde_json::Value) -> Vec<(String, u64)> {
    rs["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter(|r| r["table"] == "netsandbox")
        .map(|r| (text(&r["chain"]), r["handle"].as_u64().unwrap()))
        .collect()
}

/// Slots each backend address of service `vip`/`port` owns in `sel4`, from `nft -j`.
fn slot_owners(rs: &serde_json::Value, vip: &str, port: u16) -> BTreeMap<String, usize> {
    let mut owners = BTreeMap::new();
    for e in map_elems(rs, "sel4") {
        if is_service(&e[0], vip, port) {
            *owners.entry(text(&e[1]["concat"][0])).or_default() += 1;
        }
    }
    owners
}

#[test]
fn backend_change_replaces_no_rule_and_only_a_resize_retargets_the_service() {
    if !nft_available() {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    in_private_netns(|| {
        let base = TempBase::new("lbrule");
        let lb = NetnsSandbox::create(&key(&base, "lb"), &CreateOptions::default()).unwrap();
        let s1 = ServiceKey::tcp(addr(VIP4), 80);
        let s2 = ServiceKey::tcp(addr(VIP4), 81);
        lb.add_service(&s1).unwrap();
        lb.add_service(&s2).unwrap();
        let b = |i: u8, weight: u32| Backend { ip: addr(&format!("198.18.0.{i}")), port: 8080, weight };
        lb.add_backend(&s1, &b(11, 1)).unwrap();
        lb.add_backend(&s2, &b(11, 1)).unwrap();
        let rs = ruleset(&lb);
        let rules = rule_handles(&rs);
        assert!(rules.iter().any(|(c, _)| c == "slots4-16"), "{rules:?}");
        let target = |rs: &serde_json::Value, port| service_target(rs, "services4", VIP4, port);
        assert_eq!(target(&rs, 80).as_deref(), Some("slots4-16"), "{rs}");
        assert_eq!(slot_owners(&rs, VIP4, 80).values().sum::<usize>(), 16);

        // Adds, a drain and removals within the band (W ≤ 8): no rule replaced, the service's
        // element untouched; the slots follow the weights: ⌊16·w/W⌋ or ⌈16·w/W⌉ each.
        lb.add_backend(&s1, &b(12, 2)).unwrap();
        lb.add_backend(&s1, &b(13, 1)).unwrap();
        let rs = ruleset(&lb);
        assert_eq!(rule_handles(&rs), rules, "adding a backend replaces no rule");
        assert_eq!(target(&rs, 80).as_deref(), Some("slots4-16"));
        let owners = slot_owners(&rs, VIP4, 80);
        assert_eq!(owners.values().sum::<usize>(), 16, "{owners:?}");
        assert_eq!((owners["198.18.0.11"], owners["198.18.0.12"], owners["198.18.0.13"]), (4, 8, 4), "{owners:?}");
        lb.drain_backend(&s1, addr("198.18.0.12"), 8080).unwrap();
        let rs = ruleset(&lb);
        assert_eq!(rule_handles(&rs), rules, "draining replaces no rule");
        let owners = slot_owners(&rs, VIP4, 80);
        assert_eq!(owners.get("198.18.0.12"), None, "a drained backend owns no slot: {owners:?}");
        assert_eq!((owners["198.18.0.11"], owners["198.18.0.13"]), (8, 8), "{owners:?}");
        lb.remove_backend(&s1, addr("198.18.0.12"), 8080).unwrap();
        lb.remove_backend(&s1, addr("198.18.0.13"), 8080).unwrap();
        let rs = ruleset(&lb);
        assert_eq!(rule_handles(&rs), rules, "removing replaces no rule");
        assert_eq!(slot_owners(&rs, VIP4, 80)["198.18.0.11"], 16);

        // W = 9 leaves the band: the service's element now goes to the 32-slot chain; still no
        // rule replaced, and the other service is untouched.
        for i in 0..8 {
            lb.add_backend(&s1, &b(20 + i, 1)).unwrap();
        }
        let rs = ruleset(&lb);
        assert_eq!(target(&rs, 80).as_deref(), Some("slots4-32"), "a resize retargets the service");
        // The 32-slot chain is made on its first use; every other rule stays as it was.
        let mut now = rule_handles(&rs);
        let made: Vec<_> = now.iter().filter(|r| !rules.contains(r)).cloned().collect();
        assert_eq!(made.iter().map(|(c, _)| c.as_str()).collect::<Vec<_>>(), ["slots4-32"]);
        now.retain(|r| rules.contains(r));
        assert_eq!(now, rules);
        let owners = slot_owners(&rs, VIP4, 80);
        assert_eq!(owners.len(), 9);
        assert!(owners.values().all(|&n| (3..=4).contains(&n)), "{owners:?}");
        assert_eq!(target(&rs, 81).as_deref(), Some("slots4-16"));
        assert_eq!(slot_owners(&rs, VIP4, 81)["198.18.0.11"], 16);
        // And the state reads back from the kernel as built.
        let again = NetnsSandbox::open(&key(&base, "lb")).unwrap();
        assert_eq!(again.lb_restore().unwrap(), lb.lb_services().unwrap());
        again.add_backend(&s1, &b(40, 1)).unwrap();
        assert_eq!(target(&ruleset(&lb), 80).as_deref(), Some("slots4-32"), "the restored view needs no resize");
        lb.destroy().unwrap();
    });
}

#[test]
fn a_table_of_another_layout_is_reported_and_cleared() {
    if !nft_available() {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    in_private_netns(|| {
        let base = TempBase::new("lbold");
        let lb = NetnsSandbox::create(&key(&base, "lb"), &CreateOptions::default()).unwrap();
        // What an earlier version built: a service chain behind the services map.
        nft_in(&lb, &["add", "table", "inet", "netsandbox"]);
        nft_in(
            &lb,
            &[
                "add",
                "map",
                "inet",
                "netsandbox",
                "services4",
                "{ type ipv4_addr . inet_proto . inet_service : verdict; }",
            ],
        );
        nft_in(&lb, &["add", "chain", "inet", "netsandbox", "svc-tcp-198.51.100.10-80"]);
        nft_in(
            &lb,
            &[
                "add",
                "element",
                "inet",
                "netsandbox",
                "services4",
                "{ 198.51.100.10 . tcp . 80 : goto svc-tcp-198.51.100.10-80 }",
            ],
        );
        let before = ruleset(&lb);
        let e = lb.lb_services().unwrap_err();
        assert!(matches!(e, Error::Protocol { .. }) && e.to_string().contains("not built by this version"), "{e}");
        let e = lb.add_service(&ServiceKey::tcp(addr(VIP4), 81)).unwrap_err();
        assert!(matches!(e, Error::Protocol { .. }), "{e}");
        assert_eq!(ruleset(&lb), before, "nothing changed");
        lb.lb_clear().unwrap();
        assert!(!ruleset(&lb).to_string().contains("\"netsandbox\""));
        // And the load balancer works from scratch afterwards.
        lb.add_service(&ServiceKey::tcp(addr(VIP4), 80)).unwrap();
        assert_eq!(lb.lb_services().unwrap().len(), 1);
        lb.destroy().unwrap();
    });
}

#[test]
fn restore_after_dropping_handles_reports_the_same() {
    if !nft_available() {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    in_private_netns(|| {
        let base = TempBase::new("lbrestore");
        let k = key(&base, "lb");
        let lb = NetnsSandbox::create(&k, &CreateOptions { ipv6: Some(true) }).unwrap();
        lb.add_veth("vrs", "eth", &IfaceOptions::new().address(net("198.18.0.1/24"))).unwrap();
        let s4 = ServiceKey::tcp(addr(VIP4), 80);
        let s6 = ServiceKey::udp(addr(VIP6), 53);
        lb.add_service(&s4).unwrap();
        lb.add_service(&s6).unwrap();
        for i in 0..5u8 {
            lb.add_backend(
                &s4,
                &Backend { ip: addr(&format!("198.18.0.{}", 10 + i)), port: 8080, weight: u32::from(i) + 1 },
            )
            .unwrap();
        }
        lb.add_backend(&s6, &Backend { ip: addr("2001:db8::11"), port: 5353, weight: 1 }).unwrap();
        lb.drain_backend(&s4, addr("198.18.0.11"), 8080).unwrap();
        lb.remove_backend(&s4, addr("198.18.0.12"), 8080).unwrap();
        lb.publish_port(&PublishedPort { iface: "eth0".into(), proto: Protocol::Tcp, port: 9000, service: s4 })
            .unwrap();
        let services = lb.lb_services().unwrap();
        let published = lb.lb_published().unwrap();
        assert_eq!(services.len(), 2);
        assert_eq!(services[0].backends.len(), 4);
        drop(lb);

        let again = NetnsSandbox::open(&k).unwrap();
        assert_eq!(again.lb_restore().unwrap(), services);
        assert_eq!(again.lb_published().unwrap(), published);
        // And it keeps working from the restored state.
        again.add_backend(&s4, &Backend { ip: addr("198.18.0.20"), port: 8080, weight: 3 }).unwrap();
        assert_eq!(again.lb_restore().unwrap()[0].backends.len(), 5);
        again.destroy().unwrap();
        assert!(matches!(again.add_service(&s4), Err(Error::Destroyed { .. })));
        assert!(matches!(again.lb_services(), Err(Error::Destroyed { .. })));
    });
}

#[test]
fn fake_sandbox_has_the_same_surface_and_errors() {
    let base = TempBase::new("lbfake");
    let fake = FakeSandbox::new(&key(&base, "f")).unwrap();
    let svc = ServiceKey::tcp(addr(VIP4), 80);
    fake.add_service(&svc).unwrap();
    assert!(fake.add_service(&svc).unwrap_err().is_already_exists());
    fake.add_backend(&svc, &Backend { ip: addr("198.18.0.11"), port: 8080, weight: 1 }).unwrap();
    assert!(
        fake.add_backend(&svc, &Backend { ip: addr("198.18.0.12"), port: 8080, weight: 0 })
            .unwrap_err()
            .is_invalid_input()
    );
    fake.drain_backend(&svc, addr("198.18.0.11"), 8080).unwrap();
    assert_eq!(fake.lb_services().unwrap()[0].backends[0].state, BackendState::Draining);
    assert_eq!(fake.info().unwrap().loopback_addresses, vec![net("198.51.100.10/32")]);
    fake.remove_service(&svc).unwrap();
    assert!(fake.lb_services().unwrap().is_empty());
    assert!(fake.info().unwrap().loopback_addresses.is_empty());
    fake.destroy().unwrap();
    assert!(matches!(fake.add_service(&svc), Err(Error::Destroyed { .. })));
}

#[test]
fn masquerade_entries_in_their_own_table() {
    use netsandbox::sandbox::lb::{add_masquerade, list_masquerade, remove_masquerade};
    if !nft_available() {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    in_private_netns(|| {
        let nft = || {
            let out = std::process::Command::new("nft").args(["-j", "list", "ruleset"]).output().unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        add_masquerade(None, "net1-c0ffee", net("198.18.5.0/24")).unwrap();
        add_masquerade(None, "net1-beef", net("2001:db8:5::/64")).unwrap();
        let rs = nft().to_string();
        assert!(
            rs.contains("\"netsandbox-masq\"") && rs.contains("masq-net1-c0ffee") && rs.contains("\"masquerade\""),
            "{rs}"
        );
        assert!(rs.contains("198.18.5.0") && rs.contains("224.0.0.0"), "{rs}");
        let mut listed = list_masquerade(None).unwrap();
        listed.sort();
        assert_eq!(
            listed,
            vec![("net1-beef".into(), net("2001:db8:5::/64")), ("net1-c0ffee".into(), net("198.18.5.0/24"))]
        );
        let before = nft();
        assert!(add_masquerade(None, "net1-c0ffee", net("198.18.6.0/24")).unwrap_err().is_already_exists());
        assert!(add_masquerade(None, "bad id", net("198.18.6.0/24")).unwrap_err().is_invalid_input());
        assert!(add_masquerade(None, "x", net("224.0.0.0/4")).unwrap_err().is_invalid_input());
        assert_eq!(nft(), before, "refused additions change nothing");
        remove_masquerade(None, "net1-c0ffee").unwrap();
        assert!(remove_masquerade(None, "net1-c0ffee").unwrap_err().is_not_found());
        remove_masquerade(None, "net1-beef").unwrap();
        let rs = nft().to_string();
        assert!(!rs.contains("netsandbox-masq"), "the table goes with its last entry: {rs}");
        assert!(list_masquerade(None).unwrap().is_empty());
    });
}

#[test]
fn cli_lb_commands() {
    if !nft_available() {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    in_private_netns(|| {
        let base = TempBase::new("lbcli");
        let run = |args: &[&str]| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_netsandbox"))
                .arg("--base")
                .arg(base.path())
                .args(args)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let ok = |args: &[&str]| {
            let (good, out, err) = run(args);
            assert!(good, "{args:?}: {err}");
            out
        };
        ok(&["create", "lb"]);
        ok(&["lb", "service", "add", "lb", VIP4, "80"]);
        ok(&["lb", "service", "add", "lb", VIP6, "53", "--proto", "udp"]);
        ok(&["lb", "backend", "add", "lb", VIP4, "80", "198.18.0.11", "8080", "--weight", "3"]);
        ok(&["lb", "backend", "add", "lb", VIP4, "80", "198.18.0.12", "8080"]);
        ok(&["lb", "backend", "drain", "lb", VIP4, "80", "198.18.0.12", "8080"]);
        let show: serde_json::Value = serde_json::from_str(&ok(&["--json", "lb", "show", "lb"])).unwrap();
        assert_eq!(show.as_array().unwrap().len(), 2, "{show}");
        let web = show.as_array().unwrap().iter().find(|s| s["proto"] == "tcp").unwrap();
        assert_eq!(web["vip"], VIP4);
        assert_eq!(
            web["backends"][0],
            serde_json::json!({"ip": "198.18.0.11", "port": 8080, "weight": 3, "draining": false})
        );
        assert_eq!(web["backends"][1]["draining"], true);
        let text = ok(&["lb", "show", "lb"]);
        assert!(text.contains("backend 198.18.0.12 port 8080 weight 1 draining"), "{text}");
        let (good, _, err) = run(&["lb", "backend", "add", "lb", VIP4, "80", "198.18.0.13", "8080", "--weight", "0"]);
        assert!(!good && err.contains("weight"), "{err}");
        let (good, _, err) = run(&["lb", "service", "del", "lb", VIP4, "81"]);
        assert!(!good && err.contains("not found"), "{err}");
        ok(&["lb", "backend", "del", "lb", VIP4, "80", "198.18.0.12", "8080"]);
        ok(&["lb", "service", "del", "lb", VIP4, "80"]);
        let show: serde_json::Value = serde_json::from_str(&ok(&["--json", "lb", "show", "lb"])).unwrap();
        assert_eq!(show.as_array().unwrap().len(), 1, "{show}");
        ok(&["destroy", "lb"]);
    });
}
