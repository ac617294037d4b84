//! One function per subcommand. Each opens what it needs from the kernel and the pin files.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use std::net::IpAddr;

use netsandbox::sandbox::{
    BridgeOptions, CreateOptions, HostBridge, IfaceOptions, NeighFamily, NeighOptions, NetnsSandbox, Sandbox,
    SandboxExt, SandboxType, StaticRoute, check_id, check_key,
};
use netsandbox::validate::{parse_cidr, parse_ip, parse_mac};
use netsandbox::{Error, Result, netns};
use serde_json::json;

use crate::cli::{AliasAction, BridgeAction, Cli, Command, IfaceArgs, Role, RouteArgs, VmAction, VmMode};
use crate::output::{self, Failure, Out};

/// Where pins live when `--base` is not given.
pub const DEFAULT_BASE: &str = "/run/netsandbox";
/// Longest file name the kernel takes (`NAME_MAX`).
const NAME_MAX: usize = 255;
/// Longest path the kernel takes, without the terminating NUL (`PATH_MAX - 1`).
const PATH_MAX: usize = 4095;

/// Checks what can be checked without a system call: sandbox names (one plain file name that
/// fits the file system) and their paths under the base. Runs before the command does anything.
pub fn precheck(cli: &Cli) -> Result<(), Failure> {
    let base = cli.base.as_deref().unwrap_or(Path::new(DEFAULT_BASE));
    for name in cli.command.keys() {
        check_id(name)?;
        if name.len() > NAME_MAX {
            return Err(Failure::invalid(format!(
                "invalid sandbox key {:.32}...: {} bytes, longer than a file name may be ({NAME_MAX})",
                name,
                name.len()
            )));
        }
        let full = base.as_os_str().len() + 1 + name.len();
        if full > PATH_MAX {
            return Err(Failure::invalid(format!(
                "invalid sandbox key {name:.32}...: its path under {} is {full} bytes, longer than a path may be \
                 ({PATH_MAX})",
                base.display()
            )));
        }
    }
    Ok(())
}

// Declared here, not in the binary's root, so the root file's move leaves it alone.
#[path = "events.rs"]
mod events;

