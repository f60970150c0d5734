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
    quiet_on_closed_output();
    cli::run(cli::args::Cli::parse()).into()
}

/// `shoal plan | head`: when whoever reads the output goes away, stop
/// quietly with the status of a process killed by SIGPIPE (141), as other
/// command-line tools do, instead of a panic and a backtrace. (SIGPIPE
/// itself stays ignored: shoal writes to pipes of its own children, the
/// policy worker and ssh, and must survive them closing.)
fn quiet_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        // Only std's own `print!`/`println!` panic ("failed printing to
        // stdout: Broken pipe (os error 32)"): any other broken pipe is a
        // real failure and keeps its panic.
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info)
    }));
}
