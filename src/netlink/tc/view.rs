//! The [`Qdisc`] and [`Filter`] views: checked, plain-data traffic-control objects decoded from
//! `RTM_NEWQDISC` / `RTM_NEWTFILTER`.

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcAttribute, TcFilterU32Option, TcMessage,
    TcOption,
};

use super::TC_H_INGRESS;
use crate::netlink::view::{FromReply, ViewError};

/// A queueing discipline (`RTM_NEWQDISC`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Qdisc {
    /// The link it is attached to.
    pub index: u32,
    /// Its handle (`major << 16 | minor`), e.g. `0xffff0000` for `ffff:`.
    pub handle: u32,
    /// Its parent (`TC_H_ROOT`, `TC_H_INGRESS`, or a class).
    pub parent: u32,
    /// Its kind (`"ingress"`, `"noqueue"`, `"fq_codel"`, ...).
    pub kind: String,
}

impl Qdisc {
    /// True for an `ingress` qdisc.
    pub fn is_ingress(&self) -> bool {
        self.kind == "ingress" && self.parent == TC_H_INGRESS
    }

    /// Builds the view of a decoded qdisc message. Fails when it has no kind.
    pub fn from_message(m: &TcMessage) -> Result<Qdisc, ViewError> {
        let kind = m
            .attributes
            .iter()
            .find_map(|a| match a {
                TcAttribute::Kind(k) => Some(k.clone()),
                _ => None,
            })
            .ok_or_else(|| ViewError::new("qdisc", format!("ifindex {}: no TCA_KIND", m.header.index)))?;
        Ok(Qdisc {
            index: u32::try_from(m.header.index).unwrap_or(0),
            handle: m.header.handle.into(),
            parent: m.header.parent.into(),
            kind,
        })
    }
}

/// One action of a filter, as far as netsandbox cares.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FilterAction {
    /// `mirred` with its direction/kind (`TCA_EGRESS_REDIR` = 1, ...) and target ifindex.
    Mirred {
        /// The mirred action type: 1 egress redirect, 2 egress mirror, 3/4 the ingress ones.
        eaction: i32,
        /// Interface the packet goes to.
        ifindex: u32,
    },
    /// Any other action, by kind.
    Other(String),
}

/// A classifier (`RTM_NEWTFILTER`). The kernel sends one message for the filter's priority
/// (without options) and one per element; views of both kinds come out of a dump.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Filter {
    /// The link it is attached to.
    pub index: u32,
    /// Its parent qdisc or class (`ffff:` for ingress).
    pub parent: u32,
    /// Its handle (for u32: `htid:hash:node`; 0 on the per-priority header message).
    pub handle: u32,
    /// Its priority.
    pub priority: u16,
    /// The protocol it matches (host order: `ETH_P_ALL` = 3).
    pub protocol: u16,
    /// Its kind (`"u32"`, `"matchall"`, ...).
    pub kind: String,
    /// For `u32`: the selector's keys as `(mask, value, offset)`; empty otherwise.
    pub keys: Vec<(u32, u32, i32)>,
    /// Its actions.
    pub actions: Vec<FilterAction>,
}

impl Filter {
    /// True when this is a match-everything filter redirecting to `ifindex` (the rule
    /// [`add_redirect_filter`](super::add_redirect_filter) installs).
    pub fn redirects_all_to(&self) -> Option<u32> {
        let all = self.keys.iter().all(|(mask, _, _)| *mask == 0) && !self.keys.is_empty();
        match self.actions.as_slice() {
            [FilterAction::Mirred { eaction: 1, ifindex }] if all && self.kind == "u32" => Some(*ifindex),
            _ => None,
        }
    }

    /// Builds the view of a decoded filter message. Fails when it has no kind.
    pub fn from_message(m: &TcMessage) -> Result<Filter, ViewError> {
        let mut kind = None;
        let mut keys = Vec::new();
        let mut actions = Vec::new();
        for a in &m.attributes {
            match a {
                TcAttribute::Kind(k) => kind = Some(k.clone()),
                TcAttribute::Options(opts) => {
                    for o in opts {
                        match o {
                            TcOption::U32(TcFilterU32Option::Selector(s)) => {
                                keys = s.keys.iter().map(|k| (k.mask, k.val, k.off)).collect();
                            }
                            TcOption::U32(TcFilterU32Option::Action(acts)) => {
                                actions.extend(acts.iter().map(action_view));
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        let kind = kind.ok_or_else(|| ViewError::new("filter", format!("ifindex {}: no TCA_KIND", m.header.index)))?;
        Ok(Filter {
            index: u32::try_from(m.header.index).unwrap_or(0),
            parent: m.header.parent.into(),
            handle: m.header.handle.into(),
            priority: (m.header.info >> 16) as u16,
            protocol: u16::from_be((m.header.info & 0xffff) as u16),
            kind,
            keys,
            actions,
        })
    }
}

fn action_view(a: &TcAction) -> FilterAction {
    let mut kind = String::new();
    let mut mirred = None;
    for attr in &a.attributes {
        match attr {
            TcActionAttribute::Kind(k) => kind = k.clone(),
            TcActionAttribute::Options(opts) => {
                for o in opts {
                    if let TcActionOption::Mirror(TcActionMirrorOption::Parms(p)) = o {
                        mirred = Some(FilterAction::Mirred { eaction: p.eaction.into(), ifindex: p.ifindex });
                    }
                }
            }
            _ => {}
        }
    }
    match mirred {
        Some(m) if kind == "mirred" => m,
        _ => FilterAction::Other(kind),
    }
}

impl FromReply for Qdisc {
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>> {
        match m {
            RouteNetlinkMessage::NewQueueDiscipline(q) => Some(Qdisc::from_message(q)),
            _ => None,
        }
    }
}

impl FromReply for Filter {
    fn from_reply(m: &RouteNetlinkMessage) -> Option<Result<Self, ViewError>> {
        match m {
            RouteNetlinkMessage::NewTrafficFilter(f) => Some(Filter::from_message(f)),
            _ => None,
        }
    }
}
