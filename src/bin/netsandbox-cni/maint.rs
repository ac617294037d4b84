//! STATUS and GC (CNI 1.1).

use std::collections::HashSet;

use netsandbox::cni::ipam::Delegate;
use netsandbox::cni::{CniError, Command, ErrorCode, NetConf, Request};

use crate::host;
use crate::ipam::Ipam;

/// Whether the delegate speaks 1.1.0 (older ones know neither STATUS nor GC).
fn speaks_1_1(d: &Delegate, stdin: &[u8]) -> bool {
    d.supported_versions(stdin).is_ok_and(|v| v.iter().any(|s| s == "1.1.0"))
}

/// STATUS: ready when IPAM is reachable and has addresses left.
pub fn status(req: &Request, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    crate::unsupported_fields(conf)?;
    let ipam = Ipam::from_conf(conf, req).map_err(|e| CniError::new(ErrorCode::NotAvailable, e.msg))?;
    match ipam {
        None => Err(CniError::new(ErrorCode::NotAvailable, "no ipam configured: ADD cannot assign addresses")),
        Some(Ipam::Builtin(b)) => match b.has_free() {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err(CniError::new(ErrorCode::NotAvailable, format!("no addresses left on network {}", conf.name)))
            }
            Err(e) => Err(CniError::new(ErrorCode::NotAvailable, e.msg)),
        },
        Some(Ipam::Delegate(d)) if speaks_1_1(&d, stdin) => d.call(Command::Status, stdin, &[]),
        Some(Ipam::Delegate(_)) => Ok(()),
    }
}

/// GC: releases the addresses and host ends of every attachment on this network that is not
/// in `cni.dev/valid-attachments`.
pub fn gc(req: &Request, conf: &NetConf, stdin: &[u8]) -> Result<(), CniError> {
    let valid: HashSet<(String, String)> =
        conf.valid_attachments.iter().flatten().map(|a| (a.container_id.clone(), a.ifname.clone())).collect();
    let ipam = Ipam::from_conf(conf, req)?;
    let mut first_error: Option<CniError> = None;
    let mut stale: HashSet<(String, String)> = HashSet::new();
    for end in host::host_ends(&conf.name)? {
        if valid.contains(&(end.container_id.clone(), end.ifname.clone())) {
            continue;
        }
        if let Err(e) = host::delete_link(&end.name) {
            first_error.get_or_insert(e);
        }
        stale.insert((end.container_id, end.ifname));
    }
    // Masquerade entries go whatever `ipMasq` says now (it may have been on when they were made).
    let valid_ids = valid.iter().map(|(id, ifname)| (id.as_str(), ifname.as_str()));
    if let Err(e) = crate::masq::gc(&conf.name, valid_ids) {
        if conf.ip_masq {
            first_error.get_or_insert(e);
        } else {
            log::debug!("masquerade GC skipped: {}", e.msg);
        }
    }
    match &ipam {
        Some(Ipam::Builtin(b)) => {
            let store = b.store()?;
            for a in store.allocations()? {
                if !valid.contains(&(a.container_id.clone(), a.ifname.clone()))
                    && let Err(e) = store.release_ip(a.ip)
                {
                    first_error.get_or_insert(e);
                }
            }
        }
        Some(Ipam::Delegate(d)) => {
            if speaks_1_1(d, stdin) {
                if let Err(e) = d.call(Command::Gc, stdin, &[]) {
                    first_error.get_or_insert(e);
                }
            } else {
                // An older delegate knows no GC (nor, often, version 1.1.0): release what we
                // know to be stale one by one, with DELs in the newest version it speaks.
                let input = older_input(d, conf, stdin);
                for (id, ifname) in &stale {
                    if let Err(e) = ipam.as_ref().map_or(Ok(()), |i| i.del(id, ifname, &input)) {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        None => {}
    }
    first_error.map_or(Ok(()), Err)
}

/// The configuration for a DEL to a delegate that predates 1.1.0: its newest version, without
/// the GC-only key.
fn older_input(d: &Delegate, conf: &NetConf, stdin: &[u8]) -> Vec<u8> {
    let newest = d.supported_versions(stdin).ok().and_then(|v| v.last().cloned());
    let mut raw = conf.raw.clone();
    if let Some(o) = raw.as_object_mut() {
        o.remove("cni.dev/valid-attachments");
        if let Some(v) = newest {
            o.insert("cniVersion".into(), serde_json::Value::String(v));
        }
    }
    serde_json::to_vec(&raw).unwrap_or_else(|_| stdin.to_vec())
}
