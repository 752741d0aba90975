//! The traits guildconf's application layer needs from the outside world:
//! a store (one write call that takes a whole change set, plus reads and
//! queries) and a clock.
//!
//! API boundary: storage adapters implement [`ConfigStore`]; the app only ever
//! talks to `Arc<dyn ConfigStore>` and `Arc<dyn Clock>`.

#![warn(missing_docs)]

pub mod codec;
#[cfg(feature = "contract-tests")]
pub mod contract;
mod tokens;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use guildconf_domain::{
    Actor, Entry, EntryBody, EntrySignature, EventOutcome, GuildId, Link, Operation, SealedEntry,
    SealedSnapshot, Timestamp, TokenInfo,
};

pub use guildconf_domain::Head;
use serde_json::Value;
pub use tokens::{is_token_id, TokenChange, TokenWrite};

/// Errors a store reports. Messages never echo row data (a secret must not
/// leak through an error message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The guild's head moved since the change set was computed, or a unique
    /// key (such as a request id) is taken. Nothing was written; the caller
    /// may recompute from the new head and try again.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached or the operation failed. Nothing was
    /// written.
    #[error("storage error: {0}")]
    Storage(String),
    /// The stored data is not what guildconf writes (hand-edited or corrupt).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// A store result.
pub type StoreResult<T> = Result<T, StoreError>;

/// A step of [`ConfigStore::commit`], named so tests can inject a fault
/// right before it (see [`FaultHook`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WriteStep {
    /// Moving the guild's head (the conditional update or first insert).
    HeadMove,
    /// Inserting the new version's snapshot (not run for a delete).
    SnapshotInsert,
    /// Inserting the audit entry.
    EntryInsert,
    /// Inserting the idempotency record (only run when the write carries a
    /// request id).
    RequestInsert,
    /// Committing the transaction.
    Commit,
}

impl WriteStep {
    /// Every step, in no particular order of execution (each adapter runs
    /// them in its own order, with `Commit` last).
    pub const ALL: [WriteStep; 5] = [
        WriteStep::HeadMove,
        WriteStep::SnapshotInsert,
        WriteStep::EntryInsert,
        WriteStep::RequestInsert,
        WriteStep::Commit,
    ];
}

/// A test seam for fault injection. An adapter given one (through its
/// `with_fault_hook` builder) calls it inside the commit transaction right
/// before each [`WriteStep`] it runs; an `Err` aborts the write, rolls the
/// transaction back and reaches the caller as that error.
///
/// Production code never sets a hook: without one, adapters skip the call.
pub type FaultHook = Arc<dyn Fn(WriteStep) -> Result<(), StoreError> + Send + Sync>;

/// A version's stored document.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The config version.
    pub version: u64,
    /// The normalised document, secrets included.
    pub document: Value,
    /// Hex SHA-256 of the canonical document.
    pub sha256: String,
}

impl From<SealedSnapshot> for Snapshot {
    fn from(sealed: SealedSnapshot) -> Self {
        Self {
            version: sealed.version,
            sha256: sealed.document.sha256().to_owned(),
            document: sealed.document.into_value(),
        }
    }
}

/// The outcome of a request, kept so a retry with the same request id gets
/// the original answer.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    /// The caller's request id, unique per guild.
    pub request_id: String,
    /// Hex SHA-256 over operation, normalised input and actor.
    pub fingerprint: String,
    /// The result object returned the first time.
    pub result: Value,
}

/// Everything one write changes, computed by the app from the head it read.
/// The adapter writes it in one transaction, or not at all.
///
/// Made from a [`Link`] ([`ChangeSet::new`]); an adapter calls
/// [`ChangeSet::check`] before it writes one.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeSet {
    /// The guild.
    pub guild_id: GuildId,
    /// Seq of the head this was computed from; `None` when the guild had no
    /// head at all. A store whose head is not at this seq with the entry's
    /// `prev_hash` as its hash answers [`StoreError::Conflict`] and writes
    /// nothing.
    pub expected_seq: Option<u64>,
    /// The new head.
    pub head: Head,
    /// The new version's snapshot, with its canonical text; `None` unless
    /// the operation makes a version.
    pub snapshot: Option<SealedSnapshot>,
    /// The chained audit entry, with the text that was hashed.
    pub entry: SealedEntry,
    /// The idempotency record, when the caller gave a request id.
    pub request: Option<RequestRecord>,
    /// The entry's signature, stored beside it (never in its body); `None`
    /// for an unsigned entry.
    pub signature: Option<EntrySignature>,
}

