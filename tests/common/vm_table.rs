//! The shared VM-API table: the same bad-input and state cases run against every
//! [`VmSandbox`] implementation, so the fake and the netns sandbox can be asserted against one
//! literal list of outcomes.

use netsandbox::sandbox::{AttachMode, AttachOptions, TapOptions, VmSandbox};

use super::table::outcome;

/// [`outcome`] of a borrowed result (the case keeps the value: open queues, say).
fn outcome_ref<T>(r: &netsandbox::Result<T>) -> String {
    match r {
        Ok(_) => "Ok".into(),
        Err(netsandbox::Error::NotFound { kind, .. }) => format!("NotFound({kind})"),
        Err(netsandbox::Error::AlreadyExists { kind, .. }) => format!("AlreadyExists({kind})"),
        Err(e) => format!("{e:?}").chars().take_while(char::is_ascii_alphanumeric).collect(),
    }
}

/// What [`vm_bad_input_cases`] must return for every implementation (nothing changes).
#[allow(dead_code)]
pub const VM_BAD_EXPECTED: &[(&str, &str)] = &[
    ("attach bad interface name", "InvalidName"),
    ("attach 0 queues", "InvalidArgument"),
    ("attach 257 queues", "InvalidArgument"),
    ("attach bad tap name", "InvalidName"),
    ("attach bad bridge name", "InvalidName"),
    ("attach bad name before 0 queues", "InvalidName"),
    ("attach missing interface", "NotFound(interface)"),
    ("attach loopback", "InvalidArgument"),
    ("attach tap name taken (lo)", "AlreadyExists(interface)"),
    ("attach tap name taken (the interface)", "AlreadyExists(interface)"),
    ("attach bridge name taken", "AlreadyExists(interface)"),
    ("attach tc ignores bridge name", "Ok"),
    ("detach after that", "Ok"),
    ("create tap 0 queues", "InvalidArgument"),
    ("create tap 257 queues", "InvalidArgument"),
    ("create tap bad name", "InvalidName"),
    ("create tap MTU 20", "InvalidArgument"),
    ("create tap multicast MAC", "InvalidMac"),
    ("create tap name taken (lo)", "AlreadyExists(interface)"),
    ("create tap name taken (eth0)", "AlreadyExists(interface)"),
    ("open tap missing", "NotFound(interface)"),
    ("open tap not a tap", "InvalidArgument"),
    ("open tap loopback", "InvalidArgument"),
    ("open tap 0 queues", "InvalidArgument"),
    ("open tap bad name", "InvalidName"),
    ("tap info missing", "NotFound(interface)"),
    ("tap info not a tap", "InvalidArgument"),
    ("tap info bad name", "InvalidName"),
    ("detach not attached", "NotFound(vm attachment)"),
    ("detach missing interface", "NotFound(interface)"),
    ("detach bad name", "InvalidName"),
    ("inspect not attached", "NotFound(vm attachment)"),
    ("recover not attached", "NotFound(vm attachment)"),
    ("recover loopback", "NotFound(vm attachment)"),
    ("list", "0"),
];

/// Runs the bad-input cases on `sb`, which must hold interface "eth0" (a veth with an address)
/// and nothing attached. Nothing may change (one case attaches and detaches again).
#[allow(dead_code)]
pub fn vm_bad_input_cases(sb: &dyn VmSandbox) -> Vec<(&'static str, String)> {
    let tc = || AttachOptions::new(AttachMode::TcRedirect);
    let br = || AttachOptions::new(AttachMode::Bridge);
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut case = |name: &'static str, r: String| out.push((name, r));
    case("attach bad interface name", outcome(sb.vm_attach("a/b", &tc())));
    case("attach 0 queues", outcome(sb.vm_attach("eth0", &br().queues(0))));
    case("attach 257 queues", outcome(sb.vm_attach("eth0", &tc().queues(257))));
    case("attach bad tap name", outcome(sb.vm_attach("eth0", &tc().tap_name("much-too-long-name"))));
    case("attach bad bridge name", outcome(sb.vm_attach("eth0", &br().bridge_name("b r"))));
    case("attach bad name before 0 queues", outcome(sb.vm_attach("a b", &tc().queues(0))));
    case("attach missing interface", outcome(sb.vm_attach("eth9", &tc())));
    case("attach loopback", outcome(sb.vm_attach("lo", &tc())));
    case("attach tap name taken (lo)", outcome(sb.vm_attach("eth0", &tc().tap_name("lo"))));
    case("attach tap name taken (the interface)", outcome(sb.vm_attach("eth0", &tc().tap_name("eth0"))));
    case("attach bridge name taken", outcome(sb.vm_attach("eth0", &br().bridge_name("lo"))));
    case("attach tc ignores bridge name", outcome(sb.vm_attach("eth0", &tc().bridge_name("lo"))));
    case("detach after that", outcome(sb.vm_detach("eth0")));
    case("create tap 0 queues", outcome(sb.create_tap(&TapOptions::new("vmt9").queues(0))));
    case("create tap 257 queues", outcome(sb.create_tap(&TapOptions::new("vmt9").queues(257))));
    case("create tap bad name", outcome(sb.create_tap(&TapOptions::new("vm/t"))));
    case("create tap MTU 20", outcome(sb.create_tap(&TapOptions::new("vmt9").mtu(20))));
    case("create tap multicast MAC", outcome(sb.create_tap(&TapOptions::new("vmt9").mac([1, 0, 0x5e, 0, 0, 1]))));
    case("create tap name taken (lo)", outcome(sb.create_tap(&TapOptions::new("lo"))));
    case("create tap name taken (eth0)", outcome(sb.create_tap(&TapOptions::new("eth0"))));
    case("open tap missing", outcome(sb.open_tap("vmt9", 1)));
    case("open tap not a tap", outcome(sb.open_tap("eth0", 1)));
    case("open tap loopback", outcome(sb.open_tap("lo", 1)));
    case("open tap 0 queues", outcome(sb.open_tap("eth0", 0)));
    case("open tap bad name", outcome(sb.open_tap("", 1)));
    case("tap info missing", outcome(sb.tap_info("vmt9")));
    case("tap info not a tap", outcome(sb.tap_info("eth0")));
    case("tap info bad name", outcome(sb.tap_info("a\0b")));
    case("detach not attached", outcome(sb.vm_detach("eth0")));
    case("detach missing interface", outcome(sb.vm_detach("eth9")));
    case("detach bad name", outcome(sb.vm_detach("a/b")));
    case("inspect not attached", outcome(sb.vm_inspect("eth0")));
    case("recover not attached", outcome(sb.vm_recover("eth0")));
    case("recover loopback", outcome(sb.vm_recover("lo")));
    case("list", sb.vm_list().map(|l| l.len().to_string()).unwrap_or_else(|e| format!("{e:?}")));
    out
}

