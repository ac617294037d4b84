//! Comparison runner for workload SW (see BENCHMARKS.md): netsandbox (low level, batched, through
//! the `Sandbox` trait, SW-move) against iproute2 (one process per step, and `ip -batch`) and the
//! async `rtnetlink` crate (on a tokio current-thread runtime), in private namespaces only. Variants run interleaved in rounds to reduce drift.
//!
//! ```text
//! cargo run --release --example compare -- --n 100 [--round 10] [--only trait,ip-batch] [--no-live] [--disk]
//! ```
//!
//! Safety: everything happens inside private "host" namespaces made by this process (one per
//! variant); pins go under `$TMPDIR/netsandbox-bench-<pid>/`, never `/run/netns`. iproute2 is run
//! from a thread inside the private host namespace (children inherit the thread's namespace), and
//! inside a sandbox through `nsenter --net=<pin>`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use netsandbox::netlink::addr::{self, AddrOptions};
use netsandbox::netlink::link::{self, LinkChange, LinkRef, VethPeer};
use netsandbox::netlink::neigh::{self, NeighSpec};
use netsandbox::netlink::route::{self, RouteSpec};
use netsandbox::netlink::{BatchMode, Request, Socket};
use netsandbox::netns::{self, NetNs};
use netsandbox::sandbox::{CreateOptions, IfaceOptions, NeighOptions, NetnsSandbox, Sandbox, StaticRoute, WarmPool};

type R<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const GW: &str = "198.18.255.254";
const GW_MAC: [u8; 6] = [0x02, 0x42, 0xc6, 0x12, 0xff, 0xfe];
/// ifindex of eth0 inside a sandbox built by the low-level variants (chosen at creation).
const INNER_INDEX: u32 = 2;

// ---------------------------------------------------------------------------------------------
// The SW parameters of sandbox i.

#[derive(Clone, Copy)]
struct Sw(usize);

impl Sw {
    fn j(self) -> usize {
        self.0 + 1
    }
    fn mac(self) -> [u8; 6] {
        [0x02, 0x42, 0xc6, 0x12, (self.j() >> 8) as u8, self.j() as u8]
    }
    fn mac_str(self) -> String {
        self.mac().iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    }
    fn v4(self) -> IpNet {
        format!("198.18.{}.{}/16", self.j() >> 8, self.j() & 0xff).parse().expect("v4 literal")
    }
    fn v6(self) -> IpNet {
        format!("2001:db8::{:x}/64", self.j()).parse().expect("v6 literal")
    }
    fn static_dst(self) -> IpNet {
        format!("198.19.{}.0/24", self.0 % 250).parse().expect("route literal")
    }
    fn vh(self) -> String {
        format!("vh{}", self.0)
    }
    fn vc(self) -> String {
        format!("vc{}", self.0)
    }
    fn host_index(self) -> u32 {
        100 + self.0 as u32
    }
    fn pin(self, dir: &Path) -> PathBuf {
        dir.join(format!("sbx{}", self.0))
    }
}

fn gw() -> IpAddr {
    GW.parse().expect("gw literal")
}

// ---------------------------------------------------------------------------------------------
// Per-step timing.

/// Records the time since the previous mark under a step name.
struct Laps {
    last: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Laps {
    fn new() -> Self {
        Laps { last: Instant::now(), steps: Vec::new() }
    }
    fn mark(&mut self, step: &'static str) {
        let now = Instant::now();
        self.steps.push((step, now - self.last));
        self.last = now;
    }
}

// ---------------------------------------------------------------------------------------------
// Variants.

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Variant {
    LowStep,
    LowBatch,
    Trait,
    TraitPool,
    TraitMove,
    IpStepDirect,
    IpBatchDirect,
    IpStepMove,
    IpBatchMove,
    Rtnetlink,
}

const ALL: [Variant; 10] = [
    Variant::LowStep,
    Variant::LowBatch,
    Variant::Trait,
    Variant::TraitPool,
    Variant::TraitMove,
    Variant::IpStepDirect,
    Variant::IpBatchDirect,
    Variant::IpStepMove,
    Variant::IpBatchMove,
    Variant::Rtnetlink,
];

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::LowStep => "low-step",
            Variant::LowBatch => "low-batch",
            Variant::Trait => "trait",
            Variant::TraitPool => "trait-pool",
            Variant::TraitMove => "trait-move",
            Variant::IpStepDirect => "ip-step",
            Variant::IpBatchDirect => "ip-batch",
            Variant::IpStepMove => "ip-step-move",
            Variant::IpBatchMove => "ip-batch-move",
            Variant::Rtnetlink => "rtnetlink",
        }
    }
    fn describe(self) -> &'static str {
        match self {
            Variant::LowStep => "(a) netsandbox low level, one request per step, SW-direct",
            Variant::LowBatch => "(b) netsandbox low level, in-sandbox config as one Socket::batch",
            Variant::Trait => "(c) netsandbox Sandbox trait, add_veth (SW-direct)",
            Variant::TraitPool => "(c') as (c), namespace taken from a WarmPool",
            Variant::TraitMove => "(d) netsandbox Sandbox trait, add_interface (SW-move)",
            Variant::IpStepDirect => "(e) iproute2, one process per step, peer born inside",
            Variant::IpBatchDirect => "(f) ip -batch (host batch + nsenter batch), peer born inside",
            Variant::IpStepMove => "(e') iproute2, one process per step, SW-move",
            Variant::IpBatchMove => "(f') ip -batch, SW-move",
            Variant::Rtnetlink => "(g) rtnetlink crate (tokio current-thread), one request per step, SW-direct",
        }
    }
}

