//! The audit entry and its public, hash-chained JSON form.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::actor::Actor;
use crate::diff::Change;
use crate::event::ActionKey;
use crate::ids::GuildId;
use crate::json::{canonical, canonical_json, is_canonical, sha256_hex};
use crate::time::Timestamp;

/// The format version written into every entry (`"v": 1`).
pub const ENTRY_FORMAT_VERSION: u32 = 1;

/// The `prev_hash` of a guild's first entry: 64 zeros.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The 15 keys of an entry body, in the order the format documents them.
/// Every body has exactly these keys, nulls written, never omitted.
pub const BODY_KEYS: [&str; 15] = [
    "v",
    "guild_id",
    "seq",
    "config_version",
    "operation",
    "occurred_at",
    "actor",
    "changes",
    "summary",
    "snapshot_sha256",
    "reason",
    "request_id",
    "context",
    "detail",
    "prev_hash",
];

/// What an entry did: one of the five config operations, or an event's
/// action key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// The guild's config was created.
    Create,
    /// Some fields changed.
    Update,
    /// An earlier version became current again.
    Revert,
    /// The config was deleted; history stays.
    Delete,
    /// Old history was removed by retention.
    Purge,
    /// An event (an admin action) was recorded; the config is unchanged.
    Event(ActionKey),
}

impl Operation {
    /// Whether an entry of this operation makes a new config version (and so
    /// stores its snapshot): create, update and revert do; delete, purge and
    /// events keep the version they found.
    pub fn makes_version(self) -> bool {
        matches!(
            self,
            Operation::Create | Operation::Update | Operation::Revert
        )
    }

    /// The name written in the entry: the lowercase config operation, or
    /// the event's action key.
    pub fn as_str(&self) -> &str {
        match self {
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Revert => "revert",
            Operation::Delete => "delete",
            Operation::Purge => "purge",
            Operation::Event(key) => key.as_str(),
        }
    }

    /// The family the entry belongs to: `config` for the five config
    /// operations, the part before the dot for an event.
    pub fn family(&self) -> &str {
        match self {
            Operation::Event(key) => key.family(),
            _ => "config",
        }
    }

    /// Parses an operation name: a config operation or an action key.
    ///
    /// # Errors
    /// Returns a sentence naming the accepted forms when `text` is neither.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "create" => Ok(Operation::Create),
            "update" => Ok(Operation::Update),
            "revert" => Ok(Operation::Revert),
            "delete" => Ok(Operation::Delete),
            "purge" => Ok(Operation::Purge),
            _ => ActionKey::parse(text).map(Operation::Event).map_err(|_| {
                "must be one of create, update, revert, delete, purge, or an action key family.verb (a-z, 0-9 and _)".into()
            }),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Operation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct OperationVisitor;
        impl serde::de::Visitor<'_> for OperationVisitor {
            type Value = Operation;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an operation name")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Operation, E> {
                Operation::parse(text).map_err(E::custom)
            }
        }
        d.deserialize_str(OperationVisitor)
    }
}

/// The hashed part of an audit entry: exactly these 15 keys, nulls written.
///
/// The fields are declared in RFC 8785 key order (byte order of the names),
/// so serde writes them in the order the canonical form needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryBody {
    /// Who.
    pub actor: Actor,
    /// The redacted changes.
    pub changes: Vec<Change>,
    /// The guild's config version after this entry.
    pub config_version: u64,
    /// Sanitised request metadata.
    pub context: Map<String, Value>,
    /// Facts of the operation (`{"to_version": N}` for a revert).
    pub detail: Map<String, Value>,
    /// The guild.
    pub guild_id: GuildId,
    /// When, strictly increasing within a guild.
    pub occurred_at: Timestamp,
    /// What happened.
    pub operation: Operation,
    /// The previous entry's hash, or [`GENESIS_HASH`].
    pub prev_hash: String,
    /// Why, as the actor said.
    pub reason: Option<String>,
    /// The caller's idempotency key.
    pub request_id: Option<String>,
    /// Position in the guild's chain, from 1 without gaps.
    pub seq: u64,
    /// Hex SHA-256 of the canonical stored document after this entry; null
    /// after a delete.
    pub snapshot_sha256: Option<String>,
    /// One human-readable line.
    pub summary: String,
    /// Format version, always 1.
    pub v: u32,
}

impl EntryBody {
    /// The canonical (RFC 8785) form of the body: the bytes that are hashed.
    ///
    /// # Errors
    /// Returns a sentence when a value cannot be canonicalised (which the
    /// validation of every input prevents).
    pub fn canonical(&self) -> Result<String, String> {
        // The fields (and a change's keys) are written in canonical order, so
        // the compact text usually is the canonical form already; the scan
        // proves it. Otherwise (a float, an integer past 2^53, a key at or
        // above U+E000 in a change's value) through a `Value`: the body has
        // no float fields of its own, and the `Value`s inside it cannot hold
        // a non-finite number, so nothing is lost on the way.
        let text = serde_json::to_string(self).map_err(|e| format!("cannot canonicalise: {e}"))?;
        if is_canonical(&text) {
            return Ok(text);
        }
        // `to_value`, not a parse of `text`: it keeps every float exactly and
        // has no nesting limit.
        let value = serde_json::to_value(self).map_err(|e| format!("cannot canonicalise: {e}"))?;
        canonical_json(&value)
    }

