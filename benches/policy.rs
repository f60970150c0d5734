//! Cost of the shipped policies: compile once, then evaluate a 200-service
//! stack on a 3-node cluster. Budget: evaluation under 20 ms.
//!
//! `cargo bench --bench policy` prints the timings; it exits non-zero when
//! the median evaluation is over budget.
use serde_json::json;
use shoal::policy::PolicySet;
use shoal::source::DirTree;
use shoal::state::{ClusterFacts, DesiredObject, DesiredStack, NodeFacts};
use std::time::{Duration, Instant};

const SERVICES: usize = 200;
const RUNS: usize = 30;
const BUDGET: Duration = Duration::from_millis(20);

fn service(i: usize) -> DesiredObject {
    let name = format!("bench_svc{i}");
    let image = match i % 4 {
        0 => "steedos/steedos-enterprise:2.7",
        1 => "nginx:latest",
        2 => "mongo:7.0",
        _ => "redis:7.2",
    };
    let mounts = json!([
        {"Type": "bind", "Source": format!("/srv/data/{i}"), "Target": "/data"},
        {"Type": "volume", "Source": format!("bench_vol{i}"), "Target": "/var/lib/x",
         "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "bench"}}},
        {"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock"}
    ]);
    let spec = json!({
        "Name": name,
        "Labels": {
            "com.docker.stack.namespace": "bench",
            "com.docker.stack.image": image,
            "traefik.enable": "true",
            "traefik.http.routers.r.rule": "Host(`x`)",
            "traefik.http.services.s.loadbalancer.server.port": "80"
        },
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": image,
                "Labels": {"com.docker.stack.namespace": "bench"},
                "Args": ["mongod", "--bind_ip_all"],
                "Env": [
                    format!("MONGO_URL=mongodb://svc{}:27017/steedos", (i + 2) % SERVICES),
                    "ROOT_URL=http://example.com",
                    "STEEDOS_CFS_STORE=local"
                ],
                "Mounts": mounts
            },
            "Placement": {"Constraints": ["node.labels.zone==a"]},
            "Networks": [{"Target": "bench_default", "Aliases": [format!("svc{i}")]}]
        },
        "Mode": {"Replicated": {"Replicas": 2}}
    });
    DesiredObject {
        name,
        spec,
        source: json!({"image": image, "deploy": {"replicas": 2}}),
    }
}

fn facts() -> ClusterFacts {
    ClusterFacts {
        nodes: (1..=3)
            .map(|i| NodeFacts {
                id: format!("n{i}"),
                hostname: format!("node{i}"),
                role: if i == 1 { "manager" } else { "worker" }.into(),
                availability: "active".into(),
                state: "ready".into(),
                labels: Default::default(),
                engine_version: "20.10.24".into(),
            })
            .collect(),
    }
}

fn main() {
    let tree = DirTree::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let set = PolicySet::load(&tree).expect("shipped policies load");
    let load = started.elapsed();

    let stack = DesiredStack {
        name: "bench".into(),
        services: (0..SERVICES).map(service).collect(),
        ..Default::default()
    };
    let facts = facts();

    let mut times = Vec::with_capacity(RUNS);
    let mut found = 0;
    for _ in 0..RUNS {
        let started = Instant::now();
        let violations = set.evaluate(&stack, &facts).expect("evaluation");
        times.push(started.elapsed());
        found = violations.len();
    }
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "policy: load+compile {} files: {:.2} ms",
        set.files().len(),
        load.as_secs_f64() * 1e3
    );
    println!(
        "policy: evaluate {SERVICES} services ({found} violations), {RUNS} runs: min {:.2} ms, median {:.2} ms, max {:.2} ms (budget {} ms)",
        times[0].as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3,
        BUDGET.as_millis()
    );
    if median > BUDGET {
        eprintln!("policy: median evaluation over budget");
        std::process::exit(1);
    }
}
