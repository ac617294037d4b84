//! [`NetNsRef`]: the ways a caller names a network namespace it did not necessarily make — by
//! name, by file, by process, by thread, or by container id through the container runtime's own
//! state — resolved to a [`NetNs`] handle on demand.
//!
//! Resolution never trusts a bare PID: processes and threads are reached through a pidfd taken
//! first, and a container's init PID is accepted only if the runtime still names it *after* the
//! pidfd was opened (see [`NetNsRef::open`]), so a recycled PID is never mistaken for the
//! container.

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::exec::NsGuard;
use super::handle::{NETNS_RUN_DIR, NetNs, check_net_ns, open_ns_file, validate_ns_name};
use super::sys;
use crate::error::{Error, Result};

/// How long a container runtime may take to answer `state` / `inspect`.
const RUNTIME_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a [`NetNsRef`] could not be resolved, one variant per kind of bad reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The runtime has no container of that id.
    #[error("container {id:?} is not known to {runtime}")]
    UnknownContainer {
        /// The runtime asked (`crun`, `runc`, `podman`, ...).
        runtime: String,
        /// The container id as given.
        id: String,
    },
    /// The container exists but its init process is gone (stopped, exited, or its PID now
    /// belongs to another process).
    #[error("container {id:?} ({runtime}) is not running")]
    ContainerExited {
        /// The runtime asked.
        runtime: String,
        /// The container id as given.
        id: String,
    },
    /// The runtime could not be asked (not installed, failed, timed out, unreadable answer).
    #[error("cannot ask {runtime} about container {id:?}: {detail}")]
    Runtime {
        /// The runtime asked.
        runtime: String,
        /// The container id as given.
        id: String,
        /// What went wrong.
        detail: String,
    },
    /// No process (or thread) has this id, or it has exited.
    #[error("{kind} {pid} does not exist")]
    NoSuchProcess {
        /// `"process"` or `"thread"`.
        kind: &'static str,
        /// The id as given.
        pid: i32,
    },
    /// The file exists but is not a network namespace (not on nsfs, or another namespace type).
    #[error("{path} is not a network namespace: {reason}")]
    NotNetns {
        /// The path as given.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// [`NetNsRef::get_or_create`] on a reference that names something other than a pin file.
    #[error("cannot create a namespace for {reference}: only names and files can be created")]
    NotCreatable {
        /// The reference, described.
        reference: String,
    },
}

impl ReferenceError {
    /// True for the variants that mean "it is not there (any more)".
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ReferenceError::UnknownContainer { .. }
                | ReferenceError::ContainerExited { .. }
                | ReferenceError::NoSuchProcess { .. }
        )
    }
}

/// What a container runtime says about a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// No container of that id.
    Unknown,
    /// The container exists but has no live init process.
    Stopped,
    /// The container's init process (created, running or paused) has this PID.
    Running {
        /// The init PID, in the caller's PID namespace.
        pid: i32,
    },
}

/// Asks a container engine where a container's init process is. Implement it to plug in an
/// engine of your own (docker, containerd, ...); [`OciRuntime`] and [`Podman`] ship here.
///
/// Implementations only report what the engine records; [`NetNsRef::open`] does the PID-reuse
/// check (it calls [`state`](Self::state) twice around taking the pidfd).
pub trait ContainerResolver: Send + Sync + fmt::Debug {
    /// The engine's name, for messages (`"crun"`, `"podman"`, ...).
    fn runtime(&self) -> &str;
    /// The container's state now. Failing to ask at all is
    /// [`ReferenceError::Runtime`]; an id the engine does not know is
    /// [`ContainerState::Unknown`], not an error.
    fn state(&self, id: &str) -> Result<ContainerState>;
}

/// A reference to a network namespace.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NetNsRef {
    /// A pin named `name` in `dir` (`/run/netns` for iproute2's `ip netns` names).
    Name {
        /// The directory of named pins.
        dir: PathBuf,
        /// The name (one path component).
        name: String,
    },
    /// Any nsfs file: a pin, `/proc/<pid>/ns/net`, a bind mount made by another tool.
    File(PathBuf),
    /// The namespace of a process, reached through a pidfd.
    Pid(i32),
    /// The namespace of one thread (threads may `setns` on their own), through a thread pidfd.
    Thread(i32),
    /// The namespace of a container's init process, as its engine records it.
    Container {
        /// The container id.
        id: String,
        /// Who knows the container.
        resolver: Arc<dyn ContainerResolver>,
    },
}

