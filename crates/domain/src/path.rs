//! A field path of a config document, parsed once.

use std::fmt;
use std::str::FromStr;

use crate::json::{parse_user_path, pointer_from_segments};
use crate::violation::Violations;

/// A path to a field of a config document: parsed from a JSON Pointer
/// (`/onboarding/enabled`, RFC 6901) or dotted segments
/// (`onboarding.enabled`; use a pointer for keys containing a dot).
///
/// ```
/// use guildconf_domain::FieldPath;
/// let path: FieldPath = "onboarding.enabled".parse()?;
/// assert_eq!(path.to_string(), "/onboarding/enabled");
/// assert_eq!(path, "/onboarding/enabled".parse()?);
/// # Ok::<(), guildconf_domain::Violations>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FieldPath(Vec<String>);

impl FieldPath {
    /// The path of these unescaped segments (`["features", "a.b"]` is
    /// `/features/a.b`). The empty list is the document's root.
    pub fn from_segments<I, S>(segments: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self(segments.into_iter().map(Into::into).collect())
    }

    /// The unescaped segments.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// Whether this is the document's root (no segment).
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for FieldPath {
    type Err = Violations;

    /// Parses a pointer (starting with `/`) or a dotted path.
    ///
    /// # Errors
    /// [`Violations`] at `/path` for an empty path, an empty dotted segment,
    /// or an invalid pointer escape.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_user_path(text)
            .map(Self)
            .map_err(|e| Violations::one("/path", e))
    }
}

impl fmt::Display for FieldPath {
    /// The JSON Pointer.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&pointer_from_segments(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_and_pointer_forms_parse_to_the_same_path() {
        let dotted: FieldPath = "onboarding.enabled".parse().expect("parses");
        let pointer: FieldPath = "/onboarding/enabled".parse().expect("parses");
        assert_eq!(dotted, pointer);
        assert_eq!(dotted.segments(), ["onboarding", "enabled"]);
        let escaped: FieldPath = "/features/a~1b.c".parse().expect("parses");
        assert_eq!(escaped.segments(), ["features", "a/b.c"]);
        assert_eq!(escaped.to_string(), "/features/a~1b.c");
        assert!(!escaped.is_root());
    }

    #[test]
    fn bad_paths_are_violations_at_path() {
        for bad in ["", "a..b", "/a~2"] {
            let err = bad.parse::<FieldPath>().expect_err(bad);
            assert_eq!(err.0[0].path, "/path", "{bad}");
        }
    }
}
