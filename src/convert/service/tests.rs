//! One test per field family: compose YAML in long form -> exact JSON.
use super::*;
use serde_json::json;

/// Convert service `app` of `yaml` in stack `st`.
fn spec(yaml: &str) -> Value {
    try_spec(yaml).unwrap_or_else(|e| panic!("{}: {}", e.field, e.message))
}

fn try_spec(yaml: &str) -> Result<Value, FieldError> {
    let config: Config = serde_yaml::from_str(yaml).expect("test yaml");
    let svc = &config.services["app"];
    service(
        Namespace("st"),
        "app",
        svc,
        &config,
        &BindBase::at("/repo/stacks/st"),
    )
    .map(|c| c.spec)
}

fn container(yaml: &str) -> Value {
    spec(yaml)["TaskTemplate"]["ContainerSpec"].clone()
}

#[test]
fn minimal_service_is_what_docker_sends() {
    assert_eq!(
        spec("services:\n  app: {image: busybox:latest}\n"),
        json!({
            "Name": "st_app",
            "Labels": {"com.docker.stack.image": "busybox:latest", "com.docker.stack.namespace": "st"},
            "TaskTemplate": {
                "ContainerSpec": {
                    "Image": "busybox:latest",
                    "Labels": {"com.docker.stack.namespace": "st"},
                    "Privileges": {"CredentialSpec": null, "SELinuxContext": null},
                    "DNSConfig": {}
                },
                "Resources": {},
                "Placement": {},
                "Networks": [{"Target": "st_default", "Aliases": ["app"]}]
            },
            "Mode": {"Replicated": {}},
            "EndpointSpec": {}
        })
    );
}

#[test]
fn labels_service_and_container() {
    let s = spec(
        "services:\n  app:\n    image: nginx:1.27\n    labels: {c: '1'}\n    deploy: {labels: {s: '2'}}\n",
    );
    assert_eq!(
        s["Labels"],
        json!({"com.docker.stack.image": "nginx:1.27", "com.docker.stack.namespace": "st", "s": "2"})
    );
    assert_eq!(
        s["TaskTemplate"]["ContainerSpec"]["Labels"],
        json!({"c": "1", "com.docker.stack.namespace": "st"})
    );
}

#[test]
fn entrypoint_command_env_and_process_fields() {
    let c = container(
        r#"
services:
  app:
    image: x
    entrypoint: [/bin/sh, -c]
    command: [sleep 1]
    environment: {ZED: z, ALPHA: "1", EMPTY: "", BARE: }
    working_dir: /srv
    user: "1000:1000"
    hostname: h
    tty: true
    stdin_open: true
    read_only: true
    init: false
    stop_signal: SIGUSR1
    stop_grace_period: 90000000000
    isolation: process
"#,
    );
    assert_eq!(c["Command"], json!(["/bin/sh", "-c"]));
    assert_eq!(c["Args"], json!(["sleep 1"]));
    assert_eq!(c["Env"], json!(["ALPHA=1", "BARE", "EMPTY=", "ZED=z"]));
    assert_eq!(c["Dir"], json!("/srv"));
    assert_eq!(c["User"], json!("1000:1000"));
    assert_eq!(c["Hostname"], json!("h"));
    assert_eq!(c["TTY"], json!(true));
    assert_eq!(c["OpenStdin"], json!(true));
    assert_eq!(c["ReadOnly"], json!(true));
    assert_eq!(c["Init"], json!(false), "init is a pointer: false is sent");
    assert_eq!(c["StopSignal"], json!("SIGUSR1"));
    assert_eq!(c["StopGracePeriod"], json!(90_000_000_000i64));
    assert_eq!(c["Isolation"], json!("process"));
}

#[test]
fn capabilities_hosts_dns_sysctls_ulimits() {
    let c = container(
        r#"
services:
  app:
    image: x
    cap_add: [net_admin, CAP_SYS_TIME]
    cap_drop: [mknod]
    extra_hosts: ["somehost:162.242.195.82", "v6:::1"]
    dns: [8.8.8.8]
    dns_search: [example.com]
    dns_opt: [ndots:2]
    sysctls: {net.core.somaxconn: "1024"}
    ulimits:
      nproc: {single: 65535}
      nofile: {soft: 20000, hard: 40000}
"#,
    );
    assert_eq!(c["CapabilityAdd"], json!(["CAP_NET_ADMIN", "CAP_SYS_TIME"]));
    assert_eq!(c["CapabilityDrop"], json!(["CAP_MKNOD"]));
    assert_eq!(c["Hosts"], json!(["162.242.195.82 somehost", "::1 v6"]));
    assert_eq!(
        c["DNSConfig"],
        json!({"Nameservers": ["8.8.8.8"], "Search": ["example.com"]})
    );
    assert_eq!(c["Sysctls"], json!({"net.core.somaxconn": "1024"}));
    assert_eq!(
        c["Ulimits"],
        json!([
            {"Name": "nofile", "Hard": 40000, "Soft": 20000},
            {"Name": "nproc", "Hard": 65535, "Soft": 65535}
        ])
    );
}

