//! The parts of a git remote URL shoal needs: the transport, the host and
//! port (for host-key checks and the credential origin), the credentials a
//! URL carries, the URL handed to libgit2 (without them) and a form safe to
//! print.
//!
//! Masking rule (one function, [`mask_userinfo`], used wherever a URL is
//! printed): a password is always `***`; in any URL that is not SSH, a user
//! name is `***` too unless it is one of the conventional placeholder names
//! of [`PLACEHOLDER_USERS`] (`git`, `oauth2`, `x-access-token`...), since
//! hosts accept a token as the user name (`https://ghp_x@github.com/...`).
//! SSH user names are login names (SSH authenticates with keys, never with
//! the name) and stay visible.

/// How the remote is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Ssh,
    Https,
    Http,
    /// `file://` or a plain path on this machine.
    Local,
    /// The unauthenticated `git://` protocol.
    Git,
}

/// User names that are placeholders, not secrets: hosts ask for them with a
/// token as the password (GitHub `x-access-token`, GitLab `oauth2` and
/// `gitlab-ci-token`, Bitbucket `x-token-auth`, the `git` of SSH and of
/// shoal's own default). Any other user name of a non-SSH URL is masked.
pub const PLACEHOLDER_USERS: &[&str] = &[
    "git",
    "oauth2",
    "oauth",
    "x-access-token",
    "x-token-auth",
    "x-oauth-basic",
    "gitlab-ci-token",
    "token",
];

/// A parsed remote URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub transport: Transport,
    /// Host name or address, without brackets; `None` for local remotes.
    pub host: Option<String>,
    /// The port when the URL names one.
    pub port: Option<u16>,
    /// The user name in the URL (percent-decoded), if any.
    pub user: Option<String>,
    /// The password in the URL (percent-decoded), if any. Never printed.
    pub password: Option<String>,
    /// The URL as printed: see [`mask_userinfo`].
    pub redacted: String,
    /// The URL handed to libgit2 and kept in the cache: for HTTP(S) without
    /// user name and password (shoal hands those to the credential callback,
    /// which checks who asks); otherwise the URL as given.
    pub connect: String,
}

impl std::fmt::Debug for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteUrl")
            .field("transport", &self.transport)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("url", &self.redacted)
            .finish()
    }
}

impl RemoteUrl {
    /// Parse `https://`, `http://`, `ssh://`, `git://`, `file://` URLs,
    /// scp-like `user@host:path` and plain local paths.
    pub fn parse(raw: &str) -> Result<RemoteUrl, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("the URL is empty".into());
        }
        if raw.contains("://") {
            return parse_full(raw);
        }
        if let Some(scp) = parse_scp_like(raw) {
            return Ok(scp);
        }
        Ok(RemoteUrl {
            transport: Transport::Local,
            host: None,
            port: None,
            user: None,
            password: None,
            redacted: raw.to_string(),
            connect: raw.to_string(),
        })
    }

    /// Whether the URL itself carries a credential: a password, or a user
    /// name that is not a placeholder (a token given as the user name).
    /// SSH user names are login names, not credentials.
    pub fn has_credentials(&self) -> bool {
        self.password.is_some()
            || (self.transport != Transport::Ssh
                && self
                    .user
                    .as_deref()
                    .is_some_and(|u| !is_placeholder_user(u)))
    }

    /// Whether `asking` (the URL libgit2 names when it asks for
    /// credentials, after any redirect) is the same scheme, host and port as
    /// this URL: credentials go to the configured origin only.
    pub fn same_origin(&self, asking: &str) -> bool {
        let Ok(other) = RemoteUrl::parse(asking) else {
            return false;
        };
        other.transport == self.transport
            && other.port_or_default() == self.port_or_default()
            && match (&other.host, &self.host) {
                (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
                _ => false,
            }
    }

    /// `scheme://host[:port]`, for messages about where credentials go.
    pub fn origin(&self) -> String {
        let scheme = match self.transport {
            Transport::Ssh => "ssh",
            Transport::Https => "https",
            Transport::Http => "http",
            Transport::Local => "file",
            Transport::Git => "git",
        };
        let host = self.host.as_deref().unwrap_or("");
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        match self.port {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        }
    }

    /// The port to connect to (the URL's, else the transport's default).
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(match self.transport {
            Transport::Ssh => 22,
            Transport::Https => 443,
            Transport::Http => 80,
            Transport::Git => 9418,
            Transport::Local => 0,
        })
    }
}

