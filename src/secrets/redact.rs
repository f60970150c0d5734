//! Keeps decrypted values out of text: every value registered is replaced
//! by `(sensitive)` wherever it appears in a plan, a message or a log line.
//!
//! Short values: a value shorter than [`MIN_SECRET_LEN`] characters is not
//! replaced inside text (masking every `ab` or `1` in a log would mangle
//! it and tell a reader the secret), but it is still masked where it
//! stands as a whole field value: a plan field whose value is exactly a
//! registered value (any length) is shown as sensitive
//! ([`Redactor::mark_sensitive`]). A field is also sensitive by its name
//! (`DB_PASS`, see `secrets::names`), whatever its value's length.
use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};

/// What a registered value is replaced with.
pub const REDACTED: &str = "(sensitive)";
/// Values shorter than this are not redacted (they would mangle ordinary text).
pub const MIN_SECRET_LEN: usize = 4;

#[derive(Default)]
struct Inner {
    values: BTreeSet<String>,
    matcher: Option<AhoCorasick>,
    /// Every registered value as given and trimmed, of any length, for
    /// whole-value matches ([`Redactor::is_registered`]).
    whole: BTreeSet<String>,
}

/// A shared set of sensitive values. Clones share the set.
#[derive(Clone, Default)]
pub struct Redactor {
    inner: Arc<RwLock<Inner>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("values", &self.len())
            .finish()
    }
}

/// The forms a value can take in text: as is, without surrounding
/// whitespace, JSON- and Rust-escaped, and each of its lines.
fn forms(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string(), value.trim().to_string()];
    if let Ok(json) = serde_json::to_string(value) {
        out.push(json[1..json.len() - 1].to_string());
    }
    out.push(value.escape_debug().to_string());
    if value.contains('\n') {
        out.extend(value.lines().map(|l| l.trim().to_string()));
    }
    out.retain(|f| f.chars().count() >= MIN_SECRET_LEN);
    out
}

impl Redactor {
    pub fn new() -> Redactor {
        Redactor::default()
    }

    /// Registers a sensitive value (and its escaped forms).
    pub fn register(&self, value: &str) {
        self.insert_whole(value);
        self.insert(forms(value));
    }

    fn insert_whole(&self, value: &str) {
        let mut inner = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for v in [value, value.trim()] {
            if !v.is_empty() && !inner.whole.contains(v) {
                inner.whole.insert(v.to_string());
            }
        }
    }

    /// Whether `value` as a whole is a registered value (of any length).
    pub fn is_registered(&self, value: &str) -> bool {
        let inner = match self.inner.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        !value.is_empty() && (inner.whole.contains(value) || inner.whole.contains(value.trim()))
    }

    /// Marks every field of `plan` sensitive whose value (or a string in
    /// it) is exactly a registered value, so a short secret too is shown
    /// as `(sensitive)` where it stands on its own.
    pub fn mark_sensitive(&self, plan: &mut crate::model::Plan) {
        fn holds(r: &Redactor, v: &serde_json::Value) -> bool {
            use serde_json::Value as J;
            match v {
                J::String(s) => r.is_registered(s),
                J::Array(items) => items.iter().any(|i| holds(r, i)),
                J::Object(map) => map.values().any(|i| holds(r, i)),
                _ => false,
            }
        }
        for change in &mut plan.changes {
            for field in &mut change.diff {
                if !field.sensitive && (holds(self, &field.before) || holds(self, &field.after)) {
                    field.sensitive = true;
                }
            }
        }
    }

    /// Registers a whole decrypted file exactly as it is and base64-encoded
    /// (the form a secret's data takes in Engine API specs), without the
    /// per-line forms [`Redactor::register`] adds: its lines are `KEY=value`
    /// or YAML whose values are registered one by one.
    pub fn register_whole(&self, content: &[u8]) {
        use base64::Engine as _;
        let mut new = vec![base64::engine::general_purpose::STANDARD.encode(content)];
        if let Ok(text) = std::str::from_utf8(content) {
            new.push(text.to_string());
        }
        new.retain(|f| f.chars().count() >= MIN_SECRET_LEN);
        self.insert(new);
    }

    fn insert(&self, new: Vec<String>) {
        let mut inner = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let before = inner.values.len();
        inner.values.extend(new);
        if inner.values.len() != before {
            inner.matcher = AhoCorasick::builder()
                .match_kind(MatchKind::LeftmostLongest)
                .build(inner.values.iter())
                .ok();
        }
    }

    /// Registers a value given as bytes: its UTF-8 text, or for binary data
    /// each readable run of it.
    pub fn register_bytes(&self, value: &[u8]) {
        match std::str::from_utf8(value) {
            Ok(text) => self.register(text),
            Err(_) => {
                let text = String::from_utf8_lossy(value);
                let binary = |c: char| c == '\u{FFFD}' || (c.is_control() && !"\n\r\t".contains(c));
                for run in text.split(binary) {
                    self.register(run);
                }
            }
        }
    }

    /// How many forms are registered.
    pub fn len(&self) -> usize {
        self.inner.read().map(|i| i.values.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `text` with every registered value replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let inner = match self.inner.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match &inner.matcher {
            Some(matcher) => matcher.replace_all(text, &vec![REDACTED; inner.values.len()]),
            None => text.to_string(),
        }
    }

    /// Redacts every string (and object key) of a JSON value in place.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value as J;
        match value {
            J::String(s) => *s = self.redact(s),
            J::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            J::Object(map) => {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    self.redact_json(&mut v);
                    map.insert(self.redact(&k), v);
                }
            }
            _ => {}
        }
    }

    /// A `tracing_subscriber` writer factory that redacts every log line
    /// written through `make_writer`.
    pub fn make_writer<M>(&self, make_writer: M) -> RedactingMakeWriter<M> {
        RedactingMakeWriter {
            inner: make_writer,
            redactor: self.clone(),
        }
    }
}

