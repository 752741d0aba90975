//! Re-verifying a guild's hash chain, one entry at a time.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::actor::ActorKind;
use crate::entry::{body_value, EntryBody, Operation, GENESIS_HASH};
use crate::ids::GuildId;
use crate::json::{canonical, is_canonical, sha256_hex, HEX_DIGITS};
use crate::signature::{EntrySignature, SignatureBatch, SignatureFault, SignaturePolicy};
use crate::time::Timestamp;

/// The stable code of a verification failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// `seq` is not the next number (missing, repeated or reordered entry).
    SeqGap,
    /// `prev_hash` is not the previous entry's hash.
    PrevHash,
    /// The recomputed hash differs, or the stored row disagrees with its body.
    EntryHash,
    /// `snapshot_sha256` does not match the stored snapshot.
    Snapshot,
    /// The guild's head does not match its last entry.
    Head,
    /// An entry or a snapshot is stored past the guild's head (the head was
    /// moved back, or a row was slipped in after it).
    PastHead,
    /// A signature is missing, malformed, by an untrusted key or invalid,
    /// where the verifier's [`SignaturePolicy`] requires a valid one.
    Signature,
    /// An idempotency record's stored result (what a retried write answers)
    /// disagrees with the entry that carries its request id, or names no
    /// stored entry in a chain that was never purged.
    Request,
}

impl ProblemCode {
    /// The code as written in JSON (`seq_gap`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::SeqGap => "seq_gap",
            ProblemCode::PrevHash => "prev_hash",
            ProblemCode::EntryHash => "entry_hash",
            ProblemCode::Snapshot => "snapshot",
            ProblemCode::Head => "head",
            ProblemCode::PastHead => "past_head",
            ProblemCode::Signature => "signature",
            ProblemCode::Request => "request",
        }
    }
}

impl fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first failure found in one guild's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The guild.
    pub guild_id: GuildId,
    /// The entry at fault, when one is.
    pub seq: Option<u64>,
    /// The stable code.
    pub problem: ProblemCode,
    /// What was found, for people. Never holds document values.
    pub message: String,
}

/// What the store says a guild's head is: every column of the head row, each
/// of which the last entry implies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadFacts {
    /// Last seq.
    pub seq: u64,
    /// Current config version.
    pub version: u64,
    /// Last entry hash.
    pub last_hash: String,
    /// SHA-256 of the canonical current document, `None` when deleted.
    pub document_sha256: Option<String>,
    /// The stored time of the last change, as text.
    pub updated_at: String,
    /// The last actor's id.
    pub actor_id: String,
    /// The last actor's kind, as stored.
    pub actor_kind: String,
    /// The last actor's label.
    pub actor_label: String,
}

/// What the store holds for an entry's snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotEvidence {
    /// Not checked (an export file without snapshots).
    Unknown,
    /// The store has no snapshot for the entry's version.
    Missing,
    /// SHA-256 of the canonical stored snapshot, recomputed from its text.
    Sha256(String),
}

/// What the storage row says beside the hashed body; a disagreement means
/// someone edited a column. Every column of an entry row outside its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowFacts<'a> {
    /// The row's seq column.
    pub seq: u64,
    /// The row's actor id column.
    pub actor_id: &'a str,
    /// The row's occurred_at column.
    pub occurred_at: &'a str,
    /// The row's operation column.
    pub operation: &'a str,
    /// The row's stored entry hash.
    pub entry_hash: &'a str,
    /// The row's config_version column.
    pub config_version: u64,
    /// The row's request_id column.
    pub request_id: Option<&'a str>,
    /// The row's prev_hash column.
    pub prev_hash: &'a str,
    /// The `sha256` column of the snapshot of the row's version, when one is
    /// stored (it must equal both the hash of the snapshot's text and the
    /// body's `snapshot_sha256`).
    pub snapshot_sha256: Option<&'a str>,
}

/// The fields of an entry the chain checks read, borrowed from a parsed
/// [`EntryBody`] or straight from stored body text.
struct Link<'a> {
    v: u32,
    guild_id: GuildId,
    seq: u64,
    config_version: u64,
    operation: Operation,
    occurred_at: Cow<'a, str>,
    actor_id: &'a str,
    actor_kind: ActorKind,
    actor_label: &'a str,
    request_id: Option<&'a str>,
    snapshot_sha256: Option<&'a str>,
    prev_hash: &'a str,
    /// A purge entry's `(through_seq, through_hash)`.
    through: Option<(u64, &'a str)>,
}

