//! Many swarms from one repository: `clusters/<name>/cluster.yml` says
//! which swarm a cluster is, which shared stacks of `stacks/` it runs and
//! its variables; `clusters/<name>/stacks/` holds the stacks only it runs.
//! A repository without `clusters/` is the single-swarm layout.
use super::{discover_in, SourceError, StackEntry, Tree, MAX_FILE_BYTES};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The folder that holds one folder per cluster.
pub const CLUSTERS_DIR: &str = "clusters";

/// The file that makes a folder of `clusters/` a cluster.
pub const CLUSTER_FILE: &str = "cluster.yml";

/// The most clusters one repository may describe, and the most shared
/// stacks or variables one `cluster.yml` may list: far above any real
/// repository, low enough that a hostile one cannot make a run plan
/// thousands of swarms.
pub const MAX_CLUSTERS: usize = 256;
const MAX_LIST: usize = 1024;

/// How a repository is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// `stacks/` at the root, one swarm.
    Single,
    /// `clusters/<name>/cluster.yml`, sorted by name.
    Clusters(Vec<Cluster>),
}

impl Layout {
    /// The cluster names, for messages.
    pub fn names(&self) -> Vec<&str> {
        match self {
            Layout::Single => Vec::new(),
            Layout::Clusters(c) => c.iter().map(|c| c.name.as_str()).collect(),
        }
    }
}

/// One swarm of a multi-cluster repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    pub name: String,
    /// The CLI's way to the swarm.
    pub engine: ClusterEngine,
    /// Shared stacks (folders of `stacks/`) this cluster runs.
    pub stacks: Vec<String>,
    /// Interpolation variables of this cluster's stacks.
    pub env: BTreeMap<String, String>,
}

impl Cluster {
    /// `clusters/<name>`
    pub fn dir(&self) -> String {
        format!("{CLUSTERS_DIR}/{}", self.name)
    }
    /// `clusters/<name>/cluster.yml`
    pub fn file(&self) -> String {
        format!("{}/{CLUSTER_FILE}", self.dir())
    }
}

/// `engine:` of `cluster.yml`: exactly one of a docker context or a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEngine {
    Context(String),
    /// Any `-H` value (`ssh://...`, `tcp://...`, `unix://...`).
    Host(String),
}

