//! Running another CNI plugin (an IPAM plugin) the way a runtime would.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};

use serde_json::Value;

use crate::cni::env::Command;
use crate::cni::error::{CniError, ErrorCode};
use crate::cni::result::CniResult;

/// Finds plugin `name` in the `CNI_PATH` directories: the first regular, executable file.
pub fn find_plugin(name: &str, path: &[PathBuf]) -> Result<PathBuf, CniError> {
    for dir in path {
        let p = dir.join(name);
        if std::fs::metadata(&p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0) {
            return Ok(p);
        }
    }
    let dirs: Vec<String> = path.iter().map(|p| p.display().to_string()).collect();
    Err(CniError::new(ErrorCode::InvalidNetworkConfig, format!("failed to find plugin {name:?} in CNI_PATH"))
        .with_details(format!("searched {}", dirs.join(":"))))
}

/// An IPAM plugin found in `CNI_PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegate {
    /// The executable.
    pub path: PathBuf,
}

impl Delegate {
    /// Finds `name` in `cni_path`.
    pub fn find(name: &str, cni_path: &[PathBuf]) -> Result<Delegate, CniError> {
        Ok(Delegate { path: find_plugin(name, cni_path)? })
    }

    /// Runs the plugin with our environment, `CNI_COMMAND` set to `command` and `overrides`
    /// applied, and `stdin` as its input. Returns its stdout on success; its error (parsed from
    /// stdout when it printed one) otherwise.
    pub fn run(&self, command: Command, stdin: &[u8], overrides: &[(&str, &str)]) -> Result<Vec<u8>, CniError> {
        let mut p = Process::new(&self.path);
        p.env("CNI_COMMAND", command.as_str()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        for (k, v) in overrides {
            p.env(k, v);
        }
        let name = self.path.display().to_string();
        let mut child = p.spawn().map_err(|e| CniError::new(ErrorCode::Io, format!("run {name}: {e}")))?;
        if let Some(mut input) = child.stdin.take() {
            // A plugin may exit without reading its input; its status says what happened.
            let _ = input.write_all(stdin);
        }
        let out = child.wait_with_output().map_err(|e| CniError::new(ErrorCode::Io, format!("run {name}: {e}")))?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let parsed = serde_json::from_slice::<Value>(&out.stdout).ok().and_then(|v| CniError::from_json(&v));
        Err(match parsed {
            Some(e) => {
                let details = e.details.clone().map_or_else(|| name.clone(), |d| format!("{name}: {d}"));
                CniError { msg: format!("{} (from {})", e.msg, plugin_name(&self.path)), details: Some(details), ..e }
            }
            None => {
                CniError::new(ErrorCode::Plugin(104), format!("{name} failed ({})", out.status)).with_details(format!(
                    "stdout: {} stderr: {}",
                    String::from_utf8_lossy(&out.stdout).trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
    }

    /// ADD: the delegate's result (code 6 if it does not parse).
    pub fn add(&self, stdin: &[u8]) -> Result<CniResult, CniError> {
        let out = self.run(Command::Add, stdin, &[])?;
        CniResult::from_slice(&out)
            .map_err(|e| CniError { msg: format!("{}: {}", plugin_name(&self.path), e.msg), ..e })
    }

    /// A verb without output (DEL, CHECK, GC, STATUS).
    pub fn call(&self, command: Command, stdin: &[u8], overrides: &[(&str, &str)]) -> Result<(), CniError> {
        self.run(command, stdin, overrides).map(drop)
    }

    /// The versions the delegate supports (its VERSION answer).
    pub fn supported_versions(&self, stdin: &[u8]) -> Result<Vec<String>, CniError> {
        let out = self.run(Command::Version, stdin, &[])?;
        let v: Value = serde_json::from_slice(&out)
            .map_err(|e| CniError::new(ErrorCode::Decode, format!("{}: VERSION: {e}", plugin_name(&self.path))))?;
        Ok(v.get("supportedVersions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }
}

fn plugin_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}
