//! The git source against real git servers on loopback: a `file://` bare
//! repository, a private `sshd` (openssh-server), and `git http-backend`
//! behind a small token-checking HTTP server (tests/common). Each test starts
//! and stops its own servers. Tests needing sshd or ssh-keygen print why
//! and return early when those binaries are missing.
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::git_http::HttpGit;
use shoal::source::git::{CommitInfo, GitError, GitOptions, GitRepo};
use shoal::source::{discover, Tree};

// ---------------------------------------------------------------- fixtures

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "shoal test")
        .env("GIT_AUTHOR_EMAIL", "test@shoal.invalid")
        .env("GIT_COMMITTER_NAME", "shoal test")
        .env("GIT_COMMITTER_EMAIL", "test@shoal.invalid")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn git(dir: &Path, args: &[&str]) -> String {
    run(dir, "git", args)
}

/// A bare "remote" repository and a work clone to commit and push from.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let f = Fixture { dir };
        git(
            f.root(),
            &["init", "-q", "--bare", "-b", "main", "remote.git"],
        );
        git(f.root(), &["init", "-q", "-b", "main", "work"]);
        git(
            &f.work(),
            &["remote", "add", "origin", f.bare().to_str().unwrap()],
        );
        f.commit(
            "first: web stack",
            &[(
                "stacks/web/stack.yml",
                "services:\n  web:\n    image: nginx:1.27\n",
            )],
        );
        f
    }
    fn root(&self) -> &Path {
        self.dir.path()
    }
    fn work(&self) -> PathBuf {
        self.root().join("work")
    }
    fn bare(&self) -> PathBuf {
        self.root().join("remote.git")
    }
    fn file_url(&self) -> String {
        format!("file://{}", self.bare().display())
    }
    fn cache(&self) -> PathBuf {
        self.root().join("cache")
    }
    fn opts(&self) -> GitOptions {
        GitOptions {
            cache_dir: self.cache(),
            ..Default::default()
        }
    }
    /// Commit files on the current branch and push it; returns the id.
    fn commit(&self, message: &str, files: &[(&str, &str)]) -> String {
        let work = self.work();
        for (path, text) in files {
            let full = work.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, text).unwrap();
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", message]);
        let branch = git(&work, &["rev-parse", "--abbrev-ref", "HEAD"]);
        git(&work, &["push", "-q", "origin", &branch]);
        git(&work, &["rev-parse", "HEAD"])
    }
}

fn read_string(tree: &dyn Tree, path: &str) -> String {
    String::from_utf8(tree.read(path).unwrap()).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------- file://

#[test]
fn file_remote_resolves_head_reads_files_and_fetches_only_when_moved() {
    let f = Fixture::new();
    let first = git(&f.work(), &["rev-parse", "HEAD"]);
    let repo = GitRepo::open(&f.file_url(), f.opts()).unwrap();

    let c = repo.resolve(None).unwrap();
    assert_eq!(c.id, first);
    assert_eq!(c.short, &first[..7]);
    assert_eq!(c.summary, "first: web stack");
    assert!(c.time > 1_600_000_000);
    let s = repo.stats();
    assert!(s.last_fetched);
    assert_eq!((s.ls_remotes, s.fetches, s.fetch_errors), (1, 1, 0));

    let tree = repo.tree(&c).unwrap();
    assert_eq!(
        read_string(&tree, "stacks/web/stack.yml"),
        "services:\n  web:\n    image: nginx:1.27\n"
    );
    assert_eq!(tree.list("").unwrap(), vec!["stacks"]);
    assert_eq!(tree.list("stacks").unwrap(), vec!["web"]);
    assert!(tree.list("nope").unwrap().is_empty());
    assert!(tree.is_file("stacks/web/stack.yml"));
    assert!(!tree.is_file("stacks/web"));
    assert!(tree.local_root().is_none());
    assert_eq!(
        tree.describe(),
        format!("{} at {}", f.file_url(), &first[..7])
    );
    let err = tree.read("stacks/web/missing.yml").unwrap_err().to_string();
    assert!(
        err.contains("stacks/web/missing.yml") && err.contains("no such file"),
        "{err}"
    );
    let stacks = discover(&tree).unwrap();
    assert_eq!(stacks.len(), 1);
    assert_eq!(stacks[0].file, "stacks/web/stack.yml");

    // Nothing moved: the remote is asked, nothing is fetched.
    let again = repo.resolve(None).unwrap();
    assert_eq!(again, c);
    let s = repo.stats();
    assert!(!s.last_fetched);
    assert_eq!((s.ls_remotes, s.fetches), (2, 1));

    // A new commit: seen and fetched.
    let second = f.commit(
        "second: add db",
        &[("stacks/db/stack.yml", "services: {}\n")],
    );
    let c2 = repo.resolve(None).unwrap();
    assert_eq!(c2.id, second);
    assert_eq!(c2.summary, "second: add db");
    assert!(repo.stats().last_fetched);
    assert_eq!(repo.stats().fetches, 2);
    let tree2 = repo.tree(&c2).unwrap();
    assert_eq!(tree2.list("stacks").unwrap(), vec!["db", "web"]);
    // The old tree still reads the old commit.
    assert_eq!(tree.list("stacks").unwrap(), vec!["web"]);

    // A later run reuses the cache: same folder, no fetch needed.
    let reopened = GitRepo::open(&f.file_url(), f.opts()).unwrap();
    assert_eq!(reopened.cache_path(), repo.cache_path());
    assert_eq!(reopened.resolve(None).unwrap().id, second);
    assert_eq!(reopened.stats().fetches, 0);
}

#[test]
fn git_tree_is_cheap_to_share_across_threads() {
    let f = Fixture::new();
    let repo = GitRepo::open(&f.file_url(), f.opts()).unwrap();
    let tree = repo.tree(&repo.resolve(None).unwrap()).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let t = tree.clone();
            std::thread::spawn(move || read_string(&t, "stacks/web/stack.yml"))
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap().contains("nginx:1.27"));
    }
}

