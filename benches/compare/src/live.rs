//! Live sandboxes: fds and memory per sandbox, set-up growth, batch teardown.

use std::time::{Duration, Instant};

use netsandbox::netns;
use netsandbox::sandbox::{CreateOptions, NetnsSandbox, Sandbox};

use crate::ctx::{Built, Ctx};
use crate::ours::{iface_opts, trait_routes};
use crate::report::median;
use crate::sw::{Laps, Sw};
use crate::{R, ms};

pub(crate) fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}

pub(crate) fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Pause before each live pass (see its use).
pub(crate) const LIVE_SETTLE: Duration = Duration::from_secs(10);

pub(crate) struct LiveReport {
    pub(crate) n: usize,
    pub(crate) fds_per: f64,
    pub(crate) rss_kib_per: f64,
    pub(crate) first_ms: f64,
    pub(crate) last_ms: f64,
    /// Teardown of all `n`, per sandbox.
    pub(crate) teardown_ms: f64,
    /// From the start of the teardown until the kernel had freed everything.
    pub(crate) reaped_s: f64,
}

/// Creates `n` live SW sandboxes through the trait, measures, destroys them. `host_ll`: whether
/// the host ends get IPv6 link-local addresses (the kernel default; see
/// `IfaceOptions::host_link_local`). `batch`: tear down with one `destroy_many` instead of
/// `destroy` one by one.
pub(crate) fn live_sandboxes(ctx: &Ctx, n: usize, host_ll: bool, batch: bool) -> R<LiveReport> {
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
        if !NetnsSandbox::wait_all_reaped(Duration::from_secs(600)) {
            eprintln!("warning: the kernel has not reaped the live sandboxes within 600 s");
        }
        let reaped_s = t.elapsed().as_secs_f64();
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
            reaped_s,
        })
    })?
}
