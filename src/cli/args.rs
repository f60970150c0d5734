//! Every command-line type (clap): commands, their flags, and the flag
//! groups several commands share. Nothing here acts.
use clap::{Args, Parser, Subcommand};
use shoal::agent::notify::Forge;
use shoal::agent::LogFormat;
use shoal::image::ResolveMode;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "shoal",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SHOAL_GIT_COMMIT"), ")"),
    about = "Declarative GitOps for Docker Swarm: plan, check and apply stacks from git"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// The Docker Engine, as `docker -H`: unix:///path, tcp://host:port (TLS
    /// with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH), ssh://[user@]host[:port].
    /// Default: DOCKER_HOST, else the docker context.
    #[arg(short = 'H', long = "host", global = true, value_name = "URL")]
    pub host: Option<String>,
    /// The docker context to use, as `docker --context` (wins over
    /// DOCKER_HOST and DOCKER_CONTEXT).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// INSECURE: accept a TLS engine without checking its certificate
    /// (DOCKER_TLS without DOCKER_TLS_VERIFY, or a context with
    /// SkipTLSVerify); anyone on the path could pose as the engine.
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Re-apply an earlier good commit of a stack (plan shown first).
    Rollback(RollbackArgs),
    /// List the commits applied to a stack, with time, outcome and changes.
    History(HistoryArgs),
    /// Print a shell completion script (e.g. `shoal completions bash > /etc/bash_completion.d/shoal`).
    Completions(CompletionsArgs),
    /// GET the agent's /healthz and exit 0 when it answers 2xx (the image's HEALTHCHECK).
    #[command(hide = true)]
    Healthcheck(HealthcheckArgs),
}

#[derive(Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Args)]
pub struct HealthcheckArgs {
    /// The agent's health endpoint.
    #[arg(long, default_value = "http://127.0.0.1:9180/healthz")]
    pub url: String,
    /// Give up after this long.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Run the Rego unit tests in policies/*_test.rego.
    Test(RepoArgs),
}

#[derive(Args, Clone)]
pub struct RepoArgs {
    /// Stacks repository: a directory or a git URL (https://, ssh://, git@host:path, file://).
    #[arg(long, default_value = ".")]
    pub repo: String,
    /// Git branch, tag or commit (default: the remote's HEAD).
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// Where git clones are cached.
    #[arg(long, env = "SHOAL_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// SSH private key for git (default: the ssh-agent).
    #[arg(long, env = "SHOAL_SSH_KEY")]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file for SSH host key checks (default: ~/.ssh/known_hosts).
    #[arg(long, env = "SHOAL_KNOWN_HOSTS")]
    pub known_hosts: Option<PathBuf>,
    /// File holding an HTTPS token for git (or set SHOAL_GIT_TOKEN).
    #[arg(long)]
    pub git_token_file: Option<PathBuf>,
    /// Send git credentials (token, or user name/password in the URL) over
    /// plain http:// too; refused by default, as anyone on the path reads them.
    #[arg(long)]
    pub allow_insecure_git_http: bool,
    /// Only these stacks (repeatable).
    #[arg(long = "stack")]
    pub stacks: Vec<String>,
    /// Unused config/secret versions to keep after a rotation.
    #[arg(long, default_value_t = 1)]
    pub keep_versions: usize,
    /// No colour, even on a terminal.
    #[arg(long)]
    pub no_color: bool,
    /// Process variables stacks may read, as name prefixes (repeatable or
    /// comma-separated; '*' all, '' none). Default: all for plan, apply and
    /// validate; none for the agent. shoal's own credentials never.
    #[arg(long = "env-allow", value_name = "PREFIX", value_delimiter = ',')]
    pub env_allow: Option<Vec<String>>,
}

/// How images are pinned to registry digests.
#[derive(Args, Clone)]
pub struct ImageArgs {
    /// Pin services to the registry digest of their image tag, as `docker
    /// stack deploy --resolve-image` does: always (a re-pushed tag is an
    /// update), changed (only new or changed tags), never.
    #[arg(long, value_enum, default_value_t = ResolveModeArg::Always, env = "SHOAL_RESOLVE_IMAGE")]
    pub resolve_image: ResolveModeArg,
}

