//! The `shoal` command line: parse arguments, call the library, map
//! outcomes to exit codes. No logic of its own.
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use shoal::apply::{self, ApplyOptions};
use shoal::compose::{EnvPolicy, Vars};
use shoal::engine::Engine;
use shoal::images::{DigestCache, ResolveMode};
use shoal::pipeline::{Pipeline, SourceSpec};
use shoal::plan::Plan;
use shoal::planning;
use shoal::policy::{violations_text, Violation};
use shoal::reconcile::{self, Desired, PlanNotes, RepoTree, Scope};
use shoal::registry_auth::Credentials;
use shoal::render;
use shoal::saved_plan::{self, SavedPlan, SavedSource};
use shoal::secrets::{register_own_credentials, DecryptingTree, Redactor};
use shoal::source::git::{GitOptions, GitRepo};
use shoal::source::{DirTree, Tree};
use shoal::state::ClusterFacts;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Exit codes shared by `plan` and `apply`.
const EXIT_OK: u8 = 0;
const EXIT_ERROR: u8 = 1;
const EXIT_CHANGES: u8 = 2;
const EXIT_DENIED: u8 = 3;

#[derive(Parser)]
#[command(
    name = "shoal",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SHOAL_GIT_COMMIT"), ")"),
    about = "Declarative GitOps for Docker Swarm: plan, check and apply stacks from git"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The Docker Engine, as `docker -H`: unix:///path, tcp://host:port (TLS
    /// with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH), ssh://[user@]host[:port].
    /// Default: DOCKER_HOST, else the docker context.
    #[arg(short = 'H', long = "host", global = true, value_name = "URL")]
    host: Option<String>,
    /// The docker context to use, as `docker --context` (wins over
    /// DOCKER_HOST and DOCKER_CONTEXT).
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// INSECURE: accept a TLS engine without checking its certificate
    /// (DOCKER_TLS without DOCKER_TLS_VERIFY, or a context with
    /// SkipTLSVerify); anyone on the path could pose as the engine.
    #[arg(long, global = true)]
    insecure_skip_tls_verify: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Show what would change on the swarm (reads only).
    Plan(PlanArgs),
    /// Apply the plan: write only what differs, then wait for convergence.
    Apply(ApplyArgs),
    /// Load, convert and check policies offline (no swarm needed).
    Validate(ValidateArgs),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run unattended on a swarm manager, keeping the swarm equal to git.
    Agent(Box<AgentCmd>),
    /// Print a shell completion script (e.g. `shoal completions bash > /etc/bash_completion.d/shoal`).
    Completions(CompletionsArgs),
    /// GET the agent's /healthz and exit 0 when it answers 2xx (the image's HEALTHCHECK).
    #[command(hide = true)]
    Healthcheck(HealthcheckArgs),
}

#[derive(Args)]
struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Args)]
struct HealthcheckArgs {
    /// The agent's health endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9180/healthz")]
    url: String,
    /// Give up after this long.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Run the Rego unit tests in policies/*_test.rego.
    Test(RepoArgs),
}

#[derive(Args, Clone)]
struct RepoArgs {
    /// Stacks repository: a directory or a git URL (https://, ssh://, git@host:path, file://).
    #[arg(long, default_value = ".")]
    repo: String,
    /// Git branch, tag or commit (default: the remote's HEAD).
    #[arg(long = "ref")]
    git_ref: Option<String>,
    /// Where git clones are cached.
    #[arg(long, env = "SHOAL_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// SSH private key for git (default: the ssh-agent).
    #[arg(long, env = "SHOAL_SSH_KEY")]
    ssh_key: Option<PathBuf>,
    /// known_hosts file for SSH host key checks (default: ~/.ssh/known_hosts).
    #[arg(long, env = "SHOAL_KNOWN_HOSTS")]
    known_hosts: Option<PathBuf>,
    /// File holding an HTTPS token for git (or set SHOAL_GIT_TOKEN).
    #[arg(long)]
    git_token_file: Option<PathBuf>,
    /// Send git credentials (token, or user name/password in the URL) over
    /// plain http:// too; refused by default, as anyone on the path reads them.
    #[arg(long)]
    allow_insecure_git_http: bool,
    /// Only these stacks (repeatable).
    #[arg(long = "stack")]
    stacks: Vec<String>,
    /// Unused config/secret versions to keep after a rotation.
    #[arg(long, default_value_t = 1)]
    keep_versions: usize,
    /// No colour, even on a terminal.
    #[arg(long)]
    no_color: bool,
    /// Process variables stacks may read, as name prefixes (repeatable or
    /// comma-separated; '*' all, '' none). Default: all for plan, apply and
    /// validate; none for the agent. shoal's own credentials never.
    #[arg(long = "env-allow", value_name = "PREFIX", value_delimiter = ',')]
    env_allow: Option<Vec<String>>,
}

