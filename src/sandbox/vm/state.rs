//! What an attachment changed, recorded on the kernel object it created (the TAP or macvtap's
//! `IFLA_IFALIAS`, at most 255 bytes), so detach and recovery work from the kernel alone after
//! an engine restart — no state file to lose or go stale.
//!
//! Format (space-separated tokens): `nsvm1 m=<tc|br|mv> if=<ifindex> q=<queues> v=<0|1>`
//! then, where the mode changed them, `mac=<12 hex>` (the interface's original MAC, the
//! guest's), `br=<bridge ifindex>`, `a=<cidr>,<ifa_flags hex>` per address taken off and
//! `r=<dst>,<gateway|->,<table>,<protocol>,<scope>,<metric|->` per route taken off.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{AttachMode, VmRoute};

/// First token of every alias netsandbox writes on a VM attachment's device.
pub(crate) const MARKER: &str = "nsvm1";
/// `IFALIASZ - 1`.
pub(crate) const MAX_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) mode: AttachMode,
    pub(crate) iface_index: u32,
    pub(crate) queues: u16,
    pub(crate) vnet_hdr: bool,
    pub(crate) mac: Option<[u8; 6]>,
    pub(crate) bridge_index: Option<u32>,
    /// Addresses taken off the interface, with their `IFA_F_*` flags, in their original order.
    pub(crate) addresses: Vec<(IpNet, u32)>,
    pub(crate) routes: Vec<VmRoute>,
}

fn mode_tag(m: AttachMode) -> &'static str {
    match m {
        AttachMode::TcRedirect => "tc",
        AttachMode::Bridge => "br",
        AttachMode::Macvtap => "mv",
    }
}

fn hex_mac(m: &[u8; 6]) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex_mac(s: &str) -> Option<[u8; 6]> {
    if s.len() != 12 || !s.is_ascii() {
        return None;
    }
    let mut m = [0u8; 6];
    for (i, b) in m.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(m)
}

impl State {
    /// The alias text, or `None` when it does not fit in 255 bytes (too many addresses or
    /// routes to record).
    pub(crate) fn encode(&self) -> Option<String> {
        let mut s = format!(
            "{MARKER} m={} if={} q={} v={}",
            mode_tag(self.mode),
            self.iface_index,
            self.queues,
            u8::from(self.vnet_hdr)
        );
        if let Some(m) = &self.mac {
            s += &format!(" mac={}", hex_mac(m));
        }
        if let Some(b) = self.bridge_index {
            s += &format!(" br={b}");
        }
        for (a, f) in &self.addresses {
            s += &format!(" a={a},{f:x}");
        }
        for r in &self.routes {
            let gw = r.gateway.map_or("-".to_owned(), |g| g.to_string());
            let prio = r.priority.map_or("-".to_owned(), |p| p.to_string());
            s += &format!(" r={},{gw},{},{},{},{prio}", r.dst, r.table, r.protocol, r.scope);
        }
        (s.len() <= MAX_LEN).then_some(s)
    }

    /// Decodes an alias; `None` for an alias netsandbox did not write (or cannot read).
    pub(crate) fn decode(alias: &str) -> Option<State> {
        let mut tokens = alias.split(' ');
        if tokens.next()? != MARKER {
            return None;
        }
        let mut st = State {
            mode: AttachMode::TcRedirect,
            iface_index: 0,
            queues: 1,
            vnet_hdr: false,
            mac: None,
            bridge_index: None,
            addresses: Vec::new(),
            routes: Vec::new(),
        };
        let mut have_mode = false;
        for t in tokens {
            let (k, v) = t.split_once('=')?;
            match k {
                "m" => {
                    st.mode = match v {
                        "tc" => AttachMode::TcRedirect,
                        "br" => AttachMode::Bridge,
                        "mv" => AttachMode::Macvtap,
                        _ => return None,
                    };
                    have_mode = true;
                }
                "if" => st.iface_index = v.parse().ok()?,
                "q" => st.queues = v.parse().ok()?,
                "v" => st.vnet_hdr = v == "1",
                "mac" => st.mac = Some(parse_hex_mac(v)?),
                "br" => st.bridge_index = Some(v.parse().ok()?),
                "a" => {
                    let (cidr, flags) = v.split_once(',')?;
                    st.addresses.push((cidr.parse().ok()?, u32::from_str_radix(flags, 16).ok()?));
                }
                "r" => {
                    let f: Vec<&str> = v.split(',').collect();
                    let [dst, gw, table, proto, scope, prio] = f.as_slice() else { return None };
                    let gateway = match *gw {
                        "-" => None,
                        g => Some(g.parse::<IpAddr>().ok()?),
                    };
                    let priority = match *prio {
                        "-" => None,
                        p => Some(p.parse().ok()?),
                    };
                    st.routes.push(VmRoute {
                        dst: dst.parse().ok()?,
                        gateway,
                        table: table.parse().ok()?,
                        protocol: proto.parse().ok()?,
                        scope: scope.parse().ok()?,
                        priority,
                    });
                }
                _ => {} // a later version's field: ignore
            }
        }
        (have_mode && st.iface_index != 0 && st.queues >= 1).then_some(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bridge_state() {
        let st = State {
            mode: AttachMode::Bridge,
            iface_index: 12,
            queues: 4,
            vnet_hdr: true,
            mac: Some([0x02, 0x42, 0xc6, 0x12, 0, 2]),
            bridge_index: Some(14),
            addresses: vec![("198.18.0.2/16".parse().unwrap(), 0x80), ("2001:db8::2/64".parse().unwrap(), 0x82)],
            routes: vec![
                VmRoute {
                    dst: "0.0.0.0/0".parse().unwrap(),
                    gateway: Some("198.18.255.254".parse().unwrap()),
                    table: 254,
                    protocol: 3,
                    scope: 0,
                    priority: None,
                },
                VmRoute {
                    dst: "::/0".parse().unwrap(),
                    gateway: Some("2001:db8::1".parse().unwrap()),
                    table: 254,
                    protocol: 3,
                    scope: 0,
                    priority: Some(1024),
                },
            ],
        };
        let text = st.encode().unwrap();
        assert!(text.len() <= MAX_LEN, "{}", text.len());
        assert_eq!(State::decode(&text), Some(st));
    }

    #[test]
    fn foreign_or_broken_aliases_are_not_states() {
        for a in ["", "netsandbox created", "nsvm1", "nsvm1 m=xx if=3", "nsvm1 m=tc if=0", "nsvm1 m=tc if=3 a=bad,0"] {
            assert_eq!(State::decode(a), None, "{a:?}");
        }
        assert!(State::decode("nsvm1 m=tc if=3 q=2 v=1 future=1").is_some());
    }

    #[test]
    fn too_much_state_does_not_encode() {
        let mut st = State::decode("nsvm1 m=mv if=3").unwrap();
        st.addresses = (0..20).map(|i| (format!("2001:db8::{i:x}/64").parse().unwrap(), 0x82)).collect();
        assert_eq!(st.encode(), None);
    }
}