impl ChangeSet {
    /// The change set that writes `link` on top of the head it was made
    /// from (`expected_seq`: that head's seq, `None` for a new chain).
    pub fn new(link: Link, expected_seq: Option<u64>, request: Option<RequestRecord>) -> Self {
        Self {
            guild_id: link.head.guild_id,
            expected_seq,
            head: link.head,
            snapshot: link.snapshot,
            entry: link.entry,
            request,
            signature: None,
        }
    }

    /// Checks that the parts agree, so no caller can write a head that
    /// disagrees with its entry: the one check every adapter runs before it
    /// writes.
    ///
    /// # Errors
    /// [`StoreError::Storage`] naming the first disagreement: guild ids, the
    /// head against the entry (seq, hash, version, time, actor, document), the
    /// expected seq and `prev_hash` against the entry's seq, the snapshot
    /// against the operation, version and `snapshot_sha256`, or the request
    /// record against the entry's request id.
    pub fn check(&self) -> StoreResult<()> {
        let body = self.entry.body();
        let problem = check_link(self.guild_id, &self.head, &self.entry)
            .or_else(|| check_position(self.expected_seq, body))
            .or_else(|| check_snapshot(self.snapshot.as_ref(), &self.head, body))
            .or_else(|| match &self.request {
                Some(r) if body.request_id.as_deref() != Some(r.request_id.as_str()) => {
                    Some("the request record's id differs from the entry's request id")
                }
                _ => None,
            })
            .or_else(|| check_signature(self.signature.as_ref()));
        inconsistent("change set", problem)
    }

    /// What this write does to the head row's stored document: the new
    /// snapshot's canonical text (stored as the very bytes that were
    /// hashed), nothing after a delete, or the current text kept (a write
    /// that makes no version). Both adapters store the head document from
    /// this one answer.
    pub fn head_document(&self) -> HeadDocument<'_> {
        match (&self.snapshot, &self.head.document) {
            (Some(s), _) => HeadDocument::Set(s.document.text()),
            (None, None) => HeadDocument::Clear,
            (None, Some(_)) => HeadDocument::Keep,
        }
    }

    /// The document text of the head row when it is written as a whole new
    /// row (a bulk write writes each guild's head once, from its last change
    /// set): the new snapshot's text, nothing after a delete, or, for a write
    /// that makes no version (a purge), the canonical text of the head's
    /// document, since there is no stored text to keep.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the head's document cannot be
    /// canonicalised (a validated document always can).
    pub fn new_head_text(&self) -> StoreResult<Option<std::borrow::Cow<'_, str>>> {
        match self.head_document() {
            HeadDocument::Set(text) => Ok(Some(std::borrow::Cow::Borrowed(text))),
            HeadDocument::Clear => Ok(None),
            HeadDocument::Keep => self
                .head
                .document
                .as_ref()
                .map(|doc| {
                    guildconf_domain::json::canonical_json(doc)
                        .map(std::borrow::Cow::Owned)
                        .map_err(|e| {
                            StoreError::Storage(format!("cannot canonicalise a head document: {e}"))
                        })
                })
                .transpose(),
        }
    }
}

/// What a write does to the head row's document column (see
/// [`ChangeSet::head_document`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadDocument<'a> {
    /// Store this canonical text (a new version's snapshot).
    Set(&'a str),
    /// Store NULL (a delete).
    Clear,
    /// Leave the stored text as it is (the write changes no config).
    Keep,
}

impl<'a> HeadDocument<'a> {
    /// The text to store in a new head row: a new head that keeps nothing
    /// has no document.
    pub fn text(self) -> Option<&'a str> {
        match self {
            HeadDocument::Set(text) => Some(text),
            HeadDocument::Clear | HeadDocument::Keep => None,
        }
    }
}

/// The problems [`ChangeSet::check`] and [`PurgeSet::check`] share: the
/// guild, and the head against the entry it follows.
fn check_link(guild: GuildId, head: &Head, entry: &SealedEntry) -> Option<&'static str> {
    let body = entry.body();
    if head.guild_id != guild || body.guild_id != guild {
        Some("guild ids differ")
    } else if head.seq != body.seq {
        Some("head seq differs from the entry's seq")
    } else if head.last_hash != entry.entry_hash() {
        Some("head hash differs from the entry's hash")
    } else if head.version != body.config_version {
        Some("head version differs from the entry's config version")
    } else if head.updated_at != body.occurred_at {
        Some("head time differs from the entry's time")
    } else if head.actor != body.actor {
        Some("head actor differs from the entry's actor")
    } else if (body.operation == Operation::Delete && head.document.is_some())
        || (body.operation.makes_version() && head.document.is_none())
    {
        Some("head document disagrees with the operation")
    } else {
        None
    }
}

