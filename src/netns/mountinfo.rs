//! Just enough of `/proc/thread-self/mountinfo` to find mount points and their propagation.
//!
//! Public for tests, benchmarks and tools that must check what is mounted below a directory
//! (e.g. that no pin is left): [`mounts`] and [`mounts_under`] match whole path components on the
//! kernel's unescaped mount points, so `/tmp/x-1` is not under `/tmp/x` and a space is a space.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

const MOUNTINFO: &str = "/proc/thread-self/mountinfo";

/// One mount, as a line of mountinfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `MAJ:MIN` of the filesystem.
    pub dev: String,
    /// The path inside the filesystem that is mounted (`net:[INODE]` for a namespace pin).
    pub root: PathBuf,
    /// Where it is mounted, with the kernel's octal escapes decoded.
    pub mount_point: PathBuf,
    /// Optional fields such as `shared:12` or `master:3`.
    pub optional: Vec<String>,
    /// The filesystem type, e.g. `nsfs` for a pinned namespace.
    pub fstype: String,
}

impl Mount {
    /// Propagation is shared (`shared:N`).
    pub fn is_shared(&self) -> bool {
        self.optional.iter().any(|f| f.starts_with("shared:"))
    }

    /// A namespace file bind-mounted here (a pin).
    pub fn is_nsfs(&self) -> bool {
        self.fstype == "nsfs"
    }
}

/// Every mount the calling thread's mount namespace sees, oldest first.
pub fn mounts() -> Result<Vec<Mount>> {
    let text = std::fs::read_to_string(MOUNTINFO).map_err(|e| Error::os("read", MOUNTINFO, e))?;
    Ok(text.lines().filter_map(parse_line).collect())
}

/// The mounts at or below `dir` (compared component by component: `/a/b-1` is not below
/// `/a/b`), oldest first. `dir` is canonicalized first when it exists, as the kernel reports
/// canonical mount points.
pub fn mounts_under(dir: &Path) -> Result<Vec<Mount>> {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    Ok(below(mounts()?, &dir))
}

/// Detaches (`MNT_DETACH`) everything mounted at or below `dir`, deepest first, and returns how
/// many mounts it detached; for clean-up guards of temporary pin directories. A mount that
/// cannot be detached is skipped (and logged), so a guard never fails half-way.
pub fn detach_all_under(dir: &Path) -> Result<usize> {
    let mut points: Vec<PathBuf> = mounts_under(dir)?.into_iter().map(|m| m.mount_point).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    let mut detached = 0;
    for p in points {
        match nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH) {
            Ok(()) => detached += 1,
            // Stacked mounts at one point: an earlier detach may have taken this one too.
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::ENOENT) => {}
            Err(e) => log::warn!("cannot detach {}: {e}", p.display()),
        }
    }
    Ok(detached)
}

fn below(mounts: Vec<Mount>, dir: &Path) -> Vec<Mount> {
    mounts.into_iter().filter(|m| m.mount_point.starts_with(dir)).collect()
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

    #[test]
    fn under_matches_whole_components() {
        let m = |p: &str| Mount {
            dev: "0:4".into(),
            root: PathBuf::from("net:[1]"),
            mount_point: PathBuf::from(p),
            optional: vec![],
            fstype: "nsfs".into(),
        };
        let all = vec![m("/tmp/x"), m("/tmp/x/a"), m("/tmp/x-1/a"), m("/tmp/x 1"), m("/tmp")];
        assert_eq!(below(all, Path::new("/tmp/x")), vec![m("/tmp/x"), m("/tmp/x/a")]);
    }
}
