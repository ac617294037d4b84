//! Raw kernel constants (from `<linux/rtnetlink.h>`, `<linux/neighbour.h>`, `<linux/if_addr.h>`,
//! `<linux/if.h>`, `<linux/if_arp.h>`) that the rest of the crate compares the raw numbers in
//! [`view`](super::view) against.
//!
//! The views keep these values as plain integers so that a value this crate does not know is
//! carried through unchanged instead of being rejected.

// ---- Address families (`ifa_family`, `rtm_family`, `ndm_family`) ----

/// `AF_UNSPEC`.
pub const AF_UNSPEC: u8 = 0;
/// `AF_INET`.
pub const AF_INET: u8 = 2;
/// `AF_BRIDGE` (bridge FDB entries, bridge port links).
pub const AF_BRIDGE: u8 = 7;
/// `AF_INET6`.
pub const AF_INET6: u8 = 10;

// ---- Link flags (`ifi_flags`) and link-layer types ----

/// `IFF_UP`: administratively up.
pub const IFF_UP: u32 = 1 << 0;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = 1 << 3;
/// `IFF_RUNNING`: operationally up (RFC 2863 `OPER_UP`).
pub const IFF_RUNNING: u32 = 1 << 6;
/// `IFF_NOARP`.
pub const IFF_NOARP: u32 = 1 << 7;
/// `IFF_LOWER_UP`: the driver signals carrier.
pub const IFF_LOWER_UP: u32 = 1 << 16;
/// `ARPHRD_ETHER`.
pub const ARPHRD_ETHER: u16 = 1;
/// `ARPHRD_LOOPBACK`.
pub const ARPHRD_LOOPBACK: u16 = 772;
/// `ARPHRD_NONE` (tun devices in L3 mode, wireguard).
pub const ARPHRD_NONE: u16 = 0xFFFE;

// ---- Neighbor states (`ndm_state`, NUD_*) ----

/// `NUD_NONE`.
pub const NUD_NONE: u16 = 0x00;
/// `NUD_INCOMPLETE`.
pub const NUD_INCOMPLETE: u16 = 0x01;
/// `NUD_REACHABLE`.
pub const NUD_REACHABLE: u16 = 0x02;
/// `NUD_STALE`.
pub const NUD_STALE: u16 = 0x04;
/// `NUD_DELAY`.
pub const NUD_DELAY: u16 = 0x08;
/// `NUD_PROBE`.
pub const NUD_PROBE: u16 = 0x10;
/// `NUD_FAILED`.
pub const NUD_FAILED: u16 = 0x20;
/// `NUD_NOARP`.
pub const NUD_NOARP: u16 = 0x40;
/// `NUD_PERMANENT`: a static entry, never aged out.
pub const NUD_PERMANENT: u16 = 0x80;

// ---- Neighbor flags (`ndm_flags`, NTF_*) ----

/// `NTF_USE`.
pub const NTF_USE: u8 = 0x01;
/// `NTF_SELF`: the FDB entry belongs to the device itself (e.g. a VXLAN device's own FDB).
pub const NTF_SELF: u8 = 0x02;
/// `NTF_MASTER`: the FDB entry belongs to the master (bridge) device.
pub const NTF_MASTER: u8 = 0x04;
/// `NTF_PROXY`.
pub const NTF_PROXY: u8 = 0x08;
/// `NTF_EXT_LEARNED`.
pub const NTF_EXT_LEARNED: u8 = 0x10;
/// `NTF_OFFLOADED`.
pub const NTF_OFFLOADED: u8 = 0x20;
/// `NTF_STICKY`.
pub const NTF_STICKY: u8 = 0x40;
/// `NTF_ROUTER`.
pub const NTF_ROUTER: u8 = 0x80;

// ---- Address flags (`ifa_flags`, IFA_FLAGS; IFA_F_*) ----