/// [`ResolveMode`] as `--resolve-image` spells it.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResolveModeArg {
    /// Every plan asks the registry: a tag re-pushed with new content is
    /// an image update.
    Always,
    /// Only images that are new or whose tag changed in the repository.
    Changed,
    /// Never: services run the tag as written, each node pulls on its own.
    Never,
}

impl From<ResolveModeArg> for ResolveMode {
    fn from(arg: ResolveModeArg) -> ResolveMode {
        match arg {
            ResolveModeArg::Always => ResolveMode::Always,
            ResolveModeArg::Changed => ResolveMode::Changed,
            ResolveModeArg::Never => ResolveMode::Never,
        }
    }
}

impl ImageArgs {
    /// The mode the flag (or `SHOAL_RESOLVE_IMAGE`) names.
    pub fn mode(&self) -> ResolveMode {
        self.resolve_image.into()
    }
}

/// Registry credentials on writes.
#[derive(Args, Clone)]
pub struct RegistryAuthArgs {
    /// Send registry credentials from the docker config file with each
    /// service, so the nodes can pull private images.
    #[arg(long)]
    pub with_registry_auth: bool,
}

/// `--prune`, for the commands that may delete stacks.
#[derive(Args, Clone, Copy)]
pub struct PruneArgs {
    /// Also delete stacks that are on the swarm but no longer in the repository.
    #[arg(long)]
    pub prune: bool,
}

/// How `plan` and `validate` print what they found.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// For people at a terminal.
    Text,
    /// One JSON document, for machines.
    Json,
    /// GitHub-flavoured markdown, for a pull-request comment.
    Markdown,
}

#[derive(Args)]
pub struct OutputArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// The same as `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
}

impl OutputArgs {
    pub fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else {
            self.format
        }
    }
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    /// Also save the plan to FILE, for `shoal apply FILE` to apply exactly
    /// it (refusing if the swarm or the source moved since).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 0 when nothing changes, 2 when something would, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    #[command(flatten)]
    pub prune: PruneArgs,
    #[command(flatten)]
    pub clusters: ClusterArgs,
    #[command(flatten)]
    pub allow: AllowHostArgs,
}

/// Which swarms of a repository with `clusters/` a run covers.
#[derive(Args, Clone, Default)]
pub struct ClusterArgs {
    /// In a repository with clusters/: plan (or apply, validate) this
    /// cluster against the engine its cluster.yml names (repeatable; apply
    /// goes through them in the order given).
    #[arg(long = "cluster", value_name = "NAME")]
    pub clusters: Vec<String>,
    /// Every cluster of clusters/, in name order.
    #[arg(long, conflicts_with = "clusters")]
    pub all_clusters: bool,
}

/// The engines a repository's cluster.yml may name by host (plan, apply).
#[derive(Args, Clone, Default)]
pub struct AllowHostArgs {
    /// Let a cluster.yml use this engine.host (exactly as written there;
    /// repeatable, or comma-separated in SHOAL_ALLOW_HOSTS). A repository
    /// may name any docker context configured on this machine, but no host
    /// the operator has not allowed: the engine would read the plans and
    /// receive this machine's registry credentials.
    #[arg(
        long = "allow-host",
        value_name = "HOST",
        env = "SHOAL_ALLOW_HOSTS",
        value_delimiter = ','
    )]
    pub allow_hosts: Vec<String>,
}

impl ClusterArgs {
    pub fn given(&self) -> bool {
        self.all_clusters || !self.clusters.is_empty()
    }
}

