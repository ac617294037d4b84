//! The CNI result, version-independent: parsed from any supported version, written in the
//! version a runtime asked for.
//!
//! One set of types for every version: 1.1 is a superset of the older results, so older input
//! simply leaves the 1.1 fields empty, and [`CniResult::to_json`] drops what the target version
//! does not know (and adds `ips[].version` before 1.0.0). VM sandboxes (issue #16) configure
//! links from these same types.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{CniError, ErrorCode};
use super::version::CniVersion;

/// An interface a plugin created or configured.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interface {
    /// Interface name (inside `sandbox` when that is set, else on the host).
    pub name: String,
    /// Hardware address, `aa:bb:cc:dd:ee:ff`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Path of the network namespace the interface is in; `None` for host-side interfaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// Path of a socket (vhost-user and similar, 1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<String>,
    /// PCI address of a device (1.1.0).
    #[serde(default, rename = "pciID", skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// An IP address assigned to an interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// The address with its prefix length, e.g. `198.18.0.5/16`.
    pub address: IpNet,
    /// The default gateway of this address's subnet, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// Index into [`CniResult::interfaces`]; IPAM plugins leave it unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route to add in the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination network.
    pub dst: IpNet,
    /// Next hop; `None` means the default gateway of the matching address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    /// Route MTU (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// TCP advertised MSS (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    /// Route metric (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Routing table (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    /// Route scope, `rtm_scope` (1.1.0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u8>,
}

impl Route {
    /// A route to `dst` via `gw` (or the default gateway when `None`).
    pub fn new(dst: IpNet, gw: Option<IpAddr>) -> Route {
        Route { dst, gw, mtu: None, advmss: None, priority: None, table: None, scope: None }
    }
}

/// DNS settings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers, in priority order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// The local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.nameservers.is_empty() && self.domain.is_none() && self.search.is_empty() && self.options.is_empty()
    }
}

/// A CNI result (also what IPAM plugins return, without interfaces).
///
/// Guarantees after [`from_json`](Self::from_json): every `ips[].interface` indexes
/// `interfaces`, and every `ips[].gateway` is of the address's family.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// The version the result was read in (or is meant for).
    #[serde(skip)]
    pub cni_version: CniVersion,
    /// Interfaces created or configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<IpConfig>,
    /// Routes to add.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings.
    #[serde(default, skip_serializing_if = "Dns::is_empty")]
    pub dns: Dns,
}

impl Default for CniResult {
    fn default() -> Self {
        CniResult {
            cni_version: CniVersion::LATEST,
            interfaces: Vec::new(),
            ips: Vec::new(),
            routes: Vec::new(),
            dns: Dns::default(),
        }
    }
}

fn decode(msg: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::Decode, msg)
}

impl CniResult {
    /// Parses a result of any supported version. An unsupported `cniVersion` is code 1; a
    /// shape that does not decode, an `interface` index out of range, or an `ips[].version`
    /// that contradicts the address is code 6.
    pub fn from_json(v: &Value) -> Result<CniResult, CniError> {
        let version = match v.get("cniVersion") {
            Some(Value::String(s)) => s.parse::<CniVersion>()?,
            Some(_) => return Err(decode("result: cniVersion is not a string")),
            None => return Err(CniError::new(ErrorCode::IncompatibleVersion, "result has no cniVersion")),
        };
        if v.get("ip4").is_some() || v.get("ip6").is_some() {
            return Err(CniError::new(ErrorCode::IncompatibleVersion, "result uses the 0.2.0 ip4/ip6 format"));
        }
        let mut r: CniResult = serde_json::from_value(v.clone()).map_err(|e| decode(format!("result: {e}")))?;
        r.cni_version = version;
        if let Some(ips) = v.get("ips").and_then(Value::as_array) {
            for (ip, raw) in r.ips.iter().zip(ips) {
                let want = if ip.address.addr().is_ipv4() { "4" } else { "6" };
                match raw.get("version") {
                    None => {}
                    Some(Value::String(s)) if s == want => {}
                    Some(other) => {
                        return Err(decode(format!("result: ips[] version {other} does not match {}", ip.address)));
                    }
                }
            }
        }
        r.check()?;
        Ok(r)
    }

