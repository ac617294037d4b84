//! Text and JSON renderings. JSON is built here with `json!` so the library's types stay free of
//! serde.

use netsandbox::Error;
use netsandbox::sandbox::{NeighFamily, SandboxInfo, StaticRoute, Statistics, TweakReport};
use netsandbox::validate::format_mac;
use serde_json::{Value, json};

/// A failed command: its exit code and one line saying what went wrong.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    /// Bad input (exit 2) with a message of our own.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure { code: 2, message: message.into() }
    }

    /// Prints the message on stderr (and, with `--json`, a JSON object on stdout, so a script
    /// reading stdout always gets JSON) and returns the exit code.
    pub fn report(&self, json: bool) -> i32 {
        eprintln!("netsandbox: {}", self.message);
        if json {
            let kind = match self.code {
                2 => "invalid_input",
                3 => "not_found",
                4 => "already_exists",
                _ => "failed",
            };
            println!(
                "{}",
                json!({ "ok": false, "error": { "code": self.code, "kind": kind, "message": self.message } })
            );
        }
        self.code
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure { code: exit_code(&e), message: e.to_string() }
    }
}

/// Distinct exit codes so scripts can tell bad input from a missing or duplicate sandbox.
pub fn exit_code(e: &Error) -> i32 {
    if e.is_invalid_input() {
        2
    } else if e.is_not_found() {
        3
    } else if e.is_already_exists() {
        4
    } else {
        1
    }
}

/// Milliseconds from seconds, rounded to microseconds, as a JSON number (no float noise).
pub fn ms(seconds: f64) -> Value {
    let ms = (seconds * 1e6).round() / 1e3;
    serde_json::Number::from_f64(ms).map_or(Value::Null, Value::Number)
}

/// Where results go: text for people, or one JSON document on stdout.
#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints a command's result: `value` as JSON, or `text` (nothing if empty).
    pub fn done(&self, value: Value, text: &str) {
        self.value(value, || text.to_owned());
    }

    /// Like [`done`](Self::done), rendering the text only when it is wanted.
    pub fn value(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!("{value}");
        } else {
            let t = text();
            if !t.is_empty() {
                println!("{t}");
            }
        }
    }
}

fn mac(m: &Option<[u8; 6]>) -> Value {
    m.map_or(Value::Null, |m| json!(format_mac(&m)))
}

fn strings<T: ToString>(v: &[T]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

pub fn stats_json(s: &Statistics) -> Value {
    json!({
        "rx_bytes": s.rx_bytes, "tx_bytes": s.tx_bytes,
        "rx_packets": s.rx_packets, "tx_packets": s.tx_packets,
        "rx_errors": s.rx_errors, "tx_errors": s.tx_errors,
        "rx_dropped": s.rx_dropped, "tx_dropped": s.tx_dropped,
    })
}

pub fn route_json(r: &StaticRoute) -> Value {
    json!({
        "destination": r.dst.to_string(),
        "via": r.gateway.map(|g| g.to_string()),
        "dev": r.interface,
    })
}

pub fn route_text(r: &StaticRoute) -> String {
    let mut s = r.dst.to_string();
    if let Some(g) = r.gateway {
        s += &format!(" via {g}");
    }
    if let Some(d) = &r.interface {
        s += &format!(" dev {d}");
    }
    s
}

/// `stats[i]` are the counters of `info.interfaces[i]`.
pub fn inspect_json(name: &str, info: &SandboxInfo, stats: &[Statistics]) -> Value {
    let interfaces: Vec<Value> = info
        .interfaces
        .iter()
        .zip(stats)
        .map(|(i, s)| {
            json!({
                "name": i.name,
                "origin_name": i.origin_name,
                "created": i.created,
                "mac": mac(&i.mac),
                "mtu": i.mtu,
                "master": i.master,
                "addresses": strings(&i.addresses),
                "routes": strings(&i.routes),
                "statistics": stats_json(s),
            })
        })
        .collect();
    let neighbors: Vec<Value> = info
        .neighbors
        .iter()
        .map(|n| {
            json!({
                "ip": n.ip.to_string(),
                "mac": format_mac(&n.mac),
                "link": n.link_name,
                "family": match n.family { NeighFamily::Ip => "ip", NeighFamily::Bridge => "fdb" },
            })
        })
        .collect();
    json!({
        "name": name,
        "key": info.key,
        "interfaces": interfaces,
        "gateway": info.gateway.map(|g| g.to_string()),
        "gateway6": info.gateway6.map(|g| g.to_string()),
        "routes": info.static_routes.iter().map(route_json).collect::<Vec<_>>(),
        "neighbors": neighbors,
        "loopback_addresses": strings(&info.loopback_addresses),
    })
}

pub fn inspect_text(name: &str, info: &SandboxInfo, stats: &[Statistics]) -> String {
    let mut s = format!("sandbox {name} ({})\n", info.key);
    for (i, st) in info.interfaces.iter().zip(stats) {
        s += &format!("  interface {}", i.name);
        if let Some(o) = &i.origin_name {
            s += &format!(" (from {o})");
        }
        if let Some(m) = &i.mac {
            s += &format!(" mac {}", format_mac(m));
        }
        if let Some(m) = i.mtu {
            s += &format!(" mtu {m}");
        }
        if let Some(m) = &i.master {
            s += &format!(" master {m}");
        }
        s += "\n";
        for a in &i.addresses {
            s += &format!("    address {a}\n");
        }
        for r in &i.routes {
            s += &format!("    route {r} scope link\n");
        }
        s += &format!(
            "    rx {} packets {} bytes, tx {} packets {} bytes, errors {}/{}, dropped {}/{}\n",
            st.rx_packets,
            st.rx_bytes,
            st.tx_packets,
            st.tx_bytes,
            st.rx_errors,
            st.tx_errors,
            st.rx_dropped,
            st.tx_dropped
        );
    }
    if let Some(g) = info.gateway {
        s += &format!("  gateway {g}\n");
    }
    if let Some(g) = info.gateway6 {
        s += &format!("  gateway6 {g}\n");
    }
    for r in &info.static_routes {
        s += &format!("  route {}\n", route_text(r));
    }
    for n in &info.neighbors {
        let fdb = if n.family == NeighFamily::Bridge { " fdb" } else { "" };
        s += &format!("  neighbor {} lladdr {} dev {}{fdb}\n", n.ip, format_mac(&n.mac), n.link_name);
    }
    for a in &info.loopback_addresses {
        s += &format!("  loopback address {a}\n");
    }
    s.trim_end().to_owned()
}

pub fn tweaks_json(r: &TweakReport) -> Value {
    json!({ "written": r.written, "unchanged": r.unchanged, "missing": r.missing, "read_only": r.read_only })
}

pub fn tweaks_text(r: &TweakReport) -> String {
    let mut s = String::new();
    for (what, keys) in
        [("written", &r.written), ("unchanged", &r.unchanged), ("missing", &r.missing), ("read-only", &r.read_only)]
    {
        for k in keys {
            s += &format!("{what:<10} {k}\n");
        }
    }
    s.trim_end().to_owned()
}
