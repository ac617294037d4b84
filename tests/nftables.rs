//! nf_tables wire layer against the kernel, in a private namespace, checked with `nft -j`.

mod common;

use netsandbox::Error;
use netsandbox::netlink::nftables::expr::{Expr, Reg, Verdict, meta};
use netsandbox::netlink::nftables::{Batch, ChainSpec, Family, Hook, NFT_DATA_VERDICT, NftSocket, SetSpec, dtype};

fn nft_available() -> bool {
    std::process::Command::new("nft").arg("--version").output().is_ok_and(|o| o.status.success())
}

fn nft_json() -> serde_json::Value {
    let out = std::process::Command::new("nft").args(["-j", "list", "ruleset"]).output().expect("run nft");
    assert!(out.status.success(), "nft: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("nft json")
}

/// The objects of one kind (`"chain"`, `"map"`, `"rule"`, ...) in nft's JSON.
fn objects<'a>(v: &'a serde_json::Value, kind: &str) -> Vec<&'a serde_json::Value> {
    v["nftables"].as_array().unwrap().iter().filter_map(|o| o.get(kind)).collect()
}

fn skeleton() -> Batch {
    let mut b = Batch::new();
    b.add_table(Family::Inet, "t", Some("made by the test"));
    b.add_chain(
        &ChainSpec {
            family: Family::Inet,
            table: "t".into(),
            name: "pre".into(),
            hook: Some((Hook::Prerouting, -100, "nat")),
            comment: None,
        },
        false,
    );
    b.add_chain(
        &ChainSpec {
            family: Family::Inet,
            table: "t".into(),
            name: "svc".into(),
            hook: None,
            comment: Some("svc".into()),
        },
        true,
    );
    b.add_set(&SetSpec {
        family: Family::Inet,
        table: "t".into(),
        name: "vips".into(),
        flags: 0,
        key_type: dtype::concat(&[dtype::IPADDR, dtype::INET_PROTOCOL, dtype::INET_SERVICE]),
        key_len: 12,
        concat: vec![4, 1, 2],
        data_type: Some(NFT_DATA_VERDICT),
        data_len: 0,
        id: 1,
    });
    b.add_rule(
        Family::Inet,
        "t",
        "pre",
        &[
            Expr::Meta { key: meta::NFPROTO, dreg: Reg::R32(0) },
            Expr::Cmp { sreg: Reg::R32(0), op: netsandbox::netlink::nftables::CmpOp::Eq, data: vec![2] },
            Expr::Payload {
                base: netsandbox::netlink::nftables::Payload::Network,
                offset: 16,
                len: 4,
                dreg: Reg::R32(0),
            },
            Expr::Meta { key: meta::L4PROTO, dreg: Reg::R32(1) },
            Expr::Payload {
                base: netsandbox::netlink::nftables::Payload::Transport,
                offset: 2,
                len: 2,
                dreg: Reg::R32(2),
            },
            Expr::Lookup { set: "vips".into(), sreg: Reg::R32(0), dreg: Some(Reg::Verdict) },
        ],
        Some("services"),
    );
    b.add_elems(
        Family::Inet,
        "t",
        "vips",
        &[(vec![198, 51, 100, 10, 6, 0, 0, 0, 0, 80, 0, 0], Some(Verdict::Goto("svc".into())))],
    );
    b
}

