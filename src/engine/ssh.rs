//! `ssh://` engines, as the docker CLI reaches them: the system's OpenSSH
//! client (so `~/.ssh/config`, agents, jump hosts and `known_hosts` behave
//! as users expect) runs `docker system dial-stdio` on the far side, and
//! its stdin/stdout carry the Engine API. One ssh process per connection;
//! connections are kept alive and reused by the pool in `transport.rs`.
//!
//! When ssh ends before the engine said anything, the stream's error is
//! what ssh printed, explained and naming the host (host key, refused key,
//! no `docker` there, unreachable).
use super::endpoint::SshEndpoint;
use std::io;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The ssh program and its own options, in place of plain `ssh` (like
/// `GIT_SSH_COMMAND`): `ssh -i /keys/deploy -o UserKnownHostsFile=/keys/known_hosts`.
pub const SSH_COMMAND_ENV: &str = "SHOAL_SSH_COMMAND";

/// Most of ssh's diagnostics that are kept for an error message.
const STDERR_LIMIT: u64 = 64 * 1024;

/// The command line for one connection: `ssh [opts] -o ConnectTimeout=30 -T
/// [-l user] [-p port] -- host docker [--host unix://socket] system dial-stdio`,
/// the docker CLI's own (cli/connhelper).
fn command_line(target: &SshEndpoint, ssh_command: Option<&str>) -> Result<Vec<String>, String> {
    let mut args = match ssh_command.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => shell_words::split(c)
            .map_err(|e| format!("{SSH_COMMAND_ENV}={c:?}: cannot split into words: {e}"))?,
        None => vec!["ssh".to_string()],
    };
    args.extend(["-o", "ConnectTimeout=30", "-T"].map(String::from));
    if let Some(user) = &target.user {
        args.extend(["-l".to_string(), user.clone()]);
    }
    if let Some(port) = target.port {
        args.extend(["-p".to_string(), port.to_string()]);
    }
    args.extend(["--".to_string(), target.host.clone(), "docker".to_string()]);
    if let Some(socket) = &target.socket {
        args.extend(["--host".to_string(), format!("unix://{socket}")]);
    }
    args.extend(["system", "dial-stdio"].map(String::from));
    Ok(args)
}

/// Start ssh for one connection.
pub async fn dial(target: &SshEndpoint) -> io::Result<SshStream> {
    let ssh_command = std::env::var(SSH_COMMAND_ENV).ok();
    let args = command_line(target, ssh_command.as_deref()).map_err(io::Error::other)?;
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            io::Error::other(format!(
                "cannot run {:?} (the OpenSSH client) for {target}: {e}",
                args[0]
            ))
        })?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other(format!(
            "ssh for {target} started without its pipes"
        )));
    };
    let (stop, stopped) = oneshot::channel();
    let outcome = tokio::spawn(watch(child, stderr, stopped, target.clone()));
    Ok(SshStream {
        stdin,
        stdout,
        answered: false,
        outcome: Some(outcome),
        failed: None,
        _stop: stop,
    })
}

