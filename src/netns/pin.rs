//! Pinning network namespaces by bind mount, without fork or exec.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use once_cell::sync::Lazy;
use parking_lot::Mutex;

use super::exec::{Target, hop};
use super::handle::{NetNs, THREAD_NETNS, open_ns_file};
use super::mountinfo::{self, Mount};
use crate::error::{Error, Result};

/// Base directories this process bind-mounted onto themselves, so that [`release_base`] undoes
/// only what [`ensure_shared_base`] did. The lock also serialises the check-then-mount sequence,
/// so concurrent callers never stack two bind mounts on one base.
static OUR_BASES: Lazy<Mutex<HashSet<PathBuf>>> = Lazy::new(|| Mutex::new(HashSet::new()));

/// Bases already verified shared, with the id of the mount that was checked. Reading mountinfo
/// costs time proportional to the number of mounts (every pin is one), so a base is re-checked
/// only when the mount under it changed; this keeps sandbox creation cost flat as pins grow.
static VERIFIED: Lazy<Mutex<HashMap<PathBuf, u64>>> = Lazy::new(|| Mutex::new(HashMap::new()));

/// Makes `dir` a mount point with shared propagation, creating it if needed.
///
/// If `dir` is not a mount point yet it is bind-mounted onto itself first, recursively
/// (`MS_BIND | MS_REC`, as iproute2 does for `/run/netns`), so pins already below it (made by
/// `ip netns add`, an earlier engine, a runtime) stay reachable at their paths. Where the mount
/// underneath does not propagate unmounts (it is not shared), the originals those copies now
/// hide are detached, so removing a pin later really releases it. [`release_base`] (for a bind
/// this process made) and [`release_base_if_unused`] (for any such self-bind without pins) undo
/// it. Shared propagation means a pin created below `dir` is visible
/// in, and removed from, every peer mount namespace together; without it a pin copied into
/// another mount namespace keeps the file busy and `unlink` fails with `EBUSY` (the classic
/// Docker bug). Idempotent and safe to call from several threads.
pub fn ensure_shared_base(dir: &Path) -> Result<()> {
    if let Ok(id) = super::sys::mount_id(dir)
        && VERIFIED.lock().get(dir) == Some(&id)
    {
        return Ok(());
    }
    let mut ours = OUR_BASES.lock();
    let given = dir;
    std::fs::create_dir_all(dir).map_err(|e| Error::path("create directory", dir, e))?;
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::path("resolve directory", dir, e))?;
    let top = mountinfo::top_mount_at(&dir)?;
    if top.as_ref().is_some_and(Mount::is_shared) {
        remember_verified(given);
        return Ok(());
    }
    let bound_here = top.is_none();
    if bound_here {
        bind_onto_itself(&dir)?;
    }
    if let Err(e) = nix::mount::mount(None::<&str>, &dir, None::<&str>, MsFlags::MS_SHARED, None::<&str>) {
        if bound_here {
            // Leave the directory as we found it.
            if let Err(u) = nix::mount::umount2(&dir, MntFlags::MNT_DETACH) {
                log::warn!("could not undo bind mount of {}: {u}", dir.display());
            }
        }
        return Err(Error::path("make mount shared", &dir, e));
    }
    remember_verified(given);
    if bound_here {
        ours.insert(dir);
    }
    Ok(())
}

/// `mount --rbind dir dir`, then detaches the mounts the copy hides when nothing would
/// propagate that for us (see [`ensure_shared_base`]).
fn bind_onto_itself(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mounts = mountinfo::all()?;
    let below: Vec<PathBuf> = mounts
        .iter()
        .filter(|m| m.mount_point != dir && m.mount_point.starts_with(dir))
        .map(|m| m.mount_point.clone())
        .collect();
    let under_shared = containing_mount(&mounts, dir, None).is_some_and(Mount::is_shared);
    // A handle on the directory as it is now: below the bind, where the originals stay.
    let lower = std::fs::File::open(dir).map_err(|e| Error::path("open directory", dir, e))?;
    nix::mount::mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| Error::path("bind-mount onto itself", dir, e))?;
    log::debug!("bind-mounted {} onto itself (recursively: {} mounts below)", dir.display(), below.len());
    if under_shared || below.is_empty() {
        // An unmount of a copy propagates to its original: nothing is left hidden.
        return Ok(());
    }
    let mut hidden = below;
    hidden.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in hidden {
        let Ok(rel) = p.strip_prefix(dir) else { continue };
        let via = PathBuf::from(format!("/proc/thread-self/fd/{}", lower.as_raw_fd())).join(rel);
        if let Err(e) = nix::mount::umount2(&via, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            log::warn!("could not detach {} hidden under the base bind mount: {e}", p.display());
        }
    }
    Ok(())
}

