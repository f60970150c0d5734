//! Unit tests of the diff: normalization rules, paths, masking, rotation.
//! Live fixtures in `testdata/` were captured from Engine 20.10 after
//! `docker stack deploy` (raw API and `docker service inspect` shapes).
use super::*;
use crate::model::REPLACE_REQUIRED;
use base64::Engine as _;
use serde_json::json;

const FRONT_ID: &str = "u7us6g9mva5upogagt9col852";
const DEFAULT_ID: &str = "6d92q8zylvlp93e9g4dwph8gq";

fn fixture(name: &str) -> Value {
    let text = match name {
        "web_raw" => include_str!("testdata/web_raw.json"),
        "web_cli" => include_str!("testdata/web_cli.json"),
        "worker_cli" => include_str!("testdata/worker_cli.json"),
        "network_front_raw" => include_str!("testdata/network_front_raw.json"),
        "network_internal_subnet_raw" => include_str!("testdata/network_internal_subnet_raw.json"),
        "network_two_subnets_raw" => include_str!("testdata/network_two_subnets_raw.json"),
        "app_raw" => include_str!("testdata/app_raw.json"),
        "app_cli" => include_str!("testdata/app_cli.json"),
        "job_raw" => include_str!("testdata/job_raw.json"),
        "job_cli" => include_str!("testdata/job_cli.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).unwrap()
}

/// What docker's convert sends for the `web` service of the fixture stack.
fn desired_web() -> Value {
    json!({
        "Name": "diff1_web",
        "Labels": {
            "com.docker.stack.image": "nginx:1.27",
            "com.docker.stack.namespace": "diff1",
            "traefik.http.routers.web.rule": "Host(`x.example`)"
        },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "nginx:1.27",
                "Labels": {"com.docker.stack.namespace": "diff1"},
                "Args": ["sleep", "3600"],
                "Env": ["ALPHA=1", "DB_PASSWORD=hunter2", "FOO=bar"],
                "Privileges": {"CredentialSpec": null, "SELinuxContext": null},
                "Mounts": [
                    {"Type": "volume", "Source": "diff1_data", "Target": "/data",
                     "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "diff1"}}},
                    {"Type": "bind", "Source": "/tmp", "Target": "/hosttmp", "ReadOnly": true},
                    {"Type": "tmpfs", "Target": "/cache"}
                ],
                "Healthcheck": {"Test": ["CMD", "true"], "Interval": 10_000_000_000u64,
                    "Timeout": 5_000_000_000u64, "StartPeriod": 30_000_000_000u64, "Retries": 3},
                "DNSConfig": {},
                "Secrets": [{"File": {"Name": "db_pass", "UID": "0", "GID": "0", "Mode": 292},
                             "SecretName": "diff1_db_pass"}],
                "Configs": [{"File": {"Name": "/etc/app.conf", "UID": "0", "GID": "0", "Mode": 292},
                             "ConfigName": "diff1_app_conf"}],
                "Isolation": ""
            },
            "Resources": {"Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 134_217_728}},
            "RestartPolicy": {"Condition": "on-failure"},
            "Placement": {},
            "Networks": [{"Target": "diff1_front", "Aliases": ["web"]}]
        },
        "Mode": {"Replicated": {"Replicas": 2}},
        "UpdateConfig": {"Parallelism": 1, "Delay": 10_000_000_000u64, "FailureAction": "",
            "Monitor": 0, "MaxFailureRatio": 0, "Order": "start-first"},
        "EndpointSpec": {"Mode": "vip", "Ports": [
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 18081, "PublishMode": "ingress"},
            {"Protocol": "udp", "TargetPort": 443, "PublishedPort": 18443, "PublishMode": "host"}
        ]}
    })
}

fn desired_worker() -> Value {
    json!({
        "Name": "diff1_worker",
        "Labels": {"com.docker.stack.image": "busybox:1.36", "com.docker.stack.namespace": "diff1"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "busybox:1.36",
                "Labels": {"com.docker.stack.namespace": "diff1"},
                "Args": ["sleep", "3600"],
                "Privileges": {"CredentialSpec": null, "SELinuxContext": null}
            },
            "Resources": {},
            "Placement": {},
            "Networks": [{"Target": "diff1_default", "Aliases": ["worker"]}]
        },
        "Mode": {"Global": {}},
        "EndpointSpec": {"Mode": "vip"}
    })
}

fn ctx() -> NormContext {
    NormContext {
        network_names: [(FRONT_ID, "diff1_front"), (DEFAULT_ID, "diff1_default")]
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect(),
    }
}

fn svc_diff(desired: &Value, live: &Value) -> Vec<FieldChange> {
    diff_spec_with(Kind::Service, desired, live, &ctx())
}

