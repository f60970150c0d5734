//! `shoal healthcheck`: one HTTP GET of the agent's `/healthz` with a short
//! deadline, for the image's HEALTHCHECK (the image has no curl). A plain
//! HTTP/1.0 request over a `TcpStream`: the agent serves plain HTTP on the
//! container's loopback, so no client library or TLS is needed.
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The status line and headers of a healthy answer fit in this; the body is
/// not read, so a misbehaving server cannot make the check hold memory.
const MAX_HEAD: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("--url {url}: {reason}")]
    Url { url: String, reason: String },
    // The I/O error is part of the message, not a cause, so the CLI does
    // not print it twice.
    #[error("{url}: {error}")]
    Io { url: String, error: std::io::Error },
    #[error("{url}: no answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("{url}: not an HTTP answer: {line:?}")]
    NotHttp { url: String, line: String },
    #[error("{url}: HTTP {status}")]
    Unhealthy { url: String, status: u16 },
}

/// GET `url` (http:// only) within `timeout`; Ok(status) for a 2xx answer.
pub fn check(url: &str, timeout: Duration) -> Result<u16, HealthError> {
    let target = Target::parse(url)?;
    let io = |error: std::io::Error| io_error(url, timeout, error);
    let deadline = Instant::now() + timeout;
    let remaining = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| HealthError::Url {
            url: url.to_string(),
            reason: "host has no address".to_string(),
        })?;
    let mut stream = TcpStream::connect_timeout(&addr, remaining()).map_err(io)?;
    stream.set_write_timeout(Some(remaining())).map_err(io)?;
    stream.write_all(target.request().as_bytes()).map_err(io)?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    // Read until the end of the status line; the rest does not matter.
    while !head.contains(&b'\n') && head.len() < MAX_HEAD {
        stream.set_read_timeout(Some(remaining())).map_err(io)?;
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if Instant::now() >= deadline {
            return Err(HealthError::Timeout {
                url: url.to_string(),
                timeout,
            });
        }
    }
    verdict(url, &head)
}

/// Where the check goes: an http:// URL's host, port and path (with its
/// query).
#[derive(Debug, PartialEq)]
struct Target {
    host: String,
    port: u16,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, HealthError> {
        let bad = |reason: &str| HealthError::Url {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if parsed.scheme() != "http" {
            return Err(bad(
                "only http:// URLs are checked (the agent serves plain HTTP)",
            ));
        }
        let host = parsed.host_str().ok_or_else(|| bad("no host"))?;
        let mut path = parsed.path().to_string();
        if let Some(q) = parsed.query() {
            path.push('?');
            path.push_str(q);
        }
        Ok(Target {
            host: host.to_string(),
            port: parsed.port_or_known_default().unwrap_or(80),
            path,
        })
    }

    /// The HTTP/1.0 GET of the path.
    fn request(&self) -> String {
        let Target { host, port, path } = self;
        format!("GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n")
    }
}

/// An I/O error of the check: a timeout when the socket timed out.
fn io_error(url: &str, timeout: Duration, error: std::io::Error) -> HealthError {
    if matches!(
        error.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) {
        HealthError::Timeout {
            url: url.to_string(),
            timeout,
        }
    } else {
        HealthError::Io {
            url: url.to_string(),
            error,
        }
    }
}

/// Judge the start of the answer: Ok(status) for a 2xx status line.
fn verdict(url: &str, head: &[u8]) -> Result<u16, HealthError> {
    let text = String::from_utf8_lossy(head);
    let line = text.lines().next().unwrap_or("").trim().to_string();
    let status = parse_status(&line).ok_or_else(|| HealthError::NotHttp {
        url: url.to_string(),
        line: line.chars().take(80).collect(),
    })?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(HealthError::Unhealthy {
            url: url.to_string(),
            status,
        })
    }
}

/// `HTTP/1.1 200 OK` -> 200.
fn parse_status(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server answering `answer` to the first connection.
    fn serve_once(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer.as_bytes());
            }
        });
        format!("http://127.0.0.1:{port}/healthz")
    }

    #[test]
    fn ok_answer_is_healthy() {
        let url = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(check(&url, Duration::from_secs(5)).unwrap(), 200);
    }

    #[test]
    fn service_unavailable_is_unhealthy() {
        let url = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\nstarting");
        let err = check(&url, Duration::from_secs(5)).unwrap_err();
        assert!(
            matches!(err, HealthError::Unhealthy { status: 503, .. }),
            "{err}"
        );
    }

    #[test]
    fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/healthz", listener.local_addr().unwrap());
        let started = Instant::now();
        let err = check(&url, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, HealthError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3));
        drop(listener);
    }

    #[test]
    fn nothing_listening_is_an_error() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/healthz");
        assert!(matches!(
            check(&url, Duration::from_secs(2)).unwrap_err(),
            HealthError::Io { .. }
        ));
    }

    #[test]
    fn garbage_and_https_are_refused() {
        let url = serve_once("SSH-2.0-OpenSSH\r\n");
        assert!(matches!(
            check(&url, Duration::from_secs(5)).unwrap_err(),
            HealthError::NotHttp { .. }
        ));
        assert!(matches!(
            check("https://127.0.0.1/healthz", Duration::from_secs(1)).unwrap_err(),
            HealthError::Url { .. }
        ));
    }

    #[test]
    fn the_target_is_the_urls_host_port_and_path_with_its_query() {
        let t = Target::parse("http://localhost/healthz?deep=1").unwrap();
        assert_eq!(
            t,
            Target {
                host: "localhost".into(),
                port: 80,
                path: "/healthz?deep=1".into()
            }
        );
        assert_eq!(
            t.request(),
            "GET /healthz?deep=1 HTTP/1.0\r\nHost: localhost:80\r\nConnection: close\r\n\r\n"
        );
        let err = Target::parse("not a url").unwrap_err();
        assert!(matches!(err, HealthError::Url { .. }), "{err}");
    }

    #[test]
    fn the_status_line_decides() {
        let url = "http://x/healthz";
        assert_eq!(verdict(url, b"HTTP/1.1 204 No Content\r\n").unwrap(), 204);
        assert!(matches!(
            verdict(url, b"HTTP/1.0 500 Oops\r\n"),
            Err(HealthError::Unhealthy { status: 500, .. })
        ));
        assert!(matches!(
            verdict(url, b""),
            Err(HealthError::NotHttp { line, .. }) if line.is_empty()
        ));
    }
}
