//! Audit timestamps: UTC, microsecond precision, `Z` suffix.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with exactly microsecond precision, written as
/// `2026-11-22T04:45:44.123000Z` (always six fraction digits). Because the
/// width is fixed, the text sorts in time order, which both backends rely on.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Truncates an instant to whole microseconds.
    pub fn from_datetime(at: DateTime<Utc>) -> Self {
        let micros = at.timestamp_micros();
        Self(DateTime::from_timestamp_micros(micros).unwrap_or(at))
    }

    /// The time of the next audit entry of a guild: `now`, unless that is not
    /// after the previous entry, in which case one microsecond after it. This
    /// keeps a chain strictly increasing in time even when shards' clocks
    /// disagree.
    pub fn next_after(now: DateTime<Utc>, previous: Option<Timestamp>) -> Self {
        let now = Self::from_datetime(now);
        match previous {
            Some(prev) if now <= prev => Self(prev.0 + TimeDelta::microseconds(1)),
            _ => now,
        }
    }

    /// Parses an RFC 3339 time with an explicit offset (`Z` or `+02:00`).
    ///
    /// # Errors
    /// Returns a sentence when `text` is not RFC 3339, or is more precise than
    /// a microsecond.
    pub fn parse_rfc3339(text: &str) -> Result<Self, String> {
        let parsed = DateTime::parse_from_rfc3339(text).map_err(|e| {
            format!("must be an RFC 3339 time with an offset, such as 2026-11-22T04:45:44Z ({e})")
        })?;
        let utc = parsed.with_timezone(&Utc);
        Ok(Self::from_datetime(utc))
    }

    /// Parses the exact stored form (`…​.ffffffZ`).
    ///
    /// # Errors
    /// Returns a sentence when `text` is not in that exact form.
    pub fn parse_stored(text: &str) -> Result<Self, String> {
        let ts = Self::parse_rfc3339(text)?;
        if ts.to_string() != text {
            return Err("must be UTC with exactly six fraction digits and a Z suffix".into());
        }
        Ok(ts)
    }

    /// Whether `text` is in the exact stored form, the same answer as
    /// [`Timestamp::parse_stored`]`(text).is_ok()`, without allocating: the
    /// fixed shape `YYYY-MM-DDTHH:MM:SS.ffffffZ` holding a real date and time.
    pub fn is_stored_form(text: &str) -> bool {
        let b = text.as_bytes();
        if b.len() != 27 {
            return false;
        }
        let shape_ok = b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        });
        if !shape_ok {
            return false;
        }
        let num = |from: usize, to: usize| {
            b[from..to]
                .iter()
                .fold(0u32, |n, c| n * 10 + u32::from(c - b'0'))
        };
        let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
        let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
        i32::try_from(year)
            .ok()
            .and_then(|y| chrono::NaiveDate::from_ymd_opt(y, month, day))
            .is_some()
            && hour < 24
            && minute < 60
            && second < 60
    }

    /// The instant.
    pub fn datetime(self) -> DateTime<Utc> {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse_stored(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_six_digits_and_z() {
        let ts = Timestamp::parse_rfc3339("2026-11-22T05:45:44.123+01:00").expect("valid");
        assert_eq!(ts.to_string(), "2026-11-22T04:45:44.123000Z");
        assert!(Timestamp::parse_stored("2026-11-22T04:45:44.123Z").is_err());
        assert!(Timestamp::parse_stored("2026-11-22T04:45:44.123000Z").is_ok());
        assert!(Timestamp::parse_rfc3339("2026-11-22 04:45").is_err());
    }

    #[test]
    fn is_stored_form_agrees_with_parse_stored() {
        for text in [
            "2026-11-22T04:45:44.123000Z",
            "0000-01-01T00:00:00.000000Z",
            "9999-12-31T23:59:59.999999Z",
            "2024-02-29T00:00:00.000000Z",
            "2026-02-29T00:00:00.000000Z",
            "2026-13-01T00:00:00.000000Z",
            "2026-11-31T00:00:00.000000Z",
            "2026-11-22T24:00:00.000000Z",
            "2026-11-22T23:60:00.000000Z",
            "2026-11-22T23:59:60.000000Z",
            "2026-11-22T04:45:44.123000+",
            "2026-11-22t04:45:44.123000Z",
            "2026-11-22T04:45:44,123000Z",
            "2026-11-22T04:45:44.12300Z",
            "+026-11-22T04:45:44.123000Z",
            "2026-1a-22T04:45:44.123000Z",
            "",
        ] {
            assert_eq!(
                Timestamp::is_stored_form(text),
                Timestamp::parse_stored(text).is_ok(),
                "{text}"
            );
        }
    }

    #[test]
    fn next_after_is_strictly_increasing() {
        let prev = Timestamp::parse_stored("2026-11-22T04:45:44.123000Z").expect("valid");
        let earlier = Timestamp::parse_stored("2026-11-22T04:00:00.000000Z").expect("valid");
        let next = Timestamp::next_after(earlier.datetime(), Some(prev));
        assert_eq!(next.to_string(), "2026-11-22T04:45:44.123001Z");
        let later = Timestamp::parse_stored("2026-11-22T05:00:00.000000Z").expect("valid");
        assert_eq!(Timestamp::next_after(later.datetime(), Some(prev)), later);
    }
}
