//! Remote engines (TLS, ssh): one connector that opens a byte stream to the
//! engine, and pooled keep-alive HTTP/1.1 clients on it, one for the raw
//! spec calls (`raw.rs`) and one behind bollard (events, leases). Opening a
//! remote connection costs a TLS handshake or a whole ssh login, so, unlike
//! the local socket, connections are reused.
use super::endpoint::{Endpoint, SshEndpoint, TlsEndpoint};
use super::raw::Response;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// An idle connection (an ssh process, a TLS session) is closed after this.
const IDLE: Duration = Duration::from_secs(30);
/// Idle connections kept per engine.
const MAX_IDLE: usize = 8;
/// ssh connections opened beside the first request (a plan reads the
/// swarm three requests at a time).
const WARM_CONNECTIONS: usize = 2;
/// The authority of request URIs; the engine ignores it.
const BASE: &str = "http://docker.remote";

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Opens connections to one remote engine.
#[derive(Clone)]
pub struct Connector {
    dial: Arc<Dial>,
}

enum Dial {
    Tls {
        endpoint: TlsEndpoint,
        connector: tokio_native_tls::TlsConnector,
    },
    Ssh(SshEndpoint),
}

impl Connector {
    async fn connect(&self) -> io::Result<Box<dyn Io>> {
        match &*self.dial {
            Dial::Tls {
                endpoint,
                connector,
            } => {
                let tcp = tokio::net::TcpStream::connect(&endpoint.addr)
                    .await
                    .map_err(|e| {
                        io::Error::new(
                            e.kind(),
                            format!("cannot connect to tcp://{}: {e}", endpoint.addr),
                        )
                    })?;
                let tls = connector
                    .connect(&endpoint.server_name, tcp)
                    .await
                    .map_err(|e| io::Error::other(super::tls::explain(endpoint, &e.to_string())))?;
                Ok(Box::new(tls))
            }
            Dial::Ssh(target) => Ok(Box::new(super::ssh::dial(target).await?)),
        }
    }
}

/// One connection as hyper's pooled client wants it.
pub struct Stream(TokioIo<Box<dyn Io>>);

impl Connection for Stream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

impl tower_service::Service<http::Uri> for Connector {
    type Response = Stream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Stream>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(Stream(TokioIo::new(this.connect().await?))) })
    }
}

fn pooled<B>(connector: Connector) -> Client<Connector, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(IDLE)
        .pool_max_idle_per_host(MAX_IDLE)
        .build(connector)
}

/// A remote engine: raw requests and bollard clients over one connector.
pub struct Remote {
    endpoint: Endpoint,
    connector: Connector,
    raw: Client<Connector, Full<Bytes>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Remote({})", self.endpoint)
    }
}

impl Remote {
    /// `None` for the local kinds (unix socket, plain tcp), which `raw.rs`
    /// and bollard reach themselves.
    pub fn for_endpoint(endpoint: &Endpoint) -> Result<Option<Remote>, super::tls::TlsError> {
        let dial = match endpoint {
            Endpoint::Unix(_) | Endpoint::Tcp(_) => return Ok(None),
            Endpoint::Tls(t) => Dial::Tls {
                endpoint: t.clone(),
                connector: super::tls::connector(t)?,
            },
            Endpoint::Ssh(s) => Dial::Ssh(s.clone()),
        };
        let connector = Connector {
            dial: Arc::new(dial),
        };
        Ok(Some(Remote {
            endpoint: endpoint.clone(),
            raw: pooled(connector.clone()),
            connector,
        }))
    }

    /// One request; the answer read whole. Errors name the engine.
    pub(super) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("{BASE}{path}"))
            .header("User-Agent", "shoal")
            .header("Accept", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if !body.is_empty() || method == "POST" {
            req = req.header("Content-Type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request {method} {path}: {e}"))?;
        let resp = self.raw.request(req).await.map_err(|e| self.explain(&e))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.explain(&e))?
            .to_bytes()
            .to_vec();
        Ok(Response { status, body })
    }

    /// Run `first` (the first request) while, for ssh, opening
    /// [`WARM_CONNECTIONS`] more connections beside it (`/_ping`), so the
    /// parallel reads of a plan find them in the pool. Their failures do
    /// not matter: `first` reports the same.
    pub async fn warm_up<T>(&self, first: impl Future<Output = T>) -> T {
        if !matches!(self.endpoint, Endpoint::Ssh(_)) {
            return first.await;
        }
        let pings = (0..WARM_CONNECTIONS).map(|_| self.request("GET", "/_ping", Vec::new(), &[]));
        let (answer, _) = tokio::join!(first, futures_util::future::join_all(pings));
        answer
    }

    /// A bollard client whose requests go through this engine's connector,
    /// speaking API `api` (bollard's own version at most, as its
    /// `negotiate_version` would choose).
    pub fn bollard(
        &self,
        timeout_secs: u64,
        api: (u32, u32),
    ) -> Result<bollard::Docker, bollard::errors::Error> {
        let own = bollard::API_DEFAULT_VERSION;
        let version = if (api.0 as usize, api.1 as usize) < (own.major_version, own.minor_version) {
            bollard::ClientVersion {
                major_version: api.0 as usize,
                minor_version: api.1 as usize,
            }
        } else {
            *own
        };
        let client = Arc::new(pooled(self.connector.clone()));
        let endpoint = Arc::new(self.endpoint.clone());
        bollard::Docker::connect_with_custom_transport(
            move |req: bollard::BollardRequest| {
                let client = client.clone();
                let endpoint = endpoint.clone();
                async move {
                    client
                        .request(req)
                        .await
                        .map_err(|e| bollard::errors::Error::IOError {
                            err: io::Error::other(explain(&endpoint, &e)),
                        })
                }
            },
            Some(BASE),
            timeout_secs,
            &version,
        )
    }

    fn explain(&self, e: &(dyn std::error::Error + 'static)) -> String {
        explain(&self.endpoint, e)
    }
}

/// The error and its causes in one line, TLS failures explained. ssh
/// failures arrive explained already (see `ssh.rs`).
fn explain(endpoint: &Endpoint, e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = Some(e);
    while let Some(c) = cause {
        let text = c.to_string();
        // hyper's wrappers say nothing the cause does not.
        let wrapper = text.starts_with("client error (") || text == "connection error";
        if !wrapper && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    let text = parts.join(": ");
    match endpoint {
        Endpoint::Tls(t) if !text.contains("the docker engine at tcp://") => {
            super::tls::explain(t, &text)
        }
        _ => text,
    }
}