/// What a variant must keep to tear a sandbox down.
enum Built {
    Low {
        _ns: NetNs,
        _inner: Socket,
        pin: PathBuf,
        host_index: u32,
    },
    Sbx(NetnsSandbox),
    /// SW-move through the trait: `destroy` returns the moved end to the host (as libnetwork's
    /// does), so the pair is then deleted from the host side, as an engine's network driver would.
    SbxMoved {
        sb: NetnsSandbox,
        vh: String,
    },
    Ip {
        pin: PathBuf,
        vh: String,
    },
    Rtnl {
        _ns: NetNs,
        _inner: rtnetlink::Handle,
        conn: tokio::task::JoinHandle<()>,
        pin: PathBuf,
        host_index: u32,
    },
}

/// For the `rtnetlink` variant: one current-thread runtime per Ctx and a connection whose socket
/// was opened inside the variant's private host namespace.
struct Rtnl {
    rt: tokio::runtime::Runtime,
    host: rtnetlink::Handle,
}

impl Rtnl {
    fn new(host: &NetNs) -> R<Rtnl> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (conn, handle) = rtnl_connection_in(host, rt.handle())?;
        rt.spawn(conn);
        Ok(Rtnl { rt, host: handle })
    }
}

/// A connection future and its handle; the connection drives the socket when spawned.
type RtnlConnection = (rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>, rtnetlink::Handle);

/// `rtnetlink::new_connection()` on a thread inside `ns`: the socket is created (and stays) in
/// `ns`. The runtime is entered so that the socket can register with its reactor.
fn rtnl_connection_in(ns: &NetNs, rt: &tokio::runtime::Handle) -> R<RtnlConnection> {
    Ok(netns::run_in(ns, || {
        let _enter = rt.enter();
        rtnetlink::new_connection().map(|(conn, handle, _)| (conn, handle))
    })??)
}

/// A variant's private host namespace, its pin directory and a socket bound to the host.
struct Ctx {
    variant: Variant,
    host: NetNs,
    dir: PathBuf,
    sock: Socket,
    /// For the pool variant: refilled in the background between rounds.
    pool: Option<WarmPool>,
    /// For the rtnetlink variant.
    rtnl: Option<Rtnl>,
    setup_ms: Vec<f64>,
    teardown_ms: Vec<f64>,
    steps: BTreeMap<&'static str, Vec<f64>>,
}

impl Ctx {
    /// `pool_size`: for (c'), one round's worth, refilled while the other variants run.
    fn new(variant: Variant, base: &Path, pool_size: usize) -> R<Ctx> {
        let host = NetNs::new_unpinned()?;
        let dir = base.join(variant.name());
        std::fs::create_dir_all(&dir)?;
        netns::ensure_shared_base(&dir)?;
        let sock = netns::socket_in(&host)?;
        let pool = match variant {
            // The pool's origin is the namespace it is made in: the variant's private host.
            Variant::TraitPool => {
                Some(netns::run_in_result(&host, || WarmPool::new(pool_size, CreateOptions::default()))?)
            }
            _ => None,
        };
        let rtnl = match variant {
            Variant::Rtnetlink => Some(Rtnl::new(&host)?),
            _ => None,
        };
        Ok(Ctx {
            variant,
            host,
            dir,
            sock,
            pool,
            rtnl,
            setup_ms: Vec::new(),
            teardown_ms: Vec::new(),
            steps: BTreeMap::new(),
        })
    }