/// A signature's shape (the algorithm is known, the key a fingerprint, the
/// value 64 bytes of base64). Whether it verifies needs the key, which the
/// store never holds: that is verify's check and the signing writer's.
fn check_signature(signature: Option<&EntrySignature>) -> Option<&'static str> {
    signature.and_then(|s| s.check_shape().err())
}

/// The entry's seq and `prev_hash` against the seq of the head it expects
/// (`None`: the store holds no head for the guild). Seq 1, and only seq 1,
/// follows the genesis hash; a chain may begin past seq 1 only when it is
/// carried over from a store whose earlier entries were purged (import and
/// copy).
fn check_position(expected: Option<u64>, body: &EntryBody) -> Option<&'static str> {
    let genesis = body.prev_hash == guildconf_domain::GENESIS_HASH;
    if (body.seq == 1) != genesis {
        return Some("seq 1, and only seq 1, follows the genesis hash");
    }
    match expected {
        Some(seq) if seq.checked_add(1) != Some(body.seq) => {
            Some("the entry's seq does not follow the expected head")
        }
        _ => None,
    }
}

/// The snapshot against the entry: present exactly when the operation makes
/// a version, of that version, with the hash the body names, and the head's
/// document.
fn check_snapshot(
    snapshot: Option<&SealedSnapshot>,
    head: &Head,
    body: &EntryBody,
) -> Option<&'static str> {
    match snapshot {
        None if body.operation.makes_version() => {
            Some("an operation that makes a version needs its snapshot")
        }
        None => None,
        Some(_) if !body.operation.makes_version() => {
            Some("only an operation that makes a version stores a snapshot")
        }
        Some(s) if s.version != body.config_version => {
            Some("snapshot version differs from the entry's config version")
        }
        Some(s) if body.snapshot_sha256.as_deref() != Some(s.document.sha256()) => {
            Some("snapshot hash differs from the entry's snapshot_sha256")
        }
        Some(s) if head.document.as_ref() != Some(s.document.value()) => {
            Some("head document differs from the snapshot")
        }
        Some(_) => None,
    }
}

pub(crate) fn inconsistent(what: &str, problem: Option<&str>) -> StoreResult<()> {
    match problem {
        Some(p) => Err(StoreError::Storage(format!("inconsistent {what}: {p}"))),
        None => Ok(()),
    }
}

/// What a retention purge of one guild would remove, as read from the store
/// (without a lock: the purge itself re-checks the head).
#[derive(Clone, Debug, PartialEq)]
pub struct PurgeCandidate {
    /// The guild's head when read.
    pub head: Head,
    /// The last entry to remove: the highest seq with `occurred_at` before
    /// the cut-off and below the entry that made the current version.
    pub through_seq: u64,
    /// That entry's hash (the `prev_hash` of the first entry kept).
    pub through_hash: String,
    /// How many entries would go (those with seq ≤ `through_seq`).
    pub entries: u64,
    /// The lowest version a kept entry other than a delete or purge names
    /// (a create, update, revert or event); snapshots of lower versions
    /// would go.
    pub keep_from_version: u64,
    /// How many snapshots would go.
    pub snapshots: u64,
}

/// The facts about one guild's log that decide its retention purge, read by
/// an adapter in one statement (each field says exactly what to select) and
/// turned into a [`PurgeCandidate`] by [`PurgeCandidate::from_facts`], the
/// one place the retention policy lives. Integers are as stored (`BIGINT`),
/// so the checks on them are made here too.
///
/// "Makes a version" means an entry whose operation is `create`, `update` or
/// `revert` ([`Operation::makes_version`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PurgeFacts {
    /// `seq` of the guild's last entry that made a version, among those up
    /// to the head's `seq` (`None`: none did). That entry made the current
    /// version; it stays, and so does everything after it. Bounding it by the
    /// head read with the facts keeps them about that head: an entry written
    /// since (which stays anyway) cannot move the cut past the purge's own
    /// position.
    pub cap_seq: Option<i64>,
    /// `seq` and `entry_hash` of the last entry with `occurred_at` before the
    /// cut-off and `seq` below `cap_seq` (`None`: there is none). Since
    /// `occurred_at` strictly increases with `seq` within a guild, "last by
    /// `occurred_at`" and "last by `seq`" are the same entry.
    pub through: Option<(i64, String)>,
    /// How many entries have `seq` ≤ that entry's (0 without one).
    pub entries: i64,
    /// `config_version` of the first entry after `through` whose operation
    /// is neither `delete` nor `purge` (a version-making entry or an event,
    /// which names the document current when it was recorded, so that
    /// version's snapshot must stay; `None`: there is none, or no `through`).
    pub next_version: Option<i64>,
    /// How many snapshots have a version below `next_version` other than the
    /// head's (0 without a `next_version`).
    pub snapshots_below_next: i64,
    /// How many snapshots have a version below the head's.
    pub snapshots_below_head: i64,
}

