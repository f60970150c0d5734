//! `shoal agent`: resolve the flags into the agent's options and its
//! pipeline, then run until stopped.
use super::args::AgentCmd;
use super::settings;
use super::ExitStatus;
use anyhow::Result;
use shoal::agent::{Pipeline, SourceSpec};
use shoal::apply::ApplyOptions;
use shoal::compose::EnvPolicy;
use shoal::engine::Engine;
use shoal::image::DigestCache;
use shoal::secrets::Redactor;
use shoal::source::Location;

pub async fn run(args: AgentCmd) -> Result<ExitStatus> {
    let redactor = Redactor::new();
    shoal::agent::init_tracing(args.agent.log_format, &redactor);
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
        resolve_image: args.images.resolve_image,
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
