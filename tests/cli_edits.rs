//! Each kind of edit plans as exactly that edit, applies, and leaves a
//! clean plan; broken files of every kind are clear errors that touch
//! nothing. Against the real swarm, through the shoal binary.
mod common;

use common::*;

const BASE: &str = r#"version: "3.8"
services:
  web:
    image: busybox:1.36
    command: ["sleep", "3600"]
    environment:
      MODE: blue
    labels:
      tier: front
    deploy:
      replicas: 1
      labels:
        owner: ops
      # Quick rollouts: busybox's sleep ignores SIGTERM, and the default
      # 5 s monitor would add up over a dozen applies.
      update_config:
        monitor: 1s
    stop_grace_period: 1s
    ports:
      - "PORT:80"
    healthcheck:
      test: ["CMD", "true"]
      interval: 2s
    configs:
      - source: app
        target: /etc/app.conf
  side:
    image: busybox:1.36
    command: ["sleep", "3600"]
    stop_grace_period: 1s
configs:
  app:
    file: ./app.conf
"#;

struct Fixture {
    stack: String,
    repo: Repo,
    _guard: StackGuard,
}

impl Fixture {
    fn new(prefix: &str, port: u16) -> Fixture {
        let stack = stack_name(prefix);
        let guard = StackGuard::new(&[&stack]);
        let repo = Repo::new();
        repo.stack(&stack, &BASE.replace("PORT", &port.to_string()));
        repo.write(&format!("stacks/{stack}/app.conf"), "a = 1\n");
        let f = Fixture {
            stack,
            repo,
            _guard: guard,
        };
        assert_code(&f.run(&["apply", "--auto-approve", "--timeout", "60s"]), 0);
        f
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        let mut all = args.to_vec();
        let dir = self.repo.path().to_str().unwrap().to_string();
        all.extend(["--repo", &dir, "--stack", &self.stack]);
        shoal(&all)
    }
    fn edit(&self, from: &str, to: &str) {
        let path = format!("stacks/{}/stack.yml", self.stack);
        let yaml = std::fs::read_to_string(self.repo.path().join(&path)).unwrap();
        assert!(yaml.contains(from), "fixture has no {from:?}");
        self.repo.write(&path, &yaml.replacen(from, to, 1));
    }
    /// `(action, name, [paths])` of every change in `plan --json`.
    fn plan(&self) -> Vec<(String, String, Vec<String>)> {
        let out = self.run(&["plan", "--json"]);
        assert_code(&out, 0);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["action"] != "noop")
            .map(|c| {
                (
                    c["action"].as_str().unwrap().to_string(),
                    c["name"].as_str().unwrap().to_string(),
                    c["diff"]
                        .as_array()
                        .map(|d| {
                            d.iter()
                                .map(|f| f["path"].as_str().unwrap().to_string())
                                .collect()
                        })
                        .unwrap_or_default(),
                )
            })
            .collect()
    }
    /// Apply, then the plan is clean.
    fn apply_clean(&self) {
        assert_code(
            &self.run(&["apply", "--auto-approve", "--timeout", "60s"]),
            0,
        );
        assert_eq!(self.plan(), vec![], "plan after apply is not clean");
    }
    fn web(&self) -> String {
        format!("{}_web", self.stack)
    }
}

fn update(name: &str, paths: &[&str]) -> Vec<(String, String, Vec<String>)> {
    vec![(
        "update".into(),
        name.into(),
        paths.iter().map(|p| p.to_string()).collect(),
    )]
}

#[test]
fn service_field_edits_plan_as_exactly_that_edit() {
    let f = Fixture::new("ed", 18110);
    let web = f.web();
    let cases: [(&str, &str, &[&str]); 6] = [
        ("replicas: 1", "replicas: 2", &["Mode.Replicated.Replicas"]),
        (
            "image: busybox:1.36\n    command: [\"sleep\", \"3600\"]\n    environment",
            "image: busybox:latest\n    command: [\"sleep\", \"3600\"]\n    environment",
            &[
                "Labels[com.docker.stack.image]",
                "TaskTemplate.ContainerSpec.Image",
            ],
        ),
        (
            "MODE: blue",
            "MODE: green",
            &["TaskTemplate.ContainerSpec.Env[MODE]"],
        ),
        ("owner: ops", "owner: dev", &["Labels[owner]"]),
        (
            "tier: front",
            "tier: back",
            &["TaskTemplate.ContainerSpec.Labels[tier]"],
        ),
        (
            "interval: 2s",
            "interval: 3s",
            &["TaskTemplate.ContainerSpec.Healthcheck.Interval"],
        ),
    ];
    for (from, to, paths) in cases {
        f.edit(from, to);
        assert_eq!(f.plan(), update(&web, paths), "edit {from:?} -> {to:?}");
        f.apply_clean();
    }
}

