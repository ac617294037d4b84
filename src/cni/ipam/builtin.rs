//! The built-in allocator (`"ipam": {"type": "netsandbox"}`): host-local's configuration and
//! allocation order, in process, on host-local's store.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use serde_json::Value;

use super::range::{Range, RangeConf, from_u128, to_u128};
use super::store::{DEFAULT_DATA_DIR, Store};
use crate::cni::error::{CniError, ErrorCode};
use crate::cni::result::{CniResult, Dns, IpConfig, Route};

/// Default wait for the store's lock.
const DEFAULT_LOCK_TIMEOUT_MS: u64 = 30_000;

/// The IPAM `type` that selects the built-in allocator.
pub const BUILTIN_TYPE: &str = "netsandbox";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    subnet: Option<IpNet>,
    range_start: Option<IpAddr>,
    range_end: Option<IpAddr>,
    gateway: Option<IpAddr>,
    #[serde(default)]
    ranges: Vec<Vec<RangeConf>>,
    #[serde(default)]
    routes: Vec<WireRoute>,
    data_dir: Option<PathBuf>,
    /// netsandbox's own key (host-local ignores unknown keys): how long to wait for the
    /// store's lock before answering code 11.
    lock_timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
struct WireRoute {
    dst: IpNet,
    gw: Option<IpAddr>,
}

/// A checked built-in IPAM configuration (host-local's keys: `subnet`/`rangeStart`/
/// `rangeEnd`/`gateway` or `ranges` (a list of range sets), `routes`, `dataDir`).
///
/// Guarantees: at least one range set; ranges canonical; no two ranges overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builtin {
    /// The network name (the store's directory under `data_dir`).
    pub network: String,
    /// Range sets; one address is allocated from each.
    pub range_sets: Vec<Vec<Range>>,
    /// Routes returned with the addresses.
    pub routes: Vec<Route>,
    /// Where the store lives (default `/var/lib/cni/networks`).
    pub data_dir: PathBuf,
    /// How long to wait for the store's lock (`lockTimeoutMs`, default 30 s).
    pub lock_timeout: Duration,
}

fn bad(msg: impl Into<String>) -> CniError {
    CniError::new(ErrorCode::InvalidNetworkConfig, format!("ipam: {}", msg.into()))
}

impl Builtin {
    /// Parses the `ipam` section of network `network` (a checked name).
    pub fn from_conf(network: &str, ipam: &Value) -> Result<Builtin, CniError> {
        let w: Wire =
            serde_json::from_value(ipam.clone()).map_err(|e| CniError::new(ErrorCode::Decode, format!("ipam: {e}")))?;
        let mut sets = w.ranges;
        if let Some(subnet) = w.subnet {
            sets.insert(
                0,
                vec![RangeConf { subnet, range_start: w.range_start, range_end: w.range_end, gateway: w.gateway }],
            );
        } else if w.range_start.is_some() || w.range_end.is_some() || w.gateway.is_some() {
            return Err(bad("rangeStart, rangeEnd and gateway need a subnet"));
        }
        if sets.is_empty() {
            return Err(bad("no subnet or ranges given"));
        }
        let mut range_sets = Vec::new();
        for set in &sets {
            if set.is_empty() {
                return Err(bad("empty range set"));
            }
            let ranges: Vec<Range> = set.iter().map(RangeConf::canonical).collect::<Result<_, _>>()?;
            let fam = ranges[0].start.is_ipv4();
            if ranges.iter().any(|r| r.start.is_ipv4() != fam) {
                return Err(bad("a range set mixes IPv4 and IPv6"));
            }
            range_sets.push(ranges);
        }
        let all: Vec<&Range> = range_sets.iter().flatten().collect();
        for (i, a) in all.iter().enumerate() {
            if let Some(b) = all[i + 1..].iter().find(|b| a.overlaps(b)) {
                return Err(bad(format!("ranges {} and {} overlap", a.subnet, b.subnet)));
            }
        }
        Ok(Builtin {
            network: network.to_owned(),
            range_sets,
            routes: w.routes.into_iter().map(|r| Route::new(r.dst, r.gw)).collect(),
            data_dir: w.data_dir.unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            lock_timeout: Duration::from_millis(w.lock_timeout_ms.unwrap_or(DEFAULT_LOCK_TIMEOUT_MS)),
        })
    }

    /// Opens and locks this network's store.
    pub fn store(&self) -> Result<Store, CniError> {
        Store::lock(&self.data_dir, &self.network, self.lock_timeout)
    }

