//! `netsandbox events` end to end: a separate process streams what `ip` changes inside a
//! sandbox, as text or JSON lines; it ends on SIGINT/SIGTERM and with --until-quiet.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use common::cli::CliEnv as Env;
use serde_json::Value;

impl Env {
    /// `ip` inside sandbox `name`.
    fn ip(&self, name: &str, script: &str) {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", self.base.join(name).display()))
            .args(["sh", "-ec", script])
            .output()
            .unwrap();
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts `events` and waits (bounded) until it says it is watching.
    fn events(&self, args: &[&str]) -> Stream {
        let mut all = vec!["events"];
        all.extend_from_slice(args);
        let mut child = self.cmd(&all).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let lines = reader(child.stdout.take().unwrap());
        let errs = reader(child.stderr.take().unwrap());
        let s = Stream { child, lines, errs };
        let ready = s.errs.recv_timeout(Duration::from_secs(20)).expect("events started");
        assert!(ready.contains("watching"), "{ready}");
        s
    }

    fn destroy(&self, names: &[&str]) {
        let mut args = vec!["destroy"];
        args.extend_from_slice(names);
        self.ok(&args);
    }
}

fn reader(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A running `events` process, killed on drop.
struct Stream {
    child: Child,
    lines: Receiver<String>,
    errs: Receiver<String>,
}

impl Stream {
    /// Lines until one satisfies `want` (at most 20 s).
    fn until(&self, want: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = want(&l);
                    got.push(l);
                    if done {
                        return got;
                    }
                }
                Err(_) => panic!("no matching line within 20 s; got {got:?}"),
            }
        }
    }

    /// Waits (at most 20 s) for the process to exit; returns its exit code.
    fn wait(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(Instant::now() < deadline, "events did not exit within 20 s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Every line printed so far after exit.
    fn rest(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn json_lines_name_the_sandbox_and_only_watched_ones_report() {
    let env = Env::new("cli-events-json");
    env.ok(&["create", "a"]);
    env.ok(&["create", "b"]);
    let mut s = env.events(&["--json", "a", "--until-quiet", "1000"]);
    env.ip("b", "ip addr add 198.18.1.1/32 dev lo");
    env.ip("a", "ip addr add 198.18.0.1/32 dev lo; ip route add 198.19.0.0/24 dev lo; ip link set lo mtu 1300");
    let got = s.until(|l| l.contains("\"mtu\":1300"));
    assert_eq!(s.wait(), Some(0), "--until-quiet ends with status 0");
    let mut all = got;
    all.extend(s.rest());
    let events: Vec<Value> = all.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    for e in &events {
        assert_eq!(e["key"], "a", "only the watched sandbox reports: {e}");
        assert_eq!(e["source"], "live");
    }
    let has = |f: &dyn Fn(&Value) -> bool| events.iter().filter(|e| f(e)).count();
    assert_eq!(has(&|e| e["object"] == "address" && e["address"] == "198.18.0.1/32" && e["change"] == "new"), 1);
    assert_eq!(has(&|e| e["object"] == "route" && e["dst"] == "198.19.0.0/24" && e["table"] == 254), 1);
    assert_eq!(has(&|e| e["object"] == "link" && e["name"] == "lo" && e["mtu"] == 1300), 1);
    env.destroy(&["a", "b"]);
}

#[test]
fn text_lines_and_clean_exit_on_sigterm_and_sigint() {
    use nix::sys::signal::Signal;
    let env = Env::new("cli-events-sig");
    env.ok(&["create", "a"]);
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        let mut s = env.events(&[]);
        env.ip("a", "ip addr add 203.0.113.5/32 dev lo || ip addr del 203.0.113.5/32 dev lo");
        let got = s.until(|l| l.contains("203.0.113.5/32"));
        assert!(got.last().unwrap().starts_with("a "), "{got:?}");
        s.signal(sig);
        assert_eq!(s.wait(), Some(0), "{sig} ends the stream cleanly");
    }
    env.destroy(&["a"]);
}

#[test]
fn unknown_sandbox_is_not_found() {
    let env = Env::new("cli-events-missing");
    let out = env.cmd(&["events", "nope", "--until-quiet", "10"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    let out = env.cmd(&["events", "../x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
}
