//! `shoal policy test`: the Rego unit tests of the repository's policies.
use super::args::RepoArgs;
use super::settings::Source;
use super::ExitStatus;
use anyhow::Result;

pub fn test(args: RepoArgs) -> Result<ExitStatus> {
    let source = Source::open(&args)?;
    let report = shoal::policy::run_tests(&source.tree);
    print!("{}", report.render());
    Ok(if report.passed() {
        ExitStatus::Ok
    } else {
        ExitStatus::Error
    })
}
