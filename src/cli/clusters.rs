//! `--cluster NAME` (repeatable) and `--all-clusters` for `plan`, `apply`
//! and `validate`: one source, read once, planned per cluster against the
//! engine its `cluster.yml` names; output grouped by cluster; the exit
//! status folded over all of them (worst wins).
use super::args::{ApplyArgs, ClusterArgs, Format, PlanArgs, RepoArgs, ValidateArgs};
use super::plan::{self, markdown_doc, plan_source, print_load_report, PlanRun};
use super::settings::{self, Source};
use super::ExitStatus;
use anyhow::{bail, Result};
use shoal::compose::EnvPolicy;
use shoal::engine::endpoint::{self, Endpoint, EngineSelection};
use shoal::engine::Engine;
use shoal::model::Plan;
use shoal::pipeline::Scope;
use shoal::render::json::{self, ClustersDocument, ErrorDoc};
use shoal::source::clusters::{discover_layout, Cluster, ClusterEngine, Layout};
use shoal::source::Tree;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The clusters a run covers, and the source they come from.
struct Selected {
    source: Arc<Source>,
    clusters: Vec<Cluster>,
}

/// One cluster of a run: planned (or checked), or why it could not be.
struct ClusterRun {
    cluster: Cluster,
    /// The engine it was planned against, as people read it.
    endpoint: String,
    outcome: Result<PlanRun, String>,
    /// Kept from the plan for an apply.
    engine: Option<Engine>,
}

