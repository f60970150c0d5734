//! The agent's settings: the command-line flags (`shoal agent ...`, flattened
//! into the CLI by `cli/args.rs`) and the resolved [`AgentOptions`].
use anyhow::Context as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Flags of `shoal agent` (source flags are the CLI's own).
#[derive(Debug, Clone, clap::Args)]
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
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
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

/// Everything [`super::run`] needs, resolved.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub interval: Duration,
    pub listen: SocketAddr,
    /// `None`: POST /webhook answers 404.
    pub webhook_secret: Option<Vec<u8>>,
    /// `Some`: GET /status requires this bearer token.
    pub status_token: Option<Vec<u8>>,
    /// `Some`: the dashboard's actions ("sync now") require this token.
    pub ui_token: Option<Vec<u8>>,
    /// Timeouts and caps of the HTTP server.
    pub http: super::http::HttpLimits,
    /// Masks errors shown on HTTP and written to the Swarm state labels;
    /// share the pipeline's so decrypted values are known to it.
    pub redactor: crate::secrets::Redactor,
    pub self_heal: bool,
    pub lease_ttl: Duration,
    pub lease_name: String,
    pub identity: String,
    /// The repository root when the source is a local directory: changes
    /// under its `stacks/` and `policies/` trigger a pass.
    pub watch_dir: Option<PathBuf>,
    /// Watch the Docker event stream for changes made behind shoal's back.
    pub docker_events: bool,
    /// How long a running pass may take to finish after a shutdown signal
    /// before it is dropped (between two API calls).
    pub shutdown_grace: Duration,
    /// Notifications and commit statuses, if configured (`--notify`).
    pub notifier: Option<super::notify::Notifier>,
}

impl AgentOptions {
    /// Defaults for everything (tests and embedders override fields).
    pub fn new(identity: impl Into<String>) -> Self {
        AgentOptions {
            interval: Duration::from_secs(30),
            listen: SocketAddr::from(([0, 0, 0, 0], 9180)),
            webhook_secret: None,
            status_token: None,
            ui_token: None,
            http: super::http::HttpLimits::default(),
            redactor: crate::secrets::Redactor::new(),
            self_heal: true,
            lease_ttl: Duration::from_secs(15),
            lease_name: "shoal-lease".to_string(),
            identity: identity.into(),
            watch_dir: None,
            docker_events: true,
            shutdown_grace: Duration::from_secs(5),
            notifier: None,
        }
    }
}

impl AgentArgs {
    /// Resolve the flags: read the secret file, pick the identity.
    /// `watch_dir` is the local source directory, if the source is one.
    pub fn into_options(self, watch_dir: Option<PathBuf>) -> anyhow::Result<AgentOptions> {
        if self.interval.is_zero() {
            anyhow::bail!("--interval: must be longer than 0s (e.g. 30s)");
        }
        if self.lease_ttl < Duration::from_secs(1) {
            anyhow::bail!("--lease-ttl: must be at least 1s (e.g. 15s)");
        }
        let webhook_secret = match &self.webhook_secret_file {
            None => None,
            Some(path) => Some(read_secret(path, "--webhook-secret-file")?),
        };
        let status_token = match &self.status_token_file {
            None => None,
            Some(path) => Some(read_secret(path, "--status-token-file")?),
        };
        let ui_token = match &self.ui_token_file {
            None => None,
            Some(path) => Some(read_secret(path, "--ui-token-file")?),
        };
        let identity = self
            .lease_identity
            .clone()
            .unwrap_or_else(super::lease::default_identity);
        Ok(AgentOptions {
            interval: self.interval,
            listen: self.listen,
            webhook_secret,
            status_token,
            ui_token,
            http: super::http::HttpLimits::default(),
            redactor: crate::secrets::Redactor::new(),
            self_heal: !self.no_self_heal,
            lease_ttl: self.lease_ttl,
            lease_name: self.lease_name,
            identity,
            watch_dir,
            docker_events: true,
            shutdown_grace: Duration::from_secs(5),
            notifier: None,
        })
    }
}

/// A secret file's content without the trailing newline editors add; an
/// empty file is an error naming `flag`.
pub(crate) fn read_secret(path: &std::path::Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    let raw =
        std::fs::read(path).with_context(|| format!("{flag} {}: cannot read", path.display()))?;
    let end = raw
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    if end == 0 {
        anyhow::bail!(
            "{flag} {}: the file is empty; put the secret in it",
            path.display()
        );
    }
    Ok(raw[..end].to_vec())
}

/// Install the global tracing subscriber (`RUST_LOG` filters; default
/// `info`). Does nothing if one is already installed.
pub fn init_tracing(format: LogFormat, redactor: &crate::secrets::Redactor) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Every line passes through the redactor: a decrypted value never
    // reaches the log, whatever code logged it.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(redactor.make_writer(std::io::stdout));
    let _ = match format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    #[test]
    fn flags_parse_with_defaults() {
        let cli = Cli::parse_from(["shoal"]);
        let o = cli.agent.into_options(None).unwrap();
        assert_eq!(o.interval, Duration::from_secs(30));
        assert_eq!(o.listen.to_string(), "0.0.0.0:9180");
        assert!(o.self_heal);
        assert_eq!(o.lease_ttl, Duration::from_secs(15));
        assert!(o.webhook_secret.is_none());
        assert!(o.status_token.is_none());
        assert!(o.identity.contains(':'));
    }

    #[test]
    fn secret_file_is_read_without_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "s3cret\n").unwrap();
        let cli = Cli::parse_from([
            "shoal",
            "--interval",
            "5m",
            "--no-self-heal",
            "--log-format",
            "json",
            "--webhook-secret-file",
            f.to_str().unwrap(),
            "--lease-identity",
            "a1",
        ]);
        assert_eq!(cli.agent.log_format, LogFormat::Json);
        let o = cli.agent.into_options(None).unwrap();
        assert_eq!(o.webhook_secret.as_deref(), Some(&b"s3cret"[..]));
        assert_eq!(o.interval, Duration::from_secs(300));
        assert!(!o.self_heal);
        assert_eq!(o.identity, "a1");
    }

    #[test]
    fn status_token_file_is_read_and_must_not_be_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "t0ken\n").unwrap();
        let cli = Cli::parse_from(["shoal", "--status-token-file", f.to_str().unwrap()]);
        let o = cli.agent.into_options(None).unwrap();
        assert_eq!(o.status_token.as_deref(), Some(&b"t0ken"[..]));
        std::fs::write(&f, "").unwrap();
        let cli = Cli::parse_from(["shoal", "--status-token-file", f.to_str().unwrap()]);
        let e = cli.agent.into_options(None).unwrap_err().to_string();
        assert!(
            e.contains("--status-token-file") && e.contains("empty"),
            "{e}"
        );
    }

    #[test]
    fn empty_secret_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("secret");
        std::fs::write(&f, "\n").unwrap();
        let cli = Cli::parse_from(["shoal", "--webhook-secret-file", f.to_str().unwrap()]);
        let e = cli.agent.into_options(None).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }
}
