//! A sandbox-like namespace with a veth pair, built with the low-level layers, inside a private
//! "host" namespace so the machine's own network is never touched. Prints each step.

use std::time::Instant;

use netsandbox::netlink::Socket;
use netsandbox::netlink::addr::AddrOptions;
use netsandbox::netlink::link::{self, LinkChange, LinkRef, VethPeer};
use netsandbox::netns;

fn main() {
    if let Err(e) = run() {
        eprintln!("demo failed: {e}");
        std::process::exit(1);
    }
}

fn step<T>(what: &str, f: impl FnOnce() -> netsandbox::Result<T>) -> netsandbox::Result<T> {
    let t = Instant::now();
    let v = f()?;
    println!("{:>9.3} ms  {what}", t.elapsed().as_secs_f64() * 1e3);
    Ok(v)
}

fn run() -> netsandbox::Result<()> {
    // A fresh, private (0700, unpredictable name) directory, never a reused path.
    let template = std::env::temp_dir().join("netsandbox-demo-XXXXXX");
    let base = nix::unistd::mkdtemp(&template).map_err(|e| netsandbox::Error::Os {
        op: "create private directory",
        object: template.display().to_string(),
        source: e.into(),
    })?;
    let pin = base.join("sbx0");
    // The private host namespace lives as long as this scoped thread.
    let host = netns::NetNs::new_unpinned()?;
    let result = netns::run_in_result(&host, || {
        let h = step("open netlink socket in the private host namespace", Socket::open)?;
        let sb = step("create sandbox namespace pinned by a bind mount", || netns::create_pinned(&pin))?;
        let inner = step("open netlink socket bound to the sandbox", || netsandbox::netns::socket_in(&sb))?;
        let mac = [0x02, 0x42, 0xc6, 0x12, 0x00, 0x01];
        use std::os::fd::AsFd;
        let peer = VethPeer { name: "eth0".into(), mac: Some(mac), netns: Some(sb.as_fd()), ..Default::default() };
        step("create veth vh0 with eth0 born inside the sandbox", || {
            h.execute(link::create_veth("vh0", None, &peer)?)
        })?;
        let eth0 = step("look up eth0", || inner.link(LinkRef::Name("eth0")))?;
        step("add 198.18.0.2/16 and 2001:db8::2/64 (no DAD)", || {
            inner.add_address(eth0.index, &"198.18.0.2/16".parse().expect("literal"), AddrOptions::default())?;
            inner.add_address(
                eth0.index,
                &"2001:db8::2/64".parse().expect("literal"),
                AddrOptions { nodad: true, ..Default::default() },
            )
        })?;
        step("bring eth0, lo and vh0 up", || {
            inner.set_link(LinkRef::Index(eth0.index), &LinkChange::new().up(true))?;
            inner.set_link(LinkRef::Name("lo"), &LinkChange::new().up(true))?;
            h.set_link(LinkRef::Name("vh0"), &LinkChange::new().up(true))
        })?;
        for a in inner.addresses(None, Some(eth0.index))? {
            println!("             eth0 has {}", a.addr);
        }
        step("unpin the sandbox and delete the host veth", || {
            h.delete_link(LinkRef::Name("vh0"))?;
            netns::unpin(&pin)
        })
    });
    // create_pinned made the base a shared mount point; undo that before removing it.
    let _ = netns::release_base(&base);
    let _ = std::fs::remove_dir(&base);
    result?;
    println!("done: nothing left behind");
    Ok(())
}
