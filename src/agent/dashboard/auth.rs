//! Who may see the dashboard and who may act on it. Reading follows
//! `/status` (open, or the `--status-token-file` token); acting ("sync
//! now") needs the `--ui-token-file` token. A token comes as
//! `Authorization: Bearer`, or once through the sign-in form, which sets a
//! session cookie: `HttpOnly` (scripts cannot read it), `SameSite=Strict`
//! (no other site's page can send it). The cookie holds no token: it is
//! `<grant>.<expiry>.<HMAC-SHA256 keyed by the token>`, so it is checked
//! without server-side sessions, survives an agent restart, is shared by
//! agents with the same token, and dies when the token changes.
use axum::http::{header, HeaderMap};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use subtle::ConstantTimeEq;

/// The session cookie's name.
pub const COOKIE: &str = "shoal_session";
/// How long a sign-in lasts.
pub const SESSION: Duration = Duration::from_secs(12 * 3600);

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    None,
    /// The status token: read.
    Read,
    /// The UI token: read and act.
    Act,
}

impl Grant {
    fn tag(self) -> &'static str {
        match self {
            Grant::None => "none",
            Grant::Read => "read",
            Grant::Act => "act",
        }
    }
}

/// The tokens the agent was started with.
#[derive(Clone, Default)]
pub struct Access {
    pub status_token: Option<Arc<Vec<u8>>>,
    pub ui_token: Option<Arc<Vec<u8>>>,
}

impl Access {
    /// Whether reading needs a token at all.
    pub fn read_is_open(&self) -> bool {
        self.status_token.is_none()
    }

    /// Whether the dashboard has actions (a UI token was given).
    pub fn actions_enabled(&self) -> bool {
        self.ui_token.is_some()
    }

    pub fn can_read(&self, g: Grant) -> bool {
        self.read_is_open() || g >= Grant::Read
    }

    pub fn can_act(&self, g: Grant) -> bool {
        self.actions_enabled() && g == Grant::Act
    }

    /// What a token given in the sign-in form (or as a bearer) grants.
    pub fn grant_of_token(&self, given: &[u8]) -> Grant {
        let is = |t: &Option<Arc<Vec<u8>>>| t.as_ref().is_some_and(|t| bool::from(given.ct_eq(t)));
        if is(&self.ui_token) {
            Grant::Act
        } else if is(&self.status_token) {
            Grant::Read
        } else {
            Grant::None
        }
    }

    /// What the request's bearer token or session cookie grants.
    pub fn grant(&self, headers: &HeaderMap, now: SystemTime) -> Grant {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| bearer_token(v.as_bytes()))
            .map_or(Grant::None, |t| self.grant_of_token(t));
        let cookie = session_cookie(headers).map_or(Grant::None, |c| self.check(c, now));
        bearer.max(cookie)
    }

    fn key(&self, g: Grant) -> Option<&[u8]> {
        match g {
            Grant::Act => self.ui_token.as_deref().map(Vec::as_slice),
            Grant::Read => self.status_token.as_deref().map(Vec::as_slice),
            Grant::None => None,
        }
    }

    /// The session value for `g`, valid until `now + SESSION`.
    pub fn session_value(&self, g: Grant, now: SystemTime) -> Option<String> {
        let expiry = secs(now) + SESSION.as_secs();
        let mac = mac(self.key(g)?, g, expiry);
        Some(format!("{}.{expiry}.{}", g.tag(), hex::encode(mac)))
    }

    /// The grant of a session value, if its MAC holds and it has not
    /// expired.
    pub fn check(&self, value: &str, now: SystemTime) -> Grant {
        let mut parts = value.splitn(3, '.');
        let (Some(tag), Some(expiry), Some(given)) = (parts.next(), parts.next(), parts.next())
        else {
            return Grant::None;
        };
        let g = match tag {
            "act" => Grant::Act,
            "read" => Grant::Read,
            _ => return Grant::None,
        };
        let (Ok(expiry), Ok(given), Some(key)) =
            (expiry.parse::<u64>(), hex::decode(given), self.key(g))
        else {
            return Grant::None;
        };
        if expiry <= secs(now) {
            return Grant::None;
        }
        if bool::from(mac(key, g, expiry).as_slice().ct_eq(&given)) {
            g
        } else {
            Grant::None
        }
    }
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn mac(key: &[u8], g: Grant, expiry: u64) -> Vec<u8> {
    // HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(format!("shoal dashboard session\0{}\0{expiry}", g.tag()).as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer_token(value: &[u8]) -> Option<&[u8]> {
    let space = value.iter().position(|b| *b == b' ')?;
    let (scheme, token) = (&value[..space], value[space..].trim_ascii());
    scheme.eq_ignore_ascii_case(b"bearer").then_some(token)
}