    /// Allocates one address per range set for (`id`, `ifname`) — `requested` addresses first,
    /// each in the range set that contains it — in host-local's order (round robin from
    /// `last_reserved_ip.N`, skipping the gateway). A second allocation for the same pair is
    /// refused, as host-local does. On failure nothing stays reserved.
    pub fn allocate(&self, id: &str, ifname: &str, requested: &[IpAddr]) -> Result<CniResult, CniError> {
        let store = self.store()?;
        let mut wanted: Vec<Option<IpAddr>> = vec![None; self.range_sets.len()];
        for ip in requested {
            let set = self
                .range_sets
                .iter()
                .position(|s| s.iter().any(|r| r.contains(*ip)))
                .ok_or_else(|| bad(format!("requested address {ip} is in no range")))?;
            if wanted[set].replace(*ip).is_some() {
                return Err(bad(format!("two requested addresses for one range set ({ip})")));
            }
        }
        let held = store.by_id(id, ifname)?;
        let mut result = CniResult { routes: self.routes.clone(), dns: Dns::default(), ..Default::default() };
        let mut reserved = Vec::new();
        let outcome = (|| {
            for (idx, set) in self.range_sets.iter().enumerate() {
                if let Some(ip) = held.iter().find(|ip| set.iter().any(|r| r.contains(**ip))) {
                    return Err(CniError::new(
                        ErrorCode::Plugin(101),
                        format!("{ip} has been allocated to {id}, duplicate allocation is not allowed"),
                    ));
                }
                let (ip, range) = match wanted[idx] {
                    Some(ip) => {
                        let Some(range) = set.iter().find(|r| r.contains(ip)) else { unreachable_range()? };
                        if ip == range.gateway {
                            return Err(bad(format!("requested address {ip} is the subnet's gateway")));
                        }
                        if !store.reserve(id, ifname, ip, idx)? {
                            return Err(CniError::new(
                                ErrorCode::Plugin(102),
                                format!("requested address {ip} is not available in range set {idx}"),
                            ));
                        }
                        (ip, range)
                    }
                    None => self.next_free(&store, idx, id, ifname)?,
                };
                reserved.push(ip);
                result.ips.push(IpConfig {
                    address: IpNet::new(ip, range.subnet.prefix_len()).map_err(|e| bad(e.to_string()))?,
                    gateway: Some(range.gateway),
                    interface: None,
                });
            }
            Ok(())
        })();
        match outcome {
            Ok(()) => Ok(result),
            Err(e) => {
                for ip in reserved {
                    let _ = store.release_ip(ip);
                }
                Err(e)
            }
        }
    }