/// Runs the parsed command in the calling thread's namespace; returns the exit code.
pub fn dispatch(cli: &Cli) -> Result<i32, Failure> {
    let out = Out { json: cli.json };
    let base = base_dir(cli.base.as_deref().unwrap_or(Path::new(DEFAULT_BASE)))?;
    let key = |name: &str| key_path(&base, name);
    match &cli.command {
        Command::Create { key: name, no_ipv6 } => {
            let k = key(name)?;
            let opts = CreateOptions { ipv6: no_ipv6.then_some(false) };
            NetnsSandbox::create(&k, &opts)?;
            out.done(json!({ "key": name, "path": k }), &format!("created {name} at {k}"));
        }
        Command::List => {
            let names = list(&base)?;
            out.done(json!(names), &names.join("\n"));
        }
        Command::Inspect { key: name } => {
            let sb = NetnsSandbox::open(&key(name)?)?;
            let (info, kernel) = (sb.info()?, sb.inspect()?);
            out.value(output::inspect_json(name, &info, &kernel), || output::inspect_text(name, &info, &kernel));
        }
        Command::AddInterface { key: name, src, iface, bridge } => {
            let opts = iface_options(iface)?.bridge(*bridge);
            let sb = NetnsSandbox::open(&key(name)?)?;
            // A bridge is created inside, so there is no source link to name.
            let src = src.as_deref().unwrap_or("");
            let inside = sb.add_interface(src, &iface.prefix, &opts)?;
            out.done(json!({ "name": inside }), &inside);
        }
        Command::AddVeth { key: name, host_name, iface, no_host_link_local, host_master, host_hairpin } => {
            let mut opts = iface_options(iface)?.host_link_local(!no_host_link_local);
            if let Some(br) = host_master {
                opts = opts.host_master(br.as_str()).host_hairpin(*host_hairpin);
            }
            opts.check()?;
            let sb = NetnsSandbox::open(&key(name)?)?;
            let inside = sb.add_veth(host_name, &iface.prefix, &opts)?;
            out.done(json!({ "name": inside, "host_name": host_name, "host_master": host_master }), &inside);
        }
        Command::Bridge { action: BridgeAction::Add { name, addresses, mtu, exist_ok } } => {
            let mut opts = BridgeOptions::new();
            for a in addresses {
                opts = opts.address(parse_cidr(a)?);
            }
            if let Some(m) = mtu {
                opts = opts.mtu(*m);
            }
            let br = if *exist_ok { HostBridge::ensure(name, &opts)? } else { HostBridge::create(name, &opts)? };
            out.done(json!({ "bridge": br.name(), "ifindex": br.index() }), &format!("bridge {}", br.name()));
        }
        Command::Bridge { action: BridgeAction::Del { name } } => {
            HostBridge::delete(name)?;
            out.done(json!({ "deleted": name }), &format!("deleted bridge {name}"));
        }
        Command::RemoveInterface { key: name, name: ifname } => {
            NetnsSandbox::open(&key(name)?)?.remove_interface(ifname)?;
            out.done(json!({ "removed": ifname }), &format!("removed {ifname}"));
        }
        Command::SetGateway { key: name, ip } => {
            let gw = parse_ip(ip)?;
            let sb = NetnsSandbox::open(&key(name)?)?;
            sb.set_gateway(gw).map_err(|e| gateway_failure(&sb, name, gw, e))?;
            out.done(json!({ "gateway": gw.to_string() }), &format!("default via {gw}"));
        }
        Command::UnsetGateway { key: name, ip } => {
            let gw = parse_ip(ip)?;
            NetnsSandbox::open(&key(name)?)?.unset_gateway(gw)?;
            out.done(json!({ "removed_gateway": gw.to_string() }), &format!("removed default via {gw}"));
        }
        Command::AddRoute(r) => {
            let route = static_route(r)?;
            let sb = NetnsSandbox::open(&key(&r.key)?)?;
            sb.add_static_route(&route).map_err(|e| match route.gateway {
                Some(gw) => unreachable_failure(&r.key, gw, e),
                None => e.into(),
            })?;
            out.done(output::route_json(&route), &format!("added {}", output::route_text(&route)));
        }
        Command::RemoveRoute(r) => {
            let route = static_route(r)?;
            NetnsSandbox::open(&key(&r.key)?)?.remove_static_route(&route)?;
            out.done(output::route_json(&route), &format!("removed {}", output::route_text(&route)));
        }
        Command::AddNeighbor { key: name, ip, mac, link, fdb, force } => {
            let (ip, mac) = (parse_ip(ip)?, parse_mac(mac)?);
            let mut opts = NeighOptions::new().family(if *fdb { NeighFamily::Bridge } else { NeighFamily::Ip });
            if let Some(l) = link {
                opts = opts.link_name(l.as_str());
            }
            NetnsSandbox::open(&key(name)?)?
                .add_neighbor(ip, mac, *force, &opts)
                .map_err(|e| unreachable_failure(name, ip, e))?;
            let mac = netsandbox::validate::format_mac(&mac);
            out.done(json!({ "ip": ip.to_string(), "mac": mac }), &format!("added neighbor {ip} lladdr {mac}"));
        }
        Command::DeleteNeighbor { key: name, ip, mac } => {
            let (ip, mac) = (parse_ip(ip)?, parse_mac(mac)?);
            // A fresh process holds no in-memory entries, so the kernel's entry is what to delete.
            NetnsSandbox::open(&key(name)?)?.delete_neighbor(ip, mac, true)?;
            let mac = netsandbox::validate::format_mac(&mac);
            out.done(json!({ "ip": ip.to_string(), "mac": mac }), &format!("deleted neighbor {ip} lladdr {mac}"));
        }
        Command::Alias { action } => {
            let (a, add) = match action {
                AliasAction::Add(a) => (a, true),
                AliasAction::Remove(a) => (a, false),
            };
            let cidr = parse_cidr(&a.cidr)?;
            let sb = NetnsSandbox::open(&key(&a.key)?)?;
            if add {
                sb.add_alias_ip(&a.ifname, cidr)?;
            } else {
                sb.remove_alias_ip(&a.ifname, cidr)?;
            }
            let verb = if add { "added" } else { "removed" };
            out.done(json!({ verb: cidr.to_string(), "ifname": a.ifname }), &format!("{verb} {cidr} on {}", a.ifname));
        }
        Command::Tweaks { key: name, roles } => {
            let types: Vec<SandboxType> = roles
                .iter()
                .map(|r| match r {
                    Role::Ingress => SandboxType::Ingress,
                    Role::Lb => SandboxType::LoadBalancer,
                })
                .collect();
            let report = NetnsSandbox::open(&key(name)?)?.apply_os_tweaks(&types)?;
            out.value(output::tweaks_json(&report), || output::tweaks_text(&report));
        }
        Command::Exec { key: name, command } => return exec(&key(name)?, command),
        Command::Destroy { keys } => {
            // Every name is opened first, so a missing one changes nothing.
            let sbs = keys.iter().map(|name| NetnsSandbox::open(&key(name)?)).collect::<Result<Vec<_>>>()?;
            match sbs.as_slice() {
                // This process is gone right after: wait for the kernel to free what destroy
                // left to it (bounded by the reaper's grace period), so the command's effect
                // is complete when it returns.
                [one] => {
                    reaped(one.destroy_detached()?);
                    out.done(json!({ "destroyed": keys[0] }), &format!("destroyed {}", keys[0]));
                }
                many => {
                    reaped(NetnsSandbox::destroy_many_detached(&many.iter().collect::<Vec<_>>())?);
                    out.done(json!({ "destroyed": keys }), &format!("destroyed {}", keys.join(" ")));
                }
            }
        }
        Command::Gc => {
            // Live pins are kept: only files a crashed create left behind are removed.
            let removed = NetnsSandbox::gc(&base, &|_| true)?;
            let names: Vec<String> = removed.iter().map(|p| p.display().to_string()).collect();
            out.done(json!({ "removed": names }), &format!("removed {} stale file(s)", names.len()));
        }
        Command::Vm { action } => vm(out, action, &key)?,
        Command::Lb { action } => crate::lb::run(action, out, &key)?,
        Command::Events { keys, until_quiet } => {
            let names = if keys.is_empty() { list(&base)? } else { keys.clone() };
            let paths = names.iter().map(|n| key(n)).collect::<Result<Vec<_>>>()?;
            return Ok(events::run(&paths, &names, cli.json, *until_quiet)?);
        }
        Command::Demo => return Ok(crate::demo::run(out, cli.base.as_deref())?),
    }
    Ok(0)
}

