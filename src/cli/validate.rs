//! `shoal validate`: load, convert and check the policies offline, against
//! cluster facts from flags or a file instead of the swarm.
use super::args::{Format, ValidateArgs};
use super::plan::{json_doc, markdown_doc, print_load_report, PlanRun};
use super::settings::{self, Source};
use super::ExitStatus;
use anyhow::{Context, Result};
use shoal::compose::EnvPolicy;
use shoal::model::{ClusterFacts, Plan};
use shoal::pipeline::{self, PlanNotes, RepoPlan};

pub fn run(args: ValidateArgs) -> Result<ExitStatus> {
    if args.clusters.given() {
        return super::clusters::validate(args);
    }
    let source = std::sync::Arc::new(Source::open(&args.repo)?);
    let scope = settings::scope(&args.repo, false);
    let env = settings::stack_env(&args.repo, EnvPolicy::All);
    let p = check(source, &scope, &env, facts(&args)?)?;
    let format = args.output.format();
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&json_doc(&p))?);
    } else if format == Format::Markdown {
        print_load_report(&p);
        print!("{}", markdown_doc(&p));
    } else {
        print_text(&p, settings::color(&args.repo));
    }
    Ok(super::plan::status(&p, false))
}

/// What validate found, for people: each stack's size, the load report,
/// the violations.
pub fn print_text(p: &PlanRun, color: bool) {
    for stack in &p.pass.desired.stacks {
        println!(
            "stack {}: {} services, {} networks, {} configs, {} secrets",
            stack.name,
            stack.services.len(),
            stack.networks.len(),
            stack.configs.len(),
            stack.secrets.len()
        );
    }
    print_load_report(p);
    let text = p.violations_text(color);
    if !text.is_empty() {
        print!("\n{text}");
    }
}

/// The cluster facts policies are checked against: `--facts`, else
/// `--nodes`/`--managers`.
pub fn facts(args: &ValidateArgs) -> Result<ClusterFacts> {
    Ok(match &args.facts {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --facts {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a cluster facts document", path.display()))?
        }
        None => ClusterFacts::synthetic(args.nodes, args.managers),
    })
}

/// Load `source` within `scope` and check its policies against `facts`
/// (named after `scope`'s cluster, if any): a plan without a swarm.
pub fn check(
    source: std::sync::Arc<Source>,
    scope: &pipeline::Scope,
    env: &shoal::compose::Vars,
    mut facts: ClusterFacts,
) -> Result<PlanRun> {
    let desired = pipeline::load(&source.tree, scope, env)
        .map_err(|e| anyhow::anyhow!(source.redactor.redact(&e.to_string())))?;
    facts.name = scope.cluster.clone();
    let (policies, verdicts) = pipeline::check_policies(&source.tree, &desired, &facts);
    let pass = RepoPlan {
        desired,
        plan: Plan::default(),
        notes: PlanNotes::default(),
        policies,
        verdicts,
    };
    Ok(PlanRun::new(source, pass))
}
