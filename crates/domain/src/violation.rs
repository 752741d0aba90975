//! Validation errors: one problem at a JSON Pointer path, and all of them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One thing wrong with an input, at a JSON Pointer path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// The JSON Pointer of the offending value (`""` for the whole document).
    pub path: String,
    /// What is wrong, as a sentence fragment.
    pub message: String,
}

impl Violation {
    /// A violation at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "(document): {}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every violation found in one input, never just the first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    /// A single violation.
    pub fn one(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self(vec![Violation::new(path, message)])
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}
