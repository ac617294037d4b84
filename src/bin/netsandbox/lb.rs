//! `netsandbox lb …`: the load balancer of a sandbox (services, backends, drain, show).

use clap::{Args, Subcommand};
use netsandbox::Result;
use netsandbox::sandbox::NetnsSandbox;
use netsandbox::sandbox::lb::{Backend, BackendState, LoadBalancer, Protocol, ServiceInfo, ServiceKey};
use netsandbox::validate::parse_ip;
use serde_json::{Value, json};

use crate::output::Out;

#[derive(Debug, Subcommand)]
pub enum LbAction {
    /// Add or delete a service (VIP, protocol, port).
    Service {
        #[command(subcommand)]
        action: ServiceAction,
    },
    /// Add, delete or drain a backend of a service.
    Backend {
        #[command(subcommand)]
        action: BackendAction,
    },
    /// Show services and backends, read back from the kernel.
    Show {
        /// Sandbox name.
        key: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServiceAction {
    /// Add a service: its VIP goes on the sandbox's loopback.
    Add(ServiceArgs),
    /// Delete a service with its backends.
    Del(ServiceArgs),
}

#[derive(Debug, Subcommand)]
pub enum BackendAction {
    /// Add a backend.
    Add {
        #[command(flatten)]
        b: BackendArgs,
        /// Weight (1..=256): its share of new connections.
        #[arg(long, default_value_t = 1)]
        weight: u32,
    },
    /// Delete a backend.
    Del(BackendArgs),
    /// Stop new connections to a backend; established ones continue.
    Drain(BackendArgs),
}

#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Sandbox name.
    pub key: String,
    /// Virtual IP (IPv4 or IPv6).
    pub vip: String,
    /// Port.
    pub port: u16,
    /// Protocol.
    #[arg(long, default_value = "tcp")]
    pub proto: String,
}

#[derive(Debug, Args)]
pub struct BackendArgs {
    #[command(flatten)]
    pub svc: ServiceArgs,
    /// Backend IP.
    pub ip: String,
    /// Backend port.
    pub backend_port: u16,
}

impl LbAction {
    /// The sandbox name the command is about.
    pub fn key(&self) -> &str {
        match self {
            LbAction::Service { action: ServiceAction::Add(a) | ServiceAction::Del(a) } => &a.key,
            LbAction::Backend {
                action: BackendAction::Add { b, .. } | BackendAction::Del(b) | BackendAction::Drain(b),
            } => &b.svc.key,
            LbAction::Show { key } => key,
        }
    }
}

fn service(a: &ServiceArgs) -> Result<ServiceKey> {
    Ok(ServiceKey { vip: parse_ip(&a.vip)?, proto: a.proto.parse::<Protocol>()?, port: a.port })
}

fn services_json(services: &[ServiceInfo]) -> Value {
    Value::Array(
        services
            .iter()
            .map(|s| {
                json!({
                    "vip": s.service.vip.to_string(),
                    "proto": s.service.proto.to_string(),
                    "port": s.service.port,
                    "backends": s.backends.iter().map(|b| json!({
                        "ip": b.backend.ip.to_string(),
                        "port": b.backend.port,
                        "weight": b.backend.weight,
                        "draining": b.state == BackendState::Draining,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

fn services_text(services: &[ServiceInfo]) -> String {
    let mut t = String::new();
    for s in services {
        t.push_str(&format!("service {}\n", s.service));
        for b in &s.backends {
            let state = if b.state == BackendState::Draining { " draining" } else { "" };
            t.push_str(&format!(
                "  backend {} port {} weight {}{state}\n",
                b.backend.ip, b.backend.port, b.backend.weight
            ));
        }
    }
    t.trim_end().to_owned()
}

/// Runs one `lb` command; `key` turns a sandbox name into its key.
pub fn run(action: &LbAction, out: Out, key: &dyn Fn(&str) -> Result<String>) -> Result<()> {
    match action {
        LbAction::Service { action } => {
            let (a, add) = match action {
                ServiceAction::Add(a) => (a, true),
                ServiceAction::Del(a) => (a, false),
            };
            let svc = service(a)?;
            let sb = NetnsSandbox::open(&key(&a.key)?)?;
            if add {
                sb.add_service(&svc)?
            } else {
                sb.remove_service(&svc)?
            }
            let verb = if add { "added" } else { "deleted" };
            out.done(json!({ verb: svc.to_string() }), &format!("{verb} service {svc}"));
        }
        LbAction::Backend { action } => {
            let (b, verb) = match action {
                BackendAction::Add { b, .. } => (b, "added"),
                BackendAction::Del(b) => (b, "deleted"),
                BackendAction::Drain(b) => (b, "drained"),
            };
            let svc = service(&b.svc)?;
            let ip = parse_ip(&b.ip)?;
            let sb = NetnsSandbox::open(&key(&b.svc.key)?)?;
            match action {
                BackendAction::Add { weight, .. } => {
                    sb.add_backend(&svc, &Backend { ip, port: b.backend_port, weight: *weight })?
                }
                BackendAction::Del(_) => sb.remove_backend(&svc, ip, b.backend_port)?,
                BackendAction::Drain(_) => sb.drain_backend(&svc, ip, b.backend_port)?,
            }
            out.done(
                json!({ verb: { "service": svc.to_string(), "ip": ip.to_string(), "port": b.backend_port } }),
                &format!("{verb} backend {ip} port {} of {svc}", b.backend_port),
            );
        }
        LbAction::Show { key: name } => {
            let services = NetnsSandbox::open(&key(name)?)?.lb_restore()?;
            out.value(services_json(&services), || services_text(&services));
        }
    }
    Ok(())
}
