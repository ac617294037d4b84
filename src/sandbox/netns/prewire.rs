//! Pre-wired pool entries: a veth pair made ahead of time, so `add_veth` after a pool take
//! only renames and configures.
//!
//! The pair is made off the caller's path by the pool's refill: the sandbox end is born inside
//! as `eth0`, the host end gets a temporary unique name (`nsw…`), both are down. The first
//! `add_veth(host_name, "eth", opts)` on the taken sandbox renames the host end to `host_name`
//! and applies `opts` to both ends, in two request batches (origin, sandbox), instead of
//! creating the pair (~0.5 ms of kernel device registration).

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU32, Ordering};

use log::debug;

use super::NetnsSandbox;
use super::host::Host;
use crate::error::{Error, Result};
use crate::netlink::link::{self, LinkChange, LinkRef, VethPeer};
use crate::netlink::view::FromReply;
use crate::netlink::wire::NLM_F_ECHO;
use crate::netlink::{BatchMode, Link, Request, Socket};
use crate::netns::NetNs;
use crate::sandbox::options::IfaceOptions;

/// The name the sandbox end is born with.
pub(super) const INSIDE_NAME: &str = "eth0";

static NEXT: AtomicU32 = AtomicU32::new(0);

fn temporary_name() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed) & 0x0fff_ffff;
    format!("nsw{:05x}{n:07x}", std::process::id() & 0xf_ffff)
}

/// A veth pair waiting in a pooled namespace.
#[derive(Debug, Clone)]
pub(super) struct Prewired {
    /// Host end's ifindex in the origin.
    pub host_index: u32,
    /// Sandbox end's ifindex inside.
    pub inside_index: u32,
    /// The host end's temporary name.
    pub host_name: String,
    /// The host end already has IPv6 switched off (no link-local, `disable_ipv6`), the
    /// library's default, so the take does not pay for it.
    pub ipv6_off: bool,
}

/// Makes the pair for a pooled namespace `ns` (its socket `inside`), both ends down.
pub(super) fn make(host: &Host, ns: &NetNs, inside: &Socket) -> Result<Prewired> {
    host.name_newest_first(ns);
    for _attempt in 0..3 {
        let name = temporary_name();
        let peer = VethPeer { name: INSIDE_NAME.to_owned(), netns: Some(ns.as_fd()), ..Default::default() };
        let mut req = link::create_veth(&name, None, &peer)?;
        req.flags |= NLM_F_ECHO;
        let echoed = match host.sock.query(req) {
            Err(e) if e.is_already_exists() => continue,
            r => r?,
        };
        let host_end = echoed.iter().filter_map(Link::from_reply).filter_map(|r| r.ok()).find(|l| l.name == name);
        let inside_index = match host_end.as_ref().and_then(|l| l.link) {
            Some(i) => i,
            None => inside.link(LinkRef::Name(INSIDE_NAME))?.index,
        };
        let host_index = match host_end {
            Some(l) => l.index,
            None => host.sock.link(LinkRef::Name(&name))?.index,
        };
        // The sandbox end's "created" marker (`configure` would add it on the caller's path).
        inside.execute(link::add_altname(LinkRef::Index(inside_index), &super::mark::created(inside_index))?)?;
        // The default (`host_link_local(false)`) applied now, off the caller's path.
        super::iface::host_end_ipv6(host, &name, false, "pool");
        let ipv6_off =
            host.sock.set_link(LinkRef::Index(host_index), &LinkChange::new().ipv6_link_local(false)).is_ok();
        return Ok(Prewired { host_index, inside_index, host_name: name, ipv6_off });
    }
    Err(Error::Unsupported { feature: "pre-wired pool", detail: "no free temporary host-end name".into() })
}

/// Puts the pre-wired pair to use for `add_veth(host_name, …)`: one origin request renames the
/// host end, gives it `opts`' MTU and bridge, and brings it up (its IPv6 is already off, the
/// default, unless `opts` wants a link-local address); hairpin mode, when asked, follows. Returns
/// the sandbox end's index; its MAC, MTU and the rest are applied by `configure` like any link.
/// On failure the pair is untouched (still pre-wired) unless the kernel applied part of it.
pub(super) fn adopt(
    sb: &NetnsSandbox,
    p: &mut Prewired,
    host_name: &str,
    opts: &IfaceOptions,
    host_master: Option<u32>,
) -> Result<u32> {
    let at = LinkRef::Index(p.host_index);
    let mut reqs: Vec<Request> = Vec::new();
    // The waiting host end's IPv6 mode differs from the one `opts` wants: switch it first.
    if opts.host_link_local == p.ipv6_off {
        let on = opts.host_link_local;
        super::iface::host_end_ipv6(&sb.host, &p.host_name, on, &sb.key);
        reqs.push(LinkChange::new().ipv6_link_local(on).request(at)?);
    }
    // The sandbox end is still down: the host end has no carrier, so nothing happens between
    // coming up and joining the bridge within this request.
    let mut change = LinkChange::new().name(host_name).up(true);
    if let Some(mtu) = opts.mtu {
        change = change.mtu(mtu);
    }
    if let Some(m) = host_master {
        change = change.master(m);
    }
    let main = reqs.len();
    reqs.push(change.request(at)?);
    if opts.host_hairpin {
        reqs.push(LinkChange::new().hairpin(true).request(at)?);
    }
    let mut report = sb.host.sock.batch(&reqs, BatchMode::StopAtFirstError)?;
    if main == 1 && report.outcomes.first().is_some_and(|o| o.is_applied()) {
        // Recorded for a pair that goes back to waiting if the rest fails.
        p.ipv6_off = !opts.host_link_local;
    }
    // The name may be held by the host end of a sandbox destroyed a moment ago (see `reap`).
    if report.outcomes.get(main).is_some_and(|o| !o.is_applied())
        && report.first_error().is_some_and(|(_, e)| e.is_already_exists())
        && super::reap::unblock_name(&sb.host, host_name)
    {
        report = sb.host.sock.batch(&reqs, BatchMode::StopAtFirstError)?;
    }
    match report.first_error() {
        None => {
            debug!("{}: pre-wired pair adopted as {host_name}", sb.key);
            Ok(p.inside_index)
        }
        Some((_, e)) if e.is_already_exists() => Err(Error::AlreadyExists { kind: "link", name: host_name.to_owned() }),
        Some(_) => report.into_result().map(|()| p.inside_index),
    }
}
