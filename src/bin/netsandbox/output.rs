//! Text and JSON renderings. JSON is built here with `json!` so the library's types stay free of
//! serde.

use netsandbox::Error;
use std::net::IpAddr;

use netsandbox::sandbox::{
    AddressDetail, Inspection, InterfaceInfo, LinkDetail, RouteDetail, SandboxInfo, StaticRoute, Statistics,
    TweakReport, protocol_name, route_type_name, scope_name,
};
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

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() { "inet" } else { "inet6" }
}

fn address_json(a: &AddressDetail) -> Value {
    json!({
        "address": a.addr.to_string(),
        "local": a.addr.addr().to_string(),
        "prefixlen": a.addr.prefix_len(),
        "family": family(&a.addr.addr()),
        "scope": scope_name(a.scope),
        "link_local": a.link_local,
        "kernel_made": a.kernel_made,
        "nodad": a.nodad(),
        "tentative": a.tentative(),
    })
}

pub fn table_route_json(r: &RouteDetail) -> Value {
    json!({
        "destination": r.dst.to_string(),
        "family": family(&r.dst.addr()),
        "default": r.dst.prefix_len() == 0,
        "via": r.gateway.map(|g| g.to_string()),
        "dev": r.dev,
        "metric": r.metric,
        // As iproute2 prints it (a name, or the number), and the number itself.
        "protocol": protocol_name(r.protocol).map_or_else(|| r.protocol.to_string(), str::to_owned),
        "protocol_id": r.protocol,
        "scope": scope_name(r.scope),
        "type": route_type_name(r.kind),
        "prefsrc": r.prefsrc.map(|p| p.to_string()),
    })
}

fn link_json(l: &LinkDetail, info: Option<&InterfaceInfo>, routes: &[RouteDetail]) -> Value {
    json!({
        "name": l.name,
        "ifindex": l.index,
        "kind": l.kind,
        "up": l.up,
        "lower_up": l.lower_up,
        "oper_state": l.oper_state.name(),
        "mac": mac(&l.mac),
        "mtu": l.mtu,
        "master": l.master,
        "peer": l.peer.map(|p| json!({ "ifindex": p.index, "netnsid": p.netnsid })),
        "vxlan_id": l.vxlan_id,
        "origin_name": info.and_then(|i| i.origin_name.clone()),
        "created": info.is_some_and(|i| i.created),
        // What was configured (global addresses); every address, link-local ones flagged, below.
        "addresses": info.map(|i| strings(&i.addresses)).unwrap_or_default(),
        "all_addresses": l.addresses.iter().map(address_json).collect::<Vec<_>>(),
        "routes": routes.iter().filter(|r| r.dev.as_deref() == Some(l.name.as_str())).map(table_route_json).collect::<Vec<_>>(),
        "statistics": stats_json(&l.stats),
    })
}

/// The engine's view (`info`) and the kernel's (`inspect`) of one sandbox, as one document.
pub fn inspect_json(name: &str, info: &SandboxInfo, k: &Inspection) -> Value {
    let by_name = |n: &str| info.interfaces.iter().find(|i| i.name == n);
    let mut interfaces: Vec<&LinkDetail> = k.links.iter().filter(|l| l.kind != "loopback").collect();
    interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    let neighbors: Vec<Value> = k
        .neighbors
        .iter()
        .map(|n| {
            json!({
                "ip": n.ip.map(|i| i.to_string()),
                "mac": mac(&n.mac),
                "link": n.dev,
                "family": n.family,
                "state": n.state_names(),
                "permanent": n.state & 0x80 != 0,
            })
        })
        .collect();
    json!({
        "name": name,
        "key": info.key,
        "interfaces": interfaces.iter().map(|l| link_json(l, by_name(&l.name), &k.routes)).collect::<Vec<_>>(),
        "loopback": k.links.iter().find(|l| l.kind == "loopback").map(|l| link_json(l, None, &k.routes)),
        "gateway": info.gateway.map(|g| g.to_string()),
        "gateway6": info.gateway6.map(|g| g.to_string()),
        "routes": k.routes.iter().map(table_route_json).collect::<Vec<_>>(),
        "static_routes": info.static_routes.iter().map(route_json).collect::<Vec<_>>(),
        "neighbors": neighbors,
        "loopback_addresses": strings(&info.loopback_addresses),
    })
}