impl PurgeCandidate {
    /// The retention policy: what a purge of `head`'s guild would remove,
    /// given the facts read with it; `None` when nothing may go.
    ///
    /// The entry that made the current version, and everything after it,
    /// stays; of the entries before it, those before the cut-off go. The
    /// snapshots that go are those below the first version a kept entry
    /// makes, never the current version's; without such an entry (the cap
    /// entry always is one, so only a store that changed between its reads
    /// has none), the head's version stands in.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when a stored integer is negative.
    pub fn from_facts(head: Head, facts: PurgeFacts) -> StoreResult<Option<Self>> {
        use codec::stored_u64;
        if facts.cap_seq.is_none() {
            return Ok(None);
        }
        let Some((through_seq, through_hash)) = facts.through else {
            return Ok(None);
        };
        let (keep_from_version, snapshots) = match facts.next_version {
            Some(version) => (
                stored_u64(version, "audit_entries.config_version")?,
                facts.snapshots_below_next,
            ),
            None => (head.version, facts.snapshots_below_head),
        };
        Ok(Some(Self {
            head,
            through_seq: stored_u64(through_seq, "audit_entries.seq")?,
            through_hash,
            entries: stored_u64(facts.entries, "count")?,
            keep_from_version,
            snapshots: stored_u64(snapshots, "count")?,
        }))
    }
}

/// One guild's retention purge, computed by the app: remove the entries
/// through `through_seq` and the snapshots below `keep_from_version` (never
/// the current version's), append the chained `purge` entry and move the
/// head, in one transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct PurgeSet {
    /// The guild.
    pub guild_id: GuildId,
    /// Seq of the head this was computed from; a store whose head is not at
    /// this seq with the purge entry's `prev_hash` as its hash answers
    /// [`StoreError::Conflict`].
    pub expected_seq: u64,
    /// Remove entries with seq ≤ this.
    pub through_seq: u64,
    /// The stored hash of entry `through_seq`; a store holding another
    /// answers [`StoreError::Conflict`].
    pub through_hash: String,
    /// Remove snapshots of versions below this.
    pub keep_from_version: u64,
    /// The new head (version and document unchanged).
    pub head: Head,
    /// The chained `purge` entry, with the text that was hashed.
    pub entry: SealedEntry,
    /// The purge entry's signature, stored beside it; `None` when unsigned.
    pub signature: Option<EntrySignature>,
}

impl PurgeSet {
    /// Checks that the parts agree (as [`ChangeSet::check`] does) and that
    /// the entry is a purge of exactly what the set removes. (That those
    /// entries lie below the head is the store's head and `through_hash`
    /// check: a candidate is read without a lock, so a race there is a
    /// conflict, not an inconsistency.)
    ///
    /// # Errors
    /// [`StoreError::Storage`] naming the first disagreement.
    pub fn check(&self) -> StoreResult<()> {
        let body = self.entry.body();
        let detail = &body.detail;
        let problem = check_link(self.guild_id, &self.head, &self.entry)
            .or_else(|| check_position(Some(self.expected_seq), body))
            .or_else(|| {
                if body.operation != Operation::Purge {
                    Some("a purge set's entry must be a purge")
                } else if detail
                    .get("through_seq")
                    .and_then(serde_json::Value::as_u64)
                    != Some(self.through_seq)
                    || detail
                        .get("through_hash")
                        .and_then(serde_json::Value::as_str)
                        != Some(self.through_hash.as_str())
                {
                    Some("the purge entry names other entries than the set removes")
                } else if self.keep_from_version > self.head.version || self.through_seq >= body.seq
                {
                    // The current version's snapshot, and the purge entry
                    // itself, are never removed: without them the head and
                    // the chain could not be verified.
                    Some("a purge set may not remove the current version or its own entry")
                } else {
                    None
                }
            })
            .or_else(|| check_signature(self.signature.as_ref()));
        inconsistent("purge set", problem)
    }
}

