//! The network configuration on stdin, with the reference `bridge` plugin's keys.

use serde::Deserialize;
use serde_json::Value;

use super::env::is_cni_identifier;
use super::error::{CniError, ErrorCode};
use super::result::{CniResult, Dns};
use super::version::CniVersion;
use crate::validate;

/// The `ipam` section: its `type` names the IPAM plugin; the rest belongs to that plugin.
#[derive(Debug, Clone, PartialEq)]
pub struct IpamConf {
    /// The IPAM plugin's executable name, or `netsandbox` for the built-in allocator.
    pub plugin_type: String,
    /// The whole section as given.
    pub raw: Value,
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
pub struct Attachment {
    /// The container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name in the container.
    pub ifname: String,
}

/// A network configuration, as the runtime passes it on stdin.
///
/// Keys are the reference `bridge` plugin's, so a conflist can swap `"type": "bridge"` for
/// `"type": "netsandbox-cni"`; unknown keys are ignored, as the spec asks.
///
/// Guarantees after [`NetConf::from_slice`]: `cni_version` is supported, `name` follows the
/// spec's grammar, `bridge` is a valid interface name, `mtu` is in 68..=65535, MACs parse to
/// unicast addresses, and `prev_result` (if any) is a valid result.
#[derive(Debug, Clone, PartialEq)]
pub struct NetConf {
    /// The spec version of this configuration (and of our output).
    pub cni_version: CniVersion,
    /// The network name.
    pub name: String,
    /// The plugin type (our executable name).
    pub plugin_type: String,
    /// The host bridge (default `cni0`).
    pub bridge: String,
    /// Give the bridge the gateway address (implied by `is_default_gateway`).
    pub is_gateway: bool,
    /// Add a default route via the gateway in the container.
    pub is_default_gateway: bool,
    /// Replace a different address of the same subnet on the bridge instead of failing.
    pub force_address: bool,
    /// MTU of the veth pair (and of the bridge when we create it).
    pub mtu: Option<u32>,
    /// Hairpin mode on the host end's bridge port.
    pub hairpin_mode: bool,
    /// Promiscuous mode on the bridge.
    pub promisc_mode: bool,
    /// Duplicate-address detection for the container's IPv6 addresses (default off).
    pub enable_dad: bool,
    /// SNAT of traffic leaving the subnet.
    pub ip_masq: bool,
    /// The IPAM section.
    pub ipam: Option<IpamConf>,
    /// DNS settings given in the configuration.
    pub dns: Dns,
    /// `runtimeConfig.mac` (capability `mac`).
    pub runtime_mac: Option<[u8; 6]>,
    /// `args.cni.mac`.
    pub args_mac: Option<[u8; 6]>,
    /// The chain's result so far.
    pub prev_result: Option<CniResult>,
    /// `cni.dev/valid-attachments` (GC).
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The whole configuration as received (passed to IPAM delegates unchanged).
    pub raw: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    cni_version: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    plugin_type: Option<String>,
    bridge: Option<String>,
    #[serde(default)]
    is_gateway: bool,
    #[serde(default)]
    is_default_gateway: bool,
    #[serde(default)]
    force_address: bool,
    mtu: Option<u32>,
    #[serde(default)]
    hairpin_mode: bool,
    #[serde(default)]
    promisc_mode: bool,
    #[serde(default, rename = "enabledad")]
    enable_dad: bool,
    #[serde(default)]
    ip_masq: bool,
    ipam: Option<Value>,
    #[serde(default)]
    dns: Dns,
    #[serde(default)]
    runtime_config: WireRuntime,
    #[serde(default)]
    args: WireArgs,
    prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments")]
    valid_attachments: Option<Vec<Attachment>>,
}

#[derive(Deserialize, Default)]
struct WireRuntime {
    mac: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireArgs {
    #[serde(default)]
    cni: WireArgsCni,
}

#[derive(Deserialize, Default)]
struct WireArgsCni {
    mac: Option<String>,
}

fn config_error(msg: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::InvalidNetworkConfig, msg)
}

/// Checks a network name against the spec's grammar (code 7 otherwise). The name is also a
/// directory name in the IPAM store, so this is what keeps it from escaping the data dir.
pub fn check_network_name(name: &str) -> Result<(), CniError> {
    if is_cni_identifier(name) {
        Ok(())
    } else {
        Err(config_error(format!("network name {name:?} is not valid"))
            .with_details("it must start with an alphanumeric character, followed by alphanumerics, '_', '.' or '-'"))
    }
}

fn mac(field: &str, s: &str) -> Result<[u8; 6], CniError> {
    validate::parse_mac(s).and_then(|m| validate::mac_bytes(&m)).map_err(|e| config_error(format!("{field}: {e}")))
}

impl NetConf {
    /// The `cniVersion` of a configuration, read before anything else is checked, so errors
    /// can be reported in it. Falls back to the latest version.
    pub fn version_hint(bytes: &[u8]) -> CniVersion {
        serde_json::from_slice::<Value>(bytes)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str()?.parse().ok())
            .unwrap_or(CniVersion::LATEST)
    }

