//! The `netsandbox` binary as the CLI tests run it: every command a new process, with
//! `--netns-root` pointing at a private "host" namespace pinned for the test and `--base` under
//! the test's temporary directory.

use std::path::PathBuf;
use std::process::{Command, Output};

use netsandbox::netns::{self, NetNs};
use serde_json::Value;

use super::TempBase;

/// A private host namespace pinned under the test's directory, unpinned on drop (also when an
/// assertion fails); every command runs inside it.
pub struct CliEnv {
    pub host: NetNs,
    pub pin: PathBuf,
    pub base: PathBuf,
    // Dropped last: unmounts whatever a failed test left below it.
    pub dir: TempBase,
}

impl CliEnv {
    pub fn new(tag: &str) -> CliEnv {
        let dir = TempBase::new(tag);
        let pin = dir.path().join("ns").join("host");
        let host = netns::create_pinned(&pin).expect("pin private host namespace");
        CliEnv { host, pin, base: dir.path().join("base"), dir }
    }

    /// `netsandbox --base BASE --netns-root PIN ARGS...`, not yet run.
    pub fn cmd(&self, args: &[&str]) -> Command {
        // option_env!: test crates that never run the binary still build without feature `cli`.
        let Some(exe) = option_env!("CARGO_BIN_EXE_netsandbox") else {
            panic!("the netsandbox binary is not built (feature `cli`)")
        };
        let mut c = Command::new(exe);
        c.arg("--base").arg(&self.base).arg("--netns-root").arg(&self.pin).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run netsandbox")
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs with `--json`, expects success and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let s = self.ok(&all);
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{args:?}: bad JSON {s:?}: {e}"))
    }

    /// Runs and expects exit code `code`; returns stderr.
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        err
    }
}

impl Drop for CliEnv {
    fn drop(&mut self) {
        let _ = netns::unpin(&self.pin);
    }
}
