//! Policy engine tests: loading, evaluation, skip labels, errors with
//! file:line, the test runner, and the shipped policies (run through
//! `run_tests`, and evaluated over the seed's Steedos cluster stack).
use super::*;
use crate::model::DesiredObject;
use crate::source::testing::dir_repo as repo;
use crate::source::DirTree;
use serde_json::{json, Value};

fn facts(nodes: usize) -> ClusterFacts {
    ClusterFacts::synthetic(nodes, 1)
}

fn service(name: &str, spec: Value, source: Value) -> DesiredObject {
    DesiredObject {
        name: name.into(),
        spec,
        source,
    }
}

fn stack(name: &str, services: Vec<DesiredObject>) -> DesiredStack {
    DesiredStack {
        name: name.into(),
        services,
        ..Default::default()
    }
}

fn summary(violations: &[Violation]) -> Vec<(String, Level, String, bool)> {
    violations
        .iter()
        .map(|v| (v.policy.clone(), v.level, v.object.clone(), v.skipped))
        .collect()
}

const LATEST_POLICY: &str = r#"package main

warn contains msg if {
	some name, svc in input.services
	endswith(svc.spec.TaskTemplate.ContainerSpec.Image, ":latest")
	msg := sprintf("%s uses :latest", [name])
}

deny_replicas contains {"msg": "too many replicas", "service": name} if {
	some name, svc in input.services
	svc.spec.Mode.Replicated.Replicas > input.cluster.node_count
}
"#;

const NETWORK_POLICY: &str = r#"package team.networks

violation contains {"msg": sprintf("%s is not encrypted", [name]), "object": sprintf("network %s", [name]), "rule": "encrypted_overlay"} if {
	some name, net in input.networks
	not net.spec.Options.encrypted
}
"#;

fn web(replicas: u64, image: &str, labels: Value) -> DesiredObject {
    service(
        "st_web",
        json!({"Name": "st_web", "Labels": labels,
               "TaskTemplate": {"ContainerSpec": {"Image": image}},
               "Mode": {"Replicated": {"Replicas": replicas}}}),
        json!({"image": image}),
    )
}

#[test]
fn no_policies_folder_is_an_empty_set() {
    let (_dir, tree) = repo(&[("stacks/web/stack.yml", "services: {}\n")]);
    let set = PolicySet::load(&tree).unwrap();
    assert!(set.is_empty());
    let v = set.evaluate(&stack("st", vec![web(9, "x:latest", json!({}))]), &facts(1));
    assert_eq!(v.unwrap(), vec![]);
}

#[test]
fn evaluates_every_package_and_rule_family() {
    let (_dir, tree) = repo(&[
        ("policies/latest.rego", LATEST_POLICY),
        ("policies/team/networks.rego", NETWORK_POLICY),
        ("policies/README.md", "not rego"),
    ]);
    let set = PolicySet::load(&tree).unwrap();
    assert_eq!(
        set.rule_paths(),
        vec![
            "data.main.deny_replicas",
            "data.main.warn",
            "data.team.networks.violation"
        ]
    );
    let mut st = stack("st", vec![web(3, "nginx:latest", json!({}))]);
    st.networks.push(service(
        "st_default",
        json!({"Name": "st_default", "Driver": "overlay"}),
        Value::Null,
    ));
    let v = set.evaluate(&st, &facts(2)).unwrap();
    assert_eq!(
        summary(&v),
        vec![
            (
                "encrypted_overlay".into(),
                Level::Deny,
                "network st_default".into(),
                false
            ),
            (
                "replicas".into(),
                Level::Deny,
                "service st_web".into(),
                false
            ),
            ("latest".into(), Level::Warn, "stack st".into(), false),
        ]
    );
    assert_eq!(v[2].message, "st_web uses :latest");
    assert!(v[0].blocks() && !v[2].blocks());
    // Compiled once, evaluated again with other input.
    let ok = set.evaluate(
        &stack("st", vec![web(1, "nginx:1.27", json!({}))]),
        &facts(2),
    );
    assert_eq!(ok.unwrap(), vec![]);
}