impl fmt::Display for NetNsRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetNsRef::Name { dir, name } => write!(f, "name {name} (in {})", dir.display()),
            NetNsRef::File(p) => write!(f, "file {}", p.display()),
            NetNsRef::Pid(p) => write!(f, "pid {p}"),
            NetNsRef::Thread(t) => write!(f, "thread {t}"),
            NetNsRef::Container { id, resolver } => write!(f, "{} container {id}", resolver.runtime()),
        }
    }
}

impl NetNsRef {
    /// A name as `ip netns` uses it: `/run/netns/<name>`.
    pub fn name(name: impl Into<String>) -> NetNsRef {
        NetNsRef::Name { dir: PathBuf::from(NETNS_RUN_DIR), name: name.into() }
    }

    /// A name in a directory of pins other than `/run/netns`.
    pub fn name_in(dir: impl Into<PathBuf>, name: impl Into<String>) -> NetNsRef {
        NetNsRef::Name { dir: dir.into(), name: name.into() }
    }

    /// Any nsfs file.
    pub fn file(path: impl Into<PathBuf>) -> NetNsRef {
        NetNsRef::File(path.into())
    }

    /// A process's namespace.
    pub fn pid(pid: i32) -> NetNsRef {
        NetNsRef::Pid(pid)
    }

    /// A thread's namespace (a thread id, as `gettid` returns it).
    pub fn thread(tid: i32) -> NetNsRef {
        NetNsRef::Thread(tid)
    }

    /// The calling thread's namespace.
    pub fn current_thread() -> NetNsRef {
        NetNsRef::Thread(nix::unistd::gettid().as_raw())
    }

    /// A container's namespace, resolved through `resolver`.
    pub fn container(id: impl Into<String>, resolver: Arc<dyn ContainerResolver>) -> NetNsRef {
        NetNsRef::Container { id: id.into(), resolver }
    }

    /// Resolves the reference to an open handle.
    ///
    /// Guarantees: the handle is a network namespace; a missing name or file is
    /// [`Error::NotFound`]; every other failure to resolve is an [`Error::Reference`] naming
    /// the cause. For a container, the init PID the engine reports is opened as a pidfd and the
    /// engine is asked again: only when it still reports that PID as the running init is the
    /// pidfd's namespace returned. A PID recycled in between would have made the engine see a
    /// different process (runc and crun check the init's start time), so the second answer
    /// would not be "running with that PID".
    pub fn open(&self) -> Result<NetNs> {
        match self {
            NetNsRef::Name { dir, name } => {
                validate_ns_name(name)?;
                open_file(&dir.join(name))
            }
            NetNsRef::File(p) => open_file(p),
            NetNsRef::Pid(pid) => NetNs::from_pid(*pid).map_err(|e| match e {
                Error::NotFound { kind: "process", .. } => no_such("process", *pid),
                e => e,
            }),
            NetNsRef::Thread(tid) => open_thread(*tid),
            NetNsRef::Container { id, resolver } => open_container(id, resolver.as_ref()),
        }
    }

    /// True when [`open`](Self::open) would succeed now.
    pub fn is_available(&self) -> bool {
        self.open().is_ok()
    }

    /// Switches the calling thread into the namespace until the guard is dropped (see
    /// [`NsGuard`]: `!Send`, switches back on drop). Prefer [`run_in`](super::run_in).
    pub fn enter(&self) -> Result<NsGuard> {
        NsGuard::enter(&self.open()?)
    }

    /// Opens a named or file reference, creating and pinning a new namespace there when nothing
    /// is pinned yet (what `ip netns add` does, but idempotent). Two callers racing both get the
    /// same namespace. Other references are [`ReferenceError::NotCreatable`].
    pub fn get_or_create(&self) -> Result<NetNs> {
        let path = match self {
            NetNsRef::Name { dir, name } => {
                validate_ns_name(name)?;
                dir.join(name)
            }
            NetNsRef::File(p) => p.clone(),
            other => return Err(ReferenceError::NotCreatable { reference: other.to_string() }.into()),
        };
        match open_file(&path) {
            Err(e) if e.is_not_found() => {}
            other => return other,
        }
        match super::create_pinned(&path) {
            Ok(ns) => Ok(ns),
            // Someone else pinned it first: theirs is the one.
            Err(e) if e.is_already_exists() => open_file(&path),
            Err(e) => Err(e),
        }
    }
}

fn no_such(kind: &'static str, pid: i32) -> Error {
    ReferenceError::NoSuchProcess { kind, pid }.into()
}

