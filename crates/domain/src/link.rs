//! The one maker of chain links.
//!
//! Every write path — the service's writes, retention purges, import and
//! copy (which rebuild each line and compare), the bench loader and the test
//! helpers — asks [`link`] for the next link of a guild's chain. Nothing else
//! assembles an entry body, so "what the next entry of a chain is" has one
//! definition, and a file or a caller that would need another one is refused.
//!
//! A link is the sealed entry (its body, its hash and the exact RFC 8785 text
//! that was hashed), the guild's new head, and, for an operation that makes a
//! version, the snapshot with its canonical text. Adapters store those texts
//! as they are; they never canonicalise again.

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::actor::Actor;
use crate::context::RequestContext;
use crate::diff::diff;
use crate::entry::{EntryBody, Operation, SealedEntry, ENTRY_FORMAT_VERSION, GENESIS_HASH};
use crate::event::CheckedEvent;
use crate::ids::GuildId;
use crate::json::{canonical_json, sha256_hex};
use crate::redact::redact_changes;
use crate::secret_paths::SecretPaths;
use crate::summary::{summarise, summarise_purge};
use crate::time::Timestamp;

/// A guild's head: where its chain and config stand now.
#[derive(Clone, Debug, PartialEq)]
pub struct Head {
    /// The guild.
    pub guild_id: GuildId,
    /// Current config version (unchanged by delete and purge).
    pub version: u64,
    /// Seq of the last entry.
    pub seq: u64,
    /// Hash of the last entry.
    pub last_hash: String,
    /// When the last entry occurred.
    pub updated_at: Timestamp,
    /// Who made the last entry.
    pub actor: Actor,
    /// The current normalised document; `None` after a delete.
    pub document: Option<Value>,
}

/// A document together with its RFC 8785 text and that text's SHA-256: the
/// bytes that are stored and hashed, computed once.
#[derive(Clone, Debug, PartialEq)]
pub struct CanonicalDocument {
    value: Value,
    text: String,
    sha256: String,
}

impl CanonicalDocument {
    /// Canonicalises a document.
    ///
    /// # Errors
    /// Returns a sentence when the document holds a value RFC 8785 cannot
    /// write (validation of every input prevents it).
    pub fn new(value: Value) -> Result<Self, String> {
        let text = canonical_json(&value)?;
        Ok(Self::from_parts(value, text))
    }

    /// A document whose canonical text the caller has just computed.
    fn from_parts(value: Value, text: String) -> Self {
        let sha256 = sha256_hex(text.as_bytes());
        Self {
            value,
            text,
            sha256,
        }
    }

    /// The document.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// Its RFC 8785 text, exactly as stored and hashed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Lowercase hex SHA-256 of [`CanonicalDocument::text`].
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The document, dropping its text.
    pub fn into_value(self) -> Value {
        self.value
    }
}

/// A version's snapshot as a write stores it.
#[derive(Clone, Debug, PartialEq)]
pub struct SealedSnapshot {
    /// The config version this document is.
    pub version: u64,
    /// The document and its canonical text.
    pub document: CanonicalDocument,
}

/// What the next entry of a chain does.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// Create the config with this (normalised) document.
    Create(CanonicalDocument),
    /// Replace the current document by this one.
    Update(CanonicalDocument),
    /// Make version `to`, whose document this is, current again.
    Revert {
        /// The version returned to.
        to: u64,
        /// Its document.
        document: CanonicalDocument,
    },
    /// Delete the config; history stays.
    Delete,
    /// A retention purge removed the entries through `through_seq`.
    Purge {
        /// The purge's cut-off (exclusive).
        before: Timestamp,
        /// The last seq removed.
        through_seq: u64,
        /// That entry's hash.
        through_hash: String,
        /// How many entries were removed.
        entries: u64,
    },
    /// Record an event; the config is unchanged.
    Event(CheckedEvent),
}

impl Step {
    /// The entry's operation.
    pub fn operation(&self) -> Operation {
        match self {
            Step::Create(_) => Operation::Create,
            Step::Update(_) => Operation::Update,
            Step::Revert { .. } => Operation::Revert,
            Step::Delete => Operation::Delete,
            Step::Purge { .. } => Operation::Purge,
            Step::Event(event) => Operation::Event(event.key()),
        }
    }
}

/// Who writes the entry, and the request metadata recorded with it.
#[derive(Clone, Copy, Debug)]
pub struct LinkMeta<'a> {
    /// The actor.
    pub actor: &'a Actor,
    /// Why, in the actor's words.
    pub reason: Option<&'a str>,
    /// The caller's idempotency key.
    pub request_id: Option<&'a str>,
    /// Sanitised request metadata.
    pub context: &'a RequestContext,
}

