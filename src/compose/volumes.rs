//! Service volumes: the short syntax (`name:/path:ro`, `./rel:/path`,
//! `/abs:/path:rw`, `/anon`) parsed into the long form, as docker/cli's
//! `loader.ParseVolume` does.
use super::model::{ServiceVolumeBind, ServiceVolumeConfig, ServiceVolumeVolume};

const PROPAGATION: [&str; 6] = [
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];
const CONSISTENCY: [&str; 3] = ["consistent", "cached", "delegated"];

/// Parse one short-syntax volume spec. Relative bind sources are left as
/// written; the caller resolves them.
pub fn parse_volume_spec(spec: &str) -> Result<ServiceVolumeConfig, String> {
    let bad = |why: &str| {
        format!("invalid volume {spec:?}: {why}; expected [SOURCE:]TARGET[:MODE] with MODE a comma list of ro, rw, nocopy, a propagation ({}) or a consistency ({})", PROPAGATION.join(", "), CONSISTENCY.join(", "))
    };
    let mut v = ServiceVolumeConfig {
        kind: "volume".to_string(),
        ..Default::default()
    };
    if spec.is_empty() {
        return Err(bad("empty spec"));
    }
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad("empty section between colons"));
    }
    match parts.as_slice() {
        [target] => v.target = Some(target.to_string()),
        [source, target] => {
            v.source = Some(source.to_string());
            v.target = Some(target.to_string());
        }
        [source, target, mode] => {
            v.source = Some(source.to_string());
            v.target = Some(target.to_string());
            for option in mode.split(',') {
                match option {
                    "ro" => v.read_only = Some(true),
                    "rw" => v.read_only = None,
                    "nocopy" => {
                        v.volume = Some(ServiceVolumeVolume {
                            nocopy: Some(true),
                            ..Default::default()
                        })
                    }
                    o if PROPAGATION.contains(&o) => {
                        v.bind = Some(ServiceVolumeBind {
                            propagation: Some(o.to_string()),
                            ..Default::default()
                        })
                    }
                    o if CONSISTENCY.contains(&o) => v.consistency = Some(o.to_string()),
                    // docker/cli ignores unknown options (z, Z, ...).
                    _ => {}
                }
            }
        }
        _ => return Err(bad("too many colons")),
    }
    if v.source.as_deref().is_some_and(is_file_path) {
        v.kind = "bind".to_string();
    }
    Ok(v)
}

/// Whether a short-syntax source names a host path (bind) rather than a volume.
fn is_file_path(source: &str) -> bool {
    source.starts_with(['.', '/', '~'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms() {
        let v = parse_volume_spec("data:/data:ro").unwrap();
        assert_eq!(
            (
                v.kind.as_str(),
                v.source.as_deref(),
                v.target.as_deref(),
                v.read_only
            ),
            ("volume", Some("data"), Some("/data"), Some(true))
        );
        let v = parse_volume_spec("./rel:/rel").unwrap();
        assert_eq!(
            (v.kind.as_str(), v.source.as_deref()),
            ("bind", Some("./rel"))
        );
        let v = parse_volume_spec("/abs:/abs:rw").unwrap();
        assert_eq!((v.kind.as_str(), v.read_only), ("bind", None));
        let v = parse_volume_spec("/anon").unwrap();
        assert_eq!(
            (v.kind.as_str(), v.source, v.target.as_deref()),
            ("volume", None, Some("/anon"))
        );
        let v = parse_volume_spec("x:/y:nocopy").unwrap();
        assert_eq!(v.volume.unwrap().nocopy, Some(true));
        let v = parse_volume_spec("/a:/b:ro,rshared").unwrap();
        assert_eq!(v.bind.unwrap().propagation.as_deref(), Some("rshared"));
        assert_eq!(v.read_only, Some(true));
    }

    #[test]
    fn bad_volumes() {
        for s in ["", "a::b", "a:b:c:d", ":/x"] {
            let e = parse_volume_spec(s).unwrap_err();
            assert!(e.contains("expected [SOURCE:]TARGET"), "{s}: {e}");
        }
    }
}
