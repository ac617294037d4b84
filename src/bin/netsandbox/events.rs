//! `netsandbox events [KEY...]`: streams the changes in sandboxes as lines or JSON lines until
//! SIGINT/SIGTERM, or until nothing happened for `--until-quiet MS`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use netsandbox::netlink::Family;
use netsandbox::netlink::consts::AF_BRIDGE;
use netsandbox::sandbox::{Change, Event, Object, Source, Watcher};
use netsandbox::validate::format_mac;
use netsandbox::{Error, Result};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use serde_json::{Value, json};

fn os(op: &'static str, object: impl std::fmt::Display, e: nix::errno::Errno) -> Error {
    Error::Os { op, object: object.to_string(), source: e.into() }
}

/// Write end of the self-pipe the signal handler writes to (-1: none).
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a static byte. A full pipe
        // (EAGAIN) is fine: one byte already wakes the reader.
        unsafe {
            libc::write(fd, b"x".as_ptr().cast(), 1);
        }
    }
}

/// SIGINT/SIGTERM write to a pipe whose read end is polled beside the watcher, so the stream
/// ends at once and cleanly whichever thread the signal lands on.
struct Signals {
    read: OwnedFd,
    _write: OwnedFd,
}

impl Signals {
    fn install() -> Result<Signals> {
        use nix::fcntl::OFlag;
        use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
        use std::os::fd::AsRawFd;
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(|e| os("create", "signal pipe", e))?;
        SIGNAL_PIPE.store(write.as_raw_fd(), Ordering::Relaxed);
        let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::SA_RESTART, SigSet::empty());
        for s in [Signal::SIGINT, Signal::SIGTERM] {
            // SAFETY: the handler only loads an atomic and calls write(2), both async-signal-safe.
            unsafe { sigaction(s, &action) }.map_err(|e| os("install handler for", s, e))?;
        }
        Ok(Signals { read, _write: write })
    }
}

/// Streams events for `keys` (pin paths, shown as `names`). Returns the exit code.
pub fn run(keys: &[String], names: &[String], json: bool, until_quiet: Option<u64>) -> Result<i32> {
    let signals = Signals::install()?;
    let mut w = Watcher::new()?;
    for k in keys {
        w.watch(k)?;
    }
    let shown = |key: &str| -> String {
        keys.iter().position(|k| k == key).map_or_else(|| key.to_owned(), |i| names[i].clone())
    };
    // Scripts wait for this line before making the changes they want to see.
    eprintln!("netsandbox: watching {} sandbox(es)", keys.len());
    let quiet = until_quiet.map(Duration::from_millis);
    let mut last = Instant::now();
    loop {
        let timeout = match quiet {
            Some(q) => {
                let left = q.saturating_sub(last.elapsed());
                if left.is_zero() {
                    return Ok(0);
                }
                PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
            }
            None => PollTimeout::NONE,
        };
        let (ready, signalled) = wait(w.as_fd(), signals.read.as_fd(), timeout)?;
        if signalled {
            return Ok(0);
        }
        if !ready {
            continue;
        }
        while let Some(e) = w.try_next()? {
            last = Instant::now();
            if json {
                println!("{}", event_json(&e, &shown));
            } else {
                println!("{}", event_text(&e, &shown));
            }
        }
    }
}

/// Polls the watcher and the signal pipe: (watcher readable, signal arrived).
fn wait(watcher: BorrowedFd<'_>, signal: BorrowedFd<'_>, timeout: PollTimeout) -> Result<(bool, bool)> {
    let mut fds = [PollFd::new(watcher, PollFlags::POLLIN), PollFd::new(signal, PollFlags::POLLIN)];
    match poll(&mut fds, timeout) {
        Ok(_) => {}
        Err(nix::errno::Errno::EINTR) => return Ok((false, false)),
        Err(e) => return Err(os("poll", "events", e)),
    }
    let hit = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
    Ok((hit(&fds[0]), hit(&fds[1])))
}

