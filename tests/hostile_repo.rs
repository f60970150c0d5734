//! Crafted repositories run through the real `shoal validate` and `shoal
//! plan --repo DIR`: a repository writer may deploy services, but must not
//! read files outside the repository (links, absolute paths), another
//! stack's files, or stall the process (devices, fifos, huge files). Each
//! attack must be that stack's error, named with the file and the rule or
//! limit, while the repository's other stacks still load. The honest cases
//! next to them (absolute paths inside the stack folder, `stacks/_shared/`)
//! keep working, with `docker stack deploy` parity.
mod common;

use common::*;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long one run may take: loading a hostile stack must fail fast.
const DEADLINE: Duration = Duration::from_secs(60);

/// Address space of one run: far above what shoal needs, far below what
/// reading `/dev/zero` or a huge file whole would take.
const MEMORY: u64 = 2 << 30;

/// Run shoal with a deadline and a memory ceiling; a run past the deadline
/// is killed and fails the test (a hang is an attack that worked).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shoal"));
    cmd.args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: MEMORY,
                rlim_max: MEMORY,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run shoal");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "shoal {args:?} still running after {DEADLINE:?}\n--- stderr\n{}",
                stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A repository with an honest stack `ok` next to the hostile ones, so
/// every test also checks that the others still load.
fn repo() -> Repo {
    let repo = Repo::new();
    repo.stack(
        "ok",
        "services:\n  app:\n    image: busybox:latest\n    command: [sleep, \"3600\"]\n",
    );
    repo
}

/// `services.app` using config `c` (and nothing else), then `extra`.
fn config_stack(file: &str) -> String {
    format!(
        "services:\n  app:\n    image: busybox:latest\n    configs: [c]\nconfigs:\n  c:\n    file: {file}\n"
    )
}

/// Both `validate` and `plan` fail with an error for `stack` containing
/// every piece of `wanted`, and still load stack `ok`. Returns stderr of
/// both runs.
fn assert_stack_error(repo: &Repo, stack: &str, wanted: &[&str], env: &[(&str, &str)]) -> String {
    let dir = repo.path().to_str().unwrap();
    let mut all = String::new();
    for args in [
        vec!["validate", "--repo", dir],
        vec!["plan", "--repo", dir, "--stack", "ok", "--stack", stack],
    ] {
        let out = run(&args, env);
        let (so, se) = (stdout(&out), stderr(&out));
        assert_ne!(out.status.code(), Some(0), "{args:?} passed:\n{so}\n{se}");
        let line = se
            .lines()
            .find(|l| l.starts_with(&format!("error: stack {stack}: ")))
            .unwrap_or_else(|| panic!("{args:?}: no error for stack {stack}:\n{so}\n{se}"));
        for w in wanted {
            assert!(line.contains(w), "{args:?}: {w:?} not in {line:?}");
        }
        // The honest stack still loads (validate lists it, plan plans it).
        assert!(
            so.contains("stack ok:") || so.contains("service ok_app"),
            "{args:?}: stack ok did not load:\n{so}\n{se}"
        );
        all.push_str(&se);
        all.push_str(&so);
    }
    all
}

#[test]
fn a_config_file_linked_to_etc_shadow_is_refused() {
    let repo = repo();
    repo.stack("evil", &config_stack("./cfg"));
    symlink("/etc/shadow", repo.path().join("stacks/evil/cfg")).unwrap();
    assert_stack_error(
        &repo,
        "evil",
        &[
            "configs.c.file",
            "stacks/evil/cfg: is a symbolic link to /etc/shadow, which is outside the repository",
        ],
        &[],
    );
}

#[test]
fn an_env_file_through_a_linked_folder_is_refused() {
    let repo = repo();
    repo.stack(
        "evil",
        "services:\n  app:\n    image: busybox:latest\n    env_file: root/etc/os-release\n",
    );
    symlink("/", repo.path().join("stacks/evil/root")).unwrap();
    assert_stack_error(
        &repo,
        "evil",
        &[
            "env_file",
            "stacks/evil/root: is a symbolic link to /, which is outside the repository",
        ],
        &[],
    );
}

