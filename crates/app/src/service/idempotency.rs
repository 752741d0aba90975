//! Idempotency: a write's fingerprint and the replay of a recorded result.

use guildconf_domain::json::canonical_sha256;
use guildconf_domain::{Actor, FieldPath, GuildId};
use guildconf_ports::RequestRecord;
use serde_json::{json, Value};

use super::{Edit, WriteResult};
use crate::error::{Error, Result};

impl Edit {
    pub(super) fn operation_name(&self) -> &'static str {
        match self {
            Edit::Create { .. } => "create",
            Edit::Update(_) => "update",
            Edit::Upsert(_) => "upsert",
            Edit::Replace { .. } => "apply",
            Edit::Revert { .. } => "revert",
            Edit::Delete => "delete",
            Edit::Event(_) => "event",
        }
    }

    /// The canonical form of the input, for the idempotency fingerprint.
    pub(super) fn fingerprint_input(&self) -> Value {
        let path = |p: &FieldPath| Value::String(p.to_string());
        match self {
            Edit::Create { input } => input.clone(),
            Edit::Update(edit) | Edit::Upsert(edit) => json!({
                "set": edit.sets.iter().map(|(p, v)| json!([path(p), v])).collect::<Vec<_>>(),
                "unset": edit.unsets.iter().map(path).collect::<Vec<_>>(),
            }),
            Edit::Replace { document } => document.clone(),
            Edit::Revert { to } => json!({ "to": to }),
            Edit::Delete => Value::Null,
            // The checked event, secrets already redacted.
            Edit::Event(event) => json!({
                "action": event.key().as_str(),
                "detail": Value::Object(event.detail()),
            }),
        }
    }
}

/// SHA-256 over operation, guild, input and actor: a retry with the same
/// request id must carry the same fingerprint.
pub(super) fn fingerprint(guild: GuildId, edit: &Edit, actor: &Actor) -> Result<String> {
    canonical_sha256(&json!({
        "operation": edit.operation_name(),
        "guild_id": guild,
        "input": edit.fingerprint_input(),
        "actor": actor,
    }))
    .map_err(|e| Error::invalid("", e))
}

pub(super) fn replay(record: RequestRecord, fingerprint: &str) -> Result<WriteResult> {
    if record.fingerprint != fingerprint {
        return Err(Error::Conflict(format!(
            "request id {:?} was already used for a different write",
            record.request_id
        )));
    }
    let mut result = parse_result(&record.result)
        .ok_or_else(|| Error::Corrupt("a stored request result does not parse".into()))?;
    result.replayed = true;
    Ok(result)
}

/// A stored result object as the write result it records; `None` when it is
/// not one (verify reports that as `request`).
pub(crate) fn parse_result(value: &Value) -> Option<WriteResult> {
    Some(WriteResult {
        guild_id: GuildId::parse(value.get("guild_id")?.as_str()?).ok()?,
        version: value.get("version")?.as_u64()?,
        outcome: serde_json::from_value(value.get("outcome")?.clone()).ok()?,
        entry_hash: value.get("entry_hash")?.as_str().map(str::to_owned),
        changes: None,
        dry_run: false,
        replayed: false,
    })
}
