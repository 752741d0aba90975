//! JSON helpers: RFC 6901 pointers, RFC 8785 canonical form, SHA-256, and the
//! limits every stored document obeys.

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::schema::Violation;

/// The largest canonical document accepted, in bytes (64 KiB).
pub const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// The largest integer magnitude canonical JSON can carry exactly (`2^53`).
pub const MAX_SAFE_INTEGER: u64 = 1 << 53;

/// The RFC 8785 (JSON Canonicalization Scheme) form of a value.
///
/// # Errors
/// Returns a sentence when the value cannot be canonicalised (a number that
/// has no finite IEEE 754 form).
pub fn canonical<T: Serialize>(value: &T) -> Result<String, String> {
    serde_json_canonicalizer::to_string(value).map_err(|e| format!("cannot canonicalise: {e}"))
}

/// Lowercase hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lowercase hex SHA-256 of the canonical form of a value.
///
/// # Errors
/// As [`canonical`].
pub fn canonical_sha256<T: Serialize>(value: &T) -> Result<String, String> {
    canonical(value).map(|c| sha256_hex(c.as_bytes()))
}

/// Escapes one reference token for a JSON Pointer (`~` → `~0`, `/` → `~1`).
pub fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Builds a JSON Pointer from its unescaped segments.
pub fn pointer_from_segments<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(&escape_token(s.as_ref()));
    }
    out
}

/// Splits a JSON Pointer (RFC 6901) into unescaped segments.
///
/// # Errors
/// Returns a sentence when the pointer is not empty and does not start with
/// `/`, or contains a `~` not followed by `0` or `1`.
pub fn parse_pointer(pointer: &str) -> Result<Vec<String>, String> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err("a JSON Pointer must start with '/'".into());
    };
    rest.split('/')
        .map(|raw| {
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c == '~' {
                    match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err("'~' in a JSON Pointer must be followed by 0 or 1".into()),
                    }
                } else {
                    out.push(c);
                }
            }
            Ok(out)
        })
        .collect()
}

/// Parses a user-given path: a JSON Pointer when it starts with `/`,
/// otherwise dotted segments (`onboarding.enabled`).
///
/// # Errors
/// Returns a sentence for an empty path, an empty dotted segment, or an
/// invalid pointer.
pub fn parse_user_path(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Err("path is empty".into());
    }
    if path.starts_with('/') {
        return parse_pointer(path);
    }
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(format!(
            "path {path:?} has an empty segment (use a JSON Pointer such as /features/x for keys containing a dot)"
        ));
    }
    Ok(segments)
}

/// Renders a path for people: dotted when no segment contains a dot or
/// slash, otherwise the JSON Pointer.
pub fn display_path(pointer: &str) -> String {
    match parse_pointer(pointer) {
        Ok(segments)
            if !segments.is_empty()
                && segments
                    .iter()
                    .all(|s| !s.is_empty() && !s.contains('.') && !s.contains('/')) =>
        {
            segments.join(".")
        }
        _ => pointer.to_owned(),
    }
}

