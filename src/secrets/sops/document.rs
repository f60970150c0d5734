//! The format-neutral value tree SOPS walks (maps keep their order), its
//! conversion from and to YAML, JSON and dotenv, and the decrypting walk
//! that also computes the MAC exactly as SOPS does.
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::cipher::{self, CipherError, ValueType};
use super::metadata::CryptRules;

/// One value of a SOPS document.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
    Str(String),
    /// A decrypted value that is not valid UTF-8 (binary files).
    Bytes(Vec<u8>),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
}

impl Node {
    /// The entry `key` of a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// Why a walk failed. Paths are key paths (`db:password`), never values.
#[derive(Debug, Clone, PartialEq)]
pub enum WalkError {
    /// A value could not be decrypted: its tag does not verify.
    Tampered { path: String },
    /// A value is not a well-formed SOPS value.
    Malformed { path: String, message: String },
    /// A key that SOPS cannot have written (not a string).
    NonStringKey { path: String },
}

/// The result of decrypting the document's branches.
pub struct DecryptedTree {
    pub branches: Vec<Node>,
    /// The MAC SOPS would compute: upper-case hex SHA-512.
    pub mac: String,
    /// Every value that was encrypted, as it will appear in plaintext.
    pub secrets: Vec<Zeroizing<Vec<u8>>>,
}

/// SOPS' `ToBytes`: what a value contributes to the MAC.
fn mac_bytes(node: &Node) -> Vec<u8> {
    match node {
        Node::Str(s) => s.as_bytes().to_vec(),
        Node::Bytes(b) => b.clone(),
        Node::Int(i) => i.to_string().into_bytes(),
        Node::Float(f) => format_go_float(*f).into_bytes(),
        Node::Bool(true) => b"True".to_vec(),
        Node::Bool(false) => b"False".to_vec(),
        Node::Null | Node::Map(_) | Node::List(_) => Vec::new(),
    }
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`: shortest round-trip digits,
/// never an exponent. Rust's `Display` for f64 prints the same digits.
fn format_go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{f}")
    }
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Turns decrypted bytes into the typed value SOPS' cipher returns.
fn typed(plain: Vec<u8>, value_type: ValueType, path: &str) -> Result<Node, WalkError> {
    let bad = |what: &str| WalkError::Malformed {
        path: path.to_string(),
        message: format!("decrypted value is not a valid {what}"),
    };
    let text = || std::str::from_utf8(&plain).map_err(|_| bad("UTF-8 text"));
    Ok(match value_type {
        ValueType::Str | ValueType::Bytes | ValueType::Comment => match String::from_utf8(plain) {
            Ok(s) => Node::Str(s),
            Err(e) => Node::Bytes(e.into_bytes()),
        },
        ValueType::Time => Node::Str(text()?.to_string()),
        ValueType::Int => Node::Int(text()?.parse().map_err(|_| bad("integer"))?),
        ValueType::Float => Node::Float(text()?.parse().map_err(|_| bad("float"))?),
        ValueType::Bool => Node::Bool(parse_go_bool(text()?).ok_or_else(|| bad("boolean"))?),
    })
}

struct Walker<'a> {
    key: &'a [u8; 32],
    rules: &'a CryptRules,
    mac_only_encrypted: bool,
    hash: Sha512,
    secrets: Vec<Zeroizing<Vec<u8>>>,
}

/// Bytes SOPS prepends to the MAC when `mac_only_encrypted` is set.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

impl Walker<'_> {
    fn walk(&mut self, node: Node, path: &mut Vec<String>) -> Result<Node, WalkError> {
        match node {
            Node::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    path.push(key);
                    let value = self.walk(value, path)?;
                    let key = path.pop().unwrap_or_default();
                    out.push((key, value));
                }
                Ok(Node::Map(out))
            }
            // List items share their parent's path, as in SOPS.
            Node::List(items) => Ok(Node::List(
                items
                    .into_iter()
                    .map(|item| self.walk(item, path))
                    .collect::<Result<_, _>>()?,
            )),
            // SOPS does not walk null values: not decrypted, not in the MAC.
            Node::Null => Ok(Node::Null),
            leaf => self.leaf(leaf, path),
        }
    }

    fn leaf(&mut self, leaf: Node, path: &[String]) -> Result<Node, WalkError> {
        let encrypted = self.rules.should_encrypt(path);
        let aad = format!("{}:", path.join(":"));
        let value = if encrypted {
            match leaf {
                // SOPS leaves empty values empty.
                Node::Str(s) if s.is_empty() => Node::Str(s),
                Node::Str(s) => {
                    let (plain, value_type) =
                        cipher::decrypt(&s, self.key, &aad).map_err(|e| match e {
                            CipherError::Authentication => WalkError::Tampered {
                                path: path.join(":"),
                            },
                            CipherError::Malformed(message) => WalkError::Malformed {
                                path: path.join(":"),
                                message,
                            },
                        })?;
                    let node = typed(plain, value_type, &path.join(":"))?;
                    if !matches!(node, Node::Bool(_)) {
                        self.secrets.push(Zeroizing::new(mac_bytes(&node)));
                    }
                    node
                }
                _ => {
                    return Err(WalkError::Malformed {
                        path: path.join(":"),
                        message: "expected an encrypted value (ENC[…]), found a plain one".into(),
                    })
                }
            }
        } else {
            leaf
        };
        if !self.mac_only_encrypted || encrypted {
            self.hash.update(mac_bytes(&value));
        }
        Ok(value)
    }
}

/// Decrypts every branch (YAML documents; one for other formats) with the
/// data key, and computes the MAC over the plaintext values in order.
pub fn decrypt_branches(
    branches: Vec<Node>,
    key: &[u8; 32],
    rules: &CryptRules,
    mac_only_encrypted: bool,
) -> Result<DecryptedTree, WalkError> {
    let mut walker = Walker {
        key,
        rules,
        mac_only_encrypted,
        hash: Sha512::new(),
        secrets: Vec::new(),
    };
    if mac_only_encrypted {
        walker.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut out = Vec::with_capacity(branches.len());
    for branch in branches {
        out.push(walker.walk(branch, &mut Vec::new())?);
    }
    Ok(DecryptedTree {
        branches: out,
        mac: hex::encode_upper(walker.hash.finalize()),
        secrets: walker.secrets,
    })
}

// ---- conversions -------------------------------------------------------

/// A YAML value as SOPS' YAML store sees it.
pub fn from_yaml(value: serde_yaml::Value, path: &str) -> Result<Node, WalkError> {
    use serde_yaml::Value as Y;
    Ok(match value {
        Y::Null => Node::Null,
        Y::Bool(b) => Node::Bool(b),
        Y::Number(n) => match n.as_i64() {
            Some(i) => Node::Int(i),
            None => Node::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Y::String(s) => Node::Str(s),
        Y::Sequence(items) => Node::List(
            items
                .into_iter()
                .map(|v| from_yaml(v, path))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    _ => {
                        return Err(WalkError::NonStringKey {
                            path: path.to_string(),
                        })
                    }
                };
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}:{key}")
                };
                let v = from_yaml(v, &child)?;
                entries.push((key, v));
            }
            Node::Map(entries)
        }
        Y::Tagged(tagged) => from_yaml(tagged.value, path)?,
    })
}

/// A float with no fractional part, as Go's encoders print it (`100`, not
/// `100.0`): what `sops -d` writes for it.
fn integral(f: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
                                                // The range check makes the cast exact.
    (f.is_finite() && f.fract() == 0.0 && f.abs() <= EXACT).then_some(f as i64)
}

/// A decrypted value as YAML.
pub fn to_yaml(node: &Node) -> serde_yaml::Value {
    use serde_yaml::Value as Y;
    match node {
        Node::Map(entries) => Y::Mapping(
            entries
                .iter()
                .map(|(k, v)| (Y::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
        Node::List(items) => Y::Sequence(items.iter().map(to_yaml).collect()),
        Node::Str(s) => Y::String(s.clone()),
        Node::Bytes(b) => Y::String(String::from_utf8_lossy(b).into_owned()),
        Node::Int(i) => Y::Number((*i).into()),
        Node::Float(f) => match integral(*f) {
            Some(i) => Y::Number(i.into()),
            None => Y::Number((*f).into()),
        },
        Node::Bool(b) => Y::Bool(*b),
        Node::Null => Y::Null,
    }
}

/// A JSON value as SOPS' JSON store sees it (integers within i64 stay
/// integers, other numbers are floats).
pub fn from_json(value: serde_json::Value) -> Node {
    use serde_json::Value as J;
    match value {
        J::Null => Node::Null,
        J::Bool(b) => Node::Bool(b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Node::Int(i),
            None => Node::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Node::Str(s),
        J::Array(items) => Node::List(items.into_iter().map(from_json).collect()),
        J::Object(map) => Node::Map(map.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

/// A decrypted value as JSON.
pub fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match node {
        Node::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
        Node::List(items) => J::Array(items.iter().map(to_json).collect()),
        Node::Str(s) => J::String(s.clone()),
        Node::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Node::Int(i) => J::Number((*i).into()),
        Node::Float(f) => match integral(*f) {
            Some(i) => J::Number(i.into()),
            None => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        },
        Node::Bool(b) => J::Bool(*b),
        Node::Null => J::Null,
    }
}

/// A dotenv file as SOPS' dotenv store reads it: `KEY=value` lines (`\n`
/// in a value is a newline), `#` comments (dropped here: SOPS leaves them
/// out of the MAC), blank lines skipped. Returns the entries in order.
pub fn parse_dotenv(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut entries = Vec::new();
    for (number, line) in text.split('\n').enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected KEY=value", number + 1))?;
        entries.push((key.to_string(), value.replace("\\n", "\n")));
    }
    Ok(entries)
}

/// Decrypted dotenv entries as SOPS prints them (`KEY=value`, newlines
/// escaped as `\n`).
pub fn emit_dotenv(entries: &[(String, Node)]) -> Vec<u8> {
    let mut out = String::new();
    for (key, value) in entries {
        let text = match value {
            Node::Str(s) => s.replace('\n', "\\n"),
            Node::Bytes(b) => String::from_utf8_lossy(b).replace('\n', "\\n"),
            other => String::from_utf8_lossy(&mac_bytes(other)).into_owned(),
        };
        out.push_str(key);
        out.push('=');
        out.push_str(&text);
        out.push('\n');
    }
    out.into_bytes()
}

/// SOPS' un-flattening of dotenv metadata keys (`age__list_0__map_enc`).
/// A key may nest at most [`crate::source::nesting::MAX_DEPTH`] levels (SOPS'
/// own deepest is 5, `key_groups__list_0__map_age__list_0__map_enc`): the
/// tree built here is converted and dropped recursively, and a 70 KB
/// `stack.sops.env` could otherwise nest ten thousand deep.
pub fn unflatten(entries: Vec<(String, Node)>) -> Result<Node, String> {
    let mut root = FlatSlot::default();
    for (key, value) in entries {
        let mut slot = &mut root;
        let tokens = flat_key_tokens(&key);
        if tokens.len() > crate::source::nesting::MAX_DEPTH {
            return Err(format!(
                "metadata key sops_{}… nests {} levels, deeper than the limit of {}",
                key.chars().take(40).collect::<String>(),
                tokens.len(),
                crate::source::nesting::MAX_DEPTH
            ));
        }
        for token in tokens {
            slot = match token {
                Ok(k) => slot.keys.entry(k).or_default(),
                Err(i) => slot.indices.entry(i).or_default(),
            };
        }
        if slot.value.replace(value).is_some() {
            return Err(format!("duplicate metadata key sops_{key}"));
        }
    }
    flat_slot_node(root)
}

/// One place in the tree [`unflatten`] builds: a value, map keys or list
/// indices (more than one of them is a conflict).
#[derive(Default)]
struct FlatSlot {
    value: Option<Node>,
    keys: std::collections::BTreeMap<String, FlatSlot>,
    indices: std::collections::BTreeMap<usize, FlatSlot>,
}

/// The path a flattened key names: `Ok(map key)` or `Err(list index)` per
/// level (`a__list_0__map_b` -> `a`, 0, `b`); an index that is not a
/// number reads as 0, as in SOPS.
fn flat_key_tokens(key: &str) -> Vec<Result<String, usize>> {
    let mut out = Vec::new();
    let mut rest = key;
    let mut current_is_list = false;
    loop {
        let next_map = rest.find("__map_");
        let next_list = rest.find("__list_");
        let (cut, sep_len, next_is_list) = match (next_map, next_list) {
            (Some(m), Some(l)) if l < m => (l, 7, true),
            (Some(m), _) => (m, 6, false),
            (None, Some(l)) => (l, 7, true),
            (None, None) => (rest.len(), 0, false),
        };
        let token = &rest[..cut];
        out.push(if current_is_list {
            token.parse::<usize>().map_err(|_| 0).and_then(Err)
        } else {
            Ok(token.to_string())
        });
        if sep_len == 0 {
            return out;
        }
        rest = &rest[cut + sep_len..];
        current_is_list = next_is_list;
    }
}

/// A filled slot as a node: its value, a list (indices 0..n, none
/// missing) or a map.
fn flat_slot_node(slot: FlatSlot) -> Result<Node, String> {
    let kinds = usize::from(slot.value.is_some())
        + usize::from(!slot.keys.is_empty())
        + usize::from(!slot.indices.is_empty());
    if kinds > 1 {
        return Err("conflicting flattened metadata keys".into());
    }
    if let Some(v) = slot.value {
        return Ok(v);
    }
    if !slot.indices.is_empty() {
        let n = slot.indices.len();
        if slot.indices.keys().copied().ne(0..n) {
            return Err("incomplete flattened metadata list".into());
        }
        return Ok(Node::List(
            slot.indices
                .into_values()
                .map(flat_slot_node)
                .collect::<Result<_, _>>()?,
        ));
    }
    Ok(Node::Map(
        slot.keys
            .into_iter()
            .map(|(k, v)| flat_slot_node(v).map(|v| (k, v)))
            .collect::<Result<_, _>>()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_float_formatting_matches_sops() {
        assert_eq!(format_go_float(0.75), "0.75");
        assert_eq!(format_go_float(1.0), "1");
        assert_eq!(format_go_float(1e21), "1000000000000000000000");
        assert_eq!(format_go_float(1e-7), "0.0000001");
    }

    #[test]
    fn flat_key_tokens_split_map_and_list_levels() {
        assert_eq!(flat_key_tokens("mac"), vec![Ok("mac".to_string())]);
        assert_eq!(
            flat_key_tokens("age__list_0__map_enc"),
            vec![Ok("age".to_string()), Err(0), Ok("enc".to_string())]
        );
        assert_eq!(
            flat_key_tokens("key_groups__list_1__map_age__list_12__map_recipient"),
            vec![
                Ok("key_groups".to_string()),
                Err(1),
                Ok("age".to_string()),
                Err(12),
                Ok("recipient".to_string())
            ]
        );
        // An index that is not a number reads as 0.
        assert_eq!(
            flat_key_tokens("a__list_x"),
            vec![Ok("a".to_string()), Err(0)]
        );
    }

    #[test]
    fn unflattens_dotenv_metadata_keys() {
        let node = unflatten(vec![
            ("age__list_0__map_enc".into(), Node::Str("E0".into())),
            ("age__list_0__map_recipient".into(), Node::Str("R0".into())),
            ("age__list_1__map_enc".into(), Node::Str("E1".into())),
            ("mac".into(), Node::Str("M".into())),
        ])
        .unwrap();
        let age = node.get("age").unwrap();
        let Node::List(items) = age else {
            panic!("age is not a list: {age:?}")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].get("recipient").and_then(Node::as_str), Some("R0"));
        assert_eq!(items[1].get("enc").and_then(Node::as_str), Some("E1"));
        assert_eq!(node.get("mac").and_then(Node::as_str), Some("M"));
        assert!(unflatten(vec![("a__list_1".into(), Node::Null)]).is_err());
    }

    #[test]
    fn deeply_nested_metadata_keys_are_refused_on_the_agent_stack() {
        use crate::source::nesting::tests::on_agent_stack;
        let key = format!("x{}", "__map_x".repeat(10_000));
        let err = on_agent_stack(move || unflatten(vec![(key, Node::Str("1".into()))]).map(|_| ()))
            .unwrap_err();
        assert!(err.contains("deeper than the limit of 64"), "{err}");
        // SOPS' own deepest key still unflattens.
        let ok = unflatten(vec![(
            "key_groups__list_0__map_age__list_0__map_enc".into(),
            Node::Str("E".into()),
        )]);
        assert!(ok.is_ok());
    }

    #[test]
    fn dotenv_lines_parse_like_sops() {
        let entries = parse_dotenv("A=1\n#c\n\nB=x=y\\nz\n").unwrap();
        assert_eq!(
            entries,
            vec![("A".into(), "1".into()), ("B".into(), "x=y\nz".into())]
        );
        assert!(parse_dotenv("novalue\n").is_err());
    }
}
