//! The `sops` metadata of an encrypted file: recipients, MAC, timestamp and
//! the rules that say which values are encrypted.
use regex::Regex;

use super::document::Node;

/// SOPS' default when a file names no rule.
pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// One `sops.age[]` entry: a recipient and the data key encrypted to it.
#[derive(Debug, Clone)]
pub struct AgeStanza {
    pub recipient: String,
    /// An armored age file holding the 32-byte data key.
    pub enc: String,
}

/// Which values of the document SOPS encrypted.
#[derive(Debug, Clone, Default)]
pub struct CryptRules {
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<Regex>,
    encrypted_regex: Option<Regex>,
}

impl CryptRules {
    /// SOPS' `shouldBeEncrypted` for a value at `path` (comment rules are
    /// refused when the metadata is read).
    pub fn should_encrypt(&self, path: &[String]) -> bool {
        let mut encrypted = true;
        if let Some(suffix) = &self.unencrypted_suffix {
            if path.iter().any(|p| p.ends_with(suffix.as_str())) {
                encrypted = false;
            }
        }
        if let Some(suffix) = &self.encrypted_suffix {
            encrypted = path.iter().any(|p| p.ends_with(suffix.as_str()));
        }
        if let Some(re) = &self.unencrypted_regex {
            if path.iter().any(|p| re.is_match(p)) {
                encrypted = false;
            }
        }
        if let Some(re) = &self.encrypted_regex {
            encrypted = path.iter().any(|p| re.is_match(p));
        }
        encrypted
    }
}

/// The parts of the `sops` map shoal needs.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub age: Vec<AgeStanza>,
    /// Key kinds other than age the file is also encrypted for (`pgp`, `kms`…).
    pub other_key_kinds: Vec<String>,
    pub mac: String,
    pub last_modified: String,
    pub mac_only_encrypted: bool,
    pub rules: CryptRules,
}

const OTHER_KEY_KINDS: [&str; 6] = ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"];

fn string_field(meta: &Node, name: &str) -> Option<String> {
    match meta.get(name)? {
        Node::Str(s) if !s.is_empty() => Some(s.clone()),
        Node::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn non_empty_list<'a>(group: &'a Node, name: &str) -> &'a [Node] {
    match group.get(name) {
        Some(Node::List(items)) => items,
        _ => &[],
    }
}

fn age_stanzas(group: &Node) -> Result<Vec<AgeStanza>, String> {
    non_empty_list(group, "age")
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let field = |name: &str| {
                entry
                    .get(name)
                    .and_then(Node::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| format!("sops.age[{i}] has no `{name}`"))
            };
            Ok(AgeStanza {
                recipient: field("recipient")?,
                enc: field("enc")?,
            })
        })
        .collect()
}

fn compile(meta: &Node, name: &str) -> Result<Option<Regex>, String> {
    string_field(meta, name)
        .map(|re| Regex::new(&re).map_err(|e| format!("sops.{name} is not a valid regex: {e}")))
        .transpose()
}

/// SOPS' RFC 3339 re-formatting of `lastmodified` (Go's `time.RFC3339`
/// drops fractional seconds), which is the MAC's additional data.
fn normalize_timestamp(ts: &str) -> String {
    match ts.find('.') {
        Some(dot) if ts.len() > 19 && dot == 19 => {
            let rest = &ts[dot + 1..];
            let zone = rest.trim_start_matches(|c: char| c.is_ascii_digit());
            format!("{}{}", &ts[..dot], zone)
        }
        _ => ts.to_string(),
    }
}

