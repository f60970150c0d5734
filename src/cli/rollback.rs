//! `shoal rollback`: the same plan, policy and apply path as `shoal apply`
//! at an earlier good commit of one stack (from its history).
use super::args::{ApplyArgs, PruneArgs, RegistryAuthArgs, RollbackArgs};
use super::settings;
use super::ExitStatus;
use anyhow::{bail, Result};
use shoal::agent::record::{self, StackRecord};
use shoal::agent::{history, status::Outcome};
use shoal::engine::Engine;
use shoal::source::Location;

/// `shoal rollback`: the same plan, policy and apply path as `shoal apply`
/// at an earlier commit of one stack; the commit rolled back from is
/// marked failed in the stack's record so the agent does not re-apply it.
pub async fn run(args: RollbackArgs) -> Result<ExitStatus> {
    let [stack] = args.repo.stacks.as_slice() else {
        bail!("rollback works on one stack: give --stack NAME once");
    };
    let stack = stack.clone();
    let Location::Git(git) = settings::locate(&args.repo, None)? else {
        bail!(
            "--repo {} is a directory, which has no earlier versions to go back to: rollback re-applies a commit of a git repository (--repo URL, the commits `shoal history --stack {stack}` lists). With a directory, restore its files and run shoal apply",
            args.repo.repo
        );
    };
    let engine = Engine::connect().await?;
    let rec = record::load(&engine.docker, &stack)
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .unwrap_or_default();
    let target = target(&args, &rec, &stack)?;
    println!("Rolling stack {stack} back to {target}.\n");
    let mut repo = args.repo.clone();
    repo.git_ref = Some(target.clone());
    let apply_args = ApplyArgs {
        plan_file: None,
        repo,
        images: args.images.clone(),
        registry: RegistryAuthArgs {
            with_registry_auth: false,
        },
        auto_approve: args.auto_approve,
        prune: PruneArgs { prune: false },
        no_wait: false,
        timeout: args.timeout,
        rollback_on_failure: true,
        clusters: Default::default(),
        allow: Default::default(),
    };
    let code = super::apply::run(apply_args).await?;
    if code != ExitStatus::Ok {
        return Ok(code);
    }
    let resolved = git.resolve(Some(&target))?.id;
    // The commit before the rollback, as the record said before the apply.
    let from = rec.commit.as_deref();
    record_rollback(&engine, &stack, &resolved, from).await?;
    if let Some(f) = from {
        println!(
            "Stack {stack} is at {resolved}; {f} is marked failed, so an agent does not apply it again until a new commit or POST /sync?stack={stack}."
        );
    }
    Ok(ExitStatus::Ok)
}

/// The commit to go back to: `--to`, else the good commit `--steps`
/// (default 1) back in the stack's history.
fn target(args: &RollbackArgs, rec: &StackRecord, stack: &str) -> Result<String> {
    if let Some(to) = &args.to {
        return Ok(to.clone());
    }
    let steps = args.steps.unwrap_or(1).max(1);
    match history::steps_back(&rec.history, rec.commit.as_deref(), steps) {
        Some(e) => Ok(e.commit.clone()),
        None => bail!(
            "stack {stack}: no good commit {steps} step(s) back in its history ({} entries; see `shoal history --stack {stack}`); give --to COMMIT",
            rec.history.len()
        ),
    }
}

/// `shoal apply` recorded the commit `resolved`; say it was a rollback,
/// and from what (`from`, then marked failed).
async fn record_rollback(
    engine: &Engine,
    stack: &str,
    resolved: &str,
    from: Option<&str>,
) -> Result<()> {
    let mut rec = record::load(&engine.docker, stack)
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .unwrap_or_default();
    if from != Some(resolved) {
        rec.failed = from.map(str::to_string);
    }
    rec.commit = Some(resolved.to_string());
    rec.outcome = Some(Outcome::Applied);
    rec.error = None;
    let note = match from {
        Some(f) => format!("rollback from {}", &f[..f.len().min(12)]),
        None => "rollback".to_string(),
    };
    match rec.history.first_mut() {
        Some(e) if e.commit == resolved => {
            e.by = "rollback".into();
            e.summary = format!("{note}: {}", e.summary);
        }
        _ => history::push(
            &mut rec.history,
            history::Entry::new(resolved, Outcome::Applied, &note, "rollback"),
        ),
    }
    record::save(&engine.docker, stack, &rec)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    Ok(())
}
