//! JSON-Pointer diffs between documents.

use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::json::{escape_token, parse_pointer, remove_at, set_at};

/// One change between two documents. Serialised with an `op` tag; an `add`
/// has no `before` key and a `remove` no `after` key. The keys are written in
/// RFC 8785 order (`after`, `before`, `op`, `path`), so an entry body's
/// compact text is already canonical (see [`crate::entry::EntryBody::canonical`]).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Change {
    /// A key that was absent now has a value.
    Add {
        /// JSON Pointer of the key.
        path: String,
        /// The new value.
        after: Value,
    },
    /// A key that had a value is now absent.
    Remove {
        /// JSON Pointer of the key.
        path: String,
        /// The old value.
        before: Value,
    },
    /// A value changed.
    Replace {
        /// JSON Pointer of the value.
        path: String,
        /// The old value.
        before: Value,
        /// The new value.
        after: Value,
    },
}

impl Serialize for Change {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (op, path, before, after) = match self {
            Change::Add { path, after } => ("add", path, None, Some(after)),
            Change::Remove { path, before } => ("remove", path, Some(before), None),
            Change::Replace {
                path,
                before,
                after,
            } => ("replace", path, Some(before), Some(after)),
        };
        let len = 2 + usize::from(before.is_some()) + usize::from(after.is_some());
        let mut fields = serializer.serialize_struct("Change", len)?;
        if let Some(after) = after {
            fields.serialize_field("after", after)?;
        }
        if let Some(before) = before {
            fields.serialize_field("before", before)?;
        }
        fields.serialize_field("op", op)?;
        fields.serialize_field("path", path)?;
        fields.end()
    }
}

impl Change {
    /// The JSON Pointer this change is at.
    pub fn path(&self) -> &str {
        match self {
            Change::Add { path, .. }
            | Change::Remove { path, .. }
            | Change::Replace { path, .. } => path,
        }
    }
}

/// The changes that turn `before` into `after`, sorted by path (byte order of
/// the escaped pointer). Objects are compared key by key, recursively; arrays
/// and scalars as whole values.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    diff_into(before, after, &mut String::new(), &mut out);
    out.sort_by(|a, b| a.path().as_bytes().cmp(b.path().as_bytes()));
    out
}

fn diff_into(before: &Value, after: &Value, path: &mut String, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => diff_objects(b, a, path, out),
        _ if before == after => {}
        _ => out.push(Change::Replace {
            path: path.clone(),
            before: before.clone(),
            after: after.clone(),
        }),
    }
}

fn diff_objects(
    before: &Map<String, Value>,
    after: &Map<String, Value>,
    path: &mut String,
    out: &mut Vec<Change>,
) {
    for (key, b) in before {
        let len = path.len();
        path.push('/');
        path.push_str(&escape_token(key));
        match after.get(key) {
            Some(a) => diff_into(b, a, path, out),
            None => out.push(Change::Remove {
                path: path.clone(),
                before: b.clone(),
            }),
        }
        path.truncate(len);
    }
    for (key, a) in after {
        if !before.contains_key(key) {
            out.push(Change::Add {
                path: format!("{path}/{}", escape_token(key)),
                after: a.clone(),
            });
        }
    }
}

/// Applies changes to a document, the inverse of [`diff`]:
/// `apply_changes(a, &diff(a, b)) == b`.
///
/// # Errors
/// Returns a sentence when a change's path is not a valid pointer or does not
/// fit the document.
pub fn apply_changes(document: &Value, changes: &[Change]) -> Result<Value, String> {
    let mut out = document.clone();
    for change in changes {
        let segments = parse_pointer(change.path())?;
        match change {
            Change::Add { after, .. } | Change::Replace { after, .. } => {
                if segments.is_empty() {
                    out = after.clone();
                } else {
                    set_at(&mut out, &segments, after.clone())?;
                }
            }
            Change::Remove { path, .. } => {
                if !remove_at(&mut out, &segments) {
                    return Err(format!("nothing to remove at {path}"));
                }
            }
        }
    }
    Ok(out)
}

/// Undoes changes: the document before them, from the document after them,
/// `unapply_changes(b, &diff(a, b)) == a`. Import uses it to rebuild the
/// document before the first entry kept after a purge.
///
/// # Errors
/// As [`apply_changes`].
pub fn unapply_changes(document: &Value, changes: &[Change]) -> Result<Value, String> {
    let inverse: Vec<Change> = changes
        .iter()
        .rev()
        .map(|change| match change {
            Change::Add { path, after } => Change::Remove {
                path: path.clone(),
                before: after.clone(),
            },
            Change::Remove { path, before } => Change::Add {
                path: path.clone(),
                after: before.clone(),
            },
            Change::Replace {
                path,
                before,
                after,
            } => Change::Replace {
                path: path.clone(),
                before: after.clone(),
                after: before.clone(),
            },
        })
        .collect();
    apply_changes(document, &inverse)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unapply_undoes_a_diff() {
        let before = json!({"o": {"a/b": 1, "keep": true, "gone": 2}, "arr": [1, 2]});
        let after = json!({"o": {"a/b": 3, "keep": true, "new": null}, "arr": [1], "x": {}});
        assert_eq!(unapply_changes(&after, &diff(&before, &after)), Ok(before));
    }

    #[test]
    fn create_is_one_add_per_top_level_key() {
        let changes = diff(&json!({}), &json!({"b": {"x": 1}, "a": [1]}));
        assert_eq!(
            serde_json::to_value(&changes).expect("serialises"),
            json!([{"op": "add", "path": "/a", "after": [1]}, {"op": "add", "path": "/b", "after": {"x": 1}}])
        );
    }

    #[test]
    fn nested_changes_sorted_and_escaped() {
        let before = json!({"o": {"a/b": 1, "keep": true, "gone": 2}, "arr": [1, 2]});
        let after = json!({"o": {"a/b": 3, "keep": true, "new": null}, "arr": [1]});
        let changes = diff(&before, &after);
        let paths: Vec<_> = changes.iter().map(Change::path).collect();
        assert_eq!(paths, vec!["/arr", "/o/a~1b", "/o/gone", "/o/new"]);
        assert_eq!(apply_changes(&before, &changes), Ok(after));
    }
}
