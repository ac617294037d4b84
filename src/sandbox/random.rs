//! Random names and MAC addresses from the kernel's randomness (`getrandom(2)`), as CNI's
//! `RandomVethName` and Kata's random MACs do: temporaries that must not collide with what
//! other processes create at the same moment.

/// Fills `buf` from the kernel's CSPRNG. `getrandom` blocks only before the pool is
/// initialised at boot; a short read or EINTR is retried.
fn fill(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes for the whole call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            done += n as usize;
        } else if nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            // getrandom(2) cannot fail on Linux >= 3.17 with a valid buffer; keep a fallback
            // that is still unpredictable enough for temporary names.
            let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let seed = t.as_nanos() ^ ((std::process::id() as u128) << 64);
            for (i, b) in rest.iter_mut().enumerate() {
                *b = (seed >> ((i % 16) * 8)) as u8 ^ i as u8;
            }
            return;
        }
    }
}

/// A random interface name: `veth` followed by 8 lowercase hex digits (12 bytes, within the
/// kernel's 15), like CNI's `RandomVethName`.
pub fn random_veth_name() -> String {
    let mut b = [0u8; 4];
    fill(&mut b);
    format!("veth{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

/// A random unicast, locally administered MAC address (first octet `xxxxxx10`).
pub fn random_local_mac() -> [u8; 6] {
    let mut m = [0u8; 6];
    fill(&mut m);
    m[0] = (m[0] & 0xfe) | 0x02;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn veth_names_are_valid_and_differ() {
        let a = random_veth_name();
        let b = random_veth_name();
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth") && a[4..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(crate::validate::ifname(&a).is_ok());
        assert_ne!(a, b);
    }

    #[test]
    fn macs_are_local_unicast() {
        for _ in 0..64 {
            let m = random_local_mac();
            assert_eq!(m[0] & 0x01, 0, "unicast");
            assert_eq!(m[0] & 0x02, 0x02, "locally administered");
        }
        assert_ne!(random_local_mac(), random_local_mac());
    }
}
