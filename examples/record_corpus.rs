//! Records fuzz seed corpora from real kernel replies.
//!
//! Runs as root, entirely inside a private network namespace it creates itself on a spawned
//! thread (the machine's own namespace is never touched): builds veths, a bridge, a VXLAN
//! device, addresses, routes and neighbors with the crate's own netlink API, then records the raw
//! datagrams of dumps, queries and refused requests, and writes them under `fuzz/corpus/<target>/`
//! in the formats of `netsandbox::fuzzing`.
//!
//! ```text
//! cargo run --example record_corpus --features fuzzing [-- OUT_DIR]
//! ```

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use netsandbox::fuzzing::{self, Header, frames};
use netsandbox::netlink::addr::{self, AddrOptions};
use netsandbox::netlink::link::{self, LinkChange, LinkRef, VethPeer, Vxlan};
use netsandbox::netlink::neigh::{self, NeighSpec};
use netsandbox::netlink::route::{self, RouteSpec};
use netsandbox::netlink::{BatchMode, Request, Socket};

/// Largest corpus file written.
const MAX_FILE: usize = 8 << 10;
/// Most `views` seeds kept per message type.
const VIEWS_PER_KIND: usize = 4;

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// One recorded transaction: its name, request count, which are dumps, and the datagrams.
struct Recording {
    name: String,
    requests: u8,
    dump_mask: u8,
    datagrams: Vec<Vec<u8>>,
}

fn net(s: &str) -> BoxResult<IpNet> {
    Ok(s.parse()?)
}

fn ip(s: &str) -> BoxResult<IpAddr> {
    Ok(s.parse()?)
}

