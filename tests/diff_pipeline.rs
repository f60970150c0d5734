//! Oracle for the whole read side: a stack deployed by `docker stack
//! deploy` must plan as no change when shoal loads and converts the same
//! file and reads the swarm itself (compose -> convert -> engine -> diff).
//! Then a changed config and env must plan as a config rotation plus one
//! service update, and the text plan must not show the secret-looking value.
mod common;

use common::{docker, StackGuard};
use shoal::compose::{load, Vars};
use shoal::diff::{plan_stack_with, DiffOptions};
use shoal::model::Kind;
use shoal::model::{Action, Plan};
use shoal::source::{DirTree, StackEntry};
use std::path::Path;

/// The stack both diff oracles deploy with docker and plan with shoal
/// (`PORT` is replaced by a free port).
const COMPOSE: &str = include_str!("fixtures/diff/stack.yml");

async fn plan(root: &Path, stack: &str) -> Plan {
    let tree = DirTree::new(root);
    let entry = StackEntry {
        name: stack.to_owned(),
        dir: format!("stacks/{stack}"),
        file: format!("stacks/{stack}/stack.yml"),
    };
    let loaded = load(&tree, &entry, &Vars::default()).expect("load");
    let desired = shoal::convert::convert(&tree, &loaded).expect("convert");
    let engine = shoal::engine::Engine::connect().await.expect("connect");
    let ids = engine.network_ids().await.expect("networks");
    let live = engine.live_stack(stack).await.expect("live");
    let opts = DiffOptions::default().with_network_ids(&ids);
    Plan {
        changes: plan_stack_with(Some(&desired), Some(&live), &opts),
    }
}

#[tokio::test]
async fn docker_deployed_stack_plans_as_no_change_through_the_whole_pipeline() {
    let pid = std::process::id();
    let stack = format!("diffpl{}", pid % 100_000);
    let port = 30_000 + (pid % 10_000) as u16;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("stacks").join(&stack);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("stack.yml"),
        COMPOSE.replace("PORT", &port.to_string()),
    )
    .unwrap();
    std::fs::write(dir.join("app.conf"), "a=1\nb=2\n").unwrap();
    std::fs::write(dir.join("db_pass"), "s3cret").unwrap();
    let _cleanup = StackGuard::new(&[&stack]);
    let file = dir.join("stack.yml");
    let file = file.to_str().unwrap();
    docker(&[
        "stack",
        "deploy",
        "--resolve-image",
        "never",
        "-c",
        file,
        &stack,
    ]);

    let p = plan(root.path(), &stack).await;
    let text = shoal::render::text(&p, &Default::default());
    assert!(!p.has_changes(), "{text}");
    // Every object of the stack was matched: 2 networks, config, secret, 2 services.
    assert_eq!(p.changes.len(), 6, "{:#?}", p.changes);

    std::fs::write(dir.join("app.conf"), "a=1\nb=3\n").unwrap();
    let yml = std::fs::read_to_string(dir.join("stack.yml")).unwrap();
    std::fs::write(
        dir.join("stack.yml"),
        yml.replace("DB_PASSWORD: hunter2", "DB_PASSWORD: hunter3"),
    )
    .unwrap();
    let p = plan(root.path(), &stack).await;
    let text = shoal::render::text(&p, &Default::default());
    let changed: Vec<(Action, Kind)> = p
        .changes
        .iter()
        .filter(|c| c.action != Action::Noop)
        .map(|c| (c.action, c.kind))
        .collect();
    assert_eq!(
        changed,
        [
            (Action::Create, Kind::Config),
            (Action::Update, Kind::Service)
        ],
        "{text}"
    );
    assert!(
        text.contains(&format!("+ config {stack}_app_conf-")),
        "{text}"
    );
    assert!(text.contains("      -b=2\n      +b=3\n"), "{text}");
    assert!(
        text.contains("TaskTemplate.ContainerSpec.Env[DB_PASSWORD]: (sensitive value changed)"),
        "{text}"
    );
    assert!(!text.contains("hunter"), "{text}");
    assert!(
        text.ends_with("Plan: 1 to create, 1 to update, 0 to delete.\n"),
        "{text}"
    );
}