/// How images are pinned to registry digests.
#[derive(Args, Clone)]
struct ImageArgs {
    /// Pin services to the registry digest of their image tag, as `docker
    /// stack deploy --resolve-image` does: always (a re-pushed tag is an
    /// update), changed (only new or changed tags), never.
    #[arg(long, value_enum, default_value_t = ResolveMode::Always, env = "SHOAL_RESOLVE_IMAGE")]
    resolve_image: ResolveMode,
}

/// Registry credentials on writes.
#[derive(Args, Clone)]
struct RegistryAuthArgs {
    /// Send registry credentials from the docker config file with each
    /// service, so the nodes can pull private images.
    #[arg(long)]
    with_registry_auth: bool,
}

/// How `plan` and `validate` print what they found.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// For people at a terminal.
    Text,
    /// One JSON document, for machines.
    Json,
    /// GitHub-flavoured markdown, for a pull-request comment.
    Markdown,
}

#[derive(Args)]
struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// The same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

impl OutputArgs {
    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    images: ImageArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Also save the plan to FILE, for `shoal apply FILE` to apply exactly
    /// it (refusing if the swarm or the source moved since).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 0 when nothing changes, 2 when something would, 1 on error.
    #[arg(long)]
    detailed_exitcode: bool,
    /// Also delete stacks that are on the swarm but no longer in the repository.
    #[arg(long)]
    prune: bool,
}

#[derive(Args)]
struct ApplyArgs {
    /// A plan saved by `shoal plan --out FILE`: apply exactly it, without
    /// asking, or refuse (exit 1, nothing written) when the swarm or the
    /// source moved since. The source, stacks, --prune and --resolve-image
    /// come from the file.
    #[arg(value_name = "FILE", conflicts_with_all = ["repo", "git_ref", "stacks", "prune", "resolve_image", "keep_versions"])]
    plan_file: Option<PathBuf>,
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    images: ImageArgs,
    #[command(flatten)]
    registry: RegistryAuthArgs,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    auto_approve: bool,
    /// Also delete stacks that are on the swarm but no longer in the repository.
    #[arg(long)]
    prune: bool,
    /// Do not wait for services to converge.
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for convergence.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Args)]
struct ValidateArgs {
    #[command(flatten)]
    repo: RepoArgs,
    /// Assume a swarm of this many nodes (all active and ready).
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// How many of those nodes are managers.
    #[arg(long, default_value_t = 1)]
    managers: usize,
    /// Cluster facts as JSON (`{"nodes":[{...}]}`), instead of --nodes.
    #[arg(long)]
    facts: Option<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args)]
struct AgentCmd {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    images: ImageArgs,
    #[command(flatten)]
    registry: RegistryAuthArgs,
    #[command(flatten)]
    agent: shoal::agent::AgentArgs,
    #[command(flatten)]
    notify: shoal::agent::notify::NotifyArgs,
    /// Also delete stacks that are on the swarm but no longer in the repository.
    #[arg(long)]
    prune: bool,
    /// How long an apply waits for its services to converge.
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    converge_timeout: Duration,
    /// Reuse a tag's registry digest for this long before asking again
    /// (0s: every pass). Each lookup makes the daemon GET the manifest,
    /// which Docker Hub counts against its pull rate limit.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    resolve_image_interval: Duration,
}

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
    let cli = Cli::parse();
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
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Plan(args) => cmd_plan(args).await,
            Command::Apply(args) => cmd_apply(args).await,
            Command::Validate(args) => cmd_validate(args),
            Command::Policy(PolicyCommand::Test(args)) => cmd_policy_test(args),
            Command::Agent(args) => cmd_agent(*args).await,
            Command::Completions(args) => cmd_completions(args),
            Command::Healthcheck(args) => cmd_healthcheck(args),
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn cmd_completions(args: CompletionsArgs) -> Result<u8> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(args.shell, &mut cmd, "shoal", &mut std::io::stdout());
    Ok(EXIT_OK)
}

