//! Cost of the shipped policies: compile once, then evaluate a 200-service
//! stack on a 3-node cluster. Budget: evaluation under 20 ms.
//!
//! `cargo bench --bench policy` prints the timings; it exits non-zero when
//! the median evaluation is over budget.
use serde_json::{json, Value};
use shoal::model::{ClusterFacts, DesiredObject, DesiredStack};
use shoal::policy::PolicySet;
use shoal::source::DirTree;
use std::time::{Duration, Instant};

const SERVICES: usize = 200;
const RUNS: usize = 30;
const BUDGET: Duration = Duration::from_millis(20);

/// A realistic mix: every tenth service is Steedos (S3, sticky cookie,
/// MongoDB with a replica set), every tenth its MongoDB (pinned volume),
/// every tenth a global agent with the Docker socket, the rest web/app
/// services with env, labels and a volume; some of those break rules
/// (unpinned local volume, `:latest`), so results are produced too.
fn realistic(i: usize) -> DesiredObject {
    let name = format!("bench_svc{i}");
    let (image, env, labels, mounts, extra): (&str, Vec<String>, Value, Value, Value) = match i % 10
    {
        0 => (
            "steedos/steedos-enterprise:2.7",
            vec![
                format!(
                    "MONGO_URL=mongodb://svc{}:27017/steedos?replicaSet=rs0",
                    i + 1
                ),
                "STEEDOS_CFS_STORE=S3".into(),
                "STEEDOS_CFS_AWS_S3_BUCKET=files".into(),
                "STEEDOS_CFS_AWS_S3_REGION=us-east-1".into(),
                "ROOT_URL=https://steedos.example.com".into(),
            ],
            json!({"traefik.enable": "true",
                   "traefik.http.routers.s.rule": "Host(`steedos.example.com`)",
                   "traefik.http.services.s.loadbalancer.server.port": "80",
                   "traefik.http.services.s.loadbalancer.sticky.cookie": "true"}),
            json!([]),
            json!({"Mode": {"Replicated": {"Replicas": 2}}}),
        ),
        1 => (
            "mongo:7.0",
            vec!["TZ=UTC".into()],
            json!({}),
            json!([{"Type": "volume", "Source": format!("bench_db{i}"), "Target": "/data/db",
                    "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "bench"}}}]),
            json!({"Args": ["--replSet", "rs0", "--bind_ip_all"],
                   "Placement": {"Constraints": ["node.hostname==node-2"]}}),
        ),
        9 => (
            "busybox:1.36",
            vec!["TZ=UTC".into()],
            json!({}),
            json!([{"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock"},
                   {"Type": "bind", "Source": "/proc", "Target": "/host/proc"}]),
            json!({"Mode": {"Global": {}}}),
        ),
        k => (
            if k == 2 { "nginx:latest" } else { "nginx:1.27" },
            (0..6)
                .map(|e| format!("APP_SETTING_{e}=value{e}"))
                .collect(),
            json!({"traefik.enable": "true",
                   "traefik.http.routers.r.rule": "Host(`app.example.com`)",
                   "traefik.http.services.r.loadbalancer.server.port": "8080"}),
            if k == 3 {
                json!([{"Type": "volume", "Source": format!("bench_cache{i}"), "Target": "/cache",
                        "VolumeOptions": {"Labels": {"com.docker.stack.namespace": "bench"}}}])
            } else {
                json!([{"Type": "tmpfs", "Target": "/tmp"}])
            },
            json!({"Mode": {"Replicated": {"Replicas": 3}}}),
        ),
    };
    build(&name, image, env, labels, mounts, extra)
}

/// Every service breaks several rules (worst case, for comparison).
fn adversarial(i: usize) -> DesiredObject {
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
    let env = vec![
        format!(
            "MONGO_URL=mongodb://svc{}:27017/steedos",
            (i + 2) % SERVICES
        ),
        "ROOT_URL=http://example.com".into(),
        "STEEDOS_CFS_STORE=local".into(),
    ];
    let labels = json!({"traefik.enable": "true",
                        "traefik.http.routers.r.rule": "Host(`x`)",
                        "traefik.http.services.s.loadbalancer.server.port": "80"});
    let extra = json!({"Args": ["mongod", "--bind_ip_all"],
                       "Placement": {"Constraints": ["node.labels.zone==a"]},
                       "Mode": {"Replicated": {"Replicas": 2}}});
    build(&name, image, env, labels, mounts, extra)
}

fn build(
    name: &str,
    image: &str,
    env: Vec<String>,
    labels: Value,
    mounts: Value,
    extra: Value,
) -> DesiredObject {
    let short = name.trim_start_matches("bench_");
    let mut service_labels =
        json!({"com.docker.stack.namespace": "bench", "com.docker.stack.image": image});
    for (k, v) in labels.as_object().into_iter().flatten() {
        service_labels[k] = v.clone();
    }
    let mut spec = json!({
        "Name": name,
        "Labels": service_labels,
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": image,
                "Labels": {"com.docker.stack.namespace": "bench"},
                "Env": env,
                "Mounts": mounts
            },
            "Networks": [{"Target": "bench_default", "Aliases": [short]}]
        },
        "Mode": {"Replicated": {"Replicas": 1}}
    });
    if let Some(args) = extra.get("Args") {
        spec["TaskTemplate"]["ContainerSpec"]["Args"] = args.clone();
    }
    if let Some(placement) = extra.get("Placement") {
        spec["TaskTemplate"]["Placement"] = placement.clone();
    }
    if let Some(mode) = extra.get("Mode") {
        spec["Mode"] = mode.clone();
    }
    DesiredObject {
        name: name.to_string(),
        spec,
        source: json!({"image": image}),
    }
}

fn facts() -> ClusterFacts {
    ClusterFacts::synthetic(3, 1)
}

/// Time `RUNS` evaluations of `stack`: (median wall, mean CPU, violations).
fn measure(
    set: &PolicySet,
    stack: &DesiredStack,
    facts: &ClusterFacts,
) -> (Duration, Duration, usize) {
    let mut times = Vec::with_capacity(RUNS);
    let mut found = 0;
    let cpu_before = thread_cpu();
    for _ in 0..RUNS {
        let started = Instant::now();
        found = set.evaluate(stack, facts).expect("evaluation").len();
        times.push(started.elapsed());
    }
    let cpu = thread_cpu().saturating_sub(cpu_before) / RUNS as u32;
    times.sort();
    (times[RUNS / 2], cpu, found)
}

/// CPU time of this thread (wall time suffers when other builds share the
/// machine); zero where /proc is not available.
fn thread_cpu() -> Duration {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .map(Duration::from_nanos)
        .unwrap_or_default()
}

fn main() {
    let tree = DirTree::new(env!("CARGO_MANIFEST_DIR"));
    let started = Instant::now();
    let set = PolicySet::load(&tree).expect("shipped policies load");
    println!(
        "policy: load+compile {} files: {:.2} ms",
        set.files().len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let facts = facts();
    let mut over = false;
    for (label, make) in [
        ("realistic", realistic as fn(usize) -> DesiredObject),
        ("adversarial", adversarial),
    ] {
        let stack = DesiredStack {
            name: "bench".into(),
            services: (0..SERVICES).map(make).collect(),
            ..Default::default()
        };
        let (median, cpu, found) = measure(&set, &stack, &facts);
        println!(
            "policy: evaluate {SERVICES} services, {label} ({found} violations), {RUNS} runs: median {:.2} ms wall, {:.2} ms CPU",
            median.as_secs_f64() * 1e3,
            cpu.as_secs_f64() * 1e3,
        );
        if label == "realistic" {
            let spent = if cpu.is_zero() { median } else { cpu };
            over = spent > BUDGET;
        }
    }
    println!(
        "policy: budget {} ms CPU for the realistic stack",
        BUDGET.as_millis()
    );
    if over {
        eprintln!("policy: evaluation over budget");
        std::process::exit(1);
    }
}
