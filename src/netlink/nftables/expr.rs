//! nf_tables rule expressions, each encoded as the kernel's `NFTA_<EXPR>_*` attributes.
//! Registers are 32-bit (`NFT_REG32_00` + n) so concatenated keys line up 4 bytes per field.

use super::msg::{put, put_be32, put_str, put_value, put_verdict};

/// A data register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    /// `NFT_REG_VERDICT`: the lookup result of a verdict map.
    Verdict,
    /// `NFT_REG32_00` + n (n < 16).
    R32(u8),
}

impl Reg {
    fn number(self) -> u32 {
        match self {
            Reg::Verdict => 0,
            Reg::R32(n) => 8 + u32::from(n),
        }
    }
}

/// A verdict.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// `NF_ACCEPT`.
    Accept,
    /// `NF_DROP`.
    Drop,
    /// `NFT_RETURN`.
    Return,
    /// `NFT_JUMP` to a chain.
    Jump(String),
    /// `NFT_GOTO` a chain.
    Goto(String),
}

impl Verdict {
    /// The kernel's verdict code.
    pub fn code(&self) -> i32 {
        match self {
            Verdict::Drop => 0,
            Verdict::Accept => 1,
            Verdict::Jump(_) => -3,
            Verdict::Goto(_) => -4,
            Verdict::Return => -5,
        }
    }

    /// The target chain of a jump or goto.
    pub fn chain(&self) -> Option<&str> {
        match self {
            Verdict::Jump(c) | Verdict::Goto(c) => Some(c),
            _ => None,
        }
    }

    /// The verdict from a code and an optional chain name.
    pub fn from_code(code: i32, chain: Option<String>) -> Option<Verdict> {
        Some(match (code, chain) {
            (0, _) => Verdict::Drop,
            (1, _) => Verdict::Accept,
            (-5, _) => Verdict::Return,
            (-3, Some(c)) => Verdict::Jump(c),
            (-4, Some(c)) => Verdict::Goto(c),
            _ => return None,
        })
    }
}

/// Where a payload expression reads (`NFT_PAYLOAD_*_HEADER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// Network header (IPv4/IPv6).
    Network = 1,
    /// Transport header (ports).
    Transport = 2,
}

/// Comparison operator (`NFT_CMP_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`.
    Eq = 0,
    /// `!=`.
    Neq = 1,
}

/// NAT type (`NFT_NAT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatKind {
    /// Source NAT.
    Snat = 0,
    /// Destination NAT.
    Dnat = 1,
}

/// `NFT_META_*` keys we use.
#[allow(missing_docs)]
pub mod meta {
    pub const MARK: u32 = 3;
    pub const IIFNAME: u32 = 6;
    pub const OIFNAME: u32 = 7;
    pub const NFPROTO: u32 = 15;
    pub const L4PROTO: u32 = 16;
}

/// `NFT_CT_*` keys we use.
#[allow(missing_docs)]
pub mod ct {
    pub const STATE: u32 = 0;
    pub const STATUS: u32 = 2;
    /// `IPS_DST_NAT` bit of the conntrack status.
    pub const IPS_DST_NAT: u32 = 0x20;
}

/// One rule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta <key>` into `dreg`.
    Meta {
        /// `NFT_META_*`.
        key: u32,
        /// Destination.
        dreg: Reg,
    },
    /// Packet bytes into `dreg`.
    Payload {
        /// Header.
        base: Payload,
        /// Offset in the header.
        offset: u32,
        /// Length.
        len: u32,
        /// Destination.
        dreg: Reg,
    },
    /// Compare `sreg` with `data`; the rule stops here when false.
    Cmp {
        /// Source.
        sreg: Reg,
        /// Operator.
        op: CmpOp,
        /// Bytes to compare with.
        data: Vec<u8>,
    },
    /// `dreg = (sreg & mask) ^ xor`.
    Bitwise {
        /// Source.
        sreg: Reg,
        /// Destination.
        dreg: Reg,
        /// Mask.
        mask: Vec<u8>,
        /// Xor (same length as mask).
        xor: Vec<u8>,
    },
    /// Look `sreg` up in a named set; with `dreg`, a map lookup (a verdict map when
    /// `Reg::Verdict`).
    Lookup {
        /// Set name.
        set: String,
        /// Source (start of the key).
        sreg: Reg,
        /// Destination of the mapped data.
        dreg: Option<Reg>,
    },
    /// `numgen random mod modulus` (or `inc`) into `dreg`.
    Numgen {
        /// Destination.
        dreg: Reg,
        /// Modulus (> 0).
        modulus: u32,
        /// Random rather than incremental.
        random: bool,
    },
    /// Load a constant into a register.
    Immediate {
        /// Destination.
        dreg: Reg,
        /// The bytes.
        data: Vec<u8>,
    },
    /// A verdict.
    Verdict(Verdict),
    /// SNAT/DNAT to the address (and port) held in registers.
    Nat {
        /// Type.
        kind: NatKind,
        /// `NFPROTO_IPV4` (2) or `NFPROTO_IPV6` (10).
        family: u8,
        /// Register holding the address.
        addr: Option<Reg>,
        /// Register holding the port.
        port: Option<Reg>,
    },
    /// `masquerade`.
    Masq,
    /// `ct <key>` into `dreg`.
    Ct {
        /// `NFT_CT_*`.
        key: u32,
        /// Destination.
        dreg: Reg,
    },
    /// `counter`.
    Counter,
    /// An expression without a typed form here: its kernel name and its already encoded
    /// `NFTA_EXPR_DATA` attributes.
    Raw {
        /// Kernel expression name.
        name: &'static str,
        /// Encoded attributes.
        data: Vec<u8>,
    },
}

