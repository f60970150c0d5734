//! Names that mark a value as secret: the rule that masks env variables
//! like `DB_PASSWORD` in plans, and the list of shoal's own credential
//! variables that stacks may never read.
//!
//! The secret-name rule, case-insensitive, on the name split into segments
//! at `_`, `-`, `.` and at a lower-to-upper case change (`dbPass` -> `db`,
//! `Pass`). A name is secret when
//! - it contains one of [`SECRET_WORDS`] anywhere (`MYSQL_ROOT_PASSWORD`,
//!   `GITHUB_TOKEN`, `AWS_SECRET_ACCESS_KEY`, `APIKEY`), or
//! - a segment is one of [`SECRET_SEGMENTS`] (`DB_PASS`, `SMTP_PWD`,
//!   `DB_PW`, `S3_CREDS`), or ends in `KEY`/`KEYS` (`API_KEY`, `SSHKEY`,
//!   `my_key_file`), or
//! - its last segment is `AUTH` (`BASIC_AUTH`, `REGISTRY_AUTH`), where
//!   `AUTH_URL` or `AUTH_ENABLED` are settings, not secrets.
//!
//! A segment has to match as a whole, so `KEYBOARD_LAYOUT`,
//! `BYPASS_CACHE` and `PASSENGER_LIMIT` are not secret; the shell's own
//! `PWD` (the working directory, the whole name) is not either.

/// Words that make a name secret wherever they appear in it.
pub const SECRET_WORDS: &[&str] = &[
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "SECRET",
    "TOKEN",
    "CREDENTIAL",
    "APIKEY",
    "PRIVATEKEY",
    "LICENSE",
];

/// Segments that make a name secret when one of them is a whole segment.
pub const SECRET_SEGMENTS: &[&str] = &["PASS", "PWD", "PW", "CREDS"];

/// Whether an env variable's name says its value is secret (see the
/// module documentation for the rule).
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if upper == "PWD" {
        return false;
    }
    if SECRET_WORDS.iter().any(|w| upper.contains(w)) {
        return true;
    }
    let segments = segments(name);
    let last = segments.last().map(String::as_str);
    last == Some("AUTH")
        || segments.iter().any(|s| {
            SECRET_SEGMENTS.contains(&s.as_str()) || s.ends_with("KEY") || s.ends_with("KEYS")
        })
}

/// The upper-cased segments of a name.
fn segments(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if matches!(c, '_' | '-' | '.') {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        current.push(c.to_ascii_uppercase());
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The process variables shoal (and the SOPS conventions it follows)
/// reads as credentials or as the place of one. Stacks never read these;
/// see [`is_own_credential`] for the whole rule.
pub const OWN_CREDENTIALS: &[&str] = &[
    "SHOAL_AGE_KEY",
    "SHOAL_AGE_KEY_FILE",
    "SHOAL_GIT_TOKEN",
    "SHOAL_SSH_KEY",
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_FILE",
    "SOPS_AGE_KEY_CMD",
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
];

/// Whether a process variable is one of shoal's own credentials: one of
/// [`OWN_CREDENTIALS`], or any `SHOAL_*` / `SOPS_*` variable whose name
/// looks secret ([`is_secret_name`]), so a credential variable added later
/// is covered without a list to update. `SHOAL_REPO` or
/// `SHOAL_AGENT_IDENTITY` are settings and stay readable.
pub fn is_own_credential(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    OWN_CREDENTIALS.contains(&upper.as_str())
        || ((upper.starts_with("SHOAL_") || upper.starts_with("SOPS_")) && is_secret_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for (name, secret) in [
            ("DB_PASSWORD", true),
            ("MYSQL_ROOT_PASSWORD", true),
            ("passwd", true),
            ("DB_PASS", true),
            ("db-pass", true),
            ("dbPass", true),
            ("SMTP_PWD", true),
            ("MAIL.PWD", true),
            ("DB_PW", true),
            ("S3_CREDENTIALS", true),
            ("GOOGLE_APPLICATION_CREDENTIALS", true),
            ("S3_CREDS", true),
            ("API_KEY", true),
            ("apiKey", true),
            ("APIKEY", true),
            ("SSHKEY", true),
            ("AWS_SECRET_ACCESS_KEY", true),
            ("AWS_ACCESS_KEY_ID", true),
            ("TLS_PRIVATE_KEY", true),
            ("SecretKey", true),
            ("my_key_file", true),
            ("api_token", true),
            ("LICENSE", true),
            ("GPG_PASSPHRASE", true),
            ("BASIC_AUTH", true),
            ("REGISTRY_AUTH", true),
            ("SIGNING_KEYS", true),
            ("PWD", false),
            ("OLDPWD", false),
            ("KEYBOARD_LAYOUT", false),
            ("BYPASS_CACHE", false),
            ("PASSENGER_LIMIT", false),
            ("COMPASS_URL", false),
            ("AUTH_URL", false),
            ("OAUTH_ENABLED", false),
            ("FOO", false),
            ("ROOT_URL", false),
            ("MONGO_URL", false),
            ("PORT", false),
            ("DATA_NODE", false),
        ] {
            assert_eq!(is_secret_name(name), secret, "{name}");
        }
    }

    #[test]
    fn own_credentials() {
        for (name, own) in [
            ("SOPS_AGE_KEY", true),
            ("SOPS_AGE_KEY_FILE", true),
            ("SOPS_AGE_KEY_CMD", true),
            ("SHOAL_AGE_KEY_FILE", true),
            ("SHOAL_GIT_TOKEN", true),
            ("SHOAL_SSH_KEY", true),
            ("SHOAL_WEBHOOK_SECRET", true),
            ("SHOAL_STATUS_TOKEN", true),
            ("SHOAL_REPO", false),
            ("SHOAL_REF", false),
            ("SHOAL_INTERVAL", false),
            ("SHOAL_AGENT_IDENTITY", false),
            ("SHOAL_CACHE_DIR", false),
            ("SOPS_PGP_FP", false),
            ("DB_PASSWORD", false),
            ("GITHUB_TOKEN", false),
        ] {
            assert_eq!(is_own_credential(name), own, "{name}");
        }
    }
}
