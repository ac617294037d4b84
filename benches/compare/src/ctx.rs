//! The variants, and one variant's private host namespace with its rounds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netsandbox::netlink::Socket;
use netsandbox::netlink::link::LinkRef;
use netsandbox::netns::{self, NetNs, NsFileHandle};
use netsandbox::sandbox::{CreateOptions, NetnsSandbox, Sandbox, WarmPool};

use crate::iproute2::{ip_batch, ip_step, run};
use crate::ours::{low_batch, low_step, trait_direct, trait_move, trait_pool};
use crate::rtnl::{Rtnl, rtnl_direct};
use crate::sw::{Laps, Sw};
use crate::{R, ms};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) enum Variant {
    LowStep,
    LowBatch,
    Trait,
    TraitPool,
    TraitPoolWired,
    TraitMove,
    IpStepDirect,
    IpBatchDirect,
    IpStepMove,
    IpBatchMove,
    Rtnetlink,
}

pub(crate) const ALL: [Variant; 11] = [
    Variant::LowStep,
    Variant::LowBatch,
    Variant::Trait,
    Variant::TraitPool,
    Variant::TraitPoolWired,
    Variant::TraitMove,
    Variant::IpStepDirect,
    Variant::IpBatchDirect,
    Variant::IpStepMove,
    Variant::IpBatchMove,
    Variant::Rtnetlink,
];

impl Variant {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Variant::LowStep => "low-step",
            Variant::LowBatch => "low-batch",
            Variant::Trait => "trait",
            Variant::TraitPool => "trait-pool",
            Variant::TraitPoolWired => "trait-pool-wired",
            Variant::TraitMove => "trait-move",
            Variant::IpStepDirect => "ip-step",
            Variant::IpBatchDirect => "ip-batch",
            Variant::IpStepMove => "ip-step-move",
            Variant::IpBatchMove => "ip-batch-move",
            Variant::Rtnetlink => "rtnetlink",
        }
    }
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Variant::LowStep => "(a) netsandbox low level, one request per step, SW-direct",
            Variant::LowBatch => "(b) netsandbox low level, in-sandbox config as one Socket::batch",
            Variant::Trait => "(c) netsandbox Sandbox trait, add_veth (SW-direct)",
            Variant::TraitPool => "(c') as (c), namespace taken from a WarmPool",
            Variant::TraitPoolWired => "(c'') as (c), namespace and veth pair from a pre-wired WarmPool",
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
pub(crate) enum Built {
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
    },
    Rtnl {
        _ns: NetNs,
        _inner: rtnetlink::Handle,
        conn: tokio::task::JoinHandle<()>,
        pin: PathBuf,
        host_index: u32,
    },
}
/// A variant's private host namespace, its pin directory and a socket bound to the host.
pub(crate) struct Ctx {
    pub(crate) variant: Variant,
    pub(crate) host: NetNs,
    pub(crate) dir: PathBuf,
    pub(crate) sock: Socket,
    /// For the pool variant: refilled in the background between rounds.
    pub(crate) pool: Option<WarmPool>,
    /// For the rtnetlink variant.
    pub(crate) rtnl: Option<Rtnl>,
    pub(crate) setup_ms: Vec<f64>,
    pub(crate) teardown_ms: Vec<f64>,
    /// From the start of teardown until the kernel has freed the namespace and the host end.
    pub(crate) reaped_ms: Vec<f64>,
    pub(crate) steps: BTreeMap<&'static str, Vec<f64>>,
}

