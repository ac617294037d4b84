//! Variants (e)-(f): iproute2, one process per step or `ip -batch`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::ctx::Built;
use crate::sw::{Laps, Sw};
use crate::{GW, R};

pub(crate) fn run(cmd: &str, args: &[&str]) -> R<()> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).stdout(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(format!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    Ok(())
}

/// `ip <args>` inside the sandbox pinned at `pin`.
pub(crate) fn ip_in(pin: &Path, args: &[&str]) -> R<()> {
    let net = format!("--net={}", pin.display());
    let mut all = vec![net.as_str(), "ip"];
    all.extend_from_slice(args);
    run("nsenter", &all)
}

/// Feeds `lines` to `<cmd...> -batch -` on stdin.
pub(crate) fn run_batch(cmd: &[&str], lines: &[String]) -> R<()> {
    let mut child = Command::new(cmd[0])
        .args(&cmd[1..])
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    stdin.write_all(lines.join("\n").as_bytes())?;
    drop(stdin);
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("{cmd:?} -batch: {}", String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    Ok(())
}

/// Creates a namespace pinned at `pin` with util-linux `unshare --net=<file>`.
pub(crate) fn ip_netns_create(pin: &Path) -> R<()> {
    std::fs::File::create_new(pin)?;
    run("unshare", &[&format!("--net={}", pin.display()), "true"])
}

/// Host-side commands; `direct` creates the peer in the sandbox with its final name and MAC.
pub(crate) fn ip_host_cmds(pin: &Path, sw: Sw, direct: bool) -> Vec<String> {
    let (vh, vc, p) = (sw.vh(), sw.vc(), pin.display());
    if direct {
        vec![
            format!("link add {vh} type veth peer name eth0 address {} netns {p}", sw.mac_str()),
            format!("link set {vh} up"),
        ]
    } else {
        vec![
            format!("link add {vh} type veth peer name {vc}"),
            format!("link set {vc} netns {p}"),
            format!("link set {vh} up"),
        ]
    }
}

/// Sandbox-side commands.
pub(crate) fn ip_inner_cmds(sw: Sw, direct: bool) -> Vec<String> {
    let mut v = Vec::new();
    if !direct {
        v.push(format!("link set {} name eth0 address {}", sw.vc(), sw.mac_str()));
    }
    v.extend([
        format!("addr add {} dev eth0", sw.v4()),
        format!("addr add {} dev eth0 nodad", sw.v6()),
        "link set eth0 up".to_owned(),
        "link set lo up".to_owned(),
        format!("route add default via {GW} dev eth0"),
        format!("route add {} via {GW} dev eth0", sw.static_dst()),
        format!("neigh add {GW} lladdr 02:42:c6:12:ff:fe dev eth0 nud permanent"),
    ]);
    v
}

// (e) One `ip` process per step (sandbox steps through nsenter).
pub(crate) fn ip_step(dir: &Path, sw: Sw, direct: bool, laps: &mut Laps) -> R<Built> {
    let pin = sw.pin(dir);
    ip_netns_create(&pin)?;
    let built = Built::Ip { pin: pin.clone() };
    laps.mark("unshare --net=pin");
    let host = ip_host_cmds(&pin, sw, direct);
    let (up, create) = host.split_last().ok_or("no host commands")?;
    for c in create {
        run("ip", &c.split(' ').collect::<Vec<_>>())?;
    }
    laps.mark("ip: veth (+ move)");
    for c in ip_inner_cmds(sw, direct) {
        ip_in(&pin, &c.split(' ').collect::<Vec<_>>())?;
    }
    laps.mark("nsenter ip: in-sandbox steps");
    run("ip", &up.split(' ').collect::<Vec<_>>())?;
    laps.mark("ip: host end up");
    Ok(built)
}

// (f) One `ip -batch` for the host side and one `nsenter ... ip -batch` for the sandbox side:
// `ip -batch` cannot switch namespaces in the middle of a batch.
pub(crate) fn ip_batch(dir: &Path, sw: Sw, direct: bool, laps: &mut Laps) -> R<Built> {
    let pin = sw.pin(dir);
    ip_netns_create(&pin)?;
    let built = Built::Ip { pin: pin.clone() };
    laps.mark("unshare --net=pin");
    run_batch(&["ip"], &ip_host_cmds(&pin, sw, direct))?;
    laps.mark("ip -batch host");
    let net = format!("--net={}", pin.display());
    run_batch(&["nsenter", &net, "ip"], &ip_inner_cmds(sw, direct))?;
    laps.mark("nsenter ip -batch sandbox");
    Ok(built)
}