/// Wraps a [`tracing_subscriber::fmt::MakeWriter`]: each event is buffered
/// and redacted before it reaches the real writer.
///
/// ```ignore
/// tracing_subscriber::fmt().with_writer(redactor.make_writer(std::io::stderr)).init();
/// ```
#[derive(Clone, Debug)]
pub struct RedactingMakeWriter<M> {
    inner: M,
    redactor: Redactor,
}

impl<'a, M> tracing_subscriber::fmt::MakeWriter<'a> for RedactingMakeWriter<M>
where
    M: tracing_subscriber::fmt::MakeWriter<'a>,
{
    type Writer = RedactingWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer(), self.redactor.clone())
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        RedactingWriter::new(self.inner.make_writer_for(meta), self.redactor.clone())
    }
}

/// A writer that buffers what it is given and writes it redacted on
/// `flush` or drop (tracing writes one event per writer).
pub struct RedactingWriter<W: Write> {
    inner: W,
    buffer: Vec<u8>,
    redactor: Redactor,
}

impl<W: Write> RedactingWriter<W> {
    pub fn new(inner: W, redactor: Redactor) -> Self {
        RedactingWriter {
            inner,
            buffer: Vec::new(),
            redactor,
        }
    }

    fn forward(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buffer);
        let redacted = self.redactor.redact(&text);
        self.buffer.clear();
        self.inner.write_all(redacted.as_bytes())
    }
}

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.forward()?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for RedactingWriter<W> {
    fn drop(&mut self) {
        // Nowhere to report an I/O error from drop; the line is lost as it
        // would be with the plain writer.
        let _ = self.forward();
        let _ = self.inner.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_registered_values_everywhere_and_keeps_short_ones() {
        let r = Redactor::new();
        r.register("hunter22");
        r.register("abc");
        let clone = r.clone();
        clone.register("multi\nline-secret");
        assert_eq!(
            r.redact("pw=hunter22 abc x=hunter22"),
            "pw=(sensitive) abc x=(sensitive)"
        );
        assert_eq!(
            r.redact(r#"{"v":"multi\nline-secret"}"#),
            r#"{"v":"(sensitive)"}"#
        );
        assert_eq!(r.redact("only line-secret here"), "only (sensitive) here");
    }

    #[test]
    fn short_values_are_masked_as_whole_field_values_only() {
        use crate::model::{Action, Change, FieldChange, Plan};
        use serde_json::json;
        let r = Redactor::new();
        r.register("ab");
        r.register("long-secret-1");
        // In text, a short value is left alone.
        assert_eq!(r.redact("tab ab"), "tab ab");
        assert!(r.is_registered("ab"));
        assert!(r.is_registered(" ab\n"));
        assert!(!r.is_registered("abc"));
        assert!(!r.is_registered(""));
        let field = |path: &str, after: serde_json::Value| FieldChange {
            path: path.into(),
            before: serde_json::Value::Null,
            after,
            sensitive: false,
        };
        let mut plan = Plan::default();
        plan.changes.push(Change {
            action: Action::Create,
            kind: crate::model::Kind::Service,
            name: "s_app".into(),
            stack: "s".into(),
            diff: vec![
                field("TaskTemplate.ContainerSpec.Env[DB]", json!("ab")),
                field("TaskTemplate.ContainerSpec.Args", json!(["-p", "ab"])),
                field(
                    "TaskTemplate.ContainerSpec.Env[URL]",
                    json!("http://ab.example"),
                ),
                field("TaskTemplate.ContainerSpec.Env[L]", json!("long-secret-1")),
                field("Mode.Replicated.Replicas", json!(2)),
            ],
            desired: None,
            live_id: None,
            live_version: None,
        });
        r.mark_sensitive(&mut plan);
        let sensitive: Vec<bool> = plan.changes[0].diff.iter().map(|f| f.sensitive).collect();
        assert_eq!(sensitive, [true, true, false, true, false]);
    }

    #[test]
    fn longest_value_wins() {
        let r = Redactor::new();
        r.register("secret");
        r.register("secret-longer");
        assert_eq!(r.redact("a secret-longer b"), "a (sensitive) b");
    }

    #[test]
    fn json_values_are_redacted_in_place() {
        let r = Redactor::new();
        r.register("p@ss\"word");
        let mut v = serde_json::json!({"env": ["X=p@ss\"word"], "n": 1});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"env": ["X=(sensitive)"], "n": 1}));
    }

    #[test]
    fn writer_redacts_on_flush_and_drop() {
        let r = Redactor::new();
        r.register("tok-1234");
        let mut sink = Vec::new();
        {
            let mut w = RedactingWriter::new(&mut sink, r.clone());
            w.write_all(b"token tok-").unwrap();
            w.write_all(b"1234 used\n").unwrap();
        }
        assert_eq!(String::from_utf8(sink).unwrap(), "token (sensitive) used\n");
    }

    #[test]
    fn tracing_events_are_redacted() {
        use std::sync::Mutex;
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let r = Redactor::new();
        r.register("db-pass-9876");
        let sink = Sink::default();
        let s2 = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(r.make_writer(move || s2.clone()))
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(value = "db-pass-9876", "connecting with db-pass-9876");
        });
        let out = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(out.contains("connecting with (sensitive)"), "{out}");
        assert!(!out.contains("db-pass-9876"), "{out}");
    }
}
