//! Random interface names and MACs from the OS's randomness (`getrandom`), for names that must
//! not collide with other processes' (host ends of veths) and MACs that must not collide on a
//! bridge.

/// Fills `buf` from the kernel's CSPRNG. Never fails in practice on Linux ≥ 3.17; if it ever
/// did (e.g. seccomp), falls back to the time and process id, which still avoids collisions
/// between concurrent callers well enough for names that are retried on `EEXIST`.
fn fill(buf: &mut [u8]) {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a valid, writable buffer of `rest.len()` bytes for the call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n > 0 {
            done += n as usize;
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    if done < buf.len() {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
            ^ u128::from(std::process::id()) << 64;
        for (i, b) in buf[done..].iter_mut().enumerate() {
            *b = (seed >> ((i % 16) * 8)) as u8;
        }
    }
}

/// A veth host-end name as CNI's `RandomVethName` makes: `veth` + 8 lowercase hex digits.
pub fn random_veth_name() -> String {
    let mut b = [0u8; 4];
    fill(&mut b);
    format!("veth{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

/// A random locally administered unicast MAC (first octet: bit 1 set, bit 0 clear).
pub fn random_local_mac() -> [u8; 6] {
    let mut m = [0u8; 6];
    fill(&mut m);
    m[0] = (m[0] | 0x02) & 0xfe;
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_macs() {
        let n = random_veth_name();
        assert_eq!(n.len(), 12);
        assert!(n.starts_with("veth") && n[4..].chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert!(crate::validate::ifname(&n).is_ok());
        let names: std::collections::HashSet<String> = (0..64).map(|_| random_veth_name()).collect();
        assert!(names.len() > 60);
        for _ in 0..64 {
            let m = random_local_mac();
            assert_eq!(m[0] & 0x03, 0x02);
            assert!(crate::validate::mac_bytes(&m).is_ok());
        }
    }
}
