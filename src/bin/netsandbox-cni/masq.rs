//! `ipMasq`: masquerading of traffic from an attachment's subnets to outside them, as the
//! reference bridge plugin does, in netsandbox's own nf_tables table (`inet netsandbox-masq`)
//! of the namespace the plugin runs in (the host's). One entry per address of the attachment,
//! each added in one transaction; the entry ids name the attachment, so DEL, CHECK and GC find
//! them in the kernel alone.

use ipnet::IpNet;
use netsandbox::cni::{CniError, CniResult, ErrorCode};
use netsandbox::sandbox::lb::{add_masquerade, list_masquerade, remove_masquerade};

/// The longest id part kept verbatim (the whole id must stay within the API's 200 bytes).
const PART_MAX: usize = 90;

fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= PART_MAX
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// FNV-1a: a stable name for what cannot appear verbatim in an id.
fn fnv(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("h{h:016x}")
}

/// `<network>:` — the prefix of every entry of one network.
fn network_prefix(network: &str) -> String {
    if plain(network) { format!("{network}:") } else { format!("{}:", fnv(&[network])) }
}

/// `<network>:<container id>:<ifname>:` — the prefix of one attachment's entries (`:` is in
/// none of the three parts: the spec's name grammar and the kernel's interface names exclude
/// it), hashed where a part holds other characters or is too long.
fn attachment_prefix(network: &str, id: &str, ifname: &str) -> String {
    let att = if plain(id) && plain(ifname) { format!("{id}:{ifname}") } else { fnv(&[id, ifname]) };
    format!("{}{att}:", network_prefix(network))
}

fn nft_error(what: &str, e: netsandbox::Error) -> CniError {
    CniError::new(ErrorCode::Plugin(111), format!("{what}: {e}"))
}

/// ADD: one entry per address of `result` (its subnet, as the bridge plugin masquerades).
/// An entry left by an earlier attempt of the same attachment is replaced.
pub fn add(network: &str, id: &str, ifname: &str, result: &CniResult) -> Result<(), CniError> {
    let prefix = attachment_prefix(network, id, ifname);
    for (i, ip) in result.ips.iter().enumerate() {
        let entry = format!("{prefix}{i}");
        let subnet = ip.address.trunc();
        match add_masquerade(None, &entry, subnet) {
            Err(e) if e.is_already_exists() => {
                let _ = remove_masquerade(None, &entry);
                add_masquerade(None, &entry, subnet).map_err(|e| nft_error("adding masquerade", e))?;
            }
            r => r.map_err(|e| nft_error("adding masquerade", e))?,
        }
    }
    Ok(())
}

/// DEL: removes the attachment's entries; none is fine.
pub fn del(network: &str, id: &str, ifname: &str) -> Result<(), CniError> {
    let prefix = attachment_prefix(network, id, ifname);
    remove_where(|e| e.starts_with(&prefix))
}

/// GC: removes this network's entries whose attachment is not in `valid`.
pub fn gc<'a>(network: &str, valid: impl Iterator<Item = (&'a str, &'a str)>) -> Result<(), CniError> {
    let keep: Vec<String> = valid.map(|(id, ifname)| attachment_prefix(network, id, ifname)).collect();
    let net = network_prefix(network);
    remove_where(|e| e.starts_with(&net) && !keep.iter().any(|k| e.starts_with(k.as_str())))
}

fn remove_where(pred: impl Fn(&str) -> bool) -> Result<(), CniError> {
    let entries = list_masquerade(None).map_err(|e| nft_error("listing masquerade entries", e))?;
    let mut first = None;
    for (entry, _) in entries.iter().filter(|(e, _)| pred(e)) {
        match remove_masquerade(None, entry) {
            Err(e) if !e.is_not_found() => {
                first.get_or_insert(nft_error("removing masquerade", e));
            }
            _ => {}
        }
    }
    first.map_or(Ok(()), Err)
}

/// CHECK: every address of `prev` on interface `index` has its masquerade entry.
pub fn check(network: &str, id: &str, ifname: &str, subnets: &[IpNet]) -> Result<(), CniError> {
    let prefix = attachment_prefix(network, id, ifname);
    let entries = list_masquerade(None).map_err(|e| nft_error("listing masquerade entries", e))?;
    for s in subnets {
        let s = s.trunc();
        if !entries.iter().any(|(e, net)| e.starts_with(&prefix) && *net == s) {
            return Err(CniError::new(
                ErrorCode::Plugin(110),
                format!("no masquerade entry for {s} of {id}/{ifname} in table inet netsandbox-masq"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_or_hashed_and_within_bounds() {
        assert_eq!(attachment_prefix("net", "c1", "eth0"), "net:c1:eth0:");
        let odd = attachment_prefix("net", "c1", "eth@0");
        assert!(odd.starts_with("net:h") && odd.len() == "net:".len() + 17 + 1, "{odd}");
        let long = "x".repeat(150);
        let p = attachment_prefix(&long, &long, "eth0");
        assert!(p.len() < 60 && p.starts_with('h'), "{p}");
        assert_ne!(attachment_prefix("n", "a", "b"), attachment_prefix("n", "a", "c"));
    }
}
