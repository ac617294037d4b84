//! Clean-up and verification: nothing may be left behind.

use std::path::{Path, PathBuf};

use netsandbox::netns;

use crate::R;
use crate::ctx::Ctx;

/// Removes the whole bench directory on drop, detaching anything still mounted below it.
pub(crate) struct BaseGuard(pub(crate) PathBuf);

impl Drop for BaseGuard {
    fn drop(&mut self) {
        let _ = netns::mountinfo::detach_all_under(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (mount point, fstype) of every mount at or below `dir`.
pub(crate) fn mounts_under(dir: &Path) -> Vec<(PathBuf, String)> {
    netns::mountinfo::mounts_under(dir).unwrap_or_default().into_iter().map(|m| (m.mount_point, m.fstype)).collect()
}

pub(crate) fn verify(ctxs: &[Ctx], base: &Path) -> R<()> {
    let nsfs = mounts_under(base).into_iter().filter(|(_, t)| t == "nsfs").count();
    let mut problems = Vec::new();
    if nsfs != 0 {
        problems.push(format!("{nsfs} nsfs mounts left under {}", base.display()));
    }
    for c in ctxs {
        let left = c.leftover_links()?;
        if !left.is_empty() {
            problems.push(format!("{}: links left in host namespace: {left:?}", c.variant.name()));
        }
        let files = std::fs::read_dir(&c.dir)?.count();
        if files != 0 {
            problems.push(format!("{}: {files} pin files left", c.variant.name()));
        }
    }
    if problems.is_empty() {
        println!("verified: no nsfs mounts left under the bench directory, no links or pin files left");
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}
