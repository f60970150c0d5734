//! Webhook authentication: GitHub and Gitea sign the raw body with
//! HMAC-SHA256 (`X-Hub-Signature-256: sha256=<hex>`; older Gitea sends
//! `X-Gitea-Signature: <hex>`), GitLab sends the shared token as
//! `X-Gitlab-Token`. All comparisons are constant-time. A [`Credential`] is
//! read from the headers alone, so the server refuses a request without one
//! (and decides a GitLab token) before reading any body.
use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
pub const GITEA_SIGNATURE: &str = "x-gitea-signature";
pub const GITLAB_TOKEN: &str = "x-gitlab-token";

/// Who sent a webhook that passed verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sender {
    /// GitHub, or Gitea using the GitHub-compatible header.
    HubSignature,
    Gitea,
    Gitlab,
}

/// Why a webhook was refused (answered with 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token header")]
    Missing,
    #[error("{header}: malformed; expected {expected}")]
    Malformed {
        header: &'static str,
        expected: &'static str,
    },
    #[error("{header}: does not match the configured webhook secret")]
    Mismatch { header: &'static str },
}

/// What a webhook request presents, read from its headers alone, so a
/// request without one is refused before its body is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// An HMAC-SHA256 of the body (GitHub, or Gitea's own header).
    Hmac {
        sender: Sender,
        header: &'static str,
        signature: Vec<u8>,
    },
    /// GitLab's shared token.
    Token(Vec<u8>),
}

impl Credential {
    /// The credential a request carries; `Missing` or `Malformed` without
    /// looking at the body.
    pub fn from_headers(headers: &HeaderMap) -> Result<Credential, Refusal> {
        if let Some(value) = headers.get(GITHUB_SIGNATURE) {
            let hex_sig = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("sha256="))
                .ok_or(Refusal::Malformed {
                    header: "X-Hub-Signature-256",
                    expected: "sha256=<hex digest>",
                })?;
            return Ok(Credential::Hmac {
                sender: Sender::HubSignature,
                header: "X-Hub-Signature-256",
                signature: decode_hex(hex_sig, "X-Hub-Signature-256")?,
            });
        }
        if let Some(value) = headers.get(GITEA_SIGNATURE) {
            let hex_sig = value.to_str().map_err(|_| Refusal::Malformed {
                header: "X-Gitea-Signature",
                expected: "<hex digest>",
            })?;
            return Ok(Credential::Hmac {
                sender: Sender::Gitea,
                header: "X-Gitea-Signature",
                signature: decode_hex(hex_sig, "X-Gitea-Signature")?,
            });
        }
        if let Some(value) = headers.get(GITLAB_TOKEN) {
            return Ok(Credential::Token(value.as_bytes().to_vec()));
        }
        Err(Refusal::Missing)
    }

    /// Whether the credential can only pass with a body: a token is
    /// decided by the headers alone.
    pub fn needs_body(&self) -> bool {
        matches!(self, Credential::Hmac { .. })
    }

    /// Check the credential against the shared secret (constant-time).
    pub fn verify(&self, secret: &[u8], body: &[u8]) -> Result<Sender, Refusal> {
        match self {
            Credential::Hmac {
                sender,
                header,
                signature,
            } => {
                let mut mac = mac(secret);
                mac.update(body);
                // `verify_slice` compares in constant time.
                mac.verify_slice(signature)
                    .map_err(|_| Refusal::Mismatch { header })?;
                Ok(*sender)
            }
            Credential::Token(token) => {
                if bool::from(token.as_slice().ct_eq(secret)) {
                    Ok(Sender::Gitlab)
                } else {
                    Err(Refusal::Mismatch {
                        header: "X-Gitlab-Token",
                    })
                }
            }
        }
    }
}

/// Check a webhook request against the shared secret.
pub fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<Sender, Refusal> {
    Credential::from_headers(headers)?.verify(secret, body)
}

fn decode_hex(hex_sig: &str, header: &'static str) -> Result<Vec<u8>, Refusal> {
    hex::decode(hex_sig.trim()).map_err(|_| Refusal::Malformed {
        header,
        expected: "a hex digest",
    })
}

fn mac(secret: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length")
}

/// The hex HMAC-SHA256 of `body` under `secret`, as GitHub sends it after
/// `sha256=` (used by tests and by anyone scripting a webhook call).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn github_documented_example_verifies() {
        // The example from GitHub's "Validating webhook deliveries" page.
        let expected = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(sign(SECRET, BODY), expected);
        let h = headers(GITHUB_SIGNATURE, &format!("sha256={expected}"));
        assert_eq!(verify(SECRET, &h, BODY), Ok(Sender::HubSignature));
    }

    #[test]
    fn github_bad_signature_or_body_is_refused() {
        let good = sign(SECRET, BODY);
        let h = headers(GITHUB_SIGNATURE, &format!("sha256={good}"));
        assert!(matches!(
            verify(SECRET, &h, b"Hello, World?"),
            Err(Refusal::Mismatch { .. })
        ));
        assert!(matches!(
            verify(b"other secret", &h, BODY),
            Err(Refusal::Mismatch { .. })
        ));
        let h = headers(GITHUB_SIGNATURE, &good);
        assert!(matches!(
            verify(SECRET, &h, BODY),
            Err(Refusal::Malformed { .. })
        ));
        let h = headers(GITHUB_SIGNATURE, "sha256=zz");
        assert!(matches!(
            verify(SECRET, &h, BODY),
            Err(Refusal::Malformed { .. })
        ));
    }

    #[test]
    fn gitea_signature_header_verifies() {
        let h = headers(GITEA_SIGNATURE, &sign(SECRET, BODY));
        assert_eq!(verify(SECRET, &h, BODY), Ok(Sender::Gitea));
        let h = headers(GITEA_SIGNATURE, &sign(b"wrong", BODY));
        assert!(matches!(
            verify(SECRET, &h, BODY),
            Err(Refusal::Mismatch { .. })
        ));
    }

    #[test]
    fn gitlab_token_must_equal_the_secret() {
        let h = headers(GITLAB_TOKEN, "It's a Secret to Everybody");
        assert_eq!(verify(SECRET, &h, BODY), Ok(Sender::Gitlab));
        let h = headers(GITLAB_TOKEN, "It's a Secret to Everybod");
        assert!(matches!(
            verify(SECRET, &h, BODY),
            Err(Refusal::Mismatch { .. })
        ));
    }

    #[test]
    fn credentials_are_read_from_headers_alone() {
        let h = headers(GITLAB_TOKEN, "tok");
        let c = Credential::from_headers(&h).unwrap();
        assert!(!c.needs_body());
        assert_eq!(c, Credential::Token(b"tok".to_vec()));
        let h = headers(GITHUB_SIGNATURE, &format!("sha256={}", sign(SECRET, BODY)));
        let c = Credential::from_headers(&h).unwrap();
        assert!(c.needs_body());
        assert_eq!(c.verify(SECRET, BODY), Ok(Sender::HubSignature));
        let h = headers(GITEA_SIGNATURE, "not hex");
        assert!(matches!(
            Credential::from_headers(&h),
            Err(Refusal::Malformed { .. })
        ));
        assert_eq!(
            Credential::from_headers(&HeaderMap::new()),
            Err(Refusal::Missing)
        );
    }

    #[test]
    fn missing_headers_are_refused() {
        assert_eq!(
            verify(SECRET, &HeaderMap::new(), BODY),
            Err(Refusal::Missing)
        );
    }
}
