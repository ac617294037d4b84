//! Destroying many sandboxes at once.
//!
//! Deleting a link costs the kernel tens of milliseconds of waiting for RCU, once per deletion
//! request. Deleting a whole device group is one request and one wait, so the veth pairs that
//! `add_veth` made are deleted together from the origin side.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use log::{debug, warn};

use super::host::Host;
use super::mark;
use super::{Live, NetnsSandbox, Reaped};
use crate::error::{Error, Result};
use crate::netlink::LinkKind;
use crate::netlink::link::{self, LinkChange, LinkRef};
use crate::netlink::{BatchMode, Request};

/// Device groups for batch deletions: high in the `u32` range, away from the small numbers
/// groups are given by hand, and checked to be empty before each use.
static NEXT_GROUP: AtomicU32 = AtomicU32::new(0x6e73_0000);

impl NetnsSandbox {
    /// Destroys every sandbox in `sandboxes` with the guarantees of
    /// [`destroy`](crate::sandbox::Sandbox::destroy) for each: links moved in go home, links
    /// the sandbox made are deleted (a veth's host end is gone on return), the pin is removed.
    ///
    /// Faster than destroying one by one: the veth pairs made by
    /// [`add_veth`](crate::sandbox::Sandbox::add_veth) are put into a fresh device group in
    /// their origin namespace and deleted with one request, so the kernel's RCU wait is paid
    /// once for all of them (measured in BENCHMARKS.md). A host end is only included after
    /// checking that it is the peer of the sandbox's veth (its peer index and namespace id
    /// match); anything not deleted that way goes as in `destroy`. Choosing a group nothing else
    /// uses costs one dump of the origin's links, so for a single sandbox plain `destroy` is
    /// cheaper. Sandboxes already destroyed (or listed twice) are skipped. Returns the first
    /// error after trying every sandbox.
    ///
    /// Sandboxes whose namespace the sandbox made take the short path of
    /// [`destroy_detached`](Self::destroy_detached) instead (nothing deleted on the caller's
    /// path, and the kernel frees all their namespaces in one batch), so for them the host ends
    /// may still exist on return: use [`destroy_many_detached`](Self::destroy_many_detached)
    /// to wait for the kernel. The group deletion remains for adopted namespaces.
    pub fn destroy_many(sandboxes: &[&NetnsSandbox]) -> Result<()> {
        Self::destroy_many_detached(sandboxes).map(drop)
    }

    /// [`destroy_many`](Self::destroy_many), with one [`Reaped`] for everything left to the
    /// kernel.
    pub fn destroy_many_detached(sandboxes: &[&NetnsSandbox]) -> Result<Reaped> {
        let mut reaped = Reaped::default();
        let mut first_error = None;
        let mut slow = Vec::new();
        // Every sandbox's links are read before the first namespace is let go: once the kernel
        // starts reaping, its clean-up holds RTNL for whole batches, and each link dump would
        // wait behind it (at 5 000 sandboxes that wait was most of the teardown).
        let mut short = Vec::with_capacity(sandboxes.len());
        for sb in sandboxes {
            let taken = sb.live.write().take();
            let Some(live) = taken else { continue };
            if !sb.owned {
                slow.push((*sb, live));
                continue;
            }
            if !sb.pinned_here(&live) {
                continue;
            }
            // A namespace the sandbox made takes the short path; adopted ones are grouped.
            match live.sock.links() {
                Ok(links) if super::owned(&links) => short.push((*sb, live, links)),
                _ => slow.push((*sb, live)),
            }
        }
        for (sb, live, links) in short {
            match super::reap::teardown(sb, live, links) {
                Ok((report, r)) => {
                    log_left_behind(sb, report);
                    reaped.merge(r);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Err(e) = Self::destroy_many_grouped(slow) {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(reaped), Err)
    }

    /// The synchronous batch: host ends grouped and deleted with one request.
    fn destroy_many_grouped(lives: Vec<(&NetnsSandbox, Live)>) -> Result<()> {
        let mut by_origin: Vec<(Arc<Host>, Vec<u32>)> = Vec::new();
        for (sb, live) in lives.iter().filter(|(sb, _)| sb.owned) {
            let ends = match host_ends(sb, live) {
                Ok(ends) => ends,
                Err(e) => {
                    debug!("{}: host ends not batched ({e}); they go with the sandbox", sb.key);
                    continue;
                }
            };
            match by_origin.iter_mut().find(|(h, _)| Arc::ptr_eq(h, &sb.host)) {
                Some((_, all)) => all.extend(ends),
                None => by_origin.push((Arc::clone(&sb.host), ends)),
            }
        }
        for (host, ends) in by_origin.iter().filter(|(_, ends)| !ends.is_empty()) {
            if let Err(e) = delete_together(host, ends) {
                warn!("batch deletion of {} veth pairs failed ({e}); deleting them one by one", ends.len());
            }
        }
        let mut first_error = None;
        for (sb, live) in lives {
            match sb.empty_and_unpin(live) {
                Ok(report) => log_left_behind(sb, report),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

fn log_left_behind(sb: &NetnsSandbox, report: super::DestroyReport) {
    for (name, why) in report.left_behind {
        warn!("sandbox {}: {name} left in the namespace: {why}", sb.key);
    }
}

/// Origin-side indexes of the veths `add_veth` made in this sandbox, each checked to be the
/// peer of the link inside: a veth whose peer has the inside link's index, in the namespace the
/// origin knows as this sandbox's.
fn host_ends(sb: &NetnsSandbox, live: &Live) -> Result<Vec<u32>> {
    let made: Vec<_> =
        live.sock.links()?.into_iter().filter(|l| l.kind == LinkKind::Veth && mark::is_created(&l.altnames)).collect();
    if made.is_empty() {
        return Ok(Vec::new());
    }
    let Some(nsid) = sb.host.sock.nsid_of(&live.ns()?)? else { return Ok(Vec::new()) };
    let mut ends = Vec::with_capacity(made.len());
    for inside in made {
        let Some(peer) = inside.link else { continue };
        match sb.host.sock.link(LinkRef::Index(peer)) {
            Ok(h) if h.kind == LinkKind::Veth && h.link == Some(inside.index) && h.netnsid == Some(nsid) => {
                ends.push(h.index)
            }
            _ => debug!("{}: {} has no peer in the origin; deleted from inside", sb.key, inside.name),
        }
    }
    Ok(ends)
}

/// Moves `ends` into a device group nothing else in the origin uses, then deletes the group.
fn delete_together(host: &Host, ends: &[u32]) -> Result<()> {
    let group = unused_group(host)?;
    let reqs: Vec<Request> =
        ends.iter().map(|&i| LinkChange::new().group(group).request(LinkRef::Index(i))).collect::<Result<_>>()?;
    let report = host.sock.batch(&reqs, BatchMode::Continue)?;
    let grouped = report.outcomes.iter().filter(|o| o.is_applied()).count();
    if grouped == 0 {
        return Ok(());
    }
    host.sock.execute(link::delete_group(group)?)?;
    debug!("deleted {grouped} veth pairs as device group {group:#x}");
    Ok(())
}

/// A device group no link in the origin is in now.
fn unused_group(host: &Host) -> Result<u32> {
    let used: HashSet<u32> = host.sock.links()?.iter().map(|l| l.group).collect();
    (0..1024)
        .map(|_| NEXT_GROUP.fetch_add(1, Ordering::Relaxed))
        .find(|g| *g != 0 && !used.contains(g))
        .ok_or_else(|| Error::Unsupported { feature: "batch deletion", detail: "no unused device group found".into() })
}