/// What [`vm_state_cases`] must return for every implementation.
#[allow(dead_code)]
pub const VM_STATE_EXPECTED: &[(&str, &str)] = &[
    ("create tap", "Ok"),
    ("create tap again", "AlreadyExists(interface)"),
    ("tap info: queues", "2"),
    ("tap info: multi-queue, vnet_hdr, persistent", "true true false"),
    ("one queue closed", "1"),
    ("open tap", "Ok"),
    ("after open", "2"),
    ("attach with tap name taken", "AlreadyExists(interface)"),
    ("all queues closed: gone", "NotFound(interface)"),
    ("single-queue tap", "Ok"),
    ("open single-queue tap with 2", "InvalidArgument"),
    ("single-queue tap closed: gone", "NotFound(interface)"),
    ("attach tc", "Ok"),
    ("tc: queues", "2"),
    ("tc: tap info", "2 true"),
    ("tc: attach tc again", "AlreadyExists(ingress qdisc)"),
    ("tc: attach bridge", "AlreadyExists(vm attachment)"),
    ("tc: attach macvtap", "AlreadyExists(vm attachment)"),
    ("tc: attach the tap", "AlreadyExists(ingress qdisc)"),
    ("tc: list", "1"),
    ("tc: inspect keeps addresses", "tc 198.18.0.2/16"),
    ("tc: recover", "2"),
    ("detach tc", "Ok"),
    ("detach tc again", "NotFound(vm attachment)"),
    ("attach bridge", "Ok"),
    ("bridge: attach tc", "AlreadyExists(bridge port (interface has a master))"),
    ("bridge: attach macvtap", "AlreadyExists(bridge port (interface has a master))"),
    ("bridge: guest config", "198.18.0.2/16 0.0.0.0/0"),
    ("bridge: dhcp server", "169.254.254.2/24"),
    ("detach bridge", "Ok"),
    ("attach macvtap", "Ok"),
    ("macvtap: attach macvtap again", "AlreadyExists(vm attachment)"),
    ("macvtap: attach tc", "AlreadyExists(vm attachment)"),
    ("macvtap: tap info", "InvalidArgument"),
    ("macvtap: guest config", "198.18.0.2/16 0.0.0.0/0"),
    ("detach macvtap", "Ok"),
    ("list at the end", "0"),
];