#[test]
fn file_remote_refs_by_branch_tag_and_commit_id() {
    let f = Fixture::new();
    let first = git(&f.work(), &["rev-parse", "HEAD"]);
    git(&f.work(), &["tag", "-a", "v1", "-m", "release 1"]);
    git(&f.work(), &["tag", "light"]);
    git(&f.work(), &["push", "-q", "origin", "v1", "light"]);
    let second = f.commit(
        "second on main",
        &[("stacks/web/stack.yml", "services: {}\n")],
    );
    let third = f.commit(
        "third on main",
        &[("stacks/web/stack.yml", "services: {x: {}}\n")],
    );
    git(&f.work(), &["checkout", "-q", "-b", "dev", &first]);
    let dev = f.commit("on dev", &[("stacks/dev/stack.yml", "services: {}\n")]);

    let repo = GitRepo::open(&f.file_url(), f.opts()).unwrap();
    assert_eq!(repo.resolve(None).unwrap().id, third);
    assert_eq!(repo.resolve(Some("main")).unwrap().id, third);
    assert_eq!(repo.resolve(Some("dev")).unwrap().id, dev);
    assert_eq!(repo.resolve(Some("refs/heads/dev")).unwrap().id, dev);
    // An annotated tag resolves to its commit.
    assert_eq!(repo.resolve(Some("v1")).unwrap().id, first);
    assert_eq!(repo.resolve(Some("light")).unwrap().id, first);
    // A full id already cached: no network at all.
    let before = repo.stats();
    assert_eq!(repo.resolve(Some(&third)).unwrap().id, third);
    assert_eq!(repo.stats().ls_remotes, before.ls_remotes);

    // A short id of a commit no ref points at, in a fresh cache: fetch all.
    let fresh = GitRepo::open(
        &f.file_url(),
        GitOptions {
            cache_dir: f.root().join("cache2"),
            ..Default::default()
        },
    )
    .unwrap();
    let c = fresh.resolve(Some(&second[..8])).unwrap();
    assert_eq!(c.id, second);
    assert_eq!(c.summary, "second on main");
    assert!(fresh.stats().last_fetched);
    let tree = fresh.tree(&c).unwrap();
    assert_eq!(read_string(&tree, "stacks/web/stack.yml"), "services: {}\n");
    // A full id of a commit no ref points at, in another fresh cache.
    let fresh = GitRepo::open(
        &f.file_url(),
        GitOptions {
            cache_dir: f.root().join("cache3"),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(fresh.resolve(Some(&second)).unwrap().id, second);
}

#[test]
fn file_remote_unknown_ref_lists_available_refs() {
    let f = Fixture::new();
    git(&f.work(), &["tag", "v9"]);
    git(&f.work(), &["push", "-q", "origin", "v9"]);
    let repo = GitRepo::open(&f.file_url(), f.opts()).unwrap();
    let err = repo.resolve(Some("no-such-branch")).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, GitError::UnknownRef { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("no-such-branch"), "{msg}");
    assert!(msg.contains("main") && msg.contains("v9"), "{msg}");
    assert!(msg.contains(&f.file_url()), "{msg}");

    // An id no commit has.
    let err = repo.resolve(Some("deadbeefdeadbeef")).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, GitError::UnknownRef { .. }), "{err:?}");

    // A remote whose HEAD names a missing branch advertises no HEAD.
    git(&f.bare(), &["symbolic-ref", "HEAD", "refs/heads/gone"]);
    let err = repo.resolve(None).unwrap_err();
    eprintln!("{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("no default branch") && msg.contains("main"),
        "{msg}"
    );
    assert_eq!(
        repo.resolve(Some("main")).unwrap().summary,
        "first: web stack"
    );
}