/// The topmost mount whose mount point is `dir` or its nearest ancestor, skipping `skip`
/// (a mount id's position in `mounts`).
fn containing_mount<'m>(mounts: &'m [Mount], dir: &Path, skip: Option<usize>) -> Option<&'m Mount> {
    let mut best: Option<(usize, &Mount)> = None;
    for (i, m) in mounts.iter().enumerate() {
        if Some(i) == skip || !dir.starts_with(&m.mount_point) {
            continue;
        }
        let depth = m.mount_point.components().count();
        if best.is_none_or(|(d, _)| depth >= d) {
            best = Some((depth, m));
        }
    }
    best.map(|(_, m)| m)
}

/// Releases the base mount of `dir` when nothing is pinned below it any more and it is a bind
/// mount of the directory onto itself (what [`ensure_shared_base`] makes, in this process or
/// another); a base that is a mount of its own (a tmpfs, someone else's bind elsewhere) is left
/// alone. Returns whether it was released. [`NetnsSandbox::gc`](crate::sandbox::NetnsSandbox::gc)
/// calls it. Not for use while another process or thread may be creating pins in `dir`: a pin
/// made on a base being released would be detached with it.
pub fn release_base_if_unused(dir: &Path) -> Result<bool> {
    let mut ours = OUR_BASES.lock();
    let Ok(canonical) = std::fs::canonicalize(dir) else { return Ok(false) };
    let mounts = mountinfo::all()?;
    let Some(top_pos) = mounts.iter().rposition(|m| m.mount_point == canonical) else { return Ok(false) };
    if mounts.iter().any(|m| m.mount_point != canonical && m.mount_point.starts_with(&canonical)) {
        return Ok(false);
    }
    let top = &mounts[top_pos];
    let Some(under) = containing_mount(&mounts[..top_pos], &canonical, None) else { return Ok(false) };
    let Ok(rel) = canonical.strip_prefix(&under.mount_point) else { return Ok(false) };
    if top.dev != under.dev || top.root != under.root.join(rel) {
        log::debug!("{} is a mount of its own, not a bind onto itself: kept", canonical.display());
        return Ok(false);
    }
    match nix::mount::umount2(&canonical, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
        Err(e) => return Err(Error::path("unmount base", &canonical, e)),
    }
    ours.remove(&canonical);
    VERIFIED.lock().retain(|p, _| std::fs::canonicalize(p).map_or(true, |c| c != canonical));
    log::debug!("released base mount {}", canonical.display());
    Ok(true)
}

fn remember_verified(dir: &Path) {
    if let Ok(id) = super::sys::mount_id(dir) {
        VERIFIED.lock().insert(dir.to_path_buf(), id);
    }
}

/// Undoes [`ensure_shared_base`]: detaches the self bind mount of `dir` if this process made it.
///
/// A base that was already a mount point (ours or someone else's) is left alone. Idempotent:
/// calling it again, or on a directory that no longer exists, is `Ok`.
pub fn release_base(dir: &Path) -> Result<()> {
    let mut ours = OUR_BASES.lock();
    VERIFIED.lock().remove(dir);
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if !ours.remove(&dir) {
        log::debug!("release_base: {} was not bind-mounted by us; nothing to do", dir.display());
        return Ok(());
    }
    match nix::mount::umount2(&dir, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => Ok(()),
        Err(e) => {
            ours.insert(dir.clone());
            Err(Error::path("unmount base", &dir, e))
        }
    }
}

/// Creates a new network namespace pinned by a bind mount at `path`, and returns a handle on it.
///
/// No fork or exec, and no thread: the calling thread unshares a new namespace, bind-mounts its
/// `/proc/thread-self/ns/net` onto `path`, and goes back to the namespace it was in before this
/// returns. (It first checks that it may go back; where it may not — a user namespace that does
/// not own the current network namespace — a short-lived helper thread does the work and the
/// caller never moves.) The parent directory is prepared with [`ensure_shared_base`]. If `path`
/// exists, [`Error::AlreadyExists`] is returned and the existing file is untouched. On any other
/// failure the file and mount are removed again, so nothing is left behind.
pub fn create_pinned(path: &Path) -> Result<NetNs> {
    create_pinned_with(path, || Ok(())).map(|(ns, ())| ns)
}

/// Like [`create_pinned`], and also runs `inside` while in the new namespace, returning its
/// value. Saves a second namespace hop for set-up work (opening a netlink socket bound to the
/// namespace, writing sysctls). If `inside` fails or panics, the pin is removed again.
pub fn create_pinned_with<T, F>(path: &Path, inside: F) -> Result<(NetNs, T)>
where
    F: FnOnce() -> Result<T> + Send,
    T: Send,
{
    create_pinned_from(&NetNs::current()?, path, inside)
}

