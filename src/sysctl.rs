//! `/proc/sys` keys inside a namespace.
//!
//! `/proc/sys/net` shows the network namespace of the thread that *opens* the file, so with
//! `Some(ns)` every file is opened inside [`run_in`]; with `None` the calling
//! thread's own namespace is used.
//!
//! Keys are given in dotted form (`net.ipv4.ip_forward`) or slash form
//! (`net/ipv4/conf/eth0.100/arp_ignore`). A key that contains a `/` is taken as slash form and its
//! dots are kept, which is how interface names containing `.` are addressed.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use nix::errno::Errno;

use crate::error::{Error, Result};
use crate::netns::{NetNs, run_in};

const PROC_SYS: &str = "/proc/sys";

/// What [`apply`] did with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The key already had the wanted value; nothing was written.
    Unchanged,
    /// The value was written.
    Written {
        /// What the key held before.
        old: String,
    },
    /// This kernel does not have the key (e.g. IPVS keys without `ip_vs`).
    Missing,
    /// The key cannot be written here.
    ReadOnly,
}

/// Reads `key` and returns its value without the trailing newline.
///
/// A key this kernel does not have gives [`Error::SysctlMissing`]; a malformed key gives
/// [`Error::InvalidSysctlKey`] before anything is opened.
pub fn read(ns: Option<&NetNs>, key: &str) -> Result<String> {
    let path = key_path(key)?;
    hop(ns, || read_path(key, &path))
}

/// Writes `value` to `key` only if the current value differs; returns true when it wrote.
///
/// Values are compared with whitespace normalised (multi-value keys read back tab-separated).
/// A missing key gives [`Error::SysctlMissing`]; `EROFS`, `EACCES` or `EPERM` give
/// [`Error::SysctlReadOnly`].
pub fn write(ns: Option<&NetNs>, key: &str, value: &str) -> Result<bool> {
    let path = key_path(key)?;
    hop(ns, || write_path(key, &path, value).map(|o| matches!(o, Outcome::Written { .. })))
}

/// Applies all `settings` in one hop into the namespace, in order.
///
/// Every key is validated before anything is written ([`Error::InvalidSysctlKey`] means nothing
/// changed). A missing or read-only key is reported as [`Outcome::Missing`] / [`Outcome::ReadOnly`]
/// and the others are still applied. Any other failure stops at that key and is returned as an
/// error; keys before it stay written.
pub fn apply(ns: Option<&NetNs>, settings: &[(&str, &str)]) -> Result<Vec<(String, Outcome)>> {
    let paths = settings.iter().map(|(k, _)| key_path(k)).collect::<Result<Vec<_>>>()?;
    hop(ns, || {
        let mut out = Vec::with_capacity(settings.len());
        for ((key, value), path) in settings.iter().zip(&paths) {
            let outcome = match write_path(key, path, value) {
                Ok(o) => o,
                Err(Error::SysctlMissing { .. }) => Outcome::Missing,
                Err(Error::SysctlReadOnly { .. }) => Outcome::ReadOnly,
                Err(e) => return Err(e),
            };
            log::debug!("sysctl {key} = {value}: {outcome:?}");
            out.push(((*key).to_owned(), outcome));
        }
        Ok(out)
    })
}

/// Like [`apply`], for settings that must all take effect: every key is tried, then the first
/// missing or read-only one is returned as [`Error::SysctlMissing`] / [`Error::SysctlReadOnly`].
pub fn apply_all(ns: Option<&NetNs>, settings: &[(&str, &str)]) -> Result<()> {
    for (key, outcome) in apply(ns, settings)? {
        match outcome {
            Outcome::Missing => return Err(Error::SysctlMissing { key }),
            Outcome::ReadOnly => return Err(Error::SysctlReadOnly { key }),
            Outcome::Unchanged | Outcome::Written { .. } => {}
        }
    }
    Ok(())
}

/// Runs `f` in `ns`, or on the calling thread for `None`.
fn hop<T: Send>(ns: Option<&NetNs>, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    match ns {
        Some(ns) => run_in(ns, f)?,
        None => f(),
    }
}

/// Validates a key and maps it to its file under `/proc/sys`.
fn key_path(key: &str) -> Result<PathBuf> {
    let bad = |reason| Error::InvalidSysctlKey { key: key.to_owned(), reason };
    if key.is_empty() {
        return Err(bad("empty"));
    }
    if key.starts_with('/') {
        return Err(bad("starts with '/'"));
    }
    if key.contains("..") {
        return Err(bad("contains '..'"));
    }
    if !key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-')) {
        return Err(bad("only letters, digits, '_', '.', '/' and '-' are allowed"));
    }
    let rel = if key.contains('/') { key.to_owned() } else { key.replace('.', "/") };
    if rel.split('/').any(|c| c.is_empty() || c == ".") {
        return Err(bad("empty or '.' path component"));
    }
    Ok(PathBuf::from(PROC_SYS).join(rel))
}

fn classify(op: &'static str, key: &str, e: io::Error) -> Error {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT | Errno::ENOTDIR) => Error::SysctlMissing { key: key.to_owned() },
        Some(Errno::EROFS | Errno::EACCES | Errno::EPERM) if op == "write sysctl" => {
            Error::SysctlReadOnly { key: key.to_owned() }
        }
        _ => Error::os(op, key, e),
    }
}

fn read_path(key: &str, path: &PathBuf) -> Result<String> {
    let mut file = OpenOptions::new().read(true).open(path).map_err(|e| classify("read sysctl", key, e))?;
    let mut s = String::new();
    file.read_to_string(&mut s).map_err(|e| classify("read sysctl", key, e))?;
    if s.ends_with('\n') {
        s.pop();
    }
    Ok(s)
}

fn normalise(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn write_path(key: &str, path: &PathBuf, value: &str) -> Result<Outcome> {
    let old = match read_path(key, path) {
        Ok(old) if normalise(&old) == normalise(value) => return Ok(Outcome::Unchanged),
        Ok(old) => old,
        // Write-only keys (mode 0200, e.g. net.ipv4.route.flush) cannot be compared: just write.
        Err(Error::Os { ref source, .. }) if source.raw_os_error() == Some(libc::EACCES) => String::new(),
        Err(e) => return Err(e),
    };
    let mut file = OpenOptions::new().write(true).open(path).map_err(|e| classify("write sysctl", key, e))?;
    // One write call: sysctl handlers parse each write separately.
    file.write_all(value.as_bytes()).map_err(|e| classify("write sysctl", key, e))?;
    Ok(Outcome::Written { old })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(key_path("net.ipv4.ip_forward").unwrap(), PathBuf::from("/proc/sys/net/ipv4/ip_forward"));
        assert_eq!(
            key_path("net/ipv4/conf/eth0.100/arp_ignore").unwrap(),
            PathBuf::from("/proc/sys/net/ipv4/conf/eth0.100/arp_ignore")
        );
        for bad in ["", "../x", "/etc/passwd", "net..ipv4", "net/ipv4/", "net.ipv4 x", "net/./x", "a\0b", "net.ipv4."] {
            assert!(matches!(key_path(bad), Err(Error::InvalidSysctlKey { .. })), "{bad:?}");
        }
    }
}