#[test]
fn file_remote_unreachable_path_is_a_clear_error() {
    let f = Fixture::new();
    let url = format!("file://{}/nowhere.git", f.root().display());
    let repo = GitRepo::open(&url, f.opts()).unwrap();
    let err = repo.resolve(None).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, GitError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("nowhere.git"), "{err}");
    assert_eq!(repo.stats().fetch_errors, 1);
}

#[test]
fn bad_urls_are_refused() {
    let f = Fixture::new();
    let err = GitRepo::open("ftp://me:pw-9z@example.com/x.git", f.opts()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unsupported scheme"), "{msg}");
    assert!(!msg.contains("pw-9z"), "{msg}");
}

#[test]
fn empty_remote_is_a_clear_error() {
    let f = Fixture::new();
    git(f.root(), &["init", "-q", "--bare", "empty.git"]);
    let url = format!("file://{}/empty.git", f.root().display());
    let err = GitRepo::open(&url, f.opts())
        .unwrap()
        .resolve(None)
        .unwrap_err();
    eprintln!("{err}");
    assert!(err.to_string().contains("empty"), "{err}");
}

// ---------------------------------------------------------------- ssh

/// A private sshd on a free loopback port, with a test host key and one
/// authorized client key; killed on drop.
struct Sshd {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sshd {
    /// `None` (with the reason printed) when openssh-server is missing;
    /// under SHOAL_REQUIRE_TOOLS=1 (CI) that is a failure instead.
    fn start(dir: &Path) -> Option<Sshd> {
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let hint =
            "apt-get install openssh-server openssh-client, or scripts/git-servers.sh install";
        if !common::tools_available(&["ssh-keygen"], hint) {
            return None;
        }
        let Some(sshd) = sshd else {
            assert!(
                std::env::var("SHOAL_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "SHOAL_REQUIRE_TOOLS=1 and sshd is not installed: {hint}"
            );
            eprintln!("skipping: sshd is not installed: {hint}");
            return None;
        };
        let dir = dir.join("sshd");
        std::fs::create_dir_all(&dir).unwrap();
        keygen(&dir.join("host_key"));
        keygen(&dir.join("client_key"));
        keygen(&dir.join("other_key"));
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        // sshd wants its privilege-separation folder even in a private setup.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\nPidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin yes\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             UsePAM no\nLogLevel ERROR\n",
            dir = dir.display()
        );
        std::fs::write(dir.join("sshd_config"), config).unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(dir.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Readiness probes make sshd complain; keep that out of test output.
            .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
            .spawn()
            .expect("start sshd");
        wait_for_port(port);
        Some(Sshd { child, port, dir })
    }

    fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            whoami(),
            self.port,
            repo.display()
        )
    }

    /// A known_hosts file trusting this server's host key.
    fn known_hosts(&self) -> PathBuf {
        let key = std::fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
        let path = self.dir.join("known_hosts");
        std::fs::write(&path, format!("[127.0.0.1]:{} {key}", self.port)).unwrap();
        path
    }

    fn opts(&self, f: &Fixture, key: &str, known_hosts: PathBuf) -> GitOptions {
        GitOptions {
            cache_dir: f.cache(),
            ssh_key: Some(self.dir.join(key)),
            known_hosts: Some(known_hosts),
            token: None,
            ..Default::default()
        }
    }
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "shoal-test", "-f"])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn ssh_with_key_and_known_hosts_clones() {
    let f = Fixture::new();
    let Some(sshd) = Sshd::start(f.root()) else {
        return;
    };
    let first = git(&f.work(), &["rev-parse", "HEAD"]);
    let opts = sshd.opts(&f, "client_key", sshd.known_hosts());
    let repo = GitRepo::open(&sshd.url(&f.bare()), opts).unwrap();
    let c = repo.resolve(None).unwrap();
    assert_eq!(c.id, first);
    let tree = repo.tree(&c).unwrap();
    assert!(read_string(&tree, "stacks/web/stack.yml").contains("nginx"));
    // Unchanged remote: no second fetch.
    repo.resolve(None).unwrap();
    assert_eq!(repo.stats().fetches, 1);
}