pub fn inspect_text(name: &str, info: &SandboxInfo, k: &Inspection) -> String {
    let mut s = format!("sandbox {name} ({})\n", info.key);
    for l in &k.links {
        s += &format!("  {}: {} {} {}", l.index, l.name, l.kind, if l.up { "up" } else { "down" });
        s += &format!(" state {}", l.oper_state.name());
        if let Some(o) = info.interfaces.iter().find(|i| i.name == l.name).and_then(|i| i.origin_name.as_deref()) {
            s += &format!(" (from {o})");
        }
        if let Some(m) = &l.mac {
            s += &format!(" mac {}", format_mac(m));
        }
        if let Some(m) = l.mtu {
            s += &format!(" mtu {m}");
        }
        if let Some(m) = &l.master {
            s += &format!(" master {m}");
        }
        if let Some(p) = &l.peer {
            s += &format!(" peer ifindex {}", p.index);
            if let Some(id) = p.netnsid {
                s += &format!(" netnsid {id}");
            }
        }
        s += "\n";
        for a in &l.addresses {
            let ll = if a.link_local { " link-local" } else { "" };
            s += &format!("    address {} scope {}{ll}\n", a.addr, scope_name(a.scope));
        }
        let st = &l.stats;
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
    for r in &k.routes {
        s += &format!("  route {}", r.dst);
        if let Some(g) = r.gateway {
            s += &format!(" via {g}");
        }
        if let Some(d) = &r.dev {
            s += &format!(" dev {d}");
        }
        let proto = protocol_name(r.protocol).map_or_else(|| r.protocol.to_string(), str::to_owned);
        s += &format!(" proto {proto} scope {}", scope_name(r.scope));
        if let Some(m) = r.metric {
            s += &format!(" metric {m}");
        }
        s += "\n";
    }
    for n in &k.neighbors {
        let ip = n.ip.map_or_else(|| "-".to_owned(), |i| i.to_string());
        let lladdr = n.mac.map_or_else(String::new, |m| format!(" lladdr {}", format_mac(&m)));
        s += &format!("  neighbor {ip}{lladdr} dev {} {} {}\n", n.dev, n.family, n.state_names().join(","));
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

/// A VM attachment as JSON.
pub fn vm_json(n: &netsandbox::sandbox::VmNetwork) -> Value {
    let routes: Vec<Value> = n
        .routes
        .iter()
        .map(|r| {
            json!({
                "dst": r.dst.to_string(),
                "gateway": r.gateway.map(|g| g.to_string()),
                "table": r.table,
                "protocol": r.protocol,
                "scope": r.scope,
                "metric": r.priority,
            })
        })
        .collect();
    json!({
        "iface": n.iface,
        "iface_index": n.iface_index,
        "mode": n.mode.to_string(),
        "tap": n.tap,
        "tap_index": n.tap_index,
        "bridge": n.bridge,
        "guest_mac": format_mac(&n.guest_mac),
        "mtu": n.mtu,
        "queues": n.queues,
        "vnet_hdr": n.vnet_hdr,
        "addresses": strings(&n.addresses),
        "routes": routes,
        "dhcp_server": n.dhcp_server.map(|a| a.to_string()),
    })
}

/// A VM attachment as text.
pub fn vm_text(n: &netsandbox::sandbox::VmNetwork) -> String {
    let mut s = format!(
        "{} ({}): {} {} queue(s), guest mac {} mtu {}",
        n.iface,
        n.mode,
        n.tap,
        n.queues,
        format_mac(&n.guest_mac),
        n.mtu
    );
    if let Some(b) = &n.bridge {
        s += &format!(", bridge {b}");
    }
    for a in &n.addresses {
        s += &format!("\n  address {a}");
    }
    for r in &n.routes {
        let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
        s += &format!("\n  route {}{via}", r.dst);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_milliseconds_with_three_decimals() {
        assert_eq!(ms(0.000_770_834_999_999_999_9).to_string(), "0.771");
        assert_eq!(ms(1.5).to_string(), "1500.0");
        assert_eq!(ms(0.012_345_6).to_string(), "12.346");
        assert_eq!(ms(f64::NAN), Value::Null);
    }

    #[test]
    fn failures_keep_the_exit_codes() {
        let f = Failure::from(Error::NotFound { kind: "sandbox", name: "x".into() });
        assert_eq!((f.code, f.message.as_str()), (3, "sandbox \"x\" not found"));
        assert_eq!(Failure::from(Error::AlreadyExists { kind: "link", name: "a".into() }).code, 4);
        assert_eq!(Failure::from(Error::NotABridge { name: "v".into(), kind: "veth".into() }).code, 2);
        assert_eq!(Failure::invalid("bad").code, 2);
    }
}
