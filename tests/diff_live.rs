//! The diff against the real swarm: a stack deployed by `docker stack
//! deploy` and read back with `docker ... inspect` plans as no change
//! against the specs docker's convert sends for the same file; a
//! `docker service scale` then shows as a replicas update.
mod common;

use common::{docker, StackGuard};
use serde_json::{json, Value};
use shoal::diff::plan_stack;
use shoal::model::Action;
use shoal::model::{DesiredObject, DesiredStack, Kind, LiveObject, LiveStack};

/// Objects of one kind in the stack, as `docker <kind> inspect` prints them.
fn inspect(kind: &str, stack: &str) -> Vec<Value> {
    let filter = format!("label=com.docker.stack.namespace={stack}");
    let ids = docker(&[kind, "ls", "-q", "--filter", &filter]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut args = vec![kind, "inspect"];
    args.extend(ids);
    serde_json::from_str(&docker(&args)).expect("inspect JSON")
}

fn live_stack(stack: &str) -> LiveStack {
    let objs = |kind: &str| -> Vec<LiveObject> {
        inspect(kind, stack)
            .into_iter()
            .map(|o| LiveObject {
                id: o["ID"].as_str().unwrap_or_default().to_owned(),
                name: o["Spec"]["Name"].as_str().unwrap_or_default().to_owned(),
                version: o["Version"]["Index"].as_u64().unwrap_or_default(),
                spec: o["Spec"].clone(),
                created_at: o["CreatedAt"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    };
    // A network inspect is the resource itself (no Spec, no version).
    let networks = inspect("network", stack)
        .into_iter()
        .map(|n| LiveObject {
            id: n["Id"].as_str().unwrap_or_default().to_owned(),
            name: n["Name"].as_str().unwrap_or_default().to_owned(),
            version: 0,
            spec: n.clone(),
            created_at: n["Created"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    LiveStack {
        name: stack.to_owned(),
        services: objs("service"),
        networks,
        configs: objs("config"),
        secrets: objs("secret"),
    }
}

fn obj(name: &str, spec: Value) -> DesiredObject {
    DesiredObject {
        name: name.to_owned(),
        spec,
        source: Value::Null,
    }
}

/// What docker's convert sends for the compose file below.
fn desired(stack: &str, port: u16) -> DesiredStack {
    let ns = json!({"com.docker.stack.namespace": stack});
    let b64 = |s: &str| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    };
    let web = json!({
        "Name": format!("{stack}_web"),
        "Labels": {"com.docker.stack.image": "nginx:1.27", "com.docker.stack.namespace": stack,
                   "traefik.http.routers.web.rule": "Host(`x.example`)"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "nginx:1.27",
                "Labels": ns,
                "Args": ["sleep", "3600"],
                "Env": ["ALPHA=1", "DB_PASSWORD=hunter2", "FOO=bar"],
                "Privileges": {"CredentialSpec": null, "SELinuxContext": null},
                "Mounts": [
                    {"Type": "volume", "Source": format!("{stack}_data"), "Target": "/data",
                     "VolumeOptions": {"Labels": ns}},
                    {"Type": "bind", "Source": "/tmp", "Target": "/hosttmp", "ReadOnly": true},
                    {"Type": "tmpfs", "Target": "/cache"}
                ],
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 10_000_000_000u64,
                    "Timeout": 5_000_000_000u64, "StartPeriod": 30_000_000_000u64, "Retries": 3},
                "DNSConfig": {},
                "Secrets": [{"File": {"Name": "db_pass", "UID": "0", "GID": "0", "Mode": 292},
                             "SecretName": format!("{stack}_db_pass")}],
                "Configs": [{"File": {"Name": "/etc/app.conf", "UID": "0", "GID": "0", "Mode": 292},
                             "ConfigName": format!("{stack}_app_conf")}],
                "Isolation": ""
            },
            "Resources": {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 134_217_728}},
            "RestartPolicy": {"Condition": "on-failure"},
            "Placement": {},
            "Networks": [{"Target": format!("{stack}_front"), "Aliases": ["web"]}]
        },
        "Mode": {"Replicated": {"Replicas": 2}},
        "UpdateConfig": {"Parallelism": 1, "Delay": 10_000_000_000u64, "FailureAction": "",
            "Monitor": 0, "MaxFailureRatio": 0, "Order": "start-first"},
        "EndpointSpec": {"Mode": "vip", "Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": port, "PublishMode": "ingress"}
        ]}
    });
    let worker = json!({
        "Name": format!("{stack}_worker"),
        "Labels": {"com.docker.stack.image": "busybox:1.36", "com.docker.stack.namespace": stack},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "busybox:1.36",
                "Labels": ns,
                "Args": ["sleep", "3600"],
                "Privileges": {"CredentialSpec": null, "SELinuxContext": null}
            },
            "Resources": {},
            "Placement": {},
            "Networks": [{"Target": format!("{stack}_default"), "Aliases": ["worker"]}]
        },
        "Mode": {"Global": {}},
        "EndpointSpec": {"Mode": "vip"}
    });
    let network = |labels: Value| json!({"Labels": labels, "Driver": "overlay", "Scope": "swarm"});
    DesiredStack {
        name: stack.to_owned(),
        services: vec![
            obj(&format!("{stack}_web"), web),
            obj(&format!("{stack}_worker"), worker),
        ],
        networks: vec![
            obj(&format!("{stack}_default"), network(ns.clone())),
            obj(
                &format!("{stack}_front"),
                network(json!({"a": "b", "com.docker.stack.namespace": stack})),
            ),
        ],
        configs: vec![obj(
            &format!("{stack}_app_conf"),
            json!({"Name": format!("{stack}_app_conf"), "Labels": ns, "Data": b64("line1\nline2\n")}),
        )],
        secrets: vec![obj(
            &format!("{stack}_db_pass"),
            json!({"Name": format!("{stack}_db_pass"), "Labels": ns, "Data": b64("s3cret")}),
        )],
        ..Default::default()
    }
}