#[test]
fn healthcheck_durations_and_disable() {
    let c = container(
        r#"
services:
  app:
    image: x
    healthcheck: {test: [CMD-SHELL, "true"], interval: 30000000000, timeout: 5000000000, retries: 3, start_period: 10000000000}
"#,
    );
    assert_eq!(
        c["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "true"], "Interval": 30_000_000_000i64, "Timeout": 5_000_000_000i64,
               "StartPeriod": 10_000_000_000i64, "Retries": 3})
    );
    let c = container("services:\n  app: {image: x, healthcheck: {disable: true}}\n");
    assert_eq!(c["Healthcheck"], json!({"Test": ["NONE"]}));
    let c = container("services:\n  app: {image: x, healthcheck: {test: [NONE]}}\n");
    assert_eq!(c["Healthcheck"], json!({"Test": ["NONE"]}));
    let err =
        try_spec("services:\n  app: {image: x, healthcheck: {disable: true, test: [CMD, x]}}\n")
            .unwrap_err();
    assert_eq!(err.field, "services.app.healthcheck");
}

#[test]
fn configs_and_secrets_references() {
    let c = container(
        r#"
services:
  app:
    image: x
    configs:
      - {source: zconf}
      - {source: aconf, target: /etc/a.conf, uid: "100", gid: "101", mode: 256}
    secrets:
      - {source: pw}
      - {source: ext, target: token}
configs:
  zconf: {file: z}
  aconf: {name: fixed-aconf, file: a}
secrets:
  pw: {file: pw}
  ext: {external: {external: true}}
"#,
    );
    assert_eq!(
        c["Configs"],
        json!([
            {"File": {"Name": "/etc/a.conf", "UID": "100", "GID": "101", "Mode": 0o400}, "ConfigName": "fixed-aconf"},
            {"File": {"Name": "zconf", "UID": "0", "GID": "0", "Mode": 0o444}, "ConfigName": "st_zconf"}
        ])
    );
    assert_eq!(
        c["Secrets"],
        json!([
            {"File": {"Name": "token", "UID": "0", "GID": "0", "Mode": 0o444}, "SecretName": "ext"},
            {"File": {"Name": "pw", "UID": "0", "GID": "0", "Mode": 0o444}, "SecretName": "st_pw"}
        ])
    );
    let err = try_spec("services:\n  app: {image: x, secrets: [{source: nope}]}\n").unwrap_err();
    assert_eq!(err.field, "services.app.secrets");
    assert!(
        err.message.contains("undefined secret \"nope\""),
        "{}",
        err.message
    );
}

#[test]
fn credential_spec_from_config_adds_runtime_reference() {
    let c = container(
        "services:\n  app: {image: x, credential_spec: {config: cred}}\nconfigs:\n  cred: {file: c}\n",
    );
    assert_eq!(
        c["Privileges"],
        json!({"CredentialSpec": {"Config": "st_cred"}, "SELinuxContext": null})
    );
    assert_eq!(
        c["Configs"],
        json!([{"Runtime": {}, "ConfigName": "st_cred"}])
    );
    let c = container("services:\n  app: {image: x, credential_spec: {file: spec.json}}\n");
    assert_eq!(
        c["Privileges"]["CredentialSpec"],
        json!({"File": "spec.json"})
    );
}

#[test]
fn resources_limits_reservations_generic() {
    let s = spec(
        r#"
services:
  app:
    image: x
    deploy:
      resources:
        limits: {cpus: "0.5", memory: 67108864, pids: 100}
        reservations:
          cpus: "0.25"
          memory: 33554432
          generic_resources: [{discrete_resource_spec: {kind: gpu, value: 2}}]
"#,
    );
    assert_eq!(
        s["TaskTemplate"]["Resources"],
        json!({
            "Limits": {"NanoCPUs": 500_000_000, "MemoryBytes": 67_108_864, "Pids": 100},
            "Reservations": {"NanoCPUs": 250_000_000, "MemoryBytes": 33_554_432,
                "GenericResources": [{"DiscreteResourceSpec": {"Kind": "gpu", "Value": 2}}]}
        })
    );
    let err =
        try_spec("services:\n  app: {image: x, deploy: {resources: {limits: {cpus: lots}}}}\n")
            .unwrap_err();
    assert_eq!(err.field, "services.app.deploy.resources.limits.cpus");
    assert!(err.message.contains("\"lots\""));
}

