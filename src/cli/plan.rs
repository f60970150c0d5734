//! `shoal plan`: one planning pass, printed as text, JSON or markdown, and
//! optionally saved for `shoal apply FILE`. The output helpers here are
//! shared by `apply` and `validate`.
use super::args::{Format, ImageArgs, PlanArgs, RepoArgs};
use super::settings::{self, Source};
use super::ExitStatus;
use anyhow::Result;
use shoal::compose::EnvPolicy;
use shoal::engine::Engine;
use shoal::pipeline::saved_plan::{self, SavedPlan, SavedSource};
use shoal::pipeline::{self, RepoPlan};
use shoal::policy::Violation;
use shoal::render::{self, violations_text};
use std::collections::BTreeMap;

/// A planning pass of the CLI (or `validate`'s check without a swarm)
/// and the source it read, before rendering.
pub struct PlanRun {
    /// Shared by the clusters of one `--cluster` run: one source, one
    /// commit, one redactor for all of them.
    pub source: std::sync::Arc<Source>,
    pub pass: RepoPlan,
    /// The pass's verdicts as every output shows them: all violations,
    /// the same by stack, and the policy errors as messages.
    violations: Vec<Violation>,
    violations_by_stack: BTreeMap<String, Vec<Violation>>,
    policy_errors: Vec<String>,
}

impl PlanRun {
    pub fn new(source: std::sync::Arc<Source>, pass: RepoPlan) -> PlanRun {
        let (violations, policy_errors) = pass.violations_and_errors();
        PlanRun {
            source,
            violations_by_stack: pass.violations_by_stack(),
            pass,
            violations,
            policy_errors,
        }
    }

    pub fn denied(&self) -> bool {
        !self.policy_errors.is_empty() || self.violations.iter().any(Violation::blocks)
    }

    /// The policy checks for people (empty when there is nothing to say),
    /// through the redactor.
    pub fn violations_text(&self, color: bool) -> String {
        let text = violations_text(&self.violations, &self.policy_errors, color);
        self.source.redactor.redact(&text)
    }
}

pub async fn plan_run(args: &RepoArgs, prune: bool, images: &ImageArgs) -> Result<PlanRun> {
    let source = std::sync::Arc::new(Source::open(args)?);
    let scope = settings::scope(args, prune);
    let env = settings::stack_env(args, EnvPolicy::All);
    let (run, _engine) = plan_source(source, &scope, &env, Engine::connect, images).await?;
    Ok(run)
}

/// Load `source` within `scope` and plan it against the engine `connect`
/// reaches (connected only once the repository loads); the engine comes
/// back with the plan, for an apply.
pub async fn plan_source<F, C>(
    source: std::sync::Arc<Source>,
    scope: &pipeline::Scope,
    env: &shoal::compose::Vars,
    connect: C,
    images: &ImageArgs,
) -> Result<(PlanRun, Engine)>
where
    C: FnOnce() -> F,
    F: std::future::Future<Output = Result<Engine, shoal::engine::EngineError>>,
{
    let desired = pipeline::load(&source.tree, scope, env)
        .map_err(|e| anyhow::anyhow!(source.redactor.redact(&e.to_string())))?;
    let engine = connect().await?;
    let mut pass =
        pipeline::plan(&source.tree, desired, &engine, scope, images.mode(), None).await?;
    source.redactor.mark_sensitive(&mut pass.plan);
    Ok((PlanRun::new(source, pass), engine))
}

fn commit_line(source: &Source) -> Option<String> {
    source
        .commit
        .as_ref()
        .map(|c| format!("stacks at {} \"{}\"", c.short, c.summary))
}

/// Print the plan for people. Everything goes through the redactor: no
/// decrypted value reaches the terminal.
pub fn print_text(p: &PlanRun, color: bool) {
    let r = &p.source.redactor;
    if let Some(line) = commit_line(&p.source) {
        println!("{}\n", r.redact(&line));
    }
    print_load_report(p);
    print!(
        "{}",
        r.redact(&render::text(&p.pass.plan, &render::TextOptions { color }))
    );
    for name in &p.pass.notes.unmanaged {
        println!(
            "note: stack {name} is on the swarm but not in the repository; --prune would delete it"
        );
    }
    let text = p.violations_text(color);
    if !text.is_empty() {
        print!("\n{text}");
    }
}

