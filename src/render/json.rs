//! The plan as a typed JSON document (`plan --format json`, `validate
//! --format json`, saved plans): its shape is these types, its version
//! [`FORMAT_VERSION`]. Sensitive field values are masked here; the caller
//! runs the redactor over the result as for text.
use super::{Report, MASK};
use crate::model::{Action, Change, FieldChange, Kind};
use crate::policy::Violation;
use serde::Serialize;
use serde_json::Value;

/// Raised when a field is removed or changes meaning; new fields do not.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct Document<'a> {
    pub format_version: u32,
    /// In a multi-cluster run (`--cluster`, `--all-clusters`): the cluster
    /// this document is about, and the engine it was planned against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Creates, updates and deletes (no-change objects are left out).
    pub changes: Vec<ChangeDoc<'a>>,
    pub summary: Summary,
    pub violations: &'a [Violation],
    /// Stacks that could not be loaded, then policies that could not run.
    pub errors: Vec<ErrorDoc<'a>>,
    pub commit: Option<CommitDoc<'a>>,
    pub unmanaged: &'a [String],
}

#[derive(Serialize)]
pub struct ChangeDoc<'a> {
    /// In a multi-cluster run: the cluster the change is for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<&'a str>,
    pub action: Action,
    pub kind: Kind,
    pub name: &'a str,
    pub stack: &'a str,
    pub diff: Vec<FieldDoc<'a>>,
}

#[derive(Serialize)]
pub struct FieldDoc<'a> {
    pub path: &'a str,
    /// `"(sensitive)"` for a sensitive value that is set.
    pub before: Value,
    pub after: Value,
}

#[derive(Serialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
}

#[derive(Serialize)]
#[serde(untagged)]
pub enum ErrorDoc<'a> {
    Stack {
        stack: &'a str,
        message: &'a str,
    },
    Policy {
        policy: bool,
        message: &'a str,
    },
    /// A cluster that could not be planned at all (its `cluster.yml`, its
    /// engine).
    Cluster {
        cluster: &'a str,
        message: &'a str,
    },
}

/// A multi-cluster run (`--cluster`, `--all-clusters`): one [`Document`]
/// per cluster, in the order the clusters ran, each with `cluster` and
/// `endpoint` set (and `cluster` on every change), and the summary over
/// all of them.
#[derive(Serialize)]
pub struct ClustersDocument<'a> {
    pub format_version: u32,
    pub clusters: Vec<Document<'a>>,
    pub summary: Summary,
}

impl<'a> ClustersDocument<'a> {
    pub fn new(clusters: Vec<Document<'a>>) -> Self {
        let mut summary = Summary {
            create: 0,
            update: 0,
            delete: 0,
        };
        for d in &clusters {
            summary.create += d.summary.create;
            summary.update += d.summary.update;
            summary.delete += d.summary.delete;
        }
        ClustersDocument {
            format_version: FORMAT_VERSION,
            clusters,
            summary,
        }
    }
}

/// `doc` as the document of cluster `name`, planned against `endpoint`.
pub fn for_cluster<'a>(mut doc: Document<'a>, name: &'a str, endpoint: String) -> Document<'a> {
    doc.cluster = Some(name);
    doc.endpoint = Some(endpoint);
    for c in &mut doc.changes {
        c.cluster = Some(name);
    }
    doc
}

#[derive(Serialize)]
pub struct CommitDoc<'a> {
    pub id: &'a str,
    pub short: &'a str,
    pub summary: &'a str,
}

/// The report as a JSON document.
pub fn document<'a>(report: &Report<'a>) -> Document<'a> {
    let s = report.plan.summary();
    let stack_errors = report
        .stack_errors
        .iter()
        .map(|(stack, message)| ErrorDoc::Stack { stack, message });
    let policy_errors = report.policy_errors.iter().map(|message| ErrorDoc::Policy {
        policy: true,
        message,
    });
    Document {
        format_version: FORMAT_VERSION,
        cluster: None,
        endpoint: None,
        changes: report
            .plan
            .changes
            .iter()
            .filter(|c| c.action != Action::Noop)
            .map(change)
            .collect(),
        summary: Summary {
            create: s.create,
            update: s.update,
            delete: s.delete,
        },
        violations: report.violations,
        errors: stack_errors.chain(policy_errors).collect(),
        commit: report.commit.map(|c| CommitDoc {
            id: c.id,
            short: c.short,
            summary: c.summary,
        }),
        unmanaged: report.unmanaged,
    }
}

/// The document as a JSON value.
pub fn json(report: &Report) -> Value {
    serde_json::to_value(document(report)).expect("the plan document serialises")
}

fn change(c: &Change) -> ChangeDoc<'_> {
    ChangeDoc {
        cluster: None,
        action: c.action,
        kind: c.kind,
        name: &c.name,
        stack: &c.stack,
        diff: c.diff.iter().map(field).collect(),
    }
}

fn field(f: &FieldChange) -> FieldDoc<'_> {
    let mask = |v: &Value| {
        if f.sensitive && !v.is_null() {
            Value::from(MASK)
        } else {
            v.clone()
        }
    };
    FieldDoc {
        path: &f.path,
        before: mask(&f.before),
        after: mask(&f.after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Plan;

    fn plan(names: &[&str]) -> Plan {
        Plan {
            changes: names
                .iter()
                .map(|n| Change {
                    action: Action::Create,
                    kind: Kind::Service,
                    name: n.to_string(),
                    stack: "s".into(),
                    diff: vec![],
                    desired: None,
                    live_id: None,
                    live_version: None,
                })
                .collect(),
        }
    }

    fn report(plan: &Plan) -> Report<'_> {
        static NO_VIOLATIONS: std::sync::LazyLock<
            std::collections::BTreeMap<String, Vec<Violation>>,
        > = std::sync::LazyLock::new(Default::default);
        Report {
            plan,
            commit: None,
            stack_errors: &[],
            policy_errors: &[],
            violations: &[],
            violations_by_stack: &NO_VIOLATIONS,
            unmanaged: &[],
        }
    }

    #[test]
    fn a_clusters_document_holds_one_plan_document_per_cluster() {
        let (a, b) = (plan(&["s_web", "s_db"]), plan(&["s_web"]));
        let docs = vec![
            for_cluster(document(&report(&a)), "staging", "unix:///x".into()),
            for_cluster(document(&report(&b)), "production", "ssh://mgr".into()),
        ];
        let v = serde_json::to_value(ClustersDocument::new(docs)).unwrap();
        assert_eq!(v["format_version"], FORMAT_VERSION);
        assert_eq!(v["summary"]["create"], 3);
        assert_eq!(v["clusters"][0]["cluster"], "staging");
        assert_eq!(v["clusters"][0]["endpoint"], "unix:///x");
        assert_eq!(v["clusters"][1]["changes"][0]["cluster"], "production");
        assert_eq!(v["clusters"][1]["summary"]["create"], 1);
        // The single-swarm document is unchanged: no cluster fields at all.
        let single = json(&report(&a));
        assert!(single.get("cluster").is_none() && single.get("endpoint").is_none());
        assert!(single["changes"][0].get("cluster").is_none());
    }
}
