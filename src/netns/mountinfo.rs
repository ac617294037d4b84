//! Just enough of `/proc/thread-self/mountinfo` to find mount points and their propagation.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const MOUNTINFO: &str = "/proc/thread-self/mountinfo";

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// `MAJ:MIN` of the filesystem.
    pub dev: String,
    /// The path inside the filesystem that is mounted (`net:[INODE]` for a namespace pin).
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Optional fields such as `shared:12` or `master:3`.
    pub optional: Vec<String>,
    pub fstype: String,
}

impl Mount {
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|f| f.starts_with("shared:"))
    }
}

/// The most recent (topmost) mount whose mount point is exactly `dir` (already canonical).
pub(crate) fn top_mount_at(dir: &Path) -> Result<Option<Mount>> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(|e| Error::os("read", MOUNTINFO, e))?;
    Ok(text.lines().filter_map(parse_line).rfind(|m| m.mount_point == dir))
}

/// Every mount of this mount namespace, in mountinfo order (parents before children).
pub(crate) fn all() -> Result<Vec<Mount>> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(|e| Error::os("read", MOUNTINFO, e))?;
    Ok(text.lines().filter_map(parse_line).collect())
}

/// Parses `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`.
pub(crate) fn parse_line(line: &str) -> Option<Mount> {
    let mut it = line.split(' ');
    let dev = it.nth(2)?.to_owned();
    let root = unescape(it.next()?);
    let mount_point = unescape(it.next()?);
    let _opts = it.next()?;
    let mut optional = Vec::new();
    for f in it.by_ref() {
        if f == "-" {
            break;
        }
        optional.push(f.to_owned());
    }
    let fstype = it.next()?.to_owned();
    Some(Mount { dev, root, mount_point, optional, fstype })
}

/// Decodes the kernel's octal escapes (`\040` for space, `\134` for backslash, ...).
fn unescape(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 4]).ok().and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines() {
        let m = parse_line("36 35 98:0 /mnt1 /mnt\\040x rw,noatime master:1 shared:7 - ext3 /dev/root rw").unwrap();
        assert_eq!(m.mount_point, PathBuf::from("/mnt x"));
        assert_eq!((m.dev.as_str(), m.root.as_path()), ("98:0", Path::new("/mnt1")));
        assert_eq!(m.optional, vec!["master:1", "shared:7"]);
        assert_eq!(m.fstype, "ext3");
        assert!(m.is_shared());
        let m = parse_line("40 27 0:4 net:[4026532] /tmp/p rw - nsfs nsfs rw").unwrap();
        assert!(!m.is_shared());
        assert_eq!(m.fstype, "nsfs");
        assert!(parse_line("garbage").is_none());
    }
}