/// Exit 0 when healthy, 1 (with the reason on stderr) otherwise.
fn cmd_healthcheck(args: HealthcheckArgs) -> Result<u8> {
    shoal::healthcheck::check(&args.url, args.timeout)?;
    Ok(EXIT_OK)
}

/// The source a run reads: a directory, or a git commit.
struct Source {
    /// SOPS files read decrypted; every decrypted value is registered with
    /// `redactor`, through which everything printed passes.
    tree: RepoTree,
    redactor: Redactor,
    /// `3f2a9c1 "scale steedos to 4"` for git sources.
    commit: Option<shoal::source::git::CommitInfo>,
}

fn is_git_url(repo: &str) -> bool {
    repo.starts_with("https://")
        || repo.starts_with("http://")
        || repo.starts_with("ssh://")
        || repo.starts_with("file://")
        || repo.starts_with("git://")
        || (repo.contains('@') && repo.contains(':') && !std::path::Path::new(repo).exists())
}

fn git_options(args: &RepoArgs) -> Result<GitOptions> {
    let token = match &args.git_token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading --git-token-file {}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => std::env::var("SHOAL_GIT_TOKEN")
            .ok()
            .filter(|t| !t.is_empty()),
    };
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => default_cache_dir(),
    };
    Ok(GitOptions {
        cache_dir,
        ssh_key: args.ssh_key.clone(),
        known_hosts: args.known_hosts.clone(),
        token,
        allow_insecure_http: args.allow_insecure_git_http,
    })
}

fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("shoal");
    }
    if let Some(home) = std::env::var_os("HOME") {
        return PathBuf::from(home).join(".cache/shoal");
    }
    std::env::temp_dir().join("shoal-cache")
}

fn open_source(args: &RepoArgs) -> Result<Source> {
    let redactor = Redactor::new();
    register_credentials(&redactor, args, &[]);
    if is_git_url(&args.repo) {
        let repo = GitRepo::open(&args.repo, git_options(args)?)?;
        let commit = repo.resolve(args.git_ref.as_deref())?;
        let tree: Box<dyn Tree> = Box::new(repo.tree(&commit)?);
        Ok(Source {
            tree: DecryptingTree::from_env(tree, redactor.clone()),
            redactor,
            commit: Some(commit),
        })
    } else {
        if args.git_ref.is_some() {
            bail!(
                "--ref needs a git URL in --repo; {} is a directory",
                args.repo
            );
        }
        let path = PathBuf::from(&args.repo);
        if !path.is_dir() {
            bail!("--repo {}: no such directory", args.repo);
        }
        let tree: Box<dyn Tree> = Box::new(DirTree::new(path));
        Ok(Source {
            tree: DecryptingTree::from_env(tree, redactor.clone()),
            redactor,
            commit: None,
        })
    }
}

/// The process variables stacks may read: `--env-allow`, else `default`
/// (all for the CLI, none for the agent); shoal's credentials never.
fn stack_env(args: &RepoArgs, default: EnvPolicy) -> Vars {
    Vars::from_env_filtered(&EnvPolicy::from_flag(args.env_allow.as_deref(), default))
}

/// Registers shoal's own credentials (age keys, git token, SSH key,
/// registry passwords, and the flags' credential files) for masking.
fn register_credentials(redactor: &Redactor, args: &RepoArgs, more: &[&std::path::Path]) {
    let mut files: Vec<&std::path::Path> = more.to_vec();
    files.extend(args.git_token_file.as_deref());
    files.extend(args.ssh_key.as_deref());
    register_own_credentials(redactor, &files);
}

fn scope(args: &RepoArgs, prune: bool) -> Scope {
    Scope {
        only: args.stacks.clone(),
        prune,
        keep_versions: args.keep_versions,
    }
}

fn color(args: &RepoArgs) -> bool {
    !args.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
}

/// Everything a plan run produces, before rendering.
struct Planned {
    source: Source,
    desired: Desired,
    plan: Plan,
    notes: PlanNotes,
    violations: Vec<Violation>,
    /// The same violations by stack.
    violations_by_stack: BTreeMap<String, Vec<Violation>>,
    policy_errors: Vec<String>,
}

impl Planned {
    fn denied(&self) -> bool {
        !self.policy_errors.is_empty() || self.violations.iter().any(Violation::blocks)
    }
}