#[test]
fn skip_label_keeps_the_violation_marked_skipped() {
    let (_dir, tree) = repo(&[("policies/latest.rego", LATEST_POLICY)]);
    let set = PolicySet::load(&tree).unwrap();
    let labels = json!({SKIP_LABEL: "other, replicas"});
    let v = set
        .evaluate(&stack("st", vec![web(5, "nginx:1.27", labels)]), &facts(1))
        .unwrap();
    assert_eq!(
        summary(&v),
        vec![(
            "replicas".into(),
            Level::Deny,
            "service st_web".into(),
            true
        )]
    );
    assert!(!v[0].blocks());
    // A label in compose `deploy.labels` of the loaded service works too.
    let mut svc = web(5, "nginx:1.27", json!({}));
    svc.source = json!({"deploy": {"labels": {SKIP_LABEL: "replicas"}}});
    let v = set.evaluate(&stack("st", vec![svc]), &facts(1)).unwrap();
    assert!(v[0].skipped);
}

#[test]
fn syntax_errors_name_file_and_line() {
    let (_dir, tree) = repo(&[
        ("policies/good.rego", LATEST_POLICY),
        (
            "policies/bad.rego",
            "package bad\n\ndeny contains msg if {\n\tmsg := \n}\n",
        ),
    ]);
    let err = PolicySet::load(&tree).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("policies/bad.rego:4:"), "{text}");
    assert!(matches!(err, PolicyError::Compile(_)));
}

/// regorus resolves function names when a call is evaluated, not at
/// load: an unknown function is an evaluation error naming file and line.
#[test]
fn unknown_functions_are_errors_with_file_and_line() {
    let (_dir, tree) = repo(&[(
        "policies/f.rego",
        "package f\n\ndeny contains msg if {\n\tmsg := no_such_function(input.stack)\n}\n",
    )]);
    let set = PolicySet::load(&tree).unwrap();
    let err = set.evaluate(&stack("st", vec![]), &facts(1)).unwrap_err();
    assert!(err.to_string().starts_with("policies/f.rego:4:"), "{err}");
}

#[test]
fn conflicting_values_are_errors() {
    let (_dir, tree) = repo(&[(
        "policies/c.rego",
        "package c\n\nlimit := 1 if input.stack\nlimit := 2 if input.stack\n\ndeny contains \"x\" if limit > 1\n",
    )]);
    let set = PolicySet::load(&tree).unwrap();
    let err = set.evaluate(&stack("st", vec![]), &facts(1)).unwrap_err();
    assert!(err.to_string().starts_with("policies/c.rego:"), "{err}");
}

#[test]
fn runtime_errors_are_errors_with_file_and_line() {
    let (_dir, tree) = repo(&[(
        "policies/runtime.rego",
        "package runtime\n\ndeny contains msg if {\n\tsome name, _ in input.services\n\tmsg := concat(\",\", name)\n}\n",
    )]);
    let set = PolicySet::load(&tree).unwrap();
    let err = set
        .evaluate(
            &stack("st", vec![web(1, "nginx:1.27", json!({}))]),
            &facts(1),
        )
        .unwrap_err();
    let PolicyError::Eval { rule, stack, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(rule, "data.runtime.deny");
    assert_eq!(stack, "st");
    let location = err.location().unwrap();
    assert_eq!(
        (location.file.as_str(), location.line),
        ("policies/runtime.rego", 5)
    );
    assert!(
        err.to_string().starts_with("policies/runtime.rego:5:"),
        "{err}"
    );
}

#[test]
fn results_without_msg_are_errors() {
    let (_dir, tree) = repo(&[(
        "policies/shape.rego",
        "package shape\n\ndeny contains {\"message\": \"x\"} if true\n",
    )]);
    let err = PolicySet::load(&tree)
        .unwrap()
        .evaluate(&stack("st", vec![]), &facts(1))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("policies/shape.rego:3:1: data.shape.deny: "),
        "{err}"
    );
}

