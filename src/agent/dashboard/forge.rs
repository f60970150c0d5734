//! Links from a commit to its page on the forge, when the repository URL
//! tells where that is: any `https://`/`http://` remote (GitHub, Gitea,
//! Forgejo, GitLab, Bitbucket all serve the repository's pages at its
//! clone URL without `.git`), and SSH remotes on the well-known hosted
//! forges. A self-hosted SSH remote says nothing about its web address,
//! and `file://` has none: no link then.

/// Hosts whose SSH remotes have their web pages at `https://<host>/<path>`.
const HOSTED: [&str; 5] = [
    "github.com",
    "gitlab.com",
    "codeberg.org",
    "bitbucket.org",
    "gitea.com",
];

/// The web page of commit `sha` of the repository at `repo_url`.
pub fn commit_url(repo_url: &str, sha: &str) -> Option<String> {
    if sha.len() < 7 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (web, host) = web_base(repo_url)?;
    let path = if host.contains("gitlab") {
        "/-/commit/"
    } else if host == "bitbucket.org" {
        "/commits/"
    } else {
        "/commit/"
    };
    Some(format!("{web}{path}{sha}"))
}

/// `https://host[:port]/owner/repo` and the host, without credentials.
fn web_base(url: &str) -> Option<(String, String)> {
    let (scheme, rest, ssh) = if let Some((scheme, rest)) = url.split_once("://") {
        match scheme.to_ascii_lowercase().as_str() {
            "https" => ("https", rest, false),
            "http" => ("http", rest, false),
            "ssh" | "git+ssh" | "ssh+git" => ("https", rest, true),
            _ => return None,
        }
    } else {
        // scp-like `user@host:owner/repo.git`.
        let (authority, path) = url.split_once(':')?;
        if path.starts_with("//") || authority.contains('/') {
            return None;
        }
        return finish("https", authority, path, true);
    };
    let (authority, path) = rest.split_once('/')?;
    finish(scheme, authority, path, ssh)
}

fn finish(scheme: &str, authority: &str, path: &str, ssh: bool) -> Option<(String, String)> {
    // Drop user and password; keep the port for http(s) only (an SSH port
    // is not the web server's).
    let host_port = authority.rsplit_once('@').map_or(authority, |x| x.1);
    let host = host_port
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if host.is_empty() || (ssh && !HOSTED.contains(&host.as_str())) {
        return None;
    }
    let authority = if ssh { host.as_str() } else { host_port };
    let path = path.trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    let ok = |c: char| c.is_ascii_alphanumeric() || "-._~/".contains(c);
    if path.split('/').filter(|s| !s.is_empty()).count() < 2 || !path.chars().all(ok) {
        return None;
    }
    Some((format!("{scheme}://{authority}/{path}"), host))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "3f2a9c1d0e";

    #[test]
    fn forge_links_follow_the_repository_url() {
        let cases = [
            (
                "https://github.com/org/stacks.git",
                Some("https://github.com/org/stacks/commit/3f2a9c1d0e"),
            ),
            (
                "https://***@github.com/org/stacks",
                Some("https://github.com/org/stacks/commit/3f2a9c1d0e"),
            ),
            (
                "git@github.com:org/stacks.git",
                Some("https://github.com/org/stacks/commit/3f2a9c1d0e"),
            ),
            (
                "ssh://git@gitlab.com:22/group/sub/stacks.git",
                Some("https://gitlab.com/group/sub/stacks/-/commit/3f2a9c1d0e"),
            ),
            (
                "https://gitlab.example.com/ops/stacks.git",
                Some("https://gitlab.example.com/ops/stacks/-/commit/3f2a9c1d0e"),
            ),
            (
                "http://gitea.lan:3000/ops/stacks.git",
                Some("http://gitea.lan:3000/ops/stacks/commit/3f2a9c1d0e"),
            ),
            (
                "git@bitbucket.org:team/stacks.git",
                Some("https://bitbucket.org/team/stacks/commits/3f2a9c1d0e"),
            ),
            // No web page known.
            ("git@git.internal:ops/stacks.git", None),
            ("file:///srv/stacks.git", None),
            ("/srv/stacks", None),
            ("https://github.com/justone", None),
            ("https://github.com/org/x\"onload=\"y", None),
        ];
        for (url, want) in cases {
            assert_eq!(commit_url(url, SHA).as_deref(), want, "{url}");
        }
        assert_eq!(commit_url("https://github.com/o/r", "dir:abc123"), None);
    }
}
