//! `shoal apply`: plan, show, ask (or take a saved plan as the approval),
//! then write and wait for convergence.
use super::args::{ApplyArgs, RepoArgs, ResolveModeArg};
use super::plan::{plan_run, print_text, PlanRun};
use super::settings;
use super::ExitStatus;
use anyhow::{bail, Result};
use shoal::apply::{self, ApplyOptions};
use shoal::engine::Engine;
use shoal::image::Credentials;
use shoal::pipeline::saved_plan::{self, SavedPlan};
use std::io::IsTerminal;

/// Take the source and scope of a saved plan into `args`.
fn restore_saved(file: &std::path::Path, args: &mut ApplyArgs) -> Result<SavedPlan> {
    let saved = SavedPlan::read(file)?;
    args.repo.repo = saved.source.repo.clone();
    args.repo.git_ref = saved.source.git_ref.clone();
    args.repo.stacks = saved.stacks.clone();
    args.repo.keep_versions = saved.keep_versions;
    args.prune.prune = saved.prune;
    args.images.resolve_image =
        <ResolveModeArg as clap::ValueEnum>::from_str(&saved.resolve_image, true)
            .map_err(|e| anyhow::anyhow!("{}: resolve_image: {e}", file.display()))?;
    Ok(saved)
}

/// Why a saved plan no longer holds: the source moved, or objects did.
fn saved_plan_moves(saved: &SavedPlan, args: &RepoArgs, p: &PlanRun) -> Result<Vec<String>> {
    let now = p.source.revision(&args.repo)?;
    if now != saved.source.revision {
        let short = |r: &str| r.chars().take(12).collect::<String>();
        return Ok(vec![format!(
            "the source moved: {} is at {}, the plan was made at {}",
            saved.source.repo,
            short(&now),
            short(&saved.source.revision)
        )]);
    }
    Ok(saved_plan::staleness(
        &saved.objects,
        &saved_plan::fingerprint(&p.pass.plan, &p.source.redactor),
    ))
}

pub async fn run(mut args: ApplyArgs) -> Result<ExitStatus> {
    if args.clusters.given() {
        return super::clusters::apply(args).await;
    }
    let saved = match args.plan_file.clone() {
        Some(file) => Some((restore_saved(&file, &mut args)?, file)),
        None => None,
    };
    let p = plan_run(&args.repo, args.prune.prune, &args.images).await?;
    if let Some((saved, file)) = &saved {
        let moves = saved_plan_moves(saved, &args.repo, &p)?;
        if !moves.is_empty() {
            eprintln!(
                "error: {} no longer holds; nothing was changed. Plan again to review what changed:",
                file.display()
            );
            for m in moves {
                eprintln!("  {}", p.source.redactor.redact(&m));
            }
            return Ok(ExitStatus::Error);
        }
    }
    print_text(&p, settings::color(&args.repo));
    if p.denied() {
        eprintln!("\nerror: policies deny this plan; nothing was changed.");
        return Ok(ExitStatus::Denied);
    }
    if !p.pass.desired.errors.is_empty() {
        eprintln!(
            "\nerror: some stacks failed to load; nothing was changed. Fix them, or limit the run with --stack."
        );
        return Ok(ExitStatus::Error);
    }
    if !p.pass.plan.has_changes() {
        return Ok(ExitStatus::Ok);
    }
    // A saved plan was reviewed already: applying it is the approval.
    if !args.auto_approve && saved.is_none() && !confirm("Apply these changes?")? {
        return Ok(ExitStatus::Error);
    }
    let engine = Engine::connect().await?;
    match write(&engine, &p, &args).await? {
        Ok(writes) => println!("Apply complete: {writes} writes."),
        Err(message) => {
            eprintln!("error: {message}");
            return Ok(ExitStatus::Error);
        }
    }
    Ok(ExitStatus::Ok)
}

/// Ask `question` at the terminal: only `yes` goes on; anything else says
/// the apply was cancelled. Without a terminal, an error that names
/// `--auto-approve`.
pub fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("stdin is not a terminal: pass --auto-approve to apply without asking");
    }
    print!("\n{question} Only 'yes' is accepted: ");
    use std::io::Write;
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    let yes = answer.trim() == "yes";
    if !yes {
        println!("Apply cancelled; nothing was changed.");
    }
    Ok(yes)
}

/// Write a planned run to `engine` in dependency order (waves, health
/// gates, rollback on failure when asked) and record it in the stacks'
/// history: the number of writes, or what went wrong, for people (the
/// run then exits 1). Errors of the engine itself come back as `Err`.
pub async fn write(
    engine: &Engine,
    p: &PlanRun,
    args: &ApplyArgs,
) -> Result<std::result::Result<usize, String>> {
    let registry_auth = if args.registry.with_registry_auth {
        Some(Credentials::from_env()?)
    } else {
        None
    };
    let live = std::io::stdout().is_terminal();
    let opts = ApplyOptions {
        wait: !args.no_wait,
        timeout: args.timeout,
        registry_auth,
        rollback_on_failure: args.rollback_on_failure,
        live_progress: live,
        ..ApplyOptions::default()
    };
    let progress = |line: &str| apply::waves::print_progress(line, live);
    let order = apply::Order::from_desired(&p.pass.desired);
    let result = apply::apply_ordered(engine, &p.pass.plan, &order, &opts, &progress).await;
    super::history::record(engine, p, result.as_ref().err()).await;
    let redact = |e: &dyn std::fmt::Display| p.source.redactor.redact(&e.to_string());
    Ok(match result {
        Ok(report) if !report.not_converged.is_empty() => Err(format!(
            "these services did not converge: {}",
            report.not_converged.join(", ")
        )),
        Ok(report) => Ok(report.writes),
        Err(e) if e.report().is_some() && !e.rolled_back() => Err(format!(
            "{}\nwhat this run wrote stays as it is (--rollback-on-failure restores the specs before the run)",
            redact(&e)
        )),
        Err(e) => Err(redact(&e)),
    })
}