fn paths(d: &[FieldChange]) -> Vec<String> {
    d.iter().map(|f| f.path.clone()).collect()
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A minimal service spec with a container spec, for rule tests.
fn svc(extra_cs: Value) -> Value {
    let mut s = json!({
        "Name": "s_web",
        "TaskTemplate": {"ContainerSpec": {"Image": "nginx:1.27"}},
        "Mode": {"Replicated": {"Replicas": 1}}
    });
    if let Value::Object(m) = extra_cs {
        for (k, v) in m {
            s["TaskTemplate"]["ContainerSpec"][k] = v;
        }
    }
    s
}

fn with(mut base: Value, pointer: &str, v: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let mut cur = &mut base;
    for p in parent.split('/').filter(|p| !p.is_empty()) {
        if cur.get(p).is_none() {
            cur[p] = json!({});
        }
        cur = cur.get_mut(p).unwrap();
    }
    cur[key] = v;
    base
}

// ----------------------------------------------------- real docker shapes

#[test]
fn docker_deployed_web_raw_api_is_no_change() {
    assert_eq!(svc_diff(&desired_web(), &fixture("web_raw")), vec![]);
}

#[test]
fn docker_deployed_web_cli_inspect_is_no_change() {
    assert_eq!(svc_diff(&desired_web(), &fixture("web_cli")), vec![]);
}

#[test]
fn docker_deployed_global_worker_cli_inspect_is_no_change() {
    assert_eq!(svc_diff(&desired_worker(), &fixture("worker_cli")), vec![]);
}

#[test]
fn docker_deployed_network_is_no_change() {
    let desired = json!({
        "Labels": {"a": "b", "com.docker.stack.namespace": "diff1"},
        "Driver": "overlay", "Internal": false, "Attachable": false, "Scope": "swarm"
    });
    assert_eq!(
        diff_spec(Kind::Network, &desired, &fixture("network_front_raw")),
        vec![]
    );
}

// --------------------------------------------------- normalization rules

#[test]
fn rule_force_update_is_ignored() {
    let live = with(svc(json!({})), "/TaskTemplate/ForceUpdate", json!(3));
    assert!(svc_diff(&svc(json!({})), &live).is_empty());
}

#[test]
fn rule_runtime_container_is_default() {
    let live = with(svc(json!({})), "/TaskTemplate/Runtime", json!("container"));
    assert!(svc_diff(&svc(json!({})), &live).is_empty());
    let plugin = with(svc(json!({})), "/TaskTemplate/Runtime", json!("plugin"));
    assert_eq!(
        paths(&svc_diff(&svc(json!({})), &plugin)),
        ["TaskTemplate.Runtime"]
    );
}

#[test]
fn rule_isolation_default() {
    let live = svc(json!({"Isolation": "default"}));
    assert!(svc_diff(&svc(json!({"Isolation": ""})), &live).is_empty());
}

#[test]
fn rule_stop_grace_period_10s_is_default() {
    let live = svc(json!({"StopGracePeriod": 10_000_000_000u64}));
    assert!(svc_diff(&svc(json!({})), &live).is_empty());
    let d = svc_diff(&svc(json!({"StopGracePeriod": 30_000_000_000u64})), &live);
    assert_eq!(paths(&d), ["TaskTemplate.ContainerSpec.StopGracePeriod"]);
    assert_eq!(d[0].before, json!(null));
}

#[test]
fn rule_placement_platforms_and_constraint_order() {
    let desired = with(
        svc(json!({})),
        "/TaskTemplate/Placement",
        json!({"Constraints": ["a==1", "b==2"]}),
    );
    let live = with(
        svc(json!({})),
        "/TaskTemplate/Placement",
        json!({"Constraints": ["b==2", "a==1"], "Platforms": [{"Architecture": "amd64", "OS": "linux"}]}),
    );
    assert!(svc_diff(&desired, &live).is_empty());
}

#[test]
fn rule_restart_policy_defaults() {
    let live = with(
        svc(json!({})),
        "/TaskTemplate/RestartPolicy",
        json!({"Condition": "any", "Delay": 5_000_000_000u64, "MaxAttempts": 0}),
    );
    assert!(svc_diff(&svc(json!({})), &live).is_empty());
    let desired = with(
        svc(json!({})),
        "/TaskTemplate/RestartPolicy",
        json!({"Condition": "on-failure"}),
    );
    let d = svc_diff(&desired, &live);
    assert_eq!(paths(&d), ["TaskTemplate.RestartPolicy"]);
    assert_eq!(d[0].after, json!({"Condition": "on-failure"}));
}

#[test]
fn rule_update_and_rollback_config_defaults() {
    let defaults = json!({"Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000u64,
        "MaxFailureRatio": 0, "Order": "stop-first"});
    let live = with(
        with(svc(json!({})), "/UpdateConfig", defaults.clone()),
        "/RollbackConfig",
        defaults,
    );
    assert!(svc_diff(&svc(json!({})), &live).is_empty());
}

#[test]
fn rule_parallelism_zero_is_not_the_default() {
    let live = with(svc(json!({})), "/UpdateConfig", json!({"Parallelism": 1}));
    let desired = with(svc(json!({})), "/UpdateConfig", json!({"Parallelism": 0}));
    let d = svc_diff(&desired, &live);
    assert_eq!(paths(&d), ["UpdateConfig"]);
}

#[test]
fn rule_endpoint_mode_vip_and_port_defaults() {
    let desired = with(
        svc(json!({})),
        "/EndpointSpec",
        json!({"Ports": [{"TargetPort": 80, "PublishedPort": 8080}]}),
    );
    let live = with(
        svc(json!({})),
        "/EndpointSpec",
        json!({"Mode": "vip", "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}]}),
    );
    assert!(svc_diff(&desired, &live).is_empty());
}

#[test]
fn ports_are_keyed_by_published_and_protocol() {
    let p = |a: u64, b: u64| json!({"Protocol": "tcp", "TargetPort": a, "PublishedPort": b});
    let desired = with(
        svc(json!({})),
        "/EndpointSpec",
        json!({"Ports": [p(81, 8080), p(443, 8443)]}),
    );
    let live = with(
        svc(json!({})),
        "/EndpointSpec",
        json!({"Ports": [p(443, 8443), p(80, 8080)]}),
    );
    let d = svc_diff(&desired, &live);
    assert_eq!(paths(&d), ["EndpointSpec.Ports[8080/tcp].TargetPort"]);
    assert_eq!(
        (d[0].before.clone(), d[0].after.clone()),
        (json!(80), json!(81))
    );
}

#[test]
fn rule_legacy_networks_move_and_ids_resolve() {
    let desired = with(
        svc(json!({})),
        "/TaskTemplate/Networks",
        json!([{"Target": "diff1_front", "Aliases": ["a", "web"]}]),
    );
    let mut live = svc(json!({}));
    live["Networks"] = json!([{"Target": FRONT_ID, "Aliases": ["web", "a"]}]);
    assert!(svc_diff(&desired, &live).is_empty());
}

#[test]
fn network_attachments_are_keyed_by_name() {
    let desired = with(
        svc(json!({})),
        "/TaskTemplate/Networks",
        json!([{"Target": "diff1_front"}, {"Target": "traefik-public"}]),
    );
    let live = with(
        svc(json!({})),
        "/TaskTemplate/Networks",
        json!([{"Target": FRONT_ID}]),
    );
    let d = svc_diff(&desired, &live);
    assert_eq!(paths(&d), ["TaskTemplate.Networks[traefik-public]"]);
    assert_eq!(d[0].after, json!({"Target": "traefik-public"}));
}

#[test]
fn unresolved_network_id_shows_as_a_change() {
    let desired = with(
        svc(json!({})),
        "/TaskTemplate/Networks",
        json!([{"Target": "diff1_front"}]),
    );
    let live = with(
        svc(json!({})),
        "/TaskTemplate/Networks",
        json!([{"Target": FRONT_ID}]),
    );
    assert!(!diff_spec(Kind::Service, &desired, &live).is_empty());
}

#[test]
fn rule_env_is_a_map_by_name() {
    let desired = svc(json!({"Env": ["B=2", "A=1"]}));
    let live = svc(json!({"Env": ["A=1", "B=2"]}));
    assert!(svc_diff(&desired, &live).is_empty());
    let d = svc_diff(&svc(json!({"Env": ["A=1", "B=3", "C"]})), &live);
    assert_eq!(
        paths(&d),
        [
            "TaskTemplate.ContainerSpec.Env[B]",
            "TaskTemplate.ContainerSpec.Env[C]"
        ]
    );
    assert_eq!(
        (d[0].before.clone(), d[0].after.clone()),
        (json!("2"), json!("3"))
    );
    assert_eq!(
        (d[1].before.clone(), d[1].after.clone()),
        (json!(null), json!(null))
    );
}

#[test]
fn env_empty_value_differs_from_unset() {
    let d = svc_diff(&svc(json!({"Env": ["A="]})), &svc(json!({"Env": ["A=x"]})));
    assert_eq!(paths(&d), ["TaskTemplate.ContainerSpec.Env[A]"]);
    assert_eq!(d[0].after, json!(""));
}

#[test]
fn secret_looking_env_is_sensitive() {
    let d = svc_diff(
        &svc(json!({"Env": ["DB_PASSWORD=new", "Api_Token=t", "MY_LICENSE=l", "FOO=1"]})),
        &svc(json!({"Env": ["DB_PASSWORD=old"]})),
    );
    let sensitive: Vec<(String, bool)> = d.iter().map(|f| (f.path.clone(), f.sensitive)).collect();
    assert_eq!(
        sensitive,
        [
            ("TaskTemplate.ContainerSpec.Env[Api_Token]".to_owned(), true),
            (
                "TaskTemplate.ContainerSpec.Env[DB_PASSWORD]".to_owned(),
                true
            ),
            ("TaskTemplate.ContainerSpec.Env[FOO]".to_owned(), false),
            (
                "TaskTemplate.ContainerSpec.Env[MY_LICENSE]".to_owned(),
                true
            ),
        ]
    );
}

#[test]
fn rule_mounts_are_keyed_by_target() {
    let a = json!({"Type": "volume", "Source": "v", "Target": "/data"});
    let b = json!({"Type": "bind", "Source": "/tmp", "Target": "/t", "ReadOnly": true});
    let b_rw = json!({"Type": "bind", "Source": "/tmp", "Target": "/t", "BindOptions": {"Propagation": "rprivate"}});
    assert!(svc_diff(
        &svc(json!({"Mounts": [a, b]})),
        &svc(json!({"Mounts": [b, a]}))
    )
    .is_empty());
    let d = svc_diff(
        &svc(json!({"Mounts": [a, b_rw]})),
        &svc(json!({"Mounts": [b, a]})),
    );
    assert_eq!(
        paths(&d),
        ["TaskTemplate.ContainerSpec.Mounts[/t].ReadOnly"]
    );
    assert_eq!(
        (d[0].before.clone(), d[0].after.clone()),
        (json!(true), json!(null))
    );
}

#[test]
fn rule_config_and_secret_refs_compare_by_name() {
    let desired = svc(json!({
        "Configs": [{"File": {"Name": "/etc/a"}, "ConfigName": "s_a"}],
        "Secrets": [{"File": {"Name": "pw", "UID": "0", "GID": "0", "Mode": 292}, "SecretName": "s_pw"}]
    }));
    let live = svc(json!({
        "Configs": [{"File": {"Name": "/etc/a", "UID": "0", "GID": "0", "Mode": 292}, "ConfigID": "abc", "ConfigName": "s_a"}],
        "Secrets": [{"File": {"Name": "pw", "UID": "0", "GID": "0", "Mode": 292}, "SecretID": "def", "SecretName": "s_pw"}]
    }));
    assert!(svc_diff(&desired, &live).is_empty());
    let renamed =
        svc(json!({"Configs": [{"File": {"Name": "/etc/a"}, "ConfigName": "s_a-1234abcd"}]}));
    let d = svc_diff(
        &renamed,
        &with(live, "/TaskTemplate/ContainerSpec/Secrets", json!([])),
    );
    assert_eq!(
        paths(&d),
        ["TaskTemplate.ContainerSpec.Configs[/etc/a].ConfigName"]
    );
}

#[test]
fn rule_empty_values_equal_absent() {
    let live = svc(json!({
        "Privileges": {"CredentialSpec": null, "SELinuxContext": null, "NoNewPrivileges": false},
        "DNSConfig": {}, "Labels": {}, "Env": [], "TTY": false, "Dir": ""
    }));
    let desired = with(
        svc(json!({})),
        "/TaskTemplate/Resources",
        json!({"Limits": {}, "Reservations": {}}),
    );
    assert!(svc_diff(&desired, &live).is_empty());
}

#[test]
fn rule_global_mode_is_kept() {
    let global = with(svc(json!({})), "/Mode", json!({"Global": {}}));
    assert!(svc_diff(&global, &global).is_empty());
    let d = svc_diff(&global, &svc(json!({})));
    assert_eq!(paths(&d), ["Mode.Global", "Mode.Replicated"]);
}

#[test]
fn replicas_zero_is_kept_and_paths_are_readable() {
    let zero = with(svc(json!({})), "/Mode/Replicated/Replicas", json!(0));
    let d = svc_diff(&zero, &svc(json!({})));
    assert_eq!(paths(&d), ["Mode.Replicated.Replicas"]);
    assert_eq!(
        (d[0].before.clone(), d[0].after.clone()),
        (json!(1), json!(0))
    );
}

#[test]
fn rule_pinned_image_with_same_label_is_no_change() {
    let desired = with_image_label(svc(json!({})), "nginx:1.27");
    let live = with_image_label(
        svc(json!({"Image": "nginx:1.27@sha256:0123abcd"})),
        "nginx:1.27",
    );
    assert!(svc_diff(&desired, &live).is_empty());
    // A new tag is a change, shown against the pinned image.
    let newer = with(
        with(
            desired,
            "/TaskTemplate/ContainerSpec/Image",
            json!("nginx:1.28"),
        ),
        "/Labels/com.docker.stack.image",
        json!("nginx:1.28"),
    );
    let d = svc_diff(&newer, &live);
    assert_eq!(
        paths(&d),
        [
            "Labels[com.docker.stack.image]",
            "TaskTemplate.ContainerSpec.Image"
        ]
    );
    assert_eq!(d[1].before, json!("nginx:1.27@sha256:0123abcd"));
}

#[test]
fn healthcheck_fields_compare() {
    let hc = |i: u64| svc(json!({"Healthcheck": {"Test": ["CMD", "true"], "Interval": i}}));
    let d = svc_diff(&hc(30_000_000_000), &hc(10_000_000_000));
    assert_eq!(
        paths(&d),
        ["TaskTemplate.ContainerSpec.Healthcheck.Interval"]
    );
}

#[test]
fn args_compare_by_index() {
    let d = svc_diff(
        &svc(json!({"Args": ["sleep", "60"]})),
        &svc(json!({"Args": ["sleep", "3600"]})),
    );
    assert_eq!(paths(&d), ["TaskTemplate.ContainerSpec.Args[1]"]);
}

// -------------------------------------------------------------- networks

#[test]
fn network_ipam_config_compared_only_when_desired() {
    let live = fixture("network_front_raw");
    let desired = json!({"Driver": "overlay", "Labels": {"a": "b", "com.docker.stack.namespace": "diff1"},
        "IPAM": {"Config": [{"Subnet": "10.9.0.0/24"}]}});
    let d = diff_spec(Kind::Network, &desired, &live);
    assert_eq!(d[0].path, REPLACE_REQUIRED);
    // The gateway is the daemon's: only the subnet the file sets differs.
    assert_eq!(paths(&d)[1..], ["IPAM.Config[0].Subnet"]);
}

/// What shoal's convert (and docker's) sends for
/// `networks: {drv: {internal: true, attachable: true, labels: [x=y],
/// driver_opts: {com.docker.network.driver.mtu: "1450"},
/// ipam: {driver: default, config: [{subnet: 10.213.6.0/24}]}}}`.
fn desired_internal_subnet() -> Value {
    json!({
        "Name": "npa_drv", "Driver": "overlay", "Internal": true, "Attachable": true,
        "IPAM": {"Driver": "default", "Config": [{"Subnet": "10.213.6.0/24"}]},
        "Options": {"com.docker.network.driver.mtu": "1450"},
        "Labels": {"com.docker.stack.namespace": "npa", "x": "y"}
    })
}

/// The daemon fills the gateway of a given subnet (`10.213.6.1`) and the
/// overlay's VXLAN id: a network docker stack deploy (or shoal) created
/// from the file is no change, so it can be re-applied.
#[test]
fn docker_deployed_network_with_subnet_is_no_change() {
    let live = fixture("network_internal_subnet_raw");
    assert_eq!(live["IPAM"]["Config"][0]["Gateway"], "10.213.6.1");
    assert_eq!(
        diff_spec(Kind::Network, &desired_internal_subnet(), &live),
        vec![]
    );
}

#[test]
fn docker_deployed_network_with_two_subnets_is_no_change() {
    let live = fixture("network_two_subnets_raw");
    let desired = json!({
        "Name": "npa_two", "Driver": "overlay", "Internal": false, "Attachable": false,
        "IPAM": {"Config": [{"Subnet": "10.213.4.0/24"}, {"Subnet": "10.213.3.0/24"}]},
        "Labels": {"com.docker.stack.namespace": "npa"}
    });
    assert_eq!(diff_spec(Kind::Network, &desired, &live), vec![]);
    // Pools pair by position, as the daemon keeps them: a changed second
    // subnet is a change of that pool only.
    let mut moved = desired.clone();
    moved["IPAM"]["Config"][1]["Subnet"] = json!("10.213.9.0/24");
    let d = diff_spec(Kind::Network, &moved, &live);
    assert_eq!(paths(&d), [REPLACE_REQUIRED, "IPAM.Config[1].Subnet"]);
    // A third pool the live network lacks is a change too.
    let mut more = desired.clone();
    more["IPAM"]["Config"]
        .as_array_mut()
        .unwrap()
        .push(json!({"Subnet": "10.213.8.0/24"}));
    let d = diff_spec(Kind::Network, &more, &live);
    assert_eq!(d[0].path, REPLACE_REQUIRED);
    assert!(paths(&d).contains(&"IPAM.Config[2]".to_string()), "{d:?}");
}

/// Fields the file does set are still compared: a different subnet, a
/// gateway or IP range given explicitly (a request shoal's convert does
/// not make today, as docker's schema has only `subnet`), the internal
/// flag, a driver option.
#[test]
fn network_fields_set_by_the_file_are_compared() {
    let live = fixture("network_internal_subnet_raw");
    let change = |path: &str, v: Value| {
        let mut d = desired_internal_subnet();
        *d.pointer_mut(path).unwrap() = v;
        paths(&diff_spec(Kind::Network, &d, &live))
    };
    assert_eq!(
        change(
            "/IPAM/Config/0",
            json!({"Subnet": "10.213.6.0/24", "Gateway": "10.213.6.254"})
        ),
        [REPLACE_REQUIRED, "IPAM.Config[0].Gateway"]
    );
    assert_eq!(
        change(
            "/IPAM/Config/0",
            json!({"Subnet": "10.213.6.0/24", "Gateway": "10.213.6.1"})
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        change(
            "/IPAM/Config/0",
            json!({"Subnet": "10.213.6.0/24", "IPRange": "10.213.6.128/25"})
        ),
        [REPLACE_REQUIRED, "IPAM.Config[0].IPRange"]
    );
    assert_eq!(
        change("/IPAM/Config/0/Subnet", json!("10.213.7.0/24")),
        [REPLACE_REQUIRED, "IPAM.Config[0].Subnet"]
    );
    assert_eq!(
        change("/Internal", json!(false)),
        [REPLACE_REQUIRED, "Internal"]
    );
    assert_eq!(
        change("/Options/com.docker.network.driver.mtu", json!("1400")),
        [REPLACE_REQUIRED, "Options[com.docker.network.driver.mtu]"]
    );
}

#[test]
fn network_change_is_an_update_that_requires_replace() {
    let stack = DesiredStack {
        name: "diff1".into(),
        networks: vec![DesiredObject {
            name: "diff1_front".into(),
            spec: json!({"Driver": "overlay", "Internal": true, "Labels": {"a": "b", "com.docker.stack.namespace": "diff1"}}),
            source: Value::Null,
        }],
        ..Default::default()
    };
    let live = LiveStack {
        name: "diff1".into(),
        networks: vec![live_obj(
            FRONT_ID,
            "diff1_front",
            fixture("network_front_raw"),
            "",
        )],
        ..Default::default()
    };
    let changes = plan_stack(Some(&stack), Some(&live));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].action, Action::Update);
    assert!(changes[0].requires_replace());
    assert_eq!(paths(&changes[0].diff), [REPLACE_REQUIRED, "Internal"]);
}

// --------------------------------------------------------- plan of a stack

/// `spec` with the stack image label (the image as the stack file wrote it).
fn with_image_label(mut spec: Value, image: &str) -> Value {
    spec["Labels"] = json!({"com.docker.stack.image": image});
    spec
}

/// The diff of the default service (`nginx:1.27`) with image label
/// `label` against a live one running `live_image` under `live_label`.
fn pinned_live_diff(label: &str, live_image: &str, live_label: &str) -> Vec<FieldChange> {
    let desired = with_image_label(svc(json!({})), label);
    let live = with_image_label(svc(json!({"Image": live_image})), live_label);
    svc_diff(&desired, &live)
}

/// How many of `changes` are `action`.
fn count(changes: &[Change], action: Action) -> usize {
    changes.iter().filter(|c| c.action == action).count()
}

fn live_obj(id: &str, name: &str, spec: Value, created: &str) -> LiveObject {
    LiveObject {
        id: id.into(),
        name: name.into(),
        version: 7,
        spec,
        created_at: created.into(),
    }
}

fn desired_obj(name: &str, spec: Value) -> DesiredObject {
    DesiredObject {
        name: name.into(),
        spec,
        source: Value::Null,
    }
}

fn config_spec(name: &str, text: &str) -> Value {
    json!({"Name": name, "Labels": {"com.docker.stack.namespace": "s"}, "Data": b64(text)})
}

fn secret_live(name: &str, digest_of: Option<&str>) -> Value {
    let mut labels = json!({"com.docker.stack.namespace": "s"});
    if let Some(t) = digest_of {
        labels[DIGEST_LABEL] = json!(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(t.as_bytes()))
        ));
    }
    json!({"Name": name, "Labels": labels})
}