#[test]
fn a_linked_stack_file_is_refused_without_its_content() {
    let repo = repo();
    // A file outside the repository whose content a parse error would quote.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("shadow");
    std::fs::write(&secret, "root:$6$TOPSECRETHASH:19000:0:99999:7:::\n").unwrap();
    std::fs::create_dir_all(repo.path().join("stacks/evil")).unwrap();
    symlink(&secret, repo.path().join("stacks/evil/stack.yml")).unwrap();
    let text = assert_stack_error(
        &repo,
        "evil",
        &[
            "stacks/evil/stack.yml: is a symbolic link to",
            "outside the repository",
        ],
        &[],
    );
    assert!(
        !text.contains("TOPSECRET"),
        "content of the link target printed:\n{text}"
    );

    // /etc/shadow itself, named but not read.
    let repo = self::repo();
    std::fs::create_dir_all(repo.path().join("stacks/evil")).unwrap();
    symlink("/etc/shadow", repo.path().join("stacks/evil/stack.yml")).unwrap();
    assert_stack_error(
        &repo,
        "evil",
        &["stacks/evil/stack.yml: is a symbolic link to /etc/shadow"],
        &[],
    );
}

#[test]
fn a_linked_variables_file_is_an_error_not_skipped() {
    for name in ["stack.env", "stack.sops.env"] {
        let repo = repo();
        repo.stack("evil", "services:\n  app:\n    image: busybox:latest\n");
        symlink("/etc/shadow", repo.path().join("stacks/evil").join(name)).unwrap();
        assert_stack_error(
            &repo,
            "evil",
            &[&format!(
                "stacks/evil/{name}: is a symbolic link to /etc/shadow"
            )],
            &[],
        );
    }
}

#[test]
fn a_link_to_dev_zero_fails_fast_in_bounded_memory() {
    let repo = repo();
    repo.stack("evil", &config_stack("./zero"));
    symlink("/dev/zero", repo.path().join("stacks/evil/zero")).unwrap();
    assert_stack_error(
        &repo,
        "evil",
        &["stacks/evil/zero: is a symbolic link to /dev/zero"],
        &[],
    );
    // The stack file itself.
    let repo = self::repo();
    std::fs::create_dir_all(repo.path().join("stacks/evil")).unwrap();
    symlink("/dev/zero", repo.path().join("stacks/evil/stack.yml")).unwrap();
    assert_stack_error(
        &repo,
        "evil",
        &["stacks/evil/stack.yml: is a symbolic link to /dev/zero"],
        &[],
    );
}

#[test]
fn a_fifo_is_refused_without_waiting_on_it() {
    let repo = repo();
    repo.stack("evil", &config_stack("./fifo"));
    let fifo = repo.path().join("stacks/evil/fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    assert_stack_error(
        &repo,
        "evil",
        &["stacks/evil/fifo: is a fifo, not a regular file"],
        &[],
    );
}

#[test]
fn a_stack_cannot_read_another_stacks_files() {
    let repo = repo();
    repo.write(
        "stacks/team-a/stack.yml",
        "services:\n  app:\n    image: busybox:latest\n",
    );
    repo.write("stacks/team-a/secrets.env", "DB_PASSWORD=team-a-only\n");
    repo.stack("evil", &config_stack("../team-a/secrets.env"));
    let text = assert_stack_error(
        &repo,
        "evil",
        &[
            "configs.c.file",
            "stacks/team-a/secrets.env, outside the stack folder stacks/evil/",
            "shared folder stacks/_shared/",
        ],
        &[],
    );
    assert!(!text.contains("team-a-only"), "{text}");
    // As an env file too.
    repo.stack(
        "evil",
        "services:\n  app:\n    image: busybox:latest\n    env_file: ../team-a/secrets.env\n",
    );
    assert_stack_error(
        &repo,
        "evil",
        &["env_file", "outside the stack folder stacks/evil/"],
        &[],
    );
}