/// Opens an nsfs file, turning "not a namespace" into [`ReferenceError::NotNetns`].
fn open_file(path: &Path) -> Result<NetNs> {
    match open_ns_file(path) {
        Ok(fd) => Ok(NetNs::from_owned(fd, path.display().to_string())),
        Err(Error::InvalidArgument { op: "open network namespace", reason }) => {
            Err(ReferenceError::NotNetns { path: path.to_owned(), reason }.into())
        }
        Err(e) => Err(e),
    }
}

fn open_thread(tid: i32) -> Result<NetNs> {
    let label = format!("thread {tid}");
    if tid <= 0 {
        return Err(Error::InvalidArgument { op: "open namespace of thread", reason: format!("bad thread id {tid}") });
    }
    let pidfd = match sys::pidfd_open_thread(tid) {
        Ok(fd) => fd,
        Err(Errno::ESRCH) => return Err(no_such("thread", tid)),
        // Kernels before 6.9 have no thread pidfds: /proc/<tid> (hidden but reachable).
        Err(Errno::EINVAL) => {
            log::debug!("no PIDFD_THREAD: opening /proc/{tid}/ns/net (not PID-reuse safe on this kernel)");
            return match open_ns_file(Path::new(&format!("/proc/{tid}/ns/net"))) {
                Ok(fd) => Ok(NetNs::from_owned(fd, label)),
                Err(e) if e.is_not_found() => Err(no_such("thread", tid)),
                Err(e) => Err(e),
            };
        }
        Err(e) => return Err(Error::os("pidfd_open", &label, e)),
    };
    // PIDFD_GET_NET_NAMESPACE refuses thread pidfds (EINVAL), so the thread's own /proc entry
    // is opened, then the pidfd taken before proves that thread is still the one alive: a
    // recycled thread id cannot slip in between.
    let fd = match open_ns_file(Path::new(&format!("/proc/{tid}/ns/net"))) {
        Ok(fd) => fd,
        Err(e) if e.is_not_found() => return Err(no_such("thread", tid)),
        Err(e) => return Err(e),
    };
    match sys::pidfd_alive(&pidfd) {
        Ok(()) => Ok(NetNs::from_owned(fd, label)),
        Err(Errno::ESRCH) => Err(no_such("thread", tid)),
        Err(e) => Err(Error::os("pidfd_send_signal", &label, e)),
    }
}

fn open_container(id: &str, resolver: &dyn ContainerResolver) -> Result<NetNs> {
    check_container_id(id)?;
    let runtime = resolver.runtime().to_owned();
    let exited = || Error::from(ReferenceError::ContainerExited { runtime: runtime.clone(), id: id.to_owned() });
    let pid = match resolver.state(id)? {
        ContainerState::Unknown => {
            return Err(ReferenceError::UnknownContainer { runtime: runtime.clone(), id: id.to_owned() }.into());
        }
        ContainerState::Stopped => return Err(exited()),
        ContainerState::Running { pid } if pid > 0 => pid,
        ContainerState::Running { pid } => {
            return Err(ReferenceError::Runtime {
                runtime: runtime.clone(),
                id: id.to_owned(),
                detail: format!("reported init pid {pid}"),
            }
            .into());
        }
    };
    let label = format!("{runtime} container {id}");
    let pidfd = match sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(Errno::ESRCH) => return Err(exited()),
        Err(e) => return Err(Error::os("pidfd_open", &label, e)),
    };
    // The pidfd now pins the identity of whatever process had `pid`. If the engine still
    // reports that PID as the container's running init, that process is the container's.
    match resolver.state(id)? {
        ContainerState::Running { pid: again } if again == pid => {}
        _ => return Err(exited()),
    }
    let fd = match sys::pidfd_net_ns(pidfd.as_fd()) {
        Ok(fd) => fd,
        Err(Errno::ESRCH) => return Err(exited()),
        Err(e @ (Errno::ENOTTY | Errno::EINVAL | Errno::EOPNOTSUPP)) => {
            log::debug!("PIDFD_GET_NET_NAMESPACE unavailable ({e}); using /proc/{pid}/ns/net");
            let fd = match open_ns_file(Path::new(&format!("/proc/{pid}/ns/net"))) {
                Ok(fd) => fd,
                Err(e) if e.is_not_found() => return Err(exited()),
                Err(e) => return Err(e),
            };
            // Still the same process: the namespace is not a successor's.
            if sys::pidfd_alive(&pidfd).is_err() {
                return Err(exited());
            }
            fd
        }
        Err(e) => return Err(Error::os("get network namespace of", &label, e)),
    };
    check_net_ns(fd.as_fd(), &label)?;
    Ok(NetNs::from_owned(fd, label))
}