#[test]
fn test_runner_reports_each_outcome() {
    let tests = r#"package main_test

import data.main

test_warns_on_latest if {
	ws := main.warn with input as {"services": {"a": {"spec": {"TaskTemplate": {"ContainerSpec": {"Image": "x:latest"}}}}}}
	count(ws) == 1
}

test_fails if {
	print("looking at", 42)
	count(main.warn) == 3 with input as {"services": {}}
}

test_false := false

test_errors if {
	x := concat(",", 5)
	x == ""
}

todo_later if true
"#;
    let (_dir, tree) = repo(&[
        ("policies/latest.rego", LATEST_POLICY),
        ("policies/latest_test.rego", tests),
    ]);
    let report = run_tests(&tree);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let outcomes: Vec<_> = report
        .tests
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.file.as_str(),
                t.line,
                std::mem::discriminant(&t.outcome),
            )
        })
        .collect();
    let d = |o: TestOutcome| std::mem::discriminant(&o);
    let fail = || TestOutcome::Fail {
        details: String::new(),
    };
    assert_eq!(
        outcomes,
        vec![
            (
                "test_warns_on_latest",
                "policies/latest_test.rego",
                5,
                d(TestOutcome::Pass)
            ),
            ("test_fails", "policies/latest_test.rego", 10, d(fail())),
            ("test_false", "policies/latest_test.rego", 15, d(fail())),
            (
                "test_errors",
                "policies/latest_test.rego",
                17,
                d(TestOutcome::Error {
                    error: String::new()
                })
            ),
            (
                "todo_later",
                "policies/latest_test.rego",
                22,
                d(TestOutcome::Todo)
            ),
        ]
    );
    let TestOutcome::Fail { details } = &report.tests[1].outcome else {
        unreachable!()
    };
    assert!(
        details.contains("undefined") && details.contains("looking at 42"),
        "{details}"
    );
    let TestOutcome::Error { error } = &report.tests[3].outcome else {
        unreachable!()
    };
    assert!(
        error.starts_with("policies/latest_test.rego:18:"),
        "{error}"
    );
    assert!(!report.passed());
    assert_eq!(report.counts(), (1, 2, 1, 1));
    let text = report.render();
    assert!(
        text.contains("PASS  policies/latest_test.rego:5 main_test.test_warns_on_latest"),
        "{text}"
    );
    assert!(
        text.ends_with("policy tests: 1 passed, 2 failed, 1 errors, 1 todo\n"),
        "{text}"
    );
}

#[test]
fn test_runner_reports_load_errors() {
    let (_dir, tree) = repo(&[("policies/x_test.rego", "package x\n\ntest_a if {\n")]);
    let report = run_tests(&tree);
    assert!(report.tests.is_empty());
    assert_eq!(report.errors.len(), 1);
    assert!(
        report.errors[0]
            .to_string()
            .starts_with("policies/x_test.rego:"),
        "{}",
        report.errors[0]
    );
    assert!(!report.passed());
}

// ---- the shipped policies -------------------------------------------------

