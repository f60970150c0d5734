//! What the agent shows of an error outside its log: `/status`, `/healthz`
//! and the Swarm state labels are readable by more people than the log, and
//! errors can quote file lines or URLs. Every such text passes through the
//! same [`Redactor`] as the plan output (decrypted values, the agent's own
//! credentials) and loses the user and password of any URL in it.
use crate::secrets::Redactor;
use std::borrow::Cow;
use std::sync::LazyLock;

/// `scheme://userinfo@`: the userinfo runs to the last `@` before the
/// path, query, fragment or whitespace (a password may hold a raw `@`).
static URL_USERINFO: LazyLock<regex::Regex> = LazyLock::new(|| {
    // A constant pattern: it compiles, as the unit tests show.
    regex::Regex::new(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/?#\s@]*(?:@[^/?#\s@]*)*@")
        .expect("URL userinfo pattern")
});

/// `text` without the user and password of any URL in it:
/// `https://ghp_x:y@host/r.git` becomes `https://***@host/r.git`.
/// `source::git::mask_userinfo` prints one known URL by the documented rule
/// (placeholder user names such as `git` stay); here any text is scanned,
/// and since an error may quote any URL, every user name goes.
pub fn url_credentials(text: &str) -> Cow<'_, str> {
    URL_USERINFO.replace_all(text, "$1***@")
}

/// An error text as it may leave the process: registered secrets replaced
/// by `(sensitive)`, URL credentials by `***`. Masking twice changes
/// nothing more.
pub fn error_text(redactor: &Redactor, text: &str) -> String {
    let redacted = redactor.redact(text);
    url_credentials(&redacted).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_userinfo_is_masked_wherever_it_appears() {
        let cases = [
            (
                "fetch https://ghp_abc123@github.com/o/r.git failed",
                "fetch https://***@github.com/o/r.git failed",
            ),
            (
                "a https://user:p4ss@host:8443/x and ssh://git@h/r, http://u:p@ss@h/?q=a@b",
                "a https://***@host:8443/x and ssh://***@h/r, http://***@h/?q=a@b",
            ),
            ("'HTTPS://u:t@h'", "'HTTPS://***@h'"),
            // Nothing to mask: an @ after the path, a mail address, no URL.
            (
                "https://host/p?mail=a@b.c x@y.z",
                "https://host/p?mail=a@b.c x@y.z",
            ),
            ("stack.yml:3: no such file", "stack.yml:3: no such file"),
        ];
        for (input, want) in cases {
            assert_eq!(url_credentials(input), want, "{input}");
        }
    }

    #[test]
    fn error_text_uses_the_redactor_and_masks_urls() {
        let r = Redactor::new();
        r.register("hunter22");
        let e = error_text(&r, "env.env:2: DB_PASSWORD=hunter22 at https://u:tok@h/x");
        assert_eq!(e, "env.env:2: DB_PASSWORD=(sensitive) at https://***@h/x");
        assert_eq!(error_text(&r, &e), e, "masking twice changes nothing");
    }
}
