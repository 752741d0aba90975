//! Re-verifying a guild's hash chain, one entry at a time.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::entry::{body_value, EntryBody, Operation, GENESIS_HASH};
use crate::ids::GuildId;
use crate::json::{canonical, is_canonical, sha256_hex};

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

/// What the store says a guild's head is.
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
/// someone edited a column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowFacts {
    /// The row's seq column.
    pub seq: u64,
    /// The row's actor id column.
    pub actor_id: String,
    /// The row's occurred_at column.
    pub occurred_at: String,
    /// The row's operation column.
    pub operation: String,
    /// The row's stored entry hash.
    pub entry_hash: String,
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
    last: Option<(EntryBody, String)>,
    problem: Option<Problem>,
    checked: u64,
    /// A chain that starts after seq 1 (old entries purged): its first seq,
    /// and the `(through_seq, through_hash)` a later purge entry must record.
    /// `None` once such a purge entry was seen, or when the chain starts at 1.
    unanchored: Option<(u64, u64, String)>,
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
        }
    }

    fn fail(&mut self, seq: Option<u64>, problem: ProblemCode, message: impl Into<String>) {
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

    /// Feeds the next entry: its JSON line (body keys plus `entry_hash`, other
    /// keys ignored), what the store holds for its snapshot, and, from a
    /// database, the row's own columns.
    pub fn push(
        &mut self,
        line: &Map<String, Value>,
        snapshot: SnapshotEvidence,
        row: Option<&RowFacts>,
    ) {
        if self.failed() {
            return;
        }
        self.checked += 1;
        let row_seq = row.map(|r| r.seq);
        let claimed = line
            .get("entry_hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
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
        self.check(body, &recomputed, claimed, snapshot, row);
    }

    /// Feeds the next entry as a store holds it: the stored body text, the
    /// stored `entry_hash`, the snapshot evidence (computed from the body's
    /// claimed `snapshot_sha256`), and the row's columns. Exactly as strict as
    /// [`ChainVerifier::push`], but cheaper: when the text hashes to
    /// `entry_hash` and is already in canonical form ([`is_canonical`]), the
    /// hash over the canonical bytes *is* that hash, so the body is only
    /// deserialised; anything else takes [`ChainVerifier::push`]'s path.
    pub fn push_stored(
        &mut self,
        body: &str,
        entry_hash: &str,
        snapshot: impl FnOnce(Option<&str>) -> SnapshotEvidence,
        row: Option<&RowFacts>,
    ) {
        if self.failed() {
            return;
        }
        if sha256_hex(body.as_bytes()) == entry_hash && is_canonical(body) {
            if let Ok(parsed) = serde_json::from_str::<EntryBody>(body) {
                self.checked += 1;
                let evidence = snapshot(parsed.snapshot_sha256.as_deref());
                return self.check(parsed, entry_hash, entry_hash.to_owned(), evidence, row);
            }
        }
        let mut line = match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        line.insert("entry_hash".into(), Value::String(entry_hash.to_owned()));
        let evidence = snapshot(line.get("snapshot_sha256").and_then(Value::as_str));
        self.push(&line, evidence, row);
    }

    fn check(
        &mut self,
        body: EntryBody,
        recomputed: &str,
        claimed: String,
        snapshot: SnapshotEvidence,
        row: Option<&RowFacts>,
    ) {
        let seq = body.seq;
        if body.guild_id != self.guild {
            return self.fail(
                Some(seq),
                ProblemCode::EntryHash,
                format!("entry belongs to guild {}", body.guild_id),
            );
        }
        if self.checked == 1 && seq > 1 && self.next_seq == 1 {
            // A chain may start later, after a retention purge: accepted only
            // if a purge entry further on records removing exactly the
            // entries before this one (checked as entries stream past, and
            // finally in `finish`).
            self.next_seq = seq;
            self.prev_hash.clone_from(&body.prev_hash);
            self.unanchored = Some((seq, seq - 1, body.prev_hash.clone()));
        }
        if seq != self.next_seq {
            return self.fail(
                Some(seq),
                ProblemCode::SeqGap,
                format!("expected seq {}, found {seq}", self.next_seq),
            );
        }
        if body.prev_hash != self.prev_hash {
            return self.fail(
                Some(seq),
                ProblemCode::PrevHash,
                "prev_hash is not the previous entry's hash",
            );
        }
        if recomputed != claimed {
            return self.fail(
                Some(seq),
                ProblemCode::EntryHash,
                "recomputed hash differs from entry_hash",
            );
        }
        if let Some(row) = row {
            let agrees = row.seq == seq
                && row.actor_id == body.actor.id
                && row.occurred_at == body.occurred_at.to_string()
                && row.operation == body.operation.as_str()
                && row.entry_hash == claimed;
            if !agrees {
                return self.fail(
                    Some(seq),
                    ProblemCode::EntryHash,
                    "the stored row's columns disagree with its hashed body",
                );
            }
        }
        match (&snapshot, &body.snapshot_sha256) {
            (SnapshotEvidence::Unknown, _) => {}
            (SnapshotEvidence::Sha256(stored), Some(claimed_sha)) if stored == claimed_sha => {}
            (SnapshotEvidence::Missing, None)
                if matches!(body.operation, Operation::Delete | Operation::Purge) => {}
            (_, None) if matches!(body.operation, Operation::Delete | Operation::Purge) => {}
            // A purge entry records the document current when it ran; a later
            // purge may have removed that version's snapshot.
            (SnapshotEvidence::Missing, Some(_)) if body.operation == Operation::Purge => {}
            (SnapshotEvidence::Missing, _) => {
                return self.fail(
                    Some(seq),
                    ProblemCode::Snapshot,
                    format!("no stored snapshot for version {}", body.config_version),
                )
            }
            _ => {
                return self.fail(
                    Some(seq),
                    ProblemCode::Snapshot,
                    format!(
                        "stored snapshot of version {} does not match snapshot_sha256",
                        body.config_version
                    ),
                )
            }
        }
        if body.operation == Operation::Purge {
            if let Some((_, through_seq, through_hash)) = &self.unanchored {
                if purge_through(&body.detail) == Some((*through_seq, through_hash.as_str())) {
                    self.unanchored = None;
                }
            }
        }
        self.next_seq = seq + 1;
        self.prev_hash = claimed.clone();
        self.last = Some((body, claimed));
    }

    /// Ends the guild: checks the head (when given) against the last entry and
    /// returns the number of entries checked, or the first failure.
    ///
    /// # Errors
    /// The first [`Problem`] found in this guild's chain.
    pub fn finish(mut self, head: Option<&HeadFacts>, head_expected: bool) -> Result<u64, Problem> {
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
            (None, Some((body, _))) => self.fail(
                Some(body.seq),
                ProblemCode::Head,
                "entries exist but the guild has no head",
            ),
            (Some(h), None) => self.fail(
                None,
                ProblemCode::Head,
                format!("head says seq {} but the guild has no entries", h.seq),
            ),
            (Some(h), Some((body, hash))) => {
                let doc_ok = match body.operation {
                    Operation::Delete => h.document_sha256.is_none(),
                    // A purge leaves the document as it was, deleted or not.
                    Operation::Purge => h.document_sha256 == body.snapshot_sha256,
                    _ => h.document_sha256.is_some() && h.document_sha256 == body.snapshot_sha256,
                };
                if h.seq != body.seq || h.last_hash != hash {
                    self.fail(
                        Some(body.seq),
                        ProblemCode::Head,
                        format!(
                            "head says seq {} but the last entry is seq {}",
                            h.seq, body.seq
                        ),
                    );
                } else if h.version != body.config_version {
                    self.fail(
                        Some(body.seq),
                        ProblemCode::Head,
                        format!(
                            "head says version {} but the last entry made version {}",
                            h.version, body.config_version
                        ),
                    );
                } else if !doc_ok {
                    self.fail(
                        Some(body.seq),
                        ProblemCode::Head,
                        "the current document does not match the last entry's snapshot",
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
                occurred_at: Timestamp::parse_stored(&format!("2026-01-01T00:00:{seq:02}.000000Z"))
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
            let entry = body.seal().expect("seals");
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
}