async fn plan_run(args: &RepoArgs, prune: bool, images: &ImageArgs) -> Result<Planned> {
    let source = open_source(args)?;
    let scope = scope(args, prune);
    let desired = reconcile::load(&source.tree, &scope, &stack_env(args, EnvPolicy::All))
        .map_err(|e| anyhow::anyhow!(source.redactor.redact(&e.to_string())))?;
    let engine = Engine::connect().await?;
    let pass = planning::plan(
        &source.tree,
        desired,
        &engine,
        &scope,
        images.resolve_image,
        None,
    )
    .await?;
    let (violations, policy_errors) = pass.violations_and_errors();
    let mut plan = pass.plan;
    source.redactor.mark_sensitive(&mut plan);
    Ok(Planned {
        source,
        violations_by_stack: by_stack(&pass.verdicts),
        desired: pass.desired,
        plan,
        notes: pass.notes,
        violations,
        policy_errors,
    })
}

fn commit_line(source: &Source) -> Option<String> {
    source
        .commit
        .as_ref()
        .map(|c| format!("stacks at {} \"{}\"", c.short, c.summary))
}

/// Print the plan for people. Everything goes through the redactor: no
/// decrypted value reaches the terminal.
fn print_text(p: &Planned, color: bool) {
    let r = &p.source.redactor;
    if let Some(line) = commit_line(&p.source) {
        println!("{}\n", r.redact(&line));
    }
    print_load_report(p);
    print!(
        "{}",
        r.redact(&render::text(&p.plan, &render::TextOptions { color }))
    );
    for name in &p.notes.unmanaged {
        println!(
            "note: stack {name} is on the swarm but not in the repository; --prune would delete it"
        );
    }
    let text = violations_text(&p.violations, &p.policy_errors, color);
    if !text.is_empty() {
        print!("\n{}", r.redact(&text));
    }
}

/// Loader warnings and per-stack load errors, on stderr.
fn print_load_report(p: &Planned) {
    let r = &p.source.redactor;
    for stack in &p.desired.stacks {
        for w in &stack.warnings {
            eprintln!(
                "{}",
                r.redact(&format!("warning: stack {}: {w}", stack.name))
            );
        }
    }
    for e in &p.desired.errors {
        eprintln!(
            "{}\n  (stack {} is left as it is on the swarm)",
            r.redact(&format!("error: {e}")),
            e.stack
        );
    }
}

fn json_doc(p: &Planned) -> serde_json::Value {
    let mut extra = serde_json::Map::new();
    extra.insert(
        "violations".into(),
        serde_json::to_value(&p.violations).unwrap_or_default(),
    );
    let mut errors: Vec<serde_json::Value> = p
        .desired
        .errors
        .iter()
        .map(|e| serde_json::json!({"stack": e.stack, "message": e.message}))
        .collect();
    errors.extend(
        p.policy_errors
            .iter()
            .map(|e| serde_json::json!({"policy": true, "message": e})),
    );
    extra.insert("errors".into(), errors.into());
    extra.insert(
        "commit".into(),
        match &p.source.commit {
            Some(c) => serde_json::json!({"id": c.id, "short": c.short, "summary": c.summary}),
            None => serde_json::Value::Null,
        },
    );
    extra.insert(
        "unmanaged".into(),
        serde_json::to_value(&p.notes.unmanaged).unwrap_or_default(),
    );
    let mut doc = render::json(&p.plan, extra);
    p.source.redactor.redact_json(&mut doc);
    doc
}

/// Violations by stack, from the verdicts of a pass.
fn by_stack(verdicts: &planning::Verdicts) -> BTreeMap<String, Vec<Violation>> {
    verdicts
        .iter()
        .filter_map(|(stack, v)| Some((stack.clone(), v.as_ref().ok()?.clone())))
        .collect()
}

/// The plan as a pull-request comment, through the redactor like text.
fn markdown_doc(p: &Planned) -> String {
    let stack_errors: Vec<(String, String)> = p
        .desired
        .errors
        .iter()
        .map(|e| (e.stack.clone(), e.message.clone()))
        .collect();
    let report = render::markdown::Report {
        plan: &p.plan,
        commit: p
            .source
            .commit
            .as_ref()
            .map(|c| (c.short.as_str(), c.summary.as_str())),
        stack_errors: &stack_errors,
        policy_errors: &p.policy_errors,
        violations: &p.violations_by_stack,
        unmanaged: &p.notes.unmanaged,
    };
    p.source
        .redactor
        .redact(&render::markdown::markdown(&report))
}

