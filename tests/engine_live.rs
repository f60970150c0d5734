//! The Engine adapter against the real swarm: reads see what the docker CLI
//! created, raw specs keep every field, writes land, stale versions are
//! detected.
mod common;

use common::{docker, exists, wait_until, StackGuard};
use serde_json::json;
use shoal::engine::swarm_config;
use shoal::engine::{Engine, EngineError};
use shoal::model::Kind;
use std::time::Duration;

const NS: &str = "com.docker.stack.namespace";

#[tokio::test]
async fn live_stacks_group_objects_and_keep_raw_specs() {
    let stack = "engine_ls";
    let _cleanup = StackGuard::new(&[stack]);
    let label = format!("{NS}={stack}");
    docker(&[
        "network",
        "create",
        "--driver",
        "overlay",
        "--attachable",
        "--label",
        &label,
        "engine_ls_net",
    ]);
    let conf_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(conf_file.path(), "hello").unwrap();
    let conf_path = conf_file.path().to_str().unwrap();
    docker(&[
        "config",
        "create",
        "--label",
        &label,
        "engine_ls_conf",
        conf_path,
    ]);
    docker(&[
        "secret",
        "create",
        "--label",
        &label,
        "engine_ls_sec",
        conf_path,
    ]);
    docker(&[
        "service",
        "create",
        "--detach",
        "--quiet",
        "--name",
        "engine_ls_web",
        "--label",
        &label,
        "--network",
        "engine_ls_net",
        "--health-cmd",
        "true",
        "--health-interval",
        "2s",
        "--config",
        "source=engine_ls_conf,target=/etc/c",
        "--secret",
        "engine_ls_sec",
        "--replicas",
        "0",
        "busybox:1.36",
    ]);
    // A second stack's object must land in its own group.
    let other = "engine_ls2";
    let _cleanup2 = StackGuard::new(&[other]);
    docker(&[
        "config",
        "create",
        "--label",
        &format!("{NS}={other}"),
        "engine_ls2_conf",
        conf_path,
    ]);

    let engine = Engine::connect().await.expect("connect");
    let stacks = engine.live_stacks().await.expect("live stacks");
    let s = stacks.get(stack).expect("stack engine_ls listed");
    let names =
        |objs: &[shoal::model::LiveObject]| objs.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&s.services), ["engine_ls_web"]);
    assert_eq!(names(&s.networks), ["engine_ls_net"]);
    assert_eq!(names(&s.configs), ["engine_ls_conf"]);
    assert_eq!(names(&s.secrets), ["engine_ls_sec"]);
    assert_eq!(names(&stacks[other].configs), ["engine_ls2_conf"]);

    let web = &s.services[0];
    assert!(web.version > 0 && !web.id.is_empty() && !web.created_at.is_empty());
    let health = &web.spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"];
    assert_eq!(health["Test"], json!(["CMD-SHELL", "true"]), "{}", web.spec);
    // The spec is the daemon's own: `docker service inspect` shows the same
    // fields plus the server defaults it asks for (`insertDefaults`).
    let cli_spec: serde_json::Value = serde_json::from_str(&docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec}}",
        "engine_ls_web",
    ]))
    .unwrap();
    assert_contained(&web.spec, &cli_spec, "Spec");
    assert!(
        web.spec["TaskTemplate"].get("RestartPolicy").is_none(),
        "read without server defaults"
    );

    let net = &s.networks[0].spec;
    assert_eq!(
        (
            net["Driver"].as_str(),
            net["Attachable"].as_bool(),
            net["Scope"].as_str()
        ),
        (Some("overlay"), Some(true), Some("swarm"))
    );
    assert_eq!(net["Labels"][NS], stack);
    assert_eq!(s.configs[0].spec["Data"], "aGVsbG8=");

    let one = engine.live_stack(stack).await.unwrap();
    assert_eq!(names(&one.services), ["engine_ls_web"]);
    assert!(engine
        .live_stack("engine_ls_absent")
        .await
        .unwrap()
        .services
        .is_empty());
}

#[tokio::test]
async fn cluster_facts_describe_this_node() {
    let engine = Engine::connect().await.expect("connect");
    let facts = engine.cluster_facts().await.unwrap();
    assert!(facts.manager_count() >= 1);
    let hostname = docker(&["info", "--format", "{{.Name}}"]);
    let me = facts
        .nodes
        .iter()
        .find(|n| n.hostname == hostname)
        .expect("this node");
    assert_eq!((me.role.as_str(), me.state.as_str()), ("manager", "ready"));
    assert!(!me.engine_version.is_empty() && !me.id.is_empty());
}

