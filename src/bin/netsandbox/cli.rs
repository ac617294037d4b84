//! The command line, declared with clap's derive API. Doc comments are the `--help` texts.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Linux network sandboxes (network namespaces pinned by bind mounts) from the shell.
///
/// Sandboxes are named by KEY, a file name under --base. Every command reads its state back from
/// the kernel, so commands can run in any order from separate processes.
#[derive(Debug, Parser)]
#[command(name = "netsandbox", version)]
pub struct Cli {
    /// Directory holding the sandbox pins [default: /run/netsandbox]. The demo, given --base,
    /// works in a fresh directory below it.
    #[arg(long, global = true, value_name = "DIR")]
    pub base: Option<PathBuf>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// More logging on stderr (-v info, -vv debug, -vvv trace); RUST_LOG also works.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Run the whole command inside this network namespace (a pinned nsfs file, e.g.
    /// /run/netns/NAME) instead of the caller's: it becomes the sandboxes' origin namespace.
    #[arg(long, global = true, value_name = "PATH")]
    pub netns_root: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a sandbox: a new network namespace pinned at <base>/KEY, loopback up.
    Create {
        /// Sandbox name (a file name under --base).
        key: String,
        /// Disable IPv6 inside the sandbox.
        #[arg(long)]
        no_ipv6: bool,
    },
    /// List the sandboxes pinned under --base.
    List,
    /// Show a sandbox's interfaces, addresses, routes, neighbors and counters, read from the kernel.
    Inspect {
        /// Sandbox name.
        key: String,
    },
    /// Move an existing link from the origin namespace into the sandbox (or create a bridge inside
    /// with --bridge), rename it PREFIX<n> and configure it.
    AddInterface {
        /// Sandbox name.
        key: String,
        /// Link to move in, in the origin namespace (ignored with --bridge).
        #[arg(required_unless_present = "bridge")]
        src: Option<String>,
        #[command(flatten)]
        iface: IfaceArgs,
        /// Create a bridge inside the sandbox instead of moving a link in.
        #[arg(long)]
        bridge: bool,
    },
    /// Create a veth pair: HOST_NAME stays in the origin namespace, PREFIX<n> is born inside.
    AddVeth {
        /// Sandbox name.
        key: String,
        /// Name of the host end, in the origin namespace.
        host_name: String,
        #[command(flatten)]
        iface: IfaceArgs,
        /// Give the host end no IPv6 link-local address (for bridge ports; saves the kernel
        /// per-interface IPv6 work in the origin namespace).
        #[arg(long)]
        no_host_link_local: bool,
        /// Make the host end a port of this bridge in the origin namespace (see `bridge add`).
        #[arg(long, value_name = "BRIDGE")]
        host_master: Option<String>,
        /// Hairpin mode on that bridge port (needs --host-master).
        #[arg(long, requires = "host_master")]
        host_hairpin: bool,
    },
    /// Create or delete a bridge in the origin namespace (the --netns-root namespace, else the
    /// caller's), for `add-veth --host-master`.
    Bridge {
        #[command(subcommand)]
        action: BridgeAction,
    },
    /// Return an interface to its origin namespace under its old name (a created one is deleted).
    RemoveInterface {
        /// Sandbox name.
        key: String,
        /// Interface name inside the sandbox.
        name: String,
    },
    /// Add a default route via IP (IPv4 or IPv6), through the interface that reaches it.
    SetGateway {
        /// Sandbox name.
        key: String,
        /// Gateway address.
        ip: String,
    },
    /// Remove the default route via IP.
    UnsetGateway {
        /// Sandbox name.
        key: String,
        /// Gateway address.
        ip: String,
    },
    /// Add a static route.
    AddRoute(RouteArgs),
    /// Remove a static route.
    RemoveRoute(RouteArgs),
    /// Add a permanent neighbor (ARP/NDP) entry, or an fdb entry on a vxlan device with --fdb.
    AddNeighbor {
        /// Sandbox name.
        key: String,
        /// The neighbor's IP (or the remote VTEP with --fdb).
        ip: String,
        /// The neighbor's MAC address (aa:bb:cc:dd:ee:ff).
        mac: String,
        /// Interface inside the sandbox (default: the one that reaches IP; required with --fdb).
        #[arg(long, value_name = "NAME")]
        link: Option<String>,
        /// A bridge forwarding-database entry on a vxlan device instead of ARP/NDP.
        #[arg(long)]
        fdb: bool,
        /// Replace an existing entry instead of failing.
        #[arg(long)]
        force: bool,
    },
    /// Delete a neighbor entry.
    DeleteNeighbor {
        /// Sandbox name.
        key: String,
        /// The neighbor's IP.
        ip: String,
        /// The neighbor's MAC address.
        mac: String,
    },
    /// Add or remove an extra address (e.g. a VIP on the loopback).
    Alias {
        #[command(subcommand)]
        action: AliasAction,
    },
    /// Apply the kernel tweaks for sandbox roles (IPVS keys); keys this kernel lacks are reported.
    Tweaks {
        /// Sandbox name.
        key: String,
        /// Roles.
        #[arg(required = true, value_enum)]
        roles: Vec<Role>,
    },
    /// Run a program inside the sandbox's network namespace and exit with its status.
    Exec {
        /// Sandbox name.
        key: String,
        /// The program and its arguments (put them after `--`).
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// Destroy a sandbox: delete its interfaces (moved ones go back to the origin) and its pin.
    Destroy {
        /// Sandbox names. Several are destroyed together, their veth pairs deleted in one kernel
        /// batch; if any is missing, none is destroyed.
        #[arg(required = true, num_args = 1..)]
        keys: Vec<String>,
    },
    /// Remove stale files under --base that are not pinned namespaces (left by a crash).
    Gc,
    /// Hand an interface of a sandbox to a VM through a TAP (or macvtap), and undo it.
    Vm {
        #[command(subcommand)]
        action: VmAction,
    },
    /// The sandbox's load balancer (nf_tables): services, backends, drain, show.
    Lb {
        #[command(subcommand)]
        action: crate::lb::LbAction,
    },
    /// Stream link, address, route and neighbor changes in sandboxes (all under --base when no
    /// KEY is given) as lines, or JSON lines with --json, until SIGINT/SIGTERM. One netlink
    /// socket watches them all; lost events are re-read and reported as "reconcile".
    Events {
        /// Sandbox names (default: every sandbox under --base when the command starts).
        keys: Vec<String>,
        /// Exit (status 0) once no event has come for MS milliseconds.
        #[arg(long, value_name = "MS")]
        until_quiet: Option<u64>,
    },
    /// Build two sandboxes on a bridge in a private namespace, check TCP between them over IPv4
    /// and IPv6, print each step with its time, and tear everything down.
    Demo,
}

/// Options shared by add-interface and add-veth.
#[derive(Debug, Args)]
pub struct IfaceArgs {
    /// Name prefix inside the sandbox; the lowest free index is appended.
    #[arg(long, default_value = "eth")]
    pub prefix: String,
    /// IPv4 address with prefix length, e.g. 198.18.0.2/16.
    #[arg(long, value_name = "CIDR")]
    pub address: Option<String>,
    /// IPv6 address with prefix length, e.g. 2001:db8::2/64.
    #[arg(long, value_name = "CIDR")]
    pub address6: Option<String>,
    /// MAC address, e.g. 02:42:c6:12:00:02.
    #[arg(long)]
    pub mac: Option<String>,
    /// MTU.
    #[arg(long)]
    pub mtu: Option<u32>,
    /// Enslave the interface to this bridge inside the sandbox.
    #[arg(long, value_name = "BR")]
    pub master: Option<String>,
}

/// A static route: destination and exactly one of a next hop or an interface.
#[derive(Debug, Args)]
pub struct RouteArgs {
    /// Sandbox name.
    pub key: String,
    /// Destination network, e.g. 203.0.113.0/24.
    pub cidr: String,
    /// Next hop (give exactly one of --via / --dev).
    #[arg(long, value_name = "IP")]
    pub via: Option<String>,
    /// Interface inside the sandbox, for a directly connected route.
    #[arg(long, value_name = "NAME")]
    pub dev: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BridgeAction {
    /// Create bridge NAME, up, with its addresses (IPv6 without DAD) and MTU.
    Add {
        /// Bridge name (an interface name, at most 15 bytes).
        name: String,
        /// An address with prefix length, IPv4 or IPv6 (repeatable), e.g. the sandboxes'
        /// gateway 198.18.255.254/16.
        #[arg(long = "address", value_name = "CIDR")]
        addresses: Vec<String>,
        /// MTU.
        #[arg(long)]
        mtu: Option<u32>,
        /// Succeed if the bridge exists already (adding the addresses it lacks, setting the MTU).
        #[arg(long)]
        exist_ok: bool,
    },
    /// Delete bridge NAME (its ports stay, released). A link that is not a bridge is refused.
    Del {
        /// Bridge name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AliasAction {
    /// Add an address to an interface.
    Add(AliasArgs),
    /// Remove an address added with `alias add`.
    Remove(AliasArgs),
}

#[derive(Debug, Args)]
pub struct AliasArgs {
    /// Sandbox name.
    pub key: String,
    /// Interface inside the sandbox (e.g. lo).
    pub ifname: String,
    /// Address with prefix length.
    pub cidr: String,
}

/// Sandbox roles with kernel tweaks.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Role {
    /// Ingress sandbox of a routing mesh.
    Ingress,
    /// Load-balancer sandbox.
    Lb,
}

impl Command {
    /// The sandbox names this command takes, checked before anything else runs.
    pub fn keys(&self) -> Vec<&str> {
        match self {
            Command::Create { key, .. }
            | Command::Inspect { key }
            | Command::AddInterface { key, .. }
            | Command::AddVeth { key, .. }
            | Command::RemoveInterface { key, .. }
            | Command::SetGateway { key, .. }
            | Command::UnsetGateway { key, .. }
            | Command::AddNeighbor { key, .. }
            | Command::DeleteNeighbor { key, .. }
            | Command::Tweaks { key, .. }
            | Command::Exec { key, .. } => vec![key],
            Command::AddRoute(r) | Command::RemoveRoute(r) => vec![&r.key],
            Command::Alias { action: AliasAction::Add(a) | AliasAction::Remove(a) } => vec![&a.key],
            Command::Destroy { keys } | Command::Events { keys, .. } => keys.iter().map(String::as_str).collect(),
            Command::Vm {
                action: VmAction::Attach { key, .. } | VmAction::Detach { key, .. } | VmAction::Inspect { key, .. },
            } => vec![key],
            Command::Lb { action } => vec![action.key()],
            Command::List | Command::Gc | Command::Demo | Command::Bridge { .. } => Vec::new(),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum VmAction {
    /// Connect a new persistent TAP (or macvtap) to IFACE for a VM: tc redirect (Kata), bridge
    /// (Virtlet) or macvtap. Prints what the guest must use (MAC, MTU, addresses, routes).
    Attach {
        /// Sandbox name.
        key: String,
        /// The sandbox's interface (e.g. the CNI veth eth0).
        iface: String,
        /// How to connect the TAP.
        #[arg(long, value_enum, default_value = "tc")]
        mode: VmMode,
        /// Queues (one per vCPU for multi-queue virtio-net).
        #[arg(long, default_value_t = 1)]
        queues: u16,
        /// Name of the TAP or macvtap (default nsvm<ifindex> / nsmvt<ifindex>).
        #[arg(long, value_name = "NAME")]
        tap: Option<String>,
        /// Name of the bridge in bridge mode (default nsbr<ifindex>).
        #[arg(long, value_name = "NAME")]
        bridge: Option<String>,
        /// Queues without IFF_VNET_HDR.
        #[arg(long)]
        no_vnet_hdr: bool,
    },
    /// Undo `vm attach`: the namespace returns to its state before (addresses, routes, MAC).
    Detach {
        /// Sandbox name.
        key: String,
        /// The attached interface.
        iface: String,
    },
    /// Show the VM attachment on IFACE (or every one), rebuilt from the kernel.
    Inspect {
        /// Sandbox name.
        key: String,
        /// The attached interface; all when omitted.
        iface: Option<String>,
    },
}

/// `vm attach --mode`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VmMode {
    /// Ingress qdiscs and u32 + mirred redirects between veth and TAP (Kata's default).
    Tc,
    /// A bridge joining veth and TAP; the veth's IP configuration goes to the guest (Virtlet).
    Bridge,
    /// A bridge-mode macvtap on the veth with the veth's MAC.
    Macvtap,
}
