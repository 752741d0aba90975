//! The service's error type: variants a caller can act on.

use guildconf_domain::{Violation, Violations};
use guildconf_ports::StoreError;

/// Everything a [`crate::ConfigService`] call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input is invalid; every violation is listed with its path.
    /// Nothing was stored.
    #[error("invalid input: {0}")]
    Invalid(Violations),
    /// A version mismatch, an existing guild, a reused request id, or a race
    /// still lost after the retries. Nothing was stored.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The guild, version, time or path does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The database failed or is unreachable. Nothing was stored.
    #[error("storage error: {0}")]
    Storage(String),
    /// Stored data is not what guildconf writes.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl Error {
    /// An invalid-input error with one violation.
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(Violations::one(path, message))
    }

    /// The stable code the command line prints (`invalid_input`, …).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid_input",
            Error::Conflict(_) => "conflict",
            Error::NotFound(_) => "not_found",
            Error::Storage(_) => "storage",
            Error::Corrupt(_) => "corrupt",
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => Error::Conflict(m),
            StoreError::Storage(m) => Error::Storage(m),
            StoreError::Corrupt(m) => Error::Corrupt(m),
        }
    }
}

impl From<Vec<Violation>> for Error {
    fn from(v: Vec<Violation>) -> Self {
        Error::Invalid(Violations(v))
    }
}

impl From<Violations> for Error {
    fn from(v: Violations) -> Self {
        Error::Invalid(v)
    }
}

/// A service result.
pub type Result<T> = std::result::Result<T, Error>;
