//! The SW parameters of sandbox i, and per-step timing.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netsandbox::IpNet;

use crate::GW;

#[derive(Clone, Copy)]
pub(crate) struct Sw(pub(crate) usize);

impl Sw {
    pub(crate) fn j(self) -> usize {
        self.0 + 1
    }
    pub(crate) fn mac(self) -> [u8; 6] {
        [0x02, 0x42, 0xc6, 0x12, (self.j() >> 8) as u8, self.j() as u8]
    }
    pub(crate) fn mac_str(self) -> String {
        self.mac().iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
    }
    pub(crate) fn v4(self) -> IpNet {
        format!("198.18.{}.{}/16", self.j() >> 8, self.j() & 0xff).parse().expect("v4 literal")
    }
    pub(crate) fn v6(self) -> IpNet {
        format!("2001:db8::{:x}/64", self.j()).parse().expect("v6 literal")
    }
    pub(crate) fn static_dst(self) -> IpNet {
        format!("198.19.{}.0/24", self.0 % 250).parse().expect("route literal")
    }
    pub(crate) fn vh(self) -> String {
        format!("vh{}", self.0)
    }
    pub(crate) fn vc(self) -> String {
        format!("vc{}", self.0)
    }
    pub(crate) fn host_index(self) -> u32 {
        100 + self.0 as u32
    }
    pub(crate) fn pin(self, dir: &Path) -> PathBuf {
        dir.join(format!("sbx{}", self.0))
    }
}

pub(crate) fn gw() -> IpAddr {
    GW.parse().expect("gw literal")
}

/// Records the time since the previous mark under a step name.
pub(crate) struct Laps {
    pub(crate) last: Instant,
    pub(crate) steps: Vec<(&'static str, Duration)>,
}

impl Laps {
    pub(crate) fn new() -> Self {
        Laps { last: Instant::now(), steps: Vec::new() }
    }
    pub(crate) fn mark(&mut self, step: &'static str) {
        let now = Instant::now();
        self.steps.push((step, now - self.last));
        self.last = now;
    }
}