#[test]
fn ssh_hashed_known_hosts_entry_is_accepted() {
    let f = Fixture::new();
    let Some(sshd) = Sshd::start(f.root()) else {
        return;
    };
    let known = sshd.known_hosts();
    run(
        f.root(),
        "ssh-keygen",
        &["-q", "-H", "-f", known.to_str().unwrap()],
    );
    let text = std::fs::read_to_string(&known).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    let repo = GitRepo::open(&sshd.url(&f.bare()), sshd.opts(&f, "client_key", known)).unwrap();
    repo.resolve(None).unwrap();
}

#[test]
fn ssh_unknown_host_is_refused_and_nothing_is_cloned() {
    let f = Fixture::new();
    let Some(sshd) = Sshd::start(f.root()) else {
        return;
    };
    let known = sshd.dir.join("other_known_hosts");
    let other = std::fs::read_to_string(sshd.dir.join("other_key.pub")).unwrap();
    std::fs::write(&known, format!("example.com {other}")).unwrap();
    let repo = GitRepo::open(
        &sshd.url(&f.bare()),
        sshd.opts(&f, "client_key", known.clone()),
    )
    .unwrap();
    let err = repo.resolve(None).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, GitError::HostKey { .. }), "{err:?}");
    let msg = err.to_string();
    let host = format!("[127.0.0.1]:{}", sshd.port);
    assert!(msg.contains(&host), "{msg}");
    assert!(msg.contains(known.to_str().unwrap()), "{msg}");
    assert!(msg.contains("not in"), "{msg}");
    assert!(msg.contains("ssh-keyscan"), "{msg}");
    assert_eq!(repo.stats().fetches, 0);

    // A known_hosts file that does not exist is the same refusal.
    let missing = sshd.dir.join("missing_known_hosts");
    let repo = GitRepo::open(
        &sshd.url(&f.bare()),
        sshd.opts(&f, "client_key", missing.clone()),
    )
    .unwrap();
    let err = repo.resolve(None).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, GitError::HostKey { .. }), "{err:?}");
    assert!(err.to_string().contains(missing.to_str().unwrap()), "{err}");
}

#[test]
fn ssh_changed_host_key_is_refused() {
    let f = Fixture::new();
    let Some(sshd) = Sshd::start(f.root()) else {
        return;
    };
    let known = sshd.dir.join("wrong_known_hosts");
    let other = std::fs::read_to_string(sshd.dir.join("other_key.pub")).unwrap();
    std::fs::write(&known, format!("[127.0.0.1]:{} {other}", sshd.port)).unwrap();
    let repo = GitRepo::open(
        &sshd.url(&f.bare()),
        sshd.opts(&f, "client_key", known.clone()),
    )
    .unwrap();
    let err = repo.resolve(None).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, GitError::HostKey { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("does not match"), "{msg}");
    assert!(
        msg.contains(&format!("{} (line 1)", known.display())),
        "{msg}"
    );
    assert_eq!(repo.stats().fetches, 0);
}

#[test]
fn ssh_wrong_client_key_is_an_auth_error() {
    let f = Fixture::new();
    let Some(sshd) = Sshd::start(f.root()) else {
        return;
    };
    let repo = GitRepo::open(
        &sshd.url(&f.bare()),
        sshd.opts(&f, "other_key", sshd.known_hosts()),
    )
    .unwrap();
    let err = repo.resolve(None).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("other_key"), "{err}");
}

