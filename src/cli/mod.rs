//! The `shoal` command line: run the parsed command and turn its outcome
//! into an exit status. One module per command; flags are in [`args`],
//! what they resolve to in [`settings`].
pub mod agent;
pub mod apply;
pub mod args;
pub mod clusters;
pub mod history;
pub mod plan;
pub mod policy;
pub mod rollback;
pub mod settings;
pub mod validate;

use anyhow::Result;
use args::{Cli, Command, CompletionsArgs, HealthcheckArgs, PolicyCommand};
use std::process::ExitCode;

/// How a run ended, as scripts read it (shared by `plan` and `apply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Done; nothing (more) to change.
    Ok = 0,
    /// An error, a stack that failed to load, or a cancelled apply.
    Error = 1,
    /// `plan --detailed-exitcode`: something would change.
    Changes = 2,
    /// The policies deny the plan.
    Denied = 3,
}

impl From<ExitStatus> for ExitCode {
    fn from(status: ExitStatus) -> ExitCode {
        ExitCode::from(status as u8)
    }
}

/// Run `cli` on a fresh async runtime; an error is printed with its causes.
pub fn run(cli: Cli) -> ExitStatus {
    // Every Engine::connect of this process talks to the engine chosen here.
    shoal::engine::endpoint::select(shoal::engine::endpoint::EngineSelection {
        host: cli.host.clone(),
        context: cli.context.clone(),
        insecure_skip_tls_verify: cli.insecure_skip_tls_verify,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitStatus::Error;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Plan(args) => plan::run(args).await,
            Command::Apply(args) => apply::run(args).await,
            Command::Validate(args) => validate::run(args),
            Command::Policy(PolicyCommand::Test(args)) => policy::test(args),
            Command::Agent(args) => agent::run(*args).await,
            Command::Rollback(args) => rollback::run(args).await,
            Command::History(args) => history::run(args).await,
            Command::Completions(args) => completions(args),
            Command::Healthcheck(args) => healthcheck(args),
        }
    });
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        for cause in e.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        ExitStatus::Error
    })
}

fn completions(args: CompletionsArgs) -> Result<ExitStatus> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    // Written through `print!`, like every other output, so a closed pipe
    // ends as quietly (see `quiet_on_closed_output` in main.rs).
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "shoal", &mut script);
    print!("{}", String::from_utf8_lossy(&script));
    Ok(ExitStatus::Ok)
}

/// Exit 0 when healthy, 1 (with the reason on stderr) otherwise.
fn healthcheck(args: HealthcheckArgs) -> Result<ExitStatus> {
    shoal::agent::healthcheck::check(&args.url, args.timeout)?;
    Ok(ExitStatus::Ok)
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
