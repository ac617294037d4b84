//! DEL: best effort and idempotent. The addresses are released and the pair deleted whether or
//! not the namespace still exists, whether or not there is a `prevResult`, however often.

use netsandbox::cni::{CniError, NetConf, Request};
use netsandbox::sandbox::{NetnsSandbox, Sandbox};

use crate::host;
use crate::ipam::Ipam;

pub fn del(req: &Request, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let id = req.container_id()?;
    let ifname = req.ifname()?;
    // A configuration we cannot act on (unknown delegate) is still an error: nothing to do
    // safely. Everything after this is best effort, the first error reported at the end.
    let ipam = Ipam::from_conf(conf, req)?;
    let mut first_error: Option<CniError> = None;

    let mut removed = false;
    if let Some(netns) = &req.netns {
        match host::retire(netns, &conf.name, id, ifname) {
            Ok(true) => removed = true,
            Ok(false) => {}
            Err(e) => {
                log::debug!("fast detach of {ifname} failed ({}); removing it in place", e.msg);
                if let Ok(sb) = NetnsSandbox::attach(netns) {
                    match sb.remove_interface(ifname) {
                        Ok(()) => removed = true,
                        Err(e) if e.is_not_found() => {}
                        Err(e) => {
                            first_error.get_or_insert(e.into());
                        }
                    }
                }
            }
        }
    }
    if !removed {
        // The namespace is gone (or the interface was never made): the host end may survive
        // (a namespace still held elsewhere); find it by its alias.
        match host::host_ends(&conf.name) {
            Ok(ends) => {
                for end in ends.iter().filter(|e| e.container_id == id && e.ifname == ifname) {
                    if let Err(e) = host::delete_link(&end.name) {
                        first_error.get_or_insert(e);
                    }
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if conf.ip_masq
        && let Err(e) = crate::masq::del(&conf.name, id, ifname)
    {
        first_error.get_or_insert(e);
    }
    if let Some(ipam) = &ipam
        && let Err(e) = ipam.del(id, ifname, stdin)
    {
        first_error.get_or_insert(e);
    }
    first_error.map_or(Ok(()), Err)
}
