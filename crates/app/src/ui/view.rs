//! What the templates show, as plain text fields: entries, changes and
//! documents turned into strings once, here, so the templates only place
//! them (and askama escapes every one).

use guildconf_domain::{Change, EntryBody, Operation};
use serde_json::{Map, Value};

/// A value as compact JSON text (a string keeps its quotes, so `"1"` and
/// `1` stay apart).
pub(crate) fn json_text(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// A document as indented JSON text.
pub(crate) fn json_pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// One line of the audit log.
#[derive(Clone, Debug)]
pub(crate) struct EntryRow {
    pub seq: u64,
    pub time: String,
    pub actor_label: String,
    pub actor_kind: &'static str,
    pub actor_id: String,
    pub operation: String,
    pub outcome: String,
    pub target: Option<String>,
    pub summary: String,
    pub reason: Option<String>,
}

impl EntryRow {
    pub fn of(body: &EntryBody) -> Self {
        Self {
            seq: body.seq,
            time: body.occurred_at.to_string(),
            actor_label: body.actor.label.clone(),
            actor_kind: body.actor.kind.as_str(),
            actor_id: body.actor.id.clone(),
            operation: body.operation.to_string(),
            outcome: outcome(body).to_owned(),
            target: target(body),
            summary: body.summary.clone(),
            reason: body.reason.clone(),
        }
    }
}

/// An event's outcome; a config entry reads as `success`, as the history
/// filter counts it.
fn outcome(body: &EntryBody) -> &str {
    match body.operation {
        Operation::Event(_) => body
            .detail
            .get("outcome")
            .and_then(Value::as_str)
            .unwrap_or("?"),
        _ => "success",
    }
}

/// An event's target as `type id (label)`; config entries have none.
fn target(body: &EntryBody) -> Option<String> {
    let Operation::Event(_) = body.operation else {
        return None;
    };
    let target = body.detail.get("target")?.as_object()?;
    let text = |k: &str| target.get(k).and_then(Value::as_str);
    let mut out = format!("{} {}", text("type")?, text("id")?);
    if let Some(label) = text("label") {
        out.push_str(&format!(" ({label})"));
    }
    Some(out)
}

/// One field change: where, how, and the values before and after (secrets
/// already `[redacted]`: entries never hold them).
#[derive(Clone, Debug)]
pub(crate) struct ChangeRow {
    pub path: String,
    pub op: &'static str,
    pub before: Option<String>,
    pub after: Option<String>,
}

impl ChangeRow {
    fn of(change: &Change) -> Self {
        let (op, before, after) = match change {
            Change::Add { after, .. } => ("add", None, Some(after)),
            Change::Remove { before, .. } => ("remove", Some(before), None),
            Change::Replace { before, after, .. } => ("replace", Some(before), Some(after)),
        };
        Self {
            path: change.path().to_owned(),
            op,
            before: before.map(json_text),
            after: after.map(json_text),
        }
    }
}

/// Everything an entry's page shows about the entry itself.
#[derive(Clone, Debug)]
pub(crate) struct EntryDetail {
    pub row: EntryRow,
    pub config_version: u64,
    pub entry_hash: String,
    pub prev_hash: String,
    pub request_id: Option<String>,
    pub changes: Vec<ChangeRow>,
    /// An event's data, or a config operation's detail (such as a revert's
    /// `to_version`), as name and JSON text.
    pub facts: Vec<(String, String)>,
    pub context: Vec<(String, String)>,
}

impl EntryDetail {
    pub fn of(body: &EntryBody, entry_hash: &str) -> Self {
        let pairs = |map: &Map<String, Value>| {
            map.iter()
                .map(|(k, v)| (k.clone(), json_text(v)))
                .collect::<Vec<_>>()
        };
        let facts = match body.operation {
            Operation::Event(_) => body
                .detail
                .get("data")
                .and_then(Value::as_object)
                .map(pairs)
                .unwrap_or_default(),
            _ => pairs(&body.detail),
        };
        Self {
            row: EntryRow::of(body),
            config_version: body.config_version,
            entry_hash: entry_hash.to_owned(),
            prev_hash: body.prev_hash.clone(),
            request_id: body.request_id.clone(),
            changes: body.changes.iter().map(ChangeRow::of).collect(),
            facts,
            context: body
                .context
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| json_text(v), str::to_owned),
                    )
                })
                .collect(),
        }
    }
}

/// An `<option>` of a select: value, text, whether chosen.
#[derive(Clone, Debug)]
pub(crate) struct Choice {
    pub value: &'static str,
    pub selected: bool,
}
