//! A git repository as a source of stacks. shoal keeps one bare clone per
//! remote URL in a cache folder, asks the remote which commit a ref points
//! at (ls-remote, cheap) on every resolve, fetches only when that commit is
//! not cached yet, and reads files straight from the commit's tree.
//!
//! Trust: SSH host keys are checked against a known_hosts file the operator
//! provides; an unknown host or a changed key stops the connection. Tokens
//! for HTTP(S) (configured, or the URL's user name and password) are sent as
//! basic auth by the credential callback only, only to the configured
//! scheme, host and port, never over plain http:// unless the operator
//! allows it; libgit2 and the cache never see them, and errors mask them.
mod known_hosts;
mod remote_url;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use git2::{
    AutotagOption, CertificateCheckStatus, Cred, CredentialType, Direction, ErrorClass, ErrorCode,
    FetchOptions, ObjectType, Oid, RemoteCallbacks, RemoteRedirect, Repository,
};
use sha2::Digest;

use super::{SourceError, Tree};
pub use known_hosts::{KnownHosts, Verdict};
pub use remote_url::{mask_userinfo, RemoteUrl, Transport};

/// The environment variable holding the HTTP(S) token.
pub const TOKEN_ENV: &str = "SHOAL_GIT_TOKEN";

/// How many advertised refs an "unknown ref" error lists.
const REFS_IN_ERRORS: usize = 10;

/// How long to wait for a TCP connection to the remote, and for any single
/// read from it, before giving up (a black-holed host would otherwise hang
/// a reconcile for minutes).
const CONNECT_TIMEOUT_MS: i32 = 15_000;
const READ_TIMEOUT_MS: i32 = 120_000;

/// Set libgit2's process-wide network timeouts, once.
fn set_network_timeouts() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: libgit2 options are process-global and must not change
        // while another thread uses the network; this runs once, before the
        // first GitRepo exists, and only this module talks to remotes.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(CONNECT_TIMEOUT_MS);
            let _ = git2::opts::set_server_timeout_in_milliseconds(READ_TIMEOUT_MS);
        }
    });
}

/// How to reach and where to cache a remote.
#[derive(Clone, Default)]
pub struct GitOptions {
    /// Where the bare clones live (one sub-folder per URL).
    pub cache_dir: PathBuf,
    /// Private key for SSH remotes; without it the ssh-agent
    /// (`SSH_AUTH_SOCK`) is asked. Keys with a passphrase are not supported.
    pub ssh_key: Option<PathBuf>,
    /// The known_hosts file SSH host keys are checked against
    /// (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Token for HTTP(S) remotes, sent as the basic-auth password with the
    /// URL's user name, or `git` when the URL has none.
    pub token: Option<String>,
    /// Send credentials over plain `http://` (`--allow-insecure-git-http`).
    /// Without it, an `http://` URL with a token or URL credentials is
    /// refused before any request.
    pub allow_insecure_http: bool,
}

impl std::fmt::Debug for GitOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitOptions")
            .field("cache_dir", &self.cache_dir)
            .field("ssh_key", &self.ssh_key)
            .field("known_hosts", &self.known_hosts)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

/// The commit a ref resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitInfo {
    /// Full hex id.
    pub id: String,
    /// First 7 hex digits.
    pub short: String,
    /// First line of the message.
    pub summary: String,
    /// Committer time, seconds since the Unix epoch.
    pub time: i64,
}

/// Counters of network work, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchStats {
    /// Ref listings asked of the remote.
    pub ls_remotes: u64,
    /// Fetches done (successful or not).
    pub fetches: u64,
    /// Listings or fetches that failed.
    pub fetch_errors: u64,
    /// Whether the last `resolve` fetched.
    pub last_fetched: bool,
}

/// Why talking to a git remote failed. Messages name the URL without
/// credentials and never contain the token.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{url}: not a usable git URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url}: cannot reach the remote: {detail}")]
    Unreachable { url: String, detail: String },
    #[error("{url}: authentication failed: {detail}")]
    Auth { url: String, detail: String },
    #[error("{url}: host key verification failed: {detail}")]
    HostKey { url: String, detail: String },
    #[error("{url}: unknown ref `{wanted}`; {}", available_refs(.available))]
    UnknownRef {
        url: String,
        wanted: String,
        available: Vec<String>,
    },
    #[error("{url}: {detail}")]
    Remote { url: String, detail: String },
    #[error("git cache {path}: {detail}")]
    Cache { path: String, detail: String },
    #[error("token file {path}: {detail}")]
    TokenFile { path: String, detail: String },
    #[error("{url}: refusing to send git credentials ({what}) over plain http://, where anyone on the path can read them; use an https:// URL, or pass --allow-insecure-git-http if this network is trusted")]
    InsecureHttp { url: String, what: String },
}

fn available_refs(refs: &[String]) -> String {
    match refs {
        [] => "the remote advertises no branches or tags".to_string(),
        _ => format!("available: {}", refs.join(", ")),
    }
}

/// The token for HTTP(S) remotes: the token file when one is given, else
/// the `SHOAL_GIT_TOKEN` environment variable, else none.
pub fn load_token(file: Option<&Path>) -> Result<Option<String>, GitError> {
    token_from(std::env::var(TOKEN_ENV).ok(), file)
}

