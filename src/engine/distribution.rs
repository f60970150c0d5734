//! Image digests through the Engine's distribution endpoint
//! (`GET /distribution/{image}/json`), the call `docker stack deploy`
//! makes: the daemon asks the registry, with the credentials we pass.
use super::Engine;
use crate::images::{self, DigestCache, LookupError, Lookups, Reference, ResolveMode, Resolved};
use crate::reconcile::Desired;
use crate::registry_auth::Credentials;
use crate::state::LiveStack;
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Lookups in flight at once.
const PARALLEL_LOOKUPS: usize = 8;
/// Longest wait for the credential helpers of one plan.
const HELPER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);
/// Longest wait for one digest: a registry that hangs must not hold a plan
/// (or an agent pass) for the Engine client's whole timeout.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

impl Engine {
    /// Pin the images of `desired` to their registry digests as `mode`
    /// asks (see [`crate::images`]): look up what is needed (answers still
    /// fresh in `cache` are reused), then pin. The docker config is read
    /// only when a registry is asked; `Err` when it cannot be read.
    pub async fn pin_images(
        &self,
        desired: &mut Desired,
        live: &BTreeMap<String, LiveStack>,
        mode: ResolveMode,
        cache: Option<&DigestCache>,
    ) -> Result<(), String> {
        let wanted = images::to_look_up(desired, live, mode);
        let now = Instant::now();
        let (mut lookups, ask) = match cache {
            Some(c) => c.split(wanted, now),
            None => (Lookups::new(), wanted),
        };
        let asked = if ask.is_empty() {
            Lookups::new()
        } else {
            let creds = Credentials::from_env()?;
            self.lookup_digests(&ask, &creds).await
        };
        if let Some(c) = cache {
            c.store(&asked, now);
        }
        lookups.extend(asked);
        images::pin(desired, &lookups);
        Ok(())
    }

    /// The registry digest of every image in `images`, each answer on its
    /// own (one failing never hides the others).
    pub async fn lookup_digests(&self, images: &BTreeSet<String>, creds: &Credentials) -> Lookups {
        if images.is_empty() {
            return Lookups::new();
        }
        let headers = RegistryHeaders::read(images.iter().map(String::as_str), creds).await;
        let headers = &headers;
        let lookups = stream::iter(images.iter().cloned())
            .map(|image| async move {
                let answer = match headers.for_image(&image) {
                    Err(e) => Err(LookupError::Auth(e.to_string())),
                    Ok(h) => self.lookup_digest(&image, h, creds).await,
                };
                (image, answer)
            })
            .buffer_unordered(PARALLEL_LOOKUPS)
            .collect::<Vec<_>>()
            .await;
        lookups.into_iter().collect()
    }

