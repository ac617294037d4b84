//! The event watcher: one socket, many sandboxes, changes made by hand with `ip` inside some of
//! them; overflow and reconcile; drift against a saved `info()`.

mod common;

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{TempBase, in_private_netns, key, net};
use netsandbox::sandbox::drift::{self, Drift};
use netsandbox::sandbox::{
    Change, CreateOptions, Event, IfaceOptions, NetnsSandbox, Object, Sandbox, Source, StaticRoute, WatchOptions,
    Watcher,
};

/// Runs a shell script of `ip` commands inside the namespace pinned at `key` (nsenter), as an
/// operator changing a sandbox behind the engine's back would.
fn ip_in(key: &str, script: &str) {
    let out = Command::new("nsenter")
        .arg(format!("--net={key}"))
        .args(["sh", "-ec", script])
        .stdin(Stdio::null())
        .output()
        .expect("run nsenter");
    assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
}

/// `ip -j` output inside the namespace pinned at `key`.
fn ip_json(key: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new("nsenter").arg(format!("--net={key}")).arg("ip").arg("-j").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The addresses on `lo` according to iproute2 (kernel truth).
fn lo_addresses(key: &str) -> HashSet<String> {
    let v = ip_json(key, &["addr", "show", "dev", "lo"]);
    v[0]["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

/// Creates `n` sandboxes under `base`.
fn sandboxes(base: &TempBase, n: usize) -> Vec<NetnsSandbox> {
    (0..n).map(|i| NetnsSandbox::create(&key(base, &format!("sb{i}")), &CreateOptions::default()).unwrap()).collect()
}

/// Reads events until `done` says so, failing after `limit`.
fn read_until(w: &mut Watcher, limit: Duration, seen: &mut Vec<Event>, mut done: impl FnMut(&[Event]) -> bool) {
    let deadline = Instant::now() + limit;
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "condition not met within {limit:?}; {} events seen", seen.len());
        if let Some(e) = w.next(Some(left.min(Duration::from_millis(500)))).unwrap() {
            seen.push(e);
        }
    }
}

/// Reads until no event has come for `quiet`.
fn drain_quiet(w: &mut Watcher, quiet: Duration, seen: &mut Vec<Event>) {
    for _ in 0..100_000 {
        match w.next(Some(quiet)).unwrap() {
            Some(e) => seen.push(e),
            None => return,
        }
    }
    panic!("events never went quiet");
}

/// What a test expects to see once: sandbox key, change, and a description of the object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Expect {
    Addr(String, Change, String),
    Route(String, Change, String),
    LoMtu(String, u32),
}

fn matches(e: &Event, x: &Expect) -> bool {
    let Event::Changed { key, change, object, source: Source::Live } = e else { return false };
    match (x, object) {
        (Expect::Addr(k, c, a), Object::Address(addr)) => k == key && c == change && addr.addr.to_string() == *a,
        (Expect::Route(k, c, d), Object::Route(r)) => {
            k == key && c == change && r.dst.to_string() == *d && r.table == 254
        }
        (Expect::LoMtu(k, m), Object::Link(l)) => {
            k == key && *change == Change::New && l.name == "lo" && l.mtu == Some(*m)
        }
        _ => false,
    }
}

