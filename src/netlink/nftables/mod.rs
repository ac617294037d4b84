//! nf_tables over `NETLINK_NETFILTER`, written by us: typed messages ([`msg`]), rule
//! expressions ([`expr`]) and a socket that sends a whole change as one batch ([`socket`]).
//!
//! Like the rest of [`crate::netlink`] this layer knows nothing of namespaces: an
//! [`NftSocket`] works in the namespace it was opened in, and the sandbox layer decides where
//! that is.
//!
//! Guarantees: a [`Batch`] is sent with one `sendmsg` between `NFNL_MSG_BATCH_BEGIN` and
//! `NFNL_MSG_BATCH_END`, so the kernel applies all of it or none of it; every error is matched
//! to the message that caused it by sequence number and carries the kernel's extended-ACK text;
//! decoders never panic on kernel input.

pub mod expr;
pub mod msg;
pub mod socket;

pub use expr::{CmpOp, Expr, NatKind, Payload, Reg, Verdict};
pub use msg::{
    Batch, ChainInfo, ChainSpec, ElemInfo, Family, Hook, SetInfo, SetSpec, TableInfo, comment_udata, parse_comment,
};
pub use socket::NftSocket;

/// `NFNL_SUBSYS_NFTABLES`.
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFNL_MSG_BATCH_BEGIN` (`NLMSG_MIN_TYPE`).
pub const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
/// `NFNL_MSG_BATCH_END`.
pub const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFNL_BATCH_GENID`: the ruleset generation a batch expects (0 = any).
pub const NFNL_BATCH_GENID: u16 = 1;

/// `enum nf_tables_msg_types`, the ones we use.
#[allow(missing_docs)]
pub mod msg_type {
    pub const NEWTABLE: u8 = 0;
    pub const GETTABLE: u8 = 1;
    pub const DELTABLE: u8 = 2;
    pub const NEWCHAIN: u8 = 3;
    pub const GETCHAIN: u8 = 4;
    pub const DELCHAIN: u8 = 5;
    pub const NEWRULE: u8 = 6;
    pub const GETRULE: u8 = 7;
    pub const DELRULE: u8 = 8;
    pub const NEWSET: u8 = 9;
    pub const GETSET: u8 = 10;
    pub const DELSET: u8 = 11;
    pub const NEWSETELEM: u8 = 12;
    pub const GETSETELEM: u8 = 13;
    pub const DELSETELEM: u8 = 14;
    pub const NEWGEN: u8 = 15;
    pub const GETGEN: u8 = 16;
}

/// The netlink message type of an nf_tables message.
pub const fn nft_type(m: u8) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | m as u16
}

/// Attribute numbers from `include/uapi/linux/netfilter/nf_tables.h`.
#[allow(missing_docs)]
pub mod attr {
    pub const NLA_F_NESTED: u16 = 0x8000;
    pub const NFTA_LIST_ELEM: u16 = 1;

    pub const NFTA_TABLE_NAME: u16 = 1;
    pub const NFTA_TABLE_FLAGS: u16 = 2;
    pub const NFTA_TABLE_USERDATA: u16 = 6;

    pub const NFTA_HOOK_HOOKNUM: u16 = 1;
    pub const NFTA_HOOK_PRIORITY: u16 = 2;

    pub const NFTA_CHAIN_TABLE: u16 = 1;
    pub const NFTA_CHAIN_HANDLE: u16 = 2;
    pub const NFTA_CHAIN_NAME: u16 = 3;
    pub const NFTA_CHAIN_HOOK: u16 = 4;
    pub const NFTA_CHAIN_POLICY: u16 = 5;
    pub const NFTA_CHAIN_TYPE: u16 = 7;
    pub const NFTA_CHAIN_USERDATA: u16 = 12;

    pub const NFTA_RULE_TABLE: u16 = 1;
    pub const NFTA_RULE_CHAIN: u16 = 2;
    pub const NFTA_RULE_HANDLE: u16 = 3;
    pub const NFTA_RULE_EXPRESSIONS: u16 = 4;
    pub const NFTA_RULE_USERDATA: u16 = 7;

    pub const NFTA_EXPR_NAME: u16 = 1;
    pub const NFTA_EXPR_DATA: u16 = 2;
    pub const NFTA_NG_MODULUS: u16 = 2;

    pub const NFTA_SET_TABLE: u16 = 1;
    pub const NFTA_SET_NAME: u16 = 2;
    pub const NFTA_SET_FLAGS: u16 = 3;
    pub const NFTA_SET_KEY_TYPE: u16 = 4;
    pub const NFTA_SET_KEY_LEN: u16 = 5;
    pub const NFTA_SET_DATA_TYPE: u16 = 6;
    pub const NFTA_SET_DATA_LEN: u16 = 7;
    pub const NFTA_SET_DESC: u16 = 9;
    pub const NFTA_SET_ID: u16 = 10;
    pub const NFTA_SET_USERDATA: u16 = 13;
    pub const NFTA_SET_DESC_CONCAT: u16 = 2;
    pub const NFTA_SET_FIELD_LEN: u16 = 1;

    pub const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
    pub const NFTA_SET_ELEM_LIST_SET: u16 = 2;
    pub const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
    pub const NFTA_SET_ELEM_KEY: u16 = 1;
    pub const NFTA_SET_ELEM_DATA: u16 = 2;
    pub const NFTA_SET_ELEM_USERDATA: u16 = 6;

    pub const NFTA_DATA_VALUE: u16 = 1;
    pub const NFTA_DATA_VERDICT: u16 = 2;
    pub const NFTA_VERDICT_CODE: u16 = 1;
    pub const NFTA_VERDICT_CHAIN: u16 = 2;

    pub const NFTA_GEN_ID: u16 = 1;
}

/// `NFT_SET_*` flags.
#[allow(missing_docs)]
pub mod set_flags {
    pub const ANONYMOUS: u32 = 0x1;
    pub const CONSTANT: u32 = 0x2;
    pub const INTERVAL: u32 = 0x4;
    pub const MAP: u32 = 0x8;
    pub const CONCAT: u32 = 0x80;
}

/// `NFT_DATA_VERDICT`: the data type of a verdict map.
pub const NFT_DATA_VERDICT: u32 = 0xffff_ff00;

/// nft's user-space datatype ids (`enum datatypes` in nftables' datatype.h). The kernel stores
/// them opaquely; `nft list` uses them to print keys, and concatenations pack them 6 bits each.
#[allow(missing_docs)]
pub mod dtype {
    pub const INTEGER: u32 = 4;
    pub const IPADDR: u32 = 7;
    pub const IP6ADDR: u32 = 8;
    pub const INET_PROTOCOL: u32 = 12;
    pub const INET_SERVICE: u32 = 13;
    pub const MARK: u32 = 19;
    pub const IFNAME: u32 = 41;

    /// The key type of a concatenation of `types`, as nft encodes it.
    pub fn concat(types: &[u32]) -> u32 {
        types.iter().fold(0, |acc, t| (acc << 6) | t)
    }
}
