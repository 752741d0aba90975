//! External checkpoints: a digest over every guild's head, kept outside the
//! database, that later proves the log only grew since.
//!
//! A checkpoint catches what a chain alone cannot: a restored old backup
//! (newest entries gone, heads rolled back) and a chain recomputed after an
//! edit (every hash valid, but different from the one written down). It
//! cannot catch new, correctly hashed entries appended after it was taken by
//! someone with write access (see SECURITY.md).

use guildconf_domain::json::canonical_sha256;
use guildconf_domain::{GuildId, Operation, Timestamp};
use guildconf_ports::HistoryQuery;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::ConfigService;
use crate::stream::GuildRanges;
use crate::verify::{VerifyProblem, VerifyReport};

/// The checkpoint format version.
pub const CHECKPOINT_VERSION: u32 = 1;

/// One guild's head at checkpoint time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointHead {
    /// The guild.
    pub guild_id: GuildId,
    /// Its last seq then.
    pub seq: u64,
    /// Its last entry hash then.
    pub entry_hash: String,
}

/// A checkpoint: every guild's head, and one SHA-256 digest over them (the
/// RFC 8785 form of the `heads` array) to write down somewhere the database's
/// owner cannot reach.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version, 1.
    pub v: u32,
    /// When it was taken.
    pub created_at: Timestamp,
    /// Every guild's head, ascending by guild id.
    pub heads: Vec<CheckpointHead>,
    /// Hex SHA-256 of the canonical `heads` array.
    pub digest: String,
}

impl Checkpoint {
    /// Parses a checkpoint file and checks its digest.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the text is not a checkpoint, or its digest
    /// does not match its heads (the file was edited).
    pub fn parse(text: &str) -> Result<Self> {
        let cp: Checkpoint = serde_json::from_str(text).map_err(|e| {
            Error::invalid("/checkpoint", format!("is not a guildconf checkpoint: {e}"))
        })?;
        if cp.v != CHECKPOINT_VERSION {
            return Err(Error::invalid(
                "/checkpoint/v",
                format!("unsupported checkpoint version {}", cp.v),
            ));
        }
        let digest = canonical_sha256(&cp.heads).map_err(|e| Error::invalid("/checkpoint", e))?;
        if digest != cp.digest {
            return Err(Error::invalid(
                "/checkpoint/digest",
                "does not match the heads: the file was altered",
            ));
        }
        Ok(cp)
    }
}

fn problem(guild: GuildId, seq: u64, code: &str, message: String) -> VerifyProblem {
    VerifyProblem {
        guild_id: Some(guild),
        seq: Some(seq),
        problem: code.to_owned(),
        message,
    }
}

impl ConfigService {
    /// Takes a checkpoint of every guild's head.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails.
    pub async fn checkpoint(&self, now: Timestamp) -> Result<Checkpoint> {
        let mut heads = Vec::new();
        let mut ranges = GuildRanges::new();
        while let Some((first, last)) = ranges.next_range(self.store.as_ref()).await? {
            for (guild, head) in self.store.stored_heads(first, last).await? {
                heads.push(CheckpointHead {
                    guild_id: guild,
                    seq: head.seq,
                    entry_hash: head.last_hash,
                });
            }
        }
        let digest = canonical_sha256(&heads).map_err(Error::Corrupt)?;
        Ok(Checkpoint {
            v: CHECKPOINT_VERSION,
            created_at: now,
            heads,
            digest,
        })
    }

    /// Verifies every chain, and that the log extends `checkpoint`: each
    /// guild's entry at its checkpointed seq still exists with the same hash.
    /// An entry removed since by a retention purge is a notice
    /// (`checkpoint_purged`), not a failure.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails.
    pub async fn verify_checkpoint(&self, checkpoint: &Checkpoint) -> Result<VerifyReport> {
        self.verify_checkpoint_with(checkpoint, &crate::VerifyOptions::default())
            .await
    }

    /// [`ConfigService::verify_checkpoint`], checking signatures as
    /// `options` say.
    ///
    /// # Errors
    /// [`Error::Storage`] when the database fails.
    pub async fn verify_checkpoint_with(
        &self,
        checkpoint: &Checkpoint,
        options: &crate::VerifyOptions,
    ) -> Result<VerifyReport> {
        let mut report = self.check_chains(None, options).await?;
        for cp in &checkpoint.heads {
            let (guild, seq) = (cp.guild_id, cp.seq);
            let rows = self
                .store
                .entries(guild, seq.saturating_sub(1), None, 1, false)
                .await?;
            match rows.first() {
                Some(row) if row.seq == seq && row.entry_hash == cp.entry_hash => {}
                Some(row) if row.seq == seq => report.problems.push(problem(
                    guild,
                    seq,
                    "checkpoint",
                    "the entry at the checkpointed seq has a different hash: history was rewritten"
                        .into(),
                )),
                _ => match self.purged_through(guild).await? {
                    Some((through_seq, through_hash)) if through_seq >= seq => {
                        let same = through_seq != seq || through_hash == cp.entry_hash;
                        if same {
                            report.notices.push(problem(
                                guild,
                                seq,
                                "checkpoint_purged",
                                format!("a later purge removed entries through seq {through_seq}"),
                            ));
                        } else {
                            report.problems.push(problem(
                                guild,
                                seq,
                                "checkpoint",
                                "the purge entry names a different hash at the checkpointed seq"
                                    .into(),
                            ));
                        }
                    }
                    _ => report.problems.push(problem(
                        guild,
                        seq,
                        "checkpoint",
                        "the checkpointed entry is gone: the log was rolled back (an old backup?)"
                            .into(),
                    )),
                },
            }
        }
        Ok(report.done())
    }

    /// The newest purge entry's `through_seq` and `through_hash`, if any.
    async fn purged_through(&self, guild: GuildId) -> Result<Option<(u64, String)>> {
        let query = HistoryQuery {
            guild_id: Some(guild),
            operation: Some(Operation::Purge),
            limit: 1,
            ..HistoryQuery::default()
        };
        let newest = self.store.history(&query).await?;
        Ok(newest.first().and_then(|e| {
            let seq = e.body.detail.get("through_seq").and_then(Value::as_u64)?;
            let hash = e.body.detail.get("through_hash").and_then(Value::as_str)?;
            Some((seq, hash.to_owned()))
        }))
    }
}