fn change(c: Change) -> &'static str {
    match c {
        Change::New => "new",
        Change::Del => "del",
    }
}

fn source(s: Source) -> &'static str {
    match s {
        Source::Live => "live",
        Source::Reconcile => "reconcile",
    }
}

fn family(f: Family) -> String {
    match f {
        Family::Inet => "inet".into(),
        Family::Inet6 => "inet6".into(),
        Family::Bridge => "bridge".into(),
        Family::Unknown(n) => n.to_string(),
    }
}

fn object_json(o: &Object) -> Value {
    let mac = |m: &Option<[u8; 6]>| m.map(|m| format_mac(&m));
    match o {
        Object::Link(l) => json!({
            "object": "link", "index": l.index, "name": l.name, "up": l.up, "running": l.running,
            "mtu": l.mtu, "mac": mac(&l.mac), "master": l.master,
        }),
        Object::Address(a) => json!({
            "object": "address", "index": a.index, "address": a.addr.to_string(), "scope": a.scope, "flags": a.flags,
        }),
        Object::Route(r) => json!({
            "object": "route", "table": r.table, "dst": r.dst.to_string(),
            "gateway": r.gateway.map(|g| g.to_string()), "oif": r.oif, "protocol": r.protocol,
            "scope": r.scope, "type": r.kind, "priority": r.priority,
        }),
        Object::Neighbor(n) => json!({
            "object": "neighbor", "index": n.index, "family": family(n.family),
            "ip": n.ip.map(|i| i.to_string()), "mac": mac(&n.mac), "state": n.state,
        }),
        Object::Nsid { id } => json!({ "object": "nsid", "id": id }),
    }
}

fn event_json(e: &Event, shown: &dyn Fn(&str) -> String) -> Value {
    match e {
        Event::Changed { key, change: c, object, source: s } => {
            let mut v = object_json(object);
            v["event"] = json!("change");
            v["key"] = json!(shown(key));
            v["change"] = json!(change(*c));
            v["source"] = json!(source(*s));
            v
        }
        Event::ResyncNeeded => json!({ "event": "resync-needed" }),
        Event::Resynced => json!({ "event": "resynced" }),
        Event::Gone { key } => json!({ "event": "gone", "key": shown(key) }),
        other => json!({ "event": format!("{other:?}") }),
    }
}

fn object_text(o: &Object) -> String {
    match o {
        Object::Link(l) => {
            let state = if l.up { "up" } else { "down" };
            let mtu = l.mtu.map(|m| format!(" mtu {m}")).unwrap_or_default();
            format!("link {} {} {state}{mtu}", l.index, l.name)
        }
        Object::Address(a) => format!("address {} dev {}", a.addr, a.index),
        Object::Route(r) => {
            let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
            let dev = r.oif.map(|o| format!(" dev {o}")).unwrap_or_default();
            format!("route {}{via}{dev} table {}", r.dst, r.table)
        }
        Object::Neighbor(n) => {
            let ip = n.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
            let mac = n.mac.map(|m| format_mac(&m)).unwrap_or_else(|| "-".into());
            let kind = if u8::from(n.family) == AF_BRIDGE { "fdb" } else { "neighbor" };
            format!("{kind} {ip} lladdr {mac} dev {}", n.index)
        }
        Object::Nsid { id } => format!("nsid {id}"),
    }
}

fn event_text(e: &Event, shown: &dyn Fn(&str) -> String) -> String {
    match e {
        Event::Changed { key, change: c, object, source: s } => {
            let tag = if *s == Source::Reconcile { " (reconcile)" } else { "" };
            format!("{} {} {}{tag}", shown(key), change(*c), object_text(object))
        }
        Event::ResyncNeeded => "resync needed: events were lost, re-reading every sandbox".into(),
        Event::Resynced => "resynced".into(),
        Event::Gone { key } => format!("{} gone", shown(key)),
        other => format!("{other:?}"),
    }
}
