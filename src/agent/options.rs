//! The agent's settings: the resolved [`AgentOptions`] (the CLI fills
//! them from `shoal agent`'s flags) and the log format.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
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
