//! `shoal completions`, `shoal --version` and the hidden `shoal healthcheck`:
//! small CLI surfaces, no swarm needed.
mod common;

use common::*;

#[test]
fn bash_completion_knows_the_subcommands() {
    let o = shoal(&["completions", "bash"]);
    assert_code(&o, 0);
    let script = stdout(&o);
    assert!(
        script.contains("complete "),
        "not a bash completion:\n{script}"
    );
    for word in ["plan", "apply", "validate", "agent", "--auto-approve"] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
}

#[test]
fn zsh_and_fish_completions_are_generated() {
    for (shell, marker) in [("zsh", "#compdef shoal"), ("fish", "complete -c shoal")] {
        let o = shoal(&["completions", shell]);
        assert_code(&o, 0);
        assert!(stdout(&o).contains(marker), "{shell}: {}", stdout(&o));
    }
    let o = shoal(&["completions", "tcsh"]);
    assert_code(&o, 2);
    assert!(stderr(&o).contains("bash"), "{}", stderr(&o));
}

#[test]
fn version_names_the_commit() {
    let o = shoal(&["--version"]);
    assert_code(&o, 0);
    let line = stdout(&o);
    let want = format!("shoal {} (commit ", env!("CARGO_PKG_VERSION"));
    assert!(line.starts_with(&want), "{line}");
    // Built from this work tree, the commit is git's, not "unknown".
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("git");
    if head.status.success() {
        let head = String::from_utf8_lossy(&head.stdout).trim().to_string();
        let commit = line
            .trim()
            .trim_end_matches(')')
            .rsplit(' ')
            .next()
            .unwrap();
        // The binary may be a commit or two behind HEAD if it was built
        // before the last commit; it must at least be a real commit id.
        assert!(
            commit == head || commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{line} (HEAD is {head})"
        );
    }
}

#[test]
fn healthcheck_fails_when_nothing_answers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let o = shoal(&["healthcheck", "--url", &url, "--timeout", "2s"]);
    assert_code(&o, 1);
    assert!(stderr(&o).contains(&url), "{}", stderr(&o));
}

/// `shoal ... | head`: the reader going away stops shoal quietly with
/// SIGPIPE's status, no panic, whichever way the output is written.
#[test]
fn a_closed_output_pipe_ends_quietly() {
    let repo = Repo::new();
    repo.stack(
        "web",
        "services:\n  app:\n    image: busybox:1.36\n    deploy:\n      replicas: 2\n",
    );
    let dir = repo.path().to_str().unwrap();
    for args in [
        vec!["completions", "bash"],
        vec!["validate", "--repo", dir],
        vec!["validate", "--repo", dir, "--format", "json"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(&args)
            .env("NO_COLOR", "1")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(141), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?}");
    }
}
