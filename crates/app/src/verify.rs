//! Verifying hash chains: in the database, or in an export file offline.

use std::collections::BTreeMap;
use std::io::BufRead;

use guildconf_domain::json::{is_canonical, sha256_hex, value_sha256};
use guildconf_domain::{ChainVerifier, GuildId, HeadFacts, Problem, RowFacts, SnapshotEvidence};
use guildconf_ports::{StoredEntry, StoredHead};
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::service::ConfigService;
use crate::stream::{RangeStream, BATCH, GUILD_BATCH};

/// One verification failure (the first per guild).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyProblem {
    /// The guild, when known (a line that is not JSON has none).
    pub guild_id: Option<GuildId>,
    /// The entry at fault, when one is.
    pub seq: Option<u64>,
    /// `seq_gap`, `prev_hash`, `entry_hash`, `snapshot` or `head`.
    pub problem: String,
    /// What was found.
    pub message: String,
}

impl From<Problem> for VerifyProblem {
    fn from(p: Problem) -> Self {
        Self {
            guild_id: Some(p.guild_id),
            seq: p.seq,
            problem: p.problem.as_str().to_owned(),
            message: p.message,
        }
    }
}

/// The outcome of a verification.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// Whether every chain verified.
    pub ok: bool,
    /// Guilds looked at.
    pub guilds_checked: u64,
    /// Entries looked at.
    pub entries_checked: u64,
    /// The first failure of each failing guild.
    pub problems: Vec<VerifyProblem>,
    /// Findings that are not failures (such as `checkpoint_purged`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<VerifyProblem>,
}

impl VerifyReport {
    fn finish_guild(&mut self, result: std::result::Result<u64, Problem>) {
        self.guilds_checked += 1;
        match result {
            Ok(n) => self.entries_checked += n,
            Err(p) => self.problems.push(p.into()),
        }
    }

    pub(crate) fn done(mut self) -> Self {
        self.ok = self.problems.is_empty();
        self
    }
}

/// Hashes stored JSON text's canonical form: the text itself when it is
/// canonical already, otherwise after parsing and re-canonicalising it.
fn sha_of_text(text: &str) -> Option<String> {
    if is_canonical(text) {
        return Some(sha256_hex(text.as_bytes()));
    }
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| value_sha256(&v).ok())
}

fn head_facts(head: StoredHead) -> HeadFacts {
    HeadFacts {
        seq: head.seq,
        version: head.version,
        last_hash: head.last_hash,
        document_sha256: head.document.as_deref().and_then(sha_of_text),
    }
}

fn feed(verifier: &mut ChainVerifier, row: &StoredEntry) {
    let facts = RowFacts {
        seq: row.seq,
        actor_id: &row.actor_id,
        occurred_at: &row.occurred_at,
        operation: &row.operation,
        entry_hash: &row.entry_hash,
    };
    // Canonical stored text (SQLite) is hashed as it is; other text (such as
    // PostgreSQL's jsonb output) is parsed and re-canonicalised.
    let evidence = |_claimed: Option<&str>| {
        row.snapshot
            .as_deref()
            .and_then(sha_of_text)
            .map_or(SnapshotEvidence::Missing, SnapshotEvidence::Sha256)
    };
    verifier.push_stored(&row.body, &row.entry_hash, evidence, Some(&facts));
}

