//! The trait a config type implements.

use std::fmt;

use serde_json::Value;

use crate::secret_paths::SecretPaths;
use crate::violation::Violations;

/// What guildconf needs to know about a config type. The shipped
/// implementation is [`crate::GuildConfigSchema`]; a bot may bring its own.
///
/// Storage, diff and audit only ever see the canonical JSON document this
/// trait produces. Implementations must be pure and deterministic.
pub trait ConfigSchema: Send + Sync + fmt::Debug {
    /// The document of a guild that was never configured (already normalised).
    fn defaults(&self) -> Value;

    /// Validates a possibly partial document and returns its normalised form:
    /// every field present, empty optionals as `null`, ids as strings.
    ///
    /// # Errors
    /// Returns **every** violation found, each with its path. Unknown fields
    /// are violations.
    fn normalise(&self, input: &Value) -> Result<Value, Violations>;

    /// The paths whose values are secrets (JSON Pointers; a `*` segment
    /// matches any key).
    fn secret_paths(&self) -> SecretPaths;
}