/// A refused gateway, said in the CLI's terms: an existing default route names the gateway it
/// has; an unreachable one says which sandbox no interface of reaches it.
fn gateway_failure(sb: &NetnsSandbox, name: &str, gw: IpAddr, e: Error) -> Failure {
    if !e.is_already_exists() {
        return unreachable_failure(name, gw, e);
    }
    let existing =
        sb.info().ok().and_then(|i| if gw.is_ipv4() { i.gateway.map(IpAddr::V4) } else { i.gateway6.map(IpAddr::V6) });
    let message = match existing {
        Some(g) if g == gw => format!("sandbox {name} already has default gateway {g}"),
        Some(g) => {
            format!("sandbox {name} already has default gateway {g}; unset-gateway {name} {g} before setting {gw}")
        }
        None => format!("sandbox {name} already has a default route of that family (not via a gateway); {gw} not set"),
    };
    Failure { code: 4, message }
}

/// The library's "no route to" as a sentence about the sandbox.
fn unreachable_failure(name: &str, ip: IpAddr, e: Error) -> Failure {
    match e {
        Error::NotFound { kind: "route to", .. } => Failure {
            code: 3,
            message: format!(
                "{ip} is unreachable in sandbox {name}: no interface there reaches it (add an interface with an address in its subnet first)"
            ),
        },
        e => e.into(),
    }
}

/// `--base` as an absolute path, so keys built from it pass `check_key`.
fn base_dir(base: &Path) -> Result<PathBuf> {
    std::path::absolute(base).map_err(|e| Error::Os { op: "resolve", object: base.display().to_string(), source: e })
}

/// The pin path for sandbox `name`: one plain file name directly under the base, never a path
/// that could escape it.
pub fn key_path(base: &Path, name: &str) -> Result<String> {
    check_id(name)?;
    let k = base.join(name).display().to_string();
    check_key(&k)?;
    Ok(k)
}

