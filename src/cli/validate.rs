//! `shoal validate`: load, convert and check the policies offline, against
//! cluster facts from flags or a file instead of the swarm.
use super::args::{Format, ValidateArgs};
use super::plan::{by_stack, json_doc, markdown_doc, print_load_report, Planned};
use super::settings::{self, Source};
use super::ExitStatus;
use anyhow::{Context, Result};
use shoal::compose::EnvPolicy;
use shoal::model::{ClusterFacts, Plan};
use shoal::pipeline::{self, PlanNotes};
use shoal::render::violations_text;

pub fn run(args: ValidateArgs) -> Result<ExitStatus> {
    let source = Source::open(&args.repo)?;
    let scope = settings::scope(&args.repo, false);
    let desired = pipeline::load(
        &source.tree,
        &scope,
        &settings::stack_env(&args.repo, EnvPolicy::All),
    )
    .map_err(|e| anyhow::anyhow!(source.redactor.redact(&e.to_string())))?;
    let facts = match &args.facts {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --facts {}", path.display()))?;
            serde_json::from_str(&text)
                .with_context(|| format!("{}: not a cluster facts document", path.display()))?
        }
        None => ClusterFacts::synthetic(args.nodes, args.managers),
    };
    let (policies, verdicts) = pipeline::check_policies(&source.tree, &desired, &facts);
    let (violations, policy_errors) = pipeline::flatten_verdicts(&policies, &verdicts);
    let p = Planned {
        source,
        desired,
        plan: Plan::default(),
        notes: PlanNotes::default(),
        violations,
        violations_by_stack: by_stack(&verdicts),
        policy_errors,
    };
    let format = args.output.format();
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&json_doc(&p))?);
    } else if format == Format::Markdown {
        print_load_report(&p);
        print!("{}", markdown_doc(&p));
    } else {
        for stack in &p.desired.stacks {
            println!(
                "stack {}: {} services, {} networks, {} configs, {} secrets",
                stack.name,
                stack.services.len(),
                stack.networks.len(),
                stack.configs.len(),
                stack.secrets.len()
            );
        }
        print_load_report(&p);
        let text = violations_text(&p.violations, &p.policy_errors, settings::color(&args.repo));
        if !text.is_empty() {
            print!("\n{}", p.source.redactor.redact(&text));
        }
    }
    Ok(if p.denied() {
        ExitStatus::Denied
    } else if !p.desired.errors.is_empty() {
        ExitStatus::Error
    } else {
        ExitStatus::Ok
    })
}