    fn setup(&self, sw: Sw, laps: &mut Laps) -> R<Built> {
        match self.variant {
            Variant::LowStep => low_step(&self.sock, &self.dir, sw, laps),
            Variant::LowBatch => low_batch(&self.sock, &self.dir, sw, laps),
            Variant::Trait => trait_direct(&self.dir, sw, laps),
            Variant::TraitPool => match &self.pool {
                Some(pool) => trait_pool(pool, &self.dir, sw, laps),
                None => Err("pool variant without a pool".into()),
            },
            Variant::TraitMove => trait_move(&self.sock, &self.dir, sw, laps),
            Variant::IpStepDirect => ip_step(&self.dir, sw, true, laps),
            Variant::IpBatchDirect => ip_batch(&self.dir, sw, true, laps),
            Variant::IpStepMove => ip_step(&self.dir, sw, false, laps),
            Variant::IpBatchMove => ip_batch(&self.dir, sw, false, laps),
            Variant::Rtnetlink => match &self.rtnl {
                Some(r) => rtnl_direct(r, &self.dir, sw, laps),
                None => Err("rtnetlink variant without a runtime".into()),
            },
        }
    }

    fn teardown(&self, built: Built, laps: &mut Laps) -> R<()> {
        match built {
            Built::Low { _ns, _inner, pin, host_index } => {
                self.sock.delete_link(LinkRef::Index(host_index))?;
                laps.mark("delete veth");
                drop((_ns, _inner));
                netns::unpin(&pin)?;
                laps.mark("unpin");
            }
            Built::Sbx(sb) => {
                sb.destroy()?;
                laps.mark("destroy");
            }
            Built::SbxMoved { sb, vh } => {
                sb.destroy()?;
                laps.mark("destroy (moved end goes home)");
                self.sock.delete_link(LinkRef::Name(&vh))?;
                laps.mark("delete veth");
            }
            Built::Ip { pin, vh } => {
                run("ip", &["link", "del", &vh])?;
                laps.mark("ip link del");
                run("umount", &["--lazy", &pin.display().to_string()])?;
                std::fs::remove_file(&pin)?;
                laps.mark("umount + rm pin");
            }
            Built::Rtnl { _ns, _inner, conn, pin, host_index } => {
                let r = self.rtnl.as_ref().ok_or("rtnetlink teardown without a runtime")?;
                r.rt.block_on(r.host.link().del(host_index).execute())?;
                laps.mark("delete veth");
                conn.abort();
                drop((_ns, _inner));
                netns::unpin(&pin)?;
                laps.mark("unpin");
            }
        }
        Ok(())
    }

