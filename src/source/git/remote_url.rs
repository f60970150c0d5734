//! The parts of a git remote URL shoal needs: the transport, the host and
//! port (for host-key checks), and a form safe to print (no password).

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

/// A parsed remote URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub transport: Transport,
    /// Host name or address, without brackets; `None` for local remotes.
    pub host: Option<String>,
    /// The port when the URL names one.
    pub port: Option<u16>,
    /// The user name in the URL, if any.
    pub user: Option<String>,
    /// The URL with any password replaced by `***`.
    pub redacted: String,
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
            redacted: raw.to_string(),
        })
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
    let user = Some(url.username().to_string()).filter(|u| !u.is_empty());
    if url.password().is_some() {
        // Cannot fail: the URL has a host, since it has a password.
        let _ = url.set_password(Some("***"));
    }
    Ok(RemoteUrl {
        transport,
        host,
        port: url.port(),
        user,
        redacted: url.to_string(),
    })
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
    Some(RemoteUrl {
        transport: Transport::Ssh,
        host: Some(host.to_string()),
        port: None,
        user,
        redacted: raw.to_string(),
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
    fn redacts_passwords() {
        let u = RemoteUrl::parse("https://me:s3cret@example.com/r.git").unwrap();
        assert_eq!(u.transport, Transport::Https);
        assert!(!u.redacted.contains("s3cret"), "{}", u.redacted);
        assert!(u.redacted.contains("me:***@example.com"), "{}", u.redacted);
        let u = RemoteUrl::parse("https://example.com/r.git").unwrap();
        assert_eq!(u.redacted, "https://example.com/r.git");
    }
}