impl ConfigService {
    /// Re-verifies chains in the database: one guild, or all of them.
    /// Streams entries in batches, so memory does not grow with the log.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the one guild asked for has no history;
    /// [`Error::Storage`] when the database fails. Broken chains are not
    /// errors: they are listed in the report.
    pub async fn verify(&self, guild: Option<GuildId>) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        match guild {
            Some(g) => {
                if self.store.stored_head(g).await?.is_none()
                    && self.store.entries(g, 0, None, 1, false).await?.is_empty()
                {
                    return Err(Error::NotFound(format!("guild {g} has no history")));
                }
                report.finish_guild(self.verify_guild(g).await?);
            }
            None => {
                let mut after = None;
                loop {
                    let ids = self.store.guild_ids(after, GUILD_BATCH).await?;
                    let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
                        break;
                    };
                    self.verify_range(*first, *last, &mut report).await?;
                    if ids.len() < GUILD_BATCH as usize {
                        break;
                    }
                    after = Some(*last);
                }
            }
        }
        Ok(report.done())
    }

    /// Verifies every guild from `first` through `last` with one read of
    /// their heads and one stream of their entries (instead of two round
    /// trips per guild).
    ///
    /// The heads are read *first*. A head and the entry that moved it commit
    /// in one transaction, so every entry up to a head's seq is in the
    /// database by the time the entries are streamed, and the entries a
    /// write adds meanwhile (past the head read) are left out: writes landing
    /// during verify never look like a head problem. A guild that shows
    /// entries but had no head when the heads were read may have been created
    /// meanwhile; it is verified again on its own.
    async fn verify_range(
        &self,
        first: GuildId,
        last: GuildId,
        report: &mut VerifyReport,
    ) -> Result<()> {
        let mut heads: BTreeMap<GuildId, StoredHead> = self
            .store
            .stored_heads(first, last)
            .await?
            .into_iter()
            .collect();
        let mut chains: BTreeMap<GuildId, ChainVerifier> = BTreeMap::new();
        let mut current: Option<ChainVerifier> = None;
        let mut stream = RangeStream::new(self.store.clone(), first, last, None, true);
        while let Some(rows) = stream.next_batch().await? {
            for row in &rows {
                if heads.get(&row.guild_id).is_some_and(|h| row.seq > h.seq) {
                    continue;
                }
                if current.as_ref().is_none_or(|v| v.guild() != row.guild_id) {
                    if let Some(verifier) = current.take() {
                        chains.insert(verifier.guild(), verifier);
                    }
                    current = Some(ChainVerifier::new(row.guild_id));
                }
                if let Some(verifier) = current.as_mut() {
                    feed(verifier, row);
                }
            }
        }
        if let Some(verifier) = current.take() {
            chains.insert(verifier.guild(), verifier);
        }
        let mut guilds: Vec<GuildId> = chains.keys().chain(heads.keys()).copied().collect();
        guilds.sort_unstable();
        guilds.dedup();
        for guild in guilds {
            let head = heads.remove(&guild);
            let result = match (chains.remove(&guild), head) {
                (Some(_), None) => self.verify_guild(guild).await?,
                (verifier, head) => verifier
                    .unwrap_or_else(|| ChainVerifier::new(guild))
                    .finish(head.map(head_facts).as_ref(), true),
            };
            report.finish_guild(result);
        }
        Ok(())
    }

    /// Verifies one guild's chain: its head first, then its entries up to
    /// the head's seq (see [`ConfigService::verify_range`] for why). Entries
    /// with no head may belong to a guild created after the head was read:
    /// the head is read once more before that is reported.
    async fn verify_guild(&self, guild: GuildId) -> Result<std::result::Result<u64, Problem>> {
        let mut second_look = false;
        loop {
            let head = self.store.stored_head(guild).await?;
            let limit = head.as_ref().map(|h| h.seq);
            let mut verifier = ChainVerifier::new(guild);
            let mut saw_entries = false;
            let mut after_seq = 0;
            'stream: loop {
                let rows = self
                    .store
                    .entries(guild, after_seq, None, BATCH, true)
                    .await?;
                for row in &rows {
                    if limit.is_some_and(|l| row.seq > l) {
                        break 'stream;
                    }
                    saw_entries = true;
                    feed(&mut verifier, row);
                }
                match rows.last() {
                    Some(last) if rows.len() == BATCH as usize && !verifier.failed() => {
                        after_seq = last.seq;
                    }
                    _ => break,
                }
            }
            if head.is_none() && saw_entries && !second_look {
                second_look = true;
                tracing::debug!(guild = %guild, "entries but no head; reading the head again");
                continue;
            }
            return Ok(verifier.finish(head.map(head_facts).as_ref(), true));
        }
    }
}

/// Verifies an export file offline: every line's hash, each guild's seq and
/// `prev_hash` chain, and each embedded `snapshot` against its
/// `snapshot_sha256`. Reads line by line.
///
/// # Errors
/// [`Error::Storage`] when the file cannot be read. Broken chains and
/// malformed lines are listed in the report.
pub fn verify_export(reader: impl BufRead) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let mut current: Option<(GuildId, ChainVerifier)> = None;
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Error::Storage(format!("cannot read the export: {e}")))?;
        if line.is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(&line).ok();
        let map = match parsed {
            Some(Value::Object(map)) => map,
            _ => {
                report.problems.push(VerifyProblem {
                    guild_id: current.as_ref().map(|(g, _)| *g),
                    seq: None,
                    problem: "entry_hash".into(),
                    message: format!("line {} is not a JSON object", index + 1),
                });
                continue;
            }
        };
        let Some(guild) = map
            .get("guild_id")
            .and_then(Value::as_str)
            .and_then(|g| GuildId::parse(g).ok())
        else {
            report.problems.push(VerifyProblem {
                guild_id: None,
                seq: map.get("seq").and_then(Value::as_u64),
                problem: "entry_hash".into(),
                message: format!("line {} has no valid guild_id", index + 1),
            });
            continue;
        };
        if current.as_ref().is_none_or(|(g, _)| *g != guild) {
            if let Some((_, verifier)) = current.take() {
                report.finish_guild(verifier.finish(None, false));
            }
            current = Some((guild, ChainVerifier::new(guild)));
        }
        if let Some((_, verifier)) = current.as_mut() {
            let evidence = match map.get("snapshot") {
                Some(snapshot) => value_sha256(snapshot)
                    .map_or(SnapshotEvidence::Missing, SnapshotEvidence::Sha256),
                None => SnapshotEvidence::Unknown,
            };
            verifier.push(&map, evidence, None);
        }
    }
    if let Some((_, verifier)) = current.take() {
        report.finish_guild(verifier.finish(None, false));
    }
    Ok(report.done())
}