fn shipped() -> DirTree {
    DirTree::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn shipped_policy_tests_pass_with_deny_and_allow_cases() {
    let report = run_tests(&shipped());
    assert!(report.passed(), "{}", report.render());
    let policies: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rego") && !n.ends_with("_test.rego"))
        .collect();
    assert!(policies.len() >= 4, "{policies:?}");
    for policy in policies {
        let test_file = format!("policies/{}", policy.replace(".rego", "_test.rego"));
        let in_file: Vec<&TestCase> = report
            .tests
            .iter()
            .filter(|t| t.file == test_file)
            .collect();
        let denies = in_file
            .iter()
            .filter(|t| t.name.starts_with("test_deny_") || t.name.starts_with("test_warn_"))
            .count();
        let allows = in_file
            .iter()
            .filter(|t| t.name.starts_with("test_allow_"))
            .count();
        assert!(
            denies >= 1 && allows >= 1,
            "{test_file}: {denies} deny/warn and {allows} allow cases"
        );
    }
}

/// The seed's docker-compose.yml as the converter would produce it for
/// stack `steedos` (./steedos-storage resolved against /srv/steedos).
fn seed_stack() -> DesiredStack {
    let ns = json!({"com.docker.stack.namespace": "steedos"});
    let net = |alias: &str| json!([{"Target": "steedos_default", "Aliases": [alias]}]);
    let traefik_labels = json!({
        "com.docker.stack.namespace": "steedos",
        "traefik.enable": "true",
        "traefik.http.routers.steedos.rule": "PathPrefix(`/`)",
        "traefik.http.routers.steedos.entrypoints": "web",
        "traefik.http.services.steedos.loadbalancer.server.port": "80",
        "traefik.http.services.steedos.loadbalancer.sticky.cookie": "true",
        "traefik.http.services.steedos.loadbalancer.sticky.cookie.name": "steedos_session"
    });
    let mongo_script = "\n  mongod --replSet steedos --bind_ip_all --quiet --logpath /var/log/mongodb/mongodb.log --logappend &\n  echo '=> Waiting for MongoDB to start ...';\n  until mongosh --eval 'db.runCommand(\"ping\").ok' --quiet | grep 1; do\n    sleep 2;\n  done;\n  echo '=> Initiating replica set ...';\n  mongosh --eval 'rs.initiate({_id: \"steedos\", members: [{_id: 0, host: \"localhost:27017\"}]})';\n  wait\n";
    stack(
        "steedos",
        vec![
            service(
                "steedos_traefik",
                json!({"Name": "steedos_traefik",
                       "Labels": {"com.docker.stack.namespace": "steedos", "com.docker.stack.image": "traefik:v3.1",
                                  "shoal.allow-docker-socket": "true"},
                       "TaskTemplate": {"ContainerSpec": {
                           "Image": "traefik:v3.1", "Labels": ns,
                           "Args": ["--api.insecure=true", "--providers.swarm=true", "--entrypoints.web.address=:80"],
                           "Mounts": [{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock", "ReadOnly": true}]},
                           "Networks": net("traefik")},
                       "Mode": {"Replicated": {"Replicas": 1}}}),
                json!({"image": "traefik:v3.1"}),
            ),
            service(
                "steedos_steedos",
                json!({"Name": "steedos_steedos",
                       "Labels": {"com.docker.stack.namespace": "steedos", "com.docker.stack.image": "steedos/steedos-enterprise:2.7"},
                       "TaskTemplate": {"ContainerSpec": {
                           "Image": "steedos/steedos-enterprise:2.7",
                           // The seed puts the Traefik labels on the containers.
                           "Labels": traefik_labels,
                           "Env": ["MONGO_URL=mongodb://mongodb:27017/steedos", "ROOT_URL=http://127.0.0.1", "STEEDOS_LICENSE=x"],
                           "Mounts": [
                               {"Type": "bind", "Source": "/srv/steedos/steedos-storage", "Target": "/steedos-storage"},
                               {"Type": "bind", "Source": "/srv/steedos/.steedos", "Target": "/app/.steedos"}]},
                           "Networks": net("steedos")},
                       "Mode": {"Replicated": {"Replicas": 2}}}),
                json!({"image": "steedos/steedos-enterprise:2.7", "deploy": {"replicas": 2}}),
            ),
            service(
                "steedos_mongodb",
                json!({"Name": "steedos_mongodb",
                       "Labels": {"com.docker.stack.namespace": "steedos", "com.docker.stack.image": "mongo:7.0"},
                       "TaskTemplate": {"ContainerSpec": {
                           "Image": "mongo:7.0", "Labels": ns,
                           "Args": ["bash", "-c", mongo_script],
                           "Mounts": [{"Type": "volume", "Source": "steedos_steedos-mongodb", "Target": "/data/db",
                                       "VolumeOptions": {"Labels": ns, "DriverConfig": {"Name": "local"}}}]},
                           "Networks": net("mongodb")},
                       "Mode": {"Replicated": {"Replicas": 1}}}),
                json!({"image": "mongo:7.0"}),
            ),
        ],
    )
}

#[test]
fn shipped_policies_catch_the_seed_stack_on_two_nodes() {
    let set = PolicySet::load(&shipped()).unwrap();
    let v = set.evaluate(&seed_stack(), &facts(2)).unwrap();
    let got: Vec<(&str, Level, &str)> = v
        .iter()
        .map(|v| (v.policy.as_str(), v.level, v.object.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("mongo_localhost", Level::Deny, "service steedos_mongodb"),
            ("shared_storage", Level::Deny, "service steedos_mongodb"),
            ("shared_storage", Level::Deny, "service steedos_steedos"),
            ("shared_storage", Level::Deny, "service steedos_steedos"),
            ("steedos_s3", Level::Deny, "service steedos_steedos"),
            (
                "traefik_deploy_labels",
                Level::Warn,
                "service steedos_steedos"
            ),
        ],
        "{v:#?}"
    );
    let storage = v
        .iter()
        .find(|v| v.message.contains("/steedos-storage"))
        .unwrap();
    assert!(
        storage.message.contains("steedos_steedos"),
        "{}",
        storage.message
    );
    assert!(
        storage.message.contains("STEEDOS_CFS_STORE=S3"),
        "{}",
        storage.message
    );
}

#[test]
fn shipped_policies_accept_the_fixed_seed_stack() {
    let mut st = seed_stack();
    // Steedos: attachments in S3, no bind mounts, Traefik labels on the service.
    let steedos = &mut st.services[1].spec;
    let labels = steedos["TaskTemplate"]["ContainerSpec"]["Labels"].take();
    steedos["Labels"] = labels;
    steedos["Labels"]["com.docker.stack.image"] = json!("steedos/steedos-enterprise:2.7");
    steedos["TaskTemplate"]["ContainerSpec"]["Mounts"] = json!([]);
    steedos["TaskTemplate"]["ContainerSpec"]["Env"] = json!([
        "MONGO_URL=mongodb://mongodb:27017/steedos?replicaSet=steedos",
        "STEEDOS_CFS_STORE=S3",
        "STEEDOS_CFS_AWS_S3_BUCKET=steedos",
        "STEEDOS_CFS_AWS_S3_REGION=us-east-1"
    ]);
    // MongoDB: member addressed by service name, pinned next to its volume.
    let mongo = &mut st.services[2].spec;
    let script = mongo["TaskTemplate"]["ContainerSpec"]["Args"][2]
        .as_str()
        .unwrap()
        .replace("localhost:27017", "mongodb:27017");
    mongo["TaskTemplate"]["ContainerSpec"]["Args"][2] = json!(script);
    mongo["TaskTemplate"]["Placement"] = json!({"Constraints": ["node.hostname==node-1"]});
    let v = set_of_shipped().evaluate(&st, &facts(2)).unwrap();
    assert_eq!(v, vec![]);
    // Without sticky cookies the two Steedos replicas are denied.
    let labels = st.services[1].spec["Labels"].as_object_mut().unwrap();
    labels.retain(|k, _| !k.contains("sticky"));
    let v = set_of_shipped().evaluate(&st, &facts(2)).unwrap();
    assert_eq!(
        summary(&v),
        vec![(
            "sticky_sessions".into(),
            Level::Deny,
            "service steedos_steedos".into(),
            false
        )]
    );
}

#[test]
fn shipped_policies_can_be_skipped_per_service() {
    let mut st = seed_stack();
    st.services[2].source = json!({"image": "mongo:7.0", "deploy": {"labels": {SKIP_LABEL: "shared_storage,mongo_localhost"}}});
    let v = set_of_shipped().evaluate(&st, &facts(2)).unwrap();
    let mongo: Vec<_> = v
        .iter()
        .filter(|v| v.object == "service steedos_mongodb")
        .collect();
    assert_eq!(mongo.len(), 2);
    assert!(mongo.iter().all(|v| v.skipped && !v.blocks()));
    assert!(v
        .iter()
        .filter(|v| v.object == "service steedos_steedos")
        .all(|v| !v.skipped));
}

#[test]
fn shipped_policies_on_one_node_only_check_mongo() {
    let v = set_of_shipped().evaluate(&seed_stack(), &facts(1)).unwrap();
    let got: Vec<_> = v.iter().map(|v| v.policy.as_str()).collect();
    assert_eq!(got, vec!["mongo_localhost", "traefik_deploy_labels"]);
}

fn set_of_shipped() -> PolicySet {
    PolicySet::load(&shipped()).unwrap()
}

/// The agent shares one compiled set between reconciles and threads.
#[test]
fn policy_set_is_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<PolicySet>();
    let set = std::sync::Arc::new(set_of_shipped());
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let set = set.clone();
            std::thread::spawn(move || set.evaluate(&seed_stack(), &facts(2)).unwrap().len())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 6);
    }
}

/// A complete rule that is undefined makes the one-query evaluation give
/// nothing; rule-by-rule evaluation still reads the others.
#[test]
fn undefined_complete_rules_do_not_hide_other_results() {
    let (_dir, tree) = repo(&[(
        "policies/mixed.rego",
        "package mixed\n\ndeny := {\"never\"} if input.stack == \"other\"\n\nwarn contains \"seen\" if input.stack == \"st\"\n",
    )]);
    let set = PolicySet::load(&tree).unwrap();
    let v = set.evaluate(&stack("st", vec![]), &facts(1)).unwrap();
    assert_eq!(
        summary(&v),
        vec![("mixed".into(), Level::Warn, "stack st".into(), false)]
    );
}
