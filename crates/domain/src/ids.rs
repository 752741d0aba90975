//! Discord-style snowflake identifiers.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The largest value a snowflake may take, exclusive (`2^63`).
const SNOWFLAKE_LIMIT: u64 = 1 << 63;

/// A non-zero integer below `2^63`, written in JSON as a decimal string.
///
/// A `Snowflake` that exists is valid: the only ways to make one are the
/// parsing constructors, which reject zero, non-numeric text, leading zeros,
/// signs and values out of range.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Snowflake(u64);

impl Snowflake {
    /// Parses a decimal snowflake.
    ///
    /// # Errors
    /// Returns a sentence naming what is wrong when `text` is empty, not all
    /// ASCII digits, has a leading zero, is zero, or is `2^63` or more.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err(
                "must be a snowflake (a non-zero decimal integer), got an empty string".into(),
            );
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be a snowflake (a non-zero decimal integer)".into());
        }
        if text.len() > 1 && text.starts_with('0') {
            return Err("must be a snowflake without leading zeros".into());
        }
        match text.parse::<u64>() {
            Ok(0) => Err("must be a non-zero snowflake".into()),
            Ok(n) if n < SNOWFLAKE_LIMIT => Ok(Self(n)),
            _ => Err("must be a snowflake below 2^63".into()),
        }
    }

    /// Builds a snowflake from an integer.
    ///
    /// # Errors
    /// Returns a sentence when `n` is zero or `2^63` or more.
    pub fn from_u64(n: u64) -> Result<Self, String> {
        match n {
            0 => Err("must be a non-zero snowflake".into()),
            n if n < SNOWFLAKE_LIMIT => Ok(Self(n)),
            _ => Err("must be a snowflake below 2^63".into()),
        }
    }

    /// Reads a snowflake from a JSON value: a decimal string, or a bare
    /// integer (which is then stored as its decimal string).
    ///
    /// # Errors
    /// Returns a sentence for any other JSON value or an invalid number.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(s) => Self::parse(s),
            Value::Number(n) => match n.as_u64() {
                Some(u) => Self::from_u64(u),
                None if n.as_i64().is_some() => Err("must be a positive snowflake".into()),
                None => Err("must be a snowflake (an integer below 2^63)".into()),
            },
            _ => Err(format!(
                "must be a snowflake (a decimal string), got {}",
                json_kind(value)
            )),
        }
    }

    /// The integer value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The value as a signed 64-bit integer, as databases store it. Never
    /// negative, because a snowflake is below `2^63`.
    pub fn as_i64(self) -> i64 {
        // A snowflake is below 2^63 by construction, so this never wraps.
        self.0 as i64
    }
}

/// Names the JSON type of a value for error messages ("a string", "null").
pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Snowflake({})", self.0)
    }
}

impl FromStr for Snowflake {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Snowflake {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Self::from_json(&value).map_err(serde::de::Error::custom)
    }
}

/// The id of a guild (tenant). Every table and query is keyed by it first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GuildId(Snowflake);

impl GuildId {
    /// Parses a guild id from its decimal form.
    ///
    /// # Errors
    /// As [`Snowflake::parse`].
    pub fn parse(text: &str) -> Result<Self, String> {
        Snowflake::parse(text).map(Self)
    }

    /// Builds a guild id from an integer.
    ///
    /// # Errors
    /// As [`Snowflake::from_u64`].
    pub fn from_u64(n: u64) -> Result<Self, String> {
        Snowflake::from_u64(n).map(Self)
    }

    /// The underlying snowflake.
    pub fn snowflake(self) -> Snowflake {
        self.0
    }

    /// The id as databases store it (a positive `BIGINT`).
    pub fn as_i64(self) -> i64 {
        self.0.as_i64()
    }

    /// Reads back an id a database stored.
    ///
    /// # Errors
    /// Returns a sentence when the stored value is not a valid snowflake.
    pub fn from_i64(n: i64) -> Result<Self, String> {
        u64::try_from(n)
            .map_err(|_| "stored guild id is negative".to_string())
            .and_then(Self::from_u64)
    }
}

impl fmt::Display for GuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for GuildId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GuildId({})", self.0)
    }
}

impl FromStr for GuildId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_valid_and_rejects_invalid() {
        assert_eq!(
            Snowflake::parse("80351110224678912").map(Snowflake::get),
            Ok(80351110224678912)
        );
        for bad in [
            "",
            "0",
            "abc",
            "-1",
            "+1",
            "01",
            "9223372036854775808",
            "1.5",
            " 1",
        ] {
            assert!(Snowflake::parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(Snowflake::parse("9223372036854775807").is_ok());
    }

    #[test]
    fn bare_integers_become_strings() {
        let s = Snowflake::from_json(&json!(9007199254740993u64)).expect("in range");
        assert_eq!(
            serde_json::to_value(s).expect("serialises"),
            json!("9007199254740993")
        );
        assert!(Snowflake::from_json(&json!(0)).is_err());
        assert!(Snowflake::from_json(&json!(-5)).is_err());
        assert!(Snowflake::from_json(&json!(1.5)).is_err());
        assert!(Snowflake::from_json(&json!(true)).is_err());
    }
}
