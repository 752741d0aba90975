//! Sanitised request metadata recorded with each entry.

use serde_json::{Map, Value};

/// Longest context value kept, in characters; longer values are cut.
pub const MAX_CONTEXT_VALUE: usize = 256;
/// Most keys kept.
pub const MAX_CONTEXT_KEYS: usize = 16;

/// Request metadata (source such as `cli` or `slash-command`, ip, user agent,
/// session id) as it goes into an audit entry: keys `[a-z0-9_]{1,32}`, string
/// values with control characters removed and cut to 256 characters, at most
/// 16 keys, and never a key that names a secret (`token`, `password`,
/// `secret`, `authorization`, `cookie`, `key`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestContext(Map<String, Value>);

impl RequestContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one entry, sanitising it; a key that is invalid or names a
    /// secret is dropped.
    #[must_use]
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.insert(key, value);
        self
    }

    /// Adds one entry, sanitising it; returns whether it was kept.
    pub fn insert(&mut self, key: &str, value: &str) -> bool {
        let key_ok = (1..=32).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        let secretish = [
            "token",
            "password",
            "secret",
            "authorization",
            "cookie",
            "key",
        ]
        .iter()
        .any(|word| key.contains(word));
        if !key_ok || secretish || (self.0.len() >= MAX_CONTEXT_KEYS && !self.0.contains_key(key)) {
            return false;
        }
        let clean: String = value
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_CONTEXT_VALUE)
            .collect();
        self.0.insert(key.to_owned(), Value::String(clean));
        true
    }

    /// Merges another context in; its entries win.
    pub fn extend(&mut self, other: &RequestContext) {
        for (k, v) in &other.0 {
            if let Some(s) = v.as_str() {
                self.insert(k, s);
            }
        }
    }

    /// A context from an entry's recorded object, sanitised as
    /// [`RequestContext::insert`] does: a value that is not a string, or
    /// anything the rules drop, is left out (so an entry guildconf did not
    /// write rebuilds to a different one).
    pub fn from_map(map: &Map<String, Value>) -> Self {
        let mut context = Self::new();
        for (k, v) in map {
            if let Some(s) = v.as_str() {
                context.insert(k, s);
            }
        }
        context
    }

    /// The JSON object written into the entry.
    pub fn to_map(&self) -> Map<String, Value> {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_control_characters_and_secrets() {
        let ctx = RequestContext::new()
            .with("source", "slash\r\n-command\u{0}")
            .with("api_token", "abc")
            .with("Bad Key", "x")
            .with("user_agent", &"a".repeat(1000));
        let map = ctx.to_map();
        assert_eq!(
            map.get("source").and_then(Value::as_str),
            Some("slash-command")
        );
        assert!(!map.contains_key("api_token"));
        assert!(!map.contains_key("Bad Key"));
        assert_eq!(
            map.get("user_agent").and_then(Value::as_str).map(str::len),
            Some(MAX_CONTEXT_VALUE)
        );
    }
}