/// Builds the namespace's objects and records replies. Runs inside the private namespace.
fn record() -> BoxResult<Vec<Recording>> {
    let s = Socket::open()?;
    s.set_link(LinkRef::Name("lo"), &LinkChange::new().up(true))?;
    s.execute(link::create_veth("fz-a", Some(1450), &VethPeer { name: "fz-b".into(), ..Default::default() })?)?;
    s.execute(link::create_bridge("fz-br")?)?;
    let a = s.link(LinkRef::Name("fz-a"))?.index;
    let b = s.link(LinkRef::Name("fz-b"))?.index;
    let br = s.link(LinkRef::Name("fz-br"))?.index;
    s.set_link(LinkRef::Index(b), &LinkChange::new().master(br).up(true))?;
    s.set_link(LinkRef::Index(br), &LinkChange::new().up(true).alias("fuzz bridge"))?;
    s.set_link(LinkRef::Index(a), &LinkChange::new().mac([0x02, 0x42, 0xc6, 0x12, 0, 1]).up(true))?;
    s.add_address(a, &net("198.18.0.1/16")?, AddrOptions::default())?;
    s.add_address(a, &net("2001:db8::1/64")?, AddrOptions { nodad: true, ..Default::default() })?;
    s.add_address(br, &net("198.51.100.1/24")?, AddrOptions::default())?;
    s.add_route(&RouteSpec::new(net("198.19.0.0/24")?).via(ip("198.18.0.2")?))?;
    s.add_route(&RouteSpec::new(net("203.0.113.0/24")?).dev(a).priority(50))?;
    s.add_route(&RouteSpec::new(net("2001:db8:1::/48")?).via(ip("2001:db8::2")?))?;
    s.add_neighbor(&NeighSpec::arp(a, ip("198.18.0.9")?, [0x02, 0, 0, 0, 0, 9]), false)?;
    s.add_neighbor(&NeighSpec::arp(a, ip("2001:db8::9")?, [0x02, 0, 0, 0, 0, 0x0a]), false)?;
    let vx = Vxlan { vni: 42, local: Some(ip("198.18.0.1")?), port: 4789, underlay: Some(a), learning: false };
    s.execute(link::create_vxlan("fz-vx", &vx)?)?;
    let vxi = s.link(LinkRef::Name("fz-vx"))?.index;
    s.add_neighbor(&NeighSpec::fdb(vxi, [0x02, 0, 0, 0, 0, 0x0b], Some(ip("198.18.0.77")?)), false)?;

    let mut out = Vec::new();
    let mut rec = |name: &str, requests: u8, dump_mask: u8, f: &dyn Fn(&Socket)| {
        let ((), datagrams) = s.record_datagrams(|s| f(s));
        out.push(Recording { name: name.to_owned(), requests, dump_mask, datagrams });
    };
    // Dumps: multipart datagrams ended by NLMSG_DONE.
    rec("dump-links", 1, 1, &|s| drop(netsandbox::fuzzing::dump(s, link::list())));
    rec("dump-addrs", 1, 1, &|s| drop(netsandbox::fuzzing::dump(s, addr::list(None, None))));
    rec("dump-addrs-v6-a", 1, 1, &|s| drop(netsandbox::fuzzing::dump(s, addr::list(Some(true), Some(a)))));
    rec("dump-routes-v4", 1, 1, &|s| drop(netsandbox::fuzzing::dump(s, route::list(false))));
    rec("dump-routes-v6", 1, 1, &|s| drop(netsandbox::fuzzing::dump(s, route::list(true))));
    rec("dump-neigh", 1, 1, &|s| drop(netsandbox::fuzzing::dump(s, neigh::list(None, None))));
    // Queries: one reply then the ACK.
    rec("get-link-a", 1, 0, &|s| drop(s.link(LinkRef::Name("fz-a"))));
    rec("get-link-br", 1, 0, &|s| drop(s.link(LinkRef::Index(br))));
    rec("get-link-vx", 1, 0, &|s| drop(s.link(LinkRef::Name("fz-vx"))));
    let target = ip("198.19.0.5")?;
    rec("get-route", 1, 0, &|s| drop(s.route_to(target)));
    // Refusals: NLMSG_ERROR with errno and, where the kernel says why, extended-ACK TLVs.
    rec("err-missing-link", 1, 0, &|s| drop(s.link(LinkRef::Name("fz-none"))));
    let dup = |s: &Socket| {
        if let Ok(r) = link::create_bridge("fz-br") {
            drop(s.execute(r));
        }
    };
    rec("err-exists", 1, 0, &dup);
    rec("err-bad-gateway", 1, 0, &|s| {
        if let (Ok(dst), Ok(gw)) = ("198.20.0.0/24".parse(), "192.0.2.1".parse()) {
            drop(s.add_route(&RouteSpec::new(dst).via(gw)));
        }
    });
    rec("err-del-addr", 1, 0, &|s| {
        if let Ok(n) = "198.18.7.7/16".parse() {
            drop(s.delete_address(a, &n));
        }
    });
    rec("err-bad-master", 1, 0, &|s| drop(s.set_link(LinkRef::Index(a), &LinkChange::new().master(9999))));
    rec("err-vxlan-vni-taken", 1, 0, &|s| {
        if let Ok(r) = link::create_vxlan("fz-vx2", &vx) {
            drop(s.execute(r));
        }
    });
    // A batch: ACK, refusal, ACK in one datagram stream.
    rec("batch-mixed", 3, 0, &|s| {
        let reqs: Vec<Request> = [
            link::LinkChange::new().mtu(1400).request(LinkRef::Index(a)),
            link::create_bridge("fz-br"),
            link::LinkChange::new().mtu(1450).request(LinkRef::Index(a)),
        ]
        .into_iter()
        .filter_map(|r| r.ok())
        .collect();
        drop(s.batch(&reqs, BatchMode::Continue));
    });
    Ok(out)
}

fn write(dir: &Path, name: &str, data: &[u8]) -> BoxResult<bool> {
    if data.len() > MAX_FILE {
        eprintln!("skipping {}/{name}: {} bytes", dir.display(), data.len());
        return Ok(false);
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(name), data)?;
    Ok(true)
}