/// The stack both diff oracles deploy with docker and plan with shoal
/// (`PORT` is replaced by a free port).
const COMPOSE: &str = include_str!("fixtures/diff/stack.yml");

#[test]
fn docker_deployed_stack_plans_as_no_change_and_scale_shows() {
    let pid = std::process::id();
    let stack = format!("diffit{}", pid % 100_000);
    let port = 20_000 + (pid % 10_000) as u16;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("stack.yml"),
        COMPOSE.replace("PORT", &port.to_string()),
    )
    .unwrap();
    std::fs::write(dir.path().join("app.conf"), "line1\nline2\n").unwrap();
    std::fs::write(dir.path().join("db_pass"), "s3cret").unwrap();
    let _cleanup = StackGuard::new(&[&stack]);
    let file = dir.path().join("stack.yml");
    docker(&[
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "-c",
        file.to_str().unwrap(),
        &stack,
    ]);

    let desired = desired(&stack, port);
    let live = live_stack(&stack);
    assert_eq!(live.services.len(), 2, "{live:#?}");
    let changes = plan_stack(Some(&desired), Some(&live));
    let not_noop: Vec<_> = changes
        .iter()
        .filter(|c| c.action != Action::Noop)
        .collect();
    assert!(not_noop.is_empty(), "expected no change, got {not_noop:#?}");
    assert_eq!(changes.len(), 6, "{changes:#?}");

    docker(&["service", "scale", "-d", &format!("{stack}_web=3")]);
    let live = live_stack(&stack);
    let changes = plan_stack(Some(&desired), Some(&live));
    let not_noop: Vec<_> = changes
        .iter()
        .filter(|c| c.action != Action::Noop)
        .collect();
    assert_eq!(not_noop.len(), 1, "{not_noop:#?}");
    let web = not_noop[0];
    assert_eq!((web.action, web.kind), (Action::Update, Kind::Service));
    assert_eq!(web.name, format!("{stack}_web"));
    assert_eq!(web.diff.len(), 1, "{:#?}", web.diff);
    assert_eq!(web.diff[0].path, "Mode.Replicated.Replicas");
    assert_eq!(
        (web.diff[0].before.clone(), web.diff[0].after.clone()),
        (json!(3), json!(2))
    );
    assert!(web.live_id.is_some() && web.live_version.is_some());
}