fn parse_full(raw: &str) -> Result<RemoteUrl, String> {
    let mut url = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    let transport = match url.scheme() {
        "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
        "https" => Transport::Https,
        "http" => Transport::Http,
        "file" => Transport::Local,
        "git" => Transport::Git,
        other => {
            return Err(format!(
                "unsupported scheme `{other}`; use https://, http://, ssh://, git://, file:// or user@host:path"
            ))
        }
    };
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string());
    if host.is_none() && transport != Transport::Local {
        return Err("the URL names no host".into());
    }
    let user = Some(percent_decode(url.username())).filter(|u| !u.is_empty());
    let password = url.password().map(percent_decode);
    let connect = if matches!(transport, Transport::Http | Transport::Https) {
        let mut bare = url.clone();
        // Cannot fail: the URL has a host (checked above).
        let _ = bare.set_password(None);
        let _ = bare.set_username("");
        bare.to_string()
    } else {
        raw.to_string()
    };
    mask_url_userinfo(&mut url, transport);
    Ok(RemoteUrl {
        transport,
        host,
        port: url.port(),
        user,
        password,
        redacted: url.to_string(),
        connect,
    })
}

/// Whether `user` is a placeholder name rather than a secret.
pub fn is_placeholder_user(user: &str) -> bool {
    PLACEHOLDER_USERS
        .iter()
        .any(|p| p.eq_ignore_ascii_case(user))
}

/// Apply the masking rule (see the module comment) to a parsed URL.
fn mask_url_userinfo(url: &mut url::Url, transport: Transport) {
    // `set_*` cannot fail here: only URLs without a host refuse them, and
    // those have no user name or password to mask.
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    let user = percent_decode(url.username());
    if transport != Transport::Ssh && !user.is_empty() && !is_placeholder_user(&user) {
        let _ = url.set_username("***");
        // `***:***@` says no more than `***@`.
        let _ = url.set_password(None);
    }
}

/// Any URL or `user@host:path`, made printable by the masking rule (see the
/// module comment); text that is not a URL comes back unchanged. The one
/// function for URLs in messages, logs and `/status`.
pub fn mask_userinfo(raw: &str) -> String {
    match RemoteUrl::parse(raw) {
        Ok(url) => url.redacted,
        Err(_) => redact_unparsed(raw),
    }
}

/// `%XX` escapes of a URL's user name or password, decoded as libgit2 does
/// (invalid escapes stay as they are).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                // Two hex digits: at most 255.
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The folder of a local remote (`file://` URL or plain path).
pub fn local_path(raw: &str) -> Option<std::path::PathBuf> {
    let raw = raw.trim();
    if raw.contains("://") {
        url::Url::parse(raw).ok()?.to_file_path().ok()
    } else {
        Some(std::path::PathBuf::from(raw))
    }
}

/// A URL that did not parse, printable: anything between `://` and the
/// last `@` of the authority (user and password) becomes `***`.
pub fn redact_unparsed(raw: &str) -> String {
    let raw = raw.trim();
    let Some(start) = raw.find("://").map(|i| i + 3) else {
        return raw.to_string();
    };
    let authority_end = raw[start..].find('/').map_or(raw.len(), |i| start + i);
    match raw[start..authority_end].rfind('@') {
        Some(at) => format!("{}***{}", &raw[..start], &raw[start + at..]),
        None => raw.to_string(),
    }
}