impl Expr {
    /// The kernel's expression name.
    pub fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Lookup { .. } => "lookup",
            Expr::Numgen { .. } => "numgen",
            Expr::Immediate { .. } | Expr::Verdict(_) => "immediate",
            Expr::Nat { .. } => "nat",
            Expr::Masq => "masq",
            Expr::Ct { .. } => "ct",
            Expr::Counter => "counter",
            Expr::Raw { name, .. } => name,
        }
    }

    /// Writes the expression's `NFTA_EXPR_DATA` attributes.
    pub fn encode(&self, b: &mut Vec<u8>) {
        match self {
            Expr::Meta { key, dreg } => {
                put_be32(b, 2, *key);
                put_be32(b, 1, dreg.number());
            }
            Expr::Payload { base, offset, len, dreg } => {
                put_be32(b, 1, dreg.number());
                put_be32(b, 2, *base as u32);
                put_be32(b, 3, *offset);
                put_be32(b, 4, *len);
            }
            Expr::Cmp { sreg, op, data } => {
                put_be32(b, 1, sreg.number());
                put_be32(b, 2, *op as u32);
                put_value(b, 3, data);
            }
            Expr::Bitwise { sreg, dreg, mask, xor } => {
                put_be32(b, 1, sreg.number());
                put_be32(b, 2, dreg.number());
                put_be32(b, 3, mask.len() as u32);
                put_value(b, 4, mask);
                put_value(b, 5, xor);
            }
            Expr::Lookup { set, sreg, dreg } => {
                put_str(b, 1, set);
                put_be32(b, 2, sreg.number());
                if let Some(d) = dreg {
                    put_be32(b, 3, d.number());
                }
            }
            Expr::Numgen { dreg, modulus, random } => {
                put_be32(b, 1, dreg.number());
                put_be32(b, 2, *modulus);
                put_be32(b, 3, u32::from(*random));
            }
            Expr::Immediate { dreg, data } => {
                put_be32(b, 1, dreg.number());
                put_value(b, 2, data);
            }
            Expr::Verdict(v) => {
                put_be32(b, 1, Reg::Verdict.number());
                put_verdict(b, 2, v);
            }
            Expr::Nat { kind, family, addr, port } => {
                put_be32(b, 1, *kind as u32);
                put_be32(b, 2, u32::from(*family));
                if let Some(a) = addr {
                    put_be32(b, 3, a.number());
                }
                if let Some(p) = port {
                    put_be32(b, 5, p.number());
                }
            }
            Expr::Masq => {}
            Expr::Ct { key, dreg } => {
                put_be32(b, 2, *key);
                put_be32(b, 1, dreg.number());
            }
            Expr::Counter => {
                put(b, 1, &0u64.to_be_bytes());
                put(b, 2, &0u64.to_be_bytes());
            }
            Expr::Raw { data, .. } => b.extend_from_slice(data),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::nftables::msg::attrs;

    fn enc(e: &Expr) -> Vec<(u16, Vec<u8>)> {
        let mut b = Vec::new();
        e.encode(&mut b);
        attrs(&b).map(|(k, v)| (k, v.to_vec())).collect()
    }

    #[test]
    fn registers_and_verdicts() {
        assert_eq!(Reg::R32(0).number(), 8);
        assert_eq!(Reg::R32(5).number(), 13);
        assert_eq!(Reg::Verdict.number(), 0);
        for v in [Verdict::Accept, Verdict::Drop, Verdict::Return, Verdict::Jump("a".into()), Verdict::Goto("b".into())]
        {
            assert_eq!(Verdict::from_code(v.code(), v.chain().map(str::to_owned)), Some(v));
        }
        assert_eq!(Verdict::from_code(-4, None), None);
    }

    #[test]
    fn payload_and_numgen_are_network_order() {
        let p = enc(&Expr::Payload { base: Payload::Network, offset: 16, len: 4, dreg: Reg::R32(0) });
        assert_eq!(
            p,
            vec![(1, vec![0, 0, 0, 8]), (2, vec![0, 0, 0, 1]), (3, vec![0, 0, 0, 16]), (4, vec![0, 0, 0, 4])]
        );
        let n = enc(&Expr::Numgen { dreg: Reg::R32(0), modulus: 3, random: true });
        assert_eq!(n[1], (2, vec![0, 0, 0, 3]));
        assert_eq!(n[2], (3, vec![0, 0, 0, 1]));
    }

    #[test]
    fn verdict_immediate_nests_chain_name() {
        let v = enc(&Expr::Verdict(Verdict::Goto("svc".into())));
        assert_eq!(v[0], (1, vec![0; 4]));
        let data: Vec<_> = attrs(&v[1].1).collect();
        assert_eq!(data[0].0, 2, "NFTA_DATA_VERDICT");
        let inner: Vec<_> = attrs(data[0].1).collect();
        assert_eq!(inner[0], (1, &(-4i32).to_be_bytes()[..]));
        assert_eq!(inner[1], (2, &b"svc\0"[..]));
    }

    #[test]
    fn nat_names_registers() {
        let n = enc(&Expr::Nat { kind: NatKind::Dnat, family: 2, addr: Some(Reg::R32(0)), port: Some(Reg::R32(1)) });
        assert_eq!(n.iter().map(|a| a.0).collect::<Vec<_>>(), vec![1, 2, 3, 5]);
        assert_eq!(n[0].1, vec![0, 0, 0, 1]);
        assert_eq!(Expr::Masq.name(), "masq");
        assert!(enc(&Expr::Masq).is_empty());
    }
}
