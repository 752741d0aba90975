//! The chain builder: one guild's valid chain of entries, made by the
//! domain code, as the rows both adapters store.

use chrono::{DateTime, Utc};
use guildconf::json::canonical;
use guildconf::{Actor, ActorKind, ConfigSchema, GuildConfigSchema, GuildId};
use guildconf_domain::{
    diff, redact_changes, summarise, EntryBody, Operation, RequestContext, Timestamp,
    ENTRY_FORMAT_VERSION, GENESIS_HASH,
};
use serde_json::{json, Value};

use crate::R;

/// Rows of one entry as both adapters store them.
pub struct Row {
    pub guild: i64,
    pub seq: i64,
    pub version: i64,
    pub operation: &'static str,
    pub occurred_at: String,
    pub body: String,
    pub entry_hash: String,
    pub prev_hash: String,
    pub snapshot: String,
    pub snapshot_value: Value,
    pub sha256: String,
}

/// The head row of a guild whose chain is built.
pub struct HeadRow {
    pub guild: i64,
    pub seq: i64,
    pub last_hash: String,
    pub updated_at: String,
    pub document: String,
    pub value: Value,
}

/// Builds one guild's valid chain of `n` entries (a create, then updates of
/// the welcome message) through the domain code, handing rows out in
/// batches.
pub fn build_chain(guild: GuildId, n: u64, sink: &mut dyn FnMut(Row) -> R<()>) -> R<HeadRow> {
    let schema = GuildConfigSchema;
    let secrets = schema.secret_paths();
    let actor = Actor::new("80351110224678912", ActorKind::Human, Some("bench"))
        .map_err(|e| e.to_string())?;
    let base: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let empty = json!({});
    let mut doc = schema.defaults();
    let mut prev_doc = empty.clone();
    let mut prev_hash = GENESIS_HASH.to_owned();
    let mut prev_time: Option<Timestamp> = None;
    for seq in 1..=n {
        if seq > 1 {
            prev_doc = doc.clone();
            doc["onboarding"]["welcome_message"] = json!(format!("message {seq}"));
        }
        let operation = if seq == 1 {
            Operation::Create
        } else {
            Operation::Update
        };
        let changes = redact_changes(&diff(&prev_doc, &doc), &secrets);
        let summary = summarise(&actor, operation, &changes, None);
        let snapshot = canonical(&doc)?;
        let sha256 = guildconf_domain::json::sha256_hex(snapshot.as_bytes());
        let now = base + chrono::Duration::milliseconds(seq as i64);
        let occurred_at = Timestamp::next_after(now, prev_time);
        let body = EntryBody {
            v: ENTRY_FORMAT_VERSION,
            guild_id: guild,
            seq,
            config_version: seq,
            operation,
            occurred_at,
            actor: actor.clone(),
            changes,
            summary,
            snapshot_sha256: Some(sha256.clone()),
            reason: None,
            request_id: None,
            context: RequestContext::new().to_map(),
            detail: serde_json::Map::new(),
            prev_hash: prev_hash.clone(),
        };
        let text = body.canonical()?;
        let entry = body.seal()?;
        sink(Row {
            guild: guild.as_i64(),
            seq: seq as i64,
            version: seq as i64,
            operation: operation.as_str(),
            occurred_at: occurred_at.to_string(),
            body: text,
            entry_hash: entry.entry_hash.clone(),
            prev_hash,
            snapshot,
            snapshot_value: doc.clone(),
            sha256,
        })?;
        prev_hash = entry.entry_hash;
        prev_time = Some(occurred_at);
    }
    Ok(HeadRow {
        guild: guild.as_i64(),
        seq: n as i64,
        last_hash: prev_hash,
        updated_at: prev_time.map(|t| t.to_string()).unwrap_or_default(),
        document: canonical(&doc)?,
        value: doc,
    })
}
