//! Image digests through the Engine's distribution endpoint
//! (`GET /distribution/{image}/json`), the call `docker stack deploy`
//! makes: the daemon asks the registry, with the credentials we pass.
use super::Engine;
use crate::image::{
    classify_lookup_failure, Credentials, LookupError, Lookups, Reference, RegistryHeaders,
    Resolved,
};
use futures_util::stream::{self, StreamExt};
use serde_json::Value;
use std::collections::BTreeSet;

/// Lookups in flight at once.
const PARALLEL_LOOKUPS: usize = 8;
/// Longest wait for one digest: a registry that hangs must not hold a plan
/// (or an agent pass) for the Engine client's whole timeout.
const LOOKUP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

impl Engine {
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
        Err(classify_lookup_failure(
            resp.status,
            &message,
            &Reference::parse(image).domain,
            registry_auth.is_some(),
            creds,
        ))
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
