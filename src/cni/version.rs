//! CNI specification versions.

use std::fmt;
use std::str::FromStr;

use super::error::{CniError, ErrorCode};

/// A CNI specification version this crate can read and write results for.
///
/// Ordered: a later variant is a later spec. 0.1.0 and 0.2.0 (the `ip4`/`ip6` result format)
/// are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum CniVersion {
    /// 0.3.0: multiple interfaces and IPs; `ips[].version` required.
    V0_3_0,
    /// 0.3.1: 0.3.0 with the `ips` key name fixed.
    V0_3_1,
    /// 0.4.0: adds CHECK and `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: drops `ips[].version`.
    V1_0_0,
    /// 1.1.0 (the default): STATUS and GC; interface `mtu`/`socketPath`/`pciID`, route `mtu`/`advmss`/
    /// `priority`/`table`/`scope`.
    #[default]
    V1_1_0,
}

/// Every version we support, oldest first, as `VERSION` reports them.
pub const SUPPORTED_VERSIONS: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

impl CniVersion {
    /// The newest version we speak.
    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    /// The version string.
    pub fn as_str(self) -> &'static str {
        match self {
            CniVersion::V0_3_0 => "0.3.0",
            CniVersion::V0_3_1 => "0.3.1",
            CniVersion::V0_4_0 => "0.4.0",
            CniVersion::V1_0_0 => "1.0.0",
            CniVersion::V1_1_0 => "1.1.0",
        }
    }

    /// Whether results of this version carry `ips[].version` (before 1.0.0).
    pub fn has_ip_version(self) -> bool {
        self < CniVersion::V1_0_0
    }

    /// Whether this version knows the 1.1 fields (interface mtu/socketPath/pciID, route
    /// mtu/advmss/priority/table/scope) and the STATUS and GC verbs.
    pub fn is_1_1(self) -> bool {
        self >= CniVersion::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CniVersion {
    type Err = CniError;
    /// Parses a supported version; anything else is error code 1 (incompatible version).
    fn from_str(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "0.3.0" => CniVersion::V0_3_0,
            "0.3.1" => CniVersion::V0_3_1,
            "0.4.0" => CniVersion::V0_4_0,
            "1.0.0" => CniVersion::V1_0_0,
            "1.1.0" => CniVersion::V1_1_0,
            other => {
                return Err(CniError::new(
                    ErrorCode::IncompatibleVersion,
                    format!("CNI version {other:?} is not supported"),
                )
                .with_details(format!("supported versions: {}", SUPPORTED_VERSIONS.join(", "))));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_order() {
        for s in SUPPORTED_VERSIONS {
            assert_eq!(s.parse::<CniVersion>().unwrap().as_str(), s);
        }
        assert!(CniVersion::V0_4_0 < CniVersion::V1_0_0);
        assert!(CniVersion::V0_4_0.has_ip_version());
        assert!(!CniVersion::V1_0_0.has_ip_version());
        for bad in ["0.2.0", "0.1.0", "", "1.2.0", "v1.0.0"] {
            assert_eq!(bad.parse::<CniVersion>().unwrap_err().code, ErrorCode::IncompatibleVersion);
        }
    }
}
