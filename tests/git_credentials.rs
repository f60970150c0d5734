//! Git credentials under attack, against real `git http-backend` servers on
//! loopback (tests/common/git_http.rs): a token given as the URL's user name
//! never shows in errors or in the clone cache; no credentials over plain
//! http:// unless the operator allows it, and no request at all before the
//! refusal; a redirect to another host or port never receives them.
mod common;
use common::agent::GitRemote;
use common::git_http::HttpGit;
use common::{shoal, stderr};
use shoal::source::git::{GitOptions, GitRepo};
use std::path::Path;

const STACK: &str = "services:\n  web:\n    image: nginx:1.27\n";

/// A remote with one stack, served by `git http-backend` wanting `token`.
fn served(token: &str) -> (GitRemote, HttpGit) {
    let remote = GitRemote::new();
    remote.write("stacks/web/stack.yml", STACK);
    remote.push("web");
    let server = HttpGit::start(remote.bare.parent().unwrap(), token);
    (remote, server)
}

/// Every file under `dir` (the clone cache) that contains `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let name = path.to_string_lossy().into_owned();
            if path.is_dir() {
                stack.push(path);
            } else if name.contains(needle)
                || std::fs::read(&path)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle.as_bytes())
            {
                found.push(name);
            }
        }
    }
    found
}

#[test]
fn a_token_in_the_url_is_never_printed_nor_cached() {
    let token = "ghp_urltoken7c41d9";
    let (_remote, server) = served(token);
    let url = format!("http://{token}@127.0.0.1:{}/stacks.git", server.port);
    let masked = format!("http://***@127.0.0.1:{}/stacks.git", server.port);
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();
    let base = ["--repo", &url, "--cache-dir", cache_dir];

    // It authenticates (the token is sent as the user name)...
    let ok = shoal(&[&["validate"], &base[..], &["--allow-insecure-git-http"]].concat());
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert!(!stderr(&ok).contains(token), "{}", stderr(&ok));
    // ...but the cache holds no trace of it, not even in a folder name.
    let leaks = files_containing(cache.path(), token);
    assert!(leaks.is_empty(), "the token is stored in {leaks:?}");

    // An error about that URL masks it.
    let args = [
        &["validate"],
        &base[..],
        &["--allow-insecure-git-http", "--ref", "nope"],
    ]
    .concat();
    let err = shoal(&args);
    assert!(!err.status.success());
    let text = stderr(&err);
    assert!(text.contains("unknown ref `nope`"), "{text}");
    assert!(text.contains(&masked), "{text}");
    assert!(!text.contains(token), "{text}");
    assert!(files_containing(cache.path(), token).is_empty());
}

#[test]
fn credentials_over_plain_http_are_refused_before_any_request() {
    let token = "tok-plainhttp-5e2b";
    let (_remote, server) = served(token);
    let url = server.url("stacks.git");
    let cache = tempfile::tempdir().unwrap();
    let cache_dir = cache.path().to_str().unwrap();

    // A configured token (SHOAL_GIT_TOKEN) with an http:// URL.
    let out = common::shoal_env(
        &["validate", "--repo", &url, "--cache-dir", cache_dir],
        &[("SHOAL_GIT_TOKEN", token)],
    );
    assert!(!out.status.success());
    let text = stderr(&out);
    assert!(text.contains("--allow-insecure-git-http"), "{text}");
    assert!(!text.contains(token), "{text}");
    // A token in the URL, through the library.
    let in_url = format!("http://{token}@127.0.0.1:{}/stacks.git", server.port);
    let opts = GitOptions {
        cache_dir: cache.path().to_path_buf(),
        ..Default::default()
    };
    let err = GitRepo::open(&in_url, opts.clone())
        .and_then(|repo| repo.resolve(None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("plain http://"), "{err}");
    assert!(!err.contains(token), "{err}");
    assert!(
        server.requests().is_empty(),
        "requests reached the server: {:?}",
        server.requests()
    );

    // The operator allows it: the same token now authenticates.
    let out = common::shoal_env(
        &[
            "validate",
            "--repo",
            &url,
            "--cache-dir",
            cache_dir,
            "--allow-insecure-git-http",
        ],
        &[("SHOAL_GIT_TOKEN", token)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!server.requests().is_empty());
    // Plain http without credentials (a public mirror) needs no flag; this
    // server wants a token, so the answer is an auth error, not a refusal.
    let err = GitRepo::open(&url, opts)
        .and_then(|repo| repo.resolve(None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("authentication failed"), "{err}");
}

/// Resolve `url` with `token`, returning the error text.
fn resolve_error(url: &str, token: &str) -> String {
    let cache = tempfile::tempdir().unwrap();
    let opts = GitOptions {
        cache_dir: cache.path().to_path_buf(),
        token: Some(token.into()),
        // The loopback servers speak plain http.
        allow_insecure_http: true,
        ..Default::default()
    };
    let err = GitRepo::open(url, opts)
        .and_then(|repo| repo.resolve(None))
        .expect_err("a redirect to another origin must not authenticate");
    err.to_string()
}

#[test]
fn a_redirect_to_another_host_gets_no_credentials() {
    let token = "tok-redirect-host-91af";
    let remote = GitRemote::new();
    remote.write("stacks/web/stack.yml", STACK);
    remote.push("web");
    // The real repository on another loopback address, behind a redirect.
    let elsewhere = HttpGit::start_on("127.0.0.2", remote.bare.parent().unwrap(), token);
    let redirect = HttpGit::redirecting_to(&format!("http://127.0.0.2:{}", elsewhere.port));
    let err = resolve_error(&redirect.url("stacks.git"), token);
    eprintln!("{err}");
    assert!(!err.contains(token), "{err}");
    assert!(
        !redirect.requests().is_empty(),
        "the redirect was not asked"
    );
    let with_auth: Vec<_> = elsewhere
        .requests()
        .into_iter()
        .filter(|r| r.header("authorization").is_some())
        .collect();
    assert!(
        with_auth.is_empty(),
        "credentials went to 127.0.0.2: {with_auth:?}"
    );
}

#[test]
fn a_redirect_to_another_port_gets_no_credentials() {
    // libgit2 follows redirects on the same host (any port) even when told
    // to follow none: shoal's credential callback must refuse.
    let token = "tok-redirect-port-3d07";
    let remote = GitRemote::new();
    remote.write("stacks/web/stack.yml", STACK);
    remote.push("web");
    let elsewhere = HttpGit::start(remote.bare.parent().unwrap(), token);
    let redirect = HttpGit::redirecting_to(&format!("http://127.0.0.1:{}", elsewhere.port));
    let err = resolve_error(&redirect.url("stacks.git"), token);
    eprintln!("{err}");
    assert!(!err.contains(token), "{err}");
    assert!(
        err.contains("refusing to send credentials"),
        "the error should say why: {err}"
    );
    let requests = elsewhere.requests();
    assert!(!requests.is_empty(), "libgit2 did not follow the redirect");
    let with_auth: Vec<_> = requests
        .iter()
        .filter(|r| r.header("authorization").is_some())
        .collect();
    assert!(
        with_auth.is_empty(),
        "credentials went to the other port: {with_auth:?}"
    );
}