/// Checks the limits every stored document and input obeys, adding a
/// violation for each breach: integers beyond ±2^53, non-finite numbers,
/// U+0000 in any string or key.
pub fn check_limits(value: &Value, path: &mut Vec<String>, out: &mut Vec<Violation>) {
    match value {
        Value::Number(n) => {
            let too_big = if let Some(u) = n.as_u64() {
                u > MAX_SAFE_INTEGER
            } else if let Some(i) = n.as_i64() {
                i.unsigned_abs() > MAX_SAFE_INTEGER
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() => f.abs() > MAX_SAFE_INTEGER as f64,
                    _ => {
                        out.push(Violation::new(
                            pointer_from_segments(path),
                            "numbers must be finite",
                        ));
                        return;
                    }
                }
            };
            if too_big {
                out.push(Violation::new(
                    pointer_from_segments(path),
                    "numbers beyond ±2^53 cannot be stored exactly (write ids as strings)",
                ));
            }
        }
        Value::String(s) => {
            if s.contains('\0') {
                out.push(Violation::new(
                    pointer_from_segments(path),
                    "strings must not contain U+0000",
                ));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                path.push(i.to_string());
                check_limits(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                path.push(k.clone());
                if k.contains('\0') {
                    out.push(Violation::new(
                        pointer_from_segments(path),
                        "keys must not contain U+0000",
                    ));
                }
                check_limits(v, path, out);
                path.pop();
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

/// Reads the value at a pointer's segments.
pub fn get_at<'a>(value: &'a Value, segments: &[String]) -> Option<&'a Value> {
    let mut current = value;
    for s in segments {
        current = match current {
            Value::Object(map) => map.get(s)?,
            Value::Array(items) => items.get(s.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

/// Sets the value at a pointer's segments, creating objects along the way.
///
/// # Errors
/// Returns a sentence when a parent on the way is not an object, or the path
/// is empty.
pub fn set_at(target: &mut Value, segments: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = segments.split_last() else {
        return Err("cannot set the whole document through a path".into());
    };
    let mut current = target;
    for (depth, s) in parents.iter().enumerate() {
        if current.is_null() {
            *current = Value::Object(serde_json::Map::new());
        }
        let Value::Object(map) = current else {
            return Err(format!(
                "{} is not an object",
                pointer_from_segments(&segments[..depth])
            ));
        };
        current = map
            .entry(s.clone())
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
    }
    if current.is_null() {
        *current = Value::Object(serde_json::Map::new());
    }
    match current {
        Value::Object(map) => {
            map.insert(last.clone(), value);
            Ok(())
        }
        _ => Err(format!(
            "{} is not an object",
            pointer_from_segments(parents)
        )),
    }
}

/// Removes the value at a pointer's segments; returns whether anything was
/// there.
pub fn remove_at(target: &mut Value, segments: &[String]) -> bool {
    let Some((last, parents)) = segments.split_last() else {
        return false;
    };
    let mut current = target;
    for s in parents {
        current = match current {
            Value::Object(map) => match map.get_mut(s) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match current {
        Value::Object(map) => map.remove(last).is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers_round_trip() {
        let segs = vec!["a/b".to_string(), "c~d".to_string(), String::new()];
        let p = pointer_from_segments(&segs);
        assert_eq!(p, "/a~1b/c~0d/");
        assert_eq!(parse_pointer(&p), Ok(segs));
        assert!(parse_pointer("a").is_err());
        assert!(parse_pointer("/a~2").is_err());
    }

    #[test]
    fn user_paths() {
        assert_eq!(
            parse_user_path("onboarding.enabled"),
            Ok(vec!["onboarding".to_string(), "enabled".to_string()])
        );
        assert_eq!(
            parse_user_path("/features/a.b"),
            Ok(vec!["features".to_string(), "a.b".to_string()])
        );
        assert!(parse_user_path("a..b").is_err());
        assert!(parse_user_path("").is_err());
        assert_eq!(display_path("/features/a.b"), "/features/a.b");
        assert_eq!(display_path("/onboarding/enabled"), "onboarding.enabled");
    }

    #[test]
    fn limits() {
        let mut out = Vec::new();
        check_limits(
            &json!({"a": 9007199254740993u64, "b": "x\u{0}y", "c": [-9007199254740993i64], "ok": 9007199254740992u64}),
            &mut Vec::new(),
            &mut out,
        );
        let paths: Vec<_> = out.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, vec!["/a", "/b", "/c/0"]);
    }

    #[test]
    fn canonical_form_sorts_keys() {
        assert_eq!(
            canonical(&json!({"b": 1, "a": [1.0, "é"]})).as_deref(),
            Ok(r#"{"a":[1,"é"],"b":1}"#)
        );
    }
}