/// `[user@]host:path`, as git reads it: a colon before any slash.
fn parse_scp_like(raw: &str) -> Option<RemoteUrl> {
    let colon = raw.find(':')?;
    if raw[..colon].contains('/') || colon == 0 {
        return None;
    }
    let (user, host) = match raw[..colon].rsplit_once('@') {
        Some((u, h)) => (Some(u.to_string()), h),
        None => (None, &raw[..colon]),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    // An SSH login name, shown (see the module comment); the first colon
    // ends the user@host part, so there is no password here.
    Some(RemoteUrl {
        transport: Transport::Ssh,
        host: Some(host.to_string()),
        port: None,
        user,
        password: None,
        redacted: raw.to_string(),
        connect: raw.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url_forms() {
        let u = RemoteUrl::parse("ssh://root@127.0.0.1:2222/srv/repo.git").unwrap();
        assert_eq!(u.transport, Transport::Ssh);
        assert_eq!(u.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(u.port, Some(2222));
        assert_eq!(u.user.as_deref(), Some("root"));

        let u = RemoteUrl::parse("git@github.com:org/repo.git").unwrap();
        assert_eq!(u.transport, Transport::Ssh);
        assert_eq!(u.host.as_deref(), Some("github.com"));
        assert_eq!(u.port_or_default(), 22);
        assert_eq!(u.user.as_deref(), Some("git"));

        let u = RemoteUrl::parse("ssh://git@[::1]:2200/x.git").unwrap();
        assert_eq!(u.host.as_deref(), Some("::1"));

        let u = RemoteUrl::parse("file:///tmp/x/repo.git").unwrap();
        assert_eq!(u.transport, Transport::Local);
        assert_eq!(
            RemoteUrl::parse("/srv/repo.git").unwrap().transport,
            Transport::Local
        );
        assert_eq!(
            RemoteUrl::parse("./repo").unwrap().transport,
            Transport::Local
        );
        assert!(RemoteUrl::parse("ftp://host/x").is_err());
        assert!(RemoteUrl::parse("").is_err());
    }

    #[test]
    fn redacts_unparsed_urls() {
        assert_eq!(
            redact_unparsed("ftp://me:pw@host/x@y"),
            "ftp://***@host/x@y"
        );
        assert_eq!(redact_unparsed("ftp://host/x"), "ftp://host/x");
        assert_eq!(redact_unparsed("nonsense"), "nonsense");
    }

    #[test]
    fn masks_token_user_names_and_passwords() {
        let cases = [
            // A token as the user name (GitHub, GitLab...).
            (
                "https://ghp_abc123@github.com/o/r.git",
                "https://***@github.com/o/r.git",
            ),
            (
                "http://glpat-x1y2@127.0.0.1:8080/r.git",
                "http://***@127.0.0.1:8080/r.git",
            ),
            // Any account name that is not a placeholder: masked too.
            ("https://alice@host/r.git", "https://***@host/r.git"),
            ("https://alice:pw@host/r.git", "https://***@host/r.git"),
            // Placeholders stay; the password never does.
            (
                "https://x-access-token:ghs_1@github.com/r.git",
                "https://x-access-token:***@github.com/r.git",
            ),
            (
                "https://oauth2@gitlab.com/r.git",
                "https://oauth2@gitlab.com/r.git",
            ),
            ("https://Git@host/r.git", "https://Git@host/r.git"),
            // SSH login names stay; SSH passwords do not.
            (
                "ssh://root@127.0.0.1:2222/srv/r.git",
                "ssh://root@127.0.0.1:2222/srv/r.git",
            ),
            ("ssh://root:pw@host/r.git", "ssh://root:***@host/r.git"),
            ("git@github.com:org/r.git", "git@github.com:org/r.git"),
            ("https://host/r.git", "https://host/r.git"),
            // Not a URL shoal takes: everything before the `@` goes.
            ("ftp://ghp_abc@host/r.git", "ftp://***@host/r.git"),
            ("/srv/repo.git", "/srv/repo.git"),
        ];
        for (raw, want) in cases {
            assert_eq!(mask_userinfo(raw), want, "{raw}");
        }
    }

    #[test]
    fn credentials_leave_the_url_libgit2_gets() {
        let u = RemoteUrl::parse("https://ghp_abc%40x@github.com/o/r.git").unwrap();
        assert_eq!(u.connect, "https://github.com/o/r.git");
        assert_eq!(u.user.as_deref(), Some("ghp_abc@x"));
        assert!(u.has_credentials());
        assert!(!format!("{u:?}").contains("ghp_abc"), "{u:?}");

        let u = RemoteUrl::parse("http://me:p%3Ass@127.0.0.1:9/r.git").unwrap();
        assert_eq!(u.connect, "http://127.0.0.1:9/r.git");
        assert_eq!(u.password.as_deref(), Some("p:ss"));
        assert!(u.has_credentials());

        // Placeholder names and SSH login names are not credentials.
        assert!(!RemoteUrl::parse("https://git@host/r.git")
            .unwrap()
            .has_credentials());
        let ssh = RemoteUrl::parse("ssh://deploy@host/r.git").unwrap();
        assert!(!ssh.has_credentials());
        assert_eq!(ssh.connect, "ssh://deploy@host/r.git");
    }

    #[test]
    fn same_origin_is_scheme_host_and_port() {
        let u = RemoteUrl::parse("https://ghp_x@GitHub.com/o/r.git").unwrap();
        assert!(u.same_origin("https://github.com/o/r.git"));
        assert!(u.same_origin("https://github.com:443/other/path"));
        assert!(!u.same_origin("https://evil.example/o/r.git"));
        assert!(!u.same_origin("http://github.com/o/r.git"));
        assert!(!u.same_origin("https://github.com:8443/o/r.git"));
        assert!(!u.same_origin("not a url"));
        let u = RemoteUrl::parse("http://127.0.0.1:8080/r.git").unwrap();
        assert!(u.same_origin("http://127.0.0.1:8080/r.git/info/refs"));
        assert!(!u.same_origin("http://127.0.0.2:8080/r.git"));
        assert!(!u.same_origin("http://localhost:8080/r.git"));
        assert!(!u.same_origin("http://127.0.0.1:8081/r.git"));
        assert_eq!(u.origin(), "http://127.0.0.1:8080");
    }

    #[test]
    fn redacts_passwords() {
        let u = RemoteUrl::parse("https://me:s3cret@example.com/r.git").unwrap();
        assert_eq!(u.transport, Transport::Https);
        assert!(!u.redacted.contains("s3cret"), "{}", u.redacted);
        // `me` is not a placeholder name, so it goes too.
        assert_eq!(u.redacted, "https://***@example.com/r.git");
        let u = RemoteUrl::parse("https://example.com/r.git").unwrap();
        assert_eq!(u.redacted, "https://example.com/r.git");
    }
}