impl Ctx {
    /// `pool_size`: for (c'), one round's worth, refilled while the other variants run.
    pub(crate) fn new(variant: Variant, base: &Path, pool_size: usize) -> R<Ctx> {
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
            Variant::TraitPoolWired => {
                Some(netns::run_in_result(&host, || WarmPool::prewired(pool_size, CreateOptions::default()))?)
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
            reaped_ms: Vec::new(),
            steps: BTreeMap::new(),
        })
    }

    pub(crate) fn setup(&self, sw: Sw, laps: &mut Laps) -> R<Built> {
        match self.variant {
            Variant::LowStep => low_step(&self.sock, &self.dir, sw, laps),
            Variant::LowBatch => low_batch(&self.sock, &self.dir, sw, laps),
            Variant::Trait => trait_direct(&self.dir, sw, laps),
            Variant::TraitPool | Variant::TraitPoolWired => match &self.pool {
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

    pub(crate) fn teardown(&self, built: Built, laps: &mut Laps) -> R<()> {
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
            Built::Ip { pin } => {
                // `ip netns del` semantics: unmount and remove the pin; the kernel deletes the
                // veth pair when it frees the namespace.
                run("umount", &["--lazy", &pin.display().to_string()])?;
                std::fs::remove_file(&pin)?;
                laps.mark("umount + rm pin (ip netns del)");
            }
            Built::Rtnl { _ns, _inner, conn, pin, host_index } => {
                let r = self.rtnl.as_ref().ok_or("rtnetlink teardown without a runtime")?;
                r.rt.block_on(r.host.link().del(host_index).execute())?;
                laps.mark("delete veth");
                conn.abort();
                // The aborted task (and with it the connection's socket, which holds the
                // namespace) is dropped only when the runtime runs it again.
                let _ = r.rt.block_on(conn);
                drop((_ns, _inner));
                netns::unpin(&pin)?;
                laps.mark("unpin");
            }
        }
        Ok(())
    }

    /// Builds and tears down the sandboxes `ids` inside the private host namespace.
    pub(crate) fn round(&mut self, ids: std::ops::Range<usize>) -> R<()> {
        let this = &*self;
        // The pool refills between rounds, off the timed path; a round starts with it full.
        if let Some(pool) = &this.pool
            && !pool.wait_full(Duration::from_secs(10))
        {
            eprintln!("warning: pool not full at the start of a round ({} ready)", pool.ready());
        }
        let (setup, teardown, reaped, steps) = netns::run_in(&this.host, || -> R<_> {
            let mut built = Vec::new();
            let mut setup = Vec::new();
            let mut teardown = Vec::new();
            let mut steps: Vec<(&'static str, Duration)> = Vec::new();
            let mut failure = None;
            for i in ids {
                let mut laps = Laps::new();
                let t = Instant::now();
                match this.setup(Sw(i), &mut laps) {
                    Ok(b) => built.push((Sw(i), b)),
                    Err(e) => {
                        failure = Some(format!("{} set-up of sandbox {i}: {e}", this.variant.name()));
                        break;
                    }
                }
                setup.push(ms(t.elapsed()));
                steps.extend(laps.steps);
            }
            // Tear down whatever was built, even after a failure.
            // What to watch until the kernel has freed it (looked up before the clock starts).
            let mut watch = Vec::new();
            for (sw, b) in built {
                let handle = NsFileHandle::of_path(&sw.pin(&this.dir));
                let host_index = this.sock.link(LinkRef::Name(&sw.vh())).ok().map(|l| l.index);
                let mut laps = Laps::new();
                let t = Instant::now();
                if let Err(e) = this.teardown(b, &mut laps) {
                    failure.get_or_insert(format!("{} teardown: {e}", this.variant.name()));
                }
                teardown.push(ms(t.elapsed()));
                steps.extend(laps.steps);
                watch.push((t, handle, host_index));
            }
            let reaped = this.wait_reaped(watch);
            match failure {
                Some(f) => Err(f.into()),
                None => Ok((setup, teardown, reaped, steps)),
            }
        })??;
        self.setup_ms.extend(setup);
        self.teardown_ms.extend(teardown);
        self.reaped_ms.extend(reaped);
        for (k, d) in steps {
            self.steps.entry(k).or_default().push(ms(d));
        }
        Ok(())
    }

    /// For each torn-down sandbox (teardown start, namespace handle, host-end index): the time
    /// until the namespace has no reference left and the host end is gone, polled (bounded).
    fn wait_reaped(&self, mut watch: Vec<(Instant, Option<NsFileHandle>, Option<u32>)>) -> Vec<f64> {
        let mut out = Vec::with_capacity(watch.len());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !watch.is_empty() && Instant::now() < deadline {
            watch.retain(|(t, h, idx)| {
                let ns_gone = h.and_then(|h| h.alive()).is_none_or(|alive| !alive);
                let end_gone = idx.is_none_or(|i| self.sock.link(LinkRef::Index(i)).is_err());
                if ns_gone && end_gone {
                    out.push(ms(t.elapsed()));
                }
                !(ns_gone && end_gone)
            });
            std::thread::sleep(Duration::from_micros(200));
        }
        if !watch.is_empty() {
            eprintln!("warning: {} sandboxes of {} not reaped within 60 s", watch.len(), self.variant.name());
        }
        out
    }

    /// Links other than `lo` left in the private host namespace.
    pub(crate) fn leftover_links(&self) -> R<Vec<String>> {
        Ok(self.sock.links()?.into_iter().map(|l| l.name).filter(|n| n != "lo").collect())
    }
}
