//! A minimal HTTP/1.1 client for the Engine API that returns bodies as raw
//! JSON.
//!
//! Why not bollard for these calls: bollard 0.21's typed `ServiceSpec` reads
//! the health check under `HealthCheck` while the daemon writes
//! `Healthcheck`, so a round trip through its types silently drops the
//! health check (and any field bollard does not know). bollard has no raw
//! request call, so specs are read and written here, byte for byte as the
//! daemon speaks them. One connection per request (`Connection: close`):
//! the Engine socket is local and requests are few.
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use super::endpoint::{Endpoint, DEFAULT_SOCKET};
use super::tls::TlsError;
use super::transport::Remote;
use std::sync::Arc;

/// One answer of the daemon.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON; an empty body is `null`.
    pub fn json(&self) -> Result<Value, InvalidJson> {
        if self.body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(InvalidJson)
    }

    /// The daemon's error message (`{"message": "..."}`), or the body text.
    pub fn error_message(&self) -> String {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) => match v.get("message").and_then(Value::as_str) {
                Some(m) => m.trim().to_string(),
                None => v.to_string(),
            },
            Err(_) => String::from_utf8_lossy(&self.body).trim().to_string(),
        }
    }
}

/// A body that is not JSON (the parser's error is part of the text).
#[derive(Debug, thiserror::Error)]
#[error("invalid JSON in response: {0}")]
pub struct InvalidJson(serde_json::Error);

/// Raw requests against one endpoint.
#[derive(Debug, Clone)]
pub struct RawClient {
    pub endpoint: Endpoint,
    pub timeout: Duration,
    /// TLS and ssh engines: pooled keep-alive connections (`transport.rs`).
    remote: Option<Arc<Remote>>,
}

impl RawClient {
    /// A client for `endpoint`; for TLS this reads the certificate files.
    pub fn new(endpoint: Endpoint, timeout: Duration) -> Result<RawClient, TlsError> {
        let remote = Remote::for_endpoint(&endpoint)?.map(Arc::new);
        Ok(RawClient {
            endpoint,
            timeout,
            remote,
        })
    }

    /// The transport of a TLS or ssh engine.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_deref()
    }

    /// Send `method path` (path includes the query and the `/v1.xx` prefix if
    /// wanted) with an optional JSON body. The error is the reason the
    /// engine gave no answer, for [`super::EngineError::Unreachable`].
    pub(super) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, String> {
        self.request_with(method, path, body, &[]).await
    }

    /// [`RawClient::request`] with extra headers (e.g. `X-Registry-Auth`).
    pub(super) async fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        let body = match body {
            Some(v) => serde_json::to_vec(v).map_err(|e| format!("cannot encode request: {e}"))?,
            None => Vec::new(),
        };
        if let Some(remote) = &self.remote {
            return tokio::time::timeout(self.timeout, remote.request(method, path, body, headers))
                .await
                .map_err(|_| format!("no answer within {:?}", self.timeout))?;
        }
        let host = match &self.endpoint {
            Endpoint::Tcp(a) => a.as_str(),
            _ => "docker",
        };
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: shoal\r\nConnection: close\r\nAccept: application/json\r\n"
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            head.push_str("Content-Type: application/json\r\n");
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let exchange = async {
            match &self.endpoint {
                Endpoint::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p).await?;
                    exchange(s, head.as_bytes(), &body).await
                }
                Endpoint::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a).await?;
                    exchange(s, head.as_bytes(), &body).await
                }
                // `new` gave these a remote transport, used above.
                Endpoint::Tls(_) | Endpoint::Ssh(_) => Err(std::io::Error::other(format!(
                    "{}: no transport",
                    self.endpoint
                ))),
            }
        };
        let raw = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
            .map_err(|e| e.to_string())?;
        parse_response(&raw)
    }
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    head: &[u8],
    body: &[u8],
) -> std::io::Result<Vec<u8>> {
    s.write_all(head).await?;
    s.write_all(body).await?;
    s.flush().await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(out)
}

/// Split an HTTP/1.1 response read to EOF into status and (de-chunked) body.
fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = find(raw, b"\r\n\r\n").ok_or("truncated HTTP response (no header end)")?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| "non-UTF-8 HTTP header")?;
    let rest = &raw[split + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| format!("bad HTTP status line {status_line:?}"))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(n) = length {
        rest.get(..n).ok_or("truncated HTTP body")?.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(data, b"\r\n").ok_or("truncated chunked body")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(data.get(..size).ok_or("truncated chunk")?);
        data = data.get(size + 2..).ok_or("truncated chunk")?;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Percent-encode a query parameter value.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_content_length_and_chunked_bodies() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"{}"[..]));
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"mes\r\n10\r\nsage\":\"no such\"}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.status, 404);
        assert_eq!(r.error_message(), "no such");
    }

    #[test]
    fn escapes_query_values() {
        assert_eq!(
            query_escape(r#"{"a":["b=c"]}"#),
            "%7B%22a%22%3A%5B%22b%3Dc%22%5D%7D"
        );
    }
}