    async fn lookup_digest(
        &self,
        image: &str,
        registry_auth: Option<&str>,
        creds: &Credentials,
    ) -> Result<Resolved, LookupError> {
        let path = format!("{}/distribution/{image}/json", super::API_PREFIX);
        let headers: Vec<(&str, &str)> = registry_auth
            .map(|a| vec![("X-Registry-Auth", a)])
            .unwrap_or_default();
        let request = self.raw.request_with("GET", &path, None, &headers);
        let resp = tokio::time::timeout(LOOKUP_TIMEOUT, request)
            .await
            .map_err(|_| {
                LookupError::Unavailable(format!(
                    "the registry gave no answer within {}s",
                    LOOKUP_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| LookupError::Unavailable(format!("docker engine: {e}")))?;
        if resp.is_success() {
            let doc = resp
                .json()
                .map_err(|e| LookupError::Unavailable(format!("docker engine: {e}")))?;
            return parse_inspect(&doc)
                .ok_or_else(|| LookupError::Unavailable(format!("no digest in {doc}")));
        }
        let message = resp.error_message();
        Err(classify(
            resp.status,
            &message,
            &Reference::parse(image).domain,
            registry_auth.is_some(),
            creds,
        ))
    }
}

/// `X-Registry-Auth` values by registry key, read once per registry for a
/// set of images: digest lookups and service writes (with
/// `--with-registry-auth`) ask the docker config, and its helper programs,
/// once per registry, not once per image or service.
#[derive(Debug, Default)]
pub struct RegistryHeaders(BTreeMap<String, Result<Option<String>, String>>);

impl RegistryHeaders {
    /// Read the credentials of every registry `images` come from. Helpers
    /// run off the async threads, and one that waits on a keyring or a PIN
    /// prompt must not hold the plan: its registries get an error.
    pub async fn read<'a>(
        images: impl IntoIterator<Item = &'a str>,
        creds: &Credentials,
    ) -> RegistryHeaders {
        let mut keys: BTreeMap<String, String> = BTreeMap::new();
        for image in images {
            let key = Reference::parse(image).auth_key().to_string();
            keys.entry(key).or_insert_with(|| image.to_string());
        }
        let all: Vec<String> = keys.keys().cloned().collect();
        let creds = creds.clone();
        let read = tokio::task::spawn_blocking(move || {
            keys.into_iter()
                .map(|(key, image)| {
                    let header = creds.header_for(&image);
                    (key, header)
                })
                .collect()
        });
        let failed = |why: String| all.iter().map(|k| (k.clone(), Err(why.clone()))).collect();
        RegistryHeaders(match tokio::time::timeout(HELPER_TIMEOUT, read).await {
            Ok(Ok(headers)) => headers,
            Ok(Err(e)) => failed(format!("reading registry credentials failed: {e}")),
            Err(_) => failed(format!(
                "a docker credential helper gave no answer within {}s",
                HELPER_TIMEOUT.as_secs()
            )),
        })
    }

    /// The header for `image`'s registry: `Ok(None)` when the config has
    /// no credentials for it (or it was not read), `Err` when reading them
    /// failed.
    pub fn for_image(&self, image: &str) -> Result<Option<&str>, &str> {
        match self.0.get(Reference::parse(image).auth_key()) {
            Some(Ok(h)) => Ok(h.as_deref()),
            Some(Err(e)) => Err(e),
            None => Ok(None),
        }
    }
}

/// `{"Descriptor":{"digest":…},"Platforms":[{"architecture":…,"os":…}]}`.
fn parse_inspect(doc: &Value) -> Option<Resolved> {
    let digest = doc.pointer("/Descriptor/digest")?.as_str()?.to_string();
    let platforms = doc["Platforms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let os = p.get("os")?.as_str()?;
            let arch = p.get("architecture")?.as_str()?;
            // As docker does (swarmkit#2294): manifests say `arm`, nodes
            // say `armv7l`; a constraint on `arm` would never match.
            let arch = if arch.eq_ignore_ascii_case("arm") {
                ""
            } else {
                arch
            };
            Some((os.to_string(), arch.to_string()))
        })
        .collect();
    Some(Resolved { digest, platforms })
}

/// A refused or missing login is an error for people to fix; anything else
/// (unreachable registry, unknown tag) is docker's "could not be accessed"
/// warning.
fn classify(
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

    fn no_creds() -> Credentials {
        Credentials::load(std::path::Path::new("/nonexistent/shoal/config.json")).unwrap()
    }

    #[test]
    fn inspect_answers_give_digest_and_platforms() {
        let doc = serde_json::json!({
            "Descriptor": {"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                           "digest": "sha256:9c71", "size": 1150},
            "Platforms": [{"architecture": "amd64", "os": "linux"},
                          {"architecture": "arm", "os": "linux", "variant": "v7"}]});
        assert_eq!(
            parse_inspect(&doc),
            Some(Resolved {
                digest: "sha256:9c71".into(),
                // `arm` is left open, as docker leaves it.
                platforms: vec![
                    ("linux".into(), "amd64".into()),
                    ("linux".into(), String::new())
                ],
            })
        );
        assert_eq!(parse_inspect(&serde_json::json!({})), None);
    }

    #[test]
    fn refused_logins_are_errors_and_the_rest_warnings() {
        let c = no_creds();
        // What Engine 20.10 answers for a wrong password on distribution 2.8.
        let e = classify(
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
        let e = classify(
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
                classify(status, message, "r", false, &c),
                LookupError::Unavailable(_)
            ));
        }
    }
}
