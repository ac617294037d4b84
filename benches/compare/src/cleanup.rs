//! Clean-up and verification: nothing may be left behind.

use std::path::{Path, PathBuf};

use crate::R;
use crate::ctx::Ctx;

/// Removes the whole bench directory on drop, detaching anything still mounted below it.
pub(crate) struct BaseGuard(pub(crate) PathBuf);

impl Drop for BaseGuard {
    fn drop(&mut self) {
        let mut points = mounts_under(&self.0).into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (mount point, fstype) of every mount under `dir`.
pub(crate) fn mounts_under(dir: &Path) -> Vec<(String, String)> {
    let prefix = dir.display().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((f.get(4)?.to_string(), f.get(sep + 1)?.to_string()))
        })
        .filter(|(p, _)| p.starts_with(&prefix))
        .collect()
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