/// The value of our cookie in the request's `Cookie` headers.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

/// `Set-Cookie` for a session (`Secure` when the request came through a
/// TLS proxy that says so, since browsers drop `Secure` cookies on plain
/// http).
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
        SESSION.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that ends the session.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// Whether a state-changing request comes from this site's own pages: a
/// browser says where the request comes from (`Sec-Fetch-Site`, or in
/// older browsers `Origin`); a request from another site is refused even
/// if it could carry the cookie. Clients that send neither (curl with a
/// bearer token) pass.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (get("origin"), get("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn access() -> Access {
        Access {
            status_token: Some(Arc::new(b"read-tok".to_vec())),
            ui_token: Some(Arc::new(b"act-tok".to_vec())),
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn bearer_tokens_grant_what_they_are_for() {
        let a = access();
        let now = SystemTime::now();
        assert_eq!(a.grant(&headers(&[]), now), Grant::None);
        let g = |v: &str| a.grant(&headers(&[("authorization", v)]), now);
        assert_eq!(g("Bearer read-tok"), Grant::Read);
        assert_eq!(g("bearer act-tok"), Grant::Act);
        assert_eq!(g("Bearer act-to"), Grant::None);
        assert_eq!(g("Basic act-tok"), Grant::None);
        assert!(!a.can_read(Grant::None) && a.can_read(Grant::Read));
        assert!(!a.can_act(Grant::Read) && a.can_act(Grant::Act));
        let open = Access::default();
        assert!(open.can_read(Grant::None));
        assert!(!open.can_act(Grant::Act), "no UI token: no actions");
    }

    #[test]
    fn session_cookies_are_signed_expire_and_hold_no_token() {
        let a = access();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let v = a.session_value(Grant::Act, now).unwrap();
        assert!(!v.contains("act-tok"));
        assert_eq!(a.check(&v, now), Grant::Act);
        let cookie = headers(&[("cookie", &format!("theme=dark; {COOKIE}={v}"))]);
        assert_eq!(a.grant(&cookie, now), Grant::Act);
        assert_eq!(a.check(&v, now + SESSION), Grant::None, "expired");
        // Tampering with the grant or the expiry breaks the MAC.
        let forged = v.replacen("act.", "read.", 1);
        assert_eq!(a.check(&forged, now), Grant::None);
        let later = v.replacen(".18", ".19", 1);
        assert_eq!(a.check(&later, now), Grant::None);
        // A new token ends every session.
        let rotated = Access {
            ui_token: Some(Arc::new(b"new".to_vec())),
            ..access()
        };
        assert_eq!(rotated.check(&v, now), Grant::None);
        assert_eq!(a.check("garbage", now), Grant::None);
        let set = set_cookie(&v, false);
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        assert!(!set.contains("Secure") && set_cookie(&v, true).ends_with("; Secure"));
    }

    #[test]
    fn cross_site_posts_are_refused() {
        assert!(same_origin(&headers(&[])));
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:9180"),
            ("host", "127.0.0.1:9180")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "https://evil.example"),
            ("host", "127.0.0.1:9180")
        ])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "same-site")])));
        // A browser's own word wins over an `Origin: null` (privacy modes).
        assert!(same_origin(&headers(&[
            ("sec-fetch-site", "same-origin"),
            ("origin", "null"),
            ("host", "127.0.0.1:9180")
        ])));
        assert!(!same_origin(&headers(&[("origin", "null"), ("host", "h")])));
    }
}
