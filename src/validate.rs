//! Checks on user input, done before anything reaches the kernel.
//!
//! Every function here is pure, never panics, and returns a typed error that names the bad input.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};

/// Longest interface name the kernel accepts (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// Why `name` cannot be a single file name (one path component, no whitespace) that we create:
/// empty, `.`/`..`, containing `/`, NUL or whitespace. Shared by interface names, sandbox ids
/// and namespace names, which the kernel or the filesystem would otherwise misread.
pub fn file_name(name: &str) -> std::result::Result<(), &'static str> {
    if name.is_empty() {
        Err("empty")
    } else if name == "." || name == ".." {
        Err("'.' and '..' are reserved")
    } else if name.contains('/') {
        Err("contains '/'")
    } else if name.contains('\0') {
        Err("contains NUL")
    } else if name.chars().any(char::is_whitespace) {
        Err("contains whitespace")
    } else {
        Ok(())
    }
}

/// Checks an interface name the way the kernel's `dev_valid_name` does.
pub fn ifname(name: &str) -> Result<()> {
    let checked = if name.len() > IFNAME_MAX {
        Err("longer than 15 bytes")
    } else if name.contains(':') {
        Err("contains ':'")
    } else {
        file_name(name)
    };
    checked.map_err(|reason| Error::InvalidName { name: name.to_owned(), reason })
}

/// Checks an interface-name prefix (what `add_interface` appends an index to).
pub fn ifname_prefix(prefix: &str) -> Result<()> {
    // Leave room for at least a 2-digit index.
    ifname(prefix)?;
    if prefix.len() > IFNAME_MAX - 2 {
        return Err(Error::InvalidName { name: prefix.to_owned(), reason: "prefix longer than 13 bytes" });
    }
    if prefix.ends_with(|c: char| c.is_ascii_digit()) {
        return Err(Error::InvalidName { name: prefix.to_owned(), reason: "prefix ends with a digit" });
    }
    Ok(())
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff` (also accepts `-` as separator).
pub fn parse_mac(input: &str) -> Result<[u8; 6]> {
    let bad = |reason| Error::InvalidMac { input: input.to_owned(), reason };
    let mut out = [0u8; 6];
    let mut n = 0;
    for part in input.split([':', '-']) {
        if n == 6 {
            return Err(bad("more than 6 bytes"));
        }
        if part.len() != 2 {
            return Err(bad("each byte must be two hex digits"));
        }
        out[n] = u8::from_str_radix(part, 16).map_err(|_| bad("not hexadecimal"))?;
        n += 1;
    }
    if n != 6 {
        return Err(bad("fewer than 6 bytes"));
    }
    Ok(out)
}

/// Checks a MAC given as bytes: 6 bytes, not multicast, not all zero.
pub fn mac_bytes(mac: &[u8]) -> Result<[u8; 6]> {
    let text = format_mac(mac);
    let arr: [u8; 6] =
        mac.try_into().map_err(|_| Error::InvalidMac { input: text.clone(), reason: "length is not 6 bytes" })?;
    if arr == [0; 6] {
        return Err(Error::InvalidMac { input: text, reason: "all zero" });
    }
    if arr[0] & 1 == 1 {
        return Err(Error::InvalidMac { input: text, reason: "multicast bit set" });
    }
    Ok(arr)
}

/// Formats MAC bytes as lowercase `aa:bb:...`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// Parses `addr/prefix` with the prefix in range for the family.
pub fn parse_cidr(input: &str) -> Result<IpNet> {
    let bad = |reason: String| Error::InvalidAddress { input: input.to_owned(), reason };
    let (addr, prefix) = input.split_once('/').ok_or_else(|| bad("missing '/prefix'".into()))?;
    let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address".into()))?;
    let prefix: u8 = prefix.parse().map_err(|_| bad("prefix is not a number".into()))?;
    IpNet::new(addr, prefix).map_err(|_| bad(format!("prefix {prefix} out of range")))
}

/// Parses a bare IP address.
pub fn parse_ip(input: &str) -> Result<IpAddr> {
    input.parse().map_err(|_| Error::InvalidAddress { input: input.to_owned(), reason: "not an IP address".into() })
}

/// Rejects addresses that can never be assigned to an interface as a host address.
pub fn host_cidr(net: &IpNet) -> Result<()> {
    let a = net.addr();
    let reason = if a.is_unspecified() {
        "unspecified address"
    } else if a.is_multicast() {
        "multicast address"
    } else if matches!(a, IpAddr::V4(v4) if v4.is_broadcast()) {
        "broadcast address"
    } else {
        return Ok(());
    };
    Err(Error::InvalidAddress { input: net.to_string(), reason: reason.into() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifnames() {
        assert!(ifname("eth0").is_ok());
        assert!(ifname("a23456789012345").is_ok());
        for bad in ["", "a234567890123456", ".", "..", "a/b", "a b", "a\0b", "a\tb", "a:b"] {
            assert!(matches!(ifname(bad), Err(Error::InvalidName { .. })), "{bad:?}");
        }
        assert!(ifname_prefix("eth").is_ok());
        assert!(ifname_prefix("eth1").is_err());
        assert!(ifname_prefix("abcdefghijklmn").is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:42:c6:12:00:01").unwrap(), [2, 0x42, 0xc6, 0x12, 0, 1]);
        assert_eq!(parse_mac("02-42-C6-12-00-01").unwrap(), [2, 0x42, 0xc6, 0x12, 0, 1]);
        for bad in ["", "02:42", "02:42:c6:12:00:01:02", "0g:42:c6:12:00:01", "2:42:c6:12:00:01"] {
            assert!(matches!(parse_mac(bad), Err(Error::InvalidMac { .. })), "{bad:?}");
        }
        assert!(mac_bytes(&[1, 0, 0, 0, 0, 0]).is_err());
        assert!(mac_bytes(&[0; 6]).is_err());
        assert!(mac_bytes(&[2, 0, 0, 0, 0]).is_err());
        assert_eq!(format_mac(&[2, 0x42, 0xc6, 0x12, 0, 1]), "02:42:c6:12:00:01");
    }

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("198.18.0.1/16").unwrap().prefix_len(), 16);
        assert_eq!(parse_cidr("2001:db8::1/64").unwrap().prefix_len(), 64);
        for bad in ["198.18.0.1", "198.18.0.1/33", "2001:db8::1/129", "x/24", "198.18.0.1/-1", "198.18.0.1/a"] {
            assert!(matches!(parse_cidr(bad), Err(Error::InvalidAddress { .. })), "{bad:?}");
        }
        assert!(host_cidr(&parse_cidr("0.0.0.0/8").unwrap()).is_err());
        assert!(host_cidr(&parse_cidr("224.0.0.1/8").unwrap()).is_err());
        assert!(host_cidr(&parse_cidr("198.18.0.1/16").unwrap()).is_ok());
    }
}