/// [`load_token`] with the environment value passed in.
pub fn token_from(env: Option<String>, file: Option<&Path>) -> Result<Option<String>, GitError> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| GitError::TokenFile {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
        let token = text.trim();
        if token.is_empty() {
            return Err(GitError::TokenFile {
                path: path.display().to_string(),
                detail: "the file is empty; put the token on its first line".into(),
            });
        }
        return Ok(Some(token.to_string()));
    }
    Ok(env.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
}

/// A remote and its cached bare clone.
pub struct GitRepo {
    url: String,
    remote: RemoteUrl,
    opts: GitOptions,
    cache: PathBuf,
    /// Serialises resolves of this remote; holds the counters.
    stats: Mutex<FetchStats>,
}

impl std::fmt::Debug for GitRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitRepo")
            .field("url", &self.remote.redacted)
            .field("cache", &self.cache)
            .finish()
    }
}

/// What the remote advertises.
#[derive(Debug, Clone, Default)]
struct Advertised {
    /// `(ref name, oid)`, including `HEAD` and peeled `^{}` entries.
    refs: Vec<(String, Oid)>,
    /// The branch `HEAD` points at (`refs/heads/main`), when the remote says.
    head_target: Option<String>,
}

/// What a wanted ref names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// An advertised ref (name to fetch) and the commit it points at.
    Ref { name: String, oid: Oid },
    /// A commit id (full or abbreviated) the remote does not advertise.
    Commit(String),
}

impl GitRepo {
    /// Prepare `url` for use: parse it and open (or create) its bare clone
    /// under `opts.cache_dir`. No network access yet.
    pub fn open(url: &str, opts: GitOptions) -> Result<GitRepo, GitError> {
        set_network_timeouts();
        let remote = RemoteUrl::parse(url).map_err(|reason| GitError::BadUrl {
            url: remote_url::redact_unparsed(url),
            reason,
        })?;
        if remote.transport == Transport::Http && !opts.allow_insecure_http {
            let what = match (&opts.token, remote.has_credentials()) {
                (_, true) => "the user name or password in the URL",
                (Some(_), false) => "the token",
                (None, false) => "",
            };
            if !what.is_empty() {
                return Err(GitError::InsecureHttp {
                    url: remote.redacted.clone(),
                    what: what.into(),
                });
            }
        }
        // The cache folder is named after the URL without credentials, so
        // not even a hash of the token is kept.
        let key_url = if remote.user.is_some() || remote.password.is_some() {
            remote.connect.as_str()
        } else {
            url.trim()
        };
        let key = hex::encode(sha2::Sha256::digest(key_url.as_bytes()));
        let cache = opts.cache_dir.join(&key[..16]);
        let repo = GitRepo {
            url: url.trim().to_string(),
            remote,
            opts,
            cache,
            stats: Mutex::new(FetchStats::default()),
        };
        repo.open_cache()?;
        Ok(repo)
    }

    /// The URL without credentials.
    pub fn url(&self) -> &str {
        &self.remote.redacted
    }

    /// The bare clone's folder.
    pub fn cache_path(&self) -> &Path {
        &self.cache
    }

    /// Network counters so far.
    pub fn stats(&self) -> FetchStats {
        *lock(&self.stats)
    }

    /// The commit `wanted` names on the remote: a branch, a tag, a full ref
    /// name or a full/short commit id; `None` means the remote's `HEAD`.
    /// Asks the remote for its refs, and fetches only when the commit is not
    /// in the cache. A full commit id already cached needs no network.
    pub fn resolve(&self, wanted: Option<&str>) -> Result<CommitInfo, GitError> {
        let mut stats = lock(&self.stats);
        stats.last_fetched = false;
        let repo = self.open_cache()?;
        if let Some(w) = wanted.filter(|w| is_hex(w) && w.len() == 40) {
            if let Some(commit) = Oid::from_str(w)
                .ok()
                .and_then(|oid| repo.find_commit(oid).ok())
            {
                return Ok(commit_info(&commit));
            }
        }
        stats.ls_remotes += 1;
        let advertised = self
            .ls_remote(&repo)
            .inspect_err(|_| stats.fetch_errors += 1)?;
        if advertised.refs.is_empty() {
            return Err(GitError::Remote {
                url: self.url().to_string(),
                detail: "the remote repository is empty (no branches or tags); push a commit first"
                    .into(),
            });
        }
        let target =
            pick_target(&advertised, wanted).map_err(|available| GitError::UnknownRef {
                url: self.url().to_string(),
                wanted: wanted.map_or_else(
                    || "HEAD (the remote advertises no default branch; pass a ref)".to_string(),
                    str::to_string,
                ),
                available,
            })?;
        match target {
            Target::Ref { name, oid } => {
                if repo.find_object(oid, None).is_err() {
                    self.fetch_counted(&repo, &[fetch_refspec(&name)], &mut stats)?;
                }
                let commit = repo
                    .find_object(oid, None)
                    .and_then(|o| o.peel_to_commit())
                    .map_err(|e| GitError::Remote {
                        url: self.url().to_string(),
                        detail: format!(
                            "{name} points at {oid}, which the fetch did not bring or is not a commit: {}",
                            e.message()
                        ),
                    })?;
                Ok(commit_info(&commit))
            }
            Target::Commit(prefix) => {
                if let Ok(commit) = find_commit_by_prefix(&repo, &prefix) {
                    return Ok(commit_info(&commit));
                }
                let all = [
                    "+refs/heads/*:refs/heads/*".to_string(),
                    "+refs/tags/*:refs/tags/*".to_string(),
                ];
                self.fetch_counted(&repo, &all, &mut stats)?;
                match find_commit_by_prefix(&repo, &prefix) {
                    Ok(commit) => Ok(commit_info(&commit)),
                    Err(e) if e.code() == ErrorCode::Ambiguous => Err(GitError::Remote {
                        url: self.url().to_string(),
                        detail: format!(
                            "commit id `{prefix}` is ambiguous; give more of its digits"
                        ),
                    }),
                    Err(_) => Err(GitError::UnknownRef {
                        url: self.url().to_string(),
                        wanted: prefix,
                        available: short_ref_names(&advertised),
                    }),
                }
            }
        }
    }

