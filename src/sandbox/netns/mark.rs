//! Where netsandbox keeps its bookkeeping in the kernel: alternative interface names.
//!
//! What the kernel cannot tell about a link — that the sandbox made it, or where it came from
//! and how it looked there — is recorded on the link itself, so any process can reopen a
//! sandbox after a restart and undo exactly what was done. The record is an *altname*
//! (`IFLA_ALT_IFNAME`, `ip link property add ... altname`), never the link's alias
//! (`IFLA_IFALIAS`), which belongs to the user and is left untouched. Altnames travel with a
//! link between namespaces and are unique in a namespace; they show in `ip -d link` as
//! `altname nsbx.…`. Three forms, all within the kernel's 127 bytes and free of `/`, `:` and
//! whitespace:
//!
//! - `nsbx.own` on the loopback: the sandbox created this namespace (by
//!   [`NetnsSandbox::create`](super::NetnsSandbox::create) or a pool). A namespace without it
//!   was adopted ([`from_external`](super::NetnsSandbox::from_external)) and its own links are
//!   never deleted by `destroy`.
//! - `nsbx.c.<ifindex>` on a link the sandbox created (a bridge, the sandbox end of a veth).
//! - `nsbx.o.<cookie>.<dev>.<ino>.<mac>.<mtu>.<u|d>.<name>` on a link moved in: the origin
//!   namespace's cookie (never reused), the device and inode of its nsfs file (to find it from
//!   any process), and the link's MAC, MTU, up state and name there (numbers in hex, MTU in
//!   decimal, `-` for "none"). The name comes last because it may itself contain dots.

use crate::netlink::link::ALTNAME_MAX;
use crate::netns::NsInode;
use crate::validate;

/// On the loopback of a namespace the sandbox created.
pub(super) const OWNED: &str = "nsbx.own";
const CREATED_PREFIX: &str = "nsbx.c.";
const ORIGIN_PREFIX: &str = "nsbx.o.";

/// The marker of a link the sandbox created, with index `index` inside.
pub(super) fn created(index: u32) -> String {
    format!("{CREATED_PREFIX}{index}")
}

/// True for a link that carries a "created" marker.
pub(super) fn is_created(altnames: &[String]) -> bool {
    altnames.iter().any(|a| a.starts_with(CREATED_PREFIX))
}

/// Where a moved-in link came from and how it looked there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    /// Cookie of the origin namespace (`SO_NETNS_COOKIE`).
    pub cookie: u64,
    /// Device and inode of the origin's nsfs file.
    pub ns: NsInode,
    /// MAC address there.
    pub mac: Option<[u8; 6]>,
    /// MTU there.
    pub mtu: Option<u32>,
    /// Administratively up there.
    pub up: bool,
    /// Name there.
    pub name: String,
}

impl Origin {
    /// The altname recording this origin.
    pub fn encode(&self) -> String {
        let mac = self.mac.map_or_else(|| "-".to_owned(), |m| m.iter().map(|b| format!("{b:02x}")).collect());
        let mtu = self.mtu.map_or_else(|| "-".to_owned(), |m| m.to_string());
        let up = if self.up { 'u' } else { 'd' };
        let s = format!(
            "{ORIGIN_PREFIX}{:x}.{:x}.{:x}.{mac}.{mtu}.{up}.{}",
            self.cookie, self.ns.dev, self.ns.ino, self.name
        );
        debug_assert!(s.len() <= ALTNAME_MAX);
        s
    }

    /// Parses an altname made by [`encode`](Self::encode); anything else is `None`.
    pub fn decode(altname: &str) -> Option<Origin> {
        let rest = altname.strip_prefix(ORIGIN_PREFIX)?;
        let mut it = rest.splitn(7, '.');
        let cookie = u64::from_str_radix(it.next()?, 16).ok()?;
        let dev = u64::from_str_radix(it.next()?, 16).ok()?;
        let ino = u64::from_str_radix(it.next()?, 16).ok()?;
        let mac = match it.next()? {
            "-" => None,
            m if m.len() == 12 => {
                let mut out = [0u8; 6];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = u8::from_str_radix(m.get(2 * i..2 * i + 2)?, 16).ok()?;
                }
                Some(out)
            }
            _ => return None,
        };
        let mtu = match it.next()? {
            "-" => None,
            m => Some(m.parse().ok()?),
        };
        let up = match it.next()? {
            "u" => true,
            "d" => false,
            _ => return None,
        };
        let name = it.next()?.to_owned();
        validate::ifname(&name).ok()?;
        Some(Origin { cookie, ns: NsInode { dev, ino }, mac, mtu, up, name })
    }

    /// The first origin record among `altnames`, with the altname itself.
    pub fn find(altnames: &[String]) -> Option<(Origin, &str)> {
        altnames.iter().find_map(|a| Origin::decode(a).map(|o| (o, a.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_round_trips_and_fits() {
        let o = Origin {
            cookie: u64::MAX,
            ns: NsInode { dev: u64::MAX, ino: u64::MAX },
            mac: Some([0x02, 0x42, 0xc6, 0x12, 0x00, 0xff]),
            mtu: Some(65535),
            up: true,
            name: "a.b.c.d.e.f.g.h".into(),
        };
        let s = o.encode();
        assert!(s.len() <= ALTNAME_MAX, "{s}");
        crate::netlink::link::check_altname(&s).unwrap();
        assert_eq!(Origin::decode(&s), Some(o.clone()));
        let none = Origin { mac: None, mtu: None, up: false, ..o };
        assert_eq!(Origin::decode(&none.encode()), Some(none));
        for bad in ["nsbx.o.", "nsbx.o.1.2.3.-.-.x.eth0", "nsbx.o.1.2.3.0242.-.u.eth0", "nsbx.o.1.2.3.-.-.u.", "eth0"] {
            assert_eq!(Origin::decode(bad), None, "{bad}");
        }
        assert!(is_created(&[created(7)]));
        assert!(!is_created(&["nsbx.own".into()]));
    }
}