/// The next link of a guild's chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The sealed entry.
    pub entry: SealedEntry,
    /// The guild's head after it.
    pub head: Head,
    /// The snapshot of the version it makes; `None` unless the operation
    /// makes a version.
    pub snapshot: Option<SealedSnapshot>,
}

/// Why a link cannot be made: the step does not fit the head.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The step needs a config the guild does not have (or must not have
    /// one it does), or its numbers do not fit the chain.
    #[error("{0}")]
    Misfit(String),
    /// A value cannot be canonicalised.
    #[error("cannot canonicalise the entry: {0}")]
    Canonical(String),
}

/// Makes the next link of `guild`'s chain after `prev` (`None`: the guild
/// has no chain yet): the entry `step` writes, by `meta`'s actor, at `now`
/// (moved to one microsecond after the previous entry when it is not later).
/// Changes are the diff of the documents before and after, redacted at
/// `secrets` before anything is hashed.
///
/// # Errors
/// [`LinkError::Misfit`] when the step does not fit the head: a create over
/// a live config, an update, revert, delete or purge of a guild without
/// one, a head of another guild, a revert to a version that is not earlier;
/// [`LinkError::Canonical`] when the body cannot be canonicalised.
pub fn link(
    guild: GuildId,
    prev: Option<&Head>,
    step: Step,
    meta: LinkMeta<'_>,
    secrets: &SecretPaths,
    now: DateTime<Utc>,
) -> Result<Link, LinkError> {
    let misfit = |m: &str| Err(LinkError::Misfit(format!("guild {guild}: {m}")));
    if prev.is_some_and(|h| h.guild_id != guild) {
        return misfit("the head belongs to another guild");
    }
    let current = prev.and_then(|h| h.document.as_ref());
    let version = prev.map_or(0, |h| h.version);
    let operation = step.operation();
    match (&step, current) {
        (Step::Create(_), Some(_)) => return misfit("a create needs a guild without a config"),
        (Step::Create(_), None) => {}
        (Step::Purge { .. }, _) if prev.is_none() => return misfit("a purge needs a chain"),
        (Step::Purge { .. }, _) => {}
        // An event needs no config: a guild without one records it at
        // version 0, and a later create continues the same chain.
        (Step::Event(_), _) => {}
        (_, None) => return misfit("the guild has no config"),
        _ => {}
    }
    if let Step::Revert { to, .. } = &step {
        if *to == 0 || *to > version {
            return misfit("a revert goes back to a version the guild has");
        }
    }
    let empty = Value::Object(Map::new());
    // The hash of the document that stays current, for the steps that keep it.
    let current_sha = || {
        current
            .map(|doc| canonical_json(doc).map(|t| sha256_hex(t.as_bytes())))
            .transpose()
            .map_err(LinkError::Canonical)
    };
    let mut detail = Map::new();
    let (changes, summary, after, snapshot_sha256) = match &step {
        Step::Purge {
            before,
            through_seq,
            through_hash,
            entries,
        } => {
            detail.insert("before".into(), json!(before.to_string()));
            detail.insert("through_seq".into(), json!(through_seq));
            detail.insert("through_hash".into(), Value::String(through_hash.clone()));
            let sha = current_sha()?;
            let summary = summarise_purge(meta.actor, *entries, *before);
            (Vec::new(), summary, None, sha)
        }
        Step::Event(event) => {
            detail = event.detail();
            let sha = current_sha()?;
            (Vec::new(), event.summary(meta.actor), None, sha)
        }
        Step::Create(doc) | Step::Update(doc) | Step::Revert { document: doc, .. } => {
            let to_version = match &step {
                Step::Revert { to, .. } => {
                    detail.insert("to_version".into(), json!(to));
                    Some(*to)
                }
                _ => None,
            };
            let changes = redact_changes(&diff(current.unwrap_or(&empty), doc.value()), secrets);
            let summary = summarise(meta.actor, operation, &changes, to_version);
            let sha = Some(doc.sha256().to_owned());
            (changes, summary, Some(doc), sha)
        }
        Step::Delete => {
            let changes = redact_changes(&diff(current.unwrap_or(&empty), &empty), secrets);
            let summary = summarise(meta.actor, operation, &changes, None);
            (changes, summary, None, None)
        }
    };
    let makes_version = operation.makes_version();
    let config_version = if makes_version { version + 1 } else { version };
    let occurred_at = Timestamp::next_after(now, prev.map(|h| h.updated_at));
    let mut context = RequestContext::new();
    context.extend(meta.context);
    let body = EntryBody {
        v: ENTRY_FORMAT_VERSION,
        guild_id: guild,
        seq: prev.map_or(1, |h| h.seq + 1),
        config_version,
        operation,
        occurred_at,
        actor: meta.actor.clone(),
        changes,
        summary,
        snapshot_sha256,
        reason: meta.reason.map(str::to_owned),
        request_id: meta.request_id.map(str::to_owned),
        context: context.to_map(),
        detail,
        prev_hash: prev.map_or_else(|| GENESIS_HASH.to_owned(), |h| h.last_hash.clone()),
    };
    let entry = body.seal().map_err(LinkError::Canonical)?;
    let document = match (&step, after) {
        (Step::Delete, _) => None,
        (_, Some(doc)) => Some(doc.value().clone()),
        (_, None) => current.cloned(),
    };
    let head = Head {
        guild_id: guild,
        version: config_version,
        seq: entry.body().seq,
        last_hash: entry.entry_hash().to_owned(),
        updated_at: occurred_at,
        actor: meta.actor.clone(),
        document,
    };
    let snapshot = match step {
        Step::Create(doc) | Step::Update(doc) | Step::Revert { document: doc, .. } => {
            Some(SealedSnapshot {
                version: config_version,
                document: doc,
            })
        }
        Step::Delete | Step::Purge { .. } | Step::Event(_) => None,
    };
    Ok(Link {
        entry,
        head,
        snapshot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::ActorKind;
    use crate::json::is_canonical;

    fn alice() -> Actor {
        Actor::new("80351110224678912", ActorKind::Human, Some("alice")).expect("a valid actor")
    }

    fn guild() -> GuildId {
        GuildId::parse("123456789012345678").expect("a valid id")
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + s, 0).expect("a valid time")
    }

    fn doc(v: Value) -> CanonicalDocument {
        CanonicalDocument::new(v).expect("canonical")
    }

    fn next(prev: Option<&Head>, step: Step, now: i64) -> Result<Link, LinkError> {
        let actor = alice();
        let context = RequestContext::new().with("source", "test");
        let meta = LinkMeta {
            actor: &actor,
            reason: None,
            request_id: None,
            context: &context,
        };
        link(
            guild(),
            prev,
            step,
            meta,
            &SecretPaths::new(["/secret"]),
            at(now),
        )
    }

    #[test]
    fn a_chain_of_links_hashes_the_text_it_carries() {
        let one = next(None, Step::Create(doc(json!({"a": 1, "secret": "s"}))), 0)
            .expect("a create links");
        assert_eq!(one.entry.body().seq, 1);
        assert_eq!(one.entry.body().prev_hash, GENESIS_HASH);
        assert_eq!(one.head.version, 1);
        assert_eq!(
            one.entry.entry_hash(),
            sha256_hex(one.entry.text().as_bytes())
        );
        assert!(is_canonical(one.entry.text()));
        assert!(
            !one.entry.text().contains("\"s\""),
            "the secret is redacted before hashing"
        );
        let two =
            next(Some(&one.head), Step::Update(doc(json!({"a": 2}))), 0).expect("an update links");
        assert_eq!(two.entry.body().prev_hash, one.entry.entry_hash());
        assert_eq!(
            two.entry.body().occurred_at,
            Timestamp::next_after(at(0), Some(one.head.updated_at)),
            "a clock that did not move still gives a later time"
        );
        assert_eq!(two.head.version, 2);
        let snapshot = two.snapshot.as_ref().expect("an update makes a version");
        assert_eq!(
            two.entry.body().snapshot_sha256.as_deref(),
            Some(snapshot.document.sha256())
        );
        let three = next(Some(&two.head), Step::Delete, 5).expect("a delete links");
        assert!(three.snapshot.is_none());
        assert_eq!(three.head.version, 2);
        assert_eq!(three.head.document, None);
        assert_eq!(three.entry.body().snapshot_sha256, None);
        let four = next(
            Some(&three.head),
            Step::Purge {
                before: Timestamp::from_datetime(at(3)),
                through_seq: 1,
                through_hash: one.entry.entry_hash().to_owned(),
                entries: 1,
            },
            6,
        )
        .expect("a purge links");
        assert_eq!(four.head.version, 2);
        assert!(four.entry.body().changes.is_empty());
        assert_eq!(four.entry.body().detail["through_seq"], json!(1));
    }

    #[test]
    fn a_step_that_does_not_fit_the_head_is_refused() {
        let one = next(None, Step::Create(doc(json!({"a": 1}))), 0).expect("links");
        let refused = |prev: Option<&Head>, step: Step| {
            assert!(matches!(next(prev, step, 1), Err(LinkError::Misfit(_))));
        };
        refused(Some(&one.head), Step::Create(doc(json!({}))));
        refused(None, Step::Update(doc(json!({}))));
        refused(None, Step::Delete);
        refused(
            Some(&one.head),
            Step::Revert {
                to: 2,
                document: doc(json!({})),
            },
        );
        let mut other = one.head.clone();
        other.guild_id = GuildId::parse("42").expect("a valid id");
        refused(Some(&other), Step::Delete);
    }
}