    /// A commit already in the cache and its author's name, by full id;
    /// `None` when it is not there. Never touches the network (the agent's
    /// dashboard describes commits with it).
    pub fn cached_commit(&self, id: &str) -> Option<(CommitInfo, String)> {
        if !(is_hex(id) && id.len() == 40) {
            return None;
        }
        let repo = self.open_cache().ok()?;
        let commit = repo.find_commit(Oid::from_str(id).ok()?).ok()?;
        let author = String::from_utf8_lossy(commit.author().name_bytes()).into_owned();
        Some((commit_info(&commit), author))
    }

    /// The files of `commit` (which [`GitRepo::resolve`] returned).
    pub fn tree(&self, commit: &CommitInfo) -> Result<GitTree, GitError> {
        let repo = self.open_cache()?;
        let tree = Oid::from_str(&commit.id)
            .and_then(|oid| repo.find_commit(oid))
            .and_then(|c| c.tree())
            .map_err(|e| self.cache_error(e))?
            .id();
        Ok(GitTree {
            repo: Arc::new(Mutex::new(repo)),
            tree,
            describe: format!("{} at {}", self.url(), commit.short),
        })
    }

    fn open_cache(&self) -> Result<Repository, GitError> {
        if self.cache.exists() {
            let repo = Repository::open_bare(&self.cache).map_err(|e| GitError::Cache {
                path: self.cache.display().to_string(),
                detail: format!(
                    "{}; it is shoal's cache of {}, delete the folder to start over",
                    e.message(),
                    self.url()
                ),
            })?;
            self.refuse_offsite_redirects(&repo)?;
            return Ok(repo);
        }
        std::fs::create_dir_all(&self.opts.cache_dir).map_err(|e| GitError::Cache {
            path: self.opts.cache_dir.display().to_string(),
            detail: e.to_string(),
        })?;
        let repo = Repository::init_bare(&self.cache).map_err(|e| self.cache_error(e))?;
        // For people looking into the cache folder: the URL libgit2 is
        // given, which for HTTP(S) has no user name or password.
        let shown = match self.remote.transport {
            Transport::Http | Transport::Https => &self.remote.connect,
            _ => self.url(),
        };
        repo.config()
            .and_then(|mut c| c.set_str("shoal.url", shown))
            .map_err(|e| self.cache_error(e))?;
        self.refuse_offsite_redirects(&repo)?;
        Ok(repo)
    }

    /// libgit2 follows a redirect to another host on the first request by
    /// default (`http.followRedirects=initial`). Ref listings use
    /// `connect_auth`, which takes no redirect option and reads this setting
    /// from the repository's config, so the cache sets it to `false`: no
    /// redirect to another host at any stage (fetches set the same in their
    /// options). Redirects on the same host stay allowed by libgit2 (a
    /// renamed repository); the credential callback still refuses any
    /// scheme, host or port other than the configured one.
    fn refuse_offsite_redirects(&self, repo: &Repository) -> Result<(), GitError> {
        let mut config = repo.config().map_err(|e| self.cache_error(e))?;
        let local = config
            .open_level(git2::ConfigLevel::Local)
            .map_err(|e| self.cache_error(e))?;
        if local.get_string("http.followRedirects").ok().as_deref() == Some("false") {
            return Ok(());
        }
        drop(local);
        config
            .set_str("http.followRedirects", "false")
            .map_err(|e| self.cache_error(e))
    }

    fn cache_error(&self, e: git2::Error) -> GitError {
        GitError::Cache {
            path: self.cache.display().to_string(),
            detail: e.message().to_string(),
        }
    }

    fn ls_remote(&self, repo: &Repository) -> Result<Advertised, GitError> {
        let log = RefCell::new(CallbackLog::default());
        let mut remote = repo
            .remote_anonymous(&self.remote.connect)
            .map_err(|e| self.remote_error(e, &log))?;
        let conn = remote
            .connect_auth(Direction::Fetch, Some(self.callbacks(&log)), None)
            .map_err(|e| self.remote_error(e, &log))?;
        if self.local_remote_is_empty() {
            return Ok(Advertised::default());
        }
        let refs = conn
            .list()
            .map_err(|e| self.remote_error(e, &log))?
            .iter()
            .map(|h| (h.name().to_string(), h.oid()))
            .collect();
        let head_target = conn
            .default_branch()
            .ok()
            .and_then(|b| b.as_str().map(str::to_string));
        Ok(Advertised { refs, head_target })
    }

