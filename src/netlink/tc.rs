//! Traffic-control requests: the `ingress` qdisc and `u32` match-everything filters whose
//! action is `mirred egress redirect` to another interface — what Kata's "tcfilter" network
//! model programs between a VM's TAP and a pod's veth. Plus dumps of qdiscs and filters into
//! our own views.
//!
//! `cls_matchall` is not on every kernel (it is not on these machines), so "match everything"
//! is a `u32` filter with one key of mask 0, as Kata and iproute2's `u32 match u32 0 0` do.

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute, TcFilterU32Option,
    TcHandle, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use nix::errno::Errno;

pub(crate) mod view;
pub use view::{Filter, FilterAction, Qdisc};

use super::socket::{Request, Socket};
use super::wire::{NLM_F_CREATE, NLM_F_EXCL};
use crate::error::{Error, Result};

/// `ETH_P_ALL`: a filter for every protocol.
pub const ETH_P_ALL: u16 = 0x0003;
/// The handle of the ingress qdisc (`ffff:`).
pub const INGRESS_HANDLE: u32 = 0xffff_0000;
/// The parent of the ingress qdisc (`TC_H_INGRESS`, `ffff:fff1`).
pub const TC_H_INGRESS: u32 = 0xffff_fff1;
/// Priority of the redirect filters netsandbox installs (`tc filter ... prio 1`).
pub const REDIRECT_PRIORITY: u16 = 1;
/// How many times adding an ingress qdisc is retried while the kernel says EBUSY (a qdisc of
/// the device is still being torn down, as Kata saw).
pub const EBUSY_ATTEMPTS: u32 = 10;

fn tc_message(index: u32) -> Result<TcMessage> {
    let index = i32::try_from(index)
        .map_err(|_| Error::InvalidArgument { op: "tc", reason: format!("ifindex {index} out of range") })?;
    if index == 0 {
        return Err(Error::InvalidArgument { op: "tc", reason: "ifindex 0".into() });
    }
    Ok(TcMessage::with_index(index))
}

/// `RTM_NEWQDISC`: an `ingress` qdisc on link `index` (`tc qdisc add dev X ingress`). Fails
/// with EEXIST when the link has one already.
pub fn add_ingress_qdisc(index: u32) -> Result<Request> {
    let mut m = tc_message(index)?;
    m.header.handle = TcHandle::from(INGRESS_HANDLE);
    m.header.parent = TcHandle::from(TC_H_INGRESS);
    m.attributes.push(TcAttribute::Kind("ingress".into()));
    // The kernel expects an (empty) TCA_OPTIONS nest for ingress.
    m.attributes.push(TcAttribute::Options(Vec::new()));
    Ok(Request::new(
        "add ingress qdisc",
        format!("ifindex {index}"),
        NLM_F_CREATE | NLM_F_EXCL,
        RouteNetlinkMessage::NewQueueDiscipline(m),
    ))
}

/// `RTM_DELQDISC` of the ingress qdisc of link `index`; its filters go with it.
pub fn delete_ingress_qdisc(index: u32) -> Result<Request> {
    let mut m = tc_message(index)?;
    m.header.handle = TcHandle::from(INGRESS_HANDLE);
    m.header.parent = TcHandle::from(TC_H_INGRESS);
    Ok(Request::new("delete ingress qdisc", format!("ifindex {index}"), 0, RouteNetlinkMessage::DelQueueDiscipline(m)))
}

/// `RTM_NEWTFILTER`: on the ingress qdisc of `index`, a `u32` filter matching every frame
/// (`protocol all u32 match u32 0 0`) whose action is `mirred egress redirect dev to`.
pub fn add_redirect_filter(index: u32, to: u32) -> Result<Request> {
    let mut m = tc_message(index)?;
    if to == 0 || to == index {
        return Err(Error::InvalidArgument { op: "add redirect filter", reason: format!("target ifindex {to}") });
    }
    m.header.parent = TcHandle::from(INGRESS_HANDLE);
    // tcm_info: priority in the upper 16 bits, protocol (network order) in the lower.
    m.header.info = (u32::from(REDIRECT_PRIORITY) << 16) | u32::from(ETH_P_ALL.to_be());
    m.attributes.push(TcAttribute::Kind("u32".into()));

    let mut key = TcU32Key::default();
    key.mask = 0;
    key.val = 0;
    let mut sel = TcU32Selector::default();
    sel.flags = TcU32SelectorFlags::Terminal;
    sel.nkeys = 1;
    sel.keys = vec![key];

    let mut mirred = TcMirror::default();
    mirred.generic.action = TcActionType::Stolen;
    mirred.eaction = TcMirrorActionType::EgressRedir;
    mirred.ifindex = to;
    let mut action = TcAction::default(); // tab 1: the first (only) action of the list
    action.attributes.push(TcActionAttribute::Kind("mirred".into()));
    action
        .attributes
        .push(TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(mirred))]));

    m.attributes.push(TcAttribute::Options(vec![
        TcOption::U32(TcFilterU32Option::Selector(sel)),
        TcOption::U32(TcFilterU32Option::Action(vec![action])),
    ]));
    Ok(Request::new(
        "add redirect filter",
        format!("ifindex {index} -> ifindex {to}"),
        NLM_F_CREATE | NLM_F_EXCL,
        RouteNetlinkMessage::NewTrafficFilter(m),
    ))
}