    /// Parses result JSON text.
    pub fn from_slice(bytes: &[u8]) -> Result<CniResult, CniError> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| decode(format!("result is not JSON: {e}")))?;
        Self::from_json(&v)
    }

    /// Checks the cross-references ([`CniResult`]'s guarantees).
    pub fn check(&self) -> Result<(), CniError> {
        for ip in &self.ips {
            if let Some(i) = ip.interface
                && i >= self.interfaces.len()
            {
                return Err(decode(format!(
                    "result: address {} names interface {i} of {}",
                    ip.address,
                    self.interfaces.len()
                )));
            }
            if let Some(gw) = ip.gateway
                && gw.is_ipv4() != ip.address.addr().is_ipv4()
            {
                return Err(decode(format!("result: gateway {gw} is not of the family of {}", ip.address)));
            }
        }
        Ok(())
    }

    /// The JSON for `version`: fields the version does not define are left out, and before
    /// 1.0.0 each IP carries `version` ("4" or "6").
    pub fn to_json(&self, version: CniVersion) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        let Some(obj) = v.as_object_mut() else { return Value::Null };
        obj.insert("cniVersion".into(), Value::String(version.as_str().into()));
        if !version.is_1_1() {
            for i in obj.get_mut("interfaces").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(o) = i.as_object_mut() {
                    for k in ["mtu", "socketPath", "pciID"] {
                        o.remove(k);
                    }
                }
            }
            for r in obj.get_mut("routes").and_then(Value::as_array_mut).into_iter().flatten() {
                if let Some(o) = r.as_object_mut() {
                    for k in ["mtu", "advmss", "priority", "table", "scope"] {
                        o.remove(k);
                    }
                }
            }
        }
        if version.has_ip_version() {
            for ip in obj.get_mut("ips").and_then(Value::as_array_mut).into_iter().flatten() {
                let fam = match ip.get("address").and_then(Value::as_str) {
                    Some(a) if a.contains(':') => "6",
                    _ => "4",
                };
                if let Some(o) = ip.as_object_mut() {
                    o.insert("version".into(), Value::String(fam.into()));
                }
            }
        }
        v
    }

    /// This result converted to `version` (what a plugin prints): the data is the same, only
    /// the version it will be written as changes.
    pub fn convert(&self, version: CniVersion) -> CniResult {
        let mut r = self.clone();
        r.cni_version = version;
        r
    }

    /// `prev` (the chain's result so far) with `ours` merged in: our interfaces are appended and
    /// our IPs' interface indices shifted to match; routes appended (without duplicates); DNS
    /// from `ours` unless empty.
    pub fn merged(prev: &CniResult, ours: &CniResult) -> CniResult {
        let mut out = prev.clone();
        let base = out.interfaces.len();
        out.interfaces.extend(ours.interfaces.iter().cloned());
        out.ips.extend(ours.ips.iter().map(|ip| IpConfig { interface: ip.interface.map(|i| i + base), ..ip.clone() }));
        for r in &ours.routes {
            if !out.routes.contains(r) {
                out.routes.push(r.clone());
            }
        }
        if !ours.dns.is_empty() {
            out.dns = ours.dns.clone();
        }
        out.cni_version = ours.cni_version;
        out
    }

    /// The index of the interface named `name` inside `sandbox` (`None`: on the host).
    pub fn interface_index(&self, name: &str, sandbox: Option<&str>) -> Option<usize> {
        self.interfaces.iter().position(|i| i.name == name && i.sandbox.as_deref() == sandbox)
    }

    /// The addresses assigned to interface `index`.
    pub fn ips_of(&self, index: usize) -> impl Iterator<Item = &IpConfig> {
        self.ips.iter().filter(move |ip| ip.interface == Some(index))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> Value {
        json!({
            "cniVersion": "1.1.0",
            "interfaces": [
                {"name": "cni0", "mac": "02:00:00:00:00:01"},
                {"name": "veth1234abcd", "mac": "02:00:00:00:00:02", "mtu": 1500},
                {"name": "eth0", "mac": "02:00:00:00:00:03", "sandbox": "/run/netns/x", "pciID": "0000:00:01.0"}
            ],
            "ips": [
                {"address": "198.18.0.5/16", "gateway": "198.18.0.1", "interface": 2},
                {"address": "2001:db8::5/64", "gateway": "2001:db8::1", "interface": 2}
            ],
            "routes": [{"dst": "0.0.0.0/0", "gw": "198.18.0.1", "mtu": 1400, "table": 100}],
            "dns": {"nameservers": ["198.18.0.1"]}
        })
    }

    #[test]
    fn parse_1_1_and_write_every_version() {
        let r = CniResult::from_json(&sample()).unwrap();
        assert_eq!(r.cni_version, CniVersion::V1_1_0);
        assert_eq!(r.ips[1].address, "2001:db8::5/64".parse::<IpNet>().unwrap());
        assert_eq!(r.to_json(CniVersion::V1_1_0), sample());

        let old = r.to_json(CniVersion::V0_4_0);
        assert_eq!(old["cniVersion"], "0.4.0");
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["ips"][1]["version"], "6");
        assert!(old["interfaces"][1].get("mtu").is_none());
        assert!(old["interfaces"][2].get("pciID").is_none());
        assert!(old["routes"][0].get("table").is_none());
        assert_eq!(old["routes"][0]["gw"], "198.18.0.1");

        let v1 = r.to_json(CniVersion::V1_0_0);
        assert!(v1["ips"][0].get("version").is_none());
        assert!(v1["routes"][0].get("mtu").is_none());

        // Old results read back, and convert up.
        let back = CniResult::from_json(&old).unwrap();
        assert_eq!(back.cni_version, CniVersion::V0_4_0);
        assert_eq!(back.ips, r.ips);
        assert_eq!(back.to_json(CniVersion::V1_0_0), v1);
    }

    #[test]
    fn rejects_bad_results() {
        let code = |v: Value| CniResult::from_json(&v).unwrap_err().code;
        let mut s = sample();
        s["ips"][0]["interface"] = json!(3);
        assert_eq!(code(s), ErrorCode::Decode);
        let mut s = sample();
        s["ips"][0]["version"] = json!("6");
        assert_eq!(code(s), ErrorCode::Decode);
        let mut s = sample();
        s["ips"][0]["gateway"] = json!("2001:db8::1");
        assert_eq!(code(s), ErrorCode::Decode);
        let mut s = sample();
        s["ips"][0]["address"] = json!("not an address");
        assert_eq!(code(s), ErrorCode::Decode);
        let mut s = sample();
        s["cniVersion"] = json!("0.2.0");
        assert_eq!(code(s), ErrorCode::IncompatibleVersion);
        assert_eq!(code(json!({"ips": []})), ErrorCode::IncompatibleVersion);
        assert_eq!(
            code(json!({"cniVersion": "0.3.1", "ip4": {"ip": "198.18.0.5/16"}})),
            ErrorCode::IncompatibleVersion
        );
        assert_eq!(CniResult::from_slice(b"{").unwrap_err().code, ErrorCode::Decode);
    }

    #[test]
    fn merge_shifts_interface_indices() {
        let prev = CniResult::from_json(&json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "lo0"}],
            "ips": [{"address": "203.0.113.2/24", "interface": 0}],
            "routes": [{"dst": "203.0.113.0/24"}]
        }))
        .unwrap();
        let ours = CniResult::from_json(&sample()).unwrap();
        let m = CniResult::merged(&prev, &ours);
        assert_eq!(m.interfaces.len(), 4);
        assert_eq!(m.ips[0].interface, Some(0));
        assert_eq!(m.ips[1].interface, Some(3));
        assert_eq!(m.routes.len(), 2);
        assert_eq!(m.interface_index("eth0", Some("/run/netns/x")), Some(3));
        assert_eq!(m.ips_of(3).count(), 2);
        assert!(m.check().is_ok());
    }
}