/// Open the source and pick the clusters the flags name: `--all-clusters`
/// in name order, else each `--cluster` in the order given.
fn select(repo: &RepoArgs, flags: &ClusterArgs) -> Result<Selected> {
    let chosen = endpoint::selection();
    if chosen.host.is_some() || chosen.context.is_some() {
        bail!(
            "-H/--host and --context pick one engine, but with --cluster or --all-clusters \
             each cluster's cluster.yml names its own (engine:); leave -H/--context out"
        );
    }
    let source = Arc::new(Source::open(repo)?);
    let layout = discover_layout(&source.tree)
        .map_err(|e| anyhow::anyhow!(source.redactor.redact(&e.to_string())))?;
    let Layout::Clusters(all) = layout else {
        bail!(
            "--cluster/--all-clusters: {} has no clusters/ folder; it is the single-swarm \
             layout (stacks/ at the root): leave the flag out",
            source.tree.describe()
        );
    };
    let clusters = if flags.all_clusters {
        all
    } else {
        let mut picked: Vec<Cluster> = Vec::new();
        for name in &flags.clusters {
            if picked.iter().any(|c| &c.name == name) {
                continue;
            }
            match all.iter().find(|c| &c.name == name) {
                Some(c) => picked.push(c.clone()),
                None => bail!(
                    "--cluster {name}: no such cluster in {} (clusters: {})",
                    source.tree.describe(),
                    all.iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        picked
    };
    Ok(Selected { source, clusters })
}

/// The engine of `cluster`, resolved as `-H`/`--context` would be
/// (`DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH` for a `tcp://` host, the
/// context store for a context; `--insecure-skip-tls-verify` applies).
///
/// The repository is untrusted: whoever can push could otherwise point a
/// run at an engine of theirs, which would then read the plan and receive
/// the registry credentials of the machine running shoal. So a
/// `cluster.yml` may name a docker context (configured on this machine by
/// its operator) freely, but a host only when the operator allows exactly
/// that host (`--allow-host`, `SHOAL_ALLOW_HOSTS`); nothing is contacted
/// otherwise.
fn endpoint_of(cluster: &Cluster, allowed_hosts: &[String]) -> Result<Endpoint, String> {
    let (host, context) = match &cluster.engine {
        ClusterEngine::Host(h) if !allowed_hosts.contains(h) => {
            return Err(format!(
                "{}: engine.host: {h} is not an engine this run may use: a repository cannot \
                 choose the engine on its own (it would receive this machine's registry \
                 credentials); name a docker context configured here (engine.context), or \
                 allow the host with --allow-host {h} (or SHOAL_ALLOW_HOSTS)",
                cluster.file()
            ))
        }
        ClusterEngine::Host(h) => (Some(h.clone()), None),
        ClusterEngine::Context(c) => (None, Some(c.clone())),
    };
    let selection = EngineSelection {
        host,
        context,
        insecure_skip_tls_verify: endpoint::selection().insecure_skip_tls_verify,
    };
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    endpoint::resolve(&selection, &env, &shoal::docker_cli::config_dir())
        .map_err(|e| format!("{}: engine: {e}", cluster.file()))
}

fn cluster_scope(repo: &RepoArgs, prune: bool, cluster: &Cluster) -> Scope {
    Scope {
        cluster: Some(cluster.name.clone()),
        ..settings::scope(repo, prune)
    }
}

/// Plan every selected cluster, one after the other, each against its own
/// engine: a cluster that cannot be planned is reported, the others still
/// are.
async fn plan_all(
    selected: &Selected,
    repo: &RepoArgs,
    prune: bool,
    images: &super::args::ImageArgs,
    allowed_hosts: &[String],
) -> Vec<ClusterRun> {
    let env = settings::stack_env(repo, EnvPolicy::All);
    let mut runs = Vec::new();
    for cluster in &selected.clusters {
        let redact = |m: String| selected.source.redactor.redact(&m);
        let endpoint = match endpoint_of(cluster, allowed_hosts) {
            Ok(e) => e,
            Err(e) => {
                runs.push(ClusterRun {
                    endpoint: cluster.engine.to_string(),
                    cluster: cluster.clone(),
                    outcome: Err(redact(e)),
                    engine: None,
                });
                continue;
            }
        };
        let scope = cluster_scope(repo, prune, cluster);
        let connect = || Engine::connect_to(endpoint.clone());
        let planned = plan_source(selected.source.clone(), &scope, &env, connect, images).await;
        let (outcome, engine) = match planned {
            Ok((p, engine)) => (Ok(p), Some(engine)),
            Err(e) => (Err(redact(error_chain(&e))), None),
        };
        runs.push(ClusterRun {
            cluster: cluster.clone(),
            endpoint: endpoint.to_string(),
            outcome,
            engine,
        });
    }
    runs
}

/// [`select`] the clusters, then [`plan_all`] of them.
async fn select_and_plan(
    repo: &RepoArgs,
    flags: &ClusterArgs,
    prune: bool,
    images: &super::args::ImageArgs,
    allowed_hosts: &[String],
) -> Result<(Selected, Vec<ClusterRun>)> {
    let selected = select(repo, flags)?;
    let runs = plan_all(&selected, repo, prune, images, allowed_hosts).await;
    Ok((selected, runs))
}

/// `error: caused by: ...` on one line, for a cluster that failed.
fn error_chain(e: &anyhow::Error) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

/// How runs end together: 1 if any cluster failed, else 3 if any is
/// denied, else 2 if any has changes (with `--detailed-exitcode`), else 0.
fn fold(runs: &[ClusterRun], detailed_exitcode: bool) -> ExitStatus {
    let rank = |s: ExitStatus| match s {
        ExitStatus::Error => 3,
        ExitStatus::Denied => 2,
        ExitStatus::Changes => 1,
        ExitStatus::Ok => 0,
    };
    runs.iter()
        .map(|r| match &r.outcome {
            Ok(p) => plan::status(p, detailed_exitcode),
            Err(_) => ExitStatus::Error,
        })
        .max_by_key(|s| rank(*s))
        .unwrap_or(ExitStatus::Ok)
}

/// `# cluster production (ssh://deploy@prod-mgr)`
fn heading(run: &ClusterRun) -> String {
    format!("# cluster {} ({})", run.cluster.name, run.endpoint)
}

/// Text output: a heading per cluster, its plan (or why it has none),
/// then (for plans, `summary`) one line over all of them.
fn print_grouped(runs: &[ClusterRun], summary: bool, print: impl Fn(&PlanRun)) {
    let (mut create, mut update, mut delete, mut failed) = (0, 0, 0, Vec::new());
    for (i, run) in runs.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("{}\n", heading(run));
        match &run.outcome {
            Ok(p) => {
                print(p);
                let s = p.pass.plan.summary();
                (create, update, delete) =
                    (create + s.create, update + s.update, delete + s.delete);
            }
            Err(e) => {
                eprintln!("error: cluster {}: {e}", run.cluster.name);
                failed.push(run.cluster.name.as_str());
            }
        }
    }
    if !summary {
        return;
    }
    let failed = if failed.is_empty() {
        String::new()
    } else {
        format!("; failed: {}", failed.join(", "))
    };
    println!(
        "\nAll clusters: {create} to create, {update} to update, {delete} to delete ({} clusters{failed}).",
        runs.len()
    );
}

/// `--format json`: a [`ClustersDocument`], through the redactor.
fn json_doc(source: &Source, runs: &[ClusterRun]) -> Result<serde_json::Value> {
    let errors: Vec<Vec<(String, String)>> = runs
        .iter()
        .map(|r| {
            r.outcome
                .as_ref()
                .map(plan::stack_errors)
                .unwrap_or_default()
        })
        .collect();
    let empty_plan = Plan::default();
    let empty_by_stack = BTreeMap::new();
    let docs = runs
        .iter()
        .zip(&errors)
        .map(|(run, stack_errors)| {
            let name = run.cluster.name.as_str();
            match &run.outcome {
                Ok(p) => json::for_cluster(
                    json::document(&plan::report(p, stack_errors)),
                    name,
                    run.endpoint.clone(),
                ),
                Err(message) => {
                    let mut doc = json::document(&shoal::render::Report {
                        plan: &empty_plan,
                        commit: None,
                        stack_errors: &[],
                        policy_errors: &[],
                        violations: &[],
                        violations_by_stack: &empty_by_stack,
                        unmanaged: &[],
                    });
                    doc.errors.push(ErrorDoc::Cluster {
                        cluster: name,
                        message,
                    });
                    json::for_cluster(doc, name, run.endpoint.clone())
                }
            }
        })
        .collect();
    let mut value = serde_json::to_value(ClustersDocument::new(docs))?;
    source.redactor.redact_json(&mut value);
    Ok(value)
}

/// `--format markdown`: a `## cluster` section per cluster.
fn print_markdown(runs: &[ClusterRun]) {
    for run in runs {
        println!("## cluster {} ({})\n", run.cluster.name, run.endpoint);
        match &run.outcome {
            Ok(p) => {
                print_load_report(p);
                println!("{}", markdown_doc(p));
            }
            Err(e) => println!("**error:** `{e}`\n"),
        }
    }
}

fn print_runs(
    source: &Source,
    runs: &[ClusterRun],
    format: Format,
    summary: bool,
    text: impl Fn(&PlanRun),
) -> Result<()> {
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json_doc(source, runs)?)?
        ),
        Format::Markdown => print_markdown(runs),
        Format::Text => print_grouped(runs, summary, text),
    }
    Ok(())
}

