//! CNI errors: the spec's well-known codes and the JSON a plugin prints on failure.

use std::fmt;

use serde_json::{Value, json};

/// The spec's error codes (0–99 well-known; 100 and up are the plugin's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: incompatible CNI version.
    IncompatibleVersion,
    /// 2: unsupported field in the network configuration (the message names it).
    UnsupportedField,
    /// 3: container unknown or does not exist.
    UnknownContainer,
    /// 4: invalid necessary environment variables (`CNI_COMMAND`, `CNI_CONTAINERID`, ...).
    InvalidEnvironment,
    /// 5: I/O failure (e.g. reading stdin, the IPAM store).
    Io,
    /// 6: failed to decode content (stdin is not valid JSON of the expected shape).
    Decode,
    /// 7: invalid network configuration (values that decode but make no sense).
    InvalidNetworkConfig,
    /// 11: try again later (a transient condition such as a lock held too long).
    TryAgainLater,
    /// 50: the plugin is not available (STATUS): ADDs would fail.
    NotAvailable,
    /// 51: not available, and existing containers on the network may have lost connectivity.
    NotAvailableLimitedConnectivity,
    /// 100 and up: netsandbox's own failures (kernel refusals, delegate failures).
    Plugin(u32),
}

/// A kernel or system failure inside the plugin (not the caller's input).
pub const CODE_INTERNAL: u32 = 100;

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::Io => 5,
            ErrorCode::Decode => 6,
            ErrorCode::InvalidNetworkConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::NotAvailable => 50,
            ErrorCode::NotAvailableLimitedConnectivity => 51,
            ErrorCode::Plugin(c) => c,
        }
    }

    /// The code for a number (a delegate's error). Unknown well-known numbers below 100 are kept
    /// as `Plugin(n)` so they round-trip.
    pub fn from_code(n: u32) -> ErrorCode {
        match n {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::Io,
            6 => ErrorCode::Decode,
            7 => ErrorCode::InvalidNetworkConfig,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::NotAvailable,
            51 => ErrorCode::NotAvailableLimitedConnectivity,
            n => ErrorCode::Plugin(n),
        }
    }
}

/// A CNI error: printed as `{cniVersion, code, msg, details}` on stdout with a non-zero exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniError {
    /// The spec code.
    pub code: ErrorCode,
    /// A short message.
    pub msg: String,
    /// A longer explanation, when there is one.
    pub details: Option<String>,
}

impl CniError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> CniError {
        CniError { code, msg: msg.into(), details: None }
    }

    /// Adds the long explanation.
    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = Some(details.into());
        self
    }

    /// The error JSON for `cni_version` (the configuration's version, or the latest when it was
    /// not known).
    pub fn to_json(&self, cni_version: &str) -> Value {
        let mut v = json!({ "cniVersion": cni_version, "code": self.code.code(), "msg": self.msg });
        if let Some(d) = &self.details {
            v["details"] = Value::String(d.clone());
        }
        v
    }

    /// Parses an error a delegate printed (`code` and `msg` required).
    pub fn from_json(v: &Value) -> Option<CniError> {
        let code = v.get("code")?.as_u64()?;
        let msg = v.get("msg")?.as_str()?.to_owned();
        let details = v.get("details").and_then(Value::as_str).map(str::to_owned);
        Some(CniError { code: ErrorCode::from_code(u32::try_from(code).ok()?), msg, details })
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CNI error {}: {}", self.code.code(), self.msg)?;
        if let Some(d) = &self.details {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

impl From<crate::Error> for CniError {
    /// Input the crate rejected is an invalid network configuration (code 7); a missing object
    /// is reported as such; everything else is a plugin failure (code 100) carrying the crate's
    /// message (operation, object, namespace, errno, the kernel's extended-ACK text).
    fn from(e: crate::Error) -> CniError {
        let code =
            if e.is_invalid_input() { ErrorCode::InvalidNetworkConfig } else { ErrorCode::Plugin(CODE_INTERNAL) };
        CniError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for n in [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 123] {
            assert_eq!(ErrorCode::from_code(n).code(), n);
        }
    }

    #[test]
    fn json_shape() {
        let e = CniError::new(ErrorCode::InvalidEnvironment, "CNI_COMMAND missing").with_details("set it");
        let v = e.to_json("1.1.0");
        assert_eq!(v, json!({"cniVersion": "1.1.0", "code": 4, "msg": "CNI_COMMAND missing", "details": "set it"}));
        assert_eq!(CniError::from_json(&v), Some(e));
        let plain = CniError::new(ErrorCode::Decode, "x").to_json("0.4.0");
        assert!(plain.get("details").is_none());
        assert_eq!(CniError::from_json(&json!({"code": "x"})), None);
    }
}