    /// Builds and tears down the sandboxes `ids` inside the private host namespace.
    fn round(&mut self, ids: std::ops::Range<usize>) -> R<()> {
        let this = &*self;
        // The pool refills between rounds, off the timed path; a round starts with it full.
        if let Some(pool) = &this.pool
            && !pool.wait_full(Duration::from_secs(10))
        {
            eprintln!("warning: pool not full at the start of a round ({} ready)", pool.ready());
        }
        let (setup, teardown, steps) = netns::run_in(&this.host, || -> R<_> {
            let mut built = Vec::new();
            let mut setup = Vec::new();
            let mut teardown = Vec::new();
            let mut steps: Vec<(&'static str, Duration)> = Vec::new();
            let mut failure = None;
            for i in ids {
                let mut laps = Laps::new();
                let t = Instant::now();
                match this.setup(Sw(i), &mut laps) {
                    Ok(b) => built.push(b),
                    Err(e) => {
                        failure = Some(format!("{} set-up of sandbox {i}: {e}", this.variant.name()));
                        break;
                    }
                }
                setup.push(ms(t.elapsed()));
                steps.extend(laps.steps);
            }
            // Tear down whatever was built, even after a failure.
            for b in built {
                let mut laps = Laps::new();
                let t = Instant::now();
                if let Err(e) = this.teardown(b, &mut laps) {
                    failure.get_or_insert(format!("{} teardown: {e}", this.variant.name()));
                }
                teardown.push(ms(t.elapsed()));
                steps.extend(laps.steps);
            }
            match failure {
                Some(f) => Err(f.into()),
                None => Ok((setup, teardown, steps)),
            }
        })??;
        self.setup_ms.extend(setup);
        self.teardown_ms.extend(teardown);
        for (k, d) in steps {
            self.steps.entry(k).or_default().push(ms(d));
        }
        Ok(())
    }

    /// Links other than `lo` left in the private host namespace.
    fn leftover_links(&self) -> R<Vec<String>> {
        Ok(self.sock.links()?.into_iter().map(|l| l.name).filter(|n| n != "lo").collect())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// (a) One netlink request per step; the container end is born inside with its index.
fn low_step(h: &Socket, dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    let pin = sw.pin(dir);
    let (ns, inner) = netns::create_pinned_with(&pin, Socket::open)?;
    laps.mark("create+pin netns, open socket");
    h.execute(veth_direct(&ns, sw)?)?;
    laps.mark("create veth (born inside)");
    inner.add_address(INNER_INDEX, &sw.v4(), AddrOptions::default())?;
    inner.add_address(INNER_INDEX, &sw.v6(), AddrOptions { nodad: true, ..Default::default() })?;
    laps.mark("2 addresses");
    inner.set_link(LinkRef::Index(INNER_INDEX), &LinkChange::new().up(true))?;
    inner.set_link(LinkRef::Index(1), &LinkChange::new().up(true))?;
    laps.mark("eth0 + lo up");
    inner.add_route(&default_route())?;
    inner.add_route(&static_route(sw))?;
    laps.mark("2 routes");
    inner.add_neighbor(&NeighSpec::arp(INNER_INDEX, gw(), GW_MAC), false)?;
    laps.mark("neighbor");
    h.set_link(LinkRef::Index(sw.host_index()), &LinkChange::new().up(true))?;
    laps.mark("host end up");
    Ok(Built::Low { _ns: ns, _inner: inner, pin, host_index: sw.host_index() })
}

// (b) The same requests, host side as one batch and sandbox side as one batch.
fn low_batch(h: &Socket, dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    let pin = sw.pin(dir);
    let (ns, inner) = netns::create_pinned_with(&pin, Socket::open)?;
    laps.mark("create+pin netns, open socket");
    let host_reqs = [veth_direct(&ns, sw)?, LinkChange::new().up(true).request(LinkRef::Index(sw.host_index()))?];
    h.batch(&host_reqs, BatchMode::Continue)?.into_result()?;
    laps.mark("host batch (veth + up)");
    inner.batch(&inner_requests(sw)?, BatchMode::Continue)?.into_result()?;
    laps.mark("sandbox batch (7 requests)");
    Ok(Built::Low { _ns: ns, _inner: inner, pin, host_index: sw.host_index() })
}

fn veth_direct(ns: &NetNs, sw: Sw) -> R<Request> {
    let peer = VethPeer {
        name: "eth0".into(),
        mac: Some(sw.mac()),
        netns: Some(ns.as_fd()),
        index: Some(INNER_INDEX),
        host_index: Some(sw.host_index()),
        ..Default::default()
    };
    Ok(link::create_veth(&sw.vh(), None, &peer)?)
}

fn default_route() -> RouteSpec {
    RouteSpec::new("0.0.0.0/0".parse().expect("literal")).via(gw()).dev(INNER_INDEX)
}

fn static_route(sw: Sw) -> RouteSpec {
    RouteSpec::new(sw.static_dst()).via(gw()).dev(INNER_INDEX)
}

fn inner_requests(sw: Sw) -> R<Vec<Request>> {
    Ok(vec![
        addr::add(INNER_INDEX, &sw.v4(), AddrOptions::default())?,
        addr::add(INNER_INDEX, &sw.v6(), AddrOptions { nodad: true, ..Default::default() })?,
        LinkChange::new().up(true).request(LinkRef::Index(INNER_INDEX))?,
        LinkChange::new().up(true).request(LinkRef::Index(1))?,
        route::add(&default_route(), false)?,
        route::add(&static_route(sw), false)?,
        neigh::add(&NeighSpec::arp(INNER_INDEX, gw(), GW_MAC), false)?,
    ])
}

fn iface_opts(sw: Sw) -> IfaceOptions {
    IfaceOptions::new().mac(sw.mac()).address(sw.v4()).address_ipv6(sw.v6())
}

/// Gateway, static route and neighbor through the trait (shared by (c) and (d)).
fn trait_routes(sb: &NetnsSandbox, sw: Sw, laps: &mut Laps) -> R<()> {
    sb.set_gateway(gw())?;
    laps.mark("set_gateway");
    sb.add_static_route(&StaticRoute::via(sw.static_dst(), gw()))?;
    laps.mark("add_static_route");
    sb.add_neighbor(gw(), GW_MAC, false, &NeighOptions::new())?;
    laps.mark("add_neighbor");
    Ok(())
}

// (c) Through the Sandbox trait, the container end born inside (add_veth).
fn trait_direct(dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    let sb = NetnsSandbox::create(&sw.pin(dir).display().to_string(), &CreateOptions::default())?;
    laps.mark("create");
    trait_sw_direct(sb, sw, laps)
}

/// The SW steps after the namespace exists, container end born inside.
fn trait_sw_direct(sb: NetnsSandbox, sw: Sw, laps: &mut Laps) -> R<Built> {
    sb.add_veth(&sw.vh(), "eth", &iface_opts(sw))?;
    laps.mark("add_veth");
    trait_routes(&sb, sw, laps)?;
    Ok(Built::Sbx(sb))
}

// (c') As (c), with the namespace taken from a warm pool.
fn trait_pool(pool: &WarmPool, dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    let sb = pool.take(&sw.pin(dir).display().to_string())?;
    laps.mark("pool take");
    trait_sw_direct(sb, sw, laps)
}

// (d) Through the Sandbox trait, libnetwork's model: veth made in the host, moved in.
fn trait_move(h: &Socket, dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    let sb = NetnsSandbox::create(&sw.pin(dir).display().to_string(), &CreateOptions::default())?;
    laps.mark("create");
    let peer = VethPeer { name: sw.vc(), ..Default::default() };
    if let Err(e) = h.execute(link::create_veth(&sw.vh(), None, &peer)?) {
        let _ = sb.destroy();
        return Err(e.into());
    }
    laps.mark("create veth in host");
    let configured = sb.add_interface(&sw.vc(), "eth", &iface_opts(sw)).map_err(Into::into).and_then(|_| {
        laps.mark("add_interface (move)");
        h.set_link(LinkRef::Name(&sw.vh()), &LinkChange::new().up(true))?;
        laps.mark("host end up");
        trait_routes(&sb, sw, laps)
    });
    if let Err(e) = configured {
        let _ = sb.destroy();
        let _ = h.delete_link(LinkRef::Name(&sw.vh()));
        return Err(e);
    }
    Ok(Built::SbxMoved { sb, vh: sw.vh() })
}

// ---------------------------------------------------------------------------------------------
// (g) The `rtnetlink` crate.

/// How an rtnetlink user pins a namespace without netsandbox. rtnetlink's own
/// `NetworkNamespace::add` forks a child and pins only under `/var/run/netns` (off limits to
/// benchmarks); the thread-safe equivalent is a helper thread that unshares and bind-mounts,
/// which is also what netsandbox did before it learned to create on the calling thread.
fn rtnl_pinned_ns<T: Send>(pin: &Path, inside: impl FnOnce() -> T + Send) -> R<(NetNs, T)> {
    use nix::mount::{MsFlags, mount};
    std::fs::File::create_new(pin)?;
    let made = std::thread::scope(|s| {
        s.spawn(|| -> R<T> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
            mount(Some("/proc/thread-self/ns/net"), pin, None::<&str>, MsFlags::MS_BIND, None::<&str>)?;
            Ok(inside())
        })
        .join()
        .map_err(|_| "namespace thread panicked")?
    });
    match made.and_then(|v| Ok((NetNs::from_path(pin)?, v))) {
        Ok(v) => Ok(v),
        Err(e) => {
            let _ = netns::unpin(pin);
            Err(e)
        }
    }
}

// (g) One rtnetlink request per step (one `block_on` per timed step), SW-direct: the peer is born
// inside the sandbox with its final name, MAC and index (IFLA_NET_NS_FD on the veth peer). The
// namespace is made by `rtnl_pinned_ns`, with the sandbox-side connection opened on its helper
// thread while that is inside the new namespace.
fn rtnl_direct(r: &Rtnl, dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
    use rtnetlink::packet_route::link::{InfoData, InfoVeth};
    use rtnetlink::{LinkUnspec, LinkVeth, RouteMessageBuilder};
    use std::net::Ipv4Addr;

    let pin = sw.pin(dir);
    let rt = r.rt.handle();
    let (ns, conn) = rtnl_pinned_ns(&pin, || {
        let _enter = rt.enter();
        rtnetlink::new_connection()
    })?;
    let (conn, inner, _) = match conn {
        Ok(c) => c,
        Err(e) => {
            drop(ns);
            let _ = netns::unpin(&pin);
            return Err(e.into());
        }
    };
    let conn = r.rt.spawn(conn);
    laps.mark("create+pin netns, open connection");
    let built = Built::Rtnl { _ns: ns, _inner: inner, conn, pin, host_index: sw.host_index() };
    let Built::Rtnl { _ns: ns, _inner: inner, .. } = &built else { unreachable!() };
    let configured = (|| -> R<()> {
        let peer = LinkUnspec::new_with_index(INNER_INDEX)
            .name("eth0")
            .address(sw.mac().to_vec())
            .setns_by_fd(ns.as_fd().as_raw_fd())
            .build();
        let veth = LinkVeth::new(&sw.vh(), "eth0")
            .index(sw.host_index())
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        r.rt.block_on(r.host.link().add(veth).execute())?;
        laps.mark("create veth (born inside)");
        r.rt.block_on(async {
            let (v4, v6) = (sw.v4(), sw.v6());
            inner.address().add(INNER_INDEX, v4.addr(), v4.prefix_len()).execute().await?;
            let mut req = inner.address().add(INNER_INDEX, v6.addr(), v6.prefix_len());
            let msg = req.message_mut();
            msg.header.flags |= AddressHeaderFlags::Nodad;
            msg.attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
            req.execute().await
        })?;
        laps.mark("2 addresses");
        r.rt.block_on(async {
            inner.link().set(LinkUnspec::new_with_index(INNER_INDEX).up().build()).execute().await?;
            inner.link().set(LinkUnspec::new_with_index(1).up().build()).execute().await
        })?;
        laps.mark("eth0 + lo up");
        let IpAddr::V4(gw4) = gw() else { unreachable!() };
        let IpNet::V4(dst) = sw.static_dst() else { unreachable!() };
        r.rt.block_on(async {
            let default = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw4).output_interface(INNER_INDEX).build();
            inner.route().add(default).execute().await?;
            let fixed = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(dst.addr(), dst.prefix_len())
                .gateway(gw4)
                .output_interface(INNER_INDEX)
                .build();
            inner.route().add(fixed).execute().await
        })?;
        laps.mark("2 routes");
        r.rt.block_on(inner.neighbours().add(INNER_INDEX, gw()).link_layer_address(&GW_MAC).execute())?;
        laps.mark("neighbor");
        r.rt.block_on(r.host.link().set(LinkUnspec::new_with_index(sw.host_index()).up().build()).execute())?;
        laps.mark("host end up");
        Ok(())
    })();
    if let Err(e) = configured {
        let Built::Rtnl { _ns, _inner, conn, pin, host_index } = built else { unreachable!() };
        let _ = r.rt.block_on(r.host.link().del(host_index).execute());
        conn.abort();
        drop((_ns, _inner));
        let _ = netns::unpin(&pin);
        return Err(e);
    }
    Ok(built)
}

// ---------------------------------------------------------------------------------------------
// iproute2.

fn run(cmd: &str, args: &[&str]) -> R<()> {
    let out = Command::new(cmd).args(args).stdin(Stdio::null()).stdout(Stdio::null()).output()?;
    if !out.status.success() {
        return Err(format!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    Ok(())
}

/// `ip <args>` inside the sandbox pinned at `pin`.
fn ip_in(pin: &Path, args: &[&str]) -> R<()> {
    let net = format!("--net={}", pin.display());
    let mut all = vec![net.as_str(), "ip"];
    all.extend_from_slice(args);
    run("nsenter", &all)
}

/// Feeds `lines` to `<cmd...> -batch -` on stdin.
fn run_batch(cmd: &[&str], lines: &[String]) -> R<()> {
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
fn ip_netns_create(pin: &Path) -> R<()> {
    std::fs::File::create_new(pin)?;
    run("unshare", &[&format!("--net={}", pin.display()), "true"])
}

/// Host-side commands; `direct` creates the peer in the sandbox with its final name and MAC.
fn ip_host_cmds(pin: &Path, sw: Sw, direct: bool) -> Vec<String> {
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
fn ip_inner_cmds(sw: Sw, direct: bool) -> Vec<String> {
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
fn ip_step(dir: &Path, sw: Sw, direct: bool, laps: &mut Laps) -> R<Built> {
    let pin = sw.pin(dir);
    ip_netns_create(&pin)?;
    let built = Built::Ip { pin: pin.clone(), vh: sw.vh() };
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
fn ip_batch(dir: &Path, sw: Sw, direct: bool, laps: &mut Laps) -> R<Built> {
    let pin = sw.pin(dir);
    ip_netns_create(&pin)?;
    let built = Built::Ip { pin: pin.clone(), vh: sw.vh() };
    laps.mark("unshare --net=pin");
    run_batch(&["ip"], &ip_host_cmds(&pin, sw, direct))?;
    laps.mark("ip -batch host");
    let net = format!("--net={}", pin.display());
    run_batch(&["nsenter", &net, "ip"], &ip_inner_cmds(sw, direct))?;
    laps.mark("nsenter ip -batch sandbox");
    Ok(built)
}

// ---------------------------------------------------------------------------------------------
// Live sandboxes: fds and memory per sandbox.

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Pause before each live pass (see its use).
const LIVE_SETTLE: Duration = Duration::from_secs(10);

struct LiveReport {
    n: usize,
    fds_per: f64,
    rss_kib_per: f64,
    first_ms: f64,
    last_ms: f64,
    /// Teardown of all `n`, per sandbox.
    teardown_ms: f64,
}

/// Creates `n` live SW sandboxes through the trait, measures, destroys them. `host_ll`: whether
/// the host ends get IPv6 link-local addresses (the kernel default; see
/// `IfaceOptions::host_link_local`). `batch`: tear down with one `destroy_many` instead of
/// `destroy` one by one.
fn live_sandboxes(ctx: &Ctx, n: usize, host_ll: bool, batch: bool) -> R<LiveReport> {
    netns::run_in(&ctx.host, || -> R<LiveReport> {
        let (fd0, rss0) = (fd_count(), rss_kib());
        let mut live = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let mut failure = None;
        for i in 0..n {
            let t = Instant::now();
            let built = NetnsSandbox::create(&Sw(i).pin(&ctx.dir).display().to_string(), &CreateOptions::default())
                .map_err(Into::into)
                .and_then(|sb| {
                    let configured = sb
                        .add_veth(&Sw(i).vh(), "eth", &iface_opts(Sw(i)).host_link_local(host_ll))
                        .map_err(Into::into)
                        .and_then(|_| trait_routes(&sb, Sw(i), &mut Laps::new()));
                    match configured {
                        Ok(()) => Ok(Built::Sbx(sb)),
                        Err(e) => {
                            let _ = sb.destroy();
                            Err(e)
                        }
                    }
                });
            match built {
                Ok(b) => live.push(b),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
            times.push(ms(t.elapsed()));
        }
        let (fd1, rss1) = (fd_count(), rss_kib());
        let t = Instant::now();
        if batch {
            let sbs: Vec<&NetnsSandbox> =
                live.iter().filter_map(|b| if let Built::Sbx(sb) = b { Some(sb) } else { None }).collect();
            NetnsSandbox::destroy_many(&sbs)?;
        } else {
            for b in live {
                ctx.teardown(b, &mut Laps::new())?;
            }
        }
        let teardown_ms = ms(t.elapsed()) / n.max(1) as f64;
        if let Some(e) = failure {
            return Err(e);
        }
        let k = (n / 10).max(1);
        Ok(LiveReport {
            n,
            fds_per: (fd1 as f64 - fd0 as f64) / n as f64,
            rss_kib_per: (rss1 as f64 - rss0 as f64) / n as f64,
            first_ms: median(&times[..k]),
            last_ms: median(&times[n - k..]),
            teardown_ms,
        })
    })?
}

// ---------------------------------------------------------------------------------------------
// Clean-up and verification.

/// Removes the whole bench directory on drop, detaching anything still mounted below it.
struct BaseGuard(PathBuf);

impl Drop for BaseGuard {
    fn drop(&mut self) {
        let mut points = mounts_under(&self.0).into_iter().map(|(p, _)| p).collect::<Vec<_>>();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// (mount point, fstype) of every mount under `dir`.
fn mounts_under(dir: &Path) -> Vec<(String, String)> {
    let prefix = dir.display().to_string();
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some((f.get(4)?.to_string(), f.get(sep + 1)?.to_string()))
        })
        .filter(|(p, _)| p.starts_with(&prefix))
        .collect()
}

fn verify(ctxs: &[Ctx], base: &Path) -> R<()> {
    let nsfs = mounts_under(base).into_iter().filter(|(_, t)| t == "nsfs").count();
    let mut problems = Vec::new();
    if nsfs != 0 {
        problems.push(format!("{nsfs} nsfs mounts left under {}", base.display()));
    }
    for c in ctxs {
        let left = c.leftover_links()?;
        if !left.is_empty() {
            problems.push(format!("{}: links left in host namespace: {left:?}", c.variant.name()));
        }
        let files = std::fs::read_dir(&c.dir)?.count();
        if files != 0 {
            problems.push(format!("{}: {files} pin files left", c.variant.name()));
        }
    }
    if problems.is_empty() {
        println!("verified: no nsfs mounts left under the bench directory, no links or pin files left");
        Ok(())
    } else {
        Err(problems.join("; ").into())
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting.

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 { s[m] } else { (s[m - 1] + s[m]) / 2.0 }
}

fn report(ctxs: &[Ctx], n: usize) {
    let reference = ctxs.iter().find(|c| c.variant == Variant::Trait);
    let (ref_set, ref_tot) =
        reference.map_or((f64::NAN, f64::NAN), |c| (median(&c.setup_ms), median(&c.setup_ms) + median(&c.teardown_ms)));
    println!("\nSW, N = {n} per variant (median per sandbox, ms)\n");
    println!(
        "| {:<13} | {:>9} | {:>9} | {:>14} | {:>14} | what",
        "variant", "set-up", "teardown", "set-up/trait", "total/trait"
    );
    println!("|{:-<15}|{:->11}|{:->11}|{:->16}|{:->16}|------", "", "", "", "", "");
    for c in ctxs {
        let (s, t) = (median(&c.setup_ms), median(&c.teardown_ms));
        println!(
            "| {:<13} | {:>9.3} | {:>9.3} | {:>13.2}x | {:>13.2}x | {}",
            c.variant.name(),
            s,
            t,
            s / ref_set,
            (s + t) / ref_tot,
            c.variant.describe()
        );
    }
    println!();
    for c in ctxs {
        if c.variant == Variant::Trait {
            continue;
        }
        println!("{} / trait (set-up) = {:.1}x", c.variant.name(), median(&c.setup_ms) / ref_set);
    }
    println!("\nper-step medians (ms):");
    for c in ctxs {
        let parts: Vec<String> = c.steps.iter().map(|(k, v)| format!("{k} {:.3}", median(v))).collect();
        println!("  {:<13} {}", c.variant.name(), parts.join(" | "));
    }
}

// ---------------------------------------------------------------------------------------------

struct Args {
    n: usize,
    round: usize,
    only: Vec<Variant>,
    live: bool,
    settle: Duration,
    /// Keep pins on `$TMPDIR`'s filesystem instead of a private tmpfs.
    disk: bool,
}

fn parse_args() -> R<Args> {
    let mut a =
        Args { n: 100, round: 10, only: ALL.to_vec(), live: true, settle: Duration::from_millis(100), disk: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--n" => a.n = it.next().ok_or("--n needs a value")?.parse()?,
            "--round" => a.round = it.next().ok_or("--round needs a value")?.parse()?,
            "--no-live" => a.live = false,
            "--disk" => a.disk = true,
            "--settle-ms" => a.settle = Duration::from_millis(it.next().ok_or("--settle-ms needs a value")?.parse()?),
            "--only" => {
                let names = it.next().ok_or("--only needs a list")?;
                a.only = names
                    .split(',')
                    .map(|n| ALL.iter().copied().find(|v| v.name() == n).ok_or(format!("unknown variant {n}")))
                    .collect::<Result<_, _>>()?;
            }
            "--bench" => {} // passed by `cargo bench`-style runners; ignored
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.n == 0 || a.n > 5000 || a.round == 0 {
        return Err("--n must be in 1..=5000 and --round >= 1".into());
    }
    Ok(a)
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("compare failed: {e}");
        std::process::exit(1);
    }
}

fn real_main() -> R<()> {
    let args = parse_args()?;
    let base = std::env::temp_dir().join(format!("netsandbox-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let _guard = BaseGuard(base.clone());
    if !args.disk {
        // Pins live on tmpfs, as under /run on a real host. On ext4, creating the pin file gets
        // slower the more files were created and deleted before (the inode allocator checks
        // recently deleted inodes), which would show up as growth with N that is not ours.
        nix::mount::mount(Some("tmpfs"), &base, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("mode=0700"))?;
    }
    let mut ctxs = args.only.iter().map(|v| Ctx::new(*v, &base, args.round)).collect::<R<Vec<_>>>()?;
    let started = Instant::now();
    let mut start = 0;
    let mut rotation = 0;
    while start < args.n {
        let end = (start + args.round).min(args.n);
        for k in 0..ctxs.len() {
            let idx = (k + rotation) % ctxs.len();
            ctxs[idx].round(start..end)?;
            // Let the kernel's asynchronous namespace clean-up of this round finish, so it does
            // not slow down the next variant.
            std::thread::sleep(args.settle);
        }
        rotation += 1;
        start = end;
    }
    println!("rounds done in {:.1} s", started.elapsed().as_secs_f64());
    report(&ctxs, args.n);
    if args.live
        && let Some(c) = ctxs.iter().find(|c| c.variant == Variant::Trait)
    {
        // The first pass tears down one by one, the second with one destroy_many.
        for (host_ll, batch) in [(true, false), (false, true)] {
            // The kernel frees destroyed namespaces and their devices asynchronously, for seconds
            // after a large teardown, under the same locks set-up needs: let it finish first.
            std::thread::sleep(LIVE_SETTLE);
            let r = live_sandboxes(c, args.n, host_ll, batch)?;
            println!(
                "\n{} live sandboxes (trait, SW{}): {:.2} fds and {:.1} KiB RSS per sandbox; \
                 set-up median of first 10%: {:.3} ms, of last 10%: {:.3} ms ({:+.0}%); \
                 teardown {:.3} ms per sandbox ({})",
                r.n,
                if host_ll { "" } else { ", host ends without IPv6 link-local" },
                r.fds_per,
                r.rss_kib_per,
                r.first_ms,
                r.last_ms,
                (r.last_ms / r.first_ms - 1.0) * 100.0,
                r.teardown_ms,
                if batch { "one destroy_many" } else { "destroy one by one" }
            );
        }
    }
    verify(&ctxs, &base)?;
    for c in &ctxs {
        let _ = netns::release_base(&c.dir);
    }
    Ok(())
}
