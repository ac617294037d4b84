//! The `CNI_*` environment of one plugin call, parsed and validated as the spec says.

use std::path::PathBuf;

use super::error::{CniError, ErrorCode};
use crate::validate;

/// The CNI verb (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach a container to the network.
    Add,
    /// Detach it (best effort, idempotent).
    Del,
    /// Verify an attachment against `prevResult`.
    Check,
    /// Whether the plugin can serve ADDs (1.1.0).
    Status,
    /// Report the supported versions.
    Version,
    /// Release everything not in `cni.dev/valid-attachments` (1.1.0).
    Gc,
}

impl Command {
    /// The verb as the environment spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Version => "VERSION",
            Command::Gc => "GC",
        }
    }

    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            "GC" => Command::Gc,
            _ => return None,
        })
    }
}

/// One plugin call's environment.
///
/// Guarantees after [`Request::from_lookup`]: every variable the command needs is present and
/// valid (`CNI_CONTAINERID` as the spec's id grammar, `CNI_IFNAME` a kernel-valid interface
/// name, `CNI_NETNS` an absolute path, `CNI_ARGS` well-formed `K=V` pairs); otherwise the call
/// fails with code 4 before anything is read from stdin or changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The verb.
    pub command: Command,
    /// `CNI_CONTAINERID` (ADD, DEL, CHECK; optional otherwise).
    pub container_id: Option<String>,
    /// `CNI_NETNS` (ADD, CHECK; optional for DEL).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME` (ADD, DEL, CHECK).
    pub ifname: Option<String>,
    /// `CNI_ARGS` as key/value pairs, in order.
    pub args: Vec<(String, String)>,
    /// `CNI_PATH`, split on `:` (ADD, DEL, CHECK, GC).
    pub path: Vec<PathBuf>,
    /// The raw `CNI_ARGS`, passed on unchanged to delegates.
    pub raw_args: Option<String>,
}

fn invalid(msg: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::InvalidEnvironment, msg)
}

