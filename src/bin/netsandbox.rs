//! `netsandbox`: build, inspect and tear down network sandboxes from the shell.
//!
//! Every command is a separate process: all state lives in the kernel and in the pin files under
//! `--base`, so `inspect` in one process shows what `create`/`add-*` did in another.

// A binary's root file resolves modules beside itself, so point at its own folder.
#[path = "netsandbox/cli.rs"]
mod cli;
#[path = "netsandbox/commands.rs"]
mod commands;
#[path = "netsandbox/demo.rs"]
mod demo;
#[path = "netsandbox/lb.rs"]
mod lb;
#[path = "netsandbox/output.rs"]
mod output;

use clap::Parser;
use netsandbox::{Error, netns};

use cli::Cli;

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let code = match run(&cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netsandbox: {e}");
            exit_code(&e)
        }
    };
    std::process::exit(code);
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    // RUST_LOG still wins when set, so a user can narrow logs to one module.
    env_logger::Builder::new().filter_level(level).parse_default_env().format_target(false).init();
}

/// Runs the command, inside `--netns-root` when given, and returns the process exit code.
fn run(cli: &Cli) -> netsandbox::Result<i32> {
    match &cli.netns_root {
        // The whole command runs on a thread inside that namespace: sandboxes created there take
        // it as their origin, and the machine's own namespace is never touched.
        Some(path) => {
            let root = netns::NetNs::from_path(path)?;
            netns::run_in_result(&root, || commands::dispatch(cli))
        }
        None => commands::dispatch(cli),
    }
}

/// Distinct exit codes so scripts can tell bad input from a missing or duplicate sandbox.
fn exit_code(e: &Error) -> i32 {
    if e.is_invalid_input() {
        2
    } else if e.is_not_found() {
        3
    } else if e.is_already_exists() {
        4
    } else {
        1
    }
}