    /// Whether a local (`file://`) remote has no refs at all. git2's
    /// `list()` panics on the empty ref list the local transport gives for
    /// such a repository (a null pointer made into a slice), so it must not
    /// be called then. Network transports always give a non-null list.
    fn local_remote_is_empty(&self) -> bool {
        if self.remote.transport != Transport::Local {
            return false;
        }
        let Some(path) = remote_url::local_path(&self.url) else {
            return false;
        };
        let Ok(repo) = Repository::open(&path) else {
            return false;
        };
        let has_refs = repo
            .references()
            .map(|mut refs| refs.next().is_some())
            .unwrap_or(true);
        let head_resolves = repo.head().is_ok();
        !has_refs && !head_resolves
    }

    fn fetch_counted(
        &self,
        repo: &Repository,
        refspecs: &[String],
        stats: &mut FetchStats,
    ) -> Result<(), GitError> {
        stats.fetches += 1;
        stats.last_fetched = true;
        self.fetch(repo, refspecs)
            .inspect_err(|_| stats.fetch_errors += 1)
    }

    fn fetch(&self, repo: &Repository, refspecs: &[String]) -> Result<(), GitError> {
        let log = RefCell::new(CallbackLog::default());
        let mut remote = repo
            .remote_anonymous(&self.remote.connect)
            .map_err(|e| self.remote_error(e, &log))?;
        let mut fo = FetchOptions::new();
        fo.remote_callbacks(self.callbacks(&log))
            .download_tags(AutotagOption::None)
            // See `refuse_offsite_redirects`: libgit2's default (`Initial`)
            // would follow a redirect to another host.
            .follow_redirects(RemoteRedirect::None)
            .update_fetchhead(false);
        remote
            .fetch(refspecs, Some(&mut fo), None)
            .map_err(|e| self.remote_error(e, &log))
    }

    /// Credentials and host-key checks; what went wrong is noted in `log`
    /// so the error can say it plainly.
    fn callbacks<'a>(&'a self, log: &'a RefCell<CallbackLog>) -> RemoteCallbacks<'a> {
        let mut cb = RemoteCallbacks::new();
        cb.credentials(move |url, user_from_url, allowed| {
            let mut log = log.borrow_mut();
            let result = self.credentials(&mut log, url, user_from_url, allowed);
            if let Err(msg) = &result {
                log.auth_error = Some(msg.clone());
            }
            result.map_err(|msg| git2::Error::from_str(&msg))
        });
        cb.certificate_check(move |cert, _host| {
            let Some(hostkey) = cert.as_hostkey() else {
                // TLS: let libgit2 verify the certificate chain as usual.
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            match self.check_host_key(hostkey.hostkey()) {
                Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                Err(msg) => {
                    log.borrow_mut().host_key_error = Some(msg.clone());
                    Err(git2::Error::from_str(&msg))
                }
            }
        });
        cb
    }

    /// `asking` is the URL libgit2 is talking to, after any redirect.
    fn credentials(
        &self,
        log: &mut CallbackLog,
        asking: &str,
        user_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, String> {
        let user = user_from_url
            .map(str::to_string)
            .or_else(|| self.remote.user.clone());
        if allowed.contains(CredentialType::USERNAME) {
            let user = user.unwrap_or_else(default_ssh_user);
            return Cred::username(&user).map_err(|e| e.message().to_string());
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            let user = user.unwrap_or_else(default_ssh_user);
            log.ssh_tries += 1;
            if let Some(key) = &self.opts.ssh_key {
                if log.ssh_tries > 1 {
                    return Err(format!(
                        "the server refused the key {} for user `{user}`",
                        key.display()
                    ));
                }
                if !key.is_file() {
                    return Err(format!("ssh key {} is not a readable file", key.display()));
                }
                return Cred::ssh_key(&user, None, key, None)
                    .map_err(|e| format!("cannot use ssh key {}: {}", key.display(), e.message()));
            }
            if std::env::var_os("SSH_AUTH_SOCK").is_none() {
                return Err(
                    "no ssh key given (--ssh-key) and no ssh-agent (SSH_AUTH_SOCK is not set)"
                        .into(),
                );
            }
            if log.ssh_tries > 1 {
                return Err(format!(
                    "the server refused every key of the ssh-agent for user `{user}`"
                ));
            }
            return Cred::ssh_key_from_agent(&user).map_err(|e| e.message().to_string());
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            log.token_tries += 1;
            // The URL's password, else the configured token, else a token
            // given as the URL's user name (with an empty password, which
            // is how hosts take `https://TOKEN@host/...`).
            let secret = self
                .remote
                .password
                .as_deref()
                .or(self.opts.token.as_deref());
            let url_token = self.remote.has_credentials().then_some("");
            let Some(secret) = secret.or(url_token) else {
                return Err(format!(
                    "the server asks for credentials and no token is set ({TOKEN_ENV} or a token file)"
                ));
            };
            if !self.remote.same_origin(asking) {
                return Err(format!(
                    "refusing to send credentials to {}: the remote redirected there from {}, and shoal sends them only to the configured scheme, host and port; if the repository moved, point --repo at its new URL",
                    mask_userinfo(asking),
                    self.remote.origin()
                ));
            }
            if log.token_tries > 1 {
                return Err("the server refused the token".into());
            }
            let user = user.unwrap_or_else(|| "git".into());
            return Cred::userpass_plaintext(&user, secret).map_err(|e| e.message().to_string());
        }
        Err(format!(
            "the server asks for a kind of credentials shoal does not have ({allowed:?})"
        ))
    }

    fn known_hosts_path(&self) -> PathBuf {
        self.opts.known_hosts.clone().unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_default();
            Path::new(&home).join(".ssh").join("known_hosts")
        })
    }

