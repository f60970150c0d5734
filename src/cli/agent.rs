//! `shoal agent`: resolve the flags into the agent's options, its
//! notifier and its pipeline, then run until stopped.
use super::args::{AgentArgs, AgentCmd, NotifyArgs};
use super::settings;
use super::ExitStatus;
use anyhow::{Context as _, Result};
use shoal::agent::notify::{CommitStatusTarget, EventKind, Notifier, Target};
use shoal::agent::{AgentOptions, Pipeline, SourceSpec};
use shoal::apply::ApplyOptions;
use shoal::compose::EnvPolicy;
use shoal::engine::Engine;
use shoal::image::DigestCache;
use shoal::secrets::Redactor;
use shoal::source::Location;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub async fn run(args: AgentCmd) -> Result<ExitStatus> {
    let redactor = Redactor::new();
    shoal::agent::init_tracing(args.agent.log_format.into(), &redactor);
    let repo_args = &args.repo;
    // The agent follows `--ref` itself: it is not checked against a
    // directory here.
    let (source, watch_dir) = match settings::locate(repo_args, None)? {
        Location::Git(repo) => (
            SourceSpec::Git {
                repo: std::sync::Arc::from(repo),
                git_ref: repo_args.git_ref.clone(),
            },
            None,
        ),
        Location::Dir(path) => (SourceSpec::Dir(path.clone()), Some(path)),
    };
    let mut opts = options(args.agent.clone(), watch_dir)?;
    opts.notifier = notifier(&args.notify)?;
    let secret_files: Vec<&Path> = [
        args.agent.webhook_secret_file.as_deref(),
        args.notify.notify_file.as_deref(),
        args.notify.notify_secret_file.as_deref(),
        args.notify.commit_status_token_file.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    settings::register_credentials(&redactor, repo_args, &secret_files);
    // `serve` registers the webhook secret and the status token with it.
    opts.redactor = redactor.clone();
    let pipeline = Pipeline {
        source,
        scope: shoal::pipeline::Scope {
            cluster: args.cluster.clone(),
            ..settings::scope(repo_args, args.prune.prune)
        },
        engine: Engine::connect().await?,
        apply: ApplyOptions {
            wait: true,
            timeout: args.converge_timeout,
            rollback_on_failure: !args.no_rollback,
            ..ApplyOptions::default()
        },
        resolve_image: args.images.mode(),
        digests: DigestCache::new(args.resolve_image_interval),
        with_registry_auth: args.registry.with_registry_auth,
        redactor,
        env: settings::stack_env(repo_args, EnvPolicy::none()),
        warned: Default::default(),
        order: Default::default(),
    };
    let pipeline = std::sync::Arc::new(pipeline);
    shoal::agent::run(opts, pipeline.clone(), &pipeline.engine).await?;
    Ok(ExitStatus::Ok)
}

/// The agent's options from its flags: the secret files read, the
/// identity picked. `watch_dir` is the local source directory, if the
/// source is one.
fn options(args: AgentArgs, watch_dir: Option<PathBuf>) -> Result<AgentOptions> {
    if args.interval.is_zero() {
        anyhow::bail!("--interval: must be longer than 0s (e.g. 30s)");
    }
    if args.lease_ttl < Duration::from_secs(1) {
        anyhow::bail!("--lease-ttl: must be at least 1s (e.g. 15s)");
    }
    let secret = |path: &Option<PathBuf>, flag: &str| -> Result<Option<Vec<u8>>> {
        path.as_deref().map(|p| read_secret(p, flag)).transpose()
    };
    let identity = args
        .lease_identity
        .clone()
        .unwrap_or_else(shoal::agent::lease::default_identity);
    Ok(AgentOptions {
        interval: args.interval,
        listen: args.listen,
        webhook_secret: secret(&args.webhook_secret_file, "--webhook-secret-file")?,
        status_token: secret(&args.status_token_file, "--status-token-file")?,
        ui_token: secret(&args.ui_token_file, "--ui-token-file")?,
        self_heal: !args.no_self_heal,
        lease_ttl: args.lease_ttl,
        lease_name: args.lease_name,
        watch_dir,
        ..AgentOptions::new(identity)
    })
}

/// Read the files, parse the URLs and start delivery; `None` when
/// nothing is configured. Must be called inside a tokio runtime.
fn notifier(args: &NotifyArgs) -> Result<Option<Notifier>> {
    let mut urls = args.notify.clone();
    if let Some(path) = &args.notify_file {
        let text = String::from_utf8(read_secret(path, "--notify-file")?)
            .map_err(|_| anyhow::anyhow!("--notify-file {}: not UTF-8 text", path.display()))?;
        urls.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    let targets = urls
        .iter()
        .map(|u| Target::parse(u).map_err(|e| anyhow::anyhow!("--notify {e}")))
        .collect::<Result<Vec<_>>>()?;
    let events = args
        .notify_events
        .iter()
        .map(|e| EventKind::parse(e.trim()).map_err(|e| anyhow::anyhow!("--notify-events: {e}")))
        .collect::<Result<Vec<_>>>()?;
    let secret = match &args.notify_secret_file {
        Some(path) => Some(read_secret(path, "--notify-secret-file")?),
        None => None,
    };
    let commit_status = commit_status(args)?;
    if targets.is_empty() && commit_status.is_none() {
        return Ok(None);
    }
    Ok(Some(Notifier::start(
        targets,
        events,
        secret,
        commit_status,
    )))
}

/// `--commit-status` and the flags it requires, the token read.
fn commit_status(args: &NotifyArgs) -> Result<Option<CommitStatusTarget>> {
    let (Some(forge), Some(api), Some(repo), Some(token_file)) = (
        args.commit_status,
        &args.commit_status_api,
        &args.commit_status_repo,
        &args.commit_status_token_file,
    ) else {
        return Ok(None);
    };
    let token = String::from_utf8(read_secret(token_file, "--commit-status-token-file")?)
        .map_err(|_| anyhow::anyhow!("--commit-status-token-file: not UTF-8 text"))?;
    Ok(Some(CommitStatusTarget {
        forge: forge.into(),
        api: api.clone(),
        repo: repo.clone(),
        token,
        target_url: args.status_url.clone(),
    }))
}

/// A secret file's content without the trailing newline editors add; an
/// empty file is an error naming `flag`.
fn read_secret(path: &Path, flag: &str) -> Result<Vec<u8>> {
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
        let o = options(cli.agent, None).unwrap();
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
        assert_eq!(
            shoal::agent::LogFormat::from(cli.agent.log_format),
            shoal::agent::LogFormat::Json
        );
        let o = options(cli.agent, None).unwrap();
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
        let o = options(cli.agent, None).unwrap();
        assert_eq!(o.status_token.as_deref(), Some(&b"t0ken"[..]));
        std::fs::write(&f, "").unwrap();
        let cli = Cli::parse_from(["shoal", "--status-token-file", f.to_str().unwrap()]);
        let e = options(cli.agent, None).unwrap_err().to_string();
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
        let e = options(cli.agent, None).unwrap_err().to_string();
        assert!(e.contains("empty"), "{e}");
    }
}