#[tokio::test]
async fn writes_pass_specs_through_and_detect_stale_versions() {
    let stack = "engine_wr";
    let _cleanup = StackGuard::new(&[stack]);
    let engine = Engine::connect().await.expect("connect");
    let labels = json!({ NS: stack });

    let net_id = engine
        .create(Kind::Network, &json!({"Name": "engine_wr_net", "Driver": "overlay", "Labels": labels, "Attachable": true}))
        .await
        .unwrap();
    let conf_id = engine
        .create(
            Kind::Config,
            &json!({"Name": "engine_wr_conf", "Labels": labels, "Data": "aGk="}),
        )
        .await
        .unwrap();
    let spec = json!({
        "Name": "engine_wr_web", "Labels": labels,
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox:1.36",
            "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000u64}}},
        "Mode": {"Replicated": {"Replicas": 0}}
    });
    let svc_id = engine.create(Kind::Service, &spec).await.unwrap();
    let health = docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck}}",
        "engine_wr_web",
    ]);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&health).unwrap(),
        spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]
    );

    // Update at the current version, then again with the now stale one.
    let live = engine.inspect_service(&svc_id).await.unwrap();
    let version = live["Version"]["Index"].as_u64().unwrap();
    let mut updated = spec.clone();
    updated["TaskTemplate"]["ContainerSpec"]["Env"] = json!(["A=1"]);
    engine
        .update(Kind::Service, &svc_id, version, &updated)
        .await
        .unwrap();
    let env = docker(&[
        "service",
        "inspect",
        "--format",
        "{{json .Spec.TaskTemplate.ContainerSpec.Env}}",
        "engine_wr_web",
    ]);
    assert_eq!(env, r#"["A=1"]"#);
    let stale = engine
        .update(Kind::Service, &svc_id, version, &spec)
        .await
        .unwrap_err();
    assert!(
        matches!(stale, EngineError::OutOfSequence { .. }),
        "{stale}"
    );
    assert!(stale.to_string().contains("engine_wr_web"), "{stale}");

    // Config labels (state records), then removal of everything.
    let records = [
        ("engine.shoal/commit".to_string(), "abc".to_string()),
        (NS.to_string(), stack.to_string()),
    ]
    .into();
    let conf = swarm_config::get(&engine.docker, "engine_wr_conf")
        .await
        .unwrap()
        .unwrap();
    swarm_config::update_labels(&engine.docker, &conf, &records)
        .await
        .unwrap();
    let conf = engine.inspect_config("engine_wr_conf").await.unwrap();
    assert_eq!(conf.spec["Labels"]["engine.shoal/commit"], "abc");
    assert_eq!(conf.spec["Data"], "aGk=");

    engine
        .remove(Kind::Service, &svc_id, "engine_wr_web")
        .await
        .unwrap();
    engine
        .remove(Kind::Config, &conf_id, "engine_wr_conf")
        .await
        .unwrap();
    assert!(wait_until(Duration::from_secs(30), || {
        std::process::Command::new("docker")
            .args(["network", "rm", &net_id])
            .output()
            .is_ok_and(|o| o.status.success())
            || !exists("network", "engine_wr_net")
    }));
    assert!(!exists("service", "engine_wr_web") && !exists("config", "engine_wr_conf"));
    let gone = engine
        .remove(Kind::Service, &svc_id, "engine_wr_web")
        .await
        .unwrap_err();
    assert!(matches!(gone, EngineError::NotFound { .. }), "{gone}");
}

#[tokio::test]
async fn daemon_errors_carry_the_message_and_name() {
    let engine = Engine::connect().await.expect("connect");
    let err = engine
        .create(
            Kind::Service,
            &json!({"Name": "engine_bad", "TaskTemplate": {"ContainerSpec": {}}}),
        )
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with("create service engine_bad:") && msg.contains("HTTP 400"),
        "{msg}"
    );
}

#[tokio::test]
async fn unreachable_engine_is_a_clear_error() {
    let endpoint = shoal::engine::raw::Endpoint::Unix("/nonexistent/docker.sock".into());
    let err = match Engine::connect_to(endpoint).await {
        Err(e) => e,
        Ok(_) => panic!("connected to a missing socket"),
    };
    let msg = err.to_string();
    assert!(
        msg.contains("cannot reach the docker engine at unix:///nonexistent/docker.sock"),
        "{msg}"
    );
}

/// Every field of `part` is in `whole` with the same value.
fn assert_contained(part: &serde_json::Value, whole: &serde_json::Value, path: &str) {
    match (part, whole) {
        (serde_json::Value::Object(p), serde_json::Value::Object(w)) => {
            for (k, v) in p {
                let at = format!("{path}.{k}");
                assert_contained(
                    v,
                    w.get(k)
                        .unwrap_or_else(|| panic!("{at} missing in CLI spec")),
                    &at,
                );
            }
        }
        _ => assert_eq!(part, whole, "{path}"),
    }
}

/// The endpoint comes from the docker context as the docker CLI picks it
/// (contexts made by the real `docker context create`), unless DOCKER_HOST
/// is set.
#[test]
fn the_current_docker_context_picks_the_engine() {
    let config = tempfile::tempdir().unwrap();
    let dir = config.path().to_str().unwrap();
    let repo = common::Repo::new();
    repo.stack(
        "ctx",
        "version: \"3.8\"\nservices:\n  app:\n    image: busybox:1.36\n",
    );
    let repo_dir = repo.path().to_str().unwrap();
    for (name, host) in [
        ("elsewhere", "unix:///nonexistent/shoal-test/docker.sock"),
        ("here", "unix:///var/run/docker.sock"),
    ] {
        docker(&[
            "--config",
            dir,
            "context",
            "create",
            name,
            "--docker",
            &format!("host={host}"),
        ]);
    }
    let plan = |env: &[(&str, &str)]| {
        let mut all = vec![("DOCKER_CONFIG", dir)];
        all.extend_from_slice(env);
        common::shoal_env(
            &["plan", "--repo", repo_dir, "--resolve-image", "never"],
            &all,
        )
    };
    docker(&["--config", dir, "context", "use", "elsewhere"]);
    let o = plan(&[]);
    common::assert_code(&o, 1);
    assert!(
        common::stderr(&o).contains("/nonexistent/shoal-test/docker.sock"),
        "{}",
        common::stderr(&o)
    );
    // DOCKER_CONTEXT names another context; DOCKER_HOST overrides both.
    common::assert_code(&plan(&[("DOCKER_CONTEXT", "here")]), 0);
    common::assert_code(&plan(&[("DOCKER_HOST", "unix:///var/run/docker.sock")]), 0);
}