impl std::fmt::Display for ClusterEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterEngine::Context(c) => write!(f, "context {c}"),
            ClusterEngine::Host(h) => write!(f, "{h}"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    engine: Option<EngineFile>,
    #[serde(default)]
    stacks: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineFile {
    context: Option<String>,
    host: Option<String>,
}

fn invalid(path: &str, message: impl std::fmt::Display) -> SourceError {
    SourceError::Io {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// Whether `name` can name a cluster (as a stack): 1 to 63 ASCII letters,
/// digits, `-` and `_`, starting with a letter or digit.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

const NAME_RULE: &str = "1 to 63 letters, digits, '-' or '_', starting with a letter or digit";

/// Read the layout of `tree`: [`Layout::Single`] without a `clusters/`
/// folder, else every `clusters/<name>/cluster.yml`, checked. Files
/// directly in `clusters/` (a README) are skipped; a folder without
/// `cluster.yml` is an error, as a stack folder without a stack file.
pub fn discover_layout(tree: &dyn Tree) -> Result<Layout, SourceError> {
    let names = tree.list(CLUSTERS_DIR)?;
    // No folder (or an empty one, which git does not even keep).
    if names.is_empty() {
        return Ok(Layout::Single);
    }
    let mut clusters = Vec::new();
    for name in names {
        let dir = format!("{CLUSTERS_DIR}/{name}");
        if tree.is_file(&dir) {
            continue;
        }
        if !valid_name(&name) {
            return Err(invalid(
                &dir,
                format!("{name:?} is not a valid cluster name; expected {NAME_RULE}"),
            ));
        }
        if clusters.len() == MAX_CLUSTERS {
            return Err(invalid(
                CLUSTERS_DIR,
                format!("more than {MAX_CLUSTERS} clusters; shoal reads at most {MAX_CLUSTERS}"),
            ));
        }
        clusters.push(read_cluster(tree, &name)?);
    }
    if clusters.is_empty() {
        return Err(invalid(
            CLUSTERS_DIR,
            format!(
                "holds no cluster; add clusters/<name>/{CLUSTER_FILE}, or remove clusters/ \
                 for the single-swarm layout (stacks/ at the root)"
            ),
        ));
    }
    Ok(Layout::Clusters(clusters))
}

/// Read and check `clusters/<name>/cluster.yml`.
fn read_cluster(tree: &dyn Tree, name: &str) -> Result<Cluster, SourceError> {
    let path = format!("{CLUSTERS_DIR}/{name}/{CLUSTER_FILE}");
    let listed = tree
        .list(&format!("{CLUSTERS_DIR}/{name}"))?
        .iter()
        .any(|n| n == CLUSTER_FILE);
    if !listed {
        return Err(invalid(
            &format!("{CLUSTERS_DIR}/{name}"),
            format!("no {CLUSTER_FILE}; every folder of clusters/ is a cluster and needs one"),
        ));
    }
    // Read through the tree: bounded by MAX_FILE_BYTES, never a link.
    let bytes = tree.read(&path)?;
    debug_assert!(bytes.len() as u64 <= MAX_FILE_BYTES);
    let text = String::from_utf8(bytes).map_err(|_| invalid(&path, "is not UTF-8 text"))?;
    parse_cluster(&path, name, &text)
}

/// Parse the text of `cluster.yml` of cluster `name` (`path` for errors).
pub fn parse_cluster(path: &str, name: &str, text: &str) -> Result<Cluster, SourceError> {
    let file: ClusterFile = serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        SourceError::Io {
            path: format!("{path}{at}"),
            message: format!(
                "{}; expected `engine: {{context: NAME}}` or `engine: {{host: URL}}`, \
                 optional `stacks: [..]` and `env: {{NAME: value}}`",
                strip_location(&e.to_string())
            ),
        }
    })?;
    let engine = engine_of(path, file.engine)?;
    if file.stacks.len() > MAX_LIST || file.env.len() > MAX_LIST {
        return Err(invalid(
            path,
            format!("stacks or env: more than {MAX_LIST} entries"),
        ));
    }
    let stacks = stacks_of(path, file.stacks)?;
    let env = env_of(path, file.env)?;
    Ok(Cluster {
        name: name.to_string(),
        engine,
        stacks,
        env,
    })
}

/// `engine:` of `cluster.yml`: exactly one non-empty context or host.
fn engine_of(path: &str, engine: Option<EngineFile>) -> Result<ClusterEngine, SourceError> {
    Ok(match engine {
        None => {
            return Err(invalid(
                path,
                "engine: missing; give `engine: {context: NAME}` (a docker context) or \
                 `engine: {host: URL}` (ssh://, tcp://, unix://)",
            ))
        }
        Some(EngineFile {
            context: Some(_),
            host: Some(_),
        }) => {
            return Err(invalid(
                path,
                "engine: has both context and host; give exactly one",
            ))
        }
        Some(EngineFile {
            context: Some(c), ..
        }) if !c.trim().is_empty() => ClusterEngine::Context(c),
        Some(EngineFile { host: Some(h), .. }) if !h.trim().is_empty() => {
            if !["unix://", "tcp://", "ssh://"]
                .iter()
                .any(|s| h.starts_with(s))
            {
                return Err(invalid(
                    path,
                    format!("engine.host: {h:?} is not an engine URL; expected ssh://[user@]host[:port], tcp://host:port or unix:///path"),
                ));
            }
            ClusterEngine::Host(h)
        }
        Some(_) => {
            return Err(invalid(
                path,
                "engine: needs a non-empty context (a docker context name) or host (an engine URL)",
            ))
        }
    })
}

/// `stacks:` of `cluster.yml`: stack folder names, each once.
fn stacks_of(path: &str, listed: Vec<String>) -> Result<Vec<String>, SourceError> {
    let mut stacks: Vec<String> = Vec::new();
    for (i, stack) in listed.into_iter().enumerate() {
        if !valid_name(&stack) || stack == "_shared" {
            return Err(invalid(
                path,
                format!("stacks[{i}]: {stack:?} is not a stack folder name; expected {NAME_RULE}"),
            ));
        }
        if stacks.contains(&stack) {
            return Err(invalid(
                path,
                format!("stacks[{i}]: {stack} is listed twice"),
            ));
        }
        stacks.push(stack);
    }
    Ok(stacks)
}

/// `env:` of `cluster.yml`: variable names to scalar values, as text.
fn env_of(
    path: &str,
    listed: BTreeMap<String, serde_yaml::Value>,
) -> Result<BTreeMap<String, String>, SourceError> {
    let mut env = BTreeMap::new();
    for (key, value) in listed {
        let valid_key = key
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(invalid(
                path,
                format!("env.{key}: not a variable name; expected letters, digits and '_', not starting with a digit"),
            ));
        }
        let value = match value {
            serde_yaml::Value::String(s) => s,
            serde_yaml::Value::Number(n) => n.to_string(),
            serde_yaml::Value::Bool(b) => b.to_string(),
            other => {
                return Err(invalid(
                    path,
                    format!(
                        "env.{key}: expected a string, number or boolean, found {}",
                        yaml_kind(&other)
                    ),
                ))
            }
        };
        env.insert(key, value);
    }
    Ok(env)
}

