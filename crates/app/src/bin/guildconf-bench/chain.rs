//! The chain builder: one guild's valid chain of entries, made by the
//! domain's one maker of links, as the rows both adapters store.

use chrono::{DateTime, Utc};
use guildconf::json::canonical;
use guildconf::{Actor, ActorKind, ConfigSchema, GuildConfigSchema, GuildId};
use guildconf_domain::{link, CanonicalDocument, Head, LinkMeta, RequestContext, Step};
use serde_json::json;

use crate::R;

/// Rows of one entry as both adapters store them.
pub struct Row {
    pub guild: i64,
    pub seq: i64,
    pub version: i64,
    pub operation: String,
    pub occurred_at: String,
    pub body: String,
    pub entry_hash: String,
    pub prev_hash: String,
    pub snapshot: String,
    pub sha256: String,
}

/// The head row of a guild whose chain is built.
pub struct HeadRow {
    pub guild: i64,
    pub seq: i64,
    pub last_hash: String,
    pub updated_at: String,
    pub document: String,
}

/// Builds one guild's valid chain of `n` entries (a create, then updates of
/// the welcome message) through the domain code, handing rows out in
/// batches.
pub fn build_chain(guild: GuildId, n: u64, sink: &mut dyn FnMut(Row) -> R<()>) -> R<HeadRow> {
    let schema = GuildConfigSchema;
    let secrets = schema.secret_paths();
    let actor = Actor::new("80351110224678912", ActorKind::Human, Some("bench"))
        .map_err(|e| e.to_string())?;
    let context = RequestContext::new();
    let meta = LinkMeta {
        actor: &actor,
        reason: None,
        request_id: None,
        context: &context,
    };
    let base: DateTime<Utc> = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let mut doc = schema.defaults();
    let mut head: Option<Head> = None;
    for seq in 1..=n {
        if seq > 1 {
            doc["onboarding"]["welcome_message"] = json!(format!("message {seq}"));
        }
        let document = CanonicalDocument::new(doc.clone())?;
        let step = if seq == 1 {
            Step::Create(document)
        } else {
            Step::Update(document)
        };
        let now = base + chrono::Duration::milliseconds(seq as i64);
        let next =
            link(guild, head.as_ref(), step, meta, &secrets, now).map_err(|e| e.to_string())?;
        let body = next.entry.body();
        let snapshot = next.snapshot.as_ref().ok_or("an update makes a version")?;
        sink(Row {
            guild: guild.as_i64(),
            seq: seq as i64,
            version: body.config_version as i64,
            operation: body.operation.as_str().to_owned(),
            occurred_at: body.occurred_at.to_string(),
            body: next.entry.text().to_owned(),
            entry_hash: next.entry.entry_hash().to_owned(),
            prev_hash: body.prev_hash.clone(),
            snapshot: snapshot.document.text().to_owned(),
            sha256: snapshot.document.sha256().to_owned(),
        })?;
        head = Some(next.head);
    }
    let head = head.ok_or("a chain has at least one entry")?;
    Ok(HeadRow {
        guild: guild.as_i64(),
        seq: head.seq as i64,
        last_hash: head.last_hash,
        updated_at: head.updated_at.to_string(),
        document: canonical(&doc)?,
    })
}
