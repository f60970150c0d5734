//! `shoal history`: the commits applied to a stack, from its state record
//! in the swarm; and recording an apply from git there.
use super::args::HistoryArgs;
use super::plan::PlanRun;
use super::ExitStatus;
use anyhow::Result;
use shoal::apply;
use shoal::engine::Engine;

/// Record an apply from a git source in the history of each stack it
/// changed (`shoal history`, `shoal rollback`); a directory has no commit
/// to go back to. A record that cannot be written is a warning.
pub async fn record(engine: &Engine, p: &PlanRun, error: Option<&apply::ApplyError>) {
    use shoal::agent::{history, record, status::Outcome};
    let Some(commit) = &p.source.commit else {
        return;
    };
    let split = shoal::agent::split_by_stack(&p.pass.plan, std::iter::empty());
    for (stack, plan) in split.iter().filter(|(_, plan)| plan.has_changes()) {
        let mut rec = match record::load(&engine.docker, stack).await {
            Ok(r) => r.unwrap_or_default(),
            Err(e) => {
                eprintln!("warning: stack {stack}: cannot read its state record: {e}");
                continue;
            }
        };
        let (outcome, text) = match error {
            None => {
                let s = plan.summary();
                let text = format!(
                    "{} to create, {} to update, {} to delete",
                    s.create, s.update, s.delete
                );
                rec.commit = Some(commit.id.clone());
                rec.failed = None;
                rec.error = None;
                (Outcome::Applied, text)
            }
            Some(e) => {
                let text = p.source.redactor.redact(&e.to_string());
                if e.rolled_back() {
                    rec.failed = Some(commit.id.clone());
                    (Outcome::RolledBack, text)
                } else {
                    (Outcome::ApplyFailed, text)
                }
            }
        };
        rec.outcome = Some(outcome);
        rec.attempted = Some(commit.id.clone());
        history::push(
            &mut rec.history,
            history::Entry::new(&commit.id, outcome, &text, "apply"),
        );
        if let Err(e) = record::save(&engine.docker, stack, &rec).await {
            eprintln!("warning: stack {stack}: cannot write its state record: {e}");
        }
    }
}

/// `shoal history --stack NAME [--json]`.
pub async fn run(args: HistoryArgs) -> Result<ExitStatus> {
    let engine = Engine::connect().await?;
    let rec = shoal::agent::record::load(&engine.docker, &args.stack)
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .unwrap_or_default();
    if args.json {
        let doc = serde_json::json!({
            "stack": args.stack, "commit": rec.commit, "failed_commit": rec.failed,
            "history": rec.history,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        use shoal::agent::history;
        print!(
            "{}",
            history::render(
                &args.stack,
                &rec.history,
                rec.commit.as_deref(),
                rec.failed.as_deref()
            )
        );
    }
    Ok(ExitStatus::Ok)
}
