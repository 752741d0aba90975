//! The text of arguments and files turned into values, once for every
//! command: a bad value is [`Error::Invalid`] (exit 3) naming the argument.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Duration;

use guildconf::{
    Actor, ActorKind, Error, FieldPath, GuildId, RequestContext, Timestamp, WriteMeta,
};
use serde_json::Value;

use super::args::{GuardArgs, PurgeActorArgs, WriteArgs};

/// Invalid input at `path` (a JSON Pointer into the request).
pub fn invalid(path: &str, message: impl Into<String>) -> Error {
    Error::invalid(path, message)
}

/// Parses an optional argument with `parse`.
pub fn optional<T>(
    text: Option<&str>,
    parse: impl FnOnce(&str) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    text.map(parse).transpose()
}

pub fn parse_guild(text: &str) -> Result<GuildId, Error> {
    GuildId::parse(text).map_err(|e| invalid("/guild_id", format!("guild id {e}")))
}

/// `--NAME` as a non-negative integer (`name` with underscores).
pub fn parse_u64(name: &str, text: &str) -> Result<u64, Error> {
    text.parse::<u64>().map_err(|_| {
        invalid(
            &format!("/{name}"),
            format!(
                "--{} must be a non-negative integer",
                name.replace('_', "-")
            ),
        )
    })
}

/// `--NAME` as a duration: a whole number with a unit, `ms`, `s` or `m`
/// (`500ms`, `5s`, `2m`), or `0` for none.
pub fn parse_duration(name: &str, text: &str) -> Result<Duration, Error> {
    let bad = || {
        invalid(
            &format!("/{name}"),
            format!(
                "--{} must be a whole number with a unit, ms, s or m (such as 500ms, 5s, 2m), \
                 or 0 for none; got {text:?}",
                name.replace('_', "-")
            ),
        )
    };
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let millis = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        _ => None,
    };
    millis.map(Duration::from_millis).ok_or_else(bad)
}

/// `--NAME` as an RFC 3339 time.
pub fn parse_time(name: &str, text: &str) -> Result<Timestamp, Error> {
    Timestamp::parse_rfc3339(text)
        .map_err(|e| invalid(&format!("/{name}"), format!("--{name} {e}")))
}

/// A field path: dotted or a JSON Pointer.
pub fn parse_path(text: &str) -> Result<FieldPath, Error> {
    Ok(text.parse()?)
}

/// `PATH=VALUE`: VALUE is JSON if it parses, otherwise a string.
pub fn parse_assignment(text: &str) -> Result<(FieldPath, Value), Error> {
    let Some((path, value)) = text.split_once('=') else {
        return Err(invalid(
            "/set",
            format!("expected PATH=VALUE, got {text:?}"),
        ));
    };
    let segments = parse_path(path)?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((segments, value))
}

/// The whole text of the file given by the argument at `arg` (e.g. `/file`).
pub fn read_text(arg: &str, path: &Path) -> Result<String, Error> {
    let file = File::open(path)
        .map_err(|e| invalid(arg, format!("cannot read {}: {e}", path.display())))?;
    guildconf::input::read_capped(file).map_err(|e| invalid(arg, format!("{} {e}", path.display())))
}

/// The JSON document of `--file`.
pub fn read_json_file(path: &Path) -> Result<Value, Error> {
    let text = read_text("/file", path)?;
    serde_json::from_str(&text).map_err(|e| {
        invalid(
            "/file",
            format!("{} is not valid JSON: {e}", path.display()),
        )
    })
}

/// A file given as `--file` or `FILE`, opened for reading.
pub fn open_file(path: &Path) -> Result<BufReader<File>, Error> {
    File::open(path)
        .map(BufReader::new)
        .map_err(|e| invalid("/file", format!("cannot open {}: {e}", path.display())))
}

/// The metadata of a change by the actor the flags name, from the CLI.
fn actor_meta(
    id: &str,
    kind: &str,
    label: Option<&str>,
    reason: Option<&String>,
) -> Result<WriteMeta, Error> {
    let kind =
        ActorKind::parse(kind).map_err(|e| invalid("/actor/kind", format!("--actor-kind {e}")))?;
    let mut meta = WriteMeta::new(Actor::new(id, kind, label)?);
    meta.reason = reason.cloned();
    meta.context = RequestContext::new().with("source", "cli");
    Ok(meta)
}

impl WriteArgs {
    /// The metadata of this write.
    pub fn meta(&self, expect_version: Option<&str>, dry_run: bool) -> Result<WriteMeta, Error> {
        let mut meta = actor_meta(
            &self.actor,
            &self.actor_kind,
            self.actor_label.as_deref(),
            self.reason.as_ref(),
        )?;
        meta.request_id.clone_from(&self.request_id);
        meta.expect_version = optional(expect_version, |v| parse_u64("expect_version", v))?;
        meta.dry_run = dry_run;
        Ok(meta)
    }
}

impl GuardArgs {
    /// The metadata of this guarded write.
    pub fn meta(&self) -> Result<WriteMeta, Error> {
        self.write
            .meta(self.expect_version.as_deref(), self.dry_run)
    }
}

impl PurgeActorArgs {
    /// The metadata of the purge entries.
    pub fn meta(&self) -> Result<WriteMeta, Error> {
        actor_meta(
            &self.actor,
            &self.actor_kind,
            self.actor_label.as_deref(),
            self.reason.as_ref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::parse_duration;

    #[test]
    fn durations() {
        for (text, ms) in [("0", 0), ("500ms", 500), ("5s", 5000), ("2m", 120_000)] {
            let d = parse_duration("lock_timeout", text).expect(text);
            assert_eq!(d, Duration::from_millis(ms), "{text}");
        }
        for bad in [
            "",
            "5",
            "s",
            "1.5s",
            "-1s",
            "5 s",
            "5h",
            "5S",
            "99999999999999999999m",
        ] {
            let e = parse_duration("lock_timeout", bad).expect_err(bad);
            assert!(e.to_string().contains("--lock-timeout"), "{bad}: {e}");
        }
    }
}