/// Names of the pinned namespaces under `base`, sorted.
fn list(base: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(base) {
        Ok(e) => e,
        // No base yet means no sandboxes yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Os { op: "read directory", object: base.display().to_string(), source: e }),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| Error::Os { op: "read directory", object: base.display().to_string(), source: e })?;
        if netns::is_pinned(&entry.path()) {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

fn iface_options(a: &IfaceArgs) -> Result<IfaceOptions, Failure> {
    netsandbox::validate::ifname_prefix(&a.prefix)?;
    let mut o = IfaceOptions::new();
    if let Some(c) = &a.address {
        let net = parse_cidr(c)?;
        if net.addr().is_ipv6() {
            return Err(Failure::invalid(format!("--address {c} is IPv6: give IPv6 addresses with --address6")));
        }
        o = o.address(net);
    }
    if let Some(c) = &a.address6 {
        let net = parse_cidr(c)?;
        if net.addr().is_ipv4() {
            return Err(Failure::invalid(format!("--address6 {c} is IPv4: give IPv4 addresses with --address")));
        }
        o = o.address_ipv6(net);
    }
    if let Some(m) = &a.mac {
        o = o.mac(parse_mac(m)?);
    }
    if let Some(m) = a.mtu {
        o = o.mtu(m);
    }
    if let Some(m) = &a.master {
        o = o.master(m.as_str());
    }
    // Checked here too so bad input is exit code 2 before the sandbox is even opened.
    o.check()?;
    Ok(o)
}

fn static_route(r: &RouteArgs) -> Result<StaticRoute, Failure> {
    let route = match (&r.via, &r.dev) {
        (Some(via), None) => StaticRoute::via(parse_cidr(&r.cidr)?, parse_ip(via)?),
        (None, Some(dev)) => StaticRoute::dev(parse_cidr(&r.cidr)?, dev.as_str()),
        _ => {
            return Err(Failure::invalid(format!(
                "route {}: give exactly one of --via / --dev (a next hop, or an interface for a directly connected route)",
                r.cidr
            )));
        }
    };
    route.check()?;
    Ok(route)
}

/// Runs `command` inside the sandbox and returns its exit code (128+signal when killed, as
/// shells do; 127/126 when it cannot be started).
fn exec(key: &str, command: &[std::ffi::OsString]) -> Result<i32, Failure> {
    use std::os::unix::process::ExitStatusExt;
    let Some((program, args)) = command.split_first() else {
        return Err(Failure::invalid("exec: no command given"));
    };
    let sb = NetnsSandbox::open(key)?;
    // A child inherits the network namespace of the thread that spawns it, so spawning from the
    // invoke thread puts the program inside the sandbox without touching this thread.
    let status = sb.invoke(|| Process::new(program).args(args).status())?;
    match status {
        Ok(s) => Ok(s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(1)),
        Err(e) => {
            eprintln!("netsandbox: run {}: {e}", program.to_string_lossy());
            Ok(if e.kind() == std::io::ErrorKind::NotFound { 127 } else { 126 })
        }
    }
}

/// Waits for the kernel to free what a destroy left to it; a namespace held elsewhere still
/// has its host ends deleted after the reaper's grace period.
fn reaped(r: netsandbox::sandbox::Reaped) {
    let limit = netsandbox::sandbox::REAP_GRACE + std::time::Duration::from_secs(30);
    if !r.wait(limit) {
        log::warn!("the kernel has not freed the destroyed sandboxes' namespaces after {limit:?}");
    }
}

fn vm(out: Out, action: &VmAction, key: &dyn Fn(&str) -> Result<String>) -> Result<()> {
    use netsandbox::sandbox::{AttachMode, AttachOptions};
    match action {
        VmAction::Attach { key: name, iface, mode, queues, tap, bridge, no_vnet_hdr } => {
            let mode = match mode {
                VmMode::Tc => AttachMode::TcRedirect,
                VmMode::Bridge => AttachMode::Bridge,
                VmMode::Macvtap => AttachMode::Macvtap,
            };
            let mut opts = AttachOptions::new(mode).queues(*queues).vnet_hdr(!no_vnet_hdr);
            if let Some(t) = tap {
                opts = opts.tap_name(t);
            }
            if let Some(b) = bridge {
                opts = opts.bridge_name(b);
            }
            let sb = NetnsSandbox::open(&key(name)?)?;
            // The queues close when this process exits; the TAP stays (it is persistent) and a
            // VM runtime re-opens it with the library's vm_recover.
            let a = sb.vm_attach(iface, &opts)?;
            out.value(output::vm_json(&a.network), || output::vm_text(&a.network));
        }
        VmAction::Detach { key: name, iface } => {
            NetnsSandbox::open(&key(name)?)?.vm_detach(iface)?;
            out.done(json!({ "detached": iface }), &format!("detached {iface}"));
        }
        VmAction::Inspect { key: name, iface } => {
            let sb = NetnsSandbox::open(&key(name)?)?;
            match iface {
                Some(i) => {
                    let n = sb.vm_inspect(i)?;
                    out.value(output::vm_json(&n), || output::vm_text(&n));
                }
                None => {
                    let all = sb.vm_list()?;
                    let v: Vec<_> = all.iter().map(output::vm_json).collect();
                    out.value(json!(v), || all.iter().map(output::vm_text).collect::<Vec<_>>().join("\n"));
                }
            }
        }
    }
    Ok(())
}
