//! Secrets: a wrapper that never prints its value, and redaction of
//! documents and changes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::diff::Change;
use crate::json::{get_at, parse_pointer, pointer_from_segments};
use crate::secret_paths::SecretPaths;
use crate::violation::Violation;

/// What a redacted value shows as.
pub const REDACTED: &str = "[redacted]";

/// A secret value: `Debug` and `Display` print `[redacted]`, never the value.
/// Serialising writes the real value (storage needs it); redaction of
/// documents happens by path, before anything is shown or hashed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The value, for the one place that needs it (such as posting to a
    /// webhook). Never log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<T: Serialize> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self)
    }
}

/// Returns `value` (found at `segments`) with every non-null secret replaced
/// by `"[redacted]"`.
pub fn redact_at(value: &Value, segments: &mut Vec<String>, secrets: &SecretPaths) -> Value {
    if secrets.covers(segments) {
        return if value.is_null() {
            Value::Null
        } else {
            Value::String(REDACTED.to_owned())
        };
    }
    if !secrets.below(segments) {
        return value.clone();
    }
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    segments.push(k.clone());
                    let out = redact_at(v, segments, secrets);
                    segments.pop();
                    (k.clone(), out)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    segments.push(i.to_string());
                    let out = redact_at(v, segments, secrets);
                    segments.pop();
                    out
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A whole document with its secrets redacted.
pub fn redact_document(document: &Value, secrets: &SecretPaths) -> Value {
    redact_at(document, &mut Vec::new(), secrets)
}

/// Changes with every secret value redacted, also inside larger values.
pub fn redact_changes(changes: &[Change], secrets: &SecretPaths) -> Vec<Change> {
    changes
        .iter()
        .map(|change| {
            let mut segments = parse_pointer(change.path()).unwrap_or_default();
            let mut redact = |v: &Value| redact_at(v, &mut segments, secrets);
            match change {
                Change::Add { path, after } => Change::Add {
                    path: path.clone(),
                    after: redact(after),
                },
                Change::Remove { path, before } => Change::Remove {
                    path: path.clone(),
                    before: redact(before),
                },
                Change::Replace {
                    path,
                    before,
                    after,
                } => Change::Replace {
                    path: path.clone(),
                    before: redact(before),
                    after: redact(after),
                },
            }
        })
        .collect()
}

/// On input, `"[redacted]"` at a secret path means "keep the current value",
/// so show → edit → apply never destroys a secret. Replaces each such
/// placeholder in `input` with the value in `current`.
///
/// # Errors
/// A violation for each placeholder that has no stored value to keep.
pub fn restore_kept_secrets(
    input: &mut Value,
    current: Option<&Value>,
    secrets: &SecretPaths,
) -> Result<(), Vec<Violation>> {
    let mut problems = Vec::new();
    restore_walk(input, &mut Vec::new(), current, secrets, &mut problems);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

fn restore_walk(
    value: &mut Value,
    segments: &mut Vec<String>,
    current: Option<&Value>,
    secrets: &SecretPaths,
    problems: &mut Vec<Violation>,
) {
    if secrets.covers(segments) && value.as_str() == Some(REDACTED) {
        match current.and_then(|c| get_at(c, segments)) {
            Some(kept) if !kept.is_null() => *value = kept.clone(),
            _ => problems.push(Violation::new(
                pointer_from_segments(segments),
                "\"[redacted]\" keeps the stored secret, but none is stored",
            )),
        }
        return;
    }
    if let Value::Object(map) = value {
        for (k, v) in map.iter_mut() {
            segments.push(k.clone());
            restore_walk(v, segments, current, secrets, problems);
            segments.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secrets() -> SecretPaths {
        SecretPaths::new(["/announcements/webhook_url", "/tokens/*"])
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn redacts_inside_larger_values_and_keeps_null() {
        let doc = json!({"announcements": {"webhook_url": "https://x/y", "enabled": true}, "tokens": {"a": {"b": 1}}, "other": "https://x/y"});
        let r = redact_document(&doc, &secrets());
        assert_eq!(r["announcements"]["webhook_url"], json!(REDACTED));
        assert_eq!(r["tokens"]["a"], json!(REDACTED));
        assert_eq!(r["other"], json!("https://x/y"));
        let null = json!({"announcements": {"webhook_url": null}});
        assert_eq!(redact_document(&null, &secrets()), null);
    }

    #[test]
    fn placeholder_keeps_stored_secret() {
        let stored = json!({"announcements": {"webhook_url": "https://x/y"}});
        let mut input = json!({"announcements": {"webhook_url": REDACTED}});
        restore_kept_secrets(&mut input, Some(&stored), &secrets()).expect("kept");
        assert_eq!(input, stored);
        let mut input = json!({"announcements": {"webhook_url": REDACTED}});
        assert!(restore_kept_secrets(&mut input, None, &secrets()).is_err());
    }
}
