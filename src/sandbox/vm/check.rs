//! The one validation path of the VM API ([`VmSandbox`](super::VmSandbox)).
//!
//! [`NetnsSandbox`](crate::sandbox::NetnsSandbox) and [`FakeSandbox`](crate::sandbox::FakeSandbox)
//! call these functions, in the same order, before they change anything: first the input checks
//! (pure), then the rules that need the sandbox's state, given as plain facts each
//! implementation reads from where it keeps its state (the kernel, or memory). So the two cannot
//! disagree on what is valid or on which error comes first.

use super::{AttachMode, AttachOptions, MAX_QUEUES, TapInfo, TapOptions};
use crate::error::{Error, Result};
use crate::validate;

/// The interface an attachment would use, as the sandbox holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    /// It is the loopback.
    pub(crate) loopback: bool,
    /// It has an Ethernet address.
    pub(crate) has_mac: bool,
    /// It is a bridge port (has a master).
    pub(crate) has_master: bool,
    /// It has an ingress qdisc (only asked in tc mode).
    pub(crate) ingress_qdisc: bool,
    /// A VM attachment already uses it.
    pub(crate) attached: bool,
}

/// A queue count: 1..=[`MAX_QUEUES`].
pub(crate) fn queues(n: u16, op: &'static str) -> Result<()> {
    if n == 0 || n > MAX_QUEUES {
        return Err(Error::InvalidArgument { op, reason: format!("{n} queues, not 1..={MAX_QUEUES}") });
    }
    Ok(())
}

/// `vm_attach`'s input: the interface name, the queue count, the TAP and bridge names.
pub(crate) fn attach_input(iface: &str, opts: &AttachOptions) -> Result<()> {
    validate::ifname(iface)?;
    queues(opts.queues, "vm attach")?;
    for n in opts.tap_name.iter().chain(&opts.bridge_name) {
        validate::ifname(n)?;
    }
    Ok(())
}

/// `vm_attach`'s interface: `target` is `None` when no such interface exists.
pub(crate) fn attach_target(iface: &str, mode: AttachMode, target: Option<&Target>) -> Result<()> {
    let t = target.ok_or_else(|| Error::NotFound { kind: "interface", name: iface.to_owned() })?;
    if t.loopback {
        return Err(Error::InvalidArgument { op: "vm attach", reason: format!("{iface} is the loopback") });
    }
    if !t.has_mac {
        return Err(Error::InvalidArgument { op: "vm attach", reason: format!("{iface} has no Ethernet address") });
    }
    if t.has_master {
        return Err(Error::AlreadyExists { kind: "bridge port (interface has a master)", name: iface.to_owned() });
    }
    if mode == AttachMode::TcRedirect && t.ingress_qdisc {
        return Err(Error::AlreadyExists { kind: "ingress qdisc", name: iface.to_owned() });
    }
    if t.attached {
        return Err(Error::AlreadyExists { kind: "vm attachment", name: iface.to_owned() });
    }
    Ok(())
}

/// The names of the devices an attachment creates on the interface with ifindex `index`:
/// `(tap, bridge)`; `nsvm<index>` (`nsmvt<index>` for a macvtap) and `nsbr<index>` unless named.
pub(crate) fn device_names(opts: &AttachOptions, index: u32) -> (String, String) {
    let tap = opts.tap_name.clone().unwrap_or_else(|| match opts.mode {
        AttachMode::Macvtap => format!("nsmvt{index}"),
        _ => format!("nsvm{index}"),
    });
    let bridge = opts.bridge_name.clone().unwrap_or_else(|| format!("nsbr{index}"));
    (tap, bridge)
}

/// The devices to create must not exist yet (`taken`: whether a link of that name exists).
pub(crate) fn names_free(mode: AttachMode, tap: &str, bridge: &str, taken: impl Fn(&str) -> bool) -> Result<()> {
    let mut names = vec![tap];
    if mode == AttachMode::Bridge {
        names.push(bridge);
    }
    for n in names {
        if taken(n) {
            return Err(Error::AlreadyExists { kind: "interface", name: n.to_owned() });
        }
    }
    Ok(())
}

/// `vm_detach`, `vm_inspect`, `vm_recover`: the interface must exist (`iface_found`) and be
/// attached.
pub(crate) fn attached(iface: &str, iface_found: bool, attached: bool) -> Result<()> {
    if !iface_found {
        return Err(Error::NotFound { kind: "interface", name: iface.to_owned() });
    }
    if !attached {
        return Err(Error::NotFound { kind: "vm attachment", name: iface.to_owned() });
    }
    Ok(())
}

/// `create_tap`: the options, then the name (`taken`: a link of that name exists).
pub(crate) fn create_tap(opts: &TapOptions, taken: impl FnOnce(&str) -> Result<bool>) -> Result<()> {
    opts.check()?;
    if taken(&opts.name)? {
        return Err(Error::AlreadyExists { kind: "interface", name: opts.name.clone() });
    }
    Ok(())
}

/// `open_tap`'s input.
pub(crate) fn open_tap_input(name: &str, n: u16) -> Result<()> {
    validate::ifname(name)?;
    queues(n, "tap queues")
}

/// `open_tap`: `found` is `None` for a missing link, `Some(None)` for a link that is no tun/tap.
pub(crate) fn open_tap(name: &str, n: u16, found: Option<Option<&TapInfo>>) -> Result<TapInfo> {
    let info = found
        .ok_or_else(|| Error::NotFound { kind: "interface", name: name.to_owned() })?
        .filter(|i| i.tap)
        .ok_or_else(|| Error::InvalidArgument { op: "open tap", reason: format!("{name} is not a tap device") })?;
    if n > 1 && !info.multi_queue {
        return Err(Error::InvalidArgument {
            op: "open tap",
            reason: format!("{name} is a single-queue tap; {n} queues asked"),
        });
    }
    Ok(*info)
}

/// `tap_info`: `found` as for [`open_tap`].
pub(crate) fn tap_info(name: &str, found: Option<Option<&TapInfo>>) -> Result<TapInfo> {
    found
        .ok_or_else(|| Error::NotFound { kind: "interface", name: name.to_owned() })?
        .copied()
        .ok_or_else(|| Error::InvalidArgument { op: "tap info", reason: format!("{name} is not a tun/tap") })
}
