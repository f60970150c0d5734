//! Hostile repositories against the real binary: files that nest deep
//! enough to overflow a recursive parser, and policies that recurse, loop,
//! or allocate without end. Each must end as an error naming the file and
//! the limit (exit 1 for stack files, 3 for policies, as any policy error),
//! never an abort, within bounded time and memory; and in the agent, one
//! hostile stack must not stop the others.
mod common;

use common::agent::*;
use common::*;
use std::process::Output;
use std::time::{Duration, Instant};

/// Wall time a hostile run may take (debug build; the policy budget is 5 s).
const WALL: Duration = Duration::from_secs(30);
/// Peak RSS any child of this test binary may reach (shoal, its policy
/// worker: RUSAGE_CHILDREN covers waited-for grandchildren too).
const PEAK_KB: i64 = 400 << 10;

/// `shoal args`, timed; asserts it was not killed by a signal (an abort).
fn run(args: &[&str]) -> Output {
    let started = Instant::now();
    let out = shoal(args);
    let took = started.elapsed();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        out.status.signal(),
        None,
        "shoal {args:?} was killed by a signal (an abort?): {}",
        stderr(&out)
    );
    assert!(took < WALL, "shoal {args:?} took {took:?}");
    assert_peak_memory();
    out
}

/// The largest RSS of any child waited for so far stays bounded.
fn assert_peak_memory() {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct we own; zeroed is a valid rusage.
    let usage = unsafe {
        assert_eq!(
            libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()),
            0
        );
        usage.assume_init()
    };
    assert!(
        usage.ru_maxrss < PEAK_KB,
        "a child reached {} KB of RSS",
        usage.ru_maxrss
    );
}

fn validate(repo: &Repo) -> Output {
    run(&[
        "validate",
        "--repo",
        repo.path().to_str().unwrap(),
        "--nodes",
        "1",
    ])
}

fn all_output(out: &Output) -> String {
    format!("{}{}", stdout(out), stderr(out))
}

const HONEST: &str = "services:\n  web:\n    image: nginx:1.27\n";

/// 30,000 nested block sequences: 60 KB.
fn deep_block() -> String {
    format!("{HONEST}x-deep:\n  {}a\n", "- ".repeat(30_000))
}

#[test]
fn deeply_nested_stack_files_are_errors_naming_file_and_limit() {
    let cases = [
        deep_block(),
        format!(
            "{HONEST}x-deep: {}{}\n",
            "[".repeat(30_000),
            "]".repeat(30_000)
        ),
        format!("{HONEST}x-deep: {}1\n", "{a: ".repeat(30_000)),
    ];
    for text in cases {
        let repo = Repo::new();
        repo.stack("deep", &text);
        let out = validate(&repo);
        assert_code(&out, 1);
        let all = all_output(&out);
        assert!(
            all.contains("stacks/deep/stack.yml:") && all.contains("deeper than 64 levels"),
            "{all}"
        );
    }
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = format!("{HONEST}x-a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        text.push_str(&format!("x-a{i}: &a{i} [{refs}]\n"));
    }
    let repo = Repo::new();
    repo.stack("laughs", &text);
    let out = validate(&repo);
    assert_code(&out, 1);
    let all = all_output(&out);
    assert!(
        all.contains("stacks/laughs/stack.yml") && all.contains("repetition limit"),
        "{all}"
    );
}

#[test]
fn deeply_nested_sops_files_are_errors_naming_file_and_limit() {
    // Shaped like SOPS files (markers, ciphertext), so they are parsed as such.
    let dotenv = format!(
        "A=ENC[AES256_GCM,data:xx,iv:xx,tag:xx,type:str]\nsops_version=3.9.0\nsops_mac=x\nsops_x{}=1\n",
        "__map_x".repeat(10_000)
    );
    let yaml = format!(
        "A: ENC[AES256_GCM,data:xx,iv:xx,tag:xx,type:str]\nsops:\n  mac: x\n  version: 3.9.0\nx: {}{}\n",
        "[".repeat(30_000),
        "]".repeat(30_000)
    );
    for (name, text) in [("stack.sops.env", dotenv), ("stack.env.sops.yaml", yaml)] {
        let repo = Repo::new();
        repo.stack("s", HONEST);
        repo.write(&format!("stacks/s/{name}"), &text);
        let out = validate(&repo);
        assert_code(&out, 1);
        let all = all_output(&out);
        assert!(
            all.contains(&format!("stacks/s/{name}")) && all.contains("64"),
            "{all}"
        );
    }
}

/// A repository with one honest stack and `policy` as its only policy.
fn with_policy(policy: &str) -> Repo {
    let repo = Repo::new();
    repo.stack("a", HONEST);
    repo.write("policies/bomb.rego", policy);
    repo
}

fn assert_policy_stopped(repo: &Repo, budget: &str) {
    let out = validate(repo);
    assert_code(&out, 3);
    let all = all_output(&out);
    assert!(
        all.contains("policies/bomb.rego") && all.contains(budget),
        "{all}"
    );
}

#[test]
fn a_recursive_policy_function_is_a_policy_error() {
    let repo = with_policy(
        "package main\n\nf(x) := y if { y := f(x) }\n\ndeny contains msg if { msg := f(1) }\n",
    );
    assert_policy_stopped(&repo, "overflowed the stack");
}