/// A container id is passed to a runtime's command line: no option look-alikes, no path
/// tricks, nothing a shell or the runtime could misread.
fn check_container_id(id: &str) -> Result<()> {
    let reason = if id.starts_with('-') {
        Some("starts with '-'")
    } else if id.len() > 1024 {
        Some("longer than 1024 bytes")
    } else {
        crate::validate::file_name(id).err()
    };
    match reason {
        Some(reason) => Err(Error::InvalidKey { key: id.to_owned(), reason }),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Resolvers
// ---------------------------------------------------------------------------------------------

/// An OCI runtime with a `state ID` command that prints the state JSON (crun, runc, youki):
/// `<binary> [args...] [--root R] state ID`.
#[derive(Debug, Clone)]
pub struct OciRuntime {
    name: String,
    binary: PathBuf,
    root: Option<PathBuf>,
    args: Vec<OsString>,
}

impl OciRuntime {
    /// A runtime found as `binary` on `PATH` (or a path), named `binary` in messages.
    pub fn new(binary: impl Into<PathBuf>) -> OciRuntime {
        let binary = binary.into();
        let name = binary.file_name().map_or_else(|| binary.display().to_string(), |n| n.to_string_lossy().into());
        OciRuntime { name, binary, root: None, args: Vec::new() }
    }

    /// crun (default state root `/run/crun`).
    pub fn crun() -> OciRuntime {
        OciRuntime::new("crun")
    }

    /// runc (default state root `/run/runc`).
    pub fn runc() -> OciRuntime {
        OciRuntime::new("runc")
    }

    /// The state root the engine passes as `--root` (e.g. podman's `/run/crun`, or a test's).
    pub fn root(mut self, root: impl Into<PathBuf>) -> OciRuntime {
        self.root = Some(root.into());
        self
    }

    /// An extra global argument placed before `--root` (e.g. `--cgroup-manager=disabled`).
    pub fn arg(mut self, arg: impl Into<OsString>) -> OciRuntime {
        self.args.push(arg.into());
        self
    }
}

impl ContainerResolver for OciRuntime {
    fn runtime(&self) -> &str {
        &self.name
    }

    fn state(&self, id: &str) -> Result<ContainerState> {
        check_container_id(id)?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.args);
        if let Some(root) = &self.root {
            cmd.arg("--root").arg(root);
        }
        cmd.arg("state").arg(id);
        let out = run_tool(cmd, &self.name, id)?;
        if !out.success {
            if says_unknown(&out.stderr) {
                return Ok(ContainerState::Unknown);
            }
            return Err(runtime_error(&self.name, id, format!("state failed: {}", out.stderr.trim())));
        }
        parse_oci_state(&out.stdout).map_err(|d| runtime_error(&self.name, id, d))
    }
}

/// Podman: `podman [args...] container inspect --format '{{.State.Pid}}' ID` (0 when stopped).
#[derive(Debug, Clone)]
pub struct Podman {
    binary: PathBuf,
    args: Vec<OsString>,
}

impl Podman {
    /// `podman` from `PATH`.
    pub fn new() -> Podman {
        Podman { binary: PathBuf::from("podman"), args: Vec::new() }
    }

    /// An extra global argument (`--root`, `--runroot`, `--cgroup-manager=cgroupfs`, ...).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Podman {
        self.args.push(arg.into());
        self
    }
}

impl Default for Podman {
    fn default() -> Self {
        Podman::new()
    }
}

impl ContainerResolver for Podman {
    fn runtime(&self) -> &str {
        "podman"
    }

    fn state(&self, id: &str) -> Result<ContainerState> {
        check_container_id(id)?;
        let mut cmd = Command::new(&self.binary);
        cmd.args(&self.args).args(["container", "inspect", "--format", "{{.State.Pid}}", id]);
        let out = run_tool(cmd, "podman", id)?;
        if !out.success {
            if says_unknown(&out.stderr) {
                return Ok(ContainerState::Unknown);
            }
            return Err(runtime_error("podman", id, format!("inspect failed: {}", out.stderr.trim())));
        }
        parse_podman_pid(&out.stdout).map_err(|d| runtime_error("podman", id, d))
    }
}

fn runtime_error(runtime: &str, id: &str, detail: String) -> Error {
    ReferenceError::Runtime { runtime: runtime.to_owned(), id: id.to_owned(), detail }.into()
}

