//! The `shoal` binary: parse the command line, run it (`cli`), exit with
//! its status. Also the policy sandbox's worker, when started as one.
mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Policies run in a child of this binary, within a time and memory
    // budget (shoal::policy::sandbox); this is that child.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(shoal::policy::sandbox::WORKER_ARG) {
        return ExitCode::from(shoal::policy::sandbox::worker_main(&args[2..]));
    }
    match std::env::current_exe() {
        Ok(exe) => shoal::policy::sandbox::use_worker(exe),
        Err(e) => eprintln!("warning: policies run without a budget: cannot find this binary: {e}"),
    }
    cli::run(cli::args::Cli::parse()).into()
}
