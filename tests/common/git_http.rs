//! Loopback HTTP servers for the git source's tests: `git http-backend`
//! behind basic auth, and a server that answers every request with a
//! redirect. Both record each request's headers, so a test can say which
//! requests arrived and whether any carried credentials.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One request as the server read it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
#[derive(Clone)]
enum Behaviour {
    /// `git http-backend` for the repositories under `root`, after basic
    /// auth with `token` as the password or as the user name.
    Git { root: PathBuf, token: String },
    /// `302 Found` to `base` followed by the request's path and query.
    Redirect { base: String },
}

/// A server on `host:port`; stopped on drop.
pub struct HttpGit {
    pub host: String,
    pub port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
}

impl Drop for HttpGit {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect((self.host.as_str(), self.port));
    }
}

impl HttpGit {
    /// `git http-backend` on 127.0.0.1 serving the repositories under
    /// `project_root`, wanting basic auth with `token`.
    pub fn start(project_root: &Path, token: &str) -> HttpGit {
        HttpGit::start_on("127.0.0.1", project_root, token)
    }

    /// [`HttpGit::start`] on another loopback address (`127.0.0.2`...).
    pub fn start_on(host: &str, project_root: &Path, token: &str) -> HttpGit {
        HttpGit::spawn(
            host,
            Behaviour::Git {
                root: project_root.to_path_buf(),
                token: token.to_string(),
            },
        )
    }

    /// A server on 127.0.0.1 redirecting every request to `base` + path.
    pub fn redirecting_to(base: &str) -> HttpGit {
        HttpGit::spawn(
            "127.0.0.1",
            Behaviour::Redirect {
                base: base.trim_end_matches('/').to_string(),
            },
        )
    }

    fn spawn(host: &str, behaviour: Behaviour) -> HttpGit {
        let listener = TcpListener::bind((host, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (flag, log) = (stop.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (behaviour, log) = (behaviour.clone(), log.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &behaviour, &log);
                });
            }
        });
        HttpGit {
            host: host.to_string(),
            port,
            requests,
            stop,
        }
    }

    /// `http://host:port/repo`.
    pub fn url(&self, repo: &str) -> String {
        format!("http://{}:{}/{repo}", self.host, self.port)
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(
    stream: TcpStream,
    behaviour: &Behaviour,
    log: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    use base64::Engine;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_lowercase(), v.trim().to_string()));
        }
    }
    let request = Request {
        method: method.clone(),
        target: target.clone(),
        headers,
    };
    log.lock().unwrap().push(request.clone());
    let header = |name: &str| request.header(name).map(str::to_string);
    let mut body = Vec::new();
    if let Some(len) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let (root, token) = match behaviour {
        Behaviour::Git { root, token } => (root, token),
        Behaviour::Redirect { base } => {
            write!(
                out,
                "HTTP/1.1 302 Found\r\nLocation: {base}{target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return out.flush();
        }
    };
    let user = header("authorization")
        .and_then(|a| a.strip_prefix("Basic ").map(str::to_string))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|up| {
            let (u, p) = up.split_once(':')?;
            // A token as the password, or as the user name (GitHub style).
            (p == token || (u == token && p.is_empty())).then(|| u.to_string())
        });
    let Some(user) = user else {
        let msg = "authentication required";
        write!(
            out,
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{msg}",
            msg.len()
        )?;
        return Ok(());
    };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cgi = Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_TYPE", header("content-type").unwrap_or_default())
        .env("CONTENT_LENGTH", body.len().to_string())
        .env(
            "HTTP_CONTENT_ENCODING",
            header("content-encoding").unwrap_or_default(),
        )
        .env("GIT_PROTOCOL", header("git-protocol").unwrap_or_default())
        .env("REMOTE_USER", user)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut stdin = cgi.stdin.take().expect("piped stdin");
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = cgi.wait_with_output()?;
    let _ = feeder.join();
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head, content) = match split {
        Some((i, n)) => (
            String::from_utf8_lossy(&raw[..i]).to_string(),
            &raw[i + n..],
        ),
        None => (String::new(), &raw[..]),
    };
    let mut status = "200 OK".to_string();
    let mut response = String::new();
    for h in head.lines() {
        match h.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("status") => status = v.trim().to_string(),
            Some(_) => response.push_str(&format!("{h}\r\n")),
            None => {}
        }
    }
    write!(
        out,
        "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    )?;
    out.write_all(content)?;
    out.flush()
}