/// Loader warnings and per-stack load errors, on stderr.
pub fn print_load_report(p: &PlanRun) {
    let r = &p.source.redactor;
    for stack in &p.pass.desired.stacks {
        for w in &stack.warnings {
            eprintln!(
                "{}",
                r.redact(&format!("warning: stack {}: {w}", stack.name))
            );
        }
    }
    for e in &p.pass.desired.errors {
        eprintln!(
            "{}\n  (stack {} is left as it is on the swarm)",
            r.redact(&format!("error: {e}")),
            e.stack
        );
    }
}

/// The plan as its JSON document, through the redactor like text.
pub fn json_doc(p: &PlanRun) -> serde_json::Value {
    with_report(p, |report| {
        let mut doc = render::json::json(report);
        p.source.redactor.redact_json(&mut doc);
        doc
    })
}

/// What the run has to say besides the plan, for every output format.
fn with_report<T>(p: &PlanRun, f: impl FnOnce(&render::Report) -> T) -> T {
    let stack_errors = stack_errors(p);
    f(&report(p, &stack_errors))
}

/// The stacks that failed to load, as (stack, message), for [`report`].
pub fn stack_errors(p: &PlanRun) -> Vec<(String, String)> {
    p.pass
        .desired
        .errors
        .iter()
        .map(|e| (e.stack.clone(), e.message.clone()))
        .collect()
}

/// `p` as the report every output format renders.
pub fn report<'a>(p: &'a PlanRun, stack_errors: &'a [(String, String)]) -> render::Report<'a> {
    render::Report {
        plan: &p.pass.plan,
        commit: p.source.commit.as_ref().map(|c| render::Commit {
            id: &c.id,
            short: &c.short,
            summary: &c.summary,
        }),
        stack_errors,
        policy_errors: &p.policy_errors,
        violations: &p.violations,
        violations_by_stack: &p.violations_by_stack,
        unmanaged: &p.pass.notes.unmanaged,
    }
}

/// The plan as a pull-request comment, through the redactor like text.
pub fn markdown_doc(p: &PlanRun) -> String {
    with_report(p, |report| {
        p.source
            .redactor
            .redact(&render::markdown::markdown(report))
    })
}

pub fn save_plan(file: &std::path::Path, args: &PlanArgs, p: &PlanRun) -> Result<()> {
    let saved = SavedPlan {
        format: saved_plan::FORMAT.to_string(),
        source: SavedSource {
            repo: saved_plan::repo_without_credentials(&args.repo.repo),
            git_ref: args.repo.git_ref.clone(),
            revision: p.source.revision(&args.repo.repo)?,
        },
        stacks: args.repo.stacks.clone(),
        prune: args.prune.prune,
        resolve_image: args.images.mode().to_string(),
        keep_versions: args.repo.keep_versions,
        objects: saved_plan::fingerprint(&p.pass.plan, &p.source.redactor),
        plan: json_doc(p),
    };
    saved.write(file)?;
    Ok(())
}

pub async fn run(args: PlanArgs) -> Result<ExitStatus> {
    if args.clusters.given() {
        return super::clusters::plan(args).await;
    }
    let p = plan_run(&args.repo, args.prune.prune, &args.images).await?;
    if let Some(file) = &args.out {
        save_plan(file, &args, &p)?;
    }
    match args.output.format() {
        Format::Json => println!("{}", serde_json::to_string_pretty(&json_doc(&p))?),
        Format::Markdown => {
            print_load_report(&p);
            print!("{}", markdown_doc(&p));
        }
        Format::Text => print_text(&p, settings::color(&args.repo)),
    }
    Ok(status(&p, args.detailed_exitcode))
}

/// How a plan run ends: denied, else a stack failed, else (with
/// `--detailed-exitcode`) changes, else ok.
pub fn status(p: &PlanRun, detailed_exitcode: bool) -> ExitStatus {
    if p.denied() {
        ExitStatus::Denied
    } else if !p.pass.desired.errors.is_empty() {
        ExitStatus::Error
    } else if detailed_exitcode && p.pass.plan.has_changes() {
        ExitStatus::Changes
    } else {
        ExitStatus::Ok
    }
}
