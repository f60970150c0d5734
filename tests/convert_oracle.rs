//! Oracle for `convert`: deploy each fixture with `docker stack deploy`,
//! inspect what the swarm holds, and check that every value shoal's
//! converter produces is what docker produced (desired ⊆ live), that the
//! live service specs hold nothing else except daemon defaults, and that
//! docker created exactly the networks/configs/secrets shoal wants.
//!
//! Each fixture comes twice: `X.yml` for docker, and `X.model.yml`, the
//! same stack in the normalized long form the compose loader produces.
use serde_json::Value;
use shoal::compose::{load, model::Config, Loaded, Vars};
use shoal::convert::convert;
use shoal::model::{DesiredStack, Kind};
use shoal::source::{DirTree, StackEntry};
use std::process::Command;
use std::time::{Duration, Instant};

const FIXTURES: &str = "tests/fixtures/convert";

mod common;

/// Service-spec fields the daemon fills in by itself (array indices as
/// `[]`): these may be in the live spec without the converter producing
/// them.
const DAEMON_DEFAULTS: &[&str] = &[
    "TaskTemplate.ContainerSpec.Privileges.NoNewPrivileges",
    "TaskTemplate.ContainerSpec.Isolation",
    "TaskTemplate.ContainerSpec.StopGracePeriod",
    // IDs are resolved by name at apply time.
    "TaskTemplate.ContainerSpec.Configs[].ConfigID",
    "TaskTemplate.ContainerSpec.Secrets[].SecretID",
    "TaskTemplate.ForceUpdate",
    "TaskTemplate.Runtime",
    "TaskTemplate.RestartPolicy.Condition",
    "TaskTemplate.RestartPolicy.Delay",
    "TaskTemplate.RestartPolicy.MaxAttempts",
    "Mode.Replicated.Replicas",
    "UpdateConfig.Parallelism",
    "UpdateConfig.FailureAction",
    "UpdateConfig.Monitor",
    "UpdateConfig.MaxFailureRatio",
    "UpdateConfig.Order",
    "RollbackConfig.Parallelism",
    "RollbackConfig.FailureAction",
    "RollbackConfig.Monitor",
    "RollbackConfig.MaxFailureRatio",
    "RollbackConfig.Order",
    "EndpointSpec.Mode",
    "EndpointSpec.Ports[].Protocol",
    "EndpointSpec.Ports[].PublishMode",
];

/// Run the docker CLI; retries for a while when the (shared, busy) swarm
/// manager briefly reports it is not ready.
fn docker(args: &[&str]) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = Command::new("docker")
            .args(args)
            .output()
            .map_err(|e| format!("docker {args:?}: {e}"))?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let transient =
            err.contains("not a swarm manager") || err.contains("context deadline exceeded");
        if !transient || Instant::now() > deadline {
            return Err(format!("docker {args:?}: {err}"));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn docker_json(args: &[&str]) -> Value {
    let out = docker(args).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("docker {args:?}: bad JSON: {e}"))
}

/// Removes the stack (and the test's own extra objects) when dropped,
/// waiting until docker reports them gone.
struct Deployed {
    stack: String,
    networks: Vec<String>,
}

impl Drop for Deployed {
    fn drop(&mut self) {
        common::remove_stack(&self.stack);
        for net in &self.networks {
            let deadline = Instant::now() + Duration::from_secs(30);
            while docker(&["network", "rm", net]).is_err() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}

/// Convert `X.model.yml` as stack `stack` with stack file `X.yml`.
fn desired(fixture: &str, stack: &str) -> DesiredStack {
    let root = env!("CARGO_MANIFEST_DIR");
    let model_path = format!("{root}/{FIXTURES}/{fixture}.model.yml");
    let text = std::fs::read_to_string(&model_path).expect("fixture model");
    let config: Config = serde_yaml::from_str(&text).expect("fixture model parses");
    let loaded = Loaded {
        stack: stack.to_string(),
        file: format!("{FIXTURES}/{fixture}.yml"),
        config,
        warnings: vec![],
    };
    convert(&DirTree::new(root), &loaded).expect("fixture converts")
}

/// One step of a path into a JSON value (label keys contain dots, so
/// paths are not split from strings).
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

type Path = Vec<Step>;

fn show(path: &Path) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => out.push_str(&format!(".{k}")),
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The path with indices blanked (`Ports[]`), as in [`DAEMON_DEFAULTS`].
fn generic(path: &Path) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(k) if out.is_empty() => out.push_str(k),
            Step::Key(k) => out.push_str(&format!(".{k}")),
            Step::Index(_) => out.push_str("[]"),
        }
    }
    out
}