/// Runs the state cases on `sb` (as for [`vm_bad_input_cases`]; "eth0" with 198.18.0.2/16 and
/// a default route through it). Ends as it started.
#[allow(dead_code)]
pub fn vm_state_cases(sb: &dyn VmSandbox) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = Vec::new();
    let mut case = |name: &'static str, r: String| out.push((name, r));
    let info = |n: &str| sb.tap_info(n);
    let queues = |n: &str| info(n).map(|i| i.attached_queues.to_string()).unwrap_or_else(|_| outcome(info(n)));

    let t = sb.create_tap(&TapOptions::new("vmt0").queues(2).vnet_hdr(true).persistent(false));
    case("create tap", outcome_ref(&t));
    case("create tap again", outcome(sb.create_tap(&TapOptions::new("vmt0"))));
    case("tap info: queues", queues("vmt0"));
    let flags = info("vmt0").map(|i| format!("{} {} {}", i.multi_queue, i.vnet_hdr, i.persistent));
    case("tap info: multi-queue, vnet_hdr, persistent", flags.unwrap_or_else(|e| format!("{e:?}")));
    let mut t = t.ok();
    if let Some(t) = t.as_mut() {
        drop(t.queues.pop());
    }
    case("one queue closed", queues("vmt0"));
    let again = sb.open_tap("vmt0", 1);
    case("open tap", outcome_ref(&again));
    case("after open", queues("vmt0"));
    let tc = || AttachOptions::new(AttachMode::TcRedirect);
    case("attach with tap name taken", outcome(sb.vm_attach("eth0", &tc().tap_name("vmt0"))));
    drop(t);
    drop(again);
    case("all queues closed: gone", outcome(info("vmt0")));
    let single = sb.create_tap(&TapOptions::new("vmt1").persistent(false));
    case("single-queue tap", outcome_ref(&single));
    case("open single-queue tap with 2", outcome(sb.open_tap("vmt1", 2)));
    drop(single);
    case("single-queue tap closed: gone", outcome(info("vmt1")));

    // tc redirect.
    let a = sb.vm_attach("eth0", &tc().queues(2).tap_name("vmtc0"));
    case("attach tc", outcome_ref(&a));
    case("tc: queues", a.as_ref().map(|a| a.queues.len().to_string()).unwrap_or_default());
    let ti = info("vmtc0").map(|i| format!("{} {}", i.attached_queues, i.multi_queue));
    case("tc: tap info", ti.unwrap_or_else(|e| format!("{e:?}")));
    case("tc: attach tc again", outcome(sb.vm_attach("eth0", &tc().tap_name("other0"))));
    case("tc: attach bridge", outcome(sb.vm_attach("eth0", &AttachOptions::new(AttachMode::Bridge))));
    case("tc: attach macvtap", outcome(sb.vm_attach("eth0", &AttachOptions::new(AttachMode::Macvtap))));
    case("tc: attach the tap", outcome(sb.vm_attach("vmtc0", &tc())));
    case("tc: list", sb.vm_list().map(|l| l.len().to_string()).unwrap_or_default());
    let desc = |n: netsandbox::sandbox::VmNetwork| {
        let v4: Vec<String> = n.addresses.iter().filter(|a| a.addr().is_ipv4()).map(|a| a.to_string()).collect();
        format!("{} {}", n.mode, v4.join(","))
    };
    case("tc: inspect keeps addresses", sb.vm_inspect("eth0").map(desc).unwrap_or_else(|e| format!("{e:?}")));
    drop(a);
    case("tc: recover", sb.vm_recover("eth0").map(|r| r.queues.len().to_string()).unwrap_or_else(|e| format!("{e:?}")));
    case("detach tc", outcome(sb.vm_detach("eth0")));
    case("detach tc again", outcome(sb.vm_detach("eth0")));

    // Bridge.
    let guest = |n: &netsandbox::sandbox::VmNetwork| {
        let v4: Vec<String> = n.addresses.iter().filter(|a| a.addr().is_ipv4()).map(|a| a.to_string()).collect();
        let mut r: Vec<String> =
            n.routes.iter().filter(|r| r.dst.addr().is_ipv4()).map(|r| r.dst.to_string()).collect();
        r.sort();
        format!("{} {}", v4.join(","), r.join(","))
    };
    let a = sb.vm_attach("eth0", &AttachOptions::new(AttachMode::Bridge).tap_name("vmbr0").bridge_name("vbr0"));
    case("attach bridge", outcome_ref(&a));
    case("bridge: attach tc", outcome(sb.vm_attach("eth0", &tc())));
    case("bridge: attach macvtap", outcome(sb.vm_attach("eth0", &AttachOptions::new(AttachMode::Macvtap))));
    case("bridge: guest config", a.as_ref().map(|a| guest(&a.network)).unwrap_or_default());
    let dhcp = a.as_ref().ok().and_then(|a| a.network.dhcp_server).map(|d| d.to_string()).unwrap_or_default();
    case("bridge: dhcp server", dhcp);
    drop(a);
    case("detach bridge", outcome(sb.vm_detach("eth0")));

    // Macvtap.
    let a = sb.vm_attach("eth0", &AttachOptions::new(AttachMode::Macvtap).tap_name("vmmv0"));
    case("attach macvtap", outcome_ref(&a));
    case("macvtap: attach macvtap again", outcome(sb.vm_attach("eth0", &AttachOptions::new(AttachMode::Macvtap))));
    case("macvtap: attach tc", outcome(sb.vm_attach("eth0", &tc())));
    case("macvtap: tap info", outcome(info("vmmv0")));
    case("macvtap: guest config", a.as_ref().map(|a| guest(&a.network)).unwrap_or_default());
    drop(a);
    case("detach macvtap", outcome(sb.vm_detach("eth0")));
    case("list at the end", sb.vm_list().map(|l| l.len().to_string()).unwrap_or_default());
    out
}
