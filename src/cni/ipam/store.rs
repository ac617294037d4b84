//! host-local's on-disk store, read and written the same way, so the built-in allocator and
//! Debian's `host-local` can take turns on one data directory.
//!
//! Layout of `<dataDir>/<network>/`: one file per allocated address, named by the address and
//! holding `<container id>\r\n<ifname>` (older host-local wrote the id alone);
//! `last_reserved_ip.<range set index>` holding the last address handed out from that range
//! set; and `lock`, which every writer holds with `flock(LOCK_EX)` while it works.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
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

fn io(op: &str, path: &Path, e: impl std::fmt::Display) -> CniError {
    CniError::new(ErrorCode::Io, format!("ipam store: {op} {}: {e}", path.display()))
}

/// One network's directory, locked for as long as this value lives.
pub struct Store {
    dir: PathBuf,
    _lock: Flock<File>,
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
                Ok(lock) => return Ok(Store { dir, _lock: lock }),
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
        let last = self.dir.join(format!("{LAST_RESERVED}{range_set}"));
        std::fs::write(&last, ip.to_string()).map_err(|e| io("write", &last, e))?;
        Ok(true)
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
        Ok(self.allocations()?.into_iter().filter(|a| owned_by(a, id, ifname)).map(|a| a.ip).collect())
    }

    /// Releases every address held by (`id`, `ifname`), as host-local's `ReleaseByID` (falling
    /// back to files holding the id alone). Returns the addresses released.
    pub fn release(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
        let mut released = Vec::new();
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
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", &path, e)),
            _ => Ok(()),
        }
    }
}

fn owned_by(a: &Allocation, id: &str, ifname: &str) -> bool {
    a.container_id == id.trim() && (a.ifname == ifname || a.ifname.is_empty())
}
