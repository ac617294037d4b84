//! Finding a network namespace again from its identity (the nsfs device and inode), in any
//! process and whatever namespace the caller runs in: through the pins of this mount namespace
//! and the namespaces of every thread of every process.
//!
//! An inode number identifies a namespace only while it lives: a later namespace can get the
//! same number. Callers that must not confuse the two compare a never-reused id as well (the
//! namespace cookie of a socket opened inside, `Socket::netns_cookie`).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sys::stat::fstat;

use super::handle::NetNs;
use super::mountinfo;
use crate::error::{Error, Result};

/// Where a namespace can be reached by path: its device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NsInode {
    /// `st_dev` of the nsfs file.
    pub dev: u64,
    /// `st_ino` of the nsfs file (the `net:[N]` number).
    pub ino: u64,
}

impl NetNs {
    /// The namespace's device and inode: equal values mean the same namespace while it lives.
    pub fn nsfs_inode(&self) -> Result<NsInode> {
        let st = fstat(self.as_fd()).map_err(|e| Error::os("fstat namespace", self.label(), e))?;
        Ok(NsInode { dev: st.st_dev, ino: st.st_ino })
    }
}

/// Opens the network namespace with identity `id`, if it still exists and can be reached: from
/// `hints` first (handles the caller already holds), then the nsfs pins of this mount
/// namespace, then `/proc/*/task/*/ns/net`. `None` when it is nowhere to be found.
pub fn find_netns(id: NsInode, hints: &[&NetNs]) -> Result<Option<NetNs>> {
    for h in hints {
        if h.nsfs_inode().is_ok_and(|i| i == id) {
            return h.try_clone().map(Some);
        }
    }
    let want = format!("net:[{}]", id.ino);
    // Pins: mountinfo names the namespace in the root field; no need to open the others.
    if let Ok(mounts) = mountinfo::all() {
        for m in mounts.iter().filter(|m| m.fstype == "nsfs" && m.root == Path::new(&want)) {
            if let Some(ns) = open_if(&m.mount_point, id) {
                return Ok(Some(ns));
            }
        }
    }
    // Processes and their threads (a namespace can be held by one thread alone).
    let Ok(procs) = std::fs::read_dir("/proc") else { return Ok(None) };
    for p in procs.flatten() {
        let name = p.file_name();
        if !name.to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let Ok(tasks) = std::fs::read_dir(p.path().join("task")) else { continue };
        for t in tasks.flatten() {
            let path: PathBuf = t.path().join("ns/net");
            // readlink is cheap and needs no open: `net:[N]`.
            if std::fs::read_link(&path).is_ok_and(|l| l.as_os_str() == want.as_str())
                && let Some(ns) = open_if(&path, id)
            {
                return Ok(Some(ns));
            }
        }
    }
    Ok(None)
}

fn open_if(path: &Path, id: NsInode) -> Option<NetNs> {
    let ns = NetNs::from_path(path).ok()?;
    (ns.nsfs_inode().ok()? == id).then_some(ns)
}