    /// Hashes the body, giving the chained entry with the exact text that
    /// was hashed. Write paths get their entries from [`crate::link`], which
    /// calls this; tests and the golden vectors call it directly.
    ///
    /// # Errors
    /// As [`EntryBody::canonical`].
    pub fn seal(self) -> Result<SealedEntry, String> {
        let text = self.canonical()?;
        let entry_hash = sha256_hex(text.as_bytes());
        Ok(SealedEntry {
            entry: Entry {
                body: self,
                entry_hash,
            },
            text,
        })
    }
}

/// An entry as a write stores it: the body, its hash, and the RFC 8785 text
/// the hash was computed from. Only sealing makes one, so the text an
/// adapter stores is always the text that was hashed.
#[derive(Clone, Debug, PartialEq)]
pub struct SealedEntry {
    entry: Entry,
    text: String,
}

impl SealedEntry {
    /// The entry.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }

    /// The body.
    pub fn body(&self) -> &EntryBody {
        &self.entry.body
    }

    /// The entry hash.
    pub fn entry_hash(&self) -> &str {
        &self.entry.entry_hash
    }

    /// The canonical body text: the bytes that were hashed and are stored.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The entry, dropping its text.
    pub fn into_entry(self) -> Entry {
        self.entry
    }
}

/// A chained audit entry: the body and its hash.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The hashed body.
    pub body: EntryBody,
    /// Lowercase hex SHA-256 of the canonical body.
    pub entry_hash: String,
}

impl Entry {
    /// The entry as one JSON object: the body's keys plus `entry_hash`.
    ///
    /// # Errors
    /// Returns a sentence if the body does not serialise (it always does).
    pub fn to_json(&self) -> Result<Value, String> {
        let mut value = serde_json::to_value(&self.body).map_err(|e| e.to_string())?;
        if let Value::Object(map) = &mut value {
            map.insert("entry_hash".into(), Value::String(self.entry_hash.clone()));
        }
        Ok(value)
    }

    /// The export line: the canonical form of body plus `entry_hash`, without
    /// the trailing newline.
    ///
    /// # Errors
    /// As [`Entry::to_json`].
    pub fn export_line(&self) -> Result<String, String> {
        canonical(&self.to_json()?)
    }

    /// Reads an entry from its JSON object (body keys plus `entry_hash`).
    /// Other keys outside the body (such as `snapshot`) are ignored. The hash
    /// is not checked here; that is [`crate::ChainVerifier`]'s job.
    ///
    /// # Errors
    /// Returns a sentence naming what is missing or malformed.
    pub fn from_json(value: &Value) -> Result<Self, String> {
        let Value::Object(map) = value else {
            return Err("an entry must be a JSON object".into());
        };
        let entry_hash = map
            .get("entry_hash")
            .and_then(Value::as_str)
            .ok_or("entry_hash is missing or not a string")?
            .to_owned();
        let body = body_value(map);
        let body: EntryBody = serde_json::from_value(Value::Object(body))
            .map_err(|e| format!("malformed entry body: {e}"))?;
        Ok(Self { body, entry_hash })
    }
}

/// The body keys of a line: everything but `entry_hash` and the keys an
/// issue adds outside the body (`snapshot`, `sig`).
pub fn body_value(line: &Map<String, Value>) -> Map<String, Value> {
    line.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "entry_hash" | "snapshot" | "sig"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::actor::ActorKind;
    use crate::json::canonical;

    /// An ordinary body's compact serde text is already canonical, so
    /// [`EntryBody::canonical`] hashes it without a second serialisation:
    /// this fails if a field or a change's key is declared out of order.
    #[test]
    fn an_ordinary_body_serialises_straight_to_its_canonical_form() {
        let body = EntryBody {
            actor: Actor::new("80351110224678912", ActorKind::Human, Some("alice"))
                .expect("a valid actor"),
            changes: vec![
                Change::Add {
                    path: "/features/beta".into(),
                    after: json!(true),
                },
                Change::Remove {
                    path: "/role_mapping/mod".into(),
                    before: json!("42"),
                },
                Change::Replace {
                    path: "/onboarding/welcome_message".into(),
                    before: json!(null),
                    after: json!({"text": "hi", "n": 3}),
                },
            ],
            config_version: 7,
            context: Map::from_iter([("source".to_owned(), json!("cli"))]),
            detail: Map::from_iter([("to_version".to_owned(), json!(3))]),
            guild_id: GuildId::parse("80351110224678912").expect("a valid id"),
            occurred_at: Timestamp::parse_stored("2026-11-22T04:45:44.123000Z")
                .expect("a valid time"),
            operation: Operation::Revert,
            prev_hash: GENESIS_HASH.to_owned(),
            reason: Some("tidy up".into()),
            request_id: None,
            seq: 8,
            snapshot_sha256: None,
            summary: "alice (human) reverted".into(),
            v: ENTRY_FORMAT_VERSION,
        };
        let compact = serde_json::to_string(&body).expect("serialises");
        assert!(is_canonical(&compact), "not canonical: {compact}");
        assert_eq!(body.canonical().as_ref(), Ok(&compact));
        assert_eq!(canonical(&body).as_ref(), Ok(&compact));
    }
}