/// Load `X.yml` with shoal's compose loader and convert it.
fn desired_via_loader(fixture: &str, stack: &str) -> DesiredStack {
    let root = env!("CARGO_MANIFEST_DIR");
    let tree = DirTree::new(root);
    let entry = StackEntry {
        name: stack.to_string(),
        dir: FIXTURES.to_string(),
        file: format!("{FIXTURES}/{fixture}.yml"),
    };
    let loaded = load(&tree, &entry, &Vars::default()).unwrap_or_else(|e| panic!("{e}"));
    convert(&tree, &loaded).unwrap_or_else(|e| panic!("{e}"))
}

/// The loader's output converts to the same specs as the hand-written
/// normalized model (so the oracle speaks for the whole pipeline).
fn assert_same_specs(model: &DesiredStack, loader: &DesiredStack) {
    let specs = |d: &DesiredStack| {
        [Kind::Service, Kind::Network, Kind::Config, Kind::Secret]
            .iter()
            .flat_map(|k| {
                d.objects(*k)
                    .iter()
                    .map(|o| (o.name.clone(), o.spec.clone()))
            })
            .collect::<Vec<_>>()
    };
    for ((name, want), (_, got)) in specs(model).iter().zip(specs(loader).iter()) {
        assert_eq!(want, got, "{name}: model fixture vs compose loader");
    }
    assert_eq!(specs(model).len(), specs(loader).len());
    assert_eq!(model.external, loader.external);
}

fn leaves(value: &Value, path: &Path, out: &mut Vec<(Path, Value)>) {
    match value {
        Value::Object(m) if !m.is_empty() => {
            for (k, v) in m {
                let mut p = path.clone();
                p.push(Step::Key(k.clone()));
                leaves(v, &p, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, v) in a.iter().enumerate() {
                let mut p = path.clone();
                p.push(Step::Index(i));
                leaves(v, &p, out);
            }
        }
        // Scalars, nulls and empty containers are leaves.
        other => out.push((path.clone(), other.clone())),
    }
}

fn at<'v>(value: &'v Value, path: &Path) -> Option<&'v Value> {
    path.iter().try_fold(value, |cur, step| match step {
        Step::Key(k) => cur.get(k),
        Step::Index(i) => cur.get(*i),
    })
}

fn same_leaf(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        (Value::Object(a), Value::Object(_)) if a.is_empty() => true,
        (Value::Array(a), Value::Array(_)) if a.is_empty() => true,
        _ => desired == live,
    }
}

/// The spec with its config and secret references sorted by (name, target).
fn refs_by_target(mut spec: Value) -> Value {
    for key in ["Configs", "Secrets"] {
        if let Some(refs) = spec
            .pointer_mut(&format!("/TaskTemplate/ContainerSpec/{key}"))
            .and_then(Value::as_array_mut)
        {
            refs.sort_by_key(|r| {
                let name = r["ConfigName"]
                    .as_str()
                    .or(r["SecretName"].as_str())
                    .unwrap_or_default()
                    .to_string();
                (
                    name,
                    r["File"]["Name"].as_str().unwrap_or_default().to_string(),
                )
            });
        }
    }
    spec
}