use sha2::Digest as _;

fn service_using(config: Option<&str>, secret: Option<&str>) -> Value {
    let mut cs = json!({});
    if let Some(c) = config {
        cs["Configs"] =
            json!([{"File": {"Name": "/etc/app.conf"}, "ConfigName": c, "ConfigID": "x"}]);
    }
    if let Some(s) = secret {
        cs["Secrets"] = json!([{"File": {"Name": "pw"}, "SecretName": s, "SecretID": "y"}]);
    }
    let mut s = svc(cs);
    s["Name"] = json!("s_web");
    s
}

fn find<'a>(changes: &'a [Change], kind: Kind, name: &str) -> &'a Change {
    changes
        .iter()
        .find(|c| c.kind == kind && c.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {changes:#?}"))
}

fn actions(changes: &[Change]) -> Vec<(Action, Kind, String)> {
    changes
        .iter()
        .map(|c| (c.action, c.kind, c.name.clone()))
        .collect()
}

#[test]
fn whole_docker_stack_plans_as_noop() {
    let desired = DesiredStack {
        name: "diff1".into(),
        services: vec![
            desired_obj("diff1_web", desired_web()),
            desired_obj("diff1_worker", desired_worker()),
        ],
        ..Default::default()
    };
    let live = LiveStack {
        name: "diff1".into(),
        services: vec![
            live_obj("w1", "diff1_web", fixture("web_raw"), ""),
            live_obj("w2", "diff1_worker", fixture("worker_cli"), ""),
        ],
        networks: vec![live_obj(
            FRONT_ID,
            "diff1_front",
            fixture("network_front_raw"),
            "",
        )],
        ..Default::default()
    };
    let mut opts = DiffOptions::default();
    opts.network_names
        .insert(DEFAULT_ID.into(), "diff1_default".into());
    let changes = plan_stack_with(Some(&desired), Some(&live), &opts);
    // The live network is not desired here: it is the only change.
    assert_eq!(
        actions(&changes),
        [
            (Action::Delete, Kind::Network, "diff1_front".into()),
            (Action::Noop, Kind::Service, "diff1_web".into()),
            (Action::Noop, Kind::Service, "diff1_worker".into()),
        ]
    );
    let web = find(&changes, Kind::Service, "diff1_web");
    assert_eq!(web.live_id.as_deref(), Some("w1"));
    assert_eq!(web.live_version, Some(7));
    assert!(web.desired.is_some());
}

#[test]
fn creates_when_nothing_is_live() {
    let desired = DesiredStack {
        name: "s".into(),
        services: vec![desired_obj("s_web", service_using(Some("s_app"), None))],
        networks: vec![desired_obj("s_default", json!({"Driver": "overlay"}))],
        configs: vec![desired_obj("s_app", config_spec("s_app", "hello\n"))],
        ..Default::default()
    };
    let changes = plan_stack(Some(&desired), None);
    assert_eq!(
        actions(&changes),
        [
            (Action::Create, Kind::Network, "s_default".into()),
            (Action::Create, Kind::Config, "s_app".into()),
            (Action::Create, Kind::Service, "s_web".into()),
        ]
    );
    let cfg = find(&changes, Kind::Config, "s_app");
    assert_eq!(paths(&cfg.diff), ["Data"]);
    assert_eq!(
        (cfg.diff[0].before.clone(), cfg.diff[0].after.clone()),
        (json!(null), json!("hello\n"))
    );
    assert!(changes
        .iter()
        .all(|c| c.desired.is_some() && c.live_id.is_none()));
}

#[test]
fn a_created_service_lists_what_it_writes_without_repeats() {
    let desired = DesiredStack {
        name: "diff1".into(),
        services: vec![desired_obj("diff1_web", desired_web())],
        ..Default::default()
    };
    let changes = plan_stack(Some(&desired), None);
    let web = find(&changes, Kind::Service, "diff1_web");
    let got = paths(&web.diff);
    for want in [
        "Mode.Replicated.Replicas",
        "TaskTemplate.ContainerSpec.Image",
        "TaskTemplate.ContainerSpec.Env[FOO]",
        "TaskTemplate.ContainerSpec.Mounts[/data].Source",
        "TaskTemplate.Networks[diff1_front].Aliases",
        "Labels[traefik.http.routers.web.rule]",
    ] {
        assert!(got.iter().any(|p| p == want), "{want} missing from {got:?}");
    }
    // The header names it; the key says the target; every object is in the stack.
    for unwanted in [
        "Name",
        "Labels[com.docker.stack.namespace]",
        "TaskTemplate.Networks[diff1_front].Target",
        "TaskTemplate.ContainerSpec.Mounts[/data].Target",
        "TaskTemplate.ContainerSpec.Isolation",
    ] {
        assert!(
            !got.iter().any(|p| p == unwanted),
            "{unwanted} listed in {got:?}"
        );
    }
    let pw = web
        .diff
        .iter()
        .find(|f| f.path == "TaskTemplate.ContainerSpec.Env[DB_PASSWORD]")
        .unwrap();
    assert!(pw.sensitive);
    // A new secret says only that it has content.
    let fields = creation_fields(
        Kind::Secret,
        &json!({"Name": "s_pw", "Data": "aHVudGVyMg=="}),
        &NormContext::default(),
    );
    assert_eq!(paths(&fields), ["Data"]);
    assert!(fields[0].sensitive);
}

#[test]
fn removed_stack_deletes_everything() {
    let live = LiveStack {
        name: "s".into(),
        services: vec![live_obj(
            "1",
            "s_web",
            service_using(Some("s_app"), None),
            "",
        )],
        networks: vec![live_obj("2", "s_default", json!({}), "")],
        configs: vec![
            live_obj(
                "3",
                "s_app",
                config_spec("s_app", "a"),
                "2026-01-01T00:00:00Z",
            ),
            live_obj(
                "4",
                "s_app-0123abcd",
                config_spec("s_app-0123abcd", "b"),
                "2026-01-02T00:00:00Z",
            ),
        ],
        secrets: vec![live_obj("5", "s_pw", secret_live("s_pw", None), "")],
    };
    let changes = plan_stack(None, Some(&live));
    assert_eq!(changes.len(), 5);
    assert!(changes
        .iter()
        .all(|c| c.action == Action::Delete && c.desired.is_none() && c.live_id.is_some()));
}

#[test]
fn update_keeps_live_force_update_and_pinned_image() {
    let mut desired = with_image_label(svc(json!({})), "nginx:1.27");
    desired["Mode"]["Replicated"]["Replicas"] = json!(3);
    let mut live = with_image_label(svc(json!({"Image": "nginx:1.27@sha256:ff"})), "nginx:1.27");
    live["TaskTemplate"]["ForceUpdate"] = json!(2);
    let ds = DesiredStack {
        name: "s".into(),
        services: vec![desired_obj("s_web", desired)],
        ..Default::default()
    };
    let ls = LiveStack {
        name: "s".into(),
        services: vec![live_obj("id", "s_web", live, "")],
        ..Default::default()
    };
    let changes = plan_stack(Some(&ds), Some(&ls));
    let c = find(&changes, Kind::Service, "s_web");
    assert_eq!(c.action, Action::Update);
    assert_eq!(paths(&c.diff), ["Mode.Replicated.Replicas"]);
    let spec = c.desired.as_ref().unwrap();
    assert_eq!(spec["TaskTemplate"]["ForceUpdate"], json!(2));
    assert_eq!(
        spec["TaskTemplate"]["ContainerSpec"]["Image"],
        json!("nginx:1.27@sha256:ff")
    );
}

// -------------------------------------------------------------- rotation

fn config_stack(text: &str) -> DesiredStack {
    DesiredStack {
        name: "s".into(),
        services: vec![desired_obj("s_web", service_using(Some("s_app"), None))],
        configs: vec![desired_obj("s_app", config_spec("s_app", text))],
        ..Default::default()
    }
}

fn live_configs(using: &str, configs: &[(&str, &str, &str)]) -> LiveStack {
    LiveStack {
        name: "s".into(),
        services: vec![live_obj(
            "svc",
            "s_web",
            service_using(Some(using), None),
            "",
        )],
        configs: configs
            .iter()
            .map(|(name, text, created)| {
                live_obj(
                    &format!("id-{name}"),
                    name,
                    config_spec(name, text),
                    created,
                )
            })
            .collect(),
        ..Default::default()
    }
}

fn hash8(text: &str) -> String {
    hex::encode(sha2::Sha256::digest(text.as_bytes()))[..8].to_owned()
}

#[test]
fn rotation_same_content_as_plain_is_noop() {
    let changes = plan_stack(
        Some(&config_stack("v1\n")),
        Some(&live_configs("s_app", &[("s_app", "v1\n", "t1")])),
    );
    assert!(
        changes.iter().all(|c| c.action == Action::Noop),
        "{changes:#?}"
    );
}

#[test]
fn rotation_new_content_creates_hashed_version_and_repoints_services() {
    let live = live_configs("s_app", &[("s_app", "v1\nsame\n", "t1")]);
    let changes = plan_stack(Some(&config_stack("v2\nsame\n")), Some(&live));
    let new = format!("s_app-{}", hash8("v2\nsame\n"));
    assert_eq!(
        actions(&changes),
        [
            (Action::Create, Kind::Config, new.clone()),
            (Action::Update, Kind::Service, "s_web".into()),
        ],
        "the old plain version is kept (keep_versions = 1)"
    );
    let cfg = find(&changes, Kind::Config, &new);
    assert_eq!(cfg.desired.as_ref().unwrap()["Name"], json!(new));
    assert_eq!(
        (cfg.diff[0].before.clone(), cfg.diff[0].after.clone()),
        (json!("v1\nsame\n"), json!("v2\nsame\n"))
    );
    let web = find(&changes, Kind::Service, "s_web");
    assert_eq!(
        paths(&web.diff),
        ["TaskTemplate.ContainerSpec.Configs[/etc/app.conf].ConfigName"]
    );
    assert_eq!(web.diff[0].after, json!(new));
    assert_eq!(
        web.desired.as_ref().unwrap()["TaskTemplate"]["ContainerSpec"]["Configs"][0]["ConfigName"],
        json!(new)
    );
}

#[test]
fn rotation_deletes_unused_versions_beyond_keep() {
    let v2 = format!("s_app-{}", hash8("v2"));
    let live = live_configs(
        &v2,
        &[
            ("s_app", "v1", "2026-01-01T00:00:00Z"),
            (&v2, "v2", "2026-01-02T00:00:00Z"),
        ],
    );
    let changes = plan_stack(Some(&config_stack("v3")), Some(&live));
    let v3 = format!("s_app-{}", hash8("v3"));
    assert_eq!(
        actions(&changes),
        [
            (Action::Delete, Kind::Config, "s_app".into()),
            (Action::Create, Kind::Config, v3.clone()),
            (Action::Update, Kind::Service, "s_web".into()),
        ]
    );
    // The version the services used is the "before" of the content diff.
    assert_eq!(
        find(&changes, Kind::Config, &v3).diff[0].before,
        json!("v2")
    );
    let keep0 = DiffOptions {
        keep_versions: 0,
        ..Default::default()
    };
    let changes = plan_stack_with(Some(&config_stack("v3")), Some(&live), &keep0);
    assert_eq!(count(&changes, Action::Delete), 2);
}

#[test]
fn rotation_reverting_reuses_the_old_version() {
    let v2 = format!("s_app-{}", hash8("v2"));
    let live = live_configs(&v2, &[("s_app", "v1", "t1"), (&v2, "v2", "t2")]);
    let changes = plan_stack(Some(&config_stack("v1")), Some(&live));
    assert_eq!(
        actions(&changes),
        [
            (Action::Noop, Kind::Config, "s_app".into()),
            (Action::Update, Kind::Service, "s_web".into()),
        ]
    );
    let changes = plan_stack_with(
        Some(&config_stack("v1")),
        Some(&live),
        &DiffOptions {
            keep_versions: 0,
            ..Default::default()
        },
    );
    assert_eq!(find(&changes, Kind::Config, &v2).action, Action::Delete);
}

#[test]
fn rotation_reuses_a_hashed_version_with_the_content() {
    let v2 = format!("s_app-{}", hash8("v2"));
    let live = live_configs(&v2, &[("s_app", "v1", "t1"), (&v2, "v2", "t2")]);
    let changes = plan_stack(Some(&config_stack("v2")), Some(&live));
    assert_eq!(
        actions(&changes),
        [
            (Action::Noop, Kind::Config, v2.clone()),
            (Action::Noop, Kind::Service, "s_web".into()),
        ],
        "the plain version is the one unused version kept"
    );
}

#[test]
fn rotation_config_label_change_is_an_update() {
    let live = live_configs("s_app", &[("s_app", "v1", "t1")]);
    let mut desired = config_stack("v1");
    desired.configs[0].spec["Labels"]["team"] = json!("a");
    let changes = plan_stack(Some(&desired), Some(&live));
    let c = find(&changes, Kind::Config, "s_app");
    assert_eq!(c.action, Action::Update);
    assert_eq!(paths(&c.diff), ["Labels[team]"]);
}

#[test]
fn configs_no_longer_desired_are_deleted_with_their_versions() {
    let mut desired = config_stack("v1");
    desired.configs.clear();
    desired.services[0].spec = svc(json!({}));
    let live = live_configs(
        "s_app",
        &[("s_app", "v1", "t1"), ("s_app-0123abcd", "v0", "t0")],
    );
    let changes = plan_stack(Some(&desired), Some(&live));
    assert_eq!(count(&changes, Action::Delete), 2);
}

#[test]
fn versions_of_a_name() {
    assert!(rotation::is_version_of("s_app", "s_app"));
    assert!(rotation::is_version_of("s_app-0123abcd", "s_app"));
    assert!(!rotation::is_version_of("s_app-0123abcz", "s_app"));
    assert!(!rotation::is_version_of("s_app-0123abcd9", "s_app"));
    assert!(!rotation::is_version_of("s_apple", "s_app"));
}

fn secret_stack(text: &str) -> DesiredStack {
    DesiredStack {
        name: "s".into(),
        services: vec![desired_obj("s_web", service_using(None, Some("s_pw")))],
        secrets: vec![desired_obj(
            "s_pw",
            json!({"Name": "s_pw", "Labels": {"com.docker.stack.namespace": "s"}, "Data": b64(text)}),
        )],
        ..Default::default()
    }
}

fn live_secrets(using: &str, secrets: &[(&str, Option<&str>, &str)]) -> LiveStack {
    LiveStack {
        name: "s".into(),
        services: vec![live_obj(
            "svc",
            "s_web",
            service_using(None, Some(using)),
            "",
        )],
        secrets: secrets
            .iter()
            .map(|(name, content, created)| {
                live_obj(
                    &format!("id-{name}"),
                    name,
                    secret_live(name, *content),
                    created,
                )
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn docker_created_secret_without_digest_is_taken_as_unchanged() {
    let changes = plan_stack(
        Some(&secret_stack("pw1")),
        Some(&live_secrets("s_pw", &[("s_pw", None, "t1")])),
    );
    assert!(
        changes.iter().all(|c| c.action == Action::Noop),
        "{changes:#?}"
    );
    // What shoal would write carries the digest label.
    let s = find(&changes, Kind::Secret, "s_pw");
    assert!(s.desired.as_ref().unwrap()["Labels"][DIGEST_LABEL]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
}

#[test]
fn secret_created_by_shoal_carries_the_digest_label() {
    let changes = plan_stack(Some(&secret_stack("pw1")), None);
    let s = find(&changes, Kind::Secret, "s_pw");
    let want = format!("sha256:{}", hex::encode(sha2::Sha256::digest(b"pw1")));
    assert_eq!(
        s.desired.as_ref().unwrap()["Labels"][DIGEST_LABEL],
        json!(want)
    );
    assert!(s.diff.iter().all(|f| f.sensitive));
}

#[test]
fn secret_with_other_digest_rotates_and_never_shows_content() {
    let live = live_secrets("s_pw", &[("s_pw", Some("pw1"), "t1")]);
    let changes = plan_stack(Some(&secret_stack("pw2")), Some(&live));
    let new = format!("s_pw-{}", hash8("pw2"));
    assert_eq!(
        actions(&changes),
        [
            (Action::Create, Kind::Secret, new.clone()),
            (Action::Update, Kind::Service, "s_web".into()),
        ]
    );
    let s = find(&changes, Kind::Secret, &new);
    assert_eq!(paths(&s.diff), ["Data"]);
    assert!(s.diff[0].sensitive);
    let shown = serde_json::to_string(&s.diff).unwrap();
    assert!(!shown.contains("pw1") && !shown.contains("pw2"));
    let web = find(&changes, Kind::Service, "s_web");
    assert_eq!(
        paths(&web.diff),
        ["TaskTemplate.ContainerSpec.Secrets[pw].SecretName"]
    );
}

#[test]
fn secret_labelled_with_same_digest_is_reused() {
    let v = format!("s_pw-{}", hash8("pw2"));
    let live = live_secrets(&v, &[("s_pw", None, "t1"), (&v, Some("pw2"), "t2")]);
    let changes = plan_stack(Some(&secret_stack("pw2")), Some(&live));
    assert!(
        changes.iter().all(|c| c.action == Action::Noop),
        "{changes:#?}"
    );
    assert_eq!(find(&changes, Kind::Secret, &v).action, Action::Noop);
}

#[test]
fn diff_spec_secret_reports_content_change_by_digest() {
    let desired =
        json!({"Name": "s_pw", "Labels": {"com.docker.stack.namespace": "s"}, "Data": b64("new")});
    let live = secret_live("s_pw", Some("old"));
    let d = diff_spec(Kind::Secret, &desired, &live);
    assert_eq!(paths(&d), ["Data"]);
    assert!(d[0].sensitive);
}

#[test]
fn config_data_diff_is_decoded_text() {
    let d = diff_spec(
        Kind::Config,
        &config_spec("c", "a\nb\n"),
        &config_spec("c", "a\nc\n"),
    );
    assert_eq!(paths(&d), ["Data"]);
    assert_eq!(
        (d[0].before.clone(), d[0].after.clone()),
        (json!("a\nc\n"), json!("a\nb\n"))
    );
}

#[test]
fn rule_mount_consistency_default() {
    let m = |c: &str| {
        svc(json!({"Mounts": [{"Type": "bind", "Source": "/a", "Target": "/a", "Consistency": c}]}))
    };
    assert!(svc_diff(&m(""), &m("default")).is_empty());
    assert_eq!(
        paths(&svc_diff(&m("cached"), &m("default"))),
        ["TaskTemplate.ContainerSpec.Mounts[/a].Consistency"]
    );
}

#[test]
fn ulimits_are_keyed_by_name() {
    let u = |n: &str, soft: u64| json!({"Name": n, "Soft": soft, "Hard": 100});
    let d = svc_diff(
        &svc(json!({"Ulimits": [u("nofile", 50), u("nproc", 10)]})),
        &svc(json!({"Ulimits": [u("nproc", 10), u("nofile", 40)]})),
    );
    assert_eq!(
        paths(&d),
        ["TaskTemplate.ContainerSpec.Ulimits[nofile].Soft"]
    );
}

#[test]
fn rule_network_driver_overlay_and_daemon_assigned_fields() {
    // No driver in the request: docker stack deploy sends overlay.
    let desired = json!({"Labels": {"a": "b", "com.docker.stack.namespace": "diff1"}});
    assert_eq!(
        diff_spec(Kind::Network, &desired, &fixture("network_front_raw")),
        vec![]
    );
    // An option the user sets is compared; the daemon's vxlan id is not.
    let with_opt = json!({"Labels": {"a": "b", "com.docker.stack.namespace": "diff1"},
        "Options": {"encrypted": ""}});
    let d = diff_spec(Kind::Network, &with_opt, &fixture("network_front_raw"));
    assert_eq!(paths(&d), [REPLACE_REQUIRED, "Options[encrypted]"]);
}

#[test]
fn rule_legacy_networks_do_not_override_task_template_networks() {
    let mut live = with(
        svc(json!({})),
        "/TaskTemplate/Networks",
        json!([{"Target": "diff1_front"}]),
    );
    live["Networks"] = json!([{"Target": "other"}]);
    let desired = with(
        svc(json!({})),
        "/TaskTemplate/Networks",
        json!([{"Target": "diff1_front"}]),
    );
    assert!(svc_diff(&desired, &live).is_empty());
}

#[test]
fn a_hand_pinned_other_tag_under_the_same_label_is_a_change() {
    // `docker service update --image nginx:1.26@sha256:…` keeps the label.
    let d = pinned_live_diff("nginx:1.27", "nginx:1.26@sha256:0123abcd", "nginx:1.27");
    assert_eq!(paths(&d), ["TaskTemplate.ContainerSpec.Image"]);
}

#[test]
fn an_untagged_image_pinned_by_docker_is_no_change() {
    // `image: redis` is sent as `redis:latest` and pinned as such.
    let mut desired = svc(json!({}));
    desired["TaskTemplate"]["ContainerSpec"]["Image"] = json!("redis:latest");
    desired["Labels"] = json!({"com.docker.stack.image": "redis"});
    let live = with_image_label(
        svc(json!({"Image": "redis:latest@sha256:0123abcd"})),
        "redis",
    );
    assert!(svc_diff(&desired, &live).is_empty());
}

#[test]
fn pinned_image_with_other_label_is_a_change() {
    let d = pinned_live_diff("nginx:1.27", "nginx:1.26@sha256:0123abcd", "nginx:1.26");
    assert_eq!(
        paths(&d),
        [
            "Labels[com.docker.stack.image]",
            "TaskTemplate.ContainerSpec.Image"
        ]
    );
}

const DIFF2_DEFAULT_ID: &str = "qhs5k8opcddumzmckkxrtygrc";

fn ctx2() -> NormContext {
    NormContext {
        network_names: [(DIFF2_DEFAULT_ID.to_owned(), "diff2_default".to_owned())].into(),
    }
}

/// What convert sends for a service using many compose options
/// (`testdata/app_*.json` was deployed from it).
fn desired_app() -> Value {
    json!({
        "Name": "diff2_app",
        "Labels": {"com.docker.stack.image": "redis:7.2", "com.docker.stack.namespace": "diff2"},
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": "redis:7.2",
                "Labels": {"c": "d", "com.docker.stack.namespace": "diff2"},
                "Args": ["sleep", "3600"],
                "Hostname": "apphost", "Dir": "/tmp", "User": "1000",
                "Privileges": {"CredentialSpec": null, "SELinuxContext": null},
                "Init": true, "StopSignal": "SIGTERM", "TTY": true, "ReadOnly": true,
                "StopGracePeriod": 20_000_000_000u64,
                "Healthcheck": {"Test": ["NONE"]},
                "Hosts": ["10.1.2.3 a.example"],
                "DNSConfig": {"Nameservers": ["1.1.1.1"]},
                "Secrets": [{"File": {"Name": "s1", "UID": "1000", "GID": "0", "Mode": 256}, "SecretName": "diff2_s1"}],
                "Sysctls": {"net.core.somaxconn": "1024"},
                "CapabilityAdd": ["NET_ADMIN"],
                "Ulimits": [{"Name": "nofile", "Hard": 2000, "Soft": 1000}]
            },
            "Resources": {"Reservations": {"NanoCPUs": 100_000_000, "MemoryBytes": 16_777_216}},
            "RestartPolicy": {"Condition": "any", "Delay": 3_000_000_000u64, "MaxAttempts": 5, "Window": 30_000_000_000u64},
            "Placement": {"Constraints": ["node.role==manager"], "Preferences": [{"Spread": {"SpreadDescriptor": "node.id"}}], "MaxReplicas": 2},
            "Networks": [{"Target": "diff2_default", "Aliases": ["app"]}],
            "LogDriver": {"Name": "json-file", "Options": {"max-size": "10m"}}
        },
        "Mode": {"Replicated": {"Replicas": 1}},
        "RollbackConfig": {"Parallelism": 2, "FailureAction": "continue", "Monitor": 3_000_000_000u64, "MaxFailureRatio": 0.5, "Order": "start-first"},
        "EndpointSpec": {"Mode": "dnsrr"}
    })
}

#[test]
fn docker_deployed_rich_service_is_no_change_in_both_shapes() {
    for live in ["app_raw", "app_cli"] {
        let d = diff_spec_with(Kind::Service, &desired_app(), &fixture(live), &ctx2());
        assert_eq!(d, vec![], "{live}");
    }
}

#[test]
fn docker_deployed_job_is_no_change_in_both_shapes() {
    let desired = json!({
        "Name": "diff2_job",
        "Labels": {"com.docker.stack.image": "busybox:1.36", "com.docker.stack.namespace": "diff2"},
        "TaskTemplate": {
            "ContainerSpec": {"Image": "busybox:1.36", "Labels": {"com.docker.stack.namespace": "diff2"}, "Args": ["true"]},
            "Networks": [{"Target": "diff2_default", "Aliases": ["job"]}]
        },
        "Mode": {"ReplicatedJob": {}},
        "EndpointSpec": {"Mode": "vip"}
    });
    for live in ["job_raw", "job_cli"] {
        let d = diff_spec_with(Kind::Service, &desired, &fixture(live), &ctx2());
        assert_eq!(d, vec![], "{live}");
    }
    let replicated = with(desired, "/Mode", json!({"Replicated": {"Replicas": 1}}));
    assert!(!diff_spec_with(Kind::Service, &replicated, &fixture("job_raw"), &ctx2()).is_empty());
}

#[test]
fn rule_capabilities_are_a_set_of_cap_names() {
    let d = svc_diff(
        &svc(json!({"CapabilityAdd": ["net_admin", "CAP_SYS_TIME"]})),
        &svc(json!({"CapabilityAdd": ["CAP_SYS_TIME", "CAP_NET_ADMIN"]})),
    );
    assert!(d.is_empty());
}

#[test]
fn rich_service_changes_show_with_readable_paths() {
    let mut desired = desired_app();
    desired["TaskTemplate"]["RestartPolicy"]["Delay"] = json!(4_000_000_000u64);
    desired["TaskTemplate"]["LogDriver"]["Options"]["max-size"] = json!("20m");
    desired["TaskTemplate"]["ContainerSpec"]["Sysctls"]["net.core.somaxconn"] = json!("2048");
    let d = diff_spec_with(Kind::Service, &desired, &fixture("app_raw"), &ctx2());
    assert_eq!(
        paths(&d),
        [
            "TaskTemplate.ContainerSpec.Sysctls[net.core.somaxconn]",
            "TaskTemplate.LogDriver.Options[max-size]",
            "TaskTemplate.RestartPolicy.Delay",
        ]
    );
}

#[test]
fn file_mode_zero_is_not_the_default_mode() {
    let r = |mode: u64| {
        svc(json!({"Configs": [{"File": {"Name": "/a", "Mode": mode}, "ConfigName": "s_a"}]}))
    };
    assert_eq!(
        paths(&svc_diff(&r(0), &r(0o444))),
        ["TaskTemplate.ContainerSpec.Configs[/a].File.Mode"]
    );
}

#[test]
fn rule_replicated_without_a_count_is_one_replica() {
    let live = svc(json!({}));
    let mut no_mode = svc(json!({}));
    no_mode.as_object_mut().unwrap().remove("Mode");
    assert!(svc_diff(&no_mode, &live).is_empty());
    let empty_replicated = with(svc(json!({})), "/Mode", json!({"Replicated": {}}));
    assert!(svc_diff(&empty_replicated, &live).is_empty());
    // A real count still differs, and zero is not "unset".
    let three = with(svc(json!({})), "/Mode/Replicated/Replicas", json!(3));
    assert_eq!(
        paths(&svc_diff(&three, &live)),
        ["Mode.Replicated.Replicas"]
    );
    let zero = with(svc(json!({})), "/Mode/Replicated/Replicas", json!(0));
    assert_eq!(paths(&svc_diff(&zero, &live)), ["Mode.Replicated.Replicas"]);
}

#[test]
fn reusable_version_prefers_in_use_then_plain_name_then_newest() {
    let d = desired_obj("s_conf", config_spec("s_conf", "a"));
    let plain = live_obj(
        "1",
        "s_conf",
        config_spec("s_conf", "a"),
        "2024-01-01T00:00:00Z",
    );
    let used = live_obj(
        "2",
        "s_conf-11111111",
        config_spec("s_conf-11111111", "a"),
        "2024-01-02T00:00:00Z",
    );
    let newest = live_obj(
        "3",
        "s_conf-22222222",
        config_spec("s_conf-22222222", "a"),
        "2024-01-03T00:00:00Z",
    );
    let other = live_obj(
        "4",
        "s_conf-33333333",
        config_spec("s_conf-33333333", "b"),
        "2024-01-04T00:00:00Z",
    );
    let pick = |versions: &[&LiveObject], refs: &[&str]| {
        let refs: BTreeSet<String> = refs.iter().map(|r| r.to_string()).collect();
        rotation::reusable_version(Kind::Config, &d, versions, &refs).map(|l| l.name.clone())
    };
    let all = [&plain, &used, &newest, &other];
    assert_eq!(
        pick(&all, &["s_conf-11111111"]).as_deref(),
        Some("s_conf-11111111")
    );
    assert_eq!(pick(&all, &[]).as_deref(), Some("s_conf"));
    assert_eq!(
        pick(&[&used, &newest, &other], &[]).as_deref(),
        Some("s_conf-22222222")
    );
    // A version with other content is never reused, even when in use.
    assert_eq!(pick(&[&other], &["s_conf-33333333"]), None);
}