/// What a purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeOutcome {
    /// Audit entries removed.
    pub entries_removed: u64,
    /// Snapshots removed.
    pub snapshots_removed: u64,
}

/// One row of `list`.
#[derive(Clone, Debug, PartialEq)]
pub struct GuildSummary {
    /// The guild.
    pub guild_id: GuildId,
    /// Current config version.
    pub version: u64,
    /// Whether the config is deleted.
    pub deleted: bool,
    /// When the last entry occurred.
    pub updated_at: Timestamp,
    /// Who made the last entry.
    pub actor: Actor,
}

/// A keyset position in history, newest first: entries strictly older than
/// this one come next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPosition {
    /// `occurred_at` of the last entry seen.
    pub occurred_at: Timestamp,
    /// Its guild.
    pub guild_id: GuildId,
    /// Its seq.
    pub seq: u64,
}

/// A history query, newest first. Filters combine (AND). Without a guild,
/// an actor is required (the cross-guild trail of one actor).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct HistoryQuery {
    /// Only this guild.
    pub guild_id: Option<GuildId>,
    /// Only this actor id.
    pub actor_id: Option<String>,
    /// Only this operation.
    pub operation: Option<Operation>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Only entries before this time.
    pub until: Option<Timestamp>,
    /// Continue after this position.
    pub after: Option<HistoryPosition>,
    /// At most this many entries.
    pub limit: u32,
    /// Only entries of this family, outcome and target.
    pub filter: EntryFilter,
}

/// Filters on what an entry is about, each read from the hashed body (or
/// the verified `operation` column), so nothing verify does not prove
/// decides what a query returns. Config entries read as family `config`,
/// outcome `success` and no target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryFilter {
    /// Only this family: `config`, or the part of an event's action key
    /// before the dot.
    pub family: Option<String>,
    /// Only this outcome.
    pub outcome: Option<EventOutcome>,
    /// Only events whose target has this type.
    pub target_type: Option<String>,
    /// Only events whose target has this id.
    pub target_id: Option<String>,
}

impl EntryFilter {
    /// Whether no filter is set.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// What [`ConfigStore::stats`] counts entries by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsBy {
    /// The operation (config operation or action key).
    Operation,
    /// The family (`config` or the action key's family).
    Family,
    /// The actor id.
    Actor,
    /// The outcome (`success` for config entries).
    Outcome,
    /// The UTC day of `occurred_at`, `YYYY-MM-DD`.
    Day,
}

impl StatsBy {
    /// Parses `operation`, `family`, `actor`, `outcome` or `day`.
    ///
    /// # Errors
    /// A sentence naming the choices.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "operation" => Ok(StatsBy::Operation),
            "family" => Ok(StatsBy::Family),
            "actor" => Ok(StatsBy::Actor),
            "outcome" => Ok(StatsBy::Outcome),
            "day" => Ok(StatsBy::Day),
            _ => Err("must be one of operation, family, actor, outcome, day".into()),
        }
    }
}

/// Which entries [`ConfigStore::stats`] counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsQuery {
    /// Only this guild; every guild without one.
    pub guild_id: Option<GuildId>,
    /// Only entries at or after this time.
    pub since: Option<Timestamp>,
    /// Only entries before this time.
    pub until: Option<Timestamp>,
    /// What to count by.
    pub by: StatsBy,
}

/// One row of [`ConfigStore::stats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsRow {
    /// The value counted by.
    pub key: String,
    /// How many entries have it.
    pub count: u64,
}

/// One stored entry as export and verify read it.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEntry {
    /// The guild (row column).
    pub guild_id: GuildId,
    /// The seq (row column).
    pub seq: u64,
    /// The actor id (row column).
    pub actor_id: String,
    /// The time (row column, stored text).
    pub occurred_at: String,
    /// The operation (row column).
    pub operation: String,
    /// The stored canonical body text, exactly as hashed.
    pub body: String,
    /// The stored entry hash.
    pub entry_hash: String,
    /// The config version the body names (row column).
    pub config_version: u64,
    /// The stored snapshot text of `config_version`, when asked for and
    /// present (never for delete entries).
    pub snapshot: Option<String>,
    /// That snapshot's stored `sha256` column, with it.
    pub snapshot_sha256: Option<String>,
    /// The request id (row column).
    pub request_id: Option<String>,
    /// The previous entry's hash (row column).
    pub prev_hash: String,
    /// The signature stored beside the entry (its three columns), `None`
    /// when they are all empty.
    pub signature: Option<EntrySignature>,
}

