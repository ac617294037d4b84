//! Raw kernel constants (from `<linux/rtnetlink.h>`, `<linux/neighbour.h>`, `<linux/if_addr.h>`,
//! `<linux/if.h>`, `<linux/if_arp.h>`) that the rest of the crate compares the raw numbers in
//! [`view`](super::view) against.
//!
//! The views keep these values as plain integers so that a value this crate does not know is
//! carried through unchanged instead of being rejected.
//!
//! Every value comes from `libc`, typed here as the message field it is compared with (libc
//! types many of them `c_int` or `c_uchar`); only the few libc lacks are written out.

// ---- Address families (`ifa_family`, `rtm_family`, `ndm_family`) ----

/// `AF_UNSPEC`.
pub const AF_UNSPEC: u8 = libc::AF_UNSPEC as u8;
/// `AF_INET`.
pub const AF_INET: u8 = libc::AF_INET as u8;
/// `AF_BRIDGE` (bridge FDB entries, bridge port links).
pub const AF_BRIDGE: u8 = libc::AF_BRIDGE as u8;
/// `AF_INET6`.
pub const AF_INET6: u8 = libc::AF_INET6 as u8;

// ---- Link flags (`ifi_flags`) and link-layer types ----

/// `IFF_UP`: administratively up.
pub const IFF_UP: u32 = libc::IFF_UP as u32;
/// `IFF_LOOPBACK`.
pub const IFF_LOOPBACK: u32 = libc::IFF_LOOPBACK as u32;
/// `IFF_RUNNING`: operationally up (RFC 2863 `OPER_UP`).
pub const IFF_RUNNING: u32 = libc::IFF_RUNNING as u32;
/// `IFF_NOARP`.
pub const IFF_NOARP: u32 = libc::IFF_NOARP as u32;
/// `IFF_LOWER_UP`: the driver signals carrier.
pub const IFF_LOWER_UP: u32 = libc::IFF_LOWER_UP as u32;
/// `ARPHRD_ETHER`.
pub const ARPHRD_ETHER: u16 = libc::ARPHRD_ETHER;
/// `ARPHRD_LOOPBACK`.
pub const ARPHRD_LOOPBACK: u16 = libc::ARPHRD_LOOPBACK;
/// `ARPHRD_NONE` (tun devices in L3 mode, wireguard).
pub const ARPHRD_NONE: u16 = libc::ARPHRD_NONE;

// ---- Neighbor states (`ndm_state`, NUD_*) ----

/// `NUD_NONE`.
pub const NUD_NONE: u16 = libc::NUD_NONE;
/// `NUD_INCOMPLETE`.
pub const NUD_INCOMPLETE: u16 = libc::NUD_INCOMPLETE;
/// `NUD_REACHABLE`.
pub const NUD_REACHABLE: u16 = libc::NUD_REACHABLE;
/// `NUD_STALE`.
pub const NUD_STALE: u16 = libc::NUD_STALE;
/// `NUD_DELAY`.
pub const NUD_DELAY: u16 = libc::NUD_DELAY;
/// `NUD_PROBE`.
pub const NUD_PROBE: u16 = libc::NUD_PROBE;
/// `NUD_FAILED`.
pub const NUD_FAILED: u16 = libc::NUD_FAILED;
/// `NUD_NOARP`.
pub const NUD_NOARP: u16 = libc::NUD_NOARP;
/// `NUD_PERMANENT`: a static entry, never aged out.
pub const NUD_PERMANENT: u16 = libc::NUD_PERMANENT;

// ---- Neighbor flags (`ndm_flags`, NTF_*) ----

/// `NTF_USE`.
pub const NTF_USE: u8 = libc::NTF_USE;
/// `NTF_SELF`: the FDB entry belongs to the device itself (e.g. a VXLAN device's own FDB).
pub const NTF_SELF: u8 = libc::NTF_SELF;
/// `NTF_MASTER`: the FDB entry belongs to the master (bridge) device.
pub const NTF_MASTER: u8 = libc::NTF_MASTER;
/// `NTF_PROXY`.
pub const NTF_PROXY: u8 = libc::NTF_PROXY;
/// `NTF_EXT_LEARNED`.
pub const NTF_EXT_LEARNED: u8 = libc::NTF_EXT_LEARNED;
/// `NTF_OFFLOADED`.
pub const NTF_OFFLOADED: u8 = libc::NTF_OFFLOADED;
/// `NTF_STICKY` (not in libc for Linux).
pub const NTF_STICKY: u8 = 0x40;
/// `NTF_ROUTER`.
pub const NTF_ROUTER: u8 = libc::NTF_ROUTER;

// ---- Address flags (`ifa_flags`, IFA_FLAGS; IFA_F_*) ----

