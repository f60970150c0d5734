//! Where things are in the YAML text: a map from a field path
//! (`services.web.deploy.replicas`) to the 1-based line of its key (or of
//! the list item), built from yaml-rust2's marked events. Content reached
//! only through an alias or a merge key has no entry; lookups then fall back
//! to the nearest enclosing path that has one. Building it is also where a
//! stack file's nesting depth is checked (before yaml_serde parses it).
use crate::source::nesting::{TooDeep, MAX_DEPTH};
use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// Path -> line index of one YAML document.
#[derive(Debug, Default)]
pub struct LineIndex {
    lines: HashMap<String, usize>,
    /// Lines of `<<` merge keys, in document order.
    merges: Vec<usize>,
}

enum Frame {
    /// A mapping: whether the next scalar is a key, and the current key.
    Map {
        expect_key: bool,
        key: Option<String>,
    },
    /// A sequence and the index of the next item.
    Seq { next: usize },
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    /// Path segments of the containers on the stack (one per frame below the top).
    path: Vec<String>,
    lines: HashMap<String, usize>,
    merges: Vec<usize>,
}

impl Builder {
    /// The path of the node that starts now, or None when it is a key.
    fn enter_node(&mut self, line: usize) -> Option<String> {
        let seg = match self.stack.last_mut() {
            None => return Some(String::new()),
            Some(Frame::Map { expect_key, key }) => {
                if *expect_key {
                    return None;
                }
                *expect_key = true;
                key.clone().unwrap_or_default()
            }
            Some(Frame::Seq { next }) => {
                let s = next.to_string();
                *next += 1;
                self.lines.insert(join(&self.path, &s), line);
                s
            }
        };
        Some(seg)
    }
}

fn join(path: &[String], seg: &str) -> String {
    let mut p = path.join(".");
    if !p.is_empty() {
        p.push('.');
    }
    p.push_str(seg);
    p
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(value, ..) => {
                if let Some(Frame::Map { expect_key, key }) = self.stack.last_mut() {
                    if *expect_key {
                        *expect_key = false;
                        *key = Some(value.clone());
                        if value == "<<" {
                            self.merges.push(line);
                        }
                        let full = join(&self.path, &value);
                        self.lines.entry(full).or_insert(line);
                        return;
                    }
                }
                let in_seq = matches!(self.stack.last(), Some(Frame::Seq { .. }));
                self.enter_node(line);
                // A list of names (`networks: [a, b]`) becomes a mapping
                // keyed by name: let `parent.name` find the item too.
                if in_seq && !value.is_empty() {
                    self.lines.entry(join(&self.path, &value)).or_insert(line);
                }
            }
            Event::Alias(_) => {
                if let Some(Frame::Map {
                    expect_key: true, ..
                }) = self.stack.last()
                {
                    // An aliased key: we cannot name it; treat it as a key.
                    if let Some(Frame::Map { expect_key, key }) = self.stack.last_mut() {
                        *expect_key = false;
                        *key = Some("*alias".to_string());
                    }
                    return;
                }
                self.enter_node(line);
            }
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                let is_map = matches!(ev, Event::MappingStart(..));
                let seg = self.enter_node(line);
                let seg = seg.unwrap_or_else(|| "*complex-key".to_string());
                if !self.stack.is_empty() {
                    self.path.push(seg);
                }
                self.stack.push(if is_map {
                    Frame::Map {
                        expect_key: true,
                        key: None,
                    }
                } else {
                    Frame::Seq { next: 0 }
                });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                if !self.stack.is_empty() {
                    self.path.pop();
                }
                // The container we closed was a value: the parent map now expects a key.
                if let Some(Frame::Map { expect_key, .. }) = self.stack.last_mut() {
                    *expect_key = true;
                }
            }
            _ => {}
        }
    }
}

impl LineIndex {
    /// Index `text`. A text that does not parse yields an empty index
    /// (serde_yaml reports the syntax error with its own line). A text
    /// nesting deeper than [`MAX_DEPTH`] is refused: events are pulled one
    /// by one (yaml-rust2's `load` recurses per level and overflows the
    /// stack on a few KB of `- - - …`), so this is also the depth pre-scan
    /// that runs before the recursive yaml_serde parser.
    pub fn build(text: &str) -> Result<Self, TooDeep> {
        let mut b = Builder::default();
        let mut parser = Parser::new_from_str(text);
        loop {
            let (ev, mark) = match parser.next_token() {
                Ok((Event::StreamEnd, _)) => break,
                Ok(event) => event,
                Err(e) => {
                    crate::source::nesting::flow_limit(&e, MAX_DEPTH)?;
                    return Ok(LineIndex::default());
                }
            };
            if matches!(ev, Event::MappingStart(..) | Event::SequenceStart(..))
                && b.stack.len() >= MAX_DEPTH
            {
                return Err(TooDeep {
                    limit: MAX_DEPTH,
                    line: mark.line(),
                });
            }
            b.on_event(ev, mark);
        }
        Ok(LineIndex {
            lines: b.lines,
            merges: b.merges,
        })
    }

    /// The line of the first `<<` merge key, if any.
    pub fn first_merge(&self) -> Option<usize> {
        self.merges.first().copied()
    }

    /// The line of `path`, or of its nearest ancestor that has one.
    pub fn line_of(&self, path: &[String]) -> Option<usize> {
        (1..=path.len())
            .rev()
            .find_map(|n| self.lines.get(&path[..n].join(".")).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn finds_keys_and_items() {
        let text = "version: '3.8'\nservices:\n  web:\n    image: a\n    ports:\n      - 80\n      - target: 81\n    deploy: {replicas: 2}\n";
        let idx = LineIndex::build(text).unwrap();
        assert_eq!(idx.line_of(&p("version")), Some(1));
        assert_eq!(idx.line_of(&p("services.web")), Some(3));
        assert_eq!(idx.line_of(&p("services.web.image")), Some(4));
        assert_eq!(idx.line_of(&p("services.web.ports.0")), Some(6));
        assert_eq!(idx.line_of(&p("services.web.ports.1.target")), Some(7));
        assert_eq!(idx.line_of(&p("services.web.deploy.replicas")), Some(8));
        assert_eq!(idx.line_of(&p("services.web.nothing.here")), Some(3));
        let idx =
            LineIndex::build("services:\n  web:\n    networks:\n      - a\n      - b\n").unwrap();
        assert_eq!(idx.line_of(&p("services.web.networks.b")), Some(5));
    }

    #[test]
    fn merged_content_falls_back_to_parent() {
        let text = "x: &x\n  image: a\nservices:\n  web:\n    <<: *x\n    command: b\n";
        let idx = LineIndex::build(text).unwrap();
        assert_eq!(idx.line_of(&p("services.web.command")), Some(6));
        assert_eq!(idx.line_of(&p("services.web.image")), Some(4));
    }

    #[test]
    fn deep_nesting_is_refused_on_the_agent_stack() {
        use crate::source::nesting::tests::{deep_block_yaml, on_agent_stack};
        let err = on_agent_stack(|| LineIndex::build(&deep_block_yaml()).map(|_| ())).unwrap_err();
        assert_eq!(err.limit, MAX_DEPTH);
        assert_eq!(err.line, 2);
        let flow = format!("x: {}{}\n", "[".repeat(30_000), "]".repeat(30_000));
        assert!(on_agent_stack(move || LineIndex::build(&flow).is_err()));
        // At the limit itself, the index is built.
        let ok = format!(
            "x: {}{}\n",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(LineIndex::build(&ok).is_ok());
    }
}
