//! Image references as docker parses and sends them: `domain/path:tag@digest`,
//! the familiar name, the registry key credentials are stored under.
//! A leaf: no other module of shoal is needed to read a reference.
use serde_json::Value;

/// Whether a reference already names a digest (`name@sha256:…`).
pub fn has_digest(image: &str) -> bool {
    image.contains('@')
}

/// The image of a service spec (`TaskTemplate.ContainerSpec.Image`).
pub fn image_of(spec: &Value) -> Option<&str> {
    spec.pointer("/TaskTemplate/ContainerSpec/Image")
        .and_then(Value::as_str)
}

/// A parsed image reference: `domain/path:tag@digest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (with port), `docker.io` for Docker Hub.
    pub domain: String,
    /// Repository path, `library/` added for official Hub images.
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

/// Docker Hub's canonical domain and the key its credentials use.
pub const HUB_DOMAIN: &str = "docker.io";
pub const HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

impl Reference {
    /// Parse as docker normalizes names: the first component is a registry
    /// when it has a `.` or `:` or is `localhost`; otherwise the image is
    /// on Docker Hub (and a one-component name is under `library/`).
    pub fn parse(image: &str) -> Reference {
        let (rest, digest) = match image.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (image, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(rest[i + 1..].to_string())),
            _ => (rest, None),
        };
        let (domain, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (HUB_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            HUB_DOMAIN.to_string()
        } else {
            domain
        };
        let path = if domain == HUB_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Reference {
            domain,
            path,
            tag,
            digest,
        }
    }

    /// The name as docker prints it: no `docker.io/` or `library/`.
    pub fn familiar_name(&self) -> String {
        if self.domain == HUB_DOMAIN {
            self.path
                .strip_prefix("library/")
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The key of this registry in a docker config file.
    pub fn auth_key(&self) -> &str {
        if self.domain == HUB_DOMAIN {
            HUB_AUTH_KEY
        } else {
            &self.domain
        }
    }
}

/// `image` pinned to `digest` in docker's familiar form:
/// `app:3.0` -> `app:3.0@sha256:…`, `docker.io/library/redis` ->
/// `redis@sha256:…`. A reference that already has a digest is unchanged.
pub fn with_digest(image: &str, digest: &str) -> String {
    let r = Reference::parse(image);
    if r.digest.is_some() {
        return image.to_string();
    }
    match &r.tag {
        Some(tag) => format!("{}:{tag}@{digest}", r.familiar_name()),
        None => format!("{}@{digest}", r.familiar_name()),
    }
}

/// The image as the docker client sends it to the daemon
/// (`imageWithTagString`): the familiar name, `:latest` when neither a tag
/// nor a digest is given. `redis` -> `redis:latest`,
/// `docker.io/library/nginx:1` -> `nginx:1`. What docker could not parse
/// (upper case, spaces) is left as written, as docker leaves it.
pub fn as_docker_sends(image: &str) -> String {
    let valid = !image.is_empty()
        && !image.contains(char::is_whitespace)
        && image
            .split_once('/')
            .map_or(image, |(_, rest)| rest)
            .chars()
            .all(|c| !c.is_ascii_uppercase());
    if !valid {
        return image.to_string();
    }
    let r = Reference::parse(image);
    let mut out = r.familiar_name();
    match (&r.tag, &r.digest) {
        (None, None) => out.push_str(":latest"),
        (Some(tag), _) => {
            out.push(':');
            out.push_str(tag);
        }
        (None, Some(_)) => {}
    }
    if let Some(d) = &r.digest {
        out.push('@');
        out.push_str(d);
    }
    out
}

/// Split a reference into `(name:tag, digest)`; no digest when unpinned.
pub fn split_digest(image: &str) -> (&str, Option<&str>) {
    match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn references_normalize_as_docker_does() {
        let r = Reference::parse("busybox");
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.tag, r.digest),
            ("docker.io", "library/busybox", None, None)
        );
        let r = Reference::parse("127.0.0.1:5000/team/app:3.0");
        assert_eq!(r.domain, "127.0.0.1:5000");
        assert_eq!(r.path, "team/app");
        assert_eq!(r.tag.as_deref(), Some("3.0"));
        assert_eq!(r.auth_key(), "127.0.0.1:5000");
        let r = Reference::parse("localhost/app");
        assert_eq!((r.domain.as_str(), r.tag), ("localhost", None));
        let r = Reference::parse("steedos/steedos-enterprise:2.7");
        assert_eq!(r.domain, "docker.io");
        assert_eq!(r.path, "steedos/steedos-enterprise");
        assert_eq!(r.auth_key(), HUB_AUTH_KEY);
        let r = Reference::parse("index.docker.io/library/redis:7");
        assert_eq!(r.familiar_name(), "redis");
    }

    #[test]
    fn images_are_sent_as_docker_sends_them() {
        assert_eq!(as_docker_sends("redis"), "redis:latest");
        assert_eq!(as_docker_sends("docker.io/library/nginx:1"), "nginx:1");
        assert_eq!(
            as_docker_sends("index.docker.io/team/app"),
            "team/app:latest"
        );
        assert_eq!(
            as_docker_sends("127.0.0.1:5000/app"),
            "127.0.0.1:5000/app:latest"
        );
        assert_eq!(as_docker_sends("app@sha256:ab"), "app@sha256:ab");
        assert_eq!(as_docker_sends("app:1@sha256:ab"), "app:1@sha256:ab");
        // Not a reference docker can parse: left alone.
        assert_eq!(as_docker_sends("team/App"), "team/App");
    }

    #[test]
    fn pinning_keeps_the_familiar_name_and_the_tag() {
        assert_eq!(with_digest("app:3.0", D1), format!("app:3.0@{D1}"));
        assert_eq!(
            with_digest("docker.io/library/redis:7", D1),
            format!("redis:7@{D1}")
        );
        // docker pins what it sends: the tag it added included.
        assert_eq!(
            with_digest(&as_docker_sends("redis"), D1),
            format!("redis:latest@{D1}")
        );
        assert_eq!(
            with_digest("127.0.0.1:5000/app:3.0", D1),
            format!("127.0.0.1:5000/app:3.0@{D1}")
        );
        let already = "app:3.0@sha256:2222";
        assert_eq!(with_digest(already, D1), already);
    }
}