/// Every leaf of `desired` equals the live value at the same path.
fn assert_subset(what: &str, desired: &Value, live: &Value) {
    let mut ls = Vec::new();
    leaves(desired, &Vec::new(), &mut ls);
    let wrong: Vec<String> = ls
        .iter()
        .filter(|(path, want)| !at(live, path).is_some_and(|got| same_leaf(want, got)))
        .map(|(path, want)| {
            format!(
                "  {}: shoal {want}, docker {:?}",
                show(path),
                at(live, path)
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{what}: converter and docker disagree:\n{}\nlive: {live:#}",
        wrong.join("\n")
    );
}

/// Live leaves the converter does not produce must be daemon defaults.
fn assert_no_extra(what: &str, desired: &Value, live: &Value) {
    let mut ls = Vec::new();
    leaves(live, &Vec::new(), &mut ls);
    let extra: Vec<String> = ls
        .iter()
        .filter(|(path, _)| at(desired, path).is_none())
        .filter(|(path, _)| !DAEMON_DEFAULTS.contains(&generic(path).as_str()))
        .map(|(path, v)| format!("  {}: {v}", show(path)))
        .collect();
    assert!(
        extra.is_empty(),
        "{what}: live spec has fields shoal does not produce:\n{}",
        extra.join("\n")
    );
}

/// Live service spec with network IDs replaced by names (docker sends
/// names; the daemon stores IDs).
fn live_service(name: &str) -> Value {
    let mut spec = docker_json(&["service", "inspect", name, "--format", "{{json .Spec}}"]);
    if let Some(Value::Array(nets)) = spec.pointer_mut("/TaskTemplate/Networks").map(|v| v.take()) {
        let named: Vec<Value> = nets
            .into_iter()
            .map(|mut n| {
                let id = n["Target"].as_str().unwrap_or_default().to_string();
                let net_name = docker(&["network", "inspect", &id, "--format", "{{.Name}}"])
                    .unwrap_or_else(|e| panic!("{e}"));
                n["Target"] = Value::String(net_name.trim().to_string());
                n
            })
            .collect();
        spec["TaskTemplate"]["Networks"] = Value::Array(named);
    }
    spec
}

/// Deploy `fixture` as `stack` with docker and compare everything.
fn check(fixture: &str, stack: &str, extra_networks: &[&str]) {
    check_then(fixture, stack, extra_networks, || {});
}

/// [`check`], then `after` while the stack is still deployed.
fn check_then(fixture: &str, stack: &str, extra_networks: &[&str], after: impl FnOnce()) {
    let want = desired(fixture, stack);
    assert_same_specs(&want, &desired_via_loader(fixture, stack));
    common::remove_stack(stack);
    for net in extra_networks {
        let _ = docker(&["network", "create", "-d", "overlay", net]);
    }
    let _guard = Deployed {
        stack: stack.to_string(),
        networks: extra_networks.iter().map(|s| s.to_string()).collect(),
    };
    let file = format!("{}/{FIXTURES}/{fixture}.yml", env!("CARGO_MANIFEST_DIR"));
    docker(&[
        "stack",
        "deploy",
        "--detach=true",
        "--resolve-image",
        "never",
        "-c",
        &file,
        stack,
    ])
    .unwrap_or_else(|e| panic!("{e}"));

    // Docker created exactly the objects shoal wants.
    let names = |objs: &[shoal::model::DesiredObject]| {
        let mut n: Vec<String> = objs.iter().map(|o| o.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(
        common::names("service", stack),
        names(&want.services),
        "services"
    );
    assert_eq!(
        common::names("network", stack),
        names(&want.networks),
        "networks"
    );
    assert_eq!(
        common::names("config", stack),
        names(&want.configs),
        "configs"
    );
    assert_eq!(
        common::names("secret", stack),
        names(&want.secrets),
        "secrets"
    );

    for svc in &want.services {
        // docker sorts config/secret references by name only (an unstable
        // sort): two references to one secret come in either order. shoal's
        // diff keys references by target, so compare them that way here.
        let live = refs_by_target(live_service(&svc.name));
        let spec = refs_by_target(svc.spec.clone());
        assert_subset(&format!("service {}", svc.name), &spec, &live);
        assert_no_extra(&format!("service {}", svc.name), &svc.spec, &live);
    }
    for net in &want.networks {
        let live = docker_json(&["network", "inspect", &net.name, "--format", "{{json .}}"]);
        assert_subset(&format!("network {}", net.name), &net.spec, &live);
    }
    for cfg in &want.configs {
        let live = docker_json(&["config", "inspect", &cfg.name, "--format", "{{json .Spec}}"]);
        assert_subset(&format!("config {}", cfg.name), &cfg.spec, &live);
        assert_eq!(&cfg.spec, &live, "config {} spec", cfg.name);
    }
    for sec in &want.secrets {
        let live = docker_json(&["secret", "inspect", &sec.name, "--format", "{{json .Spec}}"]);
        // The daemon never returns secret data.
        let mut spec = sec.spec.clone();
        spec.as_object_mut().map(|m| m.remove("Data"));
        assert_eq!(spec, live, "secret {} spec", sec.name);
    }
    for (kind, name) in &want.external {
        if *kind == Kind::Network {
            docker(&["network", "inspect", name]).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    after();
}

#[test]
fn basics_match_docker_stack_deploy() {
    check("basics", "cv1", &[]);
}

#[test]
fn networks_volumes_configs_secrets_match_docker_stack_deploy() {
    check("objects", "cv2", &["cv2ext"]);
}

#[test]
fn jobs_and_legacy_restart_match_docker_stack_deploy() {
    check("jobs", "cv5", &[]);
}

// ---- networks: plan clean after docker, re-apply with no write -----------

const NETWORKS: &str = include_str!("fixtures/convert/networks.yml");

/// Network option combinations: docker creates what shoal wants, and
/// shoal then plans no change (the daemon's gateways and VXLAN ids are
/// not differences).
#[test]
fn network_options_match_docker_stack_deploy_and_plan_clean() {
    check_then("networks", "cv6", &[], || {
        let repo = common::Repo::new();
        repo.stack("cv6", NETWORKS);
        let dir = repo.path().to_str().unwrap();
        let out = common::shoal(&[
            "plan",
            "--repo",
            dir,
            "--stack",
            "cv6",
            "--detailed-exitcode",
        ]);
        common::assert_code(&out, 0);
        assert!(
            common::stdout(&out).contains("No changes"),
            "{}",
            common::stdout(&out)
        );
    });
}

/// Ids of the stack's networks, by name.
fn network_ids(stack: &str) -> Vec<String> {
    let filter = format!("label=com.docker.stack.namespace={stack}");
    let out = common::docker(&[
        "network",
        "ls",
        "--filter",
        &filter,
        "--format",
        "{{.Name}} {{.ID}}",
    ]);
    let mut ids: Vec<String> = out.lines().map(str::to_string).collect();
    ids.sort();
    ids
}

/// The same networks created by shoal: a second apply writes nothing (it
/// used to plan every subnet network as "must be replaced" and refuse).
#[test]
fn network_options_applied_by_shoal_reapply_with_no_write() {
    let stack = common::stack_name("cvnet");
    let _guard = common::StackGuard::new(&[&stack]);
    // Pools of their own (10.213.2x.0/24): overlay subnets may not
    // overlap with the test above running at the same time.
    let yaml = NETWORKS.replace("10.213.1", "10.213.2");
    assert_ne!(yaml, NETWORKS);
    let repo = common::Repo::new();
    repo.stack(&stack, &yaml);
    let dir = repo.path().to_str().unwrap();
    let apply = || {
        common::shoal(&[
            "apply",
            "--repo",
            dir,
            "--stack",
            &stack,
            "--auto-approve",
            "--timeout",
            "60s",
        ])
    };
    common::assert_code(&apply(), 0);
    let ids = network_ids(&stack);
    assert_eq!(ids.len(), 6, "{ids:?}");
    let svc = format!("{stack}_app");
    let version = common::service_version(&svc);
    assert!(version.is_some());

    let plan = common::shoal(&[
        "plan",
        "--repo",
        dir,
        "--stack",
        &stack,
        "--detailed-exitcode",
    ]);
    common::assert_code(&plan, 0);
    let again = apply();
    common::assert_code(&again, 0);
    assert!(
        common::stdout(&again).contains("No changes"),
        "{}",
        common::stdout(&again)
    );
    assert_eq!(network_ids(&stack), ids, "a network was replaced");
    assert_eq!(
        common::service_version(&svc),
        version,
        "the service was rewritten"
    );
}
