//! Image digests, as `docker stack deploy --resolve-image` handles them.
//!
//! A tag such as `app:3.0` can be re-pushed with new content. docker pins
//! each service to the digest the registry reports (`app:3.0@sha256:…`) and
//! keeps the tag as written in the `com.docker.stack.image` label; shoal
//! does the same, so a tag whose digest moved shows in the plan as an image
//! update and is rolled out like any other change.
//!
//! This module is pure: [`to_look_up`] says which images a plan needs
//! digests for, the engine adapter looks them up
//! (`Engine::lookup_digests`), and [`pin`] writes the answers into the
//! desired services before the diff.
use super::credentials::Credentials;
use super::reference::{has_digest, image_of, with_digest};
use crate::model::{Desired, StackError};
use crate::model::{LiveStack, IMAGE_LABEL};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When to ask the registry for an image's digest (docker's
/// `--resolve-image`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResolveMode {
    /// Every plan asks the registry: a tag re-pushed with new content is
    /// an image update.
    Always,
    /// Only images that are new or whose tag changed in the repository.
    Changed,
    /// Never: services run the tag as written, each node pulls on its own.
    Never,
}

impl std::fmt::Display for ResolveMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResolveMode::Always => "always",
            ResolveMode::Changed => "changed",
            ResolveMode::Never => "never",
        })
    }
}

/// What the registry says a tag points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// `sha256:<hex>` of the manifest (or manifest list).
    pub digest: String,
    /// `(os, architecture)` pairs the image is built for.
    pub platforms: Vec<(String, String)>,
}

/// Why a digest could not be looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The registry refused the credentials, or asked for some and none
    /// were configured. Workers would fail to pull too: an error.
    Auth(String),
    /// The registry is unreachable or does not know the tag. docker goes
    /// on with the unpinned tag and warns; so does shoal.
    Unavailable(String),
}

/// Lookup answers by image reference as written.
pub type Lookups = BTreeMap<String, Result<Resolved, LookupError>>;

/// Digests looked up recently, reused for `ttl`: every lookup makes the
/// daemon GET the manifest from the registry, which Docker Hub counts as a
/// pull against its rate limit; an agent polling every 30 s would spend
/// that limit on unchanged tags. Only answers are kept, not failures.
#[derive(Debug)]
pub struct DigestCache {
    ttl: Duration,
    entries: Mutex<BTreeMap<String, (Instant, Resolved)>>,
}

impl DigestCache {
    pub fn new(ttl: Duration) -> DigestCache {
        DigestCache {
            ttl,
            entries: Mutex::new(BTreeMap::new()),
        }
    }

    /// Split `wanted` into answers still fresh at `now` and images to ask
    /// the registry about.
    pub fn split(&self, wanted: BTreeSet<String>, now: Instant) -> (Lookups, BTreeSet<String>) {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut fresh = Lookups::new();
        let mut ask = BTreeSet::new();
        for image in wanted {
            match entries.get(&image) {
                Some((at, r)) if now.saturating_duration_since(*at) < self.ttl => {
                    fresh.insert(image, Ok(r.clone()));
                }
                _ => {
                    ask.insert(image);
                }
            }
        }
        (fresh, ask)
    }

    /// Remember the answers of a lookup made at `now`.
    pub fn store(&self, lookups: &Lookups, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        for (image, answer) in lookups {
            match answer {
                Ok(r) => {
                    entries.insert(image.clone(), (now, r.clone()));
                }
                Err(_) => {
                    entries.remove(image);
                }
            }
        }
    }
}

/// The images of `desired` whose digest this plan needs, by `mode`.
pub fn to_look_up(
    desired: &Desired,
    live: &BTreeMap<String, LiveStack>,
    mode: ResolveMode,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for stack in &desired.stacks {
        for svc in &stack.services {
            let Some(image) = image_of(&svc.spec) else {
                continue;
            };
            let written = label_of(&svc.spec).unwrap_or(image);
            if needs_lookup(image, written, &svc.name, live.get(&stack.name), mode) {
                out.insert(image.to_string());
            }
        }
    }
    out
}