#[derive(Args)]
pub struct ApplyArgs {
    /// A plan saved by `shoal plan --out FILE`: apply exactly it, without
    /// asking, or refuse (exit 1, nothing written) when the swarm or the
    /// source moved since. The source, stacks, --prune and --resolve-image
    /// come from the file.
    #[arg(value_name = "FILE", conflicts_with_all = ["repo", "git_ref", "stacks", "prune", "resolve_image", "keep_versions", "clusters", "all_clusters"])]
    pub plan_file: Option<PathBuf>,
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub registry: RegistryAuthArgs,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    #[command(flatten)]
    pub prune: PruneArgs,
    /// Do not wait for the services written to converge. Services that
    /// depends_on orders still wait, wave by wave, for their dependencies'
    /// conditions: that wait is the order.
    #[arg(long)]
    pub no_wait: bool,
    /// How long to wait, per wave: for the dependencies of the services of
    /// a wave (depends_on) to meet their conditions, and at the end for the
    /// services written to converge.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub clusters: ClusterArgs,
    #[command(flatten)]
    pub allow: AllowHostArgs,
    /// On a failed rollout (a dependency or service not converging in
    /// time, Swarm rolling an update back, a failed job), restore the
    /// services this run changed to their specs before it, remove what it
    /// created, and exit 1 saying so.
    #[arg(long)]
    pub rollback_on_failure: bool,
}

#[derive(Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub images: ImageArgs,
    /// Go back to this commit (a commit id or any git revision).
    #[arg(long, conflicts_with = "steps")]
    pub to: Option<String>,
    /// Go back this many good commits in the stack's history (default 1).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Do not ask for confirmation.
    #[arg(long)]
    pub auto_approve: bool,
    /// How long to wait, per wave, as for apply.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

#[derive(Args)]
pub struct HistoryArgs {
    /// The stack.
    #[arg(long)]
    pub stack: String,
    /// Print the history as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Assume a swarm of this many nodes (all active and ready).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// How many of those nodes are managers.
    #[arg(long, default_value_t = 1)]
    pub managers: usize,
    /// Cluster facts as JSON (`{"nodes":[{...}]}`), instead of --nodes.
    #[arg(long)]
    pub facts: Option<PathBuf>,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub clusters: ClusterArgs,
}

#[derive(Args)]
pub struct AgentCmd {
    #[command(flatten)]
    pub repo: RepoArgs,
    #[command(flatten)]
    pub images: ImageArgs,
    #[command(flatten)]
    pub registry: RegistryAuthArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
    #[command(flatten)]
    pub notify: NotifyArgs,
    #[command(flatten)]
    pub prune: PruneArgs,
    /// In a repository with clusters/: the cluster this agent keeps (only
    /// its stacks; run one agent per swarm, on that swarm's managers).
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// How long an apply waits for its services to converge, and for the
    /// dependencies of each wave (depends_on).
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    pub converge_timeout: Duration,
    /// Do not roll a failed rollout back: leave the services as the failed
    /// apply left them, and retry the commit with backoff. By default a
    /// failed rollout is rolled back to the specs before it and the commit
    /// is marked failed (not retried until a new commit or POST /sync).
    #[arg(long)]
    pub no_rollback: bool,
    /// Reuse a tag's registry digest for this long before asking again
    /// (0s: every pass). Each lookup makes the daemon GET the manifest,
    /// which Docker Hub counts against its pull rate limit.
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub resolve_image_interval: Duration,
}