/// `shoal plan --cluster ...`
pub async fn plan(args: PlanArgs) -> Result<ExitStatus> {
    if args.out.is_some() {
        bail!(
            "--out: a saved plan records one swarm; it cannot be combined with --cluster or \
             --all-clusters yet"
        );
    }
    let (selected, runs) = select_and_plan(
        &args.repo,
        &args.clusters,
        args.prune.prune,
        &args.images,
        &args.allow.allow_hosts,
    )
    .await?;
    let color = settings::color(&args.repo);
    print_runs(&selected.source, &runs, args.output.format(), true, |p| {
        plan::print_text(p, color)
    })?;
    Ok(fold(&runs, args.detailed_exitcode))
}

/// `shoal validate --cluster ...`: offline, each cluster's stacks checked
/// against the facts of the flags, named after the cluster.
pub fn validate(args: ValidateArgs) -> Result<ExitStatus> {
    let selected = select(&args.repo, &args.clusters)?;
    let facts = super::validate::facts(&args)?;
    let env = settings::stack_env(&args.repo, EnvPolicy::All);
    let runs: Vec<ClusterRun> = selected
        .clusters
        .iter()
        .map(|cluster| {
            let scope = cluster_scope(&args.repo, false, cluster);
            let outcome =
                super::validate::check(selected.source.clone(), &scope, &env, facts.clone())
                    .map_err(|e| error_chain(&e));
            ClusterRun {
                endpoint: cluster.engine.to_string(),
                cluster: cluster.clone(),
                outcome,
                engine: None,
            }
        })
        .collect();
    let color = settings::color(&args.repo);
    print_runs(&selected.source, &runs, args.output.format(), false, |p| {
        super::validate::print_text(p, color)
    })?;
    Ok(fold(&runs, false))
}

/// `shoal apply --cluster ...`: plan every cluster first; if any cannot be
/// planned, fails to load or is denied, nothing is applied anywhere. Then
/// apply them one after the other, in the order given, each converged
/// before the next; a failure stops there and says which were applied.
pub async fn apply(args: ApplyArgs) -> Result<ExitStatus> {
    let (_selected, runs) = select_and_plan(
        &args.repo,
        &args.clusters,
        args.prune.prune,
        &args.images,
        &args.allow.allow_hosts,
    )
    .await?;
    let color = settings::color(&args.repo);
    print_grouped(&runs, true, |p| plan::print_text(p, color));
    if let Some(status) = refused(&runs) {
        return Ok(status);
    }
    let todo: Vec<&ClusterRun> = runs
        .iter()
        .filter(|r| r.outcome.as_ref().is_ok_and(|p| p.pass.plan.has_changes()))
        .collect();
    if todo.is_empty() {
        return Ok(ExitStatus::Ok);
    }
    if !args.auto_approve {
        let list: Vec<&str> = todo.iter().map(|r| r.cluster.name.as_str()).collect();
        let question = format!(
            "Apply these changes to cluster {}, in that order?",
            list.join(", ")
        );
        if !super::apply::confirm(&question)? {
            return Ok(ExitStatus::Error);
        }
    }
    write_in_order(&todo, &args).await
}