#[test]
fn ssh_agent_key_is_used_without_a_key_file() {
    let f = Fixture::new();
    let Some(sshd) = Sshd::start(f.root()) else {
        return;
    };
    if !common::tools_available(&["ssh-agent", "ssh-add"], "apt-get install openssh-client") {
        return;
    }
    let sock = sshd.dir.join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "ssh-agent did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg(sshd.dir.join("client_key"))
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    // libssh2 finds the agent through this variable only. No other test in
    // this file reads it (they all give a key file).
    std::env::set_var("SSH_AUTH_SOCK", &sock);
    let mut opts = sshd.opts(&f, "client_key", sshd.known_hosts());
    opts.ssh_key = None;
    let result = GitRepo::open(&sshd.url(&f.bare()), opts)
        .unwrap()
        .resolve(None);
    std::env::remove_var("SSH_AUTH_SOCK");
    let _ = agent.kill();
    let _ = agent.wait();
    let c: CommitInfo = result.unwrap();
    assert_eq!(c.id, git(&f.work(), &["rev-parse", "HEAD"]));
}

// ---------------------------------------------------------------- http

#[test]
fn http_token_is_required_and_never_shown() {
    let f = Fixture::new();
    let token = "tok-3f9a7c1e-very-secret";
    let server = HttpGit::start(f.root(), token);
    let url = server.url("remote.git");
    let first = git(&f.work(), &["rev-parse", "HEAD"]);

    // The right token, as SHOAL_GIT_TOKEN would give it.
    let from_env = shoal::source::git::token_from(Some(token.into()), None).unwrap();
    let opts = GitOptions {
        cache_dir: f.cache(),
        token: from_env,
        // The test server speaks plain http on loopback.
        allow_insecure_http: true,
        ..Default::default()
    };
    let repo = GitRepo::open(&url, opts).unwrap();
    let c = repo.resolve(None).unwrap();
    assert_eq!(c.id, first);
    let tree = repo.tree(&c).unwrap();
    assert!(read_string(&tree, "stacks/web/stack.yml").contains("nginx"));

    // The right token from a token file, into a fresh cache.
    let file = f.root().join("token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    let opts = GitOptions {
        cache_dir: f.root().join("cache-file"),
        token: shoal::source::git::token_from(None, Some(&file)).unwrap(),
        // The test server speaks plain http on loopback.
        allow_insecure_http: true,
        ..Default::default()
    };
    assert_eq!(
        GitRepo::open(&url, opts).unwrap().resolve(None).unwrap().id,
        first
    );

    // An empty repository over a network transport.
    git(f.root(), &["init", "-q", "--bare", "empty.git"]);
    let opts = GitOptions {
        cache_dir: f.root().join("cache-empty"),
        token: Some(token.into()),
        // The test server speaks plain http on loopback.
        allow_insecure_http: true,
        ..Default::default()
    };
    let err = GitRepo::open(&server.url("empty.git"), opts)
        .unwrap()
        .resolve(None)
        .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");

    // A wrong token: an auth error that does not echo it.
    let wrong = "wrong-token-55d1";
    let opts = GitOptions {
        cache_dir: f.root().join("cache-wrong"),
        token: Some(wrong.into()),
        // The test server speaks plain http on loopback.
        allow_insecure_http: true,
        ..Default::default()
    };
    let err = GitRepo::open(&url, opts)
        .unwrap()
        .resolve(None)
        .unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(!msg.contains(wrong) && !msg.contains(token), "{msg}");
    assert!(msg.contains(&url), "{msg}");

    // No token at all.
    let opts = GitOptions {
        cache_dir: f.root().join("cache-none"),
        // The test server speaks plain http on loopback.
        allow_insecure_http: true,
        ..Default::default()
    };
    let err = GitRepo::open(&url, opts)
        .unwrap()
        .resolve(None)
        .unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(err.to_string().contains("no token"), "{err}");

    // A password in the URL is not printed either.
    let with_password = format!("http://me:{wrong}@127.0.0.1:{}/remote.git", server.port);
    let opts = GitOptions {
        cache_dir: f.root().join("cache-pw"),
        // The test server speaks plain http on loopback.
        allow_insecure_http: true,
        ..Default::default()
    };
    let err = GitRepo::open(&with_password, opts)
        .unwrap()
        .resolve(None)
        .unwrap_err();
    assert!(!err.to_string().contains(wrong), "{err}");
}

#[test]
fn http_unreachable_server_is_a_clear_error() {
    let f = Fixture::new();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/remote.git");
    let repo = GitRepo::open(&url, f.opts()).unwrap();
    let err = repo.resolve(None).unwrap_err();
    eprintln!("{err}");
    assert!(matches!(err, GitError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains(&url), "{err}");
}
