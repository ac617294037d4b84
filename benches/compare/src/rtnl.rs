//! Variant (g): the async `rtnetlink` crate on a tokio current-thread runtime.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use netsandbox::IpNet;
use netsandbox::netns::{self, NetNs};

use crate::ctx::Built;
use crate::sw::{Laps, Sw, gw};
use crate::{GW_MAC, INNER_INDEX, R};

/// For the `rtnetlink` variant: one current-thread runtime per Ctx and a connection whose socket
/// was opened inside the variant's private host namespace.
pub(crate) struct Rtnl {
    pub(crate) rt: tokio::runtime::Runtime,
    pub(crate) host: rtnetlink::Handle,
}

impl Rtnl {
    pub(crate) fn new(host: &NetNs) -> R<Rtnl> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (conn, handle) = rtnl_connection_in(host, rt.handle())?;
        rt.spawn(conn);
        Ok(Rtnl { rt, host: handle })
    }
}

/// A connection future and its handle; the connection drives the socket when spawned.
pub(crate) type RtnlConnection =
    (rtnetlink::proto::Connection<rtnetlink::packet_route::RouteNetlinkMessage>, rtnetlink::Handle);

/// `rtnetlink::new_connection()` on a thread inside `ns`: the socket is created (and stays) in
/// `ns`. The runtime is entered so that the socket can register with its reactor.
pub(crate) fn rtnl_connection_in(ns: &NetNs, rt: &tokio::runtime::Handle) -> R<RtnlConnection> {
    Ok(netns::run_in(ns, || {
        let _enter = rt.enter();
        rtnetlink::new_connection().map(|(conn, handle, _)| (conn, handle))
    })??)
}

/// How an rtnetlink user pins a namespace without netsandbox. rtnetlink's own
/// `NetworkNamespace::add` forks a child and pins only under `/var/run/netns` (off limits to
/// benchmarks); the thread-safe equivalent is a helper thread that unshares and bind-mounts,
/// which is also what netsandbox did before it learned to create on the calling thread.
pub(crate) fn rtnl_pinned_ns<T: Send>(pin: &Path, inside: impl FnOnce() -> T + Send) -> R<(NetNs, T)> {
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
pub(crate) fn rtnl_direct(r: &Rtnl, dir: &Path, sw: Sw, laps: &mut Laps) -> R<Built> {
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