    fn check_host_key(&self, key: Option<&[u8]>) -> Result<(), String> {
        let file = self.known_hosts_path();
        let host = self.remote.host.clone().unwrap_or_default();
        let port = self.remote.port_or_default();
        let name = known_hosts::lookup_name(&host, port);
        let key = key.ok_or_else(|| format!("{name} sent no host key shoal can check"))?;
        let offered = format!(
            "{} {}",
            known_hosts::key_type(key).unwrap_or_else(|| "unknown-type".into()),
            known_hosts::fingerprint(key)
        );
        let text = std::fs::read_to_string(&file).map_err(|e| {
            format!(
                "cannot read known_hosts file {}: {e}; create it with the host's key ({})",
                file.display(),
                keyscan_hint(&host, port, &file)
            )
        })?;
        match KnownHosts::parse(&text).check(&host, port, key) {
            Verdict::Trusted => Ok(()),
            Verdict::Unknown => Err(format!(
                "host {name} is not in {}; the server offered {offered}. If that is the right key, add it: {}",
                file.display(),
                keyscan_hint(&host, port, &file)
            )),
            Verdict::Mismatch { lines, types } => {
                let offered_type = known_hosts::key_type(key).unwrap_or_default();
                let mut msg = format!(
                    "host {name} offered {offered}, which does not match {} (line {}); the host key changed or the connection is intercepted",
                    file.display(),
                    lines.iter().map(|l| l.to_string()).collect::<Vec<_>>().join(", ")
                );
                if !types.contains(&offered_type) {
                    msg.push_str(&format!(
                        ". The file holds only {} keys for this host; if the host really has a {offered_type} key, check its fingerprint and add it ({})",
                        types.join("/"),
                        keyscan_hint(&host, port, &file)
                    ));
                }
                Err(msg)
            }
            Verdict::Revoked { line } => Err(format!(
                "host {name} offered {offered}, which {} line {line} marks @revoked",
                file.display()
            )),
        }
    }

    /// A libgit2 error turned into one for people; the callback log says
    /// what shoal itself refused.
    fn remote_error(&self, e: git2::Error, log: &RefCell<CallbackLog>) -> GitError {
        let url = self.url().to_string();
        let log = log.borrow();
        if let Some(detail) = &log.host_key_error {
            return GitError::HostKey {
                url,
                detail: detail.clone(),
            };
        }
        if let Some(detail) = &log.auth_error {
            return GitError::Auth {
                url,
                detail: detail.clone(),
            };
        }
        let detail = self.scrub(e.message());
        let lower = detail.to_lowercase();
        if e.code() == ErrorCode::Auth
            || lower.contains("authentication")
            || lower.contains("status code: 401")
            || lower.contains("status code: 403")
        {
            return GitError::Auth { url, detail };
        }
        if lower.contains("cannot redirect from") {
            return GitError::Remote {
                url,
                detail: format!(
                    "{detail}; shoal follows no redirect to another host or scheme, so credentials cannot go there: if the repository moved, point --repo at its new URL"
                ),
            };
        }
        let unreachable = matches!(e.class(), ErrorClass::Net | ErrorClass::Os)
            || (e.class() == ErrorClass::Ssh && lower.contains("connect"))
            || e.code() == ErrorCode::NotFound
            || lower.contains("could not find repository")
            || lower.contains("failed to resolve address")
            || lower.contains("failed to connect")
            || lower.contains("not found");
        if unreachable {
            GitError::Unreachable { url, detail }
        } else {
            GitError::Remote { url, detail }
        }
    }

    /// Belt and braces: no token, URL password or token-like URL user name
    /// in any message (libgit2 is never given them, but its messages may
    /// quote a redirect's URL).
    fn scrub(&self, text: &str) -> String {
        let mut text = text.replace(&self.url, &self.remote.redacted);
        let url_user =
            self.remote.user.as_deref().filter(|_| {
                self.remote.has_credentials() && self.remote.transport != Transport::Ssh
            });
        let secrets = [
            self.opts.token.as_deref(),
            self.remote.password.as_deref(),
            url_user,
        ];
        // Shorter values would mangle ordinary words of the message.
        for secret in secrets.into_iter().flatten().filter(|s| s.len() >= 4) {
            text = text.replace(secret, "***");
        }
        text
    }
}

/// What the callbacks saw during one connection.
#[derive(Debug, Default)]
struct CallbackLog {
    host_key_error: Option<String>,
    auth_error: Option<String>,
    ssh_tries: u32,
    token_tries: u32,
}