/// `IFA_F_SECONDARY`.
pub const IFA_F_SECONDARY: u32 = libc::IFA_F_SECONDARY;
/// `IFA_F_NODAD`: no duplicate address detection; an IPv6 address is usable at once.
pub const IFA_F_NODAD: u32 = libc::IFA_F_NODAD;
/// `IFA_F_OPTIMISTIC`.
pub const IFA_F_OPTIMISTIC: u32 = libc::IFA_F_OPTIMISTIC;
/// `IFA_F_DADFAILED`.
pub const IFA_F_DADFAILED: u32 = libc::IFA_F_DADFAILED;
/// `IFA_F_DEPRECATED`.
pub const IFA_F_DEPRECATED: u32 = libc::IFA_F_DEPRECATED;
/// `IFA_F_TENTATIVE`: IPv6 duplicate address detection still running.
pub const IFA_F_TENTATIVE: u32 = libc::IFA_F_TENTATIVE;
/// `IFA_F_PERMANENT`: configured, not autoconfigured.
pub const IFA_F_PERMANENT: u32 = libc::IFA_F_PERMANENT;
/// `IFA_F_NOPREFIXROUTE` (not in libc).
pub const IFA_F_NOPREFIXROUTE: u32 = 0x200;

// ---- Routing tables ----

/// `RT_TABLE_UNSPEC`.
pub const RT_TABLE_UNSPEC: u32 = libc::RT_TABLE_UNSPEC as u32;
/// `RT_TABLE_DEFAULT`.
pub const RT_TABLE_DEFAULT: u32 = libc::RT_TABLE_DEFAULT as u32;
/// `RT_TABLE_MAIN`: the table `ip route` shows.
pub const RT_TABLE_MAIN: u32 = libc::RT_TABLE_MAIN as u32;
/// `RT_TABLE_LOCAL`: local and broadcast routes the kernel maintains.
pub const RT_TABLE_LOCAL: u32 = libc::RT_TABLE_LOCAL as u32;

// ---- Route scopes (`rtm_scope`, also `ifa_scope`) ----

/// `RT_SCOPE_UNIVERSE`: a global route (via a gateway).
pub const RT_SCOPE_UNIVERSE: u8 = libc::RT_SCOPE_UNIVERSE;
/// `RT_SCOPE_SITE`.
pub const RT_SCOPE_SITE: u8 = libc::RT_SCOPE_SITE;
/// `RT_SCOPE_LINK`: destination directly on the link.
pub const RT_SCOPE_LINK: u8 = libc::RT_SCOPE_LINK;
/// `RT_SCOPE_HOST`: a local address.
pub const RT_SCOPE_HOST: u8 = libc::RT_SCOPE_HOST;
/// `RT_SCOPE_NOWHERE`.
pub const RT_SCOPE_NOWHERE: u8 = libc::RT_SCOPE_NOWHERE;

// ---- Route protocols (`rtm_protocol`) ----

/// `RTPROT_UNSPEC`.
pub const RTPROT_UNSPEC: u8 = libc::RTPROT_UNSPEC;
/// `RTPROT_REDIRECT`.
pub const RTPROT_REDIRECT: u8 = libc::RTPROT_REDIRECT;
/// `RTPROT_KERNEL`: installed by the kernel (prefix routes of addresses).
pub const RTPROT_KERNEL: u8 = libc::RTPROT_KERNEL;
/// `RTPROT_BOOT`: the default for routes added by `ip route add`.
pub const RTPROT_BOOT: u8 = libc::RTPROT_BOOT;
/// `RTPROT_STATIC`: added by an administrator / by this library.
pub const RTPROT_STATIC: u8 = libc::RTPROT_STATIC;
/// `RTPROT_RA`: learned from an IPv6 router advertisement (not in libc).
pub const RTPROT_RA: u8 = 9;

// ---- Route types (`rtm_type`, RTN_*) ----

/// `RTN_UNSPEC`.
pub const RTN_UNSPEC: u8 = libc::RTN_UNSPEC;
/// `RTN_UNICAST`: a gateway or direct route.
pub const RTN_UNICAST: u8 = libc::RTN_UNICAST;
/// `RTN_LOCAL`: accept locally.
pub const RTN_LOCAL: u8 = libc::RTN_LOCAL;
/// `RTN_BROADCAST`.
pub const RTN_BROADCAST: u8 = libc::RTN_BROADCAST;
/// `RTN_ANYCAST`.
pub const RTN_ANYCAST: u8 = libc::RTN_ANYCAST;
/// `RTN_MULTICAST`.
pub const RTN_MULTICAST: u8 = libc::RTN_MULTICAST;
/// `RTN_BLACKHOLE`: drop silently.
pub const RTN_BLACKHOLE: u8 = libc::RTN_BLACKHOLE;
/// `RTN_UNREACHABLE`: destination unreachable.
pub const RTN_UNREACHABLE: u8 = libc::RTN_UNREACHABLE;
/// `RTN_PROHIBIT`: administratively prohibited.
pub const RTN_PROHIBIT: u8 = libc::RTN_PROHIBIT;
/// `RTN_THROW`: not in this table.
pub const RTN_THROW: u8 = libc::RTN_THROW;