impl<'a> Link<'a> {
    fn of(body: &'a EntryBody) -> Self {
        Self {
            v: body.v,
            guild_id: body.guild_id,
            seq: body.seq,
            config_version: body.config_version,
            operation: body.operation,
            occurred_at: Cow::Owned(body.occurred_at.to_string()),
            actor_id: &body.actor.id,
            actor_kind: body.actor.kind,
            actor_label: &body.actor.label,
            request_id: body.request_id.as_deref(),
            snapshot_sha256: body.snapshot_sha256.as_deref(),
            prev_hash: &body.prev_hash,
            through: if body.operation == Operation::Purge {
                purge_through(&body.detail)
            } else {
                None
            },
        }
    }
}

/// What the head check needs of the last entry seen; owned, and overwritten
/// in place entry after entry.
#[derive(Debug, Default)]
struct Last {
    seq: u64,
    config_version: u64,
    operation: Option<Operation>,
    snapshot_sha256: Option<String>,
    hash: String,
    occurred_at: String,
    actor_id: String,
    actor_kind: Option<ActorKind>,
    actor_label: String,
}

/// A stored body read without building an [`EntryBody`]: exactly the 15
/// keys (unknown or missing keys fail), the chain fields and scalars typed,
/// strings borrowed from the text. `changes` must be an array and
/// `context`/`detail` objects; their contents are covered by the hash but
/// not re-typed here (the writer validated them; the hash proves they are
/// unchanged since).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredBody<'a> {
    v: u32,
    guild_id: GuildId,
    seq: u64,
    config_version: u64,
    operation: Operation,
    occurred_at: &'a str,
    #[serde(borrow)]
    actor: StoredActor<'a>,
    #[serde(rename = "changes")]
    _changes: Vec<IgnoredAny>,
    #[serde(borrow, rename = "summary")]
    _summary: Cow<'a, str>,
    snapshot_sha256: Option<&'a str>,
    #[serde(rename = "reason")]
    _reason: Option<String>,
    #[serde(borrow)]
    request_id: Option<Cow<'a, str>>,
    #[serde(rename = "context")]
    _context: Object,
    detail: Object,
    prev_hash: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredActor<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    kind: ActorKind,
    #[serde(borrow)]
    label: Cow<'a, str>,
}