fn keyscan_hint(host: &str, port: u16, file: &Path) -> String {
    let port = if port == 22 {
        String::new()
    } else {
        format!("-p {port} ")
    };
    format!("ssh-keyscan {port}{host} >> {}", file.display())
}

fn default_ssh_user() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "git".into())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain counters or a read-only
    // repository handle: still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The ref name and commit `wanted` designates among the advertised refs;
/// `Err` holds a few ref names to suggest.
fn pick_target(ads: &Advertised, wanted: Option<&str>) -> Result<Target, Vec<String>> {
    let find = |name: &str| -> Option<Target> {
        let peeled = format!("{name}^{{}}");
        let oid = ads
            .refs
            .iter()
            .find(|(n, _)| *n == peeled)
            .or_else(|| ads.refs.iter().find(|(n, _)| n == name))?
            .1;
        Some(Target::Ref {
            name: name.to_string(),
            oid,
        })
    };
    let Some(wanted) = wanted.map(str::trim).filter(|w| !w.is_empty()) else {
        let Some(Target::Ref { oid, .. }) = find("HEAD") else {
            return Err(short_ref_names(ads));
        };
        // Fetch the branch HEAD names, so the cache holds a ref to it.
        let name = ads.head_target.clone().unwrap_or_else(|| "HEAD".into());
        return Ok(Target::Ref { name, oid });
    };
    let candidates = [
        wanted.to_string(),
        format!("refs/heads/{wanted}"),
        format!("refs/tags/{wanted}"),
    ];
    let by_name = candidates
        .iter()
        .filter(|c| c.as_str() == "HEAD" || c.starts_with("refs/"))
        .find_map(|c| find(c));
    if let Some(target) = by_name {
        return Ok(target);
    }
    if is_hex(wanted) && (4..=40).contains(&wanted.len()) {
        let prefix = wanted.to_lowercase();
        // The tip of an advertised ref: fetch just that ref.
        let tip = ads
            .refs
            .iter()
            .find(|(n, oid)| !n.ends_with("^{}") && oid.to_string().starts_with(&prefix));
        if let Some((name, oid)) = tip {
            return Ok(Target::Ref {
                name: name.clone(),
                oid: *oid,
            });
        }
        return Ok(Target::Commit(prefix));
    }
    Err(short_ref_names(ads))
}

fn fetch_refspec(name: &str) -> String {
    if name == "HEAD" {
        "+HEAD:refs/shoal/HEAD".to_string()
    } else {
        format!("+{name}:{name}")
    }
}

/// Branch and tag names as people type them, a few of them.
fn short_ref_names(ads: &Advertised) -> Vec<String> {
    let mut names: Vec<String> = ads
        .refs
        .iter()
        .filter(|(n, _)| !n.ends_with("^{}"))
        .filter_map(|(n, _)| {
            n.strip_prefix("refs/heads/")
                .or_else(|| n.strip_prefix("refs/tags/"))
        })
        .map(str::to_string)
        .collect();
    names.dedup();
    if names.len() > REFS_IN_ERRORS {
        let more = names.len() - REFS_IN_ERRORS;
        names.truncate(REFS_IN_ERRORS);
        names.push(format!("and {more} more"));
    }
    names
}

fn find_commit_by_prefix<'r>(
    repo: &'r Repository,
    prefix: &str,
) -> Result<git2::Commit<'r>, git2::Error> {
    repo.find_object_by_prefix(prefix, Some(ObjectType::Commit))?
        .peel_to_commit()
}

fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    let id = commit.id().to_string();
    CommitInfo {
        short: id[..7].to_string(),
        summary: String::from_utf8_lossy(commit.message_bytes())
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string(),
        time: commit.time().seconds(),
        id,
    }
}

/// The files of one commit, read from the cached bare clone. Cheap to
/// clone; reads are serialised on one repository handle.
#[derive(Clone)]
pub struct GitTree {
    repo: Arc<Mutex<Repository>>,
    tree: Oid,
    describe: String,
}

impl std::fmt::Debug for GitTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitTree")
            .field("tree", &self.tree)
            .field("describe", &self.describe)
            .finish()
    }
}