fn label_of(spec: &Value) -> Option<&str> {
    spec.pointer("/Labels")
        .and_then(|l| l.get(IMAGE_LABEL))
        .and_then(Value::as_str)
}

fn needs_lookup(
    image: &str,
    written: &str,
    service: &str,
    live: Option<&LiveStack>,
    mode: ResolveMode,
) -> bool {
    if has_digest(image) || image.is_empty() {
        return false;
    }
    match mode {
        ResolveMode::Never => false,
        ResolveMode::Always => true,
        // docker: query when the service is new or the image as written
        // differs from the one it was deployed from; else keep what runs.
        ResolveMode::Changed => {
            live.and_then(|l| l.services.iter().find(|s| s.name == service))
                .and_then(|s| label_of(&s.spec))
                != Some(written)
        }
    }
}

/// Write the looked-up digests into the desired services: the image
/// becomes `name:tag@digest` and the placement lists the image's platforms,
/// as docker does. An image that could not be looked up stays as written
/// (the diff then keeps a live service pinned to the same tag as it is)
/// with a warning on its stack; a credentials failure makes the stack an
/// error, so it is left untouched.
pub fn pin(desired: &mut Desired, lookups: &Lookups) {
    let mut failed = Vec::new();
    for stack in &mut desired.stacks {
        let mut errors = Vec::new();
        for svc in &mut stack.services {
            let Some(image) = image_of(&svc.spec).map(str::to_string) else {
                continue;
            };
            match lookups.get(&image) {
                None => {}
                Some(Ok(resolved)) => pin_service(&mut svc.spec, &image, resolved),
                Some(Err(LookupError::Unavailable(reason))) => stack.warnings.push(format!(
                    "service {}: image {image} could not be accessed on a registry to record its digest ({reason}). Each node will access {image} independently, possibly leading to different nodes running different versions of the image.",
                    svc.name
                )),
                Some(Err(LookupError::Auth(reason))) => {
                    errors.push(format!("service {}: image {image}: {reason}", svc.name))
                }
            }
        }
        if !errors.is_empty() {
            failed.push(StackError {
                stack: stack.name.clone(),
                message: errors.join("\n"),
            });
        }
    }
    if !failed.is_empty() {
        desired
            .stacks
            .retain(|s| !failed.iter().any(|f| f.stack == s.name));
        desired.errors.extend(failed);
    }
}

fn pin_service(spec: &mut Value, image: &str, resolved: &Resolved) {
    let pinned = with_digest(image, &resolved.digest);
    let Some(tt) = spec.get_mut("TaskTemplate").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(cs) = tt.get_mut("ContainerSpec").and_then(Value::as_object_mut) {
        cs.insert("Image".into(), json!(pinned));
    }
    if !resolved.platforms.is_empty() {
        let platforms: Vec<Value> = resolved
            .platforms
            .iter()
            .map(|(os, arch)| json!({"Architecture": arch, "OS": os}))
            .collect();
        let placement = tt.entry("Placement").or_insert_with(|| json!({}));
        if let Some(p) = placement.as_object_mut() {
            p.insert("Platforms".into(), Value::Array(platforms));
        }
    }
}