/// Why nothing may be applied anywhere (said on stderr), with the exit
/// status: a cluster denied by the policies, or one not planned fully.
fn refused(runs: &[ClusterRun]) -> Option<ExitStatus> {
    let names = |pick: &dyn Fn(&ClusterRun) -> bool| {
        runs.iter()
            .filter(|r| pick(r))
            .map(|r| r.cluster.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let failed = names(&|r| {
        r.outcome
            .as_ref()
            .map_or(true, |p| !p.pass.desired.errors.is_empty())
    });
    let denied = names(&|r| r.outcome.as_ref().is_ok_and(|p| p.denied()));
    if !denied.is_empty() {
        eprintln!("\nerror: policies deny the plan of cluster {denied}; nothing was changed on any cluster.");
        return Some(fold(runs, false));
    }
    if !failed.is_empty() {
        eprintln!(
            "\nerror: cluster {failed} could not be planned fully; nothing was changed on any cluster."
        );
        return Some(ExitStatus::Error);
    }
    None
}

/// Apply the planned clusters one after the other, each converged before
/// the next; a failure stops there and says which were applied.
async fn write_in_order(todo: &[&ClusterRun], args: &ApplyArgs) -> Result<ExitStatus> {
    let mut applied: Vec<&str> = Vec::new();
    let mut writes = 0;
    for run in todo {
        let (Ok(p), Some(engine)) = (&run.outcome, &run.engine) else {
            continue; // planned: both are there (see plan_all)
        };
        println!("\n{}: applying", heading(run));
        match super::apply::write(engine, p, args).await? {
            Ok(n) => writes += n,
            Err(why) => {
                eprintln!("error: cluster {}: {why}", run.cluster.name);
                eprintln!(
                    "  applied before it: {}; not applied: {} and the clusters after it",
                    if applied.is_empty() {
                        "none".to_string()
                    } else {
                        applied.join(", ")
                    },
                    run.cluster.name
                );
                return Ok(ExitStatus::Error);
            }
        }
        applied.push(&run.cluster.name);
    }
    println!(
        "Apply complete: {writes} writes on cluster {}.",
        applied.join(", ")
    );
    Ok(ExitStatus::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str, engine: ClusterEngine) -> Cluster {
        Cluster {
            name: name.into(),
            engine,
            stacks: vec![],
            env: BTreeMap::new(),
        }
    }

    fn run(name: &str, outcome: Result<(), &str>) -> ClusterRun {
        ClusterRun {
            cluster: cluster(name, ClusterEngine::Context(name.into())),
            endpoint: "unix:///x".into(),
            outcome: outcome.map(|_| unreachable!()).map_err(str::to_string),
            engine: None,
        }
    }

    #[test]
    fn a_failed_cluster_fails_the_run() {
        assert_eq!(fold(&[], true), ExitStatus::Ok);
        assert_eq!(fold(&[run("a", Err("down"))], true), ExitStatus::Error);
    }

    #[test]
    fn a_cluster_names_its_engine_as_minus_h_would() {
        let c = cluster(
            "remote",
            ClusterEngine::Host("ssh://deploy@mgr:2222".into()),
        );
        let allowed = ["ssh://deploy@mgr:2222".to_string(), "ftp://x".to_string()];
        assert_eq!(
            endpoint_of(&c, &allowed).unwrap().to_string(),
            "ssh://deploy@mgr:2222"
        );
        let bad = Cluster {
            engine: ClusterEngine::Host("ftp://x".into()),
            ..c
        };
        let e = endpoint_of(&bad, &allowed).unwrap_err();
        assert!(
            e.starts_with("clusters/remote/cluster.yml: engine: "),
            "{e}"
        );
    }

    #[test]
    fn a_host_the_operator_did_not_allow_is_refused_before_anything_is_contacted() {
        let c = cluster(
            "prod",
            ClusterEngine::Host("tcp://attacker.example:2375".into()),
        );
        for allowed in [
            vec![],
            vec!["tcp://attacker.example:2376".to_string()],
            vec!["tcp://ATTACKER.example:2375".to_string()],
        ] {
            let e = endpoint_of(&c, &allowed).unwrap_err();
            assert!(
                e.starts_with(
                    "clusters/prod/cluster.yml: engine.host: tcp://attacker.example:2375 is not \
                     an engine this run may use"
                ),
                "{e}"
            );
            assert!(
                e.contains("--allow-host tcp://attacker.example:2375"),
                "{e}"
            );
        }
        let allowed = ["tcp://attacker.example:2375".to_string()];
        assert_eq!(
            endpoint_of(&c, &allowed).unwrap().to_string(),
            "tcp://attacker.example:2375"
        );
        // A context is configured on this machine, not by the repository.
        let ctx = Cluster {
            engine: ClusterEngine::Context("default".into()),
            ..c
        };
        assert!(endpoint_of(&ctx, &[]).is_ok());
    }
}