/// `IFA_F_SECONDARY`.
pub const IFA_F_SECONDARY: u32 = 0x01;
/// `IFA_F_NODAD`: no duplicate address detection; an IPv6 address is usable at once.
pub const IFA_F_NODAD: u32 = 0x02;
/// `IFA_F_OPTIMISTIC`.
pub const IFA_F_OPTIMISTIC: u32 = 0x04;
/// `IFA_F_DADFAILED`.
pub const IFA_F_DADFAILED: u32 = 0x08;
/// `IFA_F_DEPRECATED`.
pub const IFA_F_DEPRECATED: u32 = 0x20;
/// `IFA_F_TENTATIVE`: IPv6 duplicate address detection still running.
pub const IFA_F_TENTATIVE: u32 = 0x40;
/// `IFA_F_PERMANENT`: configured, not autoconfigured.
pub const IFA_F_PERMANENT: u32 = 0x80;
/// `IFA_F_NOPREFIXROUTE`.
pub const IFA_F_NOPREFIXROUTE: u32 = 0x200;

// ---- Routing tables ----

/// `RT_TABLE_UNSPEC`.
pub const RT_TABLE_UNSPEC: u32 = 0;
/// `RT_TABLE_DEFAULT`.
pub const RT_TABLE_DEFAULT: u32 = 253;
/// `RT_TABLE_MAIN`: the table `ip route` shows.
pub const RT_TABLE_MAIN: u32 = 254;
/// `RT_TABLE_LOCAL`: local and broadcast routes the kernel maintains.
pub const RT_TABLE_LOCAL: u32 = 255;

// ---- Route scopes (`rtm_scope`, also `ifa_scope`) ----

/// `RT_SCOPE_UNIVERSE`: a global route (via a gateway).
pub const RT_SCOPE_UNIVERSE: u8 = 0;
/// `RT_SCOPE_SITE`.
pub const RT_SCOPE_SITE: u8 = 200;
/// `RT_SCOPE_LINK`: destination directly on the link.
pub const RT_SCOPE_LINK: u8 = 253;
/// `RT_SCOPE_HOST`: a local address.
pub const RT_SCOPE_HOST: u8 = 254;
/// `RT_SCOPE_NOWHERE`.
pub const RT_SCOPE_NOWHERE: u8 = 255;

// ---- Route protocols (`rtm_protocol`) ----

/// `RTPROT_UNSPEC`.
pub const RTPROT_UNSPEC: u8 = 0;
/// `RTPROT_REDIRECT`.
pub const RTPROT_REDIRECT: u8 = 1;
/// `RTPROT_KERNEL`: installed by the kernel (prefix routes of addresses).
pub const RTPROT_KERNEL: u8 = 2;
/// `RTPROT_BOOT`: the default for routes added by `ip route add`.
pub const RTPROT_BOOT: u8 = 3;
/// `RTPROT_STATIC`: added by an administrator / by this library.
pub const RTPROT_STATIC: u8 = 4;

// ---- Route types (`rtm_type`, RTN_*) ----

/// `RTN_UNSPEC`.
pub const RTN_UNSPEC: u8 = 0;
/// `RTN_UNICAST`: a gateway or direct route.
pub const RTN_UNICAST: u8 = 1;
/// `RTN_LOCAL`: accept locally.
pub const RTN_LOCAL: u8 = 2;
/// `RTN_BROADCAST`.
pub const RTN_BROADCAST: u8 = 3;
/// `RTN_ANYCAST`.
pub const RTN_ANYCAST: u8 = 4;
/// `RTN_MULTICAST`.
pub const RTN_MULTICAST: u8 = 5;
/// `RTN_BLACKHOLE`: drop silently.
pub const RTN_BLACKHOLE: u8 = 6;
/// `RTN_UNREACHABLE`: destination unreachable.
pub const RTN_UNREACHABLE: u8 = 7;
/// `RTN_PROHIBIT`: administratively prohibited.
pub const RTN_PROHIBIT: u8 = 8;
/// `RTN_THROW`: not in this table.
pub const RTN_THROW: u8 = 9;