#[test]
fn two_hundred_sandboxes_changes_in_twenty_each_reported_once_with_its_key() {
    in_private_netns(|| {
        let base = TempBase::new("events-200");
        let sbs = sandboxes(&base, 200);
        let mut w = Watcher::new().unwrap();
        for sb in &sbs {
            w.watch(sb.key()).unwrap();
        }
        assert_eq!(w.keys().len(), 200);

        let changed: Vec<usize> = (0..200).step_by(10).collect();
        let mut expect = Vec::new();
        for &i in &changed {
            let k = sbs[i].key().to_owned();
            let a = format!("198.18.{i}.1/32");
            let b = format!("198.18.{i}.2/32");
            let r = format!("198.19.{i}.0/24");
            ip_in(
                &k,
                &format!(
                    "ip addr add {a} dev lo; ip addr add {b} dev lo; ip route add {r} dev lo; ip link set lo mtu 1400; ip addr del {b} dev lo"
                ),
            );
            expect.push(Expect::Addr(k.clone(), Change::New, a));
            expect.push(Expect::Addr(k.clone(), Change::New, b.clone()));
            expect.push(Expect::Addr(k.clone(), Change::Del, b));
            expect.push(Expect::Route(k.clone(), Change::New, r));
            expect.push(Expect::LoMtu(k, 1400));
        }

        let mut seen = Vec::new();
        read_until(&mut w, Duration::from_secs(30), &mut seen, |s| {
            expect.iter().all(|x| s.iter().any(|e| matches(e, x)))
        });
        // Anything still in flight (a duplicate would be) arrives within a quiet period.
        drain_quiet(&mut w, Duration::from_millis(300), &mut seen);

        for x in &expect {
            let n = seen.iter().filter(|e| matches(e, x)).count();
            assert_eq!(n, 1, "{x:?} reported {n} times");
        }
        let allowed: HashSet<&str> = changed.iter().map(|&i| sbs[i].key()).collect();
        for e in &seen {
            match e {
                Event::Changed { key, .. } => {
                    assert!(allowed.contains(key.as_str()), "event from an untouched sandbox: {e:?}")
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // The watcher's view of a changed sandbox matches the kernel's.
        for &i in &changed {
            let k = sbs[i].key();
            let mirror = w.mirror(k).unwrap();
            let lo = mirror.links().find(|l| l.name == "lo").unwrap().index;
            let mine: HashSet<String> =
                mirror.addresses().filter(|a| a.index == lo).map(|a| a.addr.to_string()).collect();
            assert_eq!(mine, lo_addresses(k), "{k}");
        }
        assert_eq!(w.stats().overflows, 0);
        let keys: Vec<String> = sbs.iter().map(|s| s.key().to_owned()).collect();
        drop(w);
        for sb in sbs {
            sb.destroy().unwrap();
        }
        for k in keys {
            assert!(!std::path::Path::new(&k).exists());
        }
    });
}

#[test]
fn overflow_gives_resync_then_a_reconcile_that_matches_the_kernel() {
    in_private_netns(|| {
        let base = TempBase::new("events-enobufs");
        let sbs = sandboxes(&base, 20);
        // The smallest queue the kernel allows: a burst overflows it.
        let mut w = Watcher::with_options(&WatchOptions { rcvbuf: Some(1) }).unwrap();
        for sb in &sbs {
            w.watch(sb.key()).unwrap();
        }
        // A burst, with nobody reading: 20 x 60 addresses (plus their local routes).
        for (i, sb) in sbs.iter().enumerate() {
            let mut script = String::new();
            for j in 0..60 {
                script.push_str(&format!("ip addr add 198.18.{i}.{}/32 dev lo\n", j + 1));
            }
            script.push_str(&format!("ip addr del 198.18.{i}.60/32 dev lo\n"));
            ip_in(sb.key(), &script);
        }
        let mut seen = Vec::new();
        read_until(&mut w, Duration::from_secs(60), &mut seen, |s| s.contains(&Event::Resynced));
        drain_quiet(&mut w, Duration::from_millis(300), &mut seen);
        assert!(w.stats().overflows >= 1);
        let resync = seen.iter().position(|e| *e == Event::ResyncNeeded).expect("ResyncNeeded reported");
        let done = seen.iter().position(|e| *e == Event::Resynced).unwrap();
        assert!(resync < done);
        assert!(
            seen[resync..done].iter().any(|e| matches!(e, Event::Changed { source: Source::Reconcile, .. })),
            "the reconcile reported what was lost"
        );
        // After the last resync, every sandbox's mirror equals the kernel's state.
        for sb in &sbs {
            let m = w.mirror(sb.key()).unwrap();
            let lo = m.links().find(|l| l.name == "lo").unwrap().index;
            let mine: HashSet<String> = m.addresses().filter(|a| a.index == lo).map(|a| a.addr.to_string()).collect();
            let truth = lo_addresses(sb.key());
            assert_eq!(truth.len(), 61, "59 added addresses + 127.0.0.1/8 + ::1/128");
            assert_eq!(mine, truth, "{}", sb.key());
        }
        // Net effect of everything reported = kernel truth: replaying the events from the
        // initial state (127.0.0.1, ::1) gives the final set of addresses.
        let mut replay: HashMap<String, HashSet<String>> = HashMap::new();
        for sb in &sbs {
            replay.insert(sb.key().to_owned(), ["127.0.0.1/8".to_owned(), "::1/128".to_owned()].into());
        }
        for e in &seen {
            if let Event::Changed { key, change, object: Object::Address(a), .. } = e {
                let set = replay.get_mut(key).unwrap();
                match change {
                    Change::New => set.insert(a.addr.to_string()),
                    Change::Del => set.remove(&a.addr.to_string()),
                };
            }
        }
        for sb in &sbs {
            assert_eq!(replay[sb.key()], lo_addresses(sb.key()), "replayed events of {}", sb.key());
        }
        // The watcher carries on live.
        ip_in(sbs[3].key(), "ip addr add 203.0.113.77/32 dev lo");
        let k3 = sbs[3].key().to_owned();
        let want = Expect::Addr(k3, Change::New, "203.0.113.77/32".into());
        let mut after = Vec::new();
        // Live, or (should the tiny queue overflow again) through a reconcile.
        let reconciled = |e: &Event| {
            matches!(e, Event::Changed { source: Source::Reconcile, change: Change::New, object: Object::Address(a), .. }
                if a.addr.to_string() == "203.0.113.77/32")
        };
        read_until(&mut w, Duration::from_secs(10), &mut after, |s| {
            s.iter().any(|e| matches(e, &want) || reconciled(e))
        });
        drop(w);
        for sb in sbs {
            sb.destroy().unwrap();
        }
    });
}

#[test]
fn destroyed_sandbox_is_reported_gone() {
    in_private_netns(|| {
        let base = TempBase::new("events-gone");
        let sb = NetnsSandbox::create(&key(&base, "gone"), &CreateOptions::default()).unwrap();
        let k = sb.key().to_owned();
        let mut w = Watcher::new().unwrap();
        w.watch(&k).unwrap();
        assert!(w.watch(&key(&base, "missing")).unwrap_err().is_not_found());
        sb.destroy().unwrap();
        let mut seen = Vec::new();
        read_until(&mut w, Duration::from_secs(30), &mut seen, |s| {
            s.iter().any(|e| *e == Event::Gone { key: k.clone() })
        });
        assert!(w.keys().is_empty());
    });
}

#[test]
fn drift_against_saved_info() {
    in_private_netns(|| {
        let base = TempBase::new("events-drift");
        let sb = NetnsSandbox::create(&key(&base, "d1"), &CreateOptions::default()).unwrap();
        sb.add_veth("vhd1", "eth", &IfaceOptions::new().address(net("198.51.100.2/24"))).unwrap();
        sb.add_alias_ip("eth0", net("198.51.100.4/24")).unwrap();
        sb.add_alias_ip("lo", net("203.0.113.10/32")).unwrap();
        let saved = sb.info().unwrap();
        assert_eq!(drift::detect(&sb, &saved).unwrap(), Vec::<Drift>::new(), "nothing drifted yet");

        // By hand, behind the engine's back.
        ip_in(
            sb.key(),
            "ip addr del 198.51.100.4/24 dev eth0; ip route add 203.0.113.0/24 via 198.51.100.1; ip addr del 203.0.113.10/32 dev lo",
        );
        let d = drift::detect(&sb, &saved).unwrap();
        let expect = vec![
            Drift::AddressRemoved { interface: "eth0".into(), addr: net("198.51.100.4/24") },
            Drift::AddressRemoved { interface: "lo".into(), addr: net("203.0.113.10/32") },
            Drift::RouteAdded(StaticRoute {
                dst: net("203.0.113.0/24"),
                gateway: Some("198.51.100.1".parse().unwrap()),
                interface: None,
            }),
        ];
        let mut want = expect.clone();
        want.sort();
        assert_eq!(d, want);

        // A link downed by hand, in a second sandbox.
        let sb2 = NetnsSandbox::create(&key(&base, "d2"), &CreateOptions::default()).unwrap();
        sb2.add_veth("vhd2", "eth", &IfaceOptions::new()).unwrap();
        let saved2 = sb2.info().unwrap();
        ip_in(sb2.key(), "ip link set eth0 down");
        let down = ip_json(sb2.key(), &["link", "show", "dev", "eth0"]);
        assert!(!down[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"), "kernel says eth0 is down");
        assert_eq!(drift::detect(&sb2, &saved2).unwrap(), vec![Drift::InterfaceDown { name: "eth0".into() }]);
        sb.destroy().unwrap();
        sb2.destroy().unwrap();
    });
}
