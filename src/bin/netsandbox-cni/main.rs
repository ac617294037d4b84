//! `netsandbox-cni`: a CNI 1.1 plugin with the reference `bridge` plugin's configuration keys,
//! built on netsandbox's public Sandbox API.
//!
//! The runtime runs it with the `CNI_*` environment and the network configuration on stdin;
//! the result (ADD), the version information (VERSION) or nothing is printed on stdout, and
//! errors are `{cniVersion, code, msg, details}` on stdout with exit status 1.

mod add;
mod check;
mod del;
mod host;
mod ipam;
mod maint;
mod masq;

use std::io::{Read, Write};
use std::sync::OnceLock;
use std::time::Instant;

use netsandbox::cni::{CniError, CniVersion, Command, ErrorCode, NetConf, Request, SUPPORTED_VERSIONS};
use serde_json::{Value, json};

/// With `NETSANDBOX_CNI_PROFILE` set, writes `<ms since start> <phase>` to stderr at each
/// phase of a call (how BENCHMARKS.md's profile of an ADD was taken). Off: one flag test.
pub fn mark(phase: &str) {
    static START: OnceLock<Option<Instant>> = OnceLock::new();
    if let Some(t0) = START.get_or_init(|| std::env::var_os(PROFILE_ENV).map(|_| Instant::now())) {
        eprintln!("{:8.3} {phase}", t0.elapsed().as_secs_f64() * 1e3);
    }
}

const PROFILE_ENV: &str = "NETSANDBOX_CNI_PROFILE";

fn main() {
    mark("main");
    if std::env::var_os(host::REAP_ENV).is_some() {
        host::reap();
        return;
    }
    let mut stdin = Vec::new();
    let (version, outcome) = match Request::from_env() {
        Err(e) => (CniVersion::LATEST, Err(e)),
        Ok(req) => match std::io::stdin().read_to_end(&mut stdin) {
            Err(e) => (CniVersion::LATEST, Err(CniError::new(ErrorCode::Io, format!("reading stdin: {e}")))),
            Ok(_) => (NetConf::version_hint(&stdin), run(&req, &stdin)),
        },
    };
    let mut out = std::io::stdout().lock();
    let code = match outcome {
        Ok(Some(v)) => {
            let _ = writeln!(out, "{v}");
            0
        }
        Ok(None) => 0,
        Err(e) => {
            let _ = writeln!(out, "{}", e.to_json(version.as_str()));
            1
        }
    };
    let _ = out.flush();
    mark("out");
    std::process::exit(code);
}

/// One call: the environment is already valid; stdin holds the configuration.
fn run(req: &Request, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if req.command == Command::Version {
        return Ok(Some(version_info(stdin)));
    }
    let conf = NetConf::from_slice(stdin)?;
    if matches!(req.command, Command::Status | Command::Gc) && !conf.cni_version.is_1_1() {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("{} needs cniVersion 1.1.0 (the configuration says {})", req.command.as_str(), conf.cni_version),
        ));
    }
    match req.command {
        Command::Add => add::add(req, &conf, stdin).map(Some),
        Command::Del => del::del(req, &conf, stdin).map(|()| None),
        Command::Check => check::check(req, &conf, stdin).map(|()| None),
        Command::Status => maint::status(req, &conf, stdin).map(|()| None),
        Command::Gc => maint::gc(req, &conf, stdin).map(|()| None),
        Command::Version => Ok(Some(version_info(stdin))),
    }
}

/// VERSION: the versions we speak, answered in the version asked about when we know it.
fn version_info(stdin: &[u8]) -> Value {
    json!({ "cniVersion": NetConf::version_hint(stdin).as_str(), "supportedVersions": SUPPORTED_VERSIONS })
}

/// Refuses what we cannot honour yet instead of ignoring it (code 2).
fn unsupported_fields(conf: &NetConf) -> Result<(), CniError> {
    if conf.enable_dad {
        return Err(CniError::new(ErrorCode::UnsupportedField, "enabledad: true is not supported")
            .with_details("netsandbox-cni adds IPv6 addresses without duplicate address detection, usable at once"));
    }
    Ok(())
}