/// Rows a guild holds past its head: what verify reports as `past_head`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PastHead {
    /// The guild.
    pub guild_id: GuildId,
    /// The highest seq of an entry past the head's seq, if any.
    pub entry_seq: Option<u64>,
    /// The highest version of a snapshot past the head's version, if any.
    pub snapshot_version: Option<u64>,
}

/// An idempotency record as stored, with the entry that carries its
/// request id, for verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRequest {
    /// The guild.
    pub guild_id: GuildId,
    /// The caller's request id.
    pub request_id: String,
    /// The stored result object, as text (what a replay answers).
    pub result: String,
    /// The stored entry whose `request_id` column names this request, if
    /// one is stored.
    pub entry: Option<RequestEntry>,
}

/// The columns of the entry a request record belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestEntry {
    /// The entry's seq.
    pub seq: u64,
    /// Its hash.
    pub entry_hash: String,
    /// The config version after it.
    pub config_version: u64,
    /// Its operation, as stored.
    pub operation: String,
}

/// The head as stored, for verification: the document as stored text.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredHead {
    /// Last seq.
    pub seq: u64,
    /// Current version.
    pub version: u64,
    /// Last entry hash.
    pub last_hash: String,
    /// The stored current document, `None` when deleted.
    pub document: Option<String>,
    /// The stored `updated_at` text.
    pub updated_at: String,
    /// The stored actor id.
    pub actor_id: String,
    /// The stored actor kind.
    pub actor_kind: String,
    /// The stored actor label.
    pub actor_label: String,
}

/// One guild's head moved: a write committed somewhere (this process or
/// another one sharing the database).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadChange {
    /// The guild.
    pub guild_id: GuildId,
    /// Its config version after the write.
    pub version: u64,
    /// Its last seq after the write.
    pub seq: u64,
}

/// What a [`ChangeWatcher`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    /// These heads moved (committed writes, oldest first).
    Changed(Vec<HeadChange>),
    /// Changes may have been missed (the watcher (re)connected or lost
    /// track): everything a reader cached must be read again.
    Resync,
}

/// A feed of committed changes from every writer sharing a database, for
/// read caches. Obtained from [`ConfigStore::watch`].
#[async_trait]
pub trait ChangeWatcher: Send + fmt::Debug {
    /// Waits for the next event. The first event of a new watcher is
    /// [`WatchEvent::Resync`].
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database is unreachable; the caller
    /// may call `next` again later, and the watcher then answers
    /// [`WatchEvent::Resync`] once it is back.
    async fn next(&mut self) -> StoreResult<WatchEvent>;
}

