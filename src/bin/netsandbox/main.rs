//! `netsandbox`: build, inspect and tear down network sandboxes from the shell.
//!
//! Every command is a separate process: all state lives in the kernel and in the pin files under
//! `--base`, so `inspect` in one process shows what `create`/`add-*` did in another.

mod cli;
mod commands;
mod demo;
mod lb;
mod output;

use clap::Parser;
use netsandbox::netns;

use cli::Cli;
use output::Failure;

fn main() {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    // Input is checked before any system call, so bad input changes nothing anywhere.
    let code = match commands::precheck(&cli).and_then(|()| run(&cli)) {
        Ok(code) => code,
        Err(f) => f.report(cli.json),
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
fn run(cli: &Cli) -> Result<i32, Failure> {
    match &cli.netns_root {
        // The whole command runs on a thread inside that namespace: sandboxes created there take
        // it as their origin, and the machine's own namespace is never touched.
        Some(path) => {
            let root = netns::NetNs::from_path(path)?;
            netns::run_in(&root, || commands::dispatch(cli))?
        }
        None => commands::dispatch(cli),
    }
}
