//! Retention: removing a guild's old audit entries and the snapshots only
//! they needed, recorded by a chained `purge` entry.

use guildconf_domain::{link, GuildId, Step, Timestamp};
use guildconf_ports::{PurgeCandidate, PurgeSet, StoreError};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::service::{backoff, check_meta, ConfigService, WriteMeta};
use crate::stream::GuildRanges;

/// One guild's purge: planned (`entry_hash` `None`) or done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PurgeResult {
    /// The guild.
    pub guild_id: GuildId,
    /// The last seq removed (0 when nothing was).
    pub through_seq: u64,
    /// Entries removed (or to remove).
    pub entries_removed: u64,
    /// Snapshots removed (or to remove).
    pub snapshots_removed: u64,
    /// The appended purge entry's hash; `None` for a plan, or when the guild
    /// had nothing to purge.
    pub entry_hash: Option<String>,
}

impl PurgeResult {
    fn planned(guild: GuildId, c: &PurgeCandidate) -> Self {
        Self {
            guild_id: guild,
            through_seq: c.through_seq,
            entries_removed: c.entries,
            snapshots_removed: c.snapshots,
            entry_hash: None,
        }
    }

    fn nothing(guild: GuildId) -> Self {
        Self {
            guild_id: guild,
            through_seq: 0,
            entries_removed: 0,
            snapshots_removed: 0,
            entry_hash: None,
        }
    }
}

impl ConfigService {
    /// What a purge of entries before `before` (exclusive) would remove: one
    /// guild, or every guild that has something to remove. Writes nothing.
    ///
    /// # Errors
    /// [`Error::NotFound`] when the one guild asked for has no history;
    /// [`Error::Storage`] when the database fails.
    pub async fn purge_plan(
        &self,
        before: Timestamp,
        guild: Option<GuildId>,
    ) -> Result<Vec<PurgeResult>> {
        let mut out = Vec::new();
        for g in self.purge_guilds(guild).await? {
            if let Some(c) = self.store.purge_candidate(g, before).await? {
                out.push(PurgeResult::planned(g, &c));
            } else if guild.is_some() {
                out.push(PurgeResult::nothing(g));
            }
        }
        Ok(out)
    }

    /// Purges entries before `before` (exclusive): one guild, or every guild.
    /// Each guild is one transaction that removes its entries with
    /// `occurred_at` before the cut-off (never the entry that made the
    /// current version, nor any later one) and the snapshots no kept entry
    /// needs, and appends a chained `purge` entry. Guilds with nothing to
    /// remove are skipped, unless named.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a request id (a purge takes none) or a bad
    /// reason; [`Error::NotFound`] when the one guild asked for has no
    /// history; [`Error::Conflict`] when a guild kept changing through every
    /// retry; [`Error::Storage`] when the database fails (that guild's purge
    /// is rolled back; guilds purged before it stay purged).
    pub async fn purge(
        &self,
        before: Timestamp,
        guild: Option<GuildId>,
        meta: &WriteMeta,
    ) -> Result<Vec<PurgeResult>> {
        check_meta(meta)?;
        if meta.request_id.is_some() {
            return Err(Error::invalid(
                "/request_id",
                "a purge does not take a request id",
            ));
        }
        let mut out = Vec::new();
        for g in self.purge_guilds(guild).await? {
            match self.purge_guild(g, before, meta).await? {
                Some(result) => out.push(result),
                None if guild.is_some() => out.push(PurgeResult::nothing(g)),
                None => {}
            }
        }
        Ok(out)
    }

    /// The guilds a purge looks at: the one named (which must have history),
    /// or every guild with a head, in ascending id.
    async fn purge_guilds(&self, guild: Option<GuildId>) -> Result<Vec<GuildId>> {
        if let Some(g) = guild {
            if self.store.stored_head(g).await?.is_none() {
                return Err(Error::NotFound(format!("guild {g} has no history")));
            }
            return Ok(vec![g]);
        }
        let mut all = Vec::new();
        let mut batches = GuildRanges::new();
        while let Some(ids) = batches.next(self.store.as_ref()).await? {
            all.extend(ids);
        }
        Ok(all)
    }

    /// One guild's purge, recomputed from the new head after a lost race.
    async fn purge_guild(
        &self,
        guild: GuildId,
        before: Timestamp,
        meta: &WriteMeta,
    ) -> Result<Option<PurgeResult>> {
        let mut attempt = 0;
        loop {
            let Some(candidate) = self.store.purge_candidate(guild, before).await? else {
                return Ok(None);
            };
            let set = self.purge_set(guild, before, &candidate, meta)?;
            let entry_hash = set.entry.entry_hash().to_owned();
            let through_seq = set.through_seq;
            // The purge moves the head: this service's own next write to the
            // guild reads it rather than trying a remembered head that is now
            // stale.
            self.hints.forget(guild);
            match self.store.purge(set).await {
                Ok(outcome) => {
                    tracing::info!(guild = %guild, through_seq, entries = outcome.entries_removed, "purged old history");
                    return Ok(Some(PurgeResult {
                        guild_id: guild,
                        through_seq,
                        entries_removed: outcome.entries_removed,
                        snapshots_removed: outcome.snapshots_removed,
                        entry_hash: Some(entry_hash),
                    }));
                }
                Err(StoreError::Conflict(reason)) if attempt < self.max_retries => {
                    attempt += 1;
                    tracing::debug!(guild = %guild, attempt, %reason, "purge lost a race; recomputing");
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(StoreError::Conflict(_)) => {
                    return Err(Error::Conflict(format!(
                        "guild {guild} kept changing; the purge lost the race {} times",
                        attempt + 1
                    )))
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The chained purge entry and the new head, from a candidate.
    fn purge_set(
        &self,
        guild: GuildId,
        before: Timestamp,
        c: &PurgeCandidate,
        meta: &WriteMeta,
    ) -> Result<PurgeSet> {
        let step = Step::Purge {
            before,
            through_seq: c.through_seq,
            through_hash: c.through_hash.clone(),
            entries: c.entries,
        };
        let link = link(
            guild,
            Some(&c.head),
            step,
            meta.link_meta(),
            &self.schema.secret_paths(),
            self.clock.now(),
        )
        .map_err(|e| Error::Corrupt(e.to_string()))?;
        Ok(PurgeSet {
            guild_id: guild,
            expected_seq: c.head.seq,
            through_seq: c.through_seq,
            through_hash: c.through_hash.clone(),
            keep_from_version: c.keep_from_version,
            head: link.head,
            entry: link.entry,
            signature: None,
        })
    }
}