/// Wait for ssh to end (or for the stream to be dropped, then end it) and
/// say why it ended, from what it printed.
async fn watch(
    mut child: Child,
    stderr: ChildStderr,
    stopped: oneshot::Receiver<()>,
    target: SshEndpoint,
) -> String {
    let mut text = Vec::new();
    let mut stderr = stderr.take(STDERR_LIMIT);
    tokio::select! {
        _ = stderr.read_to_end(&mut text) => {}
        // The stream was dropped: the connection is over.
        _ = stopped => {
            let _ = child.start_kill();
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .ok()
        .and_then(Result::ok);
    explain(&target, &String::from_utf8_lossy(&text), status)
}

/// One sentence for why ssh ended, naming the host (the caller names the
/// endpoint).
pub fn explain(target: &SshEndpoint, stderr: &str, status: Option<ExitStatus>) -> String {
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect();
    let tail = said[said.len().saturating_sub(3)..].join(" / ");
    let tail: String = tail.chars().take(600).collect();
    let host = &target.host;
    let has = |needle: &str| stderr.contains(needle);
    if has("Host key verification failed") || has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        format!(
            "ssh refused the host key of {host}: it is not the key known_hosts has for it, or known_hosts has none (ssh: {tail}); check the host's key, then known_hosts (UserKnownHostsFile)"
        )
    } else if has("Permission denied") || has("Too many authentication failures") {
        format!(
            "{host} refused the login (ssh: {tail}); check the user, the key (ssh-agent, ~/.ssh/config, {SSH_COMMAND_ENV}) and authorized_keys on {host}"
        )
    } else if has("docker: command not found")
        || has("docker: not found")
        || has("\"docker\": executable file not found")
        || (has("docker") && has("No such file or directory"))
    {
        format!(
            "there is no `docker` command on {host} (ssh: {tail}); shoal runs `docker system dial-stdio` there, as the docker CLI does: install the docker CLI on {host} or put it on the login PATH"
        )
    } else if has("unknown command") || has("is not a docker command") {
        format!(
            "the docker CLI on {host} has no `docker system dial-stdio` (ssh: {tail}); it needs Docker 18.09 or newer"
        )
    } else if has("Cannot connect to the Docker daemon")
        || has("permission denied while trying to connect")
    {
        format!(
            "the docker CLI on {host} cannot reach its engine (ssh: {tail}); is dockerd running there, and may this user use its socket?"
        )
    } else if has("Could not resolve hostname")
        || has("Connection refused")
        || has("Connection timed out")
        || has("No route to host")
        || has("Network is unreachable")
        || has("Connection closed by")
    {
        format!("ssh cannot connect to {host} (ssh: {tail})")
    } else {
        let status = match status {
            Some(s) => format!("ssh to {target} ended with {s}"),
            None => format!("ssh to {target} ended"),
        };
        if tail.is_empty() {
            format!("{status} before the engine answered")
        } else {
            format!("{status} before the engine answered (ssh: {tail})")
        }
    }
}

/// The Engine API over one ssh process's stdin and stdout.
pub struct SshStream {
    stdin: ChildStdin,
    stdout: ChildStdout,
    /// The engine has sent something: an end of stream is now just the end.
    answered: bool,
    /// Why ssh ended, once it has.
    outcome: Option<JoinHandle<String>>,
    failed: Option<String>,
    /// Dropped with the stream: tells [`watch`] to end ssh.
    _stop: oneshot::Sender<()>,
}

impl SshStream {
    /// ssh ended (or broke the pipe) before the engine answered: wait for
    /// its explanation and fail with it.
    fn poll_failure<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if let Some(handle) = &mut self.outcome {
            let message = match Pin::new(handle).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(m)) => m,
                Poll::Ready(Err(e)) => format!("ssh watcher failed: {e}"),
            };
            self.outcome = None;
            self.failed = Some(message);
        }
        let message = self.failed.clone().unwrap_or_else(|| "ssh ended".into());
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            message,
        )))
    }
}

use std::future::Future as _;

impl AsyncRead for SshStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.failed.is_some() {
            return this.poll_failure(cx);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.stdout).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.answered = true;
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) if this.answered => Poll::Ready(Ok(())),
            Poll::Ready(Ok(())) => this.poll_failure(cx),
            Poll::Ready(Err(e)) if this.answered => Poll::Ready(Err(e)),
            Poll::Ready(Err(_)) => this.poll_failure(cx),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for SshStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.failed.is_some() {
            return this.poll_failure(cx);
        }
        match Pin::new(&mut this.stdin).poll_write(cx, buf) {
            // A broken pipe: ssh has ended; say why.
            Poll::Ready(Err(_)) => this.poll_failure(cx),
            other => other,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stdin).poll_flush(cx) {
            Poll::Ready(Err(_)) => this.poll_failure(cx),
            other => other,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stdin).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshEndpoint {
        SshEndpoint {
            user: Some("deploy".into()),
            host: "manager.example".into(),
            port: Some(2222),
            socket: None,
        }
    }

    #[test]
    fn runs_dial_stdio_as_the_docker_cli() {
        assert_eq!(
            command_line(&target(), None).unwrap().join(" "),
            "ssh -o ConnectTimeout=30 -T -l deploy -p 2222 -- manager.example docker system dial-stdio"
        );
        let mut t = target();
        t.user = None;
        t.port = None;
        t.socket = Some("/run/user/1000/docker.sock".into());
        assert_eq!(
            command_line(&t, Some("ssh -i '/keys/my key' -F /dev/null"))
                .unwrap()
                .join(" "),
            "ssh -i /keys/my key -F /dev/null -o ConnectTimeout=30 -T -- manager.example docker --host unix:///run/user/1000/docker.sock system dial-stdio"
        );
        assert!(command_line(&t, Some("ssh 'unclosed")).is_err());
    }

    #[test]
    fn explains_why_ssh_ended_naming_the_host() {
        let t = target();
        let cases = [
            ("@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n", "refused the host key of manager.example"),
            ("deploy@manager.example: Permission denied (publickey).\n", "manager.example refused the login"),
            ("bash: line 1: docker: command not found\n", "no `docker` command on manager.example"),
            ("sh: 1: docker: not found\n", "no `docker` command"),
            ("ssh: connect to host manager.example port 2222: Connection refused\n", "cannot connect to manager.example"),
            ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n", "cannot reach its engine"),
        ];
        for (stderr, expected) in cases {
            let m = explain(&t, stderr, None);
            assert!(m.contains(expected), "{stderr:?} -> {m}");
            assert!(m.contains("manager.example"), "{m}");
        }
        let m = explain(
            &t,
            "Warning: Permanently added 'x' (ED25519) to the list of known hosts.\n",
            None,
        );
        assert_eq!(
            m,
            "ssh to ssh://deploy@manager.example:2222 ended before the engine answered"
        );
    }
}
