use netsandbox::netns;
use netsandbox::sandbox::{CreateOptions, IfaceOptions, NeighOptions, NetnsSandbox, Sandbox, StaticRoute};
use std::time::Instant;
fn main() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
    let n: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1500);
    let dir = std::env::temp_dir().join(format!("zz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    if std::env::var_os("NOLL").is_some() {
        std::fs::write("/proc/sys/net/ipv6/conf/default/addr_gen_mode", "1").unwrap();
    }
    let tmpfs = std::env::var_os("TMPFS").is_some();
    if tmpfs {
        nix::mount::mount(Some("tmpfs"), &dir, Some("tmpfs"), nix::mount::MsFlags::empty(), Some("mode=0700")).unwrap();
    }
    let mut live = vec![];
    let mut t: Vec<Vec<u128>> = vec![vec![]; 3];
    for i in 0..n {
        let p = dir.join(format!("a{i}"));
        let s = Instant::now();
        let sb = NetnsSandbox::create(p.to_str().unwrap(), &CreateOptions::default()).unwrap();
        t[0].push(s.elapsed().as_micros());
        let s = Instant::now();
        let j = i + 1;
        let opts = IfaceOptions::new()
            .mac([2, 0x42, 0xc6, 0x12, (j >> 8) as u8, j as u8])
            .address(format!("198.18.{}.{}/16", j >> 8, j & 255).parse().unwrap())
            .address_ipv6(format!("2001:db8::{j:x}/64").parse().unwrap());
        sb.add_veth(&format!("vh{i}"), "eth", &opts).unwrap();
        t[1].push(s.elapsed().as_micros());
        let s = Instant::now();
        sb.set_gateway("198.18.255.254".parse().unwrap()).unwrap();
        sb.add_static_route(&StaticRoute::via(
            format!("198.19.{}.0/24", i % 250).parse().unwrap(),
            "198.18.255.254".parse().unwrap(),
        ))
        .unwrap();
        sb.add_neighbor(
            "198.18.255.254".parse().unwrap(),
            [2, 0x42, 0xc6, 0x12, 0xff, 0xfe],
            false,
            &NeighOptions::new(),
        )
        .unwrap();
        t[2].push(s.elapsed().as_micros());
        live.push(sb);
        if (i + 1) % 250 == 0 {
            let w = |v: &Vec<u128>| {
                let mut x = v[v.len() - 250..].to_vec();
                x.sort();
                x[125]
            };
            println!("{}: create {} add_veth {} rest {}", i + 1, w(&t[0]), w(&t[1]), w(&t[2]));
        }
    }
    for sb in &live {
        netns::unpin(std::path::Path::new(sb.key())).unwrap();
    }
    drop(live);
    netns::release_base(&dir).unwrap();
    if tmpfs {
        nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    std::fs::remove_dir(&dir).unwrap();
}