#[test]
fn port_service_and_config_edits_plan_as_exactly_that_edit() {
    let f = Fixture::new("ep", 18120);
    let web = f.web();
    // Ports.
    f.edit("\"18120:80\"", "\"18121:80\"");
    let plan = f.plan();
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!(
        (plan[0].0.as_str(), plan[0].1.as_str()),
        ("update", web.as_str())
    );
    assert!(
        plan[0]
            .2
            .iter()
            .all(|p| p.starts_with("EndpointSpec.Ports")),
        "{plan:?}"
    );
    f.apply_clean();

    // Add a service, then remove one.
    f.edit(
        "configs:\n  app:",
        "  extra:\n    image: busybox:1.36\n    command: [\"sleep\", \"3600\"]\nconfigs:\n  app:",
    );
    let extra = format!("{}_extra", f.stack);
    let plan = f.plan();
    assert_eq!(plan.len(), 1, "{plan:?}");
    let (action, name, paths) = &plan[0];
    assert_eq!((action.as_str(), name), ("create", &extra));
    // A create lists what it writes.
    for want in [
        "TaskTemplate.ContainerSpec.Image",
        "TaskTemplate.ContainerSpec.Args",
    ] {
        assert!(paths.iter().any(|p| p == want), "{want}: {paths:?}");
    }
    f.apply_clean();
    f.edit(
        "  side:\n    image: busybox:1.36\n    command: [\"sleep\", \"3600\"]\n    stop_grace_period: 1s\n",
        "",
    );
    let side = format!("{}_side", f.stack);
    let plan = f.plan();
    assert_eq!(plan.len(), 1, "{plan:?}");
    assert_eq!(
        (plan[0].0.as_str(), plan[0].1.as_str()),
        ("delete", side.as_str())
    );
    f.apply_clean();

    // Config content: a new version of the config, the service moved to it.
    f.repo
        .write(&format!("stacks/{}/app.conf", f.stack), "a = 2\n");
    let plan = f.plan();
    let kinds: Vec<(&str, &str)> = plan
        .iter()
        .map(|(a, n, _)| (a.as_str(), n.as_str()))
        .collect();
    assert!(
        kinds
            .iter()
            .any(|(a, n)| *a == "create" && n.starts_with(&format!("{}_app-", f.stack))),
        "{plan:?}"
    );
    assert!(kinds.contains(&("update", web.as_str())), "{plan:?}");
    let text = stdout(&f.run(&["plan"]));
    assert!(text.contains("-a = 1") && text.contains("+a = 2"), "{text}");
    f.apply_clean();
}

#[test]
fn broken_files_are_clear_errors_that_touch_nothing() {
    let f = Fixture::new("eb", 18130);
    let web = f.web();
    let version = service_version(&web);
    let path = format!("stacks/{}/stack.yml", f.stack);
    let good = std::fs::read_to_string(f.repo.path().join(&path)).unwrap();
    let cases: [(&str, &str, &str); 7] = [
        ("replicas: 1", "replicas: one", "replicas"),
        ("interval: 2s", "interval: 30 parsecs", "interval"),
        ("\"18130:80\"", "\"18130:80:90:100\"", "ports"),
        ("MODE: blue", "MODE: [blue", "stack.yml"),
        (
            "    labels:\n      tier",
            "    lables:\n      tier",
            "lables",
        ),
        ("source: app", "source: nope", "nope"),
        ("file: ./app.conf", "file: ./missing.conf", "missing.conf"),
    ];
    for (from, to, named) in cases {
        assert!(good.contains(from), "fixture has no {from:?}");
        f.repo.write(&path, &good.replacen(from, to, 1));
        for cmd in [&["plan"][..], &["apply", "--auto-approve"][..]] {
            let out = f.run(cmd);
            assert_code(&out, 1);
            let err = stderr(&out);
            assert!(err.contains("stack.yml") || err.contains(named), "{err}");
            assert!(err.contains(named), "error does not name {named:?}: {err}");
        }
        assert_eq!(
            service_version(&web),
            version,
            "a broken file touched {web}"
        );
        assert!(service_spec(&format!("{}_side", f.stack)).is_some());
    }
}