fn main() -> BoxResult<()> {
    let out: PathBuf = std::env::args().nth(1).map_or_else(|| Path::new("fuzz/corpus").to_path_buf(), PathBuf::from);
    let recordings = std::thread::spawn(|| -> BoxResult<Vec<Recording>> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
        record()
    })
    .join()
    .map_err(|_| "recorder thread panicked")??;

    let mut views_seen: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut views_per_kind = std::collections::BTreeMap::<u16, usize>::new();
    let mut written = 0;
    for r in &recordings {
        // The kernel's reply header names our port and the request's sequence number.
        let Some(first) = r.datagrams.first().and_then(|d| Header::parse(d).ok()) else {
            eprintln!("{}: nothing recorded", r.name);
            continue;
        };
        let data = fuzzing::encode_recv_input(first.port, first.seq, r.requests - 1, r.dump_mask, &r.datagrams);
        written += write(&out.join("recv_path"), &r.name, &data)? as usize;
        // The first datagram alone: a dump cut short (the receive path must wait, not fail).
        if r.datagrams.len() > 1 {
            let data =
                fuzzing::encode_recv_input(first.port, first.seq, r.requests - 1, r.dump_mask, &r.datagrams[..1]);
            written += write(&out.join("recv_path"), &format!("{}-first", r.name), &data)? as usize;
        }
        // Variants the kernel rarely produces on demand: an interrupted dump, a datagram cut
        // mid-message, a first message claiming more bytes than the datagram has.
        if matches!(r.name.as_str(), "dump-addrs" | "dump-routes-v4" | "dump-neigh") {
            let mut intr = r.datagrams.clone();
            for d in &mut intr {
                if let Some(flags) = d.get_mut(6..8) {
                    let f = u16::from_ne_bytes([flags[0], flags[1]]) | 0x10;
                    flags.copy_from_slice(&f.to_ne_bytes());
                }
            }
            let data = fuzzing::encode_recv_input(first.port, first.seq, 0, r.dump_mask, &intr);
            written += write(&out.join("recv_path"), &format!("{}-intr", r.name), &data)? as usize;
            let mut cut = r.datagrams.clone();
            if let Some(d) = cut.first_mut() {
                d.truncate(d.len().saturating_sub(7));
            }
            let data = fuzzing::encode_recv_input(first.port, first.seq, 0, r.dump_mask, &cut);
            written += write(&out.join("recv_path"), &format!("{}-truncated", r.name), &data)? as usize;
            let mut long = r.datagrams.clone();
            if let Some(len) = long.first_mut().and_then(|d| d.get_mut(0..4)) {
                len.copy_from_slice(&0x0001_0000u32.to_ne_bytes());
            }
            let data = fuzzing::encode_recv_input(first.port, first.seq, 0, r.dump_mask, &long);
            written += write(&out.join("recv_path"), &format!("{}-oversized", r.name), &data)? as usize;
        }
        for (i, f) in r.datagrams.iter().flat_map(|d| frames(d).flatten()).enumerate() {
            match f.header.kind {
                2 | 3 => {
                    let mut data = f.header.flags.to_ne_bytes().to_vec();
                    data.extend_from_slice(f.payload);
                    written += write(&out.join("ext_ack"), &format!("{}-{i}", r.name), &data)? as usize;
                }
                kind => {
                    let n = views_per_kind.entry(kind).or_default();
                    if *n < VIEWS_PER_KIND && views_seen.insert(f.payload.to_vec()) {
                        *n += 1;
                        written += write(&out.join("views"), &format!("{}-{i}", r.name), f.payload)? as usize;
                    }
                }
            }
        }
    }
    let strings: &[&[u8]] = &[
        b"eth0",
        b"fz-a",
        b"02:42:c6:12:00:01",
        b"02-42-C6-12-00-01",
        b"198.18.0.1/16",
        b"2001:db8::1/64",
        b"fe80::1%eth0",
        b"/var/run/docker/netns/0123456789ab",
        b"0123456789abcdef",
        b"ipv4/arp_ignore",
    ];
    for (i, s) in strings.iter().enumerate() {
        written += write(&out.join("user_input"), &format!("seed-{i}"), s)? as usize;
    }
    eprintln!("wrote {written} corpus files under {}", out.display());
    Ok(())
}
