//! Config and secret references in service specs: desired specs name them
//! (`ConfigName`, `SecretName`), the API also wants their ids, which only
//! exist once the objects do. Resolved just before a service write.
use super::{Engine, EngineError};
use serde_json::Value;
use std::collections::BTreeMap;

/// Why a config or secret reference of a service cannot be resolved.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReferenceProblem {
    #[error("a {kind} reference has no {name_key}")]
    Unnamed {
        kind: &'static str,
        name_key: &'static str,
    },
    #[error(
        "{kind} {name:?} does not exist on the swarm; declare it in the stack or create it first"
    )]
    Missing { kind: &'static str, name: String },
}

/// Name -> id of every config and secret on the swarm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReferenceIds {
    pub configs: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
}

impl Engine {
    /// List all configs and secrets once (two calls) for
    /// [`resolve_references`].
    pub async fn reference_ids(&self) -> Result<ReferenceIds, EngineError> {
        Ok(ReferenceIds {
            configs: self.names_to_ids("configs").await?,
            secrets: self.names_to_ids("secrets").await?,
        })
    }

    /// Name -> id of every network (one call). The daemon stores a service's
    /// `TaskTemplate.Networks[].Target` as the network id even when it was
    /// written as a name; this map relates the two.
    pub async fn network_ids(&self) -> Result<BTreeMap<String, String>, EngineError> {
        let items = self.get("list networks", "/networks").await?;
        Ok(items
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                Some((
                    i["Name"].as_str()?.to_string(),
                    i["Id"].as_str()?.to_string(),
                ))
            })
            .collect())
    }

    async fn names_to_ids(
        &self,
        collection: &str,
    ) -> Result<BTreeMap<String, String>, EngineError> {
        let items = self
            .get(&format!("list {collection}"), &format!("/{collection}"))
            .await?;
        Ok(items
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                let name = i["Spec"]["Name"].as_str()?;
                let id = i["ID"].as_str()?;
                Some((name.to_string(), id.to_string()))
            })
            .collect())
    }
}

/// Fill `ConfigID`/`SecretID` of every reference in a ServiceSpec from its
/// name (and a credential-spec config given by name). Errors name the
/// service and the missing object.
pub fn resolve_references(
    spec: &mut Value,
    ids: &ReferenceIds,
    service: &str,
) -> Result<(), EngineError> {
    let Some(container) = spec
        .pointer_mut("/TaskTemplate/ContainerSpec")
        .filter(|c| c.is_object())
    else {
        return Ok(());
    };
    for (list, name_key, id_key, known, kind) in [
        ("Configs", "ConfigName", "ConfigID", &ids.configs, "config"),
        ("Secrets", "SecretName", "SecretID", &ids.secrets, "secret"),
    ] {
        let Some(refs) = container.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for r in refs {
            let Some(name) = r.get(name_key).and_then(Value::as_str) else {
                return Err(EngineError::Reference {
                    service: service.to_string(),
                    problem: ReferenceProblem::Unnamed { kind, name_key },
                });
            };
            let id = known.get(name).ok_or_else(|| EngineError::Reference {
                service: service.to_string(),
                problem: ReferenceProblem::Missing {
                    kind,
                    name: name.to_string(),
                },
            })?;
            r[id_key] = Value::String(id.clone());
        }
    }
    if let Some(cred) = container.pointer_mut("/Privileges/CredentialSpec/Config") {
        if let Some(id) = cred.as_str().and_then(|name| ids.configs.get(name)) {
            *cred = Value::String(id.clone());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ids() -> ReferenceIds {
        ReferenceIds {
            configs: [("s_conf".to_string(), "cid".to_string())].into(),
            secrets: [("s_sec".to_string(), "sid".to_string())].into(),
        }
    }

    #[test]
    fn fills_ids_from_names_and_leaves_the_rest() {
        let mut spec = json!({"Name": "s_web", "TaskTemplate": {"ContainerSpec": {
            "Image": "busybox",
            "Configs": [{"ConfigName": "s_conf", "File": {"Name": "/c"}}],
            "Secrets": [{"SecretName": "s_sec", "SecretID": "stale"}]}}});
        resolve_references(&mut spec, &ids(), "s_web").unwrap();
        let c = &spec["TaskTemplate"]["ContainerSpec"];
        assert_eq!(c["Configs"][0]["ConfigID"], "cid");
        assert_eq!(c["Secrets"][0]["SecretID"], "sid");
        assert!(c.get("Privileges").is_none(), "{c}");
    }

    #[test]
    fn missing_reference_names_service_and_object() {
        let mut spec = json!({"TaskTemplate": {"ContainerSpec": {
            "Secrets": [{"SecretName": "nope"}]}}});
        let err = resolve_references(&mut spec, &ids(), "s_web").unwrap_err();
        assert_eq!(
            err.to_string(),
            "service s_web: secret \"nope\" does not exist on the swarm; declare it in the \
             stack or create it first"
        );
        assert!(matches!(
            err,
            EngineError::Reference {
                problem: ReferenceProblem::Missing { kind: "secret", .. },
                ..
            }
        ));
    }

    #[test]
    fn credential_spec_config_name_becomes_id() {
        let mut spec = json!({"TaskTemplate": {"ContainerSpec": {
            "Privileges": {"CredentialSpec": {"Config": "s_conf"}}}}});
        resolve_references(&mut spec, &ids(), "s_web").unwrap();
        assert_eq!(
            spec["TaskTemplate"]["ContainerSpec"]["Privileges"]["CredentialSpec"]["Config"],
            "cid"
        );
    }
}