/// `./a/b/` -> `a/b`; `""` or `.` is the root.
fn clean_path(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

/// Git file modes for regular files (plain and executable).
fn is_regular_file(mode: i32) -> bool {
    mode == 0o100644 || mode == 0o100755
}

impl GitTree {
    fn io_error(&self, path: &str, message: impl std::fmt::Display) -> SourceError {
        SourceError::Io {
            path: path.to_string(),
            message: format!("{message} (in {})", self.describe),
        }
    }
}

impl Tree for GitTree {
    fn read(&self, path: &str) -> Result<Vec<u8>, SourceError> {
        let clean = clean_path(path);
        let repo = lock(&self.repo);
        let tree = repo
            .find_tree(self.tree)
            .map_err(|e| self.io_error(path, e.message()))?;
        let entry = tree.get_path(Path::new(&clean)).map_err(|_| {
            // A link on the way is named, as in a directory.
            let parts: Vec<&str> = clean.split('/').collect();
            (1..parts.len())
                .map(|n| parts[..n].join("/"))
                .find(|prefix| {
                    tree.get_path(Path::new(prefix))
                        .is_ok_and(|e| e.filemode() == 0o120000)
                })
                .map(|link| {
                    self.io_error(
                        &link,
                        "is a symbolic link; shoal does not follow links in git trees",
                    )
                })
                .unwrap_or_else(|| self.io_error(path, "no such file"))
        })?;
        if entry.kind() != Some(ObjectType::Blob) {
            return Err(self.io_error(path, "is a folder, not a file"));
        }
        if !is_regular_file(entry.filemode()) {
            return Err(self.io_error(
                path,
                "is a symbolic link; shoal does not follow links in git trees",
            ));
        }
        // The size from the object header, before the blob is loaded.
        let (size, _) = repo
            .odb()
            .and_then(|odb| odb.read_header(entry.id()))
            .map_err(|e| self.io_error(path, e.message()))?;
        if size as u64 > super::MAX_FILE_BYTES {
            return Err(super::too_large(
                path,
                super::MAX_FILE_BYTES,
                "one file read from the repository",
            ));
        }
        let blob = repo
            .find_blob(entry.id())
            .map_err(|e| self.io_error(path, e.message()))?;
        Ok(blob.content().to_vec())
    }

    fn list(&self, dir: &str) -> Result<Vec<String>, SourceError> {
        let clean = clean_path(dir);
        let repo = lock(&self.repo);
        let root = repo
            .find_tree(self.tree)
            .map_err(|e| self.io_error(dir, e.message()))?;
        let folder = if clean.is_empty() {
            root
        } else {
            let Ok(entry) = root.get_path(Path::new(&clean)) else {
                return Ok(Vec::new());
            };
            if entry.kind() != Some(ObjectType::Tree) {
                // A link is refused as in a directory; a file holds nothing.
                if entry.filemode() == 0o120000 {
                    return Err(self.io_error(
                        dir,
                        "is a symbolic link; shoal does not follow links in git trees",
                    ));
                }
                return Ok(Vec::new());
            }
            repo.find_tree(entry.id())
                .map_err(|e| self.io_error(dir, e.message()))?
        };
        let mut names: Vec<String> = folder
            .iter()
            .map(|e| String::from_utf8_lossy(e.name_bytes()).into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn is_file(&self, path: &str) -> bool {
        let clean = clean_path(path);
        if clean.is_empty() {
            return false;
        }
        let repo = lock(&self.repo);
        let Ok(tree) = repo.find_tree(self.tree) else {
            return false;
        };
        tree.get_path(Path::new(&clean))
            .map(|e| e.kind() == Some(ObjectType::Blob) && is_regular_file(e.filemode()))
            .unwrap_or(false)
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn local_root(&self) -> Option<PathBuf> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    fn ads() -> Advertised {
        Advertised {
            refs: vec![
                ("HEAD".into(), oid(1)),
                ("refs/heads/main".into(), oid(1)),
                ("refs/heads/dev".into(), oid(2)),
                ("refs/tags/v1".into(), oid(3)),
                ("refs/tags/v1^{}".into(), oid(4)),
                ("refs/tags/light".into(), oid(2)),
            ],
            head_target: Some("refs/heads/main".into()),
        }
    }

    fn r(name: &str, n: u8) -> Result<Target, Vec<String>> {
        Ok(Target::Ref {
            name: name.into(),
            oid: oid(n),
        })
    }

    #[test]
    fn picks_head_branch_tag_and_ids() {
        let a = ads();
        assert_eq!(pick_target(&a, None), r("refs/heads/main", 1));
        assert_eq!(pick_target(&a, Some("dev")), r("refs/heads/dev", 2));
        assert_eq!(
            pick_target(&a, Some("refs/heads/dev")),
            r("refs/heads/dev", 2)
        );
        // Annotated tags resolve to the commit they peel to.
        assert_eq!(pick_target(&a, Some("v1")), r("refs/tags/v1", 4));
        assert_eq!(pick_target(&a, Some("light")), r("refs/tags/light", 2));
        // An id that is the tip of an advertised ref fetches that ref.
        assert_eq!(pick_target(&a, Some("0202020")), r("refs/heads/dev", 2));
        assert_eq!(
            pick_target(&a, Some("abcdef12")),
            Ok(Target::Commit("abcdef12".into()))
        );
    }

    #[test]
    fn unknown_ref_lists_names() {
        let err = pick_target(&ads(), Some("nope")).unwrap_err();
        assert_eq!(err, vec!["main", "dev", "v1", "light"]);
        let empty = Advertised::default();
        assert!(pick_target(&empty, None).is_err());
    }

    #[test]
    fn fetch_refspecs() {
        assert_eq!(
            fetch_refspec("refs/heads/main"),
            "+refs/heads/main:refs/heads/main"
        );
        assert_eq!(fetch_refspec("HEAD"), "+HEAD:refs/shoal/HEAD");
    }

    #[test]
    fn cleans_paths() {
        assert_eq!(clean_path("./stacks//web/"), "stacks/web");
        assert_eq!(clean_path("."), "");
        assert_eq!(clean_path(""), "");
    }

    #[test]
    fn tokens_from_file_or_env() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  abc123\n").unwrap();
        assert_eq!(
            token_from(Some("env".into()), Some(&file))
                .unwrap()
                .as_deref(),
            Some("abc123")
        );
        assert_eq!(
            token_from(Some(" env\n".into()), None).unwrap().as_deref(),
            Some("env")
        );
        assert_eq!(token_from(Some("".into()), None).unwrap(), None);
        std::fs::write(&file, "\n").unwrap();
        let err = token_from(None, Some(&file)).unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        let err = token_from(None, Some(&dir.path().join("missing")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }

    fn opts_in(dir: &Path, token: Option<&str>, allow_insecure_http: bool) -> GitOptions {
        GitOptions {
            cache_dir: dir.to_path_buf(),
            token: token.map(str::to_string),
            allow_insecure_http,
            ..Default::default()
        }
    }

    #[test]
    fn credentials_over_plain_http_are_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let plain = "http://127.0.0.1:9/r.git";
        let err = GitRepo::open(plain, opts_in(dir.path(), Some("tok-123456"), false)).unwrap_err();
        assert!(matches!(err, GitError::InsecureHttp { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("--allow-insecure-git-http") && msg.contains("the token"),
            "{msg}"
        );
        assert!(!msg.contains("tok-123456"), "{msg}");

        let in_url = "http://ghp_abcdef@127.0.0.1:9/r.git";
        let msg = GitRepo::open(in_url, opts_in(dir.path(), None, false))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("http://***@127.0.0.1:9/r.git"), "{msg}");
        assert!(!msg.contains("ghp_abcdef"), "{msg}");

        // No credentials (a public mirror), or the operator allows it.
        assert!(GitRepo::open(plain, opts_in(dir.path(), None, false)).is_ok());
        assert!(GitRepo::open(plain, opts_in(dir.path(), Some("tok-123456"), true)).is_ok());
        assert!(GitRepo::open(in_url, opts_in(dir.path(), None, true)).is_ok());
        // https and placeholder user names are fine.
        assert!(GitRepo::open(
            "http://git@127.0.0.1:9/r.git",
            opts_in(dir.path(), None, false)
        )
        .is_ok());
        assert!(GitRepo::open(
            "https://ghp_x@host/r.git",
            opts_in(dir.path(), Some("t"), false)
        )
        .is_ok());
    }

    #[test]
    fn the_cache_keeps_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let url = "https://ghp_cachetoken1@git.example/o/r.git";
        let repo = GitRepo::open(url, opts_in(dir.path(), None, false)).unwrap();
        assert_eq!(repo.url(), "https://***@git.example/o/r.git");
        let config = std::fs::read_to_string(repo.cache_path().join("config")).unwrap();
        assert!(!config.contains("ghp_cachetoken1"), "{config}");
        assert!(
            config.contains("url = https://git.example/o/r.git"),
            "{config}"
        );
        assert!(config.contains("followRedirects = false"), "{config}");
        // The folder is named after the URL without the token.
        let plain = GitRepo::open(
            "https://git.example/o/r.git",
            opts_in(dir.path(), None, false),
        );
        assert_eq!(plain.unwrap().cache_path(), repo.cache_path());
        assert!(!format!("{repo:?}").contains("ghp_cachetoken1"));
    }

    #[test]
    fn credentials_go_only_to_the_configured_origin() {
        let dir = tempfile::tempdir().unwrap();
        let url = "http://127.0.0.1:8080/r.git";
        let repo = GitRepo::open(url, opts_in(dir.path(), Some("tok-origin"), true)).unwrap();
        let ask = |asking: &str| {
            let mut log = CallbackLog::default();
            repo.credentials(&mut log, asking, None, CredentialType::USER_PASS_PLAINTEXT)
        };
        assert!(ask("http://127.0.0.1:8080/r.git/info/refs").is_ok());
        for other in [
            "http://127.0.0.2:8080/r.git",
            "http://localhost:8080/r.git",
            "http://127.0.0.1:8081/r.git",
            "https://127.0.0.1:8080/r.git",
        ] {
            let Err(msg) = ask(other) else {
                panic!("credentials handed to {other}");
            };
            assert!(
                msg.contains("refusing to send credentials") && msg.contains(other),
                "{msg}"
            );
        }

        // A token given as the URL's user name goes by the callback, with
        // an empty password, to the same origin only.
        let url = "https://ghp_userinurl@git.example/r.git";
        let repo = GitRepo::open(url, opts_in(dir.path(), None, false)).unwrap();
        let mut log = CallbackLog::default();
        let asking = "https://git.example/r.git";
        assert!(repo
            .credentials(&mut log, asking, None, CredentialType::USER_PASS_PLAINTEXT)
            .is_ok());
        let mut log = CallbackLog::default();
        let msg = repo
            .credentials(
                &mut log,
                "https://other.example/r.git",
                None,
                CredentialType::USER_PASS_PLAINTEXT,
            )
            .err()
            .unwrap();
        assert!(!msg.contains("ghp_userinurl"), "{msg}");
    }

    #[test]
    fn options_debug_hides_token() {
        let opts = GitOptions {
            token: Some("sekrit".into()),
            ..Default::default()
        };
        assert!(!format!("{opts:?}").contains("sekrit"));
    }
}
