//! host-local's on-disk store, read and written the same way, so the built-in allocator and
//! Debian's `host-local` can take turns on one data directory.
//!
//! Layout of `<dataDir>/<network>/`: one file per allocated address, named by the address and
//! holding `<container id>\r\n<ifname>` (older host-local wrote the id alone);
//! `last_reserved_ip.<range set index>` holding the last address handed out from that range
//! set; and `lock`, which every writer holds with `flock(LOCK_EX)` while it works.
//!
//! So that ADD's duplicate check and DEL's release need not read every allocation file, the
//! built-in allocator keeps an index beside them: one file `netsandbox-index` whose first line
//! is a stamp and whose other lines are `<address> <container id> <ifname>`, one per address
//! it knows. One file, so an ADD appends a line and rewrites the stamp in place — no file or
//! directory is created per allocation (creating one costs ext4 hundreds of microseconds once
//! the inode tables hold many recently deleted inodes, as on a node that churns pods).
//! host-local ignores it (the name does not parse as an address, and the content never equals
//! an id and ifname). The index is trusted only while its stamp equals the network
//! directory's change stamp (mtime, size, inode) recorded when the built-in allocator last
//! changed the directory: any change by someone else (host-local, an operator) moves the
//! directory's stamp and the index is rebuilt once.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::cni::error::{CniError, ErrorCode};

/// host-local's default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";
const LAST_RESERVED: &str = "last_reserved_ip.";
const LINE_BREAK: &str = "\r\n";
const INDEX: &str = "netsandbox-index";
/// The stamp line's width: rewritten in place, so it never changes length.
const STAMP_LEN: usize = 63;

/// Replaces the content of the small file `path` (creating it) without truncating it to zero
/// first: ext4 (`auto_da_alloc`, on by default) flushes a file truncated to zero and rewritten
/// when it is closed, which made each of these rewrites cost ~0.5–1 ms here, most of an ADD's
/// IPAM time. The new content is written over the old from offset 0 and the file is cut to
/// its length (a shrink to a non-zero size does not trigger the flush). Readers hold the store
/// lock like every writer, so none sees the file half-written.
fn overwrite(path: &Path, content: &str) -> std::io::Result<()> {
    let f = OpenOptions::new().write(true).create(true).truncate(false).mode(0o644).open(path)?;
    f.write_all_at(content.as_bytes(), 0)?;
    f.set_len(content.len() as u64)
}

fn io(op: &str, path: &Path, e: impl std::fmt::Display) -> CniError {
    CniError::new(ErrorCode::Io, format!("ipam store: {op} {}: {e}", path.display()))
}

/// One network's directory, locked for as long as this value lives.
pub struct Store {
    dir: PathBuf,
    /// Whether the index matched the directory when the lock was taken (or was rebuilt), and
    /// every change since kept it in step: then it is sealed again when the lock goes.
    index_ok: Cell<bool>,
    changed: Cell<bool>,
    index: RefCell<Index>,
    _lock: Flock<File>,
}

/// The index file's content as read under the lock, and what this holder did to it.
#[derive(Default)]
struct Index {
    /// (address as written, container id, ifname): addresses are parsed only when looked up.
    entries: Vec<(String, String, String)>,
    /// The file's length (where an append goes).
    len: u64,
    /// Entries went away: the whole file is written again when the lock goes.
    rewrite: bool,
}