/// Whether `id` matches the spec's grammar for container ids and network names:
/// an alphanumeric character, then alphanumerics, `_`, `.` or `-`.
pub(crate) fn is_cni_identifier(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl Request {
    /// Reads the process environment.
    pub fn from_env() -> Result<Request, CniError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the variables through `get` (the environment, or a map in tests). Empty values
    /// count as unset.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Request, CniError> {
        let get = |k: &str| get(k).filter(|v| !v.is_empty());
        let cmd = get("CNI_COMMAND").ok_or_else(|| invalid("CNI_COMMAND is not set"))?;
        let command = Command::parse(&cmd).ok_or_else(|| {
            invalid(format!("CNI_COMMAND {cmd:?} is not one of ADD, DEL, CHECK, STATUS, VERSION, GC"))
        })?;
        let needs = |var: &str| -> bool {
            match var {
                "CNI_CONTAINERID" | "CNI_IFNAME" => matches!(command, Command::Add | Command::Del | Command::Check),
                "CNI_NETNS" => matches!(command, Command::Add | Command::Check),
                "CNI_PATH" => matches!(command, Command::Add | Command::Del | Command::Check | Command::Gc),
                _ => false,
            }
        };
        let mut req = Request {
            command,
            container_id: None,
            netns: None,
            ifname: None,
            args: Vec::new(),
            path: Vec::new(),
            raw_args: get("CNI_ARGS"),
        };
        if command == Command::Version {
            return Ok(req);
        }
        for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"] {
            if needs(var) && get(var).is_none() {
                return Err(invalid(format!("{var} is required for {} but not set", command.as_str())));
            }
        }
        if let Some(id) = get("CNI_CONTAINERID") {
            if !is_cni_identifier(&id) {
                return Err(invalid(format!("CNI_CONTAINERID {id:?} is not a valid container id")).with_details(
                    "it must start with an alphanumeric character, followed by alphanumerics, '_', '.' or '-'",
                ));
            }
            req.container_id = Some(id);
        }
        if let Some(ns) = get("CNI_NETNS") {
            let p = PathBuf::from(&ns);
            if !p.is_absolute() {
                return Err(invalid(format!("CNI_NETNS {ns:?} is not an absolute path")));
            }
            req.netns = Some(p);
        }
        if let Some(name) = get("CNI_IFNAME") {
            validate::ifname(&name).map_err(|e| invalid(format!("CNI_IFNAME: {e}")))?;
            req.ifname = Some(name);
        }
        if let Some(path) = get("CNI_PATH") {
            req.path = path.split(':').filter(|p| !p.is_empty()).map(PathBuf::from).collect();
        }
        if let Some(args) = &req.raw_args {
            for pair in args.split(';').filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some((k, v)) if !k.is_empty() => req.args.push((k.to_owned(), v.to_owned())),
                    _ => return Err(invalid(format!("CNI_ARGS: {pair:?} is not a KEY=VALUE pair"))),
                }
            }
        }
        Ok(req)
    }

    /// The value of `CNI_ARGS` key `key` (last one wins, as libcni's parser does).
    pub fn arg(&self, key: &str) -> Option<&str> {
        self.args.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The container id (validated present for ADD, DEL, CHECK).
    pub fn container_id(&self) -> Result<&str, CniError> {
        self.container_id.as_deref().ok_or_else(|| invalid("CNI_CONTAINERID is not set"))
    }

    /// The interface name (validated present for ADD, DEL, CHECK).
    pub fn ifname(&self) -> Result<&str, CniError> {
        self.ifname.as_deref().ok_or_else(|| invalid("CNI_IFNAME is not set"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn req(pairs: &[(&str, &str)]) -> Result<Request, CniError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Request::from_lookup(|k| m.get(k).cloned())
    }

    const ADD: [(&str, &str); 5] = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "abc123"),
        ("CNI_NETNS", "/run/netns/x"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
    ];

    fn with(over: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut v: Vec<_> = ADD.iter().copied().filter(|(k, _)| !over.iter().any(|(o, _)| o == k)).collect();
        v.extend(over.iter().copied().filter(|(_, val)| !val.is_empty()));
        v
    }

    #[test]
    fn add_parses() {
        let r = req(&with(&[("CNI_ARGS", "IgnoreUnknown=1;MAC=02:00:00:00:00:09;K8S_POD_NAME=a=b")])).unwrap();
        assert_eq!(r.command, Command::Add);
        assert_eq!(r.container_id.as_deref(), Some("abc123"));
        assert_eq!(r.path, vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]);
        assert_eq!(r.arg("MAC"), Some("02:00:00:00:00:09"));
        assert_eq!(r.arg("K8S_POD_NAME"), Some("a=b"));
    }

    #[test]
    fn invalid_environment_is_code_4() {
        let bad = [
            vec![],
            with(&[("CNI_COMMAND", "FROB")]),
            with(&[("CNI_CONTAINERID", "")]),
            with(&[("CNI_CONTAINERID", "-abc")]),
            with(&[("CNI_CONTAINERID", "a/b")]),
            with(&[("CNI_NETNS", "")]),
            with(&[("CNI_NETNS", "relative/ns")]),
            with(&[("CNI_IFNAME", "")]),
            with(&[("CNI_IFNAME", "a-very-long-interface-name")]),
            with(&[("CNI_IFNAME", "eth/0")]),
            with(&[("CNI_PATH", "")]),
            with(&[("CNI_ARGS", "novalue")]),
            with(&[("CNI_ARGS", "=x")]),
        ];
        for env in bad {
            let e = req(&env).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidEnvironment, "{env:?}: {e}");
        }
    }

    #[test]
    fn per_command_requirements() {
        assert!(req(&[("CNI_COMMAND", "VERSION")]).is_ok());
        assert!(req(&[("CNI_COMMAND", "STATUS")]).is_ok());
        assert!(req(&[("CNI_COMMAND", "GC")]).is_err());
        assert!(req(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")]).is_ok());
        // DEL without a netns is fine.
        let del = with(&[("CNI_COMMAND", "DEL"), ("CNI_NETNS", "")]);
        assert!(req(&del).unwrap().netns.is_none());
        assert!(req(&with(&[("CNI_COMMAND", "CHECK"), ("CNI_NETNS", "")])).is_err());
        assert!(is_cni_identifier("a.b_c-1"));
        assert!(!is_cni_identifier("_a"));
    }
}