/// The revision a plan was made from: the commit, or the directory's
/// content digest.
fn revision(args: &RepoArgs, source: &Source) -> Result<String> {
    match &source.commit {
        Some(c) => Ok(c.id.clone()),
        None => shoal::pipeline::dir_digest(std::path::Path::new(&args.repo))
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", args.repo)),
    }
}

fn save_plan(file: &std::path::Path, args: &PlanArgs, p: &Planned) -> Result<()> {
    let saved = SavedPlan {
        format: saved_plan::FORMAT.to_string(),
        source: SavedSource {
            repo: saved_plan::repo_without_credentials(&args.repo.repo),
            git_ref: args.repo.git_ref.clone(),
            revision: revision(&args.repo, &p.source)?,
        },
        stacks: args.repo.stacks.clone(),
        prune: args.prune,
        resolve_image: args.images.resolve_image.to_string(),
        keep_versions: args.repo.keep_versions,
        objects: saved_plan::fingerprint(&p.plan, &p.source.redactor),
        plan: json_doc(p),
    };
    saved.write(file)?;
    Ok(())
}

/// Take the source and scope of a saved plan into `args`.
fn restore_saved(file: &std::path::Path, args: &mut ApplyArgs) -> Result<SavedPlan> {
    let saved = SavedPlan::read(file)?;
    args.repo.repo = saved.source.repo.clone();
    args.repo.git_ref = saved.source.git_ref.clone();
    args.repo.stacks = saved.stacks.clone();
    args.repo.keep_versions = saved.keep_versions;
    args.prune = saved.prune;
    args.images.resolve_image =
        <ResolveMode as clap::ValueEnum>::from_str(&saved.resolve_image, true)
            .map_err(|e| anyhow::anyhow!("{}: resolve_image: {e}", file.display()))?;
    Ok(saved)
}

/// Why a saved plan no longer holds: the source moved, or objects did.
fn saved_plan_moves(saved: &SavedPlan, args: &RepoArgs, p: &Planned) -> Result<Vec<String>> {
    let now = revision(args, &p.source)?;
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
        &saved_plan::fingerprint(&p.plan, &p.source.redactor),
    ))
}

async fn cmd_plan(args: PlanArgs) -> Result<u8> {
    let p = plan_run(&args.repo, args.prune, &args.images).await?;
    if let Some(file) = &args.out {
        save_plan(file, &args, &p)?;
    }
    match args.output.format() {
        Format::Json => println!("{}", serde_json::to_string_pretty(&json_doc(&p))?),
        Format::Markdown => {
            print_load_report(&p);
            print!("{}", markdown_doc(&p));
        }
        Format::Text => print_text(&p, color(&args.repo)),
    }
    Ok(if p.denied() {
        EXIT_DENIED
    } else if !p.desired.errors.is_empty() {
        EXIT_ERROR
    } else if args.detailed_exitcode && p.plan.has_changes() {
        EXIT_CHANGES
    } else {
        EXIT_OK
    })
}

async fn cmd_apply(mut args: ApplyArgs) -> Result<u8> {
    let saved = match args.plan_file.clone() {
        Some(file) => Some((restore_saved(&file, &mut args)?, file)),
        None => None,
    };
    let p = plan_run(&args.repo, args.prune, &args.images).await?;
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
            return Ok(EXIT_ERROR);
        }
    }
    print_text(&p, color(&args.repo));
    if p.denied() {
        eprintln!("\nerror: policies deny this plan; nothing was changed.");
        return Ok(EXIT_DENIED);
    }
    if !p.desired.errors.is_empty() {
        eprintln!(
            "\nerror: some stacks failed to load; nothing was changed. Fix them, or limit the run with --stack."
        );
        return Ok(EXIT_ERROR);
    }
    if !p.plan.has_changes() {
        return Ok(EXIT_OK);
    }
    // A saved plan was reviewed already: applying it is the approval.
    if !args.auto_approve && saved.is_none() {
        if !std::io::stdin().is_terminal() {
            bail!("stdin is not a terminal: pass --auto-approve to apply without asking");
        }
        print!("\nApply these changes? Only 'yes' is accepted: ");
        use std::io::Write;
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            println!("Apply cancelled; nothing was changed.");
            return Ok(EXIT_ERROR);
        }
    }
    let engine = Engine::connect().await?;
    let registry_auth = if args.registry.with_registry_auth {
        Some(Credentials::from_env().map_err(|e| anyhow::anyhow!(e))?)
    } else {
        None
    };
    let opts = ApplyOptions {
        wait: !args.no_wait,
        timeout: args.timeout,
        registry_auth,
        ..ApplyOptions::default()
    };
    let progress = |line: &str| println!("{line}");
    let report = apply::apply(&engine, &p.plan, &opts, &progress).await?;
    if !report.not_converged.is_empty() {
        eprintln!(
            "error: these services did not converge: {}",
            report.not_converged.join(", ")
        );
        return Ok(EXIT_ERROR);
    }
    println!("Apply complete: {} writes.", report.writes);
    Ok(EXIT_OK)
}