impl Drop for Store {
    fn drop(&mut self) {
        // Still under the lock (fields drop after this).
        if self.changed.get() && !(self.index_ok.get() && self.seal().is_ok()) {
            let _ = std::fs::remove_file(self.dir.join(INDEX));
        }
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// One allocation read back from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The address (the file's name).
    pub ip: IpAddr,
    /// The container id (first line).
    pub container_id: String,
    /// The interface name (second line; empty in files of older host-local versions).
    pub ifname: String,
}

impl Store {
    /// Opens (creating it) `<data_dir>/<network>` and takes its lock, waiting up to `timeout`
    /// for other holders (host-local waits forever); still held then is code 11 (try again
    /// later). `network` must already be a checked network name.
    pub fn lock(data_dir: &Path, network: &str, timeout: Duration) -> Result<Store, CniError> {
        let dir = data_dir.join(network);
        std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
        let lock_path = dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(false)
            .create(false)
            .open(&lock_path)
            .or_else(|_| {
                // Created as host-local 1.1 creates it (mode 0750); std needs write for create.
                OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o750).open(&lock_path)
            })
            .map_err(|e| io("open", &lock_path, e))?;
        let deadline = Instant::now() + timeout;
        let mut file = file;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(lock) => {
                    let store = Store {
                        dir,
                        index_ok: Cell::new(false),
                        changed: Cell::new(false),
                        index: RefCell::default(),
                        _lock: lock,
                    };
                    if let (Some(stamp), Some(index)) = (store.stamp(), store.read_index()) {
                        store.index_ok.set(index.0 == stamp);
                        *store.index.borrow_mut() = index.1;
                    }
                    return Ok(store);
                }
                Err((f, Errno::EWOULDBLOCK | Errno::EINTR)) if Instant::now() < deadline => {
                    file = f;
                    // Holders keep it for milliseconds (one allocation).
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(CniError::new(
                        ErrorCode::TryAgainLater,
                        format!("ipam store {} is locked by another process", lock_path.display()),
                    )
                    .with_details(format!("waited {} ms for its lock", timeout.as_millis())));
                }
                Err((_, e)) => return Err(io("flock", &lock_path, e)),
            }
        }
    }

    /// The network's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reserves `ip` for (`id`, `ifname`) in range set `range_set`: false when it is taken.
    pub fn reserve(&self, id: &str, ifname: &str, ip: IpAddr, range_set: usize) -> Result<bool, CniError> {
        let path = self.dir.join(ip.to_string());
        let mut f = match OpenOptions::new().read(true).write(true).create_new(true).mode(0o644).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(false),
            Err(e) => return Err(io("create", &path, e)),
        };
        let content = format!("{}{LINE_BREAK}{ifname}", id.trim());
        if let Err(e) = f.write_all(content.as_bytes()) {
            drop(f);
            let _ = std::fs::remove_file(&path);
            return Err(io("write", &path, e));
        }
        self.changed.set(true);
        if self.index_ok.get() && self.index_add(id, ifname, ip).is_err() {
            self.index_ok.set(false);
        }
        let last = self.dir.join(format!("{LAST_RESERVED}{range_set}"));
        overwrite(&last, &ip.to_string()).map_err(|e| io("write", &last, e))?;
        Ok(true)
    }

    /// The directory's change stamp: creating or removing an entry moves it.
    fn stamp(&self) -> Option<String> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&self.dir).ok()?;
        Some(format!("{}.{:09} {} {}", m.mtime(), m.mtime_nsec(), m.size(), m.ino()))
    }

    /// Records the directory's stamp as the one the index matches: in place when entries were
    /// only appended, else the whole file.
    fn seal(&self) -> std::io::Result<()> {
        let stamp = self.stamp().ok_or_else(|| std::io::Error::other("no directory stamp"))?;
        let index = self.index.borrow();
        let path = self.dir.join(INDEX);
        if index.rewrite {
            let mut content = format!("{stamp:STAMP_LEN$}\n");
            for (ip, id, ifname) in &index.entries {
                content.push_str(&format!("{ip} {id} {ifname}\n"));
            }
            return overwrite(&path, &content);
        }
        OpenOptions::new().write(true).open(&path)?.write_all_at(format!("{stamp:STAMP_LEN$}").as_bytes(), 0)
    }

    /// The index file: its stamp and entries; `None` when it is missing or unreadable.
    fn read_index(&self) -> Option<(String, Index)> {
        let content = std::fs::read_to_string(self.dir.join(INDEX)).ok()?;
        let mut lines = content.lines();
        let stamp = lines.next()?.trim_end().to_owned();
        let mut entries = Vec::new();
        for l in lines {
            let mut parts = l.split(' ');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (Some(ip), Some(id), Some(ifname), None) => {
                    entries.push((ip.to_owned(), id.to_owned(), ifname.to_owned()))
                }
                _ => return None,
            }
        }
        Some((stamp, Index { entries, len: content.len() as u64, rewrite: false }))
    }

    /// Appends (`ip`, `id`, `ifname`) to the index file.
    fn index_add(&self, id: &str, ifname: &str, ip: IpAddr) -> std::io::Result<()> {
        let mut index = self.index.borrow_mut();
        let line = format!("{ip} {} {ifname}\n", id.trim());
        OpenOptions::new().write(true).open(self.dir.join(INDEX))?.write_all_at(line.as_bytes(), index.len)?;
        index.len += line.len() as u64;
        index.entries.push((ip.to_string(), id.trim().to_owned(), ifname.to_owned()));
        Ok(())
    }

    fn index_remove(&self, ip: IpAddr) {
        let mut index = self.index.borrow_mut();
        let before = index.entries.len();
        let ip = ip.to_string();
        index.entries.retain(|(i, _, _)| *i != ip);
        if index.entries.len() != before {
            index.rewrite = true;
        }
    }

    /// Makes the index trustworthy: rebuilt from every allocation file when the directory
    /// changed behind it (once after host-local or an operator worked on the store). Files of
    /// older host-local versions (the id alone) cannot be indexed: then `false`, and callers
    /// read the whole store.
    fn ensure_index(&self) -> Result<bool, CniError> {
        if self.index_ok.get() {
            return Ok(true);
        }
        let all = self.allocations()?;
        if all.iter().any(|a| a.ifname.is_empty()) {
            return Ok(false);
        }
        let path = self.dir.join(INDEX);
        // Earlier versions kept the index in a directory of that name.
        if path.is_dir() {
            std::fs::remove_dir_all(&path).map_err(|e| io("remove", &path, e))?;
        }
        // Written now with a placeholder stamp (it must exist for appends); the real stamp
        // goes in when the lock is released, after every change to the directory.
        let mut index = Index {
            entries: all.into_iter().map(|a| (a.ip.to_string(), a.container_id, a.ifname)).collect(),
            ..Default::default()
        };
        let mut content = format!("{:STAMP_LEN$}\n", "");
        for (ip, id, ifname) in &index.entries {
            content.push_str(&format!("{ip} {id} {ifname}\n"));
        }
        overwrite(&path, &content).map_err(|e| io("write", &path, e))?;
        index.len = content.len() as u64;
        *self.index.borrow_mut() = index;
        self.index_ok.set(true);
        self.changed.set(true);
        Ok(true)
    }

    /// The addresses the index holds for (`id`, `ifname`).
    fn indexed(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        let id = id.trim();
        let index = self.index.borrow();
        index
            .entries
            .iter()
            .filter(|(_, i, n)| i == id && n == ifname)
            .filter_map(|(ip, _, _)| ip.parse().ok())
            .collect()
    }

    /// The last address reserved from range set `range_set`, if recorded and readable.
    pub fn last_reserved(&self, range_set: usize) -> Option<IpAddr> {
        let s = std::fs::read_to_string(self.dir.join(format!("{LAST_RESERVED}{range_set}"))).ok()?;
        s.trim().parse().ok()
    }

    /// Whether `ip` is reserved.
    pub fn is_reserved(&self, ip: IpAddr) -> bool {
        self.dir.join(ip.to_string()).exists()
    }

    /// Every allocation in the store (files named by an address).
    pub fn allocations(&self) -> Result<Vec<Allocation>, CniError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| io("read", &self.dir, e))?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<IpAddr>().ok()) else { continue };
            let Ok(content) = std::fs::read_to_string(entry.path()) else { continue };
            let mut lines = content.trim().lines();
            let container_id = lines.next().unwrap_or("").trim().to_owned();
            let ifname = lines.next().unwrap_or("").trim().to_owned();
            out.push(Allocation { ip, container_id, ifname });
        }
        out.sort_by_key(|a| (a.ip.is_ipv6(), super::range::to_u128(a.ip)));
        Ok(out)
    }

    /// The addresses held by (`id`, `ifname`) (or by `id` alone, in older files).
    pub fn by_id(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
        if self.ensure_index()? {
            return Ok(self.indexed(id, ifname));
        }
        Ok(self.allocations()?.into_iter().filter(|a| owned_by(a, id, ifname)).map(|a| a.ip).collect())
    }

    /// Releases every address held by (`id`, `ifname`), as host-local's `ReleaseByID` (falling
    /// back to files holding the id alone). Returns the addresses released.
    pub fn release(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
        let mut released = Vec::new();
        if self.ensure_index()? {
            for ip in self.indexed(id, ifname) {
                self.release_ip(ip)?;
                released.push(ip);
            }
            released.sort_by_key(|ip| (ip.is_ipv6(), super::range::to_u128(*ip)));
            return Ok(released);
        }
        let all = self.allocations()?;
        let exact: Vec<&Allocation> =
            all.iter().filter(|a| a.container_id == id.trim() && a.ifname == ifname).collect();
        let chosen: Vec<&Allocation> = if exact.is_empty() {
            all.iter().filter(|a| a.container_id == id.trim() && a.ifname.is_empty()).collect()
        } else {
            exact
        };
        for a in chosen {
            let path = self.dir.join(a.ip.to_string());
            self.changed.set(true);
            match std::fs::remove_file(&path) {
                Ok(()) => released.push(a.ip),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("remove", &path, e)),
            }
        }
        Ok(released)
    }

    /// Releases one address.
    pub fn release_ip(&self, ip: IpAddr) -> Result<(), CniError> {
        let path = self.dir.join(ip.to_string());
        self.index_remove(ip);
        self.changed.set(true);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &path, e)),
            _ => Ok(()),
        }
    }
}

fn owned_by(a: &Allocation, id: &str, ifname: &str) -> bool {
    a.container_id == id.trim() && (a.ifname == ifname || a.ifname.is_empty())
}