/// Flags of `shoal agent` for its loop, HTTP server and lease (the
/// source flags are [`RepoArgs`]); `cli::agent` resolves them into
/// [`shoal::agent::AgentOptions`].
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Poll the source at this interval (e.g. 30s, 5m).
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Address of the HTTP server (/healthz, /metrics, /status, /webhook).
    #[arg(long, default_value = "0.0.0.0:9180")]
    pub listen: SocketAddr,
    /// File holding the webhook secret (GitHub/Gitea HMAC key, GitLab
    /// token). Without it POST /webhook is disabled.
    #[arg(long, value_name = "FILE")]
    pub webhook_secret_file: Option<PathBuf>,
    /// File holding a bearer token: GET /status then requires
    /// `Authorization: Bearer <token>` (/healthz and /metrics stay open).
    #[arg(long, value_name = "FILE")]
    pub status_token_file: Option<PathBuf>,
    /// File holding the dashboard's action token: "sync now" on the page
    /// at / needs it (as a bearer token or through the sign-in form).
    /// Without it the dashboard is read-only.
    #[arg(long, value_name = "FILE")]
    pub ui_token_file: Option<PathBuf>,
    /// Report drift (status, metrics) instead of correcting it. New
    /// revisions are still applied.
    #[arg(long)]
    pub no_self_heal: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormatArg::Human)]
    pub log_format: LogFormatArg,
    /// How long the applier lease lasts without renewal; renewed every
    /// third of it.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_ttl: Duration,
    /// Identity written into the lease (default: hostname:pid).
    #[arg(long, env = "SHOAL_AGENT_IDENTITY")]
    pub lease_identity: Option<String>,
    /// Name of the Swarm config holding the lease.
    #[arg(long, default_value = "shoal-lease")]
    pub lease_name: String,
}

/// [`LogFormat`] as `--log-format` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormatArg {
    /// One readable line per event.
    Human,
    /// One JSON object per line.
    Json,
}

impl From<LogFormatArg> for LogFormat {
    fn from(arg: LogFormatArg) -> LogFormat {
        match arg {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        }
    }
}

/// The flags of `shoal agent` for notifications and commit statuses;
/// `cli::agent` resolves them into a [`shoal::agent::notify::Notifier`].
#[derive(Debug, Clone, Args)]
pub struct NotifyArgs {
    /// Send notifications to URL (repeatable): generic+https://host/path,
    /// slack://A/B/C or slack+https://hooks.slack.com/..., discord://TOKEN@ID,
    /// ntfy://host/topic, mattermost+https://..., teams+https://...
    #[arg(long = "notify", value_name = "URL")]
    pub notify: Vec<String>,
    /// A file of notification URLs, one a line (keeps webhook URLs, which
    /// are secrets, out of the process list: mount it as a Swarm secret).
    #[arg(long, value_name = "FILE")]
    pub notify_file: Option<PathBuf>,
    /// The events to notify, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "synced,failed,rolled_back,drift,denied,recovered"
    )]
    pub notify_events: Vec<String>,
    /// File holding the HMAC key that signs generic targets' bodies
    /// (X-Shoal-Signature-256: sha256=...).
    #[arg(long, value_name = "FILE")]
    pub notify_secret_file: Option<PathBuf>,
    /// Set commit statuses on this forge: pending while a commit applies,
    /// then success or failure, per stack (context `shoal/<stack>`).
    #[arg(long, value_enum, requires_all = ["commit_status_api", "commit_status_repo", "commit_status_token_file"])]
    pub commit_status: Option<ForgeArg>,
    /// The forge's REST API base: https://api.github.com,
    /// https://gitea.example.com/api/v1, https://gitlab.example.com/api/v4.
    #[arg(long, value_name = "URL")]
    pub commit_status_api: Option<String>,
    /// The repository: owner/repo (GitHub, Gitea) or the project id or path (GitLab).
    #[arg(long, value_name = "REPO")]
    pub commit_status_repo: Option<String>,
    /// File holding the API token for commit statuses.
    #[arg(long, value_name = "FILE")]
    pub commit_status_token_file: Option<PathBuf>,
    /// A link for commit statuses and messages (e.g. the agent's /status).
    #[arg(long, value_name = "URL")]
    pub status_url: Option<String>,
}

/// [`Forge`] as `--commit-status` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ForgeArg {
    Github,
    Gitea,
    Gitlab,
}

impl From<ForgeArg> for Forge {
    fn from(arg: ForgeArg) -> Forge {
        match arg {
            ForgeArg::Github => Forge::Github,
            ForgeArg::Gitea => Forge::Gitea,
            ForgeArg::Gitlab => Forge::Gitlab,
        }
    }
}