/// A refused or missing login is an error for people to fix; anything else
/// (unreachable registry, unknown tag) is docker's "could not be accessed"
/// warning.
pub fn classify_lookup_failure(
    status: u16,
    message: &str,
    registry: &str,
    sent_credentials: bool,
    creds: &Credentials,
) -> LookupError {
    let lower = message.to_lowercase();
    let refused = status == 401
        || lower.contains("unauthorized")
        || lower.contains("authentication required");
    // The registry asked for a login and none was sent.
    let wants_login = lower.contains("no basic auth credentials");
    // Without credentials a refusal is ambiguous: Docker Hub answers 401
    // for a repository that does not exist (an image built locally and
    // never pushed). docker warns then; so does shoal.
    if !(wants_login || (refused && sent_credentials)) {
        return LookupError::Unavailable(message.to_string());
    }
    let config = creds.path().display();
    LookupError::Auth(if sent_credentials {
        format!(
            "registry {registry} refused the credentials in {config} ({message}); update them with `docker login {registry}`"
        )
    } else {
        format!(
            "registry {registry} requires credentials and {config} has none for it ({message}); run `docker login {registry}` as the user shoal runs as, or point DOCKER_CONFIG at a config that has them"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DesiredObject, DesiredStack, LiveObject};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn service(name: &str, image: &str, label: &str) -> Value {
        json!({"Name": name, "Labels": {IMAGE_LABEL: label},
               "TaskTemplate": {"ContainerSpec": {"Image": image}}})
    }

    fn desired(images: &[(&str, &str)]) -> Desired {
        Desired {
            stacks: vec![DesiredStack {
                name: "s".into(),
                services: images
                    .iter()
                    .map(|(n, i)| DesiredObject {
                        name: n.to_string(),
                        spec: service(n, i, i),
                        source: Value::Null,
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn live(name: &str, image: &str, label: &str) -> BTreeMap<String, LiveStack> {
        let stack = LiveStack {
            name: "s".into(),
            services: vec![LiveObject {
                name: name.into(),
                id: "id1".into(),
                version: 1,
                spec: service(name, image, label),
                created_at: String::new(),
            }],
            ..Default::default()
        };
        BTreeMap::from([("s".to_string(), stack)])
    }

    #[test]
    fn modes_choose_what_to_look_up() {
        let d = desired(&[("s_web", "app:3.0"), ("s_db", "db:1@sha256:abc")]);
        let l = live("s_web", &format!("app:3.0@{D1}"), "app:3.0");
        let set = |l: &BTreeMap<String, LiveStack>, mode| {
            to_look_up(&d, l, mode).into_iter().collect::<Vec<_>>()
        };
        assert_eq!(set(&l, ResolveMode::Always), vec!["app:3.0"]);
        // Same tag as deployed: `changed` keeps what runs.
        assert!(set(&l, ResolveMode::Changed).is_empty());
        assert!(set(&l, ResolveMode::Never).is_empty());
        // A new tag, or a new service, is looked up under `changed`.
        let l = live("s_web", &format!("app:2.9@{D1}"), "app:2.9");
        assert_eq!(set(&l, ResolveMode::Changed), vec!["app:3.0"]);
        assert_eq!(
            to_look_up(&d, &BTreeMap::new(), ResolveMode::Changed).len(),
            1
        );
    }

    #[test]
    fn the_cache_answers_within_its_ttl_and_forgets_failures() {
        let cache = DigestCache::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let resolved = Resolved {
            digest: D1.into(),
            platforms: vec![],
        };
        cache.store(
            &Lookups::from([
                ("a:1".to_string(), Ok(resolved.clone())),
                (
                    "b:1".to_string(),
                    Err(LookupError::Unavailable("down".into())),
                ),
            ]),
            t0,
        );
        let wanted = || BTreeSet::from(["a:1".to_string(), "b:1".to_string()]);
        let (fresh, ask) = cache.split(wanted(), t0 + Duration::from_secs(59));
        assert_eq!(fresh.get("a:1"), Some(&Ok(resolved)));
        assert_eq!(ask, BTreeSet::from(["b:1".to_string()]));
        // Past the TTL, everything is asked again.
        let (fresh, ask) = cache.split(wanted(), t0 + Duration::from_secs(60));
        assert!(fresh.is_empty());
        assert_eq!(ask.len(), 2);
        // A TTL of zero caches nothing.
        let none = DigestCache::new(Duration::ZERO);
        none.store(
            &Lookups::from([(
                "a:1".to_string(),
                Ok(Resolved {
                    digest: D1.into(),
                    platforms: vec![],
                }),
            )]),
            t0,
        );
        assert_eq!(none.split(wanted(), t0).1.len(), 2);
    }

    #[test]
    fn pin_writes_digest_and_platforms() {
        let mut d = desired(&[("s_web", "app:3.0")]);
        let lookups = Lookups::from([(
            "app:3.0".to_string(),
            Ok(Resolved {
                digest: D1.into(),
                platforms: vec![("linux".into(), "amd64".into())],
            }),
        )]);
        pin(&mut d, &lookups);
        let spec = &d.stacks[0].services[0].spec;
        assert_eq!(
            spec.pointer("/TaskTemplate/ContainerSpec/Image"),
            Some(&json!(format!("app:3.0@{D1}")))
        );
        assert_eq!(
            spec.pointer("/TaskTemplate/Placement/Platforms"),
            Some(&json!([{"Architecture": "amd64", "OS": "linux"}]))
        );
        // The label keeps the tag as written.
        assert_eq!(spec["Labels"][IMAGE_LABEL], json!("app:3.0"));
    }

    #[test]
    fn an_unreachable_registry_warns_and_keeps_the_tag() {
        let mut d = desired(&[("s_web", "app:3.0")]);
        let lookups = Lookups::from([(
            "app:3.0".to_string(),
            Err(LookupError::Unavailable("connection refused".into())),
        )]);
        pin(&mut d, &lookups);
        let stack = &d.stacks[0];
        assert_eq!(
            stack.services[0]
                .spec
                .pointer("/TaskTemplate/ContainerSpec/Image"),
            Some(&json!("app:3.0"))
        );
        assert_eq!(stack.warnings.len(), 1);
        assert!(stack.warnings[0].contains("s_web"));
        assert!(stack.warnings[0].contains("connection refused"));
        assert!(d.errors.is_empty());
    }

    #[test]
    fn refused_credentials_make_the_stack_an_error() {
        let mut d = desired(&[("s_web", "app:3.0"), ("s_db", "db:1")]);
        let lookups = Lookups::from([(
            "app:3.0".to_string(),
            Err(LookupError::Auth("unauthorized".into())),
        )]);
        pin(&mut d, &lookups);
        assert!(d.stacks.is_empty());
        assert_eq!(d.errors.len(), 1);
        assert_eq!(d.errors[0].stack, "s");
        assert!(d.errors[0].message.contains("s_web"));
        assert!(d.errors[0].message.contains("app:3.0"));
        assert!(d.errors[0].message.contains("unauthorized"));
    }

    fn no_creds() -> Credentials {
        Credentials::load(std::path::Path::new("/nonexistent/shoal/config.json")).unwrap()
    }

    #[test]
    fn refused_logins_are_errors_and_the_rest_warnings() {
        let c = no_creds();
        // What Engine 20.10 answers for a wrong password on distribution 2.8.
        let e = classify_lookup_failure(
            401,
            "unauthorized: authentication required",
            "r:5000",
            true,
            &c,
        );
        let LookupError::Auth(m) = e else {
            panic!("{e:?}")
        };
        assert!(m.contains("refused the credentials in /nonexistent/shoal/config.json"));
        assert!(m.contains("docker login r:5000"));
        // No credentials sent to a registry that wants them.
        let e = classify_lookup_failure(
            500,
            "Head \"http://r:5000/v2/app/manifests/1\": no basic auth credentials",
            "r:5000",
            false,
            &c,
        );
        assert!(matches!(e, LookupError::Auth(m) if m.contains("has none for it")));
        // Unreachable registry, unknown tag, and Docker Hub's answer for a
        // repository it does not have (no credentials sent): warnings.
        for (status, message) in [
            (500, "dial tcp 127.0.0.1:5999: connect: connection refused"),
            (404, "manifest unknown: manifest unknown"),
            (401, "unauthorized: authentication required"),
        ] {
            assert!(matches!(
                classify_lookup_failure(status, message, "r", false, &c),
                LookupError::Unavailable(_)
            ));
        }
    }
}