/// Any JSON object; keeps `through_seq` and `through_hash` when they are a
/// `u64` and a string (what [`purge_through`] reads).
#[derive(Default)]
struct Object {
    through_seq: Option<u64>,
    through_hash: Option<String>,
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Object;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Object, M::Error> {
                let mut out = Object::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match key.as_ref() {
                        "through_seq" => out.through_seq = map.next_value::<Value>()?.as_u64(),
                        "through_hash" => {
                            if let Value::String(h) = map.next_value::<Value>()? {
                                out.through_hash = Some(h);
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Whether the lowercase hex SHA-256 of `bytes` is `hex`, without allocating.
fn sha256_is(bytes: &[u8], hex: &str) -> bool {
    let digest = Sha256::digest(bytes);
    let hex = hex.as_bytes();
    hex.len() == 64
        && digest.iter().enumerate().all(|(i, b)| {
            hex[2 * i] == HEX_DIGITS[usize::from(b >> 4)]
                && hex[2 * i + 1] == HEX_DIGITS[usize::from(b & 15)]
        })
}

/// The `(through_seq, through_hash)` a purge entry's `detail` records, when
/// it has both.
pub fn purge_through(detail: &Map<String, Value>) -> Option<(u64, &str)> {
    Some((
        detail.get("through_seq")?.as_u64()?,
        detail.get("through_hash")?.as_str()?,
    ))
}

/// Verifies one guild's chain as entries stream past in seq order, keeping
/// only the previous entry in memory. Stops at the first failure.
#[derive(Debug)]
pub struct ChainVerifier {
    guild: GuildId,
    next_seq: u64,
    prev_hash: String,
    last: Option<Last>,
    problem: Option<Problem>,
    checked: u64,
    /// A chain that starts after seq 1 (old entries purged): its first seq,
    /// and the `(through_seq, through_hash)` a later purge entry must record.
    /// `None` once such a purge entry was seen, or when the chain starts at 1.
    unanchored: Option<(u64, u64, String)>,
    /// Signature checking, when the verifier was given trusted keys.
    signatures: Option<Signatures>,
}

/// The signature state of one chain under a [`SignaturePolicy`].
#[derive(Debug)]
struct Signatures {
    policy: Arc<SignaturePolicy>,
    batch: SignatureBatch,
    /// The first seq signed by a trusted key: from there on, every entry must
    /// be.
    trusted_from: Option<u64>,
    /// Whether the last entry seen carries a trusted key's signature (its
    /// arithmetic is checked with its batch).
    last_signed: bool,
}

impl ChainVerifier {
    /// Starts verifying a guild's chain. It starts at seq 1 (after
    /// [`GENESIS_HASH`]), or, after a retention purge, at seq N+1 whose
    /// `prev_hash` is H, provided a purge entry of the chain records
    /// `{"through_seq": N, "through_hash": H}` in its `detail`.
    pub fn new(guild: GuildId) -> Self {
        Self {
            guild,
            next_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            last: None,
            problem: None,
            checked: 0,
            unanchored: None,
            signatures: None,
        }
    }

    /// Starts verifying a guild's chain as [`ChainVerifier::new`] does, and
    /// also its signatures: once an entry carries a valid signature by a
    /// trusted key, every later entry must too; any signature present must
    /// be valid and by a trusted key; with
    /// [`SignaturePolicy::require_signed`], the last entry must be signed.
    /// Each failure is problem [`ProblemCode::Signature`].
    pub fn with_signatures(guild: GuildId, policy: Arc<SignaturePolicy>) -> Self {
        let mut verifier = Self::new(guild);
        verifier.signatures = Some(Signatures {
            policy,
            batch: SignatureBatch::default(),
            trusted_from: None,
            last_signed: false,
        });
        verifier
    }

    /// A verifier under `policy` when one is given, else a plain one.
    pub fn for_policy(guild: GuildId, policy: Option<&Arc<SignaturePolicy>>) -> Self {
        match policy {
            Some(p) => Self::with_signatures(guild, Arc::clone(p)),
            None => Self::new(guild),
        }
    }

    /// Checks the signatures collected so far; an invalid one becomes the
    /// problem (it comes before anything found later in the chain).
    fn flush_signatures(&mut self) {
        let Some(sigs) = self.signatures.as_mut() else {
            return;
        };
        if let Some(seq) = sigs.batch.flush() {
            if self.problem.is_none() {
                self.problem = Some(Problem {
                    guild_id: self.guild,
                    seq: Some(seq),
                    problem: ProblemCode::Signature,
                    message: SignatureFault::Invalid.to_string(),
                });
            }
        }
    }

    /// Entry `seq`'s signature under the policy (when there is one).
    fn check_signature(&mut self, seq: u64, entry_hash: &str, sig: Option<&EntrySignature>) {
        let Some(sigs) = self.signatures.as_mut() else {
            return;
        };
        let fault = match (sig, sigs.trusted_from) {
            // Before the first trusted signature, an unsigned entry is a
            // chain written before signing was turned on.
            (None, None) => {
                sigs.last_signed = false;
                return;
            }
            (None, Some(from)) => format!("the entry is not signed, but seq {from} was"),
            (Some(_), _) => match sigs.batch.push(&sigs.policy.trusted, seq, entry_hash, sig) {
                Ok(()) => {
                    sigs.trusted_from.get_or_insert(seq);
                    sigs.last_signed = true;
                    if sigs.batch.full() {
                        self.flush_signatures();
                    }
                    return;
                }
                Err(fault) => fault.to_string(),
            },
        };
        self.fail(Some(seq), ProblemCode::Signature, fault);
    }

    fn fail(&mut self, seq: Option<u64>, problem: ProblemCode, message: impl Into<String>) {
        // A signature still waiting for its batch belongs to an earlier
        // entry: if it is bad, it is the first problem.
        self.flush_signatures();
        if self.problem.is_none() {
            self.problem = Some(Problem {
                guild_id: self.guild,
                seq,
                problem,
                message: message.into(),
            });
        }
    }

    /// Whether a failure has been found already.
    pub fn failed(&self) -> bool {
        self.problem.is_some()
    }

    /// The first failure found so far, if any.
    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    /// Feeds the next entry: its JSON line (body keys plus `entry_hash`, other
    /// keys ignored), what the store holds for its snapshot, and, from a
    /// database, the row's own columns.
    pub fn push(
        &mut self,
        line: &Map<String, Value>,
        snapshot: SnapshotEvidence,
        row: Option<&RowFacts<'_>>,
    ) {
        self.push_signed(line, None, snapshot, row);
    }

    /// [`ChainVerifier::push`] for an entry that may carry a signature
    /// (checked only under a [`SignaturePolicy`]).
    pub fn push_signed(
        &mut self,
        line: &Map<String, Value>,
        sig: Option<&EntrySignature>,
        snapshot: SnapshotEvidence,
        row: Option<&RowFacts<'_>>,
    ) {
        if self.failed() {
            return;
        }
        self.checked += 1;
        let row_seq = row.map(|r| r.seq);
        let claimed = line
            .get("entry_hash")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let body_map = body_value(line);
        let recomputed = match canonical(&Value::Object(body_map.clone())) {
            Ok(c) => sha256_hex(c.as_bytes()),
            Err(e) => return self.fail(row_seq, ProblemCode::EntryHash, e),
        };
        let body: EntryBody = match serde_json::from_value(Value::Object(body_map)) {
            Ok(b) => b,
            Err(e) => {
                return self.fail(
                    row_seq.or(Some(self.next_seq)),
                    ProblemCode::EntryHash,
                    format!("malformed entry body: {e}"),
                )
            }
        };
        self.check(
            &Link::of(&body),
            recomputed == claimed,
            claimed,
            &snapshot,
            row,
            sig,
        );
    }

    /// Feeds the next entry as a store holds it: the stored body text, the
    /// stored `entry_hash`, the snapshot evidence (computed from the body's
    /// claimed `snapshot_sha256`), and the row's columns. Exactly as strict as
    /// [`ChainVerifier::push`] about the chain, but cheaper: when the text is
    /// an object in canonical form ([`is_canonical`]) that hashes to
    /// `entry_hash`, the hash over the canonical bytes *is* that hash, and the
    /// body is read in place (`StoredBody`: exactly the 15 keys, the chain
    /// fields typed, no copies). Anything else takes [`ChainVerifier::push`]'s
    /// path, which also names a malformed body.
    pub fn push_stored(
        &mut self,
        body: &str,
        entry_hash: &str,
        snapshot: impl FnOnce(Option<&str>) -> SnapshotEvidence,
        row: Option<&RowFacts<'_>>,
    ) {
        self.push_stored_signed(body, entry_hash, None, snapshot, row);
    }

    /// [`ChainVerifier::push_stored`] for an entry that may carry a
    /// signature (checked only under a [`SignaturePolicy`]).
    pub fn push_stored_signed(
        &mut self,
        body: &str,
        entry_hash: &str,
        sig: Option<&EntrySignature>,
        snapshot: impl FnOnce(Option<&str>) -> SnapshotEvidence,
        row: Option<&RowFacts<'_>>,
    ) {
        if self.failed() {
            return;
        }
        if body.starts_with('{') && sha256_is(body.as_bytes(), entry_hash) && is_canonical(body) {
            if let Ok(parsed) = serde_json::from_str::<StoredBody<'_>>(body) {
                if Timestamp::is_stored_form(parsed.occurred_at) {
                    self.checked += 1;
                    let evidence = snapshot(parsed.snapshot_sha256);
                    let link = Link {
                        v: parsed.v,
                        guild_id: parsed.guild_id,
                        seq: parsed.seq,
                        config_version: parsed.config_version,
                        operation: parsed.operation,
                        occurred_at: Cow::Borrowed(parsed.occurred_at),
                        actor_id: &parsed.actor.id,
                        actor_kind: parsed.actor.kind,
                        actor_label: &parsed.actor.label,
                        request_id: parsed.request_id.as_deref(),
                        snapshot_sha256: parsed.snapshot_sha256,
                        prev_hash: parsed.prev_hash,
                        through: match (parsed.operation, &parsed.detail) {
                            (
                                Operation::Purge,
                                Object {
                                    through_seq: Some(seq),
                                    through_hash: Some(hash),
                                },
                            ) => Some((*seq, hash.as_str())),
                            _ => None,
                        },
                    };
                    return self.check(&link, true, entry_hash, &evidence, row, sig);
                }
            }
        }
        let mut line = match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        line.insert("entry_hash".into(), Value::String(entry_hash.to_owned()));
        let evidence = snapshot(line.get("snapshot_sha256").and_then(Value::as_str));
        self.push_signed(&line, sig, evidence, row);
    }

    fn check(
        &mut self,
        link: &Link<'_>,
        hash_ok: bool,
        claimed: &str,
        snapshot: &SnapshotEvidence,
        row: Option<&RowFacts<'_>>,
        sig: Option<&EntrySignature>,
    ) {
        let seq = link.seq;
        if link.v != crate::entry::ENTRY_FORMAT_VERSION {
            return self.fail(
                Some(seq),
                ProblemCode::EntryHash,
                format!("entry format v {} is not one guildconf writes", link.v),
            );
        }
        if link.guild_id != self.guild {
            return self.fail(
                Some(seq),
                ProblemCode::EntryHash,
                format!("entry belongs to guild {}", link.guild_id),
            );
        }
        if self.checked == 1 && seq > 1 && self.next_seq == 1 {
            // A chain may start later, after a retention purge: accepted only
            // if a purge entry further on records removing exactly the
            // entries before this one (checked as entries stream past, and
            // finally in `finish`).
            self.next_seq = seq;
            self.prev_hash = link.prev_hash.to_owned();
            self.unanchored = Some((seq, seq - 1, link.prev_hash.to_owned()));
        }
        if seq != self.next_seq {
            return self.fail(
                Some(seq),
                ProblemCode::SeqGap,
                format!("expected seq {}, found {seq}", self.next_seq),
            );
        }
        if link.prev_hash != self.prev_hash {
            return self.fail(
                Some(seq),
                ProblemCode::PrevHash,
                "prev_hash is not the previous entry's hash",
            );
        }
        if !hash_ok {
            return self.fail(
                Some(seq),
                ProblemCode::EntryHash,
                "recomputed hash differs from entry_hash",
            );
        }
        if let Some(row) = row {
            let agrees = row.seq == seq
                && row.actor_id == link.actor_id
                && row.occurred_at == link.occurred_at
                && row.operation == link.operation.as_str()
                && row.entry_hash == claimed
                && row.config_version == link.config_version
                && row.request_id == link.request_id
                && row.prev_hash == link.prev_hash;
            if !agrees {
                return self.fail(
                    Some(seq),
                    ProblemCode::EntryHash,
                    "the stored row's columns disagree with its hashed body",
                );
            }
        }
        if let (Some(row), SnapshotEvidence::Sha256(text_sha)) = (row, snapshot) {
            if row.snapshot_sha256 != Some(text_sha.as_str()) {
                return self.fail(
                    Some(seq),
                    ProblemCode::Snapshot,
                    format!(
                        "the stored sha256 of version {}'s snapshot is not the hash of its text",
                        link.config_version
                    ),
                );
            }
        }
        // A delete names no snapshot; a purge or an event names the document
        // current when it ran, none when the guild had none.
        let purge_like = matches!(
            link.operation,
            Operation::Delete | Operation::Purge | Operation::Event(_)
        );
        match (snapshot, link.snapshot_sha256) {
            (SnapshotEvidence::Unknown, _) => {}
            (SnapshotEvidence::Sha256(stored), Some(claimed_sha)) if stored == claimed_sha => {}
            (_, None) if purge_like => {}
            // A purge entry records the document current when it ran; a later
            // purge may have removed that version's snapshot.
            (SnapshotEvidence::Missing, Some(_)) if link.operation == Operation::Purge => {}
            (SnapshotEvidence::Missing, _) => {
                return self.fail(
                    Some(seq),
                    ProblemCode::Snapshot,
                    format!("no stored snapshot for version {}", link.config_version),
                )
            }
            _ => {
                return self.fail(
                    Some(seq),
                    ProblemCode::Snapshot,
                    format!(
                        "stored snapshot of version {} does not match snapshot_sha256",
                        link.config_version
                    ),
                )
            }
        }
        if let (Some(through), Some((_, through_seq, through_hash))) =
            (link.through, &self.unanchored)
        {
            if through == (*through_seq, through_hash.as_str()) {
                self.unanchored = None;
            }
        }
        // A crafted seq of u64::MAX has no successor: the next line fails.
        self.next_seq = seq.saturating_add(1);
        self.prev_hash.clear();
        self.prev_hash.push_str(claimed);
        let last = self.last.get_or_insert_with(Last::default);
        last.seq = seq;
        last.config_version = link.config_version;
        last.operation = Some(link.operation);
        match (link.snapshot_sha256, &mut last.snapshot_sha256) {
            (Some(new), Some(kept)) => {
                kept.clear();
                kept.push_str(new);
            }
            (new, kept) => *kept = new.map(str::to_owned),
        }
        last.hash.clear();
        last.hash.push_str(claimed);
        last.occurred_at.clear();
        last.occurred_at.push_str(&link.occurred_at);
        last.actor_id.clear();
        last.actor_id.push_str(link.actor_id);
        last.actor_kind = Some(link.actor_kind);
        last.actor_label.clear();
        last.actor_label.push_str(link.actor_label);
        self.check_signature(seq, claimed, sig);
    }

    /// Ends the guild: checks the head (when given) against the last entry and
    /// returns the number of entries checked, or the first failure.
    ///
    /// # Errors
    /// The first [`Problem`] found in this guild's chain.
    pub fn finish(mut self, head: Option<&HeadFacts>, head_expected: bool) -> Result<u64, Problem> {
        self.flush_signatures();
        if let Some(sigs) = &self.signatures {
            if sigs.policy.require_signed && !sigs.last_signed {
                if let Some(seq) = self.last.as_ref().map(|l| l.seq) {
                    self.fail(
                        Some(seq),
                        ProblemCode::Signature,
                        "the guild's last entry is not signed by a trusted key",
                    );
                }
            }
        }
        if let Some((first, through_seq, _)) = self.unanchored.take() {
            self.fail(
                Some(first),
                ProblemCode::SeqGap,
                format!(
                    "the chain starts at seq {first}, but no purge entry records removing the entries through seq {through_seq}"
                ),
            );
        }
        if self.problem.is_none() && head_expected {
            self.check_head(head);
        }
        match self.problem {
            Some(p) => Err(p),
            None => Ok(self.checked),
        }
    }

    fn check_head(&mut self, head: Option<&HeadFacts>) {
        let last = self.last.take();
        match (head, last) {
            (None, None) => {}
            (None, Some(last)) => self.fail(
                Some(last.seq),
                ProblemCode::Head,
                "entries exist but the guild has no head",
            ),
            (Some(h), None) => self.fail(
                None,
                ProblemCode::Head,
                format!("head says seq {} but the guild has no entries", h.seq),
            ),
            (Some(h), Some(last)) => {
                let doc_ok = match last.operation {
                    Some(Operation::Delete) => h.document_sha256.is_none(),
                    // A purge leaves the document as it was, deleted or not.
                    // So does an event, and a guild that has only events has none.
                    Some(Operation::Purge | Operation::Event(_)) => {
                        h.document_sha256 == last.snapshot_sha256
                    }
                    _ => h.document_sha256.is_some() && h.document_sha256 == last.snapshot_sha256,
                };
                if h.seq != last.seq || h.last_hash != last.hash {
                    self.fail(
                        Some(last.seq),
                        ProblemCode::Head,
                        format!(
                            "head says seq {} but the last entry is seq {}",
                            h.seq, last.seq
                        ),
                    );
                } else if h.version != last.config_version {
                    self.fail(
                        Some(last.seq),
                        ProblemCode::Head,
                        format!(
                            "head says version {} but the last entry made version {}",
                            h.version, last.config_version
                        ),
                    );
                } else if !doc_ok {
                    self.fail(
                        Some(last.seq),
                        ProblemCode::Head,
                        "the current document does not match the last entry's snapshot",
                    );
                } else if h.updated_at != last.occurred_at {
                    self.fail(
                        Some(last.seq),
                        ProblemCode::Head,
                        "the head's updated_at is not the last entry's occurred_at",
                    );
                } else if h.actor_id != last.actor_id
                    || Some(h.actor_kind.as_str()) != last.actor_kind.map(ActorKind::as_str)
                    || h.actor_label != last.actor_label
                {
                    self.fail(
                        Some(last.seq),
                        ProblemCode::Head,
                        "the head's actor is not the last entry's actor",
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actor::{Actor, ActorKind};
    use crate::time::Timestamp;
    use serde_json::json;

    fn guild() -> GuildId {
        GuildId::from_u64(7).expect("valid id")
    }

    /// A chain of `n` entries; entry `purge_at` (if any) is a purge entry
    /// whose detail names `through`.
    fn chain(n: u64, purge_at: Option<(u64, u64)>) -> Vec<Map<String, Value>> {
        let mut prev = GENESIS_HASH.to_owned();
        let mut hashes = vec![GENESIS_HASH.to_owned()];
        let mut out = Vec::new();
        for seq in 1..=n {
            let (operation, detail) = match purge_at {
                Some((at, through)) if at == seq => (
                    Operation::Purge,
                    json!({"before": "2026-01-01T00:00:00.000000Z", "through_seq": through,
                           "through_hash": hashes[usize::try_from(through).expect("small")]}),
                ),
                _ => (Operation::Update, json!({})),
            };
            let body = EntryBody {
                v: 1,
                guild_id: guild(),
                seq,
                config_version: seq,
                operation,
                occurred_at: Timestamp::parse_stored(&format!(
                    "2026-01-01T00:{:02}:{:02}.000000Z",
                    seq / 60,
                    seq % 60
                ))
                .expect("valid time"),
                actor: Actor::new("system", ActorKind::System, None).expect("valid actor"),
                changes: vec![],
                summary: "s".into(),
                snapshot_sha256: None,
                reason: None,
                request_id: None,
                context: Map::new(),
                detail: detail.as_object().cloned().unwrap_or_default(),
                prev_hash: prev.clone(),
            };
            let entry = body.seal().expect("seals").into_entry();
            prev.clone_from(&entry.entry_hash);
            hashes.push(entry.entry_hash.clone());
            match entry.to_json().expect("json") {
                Value::Object(m) => out.push(m),
                _ => unreachable!(),
            }
        }
        out
    }

    fn run(lines: &[Map<String, Value>]) -> Result<u64, Problem> {
        let mut v = ChainVerifier::new(guild());
        for l in lines {
            v.push(l, SnapshotEvidence::Unknown, None);
        }
        v.finish(None, false)
    }

    #[test]
    fn a_purged_chain_starts_later_only_with_a_matching_purge_entry() {
        // Entries 1..=3 removed; entry 6 records the purge through seq 3.
        let full = chain(7, Some((6, 3)));
        assert_eq!(run(&full), Ok(7));
        assert_eq!(run(&full[3..]), Ok(4));
        // Removing one entry more than the purge says: unanchored.
        let p = run(&full[4..]).expect_err("fails");
        assert_eq!((p.seq, p.problem), (Some(5), ProblemCode::SeqGap));
        // Removing old entries with no purge entry at all.
        let plain = chain(5, None);
        let p = run(&plain[2..]).expect_err("fails");
        assert_eq!((p.seq, p.problem), (Some(3), ProblemCode::SeqGap));
        // The purge entry itself removed as well (a later purge would have
        // written its own): unanchored.
        let p = run(&full[3..5]).expect_err("fails");
        assert_eq!((p.seq, p.problem), (Some(4), ProblemCode::SeqGap));
    }

    /// Runs `lines` through a verifier trusting key 1; `signed(seq)` says
    /// which key (if any) signs entry `seq` and over which hash.
    fn run_signed(
        lines: &[Map<String, Value>],
        require_signed: bool,
        sign: impl Fn(u64, &str) -> Option<EntrySignature>,
    ) -> Result<u64, Problem> {
        let policy = SignaturePolicy {
            trusted: crate::TrustedKeys::new([key(1).verifying_key()]),
            require_signed,
        };
        let mut v = ChainVerifier::with_signatures(guild(), Arc::new(policy));
        for l in lines {
            let (body, hash) = stored(l);
            let seq = l["seq"].as_u64().expect("seq");
            let sig = sign(seq, &hash);
            v.push_stored_signed(
                &body,
                &hash,
                sig.as_ref(),
                |_| SnapshotEvidence::Unknown,
                None,
            );
        }
        v.finish(None, false)
    }

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn signatures_switch_on_once_and_never_off() {
        // 150 entries: more than two batches, so a bad signature is found
        // by a batch check and named by the one-by-one pass after it.
        let lines = chain(150, None);
        let by = |k: u8| move |_: u64, h: &str| Some(EntrySignature::sign(&key(k), h));
        assert_eq!(run_signed(&lines, true, by(1)), Ok(150));
        // Unsigned before seq 40, signed from there: fine.
        let from_40 = |seq: u64, h: &str| (seq >= 40).then(|| EntrySignature::sign(&key(1), h));
        assert_eq!(run_signed(&lines, true, from_40), Ok(150));
        // Never signed: fine, unless the last entry must be.
        assert_eq!(run_signed(&lines, false, |_, _| None), Ok(150));
        let p = run_signed(&lines, true, |_, _| None).expect_err("fails");
        assert_eq!((p.seq, p.problem), (Some(150), ProblemCode::Signature));
        // Unsigned again after seq 40: the first unsigned one.
        let gap =
            |seq: u64, h: &str| (seq >= 40 && seq != 97).then(|| EntrySignature::sign(&key(1), h));
        let p = run_signed(&lines, false, gap).expect_err("fails");
        assert_eq!((p.seq, p.problem), (Some(97), ProblemCode::Signature));
        // An untrusted key anywhere.
        let other =
            |seq: u64, h: &str| Some(EntrySignature::sign(&key(if seq == 3 { 2 } else { 1 }), h));
        let p = run_signed(&lines, false, other).expect_err("fails");
        assert_eq!((p.seq, p.problem), (Some(3), ProblemCode::Signature));
    }

    #[test]
    fn a_bad_signature_waiting_in_its_batch_comes_before_a_later_chain_problem() {
        let mut lines = chain(150, None);
        lines[120].insert("summary".into(), json!("edited"));
        // Entry 70's signature is over another hash: caught by its batch,
        // which is checked when entry 121's hash problem is found.
        let sign = |seq: u64, h: &str| {
            let over = if seq == 70 {
                "f".repeat(64)
            } else {
                h.to_owned()
            };
            Some(EntrySignature::sign(&key(1), &over))
        };
        let p = run_signed(&lines, false, sign).expect_err("fails");
        assert_eq!((p.seq, p.problem), (Some(70), ProblemCode::Signature));
        // Without it, the chain problem is the one named.
        let p = run_signed(&lines, false, |_, h| Some(EntrySignature::sign(&key(1), h)))
            .expect_err("fails");
        assert_eq!((p.seq, p.problem), (Some(121), ProblemCode::EntryHash));
    }

    #[test]
    fn an_anchored_start_with_a_wrong_hash_fails() {
        let mut full = chain(7, Some((6, 3)));
        // The purge entry names a different through_hash: re-sealing it would
        // change every later link, so edit detail only and expect entry_hash.
        full[5].insert(
            "detail".into(),
            json!({"before": "x", "through_seq": 3, "through_hash": "f".repeat(64)}),
        );
        let p = run(&full[3..]).expect_err("fails");
        assert_eq!((p.seq, p.problem), (Some(6), ProblemCode::EntryHash));
    }

    /// The stored text of a line (its body, canonical) and its entry hash.
    fn stored(line: &Map<String, Value>) -> (String, String) {
        let body = canonical(&Value::Object(body_value(line))).expect("canonical");
        let hash = line["entry_hash"].as_str().expect("hash").to_owned();
        (body, hash)
    }

    fn run_stored(lines: &[Map<String, Value>]) -> Result<u64, Problem> {
        let mut v = ChainVerifier::new(guild());
        for l in lines {
            let (body, hash) = stored(l);
            v.push_stored(&body, &hash, |_| SnapshotEvidence::Unknown, None);
        }
        v.finish(None, false)
    }

    #[test]
    fn the_stored_fast_path_agrees_with_the_general_one() {
        let full = chain(7, Some((6, 3)));
        let mut cases: Vec<Vec<Map<String, Value>>> = vec![
            full.clone(),
            full[3..].to_vec(),
            full[4..].to_vec(),
            full[3..5].to_vec(),
        ];
        let mut swapped = full.clone();
        swapped.swap(2, 3);
        cases.push(swapped);
        let mut dropped = full.clone();
        dropped.remove(4);
        cases.push(dropped);
        let mut edited = full.clone();
        edited[2].insert("summary".into(), json!("edited"));
        cases.push(edited);
        let mut extra = full.clone();
        extra[1].insert("extra".into(), json!(1));
        cases.push(extra);
        for lines in &cases {
            assert_eq!(run_stored(lines), run(lines));
        }
        // Non-canonical stored text takes the general path and still verifies
        // when its canonical form hashes right.
        let (body, hash) = stored(&full[0]);
        let spaced = body.replacen(':', ": ", 1);
        let mut v = ChainVerifier::new(guild());
        v.push_stored(&spaced, &hash, |_| SnapshotEvidence::Unknown, None);
        assert_eq!(v.finish(None, false), Ok(1));
    }

    #[test]
    fn the_stored_fast_path_checks_row_columns_and_snapshots() {
        let lines = chain(2, None);
        let (body, hash) = stored(&lines[0]);
        let row = |actor_id, occurred_at, operation| RowFacts {
            seq: 1,
            actor_id,
            occurred_at,
            operation,
            entry_hash: &hash,
            config_version: 1,
            request_id: None,
            prev_hash: GENESIS_HASH,
            snapshot_sha256: None,
        };
        let good = row("system", "2026-01-01T00:00:01.000000Z", "update");
        let mut v = ChainVerifier::new(guild());
        v.push_stored(&body, &hash, |_| SnapshotEvidence::Unknown, Some(&good));
        assert_eq!(v.finish(None, false), Ok(1));
        let zeros = "1".repeat(64);
        for bad in [
            row("mallory", "2026-01-01T00:00:01.000000Z", "update"),
            row("system", "2026-01-01T00:00:02.000000Z", "update"),
            row("system", "2026-01-01T00:00:01.000000Z", "delete"),
            RowFacts {
                config_version: 2,
                ..good
            },
            RowFacts {
                request_id: Some("forged"),
                ..good
            },
            RowFacts {
                prev_hash: &zeros,
                ..good
            },
        ] {
            let mut v = ChainVerifier::new(guild());
            v.push_stored(&body, &hash, |_| SnapshotEvidence::Unknown, Some(&bad));
            let p = v.finish(None, false).expect_err("fails");
            assert_eq!((p.seq, p.problem), (Some(1), ProblemCode::EntryHash));
        }
        // The body claims no snapshot (update with a null snapshot_sha256):
        // a stored snapshot with any hash is a mismatch.
        let mut v = ChainVerifier::new(guild());
        v.push_stored(
            &body,
            &hash,
            |claimed| {
                assert_eq!(claimed, None);
                SnapshotEvidence::Sha256("0".repeat(64))
            },
            None,
        );
        let p = v.finish(None, false).expect_err("fails");
        assert_eq!(p.problem, ProblemCode::Snapshot);
    }
}