    /// Round robin over range set `idx` from the address after the last one reserved.
    fn next_free<'a>(
        &'a self,
        store: &Store,
        idx: usize,
        id: &str,
        ifname: &str,
    ) -> Result<(IpAddr, &'a Range), CniError> {
        let set = &self.range_sets[idx];
        let last = store.last_reserved(idx).and_then(|ip| set.iter().position(|r| r.contains(ip)).map(|i| (i, ip)));
        // Candidates in order, wrapping across the set's ranges; each address is tried once.
        let (mut ri, mut cur) = match last {
            Some((i, ip)) => (i, Some(to_u128(ip))),
            None => (0, None),
        };
        let total: u128 = set.iter().map(|r| to_u128(r.end) - to_u128(r.start) + 1).sum();
        let mut steps: u128 = 0;
        while steps < total {
            steps += 1;
            let next = match cur {
                None => to_u128(set[ri].start),
                Some(c) if c >= to_u128(set[ri].end) => {
                    ri = (ri + 1) % set.len();
                    to_u128(set[ri].start)
                }
                Some(c) => c + 1,
            };
            cur = Some(next);
            let r = &set[ri];
            let ip = from_u128(next, r.start);
            if ip != r.gateway && store.reserve(id, ifname, ip, idx)? {
                return Ok((ip, r));
            }
        }
        Err(CniError::new(ErrorCode::Plugin(103), format!("no IP addresses available in range set {idx}")))
    }

    /// Releases what (`id`, `ifname`) holds; nothing held is not an error.
    pub fn release(&self, id: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
        self.store()?.release(id, ifname)
    }

    /// Whether every range set still has a free address (for STATUS).
    pub fn has_free(&self) -> Result<bool, CniError> {
        let store = self.store()?;
        let taken = store.allocations()?.len() as u128;
        for set in &self.range_sets {
            // At most `taken` addresses are reserved, so `taken + 2` candidates (one may be the
            // gateway) either find a free one or exhaust the set.
            let mut found = false;
            'ranges: for r in set {
                let (s, e) = (to_u128(r.start), to_u128(r.end));
                let mut n = s;
                let mut tried = 0u128;
                while n <= e && tried <= taken + 1 {
                    let ip = from_u128(n, r.start);
                    if ip != r.gateway && !store.is_reserved(ip) {
                        found = true;
                        break 'ranges;
                    }
                    n += 1;
                    tried += 1;
                }
            }
            if !found {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn unreachable_range<T>() -> Result<T, CniError> {
    Err(bad("requested address is in no range"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A data dir removed on drop, also when an assertion fails.
    struct Tmp(PathBuf);

    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl std::ops::Deref for Tmp {
        type Target = std::path::Path;
        fn deref(&self) -> &std::path::Path {
            &self.0
        }
    }

    fn tmp(tag: &str) -> Tmp {
        let p = std::env::temp_dir().join(format!("nsbx-ipam-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Tmp(p)
    }

    fn conf(dir: &std::path::Path, extra: Value) -> Builtin {
        let mut v = json!({"type": "netsandbox", "dataDir": dir, "subnet": "198.18.0.0/29"});
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        Builtin::from_conf("net1", &v).unwrap()
    }

    #[test]
    fn allocates_round_robin_in_host_local_format() {
        let dir = tmp("rr");
        let b = conf(&dir, json!({}));
        let a = b.allocate("c1", "eth0", &[]).unwrap();
        assert_eq!(a.ips[0].address.to_string(), "198.18.0.2/29");
        assert_eq!(a.ips[0].gateway.unwrap().to_string(), "198.18.0.1");
        let content = std::fs::read_to_string(dir.join("net1/198.18.0.2")).unwrap();
        assert_eq!(content, "c1\r\neth0");
        assert_eq!(std::fs::read_to_string(dir.join("net1/last_reserved_ip.0")).unwrap(), "198.18.0.2");
        assert!(dir.join("net1/lock").exists());
        // Duplicate refused, nothing changed.
        assert!(b.allocate("c1", "eth0", &[]).is_err());
        let ips: Vec<String> = (2..=5)
            .map(|i| b.allocate(&format!("c{i}"), "eth0", &[]).unwrap().ips[0].address.addr().to_string())
            .collect();
        assert_eq!(ips, ["198.18.0.3", "198.18.0.4", "198.18.0.5", "198.18.0.6"]);
        // /29: .1 is the gateway, .7 the broadcast: .2-.6 only.
        assert_eq!(b.allocate("c6", "eth0", &[]).unwrap_err().code, ErrorCode::Plugin(103));
        assert!(!b.has_free().unwrap());
        assert_eq!(b.release("c2", "eth0").unwrap().len(), 1);
        assert!(b.has_free().unwrap());
        // Round robin continues after the last reserved, wrapping to the freed .3.
        let again = b.allocate("c8", "eth0", &[]).unwrap();
        assert_eq!(again.ips[0].address.addr().to_string(), "198.18.0.3");
        assert!(b.release("nobody", "eth0").unwrap().is_empty());
    }

    #[test]
    fn dual_stack_and_requested() {
        let dir = tmp("ds");
        let b = conf(&dir, json!({"ranges": [[{"subnet": "2001:db8::/64"}]], "routes": [{"dst": "0.0.0.0/0"}]}));
        let r = b.allocate("c1", "eth0", &["2001:db8::50".parse().unwrap()]).unwrap();
        assert_eq!(r.ips.len(), 2);
        assert_eq!(r.ips[1].address.to_string(), "2001:db8::50/64");
        assert!(dir.join("net1/2001:db8::50").exists());
        assert!(dir.join("net1/last_reserved_ip.1").exists());
        assert_eq!(r.routes.len(), 1);
        // A requested address taken: error, and the v4 reservation is rolled back.
        let before = b.store().unwrap().allocations().unwrap().len();
        assert!(b.allocate("c2", "eth0", &["2001:db8::50".parse().unwrap()]).is_err());
        assert_eq!(b.store().unwrap().allocations().unwrap().len(), before);
        assert!(b.allocate("c2", "eth0", &["203.0.113.1".parse().unwrap()]).is_err());
    }

    /// The index follows changes made behind its back (host-local's files, an operator's
    /// removals) and host-local's way of releasing (every file holding the id and ifname).
    #[test]
    fn index_follows_changes_behind_its_back() {
        let dir = tmp("idx");
        let b = conf(&dir, json!({}));
        b.allocate("c1", "eth0", &[]).unwrap();
        let net = dir.join("net1");
        assert!(net.join("netsandbox-index").is_file());
        // host-local writes an allocation: the stamp moves, the index is rebuilt and finds it.
        std::fs::write(net.join("198.18.0.5"), "hl\r\neth0").unwrap();
        assert_eq!(b.allocate("hl", "eth0", &[]).unwrap_err().code, ErrorCode::Plugin(101));
        assert_eq!(b.store().unwrap().by_id("hl", "eth0").unwrap(), ["198.18.0.5".parse::<IpAddr>().unwrap()]);
        // host-local's DEL: removes every file under the store holding "c1\r\neth0".
        for e in walk(&net) {
            if std::fs::read_to_string(&e).unwrap_or_default() == "c1\r\neth0" {
                std::fs::remove_file(&e).unwrap();
            }
        }
        assert!(b.store().unwrap().by_id("c1", "eth0").unwrap().is_empty());
        assert_eq!(b.allocate("c1", "eth0", &[]).unwrap().ips.len(), 1);
        // Released through the index: the allocation file and its entry go.
        assert_eq!(b.release("hl", "eth0").unwrap(), ["198.18.0.5".parse::<IpAddr>().unwrap()]);
        assert!(!net.join("198.18.0.5").exists());
        assert!(walk(&net).iter().all(|p| std::fs::read_to_string(p).unwrap_or_default() != "hl\r\neth0"));
        // An operator removes a file by hand: no stale duplicate.
        let held = b.store().unwrap().by_id("c1", "eth0").unwrap();
        std::fs::remove_file(net.join(held[0].to_string())).unwrap();
        assert_eq!(b.allocate("c1", "eth0", &[]).unwrap().ips.len(), 1);
    }

    /// The index is one file: ADD appends a line, DEL rewrites it without the line; small
    /// files are rewritten in place and cut to their new length.
    #[test]
    fn index_is_one_file_and_rewrites_are_exact() {
        let dir = tmp("idx1");
        let b = conf(&dir, json!({"subnet": "198.18.0.0/24"}));
        let net = dir.join("net1");
        let lines = || -> Vec<String> {
            let s = std::fs::read_to_string(net.join("netsandbox-index")).unwrap();
            let mut l = s.lines();
            assert_eq!(l.next().unwrap().len(), 63, "{s:?}");
            l.map(str::to_owned).collect()
        };
        b.allocate("c1", "eth0", &[]).unwrap();
        b.allocate("c2", "eth1", &[]).unwrap();
        assert_eq!(lines(), ["198.18.0.2 c1 eth0", "198.18.0.3 c2 eth1"]);
        assert_eq!(b.release("c1", "eth0").unwrap(), ["198.18.0.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(lines(), ["198.18.0.3 c2 eth1"]);
        // A longer old content is cut: no stale bytes after the new address.
        std::fs::write(net.join("last_reserved_ip.0"), "198.18.0.9      \n").unwrap();
        let r = b.allocate("c3", "eth0", &[]).unwrap();
        assert_eq!(r.ips[0].address.addr().to_string(), "198.18.0.10");
        assert_eq!(std::fs::read_to_string(net.join("last_reserved_ip.0")).unwrap(), "198.18.0.10");
        assert_eq!(lines(), ["198.18.0.3 c2 eth1", "198.18.0.10 c3 eth0"]);
    }

    fn walk(d: &std::path::Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            } else {
                out.push(e.path());
            }
        }
        out
    }

    #[test]
    fn held_lock_is_try_again_later() {
        let dir = tmp("lock");
        let b = conf(&dir, json!({"lockTimeoutMs": 20}));
        let held = b.store().unwrap();
        assert_eq!(b.allocate("c1", "eth0", &[]).unwrap_err().code, ErrorCode::TryAgainLater);
        drop(held);
        assert!(b.allocate("c1", "eth0", &[]).is_ok());
    }

    #[test]
    fn bad_configs() {
        let bad = |v: Value| Builtin::from_conf("n", &v).unwrap_err().code;
        assert_eq!(bad(json!({"type": "netsandbox"})), ErrorCode::InvalidNetworkConfig);
        assert_eq!(bad(json!({"subnet": "nonsense"})), ErrorCode::Decode);
        assert_eq!(
            bad(json!({"subnet": "198.18.0.0/24", "ranges": [[{"subnet": "198.18.0.0/25"}]]})),
            ErrorCode::InvalidNetworkConfig
        );
        assert_eq!(
            bad(json!({"ranges": [[{"subnet": "198.18.0.0/24"}, {"subnet": "2001:db8::/64"}]]})),
            ErrorCode::InvalidNetworkConfig
        );
        assert_eq!(bad(json!({"ranges": [[]]})), ErrorCode::InvalidNetworkConfig);
        assert_eq!(bad(json!({"gateway": "198.18.0.1"})), ErrorCode::InvalidNetworkConfig);
    }
}