    /// Parses and validates a configuration. Not JSON, or a key of the wrong type, is code 6;
    /// an unsupported `cniVersion` is code 1; values that make no sense are code 7.
    pub fn from_slice(bytes: &[u8]) -> Result<NetConf, CniError> {
        let raw: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::new(ErrorCode::Decode, format!("network configuration is not JSON: {e}")))?;
        Self::from_value(raw)
    }

    /// Like [`from_slice`](Self::from_slice) for already parsed JSON.
    pub fn from_value(raw: Value) -> Result<NetConf, CniError> {
        if !raw.is_object() {
            return Err(CniError::new(ErrorCode::Decode, "network configuration is not a JSON object"));
        }
        let w: Wire = serde_json::from_value(raw.clone())
            .map_err(|e| CniError::new(ErrorCode::Decode, format!("network configuration: {e}")))?;
        let version = w
            .cni_version
            .as_deref()
            .ok_or_else(|| CniError::new(ErrorCode::IncompatibleVersion, "network configuration has no cniVersion"))?;
        let cni_version: CniVersion = version.parse()?;
        let name = w.name.ok_or_else(|| config_error("network configuration has no name"))?;
        check_network_name(&name)?;
        let bridge = w.bridge.unwrap_or_else(|| "cni0".to_owned());
        validate::ifname(&bridge).map_err(|e| config_error(format!("bridge: {e}")))?;
        if let Some(m) = w.mtu
            && !(68..=65535).contains(&m)
        {
            return Err(config_error(format!("mtu {m} out of range 68..=65535")));
        }
        let ipam = match w.ipam {
            None => None,
            Some(v) if v.as_object().is_some_and(|o| o.is_empty()) => None,
            Some(v) => {
                let t = v.get("type").and_then(Value::as_str).ok_or_else(|| config_error("ipam has no type"))?;
                if t.is_empty() || t.contains('/') || t == "." || t == ".." {
                    return Err(config_error(format!("ipam type {t:?} is not a plugin name")));
                }
                Some(IpamConf { plugin_type: t.to_owned(), raw: v.clone() })
            }
        };
        let prev_result = match w.prev_result {
            None | Some(Value::Null) => None,
            Some(mut v) => {
                // The runtime's prevResult is in the configuration's version.
                if v.get("cniVersion").is_none()
                    && let Some(o) = v.as_object_mut()
                {
                    o.insert("cniVersion".into(), Value::String(cni_version.as_str().into()));
                }
                Some(CniResult::from_json(&v)?)
            }
        };
        Ok(NetConf {
            cni_version,
            name,
            plugin_type: w.plugin_type.unwrap_or_default(),
            bridge,
            is_gateway: w.is_gateway || w.is_default_gateway,
            is_default_gateway: w.is_default_gateway,
            force_address: w.force_address,
            mtu: w.mtu,
            hairpin_mode: w.hairpin_mode,
            promisc_mode: w.promisc_mode,
            enable_dad: w.enable_dad,
            ip_masq: w.ip_masq,
            ipam,
            dns: w.dns,
            runtime_mac: w.runtime_config.mac.as_deref().map(|m| mac("runtimeConfig.mac", m)).transpose()?,
            args_mac: w.args.cni.mac.as_deref().map(|m| mac("args.cni.mac", m)).transpose()?,
            prev_result,
            valid_attachments: w.valid_attachments,
            raw,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "testnet",
            "type": "netsandbox-cni",
            "bridge": "nsbr0",
            "isDefaultGateway": true,
            "mtu": 1450,
            "hairpinMode": true,
            "runtimeConfig": {"mac": "02:11:22:33:44:55"},
            "args": {"cni": {"mac": "02:11:22:33:44:66"}, "labels": {"x": "y"}},
            "someFutureKey": {"ignored": true},
            "ipam": {"type": "host-local", "subnet": "198.18.0.0/16"}
        })
    }

    #[test]
    fn parses_bridge_keys() {
        let c = NetConf::from_value(base()).unwrap();
        assert_eq!(c.cni_version, CniVersion::V1_0_0);
        assert_eq!(c.bridge, "nsbr0");
        assert!(c.is_gateway && c.is_default_gateway && c.hairpin_mode);
        assert!(!c.promisc_mode && !c.ip_masq && !c.enable_dad);
        assert_eq!(c.mtu, Some(1450));
        assert_eq!(c.runtime_mac, Some([2, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!(c.args_mac, Some([2, 0x11, 0x22, 0x33, 0x44, 0x66]));
        assert_eq!(c.ipam.unwrap().plugin_type, "host-local");
        let d = NetConf::from_value(json!({"cniVersion": "0.4.0", "name": "n"})).unwrap();
        assert_eq!(d.bridge, "cni0");
        assert!(d.ipam.is_none());
    }

    #[test]
    fn prev_result_and_attachments() {
        let mut v = base();
        v["prevResult"] = json!({"ips": [{"version": "4", "address": "198.18.0.9/16"}]});
        v["cni.dev/valid-attachments"] = json!([{"containerID": "a", "ifname": "eth0"}]);
        let c = NetConf::from_value(v).unwrap();
        assert_eq!(c.prev_result.unwrap().ips.len(), 1);
        assert_eq!(c.valid_attachments.unwrap()[0].ifname, "eth0");
    }

    #[test]
    fn error_codes() {
        let code = |f: &dyn Fn(&mut Value)| {
            let mut v = base();
            f(&mut v);
            NetConf::from_value(v).unwrap_err().code
        };
        assert_eq!(NetConf::from_slice(b"{not json").unwrap_err().code, ErrorCode::Decode);
        assert_eq!(NetConf::from_slice(b"[1]").unwrap_err().code, ErrorCode::Decode);
        assert_eq!(code(&|v| v["mtu"] = json!("big")), ErrorCode::Decode);
        assert_eq!(code(&|v| v["isGateway"] = json!("yes")), ErrorCode::Decode);
        assert_eq!(code(&|v| v["cniVersion"] = json!("0.2.0")), ErrorCode::IncompatibleVersion);
        assert_eq!(code(&|v| drop(v.as_object_mut().unwrap().remove("cniVersion"))), ErrorCode::IncompatibleVersion);
        assert_eq!(code(&|v| drop(v.as_object_mut().unwrap().remove("name"))), ErrorCode::InvalidNetworkConfig);
        assert_eq!(code(&|v| v["name"] = json!("../etc")), ErrorCode::InvalidNetworkConfig);
        assert_eq!(code(&|v| v["bridge"] = json!("a-bridge-name-too-long")), ErrorCode::InvalidNetworkConfig);
        assert_eq!(code(&|v| v["mtu"] = json!(20)), ErrorCode::InvalidNetworkConfig);
        assert_eq!(code(&|v| v["runtimeConfig"]["mac"] = json!("01:00:00:00:00:01")), ErrorCode::InvalidNetworkConfig);
        assert_eq!(code(&|v| v["ipam"] = json!({"subnet": "198.18.0.0/16"})), ErrorCode::InvalidNetworkConfig);
        assert_eq!(code(&|v| v["ipam"]["type"] = json!("../../bin/sh")), ErrorCode::InvalidNetworkConfig);
        assert_eq!(code(&|v| v["prevResult"] = json!({"ips": [{"address": "x"}]})), ErrorCode::Decode);
    }
}