/// [`create_pinned_with`] for a caller that already holds a handle on its current namespace
/// (`home`), which saves opening it again.
pub(crate) fn create_pinned_from<T, F>(home: &NetNs, path: &Path, inside: F) -> Result<(NetNs, T)>
where
    F: FnOnce() -> Result<T> + Send,
    T: Send,
{
    let bad = |reason: &str| Error::InvalidArgument {
        op: "create namespace pin",
        reason: format!("{}: {reason}", path.display()),
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => return Err(bad("no parent directory")),
    };
    if path.file_name().is_none() {
        return Err(bad("no file name"));
    }
    let mut cleanup = new_pin_file(parent, path)?;
    let value = hop(home, Target::New, || {
        nix::mount::mount(Some(THREAD_NETNS), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| Error::path("bind-mount namespace onto", path, e))?;
        inside()
    })
    .map_err(|e| match e {
        Error::Panicked { message, .. } => Error::Panicked { ns: path.display().to_string(), message },
        e => e,
    })?;
    let fd = open_ns_file(path)?;
    cleanup.armed = false;
    log::debug!("pinned new network namespace at {}", path.display());
    Ok((NetNs::from_owned(fd, path.display().to_string()), value))
}

/// Pins an existing namespace (e.g. a container's, opened with [`NetNs::from_pid`]) at `path`
/// by bind-mounting its handle there, so it outlives the process. Same guarantees as
/// [`create_pinned`]: an existing `path` is [`Error::AlreadyExists`]; on failure nothing is left.
pub fn pin_existing(ns: &NetNs, path: &Path) -> Result<()> {
    use std::os::fd::{AsFd, AsRawFd};
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => {
            return Err(Error::InvalidArgument {
                op: "pin namespace",
                reason: format!("{}: no parent directory", path.display()),
            });
        }
    };
    let mut cleanup = new_pin_file(parent, path)?;
    // The fd's /proc entry names the namespace; bind-mounting it pins the namespace itself.
    let src = format!("/proc/thread-self/fd/{}", ns.as_fd().as_raw_fd());
    nix::mount::mount(Some(src.as_str()), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| Error::path("bind-mount namespace onto", path, e))?;
    cleanup.armed = false;
    Ok(())
}

/// Removes the pin at `path`: detaches the bind mount(s), then deletes the file.
///
/// Idempotent: a path that is not mounted, or no longer exists, is not an error. Only mounts of
/// network namespace files are detached: a path that is some other mount point is left mounted
/// and the error from removing it is returned. The namespace itself lives on while any handle or
/// process still refers to it.
pub fn unpin(path: &Path) -> Result<()> {
    // A pin could have been mounted more than once; each umount detaches the top one. Only
    // namespace files are unmounted, so a wrong path can never detach someone else's mount.
    for _ in 0..16 {
        if open_ns_file(path).is_err() {
            break;
        }
        match nix::mount::umount2(path, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            Err(Errno::EINVAL | Errno::ENOENT) => break,
            Err(e) => return Err(Error::path("unmount namespace pin", path, e)),
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::path("remove namespace pin", path, e)),
    }
}

/// True when `path` is a mount point of an nsfs file that is a network namespace.
pub fn is_pinned(path: &Path) -> bool {
    // statx answers "is this a mount point" in O(1); mountinfo grows with every pin, so it is
    // only the fallback for kernels that cannot tell.
    if let Some(root) = super::sys::is_mount_root(path) {
        return root && open_ns_file(path).is_ok();
    }
    let Ok(canonical) = std::fs::canonicalize(path) else { return false };
    match mountinfo::top_mount_at(&canonical) {
        Ok(Some(m)) if m.fstype == "nsfs" => open_ns_file(path).is_ok(),
        _ => false,
    }
}

/// Prepares `parent` and creates the empty pin file (`O_EXCL`: an existing one is
/// [`Error::AlreadyExists`]), returning a guard that removes it again unless disarmed.
fn new_pin_file<'p>(parent: &Path, path: &'p Path) -> Result<RemoveOnDrop<'p>> {
    ensure_shared_base(parent)?;
    OpenOptions::new().write(true).create_new(true).mode(0o444).open(path).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => {
            Error::AlreadyExists { kind: "namespace pin", name: path.display().to_string() }
        }
        _ => Error::path("create pin file", path, e),
    })?;
    Ok(RemoveOnDrop { path, armed: true })
}

/// Removes a half-made pin unless disarmed.
struct RemoveOnDrop<'a> {
    path: &'a Path,
    armed: bool,
}

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = unpin(self.path)
        {
            log::warn!("could not clean up failed pin {}: {e}", self.path.display());
        }
    }
}