/// A config store. Every method is keyed by guild first, except the few
/// cross-guild reads (`list_guilds`, history by actor, `guild_ids`) and the
/// token methods (a token belongs to no one guild; its writes still append
/// to each named guild's chain through ordinary change sets).
///
/// Implementations must make [`ConfigStore::commit`] atomic: the snapshot,
/// entry, request record and head move land together or not at all, and the
/// head check happens inside the transaction before commit.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ConfigStore: Send + Sync + fmt::Debug {
    /// The guild's head, `None` when never configured.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn head(&self, guild: GuildId) -> StoreResult<Option<Head>>;

    /// Writes a change set in one transaction.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the head is not at
    /// `change.expected_seq` with the entry's `prev_hash` as its hash (or a
    /// unique key is taken): nothing written.
    /// [`StoreError::Storage`] for any other failure: nothing written.
    async fn commit(&self, change: ChangeSet) -> StoreResult<()>;

    /// Writes every change set `changes` yields, in order, in one
    /// transaction: all of them, or, when one fails, is inconsistent, or the
    /// iterator yields an error (or the process dies midway), none. Import
    /// and copy replay whole histories through it. Returns how many were
    /// written.
    ///
    /// # Errors
    /// As [`ConfigStore::commit`], for the first change set that fails, or
    /// the iterator's own error; nothing is written.
    async fn commit_all(
        &self,
        changes: Box<dyn Iterator<Item = StoreResult<ChangeSet>> + Send>,
    ) -> StoreResult<u64>;

    /// The stored hash and signature of one entry (`None`: no entry at that
    /// seq). A signing writer reads it to check the head it builds on.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails;
    /// [`StoreError::Corrupt`] when the signature columns are partly empty.
    async fn entry_signature(
        &self,
        guild: GuildId,
        seq: u64,
    ) -> StoreResult<Option<(String, Option<EntrySignature>)>>;

    /// The recorded outcome of a request id, if any.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn request(&self, guild: GuildId, request_id: &str)
        -> StoreResult<Option<RequestRecord>>;

    /// A version's snapshot.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn snapshot(&self, guild: GuildId, version: u64) -> StoreResult<Option<Snapshot>>;

    /// The last entry at or before `at`: its config version and operation.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn entry_at(
        &self,
        guild: GuildId,
        at: Timestamp,
    ) -> StoreResult<Option<(u64, Operation)>>;

    /// Every guild with a head, ascending by id.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn list_guilds(&self) -> StoreResult<Vec<GuildSummary>>;

    /// One page of history, newest first, filtered.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails;
    /// [`StoreError::Corrupt`] when a stored body does not parse.
    async fn history(&self, query: &HistoryQuery) -> StoreResult<Vec<Entry>>;

    /// Counts the entries `query` selects by one key, in ascending key
    /// order, computed by the database.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn stats(&self, query: &StatsQuery) -> StoreResult<Vec<StatsRow>>;

    /// Guild ids that have a head or entries, ascending, after `after`.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn guild_ids(&self, after: Option<GuildId>, limit: u32) -> StoreResult<Vec<GuildId>>;

    /// A batch of one guild's entries in seq order, with seq greater than
    /// `after_seq` and, when given, `occurred_at` at or after `since`.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn entries(
        &self,
        guild: GuildId,
        after_seq: u64,
        since: Option<Timestamp>,
        limit: u32,
        with_snapshots: bool,
    ) -> StoreResult<Vec<StoredEntry>> {
        self.entries_between((guild, after_seq), guild, since, limit, with_snapshots)
            .await
    }

    /// A batch of the entries of a range of guilds in `(guild_id, seq)`
    /// order: those after position `after` (exclusive; `(g, 0)` starts at
    /// guild `g`'s first entry) whose guild is at most `through`, and, when
    /// given, whose `occurred_at` is at or after `since`. One round trip
    /// serves many small guilds, so streaming every chain does not cost a
    /// query per guild.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn entries_between(
        &self,
        after: (GuildId, u64),
        through: GuildId,
        since: Option<Timestamp>,
        limit: u32,
        with_snapshots: bool,
    ) -> StoreResult<Vec<StoredEntry>>;

    /// The head as stored, for verification.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn stored_head(&self, guild: GuildId) -> StoreResult<Option<StoredHead>> {
        Ok(self
            .stored_heads(guild, guild)
            .await?
            .into_iter()
            .find_map(|(g, head)| (g == guild).then_some(head)))
    }

    /// The stored heads of the guilds from `from` through `through`
    /// (inclusive), in ascending guild id.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn stored_heads(
        &self,
        from: GuildId,
        through: GuildId,
    ) -> StoreResult<Vec<(GuildId, StoredHead)>>;

    /// The guilds from `from` through `through` that hold an entry past
    /// their head's seq or a snapshot past their head's version, read in one
    /// statement (one consistent view: a write moves its head in the same
    /// transaction as it adds its rows, so a concurrent write never shows).
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn rows_past_heads(&self, from: GuildId, through: GuildId) -> StoreResult<Vec<PastHead>>;

    /// Every idempotency record of the guilds from `from` through `through`,
    /// in guild and request id order, each with the stored entry that
    /// carries its request id (if any), read in one statement: what verify
    /// needs to prove that a replayed write answers what the chain says.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails;
    /// [`StoreError::Corrupt`] when a row cannot be decoded.
    async fn stored_requests(
        &self,
        from: GuildId,
        through: GuildId,
    ) -> StoreResult<Vec<StoredRequest>>;

    /// A feed of committed changes by every writer of this database, for a
    /// read cache. The default answers that the store cannot be watched.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the store cannot be watched or the
    /// database is unreachable.
    async fn watch(&self) -> StoreResult<Box<dyn ChangeWatcher>> {
        Err(StoreError::Storage(
            "this store offers no change feed".into(),
        ))
    }

    /// What a retention purge of entries before `before` (exclusive) would
    /// remove; `None` when the guild has nothing to purge. The entry that
    /// made the current version and every later entry always stay.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails.
    async fn purge_candidate(
        &self,
        guild: GuildId,
        before: Timestamp,
    ) -> StoreResult<Option<PurgeCandidate>>;

    /// Writes a token change and the event entries it appends to the chains
    /// of the guilds the token names, in one transaction (after
    /// [`TokenWrite::check`]): all of it, or nothing.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when a guild's head is not where its change
    /// set expects, when a revoke finds no unrevoked token with that id, or
    /// when a new token's id or hash is taken: nothing written.
    /// [`StoreError::Storage`] for any other failure: nothing written.
    async fn commit_token(&self, write: TokenWrite) -> StoreResult<()>;

    /// The token whose secret hashes to `secret_sha256` (lowercase hex),
    /// revoked or not: a lookup by the hash, so no secret is ever compared.
    ///
    /// # Errors
    /// [`StoreError::Storage`] when the database fails;
    /// [`StoreError::Corrupt`] when the row cannot be decoded.
    async fn token_by_hash(&self, secret_sha256: &str) -> StoreResult<Option<TokenInfo>>;

    /// The token with this public id, revoked or not.
    ///
    /// # Errors
    /// As [`ConfigStore::token_by_hash`].
    async fn token(&self, id: &str) -> StoreResult<Option<TokenInfo>>;

    /// Every token, revoked ones too, oldest first (by `created_at`, then
    /// id). One of the reads not keyed by guild: a token belongs to none.
    ///
    /// # Errors
    /// As [`ConfigStore::token_by_hash`].
    async fn tokens(&self) -> StoreResult<Vec<TokenInfo>>;

    /// Runs one guild's purge in one transaction, in bounded batches, through
    /// the gate only this transaction opens (the append-only triggers refuse
    /// every other delete).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the head or entry `through_seq` is not
    /// what the purge set expects: nothing removed. [`StoreError::Storage`]
    /// for any other failure: nothing removed.
    async fn purge(&self, purge: PurgeSet) -> StoreResult<PurgeOutcome>;
}