/// The SOPS fixtures (test-only key) of this project.
fn sops_fixture(name: &str) -> String {
    format!("{}/tests/fixtures/sops/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_sops_file_is_refused_as_a_config_and_kept_as_a_secret() {
    let key = sops_fixture("test-only.agekey");
    let env = [("SHOAL_AGE_KEY_FILE", key.as_str())];
    let encrypted = std::fs::read_to_string(sops_fixture("secret.txt.sops")).unwrap();
    let repo = repo();
    repo.write("stacks/evil/secret.txt.sops", &encrypted);
    repo.stack("evil", &config_stack("./secret.txt.sops"));
    assert_stack_error(
        &repo,
        "evil",
        &[
            "configs.c.file",
            "is SOPS-encrypted",
            "declare it under `secrets:` instead",
        ],
        &env,
    );
    // The same file as a secret is what SOPS files are for.
    repo.stack(
        "evil",
        "services:\n  app:\n    image: busybox:latest\n    secrets: [s]\nsecrets:\n  s:\n    file: ./secret.txt.sops\n",
    );
    let out = run(&["validate", "--repo", repo.path().to_str().unwrap()], &env);
    assert_code(&out, 0);
}

#[test]
fn a_config_over_swarms_limit_is_refused() {
    let repo = repo();
    repo.stack("evil", &config_stack("./big.conf"));
    repo.write("stacks/evil/big.conf", &"x".repeat(600_000));
    assert_stack_error(
        &repo,
        "evil",
        &[
            "configs.c.file",
            "stacks/evil/big.conf: is larger than 512000 bytes (500 KiB), the limit for a config",
        ],
        &[],
    );
    // Exactly at the limit is fine.
    repo.write("stacks/evil/big.conf", &"x".repeat(512_000));
    let out = run(&["validate", "--repo", repo.path().to_str().unwrap()], &[]);
    assert_code(&out, 0);
}

#[test]
fn a_50_mb_stack_file_fails_fast_naming_the_limit() {
    let repo = repo();
    // A valid stack, made huge with comments.
    let mut yaml = String::from("services:\n  app:\n    image: busybox:latest\n");
    let line = format!("# {}\n", "x".repeat(98));
    yaml.push_str(&line.repeat(50 * 1024 * 1024 / line.len()));
    repo.stack("evil", &yaml);
    let start = Instant::now();
    assert_stack_error(
        &repo,
        "evil",
        &[
            "stacks/evil/stack.yml: is larger than 1048576 bytes (1 MiB)",
            "the limit for one file read from the repository",
        ],
        &[],
    );
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_stack_reading_too_much_in_all_is_refused() {
    let repo = repo();
    // 17 configs, each at Swarm's limit: 8.3 MiB in all.
    let mut yaml = String::from("services:\n  app:\n    image: busybox:latest\n    configs:\n");
    let mut objects = String::from("configs:\n");
    for i in 0..17 {
        yaml.push_str(&format!("      - c{i}\n"));
        objects.push_str(&format!("  c{i}:\n    file: ./c{i}.conf\n"));
        repo.write(
            &format!("stacks/evil/c{i}.conf"),
            &format!("{i:02}{}", "x".repeat(512_000 - 2)),
        );
    }
    repo.stack("evil", &format!("{yaml}{objects}"));
    assert_stack_error(
        &repo,
        "evil",
        &["takes the files of stack evil past 8388608 bytes (8 MiB) in all"],
        &[],
    );
}

#[test]
fn policies_over_their_total_are_refused() {
    let repo = repo();
    let comment = format!("# {}\n", "x".repeat(1000));
    for i in 0..5 {
        repo.write(
            &format!("policies/p{i}.rego"),
            &format!("package shoal.p{i}\n{}", comment.repeat(1000)),
        );
    }
    let out = run(&["validate", "--repo", repo.path().to_str().unwrap()], &[]);
    assert_ne!(out.status.code(), Some(0));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        text.contains("takes the policy files past 4194304 bytes (4 MiB) in all"),
        "{text}"
    );
}

/// The folder a repository's path resolves to, as `$PWD` in it would be.
fn real(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_absolute_path_inside_the_stack_folder_plans_clean_after_docker_deploy() {
    let stack = stack_name("hra");
    let _guard = StackGuard::new(&[&stack]);
    let repo = Repo::new();
    let dir = format!("{}/stacks/{stack}", real(repo.path()));
    let file = repo.stack(
        &stack,
        &format!(
            "services:\n  app:\n    image: busybox:latest\n    command: [sleep, \"3600\"]\n    configs:\n      - source: c\n        target: /etc/x.conf\n\
             configs:\n  c:\n    file: {dir}/conf/x.conf\n"
        ),
    );
    repo.write(&format!("stacks/{stack}/conf/x.conf"), "listen 80;\n");
    let root = repo.path().to_str().unwrap();
    let out = run(&["validate", "--repo", root], &[]);
    assert_code(&out, 0);

    docker_stack_deploy(&file, &stack);
    let out = run(
        &[
            "plan",
            "--repo",
            root,
            "--stack",
            &stack,
            "--detailed-exitcode",
        ],
        &[],
    );
    assert_code(&out, 0);
    assert!(stdout(&out).contains("No changes"), "{}", stdout(&out));

    // An absolute path elsewhere says why it is refused.
    repo.stack(&stack, &config_stack("/etc/hostname"));
    let out = run(&["validate", "--repo", root], &[]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("\"/etc/hostname\" is outside the repository"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_shared_folder_is_readable_by_every_stack_and_is_not_a_stack() {
    let repo = repo();
    repo.write("stacks/_shared/ca.pem", "-----BEGIN CERTIFICATE-----\n");
    repo.stack("web", &config_stack("../_shared/ca.pem"));
    let out = run(&["validate", "--repo", repo.path().to_str().unwrap()], &[]);
    assert_code(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("stack web: 1 services, 1 networks, 1 configs"),
        "{text}"
    );
    assert!(!text.contains("_shared"), "{text}");
}

/// `git` in `dir`, which must succeed.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn git_mode_gives_the_same_answers() {
    let repo = repo();
    // Each hostile stack alone in its own folder.
    repo.stack("link", &config_stack("./cfg"));
    symlink("/etc/shadow", repo.path().join("stacks/link/cfg")).unwrap();
    std::fs::create_dir_all(repo.path().join("stacks/linkdir")).unwrap();
    symlink("/", repo.path().join("stacks/linkdir/root")).unwrap();
    repo.write(
        "stacks/linkdir/stack.yml",
        "services:\n  app:\n    image: busybox:latest\n    env_file: root/etc/os-release\n",
    );
    repo.stack("cross", &config_stack("../ok/stack.yml"));
    repo.stack("abs", &config_stack("/etc/hostname"));
    repo.stack("big", &config_stack("./big.conf"));
    repo.write("stacks/big/big.conf", &"x".repeat(600_000));
    let mut huge = String::from("services:\n  app:\n    image: busybox:latest\n");
    huge.push_str(&format!("# {}\n", "x".repeat(98)).repeat(20_000));
    repo.stack("huge", &huge);
    git(repo.path(), &["init", "-q"]);
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "hostile"]);

    let cache = tempfile::tempdir().unwrap();
    let url = format!("file://{}", repo.path().display());
    let out = run(
        &["validate", "--repo", &url],
        &[("XDG_CACHE_HOME", cache.path().to_str().unwrap())],
    );
    let (so, se) = (stdout(&out), stderr(&out));
    assert_ne!(out.status.code(), Some(0), "{so}\n{se}");
    assert!(so.contains("stack ok:"), "{so}\n{se}");
    for (stack, wanted) in [
        ("link", "stacks/link/cfg: is a symbolic link"),
        ("linkdir", "stacks/linkdir/root: is a symbolic link"),
        ("cross", "outside the stack folder stacks/cross/"),
        ("abs", "is an absolute path, and a git commit has no folder"),
        (
            "big",
            "is larger than 512000 bytes (500 KiB), the limit for a config",
        ),
        (
            "huge",
            "stacks/huge/stack.yml: is larger than 1048576 bytes (1 MiB)",
        ),
    ] {
        let line = se
            .lines()
            .find(|l| l.starts_with(&format!("error: stack {stack}: ")))
            .unwrap_or_else(|| panic!("no error for stack {stack}:\n{se}"));
        assert!(line.contains(wanted), "{wanted:?} not in {line:?}");
    }
}