fn cmd_validate(args: ValidateArgs) -> Result<u8> {
    let source = open_source(&args.repo)?;
    let scope = scope(&args.repo, false);
    let desired = reconcile::load(&source.tree, &scope, &stack_env(&args.repo, EnvPolicy::All))
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
    let (policies, verdicts) = planning::check_policies(&source.tree, &desired, &facts);
    let (violations, policy_errors) = planning::flatten_verdicts(&policies, &verdicts);
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
        let text = violations_text(&p.violations, &p.policy_errors, color(&args.repo));
        if !text.is_empty() {
            print!("\n{}", p.source.redactor.redact(&text));
        }
    }
    Ok(if p.denied() {
        EXIT_DENIED
    } else if !p.desired.errors.is_empty() {
        EXIT_ERROR
    } else {
        EXIT_OK
    })
}

fn cmd_policy_test(args: RepoArgs) -> Result<u8> {
    let source = open_source(&args)?;
    let report = shoal::policy::run_tests(&source.tree);
    print!("{}", report.render());
    Ok(if report.passed() { EXIT_OK } else { EXIT_ERROR })
}

async fn cmd_agent(args: AgentCmd) -> Result<u8> {
    let redactor = Redactor::new();
    shoal::agent::init_tracing(args.agent.log_format, &redactor);
    let repo_args = &args.repo;
    let (source, watch_dir) = if is_git_url(&repo_args.repo) {
        let repo = GitRepo::open(&repo_args.repo, git_options(repo_args)?)?;
        (
            SourceSpec::Git {
                repo: std::sync::Arc::new(repo),
                git_ref: repo_args.git_ref.clone(),
            },
            None,
        )
    } else {
        let path = PathBuf::from(&repo_args.repo);
        if !path.is_dir() {
            bail!("--repo {}: no such directory", repo_args.repo);
        }
        (SourceSpec::Dir(path.clone()), Some(path))
    };
    let mut opts = args.agent.clone().into_options(watch_dir)?;
    opts.notifier = args.notify.start()?;
    let secret_files: Vec<&std::path::Path> = [
        args.agent.webhook_secret_file.as_deref(),
        args.notify.notify_file.as_deref(),
        args.notify.notify_secret_file.as_deref(),
        args.notify.commit_status_token_file.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    register_credentials(&redactor, repo_args, &secret_files);
    // `serve` registers the webhook secret and the status token with it.
    opts.redactor = redactor.clone();
    let pipeline = Pipeline {
        source,
        scope: scope(repo_args, args.prune),
        engine: Engine::connect().await?,
        apply: ApplyOptions {
            wait: true,
            timeout: args.converge_timeout,
            ..ApplyOptions::default()
        },
        resolve_image: args.images.resolve_image,
        digests: DigestCache::new(args.resolve_image_interval),
        with_registry_auth: args.registry.with_registry_auth,
        redactor,
        env: stack_env(repo_args, EnvPolicy::none()),
        warned: Default::default(),
    };
    shoal::agent::run(opts, std::sync::Arc::new(pipeline)).await?;
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn git_urls_and_directories_are_told_apart() {
        for url in [
            "https://example.com/x.git",
            "ssh://git@host/x.git",
            "git@github.com:org/repo.git",
            "file:///srv/repo.git",
        ] {
            assert!(is_git_url(url), "{url}");
        }
        for dir in [".", "./stacks-repo", "/srv/stacks"] {
            assert!(!is_git_url(dir), "{dir}");
        }
    }
}
