//! Running code inside a namespace without ever moving the caller's thread.

use std::marker::PhantomData;

use nix::sched::CloneFlags;

use super::handle::{NetNs, panic_message};
use crate::error::{Error, Result};

/// Runs `f` inside `ns` and returns its value.
///
/// Guarantees:
/// - `f` runs on a fresh thread that joined `ns` (`setns(CLONE_NEWNET)`) before running it; that
///   thread exits when `f` returns, so a thread left in a foreign namespace is never reused.
/// - The calling thread never changes namespace, even if `f` panics.
/// - A panic in `f` is caught and returned as [`Error::Panicked`] with the namespace's label.
///
/// `f` may borrow from the caller (the thread is scoped). Everything `f` opens that follows the
/// opener's namespace (sockets, `/proc/sys/net` files) belongs to `ns`.
pub fn run_in<T, F>(ns: &NetNs, f: F) -> Result<T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("netns-run".into())
            .spawn_scoped(s, || -> Result<std::thread::Result<T>> {
                nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| Error::os("setns", ns.label(), e))?;
                Ok(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)))
            })
            .map_err(|e| Error::os("spawn thread", "netns-run", e))?;
        let joined = h.join();
        match joined {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(p))) | Err(p) => {
                let message = panic_message(&*p);
                log::debug!("closure in namespace {} panicked: {message}", ns.label());
                Err(Error::Panicked { ns: ns.label().to_owned(), message })
            }
            Ok(Err(e)) => Err(e),
        }
    })
}

/// Like [`run_in`] for a fallible closure: the closure's error and the hop's error are flattened.
pub fn run_in_result<T, F>(ns: &NetNs, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send,
    T: Send,
{
    run_in(ns, f)?
}

/// Moves the *calling* thread into a namespace until dropped.
///
/// Prefer [`run_in`]: it never moves the caller. `NsGuard` exists for code that must run on the
/// current thread (e.g. it holds thread-bound state).
///
/// Guarantees:
/// - It is `!Send`: it is dropped on the thread it moved, so the switch back applies to that
///   thread (a guard carried across an `.await` onto another worker cannot compile).
/// - On drop the thread returns to the namespace it was in when the guard was made. If that
///   `setns` fails the process is **aborted**: a thread silently left in a foreign namespace would
///   corrupt unrelated work later (the libnetwork bug), and there is no way to report an error
///   from `drop` that the caller could not ignore.
///
/// Guards must be dropped in reverse order of creation (normal scoping does this).
///
/// ```compile_fail
/// fn need_send<T: Send>() {}
/// need_send::<netsandbox::netns::NsGuard>();
/// ```
#[derive(Debug)]
pub struct NsGuard {
    original: NetNs,
    _not_send: PhantomData<*const ()>,
}

impl NsGuard {
    /// Switches the calling thread into `ns`; the returned guard switches it back.
    pub fn enter(ns: &NetNs) -> Result<NsGuard> {
        let original = NetNs::current()?;
        nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| Error::os("setns", ns.label(), e))?;
        Ok(NsGuard { original, _not_send: PhantomData })
    }
}

impl Drop for NsGuard {
    fn drop(&mut self) {
        return_or_abort(&self.original);
    }
}

/// Puts the calling thread back into `home`, or aborts: a thread silently left in a foreign
/// namespace would corrupt unrelated work later (the libnetwork bug).
fn return_or_abort(home: &NetNs) {
    if let Err(e) = nix::sched::setns(home, CloneFlags::CLONE_NEWNET) {
        log::error!(
            "cannot return thread to its network namespace ({e}); aborting rather than run on in the wrong one"
        );
        std::process::abort();
    }
}

/// Where [`hop`] takes the calling thread.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// A brand-new namespace (`unshare`); it lives on only through what the closure keeps of it
    /// (a bind mount, an fd, a socket).
    New,
    /// An existing namespace (`setns`).
    Existing(&'a NetNs),
}

impl Target<'_> {
    fn enter(self, who: &str) -> Result<()> {
        match self {
            Target::New => {
                nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::os("unshare(CLONE_NEWNET)", who, e))
            }
            Target::Existing(ns) => {
                nix::sched::setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| Error::os("setns", ns.label(), e))
            }
        }
    }

    fn label(self) -> String {
        match self {
            Target::New => "new namespace".into(),
            Target::Existing(ns) => ns.label().to_owned(),
        }
    }
}

/// Runs netsandbox's own short set-up work `f` inside `to` and returns its value. Not for user
/// closures: those get a thread of their own ([`run_in`]).
///
/// Fast path: the calling thread enters `to` itself, runs `f`, and is back in `home` (which
/// must be its current namespace) before this returns, also when `f` panics. That saves
/// spawning and joining a thread (~90 µs here, more than all of netsandbox's own per-sandbox
/// work). It is taken only after joining `home` has just succeeded: that is the permission the
/// way back needs, so the thread cannot be stranded. (In a user namespace that does not own
/// `home` it would be; there a short-lived helper thread does the work instead.)
pub(crate) fn hop<T, F>(home: &NetNs, to: Target<'_>, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send,
    T: Send,
{
    if nix::sched::setns(home, CloneFlags::CLONE_NEWNET).is_err() {
        log::debug!("cannot re-join {}: entering {} on a helper thread", home.label(), to.label());
        return on_helper_thread(to, f);
    }
    to.enter("calling thread")?;
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    return_or_abort(home);
    ran.unwrap_or_else(|p| Err(Error::Panicked { ns: to.label(), message: panic_message(&*p) }))
}

/// [`hop`] on a short-lived thread of its own; the caller never changes namespace.
fn on_helper_thread<T, F>(to: Target<'_>, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send,
    T: Send,
{
    std::thread::scope(|s| {
        let h = std::thread::Builder::new()
            .name("netns-hop".into())
            .spawn_scoped(s, || -> Result<T> {
                to.enter("helper thread")?;
                f()
            })
            .map_err(|e| Error::os("spawn thread", "netns-hop", e))?;
        h.join().map_err(|p| Error::Panicked { ns: to.label(), message: panic_message(&*p) })?
    })
}