/// The source of `occurred_at`. Tests inject a fixed clock so exports are
/// comparable across backends.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current UTC time.
    fn now(&self) -> DateTime<Utc>;
}

/// The real clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guildconf_domain::ActorKind;

    fn head(version: u64) -> Head {
        Head {
            guild_id: GuildId::from_u64(80_351_110_224_678_912).expect("valid id"),
            version,
            seq: 9,
            last_hash: "h9".into(),
            updated_at: Timestamp::parse_stored("2026-06-01T00:00:09.000000Z").expect("valid time"),
            actor: Actor {
                id: "1".into(),
                kind: ActorKind::System,
                label: "test".into(),
            },
            document: None,
        }
    }

    fn facts() -> PurgeFacts {
        PurgeFacts {
            cap_seq: Some(8),
            through: Some((5, "h5".into())),
            entries: 5,
            next_version: Some(3),
            snapshots_below_next: 2,
            snapshots_below_head: 4,
        }
    }

    #[test]
    fn a_purge_candidate_keeps_from_the_first_version_a_kept_entry_makes() {
        let candidate = PurgeCandidate::from_facts(head(5), facts()).expect("not corrupt");
        assert_eq!(
            candidate,
            Some(PurgeCandidate {
                head: head(5),
                through_seq: 5,
                through_hash: "h5".into(),
                entries: 5,
                keep_from_version: 3,
                snapshots: 2,
            })
        );
    }

    #[test]
    fn without_a_kept_version_entry_the_head_version_stands_in() {
        let facts = PurgeFacts {
            next_version: None,
            ..facts()
        };
        let candidate = PurgeCandidate::from_facts(head(5), facts)
            .expect("not corrupt")
            .expect("a candidate");
        assert_eq!((candidate.keep_from_version, candidate.snapshots), (5, 4));
    }

    #[test]
    fn nothing_is_purged_without_a_version_entry_or_an_entry_before_the_cut_off() {
        let no_cap = PurgeFacts {
            cap_seq: None,
            ..facts()
        };
        assert_eq!(PurgeCandidate::from_facts(head(5), no_cap), Ok(None));
        let nothing_old = PurgeFacts {
            through: None,
            ..facts()
        };
        assert_eq!(PurgeCandidate::from_facts(head(5), nothing_old), Ok(None));
    }

    #[test]
    fn a_negative_stored_count_is_corrupt() {
        let facts = PurgeFacts {
            entries: -1,
            ..facts()
        };
        assert_eq!(
            PurgeCandidate::from_facts(head(5), facts),
            Err(StoreError::Corrupt("stored count is negative".into()))
        );
    }
}
