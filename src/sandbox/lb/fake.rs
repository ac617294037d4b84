//! [`LoadBalancer`] for [`FakeSandbox`]: the same planning and validation as the real one
//! (see [`super::model`]), applied to memory; the VIP goes on the fake's loopback.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Backend, LbChange, LoadBalancer, Protocol, PublishedPort, ServiceInfo, ServiceKey};
use crate::error::Result;
use crate::sandbox::{FakeSandbox, Sandbox};

impl FakeSandbox {
    fn lb_change(&self, plan: impl FnOnce(&super::LbState) -> Result<Vec<super::model::Op>>) -> Result<()> {
        self.interfaces()?; // Destroyed check, as every other fake call makes
        let mut st = self.lb_state().lock();
        let ops = plan(&st)?;
        st.apply(&ops);
        Ok(())
    }
}

impl LoadBalancer for FakeSandbox {
    fn add_service(&self, svc: &ServiceKey) -> Result<()> {
        let shared = self.lb_state().lock().vip_in_use(svc.vip);
        self.lb_change(|st| st.plan_add_service(svc))?;
        if !shared {
            match self.add_alias_ip(self.loopback_name(), IpNet::from(svc.vip)) {
                Err(e) if !e.is_already_exists() => {
                    let _ = self.lb_change(|st| st.plan_remove_service(svc));
                    return Err(e);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn remove_service(&self, svc: &ServiceKey) -> Result<()> {
        self.lb_change(|st| st.plan_remove_service(svc))?;
        if !self.lb_state().lock().vip_in_use(svc.vip) {
            match self.remove_alias_ip(self.loopback_name(), IpNet::from(svc.vip)) {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    fn add_backend(&self, svc: &ServiceKey, backend: &Backend) -> Result<()> {
        self.lb_change(|st| st.plan_add_backend(svc, backend))
    }

    fn remove_backend(&self, svc: &ServiceKey, ip: IpAddr, port: u16) -> Result<()> {
        self.lb_change(|st| st.plan_remove_backend(svc, (ip, port)))
    }

    fn drain_backend(&self, svc: &ServiceKey, ip: IpAddr, port: u16) -> Result<()> {
        self.lb_change(|st| st.plan_drain_backend(svc, (ip, port)))
    }

    fn publish_port(&self, port: &PublishedPort) -> Result<()> {
        self.lb_change(|st| st.plan_publish(port))
    }

    fn unpublish_port(&self, iface: &str, proto: Protocol, port: u16) -> Result<()> {
        self.lb_change(|st| st.plan_unpublish(iface, proto, port))
    }

    fn lb_apply(&self, changes: &[LbChange]) -> Result<()> {
        let vips = |st: &super::LbState| st.services.keys().map(|k| k.vip).collect::<std::collections::BTreeSet<_>>();
        let before = vips(&self.lb_state().lock());
        self.lb_change(|st| st.plan_many(changes))?;
        let after = vips(&self.lb_state().lock());
        super::netns::sync_aliases(self, &before, &after)
    }

    fn lb_services(&self) -> Result<Vec<ServiceInfo>> {
        self.interfaces()?;
        Ok(self.lb_state().lock().services())
    }

    fn lb_published(&self) -> Result<Vec<PublishedPort>> {
        self.interfaces()?;
        Ok(self.lb_state().lock().published())
    }

    fn lb_restore(&self) -> Result<Vec<ServiceInfo>> {
        self.lb_services()
    }

    fn lb_clear(&self) -> Result<()> {
        self.interfaces()?;
        let vips: Vec<IpAddr> = {
            let mut st = self.lb_state().lock();
            let v = st.services.keys().map(|k| k.vip).collect();
            *st = super::LbState::default();
            v
        };
        for vip in vips {
            let _ = self.remove_alias_ip(self.loopback_name(), IpNet::from(vip));
        }
        Ok(())
    }
}