/// How runtimes say "no such container" (crun: the status file is missing; runc: "does not
/// exist"; podman: "no such container" / "no such object").
fn says_unknown(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    ["does not exist", "no such file or directory", "no such container", "no such object", "not found"]
        .iter()
        .any(|m| s.contains(m))
}

/// Parses `crun/runc state` output: `pid` and `status`.
pub(crate) fn parse_oci_state(json: &str) -> std::result::Result<ContainerState, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("state is not JSON: {e}"))?;
    let status = v.get("status").and_then(|s| s.as_str()).ok_or("state has no \"status\"")?;
    let pid = v.get("pid").and_then(|p| p.as_i64()).unwrap_or(0);
    match status {
        "stopped" => Ok(ContainerState::Stopped),
        // "creating": no init yet worth joining.
        "creating" => Ok(ContainerState::Stopped),
        "created" | "running" | "paused" | "pausing" => match i32::try_from(pid) {
            Ok(p) if p > 0 => Ok(ContainerState::Running { pid: p }),
            _ => Ok(ContainerState::Stopped),
        },
        other => Err(format!("unknown status {other:?}")),
    }
}

/// Parses `podman inspect --format '{{.State.Pid}}'` output.
pub(crate) fn parse_podman_pid(out: &str) -> std::result::Result<ContainerState, String> {
    let t = out.trim();
    let pid: i64 = t.parse().map_err(|_| format!("pid {t:?} is not a number"))?;
    match i32::try_from(pid) {
        Ok(0) => Ok(ContainerState::Stopped),
        Ok(p) if p > 0 => Ok(ContainerState::Running { pid: p }),
        _ => Err(format!("pid {pid} out of range")),
    }
}

struct ToolOutput {
    success: bool,
    stdout: String,
    stderr: String,
}

/// Runs a runtime's query command with a deadline; its outputs are small (a state JSON), so the
/// pipes cannot fill before it exits.
fn run_tool(mut cmd: Command, runtime: &str, id: &str) -> Result<ToolOutput> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| runtime_error(runtime, id, format!("cannot run {runtime}: {e}")))?;
    let deadline = Instant::now() + RUNTIME_TIMEOUT;
    // Read while waiting so a chattier tool cannot block on a full pipe.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        let _ = err_tx.send(s);
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        let _ = tx.send(s);
    });
    let out = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(runtime_error(runtime, id, format!("no answer within {} s", RUNTIME_TIMEOUT.as_secs())));
            }
            Err(e) => return Err(runtime_error(runtime, id, format!("wait: {e}"))),
        }
    };
    let stdout = out.unwrap_or_default();
    let stderr = err_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).unwrap_or_default();
    Ok(ToolOutput { success: status.success(), stdout, stderr })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oci_state_parsing() {
        let running = r#"{"ociVersion":"1.0.0","id":"c1","pid":14263,"status":"running","bundle":"/b"}"#;
        assert_eq!(parse_oci_state(running), Ok(ContainerState::Running { pid: 14263 }));
        let created = r#"{"id":"c1","pid":7,"status":"created"}"#;
        assert_eq!(parse_oci_state(created), Ok(ContainerState::Running { pid: 7 }));
        let stopped = r#"{"id":"c1","pid":0,"status":"stopped"}"#;
        assert_eq!(parse_oci_state(stopped), Ok(ContainerState::Stopped));
        assert!(parse_oci_state("{").is_err());
        assert!(parse_oci_state(r#"{"pid":1}"#).is_err());
        assert!(parse_oci_state(r#"{"pid":1,"status":"dancing"}"#).is_err());
        assert_eq!(parse_oci_state(r#"{"pid":99999999999,"status":"running"}"#), Ok(ContainerState::Stopped));
    }

    #[test]
    fn podman_pid_parsing() {
        assert_eq!(parse_podman_pid("4242\n"), Ok(ContainerState::Running { pid: 4242 }));
        assert_eq!(parse_podman_pid("0\n"), Ok(ContainerState::Stopped));
        assert!(parse_podman_pid("<no value>").is_err());
        assert!(parse_podman_pid("-5").is_err());
    }

    #[test]
    fn container_ids() {
        assert!(check_container_id("4f1c2a9e7b3d").is_ok());
        for bad in ["", "-rf", "--root=/", "a/b", "..", "a b", "a\0b"] {
            assert!(check_container_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_markers() {
        assert!(says_unknown("error opening file `/r/x/status`: No such file or directory"));
        assert!(says_unknown("container does not exist"));
        assert!(says_unknown("Error: no such container x"));
        assert!(!says_unknown("permission denied"));
    }
}
