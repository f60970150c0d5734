//! Plan-building helpers the render tests share.
use crate::model::{Action, Change, FieldChange, Kind};
use serde_json::Value;

/// A change with no desired spec or live object, as the renderers see it.
pub(crate) fn change(
    action: Action,
    kind: Kind,
    stack: &str,
    name: &str,
    diff: Vec<FieldChange>,
) -> Change {
    Change {
        action,
        kind,
        name: name.into(),
        stack: stack.into(),
        diff,
        desired: None,
        live_id: None,
        live_version: None,
    }
}

/// One field change.
pub(crate) fn fc(path: &str, before: Value, after: Value, sensitive: bool) -> FieldChange {
    FieldChange {
        path: path.into(),
        before,
        after,
        sensitive,
    }
}