#[test]
fn restart_policy_deploy_and_legacy() {
    let s = spec(
        "services:\n  app: {image: x, restart: always, deploy: {restart_policy: {condition: on-failure, delay: 0, max_attempts: 3, window: 120000000000}}}\n",
    );
    assert_eq!(
        s["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "on-failure", "Delay": 0, "MaxAttempts": 3, "Window": 120_000_000_000i64})
    );
    let s = spec("services:\n  app: {image: x, restart: always}\n");
    assert_eq!(
        s["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "any"})
    );
    let s = spec("services:\n  app: {image: x, restart: \"on-failure:5\"}\n");
    assert_eq!(
        s["TaskTemplate"]["RestartPolicy"],
        json!({"Condition": "on-failure", "MaxAttempts": 5})
    );
    let err = try_spec("services:\n  app: {image: x, restart: sometimes}\n").unwrap_err();
    assert_eq!(err.field, "services.app.restart");
}

#[test]
fn update_and_rollback_config() {
    let s = spec(
        r#"
services:
  app:
    image: x
    deploy:
      update_config: {parallelism: 2, delay: 10000000000, failure_action: rollback, monitor: 30000000000, max_failure_ratio: 0.5, order: start-first}
      rollback_config: {delay: 1000000000}
"#,
    );
    assert_eq!(
        s["UpdateConfig"],
        json!({"Parallelism": 2, "Delay": 10_000_000_000i64, "FailureAction": "rollback",
               "Monitor": 30_000_000_000i64, "MaxFailureRatio": 0.5, "Order": "start-first"})
    );
    assert_eq!(
        s["RollbackConfig"],
        json!({"Parallelism": 1, "Delay": 1_000_000_000, "MaxFailureRatio": 0.0})
    );
}

#[test]
fn placement_and_logging() {
    let s = spec(
        r#"
services:
  app:
    image: x
    logging: {driver: json-file, options: {max-size: 10m, max-file: "3"}}
    deploy:
      placement:
        constraints: [node.role == manager]
        preferences: [{spread: node.labels.zone}]
        max_replicas_per_node: 2
"#,
    );
    assert_eq!(
        s["TaskTemplate"]["Placement"],
        json!({"Constraints": ["node.role == manager"],
               "Preferences": [{"Spread": {"SpreadDescriptor": "node.labels.zone"}}], "MaxReplicas": 2})
    );
    assert_eq!(
        s["TaskTemplate"]["LogDriver"],
        json!({"Name": "json-file", "Options": {"max-file": "3", "max-size": "10m"}})
    );
}

#[test]
fn modes_and_replicas() {
    let mode = |deploy: &str| {
        try_spec(&format!(
            "services:\n  app: {{image: x, deploy: {deploy}}}\n"
        ))
        .map(|s| s["Mode"].clone())
    };
    assert_eq!(
        mode("{replicas: 3}").unwrap(),
        json!({"Replicated": {"Replicas": 3}})
    );
    assert_eq!(
        mode("{replicas: 0}").unwrap(),
        json!({"Replicated": {"Replicas": 0}})
    );
    assert_eq!(mode("{mode: global}").unwrap(), json!({"Global": {}}));
    assert_eq!(
        mode("{mode: global-job}").unwrap(),
        json!({"GlobalJob": {}})
    );
    assert_eq!(
        mode("{mode: replicated-job, replicas: 4}").unwrap(),
        json!({"ReplicatedJob": {"MaxConcurrent": 4, "TotalCompletions": 4}})
    );
    assert_eq!(
        mode("{mode: replicated-job}").unwrap(),
        json!({"ReplicatedJob": {}})
    );
    let err = mode("{mode: global, replicas: 2}").unwrap_err();
    assert_eq!(err.field, "services.app.deploy.mode");
    assert!(mode("{mode: daemonset}")
        .unwrap_err()
        .message
        .contains("daemonset"));
}

#[test]
fn networks_aliases_and_targets() {
    let s = spec(
        r#"
services:
  app:
    image: x
    networks:
      front: {aliases: [www]}
      back:
      ext:
      hostnet:
networks:
  front: {}
  back: {name: shared-back}
  ext: {external: {external: true, name: outside}}
  hostnet: {external: {external: true, name: host}}
"#,
    );
    assert_eq!(
        s["TaskTemplate"]["Networks"],
        json!([
            {"Target": "host"},
            {"Target": "outside", "Aliases": ["app"]},
            {"Target": "shared-back", "Aliases": ["app"]},
            {"Target": "st_front", "Aliases": ["www", "app"]}
        ])
    );
    let err = try_spec("services:\n  app: {image: x, networks: {nope: }}\n").unwrap_err();
    assert_eq!(err.field, "services.app.networks");
}

#[test]
fn endpoint_mode_and_ports_sorted_by_published() {
    let s = spec(
        r#"
services:
  app:
    image: x
    ports:
      - {target: 80, published: 8080, protocol: tcp, mode: ingress}
      - {target: 53, published: 53, protocol: udp, mode: host}
      - {target: 9000}
    deploy: {endpoint_mode: DNSRR}
"#,
    );
    assert_eq!(
        s["EndpointSpec"],
        json!({"Mode": "dnsrr", "Ports": [
            {"TargetPort": 9000},
            {"Protocol": "udp", "TargetPort": 53, "PublishedPort": 53, "PublishMode": "host"},
            {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}
        ]})
    );
}

#[test]
fn mounts_are_in_the_container_spec() {
    let c = container("services:\n  app: {image: x, volumes: [{type: tmpfs, target: /t}]}\n");
    assert_eq!(c["Mounts"], json!([{"Type": "tmpfs", "Target": "/t"}]));
}