fn yaml_kind(v: &serde_yaml::Value) -> &'static str {
    match v {
        serde_yaml::Value::Null => "nothing (null)",
        serde_yaml::Value::Sequence(_) => "a list",
        serde_yaml::Value::Mapping(_) => "a mapping",
        _ => "a tagged value",
    }
}

/// serde_yaml appends ` at line L column C`; the path carries it already.
fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The stacks of `cluster`: its own (`clusters/<name>/stacks/`), then the
/// shared ones its `cluster.yml` lists (from `stacks/`), sorted by name.
/// A listed stack that does not exist, or one that is both the cluster's
/// own and listed, is an error naming `cluster.yml`.
pub fn cluster_stacks(tree: &dyn Tree, cluster: &Cluster) -> Result<Vec<StackEntry>, SourceError> {
    let mut entries = discover_in(tree, &format!("{}/stacks", cluster.dir()))?;
    let shared = discover_in(tree, "stacks")?;
    let file = cluster.file();
    for (i, name) in cluster.stacks.iter().enumerate() {
        if entries.iter().any(|e| &e.name == name) {
            return Err(invalid(
                &file,
                format!(
                    "stacks[{i}]: {name} is also {}/stacks/{name}; a stack name may come from one place only",
                    cluster.dir()
                ),
            ));
        }
        match shared.iter().find(|e| &e.name == name) {
            Some(entry) => entries.push(entry.clone()),
            None => {
                let known: Vec<&str> = shared.iter().map(|e| e.name.as_str()).collect();
                return Err(invalid(
                    &file,
                    format!(
                        "stacks[{i}]: no shared stack {name} in stacks/ (shared stacks: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::testing::dir_repo as repo;

    fn err<T: std::fmt::Debug>(r: Result<T, SourceError>) -> String {
        r.unwrap_err().to_string()
    }

    const F: &str = "clusters/prod/cluster.yml";

    #[test]
    fn parses_a_full_cluster_file() {
        let c = parse_cluster(
            F,
            "prod",
            "engine:\n  context: production\nstacks: [traefik, monitoring]\nenv:\n  DOMAIN: example.com\n  REPLICAS: 3\n  DEBUG: false\n",
        )
        .unwrap();
        assert_eq!(c.engine, ClusterEngine::Context("production".into()));
        assert_eq!(c.stacks, vec!["traefik", "monitoring"]);
        assert_eq!(c.env["DOMAIN"], "example.com");
        assert_eq!(c.env["REPLICAS"], "3");
        assert_eq!(c.env["DEBUG"], "false");
        let c = parse_cluster(F, "prod", "engine: {host: 'ssh://deploy@mgr'}\n").unwrap();
        assert_eq!(c.engine, ClusterEngine::Host("ssh://deploy@mgr".into()));
        assert!(c.stacks.is_empty() && c.env.is_empty());
    }

    #[test]
    fn errors_name_the_file_and_the_field() {
        let cases = [
            ("stacks: []\n", "clusters/prod/cluster.yml: engine: missing"),
            (
                "engine: {context: a, host: 'tcp://x:2376'}\n",
                "engine: has both context and host",
            ),
            ("engine: {context: ''}\n", "engine: needs a non-empty"),
            (
                "engine: {host: 'prod-mgr'}\n",
                "engine.host: \"prod-mgr\" is not an engine URL",
            ),
            (
                "engine: {context: a}\nstacks: [web, web]\n",
                "stacks[1]: web is listed twice",
            ),
            (
                "engine: {context: a}\nstacks: ['../etc']\n",
                "stacks[0]: \"../etc\" is not a stack folder name",
            ),
            (
                "engine: {context: a}\nstacks: [_shared]\n",
                "stacks[0]: \"_shared\"",
            ),
            (
                "engine: {context: a}\nenv: {'1X': a}\n",
                "env.1X: not a variable name",
            ),
            (
                "engine: {context: a}\nenv: {X: [1]}\n",
                "env.X: expected a string, number or boolean, found a list",
            ),
            ("engine: {context: a}\nnodes: 3\n", "unknown field `nodes`"),
            ("engine: {contxt: a}\n", "unknown field `contxt`"),
            (
                "engine: {context: a}\nstacks: web\n",
                "clusters/prod/cluster.yml:2:",
            ),
        ];
        for (text, want) in cases {
            let e = err(parse_cluster(F, "prod", text));
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.starts_with(F), "{text:?}: {e}");
        }
    }

    #[test]
    fn a_repository_without_clusters_is_the_single_layout() {
        let (_d, tree) = repo(&[("stacks/web/stack.yml", "services: {}\n")]);
        assert_eq!(discover_layout(&tree).unwrap(), Layout::Single);
    }

    #[test]
    fn discovers_clusters_by_name_and_their_stacks() {
        let (_d, tree) = repo(&[
            ("clusters/README.md", "x"),
            (
                "clusters/staging/cluster.yml",
                "engine: {context: staging}\nstacks: [traefik]\n",
            ),
            ("clusters/staging/stacks/app/stack.yml", "services: {}\n"),
            ("clusters/staging/stacks/_shared/ca.pem", "x"),
            (
                "clusters/prod/cluster.yml",
                "engine: {host: 'ssh://prod'}\n",
            ),
            ("clusters/prod/stacks/app/stack.yml", "services: {}\n"),
            ("stacks/traefik/stack.yml", "services: {}\n"),
            ("stacks/_shared/x", "x"),
        ]);
        let Layout::Clusters(clusters) = discover_layout(&tree).unwrap() else {
            panic!("not clusters")
        };
        let names: Vec<&str> = clusters.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["prod", "staging"]);
        let staging: Vec<(String, String)> = cluster_stacks(&tree, &clusters[1])
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.file))
            .collect();
        assert_eq!(
            staging,
            [
                ("app".into(), "clusters/staging/stacks/app/stack.yml".into()),
                ("traefik".into(), "stacks/traefik/stack.yml".into())
            ]
        );
        let prod = cluster_stacks(&tree, &clusters[0]).unwrap();
        assert_eq!(prod.len(), 1, "a shared stack runs only where listed");
    }

    #[test]
    fn layout_errors_name_the_folder_or_file() {
        let cases: [(&[(&str, &str)], &str); 4] = [
            (
                &[("clusters/prod/stacks/a/stack.yml", "x")],
                "clusters/prod: no cluster.yml",
            ),
            (
                &[("clusters/Bad name/cluster.yml", "engine: {context: a}\n")],
                "clusters/Bad name: \"Bad name\" is not a valid cluster name",
            ),
            (&[("clusters/README.md", "x")], "clusters: holds no cluster"),
            (
                &[("clusters/prod/cluster.yml", "engine: [")],
                "clusters/prod/cluster.yml:",
            ),
        ];
        for (files, want) in cases {
            let (_d, tree) = repo(files);
            let e = err(discover_layout(&tree));
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn shared_stack_lists_are_checked() {
        let (_d, tree) = repo(&[
            (
                "clusters/prod/cluster.yml",
                "engine: {context: a}\nstacks: [app]\n",
            ),
            ("clusters/prod/stacks/app/stack.yml", "services: {}\n"),
            ("stacks/app/stack.yml", "services: {}\n"),
            (
                "clusters/dev/cluster.yml",
                "engine: {context: a}\nstacks: [nope]\n",
            ),
        ]);
        let Layout::Clusters(c) = discover_layout(&tree).unwrap() else {
            panic!()
        };
        let e = err(cluster_stacks(&tree, &c[1]));
        assert!(
            e.contains(
                "clusters/prod/cluster.yml: stacks[0]: app is also clusters/prod/stacks/app"
            ),
            "{e}"
        );
        let e = err(cluster_stacks(&tree, &c[0]));
        assert!(
            e.contains("clusters/dev/cluster.yml: stacks[0]: no shared stack nope in stacks/ (shared stacks: app)"),
            "{e}"
        );
    }

    #[test]
    fn a_cluster_file_that_is_a_link_or_too_large_is_refused() {
        let (d, tree) = repo(&[("clusters/prod/stacks/a/stack.yml", "x")]);
        std::os::unix::fs::symlink("/etc/passwd", d.path().join(F)).unwrap();
        assert!(err(discover_layout(&tree)).contains("symbolic link"));
        std::fs::remove_file(d.path().join(F)).unwrap();
        let big = format!(
            "engine: {{context: a}}\n#{}\n",
            "x".repeat(MAX_FILE_BYTES as usize)
        );
        std::fs::write(d.path().join(F), big).unwrap();
        assert!(err(discover_layout(&tree)).contains("larger than"));
    }
}
