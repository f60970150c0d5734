//! SSH host-key checking against an OpenSSH `known_hosts` file the operator
//! provides. Supports plain and `[host]:port` names, comma-separated and
//! wildcard/negated patterns, hashed (`|1|salt|hash`) names and `@revoked`
//! markers. `@cert-authority` lines are not supported (host certificates are
//! not checked), so a host known only through a CA is reported as unknown.
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Digest;

/// One usable line of a known_hosts file.
#[derive(Debug, Clone)]
struct Entry {
    line: usize,
    marker: Marker,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum Hosts {
    Patterns(Vec<String>),
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

/// The parsed entries of a known_hosts file.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// What a known_hosts file says about a host's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// An entry for the host holds exactly this key.
    Trusted,
    /// No entry names the host.
    Unknown,
    /// Entries name the host (at these lines, with keys of these types)
    /// but none holds this key.
    Mismatch {
        lines: Vec<usize>,
        types: Vec<String>,
    },
    /// The key is marked `@revoked` (at this line).
    Revoked { line: usize },
}

impl KnownHosts {
    /// Parse the text of a known_hosts file. Lines that are not entries
    /// (comments, blanks, malformed keys) are ignored, as OpenSSH does.
    pub fn parse(text: &str) -> KnownHosts {
        let entries = text
            .lines()
            .enumerate()
            .filter_map(|(i, line)| parse_line(i + 1, line))
            .collect();
        KnownHosts { entries }
    }

    /// Check `key` (the SSH wire-format public key blob) offered by `host`
    /// on `port`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        let name = lookup_name(host, port);
        let mut lines = Vec::new();
        let mut types: Vec<String> = Vec::new();
        for entry in &self.entries {
            if !entry.hosts.matches(&name) && entry.marker != Marker::Revoked {
                continue;
            }
            match entry.marker {
                // A revoked key is refused whoever offers it.
                Marker::Revoked if entry.key == key => {
                    return Verdict::Revoked { line: entry.line }
                }
                Marker::Revoked | Marker::CertAuthority => {}
                Marker::None if entry.key == key => return Verdict::Trusted,
                Marker::None => {
                    lines.push(entry.line);
                    if !types.contains(&entry.key_type) {
                        types.push(entry.key_type.clone());
                    }
                }
            }
        }
        if lines.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Mismatch { lines, types }
        }
    }
}

/// The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &[u8]) -> String {
    format!(
        "SHA256:{}",
        STANDARD_NO_PAD.encode(sha2::Sha256::digest(key))
    )
}

/// The key type named inside a key blob (`ssh-ed25519`), if readable.
pub fn key_type(key: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    let name = key.get(4..4 + len)?;
    String::from_utf8(name.to_vec()).ok()
}

fn parse_line(line_no: usize, line: &str) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let key_type = fields.next()?.to_string();
    let key = STANDARD.decode(fields.next()?).ok()?;
    Some(Entry {
        line: line_no,
        marker,
        hosts: parse_hosts(first)?,
        key_type,
        key,
    })
}

fn parse_hosts(field: &str) -> Option<Hosts> {
    if let Some(rest) = field.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        return Some(Hosts::Hashed {
            salt: STANDARD.decode(salt).ok()?,
            hash: STANDARD.decode(hash).ok()?,
        });
    }
    Some(Hosts::Patterns(
        field.split(',').map(|p| p.to_lowercase()).collect(),
    ))
}

impl Hosts {
    fn matches(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        match self {
            Hosts::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
            Hosts::Patterns(patterns) => {
                let mut matched = false;
                for pattern in patterns {
                    if let Some(negated) = pattern.strip_prefix('!') {
                        if glob(negated, &name) {
                            return false;
                        }
                    } else if glob(pattern, &name) {
                        matched = true;
                    }
                }
                matched
            }
        }
    }
}

/// OpenSSH host patterns: `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIHn2Yq9aM1m9cE8Yw0c7oJ4pQGm3XgCj6a3b5pQ6p1bX";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIB0oW6mN1w3pXJgU0d5u7mS3bq0KXK2m8qf8ZyM0vR9Q";

    fn blob(b64: &str) -> Vec<u8> {
        STANDARD.decode(b64).unwrap()
    }

    #[test]
    fn plain_and_port_names() {
        let kh = KnownHosts::parse(&format!(
            "# comment\n\ngithub.com,140.82.1.1 ssh-ed25519 {KEY_A}\n[127.0.0.1]:2222 ssh-ed25519 {KEY_B}\n"
        ));
        assert_eq!(kh.check("github.com", 22, &blob(KEY_A)), Verdict::Trusted);
        assert_eq!(kh.check("140.82.1.1", 22, &blob(KEY_A)), Verdict::Trusted);
        assert_eq!(
            kh.check("github.com", 22, &blob(KEY_B)),
            Verdict::Mismatch {
                lines: vec![3],
                types: vec!["ssh-ed25519".into()]
            }
        );
        assert_eq!(kh.check("127.0.0.1", 2222, &blob(KEY_B)), Verdict::Trusted);
        // The same host on another port is another name.
        assert_eq!(kh.check("127.0.0.1", 22, &blob(KEY_B)), Verdict::Unknown);
        assert_eq!(kh.check("gitlab.com", 22, &blob(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn mismatch_names_the_key_types_on_file() {
        let kh = KnownHosts::parse(&format!("git.example.com ssh-rsa {KEY_B}\n"));
        assert_eq!(
            kh.check("git.example.com", 22, &blob(KEY_A)),
            Verdict::Mismatch {
                lines: vec![1],
                types: vec!["ssh-rsa".into()]
            }
        );
    }

    #[test]
    fn hashed_names() {
        // HMAC-SHA1(salt, "[127.0.0.1]:2222"), as `ssh-keygen -H` writes it.
        let salt = [7u8; 20];
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let hash = mac.finalize().into_bytes();
        let line = format!(
            "|1|{}|{} ssh-ed25519 {KEY_A}",
            STANDARD.encode(salt),
            STANDARD.encode(hash)
        );
        let kh = KnownHosts::parse(&line);
        assert_eq!(kh.check("127.0.0.1", 2222, &blob(KEY_A)), Verdict::Trusted);
        assert_eq!(
            kh.check("127.0.0.1", 2222, &blob(KEY_B)),
            Verdict::Mismatch {
                lines: vec![1],
                types: vec!["ssh-ed25519".into()]
            }
        );
        assert_eq!(kh.check("127.0.0.2", 2222, &blob(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn patterns_and_markers() {
        let kh = KnownHosts::parse(&format!(
            "*.example.com,!bad.example.com ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_B}\n@cert-authority * ssh-ed25519 {KEY_A}\n"
        ));
        assert_eq!(
            kh.check("git.example.com", 22, &blob(KEY_A)),
            Verdict::Trusted
        );
        assert_eq!(
            kh.check("bad.example.com", 22, &blob(KEY_A)),
            Verdict::Unknown
        );
        assert_eq!(
            kh.check("git.example.com", 22, &blob(KEY_B)),
            Verdict::Revoked { line: 2 }
        );
    }

    #[test]
    fn glob_matches_like_openssh() {
        assert!(glob("*", "anything"));
        assert!(glob("10.0.?.1", "10.0.5.1"));
        assert!(!glob("10.0.?.1", "10.0.55.1"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b", "axxc"));
    }

    #[test]
    fn key_type_and_fingerprint() {
        assert_eq!(key_type(&blob(KEY_A)).as_deref(), Some("ssh-ed25519"));
        assert!(fingerprint(&blob(KEY_A)).starts_with("SHA256:"));
    }
}