#[test]
fn batch_builds_table_chain_map_rule_and_reads_back() {
    if !nft_available() {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    common::in_private_netns(|| {
        let s = NftSocket::open().unwrap();
        let g0 = s.genid().unwrap();
        s.commit(&mut skeleton(), g0).unwrap();
        let g1 = s.genid().unwrap();
        assert_ne!(g0, g1);

        let v = nft_json();
        let chains = objects(&v, "chain");
        let names: Vec<_> = chains.iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"pre") && names.contains(&"svc"), "{v}");
        let pre = chains.iter().find(|c| c["name"] == "pre").unwrap();
        assert_eq!(
            (pre["hook"].as_str(), pre["prio"].as_i64(), pre["type"].as_str()),
            (Some("prerouting"), Some(-100), Some("nat"))
        );
        let map = objects(&v, "map");
        assert_eq!(map.len(), 1, "{v}");
        assert_eq!(map[0]["name"], "vips");
        let elem = map[0]["elem"].to_string();
        assert!(elem.contains("198.51.100.10") && elem.contains("\"goto\"") && elem.contains("svc"), "{elem}");
        let rules = objects(&v, "rule");
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0]["comment"], "services");
        assert!(rules[0]["expr"].to_string().contains("@vips"), "{}", rules[0]["expr"]);

        // Our own dumps see the same.
        let chains = s.chains(Family::Inet, "t").unwrap();
        assert_eq!(chains.iter().find(|c| c.name == "svc").unwrap().comment.as_deref(), Some("svc"));
        let elems = s.elems(Family::Inet, "t", "vips").unwrap();
        assert_eq!(elems.len(), 1);
        assert_eq!(elems[0].verdict, Some(Verdict::Goto("svc".into())));
        assert_eq!(s.rules(Family::Inet, "t", "pre").unwrap()[0].comment.as_deref(), Some("services"));
        assert!(s.tables().unwrap().iter().any(|t| t.name == "t" && t.comment.as_deref() == Some("made by the test")));

        let mut del = Batch::new();
        del.del_table(Family::Inet, "t");
        s.commit(&mut del, 0).unwrap();
        assert!(objects(&nft_json(), "table").is_empty());
    });
}

#[test]
fn failing_message_aborts_whole_batch_with_ext_ack() {
    if !nft_available() {
        eprintln!("skipped: nft (nftables) not installed");
        return;
    }
    common::in_private_netns(|| {
        let s = NftSocket::open().unwrap();
        s.commit(&mut skeleton(), 0).unwrap();
        let before = nft_json();
        // A valid change followed by one that refers to a chain that does not exist.
        let mut b = Batch::new();
        b.add_chain(
            &ChainSpec { family: Family::Inet, table: "t".into(), name: "extra".into(), hook: None, comment: None },
            true,
        );
        b.add_elems(
            Family::Inet,
            "t",
            "vips",
            &[(vec![198, 51, 100, 11, 6, 0, 0, 0, 0, 80, 0, 0], Some(Verdict::Goto("missing".into())))],
        );
        let e = s.commit(&mut b, 0).unwrap_err();
        match &e {
            Error::Kernel(k) => {
                assert_eq!(k.errno, nix::errno::Errno::ENOENT, "{e}");
                assert_eq!(k.op, "add element to");
                assert_eq!(k.object, "vips");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(nft_json(), before, "nothing of the failed batch is applied");

        // A stale generation is refused as such.
        let g = s.genid().unwrap();
        let mut c = Batch::new();
        c.add_chain(
            &ChainSpec { family: Family::Inet, table: "t".into(), name: "x".into(), hook: None, comment: None },
            true,
        );
        s.commit(&mut c.clone(), g).unwrap();
        let e = s.commit(&mut c, g).unwrap_err();
        assert!(netsandbox::netlink::nftables::socket::is_stale(&e), "{e:?}");

        // An expression the kernel does not know is a typed Unsupported error.
        let mut u = Batch::new();
        u.add_rule(Family::Inet, "t", "svc", &[Expr::Raw { name: "nosuchexpr", data: vec![] }], None);
        match s.commit(&mut u, 0) {
            Err(Error::Unsupported { feature, detail }) => {
                assert_eq!(feature, "nf_tables expression");
                assert!(detail.contains("nosuchexpr"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        // An existing element added again is EEXIST (changes never overwrite silently).
        let mut d = Batch::new();
        d.add_elems(
            Family::Inet,
            "t",
            "vips",
            &[(vec![198, 51, 100, 10, 6, 0, 0, 0, 0, 80, 0, 0], Some(Verdict::Goto("svc".into())))],
        );
        assert_eq!(s.commit(&mut d, 0).unwrap_err().errno(), Some(nix::errno::Errno::EEXIST));
    });
}