/// `RTM_GETQDISC` dump of every qdisc in the namespace.
pub fn list_qdiscs() -> Request {
    Request::new("list qdiscs", "all", 0, RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()))
}

/// `RTM_GETTFILTER` dump of the filters under the ingress qdisc of link `index`.
pub fn list_ingress_filters(index: u32) -> Result<Request> {
    let mut m = tc_message(index)?;
    m.header.parent = TcHandle::from(INGRESS_HANDLE);
    Ok(Request::new("list filters", format!("ifindex {index} ingress"), 0, RouteNetlinkMessage::GetTrafficFilter(m)))
}

impl Socket {
    /// Adds an ingress qdisc to link `index`, retrying (bounded, a millisecond apart) while
    /// the kernel answers EBUSY. One that exists already is [`Error::AlreadyExists`].
    pub fn add_ingress_qdisc(&self, index: u32) -> Result<()> {
        let mut attempt = 1;
        loop {
            match self.execute(add_ingress_qdisc(index)?) {
                Err(e) if e.errno() == Some(Errno::EBUSY) && attempt < EBUSY_ATTEMPTS => {
                    log::debug!("add ingress qdisc on ifindex {index}: EBUSY (attempt {attempt}), retrying");
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                Err(e) if e.errno() == Some(Errno::EEXIST) => {
                    return Err(Error::AlreadyExists { kind: "ingress qdisc", name: format!("ifindex {index}") });
                }
                r => return r,
            }
        }
    }

    /// Deletes the ingress qdisc of link `index` (and its filters). A missing one is
    /// [`Error::NotFound`].
    pub fn delete_ingress_qdisc(&self, index: u32) -> Result<()> {
        self.execute(delete_ingress_qdisc(index)?).map_err(|e| match e.errno() {
            Some(Errno::ENOENT | Errno::EINVAL) => {
                Error::NotFound { kind: "ingress qdisc", name: format!("ifindex {index}") }
            }
            _ => e,
        })
    }

    /// Every qdisc in this socket's namespace.
    pub fn qdiscs(&self) -> Result<Vec<Qdisc>> {
        self.dump_views(list_qdiscs())
    }

    /// The filters under the ingress qdisc of link `index` (empty when it has none).
    pub fn ingress_filters(&self, index: u32) -> Result<Vec<Filter>> {
        match self.dump_views(list_ingress_filters(index)?) {
            Err(e) if matches!(e.errno(), Some(Errno::EINVAL | Errno::ENOENT)) => Ok(Vec::new()),
            r => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, Parseable};

    use super::*;

    fn roundtrip(m: &TcMessage) -> TcMessage {
        let mut buf = vec![0; m.buffer_len()];
        m.emit(&mut buf);
        TcMessage::parse(&buf).unwrap()
    }

    #[test]
    fn redirect_filter_encodes_match_all_mirred() {
        let req = add_redirect_filter(7, 9).unwrap();
        let RouteNetlinkMessage::NewTrafficFilter(m) = &req.msg else { panic!("{:?}", req.msg) };
        let f = Filter::from_message(&roundtrip(m)).unwrap();
        assert_eq!((f.index, f.parent, f.priority, f.protocol), (7, INGRESS_HANDLE, 1, ETH_P_ALL));
        assert_eq!(f.keys, vec![(0, 0, 0)]);
        assert_eq!(f.redirects_all_to(), Some(9));
        // Header bytes as the kernel reads them: protocol 0x0003 in network order.
        assert_eq!(m.header.info, 0x0001_0000 | u32::from(0x0003u16.to_be()));
    }

    #[test]
    fn bad_indexes_are_refused() {
        assert!(add_redirect_filter(0, 1).unwrap_err().is_invalid_input());
        assert!(add_redirect_filter(3, 3).unwrap_err().is_invalid_input());
        assert!(add_ingress_qdisc(u32::MAX).unwrap_err().is_invalid_input());
    }

    #[test]
    fn ingress_qdisc_view() {
        let req = add_ingress_qdisc(4).unwrap();
        let RouteNetlinkMessage::NewQueueDiscipline(m) = &req.msg else { panic!() };
        let q = Qdisc::from_message(&roundtrip(m)).unwrap();
        assert!(q.is_ingress());
        assert_eq!((q.index, q.handle), (4, INGRESS_HANDLE));
        assert!(Qdisc::from_message(&TcMessage::default()).is_err());
    }
}