impl Metadata {
    /// Reads the `sops` map. Errors say what is missing or unsupported.
    pub fn from_node(meta: &Node) -> Result<Metadata, String> {
        let mac = string_field(meta, "mac").unwrap_or_default();
        let last_modified = string_field(meta, "lastmodified")
            .map(|ts| normalize_timestamp(&ts))
            .ok_or("sops.lastmodified is missing")?;
        let mac_only_encrypted = match meta.get("mac_only_encrypted") {
            Some(Node::Bool(b)) => *b,
            Some(Node::Str(s)) => s == "true" || s == "True" || s == "1",
            _ => false,
        };
        for name in ["unencrypted_comment_regex", "encrypted_comment_regex"] {
            if string_field(meta, name).is_some() {
                return Err(format!(
                    "sops.{name} is not supported by shoal's decryption; \
                     re-encrypt the file with encrypted_regex or unencrypted_suffix"
                ));
            }
        }
        let rules = CryptRules {
            unencrypted_suffix: string_field(meta, "unencrypted_suffix"),
            encrypted_suffix: string_field(meta, "encrypted_suffix"),
            unencrypted_regex: compile(meta, "unencrypted_regex")?,
            encrypted_regex: compile(meta, "encrypted_regex")?,
        };
        let count = usize::from(rules.unencrypted_suffix.is_some())
            + usize::from(rules.encrypted_suffix.is_some())
            + usize::from(rules.unencrypted_regex.is_some())
            + usize::from(rules.encrypted_regex.is_some());
        let rules = match count {
            0 => CryptRules {
                unencrypted_suffix: Some(DEFAULT_UNENCRYPTED_SUFFIX.to_string()),
                ..rules
            },
            1 => rules,
            _ => {
                return Err("sops metadata names more than one of encrypted_suffix, \
                            unencrypted_suffix, encrypted_regex, unencrypted_regex"
                    .into())
            }
        };

        // Keys live at the top (one group) or under key_groups (Shamir).
        let groups: Vec<&Node> = match meta.get("key_groups") {
            Some(Node::List(groups)) if !groups.is_empty() => groups.iter().collect(),
            _ => vec![meta],
        };
        if groups.len() > 1 {
            return Err(format!(
                "the file uses {} key groups (Shamir secret sharing), which shoal does not \
                 decrypt; encrypt it with a single group of age recipients",
                groups.len()
            ));
        }
        let group = groups[0];
        let age = age_stanzas(group)?;
        let other_key_kinds = OTHER_KEY_KINDS
            .iter()
            .filter(|kind| !non_empty_list(group, kind).is_empty())
            .map(|kind| kind.to_string())
            .collect();
        Ok(Metadata {
            age,
            other_key_kinds,
            mac,
            last_modified,
            mac_only_encrypted,
            rules,
        })
    }

    /// The age recipients, for messages.
    pub fn recipients(&self) -> Vec<String> {
        self.age.iter().map(|a| a.recipient.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn default_rule_leaves_unencrypted_suffix_in_clear() {
        let meta = Node::Map(vec![
            (
                "lastmodified".into(),
                Node::Str("2026-01-01T00:00:00Z".into()),
            ),
            ("mac".into(), Node::Str("x".into())),
        ]);
        let m = Metadata::from_node(&meta).unwrap();
        assert!(m.rules.should_encrypt(&path(&["db", "password"])));
        assert!(!m.rules.should_encrypt(&path(&["public_unencrypted", "x"])));
    }

    #[test]
    fn encrypted_regex_selects_paths() {
        let meta = Node::Map(vec![
            (
                "lastmodified".into(),
                Node::Str("2026-01-01T00:00:00Z".into()),
            ),
            (
                "encrypted_regex".into(),
                Node::Str("^(data|password)$".into()),
            ),
        ]);
        let m = Metadata::from_node(&meta).unwrap();
        assert!(m.rules.should_encrypt(&path(&["data", "user"])));
        assert!(!m.rules.should_encrypt(&path(&["stringData", "other"])));
    }

    #[test]
    fn timestamps_lose_fractional_seconds_like_go_rfc3339() {
        assert_eq!(
            normalize_timestamp("2026-11-30T00:47:23.123456Z"),
            "2026-11-30T00:47:23Z"
        );
        assert_eq!(
            normalize_timestamp("2026-11-30T00:47:23Z"),
            "2026-11-30T00:47:23Z"
        );
    }
}