#[test]
fn a_slow_policy_is_stopped_at_the_time_budget() {
    let repo = with_policy(
        "package main\n\ndeny contains msg if {\n  xs := [x | some i in numbers.range(1, 4000); some j in numbers.range(1, 4000); x := i * j]\n  count(xs) < 0\n  msg := \"never\"\n}\n",
    );
    assert_policy_stopped(&repo, "time budget of 5 s");
}

#[test]
fn a_greedy_policy_is_stopped_at_the_memory_budget() {
    let range = with_policy(
        "package main\n\ndeny contains msg if {\n  count(numbers.range(1, 300000000)) < 0\n  msg := \"never\"\n}\n",
    );
    assert_policy_stopped(&range, "memory budget of 256 MiB");
    // Doubling a string 40 times: 1 TB if nothing stops it.
    let concat = with_policy(
        "package main\n\ndouble(s) := concat(\"\", [s, s])\n\ns0 := \"0123456789abcdef\"\n",
    );
    let mut policy = std::fs::read_to_string(concat.path().join("policies/bomb.rego")).unwrap();
    for i in 1..=40 {
        policy.push_str(&format!("s{i} := double(s{})\n", i - 1));
    }
    policy.push_str("deny contains msg if { count(s40) < 0; msg := \"never\" }\n");
    concat.write("policies/bomb.rego", &policy);
    let out = validate(&concat);
    assert_code(&out, 3);
    let all = all_output(&out);
    assert!(
        all.contains("policies/bomb.rego")
            && (all.contains("memory budget of 256 MiB") || all.contains("time budget of 5 s")),
        "{all}"
    );
}

#[test]
fn a_policy_that_parses_for_ever_is_stopped() {
    let literal = format!("{}1{}", "[".repeat(25), "]".repeat(25));
    let repo = with_policy(&format!("package main\n\nx := {literal}\n"));
    let out = validate(&repo);
    assert_code(&out, 3);
    let all = all_output(&out);
    assert!(
        all.contains("policies/bomb.rego: loading the policies stopped")
            && all.contains("time budget of 5 s"),
        "{all}"
    );
}

#[test]
fn a_recursive_policy_test_is_an_error_not_an_abort() {
    let repo = Repo::new();
    repo.write(
        "policies/bomb_test.rego",
        "package main_test\n\nf(x) := y if { y := f(x) }\n\ntest_bomb if { f(1) }\n",
    );
    let out = run(&["policy", "test", "--repo", repo.path().to_str().unwrap()]);
    assert_code(&out, 1);
    let all = all_output(&out);
    assert!(
        all.contains("policies/bomb_test.rego") && all.contains("overflowed the stack"),
        "{all}"
    );
}

#[test]
fn the_agent_survives_a_hostile_stack_and_applies_the_others() {
    let honest = stack_name("hl-ok");
    let deep = stack_name("hl-deep");
    let bomb = stack_name("hl-bomb");
    let _guard = StackGuard::new(&[&honest, &deep, &bomb]);
    let remote = GitRemote::new();
    remote.write(&format!("stacks/{honest}/stack.yml"), &app_stack(1));
    remote.write(&format!("stacks/{deep}/stack.yml"), &deep_block());
    remote.write(&format!("stacks/{bomb}/stack.yml"), &app_stack(1));
    // A policy that recurses without end for one stack only.
    remote.write(
        "policies/bomb.rego",
        &format!(
            "package main\n\nf(x) := y if {{ y := f(x) }}\n\ndeny contains msg if {{\n  input.stack == \"{bomb}\"\n  msg := f(1)\n}}\n"
        ),
    );
    remote.push("one honest stack, two hostile ones");
    let mut agent = Agent::start(&remote, &format!("shoal-lease-{honest}"), "1s", &[]);
    poll("the honest stack applied", Duration::from_secs(60), || {
        (replicas(&format!("{honest}_app")) == Some(1)).then_some(())
    });
    poll(
        "both hostile stacks reported",
        Duration::from_secs(30),
        || {
            (stack_outcome(&agent, &deep).as_deref() == Some("load-error")
                && stack_outcome(&agent, &bomb).as_deref() == Some("policy-denied"))
            .then_some(())
        },
    );
    let status = agent.status();
    let deep_error = status["stacks"][&deep]["error"].as_str().unwrap_or("");
    assert!(
        deep_error.contains("stack.yml") && deep_error.contains("deeper than 64"),
        "{status}"
    );
    assert!(service_spec(&format!("{bomb}_app")).is_none(), "{status}");
    let bomb_error = status["stacks"][&bomb]["error"].as_str().unwrap_or("");
    assert!(bomb_error.contains("policies/bomb.rego"), "{status}");
    // Still up and reconciling after two more passes over the same commit.
    let passes = |agent: &Agent| -> u64 {
        agent
            .metrics()
            .lines()
            .filter(|l| l.starts_with("shoal_reconciles_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    };
    let before = passes(&agent);
    poll("two more passes", Duration::from_secs(30), || {
        assert!(
            http(agent.port, "GET", "/healthz", &[], b"").is_some(),
            "/healthz stopped answering: {}",
            agent.logs()
        );
        (passes(&agent) >= before + 2).then_some(())
    });
    assert!(
        agent.child.try_wait().unwrap().is_none(),
        "the agent exited: {}",
        agent.logs()
    );
    assert_peak_memory();
}
