//! The secret paths of a schema: which values are secrets.

use crate::json::{parse_pointer, pointer_from_segments};

/// The secret paths of a schema: JSON Pointers whose `*` segments match any
/// key. A value at a secret path, or anywhere below one, is a secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretPaths(Vec<Vec<String>>);

impl SecretPaths {
    /// Builds the set from pointers. An invalid pointer is kept as a literal
    /// single segment, so it can never silently widen or narrow the set.
    pub fn new<I, S>(pointers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self(
            pointers
                .into_iter()
                .map(|p| parse_pointer(p.as_ref()).unwrap_or_else(|_| vec![p.as_ref().to_owned()]))
                .collect(),
        )
    }

    /// Whether a value at `segments` is (inside) a secret.
    pub fn covers(&self, segments: &[String]) -> bool {
        self.0.iter().any(|pattern| {
            pattern.len() <= segments.len()
                && pattern
                    .iter()
                    .zip(segments)
                    .all(|(p, s)| p == "*" || p == s)
        })
    }

    /// Whether some secret lies strictly below `segments`.
    pub(crate) fn below(&self, segments: &[String]) -> bool {
        self.0.iter().any(|pattern| {
            pattern.len() > segments.len()
                && pattern
                    .iter()
                    .zip(segments)
                    .all(|(p, s)| p == "*" || p == s)
        })
    }

    /// The patterns, as pointers (for documentation and tests).
    pub fn pointers(&self) -> Vec<String> {
        self.0.iter().map(|p| pointer_from_segments(p)).collect()
    }
}
